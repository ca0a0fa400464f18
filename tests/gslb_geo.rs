//! GeoIP lookups on databases written by the tests (both schemas) and on the shipped one.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use meridian::geo::{Country, GeoDb, centroid};
use mmdb_writer::ipnet::IpNet;
use mmdb_writer::{IpVersion, Value, Writer};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn writer(kind: &str, version: IpVersion) -> Writer {
    Writer::builder(kind)
        .ip_version(version)
        .build_epoch(UNIX_EPOCH + Duration::from_secs(1_750_000_000))
        .build()
}

fn open(writer: &Writer) -> GeoDb {
    GeoDb::from_bytes(writer.to_bytes().unwrap(), Path::new("test.mmdb")).unwrap()
}

fn country_map(code: &str) -> Value {
    Value::map([
        ("iso_code", Value::from(code)),
        ("geoname_id", Value::from(1u32)),
        ("names", Value::map([("en", Value::from("Somewhere"))])),
    ])
}

/// A GeoLite2-City-like database: nested country/location, `double` coordinates.
fn maxmind_city_db() -> GeoDb {
    let mut w = writer("GeoLite2-City", IpVersion::V6);
    let berlin = Value::map([
        (
            "city",
            Value::map([("names", Value::map([("en", Value::from("Berlin"))]))]),
        ),
        ("continent", Value::map([("code", Value::from("EU"))])),
        ("country", country_map("DE")),
        ("registered_country", country_map("DE")),
        (
            "location",
            Value::map([
                ("accuracy_radius", Value::from(20u16)),
                ("latitude", Value::from(52.5244f64)),
                ("longitude", Value::from(13.4105f64)),
                ("time_zone", Value::from("Europe/Berlin")),
            ]),
        ),
    ]);
    w.insert_value(net("192.0.2.0/24"), berlin).unwrap();
    // A Country database record: no location at all -> the centroid.
    w.insert_value(
        net("198.51.100.0/25"),
        Value::map([("country", country_map("JP"))]),
    )
    .unwrap();
    // Only the registered country is known (e.g. satellite providers).
    w.insert_value(
        net("203.0.113.0/26"),
        Value::map([("registered_country", country_map("SG"))]),
    )
    .unwrap();
    // Coordinates stored as `float` in the nested schema (converted databases do this).
    w.insert_value(
        net("2001:db8::/32"),
        Value::map([
            ("country", country_map("CN")),
            (
                "location",
                Value::map([
                    ("latitude", Value::from(30.25f32)),
                    ("longitude", Value::from(120.5f32)),
                ]),
            ),
        ]),
    )
    .unwrap();
    // No country anywhere: unusable.
    w.insert_value(
        net("2001:db9::/32"),
        Value::map([(
            "location",
            Value::map([
                ("latitude", Value::from(1.0f64)),
                ("longitude", Value::from(2.0f64)),
            ]),
        )]),
    )
    .unwrap();
    open(&w)
}

/// A DB-IP-Lite-City-like flat database with `float` coordinates, IPv4 only.
fn flat_v4_db() -> GeoDb {
    let mut w = writer("dbip-city-lite", IpVersion::V4);
    w.insert_value(
        net("192.0.2.0/23"),
        Value::map([
            ("country_code", Value::from("CN")),
            ("state1", Value::from("Zhejiang")),
            ("city", Value::from("Hangzhou")),
            ("latitude", Value::from(30.2937f32)),
            ("longitude", Value::from(120.1614f32)),
        ]),
    )
    .unwrap();
    w.insert_value(
        net("198.51.100.0/24"),
        Value::map([("country_code", Value::from("hk"))]),
    )
    .unwrap();
    w.insert_value(
        net("203.0.113.0/24"),
        Value::map([("country_code", Value::from("ZZ"))]),
    )
    .unwrap();
    open(&w)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-4
}

#[test]
fn maxmind_schema_gives_country_coordinates_and_prefix() {
    let db = maxmind_city_db();
    let at = db.locate(ip("192.0.2.77")).unwrap();
    assert_eq!(at.country, "DE".parse::<Country>().unwrap());
    assert!(close(at.lat, 52.5244) && close(at.lon, 13.4105), "{at:?}");
    assert_eq!(at.prefix_len, 24);
    assert_eq!(db.info().database_type, "GeoLite2-City");
}

#[test]
fn maxmind_schema_without_location_uses_the_centroid() {
    let db = maxmind_city_db();
    let jp: Country = "JP".parse().unwrap();
    let at = db.locate(ip("198.51.100.1")).unwrap();
    assert_eq!(at.country, jp);
    assert_eq!((at.lat, at.lon), centroid(jp).unwrap());
    assert_eq!(at.prefix_len, 25);
    let sg = db.locate(ip("203.0.113.5")).unwrap();
    assert_eq!(sg.country, "SG".parse::<Country>().unwrap());
}

#[test]
fn float_coordinates_in_the_nested_schema() {
    let at = maxmind_city_db().locate(ip("2001:db8::1")).unwrap();
    assert_eq!(at.country, Country::CN);
    assert!(close(at.lat, 30.25) && close(at.lon, 120.5), "{at:?}");
    assert_eq!(at.prefix_len, 32);
}

#[test]
fn flat_schema_with_float_coordinates() {
    let db = flat_v4_db();
    let at = db.locate(ip("192.0.3.200")).unwrap();
    assert_eq!(at.country, Country::CN);
    assert!(close(at.lat, 30.2937) && close(at.lon, 120.1614), "{at:?}");
    assert_eq!(at.prefix_len, 23);
    let hk = db.locate(ip("198.51.100.9")).unwrap();
    assert_eq!(hk.country.to_string(), "HK", "codes are uppercased");
    assert_eq!((hk.lat, hk.lon), centroid(hk.country).unwrap());
}

#[test]
fn v4_mapped_addresses_are_looked_up_as_ipv4() {
    for db in [maxmind_city_db(), flat_v4_db()] {
        let plain = db.locate(ip("192.0.2.77")).unwrap();
        let mapped = db.locate(ip("::ffff:192.0.2.77")).unwrap();
        assert_eq!(plain, mapped);
        assert!(
            mapped.prefix_len <= 32,
            "prefix is in IPv4 terms: {mapped:?}"
        );
    }
}

#[test]
fn unknown_addresses_are_none() {
    let db = maxmind_city_db();
    assert_eq!(db.locate(ip("10.1.2.3")), None);
    assert_eq!(db.locate(ip("127.0.0.1")), None);
    assert_eq!(
        db.locate(ip("2001:db9::1")),
        None,
        "a record without a country"
    );
    let miss = db.lookup(ip("192.0.3.1"));
    assert_eq!(miss.location, None);
    assert!(miss.prefix_len > 0 && miss.prefix_len <= 32, "{miss:?}");

    let flat = flat_v4_db();
    assert_eq!(flat.locate(ip("203.0.113.1")), None, "ZZ is no country");
    // IPv6 in an IPv4-only database is an error inside maxminddb: "unknown" here.
    let v6 = flat.lookup(ip("2001:db8::1"));
    assert_eq!((v6.location, v6.prefix_len), (None, 0));
}

#[test]
fn a_file_that_is_not_a_database_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.mmdb");
    std::fs::write(&path, b"not a maxmind database").unwrap();
    let err = GeoDb::open(&path).unwrap_err();
    assert!(err.to_string().contains("broken.mmdb"), "{err}");
    assert!(GeoDb::open(&dir.path().join("missing.mmdb")).is_err());
}

/// The shipped DB-IP Lite country database. Addresses checked against the file when it was
/// added (DB-IP 2026-06): 114DNS and AliDNS in CN, Google DNS in US, HKT in HK, HiNet
/// in TW, CTM in MO, AliDNS IPv6 in CN.
#[test]
fn shipped_database_places_well_known_resolvers() {
    let db = GeoDb::open(Path::new("geoip/dbip-country.mmdb")).unwrap();
    assert_eq!(db.info().ip_version, 6);
    let expect = [
        ("114.114.114.114", "CN", 15),
        ("223.5.5.5", "CN", 12),
        ("2400:3200::1", "CN", 32),
        ("::ffff:223.5.5.5", "CN", 12),
        ("8.8.8.8", "US", 17),
        ("203.198.7.66", "HK", 16),
        ("168.95.1.1", "TW", 16),
        ("202.175.3.3", "MO", 17),
    ];
    for (addr, country, prefix) in expect {
        let at = db
            .locate(ip(addr))
            .unwrap_or_else(|| panic!("{addr} unknown"));
        assert_eq!(at.country.to_string(), country, "{addr}");
        assert_eq!(at.prefix_len, prefix, "{addr}");
        // A country database has no coordinates: clients sit at the country's centroid.
        assert_eq!((at.lat, at.lon), centroid(at.country).unwrap(), "{addr}");
    }
    for private in ["10.0.0.1", "127.0.0.1", "192.168.1.1", "::1", "fe80::1"] {
        assert_eq!(db.locate(ip(private)), None, "{private}");
    }
}
