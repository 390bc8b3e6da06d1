//! The one applet table: every name cnibox answers to, and what runs under it.

use crate::cni::skel::{self, PluginFns};
use std::io::Read;

pub enum Kind {
    /// A CNI plugin, driven by env and stdin.
    Plugin(&'static PluginFns),
    /// A command-line tool, driven by argv (argv[0] is the applet name).
    Tool(fn(&[String]) -> i32),
}

pub struct Applet {
    pub name: &'static str,
    pub kind: Kind,
}

/// Sorted by name, so `cnibox --list` is stable and links are made in one order.
pub static APPLETS: &[Applet] = &[
    Applet { name: "bandwidth", kind: Kind::Plugin(&crate::plugins::bandwidth::PLUGIN) },
    Applet { name: "bridge", kind: Kind::Plugin(&crate::plugins::bridge::PLUGIN) },
    Applet { name: "cnitool", kind: Kind::Tool(crate::cnitool::main) },
    Applet { name: "firewall", kind: Kind::Plugin(&crate::plugins::firewall::PLUGIN) },
    Applet { name: "host-local", kind: Kind::Plugin(&crate::plugins::host_local::PLUGIN) },
    Applet { name: "ipvlan", kind: Kind::Plugin(&crate::plugins::ipvlan::PLUGIN) },
    Applet { name: "loopback", kind: Kind::Plugin(&crate::plugins::loopback::PLUGIN) },
    Applet { name: "macvlan", kind: Kind::Plugin(&crate::plugins::macvlan::PLUGIN) },
    Applet { name: "portmap", kind: Kind::Plugin(&crate::plugins::portmap::PLUGIN) },
    Applet { name: "ptp", kind: Kind::Plugin(&crate::plugins::ptp::PLUGIN) },
    Applet { name: "static", kind: Kind::Plugin(&crate::plugins::static_ipam::PLUGIN) },
    Applet { name: "tuning", kind: Kind::Plugin(&crate::plugins::tuning::PLUGIN) },
];

/// IPAM plugins that main plugins call in-process instead of exec'ing.
const IN_PROCESS_IPAM: &[&str] = &["host-local", "static"];

pub fn find(name: &str) -> Option<&'static Applet> {
    APPLETS.iter().find(|a| a.name == name)
}

pub fn in_process_ipam(name: &str) -> Option<&'static PluginFns> {
    if !IN_PROCESS_IPAM.contains(&name) {
        return None;
    }
    match find(name)?.kind {
        Kind::Plugin(p) => Some(p),
        Kind::Tool(_) => None,
    }
}

/// Run a plugin applet against the real process environment and stdio.
pub fn run_plugin(name: &str, plugin: &PluginFns) -> i32 {
    let getenv = |k: &str| std::env::var(k).ok();
    let mut read_stdin = || {
        // Room for a usual config up front: one read takes it all (std's reader starts small).
        let mut buf = Vec::with_capacity(4096);
        std::io::stdin().read_to_end(&mut buf).map(|_| buf)
    };
    let out = skel::dispatch(name, plugin, &getenv, &mut read_stdin);
    if !out.stderr.is_empty() {
        eprint!("{}", out.stderr);
    }
    if crate::util::out::write_stdout(out.stdout.as_bytes()).is_err() && out.status == 0 {
        return 1;
    }
    out.status
}

/// Run the applet `name` with `argv` (argv[0] is the applet's own name).
pub fn run(applet: &Applet, argv: &[String]) -> i32 {
    match applet.kind {
        Kind::Plugin(p) => run_plugin(applet.name, p),
        Kind::Tool(f) => f(argv),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sorted_and_unique() {
        assert!(APPLETS.windows(2).all(|w| w[0].name < w[1].name));
    }
}
