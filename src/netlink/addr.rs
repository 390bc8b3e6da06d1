//! IP addresses on links.

use super::{Error, Link, Netlink};
use ipnet::IpNet;
use rtnetlink::AddressMessageBuilder;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    /// The address with its prefix length (not masked).
    pub net: IpNet,
    /// Global (universe) scope, as opposed to link or host scope.
    pub global: bool,
    pub tentative: bool,
    pub dad_failed: bool,
}

impl Address {
    fn from_message(m: &AddressMessage) -> Option<Address> {
        let mut ip = None;
        let mut local = None;
        let mut flags = AddressFlags::empty();
        for a in &m.attributes {
            match a {
                AddressAttribute::Address(a) => ip = Some(*a),
                AddressAttribute::Local(a) => local = Some(*a),
                AddressAttribute::Flags(f) => flags = *f,
                _ => {}
            }
        }
        // For point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is ours.
        let ip = local.or(ip)?;
        let net = IpNet::new(ip, m.header.prefix_len).ok()?;
        Some(Address {
            index: m.header.index,
            net,
            global: m.header.scope == AddressScope::Universe,
            tentative: flags.contains(AddressFlags::Tentative),
            dad_failed: flags.contains(AddressFlags::Dadfailed),
        })
    }
}

fn message(link: &Link, net: IpNet) -> AddressMessage {
    match net.addr() {
        IpAddr::V4(a) => {
            AddressMessageBuilder::<Ipv4Addr>::new().index(link.index).address(a, net.prefix_len()).build()
        }
        IpAddr::V6(a) => {
            AddressMessageBuilder::<Ipv6Addr>::new().index(link.index).address(a, net.prefix_len()).build()
        }
    }
}

impl Netlink {
    /// Every address on `link`, both families, in the kernel's order.
    pub fn list_addresses(&self, link: &Link) -> Result<Vec<Address>, Error> {
        self.dump_addresses(link, AddressFamily::Unspec)
    }

    /// The IPv4 (`v4`) or IPv6 addresses on `link`. A dump of one family runs without the
    /// kernel's RTNL lock on kernels since 6.10; one of both families always takes it, and
    /// waits behind every link change on the node.
    pub fn list_addresses_of(&self, link: &Link, v4: bool) -> Result<Vec<Address>, Error> {
        self.dump_addresses(link, if v4 { AddressFamily::Inet } else { AddressFamily::Inet6 })
    }

    fn dump_addresses(&self, link: &Link, family: AddressFamily) -> Result<Vec<Address>, Error> {
        let query = || {
            let mut q = AddressMessage::default();
            q.header.family = family;
            q.header.index = link.index;
            RouteNetlinkMessage::GetAddress(q)
        };
        let replies =
            self.dump(query).map_err(|e| e.context(format!("failed to list addresses of \"{}\"", link.name)))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewAddress(m) if m.header.index == link.index => Address::from_message(m),
                _ => None,
            })
            .collect())
    }

    /// Add `net` to `link`; fails with `is_exists()` if it is already there.
    pub fn add_address(&self, link: &Link, net: IpNet) -> Result<(), Error> {
        self.change(RouteNetlinkMessage::NewAddress(message(link, net)), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| e.context(format!("failed to add IP address {net} to \"{}\"", link.name)))
    }

    pub fn del_address(&self, link: &Link, net: IpNet) -> Result<(), Error> {
        self.change(RouteNetlinkMessage::DelAddress(message(link, net)), 0)
            .map_err(|e| e.context(format!("failed to remove IP address {net} from \"{}\"", link.name)))
    }
}
