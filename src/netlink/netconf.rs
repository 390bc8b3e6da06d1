//! The node-wide forwarding switches (`net.ipv4.ip_forward`, `net.ipv6.conf.all.forwarding`),
//! read with one RTM_GETNETCONF request (on the plain socket of a `Netlink`) instead of a
//! /proc/sys lookup.
//!
//! On a node with many namespaces a /proc/sys path costs a comparison against the same-named
//! directory entry of every namespace that has looked up that directory, and the node's own
//! namespace, the oldest, comes last; a netconf request costs the same however many there
//! are. The rtnetlink crates do not speak netconf, so the request is built here (`nlmsg`).

use super::nlmsg::{NLM_F_ACK, NLM_F_REQUEST, attr, attrs, message};
use super::{Error, Netlink};

const RTM_NEWNETCONF: u16 = 80;
const RTM_GETNETCONF: u16 = 82;
const NETCONFA_IFINDEX: u16 = 1;
const NETCONFA_FORWARDING: u16 = 2;
/// NETCONFA_IFINDEX of the `all` settings.
const NETCONFA_IFINDEX_ALL: i32 = -1;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

impl Netlink {
    /// Whether IPv4 (or IPv6, `v6`) forwarding is on for the whole node (this namespace).
    pub fn forwarding(&self, v6: bool) -> Result<bool, Error> {
        let what = if v6 { "IPv6" } else { "IPv4" };
        let context = || format!("failed to read the {what} forwarding setting");
        let replies =
            self.plain_request(|seq| request(v6, seq), RTM_NEWNETCONF, false).map_err(|e| e.context(context()))?;
        replies.first().and_then(|m| parse(m)).ok_or_else(|| Error::kernel(context(), nix::libc::EPROTO, None))
    }
}

/// RTM_GETNETCONF for the `all` settings of a family: `struct netconfmsg` (the family, padded
/// to 4 bytes) and NETCONFA_IFINDEX.
fn request(v6: bool, seq: u32) -> Vec<u8> {
    let mut body = vec![if v6 { AF_INET6 } else { AF_INET }, 0, 0, 0];
    body.extend(attr(NETCONFA_IFINDEX, &NETCONFA_IFINDEX_ALL.to_ne_bytes()));
    message(RTM_GETNETCONF, NLM_F_REQUEST | NLM_F_ACK, seq, &body)
}

/// NETCONFA_FORWARDING of an RTM_NEWNETCONF message's payload; None without it.
fn parse(payload: &[u8]) -> Option<bool> {
    let (_, _, v) = attrs(payload.get(4..)?).find(|(kind, _, _)| *kind == NETCONFA_FORWARDING)?;
    Some(i32::from_ne_bytes(v.get(..4)?.try_into().ok()?) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_golden_bytes() {
        #[rustfmt::skip]
        let want: [u8; 28] = [
            28, 0, 0, 0,  82, 0,  5, 0,  1, 0, 0, 0,  0, 0, 0, 0,   // nlmsghdr: GETNETCONF, REQUEST|ACK
            10, 0, 0, 0,                                           // netconfmsg: AF_INET6
            8, 0, 1, 0,  0xff, 0xff, 0xff, 0xff,                   // NETCONFA_IFINDEX = -1 (all)
        ];
        assert_eq!(request(true, 1), want);
        assert_eq!(request(false, 1)[16], AF_INET);
    }

    fn answer(forwarding: Option<i32>) -> Vec<u8> {
        let mut body = vec![AF_INET, 0, 0, 0];
        body.extend(attr(NETCONFA_IFINDEX, &NETCONFA_IFINDEX_ALL.to_ne_bytes()));
        if let Some(f) = forwarding {
            body.extend(attr(NETCONFA_FORWARDING, &f.to_ne_bytes()));
        }
        body.extend(attr(3, &1i32.to_ne_bytes())); // NETCONFA_RP_FILTER
        body
    }

    #[test]
    fn reads_forwarding() {
        assert_eq!(parse(&answer(Some(1))), Some(true));
        assert_eq!(parse(&answer(Some(0))), Some(false));
        assert_eq!(parse(&answer(None)), None);
        assert_eq!(parse(&[1, 2, 3]), None);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod kernel_tests {
    use super::*;
    use crate::netlink::in_new_netns;

    /// The kernel's answer is what /proc/sys says, both ways, in a namespace of the test's own.
    #[test]
    fn agrees_with_proc_sys() {
        in_new_netns(|| {
            let nl = Netlink::open().unwrap();
            for v in ["1", "0"] {
                crate::sysctl::write("net/ipv4/ip_forward", v).unwrap();
                assert_eq!(nl.forwarding(false).unwrap(), v == "1");
            }
            if let Ok(v6) = crate::sysctl::get("net/ipv6/conf/all/forwarding") {
                assert_eq!(nl.forwarding(true).unwrap(), v6 == "1");
            }
        });
    }
}
