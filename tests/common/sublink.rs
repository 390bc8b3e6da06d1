//! The fixture of the plugins that make a sublink of a parent (macvlan, ipvlan): a host
//! namespace with a parent `dm0` that is up, and an IPAM data directory.
#![allow(dead_code)]

use crate::common::*;
use serde_json::{Value, json};

/// Make `name` in `ns` a parent link that is up with carrier: a dummy, or, on kernels without
/// dummy links, one end of a veth pair whose other end (`<name>p`) is up too.
pub fn parent_link(ns: &Netns, name: &str) {
    if !ns.exec(&format!("ip link add {name} type dummy")).0 {
        sh(&format!("ip -n {0} link add {name} type veth peer name {name}p && ip -n {0} link set {name}p up", ns.name));
    }
    sh(&format!("ip -n {} link set {name} up", ns.name));
}

/// The names of the links in `ns`, in the kernel's order.
pub fn link_names(ns: &Netns) -> Vec<String> {
    let (_, out) = ns.exec("ip -o link show");
    out.lines().filter_map(|l| l.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n).to_string())).collect()
}

/// A host namespace `<tag>h` with a parent `dm0` (up, MTU 1500), an IPAM data directory, and
/// the plugin `plugin` on the network `<tag>net`.
pub struct Fixture {
    pub host: Netns,
    pub data: TempDir,
    plugin: &'static str,
    net: String,
}

impl Fixture {
    pub fn new(plugin: &'static str, tag: &str) -> Fixture {
        let host = Netns::new(&format!("{tag}h"));
        parent_link(&host, "dm0");
        Fixture { host, data: TempDir::new(&format!("{tag}data")), plugin, net: format!("{tag}net") }
    }

    /// A config at `version`: host-local on `subnet` (`null`: `"ipam": {}`), `extra` merged on
    /// top (a `null` value removes the key).
    pub fn conf(&self, version: &str, subnet: Value, extra: Value) -> String {
        let ipam = match subnet {
            Value::Null => json!({}),
            Value::Array(r) => json!({"type": "host-local", "dataDir": self.data.path(), "ranges": r}),
            s => json!({"type": "host-local", "dataDir": self.data.path(), "subnet": s}),
        };
        let mut c =
            json!({"cniVersion": version, "name": self.net, "type": self.plugin, "master": "dm0", "ipam": ipam});
        if let Value::Object(m) = extra {
            for (k, v) in m {
                if v.is_null() {
                    c.as_object_mut().unwrap().remove(&k);
                } else {
                    c[k] = v;
                }
            }
        }
        c.to_string()
    }

    pub fn call_env(&self, cmd: &str, cid: &str, netns: &str, conf: &str, extra: &[(&str, &str)]) -> Reply {
        let mut env = call_env(cmd, cid, netns, "eth0", None);
        env.extend_from_slice(extra);
        plugin(self.plugin, Some(&self.host), &env, conf)
    }

    pub fn call(&self, cmd: &str, cid: &str, netns: &str, conf: &str) -> Reply {
        self.call_env(cmd, cid, netns, conf, &[])
    }

    pub fn add(&self, cid: &str, ns: &Netns, conf: &str) -> Value {
        self.call("ADD", cid, &ns.path(), conf).ok().json()
    }

    pub fn del(&self, cid: &str, ns: &Netns, conf: &str) {
        self.call("DEL", cid, &ns.path(), conf).ok();
    }

    /// Links in the host namespace other than lo and the parent.
    pub fn host_extra_links(&self) -> Vec<String> {
        link_names(&self.host).into_iter().filter(|n| n != "lo" && n != "dm0" && n != "dm0p").collect()
    }

    /// The addresses host-local holds for the network.
    pub fn leases(&self) -> Vec<String> {
        leases(self.data.path(), &self.net)
    }

    /// Attachments made by one implementation, this fixture's plugin or the reference's, pass
    /// the other's CHECK and are removed by its DEL, each way round in a fresh namespace, and
    /// both give results of the same shape. `after_add` looks at the pod after each ADD (the
    /// adder's name, the namespace).
    pub fn assert_interchangeable_with_reference(&self, conf: &str, after_add: impl Fn(&str, &Netns)) {
        let ns = Netns::new(&format!("{}x", self.plugin.chars().take(3).collect::<String>()));
        let p = ns.path();
        let env = |cmd: &'static str| {
            let mut e = cni_env(cmd, "cx", "", "eth0");
            e.retain(|(k, _)| *k != "CNI_NETNS");
            e.push(("CNI_NETNS", p.as_str()));
            e
        };
        let run = |who: &str, cmd: &'static str, stdin: &str| {
            if who == "reference" {
                reference_plugin(self.plugin, &self.host, &env(cmd), stdin)
            } else {
                self.call(cmd, "cx", &p, stdin)
            }
        };
        let mut shapes = Vec::new();
        for (adder, other) in [("reference", "cnibox"), ("cnibox", "reference")] {
            let result = run(adder, "ADD", conf).ok().json();
            after_add(adder, &ns);
            let mut c: Value = serde_json::from_str(conf).unwrap();
            c["prevResult"] = result.clone();
            run(other, "CHECK", &c.to_string()).ok();
            run(adder, "CHECK", &c.to_string()).ok();
            run(other, "DEL", conf).ok();
            assert!(!ns.exec("ip link show eth0").0, "{adder} ADD, {other} DEL");
            assert!(self.leases().is_empty(), "{adder} ADD, {other} DEL");
            let mut shape = result.clone();
            shape["ips"][0]["address"] = json!("-");
            // An empty `dns` object is printed by some reference builds and omitted by newer ones.
            if shape.get("dns") == Some(&json!({})) {
                shape.as_object_mut().unwrap().remove("dns");
            }
            shapes.push(shape);
        }
        assert_eq!(shapes[0], shapes[1], "results differ in shape");
    }
}
