//! cnibox: the standard CNI plugins in one small static binary.
// Modules may opt out, with their reasons: netlink::unregister and netlink::detach fork,
// util::dirents reads getdents64 records and util::spawn the C library's environment (see
// there).
#![deny(unsafe_code)]

pub mod applets;
pub mod cni;
pub mod cnitool;
pub mod dbus;
pub mod firewall;
pub mod ipam;
pub mod logger;
pub mod netlink;
pub mod netns;
pub mod plugins;
pub mod sysctl;
pub mod util;
