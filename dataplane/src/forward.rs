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
use crate::wire::{checksum, IpProtocol, Ipv4Packet};

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
    let d = pkt.data();
    if d.len() < ETH_LEN + 20 {
        return false;
    }
    let Ok(ip) = Ipv4Packet::new_checked(&d[ETH_LEN..]) else { return false };
    let src = ip.src_addr();
    if src.is_multicast() || src.is_broadcast() || src.is_unspecified() || src.is_loopback() {
        return false;
    }
    if ip.is_non_initial_fragment() {
        return false;
    }
    let hlen = ip.header_len();
    let total = usize::from(ip.total_len());
    if ip.protocol() == IpProtocol::Icmp {
        let t = ip.payload().first().copied().unwrap_or(0);
        // Errors (3, 4, 5, 11, 12) are never answered with an error.
        if !matches!(t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18) {
            return false;
        }
    }
    let quoted = hlen + (total - hlen).min(8);
    let peer: Mac = [d[6], d[7], d[8], d[9], d[10], d[11]];
    let tos = ip.tos();

    // New layout: eth(14) | ip(20) | icmp(8) | quoted.
    const NEW: usize = 20 + 8;
    if !pkt.prepend(NEW) {
        return false;
    }
    let len = pkt.len();
    let keep = ETH_LEN + NEW + quoted;
    if len > keep {
        pkt.trim(len - keep);
    }
    let d = pkt.data_mut();
    d[0..6].copy_from_slice(&peer);
    d[6..12].copy_from_slice(&our_mac);
    d[12..14].copy_from_slice(&[0x08, 0x00]);
    let total_new = (20 + 8 + quoted) as u16;
    let h = &mut d[ETH_LEN..ETH_LEN + 20];
    h.copy_from_slice(&[0x45, tos & 0xfc, 0, 0, 0, 0, 0, 0, ORIGIN_TTL, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    h[2..4].copy_from_slice(&total_new.to_be_bytes());
    h[4..6].copy_from_slice(&ident.to_be_bytes());
    h[12..16].copy_from_slice(&from.octets());
    h[16..20].copy_from_slice(&src.octets());
    let c = checksum::finish(checksum::data(h));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    let (t, code, rest) = kind.type_code_rest();
    let icmp = &mut d[ETH_LEN + 20..];
    icmp[0] = t;
    icmp[1] = code;
    icmp[2] = 0;
    icmp[3] = 0;
    icmp[4..8].copy_from_slice(&rest);
    let c = checksum::finish(checksum::data(icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    true
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
