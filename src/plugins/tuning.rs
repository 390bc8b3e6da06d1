//! tuning: a chained plugin that sets net sysctls and link attributes (MAC, MTU, promiscuous
//! and all-multicast modes, tx queue length) of the container interface. The original link
//! attributes are kept in `<dataDir>/<containerID>_<ifname>.json` and restored on DEL.

use super::iface;
use crate::cni::config::{parse_conf, parse_plugin_conf_text};
use crate::cni::{CniError, CniResult, Invocation, PluginFns, skel, version};
use crate::netlink::{Link, Netlink, format_mac, parse_mac};
use crate::netns::Netns;
use crate::sysctl;
use crate::util::pattern::Pattern;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

pub static PLUGIN: PluginFns = PluginFns { add, del, check, gc, status: skel::noop, versions: version::ALL };

const DEFAULT_DATA_DIR: &str = "/run/cni/tuning";
const ALLOWLIST: &str = "/etc/cni/tuning/allowlist.conf";

// ---- configuration ------------------------------------------------------------------------

/// A `sysctl` object in document order; a key given twice is an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Sysctls(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Sysctls {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Sysctls;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of sysctl names and string values")
            }
            fn visit_unit<E>(self) -> Result<Sysctls, E> {
                Ok(Sysctls::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Sysctls, A::Error> {
                let mut out: Vec<(String, String)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    if out.iter().any(|(have, _)| *have == k) {
                        return Err(serde::de::Error::custom("duplicated sysctl keys are not allowed"));
                    }
                    out.push((k, v));
                }
                Ok(Sysctls(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Sysctls {
    /// Set `k` to `v`, replacing an earlier value in place.
    fn merge(&mut self, k: String, v: String) {
        match self.0.iter_mut().find(|(have, _)| *have == k) {
            Some(e) => e.1 = v,
            None => self.0.push((k, v)),
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawConf {
    #[serde(rename = "dataDir", default)]
    data_dir: String,
    #[serde(default)]
    sysctl: Option<Sysctls>,
    #[serde(default)]
    mac: String,
    #[serde(default)]
    promisc: bool,
    #[serde(default)]
    mtu: i64,
    #[serde(rename = "txQLen", default)]
    txqlen: Option<i64>,
    #[serde(default)]
    allmulti: Option<bool>,
    #[serde(rename = "runtimeConfig", default)]
    runtime_config: Option<RuntimeConfig>,
    #[serde(default)]
    args: Option<ArgsBlock>,
}

/// The `sysctl` objects read from the text itself, in document order and with a key given twice
/// still seen (the parsed value the rest of the configuration is read from keeps only the last,
/// in name order).
#[derive(Deserialize)]
struct SysctlsAsWritten {
    #[serde(default)]
    sysctl: Option<Sysctls>,
    #[serde(default)]
    args: Option<ArgsAsWritten>,
}

#[derive(Deserialize)]
struct ArgsAsWritten {
    #[serde(default)]
    cni: Option<CniArgsAsWritten>,
}

#[derive(Deserialize)]
struct CniArgsAsWritten {
    #[serde(default)]
    sysctl: Option<Sysctls>,
}

/// What DEL reads: where the backup is.
#[derive(Deserialize)]
struct DataDirOnly {
    #[serde(rename = "dataDir", default)]
    data_dir: String,
}

fn data_dir(dir: String) -> PathBuf {
    if dir.is_empty() { DEFAULT_DATA_DIR.into() } else { PathBuf::from(dir) }
}

#[derive(Debug, Default, Deserialize)]
struct RuntimeConfig {
    #[serde(default)]
    mac: String,
}

#[derive(Debug, Default, Deserialize)]
struct ArgsBlock {
    #[serde(default)]
    cni: Option<CniArgsBlock>,
}

/// `args.cni.*`: each one given overrides the top-level field.
#[derive(Debug, Default, Deserialize)]
struct CniArgsBlock {
    #[serde(default)]
    sysctl: Option<Sysctls>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    promisc: Option<bool>,
    #[serde(default)]
    mtu: Option<i64>,
    #[serde(default)]
    allmulti: Option<bool>,
    #[serde(rename = "txQLen", default)]
    txqlen: Option<i64>,
}

/// The effective configuration.
#[derive(Debug, PartialEq, Eq)]
struct Conf {
    data_dir: PathBuf,
    sysctls: Vec<(String, String)>,
    /// As written in the configuration (CHECK compares the kernel's spelling with it).
    mac: Option<String>,
    promisc: bool,
    mtu: Option<u32>,
    txqlen: Option<u32>,
    allmulti: Option<bool>,
}

fn bad(msg: impl Into<String>) -> CniError {
    CniError::internal(msg)
}

fn non_negative(what: &str, v: i64) -> Result<u32, CniError> {
    u32::try_from(v).map_err(|_| CniError::invalid_config(format!("invalid {what} {v}")))
}

/// MAC precedence, lowest first: `mac`, CNI_ARGS `MAC`, `runtimeConfig.mac`, `args.cni.mac`.
fn load(inv: &Invocation) -> Result<Conf, CniError> {
    // Duplicated sysctl keys are refused, as the reference refuses them; the rest is read as
    // Go's decoder reads it.
    let written: SysctlsAsWritten = parse_plugin_conf_text("tuning", &inv.stdin)?;
    let raw: RawConf = parse_conf(inv, "tuning")?;
    let mut sysctls = written.sysctl.or(raw.sysctl).unwrap_or_default();
    let args_sysctls = written.args.and_then(|a| a.cni).and_then(|c| c.sysctl);
    let mut mac = Some(raw.mac).filter(|m| !m.is_empty());
    if !inv.args_raw.is_empty() {
        inv.args.check_known(&["MAC"])?;
        if let Some(m) = inv.args.get("MAC").filter(|m| !m.is_empty()) {
            mac = Some(m.to_string());
        }
    }
    if let Some(m) = raw.runtime_config.map(|r| r.mac).filter(|m| !m.is_empty()) {
        mac = Some(m);
    }
    let (mut promisc, mut mtu, mut txqlen, mut allmulti) = (raw.promisc, raw.mtu, raw.txqlen, raw.allmulti);
    if let Some(a) = raw.args.and_then(|a| a.cni) {
        for (k, v) in args_sysctls.or(a.sysctl).unwrap_or_default().0 {
            sysctls.merge(k, v);
        }
        if let Some(m) = a.mac {
            mac = Some(m).filter(|m| !m.is_empty());
        }
        promisc = a.promisc.unwrap_or(promisc);
        mtu = a.mtu.unwrap_or(mtu);
        txqlen = a.txqlen.or(txqlen);
        allmulti = a.allmulti.or(allmulti);
    }
    if let Some(m) = &mac
        && parse_mac(m).is_none()
    {
        return Err(bad(format!("invalid args {m} for MAC addr: address {m}: invalid MAC address")));
    }
    Ok(Conf {
        data_dir: data_dir(raw.data_dir),
        sysctls: sysctls.0,
        mac,
        promisc,
        mtu: Some(non_negative("MTU", mtu)?).filter(|m| *m != 0),
        txqlen: txqlen.map(|q| non_negative("txQLen", q)).transpose()?,
        allmulti,
    })
}

impl Conf {
    fn changes_link(&self) -> bool {
        self.mac.is_some() || self.promisc || self.mtu.is_some() || self.txqlen.is_some() || self.allmulti.is_some()
    }
}

/// The path under /proc/sys of a sysctl key: dots become slashes and the first `IFNAME` is the
/// interface. Anything outside /proc/sys/net is refused.
fn sysctl_path(key: &str, ifname: &str) -> Result<String, CniError> {
    let key = key.replace('.', "/").replacen("IFNAME", ifname, 1);
    let mut parts: Vec<&str> = Vec::new();
    for p in key.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let rel = parts.join("/");
    if parts.len() < 2 || parts[0] != "net" {
        return Err(CniError::invalid_config(format!("invalid net sysctl key: \"{key}\"")));
    }
    Ok(rel)
}

/// With an allowlist file present, every sysctl must match one of its patterns.
fn check_allowlist(file: &Path, sysctls: &[(String, String)]) -> Result<(), CniError> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(bad(format!("failed to read {}: {e}", file.display()))),
    };
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let patterns = lines.iter().map(|l| Pattern::parse(l).map_err(bad)).collect::<Result<Vec<_>, _>>()?;
    for (k, _) in sysctls {
        if !patterns.iter().any(|p| p.is_match(k)) {
            return Err(bad(format!(
                "Sysctl {k} is not allowed. Only the following sysctls are allowed: [{}]",
                lines.join(" ")
            )));
        }
    }
    Ok(())
}

// ---- backup -------------------------------------------------------------------------------

/// The original attributes, in the reference's file format.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Backup {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    promisc: Option<bool>,
    #[serde(default, skip_serializing_if = "is_zero")]
    mtu: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allmulti: Option<bool>,
    #[serde(rename = "txQLen", default, skip_serializing_if = "Option::is_none")]
    txqlen: Option<u32>,
    /// Whose backup this is, for GC: the file's name does not say which network (and a
    /// container ID or ifname may hold the `_` that joins them). The reference ignores the
    /// key, and writes none: its backups are left to DEL.
    #[serde(rename = "cniboxAttachment", default, skip_serializing_if = "Option::is_none")]
    owner: Option<Owner>,
}

#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Owner {
    network: String,
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

fn backup_file(dir: &Path, cid: &str, ifname: &str) -> PathBuf {
    dir.join(format!("{cid}_{ifname}.json"))
}

/// One-space indentation, as the reference writes it.
fn backup_json(b: &Backup) -> Result<Vec<u8>, CniError> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    b.serialize(&mut ser).map_err(|e| bad(format!("failed to marshall backup data: {e}")))?;
    Ok(out)
}

fn save_backup(conf: &Conf, link: &Link, file: &Path, owner: Owner) -> Result<Backup, CniError> {
    let b = Backup {
        owner: Some(owner),
        mac: if conf.mac.is_some() { link.mac_string() } else { String::new() },
        promisc: conf.promisc.then_some(link.promisc),
        mtu: if conf.mtu.is_some() { link.mtu } else { 0 },
        allmulti: conf.allmulti.map(|_| link.allmulti),
        txqlen: conf.txqlen.map(|_| link.txqlen),
    };
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = file.parent() {
        crate::util::fs::make_dir(dir, 0o700).map_err(|e| bad(format!("failed to create backup directory: {e}")))?;
    }
    let data = backup_json(&b)?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &data))
        .map_err(|e| bad(format!("failed to save file {}: {e}", file.display())))?;
    Ok(b)
}

/// Put back what the backup holds; Ok(true) when the file may go.
fn restore(nl: &Netlink, ifname: &str, b: &Backup) -> bool {
    let Ok(Some(link)) = nl.link_by_name(ifname) else { return true };
    let mut ok = true;
    if b.mtu != 0 {
        ok &= nl.set_mtu(&link, b.mtu).is_ok();
    }
    if let Some(mac) = parse_mac(&b.mac) {
        ok &= nl.set_mac(&link, &mac).is_ok();
    }
    if let Some(p) = b.promisc {
        ok &= nl.set_promisc(&link, p).is_ok();
    }
    if let Some(a) = b.allmulti {
        ok &= nl.set_allmulti(&link, a).is_ok();
    }
    if let Some(q) = b.txqlen {
        ok &= nl.set_txqlen(&link, q).is_ok();
    }
    ok
}

// ---- verbs --------------------------------------------------------------------------------

fn prev_result(inv: &Invocation) -> Result<CniResult, CniError> {
    let prev = inv.conf.prev_result.as_ref().ok_or_else(|| bad("Required prevResult missing"))?;
    CniResult::from_prev(prev, inv.version)
}

fn add(inv: &Invocation) -> Result<CniResult, CniError> {
    let conf = load(inv)?;
    check_allowlist(Path::new(ALLOWLIST), &conf.sysctls)?;
    let mut result = prev_result(inv)?;
    let ns = iface::open_netns(inv)?;
    let nl = Netlink::open_in(&ns)?;
    let ifname = inv.ifname.as_str();
    let paths =
        conf.sysctls.iter().map(|(k, v)| Ok((sysctl_path(k, ifname)?, v))).collect::<Result<Vec<_>, CniError>>()?;
    // A failure puts back what this ADD changed: sysctls to the values they had, the link to
    // its backup (which then goes, so that a later ADD backs up the original values again).
    let mut before = Vec::new();
    let set = ns.run(|| -> Result<(), CniError> {
        for (path, value) in &paths {
            let old = sysctl::get(path).ok();
            sysctl::set(path, value)?;
            before.extend(old.map(|o| (path.as_str(), o)));
        }
        Ok(())
    });
    let undo_sysctls = |before: &[(&str, String)]| {
        let _ = ns.run(|| before.iter().rev().for_each(|(path, old)| drop(sysctl::write(path, old))));
    };
    if let Err(e) = set.map_err(CniError::from).and_then(|r| r) {
        undo_sysctls(&before);
        return Err(e);
    }
    if !conf.changes_link() {
        return Ok(result);
    }
    let file = backup_file(&conf.data_dir, &inv.container_id, ifname);
    let changed = nl
        .link(ifname)
        .map_err(|e| bad(format!("failed to get \"{ifname}\": {}", e.message)))
        .and_then(|link| {
            let owner =
                Owner { network: inv.conf.name.clone(), container_id: inv.container_id.clone(), ifname: ifname.into() };
            Ok((save_backup(&conf, &link, &file, owner)?, link))
        })
        .and_then(|(backup, link)| {
            change_link(&conf, &nl, &link, &mut result).inspect_err(|_| {
                restore(&nl, ifname, &backup);
                let _ = std::fs::remove_file(&file);
            })
        });
    if let Err(e) = changed {
        undo_sysctls(&before);
        return Err(e);
    }
    Ok(result)
}

/// ADD's changes to the link, as configured.
fn change_link(conf: &Conf, nl: &Netlink, link: &Link, result: &mut CniResult) -> Result<(), CniError> {
    let ifname = link.name.as_str();
    if let Some(m) = &conf.mac {
        let mac = parse_mac(m).unwrap_or_default();
        nl.set_mac(link, &mac)?;
        for i in result.interfaces.iter_mut().filter(|i| i.name == ifname) {
            i.mac = format_mac(&mac);
        }
    }
    if conf.promisc {
        nl.set_promisc(link, true)?;
    }
    if let Some(mtu) = conf.mtu {
        nl.set_mtu(link, mtu)?;
    }
    if let Some(a) = conf.allmulti {
        nl.set_allmulti(link, a)?;
    }
    if let Some(q) = conf.txqlen {
        nl.set_txqlen(link, q)?;
    }
    Ok(())
}

/// Restore the backed-up attributes; never fails once the configuration parses. Only the data
/// directory is read: the runtime's DEL after an ADD refused for a bad MAC or MTU succeeds, as
/// the reference's does.
fn del(inv: &Invocation) -> Result<(), CniError> {
    let dir: DataDirOnly = parse_conf(inv, "tuning")?;
    let file = backup_file(&data_dir(dir.data_dir), &inv.container_id, &inv.ifname);
    let Ok(data) = std::fs::read(&file) else { return Ok(()) };
    let remove = match crate::cni::json::from_slice::<Backup>(&data) {
        Err(_) => true,
        Ok(b) => match iface::open_netns_for_del(inv) {
            Ok(Some(ns)) => Netlink::open_in(&ns).map(|nl| restore(&nl, &inv.ifname, &b)).unwrap_or(false),
            // The namespace is gone, and the link with it.
            Ok(None) => true,
            Err(_) => false,
        },
    };
    if remove {
        let _ = std::fs::remove_file(&file);
    }
    Ok(())
}

/// Remove the backups this network's attachments left that are no longer valid (their DEL
/// never came: nothing is left to restore them to). Backups without an owner (the
/// reference's) are left alone.
fn gc(inv: &Invocation) -> Result<(), CniError> {
    let Some(valid) = crate::cni::gc::valid_attachments(&inv.stdin)? else { return Ok(()) };
    let dir: DataDirOnly = parse_conf(inv, "tuning")?;
    let dir = data_dir(dir.data_dir);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(()) };
    for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Ok(Backup { owner: Some(o), .. }) = std::fs::read(&path)
            .map_err(|_| ())
            .and_then(|data| crate::cni::json::from_slice::<Backup>(&data).map_err(|_| ()))
        else {
            continue;
        };
        if o.network == inv.conf.name && !valid.iter().any(|(id, i)| *id == o.container_id && *i == o.ifname) {
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(())
}

fn check(inv: &Invocation) -> Result<(), CniError> {
    let conf = load(inv)?;
    prev_result(inv)?;
    let ns: Netns = iface::open_netns(inv)?;
    let ifname = inv.ifname.as_str();
    ns.run(|| -> Result<(), CniError> {
        for (k, want) in &conf.sysctls {
            let path = sysctl_path(k, ifname)?;
            let have = sysctl::get(&path)?;
            if *want != have {
                return Err(bad(format!(
                    "Error: Tuning configured value of /proc/sys/{path} is {want}, current value is {have}"
                )));
            }
        }
        Ok(())
    })??;
    let nl = Netlink::open_in(&ns)?;
    let link = nl.link_by_name(ifname)?.ok_or_else(|| bad(format!("Cannot find container link {ifname}")))?;
    if let Some(m) = &conf.mac
        && parse_mac(m).map(|m| format_mac(&m)) != Some(link.mac_string())
    {
        return Err(bad(format!(
            "Error: Tuning configured Ethernet of {ifname} is {m}, current value is {}",
            link.mac_string()
        )));
    }
    if conf.promisc != link.promisc {
        return Err(bad(format!(
            "Error: Tuning link {ifname} configured promisc is {}, current value is {}",
            conf.promisc,
            u8::from(link.promisc)
        )));
    }
    if let Some(mtu) = conf.mtu
        && mtu != link.mtu
    {
        return Err(bad(format!("Error: Tuning configured MTU of {ifname} is {mtu}, current value is {}", link.mtu)));
    }
    if let Some(a) = conf.allmulti
        && a != link.allmulti
    {
        return Err(bad(format!(
            "Error: Tuning configured all-multicast mode of {ifname} is {a}, current value is {}",
            link.allmulti
        )));
    }
    if let Some(q) = conf.txqlen
        && q != link.txqlen
    {
        return Err(bad(format!(
            "Error: Tuning configured Transmit Queue Length of {ifname} is {q}, current value is {}",
            link.txqlen
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cni::skel::test_invocation as inv;

    #[test]
    fn sysctl_paths() {
        assert_eq!(sysctl_path("net.ipv4.conf.IFNAME.arp_notify", "eth0").unwrap(), "net/ipv4/conf/eth0/arp_notify");
        assert_eq!(sysctl_path("net/core/somaxconn", "eth0").unwrap(), "net/core/somaxconn");
        assert_eq!(
            sysctl_path("kernel.hostname", "eth0").unwrap_err().msg,
            "invalid net sysctl key: \"kernel/hostname\""
        );
        // Dots are separators, so `..` cannot climb out of net.
        assert_eq!(sysctl_path("net/../kernel/hostname", "eth0").unwrap(), "net/kernel/hostname");
        assert!(sysctl_path("net", "eth0").is_err());
    }

    #[test]
    fn precedence_and_overrides() {
        let c = r#"{"name":"n","mac":"02:00:00:00:00:01","mtu":1400,"sysctl":{"net.a":"1","net.b":"2"},
            "runtimeConfig":{"mac":"02:00:00:00:00:03"},
            "args":{"cni":{"mac":"02:00:00:00:00:04","mtu":1300,"promisc":true,"txQLen":7,"allmulti":false,
                           "sysctl":{"net.b":"5","net.c":"6"}}}}"#;
        let conf = load(&inv(c, "MAC=02:00:00:00:00:02")).unwrap();
        assert_eq!(conf.mac.as_deref(), Some("02:00:00:00:00:04"));
        assert_eq!((conf.mtu, conf.promisc, conf.txqlen, conf.allmulti), (Some(1300), true, Some(7), Some(false)));
        let want: Vec<(String, String)> = [("net.a", "1"), ("net.b", "5"), ("net.c", "6")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(conf.sysctls, want);
        assert_eq!(conf.data_dir, PathBuf::from(DEFAULT_DATA_DIR));

        let c = r#"{"name":"n","mac":"02:00:00:00:00:01","runtimeConfig":{"mac":"02:00:00:00:00:03"}}"#;
        assert_eq!(load(&inv(c, "MAC=02:00:00:00:00:02")).unwrap().mac.as_deref(), Some("02:00:00:00:00:03"));
        let c = r#"{"name":"n","mac":"02:00:00:00:00:01"}"#;
        assert_eq!(load(&inv(c, "MAC=02:00:00:00:00:02")).unwrap().mac.as_deref(), Some("02:00:00:00:00:02"));
        assert!(!load(&inv(r#"{"name":"n","sysctl":{}}"#, "")).unwrap().changes_link());
    }

    #[test]
    fn duplicate_sysctls_and_bad_values() {
        let e = load(&inv(r#"{"name":"n","sysctl":{"net.a":"1","net.a":"2"}}"#, "")).unwrap_err();
        assert!(e.msg.contains("duplicated sysctl keys are not allowed"), "{e:?}");
        assert!(load(&inv(r#"{"name":"n","mac":"nope"}"#, "")).unwrap_err().msg.contains("for MAC addr"));
        assert!(load(&inv(r#"{"name":"n","mtu":-1}"#, "")).is_err());
    }

    #[test]
    fn backup_format_matches_the_reference() {
        let b = Backup {
            mac: "02:00:00:00:00:01".into(),
            promisc: Some(false),
            mtu: 1500,
            allmulti: None,
            txqlen: Some(1000),
            owner: None,
        };
        let s = String::from_utf8(backup_json(&b).unwrap()).unwrap();
        assert_eq!(
            s,
            "{\n \"mac\": \"02:00:00:00:00:01\",\n \"promisc\": false,\n \"mtu\": 1500,\n \"txQLen\": 1000\n}"
        );
        // Ours name their owner, for GC, in a key the reference ignores.
        let owner = Owner { network: "n".into(), container_id: "c_1".into(), ifname: "eth0".into() };
        let s = String::from_utf8(backup_json(&Backup { owner: Some(owner), ..b }).unwrap()).unwrap();
        assert!(s.ends_with(
            "\"txQLen\": 1000,\n \"cniboxAttachment\": {\n  \"network\": \"n\",\n  \"containerID\": \"c_1\",\n  \"ifname\": \"eth0\"\n }\n}"
        ), "{s}");
        let back: Backup = serde_json::from_str(r#"{"mtu":9000,"allmulti":true}"#).unwrap();
        assert_eq!(back, Backup { mtu: 9000, allmulti: Some(true), ..Default::default() });
    }

    #[test]
    fn allowlist() {
        let dir = crate::util::scratch::Scratch::new("allow");
        std::fs::create_dir_all(&dir.0).unwrap();
        let f = dir.0.join("allowlist.conf");
        let s = |k: &str| vec![(k.to_string(), "1".to_string())];
        assert!(check_allowlist(&f, &s("net.anything")).is_ok(), "no file: no restriction");
        std::fs::write(&f, "^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]*$\n\n  ^net\\.core\\.somaxconn$\n").unwrap();
        assert!(check_allowlist(&f, &s("net.ipv4.conf.IFNAME.arp_notify")).is_ok());
        assert!(check_allowlist(&f, &s("net.core.somaxconn")).is_ok());
        let e = check_allowlist(&f, &s("net.ipv4.ip_forward")).unwrap_err();
        assert!(e.msg.starts_with("Sysctl net.ipv4.ip_forward is not allowed"), "{e:?}");
        std::fs::write(&f, "^net\\.ipv4\\.(ping_group_range|ip_unprivileged_port_start)$\n").unwrap();
        assert!(check_allowlist(&f, &s("net.ipv4.ping_group_range")).is_ok());
        assert!(check_allowlist(&f, &s("net.ipv4.ip_forward")).is_err());
        std::fs::write(&f, "(?i)^NET\\.CORE\\b\n").unwrap();
        assert!(check_allowlist(&f, &s("net.core.somaxconn")).is_ok());
        std::fs::write(&f, "\\pLnet\n").unwrap();
        let e = check_allowlist(&f, &s("net.core.somaxconn")).unwrap_err();
        assert!(e.msg.contains("error parsing regexp"), "a pattern it cannot read is an error: {e:?}");
    }
}
