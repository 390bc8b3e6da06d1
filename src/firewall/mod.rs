//! The nftables core shared by `ipMasq` (bridge, ptp), `macspoofchk` (bridge), portmap and
//! the firewall plugin: atomic batches built in nft's JSON schema and applied over netlink
//! (compile.rs turns their rules into nf_tables expressions; `nft` takes what it cannot),
//! table listings with rule handles, comments and expressions, and the per-feature layouts.
//!
//! Every rule cnibox writes carries a comment naming its owner, so teardown and GC find the
//! rules by listing the table and deleting by handle, never by rebuilding rule text.
//!
//! `iptables` writes the reference plugins' iptables layouts for the backends that ask for
//! them, and removes, on DEL and GC, the per-container chains those left behind; `firewalld`
//! puts container addresses into a firewalld zone over D-Bus (the firewall plugin's backend
//! where firewalld runs).

pub mod compile;
pub mod firewalld;
pub mod iptables;
pub mod masq;
pub mod nft;
pub mod spoofcheck;
