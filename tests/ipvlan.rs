//! ipvlan in real namespaces: the parent is a dummy link in a throwaway "host" namespace.
//!
//! Kernels without ipvlan skip these tests with a message; `make test-vm` runs them under a
//! stock kernel and sets CNIBOX_REQUIRE_IPVLAN=1 so that a skip there is a failure.

mod common;
#[path = "common/reach.rs"]
mod reach;
#[path = "common/sublink.rs"]
mod sublink;
use common::*;
use reach::reach;
use serde_json::{Value, json};
use sublink::{Fixture, link_names, parent_link};

/// Whether this kernel has ipvlan; without it the tests are skipped, unless required.
fn have_ipvlan() -> bool {
    if !root() {
        return false;
    }
    let ns = Netns::new("ipvp");
    parent_link(&ns, "p0");
    let ok = ns.exec("ip link add iv0 link p0 type ipvlan mode l2").0;
    if !ok {
        let required = std::env::var("CNIBOX_REQUIRE_IPVLAN").is_ok_and(|v| v == "1");
        assert!(!required, "ipvlan required (CNIBOX_REQUIRE_IPVLAN=1) but this kernel has none");
        eprintln!("skipping: this kernel has no ipvlan (`make test-vm` runs these under a stock kernel)");
    }
    ok
}

#[test]
fn l2_and_l3_pods_reach_each_other() {
    if !have_ipvlan() {
        return;
    }
    for (mode, subnet) in [("l2", "10.60.0.0/24"), ("l3", "10.61.0.0/24")] {
        let f = Fixture::new("ipvlan", "iv");
        let conf = f.conf("1.0.0", json!(subnet), json!({"mode": mode, "dns": {"nameservers": ["10.60.0.53"]}}));
        let (a, b) = (Netns::new("iva"), Netns::new("ivb"));
        let ra = f.add("ca", &a, &conf);
        let rb = f.add("cb", &b, &conf);
        let ifs = ra["interfaces"].as_array().expect("interfaces");
        assert_eq!(ifs.len(), 1, "{ra}");
        assert_eq!(ifs[0]["name"], "eth0");
        assert_eq!(ifs[0]["sandbox"], a.path().as_str());
        // An ipvlan shares its parent's MAC.
        let (_, parent_mac) = f.host.exec("cat /sys/class/net/dm0/address");
        assert_eq!(ifs[0]["mac"], parent_mac.trim());
        assert_eq!(ra["ips"][0]["interface"], 0);
        assert_eq!(ra["dns"]["nameservers"][0], "10.60.0.53");
        let (_, detail) = a.exec("ip -d link show eth0");
        assert!(detail.contains(&format!("ipvlan  mode {mode}")), "{detail}");
        assert_eq!(a.exec("cat /proc/sys/net/ipv4/conf/eth0/arp_notify").1.trim(), "1");
        assert!(f.host_extra_links().is_empty(), "{:?}", f.host_extra_links());

        assert!(reach(&a.path(), &b.path(), ip_of(&rb, 0)), "{mode}: pod a -> pod b");
        assert!(reach(&b.path(), &a.path(), ip_of(&ra, 0)), "{mode}: pod b -> pod a");

        // CHECK passes, and fails when another mode is configured.
        let mut c: Value = serde_json::from_str(&conf).unwrap();
        c["prevResult"] = ra.clone();
        f.call("CHECK", "ca", &a.path(), &c.to_string()).ok();
        c["mode"] = json!("l3s");
        let e = f.call("CHECK", "ca", &a.path(), &c.to_string());
        assert!(
            e.stdout.contains(&format!("Container IPVlan mode {mode} does not match expected value: l3s")),
            "{e:?}"
        );

        f.del("ca", &a, &conf);
        f.del("cb", &b, &conf);
        assert!(f.leases().is_empty());
        assert!(!a.exec("ip link show eth0").0);
    }
}

#[test]
fn l3s_default_master_and_mtu() {
    if !have_ipvlan() {
        return;
    }
    let f = Fixture::new("ipvlan", "iv");
    assert!(f.host.exec("ip addr add 192.0.2.1/24 dev dm0 && ip route add default via 192.0.2.254 dev dm0").0);
    let conf = f.conf("1.0.0", json!("10.62.0.0/24"), json!({"master": null, "mode": "l3s", "mtu": 1400}));
    let a = Netns::new("ivs");
    f.add("ca", &a, &conf);
    let (_, detail) = a.exec("ip -d link show eth0");
    assert!(detail.contains("eth0@if"), "{detail}");
    assert!(detail.contains("mtu 1400"), "{detail}");
    assert!(detail.contains("ipvlan  mode l3s"), "{detail}");
    f.del("ca", &a, &conf);
    let conf = f.conf("1.0.0", json!("10.62.0.0/24"), json!({"mode": "private"}));
    assert!(f.call("ADD", "cb", &a.path(), &conf).stdout.contains("unknown ipvlan mode: \\\"private\\\""));
    assert!(f.leases().is_empty());
}

#[test]
fn chained_master_and_addresses_from_prev_result() {
    if !have_ipvlan() {
        return;
    }
    let f = Fixture::new("ipvlan", "iv");
    let prev = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "dm0"}],
                      "ips": [{"address": "10.63.0.5/24", "gateway": "10.63.0.1"}],
                      "routes": [{"dst": "0.0.0.0/0"}]});
    let conf = json!({"cniVersion": "1.0.0", "name": "ivnet", "type": "ipvlan", "prevResult": prev}).to_string();
    let a = Netns::new("ivc");
    let r = f.add("ca", &a, &conf);
    assert_eq!(r["interfaces"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["interfaces"][0]["name"], "eth0");
    assert_eq!(r["ips"][0]["address"], "10.63.0.5/24");
    assert_eq!(r["ips"][0]["interface"], 0);
    assert!(a.exec("ip -o addr show dev eth0").1.contains("10.63.0.5/24"));
    assert!(a.exec("ip route show default").1.contains("via 10.63.0.1"));
    f.del("ca", &a, &conf);
    assert!(!a.exec("ip link show eth0").0);

    let two = json!({"cniVersion": "1.0.0", "name": "ivnet", "type": "ipvlan",
                     "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "dm0"}, {"name": "x"}],
                                    "ips": [{"address": "10.63.0.6/24"}]}});
    let e = f.call("ADD", "cb", &a.path(), &two.to_string());
    assert!(e.stdout.contains("chained master failure. PrevResult lacks a single named interface"), "{e:?}");
}

#[test]
fn failed_add_leaves_nothing_and_del_is_tolerant() {
    if !have_ipvlan() {
        return;
    }
    let f = Fixture::new("ipvlan", "iv");
    let conf = f.conf("0.4.0", json!("10.64.0.0/24"), json!({}));
    let a = Netns::new("ivf");
    assert!(a.exec("ip link add eth0 type bridge").0);
    let r = f.call("ADD", "ca", &a.path(), &conf);
    assert!(r.stdout.contains("failed to rename ipvlan to \\\"eth0\\\""), "{r:?}");
    assert_eq!(link_names(&a), vec!["lo".to_string(), "eth0".to_string()]);
    assert!(f.leases().is_empty());
    assert!(f.host_extra_links().is_empty());

    // Applying the IPAM result fails: link and lease are undone.
    let bad = f.conf(
        "0.4.0",
        Value::Null,
        json!({"ipam": {"type": "host-local", "dataDir": f.data.path(), "subnet": "10.64.0.0/24",
                        "routes": [{"dst": "10.200.0.0/16", "gw": "192.168.255.1"}]}}),
    );
    let b = Netns::new("ivf");
    assert_eq!(f.call("ADD", "cb", &b.path(), &bad).status, 1);
    assert_eq!(link_names(&b), vec!["lo".to_string()]);
    assert!(f.leases().is_empty());

    // DEL twice, after the netns is gone, and without one.
    f.add("cb", &b, &conf);
    f.del("cb", &b, &conf);
    f.del("cb", &b, &conf);
    let c = Netns::new("ivf");
    let path = c.path();
    f.add("cc", &c, &conf);
    drop(c);
    f.call("DEL", "cc", &path, &conf).ok();
    f.call("DEL", "cc", "", &conf).ok();
    assert!(f.leases().is_empty());
}

#[test]
fn result_shape_at_every_version() {
    if !have_ipvlan() {
        return;
    }
    let f = Fixture::new("ipvlan", "iv");
    for v in ["0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let conf = f.conf(v, json!("10.65.0.0/24"), json!({}));
        let ns = Netns::new("ivv");
        let r = f.add("c", &ns, &conf);
        assert_eq!(r["cniVersion"], v);
        if v == "0.2.0" {
            assert!(r["ip4"]["ip"].as_str().unwrap().starts_with("10.65.0."), "{r}");
        } else {
            assert_eq!(r["interfaces"].as_array().unwrap().len(), 1, "{v}: {r}");
            assert_eq!(r["ips"][0]["interface"], 0);
            assert_eq!(r["ips"][0].get("version").is_some(), v < "1.0.0", "{v}: {r}");
        }
        f.del("c", &ns, &conf);
    }
    assert!(f.leases().is_empty());
}

/// Attachments made by one implementation pass the other's CHECK and are removed by its DEL,
/// and both give results of the same shape. The VM run copies the reference ipvlan in and
/// requires it.
#[test]
fn interchangeable_with_the_reference() {
    if !have_ipvlan() {
        return;
    }
    if !reference_dir().join("ipvlan").exists() {
        let required = std::env::var("CNIBOX_REQUIRE_IPVLAN").is_ok_and(|v| v == "1")
            && std::env::var_os("CNIBOX_REFERENCE_DIR").is_some();
        assert!(!required, "no reference ipvlan plugin in {}", reference_dir().display());
        eprintln!("skipping: no reference ipvlan plugin in {}", reference_dir().display());
        return;
    }
    for mode in ["l2", "l3"] {
        let f = Fixture::new("ipvlan", "ivx");
        let conf = f.conf("1.0.0", json!("10.66.0.0/24"), json!({ "mode": mode }));
        f.assert_interchangeable_with_reference(&conf, |adder, ns| {
            let (_, detail) = ns.exec("ip -d link show eth0");
            assert!(detail.contains(&format!("ipvlan  mode {mode}")), "{adder} ADD: {detail}");
        });
    }
}
