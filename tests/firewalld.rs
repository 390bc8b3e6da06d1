//! The firewall plugin's firewalld backend against a real D-Bus daemon: a private bus of its
//! own per test (never the system bus) with a stand-in for firewalld (tests/fixtures/
//! fake-firewalld.py: its zone methods and error codes), and the reference plugin on the same
//! bus for comparison. The plugins find the bus through DBUS_SYSTEM_BUS_ADDRESS.

mod common;
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's python3, which python3-dbus and python3-gi are installed for (not another on PATH).
const PYTHON: &str = "/usr/bin/python3";

/// Whether dbus-daemon and python3's dbus module are there; required with CNIBOX_REQUIRE_DBUS.
fn have_dbus() -> bool {
    let daemon = Path::new("/usr/bin/dbus-daemon").exists();
    let python = daemon
        && Command::new(PYTHON)
            .args(["-c", "import dbus, dbus.mainloop.glib, gi.repository.GLib"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !python {
        assert!(std::env::var_os("CNIBOX_REQUIRE_DBUS").is_none(), "dbus-daemon or python3-dbus/python3-gi missing");
        eprintln!("skipping: dbus-daemon, python3-dbus or python3-gi is not installed");
    }
    python
}

/// A private bus, and optionally the stand-in firewalld on it; both stop with it.
struct Bus {
    dir: TempDir,
    address: String,
    daemon: Child,
    firewalld: Option<Child>,
}

impl Bus {
    fn new() -> Bus {
        Bus::start(false, false)
    }

    /// A bus that can start the stand-in firewalld itself (D-Bus activation: a service file in
    /// the bus's service directory), as a node's bus starts firewalld through systemd.
    fn activating() -> Bus {
        Bus::start(true, true)
    }

    /// A bus with a service file for firewalld whose start fails (a disabled unit, say).
    fn failing_activation() -> Bus {
        Bus::start(true, false)
    }

    fn start(activation: bool, starts: bool) -> Bus {
        let dir = TempDir::new("dbus");
        let socket = dir.path().join("bus");
        let conf = dir.path().join("bus.conf");
        let mut servicedir = String::new();
        if activation {
            let services = dir.path().join("services");
            std::fs::create_dir(&services).expect("service directory");
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-firewalld.py");
            let state = dir.path().join("firewalld.json");
            let exec = if starts {
                format!("{PYTHON} {} unix:path={} {}", script.display(), socket.display(), state.display())
            } else {
                "/bin/false".to_string()
            };
            std::fs::write(
                services.join("org.fedoraproject.FirewallD1.service"),
                format!("[D-BUS Service]\nName=org.fedoraproject.FirewallD1\nExec={exec}\n"),
            )
            .expect("write the service file");
            servicedir = format!("<servicedir>{}</servicedir>", services.display());
        }
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  {}
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
                socket.display(),
                servicedir
            ),
        )
        .expect("write bus config");
        let mut daemon = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--nopidfile", "--print-address=1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start dbus-daemon");
        let mut line = String::new();
        BufReader::new(daemon.stdout.take().expect("stdout")).read_line(&mut line).expect("bus address");
        let address = line.trim().to_string();
        assert!(address.starts_with("unix:"), "dbus-daemon printed {address:?}");
        Bus { dir, address, daemon, firewalld: None }
    }

    fn state_file(&self) -> PathBuf {
        self.dir.path().join("firewalld.json")
    }

    /// Start the stand-in firewalld with these sources already in zones.
    fn with_firewalld(mut self, initial: Value) -> Bus {
        self.start_firewalld(initial);
        self
    }

    /// Start the stand-in firewalld (again: a restart loses its runtime sources, as firewalld's).
    fn start_firewalld(&mut self, initial: Value) {
        if let Some(mut c) = self.firewalld.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let state = self.state_file();
        let _ = std::fs::remove_file(&state);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-firewalld.py");
        let child = Command::new(PYTHON)
            .arg(script)
            .args([&self.address, state.to_str().expect("utf-8"), &initial.to_string()])
            .spawn()
            .expect("start the stand-in firewalld");
        self.firewalld = Some(child);
        let start = Instant::now();
        while !state.exists() {
            assert!(start.elapsed() < Duration::from_secs(20), "the stand-in firewalld did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// firewalld's sources: source → zone.
    fn sources(&self) -> BTreeMap<String, String> {
        let text = std::fs::read_to_string(self.state_file()).expect("firewalld state");
        serde_json::from_str(&text).expect("firewalld state JSON")
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        if let Some(c) = &mut self.firewalld {
            let _ = c.kill();
            let _ = c.wait();
        } else if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("firewalld.json.pid")) {
            // One the bus started is the bus's child: the stand-in notes its PID.
            let _ = Command::new("kill").arg(pid.trim()).stderr(Stdio::null()).status();
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // The test's GC notes, whatever its end.
        let _ = std::fs::remove_dir_all(std::path::Path::new("/run/cni/firewall").join(net()));
    }
}

thread_local! {
    /// Each test's own network (tests run on threads of their own), so that the GC notes of
    /// parallel tests (`/run/cni/firewall/<network>`) stay apart.
    static NET: String = unique("fwdnet");
}

fn net() -> String {
    NET.with(String::clone)
}

fn conf(extra: Value) -> String {
    let mut c = json!({
        "cniVersion": "1.0.0", "name": net(), "type": "firewall",
        "prevResult": {"cniVersion": "1.0.0",
            "interfaces": [{"name": "cni0"}, {"name": "eth0", "sandbox": "/var/run/netns/x"}],
            "ips": [{"address": "10.77.0.5/24", "interface": 1}, {"address": "fd77::5/64", "interface": 1}]}
    });
    merge(&mut c, extra);
    c.to_string()
}

fn call(host: &Netns, address: &str, cmd: &str, conf: &str) -> Reply {
    call_as(host, address, "fwd-ctr", cmd, conf)
}

/// `call` for container `cid`.
fn call_as(host: &Netns, address: &str, cid: &str, cmd: &str, conf: &str) -> Reply {
    let mut env = cni_env(cmd, cid, "/var/run/netns/x", "eth0");
    env.push(("DBUS_SYSTEM_BUS_ADDRESS", address));
    plugin("firewall", Some(host), &env, conf)
}

fn pairs(p: &[(&str, &str)]) -> BTreeMap<String, String> {
    p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn unset_backend_uses_firewalld_where_it_runs() {
    if !root() || !have_dbus() {
        return;
    }
    let bus = Bus::new().with_firewalld(json!({}));
    let host = Netns::new("fwd");
    let c = conf(json!({}));
    let r = call(&host, &bus.address, "ADD", &c);
    r.ok();
    assert_eq!(r.json()["ips"][0]["address"], "10.77.0.5/24", "the prevResult passes through");
    assert_eq!(bus.sources(), pairs(&[("10.77.0.5/32", "trusted"), ("fd77::5/128", "trusted")]));
    // No rules of the other backends.
    assert_eq!(host.exec("nft list tables").1.trim(), "", "nftables untouched");
    call(&host, &bus.address, "CHECK", &c).ok();
    // A second ADD finds the sources there (ZONE_ALREADY_SET) and succeeds.
    call(&host, &bus.address, "ADD", &c).ok();

    call(&host, &bus.address, "DEL", &c).ok();
    assert!(bus.sources().is_empty());
    let r = call(&host, &bus.address, "CHECK", &c);
    assert!(r.stdout.contains("the address 10.77.0.5/32 is not in trusted zone"), "{}", r.stdout);
    // DEL again: nothing there, still fine.
    call(&host, &bus.address, "DEL", &c).ok();
}

#[test]
fn firewalld_restart_and_a_changed_zone() {
    if !root() || !have_dbus() {
        return;
    }
    let mut bus = Bus::new().with_firewalld(json!({}));
    let host = Netns::new("fwd");
    let c = conf(json!({}));
    call(&host, &bus.address, "ADD", &c).ok();
    // A restart (or reload) of firewalld drops its runtime sources: CHECK says so, DEL is fine.
    bus.start_firewalld(json!({}));
    let r = call(&host, &bus.address, "CHECK", &c);
    assert!(r.stdout.contains("the address 10.77.0.5/32 is not in trusted zone"), "{}", r.stdout);
    call(&host, &bus.address, "DEL", &c).ok();

    // The config's zone changed between ADD and DEL: firewalld answers ZONE_CONFLICT for the
    // zone DEL names (a warning), and the sources go from the zone ADD's note names.
    call(&host, &bus.address, "ADD", &c).ok();
    let moved = conf(json!({"firewalldZone": "work"}));
    let r = call(&host, &bus.address, "DEL", &moved);
    r.ok();
    assert!(r.stderr.contains("ZONE_CONFLICT"), "{r:?}");
    assert!(bus.sources().is_empty());
    // Without the note (an ADD the reference made), the source stays, with the warning.
    call(&host, &bus.address, "ADD", &c).ok();
    let _ = std::fs::remove_dir_all(std::path::Path::new("/run/cni/firewall").join(net()));
    let r = call(&host, &bus.address, "DEL", &moved);
    assert!(r.ok().stderr.contains("ZONE_CONFLICT"));
    assert_eq!(bus.sources(), pairs(&[("10.77.0.5/32", "trusted"), ("fd77::5/128", "trusted")]));
    // A zone that does not exist: ADD fails naming it; DEL succeeds.
    let gone = conf(json!({"firewalldZone": "nosuchzone"}));
    let r = call(&host, &bus.address, "ADD", &gone);
    assert!(r.stdout.contains("INVALID_ZONE"), "{}", r.stdout);
    call(&host, &bus.address, "DEL", &gone).ok();
    call(&host, &bus.address, "DEL", &c).ok();
    assert!(bus.sources().is_empty());
    // A zone name that cannot be one is refused before the bus is asked.
    let r = call(&host, &bus.address, "ADD", &conf(json!({"firewalldZone": "a\nb"})));
    assert_eq!(r.code(), 7, "{}", r.stdout);
}

#[test]
fn ingress_policy_with_firewalld() {
    if !root() || !have_dbus() {
        return;
    }
    // firewalld has no isolation between bridges: the isolation rules go to nftables, as for
    // the other backends (the reference writes them with iptables whatever its backend).
    let bus = Bus::new().with_firewalld(json!({}));
    let host = Netns::new("fwd");
    let c = conf(json!({"ingressPolicy": "same-bridge"}));
    call(&host, &bus.address, "ADD", &c).ok();
    assert_eq!(bus.sources().len(), 2);
    let t = host.exec("nft list table inet cni_firewall").1;
    assert!(t.contains("iifname \"cni0\" oifname != \"cni0\" jump isolation_stage_2"), "{t}");
    assert!(t.contains("oifname \"cni0\" drop"), "{t}");
    call(&host, &bus.address, "CHECK", &c).ok();
    call(&host, &bus.address, "DEL", &c).ok();
    assert!(bus.sources().is_empty());
    let t = host.exec("nft list table inet cni_firewall").1;
    assert!(!t.contains("10.77.0.5"), "the pod's rules stay after DEL: {t}");
}

#[test]
fn pods_from_before_firewalld_ran() {
    if !root() || !have_dbus() {
        return;
    }
    // ADD while firewalld did not run (nftables here); firewalld starts; CHECK of the unset
    // backend accepts the pod's rules, DEL removes them.
    let mut bus = Bus::new();
    let host = Netns::new("fwd");
    let c = conf(json!({}));
    call(&host, &bus.address, "ADD", &c).ok();
    assert!(host.exec("nft list table inet cni_firewall").1.contains("10.77.0.5"));
    bus.start_firewalld(json!({}));
    call(&host, &bus.address, "CHECK", &c).ok();
    call(&host, &bus.address, "DEL", &c).ok();
    assert!(!host.exec("nft list table inet cni_firewall").1.contains("10.77.0.5"));
    assert!(bus.sources().is_empty());
    // With firewalld asked for explicitly, its answer alone counts.
    let r = call(&host, &bus.address, "CHECK", &conf(json!({"backend": "firewalld"})));
    assert!(r.stdout.contains("is not in trusted zone"), "{}", r.stdout);
}

#[test]
fn zone_conflicts_roll_back_and_name_the_address() {
    if !root() || !have_dbus() {
        return;
    }
    // The IPv6 address is bound to another zone already: the ADD fails and takes the IPv4
    // source it added out again; the conflicting binding is not ours to remove.
    let bus = Bus::new().with_firewalld(json!({"fd77::5/128": "internal"}));
    let host = Netns::new("fwd");
    let c = conf(json!({"backend": "firewalld", "firewalldZone": "pods"}));
    let r = call(&host, &bus.address, "ADD", &c);
    assert_eq!(r.code(), 999, "{}", r.stdout);
    assert!(r.stdout.contains("failed to add the address fd77::5/128 to pods zone"), "{}", r.stdout);
    assert!(r.stdout.contains("ZONE_CONFLICT"), "{}", r.stdout);
    assert_eq!(bus.sources(), pairs(&[("fd77::5/128", "internal")]));

    // Only the IPv4 address: it goes into the configured zone.
    let mut v4: Value = serde_json::from_str(&c).expect("json");
    v4["prevResult"]["ips"].as_array_mut().expect("ips").truncate(1);
    let v4 = v4.to_string();
    call(&host, &bus.address, "ADD", &v4).ok();
    assert_eq!(bus.sources(), pairs(&[("10.77.0.5/32", "pods"), ("fd77::5/128", "internal")]));
    call(&host, &bus.address, "CHECK", &v4).ok();
    // CHECK of the whole result: the IPv6 address is in another zone.
    let r = call(&host, &bus.address, "CHECK", &c);
    assert!(r.stdout.contains("the address fd77::5/128 is not in pods zone"), "{}", r.stdout);
    // DEL takes out only what is in its zone.
    call(&host, &bus.address, "DEL", &c).ok();
    assert_eq!(bus.sources(), pairs(&[("fd77::5/128", "internal")]));
}

#[test]
fn firewalld_backend_needs_firewalld() {
    if !root() || !have_dbus() {
        return;
    }
    let host = Netns::new("fwd");
    let c = conf(json!({"backend": "firewalld"}));
    // A bus without firewalld.
    let bus = Bus::new();
    let r = call(&host, &bus.address, "ADD", &c);
    assert_eq!(r.code(), 999, "{}", r.stdout);
    assert!(r.stdout.contains("firewalld (org.fedoraproject.FirewallD1) is not running"), "{}", r.stdout);
    // STATUS is a verb of 1.1.0 configs.
    let c11 = conf(json!({"backend": "firewalld", "cniVersion": "1.1.0"}));
    let r = call(&host, &bus.address, "STATUS", &c11);
    assert_eq!(r.code(), 50, "{}", r.stdout);
    assert!(r.stdout.contains("firewalld (org.fedoraproject.FirewallD1) is not running"), "{}", r.stdout);
    // DEL has nothing to remove.
    call(&host, &bus.address, "DEL", &c).ok();
    // No bus at all: the error names the address.
    let none = format!("unix:path={}", bus.dir.path().join("nobus").display());
    let r = call(&host, &none, "ADD", &c);
    assert!(r.stdout.contains("cannot connect to the D-Bus system bus") && r.stdout.contains("nobus"), "{}", r.stdout);
    // Unset, with no firewalld, the backend is another one (nftables in this namespace).
    let r = call(&host, &bus.address, "ADD", &conf(json!({})));
    r.ok();
    assert!(host.exec("nft list tables").1.contains("cni_firewall"));
    call(&host, &bus.address, "DEL", &conf(json!({}))).ok();
}

#[test]
fn reference_and_cnibox_agree_on_firewalld() {
    if !root() || !have_dbus() {
        return;
    }
    if !reference_dir().join("firewall").exists() {
        eprintln!("skipping: no reference firewall plugin");
        return;
    }
    let bus = Bus::new().with_firewalld(json!({}));
    let host = Netns::new("fwd");
    for c in [conf(json!({})), conf(json!({"backend": "firewalld", "firewalldZone": "pods"}))] {
        let mut env = cni_env("ADD", "fwd-ctr", "/var/run/netns/x", "eth0");
        env.push(("DBUS_SYSTEM_BUS_ADDRESS", &bus.address));
        reference_plugin("firewall", &host, &env, &c).ok();
        let theirs = bus.sources();
        assert_eq!(theirs.len(), 2);
        // cnibox's CHECK accepts the reference's sources, and its DEL removes them.
        call(&host, &bus.address, "CHECK", &c).ok();
        call(&host, &bus.address, "DEL", &c).ok();
        assert!(bus.sources().is_empty());
        // cnibox's ADD writes what the reference wrote; the reference's DEL removes it.
        call(&host, &bus.address, "ADD", &c).ok();
        assert_eq!(bus.sources(), theirs);
        env[0] = ("CNI_COMMAND", "DEL");
        reference_plugin("firewall", &host, &env, &c).ok();
        assert!(bus.sources().is_empty());
    }
}

#[test]
fn gc_takes_out_the_sources_of_attachments_no_longer_valid() {
    if !root() || !have_dbus() {
        return;
    }
    let bus = Bus::new().with_firewalld(json!({}));
    let host = Netns::new("fwd");
    let _notes = TempDir("/run/cni/firewall/fwdgc".into());
    let call_as = |cid: &str, cmd: &str, conf: &str| call_as(&host, &bus.address, cid, cmd, conf);
    let pod = |ip: &str| {
        conf(json!({"cniVersion": "1.1.0", "name": "fwdgc", "prevResult": {"cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/x"}],
            "ips": [{"address": format!("{ip}/24"), "interface": 0}]}}))
    };
    call_as("gone", "ADD", &pod("10.78.0.5")).ok();
    call_as("kept", "ADD", &pod("10.78.0.6")).ok();
    let mut gc: Value = serde_json::from_str(&pod("10.78.0.5")).unwrap();
    gc.as_object_mut().unwrap().remove("prevResult");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "kept", "ifname": "eth0"}]);
    let mut env = vec![("CNI_COMMAND", "GC"), ("CNI_PATH", "/opt/cni/bin")];
    env.push(("DBUS_SYSTEM_BUS_ADDRESS", &bus.address));
    plugin("firewall", Some(&host), &env, &gc.to_string()).ok();
    assert_eq!(bus.sources(), pairs(&[("10.78.0.6/32", "trusted")]));
    call_as("kept", "DEL", &pod("10.78.0.6")).ok();
    assert!(bus.sources().is_empty());
    assert!(!std::path::Path::new("/run/cni/firewall/fwdgc").exists());
}

#[test]
fn firewalld_backend_has_the_bus_start_firewalld() {
    if !root() || !have_dbus() {
        return;
    }
    let bus = Bus::activating();
    let host = Netns::new("fwa");
    let c = conf(json!({"backend": "firewalld"}));
    // STATUS reports a firewalld that does not run (whether systemd would start it shows only by
    // trying), and DEL has nothing to remove from one: neither starts it.
    let c11 = conf(json!({"backend": "firewalld", "cniVersion": "1.1.0"}));
    assert_eq!(call(&host, &bus.address, "STATUS", &c11).code(), 50);
    call(&host, &bus.address, "DEL", &c).ok();
    assert!(!bus.state_file().exists(), "firewalld was started");
    // ADD has the bus start it, and waits for it.
    call(&host, &bus.address, "ADD", &c).ok();
    assert_eq!(bus.sources(), pairs(&[("10.77.0.5/32", "trusted"), ("fd77::5/128", "trusted")]));
    call(&host, &bus.address, "STATUS", &c11).ok();
    call(&host, &bus.address, "CHECK", &c).ok();
    call(&host, &bus.address, "DEL", &c).ok();
    assert!(bus.sources().is_empty());
    // Unset, the backend is firewalld only where it runs: a bus that could start it does not
    // make it the choice (the nftables backend here, as before it ran).
    let other = Bus::activating();
    call(&host, &other.address, "ADD", &conf(json!({}))).ok();
    assert!(!other.state_file().exists(), "firewalld was started for an unset backend");
    call(&host, &other.address, "DEL", &conf(json!({}))).ok();
    // A start that fails is an error that says so.
    let failing = Bus::failing_activation();
    let r = call(&host, &failing.address, "ADD", &c);
    assert_eq!(r.code(), 999, "{}", r.stdout);
    assert!(r.stdout.contains("the bus could not start it"), "{}", r.stdout);
}
