//! The plugins cnibox implements, one module each.

pub mod bridge;
pub mod host_local;
pub mod iface;
pub mod ipvlan;
pub mod loopback;
pub mod macvlan;
pub mod ptp;
pub mod static_ipam;
pub mod tuning;
