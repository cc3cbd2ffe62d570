//! ICMP for IPv4 (RFC 792): echo, and the error messages the proxy relays,
//! translates or sends — destination unreachable (with RFC 1191's next-hop
//! MTU for "fragmentation needed"), time exceeded, parameter problem.
//!
//! ```text
//!  0      8      16            32
//! +------+------+-------------+
//! | Type | Code |  Checksum   |
//! +------+------+-------------+
//! |   rest of header (4 bytes) |  echo: ident, seq; frag needed: unused, MTU;
//! +---------------------------+  parameter problem: pointer, unused
//! | data …                    |  errors: the offending IP header + ≥ 8 bytes
//! ```
//!
//! A view is made over the IP payload; the checksum covers all of it.

use super::checksum;
use super::ipv4::Packet as Ipv4Packet;
use super::{read_u16, write_u16, Error, Result};

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQNO: usize = 6;
    pub const UNUSED: usize = 4;
    pub const NEXT_HOP_MTU: usize = 6;
    pub const POINTER: usize = 4;
}

/// The header length (type, code, checksum, rest of header).
pub const HEADER_LEN: usize = 8;

/// How much of the offending datagram's payload an error must quote at
/// least (RFC 792: "the first 64 bits"), enough for the ports.
pub const MIN_QUOTED_PAYLOAD: usize = 8;

/// The ICMP type.
///
/// Build it with `From<u8>`, which never yields `Unknown` for a named value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Message {
    /// 0.
    EchoReply,
    /// 3.
    DstUnreachable,
    /// 4 (deprecated by RFC 6633, still an error message to recognise).
    SourceQuench,
    /// 5.
    Redirect,
    /// 8.
    EchoRequest,
    /// 9.
    RouterAdvert,
    /// 10.
    RouterSolicit,
    /// 11.
    TimeExceeded,
    /// 12.
    ParamProblem,
    /// 13.
    Timestamp,
    /// 14.
    TimestampReply,
    /// Any other type.
    Unknown(u8),
}

impl Message {
    /// The wire value.
    #[inline]
    pub const fn number(self) -> u8 {
        match self {
            Message::EchoReply => 0,
            Message::DstUnreachable => 3,
            Message::SourceQuench => 4,
            Message::Redirect => 5,
            Message::EchoRequest => 8,
            Message::RouterAdvert => 9,
            Message::RouterSolicit => 10,
            Message::TimeExceeded => 11,
            Message::ParamProblem => 12,
            Message::Timestamp => 13,
            Message::TimestampReply => 14,
            Message::Unknown(n) => n,
        }
    }

    /// An error message, which quotes the datagram it is about (and about
    /// which no ICMP error may be sent, RFC 1812 §4.3.2.7).
    #[inline]
    pub const fn is_error(self) -> bool {
        matches!(
            self,
            Message::DstUnreachable
                | Message::SourceQuench
                | Message::Redirect
                | Message::TimeExceeded
                | Message::ParamProblem
        )
    }
}

impl From<u8> for Message {
    #[inline]
    fn from(n: u8) -> Self {
        match n {
            0 => Message::EchoReply,
            3 => Message::DstUnreachable,
            4 => Message::SourceQuench,
            5 => Message::Redirect,
            8 => Message::EchoRequest,
            9 => Message::RouterAdvert,
            10 => Message::RouterSolicit,
            11 => Message::TimeExceeded,
            12 => Message::ParamProblem,
            13 => Message::Timestamp,
            14 => Message::TimestampReply,
            n => Message::Unknown(n),
        }
    }
}

/// Destination unreachable codes (RFC 792, RFC 1122 §3.2.2.1, RFC 1812
/// §5.2.7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DstUnreachable {
    /// 0.
    NetUnreachable,
    /// 1; also what a Time Exceeded from inside a tunnel becomes (RFC 2003 §4.1).
    HostUnreachable,
    /// 2.
    ProtoUnreachable,
    /// 3.
    PortUnreachable,
    /// 4: fragmentation needed and DF set; carries the next-hop MTU (RFC 1191).
    FragRequired,
    /// 5.
    SrcRouteFailed,
    /// 6.
    DstNetUnknown,
    /// 7.
    DstHostUnknown,
    /// 8.
    SrcHostIsolated,
    /// 9.
    NetProhibited,
    /// 10.
    HostProhibited,
    /// 11.
    NetUnreachToS,
    /// 12.
    HostUnreachToS,
    /// 13: communication administratively prohibited (RFC 5508 REQ-8: a
    /// NAT that cannot create a mapping answers this).
    CommProhibited,
    /// 14.
    HostPrecedViol,
    /// 15.
    PrecedCutoff,
    /// Any other code.
    Unknown(u8),
}

impl From<u8> for DstUnreachable {
    #[inline]
    fn from(n: u8) -> Self {
        use DstUnreachable::*;
        match n {
            0 => NetUnreachable,
            1 => HostUnreachable,
            2 => ProtoUnreachable,
            3 => PortUnreachable,
            4 => FragRequired,
            5 => SrcRouteFailed,
            6 => DstNetUnknown,
            7 => DstHostUnknown,
            8 => SrcHostIsolated,
            9 => NetProhibited,
            10 => HostProhibited,
            11 => NetUnreachToS,
            12 => HostUnreachToS,
            13 => CommProhibited,
            14 => HostPrecedViol,
            15 => PrecedCutoff,
            n => Unknown(n),
        }
    }
}

impl From<DstUnreachable> for u8 {
    #[inline]
    fn from(c: DstUnreachable) -> u8 {
        use DstUnreachable::*;
        match c {
            NetUnreachable => 0,
            HostUnreachable => 1,
            ProtoUnreachable => 2,
            PortUnreachable => 3,
            FragRequired => 4,
            SrcRouteFailed => 5,
            DstNetUnknown => 6,
            DstHostUnknown => 7,
            SrcHostIsolated => 8,
            NetProhibited => 9,
            HostProhibited => 10,
            NetUnreachToS => 11,
            HostUnreachToS => 12,
            CommProhibited => 13,
            HostPrecedViol => 14,
            PrecedCutoff => 15,
            Unknown(n) => n,
        }
    }
}

/// Time exceeded codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeExceeded {
    /// 0: TTL exceeded in transit.
    TtlExpired,
    /// 1: fragment reassembly time exceeded.
    FragExpired,
    /// Any other code.
    Unknown(u8),
}

impl From<u8> for TimeExceeded {
    #[inline]
    fn from(n: u8) -> Self {
        match n {
            0 => TimeExceeded::TtlExpired,
            1 => TimeExceeded::FragExpired,
            n => TimeExceeded::Unknown(n),
        }
    }
}

impl From<TimeExceeded> for u8 {
    #[inline]
    fn from(c: TimeExceeded) -> u8 {
        match c {
            TimeExceeded::TtlExpired => 0,
            TimeExceeded::FragExpired => 1,
            TimeExceeded::Unknown(n) => n,
        }
    }
}

/// A view of an ICMPv4 message.
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

    /// `Truncated` unless the 8-byte header fits. (The quoted datagram of
    /// an error is checked by [`embedded`](Self::embedded).)
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Type.
    #[inline]
    pub fn msg_type(&self) -> Message {
        Message::from(self.buffer.as_ref()[field::TYPE])
    }

    /// Code.
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo identifier (echo request/reply).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo sequence number (echo request/reply).
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Next-hop MTU of a "fragmentation needed" (RFC 1191; 0 from
    /// routers that predate it).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }

    /// The octet a parameter problem points at.
    #[inline]
    pub fn pointer(&self) -> u8 {
        self.buffer.as_ref()[field::POINTER]
    }

    /// The four bytes after the checksum, whatever the type.
    #[inline]
    pub fn rest_of_header(&self) -> [u8; 4] {
        let d = self.buffer.as_ref();
        [d[4], d[5], d[6], d[7]]
    }

    /// The data after the 8-byte header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// The datagram an error message quotes, as an IPv4 view that passed
    /// [`Ipv4Packet::check_header_len`] (its total length counts bytes
    /// that were not quoted, so `check_len` would fail; its `payload()` is
    /// the quoted part, at least 8 bytes). `Unsupported` for a non-error
    /// type; the quoted header's own errors; `Malformed` if its total
    /// length claims fewer than 8 payload bytes; `Truncated` if fewer than 8
    /// payload bytes are quoted (RFC 792), since the ports are needed to
    /// match a flow.
    #[inline]
    pub fn embedded(&self) -> Result<Ipv4Packet<&[u8]>> {
        if !self.msg_type().is_error() {
            return Err(Error::Unsupported);
        }
        check_quoted(self.payload())?;
        Ok(Ipv4Packet::new_unchecked(self.payload()))
    }

    /// Whether the checksum over the whole message verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xFFFF
    }
}

/// Checks a quoted datagram: an IPv4 header, a total length that claims at
/// least 8 payload bytes (`Malformed`), and those 8 bytes quoted
/// (`Truncated`). Then the quoted view's `payload()` has at least 8 bytes.
#[inline]
fn check_quoted(data: &[u8]) -> Result<()> {
    let ip = Ipv4Packet::new_unchecked(data);
    ip.check_header_len()?;
    let need = ip.header_len() + MIN_QUOTED_PAYLOAD;
    if usize::from(ip.total_len()) < need {
        return Err(Error::Malformed);
    }
    if data.len() < need {
        return Err(Error::Truncated);
    }
    Ok(())
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the type.
    #[inline]
    pub fn set_msg_type(&mut self, t: Message) {
        self.buffer.as_mut()[field::TYPE] = t.number();
    }

    /// Sets the code.
    #[inline]
    pub fn set_msg_code(&mut self, code: u8) {
        self.buffer.as_mut()[field::CODE] = code;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT, v);
    }

    /// Sets the echo sequence number.
    #[inline]
    pub fn set_echo_seq_no(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO, v);
    }

    /// Sets the next-hop MTU (and zeroes the unused half-word before it).
    #[inline]
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        write_u16(self.buffer.as_mut(), field::UNUSED, 0);
        write_u16(self.buffer.as_mut(), field::NEXT_HOP_MTU, mtu);
    }

    /// Sets the parameter problem pointer (and zeroes the unused bytes).
    #[inline]
    pub fn set_pointer(&mut self, pointer: u8) {
        self.set_rest_of_header([pointer, 0, 0, 0]);
    }

    /// Sets the four bytes after the checksum.
    #[inline]
    pub fn set_rest_of_header(&mut self, rest: [u8; 4]) {
        self.buffer.as_mut()[4..HEADER_LEN].copy_from_slice(&rest);
    }

    /// Sets the echo identifier and updates the checksum incrementally
    /// (RFC 1624), as a NAT mapping the identifier like a port does
    /// (RFC 5508 REQ-1).
    #[inline]
    pub fn set_echo_ident_incremental(&mut self, ident: u16) {
        let old = self.echo_ident();
        self.set_echo_ident(ident);
        self.set_checksum(checksum::update16(self.checksum(), old, ident));
    }

    /// Computes the checksum over the whole message and writes it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.buffer.as_ref());
        self.set_checksum(checksum::finish(sum));
    }

    /// The data after the header, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// The quoted datagram, mutable, checked as [`embedded`](Self::embedded)
    /// checks it: for rewriting the quoted addresses and ports of a NAT'd
    /// flow (RFC 5508 REQ-3). Fix its IP checksum with its incremental
    /// setters, then this message's checksum with
    /// [`fill_checksum`](Self::fill_checksum).
    #[inline]
    pub fn embedded_mut(&mut self) -> Result<Ipv4Packet<&mut [u8]>> {
        if !self.msg_type().is_error() {
            return Err(Error::Unsupported);
        }
        check_quoted(self.payload())?;
        Ok(Ipv4Packet::new_unchecked(self.payload_mut()))
    }
}

/// The meaning of the ICMP messages this module builds and parses. The
/// data is borrowed: the echo data, or for errors the quoted datagram
/// (an IPv4 header and at least 8 more bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Repr<'a> {
    /// Echo request (8/0).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Echo reply (0/0).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Destination unreachable (3/*).
    DstUnreachable {
        /// Code.
        reason: DstUnreachable,
        /// Next-hop MTU for `FragRequired` (RFC 1191); the same two bytes,
        /// normally 0, for other codes.
        next_hop_mtu: u16,
        /// The quoted datagram.
        data: &'a [u8],
    },
    /// Time exceeded (11/*).
    TimeExceeded {
        /// Code.
        reason: TimeExceeded,
        /// The quoted datagram.
        data: &'a [u8],
    },
    /// Parameter problem (12/*).
    ParamProblem {
        /// Code (0: pointer indicates the error).
        code: u8,
        /// The octet in error.
        pointer: u8,
        /// The quoted datagram.
        data: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Parses a checked message: checksum (`BadChecksum`), a known type and
    /// echo code 0 (`Unsupported` otherwise), and for errors a valid quoted
    /// datagram ([`Packet::embedded`]'s errors).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        let data: &'a [u8] = &packet.buffer.as_ref()[HEADER_LEN..];
        let code = packet.msg_code();
        let repr = match packet.msg_type() {
            Message::EchoRequest if code == 0 => Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            },
            Message::EchoReply if code == 0 => Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            },
            Message::DstUnreachable => {
                check_quoted(data)?;
                Repr::DstUnreachable {
                    reason: code.into(),
                    next_hop_mtu: packet.next_hop_mtu(),
                    data,
                }
            }
            Message::TimeExceeded => {
                check_quoted(data)?;
                Repr::TimeExceeded {
                    reason: code.into(),
                    data,
                }
            }
            Message::ParamProblem => {
                check_quoted(data)?;
                Repr::ParamProblem {
                    code,
                    pointer: packet.pointer(),
                    data,
                }
            }
            _ => return Err(Error::Unsupported),
        };
        Ok(repr)
    }

    /// The data after the header.
    #[inline]
    pub const fn data(&self) -> &'a [u8] {
        match *self {
            Repr::EchoRequest { data, .. }
            | Repr::EchoReply { data, .. }
            | Repr::DstUnreachable { data, .. }
            | Repr::TimeExceeded { data, .. }
            | Repr::ParamProblem { data, .. } => data,
        }
    }

    /// 8.
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus data.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data().len()
    }

    /// Writes the message and fills the checksum. The buffer must be exactly
    /// [`buffer_len`](Self::buffer_len) bytes (the checksum covers it all).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        match *self {
            Repr::EchoRequest { ident, seq_no, .. } | Repr::EchoReply { ident, seq_no, .. } => {
                let t = if matches!(self, Repr::EchoRequest { .. }) {
                    Message::EchoRequest
                } else {
                    Message::EchoReply
                };
                packet.set_msg_type(t);
                packet.set_msg_code(0);
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
            }
            Repr::DstUnreachable {
                reason,
                next_hop_mtu,
                ..
            } => {
                packet.set_msg_type(Message::DstUnreachable);
                packet.set_msg_code(reason.into());
                packet.set_next_hop_mtu(next_hop_mtu);
            }
            Repr::TimeExceeded { reason, .. } => {
                packet.set_msg_type(Message::TimeExceeded);
                packet.set_msg_code(reason.into());
                packet.set_rest_of_header([0; 4]);
            }
            Repr::ParamProblem { code, pointer, .. } => {
                packet.set_msg_type(Message::ParamProblem);
                packet.set_msg_code(code);
                packet.set_pointer(pointer);
            }
        }
        packet.payload_mut().copy_from_slice(self.data());
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ip::IpProtocol;
    use crate::wire::ipv4::Repr as Ipv4Repr;
    use crate::wire::testdata;
    use core::net::Ipv4Addr;
    use proptest::prelude::*;

    fn icmp_of(ip: &[u8]) -> &[u8] {
        Ipv4Packet::new_checked(ip).unwrap().payload_slice()
    }

    #[test]
    fn parse_echo_request_and_reply() {
        let frame = &testdata::VLAN_ICMP_FRAME[18..];
        let p = Packet::new_checked(icmp_of(frame)).unwrap();
        assert_eq!(p.msg_type(), Message::EchoRequest);
        assert_eq!(
            (p.msg_code(), p.echo_ident(), p.echo_seq_no()),
            (0, 0x1234, 1)
        );
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), b"abcdefgh");
        assert_eq!(p.embedded().err(), Some(Error::Unsupported));
        let repr = Repr::parse(&p).unwrap();
        assert_eq!(
            repr,
            Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: b"abcdefgh"
            }
        );
        let mut out = [0u8; 16];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(&out[..], icmp_of(frame));

        let reply = Packet::new_checked(icmp_of(&testdata::ICMP_ECHO_REPLY)).unwrap();
        let repr = Repr::parse(&reply).unwrap();
        assert_eq!(
            repr,
            Repr::EchoReply {
                ident: 0x1234,
                seq_no: 1,
                data: b"abcdefgh"
            }
        );
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(&out[..], icmp_of(&testdata::ICMP_ECHO_REPLY));
    }

    #[test]
    fn parse_frag_needed_with_embedded_syn() {
        let icmp = icmp_of(&testdata::ICMP_FRAG_NEEDED);
        let p = Packet::new_checked(icmp).unwrap();
        assert_eq!(p.msg_type(), Message::DstUnreachable);
        assert_eq!(
            DstUnreachable::from(p.msg_code()),
            DstUnreachable::FragRequired
        );
        assert_eq!(p.next_hop_mtu(), 1480);
        assert!(p.verify_checksum());
        let inner = p.embedded().unwrap();
        assert_eq!(inner.src_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(inner.dst_addr(), Ipv4Addr::new(198, 51, 100, 10));
        assert_eq!(inner.protocol(), IpProtocol::Tcp);
        assert_eq!(inner.total_len(), 60); // of the original, not the quote
        assert!(inner.verify_checksum());
        assert_eq!(inner.payload(), &testdata::TCP_SYN[20..28]);
        let ports = inner.payload();
        assert_eq!(u16::from_be_bytes([ports[0], ports[1]]), 40000);
        let repr = Repr::parse(&p).unwrap();
        assert_eq!(
            repr,
            Repr::DstUnreachable {
                reason: DstUnreachable::FragRequired,
                next_hop_mtu: 1480,
                data: &testdata::TCP_SYN[..28]
            }
        );
        let mut out = [0u8; 36];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(&out[..], icmp);
    }

    #[test]
    fn parse_time_exceeded() {
        let icmp = icmp_of(&testdata::ICMP_TIME_EXCEEDED);
        let p = Packet::new_checked(icmp).unwrap();
        let repr = Repr::parse(&p).unwrap();
        assert_eq!(
            repr,
            Repr::TimeExceeded {
                reason: TimeExceeded::TtlExpired,
                data: &testdata::UDP_DNS_QUERY[..28]
            }
        );
        assert_eq!(p.embedded().unwrap().protocol(), IpProtocol::Udp);
        let mut out = [0u8; 36];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(&out[..], icmp);
    }

    #[test]
    fn etherparse_agrees() {
        use etherparse::icmpv4::DestUnreachableHeader;
        let s = etherparse::Icmpv4Slice::from_slice(icmp_of(&testdata::ICMP_FRAG_NEEDED)).unwrap();
        match s.icmp_type() {
            etherparse::Icmpv4Type::DestinationUnreachable(
                DestUnreachableHeader::FragmentationNeeded { next_hop_mtu },
            ) => assert_eq!(next_hop_mtu, 1480),
            other => panic!("{other:?}"),
        }
        let p = Packet::new_checked(icmp_of(&testdata::ICMP_FRAG_NEEDED)).unwrap();
        assert_eq!(s.checksum(), p.checksum());
        assert_eq!(s.icmp_type().calc_checksum(s.payload()), p.checksum());
        let s = etherparse::Icmpv4Slice::from_slice(icmp_of(&testdata::ICMP_ECHO_REPLY)).unwrap();
        match s.icmp_type() {
            etherparse::Icmpv4Type::EchoReply(h) => assert_eq!((h.id, h.seq), (0x1234, 1)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parameter_problem_round_trip() {
        let repr = Repr::ParamProblem {
            code: 0,
            pointer: 9,
            data: &testdata::TCP_SYN[..28],
        };
        let mut out = [0u8; 36];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        let p = Packet::new_checked(&out[..]).unwrap();
        assert_eq!(
            (p.msg_type(), p.pointer(), p.rest_of_header()),
            (Message::ParamProblem, 9, [9, 0, 0, 0])
        );
        assert_eq!(Repr::parse(&p), Ok(repr));
    }

    #[test]
    fn rewrite_embedded_for_nat() {
        // RFC 5508 REQ-3: rewrite the quoted source, fix both checksums.
        let mut icmp = icmp_of(&testdata::ICMP_FRAG_NEEDED).to_vec();
        let mut p = Packet::new_checked(&mut icmp[..]).unwrap();
        let mut inner = p.embedded_mut().unwrap();
        inner.set_src_addr_incremental(Ipv4Addr::new(203, 0, 113, 77));
        assert!(inner.verify_checksum());
        p.fill_checksum();
        let repr = Repr::parse(&Packet::new_checked(&icmp[..]).unwrap()).unwrap();
        let quoted = Ipv4Packet::new_unchecked(repr.data());
        assert_eq!(quoted.src_addr(), Ipv4Addr::new(203, 0, 113, 77));
    }

    #[test]
    fn echo_ident_incremental() {
        let mut icmp = icmp_of(&testdata::ICMP_ECHO_REPLY).to_vec();
        let mut p = Packet::new_checked(&mut icmp[..]).unwrap();
        for ident in [0, 0xFFFF, 0x8000, 1] {
            p.set_echo_ident_incremental(ident);
            assert!(p.verify_checksum());
            let c = p.checksum();
            p.fill_checksum();
            assert_eq!(c, p.checksum());
        }
    }

    #[test]
    fn rejects() {
        let icmp = icmp_of(&testdata::ICMP_FRAG_NEEDED);
        // Too little quoted: header + 7 bytes.
        let mut short = icmp[..35].to_vec();
        Packet::new_unchecked(&mut short[..]).fill_checksum();
        let p = Packet::new_checked(&short[..]).unwrap();
        assert_eq!(p.embedded().err(), Some(Error::Truncated));
        assert_eq!(Repr::parse(&p), Err(Error::Truncated));
        // A quoted non-IPv4 header.
        let mut bad = icmp.to_vec();
        bad[8] = 0x65;
        Packet::new_unchecked(&mut bad[..]).fill_checksum();
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bad[..]).unwrap()),
            Err(Error::BadVersion)
        );
        // Bad checksum.
        let mut bad = icmp.to_vec();
        bad[3] ^= 1;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bad[..]).unwrap()),
            Err(Error::BadChecksum)
        );
        // Unknown type, and echo with a code.
        for (t, c) in [(42u8, 0u8), (8, 1)] {
            let mut b = icmp_of(&testdata::ICMP_ECHO_REPLY).to_vec();
            b[0] = t;
            b[1] = c;
            Packet::new_unchecked(&mut b[..]).fill_checksum();
            assert_eq!(
                Repr::parse(&Packet::new_checked(&b[..]).unwrap()),
                Err(Error::Unsupported)
            );
        }
    }

    /// Fuzz regression (icmpv4 target): a quoted header whose total length
    /// (0) is below its header length left `embedded().payload()` empty.
    #[test]
    fn quoted_total_len_must_cover_eight_bytes() {
        let crash: [u8; 36] = [
            0x0b, 0x00, 0xcb, 0x39, 0x00, 0x00, 0x00, 0x00, 0x45, 0x45, 0x00, 0x00, 0x39, 0x42,
            0x10, 0xff, 0xbf, 0xee, 0x30, 0xa4, 0xc0, 0x00, 0x02, 0x01, 0xc6, 0x33, 0x64, 0x35,
            0xcf, 0x08, 0x00, 0x35, 0x00, 0x25, 0x5a, 0x63,
        ];
        let p = Packet::new_checked(&crash[..]).unwrap();
        assert_eq!(p.embedded().err(), Some(Error::Malformed));
        let mut b = crash;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.embedded_mut().err(), Some(Error::Malformed));
        // 27 claims 7 payload bytes: still too few; 28 is enough.
        for (total, ok) in [(27u16, false), (28, true)] {
            b[10..12].copy_from_slice(&total.to_be_bytes());
            let p = Packet::new_checked(&b[..]).unwrap();
            assert_eq!(
                p.embedded().map(|e| e.payload().len()).ok(),
                ok.then_some(8)
            );
        }
    }

    #[test]
    fn truncated_at_every_length() {
        let icmp = icmp_of(&testdata::ICMP_FRAG_NEEDED);
        for n in 0..icmp.len() {
            match Packet::new_checked(&icmp[..n]) {
                Err(e) => assert!(n < 8 && e == Error::Truncated),
                Ok(p) => {
                    assert!(p.embedded().is_err(), "len {n}");
                    assert!(Repr::parse(&p).is_err());
                }
            }
        }
    }

    #[test]
    fn codes_round_trip() {
        for n in 0..=u8::MAX {
            assert_eq!(u8::from(DstUnreachable::from(n)), n);
            assert_eq!(u8::from(TimeExceeded::from(n)), n);
            assert_eq!(Message::from(n).number(), n);
        }
    }

    fn arb_quoted() -> impl Strategy<Value = Vec<u8>> {
        (
            crate::wire::ipv4::tests::arb_repr(40),
            proptest::collection::vec(any::<u8>(), 8..48),
        )
            .prop_map(|(mut ip, rest): (Ipv4Repr, Vec<u8>)| {
                // The original datagram had at least the 8 quoted bytes.
                ip.payload_len = ip.payload_len.max(8);
                let mut b = vec![0u8; ip.header_len()];
                ip.emit(&mut Ipv4Packet::new_unchecked(&mut b[..]));
                b.extend_from_slice(&rest);
                b
            })
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(
            kind in 0u8..5, a in any::<u16>(), b in any::<u16>(), code in any::<u8>(),
            echo_data in proptest::collection::vec(any::<u8>(), 0..32),
            quoted in arb_quoted(),
        ) {
            let repr = match kind {
                0 => Repr::EchoRequest { ident: a, seq_no: b, data: &echo_data },
                1 => Repr::EchoReply { ident: a, seq_no: b, data: &echo_data },
                2 => Repr::DstUnreachable { reason: code.into(), next_hop_mtu: a, data: &quoted },
                3 => Repr::TimeExceeded { reason: code.into(), data: &quoted },
                _ => Repr::ParamProblem { code, pointer: b as u8, data: &quoted },
            };
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p), Ok(repr));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let mut bytes = bytes;
            if let Ok(mut p) = Packet::new_checked(&mut bytes[..]) {
                let _ = (p.msg_type(), p.rest_of_header(), p.verify_checksum());
                if let Ok(e) = p.embedded() {
                    let _ = (e.payload(), e.options(), e.src_addr(), e.protocol());
                }
                if let Ok(mut e) = p.embedded_mut() {
                    e.set_src_addr_incremental(Ipv4Addr::LOCALHOST);
                    let _ = e.payload_mut().len();
                }
            }
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = Repr::parse(&p);
            }
        }
    }
}
