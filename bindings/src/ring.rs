//! Lock-free rings of mbufs (`rte_ring`), for handing packets between
//! lcores (misrouted flows to their owner, control traffic to the control
//! core).

use std::ffi::{c_void, CString};
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::burst::Burst;
use crate::eal::{register_object, ObjectToken};
use crate::error::{last_errno, DpdkError};
use crate::sys;

/// A ring of owned mbufs, shared by every lcore that holds a clone.
/// Enqueueing moves mbufs in, dequeueing moves them out; dropping the last
/// handle frees the mbufs still inside and then the ring.
///
/// A ring created single-producer (or single-consumer) uses DPDK's cheaper
/// SP (SC) path. Since `enqueue_burst` takes `&self`, two threads could
/// still call it at once; a per-side flag (one uncontended atomic swap per
/// burst) serialises them so that this can never corrupt the ring. Give the
/// producing side to one lcore and the flag never spins.
#[derive(Clone)]
pub struct Ring {
    inner: Arc<Inner>,
}

struct Inner {
    ptr: NonNull<sys::rte_ring>,
    name: String,
    single_producer: bool,
    single_consumer: bool,
    producing: AtomicBool,
    consuming: AtomicBool,
    _token: ObjectToken,
}

// SAFETY: rte_ring operations are thread safe for multi-producer/consumer
// rings, and the single-producer/consumer sides are serialised by the
// `producing`/`consuming` flags. The ring only ever holds owned mbufs.
unsafe impl Send for Inner {}
// SAFETY: as above.
unsafe impl Sync for Inner {}

/// Holds one side's flag for the duration of a burst.
struct SideGuard<'a>(Option<&'a AtomicBool>);

impl<'a> SideGuard<'a> {
    #[inline]
    fn acquire(flag: &'a AtomicBool, single: bool) -> Self {
        if !single {
            return SideGuard(None);
        }
        while flag.swap(true, Ordering::Acquire) {
            crate::lcore::pause();
        }
        SideGuard(Some(flag))
    }
}

impl Drop for SideGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(f) = self.0 {
            f.store(false, Ordering::Release);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let mut b = Burst::<64>::new();
        loop {
            b.clear();
            // SAFETY: we are the last handle, so no one else touches the
            // ring; it holds only owned mbufs, which move into `b` and are
            // freed with it.
            let n = unsafe {
                let (slots, free) = b.spare_raw();
                let n = sys::pias_ring_dequeue_burst(
                    self.ptr.as_ptr(),
                    slots.cast::<*mut c_void>(),
                    free as u32,
                    std::ptr::null_mut(),
                ) as usize;
                b.set_len(n);
                n
            };
            if n == 0 {
                break;
            }
        }
        // SAFETY: empty and unreferenced.
        unsafe { sys::rte_ring_free(self.ptr.as_ptr()) };
    }
}

impl Ring {
    /// Creates a ring that holds exactly `count` mbufs (any count: the ring
    /// is made with `RING_F_EXACT_SZ`). Names are global in DPDK.
    pub fn new(name: &str, count: u32, single_producer: bool, single_consumer: bool) -> Result<Ring, DpdkError> {
        const CALL: &str = "rte_ring_create";
        let c_name = CString::new(name).map_err(|_| DpdkError::InvalidArgument {
            call: CALL,
            what: format!("ring name {name:?} contains a NUL byte"),
        })?;
        if count == 0 {
            return Err(DpdkError::InvalidArgument {
                call: CALL,
                what: format!("ring {name:?} must hold at least one mbuf"),
            });
        }
        let token = register_object(CALL)?;
        let mut flags = sys::RING_F_EXACT_SZ;
        if single_producer {
            flags |= sys::RING_F_SP_ENQ;
        }
        if single_consumer {
            flags |= sys::RING_F_SC_DEQ;
        }
        // SAFETY: EAL is running (token); DPDK copies the name.
        let ptr = unsafe { sys::rte_ring_create(c_name.as_ptr(), count, sys::SOCKET_ID_ANY, flags) };
        let ptr = NonNull::new(ptr).ok_or_else(|| DpdkError::call(CALL, name, last_errno()))?;
        Ok(Ring {
            inner: Arc::new(Inner {
                ptr,
                name: name.to_owned(),
                single_producer,
                single_consumer,
                producing: AtomicBool::new(false),
                consuming: AtomicBool::new(false),
                _token: token,
            }),
        })
    }

    /// The ring's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Moves as many mbufs as fit from the front of `b` into the ring;
    /// returns how many. The rest stay in `b`, moved to the front.
    #[inline]
    pub fn enqueue_burst<const N: usize>(&self, b: &mut Burst<N>) -> usize {
        let n = b.len();
        if n == 0 {
            return 0;
        }
        let _g = SideGuard::acquire(&self.inner.producing, self.inner.single_producer);
        // SAFETY: the ring is alive; the producer side is exclusive if it is
        // single-producer (guard); slots 0..n hold owned mbufs, of which the
        // ring takes the first `done`, which consume_front then forgets.
        unsafe {
            let done = sys::pias_ring_enqueue_burst(
                self.inner.ptr.as_ptr(),
                b.as_mut_ptr().cast::<*mut c_void>().cast_const(),
                n as u32,
                std::ptr::null_mut(),
            ) as usize;
            b.consume_front(done);
            done
        }
    }

    /// Moves up to the free space of `b` mbufs out of the ring into `b`;
    /// returns how many.
    #[inline]
    pub fn dequeue_burst<const N: usize>(&self, b: &mut Burst<N>) -> usize {
        let _g = SideGuard::acquire(&self.inner.consuming, self.inner.single_consumer);
        // SAFETY: the ring is alive; the consumer side is exclusive if it is
        // single-consumer (guard); the ring holds only owned mbufs, and DPDK
        // writes at most `free` of them into the free slots.
        unsafe {
            let (slots, free) = b.spare_raw();
            if free == 0 {
                return 0;
            }
            let n = sys::pias_ring_dequeue_burst(
                self.inner.ptr.as_ptr(),
                slots.cast::<*mut c_void>(),
                free.min(u32::MAX as usize) as u32,
                std::ptr::null_mut(),
            ) as usize;
            b.set_len(b.len() + n);
            n
        }
    }

    /// Mbufs in the ring now.
    #[inline]
    pub fn count(&self) -> u32 {
        // SAFETY: the ring is alive; reads its indices.
        unsafe { sys::pias_ring_count(self.inner.ptr.as_ptr()) }
    }

    /// Free slots now.
    #[inline]
    pub fn free_count(&self) -> u32 {
        // SAFETY: the ring is alive; reads its indices.
        unsafe { sys::pias_ring_free_count(self.inner.ptr.as_ptr()) }
    }

    /// How many mbufs the ring can hold.
    pub fn capacity(&self) -> u32 {
        // SAFETY: the ring is alive; capacity is immutable.
        unsafe { sys::pias_ring_get_capacity(self.inner.ptr.as_ptr()) }
    }

    /// The raw ring. Anything enqueued through it must be an owned mbuf
    /// (the ring frees what it holds when dropped).
    pub fn as_ptr(&self) -> *mut sys::rte_ring {
        self.inner.ptr.as_ptr()
    }
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("name", &self.inner.name)
            .field("count", &self.count())
            .field("capacity", &self.capacity())
            .finish()
    }
}
