//! The IPAM core shared by host-local and static: address ranges and range sets, the
//! host-local on-disk store, the allocator, and resolv.conf parsing.

pub mod allocator;
pub mod range;
pub mod resolv;
pub mod store;

use crate::cni::CniError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// Everything that can go wrong in the IPAM core. Each message names the object concerned.
#[derive(Debug)]
pub enum IpamError {
    /// The configuration is invalid (ranges, addresses, requested IPs).
    Config(String),
    /// A store operation failed on `path`.
    Store { op: &'static str, path: PathBuf, source: std::io::Error },
    /// Allocation failed (address taken, range set exhausted, ...).
    Alloc(String),
}

impl IpamError {
    pub fn store(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> IpamError {
        IpamError::Store { op, path: path.into(), source }
    }
}

impl fmt::Display for IpamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpamError::Config(m) | IpamError::Alloc(m) => f.write_str(m),
            IpamError::Store { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for IpamError {}

impl From<IpamError> for CniError {
    fn from(e: IpamError) -> CniError {
        match e {
            IpamError::Config(_) => CniError::invalid_config(e.to_string()),
            _ => CniError::internal(e.to_string()),
        }
    }
}

/// An address as a number, for range arithmetic.
pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address `n` in the family of `like`. IPv4 keeps only the low 32 bits.
pub fn ip_from_u128(n: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// The next address, wrapping at the end of the family's space.
pub fn next_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(1))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(1))),
    }
}

/// An IPv4-mapped IPv6 address is the IPv4 address (as Go's `To4` treats it).
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Parse an address given as `a.b.c.d`, `x::y`, or either with a `/prefix` (ignored).
pub fn parse_ip_maybe_cidr(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let addr = s.split_once('/').map_or(s, |(a, _)| a);
    addr.parse::<IpAddr>().ok().map(canonical_ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        let a: IpAddr = "10.0.0.255".parse().unwrap();
        assert_eq!(next_ip(a), "10.0.1.0".parse::<IpAddr>().unwrap());
        assert_eq!(next_ip("255.255.255.255".parse().unwrap()), "0.0.0.0".parse::<IpAddr>().unwrap());
        let b: IpAddr = "2001:db8::ffff".parse().unwrap();
        assert_eq!(next_ip(b), "2001:db8::1:0".parse::<IpAddr>().unwrap());
        assert_eq!(ip_from_u128(ip_to_u128(a), a), a);
        assert_eq!(ip_from_u128(ip_to_u128(b), b), b);
    }

    #[test]
    fn parsing() {
        assert_eq!(parse_ip_maybe_cidr("10.0.0.5/24"), Some("10.0.0.5".parse().unwrap()));
        assert_eq!(parse_ip_maybe_cidr(" 2001:db8::5 "), Some("2001:db8::5".parse().unwrap()));
        assert_eq!(parse_ip_maybe_cidr("::ffff:10.0.0.5"), Some("10.0.0.5".parse().unwrap()));
        assert_eq!(parse_ip_maybe_cidr("nope"), None);
        assert_eq!(parse_ip_maybe_cidr(""), None);
    }
}
