//! Client location: the GeoIP database and the country centroid table.
//!
//! Owns: reading MaxMind DB files (MaxMind and flat DB-IP schemas) and the embedded
//! country-centroid table (`geoip/country-centroids.csv`, GeoNames, CC BY 4.0).
//!
//! ```text
//! IpAddr --GeoDb::locate--> Located { country, lat, lon, prefix_len }   (None = unknown)
//! Country --centroid------> (lat, lon)                                  (no file needed)
//! ```
//!
//! In: an address (the ECS address or the query's source). Out: where the database places
//! it. It does not decide what to do with unknown clients (the caller places them in
//! `[cdn].default_country`), never blocks after `open`, and never panics on a malformed
//! database record: a record it cannot read is "unknown".

mod country;
mod db;

pub(crate) use country::unit_vector;
pub use country::{BadCountryCode, Country, centroid, great_circle_km};
pub use db::{GeoDb, GeoError, GeoInfo, GeoLookup, Located};
