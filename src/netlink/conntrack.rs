//! Conntrack: forgetting the UDP flows addressed to a host port.
//!
//! A UDP flow the kernel already tracks keeps its translation (or its lack of one) until it
//! times out, however the NAT rules change: a client that sends to a host port before the
//! pod's mapping exists, or to the mapping of a pod since replaced, is blackholed for as long
//! as it keeps sending. portmap therefore deletes, once the mapping is in place, the
//! conntrack entries whose original direction is UDP to the mapped host port.
//!
//! ctnetlink (NETLINK_NETFILTER, subsystem NFNL_SUBSYS_CTNETLINK) is spoken directly: a dump
//! of the family's table, filtered by the kernel where it can (CTA_FILTER, Linux 5.9+) and
//! again here, then one IPCTNL_MSG_CT_DELETE per match naming the entry's original tuple,
//! zone and ID, so that an entry replaced in between is left alone.

use super::Error;
use super::nlmsg::{Msg, attr, attrs, error_code, message, messages, nfgenmsg, pad};
use super::nlmsg::{NLA_F_NESTED, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR};
use rtnetlink::sys::{Socket, protocols::NETLINK_NETFILTER};

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;

// enum ctattr_type, ctattr_tuple, ctattr_l4proto, ctattr_filter.
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
const CTA_FILTER: u16 = 25;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_FILTER_ORIG_FLAGS: u16 = 1;
// The kernel's CTA_FILTER_F_CTA_PROTO_NUM and CTA_FILTER_F_CTA_PROTO_DST_PORT.
const FILTER_PROTO_NUM: u32 = 1 << 3;
const FILTER_PROTO_DST_PORT: u32 = 1 << 5;

const IPPROTO_UDP: u8 = 17;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Delete the conntrack entries of the calling thread's namespace whose original direction is
/// UDP over IPv4 (or IPv6, `v6`) to `port`; returns how many went. Entries that vanish on
/// their own meanwhile are not an error.
pub fn forget_udp_flows_to(v6: bool, port: u16) -> Result<usize, Error> {
    let family = if v6 { AF_INET6 } else { AF_INET };
    let context = || format!("failed to delete the UDP conntrack entries to port {port}");
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(|e| Error::io(context(), &e))?;
    socket.bind_auto().map_err(|e| Error::io(context(), &e))?;

    let mut buf = vec![0u8; 64 * 1024];
    // Kernels that know CTA_FILTER but refuse this one get the whole table, filtered here; a
    // dump that the table's changes interrupted is asked for again.
    let mut filtered = true;
    let mut tries = 0;
    let flows = loop {
        tries += 1;
        match dump(&socket, &mut buf, dump_request(family, filtered.then_some(port), tries), port) {
            Err(DumpError::Kernel(errno))
                if filtered && [nix::libc::EINVAL, nix::libc::EOPNOTSUPP].contains(&errno) =>
            {
                filtered = false
            }
            Err(DumpError::Interrupted) if tries < 4 => {}
            Err(DumpError::Interrupted) => return Err(Error::new(context(), "the conntrack table kept changing")),
            Err(DumpError::Kernel(errno)) => return Err(Error::kernel(context(), errno, None)),
            Err(DumpError::Io(e)) => return Err(Error::io(context(), &e)),
            Ok(flows) => break flows,
        }
    };

    let mut deleted = 0;
    for (seq, flow) in (tries + 1..).zip(&flows) {
        socket.send(&flow.delete_request(family, seq), 0).map_err(|e| Error::io(context(), &e))?;
        let n = socket.recv(&mut &mut buf[..], 0).map_err(|e| Error::io(context(), &e))?;
        match messages(&buf[..n]).find(|m| m.kind == NLMSG_ERROR).and_then(|m| error_code(m.payload)) {
            Some(0) => deleted += 1,
            Some(errno) if errno == nix::libc::ENOENT => {}
            Some(errno) => return Err(Error::kernel(context(), errno, None)),
            None => return Err(Error::new(context(), "no answer to a delete request")),
        }
    }
    // Closing waits for nf_tables' pending work in this namespace, if any (see detach.rs).
    super::detach::close_in_child(socket);
    Ok(deleted)
}

enum DumpError {
    Kernel(i32),
    Io(std::io::Error),
    /// The table changed while it was being sent (NLM_F_DUMP_INTR): ask again.
    Interrupted,
}

/// Send a dump request; the flows of the answer that are UDP to `port`.
fn dump(socket: &Socket, buf: &mut [u8], request: Vec<u8>, port: u16) -> Result<Vec<Flow>, DumpError> {
    socket.send(&request, 0).map_err(DumpError::Io)?;
    let mut flows = Vec::new();
    let mut interrupted = false;
    loop {
        let n = socket.recv(&mut &mut buf[..], 0).map_err(DumpError::Io)?;
        if n == 0 {
            return Err(DumpError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        for Msg { kind, flags, payload, .. } in messages(&buf[..n]) {
            interrupted |= flags & NLM_F_DUMP_INTR != 0;
            match kind {
                NLMSG_DONE => {
                    return match error_code(payload) {
                        Some(0) | None if interrupted => Err(DumpError::Interrupted),
                        Some(0) | None => Ok(flows),
                        Some(errno) => Err(DumpError::Kernel(errno)),
                    };
                }
                NLMSG_ERROR => match error_code(payload) {
                    Some(0) | None => {}
                    Some(errno) => return Err(DumpError::Kernel(errno)),
                },
                k if k == ct_type(IPCTNL_MSG_CT_NEW) => {
                    if let Some(flow) = Flow::parse(payload).filter(|f| f.is_udp_to(port)) {
                        flows.push(flow);
                    }
                }
                _ => {}
            }
        }
    }
}

/// One tracked flow, as much of it as a delete request needs: its attributes as the kernel
/// sent them.
#[derive(Debug)]
struct Flow {
    /// CTA_TUPLE_ORIG, header included.
    tuple: Vec<u8>,
    proto: Option<u8>,
    dst_port: Option<u16>,
    /// CTA_ZONE and CTA_ID, headers included, when present.
    zone: Option<Vec<u8>>,
    id: Option<Vec<u8>>,
}

impl Flow {
    /// From an IPCTNL_MSG_CT_NEW payload (struct nfgenmsg, then attributes).
    fn parse(payload: &[u8]) -> Option<Flow> {
        let mut flow = Flow { tuple: Vec::new(), proto: None, dst_port: None, zone: None, id: None };
        for (kind, raw, value) in attrs(payload.get(4..)?) {
            match kind {
                CTA_TUPLE_ORIG => {
                    flow.tuple = raw.to_vec();
                    for (k, _, v) in attrs(value) {
                        if k != CTA_TUPLE_PROTO {
                            continue;
                        }
                        for (pk, _, pv) in attrs(v) {
                            match (pk, pv) {
                                (CTA_PROTO_NUM, [p, ..]) => flow.proto = Some(*p),
                                (CTA_PROTO_DST_PORT, [a, b, ..]) => flow.dst_port = Some(u16::from_be_bytes([*a, *b])),
                                _ => {}
                            }
                        }
                    }
                }
                CTA_ZONE => flow.zone = Some(raw.to_vec()),
                CTA_ID => flow.id = Some(raw.to_vec()),
                _ => {}
            }
        }
        (!flow.tuple.is_empty()).then_some(flow)
    }

    fn is_udp_to(&self, port: u16) -> bool {
        self.proto == Some(IPPROTO_UDP) && self.dst_port == Some(port)
    }

    fn delete_request(&self, family: u8, seq: u32) -> Vec<u8> {
        let mut body = nfgenmsg(family, 0);
        body.extend_from_slice(&self.tuple);
        pad(&mut body);
        for raw in [&self.zone, &self.id].into_iter().flatten() {
            body.extend_from_slice(raw);
            pad(&mut body);
        }
        message(ct_type(IPCTNL_MSG_CT_DELETE), NLM_F_REQUEST | NLM_F_ACK, seq, &body)
    }
}

fn ct_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_CTNETLINK << 8) | msg
}

/// A dump of the family's entries, asking the kernel to send only UDP to `port` if given.
fn dump_request(family: u8, port: Option<u16>, seq: u32) -> Vec<u8> {
    let mut body = nfgenmsg(family, 0);
    let Some(port) = port else {
        return message(ct_type(IPCTNL_MSG_CT_GET), NLM_F_REQUEST | NLM_F_DUMP, seq, &body);
    };
    let proto = [attr(CTA_PROTO_NUM, &[IPPROTO_UDP]), attr(CTA_PROTO_DST_PORT, &port.to_be_bytes())].concat();
    let tuple = attr(CTA_TUPLE_PROTO | NLA_F_NESTED, &proto);
    body.extend(attr(CTA_TUPLE_ORIG | NLA_F_NESTED, &tuple));
    let flags = (FILTER_PROTO_NUM | FILTER_PROTO_DST_PORT).to_ne_bytes();
    body.extend(attr(CTA_FILTER | NLA_F_NESTED, &attr(CTA_FILTER_ORIG_FLAGS, &flags)));
    message(ct_type(IPCTNL_MSG_CT_GET), NLM_F_REQUEST | NLM_F_DUMP, seq, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_request_bytes() {
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            // nlmsghdr: len 56, type CTNETLINK<<8|GET, flags REQUEST|DUMP, seq 1, pid 0
            56, 0, 0, 0, 0x01, 0x01, 0x01, 0x03, 1, 0, 0, 0, 0, 0, 0, 0,
            // nfgenmsg: AF_INET, v0, res_id 0
            2, 0, 0, 0,
            // CTA_TUPLE_ORIG (nested) { CTA_TUPLE_PROTO (nested) { NUM 17, DST_PORT 53 (be) } }
            24, 0, 0x01, 0x80,
            20, 0, 0x02, 0x80,
            5, 0, 1, 0, 17, 0, 0, 0,
            6, 0, 3, 0, 0, 53, 0, 0,
            // CTA_FILTER (nested) { ORIG_FLAGS = PROTO_NUM|PROTO_DST_PORT }
            12, 0, 25, 0x80,
            8, 0, 1, 0, 0x28, 0, 0, 0,
        ];
        assert_eq!(dump_request(AF_INET, Some(53), 1), want);
        #[rustfmt::skip]
        let whole: Vec<u8> = vec![20, 0, 0, 0, 0x01, 0x01, 0x01, 0x03, 2, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0];
        assert_eq!(dump_request(AF_INET6, None, 2), whole);
    }

    /// An entry as the kernel dumps it: nfgenmsg, then CTA_TUPLE_ORIG, CTA_TUPLE_REPLY,
    /// CTA_ID and CTA_ZONE among others.
    fn entry(proto: u8, dport: u16) -> Vec<u8> {
        let ip = [attr(1, &[10, 0, 0, 1]), attr(2, &[10, 0, 0, 2])].concat();
        let l4 =
            [attr(CTA_PROTO_NUM, &[proto]), attr(2, &4000u16.to_be_bytes()), attr(3, &dport.to_be_bytes())].concat();
        let tuple = [attr(1 | NLA_F_NESTED, &ip), attr(CTA_TUPLE_PROTO | NLA_F_NESTED, &l4)].concat();
        let mut p = nfgenmsg(AF_INET, 0);
        p.extend(attr(CTA_TUPLE_ORIG | NLA_F_NESTED, &tuple));
        p.extend(attr(2 | NLA_F_NESTED, &tuple));
        p.extend(attr(3, &0x18eu32.to_be_bytes()));
        p.extend(attr(CTA_ID, &0xdeadbeefu32.to_be_bytes()));
        p.extend(attr(CTA_ZONE, &7u16.to_be_bytes()));
        p
    }

    #[test]
    fn parses_an_entry_and_names_it_back() {
        let e = entry(IPPROTO_UDP, 53);
        let flow = Flow::parse(&e).unwrap();
        assert!(flow.is_udp_to(53));
        assert!(!flow.is_udp_to(54));
        assert!(!Flow::parse(&entry(6, 53)).unwrap().is_udp_to(53));

        let req = flow.delete_request(AF_INET, 9);
        let Msg { kind, payload, .. } = messages(&req).next().unwrap();
        assert_eq!(kind, 0x0102);
        assert_eq!(u16::from_ne_bytes([req[6], req[7]]), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(u32::from_ne_bytes(req[8..12].try_into().unwrap()), 9);
        assert_eq!(&payload[..4], &[AF_INET, 0, 0, 0]);
        let kinds: Vec<u16> = attrs(&payload[4..]).map(|(k, _, _)| k).collect();
        assert_eq!(kinds, [CTA_TUPLE_ORIG, CTA_ZONE, CTA_ID]);
        let (_, raw, _) = attrs(&payload[4..]).next().unwrap();
        assert_eq!(raw, flow.tuple.as_slice());
    }

    #[test]
    fn malformed_entries_are_skipped() {
        assert!(Flow::parse(&[2, 0]).is_none());
    }
}

/// Real kernel: flows made on loopback in a fresh namespace, conntrack switched on by a rule.
#[cfg(all(test, target_os = "linux"))]
mod kernel_tests {
    use super::*;
    use crate::netlink::{Netlink, in_new_netns};
    use std::net::UdpSocket;
    use std::process::Command;

    #[test]
    fn forgets_only_udp_to_the_port() {
        in_new_netns(|| {
            let nl = Netlink::open().unwrap();
            let lo = nl.link("lo").unwrap();
            nl.set_up(&lo).unwrap();
            let rules =
                "table ip cbxct {\n chain out {\n type filter hook output priority 0;\n ct state new accept\n }\n}\n";
            let nft = Command::new("nft").args(["-f", "-"]).stdin(std::process::Stdio::piped()).spawn();
            let mut nft = match nft {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    eprintln!("skipping: no nft to switch conntrack on");
                    return;
                }
                other => other.unwrap(),
            };
            std::io::Write::write_all(&mut nft.stdin.take().unwrap(), rules.as_bytes()).unwrap();
            assert!(nft.wait().unwrap().success());
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            for port in [40053, 40054, 40053] {
                sock.send_to(b"x", ("127.0.0.1", port)).unwrap();
            }
            // TCP to the same port is not UDP.
            let _ = std::net::TcpStream::connect(("127.0.0.1", 40053));

            // This kernel takes the filter (no fallback to the whole table).
            let socket = Socket::new(NETLINK_NETFILTER).unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let filtered = dump(&socket, &mut buf, dump_request(AF_INET, Some(40053), 1), 40053);
            assert_eq!(filtered.ok().map(|f| f.len()), Some(1));

            assert_eq!(forget_udp_flows_to(false, 40053).unwrap(), 1);
            assert_eq!(forget_udp_flows_to(false, 40053).unwrap(), 0);
            assert_eq!(forget_udp_flows_to(true, 40054).unwrap(), 0);
            assert_eq!(forget_udp_flows_to(false, 40054).unwrap(), 1);
        });
    }
}
