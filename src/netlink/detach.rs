//! Closing a netfilter netlink socket without waiting for the kernel.
//!
//! When the last reference to a NETLINK_NETFILTER socket goes, nf_tables first waits for its
//! pending work in that namespace: freeing what earlier transactions deleted or replaced,
//! after an RCU grace period (about 10 ms here). A plugin that has just deleted its rules
//! would wait for its own garbage, and so would any process that closes such a socket while
//! another pod's rules are being freed. So the last reference is handed to a forked child
//! that closes it and exits; the caller goes on at once. Whenever that cannot be done safely,
//! the socket is closed here, waiting.

// fork(2) is sound here for the reasons given in unregister.rs: a single-threaded process,
// checked just before; the child only closes descriptors and leaves with _exit(2).
#![allow(unsafe_code)]

use nix::unistd::{ForkResult, pipe2};
use std::os::fd::{AsFd, IntoRawFd};

/// The process has one thread (Threads: in /proc/self/status).
pub(super) fn single_threaded() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.split_whitespace().eq(["Threads:", "1"])))
        .unwrap_or(false)
}

/// Close `fd`, letting a child process wait for the kernel instead of the caller.
pub fn close_in_child(fd: impl IntoRawFd) {
    let fd = fd.into_raw_fd();
    if !single_threaded() {
        let _ = nix::unistd::close(fd);
        return;
    }
    // The child must hold the last reference: it closes its copy only after the parent has
    // closed its own, which the pipe's end of file tells it.
    let Ok((reader, writer)) = pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
        let _ = nix::unistd::close(fd);
        return;
    };
    // SAFETY: see the note at the top of this file; single_threaded() was checked.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            // The runtime reads the plugin's stdout until every copy of it is closed.
            for std_fd in 0..3 {
                let _ = nix::unistd::close(std_fd);
            }
            drop(writer);
            let _ = nix::unistd::read(reader.as_fd(), &mut [0u8; 1]);
            let _ = nix::unistd::close(fd);
            // SAFETY: _exit ends the process without running anything of the parent's.
            unsafe { nix::libc::_exit(0) }
        }
        _ => {
            // Parent (or no fork: then this close is the last one, and waits).
            let _ = nix::unistd::close(fd);
            drop(writer);
            drop(reader);
        }
    }
}
