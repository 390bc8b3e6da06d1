//! GC's attachment lists: `cni.dev/valid-attachments` and the older `cni.dev/attachments`,
//! each a list of (container ID, ifname) a plugin must keep.

use super::error::CniError;
use serde::{Deserialize, Serialize};

/// One attachment as the runtime writes it. Both keys are required, and not empty: Go's
/// decoder would read a missing `ifname` as empty, and GC would then free the addresses of an attachment the
/// runtime meant to keep; such a list fails GC, and nothing is collected.
#[derive(Deserialize, Serialize, Clone, PartialEq, Eq)]
pub struct Attachment {
    #[serde(rename = "containerID", deserialize_with = "non_empty")]
    pub container_id: String,
    #[serde(deserialize_with = "non_empty")]
    pub ifname: String,
}

fn non_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Err(serde::de::Error::custom("is empty"));
    }
    Ok(s)
}

/// Both keys as written; a key that is absent or null is None.
#[derive(Deserialize, Default)]
pub struct GcAttachments {
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid: Option<Vec<Attachment>>,
    #[serde(rename = "cni.dev/attachments", default)]
    pub old: Option<Vec<Attachment>>,
}

impl GcAttachments {
    /// The valid list, or the older key when the valid one is absent, as
    /// (container ID, ifname) pairs; None when the config carries neither.
    pub fn either(self) -> Option<Vec<(String, String)>> {
        self.valid.or(self.old).map(|v| v.into_iter().map(|a| (a.container_id, a.ifname)).collect())
    }

    /// Both lists together as (container ID, ifname) pairs; None when the config carries neither.
    pub fn union(self) -> Option<Vec<(String, String)>> {
        match (self.valid, self.old) {
            (None, None) => None,
            (a, b) => Some(a.into_iter().chain(b).flatten().map(|a| (a.container_id, a.ifname)).collect()),
        }
    }
}

/// GC's `cni.dev/valid-attachments` (or the older `cni.dev/attachments`) as
/// (container ID, ifname) pairs; None when the config carries neither.
pub fn valid_attachments(stdin: &[u8]) -> Result<Option<Vec<(String, String)>>, CniError> {
    let gc: GcAttachments = super::config::parse_plugin_conf("gc", stdin)?;
    Ok(gc.either())
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
        let e = valid_attachments(
            br#"{"cni.dev/valid-attachments":[{"containerID":"c","ifname":"eth0"},{"containerID":"g1"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, 6);
        assert!(e.msg.ends_with("cni.dev/valid-attachments[1]: missing field `ifname`"), "{}", e.msg);
        let e = valid_attachments(br#"{"cni.dev/valid-attachments":[{"containerID":"c","ifname":""}]}"#).unwrap_err();
        assert!(e.msg.ends_with("cni.dev/valid-attachments[0].ifname: is empty"), "{}", e.msg);
    }
}
