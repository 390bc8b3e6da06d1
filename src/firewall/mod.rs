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

/// A container address as a host match, `<ip>/32` or `<ip>/128`: as iptables lists a match
/// on it, and as firewalld is given it as a zone's source.
pub fn host_net(ip: std::net::IpAddr) -> String {
    format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 })
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_nets() {
        assert_eq!(super::host_net("10.88.0.5".parse().unwrap()), "10.88.0.5/32");
        assert_eq!(super::host_net("fd00::5".parse().unwrap()), "fd00::5/128");
    }
}
