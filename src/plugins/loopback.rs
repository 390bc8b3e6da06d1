//! loopback: bring `lo` up in the container (CNI_IFNAME is ignored).

use crate::cni::result::{Interface, IpConfig};
use crate::cni::{CniError, CniResult, Invocation, PluginFns, version};
use crate::netlink::{Link, Netlink};
use crate::plugins::iface::{open_netns, open_netns_for_del};
use ipnet::IpNet;

pub static PLUGIN: PluginFns =
    PluginFns { add, del, check, gc: crate::cni::skel::noop, status: crate::cni::skel::noop, versions: version::ALL };

const LO: &str = "lo";

fn lo(nl: &Netlink) -> Result<Link, CniError> {
    Ok(nl.link(LO)?)
}

fn add(inv: &Invocation) -> Result<CniResult, CniError> {
    let ns = open_netns(inv)?;
    let nl = Netlink::open_in(&ns)?;
    let link = lo(&nl)?;
    nl.set_up(&link)?;
    let addrs = nl.list_addresses(&link)?;
    if let Some(bad) = addrs.iter().find(|a| !a.net.addr().is_loopback()) {
        return Err(CniError::internal(format!(
            "loopback interface found with non-loopback address \"{}\"",
            bad.net.addr()
        )));
    }
    if let Some(prev) = &inv.conf.prev_result {
        return CniResult::from_prev(prev, inv.version);
    }
    let first = |v4: bool| -> Option<IpNet> { addrs.iter().map(|a| a.net).find(|n| n.addr().is_ipv4() == v4) };
    let ips = [first(true), first(false)]
        .into_iter()
        .flatten()
        .map(|address| IpConfig { interface: Some(0), address, gateway: None })
        .collect();
    Ok(CniResult {
        interfaces: vec![Interface {
            name: LO.to_string(),
            mac: "00:00:00:00:00:00".to_string(),
            sandbox: ns.path().display().to_string(),
            ..Default::default()
        }],
        ips,
        ..Default::default()
    })
}

fn del(inv: &Invocation) -> Result<(), CniError> {
    // No namespace, or the runtime already removed it: nothing to undo.
    let Some(ns) = open_netns_for_del(inv)? else { return Ok(()) };
    let nl = Netlink::open_in(&ns)?;
    let link = lo(&nl)?;
    Ok(nl.set_down(&link)?)
}

fn check(inv: &Invocation) -> Result<(), CniError> {
    let ns = open_netns(inv)?;
    let nl = Netlink::open_in(&ns)?;
    if !lo(&nl)?.up {
        return Err(CniError::internal("loopback interface is down"));
    }
    Ok(())
}
