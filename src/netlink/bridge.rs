//! Bridge ports: hairpin and isolation flags, VLANs.

use super::{Error, Link, Netlink};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{AfSpecBridge, BridgeVlanInfoFlags, InfoBridgePort, LinkAttribute};
use rtnetlink::{LinkBridgePort, LinkBridgeVlan};

impl Netlink {
    /// Set the hairpin (reflective relay) flag of a bridge port.
    pub fn set_hairpin(&self, port: &Link, on: bool) -> Result<(), Error> {
        let msg = LinkBridgePort::new(port.index).append_info_data(InfoBridgePort::HairpinMode(on)).build();
        self.change(RouteNetlinkMessage::NewLink(msg), 0)
            .map_err(|e| e.context(format!("failed to setup hairpin mode for \"{}\"", port.name)))
    }

    /// Set the `isolated` flag of a bridge port: isolated ports cannot talk to each other.
    pub fn set_isolated(&self, port: &Link, on: bool) -> Result<(), Error> {
        let msg = LinkBridgePort::new(port.index).append_info_data(InfoBridgePort::Isolated(on)).build();
        self.change(RouteNetlinkMessage::NewLink(msg), 0)
            .map_err(|e| e.context(format!("failed to set port isolation on \"{}\"", port.name)))
    }

    /// Add VLAN `vid` to a bridge port; `pvid` and `untagged` make it the port's native VLAN.
    pub fn bridge_vlan_add(&self, port: &Link, vid: u16, pvid: bool, untagged: bool) -> Result<(), Error> {
        let mut flags = BridgeVlanInfoFlags::empty();
        if pvid {
            flags |= BridgeVlanInfoFlags::Pvid;
        }
        if untagged {
            flags |= BridgeVlanInfoFlags::Untagged;
        }
        let msg = LinkBridgeVlan::new(port.index).vlan(vid, flags).build();
        self.change(RouteNetlinkMessage::SetLink(msg), 0)
            .map_err(|e| e.context(format!("failed to setup vlan tag {vid} on interface \"{}\"", port.name)))
    }

    pub fn bridge_vlan_del(&self, port: &Link, vid: u16) -> Result<(), Error> {
        let msg = LinkBridgeVlan::new(port.index).vlan(vid, BridgeVlanInfoFlags::empty()).build();
        self.change(RouteNetlinkMessage::DelLink(msg), 0)
            .map_err(|e| e.context(format!("failed to remove vlan {vid} from interface \"{}\"", port.name)))
    }

    /// The VLANs of a bridge port: (vid, flags as BRIDGE_VLAN_INFO_* bits).
    pub fn bridge_vlans(&self, port: &Link) -> Result<Vec<(u16, u16)>, Error> {
        use rtnetlink::packet_route::AddressFamily;
        use rtnetlink::packet_route::link::{LinkExtentMask, LinkMessage};
        let query = || {
            let mut q = LinkMessage::default();
            q.header.interface_family = AddressFamily::Bridge;
            q.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::Brvlan]));
            RouteNetlinkMessage::GetLink(q)
        };
        let replies = self.dump(query).map_err(|e| e.context(format!("failed to list vlans of \"{}\"", port.name)))?;
        let mut out = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewLink(m) = r else { continue };
            if m.header.index != port.index {
                continue;
            }
            for a in &m.attributes {
                if let LinkAttribute::AfSpecBridge(specs) = a {
                    for s in specs {
                        if let AfSpecBridge::VlanInfo(v) = s {
                            out.push((v.vid, v.flags.bits()));
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}
