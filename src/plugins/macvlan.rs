//! macvlan: a macvlan of a host (or container) interface, moved into the container.

use super::iface::{self, Wording};
use crate::cni::config::parse_conf;
use crate::cni::delegate::ipam;
use crate::cni::{CniError, CniResult, Invocation, PluginFns, version};
use crate::netlink::{Link, MacvlanMode, Netlink, SubLink, parse_mac};
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
    mtu: i64,
    #[serde(default)]
    mac: String,
    #[serde(rename = "linkInContainer", default)]
    link_in_container: bool,
    #[serde(default)]
    bcqueuelen: u32,
    #[serde(rename = "runtimeConfig", default)]
    runtime_config: Option<RuntimeConfig>,
}

#[derive(Debug, Default, Deserialize)]
struct RuntimeConfig {
    #[serde(default)]
    mac: String,
}

fn bad(msg: impl Into<String>) -> CniError {
    CniError::internal(msg)
}

/// The configuration with its master resolved and checked.
#[derive(Debug)]
struct Conf {
    raw: RawConf,
    mode: MacvlanMode,
    mac: Option<[u8; 6]>,
    layer3: bool,
}

/// The namespace that holds the master and a connection to it.
struct Master {
    nl: Netlink,
    link: Link,
}

fn parse(inv: &Invocation) -> Result<RawConf, CniError> {
    parse_conf(inv, "macvlan")
}

/// Load the configuration: MAC precedence is runtimeConfig.mac, then CNI_ARGS MAC, then `mac`.
fn load(inv: &Invocation) -> Result<Conf, CniError> {
    let mut raw = parse(inv)?;
    if !inv.args_raw.is_empty() {
        inv.args.check_known(&["MAC"])?;
        if let Some(m) = inv.args.get("MAC").filter(|m| !m.is_empty()) {
            raw.mac = m.to_string();
        }
    }
    if let Some(m) = raw.runtime_config.as_ref().map(|r| r.mac.clone()).filter(|m| !m.is_empty()) {
        raw.mac = m;
    }
    let mode = MacvlanMode::parse(&raw.mode)
        .ok_or_else(|| CniError::invalid_config(format!("unknown macvlan mode: \"{}\"", raw.mode)))?;
    let mac =
        match raw.mac.as_str() {
            "" => None,
            m => Some(parse_mac(m).ok_or_else(|| {
                CniError::invalid_config(format!("invalid args {m} for MAC addr: invalid MAC address"))
            })?),
        };
    let layer3 = inv.conf.ipam_type().is_some();
    Ok(Conf { raw, mode, mac, layer3 })
}

/// Find the master (the default-route interface when unset) in the host namespace, or in the
/// container's with `linkInContainer`, and check the MTU against it.
fn master(conf: &mut Conf, cont_ns: &Netns) -> Result<Master, CniError> {
    let nl = if conf.raw.link_in_container { Netlink::open_in(cont_ns)? } else { Netlink::open()? };
    if conf.raw.master.is_empty() {
        conf.raw.master = iface::default_route_iface(&nl)?;
    }
    let name = &conf.raw.master;
    let link =
        nl.link_by_name(name)?.ok_or_else(|| bad(format!("failed to lookup master \"{name}\": Link not found")))?;
    if conf.raw.mtu < 0 || conf.raw.mtu > i64::from(link.mtu) {
        return Err(CniError::invalid_config(format!(
            "invalid MTU {}, must be [0, master MTU({})]",
            conf.raw.mtu, link.mtu
        )));
    }
    Ok(Master { nl, link })
}

fn add(inv: &Invocation) -> Result<CniResult, CniError> {
    let mut conf = load(inv)?;
    let cont_ns = iface::open_netns(inv)?;
    let m = master(&mut conf, &cont_ns)?;
    let cont = Netlink::open_in(&cont_ns)?;
    let sub = |name: &str| {
        let l = SubLink {
            name,
            parent: m.link.index,
            ns: &cont_ns,
            mtu: Some(conf.raw.mtu as u32).filter(|m| *m != 0),
            mac: conf.mac,
        };
        m.nl.create_macvlan(&l, conf.mode, Some(conf.raw.bcqueuelen).filter(|q| *q != 0))
    };
    let link = iface::create_renamed(&cont, &inv.ifname, "macvlan", sub)?;

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
    let mut result = CniResult { interfaces: vec![iface::sandbox_interface(link, cont_ns)], ..Default::default() };
    if conf.layer3 {
        let r = ipam::add(inv)?;
        *leased = true;
        result.ips = r.ips;
        result.routes = r.routes;
        for ip in &mut result.ips {
            ip.interface = Some(0);
        }
        iface::configure_sublink(cont_ns, cont, &inv.ifname, &result)?;
    } else {
        cont.set_up(link).map_err(|e| bad(format!("failed to set \"{}\" UP: {}", inv.ifname, e.message)))?;
    }
    result.dns = inv.conf.dns.clone().unwrap_or_default();
    Ok(result)
}

fn del(inv: &Invocation) -> Result<(), CniError> {
    parse(inv)?;
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
    master(&mut conf, &cont_ns)?;
    if conf.layer3 {
        ipam::check(inv)?;
    }
    let prev = inv.conf.prev_result.as_ref().ok_or_else(|| bad("required prevResult missing"))?;
    let result = CniResult::from_prev(prev, inv.version)?;
    let cont_if = iface::container_entry(inv, &result, Wording::LowerCase)?;
    let mode = conf.mode.to_string();
    iface::check_sublink(&cont_ns, inv, &result, cont_if, "macvlan", "macvlan", &mode, Wording::LowerCase)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cni::skel::test_invocation as inv;

    #[test]
    fn mac_precedence_and_modes() {
        let c = r#"{"name":"n","mac":"02:00:00:00:00:01","runtimeConfig":{"mac":"02:00:00:00:00:03"}}"#;
        assert_eq!(load(&inv(c, "MAC=02:00:00:00:00:02")).unwrap().mac, Some([2, 0, 0, 0, 0, 3]));
        let c = r#"{"name":"n","mac":"02:00:00:00:00:01"}"#;
        assert_eq!(load(&inv(c, "MAC=02:00:00:00:00:02")).unwrap().mac, Some([2, 0, 0, 0, 0, 2]));
        assert_eq!(load(&inv(c, "")).unwrap().mac, Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(load(&inv(c, "FOO=1")).unwrap_err().code, 999);
        assert!(load(&inv(c, "IgnoreUnknown=1;FOO=1")).is_ok());
        let e = load(&inv(r#"{"name":"n","mode":"weird"}"#, "")).unwrap_err();
        assert_eq!(e.msg, "unknown macvlan mode: \"weird\"");
        for m in ["bridge", "private", "vepa", "passthru"] {
            let c = format!(r#"{{"name":"n","mode":"{m}"}}"#);
            assert_eq!(load(&inv(&c, "")).unwrap().mode.to_string(), m);
        }
        assert_eq!(load(&inv(r#"{"name":"n"}"#, "")).unwrap().mode, MacvlanMode::Bridge);
        assert!(load(&inv(r#"{"name":"n","mac":"zz"}"#, "")).unwrap_err().msg.contains("for MAC addr"));
    }
}
