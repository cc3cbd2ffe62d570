//! Per-thread lcore identity and the time-stamp counter.

use crate::sys;

/// The calling thread's lcore id, or `u32::MAX` (`LCORE_ID_ANY`) on a thread
/// EAL did not create or register.
#[inline]
pub fn lcore_id() -> u32 {
    // SAFETY: reads a thread-local; valid on any thread, before or after
    // EAL init.
    unsafe { sys::pias_lcore_id() }
}

/// The NUMA socket of the calling thread's lcore, or -1 (`SOCKET_ID_ANY`)
/// when unknown.
#[inline]
pub fn socket_id() -> i32 {
    // SAFETY: reads a thread-local; valid on any thread.
    unsafe { sys::rte_socket_id() as i32 }
}

/// The raw time-stamp counter (`rte_rdtsc`).
#[inline]
pub fn tsc() -> u64 {
    // SAFETY: rdtsc has no preconditions.
    unsafe { sys::pias_rdtsc() }
}

/// Time-stamp counter ticks per second, measured by EAL at init (0 before).
#[inline]
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a global that EAL sets at init; 0 before.
    unsafe { sys::rte_get_tsc_hz() }
}

/// The CPU's spin-wait hint (`rte_pause`), for busy-poll loops.
#[inline]
pub fn pause() {
    // SAFETY: the pause instruction has no preconditions.
    unsafe { sys::pias_pause() }
}

/// Number of enabled lcores (main included); 0 before EAL init.
pub fn lcore_count() -> u32 {
    // SAFETY: reads the EAL config; returns 0 before init.
    unsafe { sys::rte_lcore_count() }
}
