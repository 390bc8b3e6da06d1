//! host-local through the binary: results at every spec version, the store on disk,
//! requested addresses, concurrency, GC, STATUS and crash safety.

mod common;

use common::{Reply, TempDir, cni_env, plugin, plugin_dir};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::Path;

const NETNS: &str = "/var/run/netns/cnibox-ipam-unused";
const VERSIONS: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

fn conf(version: &str, name: &str, ipam: Value) -> String {
    json!({"cniVersion": version, "name": name, "type": "bridge", "ipam": ipam}).to_string()
}

fn ipam(dir: &Path, extra: Value) -> Value {
    let mut v = json!({"type": "host-local", "dataDir": dir, "ranges": [[{"subnet": "10.1.0.0/24"}]]});
    if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            m.insert(k.clone(), x.clone());
        }
    }
    v
}

fn call(cmd: &str, cid: &str, ifname: &str, stdin: &str, extra: &[(&str, &str)]) -> Reply {
    let mut env = cni_env(cmd, cid, NETNS, ifname);
    env.extend_from_slice(extra);
    plugin("host-local", None, &env, stdin)
}

fn add(cid: &str, stdin: &str) -> Reply {
    call("ADD", cid, "eth0", stdin, &[])
}

fn del(cid: &str, stdin: &str) -> Reply {
    call("DEL", cid, "eth0", stdin, &[])
}

/// The files of a store directory but its owner links (second names of leases), sorted.
fn store_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = all_files(dir).into_iter().filter(|f| !f.starts_with(OWNER_LINK)).collect();
    v.sort();
    v
}

const OWNER_LINK: &str = ".cnibox-owner.";

fn all_files(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    }
}

/// The leases that owner links name, by the address at the end of each link's name.
fn linked_leases(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = all_files(dir)
        .iter()
        .filter_map(|f| f.strip_prefix(OWNER_LINK)?.split_once('.').map(|(_, ip)| ip.to_string()))
        .collect();
    v.sort();
    v
}

fn only_bookkeeping(files: &[String]) -> bool {
    files.iter().all(|f| f == "lock" || f.starts_with("last_reserved_ip."))
}

fn first_ip(r: &Value) -> String {
    r["ips"][0]["address"].as_str().unwrap_or_default().to_string()
}

#[test]
fn results_at_every_version() {
    let t = TempDir::new("hl-versions");
    let resolv = t.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 10.1.0.53\nsearch example.com\noptions ndots:2\ndomain example.com\n").unwrap();
    for (i, v) in VERSIONS.iter().enumerate() {
        let name = format!("net{i}");
        let stdin = conf(
            v,
            &name,
            ipam(
                t.path(),
                json!({
                    "ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "2001:db8:1::/64"}]],
                    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "2001:db8:1::fe"}],
                    "resolvConf": resolv,
                }),
            ),
        );
        let r = add("c1", &stdin);
        let out = r.ok().json();
        assert_eq!(out["cniVersion"], *v);
        assert_eq!(out["dns"]["nameservers"], json!(["10.1.0.53"]), "{v}: {out}");
        assert_eq!(out["dns"]["search"], json!(["example.com"]));
        assert_eq!(out["dns"]["options"], json!(["ndots:2"]));
        assert_eq!(out["dns"]["domain"], "example.com");
        match *v {
            "0.1.0" | "0.2.0" => {
                assert_eq!(out["ip4"]["ip"], "10.1.0.2/24", "{out}");
                assert_eq!(out["ip4"]["gateway"], "10.1.0.1");
                assert_eq!(out["ip4"]["routes"], json!([{"dst": "0.0.0.0/0"}]));
                assert_eq!(out["ip6"]["ip"], "2001:db8:1::2/64");
                assert_eq!(out["ip6"]["routes"], json!([{"dst": "::/0", "gw": "2001:db8:1::fe"}]));
            }
            _ => {
                let ips = out["ips"].as_array().unwrap();
                assert_eq!(ips.len(), 2);
                assert_eq!(ips[0]["address"], "10.1.0.2/24");
                assert_eq!(ips[0]["gateway"], "10.1.0.1");
                assert_eq!(ips[1]["address"], "2001:db8:1::2/64");
                assert_eq!(ips[1]["gateway"], "2001:db8:1::1");
                assert!(ips[0].get("interface").is_none());
                let has_version = v.starts_with("0.");
                assert_eq!(ips[0].get("version").is_some(), has_version, "{v}: {out}");
                if has_version {
                    assert_eq!(ips[0]["version"], "4");
                    assert_eq!(ips[1]["version"], "6");
                }
                assert_eq!(out["routes"].as_array().unwrap().len(), 2);
            }
        }
        let dir = t.path().join(&name);
        assert_eq!(std::fs::read(dir.join("10.1.0.2")).unwrap(), b"c1\r\neth0");
        assert_eq!(std::fs::read(dir.join("2001:db8:1::2")).unwrap(), b"c1\r\neth0");
        assert_eq!(std::fs::read_to_string(dir.join("last_reserved_ip.0")).unwrap(), "10.1.0.2");
        assert_eq!(std::fs::read_to_string(dir.join("last_reserved_ip.1")).unwrap(), "2001:db8:1::2");
        if *v >= "0.4.0" {
            call("CHECK", "c1", "eth0", &stdin, &[]).ok();
            assert_eq!(call("CHECK", "c2", "eth0", &stdin, &[]).code(), 999);
        }
        del("c1", &stdin).ok();
        del("c1", &stdin).ok(); // DEL is idempotent
        assert!(only_bookkeeping(&store_files(&dir)), "{:?}", store_files(&dir));
    }
}

#[test]
fn legacy_form_and_default_order() {
    let t = TempDir::new("hl-legacy");
    let ipam = json!({"type": "host-local", "dataDir": t.path(), "subnet": "10.2.0.0/29",
                      "rangeStart": "10.2.0.3", "rangeEnd": "10.2.0.5", "gateway": "10.2.0.4",
                      "routes": [{"dst": "192.168.0.0/16", "gw": "10.2.0.4"}]});
    let stdin = conf("1.0.0", "legacy", ipam);
    let a = add("a", &stdin).ok().json();
    assert_eq!(first_ip(&a), "10.2.0.3/29");
    assert_eq!(a["ips"][0]["gateway"], "10.2.0.4");
    assert_eq!(a["routes"], json!([{"dst": "192.168.0.0/16", "gw": "10.2.0.4"}]));
    assert!(a.get("dns").is_none(), "{a}");
    assert_eq!(first_ip(&add("b", &stdin).ok().json()), "10.2.0.5/29"); // .4 is the gateway
    let e = add("c", &stdin);
    assert_eq!(e.code(), 999);
    assert_eq!(
        e.json()["msg"],
        "failed to allocate for range 0: no IP addresses available in range set: 10.2.0.3-10.2.0.5"
    );
    // Release .3, and the next ADD wraps around to it.
    del("a", &stdin).ok();
    assert_eq!(first_ip(&add("c", &stdin).ok().json()), "10.2.0.3/29");
    let e = add("c", &stdin);
    assert_eq!(
        e.json()["msg"],
        "failed to allocate for range 0: 10.2.0.3 has been allocated to c, duplicate allocation is not allowed"
    );
}

#[test]
fn keys_and_nulls_read_as_go_reads_them() {
    // Go's decoder matches keys to fields ignoring case, takes null as "leave the default",
    // and reads an empty gateway as none: a config written that way works the same here.
    let t = TempDir::new("hl-gokeys");
    let ipam = json!({"TYPE": "host-local", "datadir": t.path(), "Subnet": "10.3.0.0/29",
                      "rangestart": "10.3.0.4", "RangeEnd": "10.3.0.5", "gateway": null, "resolvConf": null,
                      "routes": [{"dst": "0.0.0.0/0", "gw": ""}]});
    let a = add("a", &conf("1.0.0", "gokeys", ipam)).ok().json();
    assert_eq!(first_ip(&a), "10.3.0.4/29");
    assert_eq!(a["routes"], json!([{"dst": "0.0.0.0/0"}]));
    assert_eq!(store_files(&t.path().join("gokeys")), ["10.3.0.4", "last_reserved_ip.0", "lock"]);
}

#[test]
fn config_errors() {
    let t = TempDir::new("hl-errors");
    let msg =
        |ipam: Value, v: &str| add("c", &conf(v, "n", ipam)).json()["msg"].as_str().unwrap_or_default().to_string();
    let two_v4 = json!({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/24"}]]});
    assert_eq!(
        msg(ipam(t.path(), two_v4.clone()), "0.2.0"),
        "CNI version 0.2.0 does not support more than 1 address per family"
    );
    add("c", &conf("0.3.0", "n", ipam(t.path(), two_v4))).ok();
    assert_eq!(msg(ipam(t.path(), json!({"ranges": []})), "1.0.0"), "no IP ranges specified");
    assert_eq!(
        msg(ipam(t.path(), json!({"ranges": [[{"subnet": "10.1.0.0/31"}]]})), "1.0.0"),
        "invalid range set 0: Network 10.1.0.0/31 too small to allocate from"
    );
    assert_eq!(
        msg(ipam(t.path(), json!({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.1.0.0/25"}]]})), "1.0.0"),
        "range set 0 overlaps with 1"
    );
    let r = add("c", &json!({"cniVersion": "1.0.0", "name": "n"}).to_string());
    assert_eq!(r.json()["msg"], "IPAM config missing 'ipam' key");
    let r = call("ADD", "c", "eth0", &conf("1.0.0", "n", ipam(t.path(), json!({}))), &[("CNI_ARGS", "FOO=bar")]);
    assert_eq!(r.code(), 999);
    assert_eq!(r.json()["msg"], "ARGS: unknown args [\"FOO=bar\"]");
}

#[test]
fn requested_addresses_and_runtime_ranges() {
    let t = TempDir::new("hl-req");
    let base = ipam(t.path(), json!({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "2001:db8::/64"}]]}));
    let stdin = conf("1.0.0", "req", base.clone());
    let r = call("ADD", "a", "eth0", &stdin, &[("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.1.0.77")]);
    assert_eq!(first_ip(&r.ok().json()), "10.1.0.77/24");
    // args.cni.ips and runtimeConfig.ips (prefixes ignored), one per range set.
    let mut v: Value = serde_json::from_str(&stdin).unwrap();
    v["args"] = json!({"cni": {"ips": ["10.1.0.88"]}});
    v["runtimeConfig"] = json!({"ips": ["2001:db8::88/64"]});
    let out = add("b", &v.to_string()).ok().json();
    assert_eq!(out["ips"][0]["address"], "10.1.0.88/24");
    assert_eq!(out["ips"][1]["address"], "2001:db8::88/64");
    // Taken, gateway, and outside every range.
    let r = call("ADD", "c", "eth0", &stdin, &[("CNI_ARGS", "IP=10.1.0.77")]);
    assert_eq!(
        r.json()["msg"],
        "failed to allocate for range 0: requested IP address 10.1.0.77 is not available in range set 10.1.0.1-10.1.0.254"
    );
    let r = call("ADD", "c", "eth0", &stdin, &[("CNI_ARGS", "IP=10.1.0.1")]);
    assert_eq!(r.json()["msg"], "failed to allocate for range 0: requested ip 10.1.0.1 is subnet's gateway");
    let r = call("ADD", "c", "eth0", &stdin, &[("CNI_ARGS", "IP=10.9.9.9")]);
    assert_eq!(r.json()["msg"], "failed to allocate all requested IPs: 10.9.9.9");
    // Failures released what had been reserved for c.
    let dir = t.path().join("req");
    let files = store_files(&dir);
    assert!(files.iter().all(|f| std::fs::read(dir.join(f)).unwrap() != b"c\r\neth0"), "{files:?}");
    // runtimeConfig.ipRanges come first.
    let mut v: Value = serde_json::from_str(&conf("1.0.0", "rt", base)).unwrap();
    v["runtimeConfig"] = json!({"ipRanges": [[{"subnet": "10.5.0.0/24", "rangeStart": "10.5.0.100"}]]});
    let out = add("d", &v.to_string()).ok().json();
    let got: Vec<&str> = out["ips"].as_array().unwrap().iter().map(|i| i["address"].as_str().unwrap()).collect();
    assert_eq!(got, ["10.5.0.100/24", "10.1.0.2/24", "2001:db8::2/64"]);
}

#[test]
fn parallel_adds_and_dels() {
    let t = TempDir::new("hl-par");
    let stdin = conf("1.0.0", "par", ipam(t.path(), json!({})));
    let _ = plugin_dir();
    let handles: Vec<_> = (0..64)
        .map(|i| {
            let stdin = stdin.clone();
            std::thread::spawn(move || add(&format!("c{i}"), &stdin))
        })
        .collect();
    let mut seen = HashSet::new();
    for h in handles {
        let r = h.join().unwrap();
        assert!(seen.insert(first_ip(&r.ok().json())), "duplicate address");
    }
    assert_eq!(seen.len(), 64);
    let dir = t.path().join("par");
    assert_eq!(store_files(&dir).len(), 64 + 2);
    assert_eq!(linked_leases(&dir).len(), 64, "one owner link a lease");
    let handles: Vec<_> = (0..64)
        .map(|i| {
            let stdin = stdin.clone();
            std::thread::spawn(move || del(&format!("c{i}"), &stdin))
        })
        .collect();
    for h in handles {
        h.join().unwrap().ok();
    }
    assert_eq!(store_files(&dir), ["last_reserved_ip.0", "lock"]);
    assert!(linked_leases(&dir).is_empty(), "owner links go with their leases");
}

#[test]
fn gc_releases_exactly_the_stale() {
    let t = TempDir::new("hl-gc");
    let stdin = conf("1.1.0", "gc", ipam(t.path(), json!({})));
    for (cid, ifname) in [("keep", "eth0"), ("keep", "eth1"), ("stale", "eth0"), ("other", "net1")] {
        call("ADD", cid, ifname, &stdin, &[]).ok();
    }
    let dir = t.path().join("gc");
    std::fs::write(dir.join("10.1.0.100"), "legacy-keep").unwrap();
    std::fs::write(dir.join("10.1.0.101"), "legacy-stale").unwrap();
    std::fs::write(dir.join("unrelated"), "stale\r\neth0").unwrap();
    // Without attachments GC has nothing to judge by and keeps everything.
    let gc_env = [("CNI_COMMAND", "GC"), ("CNI_PATH", plugin_dir().to_str().unwrap())];
    plugin("host-local", None, &gc_env, &stdin).ok();
    assert_eq!(store_files(&dir).len(), 9);
    let mut v: Value = serde_json::from_str(&stdin).unwrap();
    v["cni.dev/valid-attachments"] =
        json!([{"containerID": "keep", "ifname": "eth0"}, {"containerID": "other", "ifname": "net1"}]);
    v["cni.dev/attachments"] = json!([{"containerID": "legacy-keep", "ifname": "eth0"}]);
    plugin("host-local", None, &gc_env, &v.to_string()).ok();
    let owners: HashSet<Vec<u8>> = store_files(&dir)
        .iter()
        .filter(|f| f.parse::<std::net::IpAddr>().is_ok())
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    let want: HashSet<Vec<u8>> =
        [b"keep\r\neth0".to_vec(), b"other\r\nnet1".to_vec(), b"legacy-keep".to_vec()].into_iter().collect();
    assert_eq!(owners, want);
    assert!(dir.join("unrelated").exists(), "GC touches only reservations");
    // The owner links of the released leases went with them (10.1.0.100, written by hand, has none).
    let mut kept: Vec<String> =
        store_files(&dir).into_iter().filter(|f| f.parse::<std::net::IpAddr>().is_ok() && f != "10.1.0.100").collect();
    kept.sort();
    assert_eq!(linked_leases(&dir), kept);
    // GC below 1.1.0 is refused.
    let old = conf("1.0.0", "gc", ipam(t.path(), json!({})));
    assert_eq!(plugin("host-local", None, &gc_env, &old).code(), 1);
}

#[test]
fn status_reports_store_and_exhaustion() {
    let t = TempDir::new("hl-status");
    let st_env = [("CNI_COMMAND", "STATUS"), ("CNI_PATH", plugin_dir().to_str().unwrap())];
    let small = json!({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.3.0.0/30"}]]});
    let stdin = conf("1.1.0", "st", ipam(t.path(), small));
    plugin("host-local", None, &st_env, &stdin).ok();
    add("a", &stdin).ok(); // takes 10.3.0.2, the only address of set 1
    let r = plugin("host-local", None, &st_env, &stdin);
    assert_eq!(r.code(), 50);
    let msg = r.json()["msg"].as_str().unwrap().to_string();
    assert!(msg.contains("range set 1") && msg.contains("no IP addresses available"), "{msg}");
    del("a", &stdin).ok();
    plugin("host-local", None, &st_env, &stdin).ok();
    // A dataDir that cannot be created.
    let file = t.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let stdin = conf("1.1.0", "st", ipam(&file.join("sub"), json!({})));
    let r = plugin("host-local", None, &st_env, &stdin);
    assert_eq!(r.code(), 50);
    assert!(r.json()["msg"].as_str().unwrap().contains("not writable"), "{r:?}");
}

#[test]
fn crash_mid_reservation_leaves_no_partial_file() {
    let t = TempDir::new("hl-crash");
    let stdin = conf("1.0.0", "crash", ipam(t.path(), json!({})));
    let dir = t.path().join("crash");
    for point in ["ipam-after-write", "ipam-after-link"] {
        let r = call("ADD", "dead", "eth0", &stdin, &[("CNIBOX_FAULT", point)]);
        assert_eq!(r.status, -1, "{point}: the process must die by SIGKILL: {r:?}");
        assert!(r.stdout.is_empty());
        // Every address file is complete; a dangling temp is hidden and not an address.
        for f in store_files(&dir) {
            if f.parse::<std::net::IpAddr>().is_ok() {
                assert_eq!(std::fs::read(dir.join(&f)).unwrap(), b"dead\r\neth0", "{point}: {f}");
            } else {
                assert!(f == "lock" || f.starts_with("last_reserved_ip.") || f.starts_with('.'), "{point}: {f}");
            }
        }
        let addr_files = store_files(&dir).into_iter().filter(|f| f.parse::<std::net::IpAddr>().is_ok()).count();
        assert_eq!(addr_files, usize::from(point == "ipam-after-link"), "{point}");
        // A later ADD works, and DEL of the dead container cleans up after it.
        let out = add("live", &stdin).ok().json();
        assert!(first_ip(&out).starts_with("10.1.0."));
        del("dead", &stdin).ok();
        del("live", &stdin).ok();
        assert!(only_bookkeeping(&store_files(&dir)), "{point}: {:?}", store_files(&dir));
    }
}

#[test]
fn adds_racing_dels_lose_nothing() {
    let t = TempDir::new("hl-race");
    let stdin = conf("1.0.0", "race", ipam(t.path(), json!({"ranges": [[{"subnet": "10.4.0.0/26"}]]})));
    for i in 0..30 {
        add(&format!("old{i}"), &stdin).ok();
    }
    let _ = plugin_dir();
    let handles: Vec<_> = (0..60)
        .map(|i| {
            let stdin = stdin.clone();
            std::thread::spawn(move || {
                if i % 2 == 0 { del(&format!("old{}", i / 2), &stdin) } else { add(&format!("new{}", i / 2), &stdin) }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.join().unwrap();
        r.ok();
        if i % 2 == 1 {
            assert!(seen.insert(first_ip(&r.json())), "duplicate address");
        }
    }
    // Exactly the 30 new reservations are left, at the addresses handed out.
    let dir = t.path().join("race");
    let left: HashSet<String> = store_files(&dir)
        .into_iter()
        .filter(|f| f.parse::<std::net::IpAddr>().is_ok())
        .inspect(|f| assert!(std::fs::read_to_string(dir.join(f)).unwrap().starts_with("new"), "{f}"))
        .map(|f| format!("{f}/26"))
        .collect();
    assert_eq!(left, seen);
}

#[test]
fn gc_and_status_work_when_ranges_come_only_from_runtime_config() {
    let t = TempDir::new("hl-rt-only");
    let dir = t.path().to_str().unwrap();
    // ADD gets its ranges from runtimeConfig.ipRanges; GC and STATUS arrive without runtimeConfig.
    let base = json!({"cniVersion": "1.1.0", "name": "rtonly", "type": "host-local",
                      "ipam": {"type": "host-local", "dataDir": dir}});
    let mut with_rt = base.clone();
    with_rt["runtimeConfig"] = json!({"ipRanges": [[{"subnet": "10.44.0.0/24"}]]});
    add("a", &with_rt.to_string()).ok();
    let path = plugin_dir().to_str().unwrap();
    plugin("host-local", None, &[("CNI_COMMAND", "STATUS"), ("CNI_PATH", path)], &base.to_string()).ok();
    let mut gc = base.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    plugin("host-local", None, &[("CNI_COMMAND", "GC"), ("CNI_PATH", path)], &gc.to_string()).ok();
    assert!(only_bookkeeping(&store_files(&t.path().join("rtonly"))), "GC released the stale lease");
    // ADD without any range still fails, naming the problem.
    let r = add("b", &base.to_string());
    assert!(r.stdout.contains("no IP ranges specified"), "{r:?}");
}
