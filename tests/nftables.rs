//! ipMasq, macspoofchk, portmap and firewall against the real nft, each test inside a
//! throwaway "host" namespace (nftables state is per namespace, so the real host is untouched).

mod common;
#[path = "common/reach.rs"]
mod reach;
use common::*;
use reach::{Patience, in_ns, reach_with};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn have_nft() -> bool {
    let ok = ["/usr/sbin/nft", "/sbin/nft"].iter().any(|p| std::path::Path::new(p).exists());
    if !ok {
        eprintln!("skipping: nft is not installed");
    }
    ok
}

/// A host namespace with an IPAM data directory.
struct Host {
    ns: Netns,
    data: TempDir,
    path: String,
}

impl Host {
    fn new() -> Host {
        let path = path_with_distribution();
        Host { ns: Netns::new("nh"), data: TempDir::new("nftdata"), path }
    }

    /// `nft list table`, or "" when the table is not there.
    fn table(&self, family: &str, name: &str) -> String {
        self.ns.exec(&format!("nft list table {family} {name} 2>/dev/null")).1
    }

    fn call(&self, plugin_name: &str, cmd: &str, cid: &str, netns: &str, conf: &str) -> Reply {
        self.call_if(plugin_name, cmd, cid, netns, "eth0", conf)
    }

    fn call_if(&self, plugin_name: &str, cmd: &str, cid: &str, netns: &str, ifname: &str, conf: &str) -> Reply {
        let env = call_env(cmd, cid, netns, ifname, Some(&self.path));
        plugin(plugin_name, Some(&self.ns), &env, conf)
    }

    fn bridge_conf(&self, version: &str, net: &str, bridge: &str, subnet: &str, extra: Value) -> String {
        let mut c = json!({"cniVersion": version, "name": net, "type": "bridge", "bridge": bridge,
            "isDefaultGateway": true,
            "ipam": {"type": "host-local", "subnet": subnet, "dataDir": self.data.path()}});
        merge(&mut c, extra);
        c.to_string()
    }

    /// A namespace linked to the host by a veth: host side `<net>.1/24`, far side `<net>.2/24`,
    /// with no route back to the pod subnets.
    fn outside(&self, prefix: &str, net: &str) -> Netns {
        let out = Netns::new(prefix);
        let hv = unique("ho");
        sh(&format!("ip -n {} link add {hv} type veth peer name ox netns {}", self.ns.name, out.name));
        sh(&format!("ip -n {} addr add {net}.1/24 dev {hv}", self.ns.name));
        sh(&format!("ip -n {} link set {hv} up", self.ns.name));
        sh(&format!("ip -n {} addr add {net}.2/24 dev ox", out.name));
        sh(&format!("ip -n {} link set ox up", out.name));
        out
    }
}

/// A UDP round trip from the namespace `from` to `to_ip` served in the namespace `to`.
fn reach(from: &str, to: &str, to_ip: IpAddr) -> bool {
    let patience =
        Patience { bind: Duration::ZERO, serve: Duration::from_secs(3), tries: 8, reply: Duration::from_millis(300) };
    reach_with(from, to, to_ip, &patience)
}

/// A network list on the host namespace, run through the cnitool applet as a runtime would,
/// with a result cache of its own; `caps` go in as CAP_ARGS.
struct Runtime<'a> {
    h: &'a Host,
    net: String,
    confdir: TempDir,
    cache: TempDir,
}

impl<'a> Runtime<'a> {
    /// The bridge plugin configured by `main` (host-local on `subnet` added), then `chained`.
    fn new(h: &'a Host, net: &str, main: Value, subnet: &str, chained: Value) -> Runtime<'a> {
        let confdir = TempDir::new("rtconf");
        let mut bridge = main;
        bridge["type"] = json!("bridge");
        bridge["ipam"] = json!({"type": "host-local", "subnet": subnet, "dataDir": h.data.path()});
        let mut plugins = vec![bridge];
        plugins.extend(chained.as_array().cloned().unwrap_or_default());
        write_conf(confdir.path(), "10-net.conflist", &json!({"cniVersion": "1.0.0", "name": net, "plugins": plugins}));
        Runtime { h, net: net.to_string(), confdir, cache: TempDir::new("rtcache") }
    }

    fn run(&self, verb: &str, pod: &Netns, caps: &Value) -> Reply {
        let caps = caps.to_string();
        let env = [("CAP_ARGS", caps.as_str()), ("CNI_CACHE_DIR", self.cache.path().to_str().unwrap())];
        cnitool(Some(&self.h.ns), self.confdir.path(), &[verb, &self.net, &pod.path()], &env)
    }
}

#[test]
fn bridge_ipmasq_rules_and_traffic() {
    if !root() || !have_nft() {
        return;
    }
    let h = Host::new();
    let out = h.outside("mo", "192.168.77");
    let masq = h.bridge_conf("1.1.0", "masqnet", "brmasq", "10.77.0.0/24", json!({"ipMasq": true}));
    let plain = h.bridge_conf("1.1.0", "plainnet", "brplain", "10.78.0.0/24", json!({}));
    let far: IpAddr = "192.168.77.2".parse().unwrap();

    // A pod without ipMasq cannot get replies from outside: nothing routes back to it.
    let p0 = Netns::new("m0");
    h.call("bridge", "ADD", "c0", &p0.path(), &plain).ok();
    assert!(!reach(&p0.path(), &out.path(), far), "unmasqueraded pod got a reply");

    // With ipMasq it can, and the rule is the reference's.
    let p1 = Netns::new("m1");
    let r1 = h.call("bridge", "ADD", "c1", &p1.path(), &masq).ok().json();
    let ip1 = ip_of(&r1, 0);
    let t = h.table("inet", "cni_plugins_masquerade");
    assert!(t.contains(&format!("ip saddr {ip1} ip daddr != 10.77.0.0/24 masquerade")), "{t}");
    assert!(t.contains("net: masqnet, if: eth0, id: c1\""), "{t}");
    assert!(t.contains("goto masq_checks"), "{t}");
    assert!(reach(&p1.path(), &out.path(), far), "masqueraded pod got no reply");
    // Pod to pod on the same bridge is not masqueraded (and still works).
    let p2 = Netns::new("m2");
    let r2 = h.call("bridge", "ADD", "c2", &p2.path(), &masq).ok().json();
    assert!(reach(&p1.path(), &p2.path(), ip_of(&r2, 0)));

    h.call("bridge", "DEL", "c1", &p1.path(), &masq).ok();
    let t = h.table("inet", "cni_plugins_masquerade");
    assert!(!t.contains("id: c1\""), "{t}");
    assert!(t.contains("id: c2\""), "{t}");

    // The namespace is gone before DEL: the rule still goes (found by its comment).
    let path2 = p2.path();
    drop(p2);
    h.call("bridge", "DEL", "c2", &path2, &masq).ok();
    assert!(!h.table("inet", "cni_plugins_masquerade").contains("id: c2\""));
    // An empty CNI_NETNS too.
    let p3 = Netns::new("m3");
    h.call("bridge", "ADD", "c3", &p3.path(), &masq).ok();
    h.call("bridge", "DEL", "c3", "", &masq).ok();
    assert!(!h.table("inet", "cni_plugins_masquerade").contains("id: c3\""));
    // Repeated DEL is fine.
    h.call("bridge", "DEL", "c3", "", &masq).ok();

    // GC keeps valid attachments and removes the others of this network only.
    let (p4, p5) = (Netns::new("m4"), Netns::new("m5"));
    h.call("bridge", "ADD", "c4", &p4.path(), &masq).ok();
    let r5 = h.call("bridge", "ADD", "c5", &p5.path(), &masq).ok().json();
    let mut check: Value = serde_json::from_str(&masq).unwrap();
    check["prevResult"] = r5;
    h.call("bridge", "CHECK", "c5", &p5.path(), &check.to_string()).ok();
    let mut gc: Value = serde_json::from_str(&masq).unwrap();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "c5", "ifname": "eth0"}]);
    let env = [("CNI_COMMAND", "GC"), ("CNI_PATH", h.path.as_str())];
    plugin("bridge", Some(&h.ns), &env, &gc.to_string()).ok();
    let t = h.table("inet", "cni_plugins_masquerade");
    assert!(!t.contains("id: c4\"") && t.contains("id: c5\""), "{t}");
    // CHECK does not look at masquerade rules, as the reference's does not: a pod the
    // reference set up (its rules in iptables) passes it after a node switches.
    h.ns.sh("nft flush chain inet cni_plugins_masquerade masq_checks");
    h.call("bridge", "CHECK", "c5", &p5.path(), &check.to_string()).ok();
    h.call("bridge", "DEL", "c4", &p4.path(), &masq).ok();
    h.call("bridge", "DEL", "c5", &p5.path(), &masq).ok();
    h.call("bridge", "DEL", "c0", &p0.path(), &plain).ok();
    assert!(!h.table("inet", "cni_plugins_masquerade").contains("masquerade comment"));
}

#[test]
fn ptp_ipmasq_rules_follow_the_attachment() {
    if !root() || !have_nft() {
        return;
    }
    let h = Host::new();
    let out = h.outside("po", "192.168.79");
    let conf = json!({"cniVersion": "1.0.0", "name": "ptpmasq", "type": "ptp", "ipMasq": true,
        "ipMasqBackend": "nftables",
        "ipam": {"type": "host-local", "subnet": "10.79.0.0/24", "dataDir": h.data.path(),
                 "routes": [{"dst": "0.0.0.0/0"}]}})
    .to_string();
    let p = Netns::new("pp");
    let r = h.call("ptp", "ADD", "c1", &p.path(), &conf).ok().json();
    let t = h.table("inet", "cni_plugins_masquerade");
    assert!(t.contains(&format!("ip saddr {} ip daddr != 10.79.0.0/24 masquerade", ip_of(&r, 0))), "{t}");
    assert!(reach(&p.path(), &out.path(), "192.168.79.2".parse().unwrap()));
    let path = p.path();
    drop(p);
    h.call("ptp", "DEL", "c1", &path, &conf).ok();
    assert!(!h.table("inet", "cni_plugins_masquerade").contains("id: c1\""));
}

#[test]
fn bridge_macspoofchk_drops_a_changed_mac() {
    if !root() || !have_nft() {
        return;
    }
    let h = Host::new();
    let conf = h.bridge_conf("1.0.0", "spoofnet", "brspoof", "10.76.0.0/24", json!({"macspoofchk": true}));
    let (a, b) = (Netns::new("sa"), Netns::new("sb"));
    let ra = h.call("bridge", "ADD", "ca", &a.path(), &conf).ok().json();
    let rb = h.call("bridge", "ADD", "cb", &b.path(), &conf).ok().json();
    let t = h.table("bridge", "nat");
    let mac = ra["interfaces"][2]["mac"].as_str().unwrap();
    let veth = ra["interfaces"][1]["name"].as_str().unwrap();
    assert!(
        t.contains(&format!("iifname \"{veth}\" jump cni-br-iface-ca-eth0 comment \"macspoofchk-ca-eth0\"")),
        "{t}"
    );
    assert!(t.contains(&format!("ether saddr {mac} return")), "{t}");
    assert!(t.contains("chain cni-br-iface-ca-eth0-mac"), "{t}");
    assert!(reach(&a.path(), &b.path(), ip_of(&rb, 0)));
    // A second ADD of the same attachment into another namespace is refused, and its undo
    // leaves the first pod's rules as they were.
    let c = Netns::new("sc");
    let r = h.call("bridge", "ADD", "ca", &c.path(), &conf);
    assert_ne!(r.status, 0, "{r:?}");
    assert_eq!(h.table("bridge", "nat"), t);

    // The pod takes another MAC: its frames no longer pass the bridge.
    assert!(a.exec("ip link set eth0 address 02:00:00:00:00:aa && ip neigh flush all").0);
    assert!(!reach(&a.path(), &b.path(), ip_of(&rb, 0)), "spoofed MAC got through");

    h.call("bridge", "DEL", "ca", &a.path(), &conf).ok();
    let t = h.table("bridge", "nat");
    assert!(!t.contains("cni-br-iface-ca-eth0"), "{t}");
    assert!(t.contains("cni-br-iface-cb-eth0"), "{t}");
    h.call("bridge", "DEL", "cb", &b.path(), &conf).ok();
    assert!(!h.table("bridge", "nat").contains("cni-br-iface"));
    // DEL again: nothing left, still fine.
    h.call("bridge", "DEL", "cb", &b.path(), &conf).ok();
}

/// A pod whose namespace went without a DEL leaves its spoof-check jump behind; GC removes it
/// once its veth is gone, and leaves a live pod's alone even when the runtime does not list it
/// (the chains do not say which network they belong to).
#[test]
fn bridge_gc_collects_spoof_checks_of_vanished_pods() {
    if !root() || !have_nft() {
        return;
    }
    let h = Host::new();
    let conf = h.bridge_conf("1.1.0", "spoofgc", "brspgc", "10.77.0.0/24", json!({"macspoofchk": true}));
    let (a, b) = (Netns::new("ga"), Netns::new("gb"));
    let ra = h.call("bridge", "ADD", "ga", &a.path(), &conf).ok().json();
    h.call("bridge", "ADD", "gb", &b.path(), &conf).ok();
    let veth = ra["interfaces"][1]["name"].as_str().unwrap().to_string();
    drop(a);
    // The kernel tears a namespace down in the background.
    let start = Instant::now();
    while h.ns.exec(&format!("ip link show {veth}")).0 {
        assert!(start.elapsed() < Duration::from_secs(10), "{veth} outlived its namespace");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(h.table("bridge", "nat").contains("cni-br-iface-ga-eth0"));

    let mut gc: Value = serde_json::from_str(&conf).unwrap();
    gc["cni.dev/valid-attachments"] = json!([]);
    let env = [("CNI_COMMAND", "GC"), ("CNI_PATH", h.path.as_str())];
    plugin("bridge", Some(&h.ns), &env, &gc.to_string()).ok();
    let t = h.table("bridge", "nat");
    assert!(!t.contains("cni-br-iface-ga-eth0"), "{t}");
    assert!(t.contains("iifname") && t.contains("cni-br-iface-gb-eth0-mac"), "{t}");
    h.call("bridge", "DEL", "gb", &b.path(), &conf).ok();
    assert!(!h.table("bridge", "nat").contains("cni-br-iface"));
}

/// Accept one TCP connection on `port` in `ns` and send `reply`.
fn serve_tcp(ns: String, port: u16, reply: &'static [u8]) -> std::thread::JoinHandle<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = in_ns(ns, move || {
        // Both families where IPv6 is on, IPv4 only otherwise.
        let l = TcpListener::bind(("::", port)).or_else(|_| TcpListener::bind(("0.0.0.0", port))).expect("listen");
        l.set_nonblocking(true).expect("nonblocking");
        tx.send(()).expect("ready");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            match l.accept() {
                Ok((mut s, _)) => {
                    let _ = s.write_all(reply);
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    rx.recv().expect("listener ready");
    t
}

/// Connect from `ns` to `ip:port` and read what the server says.
fn fetch_tcp(ns: String, ip: IpAddr, port: u16) -> String {
    in_ns(ns, move || {
        let mut s = match TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(2)) {
            Ok(s) => s,
            Err(e) => return format!("connect failed: {e}"),
        };
        s.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf
    })
    .join()
    .expect("client thread")
}

#[test]
fn portmap_through_cnitool_forwards_host_ports() {
    if !root() || !have_nft() {
        return;
    }
    let h = Host::new();
    let client = h.outside("pc", "192.168.78");
    let rt = Runtime::new(
        &h,
        "pmnet",
        json!({"bridge": "brpm", "isDefaultGateway": true}),
        "10.75.0.0/24",
        json!([{"type": "portmap", "backend": "nftables", "capabilities": {"portMappings": true}}]),
    );
    let pod = Netns::new("pm");
    let caps = json!({"portMappings": [
        {"hostPort": 18080, "containerPort": 8080, "protocol": "tcp"},
        {"hostPort": 18081, "containerPort": 8081, "protocol": "tcp", "hostIP": "192.168.78.1"},
        {"hostPort": 18082, "containerPort": 8082, "protocol": "tcp", "hostIP": "fd00::1"}
    ]});
    let r = rt.run("add", &pod, &caps);
    r.ok();
    let cid = format!("cnitool-{}", &cnibox::util::sha512::hex(pod.path().as_bytes())[..20]);
    let cip = ip_of(&r.json(), 0);

    let t = h.table("ip", "cni_hostport");
    assert!(t.contains(&format!("tcp dport 18080 dnat to {cip}:8080 comment \"{cid}\"")), "{t}");
    assert!(t.contains(&format!("ip daddr 192.168.78.1 tcp dport 18081 dnat to {cip}:8081")), "{t}");
    assert!(!t.contains("18082"), "{t}");
    assert!(t.contains("fib daddr type local jump hostports_all"), "{t}");
    assert!(t.contains(&format!("ip saddr 127.0.0.1 ip daddr {cip} masquerade")), "{t}");

    let host_ip: IpAddr = "192.168.78.1".parse().unwrap();
    // From another namespace to the host's address.
    let s = serve_tcp(pod.path(), 8080, b"hello from the pod");
    assert_eq!(fetch_tcp(client.path(), host_ip, 18080), "hello from the pod");
    let _ = s.join();
    // The hostIP-bound mapping.
    let s = serve_tcp(pod.path(), 8081, b"bound");
    assert_eq!(fetch_tcp(client.path(), host_ip, 18081), "bound");
    let _ = s.join();
    // From the host itself, through the output chain, to localhost (route_localnet + SNAT).
    let s = serve_tcp(pod.path(), 8080, b"local");
    assert_eq!(fetch_tcp(h.ns.path(), "127.0.0.1".parse().unwrap(), 18080), "local");
    let _ = s.join();

    rt.run("check", &pod, &caps).ok();

    rt.run("del", &pod, &caps).ok();
    let t = h.table("ip", "cni_hostport");
    assert!(!t.contains(&cid), "{t}");
    assert!(!h.table("ip6", "cni_hostport").contains(&cid));
    // Nothing left to delete: DEL still succeeds.
    rt.run("del", &pod, &caps).ok();
}

/// portmap's iptables backend: the reference's nat layout, chosen explicitly or by
/// iptables-only options, forwards host ports (from outside, to a bound hostIP, from the host's
/// own 127.0.0.1) and goes with DEL.
#[test]
fn portmap_iptables_backend_forwards_host_ports() {
    if !root() || !have_nft() || !have_iptables_restore() {
        return;
    }
    let h = Host::new();
    let client = h.outside("pi", "192.168.79");
    let rt = Runtime::new(
        &h,
        "pinet",
        json!({"bridge": "brpi", "isDefaultGateway": true}),
        "10.76.1.0/24",
        json!([{"type": "portmap", "backend": "iptables", "capabilities": {"portMappings": true}}]),
    );
    let pod = Netns::new("pi");
    let caps = json!({"portMappings": [
        {"hostPort": 18090, "containerPort": 8080, "protocol": "tcp"},
        {"hostPort": 18091, "containerPort": 8081, "protocol": "tcp", "hostIP": "192.168.79.1"},
        {"hostPort": 18092, "containerPort": 8082, "protocol": "tcp", "hostIP": "fd00::1"}
    ]});
    let r = rt.run("add", &pod, &caps);
    r.ok();
    let cid = format!("cnitool-{}", &cnibox::util::sha512::hex(pod.path().as_bytes())[..20]);
    let cip = ip_of(&r.json(), 0);
    let dn = ref_chain("pinet", &cid, "DN-");
    let nat = h.ns.sh("iptables -t nat -S");
    for want in [
        "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT".to_string(),
        "-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT".into(),
        "-A POSTROUTING -m comment --comment \"CNI portfwd requiring masquerade\" -j CNI-HOSTPORT-MASQ".into(),
        "-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE".into(),
        "-A CNI-HOSTPORT-SETMARK -m comment --comment \"CNI portfwd masquerade mark\" -j MARK --set-xmark 0x2000/0x2000".into(),
        format!("-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment \"dnat name: \\\"pinet\\\" id: \\\"{cid}\\\"\" -m multiport --dports 18090,18091,18092 -j {dn}"),
        format!("-A {dn} -p tcp -m tcp --dport 18090 -j DNAT --to-destination {cip}:8080"),
        format!("-A {dn} -s 127.0.0.1/32 -d 192.168.79.1/32 -p tcp -m tcp --dport 18091 -j CNI-HOSTPORT-SETMARK"),
        format!("-A {dn} -d 192.168.79.1/32 -p tcp -m tcp --dport 18091 -j DNAT --to-destination {cip}:8081"),
    ] {
        assert_eq!(nat.lines().filter(|l| *l == want).count(), 1, "{want} not once in\n{nat}");
    }
    assert!(!nat.contains("--dport 18092"), "{nat}");
    assert!(!h.table("ip", "cni_hostport").contains(&cid));

    let host_ip: IpAddr = "192.168.79.1".parse().unwrap();
    let s = serve_tcp(pod.path(), 8080, b"via iptables");
    assert_eq!(fetch_tcp(client.path(), host_ip, 18090), "via iptables");
    let _ = s.join();
    let s = serve_tcp(pod.path(), 8081, b"bound");
    assert_eq!(fetch_tcp(client.path(), host_ip, 18091), "bound");
    let _ = s.join();
    let s = serve_tcp(pod.path(), 8080, b"local");
    assert_eq!(fetch_tcp(h.ns.path(), "127.0.0.1".parse().unwrap(), 18090), "local");
    let _ = s.join();

    // A second ADD rebuilds the container's chain instead of adding to it; CHECK passes.
    let conf: Value =
        serde_json::from_str(&std::fs::read_to_string(rt.confdir.path().join("10-net.conflist")).unwrap()).unwrap();
    let mut pm = conf["plugins"][1].clone();
    pm["cniVersion"] = json!("1.0.0");
    pm["name"] = json!("pinet");
    pm["prevResult"] = r.json();
    pm["runtimeConfig"] = json!({"portMappings": caps["portMappings"]});
    let pod_path = pod.path();
    let call = |cmd: &str, c: &Value| {
        let env = call_env(cmd, &cid, &pod_path, "eth0", Some(&h.path));
        plugin("portmap", Some(&h.ns), &env, &c.to_string())
    };
    call("ADD", &pm).ok();
    let nat = h.ns.sh("iptables -t nat -S");
    assert_eq!(nat.lines().filter(|l| l.starts_with(&format!("-A {dn} "))).count(), 6, "{nat}");
    assert_eq!(nat.lines().filter(|l| l.ends_with(&format!("-j {dn}"))).count(), 1, "{nat}");
    call("CHECK", &pm).ok();
    rt.run("check", &pod, &caps).ok();

    // Removed by DEL; CHECK then fails naming the chain.
    rt.run("del", &pod, &caps).ok();
    let nat = h.ns.sh("iptables -t nat -S");
    assert!(!nat.contains(&dn), "{nat}");
    let c = call("CHECK", &pm);
    assert!(c.status != 0 && c.stdout.contains(&dn), "{c:?}");

    // externalSetMarkChain (kube-proxy's KUBE-MARK-MASQ) selects iptables by itself and marks
    // through that chain: no SETMARK rules of ours.
    h.ns.sh("iptables -t nat -N KUBE-MARK-MASQ && iptables -t nat -A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000");
    pm.as_object_mut().unwrap().remove("backend");
    pm["externalSetMarkChain"] = json!("KUBE-MARK-MASQ");
    call("ADD", &pm).ok();
    let rules = h.ns.sh(&format!("iptables -t nat -S {dn}"));
    assert!(rules.contains("-j KUBE-MARK-MASQ") && !rules.contains("CNI-HOSTPORT-SETMARK"), "{rules}");
    call("DEL", &pm).ok();
    assert!(!h.ns.sh("iptables -t nat -S").contains(&dn));
    // markMasqBit, which only iptables uses, selects it too: SETMARK with that bit.
    let mut marked = pm.clone();
    marked.as_object_mut().unwrap().remove("externalSetMarkChain");
    marked["markMasqBit"] = json!(15);
    call("ADD", &marked).ok();
    let setmark = h.ns.sh("iptables -t nat -S CNI-HOSTPORT-SETMARK");
    assert!(setmark.contains("0x8000/0x8000"), "{setmark}");
    call("DEL", &marked).ok();
    assert!(!h.ns.sh("iptables -t nat -S").contains(&dn));
    // One host port mapped twice: the rule written once is the rule CHECK expects once.
    pm["runtimeConfig"] = json!({"portMappings": [
        {"hostPort": 18093, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 18093, "containerPort": 81, "protocol": "tcp"}
    ]});
    call("ADD", &pm).ok();
    call("CHECK", &pm).ok();
    call("DEL", &pm).ok();
}

/// A second pod's ADD leaves the base chains it found right as they were (same rule handles):
/// rewriting them would delete rules, and every nft run that deletes waits for the kernel to
/// free them.
#[test]
fn second_add_keeps_base_chains_that_are_right() {
    if !root() || !have_nft() {
        return;
    }
    let h = Host::new();
    let rt = Runtime::new(
        &h,
        "keepnet",
        json!({"bridge": "brkeep", "isGateway": true, "ipMasq": true}),
        "10.78.0.0/24",
        json!([{"type": "portmap", "capabilities": {"portMappings": true}}, {"type": "firewall"}]),
    );
    let base = || {
        let mut out = String::new();
        for (table, chains) in [
            ("inet cni_plugins_masquerade", &["postrouting"][..]),
            ("ip cni_hostport", &["hostports_all", "prerouting", "output"][..]),
            ("inet cni_firewall", &["forward"][..]),
        ] {
            for chain in chains {
                out += &h.ns.sh(&format!("nft -a list chain {table} {chain}"));
            }
        }
        out
    };
    let (a, b) = (Netns::new("ka"), Netns::new("kb"));
    let caps = |port: u16| json!({"portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]});
    rt.run("add", &a, &caps(18090)).ok();
    let first = base();
    assert!(first.contains("goto masq_checks") && first.contains("jump hostports") && first.contains("jump pods"));
    rt.run("add", &b, &caps(18091)).ok();
    assert_eq!(base(), first);
    rt.run("del", &a, &caps(18090)).ok();
    rt.run("del", &b, &caps(18091)).ok();
}

/// The UDP flows conntrack remembers for a host port go when a pod takes the port over: the
/// first pod's flow, left by its DEL, would otherwise keep sending the client's datagrams to
/// the first pod's address.
#[test]
fn portmap_forgets_stale_udp_flows_to_its_host_ports() {
    if !root() || !have_nft() {
        return;
    }
    let h = Host::new();
    let client = h.outside("pu", "192.168.79");
    let rt = Runtime::new(
        &h,
        "pmunet",
        json!({"bridge": "brpmu", "isDefaultGateway": true}),
        "10.76.0.0/24",
        json!([{"type": "portmap", "capabilities": {"portMappings": true}}]),
    );
    let caps = json!({"portMappings": [{"hostPort": 19053, "containerPort": 53, "protocol": "udp"}]});
    let flows = || h.ns.sh("cat /proc/net/nf_conntrack").lines().filter(|l| l.contains("dport=19053")).count();

    let first = Netns::new("pmu");
    rt.run("add", &first, &caps).ok();
    client.sh("bash -c 'for i in 1 2 3; do echo x > /dev/udp/192.168.79.1/19053; done'");
    // Three datagrams from three sockets: three flows.
    assert_eq!(flows(), 3);
    rt.run("del", &first, &caps).ok();
    assert_eq!(flows(), 3, "DEL leaves conntrack alone, as the reference's does");

    let second = Netns::new("pmu");
    rt.run("add", &second, &caps).ok();
    assert_eq!(flows(), 0);
    rt.run("del", &second, &caps).ok();
}

#[test]
fn portmap_errors_and_pass_through() {
    if !root() || !have_nft() {
        return;
    }
    let h = Host::new();
    let pod = Netns::new("pe");
    let prev = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": pod.path()}],
        "ips": [{"address": "10.74.0.5/24", "interface": 0}]});
    let conf = |extra: Value| {
        let mut c = json!({"cniVersion": "1.0.0", "name": "pe", "type": "portmap", "prevResult": prev,
            "runtimeConfig": {"portMappings": [{"hostPort": 9000, "containerPort": 90, "protocol": "udp"}]}});
        merge(&mut c, extra);
        c.to_string()
    };
    // No mappings: the previous result passes through, nothing is written.
    let r = h.call("portmap", "ADD", "c1", &pod.path(), &conf(json!({"runtimeConfig": {}}))).ok().json();
    assert_eq!(r["ips"][0]["address"], "10.74.0.5/24");
    assert!(h.table("ip", "cni_hostport").is_empty());
    // Errors.
    let mut no_prev: Value = serde_json::from_str(&conf(json!({}))).unwrap();
    no_prev.as_object_mut().unwrap().remove("prevResult");
    let r = h.call("portmap", "ADD", "c1", &pod.path(), &no_prev.to_string());
    assert!(r.stdout.contains("must be called as chained plugin"), "{r:?}");
    // Options of the other backend are refused, as the reference refuses them.
    let c = conf(json!({"backend": "nftables", "conditionsV4": ["-s", "1.2.3.4"], "externalSetMarkChain": "X"}));
    let r = h.call("portmap", "ADD", "c1", &pod.path(), &c);
    assert!(r.stdout.contains("iptables-specific options [externalSetMarkChain conditionsV4]"), "{r:?}");
    let c = conf(json!({"backend": "iptables", "conditionsV6": ["ip6 saddr ::1"]}));
    let r = h.call("portmap", "ADD", "c1", &pod.path(), &c);
    assert!(r.stdout.contains("nftables-specific options [conditionsV6]"), "{r:?}");
    h.call("portmap", "DEL", "c1", &pod.path(), &c).ok();
    let r = h.call("portmap", "ADD", "c1", &pod.path(), &conf(json!({"backend": "xtables"})));
    assert!(r.stdout.contains("unrecognized backend \\\"xtables\\\""), "{r:?}");
    let bad_port =
        json!({"runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 90, "protocol": "tcp"}]}});
    let r = h.call("portmap", "ADD", "c1", &pod.path(), &conf(bad_port.clone()));
    assert!(r.stdout.contains("Invalid host port number: 0"), "{r:?}");
    let r = h.call("portmap", "CHECK", "c1", &pod.path(), &conf(bad_port.clone()));
    assert!(r.stdout.contains("Invalid host port number: 0"), "{r:?}");
    // Mappings matter only to ADD and CHECK: DEL of a bad one succeeds, and still removes
    // the container's rules.
    h.call("portmap", "ADD", "c1", &pod.path(), &conf(json!({}))).ok();
    assert!(h.table("ip", "cni_hostport").contains("comment \"c1\""));
    h.call("portmap", "DEL", "c1", &pod.path(), &conf(bad_port)).ok();
    assert!(!h.table("ip", "cni_hostport").contains("comment \"c1\""));
    for bad in [
        json!({"hostPort": 9000, "containerPort": 90, "protocol": "icmp"}),
        json!({"hostPort": 9000, "containerPort": 90, "hostIP": "nope"}),
        json!({"hostPort": 9000, "containerPort": 70000}),
    ] {
        let c = conf(json!({"runtimeConfig": {"portMappings": [bad]}}));
        assert!(h.call("portmap", "ADD", "c1", &pod.path(), &c).status != 0);
        h.call("portmap", "DEL", "c1", &pod.path(), &c).ok();
    }
    // Conditions are nft text: nothing may leave the rule they go into.
    let c = conf(json!({"conditionsV4": ["ip saddr 10.0.0.0/8 jump hostports_all\nflush ruleset"]}));
    let r = h.call("portmap", "ADD", "c1", &pod.path(), &c);
    assert!(r.stdout.contains("conditionsV4 entry"), "{r:?}");
    let r = h.call("portmap", "CHECK", "c1", &pod.path(), &c);
    assert!(r.stdout.contains("conditionsV4 entry"), "{r:?}");
    h.call("portmap", "DEL", "c1", &pod.path(), &c).ok();
    let c = conf(json!({"markMasqBit": 40}));
    assert!(h.call("portmap", "ADD", "c1", &pod.path(), &c).stdout.contains("MasqMarkBit"));
    h.call("portmap", "DEL", "c1", &pod.path(), &c).ok();
    // nft conditions, snat off.
    let c = conf(json!({"conditionsV4": ["ip", "saddr", "!=", "10.1.0.0/16"], "snat": false}));
    h.call("portmap", "ADD", "c1", &pod.path(), &c).ok();
    let t = h.table("ip", "cni_hostport");
    assert!(t.contains("ip saddr != 10.1.0.0/16 fib daddr type local jump hostports_all"), "{t}");
    assert!(t.contains("udp dport 9000 dnat to 10.74.0.5:90 comment \"c1\""), "{t}");
    assert!(!t.contains("masquerade"), "{t}");
    h.call("portmap", "CHECK", "c1", &pod.path(), &c).ok();
    h.call("portmap", "DEL", "c1", &pod.path(), &c).ok();
    assert!(h.call("portmap", "CHECK", "c1", &pod.path(), &c).status != 0);
    assert!(!h.table("ip", "cni_hostport").contains("c1"));
    // An anonymous set in the conditions.
    let c = conf(json!({"conditionsV4": ["ip saddr != { 10.1.0.0/16, 10.3.0.0/16 }"]}));
    h.call("portmap", "ADD", "c1", &pod.path(), &c).ok();
    let t = h.table("ip", "cni_hostport");
    assert!(t.contains("ip saddr != { 10.1.0.0/16, 10.3.0.0/16 } fib daddr type local jump hostports_all"), "{t}");
    h.call("portmap", "DEL", "c1", &pod.path(), &c).ok();

    // A hostIP of the family the container lacks maps nothing, and says so.
    let c = conf(
        json!({"runtimeConfig": {"portMappings": [{"hostPort": 9002, "containerPort": 92, "hostIP": "fd00::1"}]}}),
    );
    let r = h.call("portmap", "ADD", "c1", &pod.path(), &c);
    assert!(r.status == 0 && r.stderr.contains("host port 9002 (an IPv6 hostIP) is not mapped"), "{r:?}");
    h.call("portmap", "DEL", "c1", &pod.path(), &c).ok();

    // A failed ADD takes out what it wrote, and only that: here the IPv6 step fails after the
    // IPv4 rules are in, while the same container has a mapping on another network.
    let other = json!({"cniVersion": "1.0.0", "name": "pe-other", "type": "portmap", "prevResult": {
        "cniVersion": "1.0.0", "interfaces": [{"name": "eth1", "sandbox": pod.path()}],
        "ips": [{"address": "10.75.0.5/24", "interface": 0}]},
        "runtimeConfig": {"portMappings": [{"hostPort": 9001, "containerPort": 91, "protocol": "tcp"}]}})
    .to_string();
    h.call_if("portmap", "ADD", "c2", &pod.path(), "eth1", &other).ok();
    let mut dual: Value = serde_json::from_str(&conf(json!({"conditionsV6": ["foo bar baz"]}))).unwrap();
    dual["prevResult"]["ips"] =
        json!([{"address": "10.74.0.5/24", "interface": 0}, {"address": "fd74::5/64", "interface": 0}]);
    let r = h.call("portmap", "ADD", "c2", &pod.path(), &dual.to_string());
    assert_ne!(r.status, 0, "{r:?}");
    let t = h.table("ip", "cni_hostport");
    assert!(!t.contains("10.74.0.5"), "{t}");
    assert!(t.contains("dnat to 10.75.0.5:91 comment \"c2\""), "{t}");
    // So does a failed second ADD of a pod whose first ADD succeeded: its rules stay.
    let mut good = dual.clone();
    good["conditionsV6"] = Value::Null;
    h.call("portmap", "ADD", "c2", &pod.path(), &good.to_string()).ok();
    let t = h.table("ip", "cni_hostport");
    assert_ne!(h.call("portmap", "ADD", "c2", &pod.path(), &dual.to_string()).status, 0);
    assert_eq!(h.table("ip", "cni_hostport"), t);
    // GC of one network (its DEL never came) leaves the container's mappings on the other.
    let gc = json!({"cniVersion": "1.1.0", "name": "pe", "type": "portmap", "cni.dev/valid-attachments": []});
    let env = [("CNI_COMMAND", "GC"), ("CNI_PATH", h.path.as_str())];
    plugin("portmap", Some(&h.ns), &env, &gc.to_string()).ok();
    let t = h.table("ip", "cni_hostport");
    assert!(!t.contains("10.74.0.5") && t.contains("dnat to 10.75.0.5:91 comment \"c2\""), "{t}");
    assert!(!h.table("ip6", "cni_hostport").contains("fd74::5"));
    // The runtime's DELs remove the rest, and the GC records; the DEL on one network leaves the
    // container's mappings on the other.
    h.call("portmap", "ADD", "c2", &pod.path(), &good.to_string()).ok();
    h.call("portmap", "DEL", "c2", &pod.path(), &good.to_string()).ok();
    let t = h.table("ip", "cni_hostport");
    assert!(!t.contains("10.74.0.5") && t.contains("dnat to 10.75.0.5:91 comment \"c2\""), "{t}");
    // A DEL that lost both prevResult and the mappings still removes them, by the record.
    let mut bare: Value = serde_json::from_str(&other).unwrap();
    bare.as_object_mut().unwrap().remove("prevResult");
    bare.as_object_mut().unwrap().remove("runtimeConfig");
    h.call_if("portmap", "DEL", "c2", &pod.path(), "eth1", &bare.to_string()).ok();
    assert!(!h.table("ip", "cni_hostport").contains("c2"));
    h.call_if("portmap", "DEL", "c2", &pod.path(), "eth1", &other).ok();
    assert!(!h.table("ip", "cni_hostport").contains("c2"));
    assert!(!std::path::Path::new("/run/cni/portmap/pe/c2").exists());

    // Two attachments of one container on this network: a DEL of one, repeated and without
    // prevResult, leaves the other's rules.
    let on = |ifname: &str, ip: &str| {
        let mut c: Value = serde_json::from_str(&conf(json!({}))).unwrap();
        c["prevResult"] = json!({"cniVersion": "1.0.0", "interfaces": [{"name": ifname, "sandbox": pod.path()}],
            "ips": [{"address": format!("{ip}/24"), "interface": 0}]});
        c.to_string()
    };
    h.call_if("portmap", "ADD", "c3", &pod.path(), "eth0", &on("eth0", "10.74.0.7")).ok();
    h.call_if("portmap", "ADD", "c3", &pod.path(), "eth1", &on("eth1", "10.74.0.8")).ok();
    let mut no_prev: Value = serde_json::from_str(&on("eth1", "10.74.0.8")).unwrap();
    no_prev.as_object_mut().unwrap().remove("prevResult");
    for _ in 0..2 {
        h.call_if("portmap", "DEL", "c3", &pod.path(), "eth1", &no_prev.to_string()).ok();
        let t = h.table("ip", "cni_hostport");
        assert!(!t.contains("10.74.0.8") && t.contains("dnat to 10.74.0.7:90 comment \"c3\""), "{t}");
    }
    h.call_if("portmap", "DEL", "c3", &pod.path(), "eth0", &on("eth0", "10.74.0.7")).ok();
    assert!(!h.table("ip", "cni_hostport").contains("c3"));
    assert!(!std::path::Path::new("/run/cni/portmap/pe/c3").exists());

    // GC removes what this network recorded and is not valid any more.
    let c = conf(json!({"cniVersion": "1.1.0"}));
    h.call("portmap", "ADD", "gc1", &pod.path(), &c).ok();
    h.call("portmap", "ADD", "gc2", &pod.path(), &c).ok();
    let mut gc: Value = serde_json::from_str(&c).unwrap();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "gc2", "ifname": "eth0"}]);
    let env = [("CNI_COMMAND", "GC"), ("CNI_PATH", h.path.as_str())];
    plugin("portmap", Some(&h.ns), &env, &gc.to_string()).ok();
    let t = h.table("ip", "cni_hostport");
    assert!(!t.contains("\"gc1\"") && t.contains("\"gc2\""), "{t}");
    h.call("portmap", "DEL", "gc2", &pod.path(), &c).ok();
}

#[test]
fn firewall_isolates_bridges_and_removes_its_rules() {
    if !root() || !have_nft() {
        return;
    }
    let h = Host::new();
    let na = h.bridge_conf("1.0.0", "fwa", "brfwa", "10.72.0.0/24", json!({}));
    let nb = h.bridge_conf("1.0.0", "fwb", "brfwb", "10.73.0.0/24", json!({}));
    let (a, b) = (Netns::new("fa"), Netns::new("fb"));
    let ra = h.call("bridge", "ADD", "ca", &a.path(), &na).ok().json();
    let rb = h.call("bridge", "ADD", "cb", &b.path(), &nb).ok().json();
    let (ipa, ipb) = (ip_of(&ra, 0), ip_of(&rb, 0));
    assert!(reach(&a.path(), &b.path(), ipb), "bridges route to each other before the firewall");

    let fw = |net: &str, prev: &Value, policy: &str| {
        json!({"cniVersion": "1.0.0", "name": net, "type": "firewall", "ingressPolicy": policy, "prevResult": prev})
            .to_string()
    };
    // Open policy: per-container rules only, and traffic still flows.
    let fa = fw("fwa", &ra, "open");
    let out = h.call("firewall", "ADD", "ca", &a.path(), &fa).ok().json();
    assert_eq!(out["ips"], ra["ips"]);
    let t = h.table("inet", "cni_firewall");
    assert!(t.contains(&format!("ip daddr {ipa} ct state established,related accept")), "{t}");
    assert!(t.contains(&format!("ip saddr {ipa} accept")), "{t}");
    assert!(t.contains("jump CNI-ADMIN"), "{t}");
    assert!(reach(&a.path(), &b.path(), ipb));

    // The admin chain is the operators': what they add survives our ADDs.
    h.ns.sh("nft add rule inet cni_firewall CNI-ADMIN ip saddr 192.0.2.1 drop comment \\\"operator\\\"");

    // Isolated policy on both bridges: no traffic across.
    let fa = fw("fwa", &ra, "isolated");
    let fb = fw("fwb", &rb, "isolated");
    h.call("firewall", "ADD", "ca", &a.path(), &fa).ok();
    h.call("firewall", "ADD", "cb", &b.path(), &fb).ok();
    let t = h.table("inet", "cni_firewall");
    assert!(t.contains("iifname \"brfwa\" oifname != \"brfwa\" jump isolation_stage_2"), "{t}");
    assert!(t.contains("oifname \"brfwb\" drop"), "{t}");
    assert!(t.contains("comment \"operator\""), "{t}");
    assert_eq!(t.matches(&format!("ip saddr {ipa} accept")).count(), 1, "{t}");
    assert!(!reach(&a.path(), &b.path(), ipb), "isolated bridges reached each other");
    assert!(!reach(&b.path(), &a.path(), ipa), "isolated bridges reached each other");
    h.call("firewall", "CHECK", "ca", &a.path(), &fa).ok();

    // An unknown backend is refused clearly, naming the supported ones; unknown policies too.
    let mut bad: Value = serde_json::from_str(&fa).unwrap();
    bad["backend"] = json!("ebtables");
    let r = h.call("firewall", "ADD", "ca", &a.path(), &bad.to_string());
    assert!(r.stdout.contains("supported: \\\"firewalld\\\", \\\"iptables\\\", \\\"nftables\\\""), "{r:?}");
    // DEL of such a config has nothing to undo and succeeds.
    h.call("firewall", "DEL", "cx", &a.path(), &bad.to_string()).ok();
    bad["backend"] = json!("nftables");
    bad["ingressPolicy"] = json!("closed");
    assert!(h.call("firewall", "ADD", "ca", &a.path(), &bad.to_string()).stdout.contains("unknown ingress policy"));
    // Versions before 0.4.0 are refused.
    let old = json!({"cniVersion": "0.3.1", "name": "fwa", "type": "firewall", "prevResult": ra}).to_string();
    assert_eq!(h.call("firewall", "ADD", "ca", &a.path(), &old).code(), 1);

    // DEL removes the container's rules, without prevResult too, and twice.
    h.call("firewall", "DEL", "ca", &a.path(), &fa).ok();
    let no_prev = json!({"cniVersion": "1.0.0", "name": "fwb", "type": "firewall"}).to_string();
    h.call("firewall", "DEL", "cb", "", &no_prev).ok();
    h.call("firewall", "DEL", "cb", "", &no_prev).ok();
    let t = h.table("inet", "cni_firewall");
    assert!(!t.contains(&ipa.to_string()) && !t.contains(&ipb.to_string()), "{t}");
    assert!(h.call("firewall", "CHECK", "ca", &a.path(), &fa).status != 0);
    h.call("bridge", "DEL", "ca", &a.path(), &na).ok();
    h.call("bridge", "DEL", "cb", &b.path(), &nb).ok();
}

#[test]
fn portmap_ipv6_through_the_ip6_table() {
    if !root() || !have_nft() {
        return;
    }
    let h = Host::new();
    let client = h.outside("p6", "192.168.71");
    let hv = h.ns.sh("ip -o link show type veth").lines().find_map(|l| {
        l.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n).to_string()).filter(|n| n.starts_with("ho"))
    });
    let hv = hv.expect("host side of the outside link");
    h.ns.sh(&format!("ip addr add fd71::1/64 dev {hv} nodad"));
    assert!(client.exec("ip addr add fd71::2/64 dev ox nodad").0);
    let ranges = json!([[{"subnet": "10.71.0.0/24"}], [{"subnet": "fd72::/64"}]]);
    let conf = json!({"cniVersion": "1.0.0", "name": "pm6", "type": "bridge", "bridge": "brpm6",
        "isDefaultGateway": true, "ipam": {"type": "host-local", "ranges": ranges, "dataDir": h.data.path()}});
    let pod = Netns::new("q6");
    let r = h.call("bridge", "ADD", "c6", &pod.path(), &conf.to_string()).ok().json();
    let v6 = r["ips"][1]["address"].as_str().unwrap().split('/').next().unwrap().to_string();
    let pm = json!({"cniVersion": "1.0.0", "name": "pm6", "type": "portmap", "prevResult": r,
        "runtimeConfig": {"portMappings": [{"hostPort": 18090, "containerPort": 8090, "protocol": "tcp"}]}})
    .to_string();
    h.call("portmap", "ADD", "c6", &pod.path(), &pm).ok();
    let t = h.table("ip6", "cni_hostport");
    assert!(t.contains(&format!("tcp dport 18090 dnat to [{v6}]:8090 comment \"c6\"")), "{t}");
    assert!(t.contains(&format!("ip6 saddr {v6} ip6 daddr {v6} masquerade")), "{t}");
    assert!(h.table("ip", "cni_hostport").contains("tcp dport 18090 dnat to 10.71.0."));

    // The gateway address on the bridge must finish DAD before the pod's replies can use it.
    let start = Instant::now();
    while !h.ns.sh("ip -6 addr show dev brpm6 tentative").is_empty() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = serve_tcp(pod.path(), 8090, b"over v6");
    assert_eq!(fetch_tcp(client.path(), "fd71::1".parse().unwrap(), 18090), "over v6");
    let _ = s.join();
    h.call("portmap", "CHECK", "c6", &pod.path(), &pm).ok();
    h.call("portmap", "DEL", "c6", &pod.path(), &pm).ok();
    assert!(!h.table("ip6", "cni_hostport").contains("c6"));
    assert!(!h.table("ip", "cni_hostport").contains("c6"));
    h.call("bridge", "DEL", "c6", &pod.path(), &conf.to_string()).ok();
}

fn have_iptables() -> bool {
    let ok = ["/usr/sbin/iptables", "/usr/lib/cni/bridge", "/usr/lib/cni/portmap"]
        .iter()
        .all(|p| std::path::Path::new(p).exists());
    if !ok {
        eprintln!("skipping: iptables or the distribution's plugins are not installed");
    }
    ok
}

/// The reference's per-container iptables chain: `CNI-<prefix>` + sha512(net + cid) in hex,
/// 28 characters in all.
fn ref_chain(net: &str, cid: &str, prefix: &str) -> String {
    let out = sh(&format!("printf '%s' '{net}{cid}' | sha512sum"));
    let mut s = format!("CNI-{prefix}{}", out.split_whitespace().next().unwrap());
    s.truncate(28);
    s
}

#[test]
fn del_and_gc_remove_the_reference_plugins_iptables_chains() {
    if !root() || !have_nft() || !have_iptables() {
        return;
    }
    let h = Host::new();
    let (pod, pod2) = (Netns::new("ri"), Netns::new("ri"));
    let br = unique("br");
    let net = "iptnet";
    let conf = h.bridge_conf("1.0.0", net, &br, "10.76.0.0/24", json!({"ipMasq": true}));
    let ref_call = |name: &str, cmd: &str, cid: &str, ns: &Netns, stdin: &str| {
        let path = ns.path();
        let env = call_env(cmd, cid, &path, "eth0", Some(&h.path));
        reference_plugin(name, &h.ns, &env, stdin)
    };
    let r = ref_call("bridge", "ADD", "ipt1", &pod, &conf).ok().json();
    let pm = json!({"cniVersion": "1.0.0", "name": net, "type": "portmap", "prevResult": r,
        "runtimeConfig": {"portMappings": [{"hostPort": 8088, "containerPort": 80, "protocol": "tcp"}]}})
    .to_string();
    ref_call("portmap", "ADD", "ipt1", &pod, &pm).ok();
    let fw = json!({"cniVersion": "1.0.0", "name": net, "type": "firewall", "prevResult": r}).to_string();
    let ip1 = r["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap().to_string();
    let reference_fw = std::path::Path::new("/usr/lib/cni/firewall").exists();
    if reference_fw {
        ref_call("firewall", "ADD", "ipt1", &pod, &fw).ok();
        let filter = h.ns.sh("iptables-save -t filter");
        assert!(filter.contains(&format!("-s {ip1}/32 -j ACCEPT")), "{filter}");
    }
    ref_call("bridge", "ADD", "ipt2", &pod2, &conf).ok();

    let save = || h.ns.sh("iptables-save -t nat");
    let (masq1, dnat1, masq2) = (ref_chain(net, "ipt1", ""), ref_chain(net, "ipt1", "DN-"), ref_chain(net, "ipt2", ""));
    let before = save();
    for c in [&masq1, &dnat1, &masq2] {
        assert!(before.contains(&format!("-j {c}")), "{c} missing from\n{before}");
    }

    // cnibox's DEL removes the jumps and the chains of ipt1, and leaves ipt2's alone; the
    // firewall's DEL removes the reference firewall's rules for ipt1's address.
    if reference_fw {
        h.call("firewall", "DEL", "ipt1", &pod.path(), &fw).ok();
        let filter = h.ns.sh("iptables-save -t filter");
        assert!(!filter.contains(&format!("{ip1}/32")), "{filter}");
    }
    h.call("portmap", "DEL", "ipt1", &pod.path(), &pm).ok();
    h.call("bridge", "DEL", "ipt1", &pod.path(), &conf).ok();
    let after = save();
    assert!(!after.contains(&masq1) && !after.contains(&dnat1), "{after}");
    assert!(after.contains(&format!("-j {masq2}")), "{after}");

    // GC finds ipt2's chain by the comment of its jump.
    let mut gc: Value = serde_json::from_str(&conf).unwrap();
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([]);
    let env = [("CNI_COMMAND", "GC"), ("CNI_PATH", h.path.as_str())];
    plugin("bridge", Some(&h.ns), &env, &gc.to_string()).ok();
    let after = save();
    assert!(!after.contains(&masq2), "{after}");
    h.call("bridge", "DEL", "ipt2", &pod2.path(), &conf).ok();

    // Nothing left, or no chain at all: DEL still succeeds.
    h.call("portmap", "DEL", "ipt1", &pod.path(), &pm).ok();
    h.call("bridge", "DEL", "ipt1", &pod.path(), &conf).ok();
}

fn have_iptables_restore() -> bool {
    let ok = ["/usr/sbin/iptables", "/usr/sbin/iptables-restore"].iter().all(|p| std::path::Path::new(p).exists());
    if !ok {
        eprintln!("skipping: iptables is not installed");
    }
    ok
}

/// On a node whose iptables FORWARD policy is DROP (as Docker leaves it), an unset backend
/// writes the reference's iptables rules, which open the forward path; nftables accepts alone
/// would not.
#[test]
fn firewall_iptables_backend_opens_a_drop_forward_policy() {
    if !root() || !have_nft() || !have_iptables_restore() {
        return;
    }
    let h = Host::new();
    let br = unique("br");
    let conf = h.bridge_conf("1.0.0", "fwi", &br, "10.74.0.0/24", json!({}));
    let (pod, pod2) = (Netns::new("fi"), Netns::new("fi"));
    let r = h.call("bridge", "ADD", "fi1", &pod.path(), &conf).ok().json();
    let r2 = h.call("bridge", "ADD", "fi2", &pod2.path(), &conf).ok().json();
    let ip = ip_of(&r, 0);
    let out = h.outside("fo", "192.168.74");
    out.sh("ip route add 10.74.0.0/24 via 192.168.74.1");
    let far: IpAddr = "192.168.74.2".parse().unwrap();
    h.ns.sh("iptables -P FORWARD DROP");
    assert!(!reach(&pod.path(), &out.path(), far), "FORWARD DROP let the pod out");

    let fw = |prev: &Value, extra: Value| {
        let mut c = json!({"cniVersion": "1.0.0", "name": "fwi", "type": "firewall", "prevResult": prev});
        merge(&mut c, extra);
        c.to_string()
    };
    // Explicitly nftables: the rules go to nftables, and the DROP policy still wins.
    let f = fw(&r, json!({"backend": "nftables"}));
    h.call("firewall", "ADD", "fi1", &pod.path(), &f).ok();
    assert!(h.table("inet", "cni_firewall").contains(&format!("ip saddr {ip} accept")));
    assert!(!reach(&pod.path(), &out.path(), far), "an nftables accept overrode iptables' DROP");
    h.call("firewall", "DEL", "fi1", &pod.path(), &f).ok();

    // Unset: the filter table is in use, so iptables, laid out as the reference lays it out.
    let f = fw(&r, json!({"ingressPolicy": "same-bridge"}));
    h.call("firewall", "ADD", "fi1", &pod.path(), &f).ok();
    h.call("firewall", "ADD", "fi1", &pod.path(), &f).ok();
    let f2 = fw(&r2, json!({"backend": "iptables", "ingressPolicy": "same-bridge"}));
    h.call("firewall", "ADD", "fi2", &pod2.path(), &f2).ok();
    let rules = h.ns.sh("iptables -S");
    for want in [
        "-N CNI-ADMIN".to_string(),
        "-A FORWARD -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)\" -j CNI-ISOLATION-STAGE-1".into(),
        "-A FORWARD -m comment --comment \"CNI firewall plugin rules\" -j CNI-FORWARD".into(),
        "-A CNI-FORWARD -m comment --comment \"CNI firewall plugin admin overrides\" -j CNI-ADMIN".into(),
        format!("-A CNI-FORWARD -d {ip}/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        format!("-A CNI-FORWARD -s {ip}/32 -j ACCEPT"),
        format!("-A CNI-ISOLATION-STAGE-1 -i {br} ! -o {br} -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j CNI-ISOLATION-STAGE-2"),
        format!("-A CNI-ISOLATION-STAGE-2 -o {br} -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)\" -j DROP"),
    ] {
        assert_eq!(rules.lines().filter(|l| *l == want).count(), 1, "{want} not once in\n{rules}");
    }
    // The two STAGE-1 rules (bridge, RETURN), STAGE-2 (bridge, RETURN), admin jump + 2 per pod.
    assert_eq!(rules.lines().filter(|l| l.starts_with("-A CNI-")).count(), 4 + 5, "{rules}");
    assert!(!h.table("inet", "cni_firewall").contains(&ip.to_string()));
    assert!(reach(&pod.path(), &out.path(), far), "the iptables rules did not open the forward path");
    h.call("firewall", "CHECK", "fi1", &pod.path(), &f).ok();
    if std::path::Path::new("/usr/lib/cni/firewall").exists() {
        let path = pod.path();
        let env = call_env("CHECK", "fi1", &path, "eth0", Some(&h.path));
        reference_plugin("firewall", &h.ns, &env, &f).ok();
    }

    // DEL removes the pod's two rules, and CHECK then fails naming one.
    h.call("firewall", "DEL", "fi1", &pod.path(), &f).ok();
    let rules = h.ns.sh("iptables -S CNI-FORWARD");
    assert!(!rules.contains(&format!("{ip}/32")) && rules.contains(&format!("{}/32", ip_of(&r2, 0))), "{rules}");
    let c = h.call("firewall", "CHECK", "fi1", &pod.path(), &f);
    assert!(c.status != 0 && c.stdout.contains("not found"), "{c:?}");

    // Without prevResult (a runtime that lost its cache), DEL finds the addresses in the note
    // ADD left.
    let _notes = TempDir("/run/cni/firewall/fwi".into());
    h.call("firewall", "ADD", "fi1", &pod.path(), &f).ok();
    let mut no_prev: Value = serde_json::from_str(&f).unwrap();
    no_prev.as_object_mut().unwrap().remove("prevResult");
    h.call("firewall", "DEL", "fi1", &pod.path(), &no_prev.to_string()).ok();
    let rules = h.ns.sh("iptables -S CNI-FORWARD");
    assert!(!rules.contains(&format!("{ip}/32")) && rules.contains(&format!("{}/32", ip_of(&r2, 0))), "{rules}");

    // A pod whose DEL never came: GC removes its rules, found by the note its ADD left.
    h.call("firewall", "ADD", "fi1", &pod.path(), &f).ok();
    let gc = json!({"cniVersion": "1.1.0", "name": "fwi", "type": "firewall",
        "cni.dev/valid-attachments": [{"containerID": "fi2", "ifname": "eth0"}]});
    plugin("firewall", Some(&h.ns), &[("CNI_COMMAND", "GC"), ("CNI_PATH", h.path.as_str())], &gc.to_string()).ok();
    let rules = h.ns.sh("iptables -S CNI-FORWARD");
    assert!(!rules.contains(&format!("{ip}/32")) && rules.contains(&format!("{}/32", ip_of(&r2, 0))), "{rules}");
    assert_eq!(std::fs::read_dir("/run/cni/firewall/fwi").map(|d| d.count()).unwrap_or(0), 1);
    h.call("firewall", "DEL", "fi2", &pod2.path(), &f2).ok();
    assert!(!std::path::Path::new("/run/cni/firewall/fwi").exists());
    h.call("bridge", "DEL", "fi1", &pod.path(), &conf).ok();
    h.call("bridge", "DEL", "fi2", &pod2.path(), &conf).ok();
}

/// `ipMasqBackend: "iptables"` writes the reference's nat layout, which masquerades, and DEL and
/// GC remove it as they remove the reference's own.
#[test]
fn bridge_ipmasq_iptables_backend() {
    if !root() || !have_nft() || !have_iptables_restore() {
        return;
    }
    let h = Host::new();
    let out = h.outside("mi", "192.168.78");
    let br = unique("br");
    let net = "ipmnet";
    let conf = h.bridge_conf("1.1.0", net, &br, "10.79.0.0/24", json!({"ipMasq": true, "ipMasqBackend": "iptables"}));
    let far: IpAddr = "192.168.78.2".parse().unwrap();
    let (p1, p2) = (Netns::new("mi"), Netns::new("mi"));
    let r1 = h.call("bridge", "ADD", "im1", &p1.path(), &conf).ok().json();
    h.call("bridge", "ADD", "im2", &p2.path(), &conf).ok();
    let ip1 = ip_of(&r1, 0);
    let chain = ref_chain(net, "im1", "");
    let comment = format!("--comment \"name: \\\"{net}\\\" id: \\\"im1\\\"\"");
    let nat = h.ns.sh("iptables -t nat -S");
    for want in [
        format!("-N {chain}"),
        format!("-A POSTROUTING -s {ip1}/32 -m comment {comment} -j {chain}"),
        format!("-A {chain} -d 10.79.0.0/24 -m comment {comment} -j ACCEPT"),
        format!("-A {chain} ! -d 224.0.0.0/4 -m comment {comment} -j MASQUERADE"),
    ] {
        assert_eq!(nat.lines().filter(|l| *l == want).count(), 1, "{want} not once in\n{nat}");
    }
    assert!(!h.table("inet", "cni_plugins_masquerade").contains(&ip1.to_string()));
    assert!(reach(&p1.path(), &out.path(), far), "masqueraded pod got no reply");

    // DEL removes the chain and its jump; GC removes those of attachments not kept.
    h.call("bridge", "DEL", "im1", &p1.path(), &conf).ok();
    let nat = h.ns.sh("iptables -t nat -S");
    assert!(!nat.contains(&chain) && nat.contains(&ref_chain(net, "im2", "")), "{nat}");
    let mut gc: Value = serde_json::from_str(&conf).unwrap();
    gc["cni.dev/valid-attachments"] = json!([]);
    let env = [("CNI_COMMAND", "GC"), ("CNI_PATH", h.path.as_str())];
    plugin("bridge", Some(&h.ns), &env, &gc.to_string()).ok();
    assert!(!h.ns.sh("iptables -t nat -S").contains("CNI-"));
    h.call("bridge", "DEL", "im2", &p2.path(), &conf).ok();

    // Unknown backends are refused, naming the value.
    let bad = h.bridge_conf("1.1.0", net, &br, "10.79.0.0/24", json!({"ipMasq": true, "ipMasqBackend": "ebtables"}));
    let r = h.call("bridge", "ADD", "im3", &p1.path(), &bad);
    assert!(r.status != 0 && r.stdout.contains("ebtables"), "{r:?}");
}

/// STATUS of configs with iptables backends: fine where iptables is installed; a backend this
/// build does not have, or portmap options of two backends, fail it.
#[test]
fn status_of_iptables_backends() {
    if !root() || !have_iptables_restore() {
        return;
    }
    let h = Host::new();
    let status = |plugin_name: &str, conf: Value| {
        let env = [("CNI_COMMAND", "STATUS"), ("CNI_PATH", h.path.as_str())];
        plugin(plugin_name, Some(&h.ns), &env, &conf.to_string())
    };
    let v = "1.1.0";
    status("firewall", json!({"cniVersion": v, "name": "st", "type": "firewall", "backend": "iptables"})).ok();
    status("portmap", json!({"cniVersion": v, "name": "st", "type": "portmap", "backend": "iptables"})).ok();
    let bridge = json!({"cniVersion": v, "name": "st", "type": "bridge", "ipMasq": true, "ipMasqBackend": "iptables",
        "ipam": {"type": "host-local", "subnet": "10.78.9.0/24", "dataDir": h.data.path()}});
    status("bridge", bridge).ok();
    let r = status("firewall", json!({"cniVersion": v, "name": "st", "type": "firewall", "backend": "firewalld"}));
    assert!(r.status != 0 && r.stdout.contains("firewalld"), "{r:?}");
    let r = status(
        "portmap",
        json!({"cniVersion": v, "name": "st", "type": "portmap", "backend": "iptables", "conditionsV4": ["ip saddr 1.2.3.4"]}),
    );
    assert!(r.status != 0 && r.stdout.contains("nftables-specific options"), "{r:?}");
}

#[test]
fn container_ids_too_long_for_a_comment_are_refused() {
    if !root() || !have_nft() {
        return;
    }
    let h = Host::new();
    let pod = Netns::new("lc");
    let long = "a".repeat(200);
    let prev = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": pod.path()}],
        "ips": [{"address": "10.73.0.5/24", "interface": 0}]});
    let pm = json!({"cniVersion": "1.0.0", "name": "lc", "type": "portmap", "prevResult": prev,
        "runtimeConfig": {"portMappings": [{"hostPort": 9100, "containerPort": 90, "protocol": "tcp"}]}})
    .to_string();
    let r = h.call("portmap", "ADD", &long, &pod.path(), &pm);
    assert!(r.status != 0 && r.stdout.contains("more than the 128 nftables allows"), "{r:?}");
    assert!(!h.table("ip", "cni_hostport").contains("aaaa"));
    h.call("portmap", "DEL", &long, &pod.path(), &pm).ok();

    let br = unique("br");
    let conf = h.bridge_conf("1.0.0", "lc", &br, "10.72.0.0/24", json!({"macspoofchk": true}));
    let r = h.call("bridge", "ADD", &long, &pod.path(), &conf);
    assert!(r.status != 0 && r.stdout.contains("more than the 128 nftables allows"), "{r:?}");
    assert!(!h.table("bridge", "nat").contains("aaaa"), "{}", h.table("bridge", "nat"));
    h.call("bridge", "DEL", &long, &pod.path(), &conf).ok();
}
