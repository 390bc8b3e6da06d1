//! The host-local on-disk store, file for file the reference's, so that cnibox and the Go
//! plugin can share a node:
//!
//! - `<dataDir>/<network>/` (mode 0755) holds one file per reserved address, named by the
//!   address's text (`10.1.0.5`, `2001:db8::5`), containing `<containerID>\r\n<ifname>` with
//!   no trailing newline (legacy files hold only the container ID);
//! - `last_reserved_ip.<N>` holds the last address reserved from range set N;
//! - `lock` is flock'ed exclusively around every allocation and release.
//!
//! What an attachment holds is read without the lock (the spec forbids a runtime to run two
//! operations for one container at once, so no one else gives or takes its addresses); the
//! lock covers only the changes: taking an address, removing files.
//!
//! Beyond the reference, a reservation appears atomically: the content is written to a
//! temp file in the same directory, then hard-linked to the address's name (EEXIST means
//! taken), then the temp is renamed to the lease's owner link (below). A crashed plugin
//! therefore never leaves an empty or partial reservation. Nothing is synced, as in the
//! reference: a power loss can leave an address file that has its name but not yet its
//! content. Such an empty file names no owner, and under the lock none can be in flight
//! (every writer, ours and the Go plugin's, fills its files while holding it), so every
//! release and GC removes the empty ones it finds: the runtime's DEL of a sandbox from before
//! the reboot frees that address too.
//!
//! The temp file is written before the lock is taken (its content does not depend on the
//! address), so the critical section is a link and a small write. Release and GC, under the
//! lock, remove every temp file they see: left by a crash, or prepared by an ADD still waiting
//! for the lock, which then writes it again under the lock. Temps are always created afresh
//! (an old file of that name is unlinked first), never truncated: a crash between the link
//! and the temp's rename leaves the temp a second name of a live lease. Temp names start with
//! a dot and never parse as an address, so the Go plugin ignores them (and its release, which
//! matches on content, removes them like a reservation of the same owner).
//!
//! Owner links. Refusing a duplicate ADD, and finding what a DEL releases, needs the owner of
//! every lease; reading each file is three system calls a lease, on every ADD and DEL of the
//! network. So the temp file, once linked to the address's name, is renamed to a second name
//! that says whose it is: `.cnibox-owner.<tag>.<address>`, the tag being 32 hex digits of the
//! SHA-512 of the content. Both names are one inode, and a directory listing gives each
//! name's inode: an address file whose inode the owner link of its address shares belongs to
//! that link's owner (a lease is never rewritten in place, by us or by the Go plugin; a
//! filesystem that does not give each file its own inode number places nothing). Only the other
//! address files are read: those of the owner asked about (to confirm them), and those without
//! a link (written by the Go plugin, or on a filesystem without hard links). The answers stay
//! exact whoever wrote the store. The Go plugin treats a link like a temp file: its lookups
//! skip it (the name is no address) and its release removes it with the lease (same content).
//! A release removes the owner's links before its leases (a lease without a link is read; a
//! link without a lease would still match the owner in the Go plugin's content-only lookups);
//! GC removes those of the leases it frees, and links whose address file is gone (a crash, or
//! the Go plugin's release of a file it could not remove). An address file of another owner
//! left empty by a power loss is not seen by a release any more: that owner's own release (or
//! GC) frees it.

use super::IpamError;
use crate::util::dirents;
use crate::util::fs as ufs;
use nix::fcntl::OFlag;
use std::cell::RefCell;
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";
pub const LINE_BREAK: &str = "\r\n";
const LAST_IP_PREFIX: &str = "last_reserved_ip.";
const LOCK_FILE: &str = "lock";
const TEMP_PREFIX: &str = ".cnibox-tmp.";
const OWNER_PREFIX: &str = ".cnibox-owner.";

/// The tag of an owner in its owner links' names (see the module's notes): 32 hex digits of
/// the SHA-512 of the reservation's content. An ADD asks for its attachment's tag twice (what
/// it holds, then the reservation): the last one is kept.
fn owner_tag(content: &str) -> String {
    thread_local! {
        static LAST: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((c, tag)) if c == content => tag.clone(),
            _ => {
                let mut tag = crate::util::sha512::hex(content.as_bytes());
                tag.truncate(32);
                *last = Some((content.to_string(), tag.clone()));
                tag
            }
        }
    })
}

/// The name of the owner link of the reservation of `ip` holding `content`.
fn owner_link_name(content: &str, ip: IpAddr) -> String {
    format!("{OWNER_PREFIX}{}.{ip}", owner_tag(content))
}

/// An owner link as listed: `.cnibox-owner.<tag>.<address>`.
#[derive(Debug, Clone, Copy)]
struct OwnerLink<'a> {
    name: &'a str,
    ino: u64,
    /// Where the dot between tag and address is in `name`.
    dot: usize,
}

impl<'a> OwnerLink<'a> {
    /// Where the dot after the tag is in `name`, if it is an owner link's.
    fn dot(name: &[u8]) -> Option<usize> {
        let rest = name.strip_prefix(OWNER_PREFIX.as_bytes())?;
        Some(OWNER_PREFIX.len() + rest.iter().position(|&b| b == b'.')?)
    }

    fn tag(&self) -> &'a str {
        &self.name[OWNER_PREFIX.len()..self.dot]
    }

    fn address(&self) -> &'a str {
        &self.name[self.dot + 1..]
    }
}

/// Inode numbers hashed with one multiplication (SipHash, the default, cost more than the
/// lookups on a store of hundreds of leases).
#[derive(Default)]
struct InoHasher(u64);

impl std::hash::Hasher for InoHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type InoMap<V> = std::collections::HashMap<u64, V, std::hash::BuildHasherDefault<InoHasher>>;

/// The plain files of a store directory, sorted by what they are. The names are kept in one
/// string: a string per file cost more than the kernel's listing on a store of hundreds of
/// leases.
#[derive(Debug, Default)]
struct Listing {
    names: String,
    /// Every other file (address files, and anything else a writer may have left): where its
    /// name is in `names`, inode.
    files: Vec<(Span, u64)>,
    /// Owner links: name, inode, and where the dot after the tag is.
    links: Vec<(Span, u64, usize)>,
    temps: Vec<Span>,
}

type Span = std::ops::Range<usize>;

impl Listing {
    /// File one plain file, named `name`, whose name will be `names[span]`, by what it is.
    fn sort(&mut self, name: &[u8], span: Span, ino: u64) {
        if !name.starts_with(b".") {
            self.files.push((span, ino));
        } else if name.starts_with(TEMP_PREFIX.as_bytes()) {
            self.temps.push(span);
        } else if let Some(dot) = OwnerLink::dot(name) {
            self.links.push((span, ino, dot));
        } else {
            self.files.push((span, ino));
        }
    }

    fn files(&self) -> impl Iterator<Item = (&str, u64)> {
        self.files.iter().map(|(span, ino)| (&self.names[span.clone()], *ino))
    }

    fn links(&self) -> impl Iterator<Item = OwnerLink<'_>> {
        self.links.iter().map(|(span, ino, dot)| OwnerLink { name: &self.names[span.clone()], ino: *ino, dot: *dot })
    }

    fn temps(&self) -> impl Iterator<Item = &str> {
        self.temps.iter().map(|span| &self.names[span.clone()])
    }
}

/// Which owner each address file belongs to, as far as owner links tell: a link places the
/// file of its own address when they are one inode. Inode 0 (a filesystem that does not say),
/// an inode under two files, or links that disagree place nothing: those files are read.
/// Keyed by inode: the address and the tag (empty when links disagree).
struct Owners<'a>(InoMap<(&'a str, &'a str)>);

impl<'a> Owners<'a> {
    fn of(listing: &'a Listing) -> Owners<'a> {
        use std::collections::hash_map::Entry;
        let mut seen: InoMap<u32> = InoMap::with_capacity_and_hasher(listing.files.len(), Default::default());
        for (_, ino) in listing.files() {
            *seen.entry(ino).or_insert(0) += 1;
        }
        let mut out: InoMap<(&str, &str)> = InoMap::with_capacity_and_hasher(listing.links.len(), Default::default());
        for l in listing.links() {
            if l.ino == 0 || seen.get(&l.ino) != Some(&1) {
                continue;
            }
            match out.entry(l.ino) {
                Entry::Vacant(v) => {
                    v.insert((l.address(), l.tag()));
                }
                Entry::Occupied(mut o) => {
                    if *o.get() != (l.address(), l.tag()) {
                        o.get_mut().1 = "";
                    }
                }
            }
        }
        Owners(out)
    }

    /// Whether the file `name` with inode `ino` belongs, by its owner link, to an owner other
    /// than the one tagged `tag`.
    fn other_than(&self, name: &str, ino: u64, tag: &str) -> bool {
        self.0.get(&ino).is_some_and(|(address, t)| *address == name && !t.is_empty() && *t != tag)
    }
}

/// Who holds a reservation: a container ID and, except in legacy files, an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub id: String,
    pub ifname: Option<String>,
}

impl Owner {
    /// Read the content of a reservation file.
    pub fn parse(content: &str) -> Owner {
        match content.trim().split_once(LINE_BREAK) {
            Some((id, ifname)) => Owner { id: id.to_string(), ifname: Some(ifname.to_string()) },
            None => Owner { id: content.trim().to_string(), ifname: None },
        }
    }
}

/// The exact content of a reservation file for (`id`, `ifname`).
pub fn content(id: &str, ifname: &str) -> String {
    format!("{}{LINE_BREAK}{ifname}", id.trim())
}

/// One reservation on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub ip: IpAddr,
    pub owner: Owner,
}

/// Test hook: when the environment has `CNIBOX_FAULT=<point>`, the process kills itself with
/// SIGKILL at that point, so tests can prove that a crash there leaves the store consistent.
/// Points: `ipam-after-write` (temp file written, not yet linked to the address's
/// name) and `ipam-after-link` (address file in place, temp file not yet renamed to the owner
/// link).
fn fault(point: &str) {
    if std::env::var_os("CNIBOX_FAULT").is_some_and(|v| v == point) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// A network's directory in the store, with the directory itself and its lock file open.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// Reservations are read relative to this: one path component to resolve per file, not
    /// the whole data directory path, for each of the node's leases on every ADD.
    dir_fd: File,
    lock: File,
    /// A reservation file written ahead of the lock, with its content.
    prepared: RefCell<Option<(PathBuf, String)>>,
}

impl Store {
    /// Open (creating as needed) `<data_dir>/<network>` and its lock file.
    pub fn open(data_dir: &Path, network: &str) -> Result<Store, IpamError> {
        let dir = data_dir.join(network);
        // Made only when it is not there yet (on every call but a network's first, a mkdir
        // that finds it and a stat that checks it are two system calls for nothing).
        let open_dir = || ufs::open(&dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0);
        let dir_fd = match open_dir() {
            Ok(f) => f,
            Err(_) => {
                ufs::make_dir(&dir, 0o755).map_err(|e| IpamError::store("mkdir", &dir, e))?;
                open_dir().map_err(|e| IpamError::store("open", &dir, e))?
            }
        };
        let path = dir.join(LOCK_FILE);
        let name = Path::new(LOCK_FILE);
        let lock = ufs::open_in(&dir_fd, name, OFlag::O_RDWR | OFlag::O_CREAT, 0o600)
            .or_else(|_| ufs::open_in(&dir_fd, name, OFlag::O_RDONLY, 0))
            .map_err(|e| IpamError::store("open", &path, e))?;
        Ok(Store { dir, dir_fd, lock, prepared: RefCell::new(None) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Write, before taking the lock, the file a reservation for (`id`, `ifname`) will be: its
    /// content does not depend on the address, so creating it stays out of the section every
    /// pod of the network serialises on. `reserve` links it. Until then it is a temp file like
    /// any other: a crash leaves it to release or GC.
    pub fn prepare(&self, id: &str, ifname: &str) -> Result<(), IpamError> {
        self.discard_prepared();
        let path = self.dir.join(format!("{TEMP_PREFIX}{}.prepared", crate::util::temp_token()));
        let content = content(id, ifname);
        write_file(&path, content.as_bytes(), false)?;
        fault("ipam-after-write");
        *self.prepared.borrow_mut() = Some((path, content));
        Ok(())
    }

    fn discard_prepared(&self) {
        if let Some((path, _)) = self.prepared.take() {
            let _ = fs::remove_file(path);
        }
    }

    /// The addresses held by (`id`, `ifname`), or by `id` in a legacy file, read without the
    /// lock: the spec forbids a runtime to run two operations for one container at once, so
    /// nothing can give or take this attachment's addresses meanwhile, and an ADD that refuses
    /// a duplicate does not hold every other pod of the network up while it reads each lease.
    /// Leases that owner links give to other owners are not read (see the module's notes).
    pub fn held_by(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, IpamError> {
        let tag = owner_tag(&content(id, ifname));
        let id = id.trim();
        let listing = self.listing()?;
        let owners = Owners::of(&listing);
        let mut out = Vec::new();
        for (name, ino) in listing.files() {
            if owners.other_than(name, ino, &tag) {
                continue;
            }
            let Ok(ip) = name.parse::<IpAddr>() else { continue };
            let Some(bytes) = self.read_entry(name) else { continue };
            let owner = Owner::parse(&String::from_utf8_lossy(&bytes));
            if owner.id == id && owner.ifname.as_deref().is_none_or(|i| i == ifname) {
                out.push(ip);
            }
        }
        Ok(out)
    }

    /// What releasing (`id`, `ifname`) removes: the files holding exactly that owner, or if
    /// none of them can be removed the legacy files holding `id` (as the reference does); the
    /// empty address files; and every temp file, stale once the lock is held. Read without the
    /// lock, like `held_by`; `Locked::remove` checks each file again under it.
    pub fn release_targets(&self, id: &str, ifname: &str) -> Result<ReleaseTargets, IpamError> {
        let mut t = ReleaseTargets { exact: content(id, ifname), legacy: id.trim().to_string(), ..Default::default() };
        let tag = owner_tag(&t.exact);
        let listing = self.listing()?;
        let owners = Owners::of(&listing);
        t.temps = listing.temps().map(String::from).collect();
        t.links = listing.links().filter(|l| l.tag() == tag).map(|l| l.name.to_string()).collect();
        for (name, ino) in listing.files() {
            if name == LOCK_FILE || name.starts_with(LAST_IP_PREFIX) || owners.other_than(name, ino, &tag) {
                continue;
            }
            let Some(bytes) = self.read_entry(name) else { continue };
            match String::from_utf8_lossy(&bytes).trim() {
                c if c == t.exact => t.exact_names.push(name.to_string()),
                c if c == t.legacy => t.legacy_names.push(name.to_string()),
                "" if name.parse::<IpAddr>().is_ok() => t.empty_names.push(name.to_string()),
                _ => {}
            }
        }
        Ok(t)
    }

    /// The content of the store's file `name`; None if it cannot be read. Three system calls
    /// per lease (openat, read, close; `fs::read` adds a stat, a seek, a second read and a walk
    /// of the whole path), which matters for the leases that ADD and DEL cannot place by their
    /// owner links (see the module's notes). A read of a regular file that returns less than
    /// asked for has reached its end.
    fn read_entry(&self, name: &str) -> Option<Vec<u8>> {
        let fd = ufs::open_in(&self.dir_fd, Path::new(name), OFlag::O_RDONLY, 0).ok()?;
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            match nix::unistd::read(&fd, &mut buf) {
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if n < buf.len() {
                        return Some(out);
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return None,
            }
        }
    }

    /// The plain files of the store directory, with their inodes, as the listing gives them.
    /// Names that are not UTF-8 (no writer of the store makes them) are left out.
    ///
    /// Each kept name is moved to the front of the buffer the kernel filled, behind the records
    /// still to read (a record is longer than its name), which then becomes the names' string;
    /// and the lists are sized for the most entries the buffer can hold. A copy of the names
    /// and lists grown as they filled touched more fresh memory, each new page a fault: on a
    /// store of 250 leases, an ADD's listing and the owners it places took 27 faults and 0.21 ms
    /// that way, 19 and 0.19 ms this way (0.12 ms of it the kernel's).
    fn listing(&self) -> Result<Listing, IpamError> {
        use crate::util::dirents::{DT_REG, DT_UNKNOWN, MIN_RECORD, entry_at};
        let mut buf = dirents::read_all(&self.dir_fd).map_err(|e| IpamError::store("read directory", self.dir(), e))?;
        let most = buf.len() / MIN_RECORD;
        let mut out =
            Listing { files: Vec::with_capacity(most), links: Vec::with_capacity(most), ..Default::default() };
        let (mut at, mut kept) = (0, 0);
        while let Some((e, next)) = entry_at(&buf, at) {
            let name = &buf[e.name.clone()];
            let plain = std::str::from_utf8(name).is_ok()
                && match e.kind {
                    DT_REG => true,
                    // The filesystem does not say: as `lstat` says.
                    DT_UNKNOWN => nix::sys::stat::fstatat(&self.dir_fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFREG),
                    _ => false,
                };
            if plain {
                let span = kept..kept + name.len();
                out.sort(name, span.clone(), e.ino);
                buf.copy_within(e.name, kept);
                kept = span.end;
            }
            at = next;
        }
        buf.truncate(kept);
        // Whole names, each valid: so is the lot.
        out.names = String::from_utf8(buf).map_err(|e| {
            IpamError::store("read directory", self.dir(), std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })?;
        Ok(out)
    }

    /// Every reservation: each file whose name is an address.
    pub fn reservations(&self) -> Result<Vec<Reservation>, IpamError> {
        let mut out = Vec::new();
        for (name, _) in self.listing()?.files() {
            let Ok(ip) = name.parse::<IpAddr>() else { continue };
            let Some(bytes) = self.read_entry(name) else { continue };
            out.push(Reservation { ip, owner: Owner::parse(&String::from_utf8_lossy(&bytes)) });
        }
        Ok(out)
    }

    /// Take the exclusive lock; it is released when the guard drops.
    pub fn lock(&self) -> Result<Locked<'_>, IpamError> {
        self.lock.lock().map_err(|e| IpamError::store("lock", self.dir.join(LOCK_FILE), e))?;
        Ok(Locked { store: self })
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.discard_prepared();
    }
}

/// The store with its lock held: every read and write goes through here.
#[derive(Debug)]
pub struct Locked<'a> {
    store: &'a Store,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = self.store.lock.unlock();
    }
}

/// The files a release removes (names in the store directory).
#[derive(Debug, Default)]
pub struct ReleaseTargets {
    exact: String,
    legacy: String,
    /// Files that held exactly (`id`, `ifname`); files that held `id` alone (legacy).
    exact_names: Vec<String>,
    legacy_names: Vec<String>,
    /// Address files with no content (see the module's notes on power loss).
    empty_names: Vec<String>,
    temps: Vec<String>,
    /// The owner links of (`id`, `ifname`).
    links: Vec<String>,
}

impl Locked<'_> {
    fn dir(&self) -> &Path {
        &self.store.dir
    }

    fn temp_path(&self, suffix: &str) -> PathBuf {
        self.dir().join(format!("{TEMP_PREFIX}{}{suffix}", crate::util::temp_token()))
    }

    /// Every reservation: each file whose name is an address.
    pub fn reservations(&self) -> Result<Vec<Reservation>, IpamError> {
        self.store.reservations()
    }

    /// Reserve `ip` for (`id`, `ifname`) and remember it as range set `range_id`'s last.
    /// `Ok(false)` when the address is already taken.
    pub fn reserve(&self, id: &str, ifname: &str, ip: IpAddr, range_id: usize) -> Result<bool, IpamError> {
        let name = self.dir().join(ip.to_string());
        let content = content(id, ifname);
        // The file is complete before the name exists; normally it was written before the lock
        // was taken (`Store::prepare`), and linking it says whether the name is taken. A file
        // still to be written is not, for a name that is.
        let prepared = self.store.prepared.borrow().as_ref().filter(|(_, c)| *c == content).map(|(p, _)| p.clone());
        if prepared.is_none() && fs::symlink_metadata(&name).is_ok() {
            return Ok(false);
        }
        let mut temp = prepared.clone();
        let mut linked = match &temp {
            Some(t) => link(t, &name, &content),
            None => Err(ErrorKind::NotFound.into()),
        };
        // Not prepared, or a release or GC under the lock took the prepared file for a stale
        // one: write it now.
        if linked.as_ref().is_err_and(|e| e.kind() == ErrorKind::NotFound) {
            let fresh = self.temp_path("");
            write_file(&fresh, content.as_bytes(), false)?;
            fault("ipam-after-write");
            linked = link(&fresh, &name, &content);
            if !matches!(linked, Ok(Linked::Hard)) {
                let _ = fs::remove_file(&fresh);
            }
            temp = Some(fresh);
        }
        let linked = linked.map_err(|e| IpamError::store("link", &name, e))?;
        if linked == Linked::Taken {
            return Ok(false);
        }
        fault("ipam-after-link");
        // The temp, now a second name of the lease, becomes its owner link; without hard links
        // it only goes.
        if let Some(t) = temp {
            let owner = self.dir().join(owner_link_name(&content, ip));
            if linked != Linked::Hard || fs::rename(&t, owner).is_err() {
                let _ = fs::remove_file(&t);
            }
        }
        if prepared.is_some() {
            // Renamed, linked anew, or gone: nothing to discard any more.
            self.store.prepared.take();
        }
        // Only a hint for where to continue, read and written under the lock; an unreadable or
        // out-of-range one means "start of the range" (as a crash between the write and the
        // length can leave it). Rewritten in place, as the reference does, but
        // without truncating it first: the file keeps its block, which a replacement or a
        // truncation would free (on a filesystem mounted with `discard`, a synchronous discard
        // request to the disk on every ADD).
        let last = self.dir().join(format!("{LAST_IP_PREFIX}{range_id}"));
        let text = ip.to_string();
        // Cut to length only when the old text was longer: the truncation of a file to the size
        // it has still costs the filesystem a pass over its blocks.
        ufs::open(&last, OFlag::O_WRONLY | OFlag::O_CREAT, 0o600)
            .and_then(|mut f| {
                f.write_all(text.as_bytes())?;
                let len = text.len() as u64;
                if f.metadata()?.len() > len { f.set_len(len) } else { Ok(()) }
            })
            .map_err(|e| IpamError::store("write", &last, e))?;
        Ok(true)
    }

    /// The last address reserved from range set `range_id`, if recorded and readable.
    pub fn last_reserved(&self, range_id: usize) -> Option<IpAddr> {
        let text = ufs::read_to_string(&self.dir().join(format!("{LAST_IP_PREFIX}{range_id}"))).ok()?;
        text.trim().parse::<IpAddr>().ok().map(super::canonical_ip)
    }

    /// `ip` has a reservation file.
    pub fn is_reserved(&self, ip: IpAddr) -> bool {
        fs::symlink_metadata(self.dir().join(ip.to_string())).is_ok()
    }

    /// The addresses held by (`id`, `ifname`), or by `id` in a legacy file.
    pub fn get_by_id(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, IpamError> {
        self.store.held_by(id, ifname)
    }

    /// Whether (`id`, `ifname`) holds any address (or `id` a legacy one).
    pub fn find_by_id(&self, id: &str, ifname: &str) -> Result<bool, IpamError> {
        Ok(!self.get_by_id(id, ifname)?.is_empty())
    }

    /// Delete every file holding exactly (`id`, `ifname`); if there is none, every legacy
    /// file holding `id`. Stale temp files go too. Deletion is best effort, as in the
    /// reference: a file that cannot be read or removed is skipped.
    pub fn release_by_id(&self, id: &str, ifname: &str) -> Result<usize, IpamError> {
        let targets = self.store.release_targets(id, ifname)?;
        Ok(self.remove(&targets))
    }

    /// Remove what `Store::release_targets` found: the count of reservations removed.
    /// Each file is read again first: found without the lock, it may since have been released
    /// and its address taken by another pod.
    pub fn remove(&self, targets: &ReleaseTargets) -> usize {
        for t in &targets.temps {
            let _ = fs::remove_file(self.dir().join(t));
        }
        let remove_holding = |names: &[String], content: &str| {
            names
                .iter()
                .filter(|n| {
                    self.store.read_entry(n).is_some_and(|b| String::from_utf8_lossy(&b).trim() == content)
                        && fs::remove_file(self.dir().join(n)).is_ok()
                })
                .count()
        };
        // The owner's links go first: a lease without one is read, so a crash in between
        // leaves nothing wrong, where a link without its lease would still match the owner in
        // the Go plugin's content-only lookups. Only this owner's ADD makes its links, and not
        // while this release runs.
        for l in &targets.links {
            let _ = fs::remove_file(self.dir().join(l));
        }
        remove_holding(&targets.empty_names, "");
        let n = remove_holding(&targets.exact_names, &targets.exact);
        if n > 0 { n } else { remove_holding(&targets.legacy_names, &targets.legacy) }
    }

    /// Remove every reservation whose owner `keep` rejects; returns the addresses released.
    /// Temp files left by a process that died while reserving go too, and owner links whose
    /// address file is gone (with the lock held, no ADD is between linking an address and
    /// naming its owner). One listing serves all three.
    pub fn retain(&self, keep: impl Fn(&Owner) -> bool) -> Result<Vec<IpAddr>, IpamError> {
        let listing = self.store.listing()?;
        for name in listing.temps() {
            let _ = fs::remove_file(self.dir().join(name));
        }
        let mut released = Vec::new();
        // Files that stay, and the names of those released (their links are gone already).
        let mut kept = std::collections::HashSet::new();
        let mut gone = std::collections::HashSet::new();
        // A lease that cannot be removed does not stop the others going: the first such
        // failure is reported once all are done.
        let mut failed = None;
        for (name, ino) in listing.files() {
            let lease = name.parse::<IpAddr>().ok().zip(self.store.read_entry(name));
            match lease {
                Some((ip, bytes)) if !keep(&Owner::parse(&String::from_utf8_lossy(&bytes))) => {
                    // Its links first, as in `remove`.
                    for l in listing.links().filter(|l| l.address() == name) {
                        let _ = fs::remove_file(self.dir().join(l.name));
                    }
                    let path = self.dir().join(name);
                    match fs::remove_file(&path) {
                        Ok(()) => {
                            released.push(ip);
                            gone.insert(name);
                        }
                        Err(e) => {
                            failed.get_or_insert(IpamError::store("remove", &path, e));
                            kept.insert((name, ino));
                        }
                    }
                }
                _ => {
                    kept.insert((name, ino));
                }
            }
        }
        for l in listing.links() {
            if !gone.contains(l.address()) && !kept.contains(&(l.address(), l.ino)) {
                let _ = fs::remove_file(self.dir().join(l.name));
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(released),
        }
    }

    /// Prove the directory is writable: create, sync and remove a temp file.
    pub fn probe_writable(&self) -> Result<(), IpamError> {
        let temp = self.temp_path(".probe");
        write_file(&temp, b"", true)?;
        fs::remove_file(&temp).map_err(|e| IpamError::store("remove", &temp, e))
    }
}

/// Create `path` for writing, failing if it exists, mode 0600 as the reference's current releases
/// write every file of the store (its 1.1.1 wrote leases 0644).
fn create_new(path: &Path) -> std::io::Result<File> {
    ufs::open(path, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL, 0o600)
}

/// Write a new file (`create_new`); `durable` syncs it.
fn write_file(path: &Path, data: &[u8], durable: bool) -> Result<(), IpamError> {
    // A fresh file, never the old one truncated: a temp left by a crash may be a second name
    // of a live reservation. Unlinked only when it is there: an unlink takes the directory's
    // lock for writing even when it finds nothing, and every listing of the store waits for it.
    let create = || create_new(path);
    let mut f = match create() {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let _ = fs::remove_file(path);
            create()
        }
        other => other,
    }
    .map_err(|e| IpamError::store("create", path, e))?;
    f.write_all(data).and_then(|_| if durable { f.sync_all() } else { Ok(()) }).map_err(|e| {
        let _ = fs::remove_file(path);
        IpamError::store("write", path, e)
    })
}

/// How a reservation file got the address's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Linked {
    /// The temp file is now also the address file.
    Hard,
    /// A filesystem without hard links: the address file was created with the content.
    Created,
    /// The name is taken.
    Taken,
}

/// Give the reservation file `temp` the address's `name`.
fn link(temp: &Path, name: &Path, content: &str) -> std::io::Result<Linked> {
    match fs::hard_link(temp, name) {
        Ok(()) => Ok(Linked::Hard),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(Linked::Taken),
        // A filesystem without hard links: fall back to an exclusive create.
        Err(e) if matches!(e.kind(), ErrorKind::Unsupported | ErrorKind::PermissionDenied) => {
            match create_exclusive(name, content.as_bytes()).map_err(std::io::Error::other)? {
                true => Ok(Linked::Created),
                false => Ok(Linked::Taken),
            }
        }
        Err(e) => Err(e),
    }
}

fn create_exclusive(path: &Path, data: &[u8]) -> Result<bool, IpamError> {
    let mut f = match create_new(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(IpamError::store("create", path, e)),
    };
    f.write_all(data).map_err(|e| {
        let _ = fs::remove_file(path);
        IpamError::store("write", path, e)
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    use crate::util::scratch::Scratch as Tmp;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn names_that_are_not_utf8_are_left_out_of_listings() {
        use std::os::unix::ffi::OsStrExt;
        let t = Tmp::new("utf8");
        let s = Store::open(&t.0, "n").unwrap();
        s.lock().unwrap().reserve("c1", "eth0", ip("10.0.0.2"), 0).unwrap();
        // Halves of "é" and of other two-byte characters: invalid alone, valid side by side,
        // whichever order the directory lists them in.
        for (a, b) in [(&b"a\xc3"[..], &b"\xa9b"[..]), (b"\xc3", b"\xa9"), (b"x\xce", b"\xbb")] {
            fs::write(t.0.join("n").join(std::ffi::OsStr::from_bytes(a)), "c2\r\neth0").unwrap();
            fs::write(t.0.join("n").join(std::ffi::OsStr::from_bytes(b)), "c2\r\neth0").unwrap();
        }
        let listing = s.listing().unwrap();
        let mut files: Vec<&str> = listing.files().map(|(name, _)| name).collect();
        files.sort();
        assert_eq!(files, ["10.0.0.2", "last_reserved_ip.0", "lock"]);
        assert_eq!(listing.links().count(), 1);
        assert_eq!(s.held_by("c1", "eth0").unwrap(), [ip("10.0.0.2")]);
    }

    #[test]
    fn owner_tags_follow_their_content() {
        let (a, b) = ("c1\r\neth0", "c2\r\neth0");
        let full = |c: &str| crate::util::sha512::hex(c.as_bytes())[..32].to_string();
        for c in [a, a, b, a, b, b] {
            assert_eq!(owner_tag(c), full(c));
        }
        assert_ne!(owner_tag(a), owner_tag(b));
    }

    /// The files of `dir` that are owner links (`links`) or are not, sorted.
    fn listed(dir: &Path, links: bool) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(OWNER_PREFIX) == links)
            .collect();
        v.sort();
        v
    }

    fn names(dir: &Path) -> Vec<String> {
        listed(dir, false)
    }

    fn links(dir: &Path) -> Vec<String> {
        listed(dir, true)
    }

    fn ino(p: &Path) -> u64 {
        std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap())
    }

    #[test]
    fn prepared_reservations() {
        let t = Tmp::new("prep");
        let s = Store::open(&t.0, "net1").unwrap();
        let dir = t.0.join("net1");
        // Written ahead of the lock, then linked; nothing else is left behind.
        s.prepare("c1", "eth0").unwrap();
        assert_eq!(names(&dir).len(), 2, "the prepared temp and the lock");
        {
            let l = s.lock().unwrap();
            // Another owner's reservation does not use it.
            assert!(l.reserve("c0", "eth0", ip("10.0.0.9"), 0).unwrap());
            assert!(l.reserve("c1", "eth0", ip("10.0.0.2"), 0).unwrap());
        }
        assert_eq!(fs::read(dir.join("10.0.0.2")).unwrap(), b"c1\r\neth0");
        assert_eq!(fs::read(dir.join("10.0.0.9")).unwrap(), b"c0\r\neth0", "another owner's reservation");
        assert_eq!(names(&dir), ["10.0.0.2", "10.0.0.9", "last_reserved_ip.0", "lock"]);
        // The temps became the owner links: second names of the leases.
        let mut want =
            vec![owner_link_name("c1\r\neth0", ip("10.0.0.2")), owner_link_name("c0\r\neth0", ip("10.0.0.9"))];
        want.sort();
        assert_eq!(links(&dir), want);
        assert_eq!(ino(&dir.join(owner_link_name("c1\r\neth0", ip("10.0.0.2")))), ino(&dir.join("10.0.0.2")));
        // A release under the lock takes the prepared temp for a stale one: the reservation
        // writes it again.
        s.prepare("c2", "eth0").unwrap();
        {
            let l = s.lock().unwrap();
            l.release_by_id("nobody", "eth0").unwrap();
            assert!(l.reserve("c2", "eth0", ip("10.0.0.3"), 0).unwrap());
        }
        assert_eq!(fs::read(dir.join("10.0.0.3")).unwrap(), b"c2\r\neth0");
        // One left unused goes with the store.
        s.prepare("c3", "eth0").unwrap();
        drop(s);
        assert_eq!(names(&dir), ["10.0.0.2", "10.0.0.3", "10.0.0.9", "last_reserved_ip.0", "lock"]);
    }

    /// The last reserved address is rewritten in place: a shorter one leaves no tail of the
    /// longer one before it.
    #[test]
    fn last_reserved_is_exact_whatever_its_length() {
        let t = Tmp::new("lastlen");
        let s = Store::open(&t.0, "n").unwrap();
        let l = s.lock().unwrap();
        for (i, a) in ["10.0.0.100", "10.0.0.9", "10.0.0.10", "10.0.0.11"].iter().enumerate() {
            assert!(l.reserve(&format!("c{i}"), "eth0", ip(a), 0).unwrap());
            assert_eq!(fs::read_to_string(t.0.join("n/last_reserved_ip.0")).unwrap(), *a);
            assert_eq!(l.last_reserved(0), Some(ip(a)));
        }
    }

    #[test]
    fn format_is_the_references() {
        let t = Tmp::new("fmt");
        let s = Store::open(&t.0, "net1").unwrap();
        let dir = t.0.join("net1");
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o755);
        let l = s.lock().unwrap();
        assert!(l.reserve(" c1 ", "eth0", ip("10.0.0.2"), 0).unwrap());
        assert!(l.reserve("c1", "eth1", ip("2001:db8::2"), 1).unwrap());
        assert!(!l.reserve("c2", "eth0", ip("10.0.0.2"), 0).unwrap());
        assert_eq!(fs::read(dir.join("10.0.0.2")).unwrap(), b"c1\r\neth0");
        assert_eq!(fs::metadata(dir.join("10.0.0.2")).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_to_string(dir.join("last_reserved_ip.0")).unwrap(), "10.0.0.2");
        assert_eq!(fs::read_to_string(dir.join("last_reserved_ip.1")).unwrap(), "2001:db8::2");
        assert_eq!(names(&dir), ["10.0.0.2", "2001:db8::2", "last_reserved_ip.0", "last_reserved_ip.1", "lock"]);
        assert_eq!(l.last_reserved(0), Some(ip("10.0.0.2")));
        assert_eq!(l.last_reserved(7), None);
        assert_eq!(l.get_by_id("c1", "eth0").unwrap(), vec![ip("10.0.0.2")]);
        assert!(l.find_by_id("c1", "eth1").unwrap());
        assert!(!l.find_by_id("c1", "eth2").unwrap());
        assert!(l.is_reserved(ip("10.0.0.2")) && !l.is_reserved(ip("10.0.0.3")));
    }

    #[test]
    fn release_exact_then_legacy() {
        let t = Tmp::new("rel");
        let s = Store::open(&t.0, "n").unwrap();
        let dir = t.0.join("n");
        let l = s.lock().unwrap();
        l.reserve("c1", "eth0", ip("10.0.0.2"), 0).unwrap();
        l.reserve("c1", "eth1", ip("10.0.0.3"), 0).unwrap();
        fs::write(dir.join("10.0.0.4"), "c1\n").unwrap(); // legacy, with whitespace
        fs::write(dir.join(".cnibox-tmp.99999"), "c9\r\neth0").unwrap(); // stale temp
        assert_eq!(l.get_by_id("c1", "eth0").unwrap().len(), 2);
        assert_eq!(l.release_by_id("c1", "eth0").unwrap(), 1);
        assert!(!dir.join("10.0.0.2").exists() && dir.join("10.0.0.4").exists());
        assert!(!dir.join(".cnibox-tmp.99999").exists());
        // No exact match left for eth0: the legacy file goes.
        assert_eq!(l.release_by_id("c1", "eth0").unwrap(), 1);
        assert_eq!(names(&dir), ["10.0.0.3", "last_reserved_ip.0", "lock"]);
        assert_eq!(l.release_by_id("nobody", "eth0").unwrap(), 0);
    }

    #[test]
    fn release_checks_again_under_the_lock_and_clears_empty_files() {
        let t = Tmp::new("relck");
        let s = Store::open(&t.0, "n").unwrap();
        let dir = t.0.join("n");
        s.lock().unwrap().reserve("c1", "eth0", ip("10.0.0.2"), 0).unwrap();
        // What a power loss can leave: an address file with its name but no content.
        fs::write(dir.join("10.0.0.7"), "").unwrap();
        let targets = s.release_targets("c1", "eth0").unwrap();
        // Meanwhile the address is released and taken by another pod.
        {
            let l = s.lock().unwrap();
            fs::remove_file(dir.join("10.0.0.2")).unwrap();
            assert!(l.reserve("c2", "eth0", ip("10.0.0.2"), 0).unwrap());
        }
        assert_eq!(s.lock().unwrap().remove(&targets), 0);
        assert_eq!(fs::read(dir.join("10.0.0.2")).unwrap(), b"c2\r\neth0", "the other pod's lease stays");
        assert!(!dir.join("10.0.0.7").exists(), "an empty address file is freed by any release");
    }

    #[test]
    fn a_temp_left_as_a_second_name_of_a_lease_is_never_rewritten() {
        let t = Tmp::new("tmplink");
        let s = Store::open(&t.0, "n").unwrap();
        let dir = t.0.join("n");
        s.lock().unwrap().reserve("c1", "eth0", ip("10.0.0.2"), 0).unwrap();
        // A crash between the link and the temp's removal, and a later process with that pid.
        let temp = dir.join(format!(".cnibox-tmp.{}.prepared", crate::util::temp_token()));
        fs::hard_link(dir.join("10.0.0.2"), &temp).unwrap();
        s.prepare("c2", "eth0").unwrap();
        assert_eq!(fs::read(dir.join("10.0.0.2")).unwrap(), b"c1\r\neth0");
        assert_eq!(fs::read(&temp).unwrap(), b"c2\r\neth0");
    }

    #[test]
    fn retain_for_gc() {
        let t = Tmp::new("gc");
        let s = Store::open(&t.0, "n").unwrap();
        let l = s.lock().unwrap();
        l.reserve("keep", "eth0", ip("10.0.0.2"), 0).unwrap();
        l.reserve("gone", "eth0", ip("10.0.0.3"), 0).unwrap();
        l.reserve("keep", "eth1", ip("10.0.0.4"), 0).unwrap();
        let gone = l.retain(|o| o.id == "keep" && o.ifname.as_deref() == Some("eth0")).unwrap();
        let mut gone = gone;
        gone.sort();
        assert_eq!(gone, vec![ip("10.0.0.3"), ip("10.0.0.4")]);
        assert_eq!(
            l.reservations().unwrap(),
            vec![Reservation { ip: ip("10.0.0.2"), owner: Owner::parse("keep\r\neth0") }]
        );
    }

    #[test]
    fn owner_links_place_leases_without_reading_them() {
        let t = Tmp::new("links");
        let s = Store::open(&t.0, "n").unwrap();
        let dir = t.0.join("n");
        let l = s.lock().unwrap();
        l.reserve("c1", "eth0", ip("10.0.0.2"), 0).unwrap();
        l.reserve("c2", "eth0", ip("10.0.0.3"), 0).unwrap();
        // Written as the Go plugin writes: no owner link, so it is read.
        fs::write(dir.join("10.0.0.5"), "c1\r\neth0").unwrap();
        // The links say 10.0.0.3 is c2's, so it is not read: rewritten in place (which no
        // writer does) to claim c1, it is still not c1's.
        fs::write(dir.join("10.0.0.3"), "c1\r\neth0").unwrap();
        let mut held = l.get_by_id("c1", "eth0").unwrap();
        held.sort();
        assert_eq!(held, [ip("10.0.0.2"), ip("10.0.0.5")]);
        // Links that disagree about an inode place nothing: it is read.
        let odd = dir.join(owner_link_name("c9\r\neth0", ip("10.0.0.3")));
        fs::hard_link(dir.join("10.0.0.3"), &odd).unwrap();
        assert_eq!(l.get_by_id("c1", "eth0").unwrap().len(), 3);
        fs::remove_file(&odd).unwrap();
        // So does an inode under two address files (a filesystem without inode numbers of its
        // own for each file), and a link names only its own address.
        fs::hard_link(dir.join("10.0.0.3"), dir.join("10.0.0.6")).unwrap();
        assert_eq!(l.get_by_id("c1", "eth0").unwrap().len(), 4);
        fs::remove_file(dir.join("10.0.0.6")).unwrap();
        // Release: c1's leases and links go, c2's lease and link stay.
        assert_eq!(l.release_by_id("c1", "eth0").unwrap(), 2);
        assert_eq!(names(&dir), ["10.0.0.3", "last_reserved_ip.0", "lock"]);
        assert_eq!(links(&dir), [owner_link_name("c2\r\neth0", ip("10.0.0.3"))]);
        // GC drops a link whose lease is gone and keeps the others.
        l.reserve("c3", "eth0", ip("10.0.0.4"), 0).unwrap();
        fs::remove_file(dir.join("10.0.0.3")).unwrap();
        l.retain(|_| true).unwrap();
        assert_eq!(links(&dir), [owner_link_name("c3\r\neth0", ip("10.0.0.4"))]);
        assert_eq!(l.get_by_id("c3", "eth0").unwrap(), [ip("10.0.0.4")]);
    }

    #[test]
    fn owners() {
        assert_eq!(Owner::parse("c\r\neth0"), Owner { id: "c".into(), ifname: Some("eth0".into()) });
        assert_eq!(Owner::parse(" c \n"), Owner { id: "c".into(), ifname: None });
        assert_eq!(content(" c ", "eth0"), "c\r\neth0");
    }

    #[test]
    fn open_fails_naming_the_path() {
        let t = Tmp::new("ro");
        fs::create_dir_all(&t.0).unwrap();
        fs::write(t.0.join("file"), "").unwrap();
        let e = Store::open(&t.0.join("file"), "n").unwrap_err().to_string();
        assert!(e.starts_with("mkdir ") && e.contains("file/n"), "{e}");
    }
}
