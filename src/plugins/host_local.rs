//! host-local IPAM: addresses from range sets, reserved in a per-network directory on the
//! node (see `ipam::store` for the format, shared with the reference plugin).

use crate::cni::config::parse_conf;
use crate::cni::error::code;
use crate::cni::gc::{Attachment, GcAttachments};
use crate::cni::result::{Dns, Route};
use crate::cni::{CniError, CniResult, Command, Invocation, PluginFns, version};
use crate::ipam::allocator::Allocator;
use crate::ipam::range::{RangeConf, RangeSet, canonicalize_sets};
use crate::ipam::store::{DEFAULT_DATA_DIR, Store};
use crate::ipam::{parse_ip_maybe_cidr, resolv};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

pub static PLUGIN: PluginFns = PluginFns { add, del, check, gc, status, versions: version::ALL };

// ---- config as written ----------------------------------------------------------------------

#[derive(Deserialize)]
struct NetIn {
    #[serde(default)]
    name: String,
    #[serde(default)]
    ipam: Option<IpamIn>,
    #[serde(rename = "runtimeConfig", default)]
    runtime_config: Option<RuntimeIn>,
    #[serde(default)]
    args: Option<ArgsIn>,
    #[serde(rename = "cni.dev/valid-attachments", default)]
    valid_attachments: Option<Vec<Attachment>>,
    #[serde(rename = "cni.dev/attachments", default)]
    attachments: Option<Vec<Attachment>>,
}

#[derive(Deserialize)]
struct IpamIn {
    /// The legacy single range: top-level `subnet`, `rangeStart`, `rangeEnd`, `gateway`
    /// (named here rather than flattened, so that the keys match as Go matches them).
    #[serde(default)]
    subnet: Option<String>,
    #[serde(rename = "rangeStart", default)]
    range_start: Option<String>,
    #[serde(rename = "rangeEnd", default)]
    range_end: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    ranges: Option<Vec<Vec<RangeConf>>>,
    #[serde(default)]
    routes: Option<Vec<Route>>,
    #[serde(rename = "dataDir", default)]
    data_dir: Option<String>,
    #[serde(rename = "resolvConf", default)]
    resolv_conf: Option<String>,
}

#[derive(Deserialize, Default)]
struct RuntimeIn {
    #[serde(rename = "ipRanges", default)]
    ip_ranges: Option<Vec<Vec<RangeConf>>>,
    #[serde(default)]
    ips: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ArgsIn {
    #[serde(default)]
    cni: Option<CniArgsIn>,
}

#[derive(Deserialize)]
struct CniArgsIn {
    #[serde(default)]
    ips: Option<Vec<String>>,
}

// ---- config as used -------------------------------------------------------------------------

/// A validated host-local configuration.
pub struct Config {
    pub name: String,
    /// `runtimeConfig.ipRanges` first, then the legacy range, then `ranges`.
    pub ranges: Vec<RangeSet>,
    pub routes: Vec<Route>,
    pub data_dir: PathBuf,
    pub resolv_conf: Option<PathBuf>,
    /// CNI_ARGS `IP`, then `args.cni.ips`, then `runtimeConfig.ips`; no duplicates.
    pub requested: Vec<IpAddr>,
    /// For GC: the attachments to keep, or None when the config lists none.
    pub valid_attachments: Option<Vec<(String, String)>>,
}

fn parse_requested(what: &str, s: &str) -> Result<IpAddr, CniError> {
    parse_ip_maybe_cidr(s).ok_or_else(|| CniError::internal(format!("cannot understand ip: invalid {what} \"{s}\"")))
}

impl Config {
    pub fn load(inv: &Invocation) -> Result<Config, CniError> {
        let n: NetIn = parse_conf(inv, "host-local")?;
        let ipam = n.ipam.ok_or_else(|| CniError::internal("IPAM config missing 'ipam' key"))?;
        let rt = n.runtime_config.unwrap_or_default();

        let mut requested = Vec::new();
        // DEL releases by attachment: what ADD would be asked for, and from where, is not read,
        // so a config ADD refused (a bad range, an unknown CNI_ARGS key) is still torn down.
        let del = inv.command == Command::Del;
        if !del {
            inv.args.check_known(&["IP"])?;
            if let Some(v) = inv.args.get("IP").filter(|v| !v.is_empty()) {
                requested.push(parse_requested("CNI_ARGS IP", v)?);
            }
            for s in n.args.and_then(|a| a.cni).and_then(|c| c.ips).unwrap_or_default() {
                requested.push(parse_requested("args.cni.ips entry", &s)?);
            }
            for s in rt.ips.unwrap_or_default() {
                requested.push(parse_requested("runtimeConfig.ips entry", &s)?);
            }
        }
        let mut seen = std::collections::HashSet::new();
        requested.retain(|ip| seen.insert(*ip));

        let mut sets = rt.ip_ranges.unwrap_or_default();
        if ipam.subnet.as_deref().is_some_and(|s| !s.trim().is_empty()) {
            sets.push(vec![RangeConf {
                subnet: ipam.subnet,
                range_start: ipam.range_start,
                range_end: ipam.range_end,
                gateway: ipam.gateway,
            }]);
        }
        sets.extend(ipam.ranges.unwrap_or_default());
        // GC and STATUS come without runtimeConfig (libcni injects none), so a network whose
        // ranges all come from `ipRanges` has none then; both work on the store alone.
        let ranges = if del || sets.is_empty() && matches!(inv.command, Command::Gc | Command::Status) {
            Vec::new()
        } else {
            canonicalize_sets(&sets, inv.version)?
        };

        let gc = GcAttachments { valid: n.valid_attachments, old: n.attachments };
        let valid_attachments =
            gc.union().map(|v| v.into_iter().map(|(id, ifname)| (id.trim().to_string(), ifname)).collect());
        Ok(Config {
            name: n.name,
            ranges,
            routes: ipam.routes.unwrap_or_default(),
            data_dir: PathBuf::from(ipam.data_dir.filter(|d| !d.is_empty()).unwrap_or_else(|| DEFAULT_DATA_DIR.into())),
            resolv_conf: ipam.resolv_conf.filter(|r| !r.is_empty()).map(PathBuf::from),
            requested,
            valid_attachments,
        })
    }
}

// ---- verbs ----------------------------------------------------------------------------------

fn release(store: &Store, inv: &Invocation) -> Result<(), CniError> {
    // Found before the lock, removed under it (see `Store::held_by`).
    let targets = store.release_targets(&inv.container_id, &inv.ifname)?;
    store.lock()?.remove(&targets);
    Ok(())
}

fn add(inv: &Invocation) -> Result<CniResult, CniError> {
    let conf = Config::load(inv)?;
    let dns = match &conf.resolv_conf {
        Some(path) => resolv::load(path)?,
        None => Dns::default(),
    };
    let store = Store::open(&conf.data_dir, &conf.name)?;
    // What this attachment already holds, read once, before any lock (see `Store::held_by`).
    let held = store.held_by(&inv.container_id, &inv.ifname)?;
    let mut requested = conf.requested.clone();
    let mut ips = Vec::with_capacity(conf.ranges.len());
    for (idx, set) in conf.ranges.iter().enumerate() {
        let want = requested.iter().position(|ip| set.contains(*ip)).map(|i| requested.remove(i));
        let alloc = Allocator { set, range_id: idx };
        let got = store
            .prepare(&inv.container_id, &inv.ifname)
            .and_then(|_| store.lock())
            .and_then(|l| alloc.get(&l, &inv.container_id, &inv.ifname, want, &held));
        match got {
            Ok(ip) => ips.push(ip),
            Err(e) => {
                if !ips.is_empty() {
                    let _ = release(&store, inv);
                }
                return Err(CniError::internal(format!("failed to allocate for range {idx}: {e}")));
            }
        }
    }
    if !requested.is_empty() {
        let _ = release(&store, inv);
        let list: Vec<String> = requested.iter().map(IpAddr::to_string).collect();
        return Err(CniError::internal(format!("failed to allocate all requested IPs: {}", list.join(" "))));
    }
    Ok(CniResult { ips, routes: conf.routes, dns, ..Default::default() })
}

fn del(inv: &Invocation) -> Result<(), CniError> {
    let conf = Config::load(inv)?;
    let store = Store::open(&conf.data_dir, &conf.name)?;
    release(&store, inv)
}

fn check(inv: &Invocation) -> Result<(), CniError> {
    let conf = Config::load(inv)?;
    let store = Store::open(&conf.data_dir, &conf.name)?;
    if !store.lock()?.find_by_id(&inv.container_id, &inv.ifname)? {
        return Err(CniError::internal(format!(
            "host-local: Failed to find address added by container {}",
            inv.container_id
        )));
    }
    Ok(())
}

/// Release every reservation whose attachment is not in `cni.dev/valid-attachments`
/// (or the older `cni.dev/attachments`). Without either key there is nothing to judge by,
/// so nothing is released.
fn gc(inv: &Invocation) -> Result<(), CniError> {
    let conf = Config::load(inv)?;
    let Some(valid) = conf.valid_attachments else { return Ok(()) };
    let store = Store::open(&conf.data_dir, &conf.name)?;
    let released = store.lock()?.retain(|owner| match &owner.ifname {
        Some(ifname) => valid.iter().any(|(id, i)| *id == owner.id && i == ifname),
        None => valid.iter().any(|(id, _)| *id == owner.id),
    })?;
    for ip in released {
        crate::logger::info(format_args!("host-local GC: released {ip} of network {}", conf.name));
    }
    Ok(())
}

/// Ready when the store can be written and every range set has a free address.
fn status(inv: &Invocation) -> Result<(), CniError> {
    let conf = Config::load(inv)?;
    let unavailable = |msg: String| CniError::new(code::NOT_AVAILABLE, msg);
    let store = Store::open(&conf.data_dir, &conf.name)
        .map_err(|e| unavailable(format!("host-local: store for network {} is not writable: {e}", conf.name)))?;
    let locked = store.lock()?;
    locked
        .probe_writable()
        .map_err(|e| unavailable(format!("host-local: store for network {} is not writable: {e}", conf.name)))?;
    for (idx, set) in conf.ranges.iter().enumerate() {
        let alloc = Allocator { set, range_id: idx };
        if !alloc.has_free(&locked)? {
            return Err(unavailable(format!("host-local: range set {idx}: {}", alloc.exhausted())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::delegate;
    use crate::cni::skel::test_invocation;

    fn inv(stdin: &str, cid: &str) -> Invocation {
        Invocation { container_id: cid.to_string(), ..test_invocation(stdin, "") }
    }

    #[test]
    fn main_plugins_delegate_in_process() {
        let dir = std::env::temp_dir().join(format!("cnibox-hl-deleg-{}", std::process::id()));
        let stdin = serde_json::json!({
            "cniVersion": "1.0.0", "name": "deleg", "type": "bridge",
            "ipam": {"type": "host-local", "dataDir": dir, "subnet": "10.9.0.0/24"}
        })
        .to_string();
        let i = inv(&stdin, "c1");
        let r = delegate::ipam::add(&i);
        let check = delegate::ipam::check(&i);
        let del = delegate::ipam::del(&i);
        let after = delegate::ipam::check(&i);
        let _ = std::fs::remove_dir_all(&dir);
        let r = r.unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.9.0.2/24");
        assert_eq!(r.ips[0].gateway, Some("10.9.0.1".parse().unwrap()));
        assert!(check.is_ok() && del.is_ok());
        assert_eq!(after.unwrap_err().msg, "host-local: Failed to find address added by container c1");

        let stdin = serde_json::json!({
            "cniVersion": "1.0.0", "name": "deleg", "type": "bridge",
            "ipam": {"type": "static", "addresses": [{"address": "10.8.0.3/24"}]}
        })
        .to_string();
        let r = delegate::ipam::add(&inv(&stdin, "c1")).unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.8.0.3/24");
    }
}
