//! The plugins cnibox implements, one module each.

pub mod host_local;
pub mod loopback;
pub mod static_ipam;
