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

impl LinkEvents {
    /// Listen to the link announcements of the calling thread's namespace, from now on.
    pub fn open() -> Result<LinkEvents, Error> {
        let context = "failed to subscribe to link announcements";
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| Error::io(context, &e))?;
        socket.bind(&SocketAddr::new(0, RTMGRP_LINK)).map_err(|e| Error::io(context, &e))?;
        let _ = socket.set_rx_buf_sz(RECEIVE_BUFFER);
        Ok(LinkEvents { socket, buf: vec![0; 64 * 1024] })
    }

    /// The link `index` as announced once it is operationally up, if that is announced within
    /// `timeout`. None when it was not, or when announcements were lost meanwhile (the socket's
    /// buffer overflowed): the caller asks the kernel instead.
    pub fn oper_up(&mut self, index: u32, timeout: Duration) -> Option<Link> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX).max(1);
            let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return None,
            }
            let mut buf: &mut [u8] = &mut self.buf;
            let n = self.socket.recv(&mut buf, 0).ok()?;
            if let Some(link) = announced_up(&self.buf[..n], index) {
                return Some(link);
            }
        }
    }
}

/// The link `index` from an RTM_NEWLINK of family AF_UNSPEC in `datagram` that reports it
/// operationally up (a bridge also announces its ports with AF_BRIDGE; those are skipped).
fn announced_up(datagram: &[u8], index: u32) -> Option<Link> {
    messages(datagram)
        .filter(|m| m.kind == RTM_NEWLINK && m.payload.len() >= 16)
        .filter(|m| m.payload[0] == 0 && m.payload[4..8] == index.to_ne_bytes())
        .filter_map(|m| Link::from_payload(m.payload))
        .find(|l| l.oper_up)
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
    fn finds_the_link_once_it_is_up() {
        const UP: u8 = 6;
        const LOWER_DOWN: u8 = 7;
        let mut d = newlink(0, 9, UP);
        d.extend(newlink(0, 7, LOWER_DOWN));
        assert!(announced_up(&d, 7).is_none(), "down");
        d.extend(newlink(7, 7, UP));
        assert!(announced_up(&d, 7).is_none(), "AF_BRIDGE announcements are not the link's own");
        d.extend(newlink(0, 7, UP));
        let l = announced_up(&d, 7).expect("announced up");
        assert_eq!((l.index, l.name.as_str(), l.mac_string().as_str()), (7, "veth1", "02:00:00:00:00:07"));
        // Cut short: no panic, nothing found.
        assert!(announced_up(&d[..20], 7).is_none());
    }

    #[test]
    fn hears_a_link_come_up() {
        crate::netlink::in_new_netns(|| {
            let nl = crate::netlink::Netlink::open().expect("netlink");
            let ns = crate::netns::Netns::current().expect("netns");
            let pair = crate::plugins::iface::create_veth(&nl, &nl, &ns, "evb", None, None, None).expect("veth");
            let mut ev = LinkEvents::open().expect("subscribe");
            assert!(ev.oper_up(pair.host.index, Duration::from_millis(20)).is_none(), "peer still down");
            nl.set_up(&pair.container).expect("up");
            let l = ev.oper_up(pair.host.index, Duration::from_secs(5)).expect("announced");
            assert_eq!(l.name, pair.host.name);
            assert!(l.oper_up);
        });
    }
}
