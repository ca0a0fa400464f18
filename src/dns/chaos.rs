//! CHAOS-class TXT queries that tell an operator which server answered and what it runs,
//! as NSD, Knot and BIND answer them: `dig CH TXT id.server` (or `hostname.bind`) gives the
//! server's identity, `version.bind` (or `version.server`) its version. With several
//! Meridian servers behind one anycast address, the identity says which one a client reached.
//!
//! The identity is per process: [`configure`] sets it once at startup (`--identity`,
//! `--hide-version`); until then the host name and the version are answered.

use std::sync::OnceLock;

use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

/// What CHAOS queries reveal.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Answered to `id.server` and `hostname.bind`.
    pub id: String,
    /// Answered to `version.bind` and `version.server`; `None` refuses them.
    pub version: Option<String>,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            id: host_name(),
            version: Some(format!("Meridian {}", env!("CARGO_PKG_VERSION"))),
        }
    }
}

static IDENTITY: OnceLock<Identity> = OnceLock::new();

/// Sets the process's identity; the first call wins (later ones are ignored).
pub fn configure(identity: Identity) {
    let _ = IDENTITY.set(identity);
}

fn identity() -> &'static Identity {
    IDENTITY.get_or_init(Identity::default)
}

/// The answer to a CHAOS-class query: `Some(records)` for one of the identity names asked
/// with TXT or ANY, `None` for anything else (the caller refuses it, as for other classes).
pub fn answer(qname: &Name, qtype: RecordType) -> Option<Vec<Record>> {
    if !matches!(qtype, RecordType::TXT | RecordType::ANY) {
        return None;
    }
    let lower = LowerName::new(qname).to_string();
    let text = match lower.as_str() {
        "id.server." | "hostname.bind." => identity().id.clone(),
        "version.bind." | "version.server." => identity().version.clone()?,
        _ => return None,
    };
    let mut record = Record::from_rdata(qname.clone(), 0, RData::TXT(TXT::new(vec![text])));
    record.dns_class = DNSClass::CH;
    Some(vec![record])
}

/// The machine's host name (empty when the system will not say).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    #[test]
    fn identity_names_answer_txt_in_class_chaos_and_nothing_else_does() {
        let id = answer(&name("ID.Server."), RecordType::TXT).unwrap();
        assert_eq!(id.len(), 1);
        assert_eq!(id[0].dns_class, DNSClass::CH);
        assert!(answer(&name("hostname.bind."), RecordType::ANY).is_some());
        assert!(answer(&name("id.server."), RecordType::A).is_none());
        assert!(answer(&name("authors.bind."), RecordType::TXT).is_none());
    }
}
