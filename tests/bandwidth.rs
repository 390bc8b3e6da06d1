//! bandwidth chained after bridge, in real namespaces: the "host" is a throwaway namespace too.

mod common;
use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// A host namespace with its own bridge name, IPAM data, cnitool config and cache.
struct Fixture {
    host: Netns,
    data: TempDir,
    confdir: TempDir,
    cache: TempDir,
    bridge: String,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            host: Netns::new("bwh"),
            data: TempDir::new("bwdata"),
            confdir: TempDir::new("bwconf"),
            cache: TempDir::new("bwcache"),
            bridge: unique("bwbr"),
        }
    }

    /// The bridge plugin's config at `version`.
    fn bridge_conf(&self, version: &str) -> Value {
        json!({
            "cniVersion": version, "name": "bwnet", "type": "bridge", "bridge": self.bridge,
            "ipam": {"type": "host-local", "subnet": "10.98.0.0/24", "dataDir": self.data.path()},
        })
    }

    /// Write the conflist bridge → bandwidth (with the capability) at `version`, for cnitool.
    fn write_list(&self, version: &str, bw_extra: Value) {
        let mut bw = json!({"type": "bandwidth", "capabilities": {"bandwidth": true}});
        merge(&mut bw, bw_extra);
        let mut br = self.bridge_conf(version);
        for k in ["cniVersion", "name"] {
            br.as_object_mut().unwrap().remove(k);
        }
        let list = json!({"cniVersion": version, "name": "bwnet", "plugins": [br, bw]});
        write_conf(self.confdir.path(), "10-bwnet.conflist", &list);
    }

    fn cnitool(&self, verb: &str, ns: &Netns, cap_args: &Value) -> Reply {
        let cap = cap_args.to_string();
        let cache = self.cache.path().to_str().unwrap().to_string();
        cnitool(
            Some(&self.host),
            self.confdir.path(),
            &[verb, "bwnet", &ns.path()],
            &[("CAP_ARGS", &cap), ("CNI_CACHE_DIR", &cache)],
        )
    }

    /// Call a plugin directly in the host namespace.
    fn call(&self, plugin_name: &str, cmd: &str, cid: &str, ns: &Netns, conf: &Value) -> Reply {
        let path = ns.path();
        let env = cni_env(cmd, cid, &path, "eth0");
        plugin(plugin_name, Some(&self.host), &env, &conf.to_string())
    }

    /// bridge ADD for `cid`, returning its result.
    fn bridge_add(&self, version: &str, cid: &str, ns: &Netns) -> Value {
        self.call("bridge", "ADD", cid, ns, &self.bridge_conf(version)).ok().json()
    }

    /// A bandwidth config at `version` with `prev` and `extra` merged on top.
    fn bw_conf(&self, version: &str, prev: Option<&Value>, extra: Value) -> Value {
        let mut c = json!({"cniVersion": version, "name": "bwnet", "type": "bandwidth"});
        if let Some(p) = prev {
            c["prevResult"] = p.clone();
        }
        merge(&mut c, extra);
        c
    }

    fn host_json(&self, cmd: &str) -> Value {
        let out = self.host.sh(cmd);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("`{cmd}` gave no JSON ({e}): {out}"))
    }

    /// `tc -r -d -j qdisc show dev DEV`.
    fn qdiscs(&self, dev: &str) -> Vec<Value> {
        self.host_json(&format!("tc -r -d -j qdisc show dev {dev}")).as_array().cloned().unwrap_or_default()
    }

    fn root_tbf(&self, dev: &str) -> Option<Value> {
        self.qdiscs(dev).into_iter().find(|q| q["kind"] == "tbf" && q["root"] == true)
    }

    fn ifbs(&self) -> Vec<String> {
        self.host
            .sh("ip -o link show type ifb")
            .lines()
            .filter_map(|l| l.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n).to_string()))
            .collect()
    }

    fn link_exists(&self, dev: &str) -> bool {
        self.host.exec(&format!("ip link show dev {dev}")).0
    }
}

/// The host veth of a bridge result: the interface without a sandbox named veth*.
fn host_veth(result: &Value) -> String {
    result["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .filter(|i| i.get("sandbox").is_none())
        .filter_map(|i| i["name"].as_str())
        .find(|n| n.starts_with("veth"))
        .expect("host veth")
        .to_string()
}

fn ifb_of(result: &Value) -> Option<String> {
    result["interfaces"]
        .as_array()?
        .iter()
        .filter_map(|i| i["name"].as_str())
        .find(|n| n.starts_with("bwp"))
        .map(String::from)
}

/// The TBF parameters the reference computes with a 15.625 ticks/us psched clock:
/// (rate bytes/s, limit bytes, buffer ticks as tc's hex `burst_raw`).
fn expected(rate_bits: u64, burst_bits: u64) -> (u64, u64, String) {
    let rate = rate_bits / 8;
    let burst = burst_bits / 8;
    let usecs = (burst as f64 * 1e6 / rate as f64) as u32;
    let ticks = (f64::from(usecs) * 15.625) as u32;
    let limit = (rate as f64 * 25_000.0 / 1e6) as u64 + burst;
    (rate, limit, format!("{ticks:x}"))
}

fn psched_is_standard() -> bool {
    std::fs::read_to_string("/proc/net/psched").is_ok_and(|s| s.starts_with("000003e8 00000040 000f4240"))
}

fn assert_tbf(f: &Fixture, dev: &str, rate_bits: u64, burst_bits: u64) {
    let q = f.root_tbf(dev).unwrap_or_else(|| panic!("no root tbf on {dev}: {:?}", f.qdiscs(dev)));
    let (rate, limit, raw) = expected(rate_bits, burst_bits);
    assert_eq!(q["handle"], "1:", "{q}");
    assert_eq!(q["options"]["rate"].as_u64(), Some(rate), "{q}");
    assert_eq!(q["options"]["limit"].as_u64(), Some(limit), "{q}");
    if psched_is_standard() {
        assert_eq!(q["options"]["burst_raw"].as_str(), Some(raw.as_str()), "{q}");
    }
}

const CAPS: &str =
    r#"{"bandwidth":{"ingressRate":1000000,"ingressBurst":81920,"egressRate":2000000,"egressBurst":163840}}"#;

#[test]
fn chain_through_cnitool_at_every_version() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let caps: Value = serde_json::from_str(CAPS).unwrap();
    for &v in VERSIONS {
        f.write_list(v, json!({}));
        let pod = Netns::new("bwp");
        let r = f.cnitool("add", &pod, &caps);
        assert_eq!(r.status, 0, "{v}: {r:?}");
        let result = r.json();
        let veth = host_veth(&result);
        let ifb = ifb_of(&result).unwrap_or_else(|| panic!("{v}: no ifb in result: {result}"));
        assert_eq!(ifb.len(), 15);
        let ifs = result["interfaces"].as_array().unwrap();
        assert_eq!(ifs.last().unwrap()["name"], ifb.as_str(), "{v}: the ifb comes last");
        assert!(ifs.last().unwrap().get("sandbox").is_none());
        let mac = f.host.sh(&format!("cat /sys/class/net/{ifb}/address"));
        assert_eq!(ifs.last().unwrap()["mac"], mac.trim(), "{v}");

        // Ingress: TBF on the host veth.
        assert_tbf(&f, &veth, 1_000_000, 81_920);
        // Egress: ingress qdisc and redirect on the host veth, TBF on the ifb.
        assert!(f.qdiscs(&veth).iter().any(|q| q["kind"] == "ingress" && q["handle"] == "ffff:"), "{v}");
        let filters = f.host_json(&format!("tc -j filter show dev {veth} parent ffff:"));
        let redirect = filters
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|fl| fl["options"]["actions"].as_array().cloned().unwrap_or_default())
            .find(|a| a["kind"] == "mirred")
            .unwrap_or_else(|| panic!("{v}: no mirred action: {filters}"));
        assert_eq!(redirect["to_dev"], ifb.as_str());
        assert_eq!(
            (redirect["mirred_action"].as_str(), redirect["direction"].as_str()),
            (Some("redirect"), Some("egress"))
        );
        assert!(filters.as_array().unwrap().iter().all(|fl| fl["protocol"] == "all" && fl["pref"] == 1), "{filters}");
        assert_tbf(&f, &ifb, 2_000_000, 163_840);
        // The ifb: up, MTU of the host veth, txqlen 0, labelled for GC.
        let link = &f.host_json(&format!("ip -d -j link show dev {ifb}"))[0];
        let vlink = &f.host_json(&format!("ip -j link show dev {veth}"))[0];
        assert_eq!(link["mtu"], vlink["mtu"]);
        assert_eq!(f.host.sh(&format!("cat /sys/class/net/{ifb}/tx_queue_len")).trim(), "0");
        assert!(link["flags"].as_array().unwrap().iter().any(|x| x == "UP"), "{link}");
        let cid = link["ifalias"].as_str().and_then(|a| a.strip_prefix("cni-bandwidth:bwnet:")).unwrap_or_default();
        assert!(cid.starts_with("cnitool-") && cid.ends_with(":eth0"), "{link}");

        if v >= "0.4.0" {
            let r = f.cnitool("check", &pod, &caps);
            assert_eq!(r.status, 0, "{v}: {r:?}");
            // Other limits than those applied: CHECK names what differs.
            let other = json!({"bandwidth": {"ingressRate": 3000000, "ingressBurst": 81920}});
            let r = f.cnitool("check", &pod, &other);
            assert_ne!(r.status, 0, "{v}");
            assert!(r.stderr.contains("Rate doesn't match") && r.stderr.contains(&veth), "{v}: {r:?}");
        }

        let r = f.cnitool("del", &pod, &caps);
        assert_eq!(r.status, 0, "{v}: {r:?}");
        assert!(!f.link_exists(&ifb), "{v}: ifb left behind");
        assert!(!f.link_exists(&veth), "{v}: veth left behind");
        // DEL again: nothing to delete is fine.
        assert_eq!(f.cnitool("del", &pod, &caps).status, 0);
    }
    assert!(f.ifbs().is_empty(), "{:?}", f.ifbs());
}

#[test]
fn top_level_limits_win_and_each_direction_alone() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    // Ingress only, from the top level; runtimeConfig is ignored when any top-level field is set.
    let pod = Netns::new("bwp");
    let prev = f.bridge_add("1.0.0", "c1", &pod);
    let veth = host_veth(&prev);
    let conf = f.bw_conf(
        "1.0.0",
        Some(&prev),
        json!({"ingressRate": 800000, "ingressBurst": 16000, "egressRate": 0,
               "runtimeConfig": {"bandwidth": {"egressRate": 1000000, "egressBurst": 100000}}}),
    );
    let r = f.call("bandwidth", "ADD", "c1", &pod, &conf).ok().json();
    assert_eq!(r["interfaces"], prev["interfaces"], "no ifb for ingress only");
    assert_eq!(r["ips"], prev["ips"]);
    assert_tbf(&f, &veth, 800_000, 16_000);
    assert!(!f.qdiscs(&veth).iter().any(|q| q["kind"] == "ingress"));
    assert!(f.ifbs().is_empty());
    f.call("bandwidth", "CHECK", "c1", &pod, &conf).ok();
    f.call("bandwidth", "DEL", "c1", &pod, &conf).ok();

    // Egress only, from runtimeConfig.
    let pod2 = Netns::new("bwp");
    let prev2 = f.bridge_add("1.0.0", "c2", &pod2);
    let veth2 = host_veth(&prev2);
    let conf2 = f.bw_conf(
        "1.0.0",
        Some(&prev2),
        json!({"runtimeConfig": {"bandwidth": {"egressRate": 1000000, "egressBurst": 100000}}}),
    );
    let r = f.call("bandwidth", "ADD", "c2", &pod2, &conf2).ok().json();
    let ifb = ifb_of(&r).expect("ifb");
    assert!(f.root_tbf(&veth2).is_none(), "{:?}", f.qdiscs(&veth2));
    assert_tbf(&f, &ifb, 1_000_000, 100_000);
    f.call("bandwidth", "CHECK", "c2", &pod2, &conf2).ok();
    // CHECK notices a missing redirect and a missing bucket, naming the devices.
    f.host.sh(&format!("tc filter del dev {veth2} parent ffff:"));
    let r = f.call("bandwidth", "CHECK", "c2", &pod2, &conf2);
    let want = format!("no filter on \"{veth2}\" redirects egress traffic to \"{ifb}\"");
    assert_eq!((r.code(), r.json()["msg"].as_str()), (999, Some(want.as_str())));
    f.host.sh(&format!("tc qdisc del dev {ifb} root"));
    let r = f.call("bandwidth", "CHECK", "c2", &pod2, &conf2);
    let want = format!("Failed to find tbf qdisc on \"{ifb}\"");
    assert_eq!((r.code(), r.json()["msg"].as_str()), (999, Some(want.as_str())));
    // A second ADD for the same container finds its ifb taken: named in the error, and what
    // this ADD made is undone.
    let r = f.call("bandwidth", "ADD", "c2", &pod2, &conf2);
    assert_eq!(r.code(), 999);
    assert!(r.json()["msg"].as_str().unwrap().contains(&format!("\"{ifb}\"")), "{r:?}");
    f.call("bandwidth", "DEL", "c2", &pod2, &conf2).ok();
    assert!(!f.link_exists(&ifb));
    f.call("bandwidth", "DEL", "c2", &pod2, &conf2).ok();
}

#[test]
fn failed_add_undoes_the_ingress_limit() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let pod = Netns::new("bwp");
    let prev = f.bridge_add("1.0.0", "cfail", &pod);
    let veth = host_veth(&prev);
    let conf = f.bw_conf(
        "1.0.0",
        Some(&prev),
        json!({"ingressRate": 1000000, "ingressBurst": 80000, "egressRate": 1000000, "egressBurst": 80000}),
    );
    // Someone else holds the ifb name this attachment needs.
    let r = f.call("bandwidth", "ADD", "cfail", &pod, &conf).ok().json();
    let ifb = ifb_of(&r).unwrap();
    f.call("bandwidth", "DEL", "cfail", &pod, &conf).ok();
    f.host.sh(&format!("tc qdisc del dev {veth} root; tc qdisc del dev {veth} ingress; ip link add {ifb} type ifb"));
    let r = f.call("bandwidth", "ADD", "cfail", &pod, &conf);
    assert_eq!(r.code(), 999);
    let msg = r.json()["msg"].as_str().unwrap().to_string();
    assert!(msg.contains(&format!("failed to create ifb \"{ifb}\"")) && msg.contains("File exists"), "{msg}");
    assert!(f.root_tbf(&veth).is_none(), "the ingress TBF must be undone: {:?}", f.qdiscs(&veth));
    f.host.sh(&format!("ip link del {ifb}"));
}

#[test]
fn nothing_to_shape_passes_through() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let pod = Netns::new("bwp");
    let prev = f.bridge_add("1.0.0", "cp", &pod);
    let veth = host_veth(&prev);
    for extra in [json!({}), json!({"runtimeConfig": {"bandwidth": {}}}), json!({"ingressRate": 0, "ingressBurst": 0})]
    {
        let r = f.call("bandwidth", "ADD", "cp", &pod, &f.bw_conf("1.0.0", Some(&prev), extra.clone())).ok().json();
        assert_eq!(r, prev, "{extra}");
        let r = f.call("bandwidth", "ADD", "cp", &pod, &f.bw_conf("0.4.0", None, extra.clone())).ok().json();
        assert_eq!(r, json!({"cniVersion": "0.4.0", "dns": {}}), "{extra}");
        let r = f.call("bandwidth", "ADD", "cp", &pod, &f.bw_conf("1.0.0", None, extra.clone())).ok().json();
        assert_eq!(r, json!({"cniVersion": "1.0.0"}), "{extra}");
    }
    assert!(f.qdiscs(&veth).iter().all(|q| q["kind"] != "tbf" && q["kind"] != "ingress"));
    // Limits without a prevResult: not chained.
    let lim = json!({"ingressRate": 1000000, "ingressBurst": 80000});
    let r = f.call("bandwidth", "ADD", "cp", &pod, &f.bw_conf("1.0.0", None, lim.clone()));
    assert_eq!((r.code(), r.json()["msg"].as_str()), (999, Some("must be called as chained plugin")));
    let r = f.call("bandwidth", "CHECK", "cp", &pod, &f.bw_conf("1.0.0", None, lim.clone()));
    assert_eq!((r.code(), r.json()["msg"].as_str()), (999, Some("must be called as a chained plugin")));
    // A prevResult whose host interfaces do not include the container's peer.
    let mut foreign = prev.clone();
    foreign["interfaces"] = json!([{"name": "eth0", "sandbox": pod.path()}]);
    let r = f.call("bandwidth", "ADD", "cp", &pod, &f.bw_conf("1.0.0", Some(&foreign), lim.clone()));
    assert_eq!(r.json()["msg"], "no veth peer of container interface found in host ns", "{r:?}");
    foreign["interfaces"] = json!([]);
    let r = f.call("bandwidth", "ADD", "cp", &pod, &f.bw_conf("1.0.0", Some(&foreign), lim));
    assert_eq!(r.json()["msg"], "no interfaces provided", "{r:?}");
}

#[test]
fn config_validation() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let pod = Netns::new("bwp");
    let cases = [
        (json!({"ingressRate": 1000}), "if rate is set, burst must also be set"),
        (json!({"egressBurst": 1000}), "if burst is set, rate must also be set"),
        (json!({"egressRate": 1000, "egressBurst": 34359738360u64}), "burst cannot be more than 4GB"),
        (json!({"runtimeConfig": {"bandwidth": {"ingressRate": 1000}}}), "if rate is set, burst must also be set"),
        (json!({"ingressRate": 5, "ingressBurst": 800}), "rate must be at least 8 bits per second"),
    ];
    for (extra, msg) in cases {
        let conf = f.bw_conf("1.0.0", None, extra.clone());
        for cmd in ["ADD", "CHECK"] {
            let r = f.call("bandwidth", cmd, "cv", &pod, &conf);
            assert_eq!((r.code(), r.json()["msg"].as_str()), (999, Some(msg)), "{cmd} {extra}");
        }
        // Limits matter only to ADD and CHECK: a pod whose ADD was refused can still be deleted.
        f.call("bandwidth", "DEL", "cv", &pod, &conf).ok();
    }
    // Limits that do not read as numbers fail to decode (code 6), naming the field; DEL still works.
    for extra in [json!({"ingressRate": -1}), json!({"ingressRate": "1mbit"}), json!({"egressBurst": 1e30})] {
        let conf = f.bw_conf("1.0.0", None, extra.clone());
        let r = f.call("bandwidth", "ADD", "cv", &pod, &conf);
        assert_eq!(r.code(), 6, "{extra}: {r:?}");
        let msg = r.json()["msg"].as_str().unwrap().to_string();
        assert!(msg.starts_with("failed to parse network configuration: "), "{r:?}");
        let field = extra.as_object().unwrap().keys().next().unwrap().clone();
        assert!(msg.contains(&field), "{msg}");
        f.call("bandwidth", "DEL", "cv", &pod, &conf).ok();
    }
}

#[test]
fn versions_before_0_3_0_are_refused() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let pod = Netns::new("bwp");
    for v in ["0.1.0", "0.2.0"] {
        let r = f.call("bandwidth", "ADD", "cv", &pod, &f.bw_conf(v, None, json!({})));
        assert_eq!(r.code(), 1, "{v}: {r:?}");
    }
    let r = plugin("bandwidth", None, &[("CNI_COMMAND", "VERSION")], "");
    let supported = r.ok().json()["supportedVersions"].clone();
    assert_eq!(supported, json!(VERSIONS));
    for &v in VERSIONS {
        let r = f.call("bandwidth", "ADD", "cv", &pod, &f.bw_conf(v, None, json!({})));
        assert_eq!(r.status, 0, "{v}: {r:?}");
    }
}

#[test]
fn gc_removes_ifbs_of_invalid_attachments_only() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let lim = json!({"egressRate": 1000000, "egressBurst": 80000});
    let mut ifbs = Vec::new();
    let pods: Vec<Netns> = (0..2).map(|_| Netns::new("bwp")).collect();
    for (i, pod) in pods.iter().enumerate() {
        let cid = format!("gc{i}");
        let prev = f.bridge_add("1.1.0", &cid, pod);
        let r = f.call("bandwidth", "ADD", &cid, pod, &f.bw_conf("1.1.0", Some(&prev), lim.clone())).ok().json();
        ifbs.push(ifb_of(&r).unwrap());
    }
    // An ifb without our alias (another implementation's) and one of another network.
    f.host.sh("ip link add bwpforeign0 type ifb");
    f.host.sh("ip link add bwpothernet type ifb && ip link set bwpothernet alias cni-bandwidth:othernet:gc0:eth0");

    let gc = |valid: Value| {
        let conf = f.bw_conf("1.1.0", None, json!({"cni.dev/valid-attachments": valid}));
        let env = [("CNI_COMMAND", "GC"), ("CNI_PATH", plugin_dir().to_str().unwrap())];
        plugin("bandwidth", Some(&f.host), &env, &conf.to_string())
    };
    // GC config without any attachment list judges nothing.
    let env = [("CNI_COMMAND", "GC"), ("CNI_PATH", plugin_dir().to_str().unwrap())];
    plugin("bandwidth", Some(&f.host), &env, &f.bw_conf("1.1.0", None, json!({})).to_string()).ok();
    assert!(ifbs.iter().all(|i| f.link_exists(i)));

    gc(json!([{"containerID": "gc0", "ifname": "eth0"}, {"containerID": "gc1", "ifname": "eth0"}])).ok();
    assert!(ifbs.iter().all(|i| f.link_exists(i)));
    gc(json!([{"containerID": "gc1", "ifname": "eth0"}])).ok();
    assert!(!f.link_exists(&ifbs[0]));
    assert!(f.link_exists(&ifbs[1]));
    gc(json!([])).ok();
    assert!(!f.link_exists(&ifbs[1]));
    assert!(f.link_exists("bwpforeign0") && f.link_exists("bwpothernet"));
    // GC needs 1.1.0.
    let conf = f.bw_conf("1.0.0", None, json!({"cni.dev/valid-attachments": []}));
    assert_eq!(plugin("bandwidth", Some(&f.host), &env, &conf.to_string()).code(), 1);
}

/// Send `bytes` over TCP from the namespace at `from` to `to_ip` in the namespace at `to`;
/// how long until the receiver has them all.
fn transfer(from: String, to: String, to_ip: std::net::IpAddr, bytes: usize) -> Duration {
    let enter = |path: &str| {
        let file = std::fs::File::open(path).expect("open netns");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    };
    // A socket stays in the namespace it was made in.
    let listener = std::thread::scope(|s| {
        s.spawn(|| {
            enter(&to);
            std::net::TcpListener::bind((to_ip, 0)).expect("bind")
        })
        .join()
        .unwrap()
    });
    let port = listener.local_addr().unwrap().port();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut buf).expect("read");
        buf.len()
    });
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(&from);
            let mut c = std::net::TcpStream::connect((to_ip, port)).expect("connect");
            std::io::Write::write_all(&mut c, &vec![7u8; bytes]).expect("write");
        });
    });
    assert_eq!(reader.join().unwrap(), bytes);
    start.elapsed()
}

/// TCP transfers to and from a pod limited to 2 Mbit/s each way take about as long as the
/// limits say: 500 KB is 2 s at the limit, milliseconds unshaped.
#[test]
fn limits_slow_transfers_both_ways() {
    if !root() {
        return;
    }
    let f = Fixture::new();
    let pod = Netns::new("bwp");
    let prev = f.bridge_add("1.0.0", "tp", &pod);
    // The gateway address lives on the bridge in the host namespace.
    f.host.sh(&format!("ip addr add 10.98.0.1/24 dev {}", f.bridge));
    let gw: std::net::IpAddr = "10.98.0.1".parse().unwrap();
    let pod_ip: std::net::IpAddr =
        prev["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap().parse().unwrap();
    let bytes = 500_000;
    // Unshaped first, for scale.
    let free = transfer(pod.path(), f.host.path(), gw, bytes);
    let conf = f.bw_conf(
        "1.0.0",
        Some(&prev),
        json!({"ingressRate": 2000000, "ingressBurst": 40000, "egressRate": 2000000, "egressBurst": 40000}),
    );
    f.call("bandwidth", "ADD", "tp", &pod, &conf).ok();
    let out = transfer(pod.path(), f.host.path(), gw, bytes);
    let into = transfer(f.host.path(), pod.path(), pod_ip, bytes);
    // Generous bounds for a busy machine: being slow never makes a transfer fast.
    for (what, took) in [("egress", out), ("ingress", into)] {
        assert!(took > Duration::from_millis(1500), "{what} too fast for 2 Mbit/s: {took:?} (unshaped {free:?})");
        assert!(took < Duration::from_secs(20), "{what} far too slow: {took:?}");
    }
    f.call("bandwidth", "DEL", "tp", &pod, &conf).ok();
}

const REFERENCE: &str = "/usr/lib/cni/bandwidth";

/// Run the reference plugin in the host namespace.
fn reference(f: &Fixture, cmd: &str, cid: &str, ns: &Netns, conf: &Value) -> Reply {
    let path = ns.path();
    reference_plugin("bandwidth", &f.host, &cni_env(cmd, cid, &path, "eth0"), &conf.to_string())
}

/// Mixed nodes: each implementation CHECKs and DELs what the other made, and both make the
/// same buckets under the same ifb name.
#[test]
fn interop_with_the_reference_plugin() {
    if !root() {
        return;
    }
    if !std::path::Path::new(REFERENCE).is_file() {
        eprintln!("skipping: {REFERENCE} is absent (Debian package containernetworking-plugins)");
        return;
    }
    let f = Fixture::new();
    let lim = json!({"ingressRate": 1000000, "ingressBurst": 81920, "egressRate": 2000000, "egressBurst": 163840});
    let (pa, pb) = (Netns::new("bwp"), Netns::new("bwp"));
    let prev_a = f.bridge_add("1.0.0", "refa", &pa);
    let prev_b = f.bridge_add("1.0.0", "refb", &pb);
    let conf_a = f.bw_conf("1.0.0", Some(&prev_a), lim.clone());
    let conf_b = f.bw_conf("1.0.0", Some(&prev_b), lim.clone());

    // The reference shapes a, we shape b.
    let ra = reference(&f, "ADD", "refa", &pa, &conf_a).ok().json();
    let rb = f.call("bandwidth", "ADD", "refb", &pb, &conf_b).ok().json();
    let (ifb_a, ifb_b) = (ifb_of(&ra).unwrap(), ifb_of(&rb).unwrap());
    assert_eq!(ra["interfaces"].as_array().unwrap().len(), rb["interfaces"].as_array().unwrap().len());
    // The same ifb name for the same attachment: DEL it with the reference, redo it with us.
    reference(&f, "DEL", "refb", &pb, &conf_b).ok();
    assert!(!f.link_exists(&ifb_b));
    f.host.sh(&format!("tc qdisc del dev {v} root; tc qdisc del dev {v} ingress", v = host_veth(&prev_b)));
    let rb = f.call("bandwidth", "ADD", "refb", &pb, &conf_b).ok().json();
    assert_eq!(ifb_of(&rb).unwrap(), ifb_b);

    // Same parameters where the shaping happens.
    let params = |dev: &str| {
        let q = f.root_tbf(dev).unwrap_or_else(|| panic!("no tbf on {dev}"));
        let o = &q["options"];
        (o["rate"].clone(), o["limit"].clone(), o["burst_raw"].clone())
    };
    assert_eq!(params(&host_veth(&prev_a)), params(&host_veth(&prev_b)));
    assert_eq!(params(&ifb_a), params(&ifb_b));
    assert_tbf(&f, &ifb_a, 2_000_000, 163_840);

    // Each CHECKs the other's work (the reference knows no CHECK of our ifb alias, nor needs to).
    let ca = f.bw_conf("1.0.0", Some(&ra), lim.clone());
    let cb = f.bw_conf("1.0.0", Some(&rb), lim.clone());
    f.call("bandwidth", "CHECK", "refa", &pa, &ca).ok();
    reference(&f, "CHECK", "refb", &pb, &cb).ok();
    // And DELs it.
    f.call("bandwidth", "DEL", "refa", &pa, &ca).ok();
    reference(&f, "DEL", "refb", &pb, &cb).ok();
    assert!(f.ifbs().is_empty(), "{:?}", f.ifbs());
}
