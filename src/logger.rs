//! A stderr-only logger (stdout is the result channel). Level from CNIBOX_LOG
//! (error, warn, info, debug); default warn.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("cnibox {}: {}", r.level().as_str().to_ascii_lowercase(), r.args());
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
