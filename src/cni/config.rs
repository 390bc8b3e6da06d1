//! The network configuration header every plugin receives; plugin-specific fields are
//! parsed by each plugin from the same bytes into its own typed struct.

use super::error::CniError;
use super::result::Dns;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NetConf {
    #[serde(rename = "cniVersion", default, deserialize_with = "crate::cni::config::null_default")]
    pub cni_version: String,
    #[serde(default, deserialize_with = "crate::cni::config::null_default")]
    pub name: String,
    #[serde(rename = "type", default, deserialize_with = "crate::cni::config::null_default")]
    pub plugin_type: String,
    #[serde(default, deserialize_with = "crate::cni::config::null_default")]
    pub capabilities: Map<String, Value>,
    #[serde(default)]
    pub ipam: Option<IpamHeader>,
    #[serde(default)]
    pub dns: Option<Dns>,
    #[serde(rename = "runtimeConfig", default, deserialize_with = "crate::cni::config::null_default")]
    pub runtime_config: Map<String, Value>,
    #[serde(rename = "prevResult", default)]
    pub prev_result: Option<Value>,
    #[serde(default)]
    pub args: Option<Value>,
}

/// The part of `ipam` the main plugin needs: which plugin to call.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IpamHeader {
    #[serde(rename = "type", default)]
    pub ipam_type: String,
}

impl NetConf {
    /// `lenient` for a DEL, as `parse_conf` reads a plugin's own fields.
    pub fn parse(stdin: &[u8], lenient: bool) -> Result<NetConf, CniError> {
        crate::cni::json::from_slice_lenient(stdin, lenient)
            .map_err(|e| CniError::decoding(format!("failed to parse network configuration: {e}")))
    }

    /// The IPAM type, if an `ipam` object with a non-empty type is present.
    pub fn ipam_type(&self) -> Option<&str> {
        self.ipam.as_ref().map(|i| i.ipam_type.as_str()).filter(|t| !t.is_empty())
    }

    /// `args.cni.<key>` (the conventions' args block).
    pub fn cni_arg(&self, key: &str) -> Option<&Value> {
        self.args.as_ref()?.get("cni")?.get(key)
    }
}

/// For `#[serde(default, deserialize_with = …)]`: an explicit JSON `null` means the default,
/// as it does for Go's decoder.
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Parse a plugin's own config struct from the raw bytes, naming the plugin in the error.
pub fn parse_plugin_conf<T: for<'de> Deserialize<'de>>(plugin: &str, stdin: &[u8]) -> Result<T, CniError> {
    crate::cni::json::from_slice(stdin).map_err(|e| load_error(plugin, e))
}

/// A plugin's own config struct for `inv`: strictly, but for a DEL, which reads it leniently
/// (`json::from_slice_lenient`: a member of the wrong type reads as absent), so that the
/// runtime's cleanup of an ADD refused for such a config succeeds.
pub fn parse_conf<T: for<'de> Deserialize<'de>>(inv: &crate::cni::Invocation, plugin: &str) -> Result<T, CniError> {
    let lenient = inv.command == crate::cni::Command::Del;
    crate::cni::json::from_slice_lenient(&inv.stdin, lenient).map_err(|e| load_error(plugin, e))
}

/// As `parse_plugin_conf`, but read from the text itself rather than through a map that keeps
/// the last of duplicated keys, for a config whose maps must refuse duplicates.
pub fn parse_plugin_conf_text<T: for<'de> Deserialize<'de>>(plugin: &str, stdin: &[u8]) -> Result<T, CniError> {
    serde_json::from_slice(stdin).map_err(|e| load_error(plugin, e))
}

fn load_error(plugin: &str, e: serde_json::Error) -> CniError {
    CniError::decoding(format!("{plugin}: failed to load netconf: {e}"))
}

/// The check every verb but VERSION makes: JSON with a valid `name`.
pub fn validate_name(stdin: &[u8]) -> Result<(), CniError> {
    #[derive(Deserialize)]
    struct N {
        #[serde(default)]
        name: Value,
    }
    let n: N = crate::cni::json::from_slice(stdin)
        .map_err(|e| CniError::decoding(format!("error unmarshall network config: {e}")))?;
    let name = match n.name {
        Value::Null => String::new(),
        Value::String(s) => s,
        other => {
            return Err(CniError::decoding(format!(
                "error unmarshall network config: network name must be a string, got {other}"
            )));
        }
    };
    if name.is_empty() {
        return Err(CniError::invalid_config("missing network name"));
    }
    if !valid_id(&name) {
        return Err(CniError::invalid_config("invalid characters found in network name").with_details(name));
    }
    Ok(())
}

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`: container IDs and network names.
pub fn valid_id(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name(br#"{"name":"net1"}"#).is_ok());
        assert_eq!(validate_name(br#"{"cniVersion":"1.0.0"}"#).unwrap_err().code, 7);
        let e = validate_name(br#"{"name":"bad/name"}"#).unwrap_err();
        assert_eq!((e.code, e.details.as_str()), (7, "bad/name"));
        assert_eq!(validate_name(b"{oops").unwrap_err().code, 6);
        assert!(valid_id("a-b_c.1"));
        assert!(!valid_id("-a"));
        assert!(!valid_id(""));
    }

    #[test]
    fn header() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"bridge","ipam":{"type":"host-local"},
                "args":{"cni":{"mac":"aa:bb:cc:dd:ee:ff"}},"unknown":1,"capabilities":{"mac":true}}"#,
            false,
        )
        .unwrap();
        assert_eq!(c.ipam_type(), Some("host-local"));
        assert_eq!(c.cni_arg("mac").and_then(Value::as_str), Some("aa:bb:cc:dd:ee:ff"));
        assert_eq!(NetConf::parse(br#"{"name":"n","ipam":{}}"#, false).unwrap().ipam_type(), None);
        let c = NetConf::parse(
            br#"{"name":"n","cniVersion":null,"runtimeConfig":null,"capabilities":null,"dns":{"nameservers":null}}"#,
            false,
        )
        .unwrap();
        assert!(c.runtime_config.is_empty() && c.cni_version.is_empty());
        // DEL reads a header of the wrong types as far as it can.
        let bad = br#"{"name":"n","capabilities":"x","runtimeConfig":5,"dns":[],"ipam":{"type":7}}"#;
        assert_eq!(NetConf::parse(bad, false).unwrap_err().code, 6);
        let c = NetConf::parse(bad, true).unwrap();
        assert_eq!((c.name.as_str(), c.ipam_type()), ("n", None));
    }
}
