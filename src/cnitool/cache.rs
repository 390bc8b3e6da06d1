//! The result cache at `<cacheDir>/results/<net>-<cid>-<ifname>`, in libcni's `cniCacheV1` layout,
//! so that DEL, CHECK and GC see what ADD returned (and libcni-based tools read our entries).

use crate::util::fs as ufs;
use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag};
use nix::unistd::linkat;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
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

/// An entry's file begun before its content is known: created unnamed (O_TMPFILE) in the
/// results directory while the client waits for the first plugin, so that allocating its
/// inode, on some filesystems the costliest step of writing an entry (ext4 without a journal
/// skips every inode of the group freed in the last minutes), is not on the ADD's path. Having
/// no name, it leaves nothing behind when the ADD fails or the process dies. Its content can
/// be written before the ADD is known to have succeeded (`fill`): only `store` names it.
pub struct Pending {
    file: File,
    /// Whether `fill` has written the entry in it, or tried and failed (a file left partly
    /// written is never named: `store` writes a file of its own then).
    state: Fill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    Empty,
    Filled,
    Spoiled,
}

impl Pending {
    /// None where that cannot be done (a filesystem without O_TMPFILE): `store` then writes the
    /// entry as it would without.
    pub fn begin(dir: &Path) -> Option<Pending> {
        let results = dir.join("results");
        // The directory is made only when it is not there yet (on every ADD but the first, a
        // mkdir that finds it and a stat that checks it are two system calls for nothing).
        let open = || ufs::open(&results, OFlag::O_TMPFILE | OFlag::O_WRONLY, 0o600);
        let file = match open() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                ufs::make_dir(&results, 0o700).ok()?;
                open()
            }
            opened => opened,
        };
        Some(Pending { file: file.ok()?, state: Fill::Empty })
    }

    /// Write `entry` in the file, still unnamed; whether the file holds it. Once only: after a
    /// failed write the file is spoiled (it may hold part of the entry), and `store` writes a
    /// file of its own.
    pub fn fill(&mut self, entry: &Entry) -> bool {
        if self.state == Fill::Empty {
            let written = serde_json::to_vec(entry).is_ok_and(|bytes| self.file.write_all(&bytes).is_ok());
            self.state = if written { Fill::Filled } else { Fill::Spoiled };
        }
        self.state == Fill::Filled
    }

    /// Give the written file the name `to`: AT_EMPTY_PATH can be refused to a process without
    /// CAP_DAC_READ_SEARCH, the file's /proc/self/fd link cannot.
    fn link(&self, to: &Path) -> nix::Result<()> {
        match linkat(&self.file, "", AT_FDCWD, to, AtFlags::AT_EMPTY_PATH) {
            Err(Errno::EPERM | Errno::ENOENT | Errno::EINVAL) => self.link_by_proc(to),
            other => other,
        }
    }

    fn link_by_proc(&self, to: &Path) -> nix::Result<()> {
        let fd = PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()));
        linkat(AT_FDCWD, &fd, AT_FDCWD, to, AtFlags::AT_SYMLINK_FOLLOW)
    }
}

/// Write atomically: a crash of the process never leaves a half-written entry. Not synced, as
/// libcni does not sync it either: the attachments it describes do not outlive the node, and an
/// entry a power loss emptied is ignored by DEL (`unusable cached result`). With a `pending`
/// file, the entry is written in it (unless `fill` did) and it is given the entry's name
/// (through a temp name and a rename when an entry of that name is there); without one, or
/// when that fails, a temp file is written and renamed.
pub fn store(dir: &Path, entry: &Entry, pending: Option<Pending>) -> Result<(), String> {
    let file = path(dir, &entry.network_name, &entry.container_id, &entry.if_name);
    let parent = file.parent().unwrap_or(dir);
    let tmp = parent.join(format!(".tmp-{}-{}", std::process::id(), entry.container_id));
    let replace = || -> std::io::Result<()> {
        std::fs::rename(&tmp, &file).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    };
    if let Some(mut p) = pending
        && p.fill(entry)
    {
        match p.link(&file) {
            Ok(()) => return Ok(()),
            Err(Errno::EEXIST) => {
                let _ = std::fs::remove_file(&tmp);
                if p.link(&tmp).is_ok() && replace().is_ok() {
                    return Ok(());
                }
            }
            Err(_) => {}
        }
    }
    ufs::make_dir(parent, 0o700).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    let bytes = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
    let write = || -> std::io::Result<()> {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC;
        let mut f = ufs::open(&tmp, flags, 0o600)?;
        f.write_all(&bytes)?;
        replace()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn entry(result: &str) -> Entry {
        Entry {
            kind: KIND.into(),
            container_id: "c1".into(),
            config: String::new(),
            if_name: "eth0".into(),
            network_name: "n".into(),
            netns: String::new(),
            cni_args: Vec::new(),
            capability_args: Map::new(),
            result: Some(Value::String(result.into())),
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir.join("results"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_begun_file_becomes_the_entry_or_nothing() {
        let dir = std::env::temp_dir().join(format!("cnibox-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Begun and dropped (the ADD failed): the results directory holds nothing.
        drop(Pending::begin(&dir).expect("O_TMPFILE on the test's filesystem"));
        assert!(names(&dir).is_empty());
        // A new entry, then one over it (a second ADD of the attachment), one filled before it
        // is stored, then one without a begun file: each readable, nothing else left.
        let mut filled = Pending::begin(&dir);
        if let Some(p) = filled.as_mut() {
            assert!(p.fill(&entry("third")));
            assert_eq!(p.state, Fill::Filled);
            assert!(names(&dir).is_empty(), "filled, still unnamed");
        }
        let cases =
            [("first", Pending::begin(&dir)), ("second", Pending::begin(&dir)), ("third", filled), ("fourth", None)];
        for (result, pending) in cases {
            // A begun file becomes the entry itself (named by a link, also over an entry that
            // was there), not a copy written in a file of store's own.
            let ino = pending.as_ref().map(|p| p.file.metadata().unwrap().ino());
            store(&dir, &entry(result), pending).unwrap();
            if let Some(ino) = ino {
                assert_eq!(std::fs::metadata(path(&dir, "n", "c1", "eth0")).unwrap().ino(), ino, "{result}");
            }
            let e = load(&dir, "n", "c1", "eth0").unwrap();
            assert_eq!(e.result, Some(Value::String(result.into())));
            assert_eq!(names(&dir), ["n-c1-eth0"]);
            let mode = std::fs::metadata(path(&dir, "n", "c1", "eth0")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        remove(&dir, "n", "c1", "eth0");
        assert!(names(&dir).is_empty());
        // The link through /proc, for a client without CAP_DAC_READ_SEARCH.
        let mut p = Pending::begin(&dir).unwrap();
        p.file.write_all(b"x").unwrap();
        let to = dir.join("results").join("by-proc");
        p.link_by_proc(&to).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"x");
        // A fill that failed spoils the file (here with part of an entry in it): store writes
        // the entry in a file of its own, which reads whole.
        let mut p = Pending::begin(&dir).unwrap();
        p.state = Fill::Spoiled;
        p.file.write_all(b"{partial").unwrap();
        store(&dir, &entry("fifth"), Some(p)).unwrap();
        assert_eq!(load(&dir, "n", "c1", "eth0").unwrap().result, Some(Value::String("fifth".into())));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
