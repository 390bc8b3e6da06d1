//! Kernel parameters under /proc/sys. Names use `/` separators (interface names may contain dots).
//! Net parameters belong to the namespace of the calling thread: call these inside `Netns::run`.

use crate::netlink::Error;
use std::path::PathBuf;

fn path(name: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(name.trim_start_matches('/'))
}

pub fn get(name: &str) -> Result<String, Error> {
    crate::util::fs::read_to_string(&path(name))
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::io(format!("failed to read sysctl {name}"), &e))
}

/// Write `value` unless the parameter already holds it. A parameter that cannot be read
/// (write-only ones such as `net/ipv4/route/flush`) is written all the same.
pub fn set(name: &str, value: &str) -> Result<(), Error> {
    if get(name).is_ok_and(|v| v == value) {
        return Ok(());
    }
    write(name, value)
}

/// Write `value` without reading first: for parameters of a device this call has just
/// created, where reading would only cost another open of a /proc file (each a lookup among
/// every device's entries on a busy node).
pub fn write(name: &str, value: &str) -> Result<(), Error> {
    use std::io::Write;
    crate::util::fs::open(&path(name), nix::fcntl::OFlag::O_WRONLY, 0)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| Error::io(format!("failed to set sysctl {name}={value}"), &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_names_the_parameter() {
        assert!(!get("kernel/ostype").unwrap().is_empty());
        let e = get("net/nonexistent/x").unwrap_err();
        assert!(e.is_not_found());
        assert!(e.to_string().contains("net/nonexistent/x"));
    }

    #[test]
    fn write_only_parameters_are_written() {
        // Mode 0200: reading fails even for root, writing works. Flushing the route cache of a
        // fresh namespace's thread would touch the host's, so only the read failure is checked
        // here; `set` no longer depends on it.
        if let Ok(m) = std::fs::metadata(path("net/ipv4/route/flush")) {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(m.permissions().mode() & 0o444, 0);
            assert!(get("net/ipv4/route/flush").is_err());
        }
        assert!(set("net/nonexistent/x", "1").unwrap_err().is_not_found());
    }

    #[test]
    fn unchanged_value_is_not_written() {
        // ostype is read-only; writing it would fail.
        let v = get("kernel/ostype").unwrap();
        set("kernel/ostype", &v).unwrap();
    }
}
