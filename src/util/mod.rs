//! Small self-contained helpers.
pub mod base64;
pub mod dirents;
pub mod fs;
pub mod out;
pub mod pattern;
pub mod records;
#[cfg(test)]
pub mod scratch;
pub mod sha512;
pub mod spawn;
pub mod stdin;

/// Lowercase hex of `bytes`, with `sep` between two bytes (a MAC address's `:`; none for a
/// digest). Written digit by digit: `format!` per byte took a tenth of a bridge ADD's own
/// instructions, through the owner tags of host-local's store.
pub fn hex(bytes: &[u8], sep: &str) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * (2 + sep.len()));
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push_str(sep);
        }
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// This process's part of the names of the temp files it renames into place in shared
/// directories: its PID and 64 random bits. The PID alone is not unique where several runtimes
/// share a node: one in another PID namespace has its own PIDs, and a plugin there with the same
/// one would replace this one's temp file before it is renamed or linked.
pub fn temp_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| format!("{}.{:016x}", std::process::id(), random_u64()))
}

/// 64 random bits, different at each call: from std's hasher, whose keys come from the
/// kernel's random source once per process and change for every hasher made (no file to open).
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_with_and_without_separators() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa0, 0xff], ""), "000fa0ff");
        assert_eq!(super::hex(&[0x02, 0x42, 0xac, 0x11, 0x00, 0x02], ":"), "02:42:ac:11:00:02");
        assert_eq!(super::hex(&[], ":"), "");
    }
}
