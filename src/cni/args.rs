//! `CNI_ARGS`: `K=V;K=V`. As in the reference, only plugins that read it can fail on it:
//! the dispatcher keeps the parse outcome, and `check_known` (which every reader calls first)
//! reports a malformed value or unknown keys as an ordinary plugin error (code 999).

use super::error::CniError;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
    ignore_unknown: bool,
    /// Why the raw value could not be parsed, reported by `check_known`.
    invalid: Option<String>,
}

impl CniArgs {
    /// Parse the raw variable; a malformed value is kept as an error for the readers.
    pub fn parse(raw: &str) -> CniArgs {
        let mut out = CniArgs::default();
        if raw.is_empty() {
            return out;
        }
        for pair in raw.split(';') {
            let kv: Vec<&str> = pair.split('=').collect();
            if kv.len() != 2 {
                out.invalid = Some(format!("ARGS: invalid pair \"{pair}\""));
                return out;
            }
            if kv[0] == "IgnoreUnknown" {
                out.ignore_unknown = match kv[1].to_ascii_lowercase().as_str() {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => {
                        out.invalid = Some(format!(
                            "ARGS: error parsing value of pair \"{pair}\": boolean unmarshal error: invalid input {}",
                            kv[1]
                        ));
                        return out;
                    }
                };
            }
            out.pairs.push((kv[0].to_string(), kv[1].to_string()));
        }
        out
    }

    /// The value of `key` (None also when the variable was malformed).
    pub fn get(&self, key: &str) -> Option<&str> {
        if self.invalid.is_some() {
            return None;
        }
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn ignore_unknown(&self) -> bool {
        self.ignore_unknown
    }

    /// What a plugin that reads CNI_ARGS checks first: the value parsed, and every key is one
    /// it knows unless `IgnoreUnknown` is set. `known` never needs to list `IgnoreUnknown`.
    pub fn check_known(&self, known: &[&str]) -> Result<(), CniError> {
        if let Some(e) = &self.invalid {
            return Err(CniError::internal(e.clone()));
        }
        if self.ignore_unknown {
            return Ok(());
        }
        let unknown: Vec<String> = self
            .pairs
            .iter()
            .filter(|(k, _)| k != "IgnoreUnknown" && !known.contains(&k.as_str()))
            .map(|(k, v)| format!("\"{k}={v}\""))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(CniError::internal(format!("ARGS: unknown args [{}]", unknown.join(" "))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs() {
        let a = CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.0.0.5");
        assert!(a.ignore_unknown());
        assert_eq!(a.get("IP"), Some("10.0.0.5"));
        assert_eq!(a.get("K8S_POD_NAME"), Some("x"));
        assert!(a.check_known(&["IP"]).is_ok());
    }

    #[test]
    fn strictness_is_the_readers() {
        for bad in ["IP=a=b", "JUSTKEY", "IgnoreUnknown=maybe", "IgnoreUnknown="] {
            let a = CniArgs::parse(bad);
            assert_eq!(a.get("IP"), None);
            let e = a.check_known(&["IP"]).unwrap_err();
            assert_eq!(e.code, 999, "{bad}");
            assert!(e.msg.starts_with("ARGS: "), "{bad}: {}", e.msg);
        }
        let a = CniArgs::parse("FOO=bar;IP=1.2.3.4;X=y");
        let e = a.check_known(&["IP"]).unwrap_err();
        assert_eq!(e.msg, "ARGS: unknown args [\"FOO=bar\" \"X=y\"]");
        assert!(CniArgs::parse("IgnoreUnknown=TRUE;FOO=bar").check_known(&[]).is_ok());
        assert!(CniArgs::parse("").get("IP").is_none());
    }
}
