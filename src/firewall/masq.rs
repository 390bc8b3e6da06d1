//! `ipMasq` for bridge and ptp: masquerade traffic from a container's addresses to anything
//! outside its subnet, in the same nftables layout as the reference plugins:
//!
//! ```text
//! table inet cni_plugins_masquerade {
//!     chain masq_checks {
//!         ip saddr 10.88.0.5 ip daddr != 10.88.0.0/16 masquerade comment "<hash16(net)>-<hash16(ifname:cid)>, net: <net>, if: <ifname>, id: <cid>"
//!     }
//!     chain postrouting {   # nat, postrouting, srcnat; rewritten by ADD unless as below
//!         ip daddr 224.0.0.0/4 return
//!         ip6 daddr ff00::/8 return
//!         goto masq_checks
//!     }
//! }
//! ```
//!
//! Rules are found again by their comment, so teardown needs neither the container's
//! addresses nor its namespace, and GC can judge every rule of a network.

use super::nft::{self, Batch, Hook, Nft, Table};
use crate::cni::CniError;
use crate::util::sha512;
use ipnet::IpNet;
use std::net::{Ipv4Addr, Ipv6Addr};

pub const TABLE: Table = Table::new("inet", "cni_plugins_masquerade");
const CHECKS: &str = "masq_checks";
const POSTROUTING: &str = "postrouting";

/// Where `ipMasq` rules go (`ipMasqBackend`): nftables unless the config asks for iptables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Nftables,
    Iptables,
}

/// The `ipMasqBackend` values this build accepts.
pub fn check_backend(backend: Option<&str>) -> Result<Backend, CniError> {
    match backend {
        None | Some("nftables") => Ok(Backend::Nftables),
        Some("iptables") => Ok(Backend::Iptables),
        Some(other) => Err(CniError::invalid_config(format!("unknown ipmasq backend \"{other}\""))),
    }
}

/// Whether `ipMasqBackend` asks for the iptables layout.
pub fn is_iptables(backend: Option<&str>) -> bool {
    matches!(check_backend(backend), Ok(Backend::Iptables))
}

/// STATUS's part: iptables installed where `ipMasqBackend` asks for it.
pub fn status(backend: Option<&str>) -> Result<(), CniError> {
    match check_backend(backend)? {
        Backend::Iptables => super::iptables::status("ipMasq"),
        Backend::Nftables => Ok(()),
    }
}

/// DEL's part in iptables: the container's chain, written here with `ipMasqBackend: "iptables"`
/// (whose removal must succeed: a failure is returned, so that the runtime retries) or left by
/// the reference (removed best effort).
pub fn teardown_iptables(backend: Option<&str>, inv: &crate::cni::Invocation) -> Result<(), CniError> {
    use super::iptables::{Removal, teardown_masq};
    let how = if is_iptables(backend) { Removal::Ours } else { Removal::Leftovers };
    teardown_masq(&inv.conf.name, &inv.container_id, how)
        .map_err(|e| super::iptables::cni_error("failed to remove the ipMasq chain", &e))
}

/// Masquerade traffic from each of `ips` leaving its subnet, with `backend`'s rules.
pub fn setup_with(
    backend: Backend,
    ips: &[IpNet],
    network: &str,
    ifname: &str,
    container_id: &str,
) -> Result<(), CniError> {
    match backend {
        Backend::Nftables => setup(&nft::System, ips, network, ifname, container_id),
        Backend::Iptables => super::iptables::setup_masq(network, container_id, ips)
            .map_err(|e| super::iptables::cni_error("failed to set up ipMasq (iptables)", &e)),
    }
}

fn hash16(s: &str) -> String {
    let mut h = sha512::hex(s.as_bytes());
    h.truncate(16);
    h
}

/// The comment prefix shared by every rule of `network`.
pub fn network_hash(network: &str) -> String {
    hash16(network)
}

/// The comment prefix of one attachment.
pub fn instance_hash(network: &str, ifname: &str, container_id: &str) -> String {
    format!("{}-{}", hash16(network), hash16(&format!("{ifname}:{container_id}")))
}

/// The comment of one attachment's rules: the hash, then a readable description.
pub fn instance_comment(network: &str, ifname: &str, container_id: &str) -> String {
    let clean = |s: &str| s.replace('"', "");
    nft::clip_comment(&format!(
        "{}, net: {}, if: {}, id: {}",
        instance_hash(network, ifname, container_id),
        clean(network),
        clean(ifname),
        clean(container_id)
    ))
}

/// Masquerade traffic from each of `ips` leaving its subnet. Earlier rules of the same
/// attachment are replaced.
pub fn setup(nft: &dyn Nft, ips: &[IpNet], network: &str, ifname: &str, container_id: &str) -> Result<(), CniError> {
    let listing = nft.list_table(TABLE)?;
    let hash = instance_hash(network, ifname, container_id);
    let base: [nft::RuleSpec<'_>; 3] = [
        (vec![nft::match_addr("daddr", "==", Ipv4Addr::new(224, 0, 0, 0).into(), 4), nft::stmt("return")], None),
        (
            vec![
                nft::match_addr("daddr", "==", Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0).into(), 8),
                nft::stmt("return"),
            ],
            None,
        ),
        (vec![nft::goto(CHECKS)], None),
    ];
    let comment = instance_comment(network, ifname, container_id);
    nft::apply_listed(nft, listing, |listing| {
        let mut b = Batch::new();
        b.add_table(TABLE, Some("Masquerading for plugins from github.com/containernetworking/plugins"))
            .add_missing_chain(TABLE, CHECKS, None, listing)
            .add_missing_chain(
                TABLE,
                POSTROUTING,
                Some(Hook { kind: "nat", hook: "postrouting", prio: nft::prio::SRCNAT }),
                listing,
            )
            .set_chain_rules(TABLE, POSTROUTING, &base, listing);
        for r in listing.into_iter().flat_map(|l| l.rules_where(CHECKS, |c| c.starts_with(&hash))) {
            b.delete_rule(TABLE, CHECKS, r.handle);
        }
        for ip in ips {
            let subnet = ip.trunc();
            b.add_rule(
                TABLE,
                CHECKS,
                vec![
                    nft::match_addr("saddr", "==", ip.addr(), 128),
                    nft::match_addr("daddr", "!=", subnet.addr(), subnet.prefix_len()),
                    nft::stmt("masquerade"),
                ],
                Some(&comment),
            );
        }
        b
    })
}

/// Remove the rules of one attachment; nothing there is not an error, nor is a host without
/// nf_tables.
pub fn teardown(nft: &dyn Nft, network: &str, ifname: &str, container_id: &str) -> Result<(), CniError> {
    let handles = find(nft, &instance_hash(network, ifname, container_id))?;
    let mut b = Batch::new();
    for h in handles {
        b.delete_rule(TABLE, CHECKS, h);
    }
    nft.apply(&b)
}

/// Remove the rules of `network` whose attachment is not among `valid` (container ID, ifname).
pub fn gc(nft: &dyn Nft, network: &str, valid: &[(String, String)]) -> Result<(), CniError> {
    let Some(listing) = nft.list_rules(TABLE)? else { return Ok(()) };
    let keep: Vec<String> = valid.iter().map(|(id, ifname)| instance_comment(network, ifname, id)).collect();
    let prefix = network_hash(network);
    let mut b = Batch::new();
    for r in listing.rules_where(CHECKS, |c| c.starts_with(&prefix) && !keep.iter().any(|k| k == c)) {
        b.delete_rule(TABLE, CHECKS, r.handle);
    }
    nft.apply(&b)
}

/// Handles of the rules in `masq_checks` whose comment starts with `prefix`.
fn find(nft: &dyn Nft, prefix: &str) -> Result<Vec<u64>, CniError> {
    let Some(listing) = nft.list_rules(TABLE)? else { return Ok(Vec::new()) };
    Ok(listing.rules_where(CHECKS, |c| c.starts_with(prefix)).map(|r| r.handle).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::nft::Fake;
    use serde_json::json;

    #[test]
    fn comment_format() {
        let c = instance_comment("mynet", "eth0", "abc");
        let (hash, rest) = c.split_once(", ").unwrap();
        assert_eq!(rest, "net: mynet, if: eth0, id: abc");
        assert_eq!(hash.len(), 33);
        assert_eq!(&hash[..16], &sha512::hex(b"mynet")[..16]);
        assert_eq!(&hash[17..], &sha512::hex(b"eth0:abc")[..16]);
        assert!(instance_comment("n", "eth0", &"x".repeat(200)).len() == 128);
    }

    #[test]
    fn setup_golden() {
        let fake = Fake::default();
        setup(&fake, &["10.88.0.5/16".parse().unwrap(), "fd88::5/64".parse().unwrap()], "n", "eth0", "c1").unwrap();
        let cmds = fake.commands();
        let comment = instance_comment("n", "eth0", "c1");
        let t = |c: &str| json!({"family": "inet", "table": "cni_plugins_masquerade", "chain": c});
        let rule = |chain: &str, expr: serde_json::Value, comment: Option<&str>| {
            let mut r = t(chain);
            r["expr"] = expr;
            if let Some(c) = comment {
                r["comment"] = json!(c);
            }
            json!({"add": {"rule": r}})
        };
        let want = vec![
            json!({"add": {"table": {"family": "inet", "name": "cni_plugins_masquerade",
                "comment": "Masquerading for plugins from github.com/containernetworking/plugins"}}}),
            json!({"add": {"chain": {"family": "inet", "table": "cni_plugins_masquerade", "name": "masq_checks"}}}),
            json!({"add": {"chain": {"family": "inet", "table": "cni_plugins_masquerade", "name": "postrouting",
                "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}}),
            json!({"flush": {"chain": {"family": "inet", "table": "cni_plugins_masquerade", "name": "postrouting"}}}),
            rule(
                "postrouting",
                json!([
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                    "right": {"prefix": {"addr": "224.0.0.0", "len": 4}}}}, {"return": null}]),
                None,
            ),
            rule(
                "postrouting",
                json!([
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}},
                    "right": {"prefix": {"addr": "ff00::", "len": 8}}}}, {"return": null}]),
                None,
            ),
            rule("postrouting", json!([{"goto": {"target": "masq_checks"}}]), None),
            rule(
                "masq_checks",
                json!([
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.88.0.5"}},
                {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                    "right": {"prefix": {"addr": "10.88.0.0", "len": 16}}}},
                {"masquerade": null}]),
                Some(&comment),
            ),
            rule(
                "masq_checks",
                json!([
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "fd88::5"}},
                {"match": {"op": "!=", "left": {"payload": {"protocol": "ip6", "field": "daddr"}},
                    "right": {"prefix": {"addr": "fd88::", "len": 64}}}},
                {"masquerade": null}]),
                Some(&comment),
            ),
        ];
        assert_eq!(cmds, want);
    }

    fn listing(rules: &[(u64, &str)]) -> String {
        let mut items =
            vec![json!({"chain": {"family": "inet", "table": "cni_plugins_masquerade", "name": "masq_checks"}})];
        for (h, c) in rules {
            items.push(json!({"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks",
                "handle": h, "comment": c, "expr": []}}));
        }
        json!({"nftables": items}).to_string()
    }

    #[test]
    fn setup_replaces_stale_rules_of_the_same_attachment() {
        let mine = instance_comment("n", "eth0", "c1");
        let other = instance_comment("n", "eth0", "c2");
        let fake = Fake::with_table(TABLE, &listing(&[(3, &mine), (4, &other)]));
        setup(&fake, &["10.0.0.2/24".parse().unwrap()], "n", "eth0", "c1").unwrap();
        let deletes: Vec<_> = fake.commands().into_iter().filter(|c| c.get("delete").is_some()).collect();
        assert_eq!(
            deletes,
            vec![json!({"delete": {"rule": {"family": "inet", "table": "cni_plugins_masquerade",
            "chain": "masq_checks", "handle": 3}}})]
        );
    }

    #[test]
    fn teardown_and_gc_by_comment() {
        let a = instance_comment("n", "eth0", "c1");
        let b = instance_comment("n", "eth0", "c2");
        let foreign = instance_comment("other", "eth0", "c3");
        let fake = Fake::with_table(TABLE, &listing(&[(3, &a), (4, &b), (5, &foreign), (6, "unrelated")]));
        teardown(&fake, "n", "eth0", "c2").unwrap();
        assert_eq!(fake.commands().len(), 1);
        assert_eq!(fake.commands()[0]["delete"]["rule"]["handle"], 4);

        let fake = Fake::with_table(TABLE, &listing(&[(3, &a), (4, &b), (5, &foreign), (6, "unrelated")]));
        gc(&fake, "n", &[("c1".into(), "eth0".into())]).unwrap();
        let handles: Vec<_> = fake.commands().iter().map(|c| c["delete"]["rule"]["handle"].clone()).collect();
        assert_eq!(handles, vec![json!(4)]);

        // No table: nothing to do, nothing applied.
        let fake = Fake::default();
        teardown(&fake, "n", "eth0", "c1").unwrap();
        gc(&fake, "n", &[]).unwrap();
        assert!(fake.applied.borrow().is_empty());
    }

    #[test]
    fn backends() {
        assert_eq!(check_backend(None).unwrap(), Backend::Nftables);
        assert_eq!(check_backend(Some("nftables")).unwrap(), Backend::Nftables);
        assert_eq!(check_backend(Some("iptables")).unwrap(), Backend::Iptables);
        assert!(check_backend(Some("ebtables")).unwrap_err().msg.contains("ebtables"));
    }
}
