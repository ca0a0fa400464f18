//! From the records of one zone file to a validated [`Zone`].
//!
//! Validation collects every problem with the file and line of the record at fault: SOA
//! count and place, apex NS, CNAME beside other data or twice at a name, records outside the
//! zone, classes other than IN, and glue (an NS target inside the zone needs an A or AAAA
//! record in it, for the apex and for delegations alike).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::key::{KeyHasher, NameKey, key_of, parent_key};
use super::read::{Loc, ReadFile, RecordSink, read_zone_file, read_zone_text};
use super::{Node, RDatas, RrSet, StoredRData, Zone, ZoneError};

/// The result of loading one top-level zone file.
pub(crate) struct LoadedZone {
    pub(crate) zone: Result<Zone, Vec<ZoneError>>,
    /// Every file read for this zone, including `$INCLUDE`d ones.
    pub(crate) files: Vec<PathBuf>,
}

/// Reads, validates and stores the zone in `path`.
pub(crate) fn load_zone_file(path: &Path) -> LoadedZone {
    let (default_origin, name_error) = origin_from_file_name(path);
    let mut builder = Builder::default();
    let read = read_zone_file(path, default_origin, &mut builder);
    let files = read.files.clone();
    if read.unreadable {
        return LoadedZone {
            zone: Err(read.errors),
            files,
        };
    }
    let zone = builder.finish(path, read, name_error);
    LoadedZone { zone, files }
}

/// Parses and validates zone `text` for `origin` without touching the file system
/// (`$INCLUDE` is refused). Errors name the file `<text>`.
pub(crate) fn zone_from_text(origin: &Name, text: &str) -> Result<Zone, Vec<ZoneError>> {
    let label = Path::new("<text>");
    let mut builder = Builder::default();
    let read = read_zone_text(label, text, Some(origin.clone()), false, &mut builder);
    builder.finish(label, read, None)
}

/// The origin given by a file name (`example.com.zone` -> `example.com.`), or why there is
/// none (used only when the file has no `$ORIGIN` either).
fn origin_from_file_name(path: &Path) -> (Option<Name>, Option<String>) {
    let Some(stem) = path.file_stem().and_then(|stem| stem.to_str()) else {
        return (
            None,
            Some("the file name is not valid UTF-8 and the file has no $ORIGIN".to_owned()),
        );
    };
    let text = if stem.ends_with('.') {
        stem.to_owned()
    } else {
        format!("{stem}.")
    };
    match Name::from_ascii(&text) {
        Ok(name) => (Some(name), None),
        Err(err) => (
            None,
            Some(format!(
                "the file name {stem:?} is not a domain name ({err}) and the file has no $ORIGIN"
            )),
        ),
    }
}

/// Appends to a boxed slice keeping it exact-size (nodes hold one to a few RRsets, RRsets
/// a few records: no spare capacity kept per node).
fn push_boxed<T>(slice: &mut Box<[T]>, item: T) {
    let old = std::mem::take(slice).into_vec();
    let mut grown = Vec::with_capacity(old.len() + 1);
    grown.extend(old);
    grown.push(item);
    *slice = grown.into_boxed_slice();
}

/// An NS record kept for the glue check, which needs all records first.
struct NsRecord {
    owner: Name,
    target: Name,
    loc: Loc,
}

/// Types that may sit beside a CNAME (RFC 2181 10.1, RFC 4035 2.5).
fn allowed_beside_cname(rtype: RecordType) -> bool {
    matches!(rtype, RecordType::RRSIG | RecordType::NSEC)
}

/// Collects the records of one zone as the reader parses them, checking each on arrival.
#[derive(Default)]
struct Builder {
    /// Known from the first record on (the reader decides it).
    origin: Option<(Name, NameKey)>,
    /// Built in place: the final nodes, without a second copy of the zone at any time.
    nodes: HashMap<NameKey, Node, KeyHasher>,
    ns_records: Vec<NsRecord>,
    problems: Vec<(Loc, String)>,
    soa: Option<(Record, Loc)>,
    record_count: usize,
}

impl RecordSink for Builder {
    fn record(&mut self, zone_origin: Option<&Name>, record: Record, loc: Loc) {
        if self.know_origin(zone_origin) {
            self.insert(record, loc);
        }
    }

    fn address(
        &mut self,
        zone_origin: Option<&Name>,
        owner: &[u8],
        ttl: u32,
        address: IpAddr,
        loc: Loc,
    ) {
        if self.know_origin(zone_origin) {
            let (rtype, data) = match address {
                IpAddr::V4(ip) => (RecordType::A, StoredRData::A(ip)),
                IpAddr::V6(ip) => (RecordType::AAAA, StoredRData::Aaaa(ip)),
            };
            self.insert_data(owner, &|| display_key(owner), rtype, ttl, data, loc);
        }
    }

    fn expect(&mut self, records: usize) {
        self.nodes.reserve(records.saturating_sub(self.nodes.len()));
    }
}

/// A key as the name it stands for, for messages.
fn display_key(key: &[u8]) -> String {
    super::name_of_key(key).map_or_else(|| format!("{key:?}"), |name| name.to_string())
}

impl Builder {
    /// Takes the zone's origin from the first record on; false while none is known (the
    /// record is then dropped, and `finish` reports the missing origin once).
    fn know_origin(&mut self, zone_origin: Option<&Name>) -> bool {
        if self.origin.is_none() {
            let Some(origin) = zone_origin else {
                return false;
            };
            let apex_key = key_of(origin);
            self.nodes.entry(apex_key.clone()).or_default();
            self.origin = Some((origin.clone(), apex_key));
        }
        true
    }

    /// Whole-zone checks, then the immutable [`Zone`], or every error of the file.
    fn finish(
        mut self,
        path: &Path,
        mut read: ReadFile,
        name_error: Option<String>,
    ) -> Result<Zone, Vec<ZoneError>> {
        if self.origin.is_none()
            && let Some(origin) = &read.origin
        {
            let apex_key = key_of(origin);
            self.nodes.entry(apex_key.clone()).or_default();
            self.origin = Some((origin.clone(), apex_key));
        }
        let Some((origin, apex_key)) = self.origin.clone() else {
            read.errors.push(ZoneError {
                file: path.to_path_buf(),
                line: None,
                message: name_error.unwrap_or_else(|| "the zone has no origin".to_owned()),
            });
            return Err(read.errors);
        };
        self.check_apex(path, &origin, &apex_key, &mut read.errors);
        self.check_glue(&origin);
        for (loc, message) in std::mem::take(&mut self.problems) {
            read.error_at(loc, message);
        }
        let soa = match self.soa.take() {
            Some((soa, _)) if read.errors.is_empty() => soa,
            _ => {
                read.errors.sort_by(|a, b| {
                    // Files in reading order, then lines, then zone-wide problems; stable.
                    let rank = |e: &ZoneError| {
                        let file = read.files.iter().position(|f| *f == e.file);
                        (file, e.line.is_none(), e.line)
                    };
                    rank(a).cmp(&rank(b))
                });
                return Err(read.errors);
            }
        };
        self.add_empty_non_terminals(&apex_key);

        let negative_ttl = match &soa.data {
            RData::SOA(rdata) => soa.ttl.min(rdata.minimum),
            _ => soa.ttl,
        };
        let negative_soa = Record::from_rdata(origin.clone(), negative_ttl, soa.data);
        let mut nodes = self.nodes;
        for node in nodes.values_mut() {
            node.rrsets.sort_by_key(|rrset| u16::from(rrset.rtype));
        }

        Ok(Zone::assemble(
            origin,
            apex_key,
            path.to_path_buf(),
            negative_soa,
            self.record_count,
            nodes,
        ))
    }

    fn insert(&mut self, record: Record, loc: Loc) {
        let Some((origin, _)) = &self.origin else {
            return;
        };
        let rtype = record.record_type();
        if record.dns_class != DNSClass::IN {
            self.problems.push((
                loc,
                format!(
                    "class {} is not supported: only IN zones are served",
                    record.dns_class
                ),
            ));
            return;
        }
        if !origin.zone_of(&record.name) {
            self.problems.push((
                loc,
                format!(
                    "{} is outside the zone {origin}: a zone file may only hold names at or below its origin",
                    record.name
                ),
            ));
            return;
        }
        if rtype == RecordType::SOA {
            if record.name != *origin {
                self.problems.push((
                    loc,
                    format!(
                        "SOA record at {}, but the SOA belongs at the zone apex {origin}",
                        record.name
                    ),
                ));
                return;
            }
            if let Some((_, first)) = &self.soa {
                let first_line = first.line;
                self.problems.push((
                    loc,
                    format!(
                        "second SOA record (the first is on line {first_line}): a zone has exactly one"
                    ),
                ));
                return;
            }
            self.soa = Some((record.clone(), loc));
        }

        let key = key_of(&record.name);
        let data = StoredRData::new(record.data);
        // An NS target is kept for the glue check once per distinct record.
        let new_ns_target = match data.as_rdata() {
            Some(RData::NS(target)) => self
                .nodes
                .get(&key)
                .and_then(|node| node.rrset(RecordType::NS))
                .is_none_or(|ns| !ns.rdatas().contains(&data))
                .then(|| target.0.clone()),
            _ => None,
        };
        let owner = &record.name;
        let stored = self.insert_data(&key, &|| owner.to_string(), rtype, record.ttl, data, loc);
        if stored && let Some(target) = new_ns_target {
            self.ns_records.push(NsRecord {
                owner: record.name.clone(),
                target,
                loc,
            });
        }
    }

    /// Stores one record at the node `key` (`owner` names it in messages), unless it
    /// breaks the CNAME rules (then false, and the problem is kept).
    fn insert_data(
        &mut self,
        key: &[u8],
        owner: &dyn Fn() -> String,
        rtype: RecordType,
        ttl: u32,
        data: StoredRData,
        loc: Loc,
    ) -> bool {
        let node = match self.nodes.get_mut(key) {
            Some(node) => node,
            None => self.nodes.entry(NameKey::from(key)).or_default(),
        };
        let mut problem = None;
        if rtype == RecordType::CNAME {
            if let Some(cname) = node.rrset(RecordType::CNAME) {
                if !cname.rdatas().contains(&data) {
                    problem = Some(format!(
                        "{} has more than one CNAME (first on line {}): a name can alias only one target",
                        owner(),
                        cname.first_line
                    ));
                }
            } else if let Some(other) = node
                .rrsets
                .iter()
                .find(|rrset| !allowed_beside_cname(rrset.rtype))
            {
                problem = Some(format!(
                    "{} has a CNAME and {} data (line {}): a CNAME must be alone at its name",
                    owner(),
                    other.rtype,
                    other.first_line
                ));
            }
        } else if !allowed_beside_cname(rtype)
            && let Some(cname) = node.rrset(RecordType::CNAME)
        {
            problem = Some(format!(
                "{} has {rtype} data and a CNAME (line {}): a CNAME must be alone at its name",
                owner(),
                cname.first_line
            ));
        }
        if let Some(message) = problem {
            self.problems.push((loc, message));
            return false;
        }
        match node.rrsets.iter_mut().find(|rrset| rrset.rtype == rtype) {
            Some(rrset) => {
                // An RRset is a set (RFC 2181 5): a repeated record counts once.
                if rrset.insert(data) {
                    self.record_count += 1;
                }
            }
            None => {
                push_boxed(
                    &mut node.rrsets,
                    RrSet {
                        rtype,
                        ttl,
                        first_line: loc.line,
                        rdatas: RDatas::One(data),
                    },
                );
                self.record_count += 1;
            }
        }
        true
    }

    fn check_apex(
        &mut self,
        path: &Path,
        origin: &Name,
        apex_key: &[u8],
        errors: &mut Vec<ZoneError>,
    ) {
        if self.soa.is_none() {
            errors.push(ZoneError {
                file: path.to_path_buf(),
                line: None,
                message: format!("no SOA record at the zone apex {origin}"),
            });
        }
        let has_ns = self
            .nodes
            .get(apex_key)
            .is_some_and(|apex| apex.rrset(RecordType::NS).is_some());
        if !has_ns {
            let message = format!("no NS record at the zone apex {origin}");
            match &self.soa {
                // Point at the SOA: that is where the apex's records are.
                Some((_, soa_loc)) => self.problems.push((*soa_loc, message)),
                None => errors.push(ZoneError {
                    file: path.to_path_buf(),
                    line: None,
                    message,
                }),
            }
        }
    }

    /// Every NS target inside the zone must have an address in it, or nobody can reach it.
    fn check_glue(&mut self, origin: &Name) {
        for ns in &self.ns_records {
            if !origin.zone_of(&ns.target) {
                continue;
            }
            let has_address = self.nodes.get(&key_of(&ns.target)).is_some_and(|t| {
                t.rrset(RecordType::A).is_some() || t.rrset(RecordType::AAAA).is_some()
            });
            if !has_address {
                self.problems.push((
                    ns.loc,
                    format!(
                        "NS {} of {} is inside the zone but has no A or AAAA record (missing glue)",
                        ns.target, ns.owner
                    ),
                ));
            }
        }
    }

    /// Inserts every missing ancestor between a name and the apex as a node without records,
    /// so that "does this name exist" never needs a scan.
    fn add_empty_non_terminals(&mut self, apex_key: &[u8]) {
        let mut missing: Vec<NameKey> = Vec::new();
        for key in self.nodes.keys() {
            let mut current: &[u8] = key;
            while current.len() > apex_key.len() {
                let Some(parent) = parent_key(current) else {
                    break;
                };
                if parent.len() <= apex_key.len() || self.nodes.contains_key(parent) {
                    break;
                }
                missing.push(parent.into());
                current = parent;
            }
        }
        self.nodes.reserve(missing.len());
        for key in missing {
            self.nodes.entry(key).or_default();
        }
    }
}
