//! ptp in real namespaces: the "host" is a throwaway namespace too.

mod common;
#[path = "common/reach.rs"]
mod reach;
use common::*;
use reach::{Patience, reach_with};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::{Duration, Instant};

struct Fixture {
    host: Netns,
    data: TempDir,
    path: String,
}

impl Fixture {
    fn new() -> Fixture {
        let path = path_with_distribution();
        Fixture { host: Netns::new("phost"), data: TempDir::new("ptpdata"), path }
    }

    fn conf(&self, version: &str, ranges: Value, extra: Value) -> String {
        let mut c = json!({"cniVersion": version, "name": "ptpnet", "type": "ptp",
            "ipam": {"type": "host-local", "dataDir": self.data.path(), "ranges": ranges,
                     "routes": [{"dst": "0.0.0.0/0"}]}});
        merge(&mut c, extra);
        c.to_string()
    }

    fn call(&self, cmd: &str, cid: &str, netns: &str, conf: &str) -> Reply {
        let env = call_env(cmd, cid, netns, "eth0", Some(&self.path));
        plugin("ptp", Some(&self.host), &env, conf)
    }

    fn veths(&self) -> usize {
        self.host.sh("ip -o link show type veth").lines().count()
    }

    fn leases(&self) -> usize {
        leases(self.data.path(), "ptpnet").len()
    }
}

/// A UDP round trip from the namespace `from` to `to_ip` served in the namespace `to`.
fn reach(from: &str, to: &str, to_ip: IpAddr) -> bool {
    let patience = Patience {
        bind: Duration::from_secs(4),
        serve: Duration::from_secs(6),
        tries: 10,
        reply: Duration::from_millis(500),
    };
    reach_with(from, to, to_ip, &patience)
}

#[test]
fn two_pods_routed_through_the_host() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let conf = f.conf("1.0.0", json!([[{"subnet": "10.85.0.0/24"}]]), json!({"mtu": 1400}));
    let (a, b) = (Netns::new("pa"), Netns::new("pb"));
    let ra = f.call("ADD", "ca", &a.path(), &conf).ok().json();
    let rb = f.call("ADD", "cb", &b.path(), &conf).ok().json();

    let ifs = ra["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 2, "{ra}");
    let veth = ifs[0]["name"].as_str().unwrap();
    assert!(veth.starts_with("veth") && veth.len() == 12);
    assert_eq!(ifs[1]["name"], "eth0");
    assert_eq!(ifs[1]["sandbox"], a.path().as_str());
    assert_eq!(ra["ips"][0]["interface"], 1);
    assert_eq!(ra["ips"][0]["gateway"], "10.85.0.1");

    // Container: no on-link subnet route; the gateway on the link; the subnet via the gateway.
    let ipa = ip_of(&ra, 0);
    let routes = a.exec("ip route show").1;
    assert!(routes.contains(&format!("10.85.0.1 dev eth0 scope link src {ipa}")), "{routes}");
    assert!(routes.contains(&format!("10.85.0.0/24 via 10.85.0.1 dev eth0 src {ipa}")), "{routes}");
    assert!(routes.contains("default via 10.85.0.1 dev eth0"), "{routes}");
    assert!(a.exec("ip link show eth0").1.contains("mtu 1400"));
    // Host: the gateway as /32 on the veth, a host route to the pod.
    assert!(f.host.sh(&format!("ip -o addr show dev {veth}")).contains("10.85.0.1/32"));
    assert!(f.host.sh("ip route show").contains(&format!("{ipa} dev {veth} scope host")));
    assert_eq!(f.host.sh("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");

    assert!(reach(&a.path(), &b.path(), ip_of(&rb, 0)), "pod a -> pod b");
    assert!(reach(&b.path(), &a.path(), ipa), "pod b -> pod a");
    assert!(reach(&a.path(), &f.host.path(), "10.85.0.1".parse().unwrap()), "pod a -> host");

    let mut c: Value = serde_json::from_str(&conf).unwrap();
    c["prevResult"] = ra.clone();
    f.call("CHECK", "ca", &a.path(), &c.to_string()).ok();
    assert!(a.exec(&format!("ip addr del {ipa}/24 dev eth0")).0);
    let r = f.call("CHECK", "ca", &a.path(), &c.to_string());
    assert!(r.stdout.contains("Failed to match addr"), "{r:?}");

    f.call("DEL", "ca", &a.path(), &conf).ok();
    f.call("DEL", "ca", &a.path(), &conf).ok();
    f.call("DEL", "cb", &b.path(), &conf).ok();
    assert_eq!(f.veths(), 0);
    assert_eq!(f.leases(), 0);
    assert!(!f.host.sh("ip route show").contains("10.85.0."));
}

#[test]
fn dual_stack() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let conf = f.conf("1.0.0", json!([[{"subnet": "10.84.0.0/24"}], [{"subnet": "fd84::/64"}]]), json!({}));
    let (a, b) = (Netns::new("da"), Netns::new("db"));
    let ra = f.call("ADD", "ca", &a.path(), &conf).ok().json();
    let rb = f.call("ADD", "cb", &b.path(), &conf).ok().json();
    assert_eq!(ra["ips"].as_array().unwrap().len(), 2);
    assert_eq!(f.host.sh("cat /proc/sys/net/ipv6/conf/all/forwarding").trim(), "1");
    assert!(reach(&a.path(), &b.path(), ip_of(&rb, 1)), "v6 pod a -> pod b");
    assert!(reach(&b.path(), &a.path(), ip_of(&ra, 0)), "v4 pod b -> pod a");
    f.call("DEL", "ca", &a.path(), &conf).ok();
    f.call("DEL", "cb", &b.path(), &conf).ok();
    assert_eq!(f.veths(), 0);
    assert_eq!(f.leases(), 0);
}

#[test]
fn failures_and_missing_netns_leave_nothing() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let conf = f.conf("0.3.1", json!([[{"subnet": "10.83.0.0/24"}]]), json!({}));
    // IFNAME taken in the container: lease released, no veth.
    let a = Netns::new("fa");
    assert!(a.exec("ip link add eth0 type veth peer name xpeer").0);
    let r = f.call("ADD", "ca", &a.path(), &conf);
    assert_eq!(r.status, 1);
    assert!(r.stdout.contains("already exists"), "{r:?}");
    assert_eq!(f.veths(), 0);
    assert_eq!(f.leases(), 0);

    // An unknown masquerade backend is refused clearly, before anything is allocated.
    let masq =
        f.conf("1.0.0", json!([[{"subnet": "10.83.0.0/24"}]]), json!({"ipMasq": true, "ipMasqBackend": "xtables"}));
    let b = Netns::new("fb");
    let r = f.call("ADD", "cb", &b.path(), &masq);
    assert!(r.stdout.contains("unknown ipmasq backend \\\"xtables\\\""), "{r:?}");
    assert_eq!(f.leases(), 0);

    // DEL after the netns is gone releases the lease.
    let path = b.path();
    f.call("ADD", "cb", &path, &conf).ok();
    assert_eq!(f.leases(), 1);
    drop(b);
    f.call("DEL", "cb", &path, &conf).ok();
    assert_eq!(f.leases(), 0);
    // The kernel tears a deleted namespace down asynchronously, taking the veth with it.
    let start = Instant::now();
    while f.veths() != 0 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(f.veths(), 0);
    assert!(!f.host.sh("ip route show").contains("10.83.0."));
}
