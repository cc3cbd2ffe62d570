//! Moving a packet on: tunnel push and pop, Ethernet rewrite, and ICMP
//! errors built in the packet's own buffer.
//!
//! These are the mechanics the PIAS stages share. They work on a
//! [`PacketBuf`] whose data starts with an untagged Ethernet header (the
//! classifier has already refused tagged frames) and never copy a payload:
//! a tunnel header is pushed by growing the front of the buffer and moving
//! the 14-byte Ethernet header, popped by the reverse.

use core::net::Ipv4Addr;

use crate::neighbour::Mac;
use crate::packet::PacketBuf;
use crate::reason::DropReason;
use crate::wire::ipip::{self, EncapParams, OUTER_HEADER_LEN};
use crate::wire::{checksum, Icmpv4Packet, IpProtocol, Ipv4Packet};

/// Length of an untagged Ethernet header.
pub const ETH_LEN: usize = 14;

/// Pushes an IP-in-IP header (RFC 2003 §3.1) in front of the IPv4 packet
/// that follows the Ethernet header. The Ethernet addresses are left for
/// [`set_eth`].
pub fn encap<B: PacketBuf>(pkt: &mut B, params: &EncapParams) -> Result<(), DropReason> {
    if !pkt.prepend(OUTER_HEADER_LEN) {
        return Err(DropReason::NoHeadroom);
    }
    let d = pkt.data_mut();
    d.copy_within(OUTER_HEADER_LEN..OUTER_HEADER_LEN + ETH_LEN, 0);
    match ipip::encapsulate_in_place(&mut d[ETH_LEN..], params) {
        Ok(total) => {
            // Drop Ethernet padding that followed the inner packet.
            let extra = pkt.len().saturating_sub(ETH_LEN + total);
            if extra > 0 {
                pkt.trim(extra);
            }
            Ok(())
        }
        Err(_) => {
            // Undo: the inner packet was checked by the caller, so this is
            // unreachable in practice; never leave a half-built frame.
            let d = pkt.data_mut();
            d.copy_within(0..ETH_LEN, OUTER_HEADER_LEN);
            pkt.adj(OUTER_HEADER_LEN);
            Err(DropReason::Ipv4BadLength)
        }
    }
}

/// Pops the outer IPv4 header (`outer_len` bytes, options included) that
/// follows the Ethernet header, keeping the Ethernet header in front.
pub fn decap<B: PacketBuf>(pkt: &mut B, outer_len: usize) -> bool {
    if pkt.len() < ETH_LEN + outer_len {
        return false;
    }
    pkt.data_mut().copy_within(0..ETH_LEN, outer_len);
    pkt.adj(outer_len)
}

/// Writes the Ethernet source and destination.
#[inline]
pub fn set_eth<B: PacketBuf>(pkt: &mut B, src: Mac, dst: Mac) {
    let d = pkt.data_mut();
    d[0..6].copy_from_slice(&dst);
    d[6..12].copy_from_slice(&src);
}

/// Drops Ethernet padding behind the IPv4 packet, so that a frame whose
/// headers grow or shrink carries no stale trailer.
pub fn trim_to_ip<B: PacketBuf>(pkt: &mut B) {
    let d = pkt.data();
    if d.len() < ETH_LEN + 4 {
        return;
    }
    let total = usize::from(u16::from_be_bytes([d[ETH_LEN + 2], d[ETH_LEN + 3]]));
    let extra = d.len().saturating_sub(ETH_LEN + total);
    if extra > 0 {
        pkt.trim(extra);
    }
}

/// Which ICMP error to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpError {
    /// Type 11 code 0: TTL exceeded in transit (RFC 1812 §5.3.1).
    TtlExceeded,
    /// Type 3 code 4 with the next-hop MTU (RFC 1191).
    FragNeeded {
        /// The MTU the sender must fit.
        mtu: u16,
    },
    /// Type 3 code 1: host unreachable (RFC 2003 §4: how a time exceeded
    /// from inside a tunnel reaches the original sender).
    HostUnreachable,
    /// Type 3 code 13: communication administratively prohibited (RFC 5508
    /// REQ-8: a mapping could not be created).
    AdminProhibited,
}

impl IcmpError {
    fn type_code_rest(self) -> (u8, u8, [u8; 4]) {
        match self {
            IcmpError::TtlExceeded => (11, 0, [0; 4]),
            IcmpError::FragNeeded { mtu } => {
                let m = mtu.to_be_bytes();
                (3, 4, [0, 0, m[0], m[1]])
            }
            IcmpError::HostUnreachable => (3, 1, [0; 4]),
            IcmpError::AdminProhibited => (3, 13, [0; 4]),
        }
    }
}

/// The TTL of packets the proxy originates.
pub const ORIGIN_TTL: u8 = 64;

/// Rewrites the IPv4 packet in `pkt` (after an Ethernet header) into an
/// ICMP error about it, addressed to its source, from `from`, sent back to
/// the Ethernet address it came from (the previous hop). Quotes the
/// offending header and the first 8 bytes of its payload (RFC 792, RFC 1812
/// §4.3.2.3).
///
/// Refuses (returns false, the caller drops) when RFC 1812 §4.3.2.7 forbids
/// an error: about an ICMP error, a non-initial fragment, or a packet whose
/// source is not a unicast host. The caller rate-limits.
pub fn icmp_error_in_place<B: PacketBuf>(pkt: &mut B, kind: IcmpError, from: Ipv4Addr, our_mac: Mac, ident: u16) -> bool {
    if !may_answer_with_error(pkt.data()) {
        return false;
    }
    let d = pkt.data();
    let Ok(ip) = Ipv4Packet::new_checked(&d[ETH_LEN..]) else { return false };
    let src = ip.src_addr();
    let hlen = ip.header_len();
    let total = usize::from(ip.total_len());
    let quoted = hlen + (total - hlen).min(8);
    let peer: Mac = [d[6], d[7], d[8], d[9], d[10], d[11]];
    let tos = ip.tos();

    // New layout: eth(14) | ip(20) | icmp(8) | quoted.
    if !pkt.prepend(ERROR_HEADERS - ETH_LEN) {
        return false;
    }
    let len = pkt.len();
    let keep = ERROR_HEADERS + quoted;
    if len > keep {
        pkt.trim(len - keep);
    }
    let head = ErrorHead { kind, from, to: src, src_mac: our_mac, dst_mac: peer, ident, tos };
    write_error_headers(pkt.data_mut(), &head);
    true
}

/// Whether RFC 1812 §4.3.2.7 allows an ICMP error about the IPv4 packet
/// in `frame` (after the Ethernet header): not about an ICMP error, a
/// non-initial fragment, or a packet whose source is not a unicast host.
/// [`icmp_error_in_place`] checks it too; a caller that rate-limits asks
/// first, so that a refused error takes no token.
pub fn may_answer_with_error(frame: &[u8]) -> bool {
    let Some(ipbuf) = frame.get(ETH_LEN..) else { return false };
    let Ok(ip) = Ipv4Packet::new_checked(ipbuf) else { return false };
    let src = ip.src_addr();
    if src.is_multicast() || src.is_broadcast() || src.is_unspecified() || src.is_loopback() {
        return false;
    }
    if ip.is_non_initial_fragment() {
        return false;
    }
    if ip.protocol() == IpProtocol::Icmp {
        let t = ip.payload().first().copied().unwrap_or(0);
        // Errors (3, 4, 5, 11, 12) are never answered with an error.
        if !matches!(t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18) {
            return false;
        }
    }
    true
}

/// Ethernet, IPv4 and ICMP headers of an error the proxy originates.
const ERROR_HEADERS: usize = ETH_LEN + 20 + 8;

/// Most bytes of the offending datagram an originated error quotes, so the
/// error stays within 576 bytes (RFC 1812 §4.3.2.3).
pub const MAX_QUOTE: usize = 576 - 20 - 8;

/// The headers of an ICMP error the proxy originates.
#[derive(Clone, Copy, Debug)]
struct ErrorHead {
    kind: IcmpError,
    from: Ipv4Addr,
    to: Ipv4Addr,
    src_mac: Mac,
    dst_mac: Mac,
    ident: u16,
    tos: u8,
}

/// Writes Ethernet, IPv4 (no options, [`ORIGIN_TTL`], DF clear) and ICMP
/// headers at the front of `d`, whose bytes after [`ERROR_HEADERS`] are the
/// quote; fills both checksums.
fn write_error_headers(d: &mut [u8], e: &ErrorHead) {
    let quoted = d.len().saturating_sub(ERROR_HEADERS);
    if d.len() < ERROR_HEADERS {
        return;
    }
    d[0..6].copy_from_slice(&e.dst_mac);
    d[6..12].copy_from_slice(&e.src_mac);
    d[12..14].copy_from_slice(&[0x08, 0x00]);
    // quoted ≤ a frame's length, far below 65 535 - 28.
    let total_new = u16::try_from(20 + 8 + quoted).unwrap_or(u16::MAX);
    let h = &mut d[ETH_LEN..ETH_LEN + 20];
    h.copy_from_slice(&[0x45, e.tos & 0xfc, 0, 0, 0, 0, 0, 0, ORIGIN_TTL, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    h[2..4].copy_from_slice(&total_new.to_be_bytes());
    h[4..6].copy_from_slice(&e.ident.to_be_bytes());
    h[12..16].copy_from_slice(&e.from.octets());
    h[16..20].copy_from_slice(&e.to.octets());
    let c = checksum::finish(checksum::data(h));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    let (t, code, rest) = e.kind.type_code_rest();
    let icmp = &mut d[ETH_LEN + 20..];
    icmp[0] = t;
    icmp[1] = code;
    icmp[2] = 0;
    icmp[3] = 0;
    icmp[4..8].copy_from_slice(&rest);
    let c = checksum::finish(checksum::data(icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
}

/// Where a relayed error goes and what it says ([`relay_error_in_place`]).
#[derive(Clone, Copy, Debug)]
pub struct Relay {
    /// The error to send.
    pub kind: IcmpError,
    /// Its source: this proxy's address on the way out.
    pub from: Ipv4Addr,
    /// Its destination: the original sender of the quoted packet.
    pub to: Ipv4Addr,
    /// Our MAC on the way out.
    pub src_mac: Mac,
    /// The next hop's MAC.
    pub dst_mac: Mac,
    /// IPv4 identification of the error.
    pub ident: u16,
}

/// Replaces the frame in `pkt` by a new ICMP error (`relay`) that quotes
/// `pkt[quote_off..quote_off + quote_len]`, the inner datagram a tunnel
/// error quoted (RFC 2003 §4: the proxy relays an error from inside the
/// tunnel to the original sender). The quote does not move: the old
/// headers in front of it are dropped and new ones written. The quote is
/// cut to [`MAX_QUOTE`]. False (the caller drops) when `quote_off` leaves
/// too little room in front or the range is outside the frame.
pub fn relay_error_in_place<B: PacketBuf>(pkt: &mut B, quote_off: usize, quote_len: usize, relay: &Relay) -> bool {
    let Some(end) = quote_off.checked_add(quote_len) else { return false };
    if quote_off < ERROR_HEADERS || end > pkt.len() || quote_len < 20 {
        return false;
    }
    let tos = pkt.data()[quote_off + 1];
    let quote_len = quote_len.min(MAX_QUOTE);
    let extra = pkt.len() - (quote_off + quote_len);
    if extra > 0 && !pkt.trim(extra) {
        return false;
    }
    if !pkt.adj(quote_off - ERROR_HEADERS) {
        return false;
    }
    let head = ErrorHead { kind: relay.kind, from: relay.from, to: relay.to, src_mac: relay.src_mac, dst_mac: relay.dst_mac, ident: relay.ident, tos };
    write_error_headers(pkt.data_mut(), &head);
    true
}

/// The next-hop MTU to assume when a "fragmentation needed" carries none
/// (0, from a router older than RFC 1191) or an impossible one: the largest
/// plateau of RFC 1191 §7's table below `len`, the size of the packet that
/// did not fit (at least 68, RFC 791's minimum).
pub fn plateau_below(len: u16) -> u16 {
    const PLATEAUS: [u16; 10] = [32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];
    PLATEAUS.iter().copied().find(|&p| p < len).unwrap_or(68)
}

/// How [`translate_icmp_error`] rewrites an ICMP error: the outer header's
/// addresses, and the addresses and ports of the datagram it quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorRewrite {
    /// New outer source.
    pub outer_src: Ipv4Addr,
    /// New outer destination.
    pub outer_dst: Ipv4Addr,
    /// New source address and port of the quoted datagram.
    pub quoted_src: (Ipv4Addr, u16),
    /// New destination address and port of the quoted datagram.
    pub quoted_dst: (Ipv4Addr, u16),
}

/// Translates, in place, the ICMP error (after the Ethernet header) about a
/// NAT'd flow for the other side of the NAT (RFC 5508 REQ-3/4): the outer
/// addresses (header checksum updated incrementally, TTL decremented); the
/// quoted datagram's addresses and ports, its IP header checksum and, where
/// the quote holds it whole, its TCP or UDP checksum (all incrementally,
/// RFC 1624; a quoted UDP checksum of 0 stays 0); then the ICMP checksum is
/// recomputed over the whole message. Everything else (type, code, the
/// next-hop MTU, a parameter problem's pointer, the quoted TTL) is kept.
///
/// The caller has validated the message (an error type, checksum, a quote
/// of a TCP or UDP header, `ttl > 1`); anything that does not hold is
/// refused with [`DropReason::IcmpErrorUnmatched`], the packet unchanged.
pub fn translate_icmp_error<B: PacketBuf>(pkt: &mut B, rw: &ErrorRewrite) -> Result<(), DropReason> {
    trim_to_ip(pkt);
    let d = pkt.data_mut();
    let Some(ipbuf) = d.get_mut(ETH_LEN..) else { return Err(DropReason::IcmpErrorUnmatched) };
    let (hlen, total) = match Ipv4Packet::new_checked(&*ipbuf) {
        Ok(ip) if ip.ttl() > 1 && ip.protocol() == IpProtocol::Icmp => (ip.header_len(), usize::from(ip.total_len())),
        _ => return Err(DropReason::IcmpErrorUnmatched),
    };
    let (hdr, rest) = ipbuf[..total].split_at_mut(hlen);
    // Check the quote before changing anything.
    let (qproto, qlen) = {
        let Ok(icmp) = Icmpv4Packet::new_checked(&*rest) else { return Err(DropReason::IcmpErrorUnmatched) };
        let Ok(q) = icmp.embedded() else { return Err(DropReason::IcmpErrorUnmatched) };
        if q.is_non_initial_fragment() {
            return Err(DropReason::IcmpErrorUnmatched);
        }
        (q.protocol(), q.payload().len())
    };
    if !matches!(qproto, IpProtocol::Tcp | IpProtocol::Udp) || qlen < 8 {
        return Err(DropReason::IcmpErrorUnmatched);
    }
    let mut h = Ipv4Packet::new_unchecked(hdr);
    h.set_src_addr_incremental(rw.outer_src);
    h.set_dst_addr_incremental(rw.outer_dst);
    h.decrement_ttl();

    let mut icmp = Icmpv4Packet::new_unchecked(&mut *rest);
    {
        let Ok(mut q) = icmp.embedded_mut() else { return Err(DropReason::IcmpErrorUnmatched) };
        let (old_src, old_dst) = (q.src_addr(), q.dst_addr());
        q.set_src_addr_incremental(rw.quoted_src.0);
        q.set_dst_addr_incremental(rw.quoted_dst.0);
        let l4 = q.payload_mut();
        let old_sport = u16::from_be_bytes([l4[0], l4[1]]);
        let old_dport = u16::from_be_bytes([l4[2], l4[3]]);
        l4[0..2].copy_from_slice(&rw.quoted_src.1.to_be_bytes());
        l4[2..4].copy_from_slice(&rw.quoted_dst.1.to_be_bytes());
        // Where the quote holds the transport checksum: UDP's at 6, TCP's at 16.
        let at = if qproto == IpProtocol::Udp { 6 } else { 16 };
        if let Some(field) = l4.get_mut(at..at + 2) {
            let old = u16::from_be_bytes([field[0], field[1]]);
            if !(qproto == IpProtocol::Udp && old == 0) {
                let mut c = checksum::update32(old, old_src.into(), rw.quoted_src.0.into());
                c = checksum::update32(c, old_dst.into(), rw.quoted_dst.0.into());
                c = checksum::update16(c, old_sport, rw.quoted_src.1);
                c = checksum::update16(c, old_dport, rw.quoted_dst.1);
                if qproto == IpProtocol::Udp && c == 0 {
                    c = 0xffff;
                }
                field.copy_from_slice(&c.to_be_bytes());
            }
        }
    }
    icmp.fill_checksum();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::VecBuf;
    use crate::wire::ipip::DfPolicy;

    fn frame(payload_len: usize, proto: u8) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        let total = (20 + payload_len) as u16;
        let mut h = vec![0x45, 0, 0, 0, 0, 7, 0x40, 0, 9, proto, 0, 0, 192, 0, 2, 2, 198, 51, 100, 10];
        h[2..4].copy_from_slice(&total.to_be_bytes());
        let c = checksum::finish(checksum::data(&h));
        h[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&h);
        f.extend((0..payload_len).map(|i| i as u8));
        f
    }

    #[test]
    fn encap_then_decap_restores_the_frame() {
        let orig = frame(30, 17);
        let mut b = VecBuf::new(&orig);
        let p = EncapParams {
            src_addr: Ipv4Addr::new(192, 0, 2, 10),
            dst_addr: Ipv4Addr::new(192, 0, 2, 11),
            ident: 0x1234,
            ttl: 64,
            df: DfPolicy::CopyInner,
        };
        encap(&mut b, &p).unwrap();
        assert_eq!(b.len(), orig.len() + 20);
        assert_eq!(&b.data()[..14], &orig[..14]);
        let d = ipip::parse(&b.data()[14..]).unwrap();
        assert_eq!(d.outer.src_addr(), p.src_addr);
        assert!(d.outer.dont_frag(), "DF copied from the inner header");
        assert_eq!(d.inner.into_inner(), &orig[14..]);
        assert!(decap(&mut b, 20));
        assert_eq!(b.data(), &orig[..]);
    }

    #[test]
    fn encap_drops_ethernet_padding() {
        let mut orig = frame(2, 17);
        orig.resize(60, 0xee);
        let mut b = VecBuf::new(&orig);
        let p = EncapParams { src_addr: Ipv4Addr::new(1, 1, 1, 1), dst_addr: Ipv4Addr::new(2, 2, 2, 2), ident: 1, ttl: 64, df: DfPolicy::CopyInner };
        encap(&mut b, &p).unwrap();
        assert_eq!(b.len(), 14 + 20 + 22);
    }

    #[test]
    fn icmp_error_quotes_header_and_eight_bytes() {
        let orig = frame(100, 17);
        let mut b = VecBuf::new(&orig);
        let me = Ipv4Addr::new(192, 0, 2, 10);
        assert!(icmp_error_in_place(&mut b, IcmpError::FragNeeded { mtu: 1480 }, me, [2, 0, 0, 0, 0, 9], 5));
        let d = b.data();
        assert_eq!(&d[0..6], &orig[6..12], "back to the previous hop");
        assert_eq!(d.len(), 14 + 20 + 8 + 28);
        assert_eq!(checksum::data(&d[14..34]), 0xffff);
        assert_eq!(&d[26..30], &me.octets());
        assert_eq!(&d[30..34], &[192, 0, 2, 2]);
        assert_eq!((d[34], d[35]), (3, 4));
        assert_eq!(u16::from_be_bytes([d[40], d[41]]), 1480);
        assert_eq!(checksum::data(&d[34..]), 0xffff);
        assert_eq!(&d[42..], &orig[14..14 + 28]);
    }

    #[test]
    fn plateau_is_below_the_packet_and_never_below_68() {
        assert_eq!(plateau_below(1500), 1492);
        assert_eq!(plateau_below(1492), 1006);
        assert_eq!(plateau_below(9000), 8166);
        assert_eq!(plateau_below(60), 68);
        assert_eq!(plateau_below(0), 68);
        assert_eq!(plateau_below(u16::MAX), 32000);
    }

    #[test]
    fn relay_refuses_a_quote_outside_the_frame_or_without_room() {
        let f = frame(100, 17);
        let relay = Relay { kind: IcmpError::HostUnreachable, from: Ipv4Addr::new(1, 1, 1, 1), to: Ipv4Addr::new(2, 2, 2, 2), src_mac: [2; 6], dst_mac: [4; 6], ident: 1 };
        for (off, len) in [(14, 40), (60, 200), (60, 10), (usize::MAX, 30), (60, usize::MAX)] {
            let mut b = VecBuf::new(&f);
            assert!(!relay_error_in_place(&mut b, off, len, &relay), "{off} {len}");
            assert_eq!(b.data(), &f[..], "untouched when refused");
        }
        let mut b = VecBuf::new(&f);
        assert!(relay_error_in_place(&mut b, 62, 48, &relay));
        let d = b.data();
        assert_eq!(d.len(), 14 + 20 + 8 + 48);
        assert_eq!(&d[42..], &f[62..110]);
        assert_eq!(checksum::data(&d[14..34]), 0xffff);
        assert_eq!(checksum::data(&d[34..]), 0xffff);
        assert_eq!((d[34], d[35]), (3, 1));
    }

    /// An ICMP error (outer `osrc → odst`, type 3/3) quoting `quote`.
    fn error_frame(osrc: [u8; 4], odst: [u8; 4], ttl: u8, quote: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        let mut h = vec![0x45, 0, 0, 0, 0, 9, 0, 0, ttl, 1, 0, 0];
        h.extend_from_slice(&osrc);
        h.extend_from_slice(&odst);
        let total = (20 + 8 + quote.len()) as u16;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        let c = checksum::finish(checksum::data(&h));
        h[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&h);
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(quote);
        let c = checksum::finish(checksum::data(&icmp));
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&icmp);
        f
    }

    /// A whole TCP or UDP datagram with correct checksums.
    fn datagram(proto: u8, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8], udp_zero: bool) -> Vec<u8> {
        let hl4 = if proto == 17 { 8 } else { 20 };
        let l4len = hl4 + payload.len();
        let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 61, proto, 0, 0];
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h[2..4].copy_from_slice(&((20 + l4len) as u16).to_be_bytes());
        let c = checksum::finish(checksum::data(&h));
        h[10..12].copy_from_slice(&c.to_be_bytes());
        let mut l4 = vec![0u8; hl4];
        l4[0..2].copy_from_slice(&sport.to_be_bytes());
        l4[2..4].copy_from_slice(&dport.to_be_bytes());
        if proto == 17 {
            l4[4..6].copy_from_slice(&(l4len as u16).to_be_bytes());
        } else {
            l4[12] = 0x50;
            l4[13] = 0x10;
        }
        l4.extend_from_slice(payload);
        let at = if proto == 17 { 6 } else { 16 };
        if !(proto == 17 && udp_zero) {
            let ph = checksum::pseudo_header_v4(src.into(), dst.into(), IpProtocol::from(proto), l4len as u16);
            let mut c = checksum::finish(checksum::combine(&[ph, checksum::data(&l4)]));
            if proto == 17 && c == 0 {
                c = 0xffff;
            }
            l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        h.extend_from_slice(&l4);
        h
    }

    proptest::proptest! {
        /// The translated error equals what a full recompute gives: the
        /// quoted datagram rebuilt with the new addresses and ports (its
        /// header checksum, and its transport checksum where quoted; a UDP
        /// checksum of 0 stays 0), valid outer and ICMP checksums.
        #[test]
        fn translation_equals_a_full_recompute(
            udp in proptest::bool::ANY,
            udp_zero in proptest::bool::ANY,
            a in proptest::array::uniform4(proptest::num::u8::ANY),
            b in proptest::array::uniform4(proptest::num::u8::ANY),
            na in proptest::array::uniform4(proptest::num::u8::ANY),
            nb in proptest::array::uniform4(proptest::num::u8::ANY),
            ports in proptest::array::uniform4(proptest::num::u16::ANY),
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
            cut in 8usize..80,
        ) {
            let proto = if udp { 17 } else { 6 };
            let orig = datagram(proto, a, b, ports[0], ports[1], &payload, udp_zero);
            let quote = &orig[..(20 + cut).min(orig.len())];
            let f = error_frame([203, 0, 113, 1], [192, 0, 2, 12], 64, quote);
            let mut buf = VecBuf::new(&f);
            let rw = ErrorRewrite {
                outer_src: Ipv4Addr::new(198, 51, 100, 10),
                outer_dst: Ipv4Addr::new(203, 0, 113, 100),
                quoted_src: (na.into(), ports[2]),
                quoted_dst: (nb.into(), ports[3]),
            };
            translate_icmp_error(&mut buf, &rw).unwrap();
            let d = buf.data();
            proptest::prop_assert_eq!(d.len(), f.len());
            proptest::prop_assert_eq!(checksum::data(&d[14..34]), 0xffff);
            proptest::prop_assert_eq!(&d[26..34], &[198, 51, 100, 10, 203, 0, 113, 100][..]);
            proptest::prop_assert_eq!(d[22], 63, "outer TTL");
            proptest::prop_assert_eq!(checksum::data(&d[34..]), 0xffff, "ICMP checksum");
            let mut want = datagram(proto, na, nb, ports[2], ports[3], &payload, udp_zero)[..quote.len()].to_vec();
            if !udp && quote.len() == 20 + 17 {
                // The quote ends inside the TCP checksum: half of it cannot
                // be updated (the other byte is not quoted) and stays.
                want[36] = quote[36];
            }
            proptest::prop_assert_eq!(&d[42..], &want[..]);
        }
    }

    #[test]
    fn translation_refuses_what_it_cannot_translate() {
        let rw = ErrorRewrite { outer_src: Ipv4Addr::new(1, 1, 1, 1), outer_dst: Ipv4Addr::new(2, 2, 2, 2), quoted_src: (Ipv4Addr::new(3, 3, 3, 3), 1), quoted_dst: (Ipv4Addr::new(4, 4, 4, 4), 2) };
        let q = datagram(17, [1, 2, 3, 4], [5, 6, 7, 8], 1, 2, b"abcdefgh", false);
        // TTL 1, a quote of another protocol, a quote too short.
        let mut icmpq = q.clone();
        icmpq[9] = 1;
        for f in [error_frame([9; 4], [8; 4], 1, &q), error_frame([9; 4], [8; 4], 64, &icmpq[..28]), error_frame([9; 4], [8; 4], 64, &q[..24])] {
            let mut b = VecBuf::new(&f);
            assert!(translate_icmp_error(&mut b, &rw).is_err());
            assert_eq!(b.data(), &f[..], "untouched when refused");
        }
    }

    #[test]
    fn no_icmp_error_about_an_icmp_error_or_a_later_fragment() {
        let mut err = frame(8, 1);
        err[34] = 3;
        let mut b = VecBuf::new(&err);
        assert!(!icmp_error_in_place(&mut b, IcmpError::TtlExceeded, Ipv4Addr::new(1, 2, 3, 4), [2; 6], 1));
        assert_eq!(b.data(), &err[..], "untouched when refused");
        let mut frag = frame(8, 17);
        frag[20] = 0x00;
        frag[21] = 0x10; // offset 128
        let c = checksum::finish(checksum::data(&{
            let mut h = frag[14..34].to_vec();
            h[10] = 0;
            h[11] = 0;
            h
        }));
        frag[24..26].copy_from_slice(&c.to_be_bytes());
        let mut b = VecBuf::new(&frag);
        assert!(!icmp_error_in_place(&mut b, IcmpError::TtlExceeded, Ipv4Addr::new(1, 2, 3, 4), [2; 6], 1));
    }
}
