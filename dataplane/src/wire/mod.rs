//! Zero-copy views of the packet formats the proxy reads and rewrites:
//! Ethernet (with at most one 802.1Q tag), ARP, IPv4, IP-in-IP, UDP, TCP and
//! ICMPv4.
//!
//! Every protocol has the same two layers, after smoltcp's `wire` module:
//!
//! * a `Packet<T: AsRef<[u8]>>` (or `Frame`) view over a buffer: getters read
//!   fields at named byte ranges, setters (for `T: AsMut<[u8]>`) write them,
//!   and `payload()` / `payload_mut()` give the bytes after the header. Views
//!   never copy and never allocate; they are what the fast path uses.
//! * a `Repr`: the parsed, validated meaning of a header. `Repr::parse`
//!   checks everything a view does not (checksums, versions, known codes);
//!   `Repr::emit` writes a header (and fills its checksum). It is for tests,
//!   the control path and building packets, not for per-packet work.
//!
//! # The contract
//!
//! `Packet::new_unchecked` wraps any buffer; its getters may panic if the
//! buffer is too short. `Packet::new_checked` is `new_unchecked` followed by
//! `check_len`: **once `new_checked` (or `check_len`) has succeeded, no
//! getter, no payload accessor and no setter that keeps the lengths as they
//! are can panic**, whatever the bytes are. Each `check_len` documents what it
//! checks. A setter that can break the promise (one that changes a length
//! field or a header length) says so in its documentation; after it, call
//! `check_len` again before trusting the view.
//!
//! `Repr::emit` writes into a buffer the caller sized with `buffer_len()`;
//! a shorter buffer is a programming error and panics. Nothing that is
//! reachable from packet bytes panics.
//!
//! # Checksums
//!
//! [`checksum`] holds the internet checksum (RFC 1071) and the incremental
//! update of RFC 1624 (`HC' = ~(~HC + ~m + m')`), which the fast path uses
//! when it rewrites addresses, ports, TTLs and MSS options: the `*_incremental`
//! setters of each view keep the packet's checksum valid without reading the
//! payload.
#![deny(unsafe_code)]

use core::fmt;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod ip;
pub mod ipip;
pub mod ipv4;
pub mod tcp;
pub mod udp;

#[cfg(test)]
mod testdata;

pub use arp::{Operation as ArpOperation, Packet as ArpPacket, Repr as ArpRepr};
pub use ethernet::{
    Address as EthernetAddress, EtherType, Frame as EthernetFrame, Repr as EthernetRepr, VlanTag,
};
pub use icmpv4::{
    DstUnreachable as Icmpv4DstUnreachable, Message as Icmpv4Message, Packet as Icmpv4Packet,
    Repr as Icmpv4Repr, TimeExceeded as Icmpv4TimeExceeded,
};
pub use ip::IpProtocol;
pub use ipip::{DfPolicy, EncapParams};
pub use ipv4::{Packet as Ipv4Packet, Repr as Ipv4Repr};
pub use tcp::{Flags as TcpFlags, Packet as TcpPacket, Repr as TcpRepr, TcpOption};
pub use udp::{Packet as UdpPacket, Repr as UdpRepr};

/// Why a buffer is not a valid packet of the expected kind.
///
/// Small and `Copy` on purpose: the fast path maps it to a drop-reason
/// counter, never allocates for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer ends before the header (or the length a header declares).
    Truncated,
    /// A field holds a value the format forbids (a length below its minimum,
    /// a header longer than its total length, a bad option layout…).
    Malformed,
    /// The checksum does not verify.
    BadChecksum,
    /// The IP version field is not 4.
    BadVersion,
    /// Well formed, but a variant this module does not handle (an ARP for a
    /// non-Ethernet/IPv4 pair, a double VLAN tag, an ICMP type without a
    /// `Repr`, a non-IP-in-IP packet given to the tunnel parser…).
    Unsupported,
    /// An IPv4 fragment where a whole datagram is required.
    Fragmented,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::Malformed => "malformed packet",
            Error::BadChecksum => "bad checksum",
            Error::BadVersion => "bad IP version",
            Error::Unsupported => "unsupported packet variant",
            Error::Fragmented => "unexpected fragment",
        })
    }
}

impl std::error::Error for Error {}

/// Result of the wire views.
pub type Result<T> = core::result::Result<T, Error>;

/// The options of an IPv4 or TCP header, held by value so that a `Repr`
/// stays `Copy` and free of lifetimes.
///
/// Both formats count their header in 32-bit words, so the length is a
/// multiple of 4 and at most 40 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeaderOptions {
    len: u8,
    bytes: [u8; HeaderOptions::MAX_LEN],
}

impl HeaderOptions {
    /// The longest options field of IPv4 (IHL 15) and TCP (data offset 15).
    pub const MAX_LEN: usize = 40;

    /// No options.
    pub const EMPTY: HeaderOptions = HeaderOptions {
        len: 0,
        bytes: [0; Self::MAX_LEN],
    };

    /// Options from their raw bytes; `Malformed` unless the length is a
    /// multiple of 4 and at most [`Self::MAX_LEN`].
    pub fn new(bytes: &[u8]) -> Result<HeaderOptions> {
        if bytes.len() > Self::MAX_LEN || bytes.len() % 4 != 0 {
            return Err(Error::Malformed);
        }
        let mut out = Self::EMPTY;
        out.bytes[..bytes.len()].copy_from_slice(bytes);
        // Fits: checked against MAX_LEN (40) above.
        out.len = bytes.len() as u8;
        Ok(out)
    }

    /// The option bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Their length in bytes (a multiple of 4).
    #[inline]
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are none.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for HeaderOptions {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl fmt::Debug for HeaderOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HeaderOptions({:02x?})", self.as_bytes())
    }
}

/// Reads a big-endian `u16` at `at`. Callers index inside a range that
/// `check_len` validated.
#[inline(always)]
fn read_u16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

/// Reads a big-endian `u32` at `at`.
#[inline(always)]
fn read_u32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// Writes a big-endian `u16` at `at`.
#[inline(always)]
fn write_u16(data: &mut [u8], at: usize, value: u16) {
    data[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Writes a big-endian `u32` at `at`.
#[inline(always)]
fn write_u32(data: &mut [u8], at: usize, value: u32) {
    data[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_options_lengths() {
        assert_eq!(HeaderOptions::new(&[]), Ok(HeaderOptions::EMPTY));
        assert_eq!(HeaderOptions::new(&[1, 1, 1]), Err(Error::Malformed));
        assert_eq!(HeaderOptions::new(&[0; 44]), Err(Error::Malformed));
        let o = HeaderOptions::new(&[1, 1, 1, 0]).unwrap();
        assert_eq!(o.as_bytes(), &[1, 1, 1, 0]);
        assert_eq!(o.len(), 4);
        assert!(!o.is_empty());
    }

    #[test]
    fn error_display() {
        assert_eq!(Error::BadChecksum.to_string(), "bad checksum");
    }
}
