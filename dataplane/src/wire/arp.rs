//! ARP (RFC 826) for Ethernet and IPv4 only, the one pair the proxy answers.
//!
//! ```text
//!  0     2     4    5    6     8         14        18        24        28
//! +-----+-----+----+----+-----+---------+---------+---------+---------+
//! |htype|ptype|hlen|plen| oper|   SHA   |   SPA   |   THA   |   TPA   |
//! +-----+-----+----+----+-----+---------+---------+---------+---------+
//! ```

use core::net::Ipv4Addr;

use super::ethernet::{Address as EthernetAddress, EtherType};
use super::{read_u16, write_u16, Error, Result};

mod field {
    use core::ops::Range;

    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
    pub const LEN: usize = 28;
}

/// Hardware type Ethernet.
const HTYPE_ETHERNET: u16 = 1;

/// The ARP operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// 1.
    Request,
    /// 2.
    Reply,
    /// Anything else (RARP, InARP…).
    Unknown(u16),
}

impl From<u16> for Operation {
    #[inline]
    fn from(n: u16) -> Self {
        match n {
            1 => Operation::Request,
            2 => Operation::Reply,
            n => Operation::Unknown(n),
        }
    }
}

impl From<Operation> for u16 {
    #[inline]
    fn from(op: Operation) -> u16 {
        match op {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(n) => n,
        }
    }
}

/// A view of an Ethernet/IPv4 ARP packet.
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

    /// Wraps a buffer and [`check_len`](Self::check_len)s it.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` unless the buffer holds the 28 bytes of an Ethernet/IPv4
    /// ARP packet (trailing Ethernet padding is allowed). Whether it *is*
    /// Ethernet/IPv4 is [`Repr::parse`]'s job.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < field::LEN {
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

    /// Hardware type (1 = Ethernet).
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type (an EtherType; 0x0800 = IPv4).
    #[inline]
    pub fn protocol_type(&self) -> EtherType {
        EtherType::from(read_u16(self.buffer.as_ref(), field::PTYPE))
    }

    /// Hardware address length.
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation.
    #[inline]
    pub fn operation(&self) -> Operation {
        Operation::from(read_u16(self.buffer.as_ref(), field::OPER))
    }

    /// Sender hardware address.
    #[inline]
    pub fn source_hardware_addr(&self) -> EthernetAddress {
        let d = &self.buffer.as_ref()[field::SHA];
        EthernetAddress([d[0], d[1], d[2], d[3], d[4], d[5]])
    }

    /// Sender protocol address.
    #[inline]
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[field::SPA];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// Target hardware address.
    #[inline]
    pub fn target_hardware_addr(&self) -> EthernetAddress {
        let d = &self.buffer.as_ref()[field::THA];
        EthernetAddress([d[0], d[1], d[2], d[3], d[4], d[5]])
    }

    /// Target protocol address.
    #[inline]
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[field::TPA];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the hardware type.
    #[inline]
    pub fn set_hardware_type(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::HTYPE, v);
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol_type(&mut self, v: EtherType) {
        write_u16(self.buffer.as_mut(), field::PTYPE, v.number());
    }

    /// Sets the hardware address length.
    #[inline]
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }

    /// Sets the protocol address length.
    #[inline]
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }

    /// Sets the operation.
    #[inline]
    pub fn set_operation(&mut self, op: Operation) {
        write_u16(self.buffer.as_mut(), field::OPER, op.into());
    }

    /// Sets the sender hardware address.
    #[inline]
    pub fn set_source_hardware_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&a.0);
    }

    /// Sets the sender protocol address.
    #[inline]
    pub fn set_source_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&a.octets());
    }

    /// Sets the target hardware address.
    #[inline]
    pub fn set_target_hardware_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&a.0);
    }

    /// Sets the target protocol address.
    #[inline]
    pub fn set_target_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&a.octets());
    }
}

/// The meaning of an Ethernet/IPv4 ARP request or reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Request or reply (never `Unknown`).
    pub operation: Operation,
    /// Sender MAC.
    pub source_hardware_addr: EthernetAddress,
    /// Sender IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC (zero in a request).
    pub target_hardware_addr: EthernetAddress,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    /// Parses a packet: `Unsupported` unless it is Ethernet (htype 1, hlen 6)
    /// over IPv4 (ptype 0x0800, plen 4) and a request or a reply.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.hardware_type() != HTYPE_ETHERNET
            || packet.protocol_type() != EtherType::Ipv4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error::Unsupported);
        }
        let operation = packet.operation();
        if let Operation::Unknown(_) = operation {
            return Err(Error::Unsupported);
        }
        Ok(Repr {
            operation,
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// The reply to this request from the owner of `target_protocol_addr`,
    /// whose MAC is `our_mac`; `None` unless this is a request.
    pub fn reply(&self, our_mac: EthernetAddress) -> Option<Repr> {
        if self.operation != Operation::Request {
            return None;
        }
        Some(Repr {
            operation: Operation::Reply,
            source_hardware_addr: our_mac,
            source_protocol_addr: self.target_protocol_addr,
            target_hardware_addr: self.source_hardware_addr,
            target_protocol_addr: self.source_protocol_addr,
        })
    }

    /// 28.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        field::LEN
    }

    /// Writes the packet; the buffer must hold 28 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(self.source_hardware_addr);
        packet.set_source_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::Frame;
    use crate::wire::testdata;
    use proptest::prelude::*;

    const MAC1: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const MAC2: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

    #[test]
    fn parse_request_and_emit_back() {
        let frame = Frame::new_checked(&testdata::ARP_REQUEST_FRAME[..]).unwrap();
        let p = Packet::new_checked(frame.payload()).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), EtherType::Ipv4);
        assert_eq!((p.hardware_len(), p.protocol_len()), (6, 4));
        assert_eq!(p.operation(), Operation::Request);
        let repr = Repr::parse(&p).unwrap();
        assert_eq!(
            repr,
            Repr {
                operation: Operation::Request,
                source_hardware_addr: MAC1,
                source_protocol_addr: Ipv4Addr::new(192, 0, 2, 1),
                target_hardware_addr: EthernetAddress([0; 6]),
                target_protocol_addr: Ipv4Addr::new(192, 0, 2, 2),
            }
        );
        let mut out = [0u8; 28];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(&out[..], frame.payload());
    }

    #[test]
    fn reply_to_request_matches_real_reply() {
        let req = Packet::new_checked(&testdata::ARP_REQUEST_FRAME[14..]).unwrap();
        let reply = Repr::parse(&req).unwrap().reply(MAC2).unwrap();
        let mut out = [0u8; 28];
        reply.emit(&mut Packet::new_unchecked(&mut out[..]));
        // The padded real reply: the view ignores the 18 padding bytes.
        assert_eq!(&out[..], &testdata::ARP_REPLY_FRAME[14..42]);
        let real = Repr::parse(&Packet::new_checked(&testdata::ARP_REPLY_FRAME[14..]).unwrap());
        assert_eq!(real, Ok(reply));
        assert_eq!(reply.reply(MAC1), None);
    }

    #[test]
    fn etherparse_agrees_on_the_frame() {
        // etherparse 0.16 has no ARP parser; it agrees on the EtherType.
        let (eth, rest) =
            etherparse::Ethernet2Header::from_slice(&testdata::ARP_REQUEST_FRAME).unwrap();
        assert_eq!(eth.ether_type, etherparse::EtherType::ARP);
        assert!(Packet::new_checked(rest).is_ok());
    }

    #[test]
    fn unsupported_variants() {
        let mut b: [u8; 28] = testdata::ARP_REQUEST_FRAME[14..].try_into().unwrap();
        b[7] = 3; // RARP request
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&b[..])),
            Err(Error::Unsupported)
        );
        b[7] = 1;
        b[4] = 8; // hlen
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&b[..])),
            Err(Error::Unsupported)
        );
        b[4] = 6;
        b[2] = 0x86; // ptype IPv6
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&b[..])),
            Err(Error::Unsupported)
        );
    }

    #[test]
    fn truncated_at_every_length() {
        let arp = &testdata::ARP_REQUEST_FRAME[14..];
        for n in 0..arp.len() {
            assert_eq!(Packet::new_checked(&arp[..n]).err(), Some(Error::Truncated));
            assert_eq!(
                Repr::parse(&Packet::new_unchecked(&arp[..n])),
                Err(Error::Truncated)
            );
        }
        assert!(Packet::new_checked(arp).is_ok());
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(
            op in prop_oneof![Just(Operation::Request), Just(Operation::Reply)],
            sha in any::<[u8; 6]>(), spa in any::<u32>(), tha in any::<[u8; 6]>(), tpa in any::<u32>(),
        ) {
            let repr = Repr {
                operation: op,
                source_hardware_addr: EthernetAddress(sha),
                source_protocol_addr: Ipv4Addr::from(spa),
                target_hardware_addr: EthernetAddress(tha),
                target_protocol_addr: Ipv4Addr::from(tpa),
            };
            let mut b = [0u8; 28];
            repr.emit(&mut Packet::new_unchecked(&mut b[..]));
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()), Ok(repr));
        }
    }
}
