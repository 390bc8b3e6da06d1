//! The iptables layouts of the reference plugins.
//!
//! cnibox writes nftables rules unless a config (or, for firewall, the node) asks for
//! iptables; a node switched over from the reference plugins still holds their per-container
//! chains in the `nat` table, and the firewall plugin's per-address rules in the `filter` table:
//!
//! ```text
//! ipMasq:   POSTROUTING       -s <ip> ... -j CNI-<24 hex>         (hash of network + container ID)
//! portmap:  CNI-HOSTPORT-DNAT ... -j CNI-DN-<21 hex>
//!           CNI-HOSTPORT-SNAT ... -j CNI-SN-<21 hex>              (from old versions)
//! firewall: CNI-FORWARD       -d <ip>/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
//!           CNI-FORWARD       -s <ip>/32 -j ACCEPT                (/128 for IPv6)
//! ```
//!
//! Each layout is also written, by the iptables backends: firewall's (`Forwarding`: only
//! iptables rules open a forward path that an iptables FORWARD chain would drop), ipMasq's with
//! `ipMasqBackend: "iptables"` (`setup_masq`) and portmap's (`HostPorts`). Writes add what a
//! table lacks in one `iptables-restore --noflush` per family, under a lock of our own.
//!
//! DEL (and GC, where the chain name can be derived) removes them with the `iptables` and
//! `ip6tables` programs when they are installed, all deletions of a table in one restore
//! (`Removal`): the reference's leftovers best effort (failures only logged; a host without
//! iptables or without the chain sees nothing at all), rules an iptables backend wrote with
//! every failure reported.

mod hostport;
pub use hostport::{HostPorts, PortMap};

use super::host_net;
use crate::util::sha512;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const NAT: &str = "nat";
const FILTER: &str = "filter";
/// The reference firewall's chain of per-address rules.
const FORWARD_CHAIN: &str = "CNI-FORWARD";
const MAX_CHAIN_LEN: usize = 28;

/// The reference's per-container chain name: `CNI-<prefix>` filled up to 28 characters with
/// the hex SHA-512 of network name + container ID.
pub fn chain_name(network: &str, container_id: &str, prefix: &str) -> String {
    let mut s = format!("CNI-{prefix}{}", sha512::hex(format!("{network}{container_id}").as_bytes()));
    s.truncate(MAX_CHAIN_LEN);
    s
}

/// The ipMasq chain of one container.
pub fn masq_chain(network: &str, container_id: &str) -> String {
    chain_name(network, container_id, "")
}

/// How a removal goes: `Leftovers` (what the reference may have left) is best effort, waits
/// for the xtables lock 5 s and only logs failures; `Ours` (a backend cnibox wrote the rules
/// with) waits as long as a write does and reports the first failure, so that the runtime
/// retries a DEL that left a DNAT rule behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Leftovers,
    Ours,
}

impl Removal {
    fn wait(self) -> &'static str {
        if self == Removal::Ours { WAIT_WRITE } else { WAIT_CLEANUP }
    }
}

/// Seconds an iptables command waits for the xtables lock: writes (and DEL of rules written
/// here) wait long, the best-effort clean-up of the reference's leftovers briefly.
const WAIT_WRITE: &str = "60";
const WAIT_CLEANUP: &str = "5";

/// Remove the ipMasq chain of one container (IPv4 and IPv6).
pub fn teardown_masq(network: &str, container_id: &str, how: Removal) -> Result<(), String> {
    remove_chains(&[(&masq_chain(network, container_id), "POSTROUTING")], how)
}

/// Remove the portmap chains of one container (IPv4 and IPv6).
pub fn teardown_portmap(network: &str, container_id: &str, how: Removal) -> Result<(), String> {
    let (dnat, snat) = (chain_name(network, container_id, "DN-"), chain_name(network, container_id, "SN-"));
    remove_chains(&[(&dnat, "CNI-HOSTPORT-DNAT"), (&snat, "CNI-HOSTPORT-SNAT")], how)
}

/// The first failure, if `how` reports failures (all are logged).
fn note(how: Removal, first: &mut Option<String>, r: Result<String, String>) {
    if let Err(e) = r {
        log::debug!("{e}");
        if how == Removal::Ours && first.is_none() {
            *first = Some(e);
        }
    }
}

/// Remove each (chain, the chain that jumps to it) of the nat table, with each program that
/// may hold one of the chains.
fn remove_chains(chains: &[(&str, &str)], how: Removal) -> Result<(), String> {
    let names: Vec<&str> = chains.iter().map(|(c, _)| *c).collect();
    let mut first = None;
    for prog in programs(NAT, Some(&names)) {
        match Listing::read_checked(&prog, NAT, how.wait()) {
            Ok(nat) => {
                let mut cmds = Vec::new();
                for (chain, parent) in chains {
                    cmds.extend(chain_removal(&nat, chain, parent));
                }
                run_batch(&prog, NAT, &cmds, how, &mut first);
            }
            Err(e) => note(how, &mut first, Err(e)),
        }
    }
    first.map_or(Ok(()), Err)
}

/// Remove the firewall's rules for `ips` (the addresses of one container, from its prevResult,
/// as the reference's DEL finds them): its rules name addresses, not containers.
pub fn teardown_firewall(ips: &[IpAddr], how: Removal) -> Result<(), String> {
    if ips.is_empty() {
        return Ok(());
    }
    let hosts: Vec<String> = ips.iter().copied().map(host_net).collect();
    let mut first = None;
    for prog in programs(FILTER, Some(&[FORWARD_CHAIN])) {
        let filter = match Listing::read_checked(&prog, FILTER, how.wait()) {
            Ok(f) => f,
            Err(e) => {
                note(how, &mut first, Err(e));
                continue;
            }
        };
        if !filter.has_chain(FORWARD_CHAIN) {
            continue;
        }
        let mut cmds: Vec<Vec<String>> = Vec::new();
        for rule in filter.rules(FORWARD_CHAIN) {
            let args = split(rule);
            let words: Vec<&str> = args.iter().map(String::as_str).collect();
            let mine = match words.as_slice() {
                [_, "-d", host, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"]
                | [_, "-s", host, "-j", "ACCEPT"] => hosts.iter().any(|h| h == host),
                _ => false,
            };
            if mine {
                cmds.push(std::iter::once("-D").chain(words).map(str::to_string).collect());
            }
        }
        run_batch(&prog, FILTER, &cmds, how, &mut first);
    }
    first.map_or(Ok(()), Err)
}

/// GC of the reference's ipMasq chains of `network`: the container ID is read back from the
/// comment of each jump in POSTROUTING (`name: "<net>" id: "<cid>"`) and trusted only when it
/// hashes to the chain jumped to.
pub fn gc_masq(network: &str, valid: &[(String, String)]) {
    for prog in programs(NAT, None) {
        let Some(nat) = Listing::read(&prog, NAT) else { continue };
        let mut stale = Vec::new();
        for rule in nat.rules("POSTROUTING") {
            let args = split(rule);
            let (Some(target), Some(comment)) = (arg_after(&args, "-j"), arg_after(&args, "--comment")) else {
                continue;
            };
            let Some(id) = masq_comment_id(network, comment) else { continue };
            if masq_chain(network, &id) == target && !valid.iter().any(|(v, _)| *v == id) && !stale.contains(&id) {
                stale.push(id);
            }
        }
        let mut cmds = Vec::new();
        for id in stale {
            cmds.extend(chain_removal(&nat, &masq_chain(network, &id), "POSTROUTING"));
        }
        run_batch(&prog, NAT, &cmds, Removal::Leftovers, &mut None);
    }
}

/// The container ID of a reference ipMasq comment of `network`.
fn masq_comment_id(network: &str, comment: &str) -> Option<String> {
    let rest = comment.strip_prefix(&format!("name: {} id: ", go_quote(network)))?;
    let inner = rest.strip_prefix('"')?.strip_suffix('"')?;
    let id = inner.replace("\\\"", "\"").replace("\\\\", "\\");
    (go_quote(&id) == rest).then_some(id)
}

/// Go's `%q` for the plain strings network names and container IDs are.
fn go_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

const DIRS: &[&str] = &["/usr/sbin", "/sbin"];

/// `name` at its usual places, then through PATH.
fn find(name: &str) -> Option<PathBuf> {
    let fixed = DIRS.iter().map(|d| PathBuf::from(d).join(name));
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect::<Vec<_>>())
        .unwrap_or_default();
    fixed.chain(from_path).find(|p| p.is_file())
}

/// The restore program of the same installation as `prog` (`iptables-restore` beside
/// `iptables`): one found elsewhere could speak to the other kernel interface (legacy or nft).
fn restore_of(prog: &std::path::Path) -> Option<PathBuf> {
    let name = prog.file_name()?.to_str()?;
    Some(prog.with_file_name(format!("{name}-restore"))).filter(|r| r.is_file())
}

/// The installed `iptables` and `ip6tables` that may hold what is looked for in `table`: where
/// the table does not exist, nothing of the reference's can be left, and no iptables process
/// (each a few milliseconds of CPU) is started. With `chains` given, a table iptables keeps in
/// nf_tables (iptables-nft) must also hold one of them, which is seen over netlink: no process
/// for every DEL on a node where other software (kube-proxy, Docker) uses the table. Tables of
/// the legacy iptables cannot be seen that way, so their program is always kept; so is one whose
/// nf_tables listing fails (it tells nothing).
fn programs(table: &str, chains: Option<&[&str]>) -> Vec<PathBuf> {
    static NFT_TABLES: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    let legacy = |path: &str| std::fs::read_to_string(path).is_ok_and(|t| t.lines().any(|l| l == table));
    let nft_table = |family: &str| {
        NFT_TABLES.get_or_init(crate::firewall::nft::tables).iter().any(|(f, n)| f == family && n == table)
    };
    let nft_chain = |family: &str| {
        chains.is_none_or(|chains| {
            crate::netlink::nftables::Session::open()
                .and_then(|mut s| s.chains(family, table))
                .map_or(true, |have| have.iter().any(|c| chains.contains(&c.as_str())))
        })
    };
    [("iptables", "/proc/net/ip_tables_names", "ip"), ("ip6tables", "/proc/net/ip6_tables_names", "ip6")]
        .into_iter()
        .filter_map(|(name, path, family)| {
            let in_legacy = legacy(path);
            if !in_legacy && !nft_table(family) {
                return None;
            }
            let prog = find(name)?;
            (in_legacy || nft_chain(family)).then_some(prog)
        })
        .collect()
}

/// A backend failure as a CNI error: one where the xtables lock stayed held (another program
/// rewriting its rules the whole wait: iptables's "Another app is currently holding the xtables
/// lock. Stopped waiting after 60s.", not its progress lines while it waits) is code 11, try
/// again later.
pub fn cni_error(context: &str, msg: &str) -> crate::cni::CniError {
    use crate::cni::error::code;
    let held = msg.contains("xtables lock") && msg.contains("Stopped waiting after");
    let code = if held { code::TRY_AGAIN_LATER } else { code::INTERNAL };
    crate::cni::CniError::new(code, format!("{context}: {msg}"))
}

/// Run one iptables command on `table`, waiting `wait` seconds at most for the xtables lock:
/// its stdout, or an error naming the command.
fn run_checked(prog: &PathBuf, table: &str, args: &[&str], wait: &str) -> Result<String, String> {
    let out = Command::new(prog)
        .args(["-w", wait, "-t", table])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", prog.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} -t {table} {}: {}",
            prog.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A table as `iptables -S` prints it, read once per program and call.
struct Listing {
    lines: Vec<String>,
}

impl Listing {
    fn read(prog: &PathBuf, table: &str) -> Option<Listing> {
        Listing::read_checked(prog, table, WAIT_CLEANUP).map_err(|e| log::debug!("{e}")).ok()
    }

    fn read_checked(prog: &PathBuf, table: &str, wait: &str) -> Result<Listing, String> {
        Ok(Listing { lines: run_checked(prog, table, &["-S"], wait)?.lines().map(str::to_string).collect() })
    }

    /// `table` as the installed program `name` lists it, for a CHECK.
    fn of(name: &str, table: &str) -> Result<Listing, String> {
        let prog = find(name).ok_or_else(|| format!("{name} not found"))?;
        Listing::read_checked(&prog, table, WAIT_WRITE)
    }

    /// Whether `chain` holds the rule `words` (as `iptables -S` prints them after the chain).
    fn has_rule(&self, chain: &str, words: &[String]) -> bool {
        self.rules(chain).any(|r| split(r).get(1..) == Some(words))
    }

    fn has_chain(&self, chain: &str) -> bool {
        self.lines.iter().any(|l| l.strip_prefix("-N ") == Some(chain))
    }

    /// The rules of `chain`, without the leading `-A`.
    fn rules<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.lines.iter().filter_map(move |l| {
            let rest = l.strip_prefix("-A ")?;
            rest.strip_prefix(chain)?.starts_with(' ').then_some(rest)
        })
    }
}

/// The commands that delete the jumps from `parent` to `chain`, then flush and delete `chain`
/// (none when `listing` has no such chain).
fn chain_removal(listing: &Listing, chain: &str, parent: &str) -> Vec<Vec<String>> {
    if !listing.has_chain(chain) {
        return Vec::new();
    }
    let mut cmds: Vec<Vec<String>> = jumps_to(listing, chain, parent)
        .into_iter()
        .map(|j| std::iter::once("-D".to_string()).chain(j).collect())
        .collect();
    cmds.push(vec!["-F".into(), chain.into()]);
    cmds.push(vec!["-X".into(), chain.into()]);
    cmds
}

/// The rules of `parent` that jump (`-j`) or go (`-g`) to `chain`, as words after `-A`.
fn jumps_to(listing: &Listing, chain: &str, parent: &str) -> Vec<Vec<String>> {
    listing
        .rules(parent)
        .map(split)
        .filter(|args| arg_after(args, "-j") == Some(chain) || arg_after(args, "-g") == Some(chain))
        .collect()
}

/// `lines` as the input of one `iptables-restore` transaction on `table`.
fn restore_text(table: &str, lines: &[String]) -> String {
    format!("*{table}\n{}\nCOMMIT\n", lines.join("\n"))
}

/// Run `cmds` on `table` as one `iptables-restore --noflush` (one transaction: with nf_tables
/// every commit that deletes waits for the kernel to free what it deleted, and one command at a
/// time would wait once per rule); where that fails (a rule gone meanwhile fails the whole
/// batch) or there is no restore program, one command at a time.
fn run_batch(prog: &PathBuf, table: &str, cmds: &[Vec<String>], how: Removal, first: &mut Option<String>) {
    if cmds.is_empty() {
        return;
    }
    if let Some(restore) = restore_of(prog) {
        let lines: Vec<String> = cmds.iter().map(|c| join_rule(c)).collect();
        let input = restore_text(table, &lines);
        match run_restore(&restore, &input, how.wait()) {
            Ok(()) => return,
            // Waiting for the lock once more per command would only multiply the wait.
            Err(e) if e.contains("xtables lock") => return note(how, first, Err(e)),
            Err(e) => log::debug!("{e}"),
        }
    }
    for c in cmds {
        let args: Vec<&str> = c.iter().map(String::as_str).collect();
        note(how, first, run_checked(prog, table, &args, how.wait()));
    }
}

// ---- the firewall plugin's iptables backend ---------------------------------------------------

const FW_COMMENT: &str = "CNI firewall plugin rules";
const ADMIN_COMMENT: &str = "CNI firewall plugin admin overrides";
const STAGE1: &str = "CNI-ISOLATION-STAGE-1";
const STAGE2: &str = "CNI-ISOLATION-STAGE-2";
const ISOLATION_COMMENT: &str = "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)";
/// The same rules as releases before 1.2 comment them (they knew only same-bridge).
const OLD_ISOLATION_COMMENT: &str = "CNI firewall plugin rules (ingressPolicy: same-bridge)";
/// Held around each read-then-write of the filter table, so that concurrent ADDs neither
/// insert a jump twice nor each declare (which flushes) a chain the other just filled.
const LOCK: &str = "/run/cnibox/iptables.lock";

/// What the reference firewall's iptables backend writes for one container, in the `filter`
/// table of each family its addresses use:
///
/// ```text
/// FORWARD      -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD          (first)
/// CNI-FORWARD  -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN  (first)
/// CNI-FORWARD  -d <ip>/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
/// CNI-FORWARD  -s <ip>/32 -j ACCEPT
/// ```
///
/// and, for ingressPolicy same-bridge or isolated, `CNI-ISOLATION-STAGE-1` (jumped to first,
/// before `CNI-FORWARD`) and `-STAGE-2`, with the bridge's rules ahead of a final RETURN. Rules
/// are written in the order `iptables -S` prints them, so an existing one is recognised.
pub struct Forwarding<'a> {
    /// The operators' chain (`iptablesAdminChainName`): created when missing, never changed.
    pub admin: &'a str,
    pub ips: &'a [IpAddr],
    /// The bridge, and whether traffic within it is dropped too (isolated).
    pub isolation: Option<(&'a str, bool)>,
}

/// One rule: its chain, where it goes, and its words after the chain.
struct Rule<'a> {
    chain: &'a str,
    first: bool,
    words: Vec<String>,
}

impl Rule<'_> {
    /// In `listing`, also as an older release comments it.
    fn is_in(&self, listing: &Listing) -> bool {
        let old = |w: &String| if w == ISOLATION_COMMENT { OLD_ISOLATION_COMMENT.to_string() } else { w.clone() };
        listing.has_rule(self.chain, &self.words)
            || (self.words.iter().any(|w| w == ISOLATION_COMMENT)
                && listing.has_rule(self.chain, &self.words.iter().map(old).collect::<Vec<_>>()))
    }
}

/// What one family's table should hold: chains that must exist, chains rebuilt from scratch
/// (each with the chain that jumps to it: those jumps are deleted and the chain flushed, so a
/// container's chain never keeps rules of an earlier ADD), and rules, added where missing (and
/// always in, or into, a rebuilt chain).
struct Layout<'a> {
    chains: Vec<&'a str>,
    reset: Vec<(&'a str, &'a str)>,
    rules: Vec<Rule<'a>>,
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

fn commented(pre: &[&str], comment: &str, target: &str) -> Vec<String> {
    let mut v = words(pre);
    v.extend(words(&["-m", "comment", "--comment", comment, "-j", target]));
    v
}

impl<'a> Forwarding<'a> {
    fn hosts(&self, v4: bool) -> Vec<String> {
        self.ips.iter().copied().filter(|ip| ip.is_ipv4() == v4).map(host_net).collect()
    }

    /// The chains, then the rules, in the order the reference creates them (`None` for a
    /// family without addresses: nothing is written there).
    fn layout(&self, v4: bool) -> Option<Layout<'a>> {
        let hosts = self.hosts(v4);
        if hosts.is_empty() {
            return None;
        }
        let admin = self.admin;
        let mut chains = vec![FORWARD_CHAIN, admin];
        let mut rules = vec![
            Rule { chain: "FORWARD", first: true, words: commented(&[], FW_COMMENT, FORWARD_CHAIN) },
            Rule { chain: FORWARD_CHAIN, first: true, words: commented(&[], ADMIN_COMMENT, admin) },
        ];
        for h in &hosts {
            let established = ["-d", h, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"];
            rules.push(Rule { chain: FORWARD_CHAIN, first: false, words: words(&established) });
            rules.push(Rule { chain: FORWARD_CHAIN, first: false, words: words(&["-s", h, "-j", "ACCEPT"]) });
        }
        if let Some((br, isolated)) = self.isolation {
            let policy = format!(
                "CNI firewall plugin rules (ingressPolicy: {})",
                if isolated { "isolated" } else { "same-bridge" }
            );
            chains.extend([STAGE1, STAGE2]);
            rules.push(Rule { chain: "FORWARD", first: true, words: commented(&[], ISOLATION_COMMENT, STAGE1) });
            rules.push(Rule {
                chain: STAGE1,
                first: true,
                words: commented(&["-i", br, "!", "-o", br], &policy, STAGE2),
            });
            if isolated {
                rules.push(Rule {
                    chain: STAGE1,
                    first: true,
                    words: commented(&["-i", br, "-o", br], &policy, "DROP"),
                });
            }
            rules.push(Rule { chain: STAGE1, first: false, words: commented(&[], ISOLATION_COMMENT, "RETURN") });
            rules.push(Rule { chain: STAGE2, first: true, words: commented(&["-o", br], ISOLATION_COMMENT, "DROP") });
            rules.push(Rule { chain: STAGE2, first: false, words: commented(&[], ISOLATION_COMMENT, "RETURN") });
        }
        Some(Layout { chains, reset: Vec::new(), rules })
    }

    /// Write what is missing, one `iptables-restore --noflush` per family (atomic there). A
    /// family that fails leaves the per-address rules of the others removed again.
    pub fn add(&self) -> Result<(), Failure> {
        let undo = || drop(teardown_firewall(self.ips, Removal::Ours));
        apply(FILTER, "the firewall's iptables backend", &|v4| self.layout(v4), &undo)
    }

    /// Every chain and rule of `add` present (the reference's CHECK): an error names the first
    /// one missing.
    pub fn check(&self) -> Result<(), String> {
        for (v4, name) in [(true, "iptables"), (false, "ip6tables")] {
            let Some(Layout { chains, rules, .. }) = self.layout(v4) else { continue };
            let listing = Listing::of(name, FILTER)?;
            if let Some(c) = chains.iter().find(|c| !listing.has_chain(c)) {
                return Err(format!("{name}: expected chain {c} not found"));
            }
            if let Some(r) = rules.iter().find(|r| !r.is_in(&listing)) {
                return Err(format!("{name}: expected {} rule \"{}\" not found", r.chain, join_rule(&r.words)));
            }
        }
        Ok(())
    }
}

/// `ipMasqBackend: "iptables"`: the reference's masquerade layout for one container, in the
/// `nat` table of each family its addresses use (the chain and comment name the network and
/// container, so DEL and GC find it as they find the reference's own):
///
/// ```text
/// POSTROUTING  -s <ip>/32 -m comment --comment "name: \"<net>\" id: \"<cid>\"" -j CNI-<hash>
/// CNI-<hash>   -d <subnet> -m comment --comment … -j ACCEPT
/// CNI-<hash>   ! -d 224.0.0.0/4 -m comment --comment … -j MASQUERADE      (ff00::/8 for IPv6)
/// ```
pub fn setup_masq(network: &str, container_id: &str, ips: &[ipnet::IpNet]) -> Result<(), String> {
    let chain = masq_chain(network, container_id);
    let comment = format!("name: {} id: {}", go_quote(network), go_quote(container_id));
    let layout = |v4: bool| {
        let mine: Vec<&ipnet::IpNet> = ips.iter().filter(|ip| ip.addr().is_ipv4() == v4).collect();
        if mine.is_empty() {
            return None;
        }
        let multicast = if v4 { "224.0.0.0/4" } else { "ff00::/8" };
        // Every subnet's ACCEPT before the MASQUERADE (the reference, appending per address,
        // puts a second subnet's after it, and masquerades traffic to it).
        let mut rules = Vec::new();
        for ip in &mine {
            let subnet = ip.trunc().to_string();
            rules.push(Rule { chain: &chain, first: false, words: commented(&["-d", &subnet], &comment, "ACCEPT") });
        }
        let masquerade = commented(&["!", "-d", multicast], &comment, "MASQUERADE");
        rules.push(Rule { chain: &chain, first: false, words: masquerade });
        for ip in &mine {
            let host = host_net(ip.addr());
            rules.push(Rule { chain: "POSTROUTING", first: false, words: commented(&["-s", &host], &comment, &chain) });
        }
        Some(Layout { chains: vec![chain.as_str()], reset: Vec::new(), rules })
    };
    let undo = || drop(teardown_masq(network, container_id, Removal::Ours));
    apply(NAT, "ipMasqBackend \"iptables\"", &layout, &undo).map_err(|f| f.msg)
}

/// Why a write failed; `unavailable` when nothing could be tried (no iptables program for the
/// family, or a table it refuses to list), as opposed to a write that failed or timed out.
#[derive(Debug)]
pub struct Failure {
    pub msg: String,
    pub unavailable: bool,
}

impl From<String> for Failure {
    fn from(msg: String) -> Failure {
        Failure { msg, unavailable: false }
    }
}

/// For IPv4, then IPv6, add to `table` what `layout` lists for the family and the table lacks:
/// one `iptables-restore --noflush` each (atomic there), under the lock. When a family fails
/// after another succeeded, `undo` runs. `needs` names the feature in "not found" errors.
fn apply<'a>(
    table: &str,
    needs: &str,
    layout: &dyn Fn(bool) -> Option<Layout<'a>>,
    undo: &dyn Fn(),
) -> Result<(), Failure> {
    let _lock = lock()?;
    let mut done = false;
    for (v4, name) in [(true, "iptables"), (false, "ip6tables")] {
        let Some(wanted) = layout(v4) else { continue };
        let applied = (|| {
            // iptables-restore reads lines: a word with a line break would be a command of its own.
            if let Some(w) = wanted.rules.iter().flat_map(|r| &r.words).find(|w| w.contains(['\n', '\r', '\0'])) {
                return Err(Failure::from(format!(
                    "{w:?} contains a line break or NUL, which an iptables rule cannot hold"
                )));
            }
            let unavailable = |msg: String| Failure { msg, unavailable: true };
            let prog = find(name).ok_or_else(|| unavailable(format!("{name} not found ({needs} needs it)")))?;
            let restore = restore_of(&prog).ok_or_else(|| {
                unavailable(format!("{name}-restore not found beside {} ({needs} needs it)", prog.display()))
            })?;
            // A table iptables cannot work with (one nft wrote under its names) is no table
            // for it; a listing that failed otherwise (the lock timed out) is an error.
            let listing = Listing::read_checked(&prog, table, WAIT_WRITE).map_err(|e| {
                let incompatible = e.contains("incompatible");
                Failure { msg: e, unavailable: incompatible }
            })?;
            let input = restore_input(table, &listing, &wanted);
            if input.is_empty() { Ok(()) } else { run_restore(&restore, &input, WAIT_WRITE).map_err(Failure::from) }
        })();
        if let Err(e) = applied {
            if done {
                undo();
            }
            return Err(e);
        }
        done = true;
    }
    Ok(())
}

/// STATUS of a config that asks for an iptables backend: the programs it runs are installed
/// (else CNI error 50, as a plugin that can take no ADD reports).
pub fn status(what: &str) -> Result<(), crate::cni::CniError> {
    let missing = |name: &str| {
        crate::cni::CniError::new(
            crate::cni::error::code::NOT_AVAILABLE,
            format!("{what}: the iptables backend needs {name}, which is not installed"),
        )
    };
    let prog = find("iptables").ok_or_else(|| missing("iptables"))?;
    restore_of(&prog).map(drop).ok_or_else(|| missing(&format!("iptables-restore (beside {})", prog.display())))
}

/// Whether a `filter` table of iptables with a FORWARD chain is there (legacy, or kept in
/// nf_tables by iptables-nft) for a family of `ips`, and its program installed: then only
/// iptables rules open the forward path (Docker, for one, sets that chain's policy to DROP).
pub fn filter_in_use(ips: &[IpAddr]) -> bool {
    let progs = programs(FILTER, Some(&["FORWARD"]));
    let has = |name: &str| progs.iter().any(|p| p.file_name().is_some_and(|n| n == name));
    ips.iter().any(|ip| has(if ip.is_ipv4() { "iptables" } else { "ip6tables" }))
}

fn lock() -> Result<std::fs::File, String> {
    let path = std::path::Path::new(LOCK);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("{LOCK}: {e}"))?;
    f.lock().map_err(|e| format!("lock {LOCK}: {e}"))?;
    Ok(f)
}

/// The `iptables-restore --noflush` input adding what `listing` lacks ("" when nothing does).
/// Only missing chains are declared: declaring one that exists would flush it.
fn restore_input(table: &str, listing: &Listing, wanted: &Layout<'_>) -> String {
    let mut lines = Vec::new();
    let mut declared: Vec<&str> = Vec::new();
    for (chain, parent) in &wanted.reset {
        lines.extend(jumps_to(listing, chain, parent).iter().map(|j| format!("-D {}", join_rule(j))));
        lines.push(format!(":{chain} - [0:0]"));
        declared.push(chain);
    }
    for c in &wanted.chains {
        if !listing.has_chain(c) && !declared.contains(c) {
            lines.push(format!(":{c} - [0:0]"));
            declared.push(c);
        }
    }
    let rebuilt =
        |r: &Rule<'_>| wanted.reset.iter().any(|(c, _)| *c == r.chain || r.words.last().is_some_and(|t| t == c));
    for r in distinct(&wanted.rules) {
        if !rebuilt(r) && r.is_in(listing) {
            continue;
        }
        let at = if r.first { format!("-I {} 1", r.chain) } else { format!("-A {}", r.chain) };
        lines.push(format!("{at} {}", join_rule(&r.words)));
    }
    if lines.is_empty() {
        return String::new();
    }
    restore_text(table, &lines)
}

/// `rules` without those the same as one before them (each is written once).
fn distinct<'r, 'a>(rules: &'r [Rule<'a>]) -> Vec<&'r Rule<'a>> {
    let mut out: Vec<&Rule<'_>> = Vec::new();
    for r in rules {
        if !out.iter().any(|o| o.chain == r.chain && o.words == r.words) {
            out.push(r);
        }
    }
    out
}

/// Words joined for iptables-restore (and messages), quoting those with spaces or quotes.
fn join_rule(words: &[String]) -> String {
    let quote = |w: &String| {
        if !w.is_empty() && !w.contains([' ', '\t', '"', '\\', '\'']) {
            return w.clone();
        }
        format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""))
    };
    words.iter().map(quote).collect::<Vec<_>>().join(" ")
}

fn run_restore(restore: &PathBuf, input: &str, wait: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new(restore)
        .args(["--noflush", "-w", wait])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", restore.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).map_err(|e| format!("{}: {e}", restore.display()))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("{}: {e}", restore.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} --noflush: {} (input: {})",
            restore.display(),
            String::from_utf8_lossy(&out.stderr).trim(),
            input.trim().replace('\n', "; ")
        ));
    }
    Ok(())
}

fn arg_after<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map(String::as_str)
}

/// Split a rule as `iptables -S` prints it: words, with `"..."` quoting and `\` escapes.
fn split(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_xtables_lock_is_try_again_later() {
        let held = "iptables -t nat -S: Another app is currently holding the xtables lock. Stopped waiting after 60s.";
        assert_eq!(cni_error("ipMasq", held).code, 11);
        assert_eq!(cni_error("ipMasq", "iptables -t nat: No chain/target/match by that name").code, 999);
        let waited = "Another app is currently holding the xtables lock; still 9s 0us time ahead to have a chance to grab the lock...\niptables: No chain/target/match by that name.";
        assert_eq!(cni_error("ipMasq", waited).code, 999);
    }

    #[test]
    fn chain_names_match_the_reference() {
        let h = sha512::hex(b"mynetcid1");
        assert_eq!(masq_chain("mynet", "cid1"), format!("CNI-{}", &h[..24]));
        assert_eq!(chain_name("mynet", "cid1", "DN-"), format!("CNI-DN-{}", &h[..21]));
        assert_eq!(chain_name("mynet", "cid1", "SN-").len(), 28);
    }

    #[test]
    fn split_rules_as_listed() {
        let rule = r#"POSTROUTING -s 10.88.0.5/32 -m comment --comment "name: \"mynet\" id: \"c 1\"" -j CNI-abc"#;
        assert_eq!(
            split(rule),
            vec![
                "POSTROUTING",
                "-s",
                "10.88.0.5/32",
                "-m",
                "comment",
                "--comment",
                r#"name: "mynet" id: "c 1""#,
                "-j",
                "CNI-abc"
            ]
        );
        assert_eq!(split("  a  b "), vec!["a", "b"]);
        assert_eq!(split(r#"x """#), vec!["x", ""]);
    }

    fn listing(lines: &str) -> Listing {
        Listing { lines: lines.lines().map(str::to_string).collect() }
    }

    #[test]
    fn firewall_restore_input_adds_only_what_is_missing() {
        let ips: Vec<IpAddr> = vec!["10.88.0.5".parse().unwrap(), "fd88::5".parse().unwrap()];
        let fw = Forwarding { admin: "CNI-ADMIN", ips: &ips, isolation: Some(("cni0", true)) };
        let wanted = fw.layout(true).unwrap();
        let empty = listing("-P FORWARD DROP");
        let want = r#"*filter
:CNI-FORWARD - [0:0]
:CNI-ADMIN - [0:0]
:CNI-ISOLATION-STAGE-1 - [0:0]
:CNI-ISOLATION-STAGE-2 - [0:0]
-I FORWARD 1 -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-I CNI-FORWARD 1 -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
-A CNI-FORWARD -d 10.88.0.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.88.0.5/32 -j ACCEPT
-I FORWARD 1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j CNI-ISOLATION-STAGE-1
-I CNI-ISOLATION-STAGE-1 1 -i cni0 ! -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j CNI-ISOLATION-STAGE-2
-I CNI-ISOLATION-STAGE-1 1 -i cni0 -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j DROP
-A CNI-ISOLATION-STAGE-1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN
-I CNI-ISOLATION-STAGE-2 1 -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j DROP
-A CNI-ISOLATION-STAGE-2 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN
COMMIT
"#;
        assert_eq!(restore_input(FILTER, &empty, &wanted), want);

        // As the reference left it (1.1 comments its isolation rules for same-bridge only):
        // only this address's rules are missing.
        let there = listing(
            r#"-P FORWARD DROP
-N CNI-ADMIN
-N CNI-FORWARD
-N CNI-ISOLATION-STAGE-1
-N CNI-ISOLATION-STAGE-2
-A FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j CNI-ISOLATION-STAGE-1
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
-A CNI-ISOLATION-STAGE-1 -i cni0 -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j DROP
-A CNI-ISOLATION-STAGE-1 -i cni0 ! -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j CNI-ISOLATION-STAGE-2
-A CNI-ISOLATION-STAGE-1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j RETURN
-A CNI-ISOLATION-STAGE-2 -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j DROP
-A CNI-ISOLATION-STAGE-2 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j RETURN"#,
        );
        let want = "*filter\n-A CNI-FORWARD -d 10.88.0.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
                    -A CNI-FORWARD -s 10.88.0.5/32 -j ACCEPT\nCOMMIT\n";
        assert_eq!(restore_input(FILTER, &there, &wanted), want);

        // IPv6 goes to ip6tables with /128; a family without addresses gets nothing.
        let rules6 = fw.layout(false).unwrap().rules;
        assert!(rules6.iter().any(|r| r.words.join(" ") == "-s fd88::5/128 -j ACCEPT"));
        let v4only = Forwarding { admin: "A", ips: &ips[..1], isolation: None };
        assert!(v4only.layout(false).is_none());
    }

    #[test]
    fn rule_words_quoted_for_restore() {
        let w = words(&["-i", "a b", "-m", "comment", "--comment", r#"say "hi" \ bye"#, "-j", "X"]);
        assert_eq!(join_rule(&w), r#"-i "a b" -m comment --comment "say \"hi\" \\ bye" -j X"#);
        // What iptables -S prints reads back as the same words.
        assert_eq!(split(&join_rule(&w)), w);
    }

    #[test]
    fn masq_comments() {
        assert_eq!(masq_comment_id("mynet", r#"name: "mynet" id: "c1""#).as_deref(), Some("c1"));
        assert_eq!(masq_comment_id("mynet", r#"name: "other" id: "c1""#), None);
        assert_eq!(masq_comment_id("my\"net", r#"name: "my\"net" id: "a\"b""#).as_deref(), Some("a\"b"));
        assert_eq!(masq_comment_id("mynet", r#"name: "mynet" id: "c1"x"#), None);
    }
}
