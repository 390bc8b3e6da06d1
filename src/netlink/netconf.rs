//! The node-wide forwarding switches (`net.ipv4.ip_forward`, `net.ipv6.conf.all.forwarding`),
//! read with one RTM_GETNETCONF request instead of a /proc/sys lookup.
//!
//! On a node with many namespaces a /proc/sys path costs a comparison against the same-named
//! directory entry of every namespace that has looked up that directory, and the node's own
//! namespace, the oldest, comes last; a netconf request costs the same however many there
//! are. The rtnetlink crates do not speak netconf, so the request is built here (`nlmsg`).

use super::Error;
use super::nlmsg::{NLM_F_REQUEST, NLMSG_ERROR, attr, attrs, error_code, message, messages};
use rtnetlink::sys::{Socket, protocols::NETLINK_ROUTE};

const RTM_NEWNETCONF: u16 = 80;
const RTM_GETNETCONF: u16 = 82;
const NETCONFA_IFINDEX: u16 = 1;
const NETCONFA_FORWARDING: u16 = 2;
/// NETCONFA_IFINDEX of the `all` settings.
const NETCONFA_IFINDEX_ALL: i32 = -1;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Whether IPv4 (or IPv6, `v6`) forwarding is on for the whole node, in the calling thread's
/// namespace.
pub fn forwarding(v6: bool) -> Result<bool, Error> {
    let what = if v6 { "IPv6" } else { "IPv4" };
    let context = || format!("failed to read the {what} forwarding setting");
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| Error::io(context(), &e))?;
    socket.bind_auto().map_err(|e| Error::io(context(), &e))?;
    socket.send(&request(v6), 0).map_err(|e| Error::io(context(), &e))?;
    let mut buf = vec![0u8; 4096];
    let n = socket.recv(&mut &mut buf[..], 0).map_err(|e| Error::io(context(), &e))?;
    parse(&buf[..n]).map_err(|errno| Error::kernel(context(), errno, None))
}

/// RTM_GETNETCONF for the `all` settings of a family: `struct netconfmsg` (the family, padded
/// to 4 bytes) and NETCONFA_IFINDEX.
fn request(v6: bool) -> Vec<u8> {
    let mut body = vec![if v6 { AF_INET6 } else { AF_INET }, 0, 0, 0];
    body.extend(attr(NETCONFA_IFINDEX, &NETCONFA_IFINDEX_ALL.to_ne_bytes()));
    message(RTM_GETNETCONF, NLM_F_REQUEST, 1, &body)
}

/// NETCONFA_FORWARDING of the answer, or the errno the kernel answered with (EPROTO for an
/// answer without it).
fn parse(buf: &[u8]) -> Result<bool, i32> {
    for m in messages(buf) {
        match m.kind {
            RTM_NEWNETCONF => {
                let value = attrs(m.payload.get(4..).unwrap_or_default())
                    .find(|(kind, _, _)| *kind == NETCONFA_FORWARDING)
                    .and_then(|(_, _, v)| Some(i32::from_ne_bytes(v.get(..4)?.try_into().ok()?)));
                return value.map(|v| v != 0).ok_or(nix::libc::EPROTO);
            }
            NLMSG_ERROR => return Err(error_code(m.payload).filter(|e| *e != 0).unwrap_or(nix::libc::EPROTO)),
            _ => {}
        }
    }
    Err(nix::libc::EPROTO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_golden_bytes() {
        #[rustfmt::skip]
        let want: [u8; 28] = [
            28, 0, 0, 0,  82, 0,  1, 0,  1, 0, 0, 0,  0, 0, 0, 0,   // nlmsghdr: GETNETCONF, REQUEST
            10, 0, 0, 0,                                           // netconfmsg: AF_INET6
            8, 0, 1, 0,  0xff, 0xff, 0xff, 0xff,                   // NETCONFA_IFINDEX = -1 (all)
        ];
        assert_eq!(request(true), want);
        assert_eq!(request(false)[16], AF_INET);
    }

    fn answer(forwarding: Option<i32>) -> Vec<u8> {
        let mut body = vec![AF_INET, 0, 0, 0];
        body.extend(attr(NETCONFA_IFINDEX, &NETCONFA_IFINDEX_ALL.to_ne_bytes()));
        if let Some(f) = forwarding {
            body.extend(attr(NETCONFA_FORWARDING, &f.to_ne_bytes()));
        }
        body.extend(attr(3, &1i32.to_ne_bytes())); // NETCONFA_RP_FILTER
        message(RTM_NEWNETCONF, 0, 1, &body)
    }

    #[test]
    fn reads_forwarding_and_errors() {
        assert_eq!(parse(&answer(Some(1))), Ok(true));
        assert_eq!(parse(&answer(Some(0))), Ok(false));
        assert_eq!(parse(&answer(None)), Err(nix::libc::EPROTO));
        let refused = message(NLMSG_ERROR, 0, 1, &(-nix::libc::EOPNOTSUPP).to_ne_bytes());
        assert_eq!(parse(&refused), Err(nix::libc::EOPNOTSUPP));
        assert_eq!(parse(&[1, 2, 3]), Err(nix::libc::EPROTO));
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
            for v in ["1", "0"] {
                crate::sysctl::write("net/ipv4/ip_forward", v).unwrap();
                assert_eq!(forwarding(false).unwrap(), v == "1");
            }
            if let Ok(v6) = crate::sysctl::get("net/ipv6/conf/all/forwarding") {
                assert_eq!(forwarding(true).unwrap(), v6 == "1");
            }
        });
    }
}
