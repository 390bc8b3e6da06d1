//! The plugins, one module each.

pub mod bridge;
pub mod iface;
pub mod loopback;
pub mod ptp;
