//! Removing what the iptables backend of the reference plugins left behind.
//!
//! cnibox never writes iptables rules, but a node switched over from the reference plugins
//! still holds their per-container chains in the `nat` table, and the firewall plugin's
//! per-address rules in the `filter` table:
//!
//! ```text
//! ipMasq:   POSTROUTING       -s <ip> ... -j CNI-<24 hex>         (hash of network + container ID)
//! portmap:  CNI-HOSTPORT-DNAT ... -j CNI-DN-<21 hex>
//!           CNI-HOSTPORT-SNAT ... -j CNI-SN-<21 hex>              (from old versions)
//! firewall: CNI-FORWARD       -d <ip>/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
//!           CNI-FORWARD       -s <ip>/32 -j ACCEPT                (/128 for IPv6)
//! ```
//!
//! DEL (and GC, where the chain name can be derived) removes them best-effort, with the
//! `iptables`/`ip6tables` programs when they are installed: every failure is only logged, and
//! a host without iptables or without the chain sees nothing at all.

use crate::util::sha512;
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

/// Remove the reference's ipMasq chain of one container (IPv4 and IPv6).
pub fn teardown_masq(network: &str, container_id: &str) {
    remove_chains(&[(&masq_chain(network, container_id), "POSTROUTING")]);
}

/// Remove the reference's portmap chains of one container (IPv4 and IPv6).
pub fn teardown_portmap(network: &str, container_id: &str) {
    let (dnat, snat) = (chain_name(network, container_id, "DN-"), chain_name(network, container_id, "SN-"));
    remove_chains(&[(&dnat, "CNI-HOSTPORT-DNAT"), (&snat, "CNI-HOSTPORT-SNAT")]);
}

/// Remove each (chain, the chain that jumps to it) of the nat table, with each program that
/// may hold one of the chains.
fn remove_chains(chains: &[(&str, &str)]) {
    let names: Vec<&str> = chains.iter().map(|(c, _)| *c).collect();
    for prog in programs(NAT, Some(&names)) {
        if let Some(nat) = Listing::read(&prog, NAT) {
            for (chain, parent) in chains {
                remove_chain_with(&prog, &nat, chain, parent);
            }
        }
    }
}

/// Remove the reference firewall's rules for `ips` (the addresses of one container, from its
/// prevResult, as the reference's DEL finds them): its rules name addresses, not containers.
pub fn teardown_firewall(ips: &[std::net::IpAddr]) {
    if ips.is_empty() {
        return;
    }
    let hosts: Vec<String> = ips.iter().map(|ip| format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 })).collect();
    for prog in programs(FILTER, Some(&[FORWARD_CHAIN])) {
        let Some(filter) = Listing::read(&prog, FILTER) else { continue };
        if !filter.has_chain(FORWARD_CHAIN) {
            continue;
        }
        for rule in filter.rules(FORWARD_CHAIN) {
            let args = split(rule);
            let words: Vec<&str> = args.iter().map(String::as_str).collect();
            let mine = match words.as_slice() {
                [_, "-d", host, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"]
                | [_, "-s", host, "-j", "ACCEPT"] => hosts.iter().any(|h| h == host),
                _ => false,
            };
            if mine {
                let mut del = vec!["-D"];
                del.extend(words);
                run(&prog, FILTER, &del);
            }
        }
    }
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
        for id in stale {
            remove_chain_with(&prog, &nat, &masq_chain(network, &id), "POSTROUTING");
        }
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

/// Run one iptables command on `table`; its stdout on success.
fn run(prog: &PathBuf, table: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(prog)
        // The xtables lock is waited for, but not for ever: this clean-up is best effort, and
        // a DEL must not hang behind another program's long iptables-restore.
        .args(["-w", "5", "-t", table])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| log::debug!("{}: {e}", prog.display()))
        .ok()?;
    if !out.status.success() {
        log::debug!(
            "{} -t {table} {}: {}",
            prog.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A table as `iptables -S` prints it, read once per program and call.
struct Listing {
    lines: Vec<String>,
}

impl Listing {
    fn read(prog: &PathBuf, table: &str) -> Option<Listing> {
        Some(Listing { lines: run(prog, table, &["-S"])?.lines().map(str::to_string).collect() })
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

/// Delete the jumps from `parent` to `chain`, then flush and delete `chain` (nat table).
fn remove_chain_with(prog: &PathBuf, nat: &Listing, chain: &str, parent: &str) {
    if !nat.has_chain(chain) {
        return;
    }
    for rule in nat.rules(parent) {
        let args = split(rule);
        if arg_after(&args, "-j") == Some(chain) || arg_after(&args, "-g") == Some(chain) {
            let mut del = vec!["-D"];
            del.extend(args.iter().map(String::as_str));
            run(prog, NAT, &del);
        }
    }
    run(prog, NAT, &["-F", chain]);
    run(prog, NAT, &["-X", chain]);
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

    #[test]
    fn masq_comments() {
        assert_eq!(masq_comment_id("mynet", r#"name: "mynet" id: "c1""#).as_deref(), Some("c1"));
        assert_eq!(masq_comment_id("mynet", r#"name: "other" id: "c1""#), None);
        assert_eq!(masq_comment_id("my\"net", r#"name: "my\"net" id: "a\"b""#).as_deref(), Some("a\"b"));
        assert_eq!(masq_comment_id("mynet", r#"name: "mynet" id: "c1"x"#), None);
    }
}
