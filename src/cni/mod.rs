//! The CNI protocol: environment, validation, configuration, versions, results, errors
//! and delegation. Plugins see only typed values from here; they never read env or write stdout.

pub mod args;
pub mod config;
pub mod delegate;
pub mod error;
pub mod gc;
pub mod json;
pub mod result;
pub mod skel;
pub mod version;

pub use error::{CniError, Result};
pub use result::CniResult;
pub use skel::{Command, Invocation, PluginFns};
pub use version::SpecVersion;
