//! GeoIP databases written by the tests with `mmdb-writer`, in both schemas.
//!
//! Test clients: `1.0.0.0/24` CN (Shanghai), `2.0.0.0/24` HK, `5.0.0.0/24` TW, `6.0.0.0/24`
//! MO, `3.0.0.0/24` US (Ashburn), `4.0.0.0/24` DE (Frankfurt), `127.5.0.0/16` CN (a source
//! address a test can bind), `2001:db8:1::/48` CN, `2001:db8:3::/48` US. Everything else
//! (loopback included) is unknown.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use mmdb_writer::ipnet::IpNet;
use mmdb_writer::{IpVersion, Value, Writer};

/// (network, country, latitude, longitude)
pub const CLIENTS: &[(&str, &str, f64, f64)] = &[
    ("1.0.0.0/24", "CN", 31.22, 121.46),
    ("2.0.0.0/24", "HK", 22.28, 114.16),
    ("5.0.0.0/24", "TW", 25.04, 121.53),
    ("6.0.0.0/24", "MO", 22.20, 113.54),
    ("3.0.0.0/24", "US", 39.04, -77.49),
    ("4.0.0.0/24", "DE", 50.11, 8.68),
    ("127.5.0.0/16", "CN", 31.22, 121.46),
    ("2001:db8:1::/48", "CN", 31.22, 121.46),
    ("2001:db8:3::/48", "US", 39.04, -77.49),
];

fn writer(kind: &str) -> Writer {
    Writer::builder(kind)
        .ip_version(IpVersion::V6)
        .build_epoch(UNIX_EPOCH + Duration::from_secs(1_750_000_000))
        .build()
}

/// The MaxMind City schema: `country.iso_code`, `location.latitude/longitude` as doubles.
pub fn write_maxmind(dir: &Path) -> PathBuf {
    write_city(&dir.join("test-city.mmdb"), CLIENTS.iter().copied())
}

/// The MaxMind-schema database with `net` moved to (`country`, `lat`, `lon`).
pub fn write_moved(dir: &Path, net: &str, country: &str, lat: f64, lon: f64) -> PathBuf {
    let moved = CLIENTS.iter().map(|&(n, cc, la, lo)| {
        if n == net {
            (n, country, lat, lon)
        } else {
            (n, cc, la, lo)
        }
    });
    write_city(&dir.join("moved.mmdb"), moved)
}

fn write_city<'a>(
    path: &Path,
    clients: impl Iterator<Item = (&'a str, &'a str, f64, f64)>,
) -> PathBuf {
    let mut w = writer("GeoIP2-City");
    for (net, cc, lat, lon) in clients {
        let record = Value::map([
            ("country", Value::map([("iso_code", Value::from(cc))])),
            (
                "location",
                Value::map([
                    ("latitude", Value::from(lat)),
                    ("longitude", Value::from(lon)),
                ]),
            ),
        ]);
        w.insert_value(net.parse::<IpNet>().unwrap(), record)
            .unwrap();
    }
    std::fs::write(path, w.to_bytes().unwrap()).unwrap();
    path.to_path_buf()
}

/// The flat schema (DB-IP Lite, ip-location-db): `country_code`, `latitude`/`longitude` as
/// 32-bit floats.
pub fn write_flat(dir: &Path) -> PathBuf {
    let mut w = writer("dbip-city-lite");
    for &(net, cc, lat, lon) in CLIENTS {
        let record = Value::map([
            ("country_code", Value::from(cc)),
            ("latitude", Value::from(lat as f32)),
            ("longitude", Value::from(lon as f32)),
        ]);
        w.insert_value(net.parse::<IpNet>().unwrap(), record)
            .unwrap();
    }
    let path = dir.join("test-flat.mmdb");
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    path
}
