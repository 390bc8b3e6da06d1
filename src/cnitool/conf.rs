//! Loading network configurations the way libcni does: `.conflist` files first (sorted),
//! then single `.conf`/`.json` files, which become one-plugin lists. A list's plugins are
//! followed by those in `<dir>/<network name>/*.conf` (sorted), as spec 1.1.0 and libcni 1.3
//! aggregate them, unless the list sets `loadOnlyInlinedPlugins`.

use crate::cni::SpecVersion;
use crate::util::dirents;
use nix::fcntl::OFlag;
use serde_json::{Map, Value};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct ConfList {
    pub name: String,
    /// The version every plugin is called with.
    pub cni_version: String,
    pub disable_check: bool,
    pub disable_gc: bool,
    /// Only the list's own plugins, none from the network's sibling directory.
    pub load_only_inlined: bool,
    pub plugins: Vec<Map<String, Value>>,
    /// The list as bytes, cached with each attachment.
    pub bytes: Vec<u8>,
}

impl ConfList {
    pub fn from_bytes(bytes: &[u8]) -> Result<ConfList, String> {
        let raw: Map<String, Value> =
            crate::cni::json::from_slice(bytes).map_err(|e| format!("error parsing configuration list: {e}"))?;
        let name = raw.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        if name.is_empty() {
            return Err("error parsing configuration list: no name".into());
        }
        // As libcni (1.2 on) reads them: a boolean, or "true"/"false" in any case.
        let flag = |k: &str| match raw.get(k) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
            Some(Value::String(s)) => Err(format!("error parsing configuration list: invalid value \"{s}\" for {k}")),
            Some(v) => Err(format!("error parsing configuration list: {k} value {v} is not a boolean or string")),
        };
        let load_only_inlined = flag("loadOnlyInlinedPlugins")?;
        // Without `plugins`, the plugins all come from the sibling directory.
        let plugins: Vec<Map<String, Value>> = match raw.get("plugins") {
            None if !load_only_inlined => Vec::new(),
            None => {
                return Err(
                    "error parsing configuration list: `loadOnlyInlinedPlugins` is true, and no 'plugins' key".into()
                );
            }
            Some(Value::Array(list)) if list.is_empty() => {
                return Err("error parsing configuration list: no plugins in list".into());
            }
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, p)| plugin(p).map_err(|e| format!("error parsing configuration list: plugin {i} {e}")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("error parsing configuration list: invalid 'plugins' type".into()),
        };
        Ok(ConfList {
            cni_version: pick_version(&raw),
            name,
            disable_check: flag("disableCheck")?,
            disable_gc: flag("disableGC")?,
            load_only_inlined,
            plugins,
            bytes: bytes.to_vec(),
        })
    }

    /// Append the plugins of `<dir>/<name>/*.conf`, in file name order (unless the list loads
    /// only its own); a list left without any plugin is an error.
    fn add_sibling_plugins(&mut self, dir: &Path) -> Result<(), String> {
        // A name that is not one path segment names no sibling directory.
        let one_segment = !self.name.contains('/') && self.name != "." && self.name != "..";
        if !self.load_only_inlined && one_segment {
            for f in files(&dir.join(&self.name), &["conf"])? {
                let bytes = crate::util::fs::read(&f).map_err(|e| format!("error reading {}: {e}", f.display()))?;
                let value: Value = crate::cni::json::from_slice(&bytes)
                    .map_err(|e| format!("{}: error parsing configuration: {e}", f.display()))?;
                self.plugins.push(plugin(&value).map_err(|e| format!("{}: plugin {e}", f.display()))?);
            }
        }
        if self.plugins.is_empty() {
            return Err(format!("no plugin configs found for network \"{}\"", self.name));
        }
        Ok(())
    }

    /// A single plugin config becomes a one-plugin list.
    pub fn from_single(bytes: &[u8]) -> Result<ConfList, String> {
        let raw: Map<String, Value> =
            crate::cni::json::from_slice(bytes).map_err(|e| format!("error parsing configuration: {e}"))?;
        let mut list = Map::new();
        list.insert("name".into(), raw.get("name").cloned().unwrap_or(Value::Null));
        list.insert("cniVersion".into(), raw.get("cniVersion").cloned().unwrap_or(Value::String(String::new())));
        list.insert("plugins".into(), Value::Array(vec![Value::Object(raw)]));
        let bytes = serde_json::to_vec(&list).map_err(|e| e.to_string())?;
        ConfList::from_bytes(&bytes)
    }

    pub fn version(&self) -> Option<SpecVersion> {
        SpecVersion::parse(&self.cni_version)
    }

    /// True when the list's version is at least `min` (unknown versions count as new).
    pub fn at_least(&self, min: SpecVersion) -> bool {
        self.version().is_none_or(|v| v >= min)
    }
}

/// One plugin configuration: an object with a `type`.
fn plugin(v: &Value) -> Result<Map<String, Value>, String> {
    let p = v.as_object().ok_or("is not an object")?;
    if p.get("type").and_then(Value::as_str).unwrap_or_default().is_empty() {
        return Err("is missing 'type'".into());
    }
    Ok(p.clone())
}

/// `cniVersion`, or the highest version in `cniVersion` ∪ `cniVersions` that we speak.
fn pick_version(raw: &Map<String, Value>) -> String {
    let main = raw.get("cniVersion").and_then(Value::as_str).unwrap_or_default().to_string();
    let mut best = SpecVersion::parse(&main).filter(|_| !main.is_empty());
    if let Some(Value::Array(list)) = raw.get("cniVersions") {
        for v in list.iter().filter_map(Value::as_str).filter_map(SpecVersion::parse) {
            if best.is_none_or(|b| v > b) {
                best = Some(v);
            }
        }
    }
    best.map(|v| v.as_str().to_string()).unwrap_or(main)
}

/// The files (or links to files) of `dir` with one of the extensions `exts`, sorted; none
/// when `dir` is not there.
fn files(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>, String> {
    let opened = crate::util::fs::open(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0);
    let buf = match opened.and_then(dirents::read_all) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("reading {}: {e}", dir.display())),
    };
    let mut out = Vec::new();
    let mut at = 0;
    while let Some((e, next)) = dirents::entry_at(&buf, at) {
        at = next;
        let name = Path::new(OsStr::from_bytes(&buf[e.name]));
        if !name.extension().and_then(|x| x.to_str()).is_some_and(|x| exts.contains(&x)) {
            continue;
        }
        let path = dir.join(name);
        // Only links, and entries the filesystem gives no type, need a look at what they are.
        let file = match e.kind {
            dirents::DT_REG => true,
            dirents::DT_LNK | dirents::DT_UNKNOWN => path.is_file(),
            _ => false,
        };
        if file {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Find the network `name` in `dir`.
pub fn load(dir: &Path, name: &str) -> Result<ConfList, String> {
    let read = |p: &Path| crate::util::fs::read(p).map_err(|e| format!("error reading {}: {e}", p.display()));
    for f in files(dir, &["conflist"])? {
        let mut list = ConfList::from_bytes(&read(&f)?).map_err(|e| format!("{}: {e}", f.display()))?;
        if list.name == name {
            list.add_sibling_plugins(dir)?;
            return Ok(list);
        }
    }
    for f in files(dir, &["conf", "json"])? {
        let bytes = read(&f)?;
        let raw: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", f.display()))?;
        if raw.get("name").and_then(Value::as_str) == Some(name) {
            return ConfList::from_single(&bytes).map_err(|e| format!("{}: {e}", f.display()));
        }
    }
    Err(format!("no net configuration with name \"{name}\" in {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_parsing() {
        let l = ConfList::from_bytes(
            br#"{"cniVersion":"0.4.0","cniVersions":["1.0.0","9.9.9"],"name":"n","disableCheck":true,"plugins":[{"type":"loopback"}]}"#,
        )
        .unwrap();
        assert_eq!(l.cni_version, "1.0.0");
        assert!(l.disable_check);
        assert!(ConfList::from_bytes(br#"{"name":"n","plugins":[]}"#).is_err());
        assert!(ConfList::from_bytes(br#"{"name":"n","plugins":[{}]}"#).is_err());
        assert!(ConfList::from_bytes(br#"{"plugins":[{"type":"x"}]}"#).is_err());
        // Flags as libcni reads them: booleans, or "true"/"false" in any case.
        let l =
            ConfList::from_bytes(br#"{"name":"n","disableCheck":"tRuE","disableGC":"False","plugins":[{"type":"x"}]}"#);
        let l = l.unwrap();
        assert!(l.disable_check && !l.disable_gc);
        let e = ConfList::from_bytes(br#"{"name":"n","disableGC":"0","plugins":[{"type":"x"}]}"#).unwrap_err();
        assert_eq!(e, r#"error parsing configuration list: invalid value "0" for disableGC"#);
        assert!(ConfList::from_bytes(br#"{"name":"n","disableGC":null,"plugins":[{"type":"x"}]}"#).is_err());
        assert!(ConfList::from_bytes(br#"{"name":"n","disableGC":1,"plugins":[{"type":"x"}]}"#).is_err());
        let s = ConfList::from_single(br#"{"cniVersion":"0.2.0","name":"lo","type":"loopback"}"#).unwrap();
        assert_eq!((s.name.as_str(), s.cni_version.as_str(), s.plugins.len()), ("lo", "0.2.0", 1));
    }

    /// Files and links to files count, in name order; directories, dangling links and other
    /// extensions do not.
    #[test]
    fn which_files_are_configs() {
        let scratch = crate::util::scratch::Scratch::new("conffiles");
        let dir = scratch.0.clone();
        std::fs::create_dir_all(&dir).unwrap();
        let w = |p: &str| std::fs::write(dir.join(p), "{}").unwrap();
        w("20-b.conflist");
        w("real.txt");
        w("x.conf");
        std::os::unix::fs::symlink(dir.join("real.txt"), dir.join("10-a.conflist")).unwrap();
        std::os::unix::fs::symlink(dir.join("gone"), dir.join("30-c.conflist")).unwrap();
        std::fs::create_dir(dir.join("40-d.conflist")).unwrap();
        let names = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect()
        };
        assert_eq!(names(files(&dir, &["conflist"]).unwrap()), ["10-a.conflist", "20-b.conflist"]);
        assert_eq!(names(files(&dir, &["conf", "json"]).unwrap()), ["x.conf"]);
        assert!(files(&dir.join("none"), &["conf"]).unwrap().is_empty());
        assert!(files(&dir.join("x.conf"), &["conf"]).unwrap_err().starts_with("reading "));
    }

    /// Spec 1.1.0 / libcni 1.3: plugins from `<dir>/<network>/*.conf` follow the list's own.
    #[test]
    fn plugins_from_the_sibling_directory() {
        let scratch = crate::util::scratch::Scratch::new("confdir");
        let dir = scratch.0.clone();
        std::fs::create_dir_all(dir.join("net")).unwrap();
        let w = |p: &str, s: &str| std::fs::write(dir.join(p), s).unwrap();
        w("10-net.conflist", r#"{"cniVersion":"1.1.0","name":"net","plugins":[{"type":"bridge"}]}"#);
        w("net/20-b.conf", r#"{"type":"tuning"}"#);
        w("net/10-a.conf", r#"{"type":"portmap"}"#);
        w("net/ignored.json", r#"{"type":"x"}"#);
        let types = |l: &ConfList| -> Vec<String> {
            l.plugins.iter().map(|p| p["type"].as_str().unwrap_or_default().to_string()).collect()
        };
        assert_eq!(types(&load(&dir, "net").unwrap()), ["bridge", "portmap", "tuning"]);
        // Only the inlined ones when asked.
        w("10-net.conflist", r#"{"name":"net","loadOnlyInlinedPlugins":true,"plugins":[{"type":"bridge"}]}"#);
        assert_eq!(types(&load(&dir, "net").unwrap()), ["bridge"]);
        // A list of only sibling plugins; none at all is an error, as is a bad one.
        w("10-net.conflist", r#"{"cniVersion":"1.1.0","name":"net"}"#);
        assert_eq!(types(&load(&dir, "net").unwrap()), ["portmap", "tuning"]);
        w("net/30-c.conf", r#"{"name":"no type"}"#);
        assert!(load(&dir, "net").unwrap_err().contains("30-c.conf: plugin is missing 'type'"));
        std::fs::remove_dir_all(dir.join("net")).unwrap();
        assert!(load(&dir, "net").unwrap_err().contains("no plugin configs found"));
        w("10-net.conflist", r#"{"name":"net","loadOnlyInlinedPlugins":true}"#);
        assert!(load(&dir, "net").unwrap_err().contains("`loadOnlyInlinedPlugins` is true, and no 'plugins' key"));
    }
}
