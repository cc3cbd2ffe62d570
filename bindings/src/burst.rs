//! A fixed-size batch of owned mbufs: what rx fills, tx drains and rings
//! move, with no heap allocation.

use std::fmt;
use std::mem::MaybeUninit;
use std::ptr;

use crate::mbuf::Mbuf;
use crate::sys;

/// Up to `N` owned mbufs in slots `0..len`. Lives on the stack (an array of
/// pointers and a length); dropping or clearing it frees what is left with
/// one `rte_pktmbuf_free_bulk`.
///
/// `Send` with its mbufs, not `Sync` (a burst belongs to one lcore).
pub struct Burst<const N: usize> {
    len: usize,
    slots: [MaybeUninit<Mbuf>; N],
}

/// The burst size the data path uses.
pub type Burst32 = Burst<32>;

impl<const N: usize> Default for Burst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Burst<N> {
    /// An empty burst.
    #[inline]
    pub const fn new() -> Self {
        Burst {
            len: 0,
            slots: [const { MaybeUninit::uninit() }; N],
        }
    }

    /// Number of mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no mbuf is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when all `N` slots are used.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// `N`.
    #[inline]
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Appends `m`, or gives it back when the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == N {
            return Err(m);
        }
        self.slots[self.len].write(m);
        self.len += 1;
        Ok(())
    }

    /// Removes and returns the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: slot `len` was initialised and is now outside 0..len, so
        // it is read out exactly once.
        Some(unsafe { self.slots[self.len].assume_init_read() })
    }

    /// The held mbufs.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: slots 0..len are initialised; MaybeUninit<Mbuf> has the
        // layout of Mbuf.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The held mbufs, mutable (to edit packets in place, or to swap and
    /// reorder them).
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in as_slice, with exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.slots.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The `i`-th mbuf.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&Mbuf> {
        self.as_slice().get(i)
    }

    /// The `i`-th mbuf, mutable.
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut Mbuf> {
        self.as_mut_slice().get_mut(i)
    }

    /// Iterates over the held mbufs.
    #[inline]
    pub fn iter(&self) -> std::slice::Iter<'_, Mbuf> {
        self.as_slice().iter()
    }

    /// Iterates over the held mbufs, mutable.
    #[inline]
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Mbuf> {
        self.as_mut_slice().iter_mut()
    }

    /// Takes every mbuf out, in order, leaving the burst empty. Mbufs the
    /// iterator has not yielded when it is dropped are freed then.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_, N> {
        let end = self.len;
        // If the Drain is leaked, the mbufs leak too, but none is freed twice.
        self.len = 0;
        Drain {
            burst: self,
            next: 0,
            end,
        }
    }

    /// Keeps the mbufs for which `keep` returns true (in order) and frees the
    /// others.
    pub fn retain_mut<F: FnMut(&mut Mbuf) -> bool>(&mut self, mut keep: F) {
        let len = self.len;
        // Slots 0..kept hold the kept mbufs; on a panic in `keep`, only they
        // stay owned (the rest of the batch leaks, nothing is double-freed).
        self.len = 0;
        let mut kept = 0;
        for i in 0..len {
            // SAFETY: slot i (i >= kept) is initialised and read once.
            let mut m = unsafe { self.slots[i].assume_init_read() };
            if keep(&mut m) {
                self.slots[kept].write(m);
                kept += 1;
                self.len = kept;
            } else {
                drop(m);
            }
        }
    }

    /// Frees every held mbuf (one bulk call).
    #[inline]
    pub fn clear(&mut self) {
        if self.len == 0 {
            return;
        }
        let n = self.len;
        self.len = 0;
        // SAFETY: slots 0..n held owned mbufs; the length is already 0, so
        // they are not touched again.
        unsafe { sys::rte_pktmbuf_free_bulk(self.slots.as_mut_ptr().cast::<*mut sys::rte_mbuf>(), n as u32) }
    }

    /// The slot array as DPDK sees it (`struct rte_mbuf **`), for calls this
    /// crate does not wrap. Slots `0..len` hold owned mbufs.
    #[inline]
    pub fn as_mut_ptr(&mut self) -> *mut *mut sys::rte_mbuf {
        self.slots.as_mut_ptr().cast()
    }

    /// The free slots: a pointer to slot `len` and how many follow.
    ///
    /// # Safety
    /// The caller may only write owned mbufs there, then [`set_len`](Self::set_len).
    #[inline]
    pub unsafe fn spare_raw(&mut self) -> (*mut *mut sys::rte_mbuf, usize) {
        let len = self.len;
        // SAFETY: len <= N, so the pointer is in bounds (or one past).
        (unsafe { self.as_mut_ptr().add(len) }, N - len)
    }

    /// Sets the number of held mbufs.
    ///
    /// # Safety
    /// `len <= N`, and slots `0..len` must hold owned mbufs (shrinking
    /// forgets the dropped slots without freeing them).
    #[inline]
    pub unsafe fn set_len(&mut self, len: usize) {
        debug_assert!(len <= N);
        self.len = len;
    }

    /// Forgets the first `n` mbufs (their ownership went elsewhere: a tx
    /// queue, a ring) and moves the rest to the front.
    ///
    /// # Safety
    /// `n <= len`, and ownership of the first `n` mbufs must have been
    /// transferred.
    #[inline]
    pub(crate) unsafe fn consume_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        let rest = self.len - n;
        if n != 0 && rest != 0 {
            // SAFETY: both ranges lie within 0..len; ptr::copy handles the
            // overlap.
            unsafe { ptr::copy(self.slots.as_ptr().add(n), self.slots.as_mut_ptr(), rest) };
        }
        self.len = rest;
    }
}

impl<const N: usize> Drop for Burst<N> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<const N: usize> fmt::Debug for Burst<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Burst")
            .field("len", &self.len)
            .field("capacity", &N)
            .field("mbufs", &self.as_slice())
            .finish()
    }
}

impl<'a, const N: usize> IntoIterator for &'a mut Burst<N> {
    type Item = &'a mut Mbuf;
    type IntoIter = std::slice::IterMut<'a, Mbuf>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

impl<'a, const N: usize> IntoIterator for &'a Burst<N> {
    type Item = &'a Mbuf;
    type IntoIter = std::slice::Iter<'a, Mbuf>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator returned by [`Burst::drain`].
pub struct Drain<'a, const N: usize> {
    burst: &'a mut Burst<N>,
    next: usize,
    end: usize,
}

impl<const N: usize> Iterator for Drain<'_, N> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next == self.end {
            return None;
        }
        let i = self.next;
        self.next += 1;
        // SAFETY: slots next..end are initialised and each is read once.
        Some(unsafe { self.burst.slots[i].assume_init_read() })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl<const N: usize> ExactSizeIterator for Drain<'_, N> {}

impl<const N: usize> Drop for Drain<'_, N> {
    fn drop(&mut self) {
        let n = self.end - self.next;
        if n == 0 {
            return;
        }
        let start = self.next;
        self.next = self.end;
        // SAFETY: slots start..end still hold owned mbufs that no one else
        // will read (the burst's len is 0).
        unsafe {
            sys::rte_pktmbuf_free_bulk(self.burst.as_mut_ptr().add(start), n as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_burst_without_eal() {
        let mut b = Burst32::new();
        assert_eq!(b.len(), 0);
        assert!(b.is_empty());
        assert!(!b.is_full());
        assert_eq!(b.capacity(), 32);
        assert!(b.pop().is_none());
        assert!(b.get(0).is_none());
        assert_eq!(b.drain().count(), 0);
        assert_eq!(b.iter().count(), 0);
        b.clear();
        b.retain_mut(|_| true);
        // SAFETY: n = 0 transfers nothing.
        unsafe { b.consume_front(0) };
        assert!(b.is_empty());
        let z: Burst<0> = Burst::new();
        assert!(z.is_full() && z.is_empty());
    }

    #[test]
    fn burst_is_small_and_flat() {
        assert_eq!(
            std::mem::size_of::<Burst32>(),
            std::mem::size_of::<usize>() + 32 * std::mem::size_of::<*mut sys::rte_mbuf>()
        );
    }
}
