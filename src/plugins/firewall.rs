//! firewall: let a container's traffic through the host's forward path, and optionally
//! isolate bridges from each other.
//!
//! Three backends: `firewalld`, as the reference's (the container's addresses become sources
//! of a firewalld zone, `trusted` unless `firewalldZone` names another; `firewall::firewalld`),
//! `iptables`, the reference's layout (`firewall::iptables::Forwarding`), and `nftables`, an
//! equivalent ruleset in a table of its own. Unset, the backend is firewalld where firewalld
//! runs (as the reference's default), else iptables where an iptables filter table with a
//! FORWARD chain is in use (only an iptables rule overrides that chain's DROP policy, which
//! Docker sets), else nftables:
//!
//! ```text
//! table inet cni_firewall {
//!     chain forward {              # filter, forward, priority filter, policy accept; rewritten on ADD
//!         jump isolation_stage_1
//!         jump CNI-ADMIN
//!         jump pods
//!     }
//!     chain CNI-ADMIN { }          # the operators' chain (`iptablesAdminChainName`): created when
//!                                  # missing, never flushed or changed; a verdict here overrides `pods`
//!     chain pods {                 # per container address, commented with the attachment:
//!         ip daddr 10.88.0.5 ct state established,related accept
//!         ip saddr 10.88.0.5 accept
//!     }
//!     chain isolation_stage_1 {    # per bridge with ingressPolicy same-bridge or isolated:
//!         iifname "br" oifname != "br" jump isolation_stage_2
//!         iifname "br" oifname "br" drop           # isolated only
//!     }
//!     chain isolation_stage_2 {
//!         oifname "br" drop
//!     }
//! }
//! ```
//!
//! Differences from iptables worth knowing: an `accept` here ends evaluation of this table
//! only, so a drop policy in another table's forward hook still applies (hence the choice
//! above); and, as with the
//! reference, rules about traffic within one bridge only see packets when `br_netfilter`
//! passes bridged frames to the IP hooks. Isolation rules, like the reference's, stay after DEL
//! (other containers may still use the bridge).

use crate::cni::config::parse_conf;
use crate::cni::result::{CniResult, IpConfig};
use crate::cni::{CniError, Command, Invocation, PluginFns, version};
use crate::firewall::firewalld::{self, Firewalld};
use crate::firewall::iptables;
use crate::firewall::masq::{instance_comment, network_hash};
use crate::firewall::nft::{self, Batch, Hook, Listing, Nft, System, Table};
use crate::util::records;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::PathBuf;

pub static PLUGIN: PluginFns = PluginFns { add, del, check, gc, status, versions: version::FROM_0_4_0 };

pub const TABLE: Table = Table::new("inet", "cni_firewall");
const FORWARD: &str = "forward";
const PODS: &str = "pods";
const STAGE1: &str = "isolation_stage_1";
const STAGE2: &str = "isolation_stage_2";
const DEFAULT_ADMIN: &str = "CNI-ADMIN";

#[derive(Deserialize)]
struct RawConf {
    #[serde(default)]
    backend: Option<String>,
    #[serde(rename = "iptablesAdminChainName", default)]
    admin_chain: Option<String>,
    #[serde(rename = "ingressPolicy", default)]
    ingress_policy: Option<String>,
    #[serde(rename = "firewalldZone", default)]
    firewalld_zone: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Open,
    SameBridge,
    Isolated,
}

/// Where the rules go. Unset, like the reference's default, it is firewalld where firewalld
/// runs; else iptables where an iptables filter table with a FORWARD chain is in use, and
/// nftables elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Auto,
    Firewalld,
    Nftables,
    Iptables,
}

struct Conf {
    admin: String,
    policy: Policy,
    prev: Option<CniResult>,
    backend: Result<Backend, CniError>,
    /// firewalld's zone for the container's addresses.
    zone: String,
}

impl Conf {
    /// The earlier plugin's result, which ADD and CHECK need.
    fn prev(&self) -> Result<&CniResult, CniError> {
        self.prev.as_ref().ok_or_else(|| CniError::internal("missing prevResult from earlier plugin"))
    }
}

fn load(inv: &Invocation) -> Result<Conf, CniError> {
    let raw: RawConf = parse_conf(inv, "firewall")?;
    // Only ADD and CHECK insist on the backend: DEL and GC of a refused config have nothing to
    // undo, and DEL removes what either backend wrote.
    let backend = match raw.backend.as_deref().unwrap_or("") {
        "" => Ok(Backend::Auto),
        "nftables" => Ok(Backend::Nftables),
        "iptables" => Ok(Backend::Iptables),
        "firewalld" => Ok(Backend::Firewalld),
        other => Err(CniError::invalid_config(format!(
            "firewall: unknown backend \"{other}\" (supported: \"firewalld\", \"iptables\", \"nftables\")"
        ))),
    };
    let zone = raw.firewalld_zone.filter(|s| !s.is_empty()).unwrap_or_else(|| "trusted".to_string());
    let backend = backend.and_then(|b| {
        if firewalld::valid_zone(&zone) {
            Ok(b)
        } else {
            Err(CniError::invalid_config(format!("firewall: firewalldZone {zone:?} is not a zone name")))
        }
    });
    let policy = match raw.ingress_policy.as_deref().unwrap_or("") {
        "" | "open" => Policy::Open,
        "same-bridge" => Policy::SameBridge,
        "isolated" => Policy::Isolated,
        // DEL removes this pod's rules whatever the policy (isolation rules stay for the bridge).
        _ if inv.command == Command::Del => Policy::Open,
        other => return Err(CniError::invalid_config(format!("unknown ingress policy: \"{other}\""))),
    };
    let prev = match &inv.conf.prev_result {
        Some(v) => Some(CniResult::from_prev(v, inv.version).map_err(|e| e.context("could not parse prevResult"))?),
        None => None,
    };
    let admin = raw.admin_chain.filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_ADMIN.to_string());
    Ok(Conf { admin, policy, prev, backend, zone })
}

// ---- rules --------------------------------------------------------------------------------

fn pod_rules(ip: std::net::IpAddr) -> [Vec<Value>; 2] {
    [
        vec![
            nft::match_addr("daddr", "==", ip, 128),
            nft::cmp("in", json!({"ct": {"key": "state"}}), json!(["established", "related"])),
            nft::stmt("accept"),
        ],
        vec![nft::match_addr("saddr", "==", ip, 128), nft::stmt("accept")],
    ]
}

fn ifname_is(dir: &str, op: &str, name: &str) -> Value {
    nft::cmp(op, nft::meta(dir), name.into())
}

fn policy_comment(policy: &str, bridge: &str) -> String {
    nft::clip_comment(&format!("CNI firewall plugin rules (ingressPolicy: {policy}, bridge: {bridge})"))
}

/// The admin chains `forward` already jumps to (networks may name different ones), then ours.
fn admin_chains(listing: Option<&Listing>, ours: &str) -> Vec<String> {
    let jump_target =
        |expr: &Value| expr.as_array()?.iter().find_map(|s| s.get("jump")?.get("target")?.as_str().map(str::to_string));
    let mut out: Vec<String> = listing
        .map(|l| l.rules.iter().filter(|r| r.chain == FORWARD).filter_map(|r| jump_target(&r.expr)).collect())
        .unwrap_or_default();
    out.retain(|c| c != STAGE1 && c != PODS);
    if !out.iter().any(|c| c == ours) {
        out.push(ours.to_string());
    }
    out
}

/// The whole ADD: structure, this attachment's rules (replacing stale ones), and isolation.
/// `forward` is rewritten in the same atomic batch (unless it is right already), keeping every
/// admin chain it jumped to.
fn add_batch(conf: &Conf, listing: Option<&Listing>, result: &CniResult, comment: &str, bridge: Option<&str>) -> Batch {
    let mut b = Batch::new();
    let admins = admin_chains(listing, &conf.admin);
    b.add_table(TABLE, Some("CNI firewall plugin rules"));
    for admin in &admins {
        b.add_missing_chain(TABLE, admin, None, listing);
    }
    for chain in [PODS, STAGE1, STAGE2] {
        b.add_missing_chain(TABLE, chain, None, listing);
    }
    let hook = Hook { kind: "filter", hook: "forward", prio: nft::prio::FILTER };
    b.add_missing_chain(TABLE, FORWARD, Some(hook), listing);
    let mut forward: Vec<nft::RuleSpec<'_>> = vec![(vec![nft::jump(STAGE1)], None)];
    for admin in &admins {
        forward.push((vec![nft::jump(admin)], Some("CNI firewall plugin admin overrides")));
    }
    forward.push((vec![nft::jump(PODS)], Some("CNI firewall plugin rules")));
    b.set_chain_rules(TABLE, FORWARD, &forward, listing);
    if let Some(l) = listing {
        for r in l.rules_where(PODS, |c| c == comment) {
            b.delete_rule(TABLE, PODS, r.handle);
        }
    }
    for ip in &result.ips {
        for expr in pod_rules(ip.address.addr()) {
            b.add_rule(TABLE, PODS, expr, Some(comment));
        }
    }
    if let Some(br) = bridge {
        let has = |chain: &str, c: &str| listing.is_some_and(|l| l.rules_where(chain, |x| x == c).next().is_some());
        let name = if conf.policy == Policy::Isolated { "isolated" } else { "same-bridge" };
        let c1 = policy_comment(name, br);
        if !has(STAGE1, &c1) {
            b.add_rule(
                TABLE,
                STAGE1,
                vec![ifname_is("iifname", "==", br), ifname_is("oifname", "!=", br), nft::jump(STAGE2)],
                Some(&c1),
            );
            if conf.policy == Policy::Isolated {
                b.add_rule(
                    TABLE,
                    STAGE1,
                    vec![ifname_is("iifname", "==", br), ifname_is("oifname", "==", br), nft::stmt("drop")],
                    Some(&c1),
                );
            }
        }
        let c2 = policy_comment("same-bridge|isolated", br);
        if !has(STAGE2, &c2) {
            b.add_rule(TABLE, STAGE2, vec![ifname_is("oifname", "==", br), nft::stmt("drop")], Some(&c2));
        }
    }
    b
}

fn bridge_name(conf: &Conf, result: &CniResult) -> Result<Option<String>, CniError> {
    if conf.policy == Policy::Open {
        return Ok(None);
    }
    let name = match result.interfaces.first() {
        None => {
            let p = if conf.policy == Policy::Isolated { "isolated" } else { "same-bridge" };
            return Err(CniError::internal(format!(
                "interface needs to be set for ingress policy \"{p}\", make sure to chain \"firewall\" plugin with \"bridge\""
            )));
        }
        Some(i) => i.name.clone(),
    };
    if name.is_empty() {
        return Err(CniError::internal("got empty bridge name"));
    }
    Ok(Some(name))
}

fn add_with(nft: &dyn Nft, conf: &Conf, inv: &Invocation) -> Result<CniResult, CniError> {
    let prev = conf.prev()?.clone();
    let bridge = bridge_name(conf, &prev)?;
    let comment = instance_comment(&inv.conf.name, &inv.ifname, &inv.container_id);
    let listing = nft.list_table(TABLE)?;
    nft::apply_listed(nft, listing, |l| add_batch(conf, l, &prev, &comment, bridge.as_deref()))?;
    Ok(prev)
}

fn del_with(nft: &dyn Nft, inv: &Invocation) -> Result<(), CniError> {
    let Some(listing) = nft.list_rules(TABLE)? else { return Ok(()) };
    let comment = instance_comment(&inv.conf.name, &inv.ifname, &inv.container_id);
    let mut b = Batch::new();
    for r in listing.rules_where(PODS, |c| c == comment) {
        b.delete_rule(TABLE, PODS, r.handle);
    }
    nft.apply(&b)
}

fn check_with(nft: &dyn Nft, conf: &Conf, inv: &Invocation) -> Result<(), CniError> {
    let prev = conf.prev()?;
    if prev.ips.is_empty() {
        return Ok(());
    }
    let listing = nft.list_table(TABLE)?.ok_or_else(|| CniError::internal("table inet cni_firewall not found"))?;
    if !listing.has_chain(&conf.admin) {
        return Err(CniError::internal(format!("expected chain {} not found", conf.admin)));
    }
    let jumps_to = |target: &str| {
        listing
            .rules
            .iter()
            .any(|r| r.chain == FORWARD && r.expr.to_string().contains(&format!("\"target\":\"{target}\"")))
    };
    for target in [conf.admin.as_str(), PODS] {
        if !jumps_to(target) {
            return Err(CniError::internal(format!("expected rule in chain forward jumping to {target} not found")));
        }
    }
    let comment = instance_comment(&inv.conf.name, &inv.ifname, &inv.container_id);
    let found = listing.rules_where(PODS, |c| c == comment).count();
    if found < 2 * prev.ips.len() {
        return Err(CniError::internal(format!(
            "expected {} rules for container {} in chain pods, found {found}",
            2 * prev.ips.len(),
            inv.container_id
        )));
    }
    Ok(())
}

fn gc_with(nft: &dyn Nft, network: &str, valid: &[(String, String)]) -> Result<(), CniError> {
    let Some(listing) = nft.list_rules(TABLE)? else { return Ok(()) };
    let keep: Vec<String> = valid.iter().map(|(id, ifname)| instance_comment(network, ifname, id)).collect();
    let prefix = network_hash(network);
    let mut b = Batch::new();
    for r in listing.rules_where(PODS, |c| c.starts_with(&prefix) && !keep.iter().any(|k| k == c)) {
        b.delete_rule(TABLE, PODS, r.handle);
    }
    nft.apply(&b)
}

// ---- the iptables backend ---------------------------------------------------------------

fn prev_ips(prev: &CniResult) -> Vec<std::net::IpAddr> {
    prev.ips.iter().map(|ip| ip.address.addr()).collect()
}

/// The backend an unset `backend` means for this container's addresses.
fn resolve(backend: Backend, prev: Option<&CniResult>) -> Backend {
    match backend {
        Backend::Auto if prev.is_some_and(|p| iptables::filter_in_use(&prev_ips(p))) => Backend::Iptables,
        Backend::Auto => Backend::Nftables,
        b => b,
    }
}

/// The iptables backend's ADD (`add`), or its CHECK.
fn iptables_rules(conf: &Conf, add: bool) -> Result<CniResult, CniError> {
    let prev = conf.prev()?.clone();
    let bridge = bridge_name(conf, &prev)?;
    let ips = prev_ips(&prev);
    let rules = iptables::Forwarding {
        admin: &conf.admin,
        ips: &ips,
        isolation: bridge.as_deref().map(|b| (b, conf.policy == Policy::Isolated)),
    };
    let done = if add { rules.add() } else { rules.check().map_err(iptables::Failure::from) };
    done.map_err(|e| {
        let mut err = iptables::cni_error("firewall (iptables)", &e.msg);
        if e.unavailable {
            err.details = UNAVAILABLE.into();
        }
        err
    })?;
    Ok(prev)
}

/// Marks an iptables backend error as one where iptables could not be used at all.
const UNAVAILABLE: &str = "iptables unavailable";

fn add_iptables(conf: &Conf) -> Result<CniResult, CniError> {
    iptables_rules(conf, true)
}

fn check_iptables(conf: &Conf) -> Result<(), CniError> {
    iptables_rules(conf, false).map(drop)
}

// ---- the firewalld backend --------------------------------------------------------------

fn fwd_error(msg: String) -> CniError {
    CniError::internal(format!("firewall (firewalld): {msg}"))
}

/// firewalld for a backend that asks for it (started by the bus if need be; an error when it
/// cannot be) or may use it (where it runs); None for the others.
fn firewalld_for(backend: Backend) -> Result<Option<Firewalld>, CniError> {
    match backend {
        Backend::Firewalld => Firewalld::connect_starting().map(Some).map_err(|e| fwd_error(e.to_string())),
        Backend::Auto => Ok(Firewalld::running()),
        _ => Ok(None),
    }
}

fn sources(prev: &CniResult) -> Vec<String> {
    prev_ips(prev).into_iter().map(crate::firewall::host_net).collect()
}

/// Every address into the zone, and, for an `ingressPolicy` other than open, the nftables
/// ruleset with its isolation rules (firewalld has no notion of them; the reference writes them
/// with iptables whatever its backend). On a failure, the addresses this call added come out
/// again.
fn add_firewalld(fw: &mut Firewalld, conf: &Conf, inv: &Invocation) -> Result<CniResult, CniError> {
    let prev = conf.prev()?.clone();
    let mut added = Vec::new();
    let mut out = Ok(());
    for src in sources(&prev) {
        match fw.add_source(&conf.zone, &src) {
            Ok(true) => added.push(src),
            Ok(false) => {}
            Err(e) => {
                out = Err(fwd_error(format!("failed to add the address {src} to {} zone: {e}", conf.zone)));
                break;
            }
        }
    }
    if out.is_ok() && conf.policy != Policy::Open {
        out = add_with(&System, conf, inv).map(drop);
    }
    if out.is_err() {
        for a in &added {
            let _ = fw.remove_source(&conf.zone, a);
        }
    }
    out.map(|()| prev)
}

fn check_firewalld(fw: &mut Firewalld, conf: &Conf, inv: &Invocation) -> Result<(), CniError> {
    let prev = conf.prev()?;
    for src in sources(prev) {
        match fw.has_source(&conf.zone, &src) {
            Ok(true) => {}
            Ok(false) => return Err(fwd_error(format!("the address {src} is not in {} zone", conf.zone))),
            Err(e) => return Err(fwd_error(format!("failed to query the address {src} in {} zone: {e}", conf.zone))),
        }
    }
    if conf.policy != Policy::Open {
        check_with(&System, conf, inv)?;
    }
    Ok(())
}

/// Take the container's addresses out of the zone; an address bound to another zone by now (or
/// a zone since removed) is left as it is, with a warning.
fn del_firewalld(fw: &mut Firewalld, zone: &str, ips: &[IpAddr]) -> Result<(), CniError> {
    for src in ips.iter().map(|ip| crate::firewall::host_net(*ip)) {
        match fw.remove_source(zone, &src) {
            Ok(None) => {}
            Ok(Some(why)) => crate::logger::warn(format_args!(
                "firewall (firewalld): the address {src} was not in {zone} zone, left as it is: {why}"
            )),
            Err(e) => {
                return Err(fwd_error(format!("failed to remove the address {src} from {zone} zone: {e}")));
            }
        }
    }
    Ok(())
}

// ---- records for GC ---------------------------------------------------------------------
//
// The iptables layout and firewalld's sources name addresses, not attachments (as the
// reference's do), so GC could not tell which are stale. ADD therefore notes, per network and
// attachment, the addresses it gave rules or sources to; DEL removes the note, and GC removes
// the rules and sources of the notes whose attachment is no longer valid.

const RECORDS: &str = "/run/cni/firewall";

#[derive(Serialize, Deserialize)]
struct Record {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
    ips: Vec<IpAddr>,
    /// The firewalld zone of the sources; none for iptables rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    zone: Option<String>,
}

fn record_path(network: &str, container_id: &str, ifname: &str) -> PathBuf {
    let key = crate::util::sha512::hex(format!("{container_id}\n{ifname}").as_bytes());
    PathBuf::from(RECORDS).join(network).join(&key[..32])
}

/// Note an ADD's addresses at `path`, the attachment's `record_path` (best effort: without the
/// note only GC misses them). Written whole under a temp name, then renamed into place, so that
/// GC never reads half a note; a network directory removed meanwhile (its last note's DEL) is
/// made again.
fn record(path: &std::path::Path, inv: &Invocation, ips: Vec<IpAddr>, zone: Option<&str>) {
    if ips.is_empty() {
        return;
    }
    let r = Record {
        container_id: inv.container_id.clone(),
        ifname: inv.ifname.clone(),
        ips,
        zone: zone.map(str::to_string),
    };
    write_note(path, &r);
}

fn write_note(path: &std::path::Path, r: &Record) {
    if let Err(e) = records::write(path, crate::cni::json::to_string_pretty(r).as_bytes()) {
        crate::logger::warn(format_args!("firewall: could not note {} for GC: {e}", path.display()));
    }
}

fn read_record(path: &std::path::Path) -> Option<Record> {
    let data = std::fs::read(path).ok()?;
    crate::cni::json::from_slice(&data).ok()
}

// A GC that runs while an ADD of an attachment not yet in the runtime's valid list is between
// its note and its rules takes the note for a stale one: the spec has runtimes not GC a
// network's attachments while they are being added.

/// The notes in `dir` (temp files and unreadable ones skipped), with their paths.
fn records_in(dir: &std::path::Path) -> Vec<(PathBuf, Record)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| read_record(&e.path()).map(|r| (e.path(), r)))
        .collect()
}

/// Remove the rules and sources of this network's noted attachments that are not in `valid`,
/// but for addresses another note holds: a valid attachment's of this network (an address
/// freed and given again), or any of another network's (the rules and sources name only the
/// address, and two networks may hand out the same one).
fn gc_records(network: &str, valid: &[(String, String)]) -> Result<(), CniError> {
    let dir = PathBuf::from(RECORDS).join(network);
    let mut stale = Vec::new();
    let mut kept = Vec::new();
    for (path, r) in records_in(&dir) {
        if valid.iter().any(|(id, ifname)| *id == r.container_id && *ifname == r.ifname) {
            kept.extend(r.ips);
        } else {
            stale.push((path, r));
        }
    }
    if stale.is_empty() {
        return Ok(());
    }
    for other in records::other_networks(RECORDS, network) {
        kept.extend(records_in(&other).into_iter().flat_map(|(_, r)| r.ips));
    }
    let mut first_err = None;
    for (path, r) in stale {
        let ips: Vec<IpAddr> = r.ips.into_iter().filter(|ip| !kept.contains(ip)).collect();
        let done = match &r.zone {
            None => iptables::teardown_firewall(&ips, iptables::Removal::Ours)
                .map_err(|e| iptables::cni_error("firewall (iptables)", &e)),
            Some(zone) => remove_sources(zone, &ips),
        };
        match done {
            Ok(()) => {
                let _ = std::fs::remove_file(&path);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    let _ = std::fs::remove_dir(&dir);
    first_err.map_or(Ok(()), Err)
}

/// Take `ips` out of firewalld's `zone`. firewalld not running is done (its runtime sources went
/// when it stopped); another error of the bus is one, and the note stays for the next GC.
fn remove_sources(zone: &str, ips: &[IpAddr]) -> Result<(), CniError> {
    match Firewalld::connect() {
        Ok(mut fw) => del_firewalld(&mut fw, zone, ips),
        Err(crate::dbus::DbusError::NotRunning(_)) => Ok(()),
        Err(e) => Err(fwd_error(format!("firewalld: {e}"))),
    }
}

// ---- verbs --------------------------------------------------------------------------------

fn add(inv: &Invocation) -> Result<CniResult, CniError> {
    let conf = load(inv)?;
    let backend = conf.backend.clone()?;
    // The note of the addresses goes down before the rules or sources (a plugin killed between
    // the two leaves nothing GC cannot find), and goes again when this ADD leaves none of them;
    // a note an earlier ADD of the attachment left stays.
    let note_path = record_path(&inv.conf.name, &inv.container_id, &inv.ifname);
    let earlier = read_record(&note_path);
    let ips = conf.prev.as_ref().map(prev_ips).unwrap_or_default();
    let unnoted = |r: Result<CniResult, CniError>| {
        if r.is_err() {
            match &earlier {
                Some(note) => write_note(&note_path, note),
                None => records::remove(&note_path),
            }
        }
        r
    };
    if let Some(mut fw) = firewalld_for(backend)? {
        record(&note_path, inv, ips, Some(&conf.zone));
        return unnoted(add_firewalld(&mut fw, &conf, inv));
    }
    match (backend, resolve(backend, conf.prev.as_ref())) {
        (Backend::Iptables, _) => {
            record(&note_path, inv, ips, None);
            unnoted(add_iptables(&conf))
        }
        // Chosen for the node, not by the config: where iptables cannot be used at all (no
        // program for a family of the pod, or a table it refuses to list, one nft wrote under
        // iptables' names, say) the pod gets the nftables rules; a write that failed or timed
        // out is an error.
        (_, Backend::Iptables) => {
            record(&note_path, inv, ips, None);
            unnoted(add_iptables(&conf)).or_else(|e| {
                if e.details != UNAVAILABLE {
                    return Err(e);
                }
                crate::logger::warn(format_args!("{}; using the nftables backend", e.msg));
                add_with(&System, &conf, inv)
            })
        }
        _ => add_with(&System, &conf, inv),
    }
}

fn del(inv: &Invocation) -> Result<(), CniError> {
    let note_path = record_path(&inv.conf.name, &inv.container_id, &inv.ifname);
    del_rules(inv, read_record(&note_path))?;
    records::remove(&note_path);
    Ok(())
}

/// DEL's removals. Without prevResult (a runtime that lost its cache may send none), the
/// addresses come from ADD's note; a note of iptables rules makes their removal a must.
fn del_rules(inv: &Invocation, note: Option<Record>) -> Result<(), CniError> {
    let mut conf = load(inv)?;
    let noted_iptables = note.as_ref().is_some_and(|n| n.zone.is_none());
    // The addresses: prevResult's, else the note's (a runtime that lost its cache sends no
    // prevResult; a note can be stale, left by an ADD whose DEL the reference made, and its
    // addresses given since to other pods). The note's zone, the one ADD used, is emptied too
    // where the config now names another, the config's first.
    let mut noted_zone = None;
    if let Some(n) = note {
        let prev = conf.prev.get_or_insert_with(CniResult::default);
        if prev.ips.is_empty() {
            prev.ips =
                n.ips.into_iter().map(|ip| IpConfig { interface: None, address: ip.into(), gateway: None }).collect();
        }
        noted_zone = n.zone.filter(|z| *z != conf.zone);
    }
    // Sources in firewalld's zone, where it runs (for a config that asks for it, or may use
    // it, or a zone ADD's note names); a failure other than a source already gone makes the
    // runtime retry.
    let config_zone = matches!(conf.backend, Ok(Backend::Firewalld | Backend::Auto));
    if let Some(prev) = &conf.prev
        && (config_zone || noted_zone.is_some())
        && let Some(mut fw) = Firewalld::running()
    {
        let ips = prev_ips(prev);
        if config_zone {
            del_firewalld(&mut fw, &conf.zone, &ips)?;
        }
        if let Some(zone) = &noted_zone {
            del_firewalld(&mut fw, zone, &ips)?;
        }
        // Rules of the other backends only where the note says ADD wrote iptables rules.
        if matches!(conf.backend, Ok(Backend::Firewalld)) && !noted_iptables {
            return del_with(&System, inv);
        }
    }
    // A pod the reference set up before the node switched has its rules in iptables, named by
    // its addresses.
    if let Some(prev) = &conf.prev {
        // Rules of the iptables backend must go (an error makes the runtime retry); the
        // reference's, on a node that no longer uses iptables, are removed best effort.
        let how = match conf.backend.as_ref().map(|b| resolve(*b, Some(prev))) {
            Ok(Backend::Iptables) => iptables::Removal::Ours,
            _ if noted_iptables => iptables::Removal::Ours,
            _ => iptables::Removal::Leftovers,
        };
        iptables::teardown_firewall(&prev_ips(prev), how)
            .map_err(|e| iptables::cni_error("firewall (iptables)", &e))?;
    }
    del_with(&System, inv)
}

fn check(inv: &Invocation) -> Result<(), CniError> {
    let conf = load(inv)?;
    let backend = conf.backend.clone()?;
    if let Some(mut fw) = firewalld_for(backend)? {
        return match check_firewalld(&mut fw, &conf, inv) {
            Err(e) if backend == Backend::Auto => {
                // Unset: a pod set up before firewalld ran has the other backends' rules.
                check_other(&conf, inv, Backend::Auto).map_err(|_| e)
            }
            done => done,
        };
    }
    check_other(&conf, inv, backend)
}

fn check_other(conf: &Conf, inv: &Invocation, backend: Backend) -> Result<(), CniError> {
    match (backend, resolve(backend, conf.prev.as_ref())) {
        (Backend::Iptables, _) => check_iptables(conf),
        // Unset: the rules of either backend will do (the node may have started using iptables
        // after the ADD).
        (_, Backend::Iptables) => check_iptables(conf).or_else(|e| check_with(&System, conf, inv).map_err(|_| e)),
        _ => check_with(&System, conf, inv),
    }
}

/// A backend asked for must be usable: the config's own, and iptables installed for it.
fn status(inv: &Invocation) -> Result<(), CniError> {
    match load(inv)?.backend? {
        Backend::Iptables => iptables::status("firewall"),
        // Running: a stopped one would be started by ADD where the bus can, but whether systemd
        // will (an enabled unit, not a disabled or masked one) shows only by trying.
        Backend::Firewalld => Firewalld::connect().map(drop).map_err(|e| {
            CniError::new(crate::cni::error::code::NOT_AVAILABLE, format!("firewall: backend \"firewalld\": {e}"))
        }),
        _ => Ok(()),
    }
}

fn gc(inv: &Invocation) -> Result<(), CniError> {
    let _conf = load(inv)?;
    match crate::cni::gc::valid_attachments(&inv.stdin)? {
        Some(valid) => gc_with(&System, &inv.conf.name, &valid).and(gc_records(&inv.conf.name, &valid)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::result::{Interface, IpConfig};
    use crate::firewall::nft::Fake;

    fn result() -> CniResult {
        CniResult {
            interfaces: vec![Interface { name: "cni0".into(), ..Default::default() }],
            ips: vec![
                IpConfig { interface: None, address: "10.88.0.5/16".parse().unwrap(), gateway: None },
                IpConfig { interface: None, address: "fd88::5/64".parse().unwrap(), gateway: None },
            ],
            ..Default::default()
        }
    }

    fn conf(policy: Policy) -> Conf {
        Conf {
            admin: DEFAULT_ADMIN.into(),
            policy,
            prev: Some(result()),
            backend: Ok(Backend::Nftables),
            zone: "trusted".into(),
        }
    }

    fn rule(chain: &str, expr: Value, comment: Option<&str>) -> Value {
        let mut r = json!({"family": "inet", "table": "cni_firewall", "chain": chain, "expr": expr});
        if let Some(c) = comment {
            r["comment"] = json!(c);
        }
        json!({"add": {"rule": r}})
    }

    #[test]
    fn add_golden_isolated() {
        let b = add_batch(&conf(Policy::Isolated), None, &result(), "C", Some("cni0"));
        let cmds: Value = serde_json::from_str(&b.to_json()).unwrap();
        let chain = |name: &str| json!({"add": {"chain": {"family": "inet", "table": "cni_firewall", "name": name}}});
        let ct = json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}});
        let m = |proto: &str, field: &str, ip: &str| json!({"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": field}}, "right": ip}});
        let ifm = |dir: &str, op: &str| json!({"match": {"op": op, "left": {"meta": {"key": dir}}, "right": "cni0"}});
        let c1 = "CNI firewall plugin rules (ingressPolicy: isolated, bridge: cni0)";
        let want = json!([
            {"add": {"table": {"family": "inet", "name": "cni_firewall", "comment": "CNI firewall plugin rules"}}},
            chain("CNI-ADMIN"),
            chain("pods"),
            chain("isolation_stage_1"),
            chain("isolation_stage_2"),
            {"add": {"chain": {"family": "inet", "table": "cni_firewall", "name": "forward", "type": "filter",
                "hook": "forward", "prio": 0, "policy": "accept"}}},
            {"flush": {"chain": {"family": "inet", "table": "cni_firewall", "name": "forward"}}},
            rule("forward", json!([{"jump": {"target": "isolation_stage_1"}}]), None),
            rule("forward", json!([{"jump": {"target": "CNI-ADMIN"}}]), Some("CNI firewall plugin admin overrides")),
            rule("forward", json!([{"jump": {"target": "pods"}}]), Some("CNI firewall plugin rules")),
            rule("pods", json!([m("ip", "daddr", "10.88.0.5"), ct.clone(), {"accept": null}]), Some("C")),
            rule("pods", json!([m("ip", "saddr", "10.88.0.5"), {"accept": null}]), Some("C")),
            rule("pods", json!([m("ip6", "daddr", "fd88::5"), ct, {"accept": null}]), Some("C")),
            rule("pods", json!([m("ip6", "saddr", "fd88::5"), {"accept": null}]), Some("C")),
            rule("isolation_stage_1", json!([ifm("iifname", "=="), ifm("oifname", "!="),
                {"jump": {"target": "isolation_stage_2"}}]), Some(c1)),
            rule("isolation_stage_1", json!([ifm("iifname", "=="), ifm("oifname", "=="), {"drop": null}]), Some(c1)),
            rule("isolation_stage_2", json!([ifm("oifname", "=="), {"drop": null}]),
                Some("CNI firewall plugin rules (ingressPolicy: same-bridge|isolated, bridge: cni0)")),
        ]);
        assert_eq!(cmds["nftables"], want);
    }

    #[test]
    fn isolation_rules_are_added_once_and_stale_pod_rules_replaced() {
        let listing = Listing::parse(
            &json!({"nftables": [
                {"rule": {"chain": "isolation_stage_1", "handle": 2,
                    "comment": "CNI firewall plugin rules (ingressPolicy: same-bridge, bridge: cni0)", "expr": []}},
                {"rule": {"chain": "isolation_stage_2", "handle": 3,
                    "comment": "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated, bridge: cni0)", "expr": []}},
                {"rule": {"chain": "pods", "handle": 7, "comment": "C", "expr": []}},
                {"rule": {"chain": "pods", "handle": 8, "comment": "D", "expr": []}},
            ]})
            .to_string(),
        )
        .unwrap();
        let b = add_batch(&conf(Policy::SameBridge), Some(&listing), &result(), "C", Some("cni0"));
        let cmds: Value = serde_json::from_str(&b.to_json()).unwrap();
        let cmds = cmds["nftables"].as_array().unwrap();
        assert!(!cmds.iter().any(|c| c["add"]["rule"]["chain"] == "isolation_stage_1"));
        assert!(!cmds.iter().any(|c| c["add"]["rule"]["chain"] == "isolation_stage_2"));
        let deletes: Vec<_> = cmds.iter().filter_map(|c| c["delete"]["rule"]["handle"].as_u64()).collect();
        assert_eq!(deletes, vec![7]);
    }

    #[test]
    fn admin_chains_of_other_networks_are_kept() {
        let jump = |t: &str| {
            json!({"rule": {"family": "inet", "table": "cni_firewall", "chain": "forward",
            "handle": 1, "expr": [{"jump": {"target": t}}]}})
        };
        let listing = Listing::parse(
            &json!({"nftables": [jump("isolation_stage_1"), jump("OTHER-ADMIN"), jump("pods")]}).to_string(),
        )
        .unwrap();
        assert_eq!(admin_chains(Some(&listing), "CNI-ADMIN"), ["OTHER-ADMIN", "CNI-ADMIN"]);
        assert_eq!(admin_chains(Some(&listing), "OTHER-ADMIN"), ["OTHER-ADMIN"]);
        assert_eq!(admin_chains(None, "CNI-ADMIN"), ["CNI-ADMIN"]);
        let text = add_batch(&conf(Policy::Open), Some(&listing), &result(), "C", None).to_json();
        let (other, ours, pods) = (
            text.find(r#""target":"OTHER-ADMIN""#).unwrap(),
            text.find(r#""target":"CNI-ADMIN""#).unwrap(),
            text.find(r#""target":"pods""#).unwrap(),
        );
        assert!(other < ours && ours < pods, "{text}");
    }

    #[test]
    fn open_policy_needs_no_bridge_and_gc_keeps_valid() {
        let c = conf(Policy::Open);
        assert_eq!(bridge_name(&c, &CniResult::default()).unwrap(), None);
        let c = conf(Policy::Isolated);
        assert!(bridge_name(&c, &CniResult::default()).unwrap_err().msg.contains("chain \"firewall\" plugin"));

        let keep = instance_comment("n", "eth0", "a");
        let stale = instance_comment("n", "eth0", "b");
        let foreign = instance_comment("m", "eth0", "b");
        let listing = json!({"nftables": [
            {"rule": {"chain": "pods", "handle": 1, "comment": keep, "expr": []}},
            {"rule": {"chain": "pods", "handle": 2, "comment": stale, "expr": []}},
            {"rule": {"chain": "pods", "handle": 3, "comment": foreign, "expr": []}},
        ]});
        let fake = Fake::with_table(TABLE, &listing.to_string());
        gc_with(&fake, "n", &[("a".into(), "eth0".into())]).unwrap();
        let handles: Vec<_> = fake.commands().iter().map(|c| c["delete"]["rule"]["handle"].clone()).collect();
        assert_eq!(handles, vec![json!(2)]);
    }
}
