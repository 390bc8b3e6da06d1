//! static IPAM: the addresses, routes and DNS the config (or the runtime) names; nothing
//! is reserved, so DEL has nothing to do.

use crate::cni::config::parse_conf;
use crate::cni::result::{Dns, IpConfig, Route};
use crate::cni::skel::noop;
use crate::cni::{CniError, CniResult, Invocation, PluginFns, SpecVersion, version};
use crate::ipam::canonical_ip;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::IpAddr;

pub static PLUGIN: PluginFns = PluginFns { add, del: noop, check, gc: noop, status: noop, versions: version::ALL };

#[derive(Deserialize)]
struct NetIn {
    #[serde(default)]
    ipam: Option<IpamIn>,
    #[serde(rename = "runtimeConfig", default)]
    runtime_config: Option<IpsIn>,
    #[serde(default)]
    args: Option<ArgsIn>,
}

#[derive(Deserialize)]
struct IpamIn {
    #[serde(default)]
    routes: Option<Vec<Route>>,
    #[serde(default)]
    addresses: Option<Vec<AddressIn>>,
    #[serde(default)]
    dns: Option<Dns>,
}

#[derive(Deserialize)]
struct AddressIn {
    #[serde(default)]
    address: String,
    #[serde(default)]
    gateway: Option<String>,
}

#[derive(Deserialize, Default)]
struct IpsIn {
    #[serde(default)]
    ips: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ArgsIn {
    #[serde(default)]
    cni: Option<IpsIn>,
}

/// One address to hand out: the address with its prefix, and an optional gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
}

/// A validated static configuration.
pub struct Config {
    pub addresses: Vec<Address>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

fn parse_cidr(s: &str) -> Result<IpNet, CniError> {
    let s = s.trim();
    let net: IpNet =
        s.parse().map_err(|_| CniError::invalid_config(format!("invalid CIDR {s}: invalid CIDR address: {s}")))?;
    let addr = canonical_ip(net.addr());
    if addr != net.addr() {
        // An IPv4-mapped IPv6 address counts as IPv4, with the mask's IPv4 part.
        let prefix = net.prefix_len().saturating_sub(96);
        return IpNet::new(addr, prefix).map_err(|_| CniError::invalid_config(format!("invalid CIDR {s}")));
    }
    Ok(net)
}

fn parse_gateway(s: &str) -> Result<Option<IpAddr>, CniError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<IpAddr>()
        .map(|ip| Some(canonical_ip(ip)))
        .map_err(|_| CniError::invalid_config(format!("invalid gateway address: {s}")))
}

impl Config {
    pub fn load(inv: &Invocation) -> Result<Config, CniError> {
        let n: NetIn = parse_conf(inv, "static")?;
        let ipam = n.ipam.ok_or_else(|| CniError::internal("IPAM config missing 'ipam' key"))?;
        let mut addresses = Vec::new();
        for a in ipam.addresses.unwrap_or_default() {
            addresses.push(Address {
                address: parse_cidr(&a.address)?,
                gateway: parse_gateway(a.gateway.as_deref().unwrap_or(""))?,
            });
        }

        // CNI_ARGS: IP appends; GATEWAY applies to the addresses IP added that contain it.
        inv.args.check_known(&["IP", "GATEWAY"])?;
        let from_args = addresses.len();
        for s in inv.args.get("IP").filter(|v| !v.is_empty()).into_iter().flat_map(|v| v.split(',')) {
            addresses.push(Address { address: parse_cidr(s)?, gateway: None });
        }
        for s in inv.args.get("GATEWAY").filter(|v| !v.is_empty()).into_iter().flat_map(|v| v.split(',')) {
            let gw =
                parse_gateway(s)?.ok_or_else(|| CniError::invalid_config(format!("invalid gateway address: {s}")))?;
            for a in addresses[from_args..].iter_mut().filter(|a| a.address.contains(&gw)) {
                a.gateway = Some(gw);
            }
        }

        // args.cni.ips, then runtimeConfig.ips, replace the list.
        let replacements = [n.args.and_then(|a| a.cni).and_then(|c| c.ips), n.runtime_config.and_then(|r| r.ips)];
        for ips in replacements.into_iter().flatten().filter(|l| !l.is_empty()) {
            addresses = ips
                .iter()
                .map(|s| Ok(Address { address: parse_cidr(s)?, gateway: None }))
                .collect::<Result<_, CniError>>()?;
        }

        let v4 = addresses.iter().filter(|a| a.address.addr().is_ipv4()).count();
        if (v4 > 1 || addresses.len() - v4 > 1) && inv.version < SpecVersion::V0_3_0 {
            return Err(CniError::internal(format!(
                "CNI version {} does not support more than 1 address per family",
                inv.version
            )));
        }
        Ok(Config { addresses, routes: ipam.routes.unwrap_or_default(), dns: ipam.dns.unwrap_or_default() })
    }
}

fn add(inv: &Invocation) -> Result<CniResult, CniError> {
    let conf = Config::load(inv)?;
    let ips = conf
        .addresses
        .into_iter()
        .map(|a| IpConfig { interface: None, address: a.address, gateway: a.gateway })
        .collect();
    Ok(CniResult { ips, routes: conf.routes, dns: conf.dns, ..Default::default() })
}

/// Each configured address found in prevResult must carry the configured gateway.
fn check(inv: &Invocation) -> Result<(), CniError> {
    let conf = Config::load(inv)?;
    let prev = inv.conf.prev_result.as_ref().ok_or_else(|| CniError::internal("Required prevResult missing"))?;
    let prev = CniResult::from_prev(prev, inv.version)?;
    for a in &conf.addresses {
        let found = prev.ips.iter().find(|ip| ip.address.addr() == a.address.addr());
        if let Some(ip) = found.filter(|ip| a.gateway.is_some() && a.gateway != ip.gateway) {
            return Err(CniError::internal(format!(
                "static: Failed to match addr {} on interface {}",
                ip.address.addr(),
                inv.ifname
            )));
        }
    }
    Ok(())
}
