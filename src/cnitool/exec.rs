//! Exec one plugin the way libcni does: the runtime's env plus the CNI_* variables,
//! the config on stdin, the reply (or error) read from stdout.

use crate::cni::CniError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The per-call variables; GC and STATUS carry no container, netns or ifname.
pub struct CallEnv<'a> {
    pub command: &'a str,
    pub container_id: &'a str,
    pub netns: &'a str,
    pub ifname: &'a str,
    pub args: &'a str,
    pub path: &'a [PathBuf],
}

/// A plugin failure: the plugin's own CNI error when it gave one.
pub fn run(plugin: &Path, env: &CallEnv<'_>, stdin: &[u8]) -> Result<Vec<u8>, CniError> {
    let path = std::env::join_paths(env.path).map_err(|e| CniError::internal(e.to_string()))?;
    let mut cmd = Command::new(plugin);
    cmd.env("CNI_COMMAND", env.command).env("CNI_PATH", &path);
    for (k, v) in [("CNI_CONTAINERID", env.container_id), ("CNI_NETNS", env.netns), ("CNI_IFNAME", env.ifname)] {
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    cmd.env("CNI_ARGS", env.args);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    // A freshly installed binary can be briefly busy ("text file busy"); libcni retries too.
    let mut attempt = 0;
    let mut child = loop {
        match cmd.spawn() {
            Ok(c) => break c,
            Err(e) if e.raw_os_error() == Some(26) && attempt < 5 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => return Err(CniError::internal(format!("failed to exec {}: {e}", plugin.display()))),
        }
    };
    if let Some(mut si) = child.stdin.take() {
        let _ = si.write_all(stdin);
    }
    let out =
        child.wait_with_output().map_err(|e| CniError::internal(format!("waiting for {}: {e}", plugin.display())))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    Err(serde_json::from_slice::<CniError>(&out.stdout).unwrap_or_else(|_| {
        CniError::internal(format!("netplugin failed: {:?}", String::from_utf8_lossy(&out.stdout)))
    }))
}
