//! Reading one zone file (and what it `$INCLUDE`s) into records, each with the file and line
//! it came from.
//!
//! hickory's `Parser` stops at the first error, carries no line numbers, and resolves
//! `$INCLUDE` without telling which files it read. So this module splits the text into
//! entries itself (an entry ends at a newline outside parentheses and quotes), handles the
//! `$ORIGIN`, `$TTL` and `$INCLUDE` directives itself, and hands each record entry to
//! hickory's `Parser` on its own, with the current origin, default TTL and owner. That gives
//! a line for every record and every error, every parse error of a file in one pass, and
//! RFC 1035 `$INCLUDE` scoping (the origin and owner revert after the included file).
//!
//! One-line A and AAAA records in plain ASCII, the bulk of any large zone, skip the per-entry
//! `Parser` and go through the same hickory functions it would call (see
//! `plain_address_record`); a test checks both paths agree.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use hickory_proto::rr::{Name, Record};
use hickory_proto::serialize::txt::{Parser, parse_ttl};

use super::ZoneError;
use super::key::WireName;

/// Where a record came from: an index into [`ReadFile::files`] and a 1-based line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Loc {
    pub(crate) file: u32,
    pub(crate) line: u32,
}

/// Receives each record as it is parsed, so a large zone is never held twice.
pub(crate) trait RecordSink {
    /// `zone_origin` is the zone's origin, known by the first record.
    fn record(&mut self, zone_origin: Option<&Name>, record: Record, loc: Loc);

    /// A plain A or AAAA record read by the fast path: its owner as a lowercased wire key
    /// (always inside `zone_origin`: the fast path takes relative owners only).
    fn address(
        &mut self,
        zone_origin: Option<&Name>,
        owner: &[u8],
        ttl: u32,
        address: IpAddr,
        loc: Loc,
    );

    /// About how many records are coming (a count of lines), to size tables once.
    fn expect(&mut self, _records: usize) {}
}

/// What reading one top-level zone file gives besides its records.
pub(crate) struct ReadFile {
    /// The zone's origin: the top-level `$ORIGIN` in force at the first record, else the
    /// default.
    pub(crate) origin: Option<Name>,
    /// The file itself first, then every included file in the order read.
    pub(crate) files: Vec<PathBuf>,
    pub(crate) errors: Vec<ZoneError>,
    /// The top-level file could not be read at all.
    pub(crate) unreadable: bool,
}

impl ReadFile {
    pub(crate) fn error_at(&mut self, loc: Loc, message: String) {
        let file = self
            .files
            .get(loc.file as usize)
            .cloned()
            .unwrap_or_default();
        self.errors.push(ZoneError {
            file,
            line: Some(loc.line as usize),
            message,
        });
    }
}

/// Nesting limit for `$INCLUDE`, which also stops include cycles.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Relative-name context that `$INCLUDE` saves and restores (RFC 1035 section 5.1).
#[derive(Clone, Default)]
struct Cursor {
    origin: Option<Name>,
    /// `origin` as a lowercased wire key, for the fast path.
    origin_key: Vec<u8>,
    last_owner: Owner,
}

impl Cursor {
    fn at(origin: Option<Name>) -> Cursor {
        let mut cursor = Cursor::default();
        cursor.set_origin(origin);
        cursor
    }

    fn set_origin(&mut self, origin: Option<Name>) {
        self.origin_key.clear();
        if let Some(origin) = &origin {
            self.origin_key
                .extend_from_slice(WireName::new(origin).bytes());
        }
        self.origin = origin;
    }

    /// The previous record's owner as a name, for a record that inherits it.
    fn last_owner_name(&self) -> Option<Name> {
        match &self.last_owner {
            Owner::None => None,
            Owner::Name(name) => Some(name.clone()),
            Owner::Key(key) => super::name_of_key(key),
        }
    }
}

/// The owner of the previous record: as parsed, or as the fast path's wire key (which
/// becomes a name only if a later record inherits it and needs the parser).
#[derive(Clone, Default)]
enum Owner {
    #[default]
    None,
    Name(Name),
    Key(Vec<u8>),
}

struct Reader<'s> {
    out: ReadFile,
    sink: &'s mut dyn RecordSink,
    /// `$TTL`, shared across includes.
    default_ttl: Option<u32>,
    /// TTL of the previous record, the default when there is no `$TTL` (RFC 1035).
    last_ttl: Option<u32>,
    seen_record: bool,
    zone_origin: Option<Name>,
    include_stack: Vec<PathBuf>,
    allow_include: bool,
    /// Reused for the owner key of each fast-path record.
    owner_scratch: Vec<u8>,
}

/// Reads `path` with `default_origin` (from the file name) as the initial origin.
pub(crate) fn read_zone_file(
    path: &Path,
    default_origin: Option<Name>,
    sink: &mut dyn RecordSink,
) -> ReadFile {
    match std::fs::read_to_string(path) {
        Ok(text) => read_zone_text(path, &text, default_origin, true, sink),
        Err(err) => ReadFile {
            origin: None,
            files: vec![path.to_path_buf()],
            errors: vec![ZoneError {
                file: path.to_path_buf(),
                line: None,
                message: format!("cannot read the zone file: {err}"),
            }],
            unreadable: true,
        },
    }
}

/// Reads zone `text` as if it were the file `path`. Without `allow_include`, `$INCLUDE` is
/// an error (for text that does not come from the operator's directory, e.g. fuzzing).
pub(crate) fn read_zone_text(
    path: &Path,
    text: &str,
    default_origin: Option<Name>,
    allow_include: bool,
    sink: &mut dyn RecordSink,
) -> ReadFile {
    let mut reader = Reader {
        out: ReadFile {
            origin: None,
            files: Vec::new(),
            errors: Vec::new(),
            unreadable: false,
        },
        sink,
        default_ttl: None,
        last_ttl: None,
        seen_record: false,
        zone_origin: default_origin.clone(),
        include_stack: Vec::new(),
        allow_include,
        owner_scratch: Vec::new(),
    };
    let mut cursor = Cursor::at(default_origin.clone());
    reader.read_text(path, text, &mut cursor);
    let mut out = reader.out;
    out.origin = reader.zone_origin;
    out
}

impl Reader<'_> {
    fn read_text(&mut self, path: &Path, text: &str, cursor: &mut Cursor) {
        let file = self.out.files.len() as u32;
        self.out.files.push(path.to_path_buf());
        self.include_stack.push(path.to_path_buf());
        // Editors on Windows start files with a byte order mark; it is not zone text.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        self.sink
            .expect(text.bytes().filter(|&b| b == b'\n').count());
        for entry in Entries::new(text) {
            let loc = Loc {
                file,
                line: entry.line,
            };
            let body = entry.text.trim_start();
            if body.is_empty() || body.starts_with(';') {
                continue;
            }
            if let Some(directive) = entry.text.strip_prefix('$') {
                self.directive(path, directive, loc, cursor);
            } else {
                self.record(entry.text, loc, cursor);
            }
        }
        self.include_stack.pop();
    }

    fn directive(&mut self, path: &Path, directive: &str, loc: Loc, cursor: &mut Cursor) {
        let mut words = directive
            .split_whitespace()
            .take_while(|word| !word.starts_with(';'));
        let keyword = words.next().unwrap_or_default();
        let args: Vec<&str> = words.collect();
        match (keyword.to_ascii_uppercase().as_str(), args.as_slice()) {
            ("ORIGIN", [name]) => match Name::parse(name, cursor.origin.as_ref()) {
                Ok(mut origin) => {
                    origin.set_fqdn(true);
                    if !self.seen_record && self.include_stack.len() == 1 {
                        self.zone_origin = Some(origin.clone());
                    }
                    cursor.set_origin(Some(origin));
                }
                Err(err) => self
                    .out
                    .error_at(loc, format!("invalid $ORIGIN name {name:?}: {err}")),
            },
            ("TTL", [ttl]) => match parse_ttl(ttl) {
                Ok(ttl) => self.default_ttl = Some(ttl),
                Err(err) => self.out.error_at(loc, format!("invalid $TTL {ttl:?}: {err}")),
            },
            ("INCLUDE", [file]) => self.include(path, file, None, loc, cursor),
            ("INCLUDE", [file, origin]) => {
                match Name::parse(origin, cursor.origin.as_ref()) {
                    Ok(mut origin) => {
                        origin.set_fqdn(true);
                        self.include(path, file, Some(origin), loc, cursor);
                    }
                    Err(err) => self.out.error_at(
                        loc,
                        format!("invalid origin {origin:?} for $INCLUDE: {err}"),
                    ),
                }
            }
            ("ORIGIN" | "TTL" | "INCLUDE", _) => self.out.error_at(
                loc,
                format!("${keyword} takes {}", directive_usage(keyword)),
            ),
            _ => self.out.error_at(
                loc,
                format!(
                    "unsupported directive ${keyword}: only $ORIGIN, $TTL and $INCLUDE are supported"
                ),
            ),
        }
    }

    fn include(
        &mut self,
        including: &Path,
        file: &str,
        origin: Option<Name>,
        loc: Loc,
        cursor: &Cursor,
    ) {
        if !self.allow_include {
            self.out
                .error_at(loc, "$INCLUDE is not allowed in this zone text".to_owned());
            return;
        }
        let file = file.trim_matches('"');
        // Relative to the including file, not to the working directory.
        let target = match including.parent() {
            Some(dir) => dir.join(file),
            None => PathBuf::from(file),
        };
        if self.include_stack.len() > MAX_INCLUDE_DEPTH {
            self.out.error_at(
                loc,
                format!("$INCLUDE nested more than {MAX_INCLUDE_DEPTH} deep"),
            );
            return;
        }
        if self.include_stack.contains(&target) {
            self.out.error_at(
                loc,
                format!("$INCLUDE {} includes itself", target.display()),
            );
            return;
        }
        match std::fs::read_to_string(&target) {
            Ok(text) => {
                let mut inner = Cursor::at(origin.or_else(|| cursor.origin.clone()));
                self.read_text(&target, &text, &mut inner);
            }
            Err(err) => self.out.error_at(
                loc,
                format!("cannot read $INCLUDE file {}: {err}", target.display()),
            ),
        }
    }

    fn record(&mut self, text: &str, loc: Loc, cursor: &mut Cursor) {
        self.seen_record = true;
        let inherits_owner = text.starts_with(|c: char| c.is_whitespace());
        if self.plain_address_record(text, inherits_owner, loc, cursor) {
            return;
        }
        let mut source = String::with_capacity(text.len() + 48);
        if let Some(ttl) = self.default_ttl.or(self.last_ttl) {
            // Infallible: writing to a String.
            let _ = writeln!(source, "$TTL {ttl}");
        }
        if inherits_owner && let Some(owner) = cursor.last_owner_name() {
            source.push_str(&owner.to_ascii());
        }
        source.push_str(text);
        source.push('\n');

        let parsed = Parser::new(source, None, cursor.origin.clone()).parse();
        let records = match parsed {
            Ok((_, records)) => records,
            Err(err) => {
                if !inherits_owner {
                    // Keep following lines that inherit the owner attributed correctly.
                    let owner = text.split_whitespace().next().unwrap_or_default();
                    let owner = match owner {
                        "@" => cursor.origin.clone(),
                        _ => Name::parse(owner, cursor.origin.as_ref()).ok(),
                    };
                    cursor.last_owner = owner.map_or(Owner::None, Owner::Name);
                }
                self.out
                    .error_at(loc, format!("cannot parse record: {err}"));
                return;
            }
        };
        for rrset in records.into_values() {
            for record in rrset.into_parts().records {
                self.accept(record, loc, cursor);
            }
        }
    }

    fn accept(&mut self, record: Record, loc: Loc, cursor: &mut Cursor) {
        cursor.last_owner = Owner::Name(record.name.clone());
        self.last_ttl = Some(record.ttl);
        self.sink.record(self.zone_origin.as_ref(), record, loc);
    }

    /// The fast path for the bulk of large zones: a one-line A or AAAA record in plain
    /// printable ASCII (no quotes, parentheses, comments or escapes) whose owner is `@`,
    /// inherited, or a name in the zone of plain labels (see `owner_key`). It makes the
    /// parser's decisions (hickory's `parse_ttl`, the standard address parsers) but builds
    /// neither a parser nor a hickory `Name` or `Record`: the owner goes straight into the
    /// lowercased wire key the zone is stored by. That takes a million-host zone's load
    /// from ~1.8 s to about half. Returns false, having done nothing, for anything else
    /// (and for any error): the parser then reads the entry and gives the message.
    fn plain_address_record(
        &mut self,
        text: &str,
        inherits_owner: bool,
        loc: Loc,
        cursor: &mut Cursor,
    ) -> bool {
        let mut owner = std::mem::take(&mut self.owner_scratch);
        let Some((ttl, address)) = self.plain_address(text, inherits_owner, cursor, &mut owner)
        else {
            self.owner_scratch = owner;
            return false;
        };
        self.last_ttl = Some(ttl);
        self.sink
            .address(self.zone_origin.as_ref(), &owner, ttl, address, loc);
        // The previous owner's buffer becomes the next scratch: no allocation per record.
        self.owner_scratch = match std::mem::replace(&mut cursor.last_owner, Owner::Key(owner)) {
            Owner::Key(previous) => previous,
            _ => Vec::new(),
        };
        true
    }

    /// What [`plain_address_record`](Self::plain_address_record) reads: the owner's key
    /// (into `owner`), the TTL and the address, or `None` when the entry is for the parser.
    fn plain_address(
        &self,
        text: &str,
        inherits_owner: bool,
        cursor: &Cursor,
        owner: &mut Vec<u8>,
    ) -> Option<(u32, IpAddr)> {
        let plain = text.bytes().all(|b| {
            matches!(b, b'\t' | b' '..=b'~') && !matches!(b, b'"' | b'(' | b')' | b';' | b'\\')
        });
        if !plain || cursor.origin.is_none() {
            return None;
        }
        let mut tokens = text.split_ascii_whitespace();
        owner.clear();
        if inherits_owner {
            match &cursor.last_owner {
                Owner::Key(key) => owner.extend_from_slice(key),
                Owner::Name(name) => owner.extend_from_slice(WireName::new(name).bytes()),
                Owner::None => return None,
            }
        } else {
            match tokens.next()? {
                "@" => owner.extend_from_slice(&cursor.origin_key),
                token => owner_key(token, &cursor.origin_key, owner)?,
            }
        }
        let mut ttl = None;
        let is_v4 = loop {
            let token = tokens.next()?;
            if let Ok(explicit) = parse_ttl(token) {
                ttl = Some(explicit);
            } else if token.eq_ignore_ascii_case("IN") {
                continue;
            } else if token.eq_ignore_ascii_case("A") {
                break true;
            } else if token.eq_ignore_ascii_case("AAAA") {
                break false;
            } else {
                return None;
            }
        };
        let address = tokens.next()?;
        if tokens.next().is_some() {
            return None;
        }
        let address = if is_v4 {
            IpAddr::V4(address.parse().ok()?)
        } else {
            IpAddr::V6(address.parse().ok()?)
        };
        let ttl = ttl.or(self.default_ttl).or(self.last_ttl)?;
        Some((ttl, address))
    }
}

/// The lowercased wire key of an owner name, relative to the origin with key `origin_key`
/// or absolute and inside it, when every label is plain (letters, digits and `-`; `_` too
/// in a label that starts with it; a lone `*` in front) and the name fits; `None` sends the entry to the parser, which
/// decides (and reports a name outside the zone).
fn owner_key(token: &str, origin_key: &[u8], key: &mut Vec<u8>) -> Option<()> {
    let (labels, absolute) = match token.strip_suffix('.') {
        Some(labels) => (labels, true),
        None => (token, false),
    };
    if labels.is_empty() {
        return None;
    }
    for (index, label) in labels.split('.').enumerate() {
        // hickory's rules: `*` is the wildcard; a label starting with `_` (SRV style) may
        // hold letters, digits, `-` and `_`; any other goes through IDNA, which keeps
        // letters, digits and `-` (lowercased; not `-` first) and decodes `xn--` (left to
        // the parser).
        let srv_style = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        let host_style = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
        let plain = !label.is_empty()
            && label.len() <= 63
            && !label
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("xn--"))
            && (label == "*" && index == 0
                || label.starts_with('_') && label.bytes().all(srv_style)
                || !label.starts_with('-') && label.bytes().all(host_style));
        if !plain {
            return None;
        }
        key.push(label.len() as u8);
        key.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    if absolute {
        key.push(0);
        if !ends_with_name(key, origin_key) {
            return None;
        }
    } else {
        key.extend_from_slice(origin_key);
    }
    (key.len() <= 255).then_some(())
}

/// Whether the wire key `key` is `suffix` or a name below it (compared at label
/// boundaries, never inside a label).
fn ends_with_name(key: &[u8], suffix: &[u8]) -> bool {
    let mut at = 0;
    loop {
        if key[at..] == *suffix {
            return true;
        }
        match key.get(at) {
            Some(&len) if len > 0 => at += 1 + usize::from(len),
            _ => return false,
        }
        if at >= key.len() {
            return false;
        }
    }
}

fn directive_usage(keyword: &str) -> &'static str {
    match keyword.to_ascii_uppercase().as_str() {
        "ORIGIN" => "one domain name",
        "TTL" => "one TTL",
        _ => "a file name and an optional origin",
    }
}

/// One entry of a zone file: a directive or a record, possibly over several lines when
/// parenthesised. `text` excludes the final newline.
struct Entry<'a> {
    line: u32,
    text: &'a str,
}

/// Splits zone text into entries the way hickory's lexer groups tokens: `;` starts a comment
/// to the end of the line, `"` quotes (outside parentheses; `\` escapes inside quotes), and
/// a newline ends the entry unless inside parentheses or quotes.
struct Entries<'a> {
    text: &'a str,
    pos: usize,
    line: u32,
}

impl<'a> Entries<'a> {
    fn new(text: &'a str) -> Self {
        Entries {
            text,
            pos: 0,
            line: 1,
        }
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        let bytes = self.text.as_bytes();
        if self.pos >= bytes.len() {
            return None;
        }
        let start = self.pos;
        let first_line = self.line;
        let mut depth = 0u32;
        let mut in_quote = false;
        let mut in_comment = false;
        let mut i = start;
        while i < bytes.len() {
            let byte = bytes[i];
            if byte == b'\n' {
                self.line += 1;
                in_comment = false;
                if depth == 0 && !in_quote {
                    self.pos = i + 1;
                    let end = if i > start && bytes[i - 1] == b'\r' {
                        i - 1
                    } else {
                        i
                    };
                    return Some(Entry {
                        line: first_line,
                        text: &self.text[start..end],
                    });
                }
            } else if in_comment {
                // Skipped to the end of the line.
            } else if in_quote {
                match byte {
                    b'\\' => {
                        if bytes.get(i + 1) == Some(&b'\n') {
                            self.line += 1;
                        }
                        i += 1;
                    }
                    b'"' => in_quote = false,
                    _ => {}
                }
            } else {
                match byte {
                    b';' => in_comment = true,
                    b'"' if depth == 0 => in_quote = true,
                    b'(' => depth += 1,
                    b')' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
            i += 1;
        }
        self.pos = bytes.len();
        Some(Entry {
            line: first_line,
            text: &self.text[start..],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::RData;

    struct Collect(Vec<Record>);

    impl RecordSink for Collect {
        fn record(&mut self, _: Option<&Name>, record: Record, _: Loc) {
            self.0.push(record);
        }

        fn address(&mut self, _: Option<&Name>, _: &[u8], _: u32, _: IpAddr, _: Loc) {}
    }

    /// The fast path must give exactly what hickory's `Parser` gives, or step aside.
    #[test]
    fn plain_address_fast_path_matches_the_parser() {
        let origin = Name::from_ascii("example.org.").expect("origin");
        let last_owner = Name::from_ascii("prev.example.org.").expect("owner");
        let lines = [
            "host A 192.0.2.1",
            "Host.Sub 300 IN A 192.0.2.2",
            "host IN 1h a 192.0.2.3",
            "@ AAAA 2001:DB8::1",
            "Abs.Example.ORG. in aaaa ::ffff:192.0.2.4",
            "*.wild 1w2d A 192.0.2.5",
            "\t A 192.0.2.6",
            "  60 AAAA 2001:db8::6",
            "_srv._tcp A 192.0.2.8",
            "a-b.C-.9 A 192.0.2.9",
            "_Srv_x._tcp-1 A 192.0.2.10",
        ];
        let mut collect = Collect(Vec::new());
        let mut reader = Reader {
            out: ReadFile {
                origin: None,
                files: Vec::new(),
                errors: Vec::new(),
                unreadable: false,
            },
            sink: &mut collect,
            default_ttl: Some(3600),
            last_ttl: Some(60),
            seen_record: true,
            zone_origin: Some(origin.clone()),
            include_stack: Vec::new(),
            allow_include: false,
            owner_scratch: Vec::new(),
        };
        let mut cursor = Cursor::at(Some(origin.clone()));
        cursor.last_owner = Owner::Name(last_owner.clone());
        for line in lines {
            let line = line.replace("\\t", "\t");
            let inherits = line.starts_with(char::is_whitespace);
            let mut key = Vec::new();
            let (ttl, address) = reader
                .plain_address(&line, inherits, &cursor, &mut key)
                .unwrap_or_else(|| panic!("{line:?} should take the fast path"));
            let mut source = String::from("$TTL 3600\n");
            if inherits {
                source.push_str(&last_owner.to_ascii());
            }
            source.push_str(&line);
            let (_, parsed) = Parser::new(source, None, Some(origin.clone()))
                .parse()
                .expect("parser accepts it");
            let parsed: Vec<Record> = parsed
                .into_values()
                .flat_map(|rrset| rrset.into_parts().records)
                .collect();
            assert_eq!(parsed.len(), 1);
            let expected = &parsed[0];
            assert_eq!(
                key,
                WireName::new(&expected.name).bytes(),
                "{line:?}: owner"
            );
            assert_eq!(ttl, expected.ttl, "{line:?}: ttl");
            let expected_address = match &expected.data {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
                other => panic!("{line:?}: parsed as {other:?}"),
            };
            assert_eq!(address, expected_address, "{line:?}: address");
        }
        for line in [
            "t TXT \"x\"",
            "h A 192.0.2.1 ; comment",
            "h CH A 192.0.2.1",
            "h A 192.0.2",
            "h A 192.0.2.1 extra",
            "h MX 10 mail",
            "h@x A 192.0.2.1",
            "abs.example.net. A 192.0.2.1",
            "other.example.org.evil. A 192.0.2.1",
            "xn--bcher-kva A 192.0.2.7",
            "a..b A 192.0.2.1",
            "a.*.b A 192.0.2.1",
            "c_d A 192.0.2.1",
            "-c A 192.0.2.1",
        ] {
            assert!(
                reader
                    .plain_address(line, false, &cursor, &mut Vec::new())
                    .is_none(),
                "{line:?} is for the parser"
            );
        }
        reader.last_ttl = None;
        reader.default_ttl = None;
        assert!(
            reader
                .plain_address("h A 192.0.2.1", false, &cursor, &mut Vec::new())
                .is_none()
        );
    }

    fn entries(text: &str) -> Vec<(u32, &str)> {
        Entries::new(text).map(|e| (e.line, e.text)).collect()
    }

    #[test]
    fn entries_follow_parentheses_quotes_and_comments() {
        let text = "a A 1.2.3.4\n\
                    @ SOA ns h ( 1 ; serial )\n 2 3 4 5 )\n\
                    t TXT \"x;y\n(z\"\n\
                    last A 1.1.1.1";
        assert_eq!(
            entries(text),
            vec![
                (1, "a A 1.2.3.4"),
                (2, "@ SOA ns h ( 1 ; serial )\n 2 3 4 5 )"),
                (4, "t TXT \"x;y\n(z\""),
                (6, "last A 1.1.1.1"),
            ]
        );
    }

    #[test]
    fn crlf_line_endings() {
        assert_eq!(
            entries("a A 1.2.3.4\r\nb A 1.2.3.5\r\n"),
            vec![(1, "a A 1.2.3.4"), (2, "b A 1.2.3.5")]
        );
    }
}
