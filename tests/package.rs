//! The distro packages: the .deb is installed, used, upgraded and purged on this machine; the
//! .rpm is inspected. Root only; skipped with a message when dpkg-deb or rpmbuild is missing,
//! and when a cnibox package is already installed (that installation is left alone).
//! With CNIBOX_DIST set, the packages in that directory are tested instead of fresh builds.
//! The machine is restored even when an assertion fails: the package is purged and whatever
//! this test created in /opt is removed.

mod common;

use common::{Netns, TempDir, bin, root, unique};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const CNI_BIN: &str = "/opt/cni/bin";
const BINARY: &str = "/usr/libexec/cnibox/cnibox";

fn have(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().map(|o| o.status.success()).unwrap_or(false)
}

fn run(prog: &str, args: &[&str]) -> Output {
    Command::new(prog).args(args).output().unwrap_or_else(|e| panic!("run {prog}: {e}"))
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// dpkg, waiting for its lock when another installer holds it.
fn dpkg(args: &[&str]) -> Output {
    for _ in 0..120 {
        let o = run("dpkg", args);
        if o.status.success() || !text(&o).contains("lock") {
            return o;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    run("dpkg", args)
}

fn installed_version() -> Option<String> {
    let o = run("dpkg-query", &["-W", "-f=${Status}|${Version}", "cnibox"]);
    let s = String::from_utf8_lossy(&o.stdout).into_owned();
    let (status, version) = s.split_once('|')?;
    status.ends_with(" installed").then(|| version.to_owned())
}

fn applets() -> Vec<String> {
    let o = run(bin().to_str().unwrap(), &["--list"]);
    assert!(o.status.success(), "cnibox --list failed");
    String::from_utf8_lossy(&o.stdout).lines().map(str::to_owned).collect()
}

/// Build one package with packaging/build.sh from the binary under test.
fn build(kind: &str, out: &Path, version: Option<&str>, list: Option<&Path>) -> PathBuf {
    let mut cmd = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/build.sh"));
    cmd.arg("--bin").arg(bin()).arg("--out").arg(out);
    if let Some(v) = version {
        cmd.args(["--version", v]);
    }
    if let Some(l) = list {
        cmd.arg("--list-from").arg(l);
    }
    let o = cmd.arg(kind).output().expect("run packaging/build.sh");
    assert!(o.status.success(), "packaging/build.sh {kind} failed: {}", text(&o));
    let path = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    assert!(path.is_file(), "no package at {}", path.display());
    path
}

fn find_in(dir: &Path, prefix: &str, suffix: &str) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(prefix) && n.ends_with(suffix)
        })
        .collect();
    v.sort();
    v.pop()
}

/// Restores the machine on drop: purges the package, removes the foreign file and the
/// directories this test created.
struct Restore {
    foreign: PathBuf,
    created: Vec<PathBuf>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if installed_version().is_some() || run("dpkg-query", &["-W", "cnibox"]).status.success() {
            let o = dpkg(&["--purge", "cnibox"]);
            if !o.status.success() {
                eprintln!("cleanup: dpkg --purge cnibox failed: {}", text(&o));
            }
        }
        let _ = fs::remove_file(&self.foreign);
        for d in self.created.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
}

/// Links in /opt/cni/bin that lead to the package's binary.
fn our_links() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(CNI_BIN)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    fs::read_link(e.path()).map(|l| l.to_string_lossy().contains("libexec/cnibox")).unwrap_or(false)
                })
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn check_installed(names: &[String]) {
    let o = run(BINARY, &["--list"]);
    assert!(o.status.success(), "installed cnibox --list failed: {}", text(&o));
    let listed: Vec<String> = String::from_utf8_lossy(&o.stdout).lines().map(str::to_owned).collect();
    assert_eq!(listed, names, "the installed binary lists other applets");
    for n in names {
        let link = Path::new(CNI_BIN).join(n);
        assert_eq!(
            fs::read_link(&link).unwrap_or_default(),
            Path::new(BINARY),
            "{} is not the package's link",
            link.display()
        );
        let o = run("dpkg", &["-S", link.to_str().unwrap()]);
        assert!(text(&o).starts_with("cnibox:"), "dpkg does not own {}: {}", link.display(), text(&o));
    }
    for doc in ["LICENSE", "copyright", "THIRD-PARTY-LICENSES", "README.packaging.md"] {
        assert!(Path::new("/usr/share/doc/cnibox").join(doc).is_file(), "missing doc {doc}");
    }
}

/// ADD then DEL of a loopback-only network through the installed cnitool.
fn loopback_attach() {
    let ns = Netns::bare("pkg");
    let conf = TempDir::new("pkgconf");
    fs::write(
        conf.path().join("10-lo.conflist"),
        r#"{"cniVersion":"1.0.0","name":"cnibox-pkg-lo","plugins":[{"type":"loopback"}]}"#,
    )
    .unwrap();
    let tool = |verb: &str| {
        Command::new(Path::new(CNI_BIN).join("cnitool"))
            .args([verb, "cnibox-pkg-lo", &ns.path()])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("NETCONFPATH", conf.path())
            .env("CNI_PATH", CNI_BIN)
            .output()
            .expect("run cnitool")
    };
    let o = tool("add");
    assert!(o.status.success(), "cnitool add through /opt/cni/bin failed: {}", text(&o));
    let (_, link) = ns.exec("ip link show lo");
    assert!(link.contains("UP"), "loopback is not up after ADD: {link}");
    let o = tool("del");
    assert!(o.status.success(), "cnitool del failed: {}", text(&o));
}

#[test]
fn deb_install_upgrade_purge_and_rpm_contents() {
    if !root() {
        return;
    }
    if !have("dpkg-deb") || !have("rpmbuild") {
        eprintln!("skipping: needs dpkg-deb and rpmbuild (Debian package rpm)");
        return;
    }
    if let Some(v) = installed_version() {
        eprintln!("skipping: cnibox {v} is installed on this machine; not touching it");
        return;
    }
    if !our_links().is_empty() {
        eprintln!("skipping: {CNI_BIN} already has links to a cnibox (make install?): {:?}", our_links());
        return;
    }
    let names = applets();
    assert!(!names.is_empty());
    let work = TempDir::new("pkg");

    // The packages: from CNIBOX_DIST, or built now. A fresh v1 carries one extra link that v2
    // drops, to see the upgrade remove it.
    let dropped = "cnibox-test-dropped";
    let (deb1, rpm, with_dropped) = match std::env::var_os("CNIBOX_DIST") {
        Some(dist) => {
            let dist = PathBuf::from(dist);
            let deb = find_in(&dist, "cnibox_", ".deb").expect("no cnibox_*.deb in CNIBOX_DIST");
            let rpm = find_in(&dist, "cnibox-", ".rpm").expect("no cnibox-*.rpm in CNIBOX_DIST");
            (deb, rpm, false)
        }
        None => {
            let list = work.path().join("v1.list");
            fs::write(&list, format!("{}\n{dropped}\n", names.join("\n"))).unwrap();
            let v1 = work.path().join("v1");
            let deb = build("deb", &v1, None, Some(&list));
            let rpm = build("rpm", &v1, None, None);
            (deb, rpm, true)
        }
    };
    let o = run("dpkg-deb", &["-f", deb1.to_str().unwrap(), "Version"]);
    let v1 = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let upstream = v1.rsplit_once('-').map(|(u, _)| u).unwrap_or(&v1).to_owned();
    let deb2 = build("deb", &work.path().join("v2"), Some(&format!("{upstream}+up1")), None);

    // Neither package has maintainer scripts; the .deb recommends nftables.
    let o = run("dpkg-deb", &["-I", deb1.to_str().unwrap()]);
    let info = text(&o);
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        assert!(!info.contains(script), "unexpected {script} in the .deb: {info}");
    }
    assert!(info.contains("Recommends: nftables"), "{info}");
    assert!(info.contains("Suggests: iptables"), "{info}");

    // The machine state to restore.
    let mut created = Vec::new();
    for d in ["/opt", "/opt/cni", CNI_BIN] {
        if !Path::new(d).exists() {
            created.push(PathBuf::from(d));
        }
    }
    fs::create_dir_all(CNI_BIN).unwrap();
    let foreign = Path::new(CNI_BIN).join(unique("foreign-plugin-"));
    let guard = Restore { foreign: foreign.clone(), created };
    fs::write(&foreign, "#!/bin/sh\n# another vendor's plugin\n").unwrap();

    // Install.
    let o = dpkg(&["-i", deb1.to_str().unwrap()]);
    assert!(o.status.success(), "dpkg -i failed: {}", text(&o));
    assert_eq!(installed_version().as_deref(), Some(v1.as_str()));
    check_installed(&names);
    if with_dropped {
        assert!(our_links().contains(&dropped.to_owned()));
    }
    if names.iter().any(|n| n == "loopback") && names.iter().any(|n| n == "cnitool") {
        loopback_attach();
    } else {
        eprintln!("note: no loopback applet yet; skipping the attach through /opt/cni/bin/cnitool");
    }

    // Upgrade, while a reader keeps resolving one of the links: dpkg renames the new link over
    // the old one, so it never goes missing.
    let probe = Path::new(CNI_BIN).join(&names[0]);
    let stop = Arc::new(AtomicBool::new(false));
    let misses = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (stop, misses, probe) = (stop.clone(), misses.clone(), probe.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if fs::metadata(&probe).is_err() {
                    misses.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let o = dpkg(&["-i", deb2.to_str().unwrap()]);
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert!(o.status.success(), "dpkg -i (upgrade) failed: {}", text(&o));
    let v2 = installed_version().expect("installed after the upgrade");
    assert_eq!(v2, format!("{upstream}+up1-1"));
    assert_eq!(misses.load(Ordering::Relaxed), 0, "{} was missing during the upgrade", probe.display());
    check_installed(&names);
    assert_eq!(our_links(), {
        let mut n = names.clone();
        n.sort();
        n
    });

    // Purge: nothing of the package is left, the foreign plugin is.
    let o = dpkg(&["--purge", "cnibox"]);
    assert!(o.status.success(), "dpkg --purge failed: {}", text(&o));
    assert_eq!(installed_version(), None);
    assert!(!run("dpkg-query", &["-W", "cnibox"]).status.success(), "dpkg still knows cnibox");
    for gone in ["/usr/libexec/cnibox", "/usr/share/doc/cnibox"] {
        assert!(!Path::new(gone).exists(), "{gone} is left after purge");
    }
    assert!(our_links().is_empty(), "links left after purge: {:?}", our_links());
    assert_eq!(fs::read_to_string(&foreign).unwrap(), "#!/bin/sh\n# another vendor's plugin\n");

    // The .rpm: contents, links, docs, no scriptlets, nftables recommended.
    let rpm = rpm.to_str().unwrap();
    let o = run("rpm", &["-qlvp", rpm]);
    assert!(o.status.success(), "rpm -qlvp failed: {}", text(&o));
    let list = text(&o);
    assert!(list.contains(BINARY), "{list}");
    for n in &names {
        let line = format!("{CNI_BIN}/{n} -> {BINARY}");
        assert!(list.contains(&line), "the .rpm lacks {line}: {list}");
    }
    for doc in ["LICENSE", "copyright", "THIRD-PARTY-LICENSES", "README.packaging.md"] {
        assert!(list.contains(&format!("/usr/share/doc/cnibox/{doc}")), "the .rpm lacks {doc}");
    }
    assert!(!list.contains(" /opt\n") && !list.contains(" /usr/libexec\n"), "the .rpm owns a shared directory");
    let o = run("rpm", &["-qp", "--scripts", rpm]);
    assert!(o.status.success() && text(&o).trim().is_empty(), "unexpected scriptlets: {}", text(&o));
    let o = run("rpm", &["-qp", "--recommends", rpm]);
    assert!(text(&o).contains("nftables"), "{}", text(&o));

    drop(guard);
    assert!(!foreign.exists());
}
