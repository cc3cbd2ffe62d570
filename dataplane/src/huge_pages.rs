//! Transparent huge pages for the big flow tables (issue 4: 10 M flows).
//!
//! A lookup in a table of hundreds of MB lands on a random 4 KiB page: a
//! TLB miss and a page walk for the index slot, another for the entry
//! (costly under nested paging), on top of the cache misses the burst
//! prefetch hides. Backed by 2 MiB pages the same table needs 512× fewer
//! TLB entries; measured on the JAP at 10 M flows (bench/RESULTS.md) it is
//! the largest single factor after prefetching.
//!
//! Most Linux systems default to the `madvise` THP policy, so a plain `Vec`
//! stays on 4 KiB pages: [`advise`] marks the 2 MiB-aligned part of a
//! vector's buffer with `madvise(MADV_HUGEPAGE)` before it is first
//! touched. Advice only: with THP `never`, elsewhere than Linux, or when
//! the kernel refuses, nothing changes but speed.

/// The huge page size advised for.
const HUGE: usize = 2 << 20;

/// Asks the kernel to back the 2 MiB-aligned part of `v`'s buffer (its
/// whole capacity) with transparent huge pages. Call right after
/// allocating, before writing, so the first touch of each 2 MiB region maps
/// a huge page. Buffers smaller than 2 MiB are left alone.
pub(crate) fn advise<T>(v: &Vec<T>) {
    let start = v.as_ptr() as usize;
    let len = v.capacity().saturating_mul(core::mem::size_of::<T>());
    let lo = start.saturating_add(HUGE - 1) & !(HUGE - 1);
    let hi = start.saturating_add(len) & !(HUGE - 1);
    if hi <= lo {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: `lo..hi` lies inside the vector's own allocation (its
    // capacity), which `v` keeps alive for this call; MADV_HUGEPAGE is
    // advice that changes neither the contents nor the validity of the
    // mapping, so no Rust reference to that memory is affected. The result
    // is ignored on purpose (advice the kernel may refuse).
    unsafe {
        libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advising_changes_nothing_visible() {
        // Small (no aligned 2 MiB inside), large, empty and zero-sized.
        let mut small: Vec<u64> = Vec::with_capacity(100);
        advise(&small);
        small.push(1);
        let mut big: Vec<u64> = Vec::with_capacity(3 * HUGE / 8);
        advise(&big);
        big.resize(3 * HUGE / 8, 7);
        assert!(big.iter().all(|&x| x == 7));
        advise(&Vec::<u64>::new());
        advise(&vec![(); 10]);
        assert_eq!(small, [1]);
    }
}
