//! Exec one plugin the way libcni does: the runtime's env plus the CNI_* variables,
//! the config on stdin, the reply (or error) read from stdout.

use crate::cni::CniError;
use crate::cni::delegate::run_plugin;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The per-call variables; GC and STATUS carry no container, netns or ifname.
pub struct CallEnv<'a> {
    pub command: &'a str,
    pub container_id: &'a str,
    pub netns: &'a str,
    pub ifname: &'a str,
    pub args: &'a str,
    pub path: &'a [PathBuf],
}

/// Run `plugin` with the runtime's env plus the call's CNI_* variables.
pub fn run(plugin: &Path, env: &CallEnv<'_>, stdin: &[u8]) -> Result<Vec<u8>, CniError> {
    let path = std::env::join_paths(env.path).map_err(|e| CniError::internal(e.to_string()))?;
    let mut cmd = Command::new(plugin);
    cmd.env("CNI_COMMAND", env.command).env("CNI_PATH", &path).env("CNI_ARGS", env.args);
    for (k, v) in [("CNI_CONTAINERID", env.container_id), ("CNI_NETNS", env.netns), ("CNI_IFNAME", env.ifname)] {
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    run_plugin(&mut cmd, stdin)
}
