//! ISO 3166-1 alpha-2 country codes and the embedded centroid table.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

/// An ISO 3166-1 alpha-2 country code, always two ASCII uppercase letters.
///
/// "CN" is mainland China; HK, MO and TW are separate codes and are not mainland for
/// acceleration-region purposes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 2]);

impl Country {
    /// Mainland China.
    pub const CN: Country = Country(*b"CN");
    /// The United States, the default placement of clients the database does not know.
    pub const US: Country = Country(*b"US");

    /// The code from two ASCII letters, either case; `None` for anything else.
    pub fn from_bytes(code: [u8; 2]) -> Option<Country> {
        if code.iter().all(u8::is_ascii_alphabetic) {
            Some(Country(code.map(|b| b.to_ascii_uppercase())))
        } else {
            None
        }
    }

    /// The two-letter code, uppercase.
    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// True for "CN" only (HK, MO and TW are outside the mainland).
    pub fn is_mainland(self) -> bool {
        self == Country::CN
    }

    /// True when the embedded centroid table knows this code.
    pub fn is_known(self) -> bool {
        centroid(self).is_some()
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Country({})", self.as_str())
    }
}

/// Why a string is not a country code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a two-letter ISO 3166-1 country code")]
pub struct BadCountryCode(pub String);

impl FromStr for Country {
    type Err = BadCountryCode;

    /// Two ASCII letters, any case ("cn" -> "CN").
    fn from_str(s: &str) -> Result<Country, BadCountryCode> {
        match s.as_bytes() {
            [a, b] => Country::from_bytes([*a, *b]).ok_or_else(|| BadCountryCode(s.to_owned())),
            _ => Err(BadCountryCode(s.to_owned())),
        }
    }
}

impl serde::Serialize for Country {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The centroid table, shipped in `geoip/` and compiled in so lookups need no file.
const CENTROIDS_CSV: &str = include_str!("../../geoip/country-centroids.csv");

/// Index of a code in the 26x26 table.
fn slot(country: Country) -> usize {
    let [a, b] = country.0;
    usize::from(a - b'A') * 26 + usize::from(b - b'A')
}

/// `(lat, lon)` per country code; `None` for codes the table does not list.
/// `(lat, lon)` in degrees.
type Position = (f64, f64);

static CENTROIDS: LazyLock<Box<[Option<Position>]>> =
    LazyLock::new(|| parse_centroids(CENTROIDS_CSV));

/// A country's population-weighted position `(lat, lon)`, in degrees.
///
/// Uses the table's `pop_lat/pop_lon`; the few codes without coordinates (AQ, BV, HM, UM and
/// the obsolete AN, CS) get their continent's mean position. `None` for codes not in the
/// table.
pub fn centroid(country: Country) -> Option<(f64, f64)> {
    CENTROIDS.get(slot(country)).copied().flatten()
}

/// Parses `iso2,continent,pop_lat,pop_lon,...`. Rows without coordinates get the mean of
/// their continent's rows (weighted by city count, averaged on the unit sphere); Antarctica
/// has no row with coordinates and gets the South Pole.
fn parse_centroids(csv: &str) -> Box<[Option<Position>]> {
    struct Row<'a> {
        country: Country,
        continent: &'a str,
        position: Option<(f64, f64)>,
        weight: f64,
    }
    let rows: Vec<Row<'_>> = csv
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split(',');
            let country = fields.next()?.parse::<Country>().ok()?;
            let continent = fields.next()?;
            let lat = fields.next()?.parse::<f64>().ok();
            let lon = fields.next()?.parse::<f64>().ok();
            let weight = fields.nth(2).and_then(|n| n.parse::<f64>().ok());
            Some(Row {
                country,
                continent,
                position: lat.zip(lon),
                weight: weight.unwrap_or(1.0).max(1.0),
            })
        })
        .collect();

    let continent_mean = |continent: &str| -> (f64, f64) {
        let mut sum = [0.0f64; 3];
        for row in rows.iter().filter(|r| r.continent == continent) {
            if let Some((lat, lon)) = row.position {
                let v = unit_vector(lat, lon);
                for (s, c) in sum.iter_mut().zip(v) {
                    *s += c * row.weight;
                }
            }
        }
        let norm = (sum[0] * sum[0] + sum[1] * sum[1] + sum[2] * sum[2]).sqrt();
        if norm < 1e-9 {
            return (-90.0, 0.0);
        }
        let lat = (sum[2] / norm).asin().to_degrees();
        let lon = sum[1].atan2(sum[0]).to_degrees();
        (lat, lon)
    };

    let mut table = vec![None; 26 * 26].into_boxed_slice();
    for row in &rows {
        let position = row
            .position
            .unwrap_or_else(|| continent_mean(row.continent));
        table[slot(row.country)] = Some(position);
    }
    table
}

/// The point on the unit sphere at `(lat, lon)` degrees.
pub(crate) fn unit_vector(lat: f64, lon: f64) -> [f64; 3] {
    let (lat, lon) = (lat.to_radians(), lon.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

/// Great-circle distance in kilometres between two `(lat, lon)` points (haversine).
pub fn great_circle_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0;
    let (lat1, lat2) = (a.0.to_radians(), b.0.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.1 - a.1).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Country {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_uppercases() {
        assert_eq!(c("cn"), Country::CN);
        assert_eq!(c("Us").to_string(), "US");
        assert!("C".parse::<Country>().is_err());
        assert!("CHN".parse::<Country>().is_err());
        assert!("C1".parse::<Country>().is_err());
        assert!("中".parse::<Country>().is_err());
    }

    #[test]
    fn only_cn_is_mainland() {
        assert!(c("CN").is_mainland());
        for other in ["HK", "MO", "TW", "US", "SG"] {
            assert!(!c(other).is_mainland(), "{other}");
        }
    }

    #[test]
    fn every_row_of_the_table_has_a_centroid() {
        let codes: Vec<Country> = CENTROIDS_CSV.lines().skip(1).map(|l| c(&l[..2])).collect();
        assert_eq!(codes.len(), 252);
        for code in codes {
            let (lat, lon) = centroid(code).unwrap_or_else(|| panic!("{code}"));
            assert!((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon));
        }
    }

    #[test]
    fn centroids_are_population_weighted_positions() {
        let (lat, lon) = centroid(Country::CN).unwrap();
        assert!((lat - 32.1932).abs() < 1e-9 && (lon - 114.3581).abs() < 1e-9);
        assert!(centroid(c("ZZ")).is_none());
        assert!(!c("ZZ").is_known());
        // UM has no coordinates of its own: Oceania's mean lies in the Pacific/Australia.
        let (lat, lon) = centroid(c("UM")).unwrap();
        assert!(
            (-50.0..10.0).contains(&lat) && (100.0..180.0).contains(&lon),
            "{lat},{lon}"
        );
    }

    #[test]
    fn great_circle_distance_is_plausible() {
        let beijing = (39.9075, 116.3972);
        let shanghai = (31.2222, 121.4581);
        let d = great_circle_km(beijing, shanghai);
        assert!((1000.0..1150.0).contains(&d), "{d}");
        assert!(great_circle_km(beijing, beijing) < 1e-6);
    }
}
