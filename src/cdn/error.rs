//! The `cdn.toml` error type: every problem found, each naming file, line and entry.

use std::fmt;
use std::path::PathBuf;

/// What kind of problem a [`CdnError`] is (for callers and tests; the message says more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The file could not be read.
    Read,
    /// TOML syntax, an unknown field, a missing required field or a wrongly typed value.
    Syntax,
    /// The same accelerated domain twice (the console's `DomainAlreadyExist`).
    DomainAlreadyExist,
    /// An origin site domain that an accelerated domain matches: a DNS resolution loop.
    OriginLoop,
    /// A wildcard other than a whole leftmost `*.` label.
    BadWildcard,
    /// An internationalised (IDN / non-ASCII) name.
    NonAsciiName,
    /// Any other malformed name.
    InvalidName,
    /// More domains than `[cdn].max_domains`.
    TooManyDomains,
    /// `icp` missing for a `mainland` or `global` domain.
    IcpRequired,
    /// A country code the centroid table does not know.
    UnknownCountry,
    /// An edge with neither an IPv4 nor an IPv6 address.
    EdgeWithoutAddress,
    /// Two edges with one name.
    DuplicateEdge,
    /// `[cdn].suffix` is not inside `[cdn].zone`.
    SuffixOutsideZone,
    /// A value out of range or malformed (durations, ports, addresses, URLs, ...).
    InvalidValue,
    /// Not an error: the configuration works but probably not as intended.
    Warning,
}

/// The entry of `cdn.toml` a problem belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Cdn,
    Health,
    Edge(String),
    Domain(String),
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Cdn => f.write_str("[cdn]"),
            Entry::Health => f.write_str("[health]"),
            Entry::Edge(name) => write!(f, "[edge {name:?}]"),
            Entry::Domain(name) => write!(f, "[domain {name:?}]"),
        }
    }
}

/// One problem in `cdn.toml`. Displays as `FILE:LINE: [entry "name"] message` (without
/// `:LINE` when no line is known, without the entry for file-level problems).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CdnError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub entry: Option<Entry>,
    pub kind: ErrorKind,
    pub message: String,
}

impl fmt::Display for CdnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if let Some(entry) = &self.entry {
            write!(f, "{entry} ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one `cdn.toml`, in file order as far as possible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CdnErrors(pub Vec<CdnError>);

impl CdnErrors {
    /// True if any problem is of `kind`.
    pub fn has(&self, kind: ErrorKind) -> bool {
        self.0.iter().any(|e| e.kind == kind)
    }
}

impl fmt::Display for CdnErrors {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}
