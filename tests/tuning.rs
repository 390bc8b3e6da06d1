//! tuning chained after bridge, driven by the cnitool applet in a throwaway "host" namespace.

mod common;
use common::*;
use serde_json::{Value, json};

struct Fixture {
    host: Netns,
    confdir: TempDir,
    cache: TempDir,
    ipam: TempDir,
    backups: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            host: Netns::new("tuh"),
            confdir: TempDir::new("tuconf"),
            cache: TempDir::new("tucache"),
            ipam: TempDir::new("tuipam"),
            backups: TempDir::new("tubak"),
        }
    }

    /// Write the network `name`: bridge with host-local, then tuning with `tuning` merged in.
    fn network(&self, name: &str, version: &str, tuning: Value) -> String {
        let mut t = json!({"type": "tuning", "dataDir": self.backups.path()});
        merge(&mut t, tuning);
        let list = json!({
            "cniVersion": version,
            "name": name,
            "plugins": [
                {"type": "bridge", "bridge": "brtu", "ipam": {"type": "host-local", "dataDir": self.ipam.path(),
                                                               "subnet": "10.70.0.0/24"}},
                t
            ]
        });
        write_conf(self.confdir.path(), &format!("{name}.conflist"), &list);
        name.to_string()
    }

    fn tool(&self, verb: &str, net: &str, ns: &Netns, extra: &[(&str, &str)]) -> Reply {
        let mut env = vec![("CNI_CACHE_DIR", self.cache.path().to_str().unwrap())];
        env.extend_from_slice(extra);
        cnitool(Some(&self.host), self.confdir.path(), &[verb, net, &ns.path()], &env)
    }

    fn backup_files(&self) -> Vec<String> {
        std::fs::read_dir(self.backups.path())
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    }
}

fn read(ns: &Netns, cmd: &str) -> String {
    let (ok, out) = ns.exec(cmd);
    assert!(ok, "`{cmd}` failed");
    out.trim().to_string()
}

#[test]
fn sysctl_mac_mtu_promisc_applied_and_restored() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let net = f.network(
        "tunet",
        "1.0.0",
        json!({"sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "0", "net.ipv4.conf.IFNAME.forwarding": "1",
                          "net.core.somaxconn": "512"},
               "mac": "0a:58:0a:46:00:99", "mtu": 1400, "promisc": true, "allmulti": true, "txQLen": 123}),
    );
    let ns = Netns::new("tu");
    let r = f.tool("add", &net, &ns, &[]).ok().json();
    // The result is bridge's, with the container interface's MAC updated.
    let ifs = r["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 3, "{r}");
    assert_eq!(ifs[2]["name"], "eth0");
    assert_eq!(ifs[2]["mac"], "0a:58:0a:46:00:99");
    assert_eq!(r["ips"][0]["interface"], 2);

    assert_eq!(read(&ns, "cat /sys/class/net/eth0/address"), "0a:58:0a:46:00:99");
    assert_eq!(read(&ns, "cat /sys/class/net/eth0/mtu"), "1400");
    assert_eq!(read(&ns, "cat /sys/class/net/eth0/tx_queue_len"), "123");
    let flags = u32::from_str_radix(read(&ns, "cat /sys/class/net/eth0/flags").trim_start_matches("0x"), 16).unwrap();
    assert_ne!(flags & 0x100, 0, "promisc");
    assert_ne!(flags & 0x200, 0, "allmulti");
    assert_eq!(read(&ns, "cat /proc/sys/net/ipv4/conf/eth0/arp_notify"), "0");
    assert_eq!(read(&ns, "cat /proc/sys/net/ipv4/conf/eth0/forwarding"), "1");
    assert_eq!(read(&ns, "cat /proc/sys/net/core/somaxconn"), "512");
    // The originals are kept, in the reference's format.
    let files = f.backup_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with("_eth0.json"), "{files:?}");
    let backup: Value = serde_json::from_slice(&std::fs::read(f.backups.path().join(&files[0])).unwrap()).unwrap();
    assert_eq!(backup["mtu"], 1500);
    assert_eq!(backup["promisc"], false);
    assert_eq!(backup["allmulti"], false);
    assert_eq!(backup["txQLen"], 1000);
    let orig_mac = backup["mac"].as_str().unwrap().to_string();
    assert_ne!(orig_mac, "0a:58:0a:46:00:99");

    // CHECK through the whole chain passes; a drifted MTU fails it.
    f.tool("check", &net, &ns, &[]).ok();
    assert!(ns.exec("ip link set eth0 mtu 1300").0);
    let e = f.tool("check", &net, &ns, &[]);
    assert_eq!(e.status, 1);
    assert!(e.stderr.contains("Tuning configured MTU of eth0 is 1400, current value is 1300"), "{e:?}");
    assert!(ns.exec("ip link set eth0 mtu 1400").0);

    // DEL restores the link's attributes (tuning runs first, before bridge deletes the link).
    // Watch them by deleting through tuning alone, then the rest.
    let tuning_only = f.network(
        "tuonly",
        "1.0.0",
        json!({"mac": "0a:58:0a:46:00:99", "mtu": 1400, "promisc": true, "allmulti": true, "txQLen": 123}),
    );
    let list: Value =
        serde_json::from_slice(&std::fs::read(f.confdir.path().join(format!("{tuning_only}.conflist"))).unwrap())
            .unwrap();
    let mut tconf = list["plugins"][1].clone();
    tconf["cniVersion"] = json!("1.0.0");
    tconf["name"] = json!("tunet");
    let cid = files[0].trim_end_matches("_eth0.json").to_string();
    let mut env = cni_env("DEL", &cid, "", "eth0");
    let p = ns.path();
    env.retain(|(k, _)| *k != "CNI_NETNS");
    env.push(("CNI_NETNS", &p));
    plugin("tuning", Some(&f.host), &env, &tconf.to_string()).ok();
    assert_eq!(read(&ns, "cat /sys/class/net/eth0/address"), orig_mac);
    assert_eq!(read(&ns, "cat /sys/class/net/eth0/mtu"), "1500");
    assert_eq!(read(&ns, "cat /sys/class/net/eth0/tx_queue_len"), "1000");
    let flags = u32::from_str_radix(read(&ns, "cat /sys/class/net/eth0/flags").trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 0x300, 0, "promisc and allmulti off again");
    assert!(f.backup_files().is_empty());

    f.tool("del", &net, &ns, &[]).ok();
    assert!(!ns.exec("ip link show eth0").0);
    // DEL again: nothing left to restore, still fine.
    f.tool("del", &net, &ns, &[]).ok();
}

#[test]
fn refusals_and_args_overrides() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let ns = Netns::new("tur");
    // Outside /proc/sys/net.
    let net = f.network("tubad", "1.0.0", json!({"sysctl": {"kernel.hostname": "x"}}));
    let r = f.tool("add", &net, &ns, &[]);
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("invalid net sysctl key"), "{r:?}");
    // bridge's part was undone by the runtime's DEL.
    f.tool("del", &net, &ns, &[]).ok();

    // A write-only parameter (mode 0200) is written, not refused because it cannot be read.
    let net = f.network("tuflush", "1.0.0", json!({"sysctl": {"net.ipv6.route.flush": "1"}}));
    f.tool("add", &net, &ns, &[]).ok();
    f.tool("del", &net, &ns, &[]).ok();

    // args.cni overrides the configuration.
    let net =
        f.network("tuargs", "0.4.0", json!({"mtu": 1400, "args": {"cni": {"mtu": 1450, "mac": "0a:58:0a:46:00:42"}}}));
    let r = f.tool("add", &net, &ns, &[]).ok().json();
    assert_eq!(r["interfaces"][2]["mac"], "0a:58:0a:46:00:42");
    assert_eq!(read(&ns, "cat /sys/class/net/eth0/mtu"), "1450");
    f.tool("check", &net, &ns, &[]).ok();
    f.tool("del", &net, &ns, &[]).ok();
    assert!(f.backup_files().is_empty());

    // Without prevResult (tuning alone), ADD is refused.
    let conf = json!({"cniVersion": "1.0.0", "name": "tualone", "type": "tuning"});
    let p = ns.path();
    let env = cni_env("ADD", "c1", &p, "eth0");
    let r = plugin("tuning", Some(&f.host), &env, &conf.to_string());
    assert!(r.stdout.contains("Required prevResult missing"), "{r:?}");
    // Duplicate sysctl keys are refused.
    let dup = r#"{"cniVersion":"1.0.0","name":"tudup","type":"tuning","prevResult":{"cniVersion":"1.0.0"},
                  "sysctl":{"net.core.somaxconn":"1","net.core.somaxconn":"2"}}"#;
    let r = plugin("tuning", Some(&f.host), &env, dup);
    assert!(r.stdout.contains("duplicated sysctl keys are not allowed"), "{r:?}");

    // An ADD refused for a bad MAC or MTU: the runtime's DEL still succeeds (as the reference's).
    for bad in [json!({"mac": "02:00:00:00:00"}), json!({"mtu": -1})] {
        let net = f.network("tubadmac", "1.0.0", bad.clone());
        assert_eq!(f.tool("add", &net, &ns, &[]).status, 1, "{bad}");
        f.tool("del", &net, &ns, &[]).ok();
    }
    // Written as a Go program may write it: keys in another case, null for the default.
    let net = f.network("tucase", "1.0.0", json!({"MTU": 1420, "txqlen": 700, "mac": null, "promisc": null}));
    f.tool("add", &net, &ns, &[]).ok();
    assert_eq!(read(&ns, "cat /sys/class/net/eth0/mtu"), "1420");
    assert_eq!(read(&ns, "cat /sys/class/net/eth0/tx_queue_len"), "700");
    f.tool("del", &net, &ns, &[]).ok();
    assert!(f.backup_files().is_empty());
}

#[test]
fn a_failed_add_puts_back_what_it_changed() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let ns = Netns::new("tuundo");
    assert!(ns.exec("ip link add eth0 type veth peer name tupeer0").0);
    let mac = read(&ns, "cat /sys/class/net/eth0/address");
    let p = ns.path();
    let prev = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": p}]});
    let env = cni_env("ADD", "u1", &p, "eth0");
    for (what, extra) in [
        (
            "a link change",
            json!({"mac": "02:00:00:00:00:01", "mtu": 99999, "sysctl": {"net.ipv4.conf.eth0.arp_ignore": "1"}}),
        ),
        ("a sysctl", json!({"sysctl": {"net.ipv4.conf.eth0.arp_ignore": "1", "net.ipv4.nosuch": "1"}})),
    ] {
        let mut conf = json!({"cniVersion": "1.0.0", "name": "tuundo", "type": "tuning",
            "dataDir": f.backups.path(), "prevResult": prev});
        merge(&mut conf, extra);
        let r = plugin("tuning", Some(&f.host), &env, &conf.to_string());
        assert_eq!(r.status, 1, "{what}: {r:?}");
        assert_eq!(read(&ns, "cat /sys/class/net/eth0/address"), mac, "{what}");
        assert_eq!(read(&ns, "cat /proc/sys/net/ipv4/conf/eth0/arp_ignore"), "0", "{what}");
        assert!(f.backup_files().is_empty(), "{what}: {:?}", f.backup_files());
    }
}

#[test]
fn gc_removes_backups_of_attachments_no_longer_valid() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let ns = Netns::new("tugc");
    let p = ns.path();
    for ifname in ["eth1", "eth2"] {
        assert!(ns.exec(&format!("ip link add {ifname} type veth peer name p{ifname}")).0);
    }
    let conf = |net: &str, ifname: &str| {
        json!({"cniVersion": "1.1.0", "name": net, "type": "tuning", "dataDir": f.backups.path(), "mtu": 1400,
            "prevResult": {"cniVersion": "1.1.0", "interfaces": [{"name": ifname, "sandbox": p}]}})
        .to_string()
    };
    plugin("tuning", Some(&f.host), &cni_env("ADD", "g_1", &p, "eth1"), &conf("tugc", "eth1")).ok();
    plugin("tuning", Some(&f.host), &cni_env("ADD", "g2", &p, "eth2"), &conf("tugc", "eth2")).ok();
    plugin("tuning", Some(&f.host), &cni_env("ADD", "o1", &p, "eth2"), &conf("tugc-other", "eth2")).ok();
    // The reference's backups name no owner: left to their DEL.
    std::fs::write(f.backups.path().join("ref_eth0.json"), r#"{"mtu": 1500}"#).unwrap();
    let mut gc: Value = serde_json::from_str(&conf("tugc", "eth1")).unwrap();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "g2", "ifname": "eth2"}]);
    plugin("tuning", Some(&f.host), &[("CNI_COMMAND", "GC"), ("CNI_PATH", "/opt/cni/bin")], &gc.to_string()).ok();
    let mut left = f.backup_files();
    left.sort();
    assert_eq!(left, ["g2_eth2.json", "o1_eth2.json", "ref_eth0.json"]);
}

/// A node can switch between the reference tuning and ours with attachments in place: each
/// restores what the other backed up.
#[test]
fn backups_interchange_with_the_reference() {
    if !root() {
        return;
    }
    if !std::path::Path::new("/usr/lib/cni/tuning").exists() {
        eprintln!("skipping: no reference tuning plugin in /usr/lib/cni");
        return;
    }
    let f = Fixture::new();
    let ns = Netns::new("tux");
    assert!(ns.exec("ip link add eth0 type veth peer name tupeer && ip link set eth0 up").0);
    let orig_mac = read(&ns, "cat /sys/class/net/eth0/address");
    let prev = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "mac": orig_mac, "sandbox": ns.path()}]});
    let conf = json!({"cniVersion": "1.0.0", "name": "tux", "type": "tuning", "dataDir": f.backups.path(),
                      "mac": "0a:58:0a:46:00:77", "mtu": 1300, "promisc": true, "prevResult": prev})
    .to_string();
    let p = ns.path();
    let env = |cmd: &'static str| {
        let mut e = cni_env(cmd, "cx", "", "eth0");
        e.retain(|(k, _)| *k != "CNI_NETNS");
        e.push(("CNI_NETNS", p.as_str()));
        e
    };
    let restored = |who: &str| {
        assert_eq!(read(&ns, "cat /sys/class/net/eth0/address"), orig_mac, "{who}");
        assert_eq!(read(&ns, "cat /sys/class/net/eth0/mtu"), "1500", "{who}");
        assert!(!read(&ns, "ip link show eth0").contains("PROMISC"), "{who}");
        assert!(f.backup_files().is_empty(), "{who}: {:?}", f.backup_files());
    };
    for (adder, deleter) in [("reference", "cnibox"), ("cnibox", "reference")] {
        let r = if adder == "reference" {
            reference_plugin("tuning", &f.host, &env("ADD"), &conf)
        } else {
            plugin("tuning", Some(&f.host), &env("ADD"), &conf)
        };
        assert_eq!(r.json()["interfaces"][0]["mac"], "0a:58:0a:46:00:77", "{adder}: {r:?}");
        assert_eq!(read(&ns, "cat /sys/class/net/eth0/mtu"), "1300");
        assert_eq!(f.backup_files(), vec!["cx_eth0.json".to_string()]);
        let r = if deleter == "reference" {
            reference_plugin("tuning", &f.host, &env("DEL"), &conf)
        } else {
            plugin("tuning", Some(&f.host), &env("DEL"), &conf)
        };
        r.ok();
        restored(&format!("{adder} ADD, {deleter} DEL"));
    }
}
