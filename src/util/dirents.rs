//! A directory's entries read with getdents64 into one buffer, each name borrowed from it.
//!
//! std's `read_dir` reads through the C library's `readdir`, 2 KiB a system call with musl,
//! and allocates a name and a reference-counted handle per entry: on host-local's store of 250
//! leases (500 names with their owner links) that was 12 system calls and a tenth of a
//! millisecond per listing, which every ADD and DEL makes.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd};

/// `d_type` of a regular file.
pub const DT_REG: u8 = 8;
/// `d_type` where the filesystem does not say (the caller must look).
pub const DT_UNKNOWN: u8 = 0;

/// One directory entry: inode, `d_type`, name (without its NUL).
#[derive(Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub ino: u64,
    pub kind: u8,
    pub name: &'a [u8],
}

/// Call `f` with every entry of the directory open as `dir`, from its first (the descriptor's
/// offset is rewound, then left at the end).
pub fn for_each(dir: impl AsFd, mut f: impl FnMut(Entry<'_>)) -> std::io::Result<()> {
    let dir = dir.as_fd();
    nix::unistd::lseek(dir, 0, nix::unistd::Whence::SeekSet)?;
    let mut buf = vec![0u8; 32 << 10];
    loop {
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which outlives the call.
        let n = unsafe { nix::libc::syscall(nix::libc::SYS_getdents64, dir.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
        match usize::try_from(n) {
            Ok(0) => return Ok(()),
            Ok(n) => entries(buf.get(..n).unwrap_or_default()).for_each(&mut f),
            Err(_) => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// The entries of one getdents64 answer (`struct linux_dirent64`: inode, offset, record length,
/// type, NUL-terminated name, padding); stops at anything malformed.
fn entries(mut buf: &[u8]) -> impl Iterator<Item = Entry<'_>> {
    const NAME: usize = 19;
    std::iter::from_fn(move || {
        let ino = u64::from_ne_bytes(buf.get(..8)?.try_into().ok()?);
        let len = usize::from(u16::from_ne_bytes(buf.get(16..18)?.try_into().ok()?));
        let raw = buf.get(NAME..len)?;
        // The name ends at its NUL; after it come at most 8 bytes of zero padding, and a name
        // holds no NUL: found from the end.
        let name = &raw[..raw.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)];
        let e = Entry { ino, kind: buf[18], name };
        buf = &buf[len..];
        Some(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ino: u64, kind: u8, name: &str) -> Vec<u8> {
        let len = (19 + name.len() + 1 + 7) & !7;
        let mut r = Vec::with_capacity(len);
        r.extend(ino.to_ne_bytes());
        r.extend(0i64.to_ne_bytes());
        r.extend((len as u16).to_ne_bytes());
        r.push(kind);
        r.extend(name.as_bytes());
        r.resize(len, 0);
        r
    }

    #[test]
    fn records_and_malformed_input() {
        let mut buf = record(7, DT_REG, "10.1.0.2");
        buf.extend(record(9, 4, ".."));
        let got: Vec<_> = entries(&buf).collect();
        assert_eq!(got, [Entry { ino: 7, kind: DT_REG, name: b"10.1.0.2" }, Entry { ino: 9, kind: 4, name: b".." }]);
        // A record length past the end, or shorter than its header, ends the walk.
        let mut bad = record(7, DT_REG, "a");
        bad[16] = 200;
        assert_eq!(entries(&bad).count(), 0);
        bad[16] = 3;
        assert_eq!(entries(&bad).count(), 0);
        assert_eq!(entries(&[1, 2, 3]).count(), 0);
    }

    #[test]
    fn lists_a_directory_twice_from_its_start() {
        let t = crate::util::scratch::Scratch::new("dirents");
        std::fs::create_dir(&t.0).unwrap();
        for i in 0..300 {
            std::fs::write(t.0.join(format!("file-{i:03}")), "").unwrap();
        }
        std::fs::create_dir(t.0.join("sub")).unwrap();
        let dir = std::fs::File::open(&t.0).unwrap();
        for _ in 0..2 {
            let mut names = Vec::new();
            for_each(&dir, |e| {
                if e.kind == DT_REG || e.kind == DT_UNKNOWN {
                    names.push(String::from_utf8(e.name.to_vec()).unwrap());
                }
            })
            .unwrap();
            names.sort();
            assert_eq!(names.len(), 300);
            assert_eq!((names[0].as_str(), names[299].as_str()), ("file-000", "file-299"));
        }
    }
}
