//! host-local interop with the reference Go plugin on one store: each continues after the
//! other, never hands out an address twice, and releases the other's leases.

mod common;

use common::{Reply, TempDir, cni_env, plugin, plugin_dir};
use serde_json::json;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const NETNS: &str = "/var/run/netns/cnibox-ipam-unused";
const REFERENCE: &str = "/usr/lib/cni/host-local";

fn reference() -> Option<PathBuf> {
    let p = PathBuf::from(REFERENCE);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipping: {REFERENCE} is absent (Debian package containernetworking-plugins)");
        None
    }
}

fn go(bin: &Path, cmd: &str, cid: &str, stdin: &str) -> Reply {
    let mut c = Command::new(bin);
    c.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (k, v) in cni_env(cmd, cid, NETNS, "eth0") {
        c.env(k, v);
    }
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn reference host-local");
    if let Some(mut si) = child.stdin.take() {
        use std::io::Write;
        let _ = si.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("wait reference host-local");
    Reply {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ours(cmd: &str, cid: &str, stdin: &str) -> Reply {
    plugin("host-local", None, &cni_env(cmd, cid, NETNS, "eth0"), stdin)
}

fn conf(dir: &Path) -> String {
    json!({"cniVersion": "1.0.0", "name": "interop", "type": "bridge",
           "ipam": {"type": "host-local", "dataDir": dir,
                    "ranges": [[{"subnet": "10.7.0.0/24"}], [{"subnet": "2001:db8:7::/64"}]]}})
    .to_string()
}

fn addrs(r: &Reply) -> Vec<String> {
    let v = r.ok().json();
    v["ips"].as_array().unwrap().iter().map(|i| i["address"].as_str().unwrap().to_string()).collect()
}

fn store_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn alternate_and_release_each_others_leases() {
    let Some(go_bin) = reference() else { return };
    let t = TempDir::new("interop");
    let stdin = conf(t.path());
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    for i in 0..6 {
        let cid = format!("c{i}");
        let r = if i % 2 == 0 { go(&go_bin, "ADD", &cid, &stdin) } else { ours("ADD", &cid, &stdin) };
        for a in addrs(&r) {
            assert!(seen.insert(a.clone()), "{a} handed out twice");
            order.push(a);
        }
    }
    // Both continue after last_reserved_ip, whoever wrote it.
    let v4: Vec<&str> = order.iter().filter(|a| a.contains('.')).map(String::as_str).collect();
    assert_eq!(v4, ["10.7.0.2/24", "10.7.0.3/24", "10.7.0.4/24", "10.7.0.5/24", "10.7.0.6/24", "10.7.0.7/24"]);
    // Each one's files are the other's format.
    let dir = t.path().join("interop");
    assert_eq!(std::fs::read(dir.join("10.7.0.2")).unwrap(), b"c0\r\neth0");
    assert_eq!(std::fs::read(dir.join("10.7.0.3")).unwrap(), b"c1\r\neth0");
    // Each refuses a second ADD of an attachment the other leased to (cnibox finds Go's lease,
    // which has no owner link, by reading it; Go finds ours by content).
    for (r, who) in [(ours("ADD", "c0", &stdin), "cnibox"), (go(&go_bin, "ADD", "c1", &stdin), "Go")] {
        assert!(r.status != 0 && r.stdout.contains("duplicate allocation"), "{who}: {r:?}");
    }
    // CHECK and DEL across: cnibox for Go's leases, Go for cnibox's.
    for i in 0..6 {
        let cid = format!("c{i}");
        if i % 2 == 0 {
            ours("DEL", &cid, &stdin).ok();
        } else {
            go(&go_bin, "CHECK", &cid, &stdin).ok();
            go(&go_bin, "DEL", &cid, &stdin).ok();
        }
    }
    assert_eq!(store_files(&dir), ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]);
}

#[test]
fn concurrent_mix_shares_the_lock() {
    let Some(go_bin) = reference() else { return };
    let t = TempDir::new("interop-par");
    let stdin = conf(t.path());
    let _ = plugin_dir();
    let handles: Vec<_> = (0..32)
        .map(|i| {
            let (stdin, go_bin) = (stdin.clone(), go_bin.clone());
            std::thread::spawn(move || {
                let cid = format!("p{i}");
                if i % 2 == 0 { go(&go_bin, "ADD", &cid, &stdin) } else { ours("ADD", &cid, &stdin) }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for h in handles {
        for a in addrs(&h.join().unwrap()) {
            assert!(seen.insert(a.clone()), "{a} handed out twice");
        }
    }
    assert_eq!(seen.len(), 64);
    let handles: Vec<_> = (0..32)
        .map(|i| {
            let (stdin, go_bin) = (stdin.clone(), go_bin.clone());
            std::thread::spawn(move || {
                let cid = format!("p{i}");
                // Each releases the other's leases.
                if i % 2 == 0 { ours("DEL", &cid, &stdin) } else { go(&go_bin, "DEL", &cid, &stdin) }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().ok();
    }
    let dir = t.path().join("interop");
    assert_eq!(store_files(&dir), ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]);
}
