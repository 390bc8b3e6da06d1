//! The process's allocator: small blocks from free lists, one per power-of-two size class,
//! carved from chunks that are never handed back; anything else goes to the C library.
//!
//! A plugin lives for milliseconds and allocates a few hundred kilobytes. musl's allocator
//! returns a size class's memory to the kernel as soon as its last block is freed, so the
//! same few pages were mapped, faulted in and unmapped dozens of times per ADD: about a tenth
//! of the bridge plugin's CPU time went to munmap alone. Here a freed block simply waits for
//! the next allocation of its class.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

/// Classes of 16 B up to 64 KiB (a netlink socket's receive buffer); larger or more strictly
/// aligned requests go to the C library.
const MIN_SHIFT: usize = 4;
const MAX_SHIFT: usize = 16;
const CLASSES: usize = MAX_SHIFT - MIN_SHIFT + 1;
/// Blocks are aligned to this (the chunk's alignment, and every class size is a multiple).
const ALIGN: usize = 1 << MIN_SHIFT;
/// Memory is mapped from the kernel this much at a time (zeroed pages: nothing to clear);
/// untouched pages cost nothing.
const CHUNK: usize = 256 << 10;

pub struct Pool {
    lock: AtomicBool,
    state: UnsafeCell<State>,
}

struct State {
    /// The unused part of the current chunk.
    next: usize,
    end: usize,
    /// Per class, the first free block; each free block holds the address of the next.
    free: [*mut u8; CLASSES],
}

// SAFETY: every access to `state` happens with `lock` held.
unsafe impl Sync for Pool {}

impl Pool {
    pub const fn new() -> Pool {
        Pool {
            lock: AtomicBool::new(false),
            state: UnsafeCell::new(State { next: 0, end: 0, free: [ptr::null_mut(); CLASSES] }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        while self.lock.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held, so this is the only reference to the state.
        let r = f(unsafe { &mut *self.state.get() });
        self.lock.store(false, Ordering::Release);
        r
    }
}

impl Default for Pool {
    fn default() -> Pool {
        Pool::new()
    }
}

/// The class serving `layout`, if any.
fn class(layout: Layout) -> Option<usize> {
    if layout.align() > ALIGN || layout.size() > 1 << MAX_SHIFT {
        return None;
    }
    let shift = layout.size().max(1).next_power_of_two().trailing_zeros() as usize;
    Some(shift.max(MIN_SHIFT) - MIN_SHIFT)
}

/// A chunk straight from the kernel (zeroed pages, page-aligned), or null. Not through the C
/// library: musl's allocator would first set up its own bookkeeping (two brk calls and a guard
/// page) for a chunk it then maps all the same.
fn fresh_chunk() -> *mut u8 {
    use nix::libc::{MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmap};
    // SAFETY: a new private anonymous mapping; it overlaps nothing and is never unmapped.
    let p = unsafe { mmap(ptr::null_mut(), CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) };
    if p == MAP_FAILED { ptr::null_mut() } else { p.cast() }
}

impl State {
    /// A block of class `c` and whether it is fresh from a chunk (all zero), or null when the
    /// kernel has no more memory to map.
    unsafe fn take(&mut self, c: usize) -> (*mut u8, bool) {
        let head = self.free[c];
        if !head.is_null() {
            // SAFETY: a free block of this class holds the address of the next one.
            self.free[c] = unsafe { head.cast::<*mut u8>().read() };
            return (head, false);
        }
        let size = 1usize << (c + MIN_SHIFT);
        if self.end - self.next < size {
            // The rest of the old chunk is too small for this class and stays unused.
            let chunk = fresh_chunk();
            if chunk.is_null() {
                return (chunk, false);
            }
            self.next = chunk as usize;
            self.end = self.next + CHUNK;
        }
        let block = self.next as *mut u8;
        self.next += size;
        (block, true)
    }

    /// Give a block of class `c` back to its free list.
    unsafe fn give(&mut self, c: usize, block: *mut u8) {
        // SAFETY: the block is at least 16 bytes, aligned, and no longer used by its owner.
        unsafe { block.cast::<*mut u8>().write(self.free[c]) };
        self.free[c] = block;
    }
}

// SAFETY: blocks of a class never overlap (carved once from a chunk, then recycled only after
// dealloc), each is at least as large and as aligned as the layouts mapped to its class, and
// everything else is the C library's own allocation.
unsafe impl GlobalAlloc for Pool {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class(layout) {
            // SAFETY: see the impl.
            Some(c) => self.with(|s| unsafe { s.take(c) }).0,
            None => unsafe { System.alloc(layout) },
        }
    }

    /// Only a recycled block is cleared: one fresh from a chunk is still the kernel's zero
    /// pages, which writing zeros would fault in for nothing (a 64 KiB receive buffer is 16).
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match class(layout) {
            Some(c) => {
                // SAFETY: see the impl.
                let (block, fresh) = self.with(|s| unsafe { s.take(c) });
                if !block.is_null() && !fresh {
                    // SAFETY: the block holds at least `layout.size()` bytes.
                    unsafe { ptr::write_bytes(block, 0, layout.size()) };
                }
                block
            }
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match class(layout) {
            // SAFETY: `ptr` came from `alloc` with this layout, so from class `c`.
            Some(c) => self.with(|s| unsafe { s.give(c, ptr) }),
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees a valid layout of new_size with the same alignment.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new)) {
            (Some(a), Some(b)) if a == b => ptr,
            (None, None) => unsafe { System.realloc(ptr, layout, new_size) },
            _ => {
                // SAFETY: `new` is valid; the old block holds at least min(old, new) bytes.
                let fresh = unsafe { self.alloc(new) };
                if !fresh.is_null() {
                    unsafe {
                        ptr::copy_nonoverlapping(ptr, fresh, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                fresh
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn classes() {
        assert_eq!(class(layout(1, 1)), Some(0));
        assert_eq!(class(layout(16, 8)), Some(0));
        assert_eq!(class(layout(17, 8)), Some(1));
        assert_eq!(class(layout(4096, 16)), Some(8));
        assert_eq!(class(layout(64 << 10, 8)), Some(CLASSES - 1));
        assert_eq!(class(layout((64 << 10) + 1, 8)), None);
        assert_eq!(class(layout(64, 32)), None);
    }

    #[test]
    fn blocks_are_distinct_aligned_and_recycled() {
        let pool = Pool::new();
        unsafe {
            let mut seen = Vec::new();
            for size in [1, 15, 16, 17, 100, 4000, 5000, 32 << 10, 40 << 10, 64 << 10, 70 << 10] {
                let l = layout(size, 8);
                let p = pool.alloc(l);
                assert!(!p.is_null());
                assert_eq!(p as usize % 8, 0);
                ptr::write_bytes(p, 0xa5, size);
                seen.push((p, l));
            }
            for (i, (p, l)) in seen.iter().enumerate() {
                for (q, m) in &seen[i + 1..] {
                    let (a, b) = (*p as usize, *q as usize);
                    assert!(a + l.size() <= b || b + m.size() <= a, "overlap");
                }
            }
            let (p, l) = seen[4];
            pool.dealloc(p, l);
            // The freed 100-byte block (class 128) serves the next request of its class.
            assert_eq!(pool.alloc(layout(120, 8)), p);
            for (p, l) in seen.into_iter().filter(|(q, _)| *q != p) {
                pool.dealloc(p, l);
            }
        }
    }

    #[test]
    fn realloc_keeps_contents_across_classes_and_to_the_c_library() {
        let pool = Pool::new();
        unsafe {
            let l = layout(10, 1);
            let p = pool.alloc(l);
            ptr::copy_nonoverlapping(b"0123456789".as_ptr(), p, 10);
            let same = pool.realloc(p, l, 16);
            assert_eq!(same, p, "same class, same block");
            let bigger = pool.realloc(same, layout(16, 1), 1000);
            let huge = pool.realloc(bigger, layout(1000, 1), 100 << 10);
            assert_eq!(std::slice::from_raw_parts(huge, 10), b"0123456789");
            let back = pool.realloc(huge, layout(100 << 10, 1), 20);
            assert_eq!(std::slice::from_raw_parts(back, 10), b"0123456789");
            pool.dealloc(back, layout(20, 1));
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_fresh_or_recycled() {
        let pool = Pool::new();
        unsafe {
            for size in [24, 3000, 64 << 10, 100 << 10] {
                let l = layout(size, 8);
                let p = pool.alloc_zeroed(l);
                assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0), "fresh {size}");
                ptr::write_bytes(p, 0x5a, size);
                pool.dealloc(p, l);
                let q = pool.alloc_zeroed(l);
                assert!(std::slice::from_raw_parts(q, size).iter().all(|&b| b == 0), "recycled {size}");
                pool.dealloc(q, l);
            }
        }
    }

    #[test]
    fn many_chunks() {
        let pool = Pool::new();
        unsafe {
            let l = layout(3000, 8);
            let blocks: Vec<_> = (0..1000).map(|_| pool.alloc(l)).collect();
            assert!(blocks.iter().all(|p| !p.is_null()));
            let mut sorted: Vec<usize> = blocks.iter().map(|p| *p as usize).collect();
            sorted.sort();
            assert!(sorted.windows(2).all(|w| w[1] - w[0] >= 4096));
            for p in blocks {
                pool.dealloc(p, l);
            }
        }
    }
}
