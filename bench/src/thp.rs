//! An allocator that backs large allocations with transparent huge pages,
//! for an A/B measurement of what 4 KiB pages cost the NAT table.
//!
//! This machine's THP policy is `madvise`: a plain `Vec` of hundreds of MB
//! (the NAT slab and indexes) lives on 4 KiB pages, so every random lookup
//! in a big table also misses the TLB and walks the page tables. A binary
//! that installs [`ThpAlloc`] as its global allocator and calls
//! [`enable`] gets every allocation of 2 MiB or more mapped 2 MiB-aligned
//! and `madvise(MADV_HUGEPAGE)`d; everything else (and everything while not
//! enabled) goes to the system allocator unchanged.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

const HUGE: usize = 2 << 20;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Large allocations from now on are huge-page backed.
pub fn enable() {
    ENABLED.store(true, Ordering::SeqCst);
}

/// The global allocator; see the module documentation.
pub struct ThpAlloc;

fn round_up(n: usize) -> usize {
    (n + HUGE - 1) & !(HUGE - 1)
}

/// The huge-page blocks handed out (start, mapped length), so that `dealloc`
/// knows which blocks are ours (a handful: the NAT slab and indexes).
mod registry {
    use std::sync::Mutex;
    pub static RANGES: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());
}

// SAFETY: `alloc` returns either System's block or a fresh private mapping
// of at least `layout.size()` bytes aligned to 2 MiB (≥ `layout.align()`,
// checked); `dealloc` unmaps only blocks recorded by `alloc` and hands every
// other pointer back to System, so each block is freed by its own allocator.
// The registry's small Vec allocations go to System (below 2 MiB): no
// re-entry into the huge-page branch.
unsafe impl GlobalAlloc for ThpAlloc {
    // SAFETY: see the impl; callers uphold GlobalAlloc's contract.
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() < HUGE || layout.align() > HUGE || !ENABLED.load(Ordering::Relaxed) {
            return System.alloc(layout);
        }
        let len = round_up(layout.size());
        // SAFETY: an anonymous private mapping; trimmed to a 2 MiB-aligned
        // `len` bytes below.
        let p = libc::mmap(std::ptr::null_mut(), len + HUGE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        if p == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        let start = p as usize;
        let aligned = (start + HUGE - 1) & !(HUGE - 1);
        if aligned > start {
            libc::munmap(p, aligned - start);
        }
        let tail = start + len + HUGE - (aligned + len);
        if tail > 0 {
            libc::munmap((aligned + len) as *mut libc::c_void, tail);
        }
        libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        registry::RANGES.lock().map(|mut r| r.push((aligned, len))).ok();
        aligned as *mut u8
    }

    // SAFETY: `ptr` came from `alloc` with this `layout` (GlobalAlloc's
    // contract), so it is either a recorded mapping or System's.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= HUGE {
            let found = registry::RANGES.lock().ok().and_then(|mut r| {
                let i = r.iter().position(|&(a, _)| a == ptr as usize)?;
                Some(r.swap_remove(i))
            });
            if let Some((a, len)) = found {
                libc::munmap(a as *mut libc::c_void, len);
                return;
            }
        }
        System.dealloc(ptr, layout)
    }
}
