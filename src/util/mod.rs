//! Small self-contained helpers.
pub mod base64;
pub mod pattern;
#[cfg(test)]
pub mod scratch;
pub mod sha512;
pub mod stdin;
