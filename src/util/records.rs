//! The small per-network files plugins keep under `/run/cni/<plugin>/<network>/` so that GC
//! can find what their rules do not name (portmap's and firewall's records): written whole,
//! removed with their directory when it empties.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// Write `data` to `path` whole: under a temp name beside it, renamed into place, so that no
/// reader sees half of it; the directory is made (again, if the last file's removal took it
/// meanwhile).
pub fn write(path: &Path, data: &[u8]) -> io::Result<()> {
    let Some(dir) = path.parent() else { return Err(io::ErrorKind::InvalidInput.into()) };
    let temp = dir.join(format!(".tmp.{}", crate::util::temp_token()));
    let mut written = Ok(());
    for _ in 0..3 {
        written = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&temp, data))
            .and_then(|()| std::fs::rename(&temp, path));
        if !written.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::NotFound) {
            break;
        }
    }
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Read, change and write back the record at `path` (under `root`) with every other update
/// of `root`'s records held off meanwhile: a flock on `root` itself, which is never removed,
/// held only around the read and the write. `f` gets the record's text (None: there is none)
/// and returns the new one (None: remove it). Without the lock a GC rewriting a record while a
/// DEL rewrites it too could bring back the line the DEL took out.
pub fn update(root: &Path, path: &Path, f: impl FnOnce(Option<String>) -> Option<String>) -> io::Result<()> {
    // The lock is `root`'s, which `remove` must never take with a record's directory.
    debug_assert!(path.parent() != Some(root), "a record in the lock's own directory");
    std::fs::create_dir_all(root)?;
    let lock = std::fs::File::open(root)?;
    lock.lock()?;
    let new = f(std::fs::read_to_string(path).ok());
    match new {
        Some(text) => write(path, text.as_bytes()),
        None => {
            remove(path);
            Ok(())
        }
    }
}

/// Remove `path`, and its directory with its last file (which fails harmlessly otherwise).
pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir(dir);
    }
}

/// The directories under `root` of every network but `network`.
pub fn other_networks(root: &str, network: &str) -> Vec<PathBuf> {
    let own = OsString::from(network);
    let entries = std::fs::read_dir(root).into_iter().flatten().filter_map(|e| e.ok());
    entries.filter(|e| e.file_name() != own).map(|e| e.path()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_whole_and_removed_with_the_directory() {
        let s = crate::util::scratch::Scratch::new("records");
        let root = s.0.to_str().unwrap().to_string();
        let path = s.0.join("net").join("rec");
        write(&path, b"a\n").unwrap();
        write(&path, b"b\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"b\n");
        assert_eq!(std::fs::read_dir(s.0.join("net")).unwrap().count(), 1, "no temp file left");
        write(&s.0.join("other").join("rec"), b"c\n").unwrap();
        assert_eq!(other_networks(&root, "net"), vec![s.0.join("other")]);
        remove(&path);
        assert!(!s.0.join("net").exists());
    }

    #[test]
    fn updated_under_the_lock() {
        let s = crate::util::scratch::Scratch::new("records-update");
        let path = s.0.join("net").join("rec");
        update(&s.0, &path, |t| {
            assert_eq!(t, None);
            Some("a\n".into())
        })
        .unwrap();
        update(&s.0, &path, |t| t.map(|t| t + "b\n")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"a\nb\n");
        update(&s.0, &path, |_| None).unwrap();
        assert!(!s.0.join("net").exists());
    }
}
