//! The unwinder's entry points, as stubs, for the static musl build.
//!
//! cnibox is built with `panic = "abort"`: nothing ever unwinds. The standard library still
//! refers to the unwinder (its landing pads, its personality routine, and the default panic
//! hook's backtrace), so the linker would pull in all of LLVM's libunwind (DWARF parsing and
//! debug printing), and with it the hook's symbolizer (a DWARF reader, a decompressor and a
//! demangler), which walks the frames `_Unwind_Backtrace` reports. These definitions satisfy
//! those references instead; with an empty stack the symbolizer is never reached, and link-time
//! optimisation drops it: 259 KB in all, that no run of the shipped binary could use (it has no
//! symbols, and `main` replaces the default panic hook with one that reports a CNI error).
//! Every `_Unwind_*` entry point libunwind defines is stubbed, so that a reference the standard
//! library gains in a later release resolves here (and aborts, should it ever run) rather than
//! pulling in an object whose other definitions would clash. Only builds with
//! `panic = "abort"` take this module: a test build that unwinds needs the real unwinder.
//!
//! Only `_Unwind_Backtrace` can be called at all (by the default hook, before `main` installs
//! its own): it reports an empty stack. The others belong to unwinding, which never starts;
//! should one run, the process aborts, as a panic does.

#![allow(non_snake_case)]

use std::ffi::c_void;

/// `_URC_END_OF_STACK`.
const END_OF_STACK: i32 = 5;

#[unsafe(no_mangle)]
extern "C" fn _Unwind_Backtrace(_trace: *mut c_void, _arg: *mut c_void) -> i32 {
    END_OF_STACK
}

macro_rules! never {
    ($($name:ident),* $(,)?) => {$(
        #[unsafe(no_mangle)]
        extern "C" fn $name() -> ! {
            std::process::abort()
        }
    )*};
}

// Every other `_Unwind_*` entry point libunwind's two objects define, whether the standard
// library refers to it today or not: a reference gained later resolves here too, instead of
// pulling in an object whose other definitions would clash with these.
never!(
    _Unwind_RaiseException,
    _Unwind_Resume,
    _Unwind_Resume_or_Rethrow,
    _Unwind_ForcedUnwind,
    _Unwind_DeleteException,
    _Unwind_GetGR,
    _Unwind_SetGR,
    _Unwind_GetIP,
    _Unwind_GetIPInfo,
    _Unwind_SetIP,
    _Unwind_GetCFA,
    _Unwind_GetLanguageSpecificData,
    _Unwind_GetRegionStart,
    _Unwind_GetDataRelBase,
    _Unwind_GetTextRelBase,
    _Unwind_FindEnclosingFunction,
    _Unwind_Find_FDE,
);
