//! Network namespaces: open and validate a namespace file, and run code inside it on this thread.
//!
//! A namespace belongs to a thread, not a process: `run` switches the calling thread in and back
//! out, and everything kernel-facing in cnibox happens on that one thread.

use crate::netlink::Error;
use nix::errno::Errno;
use nix::sched::{CloneFlags, setns};
use nix::sys::statfs::{NSFS_MAGIC, PROC_SUPER_MAGIC, fstatfs};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};

/// An open network namespace file.
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
}

/// Where the calling thread's own namespace is visible.
const THREAD_SELF: &str = "/proc/thread-self/ns/net";

impl Netns {
    /// Open `path` and check it is a namespace file (nsfs, or procfs for `/proc/<pid>/ns/net`).
    /// A missing path gives an error whose `is_not_found()` is true.
    pub fn open(path: impl AsRef<Path>) -> Result<Netns, Error> {
        let path = path.as_ref();
        let context = || format!("failed to open netns \"{}\"", path.display());
        let file = crate::util::fs::open(path, nix::fcntl::OFlag::O_RDONLY, 0).map_err(|e| Error::io(context(), &e))?;
        let fs = fstatfs(&file).map_err(|e| Error::errno(context(), e))?;
        let magic = fs.filesystem_type();
        if magic != NSFS_MAGIC && magic != PROC_SUPER_MAGIC {
            return Err(Error::new(context(), format!("unknown FS magic on \"{}\": {:x}", path.display(), magic.0)));
        }
        Ok(Netns { file, path: path.to_path_buf() })
    }

    /// The calling thread's current namespace.
    pub fn current() -> Result<Netns, Error> {
        Netns::open(THREAD_SELF)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor, for netlink attributes that name a namespace (IFLA_NET_NS_FD).
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Run `f` with this thread inside the namespace, then return to where it was.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> Result<T, Error> {
        let origin = Netns::current()?;
        enter(self.file.as_fd(), &self.path)?;
        let guard = Return { origin: &origin };
        let out = f();
        // Back to the origin, or the process ends: it never carries on in the wrong namespace.
        drop(guard);
        Ok(out)
    }

    /// Same namespace as `other` (device and inode of the namespace files).
    pub fn same_as(&self, other: &Netns) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (self.file.metadata(), other.file.metadata()) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
}

fn enter(fd: BorrowedFd<'_>, path: &Path) -> Result<(), Error> {
    setns(fd, CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::errno(format!("failed to enter netns \"{}\"", path.display()), e))
}

/// Switches the thread back on drop, so an early return or unwinding never leaves it behind.
struct Return<'a> {
    origin: &'a Netns,
}

impl Drop for Return<'_> {
    fn drop(&mut self) {
        if let Err(e) = enter(self.origin.file.as_fd(), &self.origin.path) {
            // Carrying on in the wrong namespace would act on the wrong links.
            let e = crate::cni::CniError::internal(format!("failed to return to the original netns: {e}"));
            println!("{}", e.to_json());
            std::process::exit(1);
        }
    }
}

/// Errno values that mean "the thing is not there".
pub(crate) fn errno_is_not_found(errno: i32) -> bool {
    errno == Errno::ENOENT as i32 || errno == Errno::ENODEV as i32 || errno == Errno::ESRCH as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_rejects_missing_and_non_ns_files() {
        let e = Netns::open("/nonexistent/netns").unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(e.to_string().contains("/nonexistent/netns"));
        let e = Netns::open("/").unwrap_err();
        assert!(!e.is_not_found());
        assert!(e.to_string().contains("unknown FS magic"), "{e}");
    }

    #[test]
    fn current_is_a_namespace() {
        let a = Netns::current().unwrap();
        let b = Netns::open(THREAD_SELF).unwrap();
        assert!(a.same_as(&b));
    }
}
