//! The runtime side of the spec, command-line compatible with libcni's cnitool:
//! `cnitool add|check|del|gc|status <network> [<netns-path>]`.
//!
//! Environment: NETCONFPATH (default /etc/cni/net.d), CNI_PATH, CNI_IFNAME (default eth0),
//! CNI_ARGS, CAP_ARGS (JSON capability args). Extensions: CNI_CACHE_DIR (default /var/lib/cni)
//! and, for gc, CNI_VALID_ATTACHMENTS (a JSON array of {"containerID","ifname"}; without it,
//! as in libcni's cnitool, every cached attachment of the network is stale, and the plugins'
//! GC is sent no list of valid attachments).

mod cache;
mod conf;
mod exec;

use crate::cni::config::valid_id;
use crate::cni::delegate::find_in_path;
use crate::cni::gc::Attachment;
use crate::cni::skel::validate_ifname;
use crate::cni::{CniError, CniResult, SpecVersion};
use argh::FromArgs;
use conf::ConfList;
use exec::{CallEnv, Meanwhile};
use serde_json::{Map, Value, json};
use std::path::PathBuf;

/// Drive CNI plugins as a container runtime does.
#[derive(FromArgs)]
struct Cli {
    /// add, check, del, gc or status
    #[argh(positional)]
    verb: String,
    /// the network's name in NETCONFPATH
    #[argh(positional)]
    network: String,
    /// path of the network namespace (not needed for gc and status)
    #[argh(positional)]
    netns: Option<String>,
}

/// One attachment: what a runtime knows about a container on a network.
struct Runtime {
    container_id: String,
    netns: String,
    ifname: String,
    args: Vec<[String; 2]>,
    cap_args: Map<String, Value>,
    path: Vec<PathBuf>,
    cache_dir: PathBuf,
}

impl Runtime {
    fn args_string(&self) -> String {
        self.args.iter().map(|[k, v]| format!("{k}={v}")).collect::<Vec<_>>().join(";")
    }
}

pub fn main(argv: &[String]) -> i32 {
    let name = argv.first().map(String::as_str).unwrap_or("cnitool");
    let rest: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    let cli = match Cli::from_args(&[name], &rest) {
        Ok(c) => c,
        Err(early) => {
            if early.status.is_ok() {
                print!("{}", early.output);
                return 0;
            }
            eprint!("{}", early.output);
            return 1;
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

fn run(cli: Cli) -> Result<(), String> {
    let dir = PathBuf::from(env("NETCONFPATH").filter(|s| !s.is_empty()).unwrap_or_else(|| "/etc/cni/net.d".into()));
    let list = conf::load(&dir, &cli.network)?;
    let cap_args: Map<String, Value> = match env("CAP_ARGS").filter(|s| !s.is_empty()) {
        Some(s) => serde_json::from_str(&s).map_err(|e| format!("parsing CAP_ARGS: {e}"))?,
        None => Map::new(),
    };
    let args = match env("CNI_ARGS").filter(|s| !s.is_empty()) {
        Some(s) => parse_args(&s)?,
        None => Vec::new(),
    };
    let ifname = env("CNI_IFNAME").filter(|s| !s.is_empty()).unwrap_or_else(|| "eth0".into());
    let netns = match &cli.netns {
        Some(p) => absolute(p),
        None if matches!(cli.verb.as_str(), "gc" | "status") => String::new(),
        None => return Err(usage()),
    };
    let container_id = format!("cnitool-{}", &crate::util::sha512::hex(netns.as_bytes())[..20]);
    let rt = Runtime {
        container_id,
        netns,
        ifname,
        args,
        cap_args,
        path: std::env::split_paths(&env("CNI_PATH").unwrap_or_default())
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        cache_dir: PathBuf::from(
            env("CNI_CACHE_DIR").filter(|s| !s.is_empty()).unwrap_or_else(|| "/var/lib/cni".into()),
        ),
    };
    match cli.verb.as_str() {
        "add" => {
            let result = add(&list, &rt)?;
            let _ = crate::util::out::write_stdout(crate::cni::json::to_string_pretty(&result).as_bytes());
            Ok(())
        }
        "check" => check(&list, &rt),
        "del" => del(&list, &rt),
        "gc" => {
            let valid: Option<Vec<Attachment>> = match env("CNI_VALID_ATTACHMENTS").filter(|s| !s.is_empty()) {
                Some(s) => Some(
                    crate::cni::json::from_slice(s.as_bytes())
                        .map_err(|e| format!("parsing CNI_VALID_ATTACHMENTS: {e}"))?,
                ),
                None => None,
            };
            gc(&list, &rt, valid.as_deref())
        }
        "status" => status(&list, &rt),
        _ => Err(usage()),
    }
}

fn usage() -> String {
    "usage: cnitool add|check|del|gc|status <net> <netns>".into()
}

/// Go's `filepath.Abs`: join with the working directory and clean (`.`, `..`, `//`, a trailing
/// `/`), so the container ID derived from it is the one libcni's cnitool derives.
fn absolute(p: &str) -> String {
    let joined = if p.starts_with('/') {
        p.to_string()
    } else {
        let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
        format!("{cwd}/{p}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

fn parse_args(s: &str) -> Result<Vec<[String; 2]>, String> {
    s.split(';')
        .map(|pair| match pair.split('=').collect::<Vec<_>>()[..] {
            [k, v] if !k.is_empty() && !v.is_empty() => Ok([k.to_string(), v.to_string()]),
            _ => Err(format!("invalid CNI_ARGS pair \"{pair}\"")),
        })
        .collect()
}

fn describe(plugin: &Map<String, Value>, net: &str) -> String {
    let t = plugin.get("type").and_then(Value::as_str).unwrap_or_default();
    format!("plugin type=\"{t}\" name=\"{net}\"")
}

/// The config one plugin receives: name, version, prevResult and runtimeConfig injected.
fn build_one(list: &ConfList, plugin: &Map<String, Value>, prev: Option<&Value>, rt: &Runtime) -> Vec<u8> {
    let mut conf = plugin.clone();
    conf.insert("name".into(), Value::String(list.name.clone()));
    conf.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
    if let Some(p) = prev {
        conf.insert("prevResult".into(), p.clone());
    }
    let mut rc = Map::new();
    if let Some(Value::Object(caps)) = plugin.get("capabilities") {
        for (cap, on) in caps {
            if let (Some(true), Some(v)) = (on.as_bool(), rt.cap_args.get(cap)) {
                rc.insert(cap.clone(), v.clone());
            }
        }
    }
    if !rc.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(rc));
    }
    serde_json::to_vec(&conf).unwrap_or_default()
}

/// Run `plugin` for `verb`, doing `meanwhile`'s work while it runs.
fn call(
    plugin: &Map<String, Value>,
    verb: &str,
    stdin: &[u8],
    rt: &Runtime,
    meanwhile: &mut dyn Meanwhile,
) -> Result<Vec<u8>, CniError> {
    let t = plugin.get("type").and_then(Value::as_str).unwrap_or_default();
    let bin = find_in_path(t, &rt.path)?;
    let per_container = matches!(verb, "ADD" | "DEL" | "CHECK");
    let args = rt.args_string();
    let env = CallEnv {
        command: verb,
        container_id: if per_container { &rt.container_id } else { "" },
        netns: if per_container { &rt.netns } else { "" },
        ifname: if per_container { &rt.ifname } else { "" },
        args: if per_container { &args } else { "" },
        path: &rt.path,
    };
    exec::run(&bin, &env, stdin, meanwhile)
}

fn validate(list: &ConfList, rt: &Runtime) -> Result<(), String> {
    if !valid_id(&rt.container_id) {
        return Err(format!("invalid characters in containerID: {}", rt.container_id));
    }
    if !valid_id(&list.name) {
        return Err(format!("invalid characters found in network name: {}", list.name));
    }
    validate_ifname(&rt.ifname).map_err(|e| e.to_string())
}

fn add(list: &ConfList, rt: &Runtime) -> Result<Value, String> {
    validate(list, rt)?;
    let mut work = AddWork { list, rt, pending: None, begun: false, last: false, read: None, entry: None };
    let mut prev: Option<Value> = None;
    for (i, plugin) in list.plugins.iter().enumerate() {
        work.last = i + 1 == list.plugins.len();
        let stdin = build_one(list, plugin, prev.as_ref(), rt);
        let out = call(plugin, "ADD", &stdin, rt, &mut work)
            .map_err(|e| format!("{} failed (add): {e}", describe(plugin, &list.name)))?;
        let v = work
            .read
            .take()
            .unwrap_or_else(|| read_result(&out, list))
            .map_err(|e| format!("{} failed (add): invalid result: {e}", describe(plugin, &list.name)))?;
        prev = Some(v);
    }
    let result = prev.unwrap_or(Value::Null);
    let entry = work.entry.take().unwrap_or_else(|| cache_entry(list, rt, &result));
    cache::store(&rt.cache_dir, &entry, work.pending)?;
    Ok(result)
}

/// What the client of an ADD does while the plugins run (see `spawn::Meanwhile`): while the
/// first sets up, it begins the cache file (`cache::Pending`); once the last has replied, while
/// the kernel tears that process down, it reads the result and writes the cache entry into the
/// file, still unnamed: the file is named (`cache::store`) only once the exit says success.
struct AddWork<'a> {
    list: &'a ConfList,
    rt: &'a Runtime,
    pending: Option<cache::Pending>,
    begun: bool,
    /// The plugin running is the list's last.
    last: bool,
    /// Its reply, read as a result.
    read: Option<Result<Value, String>>,
    /// The cache entry of that result, as written in `pending`.
    entry: Option<cache::Entry>,
}

impl Meanwhile for AddWork<'_> {
    fn started(&mut self) {
        if !self.begun {
            self.begun = true;
            self.pending = cache::Pending::begin(&self.rt.cache_dir);
        }
    }

    fn replied(&mut self, reply: &[u8]) {
        if !self.last {
            return;
        }
        let read = read_result(reply, self.list);
        if let Ok(v) = &read {
            let entry = cache_entry(self.list, self.rt, v);
            if let Some(p) = self.pending.as_mut() {
                p.fill(&entry);
            }
            self.entry = Some(entry);
        }
        self.read = Some(read);
    }
}

/// A plugin's ADD reply as a result, with the list's version where it names none.
fn read_result(reply: &[u8], list: &ConfList) -> Result<Value, String> {
    let mut v: Value = serde_json::from_slice(reply).map_err(|e| e.to_string())?;
    if let Some(o) = v.as_object_mut() {
        o.entry("cniVersion").or_insert_with(|| Value::String(list.cni_version.clone()));
    }
    Ok(v)
}

fn cache_entry(list: &ConfList, rt: &Runtime, result: &Value) -> cache::Entry {
    cache::Entry {
        kind: cache::KIND.into(),
        container_id: rt.container_id.clone(),
        config: crate::util::base64::encode(&list.bytes),
        if_name: rt.ifname.clone(),
        network_name: list.name.clone(),
        netns: rt.netns.clone(),
        cni_args: rt.args.clone(),
        capability_args: rt.cap_args.clone(),
        result: Some(result.clone()),
    }
}

/// The cached ADD result, converted to the list's version.
fn cached_result(list: &ConfList, rt: &Runtime) -> Result<Option<Value>, String> {
    let Some(entry) = cache::load(&rt.cache_dir, &list.name, &rt.container_id, &rt.ifname) else { return Ok(None) };
    let Some(raw) = entry.result else { return Ok(None) };
    let Some(v) = list.version() else { return Ok(Some(raw)) };
    let bytes = serde_json::to_vec(&raw).unwrap_or_default();
    let conv = CniResult::from_reply(&bytes, v)
        .and_then(|r| r.to_json(v))
        .map_err(|e| format!("failed to convert cached result to config version \"{v}\": {e}"))?;
    serde_json::from_str(&conv).map(Some).map_err(|e| e.to_string())
}

fn check(list: &ConfList, rt: &Runtime) -> Result<(), String> {
    if !list.at_least(SpecVersion::V0_4_0) {
        return Err(format!("configuration version \"{}\" does not support the CHECK command", list.cni_version));
    }
    if list.disable_check {
        return Ok(());
    }
    let prev =
        cached_result(list, rt).map_err(|e| format!("failed to get network \"{}\" cached result: {e}", list.name))?;
    for plugin in &list.plugins {
        let stdin = build_one(list, plugin, prev.as_ref(), rt);
        call(plugin, "CHECK", &stdin, rt, &mut ())
            .map_err(|e| format!("{} failed (check): {e}", describe(plugin, &list.name)))?;
    }
    Ok(())
}

fn del(list: &ConfList, rt: &Runtime) -> Result<(), String> {
    let prev = if list.at_least(SpecVersion::V0_4_0) {
        // A cache entry that cannot be read must not block DEL forever: go on without prevResult.
        cached_result(list, rt).unwrap_or_else(|e| {
            crate::logger::warn(format_args!("network \"{}\": ignoring unusable cached result: {e}", list.name));
            None
        })
    } else {
        None
    };
    for plugin in list.plugins.iter().rev() {
        let stdin = build_one(list, plugin, prev.as_ref(), rt);
        call(plugin, "DEL", &stdin, rt, &mut ())
            .map_err(|e| format!("{} failed (delete): {e}", describe(plugin, &list.name)))?;
    }
    cache::remove(&rt.cache_dir, &list.name, &rt.container_id, &rt.ifname);
    Ok(())
}

/// libcni's GC: unless `disableGC`, DEL every cached attachment not in `valid` (with its cached
/// netns and args), then, from 1.1.0 on, send GC to every plugin, with the valid set when one
/// was given. Without one (libcni's cnitool never gives one) every cached attachment is stale,
/// but the plugins are told nothing of which are valid, so they keep what they hold for
/// attachments this cache does not know: others' pods.
/// All errors are reported.
fn gc(list: &ConfList, rt: &Runtime, valid: Option<&[Attachment]>) -> Result<(), String> {
    if list.disable_gc {
        return Ok(());
    }
    let mut errors = Vec::new();
    for entry in cache::list(&rt.cache_dir, &list.name) {
        let att = Attachment { container_id: entry.container_id.clone(), ifname: entry.if_name.clone() };
        if valid.is_some_and(|v| v.contains(&att)) {
            continue;
        }
        let stale = Runtime {
            container_id: entry.container_id.clone(),
            netns: entry.netns.clone(),
            ifname: entry.if_name.clone(),
            args: entry.cni_args.clone(),
            cap_args: entry.capability_args.clone(),
            path: rt.path.clone(),
            cache_dir: rt.cache_dir.clone(),
        };
        if let Err(e) = del(list, &stale) {
            errors.push(e);
        }
    }
    if list.at_least(SpecVersion::V1_1_0) {
        let attachments = valid.map(|v| serde_json::to_value(v).unwrap_or(json!([])));
        for plugin in &list.plugins {
            let mut conf: Map<String, Value> =
                serde_json::from_slice(&build_one(list, plugin, None, rt)).unwrap_or_default();
            if let Some(a) = &attachments {
                conf.insert("cni.dev/valid-attachments".into(), a.clone());
                conf.insert("cni.dev/attachments".into(), a.clone());
            }
            let stdin = serde_json::to_vec(&conf).unwrap_or_default();
            if let Err(e) = call(plugin, "GC", &stdin, rt, &mut ()) {
                errors.push(format!("{} failed (gc): {e}", describe(plugin, &list.name)));
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
}

/// STATUS of every plugin; before 1.1.0 there is no STATUS and the network counts as ready.
fn status(list: &ConfList, rt: &Runtime) -> Result<(), String> {
    if !list.at_least(SpecVersion::V1_1_0) {
        return Ok(());
    }
    for plugin in &list.plugins {
        let stdin = build_one(list, plugin, None, rt);
        call(plugin, "STATUS", &stdin, rt, &mut ())
            .map_err(|e| format!("{} failed (status): {e}", describe(plugin, &list.name)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cni_args_pairs() {
        assert_eq!(parse_args("A=1;B=2").unwrap()[1], ["B".to_string(), "2".to_string()]);
        for bad in ["novalue", "B=x=y", "A=", "=1"] {
            assert!(parse_args(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn netns_paths_are_cleaned_like_go() {
        assert_eq!(absolute("/run/netns/x/"), "/run/netns/x");
        assert_eq!(absolute("/run//netns/./a/../x"), "/run/netns/x");
        assert!(absolute("rel").ends_with("/rel"));
        assert!(absolute("rel").starts_with('/'));
    }

    #[test]
    fn runtime_config_from_capabilities() {
        let list = ConfList::from_bytes(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"portmap","capabilities":{"portMappings":true,"bandwidth":false}}]}"#,
        )
        .unwrap();
        let mut cap_args = Map::new();
        cap_args.insert("portMappings".into(), json!([{"hostPort":80}]));
        cap_args.insert("bandwidth".into(), json!({}));
        let rt = Runtime {
            container_id: "c".into(),
            netns: "/x".into(),
            ifname: "eth0".into(),
            args: vec![],
            cap_args,
            path: vec![],
            cache_dir: PathBuf::from("/nonexistent"),
        };
        let v: Value = serde_json::from_slice(&build_one(&list, &list.plugins[0], Some(&json!({"a":1})), &rt)).unwrap();
        assert_eq!(v["runtimeConfig"]["portMappings"][0]["hostPort"], 80);
        assert!(v["runtimeConfig"].get("bandwidth").is_none());
        assert_eq!(v["prevResult"]["a"], 1);
        assert_eq!(v["name"], "n");
        assert_eq!(v["cniVersion"], "1.0.0");
    }

    #[test]
    fn valid_attachments_need_both_keys() {
        let v: Vec<Attachment> =
            crate::cni::json::from_slice(br#"[{"ifname":"eth1","containerID":"b"},{"ContainerID":"c","IfName":"e"}]"#)
                .unwrap();
        assert_eq!((v[0].container_id.as_str(), v[0].ifname.as_str()), ("b", "eth1"));
        assert_eq!((v[1].container_id.as_str(), v[1].ifname.as_str()), ("c", "e"));
        // An entry without ifname would read as every attachment's stale sibling: refused.
        let e = crate::cni::json::from_slice::<Vec<Attachment>>(br#"[{"containerID":"a"}]"#).err();
        assert_eq!(e.map(|e| e.to_string()).as_deref(), Some("[0]: missing field `ifname`"));
    }
}
