//! symlinks.sh: install, atomic re-install, pruning, refusal of foreign files, uninstall,
//! hardlink mode. Everything happens under a staging root (`--root`), so no root is needed.

mod common;

use common::{TempDir, bin};
use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const TARGET: &str = "/usr/libexec/cnibox/cnibox";
const REL: &str = "../../../usr/libexec/cnibox/cnibox";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("symlinks.sh")
}

/// A staging root holding a private copy of the binary at TARGET.
fn staged() -> TempDir {
    let root = TempDir::new("links");
    let t = root.path().join(TARGET.trim_start_matches('/'));
    fs::create_dir_all(t.parent().unwrap()).unwrap();
    fs::copy(bin(), &t).expect("copy the binary");
    root
}

struct Run {
    ok: bool,
    stderr: String,
}

fn run(root: &Path, args: &[&str]) -> Run {
    let out = Command::new(script()).arg("--root").arg(root).args(args).output().expect("run symlinks.sh");
    Run { ok: out.status.success(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

fn list_file(root: &Path, names: &[&str]) -> String {
    let p = root.join("applets.list");
    fs::write(&p, names.join("\n") + "\n").unwrap();
    p.to_str().unwrap().to_owned()
}

fn dir(root: &Path) -> PathBuf {
    root.join("opt/cni/bin")
}

fn entries(d: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn applets() -> Vec<String> {
    let out = Command::new(bin()).arg("--list").output().expect("cnibox --list");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn install_reinstall_uninstall() {
    let root = staged();
    let r = root.path();
    let target = r.join(TARGET.trim_start_matches('/'));
    let d = dir(r);

    // Install from the binary's own list.
    let res = run(r, &["/opt/cni/bin"]);
    assert!(res.ok, "install failed: {}", res.stderr);
    let names = applets();
    assert_eq!(entries(&d), names);
    for n in &names {
        let l = d.join(n);
        assert_eq!(fs::read_link(&l).unwrap(), Path::new(REL), "{n} is not the relative link");
        assert_eq!(fs::metadata(&l).unwrap().ino(), fs::metadata(&target).unwrap().ino());
    }

    // Re-install with another list while a reader keeps resolving one of the links: every
    // link is replaced by rename, so the reader never finds it missing; names that left the
    // list are pruned; no temporary file stays behind.
    let list = list_file(r, &["bridge", "loopback", "host-local"]);
    run(r, &["--list-from", &list, "/opt/cni/bin"]);
    let before = fs::symlink_metadata(d.join("bridge")).unwrap().modified().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let link = d.join("bridge");
        std::thread::spawn(move || {
            let mut misses = 0;
            while !stop.load(Ordering::Relaxed) {
                if fs::metadata(&link).is_err() {
                    misses += 1;
                }
            }
            misses
        })
    };
    for _ in 0..10 {
        let res = run(r, &["--list-from", &list, "/opt/cni/bin"]);
        assert!(res.ok, "re-install failed: {}", res.stderr);
    }
    stop.store(true, Ordering::Relaxed);
    assert_eq!(reader.join().unwrap(), 0, "a link was missing during re-install");
    // A replaced link is a new one (its inode number may be recycled; its time is not).
    assert_ne!(
        fs::symlink_metadata(d.join("bridge")).unwrap().modified().unwrap(),
        before,
        "the link was not replaced"
    );
    assert_eq!(entries(&d), ["bridge", "host-local", "loopback"]);

    // A foreign plugin under an applet name is refused (non-zero, clear message) and kept;
    // the other links are still made.
    fs::remove_file(d.join("loopback")).unwrap();
    fs::write(d.join("loopback"), "#!/bin/sh\n# someone else's plugin\n").unwrap();
    symlink("/usr/lib/cni/bridge", d.join("bridge.tmp")).unwrap();
    fs::rename(d.join("bridge.tmp"), d.join("bridge")).unwrap();
    let res = run(r, &["--list-from", &list, "/opt/cni/bin"]);
    assert!(!res.ok, "a foreign file was overwritten");
    assert!(res.stderr.contains("is not cnibox"), "unclear message: {}", res.stderr);
    assert_eq!(fs::read_to_string(d.join("loopback")).unwrap(), "#!/bin/sh\n# someone else's plugin\n");
    assert_eq!(fs::read_link(d.join("bridge")).unwrap(), Path::new("/usr/lib/cni/bridge"));
    assert_eq!(fs::read_link(d.join("host-local")).unwrap(), Path::new(REL));

    // Uninstall removes only what leads to cnibox, also a dangling link of ours.
    fs::write(d.join("foreign-plugin"), "x").unwrap();
    symlink(REL, d.join("old-applet")).unwrap();
    let res = run(r, &["--uninstall", "/opt/cni/bin"]);
    assert!(res.ok, "uninstall failed: {}", res.stderr);
    assert_eq!(entries(&d), ["bridge", "foreign-plugin", "loopback"]);
    assert!(target.is_file(), "uninstall removed the binary");

    // --force replaces the foreign files.
    let res = run(r, &["--force", "--list-from", &list, "/opt/cni/bin"]);
    assert!(res.ok, "--force failed: {}", res.stderr);
    for n in ["bridge", "loopback", "host-local"] {
        assert_eq!(fs::read_link(d.join(n)).unwrap(), Path::new(REL));
    }
    assert!(d.join("foreign-plugin").is_file());
}

#[test]
fn hardlink_mode() {
    let root = staged();
    let r = root.path();
    let target = r.join(TARGET.trim_start_matches('/'));
    let d = dir(r);
    let list = list_file(r, &["bridge", "ptp"]);
    fs::create_dir_all(&d).unwrap();
    // A byte-identical copy is cnibox (may be replaced) but not one of our hardlinks (stays on uninstall).
    fs::copy(&target, d.join("copy-of-cnibox")).unwrap();

    for _ in 0..2 {
        let res = run(r, &["--hardlink", "--list-from", &list, "/opt/cni/bin"]);
        assert!(res.ok, "hardlink install failed: {}", res.stderr);
    }
    let ino = fs::metadata(&target).unwrap().ino();
    for n in ["bridge", "ptp"] {
        let m = fs::symlink_metadata(d.join(n)).unwrap();
        assert!(m.file_type().is_file(), "{n} is not a hardlink");
        assert_eq!(m.ino(), ino);
    }
    assert_eq!(fs::metadata(&target).unwrap().nlink(), 3);

    // Switching back to symlinks replaces the hardlinks.
    let res = run(r, &["--list-from", &list, "/opt/cni/bin"]);
    assert!(res.ok, "{}", res.stderr);
    assert_eq!(fs::read_link(d.join("ptp")).unwrap(), Path::new(REL));
    let res = run(r, &["--hardlink", "--list-from", &list, "/opt/cni/bin"]);
    assert!(res.ok, "{}", res.stderr);

    let res = run(r, &["--uninstall", "/opt/cni/bin"]);
    assert!(res.ok, "uninstall failed: {}", res.stderr);
    assert_eq!(entries(&d), ["copy-of-cnibox"]);
    assert_eq!(fs::metadata(&target).unwrap().nlink(), 1);
}

#[test]
fn errors_are_reported() {
    let root = staged();
    let r = root.path();
    let list = list_file(r, &["bridge"]);

    let res = run(r, &["--target", "/nowhere/cnibox", "--list-from", &list, "/opt/cni/bin"]);
    assert!(!res.ok && res.stderr.contains("does not exist"), "{}", res.stderr);

    fs::create_dir_all(dir(r).join("bridge")).unwrap();
    let res = run(r, &["--force", "--list-from", &list, "/opt/cni/bin"]);
    assert!(!res.ok && res.stderr.contains("is a directory"), "{}", res.stderr);

    let bad = list_file(r, &["../evil"]);
    let res = run(r, &["--list-from", &bad, "/opt/cni/bin"]);
    assert!(!res.ok && res.stderr.contains("invalid applet name"), "{}", res.stderr);

    let res = run(r, &["relative/dir"]);
    assert!(!res.ok && res.stderr.contains("absolute"), "{}", res.stderr);

    let res = run(r, &["--bogus"]);
    assert!(!res.ok && res.stderr.contains("unknown option"), "{}", res.stderr);
}
