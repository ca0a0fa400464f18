//! Host-name rules for accelerated domains, origins and the CDN zone.

use std::fmt;

/// Longest presentation form of a name without its trailing dot (255 octets on the wire).
pub(crate) const MAX_NAME_LEN: usize = 253;

/// What is wrong with a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NameProblem {
    Empty,
    /// Non-ASCII characters or an `xn--` label: internationalised names are refused.
    Idn,
    TooLong(usize),
    EmptyLabel,
    LabelTooLong(String),
    BadCharacter(char),
    HyphenAtLabelEdge(String),
    /// `*` anywhere but as the whole leftmost label (or in a name that takes none).
    MisplacedWildcard,
    /// A single label ("localhost", "*.com"): not a name a CDN can accelerate.
    TooFewLabels,
    /// The last label is all digits: it looks like an IP address, not a name.
    NumericTopLabel,
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::Empty => f.write_str("the name is empty"),
            NameProblem::Idn => f.write_str(
                "internationalised (IDN / non-ASCII) names are not supported; use an ASCII name",
            ),
            NameProblem::TooLong(len) => {
                write!(f, "the name is {len} characters long; at most {MAX_NAME_LEN} fit in DNS")
            }
            NameProblem::EmptyLabel => f.write_str("the name has an empty label (\"..\" or a leading dot)"),
            NameProblem::LabelTooLong(label) => {
                write!(f, "label {label:?} is longer than 63 characters")
            }
            NameProblem::BadCharacter(c) => write!(
                f,
                "character {c:?} is not allowed: use letters, digits and hyphens only"
            ),
            NameProblem::HyphenAtLabelEdge(label) => {
                write!(f, "label {label:?} starts or ends with a hyphen")
            }
            NameProblem::MisplacedWildcard => f.write_str(
                "a wildcard is only allowed as the whole leftmost label of a domain, as in \"*.customer.com\"",
            ),
            NameProblem::TooFewLabels => {
                f.write_str("the name needs at least two labels below the wildcard or root, as in \"customer.com\"")
            }
            NameProblem::NumericTopLabel => {
                f.write_str("the last label is all digits: this is not a host name")
            }
        }
    }
}

/// Validates a host name (letters, digits, hyphens; at least two labels) and returns it
/// lowercased without a trailing dot. With `allow_wildcard`, a leading `*.` is accepted.
pub(crate) fn host_name(raw: &str, allow_wildcard: bool) -> Result<String, NameProblem> {
    let name = raw.strip_suffix('.').unwrap_or(raw);
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if !name.is_ascii() {
        return Err(NameProblem::Idn);
    }
    let name = name.to_ascii_lowercase();
    if name.len() > MAX_NAME_LEN {
        return Err(NameProblem::TooLong(name.len()));
    }
    let base = match name.strip_prefix("*.") {
        Some(base) if allow_wildcard => base,
        _ => &name,
    };
    if base.contains('*') {
        return Err(NameProblem::MisplacedWildcard);
    }
    check_labels(base)?;
    if base.split('.').count() < 2 {
        return Err(NameProblem::TooFewLabels);
    }
    if base
        .rsplit('.')
        .next()
        .is_some_and(|top| top.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(NameProblem::NumericTopLabel);
    }
    Ok(name)
}

/// Validates a zone-like name (one label is enough, e.g. a TLD-level zone in tests) and
/// returns it lowercased without a trailing dot.
pub(crate) fn zone_name(raw: &str) -> Result<String, NameProblem> {
    let name = raw.strip_suffix('.').unwrap_or(raw);
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if !name.is_ascii() {
        return Err(NameProblem::Idn);
    }
    let name = name.to_ascii_lowercase();
    if name.len() > MAX_NAME_LEN {
        return Err(NameProblem::TooLong(name.len()));
    }
    if name.contains('*') {
        return Err(NameProblem::MisplacedWildcard);
    }
    check_labels(&name)?;
    Ok(name)
}

/// Whether `name` is `ancestor` or a name below it (both lowercase, written alike: both
/// fully qualified or neither).
pub(crate) fn is_at_or_below(name: &str, ancestor: &str) -> bool {
    name == ancestor
        || name
            .strip_suffix(ancestor)
            .is_some_and(|rest| rest.ends_with('.'))
}

fn check_labels(name: &str) -> Result<(), NameProblem> {
    for label in name.split('.') {
        if label.is_empty() {
            return Err(NameProblem::EmptyLabel);
        }
        if label.len() > 63 {
            return Err(NameProblem::LabelTooLong(label.to_owned()));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(NameProblem::BadCharacter(c));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(NameProblem::HyphenAtLabelEdge(label.to_owned()));
        }
        if label.starts_with("xn--") {
            return Err(NameProblem::Idn);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises_host_names() {
        assert_eq!(
            host_name("IMG.Customer.com.", false).unwrap(),
            "img.customer.com"
        );
        assert_eq!(host_name("*.customer.com", true).unwrap(), "*.customer.com");
        assert_eq!(host_name("a-1.b2.io", false).unwrap(), "a-1.b2.io");
    }

    #[test]
    fn refuses_bad_names() {
        assert_eq!(host_name("", false), Err(NameProblem::Empty));
        assert_eq!(host_name("图片.customer.com", false), Err(NameProblem::Idn));
        assert_eq!(
            host_name("xn--fiqs8s.customer.com", false),
            Err(NameProblem::Idn)
        );
        assert_eq!(host_name("a..com", false), Err(NameProblem::EmptyLabel));
        assert_eq!(
            host_name("a_b.com", false),
            Err(NameProblem::BadCharacter('_'))
        );
        assert_eq!(
            host_name("a.com:80", false),
            Err(NameProblem::BadCharacter(':'))
        );
        assert!(matches!(
            host_name("-a.com", false),
            Err(NameProblem::HyphenAtLabelEdge(_))
        ));
        assert_eq!(
            host_name("localhost", false),
            Err(NameProblem::TooFewLabels)
        );
        assert_eq!(host_name("*.com", true), Err(NameProblem::TooFewLabels));
        assert_eq!(
            host_name("10.0.0.300", false),
            Err(NameProblem::NumericTopLabel)
        );
        assert!(matches!(
            host_name(&"a".repeat(64), false),
            Err(NameProblem::LabelTooLong(_))
        ));
        let long = format!("{}.com", ["abcdefghi"; 30].join("."));
        assert!(matches!(
            host_name(&long, false),
            Err(NameProblem::TooLong(_))
        ));
    }

    #[test]
    fn wildcards_only_leftmost_and_whole() {
        assert_eq!(
            host_name("*.customer.com", false),
            Err(NameProblem::MisplacedWildcard)
        );
        assert_eq!(
            host_name("img.*.com", true),
            Err(NameProblem::MisplacedWildcard)
        );
        assert_eq!(
            host_name("*img.customer.com", true),
            Err(NameProblem::MisplacedWildcard)
        );
        assert_eq!(
            host_name("*.*.customer.com", true),
            Err(NameProblem::MisplacedWildcard)
        );
    }
}
