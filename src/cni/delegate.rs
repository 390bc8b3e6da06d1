//! Delegation (spec §4): IPAM types cnibox implements run in-process; any other type is
//! exec'd from CNI_PATH with the same stdin and environment and CNI_COMMAND overridden.

use super::error::CniError;
use super::result::CniResult;
use super::skel::{Command, Invocation};
use crate::util::spawn;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

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
    exec_found(&find_in_path(plugin_type, &inv.path)?, command, inv)
}

/// `exec` of the plugin at `bin`.
fn exec_found(bin: &Path, command: Command, inv: &Invocation) -> Result<Option<CniResult>, CniError> {
    let stdout = run_plugin(bin, &[("CNI_COMMAND", Some(OsStr::new(command.as_str())))], &inv.stdin, &mut ())?;
    match command {
        Command::Add => CniResult::from_reply(&stdout, inv.version).map(Some),
        _ => Ok(None),
    }
}

/// Exec the plugin `bin` with this process's environment, changed by `vars` (see
/// `util::spawn::run`), feed it `stdin`, and return its stdout; a failure is the plugin's own
/// CNI error when it printed one. stderr passes through. `meanwhile`'s work is done while the
/// plugin runs (see `spawn::Meanwhile`).
pub fn run_plugin(
    bin: &Path,
    vars: &[(&str, Option<&OsStr>)],
    stdin: &[u8],
    meanwhile: &mut dyn spawn::Meanwhile,
) -> Result<Vec<u8>, CniError> {
    let name = || bin.display().to_string();
    let (status, stdout) = spawn::run(bin, vars, stdin, meanwhile).map_err(|e| match e {
        spawn::Error::Start(errno) => {
            CniError::internal(format!("failed to exec {}: {}", name(), std::io::Error::from(errno)))
        }
        spawn::Error::Wait(e) => CniError::internal(format!("failed to wait for {}: {e}", name())),
    })?;
    if status.success() {
        return Ok(stdout);
    }
    Err(crate::cni::json::from_slice::<CniError>(&stdout).unwrap_or_else(|_| {
        CniError::internal(format!(
            "plugin {} failed ({status}) with no error reply: {}",
            name(),
            String::from_utf8_lossy(&stdout).trim()
        ))
    }))
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

    /// The IPAM's STATUS; an IPAM plugin that is not installed is "not available" (code 50), as
    /// the plugin itself would be, so that the runtime holds pods back rather than failing them.
    pub fn status(inv: &Invocation) -> Result<(), CniError> {
        let Some(t) = inv.conf.ipam_type() else { return Ok(()) };
        if crate::applets::in_process_ipam(t).is_some() {
            return delegate(t, Command::Status, inv).map(|_| ());
        }
        let bin =
            find_in_path(t, &inv.path).map_err(|e| CniError::new(crate::cni::error::code::NOT_AVAILABLE, e.msg))?;
        exec_found(&bin, Command::Status, inv).map(|_| ())
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
