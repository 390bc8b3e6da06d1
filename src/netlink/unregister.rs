//! Deleting a link without waiting for the kernel to free its memory.
//!
//! An RTM_DELLINK request returns only after the kernel has unregistered the device and then,
//! with the RTNL lock released, waited for an RCU barrier before freeing it: 15 ms and more per
//! request on a quiet node, most of a pod's DEL. Nothing anyone can observe changes during that
//! wait. By the time the kernel announces RTM_DELLINK to the namespace's listeners, the device
//! has left the namespace's lists (its name and index are free), its addresses and routes are
//! gone, and so has a veth's peer, which leaves its bridge in the same batch.
//!
//! So the request goes out from a forked child, and the caller returns as soon as the
//! announcement for its link arrives; the child waits out the barrier alone and exits. The
//! kernel's answer still reaches the caller through a pipe when it is an error (or when the
//! announcement was missed). Whenever this cannot be done safely (another thread in the
//! process, no fork), the plain request is sent instead.

// fork(2) is the one unsafe call here. It is sound because the process is single-threaded,
// checked just before the call: no other thread can hold a lock (the allocator's included)
// that the child would wait for, which is also what lets the child allocate (closing every
// descriptor but two builds a small list). Otherwise it makes only system calls on the
// descriptors it keeps, into buffers allocated before the fork, and leaves with _exit(2),
// which runs no destructor and flushes nothing.
#![allow(unsafe_code)]

use super::detach::single_threaded;
use super::nlmsg::{NLMSG_ERROR, error_code, messages};
use super::{Error, Link, Netlink};
use crate::netns::Netns;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::{ForkResult, pipe2};
use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkBuffer, NetlinkMessage};
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// RTNLGRP_LINK as a bind(2) group mask (RTMGRP_LINK).
const RTMGRP_LINK: u32 = 1;
const RTM_DELLINK: u16 = 17;

impl Netlink {
    /// Delete `link`, which lives in `ns` (the namespace this connection serves), and return
    /// once the kernel has unregistered it, without waiting for the memory to be freed.
    pub fn del_link_unwaited(&self, ns: &Netns, link: &Link) -> Result<(), Error> {
        let context = || format!("failed to delete \"{}\"", link.name);
        if !single_threaded() {
            return self.del_link(link);
        }
        // Sockets not to be had: the plain request says why, if it fails too.
        let Ok(Ok(prepared)) = ns.run(|| Prepared::new(link.index)) else { return self.del_link(link) };
        match prepared.run(link.index) {
            Outcome::Gone => Ok(()),
            Outcome::Failed(errno) => Err(Error::kernel(context(), errno, None)),
            Outcome::Unknown => self.del_link(link),
        }
    }
}

/// What the parent learnt.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// The kernel announced the link's removal, or acknowledged the request.
    Gone,
    /// The kernel refused the request with this errno.
    Failed(i32),
    /// No fork, or a child that died before reporting: ask again, the plain way.
    Unknown,
}

/// Everything both processes need, made before the fork (in the link's namespace: sockets
/// belong to the namespace they were created in).
struct Prepared {
    /// Bound to the link group: sees the announcement.
    events: Socket,
    /// Sends the request; only the child uses it.
    request: Socket,
    message: Vec<u8>,
    ack: Vec<u8>,
}

impl Prepared {
    fn new(index: u32) -> std::io::Result<Prepared> {
        let mut events = Socket::new(NETLINK_ROUTE)?;
        events.bind(&SocketAddr::new(0, RTMGRP_LINK))?;
        let request = Socket::new(NETLINK_ROUTE)?;
        Ok(Prepared { events, request, message: dellink_request(index), ack: vec![0; 32 * 1024] })
    }

    fn run(mut self, index: u32) -> Outcome {
        let Ok((reader, writer)) = pipe2(OFlag::O_CLOEXEC) else { return Outcome::Unknown };
        // SAFETY: see the note at the top of this file; single_threaded() was checked.
        match unsafe { nix::unistd::fork() } {
            Err(_) => Outcome::Unknown,
            Ok(ForkResult::Child) => self.child(&writer),
            Ok(ForkResult::Parent { .. }) => {
                drop(writer);
                self.wait(index, &reader)
            }
        }
    }

    /// Close every descriptor but the request socket and the report pipe (the runtime reads
    /// the plugin's stdout until every copy of it is closed, and nothing else of the plugin's,
    /// a namespace or a store's lock, is to be held while the kernel frees the device), send
    /// the request, report the kernel's answer, leave.
    fn child(&mut self, writer: &OwnedFd) -> ! {
        super::detach::close_all_but(self.request.as_raw_fd(), writer.as_raw_fd());
        let code = match self.request.send(&self.message, 0) {
            Err(e) => e.raw_os_error().unwrap_or(Errno::EIO as i32),
            Ok(_) => {
                let mut buf: &mut [u8] = &mut self.ack;
                match self.request.recv(&mut buf, 0) {
                    Err(e) => e.raw_os_error().unwrap_or(Errno::EIO as i32),
                    Ok(n) => ack_errno(&self.ack[..n]).unwrap_or(Errno::EIO as i32),
                }
            }
        };
        let _ = nix::unistd::write(writer, &code.to_ne_bytes());
        // SAFETY: _exit ends the process without running anything of the parent's.
        unsafe { nix::libc::_exit(0) }
    }

    /// Until the announcement of `index`'s removal, or the child's report.
    fn wait(&mut self, index: u32, reader: &OwnedFd) -> Outcome {
        let mut listening = true;
        loop {
            let mut fds = vec![PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
            if listening {
                fds.push(PollFd::new(self.events.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                Err(_) => return Outcome::Unknown,
                Ok(_) => {}
            }
            let report = fds[0].any().unwrap_or(false);
            let event = listening && fds[1].any().unwrap_or(false);
            drop(fds);
            if report {
                let mut code = [0u8; 4];
                return match nix::unistd::read(reader, &mut code) {
                    Ok(4) => match i32::from_ne_bytes(code) {
                        0 => Outcome::Gone,
                        errno => Outcome::Failed(errno),
                    },
                    _ => Outcome::Unknown,
                };
            }
            if event {
                let mut buf: &mut [u8] = &mut self.ack;
                match self.events.recv(&mut buf, 0) {
                    Ok(n) if announces_removal(&self.ack[..n], index) => return Outcome::Gone,
                    Ok(_) => {}
                    // ENOBUFS: announcements were dropped; the child's report still comes.
                    Err(_) => listening = false,
                }
            }
        }
    }
}

/// RTM_DELLINK for the link with this index, asking for an ACK.
fn dellink_request(index: u32) -> Vec<u8> {
    let mut link = LinkMessage::default();
    link.header.index = index;
    let mut msg = NetlinkMessage::from(RouteNetlinkMessage::DelLink(link));
    msg.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    msg.header.sequence_number = 1;
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

/// The errno an ACK carries (0 for success); None if `buf` holds no ACK.
fn ack_errno(buf: &[u8]) -> Option<i32> {
    messages(buf).next().filter(|m| m.kind == NLMSG_ERROR).and_then(|m| error_code(m.payload))
}

/// Whether `datagram` holds the announcement that the link `index` was removed (RTM_DELLINK of
/// family AF_UNSPEC: a bridge also announces a port leaving it, with AF_BRIDGE). Only the fixed
/// header is read (struct ifinfomsg: family u8, pad u8, type u16, index i32, ...), so a message
/// cut short by the receive buffer still counts.
fn announces_removal(datagram: &[u8], index: u32) -> bool {
    const HEADER: usize = 16;
    let mut rest = datagram;
    while rest.len() >= HEADER {
        let msg = NetlinkBuffer::new(rest);
        let len = msg.length() as usize;
        if len < HEADER {
            break;
        }
        let p = &rest[HEADER..len.min(rest.len())];
        if msg.message_type() == RTM_DELLINK
            && p.len() >= 8
            && p[0] == u8::from(AddressFamily::Unspec)
            && p[4..8] == index.to_ne_bytes()
        {
            return true;
        }
        let aligned = (len + 3) & !3;
        if aligned >= rest.len() {
            break;
        }
        rest = &rest[aligned..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dellink_request_bytes() {
        // struct nlmsghdr { len 32, type RTM_DELLINK, flags REQUEST|ACK, seq 1, pid 0 },
        // struct ifinfomsg { family 0, type 0, index 7, flags 0, change 0 }.
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            32, 0, 0, 0, 17, 0, 5, 0, 1, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(dellink_request(7), want);
    }

    #[test]
    fn acks() {
        // NLMSG_ERROR with error -19 (ENODEV), echoing the request's header.
        let mut nack = vec![36, 0, 0, 0, 2, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0];
        nack.extend((-19i32).to_ne_bytes());
        nack.extend(&dellink_request(7)[..16]);
        assert_eq!(ack_errno(&nack), Some(19));
        let mut ack = nack.clone();
        ack[16..20].copy_from_slice(&0i32.to_ne_bytes());
        assert_eq!(ack_errno(&ack), Some(0));
        assert_eq!(ack_errno(&dellink_request(7)), None);
        assert_eq!(ack_errno(&[1, 2, 3]), None);
    }

    /// An announcement as the kernel sends it: header, ifinfomsg, no attributes needed here.
    fn announcement(family: u8, index: u32) -> Vec<u8> {
        let mut m = vec![32, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, family, 0, 1, 0];
        m.extend(index.to_ne_bytes());
        m.extend([0u8; 8]);
        m
    }

    #[test]
    fn removal_announcements() {
        assert!(announces_removal(&announcement(0, 9), 9));
        assert!(!announces_removal(&announcement(0, 8), 9));
        // AF_BRIDGE: a port left its bridge, the device may still be there.
        assert!(!announces_removal(&announcement(7, 9), 9));
        // Several messages in one datagram.
        let mut two = announcement(7, 9);
        two.extend(announcement(0, 9));
        assert!(announces_removal(&two, 9));
        // Cut short by the receive buffer: the header still counts.
        let mut long = announcement(0, 9);
        long[0..4].copy_from_slice(&40000u32.to_ne_bytes());
        assert!(announces_removal(&long, 9));
        assert!(!announces_removal(&[], 9));
        assert!(!announces_removal(&[0; 3], 9));
    }

    #[test]
    fn a_test_binary_has_threads() {
        // The harness runs this on a thread of its own.
        assert!(!single_threaded());
    }
}

/// Real kernel: the link is gone when the call returns, and errors still come back.
#[cfg(all(test, target_os = "linux"))]
mod kernel_tests {
    use super::super::in_new_netns;
    use super::*;

    #[test]
    fn in_a_threaded_process_the_plain_request_is_sent() {
        // Test binaries run each test on a thread of its own: the fork must be declined.
        in_new_netns(|| {
            let nl = Netlink::open().unwrap();
            let ns = Netns::current().unwrap();
            nl.create_veth("unreg0", "unreg1", &ns, None, None, None).unwrap();
            let link = nl.link("unreg0").unwrap();
            nl.del_link_unwaited(&ns, &link).unwrap();
            assert!(nl.link_by_name("unreg0").unwrap().is_none());
            assert!(nl.link_by_name("unreg1").unwrap().is_none());
            let e = nl.del_link_unwaited(&ns, &link).unwrap_err();
            assert!(e.is_not_found(), "{e}");
        });
    }
}
