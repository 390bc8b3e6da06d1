//! Thread-local destructors, for the static musl build: none is registered.
//!
//! std registers a destructor for each thread-local value that needs dropping (the JSON
//! reader's last text, the netlink runtime, tokio's context) through the C library's
//! `__cxa_thread_atexit_impl`, which it links weakly. musl has none, so std falls back to a
//! list of its own, allocated with the C library's malloc (whose set-up is three system calls
//! and pages of its own, in a process whose every other allocation is the Rust allocator's) and
//! hooked to a pthread key (two calls more: musl's first key is 0, which std takes as "none",
//! so it makes a second and deletes the first, and a delete blocks and restores signals). Those
//! destructors run only when a thread exits. cnibox runs one thread (the tests, which spawn
//! threads, do not take this module), and it ends the process with `_exit` or a return from
//! `main`, neither of which runs them: this definition, which registers nothing, changes what
//! the process does by nothing but those seven system calls.

use std::ffi::{c_int, c_void};

#[unsafe(no_mangle)]
extern "C" fn __cxa_thread_atexit_impl(
    _dtor: unsafe extern "C" fn(*mut c_void),
    _obj: *mut c_void,
    _dso_handle: *mut c_void,
) -> c_int {
    0
}
