//! Allocation from one range set, in the reference's order: start just after the last
//! reserved address of the set (else at the first range's start), walk to the range's end,
//! continue with the next range (wrapping), skip each range's gateway, and give up after a
//! full cycle.

use super::IpamError;
use super::range::{Range, RangeSet};
use super::store::Locked;
use crate::cni::result::IpConfig;
use std::collections::HashSet;
use std::net::IpAddr;

/// The candidate addresses of a range set, in allocation order.
pub struct RangeIter<'a> {
    set: &'a RangeSet,
    idx: usize,
    cur: Option<IpAddr>,
    first: Option<IpAddr>,
}

impl<'a> RangeIter<'a> {
    /// Start after `last` when the set contains it, else at the set's first address.
    pub fn new(set: &'a RangeSet, last: Option<IpAddr>) -> RangeIter<'a> {
        let from_last = last.and_then(|ip| set.ranges().iter().position(|r| r.contains(ip)).map(|i| (i, ip)));
        match from_last {
            Some((idx, ip)) => RangeIter { set, idx, cur: Some(ip), first: None },
            None => RangeIter { set, idx: 0, cur: None, first: set.ranges().first().map(|r| r.start) },
        }
    }
}

impl<'a> Iterator for RangeIter<'a> {
    type Item = (IpAddr, &'a Range);

    fn next(&mut self) -> Option<Self::Item> {
        let ranges = self.set.ranges();
        if ranges.is_empty() {
            return None;
        }
        loop {
            let mut r = &ranges[self.idx];
            let Some(cur) = self.cur else {
                self.cur = Some(r.start);
                self.first = Some(r.start);
                if r.start == r.gateway {
                    continue;
                }
                return Some((r.start, r));
            };
            let next = if cur == r.end {
                self.idx = (self.idx + 1) % ranges.len();
                r = &ranges[self.idx];
                r.start
            } else {
                super::next_ip(cur)
            };
            self.cur = Some(next);
            match self.first {
                None => self.first = Some(next),
                Some(f) if f == next => return None,
                Some(_) => {}
            }
            if next == r.gateway {
                continue;
            }
            return Some((next, r));
        }
    }
}

/// Allocates from range set number `range_id` of a config.
pub struct Allocator<'a> {
    pub set: &'a RangeSet,
    pub range_id: usize,
}

impl Allocator<'_> {
    /// Reserve one address for (`id`, `ifname`): `requested` if given, else the next free one.
    /// `held` is what the attachment already holds in the store (`Store::held_by`): a second
    /// address from the same set is refused.
    pub fn get(
        &self,
        store: &Locked<'_>,
        id: &str,
        ifname: &str,
        requested: Option<IpAddr>,
        held: &[IpAddr],
    ) -> Result<IpConfig, IpamError> {
        let (ip, range) = match requested {
            Some(ip) => self.get_requested(store, id, ifname, ip)?,
            None => self.get_next(store, id, ifname, held)?,
        };
        Ok(IpConfig { interface: None, address: range.with_prefix(ip), gateway: Some(range.gateway) })
    }

    fn get_requested(
        &self,
        store: &Locked<'_>,
        id: &str,
        ifname: &str,
        ip: IpAddr,
    ) -> Result<(IpAddr, &Range), IpamError> {
        let range =
            self.set.range_for(ip).ok_or_else(|| IpamError::Alloc(format!("{ip} not in range set {}", self.set)))?;
        if ip == range.gateway {
            return Err(IpamError::Alloc(format!("requested ip {ip} is subnet's gateway")));
        }
        if !store.reserve(id, ifname, ip, self.range_id)? {
            return Err(IpamError::Alloc(format!(
                "requested IP address {ip} is not available in range set {}",
                self.set
            )));
        }
        Ok((ip, range))
    }

    fn get_next(
        &self,
        store: &Locked<'_>,
        id: &str,
        ifname: &str,
        held: &[IpAddr],
    ) -> Result<(IpAddr, &Range), IpamError> {
        // Two ADDs for one attachment are a runtime bug; the spec lets us refuse the second.
        if let Some(held) = held.iter().find(|ip| self.set.contains(**ip)) {
            return Err(IpamError::Alloc(format!(
                "{held} has been allocated to {id}, duplicate allocation is not allowed"
            )));
        }
        for (ip, range) in RangeIter::new(self.set, store.last_reserved(self.range_id)) {
            if store.reserve(id, ifname, ip, self.range_id)? {
                return Ok((ip, range));
            }
        }
        Err(self.exhausted())
    }

    pub fn exhausted(&self) -> IpamError {
        IpamError::Alloc(format!("no IP addresses available in range set: {}", self.set))
    }

    /// Whether at least one address of the set is free (for STATUS).
    pub fn has_free(&self, store: &Locked<'_>) -> Result<bool, IpamError> {
        let taken: HashSet<IpAddr> = store.reservations()?.into_iter().map(|r| r.ip).collect();
        Ok(RangeIter::new(self.set, None).any(|(ip, _)| !taken.contains(&ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::range::RangeConf;
    use crate::ipam::store::Store;

    /// What host-local does for one range set: look up what "eth0" of `id` holds, then allocate.
    fn get(a: &Allocator<'_>, l: &Locked<'_>, id: &str, want: Option<IpAddr>) -> Result<IpConfig, IpamError> {
        a.get(l, id, "eth0", want, &l.get_by_id(id, "eth0")?)
    }

    use crate::util::scratch::Scratch as Tmp;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// subnet, rangeStart, rangeEnd, gateway
    type R<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);

    fn set(ranges: &[R<'_>]) -> RangeSet {
        let confs: Vec<RangeConf> = ranges
            .iter()
            .map(|(s, a, b, g)| RangeConf {
                subnet: Some(s.to_string()),
                range_start: a.map(String::from),
                range_end: b.map(String::from),
                gateway: g.map(String::from),
            })
            .collect();
        RangeSet::canonicalize(&confs).unwrap()
    }

    fn order(s: &RangeSet, last: Option<&str>) -> Vec<String> {
        RangeIter::new(s, last.map(ip)).map(|(a, _)| a.to_string()).collect()
    }

    #[test]
    fn iteration_order_skips_gateway_and_wraps() {
        let s = set(&[("10.0.0.0/29", None, None, None)]);
        assert_eq!(order(&s, None), ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]);
        assert_eq!(order(&s, Some("10.0.0.4")), ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"]);
        // A last address outside the set is ignored.
        assert_eq!(order(&s, Some("10.9.0.4")).first().map(String::as_str), Some("10.0.0.2"));
        let s = set(&[("10.0.0.0/29", None, None, Some("10.0.0.4"))]);
        assert_eq!(order(&s, None), ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.5", "10.0.0.6"]);
        let s = set(&[
            ("10.0.0.0/24", Some("10.0.0.10"), Some("10.0.0.11"), None),
            ("10.0.1.0/24", Some("10.0.1.1"), Some("10.0.1.3"), None),
        ]);
        assert_eq!(order(&s, Some("10.0.0.11")), ["10.0.1.2", "10.0.1.3", "10.0.0.10", "10.0.0.11"]);
        let s = set(&[("2001:db8::/126", None, None, None)]);
        assert_eq!(order(&s, None), ["2001:db8::2", "2001:db8::3"]);
        // A range holding only its gateway yields nothing.
        let s = set(&[("10.0.0.0/24", Some("10.0.0.1"), Some("10.0.0.1"), None)]);
        assert!(order(&s, None).is_empty());
    }

    #[test]
    fn allocates_in_order_and_exhausts() {
        let t = Tmp::new("order");
        let store = Store::open(&t.0, "n").unwrap();
        let s = set(&[("10.0.0.0/29", None, None, None)]);
        let a = Allocator { set: &s, range_id: 0 };
        let l = store.lock().unwrap();
        let mut got = Vec::new();
        for i in 0..5 {
            let c = get(&a, &l, &format!("c{i}"), None).unwrap();
            assert_eq!(c.gateway, Some(ip("10.0.0.1")));
            got.push(c.address.to_string());
        }
        assert_eq!(got, ["10.0.0.2/29", "10.0.0.3/29", "10.0.0.4/29", "10.0.0.5/29", "10.0.0.6/29"]);
        let e = get(&a, &l, "c9", None).unwrap_err();
        assert_eq!(e.to_string(), "no IP addresses available in range set: 10.0.0.1-10.0.0.6");
        assert!(!a.has_free(&l).unwrap());
        // Release .3: the next allocation wraps around to it.
        l.release_by_id("c1", "eth0").unwrap();
        assert!(a.has_free(&l).unwrap());
        assert_eq!(get(&a, &l, "c9", None).unwrap().address.to_string(), "10.0.0.3/29");
        let e = get(&a, &l, "c9", None).unwrap_err();
        assert_eq!(e.to_string(), "10.0.0.3 has been allocated to c9, duplicate allocation is not allowed");
    }

    #[test]
    fn continues_after_last_reserved_across_releases() {
        let t = Tmp::new("rr");
        let store = Store::open(&t.0, "n").unwrap();
        let s = set(&[("10.0.0.0/24", None, None, None)]);
        let a = Allocator { set: &s, range_id: 0 };
        let l = store.lock().unwrap();
        assert_eq!(get(&a, &l, "a", None).unwrap().address.addr(), ip("10.0.0.2"));
        l.release_by_id("a", "eth0").unwrap();
        assert_eq!(get(&a, &l, "b", None).unwrap().address.addr(), ip("10.0.0.3"));
    }

    #[test]
    fn requested_addresses() {
        let t = Tmp::new("req");
        let store = Store::open(&t.0, "n").unwrap();
        let s = set(&[("10.0.0.0/24", Some("10.0.0.10"), Some("10.0.0.20"), None)]);
        let a = Allocator { set: &s, range_id: 0 };
        let l = store.lock().unwrap();
        assert_eq!(get(&a, &l, "a", Some(ip("10.0.0.15"))).unwrap().address.to_string(), "10.0.0.15/24");
        let e = get(&a, &l, "b", Some(ip("10.0.0.15"))).unwrap_err();
        assert_eq!(e.to_string(), "requested IP address 10.0.0.15 is not available in range set 10.0.0.10-10.0.0.20");
        let e = get(&a, &l, "b", Some(ip("10.0.0.30"))).unwrap_err();
        assert_eq!(e.to_string(), "10.0.0.30 not in range set 10.0.0.10-10.0.0.20");
        let s2 = set(&[("10.0.0.0/24", None, None, None)]);
        let a2 = Allocator { set: &s2, range_id: 1 };
        let e = get(&a2, &l, "b", Some(ip("10.0.0.1"))).unwrap_err();
        assert_eq!(e.to_string(), "requested ip 10.0.0.1 is subnet's gateway");
        // The next allocation continues after the requested one.
        assert_eq!(get(&a, &l, "c", None).unwrap().address.addr(), ip("10.0.0.16"));
    }

    #[test]
    fn dual_stack_sets_are_independent() {
        let t = Tmp::new("dual");
        let store = Store::open(&t.0, "n").unwrap();
        let v4 = set(&[("10.0.0.0/24", None, None, None)]);
        let v6 = set(&[("2001:db8::/64", None, None, None)]);
        let l = store.lock().unwrap();
        let a = get(&Allocator { set: &v4, range_id: 0 }, &l, "c", None).unwrap();
        let b = get(&Allocator { set: &v6, range_id: 1 }, &l, "c", None).unwrap();
        assert_eq!(a.address.to_string(), "10.0.0.2/24");
        assert_eq!(b.address.to_string(), "2001:db8::2/64");
        assert_eq!(b.gateway, Some(ip("2001:db8::1")));
        assert_eq!(l.last_reserved(1), Some(ip("2001:db8::2")));
    }
}
