//! IPv4 headers (RFC 791), validated as RFC 1812 §5.2.2 asks of a router.
//!
//! ```text
//!  0       4       8              16    19                 31
//! +-------+-------+------+-------+-----+-------------------+
//! |Version|  IHL  | DSCP |  ECN  |       Total Length      |
//! +-------+-------+------+-------+-----+-------------------+
//! |        Identification        |Flags|  Fragment Offset  |
//! +---------------+--------------+-----+-------------------+
//! |  Time to Live |   Protocol   |     Header Checksum     |
//! +---------------+--------------+-------------------------+
//! |                     Source Address                     |
//! |                   Destination Address                  |
//! |                 Options (IHL > 5) …                    |
//! ```
//!
//! The payload is bounded by the total length, not by the buffer: a frame
//! padded to Ethernet's 60-byte minimum has trailing bytes that are not
//! part of the datagram.

use core::net::Ipv4Addr;

use super::checksum;
use super::ip::IpProtocol;
use super::{read_u16, write_u16, Error, HeaderOptions, Result};

/// The protocol field; one type for IPv4 and, later, IPv6's next header.
pub type Protocol = IpProtocol;

mod field {
    use core::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// Flag bits of the flags/fragment-offset word.
const FLAG_RESERVED: u16 = 0x8000;
const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1FFF;

/// The length of a header without options.
pub const HEADER_LEN: usize = 20;
/// The length of a header with 40 bytes of options (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks; getters may panic on a short buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer and [`check_len`](Self::check_len)s it.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the header alone: 20 bytes present, version 4 (`BadVersion`),
    /// IHL ≥ 5 (`Malformed`), the whole header in the buffer (`Truncated`).
    ///
    /// This is what an IP header quoted in an ICMP error can promise (its
    /// total length counts bytes that were not quoted). After it every
    /// accessor is panic-free too; [`payload`](Self::payload) is then
    /// clamped to the buffer.
    #[inline]
    pub fn check_header_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::BadVersion);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// [`check_header_len`](Self::check_header_len), then the total length:
    /// at least the header (`Malformed`) and within the buffer (`Truncated`).
    /// Bytes after the total length (Ethernet padding) are allowed. The
    /// checksum is not checked: see [`verify_checksum`](Self::verify_checksum).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        self.check_header_len()?;
        let total = usize::from(self.total_len());
        if total < self.header_len() {
            return Err(Error::Malformed);
        }
        if total > self.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (4 after `check_len`).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0F) * 4
    }

    /// Differentiated services code point (6 bits).
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// Explicit congestion notification (2 bits).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// The whole TOS byte (DSCP and ECN), as RFC 2003 copies it.
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length of the datagram, header included.
    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// The reserved ("evil") flag bit, which must be zero.
    #[inline]
    pub fn reserved_flag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_RESERVED != 0
    }

    /// Don't fragment.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// More fragments.
    #[inline]
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field × 8).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// Part of a fragmented datagram: MF set or a non-zero offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// The first fragment of a fragmented datagram (MF set, offset 0): it
    /// carries the transport header.
    #[inline]
    pub fn is_first_fragment(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & (FLAG_MF | OFFSET_MASK) == FLAG_MF
    }

    /// A fragment other than the first: its payload has no transport header
    /// (no ports).
    #[inline]
    pub fn is_non_initial_fragment(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// The header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// Whether the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::data(&self.buffer.as_ref()[..self.header_len()]) == 0xFFFF
    }

    /// The raw option bytes (empty for IHL 5).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The payload: from the end of the header to the total length.
    ///
    /// Clamped to the buffer, so it is also safe after only
    /// [`check_header_len`](Self::check_header_len) (then it is the quoted
    /// part of the payload).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let (start, end) = payload_range(self.header_len(), self.total_len(), data.len());
        &data[start..end]
    }
}

/// `header_len..total_len`, clamped to `buffer_len`.
#[inline]
fn payload_range(header_len: usize, total_len: u16, buffer_len: usize) -> (usize, usize) {
    let end = usize::from(total_len).min(buffer_len);
    (header_len.min(end), end)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version field.
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0F) | (version << 4);
    }

    /// Sets the header length in bytes (rounded down to 4). Breaks the
    /// `check_len` promise: check again.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        // The IHL is 4 bits: lengths beyond 60 are cut to their low bits.
        *b = (*b & 0xF0) | ((len / 4) as u8 & 0x0F);
    }

    /// Sets the DSCP (6 bits).
    #[inline]
    pub fn set_dscp(&mut self, dscp: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (dscp << 2);
    }

    /// Sets the ECN (2 bits).
    #[inline]
    pub fn set_ecn(&mut self, ecn: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0xFC) | (ecn & 0x03);
    }

    /// Sets the TOS byte (DSCP and ECN).
    #[inline]
    pub fn set_tos(&mut self, tos: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = tos;
    }

    /// Sets the total length. Breaks the `check_len` promise: check again.
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, ident);
    }

    fn set_flag(&mut self, flag: u16, on: bool) {
        let w = read_u16(self.buffer.as_ref(), field::FLG_OFF);
        let w = if on { w | flag } else { w & !flag };
        write_u16(self.buffer.as_mut(), field::FLG_OFF, w);
    }

    /// Sets don't fragment.
    #[inline]
    pub fn set_dont_frag(&mut self, on: bool) {
        self.set_flag(FLAG_DF, on);
    }

    /// Sets more fragments.
    #[inline]
    pub fn set_more_frags(&mut self, on: bool) {
        self.set_flag(FLAG_MF, on);
    }

    /// Sets the fragment offset in bytes; the low 3 bits are dropped (the
    /// field counts 8-byte units).
    #[inline]
    pub fn set_frag_offset(&mut self, offset: u16) {
        let w = read_u16(self.buffer.as_ref(), field::FLG_OFF);
        write_u16(
            self.buffer.as_mut(),
            field::FLG_OFF,
            (w & !OFFSET_MASK) | (offset >> 3),
        );
    }

    /// Sets the TTL.
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, protocol: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol.number();
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, checksum);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Computes the header checksum from scratch and writes it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(&self.buffer.as_ref()[..self.header_len()]);
        self.set_checksum(checksum::finish(sum));
    }

    /// Writes the 16-bit word at `at` and updates the checksum (RFC 1624).
    #[inline]
    fn rewrite_word(&mut self, at: usize, new: u16) {
        let old = read_u16(self.buffer.as_ref(), at);
        write_u16(self.buffer.as_mut(), at, new);
        let c = checksum::update16(self.checksum(), old, new);
        self.set_checksum(c);
    }

    /// Sets the source address and updates the header checksum
    /// incrementally (RFC 1624). The transport checksum covers the address
    /// too: update it with the transport view's `update_addr_checksum`.
    #[inline]
    pub fn set_src_addr_incremental(&mut self, addr: Ipv4Addr) {
        let old = self.src_addr();
        self.set_src_addr(addr);
        let c = checksum::update32(self.checksum(), old.into(), addr.into());
        self.set_checksum(c);
    }

    /// Sets the destination address and updates the header checksum
    /// incrementally (RFC 1624); see [`set_src_addr_incremental`](Self::set_src_addr_incremental).
    #[inline]
    pub fn set_dst_addr_incremental(&mut self, addr: Ipv4Addr) {
        let old = self.dst_addr();
        self.set_dst_addr(addr);
        let c = checksum::update32(self.checksum(), old.into(), addr.into());
        self.set_checksum(c);
    }

    /// Sets the TTL and updates the checksum incrementally.
    #[inline]
    pub fn set_ttl_incremental(&mut self, ttl: u8) {
        let proto = self.buffer.as_ref()[field::PROTOCOL];
        self.rewrite_word(field::TTL, u16::from_be_bytes([ttl, proto]));
    }

    /// Decrements the TTL by one and updates the checksum with RFC 1624's
    /// eqn. 3 (RFC 1812 §5.3.1 allows incremental update; RFC 1141's
    /// shortcut of adding 0x0100 is not used, since it mishandles 0xFFFF).
    /// Returns the new TTL, or `None` (packet untouched) when it is already
    /// 0. A forwarder checks `ttl() <= 1` first and answers ICMP time
    /// exceeded instead (RFC 1812 §5.3.1).
    #[inline]
    pub fn decrement_ttl(&mut self) -> Option<u8> {
        let ttl = self.ttl().checked_sub(1)?;
        self.set_ttl_incremental(ttl);
        Some(ttl)
    }

    /// Sets the identification and updates the checksum incrementally.
    #[inline]
    pub fn set_ident_incremental(&mut self, ident: u16) {
        self.rewrite_word(field::IDENT, ident);
    }

    /// Sets the DF flag and updates the checksum incrementally.
    #[inline]
    pub fn set_dont_frag_incremental(&mut self, on: bool) {
        let w = read_u16(self.buffer.as_ref(), field::FLG_OFF);
        self.rewrite_word(field::FLG_OFF, if on { w | FLAG_DF } else { w & !FLAG_DF });
    }

    /// Sets the TOS byte (DSCP and ECN) and updates the checksum
    /// incrementally.
    #[inline]
    pub fn set_tos_incremental(&mut self, tos: u8) {
        let ver_ihl = self.buffer.as_ref()[field::VER_IHL];
        self.rewrite_word(field::VER_IHL, u16::from_be_bytes([ver_ihl, tos]));
    }

    /// Sets the total length and updates the checksum incrementally.
    /// Breaks the `check_len` promise: check again.
    #[inline]
    pub fn set_total_len_incremental(&mut self, len: u16) {
        self.rewrite_word(field::LENGTH, len);
    }

    /// The option bytes, mutable. After changing them, fill the checksum.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// The payload, mutable (bounded as [`payload`](Self::payload) is).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (header_len, total_len) = (self.header_len(), self.total_len());
        let data = self.buffer.as_mut();
        let (start, end) = payload_range(header_len, total_len, data.len());
        &mut data[start..end]
    }
}

impl<'a> Packet<&'a [u8]> {
    /// The payload, borrowed for the buffer's lifetime rather than the view's.
    #[inline]
    pub fn payload_slice(&self) -> &'a [u8] {
        let data = self.buffer;
        let (start, end) = payload_range(self.header_len(), self.total_len(), data.len());
        &data[start..end]
    }
}

/// The meaning of an IPv4 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// Payload length; `header_len() + payload_len` must fit in 16 bits.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DSCP (6 bits).
    pub dscp: u8,
    /// ECN (2 bits).
    pub ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't fragment.
    pub dont_frag: bool,
    /// More fragments.
    pub more_frags: bool,
    /// Fragment offset in bytes (a multiple of 8).
    pub frag_offset: u16,
    /// Options (raw bytes, a multiple of 4 long).
    pub options: HeaderOptions,
}

impl Repr {
    /// Parses a packet: `check_len`, then the checksum (`BadChecksum`).
    /// The reserved flag is ignored.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.payload().len(),
            ttl: packet.ttl(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
            options: HeaderOptions::new(packet.options())?,
        })
    }

    /// The header length.
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// Header plus payload.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Writes the header and fills its checksum; the payload is left as it
    /// is. The buffer must hold [`header_len`](Self::header_len) bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let header_len = self.header_len();
        packet.set_version(4);
        packet.set_header_len(header_len);
        packet.set_dscp(self.dscp);
        packet.set_ecn(self.ecn);
        // `payload_len` is documented to fit with the header in 16 bits.
        packet.set_total_len((header_len + self.payload_len) as u16);
        packet.set_ident(self.ident);
        write_u16(packet.buffer.as_mut(), field::FLG_OFF, 0);
        packet.set_dont_frag(self.dont_frag);
        packet.set_more_frags(self.more_frags);
        packet.set_frag_offset(self.frag_offset);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet
            .options_mut()
            .copy_from_slice(self.options.as_bytes());
        packet.fill_checksum();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::testdata;
    use proptest::prelude::*;

    #[test]
    fn parse_tcp_syn_header() {
        let p = Packet::new_checked(&testdata::TCP_SYN[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!((p.dscp(), p.ecn()), (0, 0));
        assert_eq!(p.total_len(), 60);
        assert_eq!(p.ident(), 0x04d2);
        assert!(p.dont_frag() && !p.more_frags() && !p.reserved_flag());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment() && !p.is_first_fragment() && !p.is_non_initial_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::Tcp);
        assert_eq!(p.checksum(), 0x49ab);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 51, 100, 10));
        assert!(p.verify_checksum());
        assert_eq!(p.options(), &[] as &[u8]);
        assert_eq!(p.payload().len(), 40);

        let repr = Repr::parse(&p).unwrap();
        let mut out = testdata::TCP_SYN;
        out[..20].fill(0);
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, testdata::TCP_SYN);
    }

    #[test]
    fn options_are_exposed_and_round_trip() {
        let p = Packet::new_checked(&testdata::IPV4_ROUTER_ALERT_UDP[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(p.payload().len(), 10);
        let repr = Repr::parse(&p).unwrap();
        assert_eq!(repr.header_len(), 24);
        let mut out = [0u8; 34];
        out[24..].copy_from_slice(&testdata::IPV4_ROUTER_ALERT_UDP[24..]);
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, testdata::IPV4_ROUTER_ALERT_UDP);
    }

    #[test]
    fn etherparse_agrees() {
        for pkt in [
            &testdata::TCP_SYN[..],
            &testdata::UDP_DNS_QUERY[..],
            &testdata::IPV4_ROUTER_ALERT_UDP[..],
        ] {
            let (h, _) = etherparse::Ipv4Header::from_slice(pkt).unwrap();
            let p = Packet::new_checked(pkt).unwrap();
            assert_eq!(h.header_len(), p.header_len());
            assert_eq!(h.total_len, p.total_len());
            assert_eq!(h.identification, p.ident());
            assert_eq!(h.dont_fragment, p.dont_frag());
            assert_eq!(h.time_to_live, p.ttl());
            assert_eq!(h.protocol.0, p.protocol().number());
            assert_eq!(h.source, p.src_addr().octets());
            assert_eq!(h.destination, p.dst_addr().octets());
            assert_eq!(h.options.as_slice(), p.options());
            assert_eq!(h.calc_header_checksum(), p.checksum());
            // And etherparse reads what we emit.
            let repr = Repr::parse(&p).unwrap();
            let mut out = [0u8; 60];
            repr.emit(&mut Packet::new_unchecked(&mut out[..]));
            let (h2, _) = etherparse::Ipv4Header::from_slice(&out).unwrap();
            assert_eq!(h2, h);
        }
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut padded = [0u8; 80];
        padded[..57].copy_from_slice(&testdata::UDP_DNS_QUERY);
        let p = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload().len(), 57 - 20);
        assert_eq!(Repr::parse(&p).unwrap().payload_len, 37);
    }

    #[test]
    fn rejects_bad_headers() {
        let good = testdata::UDP_DNS_QUERY;
        let mut b = good;
        b[0] = 0x65;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::BadVersion));
        b[0] = 0x44;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
        b[0] = 0x4F; // 60-byte header in a 57-byte buffer
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Truncated));
        let mut b = good;
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
        b[2..4].copy_from_slice(&58u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Truncated));
        let mut b = good;
        b[11] ^= 1;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..]).unwrap()),
            Err(Error::BadChecksum)
        );
    }

    #[test]
    fn truncated_at_every_length() {
        for pkt in [
            &testdata::TCP_SYN[..],
            &testdata::IPV4_ROUTER_ALERT_UDP[..],
            &testdata::IPIP_DNS_QUERY[..],
        ] {
            for n in 0..pkt.len() {
                assert_eq!(
                    Packet::new_checked(&pkt[..n]).err(),
                    Some(Error::Truncated),
                    "len {n}"
                );
            }
            assert!(Packet::new_checked(pkt).is_ok());
        }
    }

    #[test]
    fn header_only_check_clamps_payload() {
        // A quoted header: total length 60, 28 bytes present.
        let p = Packet::new_unchecked(&testdata::TCP_SYN[..28]);
        assert_eq!(p.check_len(), Err(Error::Truncated));
        assert_eq!(p.check_header_len(), Ok(()));
        assert_eq!(p.payload(), &testdata::TCP_SYN[20..28]);
    }

    #[test]
    fn fragments() {
        let mut b = testdata::UDP_DNS_QUERY;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_more_frags(true);
        assert!(p.is_fragment() && p.is_first_fragment() && !p.is_non_initial_fragment());
        p.set_frag_offset(1480);
        assert_eq!(p.frag_offset(), 1480);
        assert!(p.is_fragment() && !p.is_first_fragment() && p.is_non_initial_fragment());
        p.set_more_frags(false);
        assert!(p.is_fragment() && !p.is_first_fragment() && p.is_non_initial_fragment());
        assert!(!p.dont_frag());
    }

    #[test]
    fn decrement_ttl_to_zero() {
        let mut b = testdata::IPV4_ROUTER_ALERT_UDP; // TTL 1
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.decrement_ttl(), Some(0));
        assert!(p.verify_checksum());
        assert_eq!(p.decrement_ttl(), None);
        assert_eq!(p.ttl(), 0);
        assert!(p.verify_checksum());
    }

    pub(crate) fn arb_repr(max_payload: usize) -> impl Strategy<Value = Repr> {
        (
            (
                any::<u32>(),
                any::<u32>(),
                any::<u8>(),
                0..=max_payload,
                any::<u8>(),
            ),
            (
                0u8..64,
                0u8..4,
                any::<u16>(),
                any::<bool>(),
                any::<bool>(),
                0u16..8192,
            ),
            prop_oneof![
                Just(Vec::new()),
                (1usize..=10).prop_flat_map(|w| proptest::collection::vec(any::<u8>(), w * 4)),
            ],
        )
            .prop_map(
                |((s, d, p, len, ttl), (dscp, ecn, ident, df, mf, off), opts)| Repr {
                    src_addr: Ipv4Addr::from(s),
                    dst_addr: Ipv4Addr::from(d),
                    protocol: IpProtocol::from(p),
                    payload_len: len,
                    ttl,
                    dscp,
                    ecn,
                    ident,
                    dont_frag: df,
                    more_frags: mf,
                    frag_offset: off << 3,
                    options: HeaderOptions::new(&opts).unwrap(),
                },
            )
    }

    /// A field change for the incremental checksum property.
    #[derive(Clone, Copy, Debug)]
    enum Change {
        Src(u32),
        Dst(u32),
        Ttl(u8),
        DecTtl,
        Ident(u16),
        Df(bool),
        Tos(u8),
        TotalLen(u16),
    }

    fn arb_change() -> impl Strategy<Value = Change> {
        let edge32 = prop_oneof![
            Just(0u32),
            Just(u32::MAX),
            Just(0xFFFF_0000),
            Just(0x0000_FFFF),
            any::<u32>()
        ];
        let edge16 = prop_oneof![Just(0u16), Just(u16::MAX), any::<u16>()];
        prop_oneof![
            edge32.clone().prop_map(Change::Src),
            edge32.prop_map(Change::Dst),
            any::<u8>().prop_map(Change::Ttl),
            Just(Change::DecTtl),
            edge16.clone().prop_map(Change::Ident),
            any::<bool>().prop_map(Change::Df),
            any::<u8>().prop_map(Change::Tos),
            edge16.prop_map(Change::TotalLen),
        ]
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(repr in arb_repr(200)) {
            let mut b = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut b[..]));
            let p = Packet::new_checked(&b[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p), Ok(repr));
        }

        /// Every incremental setter leaves the same checksum as a full
        /// recompute, for any header, over several successive changes.
        #[test]
        fn incremental_equals_recompute(
            repr in arb_repr(0),
            edge in prop_oneof![Just(None), Just(Some(0x0000u16)), Just(Some(0xFFFF))],
            changes in proptest::collection::vec(arb_change(), 1..6),
        ) {
            let mut b = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut b[..]));
            let mut p = Packet::new_unchecked(&mut b[..]);
            if let Some(c) = edge {
                // Start from a header whose checksum field is 0x0000, or its
                // non-canonical twin 0xFFFF (both verify): pick the ident
                // that makes the rest of the header sum to 0xFFFF.
                p.set_ident(0);
                p.fill_checksum();
                let ident = checksum::combine(&[0xFFFF, p.checksum()]);
                p.set_ident(ident);
                p.fill_checksum();
                prop_assert_eq!(p.checksum(), 0);
                p.set_checksum(c);
                prop_assert!(p.verify_checksum());
            }
            for change in changes {
                match change {
                    Change::Src(a) => p.set_src_addr_incremental(Ipv4Addr::from(a)),
                    Change::Dst(a) => p.set_dst_addr_incremental(Ipv4Addr::from(a)),
                    Change::Ttl(t) => p.set_ttl_incremental(t),
                    Change::DecTtl => { let _ = p.decrement_ttl(); }
                    Change::Ident(i) => p.set_ident_incremental(i),
                    Change::Df(on) => p.set_dont_frag_incremental(on),
                    Change::Tos(t) => p.set_tos_incremental(t),
                    Change::TotalLen(l) => p.set_total_len_incremental(l),
                }
                let incremental = p.checksum();
                prop_assert!(p.verify_checksum(), "{:?}", change);
                p.fill_checksum();
                // Equal, except that a change which leaves the header as it
                // was (decrementing TTL 0) keeps a non-canonical 0xFFFF start
                // as it is: 0x0000 and 0xFFFF are the same one's complement
                // zero and both verify.
                let same_zero = matches!((incremental, p.checksum()), (0xFFFF, 0) | (0, 0xFFFF));
                prop_assert!(incremental == p.checksum() || same_zero, "{:?}: {:#06x} vs {:#06x}", change, incremental, p.checksum());
            }
        }

        #[test]
        fn verify_after_decrement_ttl(repr in arb_repr(0)) {
            let mut b = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut b[..]));
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            let before = p.ttl();
            let after = p.decrement_ttl();
            prop_assert_eq!(after, before.checked_sub(1));
            prop_assert!(p.verify_checksum());
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let p = Packet::new_unchecked(&bytes[..]);
            if p.check_header_len().is_ok() {
                let _ = (p.options(), p.payload(), p.verify_checksum(), p.src_addr(), p.dst_addr());
            }
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = Repr::parse(&p);
            }
        }
    }
}
