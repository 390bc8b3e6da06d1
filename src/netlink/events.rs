//! Waiting for a link's announcement instead of asking for the link.
//!
//! Once a container's end of a veth pair comes up, the kernel's link watcher marks both ends
//! operationally up and announces each to the namespace's link listeners; right after, its
//! IPv6 worker configures the new interface and sends its first router solicitation and
//! multicast listener reports, which a bridge floods to every port, all under the RTNL lock.
//! A link request (RTM_GETLINK takes that lock) made then waits for the flood: about 2 ms on
//! a bridge of 250 pods. The announcement needs no lock: a socket subscribed to the link group
//! before the change hears of it as soon as the watcher has run.

use super::Error;
use super::link::Link;
use super::nlmsg::messages;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// RTNLGRP_LINK as a bind(2) group mask (RTMGRP_LINK).
const RTMGRP_LINK: u32 = 1;
const RTM_NEWLINK: u16 = 16;
/// Room for announcements from other pods' changes meanwhile (the kernel caps it at rmem_max).
const RECEIVE_BUFFER: usize = 1 << 20;

/// A subscription to the link announcements of one namespace.
pub struct LinkEvents {
    socket: Socket,
    buf: Vec<u8>,
}

/// Why a link's coming up was not heard of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unheard {
    /// Not announced within the time given.
    TimedOut,
    /// Announcements were lost (the socket's buffer overflowed) or cannot be read.
    Lost,
}

impl LinkEvents {
    /// Listen to the link announcements of the calling thread's namespace, from now on.
    pub fn open() -> Result<LinkEvents, Error> {
        let context = "failed to subscribe to link announcements";
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| Error::io(context, &e))?;
        socket.bind(&SocketAddr::new(0, RTMGRP_LINK)).map_err(|e| Error::io(context, &e))?;
        let _ = socket.set_rx_buf_sz(RECEIVE_BUFFER as nix::libc::c_int);
        Ok(LinkEvents { socket, buf: vec![0; 64 * 1024] })
    }

    /// Wait until the link `index` is announced operationally up, for at most `timeout`: the
    /// link as announced, and the last announcement of the link `watched` (a bridge, whose MAC
    /// changes as ports come and go) up to then and among what was already queued behind it.
    pub fn oper_up(&mut self, index: u32, watched: u32, timeout: Duration) -> Result<(Link, Option<Link>), Unheard> {
        let deadline = Instant::now() + timeout;
        let mut last_watched = None;
        let mut up = None;
        loop {
            let ms = match (&up, deadline.checked_duration_since(Instant::now())) {
                // Once up, only what is already queued.
                (Some(_), _) => 0,
                (None, Some(left)) => u16::try_from(left.as_millis()).unwrap_or(u16::MAX).max(1),
                (None, None) => return Err(Unheard::TimedOut),
            };
            let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) if up.is_some() => break,
                Ok(0) => return Err(Unheard::TimedOut),
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return Err(Unheard::Lost),
            }
            let mut buf: &mut [u8] = &mut self.buf;
            let Ok(n) = self.socket.recv(&mut buf, 0) else { return Err(Unheard::Lost) };
            for l in announced(&self.buf[..n], &[index, watched]) {
                if l.index == watched {
                    last_watched = Some(l);
                } else if up.is_none() && l.oper_up {
                    up = Some(l);
                }
            }
        }
        up.map(|l| (l, last_watched)).ok_or(Unheard::TimedOut)
    }
}

/// The links among `indexes` that the RTM_NEWLINK messages of family AF_UNSPEC in `datagram`
/// announce, in order (a bridge also announces its ports with AF_BRIDGE; those are skipped).
fn announced<'a>(datagram: &'a [u8], indexes: &'a [u32]) -> impl Iterator<Item = Link> + 'a {
    messages(datagram)
        .filter(|m| m.kind == RTM_NEWLINK && m.payload.len() >= 16 && m.payload[0] == 0)
        .filter(|m| indexes.iter().any(|i| m.payload[4..8] == i.to_ne_bytes()))
        .filter_map(|m| Link::from_payload(m.payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::nlmsg::{attr, message, str_attr};

    /// RTM_NEWLINK: struct ifinfomsg (family, type, index, flags, change), IFLA_IFNAME,
    /// IFLA_ADDRESS and IFLA_OPERSTATE.
    fn newlink(family: u8, index: u32, oper: u8) -> Vec<u8> {
        let mut body = vec![family, 0, 1, 0];
        body.extend(index.to_ne_bytes());
        body.extend(0x1003u32.to_ne_bytes());
        body.extend(0u32.to_ne_bytes());
        body.extend(str_attr(3, "veth1"));
        body.extend(attr(1, &[2, 0, 0, 0, 0, 7]));
        body.extend(attr(16, &[oper]));
        message(RTM_NEWLINK, 0, 0, &body)
    }

    #[test]
    fn reads_the_links_asked_about() {
        const UP: u8 = 6;
        const LOWER_DOWN: u8 = 7;
        let mut d = newlink(0, 9, UP);
        d.extend(newlink(0, 7, LOWER_DOWN));
        d.extend(newlink(7, 7, UP));
        d.extend(newlink(0, 3, UP));
        d.extend(newlink(0, 7, UP));
        let seen: Vec<(u32, bool)> = announced(&d, &[7, 3]).map(|l| (l.index, l.oper_up)).collect();
        // Link 9 is not asked about; the AF_BRIDGE announcement of 7 is not its own.
        assert_eq!(seen, [(7, false), (3, true), (7, true)]);
        let l = announced(&d, &[7]).last().expect("announced");
        assert_eq!((l.index, l.name.as_str(), l.mac_string().as_str()), (7, "veth1", "02:00:00:00:00:07"));
        // Cut short: no panic, nothing found.
        assert_eq!(announced(&d[..20], &[9]).count(), 0);
    }

    #[test]
    fn hears_a_link_come_up() {
        crate::netlink::in_new_netns(|| {
            let nl = crate::netlink::Netlink::open().expect("netlink");
            let ns = crate::netns::Netns::current().expect("netns");
            let pair = crate::plugins::iface::create_veth(&nl, &nl, &ns, "evb", None, None, None).expect("veth");
            let mut ev = LinkEvents::open().expect("subscribe");
            let (host, peer) = (pair.host.index, pair.container.index);
            assert_eq!(ev.oper_up(host, peer, Duration::from_millis(20)).err(), Some(Unheard::TimedOut), "peer down");
            // A change of the watched link is kept, the last one announced.
            let mac = vec![0x02, 0xcb, 0, 0, 0, 0x42];
            nl.set_mac(&pair.container, &mac).expect("mac");
            nl.set_up(&pair.container).expect("up");
            let (l, watched) = ev.oper_up(host, peer, Duration::from_secs(5)).expect("announced");
            assert_eq!(l.name, pair.host.name);
            assert!(l.oper_up);
            assert_eq!(watched.expect("watched link announced").mac, mac);
        });
    }
}
