//! JSON output in the reference's layout (4-space indentation, no trailing newline).

use serde::Serialize;

pub fn to_string_pretty<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(256);
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serialising our own plain data types into memory cannot fail.
    if value.serialize(&mut ser).is_err() {
        return String::from("{}");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Parse JSON into `T` through a `serde_json::Value`: every caller shares one parser of the
/// text, and `T`'s deserializer is the one it has for values anyway (a third of the program's
/// deserializing code was the same structs read a second way). Duplicate keys keep the last,
/// as Go's encoding/json does.
pub fn from_slice<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    serde_json::from_slice::<serde_json::Value>(bytes).and_then(serde_json::from_value)
}
