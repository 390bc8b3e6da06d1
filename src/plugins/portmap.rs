//! portmap: forward host ports to a container, with the reference plugin's nftables layout.
//!
//! One table per family, `ip cni_hostport` and `ip6 cni_hostport`:
//!
//! ```text
//! chain hostports          one DNAT rule per mapping, commented with the container ID:
//!                          [ip daddr HOSTIP] tcp dport HP dnat to CIP:CP
//! chain hostip_hostports   kept (empty) for rules written by older versions
//! chain hostports_all      jump hostip_hostports; jump hostports
//! chain prerouting         nat prerouting dstnat: [conditions] fib daddr type local jump hostports_all
//! chain output             nat output dstnat:     [conditions] fib daddr type local jump hostports_all
//! chain masquerading       nat postrouting srcnat (with snat), commented with the container ID:
//!                          ip saddr CIP|0.0.0.0/0 ip daddr CIP masquerade
//!                          ip saddr 127.0.0.1 ip daddr CIP masquerade   (IPv4 without masqAll)
//! ```
//!
//! ADD rewrites the base chains unless they already hold what they should; DEL deletes the
//! rules whose comment is the container ID and that name the attachment's addresses (a
//! container on two networks has both networks' rules under its ID), in both families, and the
//! reference's iptables chains of the container
//! (`CNI-DN-`/`CNI-SN-` + hash) where iptables is installed. `conditionsV4`/`conditionsV6`
//! are nft syntax and are applied as text in a transaction of their own, before any rule of
//! the container is written; entries that could leave their rule are refused.
//! GC only collects attachments this network's ADD recorded under `/run/cni/portmap` (one file
//! per container, a line `<ifname> <address>` per address), since the rule comments do not
//! name the network. After ADD, the conntrack entries of UDP sent to a
//! mapped host port are deleted (src/netlink/conntrack.rs), as the reference does.

use crate::cni::config::parse_conf;
use crate::cni::result::CniResult;
use crate::cni::{CniError, Invocation, PluginFns, version};
use crate::firewall::iptables;
use crate::firewall::nft::{self, Batch, Hook, Listing, Nft, System, Table};
use crate::netlink::Netlink;
use crate::sysctl;
use crate::util::records;
// A mapping, validated: one type for both backends.
use crate::firewall::iptables::PortMap as Mapping;
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub static PLUGIN: PluginFns = PluginFns { add, del, check, gc, status, versions: version::ALL };

const V4: Table = Table::new("ip", "cni_hostport");
const V6: Table = Table::new("ip6", "cni_hostport");
const HOSTPORTS: &str = "hostports";
const HOSTIP_HOSTPORTS: &str = "hostip_hostports";
const HOSTPORTS_ALL: &str = "hostports_all";
const MASQUERADING: &str = "masquerading";
const RECORDS: &str = "/run/cni/portmap";

// ---- configuration ------------------------------------------------------------------------

#[derive(Deserialize)]
struct RawConf {
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    snat: Option<bool>,
    #[serde(rename = "conditionsV4", default)]
    conditions_v4: Option<Vec<String>>,
    #[serde(rename = "conditionsV6", default)]
    conditions_v6: Option<Vec<String>>,
    #[serde(rename = "masqAll", default)]
    masq_all: bool,
    #[serde(rename = "markMasqBit", default)]
    mark_masq_bit: Option<i64>,
    #[serde(rename = "externalSetMarkChain", default)]
    external_set_mark_chain: Option<String>,
    #[serde(rename = "runtimeConfig", default)]
    runtime_config: Option<RuntimeConf>,
}

#[derive(Deserialize, Default)]
struct RuntimeConf {
    #[serde(rename = "portMappings", default)]
    port_mappings: Vec<RawMapping>,
}

#[derive(Deserialize)]
struct RawMapping {
    #[serde(rename = "hostPort", default)]
    host_port: i64,
    #[serde(rename = "containerPort", default)]
    container_port: i64,
    #[serde(default)]
    protocol: String,
    #[serde(rename = "hostIP", default)]
    host_ip: String,
}

#[derive(Debug)]
struct Conf {
    snat: bool,
    masq_all: bool,
    conditions_v4: Vec<String>,
    conditions_v6: Vec<String>,
    mappings: Vec<Mapping>,
    /// The container's first address of each family, with its prefix.
    cont_v4: Option<IpNet>,
    cont_v6: Option<IpNet>,
    backend: Backend,
    mark_bit: u32,
    external_set_mark: Option<String>,
    prev: Option<CniResult>,
    /// Whether runtimeConfig lists any mapping, valid or not.
    has_mappings: bool,
    /// What is wrong with the config for ADD and CHECK.
    add_error: Option<CniError>,
}

impl Conf {
    /// The container's addresses on this interface (the first of each family).
    fn addrs(&self) -> impl Iterator<Item = IpAddr> {
        [self.cont_v4, self.cont_v6].into_iter().flatten().map(|ip| ip.addr())
    }
}

/// iptables syntax starts with `-` or `!`; nft syntax never does.
fn is_iptables_syntax(c: &Option<Vec<String>>) -> bool {
    c.as_ref().and_then(|v| v.first()).is_some_and(|s| s.starts_with('-') || s.starts_with('!'))
}

/// Where the rules go. As the reference decides, except that an unset backend is nftables
/// unless the config holds options only iptables understands (the reference picks iptables
/// wherever it is installed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Nftables,
    Iptables,
}

/// The backend, and options only the other backend understands refused.
fn check_backend(raw: &RawConf) -> Result<Backend, CniError> {
    let bad = |m: String| CniError::invalid_config(format!("failed to parse config: {m}"));
    let (mut iptables_only, mut nftables_only) = (Vec::new(), Vec::new());
    if raw.external_set_mark_chain.is_some() {
        iptables_only.push("externalSetMarkChain");
    }
    for (name, conds) in [("conditionsV4", &raw.conditions_v4), ("conditionsV6", &raw.conditions_v6)] {
        if is_iptables_syntax(conds) {
            iptables_only.push(name);
        } else if conds.as_ref().and_then(|c| c.first()).is_some_and(|s| !s.is_empty()) {
            nftables_only.push(name);
        }
    }
    // `markMasqBit` means something only to iptables (the nftables backend accepts and ignores
    // it, as the reference's does): set, it picks iptables when no backend is named.
    let backend = match raw.backend.as_deref() {
        None if !iptables_only.is_empty() || raw.mark_masq_bit.is_some() => Backend::Iptables,
        None | Some("nftables") => Backend::Nftables,
        Some("iptables") => Backend::Iptables,
        Some(other) => return Err(bad(format!("unrecognized backend \"{other}\""))),
    };
    let (name, other, wrong) = match backend {
        Backend::Nftables => ("nftables", "iptables", iptables_only),
        Backend::Iptables => ("iptables", "nftables", nftables_only),
    };
    if !wrong.is_empty() {
        return Err(bad(format!(
            "{name} backend was requested but configuration contains {other}-specific options [{}]",
            wrong.join(" ")
        )));
    }
    Ok(backend)
}

/// The port mappings, validated.
fn parse_mappings(raw: Vec<RawMapping>) -> Result<Vec<Mapping>, CniError> {
    let bad = |m: String| CniError::invalid_config(format!("failed to parse config: {m}"));
    let mut mappings = Vec::new();
    for m in raw {
        if m.container_port <= 0 || m.container_port > 65535 {
            return Err(bad(format!("Invalid container port number: {}", m.container_port)));
        }
        if m.host_port <= 0 || m.host_port > 65535 {
            return Err(bad(format!("Invalid host port number: {}", m.host_port)));
        }
        let protocol = if m.protocol.is_empty() { "tcp".to_string() } else { m.protocol.to_ascii_lowercase() };
        if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
            return Err(bad(format!("Invalid protocol: \"{}\"", m.protocol)));
        }
        let (host_ip, v6_only) = if m.host_ip.is_empty() {
            (None, None)
        } else {
            let ip: IpAddr = m.host_ip.parse().map_err(|_| bad(format!("Invalid host IP: \"{}\"", m.host_ip)))?;
            (Some(ip).filter(|ip| !ip.is_unspecified()), Some(ip.is_ipv6()))
        };
        mappings.push(Mapping {
            host_port: m.host_port as u16,
            container_port: m.container_port as u16,
            protocol,
            host_ip,
            v6_only,
        });
    }
    Ok(mappings)
}

/// What only ADD and CHECK need to be right: the backend, the mark bit and the mappings.
fn check_for_add(raw: &RawConf) -> Result<(), CniError> {
    let bad = |m: &str| CniError::invalid_config(format!("failed to parse config: {m}"));
    if raw.mark_masq_bit.is_some() && raw.external_set_mark_chain.is_some() {
        return Err(bad("Cannot specify externalSetMarkChain and markMasqBit"));
    }
    if raw.mark_masq_bit.is_some_and(|b| !(0..=31).contains(&b)) {
        return Err(bad("MasqMarkBit must be between 0 and 31"));
    }
    if check_backend(raw)? == Backend::Nftables {
        check_conditions("conditionsV4", &raw.conditions_v4)?;
        check_conditions("conditionsV6", &raw.conditions_v6)?;
    }
    Ok(())
}

/// Conditions are pasted into one `add rule` line of an `nft -f` script: nothing in them may
/// end the rule or start another command or a comment. Braces are anonymous sets
/// (`ip saddr { 10.0.0.0/8, 192.168.0.0/16 }`), so they must pair up (across the entries, which
/// are joined with spaces).
fn check_conditions(field: &str, conds: &Option<Vec<String>>) -> Result<(), CniError> {
    let mut depth = 0usize;
    for c in conds.iter().flatten() {
        for ch in c.chars() {
            let unpaired = match ch {
                '{' => {
                    depth += 1;
                    false
                }
                '}' => depth.checked_sub(1).map(|d| depth = d).is_none(),
                _ => false,
            };
            if unpaired || matches!(ch, '\n' | '\r' | ';' | '#') {
                return Err(CniError::invalid_config(format!(
                    "portmap: {field} entry {c:?} contains {ch:?}: conditions must be match expressions of one nft rule"
                )));
            }
        }
    }
    if depth > 0 {
        return Err(CniError::invalid_config(format!("portmap: {field} opens a set with '{{' that it does not close")));
    }
    Ok(())
}

fn load(inv: &Invocation) -> Result<Conf, CniError> {
    let mut raw: RawConf = parse_conf(inv, "portmap")?;
    // DEL and GC of a config ADD refused have nothing more to undo than those of a good one:
    // they go ahead, and only ADD and CHECK report what is wrong.
    let mut add_error = check_for_add(&raw).err();
    let raw_mappings = raw.runtime_config.take().unwrap_or_default().port_mappings;
    let has_mappings = !raw_mappings.is_empty();
    let mappings = parse_mappings(raw_mappings).unwrap_or_else(|e| {
        add_error.get_or_insert(e);
        Vec::new()
    });

    let prev = match &inv.conf.prev_result {
        Some(v) => Some(CniResult::from_prev(v, inv.version).map_err(|e| e.context("could not parse prevResult"))?),
        None => None,
    };
    let (cont_v4, cont_v6) = prev.as_ref().map(|r| container_ips(r, &inv.ifname)).unwrap_or_default();
    // Only ADD and CHECK write or read rules; their errors are in add_error.
    let backend = check_backend(&raw).unwrap_or(Backend::Nftables);
    Ok(Conf {
        backend,
        mark_bit: raw.mark_masq_bit.and_then(|b| u32::try_from(b).ok()).filter(|b| *b <= 31).unwrap_or(13),
        external_set_mark: raw.external_set_mark_chain.take(),
        snat: raw.snat.unwrap_or(true),
        masq_all: raw.masq_all,
        conditions_v4: raw.conditions_v4.unwrap_or_default(),
        conditions_v6: raw.conditions_v6.unwrap_or_default(),
        mappings,
        has_mappings,
        cont_v4,
        cont_v6,
        prev,
        add_error,
    })
}

/// The first address of each family on the container's interface (or on no interface).
fn container_ips(r: &CniResult, ifname: &str) -> (Option<IpNet>, Option<IpNet>) {
    let (mut v4, mut v6) = (None, None);
    for ip in &r.ips {
        if let Some(i) = ip.interface.and_then(|i| r.interfaces.get(i))
            && (i.name != ifname || i.sandbox.is_empty())
        {
            continue;
        }
        match ip.address.addr() {
            IpAddr::V4(_) if v4.is_none() => v4 = Some(ip.address),
            IpAddr::V6(_) if v6.is_none() => v6 = Some(ip.address),
            _ => {}
        }
    }
    (v4, v6)
}

// ---- rules --------------------------------------------------------------------------------

fn table_for(ip: &IpAddr) -> Table {
    if ip.is_ipv4() { V4 } else { V6 }
}

fn conditions<'a>(conf: &'a Conf, ip: &IpAddr) -> &'a [String] {
    if ip.is_ipv4() { &conf.conditions_v4 } else { &conf.conditions_v6 }
}

/// The mappings that apply to the family of `ip`.
fn mappings_for<'a>(conf: &'a Conf, ip: &IpAddr) -> impl Iterator<Item = &'a Mapping> + 'a {
    let v6 = ip.is_ipv6();
    conf.mappings.iter().filter(move |m| m.v6_only.is_none_or(|f| f == v6))
}

fn local_jump() -> Vec<Value> {
    vec![
        nft::cmp("==", serde_json::json!({"fib": {"result": "type", "flags": ["daddr"]}}), "local".into()),
        nft::jump(HOSTPORTS_ALL),
    ]
}

const PREROUTING_HOOK: Hook = Hook { kind: "nat", hook: "prerouting", prio: nft::prio::DSTNAT };
const OUTPUT_HOOK: Hook = Hook { kind: "nat", hook: "output", prio: nft::prio::DSTNAT };

/// The entry chains with operator conditions, in nft syntax (which JSON cannot carry).
fn entry_text(t: Table, conds: &[String]) -> String {
    let (f, n) = (t.family, t.name);
    let c = conds.join(" ");
    format!(
        "add table {f} {n}\n\
         add chain {f} {n} {HOSTPORTS_ALL}\n\
         add chain {f} {n} prerouting {{ type nat hook prerouting priority {p} ; policy accept ; }}\n\
         add chain {f} {n} output {{ type nat hook output priority {p} ; policy accept ; }}\n\
         flush chain {f} {n} prerouting\n\
         add rule {f} {n} prerouting {c} fib daddr type local jump {HOSTPORTS_ALL}\n\
         flush chain {f} {n} output\n\
         add rule {f} {n} output {c} fib daddr type local jump {HOSTPORTS_ALL}\n",
        p = nft::prio::DSTNAT
    )
}

/// Everything ADD writes for one container address.
/// `listing`: the table as it is, so that base chains already right are not rewritten.
fn forward_batch(conf: &Conf, cip: IpAddr, container_id: &str, listing: Option<&Listing>) -> Batch {
    let t = table_for(&cip);
    let with_conditions = !conditions(conf, &cip).is_empty();
    let mut b = Batch::new();
    b.add_table(t, Some("CNI portmap plugin"))
        .add_missing_chain(t, HOSTPORTS, None, listing)
        .add_missing_chain(t, HOSTIP_HOSTPORTS, None, listing)
        .add_missing_chain(t, HOSTPORTS_ALL, None, listing)
        .set_chain_rules(
            t,
            HOSTPORTS_ALL,
            &[(vec![nft::jump(HOSTIP_HOSTPORTS)], None), (vec![nft::jump(HOSTPORTS)], None)],
            listing,
        );
    if !with_conditions {
        for (chain, hook) in [("prerouting", PREROUTING_HOOK), ("output", OUTPUT_HOOK)] {
            b.add_missing_chain(t, chain, Some(hook), listing).set_chain_rules(
                t,
                chain,
                &[(local_jump(), None)],
                listing,
            );
        }
    }
    if conf.snat {
        let hook = Hook { kind: "nat", hook: "postrouting", prio: nft::prio::SRCNAT };
        b.add_missing_chain(t, MASQUERADING, Some(hook), listing);
    }
    let proto = nft::ip_proto(&cip);
    for m in mappings_for(conf, &cip) {
        let mut expr = Vec::new();
        if let Some(hip) = m.host_ip {
            expr.push(nft::match_addr("daddr", "==", hip, 128));
        }
        expr.push(nft::cmp("==", nft::payload(&m.protocol, "dport"), m.host_port.into()));
        expr.push(serde_json::json!({"dnat": {"addr": cip.to_string(), "port": m.container_port}}));
        b.add_rule(t, HOSTPORTS, expr, Some(container_id));
    }
    if conf.snat {
        let masq = |src: Value| {
            vec![
                nft::cmp("==", nft::payload(proto, "saddr"), src),
                nft::match_addr("daddr", "==", cip, 128),
                nft::stmt("masquerade"),
            ]
        };
        let src = if !conf.masq_all {
            nft::addr(cip, 128)
        } else if cip.is_ipv4() {
            serde_json::json!({"prefix": {"addr": "0.0.0.0", "len": 0}})
        } else {
            serde_json::json!({"prefix": {"addr": "::", "len": 0}})
        };
        b.add_rule(t, MASQUERADING, masq(src), Some(container_id));
        if cip.is_ipv4() && !conf.masq_all {
            b.add_rule(t, MASQUERADING, masq("127.0.0.1".into()), Some(container_id));
        }
    }
    b
}

fn forward(nft: &dyn Nft, conf: &Conf, cip: IpAddr, container_id: &str) -> Result<(), CniError> {
    let conds = conditions(conf, &cip);
    let err = |e: CniError| e.context("unable to set up nftables rules for port mappings");
    if !conds.is_empty() {
        nft.apply_text(&entry_text(table_for(&cip), conds)).map_err(err)?;
    }
    // Unreadable: everything is written again (and the apply reports what is wrong).
    let listing = nft.list_table(table_for(&cip)).ok().flatten();
    nft::apply_listed(nft, listing, |l| forward_batch(conf, cip, container_id, l)).map_err(err)
}

/// Delete the rules of `container_id` in both families that name one of `ips` (its DNAT
/// target, its masquerade match), or, with no addresses known, all of them. The comment names
/// only the container, as the reference's nftables backend writes it: a container on two
/// networks has both networks' rules under it, and a DEL on one must leave the other's.
fn unforward(nft: &dyn Nft, container_id: &str, ips: &[IpAddr]) -> Result<(), CniError> {
    for t in [V4, V6] {
        // Expressions are needed only to match addresses. Where they cannot be read (no nf_tables,
        // a rule neither netlink here nor an installed `nft` can show), the rules are found by
        // comment alone: no nf_tables means no rules, and otherwise all the container's go.
        let (listed, by_address) = match ips.is_empty() {
            true => (nft.list_rules(t), false),
            false => match nft.list_table(t) {
                Ok(l) => (Ok(l), true),
                Err(e) => {
                    crate::logger::warn(format_args!(
                        "portmap: the rules of table {} cannot be read ({}); removing every rule of container {container_id}",
                        t.name, e.msg
                    ));
                    (nft.list_rules(t), false)
                }
            },
        };
        let listing = listed.map_err(|e| e.context(format!("could not list rules in table {}", t.name)))?;
        let Some(listing) = listing else { continue };
        delete_rules(nft, t, &listing, container_id, |r| !by_address || mentions(&r.expr, ips))
            .map_err(|e| e.context("error deleting nftables rules"))?;
    }
    Ok(())
}

/// `container_id`'s rules in a listed table, chain by chain.
fn container_rules<'a>(listing: &'a Listing, container_id: &'a str) -> impl Iterator<Item = &'a nft::ListedRule> + 'a {
    [HOSTPORTS, HOSTIP_HOSTPORTS, MASQUERADING]
        .into_iter()
        .flat_map(move |chain| listing.rules_where(chain, move |c| nft::comment_is(c, container_id)))
}

/// Delete those of `container_id`'s rules in table `t` that `pick` picks, in one batch.
fn delete_rules(
    nft: &dyn Nft,
    t: Table,
    listing: &Listing,
    container_id: &str,
    pick: impl Fn(&nft::ListedRule) -> bool,
) -> Result<(), CniError> {
    let mut b = Batch::new();
    for r in container_rules(listing, container_id).filter(|r| pick(r)) {
        b.delete_rule(t, &r.chain, r.handle);
    }
    nft.apply(&b)
}

/// The handles of `container_id`'s rules in table `t` (none when it cannot be listed).
fn rule_handles(nft: &dyn Nft, t: Table, container_id: &str) -> Vec<u64> {
    let Ok(Some(listing)) = nft.list_rules(t) else { return Vec::new() };
    container_rules(&listing, container_id).map(|r| r.handle).collect()
}

/// Delete `container_id`'s rules in table `t` but those in `before`: what one ADD wrote.
fn unforward_new(nft: &dyn Nft, t: Table, container_id: &str, before: &[u64]) -> Result<(), CniError> {
    let Some(listing) = nft.list_rules(t)? else { return Ok(()) };
    delete_rules(nft, t, &listing, container_id, |r| !before.contains(&r.handle))
}

/// Whether an expression names one of `ips` (compared as addresses, not as text).
fn mentions(expr: &Value, ips: &[IpAddr]) -> bool {
    match expr {
        Value::String(s) => s.parse::<IpAddr>().is_ok_and(|ip| ips.contains(&ip)),
        Value::Array(a) => a.iter().any(|v| mentions(v, ips)),
        Value::Object(o) => o.values().any(|v| mentions(v, ips)),
        _ => false,
    }
}

fn check_ports(nft: &dyn Nft, conf: &Conf, cip: IpAddr, container_id: &str) -> Result<(), CniError> {
    let t = table_for(&cip);
    let host_ports = mappings_for(conf, &cip).count();
    let masq = match (conf.snat, cip.is_ipv4() && !conf.masq_all) {
        (false, _) => 0,
        (true, true) => 2,
        (true, false) => 1,
    };
    let listing = nft.list_table(t)?.unwrap_or_default();
    for (chain, want) in [(HOSTPORTS, host_ports), (MASQUERADING, masq)] {
        let found =
            listing.rules_where(chain, |c| nft::comment_is(c, container_id)).filter(|r| mentions(&r.expr, &[cip]));
        if want > 0 && found.count() < want {
            return Err(CniError::internal(format!("missing hostport rules in \"{chain}\" chain")));
        }
    }
    Ok(())
}

/// With SNAT, 127.0.0.0/8 must be routable to the container: set route_localnet on the host
/// interface that routes to it.
fn enable_localnet(cip: IpAddr) -> Result<(), CniError> {
    let Ok(nl) = Netlink::open() else { return Ok(()) };
    // The kernel's own choice, policy routing included.
    let Some(oif) = nl.route_get(cip).ok().and_then(|r| r.oif) else { return Ok(()) };
    let Ok(Some(link)) = nl.link_by_index(oif) else { return Ok(()) };
    // The link message carries the setting: no /proc/sys lookup (see `Netlink::set_route_localnet`).
    let set = match link.route_localnet {
        Some(true) => return Ok(()),
        Some(false) => nl.set_route_localnet(&link),
        None => sysctl::set(&format!("net/ipv4/conf/{}/route_localnet", link.name), "1"),
    };
    set.map_err(|e| CniError::internal(format!("unable to enable route_localnet: {e}")))
}

// ---- records for GC -------------------------------------------------------------------------

fn record_path(network: &str, container_id: &str) -> PathBuf {
    PathBuf::from(RECORDS).join(network).join(container_id)
}

/// A record's lines: the attachments (ifname) and the addresses their rules name.
fn parse_record(text: &str) -> Vec<(String, IpAddr)> {
    let line = |l: &str| l.split_once(' ').and_then(|(i, a)| Some((i.to_string(), a.trim().parse().ok()?)));
    text.lines().filter_map(line).collect()
}

/// A record's lines, None without a record; an empty one is an older release's, which noted
/// no addresses.
fn read_record(network: &str, container_id: &str) -> Option<Vec<(String, IpAddr)>> {
    std::fs::read_to_string(record_path(network, container_id)).ok().map(|t| parse_record(&t))
}

/// Change the container's record under the records' lock (`util::records::update`), written
/// whole; no lines left: no record.
fn update_record(network: &str, container_id: &str, f: impl FnOnce(&mut Vec<(String, IpAddr)>)) {
    let path = record_path(network, container_id);
    let updated = records::update(Path::new(RECORDS), &path, |text| {
        let mut lines = text.as_deref().map(parse_record).unwrap_or_default();
        f(&mut lines);
        (!lines.is_empty()).then(|| lines.iter().map(|(ifname, ip)| format!("{ifname} {ip}\n")).collect())
    });
    // Best effort, as the rules do not depend on it: without the record only GC misses them.
    if let Err(e) = updated {
        crate::logger::warn(format_args!("portmap: could not update {} for GC: {e}", path.display()));
    }
}

/// Note the attachment's addresses for GC (with the container's others on this network). A
/// failed ADD leaves them: the runtime's DEL, or else the next GC, removes them with the rules.
fn record(network: &str, container_id: &str, ifname: &str, ips: &[IpAddr]) {
    if ips.is_empty() {
        return;
    }
    update_record(network, container_id, |lines| {
        lines.retain(|(i, _)| i != ifname);
        lines.extend(ips.iter().map(|ip| (ifname.to_string(), *ip)));
    });
}

// ---- verbs --------------------------------------------------------------------------------

fn add(inv: &Invocation) -> Result<CniResult, CniError> {
    let conf = load(inv)?;
    if let Some(e) = conf.add_error {
        return Err(e);
    }
    let prev = conf.prev.clone().ok_or_else(|| CniError::internal("must be called as chained plugin"))?;
    if conf.mappings.is_empty() {
        return Ok(prev);
    }
    // Rules are found again by their comment, the container ID, which must fit whole.
    if conf.backend == Backend::Nftables {
        nft::check_whole_comment("portmap", &inv.container_id)?;
    }
    let ips: Vec<IpAddr> = conf.addrs().collect();
    record(&inv.conf.name, &inv.container_id, &inv.ifname, &ips);
    // A host address of one family maps only to the container's address of that family.
    for m in &conf.mappings {
        if let Some(v6) = m.v6_only
            && (if v6 { conf.cont_v6.is_none() } else { conf.cont_v4.is_none() })
        {
            let family = if v6 { 6 } else { 4 };
            crate::logger::warn(format_args!(
                "portmap: host port {} (an IPv{family} hostIP) is not mapped: the container has no IPv{family} address",
                m.host_port
            ));
        }
    }
    // Whatever can fail without writing a rule goes first.
    if let Some(ip) = conf.cont_v4.filter(|_| conf.snat) {
        enable_localnet(ip.addr())?;
    }
    if conf.backend == Backend::Iptables {
        // All or nothing: the iptables backend undoes its own writes.
        host_ports(&conf, inv)
            .forward(conf.cont_v4, conf.cont_v6)
            .map_err(|e| iptables::cni_error("unable to set up iptables rules for port mappings", &e))?;
    } else {
        // A failure for the second family takes out the first family's rules, and only the
        // rules this ADD wrote: the container's rules already there (its mappings on another
        // network, or those of an earlier ADD) are known by their handles.
        let mut written: Vec<(IpAddr, Vec<u64>)> = Vec::new();
        for ip in conf.addrs() {
            let before = rule_handles(&System, table_for(&ip), &inv.container_id);
            if let Err(e) = forward(&System, &conf, ip, &inv.container_id) {
                for (ip, before) in &written {
                    let _ = unforward_new(&System, table_for(ip), &inv.container_id, before);
                }
                return Err(e);
            }
            written.push((ip, before));
        }
    }
    if conf.cont_v4.is_some() {
        forget_stale_udp_flows(&conf, false);
    }
    if conf.cont_v6.is_some() {
        forget_stale_udp_flows(&conf, true);
    }
    Ok(prev)
}

/// The iptables backend's view of the config.
fn host_ports<'c>(conf: &'c Conf, inv: &'c Invocation) -> iptables::HostPorts<'c> {
    iptables::HostPorts {
        network: &inv.conf.name,
        container_id: &inv.container_id,
        snat: conf.snat,
        masq_all: conf.masq_all,
        mark_bit: conf.mark_bit,
        external_set_mark: conf.external_set_mark.as_deref(),
        conditions_v4: &conf.conditions_v4,
        conditions_v6: &conf.conditions_v6,
        mappings: &conf.mappings,
    }
}

/// How DEL and GC remove iptables chains: those of the iptables backend must go, the
/// reference's leftovers are removed best effort.
fn removal(conf: &Conf) -> iptables::Removal {
    if conf.backend == Backend::Iptables { iptables::Removal::Ours } else { iptables::Removal::Leftovers }
}

/// Once the rules are in place, drop what conntrack remembers of UDP sent to the mapped host
/// ports (so the next packet meets the new rules, not a stale translation). Failures are
/// reported, not fatal: the mapping works, old flows just expire on their own.
fn forget_stale_udp_flows(conf: &Conf, v6: bool) {
    for m in conf.mappings.iter().filter(|m| m.protocol == "udp") {
        if let Err(e) = crate::netlink::conntrack::forget_udp_flows_to(v6, m.host_port) {
            crate::logger::warn(format_args!("{e}"));
        }
    }
}

/// Remove the attachment's rules on this network: those naming its addresses in prevResult or
/// in the record (both: either may lack one). Without mappings (a runtime that lost them) a
/// record is still acted on.
fn del(inv: &Invocation) -> Result<(), CniError> {
    let conf = load(inv)?;
    let record = read_record(&inv.conf.name, &inv.container_id);
    let mine = |l: &(String, IpAddr)| l.0 == inv.ifname;
    if !conf.has_mappings && !record.as_ref().is_some_and(|r| r.is_empty() || r.iter().any(mine)) {
        return Ok(());
    }
    let mut ips: Vec<IpAddr> = conf.addrs().collect();
    let had_record = record.is_some();
    let lines = record.unwrap_or_default();
    ips.extend(lines.iter().filter(|l| mine(l)).map(|(_, ip)| *ip));
    let rest: Vec<(String, IpAddr)> = lines.into_iter().filter(|l| !mine(l)).collect();
    // A record that names the container's other attachments but not this one, with no address
    // from prevResult either (a repeated DEL): nothing here is known to be this attachment's.
    if ips.is_empty() && !rest.is_empty() {
        return Ok(());
    }
    // The reference's chains are named after network and container: they go with the
    // container's last attachment here.
    if rest.is_empty() {
        iptables::teardown_portmap(&inv.conf.name, &inv.container_id, removal(&conf))
            .map_err(|e| iptables::cni_error("could not teardown iptables dnat", &e))?;
    }
    if ips.is_empty() {
        // Nothing says which rules are this attachment's (no prevResult, no record or an older
        // release's): all the container's go, as before records named addresses.
        unforward(&System, &inv.container_id, &[])?;
    } else {
        // An address one of the container's other attachments (on this network or another)
        // still holds keeps its rules.
        let held = held_elsewhere(&inv.conf.name, &inv.container_id, &rest);
        ips.retain(|ip| !held.contains(ip));
        if !ips.is_empty() {
            unforward(&System, &inv.container_id, &ips)?;
        }
    }
    if had_record {
        update_record(&inv.conf.name, &inv.container_id, |lines| lines.retain(|l| !mine(l)));
    }
    Ok(())
}

/// The addresses the container's other attachments hold: `rest` of this network's record, and
/// every line of its records on other networks.
fn held_elsewhere(network: &str, container_id: &str, rest: &[(String, IpAddr)]) -> Vec<IpAddr> {
    let mut held: Vec<IpAddr> = rest.iter().map(|(_, ip)| *ip).collect();
    for other in records::other_networks(RECORDS, network) {
        let text = std::fs::read_to_string(other.join(container_id)).unwrap_or_default();
        held.extend(parse_record(&text).into_iter().map(|(_, ip)| ip));
    }
    held
}

fn check(inv: &Invocation) -> Result<(), CniError> {
    let conf = load(inv)?;
    if let Some(e) = conf.add_error {
        return Err(e);
    }
    if conf.prev.is_none() {
        return Err(CniError::internal("Required prevResult missing"));
    }
    if conf.mappings.is_empty() {
        return Ok(());
    }
    if conf.backend == Backend::Iptables {
        return host_ports(&conf, inv).check(conf.cont_v4, conf.cont_v6).map_err(CniError::internal);
    }
    for ip in [conf.cont_v4, conf.cont_v6].into_iter().flatten() {
        check_ports(&System, &conf, ip.addr(), &inv.container_id)?;
    }
    Ok(())
}

/// The config is one ADD would take. A missing iptables for the iptables backend is only
/// warned about: pods without port mappings (most of them) are added all the same, and a
/// failing STATUS would hold every new pod back.
fn status(inv: &Invocation) -> Result<(), CniError> {
    let conf = load(inv)?;
    if let Some(e) = conf.add_error {
        return Err(e);
    }
    if conf.backend == Backend::Iptables
        && let Err(e) = iptables::status("portmap")
    {
        crate::logger::warn(format_args!("{}", e.msg));
    }
    Ok(())
}

/// Rules of container IDs this network recorded that are not valid any more.
fn gc(inv: &Invocation) -> Result<(), CniError> {
    let conf = load(inv)?;
    let Some(valid) = crate::cni::gc::valid_attachments(&inv.stdin)? else { return Ok(()) };
    // The reference's iptables chains are named after network and container ID; only those
    // of containers recorded here can be named.
    let dir = PathBuf::from(RECORDS).join(&inv.conf.name);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(()) };
    let mut first_err = None;
    for e in entries.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        if id.starts_with('.') {
            continue;
        }
        // Gone meanwhile (a DEL): nothing to judge.
        let Some(lines) = read_record(&inv.conf.name, &id) else { continue };
        let is_valid = |ifname: &str| valid.iter().any(|(v, i)| *v == id && i == ifname);
        let (kept, stale): (Vec<_>, Vec<_>) = lines.iter().cloned().partition(|(i, _)| is_valid(i));
        // An older release's record names no attachment: stale when the container is in no
        // valid attachment of this network.
        let legacy = lines.is_empty() && !valid.iter().any(|(v, _)| *v == id);
        if stale.is_empty() && !legacy {
            continue;
        }
        // The reference's chains are named after network and container: they go with the
        // container's last attachment here.
        if kept.is_empty()
            && let Err(e) = iptables::teardown_portmap(&inv.conf.name, &id, removal(&conf))
        {
            first_err.get_or_insert(iptables::cni_error("could not teardown iptables dnat", &e));
            continue;
        }
        let held = held_elsewhere(&inv.conf.name, &id, &kept);
        let ips: Vec<IpAddr> = stale.iter().map(|(_, ip)| *ip).filter(|ip| !held.contains(ip)).collect();
        // A rule left in place keeps its lines for the next GC.
        if (!ips.is_empty() || legacy)
            && let Err(e) = unforward(&System, &id, &ips)
        {
            first_err.get_or_insert(e);
            continue;
        }
        // Only the lines judged stale go: a DEL meanwhile may have taken others out.
        update_record(&inv.conf.name, &id, |lines| lines.retain(|l| !stale.contains(l)));
    }
    first_err.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::nft::Fake;
    use serde_json::json;

    fn conf(mappings: Vec<Mapping>, snat: bool, masq_all: bool) -> Conf {
        Conf {
            snat,
            masq_all,
            conditions_v4: vec![],
            conditions_v6: vec![],
            mappings,
            cont_v4: None,
            cont_v6: None,
            backend: Backend::Nftables,
            mark_bit: 13,
            external_set_mark: None,
            prev: None,
            has_mappings: true,
            add_error: None,
        }
    }

    fn m(hp: u16, cp: u16, proto: &str, host_ip: Option<&str>) -> Mapping {
        let ip: Option<IpAddr> = host_ip.map(|s| s.parse().unwrap());
        Mapping {
            host_port: hp,
            container_port: cp,
            protocol: proto.into(),
            host_ip: ip.filter(|i| !i.is_unspecified()),
            v6_only: ip.map(|i| i.is_ipv6()),
        }
    }

    #[test]
    fn forward_golden_v4() {
        let c = conf(
            vec![m(8080, 80, "tcp", None), m(53, 53, "udp", Some("192.168.1.1")), m(9, 9, "tcp", Some("::1"))],
            true,
            false,
        );
        let fake = Fake::default();
        forward(&fake, &c, "10.0.0.2".parse().unwrap(), "cid").unwrap();
        let t = |name: &str| json!({"family": "ip", "table": "cni_hostport", "name": name});
        let base = |name: &str, hook: &str, prio: i32| {
            let mut c = t(name);
            c["type"] = json!("nat");
            c["hook"] = json!(hook);
            c["prio"] = json!(prio);
            c["policy"] = json!("accept");
            json!({"add": {"chain": c}})
        };
        let rule = |chain: &str, expr: Value, comment: Option<&str>| {
            let mut r = json!({"family": "ip", "table": "cni_hostport", "chain": chain, "expr": expr});
            if let Some(c) = comment {
                r["comment"] = json!(c);
            }
            json!({"add": {"rule": r}})
        };
        let local = json!([{"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}},
            {"jump": {"target": "hostports_all"}}]);
        let want = vec![
            json!({"add": {"table": {"family": "ip", "name": "cni_hostport", "comment": "CNI portmap plugin"}}}),
            json!({"add": {"chain": t("hostports")}}),
            json!({"add": {"chain": t("hostip_hostports")}}),
            json!({"add": {"chain": t("hostports_all")}}),
            json!({"flush": {"chain": t("hostports_all")}}),
            rule("hostports_all", json!([{"jump": {"target": "hostip_hostports"}}]), None),
            rule("hostports_all", json!([{"jump": {"target": "hostports"}}]), None),
            base("prerouting", "prerouting", -100),
            json!({"flush": {"chain": t("prerouting")}}),
            rule("prerouting", local.clone(), None),
            base("output", "output", -100),
            json!({"flush": {"chain": t("output")}}),
            rule("output", local, None),
            base("masquerading", "postrouting", 100),
            rule(
                "hostports",
                json!([
                {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}},
                {"dnat": {"addr": "10.0.0.2", "port": 80}}]),
                Some("cid"),
            ),
            rule(
                "hostports",
                json!([
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "192.168.1.1"}},
                {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 53}},
                {"dnat": {"addr": "10.0.0.2", "port": 53}}]),
                Some("cid"),
            ),
            rule(
                "masquerading",
                json!([
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.0.0.2"}},
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.0.0.2"}},
                {"masquerade": null}]),
                Some("cid"),
            ),
            rule(
                "masquerading",
                json!([
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "127.0.0.1"}},
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.0.0.2"}},
                {"masquerade": null}]),
                Some("cid"),
            ),
        ];
        assert_eq!(fake.commands(), want);
        assert!(fake.texts.borrow().is_empty());
    }

    #[test]
    fn v6_masq_all_and_no_snat() {
        let c = conf(vec![m(8080, 80, "tcp", None)], true, true);
        let fake = Fake::default();
        forward(&fake, &c, "fd00::2".parse().unwrap(), "cid").unwrap();
        let cmds = fake.commands();
        let masq: Vec<_> = cmds.iter().filter(|c| c["add"]["rule"]["chain"] == "masquerading").collect();
        assert_eq!(masq.len(), 1);
        assert_eq!(masq[0]["add"]["rule"]["expr"][0]["match"]["right"], json!({"prefix": {"addr": "::", "len": 0}}));
        assert_eq!(cmds[0]["add"]["table"]["family"], "ip6");
        assert_eq!(cmds.iter().filter(|c| c["add"]["rule"]["chain"] == "hostports").count(), 1);

        let c = conf(vec![m(8080, 80, "tcp", None)], false, false);
        let fake = Fake::default();
        forward(&fake, &c, "10.0.0.2".parse().unwrap(), "cid").unwrap();
        assert!(!fake.commands().iter().any(|c| c.to_string().contains("masquerading")));
    }

    #[test]
    fn conditions_go_first_as_text() {
        let mut c = conf(vec![m(8080, 80, "tcp", None)], true, false);
        c.conditions_v4 = vec!["ip saddr != 10.9.0.0/16".into()];
        let fake = Fake::default();
        forward(&fake, &c, "10.0.0.2".parse().unwrap(), "cid").unwrap();
        let texts = fake.texts.borrow();
        assert_eq!(texts.len(), 1);
        assert!(texts[0].contains(
            "add rule ip cni_hostport prerouting ip saddr != 10.9.0.0/16 fib daddr type local jump hostports_all\n"
        ));
        assert!(
            texts[0]
                .contains("add chain ip cni_hostport output { type nat hook output priority -100 ; policy accept ; }")
        );
        // The JSON batch leaves the entry chains alone.
        assert!(!fake.commands().iter().any(|c| c.to_string().contains("prerouting")));
    }

    #[test]
    fn unforward_by_comment_in_both_families() {
        let listing = |fam: &str| {
            json!({"nftables": [
                {"rule": {"family": fam, "table": "cni_hostport", "chain": "hostports", "handle": 3, "comment": "cid", "expr": []}},
                {"rule": {"family": fam, "table": "cni_hostport", "chain": "hostports", "handle": 4, "comment": "other", "expr": []}},
                {"rule": {"family": fam, "table": "cni_hostport", "chain": "masquerading", "handle": 8, "comment": "cid", "expr": []}},
                {"rule": {"family": fam, "table": "cni_hostport", "chain": "prerouting", "handle": 9, "expr": []}},
            ]})
            .to_string()
        };
        let fake = Fake::with_table(V4, &listing("ip"));
        fake.tables.borrow_mut().push((V6, Listing::parse(&listing("ip6")).unwrap()));
        unforward(&fake, "cid", &[]).unwrap();
        let dels: Vec<(String, u64)> = fake
            .commands()
            .iter()
            .map(|c| {
                (
                    c["delete"]["rule"]["family"].as_str().unwrap().to_string(),
                    c["delete"]["rule"]["handle"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(dels, vec![("ip".into(), 3), ("ip".into(), 8), ("ip6".into(), 3), ("ip6".into(), 8)]);
        // Nothing there at all is fine.
        unforward(&Fake::default(), "cid", &[]).unwrap();
    }

    #[test]
    fn unforward_by_address_leaves_the_container_s_other_networks() {
        let dnat = |ip: &str| json!([{"dnat": {"addr": ip, "port": 80}}]);
        let listing = json!({"nftables": [
            {"rule": {"family": "ip", "table": "cni_hostport", "chain": "hostports", "handle": 3, "comment": "cid", "expr": dnat("10.0.0.5")}},
            {"rule": {"family": "ip", "table": "cni_hostport", "chain": "hostports", "handle": 4, "comment": "cid", "expr": dnat("10.1.0.5")}},
            {"rule": {"family": "ip", "table": "cni_hostport", "chain": "masquerading", "handle": 8, "comment": "cid",
                      "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.0.0.5"}}]}},
        ]})
        .to_string();
        let fake = Fake::with_table(V4, &listing);
        unforward(&fake, "cid", &["10.0.0.5".parse().unwrap()]).unwrap();
        let handles: Vec<_> = fake.commands().iter().map(|c| c["delete"]["rule"]["handle"].clone()).collect();
        assert_eq!(handles, vec![json!(3), json!(8)]);
    }

    #[test]
    fn long_container_id_comments_compare_clipped() {
        let long = "y".repeat(200);
        let clipped = nft::clip_comment(&long);
        let listing = json!({"nftables": [
            {"rule": {"family": "ip", "table": "cni_hostport", "chain": "hostports", "handle": 3, "comment": clipped, "expr": []}},
            {"rule": {"family": "ip", "table": "cni_hostport", "chain": "hostports", "handle": 4, "comment": "y", "expr": []}},
        ]})
        .to_string();
        let fake = Fake::with_table(V4, &listing);
        unforward(&fake, &long, &[]).unwrap();
        let handles: Vec<_> = fake.commands().iter().map(|c| c["delete"]["rule"]["handle"].clone()).collect();
        assert_eq!(handles, vec![json!(3)]);
        assert!(nft::check_whole_comment("portmap", &long).is_err());
        assert!(nft::check_whole_comment("portmap", &"y".repeat(128)).is_ok());
    }

    #[test]
    fn prev_result_addresses() {
        let r = CniResult::from_value(
            &json!({"cniVersion": "1.0.0",
                "interfaces": [{"name": "cni0"}, {"name": "vethx"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
                "ips": [{"address": "10.1.0.1/24", "interface": 0}, {"address": "10.1.0.5/24", "interface": 2},
                        {"address": "fd00::5/64"}, {"address": "10.1.0.6/24", "interface": 2}]}),
            version::SpecVersion::V1_0_0,
        )
        .unwrap();
        let (v4, v6) = container_ips(&r, "eth0");
        assert_eq!(
            (v4.map(|n| n.addr()), v6.map(|n| n.addr())),
            (Some("10.1.0.5".parse().unwrap()), Some("fd00::5".parse().unwrap()))
        );
    }

    #[test]
    fn conditions_cannot_leave_their_rule() {
        let c = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(check_conditions("conditionsV4", &c(&["ip saddr != 10.0.0.0/8", "tcp dport 80"])).is_ok());
        assert!(check_conditions("conditionsV4", &None).is_ok());
        // Sets, in one entry or across several.
        assert!(check_conditions("conditionsV4", &c(&["ip saddr { 10.0.0.0/8, 192.168.0.0/16 }"])).is_ok());
        assert!(check_conditions("conditionsV4", &c(&["ip", "saddr", "{", "10.0.0.1,", "10.0.0.2", "}"])).is_ok());
        for bad in ["ip saddr 1.2.3.4\nflush ruleset", "accept; drop", "ip saddr 1.2.3.4 }", "x # y", "a\rb"] {
            let e = check_conditions("conditionsV6", &c(&["ip saddr 1.1.1.1", bad])).unwrap_err();
            assert!(e.msg.starts_with("portmap: conditionsV6 entry"), "{}", e.msg);
        }
        let e = check_conditions("conditionsV4", &c(&["ip saddr { 1.2.3.4"])).unwrap_err();
        assert!(e.msg.contains("does not close"), "{}", e.msg);
    }

    #[test]
    fn iptables_syntax_detection() {
        assert!(is_iptables_syntax(&Some(vec!["-s".into(), "1.2.3.4".into()])));
        assert!(is_iptables_syntax(&Some(vec!["!".into()])));
        assert!(!is_iptables_syntax(&Some(vec!["ip saddr 1.2.3.4".into()])));
        assert!(!is_iptables_syntax(&None));
    }

    #[test]
    fn backend_from_config() {
        let raw = |v: serde_json::Value| -> RawConf { serde_json::from_value(v).unwrap() };
        assert_eq!(check_backend(&raw(json!({}))).unwrap(), Backend::Nftables);
        assert_eq!(check_backend(&raw(json!({"backend": "iptables"}))).unwrap(), Backend::Iptables);
        assert_eq!(check_backend(&raw(json!({"externalSetMarkChain": "KUBE-MARK-MASQ"}))).unwrap(), Backend::Iptables);
        assert_eq!(check_backend(&raw(json!({"conditionsV6": ["-s", "::1"]}))).unwrap(), Backend::Iptables);
        assert_eq!(check_backend(&raw(json!({"markMasqBit": 14}))).unwrap(), Backend::Iptables);
        assert_eq!(check_backend(&raw(json!({"backend": "nftables", "markMasqBit": 14}))).unwrap(), Backend::Nftables);
        assert_eq!(check_backend(&raw(json!({"conditionsV4": ["ip saddr 1.2.3.4"]}))).unwrap(), Backend::Nftables);
        // An empty first condition names no backend, as in the reference.
        assert_eq!(
            check_backend(&raw(json!({"backend": "iptables", "conditionsV4": [""]}))).unwrap(),
            Backend::Iptables
        );
        let e = check_backend(&raw(json!({"externalSetMarkChain": "X", "conditionsV4": ["ip saddr 1.2.3.4"]})));
        assert!(e.unwrap_err().msg.contains(
            "iptables backend was requested but configuration contains nftables-specific options [conditionsV4]"
        ));
    }

    use crate::firewall::nft::Listing;
}
