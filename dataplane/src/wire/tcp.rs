//! TCP headers (RFC 9293) over IPv4: ports, sequence numbers, flags,
//! options, and the in-place MSS clamp the tunnels need (RFC 2003 §4: a
//! tunnel lowers the path MTU by 20 bytes, so SYNs crossing it are clamped).
//!
//! ```text
//!  0              16             32
//! +--------------+--------------+
//! | Source Port  |  Dest Port   |
//! |       Sequence Number       |
//! |    Acknowledgment Number    |
//! |Off|Rsv|Flags |    Window    |
//! |   Checksum   |Urgent Pointer|
//! |     Options (Off > 5) …     |
//! ```
//!
//! A view is made over the whole IP payload: TCP has no length field, and
//! the checksum (over the IPv4 pseudo-header) covers the segment.

use core::fmt;
use core::net::Ipv4Addr;
use core::ops;

use super::checksum;
use super::ip::IpProtocol;
use super::{read_u16, read_u32, write_u16, write_u32, Error, HeaderOptions, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// The length of a header without options.
pub const HEADER_LEN: usize = 20;

/// Option kinds (IANA "TCP Option Kind Numbers").
mod kind {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

/// The eight flag bits of byte 13 (CWR ECE URG ACK PSH RST SYN FIN).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    /// No more data from sender.
    pub const FIN: Flags = Flags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: Flags = Flags(0x02);
    /// Reset the connection.
    pub const RST: Flags = Flags(0x04);
    /// Push.
    pub const PSH: Flags = Flags(0x08);
    /// The acknowledgment field is significant.
    pub const ACK: Flags = Flags(0x10);
    /// The urgent pointer is significant.
    pub const URG: Flags = Flags(0x20);
    /// ECN echo (RFC 3168).
    pub const ECE: Flags = Flags(0x40);
    /// Congestion window reduced (RFC 3168).
    pub const CWR: Flags = Flags(0x80);

    const NAMES: [(Flags, &'static str); 8] = [
        (Flags::FIN, "FIN"),
        (Flags::SYN, "SYN"),
        (Flags::RST, "RST"),
        (Flags::PSH, "PSH"),
        (Flags::ACK, "ACK"),
        (Flags::URG, "URG"),
        (Flags::ECE, "ECE"),
        (Flags::CWR, "CWR"),
    ];

    /// No flag.
    #[inline]
    pub const fn empty() -> Flags {
        Flags(0)
    }

    /// Flags from byte 13.
    #[inline]
    pub const fn from_bits(bits: u8) -> Flags {
        Flags(bits)
    }

    /// Byte 13.
    #[inline]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag of `other` is set.
    #[inline]
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set.
    #[inline]
    pub const fn intersects(self, other: Flags) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether no flag is set.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Sets the flags of `other`.
    #[inline]
    pub fn insert(&mut self, other: Flags) {
        self.0 |= other.0;
    }

    /// Clears the flags of `other`.
    #[inline]
    pub fn remove(&mut self, other: Flags) {
        self.0 &= !other.0;
    }
}

impl ops::BitOr for Flags {
    type Output = Flags;
    #[inline]
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl ops::BitOrAssign for Flags {
    #[inline]
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl ops::BitAnd for Flags {
    type Output = Flags;
    #[inline]
    fn bitand(self, rhs: Flags) -> Flags {
        Flags(self.0 & rhs.0)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("(none)");
        }
        let mut first = true;
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// One TCP option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpOption<'a> {
    /// Kind 0: the end of the list (the iterator stops after it).
    EndOfList,
    /// Kind 1: padding.
    NoOp,
    /// Kind 2: maximum segment size (RFC 9293 §3.7.1).
    Mss(u16),
    /// Kind 3: window scale shift (RFC 7323).
    WindowScale(u8),
    /// Kind 4: SACK permitted (RFC 2018).
    SackPermitted,
    /// Kind 5: SACK blocks, raw (pairs of 32-bit edges).
    Sack(&'a [u8]),
    /// Kind 8: timestamps (RFC 7323).
    Timestamps {
        /// TSval.
        tsval: u32,
        /// TSecr.
        tsecr: u32,
    },
    /// Any other kind, with its data (after kind and length).
    Unknown {
        /// The kind.
        kind: u8,
        /// The data.
        data: &'a [u8],
    },
}

/// A bounds-safe iterator over option bytes. It yields `Err(Malformed)`
/// once and stops on a length below 2, an option running past the end, or
/// a known option of the wrong length.
#[derive(Clone, Debug)]
pub struct OptionsIter<'a> {
    data: &'a [u8],
    at: usize,
    done: bool,
}

impl<'a> OptionsIter<'a> {
    /// Iterates over raw option bytes.
    #[inline]
    pub fn new(data: &'a [u8]) -> OptionsIter<'a> {
        OptionsIter {
            data,
            at: 0,
            done: false,
        }
    }

    /// The next option and its offset in the option bytes.
    fn next_at(&mut self) -> Option<(usize, Result<TcpOption<'a>>)> {
        if self.done {
            return None;
        }
        let start = self.at;
        let Some(&kind) = self.data.get(start) else {
            self.done = true;
            return None;
        };
        match kind {
            kind::END => {
                self.done = true;
                return Some((start, Ok(TcpOption::EndOfList)));
            }
            kind::NOP => {
                self.at += 1;
                return Some((start, Ok(TcpOption::NoOp)));
            }
            _ => {}
        }
        let len = self.data.get(start + 1).map(|&l| usize::from(l));
        let body = match len {
            Some(len) if len >= 2 => self.data.get(start + 2..start + len),
            _ => None,
        };
        let Some(body) = body else {
            self.done = true;
            return Some((start, Err(Error::Malformed)));
        };
        self.at = start + 2 + body.len();
        let option = match (kind, body.len()) {
            (kind::MSS, 2) => TcpOption::Mss(u16::from_be_bytes([body[0], body[1]])),
            (kind::WINDOW_SCALE, 1) => TcpOption::WindowScale(body[0]),
            (kind::SACK_PERMITTED, 0) => TcpOption::SackPermitted,
            (kind::SACK, n) if n % 8 == 0 && n > 0 => TcpOption::Sack(body),
            (kind::TIMESTAMPS, 8) => TcpOption::Timestamps {
                tsval: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                tsecr: u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
            },
            (
                kind::MSS
                | kind::WINDOW_SCALE
                | kind::SACK_PERMITTED
                | kind::SACK
                | kind::TIMESTAMPS,
                _,
            ) => {
                self.done = true;
                return Some((start, Err(Error::Malformed)));
            }
            (kind, _) => TcpOption::Unknown { kind, data: body },
        };
        Some((start, Ok(option)))
    }

    /// Offset (in the option bytes) of the first MSS option's value.
    fn mss_value_offset(mut self) -> Option<usize> {
        while let Some((at, opt)) = self.next_at() {
            if let TcpOption::Mss(_) = opt.ok()? {
                return Some(at + 2);
            }
        }
        None
    }
}

impl<'a> Iterator for OptionsIter<'a> {
    type Item = Result<TcpOption<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.next_at().map(|(_, o)| o)
    }
}

/// The first MSS in these option bytes; `None` if absent or if the options
/// are malformed before it.
pub fn options_mss(options: &[u8]) -> Option<u16> {
    for o in OptionsIter::new(options) {
        if let TcpOption::Mss(mss) = o.ok()? {
            return Some(mss);
        }
    }
    None
}

/// A view of a TCP segment.
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

    /// The fixed header fits (`Truncated`), the data offset is at least 5
    /// (`Malformed`), and the header with its options fits (`Truncated`).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
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

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// Header length in bytes (data offset × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The flags.
    #[inline]
    pub fn flags(&self) -> Flags {
        Flags(self.buffer.as_ref()[field::FLAGS])
    }

    /// SYN is set.
    #[inline]
    pub fn syn(&self) -> bool {
        self.flags().contains(Flags::SYN)
    }

    /// ACK is set.
    #[inline]
    pub fn ack(&self) -> bool {
        self.flags().contains(Flags::ACK)
    }

    /// FIN is set.
    #[inline]
    pub fn fin(&self) -> bool {
        self.flags().contains(Flags::FIN)
    }

    /// RST is set.
    #[inline]
    pub fn rst(&self) -> bool {
        self.flags().contains(Flags::RST)
    }

    /// Window.
    #[inline]
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WINDOW)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// The raw option bytes.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The options, parsed one by one.
    #[inline]
    pub fn options_iter(&self) -> OptionsIter<'_> {
        OptionsIter::new(self.options())
    }

    /// The first MSS option's value, if any (and the options before it are
    /// well formed).
    #[inline]
    pub fn mss(&self) -> Option<u16> {
        options_mss(self.options())
    }

    /// The data after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Sum of the pseudo-header and the segment.
    #[inline]
    fn sum(&self, src_addr: Ipv4Addr, dst_addr: Ipv4Addr) -> Option<u16> {
        let data = self.buffer.as_ref();
        let len = u16::try_from(data.len()).ok()?;
        let pseudo = checksum::pseudo_header_v4(src_addr, dst_addr, IpProtocol::Tcp, len);
        Some(checksum::combine(&[pseudo, checksum::data(data)]))
    }

    /// Whether the checksum verifies with this pseudo-header (a segment
    /// longer than 65 535 bytes never does).
    #[inline]
    pub fn verify_checksum(&self, src_addr: Ipv4Addr, dst_addr: Ipv4Addr) -> bool {
        self.sum(src_addr, dst_addr) == Some(0xFFFF)
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

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM, v);
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM, v);
    }

    /// Sets the header length in bytes (rounded down to 4), keeping the
    /// reserved and NS bits. Breaks the `check_len` promise: check again.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        // The data offset is 4 bits.
        *b = (*b & 0x0F) | (((len / 4) as u8) << 4);
    }

    /// Sets the flags.
    #[inline]
    pub fn set_flags(&mut self, flags: Flags) {
        self.buffer.as_mut()[field::FLAGS] = flags.0;
    }

    /// Sets the window.
    #[inline]
    pub fn set_window_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::WINDOW, v);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT, v);
    }

    /// Computes the checksum from scratch and writes it.
    #[inline]
    pub fn fill_checksum(&mut self, src_addr: Ipv4Addr, dst_addr: Ipv4Addr) {
        self.set_checksum(0);
        if let Some(sum) = self.sum(src_addr, dst_addr) {
            self.set_checksum(checksum::finish(sum));
        }
    }

    /// Sets the source port and updates the checksum incrementally.
    #[inline]
    pub fn set_src_port_incremental(&mut self, port: u16) {
        let old = self.src_port();
        self.set_src_port(port);
        self.set_checksum(checksum::update16(self.checksum(), old, port));
    }

    /// Sets the destination port and updates the checksum incrementally.
    #[inline]
    pub fn set_dst_port_incremental(&mut self, port: u16) {
        let old = self.dst_port();
        self.set_dst_port(port);
        self.set_checksum(checksum::update16(self.checksum(), old, port));
    }

    /// Updates the checksum for a pseudo-header address changing from `old`
    /// to `new` (after the IP header was rewritten).
    #[inline]
    pub fn update_addr_checksum(&mut self, old: Ipv4Addr, new: Ipv4Addr) {
        self.set_checksum(checksum::update32(self.checksum(), old.into(), new.into()));
    }

    /// Rewrites the first MSS option to `mss` and updates the checksum
    /// incrementally (the value may sit at an odd offset; see
    /// [`checksum::update16_at`]). Returns the old value, or `None` (nothing
    /// written) when there is no well-formed MSS option.
    #[inline]
    pub fn set_mss_incremental(&mut self, mss: u16) -> Option<u16> {
        let at = HEADER_LEN + self.options_iter().mss_value_offset()?;
        let old = read_u16(self.buffer.as_ref(), at);
        write_u16(self.buffer.as_mut(), at, mss);
        self.set_checksum(checksum::update16_at(self.checksum(), at, old, mss));
        Some(old)
    }

    /// MSS clamping: lowers the MSS option to `max` if it is larger.
    /// Returns whether the segment changed.
    #[inline]
    pub fn clamp_mss(&mut self, max: u16) -> bool {
        match self.mss() {
            Some(mss) if mss > max => self.set_mss_incremental(max).is_some(),
            _ => false,
        }
    }

    /// The option bytes, mutable. After changing them, fill the checksum.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// The data, mutable. After changing it, fill the checksum.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

/// The meaning of a TCP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number.
    pub ack_number: u32,
    /// Flags.
    pub flags: Flags,
    /// Window.
    pub window_len: u16,
    /// Urgent pointer.
    pub urgent_at: u16,
    /// Options, raw (a multiple of 4 bytes); read them with
    /// [`OptionsIter::new`] or [`options_mss`].
    pub options: HeaderOptions,
    /// Data length.
    pub payload_len: usize,
}

impl Repr {
    /// Parses a checked segment and verifies its checksum (`BadChecksum`).
    /// The NS and reserved bits are ignored; options are kept raw (a
    /// malformed option list is the reader's business).
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
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            urgent_at: packet.urgent_at(),
            options: HeaderOptions::new(packet.options())?,
            payload_len: packet.payload().len(),
        })
    }

    /// Header length with options.
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// Header plus data.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Writes the header and `payload` (`payload.len()` must equal
    /// `payload_len`; the buffer must be exactly
    /// [`buffer_len`](Self::buffer_len) bytes, since TCP's length is the
    /// buffer's), then fills the checksum.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src_addr: Ipv4Addr,
        dst_addr: Ipv4Addr,
        payload: &[u8],
    ) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        packet.buffer.as_mut()[field::DATA_OFF] = 0;
        packet.set_header_len(self.header_len());
        packet.set_flags(self.flags);
        packet.set_window_len(self.window_len);
        packet.set_urgent_at(self.urgent_at);
        packet
            .options_mut()
            .copy_from_slice(self.options.as_bytes());
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

    fn split(pkt: &[u8]) -> (Ipv4Addr, Ipv4Addr, Vec<u8>) {
        let ip = Ipv4Packet::new_checked(pkt).unwrap();
        (ip.src_addr(), ip.dst_addr(), ip.payload().to_vec())
    }

    #[test]
    fn flags_type() {
        let f = Flags::SYN | Flags::ACK;
        assert!(
            f.contains(Flags::SYN)
                && f.intersects(Flags::ACK | Flags::FIN)
                && !f.contains(Flags::FIN)
        );
        assert_eq!(format!("{f:?}"), "SYN|ACK");
        let mut g = f;
        g.remove(Flags::SYN);
        g.insert(Flags::CWR);
        assert_eq!(g.bits(), 0x90);
        assert_eq!(format!("{:?}", Flags::empty()), "(none)");
        assert_eq!(f & Flags::SYN, Flags::SYN);
    }

    #[test]
    fn parse_syn_and_emit_back() {
        let (src, dst, seg) = split(&testdata::TCP_SYN);
        let p = Packet::new_checked(&seg[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (40000, 80));
        assert_eq!((p.seq_number(), p.ack_number()), (0x01020304, 0));
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), Flags::SYN);
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst());
        assert_eq!(
            (p.window_len(), p.checksum(), p.urgent_at()),
            (64240, 0xddf7, 0)
        );
        assert!(p.verify_checksum(src, dst));
        assert_eq!(p.mss(), Some(1460));
        let opts: Vec<_> = p.options_iter().collect();
        assert_eq!(
            opts,
            vec![
                Ok(TcpOption::Mss(1460)),
                Ok(TcpOption::SackPermitted),
                Ok(TcpOption::Timestamps {
                    tsval: 123456,
                    tsecr: 0
                }),
                Ok(TcpOption::NoOp),
                Ok(TcpOption::WindowScale(7)),
            ]
        );
        assert!(p.payload().is_empty());
        let repr = Repr::parse(&p, src, dst).unwrap();
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]), src, dst, &[]);
        assert_eq!(out, seg);
    }

    #[test]
    fn etherparse_agrees() {
        for pkt in [&testdata::TCP_SYN[..], &testdata::TCP_SYN_ODD_MSS[..]] {
            let (src, dst, seg) = split(pkt);
            let (h, rest) = etherparse::TcpHeader::from_slice(&seg).unwrap();
            let p = Packet::new_checked(&seg[..]).unwrap();
            assert_eq!(
                (h.source_port, h.destination_port),
                (p.src_port(), p.dst_port())
            );
            assert_eq!(
                (h.sequence_number, h.acknowledgment_number),
                (p.seq_number(), p.ack_number())
            );
            assert_eq!(h.header_len(), p.header_len());
            assert_eq!(
                (h.syn, h.ack, h.fin, h.rst),
                (p.syn(), p.ack(), p.fin(), p.rst())
            );
            assert_eq!(h.options.as_slice(), p.options());
            assert_eq!(
                h.calc_checksum_ipv4_raw(src.octets(), dst.octets(), rest)
                    .unwrap(),
                p.checksum()
            );
            let mss = h.options_iterator().find_map(|o| match o {
                Ok(etherparse::TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
                _ => None,
            });
            assert_eq!(mss, p.mss());
        }
    }

    #[test]
    fn mss_clamp_at_odd_offset() {
        let (src, dst, mut seg) = split(&testdata::TCP_SYN_ODD_MSS);
        let mut p = Packet::new_checked(&mut seg[..]).unwrap();
        assert_eq!(p.mss(), Some(9000));
        let opts: Vec<_> = p.options_iter().collect();
        assert_eq!(
            opts,
            vec![
                Ok(TcpOption::NoOp),
                Ok(TcpOption::Mss(9000)),
                Ok(TcpOption::NoOp),
                Ok(TcpOption::NoOp),
                Ok(TcpOption::EndOfList)
            ]
        );
        assert!(p.clamp_mss(1460));
        assert_eq!(p.mss(), Some(1460));
        assert!(p.verify_checksum(src, dst));
        assert!(!p.clamp_mss(1500));
        assert_eq!(p.set_mss_incremental(1400), Some(1460));
        let c = p.checksum();
        p.fill_checksum(src, dst);
        assert_eq!(c, p.checksum());
    }

    #[test]
    fn no_mss_no_change() {
        let (_, _, mut seg) = split(&testdata::TCP_SYN);
        seg[12] = 0x50; // drop the options from the header
        let mut p = Packet::new_checked(&mut seg[..]).unwrap();
        let before = p.checksum();
        assert_eq!(p.mss(), None);
        assert_eq!(p.set_mss_incremental(1000), None);
        assert!(!p.clamp_mss(1000));
        assert_eq!(p.checksum(), before);
    }

    #[test]
    fn malformed_options() {
        let cases: [(&[u8], usize); 7] = [
            (&[2, 4, 5], 1),           // MSS runs past the end
            (&[2, 3, 5, 0], 1),        // MSS of the wrong length
            (&[30, 1, 0, 0], 1),       // length below 2
            (&[30], 1),                // no length byte
            (&[1, 1, 3, 3], 3),        // window scale past the end
            (&[5, 2, 1, 1], 1),        // empty SACK
            (&[8, 10, 0, 0, 0, 0], 1), // timestamps past the end
        ];
        for (opts, n) in cases {
            let v: Vec<_> = OptionsIter::new(opts).collect();
            assert_eq!(v.len(), n, "{opts:?}");
            assert_eq!(v.last(), Some(&Err(Error::Malformed)), "{opts:?}");
            assert_eq!(options_mss(opts), None);
        }
        let v: Vec<_> = OptionsIter::new(&[99, 3, 7, 0, 1]).collect();
        assert_eq!(
            v,
            vec![
                Ok(TcpOption::Unknown {
                    kind: 99,
                    data: &[7]
                }),
                Ok(TcpOption::EndOfList)
            ]
        );
        // An MSS after a malformed option is not trusted.
        assert_eq!(options_mss(&[30, 0, 2, 4, 1, 0]), None);
    }

    #[test]
    fn rejects_bad_offsets() {
        let (_, _, mut seg) = split(&testdata::TCP_SYN);
        seg[12] = 0x40;
        assert_eq!(Packet::new_checked(&seg[..]).err(), Some(Error::Malformed));
        seg[12] = 0xF0; // 60-byte header in 40 bytes
        assert_eq!(Packet::new_checked(&seg[..]).err(), Some(Error::Truncated));
        let (src, dst, mut seg) = split(&testdata::TCP_SYN);
        seg[39] ^= 1;
        let p = Packet::new_checked(&seg[..]).unwrap();
        assert_eq!(Repr::parse(&p, src, dst), Err(Error::BadChecksum));
    }

    #[test]
    fn truncated_at_every_length() {
        for pkt in [&testdata::TCP_SYN[..], &testdata::TCP_SYN_ODD_MSS[..]] {
            let (_, _, seg) = split(pkt);
            for n in 0..seg.len() {
                assert_eq!(
                    Packet::new_checked(&seg[..n]).err(),
                    Some(Error::Truncated),
                    "len {n}"
                );
            }
        }
    }

    /// Options holding one MSS at any alignment, padded to a 4-byte multiple.
    fn arb_options_with_mss() -> impl Strategy<Value = (Vec<u8>, u16)> {
        (
            0usize..4,
            any::<u16>(),
            proptest::collection::vec(prop_oneof![Just(1u8), Just(0u8)], 0..8),
        )
            .prop_map(|(nops, mss, tail)| {
                let mut o = vec![1u8; nops];
                o.extend_from_slice(&[2, 4]);
                o.extend_from_slice(&mss.to_be_bytes());
                o.extend_from_slice(&tail);
                while o.len() % 4 != 0 {
                    o.push(1);
                }
                o.truncate(40);
                (o, mss)
            })
    }

    fn arb_repr() -> impl Strategy<Value = (Repr, Vec<u8>)> {
        (
            any::<(u16, u16, u32, u32, u8, u16, u16)>(),
            prop_oneof![
                Just(Vec::new()),
                arb_options_with_mss().prop_map(|(o, _)| o),
                (0usize..=10).prop_flat_map(|w| proptest::collection::vec(any::<u8>(), w * 4)),
            ],
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|((sp, dp, seq, ack, flags, win, urg), opts, payload)| {
                (
                    Repr {
                        src_port: sp,
                        dst_port: dp,
                        seq_number: seq,
                        ack_number: ack,
                        flags: Flags::from_bits(flags),
                        window_len: win,
                        urgent_at: urg,
                        options: HeaderOptions::new(&opts).unwrap(),
                        payload_len: payload.len(),
                    },
                    payload,
                )
            })
    }

    #[derive(Clone, Copy, Debug)]
    enum Change {
        SrcPort(u16),
        DstPort(u16),
        SrcAddr(u32),
        DstAddr(u32),
        Mss(u16),
    }

    fn arb_change() -> impl Strategy<Value = Change> {
        let edge16 = prop_oneof![Just(0u16), Just(u16::MAX), any::<u16>()];
        let edge32 = prop_oneof![Just(0u32), Just(u32::MAX), Just(0x0000_FFFF), any::<u32>()];
        prop_oneof![
            edge16.clone().prop_map(Change::SrcPort),
            edge16.clone().prop_map(Change::DstPort),
            edge32.clone().prop_map(Change::SrcAddr),
            edge32.prop_map(Change::DstAddr),
            edge16.prop_map(Change::Mss),
        ]
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip((repr, payload) in arb_repr(), src in any::<u32>(), dst in any::<u32>()) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let mut b = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut b[..]), src, dst, &payload);
            let p = Packet::new_checked(&b[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p, src, dst), Ok(repr));
            prop_assert_eq!(p.payload(), &payload[..]);
        }

        /// NAT and MSS-clamp rewrites with RFC 1624 equal a full recompute,
        /// MSS at even and odd offsets, 0x0000/0xFFFF values included.
        #[test]
        fn incremental_equals_recompute(
            (opts, mss) in arb_options_with_mss(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            header in any::<(u16, u16, u32, u32, u8)>(),
            addrs in any::<(u32, u32)>(),
            changes in proptest::collection::vec(arb_change(), 1..8),
        ) {
            let (mut src, mut dst) = (Ipv4Addr::from(addrs.0), Ipv4Addr::from(addrs.1));
            let repr = Repr {
                src_port: header.0, dst_port: header.1, seq_number: header.2, ack_number: header.3,
                flags: Flags::from_bits(header.4) | Flags::SYN, window_len: 1, urgent_at: 0,
                options: HeaderOptions::new(&opts).unwrap(), payload_len: payload.len(),
            };
            let mut b = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut b[..]), src, dst, &payload);
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            prop_assert_eq!(p.mss(), Some(mss));
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
                    Change::Mss(m) => {
                        prop_assert!(p.set_mss_incremental(m).is_some());
                        prop_assert_eq!(p.mss(), Some(m));
                    }
                }
                let incremental = p.checksum();
                prop_assert!(p.verify_checksum(src, dst));
                p.fill_checksum(src, dst);
                prop_assert_eq!(incremental, p.checksum(), "{:?}", change);
            }
        }

        #[test]
        fn options_iter_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            let n = OptionsIter::new(&bytes).count();
            prop_assert!(n <= bytes.len() + 1);
            let _ = options_mss(&bytes);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80), a in any::<u32>()) {
            let mut bytes = bytes;
            if let Ok(mut p) = Packet::new_checked(&mut bytes[..]) {
                let a = Ipv4Addr::from(a);
                let _ = (p.payload().len(), p.mss(), p.options_iter().count(), p.verify_checksum(a, a));
                let _ = Repr::parse(&p, a, a);
                let _ = p.clamp_mss(536);
            }
        }
    }
}
