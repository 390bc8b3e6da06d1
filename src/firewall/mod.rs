//! The nftables core shared by `ipMasq` (bridge, ptp), `macspoofchk` (bridge), portmap and
//! the firewall plugin: an `nft` runner with atomic JSON batches, table listings with rule
//! handles and comments, and the per-feature rule layouts.
//!
//! Every rule cnibox writes carries a comment naming its owner, so teardown and GC find the
//! rules by listing the table and deleting by handle, never by rebuilding rule text.

pub mod masq;
pub mod nft;
pub mod spoofcheck;

use crate::cni::CniError;
use serde::Deserialize;

/// GC's `cni.dev/valid-attachments` (or the older `cni.dev/attachments`) as
/// (container ID, ifname) pairs; None when the config carries neither.
pub fn valid_attachments(stdin: &[u8]) -> Result<Option<Vec<(String, String)>>, CniError> {
    #[derive(Deserialize)]
    struct Attachment {
        #[serde(rename = "containerID", default)]
        container_id: String,
        #[serde(default)]
        ifname: String,
    }
    #[derive(Deserialize)]
    struct Gc {
        #[serde(rename = "cni.dev/valid-attachments", default)]
        valid: Option<Vec<Attachment>>,
        #[serde(rename = "cni.dev/attachments", default)]
        old: Option<Vec<Attachment>>,
    }
    let gc: Gc = crate::cni::config::parse_plugin_conf("gc", stdin)?;
    Ok(gc.valid.or(gc.old).map(|v| v.into_iter().map(|a| (a.container_id, a.ifname)).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments() {
        let a = valid_attachments(br#"{"cni.dev/valid-attachments":[{"containerID":"c","ifname":"eth0"}]}"#).unwrap();
        assert_eq!(a, Some(vec![("c".to_string(), "eth0".to_string())]));
        let a = valid_attachments(br#"{"cni.dev/attachments":[{"containerID":"d","ifname":"net1"}]}"#).unwrap();
        assert_eq!(a.unwrap()[0].0, "d");
        assert_eq!(valid_attachments(br#"{"name":"x"}"#).unwrap(), None);
    }
}
