//! macvlan in real namespaces: the parent is a dummy link in a throwaway "host" namespace.

mod common;
#[path = "common/reach.rs"]
mod reach;
#[path = "common/sublink.rs"]
mod sublink;
use common::*;
use reach::reach;
use serde_json::{Value, json};
use sublink::{Fixture, link_names, parent_link};

#[test]
fn two_pods_in_bridge_mode_reach_each_other() {
    if !root() {
        return;
    }
    let f = Fixture::new("macvlan", "mv");
    let conf = f.conf("1.0.0", json!("10.80.0.0/24"), json!({"dns": {"nameservers": ["10.80.0.53"]}}));
    let (a, b) = (Netns::new("mva"), Netns::new("mvb"));
    let ra = f.add("ca", &a, &conf);
    let rb = f.add("cb", &b, &conf);

    // Layout: [macvlan], every IP on interface 0, DNS from the config.
    let ifs = ra["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifs.len(), 1, "{ra}");
    assert_eq!(ifs[0]["name"], "eth0");
    assert_eq!(ifs[0]["sandbox"], a.path().as_str());
    let (_, mac) = a.exec("cat /sys/class/net/eth0/address");
    assert_eq!(ifs[0]["mac"], mac.trim());
    assert_eq!(ra["ips"][0]["interface"], 0);
    assert_eq!(ra["dns"]["nameservers"][0], "10.80.0.53");
    let (_, detail) = a.exec("ip -d link show eth0");
    assert!(detail.contains("macvlan mode bridge"), "{detail}");
    assert_eq!(a.exec("cat /proc/sys/net/ipv4/conf/eth0/arp_notify").1.trim(), "1");
    assert_eq!(a.exec("cat /proc/sys/net/ipv6/conf/eth0/ndisc_notify").1.trim(), "1");
    // Nothing stays in the host namespace.
    assert!(f.host_extra_links().is_empty(), "{:?}", f.host_extra_links());

    assert!(reach(&a.path(), &b.path(), ip_of(&rb, 0)), "pod a -> pod b");
    assert!(reach(&b.path(), &a.path(), ip_of(&ra, 0)), "pod b -> pod a");

    f.del("ca", &a, &conf);
    f.del("cb", &b, &conf);
    assert!(f.leases().is_empty());
    assert!(!a.exec("ip link show eth0").0);
    assert!(!b.exec("ip link show eth0").0);
}

#[test]
fn default_master_mac_precedence_mtu_and_l2_only() {
    if !root() {
        return;
    }
    let f = Fixture::new("macvlan", "mv");
    f.host.sh("ip addr add 192.0.2.1/24 dev dm0 && ip route add default via 192.0.2.254 dev dm0");
    // No master: the default-route interface. No IPAM: link up, no IPs.
    let conf = f.conf(
        "1.0.0",
        Value::Null,
        json!({"master": null, "mode": "private", "mtu": 1400, "bcqueuelen": 123, "mac": "0a:00:00:00:00:01",
               "runtimeConfig": {"mac": "0a:00:00:00:00:03"}}),
    );
    let a = Netns::new("mvm");
    let r =
        f.call_env("ADD", "ca", &a.path(), &conf, &[("CNI_ARGS", "IgnoreUnknown=1;MAC=0a:00:00:00:00:02")]).ok().json();
    assert!(r.get("ips").is_none(), "{r}");
    assert_eq!(r["interfaces"][0]["mac"], "0a:00:00:00:00:03");
    let (_, detail) = a.exec("ip -d link show eth0");
    assert!(detail.contains("mtu 1400"), "{detail}");
    assert!(detail.contains("macvlan mode private"), "{detail}");
    assert!(detail.contains("bcqueuelen 123"), "{detail}");
    assert!(detail.contains("state UP") || detail.contains(",UP"), "{detail}");
    f.del("ca", &a, &conf);

    // CNI_ARGS beats the config's mac.
    let conf = f.conf("1.0.0", Value::Null, json!({"mac": "0a:00:00:00:00:01"}));
    let r = f.call_env("ADD", "cb", &a.path(), &conf, &[("CNI_ARGS", "MAC=0a:00:00:00:00:02")]).ok().json();
    assert_eq!(r["interfaces"][0]["mac"], "0a:00:00:00:00:02");
    // Unknown CNI_ARGS without IgnoreUnknown are refused.
    f.del("cb", &a, &conf);
    let r = f.call_env("ADD", "cb", &a.path(), &conf, &[("CNI_ARGS", "FOO=1")]);
    assert_eq!(r.code(), 999);

    // MTU above the master's, unknown mode, missing master.
    let conf = f.conf("1.0.0", Value::Null, json!({"mtu": 9000}));
    let r = f.call("ADD", "cc", &a.path(), &conf);
    assert!(r.stdout.contains("invalid MTU 9000, must be [0, master MTU(1500)]"), "{r:?}");
    let conf = f.conf("1.0.0", Value::Null, json!({"mode": "weird"}));
    assert!(f.call("ADD", "cc", &a.path(), &conf).stdout.contains("unknown macvlan mode"));
    let conf = f.conf("1.0.0", Value::Null, json!({"master": "nosuch0"}));
    assert!(f.call("ADD", "cc", &a.path(), &conf).stdout.contains("failed to lookup master \\\"nosuch0\\\""));
    assert!(!a.exec("ip link show eth0").0);
    assert!(f.host_extra_links().is_empty());
}

#[test]
fn master_inside_the_container() {
    if !root() {
        return;
    }
    let f = Fixture::new("macvlan", "mv");
    let a = Netns::new("mvi");
    parent_link(&a, "inner0");
    let conf = f.conf("1.0.0", json!("10.79.0.0/24"), json!({"master": "inner0", "linkInContainer": true}));
    let r = f.add("ca", &a, &conf);
    assert_eq!(r["interfaces"][0]["name"], "eth0");
    let (_, detail) = a.exec("ip -d link show eth0");
    assert!(detail.contains("eth0@inner0"), "{detail}");
    let mut c: Value = serde_json::from_str(&conf).unwrap();
    c["prevResult"] = r;
    f.call("CHECK", "ca", &a.path(), &c.to_string()).ok();
    f.del("ca", &a, &conf);
    assert!(!a.exec("ip link show eth0").0);
    assert!(f.leases().is_empty());
}

#[test]
fn result_shape_at_every_version() {
    if !root() {
        return;
    }
    let f = Fixture::new("macvlan", "mv");
    for v in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let conf = f.conf(v, json!("10.78.0.0/24"), json!({}));
        let ns = Netns::new("mvv");
        let r = f.add("c", &ns, &conf);
        assert_eq!(r["cniVersion"], v);
        match v {
            "0.1.0" | "0.2.0" => {
                assert!(r["ip4"]["ip"].as_str().unwrap().starts_with("10.78.0."), "{v}: {r}");
                assert!(r.get("interfaces").is_none());
            }
            "0.3.0" | "0.3.1" | "0.4.0" => {
                assert_eq!(r["interfaces"].as_array().unwrap().len(), 1, "{v}: {r}");
                assert_eq!(r["ips"][0]["version"], "4");
                assert_eq!(r["ips"][0]["interface"], 0);
            }
            _ => {
                assert_eq!(r["interfaces"].as_array().unwrap().len(), 1, "{v}: {r}");
                assert!(r["ips"][0].get("version").is_none());
                assert_eq!(r["ips"][0]["interface"], 0);
            }
        }
        f.del("c", &ns, &conf);
        // L2 only cannot be written at 0.1.0/0.2.0; the link must not stay behind.
        if v == "0.2.0" {
            let l2 = f.conf(v, Value::Null, json!({}));
            let r = f.call("ADD", "c2", &ns.path(), &l2);
            assert!(r.stdout.contains("cannot convert: no valid IP addresses"), "{r:?}");
        }
    }
    assert!(f.leases().is_empty());
}

#[test]
fn failed_add_leaves_no_link_and_no_lease() {
    if !root() {
        return;
    }
    let f = Fixture::new("macvlan", "mv");
    // The name is taken in the container: the temporary link is removed, no lease is taken.
    let conf = f.conf("1.0.0", json!("10.77.0.0/24"), json!({}));
    let a = Netns::new("mvf");
    assert!(a.exec("ip link add eth0 type bridge").0);
    let r = f.call("ADD", "ca", &a.path(), &conf);
    assert_eq!(r.status, 1);
    assert!(r.stdout.contains("failed to rename macvlan to \\\"eth0\\\""), "{r:?}");
    assert_eq!(link_names(&a), vec!["lo".to_string(), "eth0".to_string()]);
    assert!(f.leases().is_empty());
    assert!(f.host_extra_links().is_empty());

    // IPAM fails (range exhausted): the macvlan made before it is removed.
    let one = f.conf(
        "1.0.0",
        json!([[{"subnet": "10.76.0.0/24", "rangeStart": "10.76.0.10", "rangeEnd": "10.76.0.10"}]]),
        json!({}),
    );
    let (b, c) = (Netns::new("mvf"), Netns::new("mvf"));
    f.add("cb", &b, &one);
    let r = f.call("ADD", "cc", &c.path(), &one);
    assert_eq!(r.status, 1, "{r:?}");
    assert_eq!(link_names(&c), vec!["lo".to_string()]);
    assert_eq!(f.leases(), vec!["10.76.0.10".to_string()]);

    // Applying the address fails (a route via an unreachable gateway): link and lease go.
    let bad_route = f.conf(
        "1.0.0",
        json!("10.75.0.0/24"),
        json!({"ipam": {"type": "host-local", "dataDir": f.data.path(), "subnet": "10.75.0.0/24",
                        "routes": [{"dst": "10.200.0.0/16", "gw": "192.168.255.1"}]}}),
    );
    let r = f.call("ADD", "cd", &c.path(), &bad_route);
    assert_eq!(r.status, 1, "{r:?}");
    assert_eq!(link_names(&c), vec!["lo".to_string()]);
    assert_eq!(f.leases(), vec!["10.76.0.10".to_string()]);
    f.del("cb", &b, &one);
    assert!(f.leases().is_empty());
}

#[test]
fn del_twice_after_the_netns_is_gone_and_without_netns() {
    if !root() {
        return;
    }
    let f = Fixture::new("macvlan", "mv");
    let conf = f.conf("0.4.0", json!("10.74.0.0/24"), json!({}));
    let a = Netns::new("mvd");
    f.add("ca", &a, &conf);
    f.del("ca", &a, &conf);
    f.del("ca", &a, &conf);
    assert!(!a.exec("ip link show eth0").0);

    let b = Netns::new("mvd");
    let path = b.path();
    f.add("cb", &b, &conf);
    assert_eq!(f.leases().len(), 1);
    drop(b);
    f.call("DEL", "cb", &path, &conf).ok();
    assert!(f.leases().is_empty(), "lease released although the netns is gone");

    let c = Netns::new("mvd");
    f.add("cc", &c, &conf);
    f.call("DEL", "cc", "", &conf).ok();
    assert!(f.leases().is_empty());
    // DEL does not need the master.
    let gone = f.conf("0.4.0", json!("10.74.0.0/24"), json!({"master": "nosuch0"}));
    f.call("DEL", "cc", &c.path(), &gone).ok();
    assert!(!c.exec("ip link show eth0").0);
}

#[test]
fn check_passes_then_fails_on_drift() {
    if !root() {
        return;
    }
    let f = Fixture::new("macvlan", "mv");
    let conf = f.conf("1.0.0", json!("10.73.0.0/24"), json!({"mode": "vepa"}));
    let a = Netns::new("mvc");
    let r = f.add("ca", &a, &conf);
    let mut c: Value = serde_json::from_str(&conf).unwrap();
    c["prevResult"] = r.clone();
    f.call("CHECK", "ca", &a.path(), &c.to_string()).ok();
    // Without prevResult.
    assert!(f.call("CHECK", "ca", &a.path(), &conf).stdout.contains("required prevResult missing"));
    // Another mode configured than the link has.
    let mut other = c.clone();
    other["mode"] = json!("bridge");
    let e = f.call("CHECK", "ca", &a.path(), &other.to_string());
    assert!(e.stdout.contains("container macvlan mode vepa does not match expected value: bridge"), "{e:?}");
    // The address is removed.
    let addr = r["ips"][0]["address"].as_str().unwrap();
    assert!(a.exec(&format!("ip addr del {addr} dev eth0")).0);
    let e = f.call("CHECK", "ca", &a.path(), &c.to_string());
    assert!(e.stdout.contains("Failed to match addr"), "{e:?}");
    f.del("ca", &a, &conf);
}

/// Attachments made by one implementation pass the other's CHECK and are removed by its DEL,
/// and both give results of the same shape.
#[test]
fn interchangeable_with_the_reference() {
    if !root() {
        return;
    }
    if !reference_dir().join("macvlan").exists() {
        eprintln!("skipping: no reference macvlan plugin in {}", reference_dir().display());
        return;
    }
    let f = Fixture::new("macvlan", "mv");
    let conf = f.conf("1.0.0", json!("10.72.0.0/24"), json!({"mode": "bridge", "mac": "0a:00:00:00:00:09"}));
    f.assert_interchangeable_with_reference(&conf, |_, _| {});
}
