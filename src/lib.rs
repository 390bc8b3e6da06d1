//! cnibox: the standard CNI plugins in one small static binary.
#![forbid(unsafe_code)]

pub mod applets;
pub mod cni;
pub mod cnitool;
pub mod ipam;
pub mod logger;
pub mod plugins;
pub mod util;
