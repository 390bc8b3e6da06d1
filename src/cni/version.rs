//! Spec versions: exact-string reconciliation, as the reference does it.

use super::error::{CniError, code};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpecVersion {
    V0_1_0,
    V0_2_0,
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

/// Every version cnibox speaks, oldest first.
pub const ALL: &[SpecVersion] = &[
    SpecVersion::V0_1_0,
    SpecVersion::V0_2_0,
    SpecVersion::V0_3_0,
    SpecVersion::V0_3_1,
    SpecVersion::V0_4_0,
    SpecVersion::V1_0_0,
    SpecVersion::V1_1_0,
];

/// Versions from 0.3.0 on (bandwidth).
pub const FROM_0_3_0: &[SpecVersion] = ALL.split_at(2).1;
/// Versions from 0.4.0 on (firewall).
pub const FROM_0_4_0: &[SpecVersion] = ALL.split_at(4).1;

/// The version this library writes in VERSION output.
pub const CURRENT: SpecVersion = SpecVersion::V1_1_0;

impl SpecVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V0_1_0 => "0.1.0",
            SpecVersion::V0_2_0 => "0.2.0",
            SpecVersion::V0_3_0 => "0.3.0",
            SpecVersion::V0_3_1 => "0.3.1",
            SpecVersion::V0_4_0 => "0.4.0",
            SpecVersion::V1_0_0 => "1.0.0",
            SpecVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Exact match; the empty string means 0.1.0, as in the reference.
    pub fn parse(s: &str) -> Option<SpecVersion> {
        if s.is_empty() {
            return Some(SpecVersion::V0_1_0);
        }
        ALL.iter().copied().find(|v| v.as_str() == s)
    }

    /// The result family this version writes.
    pub fn family(self) -> Family {
        match self {
            SpecVersion::V0_1_0 | SpecVersion::V0_2_0 => Family::V02,
            SpecVersion::V0_3_0 | SpecVersion::V0_3_1 | SpecVersion::V0_4_0 => Family::V04,
            SpecVersion::V1_0_0 | SpecVersion::V1_1_0 => Family::V1,
        }
    }
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Result layouts: 0.1/0.2 (`ip4`/`ip6`), 0.3/0.4 (`ips[].version`), 1.x.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V02,
    V04,
    V1,
}

/// A version string as numbers (major, minor, patch), for ordering: one to three numeric parts,
/// missing parts are zero; an empty string is 0.1.0. None when it is not a version at all.
pub fn numeric(s: &str) -> Option<(u64, u64, u64)> {
    if s.is_empty() {
        return Some((0, 1, 0));
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() > 3 {
        return None;
    }
    let mut n = [0u64; 3];
    for (slot, p) in n.iter_mut().zip(&parts) {
        *slot = p.parse().ok()?;
    }
    Some((n[0], n[1], n[2]))
}

/// Go's `%q` of a string slice: `["0.1.0" "0.2.0"]`.
pub fn quoted_list(versions: &[SpecVersion]) -> String {
    let inner: Vec<String> = versions.iter().map(|v| format!("\"{v}\"")).collect();
    format!("[{}]", inner.join(" "))
}

/// Read `cniVersion` from raw config bytes and reconcile it against `supported`.
/// Returns the config's version, or the reference's code-6 / code-1 errors.
pub fn reconcile(stdin: &[u8], supported: &[SpecVersion]) -> Result<SpecVersion, CniError> {
    let raw = config_version_string(stdin)?;
    match SpecVersion::parse(&raw) {
        Some(v) if supported.contains(&v) => Ok(v),
        _ => Err(CniError::new(code::INCOMPATIBLE_VERSION, "incompatible CNI versions")
            .with_details(format!("config is \"{raw}\", plugin supports {}", quoted_list(supported)))),
    }
}

/// The raw `cniVersion` string ("" when absent); code 6 when the JSON or the field's type is wrong.
pub fn config_version_string(stdin: &[u8]) -> Result<String, CniError> {
    #[derive(serde::Deserialize)]
    struct V {
        #[serde(rename = "cniVersion", default, deserialize_with = "crate::cni::config::null_default")]
        cni_version: String,
    }
    crate::cni::json::from_slice::<V>(stdin)
        .map(|v| v.cni_version)
        .map_err(|e| CniError::decoding(format!("decoding version from network config: {e}")))
}

/// The VERSION reply: compact JSON and a newline.
pub fn version_reply(supported: &[SpecVersion]) -> String {
    let list: Vec<String> = supported.iter().map(|v| format!("\"{v}\"")).collect();
    format!("{{\"cniVersion\":\"{}\",\"supportedVersions\":[{}]}}\n", CURRENT, list.join(","))
}

/// The text printed to stderr when a plugin runs with no CNI_COMMAND.
pub fn about(applet: &str, supported: &[SpecVersion]) -> String {
    let list: Vec<&str> = supported.iter().map(|v| v.as_str()).collect();
    format!(
        "CNI {applet} plugin cnibox v{}\nCNI protocol versions supported: {}\n",
        env!("CARGO_PKG_VERSION"),
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_match_only() {
        assert_eq!(SpecVersion::parse("0.3.1"), Some(SpecVersion::V0_3_1));
        assert_eq!(SpecVersion::parse(""), Some(SpecVersion::V0_1_0));
        assert_eq!(SpecVersion::parse("0.3"), None);
        assert_eq!(SpecVersion::parse("1.0"), None);
        assert_eq!(SpecVersion::parse("1.2.0"), None);
    }

    #[test]
    fn reconcile_errors() {
        assert_eq!(reconcile(br#"{"cniVersion":"1.0.0"}"#, ALL), Ok(SpecVersion::V1_0_0));
        assert_eq!(reconcile(br#"{}"#, ALL), Ok(SpecVersion::V0_1_0));
        let e = reconcile(br#"{"cniVersion":"9.9.9"}"#, ALL).unwrap_err();
        assert_eq!(e.code, 1);
        assert_eq!(e.msg, "incompatible CNI versions");
        assert!(e.details.starts_with("config is \"9.9.9\", plugin supports [\"0.1.0\" \"0.2.0\""));
        let e = reconcile(br#"{"cniVersion":"0.2.0"}"#, FROM_0_3_0).unwrap_err();
        assert_eq!(e.code, 1);
        let e = reconcile(br#"{"cniVersion":1}"#, ALL).unwrap_err();
        assert_eq!(e.code, 6);
    }

    #[test]
    fn version_reply_layout() {
        assert_eq!(
            version_reply(FROM_0_4_0),
            "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n"
        );
    }

    #[test]
    fn about_text() {
        let a = about("bridge", ALL);
        assert!(a.starts_with("CNI bridge plugin "));
        assert!(a.ends_with("CNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n"));
    }
}
