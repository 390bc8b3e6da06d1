//! The result cache at `<cacheDir>/results/<net>-<cid>-<ifname>`, in libcni's `cniCacheV1` layout,
//! so that DEL, CHECK and GC see what ADD returned (and libcni-based tools read our entries).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

pub const KIND: &str = "cniCacheV1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub kind: String,
    #[serde(rename = "containerId")]
    pub container_id: String,
    /// base64 of the list's bytes, as Go writes a []byte.
    pub config: String,
    #[serde(rename = "ifName")]
    pub if_name: String,
    #[serde(rename = "networkName")]
    pub network_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    #[serde(rename = "cniArgs", default, skip_serializing_if = "Vec::is_empty")]
    pub cni_args: Vec<[String; 2]>,
    #[serde(rename = "capabilityArgs", default, skip_serializing_if = "Map::is_empty")]
    pub capability_args: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

pub fn path(dir: &Path, net: &str, cid: &str, ifname: &str) -> PathBuf {
    dir.join("results").join(format!("{net}-{cid}-{ifname}"))
}

/// Write atomically: a crash of the process never leaves a half-written entry. Not synced, as
/// libcni does not sync it either: the attachments it describes do not outlive the node, and an
/// entry a power loss emptied is ignored by DEL (`unusable cached result`).
pub fn store(dir: &Path, entry: &Entry) -> Result<(), String> {
    let file = path(dir, &entry.network_name, &entry.container_id, &entry.if_name);
    let parent = file.parent().unwrap_or(dir);
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    let bytes = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
    let tmp = parent.join(format!(".tmp-{}-{}", std::process::id(), entry.container_id));
    let write = || -> std::io::Result<()> {
        use nix::fcntl::OFlag;
        use std::io::Write;
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC;
        let mut f = crate::util::fs::open(&tmp, flags, 0o600)?;
        f.write_all(&bytes)?;
        std::fs::rename(&tmp, &file)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("failed to set network \"{}\" cached result: {e}", entry.network_name)
    })
}

pub fn load(dir: &Path, net: &str, cid: &str, ifname: &str) -> Option<Entry> {
    let bytes = crate::util::fs::read(&path(dir, net, cid, ifname)).ok()?;
    crate::cni::json::from_slice::<Entry>(&bytes).ok().filter(|e| e.kind == KIND)
}

pub fn remove(dir: &Path, net: &str, cid: &str, ifname: &str) {
    let _ = std::fs::remove_file(path(dir, net, cid, ifname));
}

/// Every cached attachment of network `net`.
pub fn list(dir: &Path, net: &str) -> Vec<Entry> {
    let Ok(entries) = std::fs::read_dir(dir.join("results")) else { return Vec::new() };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{net}-")))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| crate::cni::json::from_slice::<Entry>(&b).ok())
        .filter(|e| e.kind == KIND && e.network_name == net)
        .collect()
}
