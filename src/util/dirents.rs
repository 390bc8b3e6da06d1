//! A directory's entries read with getdents64 into one buffer, each name borrowed from it.
//!
//! std's `read_dir` reads through the C library's `readdir`, 2 KiB a system call with musl,
//! and allocates a name and a reference-counted handle per entry: on host-local's store of 250
//! leases (500 names with their owner links) that was 12 system calls and a tenth of a
//! millisecond per listing, which every ADD and DEL makes.
#![allow(unsafe_code)]

use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd};

/// `d_type` of a regular file.
pub const DT_REG: u8 = 8;
/// `d_type` of a symbolic link.
pub const DT_LNK: u8 = 10;
/// `d_type` where the filesystem does not say (the caller must look).
pub const DT_UNKNOWN: u8 = 0;
/// The smallest record (header and a one-byte name with its NUL, padded to 8 bytes): a bound
/// on how many entries a buffer of records holds.
pub const MIN_RECORD: usize = 24;

/// One directory entry: inode, `d_type`, and where its name (without its NUL) is in the
/// buffer of records it was read from.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    pub ino: u64,
    pub kind: u8,
    pub name: Range<usize>,
}

/// The records of every entry of the directory open as `dir`, from its first (the
/// descriptor's offset is rewound, then left at the end), one after another as getdents64
/// gives them: walk them with `entry_at`. One buffer, grown only for a directory
/// whose records outgrow it, and no copy of any name. The buffer starts zeroed (fresh memory
/// costs nothing to clear) and is grown with zeros: the kernel leaves the padding after each
/// name unwritten, so every byte is either its or a zero.
pub fn read_all(dir: impl AsFd) -> std::io::Result<Vec<u8>> {
    let dir = dir.as_fd();
    nix::unistd::lseek(dir, 0, nix::unistd::Whence::SeekSet)?;
    let mut buf = vec![0u8; 32 << 10];
    let mut len = 0;
    loop {
        // Room for a whole record of the longest name, at least.
        if buf.len() - len < 4096 {
            buf.resize(2 * buf.len(), 0);
        }
        let room = &mut buf[len..];
        // SAFETY: the kernel writes at most `room.len()` bytes at the start of `room`, which
        // the vector owns and which outlives the call.
        let n =
            unsafe { nix::libc::syscall(nix::libc::SYS_getdents64, dir.as_raw_fd(), room.as_mut_ptr(), room.len()) };
        match usize::try_from(n) {
            Ok(0) => {
                buf.truncate(len);
                return Ok(buf);
            }
            Ok(n) => len += n,
            Err(_) => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// The entry whose record (`struct linux_dirent64`: inode, offset, record length, type,
/// NUL-terminated name, padding) starts at `at` in `buf`, and where the next one starts; None
/// at the end or at anything malformed.
pub fn entry_at(buf: &[u8], at: usize) -> Option<(Entry, usize)> {
    const NAME: usize = 19;
    let rec = buf.get(at..)?;
    let ino = u64::from_ne_bytes(rec.get(..8)?.try_into().ok()?);
    let len = usize::from(u16::from_ne_bytes(rec.get(16..18)?.try_into().ok()?));
    let raw = rec.get(NAME..len)?;
    // The name ends at its NUL (a name holds none). The padding after it is whatever the
    // buffer held: the kernel does not clear it.
    let end = raw.iter().position(|&b| b == 0)?;
    Some((Entry { ino, kind: rec[18], name: at + NAME..at + NAME + end }, at + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry of a buffer of records, in order; stops at anything malformed.
    fn entries(buf: &[u8]) -> impl Iterator<Item = Entry> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            let (e, next) = entry_at(buf, at)?;
            at = next;
            Some(e)
        })
    }

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
        let got: Vec<_> = entries(&buf).map(|e| (e.ino, e.kind, &buf[e.name])).collect();
        assert_eq!(got, [(7, DT_REG, &b"10.1.0.2"[..]), (9, 4, b"..")]);
        // The kernel leaves the padding after a name's NUL as the buffer held it.
        let mut dirty = record(5, DT_REG, "10.1.0.3");
        let n = dirty.len();
        dirty[19 + 9..n].fill(0xaa);
        assert_eq!(entries(&dirty).map(|e| dirty[e.name].to_vec()).collect::<Vec<_>>(), [b"10.1.0.3".to_vec()]);
        // A record length past the end, shorter than its header, or a name without its NUL
        // ends the walk.
        let mut bad = record(7, DT_REG, "a");
        bad[16] = 200;
        assert_eq!(entries(&bad).count(), 0);
        bad[16] = 3;
        assert_eq!(entries(&bad).count(), 0);
        let mut unterminated = record(7, DT_REG, "abcd");
        unterminated[23] = b'e';
        assert_eq!(entries(&unterminated).count(), 0);
        assert_eq!(entries(&[1, 2, 3]).count(), 0);
    }

    #[test]
    fn lists_a_directory_twice_from_its_start() {
        let t = crate::util::scratch::Scratch::new("dirents");
        std::fs::create_dir(&t.0).unwrap();
        // Records of 1500 such names fill the first buffer twice over.
        for i in 0..1500 {
            std::fs::write(t.0.join(format!("file-with-a-name-of-some-length-{i:04}")), "").unwrap();
        }
        std::fs::create_dir(t.0.join("sub")).unwrap();
        let dir = std::fs::File::open(&t.0).unwrap();
        for _ in 0..2 {
            let buf = read_all(&dir).unwrap();
            let mut names: Vec<String> = entries(&buf)
                .filter(|e| e.kind == DT_REG || e.kind == DT_UNKNOWN)
                .map(|e| String::from_utf8(buf[e.name].to_vec()).unwrap())
                .collect();
            names.sort();
            assert!(buf.len() > 64 << 10);
            assert_eq!(names.len(), 1500);
            assert_eq!(names[0], "file-with-a-name-of-some-length-0000");
            assert_eq!(names[1499], "file-with-a-name-of-some-length-1499");
        }
    }
}
