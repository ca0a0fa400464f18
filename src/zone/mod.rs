//! The zone store: zone files in, validated immutable zones and authoritative answers out.
//!
//! ```text
//! dir/*.zone (+ $INCLUDE)
//!    |  read: split into entries, parse each (hickory txt::Parser), keep FILE:LINE
//!    v
//!  build: validate, store in one hash map keyed by lowercased wire name
//!    v                                   (empty non-terminals included)
//!  Zone --lookup(qname, qtype)--> Lookup         ZoneSet = every Zone of the directory,
//!                                                find(qname) = longest enclosing origin
//! ```
//!
//! - `read` splits the text into entries and parses each with hickory's `txt::Parser`
//!   (plain A/AAAA lines by a fast path with the same hickory functions), keeping the file
//!   and line of every record, and resolves `$INCLUDE` relative to the including file.
//! - `build` checks the zone (one SOA at the apex, apex NS, CNAME alone, nothing outside the
//!   zone, class IN, glue for in-zone NS targets) and stores it: every empty non-terminal is
//!   a node without records, so existence, closest encloser and zone cuts cost one hash
//!   lookup per label, whatever the zone's size.
//! - `lookup` answers one step of RFC 1034 4.3.2 with RFC 4592 wildcards, RFC 2308 negative
//!   answers and RFC 8482 minimal ANY.
//! - [`ZoneSet::load_dir`] loads the files of a directory (in parallel, one file per
//!   thread) and either returns every zone or every error of every file.
//!
//! This module reads files and nothing else: no sockets, no wire encoding, no clock. It does
//! not chase CNAMEs (the caller does, across zones and into the GSLB scheduler); for zone
//! transfers it hands out the records ([`Zone::transfer_records`]) and
//! [`crate::dns::transfer`] serves them.

mod build;
mod key;

pub(crate) use key::KeyHasher;
mod lookup;
mod read;

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

pub use self::key::QueryName;
use self::key::{NameKey, WireName};
pub use self::lookup::{Authority, Glue, Lookup};

/// One problem found while loading zones, located as precisely as the input allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneError {
    pub file: PathBuf,
    /// 1-based line of the offending entry, when the problem has one.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ZoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Every problem of every zone file of a load; a load either succeeds whole or returns this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ZoneErrors(pub Vec<ZoneError>);

impl fmt::Display for ZoneErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// The response code of a lookup, in the project's own terms (the wire maps it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    /// The name does not exist (RFC 1035 NXDOMAIN).
    NxDomain,
    /// The name is not in this zone at all.
    Refused,
    /// The zone cannot answer (a zone without its apex; never for a loaded zone).
    ServFail,
}

impl Rcode {
    /// The RFC 1035 code.
    pub fn code(self) -> u8 {
        match self {
            Rcode::NoError => 0,
            Rcode::ServFail => 2,
            Rcode::NxDomain => 3,
            Rcode::Refused => 5,
        }
    }
}

/// Type codes the lookup treats specially (RFC 1035, 3596, 2782, 4034, 1995/5936).
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const MX: u16 = 15;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const DS: u16 = 43;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const ANY: u16 = 255;
}

/// One RRset of a node: the records share owner, type and (RFC 2181 5.2) TTL. Lookups hand
/// out references to it; its record data is also kept in wire form so that an answer can be
/// copied out of the zone.
#[derive(Debug)]
pub struct RrSet {
    rtype: RecordType,
    ttl: u32,
    /// Line of the RRset's first record, for error messages.
    first_line: u32,
    rdatas: RDatas,
}

impl RrSet {
    /// The type code.
    pub fn rtype(&self) -> u16 {
        u16::from(self.rtype)
    }

    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.rdatas().len()
    }

    pub fn is_empty(&self) -> bool {
        self.rdatas().is_empty()
    }

    /// Each record's data in wire form (RFC 1035 3.3; names uncompressed, in the zone
    /// file's case), in zone order.
    pub fn wire_rdatas(&self) -> impl Iterator<Item = WireRData<'_>> {
        self.rdatas().iter().map(|rdata| match rdata {
            StoredRData::A(ip) => WireRData::Inline(ip.octets().into()),
            StoredRData::Aaaa(ip) => WireRData::Inline(ip.octets().into()),
            StoredRData::Other(other) => WireRData::Stored(&other.wire),
        })
    }

    /// Each record's data as hickory holds it, for the wire module's reference encoder.
    pub fn rdatas_hickory(&self) -> impl Iterator<Item = RData> + '_ {
        self.rdatas().iter().map(StoredRData::to_rdata)
    }

    fn rdatas(&self) -> &[StoredRData] {
        match &self.rdatas {
            RDatas::One(rdata) => std::slice::from_ref(rdata),
            RDatas::Many(rdatas) => rdatas,
        }
    }

    /// Adds `rdata` unless the set holds it already (RFC 2181 5: an RRset is a set).
    fn insert(&mut self, rdata: StoredRData) -> bool {
        if self.rdatas().contains(&rdata) {
            return false;
        }
        self.rdatas = match std::mem::replace(&mut self.rdatas, RDatas::Many(Box::new([]))) {
            RDatas::One(first) => RDatas::Many(Box::new([first, rdata])),
            RDatas::Many(rdatas) => {
                let mut grown = Vec::with_capacity(rdatas.len() + 1);
                grown.extend(rdatas);
                grown.push(rdata);
                RDatas::Many(grown.into_boxed_slice())
            }
        };
        true
    }
}

/// The records of an RRset. Most RRsets of a large zone hold one record: it is kept inline,
/// saving an allocation and 16 bytes per record.
#[derive(Debug)]
enum RDatas {
    One(StoredRData),
    Many(Box<[StoredRData]>),
}

/// One record's data in wire form: an address made on the spot, or bytes stored with it.
pub enum WireRData<'z> {
    Inline(InlineRData),
    Stored(&'z [u8]),
}

impl WireRData<'_> {
    pub fn bytes(&self) -> &[u8] {
        match self {
            WireRData::Inline(inline) => &inline.bytes[..usize::from(inline.len)],
            WireRData::Stored(bytes) => bytes,
        }
    }
}

/// The wire form of an A or AAAA record's data.
pub struct InlineRData {
    len: u8,
    bytes: [u8; 16],
}

impl From<[u8; 4]> for InlineRData {
    fn from(octets: [u8; 4]) -> Self {
        let mut bytes = [0; 16];
        bytes[..4].copy_from_slice(&octets);
        InlineRData { len: 4, bytes }
    }
}

impl From<[u8; 16]> for InlineRData {
    fn from(bytes: [u8; 16]) -> Self {
        InlineRData { len: 16, bytes }
    }
}

/// Record data as stored: addresses inline (24 bytes instead of hickory's 184-byte `RData`,
/// and most records of a large zone are addresses), everything else boxed with its wire
/// form, encoded once at load so that answering copies bytes instead of encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StoredRData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Other(Box<OtherRData>),
}

#[derive(Debug, Clone)]
struct OtherRData {
    rdata: RData,
    /// RFC 1035 wire form, names uncompressed and in the file's case.
    wire: Box<[u8]>,
}

impl PartialEq for OtherRData {
    fn eq(&self, other: &Self) -> bool {
        self.rdata == other.rdata
    }
}

impl Eq for OtherRData {}

impl StoredRData {
    fn new(rdata: RData) -> Self {
        match rdata {
            RData::A(a) => StoredRData::A(a.0),
            RData::AAAA(aaaa) => StoredRData::Aaaa(aaaa.0),
            other => {
                let mut wire = Vec::new();
                let mut encoder = BinEncoder::new(&mut wire);
                encoder.set_name_encoding(NameEncoding::Uncompressed);
                if other.emit(&mut encoder).is_err() {
                    // Never for data the parser produced; the wire encoder then finds no
                    // bytes and the hickory path (which fails the same way) answers.
                    wire.clear();
                }
                StoredRData::Other(Box::new(OtherRData {
                    rdata: other,
                    wire: wire.into_boxed_slice(),
                }))
            }
        }
    }

    fn to_rdata(&self) -> RData {
        match self {
            StoredRData::A(ip) => RData::A(A(*ip)),
            StoredRData::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
            StoredRData::Other(other) => other.rdata.clone(),
        }
    }

    /// The hickory form when it is stored as such (never for A and AAAA).
    fn as_rdata(&self) -> Option<&RData> {
        match self {
            StoredRData::Other(other) => Some(&other.rdata),
            _ => None,
        }
    }

    /// The wire form of a stored (non-address) record.
    fn wire(&self) -> Option<&[u8]> {
        match self {
            StoredRData::Other(other) => Some(&other.wire),
            _ => None,
        }
    }
}

/// One name of the zone. An empty non-terminal has no RRsets.
#[derive(Debug, Default)]
struct Node {
    /// Sorted by type code. Below the apex, NS among them makes the node a zone cut.
    rrsets: Box<[RrSet]>,
}

impl Node {
    fn rrset(&self, rtype: RecordType) -> Option<&RrSet> {
        self.rrsets.iter().find(|rrset| rrset.rtype == rtype)
    }
}

/// One loaded, validated zone. Immutable.
#[derive(Debug)]
pub struct Zone {
    origin: Name,
    origin_key: NameKey,
    /// The origin in wire form, in the case the zone file gave it (owner of the SOA).
    origin_wire: Box<[u8]>,
    origin_labels: usize,
    file: PathBuf,
    serial: u32,
    /// The SOA of negative answers, as an RRset of one (RFC 2308 TTL).
    negative_soa: RrSet,
    record_count: usize,
    nodes: HashMap<NameKey, Node, KeyHasher>,
}

impl Zone {
    /// A zone from what `build` validated.
    fn assemble(
        origin: Name,
        origin_key: NameKey,
        file: PathBuf,
        negative_soa: Record,
        record_count: usize,
        nodes: HashMap<NameKey, Node, KeyHasher>,
    ) -> Zone {
        let serial = match &negative_soa.data {
            RData::SOA(soa) => soa.serial,
            _ => 0,
        };
        let mut origin_wire = Vec::new();
        let mut encoder = BinEncoder::new(&mut origin_wire);
        encoder.set_name_encoding(NameEncoding::Uncompressed);
        let _ = origin.emit(&mut encoder);
        Zone {
            origin_labels: origin.iter().len(),
            origin_wire: origin_wire.into_boxed_slice(),
            origin_key,
            negative_soa: RrSet {
                rtype: RecordType::SOA,
                ttl: negative_soa.ttl,
                first_line: 0,
                rdatas: RDatas::One(StoredRData::new(negative_soa.data)),
            },
            origin,
            file,
            serial,
            record_count,
            nodes,
        }
    }

    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The origin as text, fully qualified, in the zone file's case ("example.com.").
    pub fn origin_text(&self) -> String {
        self.origin.to_string()
    }

    /// The origin in wire form, in the zone file's case.
    pub fn origin_wire(&self) -> &[u8] {
        &self.origin_wire
    }

    /// Whether the origin is `name`, written as text ("example.com." or "example.com",
    /// any case).
    pub fn is_named(&self, name: &str) -> bool {
        Name::from_ascii(name).is_ok_and(|n| n == self.origin)
    }

    /// The SOA serial.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// The top-level file the zone was loaded from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Number of resource records (duplicates in the file count once).
    pub fn record_count(&self) -> usize {
        self.record_count
    }

    /// Whether `name` exists in the zone: it owns records or is an empty non-terminal.
    pub fn name_exists(&self, name: &QueryName) -> bool {
        self.nodes.contains_key(name.bytes())
    }

    /// Parses and validates one zone from text, with `origin` unless the text sets
    /// `$ORIGIN` before its first record. `$INCLUDE` is refused: nothing is read from disk.
    /// For tests and fuzzing; errors name the file `<text>`.
    pub fn from_text(origin: &Name, text: &str) -> Result<Zone, ZoneErrors> {
        build::zone_from_text(origin, text).map_err(ZoneErrors)
    }

    /// The SOA for negative answers, TTL = min(SOA TTL, SOA MINIMUM) (RFC 2308 section 5);
    /// its owner is the origin.
    pub fn negative_soa(&self) -> &RrSet {
        &self.negative_soa
    }

    /// The apex SOA record as written in the zone file.
    pub fn soa(&self) -> Record {
        let apex_soa = self
            .nodes
            .get(&self.origin_key)
            .and_then(|apex| apex.rrset(RecordType::SOA));
        // Every loaded zone has exactly one SOA at its apex (checked by `build`).
        let (ttl, rdata) = apex_soa
            .and_then(|rrset| Some((rrset.ttl, rrset.rdatas().first()?)))
            .unwrap_or((self.negative_soa.ttl, &self.negative_soa.rdatas()[0]));
        Record::from_rdata(self.origin.clone(), ttl, rdata.to_rdata())
    }

    /// Every record but the SOA, for a zone transfer (RFC 5936: the caller sends the SOA
    /// first and last). Owner names are lowercased; the apex comes first, then names by
    /// label count and wire bytes, so that the order is the same on every transfer. Records
    /// are made as they are consumed: a large zone is never copied whole.
    pub fn transfer_records(&self) -> impl Iterator<Item = Record> + '_ {
        let mut owners: Vec<&NameKey> = self.nodes.keys().collect();
        owners.sort_by(|a, b| {
            key_label_count(a)
                .cmp(&key_label_count(b))
                .then_with(|| a[..].cmp(&b[..]))
        });
        owners.into_iter().flat_map(move |key| {
            let owner = name_of_key(key);
            let mut records = Vec::new();
            if let (Some(owner), Some(node)) = (owner, self.nodes.get(key)) {
                for rrset in node.rrsets.iter().filter(|r| r.rtype != RecordType::SOA) {
                    records.extend(
                        rrset
                            .rdatas_hickory()
                            .map(|rdata| Record::from_rdata(owner.clone(), rrset.ttl, rdata)),
                    );
                }
            }
            records
        })
    }
}

/// Labels of a lowercased wire name key (the root label not counted).
fn key_label_count(key: &[u8]) -> usize {
    let (mut count, mut at) = (0, 0);
    while let Some(&len) = key.get(at) {
        if len == 0 {
            break;
        }
        count += 1;
        at += 1 + usize::from(len);
    }
    count
}

/// The name a wire key stands for (`None` only for a key no zone could hold).
fn name_of_key(key: &[u8]) -> Option<Name> {
    let mut labels = Vec::new();
    let mut at = 0;
    while let Some(&len) = key.get(at) {
        if len == 0 {
            break;
        }
        labels.push(key.get(at + 1..at + 1 + usize::from(len))?);
        at += 1 + usize::from(len);
    }
    let mut name = Name::from_labels(labels).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// Every zone of a directory. Immutable; shared between threads as a whole.
#[derive(Debug, Default)]
pub struct ZoneSet {
    /// Sorted by origin.
    zones: Vec<Zone>,
    by_origin: HashMap<NameKey, usize, KeyHasher>,
    source_files: Vec<PathBuf>,
    record_count: usize,
}

impl ZoneSet {
    /// Loads every `*.zone` file directly in `dir`. The origin is the `$ORIGIN` in force at
    /// the file's first record, else the file name minus `.zone`. Either every file loads and
    /// validates, or every error of every file is returned.
    pub fn load_dir(dir: &Path) -> Result<ZoneSet, ZoneErrors> {
        let mut files = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|err| {
            ZoneErrors(vec![ZoneError {
                file: dir.to_path_buf(),
                line: None,
                message: format!("cannot read the zones directory: {err}"),
            }])
        })?;
        for entry in entries {
            let path = match entry {
                Ok(entry) => entry.path(),
                Err(err) => {
                    return Err(ZoneErrors(vec![ZoneError {
                        file: dir.to_path_buf(),
                        line: None,
                        message: format!("cannot list the zones directory: {err}"),
                    }]));
                }
            };
            if path.extension().is_some_and(|ext| ext == "zone") && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        Self::load_files(&files)
    }

    /// Loads the given zone files as one set (what [`load_dir`](Self::load_dir) does after
    /// listing the directory).
    pub fn load_files(files: &[PathBuf]) -> Result<ZoneSet, ZoneErrors> {
        let mut errors = Vec::new();
        let mut set = ZoneSet::default();
        let mut origin_files: HashMap<NameKey, PathBuf, KeyHasher> = HashMap::default();
        let mut zones = Vec::new();
        for (path, loaded) in files.iter().zip(load_all(files)) {
            for file in loaded.files {
                // A file included twice is watched once.
                if !set.source_files.contains(&file) {
                    set.source_files.push(file);
                }
            }
            match loaded.zone {
                Ok(zone) => {
                    if let Some(first) = origin_files.get(&zone.origin_key) {
                        errors.push(ZoneError {
                            file: path.clone(),
                            line: None,
                            message: format!(
                                "zone {} is already loaded from {}; each zone must come from one file",
                                zone.origin,
                                first.display()
                            ),
                        });
                        continue;
                    }
                    origin_files.insert(zone.origin_key.clone(), path.clone());
                    zones.push(zone);
                }
                Err(zone_errors) => errors.extend(zone_errors),
            }
        }
        if !errors.is_empty() {
            return Err(ZoneErrors(errors));
        }
        zones.sort_by(|a, b| a.origin.cmp(&b.origin));
        for (index, zone) in zones.iter().enumerate() {
            set.by_origin.insert(zone.origin_key.clone(), index);
            set.record_count += zone.record_count;
        }
        set.zones = zones;
        Ok(set)
    }

    /// The zone with the longest origin that is an ancestor-or-self of `qname`: one hash
    /// lookup per label of `qname`.
    pub fn find(&self, wire: &QueryName) -> Option<&Zone> {
        (0..=wire.label_count())
            .rev()
            .find_map(|labels| self.by_origin.get(wire.ancestor(labels)))
            .and_then(|&index| self.zones.get(index))
    }

    /// The zone whose origin is `origin`, written as text (any case, trailing dot or not).
    pub fn get_named(&self, origin: &str) -> Option<&Zone> {
        let name = Name::from_ascii(origin).ok()?;
        self.get(&LowerName::from(&name))
    }

    /// The zone whose origin is exactly `origin` (one hash lookup).
    pub fn get(&self, origin: &LowerName) -> Option<&Zone> {
        self.by_origin
            .get(WireName::new(origin).bytes())
            .and_then(|&index| self.zones.get(index))
    }

    /// The zone that answers `qname`/`qtype`: [`find`](Self::find), except that DS at a
    /// zone's apex belongs to the parent side of the cut (RFC 4035 3.1.4.1), so when the
    /// parent zone is hosted too, it answers.
    pub fn find_for_query(&self, qname: &QueryName, qtype: u16) -> Option<&Zone> {
        let zone = self.find(qname)?;
        let at_apex = zone.origin_key.len() == qname.bytes().len();
        if qtype == rtype::DS
            && at_apex
            && qname.label_count() > 0
            && let Some(parent) = self.find(&qname.parent())
        {
            return Some(parent);
        }
        Some(zone)
    }

    /// The zones, sorted by origin.
    pub fn zones(&self) -> impl Iterator<Item = &Zone> {
        self.zones.iter()
    }

    /// Every file read: the zone files and everything they `$INCLUDE`.
    pub fn source_files(&self) -> &[PathBuf] {
        &self.source_files
    }

    /// Resource records across all zones.
    pub fn record_count(&self) -> usize {
        self.record_count
    }

    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }
}

/// Loads every file, on up to `available_parallelism` threads (files are independent);
/// results in the order of `files`, so errors are reported deterministically.
fn load_all(files: &[PathBuf]) -> Vec<build::LoadedZone> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len())
        .min(MAX_LOAD_THREADS);
    if threads <= 1 {
        return files
            .iter()
            .map(|path| build::load_zone_file(path))
            .collect();
    }
    // Workers take the next file when done, so one large zone does not hold up the rest.
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<build::LoadedZone>> = files.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = files.get(index) else {
                            break;
                        };
                        done.push((index, build::load_zone_file(path)));
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(done) => {
                    for (index, loaded) in done {
                        if let Some(slot) = results.get_mut(index) {
                            *slot = Some(loaded);
                        }
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    results.into_iter().flatten().collect()
}

const MAX_LOAD_THREADS: usize = 8;

#[cfg(test)]
mod tests;
