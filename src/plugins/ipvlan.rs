//! ipvlan: an ipvlan of a host (or container) interface, moved into the container.
//! Chained after another plugin it may take its master and its addresses from prevResult.

use super::iface::{self, Wording};
use crate::cni::config::parse_conf;
use crate::cni::delegate::ipam;
use crate::cni::{CniError, CniResult, Invocation, PluginFns, version};
use crate::netlink::{IpvlanMode, Link, Netlink, SubLink};
use crate::netns::Netns;
use serde::Deserialize;

pub static PLUGIN: PluginFns =
    PluginFns { add, del, check, gc: ipam::gc, status: ipam::status, versions: version::ALL };

#[derive(Debug, Deserialize)]
struct RawConf {
    #[serde(default)]
    master: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    mtu: u32,
    #[serde(rename = "linkInContainer", default)]
    link_in_container: bool,
}

fn bad(msg: impl Into<String>) -> CniError {
    CniError::internal(msg)
}

struct Conf {
    raw: RawConf,
    mode: IpvlanMode,
    /// The previous plugin's result, when chained.
    prev: Option<CniResult>,
}

fn load(inv: &Invocation) -> Result<Conf, CniError> {
    let raw: RawConf = parse_conf(inv, "ipvlan")?;
    let prev = match &inv.conf.prev_result {
        Some(v) => Some(
            CniResult::from_prev(v, inv.version).map_err(|e| bad(format!("could not parse prevResult: {}", e.msg)))?,
        ),
        None => None,
    };
    let mode = IpvlanMode::parse(&raw.mode)
        .ok_or_else(|| CniError::invalid_config(format!("unknown ipvlan mode: \"{}\"", raw.mode)))?;
    Ok(Conf { raw, mode, prev })
}

/// The connection to the master's namespace and the master: `master`, else the single named
/// interface of prevResult when chained, else the default-route interface.
fn master(conf: &mut Conf, cont_ns: &Netns) -> Result<(Netlink, Link), CniError> {
    let nl = if conf.raw.link_in_container { Netlink::open_in(cont_ns)? } else { Netlink::open()? };
    if conf.raw.master.is_empty() {
        conf.raw.master = match &conf.prev {
            None => iface::default_route_iface(&nl)?,
            Some(p) if p.interfaces.len() == 1 && !p.interfaces[0].name.is_empty() => p.interfaces[0].name.clone(),
            Some(_) => return Err(bad("chained master failure. PrevResult lacks a single named interface")),
        };
    }
    let name = &conf.raw.master;
    let link =
        nl.link_by_name(name)?.ok_or_else(|| bad(format!("failed to lookup master \"{name}\": Link not found")))?;
    Ok((nl, link))
}

fn add(inv: &Invocation) -> Result<CniResult, CniError> {
    let mut conf = load(inv)?;
    let cont_ns = iface::open_netns(inv)?;
    let (ctl, parent) = master(&mut conf, &cont_ns)?;
    let cont = Netlink::open_in(&cont_ns)?;
    let sub = |name: &str| {
        let l = SubLink {
            name,
            parent: parent.index,
            ns: &cont_ns,
            mtu: Some(conf.raw.mtu).filter(|m| *m != 0),
            mac: None,
        };
        ctl.create_ipvlan(&l, conf.mode)
    };
    let link = iface::create_renamed(&cont, &inv.ifname, "ipvlan", sub)?;

    iface::finish_sublink_add(inv, &cont, |leased| finish_add(inv, &conf, &cont_ns, &cont, &link, leased))
}

fn finish_add(
    inv: &Invocation,
    conf: &Conf,
    cont_ns: &Netns,
    cont: &Netlink,
    link: &Link,
    leased: &mut bool,
) -> Result<CniResult, CniError> {
    // Addresses from prevResult when there is no IPAM and it has some; else from IPAM.
    let reuse = inv.conf.ipam_type().is_none() && conf.prev.as_ref().is_some_and(|p| !p.ips.is_empty());
    let mut result = if reuse {
        conf.prev.clone().unwrap_or_default()
    } else {
        let r = ipam::add(inv)?;
        *leased = true;
        r
    };
    for ip in &mut result.ips {
        ip.interface = Some(0);
    }
    result.interfaces = vec![iface::sandbox_interface(link, cont_ns)];
    iface::configure_sublink(cont_ns, cont, &inv.ifname, &result)?;
    result.dns = inv.conf.dns.clone().unwrap_or_default();
    Ok(result)
}

fn del(inv: &Invocation) -> Result<(), CniError> {
    // Only what DEL needs: the master may be long gone.
    let _: RawConf = parse_conf(inv, "ipvlan")?;
    if inv.conf.ipam_type().is_some() {
        ipam::del(inv)?;
    }
    let Some(ns) = iface::open_netns_for_del(inv)? else { return Ok(()) };
    let nl = Netlink::open_in(&ns)?;
    iface::del_container_link(&nl, &ns, &inv.ifname)?;
    Ok(())
}

fn check(inv: &Invocation) -> Result<(), CniError> {
    let mut conf = load(inv)?;
    let cont_ns = iface::open_netns(inv)?;
    if inv.conf.ipam_type().is_some() {
        ipam::check(inv)?;
    }
    let result = conf.prev.take().ok_or_else(|| bad("Required prevResult missing"))?;
    let cont_if = iface::container_entry(inv, &result, Wording::Capitalised)?;
    // prevResult here is this plugin's own result, so only a configured master can be checked.
    if !conf.raw.master.is_empty() {
        master(&mut conf, &cont_ns)?;
    }
    let mode = conf.mode.to_string();
    iface::check_sublink(&cont_ns, inv, &result, cont_if, "ipvlan", "IPVlan", &mode, Wording::Capitalised)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(IpvlanMode::parse(""), Some(IpvlanMode::L2));
        assert_eq!(IpvlanMode::parse("l3s"), Some(IpvlanMode::L3s));
        assert_eq!(IpvlanMode::parse("private"), None);
        assert_eq!(IpvlanMode::L3.to_string(), "l3");
    }
}
