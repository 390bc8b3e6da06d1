//! Address ranges and range sets: parsing, canonicalisation and validation, with the
//! reference's rules and messages.

use super::{IpamError, canonical_ip, ip_from_u128, ip_to_u128, next_ip};
use crate::cni::SpecVersion;
use ipnet::IpNet;
use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;

/// One range as written in a config (`ranges`, `ipRanges`, or the legacy top-level fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RangeConf {
    #[serde(default)]
    pub subnet: Option<String>,
    #[serde(rename = "rangeStart", default)]
    pub range_start: Option<String>,
    #[serde(rename = "rangeEnd", default)]
    pub range_end: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
}

/// A canonical range: `start..=end` inside `subnet`; `gateway` is never handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNet,
    pub start: IpAddr,
    pub end: IpAddr,
    pub gateway: IpAddr,
}

fn parse_opt_ip(field: &str, v: &Option<String>) -> Result<Option<IpAddr>, String> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<IpAddr>()
            .map(|ip| Some(canonical_ip(ip)))
            .map_err(|_| format!("invalid {field} \"{s}\": invalid IP address")),
    }
}

/// The last address of a subnet; for IPv4 the one before the broadcast address.
fn last_ip(subnet: &IpNet) -> IpAddr {
    let b = subnet.broadcast();
    match b {
        IpAddr::V4(_) => ip_from_u128(ip_to_u128(b).wrapping_sub(1), b),
        IpAddr::V6(_) => b,
    }
}

/// `addr` lies in `subnet` (same family) and between the optional bounds.
fn within(subnet: &IpNet, start: Option<IpAddr>, end: Option<IpAddr>, addr: IpAddr) -> bool {
    let addr = canonical_ip(addr);
    if addr.is_ipv4() != subnet.addr().is_ipv4() || !subnet.contains(&addr) {
        return false;
    }
    let n = ip_to_u128(addr);
    start.is_none_or(|s| n >= ip_to_u128(s)) && end.is_none_or(|e| n <= ip_to_u128(e))
}

impl Range {
    /// Fill in defaults and check the range, as the reference's `Canonicalize` does.
    pub fn canonicalize(conf: &RangeConf) -> Result<Range, String> {
        let text = conf.subnet.as_deref().map(str::trim).unwrap_or_default();
        if text.is_empty() {
            return Err("IP <nil> not v4 nor v6".to_string());
        }
        let subnet: IpNet = text.parse().map_err(|_| format!("invalid CIDR address: {text}"))?;
        // Go reads an IPv4-mapped address as IPv4, which a 128-bit mask does not fit.
        if let IpNet::V6(n) = subnet
            && n.addr().to_ipv4_mapped().is_some()
        {
            return Err("IPNet IP and Mask version mismatch".into());
        }
        if subnet.prefix_len() > subnet.max_prefix_len().saturating_sub(2) {
            return Err(format!("Network {subnet} too small to allocate from"));
        }
        if subnet.addr() != subnet.network() {
            return Err(format!(
                "Network has host bits set. For a subnet mask of length {} the network address is {}",
                subnet.prefix_len(),
                subnet.network()
            ));
        }
        let gateway = parse_opt_ip("gateway", &conf.gateway)?.unwrap_or_else(|| next_ip(subnet.network()));
        let start_in = parse_opt_ip("rangeStart", &conf.range_start)?;
        let end_in = parse_opt_ip("rangeEnd", &conf.range_end)?;
        let start = match start_in {
            Some(s) if !within(&subnet, Some(s), end_in, s) => {
                return Err(format!("RangeStart {s} not in network {subnet}"));
            }
            Some(s) => s,
            None => next_ip(subnet.network()),
        };
        let end = match end_in {
            Some(e) if !within(&subnet, Some(start), Some(e), e) => {
                return Err(format!("RangeEnd {e} not in network {subnet}"));
            }
            Some(e) => e,
            None => last_ip(&subnet),
        };
        Ok(Range { subnet, start, end, gateway })
    }

    pub fn is_v4(&self) -> bool {
        self.start.is_ipv4()
    }

    /// `addr` is an allocatable address of this range (the gateway included).
    pub fn contains(&self, addr: IpAddr) -> bool {
        within(&self.subnet, Some(self.start), Some(self.end), addr)
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        self.is_v4() == other.is_v4()
            && (self.contains(other.start)
                || self.contains(other.end)
                || other.contains(self.start)
                || other.contains(self.end))
    }

    /// `addr` with this range's prefix length.
    pub fn with_prefix(&self, addr: IpAddr) -> IpNet {
        IpNet::new(addr, self.subnet.prefix_len()).unwrap_or(self.subnet)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// A non-empty list of non-overlapping ranges of one family; one address is taken per set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet(pub Vec<Range>);

impl RangeSet {
    pub fn canonicalize(confs: &[RangeConf]) -> Result<RangeSet, String> {
        if confs.is_empty() {
            return Err("empty range set".to_string());
        }
        let ranges = confs.iter().map(Range::canonicalize).collect::<Result<Vec<_>, _>>()?;
        if ranges.iter().any(|r| r.is_v4() != ranges[0].is_v4()) {
            return Err("mixed address families".to_string());
        }
        for (i, r1) in ranges.iter().enumerate() {
            if let Some(r2) = ranges[i + 1..].iter().find(|r2| r1.overlaps(r2)) {
                return Err(format!("subnets {r1} and {r2} overlap"));
            }
        }
        Ok(RangeSet(ranges))
    }

    pub fn ranges(&self) -> &[Range] {
        &self.0
    }

    pub fn is_v4(&self) -> bool {
        self.0.first().is_some_and(Range::is_v4)
    }

    pub fn range_for(&self, addr: IpAddr) -> Option<&Range> {
        self.0.iter().find(|r| r.contains(addr))
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        self.range_for(addr).is_some()
    }

    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.0.iter().any(|a| other.0.iter().any(|b| a.overlaps(b)))
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(Range::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// Canonicalise every range set of a config and check them against each other and `version`.
pub fn canonicalize_sets(sets: &[Vec<RangeConf>], version: SpecVersion) -> Result<Vec<RangeSet>, IpamError> {
    if sets.is_empty() {
        return Err(IpamError::Config("no IP ranges specified".to_string()));
    }
    let mut out = Vec::with_capacity(sets.len());
    for (i, s) in sets.iter().enumerate() {
        let set = RangeSet::canonicalize(s).map_err(|e| IpamError::Config(format!("invalid range set {i}: {e}")))?;
        out.push(set);
    }
    let v4 = out.iter().filter(|s| s.is_v4()).count();
    if (v4 > 1 || out.len() - v4 > 1) && version < SpecVersion::V0_3_0 {
        return Err(IpamError::Config(format!(
            "CNI version {version} does not support more than 1 address per family"
        )));
    }
    for (i, a) in out.iter().enumerate() {
        if let Some(j) = out[i + 1..].iter().position(|b| a.overlaps(b)) {
            return Err(IpamError::Config(format!("range set {i} overlaps with {}", i + j + 1)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc(subnet: &str, start: Option<&str>, end: Option<&str>, gw: Option<&str>) -> RangeConf {
        RangeConf {
            subnet: Some(subnet.to_string()),
            range_start: start.map(String::from),
            range_end: end.map(String::from),
            gateway: gw.map(String::from),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_v4_and_v6() {
        let r = Range::canonicalize(&rc("10.1.2.0/24", None, None, None)).unwrap();
        assert_eq!((r.start, r.end, r.gateway), (ip("10.1.2.1"), ip("10.1.2.254"), ip("10.1.2.1")));
        let r = Range::canonicalize(&rc("2001:db8:1::/64", None, None, None)).unwrap();
        assert_eq!(r.start, ip("2001:db8:1::1"));
        assert_eq!(r.end, ip("2001:db8:1::ffff:ffff:ffff:ffff"));
        assert_eq!(r.gateway, ip("2001:db8:1::1"));
        assert_eq!(r.to_string(), "2001:db8:1::1-2001:db8:1:0:ffff:ffff:ffff:ffff");
        let r = Range::canonicalize(&rc("10.0.0.0/30", None, None, Some("10.0.0.2"))).unwrap();
        assert_eq!((r.start, r.end, r.gateway), (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.2")));
        // The gateway need not be in the subnet.
        assert!(Range::canonicalize(&rc("10.0.0.0/24", None, None, Some("192.168.0.1"))).is_ok());
    }

    #[test]
    fn canonicalisation_errors() {
        let e = |c: RangeConf| Range::canonicalize(&c).unwrap_err();
        assert_eq!(e(rc("10.0.0.0/31", None, None, None)), "Network 10.0.0.0/31 too small to allocate from");
        assert_eq!(e(rc("2001:db8::/127", None, None, None)), "Network 2001:db8::/127 too small to allocate from");
        assert_eq!(e(rc("::ffff:10.80.0.0/124", None, None, None)), "IPNet IP and Mask version mismatch");
        assert_eq!(
            e(rc("10.0.0.5/24", None, None, None)),
            "Network has host bits set. For a subnet mask of length 24 the network address is 10.0.0.0"
        );
        assert_eq!(e(rc("10.0.0.0/33", None, None, None)), "invalid CIDR address: 10.0.0.0/33");
        assert_eq!(e(RangeConf::default()), "IP <nil> not v4 nor v6");
        assert_eq!(
            e(rc("10.0.0.0/24", Some("10.0.1.1"), None, None)),
            "RangeStart 10.0.1.1 not in network 10.0.0.0/24"
        );
        assert_eq!(e(rc("10.0.0.0/24", None, Some("10.0.1.1"), None)), "RangeEnd 10.0.1.1 not in network 10.0.0.0/24");
        assert_eq!(
            e(rc("10.0.0.0/24", Some("10.0.0.50"), Some("10.0.0.40"), None)),
            "RangeStart 10.0.0.50 not in network 10.0.0.0/24"
        );
        assert_eq!(
            e(rc("10.0.0.0/24", Some("2001:db8::1"), None, None)),
            "RangeStart 2001:db8::1 not in network 10.0.0.0/24"
        );
        assert_eq!(e(rc("10.0.0.0/24", Some("x"), None, None)), "invalid rangeStart \"x\": invalid IP address");
    }

    #[test]
    fn range_sets() {
        let s = RangeSet::canonicalize(&[
            rc("10.0.0.0/24", Some("10.0.0.10"), Some("10.0.0.20"), None),
            rc("10.0.1.0/24", None, None, None),
        ])
        .unwrap();
        assert_eq!(s.to_string(), "10.0.0.10-10.0.0.20,10.0.1.1-10.0.1.254");
        assert!(s.contains(ip("10.0.0.10")) && s.contains(ip("10.0.1.254")));
        assert!(!s.contains(ip("10.0.0.9")) && !s.contains(ip("10.0.1.255")) && !s.contains(ip("2001:db8::1")));
        assert_eq!(RangeSet::canonicalize(&[]).unwrap_err(), "empty range set");
        let mixed = [rc("10.0.0.0/24", None, None, None), rc("2001:db8::/64", None, None, None)];
        assert_eq!(RangeSet::canonicalize(&mixed).unwrap_err(), "mixed address families");
        let ov = [rc("10.0.0.0/24", None, None, None), rc("10.0.0.0/25", None, None, None)];
        assert_eq!(
            RangeSet::canonicalize(&ov).unwrap_err(),
            "subnets 10.0.0.1-10.0.0.254 and 10.0.0.1-10.0.0.126 overlap"
        );
        // Disjoint pieces of one subnet are fine.
        let split = [
            rc("10.0.0.0/24", Some("10.0.0.1"), Some("10.0.0.9"), None),
            rc("10.0.0.0/24", Some("10.0.0.10"), Some("10.0.0.19"), None),
        ];
        assert!(RangeSet::canonicalize(&split).is_ok());
    }

    #[test]
    fn sets_of_a_config() {
        let v4 = vec![rc("10.0.0.0/24", None, None, None)];
        let v4b = vec![rc("10.0.1.0/24", None, None, None)];
        let v6 = vec![rc("2001:db8::/64", None, None, None)];
        assert_eq!(canonicalize_sets(&[], SpecVersion::V1_0_0).unwrap_err().to_string(), "no IP ranges specified");
        assert_eq!(canonicalize_sets(&[v4.clone(), v6.clone()], SpecVersion::V0_2_0).unwrap().len(), 2);
        let e = canonicalize_sets(&[v4.clone(), v4b.clone()], SpecVersion::V0_2_0).unwrap_err();
        assert_eq!(e.to_string(), "CNI version 0.2.0 does not support more than 1 address per family");
        assert_eq!(canonicalize_sets(&[v4.clone(), v4b, v6], SpecVersion::V0_3_0).unwrap().len(), 3);
        let e = canonicalize_sets(&[v4.clone(), v4], SpecVersion::V1_0_0).unwrap_err();
        assert_eq!(e.to_string(), "range set 0 overlaps with 1");
        let bad = vec![rc("10.0.0.0/32", None, None, None)];
        let e = canonicalize_sets(&[bad], SpecVersion::V1_0_0).unwrap_err();
        assert_eq!(e.to_string(), "invalid range set 0: Network 10.0.0.0/32 too small to allocate from");
    }
}
