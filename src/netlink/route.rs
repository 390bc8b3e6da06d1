//! Routes.

use super::{Error, Netlink};
use ipnet::IpNet;
use rtnetlink::packet_core::NLM_F_CREATE;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use std::fmt;
use std::net::IpAddr;

pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_LINK: u8 = 253;
pub const RT_SCOPE_HOST: u8 = 254;
pub const RT_SCOPE_NOWHERE: u8 = 255;

/// A route to add or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    pub oif: Option<u32>,
    pub src: Option<IpAddr>,
    /// RT_SCOPE_*; None means universe when adding, and any scope when deleting.
    pub scope: Option<u8>,
    pub table: Option<u32>,
    pub priority: Option<u32>,
}

impl RouteSpec {
    pub fn new(dst: IpNet) -> RouteSpec {
        RouteSpec { dst: dst.trunc(), gw: None, oif: None, src: None, scope: None, table: None, priority: None }
    }
    pub fn via(mut self, gw: Option<IpAddr>) -> Self {
        self.gw = gw;
        self
    }
    pub fn dev(mut self, index: u32) -> Self {
        self.oif = Some(index);
        self
    }
    pub fn scope(mut self, scope: u8) -> Self {
        self.scope = Some(scope);
        self
    }
    pub fn src(mut self, src: IpAddr) -> Self {
        self.src = Some(src);
        self
    }
}

impl fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dst)?;
        if let Some(gw) = self.gw {
            write!(f, " via {gw}")?;
        }
        if let Some(oif) = self.oif {
            write!(f, " dev {oif}")?;
        }
        Ok(())
    }
}

/// A route as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    pub oif: Option<u32>,
    pub table: u32,
    pub priority: u32,
    pub scope: u8,
}

fn route_address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn message(r: &RouteSpec, deleting: bool) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = if r.dst.addr().is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    m.header.destination_prefix_length = r.dst.prefix_len();
    m.header.kind = RouteType::Unicast;
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    if deleting {
        // Protocol 0 and scope RT_SCOPE_NOWHERE match any route.
        m.header.protocol = RouteProtocol::Unspec;
        m.header.scope = RouteScope::from(r.scope.unwrap_or(RT_SCOPE_NOWHERE));
    } else {
        m.header.protocol = RouteProtocol::Boot;
        // Universe unless a scope is asked for, gateway or not, as the reference's routes are.
        m.header.scope = RouteScope::from(r.scope.unwrap_or(RT_SCOPE_UNIVERSE));
    }
    if r.dst.prefix_len() > 0 {
        m.attributes.push(RouteAttribute::Destination(route_address(r.dst.addr())));
    }
    if let Some(gw) = r.gw {
        m.attributes.push(RouteAttribute::Gateway(route_address(gw)));
    }
    if let Some(src) = r.src {
        m.attributes.push(RouteAttribute::PrefSource(route_address(src)));
    }
    if let Some(oif) = r.oif {
        m.attributes.push(RouteAttribute::Oif(oif));
    }
    if let Some(p) = r.priority {
        m.attributes.push(RouteAttribute::Priority(p));
    }
    if let Some(t) = r.table {
        if t < 256 {
            m.header.table = t as u8;
        } else {
            m.header.table = RouteHeader::RT_TABLE_UNSPEC;
        }
        m.attributes.push(RouteAttribute::Table(t));
    }
    m
}

impl Netlink {
    /// Add a route; a route with the same destination and a different gateway or metric
    /// may coexist (NLM_F_CREATE without NLM_F_EXCL).
    pub fn add_route(&self, r: &RouteSpec) -> Result<(), Error> {
        self.change(RouteNetlinkMessage::NewRoute(message(r, false)), NLM_F_CREATE)
            .map_err(|e| e.context(format!("failed to add route '{r}'")))
    }

    pub fn del_route(&self, r: &RouteSpec) -> Result<(), Error> {
        self.change(RouteNetlinkMessage::DelRoute(message(r, true)), 0)
            .map_err(|e| e.context(format!("failed to delete route '{r}'")))
    }

    /// Unicast routes of both families in every table.
    pub fn list_routes(&self) -> Result<Vec<RouteInfo>, Error> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let query = || {
                let mut q = RouteMessage::default();
                q.header.address_family = family;
                RouteNetlinkMessage::GetRoute(q)
            };
            let replies = self.dump(query).map_err(|e| e.context("failed to list routes"))?;
            for r in replies {
                let RouteNetlinkMessage::NewRoute(m) = r else { continue };
                if m.header.kind != RouteType::Unicast {
                    continue;
                }
                out.extend(route_info(&m));
            }
        }
        Ok(out)
    }

    /// The route the kernel picks to reach `dst` (RTM_GETROUTE), as `ip route get` shows it.
    pub fn route_get(&self, dst: IpAddr) -> Result<RouteInfo, Error> {
        let context = || format!("failed to get the route to {dst}");
        let replies = self.get(RouteNetlinkMessage::GetRoute(get_message(dst))).map_err(|e| e.context(context()))?;
        replies
            .iter()
            .find_map(|r| match r {
                RouteNetlinkMessage::NewRoute(m) => route_info(m),
                _ => None,
            })
            .ok_or_else(|| Error::new(context(), "the kernel returned no route"))
    }
}

/// An RTM_GETROUTE query for the route to one address.
fn get_message(dst: IpAddr) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = if dst.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    m.header.destination_prefix_length = if dst.is_ipv4() { 32 } else { 128 };
    m.attributes.push(RouteAttribute::Destination(route_address(dst)));
    m
}

/// A route message as `RouteInfo`; None for a destination that is not a valid prefix.
fn route_info(m: &RouteMessage) -> Option<RouteInfo> {
    let v4 = m.header.address_family == AddressFamily::Inet;
    let mut dst = None;
    let mut info = RouteInfo {
        dst: if v4 { IpNet::V4(Default::default()) } else { IpNet::V6(Default::default()) },
        gw: None,
        oif: None,
        table: u32::from(m.header.table),
        priority: 0,
        scope: u8::from(m.header.scope),
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = ip_of(d),
            RouteAttribute::Gateway(g) => info.gw = ip_of(g),
            RouteAttribute::Oif(i) => info.oif = Some(*i),
            RouteAttribute::Table(t) => info.table = *t,
            RouteAttribute::Priority(p) => info.priority = *p,
            _ => {}
        }
    }
    if let Some(d) = dst {
        info.dst = IpNet::new(d, m.header.destination_prefix_length).ok()?;
    }
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::Emitable;

    fn bytes(m: &RouteMessage) -> Vec<u8> {
        let mut b = vec![0u8; m.buffer_len()];
        m.emit(&mut b);
        b
    }

    /// rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags (u32).
    #[test]
    fn add_via_gateway() {
        let r = RouteSpec::new("10.10.0.0/16".parse().unwrap()).via(Some("10.9.0.1".parse().unwrap())).dev(7);
        #[rustfmt::skip]
        let want = [
            2, 16, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0, // AF_INET /16 main boot universe unicast
            8, 0, 1, 0, 10, 10, 0, 0,              // RTA_DST
            8, 0, 5, 0, 10, 9, 0, 1,               // RTA_GATEWAY
            8, 0, 4, 0, 7, 0, 0, 0,                // RTA_OIF
        ];
        assert_eq!(bytes(&message(&r, false)), want);
    }

    #[test]
    fn link_scope_host_route_with_source() {
        let r =
            RouteSpec::new("10.9.0.1/32".parse().unwrap()).dev(3).scope(RT_SCOPE_LINK).src("10.9.0.2".parse().unwrap());
        #[rustfmt::skip]
        let want = [
            2, 32, 0, 0, 254, 3, 253, 1, 0, 0, 0, 0,
            8, 0, 1, 0, 10, 9, 0, 1,               // RTA_DST
            8, 0, 7, 0, 10, 9, 0, 2,               // RTA_PREFSRC
            8, 0, 4, 0, 3, 0, 0, 0,                // RTA_OIF
        ];
        assert_eq!(bytes(&message(&r, false)), want);
    }

    #[test]
    fn delete_matches_any_protocol_and_scope() {
        let r = RouteSpec::new("10.9.0.7/24".parse().unwrap()).dev(7);
        #[rustfmt::skip]
        let want = [
            2, 24, 0, 0, 254, 0, 255, 1, 0, 0, 0, 0, // prefix truncated; protocol 0, scope nowhere
            8, 0, 1, 0, 10, 9, 0, 0,
            8, 0, 4, 0, 7, 0, 0, 0,
        ];
        assert_eq!(bytes(&message(&r, true)), want);
    }

    #[test]
    fn route_get_query() {
        #[rustfmt::skip]
        let want = [
            2, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // AF_INET /32, everything else left to the kernel
            8, 0, 1, 0, 10, 88, 0, 5,            // RTA_DST
        ];
        assert_eq!(bytes(&get_message("10.88.0.5".parse().unwrap())), want);
        let b = bytes(&get_message("fd00::5".parse().unwrap()));
        assert_eq!(&b[..4], &[10, 128, 0, 0]);
        assert_eq!(&b[12..16], &[20, 0, 1, 0]);
    }

    #[test]
    fn ipv6_default_route_in_a_table() {
        let mut r = RouteSpec::new("::/0".parse().unwrap()).via(Some("fd00::1".parse().unwrap()));
        r.table = Some(1000);
        r.priority = Some(100);
        let b = bytes(&message(&r, false));
        // AF_INET6, /0, table RT_TABLE_UNSPEC in the header and RTA_TABLE as an attribute.
        assert_eq!(&b[..12], &[10, 0, 0, 0, 0, 3, 0, 1, 0, 0, 0, 0]);
        let mut gw = vec![20, 0, 5, 0, 0xfd, 0];
        gw.extend_from_slice(&[0; 13]);
        gw.push(1);
        assert_eq!(&b[12..32], &gw[..]);
        assert_eq!(&b[32..], &[8, 0, 6, 0, 100, 0, 0, 0, 8, 0, 15, 0, 0xe8, 3, 0, 0]);
    }
}
