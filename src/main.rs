//! Entry point: pick the applet from the basename of argv[0]; as `cnibox`, offer
//! `--list`, `--version` and `cnibox <applet> …`.

use argh::FromArgs;
use cnibox::applets::{self, APPLETS};
use cnibox::cni::CniError;
use std::path::Path;

mod alloc;
// The static musl build, which never unwinds, leaves LLVM's libunwind out (see the module).
#[cfg(all(target_env = "musl", target_feature = "crt-static", panic = "abort"))]
mod nounwind;

#[global_allocator]
static ALLOC: alloc::Pool = alloc::Pool::new();

/// cnibox: the standard CNI plugins in one binary. Link it under a plugin's name, or run `cnibox <applet>`.
#[derive(FromArgs)]
struct Front {
    /// list the applets, one a line
    #[argh(switch)]
    list: bool,
    /// print the version
    #[argh(switch)]
    version: bool,
    /// the applet to run, then its arguments
    #[argh(positional, greedy)]
    rest: Vec<String>,
}

fn main() {
    // A panic must still leave the runtime a CNI error on stdout, never an empty reply.
    std::panic::set_hook(Box::new(|info| {
        let e = CniError::internal(format!("cnibox internal error: {info}"));
        println!("{}", e.to_json());
        std::process::exit(1);
    }));
    cnibox::logger::init();
    let argv: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    let name = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(applet) = applets::find(&name) {
        exit(applets::run(applet, &argv));
    }
    exit(front(&name, &argv));
}

/// End the process once its reply is out. Without std's exit: that also frees the main
/// thread's signal stack (an unmap, which asks the other CPUs to drop the mapping too, when
/// the process ran on more than one) just before the kernel tears the whole process down.
fn exit(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: _exit(2) ends the process at once and has no preconditions; nothing of this
    // process needs to run after it (stdout is flushed, stderr is unbuffered).
    unsafe { nix::libc::_exit(code) }
}

fn front(name: &str, argv: &[String]) -> i32 {
    let rest: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    // `cnibox <applet> …` runs the applet with its own name as argv[0].
    if let Some(applet) = rest.first().and_then(|first| applets::find(first)) {
        return applets::run(applet, &argv[1..]);
    }
    let cmd = if name.is_empty() { "cnibox" } else { name };
    // A runtime exec'ing a link whose name is no applet (a `dhcp` linked here by mistake, say),
    // without arguments as runtimes exec plugins, must see a failure, not an empty reply that
    // reads as success.
    if rest.is_empty() && std::env::var_os("CNI_COMMAND").is_some() {
        let e = CniError::invalid_config(format!(
            "cnibox has no plugin \"{cmd}\" (run as {}); its applets: {}",
            argv.first().map_or("?", String::as_str),
            APPLETS.iter().map(|a| a.name).collect::<Vec<_>>().join(" ")
        ));
        println!("{}", e.to_json());
        return 1;
    }
    let front = match Front::from_args(&[cmd], &rest) {
        Ok(f) => f,
        Err(early) => {
            if early.status.is_ok() {
                print!("{}", early.output);
                return 0;
            }
            eprint!("{}", early.output);
            return 2;
        }
    };
    if front.list {
        for a in APPLETS {
            println!("{}", a.name);
        }
        return 0;
    }
    if front.version {
        println!("cnibox {}", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    match front.rest.first() {
        Some(other) => {
            eprintln!("cnibox: unknown applet \"{other}\"; `cnibox --list` shows the applets");
            2
        }
        None => {
            eprintln!("cnibox {}: link it under a plugin name, or run `cnibox <applet>`.", env!("CARGO_PKG_VERSION"));
            eprintln!("applets: {}", APPLETS.iter().map(|a| a.name).collect::<Vec<_>>().join(" "));
            0
        }
    }
}
