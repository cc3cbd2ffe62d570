//! UDP (RFC 768) over IPv4.
//!
//! ```text
//!  0              16             32
//! +--------------+--------------+
//! | Source Port  |  Dest Port   |
//! +--------------+--------------+
//! |    Length    |   Checksum   |
//! +--------------+--------------+
//! ```
//!
//! A view is made over the IP payload. The checksum covers the IPv4
//! pseudo-header; a checksum field of 0 means "none" and stays 0 through
//! every incremental update, and a computed 0 is sent as 0xFFFF
//! (RFC 768; see [`super::checksum`]).

use core::net::Ipv4Addr;

use super::checksum;
use super::ip::IpProtocol;
use super::{read_u16, write_u16, Error, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// The UDP header length.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer (the IP payload) and [`check_len`](Self::check_len)s it.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The header fits (`Truncated`), the length field is at least 8
    /// (`Malformed`) and at most the buffer, i.e. the IP payload
    /// (`Truncated`).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let buf_len = self.buffer.as_ref().len();
        if buf_len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len > buf_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length field (header and data).
    #[inline]
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Whether the datagram carries no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum field (0: none).
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The datagram as the length field bounds it.
    #[inline]
    fn datagram(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.len())]
    }

    /// Whether the checksum verifies with this pseudo-header; `true` when
    /// the field is 0 (no checksum).
    #[inline]
    pub fn verify_checksum(&self, src_addr: Ipv4Addr, dst_addr: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let pseudo = checksum::pseudo_header_v4(src_addr, dst_addr, IpProtocol::Udp, self.len());
        checksum::combine(&[pseudo, checksum::data(self.datagram())]) == 0xFFFF
    }

    /// The data: from the end of the header to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    /// Sets the length field. Breaks the `check_len` promise: check again.
    #[inline]
    pub fn set_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, checksum);
    }

    /// Computes the checksum from scratch and writes it (0 is sent as
    /// 0xFFFF).
    #[inline]
    pub fn fill_checksum(&mut self, src_addr: Ipv4Addr, dst_addr: Ipv4Addr) {
        self.set_checksum(0);
        let pseudo = checksum::pseudo_header_v4(src_addr, dst_addr, IpProtocol::Udp, self.len());
        let sum = checksum::combine(&[pseudo, checksum::data(self.datagram())]);
        self.set_checksum(nonzero(checksum::finish(sum)));
    }

    /// Applies an RFC 1624 update to the checksum, unless it is 0 (none).
    #[inline]
    fn adjust_checksum(&mut self, update: impl FnOnce(u16) -> u16) {
        let c = self.checksum();
        if c != 0 {
            self.set_checksum(nonzero(update(c)));
        }
    }

    /// Sets the source port and updates the checksum incrementally.
    #[inline]
    pub fn set_src_port_incremental(&mut self, port: u16) {
        let old = self.src_port();
        self.set_src_port(port);
        self.adjust_checksum(|c| checksum::update16(c, old, port));
    }

    /// Sets the destination port and updates the checksum incrementally.
    #[inline]
    pub fn set_dst_port_incremental(&mut self, port: u16) {
        let old = self.dst_port();
        self.set_dst_port(port);
        self.adjust_checksum(|c| checksum::update16(c, old, port));
    }

    /// Updates the checksum for an address of the pseudo-header changing
    /// from `old` to `new` (after the IP header was rewritten, e.g. with
    /// `set_src_addr_incremental`).
    #[inline]
    pub fn update_addr_checksum(&mut self, old: Ipv4Addr, new: Ipv4Addr) {
        self.adjust_checksum(|c| checksum::update32(c, old.into(), new.into()));
    }

    /// The data, mutable. After changing it, fill the checksum.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..len]
    }
}

/// UDP sends a computed checksum of 0 as 0xFFFF (RFC 768).
#[inline]
fn nonzero(c: u16) -> u16 {
    if c == 0 {
        0xFFFF
    } else {
        c
    }
}

/// The meaning of a UDP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Data length; at most 65 527.
    pub payload_len: usize,
}

impl Repr {
    /// Parses a checked datagram and verifies its checksum against the
    /// pseudo-header (`BadChecksum`; a 0 field is accepted).
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Packet<T>,
        src_addr: Ipv4Addr,
        dst_addr: Ipv4Addr,
    ) -> Result<Repr> {
        packet.check_len()?;
        if !packet.verify_checksum(src_addr, dst_addr) {
            return Err(Error::BadChecksum);
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: packet.payload().len(),
        })
    }

    /// 8.
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus data.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header and `payload` (`payload.len()` must equal
    /// `payload_len`, and the buffer hold [`buffer_len`](Self::buffer_len)
    /// bytes), then fills the checksum.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src_addr: Ipv4Addr,
        dst_addr: Ipv4Addr,
        payload: &[u8],
    ) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        // `payload_len` is documented to fit in 16 bits with the header.
        packet.set_len(self.buffer_len() as u16);
        packet.payload_mut().copy_from_slice(payload);
        packet.fill_checksum(src_addr, dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::Packet as Ipv4Packet;
    use crate::wire::testdata;
    use proptest::prelude::*;

    fn dns() -> (Ipv4Addr, Ipv4Addr, Vec<u8>) {
        let ip = Ipv4Packet::new_checked(&testdata::UDP_DNS_QUERY[..]).unwrap();
        (ip.src_addr(), ip.dst_addr(), ip.payload().to_vec())
    }

    #[test]
    fn parse_dns_query_and_emit_back() {
        let (src, dst, udp) = dns();
        let p = Packet::new_checked(&udp[..]).unwrap();
        assert_eq!(
            (p.src_port(), p.dst_port(), p.len(), p.checksum()),
            (53000, 53, 37, 0x5a63)
        );
        assert!(p.verify_checksum(src, dst));
        assert!(!p.verify_checksum(src, Ipv4Addr::new(198, 51, 100, 54)));
        assert_eq!(&p.payload()[..2], &[0x1a, 0x2b]); // DNS id
        let repr = Repr::parse(&p, src, dst).unwrap();
        assert_eq!(
            repr,
            Repr {
                src_port: 53000,
                dst_port: 53,
                payload_len: 29
            }
        );
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut Packet::new_unchecked(&mut out[..]),
            src,
            dst,
            p.payload(),
        );
        assert_eq!(out, udp);
    }

    #[test]
    fn etherparse_agrees() {
        let (src, dst, udp) = dns();
        let (h, rest) = etherparse::UdpHeader::from_slice(&udp).unwrap();
        let p = Packet::new_checked(&udp[..]).unwrap();
        assert_eq!(
            (h.source_port, h.destination_port, h.length, h.checksum),
            (53000, 53, 37, p.checksum())
        );
        assert_eq!(
            h.calc_checksum_ipv4_raw(src.octets(), dst.octets(), rest)
                .unwrap(),
            p.checksum()
        );
    }

    #[test]
    fn zero_checksum_means_none_and_stays_zero() {
        let (src, _dst, mut udp) = dns();
        let mut p = Packet::new_checked(&mut udp[..]).unwrap();
        p.set_checksum(0);
        assert!(p.verify_checksum(src, Ipv4Addr::UNSPECIFIED));
        p.set_src_port_incremental(1);
        p.set_dst_port_incremental(2);
        p.update_addr_checksum(src, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.checksum(), 0);
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose the source port so that the checksum computes to 0.
        let (src, dst, mut udp) = dns();
        let mut p = Packet::new_checked(&mut udp[..]).unwrap();
        p.set_src_port(0);
        p.fill_checksum(src, dst);
        // With port 0 the checksum is !S0; a port of !S0 makes the sum
        // S0 + !S0 = 0xFFFF, whose checksum is 0.
        let port = p.checksum();
        p.set_src_port(port);
        p.fill_checksum(src, dst);
        assert_eq!(p.checksum(), 0xFFFF);
        assert!(p.verify_checksum(src, dst));
        // And the incremental path produces 0xFFFF, never 0, for the same.
        p.set_src_port(0);
        p.fill_checksum(src, dst);
        p.set_src_port_incremental(port);
        assert_eq!(p.checksum(), 0xFFFF);
    }

    #[test]
    fn rejects_bad_lengths() {
        let (_, _, udp) = dns();
        let mut b = udp.clone();
        b[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
        b[4..6].copy_from_slice(&38u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Truncated));
        // Shorter than the IP payload is allowed; the data is bounded.
        b[4..6].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&b[..]).unwrap().payload().len(), 2);
    }

    #[test]
    fn truncated_at_every_length() {
        let (_, _, udp) = dns();
        for n in 0..udp.len() {
            assert_eq!(
                Packet::new_checked(&udp[..n]).err(),
                Some(Error::Truncated),
                "len {n}"
            );
        }
    }

    /// A field change for the incremental checksum property.
    #[derive(Clone, Copy, Debug)]
    enum Change {
        SrcPort(u16),
        DstPort(u16),
        SrcAddr(u32),
        DstAddr(u32),
    }

    fn arb_change() -> impl Strategy<Value = Change> {
        let edge16 = prop_oneof![Just(0u16), Just(u16::MAX), any::<u16>()];
        let edge32 = prop_oneof![Just(0u32), Just(u32::MAX), Just(0xFFFF_0000), any::<u32>()];
        prop_oneof![
            edge16.clone().prop_map(Change::SrcPort),
            edge16.prop_map(Change::DstPort),
            edge32.clone().prop_map(Change::SrcAddr),
            edge32.prop_map(Change::DstAddr),
        ]
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(
            src_port in any::<u16>(), dst_port in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..100),
            src in any::<u32>(), dst in any::<u32>(),
        ) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let repr = Repr { src_port, dst_port, payload_len: payload.len() };
            let mut b = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut b[..]), src, dst, &payload);
            let p = Packet::new_checked(&b[..]).unwrap();
            prop_assert_ne!(p.checksum(), 0);
            prop_assert_eq!(Repr::parse(&p, src, dst), Ok(repr));
            prop_assert_eq!(p.payload(), &payload[..]);
        }

        /// NAT rewrites (ports and pseudo-header addresses) updated with
        /// RFC 1624 give the checksum a full recompute gives, 0xFFFF rule
        /// included.
        #[test]
        fn incremental_equals_recompute(
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            ports in any::<(u16, u16)>(),
            addrs in any::<(u32, u32)>(),
            changes in proptest::collection::vec(arb_change(), 1..6),
        ) {
            let (mut src, mut dst) = (Ipv4Addr::from(addrs.0), Ipv4Addr::from(addrs.1));
            let repr = Repr { src_port: ports.0, dst_port: ports.1, payload_len: payload.len() };
            let mut b = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut b[..]), src, dst, &payload);
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            for change in changes {
                match change {
                    Change::SrcPort(v) => p.set_src_port_incremental(v),
                    Change::DstPort(v) => p.set_dst_port_incremental(v),
                    Change::SrcAddr(a) => {
                        let a = Ipv4Addr::from(a);
                        p.update_addr_checksum(src, a);
                        src = a;
                    }
                    Change::DstAddr(a) => {
                        let a = Ipv4Addr::from(a);
                        p.update_addr_checksum(dst, a);
                        dst = a;
                    }
                }
                let incremental = p.checksum();
                prop_assert!(p.verify_checksum(src, dst));
                p.fill_checksum(src, dst);
                prop_assert_eq!(incremental, p.checksum(), "{:?}", change);
            }
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40), a in any::<u32>()) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let a = Ipv4Addr::from(a);
                let _ = (p.payload(), p.verify_checksum(a, a), Repr::parse(&p, a, a));
            }
        }
    }
}
