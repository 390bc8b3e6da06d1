//! The plugin side of the protocol: read env and stdin, validate, reconcile the version,
//! call the plugin, and turn the outcome into stdout and an exit status.

use super::args::CniArgs;
use super::config::{NetConf, valid_id, validate_name};
use super::error::{CniError, code};
use super::result::CniResult;
use super::version::{self, SpecVersion};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Gc,
    Status,
    Version,
}

impl Command {
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Gc => "GC",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
        }
    }
}

/// One call of a plugin, validated.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub command: Command,
    /// Empty for GC and STATUS.
    pub container_id: String,
    /// None when CNI_NETNS is empty (allowed for DEL, GC, STATUS).
    pub netns: Option<PathBuf>,
    pub ifname: String,
    pub args: CniArgs,
    /// The raw CNI_ARGS, passed on unchanged to delegated plugins.
    pub args_raw: String,
    pub path: Vec<PathBuf>,
    pub stdin: Vec<u8>,
    pub version: SpecVersion,
    pub conf: NetConf,
}

/// What a plugin implements. Unimplemented verbs default to success, as in the reference.
pub struct PluginFns {
    pub add: fn(&Invocation) -> Result<CniResult, CniError>,
    pub del: fn(&Invocation) -> Result<(), CniError>,
    pub check: fn(&Invocation) -> Result<(), CniError>,
    pub gc: fn(&Invocation) -> Result<(), CniError>,
    pub status: fn(&Invocation) -> Result<(), CniError>,
    pub versions: &'static [SpecVersion],
}

pub fn noop(_: &Invocation) -> Result<(), CniError> {
    Ok(())
}

/// What the process prints and how it exits.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub status: i32,
}

impl Outcome {
    fn ok(stdout: String) -> Outcome {
        Outcome { stdout, stderr: String::new(), status: 0 }
    }

    pub fn error(e: &CniError) -> Outcome {
        Outcome { stdout: e.to_json(), stderr: String::new(), status: 1 }
    }
}

/// Env variables in the order the reference checks them, and the verbs that need each.
const REQUIRED: &[(&str, &[&str])] = &[
    ("CNI_COMMAND", &["ADD", "CHECK", "DEL", "GC", "STATUS", "VERSION"]),
    ("CNI_CONTAINERID", &["ADD", "CHECK", "DEL"]),
    ("CNI_NETNS", &["ADD", "CHECK"]),
    ("CNI_IFNAME", &["ADD", "CHECK", "DEL"]),
    ("CNI_PATH", &["ADD", "CHECK", "DEL", "GC", "STATUS"]),
];

/// Run one plugin invocation. `getenv` and `stdin` are the process's in production and fakes in tests.
pub fn dispatch(
    applet: &str,
    plugin: &PluginFns,
    getenv: &dyn Fn(&str) -> Option<String>,
    read_stdin: &mut dyn FnMut() -> std::io::Result<Vec<u8>>,
) -> Outcome {
    let var = |k: &str| getenv(k).unwrap_or_default();
    let cmd_raw = var("CNI_COMMAND");
    if cmd_raw.is_empty() {
        return Outcome { stdout: String::new(), stderr: version::about(applet, plugin.versions), status: 0 };
    }
    match run(plugin, &cmd_raw, &var, read_stdin) {
        Ok(stdout) => Outcome::ok(stdout),
        Err(e) => Outcome::error(&e),
    }
}

fn run(
    plugin: &PluginFns,
    cmd_raw: &str,
    var: &dyn Fn(&str) -> String,
    read_stdin: &mut dyn FnMut() -> std::io::Result<Vec<u8>>,
) -> Result<String, CniError> {
    // As the reference scans the env: a present, required container ID or IFNAME is validated
    // on the spot; missing ones are collected and reported together.
    let mut missing = Vec::new();
    for (name, verbs) in REQUIRED {
        let value = var(name);
        let required = verbs.contains(&cmd_raw);
        if value.is_empty() {
            if required {
                missing.push(*name);
            }
        } else if required {
            match *name {
                "CNI_CONTAINERID" => validate_container_id(&value)?,
                "CNI_IFNAME" => validate_ifname(&value)?,
                _ => {}
            }
        }
    }
    if !missing.is_empty() {
        return Err(CniError::invalid_env(format!("required env variables [{}] missing", missing.join(","))));
    }
    if cmd_raw == "VERSION" {
        return Ok(version::version_reply(plugin.versions));
    }
    let stdin = read_stdin().map_err(|e| CniError::new(code::IO_FAILURE, format!("error reading from stdin: {e}")))?;
    validate_name(&stdin)?;
    let container_id = var("CNI_CONTAINERID");
    let ifname = var("CNI_IFNAME");
    let command =
        Command::parse(cmd_raw).ok_or_else(|| CniError::invalid_env(format!("unknown CNI_COMMAND: {cmd_raw}")))?;

    let min = match command {
        Command::Check => Some((SpecVersion::V0_4_0, "CHECK")),
        Command::Gc => Some((SpecVersion::V1_1_0, "GC")),
        Command::Status => Some((SpecVersion::V1_1_0, "STATUS")),
        _ => None,
    };
    if let Some((min, verb)) = min {
        // Compared as numbers, as the reference does: "0.3" is below 0.4.0, "1.2.0" passes the gate
        // and is then refused by the exact-match reconciliation below.
        let raw = version::config_version_string(&stdin)?;
        let v = version::numeric(&raw).ok_or_else(|| CniError::decoding(format!("unknown CNI version \"{raw}\"")))?;
        if v < version::numeric(min.as_str()).unwrap_or_default() {
            return Err(CniError::new(code::INCOMPATIBLE_VERSION, format!("config version does not allow {verb}")));
        }
    }
    let version = version::reconcile(&stdin, plugin.versions)?;
    let conf = NetConf::parse(&stdin, command == Command::Del)?;
    let args_raw = var("CNI_ARGS");
    let args = CniArgs::parse(&args_raw);
    let netns = Some(var("CNI_NETNS")).filter(|s| !s.is_empty()).map(PathBuf::from);
    let path = std::env::split_paths(&var("CNI_PATH")).filter(|p| !p.as_os_str().is_empty()).collect();
    let inv = Invocation { command, container_id, netns, ifname, args, args_raw, path, stdin, version, conf };

    let out = match command {
        Command::Add => {
            check_netns_not_own(&inv, var)?;
            (plugin.add)(&inv)?.to_json(version)?
        }
        Command::Del => {
            check_netns_not_own(&inv, var)?;
            (plugin.del)(&inv).map(|_| String::new())?
        }
        Command::Check => (plugin.check)(&inv).map(|_| String::new())?,
        Command::Gc => (plugin.gc)(&inv).map(|_| String::new())?,
        Command::Status => (plugin.status)(&inv).map(|_| String::new())?,
        // VERSION was answered before stdin was read; the arm keeps the match total.
        Command::Version => String::new(),
    };
    Ok(out)
}

/// Code 3 for an empty ID, code 4 for a bad one.
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    if id.is_empty() {
        return Err(CniError::new(code::UNKNOWN_CONTAINER, "missing containerID"));
    }
    if !valid_id(id) {
        return Err(CniError::invalid_env("invalid characters in containerID").with_details(id));
    }
    Ok(())
}

pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(CniError::invalid_env("interface name is empty"));
    }
    if name.len() > 15 {
        return Err(CniError::invalid_env("interface name is too long")
            .with_details("interface name should be less than 16 characters"));
    }
    if name == "." || name == ".." {
        return Err(CniError::invalid_env("interface name is . or .."));
    }
    if name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err(CniError::invalid_env("interface name contains / or : or whitespace characters").with_details(name));
    }
    Ok(())
}

/// ADD and DEL refuse a CNI_NETNS that is the plugin's own namespace (the node's, as a rule)
/// unless CNI_NETNS_OVERRIDE says so, before they change anything: a DEL would delete the
/// node's interface named CNI_IFNAME. The reference makes the same check only after the
/// plugin has acted.
fn check_netns_not_own(inv: &Invocation, var: &dyn Fn(&str) -> String) -> Result<(), CniError> {
    let over = var("CNI_NETNS_OVERRIDE");
    if over == "1" || over.eq_ignore_ascii_case("true") {
        return Ok(());
    }
    let Some(ns) = &inv.netns else { return Ok(()) };
    use std::os::unix::fs::MetadataExt;
    let (Ok(theirs), Ok(ours)) = (std::fs::metadata(ns), std::fs::metadata("/proc/self/ns/net")) else {
        return Ok(());
    };
    if theirs.dev() == ours.dev() && theirs.ino() == ours.ino() {
        return Err(CniError::new(
            code::INVALID_NETNS,
            "plugin's netns and netns from CNI_NETNS should not be the same",
        ));
    }
    Ok(())
}

/// For unit tests: an ADD of container `c` on `eth0` at 1.0.0, with `stdin` as the config and
/// `args` as CNI_ARGS.
#[cfg(test)]
pub fn test_invocation(stdin: &str, args: &str) -> Invocation {
    Invocation {
        command: Command::Add,
        container_id: "c".into(),
        netns: None,
        ifname: "eth0".into(),
        args: CniArgs::parse(args),
        args_raw: args.into(),
        path: vec![],
        stdin: stdin.as_bytes().to_vec(),
        version: SpecVersion::V1_0_0,
        conf: NetConf::parse(stdin.as_bytes(), false).unwrap(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::result::IpConfig;
    use std::collections::HashMap;

    fn add_ok(_: &Invocation) -> Result<CniResult, CniError> {
        Ok(CniResult {
            ips: vec![IpConfig { interface: None, address: "10.0.0.2/24".parse().unwrap(), gateway: None }],
            ..Default::default()
        })
    }

    fn add_fails(_: &Invocation) -> Result<CniResult, CniError> {
        Err(CniError::internal("boom"))
    }

    const P: PluginFns =
        PluginFns { add: add_ok, del: noop, check: noop, gc: noop, status: noop, versions: version::ALL };

    fn call(plugin: &PluginFns, env: &[(&str, &str)], stdin: &str) -> Outcome {
        let map: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let stdin = stdin.as_bytes().to_vec();
        dispatch("test", plugin, &|k| map.get(k).cloned(), &mut || Ok(stdin.clone()))
    }

    const FULL: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/nonexistent/ns"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ];

    fn with(over: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = FULL.iter().filter(|(k, _)| !over.iter().any(|(o, _)| o == k)).copied().collect();
        v.extend(over.iter().filter(|(_, val)| !val.is_empty()));
        v
    }

    fn err(o: &Outcome) -> CniError {
        assert_eq!(o.status, 1, "{o:?}");
        serde_json::from_str(&o.stdout).unwrap()
    }

    const CONF: &str = r#"{"cniVersion":"1.0.0","name":"n","type":"test"}"#;

    #[test]
    fn about_without_command() {
        let o = call(&P, &[], CONF);
        assert_eq!(o.status, 0);
        assert!(o.stdout.is_empty());
        assert!(o.stderr.starts_with("CNI test plugin"));
    }

    #[test]
    fn add_writes_result_at_config_version() {
        let o = call(&P, FULL, CONF);
        assert_eq!(o.status, 0, "{o:?}");
        assert!(o.stdout.contains("\"cniVersion\": \"1.0.0\""));
        let o = call(&P, FULL, r#"{"cniVersion":"0.2.0","name":"n"}"#);
        assert!(o.stdout.contains("\"ip4\""));
    }

    #[test]
    fn missing_env() {
        let e = err(&call(&P, &with(&[("CNI_IFNAME", ""), ("CNI_PATH", "")]), CONF));
        assert_eq!(e.code, 4);
        assert_eq!(e.msg, "required env variables [CNI_IFNAME,CNI_PATH] missing");
        // DEL does not need NETNS
        let o = call(&P, &with(&[("CNI_COMMAND", "DEL"), ("CNI_NETNS", "")]), CONF);
        assert_eq!(o.status, 0, "{o:?}");
        // VERSION needs nothing else and ignores stdin
        let o = call(&P, &[("CNI_COMMAND", "VERSION")], "garbage");
        assert!(o.stdout.starts_with("{\"cniVersion\":\"1.1.0\""));
    }

    #[test]
    fn validation_codes() {
        assert_eq!(err(&call(&P, FULL, "{bad json")).code, 6);
        assert_eq!(err(&call(&P, FULL, r#"{"cniVersion":"1.0.0"}"#)).code, 7);
        assert_eq!(err(&call(&P, FULL, r#"{"cniVersion":"7.0.0","name":"n"}"#)).code, 1);
        let e = err(&call(&P, &with(&[("CNI_CONTAINERID", "bad id")]), CONF));
        assert_eq!((e.code, e.msg.as_str(), e.details.as_str()), (4, "invalid characters in containerID", "bad id"));
        let e = err(&call(&P, &with(&[("CNI_IFNAME", "a-very-long-interface")]), CONF));
        assert_eq!((e.code, e.msg.as_str()), (4, "interface name is too long"));
        assert_eq!(err(&call(&P, &with(&[("CNI_IFNAME", "..")]), CONF)).msg, "interface name is . or ..");
        assert_eq!(err(&call(&P, &with(&[("CNI_IFNAME", "a:b")]), CONF)).code, 4);
        // env is validated before stdin is read, as in the reference
        assert_eq!(err(&call(&P, &with(&[("CNI_CONTAINERID", "bad id")]), "{bad json")).code, 4);
        // a bad container ID on a verb that does not need one is not looked at
        let gc = [("CNI_COMMAND", "GC"), ("CNI_PATH", "/x"), ("CNI_CONTAINERID", "bad id")];
        assert_eq!(call(&P, &gc, r#"{"cniVersion":"1.1.0","name":"n"}"#).status, 0);
        let e = err(&call(&P, &with(&[("CNI_COMMAND", "FROB")]), CONF));
        assert_eq!((e.code, e.msg.as_str()), (4, "unknown CNI_COMMAND: FROB"));
        // CNI_ARGS is the business of the plugins that read it, not of the dispatcher.
        assert_eq!(call(&P, &with(&[("CNI_ARGS", "A=b=c")]), CONF).status, 0);
    }

    #[test]
    fn version_gates() {
        let e = err(&call(&P, &with(&[("CNI_COMMAND", "CHECK")]), r#"{"cniVersion":"0.3.1","name":"n"}"#));
        assert_eq!((e.code, e.msg.as_str()), (1, "config version does not allow CHECK"));
        let gc = [("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")];
        let e = err(&call(&P, &gc, CONF));
        assert_eq!((e.code, e.msg.as_str()), (1, "config version does not allow GC"));
        let o = call(&P, &gc, r#"{"cniVersion":"1.1.0","name":"n"}"#);
        assert_eq!(o.status, 0, "{o:?}");
        // a version the gate can read but nobody speaks: code 1, not 6
        let e = err(&call(&P, &with(&[("CNI_COMMAND", "CHECK")]), r#"{"cniVersion":"1.2.0","name":"n"}"#));
        assert_eq!(e.code, 1);
        let e = err(&call(&P, &with(&[("CNI_COMMAND", "CHECK")]), r#"{"cniVersion":"0.3","name":"n"}"#));
        assert_eq!((e.code, e.msg.as_str()), (1, "config version does not allow CHECK"));
        let e = err(&call(&P, &with(&[("CNI_COMMAND", "CHECK")]), r#"{"cniVersion":"x.y","name":"n"}"#));
        assert_eq!(e.code, 6);
        let st = [("CNI_COMMAND", "STATUS"), ("CNI_PATH", "/x")];
        assert_eq!(err(&call(&P, &st, CONF)).msg, "config version does not allow STATUS");
    }

    #[test]
    fn plugin_errors_and_conversion_failures() {
        let p = PluginFns { add: add_fails, ..P };
        let e = err(&call(&p, FULL, CONF));
        assert_eq!((e.code, e.msg.as_str()), (999, "boom"));
        fn add_l2(_: &Invocation) -> Result<CniResult, CniError> {
            Ok(CniResult::default())
        }
        let p = PluginFns { add: add_l2, ..P };
        let e = err(&call(&p, FULL, r#"{"cniVersion":"0.2.0","name":"n"}"#));
        assert_eq!(e.msg, "cannot convert: no valid IP addresses");
    }

    #[test]
    fn own_netns_is_refused() {
        let o = call(&P, &with(&[("CNI_NETNS", "/proc/self/ns/net")]), CONF);
        assert_eq!(err(&o).code, 8);
        // Before the plugin acts.
        fn acts(_: &Invocation) -> Result<CniResult, CniError> {
            Err(CniError::new(100, "acted"))
        }
        let o = call(&PluginFns { add: acts, ..P }, &with(&[("CNI_NETNS", "/proc/self/ns/net")]), CONF);
        assert_eq!(err(&o).code, 8);
        let o = call(&P, &with(&[("CNI_NETNS", "/proc/self/ns/net"), ("CNI_NETNS_OVERRIDE", "1")]), CONF);
        assert_eq!(o.status, 0);
    }
}
