//! Ethernet II frames (IEEE 802.3 / RFC 894) with at most one IEEE 802.1Q
//! VLAN tag.
//!
//! Layout (untagged / tagged):
//!
//! ```text
//!  0      6      12     14                       0      6      12     14    16     18
//! +------+------+------+---------              +------+------+------+-----+------+--------
//! | dst  | src  | type | payload               | dst  | src  |0x8100| TCI | type | payload
//! +------+------+------+---------              +------+------+------+-----+------+--------
//! ```
//!
//! A frame whose tag is followed by a second tag (QinQ) still parses as a
//! view, with `ethertype()` = [`EtherType::Vlan`]; the proxy drops it.

use core::fmt;

use super::{read_u16, write_u16, Error, Result};

mod field {
    use core::ops::Range;

    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    /// The EtherType of an untagged frame, or the TPID of a tagged one.
    pub const ETHERTYPE: usize = 12;
    /// Tag control information, in a tagged frame.
    pub const TCI: usize = 14;
    /// The EtherType after the tag.
    pub const INNER_ETHERTYPE: usize = 16;
    pub const HEADER_LEN: usize = 14;
    pub const TAGGED_HEADER_LEN: usize = 18;
}

/// A 48-bit Ethernet (MAC) address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 6]);

impl Address {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Address = Address([0xff; 6]);

    /// The address in the first six bytes of `bytes`, if there are six.
    #[inline]
    pub fn from_bytes(bytes: &[u8]) -> Option<Address> {
        bytes.get(..6)?.try_into().ok().map(Address)
    }

    /// The six bytes.
    #[inline]
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// `ff:ff:ff:ff:ff:ff`.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// The I/G bit is set: a group address (broadcast included).
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// An individual address.
    #[inline]
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// The U/L bit is set: a locally administered address.
    #[inline]
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The EtherType field.
///
/// Build it with `From<u16>`, which never yields `Unknown` for a named value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EtherType {
    /// 0x0800.
    Ipv4,
    /// 0x0806.
    Arp,
    /// 0x8100, an IEEE 802.1Q tag.
    Vlan,
    /// 0x86DD.
    Ipv6,
    /// Anything else.
    Unknown(u16),
}

impl EtherType {
    /// The wire value.
    #[inline]
    pub const fn number(self) -> u16 {
        match self {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Vlan => 0x8100,
            EtherType::Ipv6 => 0x86DD,
            EtherType::Unknown(n) => n,
        }
    }
}

impl From<u16> for EtherType {
    #[inline]
    fn from(n: u16) -> Self {
        match n {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x8100 => EtherType::Vlan,
            0x86DD => EtherType::Ipv6,
            n => EtherType::Unknown(n),
        }
    }
}

impl From<EtherType> for u16 {
    #[inline]
    fn from(t: EtherType) -> u16 {
        t.number()
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtherType::Ipv4 => f.write_str("IPv4"),
            EtherType::Arp => f.write_str("ARP"),
            EtherType::Vlan => f.write_str("802.1Q"),
            EtherType::Ipv6 => f.write_str("IPv6"),
            EtherType::Unknown(n) => write!(f, "0x{n:04x}"),
        }
    }
}

/// The tag control information of an 802.1Q tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct VlanTag {
    /// Priority code point (3 bits).
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier (12 bits).
    pub vid: u16,
}

impl VlanTag {
    /// The tag from its 16-bit TCI.
    #[inline]
    pub const fn from_tci(tci: u16) -> VlanTag {
        VlanTag {
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0FFF,
        }
    }

    /// The 16-bit TCI; bits beyond each field's width are dropped.
    #[inline]
    pub const fn tci(&self) -> u16 {
        ((self.pcp as u16 & 0x7) << 13) | ((self.dei as u16) << 12) | (self.vid & 0x0FFF)
    }
}

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checks; getters may panic on a short buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer and [`check_len`](Self::check_len)s it.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// `Truncated` unless the buffer holds the whole header: 14 bytes, or 18
    /// when the first EtherType is 802.1Q.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::HEADER_LEN || len < self.payload_offset() {
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

    /// Header length for a frame with or without a tag.
    #[inline]
    pub const fn header_len_for(tagged: bool) -> usize {
        if tagged {
            field::TAGGED_HEADER_LEN
        } else {
            field::HEADER_LEN
        }
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Address {
        let d = self.buffer.as_ref();
        Address([d[0], d[1], d[2], d[3], d[4], d[5]])
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Address {
        let d = &self.buffer.as_ref()[field::SOURCE];
        Address([d[0], d[1], d[2], d[3], d[4], d[5]])
    }

    /// Whether the frame carries an 802.1Q tag.
    #[inline]
    pub fn is_tagged(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE) == EtherType::Vlan.number()
    }

    /// The 802.1Q tag, if any.
    #[inline]
    pub fn vlan(&self) -> Option<VlanTag> {
        if self.is_tagged() {
            Some(VlanTag::from_tci(read_u16(
                self.buffer.as_ref(),
                field::TCI,
            )))
        } else {
            None
        }
    }

    /// The EtherType of the payload (after the tag, if any). `Vlan` here
    /// means a second tag.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        let at = if self.is_tagged() {
            field::INNER_ETHERTYPE
        } else {
            field::ETHERTYPE
        };
        EtherType::from(read_u16(self.buffer.as_ref(), at))
    }

    /// Where the payload starts: 14, or 18 with a tag. Also the header length.
    #[inline]
    pub fn payload_offset(&self) -> usize {
        Self::header_len_for(self.is_tagged())
    }

    /// The header length (same as [`payload_offset`](Self::payload_offset)).
    #[inline]
    pub fn header_len(&self) -> usize {
        self.payload_offset()
    }

    /// The payload, up to the end of the buffer (Ethernet has no length;
    /// IPv4 bounds its own by its total length).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.payload_offset()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Sets the payload's EtherType, after the tag if the frame is tagged.
    /// Setting [`EtherType::Vlan`] on an untagged frame makes it a tagged
    /// one and breaks the `check_len` promise; check again.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        let at = if self.is_tagged() {
            field::INNER_ETHERTYPE
        } else {
            field::ETHERTYPE
        };
        write_u16(self.buffer.as_mut(), at, ethertype.number());
    }

    /// Rewrites the tag of a tagged frame; `false` (nothing written) when the
    /// frame is untagged, since adding a tag moves the payload.
    #[inline]
    pub fn set_vlan(&mut self, tag: VlanTag) -> bool {
        if !self.is_tagged() {
            return false;
        }
        write_u16(self.buffer.as_mut(), field::TCI, tag.tci());
        true
    }

    /// Swaps source and destination addresses (for replies).
    #[inline]
    pub fn swap_addrs(&mut self) {
        let (dst, src) = (self.dst_addr(), self.src_addr());
        self.set_dst_addr(src);
        self.set_src_addr(dst);
    }

    /// The payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.payload_offset();
        &mut self.buffer.as_mut()[at..]
    }
}

/// The meaning of an Ethernet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Address,
    /// Destination address.
    pub dst_addr: Address,
    /// The 802.1Q tag, if any.
    pub vlan: Option<VlanTag>,
    /// The payload's EtherType; never [`EtherType::Vlan`] (one tag at most).
    pub ethertype: EtherType,
}

impl Repr {
    /// Parses a checked frame; `Unsupported` for a second VLAN tag.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr> {
        frame.check_len()?;
        let ethertype = frame.ethertype();
        if ethertype == EtherType::Vlan {
            return Err(Error::Unsupported);
        }
        Ok(Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            vlan: frame.vlan(),
            ethertype,
        })
    }

    /// The header length.
    #[inline]
    pub const fn header_len(&self) -> usize {
        Frame::<&[u8]>::header_len_for(self.vlan.is_some())
    }

    /// The frame length for a payload of `payload_len` bytes.
    #[inline]
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        self.header_len() + payload_len
    }

    /// Writes the header; the buffer must hold [`header_len`](Self::header_len) bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        let buf = frame.buffer.as_mut();
        match self.vlan {
            Some(tag) => {
                write_u16(buf, field::ETHERTYPE, EtherType::Vlan.number());
                write_u16(buf, field::TCI, tag.tci());
                write_u16(buf, field::INNER_ETHERTYPE, self.ethertype.number());
            }
            None => write_u16(buf, field::ETHERTYPE, self.ethertype.number()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata;
    use proptest::prelude::*;

    #[test]
    fn address_classes() {
        assert!(Address::BROADCAST.is_broadcast());
        assert!(Address::BROADCAST.is_multicast());
        let m = Address([0x01, 0x00, 0x5e, 0, 0, 1]);
        assert!(m.is_multicast() && !m.is_broadcast() && !m.is_unicast());
        let u = Address([0x02, 0, 0, 0, 0, 1]);
        assert!(u.is_unicast() && u.is_local());
        assert_eq!(u.to_string(), "02:00:00:00:00:01");
        assert_eq!(Address::from_bytes(&[1, 2, 3, 4, 5]), None);
        assert_eq!(
            Address::from_bytes(&[1, 2, 3, 4, 5, 6, 7]),
            Some(Address([1, 2, 3, 4, 5, 6]))
        );
    }

    #[test]
    fn ethertype_round_trip() {
        for n in [0x0800, 0x0806, 0x8100, 0x86dd, 0x88a8, 0] {
            assert_eq!(EtherType::from(n).number(), n);
        }
        assert_eq!(EtherType::Unknown(0x88a8).to_string(), "0x88a8");
    }

    #[test]
    fn vlan_tci() {
        let t = VlanTag {
            pcp: 5,
            dei: true,
            vid: 100,
        };
        assert_eq!(t.tci(), 0xB064);
        assert_eq!(VlanTag::from_tci(0xB064), t);
    }

    #[test]
    fn parse_arp_frame() {
        let f = Frame::new_checked(&testdata::ARP_REQUEST_FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), Address::BROADCAST);
        assert_eq!(f.src_addr(), Address([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]));
        assert_eq!(f.ethertype(), EtherType::Arp);
        assert_eq!(f.vlan(), None);
        assert_eq!(f.payload_offset(), 14);
        assert_eq!(f.payload().len(), 28);
        let repr = Repr::parse(&f).unwrap();
        let mut out = [0u8; 14];
        repr.emit(&mut Frame::new_unchecked(&mut out[..]));
        assert_eq!(&out[..], &testdata::ARP_REQUEST_FRAME[..14]);
    }

    #[test]
    fn parse_tagged_frame() {
        let f = Frame::new_checked(&testdata::VLAN_ICMP_FRAME[..]).unwrap();
        assert_eq!(
            f.vlan(),
            Some(VlanTag {
                pcp: 0,
                dei: false,
                vid: 42
            })
        );
        assert_eq!(f.ethertype(), EtherType::Ipv4);
        assert_eq!(f.payload_offset(), 18);
        let repr = Repr::parse(&f).unwrap();
        let mut out = [0u8; 18];
        repr.emit(&mut Frame::new_unchecked(&mut out[..]));
        assert_eq!(&out[..], &testdata::VLAN_ICMP_FRAME[..18]);
        // Cross-check with etherparse.
        let (eth, rest) =
            etherparse::Ethernet2Header::from_slice(&testdata::VLAN_ICMP_FRAME).unwrap();
        assert_eq!(eth.destination, f.dst_addr().0);
        assert_eq!(eth.source, f.src_addr().0);
        let (vlan, _) = etherparse::SingleVlanHeader::from_slice(rest).unwrap();
        assert_eq!(vlan.vlan_id.value(), 42);
        assert_eq!(u16::from(vlan.ether_type), f.ethertype().number());
    }

    #[test]
    fn double_tag_is_unsupported() {
        let mut b = [0u8; 22];
        b[12..14].copy_from_slice(&[0x81, 0x00]);
        b[16..18].copy_from_slice(&[0x81, 0x00]);
        let f = Frame::new_checked(&b[..]).unwrap();
        assert_eq!(f.ethertype(), EtherType::Vlan);
        assert_eq!(Repr::parse(&f), Err(Error::Unsupported));
    }

    #[test]
    fn truncated_at_every_length() {
        for frame in [
            &testdata::ARP_REQUEST_FRAME[..],
            &testdata::VLAN_ICMP_FRAME[..],
        ] {
            let header = Frame::new_checked(frame).unwrap().header_len();
            for n in 0..frame.len() {
                let r = Frame::new_checked(&frame[..n]);
                if n < header {
                    assert_eq!(r.err(), Some(Error::Truncated), "len {n}");
                } else {
                    assert!(r.is_ok());
                }
            }
        }
    }

    #[test]
    fn setters() {
        let mut b = testdata::VLAN_ICMP_FRAME;
        let mut f = Frame::new_checked(&mut b[..]).unwrap();
        f.swap_addrs();
        assert_eq!(f.dst_addr(), Address([0x02, 0, 0, 0, 0, 0x01]));
        assert!(f.set_vlan(VlanTag {
            pcp: 1,
            dei: false,
            vid: 7
        }));
        assert_eq!(f.vlan().map(|t| t.vid), Some(7));
        f.set_ethertype(EtherType::Arp);
        assert_eq!(f.ethertype(), EtherType::Arp);
        assert!(f.is_tagged());
        f.payload_mut()[0] = 0xAA;
        assert_eq!(f.payload()[0], 0xAA);
    }

    fn arb_repr() -> impl Strategy<Value = Repr> {
        (
            any::<[u8; 6]>(),
            any::<[u8; 6]>(),
            proptest::option::of((0u8..8, any::<bool>(), 0u16..4096)),
            any::<u16>().prop_filter("one tag", |&t| t != 0x8100),
        )
            .prop_map(|(s, d, v, t)| Repr {
                src_addr: Address(s),
                dst_addr: Address(d),
                vlan: v.map(|(pcp, dei, vid)| VlanTag { pcp, dei, vid }),
                ethertype: EtherType::from(t),
            })
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(repr in arb_repr()) {
            let mut b = [0u8; 18];
            let n = repr.header_len();
            repr.emit(&mut Frame::new_unchecked(&mut b[..n]));
            prop_assert_eq!(Repr::parse(&Frame::new_checked(&b[..n]).unwrap()), Ok(repr));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(f) = Frame::new_checked(&bytes[..]) {
                let _ = (f.dst_addr(), f.src_addr(), f.vlan(), f.ethertype(), f.payload());
                let _ = Repr::parse(&f);
            }
        }
    }
}
