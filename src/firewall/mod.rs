//! The nftables core shared by `ipMasq` (bridge, ptp), `macspoofchk` (bridge), portmap and
//! the firewall plugin: atomic batches built in nft's JSON schema and applied over netlink
//! (compile.rs turns their rules into nf_tables expressions; `nft` takes what it cannot),
//! table listings with rule handles, comments and expressions, and the per-feature layouts.
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
