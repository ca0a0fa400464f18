//! The on-disk shape of `cdn.toml` (serde, unknown fields refused). Values that can be
//! wrong in more ways than their type says stay strings here, so that validation can
//! report every problem at once instead of stopping at the first.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSpec {
    pub cdn: Option<CdnSpec>,
    #[serde(default)]
    pub health: HealthSpec,
    #[serde(default)]
    pub edge: Vec<EdgeSpec>,
    #[serde(default)]
    pub domain: Vec<DomainSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CdnSpec {
    pub zone: Spanned<String>,
    pub suffix: Spanned<String>,
    pub ttl: Option<Spanned<i64>>,
    pub answers: Option<Spanned<i64>>,
    pub max_domains: Option<Spanned<i64>>,
    pub default_country: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthSpec {
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub rise: Option<Spanned<i64>>,
    pub fall: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EdgeSpec {
    pub name: Spanned<String>,
    pub country: String,
    pub lat: Option<Number>,
    pub lon: Option<Number>,
    #[serde(default)]
    pub ipv4: Vec<String>,
    #[serde(default)]
    pub ipv6: Vec<String>,
    pub health: Option<String>,
    pub weight: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DomainSpec {
    pub name: Spanned<String>,
    pub region: String,
    pub business: String,
    pub origins: Vec<String>,
    pub origin_port: Option<i64>,
    pub origin_scheme: Option<String>,
    pub origin_host: Option<String>,
    pub icp: Option<String>,
}

/// A TOML number written either way (`lat = 30` or `lat = 30.27`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub(crate) enum Number {
    Integer(i64),
    Float(f64),
}

impl Number {
    pub fn value(self) -> f64 {
        match self {
            Number::Integer(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}
