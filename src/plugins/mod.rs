//! The plugins, one module each.

pub mod loopback;
