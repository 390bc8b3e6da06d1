//! Links: look up, create (veth pairs with each end born in its own namespace, bridges),
//! change and delete.

use super::{Error, Netlink, NlFailure, format_mac};
use crate::netns::Netns;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{
    AfSpecInet, AfSpecInet6, AfSpecUnspec, InetDevConf, InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoVeth,
    IpVlanMode, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, MacVlanMode, State,
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
    fn from_message(m: &LinkMessage) -> Link {
        let mut link = Link {
            index: m.header.index,
            name: String::new(),
            kind: LinkKind::None,
            mac: Vec::new(),
            mtu: 0,
            up: m.header.flags.contains(LinkFlags::Up),
            promisc: m.header.flags.contains(LinkFlags::Promisc),
            oper_up: false,
            oper_state: String::new(),
            master: None,
            peer_index: None,
            parent_index: None,
            allmulti: m.header.flags.contains(LinkFlags::Allmulti),
            txqlen: 0,
            tx_queues: 0,
            mode: None,
            accept_ra: None,
            route_localnet: None,
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Address(mac) => link.mac = mac.clone(),
                LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
                LinkAttribute::Controller(i) => link.master = Some(*i),
                LinkAttribute::Link(i) => link.peer_index = Some(*i),
                LinkAttribute::TxQueueLen(q) => link.txqlen = *q,
                LinkAttribute::NumTxQueues(q) => link.tx_queues = *q,
                LinkAttribute::AfSpecUnspec(specs) => {
                    for spec in specs {
                        match spec {
                            AfSpecUnspec::Inet6(v6) => {
                                for x in v6 {
                                    if let AfSpecInet6::DevConf(c) = x {
                                        link.accept_ra = Some(c.accept_ra);
                                    }
                                }
                            }
                            AfSpecUnspec::Inet(v4) => {
                                for x in v4 {
                                    if let AfSpecInet::DevConf(c) = x {
                                        link.route_localnet = Some(c.route_localnet != 0);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                LinkAttribute::OperState(s) => {
                    link.oper_up = *s == State::Up;
                    link.oper_state = oper_state_name(s);
                }
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        match i {
                            LinkInfo::Kind(k) => {
                                link.kind = match k {
                                    InfoKind::Veth => LinkKind::Veth,
                                    InfoKind::Bridge => LinkKind::Bridge,
                                    other => LinkKind::Other(other.to_string()),
                                }
                            }
                            LinkInfo::Data(InfoData::MacVlan(d)) => {
                                link.mode = d.iter().find_map(|x| match x {
                                    InfoMacVlan::Mode(m) => Some(m.to_string()),
                                    _ => None,
                                })
                            }
                            LinkInfo::Data(InfoData::IpVlan(d)) => {
                                link.mode = d.iter().find_map(|x| match x {
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
        if link.kind != LinkKind::Veth {
            link.parent_index = link.peer_index.take();
        }
        link
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

impl Netlink {
    fn get_link(&self, mut msg: LinkMessage, what: &str) -> Result<Option<Link>, Error> {
        msg.attributes.push(skip_stats());
        match self.get(RouteNetlinkMessage::GetLink(msg)) {
            Ok(replies) => Ok(replies.iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(m) => Some(Link::from_message(m)),
                _ => None,
            })),
            Err(NlFailure::Kernel { errno, .. }) if crate::netns::errno_is_not_found(errno) => Ok(None),
            Err(e) => Err(e.context(format!("failed to look up {what}"))),
        }
    }

    /// The link called `name`, or None.
    pub fn link_by_name(&self, name: &str) -> Result<Option<Link>, Error> {
        self.get_link(LinkUnspec::new_with_name(name).build(), &format!("\"{name}\""))
    }

    pub fn link_by_index(&self, index: u32) -> Result<Option<Link>, Error> {
        self.get_link(LinkUnspec::new_with_index(index).build(), &format!("link {index}"))
    }

    /// The link called `name`; its absence is an error naming it.
    pub fn link(&self, name: &str) -> Result<Link, Error> {
        self.link_by_name(name)?
            .ok_or_else(|| Error::kernel(format!("failed to find \"{name}\""), nix::errno::Errno::ENODEV as i32, None))
    }

    pub fn links(&self) -> Result<Vec<Link>, Error> {
        self.dump_links(|m| Some(Link::from_message(m)))
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
    /// Each end gets one transmit queue, the number it uses anyway: since Linux 5.14 a veth
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
        self.set_ipv4_conf(link, "arp_notify", |c| c.arp_notify = 1)
    }

    /// Set `net.ipv4.conf.<link>.route_localnet` to 1 (over netlink, as above).
    pub fn set_route_localnet(&self, link: &Link) -> Result<(), Error> {
        self.set_ipv4_conf(link, "route_localnet", |c| c.route_localnet = 1)
    }

    /// Set the IPv4 parameters of `link` that `set` makes non-zero; `what` names them in errors.
    fn set_ipv4_conf(&self, link: &Link, what: &str, set: impl FnOnce(&mut InetDevConf)) -> Result<(), Error> {
        let mut conf = InetDevConf::default();
        set(&mut conf);
        let msg = LinkUnspec::new_with_index(link.index).append_extra_attribute(inet_conf(conf)).build();
        self.set_link(msg, format!("failed to set {what} on \"{}\"", link.name))
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
fn oper_state_name(s: &State) -> String {
    match s {
        State::Unknown => "unknown".into(),
        State::NotPresent => "notpresent".into(),
        State::Down => "down".into(),
        State::LowerLayerDown => "lowerlayerdown".into(),
        State::Testing => "testing".into(),
        State::Dormant => "dormant".into(),
        State::Up => "up".into(),
        State::Other(n) => format!("state {n}"),
        _ => "unknown".into(),
    }
}

/// IFLA_AF_SPEC setting the IPv4 parameters (`net.ipv4.conf.<link>.*`) that are non-zero in
/// `conf`; the others stay as they are.
fn inet_conf(conf: InetDevConf) -> LinkAttribute {
    LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![AfSpecInet::DevConfRequest(conf)])])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::Emitable;

    /// Only the parameters named go to the kernel: an attribute for every field would reset
    /// all the others of the link.
    #[test]
    fn inet_conf_golden_bytes() {
        let mut conf = InetDevConf::default();
        conf.arp_notify = 1;
        let a = inet_conf(conf);
        let mut buf = vec![0; a.buffer_len()];
        a.emit(&mut buf);
        #[rustfmt::skip]
        let want: [u8; 20] = [
            20, 0, 26, 0,                 // IFLA_AF_SPEC
            16, 0, 2, 0,                  //   AF_INET
            12, 0, 1, 0x80,               //     IFLA_INET_CONF, nested
            8, 0, 22, 0, 1, 0, 0, 0,      //       IPV4_DEVCONF_ARP_NOTIFY = 1
        ];
        assert_eq!(buf, want);
    }
}
