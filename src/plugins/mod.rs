//! The plugins cnibox implements, one module each.

pub mod bandwidth;
pub mod bridge;
pub mod firewall;
pub mod host_local;
pub mod iface;
pub mod ipvlan;
pub mod loopback;
pub mod macvlan;
pub mod portmap;
pub mod ptp;
pub mod static_ipam;
pub mod tuning;
