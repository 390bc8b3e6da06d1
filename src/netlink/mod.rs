//! The kernel-facing core: typed, synchronous link, address, route and bridge operations.
//!
//! Each [`Netlink`] owns one rtnetlink connection, which it drives itself during each of its
//! requests, on the one current-thread runtime of the thread (made on the first connection; a
//! plugin that talks to the node and to a pod builds one, not two). The connection is no task
//! of the runtime: dropping a `Netlink` closes its socket there and then. The connection's
//! socket is created while the thread is inside the namespace it serves, so afterwards it
//! talks to that namespace whatever namespace the thread is in.
//! Plugins never build netlink messages: they call the methods in `link`, `addr`, `route`
//! and `bridge`. What the rtnetlink crates do not speak has modules of their own with hand-built
//! messages (`nlmsg`): the netfilter families (`conntrack`, `nftables`) and netconf (`netconf`).
//! Two link requests are hand-built too, sent with netconf's on a plain socket each `Netlink`
//! opens beside its connection, where the crates cost more than the request: a link lookup
//! (their parser reads every attribute of the answer into its types; `Link` needs a few) and
//! the setting of an IPv4 device parameter (their writer sizes its nested attributes over and
//! over).

mod addr;
mod bridge;
pub mod conntrack;
mod detach;
mod error;
mod link;
pub mod netconf;
pub mod nftables;
pub mod nftexpr;
mod nlmsg;
mod route;
pub mod sysfs;
pub mod tc;
mod unregister;

pub use addr::Address;
pub use error::Error;
pub use link::{IpvlanMode, Link, LinkKind, MacvlanMode, SubLink};
pub use route::{RT_SCOPE_HOST, RT_SCOPE_LINK, RT_SCOPE_NOWHERE, RT_SCOPE_UNIVERSE, RouteInfo, RouteSpec};

use crate::netns::Netns;
use futures::StreamExt;
use nix::errno::Errno;
use rtnetlink::Handle;
use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use std::cell::{OnceCell, RefCell};
use tokio::runtime::Runtime;

thread_local! {
    /// The thread's runtime: its I/O driver serves every connection the thread opens.
    static RUNTIME: OnceCell<Runtime> = const { OnceCell::new() };
}

/// Run `f` with the thread's runtime, made on first use.
fn with_runtime<R>(f: impl FnOnce(&Runtime) -> R) -> Result<R, Error> {
    RUNTIME.with(|cell| {
        if let Some(rt) = cell.get() {
            return Ok(f(rt));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| Error::io("failed to start the netlink runtime", &e))?;
        Ok(f(cell.get_or_init(|| rt)))
    })
}

/// A netlink connection to one network namespace.
pub struct Netlink {
    /// Polled alongside each request (`exchange`): it sends the request and routes the replies.
    conn: RefCell<rtnetlink::proto::Connection<RouteNetlinkMessage>>,
    handle: Handle,
    /// Whether the kernel echoes only the header of a failed request, so ext-ack text can be found.
    capped: bool,
    /// A plain socket of the same namespace for the requests built here (`plain_request`):
    /// link lookups, whose answers are read for the few attributes a `Link` holds (the
    /// connection's parser read every attribute of a link message into its own types: a
    /// quarter of a bridge ADD's instructions, for three lookups), IPv4 device settings and
    /// the forwarding switch.
    plain: rtnetlink::sys::Socket,
    seq: std::cell::Cell<u32>,
    /// Not to be sent to another thread: its connection's socket is registered with the runtime
    /// of the thread that opened it, and another thread's runtime would never see it ready.
    _thread: std::marker::PhantomData<*const ()>,
}

impl Netlink {
    /// A connection to the calling thread's namespace.
    pub fn open() -> Result<Netlink, Error> {
        // The socket registers with the runtime's I/O driver as it is made.
        let (mut conn, handle, _) = with_runtime(|rt| {
            let _ctx = rt.enter();
            rtnetlink::new_connection().map_err(|e| Error::io("failed to open a netlink socket", &e))
        })??;
        // A dump that fails part way says so in its NLMSG_DONE, which is dropped unless asked for.
        conn.set_forward_done(true);
        use rtnetlink::sys::AsyncSocket;
        let socket = conn.socket_mut().socket_mut();
        // Both are best effort: without them errors carry errno text only.
        let capped = socket.set_cap_ack(true).is_ok();
        let _ = socket.set_ext_ack(true);
        // Also best effort: with strict checking the kernel honours a dump's filters (an address
        // dump for one link returns that link's addresses only), so a dump's cost does not grow
        // with the number of pods on the node. Callers filter again for kernels without it.
        let _ = socket.set_netlink_get_strict_chk(true);
        let plain = rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_ROUTE)
            .map_err(|e| Error::io("failed to open a netlink socket", &e))?;
        let _ = plain.set_cap_ack(true);
        Ok(Netlink {
            conn: RefCell::new(conn),
            handle,
            capped,
            plain,
            seq: std::cell::Cell::new(0),
            _thread: std::marker::PhantomData,
        })
    }

    /// A connection to `ns`: the socket is created inside it.
    pub fn open_in(ns: &Netns) -> Result<Netlink, Error> {
        ns.run(Netlink::open)?
    }

    /// Send one request and collect the replies; ACKs end the exchange.
    fn request(&self, msg: RouteNetlinkMessage, flags: u16) -> Result<Vec<RouteNetlinkMessage>, NlFailure> {
        self.exchange(msg, flags).map(|(out, _)| out)
    }

    /// One request's replies, and whether the kernel marked them inconsistent (a dump during
    /// which the table changed: NLM_F_DUMP_INTR). An error ends the exchange, also one that a
    /// dump reports in its NLMSG_DONE.
    fn exchange(&self, msg: RouteNetlinkMessage, flags: u16) -> Result<(Vec<RouteNetlinkMessage>, bool), NlFailure> {
        const NLM_F_DUMP_INTR: u16 = 0x10;
        let capped = self.capped;
        let work = async {
            let mut handle = self.handle.clone();
            let mut req = NetlinkMessage::from(msg);
            req.header.flags = NLM_F_REQUEST | flags;
            let mut replies = handle.request(req).map_err(|e| NlFailure::Other(describe(&e)))?;
            let (mut out, mut interrupted) = (Vec::new(), false);
            while let Some(reply) = replies.next().await {
                interrupted |= reply.header.flags & NLM_F_DUMP_INTR != 0;
                match reply.payload {
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        let text = if capped { error::ext_ack_message(&e.header) } else { None };
                        return Err(NlFailure::Kernel { errno: e.raw_code().abs(), text });
                    }
                    NetlinkPayload::Done(d) if d.code != 0 => {
                        return Err(NlFailure::Kernel { errno: d.code.abs(), text: None });
                    }
                    _ => {}
                }
            }
            Ok((out, interrupted))
        };
        let closed = || NlFailure::Other("the netlink connection closed".into());
        let mut conn =
            self.conn.try_borrow_mut().map_err(|_| NlFailure::Other("netlink request within a request".into()))?;
        with_runtime(|rt| {
            rt.block_on(async {
                futures::pin_mut!(work);
                match futures::future::select(&mut *conn, work).await {
                    futures::future::Either::Right((out, _)) => out,
                    futures::future::Either::Left(((), _)) => Err(closed()),
                }
            })
        })
        .map_err(|e| NlFailure::Other(e.message))?
    }

    /// A request that changes something and expects an ACK.
    fn change(&self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), NlFailure> {
        self.request(msg, flags | NLM_F_ACK).map(|_| ())
    }

    /// A request for one object: its reply, then an ACK that ends the exchange either way. A
    /// reply the message parser cannot read is dropped, and without the ACK the request would
    /// wait for it forever; with it, the exchange ends without the reply and `get` says so.
    fn get(&self, msg: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>, NlFailure> {
        let replies = self.request(msg, NLM_F_ACK)?;
        if replies.is_empty() {
            return Err(NlFailure::Other("the kernel's reply could not be read".into()));
        }
        Ok(replies)
    }

    /// One request on the plain socket, built by `make` for a sequence number: the payloads of
    /// the answer's messages of type `kind`, until the ACK (or, for a dump, its end). A dump the
    /// kernel marks inconsistent is asked for again, as `dump` does.
    fn plain_request(&self, make: impl Fn(u32) -> Vec<u8>, kind: u16, dump: bool) -> Result<Vec<Vec<u8>>, NlFailure> {
        use nlmsg::{NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, error_code, messages};
        let io = |e: std::io::Error| NlFailure::Other(e.to_string());
        // Not zeroed: the kernel writes what is read.
        let mut buf: Vec<u8> = Vec::with_capacity(64 << 10);
        let mut tries = 1;
        loop {
            let seq = self.seq.get().wrapping_add(1);
            self.seq.set(seq);
            self.plain.send(&make(seq), 0).map_err(io)?;
            let (mut out, mut interrupted) = (Vec::new(), false);
            'answer: loop {
                // MSG_TRUNC: the datagram's whole length, so that one larger than the buffer shows.
                buf.clear();
                let n = self.plain.recv(&mut buf, nix::libc::MSG_TRUNC).map_err(io)?;
                if n > buf.len() {
                    return Err(NlFailure::Other("a netlink answer larger than 64 KiB".into()));
                }
                for m in messages(&buf).filter(|m| m.seq == seq) {
                    interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                    match (m.kind, error_code(m.payload)) {
                        (NLMSG_ERROR | NLMSG_DONE, Some(errno)) if errno != 0 => {
                            return Err(NlFailure::Kernel { errno, text: None });
                        }
                        (NLMSG_ERROR, None) => return Err(NlFailure::Other("a malformed netlink error".into())),
                        // The ACK of a request, or the end of a dump.
                        (NLMSG_ERROR, _) if !dump => break 'answer,
                        (NLMSG_DONE, _) => break 'answer,
                        (k, _) if k == kind => out.push(m.payload.to_vec()),
                        _ => {}
                    }
                }
            }
            if !interrupted || tries == 5 {
                return Ok(out);
            }
            tries += 1;
        }
    }

    /// A dump of the request `make` builds, read again while the kernel marks it inconsistent;
    /// on a node whose tables never keep still for long enough, the last reading is taken.
    fn dump(&self, make: impl Fn() -> RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>, NlFailure> {
        const TRIES: usize = 5;
        let mut tries = 1;
        loop {
            let (out, interrupted) = self.exchange(make(), NLM_F_DUMP)?;
            if !interrupted || tries == TRIES {
                return Ok(out);
            }
            tries += 1;
        }
    }
}

/// rtnetlink's error in words, without its Display: that prints unexpected messages with
/// `{:?}`, which would link a Debug formatter for every netlink message type (about 90 KB).
fn describe(e: &rtnetlink::Error) -> String {
    match e {
        rtnetlink::Error::NetlinkError(m) => match m.code {
            Some(code) => Errno::from_raw(-code.get()).desc().to_string(),
            None => "unexpected ACK".into(),
        },
        rtnetlink::Error::UnexpectedMessage(_) => "unexpected netlink message".into(),
        rtnetlink::Error::RequestFailed => "the netlink connection closed".into(),
        rtnetlink::Error::NamespaceError(s) | rtnetlink::Error::InvalidNla(s) => s.clone(),
        _ => "malformed netlink attribute".into(),
    }
}

/// A request's failure before it is given the name of what it acted on.
#[derive(Debug)]
enum NlFailure {
    Kernel { errno: i32, text: Option<String> },
    Other(String),
}

impl NlFailure {
    fn context(self, context: impl Into<String>) -> Error {
        match self {
            NlFailure::Kernel { errno, text } => Error::kernel(context, errno, text),
            NlFailure::Other(msg) => Error::new(context, msg),
        }
    }
}

/// `aa:bb:cc:dd:ee:ff`, lower case, as the reference prints hardware addresses.
pub fn format_mac(mac: &[u8]) -> String {
    crate::util::hex(mac, ":")
}

/// Parse a 6-byte hardware address as Go's `net.ParseMAC` reads one: `aa:bb:cc:dd:ee:ff`,
/// `aa-bb-cc-dd-ee-ff` (one separator throughout) or `aabb.ccdd.eeff`; None if malformed.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let (sep, width) = match s.as_bytes() {
        [_, _, b':', ..] => (':', 2),
        [_, _, b'-', ..] => ('-', 2),
        [_, _, _, _, b'.', ..] => ('.', 4),
        _ => return None,
    };
    let parts: Vec<&str> = s.split(sep).collect();
    if parts.len() != 12 / width || parts.iter().any(|p| p.len() != width || !p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        for j in 0..width / 2 {
            mac[i * width / 2 + j] = u8::from_str_radix(p.get(2 * j..2 * j + 2)?, 16).ok()?;
        }
    }
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(format_mac(&[0x0a, 0, 0xff, 1, 2, 3]), "0a:00:ff:01:02:03");
        assert_eq!(parse_mac("0A:00:ff:01:02:03"), Some([0x0a, 0, 0xff, 1, 2, 3]));
        assert_eq!(parse_mac("0a-00-ff-01-02-03"), Some([0x0a, 0, 0xff, 1, 2, 3]));
        assert_eq!(parse_mac("0a:00:ff:01:02"), None);
        assert_eq!(parse_mac("0a:00:ff:01:02:zz"), None);
        assert_eq!(parse_mac("0a:00:ff:01:02:003"), None);
        assert_eq!(parse_mac("0a00.ff01.0203"), Some([0x0a, 0, 0xff, 1, 2, 3]));
        assert_eq!(parse_mac("0a00.ff01.020"), None);
        assert_eq!(parse_mac("0a:00-ff:01:02:03"), None);
        assert_eq!(parse_mac("+a:00:ff:01:02:03"), None);
        assert_eq!(parse_mac("0a00.ff01.02é3"), None);
    }
}

/// For real-kernel tests: run `f` on a new thread that has unshared its network namespace;
/// the namespace disappears with the thread.
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn in_new_netns(f: impl FnOnce() + Send + 'static) {
    let t = std::thread::spawn(move || {
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
            eprintln!("skipping: cannot make a network namespace: {e}");
            return;
        }
        f();
    });
    if let Err(p) = t.join() {
        std::panic::resume_unwind(p);
    }
}

/// Real-kernel tests, each on its own thread inside a fresh network namespace.
#[cfg(all(test, target_os = "linux"))]
mod kernel_tests {
    use super::*;
    use nix::sched::{CloneFlags, unshare};

    #[test]
    fn veth_pair_across_namespaces_with_addresses_and_routes() {
        in_new_netns(|| {
            let host = Netlink::open().unwrap();
            // A second namespace for the peer: unshare again, keep a handle, come back.
            let host_ns = Netns::current().unwrap();
            unshare(CloneFlags::CLONE_NEWNET).unwrap();
            let cont_ns = Netns::current().unwrap();
            nix::sched::setns(
                std::os::fd::AsFd::as_fd(&std::fs::File::open(host_ns.path()).unwrap()),
                CloneFlags::CLONE_NEWNET,
            )
            .unwrap();
            let cont = Netlink::open_in(&cont_ns).unwrap();

            let mac = [0x0a, 0x58, 0x0a, 0, 0, 9];
            host.create_veth("vtest0", "eth0", &cont_ns, Some(1400), Some(mac), None).unwrap();
            let h = host.link("vtest0").unwrap();
            assert_eq!(h.kind, LinkKind::Veth);
            assert_eq!(h.mtu, 1400);
            // One transmit queue each end (see `create_veth`).
            assert_eq!(h.tx_queues, 1);
            // accept_ra comes with the link message (a new namespace's default: 1).
            assert_eq!(h.accept_ra, Some(1));
            assert!(host.link_by_name("eth0").unwrap().is_none(), "peer must not appear here");
            let c = cont.link("eth0").unwrap();
            assert_eq!((c.mtu, c.mac.as_slice(), c.tx_queues), (1400, &mac[..], 1));
            assert_eq!(c.peer_index, Some(h.index));

            // Same host name again: EEXIST, named.
            let e = host.create_veth("vtest0", "eth1", &cont_ns, None, None, None).unwrap_err();
            assert!(e.is_exists(), "{e}");
            assert!(e.to_string().contains("vtest0"), "{e}");

            // route_localnet too; it is set over netlink.
            assert_eq!(h.route_localnet, Some(false));
            host.set_route_localnet(&h).unwrap();
            assert_eq!(host.link("vtest0").unwrap().route_localnet, Some(true));

            cont.set_arp_notify(&c).unwrap();
            cont.set_up(&c).unwrap();
            let c = cont.link("eth0").unwrap();
            assert!(c.up);
            let arp_notify = cont_ns.run(|| crate::sysctl::get("net/ipv4/conf/eth0/arp_notify")).unwrap();
            assert_eq!(arp_notify.unwrap(), "1");
            cont.add_address(&c, "10.9.0.2/24".parse().unwrap()).unwrap();
            assert!(cont.add_address(&c, "10.9.0.2/24".parse().unwrap()).unwrap_err().is_exists());
            let addrs = cont.list_addresses(&c).unwrap();
            assert!(addrs.iter().any(|a| a.net.to_string() == "10.9.0.2/24" && a.global), "{addrs:?}");

            let r = RouteSpec::new("10.10.0.0/16".parse().unwrap()).via(Some("10.9.0.1".parse().unwrap())).dev(c.index);
            cont.add_route(&r).unwrap();
            // The kernel's choice for one address of it.
            let got = cont.route_get("10.10.3.4".parse().unwrap()).unwrap();
            assert_eq!((got.oif, got.gw), (Some(c.index), Some("10.9.0.1".parse().unwrap())), "{got:?}");
            assert_eq!(got.dst.to_string(), "10.10.3.4/32");
            assert!(cont.route_get("192.0.2.1".parse().unwrap()).unwrap_err().errno.is_some());
            let routes = cont.list_routes().unwrap();
            assert!(routes.iter().any(|x| x.dst.to_string() == "10.10.0.0/16"
                && x.gw == Some("10.9.0.1".parse().unwrap())
                && x.oif == Some(c.index)));
            cont.del_route(&r).unwrap();
            assert!(!cont.list_routes().unwrap().iter().any(|x| x.dst.to_string() == "10.10.0.0/16"));
            assert!(cont.del_route(&r).unwrap_err().errno.is_some());

            // The kernel's own prefix route (proto kernel, scope link) can be deleted.
            let prefix = RouteSpec::new("10.9.0.0/24".parse().unwrap()).dev(c.index);
            cont.del_route(&prefix).unwrap();
            assert!(!cont.list_routes().unwrap().iter().any(|x| x.dst.to_string() == "10.9.0.0/24"));
            // A link-scope host route with a source address.
            let gw = RouteSpec::new("10.9.0.1/32".parse().unwrap())
                .dev(c.index)
                .scope(RT_SCOPE_LINK)
                .src("10.9.0.2".parse().unwrap());
            cont.add_route(&gw).unwrap();
            assert!(
                cont.list_routes()
                    .unwrap()
                    .iter()
                    .any(|x| x.dst.to_string() == "10.9.0.1/32" && x.scope == RT_SCOPE_LINK)
            );

            cont.del_address(&c, "10.9.0.2/24".parse().unwrap()).unwrap();
            assert!(cont.list_addresses(&c).unwrap().iter().all(|a| a.net.addr().to_string() != "10.9.0.2"));

            // The runtime drives the connections on this thread: no worker or blocking threads.
            let comms: Vec<String> = std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .collect();
            assert!(!comms.iter().any(|c| c.starts_with("tokio")), "{comms:?}");

            // Deleting one end removes both.
            host.del_link(&h).unwrap();
            assert!(cont.link_by_name("eth0").unwrap().is_none());
            let e = host.del_link(&h).unwrap_err();
            assert!(e.is_not_found(), "{e}");
        });
    }

    #[test]
    fn bridge_ports_flags_and_vlans() {
        in_new_netns(|| {
            let nl = Netlink::open().unwrap();
            let here = Netns::current().unwrap();
            // Kernels built without CONFIG_BRIDGE_VLAN_FILTERING refuse vlan_filtering.
            let vlan_filtering = match nl.create_bridge("brt0", Some(1300), true) {
                Ok(()) => true,
                Err(e) if e.errno == Some(nix::errno::Errno::EOPNOTSUPP as i32) => {
                    let required = std::env::var("CNIBOX_REQUIRE_VLAN_FILTERING").is_ok_and(|v| v == "1");
                    assert!(!required, "bridge VLAN filtering required but missing: {e}");
                    eprintln!("no bridge VLAN filtering in this kernel: {e}");
                    nl.create_bridge("brt0", Some(1300), false).unwrap();
                    false
                }
                Err(e) => panic!("{e}"),
            };
            assert!(nl.create_bridge("brt0", None, false).unwrap_err().is_exists());
            let br = nl.link("brt0").unwrap();
            assert_eq!((br.kind.clone(), br.mtu), (LinkKind::Bridge, 1300));
            nl.set_promisc(&br, true).unwrap();
            assert!(nl.link("brt0").unwrap().promisc);
            nl.set_up(&br).unwrap();

            // A veth with both ends here, one end on the bridge.
            nl.create_veth("vp0", "vp1", &here, None, None, None).unwrap();
            let port = nl.link("vp0").unwrap();
            nl.set_master(&port, &br).unwrap();
            assert_eq!(nl.link("vp0").unwrap().master, Some(br.index));
            nl.set_hairpin(&port, true).unwrap();
            nl.set_isolated(&port, true).unwrap();

            if vlan_filtering {
                let vlans = nl.bridge_vlans(&port).unwrap();
                assert_eq!(vlans.iter().map(|v| v.0).collect::<Vec<_>>(), vec![1], "{vlans:?}");
                nl.bridge_vlan_del(&port, 1).unwrap();
                nl.bridge_vlan_add(&port, 100, true, true).unwrap();
                nl.bridge_vlan_add(&port, 200, false, false).unwrap();
                let vlans = nl.bridge_vlans(&port).unwrap();
                let pvid_untagged = 0x2 | 0x4;
                assert_eq!(vlans, vec![(100, pvid_untagged), (200, 0)]);
            }

            nl.set_mac(&br, &[0x02, 0, 0, 0, 0, 1]).unwrap();
            assert_eq!(nl.link("brt0").unwrap().mac_string(), "02:00:00:00:00:01");
            nl.set_mtu(&port, 1280).unwrap();
            assert_eq!(nl.link("vp0").unwrap().mtu, 1280);

            // Kernel text comes through.
            let e = nl.set_mtu(&port, 10).unwrap_err();
            assert!(e.to_string().contains("\"vp0\""), "{e}");
            assert_eq!(
                e.to_string(),
                "failed to set MTU 10 on \"vp0\": mtu less than device minimum (Invalid argument)"
            );
        });
    }
}
