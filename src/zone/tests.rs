//! Behaviour of the zone store as a DNS client would see it.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::rr::rdata::{A, AAAA};

use super::*;
use crate::dns::handler::{LookupRecords, lookup_records};

const EXAMPLE: &str = r#"$ORIGIN example.com.
$TTL 3600
@   IN SOA ns1 hostmaster (
        2024010101 ; serial
        7200 3600 1209600
        300 )      ; minimum
    IN NS ns1
    IN NS ns2.example.net.
    IN MX 10 mail
    IN MX 20 mail.example.net.
    IN A 192.0.2.1
ns1 IN A 192.0.2.53
mail IN A 192.0.2.25
mail IN AAAA 2001:db8::25
www IN CNAME web
web IN A 192.0.2.80
foo IN TXT "foo"
*   IN A 192.0.2.99
*.deep IN A 192.0.2.100
sub.deep IN A 192.0.2.101
a.b.ent IN A 192.0.2.102
*.wc IN CNAME web
_sip._tcp IN SRV 10 5 5060 sipserver
sipserver IN A 192.0.2.60
child IN NS ns.child
child IN NS ns.elsewhere.net.
ns.child IN A 192.0.2.200
ns.child IN AAAA 2001:db8::200
"#;

/// Case-preserving (`Name::from_str` goes through IDNA, which lowercases).
fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("test name")
}

fn write_files(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (file, text) in files {
        let path = dir.path().join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write zone");
    }
    dir
}

fn load(files: &[(&str, &str)]) -> ZoneSet {
    let dir = write_files(files);
    match ZoneSet::load_dir(dir.path()) {
        Ok(set) => set,
        Err(errors) => panic!("zones should load:\n{errors}"),
    }
}

fn load_errors(files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<ZoneError>) {
    let dir = write_files(files);
    match ZoneSet::load_dir(dir.path()) {
        Ok(_) => panic!("zones should not load"),
        Err(errors) => (dir, errors.0),
    }
}

fn example() -> ZoneSet {
    load(&[("example.com.zone", EXAMPLE)])
}

fn ask(set: &ZoneSet, qname: &str, qtype: RecordType) -> LookupRecords {
    let qname = name(qname);
    let zone = set
        .find(&QueryName::new(&qname))
        .expect("a zone for the name");
    lookup_records(zone, &qname, qtype)
}

fn a(ip: [u8; 4]) -> RData {
    RData::A(A(Ipv4Addr::from(ip)))
}

fn rdatas(records: &[Record]) -> Vec<RData> {
    records.iter().map(|r| r.data.clone()).collect()
}

fn owners(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.name.to_ascii()).collect()
}

fn types(records: &[Record]) -> Vec<RecordType> {
    records.iter().map(|r| r.record_type()).collect()
}

fn assert_negative(lookup: &LookupRecords, rcode: Rcode) {
    assert_eq!(lookup.rcode, rcode);
    assert!(lookup.authoritative);
    assert!(lookup.answers.is_empty(), "{:?}", lookup.answers);
    assert_eq!(types(&lookup.authority), vec![RecordType::SOA]);
    assert_eq!(lookup.authority[0].name, name("example.com."));
    // RFC 2308: min(SOA TTL 3600, MINIMUM 300).
    assert_eq!(lookup.authority[0].ttl, 300);
}

#[test]
fn exact_match_is_authoritative_answer() {
    let set = example();
    let lookup = ask(&set, "web.example.com.", RecordType::A);
    assert_eq!(lookup.rcode, Rcode::NoError);
    assert!(lookup.authoritative);
    assert_eq!(rdatas(&lookup.answers), vec![a([192, 0, 2, 80])]);
    assert_eq!(lookup.answers[0].ttl, 3600);
    assert!(lookup.authority.is_empty());
    assert!(lookup.cname_target.is_none());
}

#[test]
fn existing_name_without_the_type_is_nodata_with_negative_soa() {
    let set = example();
    assert_negative(
        &ask(&set, "web.example.com.", RecordType::AAAA),
        Rcode::NoError,
    );
}

#[test]
fn missing_name_is_nxdomain_with_negative_soa() {
    let set = example();
    assert_negative(
        &ask(&set, "nothing.web.example.com.", RecordType::A),
        Rcode::NxDomain,
    );
}

#[test]
fn cname_is_answered_and_its_target_reported_not_chased() {
    let set = example();
    let lookup = ask(&set, "www.example.com.", RecordType::A);
    assert_eq!(lookup.rcode, Rcode::NoError);
    assert!(lookup.authoritative);
    assert_eq!(types(&lookup.answers), vec![RecordType::CNAME]);
    assert_eq!(lookup.cname_target, Some(name("web.example.com.")));

    let direct = ask(&set, "www.example.com.", RecordType::CNAME);
    assert_eq!(types(&direct.answers), vec![RecordType::CNAME]);
    assert_eq!(direct.cname_target, None);
}

#[test]
fn wildcard_does_not_apply_to_an_existing_name() {
    // `foo TXT` + `* A`: foo exists, so `foo A` is NODATA, not the wildcard (RFC 4592 2.2.1).
    let set = example();
    assert_negative(
        &ask(&set, "foo.example.com.", RecordType::A),
        Rcode::NoError,
    );
    let other = ask(&set, "bar.example.com.", RecordType::A);
    assert_eq!(rdatas(&other.answers), vec![a([192, 0, 2, 99])]);
}

#[test]
fn wildcard_source_is_below_the_closest_encloser_only() {
    let set = example();
    // sub.deep exists: below it only *.sub.deep could apply, and there is none.
    assert_negative(
        &ask(&set, "x.sub.deep.example.com.", RecordType::A),
        Rcode::NxDomain,
    );
    let synthesised = ask(&set, "y.deep.example.com.", RecordType::A);
    assert_eq!(synthesised.rcode, Rcode::NoError);
    assert!(synthesised.authoritative);
    assert_eq!(rdatas(&synthesised.answers), vec![a([192, 0, 2, 100])]);
    assert_eq!(owners(&synthesised.answers), vec!["y.deep.example.com."]);
    // Several labels below the closest encloser still match.
    let deeper = ask(&set, "p.q.deep.example.com.", RecordType::A);
    assert_eq!(rdatas(&deeper.answers), vec![a([192, 0, 2, 100])]);
    // A wildcard without the asked type is NODATA.
    assert_negative(
        &ask(&set, "y.deep.example.com.", RecordType::MX),
        Rcode::NoError,
    );
}

#[test]
fn empty_non_terminal_is_nodata_and_blocks_the_wildcard() {
    let set = example();
    for ent in [
        "ent.example.com.",
        "b.ent.example.com.",
        "deep.example.com.",
    ] {
        assert_negative(&ask(&set, ent, RecordType::A), Rcode::NoError);
        assert!(
            set.zones()
                .next()
                .expect("zone")
                .name_exists(&QueryName::new(&name(ent)))
        );
    }
    assert_negative(
        &ask(&set, "zz.ent.example.com.", RecordType::A),
        Rcode::NxDomain,
    );
}

#[test]
fn wildcard_cname_is_synthesised_at_the_query_name() {
    let set = example();
    let lookup = ask(&set, "anything.wc.example.com.", RecordType::A);
    assert_eq!(types(&lookup.answers), vec![RecordType::CNAME]);
    assert_eq!(owners(&lookup.answers), vec!["anything.wc.example.com."]);
    assert_eq!(lookup.cname_target, Some(name("web.example.com.")));
}

#[test]
fn delegation_gives_referral_with_glue_and_no_aa() {
    let set = example();
    for qname in [
        "child.example.com.",
        "www.child.example.com.",
        "ns.child.example.com.",
    ] {
        let lookup = ask(&set, qname, RecordType::A);
        assert_eq!(lookup.rcode, Rcode::NoError, "{qname}");
        assert!(!lookup.authoritative, "{qname}");
        assert!(lookup.answers.is_empty(), "{qname}");
        assert_eq!(types(&lookup.authority), vec![RecordType::NS; 2], "{qname}");
        assert_eq!(owners(&lookup.authority)[0], "child.example.com.");
        let mut glue = types(&lookup.additional);
        glue.sort();
        assert_eq!(glue, vec![RecordType::A, RecordType::AAAA], "{qname}");
        assert_eq!(owners(&lookup.additional)[0], "ns.child.example.com.");
    }
    // NS at the cut is a referral too, not an authoritative answer.
    assert!(!ask(&set, "child.example.com.", RecordType::NS).authoritative);
}

#[test]
fn ds_at_the_cut_is_answered_from_the_parent_side() {
    let set = example();
    // hickory cannot parse DS text without DNSSEC support, so the parent has none: NODATA,
    // authoritative, with the parent's SOA, instead of a referral.
    assert_negative(
        &ask(&set, "child.example.com.", RecordType::DS),
        Rcode::NoError,
    );
    // Below the cut, DS is the child's business: referral.
    assert!(!ask(&set, "x.child.example.com.", RecordType::DS).authoritative);
}

#[test]
fn additional_section_has_in_zone_targets_of_mx_srv_and_ns() {
    let set = example();
    let mx = ask(&set, "example.com.", RecordType::MX);
    assert_eq!(types(&mx.answers), vec![RecordType::MX; 2]);
    assert_eq!(
        rdatas(&mx.additional),
        vec![
            a([192, 0, 2, 25]),
            RData::AAAA(AAAA(Ipv6Addr::from_str("2001:db8::25").expect("ip")))
        ]
    );
    assert_eq!(owners(&mx.additional), vec!["mail.example.com."; 2]);

    let srv = ask(&set, "_sip._tcp.example.com.", RecordType::SRV);
    assert_eq!(rdatas(&srv.additional), vec![a([192, 0, 2, 60])]);

    let ns = ask(&set, "example.com.", RecordType::NS);
    assert!(ns.authoritative);
    assert_eq!(types(&ns.answers), vec![RecordType::NS; 2]);
    assert_eq!(rdatas(&ns.additional), vec![a([192, 0, 2, 53])]);

    // Other types get no additional processing.
    assert!(
        ask(&set, "example.com.", RecordType::A)
            .additional
            .is_empty()
    );
}

#[test]
fn any_gets_one_rrset_the_lowest_type() {
    let set = example();
    let lookup = ask(&set, "example.com.", RecordType::ANY);
    assert_eq!(lookup.rcode, Rcode::NoError);
    // The apex has A, NS, SOA and MX: A (type 1) alone.
    assert_eq!(types(&lookup.answers), vec![RecordType::A]);
    let cname = ask(&set, "www.example.com.", RecordType::ANY);
    assert_eq!(types(&cname.answers), vec![RecordType::CNAME]);
    assert_eq!(cname.cname_target, None);
    assert_negative(
        &ask(&set, "ent.example.com.", RecordType::ANY),
        Rcode::NoError,
    );
}

#[test]
fn owner_names_keep_the_case_of_the_query() {
    let set = example();
    let exact = ask(&set, "WeB.ExAmple.COM.", RecordType::A);
    assert_eq!(owners(&exact.answers), vec!["WeB.ExAmple.COM."]);
    let wildcard = ask(&set, "Y.DEEP.example.com.", RecordType::A);
    assert_eq!(owners(&wildcard.answers), vec!["Y.DEEP.example.com."]);
    assert_eq!(rdatas(&wildcard.answers), vec![a([192, 0, 2, 100])]);
}

#[test]
fn find_picks_the_longest_enclosing_origin() {
    let child =
        "$ORIGIN child.example.com.\n$TTL 60\n@ SOA ns root 1 2 3 4 5\n@ NS ns\nns A 192.0.2.7\n";
    let set = load(&[("example.com.zone", EXAMPLE), ("child.zone", child)]);
    let find = |qname: &str| {
        set.find(&QueryName::new(&name(qname)))
            .map(|zone| zone.origin().to_ascii())
    };
    assert_eq!(
        find("a.b.Child.example.com."),
        Some("child.example.com.".into())
    );
    assert_eq!(
        find("child.example.com."),
        Some("child.example.com.".into())
    );
    assert_eq!(find("web.example.com."), Some("example.com.".into()));
    assert_eq!(find("example.org."), None);
    assert_eq!(set.len(), 2);
    let origins: Vec<String> = set.zones().map(|z| z.origin().to_ascii()).collect();
    assert_eq!(origins, vec!["example.com.", "child.example.com."]);
}

#[test]
fn zone_metadata() {
    let set = example();
    let zone = set.zones().next().expect("zone");
    assert_eq!(zone.serial(), 2024010101);
    assert_eq!(zone.origin(), &name("example.com."));
    assert!(zone.file().ends_with("example.com.zone"));
    // One per record line of EXAMPLE.
    assert_eq!(zone.record_count(), 23);
    assert_eq!(set.record_count(), 23);
    assert_eq!(zone.negative_soa().ttl(), 300);
    assert!(!zone.name_exists(&QueryName::new(&name("nothing.example.com."))));
    assert!(zone.name_exists(&QueryName::new(&name("WEB.example.com."))));
}

#[test]
fn query_outside_the_zone_is_refused() {
    let set = example();
    let zone = set.zones().next().expect("zone");
    let lookup = lookup_records(zone, &name("example.org."), RecordType::A);
    assert_eq!(lookup.rcode, Rcode::Refused);
}

#[test]
fn origin_comes_from_the_file_name_without_origin_directive() {
    let text = "$TTL 60\n@ SOA ns root 1 2 3 4 5\n@ NS ns\nns A 192.0.2.7\n";
    let set = load(&[("example.org.zone", text)]);
    let zone = set.zones().next().expect("zone");
    assert_eq!(zone.origin(), &name("example.org."));
    let lookup = ask(&set, "ns.example.org.", RecordType::A);
    assert_eq!(rdatas(&lookup.answers), vec![a([192, 0, 2, 7])]);
}

#[test]
fn origin_directive_wins_over_the_file_name() {
    let text = "$ORIGIN example.net.\n$TTL 60\n@ SOA ns root 1 2 3 4 5\n@ NS ns\nns A 192.0.2.7\n";
    let set = load(&[("whatever.zone", text)]);
    let zone = set.zones().next().expect("zone");
    assert_eq!(zone.origin(), &name("example.net."));
}

#[test]
fn include_is_relative_to_the_including_file_and_reported() {
    let main = "$ORIGIN example.org.\n$TTL 60\n@ SOA ns root 1 2 3 4 5\n@ NS ns\n\
                $INCLUDE parts/hosts.inc\nafter A 192.0.2.9\n";
    // The include changes the origin; the parent's origin comes back afterwards (RFC 1035).
    let hosts = "ns A 192.0.2.7\n$ORIGIN sub.example.org.\nhost A 192.0.2.8\n";
    let dir = write_files(&[
        ("zones/example.org.zone", main),
        ("zones/parts/hosts.inc", hosts),
    ]);
    let set = ZoneSet::load_dir(&dir.path().join("zones")).expect("zones load");
    let files: Vec<PathBuf> = set.source_files().to_vec();
    assert_eq!(
        files,
        vec![
            dir.path().join("zones/example.org.zone"),
            dir.path().join("zones/parts/hosts.inc")
        ]
    );
    assert_eq!(
        rdatas(&ask(&set, "host.sub.example.org.", RecordType::A).answers),
        vec![a([192, 0, 2, 8])]
    );
    assert_eq!(
        rdatas(&ask(&set, "after.example.org.", RecordType::A).answers),
        vec![a([192, 0, 2, 9])]
    );
}

#[test]
fn empty_directory_is_an_empty_set() {
    let dir = write_files(&[("README", "not a zone")]);
    let set = ZoneSet::load_dir(dir.path()).expect("empty set");
    assert!(set.is_empty());
    assert_eq!(set.record_count(), 0);
}

// ---- validation ------------------------------------------------------------------------

const HEAD: &str =
    "$ORIGIN example.org.\n$TTL 60\n@ SOA ns root 1 2 3 4 5\n@ NS ns\nns A 192.0.2.7\n";

/// Loads HEAD + `body` as example.org.zone and returns "LINE: message" per error.
fn errors_of(body: &str) -> Vec<String> {
    let text = format!("{HEAD}{body}");
    let (_dir, errors) = load_errors(&[("example.org.zone", &text)]);
    errors
        .iter()
        .map(|e| {
            assert!(e.file.ends_with("example.org.zone"), "{e}");
            match e.line {
                Some(line) => format!("{line}: {}", e.message),
                None => format!("-: {}", e.message),
            }
        })
        .collect()
}

fn assert_one_error(body: &str, line: Option<usize>, needle: &str) {
    let errors = errors_of(body);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let prefix = line.map_or("-: ".to_owned(), |line| format!("{line}: "));
    assert!(errors[0].starts_with(&prefix), "{errors:?}");
    assert!(errors[0].contains(needle), "{errors:?}");
}

#[test]
fn parse_errors_carry_their_line_and_all_are_reported() {
    let errors =
        errors_of("ok A 192.0.2.1\nbad A 999.1.1.1\nalso AAAA nonsense\nfine A 192.0.2.2\n");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("7: cannot parse record"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("8: cannot parse record"),
        "{errors:?}"
    );
}

#[test]
fn unknown_type_and_directive_are_errors() {
    assert_one_error("x FOOBAR 1\n", Some(6), "cannot parse record");
    assert_one_error("$GENERATE 1-10 h$ A 192.0.2.$\n", Some(6), "$GENERATE");
}

#[test]
fn soa_must_be_one_and_at_the_apex() {
    assert_one_error("@ SOA ns root 2 2 3 4 5\n", Some(6), "second SOA");
    assert_one_error(
        "sub SOA ns root 2 2 3 4 5\n",
        Some(6),
        "belongs at the zone apex",
    );
    let (_dir, errors) = load_errors(&[("example.org.zone", "$TTL 60\n@ NS ns\nns A 192.0.2.7\n")]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].message.contains("no SOA"), "{errors:?}");
}

#[test]
fn apex_needs_ns() {
    let (_dir, errors) = load_errors(&[("example.org.zone", "$TTL 60\n@ SOA ns root 1 2 3 4 5\n")]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, Some(2), "the error points at the SOA");
    assert!(
        errors[0].message.contains("no NS record at the zone apex"),
        "{errors:?}"
    );
}

#[test]
fn cname_must_be_alone() {
    assert_one_error(
        "w A 192.0.2.1\nw CNAME ns\n",
        Some(7),
        "CNAME and A data (line 6)",
    );
    assert_one_error(
        "w CNAME ns\nw TXT \"x\"\n",
        Some(7),
        "TXT data and a CNAME (line 6)",
    );
    assert_one_error(
        "w CNAME ns\nw CNAME other\n",
        Some(7),
        "more than one CNAME",
    );
    // The same CNAME twice is one record, not a conflict.
    let text = format!("{HEAD}w CNAME ns\nw CNAME ns\n");
    let set = load(&[("example.org.zone", &text)]);
    assert_eq!(set.record_count(), 4);
}

#[test]
fn records_outside_the_zone_are_errors() {
    assert_one_error("x.example.net. A 192.0.2.1\n", Some(6), "outside the zone");
}

#[test]
fn in_zone_ns_targets_need_glue() {
    // Apex NS without an address.
    assert_one_error("@ NS ns2\n", Some(6), "NS ns2.example.org. of example.org.");
    // Delegation with in-zone target below the cut, without glue.
    assert_one_error("kid NS ns.kid\n", Some(6), "missing glue");
    // Out-of-zone targets need none; in-zone with glue is fine.
    let text = format!("{HEAD}kid NS ns.kid\nkid NS ns.example.net.\nns.kid AAAA 2001:db8::1\n");
    load(&[("example.org.zone", &text)]);
}

#[test]
fn unreadable_include_is_reported_at_its_line() {
    assert_one_error(
        "$INCLUDE missing.inc\n",
        Some(6),
        "cannot read $INCLUDE file",
    );
}

#[test]
fn errors_in_included_files_name_that_file() {
    let main = format!("{HEAD}$INCLUDE bad.inc\n");
    let (dir, errors) = load_errors(&[
        ("example.org.zone", &main),
        ("bad.inc", "good A 192.0.2.1\nbad A not-an-ip\n"),
    ]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].file, dir.path().join("bad.inc"));
    assert_eq!(errors[0].line, Some(2));
}

#[test]
fn every_error_of_every_file_is_reported_together() {
    let bad_a = format!("{HEAD}w CNAME ns\nw A 192.0.2.1\nx.example.net. A 192.0.2.1\n");
    let bad_b = "$TTL 60\n@ SOA ns root 1 2 3 4 5\nbroken A 1.2.3\n";
    let dup = "$ORIGIN example.org.\n$TTL 60\n@ SOA ns root 1 2 3 4 5\n@ NS ns\nns A 192.0.2.7\n";
    let (_dir, errors) = load_errors(&[
        ("a.zone", &bad_a.replace("example.org.", "a.example.")),
        ("b.example.zone", bad_b),
        ("example.org.zone", HEAD),
        ("z.zone", dup),
    ]);
    let text = ZoneErrors(errors.clone()).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].ends_with("a.zone:7: w.a.example. has A data and a CNAME (line 6): a CNAME must be alone at its name"), "{text}");
    assert!(
        lines[1].contains("a.zone:8: x.example.net. is outside the zone a.example."),
        "{text}"
    );
    assert!(
        lines[2].contains("b.example.zone:2: no NS record at the zone apex b.example."),
        "{text}"
    );
    assert!(
        lines[3].contains("b.example.zone:3: cannot parse record"),
        "{text}"
    );
    assert!(
        lines[4].contains("z.zone: zone example.org. is already loaded from"),
        "{text}"
    );
}

#[test]
fn unreadable_zone_file_is_an_error() {
    let dir = write_files(&[]);
    let missing = dir.path().join("gone.zone");
    let errors = ZoneSet::load_files(std::slice::from_ref(&missing)).expect_err("missing file");
    assert_eq!(errors.0.len(), 1);
    assert_eq!(errors.0[0].file, missing);
    assert!(errors.0[0].message.contains("cannot read"), "{}", errors);
}

#[test]
fn zone_from_text_loads_without_files_and_refuses_include() {
    let origin = name("example.org.");
    let zone = Zone::from_text(&origin, HEAD).expect("text zone");
    assert_eq!(
        rdatas(&lookup_records(&zone, &name("ns.example.org."), RecordType::A).answers),
        vec![a([192, 0, 2, 7])]
    );
    let errors = Zone::from_text(&origin, &format!("{HEAD}$INCLUDE /etc/hostname\n"))
        .expect_err("include refused");
    assert_eq!(
        errors.to_string(),
        "<text>:6: $INCLUDE is not allowed in this zone text"
    );
}

#[test]
fn ttl_defaults_follow_rfc_1035_and_2308() {
    // No $TTL: a record without TTL takes the previous record's.
    let text = "$ORIGIN example.org.\n@ 300 SOA ns root 1 2 3 4 5\n@ NS ns\nns 60 A 192.0.2.7\nx A 192.0.2.8\n\
                $TTL 900\ny A 192.0.2.9\nz 30 A 192.0.2.10\n";
    let zone = Zone::from_text(&name("example.org."), text).expect("zone");
    let ttl = |owner: &str, rtype| {
        lookup_records(&zone, &name(owner), rtype)
            .answers
            .first()
            .map(|r| r.ttl)
    };
    assert_eq!(ttl("example.org.", RecordType::NS), Some(300));
    assert_eq!(ttl("ns.example.org.", RecordType::A), Some(60));
    assert_eq!(ttl("x.example.org.", RecordType::A), Some(60));
    assert_eq!(ttl("y.example.org.", RecordType::A), Some(900));
    assert_eq!(ttl("z.example.org.", RecordType::A), Some(30));
}

#[test]
fn include_with_an_origin_argument_and_owner_inheritance() {
    let main = "$ORIGIN example.org.\n$TTL 60\n@ SOA ns root 1 2 3 4 5\n  NS ns\nns A 192.0.2.7\n\
                $INCLUDE lab.inc lab\n  TXT \"owned by ns again\"\nafter A 192.0.2.9\n";
    let lab = "host A 192.0.2.20\n  AAAA 2001:db8::20\n";
    let set = load(&[("example.org.zone", main), ("lab.inc", lab)]);
    let host = ask(&set, "host.lab.example.org.", RecordType::AAAA);
    assert_eq!(types(&host.answers), vec![RecordType::AAAA]);
    // RFC 1035 5.1: origin and current owner revert after the included file.
    let txt = ask(&set, "ns.example.org.", RecordType::TXT);
    assert_eq!(types(&txt.answers), vec![RecordType::TXT]);
    let after = ask(&set, "after.example.org.", RecordType::A);
    assert_eq!(rdatas(&after.answers), vec![a([192, 0, 2, 9])]);
}

#[test]
fn zone_set_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<ZoneSet>();
    shared::<Zone>();
    shared::<Lookup<'static>>();
}

#[test]
fn additional_targets_are_listed_once() {
    let text = format!("{HEAD}m MX 10 ns\nm MX 20 ns\n");
    let zone = Zone::from_text(&name("example.org."), &text).expect("zone");
    let lookup = lookup_records(&zone, &name("m.example.org."), RecordType::MX);
    assert_eq!(types(&lookup.answers), vec![RecordType::MX; 2]);
    assert_eq!(rdatas(&lookup.additional), vec![a([192, 0, 2, 7])]);
}

#[test]
fn ds_at_a_hosted_child_apex_is_answered_by_the_parent() {
    let kid =
        "$ORIGIN child.example.com.\n$TTL 60\n@ SOA ns root 1 2 3 4 5\n@ NS ns\nns A 192.0.2.7\n";
    let set = load(&[("example.com.zone", EXAMPLE), ("child.zone", kid)]);
    let find = |qname: &str, qtype| {
        set.find_for_query(&QueryName::new(&name(qname)), u16::from(qtype))
            .map(|zone| zone.origin().to_ascii())
    };
    assert_eq!(
        find("child.example.com.", RecordType::DS),
        Some("example.com.".into())
    );
    assert_eq!(
        find("child.example.com.", RecordType::NS),
        Some("child.example.com.".into())
    );
    assert_eq!(
        find("ns.child.example.com.", RecordType::DS),
        Some("child.example.com.".into())
    );
    // No hosted parent: the zone itself answers.
    assert_eq!(
        find("example.com.", RecordType::DS),
        Some("example.com.".into())
    );
}

#[test]
fn mangled_zone_text_never_panics() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    // Deterministic mutations of a valid zone: bytes replaced by zone-file metacharacters.
    let alphabet = b"();\"\\$@*. \t\n0123456789aA:-_";
    let origin = name("example.com.");
    let mut rng = StdRng::seed_from_u64(7);
    let base = EXAMPLE.as_bytes();
    let mut loaded = 0;
    for _ in 0..300 {
        let mut text = base.to_vec();
        for _ in 0..rng.random_range(1..8) {
            let at = rng.random_range(0..text.len());
            text[at] = alphabet[rng.random_range(0..alphabet.len())];
        }
        let Ok(text) = String::from_utf8(text) else {
            continue;
        };
        let text = text.replace("$INCLUDE", "$XINCLUDE");
        if let Ok(zone) = Zone::from_text(&origin, &text) {
            loaded += 1;
            for qname in ["example.com.", "www.example.com.", "a.b.deep.example.com."] {
                for qtype in [
                    RecordType::A,
                    RecordType::ANY,
                    RecordType::DS,
                    RecordType::MX,
                ] {
                    let _ = lookup_records(&zone, &name(qname), qtype);
                }
            }
        }
    }
    // Some mutations land in comments or are harmless: both outcomes were exercised.
    assert!(loaded > 0 && loaded < 300, "{loaded}");
}

#[test]
fn byte_order_mark_and_crlf_are_accepted() {
    let text = format!("\u{feff}{}", HEAD.replace('\n', "\r\n"));
    let zone = Zone::from_text(&name("example.org."), &text).expect("zone");
    assert_eq!(zone.record_count(), 3);
}

#[test]
fn a_transfer_holds_every_record_but_the_soa_once_apex_first() {
    let zone = Zone::from_text(&Name::from_ascii("example.com.").unwrap(), EXAMPLE).unwrap();
    let records: Vec<Record> = zone.transfer_records().collect();
    assert_eq!(records.len() + 1, zone.record_count());
    assert!(records.iter().all(|r| r.record_type() != RecordType::SOA));
    assert_eq!(&records[0].name, zone.origin());
    // Glue and the delegation travel with the zone: secondaries need them for referrals.
    for (owner, rtype) in [
        ("child.example.com.", RecordType::NS),
        ("ns.child.example.com.", RecordType::AAAA),
        ("*.deep.example.com.", RecordType::A),
        ("_sip._tcp.example.com.", RecordType::SRV),
    ] {
        let owner = Name::from_ascii(owner).unwrap();
        assert!(
            records
                .iter()
                .any(|r| r.name == owner && r.record_type() == rtype),
            "{owner} {rtype} missing"
        );
    }
    let mut twice = records.clone();
    twice.dedup();
    assert_eq!(twice.len(), records.len());
    assert_eq!(zone.soa().record_type(), RecordType::SOA);
    assert_eq!(zone.soa().ttl, 3600);
    // The same order on every call.
    assert_eq!(zone.transfer_records().collect::<Vec<_>>(), records);
}
