//! The nftables core shared by `ipMasq` (bridge, ptp), `macspoofchk` (bridge), portmap and
//! the firewall plugin: an `nft` runner with atomic JSON batches, table listings with rule
//! handles and comments, and the per-feature rule layouts.
//!
//! Every rule cnibox writes carries a comment naming its owner, so teardown and GC find the
//! rules by listing the table and deleting by handle, never by rebuilding rule text.
//!
//! `iptables` only removes, on DEL and GC, the per-container chains the reference plugins'
//! iptables backend left behind; nothing here writes iptables rules.

pub mod compile;
pub mod iptables;
pub mod masq;
pub mod nft;
pub mod spoofcheck;
