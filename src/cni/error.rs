//! CNI errors: a numeric code, a message and optional details, printed as JSON on stdout.

use std::fmt;

/// Well-known CNI error codes (spec §Error, plus the Go library's 8 and 999).
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODING_FAILURE: u32 = 6;
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    pub const INVALID_NETNS: u32 = 8;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    pub const LIMITED_CONNECTIVITY: u32 = 51;
    pub const INTERNAL: u32 = 999;
}

/// A CNI error as it travels on the wire.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError { code, msg: msg.into(), details: String::new() }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The catch-all code the reference uses for every ordinary plugin failure.
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(code::INTERNAL, msg)
    }

    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Self::new(code::INVALID_NETWORK_CONFIG, msg)
    }

    pub fn decoding(msg: impl Into<String>) -> Self {
        Self::new(code::DECODING_FAILURE, msg)
    }

    pub fn invalid_env(msg: impl Into<String>) -> Self {
        Self::new(code::INVALID_ENV, msg)
    }

    /// Prefix the message with context, keeping code and details.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        let what = what.to_string();
        // An error that already says it (`failed to create bridge "cni0": …`) is not said twice.
        if !self.msg.strip_prefix(what.as_str()).is_some_and(|rest| rest.starts_with(':')) {
            self.msg = format!("{what}: {}", self.msg);
        }
        self
    }

    /// The JSON the runtime reads: 4-space indented, no trailing newline.
    pub fn to_json(&self) -> String {
        crate::cni::json::to_string_pretty(self)
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() { write!(f, "{}", self.msg) } else { write!(f, "{}; {}", self.msg, self.details) }
    }
}

impl std::error::Error for CniError {}

pub type Result<T> = std::result::Result<T, CniError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_matches_reference() {
        let e = CniError::new(4, "bad").with_details("d");
        assert_eq!(e.to_json(), "{\n    \"code\": 4,\n    \"msg\": \"bad\",\n    \"details\": \"d\"\n}");
        let e = CniError::internal("x");
        assert_eq!(e.to_json(), "{\n    \"code\": 999,\n    \"msg\": \"x\"\n}");
    }

    #[test]
    fn context_keeps_code() {
        let e = CniError::new(7, "inner").context("outer");
        assert_eq!(e.code, 7);
        assert_eq!(e.msg, "outer: inner");
        assert_eq!(e.context("outer").msg, "outer: inner", "not said twice");
    }
}
