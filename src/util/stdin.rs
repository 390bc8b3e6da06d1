//! A child's standard input, written before the child exists.
//!
//! Writing a plugin's config into a pipe after spawning it means the child, once it has
//! exec'd, sleeps until its parent is scheduled again to write; on a busy node that hand-off
//! is a scheduling round trip per exec. A config that fits in the pipe is written first, the
//! write end closed, and the child finds all of it (and the end of it) waiting.

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::unistd::pipe2;
use std::io::Write;
use std::process::Stdio;

/// What fits for certain: a new pipe holds 16 pages; `F_SETPIPE_SZ` is not needed for configs.
const FITS: usize = 16 * 4096;

/// The read end of a pipe already holding all of `bytes` and closed for writing, or None when
/// `bytes` is too large (or a pipe cannot be made): then write it after spawning, as usual.
pub fn prefilled(bytes: &[u8]) -> Option<Stdio> {
    prefilled_fd(bytes).map(Stdio::from)
}

/// As `prefilled`, the read end as a descriptor (close-on-exec).
pub fn prefilled_fd(bytes: &[u8]) -> Option<std::os::fd::OwnedFd> {
    if bytes.len() > FITS {
        return None;
    }
    let (r, w) = pipe2(OFlag::O_CLOEXEC).ok()?;
    // Never block here: a pipe made smaller than usual (pipe-user-pages-soft) gives a short write.
    fcntl(&w, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).ok()?;
    let mut w = std::fs::File::from(w);
    w.write_all(bytes).ok()?;
    drop(w);
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn the_child_reads_it_all() {
        let data = vec![b'x'; 5000];
        let out = Command::new("wc").arg("-c").stdin(prefilled(&data).unwrap()).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5000");
        let empty = Command::new("wc").arg("-c").stdin(prefilled(b"").unwrap()).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&empty.stdout).trim(), "0");
        assert!(prefilled(&vec![0; FITS + 1]).is_none());
    }
}
