//! A stderr-only logger (stdout is the result channel). Level from CNIBOX_LOG
//! (error, warn, info, debug); default warn.
//!
//! cnibox's own warnings and notes go through [`warn`] and [`info`]. The `log` facade carries
//! what the dependencies say, and release builds keep only their errors
//! (`release_max_level_error`): netlink-proto's warnings print whole netlink messages with
//! `{:?}`, and keeping them would link a Debug formatter for every netlink message type.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fmt;

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            emit(r.level(), r.args());
        }
    }

    fn flush(&self) {}
}

pub fn init() {
    let level = match std::env::var("CNIBOX_LOG").unwrap_or_default().as_str() {
        "error" => LevelFilter::Error,
        "info" => LevelFilter::Info,
        "debug" | "trace" => LevelFilter::Debug,
        "off" => LevelFilter::Off,
        _ => Level::Warn.to_level_filter(),
    };
    if log::set_logger(&Stderr).is_ok() {
        log::set_max_level(level);
    }
}

fn emit(level: Level, args: &fmt::Arguments<'_>) {
    if level <= log::max_level() {
        eprintln!("cnibox {}: {}", level.as_str().to_ascii_lowercase(), args);
    }
}

/// A warning of cnibox's own, shown unless CNIBOX_LOG is error or off.
pub fn warn(args: fmt::Arguments<'_>) {
    emit(Level::Warn, &args);
}

/// A note of cnibox's own (what GC released, say), shown with CNIBOX_LOG=info or debug.
pub fn info(args: fmt::Arguments<'_>) {
    emit(Level::Info, &args);
}
