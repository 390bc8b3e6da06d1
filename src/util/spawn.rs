//! Exec a plugin, as a runtime does: the caller's environment with a few variables set or
//! removed, its config on stdin, its reply read from stdout, stderr passed through.
//!
//! Straight through posix_spawn(3) rather than std's `Command`, which copies the whole
//! environment into a sorted map of its own and back into C strings to change a handful of
//! variables: a quarter of a runtime client's instructions per call. Here the child gets the
//! C library's own strings, in their order, the changed variables left out and appended.
//! Reading the C library's `environ` is this module's one unsafe block.
#![allow(unsafe_code)]

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::pipe2;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// How a spawned plugin ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32, bool),
}

impl Exit {
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

/// As std's `ExitStatus` says it: `exit status: 1`, `signal: 9 (SIGKILL)`.
impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Exit::Code(c) => write!(f, "exit status: {c}"),
            Exit::Signal(n, core) => {
                write!(f, "signal: {n}")?;
                if let Ok(s) = Signal::try_from(n) {
                    write!(f, " ({})", s.as_str())?;
                }
                if core {
                    write!(f, " (core dumped)")?;
                }
                Ok(())
            }
        }
    }
}

/// What went wrong before the plugin's exit status was known.
#[derive(Debug)]
pub enum Error {
    /// It could not be started (the errno of posix_spawn: not found, not executable, busy).
    Start(Errno),
    /// Waiting for it, or reading its reply, failed.
    Wait(std::io::Error),
}

/// A caller's work done while the program runs instead of after it.
pub trait Meanwhile {
    /// Once the program has started: work that does not depend on its reply.
    fn started(&mut self) {}
    /// Once its stdout is closed, before its exit is waited for: work on the reply that holds
    /// whether it succeeded or not (the exit status decides, after). A plugin closes its stdout
    /// once its reply is written, and its exit (the kernel tearing the process down) then runs
    /// alongside this.
    fn replied(&mut self, _reply: &[u8]) {}
}

/// Nothing to do meanwhile.
impl Meanwhile for () {}

/// Run `program` (argv[0] its own path) with this process's environment, where each
/// `(name, Some(value))` of `vars` is set and each `(name, None)` removed; `stdin` is its
/// standard input; `meanwhile`'s work is done while it runs. Returns its exit and everything
/// it wrote to stdout.
pub fn run(
    program: &Path,
    vars: &[(&str, Option<&OsStr>)],
    stdin: &[u8],
    meanwhile: &mut dyn Meanwhile,
) -> Result<(Exit, Vec<u8>), Error> {
    let start = |e: Errno| Error::Start(e);
    let path = CString::new(program.as_os_str().as_bytes()).map_err(|_| Error::Start(Errno::EINVAL))?;
    let mut set = Vec::new();
    let env = environment(vars, &mut set).map_err(start)?;
    // The config waits in the pipe before the plugin starts; only one too large for a pipe is
    // written after the spawn.
    let (stdin_r, late) = match super::stdin::prefilled_fd(stdin) {
        Some(r) => (r, None),
        None => {
            let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(start)?;
            (r, Some(w))
        }
    };
    let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(start)?;
    let mut actions = PosixSpawnFileActions::init().map_err(start)?;
    actions.add_dup2(stdin_r.as_raw_fd(), 0).map_err(start)?;
    actions.add_dup2(out_w.as_raw_fd(), 1).map_err(start)?;
    // SIGPIPE is ignored here; the plugin starts with it at its default, as under std.
    let mut attr = PosixSpawnAttr::init().map_err(start)?;
    let mut default = SigSet::empty();
    default.add(Signal::SIGPIPE);
    attr.set_sigdefault(&default).map_err(start)?;
    // And with no signal blocked, whatever mask this process was started with.
    attr.set_sigmask(&SigSet::empty()).map_err(start)?;
    attr.set_flags(PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK).map_err(start)?;
    // A freshly installed binary can be briefly busy ("text file busy"); libcni retries too.
    let mut attempt = 0;
    let pid = loop {
        match posix_spawn(path.as_c_str(), &actions, &attr, &[path.as_c_str()], &env) {
            Ok(pid) => break pid,
            Err(Errno::ETXTBSY) if attempt < 5 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => return Err(Error::Start(e)),
        }
    };
    drop((stdin_r, out_w));
    // Left allocated: the C library's file actions are a block of its own allocator, whose
    // release unmaps the page it sits in, and that unmap interrupts the other CPU (where the
    // child, sharing this address space until its exec, ran) to drop its copy of the mapping:
    // 6 us for a few dozen bytes that the process's exit frees anyway.
    std::mem::forget(actions);
    if let Some(w) = late {
        // A plugin that exits without reading stdin is not our error; its reply says what happened.
        let _ = File::from(w).write_all(stdin);
    }
    meanwhile.started();
    // Room for a usual reply up front (std's reader starts at 32 bytes and doubles).
    let mut out = Vec::with_capacity(4096);
    let read = File::from(out_r).read_to_end(&mut out);
    if read.is_ok() {
        meanwhile.replied(&out);
    }
    let status = loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => break Exit::Code(code),
            Ok(WaitStatus::Signaled(_, sig, core)) => break Exit::Signal(sig as i32, core),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::Wait(e.into())),
        }
    };
    read.map_err(Error::Wait)?;
    Ok((status, out))
}

unsafe extern "C" {
    /// The C library's environment: a NULL-terminated array of `NAME=value` strings.
    static environ: *const *const std::ffi::c_char;
}

/// Every `NAME=value` of this process not named in `vars` (borrowed from the C library, not
/// copied), then those `vars` sets (made in `set`); EINVAL for a value holding a NUL byte.
fn environment<'a>(vars: &[(&str, Option<&OsStr>)], set: &'a mut Vec<CString>) -> Result<Vec<&'a CStr>, Errno> {
    let mut env: Vec<&'a CStr> = Vec::with_capacity(64);
    // SAFETY: `environ` is the C library's NULL-terminated array of NUL-terminated strings.
    // Nothing in cnibox changes its environment (no setenv, no putenv; one thread), so the
    // array and its strings stay as they are for as long as the process lives.
    unsafe {
        let mut p = environ;
        while !p.is_null() && !(*p).is_null() {
            let entry = CStr::from_ptr(*p);
            let name = entry.to_bytes().split(|b| *b == b'=').next().unwrap_or_default();
            if !vars.iter().any(|(n, _)| n.as_bytes() == name) {
                env.push(entry);
            }
            p = p.add(1);
        }
    }
    for (k, v) in vars {
        let Some(v) = v else { continue };
        let mut kv = Vec::with_capacity(k.len() + v.len() + 2);
        kv.extend_from_slice(k.as_bytes());
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        set.push(CString::new(kv).map_err(|_| Errno::EINVAL)?);
    }
    env.extend(set.iter().map(CString::as_c_str));
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_env_stdout_and_status() {
        let (exit, out) = run(Path::new("/bin/cat"), &[], b"a config", &mut ()).unwrap();
        assert_eq!((exit, out.as_slice()), (Exit::Code(0), &b"a config"[..]));
        let vars = [("CNIBOX_SPAWN_T", Some(OsStr::new("v w"))), ("HOME", None)];
        let (exit, out) = run(Path::new("/usr/bin/env"), &vars, b"", &mut ()).unwrap();
        let out = String::from_utf8_lossy(&out);
        assert!(exit.success());
        assert!(out.lines().any(|l| l == "CNIBOX_SPAWN_T=v w"), "{out}");
        assert!(!out.lines().any(|l| l.starts_with("HOME=")), "{out}");
        assert!(out.lines().any(|l| l.starts_with("PATH=")), "the rest is passed on: {out}");
        let (exit, _) = run(Path::new("/bin/sh"), &[], b"exit 3\n", &mut ()).unwrap();
        assert_eq!((exit, exit.to_string()), (Exit::Code(3), "exit status: 3".to_string()));
    }

    #[test]
    fn meanwhile_runs_while_the_program_does() {
        // The program waits for a file that only `started` creates, replies, closes its stdout,
        // then waits for a file that only `replied` creates (and gives up, failing, after 10 s):
        // it exits 0 only if each hook ran while it was still running.
        let dir = std::env::temp_dir().join(format!("cnibox-spawn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (go, replied) = (dir.join("go"), dir.join("replied"));
        let wait = |f: &std::path::Path| {
            format!("n=0; while [ ! -e {} ]; do n=$((n+1)); [ $n -gt 1000 ] && exit 7; sleep 0.01; done", f.display())
        };
        let script = format!("{}; echo ran; exec >&-; {}", wait(&go), wait(&replied));
        struct Hooks {
            go: std::path::PathBuf,
            replied: std::path::PathBuf,
            calls: Vec<String>,
        }
        impl Meanwhile for Hooks {
            fn started(&mut self) {
                self.calls.push("started".into());
                std::fs::write(&self.go, b"").unwrap();
            }
            fn replied(&mut self, reply: &[u8]) {
                self.calls.push(String::from_utf8_lossy(reply).into_owned());
                std::fs::write(&self.replied, b"").unwrap();
            }
        }
        let mut hooks = Hooks { go, replied, calls: Vec::new() };
        let (exit, out) = run(Path::new("/bin/sh"), &[], script.as_bytes(), &mut hooks).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!((exit, out.as_slice()), (Exit::Code(0), &b"ran\n"[..]));
        assert_eq!(hooks.calls, ["started", "ran\n"]);
    }

    #[test]
    fn large_stdin_goes_after_the_spawn() {
        let data = vec![b'x'; 200 << 10];
        let (exit, out) = run(Path::new("/usr/bin/wc"), &[], &data, &mut ()).unwrap();
        assert!(exit.success());
        assert_eq!(String::from_utf8_lossy(&out).split_whitespace().last(), Some("204800"));
    }

    #[test]
    fn signals_and_missing_programs() {
        let (exit, _) = run(Path::new("/bin/sh"), &[], b"kill -9 $$\n", &mut ()).unwrap();
        assert_eq!(exit, Exit::Signal(9, false));
        assert_eq!(exit.to_string(), "signal: 9 (SIGKILL)");
        assert!(matches!(run(Path::new("/nonexistent/plugin"), &[], b"", &mut ()), Err(Error::Start(Errno::ENOENT))));
        let nul = [("CNI_ARGS", Some(OsStr::new("a\0b")))];
        assert!(matches!(run(Path::new("/bin/true"), &nul, b"", &mut ()), Err(Error::Start(Errno::EINVAL))));
    }
}
