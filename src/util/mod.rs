//! Small self-contained helpers.
pub mod base64;
pub mod pattern;
pub mod sha512;
pub mod stdin;
