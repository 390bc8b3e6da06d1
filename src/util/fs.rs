//! Opening files with openat(2).
//!
//! musl's open() follows every open with O_CLOEXEC by an fcntl(F_SETFD) (for kernels older than
//! 2.6.23), and std opens files through it: a system call more for each of the dozen files a
//! plugin opens per call. Its openat() is the bare system call.

use nix::fcntl::{AT_FDCWD, OFlag, openat};
use nix::sys::stat::Mode;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::Path;

/// Open `path` with `flags` (O_CLOEXEC is always added) and, for a file it creates, `mode`.
pub fn open(path: &Path, flags: OFlag, mode: u32) -> io::Result<File> {
    open_in(AT_FDCWD, path, flags, mode)
}

/// `open`, a relative `path` taken from the directory open as `dir`.
pub fn open_in(dir: impl AsFd, path: &Path, flags: OFlag, mode: u32) -> io::Result<File> {
    let fd = openat(dir, path, flags | OFlag::O_CLOEXEC, Mode::from_bits_truncate(mode))?;
    Ok(File::from(fd))
}

/// Make the directory `dir`, and its missing parents, with `mode` (as `mkdir -p -m`: a
/// directory already there is left as it is).
pub fn make_dir(dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(mode).create(dir)
}

/// The whole content of `path` (files of configs, caches and the kernel's parameters: small).
/// Read until end of file into a buffer that doubles as it fills: std's `read_to_end` on a
/// `File` first asks its size and position (fstat and lseek), two system calls more a file
/// for files a page holds.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    let mut f = open(path, OFlag::O_RDONLY, 0)?;
    let mut out = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == out.len() {
            out.resize(2 * len, 0);
        }
        match f.read(&mut out[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    out.truncate(len);
    Ok(out)
}

/// The whole content of `path` as text.
pub fn read_to_string(path: &Path) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_reads_and_names_errors() {
        assert!(!read_to_string(Path::new("/proc/sys/kernel/ostype")).unwrap().is_empty());
        // Past the first buffer's size.
        let dir = crate::util::scratch::Scratch::new("fsread");
        std::fs::create_dir_all(&dir.0).unwrap();
        let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.0.join("big"), &big).unwrap();
        assert_eq!(read(&dir.0.join("big")).unwrap(), big);
        std::fs::write(dir.0.join("page"), &big[..4096]).unwrap();
        assert_eq!(read(&dir.0.join("page")).unwrap(), &big[..4096]);
        let e = read(Path::new("/nonexistent/file")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let f = open(Path::new("/proc/self/status"), OFlag::O_RDONLY, 0).unwrap();
        let flags = nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & nix::libc::FD_CLOEXEC, 0, "opened close-on-exec");
    }
}
