//! bandwidth: shape a container's traffic with token buckets, chained after a veth plugin.
//!
//! Traffic to the container (ingress) is limited by a TBF root qdisc on the host end of its
//! veth. Traffic from the container (egress) arrives on the host veth's ingress, where a u32
//! filter redirects all of it to an ifb device `bwp<hash>` whose TBF root qdisc limits it.
//! The ifb name is `bwp` and sha512(network name + container ID) in hex, 15 characters in all.
//!
//! Limits come from the top-level `ingressRate`, `ingressBurst`, `egressRate` and `egressBurst`
//! (bits per second and bits) or, when none of those is present, from `runtimeConfig.bandwidth`
//! (the `bandwidth` capability).
//!
//! GC: every ifb made here carries the alias `cni-bandwidth:<network>:<containerID>:<ifname>`.
//! GC deletes the ifbs of this network whose attachment is not among the valid ones, and
//! leaves alone any ifb without such an alias (made by other implementations, or whose alias
//! would have exceeded the kernel's 255 bytes).

use super::iface;
use crate::cni::gc::GcAttachments;
use crate::cni::result::Interface;
use crate::cni::{CniError, CniResult, Invocation, PluginFns, version};
use crate::netlink::tc::{INGRESS_HANDLE, TBF_MAX_BUFFER_TICKS, Tbf, TcHandle, psched_tick_in_usec};
use crate::netlink::{Link, Netlink};
use crate::netns::Netns;
use serde::Deserialize;
use serde_json::{Map, Value};

pub static PLUGIN: PluginFns =
    PluginFns { add, del, check, gc, status: crate::cni::skel::noop, versions: version::FROM_0_3_0 };

const IFB_PREFIX: &str = "bwp";
const IFNAME_MAX: usize = 15;
const ALIAS_PREFIX: &str = "cni-bandwidth";
const ALIAS_MAX: usize = 255;
/// How long a packet may wait for tokens: sizes the TBF limit.
const LATENCY_MS: f64 = 25.0;
const USEC_PER_SEC: f64 = 1_000_000.0;

const FIELDS: [&str; 4] = ["ingressRate", "ingressBurst", "egressRate", "egressBurst"];

/// Rates in bits per second, bursts in bits; 0 means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
struct Limits {
    #[serde(rename = "ingressRate", default, deserialize_with = "nullable")]
    ingress_rate: u64,
    #[serde(rename = "ingressBurst", default, deserialize_with = "nullable")]
    ingress_burst: u64,
    #[serde(rename = "egressRate", default, deserialize_with = "nullable")]
    egress_rate: u64,
    #[serde(rename = "egressBurst", default, deserialize_with = "nullable")]
    egress_burst: u64,
}

fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or(0))
}

impl Limits {
    fn is_zero(&self) -> bool {
        *self == Limits::default()
    }

    fn ingress(&self) -> Option<(u64, u64)> {
        (self.ingress_rate > 0 && self.ingress_burst > 0).then_some((self.ingress_rate, self.ingress_burst))
    }

    fn egress(&self) -> Option<(u64, u64)> {
        (self.egress_rate > 0 && self.egress_burst > 0).then_some((self.egress_rate, self.egress_burst))
    }
}

fn validate_rate_and_burst(rate: u64, burst: u64) -> Result<(), CniError> {
    let msg = if burst == 0 && rate != 0 {
        "if rate is set, burst must also be set"
    } else if rate == 0 && burst != 0 {
        "if burst is set, rate must also be set"
    } else if burst / 8 >= u64::from(u32::MAX) {
        "burst cannot be more than 4GB"
    } else if rate != 0 && rate < 8 {
        "rate must be at least 8 bits per second"
    } else {
        return Ok(());
    };
    Err(CniError::internal(msg))
}

struct Conf {
    name: String,
    /// None when neither the top level nor runtimeConfig says anything.
    limits: Option<Limits>,
    /// What is wrong with `limits`, reported by ADD and CHECK.
    limits_error: Option<CniError>,
    prev: Option<CniResult>,
    /// For GC: the attachments to keep, or None when the config lists none.
    valid_attachments: Option<Vec<(String, String)>>,
}

fn load(inv: &Invocation) -> Result<Conf, CniError> {
    let bad = |e: serde_json::Error| CniError::decoding(format!("failed to parse network configuration: {e}"));
    let raw: Map<String, Value> = serde_json::from_slice(&inv.stdin).map_err(bad)?;
    // Keys in any case, as Go's decoder matches them to the fields.
    let top = raw.keys().any(|k| FIELDS.iter().any(|f| f.eq_ignore_ascii_case(k)));
    let limits = if top {
        Some(crate::cni::json::from_value::<Limits>(Value::Object(raw.clone())).map_err(bad)?)
    } else {
        match inv.conf.runtime_config.get("bandwidth") {
            None | Some(Value::Null) => None,
            Some(v) => Some(crate::cni::json::from_value::<Limits>(v.clone()).map_err(bad)?),
        }
    };
    // Only ADD and CHECK insist on valid limits: DEL and GC of a refused config must still work.
    let limits_error = limits.as_ref().and_then(|l| {
        validate_rate_and_burst(l.ingress_rate, l.ingress_burst)
            .and_then(|_| validate_rate_and_burst(l.egress_rate, l.egress_burst))
            .err()
    });
    let prev = match &inv.conf.prev_result {
        Some(v) => Some(CniResult::from_prev(v, inv.version).map_err(|e| e.context("could not parse prevResult"))?),
        None => None,
    };
    let valid_attachments = crate::cni::json::from_value::<GcAttachments>(Value::Object(raw)).map_err(bad)?.union();
    Ok(Conf { name: inv.conf.name.clone(), limits, limits_error, prev, valid_attachments })
}

/// `bwp` and the hex sha512 of network name and container ID, 15 characters.
fn ifb_name(network: &str, container_id: &str) -> String {
    let hash = crate::util::sha512::hex(format!("{network}{container_id}").as_bytes());
    format!("{IFB_PREFIX}{hash}")[..IFNAME_MAX].to_string()
}

fn ifb_alias(network: &str, container_id: &str, ifname: &str) -> Option<String> {
    let a = format!("{ALIAS_PREFIX}:{network}:{container_id}:{ifname}");
    (a.len() <= ALIAS_MAX).then_some(a)
}

/// (network, container ID, ifname) from an alias made by `ifb_alias`.
fn parse_alias(alias: &str) -> Option<(&str, &str, &str)> {
    let mut parts = alias.split(':');
    let (p, n, c, i) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (p == ALIAS_PREFIX && parts.next().is_none()).then_some((n, c, i))
}

/// The token bucket for `rate_bits` per second and `burst_bits`: the rate in bytes per second,
/// the burst as the psched ticks it takes to send at that rate, and room for 25 ms of traffic
/// plus the burst.
fn tbf_for(rate_bits: u64, burst_bits: u64, tick_in_usec: f64) -> Tbf {
    let rate = rate_bits / 8;
    let burst = u32::try_from(burst_bits / 8).unwrap_or(u32::MAX);
    let usecs = (f64::from(burst) * USEC_PER_SEC / rate as f64) as u32;
    let buffer = (f64::from(usecs) * tick_in_usec) as u32;
    let latency_us = USEC_PER_SEC * (LATENCY_MS / 1000.0);
    let limit = ((rate as f64 * latency_us / USEC_PER_SEC) as u32).saturating_add(burst);
    Tbf { rate, buffer, limit }
}

/// The host end of the container's veth: the peer of `inv.ifname` in the container, which must
/// be among the prevResult interfaces without a sandbox.
fn host_interface(inv: &Invocation, host: &Netlink, prev: &CniResult) -> Result<Link, CniError> {
    if prev.interfaces.is_empty() {
        return Err(CniError::internal("no interfaces provided"));
    }
    let cont_ns = iface::open_netns(inv)?;
    let cont = Netlink::open_in(&cont_ns)?;
    let peer = match cont.link_by_name(&inv.ifname) {
        Ok(Some(l)) => l.peer_index.ok_or_else(|| format!("\"{}\" is not a veth", l.name)),
        Ok(None) => Err("no such interface".to_string()),
        Err(e) => Err(e.to_string()),
    }
    .map_err(|e| CniError::internal(format!("container interface {} has no veth peer: {e}", inv.ifname)))?;
    let link = host
        .link_by_index(peer)?
        .ok_or_else(|| CniError::internal(format!("veth peer with index {peer} is not in host ns")))?;
    if !prev.interfaces.iter().any(|i| i.sandbox.is_empty() && i.name == link.name) {
        return Err(CniError::internal("no veth peer of container interface found in host ns"));
    }
    Ok(link)
}

fn add(inv: &Invocation) -> Result<CniResult, CniError> {
    let conf = load(inv)?;
    if let Some(e) = conf.limits_error {
        return Err(e);
    }
    let limits = match conf.limits {
        Some(l) if !l.is_zero() => l,
        // Nothing to shape: hand on what came before (nothing, if nothing did).
        _ => return Ok(conf.prev.unwrap_or_default()),
    };
    let mut result = conf.prev.ok_or_else(|| CniError::internal("must be called as chained plugin"))?;
    let host = Netlink::open()?;
    let hv = host_interface(inv, &host, &result)?;
    let tick = psched_tick_in_usec();

    let mut undo = Undo::default();
    let out = shape(inv, &conf.name, &limits, tick, &host, &hv, &mut result, &mut undo);
    if out.is_err() {
        undo.run(&host, &hv);
    }
    out.map(|_| result)
}

/// What ADD made, to take away again if a later step fails.
#[derive(Default)]
struct Undo {
    root_qdisc: bool,
    ingress_qdisc: bool,
    ifb: Option<String>,
}

impl Undo {
    fn run(&self, host: &Netlink, hv: &Link) {
        if let Some(name) = &self.ifb
            && let Ok(Some(l)) = host.link_by_name(name)
        {
            let _ = host.del_link(&l);
        }
        if self.ingress_qdisc {
            let _ = host.del_qdisc(hv, TcHandle::INGRESS);
        }
        if self.root_qdisc {
            let _ = host.del_qdisc(hv, TcHandle::ROOT);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn shape(
    inv: &Invocation,
    network: &str,
    limits: &Limits,
    tick: f64,
    host: &Netlink,
    hv: &Link,
    result: &mut CniResult,
    undo: &mut Undo,
) -> Result<(), CniError> {
    if let Some((rate, burst)) = limits.ingress() {
        host.add_tbf(hv, &tbf_for(rate, burst, tick))?;
        undo.root_qdisc = true;
    }
    if let Some((rate, burst)) = limits.egress() {
        let name = ifb_name(network, &inv.container_id);
        let alias = ifb_alias(network, &inv.container_id, &inv.ifname);
        // txqlen 0, as the reference: the TBF root qdisc does the queueing.
        host.create_ifb(&name, hv.mtu, 0, alias.as_deref())?;
        undo.ifb = Some(name.clone());
        let ifb = host.link(&name)?;
        result.interfaces.push(Interface { name: name.clone(), mac: ifb.mac_string(), ..Default::default() });
        host.add_ingress_qdisc(hv)?;
        undo.ingress_qdisc = true;
        host.add_redirect_filter(hv, &ifb)?;
        host.add_tbf(&ifb, &tbf_for(rate, burst, tick))?;
    }
    Ok(())
}

fn del(inv: &Invocation) -> Result<(), CniError> {
    // Nothing of the config is needed: the ifb is named by network and container, so a config
    // ADD refused (limits of the wrong type, say) is still torn down.
    let name = ifb_name(&inv.conf.name, &inv.container_id);
    let host = Netlink::open()?;
    let Some(link) = host.link_by_name(&name)? else { return Ok(()) };
    match host.del_link_unwaited(&Netns::current()?, &link) {
        Err(e) if !e.is_not_found() => Err(e.into()),
        _ => Ok(()),
    }
}

fn check(inv: &Invocation) -> Result<(), CniError> {
    let conf = load(inv)?;
    if let Some(e) = conf.limits_error {
        return Err(e);
    }
    let prev = conf.prev.as_ref().ok_or_else(|| CniError::internal("must be called as a chained plugin"))?;
    let host = Netlink::open()?;
    let hv = host_interface(inv, &host, prev)?;
    let Some(limits) = conf.limits.filter(|l| !l.is_zero()) else { return Ok(()) };
    let tick = psched_tick_in_usec();
    if let Some((rate, burst)) = limits.ingress() {
        check_tbf(&host, &hv, &tbf_for(rate, burst, tick))?;
    }
    if let Some((rate, burst)) = limits.egress() {
        let name = ifb_name(&conf.name, &inv.container_id);
        let ifb = host
            .link_by_name(&name)?
            .ok_or_else(|| CniError::internal(format!("get ifb device: link \"{name}\" not found")))?;
        check_tbf(&host, &ifb, &tbf_for(rate, burst, tick))?;
        if !host.qdiscs(&hv)?.iter().any(|q| q.kind == "ingress" && q.handle == INGRESS_HANDLE) {
            return Err(CniError::internal(format!("no ingress qdisc on \"{}\" to redirect egress traffic", hv.name)));
        }
        if !host.ingress_redirects(&hv)?.iter().any(|r| r.target == ifb.index && r.egress) {
            return Err(CniError::internal(format!(
                "no filter on \"{}\" redirects egress traffic to \"{}\"",
                hv.name, ifb.name
            )));
        }
    }
    Ok(())
}

/// The root TBF of `link` has the rate, limit and buffer `want` (the buffer as the kernel
/// keeps it: clamped to what fits in a u32 of nanoseconds).
fn check_tbf(host: &Netlink, link: &Link, want: &Tbf) -> Result<(), CniError> {
    let qdiscs = host.qdiscs(link)?;
    let have = qdiscs
        .iter()
        .find(|q| q.is_root())
        .and_then(|q| q.tbf)
        .ok_or_else(|| CniError::internal(format!("Failed to find tbf qdisc on \"{}\"", link.name)))?;
    let mismatch = |what: &str, have: u64, want: u64| {
        CniError::internal(format!("{what} doesn't match on \"{}\": have {have}, want {want}", link.name))
    };
    if have.rate != want.rate {
        return Err(mismatch("Rate", have.rate, want.rate));
    }
    if have.limit != want.limit {
        return Err(mismatch("Limit", have.limit.into(), want.limit.into()));
    }
    let buffer = want.buffer.min(TBF_MAX_BUFFER_TICKS);
    if have.buffer != buffer {
        return Err(mismatch("Buffer", have.buffer.into(), buffer.into()));
    }
    Ok(())
}

/// Delete the ifbs of this network whose attachment is not valid any more.
fn gc(inv: &Invocation) -> Result<(), CniError> {
    let conf = load(inv)?;
    let Some(valid) = conf.valid_attachments else { return Ok(()) };
    let host = Netlink::open()?;
    let mut errors = Vec::new();
    for ifb in host.ifb_links()? {
        let Some((net, cid, ifname)) = ifb.alias.as_deref().and_then(parse_alias) else { continue };
        if net != conf.name || ifb.name != ifb_name(net, cid) {
            continue;
        }
        if valid.iter().any(|(c, i)| c == cid && i == ifname) {
            continue;
        }
        match host.link_by_index(ifb.index) {
            Ok(Some(l)) => match host.del_link(&l) {
                Err(e) if !e.is_not_found() => errors.push(e.to_string()),
                _ => crate::logger::info(format_args!(
                    "bandwidth GC: deleted \"{}\" of {cid}/{ifname} on network {net}",
                    ifb.name
                )),
            },
            Ok(None) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(CniError::internal(errors.join("; "))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifb_names() {
        let n = ifb_name("mynet", "0123456789abcdef");
        assert_eq!(n.len(), 15);
        assert!(n.starts_with("bwp"));
        let want = &crate::util::sha512::hex(b"mynet0123456789abcdef")[..12];
        assert_eq!(&n[3..], want);
        assert_ne!(n, ifb_name("mynet", "0123456789abcdee"));
        // As the reference named it for network "refnet", container "abc".
        assert_eq!(ifb_name("refnet", "abc"), "bwp03c6681062c8");
    }

    #[test]
    fn aliases() {
        let a = ifb_alias("net", "cid", "eth0").unwrap();
        assert_eq!(a, "cni-bandwidth:net:cid:eth0");
        assert_eq!(parse_alias(&a), Some(("net", "cid", "eth0")));
        assert_eq!(parse_alias("cni-bandwidth:net:cid"), None);
        assert_eq!(parse_alias("other:net:cid:eth0"), None);
        assert_eq!(parse_alias("cni-bandwidth:a:b:c:d"), None);
        assert!(ifb_alias("n", &"c".repeat(250), "eth0").is_none());
    }

    #[test]
    fn token_bucket_math() {
        // 1 Mbit/s with a 10 KiB burst: 125000 bytes/s, 81920 us of tokens, 25 ms of queue.
        let t = tbf_for(1_000_000, 81_920, 15.625);
        assert_eq!(t, Tbf { rate: 125_000, buffer: 1_280_000, limit: 3_125 + 10_240 });
        // Truncations happen where the reference makes them: microseconds, then ticks.
        let t = tbf_for(8_000_000, 8 * 1_500, 15.625);
        assert_eq!(t, Tbf { rate: 1_000_000, buffer: 23_437, limit: 25_000 + 1_500 });
        let t = tbf_for(40_000_000_000, 40_000_000, 15.625);
        assert_eq!(t, Tbf { rate: 5_000_000_000, buffer: 15_625, limit: 125_000_000 + 5_000_000 });
    }

    #[test]
    fn validation() {
        assert!(validate_rate_and_burst(0, 0).is_ok());
        assert!(validate_rate_and_burst(1000, 100).is_ok());
        let msg = |r, b| validate_rate_and_burst(r, b).unwrap_err().msg;
        assert_eq!(msg(1000, 0), "if rate is set, burst must also be set");
        assert_eq!(msg(0, 10), "if burst is set, rate must also be set");
        assert_eq!(msg(1000, 8 * u64::from(u32::MAX)), "burst cannot be more than 4GB");
        assert!(validate_rate_and_burst(1000, 8 * u64::from(u32::MAX) - 8).is_ok());
        assert_eq!(validate_rate_and_burst(1000, 0).unwrap_err().code, 999);
    }
}
