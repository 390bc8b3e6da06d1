//! Closing a netfilter netlink socket without waiting for the kernel; and its send buffer.
//!
//! When the last reference to a NETLINK_NETFILTER socket goes, nf_tables first waits for its
//! pending work in that namespace: freeing what earlier transactions deleted or replaced,
//! after an RCU grace period (about 10 ms here), and it waits holding the namespace's
//! nf_tables commit lock. A plugin that has just deleted its rules would wait for its own
//! garbage, and so would any process that closes such a socket while another pod's rules are
//! being freed. So the last reference is handed to a forked child and the caller goes on at
//! once. The child closes it only after a grace period of its own, by which time the kernel
//! has freed that garbage without anyone waiting: had it closed at once, it would hold the
//! commit lock while waiting, and the next plugin of the chain, changing its own rules in the
//! same namespace, would wait behind it (a full chain's DEL took 34 ms that way, 13 this way).
//! Whenever a child cannot be used safely, the socket is closed here, waiting.

// fork(2) is sound here for the reasons given in unregister.rs: a single-threaded process,
// checked just before; the child only closes descriptors and leaves with _exit(2).
#![allow(unsafe_code)]

use nix::unistd::{ForkResult, pipe2};
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, RawFd};

/// The process has one thread (Threads: in /proc/self/status).
pub(super) fn single_threaded() -> bool {
    crate::util::fs::read_to_string(std::path::Path::new("/proc/self/status"))
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
            // The runtime reads the plugin's stdout until every copy of it is closed, and no
            // other descriptor (a store's locked lock file, say) is to be held for the wait.
            drop(writer);
            close_all_but(fd, reader.as_raw_fd());
            let _ = nix::unistd::read(reader.as_fd(), &mut [0u8; 1]);
            wait_for_grace_period();
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

/// Wait for an RCU grace period, and a little more for nf_tables' worker to free what waited
/// for it: membarrier(MEMBARRIER_CMD_GLOBAL) returns after one (it is synchronize_rcu()); where
/// it is refused (nohz_full CPUs), a pause long enough for one.
fn wait_for_grace_period() {
    const MEMBARRIER_CMD_GLOBAL: nix::libc::c_int = 1;
    // SAFETY: membarrier takes no pointers; it only waits.
    let r = unsafe { nix::libc::syscall(nix::libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
    std::thread::sleep(std::time::Duration::from_millis(if r == 0 { 2 } else { 50 }));
}

/// Close every descriptor of this (child) process but `a` and `b`.
pub(super) fn close_all_but(a: RawFd, b: RawFd) {
    let (lo, hi) = (a.min(b), a.max(b));
    let mut ranges = vec![(0, lo - 1), (lo + 1, hi - 1), (hi + 1, RawFd::MAX)];
    ranges.retain(|(first, last)| first <= last);
    for (first, last) in ranges {
        // SAFETY: close_range(2) only closes descriptors; nothing here uses them again.
        let r = unsafe { nix::libc::syscall(nix::libc::SYS_close_range, first as u32, last as u32, 0u32) };
        if r != 0 {
            // Kernels before 5.9: the descriptors that are open, one by one.
            let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
                .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
                .unwrap_or_default();
            for n in open.into_iter().filter(|n| (first..=last).contains(n)) {
                let _ = nix::unistd::close(n);
            }
        }
    }
}

/// Make a socket's send buffer `bytes` large: past the system's limit where the caller may
/// (SO_SNDBUFFORCE, CAP_NET_ADMIN), else up to it. Best effort: a send that still does not
/// fit fails with EMSGSIZE.
pub fn set_send_buffer(sock: &impl AsRawFd, bytes: usize) {
    let v = nix::libc::c_int::try_from(bytes).unwrap_or(nix::libc::c_int::MAX);
    let len = std::mem::size_of::<nix::libc::c_int>() as nix::libc::socklen_t;
    for opt in [nix::libc::SO_SNDBUFFORCE, nix::libc::SO_SNDBUF] {
        // SAFETY: setsockopt reads `len` bytes from a live c_int; the descriptor is borrowed
        // for the call.
        let r =
            unsafe { nix::libc::setsockopt(sock.as_raw_fd(), nix::libc::SOL_SOCKET, opt, (&raw const v).cast(), len) };
        if r == 0 {
            return;
        }
    }
}
