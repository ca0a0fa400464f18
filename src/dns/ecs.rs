//! EDNS Client Subnet (RFC 7871): validating the option a query carries, and the option an
//! answer echoes.
//!
//! hickory decodes the option without checking it. Like gdnsd, Meridian answers FORMERR to a
//! query whose option has a non-zero scope, a source prefix longer than its family allows, or
//! address bits set past the source prefix.

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
