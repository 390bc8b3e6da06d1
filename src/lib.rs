//! cnibox: the standard CNI plugins in one small static binary.
// One module may opt out, with its reasons: netlink::unregister forks (see there).
#![deny(unsafe_code)]

pub mod applets;
pub mod cni;
pub mod cnitool;
pub mod firewall;
pub mod ipam;
pub mod logger;
pub mod netlink;
pub mod netns;
pub mod plugins;
pub mod sysctl;
pub mod util;
