//! The chain podman 4.3 writes for a network of its own (bridge with ipMasq and hairpin mode,
//! then portmap, firewall and tuning), driven by podman itself through its CNI backend: a
//! container answers on its address and on a published port, another takes the address asked
//! for with `--ip` (host-local's `ips` capability), and removing them leaves no lease, link,
//! rule or cache entry behind; on a dual-stack network a container answers on its IPv6 address.
//!
//! Everything podman keeps (storage, state, network configs) goes to a temporary directory,
//! leases too (the config podman wrote gets a `dataDir`), and the network's host side lives in
//! a namespace of the test's own: podman runs there through `nsenter --net`, not `ip netns
//! exec`, which would give it a /sys without the cgroup mounts the OCI runtime needs.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const SUBNET: &str = "10.231.0.0/24";
const GATEWAY: &str = "10.231.0.1";
const FIXED_IP: &str = "10.231.0.77";
const SUBNET6_V4: &str = "10.232.0.0/24";
const SUBNET6_V6: &str = "fd00:232::/64";
const HOST_PORT: u16 = 18080;
const TOKEN: &str = "served-through-cnibox";

/// podman and what it runs containers with, configured to keep everything under `dir`.
struct Podman {
    dir: TempDir,
    host: Netns,
}

impl Podman {
    /// None when podman, runc or a static busybox is missing, unless the run requires them
    /// (CNIBOX_REQUIRE_PODMAN=1, as `make test` sets), in which case that is a failure.
    fn new() -> Option<Podman> {
        let tools = ["/usr/bin/podman", "/usr/sbin/runc", "/bin/busybox", "/usr/bin/nsenter"];
        let missing: Vec<&str> = tools.into_iter().filter(|t| !Path::new(t).exists()).collect();
        if !missing.is_empty() {
            let required = std::env::var("CNIBOX_REQUIRE_PODMAN").is_ok_and(|v| v == "1");
            assert!(!required, "podman required but missing: {missing:?}");
            eprintln!("skipping podman checks: missing {missing:?}");
            return None;
        }
        let p = Podman { dir: TempDir::new("podman"), host: Netns::new("pmh") };
        let d = p.dir.path();
        for sub in ["rootfs/bin", "rootfs/etc", "rootfs/proc", "rootfs/sys", "rootfs/dev", "rootfs/www", "net.d", "tmp"]
        {
            std::fs::create_dir_all(d.join(sub)).expect("create podman dirs");
        }
        std::fs::copy("/bin/busybox", d.join("rootfs/bin/busybox")).expect("copy busybox");
        for applet in ["sh", "httpd", "sleep", "ip"] {
            std::os::unix::fs::symlink("busybox", d.join("rootfs/bin").join(applet)).expect("link busybox applet");
        }
        std::fs::write(d.join("rootfs/www/index.html"), TOKEN).expect("write page");
        // Limits at or under any hard limit (podman's defaults raise them, which a container
        // sandbox may forbid); cgroupfs, as a host without systemd has.
        let containers_conf = format!(
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             [network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{plugins}\"]\nnetwork_config_dir = \"{netd}\"\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\ntmp_dir = \"{tmp}\"\n",
            plugins = plugin_dir().display(),
            netd = d.join("net.d").display(),
            tmp = d.join("libpod").display(),
        );
        std::fs::write(d.join("containers.conf"), containers_conf).expect("write containers.conf");
        let storage_conf = format!(
            "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
            d.join("runroot").display(),
            d.join("graphroot").display()
        );
        std::fs::write(d.join("storage.conf"), storage_conf).expect("write storage.conf");
        Some(p)
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    /// `podman <args>` inside the test's host namespace.
    fn run(&self, args: &[&str]) -> Reply {
        let d = self.dir.path();
        // A podman that hangs fails the test instead of holding up the suite.
        let out = Command::new("timeout")
            .args(["120", "nsenter"])
            .arg(format!("--net={}", self.host.path()))
            .args(["podman", "--network-backend", "cni"])
            .args(args)
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("TMPDIR", d.join("tmp"))
            .output()
            .expect("run podman");
        Reply {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.status, 0, "podman {args:?} failed: {}{}", r.stdout, r.stderr);
        r.stdout.trim().to_string()
    }

    /// Create the network `net` as podman writes it (`args` are `network create`'s options),
    /// with host-local's leases kept in the test's directory; its config.
    fn network(&self, net: &str, args: &[&str]) -> Value {
        self.ok(&[&["network", "create"], args, &[net]].concat());
        let dir = self.dir.path().join("net.d");
        let file = format!("{net}.conflist");
        let mut conf: Value =
            serde_json::from_slice(&std::fs::read(dir.join(&file)).expect("podman wrote no conflist"))
                .expect("podman's conflist is JSON");
        conf["plugins"][0]["ipam"]["dataDir"] = Value::from(self.data_dir().to_str().expect("utf-8 path"));
        write_conf(&dir, &file, &conf);
        conf
    }

    /// Start `name` on `net` (with `run`'s `extra` options), running `cmd` from the busybox root.
    fn start(&self, name: &str, net: &str, extra: &[&str], cmd: &[&str]) {
        let rootfs = self.rootfs();
        // `--rootfs <dir>` stands where the image would: the options go before it.
        let rootfs = ["--rootfs", rootfs.to_str().expect("utf-8 path")];
        self.ok(&[&["run", "-d", "--name", name, "--network", net], extra, &rootfs, cmd].concat());
    }

    /// A web server answering TOKEN on port 80.
    fn start_web(&self, name: &str, net: &str, extra: &[&str]) {
        self.start(name, net, extra, &["/bin/httpd", "-f", "-p", "80", "-h", "/www"]);
    }

    /// A field of the container's attachment to `net` (`IPAddress`, `GlobalIPv6Address`).
    fn attachment(&self, container: &str, net: &str, field: &str) -> String {
        let format = format!("{{{{(index .NetworkSettings.Networks \"{net}\").{field}}}}}");
        self.ok(&["inspect", "--format", &format, container])
    }

    /// A GET from the host namespace; the body, or None.
    fn get(&self, url: &str) -> Option<String> {
        let (ok, body) = self.host.exec(&format!("timeout 5 busybox wget -q -O - {url}"));
        ok.then_some(body)
    }

    /// `get`, tried for up to five seconds while the server starts.
    fn get_soon(&self, url: &str) -> Option<String> {
        for _ in 0..50 {
            if let Some(body) = self.get(url) {
                return Some(body);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Whatever a failed test left running: its networks come down through DEL.
        let _ = self.run(&["rm", "--all", "--force", "--time", "0"]);
    }
}

#[test]
fn podman_runs_containers_on_its_own_bridge_chain() {
    if !root() {
        return;
    }
    let Some(pm) = Podman::new() else { return };

    let net = unique("pm");
    let conf = pm.network(&net, &["--subnet", SUBNET]);
    let types: Vec<&str> =
        conf["plugins"].as_array().expect("plugins").iter().filter_map(|p| p["type"].as_str()).collect();
    assert_eq!(types, ["bridge", "portmap", "firewall", "tuning"], "podman's chain changed");
    let bridge = conf["plugins"][0]["bridge"].as_str().expect("bridge name");

    let web = unique("web");
    pm.start_web(&web, &net, &["-p", &format!("{HOST_PORT}:80")]);
    let ip = pm.attachment(&web, &net, "IPAddress");
    assert!(ip.starts_with("10.231.0."), "container address {ip:?} is not from {SUBNET}");
    assert_eq!(leases(&pm.data_dir(), &net), std::slice::from_ref(&ip), "host-local's lease");

    // The container on its address, and on the published port of the node's own addresses
    // (locally originated, so through portmap's output chain; 127.0.0.1 needs route_localnet).
    assert_eq!(pm.get_soon(&format!("http://{ip}/")).as_deref(), Some(TOKEN), "the container does not answer on {ip}");
    for host in [GATEWAY, "127.0.0.1"] {
        let got = pm.get(&format!("http://{host}:{HOST_PORT}/"));
        assert_eq!(got.as_deref(), Some(TOKEN), "port {HOST_PORT} on {host}");
    }

    // --ip reaches host-local as the `ips` capability.
    let fixed = unique("fix");
    pm.start(&fixed, &net, &["--ip", FIXED_IP], &["/bin/sleep", "600"]);
    assert_eq!(pm.attachment(&fixed, &net, "IPAddress"), FIXED_IP);
    let mut held = leases(&pm.data_dir(), &net);
    held.sort();
    let mut want = vec![ip.clone(), FIXED_IP.to_string()];
    want.sort();
    assert_eq!(held, want, "host-local's leases with both containers");

    // Removal runs DEL through the chain: nothing of either container stays.
    pm.ok(&["rm", "--force", "--time", "0", &web, &fixed]);
    assert!(leases(&pm.data_dir(), &net).is_empty(), "leases left: {:?}", leases(&pm.data_dir(), &net));
    let links = pm.host.sh("ip -o link show");
    assert!(!links.contains("veth"), "host veths left:\n{links}");
    assert!(links.contains(bridge), "the bridge {bridge} is kept, as the reference keeps it");
    let rules = pm.host.sh("nft list ruleset");
    for left in [ip.as_str(), FIXED_IP, &HOST_PORT.to_string()] {
        assert!(!rules.contains(left), "rules still name {left}:\n{rules}");
    }
    let cached: Vec<String> = std::fs::read_dir("/var/lib/cni/results")
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(!cached.iter().any(|f| f.starts_with(&format!("{net}-"))), "libcni cache entries left: {cached:?}");

    // A dual-stack network: the container answers on its IPv6 address too.
    let net6 = unique("pm");
    pm.network(&net6, &["--ipv6", "--subnet", SUBNET6_V4, "--subnet", SUBNET6_V6]);
    let six = unique("six");
    pm.start_web(&six, &net6, &[]);
    let ip6 = pm.attachment(&six, &net6, "GlobalIPv6Address");
    assert!(ip6.starts_with("fd00:232::"), "container IPv6 address {ip6:?} is not from {SUBNET6_V6}");
    assert_eq!(leases(&pm.data_dir(), &net6).len(), 2, "one lease per family");
    // The node's end (the bridge's address) can only talk once its duplicate address
    // detection is over, about a second after the bridge got it.
    for _ in 0..100 {
        if pm.host.sh("ip -6 -o addr show tentative").trim().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let got = pm.get_soon(&format!("http://[{ip6}]/"));
    assert_eq!(got.as_deref(), Some(TOKEN), "the container does not answer on {ip6}");
    pm.ok(&["rm", "--force", "--time", "0", &six]);
    assert!(leases(&pm.data_dir(), &net6).is_empty(), "leases left: {:?}", leases(&pm.data_dir(), &net6));
}
