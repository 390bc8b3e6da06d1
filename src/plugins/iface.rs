//! What the interface plugins (bridge, ptp, ...) share: veth pairs with a random host name,
//! applying an IPAM result to a container interface, checking it, and tearing it down.

use crate::cni::delegate::ipam;
use crate::cni::result::{CniResult, Interface, IpConfig, Route};
use crate::cni::{CniError, Invocation};
use crate::firewall::masq;
use crate::firewall::nft::System;
use crate::netlink::{Link, LinkKind, Netlink, RouteSpec};
use crate::netns::Netns;
use crate::sysctl;
use ipnet::IpNet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// `veth` and 8 random lower-case hex digits (a retry after a name clash gets another name).
pub fn random_veth_name() -> String {
    format!("veth{}", crate::util::hex(&crate::util::random_u64().to_le_bytes()[..4], ""))
}

/// The two ends of a new veth pair.
pub struct VethPair {
    pub host: Link,
    pub container: Link,
}

/// Create a veth pair with `container_name` born in `cont_ns` and a random `vethXXXXXXXX` end
/// here (retrying on a name clash), a port of `master` if given, and set the host end up. The
/// container end is left down. `host` serves the namespace this thread is in. The caller turns
/// router advertisements off on the host end (`no_router_ads`) before the container end comes up.
pub fn create_veth(
    host: &Netlink,
    cont: &Netlink,
    cont_ns: &Netns,
    container_name: &str,
    mtu: Option<u32>,
    mac: Option<[u8; 6]>,
    master: Option<&Link>,
) -> Result<VethPair, CniError> {
    let mut last = None;
    for _ in 0..10 {
        let host_name = random_veth_name();
        match host.create_veth(&host_name, container_name, cont_ns, mtu, mac, master) {
            Ok(()) => {
                let pair = finish_veth(host, cont, &host_name, container_name);
                if pair.is_err()
                    && let Ok(Some(l)) = host.link_by_name(&host_name)
                {
                    let _ = host.del_link(&l);
                }
                return pair;
            }
            Err(e) if e.is_exists() => {
                if cont.link_by_name(container_name)?.is_some() {
                    return Err(CniError::internal(format!("container veth name \"{container_name}\" already exists")));
                }
                last = Some(e);
            }
            // The kernel does not say which value it refused; an MTU out of range is the likely one.
            Err(e) if e.errno == Some(nix::errno::Errno::EINVAL as i32) && mtu.is_some() => {
                return Err(CniError::internal(format!("{e} (MTU {})", mtu.unwrap_or_default())));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(CniError::internal(format!(
        "failed to make veth pair: {}",
        last.map(|e| e.to_string()).unwrap_or_else(|| "no unique name found".into())
    )))
}

fn finish_veth(host: &Netlink, cont: &Netlink, host_name: &str, container_name: &str) -> Result<VethPair, CniError> {
    // A port is created down (`Netlink::create_veth` says why); this lookup comes first.
    let mut h = host.link(host_name)?;
    if !h.up {
        host.set_up(&h)?;
        h.up = true;
    }
    let c = cont.link(container_name)?;
    Ok(VethPair { host: h, container: c })
}

/// `accept_ra=0` on the host end of a veth pair (best effort, as the reference): we want to own
/// the routes for this interface. Call it in the host namespace.
///
/// Each /proc/sys/net/ipv6 lookup walks a chain of the kernel's directory cache that holds the
/// `ipv6` entry of every namespace that ever looked (one per pod on a node), comparing each;
/// a plugin that writes a container-side IPv6 setting too does both writes one after the
/// other, so that the second walk finds the chain still in the CPU's caches (on a bridge of 250
/// pods, a cold walk costs 0.1-0.2 ms, a warm one a fifth of that).
pub fn no_router_ads(host_name: &str) {
    let _ = sysctl::write(&format!("net/ipv6/conf/{host_name}/accept_ra"), "0");
}

/// Create a macvlan/ipvlan-like link for the container as `ifname`: `create` makes it, born
/// in the container namespace, under a random temporary name (the kernel creates it in the
/// parent's namespace first, where `ifname` may well be taken), and it is then renamed
/// inside the container. A failed rename deletes it. `what` names the kind in errors.
pub fn create_renamed(
    cont: &Netlink,
    ifname: &str,
    what: &str,
    create: impl Fn(&str) -> Result<(), crate::netlink::Error>,
) -> Result<Link, CniError> {
    let mut tries = 0;
    let tmp = loop {
        let tmp = random_veth_name();
        match create(&tmp) {
            Ok(()) => break tmp,
            Err(e) if e.is_exists() && tries < 3 => tries += 1,
            Err(e) => return Err(CniError::internal(format!("failed to create {what}: {}", e.message))),
        }
    };
    let renamed = cont.link(&tmp).map_err(CniError::from).and_then(|l| {
        cont.rename(&l, ifname)
            .map_err(|e| CniError::internal(format!("failed to rename {what} to \"{ifname}\": {}", e.message)))
    });
    if let Err(e) = renamed {
        if let Ok(Some(l)) = cont.link_by_name(&tmp) {
            let _ = cont.del_link(&l);
        }
        return Err(e);
    }
    cont.link(ifname).map_err(|e| CniError::internal(format!("failed to refetch {what} \"{ifname}\": {e}")))
}

/// The result entry of a container interface.
pub fn sandbox_interface(link: &Link, ns: &Netns) -> crate::cni::result::Interface {
    crate::cni::result::Interface {
        name: link.name.clone(),
        mac: link.mac_string(),
        sandbox: ns.path().display().to_string(),
        ..Default::default()
    }
}

/// Gratuitous ARP and unsolicited neighbour advertisements when `ifname` comes up or changes
/// address (best effort; call inside the container namespace).
pub fn set_notify_sysctls(ifname: &str) {
    let _ = sysctl::write(&format!("net/ipv4/conf/{ifname}/arp_notify"), "1");
    let _ = sysctl::write(&format!("net/ipv6/conf/{ifname}/ndisc_notify"), "1");
}

/// Turn on IPv4 (`v4`) or IPv6 forwarding for the whole node. It is nearly always on already,
/// which netlink tells without a /proc/sys lookup; /proc/sys is read and written otherwise.
pub fn enable_forwarding(nl: &Netlink, v4: bool) -> Result<(), crate::netlink::Error> {
    if nl.forwarding(!v4).unwrap_or(false) {
        return Ok(());
    }
    sysctl::set(if v4 { "net/ipv4/ip_forward" } else { "net/ipv6/conf/all/forwarding" }, "1")
}

/// The network config's `dns`, when it says anything, replaces what IPAM returned.
pub fn apply_conf_dns(inv: &Invocation, result: &mut CniResult) {
    if let Some(dns) = inv.conf.dns.as_ref().filter(|d| !d.is_empty()) {
        result.dns = dns.clone();
    }
}

/// GC of a plugin with `ipMasq`: masquerade rules of attachments that are no longer valid go,
/// then the IPAM collects; a masquerade error is returned once the IPAM is done.
pub fn gc_masq_and_ipam(inv: &Invocation, ip_masq: bool) -> Result<(), CniError> {
    let mut first_err = None;
    if ip_masq && let Some(valid) = crate::cni::gc::valid_attachments(&inv.stdin)? {
        crate::firewall::iptables::gc_masq(&inv.conf.name, &valid);
        if let Err(e) = masq::gc(&System, &inv.conf.name, &valid) {
            first_err = Some(e);
        }
    }
    ipam::gc(inv)?;
    first_err.map_or(Ok(()), Err)
}

/// ADD of a sublink (macvlan, ipvlan) once its link is CNI_IFNAME in the container `cont`:
/// `finish` completes it, setting its flag once IPAM has leased addresses; when it fails, the
/// link and the lease go again.
pub fn finish_sublink_add(
    inv: &Invocation,
    cont: &Netlink,
    finish: impl FnOnce(&mut bool) -> Result<CniResult, CniError>,
) -> Result<CniResult, CniError> {
    let mut leased = false;
    let out = finish(&mut leased);
    if out.is_err() {
        if let Ok(Some(l)) = cont.link_by_name(&inv.ifname) {
            let _ = cont.del_link(&l);
        }
        if leased {
            let _ = ipam::del(inv);
        }
    }
    out
}

/// Apply `result` to the sublink `ifname` in `cont_ns`, with gratuitous ARP and unsolicited
/// neighbour advertisements on.
pub fn configure_sublink(cont_ns: &Netns, cont: &Netlink, ifname: &str, result: &CniResult) -> Result<(), CniError> {
    cont_ns.run(|| {
        set_notify_sysctls(ifname);
        configure_iface(cont, ifname, result)
    })??;
    Ok(())
}

/// How a plugin's CHECK errors read, as its reference counterpart words them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Wording {
    Capitalised,
    LowerCase,
}

impl Wording {
    fn error(self, msg: String) -> CniError {
        match self {
            Wording::Capitalised => CniError::internal(msg),
            Wording::LowerCase => {
                let mut chars = msg.chars();
                let first = chars.next().map(|c| c.to_ascii_lowercase()).into_iter();
                CniError::internal(first.chain(chars).collect::<String>())
            }
        }
    }
}

/// The container interface's entry in a prevResult: named CNI_IFNAME, in the sandbox CNI_NETNS.
pub fn container_entry<'a>(
    inv: &Invocation,
    result: &'a CniResult,
    wording: Wording,
) -> Result<&'a Interface, CniError> {
    let netns = inv.netns.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    result
        .interfaces
        .iter()
        .find(|i| i.name == inv.ifname && i.sandbox == netns)
        .ok_or_else(|| wording.error(format!("Sandbox in prevResult  doesn't match configured netns: {netns}")))
}

/// CHECK of a sublink (macvlan, ipvlan) `cont_if` in `cont_ns`: a link of `kind` in `mode`
/// (`label` names the kind in that error) with the MAC of the entry, holding the IPs and routes
/// of `result`.
#[allow(clippy::too_many_arguments)]
pub fn check_sublink(
    cont_ns: &Netns,
    inv: &Invocation,
    result: &CniResult,
    cont_if: &Interface,
    kind: &str,
    label: &str,
    mode: &str,
    wording: Wording,
) -> Result<(), CniError> {
    let bad = |msg: String| wording.error(msg);
    let cont = Netlink::open_in(cont_ns)?;
    let link = cont
        .link_by_name(&cont_if.name)?
        .ok_or_else(|| bad(format!("Container Interface name in prevResult: {} not found", cont_if.name)))?;
    if link.kind != LinkKind::Other(kind.into()) {
        return Err(bad(format!("Error: Container interface {} not of type {kind}", link.name)));
    }
    let have = link.mode.clone().unwrap_or_default();
    if have != mode {
        return Err(bad(format!("Container {label} mode {have} does not match expected value: {mode}")));
    }
    if !cont_if.mac.is_empty() && cont_if.mac != link.mac_string() {
        return Err(bad(format!(
            "Interface {} Mac {} doesn't match container Mac: {}",
            cont_if.name,
            cont_if.mac,
            link.mac_string()
        )));
    }
    validate_expected_ips(&cont, &inv.ifname, &result.ips)?;
    validate_expected_routes(&cont, &result.routes)?;
    Ok(())
}

/// The interface of the first default route in the namespace `nl` serves.
pub fn default_route_iface(nl: &Netlink) -> Result<String, CniError> {
    nl.default_route_link()?.map(|l| l.name).ok_or_else(|| CniError::internal("no default route interface found"))
}

/// Apply the addresses and routes of `result` to `ifname` in the namespace `nl` serves
/// (the thread must be inside it for the sysctls: call within `Netns::run`), and set it up.
/// Addresses apply when their `interface` index points at an interface named `ifname`.
pub fn configure_iface(nl: &Netlink, ifname: &str, result: &CniResult) -> Result<(), CniError> {
    configure_link(nl, &nl.link(ifname)?, result, false)
}

/// `configure_iface` for a link already at hand (its index and name are what count);
/// `arp_notify` first sets `net.ipv4.conf.<link>.arp_notify` to 1 (best effort, as the
/// reference does), so that coming up announces the addresses with gratuitous ARP.
pub fn configure_link(nl: &Netlink, link: &Link, result: &CniResult, arp_notify: bool) -> Result<(), CniError> {
    if arp_notify {
        let _ = nl.set_arp_notify(link);
    }
    let ifname = link.name.as_str();
    let mut v4gw: Option<IpAddr> = None;
    let mut v6gw: Option<IpAddr> = None;
    let mut has_v6 = false;
    for ip in &result.ips {
        let Some(idx) = ip.interface else { continue };
        if result.interfaces.get(idx).map(|i| i.name.as_str()) != Some(ifname) {
            return Err(CniError::internal(format!(
                "failed to add IP addr {} to \"{ifname}\": invalid interface index",
                ip.address
            )));
        }
        if !ip.is_v4() && !has_v6 {
            has_v6 = true;
            // IPv6 may be off by default in the namespace: turn it on for lo and the interface.
            for dev in ["lo", ifname] {
                sysctl::set(&format!("net/ipv6/conf/{dev}/disable_ipv6"), "0")
                    .map_err(|e| CniError::internal(format!("failed to enable IPv6 for interface \"{dev}\": {e}")))?;
            }
            let _ = sysctl::write(&format!("net/ipv6/conf/{ifname}/keep_addr_on_down"), "1");
        }
        nl.add_address(link, ip.address)?;
        match ip.gateway {
            Some(gw @ IpAddr::V4(_)) if v4gw.is_none() => v4gw = Some(gw),
            Some(gw @ IpAddr::V6(_)) if v6gw.is_none() => v6gw = Some(gw),
            _ => {}
        }
    }
    nl.set_up(link)?;
    if v6gw.is_some() {
        settle_addresses(nl, link, Duration::from_secs(5))?;
    }
    for r in &result.routes {
        let gw = r.gw.or(if r.dst.addr().is_ipv4() { v4gw } else { v6gw });
        let mut spec = RouteSpec::new(r.dst).via(gw).dev(link.index);
        spec.table = r.table;
        spec.scope = r.scope;
        spec.priority = Some(r.priority).filter(|p| *p != 0);
        // Named by the interface, not its index.
        let shown = RouteSpec::new(r.dst).via(gw);
        nl.add_route(&spec).map_err(|e| crate::netlink::Error {
            context: format!("failed to add route '{shown}' on \"{}\"", link.name),
            ..e
        })?;
    }
    Ok(())
}

/// Wait until no IPv6 address of `link` is tentative; a failed DAD is an error.
/// A link that is not operationally up never finishes DAD: after a grace period (its oper state
/// follows `set_up` asynchronously) that ends the wait quietly, as the reference does at its deadline.
fn settle_addresses(nl: &Netlink, link: &Link, timeout: Duration) -> Result<(), CniError> {
    const GRACE: Duration = Duration::from_secs(1);
    let start = Instant::now();
    loop {
        // DAD is IPv6's.
        let addrs = nl.list_addresses_of(link, false)?;
        if let Some(bad) = addrs.iter().find(|a| a.dad_failed) {
            return Err(CniError::internal(format!(
                "failed to settle addresses for \"{}\": link has address {} that failed DAD",
                link.name, bad.net
            )));
        }
        if !addrs.iter().any(|a| a.tentative && !a.net.addr().is_ipv4()) {
            return Ok(());
        }
        let waited = start.elapsed();
        if waited > GRACE && !nl.link_by_index(link.index)?.is_some_and(|l| l.oper_up) {
            return Ok(());
        }
        if waited > timeout {
            return Err(CniError::internal(format!(
                "failed to settle addresses for \"{}\": addresses still tentative after {}s",
                link.name,
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every IP of `ips` is on `ifname`, and the kernel has a route to its prefix.
pub fn validate_expected_ips(nl: &Netlink, ifname: &str, ips: &[IpConfig]) -> Result<(), CniError> {
    let link = nl.link(ifname)?;
    let addrs = nl.list_addresses(&link)?;
    let routes = nl.list_routes()?;
    for ip in ips {
        if !addrs.iter().any(|a| a.net == ip.address) {
            return Err(CniError::internal(format!("Failed to match addr {} on interface {ifname}", ip.address)));
        }
        let prefix = ip.address.trunc();
        if !routes.iter().any(|r| r.table == 254 && r.dst == prefix) {
            return Err(CniError::internal(format!("Failed to find gateway for {} on interface {ifname}", ip.address)));
        }
    }
    Ok(())
}

/// Every route of `routes` is in the main table (destination, and gateway when given).
pub fn validate_expected_routes(nl: &Netlink, routes: &[Route]) -> Result<(), CniError> {
    let have = nl.list_routes()?;
    for r in routes {
        let dst: IpNet = r.dst.trunc();
        if !have.iter().any(|h| h.table == 254 && h.dst == dst && (r.gw.is_none() || h.gw == r.gw)) {
            let via = r.gw.map(|g| format!(" via {g}")).unwrap_or_default();
            return Err(CniError::internal(format!("Expected Route {}{via} not found in routing table", r.dst)));
        }
    }
    Ok(())
}

/// Delete the container's interface `ifname`, if it is still there (DEL succeeds when it is
/// gone). Returns once the kernel has unregistered it (see `Netlink::del_link_unwaited`).
pub fn del_container_link(nl: &Netlink, ns: &Netns, ifname: &str) -> Result<(), CniError> {
    let Some(link) = nl.link_by_name(ifname)? else { return Ok(()) };
    match nl.del_link_unwaited(ns, &link) {
        Err(e) if !e.is_not_found() => Err(e.into()),
        _ => Ok(()),
    }
}

/// Open CNI_NETNS for DEL: Ok(None) when it is empty or already gone.
pub fn open_netns_for_del(inv: &Invocation) -> Result<Option<Netns>, CniError> {
    let Some(path) = &inv.netns else { return Ok(None) };
    match Netns::open(path) {
        Ok(ns) => Ok(Some(ns)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Open CNI_NETNS for ADD and CHECK.
pub fn open_netns(inv: &Invocation) -> Result<Netns, CniError> {
    let path = inv.netns.as_ref().ok_or_else(|| CniError::invalid_env("CNI_NETNS is empty"))?;
    Ok(Netns::open(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wording() {
        let msg = || "Error: Container interface eth0 not of type macvlan".to_string();
        assert_eq!(Wording::Capitalised.error(msg()).msg, "Error: Container interface eth0 not of type macvlan");
        assert_eq!(Wording::LowerCase.error(msg()).msg, "error: Container interface eth0 not of type macvlan");
        assert_eq!(Wording::LowerCase.error(String::new()).msg, "");
    }

    #[test]
    fn veth_names() {
        let a = random_veth_name();
        assert_eq!(a.len(), 12);
        assert!(a.starts_with("veth"));
        assert!(a[4..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, random_veth_name());
    }
}
