//! The small trait the packet logic works through, so that it runs on DPDK
//! mbufs in piasd and on plain vectors in tests, fuzzing and benchmarks.
//!
//! A packet is one contiguous buffer with room in front (headroom) and
//! behind (tailroom): tunnel headers are pushed and popped by moving the
//! start of the data (capsule's push/peel; DPDK's prepend/adj), never by
//! copying the payload.

/// A contiguous packet buffer with head- and tailroom.
pub trait PacketBuf {
    /// The packet bytes.
    fn data(&self) -> &[u8];
    /// The packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows the packet by `n` bytes at the front; false (unchanged) when
    /// the headroom is too small.
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front; false (unchanged) when shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the end; false (unchanged) when shorter.
    fn trim(&mut self, n: usize) -> bool;
    /// Grows the packet by `n` bytes at the end; false (unchanged) when the
    /// tailroom is too small.
    fn append(&mut self, n: usize) -> bool;

    /// Length of the packet.
    fn len(&self) -> usize {
        self.data().len()
    }

    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A heap buffer with headroom, for tests, fuzzing and benchmarks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VecBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl VecBuf {
    /// DPDK's default mbuf headroom.
    pub const HEADROOM: usize = 128;
    /// Room for any frame up to 2 KiB.
    pub const ROOM: usize = 2048;

    /// A buffer holding `bytes` with the default headroom.
    pub fn new(bytes: &[u8]) -> VecBuf {
        let mut buf = vec![0u8; Self::HEADROOM + Self::ROOM.max(bytes.len())];
        buf[Self::HEADROOM..Self::HEADROOM + bytes.len()].copy_from_slice(bytes);
        VecBuf { buf, start: Self::HEADROOM, end: Self::HEADROOM + bytes.len() }
    }

    /// Refills the buffer with `bytes` (reuse without allocating, for
    /// benchmarks). Bytes beyond the room are cut.
    pub fn reset(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - Self::HEADROOM);
        self.start = Self::HEADROOM;
        self.end = Self::HEADROOM + n;
        self.buf[self.start..self.end].copy_from_slice(&bytes[..n]);
    }

    /// The bytes, owned.
    pub fn to_vec(&self) -> Vec<u8> {
        self.data().to_vec()
    }
}

impl PacketBuf for VecBuf {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    fn adj(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }
    fn trim(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.end -= n;
        true
    }
    fn append(&mut self, n: usize) -> bool {
        if n > self.buf.len() - self.end {
            return false;
        }
        self.end += n;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vecbuf_moves_its_window() {
        let mut b = VecBuf::new(&[1, 2, 3]);
        assert!(b.prepend(2));
        assert_eq!(b.len(), 5);
        b.data_mut()[..2].copy_from_slice(&[9, 9]);
        assert!(b.adj(1));
        assert_eq!(b.data(), &[9, 1, 2, 3]);
        assert!(b.trim(1));
        assert_eq!(b.data(), &[9, 1, 2]);
        assert!(!b.trim(4));
        assert!(!b.prepend(VecBuf::HEADROOM + 10));
        assert!(b.append(1));
        assert_eq!(b.len(), 4);
    }
}
