//! Small self-contained helpers.
pub mod base64;
pub mod pattern;
pub mod records;
#[cfg(test)]
pub mod scratch;
pub mod sha512;
pub mod stdin;

/// This process's part of the names of the temp files it renames into place in shared
/// directories: its PID and 64 random bits. The PID alone is not unique where several runtimes
/// share a node: one in another PID namespace has its own PIDs, and a plugin there with the same
/// one would replace this one's temp file before it is renamed or linked.
pub fn temp_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        // std's hasher keys come from the kernel's random source.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        format!("{}.{:016x}", std::process::id(), h.finish())
    })
}
