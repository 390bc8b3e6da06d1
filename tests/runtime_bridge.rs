//! bridge and ptp driven by libcni itself, side by side with the reference plugins on the same
//! configuration: the results must match (random veth names and MACs aside).

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::Path;

/// A result with the parts that legitimately differ replaced by their shape.
fn normalise(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(ifs) = v.get_mut("interfaces").and_then(Value::as_array_mut) {
        for i in ifs {
            if let Some(o) = i.as_object_mut() {
                if o.get("name").and_then(Value::as_str).is_some_and(|n| n.starts_with("veth")) {
                    o.insert("name".into(), json!("veth*"));
                }
                if o.get("mac").and_then(Value::as_str).is_some_and(|m| m.len() == 17) {
                    o.insert("mac".into(), json!("mac"));
                }
                if let Some(s) = o.get("sandbox").and_then(Value::as_str) {
                    o.insert("sandbox".into(), json!(!s.is_empty()));
                }
            }
        }
    }
    v
}

fn conf(dir: &Path, plugin: Value, version: &str, data: &Path) -> String {
    let name = format!("rt-{}-{}", plugin["type"].as_str().unwrap(), version.replace('.', ""));
    let mut p = plugin;
    p["ipam"] = json!({
        "type": "host-local",
        "ranges": [[{"subnet": "10.123.0.0/24"}], [{"subnet": "fd00:123::/64"}]],
        "dataDir": data,
    });
    // isDefaultGateway adds the default route itself (an IPAM default route too makes the
    // reference fail with "File exists").
    if p.get("isDefaultGateway").is_none() {
        p["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}]);
    }
    write_conf(dir, &format!("{name}.conflist"), &json!({"cniVersion": version, "name": name, "plugins": [p]}));
    name
}

fn compare(plugin: Value, versions: &[&str]) {
    if !root() {
        return;
    }
    let Some(client) = libcni_client() else { return };
    if !Path::new("/usr/lib/cni/bridge").exists() {
        eprintln!("skipping: no reference plugins in /usr/lib/cni");
        return;
    }
    for version in versions {
        let cache = TempDir::new("rtcache");
        let (data_a, data_b) = (TempDir::new("rtdata"), TempDir::new("rtdata"));
        let mut results = Vec::new();
        for (cni_path, data) in [(plugin_dir().to_str().unwrap(), &data_a), ("/usr/lib/cni", &data_b)] {
            let dir = TempDir::new("rtc");
            let net = conf(dir.path(), plugin.clone(), version, data.path());
            let host = Netns::new("rth");
            let pod = Netns::bare("rtp");
            let rt = Libcni { client, confdir: dir.path(), cache: cache.path(), cni_path };
            let r = rt.run(Some(&host), "add", &net, &pod.path());
            r.ok();
            results.push(normalise(&r.json()));
            if *version >= "0.4.0" {
                rt.run(Some(&host), "check", &net, &pod.path()).ok();
            }
            rt.run(Some(&host), "del", &net, &pod.path()).ok();
            let (_, links) = host.exec("ip -o link show type veth");
            assert!(links.trim().is_empty(), "veth left behind by {cni_path}: {links}");
        }
        assert_eq!(
            results[0], results[1],
            "{} at {version}: ours (left) and the reference's (right) differ",
            plugin["type"]
        );
    }
}

#[test]
fn bridge_matches_the_reference_through_libcni() {
    compare(json!({"type": "bridge", "bridge": "rtbr0", "isGateway": true}), &["0.2.0", "0.3.1", "0.4.0", "1.0.0"]);
}

#[test]
fn bridge_default_gateway_matches_the_reference() {
    compare(json!({"type": "bridge", "bridge": "rtbr1", "isDefaultGateway": true, "mtu": 1400}), &["0.4.0", "1.0.0"]);
}

#[test]
fn ptp_matches_the_reference_through_libcni() {
    compare(json!({"type": "ptp", "mtu": 1400}), &["0.3.1", "1.0.0"]);
}
