//! `macspoofchk` for bridge: frames entering the bridge from a container's host-side veth
//! must carry the container's MAC, in the reference plugins' layout:
//!
//! ```text
//! table bridge nat {
//!     chain PREROUTING {   # filter, prerouting, priority -300
//!         iifname "<host veth>" jump cni-br-iface-<cid>-<ifname> comment "macspoofchk-<cid>-<ifname>"
//!     }
//!     chain cni-br-iface-<cid>-<ifname> {
//!         jump cni-br-iface-<cid>-<ifname>-mac comment "macspoofchk-<cid>-<ifname>"
//!     }
//!     chain cni-br-iface-<cid>-<ifname>-mac {
//!         ether saddr <container mac> return comment "macspoofchk-<cid>-<ifname>"
//!         drop comment "macspoofchk-<cid>-<ifname>"
//!     }
//! }
//! ```

use super::nft::{self, Batch, Hook, Nft, Table};
use crate::cni::CniError;

pub const TABLE: Table = Table::new("bridge", "nat");
const PREROUTING: &str = "PREROUTING";

/// The attachment's identity in chain names and comments.
fn ref_id(container_id: &str, ifname: &str) -> String {
    format!("{container_id}-{ifname}")
}

const COMMENT_PREFIX: &str = "macspoofchk-";

/// The attachment's two chains: the one PREROUTING jumps to, and the MAC check it jumps to.
fn chains(ref_id: &str) -> (String, String) {
    let iface = format!("cni-br-iface-{ref_id}");
    let mac = format!("{iface}-mac");
    (iface, mac)
}

fn comment(container_id: &str, ifname: &str) -> String {
    format!("{COMMENT_PREFIX}{}", ref_id(container_id, ifname))
}

/// Only frames from `mac` may enter the bridge through `host_veth`.
pub fn setup(nft: &dyn Nft, host_veth: &str, mac: &str, container_id: &str, ifname: &str) -> Result<(), CniError> {
    let (iface, mac_chain) = chains(&ref_id(container_id, ifname));
    let comment = comment(container_id, ifname);
    nft::check_whole_comment("macspoofchk", &comment)?;
    // Comments and chain names are all this needs: no expressions, no nft run.
    let listing = nft.list_rules(TABLE)?;
    let apply = nft::apply_listed(nft, listing, |listing| {
        let mut b = Batch::new();
        b.add_table(TABLE, None)
            .add_missing_chain(
                TABLE,
                PREROUTING,
                Some(Hook { kind: "filter", hook: "prerouting", prio: -300 }),
                listing,
            )
            .add_chain(TABLE, &iface, None)
            .add_chain(TABLE, &mac_chain, None)
            .flush_chain(TABLE, &iface)
            .flush_chain(TABLE, &mac_chain);
        // A jump left over from an earlier ADD of the same attachment would be doubled.
        for r in listing.into_iter().flat_map(|l| l.rules_where(PREROUTING, |c| nft::comment_is(c, &comment))) {
            b.delete_rule(TABLE, PREROUTING, r.handle);
        }
        b.add_rule(
            TABLE,
            PREROUTING,
            vec![nft::cmp("==", nft::meta("iifname"), host_veth.into()), nft::jump(&iface)],
            Some(&comment),
        )
        .add_rule(TABLE, &iface, vec![nft::jump(&mac_chain)], Some(&comment))
        .add_rule(
            TABLE,
            &mac_chain,
            vec![nft::cmp("==", nft::payload("ether", "saddr"), mac.into()), nft::stmt("return")],
            Some(&comment),
        )
        .add_rule(TABLE, &mac_chain, vec![nft::stmt("drop")], Some(&comment));
        b
    });
    apply.map_err(|e| e.context("failed to setup spoof-check"))
}

/// Remove the attachment's jump and chains; the table and base chain stay.
pub fn teardown(nft: &dyn Nft, container_id: &str, ifname: &str) -> Result<(), CniError> {
    let Some(listing) = nft.list_rules(TABLE)? else { return Ok(()) };
    let (iface, mac_chain) = chains(&ref_id(container_id, ifname));
    let comment = comment(container_id, ifname);
    let mut b = Batch::new();
    for r in listing.rules_where(PREROUTING, |c| nft::comment_is(c, &comment)) {
        b.delete_rule(TABLE, PREROUTING, r.handle);
    }
    for chain in [&iface, &mac_chain] {
        if listing.has_chain(chain) {
            b.flush_chain(TABLE, chain);
        }
    }
    for chain in [&iface, &mac_chain] {
        if listing.has_chain(chain) {
            b.delete_chain(TABLE, chain);
        }
    }
    nft.apply(&b).map_err(|e| e.context("failed to teardown spoof-check"))
}

/// GC: remove the jumps and chains of attachments that are not in `valid` and whose host veth
/// is gone (`link_exists` says). Chain names and comments do not name the network, so an
/// attachment of another network is only ever removed once its veth has gone with its pod:
/// then nothing can match its rules any more, whichever network it belonged to.
pub fn gc(nft: &dyn Nft, valid: &[(String, String)], link_exists: impl Fn(&str) -> bool) -> Result<(), CniError> {
    let Some(listing) = (match nft.list_table(TABLE) {
        Err(e) if nft::is_not_installed(&e) => return Ok(()),
        r => r?,
    }) else {
        return Ok(());
    };
    let keep: Vec<String> = valid.iter().map(|(cid, ifname)| comment(cid, ifname)).collect();
    let mut stale: Vec<&str> = Vec::new();
    for r in listing.rules.iter().filter(|r| r.chain == PREROUTING) {
        let Some(c) = r.comment.as_deref().filter(|c| c.starts_with(COMMENT_PREFIX)) else { continue };
        if keep.iter().any(|k| nft::comment_is(c, k)) || iifname(&r.expr).is_none_or(&link_exists) {
            continue;
        }
        if !stale.contains(&c) {
            stale.push(c);
        }
    }
    if stale.is_empty() {
        return Ok(());
    }
    let mut b = Batch::new();
    for c in &stale {
        for r in listing.rules_where(PREROUTING, |rc| rc == *c) {
            b.delete_rule(TABLE, PREROUTING, r.handle);
        }
    }
    for c in &stale {
        let (iface, mac_chain) = chains(&c[COMMENT_PREFIX.len()..]);
        for chain in [&iface, &mac_chain] {
            if listing.has_chain(chain) {
                b.flush_chain(TABLE, chain).delete_chain(TABLE, chain);
            }
        }
    }
    nft.apply(&b).map_err(|e| e.context("failed to collect spoof-check rules"))
}

/// The interface name a jump rule matches (`meta iifname == "<name>"`).
fn iifname(expr: &serde_json::Value) -> Option<&str> {
    expr.as_array()?.iter().find_map(|e| {
        let m = e.get("match")?;
        (m.get("left")?.get("meta")?.get("key")?.as_str()? == "iifname").then(|| m.get("right")?.as_str())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::nft::Fake;
    use serde_json::json;

    #[test]
    fn setup_golden() {
        let fake = Fake::default();
        setup(&fake, "veth1234abcd", "0a:58:0a:00:00:05", "c1", "eth0").unwrap();
        let t = |name: &str| json!({"family": "bridge", "table": "nat", "name": name});
        let rule = |chain: &str, expr: serde_json::Value| {
            json!({"add": {"rule": {"family": "bridge", "table": "nat", "chain": chain, "expr": expr,
                "comment": "macspoofchk-c1-eth0"}}})
        };
        let mut base = t("PREROUTING");
        base["type"] = json!("filter");
        base["hook"] = json!("prerouting");
        base["prio"] = json!(-300);
        base["policy"] = json!("accept");
        let want = vec![
            json!({"add": {"table": {"family": "bridge", "name": "nat"}}}),
            json!({"add": {"chain": base}}),
            json!({"add": {"chain": t("cni-br-iface-c1-eth0")}}),
            json!({"add": {"chain": t("cni-br-iface-c1-eth0-mac")}}),
            json!({"flush": {"chain": t("cni-br-iface-c1-eth0")}}),
            json!({"flush": {"chain": t("cni-br-iface-c1-eth0-mac")}}),
            rule(
                "PREROUTING",
                json!([
                {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "veth1234abcd"}},
                {"jump": {"target": "cni-br-iface-c1-eth0"}}]),
            ),
            rule("cni-br-iface-c1-eth0", json!([{"jump": {"target": "cni-br-iface-c1-eth0-mac"}}])),
            rule(
                "cni-br-iface-c1-eth0-mac",
                json!([
                {"match": {"op": "==", "left": {"payload": {"protocol": "ether", "field": "saddr"}},
                    "right": "0a:58:0a:00:00:05"}},
                {"return": null}]),
            ),
            rule("cni-br-iface-c1-eth0-mac", json!([{"drop": null}])),
        ];
        assert_eq!(fake.commands(), want);
    }

    #[test]
    fn teardown_removes_jump_and_chains() {
        let listing = json!({"nftables": [
            {"chain": {"family": "bridge", "table": "nat", "name": "PREROUTING"}},
            {"chain": {"family": "bridge", "table": "nat", "name": "cni-br-iface-c1-eth0"}},
            {"chain": {"family": "bridge", "table": "nat", "name": "cni-br-iface-c1-eth0-mac"}},
            {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 9,
                "comment": "macspoofchk-c1-eth0", "expr": []}},
            {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 10,
                "comment": "macspoofchk-c2-eth0", "expr": []}},
        ]});
        let fake = Fake::with_table(TABLE, &listing.to_string());
        teardown(&fake, "c1", "eth0").unwrap();
        let cmds = fake.commands();
        assert_eq!(cmds.len(), 5);
        assert_eq!(cmds[0]["delete"]["rule"]["handle"], 9);
        assert_eq!(cmds[3]["delete"]["chain"]["name"], "cni-br-iface-c1-eth0");
        assert_eq!(cmds[4]["delete"]["chain"]["name"], "cni-br-iface-c1-eth0-mac");
        // Nothing there: nothing applied.
        let fake = Fake::default();
        teardown(&fake, "c1", "eth0").unwrap();
        assert!(fake.applied.borrow().is_empty());
    }

    #[test]
    fn gc_removes_only_unlisted_attachments_whose_veth_is_gone() {
        let jump = |h: u64, cid: &str, veth: &str| {
            json!({"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": h,
                "comment": format!("macspoofchk-{cid}-eth0"), "expr": [
                    {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": veth}},
                    {"jump": {"target": format!("cni-br-iface-{cid}-eth0")}}]}})
        };
        let chain = |name: &str| json!({"chain": {"family": "bridge", "table": "nat", "name": name}});
        let listing = json!({"nftables": [
            chain("PREROUTING"),
            chain("cni-br-iface-gone-eth0"), chain("cni-br-iface-gone-eth0-mac"),
            chain("cni-br-iface-live-eth0"), chain("cni-br-iface-live-eth0-mac"),
            chain("cni-br-iface-valid-eth0"), chain("cni-br-iface-valid-eth0-mac"),
            jump(1, "gone", "vethgone"), jump(2, "live", "vethlive"), jump(3, "valid", "vethvalid"),
            {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 4,
                "comment": "someone else's", "expr": []}},
        ]});
        let fake = Fake::with_table(TABLE, &listing.to_string());
        let valid = vec![("valid".to_string(), "eth0".to_string())];
        gc(&fake, &valid, |name| name == "vethlive").unwrap();
        let cmds = fake.commands();
        assert_eq!(cmds.len(), 5, "{cmds:?}");
        assert_eq!(cmds[0]["delete"]["rule"]["handle"], 1);
        assert_eq!(cmds[2]["delete"]["chain"]["name"], "cni-br-iface-gone-eth0");
        assert_eq!(cmds[4]["delete"]["chain"]["name"], "cni-br-iface-gone-eth0-mac");
        // Nothing stale: nothing applied.
        let fake = Fake::with_table(TABLE, &listing.to_string());
        gc(&fake, &valid, |_| true).unwrap();
        assert!(fake.applied.borrow().is_empty());
    }

    #[test]
    fn long_container_ids() {
        // Too long for a whole comment: ADD refuses before writing anything.
        let long = "x".repeat(200);
        let fake = Fake::default();
        let e = setup(&fake, "veth1", "0a:58:0a:00:00:05", &long, "eth0").unwrap_err();
        assert!(e.msg.contains("more than the 128 nftables allows"), "{}", e.msg);
        assert!(fake.applied.borrow().is_empty());
        // Teardown compares with the comment as nft holds it.
        let clipped = nft::clip_comment(&comment(&long, "eth0"));
        let listing = json!({"nftables": [
            {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 9,
                "comment": clipped, "expr": []}},
        ]});
        let fake = Fake::with_table(TABLE, &listing.to_string());
        teardown(&fake, &long, "eth0").unwrap();
        assert_eq!(fake.commands()[0]["delete"]["rule"]["handle"], 9);
    }
}
