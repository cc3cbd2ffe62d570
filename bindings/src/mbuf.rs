//! One owned packet buffer.

use std::fmt;
use std::ptr::NonNull;
use std::slice;

use crate::error::MbufError;
use crate::mempool::{raw_pool_name, Mempool};
use crate::sys;

/// An owned `rte_mbuf`: exactly one `Mbuf` exists per buffer, and dropping
/// it returns the buffer to its pool (`rte_pktmbuf_free`).
///
/// `Send` (it moves between lcores with its packet) but not `Sync`: an mbuf
/// in flight belongs to one lcore at a time.
///
/// Segments: everything this crate produces is single-segment (pool
/// allocation, and rx on ports configured without scatter, which
/// [`crate::Port::configure`] never enables). For a chained mbuf that came
/// in through [`Mbuf::from_raw`], [`data`](Mbuf::data)/[`len`](Mbuf::len)
/// cover the first segment only (see [`pkt_len`](Mbuf::pkt_len) and
/// [`is_contiguous`](Mbuf::is_contiguous)); `prepend`/`adj` act on the first
/// segment and `append`/`trim` on the last, as in DPDK; drop frees the whole
/// chain.
///
/// `repr(transparent)` over the pointer, so a `[Mbuf]` is a `struct
/// rte_mbuf *[]` that DPDK burst calls can fill and drain directly.
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: the mbuf is exclusively owned (see from_raw), and DPDK mbufs may
// be freed from any thread.
unsafe impl Send for Mbuf {}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; it is not used after this.
        unsafe { sys::pias_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `m` must be a valid packet mbuf that nothing else owns or references
    /// (no other `Mbuf`, no DPDK queue), direct (not attached to another
    /// buffer) with refcnt 1, and its pool must stay alive until it is freed.
    #[inline]
    pub unsafe fn from_raw(m: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf(m)
    }

    /// Gives up ownership without freeing; the caller must free it (or hand
    /// it to DPDK, which will).
    #[inline]
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let p = self.0;
        std::mem::forget(self);
        p
    }

    /// The raw pointer, still owned by `self`.
    #[inline]
    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.0.as_ptr()
    }

    /// Allocates an mbuf from `pool` and copies `bytes` into it.
    pub fn from_slice(pool: &Mempool, bytes: &[u8]) -> Result<Mbuf, MbufError> {
        let mut m = pool.alloc().ok_or_else(|| MbufError::PoolEmpty {
            pool: pool.name().to_owned(),
        })?;
        m.append(bytes.len())?.copy_from_slice(bytes);
        Ok(m)
    }

    #[inline]
    fn raw(&self) -> &sys::rte_mbuf {
        // SAFETY: we own a valid mbuf; no one else writes it while we hold
        // it.
        unsafe { self.0.as_ref() }
    }

    /// The packet data of the first segment (`rte_pktmbuf_mtod`, which is a
    /// macro: buffer address plus data offset).
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: DPDK keeps data_off + data_len within the buffer, which is
        // valid for the mbuf's lifetime and not aliased mutably (we own it,
        // and `&self` excludes `&mut self`).
        unsafe {
            slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    /// The packet data of the first segment, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw();
        let (addr, off, len) = (m.buf_addr.cast::<u8>(), m.data_off, m.data_len);
        // SAFETY: as in `data`; `&mut self` makes the access exclusive, and
        // the mbuf is direct with refcnt 1 (from_raw's contract), so no other
        // mbuf shares the buffer.
        unsafe { slice::from_raw_parts_mut(addr.add(usize::from(off)), usize::from(len)) }
    }

    /// Bytes of data in the first segment (`data_len`).
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.raw().data_len)
    }

    /// True when the first segment holds no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.raw().data_len == 0
    }

    /// Total packet length over all segments (`pkt_len`).
    #[inline]
    pub fn pkt_len(&self) -> usize {
        self.raw().pkt_len as usize
    }

    /// Number of segments.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.raw().nb_segs
    }

    /// True for a single-segment packet.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.raw().nb_segs == 1
    }

    /// Free bytes in front of the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        // SAFETY: reads fields of an mbuf we own.
        usize::from(unsafe { sys::pias_pktmbuf_headroom(self.0.as_ptr()) })
    }

    /// Free bytes after the data of the first segment.
    #[inline]
    pub fn tailroom(&self) -> usize {
        // SAFETY: reads fields of an mbuf we own.
        usize::from(unsafe { sys::pias_pktmbuf_tailroom(self.0.as_ptr()) })
    }

    /// Free bytes after the data of the last segment (where `append` writes).
    fn last_tailroom(&self) -> usize {
        let mut m = self.0.as_ptr();
        // SAFETY: walks the chain of an mbuf we own; `next` is NULL-ended.
        unsafe {
            while !(*m).next.is_null() {
                m = (*m).next;
            }
            usize::from(sys::pias_pktmbuf_tailroom(m))
        }
    }

    /// Data bytes in the last segment (what `trim` can remove).
    fn last_data_len(&self) -> usize {
        let mut m = self.0.as_ptr();
        // SAFETY: as in last_tailroom.
        unsafe {
            while !(*m).next.is_null() {
                m = (*m).next;
            }
            usize::from((*m).data_len)
        }
    }

    /// Grows the packet by `n` bytes at the front and returns them (their
    /// contents are whatever the buffer held). Fails, changing nothing, when
    /// the headroom is smaller than `n`. `n = 0` returns an empty slice.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Result<&mut [u8], MbufError> {
        let available = self.headroom();
        if n > available {
            return Err(MbufError::NoHeadroom { requested: n, available });
        }
        // SAFETY: n <= headroom <= u16::MAX, so the cast is exact and DPDK
        // accepts it; the returned pointer is the new data start, followed
        // by at least n bytes of the buffer we own exclusively.
        unsafe {
            let p = sys::pias_pktmbuf_prepend(self.0.as_ptr(), n as u16);
            if p.is_null() {
                return Err(MbufError::NoHeadroom { requested: n, available });
            }
            Ok(slice::from_raw_parts_mut(p.cast::<u8>(), n))
        }
    }

    /// Removes `n` bytes from the front of the packet. Fails, changing
    /// nothing, when the first segment holds fewer than `n` bytes.
    #[inline]
    pub fn adj(&mut self, n: usize) -> Result<(), MbufError> {
        let len = self.len();
        if n > len {
            return Err(MbufError::TooShort { op: "adj", requested: n, len });
        }
        if n == 0 {
            return Ok(());
        }
        // SAFETY: n <= data_len <= u16::MAX; DPDK moves data_off forward.
        let p = unsafe { sys::pias_pktmbuf_adj(self.0.as_ptr(), n as u16) };
        if p.is_null() {
            return Err(MbufError::TooShort { op: "adj", requested: n, len });
        }
        Ok(())
    }

    /// Grows the packet by `n` bytes at the end (of the last segment) and
    /// returns them. Fails, changing nothing, when the tailroom is smaller.
    #[inline]
    pub fn append(&mut self, n: usize) -> Result<&mut [u8], MbufError> {
        if n > usize::from(u16::MAX) {
            return Err(MbufError::NoTailroom {
                requested: n,
                available: self.last_tailroom(),
            });
        }
        // SAFETY: n fits u16; DPDK checks the last segment's tailroom and
        // returns NULL (changing nothing) when it is short; otherwise the
        // pointer is followed by n bytes of a buffer we own exclusively.
        unsafe {
            let p = sys::pias_pktmbuf_append(self.0.as_ptr(), n as u16);
            if p.is_null() {
                return Err(MbufError::NoTailroom {
                    requested: n,
                    available: self.last_tailroom(),
                });
            }
            Ok(slice::from_raw_parts_mut(p.cast::<u8>(), n))
        }
    }

    /// Removes `n` bytes from the end of the packet (of the last segment).
    /// Fails, changing nothing, when that segment holds fewer than `n`.
    #[inline]
    pub fn trim(&mut self, n: usize) -> Result<(), MbufError> {
        let len = self.last_data_len();
        if n > len {
            return Err(MbufError::TooShort { op: "trim", requested: n, len });
        }
        // SAFETY: n <= data_len of the last segment <= u16::MAX.
        let r = unsafe { sys::pias_pktmbuf_trim(self.0.as_ptr(), n as u16) };
        if r != 0 {
            return Err(MbufError::TooShort { op: "trim", requested: n, len });
        }
        Ok(())
    }

    /// The input port (set by rx, or by `set_port`).
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// Sets the port field (DPDK does not use it on tx; it is metadata).
    #[inline]
    pub fn set_port(&mut self, port: u16) {
        // SAFETY: exclusive access to an mbuf we own.
        unsafe { (*self.0.as_ptr()).port = port }
    }

    /// The RSS hash the NIC computed, if it set `RTE_MBUF_F_RX_RSS_HASH`.
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        let m = self.raw();
        if m.ol_flags & u64::from(sys::RTE_MBUF_F_RX_RSS_HASH) != 0 {
            // SAFETY: with the flag set, the hash union holds the RSS value
            // (and any bit pattern is a valid u32 anyway).
            Some(unsafe { m.__bindgen_anon_2.hash.rss })
        } else {
            None
        }
    }

    /// The offload flags (`ol_flags`).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.raw().ol_flags
    }

    /// The pool this mbuf returns to.
    pub fn pool_name(&self) -> String {
        // SAFETY: an mbuf's pool outlives it.
        unsafe { raw_pool_name(self.raw().pool) }
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("ptr", &self.0)
            .field("len", &self.len())
            .field("pkt_len", &self.pkt_len())
            .field("headroom", &self.headroom())
            .field("port", &self.port())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbuf_is_one_pointer() {
        // Burst and the ring code rely on [Mbuf] being struct rte_mbuf *[].
        assert_eq!(std::mem::size_of::<Mbuf>(), std::mem::size_of::<*mut sys::rte_mbuf>());
        assert_eq!(std::mem::size_of::<Option<Mbuf>>(), std::mem::size_of::<*mut sys::rte_mbuf>());
    }
}
