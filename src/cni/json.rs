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
    parsed(bytes).and_then(from_value)
}

/// The value of the JSON text `bytes`. A plugin reads its one config several times, each
/// reader taking its own part (the version first, then the plugin's fields, then its IPAM
/// plugin's): a text read a second time keeps its value for the readers after it. (A text
/// read once, as most are, costs no copy of its value.)
fn parsed(bytes: &[u8]) -> serde_json::Result<Value> {
    thread_local! {
        static LAST: std::cell::RefCell<(Vec<u8>, Option<Value>)> = const { std::cell::RefCell::new((Vec::new(), None)) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0.as_slice() != bytes {
            *last = (bytes.to_vec(), None);
            return serde_json::from_slice(bytes);
        }
        if let Some(value) = &last.1 {
            return Ok(value.clone());
        }
        let value: Value = serde_json::from_slice(bytes)?;
        last.1 = Some(value.clone());
        Ok(value)
    })
}

/// `T` from a parsed value, reading structs only from JSON objects, as Go's decoder does.
/// Map keys are read as strings, so a map's key type must be one that reads from a string.
/// serde_json's own value deserializer also reads a struct from an array (field by field in
/// declaration order), which made every derived struct carry a second, never used reader.
/// An error names the member it arose at (`ipam.routes[0].dst: invalid IP address syntax:
/// "foo"`), and a struct expected as "an object", not by its type's name.
pub fn from_value<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> serde_json::Result<T> {
    T::deserialize(Objects(value)).map_err(Error::into_json)
}

/// As `from_slice`, and, with `lenient` (for a DEL), a member that does not read as its field
/// (a string where a number belongs, say) reads as absent, so as its default, one after the
/// other: the ADD it would undo refused it, so set nothing up by it. Other errors (not JSON, not
/// an object) stay. One function for both, so that each config type has one reader.
pub fn from_slice_lenient<T: serde::de::DeserializeOwned>(bytes: &[u8], lenient: bool) -> serde_json::Result<T> {
    let mut value = parsed(bytes)?;
    loop {
        let attempt = if lenient { value.clone() } else { std::mem::take(&mut value) };
        match T::deserialize(Objects(attempt)) {
            Ok(t) => return Ok(t),
            Err(e) if lenient && drop_member(&mut value, &e.path) => {}
            Err(e) => return Err(e.into_json()),
        }
    }
}

/// Make the member at `path` absent: an object's key (in any case, as fields match keys) null,
/// which reads as absent for a struct's field; an array's element removed. False if there was
/// none to drop. (A value of a typed map would read null as itself, fail again and end the
/// reading with its error: no config read leniently has one.)
fn drop_member(value: &mut Value, path: &[Member]) -> bool {
    let Some((last, parents)) = path.split_last() else { return false };
    let mut v = value;
    for m in parents {
        let next = match (m, v) {
            (Member::Key(k), Value::Object(o)) => {
                match o.keys().find(|key| *key == k).or_else(|| o.keys().find(|key| key.eq_ignore_ascii_case(k))) {
                    Some(key) => {
                        let key = key.clone();
                        o.get_mut(&key)
                    }
                    None => None,
                }
            }
            (Member::Index(i), Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        let Some(next) = next else { return false };
        v = next;
    }
    match (last, v) {
        (Member::Key(k), Value::Object(o)) => {
            let mut dropped = false;
            for (key, member) in o.iter_mut() {
                if key.eq_ignore_ascii_case(k) && !member.is_null() {
                    *member = Value::Null;
                    dropped = true;
                }
            }
            dropped
        }
        (Member::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    }
}

use serde::de::{self, DeserializeSeed, Deserializer, Expected, IntoDeserializer, Unexpected, Visitor};
use serde_json::Value;
use std::fmt;

/// A reading error and the path of the member it arose at. Boxed: every field reader passes
/// it up through a `Result`, which stays a pointer wide.
#[derive(Debug)]
struct Error(Box<Inner>);

#[derive(Debug)]
struct Inner {
    /// Outermost first.
    path: Vec<Member>,
    msg: String,
}

impl std::ops::Deref for Error {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl std::ops::DerefMut for Error {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.0
    }
}

#[derive(Debug)]
enum Member {
    Key(String),
    Index(usize),
}

// The error paths below are out of line and cold: each struct's reader calls them from every
// field it reads, and inlined there they grew the program by tens of kilobytes.
impl Error {
    /// As the callers' error type: one conversion out of line, not one per type read.
    #[cold]
    #[inline(never)]
    fn into_json(self) -> serde_json::Error {
        de::Error::custom(self)
    }
    fn new(msg: String) -> Error {
        Error(Box::new(Inner { path: Vec::new(), msg }))
    }
    /// The same error, one member further out: `key` of an object.
    #[cold]
    #[inline(never)]
    fn in_key(mut self, key: &str) -> Error {
        self.path.insert(0, Member::Key(key.to_string()));
        self
    }
    /// The same error, one member further out: element `i` of an array.
    #[cold]
    #[inline(never)]
    fn in_index(mut self, i: usize) -> Error {
        self.path.insert(0, Member::Index(i));
        self
    }
    /// A string that failed to read as what it should be (an address, say) is quoted, unless
    /// the message shows it already.
    #[cold]
    #[inline(never)]
    fn of_str(mut self, s: &str) -> Error {
        if !self.msg.contains(&format!("{s:?}")) {
            self.msg = format!("{}: {s:?}", self.msg);
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.path.iter().enumerate() {
            match m {
                Member::Key(k) if i == 0 => f.write_str(k)?,
                Member::Key(k) => write!(f, ".{k}")?,
                Member::Index(n) => write!(f, "[{n}]")?,
            }
        }
        if !self.path.is_empty() {
            f.write_str(": ")?;
        }
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Error {
        Error::new(msg.to_string())
    }
    #[cold]
    #[inline(never)]
    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Error {
        de::Error::custom(format_args!("invalid type: {}, expected {}", Found(unexp), Plain(exp)))
    }
    #[cold]
    #[inline(never)]
    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Error {
        de::Error::custom(format_args!("invalid value: {}, expected {}", Found(unexp), Plain(exp)))
    }
}

/// What was found, in JSON's words. Written here rather than by `Unexpected`'s own Display,
/// whose floating-point case would take the float formatter (9 KB) into the program.
struct Found<'a>(Unexpected<'a>);

impl fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Unexpected::Bool(b) => write!(f, "boolean `{b}`"),
            Unexpected::Unsigned(n) => write!(f, "integer `{n}`"),
            Unexpected::Signed(n) => write!(f, "integer `{n}`"),
            Unexpected::Float(_) => f.write_str("a number with a fraction"),
            Unexpected::Str(s) => write!(f, "string {s:?}"),
            Unexpected::Char(c) => write!(f, "character `{c}`"),
            Unexpected::Unit | Unexpected::Option => f.write_str("null"),
            Unexpected::Seq => f.write_str("array"),
            Unexpected::Map => f.write_str("object"),
            Unexpected::Other(o) => f.write_str(o),
            _ => f.write_str("value"),
        }
    }
}

/// What was expected, in JSON's words: a derived struct calls itself `struct <Name>`.
struct Plain<'a>(&'a dyn Expected);

impl fmt::Display for Plain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = self.0.to_string();
        f.write_str(match exp.as_str() {
            e if e.starts_with("struct ") || e == "a map" => "an object",
            "a sequence" => "an array",
            e => e,
        })
    }
}

/// serde_json's value reader answers in its own error type.
#[cold]
#[inline(never)]
fn from_json(e: serde_json::Error) -> Error {
    Error::new(e.to_string())
}

/// A `Value` whose nested structs are read through the same rule.
struct Objects(Value);

fn unexpected(v: &Value) -> Unexpected<'_> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Unexpected::Unsigned(u),
            (None, Some(i)) => Unexpected::Signed(i),
            _ => Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

fn seq<'de, V: Visitor<'de>>(items: Vec<Value>, visitor: V) -> Result<V::Value, Error> {
    let len = items.len();
    let mut access = Items(items.into_iter(), 0);
    let out = visitor.visit_seq(&mut access)?;
    match access.0.len() {
        0 => Ok(out),
        _ => Err(de::Error::invalid_length(len, &"fewer elements in array")),
    }
}

fn map<'de, V: Visitor<'de>>(entries: serde_json::Map<String, Value>, visitor: V) -> Result<V::Value, Error> {
    let len = entries.len();
    let mut access = Entries { iter: entries.into_iter(), value: None, key: String::new() };
    let out = visitor.visit_map(&mut access)?;
    match access.iter.len() {
        0 => Ok(out),
        _ => Err(de::Error::invalid_length(len, &"fewer elements in map")),
    }
}

/// An object's members as Go's decoder matches them to a struct's `fields`: a `null` leaves
/// the field as it was (here: absent, so its default), and a key that names no field exactly
/// names the field it equals ignoring case (`"rangestart"`, `"DataDir"`). Where several keys
/// name one field, the exact one wins, else the first by case-insensitive match (Go keeps
/// the last in document order, which a parsed map no longer has). Structs with a flattened
/// member are read as maps and keep their keys as written.
fn go_fields(entries: serde_json::Map<String, Value>, fields: &[&str]) -> serde_json::Map<String, Value> {
    // As a rule every key is a field's exact name or no field's at all, and nothing is null:
    // then the members stay as they are, without rebuilding the map.
    let as_written = entries.iter().all(|(key, value)| {
        !value.is_null() && (fields.contains(&key.as_str()) || !fields.iter().any(|f| f.eq_ignore_ascii_case(key)))
    });
    if as_written {
        return entries;
    }
    let mut out = serde_json::Map::new();
    let mut folded = Vec::new();
    for (key, value) in entries {
        if value.is_null() {
            continue;
        }
        if fields.contains(&key.as_str()) {
            out.insert(key, value);
        } else if let Some(field) = fields.iter().find(|f| f.eq_ignore_ascii_case(&key)) {
            folded.push((*field, value));
        } else {
            out.insert(key, value);
        }
    }
    for (field, value) in folded {
        if !out.contains_key(field) {
            out.insert(field.to_string(), value);
        }
    }
    out
}

struct Items(std::vec::IntoIter<Value>, usize);

impl<'de> de::SeqAccess<'de> for Items {
    type Error = Error;
    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, Error> {
        let i = self.1;
        self.1 += 1;
        self.0.next().map(|v| seed.deserialize(Objects(v)).map_err(|e| e.in_index(i))).transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries {
    iter: <serde_json::Map<String, Value> as IntoIterator>::IntoIter,
    value: Option<Value>,
    /// The current member's key, for an error's path (kept here, not dropped in each field's
    /// reader).
    key: String,
}

impl<'de> de::MapAccess<'de> for Entries {
    type Error = Error;
    fn next_key_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, Error> {
        match self.iter.next() {
            Some((key, value)) => {
                self.key = key;
                self.value = Some(value);
                seed.deserialize(self.key.as_str().into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        match self.value.take() {
            Some(v) => seed.deserialize(Objects(v)).map_err(|e| e.in_key(&self.key)),
            None => Err(de::Error::custom("value is missing")),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

macro_rules! to_value {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.0.$method(visitor).map_err(from_json)
        }
    )*};
}

impl<'de> Deserializer<'de> for Objects {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(items) => seq(items, visitor),
            Value::Object(entries) => map(entries, visitor),
            other => other.deserialize_any(visitor).map_err(from_json),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(items) => seq(items, visitor),
            other => Err(de::Error::invalid_type(unexpected(&other), &visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(entries) => map(entries, visitor),
            other => Err(de::Error::invalid_type(unexpected(&other), &visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(entries) => map(go_fields(entries, fields), visitor),
            other => Err(de::Error::invalid_type(unexpected(&other), &visitor)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.0.deserialize_enum(name, variants, visitor).map_err(from_json)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Error> {
        self.0.deserialize_unit_struct(name, visitor).map_err(from_json)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => visitor.visit_str::<Error>(&s).map_err(|e| e.of_str(&s)),
            other => other.deserialize_str(visitor).map_err(from_json),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    to_value! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char
        deserialize_bytes deserialize_byte_buf deserialize_unit deserialize_identifier deserialize_ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn each_text_reads_as_itself() {
        let (a, b) = (br#"{"cniVersion":"1.0.0","name":"a"}"#, br#"{"name":"b"}"#);
        for text in [&a[..], b, a, a, b, b"{"] {
            assert_eq!(parsed(text).ok(), serde_json::from_slice::<Value>(text).ok());
        }
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Inner {
        a: u32,
        #[serde(default)]
        b: Option<String>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Outer {
        name: String,
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        list: Vec<Inner>,
        #[serde(default)]
        raw: Value,
        #[serde(flatten)]
        rest: serde_json::Map<String, Value>,
    }

    #[test]
    fn nested_structs_options_values_and_flatten() {
        let o: Outer = from_slice(
            br#"{"name":"n","inner":{"a":1,"b":null},"list":[{"a":2,"b":"x"}],"raw":{"k":[1,{"z":null}]},"extra":true,"name":"m"}"#,
        )
        .unwrap();
        assert_eq!(o.name, "m", "the last of duplicated keys wins");
        assert_eq!(o.inner, Some(Inner { a: 1, b: None }));
        assert_eq!(o.list, vec![Inner { a: 2, b: Some("x".into()) }]);
        assert_eq!(o.raw, serde_json::json!({"k":[1,{"z":null}]}));
        assert_eq!(o.rest.get("extra"), Some(&Value::Bool(true)));
        let o: Outer = from_slice(br#"{"name":"n","inner":null}"#).unwrap();
        assert_eq!((o.inner, o.list, o.raw), (None, vec![], Value::Null));
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Plain {
        #[serde(rename = "netName", default)]
        name: String,
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        count: u32,
    }

    #[test]
    fn fields_match_as_go_s_decoder_matches_them() {
        // null leaves the default; a key names the field it equals ignoring case.
        let p: Plain = from_slice(br#"{"NETNAME":"n","Inner":{"A":3,"b":null},"count":null}"#).unwrap();
        assert_eq!(p, Plain { name: "n".into(), inner: Some(Inner { a: 3, b: None }), count: 0 });
        // The exact key wins over a case-folded one, whatever the order.
        for text in [br#"{"A":1,"a":2}"#, br#"{"a":2,"A":1}"#] {
            assert_eq!(from_slice::<Inner>(text).unwrap().a, 2);
        }
        // A required field given null is missing, as it is when absent.
        let e = from_slice::<Inner>(br#"{"a":null}"#).unwrap_err().to_string();
        assert_eq!(e, "missing field `a`");
    }

    #[test]
    fn lenient_reading_drops_what_does_not_read() {
        let o: Outer =
            from_slice_lenient(br#"{"name":"n","Inner":{"a":"x"},"list":[{"a":1},{"a":-1},{"a":3}],"raw":5}"#, true)
                .unwrap();
        assert_eq!((o.inner, o.list.len(), o.raw), (None, 2, Value::from(5)));
        // What is not about a member stays an error.
        assert!(from_slice_lenient::<Outer>(br#"{"list":[]}"#, true).is_err());
        assert!(from_slice_lenient::<Outer>(b"[1]", true).is_err());
        assert!(from_slice_lenient::<Outer>(br#"{"name":"n","inner":{"a":"x"}}"#, false).is_err());
    }

    #[test]
    fn structs_come_only_from_objects_and_errors_name_the_member() {
        let e = from_slice::<Inner>(br#"[1, "x"]"#).unwrap_err().to_string();
        assert_eq!(e, "invalid type: array, expected an object");
        let e = from_slice::<Inner>(b"null").unwrap_err().to_string();
        assert_eq!(e, "invalid type: null, expected an object");
        let e = from_slice::<Outer>(br#"{"name":"n","list":[{"a":1},{"a":"1"}]}"#).unwrap_err().to_string();
        assert_eq!(e, r#"list[1].a: invalid type: string "1", expected u32"#);
        let e = from_slice::<Outer>(br#"{"name":"n","inner":{"a":-1}}"#).unwrap_err().to_string();
        assert_eq!(e, "inner.a: invalid value: integer `-1`, expected u32");
        let e = from_slice::<Outer>(br#"{"name":"n","list":{"a":1}}"#).unwrap_err().to_string();
        assert_eq!(e, "list: invalid type: object, expected an array");
        let e = from_slice::<Outer>(br#"{"inner":{"a":1}}"#).unwrap_err().to_string();
        assert_eq!(e, "missing field `name`");
        let e = from_slice::<Outer>(br#"{"name":"n","inner":{}}"#).unwrap_err().to_string();
        assert_eq!(e, "inner: missing field `a`");
        let e = from_slice::<Vec<Vec<u8>>>(b"[[1],[2,300]]").unwrap_err().to_string();
        assert_eq!(e, "[1][1]: invalid value: integer `300`, expected u8");
        let e = from_slice::<(u8, u8)>(b"[1,2,3]").unwrap_err().to_string();
        assert_eq!(e, "invalid length 3, expected fewer elements in array");
        // A string that does not parse as what it stands for is quoted.
        let e = from_slice::<Vec<std::net::IpAddr>>(br#"["10.0.0.1","foo"]"#).unwrap_err().to_string();
        assert_eq!(e, r#"[1]: invalid IP address syntax: "foo""#);
        let e = from_slice::<Vec<ipnet::IpNet>>(br#"["10.0.0.0/8","10.0.0.0/99"]"#).unwrap_err().to_string();
        assert_eq!(e, r#"[1]: invalid IP address syntax: "10.0.0.0/99""#);
    }
}
