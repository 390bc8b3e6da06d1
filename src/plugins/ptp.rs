//! ptp: a veth pair per container, routed (not bridged) through the host.
//!
//! The container gets its IPAM address with the subnet routed via the gateway, and a
//! link-scope host route to the gateway itself; the host end of the veth holds the gateway
//! address as a /32 (/128) and a host route to the container's address.

use super::iface::{self, Wording};
use crate::cni::config::parse_conf;
use crate::cni::delegate::ipam;
use crate::cni::result::Interface;
use crate::cni::{CniError, CniResult, Invocation, PluginFns, version};
use crate::firewall::nft::System;
use crate::firewall::{iptables, masq};
use crate::netlink::{LinkKind, Netlink, RT_SCOPE_HOST, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RouteSpec};
use ipnet::IpNet;
use serde::Deserialize;

pub static PLUGIN: PluginFns = PluginFns { add, del, check, gc, status, versions: version::ALL };

#[derive(Debug, Deserialize)]
struct Conf {
    #[serde(rename = "ipMasq", default)]
    ip_masq: bool,
    #[serde(rename = "ipMasqBackend", default)]
    ip_masq_backend: Option<String>,
    #[serde(default)]
    mtu: u32,
}

fn load(inv: &Invocation) -> Result<Conf, CniError> {
    parse_conf(inv, "ptp")
}

fn host_prefix(ip: std::net::IpAddr) -> IpNet {
    let len = if ip.is_ipv4() { 32 } else { 128 };
    IpNet::new(ip, len).unwrap_or_else(|_| IpNet::from(ip))
}

fn add(inv: &Invocation) -> Result<CniResult, CniError> {
    let conf = load(inv)?;
    if conf.ip_masq {
        masq::check_backend(conf.ip_masq_backend.as_deref())?;
    }
    let mut result = ipam::add(inv)?;
    let host = match Netlink::open() {
        Ok(h) => h,
        Err(e) => {
            let _ = ipam::del(inv);
            return Err(e.into());
        }
    };
    let mut host_veth = None;
    let out = add_with(inv, &conf, &host, &mut result, &mut host_veth);
    if let Err(e) = out {
        if let Some(name) = host_veth
            && let Ok(Some(l)) = host.link_by_name(&name)
        {
            let _ = host.del_link(&l);
        }
        if conf.ip_masq {
            let _ = masq::teardown(&System, &inv.conf.name, &inv.ifname, &inv.container_id);
            if masq::is_iptables(conf.ip_masq_backend.as_deref()) {
                let _ = iptables::teardown_masq(&inv.conf.name, &inv.container_id, iptables::Removal::Ours);
            }
        }
        let _ = ipam::del(inv);
        return Err(e);
    }
    iface::apply_conf_dns(inv, &mut result);
    Ok(result)
}

fn add_with(
    inv: &Invocation,
    conf: &Conf,
    host: &Netlink,
    result: &mut CniResult,
    host_veth: &mut Option<String>,
) -> Result<(), CniError> {
    for ip in &result.ips {
        if ip.gateway.is_none() {
            return Err(CniError::internal(format!("ptp: IPAM result for {} has no gateway", ip.address)));
        }
    }
    if result.ips.iter().any(|ip| ip.is_v4()) {
        iface::enable_forwarding(host, true)
            .map_err(|e| CniError::internal(format!("Could not enable IP forwarding: {e}")))?;
    }
    if result.ips.iter().any(|ip| !ip.is_v4()) {
        iface::enable_forwarding(host, false)
            .map_err(|e| CniError::internal(format!("Could not enable IP forwarding: {e}")))?;
    }

    let cont_ns = iface::open_netns(inv)?;
    let cont = Netlink::open_in(&cont_ns)?;
    let mtu = Some(conf.mtu).filter(|m| *m != 0);
    let pair = iface::create_veth(host, &cont, &cont_ns, &inv.ifname, mtu, None, None)?;
    *host_veth = Some(pair.host.name.clone());
    iface::no_router_ads(&pair.host.name);

    result.interfaces = vec![
        Interface { name: pair.host.name.clone(), mac: pair.host.mac_string(), ..Default::default() },
        Interface {
            name: pair.container.name.clone(),
            mac: pair.container.mac_string(),
            sandbox: cont_ns.path().display().to_string(),
            ..Default::default()
        },
    ];
    for ip in &mut result.ips {
        ip.interface = Some(1);
    }

    let index = pair.container.index;
    let applied: &CniResult = result;
    cont_ns.run(|| -> Result<(), CniError> {
        iface::configure_link(&cont, &pair.container, applied, false)?;
        for ip in &applied.ips {
            let Some(gw) = ip.gateway else { continue };
            let subnet = ip.address.trunc();
            // Replace the kernel's on-link subnet route: everything goes via the gateway,
            // which itself is reached on the link.
            cont.del_route(&RouteSpec::new(subnet).dev(index))?;
            cont.add_route(&RouteSpec::new(host_prefix(gw)).dev(index).scope(RT_SCOPE_LINK).src(ip.address.addr()))?;
            cont.add_route(
                &RouteSpec::new(subnet).dev(index).via(Some(gw)).scope(RT_SCOPE_UNIVERSE).src(ip.address.addr()),
            )?;
        }
        Ok(())
    })??;

    let hv = host.link(&pair.host.name)?;
    for ip in &result.ips {
        let Some(gw) = ip.gateway else { continue };
        match host.add_address(&hv, host_prefix(gw)) {
            Err(e) if !e.is_exists() => return Err(e.into()),
            _ => {}
        }
        let route = RouteSpec::new(host_prefix(ip.address.addr())).dev(hv.index).scope(RT_SCOPE_HOST);
        match host.add_route(&route) {
            Err(e) if !e.is_exists() => {
                return Err(CniError::internal(format!("failed to add route on host: {e}")));
            }
            _ => {}
        }
    }

    if conf.ip_masq {
        let ips: Vec<IpNet> = result.ips.iter().map(|ip| ip.address).collect();
        let backend = masq::check_backend(conf.ip_masq_backend.as_deref())?;
        masq::setup_with(backend, &ips, &inv.conf.name, &inv.ifname, &inv.container_id)?;
    }
    Ok(())
}

fn del(inv: &Invocation) -> Result<(), CniError> {
    let conf = load(inv)?;
    ipam::del(inv)?;
    if let Some(ns) = iface::open_netns_for_del(inv)? {
        let nl = Netlink::open_in(&ns)?;
        iface::del_container_link(&nl, &ns, &inv.ifname)?;
    }
    // By comment: works when the namespace and the container's addresses are already gone.
    if conf.ip_masq {
        masq::teardown_iptables(conf.ip_masq_backend.as_deref(), inv)?;
        masq::teardown(&System, &inv.conf.name, &inv.ifname, &inv.container_id)?;
    }
    Ok(())
}

/// The IPAM's STATUS, after iptables for `ipMasqBackend: "iptables"`.
fn status(inv: &Invocation) -> Result<(), CniError> {
    let conf = load(inv)?;
    if conf.ip_masq {
        masq::status(conf.ip_masq_backend.as_deref())?;
    }
    ipam::status(inv)
}

/// Masquerade rules of attachments that are no longer valid go, then the IPAM collects.
fn gc(inv: &Invocation) -> Result<(), CniError> {
    let conf = load(inv)?;
    iface::gc_masq_and_ipam(inv, conf.ip_masq)
}

fn check(inv: &Invocation) -> Result<(), CniError> {
    load(inv)?; // a config ADD would refuse fails CHECK too
    let cont_ns = iface::open_netns(inv)?;
    ipam::check(inv)?;
    let prev = inv.conf.prev_result.as_ref().ok_or_else(|| CniError::internal("ptp: Required prevResult missing"))?;
    let result = CniResult::from_prev(prev, inv.version)?;
    let cont_if = iface::container_entry(inv, &result, Wording::Capitalised)?;
    let cont = Netlink::open_in(&cont_ns)?;
    let link = cont.link_by_name(&cont_if.name)?.ok_or_else(|| {
        CniError::internal(format!("ptp: Container Interface name in prevResult: {} not found", cont_if.name))
    })?;
    if link.kind != LinkKind::Veth {
        return Err(CniError::internal(format!("Error: Container interface {} not of type veth/p2p", link.name)));
    }
    if !cont_if.mac.is_empty() && cont_if.mac != link.mac_string() {
        return Err(CniError::internal(format!(
            "ptp: Interface {} Mac {} doesn't match container Mac: {}",
            cont_if.name,
            cont_if.mac,
            link.mac_string()
        )));
    }
    iface::validate_expected_ips(&cont, &inv.ifname, &result.ips)?;
    // Masquerade rules are not checked, as in bridge (and the reference).
    iface::validate_expected_routes(&cont, &result.routes)
}
