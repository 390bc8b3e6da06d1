//! `CNI_ARGS`: `K=V;K=V`, with the reference's strictness and `IgnoreUnknown`.

use super::error::CniError;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
    ignore_unknown: bool,
}

impl CniArgs {
    /// Parse the raw variable. Each pair must split on `=` into exactly two parts.
    pub fn parse(raw: &str) -> Result<CniArgs, CniError> {
        let mut out = CniArgs::default();
        if raw.is_empty() {
            return Ok(out);
        }
        for pair in raw.split(';') {
            let kv: Vec<&str> = pair.split('=').collect();
            if kv.len() != 2 {
                return Err(CniError::invalid_env(format!("ARGS: invalid pair {pair:?}")));
            }
            if kv[0] == "IgnoreUnknown" {
                out.ignore_unknown = match kv[1].to_ascii_lowercase().as_str() {
                    "1" | "true" => true,
                    "0" | "false" | "" => false,
                    other => {
                        return Err(CniError::invalid_env(format!(
                            "ARGS: error parsing value of pair \"{pair}\": invalid boolean {other:?}"
                        )));
                    }
                };
            }
            out.pairs.push((kv[0].to_string(), kv[1].to_string()));
        }
        Ok(out)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn ignore_unknown(&self) -> bool {
        self.ignore_unknown
    }

    /// The check a plugin that reads CNI_ARGS makes: every key must be one it knows,
    /// unless `IgnoreUnknown` is set. `known` never needs to list `IgnoreUnknown`.
    pub fn check_known(&self, known: &[&str]) -> Result<(), CniError> {
        if self.ignore_unknown {
            return Ok(());
        }
        for (k, _) in &self.pairs {
            if k != "IgnoreUnknown" && !known.contains(&k.as_str()) {
                return Err(CniError::invalid_env(format!("ARGS: unknown args [\"{k}\"]")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs() {
        let a = CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.0.0.5").unwrap();
        assert!(a.ignore_unknown());
        assert_eq!(a.get("IP"), Some("10.0.0.5"));
        assert_eq!(a.get("K8S_POD_NAME"), Some("x"));
        assert!(a.check_known(&["IP"]).is_ok());
    }

    #[test]
    fn strictness() {
        assert_eq!(CniArgs::parse("IP=a=b").unwrap_err().code, 4);
        assert_eq!(CniArgs::parse("JUSTKEY").unwrap_err().code, 4);
        assert_eq!(CniArgs::parse("IgnoreUnknown=maybe").unwrap_err().code, 4);
        let a = CniArgs::parse("FOO=bar;IP=1.2.3.4").unwrap();
        let e = a.check_known(&["IP"]).unwrap_err();
        assert!(e.msg.contains("FOO"));
        assert!(CniArgs::parse("IgnoreUnknown=TRUE;FOO=bar").unwrap().check_known(&[]).is_ok());
        assert!(CniArgs::parse("").unwrap().get("IP").is_none());
    }
}
