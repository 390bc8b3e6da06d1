//! static through the binary: results at every spec version, CNI_ARGS, args and
//! runtimeConfig precedence, version limits, CHECK and DEL.

mod common;

use common::{Reply, cni_env, plugin};
use serde_json::{Value, json};

const NETNS: &str = "/var/run/netns/cnibox-ipam-unused";
const VERSIONS: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

fn conf(version: &str, ipam: Value) -> Value {
    json!({"cniVersion": version, "name": "st", "type": "bridge", "ipam": ipam})
}

fn dual() -> Value {
    json!({
        "type": "static",
        "addresses": [
            {"address": "10.10.0.5/24", "gateway": "10.10.0.1"},
            {"address": "2001:db8::5/64"}
        ],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "2001:db8:1::/48", "gw": "2001:db8::1"}],
        "dns": {"nameservers": ["10.10.0.53"], "domain": "example.org", "search": ["example.org"], "options": ["rotate"]}
    })
}

fn call(cmd: &str, stdin: &Value, args: &str) -> Reply {
    let mut env = cni_env(cmd, "c1", NETNS, "eth0");
    if !args.is_empty() {
        env.push(("CNI_ARGS", args));
    }
    plugin("static", None, &env, &stdin.to_string())
}

fn addresses(out: &Value) -> Vec<String> {
    out["ips"]
        .as_array()
        .map(|a| a.iter().map(|i| i["address"].as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn results_at_every_version() {
    for v in VERSIONS {
        let out = call("ADD", &conf(v, dual()), "").ok().json();
        assert_eq!(out["cniVersion"], *v);
        assert_eq!(out["dns"]["nameservers"], json!(["10.10.0.53"]), "{v}: {out}");
        assert_eq!(out["dns"]["domain"], "example.org");
        if v.starts_with("0.1") || v.starts_with("0.2") {
            assert_eq!(out["ip4"]["ip"], "10.10.0.5/24", "{out}");
            assert_eq!(out["ip4"]["gateway"], "10.10.0.1");
            assert_eq!(out["ip6"]["ip"], "2001:db8::5/64");
            assert!(out["ip6"].get("gateway").is_none());
            assert_eq!(out["ip6"]["routes"], json!([{"dst": "2001:db8:1::/48", "gw": "2001:db8::1"}]));
        } else {
            assert_eq!(addresses(&out), ["10.10.0.5/24", "2001:db8::5/64"]);
            assert_eq!(out["ips"][0]["gateway"], "10.10.0.1");
            assert_eq!(out["ips"][0].get("version").is_some(), v.starts_with("0."));
            assert_eq!(out["routes"].as_array().unwrap().len(), 2);
        }
        call("DEL", &conf(v, dual()), "").ok();
    }
}

#[test]
fn cni_args_append_and_args_replace() {
    let base = conf("1.0.0", dual());
    let out = call("ADD", &base, "IP=10.20.0.7/16,2001:db8:2::7/64;GATEWAY=10.20.0.1,2001:db8:2::1").ok().json();
    assert_eq!(addresses(&out), ["10.10.0.5/24", "2001:db8::5/64", "10.20.0.7/16", "2001:db8:2::7/64"]);
    assert_eq!(out["ips"][2]["gateway"], "10.20.0.1");
    assert_eq!(out["ips"][3]["gateway"], "2001:db8:2::1");
    assert_eq!(out["ips"][0]["gateway"], "10.10.0.1");
    assert_eq!(call("ADD", &base, "FOO=1").code(), 999);
    assert_eq!(
        call("ADD", &base, "IgnoreUnknown=1;FOO=1;IP=10.30.0.1/24").ok().json()["ips"][2]["address"],
        "10.30.0.1/24"
    );
    let e = call("ADD", &base, "IP=10.30.0.1");
    assert_eq!(e.json()["msg"], "invalid CIDR 10.30.0.1: invalid CIDR address: 10.30.0.1");
    assert_eq!(call("ADD", &base, "IP=10.30.0.1/24;GATEWAY=nope").json()["msg"], "invalid gateway address: nope");

    let mut v = base.clone();
    v["args"] = json!({"cni": {"ips": ["10.40.0.4/24"]}});
    assert_eq!(addresses(&call("ADD", &v, "").ok().json()), ["10.40.0.4/24"]);
    v["runtimeConfig"] = json!({"ips": ["10.50.0.5/24", "2001:db8:5::5/64"]});
    let out = call("ADD", &v, "").ok().json();
    assert_eq!(addresses(&out), ["10.50.0.5/24", "2001:db8:5::5/64"]);
    assert!(out["ips"][0].get("gateway").is_none());
    v["runtimeConfig"] = json!({"ips": ["10.50.0.5"]});
    assert_eq!(call("ADD", &v, "").json()["msg"], "invalid CIDR 10.50.0.5: invalid CIDR address: 10.50.0.5");
}

#[test]
fn version_limits_and_errors() {
    let two = json!({"type": "static", "addresses": [{"address": "10.0.0.1/24"}, {"address": "10.0.1.1/24"}]});
    let e = call("ADD", &conf("0.2.0", two.clone()), "");
    assert_eq!(e.json()["msg"], "CNI version 0.2.0 does not support more than 1 address per family");
    assert_eq!(addresses(&call("ADD", &conf("0.3.0", two), "").ok().json()).len(), 2);
    let e = call("ADD", &json!({"cniVersion": "1.0.0", "name": "st"}), "");
    assert_eq!(e.json()["msg"], "IPAM config missing 'ipam' key");
    // An empty list is a result without addresses (the calling plugin then fails).
    let out = call("ADD", &conf("1.0.0", json!({"type": "static"})), "").ok().json();
    assert!(out.get("ips").is_none_or(|i| i.as_array().is_some_and(|a| a.is_empty())), "{out}");
    // DEL needs nothing.
    call("DEL", &json!({"cniVersion": "1.0.0", "name": "st"}), "").ok();
}

#[test]
fn check_against_prev_result() {
    let mut v = conf("1.0.0", dual());
    let e = call("CHECK", &v, "");
    assert_eq!(e.json()["msg"], "Required prevResult missing");
    v["prevResult"] = json!({"cniVersion": "1.0.0", "ips": [
        {"address": "10.10.0.5/24", "gateway": "10.10.0.1"}, {"address": "2001:db8::5/64"}]});
    call("CHECK", &v, "").ok();
    v["prevResult"]["ips"][0]["gateway"] = json!("10.10.0.254");
    let e = call("CHECK", &v, "");
    assert_eq!(e.json()["msg"], "static: Failed to match addr 10.10.0.5 on interface eth0");
    assert_eq!(call("CHECK", &conf("0.3.1", dual()), "").code(), 1);
}
