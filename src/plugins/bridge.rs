//! bridge: a veth pair per container, its host end a port of a Linux bridge on the host.

use super::iface::{self, VethPair, Wording};
use crate::cni::config::parse_conf;
use crate::cni::delegate::ipam;
use crate::cni::result::{Interface, Route};
use crate::cni::{CniError, CniResult, Command, Invocation, PluginFns, version};
use crate::firewall::iptables::{self, Removal};
use crate::firewall::nft::System;
use crate::firewall::{masq, spoofcheck};
use crate::netlink::{Link, LinkKind, Netlink, parse_mac, sysfs};
use crate::netns::Netns;
use crate::sysctl;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

pub static PLUGIN: PluginFns = PluginFns { add, del, check, gc, status, versions: version::ALL };

const DEFAULT_BRIDGE: &str = "cni0";

// ---- configuration ------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct RawConf {
    #[serde(default = "default_bridge")]
    bridge: String,
    #[serde(rename = "isGateway", default)]
    is_gateway: bool,
    #[serde(rename = "isDefaultGateway", default)]
    is_default_gateway: bool,
    #[serde(rename = "forceAddress", default)]
    force_address: bool,
    #[serde(rename = "ipMasq", default)]
    ip_masq: bool,
    #[serde(rename = "ipMasqBackend", default)]
    ip_masq_backend: Option<String>,
    #[serde(default)]
    mtu: u32,
    #[serde(rename = "hairpinMode", default)]
    hairpin_mode: bool,
    #[serde(rename = "promiscMode", default)]
    promisc_mode: bool,
    #[serde(default)]
    vlan: i64,
    #[serde(rename = "vlanTrunk", default)]
    vlan_trunk: Option<Vec<VlanTrunk>>,
    #[serde(rename = "preserveDefaultVlan", default)]
    preserve_default_vlan: bool,
    #[serde(default)]
    macspoofchk: bool,
    #[serde(default)]
    enabledad: bool,
    #[serde(rename = "disableContainerInterface", default)]
    disable_container_interface: bool,
    #[serde(rename = "portIsolation", default)]
    port_isolation: bool,
    #[serde(default)]
    args: Option<ArgsBlock>,
    #[serde(rename = "runtimeConfig", default)]
    runtime_config: Option<MacHolder>,
}

#[derive(Debug, Deserialize)]
struct ArgsBlock {
    #[serde(default)]
    cni: Option<MacHolder>,
}

#[derive(Debug, Deserialize)]
struct MacHolder {
    #[serde(default)]
    mac: Option<String>,
}

#[derive(Debug, Deserialize)]
struct VlanTrunk {
    #[serde(rename = "minID", default)]
    min_id: Option<i64>,
    #[serde(rename = "maxID", default)]
    max_id: Option<i64>,
    #[serde(default)]
    id: Option<i64>,
}

fn default_bridge() -> String {
    DEFAULT_BRIDGE.to_string()
}

/// The validated configuration.
#[derive(Debug)]
struct Conf {
    bridge: String,
    is_gateway: bool,
    is_default_gateway: bool,
    force_address: bool,
    ip_masq: bool,
    ip_masq_backend: Option<String>,
    mtu: Option<u32>,
    hairpin_mode: bool,
    promisc_mode: bool,
    /// Access VLAN (0: none).
    vlan: u16,
    /// Trunk VLANs, sorted and unique.
    vlans: Vec<u16>,
    trunk_set: bool,
    preserve_default_vlan: bool,
    macspoofchk: bool,
    enabledad: bool,
    disable_container_interface: bool,
    port_isolation: bool,
    /// The MAC asked for, as given: read only by ADD (a DEL of a pod whose ADD it failed
    /// must still work, as it does for the reference).
    mac_text: Option<String>,
    /// L3: an IPAM type is configured.
    layer3: bool,
}

fn bad(msg: impl Into<String>) -> CniError {
    CniError::internal(msg)
}

fn collect_trunk(trunk: &[VlanTrunk]) -> Result<Vec<u16>, CniError> {
    let valid = |v: i64| (1..=4094).contains(&v);
    let mut out = std::collections::BTreeSet::new();
    for t in trunk {
        match (t.min_id, t.max_id) {
            (Some(min), Some(max)) => {
                if !valid(min) {
                    return Err(CniError::invalid_config("incorrect trunk minID parameter"));
                }
                if !valid(max) {
                    return Err(CniError::invalid_config("incorrect trunk maxID parameter"));
                }
                if max < min {
                    return Err(CniError::invalid_config("minID is greater than maxID in trunk parameter"));
                }
                out.extend((min..=max).map(|v| v as u16));
            }
            (None, Some(_)) => {
                return Err(CniError::invalid_config(
                    "minID and maxID should be configured simultaneously, minID is missing",
                ));
            }
            (Some(_), None) => {
                return Err(CniError::invalid_config(
                    "minID and maxID should be configured simultaneously, maxID is missing",
                ));
            }
            (None, None) => {}
        }
        if let Some(id) = t.id {
            if !valid(id) {
                return Err(CniError::invalid_config("incorrect trunk id parameter"));
            }
            out.insert(id as u16);
        }
    }
    Ok(out.into_iter().collect())
}

/// The access VLAN in range, and the trunk's VLANs.
fn check_vlans(raw: &RawConf) -> Result<Vec<u16>, CniError> {
    if !(0..=4094).contains(&raw.vlan) {
        return Err(CniError::invalid_config(format!("invalid VLAN ID {} (must be between 0 and 4094)", raw.vlan)));
    }
    collect_trunk(raw.vlan_trunk.as_deref().unwrap_or_default())
}

fn valid_link_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 15 && !name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
}

impl Conf {
    fn load(inv: &Invocation) -> Result<Conf, CniError> {
        let raw: RawConf = parse_conf(inv, "bridge")?;
        // DEL needs no VLAN (the port goes with its veth): a config refused for one is torn down.
        let vlans = match check_vlans(&raw) {
            Err(_) if inv.command == Command::Del => Vec::new(),
            v => v?,
        };
        // MAC: CNI_ARGS, then args.cni.mac, then runtimeConfig.mac; the last one set wins.
        let mut mac_text = None;
        if !inv.args_raw.is_empty() {
            inv.args.check_known(&["MAC"])?;
            mac_text = inv.args.get("MAC").filter(|m| !m.is_empty()).map(str::to_string);
        }
        let args_mac = raw.args.as_ref().and_then(|a| a.cni.as_ref()).and_then(|c| c.mac.clone());
        let runtime_mac = raw.runtime_config.as_ref().and_then(|r| r.mac.clone());
        for m in [args_mac, runtime_mac].into_iter().flatten() {
            if !m.is_empty() {
                mac_text = Some(m);
            }
        }
        let layer3 = inv.conf.ipam_type().is_some();
        Ok(Conf {
            bridge: raw.bridge,
            is_gateway: raw.is_gateway || raw.is_default_gateway,
            is_default_gateway: raw.is_default_gateway,
            force_address: raw.force_address,
            ip_masq: raw.ip_masq,
            ip_masq_backend: raw.ip_masq_backend,
            mtu: Some(raw.mtu).filter(|m| *m != 0),
            hairpin_mode: raw.hairpin_mode,
            promisc_mode: raw.promisc_mode,
            vlan: u16::try_from(raw.vlan).unwrap_or(0),
            trunk_set: raw.vlan_trunk.is_some(),
            vlans,
            preserve_default_vlan: raw.preserve_default_vlan,
            macspoofchk: raw.macspoofchk,
            enabledad: raw.enabledad,
            disable_container_interface: raw.disable_container_interface,
            port_isolation: raw.port_isolation,
            mac_text,
            layer3,
        })
    }

    /// Checks that only matter when something is being set up.
    fn check_for_setup(&self) -> Result<(), CniError> {
        if !valid_link_name(&self.bridge) {
            return Err(CniError::invalid_config(format!("invalid bridge name \"{}\"", self.bridge)));
        }
        self.mac()?;
        if self.hairpin_mode && self.promisc_mode {
            return Err(CniError::invalid_config("cannot set hairpin mode and promiscuous mode at the same time"));
        }
        if self.disable_container_interface && self.layer3 {
            return Err(CniError::invalid_config("cannot use IPAM when disableContainerInterface flag is set"));
        }
        if self.ip_masq {
            masq::check_backend(self.ip_masq_backend.as_deref())?;
        }
        Ok(())
    }

    fn mac(&self) -> Result<Option<[u8; 6]>, CniError> {
        let parse =
            |m: &String| parse_mac(m).ok_or_else(|| CniError::invalid_config(format!("invalid MAC address \"{m}\"")));
        self.mac_text.as_ref().map(parse).transpose()
    }

    fn vlan_filtering(&self) -> bool {
        self.vlan != 0 || self.trunk_set
    }
}

// ---- ADD ----------------------------------------------------------------------------------

/// What a failed ADD must undo.
#[derive(Default)]
struct Undo {
    host_veth: Option<String>,
    ipam: bool,
    spoofchk: bool,
    masq: Option<masq::Backend>,
}

impl Undo {
    fn run(&self, inv: &Invocation, host: &Netlink) {
        if let Some(name) = &self.host_veth {
            // Deleting one end of a veth deletes both.
            if let Ok(Some(l)) = host.link_by_name(name) {
                let _ = host.del_link(&l);
            }
        }
        if self.ipam {
            let _ = ipam::del(inv);
        }
        if self.spoofchk {
            let _ = spoofcheck::teardown(&System, &inv.container_id, &inv.ifname);
        }
        match self.masq {
            Some(masq::Backend::Nftables) => {
                let _ = masq::teardown(&System, &inv.conf.name, &inv.ifname, &inv.container_id);
            }
            Some(masq::Backend::Iptables) => {
                let _ = iptables::teardown_masq(&inv.conf.name, &inv.container_id, Removal::Ours);
            }
            None => {}
        }
    }
}

fn add(inv: &Invocation) -> Result<CniResult, CniError> {
    let conf = Conf::load(inv)?;
    conf.check_for_setup()?;
    let host = Netlink::open()?;
    let mut undo = Undo::default();
    let out = add_with(inv, &conf, &host, &mut undo);
    if out.is_err() {
        undo.run(inv, &host);
    }
    out
}

fn add_with(inv: &Invocation, conf: &Conf, host: &Netlink, undo: &mut Undo) -> Result<CniResult, CniError> {
    let br =
        ensure_bridge(host, conf).map_err(|e| e.context(format!("failed to create bridge \"{}\"", conf.bridge)))?;
    let cont_ns = iface::open_netns(inv)?;
    let cont = Netlink::open_in(&cont_ns)?;
    let sandbox = cont_ns.path().display().to_string();

    // The host end is born a port of the bridge (`attach_port` does the rest).
    let pair = iface::create_veth(host, &cont, &cont_ns, &inv.ifname, conf.mtu, conf.mac()?, Some(&br))?;
    undo.host_veth = Some(pair.host.name.clone());
    if !conf.layer3 {
        iface::no_router_ads(&pair.host.name);
    }
    attach_port(
        host,
        &br,
        &pair.host,
        conf.hairpin_mode,
        conf.port_isolation,
        conf.vlan,
        &conf.vlans,
        conf.preserve_default_vlan,
    )?;

    let mut result = CniResult {
        interfaces: vec![
            Interface { name: br.name.clone(), mac: br.mac_string(), ..Default::default() },
            Interface { name: pair.host.name.clone(), mac: pair.host.mac_string(), ..Default::default() },
            Interface {
                name: pair.container.name.clone(),
                mac: pair.container.mac_string(),
                sandbox: sandbox.clone(),
                ..Default::default()
            },
        ],
        ..Default::default()
    };

    let leased = if conf.layer3 {
        let r = ipam::add(inv)?;
        undo.ipam = true;
        Some(r)
    } else {
        None
    };
    // After IPAM, which refuses a second ADD of an attachment that holds an address: the
    // spoof-check rules are named by the attachment, and a failed duplicate's undo would
    // otherwise take out the first one's. Still before the pod's end comes up.
    if conf.macspoofchk {
        undo.spoofchk = true;
        spoofcheck::setup(&System, &pair.host.name, &pair.container.mac_string(), &inv.container_id, &inv.ifname)?;
    }
    if let Some(r) = leased {
        result.ips = r.ips;
        result.routes = r.routes;
        result.dns = r.dns;
        let gateways = calc_gateways(&mut result, conf);

        let ifname = inv.ifname.as_str();
        let enabledad = conf.enabledad;
        // Right before the container's DAD setting: `iface::no_router_ads` says why.
        iface::no_router_ads(&pair.host.name);
        cont_ns.run(|| {
            if enabledad {
                let _ = sysctl::write(&format!("net/ipv6/conf/{ifname}/enhanced_dad"), "1");
                let _ = sysctl::write(&format!("net/ipv6/conf/{ifname}/accept_dad"), "1");
            } else {
                let _ = sysctl::write(&format!("net/ipv6/conf/{ifname}/accept_dad"), "0");
            }
            iface::configure_link(&cont, &pair.container, &result, true)
        })??;

        if conf.is_gateway {
            let mut vlan_iface_added = false;
            for (v4, gws) in [(true, &gateways.v4), (false, &gateways.v6)] {
                for gw in gws {
                    if conf.vlan != 0 {
                        let vl = ensure_vlan_interface(host, &br, conf)
                            .map_err(|e| e.context("failed to create vlan interface"))?;
                        if !vlan_iface_added {
                            result.interfaces.push(Interface {
                                name: vl.name.clone(),
                                mac: vl.mac_string(),
                                ..Default::default()
                            });
                            vlan_iface_added = true;
                        }
                        ensure_addr(host, &vl, *gw, conf.force_address)
                            .map_err(|e| e.context("failed to set vlan interface for bridge with addr"))?;
                    } else {
                        ensure_addr(host, &br, *gw, conf.force_address)
                            .map_err(|e| e.context("failed to set bridge addr"))?;
                    }
                }
                if !gws.is_empty() {
                    iface::enable_forwarding(host, v4).map_err(|e| bad(format!("failed to enable forwarding: {e}")))?;
                }
            }
        }

        if conf.ip_masq {
            let ips: Vec<IpNet> = result.ips.iter().map(|ip| ip.address).collect();
            let backend = masq::check_backend(conf.ip_masq_backend.as_deref())?;
            undo.masq = Some(backend);
            masq::setup_with(backend, &ips, &inv.conf.name, &inv.ifname, &inv.container_id)?;
        }
    } else if !conf.disable_container_interface {
        cont.set_up(&pair.container).map_err(|e| bad(format!("failed to set \"{}\" up: {e}", inv.ifname)))?;
    }

    // The port must come up (both ends up, bridge up) before the pod can talk. Then the
    // result's MACs: the bridge's follows its lowest port's until the gateway address pins it,
    // so it is read last, as the reference does. All read from sysfs where it shows this
    // namespace (a link request now would wait for the RTNL lock, which the kernel's IPv6
    // set-up of the container end holds while it floods that end's first solicitations to every
    // port), else asked of the kernel at the reference's intervals (the first three spent
    // polling sysfs, when it answered).
    let port_mac = if conf.disable_container_interface {
        host.link(&pair.host.name)?.mac_string()
    } else {
        match poll_port_up(&pair.host) {
            Polled::Up(mac) => mac,
            Polled::Down => ask_port_up(host, &pair.host.name, &PORT_ASKED[3..])?,
            Polled::Unseen => ask_port_up(host, &pair.host.name, PORT_ASKED)?,
        }
    };
    result.interfaces[0].mac = match sysfs::read(&br.name, br.index) {
        Some(b) => b.mac,
        None => bridge_by_name(host, &conf.bridge)?.mac_string(),
    };
    result.interfaces[1].mac = port_mac;

    iface::apply_conf_dns(inv, &mut result);
    Ok(result)
}

#[derive(Default)]
struct Gateways {
    v4: Vec<IpNet>,
    v6: Vec<IpNet>,
}

/// Point every IP at the container interface, fill in gateways (the subnet's first address)
/// when acting as gateway, add default routes, and list the addresses the bridge needs.
fn calc_gateways(result: &mut CniResult, conf: &Conf) -> Gateways {
    let mut gws = Gateways::default();
    let mut default_found = [false, false];
    for i in 0..result.ips.len() {
        let v4 = result.ips[i].is_v4();
        result.ips[i].interface = Some(2);
        if result.ips[i].gateway.is_none() && conf.is_gateway {
            result.ips[i].gateway = first_host(&result.ips[i].address);
        }
        let ip = result.ips[i].clone();
        let fam = usize::from(!v4);
        let default: IpNet = if v4 {
            IpNet::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).unwrap_or_default()
        } else {
            IpNet::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).unwrap_or_default()
        };
        if conf.is_default_gateway {
            if !default_found[fam] {
                default_found[fam] = result.routes.iter().any(|r| r.gw.is_some() && r.dst == default);
            }
            if !default_found[fam] {
                result.routes.push(Route::new(default, ip.gateway));
                default_found[fam] = true;
            }
        }
        if conf.is_gateway
            && let Some(net) = ip.gateway.and_then(|gw| IpNet::new(gw, ip.address.prefix_len()).ok())
        {
            if v4 { gws.v4.push(net) } else { gws.v6.push(net) }
        }
    }
    gws
}

/// The address after the network address of `net`.
fn first_host(net: &IpNet) -> Option<IpAddr> {
    match net.network() {
        IpAddr::V4(a) => u32::from(a).checked_add(1).map(|n| IpAddr::V4(n.into())),
        IpAddr::V6(a) => u128::from(a).checked_add(1).map(|n| IpAddr::V6(n.into())),
    }
}

/// The reference's intervals (ms) between asking whether the port came up.
const PORT_ASKED: &[u64] = &[0, 50, 500, 1000, 1000];
/// How long sysfs is polled for the port's coming up before the kernel is asked: the first
/// three of the reference's intervals.
const PORT_POLLED: Duration = Duration::from_millis(550);

enum Polled {
    /// Up, with its MAC.
    Up(String),
    /// Still down when polling ended.
    Down,
    /// sysfs does not show this namespace's links.
    Unseen,
}

/// Poll the port's operational state in sysfs, at growing intervals (it comes up once the
/// kernel's link watcher has run, usually within a millisecond), for up to `PORT_POLLED`.
fn poll_port_up(port: &Link) -> Polled {
    let start = std::time::Instant::now();
    let mut pause = Duration::from_micros(100);
    loop {
        match sysfs::read(&port.name, port.index) {
            None => return Polled::Unseen,
            Some(l) if l.oper_up => return Polled::Up(l.mac),
            Some(_) if start.elapsed() >= PORT_POLLED => return Polled::Down,
            Some(_) => {}
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Ask the kernel whether the port came up, after each of `sleeps` (ms): its MAC once it is,
/// else the error the reference gives.
fn ask_port_up(host: &Netlink, name: &str, sleeps: &[u64]) -> Result<String, CniError> {
    let mut state = String::new();
    for &sleep in sleeps {
        std::thread::sleep(Duration::from_millis(sleep));
        let l = host.link(name)?;
        if l.oper_up {
            return Ok(l.mac_string());
        }
        state = l.oper_state;
    }
    Err(bad(format!("bridge port in error state: {state}")))
}

fn bridge_by_name(nl: &Netlink, name: &str) -> Result<Link, CniError> {
    is_bridge(nl.link_by_name(name)?, name)
}

fn is_bridge(link: Option<Link>, name: &str) -> Result<Link, CniError> {
    let l = link.ok_or_else(|| bad(format!("could not lookup \"{name}\": Link not found")))?;
    if l.kind != LinkKind::Bridge {
        return Err(bad(format!("\"{name}\" already exists but is not a bridge")));
    }
    Ok(l)
}

/// The bridge, created if missing (another plugin may create it at the same moment: EEXIST
/// is fine). Looked up first, since it almost always exists: a lookup is cheaper than a
/// failed creation, which takes the kernel's RTNL lock that every pod on the node contends for.
fn ensure_bridge(nl: &Netlink, conf: &Conf) -> Result<Link, CniError> {
    let br = match nl.link_by_name(&conf.bridge)? {
        Some(l) => is_bridge(Some(l), &conf.bridge)?,
        None => {
            match nl.create_bridge(&conf.bridge, conf.mtu, conf.vlan_filtering()) {
                Err(e) if !e.is_exists() => return Err(e.into()),
                _ => {}
            }
            bridge_by_name(nl, &conf.bridge)?
        }
    };
    let mut changed = false;
    if conf.promisc_mode && !br.promisc {
        nl.set_promisc(&br, true)?;
        changed = true;
    }
    // We want to own the routes for this interface. The link message carries the value: the
    // /proc file (a lookup among every namespace's entries on a busy node) only when it differs.
    if br.accept_ra != Some(0) {
        let _ = sysctl::set(&format!("net/ipv6/conf/{}/accept_ra", conf.bridge), "0");
    }
    if !br.up {
        nl.set_up(&br)?;
        changed = true;
    }
    if changed { bridge_by_name(nl, &conf.bridge) } else { Ok(br) }
}

#[allow(clippy::too_many_arguments)]
fn attach_port(
    nl: &Netlink,
    br: &Link,
    port: &Link,
    hairpin: bool,
    isolated: bool,
    vlan: u16,
    trunk: &[u16],
    preserve_default_vlan: bool,
) -> Result<(), CniError> {
    if port.master != Some(br.index) {
        nl.set_master(port, br)?;
    }
    // A new port starts with hairpin off: only turning it on takes a request (and the RTNL
    // lock that every pod on the node contends for).
    if hairpin {
        nl.set_hairpin(port, true)?;
    }
    if isolated {
        nl.set_isolated(port, true)?;
    }
    if (vlan != 0 || !trunk.is_empty()) && !preserve_default_vlan {
        for (vid, _) in nl.bridge_vlans(port)? {
            nl.bridge_vlan_del(port, vid)
                .map_err(|e| bad(format!("failed to remove default vlan on interface \"{}\": {e}", port.name)))?;
        }
    }
    if vlan != 0 {
        nl.bridge_vlan_add(port, vlan, true, true)?;
    }
    for v in trunk {
        nl.bridge_vlan_add(port, *v, false, false)?;
    }
    // A trunk without `vlan` carries untagged traffic on VLAN 1, as the reference does.
    if vlan == 0 && !trunk.is_empty() {
        nl.bridge_vlan_add(port, 1, true, true)
            .map_err(|e| bad(format!("failed to setup default native vlan tag on interface \"{}\": {e}", port.name)))?;
    }
    Ok(())
}

/// The `<bridge>.<vlan>` gateway interface: one end of a veth pair in the host namespace,
/// whose other end is an access port of the bridge on that VLAN.
fn ensure_vlan_interface(nl: &Netlink, br: &Link, conf: &Conf) -> Result<Link, CniError> {
    let name = format!("{}.{}", br.name, conf.vlan);
    if let Some(l) = nl.link_by_name(&name)? {
        return Ok(l);
    }
    if !valid_link_name(&name) {
        return Err(bad(format!("vlan gateway interface name \"{name}\" is too long")));
    }
    let here = Netns::current()?;
    let mtu = Some(br.mtu).filter(|m| *m != 0);
    let VethPair { host, container } = iface::create_veth(nl, nl, &here, &name, mtu, None, Some(br))?;
    iface::no_router_ads(&host.name);
    let attached = attach_port(nl, br, &host, false, false, conf.vlan, &[], conf.preserve_default_vlan)
        .and_then(|_| Ok(nl.set_up(&container)?));
    if let Err(e) = attached {
        let _ = nl.del_link(&host);
        return Err(e);
    }
    Ok(nl.link(&name)?)
}

/// Put `gw` on `link`, unless it is there already; another IPv4 address (or an overlapping
/// IPv6 one) is an error, or is removed with `forceAddress`.
fn ensure_addr(nl: &Netlink, link: &Link, gw: IpNet, force: bool) -> Result<(), CniError> {
    let v4 = gw.addr().is_ipv4();
    for a in nl.list_addresses_of(link, v4)?.into_iter().filter(|a| a.net.addr().is_ipv4() == v4) {
        if a.net == gw {
            return Ok(());
        }
        if v4 || a.net.contains(&gw.addr()) || gw.contains(&a.net.addr()) {
            if force {
                nl.del_address(link, a.net)?;
            } else {
                return Err(bad(format!("\"{}\" already has an IP address different from {gw}", link.name)));
            }
        }
    }
    match nl.add_address(link, gw) {
        Err(e) if !e.is_exists() => return Err(bad(format!("could not add IP address to \"{}\": {e}", link.name))),
        _ => {}
    }
    // Pin the bridge's MAC: otherwise it follows the lowest port MAC and changes as ports churn.
    // It is read now, with this port attached: a bridge whose last port left has the all-zero
    // MAC, which cannot be set (the reference's "could not set bridge's mac").
    let fresh = nl.link(&link.name)?;
    nl.set_mac(&fresh, &fresh.mac).map_err(|e| bad(format!("could not set bridge's mac: {e}")))?;
    Ok(())
}

// ---- DEL ----------------------------------------------------------------------------------

fn del(inv: &Invocation) -> Result<(), CniError> {
    // Only what DEL needs must parse: a config ADD refused can still be torn down.
    let conf = Conf::load(inv)?;
    if let Some(ns) = iface::open_netns_for_del(inv)? {
        let nl = Netlink::open_in(&ns)?;
        iface::del_container_link(&nl, &ns, &inv.ifname)?;
    }
    if conf.layer3 {
        ipam::del(inv)?;
    }
    if conf.macspoofchk
        && let Err(e) = spoofcheck::teardown(&System, &inv.container_id, &inv.ifname)
    {
        crate::logger::warn(format_args!("{e}"));
    }
    // Rules are found by their comment: this works when the namespace (and with it the
    // container's addresses) is already gone.
    if conf.layer3 && conf.ip_masq {
        masq::teardown_iptables(conf.ip_masq_backend.as_deref(), inv)?;
        masq::teardown(&System, &inv.conf.name, &inv.ifname, &inv.container_id)?;
    }
    Ok(())
}

// ---- GC -----------------------------------------------------------------------------------

/// A config ADD would take, iptables for `ipMasqBackend: "iptables"`, then the IPAM's STATUS.
fn status(inv: &Invocation) -> Result<(), CniError> {
    let conf = Conf::load(inv)?;
    conf.check_for_setup()?;
    // Masquerading needs addresses: without IPAM, ADD writes no rule.
    if conf.ip_masq && conf.layer3 {
        masq::status(conf.ip_masq_backend.as_deref())?;
    }
    ipam::status(inv)
}

/// Masquerade rules of attachments that are no longer valid go, then the IPAM collects.
fn gc(inv: &Invocation) -> Result<(), CniError> {
    let conf = Conf::load(inv)?;
    let spoof = match crate::cni::gc::valid_attachments(&inv.stdin)? {
        Some(valid) if conf.macspoofchk => {
            let host = Netlink::open()?;
            spoofcheck::gc(&System, &valid, |name| !matches!(host.link_by_name(name), Ok(None)))
        }
        _ => Ok(()),
    };
    iface::gc_masq_and_ipam(inv, conf.ip_masq).and(spoof)
}

// ---- CHECK --------------------------------------------------------------------------------

fn check(inv: &Invocation) -> Result<(), CniError> {
    let conf = Conf::load(inv)?;
    let cont_ns = iface::open_netns(inv)?;
    if conf.layer3 {
        ipam::check(inv)?;
    }
    let prev = inv.conf.prev_result.as_ref().ok_or_else(|| bad("Required prevResult missing"))?;
    let result = CniResult::from_prev(prev, inv.version)?;

    let br_if = result.interfaces.iter().find(|i| i.name == conf.bridge);
    let cont_if = iface::container_entry(inv, &result, Wording::Capitalised);

    let host = Netlink::open()?;
    let br_if = br_if.ok_or_else(|| bad("Interface name missing "))?;
    let br = host.link_by_name(&br_if.name)?.ok_or_else(|| bad(format!("Interface name {} not found", br_if.name)))?;
    if !br_if.sandbox.is_empty() {
        return Err(bad(format!("Interface {} should not be in sandbox", br_if.name)));
    }
    if br.kind != LinkKind::Bridge {
        return Err(bad(format!("Interface {} does not have link type of bridge", br_if.name)));
    }
    if !br_if.mac.is_empty() && br_if.mac != br.mac_string() {
        return Err(bad(format!("Bridge interface {} Mac doesn't match: {}", br_if.name, br_if.mac)));
    }
    if br.promisc != conf.promisc_mode {
        return Err(bad(format!(
            "Bridge interface {} configured Promisc Mode {} doesn't match current state: {} ",
            br_if.name, conf.promisc_mode, br.promisc
        )));
    }

    let cont_if = cont_if?;
    let cont = Netlink::open_in(&cont_ns)?;
    let c =
        cont.link_by_name(&cont_if.name)?.ok_or_else(|| bad(format!("Interface name {} not found", cont_if.name)))?;
    if c.kind != LinkKind::Veth {
        return Err(bad(format!("Error: Container interface {} not of type veth", c.name)));
    }
    if !cont_if.mac.is_empty() && cont_if.mac != c.mac_string() {
        return Err(bad(format!(
            "Interface {} Mac {} doesn't match container Mac: {}",
            cont_if.name,
            cont_if.mac,
            c.mac_string()
        )));
    }

    let mut veth_found = false;
    for i in result.interfaces.iter().filter(|i| i.name != br_if.name && i.name != cont_if.name) {
        let l = host.link_by_name(&i.name)?.ok_or_else(|| bad(format!("Interface name {} not found", i.name)))?;
        if !i.sandbox.is_empty() {
            return Err(bad(format!("Interface {} should not be in sandbox", i.name)));
        }
        if l.kind != LinkKind::Veth
            || Some(l.index) != c.peer_index
            || l.peer_index != Some(c.index)
            || l.master != Some(br.index)
        {
            continue;
        }
        if !i.mac.is_empty() && i.mac != l.mac_string() {
            return Err(bad(format!("Interface {} Mac doesn't match: {} not found", i.name, i.mac)));
        }
        veth_found = true;
        break;
    }
    if !veth_found {
        return Err(bad(format!("CNI veth created for bridge {} was not found", conf.bridge)));
    }

    iface::validate_expected_ips(&cont, &inv.ifname, &result.ips)?;
    // Masquerade rules are not checked, as the reference does not check them: a pod it set
    // up has its rules in iptables, and must pass CHECK after the node switches.
    iface::validate_expected_routes(&cont, &result.routes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::result::IpConfig;

    #[test]
    fn trunk_ranges_and_ids() {
        let t = |json: &str| collect_trunk(&serde_json::from_str::<Vec<VlanTrunk>>(json).unwrap());
        assert_eq!(t(r#"[{"id":5},{"minID":3,"maxID":6},{"id":100}]"#).unwrap(), vec![3, 4, 5, 6, 100]);
        assert_eq!(t(r#"[{"id":0}]"#).unwrap_err().msg, "incorrect trunk id parameter");
        assert_eq!(t(r#"[{"minID":0,"maxID":3}]"#).unwrap_err().msg, "incorrect trunk minID parameter");
        assert_eq!(t(r#"[{"minID":1,"maxID":4095}]"#).unwrap_err().msg, "incorrect trunk maxID parameter");
        assert_eq!(t(r#"[{"minID":5,"maxID":3}]"#).unwrap_err().msg, "minID is greater than maxID in trunk parameter");
        assert!(t(r#"[{"maxID":3}]"#).unwrap_err().msg.contains("minID is missing"));
        assert!(t(r#"[{"minID":3}]"#).unwrap_err().msg.contains("maxID is missing"));
        assert!(t("[]").unwrap().is_empty());
    }

    #[test]
    fn gateways_and_default_routes() {
        let conf = Conf {
            bridge: "cni0".into(),
            is_gateway: true,
            is_default_gateway: true,
            force_address: false,
            ip_masq: false,
            ip_masq_backend: None,
            mtu: None,
            hairpin_mode: false,
            promisc_mode: false,
            vlan: 0,
            vlans: vec![],
            trunk_set: false,
            preserve_default_vlan: true,
            macspoofchk: false,
            enabledad: false,
            disable_container_interface: false,
            port_isolation: false,
            mac_text: None,
            layer3: true,
        };
        let mut r = CniResult {
            ips: vec![
                IpConfig { interface: None, address: "10.1.2.7/24".parse().unwrap(), gateway: None },
                IpConfig {
                    interface: None,
                    address: "fd00::7/64".parse().unwrap(),
                    gateway: Some("fd00::fe".parse().unwrap()),
                },
            ],
            routes: vec![Route::new("::/0".parse().unwrap(), Some("fd00::1".parse().unwrap()))],
            ..Default::default()
        };
        let g = calc_gateways(&mut r, &conf);
        assert_eq!(r.ips[0].interface, Some(2));
        assert_eq!(r.ips[0].gateway, Some("10.1.2.1".parse().unwrap()));
        assert_eq!(g.v4, vec!["10.1.2.1/24".parse::<IpNet>().unwrap()]);
        assert_eq!(g.v6, vec!["fd00::fe/64".parse::<IpNet>().unwrap()]);
        // A v4 default route is added; the v6 one was already there.
        assert_eq!(r.routes.len(), 2);
        assert_eq!(r.routes[1], Route::new("0.0.0.0/0".parse().unwrap(), Some("10.1.2.1".parse().unwrap())));
    }
}
