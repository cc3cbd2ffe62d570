//! Big-endian readers and writers over byte slices, the only code in `wire`
//! that indexes a buffer. Every read is bounds-checked and returns
//! [`WireError::Truncated`] instead of panicking; every write returns
//! [`EmitError::BufferTooSmall`].

use core::net::Ipv4Addr;

use super::{EmitError, WireError};

/// Reads fields front to back from a message body.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let end = self.pos.checked_add(N).ok_or(WireError::Truncated)?;
        let src = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        let mut out = [0u8; N];
        out.copy_from_slice(src);
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn ipv4(&mut self) -> Result<Ipv4Addr, WireError> {
        Ok(Ipv4Addr::from(self.array::<4>()?))
    }

    /// An element count `n` (one byte) followed by exactly `n` elements of
    /// `elem_len` bytes that must end the body: checks the cap and that the
    /// remaining length is exactly `n * elem_len` before anything is
    /// allocated, so a lying count costs nothing.
    pub(crate) fn count(
        &mut self,
        what: &'static str,
        cap: usize,
        elem_len: usize,
    ) -> Result<usize, WireError> {
        let n = usize::from(self.u8()?);
        if n > cap {
            return Err(WireError::TooMany {
                what,
                count: n,
                cap,
            });
        }
        let need = n * elem_len;
        match self.remaining().cmp(&need) {
            core::cmp::Ordering::Less => Err(WireError::Truncated),
            core::cmp::Ordering::Greater => Err(WireError::TrailingBytes),
            core::cmp::Ordering::Equal => Ok(n),
        }
    }

    /// Every byte must have been read.
    pub(crate) fn finish(&self) -> Result<(), WireError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(WireError::TrailingBytes)
        }
    }
}

/// Writes fields front to back into a caller-owned buffer.
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn bytes(&mut self, src: &[u8]) -> Result<(), EmitError> {
        let end = self
            .pos
            .checked_add(src.len())
            .ok_or(EmitError::BufferTooSmall)?;
        let dst = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(EmitError::BufferTooSmall)?;
        dst.copy_from_slice(src);
        self.pos = end;
        Ok(())
    }

    pub(crate) fn u8(&mut self, v: u8) -> Result<(), EmitError> {
        self.bytes(&[v])
    }

    pub(crate) fn u16(&mut self, v: u16) -> Result<(), EmitError> {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn u32(&mut self, v: u32) -> Result<(), EmitError> {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn u64(&mut self, v: u64) -> Result<(), EmitError> {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn ipv4(&mut self, v: Ipv4Addr) -> Result<(), EmitError> {
        self.bytes(&v.octets())
    }

    /// A one-byte element count, after checking it against the cap.
    pub(crate) fn count(
        &mut self,
        what: &'static str,
        n: usize,
        cap: usize,
    ) -> Result<(), EmitError> {
        if n > cap {
            return Err(EmitError::TooMany {
                what,
                count: n,
                cap,
            });
        }
        // cap <= u8::MAX for every list (asserted in wire::tests).
        let n = u8::try_from(n).map_err(|_| EmitError::TooMany {
            what,
            count: n,
            cap,
        })?;
        self.u8(n)
    }
}
