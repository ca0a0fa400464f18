//! Zone text in, a zone or `FILE:LINE` errors out, never a panic; and whatever loads answers
//! every lookup without panicking. Run with `cargo fuzz run zone_parse` (nightly) from the
//! repository root (needs a `[[bin]] name = "zone_parse"` entry in `fuzz/Cargo.toml`).
#![no_main]

use hickory_proto::rr::{Name, RecordType};
use libfuzzer_sys::fuzz_target;
use meridian::dns::handler::lookup_records;
use meridian::zone::Zone;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(origin) = Name::from_ascii("fuzz.example.") else {
        return;
    };
    match Zone::from_text(&origin, text) {
        Ok(zone) => {
            for qname in [
                "fuzz.example.",
                "www.fuzz.example.",
                "a.b.c.fuzz.example.",
                "x.*.fuzz.example.",
            ] {
                let Ok(qname) = Name::from_ascii(qname) else {
                    continue;
                };
                for qtype in [
                    RecordType::A,
                    RecordType::NS,
                    RecordType::DS,
                    RecordType::ANY,
                    RecordType::CNAME,
                ] {
                    let _ = lookup_records(&zone, &qname, qtype);
                }
            }
        }
        Err(errors) => assert!(!errors.0.is_empty(), "a failed load names its errors"),
    }
});
