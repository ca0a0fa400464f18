//! `meridian check` and `meridian cname`, run as an operator runs them: the real binary on a
//! zones directory, one case per validation rule (issue 2 point 2, issue 3 point 1), every
//! problem reported at once as `FILE:LINE: message`, exit status 1.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn bundled_zones() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let zones = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("zones");
    for entry in std::fs::read_dir(zones).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

/// (exit code, stdout) of `meridian check --zones DIR`.
fn check(dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["check", "--zones"])
        .arg(dir)
        .args([
            "--geoip",
            concat!(env!("CARGO_MANIFEST_DIR"), "/geoip/dbip-country.mmdb"),
        ])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} has no {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// Apply one edit to a fresh copy of the bundled zones and expect `check` to fail with a
/// line naming `file:LINE:` and containing `expected`.
fn expect_error(file: &str, from: &str, to: &str, expected: &str) {
    let dir = bundled_zones();
    edit(dir.path(), file, from, to);
    let (code, out) = check(dir.path());
    assert_eq!(code, 1, "exit status for {expected:?}; output:\n{out}");
    let line = out
        .lines()
        .find(|l| l.contains(expected))
        .unwrap_or_else(|| panic!("no line containing {expected:?} in:\n{out}"));
    let prefix = format!("{}:", dir.path().join(file).display());
    assert!(
        line.starts_with(&prefix),
        "{line:?} does not start with {prefix:?}"
    );
    let line_no = line[prefix.len()..].split(':').next().unwrap_or("");
    assert!(
        line_no.parse::<usize>().is_ok(),
        "no line number in {line:?}"
    );
}

#[test]
fn the_bundled_zones_check_clean() {
    let (code, out) = check(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("zones"));
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: 2 zones"), "{out}");
}

// --- zone files ---

#[test]
fn zone_parse_error() {
    expect_error(
        "customer.com.zone",
        "www     IN A    192.0.2.80",
        "www     IN A    192.0.2.800",
        "cannot parse record",
    );
}

#[test]
fn zone_cname_beside_other_data() {
    expect_error(
        "customer.com.zone",
        "img     IN CNAME",
        "img     IN TXT \"x\"\nimg     IN CNAME",
        "CNAME",
    );
}

#[test]
fn zone_record_outside_the_zone() {
    expect_error(
        "customer.com.zone",
        "www     IN A    192.0.2.80",
        "www.example.org. IN A 192.0.2.80",
        "outside",
    );
}

#[test]
fn zone_in_zone_ns_without_glue() {
    expect_error(
        "customer.com.zone",
        "        IN MX   10 mail",
        "        IN NS   ns9\n        IN MX   10 mail",
        "ns9",
    );
}

#[test]
fn zone_without_ns() {
    // A zone-wide problem: the file is named, there is no single line to point at.
    let dir = bundled_zones();
    edit(
        dir.path(),
        "cdn.example.net.zone",
        "        IN NS   ns1\n        IN NS   ns2\n",
        "",
    );
    let (code, out) = check(dir.path());
    assert_eq!(code, 1);
    let file = dir.path().join("cdn.example.net.zone");
    // The SOA's line: where the apex's records are.
    let expected = format!("{}:5: no NS record at the zone apex", file.display());
    assert!(out.contains(&expected), "{out}");
}

#[test]
fn every_error_of_every_file_is_reported_at_once() {
    let dir = bundled_zones();
    edit(dir.path(), "customer.com.zone", "192.0.2.80", "192.0.2.800");
    edit(
        dir.path(),
        "cdn.example.net.zone",
        "console IN A    127.0.0.10",
        "console IN A    127.0.0.10\nconsole IN CNAME edges",
    );
    edit(
        dir.path(),
        "cdn.toml",
        "country = \"DE\"",
        "country = \"XX\"",
    );
    let (code, out) = check(dir.path());
    assert_eq!(code, 1);
    for file in ["customer.com.zone:", "cdn.example.net.zone:", "cdn.toml:"] {
        assert!(out.contains(file), "{file} missing from:\n{out}");
    }
}

// --- cdn.toml ---

const NEW_DOMAIN: &str = "\n[[domain]]\nname = \"img.customer.com\"\nregion = \"overseas\"\nbusiness = \"vod\"\norigins = [\"192.0.2.1\"]\n";

#[test]
fn cdn_duplicate_domain() {
    expect_error(
        "cdn.toml",
        "origin_scheme = \"http\"",
        &format!("origin_scheme = \"http\"\n{NEW_DOMAIN}"),
        "DomainAlreadyExist",
    );
}

#[test]
fn cdn_origin_that_the_domain_itself_matches() {
    expect_error(
        "cdn.toml",
        "origins = [\"203.0.113.10\", \"origin.customer.com\"]",
        "origins = [\"img.customer.com\"]",
        "resolution loop",
    );
}

#[test]
fn cdn_origin_covered_by_a_wildcard_domain() {
    expect_error(
        "cdn.toml",
        "origins = [\"origin-static.customer.com\"]",
        "origins = [\"cdn.static.customer.com\"]",
        "resolution loop",
    );
}

#[test]
fn cdn_wildcard_not_leftmost() {
    expect_error(
        "cdn.toml",
        "name = \"*.static.customer.com\"",
        "name = \"a.*.customer.com\"",
        "wildcard",
    );
}

#[test]
fn cdn_idn_name() {
    expect_error(
        "cdn.toml",
        "name = \"video.customer.com\"",
        "name = \"vidéo.customer.com\"",
        "IDN",
    );
}

#[test]
fn cdn_invalid_name() {
    expect_error(
        "cdn.toml",
        "name = \"video.customer.com\"",
        "name = \"video..customer.com\"",
        "empty label",
    );
}

#[test]
fn cdn_more_domains_than_the_quota() {
    expect_error(
        "cdn.toml",
        "max_domains = 50",
        "max_domains = 2",
        "max_domains is 2",
    );
}

#[test]
fn cdn_icp_missing_where_required() {
    expect_error(
        "cdn.toml",
        "icp = \"ZJ-ICP-12345678\"\n",
        "",
        "icp is required",
    );
}

#[test]
fn cdn_unknown_edge_country() {
    expect_error(
        "cdn.toml",
        "country = \"DE\"",
        "country = \"XX\"",
        "not a known ISO 3166-1",
    );
}

#[test]
fn cdn_edge_without_address() {
    expect_error(
        "cdn.toml",
        "ipv4 = [\"127.0.3.1\"]\nipv6 = [\"fd00:3::1\"]",
        "ipv4 = []",
        "no address",
    );
}

#[test]
fn cdn_duplicate_edge_names() {
    expect_error(
        "cdn.toml",
        "name = \"frankfurt-1\"",
        "name = \"virginia-1\"",
        "used twice",
    );
}

#[test]
fn cdn_suffix_outside_the_zone() {
    expect_error(
        "cdn.toml",
        "suffix = \"w.cdn.example.net\"",
        "suffix = \"w.cdn.example.org\"",
        "outside the CDN zone",
    );
}

#[test]
fn cdn_unknown_field() {
    expect_error("cdn.toml", "ttl = 60", "ttl = 60\nttl_typo = 5", "ttl_typo");
}

#[test]
fn cdn_zone_that_no_zone_file_serves() {
    let dir = bundled_zones();
    std::fs::remove_file(dir.path().join("cdn.example.net.zone")).unwrap();
    let (code, out) = check(dir.path());
    assert_eq!(code, 1);
    assert!(
        out.contains("cdn.toml: [cdn] zone \"cdn.example.net.\" is not served"),
        "{out}"
    );
}

// --- meridian cname ---

fn cname(domain: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args([
            "cname",
            domain,
            "--zones",
            concat!(env!("CARGO_MANIFEST_DIR"), "/zones"),
        ])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cname_prints_the_target_to_set() {
    assert_eq!(
        cname("img.customer.com").1,
        "img.customer.com.w.cdn.example.net.\n"
    );
    assert_eq!(
        cname("IMG.customer.com.").1,
        "img.customer.com.w.cdn.example.net.\n"
    );
    assert_eq!(
        cname("a.static.customer.com").1,
        "a.static.customer.com.w.cdn.example.net.\n"
    );
    let (code, out, err) = cname("www.other.com");
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains("not an accelerated domain"), "{err}");
}
