//! bridge in real namespaces: the "host" is a throwaway namespace too.

mod common;
#[path = "common/reach.rs"]
mod reach;
use common::*;
use reach::{Patience, reach_with};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::Duration;

/// A host namespace, an IPAM data directory and the plugin path (ours, then the distribution's
/// for host-local while it is not built in).
struct Fixture {
    host: Netns,
    data: TempDir,
    path: String,
}

impl Fixture {
    fn new() -> Fixture {
        let host = Netns::new("host");
        let path = path_with_distribution();
        Fixture { host, data: TempDir::new("brdata"), path }
    }

    /// A config at `version` with host-local on `subnet` (or `ranges` when `subnet` is a JSON
    /// array), and `extra` fields merged on top.
    fn conf(&self, version: &str, subnet: Value, extra: Value) -> String {
        let mut ipam = json!({"type": "host-local", "dataDir": self.data.path()});
        match subnet {
            Value::Array(_) => ipam["ranges"] = subnet,
            Value::Null => ipam = json!({}),
            s => ipam["subnet"] = s,
        }
        let mut c = json!({"cniVersion": version, "name": "brnet", "type": "bridge", "ipam": ipam});
        merge(&mut c, extra);
        c.to_string()
    }

    fn call(&self, cmd: &str, cid: &str, netns: &str, ifname: &str, conf: &str) -> Reply {
        let env = call_env(cmd, cid, netns, ifname, Some(&self.path));
        plugin("bridge", Some(&self.host), &env, conf)
    }

    fn add(&self, cid: &str, ns: &Netns, conf: &str) -> Value {
        self.call("ADD", cid, &ns.path(), "eth0", conf).ok().json()
    }

    fn del(&self, cid: &str, ns: &Netns, conf: &str) {
        self.call("DEL", cid, &ns.path(), "eth0", conf).ok();
    }

    /// The plugin's host-side veths (named `veth` + 8 hex digits).
    fn veths(&self) -> Vec<String> {
        self.host
            .sh("ip -o link show type veth")
            .lines()
            .filter_map(|l| l.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n).to_string()))
            .filter(|n| n.starts_with("veth"))
            .collect()
    }

    /// Addresses host-local holds for this network.
    fn leases(&self) -> Vec<String> {
        leases(self.data.path(), "brnet")
    }
}

/// Whether the IPAM in use speaks `version`: the built-in host-local when cnibox has it,
/// else the distribution's.
fn ipam_speaks(version: &str) -> bool {
    if plugin_dir().join("host-local").exists() {
        return true;
    }
    let out = std::process::Command::new("/usr/lib/cni/host-local").env("CNI_COMMAND", "VERSION").output();
    let ok = out.map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("\"{version}\""))).unwrap_or(false);
    if !ok {
        eprintln!("skipping {version} with IPAM: host-local here does not speak it");
    }
    ok
}

/// A UDP round trip from the namespace `from` to `to_ip` served in the namespace `to`.
fn reach(from: &str, to: &str, to_ip: IpAddr) -> bool {
    let patience = Patience {
        bind: Duration::from_secs(4),
        serve: Duration::from_secs(5),
        tries: 8,
        reply: Duration::from_millis(500),
    };
    reach_with(from, to, to_ip, &patience)
}

#[test]
fn two_pods_reach_each_other_and_the_gateway() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let conf = f.conf("1.0.0", json!("10.99.0.0/24"), json!({"isGateway": true}));
    let (a, b) = (Netns::new("pa"), Netns::new("pb"));
    let ra = f.add("ca", &a, &conf);
    let rb = f.add("cb", &b, &conf);

    // Layout: [bridge, host veth, container], every IP on interface 2.
    let ifs = ra["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifs.len(), 3, "{ra}");
    assert_eq!(ifs[0]["name"], "cni0");
    assert!(ifs[0].get("sandbox").is_none());
    let veth = ifs[1]["name"].as_str().unwrap();
    assert!(veth.starts_with("veth") && veth.len() == 12, "{veth}");
    assert_eq!(ifs[2]["name"], "eth0");
    assert_eq!(ifs[2]["sandbox"], a.path().as_str());
    assert_eq!(ra["ips"][0]["interface"], 2);
    assert_eq!(ra["ips"][0]["gateway"], "10.99.0.1");
    // The MACs reported are the kernel's.
    let br_mac = f.host.sh("cat /sys/class/net/cni0/address");
    assert_eq!(ifs[0]["mac"], br_mac.trim());
    let (_, cmac) = a.exec("cat /sys/class/net/eth0/address");
    assert_eq!(ifs[2]["mac"], cmac.trim());

    // Host side: the gateway on the bridge, forwarding on, accept_ra off on bridge and port.
    assert!(f.host.sh("ip -o addr show dev cni0").contains("10.99.0.1/24"));
    assert_eq!(f.host.sh("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    assert_eq!(f.host.sh("cat /proc/sys/net/ipv6/conf/cni0/accept_ra").trim(), "0");
    assert_eq!(f.host.sh(&format!("cat /proc/sys/net/ipv6/conf/{veth}/accept_ra")).trim(), "0");
    assert!(f.host.sh(&format!("ip -o link show {veth}")).contains("master cni0"));
    // Container side: arp_notify on, accept_dad off.
    assert_eq!(a.exec("cat /proc/sys/net/ipv4/conf/eth0/arp_notify").1.trim(), "1");
    assert_eq!(a.exec("cat /proc/sys/net/ipv6/conf/eth0/accept_dad").1.trim(), "0");

    let (ipa, ipb) = (ip_of(&ra, 0), ip_of(&rb, 0));
    assert!(reach(&a.path(), &b.path(), ipb), "pod a -> pod b");
    assert!(reach(&b.path(), &a.path(), ipa), "pod b -> pod a");
    assert!(reach(&a.path(), &f.host.path(), "10.99.0.1".parse().unwrap()), "pod a -> gateway");

    // Turned back on by hand: the next ADD turns it off again.
    f.host.sh("echo 1 > /proc/sys/net/ipv6/conf/cni0/accept_ra");
    let c = Netns::new("pc");
    f.add("cc", &c, &conf);
    assert_eq!(f.host.sh("cat /proc/sys/net/ipv6/conf/cni0/accept_ra").trim(), "0");
    f.del("cc", &c, &conf);

    f.del("ca", &a, &conf);
    f.del("cb", &b, &conf);
    assert!(f.veths().is_empty());
    assert!(f.leases().is_empty());
    assert!(!a.exec("ip link show eth0").0);
}

#[test]
fn default_gateway_route_and_ipv6_dual_stack() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let ranges = json!([[{"subnet": "10.98.0.0/24"}], [{"subnet": "fd98::/64"}]]);
    let v = if ipam_speaks("1.1.0") { "1.1.0" } else { "1.0.0" };
    let conf = f.conf(v, ranges, json!({"isDefaultGateway": true, "bridge": "brds"}));
    let (a, b) = (Netns::new("da"), Netns::new("db"));
    let ra = f.add("ca", &a, &conf);
    let rb = f.add("cb", &b, &conf);
    let ips = ra["ips"].as_array().unwrap();
    assert_eq!(ips.len(), 2, "{ra}");
    assert_eq!(ips[1]["gateway"], "fd98::1");
    assert_eq!(ips[1]["interface"], 2);
    let routes = ra["routes"].as_array().unwrap();
    assert!(routes.iter().any(|r| r["dst"] == "0.0.0.0/0" && r["gw"] == "10.98.0.1"), "{ra}");
    assert!(routes.iter().any(|r| r["dst"] == "::/0" && r["gw"] == "fd98::1"), "{ra}");
    assert!(a.exec("ip route show default").1.contains("via 10.98.0.1 dev eth0"));
    assert!(a.exec("ip -6 route show default").1.contains("via fd98::1 dev eth0"));
    assert!(f.host.sh("ip -o addr show dev brds").contains("fd98::1/64"));
    assert_eq!(f.host.sh("cat /proc/sys/net/ipv6/conf/all/forwarding").trim(), "1");

    assert!(reach(&a.path(), &b.path(), ip_of(&rb, 1)), "v6 pod a -> pod b");
    assert!(reach(&b.path(), &a.path(), ip_of(&ra, 0)), "v4 pod b -> pod a");
    assert!(reach(&a.path(), &f.host.path(), "fd98::1".parse().unwrap()), "v6 pod a -> gateway");

    // CHECK passes, including the default routes.
    let mut c: Value = serde_json::from_str(&conf).unwrap();
    c["prevResult"] = ra.clone();
    f.call("CHECK", "ca", &a.path(), "eth0", &c.to_string()).ok();
    f.del("ca", &a, &conf);
    f.del("cb", &b, &conf);
    assert!(f.leases().is_empty());
}

#[test]
fn ipv6_only() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let conf = f.conf("1.0.0", json!("fd97::/64"), json!({"isGateway": true}));
    let (a, b) = (Netns::new("6a"), Netns::new("6b"));
    let ra = f.add("ca", &a, &conf);
    let rb = f.add("cb", &b, &conf);
    assert_eq!(ra["ips"].as_array().unwrap().len(), 1);
    assert!(reach(&a.path(), &b.path(), ip_of(&rb, 0)));
    assert!(reach(&b.path(), &a.path(), ip_of(&ra, 0)));
    f.del("ca", &a, &conf);
    f.del("cb", &b, &conf);
}

fn kernel_has_vlan_filtering() -> bool {
    let ns = Netns::new("vf");
    let (ok, _) = ns.exec("ip link add vftest type bridge vlan_filtering 1");
    if !ok {
        let required = std::env::var("CNIBOX_REQUIRE_VLAN_FILTERING").is_ok_and(|v| v == "1");
        assert!(!required, "bridge VLAN filtering required (CNIBOX_REQUIRE_VLAN_FILTERING=1) but this kernel has none");
        eprintln!("skipping VLAN checks: this kernel has no bridge VLAN filtering");
    }
    ok
}

#[test]
fn vlan_access_and_trunk_ports() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let access =
        f.conf("1.0.0", json!("10.96.0.0/24"), json!({"bridge": "brv", "vlan": 100, "preserveDefaultVlan": false}));
    let trunk = f.conf(
        "1.0.0",
        Value::Null,
        json!({"bridge": "brv", "vlanTrunk": [{"minID": 101, "maxID": 103}, {"id": 200}]}),
    );
    let (a, b) = (Netns::new("va"), Netns::new("vb"));
    if !kernel_has_vlan_filtering() {
        // The kernel's refusal comes through, and nothing is left behind.
        let r = f.call("ADD", "ca", &a.path(), "eth0", &access);
        assert_eq!(r.code(), 999);
        assert!(r.stdout.contains("failed to create bridge \\\"brv\\\""), "{r:?}");
        assert!(r.stdout.contains("Operation not supported"), "{r:?}");
        assert!(f.veths().is_empty());
        assert!(f.leases().is_empty());
        return;
    }
    let ra = f.add("ca", &a, &access);
    let va = ra["interfaces"][1]["name"].as_str().unwrap().to_string();
    let show = f.host.sh(&format!("bridge vlan show dev {va}"));
    assert!(show.contains("100 PVID Egress Untagged"), "{show}");
    assert!(!show.contains(" 1 PVID"), "default VLAN must be gone: {show}");
    let rb = f.add("cb", &b, &trunk);
    let vb = rb["interfaces"][1]["name"].as_str().unwrap().to_string();
    let show = f.host.sh(&format!("bridge vlan show dev {vb}"));
    for vid in ["101", "102", "103", "200"] {
        assert!(show.contains(vid), "{vid}: {show}");
    }
    assert!(show.contains("1 PVID Egress Untagged"), "a trunk without vlan has native VLAN 1: {show}");
    // vlan with vlanTrunk: vlan is the trunk's native VLAN; VLAN 1 is gone (preserveDefaultVlan defaults to false).
    let both = f.conf("1.0.0", Value::Null, json!({"bridge": "brv", "vlan": 300, "vlanTrunk": [{"id": 301}]}));
    let c = Netns::new("vc");
    let rc = f.add("cc", &c, &both);
    let vc = rc["interfaces"][1]["name"].as_str().unwrap().to_string();
    let show = f.host.sh(&format!("bridge vlan show dev {vc}"));
    assert!(show.contains("300 PVID Egress Untagged"), "{show}");
    assert!(show.contains("301"), "{show}");
    assert!(!show.contains(" 1 PVID"), "default VLAN must be gone: {show}");
    f.del("ca", &a, &access);
    f.del("cb", &b, &trunk);
    f.del("cc", &c, &both);
    assert!(f.veths().is_empty());
}

#[test]
fn port_flags_promisc_mtu_mac_and_l2_only() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let conf = f.conf(
        "1.0.0",
        Value::Null,
        json!({"bridge": "brf", "hairpinMode": true, "portIsolation": true, "mtu": 1400,
               "runtimeConfig": {"mac": "0a:58:00:00:00:42"}, "dns": {"nameservers": ["10.0.0.53"]}}),
    );
    let a = Netns::new("fa");
    let r = f.add("ca", &a, &conf);
    let veth = r["interfaces"][1]["name"].as_str().unwrap().to_string();
    let d = f.host.sh(&format!("ip -d link show {veth}"));
    assert!(d.contains("hairpin on"), "{d}");
    assert!(d.contains("isolated on"), "{d}");
    assert!(d.contains("mtu 1400"), "{d}");
    assert!(f.host.sh("ip link show brf").contains("mtu 1400"));
    assert_eq!(r["interfaces"][2]["mac"], "0a:58:00:00:00:42");
    assert!(r.get("ips").is_none(), "L2 only: {r}");
    assert_eq!(r["dns"]["nameservers"][0], "10.0.0.53");
    let (_, link) = a.exec("ip link show eth0");
    assert!(link.contains("state UP") || link.contains(",UP"), "{link}");
    assert!(link.contains("0a:58:00:00:00:42") && link.contains("mtu 1400"), "{link}");
    f.del("ca", &a, &conf);

    // Written as a Go program may write it: null for "the default", keys in another case.
    let nulls = f.conf(
        "1.0.0",
        json!("10.93.0.0/24"),
        json!({"Bridge": "brn", "mtu": null, "isGateway": true, "ipMasq": null, "HairpinMode": null, "vlan": null}),
    );
    let n = Netns::new("fn");
    let r = f.add("cn", &n, &nulls);
    assert_eq!(r["interfaces"][0]["name"], "brn", "{r}");
    assert!(f.host.sh("ip -4 addr show brn").contains("10.93.0.1/24"));
    f.del("cn", &n, &nulls);

    // promiscMode on the bridge; with hairpin it is refused.
    let promisc = f.conf("1.0.0", Value::Null, json!({"bridge": "brp", "promiscMode": true}));
    let b = Netns::new("fb");
    f.add("cb", &b, &promisc);
    assert!(f.host.sh("ip link show brp").contains("PROMISC"));
    f.del("cb", &b, &promisc);
    let both = f.conf("1.0.0", Value::Null, json!({"bridge": "brp", "promiscMode": true, "hairpinMode": true}));
    let r = f.call("ADD", "cc", &b.path(), "eth0", &both);
    assert!(r.stdout.contains("cannot set hairpin mode and promiscuous mode at the same time"), "{r:?}");

    // MAC from CNI_ARGS and args.cni.mac; runtimeConfig wins over both.
    let args_mac =
        f.conf("1.0.0", Value::Null, json!({"bridge": "brm", "args": {"cni": {"mac": "0a:58:00:00:00:43"}}}));
    let c = Netns::new("fc");
    let cpath = c.path();
    let mut env = call_env("ADD", "cm", &cpath, "eth0", Some(&f.path));
    env.push(("CNI_ARGS", "IgnoreUnknown=1;MAC=0a:58:00:00:00:44"));
    let r = plugin("bridge", Some(&f.host), &env, &args_mac).ok().json();
    assert_eq!(r["interfaces"][2]["mac"], "0a:58:00:00:00:43");
    f.del("cm", &c, &args_mac);
}

#[test]
fn unsupported_and_invalid_fields_are_refused() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let a = Netns::new("ua");
    for (extra, text) in [
        (json!({"ipMasq": true, "ipMasqBackend": "bogus"}), "unknown ipmasq backend"),
        (json!({"vlan": 5000}), "invalid VLAN ID 5000 (must be between 0 and 4094)"),
        (json!({"disableContainerInterface": true}), "disableContainerInterface"),
        (json!({"runtimeConfig": {"mac": "nonsense"}}), "invalid MAC address"),
        (json!({"bridge": "averyverylongbridge0"}), "invalid bridge name"),
    ] {
        let conf = f.conf("1.0.0", json!("10.95.0.0/24"), extra);
        let r = f.call("ADD", "ca", &a.path(), "eth0", &conf);
        assert_eq!(r.status, 1, "{r:?}");
        assert!(r.stdout.contains(text), "{text}: {r:?}");
        assert!(f.veths().is_empty());
        assert!(f.leases().is_empty());
        // The runtime's DEL after the failed ADD succeeds where nothing it needs is wrong
        // (as the reference's does): the MAC and the bridge's name matter only to ADD.
        if text.contains("MAC") || text.contains("bridge name") {
            f.call("DEL", "ca", &a.path(), "eth0", &conf).ok();
        }
    }
    // ipMasq off is accepted.
    let conf = f.conf("1.0.0", json!("10.95.0.0/24"), json!({"ipMasq": false, "macspoofchk": false}));
    f.add("ca", &a, &conf);
    f.del("ca", &a, &conf);
}

#[test]
fn result_shape_at_every_version() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    for v in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        if !ipam_speaks(v) {
            continue;
        }
        let conf = f.conf(v, json!("10.94.0.0/24"), json!({"isGateway": true}));
        let ns = Netns::new("rv");
        let r = f.add("c", &ns, &conf);
        assert_eq!(r["cniVersion"], v);
        match v {
            "0.1.0" | "0.2.0" => {
                assert!(r["ip4"]["ip"].as_str().unwrap().starts_with("10.94.0."), "{v}: {r}");
                assert_eq!(r["ip4"]["gateway"], "10.94.0.1");
                assert!(r.get("interfaces").is_none());
            }
            "0.3.0" | "0.3.1" | "0.4.0" => {
                assert_eq!(r["interfaces"].as_array().unwrap().len(), 3, "{v}: {r}");
                assert_eq!(r["ips"][0]["version"], "4");
                assert_eq!(r["ips"][0]["interface"], 2);
            }
            _ => {
                assert_eq!(r["interfaces"].as_array().unwrap().len(), 3, "{v}: {r}");
                assert!(r["ips"][0].get("version").is_none());
                assert_eq!(r["ips"][0]["interface"], 2);
            }
        }
        f.del("c", &ns, &conf);
    }
    assert!(f.veths().is_empty());
    assert!(f.leases().is_empty());
}

#[test]
fn check_passes_then_fails_when_the_address_is_removed() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let conf = f.conf("1.0.0", json!("10.93.0.0/24"), json!({"isDefaultGateway": true}));
    let a = Netns::new("ck");
    let r = f.add("ca", &a, &conf);
    let mut c: Value = serde_json::from_str(&conf).unwrap();
    c["prevResult"] = r.clone();
    let check = c.to_string();
    f.call("CHECK", "ca", &a.path(), "eth0", &check).ok();
    // Without prevResult, CHECK fails.
    let r2 = f.call("CHECK", "ca", &a.path(), "eth0", &conf);
    assert!(r2.stdout.contains("Required prevResult missing"), "{r2:?}");
    // Someone removes the container's address.
    let addr = r["ips"][0]["address"].as_str().unwrap();
    assert!(a.exec(&format!("ip addr del {addr} dev eth0")).0);
    let r3 = f.call("CHECK", "ca", &a.path(), "eth0", &check);
    assert_eq!(r3.status, 1);
    assert!(r3.stdout.contains("Failed to match addr"), "{r3:?}");
    f.del("ca", &a, &conf);
}

#[test]
fn del_twice_and_after_the_netns_is_gone() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let conf = f.conf("0.4.0", json!("10.92.0.0/24"), json!({}));
    let a = Netns::new("dl");
    f.add("ca", &a, &conf);
    f.del("ca", &a, &conf);
    // DEL returns once the kernel has unregistered the pair (it leaves the wait for the pair's
    // memory to a child process): both ends are gone and the name is free at once.
    assert!(f.veths().is_empty());
    assert!(!a.exec("ip link show eth0").0);
    f.add("ca", &a, &conf);
    f.del("ca", &a, &conf);
    f.del("ca", &a, &conf);
    assert!(f.veths().is_empty());

    let b = Netns::new("dl");
    let path = b.path();
    f.add("cb", &b, &conf);
    assert_eq!(f.leases().len(), 1);
    drop(b);
    f.call("DEL", "cb", &path, "eth0", &conf).ok();
    assert!(f.leases().is_empty(), "lease released although the netns is gone");
    // Empty CNI_NETNS: IPAM only.
    let c = Netns::new("dl");
    f.add("cc", &c, &conf);
    f.call("DEL", "cc", "", "eth0", &conf).ok();
    assert!(f.leases().is_empty());
}

#[test]
fn failed_add_leaves_no_veth_and_no_lease() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    // The interface name is taken in the container.
    let conf = f.conf("1.0.0", json!("10.91.0.0/24"), json!({}));
    let a = Netns::new("fx");
    assert!(a.exec("ip link add eth0 type veth peer name xpeer").0);
    let r = f.call("ADD", "ca", &a.path(), "eth0", &conf);
    assert_eq!(r.status, 1);
    assert!(r.stdout.contains("\\\"eth0\\\" already exists"), "{r:?}");
    assert!(f.veths().is_empty());
    assert!(f.leases().is_empty());

    // The range is exhausted: the veth made before IPAM is removed again.
    let one = f.conf(
        "1.0.0",
        json!([[{"subnet": "10.90.0.0/24", "rangeStart": "10.90.0.10", "rangeEnd": "10.90.0.10"}]]),
        json!({}),
    );
    let (b, c) = (Netns::new("fx"), Netns::new("fx"));
    f.add("cb", &b, &one);
    let r = f.call("ADD", "cc", &c.path(), "eth0", &one);
    assert_eq!(r.status, 1, "{r:?}");
    assert_eq!(f.veths().len(), 1);
    assert_eq!(f.leases(), vec!["10.90.0.10".to_string()]);
    assert!(!c.exec("ip link show eth0").0);
    f.del("cb", &b, &one);
    assert!(f.veths().is_empty());
    assert!(f.leases().is_empty());
}

#[test]
fn a_hundred_pods_leave_nothing_behind() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let conf = f.conf("1.0.0", json!("10.89.0.0/24"), json!({"isGateway": true}));
    // The routes, without the `linkdown` flag: the kernel sets it on the bridge's routes a moment
    // after its last port leaves (carrier follows the ports asynchronously), which is not a leak.
    let routes = || f.host.sh("ip route show; ip -6 route show").replace(" linkdown", "");
    let routes_before = {
        let probe = Netns::new("hp");
        f.add("probe", &probe, &conf);
        f.del("probe", &probe, &conf);
        routes()
    };
    for i in 0..100 {
        let ns = Netns::new("hp");
        let cid = format!("pod{i}");
        f.add(&cid, &ns, &conf);
        f.del(&cid, &ns, &conf);
    }
    assert!(f.veths().is_empty());
    assert!(f.leases().is_empty());
    assert_eq!(routes(), routes_before);
}

#[test]
fn concurrent_first_pods_report_the_bridge_mac_it_keeps() {
    if !root() {
        return;
    }
    // Many pods at once on a bridge that does not exist yet: its MAC follows its lowest port's
    // until the first gateway address pins it, so each result must hold the MAC the bridge
    // ends up with, which CHECK compares.
    let f = Fixture::new();
    let conf = f.conf("1.0.0", json!("10.90.0.0/24"), json!({"bridge": "cbxmac", "isGateway": true}));
    let pods: Vec<Netns> = (0..12).map(|_| Netns::new("cm")).collect();
    let (f, conf) = (&f, &conf);
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> =
            pods.iter().enumerate().map(|(i, ns)| s.spawn(move || f.add(&format!("mac{i}"), ns, conf))).collect();
        handles.into_iter().map(|h| h.join().expect("ADD thread")).collect()
    });
    let bridge_mac = f.host.sh("cat /sys/class/net/cbxmac/address").trim().to_string();
    for (i, (r, ns)) in results.iter().zip(&pods).enumerate() {
        assert_eq!(r["interfaces"][0]["mac"], bridge_mac.as_str(), "pod {i}: {r}");
        let mut checked: Value = serde_json::from_str(conf).expect("conf");
        checked["prevResult"] = r.clone();
        f.call("CHECK", &format!("mac{i}"), &ns.path(), "eth0", &checked.to_string()).ok();
    }
    for (i, ns) in pods.iter().enumerate() {
        f.del(&format!("mac{i}"), ns, conf);
    }
}

#[test]
fn sysfs_of_another_namespace_is_not_trusted() {
    if !root() {
        return;
    }
    // nsenter changes the network namespace but keeps the node's /sys, which then shows other
    // links (a runtime in a namespace of its own can be in that position): the port's state and
    // the MACs come from the kernel instead, and are the same.
    let f = Fixture::new();
    let conf = f.conf("1.0.0", json!("10.91.0.0/24"), json!({"bridge": "cbxsys", "isGateway": true}));
    let pod = Netns::new("sy");
    let mut nsenter = std::process::Command::new("nsenter");
    nsenter.arg(format!("--net={}", f.host.path())).arg(plugin_dir().join("bridge"));
    let pod_path = pod.path();
    let env = call_env("ADD", "sys0", &pod_path, "eth0", Some(&f.path));
    let r = run_plugin(nsenter, &env, &conf).ok().json();
    let mac_of = |dev: &str| f.host.sh(&format!("cat /sys/class/net/{dev}/address")).trim().to_string();
    assert_eq!(r["interfaces"][0]["mac"], mac_of("cbxsys").as_str(), "{r}");
    let port = r["interfaces"][1]["name"].as_str().expect("port name").to_string();
    assert_eq!(r["interfaces"][1]["mac"], mac_of(&port).as_str(), "{r}");
    f.del("sys0", &pod, &conf);
}

#[test]
fn gc_and_status_reach_ipam() {
    if !root() {
        return;
    }
    if !ipam_speaks("1.1.0") {
        return;
    }
    let f = Fixture::new();
    let conf = f.conf("1.1.0", json!("10.88.0.0/24"), json!({}));
    f.call("STATUS", "", "", "", &conf).ok();
    let mut gc: Value = serde_json::from_str(&conf).unwrap();
    gc["cni.dev/valid-attachments"] = json!([]);
    f.call("GC", "", "", "", &gc.to_string()).ok();
    // A config ADD would refuse fails STATUS with ADD's error.
    let bogus = f.conf("1.1.0", json!("10.88.0.0/24"), json!({"ipMasq": true, "ipMasqBackend": "bogus"}));
    let r = f.call("STATUS", "", "", "", &bogus);
    assert_eq!((r.code(), r.json()["msg"].as_str()), (7, Some("unknown ipmasq backend \"bogus\"")));
    // An IPAM plugin that is not installed is not available.
    let mut missing: Value = serde_json::from_str(&conf).unwrap();
    missing["ipam"] = json!({"type": "cnibox-no-such-ipam"});
    let r = f.call("STATUS", "", "", "", &missing.to_string());
    assert_eq!(r.code(), 50, "{r:?}");
}

#[test]
fn disabled_container_interface_stays_down() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let conf = f.conf("1.0.0", Value::Null, json!({"bridge": "brd", "disableContainerInterface": true}));
    let a = Netns::new("di");
    let r = f.add("ca", &a, &conf);
    assert_eq!(r["interfaces"].as_array().unwrap().len(), 3);
    let (_, link) = a.exec("ip -o link show eth0");
    assert!(!link.contains(",UP") && link.contains("state DOWN"), "{link}");
    f.del("ca", &a, &conf);
    assert!(f.veths().is_empty());
}

#[test]
fn existing_bridge_name_and_addresses() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let a = Netns::new("ex");
    // A link of another kind under the bridge's name.
    f.host.sh("ip link add brx type veth peer name brxpeer");
    let conf = f.conf("1.0.0", json!("10.87.0.0/24"), json!({"bridge": "brx"}));
    let r = f.call("ADD", "ca", &a.path(), "eth0", &conf);
    assert!(r.stdout.contains("\\\"brx\\\" already exists but is not a bridge"), "{r:?}");
    assert!(f.leases().is_empty());

    // A bridge with another IPv4 address: refused, unless forceAddress.
    f.host.sh("ip link add bry type bridge && ip addr add 10.86.5.1/16 dev bry");
    let conf = f.conf("1.0.0", json!("10.86.0.0/24"), json!({"bridge": "bry", "isGateway": true}));
    let r = f.call("ADD", "ca", &a.path(), "eth0", &conf);
    assert!(r.stdout.contains("\\\"bry\\\" already has an IP address different from 10.86.0.1/24"), "{r:?}");
    assert!(f.veths().is_empty());
    assert!(f.leases().is_empty());
    let conf =
        f.conf("1.0.0", json!("10.86.0.0/24"), json!({"bridge": "bry", "isGateway": true, "forceAddress": true}));
    f.add("ca", &a, &conf);
    let addrs = f.host.sh("ip -o -4 addr show dev bry");
    assert!(addrs.contains("10.86.0.1/24") && !addrs.contains("10.86.5.1"), "{addrs}");
    f.del("ca", &a, &conf);
}
