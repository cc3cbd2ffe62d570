//! The prefix every datagram starts with, and the header of proxy-to-proxy
//! messages (PROTOCOL.md, "Header").
//!
//! ```text
//!  0       1       2               4
//! +-------+-------+---------------+
//! |version| type  |    length     |   prefix: every message
//! +-------+-------+---------------+-------+-------+---------------+
//! |            sender             |key id | flags |     epoch ... |
//! +-------------------------------+-------+-------+---------------+
//! |  ... epoch    |                  sequence (8)                 |
//! +---------------+-----------------------------------------------+
//!   proxy header: proxy-to-proxy messages, 22 bytes in all
//! ```

use pias_dataplane::types::ProxyId;

use super::cursor::{Reader, Writer};
use super::{EmitError, MessageType, WireError, TARGET_VERSION, VERSION};

/// Byte offsets of the prefix and proxy header fields.
mod field {
    use core::ops::Range;
    pub const VERSION: usize = 0;
    pub const TYPE: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const SENDER: Range<usize> = 4..8;
    pub const KEY_ID: usize = 8;
    pub const FLAGS: usize = 9;
    pub const EPOCH: Range<usize> = 10..14;
    pub const SEQ: Range<usize> = 14..22;
}

/// Length of the prefix (version, type, length).
pub const PREFIX_LEN: usize = field::LENGTH.end;
/// Length of the prefix plus the proxy header.
pub const PROXY_HEADER_LEN: usize = field::SEQ.end;

/// Which of the (at most two) live proxy-group keys made a MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub u8);

/// The authenticated header of a proxy-to-proxy message.
///
/// `(epoch, seq)` is the sender's replay-protection sequence (RFC 7474
/// style): `epoch` is the sender's persisted boot count, bumped at every
/// start, `seq` counts messages within the epoch and never wraps (64 bits).
/// Receivers keep a sliding window per sender ([`crate::auth::replay`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProxyHeader {
    /// The sending proxy.
    pub sender: ProxyId,
    /// The key that made the MAC.
    pub key_id: KeyId,
    /// The sender's boot count.
    pub epoch: u32,
    /// Message counter within the epoch.
    pub seq: u64,
}

impl ProxyHeader {
    /// Read the proxy header after the prefix.
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let sender = ProxyId(r.u32()?);
        let key_id = KeyId(r.u8()?);
        if r.u8()? != 0 {
            return Err(WireError::BadField("flags"));
        }
        let epoch = r.u32()?;
        let seq = r.u64()?;
        Ok(ProxyHeader {
            sender,
            key_id,
            epoch,
            seq,
        })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        w.u32(self.sender.0)?;
        w.u8(self.key_id.0)?;
        w.u8(0)?;
        w.u32(self.epoch)?;
        w.u64(self.seq)
    }
}

/// Read version, type and declared length.
pub(crate) fn parse_prefix(r: &mut Reader<'_>) -> Result<(MessageType, u16), WireError> {
    let version = r.u8()?;
    if version != VERSION && version != TARGET_VERSION {
        return Err(WireError::UnsupportedVersion(version));
    }
    let ty = r.u8()?;
    let ty = MessageType::from_u8(ty).ok_or(WireError::UnknownType(ty))?;
    // Each type has one version (PROTOCOL.md §2): a version-1 join, say,
    // has the old layout and is refused, not misread.
    if version != ty.version() {
        return Err(WireError::UnsupportedVersion(version));
    }
    let len = r.u16()?;
    Ok((ty, len))
}

pub(crate) fn emit_prefix(w: &mut Writer<'_>, ty: MessageType, len: u16) -> Result<(), EmitError> {
    w.u8(ty.version())?;
    w.u8(ty as u8)?;
    w.u16(len)
}

/// Zero-copy accessors over a datagram's prefix and proxy header, for
/// drivers that route a datagram before parsing it (e.g. the worker that
/// hands control traffic to the control core). Each accessor returns `None`
/// when the buffer is too short for the field.
#[derive(Clone, Copy, Debug)]
pub struct HeaderView<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> HeaderView<T> {
    /// Wrap a buffer without checking anything.
    pub fn new_unchecked(buf: T) -> Self {
        HeaderView { buf }
    }

    fn bytes<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        let s = self.buf.as_ref().get(at..at.checked_add(N)?)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Some(out)
    }

    /// The version byte.
    pub fn version(&self) -> Option<u8> {
        self.buf.as_ref().get(field::VERSION).copied()
    }

    /// The type byte.
    pub fn type_byte(&self) -> Option<u8> {
        self.buf.as_ref().get(field::TYPE).copied()
    }

    /// The declared length.
    pub fn length(&self) -> Option<u16> {
        self.bytes::<2>(field::LENGTH.start).map(u16::from_be_bytes)
    }

    /// The sender of a proxy-to-proxy message.
    pub fn sender(&self) -> Option<ProxyId> {
        self.bytes::<4>(field::SENDER.start)
            .map(|b| ProxyId(u32::from_be_bytes(b)))
    }

    /// The key id of a proxy-to-proxy message.
    pub fn key_id(&self) -> Option<KeyId> {
        self.buf.as_ref().get(field::KEY_ID).copied().map(KeyId)
    }

    /// The flags byte of a proxy-to-proxy message (zero in version 1).
    pub fn flags(&self) -> Option<u8> {
        self.buf.as_ref().get(field::FLAGS).copied()
    }

    /// The sender's epoch.
    pub fn epoch(&self) -> Option<u32> {
        self.bytes::<4>(field::EPOCH.start).map(u32::from_be_bytes)
    }

    /// The sender's sequence number.
    pub fn seq(&self) -> Option<u64> {
        self.bytes::<8>(field::SEQ.start).map(u64::from_be_bytes)
    }
}
