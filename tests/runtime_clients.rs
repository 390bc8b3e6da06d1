//! loopback driven by real runtime clients: libcni itself (as containerd, CRI-O and podman
//! call plugins) and the cnitool applet, compared with the reference plugin.

mod common;
use common::*;
use serde_json::{Value, json};

fn conflist(dir: &std::path::Path, version: &str) -> String {
    let name = format!("lo-{}", version.replace('.', ""));
    write_conf(
        dir,
        &format!("{name}.conflist"),
        &json!({"cniVersion": version, "name": name, "plugins": [{"type": "loopback"}]}),
    );
    name
}

/// The part of a loopback result that must match the reference's. `ips[].version` is left out:
/// the reference 1.1.1 build writes it empty at 0.3.x/0.4.0, where the spec wants "4" or "6".
fn essence(v: &Value) -> Value {
    let ips: Vec<Value> = v["ips"].as_array().unwrap().iter().map(|i| json!([i["address"], i["interface"]])).collect();
    let ifs: Vec<Value> = v["interfaces"].as_array().unwrap().iter().map(|i| json!([i["name"], i["mac"]])).collect();
    json!({"cniVersion": v["cniVersion"], "ips": ips, "interfaces": ifs})
}

#[test]
fn libcni_drives_loopback_like_the_reference() {
    if !root() {
        return;
    }
    let Some(client) = libcni_client() else { return };
    let reference = std::path::Path::new("/usr/lib/cni/loopback").exists();
    let conf = TempDir::new("libcni-conf");
    let cache = TempDir::new("libcni-cache");
    let ours = Libcni { client, confdir: conf.path(), cache: cache.path(), cni_path: plugin_dir().to_str().unwrap() };
    let theirs = Libcni { cni_path: "/usr/lib/cni", ..ours };
    for version in ["0.2.0", "0.3.1", "0.4.0", "1.0.0"] {
        let net = conflist(conf.path(), version);
        let ns = Netns::bare("lcni");
        let r = ours.run(None, "add", &net, &ns.path());
        r.ok();
        let got = r.json();
        assert_eq!(got["cniVersion"], version);
        assert!(ns.exec("ip link show lo").1.contains("UP"), "lo is not up at {version}");
        if version >= "0.3.0" {
            assert_eq!(got["interfaces"][0]["name"], "lo");
            assert_eq!(got["interfaces"][0]["sandbox"], ns.path());
            assert_eq!(got["ips"][0]["address"], "127.0.0.1/8");
            if version < "1.0.0" {
                assert_eq!(got["ips"][0]["version"], "4");
            }
        } else {
            assert_eq!(got["ip4"]["ip"], "127.0.0.1/8");
        }
        if version >= "0.4.0" {
            ours.run(None, "check", &net, &ns.path()).ok();
        }
        ours.run(None, "del", &net, &ns.path()).ok();
        assert!(!ns.exec("ip link show lo").1.contains(",UP"), "lo is still up at {version}");

        // At 0.2.0 the reference 1.1.1 build drops lo's addresses from its result, where the
        // conversion rules keep the first of each family (as ours does, checked above).
        if reference && version != "0.2.0" {
            let ns2 = Netns::bare("lref");
            let r = theirs.run(None, "add", &net, &ns2.path());
            r.ok();
            assert_eq!(essence(&got), essence(&r.json()), "results differ from the reference at {version}");
            theirs.run(None, "del", &net, &ns2.path()).ok();
        }
    }
}

#[test]
fn cnitool_applet_covers_every_version_with_gc_and_status() {
    if !root() {
        return;
    }
    let conf = TempDir::new("cnitool-conf");
    let cache = TempDir::new("cnitool-cache");
    let cache_env = [("CNI_CACHE_DIR", cache.path().to_str().unwrap())];
    for version in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let net = conflist(conf.path(), version);
        let ns = Netns::bare("ctool");
        let r = cnitool(None, conf.path(), &["add", &net, &ns.path()], &cache_env);
        r.ok();
        assert_eq!(r.json()["cniVersion"], version);
        assert!(ns.exec("ip link show lo").1.contains("UP"));
        if version >= "0.4.0" {
            cnitool(None, conf.path(), &["check", &net, &ns.path()], &cache_env).ok();
        } else {
            let r = cnitool(None, conf.path(), &["check", &net, &ns.path()], &cache_env);
            assert_eq!(r.status, 1);
            assert!(r.stderr.contains("does not support the CHECK command"), "{r:?}");
        }
        if version == "1.1.0" {
            cnitool(None, conf.path(), &["status", &net], &cache_env).ok();
            // gc with this attachment valid keeps it; without, it is deleted through its cached config
            let cid = std::fs::read_dir(cache.path().join("results")).unwrap().count();
            assert_eq!(cid, 1);
            cnitool(None, conf.path(), &["gc", &net], &cache_env).ok();
            assert_eq!(std::fs::read_dir(cache.path().join("results")).unwrap().count(), 0);
            assert!(!ns.exec("ip link show lo").1.contains(",UP"), "gc did not delete the stale attachment");
            continue;
        }
        cnitool(None, conf.path(), &["del", &net, &ns.path()], &cache_env).ok();
        // DEL twice succeeds
        cnitool(None, conf.path(), &["del", &net, &ns.path()], &cache_env).ok();
    }
}

#[test]
fn cnitool_reports_plugin_errors() {
    let conf = TempDir::new("cnitool-err");
    write_conf(
        conf.path(),
        "x.conflist",
        &json!({"cniVersion":"1.0.0","name":"x","plugins":[{"type":"no-such-plugin"}]}),
    );
    let r = cnitool(None, conf.path(), &["add", "x", "/run/netns/none"], &[]);
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("failed to find plugin \"no-such-plugin\""), "{r:?}");
    let r = cnitool(None, conf.path(), &["add", "missing", "/run/netns/none"], &[]);
    assert!(r.stderr.contains("no net configuration with name \"missing\""), "{r:?}");
}

/// The result cache gets an entry only for an ADD that succeeded: when the last plugin of a
/// list fails, after the first one set up, the results directory holds no file (the entry's,
/// made while the plugins ran, is never named); a successful ADD leaves exactly its entry.
#[test]
fn cnitool_caches_only_what_succeeded() {
    if !root() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let conf = TempDir::new("cnitool-cachefail");
    let cache = TempDir::new("cnitool-cachefail-cache");
    let bin = TempDir::new("cnitool-cachefail-bin");
    let fail = bin.path().join("refuse");
    std::fs::write(
        &fail,
        "#!/bin/sh\ncat >/dev/null\necho '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"refused\"}'\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fail, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.path().display(), plugin_dir().display());
    let env = [("CNI_CACHE_DIR", cache.path().to_str().unwrap()), ("CNI_PATH", path.as_str())];
    let entries = || -> Vec<String> {
        std::fs::read_dir(cache.path().join("results"))
            .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };
    let ns = Netns::bare("cfail");
    write_conf(
        conf.path(),
        "f.conflist",
        &json!({"cniVersion":"1.0.0","name":"f","plugins":[{"type":"loopback"},{"type":"refuse"}]}),
    );
    let r = cnitool(None, conf.path(), &["add", "f", &ns.path()], &env);
    assert_eq!(r.status, 1, "{r:?}");
    assert!(r.stderr.contains("refused"), "{r:?}");
    assert!(entries().is_empty(), "{:?}", entries());
    write_conf(conf.path(), "f.conflist", &json!({"cniVersion":"1.0.0","name":"f","plugins":[{"type":"loopback"}]}));
    cnitool(None, conf.path(), &["add", "f", &ns.path()], &env).ok();
    let e = entries();
    assert!(e.len() == 1 && e[0].starts_with("f-cnitool-") && e[0].ends_with("-eth0"), "{e:?}");
    cnitool(None, conf.path(), &["del", "f", &ns.path()], &env).ok();
    assert!(entries().is_empty(), "{:?}", entries());
}

#[test]
fn cnitool_gc_without_a_valid_list_keeps_other_runtimes_attachments() {
    if !root() {
        return;
    }
    let conf = TempDir::new("cnitool-gc");
    let cache = TempDir::new("cnitool-gc-cache");
    let data = TempDir::new("cnitool-gc-data");
    let net = "gcnet";
    let ipam = json!({"type": "host-local", "ranges": [[{"subnet": "10.97.0.0/24"}]], "dataDir": data.path()});
    write_conf(
        conf.path(),
        "gc.conflist",
        &json!({"cniVersion": "1.1.0", "name": net, "plugins": [{"type": "host-local", "ipam": ipam}]}),
    );
    let cache_env = [("CNI_CACHE_DIR", cache.path().to_str().unwrap())];
    let ns = Netns::new("gc");
    // One attachment through cnitool (cached), one by another runtime (not in this cache).
    cnitool(None, conf.path(), &["add", net, &ns.path()], &cache_env).ok();
    let stdin = json!({"cniVersion": "1.1.0", "name": net, "type": "host-local", "ipam": ipam}).to_string();
    plugin("host-local", None, &cni_env("ADD", "other-runtime", &ns.path(), "eth0"), &stdin).ok();
    assert_eq!(leases(data.path(), net).len(), 2);

    // As libcni's cnitool: the cached attachment is deleted, and the plugins, told nothing of
    // which attachments are valid, keep the other runtime's lease.
    cnitool(None, conf.path(), &["gc", net], &cache_env).ok();
    assert_eq!(leases(data.path(), net).len(), 1, "gc without a valid list took another runtime's lease");
    // Told explicitly that nothing is valid, they release it.
    let none = [("CNI_CACHE_DIR", cache.path().to_str().unwrap()), ("CNI_VALID_ATTACHMENTS", "[]")];
    cnitool(None, conf.path(), &["gc", net], &none).ok();
    assert!(leases(data.path(), net).is_empty());
}
