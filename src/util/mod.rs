//! Small self-contained helpers.
pub mod base64;
pub mod sha512;
