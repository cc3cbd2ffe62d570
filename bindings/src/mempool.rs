//! Packet-buffer pools (`rte_mempool` made by `rte_pktmbuf_pool_create`).

use std::ffi::{CStr, CString};
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::burst::Burst;
use crate::eal::{register_object, ObjectToken};
use crate::error::{last_errno, DpdkError};
use crate::mbuf::Mbuf;
use crate::sys;

/// A pool of packet buffers. Cloning is cheap (a reference count); the pool
/// is shared by every lcore: each EAL lcore allocates through its own
/// lcore-local cache, other threads go to the shared ring directly.
///
/// The pool is freed (`rte_mempool_free`) when the last handle drops, and
/// only if every mbuf has come back to it: an [`Mbuf`], a [`Burst`], a
/// [`crate::Ring`] or a port's rx queue still holding buffers would
/// otherwise point into freed memory, so in that case the pool is leaked
/// (and a line on stderr says so). Free every mbuf, and close ports that use
/// the pool, before dropping the last handle. A configured port keeps a
/// handle to its rx pool until [`crate::Port::close`].
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<Inner>,
}

struct Inner {
    ptr: NonNull<sys::rte_mempool>,
    name: String,
    token: Option<ObjectToken>,
}

// SAFETY: rte_mempool get/put are thread safe (lock-free ring underneath;
// per-lcore caches are only touched by their own lcore, and threads without
// an lcore id bypass them). The pointer itself is never mutated.
unsafe impl Send for Inner {}
// SAFETY: as above; all shared-reference operations are thread safe.
unsafe impl Sync for Inner {}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: the pool is alive (we are its last handle).
        let in_use = unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) };
        if in_use != 0 {
            eprintln!(
                "pias-dpdk: mempool {:?} dropped with {in_use} mbuf(s) still out: leaking it rather than freeing memory they point into",
                self.name
            );
            // Keep the live-object count up: EAL memory must not be cleaned.
            std::mem::forget(self.token.take());
            return;
        }
        // SAFETY: no handle and no mbuf refers to the pool any more (the
        // last handle is being dropped, in_use is 0 and ports hold handles
        // while configured).
        unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) };
    }
}

impl Mempool {
    /// Creates a pool of `n` packet mbufs with a per-lcore cache of `cache`
    /// entries and `data_room` bytes of buffer each (headroom included:
    /// `RTE_MBUF_DEFAULT_BUF_SIZE` = 2048 + 128 is the usual value), on NUMA
    /// `socket` (-1 for any). Names are global in DPDK and must be unique.
    pub fn pktmbuf(name: &str, n: u32, cache: u32, data_room: u16, socket: i32) -> Result<Mempool, DpdkError> {
        const CALL: &str = "rte_pktmbuf_pool_create";
        let c_name = CString::new(name).map_err(|_| DpdkError::InvalidArgument {
            call: CALL,
            what: format!("pool name {name:?} contains a NUL byte"),
        })?;
        let token = register_object(CALL)?;
        // SAFETY: EAL is running (token), the name is a valid C string that
        // DPDK copies.
        let ptr = unsafe { sys::rte_pktmbuf_pool_create(c_name.as_ptr(), n, cache, 0, data_room, socket) };
        let ptr = NonNull::new(ptr).ok_or_else(|| DpdkError::call(CALL, name, last_errno()))?;
        Ok(Mempool {
            inner: Arc::new(Inner {
                ptr,
                name: name.to_owned(),
                token: Some(token),
            }),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Number of mbufs the pool was created with.
    pub fn size(&self) -> u32 {
        // SAFETY: the pool is alive while `self` is; `size` is immutable.
        unsafe { (*self.inner.ptr.as_ptr()).size }
    }

    /// Mbufs currently in the pool (lcore caches included).
    pub fn avail_count(&self) -> u32 {
        // SAFETY: the pool is alive; a read-only count.
        unsafe { sys::rte_mempool_avail_count(self.inner.ptr.as_ptr()) }
    }

    /// Mbufs currently out of the pool.
    pub fn in_use_count(&self) -> u32 {
        // SAFETY: the pool is alive; a read-only count.
        unsafe { sys::rte_mempool_in_use_count(self.inner.ptr.as_ptr()) }
    }

    /// Takes one mbuf (reset: empty, default headroom), or `None` if the
    /// pool is exhausted.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is alive and a pktmbuf pool; the returned mbuf is
        // exclusively ours.
        let m = unsafe { sys::pias_pktmbuf_alloc(self.inner.ptr.as_ptr()) };
        // SAFETY: a fresh, direct, single-segment mbuf with refcnt 1.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// Fills `n` slots of the burst's free space with fresh mbufs, all or
    /// nothing. Returns false (burst unchanged) when the pool has fewer than
    /// `n` or the burst has less free space.
    pub fn alloc_bulk<const N: usize>(&self, b: &mut Burst<N>, n: usize) -> bool {
        if n > b.capacity() - b.len() {
            return false;
        }
        if n == 0 {
            return true;
        }
        // SAFETY: the free slots start at len and hold at least n entries;
        // on success all n are written with fresh owned mbufs, which is what
        // set_len requires.
        unsafe {
            let (slots, _) = b.spare_raw();
            if sys::pias_pktmbuf_alloc_bulk(self.inner.ptr.as_ptr(), slots, n as u32) != 0 {
                return false;
            }
            b.set_len(b.len() + n);
        }
        true
    }

    /// The raw pool, for DPDK calls this crate does not wrap. It stays valid
    /// while any handle (this one included) is alive.
    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.inner.ptr.as_ptr()
    }
}

impl fmt::Debug for Mempool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.inner.name)
            .field("size", &self.size())
            .field("avail", &self.avail_count())
            .finish()
    }
}

/// The name DPDK stores for a pool (for pools reached through raw pointers).
///
/// # Safety
/// `mp` must point to a live mempool.
pub unsafe fn raw_pool_name(mp: *const sys::rte_mempool) -> String {
    // SAFETY: the caller guarantees `mp` is live; `name` is NUL-terminated.
    unsafe { CStr::from_ptr((*mp).name.as_ptr()).to_string_lossy().into_owned() }
}
