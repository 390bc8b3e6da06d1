//! Delegation (spec §4): IPAM types cnibox implements run in-process; any other type is
//! exec'd from CNI_PATH with the same stdin and environment and CNI_COMMAND overridden.

use super::error::CniError;
use super::result::CniResult;
use super::skel::{Command, Invocation};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};

/// Find `plugin` in the CNI_PATH directories, as libcni's FindInPath does.
pub fn find_in_path(plugin: &str, path: &[PathBuf]) -> Result<PathBuf, CniError> {
    if plugin.is_empty() || plugin.contains('/') {
        return Err(CniError::internal(format!("invalid plugin name \"{plugin}\"")));
    }
    for dir in path {
        let candidate = dir.join(plugin);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    let dirs: Vec<String> = path.iter().map(|p| p.display().to_string()).collect();
    Err(CniError::internal(format!("failed to find plugin \"{plugin}\" in path [{}]", dirs.join(" "))))
}

/// Run `plugin_type` for `command` on behalf of `inv`. ADD returns the delegate's result,
/// read as the main plugin would read it from the delegate's stdout.
pub fn delegate(plugin_type: &str, command: Command, inv: &Invocation) -> Result<Option<CniResult>, CniError> {
    if let Some(fns) = crate::applets::in_process_ipam(plugin_type) {
        let sub = Invocation { command, ..inv.clone() };
        return match command {
            Command::Add => (fns.add)(&sub).and_then(|r| r.through_version(inv.version)).map(Some),
            Command::Del => (fns.del)(&sub).map(|_| None),
            Command::Check => (fns.check)(&sub).map(|_| None),
            Command::Gc => (fns.gc)(&sub).map(|_| None),
            Command::Status => (fns.status)(&sub).map(|_| None),
            Command::Version => Ok(None),
        };
    }
    exec(plugin_type, command, inv)
}

fn exec(plugin_type: &str, command: Command, inv: &Invocation) -> Result<Option<CniResult>, CniError> {
    let bin = find_in_path(plugin_type, &inv.path)?;
    let mut child = Process::new(&bin)
        .env("CNI_COMMAND", command.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| CniError::internal(format!("failed to exec {}: {e}", bin.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A plugin that exits without reading stdin is not our error; its reply says what happened.
        let _ = stdin.write_all(&inv.stdin);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| CniError::internal(format!("failed to wait for {}: {e}", bin.display())))?;
    if !out.status.success() {
        return Err(match serde_json::from_slice::<CniError>(&out.stdout) {
            Ok(e) => e,
            Err(_) => CniError::internal(format!(
                "plugin {} failed ({}) with no error reply: {}",
                bin.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout).trim()
            )),
        });
    }
    match command {
        Command::Add => CniResult::from_reply(&out.stdout, inv.version).map(Some),
        _ => Ok(None),
    }
}

/// IPAM helpers for main plugins; the type comes from the config's `ipam.type`.
pub mod ipam {
    use super::*;

    fn ipam_type(inv: &Invocation) -> Result<&str, CniError> {
        inv.conf
            .ipam_type()
            .ok_or_else(|| CniError::internal("failed to find plugin \"\" in path: no ipam type configured"))
    }

    /// IPAM ADD; the result must carry at least one address.
    pub fn add(inv: &Invocation) -> Result<CniResult, CniError> {
        let r = delegate(ipam_type(inv)?, Command::Add, inv)?.unwrap_or_default();
        if r.ips.is_empty() {
            // Release what the delegate may have reserved before failing.
            let _ = del(inv);
            return Err(CniError::internal("IPAM plugin returned missing IP config"));
        }
        Ok(r)
    }

    pub fn del(inv: &Invocation) -> Result<(), CniError> {
        delegate(ipam_type(inv)?, Command::Del, inv).map(|_| ())
    }

    pub fn check(inv: &Invocation) -> Result<(), CniError> {
        delegate(ipam_type(inv)?, Command::Check, inv).map(|_| ())
    }

    pub fn gc(inv: &Invocation) -> Result<(), CniError> {
        match inv.conf.ipam_type() {
            Some(t) => delegate(t, Command::Gc, inv).map(|_| ()),
            None => Ok(()),
        }
    }

    pub fn status(inv: &Invocation) -> Result<(), CniError> {
        match inv.conf.ipam_type() {
            Some(t) => delegate(t, Command::Status, inv).map(|_| ()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_in_path_names_the_dirs() {
        let e = find_in_path("nope", &[PathBuf::from("/a"), PathBuf::from("/b")]).unwrap_err();
        assert_eq!(e.msg, "failed to find plugin \"nope\" in path [/a /b]");
        assert!(find_in_path("../x", &[]).is_err());
        assert_eq!(
            find_in_path("sh", &[PathBuf::from("/nonexistent"), PathBuf::from("/bin")]).unwrap(),
            PathBuf::from("/bin/sh")
        );
    }
}
