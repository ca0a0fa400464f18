//! The GeoIP database reader: IP address -> country, coordinates and matched prefix.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::Reader;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::{Country, centroid};

/// Why a GeoIP database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file could not be read or is not a MaxMind DB file.
    #[error("{path}: cannot open GeoIP database: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: maxminddb::MaxMindDbError,
    },
}

/// Where the database places an address.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Located {
    pub country: Country,
    /// Degrees; the record's own coordinates, else the country's centroid.
    pub lat: f64,
    pub lon: f64,
    /// Prefix length of the database network that matched, in the family of the address
    /// looked up (IPv4 for IPv4 and v4-mapped IPv6 addresses): the ECS scope.
    pub prefix_len: u8,
}

/// A lookup's full outcome: the location if the database knows the address, and the
/// prefix length of the network that decided it either way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoLookup {
    pub location: Option<Located>,
    /// Prefix of the matched (or empty) network in the family of the address looked up;
    /// 0 when the lookup failed (e.g. IPv6 in an IPv4-only database).
    pub prefix_len: u8,
}

/// What was opened, for /status and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoInfo {
    pub database_type: String,
    pub build_epoch: u64,
    pub ip_version: u16,
}

/// An open GeoIP database (MaxMind DB format), held in memory.
///
/// Reads both the MaxMind schema (`country.iso_code`, `location.latitude/longitude`, with
/// `registered_country` as a fallback) and the flat schema (`country_code`, `latitude`,
/// `longitude`) used by DB-IP Lite and ip-location-db. Coordinates may be stored as
/// `double` or `float`.
pub struct GeoDb {
    reader: Reader<Vec<u8>>,
}

impl fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoDb").field("info", &self.info()).finish()
    }
}

impl GeoDb {
    /// Reads the whole file into memory (safe against the file being replaced later).
    pub fn open(path: &Path) -> Result<GeoDb, GeoError> {
        let reader = Reader::open_readfile(path).map_err(|source| GeoError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(GeoDb { reader })
    }

    /// A database from bytes already in memory (`source` names it in errors).
    pub fn from_bytes(bytes: Vec<u8>, source: &Path) -> Result<GeoDb, GeoError> {
        let reader = Reader::from_source(bytes).map_err(|source_error| GeoError::Open {
            path: source.to_owned(),
            source: source_error,
        })?;
        Ok(GeoDb { reader })
    }

    /// Database type, build time and IP version from the file's metadata.
    pub fn info(&self) -> GeoInfo {
        let meta = self.reader.metadata();
        GeoInfo {
            database_type: meta.database_type.clone(),
            build_epoch: meta.build_epoch,
            ip_version: meta.ip_version,
        }
    }

    /// Where the database places `ip`; `None` when it does not know the address (no
    /// record, no usable country, or an IPv6 address in an IPv4-only database).
    pub fn locate(&self, ip: IpAddr) -> Option<Located> {
        self.lookup(ip).location
    }

    /// Like [`GeoDb::locate`], also giving the matched prefix when the address is unknown
    /// (so that "unknown" answers can carry a correct ECS scope too).
    pub fn lookup(&self, ip: IpAddr) -> GeoLookup {
        // v4-mapped IPv6 (::ffff:a.b.c.d) is an IPv4 client.
        let ip = ip.to_canonical();
        let Ok(result) = self.reader.lookup(ip) else {
            return GeoLookup {
                location: None,
                prefix_len: 0,
            };
        };
        let prefix_len = match result.network() {
            Ok(net) if net.is_ipv4() == ip.is_ipv4() => net.prefix(),
            // An IPv4 address decided above the IPv4 subtree of an IPv6 tree: nothing
            // narrower than the whole IPv4 space is known.
            _ => 0,
        };
        let location = match result.decode::<GeoRecord<'_>>() {
            Ok(Some(record)) => record.located(prefix_len),
            Ok(None) | Err(_) => None,
        };
        GeoLookup {
            location,
            prefix_len,
        }
    }
}

/// The fields Meridian reads from a record, in either schema; everything else is skipped
/// without being decoded.
#[derive(Deserialize)]
struct GeoRecord<'a> {
    #[serde(borrow, default)]
    country: Option<CountryRecord<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<CountryRecord<'a>>,
    #[serde(default)]
    location: Option<LocationRecord>,
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(default)]
    latitude: Option<Coordinate>,
    #[serde(default)]
    longitude: Option<Coordinate>,
}

#[derive(Deserialize)]
struct CountryRecord<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct LocationRecord {
    #[serde(default)]
    latitude: Option<Coordinate>,
    #[serde(default)]
    longitude: Option<Coordinate>,
}

impl GeoRecord<'_> {
    fn located(&self, prefix_len: u8) -> Option<Located> {
        let code = self
            .country_code
            .or_else(|| self.country.as_ref().and_then(|c| c.iso_code))
            .or_else(|| self.registered_country.as_ref().and_then(|c| c.iso_code))?;
        let country: Country = code.parse().ok()?;
        let own = match &self.location {
            Some(loc) => loc.latitude.zip(loc.longitude),
            None => self.latitude.zip(self.longitude),
        }
        .map(|(lat, lon)| (lat.0, lon.0))
        .filter(|&(lat, lon)| valid_position(lat, lon));
        let (lat, lon) = own.or_else(|| centroid(country))?;
        Some(Located {
            country,
            lat,
            lon,
            prefix_len,
        })
    }
}

fn valid_position(lat: f64, lon: f64) -> bool {
    (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)
}

/// A latitude or longitude stored as MMDB `double`, `float` or an integer.
#[derive(Clone, Copy)]
struct Coordinate(f64);

impl<'de> Deserialize<'de> for Coordinate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Coordinate, D::Error> {
        struct CoordinateVisitor;
        impl Visitor<'_> for CoordinateVisitor {
            type Value = Coordinate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Coordinate, E> {
                Ok(Coordinate(v))
            }
            fn visit_f32<E: de::Error>(self, v: f32) -> Result<Coordinate, E> {
                Ok(Coordinate(f64::from(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Coordinate, E> {
                Ok(Coordinate(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Coordinate, E> {
                Ok(Coordinate(v as f64))
            }
        }
        deserializer.deserialize_any(CoordinateVisitor)
    }
}
