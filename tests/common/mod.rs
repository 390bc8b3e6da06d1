//! Shared harness for integration tests: real network namespaces, the built binary exec'd
//! under its applet names, and cleanup on drop (also when a test fails).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The binary under test: $CNIBOX_BIN (the Makefile points it at the static release build),
/// else the one cargo built for this test run.
pub fn bin() -> PathBuf {
    std::env::var_os("CNIBOX_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cnibox")))
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this process and call, short enough for an interface name when `prefix` ≤ 5 chars.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}x{}", std::process::id() % 100_000, COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique(&format!("cnibox-{prefix}-")));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Remove what earlier test processes made in `dir` as `<prefix><pid>` and could not remove
/// themselves (a test binary has no teardown that runs after its last test): every such entry
/// whose process is gone.
fn sweep_per_process(dir: &Path, prefix: &str) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let p = e.path();
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
    }
}

/// A directory holding one link per applet to the binary under test (what symlinks.sh makes).
pub fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        sweep_per_process(&std::env::temp_dir(), "cnibox-bin-");
        let dir = std::env::temp_dir().join(format!("cnibox-bin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create plugin dir");
        let out = Command::new(bin()).arg("--list").output().expect("run cnibox --list");
        for name in String::from_utf8_lossy(&out.stdout).lines() {
            std::os::unix::fs::symlink(bin(), dir.join(name)).expect("link applet");
        }
        dir
    })
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        let name = unique(&format!("cbx-{prefix}-"));
        sh(&format!("ip netns add {name}"));
        sh(&format!("ip -n {name} link set lo up"));
        Netns { name }
    }

    /// A namespace with loopback left down (as a runtime creates it).
    pub fn bare(prefix: &str) -> Netns {
        let name = unique(&format!("cbx-{prefix}-"));
        sh(&format!("ip netns add {name}"));
        Netns { name }
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Run a shell command inside this namespace; returns (success, stdout).
    pub fn exec(&self, cmd: &str) -> (bool, String) {
        let out =
            Command::new("ip").args(["netns", "exec", &self.name, "sh", "-c", cmd]).output().expect("ip netns exec");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Run a shell command inside this namespace, panicking when it fails; returns stdout.
    pub fn sh(&self, cmd: &str) -> String {
        let (ok, out) = self.exec(cmd);
        assert!(ok, "`{cmd}` failed in namespace {}", self.name);
        out
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).status();
    }
}

/// Run a shell command, panicking with its output when it fails.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The reply of one plugin exec.
#[derive(Debug)]
pub struct Reply {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
    pub fn ok(&self) -> &Self {
        assert_eq!(self.status, 0, "plugin failed: {self:?}");
        self
    }
    /// The error code of a failed call.
    pub fn code(&self) -> u64 {
        assert_eq!(self.status, 1, "expected a failure: {self:?}");
        self.json()["code"].as_u64().expect("error code")
    }
}

fn reply(out: Output) -> Reply {
    Reply {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Exec the applet `name` (through its link) with exactly `env` and `stdin`.
/// With `host` set, the plugin runs inside that namespace, as if it were the node.
pub fn plugin(name: &str, host: Option<&Netns>, env: &[(&str, &str)], stdin: &str) -> Reply {
    exec_plugin(&plugin_dir().join(name), host, env, stdin)
}

/// Where the reference plugins are: `CNIBOX_REFERENCE_DIR` (the VM run copies some in), else
/// Debian's /usr/lib/cni.
pub fn reference_dir() -> PathBuf {
    std::env::var_os("CNIBOX_REFERENCE_DIR").map_or_else(|| PathBuf::from("/usr/lib/cni"), PathBuf::from)
}

/// Exec the reference plugin `<reference_dir>/<name>` inside `host`, with exactly `env` and `stdin`.
pub fn reference_plugin(name: &str, host: &Netns, env: &[(&str, &str)], stdin: &str) -> Reply {
    exec_plugin(&reference_dir().join(name), Some(host), env, stdin)
}

/// Exec the plugin at `path` with exactly `env` and `stdin`, inside `host` when set.
fn exec_plugin(path: &Path, host: Option<&Netns>, env: &[(&str, &str)], stdin: &str) -> Reply {
    let cmd = match host {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.name]).arg(path);
            c
        }
        None => Command::new(path),
    };
    run_plugin(cmd, env, stdin)
}

/// Run `cmd` (a plugin, or a launcher of one) with exactly `env` and `stdin`.
pub fn run_plugin(mut cmd: Command, env: &[(&str, &str)], stdin: &str) -> Reply {
    cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn plugin");
    {
        use std::io::Write;
        let mut si = child.stdin.take().expect("stdin");
        let _ = si.write_all(stdin.as_bytes());
    }
    reply(child.wait_with_output().expect("wait plugin"))
}

/// The standard env of a per-container call.
pub fn cni_env<'a>(command: &'a str, cid: &'a str, netns: &'a str, ifname: &'a str) -> Vec<(&'a str, &'a str)> {
    let path = plugin_dir().to_str().expect("utf-8 path");
    vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", cid),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", ifname),
        ("CNI_PATH", path),
    ]
}

/// Our plugin directory, then the distribution's (`/usr/lib/cni`): for plugins we delegate to
/// that cnibox may not build in.
pub fn path_with_distribution() -> String {
    format!("{}:/usr/lib/cni", plugin_dir().display())
}

/// `cni_env` of a call that leaves CNI_NETNS out when `netns` is empty, with `path` as CNI_PATH
/// when given.
pub fn call_env<'a>(
    command: &'a str,
    cid: &'a str,
    netns: &'a str,
    ifname: &'a str,
    path: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut env = cni_env(command, cid, netns, ifname);
    let dropped = |k: &str| (k == "CNI_PATH" && path.is_some()) || (k == "CNI_NETNS" && netns.is_empty());
    env.retain(|(k, _)| !dropped(k));
    env.extend(path.map(|p| ("CNI_PATH", p)));
    env
}

/// Run the cnitool applet: `cnitool <verb> <net> <netns-path>` with NETCONFPATH and extra env.
/// With `host` set, it runs inside that namespace (so bridges and rules stay there).
pub fn cnitool(host: Option<&Netns>, confdir: &Path, args: &[&str], extra: &[(&str, &str)]) -> Reply {
    let link = plugin_dir().join("cnitool");
    let mut cmd = match host {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.name]).arg(&link);
            c
        }
        None => Command::new(&link),
    };
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("NETCONFPATH", confdir)
        .env("CNI_PATH", plugin_dir());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    reply(cmd.output().expect("run cnitool"))
}

/// True when running as root; integration tests that need namespaces say so and skip otherwise.
pub fn root() -> bool {
    let ok = nix_uid_is_root();
    if !ok {
        eprintln!("skipping: needs root");
    }
    ok
}

fn nix_uid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// The libcni client (tests/libcni/main.go), built once per test process against Debian's
/// libcni source in GOPATH mode. None when Go or libcni is missing, unless the run requires it
/// (CNIBOX_REQUIRE_LIBCNI=1, as `make test` sets), in which case that is a failure.
pub fn libcni_client() -> Option<&'static Path> {
    static CLIENT: OnceLock<Option<PathBuf>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/libcni");
            sweep_per_process(Path::new(env!("CARGO_TARGET_TMPDIR")), "libcni-client-");
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("libcni-client-{}", std::process::id()));
            let gopath = "/usr/share/gocode";
            let have = Path::new("/usr/bin/go").exists()
                && Path::new(gopath).join("src/github.com/containernetworking/cni/libcni").exists();
            let required = std::env::var("CNIBOX_REQUIRE_LIBCNI").is_ok_and(|v| v == "1");
            if !have {
                assert!(!required, "libcni client required but go or golang-github-appc-cni-dev is missing");
                eprintln!("skipping libcni checks: go or golang-github-appc-cni-dev missing");
                return None;
            }
            let gocache = std::env::temp_dir().join("cnibox-gocache");
            let st = Command::new("go")
                .args(["build", "-o"])
                .arg(&out)
                .arg(".")
                .current_dir(&src)
                .env("GOPATH", gopath)
                .env("GO111MODULE", "off")
                .env("GOCACHE", &gocache)
                .env("GOFLAGS", "")
                .status()
                .expect("run go build");
            assert!(st.success(), "building the libcni client failed");
            Some(out)
        })
        .as_deref()
}

/// A runtime built on libcni: the client binary, its config dir, cache dir and CNI_PATH.
pub struct Libcni<'a> {
    pub client: &'a Path,
    pub confdir: &'a Path,
    pub cache: &'a Path,
    pub cni_path: &'a str,
}

impl Libcni<'_> {
    /// `<verb> <confdir> <net> <netns> <cachedir>`, inside `host` when given.
    pub fn run(&self, host: Option<&Netns>, verb: &str, net: &str, netns: &str) -> Reply {
        let mut cmd = match host {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.name]).arg(self.client);
                c
            }
            None => Command::new(self.client),
        };
        cmd.args([verb]).arg(self.confdir).args([net, netns]).arg(self.cache);
        cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").env("CNI_PATH", self.cni_path);
        reply(cmd.output().expect("run libcni client"))
    }
}

/// Write `conf` as `<dir>/<file>`.
pub fn write_conf(dir: &Path, file: &str, conf: &serde_json::Value) {
    std::fs::write(dir.join(file), serde_json::to_vec_pretty(conf).expect("json")).expect("write conf");
}

/// The address (without prefix length) of the `i`th IP of a result.
pub fn ip_of(result: &serde_json::Value, i: usize) -> std::net::IpAddr {
    let a = result["ips"][i]["address"].as_str().expect("address");
    a.split('/').next().and_then(|s| s.parse().ok()).expect("ip")
}

/// The addresses host-local holds for the network `net` in its data directory `data`.
pub fn leases(data: &Path, net: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(data.join(net)) else { return Vec::new() };
    rd.filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

/// Set each member of `extra` (an object) on `into`, replacing what is there.
pub fn merge(into: &mut serde_json::Value, extra: serde_json::Value) {
    if let serde_json::Value::Object(m) = extra {
        for (k, v) in m {
            into[k] = v;
        }
    }
}
