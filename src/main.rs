//! Entry point: pick the applet from the basename of argv[0]; as `cnibox`, offer
//! `--list`, `--version` and `cnibox <applet> …`.
//!
//! The C runtime calls `main` here directly: std's own start-up (`lang_start`) is left out. It
//! installs handlers that report a stack overflow, on a signal stack of their own, which cost a
//! plugin eleven system calls of its two hundred (and a runtime client as many again, plus the
//! resets in each child it spawns), for a message nobody reads: a plugin's caller reads
//! stdout. What of it matters is done here: the standard descriptors are made valid, and
//! SIGPIPE is ignored (a write to a closed pipe is an error to handle, as with std).
#![cfg_attr(not(test), no_main)]

use argh::FromArgs;
use cnibox::applets::{self, APPLETS};
use cnibox::cni::CniError;
use std::path::Path;

mod alloc;
// Faster small copies than musl's (see the module); the tests build it everywhere on x86_64.
#[cfg(all(target_arch = "x86_64", any(test, all(target_env = "musl", target_feature = "crt-static"))))]
mod mem;
// The static musl build, which never unwinds, leaves LLVM's libunwind out (see the module).
#[cfg(all(target_env = "musl", target_feature = "crt-static", panic = "abort"))]
mod nounwind;
// And registers no thread-local destructor, which a single-threaded process never runs (see
// the module).
#[cfg(all(target_env = "musl", target_feature = "crt-static", not(test)))]
mod nodtors;

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

/// The process's entry, called by the C runtime with the program's arguments.
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    let count = usize::try_from(argc).unwrap_or(0);
    let argv: Vec<String> = (0..count)
        .map(|i| {
            // SAFETY: the C runtime passes `argc` pointers to NUL-terminated strings in `argv`,
            // which live as long as the process.
            unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) }.to_string_lossy().into_owned()
        })
        .collect();
    start();
    run(argv)
}

/// What std's start-up did that matters to a plugin.
#[cfg(not(test))]
fn start() {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::BorrowedFd;
    // A closed standard descriptor would be the next file opened: a reply or a log line would
    // land in it. Point each closed one at /dev/null (it takes the lowest free number).
    // SAFETY: 0, 1 and 2 are only polled (POLLNVAL says which are closed), never closed here.
    let std_fds = [0, 1, 2].map(|fd| unsafe { BorrowedFd::borrow_raw(fd) });
    let mut fds = std_fds.map(|fd| PollFd::new(fd, PollFlags::empty()));
    let polled = poll(&mut fds, PollTimeout::ZERO).is_ok();
    for (i, fd) in fds.iter().enumerate() {
        let closed = if polled {
            fd.revents().is_some_and(|r| r.contains(PollFlags::POLLNVAL))
        } else {
            nix::fcntl::fcntl(std_fds[i], nix::fcntl::FcntlArg::F_GETFD) == Err(nix::errno::Errno::EBADF)
        };
        if closed {
            match nix::fcntl::open("/dev/null", nix::fcntl::OFlag::O_RDWR, nix::sys::stat::Mode::empty()) {
                Ok(null) => std::mem::forget(null),
                // As std: carrying on would let the next file opened stand in for it.
                Err(_) => std::process::abort(),
            }
        }
    }
    // SAFETY: SIG_IGN installs no handler; nothing else in the process sets signal dispositions.
    let _ =
        unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn) };
}

/// Under the test harness, which brings its own entry: the same program, behind std's.
#[cfg(test)]
fn main() {
    run(std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect())
}

fn run(argv: Vec<String>) -> ! {
    // A panic must still leave the runtime a CNI error on stdout, never an empty reply.
    std::panic::set_hook(Box::new(|info| {
        let e = CniError::internal(format!("cnibox internal error: {info}"));
        println!("{}", e.to_json());
        std::process::exit(1);
    }));
    cnibox::logger::init();
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
    // With the reply out, stdout is closed first: the runtime reading it sees its end, and goes
    // on with the reply, while the kernel tears this process down (its memory, its sockets),
    // instead of after.
    // SAFETY: close(2) only releases the descriptor; nothing of this process uses it after.
    unsafe { nix::libc::close(1) };
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
