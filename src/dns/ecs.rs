//! EDNS Client Subnet (RFC 7871): validating the option a query carries, and the option an
//! answer echoes.
//!
//! hickory decodes the option without checking it. Like gdnsd, Meridian answers FORMERR to a
//! query whose option has a non-zero scope, a source prefix longer than its family allows,
//! address bits set past the source prefix, or more (or fewer) address octets than the prefix
//! needs. hickory reads only the octets the prefix needs and drops the option's length, so
//! that last check reads the option's length from the raw message ([`declared_address_len`]).

use std::net::IpAddr;

use hickory_proto::rr::rdata::opt::ClientSubnet;

/// A validated client subnet: the address (bits past the prefix are zero) and its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientNet {
    pub addr: IpAddr,
    pub source_prefix: u8,
}

/// Why an ECS option is malformed (the query gets FORMERR).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EcsError {
    #[error("ECS scope prefix must be 0 in a query, got {0}")]
    ScopeInQuery(u8),
    #[error("ECS source prefix {prefix} is longer than the address family allows ({max})")]
    PrefixTooLong { prefix: u8, max: u8 },
    #[error("ECS address has bits set past its source prefix /{0}")]
    BitsPastPrefix(u8),
    #[error("ECS address is {declared} octets long; source prefix /{prefix} needs {needed}")]
    AddressLength {
        prefix: u8,
        declared: usize,
        needed: usize,
    },
}

/// Check a decoded option against RFC 7871 section 6.
///
/// ```
/// use hickory_proto::rr::rdata::opt::ClientSubnet;
/// use meridian::dns::ecs::{EcsError, validate};
///
/// let clean = ClientSubnet::new("192.0.2.0".parse().unwrap(), 24, 0);
/// assert_eq!(validate(&clean).unwrap().source_prefix, 24);
/// let dirty = ClientSubnet::new("192.0.2.1".parse().unwrap(), 24, 0);
/// assert_eq!(validate(&dirty), Err(EcsError::BitsPastPrefix(24)));
/// ```
pub fn validate(subnet: &ClientSubnet) -> Result<ClientNet, EcsError> {
    if subnet.scope_prefix() != 0 {
        return Err(EcsError::ScopeInQuery(subnet.scope_prefix()));
    }
    let prefix = subnet.source_prefix();
    let (bits, max) = match subnet.addr() {
        IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    if prefix > max {
        return Err(EcsError::PrefixTooLong { prefix, max });
    }
    let host_mask = if prefix == 0 {
        u128::MAX
    } else {
        u128::MAX >> prefix
    };
    if bits & host_mask != 0 {
        return Err(EcsError::BitsPastPrefix(prefix));
    }
    Ok(ClientNet {
        addr: subnet.addr(),
        source_prefix: prefix,
    })
}

/// Check the address length the option declared on the wire (see [`declared_address_len`])
/// against the octets its source prefix needs (RFC 7871 section 6: "more ADDRESS octets than
/// are needed MUST" get FORMERR).
pub fn check_address_len(net: &ClientNet, declared: usize) -> Result<(), EcsError> {
    let needed = usize::from(net.source_prefix).div_ceil(8);
    if declared != needed {
        return Err(EcsError::AddressLength {
            prefix: net.source_prefix,
            declared,
            needed,
        });
    }
    Ok(())
}

/// The ADDRESS length, in octets, of the first ECS option in a DNS message, read from the
/// raw bytes. `None` when the message has no OPT record with an ECS option, or cannot be
/// walked (callers run this only on messages hickory has already decoded).
pub fn declared_address_len(message: &[u8]) -> Option<usize> {
    const OPT: u16 = 41;
    const ECS: u16 = 8;
    let count = |at: usize| Some(usize::from(read_u16(message, at)?));
    let (questions, records) = (count(4)?, count(6)? + count(8)? + count(10)?);
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(message, at)? + 4;
    }
    for _ in 0..records {
        at = skip_name(message, at)?;
        let rtype = read_u16(message, at)?;
        let rdlength = usize::from(read_u16(message, at + 8)?);
        let rdata = at + 10;
        at = rdata + rdlength;
        if rtype != OPT {
            continue;
        }
        let mut option = rdata;
        while option + 4 <= at {
            let code = read_u16(message, option)?;
            let len = usize::from(read_u16(message, option + 2)?);
            if code == ECS {
                // FAMILY (2), SOURCE PREFIX (1), SCOPE PREFIX (1), then ADDRESS.
                return len.checked_sub(4);
            }
            option += 4 + len;
        }
        return None;
    }
    None
}

fn read_u16(message: &[u8], at: usize) -> Option<u16> {
    let bytes = message.get(at..at + 2)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

/// The offset just past the (possibly compressed) name starting at `at`.
fn skip_name(message: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *message.get(at)?;
        match len {
            0 => return Some(at + 1),
            // A compression pointer ends the name in place.
            l if l & 0xC0 == 0xC0 => return Some(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}

/// The ECS option data of a query (FAMILY, SOURCE PREFIX, SCOPE PREFIX, ADDRESS: the
/// option's bytes after its code and length), read straight from the wire for the fast
/// path. `Some` only for an option that passes every check [`validate`] and
/// [`check_address_len`] make; anything else is `None`, and the caller leaves the query to
/// the full decoder, which answers it (FORMERR) as before.
pub fn parse_option(data: &[u8]) -> Option<ClientNet> {
    let (&[f0, f1, source, scope], address) = data.split_first_chunk::<4>()?;
    let max = match u16::from_be_bytes([f0, f1]) {
        1 => 32,
        2 => 128,
        _ => return None,
    };
    if scope != 0 || source > max || address.len() != usize::from(source).div_ceil(8) {
        return None;
    }
    let mut octets = [0u8; 16];
    octets[..address.len()].copy_from_slice(address);
    let bits = u128::from_be_bytes(octets);
    let host_mask = if source == 0 {
        u128::MAX
    } else {
        u128::MAX >> source
    };
    if bits & host_mask != 0 {
        return None;
    }
    let addr = if max == 32 {
        IpAddr::from([octets[0], octets[1], octets[2], octets[3]])
    } else {
        IpAddr::from(octets)
    };
    Some(ClientNet {
        addr,
        source_prefix: source,
    })
}

/// The option an answer carries back: the query's address and source prefix, and the scope
/// the answer is valid for (never wider than the source prefix).
pub fn echo(client: &ClientNet, scope_prefix: u8) -> ClientSubnet {
    ClientSubnet::new(
        client.addr,
        client.source_prefix,
        scope_prefix.min(client.source_prefix),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(addr: &str, source: u8, scope: u8) -> ClientSubnet {
        ClientSubnet::new(addr.parse().unwrap(), source, scope)
    }

    #[test]
    fn accepts_a_clean_subnet() {
        let net = validate(&subnet("192.0.2.0", 24, 0)).unwrap();
        assert_eq!(net.source_prefix, 24);
        assert!(validate(&subnet("2001:db8::", 56, 0)).is_ok());
        assert!(validate(&subnet("0.0.0.0", 0, 0)).is_ok());
    }

    /// A query for `a.` with an OPT record whose only option is ECS with `address` bytes.
    fn query_with_ecs(family: u16, source: u8, address: &[u8]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        m.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1]);
        let option_len = 4 + address.len() as u16;
        m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
        m.extend_from_slice(&(4 + option_len).to_be_bytes());
        m.extend_from_slice(&8u16.to_be_bytes());
        m.extend_from_slice(&option_len.to_be_bytes());
        m.extend_from_slice(&family.to_be_bytes());
        m.extend_from_slice(&[source, 0]);
        m.extend_from_slice(address);
        m
    }

    #[test]
    fn reads_the_declared_address_length_from_the_wire() {
        assert_eq!(
            declared_address_len(&query_with_ecs(1, 24, &[192, 0, 2])),
            Some(3)
        );
        assert_eq!(
            declared_address_len(&query_with_ecs(1, 24, &[192, 0, 2, 0])),
            Some(4)
        );
        assert_eq!(declared_address_len(&query_with_ecs(2, 0, &[])), Some(0));
        // No additional records: no option.
        let mut bare = query_with_ecs(1, 24, &[192, 0, 2]);
        bare[11] = 0;
        bare.truncate(12 + 7);
        assert_eq!(declared_address_len(&bare), None);
    }

    #[test]
    fn refuses_more_address_octets_than_the_prefix_needs() {
        let net = ClientNet {
            addr: "192.0.2.0".parse().unwrap(),
            source_prefix: 24,
        };
        assert_eq!(check_address_len(&net, 3), Ok(()));
        assert_eq!(
            check_address_len(&net, 4),
            Err(EcsError::AddressLength {
                prefix: 24,
                declared: 4,
                needed: 3
            })
        );
    }

    #[test]
    fn the_wire_reader_agrees_with_the_decoded_checks() {
        let net = parse_option(&[0, 1, 24, 0, 192, 0, 2]).unwrap();
        assert_eq!(net.addr, "192.0.2.0".parse::<IpAddr>().unwrap());
        assert_eq!(net.source_prefix, 24);
        let v6 = parse_option(&[0, 2, 56, 0, 0x20, 1, 0xd, 0xb8, 0, 0, 0x12]).unwrap();
        assert_eq!(v6.addr, "2001:db8:0:1200::".parse::<IpAddr>().unwrap());
        assert!(parse_option(&[0, 1, 0, 0]).is_some(), "source /0");
        assert!(parse_option(&[0, 1, 24, 8, 192, 0, 2]).is_none(), "scope");
        assert!(
            parse_option(&[0, 1, 24, 0, 192, 0, 2, 0]).is_none(),
            "octets"
        );
        assert!(
            parse_option(&[0, 1, 24, 0, 192, 0, 3 | 1]).is_some(),
            "in prefix"
        );
        assert!(
            parse_option(&[0, 1, 23, 0, 192, 0, 3]).is_none(),
            "bits past"
        );
        assert!(
            parse_option(&[0, 1, 33, 0, 1, 2, 3, 4, 5]).is_none(),
            "too long"
        );
        assert!(parse_option(&[0, 3, 0, 0]).is_none(), "family");
    }

    #[test]
    fn refuses_scope_in_query() {
        assert_eq!(
            validate(&subnet("192.0.2.0", 24, 16)),
            Err(EcsError::ScopeInQuery(16))
        );
    }

    #[test]
    fn refuses_bits_past_prefix() {
        assert_eq!(
            validate(&subnet("192.0.2.1", 24, 0)),
            Err(EcsError::BitsPastPrefix(24))
        );
        assert_eq!(
            validate(&subnet("2001:db8::1", 64, 0)),
            Err(EcsError::BitsPastPrefix(64))
        );
    }

    #[test]
    fn refuses_prefix_longer_than_family() {
        assert_eq!(
            validate(&subnet("192.0.2.0", 33, 0)),
            Err(EcsError::PrefixTooLong {
                prefix: 33,
                max: 32
            })
        );
    }

    #[test]
    fn echo_never_widens_past_the_source() {
        let net = ClientNet {
            addr: "192.0.2.0".parse().unwrap(),
            source_prefix: 24,
        };
        assert_eq!(echo(&net, 16).scope_prefix(), 16);
        assert_eq!(echo(&net, 28).scope_prefix(), 24);
    }
}
