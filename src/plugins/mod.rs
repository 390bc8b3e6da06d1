//! The plugins cnibox implements, one module each.

pub mod host_local;
pub mod static_ipam;
