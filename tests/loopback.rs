//! loopback in real namespaces, at every spec version.

mod common;
use common::*;

const VERSIONS: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

fn conf(v: &str) -> String {
    format!(r#"{{"cniVersion":"{v}","name":"lo-net","type":"loopback"}}"#)
}

fn lo_up(ns: &Netns) -> bool {
    let (_, out) = ns.exec("ip -o link show lo");
    out.contains("<LOOPBACK,UP")
}

#[test]
fn add_check_del_at_every_version() {
    if !root() {
        return;
    }
    for v in VERSIONS {
        let ns = Netns::bare("lo");
        assert!(!lo_up(&ns));
        let path = ns.path();
        // CNI_IFNAME is ignored: lo is the only interface this plugin touches.
        let r = plugin("loopback", None, &cni_env("ADD", "c1", &path, "eth0"), &conf(v));
        r.ok();
        assert!(lo_up(&ns), "{v}");
        let j = r.json();
        assert_eq!(j["cniVersion"], *v);
        match *v {
            "0.1.0" | "0.2.0" => {
                assert_eq!(j["ip4"]["ip"], "127.0.0.1/8", "{v}: {j}");
                assert!(j.get("interfaces").is_none());
            }
            _ => {
                assert_eq!(j["interfaces"][0]["name"], "lo", "{v}: {j}");
                assert_eq!(j["interfaces"][0]["mac"], "00:00:00:00:00:00");
                assert_eq!(j["interfaces"][0]["sandbox"], path.as_str());
                assert_eq!(j["interfaces"].as_array().map(Vec::len), Some(1));
                assert_eq!(j["ips"][0]["address"], "127.0.0.1/8", "{v}: {j}");
                assert_eq!(j["ips"][0]["interface"], 0);
                assert!(j["ips"][0].get("gateway").is_none());
                let ips = j["ips"].as_array().expect("ips");
                assert!(ips.len() <= 2);
                if ips.len() == 2 {
                    assert_eq!(ips[1]["address"], "::1/128");
                }
            }
        }
        if !matches!(*v, "0.1.0" | "0.2.0" | "0.3.0" | "0.3.1") {
            let mut c: serde_json::Value = serde_json::from_str(&conf(v)).unwrap();
            c["prevResult"] = j.clone();
            plugin("loopback", None, &cni_env("CHECK", "c1", &path, "eth0"), &c.to_string()).ok();
        }
        plugin("loopback", None, &cni_env("DEL", "c1", &path, "eth0"), &conf(v)).ok();
        assert!(!lo_up(&ns), "{v}");
        // DEL again is fine.
        plugin("loopback", None, &cni_env("DEL", "c1", &path, "eth0"), &conf(v)).ok();
    }
}

#[test]
fn check_fails_when_lo_is_down() {
    if !root() {
        return;
    }
    let ns = Netns::bare("lo");
    let r = plugin("loopback", None, &cni_env("CHECK", "c1", &ns.path(), "lo"), &conf("1.0.0"));
    assert_eq!(r.code(), 999);
    assert!(r.stdout.contains("loopback interface is down"), "{r:?}");
}

#[test]
fn del_without_netns_succeeds() {
    if !root() {
        return;
    }
    let gone = "/run/netns/cbx-never-existed";
    plugin("loopback", None, &cni_env("DEL", "c1", gone, "lo"), &conf("0.3.1")).ok();
    let mut env = cni_env("DEL", "c1", "", "lo");
    env.retain(|(k, _)| *k != "CNI_NETNS");
    plugin("loopback", None, &env, &conf("0.3.1")).ok();
    // A namespace deleted after ADD.
    let ns = Netns::bare("lo");
    let path = ns.path();
    plugin("loopback", None, &cni_env("ADD", "c1", &path, "lo"), &conf("1.0.0")).ok();
    drop(ns);
    plugin("loopback", None, &cni_env("DEL", "c1", &path, "lo"), &conf("1.0.0")).ok();
}

#[test]
fn prev_result_passes_through() {
    if !root() {
        return;
    }
    let ns = Netns::bare("lo");
    let conf = r#"{"cniVersion":"1.0.0","name":"lo-net","type":"loopback","prevResult":{"cniVersion":"1.0.0",
        "interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"address":"10.1.2.3/24","interface":0}]}}"#;
    let r = plugin("loopback", None, &cni_env("ADD", "c1", &ns.path(), "lo"), conf);
    let j = r.ok().json();
    assert_eq!(j["ips"][0]["address"], "10.1.2.3/24");
    assert_eq!(j["interfaces"][0]["name"], "eth0");
    assert!(lo_up(&ns));
}

#[test]
fn non_loopback_address_on_lo_is_an_error() {
    if !root() {
        return;
    }
    let ns = Netns::new("lo");
    ns.exec("ip addr add 192.0.2.1/32 dev lo");
    let r = plugin("loopback", None, &cni_env("ADD", "c1", &ns.path(), "lo"), &conf("1.0.0"));
    assert_eq!(r.code(), 999);
    assert!(r.stdout.contains("loopback interface found with non-loopback address"), "{r:?}");
    assert!(r.stdout.contains("192.0.2.1"), "{r:?}");
}

#[test]
fn netns_that_is_not_a_namespace() {
    if !root() {
        return;
    }
    let r = plugin("loopback", None, &cni_env("ADD", "c1", "/etc/hostname", "lo"), &conf("1.0.0"));
    assert!(r.stdout.contains("unknown FS magic"), "{r:?}");
}
