//! Exec one plugin the way libcni does: the runtime's env plus the CNI_* variables,
//! the config on stdin, the reply (or error) read from stdout.

use crate::cni::CniError;
use crate::cni::delegate::run_plugin;
pub use crate::util::spawn::Meanwhile;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The per-call variables; GC and STATUS carry no container, netns or ifname.
pub struct CallEnv<'a> {
    pub command: &'a str,
    pub container_id: &'a str,
    pub netns: &'a str,
    pub ifname: &'a str,
    pub args: &'a str,
    pub path: &'a [PathBuf],
}

/// Run `plugin` with the runtime's env plus the call's CNI_* variables, doing `meanwhile`'s
/// work while it runs.
pub fn run<'a>(
    plugin: &Path,
    env: &CallEnv<'a>,
    stdin: &[u8],
    meanwhile: &mut dyn Meanwhile,
) -> Result<Vec<u8>, CniError> {
    let path = std::env::join_paths(env.path).map_err(|e| CniError::internal(e.to_string()))?;
    // The per-call ones are removed when empty: GC and STATUS carry none.
    let per_call = |v: &'a str| Some(OsStr::new(v)).filter(|v| !v.is_empty());
    let vars = [
        ("CNI_COMMAND", Some(OsStr::new(env.command))),
        ("CNI_PATH", Some(path.as_os_str())),
        ("CNI_ARGS", Some(OsStr::new(env.args))),
        ("CNI_CONTAINERID", per_call(env.container_id)),
        ("CNI_NETNS", per_call(env.netns)),
        ("CNI_IFNAME", per_call(env.ifname)),
    ];
    run_plugin(plugin, &vars, stdin, meanwhile)
}
