//! IP-in-IP (RFC 2003): an IPv4 datagram carried as the payload of another,
//! protocol 4. The proxies' tunnels (IAP → RAP → JAP) are this.
//!
//! [`parse`] splits a received packet into its outer and inner views;
//! [`encapsulate_in_place`] writes the 20-byte outer header into room left
//! in front of an inner packet (the mbuf `prepend` case), and
//! [`encapsulate`] copies an inner packet behind a new outer header.
//!
//! Policy stays with the caller: decrementing the inner TTL at tunnel entry,
//! refusing loops and nested tunnels, choosing a fresh ident and answering
//! "fragmentation needed" (RFC 2003 §3.1, §4).

use core::net::Ipv4Addr;

use super::checksum;
use super::ip::IpProtocol;
use super::ipv4::{Packet as Ipv4Packet, HEADER_LEN};
use super::{Error, Result};

/// The bytes an outer header adds.
pub const OUTER_HEADER_LEN: usize = HEADER_LEN;

/// A received tunnel packet: the outer header and the datagram inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decap<'a> {
    /// The outer header; its payload is exactly `inner`.
    pub outer: Ipv4Packet<&'a [u8]>,
    /// The encapsulated datagram, `check_len`ed.
    pub inner: Ipv4Packet<&'a [u8]>,
}

/// Parses an IP-in-IP packet.
///
/// Checks, in order: the outer header (`check_len` and checksum); protocol 4
/// (else `Unsupported`); the outer datagram is whole (`Fragmented`: the
/// proxy does not reassemble tunnel fragments); the inner header
/// (`check_len` and checksum); the inner datagram fills the outer payload
/// exactly (`Malformed`, so nothing hides behind it).
pub fn parse(buffer: &[u8]) -> Result<Decap<'_>> {
    let outer = Ipv4Packet::new_checked(buffer)?;
    if !outer.verify_checksum() {
        return Err(Error::BadChecksum);
    }
    if outer.protocol() != IpProtocol::IpIp {
        return Err(Error::Unsupported);
    }
    if outer.is_fragment() {
        return Err(Error::Fragmented);
    }
    let payload = outer.payload_slice();
    let inner = Ipv4Packet::new_checked(payload)?;
    if !inner.verify_checksum() {
        return Err(Error::BadChecksum);
    }
    if usize::from(inner.total_len()) != payload.len() {
        return Err(Error::Malformed);
    }
    Ok(Decap { outer, inner })
}

/// How the outer DF bit is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum DfPolicy {
    /// Copy the inner DF (RFC 2003 §3.1's default).
    #[default]
    CopyInner,
    /// Always set DF (the tunnel does its own path-MTU discovery).
    Set,
    /// Never set DF (let the tunnel path fragment).
    Clear,
}

/// What the outer header carries besides what is copied from the inner one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EncapParams {
    /// Tunnel entry point (this proxy's unicast address).
    pub src_addr: Ipv4Addr,
    /// Tunnel exit point (the next proxy).
    pub dst_addr: Ipv4Addr,
    /// A fresh identification (RFC 6864: unique per (src, dst, proto)
    /// while fragments may be in flight).
    pub ident: u16,
    /// The tunnel's TTL.
    pub ttl: u8,
    /// DF policy.
    pub df: DfPolicy,
}

/// Writes an outer header into `buffer[..20]` for the IPv4 datagram at
/// `buffer[20..]`, per RFC 2003 §3.1: version 4, IHL 5, TOS copied, total
/// length = 20 + inner total length, the given ident, DF per policy (MF and
/// offset zero), the given TTL, protocol 4, checksum filled.
///
/// The inner datagram must pass `check_len` (else its error); bytes after
/// its total length are not counted. `Malformed` if the result would exceed
/// 65 535 bytes. Returns the tunnel packet's length. The inner header is not
/// modified.
pub fn encapsulate_in_place(buffer: &mut [u8], params: &EncapParams) -> Result<usize> {
    let (outer, inner) = buffer
        .split_at_mut_checked(OUTER_HEADER_LEN)
        .ok_or(Error::Truncated)?;
    let inner = Ipv4Packet::new_checked(&*inner)?;
    let total = usize::from(inner.total_len()) + OUTER_HEADER_LEN;
    let total_len = u16::try_from(total).map_err(|_| Error::Malformed)?;
    let df = match params.df {
        DfPolicy::CopyInner => inner.dont_frag(),
        DfPolicy::Set => true,
        DfPolicy::Clear => false,
    };
    // The whole header built in registers and stored once: the setters
    // (read-modify-write per field, then a checksum pass over the bytes
    // just written) cost ≈ 80 instructions per tunnelled packet.
    let (tl, id) = (total_len.to_be_bytes(), params.ident.to_be_bytes());
    let (s, d) = (params.src_addr.octets(), params.dst_addr.octets());
    let flags = if df { 0x40 } else { 0 };
    let mut h = [
        0x45, inner.tos(), tl[0], tl[1], id[0], id[1], flags, 0, params.ttl, IpProtocol::IpIp.number(), 0, 0,
        s[0], s[1], s[2], s[3], d[0], d[1], d[2], d[3],
    ];
    let c = checksum::finish(checksum::header20(&h)).to_be_bytes();
    (h[10], h[11]) = (c[0], c[1]);
    outer.copy_from_slice(&h);
    Ok(total)
}

/// Copies the datagram `inner` to `out[20..]` and writes the outer header in
/// front ([`encapsulate_in_place`]). `Truncated` if `out` is too short for
/// `20 + inner total length`; only the inner total length is copied.
pub fn encapsulate(inner: &[u8], out: &mut [u8], params: &EncapParams) -> Result<usize> {
    let inner_len = usize::from(Ipv4Packet::new_checked(inner)?.total_len());
    let end = OUTER_HEADER_LEN
        .checked_add(inner_len)
        .ok_or(Error::Malformed)?;
    let dst = out.get_mut(OUTER_HEADER_LEN..end).ok_or(Error::Truncated)?;
    dst.copy_from_slice(&inner[..inner_len]);
    encapsulate_in_place(&mut out[..end], params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::Repr as Ipv4Repr;
    use crate::wire::testdata;
    use crate::wire::udp::Packet as UdpPacket;
    use proptest::prelude::*;

    const PARAMS: EncapParams = EncapParams {
        src_addr: Ipv4Addr::new(203, 0, 113, 1),
        dst_addr: Ipv4Addr::new(203, 0, 113, 2),
        ident: 7,
        ttl: 64,
        df: DfPolicy::CopyInner,
    };

    #[test]
    fn parse_real_tunnel_packet() {
        let d = parse(&testdata::IPIP_DNS_QUERY).unwrap();
        assert_eq!(d.outer.src_addr(), PARAMS.src_addr);
        assert_eq!(d.outer.dst_addr(), PARAMS.dst_addr);
        assert_eq!(d.outer.protocol(), IpProtocol::IpIp);
        assert_eq!(d.inner.clone().into_inner(), &testdata::UDP_DNS_QUERY[..]);
        let udp = UdpPacket::new_checked(d.inner.payload()).unwrap();
        assert_eq!(udp.dst_port(), 53);
    }

    #[test]
    fn encapsulate_matches_real_tunnel_packet() {
        let mut out = [0u8; 100];
        let n = encapsulate(&testdata::UDP_DNS_QUERY, &mut out, &PARAMS).unwrap();
        assert_eq!(&out[..n], &testdata::IPIP_DNS_QUERY[..]);
        // In place: room in front of the inner packet, padding behind it.
        let mut buf = [0xEEu8; 90];
        buf[20..77].copy_from_slice(&testdata::UDP_DNS_QUERY);
        assert_eq!(encapsulate_in_place(&mut buf, &PARAMS), Ok(77));
        assert_eq!(&buf[..77], &testdata::IPIP_DNS_QUERY[..]);
        // etherparse reads outer and inner.
        let (outer, rest) = etherparse::Ipv4Header::from_slice(&buf[..77]).unwrap();
        assert_eq!(outer.protocol, etherparse::IpNumber::IPV4);
        let (inner, _) = etherparse::Ipv4Header::from_slice(rest).unwrap();
        assert_eq!(inner.destination, [198, 51, 100, 53]);
    }

    #[test]
    fn df_and_tos_follow_the_inner_header() {
        let mut out = [0u8; 100];
        // TCP_SYN has DF set; give it a TOS.
        let mut inner = testdata::TCP_SYN;
        let mut p = Ipv4Packet::new_checked(&mut inner[..]).unwrap();
        p.set_tos_incremental(0xB8);
        let n = encapsulate(&inner, &mut out, &PARAMS).unwrap();
        let o = Ipv4Packet::new_checked(&out[..n]).unwrap();
        assert!(o.dont_frag() && o.verify_checksum());
        assert_eq!(o.tos(), 0xB8);
        for (df, want) in [(DfPolicy::Clear, false), (DfPolicy::Set, true)] {
            let n = encapsulate(
                &testdata::UDP_DNS_QUERY,
                &mut out,
                &EncapParams { df, ..PARAMS },
            )
            .unwrap();
            assert_eq!(
                Ipv4Packet::new_checked(&out[..n]).unwrap().dont_frag(),
                want
            );
        }
    }

    #[test]
    fn rejects() {
        assert_eq!(
            parse(&testdata::UDP_DNS_QUERY).err(),
            Some(Error::Unsupported)
        );
        let mut b = testdata::IPIP_DNS_QUERY;
        b[30] ^= 1; // inner checksum
        assert_eq!(parse(&b).err(), Some(Error::BadChecksum));
        let mut b = testdata::IPIP_DNS_QUERY;
        let mut o = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        o.set_more_frags(true);
        o.fill_checksum();
        assert_eq!(parse(&b).err(), Some(Error::Fragmented));
        // Inner shorter than the outer payload.
        let mut b = testdata::IPIP_DNS_QUERY;
        let mut i = Ipv4Packet::new_unchecked(&mut b[20..]);
        i.set_total_len_incremental(56);
        assert_eq!(parse(&b).err(), Some(Error::Malformed));
        let mut out = [0u8; 60];
        assert_eq!(
            encapsulate(&testdata::UDP_DNS_QUERY, &mut out, &PARAMS),
            Err(Error::Truncated)
        );
        assert_eq!(
            encapsulate_in_place(&mut out[..10], &PARAMS),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn oversized_is_refused() {
        let mut big = vec![0u8; 65535 + 20];
        let repr = Ipv4Repr {
            src_addr: Ipv4Addr::new(192, 0, 2, 1),
            dst_addr: Ipv4Addr::new(192, 0, 2, 2),
            protocol: IpProtocol::Udp,
            payload_len: 65535 - 20,
            ttl: 1,
            dscp: 0,
            ecn: 0,
            ident: 0,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
            options: Default::default(),
        };
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut big[20..]));
        assert_eq!(
            encapsulate_in_place(&mut big, &PARAMS),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn truncated_at_every_length() {
        let pkt = &testdata::IPIP_DNS_QUERY[..];
        for n in 0..pkt.len() {
            assert_eq!(parse(&pkt[..n]).err(), Some(Error::Truncated), "len {n}");
        }
    }

    proptest! {
        #[test]
        fn encap_then_parse(inner in crate::wire::ipv4::tests::arb_repr(100), ident in any::<u16>(), ttl in any::<u8>()) {
            let mut buf = vec![0u8; 20 + inner.buffer_len()];
            inner.emit(&mut Ipv4Packet::new_unchecked(&mut buf[20..]));
            let params = EncapParams { ident, ttl, ..PARAMS };
            let n = encapsulate_in_place(&mut buf, &params).unwrap();
            // Inner fragments are tunnelled as they are; the outer header
            // never carries their fragment bits.
            let d = parse(&buf[..n]).unwrap();
            prop_assert_eq!(Ipv4Repr::parse(&d.inner), Ok(inner));
            prop_assert_eq!(d.outer.ident(), ident);
            prop_assert_eq!(d.outer.ttl(), ttl);
            prop_assert_eq!(d.outer.dont_frag(), inner.dont_frag);
            prop_assert_eq!(d.outer.tos(), inner.dscp << 2 | inner.ecn);
            prop_assert!(!d.outer.is_fragment());
        }
    }
}
