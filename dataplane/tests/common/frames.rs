//! Frames built with etherparse only (its own header writers and checksum
//! code), never with ours: what the tests expect the proxy to send.

use std::net::Ipv4Addr;

use etherparse::{IpFragOffset, IpNumber, Ipv4Header, TcpHeader, TcpOptionElement, UdpHeader};
use pias_dataplane::neighbour::Mac;

use super::topology::*;

/// An untagged Ethernet II frame carrying IPv4.
pub fn eth(dst: Mac, src: Mac, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(payload);
    f
}

/// A TCP segment's header fields (flags: SYN, or ACK when not a SYN).
#[derive(Clone, Copy)]
pub struct Tcp {
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
    pub ttl: u8,
    pub ident: u16,
    pub syn: bool,
    pub mss: Option<u16>,
}

/// A TCP segment in IPv4 (DF set), both checksums by etherparse.
pub fn tcp(t: Tcp, payload: &[u8]) -> Vec<u8> {
    let mut th = TcpHeader::new(t.sport, t.dport, 1000, 64240);
    th.syn = t.syn;
    th.ack = !t.syn;
    if !t.syn {
        th.acknowledgment_number = 5000;
    }
    if let Some(m) = t.mss {
        th.set_options(&[TcpOptionElement::MaximumSegmentSize(m)]).unwrap();
    }
    let mut ip = Ipv4Header::new((th.header_len() + payload.len()) as u16, t.ttl, IpNumber::TCP, t.src.octets(), t.dst.octets()).unwrap();
    ip.identification = t.ident;
    ip.dont_fragment = true;
    ip.header_checksum = ip.calc_header_checksum();
    th.checksum = th.calc_checksum_ipv4(&ip, payload).unwrap();
    let mut out = Vec::new();
    ip.write(&mut out).unwrap();
    th.write(&mut out).unwrap();
    out.extend_from_slice(payload);
    out
}

/// An IP-in-IP packet (outer TTL 64) carrying `inner`.
pub fn ipip(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, df: bool, inner: &[u8]) -> Vec<u8> {
    let mut ip = Ipv4Header::new(inner.len() as u16, 64, IpNumber::IPV4, src.octets(), dst.octets()).unwrap();
    ip.identification = ident;
    ip.dont_fragment = df;
    ip.header_checksum = ip.calc_header_checksum();
    let mut out = Vec::new();
    ip.write(&mut out).unwrap();
    out.extend_from_slice(inner);
    out
}

/// The client's SYN to the TCP group (MSS 1460).
pub fn client_syn(ttl: u8) -> Tcp {
    Tcp { src: CLIENT, sport: CPORT, dst: AA, dport: 80, ttl, ident: 0x1111, syn: true, mss: Some(1460) }
}

/// The target's SYN-ACK, or our reply made of it (`AA:80 → AC:p`).
pub fn synack(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, ttl: u8) -> Tcp {
    Tcp { src, sport, dst, dport, ttl, ident: 0x2222, syn: true, mss: Some(1400) }
}

/// A UDP datagram's IP header fields.
#[derive(Clone, Copy)]
pub struct Udp {
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
    pub ttl: u8,
    pub ident: u16,
}

/// The UDP header and payload (checksum over `u`'s addresses).
pub fn udp_l4(u: Udp, payload: &[u8]) -> Vec<u8> {
    let h = UdpHeader::with_ipv4_checksum(u.sport, u.dport, &ipv4_header(u.src, u.dst, u.ttl, u.ident, IpNumber::UDP, 8 + payload.len()), payload).unwrap();
    let mut out = h.to_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// An IPv4 header without options, DF clear, checksum filled.
pub fn ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, ident: u16, proto: IpNumber, payload_len: usize) -> Ipv4Header {
    let mut ip = Ipv4Header::new(payload_len as u16, ttl, proto, src.octets(), dst.octets()).unwrap();
    ip.identification = ident;
    ip.dont_fragment = false;
    ip.header_checksum = ip.calc_header_checksum();
    ip
}

/// A whole UDP datagram in IPv4 (DF clear).
pub fn udp(u: Udp, payload: &[u8]) -> Vec<u8> {
    let l4 = udp_l4(u, payload);
    let mut out = Vec::new();
    ipv4_header(u.src, u.dst, u.ttl, u.ident, IpNumber::UDP, l4.len()).write(&mut out).unwrap();
    out.extend_from_slice(&l4);
    out
}

/// The IPv4 fragments of a UDP datagram, `chunk` bytes of transport data
/// each (a multiple of 8; the last one shorter), as a sender fragments.
pub fn udp_fragments(u: Udp, payload: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    assert_eq!(chunk % 8, 0);
    let l4 = udp_l4(u, payload);
    l4.chunks(chunk)
        .enumerate()
        .map(|(i, part)| {
            let mut ip = ipv4_header(u.src, u.dst, u.ttl, u.ident, IpNumber::UDP, part.len());
            ip.fragment_offset = IpFragOffset::try_new((i * chunk / 8) as u16).unwrap();
            ip.more_fragments = (i + 1) * chunk < l4.len();
            ip.header_checksum = ip.calc_header_checksum();
            let mut out = Vec::new();
            ip.write(&mut out).unwrap();
            out.extend_from_slice(part);
            out
        })
        .collect()
}

/// An ICMP error in IPv4: `ty`/`code`, the 4 bytes after the checksum,
/// and the quoted bytes; both checksums by etherparse.
#[allow(clippy::too_many_arguments)]
pub fn icmp_error(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, ident: u16, ty: u8, code: u8, rest: [u8; 4], quote: &[u8]) -> Vec<u8> {
    let mut icmp = vec![ty, code, 0, 0];
    icmp.extend_from_slice(&rest);
    icmp.extend_from_slice(quote);
    let c = etherparse::checksum::Sum16BitWords::new().add_slice(&icmp).ones_complement().to_be();
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut out = Vec::new();
    ipv4_header(src, dst, ttl, ident, IpNumber::ICMP, icmp.len()).write(&mut out).unwrap();
    out.extend_from_slice(&icmp);
    out
}

/// The 4 bytes after the checksum of a "fragmentation needed".
pub fn mtu_rest(mtu: u16) -> [u8; 4] {
    let m = mtu.to_be_bytes();
    [0, 0, m[0], m[1]]
}
