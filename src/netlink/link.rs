//! Links: look up, create (veth pairs with each end born in its own namespace, bridges),
//! change and delete.

use super::nlmsg::{NLA_F_NESTED, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, attr, attr_str, attrs, message, str_attr};
use super::{Error, Netlink, NlFailure, format_mac};
use crate::netns::Netns;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, InfoVeth, IpVlanMode, LinkAttribute, LinkMessage, MacVlanMode,
};
use rtnetlink::{LinkBridge, LinkIpVlan, LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVeth};
use std::fmt;

/// What kind of device a link is, as far as the plugins care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    Veth,
    Bridge,
    Other(String),
    /// No IFLA_INFO_KIND (loopback, physical devices).
    None,
}

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub kind: LinkKind,
    pub mac: Vec<u8>,
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    pub promisc: bool,
    pub oper_up: bool,
    pub oper_state: String,
    /// The bridge (or other controller) this link is a port of.
    pub master: Option<u32>,
    /// For a veth: the peer's index (in the peer's namespace).
    pub peer_index: Option<u32>,
    /// For a macvlan or ipvlan: its parent's index (in the namespace it was created in).
    pub parent_index: Option<u32>,
    pub allmulti: bool,
    pub txqlen: u32,
    /// Transmit queues allocated (IFLA_NUM_TX_QUEUES; 0 when the kernel does not say).
    pub tx_queues: u32,
    /// The macvlan or ipvlan mode, as the reference spells it (`bridge`, `l2`, ...).
    pub mode: Option<String>,
    /// net.ipv6.conf.<link>.accept_ra, as the kernel reported it with the link (None: no IPv6).
    pub accept_ra: Option<i32>,
    /// net.ipv4.conf.<link>.route_localnet, as reported with the link (None: no IPv4).
    pub route_localnet: Option<bool>,
}

/// Modes of a macvlan link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacvlanMode {
    Bridge,
    Private,
    Vepa,
    Passthru,
}

impl MacvlanMode {
    /// The configuration spelling; empty means bridge.
    pub fn parse(s: &str) -> Option<MacvlanMode> {
        Some(match s {
            "" | "bridge" => MacvlanMode::Bridge,
            "private" => MacvlanMode::Private,
            "vepa" => MacvlanMode::Vepa,
            "passthru" => MacvlanMode::Passthru,
            _ => return None,
        })
    }

    fn kernel(self) -> MacVlanMode {
        match self {
            MacvlanMode::Bridge => MacVlanMode::Bridge,
            MacvlanMode::Private => MacVlanMode::Private,
            MacvlanMode::Vepa => MacVlanMode::Vepa,
            MacvlanMode::Passthru => MacVlanMode::Passthrough,
        }
    }
}

impl fmt::Display for MacvlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Private => "private",
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Passthru => "passthru",
        })
    }
}

/// Modes of an ipvlan link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpvlanMode {
    L2,
    L3,
    L3s,
}

impl IpvlanMode {
    /// The configuration spelling; empty means l2.
    pub fn parse(s: &str) -> Option<IpvlanMode> {
        Some(match s {
            "" | "l2" => IpvlanMode::L2,
            "l3" => IpvlanMode::L3,
            "l3s" => IpvlanMode::L3s,
            _ => return None,
        })
    }

    fn kernel(self) -> IpVlanMode {
        match self {
            IpvlanMode::L2 => IpVlanMode::L2,
            IpvlanMode::L3 => IpVlanMode::L3,
            IpvlanMode::L3s => IpVlanMode::L3S,
        }
    }
}

impl fmt::Display for IpvlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpvlanMode::L2 => "l2",
            IpvlanMode::L3 => "l3",
            IpvlanMode::L3s => "l3s",
        })
    }
}

/// A macvlan or ipvlan to create: `name` on the parent `parent` (an index in the namespace of
/// the connection that creates it), born directly in `ns`.
pub struct SubLink<'a> {
    pub name: &'a str,
    pub parent: u32,
    pub ns: &'a Netns,
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
}

impl Link {
    /// The link an RTM_NEWLINK message describes (its payload: `struct ifinfomsg`, then
    /// attributes); None if it is too short to be one. Only what a `Link` holds is read.
    fn from_bytes(payload: &[u8]) -> Option<Link> {
        let word = |v: &[u8]| Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?));
        let flags = word(payload.get(8..12)?)?;
        let mut link = Link {
            index: word(payload.get(4..8)?)?,
            name: String::new(),
            kind: LinkKind::None,
            mac: Vec::new(),
            mtu: 0,
            up: flags & IFF_UP != 0,
            promisc: flags & IFF_PROMISC != 0,
            oper_up: false,
            oper_state: String::new(),
            master: None,
            peer_index: None,
            parent_index: None,
            allmulti: flags & IFF_ALLMULTI != 0,
            txqlen: 0,
            tx_queues: 0,
            mode: None,
            accept_ra: None,
            route_localnet: None,
        };
        let mut info_data: &[u8] = &[];
        for (kind, _, v) in attrs(payload.get(16..)?) {
            match kind {
                IFLA_IFNAME => link.name = attr_str(v),
                IFLA_ADDRESS => link.mac = v.to_vec(),
                IFLA_MTU => link.mtu = word(v).unwrap_or_default(),
                IFLA_MASTER => link.master = word(v),
                IFLA_LINK => link.peer_index = word(v),
                IFLA_TXQLEN => link.txqlen = word(v).unwrap_or_default(),
                IFLA_NUM_TX_QUEUES => link.tx_queues = word(v).unwrap_or_default(),
                IFLA_OPERSTATE => {
                    if let Some(&state) = v.first() {
                        link.oper_up = state == IF_OPER_UP;
                        link.oper_state = oper_state_name(state);
                    }
                }
                IFLA_LINKINFO => {
                    for (k, _, v) in attrs(v) {
                        match k {
                            IFLA_INFO_KIND => {
                                link.kind = match attr_str(v).as_str() {
                                    "veth" => LinkKind::Veth,
                                    "bridge" => LinkKind::Bridge,
                                    other => LinkKind::Other(other.to_string()),
                                }
                            }
                            IFLA_INFO_DATA => info_data = v,
                            _ => {}
                        }
                    }
                }
                IFLA_AF_SPEC => {
                    // Per family, its device settings: an array of them, in the order of their
                    // numbers (IPv4's from 1, IPv6's from 0).
                    let setting = |v: &[u8], conf: u16, i: usize| {
                        let (_, _, all) = attrs(v).find(|(k, _, _)| *k == conf)?;
                        Some(i32::from_ne_bytes(all.get(4 * i..4 * i + 4)?.try_into().ok()?))
                    };
                    for (family, _, v) in attrs(v) {
                        match family {
                            AF_INET => {
                                link.route_localnet =
                                    setting(v, IFLA_INET_CONF, usize::from(IPV4_DEVCONF_ROUTE_LOCALNET) - 1)
                                        .map(|x| x != 0)
                            }
                            AF_INET6 => link.accept_ra = setting(v, IFLA_INET6_CONF, DEVCONF_ACCEPT_RA),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        // The mode of a macvlan or ipvlan, as the reference names it.
        let mode = attrs(info_data).find(|(k, _, _)| *k == IFLA_MACVLAN_MODE).map(|(_, _, v)| v);
        link.mode = match (&link.kind, mode) {
            (LinkKind::Other(k), Some(v)) if k == "macvlan" => word(v).map(|m| match m {
                1 => "private".into(),
                2 => "vepa".into(),
                4 => "bridge".into(),
                8 => "passthru".into(),
                16 => "source".into(),
                other => other.to_string(),
            }),
            (LinkKind::Other(k), Some(v)) if k == "ipvlan" => Some(u16::from_ne_bytes(v.get(..2)?.try_into().ok()?))
                .map(|m| match m {
                    0 => "l2".into(),
                    1 => "l3".into(),
                    2 => "l3s".into(),
                    other => other.to_string(),
                }),
            _ => None,
        };
        // IFLA_LINK is a veth's peer, a macvlan's or ipvlan's parent.
        if link.kind != LinkKind::Veth {
            link.parent_index = link.peer_index.take();
        }
        Some(link)
    }

    pub fn mac_string(&self) -> String {
        format_mac(&self.mac)
    }
}

/// Link lookups and dumps ask the kernel to leave out statistics: IPv6's per-device counters
/// (summed over every CPU for each reply; a fifth of a link message), and on recent kernels
/// the device's own. Nothing here reads them. Kernels before 2025's fix also leave out
/// IPv6's token, address generation mode and RA MTU with them, which nothing here reads either;
/// kernels older than the flag ignore it.
fn skip_stats() -> LinkAttribute {
    LinkAttribute::ExtMask(vec![rtnetlink::packet_route::link::LinkExtentMask::SkipStats])
}

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const IPV4_DEVCONF_ARP_NOTIFY: u16 = 22;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_TXQLEN: u16 = 13;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_LINKINFO: u16 = 18;
const IFLA_AF_SPEC: u16 = 26;
const IFLA_EXT_MASK: u16 = 29;
const IFLA_NUM_TX_QUEUES: u16 = 31;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
/// IFLA_MACVLAN_MODE and IFLA_IPVLAN_MODE alike.
const IFLA_MACVLAN_MODE: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IFLA_INET_CONF: u16 = 1;
const IFLA_INET6_CONF: u16 = 2;
const IPV4_DEVCONF_ROUTE_LOCALNET: u16 = 26;
const DEVCONF_ACCEPT_RA: usize = 3;
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;
const IFF_UP: u32 = 0x1;
const IFF_PROMISC: u32 = 0x100;
const IFF_ALLMULTI: u32 = 0x200;
const IF_OPER_UP: u8 = 6;

/// RTM_GETLINK for the link `index` or, with index 0, `name`; without either, a dump of all.
/// Statistics are left out, as `skip_stats` says.
fn getlink_request(seq: u32, index: u32, name: Option<&str>) -> Vec<u8> {
    let mut body = ifinfomsg(index);
    if let Some(name) = name {
        body.extend(str_attr(IFLA_IFNAME, name));
    }
    body.extend(attr(IFLA_EXT_MASK, &RTEXT_FILTER_SKIP_STATS.to_ne_bytes()));
    let dump = index == 0 && name.is_none();
    message(RTM_GETLINK, NLM_F_REQUEST | if dump { NLM_F_DUMP } else { NLM_F_ACK }, seq, &body)
}

impl Netlink {
    fn get_link(&self, index: u32, name: Option<&str>, what: &str) -> Result<Option<Link>, Error> {
        match self.plain_request(|seq| getlink_request(seq, index, name), RTM_NEWLINK, false) {
            Ok(replies) => match replies.first() {
                Some(m) => Link::from_bytes(m).map(Some).ok_or_else(|| {
                    Error::new(format!("failed to look up {what}"), "the kernel's reply could not be read")
                }),
                None => Err(Error::new(format!("failed to look up {what}"), "the kernel did not reply")),
            },
            Err(NlFailure::Kernel { errno, .. }) if crate::netns::errno_is_not_found(errno) => Ok(None),
            Err(e) => Err(e.context(format!("failed to look up {what}"))),
        }
    }

    /// The link called `name`, or None.
    pub fn link_by_name(&self, name: &str) -> Result<Option<Link>, Error> {
        self.get_link(0, Some(name), &format!("\"{name}\""))
    }

    pub fn link_by_index(&self, index: u32) -> Result<Option<Link>, Error> {
        self.get_link(index, None, &format!("link {index}"))
    }

    /// The link called `name`; its absence is an error naming it.
    pub fn link(&self, name: &str) -> Result<Link, Error> {
        self.link_by_name(name)?
            .ok_or_else(|| Error::kernel(format!("failed to find \"{name}\""), nix::errno::Errno::ENODEV as i32, None))
    }

    pub fn links(&self) -> Result<Vec<Link>, Error> {
        let replies = self
            .plain_request(|seq| getlink_request(seq, 0, None), RTM_NEWLINK, true)
            .map_err(|e| e.context("failed to list links"))?;
        Ok(replies.iter().filter_map(|m| Link::from_bytes(m)).collect())
    }

    /// Every link of this namespace that `pick` makes something of.
    pub(super) fn dump_links<T>(&self, pick: impl FnMut(&LinkMessage) -> Option<T>) -> Result<Vec<T>, Error> {
        let query = || {
            let mut q = LinkMessage::default();
            q.attributes.push(skip_stats());
            RouteNetlinkMessage::GetLink(q)
        };
        let replies = self.dump(query).map_err(|e| e.context("failed to list links"))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(m) => Some(m),
                _ => None,
            })
            .filter_map(pick)
            .collect())
    }

    fn new_link(&self, msg: LinkMessage, what: String) -> Result<(), Error> {
        self.change(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL).map_err(|e| e.context(what))
    }

    fn set_link(&self, msg: LinkMessage, what: String) -> Result<(), Error> {
        self.change(RouteNetlinkMessage::SetLink(msg), 0).map_err(|e| e.context(what))
    }

    /// Create a veth pair: `name` here, already up, or given a `master` already its port but
    /// still down; and `peer` born directly in `peer_ns` (never visible here, so its name
    /// cannot collide with a link of this namespace), down. `peer_mac` applies to the peer;
    /// `mtu` to both ends. One request: every request that changes a link takes the kernel's
    /// RTNL lock, which every pod on the node contends for.
    ///
    /// A port joins down because a new veth's operational state stays "unknown" until the
    /// kernel's link watcher has seen its carrier go off, and the bridge counts "unknown" as
    /// up: a port that joins up is enabled at once, disabled when the watcher runs, enabled
    /// again when the pod's end comes up, and each of these walks every port of the bridge.
    /// Set up after a lookup of the link (which, on kernels whose RTM_GETLINK settles the
    /// link's pending state, runs the watcher's work for it), it is enabled once; elsewhere
    /// it is only as before.
    ///
    /// Each end gets one transmit queue, the number it uses anyway: on current kernels a veth
    /// made without a count is allocated a queue per CPU each way and then, already
    /// registered, cut back to one in use, and cutting transmit queues waits for an expedited
    /// RCU grace period while holding the RTNL lock, twice per pair. Every pod on the node
    /// queues behind those waits (64 ADDs at once from cold took a fifth longer with them).
    /// Receive queues keep the kernel's default (one in use, more available, which XDP
    /// redirection can spread over); only raising the transmit count later is not possible.
    pub fn create_veth(
        &self,
        name: &str,
        peer: &str,
        peer_ns: &Netns,
        mtu: Option<u32>,
        peer_mac: Option<[u8; 6]>,
        master: Option<&Link>,
    ) -> Result<(), Error> {
        let mut p = LinkUnspec::new_with_name(peer).setns_by_fd(peer_ns.fd());
        let mut me = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth).name(name.to_string());
        me = match master {
            Some(m) => me.controller(m.index),
            None => me.up(),
        };
        if let Some(mtu) = mtu {
            p = p.mtu(mtu);
            me = me.mtu(mtu);
        }
        if let Some(mac) = peer_mac {
            p = p.address(mac.to_vec());
        }
        let mut pm = p.build();
        pm.attributes.push(LinkAttribute::NumTxQueues(1));
        let mut msg = me.set_info_data(InfoData::Veth(InfoVeth::Peer(pm))).build();
        msg.attributes.push(LinkAttribute::NumTxQueues(1));
        self.new_link(msg, format!("failed to create veth pair \"{name}\" / \"{peer}\""))
    }

    /// Create a bridge (fails with `is_exists()` if the name is taken).
    pub fn create_bridge(&self, name: &str, mtu: Option<u32>, vlan_filtering: bool) -> Result<(), Error> {
        let mut b = LinkBridge::new(name);
        if let Some(mtu) = mtu {
            b = b.mtu(mtu);
        }
        if vlan_filtering {
            // Must go in the NEWLINK: a later SETLINK of vlan_filtering is ignored by some kernels.
            b = b.vlan_filtering(true);
        }
        self.new_link(b.build(), format!("failed to create bridge \"{name}\""))
    }

    /// Create a macvlan on `l.parent`, born in `l.ns` (fails with `is_exists()` when the name
    /// is taken in *this* namespace too: the kernel creates it here first, then moves it).
    pub fn create_macvlan(&self, l: &SubLink, mode: MacvlanMode, bcqueuelen: Option<u32>) -> Result<(), Error> {
        let mut b = LinkMacVlan::new(l.name, l.parent, mode.kernel()).setns_by_fd(l.ns.fd());
        if let Some(q) = bcqueuelen {
            b = b.append_info_data(InfoMacVlan::BcQueueLen(q));
        }
        if let Some(mtu) = l.mtu {
            b = b.mtu(mtu);
        }
        if let Some(mac) = l.mac {
            b = b.address(mac.to_vec());
        }
        self.new_link(b.build(), format!("failed to create macvlan \"{}\"", l.name))
    }

    /// Create an ipvlan on `l.parent`, born in `l.ns` (same name caveat as macvlan).
    pub fn create_ipvlan(&self, l: &SubLink, mode: IpvlanMode) -> Result<(), Error> {
        let mut b = LinkIpVlan::new(l.name, l.parent, mode.kernel()).setns_by_fd(l.ns.fd());
        if let Some(mtu) = l.mtu {
            b = b.mtu(mtu);
        }
        if let Some(mac) = l.mac {
            b = b.address(mac.to_vec());
        }
        self.new_link(b.build(), format!("failed to create ipvlan \"{}\"", l.name))
    }

    /// Rename a link (it must be down).
    pub fn rename(&self, link: &Link, name: &str) -> Result<(), Error> {
        let msg = LinkUnspec::new_with_index(link.index).name(name.to_string()).build();
        self.set_link(msg, format!("failed to rename \"{}\" to \"{name}\"", link.name))
    }

    pub fn set_allmulti(&self, link: &Link, on: bool) -> Result<(), Error> {
        let msg = LinkUnspec::new_with_index(link.index).allmulticast(on).build();
        self.set_link(msg, format!("failed to set all-multicast mode on \"{}\"", link.name))
    }

    pub fn set_txqlen(&self, link: &Link, len: u32) -> Result<(), Error> {
        let msg = LinkUnspec::new_with_index(link.index).txqueuelen(len).build();
        self.set_link(msg, format!("failed to set tx queue length {len} on \"{}\"", link.name))
    }

    /// The link of the first main-table default route (IPv4 first, then IPv6), if any.
    pub fn default_route_link(&self) -> Result<Option<Link>, Error> {
        let routes = self.list_routes()?;
        let Some(oif) = routes.iter().filter(|r| r.table == 254 && r.dst.prefix_len() == 0).find_map(|r| r.oif) else {
            return Ok(None);
        };
        self.link_by_index(oif)
    }

    pub fn set_up(&self, link: &Link) -> Result<(), Error> {
        let msg = LinkUnspec::new_with_index(link.index).up().build();
        self.set_link(msg, format!("failed to set \"{}\" up", link.name))
    }

    /// Set `net.ipv4.conf.<link>.arp_notify` to 1 over netlink, which spares a /proc/sys lookup
    /// (its cost grows with the namespaces on the node).
    pub fn set_arp_notify(&self, link: &Link) -> Result<(), Error> {
        self.set_ipv4_conf(link, "arp_notify", IPV4_DEVCONF_ARP_NOTIFY)
    }

    /// Set `net.ipv4.conf.<link>.route_localnet` to 1 (over netlink, as above).
    pub fn set_route_localnet(&self, link: &Link) -> Result<(), Error> {
        self.set_ipv4_conf(link, "route_localnet", IPV4_DEVCONF_ROUTE_LOCALNET)
    }

    /// Set the IPv4 parameter `setting` of `link` to 1; `what` names it in errors. Built here:
    /// the rtnetlink crates size the nested attributes of their device settings over and over,
    /// a tenth of a bridge ADD's instructions for this one request.
    fn set_ipv4_conf(&self, link: &Link, what: &str, setting: u16) -> Result<(), Error> {
        self.plain_request(|seq| setlink_request(seq, link.index, &inet_conf(setting, 1)), 0, false)
            .map(drop)
            .map_err(|e| e.context(format!("failed to set {what} on \"{}\"", link.name)))
    }

    pub fn set_down(&self, link: &Link) -> Result<(), Error> {
        let msg = LinkUnspec::new_with_index(link.index).down().build();
        self.set_link(msg, format!("failed to set \"{}\" down", link.name))
    }

    pub fn set_promisc(&self, link: &Link, on: bool) -> Result<(), Error> {
        let msg = LinkUnspec::new_with_index(link.index).promiscuous(on).build();
        self.set_link(msg, format!("failed to set promiscuous mode on \"{}\"", link.name))
    }

    pub fn set_mtu(&self, link: &Link, mtu: u32) -> Result<(), Error> {
        let msg = LinkUnspec::new_with_index(link.index).mtu(mtu).build();
        self.set_link(msg, format!("failed to set MTU {mtu} on \"{}\"", link.name))
    }

    pub fn set_mac(&self, link: &Link, mac: &[u8]) -> Result<(), Error> {
        let msg = LinkUnspec::new_with_index(link.index).address(mac.to_vec()).build();
        self.set_link(msg, format!("failed to set MAC {} on \"{}\"", format_mac(mac), link.name))
    }

    /// Make `link` a port of `master`.
    pub fn set_master(&self, link: &Link, master: &Link) -> Result<(), Error> {
        let msg = LinkUnspec::new_with_index(link.index).controller(master.index).build();
        self.set_link(msg, format!("failed to connect \"{}\" to bridge \"{}\"", link.name, master.name))
    }

    pub fn del_link(&self, link: &Link) -> Result<(), Error> {
        let msg = LinkUnspec::new_with_index(link.index).build();
        self.change(RouteNetlinkMessage::DelLink(msg), 0)
            .map_err(|e| e.context(format!("failed to delete \"{}\"", link.name)))
    }
}

/// The kernel's name for an operational state (IF_OPER_*), as `ip link` prints it.
fn oper_state_name(state: u8) -> String {
    match state {
        0 => "unknown".into(),
        1 => "notpresent".into(),
        2 => "down".into(),
        3 => "lowerlayerdown".into(),
        4 => "testing".into(),
        5 => "dormant".into(),
        IF_OPER_UP => "up".into(),
        n => format!("state {n}"),
    }
}

/// IFLA_AF_SPEC setting the IPv4 parameter `setting` (`net.ipv4.conf.<link>.*`) to `value`;
/// the others stay as they are.
fn inet_conf(setting: u16, value: u32) -> Vec<u8> {
    let conf = attr(IFLA_INET_CONF | NLA_F_NESTED, &attr(setting, &value.to_ne_bytes()));
    attr(IFLA_AF_SPEC, &attr(AF_INET, &conf))
}

/// `struct ifinfomsg` for the link `index`: family (AF_UNSPEC), pad, type, index, flags, change.
fn ifinfomsg(index: u32) -> Vec<u8> {
    let mut m = vec![0u8; 16];
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m
}

/// RTM_SETLINK of the link `index` with the attributes `attrs`, acknowledged.
fn setlink_request(seq: u32, index: u32, attrs: &[u8]) -> Vec<u8> {
    let mut body = ifinfomsg(index);
    body.extend_from_slice(attrs);
    message(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the parameters named go to the kernel: an attribute for every field would reset
    /// all the others of the link.
    #[test]
    fn inet_conf_golden_bytes() {
        let buf = inet_conf(IPV4_DEVCONF_ARP_NOTIFY, 1);
        #[rustfmt::skip]
        let want: [u8; 20] = [
            20, 0, 26, 0,                 // IFLA_AF_SPEC
            16, 0, 2, 0,                  //   AF_INET
            12, 0, 1, 0x80,               //     IFLA_INET_CONF, nested
            8, 0, 22, 0, 1, 0, 0, 0,      //       IPV4_DEVCONF_ARP_NOTIFY = 1
        ];
        assert_eq!(buf, want);
    }

    #[test]
    fn getlink_golden_bytes() {
        #[rustfmt::skip]
        let want: [u8; 52] = [
            52, 0, 0, 0,  18, 0,  5, 0,  7, 0, 0, 0,  0, 0, 0, 0,   // nlmsghdr: GETLINK, REQUEST|ACK, seq 7
            0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,      // ifinfomsg: any family, index 0
            9, 0, 3, 0,  b'e', b't', b'h', b'0', 0, 0, 0, 0,        // IFLA_IFNAME "eth0"
            8, 0, 29, 0,  8, 0, 0, 0,                               // IFLA_EXT_MASK: SKIP_STATS
        ];
        assert_eq!(getlink_request(7, 0, Some("eth0")), want);
        let by_index = getlink_request(1, 9, None);
        assert_eq!((by_index.len(), &by_index[6..8], &by_index[20..24]), (40, &[5u8, 0][..], &9u32.to_ne_bytes()[..]));
        // Neither: a dump of every link.
        assert_eq!(&getlink_request(1, 0, None)[6..8], &0x301u16.to_ne_bytes());
    }

    fn nested(kind: u16, parts: &[Vec<u8>]) -> Vec<u8> {
        attr(kind, &parts.concat())
    }

    /// A macvlan's message as the kernel sends one, in the parts a `Link` reads.
    #[test]
    fn reads_a_link_message() {
        let mut p = ifinfomsg(7);
        p[8..12].copy_from_slice(&(IFF_UP | IFF_PROMISC).to_ne_bytes());
        let mut inet = vec![0u8; 4 * 32];
        inet[4 * 25] = 1; // route_localnet
        let mut inet6 = vec![0u8; 4 * 60];
        inet6[4 * 3..4 * 4].copy_from_slice(&2i32.to_ne_bytes()); // accept_ra
        p.extend(str_attr(IFLA_IFNAME, "mv0"));
        p.extend(attr(IFLA_ADDRESS, &[2, 0, 0, 0, 0, 9]));
        p.extend(attr(IFLA_MTU, &1400u32.to_ne_bytes()));
        p.extend(attr(IFLA_LINK, &3u32.to_ne_bytes()));
        p.extend(attr(IFLA_OPERSTATE, &[2]));
        p.extend(nested(
            IFLA_LINKINFO,
            &[
                str_attr(IFLA_INFO_KIND, "macvlan"),
                nested(IFLA_INFO_DATA, &[attr(IFLA_MACVLAN_MODE, &8u32.to_ne_bytes())]),
            ],
        ));
        p.extend(nested(
            IFLA_AF_SPEC,
            &[nested(AF_INET, &[attr(IFLA_INET_CONF, &inet)]), nested(AF_INET6, &[attr(IFLA_INET6_CONF, &inet6)])],
        ));
        let l = Link::from_bytes(&p).unwrap();
        assert_eq!((l.index, l.name.as_str(), l.mac.as_slice(), l.mtu), (7, "mv0", &[2u8, 0, 0, 0, 0, 9][..], 1400));
        assert_eq!((l.up, l.promisc, l.allmulti, l.oper_up, l.oper_state.as_str()), (true, true, false, false, "down"));
        assert_eq!((l.kind, l.mode.as_deref()), (LinkKind::Other("macvlan".into()), Some("passthru")));
        assert_eq!((l.parent_index, l.peer_index, l.master), (Some(3), None, None));
        assert_eq!((l.accept_ra, l.route_localnet), (Some(2), Some(true)));
        // Cut short anywhere: no panic, and no link without its header.
        for n in 0..p.len() {
            let _ = Link::from_bytes(&p[..n]);
        }
        assert!(Link::from_bytes(&p[..12]).is_none());
    }
}

/// The links of a namespace of the test's own, read both by `Link::from_bytes` and by the
/// rtnetlink crates' parser from the same messages: the two agree on every field a `Link` has.
#[cfg(all(test, target_os = "linux"))]
mod kernel_tests {
    use super::*;
    use crate::netlink::in_new_netns;
    use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
    use rtnetlink::packet_route::link::{
        AfSpecInet, AfSpecInet6, AfSpecUnspec, InfoIpVlan, LinkFlags, LinkInfo, State,
    };

    fn from_crate(m: &LinkMessage) -> Link {
        let mut l = Link::from_bytes(&[0; 16]).unwrap();
        l.index = m.header.index;
        l.up = m.header.flags.contains(LinkFlags::Up);
        l.promisc = m.header.flags.contains(LinkFlags::Promisc);
        l.allmulti = m.header.flags.contains(LinkFlags::Allmulti);
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::Address(mac) => l.mac = mac.clone(),
                LinkAttribute::Mtu(x) => l.mtu = *x,
                LinkAttribute::Controller(i) => l.master = Some(*i),
                LinkAttribute::Link(i) => l.peer_index = Some(*i),
                LinkAttribute::TxQueueLen(q) => l.txqlen = *q,
                LinkAttribute::NumTxQueues(q) => l.tx_queues = *q,
                LinkAttribute::OperState(s) => {
                    l.oper_up = *s == State::Up;
                    l.oper_state = oper_state_name(u8::from(*s));
                }
                LinkAttribute::AfSpecUnspec(specs) => {
                    for spec in specs {
                        match spec {
                            AfSpecUnspec::Inet6(v6) => {
                                for x in v6 {
                                    if let AfSpecInet6::DevConf(c) = x {
                                        l.accept_ra = Some(c.accept_ra);
                                    }
                                }
                            }
                            AfSpecUnspec::Inet(v4) => {
                                for x in v4 {
                                    if let AfSpecInet::DevConf(c) = x {
                                        l.route_localnet = Some(c.route_localnet != 0);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        match i {
                            LinkInfo::Kind(InfoKind::Veth) => l.kind = LinkKind::Veth,
                            LinkInfo::Kind(InfoKind::Bridge) => l.kind = LinkKind::Bridge,
                            LinkInfo::Kind(k) => l.kind = LinkKind::Other(k.to_string()),
                            LinkInfo::Data(InfoData::MacVlan(d)) => {
                                l.mode = d.iter().find_map(|x| match x {
                                    InfoMacVlan::Mode(m) => Some(m.to_string()),
                                    _ => None,
                                })
                            }
                            LinkInfo::Data(InfoData::IpVlan(d)) => {
                                l.mode = d.iter().find_map(|x| match x {
                                    InfoIpVlan::Mode(m) => Some(m.to_string()),
                                    _ => None,
                                })
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if l.kind != LinkKind::Veth {
            l.parent_index = l.peer_index.take();
        }
        l
    }

    #[test]
    fn both_readers_agree() {
        in_new_netns(|| {
            let nl = Netlink::open().unwrap();
            let here = Netns::current().unwrap();
            nl.create_veth("agree0", "agree1", &here, Some(1400), None, None).unwrap();
            nl.create_bridge("agreebr", None, false).unwrap();
            let br = nl.link("agreebr").unwrap();
            nl.set_master(&nl.link("agree0").unwrap(), &br).unwrap();
            nl.set_up(&nl.link("agree1").unwrap()).unwrap();
            let parent = nl.link("agree1").unwrap();
            let sub = SubLink { name: "agreemv", parent: parent.index, ns: &here, mtu: None, mac: None };
            nl.create_macvlan(&sub, MacvlanMode::Passthru, None).unwrap();
            let ipv = SubLink { name: "agreeiv", parent: parent.index, ns: &here, mtu: None, mac: None };
            let have_ipvlan = nl.create_ipvlan(&ipv, IpvlanMode::L3s).is_ok();

            let raw = nl.plain_request(|seq| getlink_request(seq, 0, None), RTM_NEWLINK, true).unwrap();
            assert!(raw.len() >= 5 + usize::from(have_ipvlan), "{}", raw.len());
            for payload in &raw {
                let bytes = message(RTM_NEWLINK, 0, 0, payload);
                let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).unwrap();
                let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) = parsed.payload else {
                    panic!("not a link message")
                };
                let ours = Link::from_bytes(payload).unwrap();
                assert_eq!(ours, from_crate(&m), "{}", ours.name);
            }
            let mv = nl.link("agreemv").unwrap();
            assert_eq!((mv.mode.as_deref(), mv.parent_index), (Some("passthru"), Some(parent.index)));
            if have_ipvlan {
                assert_eq!(nl.link("agreeiv").unwrap().mode.as_deref(), Some("l3s"));
            }
            assert_eq!(nl.link("agree0").unwrap().master, Some(br.index));
            assert_eq!(nl.links().unwrap().len(), raw.len());
            assert!(nl.link_by_name("agree-none").unwrap().is_none());
            assert_eq!(nl.link_by_index(parent.index).unwrap().unwrap().name, "agree1");
        });
    }
}
