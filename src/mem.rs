//! `memcpy` and `memmove` for the static musl build on x86_64.
//!
//! musl's are a few lines of assembly: `rep movsq` for the whole copy, and a loop of one-byte
//! `movsb` for the bytes before an aligned destination and after the last eight-byte word. A
//! plugin's copies are nearly all small (the standard library moves strings, vectors and JSON
//! values by them, a thousand or more per call), where the string instruction's start-up cost
//! and the byte loop are most of the time: sampled over 100 bridge ADDs and DELs, musl's
//! `memcpy` had 29% of the plugin's samples in user space, 0.07 ms a call. With these, side
//! by side over 80 pods, a bridge ADD and a DEL each took 0.02–0.03 ms less.
//!
//! Here a copy of up to 64 bytes is two or four overlapping loads of 1, 2, 4, 8 or 16 bytes,
//! all made before the first store (so it also serves `memmove`); a longer one moves eight-byte
//! words with `rep movsq`, forwards (backwards for a `memmove` onto an overlapping higher
//! address), and the odd bytes at the far end by one more overlapping word, loaded before the
//! string instruction starts. Written in assembly: the compiler would split a Rust version
//! into outlined pieces (the build turns LLVM's machine outliner on for size), and could turn
//! its copies back into calls to `memcpy`.
//!
//! The functions are `cnibox_memcpy` and `cnibox_memmove` everywhere on x86_64 (the tests
//! call them); only the static musl build also names them `memcpy` and `memmove`, which
//! keeps the linker from pulling musl's in.

std::arch::global_asm!(
    ".text",
    ".globl cnibox_memmove",
    ".type cnibox_memmove, @function",
    ".p2align 4",
    "cnibox_memmove:",
    "    mov rax, rdi",
    "    cmp rdx, 64",
    "    jbe .Lcnibox_mem_small",
    // Nothing to move onto itself; forwards unless dst lies within (src, src + n): dst - src,
    // unsigned, below n.
    "    mov rcx, rdi",
    "    sub rcx, rsi",
    "    jz .Lcnibox_mem_done",
    "    cmp rcx, rdx",
    "    jae .Lcnibox_mem_forward",
    // Backwards: the first word is loaded before any store, and put last.
    "    mov r8, [rsi]",
    "    mov r9, rdi",
    "    lea rsi, [rsi + rdx - 8]",
    "    lea rdi, [rdi + rdx - 8]",
    "    mov rcx, rdx",
    "    shr rcx, 3",
    "    std",
    "    rep movsq",
    "    cld",
    "    mov [r9], r8",
    "    ret",
    ".size cnibox_memmove, . - cnibox_memmove",
    "",
    ".globl cnibox_memcpy",
    ".type cnibox_memcpy, @function",
    ".p2align 4",
    "cnibox_memcpy:",
    "    mov rax, rdi",
    "    cmp rdx, 64",
    "    jbe .Lcnibox_mem_small",
    // Forwards: the last word is loaded before any store, and put last.
    ".Lcnibox_mem_forward:",
    "    mov r8, [rsi + rdx - 8]",
    "    lea r9, [rdi + rdx - 8]",
    "    mov rcx, rdx",
    "    shr rcx, 3",
    "    rep movsq",
    "    mov [r9], r8",
    "    ret",
    // Up to 64 bytes: the first and last 16 (and the 16 after the first and before the last,
    // past 32), 8, 4, 2 or 1, every load before the first store.
    ".Lcnibox_mem_small:",
    "    cmp rdx, 16",
    "    jb .Lcnibox_mem_under16",
    "    movups xmm0, [rsi]",
    "    movups xmm1, [rsi + rdx - 16]",
    "    cmp rdx, 32",
    "    jbe .Lcnibox_mem_upto32",
    "    movups xmm2, [rsi + 16]",
    "    movups xmm3, [rsi + rdx - 32]",
    "    movups [rdi + 16], xmm2",
    "    movups [rdi + rdx - 32], xmm3",
    ".Lcnibox_mem_upto32:",
    "    movups [rdi], xmm0",
    "    movups [rdi + rdx - 16], xmm1",
    "    ret",
    ".Lcnibox_mem_under16:",
    "    cmp rdx, 8",
    "    jb .Lcnibox_mem_under8",
    "    mov rcx, [rsi]",
    "    mov r8, [rsi + rdx - 8]",
    "    mov [rdi], rcx",
    "    mov [rdi + rdx - 8], r8",
    "    ret",
    ".Lcnibox_mem_under8:",
    "    cmp rdx, 4",
    "    jb .Lcnibox_mem_under4",
    "    mov ecx, [rsi]",
    "    mov r8d, [rsi + rdx - 4]",
    "    mov [rdi], ecx",
    "    mov [rdi + rdx - 4], r8d",
    "    ret",
    ".Lcnibox_mem_under4:",
    "    cmp rdx, 2",
    "    jb .Lcnibox_mem_under2",
    "    movzx ecx, word ptr [rsi]",
    "    movzx r8d, word ptr [rsi + rdx - 2]",
    "    mov [rdi], cx",
    "    mov [rdi + rdx - 2], r8w",
    "    ret",
    ".Lcnibox_mem_under2:",
    "    test rdx, rdx",
    "    jz .Lcnibox_mem_done",
    "    movzx ecx, byte ptr [rsi]",
    "    mov [rdi], cl",
    ".Lcnibox_mem_done:",
    "    ret",
    ".size cnibox_memcpy, . - cnibox_memcpy",
);

#[cfg(all(target_env = "musl", target_feature = "crt-static", not(test)))]
std::arch::global_asm!(
    ".globl memcpy",
    ".type memcpy, @function",
    ".set memcpy, cnibox_memcpy",
    ".globl memmove",
    ".type memmove, @function",
    ".set memmove, cnibox_memmove",
);

#[cfg(test)]
mod tests {
    unsafe extern "C" {
        fn cnibox_memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8;
        fn cnibox_memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8;
    }

    /// Every length up to 300 from every source and destination offset within a word, against
    /// the bytes themselves; the bytes around the destination stay as they were.
    #[test]
    fn copies_every_length_and_alignment() {
        let src: Vec<u8> = (0..400u32).map(|i| (i * 7 + 3) as u8).collect();
        for copy in [cnibox_memcpy, cnibox_memmove] {
            for n in 0..300 {
                for so in 0..8 {
                    for d_off in 0..8 {
                        let mut dst = vec![0xeeu8; 400];
                        // SAFETY: both ranges lie within their vectors, apart.
                        let r = unsafe { copy(dst.as_mut_ptr().add(d_off), src.as_ptr().add(so), n) };
                        assert_eq!(r, dst[d_off..].as_mut_ptr());
                        assert_eq!(&dst[d_off..d_off + n], &src[so..so + n], "n {n} src +{so} dst +{d_off}");
                        assert!(dst[..d_off].iter().chain(&dst[d_off + n..]).all(|&b| b == 0xee), "n {n}");
                    }
                }
            }
        }
    }

    /// Overlapping moves both ways, at every distance up to 80 and every length up to 300.
    #[test]
    fn moves_overlapping_ranges_both_ways() {
        let orig: Vec<u8> = (0..400u32).map(|i| (i * 13 + 1) as u8).collect();
        for n in 0..300usize {
            for dist in 0..80usize {
                for up in [false, true] {
                    let (s, d) = if up { (8, 8 + dist) } else { (8 + dist, 8) };
                    let mut want = orig.clone();
                    want.copy_within(s..s + n, d);
                    let mut got = orig.clone();
                    let p = got.as_mut_ptr();
                    // SAFETY: both ranges lie within the vector.
                    let r = unsafe { cnibox_memmove(p.add(d), p.add(s), n) };
                    assert_eq!(r, p.wrapping_add(d));
                    assert_eq!(got, want, "n {n} dist {dist} up {up}");
                }
            }
        }
    }

    /// The direction flag is clear again after a backward move (the ABI requires it at calls).
    #[test]
    fn leaves_the_direction_flag_clear() {
        let mut buf: Vec<u8> = (0..200u8).collect();
        let p = buf.as_mut_ptr();
        // SAFETY: both ranges lie within the vector.
        unsafe { cnibox_memmove(p.add(10), p, 150) };
        let flags: u64;
        // SAFETY: reads the flags register only.
        unsafe { std::arch::asm!("pushfq", "pop {}", out(reg) flags) };
        assert_eq!(flags & (1 << 10), 0);
        assert_eq!(&buf[10..160], &(0..150u8).collect::<Vec<_>>()[..]);
    }
}
