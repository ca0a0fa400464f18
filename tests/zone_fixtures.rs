//! The zone store on fixture directories, as `meridian check` and the server see them.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use hickory_proto::rr::{Name, RecordType};
use meridian::dns::handler::lookup_records;
use meridian::zone::{QueryName, Rcode, ZoneSet};

fn fixtures(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/zones")
        .join(dir)
}

fn name(text: &str) -> Name {
    Name::from_str(text).expect("name")
}

#[test]
fn good_directory_loads_with_includes_and_answers() {
    let dir = fixtures("good");
    let set = ZoneSet::load_dir(&dir).unwrap_or_else(|errors| panic!("{errors}"));

    let origins: Vec<String> = set.zones().map(|z| z.origin().to_ascii()).collect();
    assert_eq!(origins, vec!["example.com.", "sub.example.com."]);
    assert_eq!(
        set.source_files(),
        &[
            dir.join("example.com.zone"),
            dir.join("includes/web.inc"),
            dir.join("sub.example.com.zone"),
        ]
    );
    let parent = set.zones().next().expect("example.com");
    assert_eq!(parent.serial(), 2024060101);
    // SOA TTL 1h, MINIMUM 5m.
    assert_eq!(parent.negative_soa().ttl(), 300);

    let ask = |qname: &str, qtype| {
        let qname = name(qname);
        let zone = set
            .find(&QueryName::from_labels(qname.iter()))
            .expect("zone");
        lookup_records(zone, &qname, qtype)
    };
    let web = ask("web.example.com.", RecordType::A);
    assert_eq!(web.answers.len(), 2);
    assert!(web.answers.iter().all(|r| r.ttl == 300));

    // The wildcard answers unknown users; alice exists, so her A is NODATA.
    assert_eq!(
        ask("bob.users.example.com.", RecordType::A).answers.len(),
        1
    );
    let alice = ask("alice.users.example.com.", RecordType::A);
    assert_eq!(alice.rcode, Rcode::NoError);
    assert!(alice.answers.is_empty());

    // The delegated child is a referral from the parent; the hosted sub zone answers itself.
    assert!(!ask("www.shop.example.com.", RecordType::A).authoritative);
    let sub = ask("ns.sub.example.com.", RecordType::A);
    assert!(sub.authoritative);
    assert_eq!(sub.answers.len(), 1);
    assert_eq!(
        ask("nothing.example.com.", RecordType::A).rcode,
        Rcode::NxDomain
    );
}

#[test]
fn bad_directory_reports_every_error_as_file_line_message() {
    let dir = fixtures("bad");
    let errors = ZoneSet::load_dir(&dir).expect_err("bad zones must not load");
    let text = errors.to_string();
    let alpha = dir.join("alpha.example.zone").display().to_string();
    let beta = dir.join("beta.example.zone").display().to_string();
    let lines: Vec<&str> = text.lines().collect();
    let expected_prefixes = [
        format!("{alpha}:4: NS ns-missing.alpha.example. of alpha.example. is inside the zone"),
        format!("{alpha}:7: www.alpha.example. has A data and a CNAME (line 6)"),
        format!("{alpha}:8: stray.example.org. is outside the zone alpha.example."),
        format!("{alpha}:9: cannot parse record:"),
        format!("{beta}:4: unsupported directive $GENERATE"),
        format!("{beta}: no SOA record at the zone apex beta.example."),
    ];
    assert_eq!(lines.len(), expected_prefixes.len(), "{text}");
    for (line, prefix) in lines.iter().zip(&expected_prefixes) {
        assert!(
            line.starts_with(prefix.as_str()),
            "{line:?} should start with {prefix:?}\n{text}"
        );
    }
}
