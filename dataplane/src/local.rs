//! Traffic for the proxy itself: the worker's first classification step.
//!
//! Before any PIAS stage, a worker decides what a frame is to *this host*:
//! ARP for one of our addresses goes to the control core (which keeps the
//! neighbour table); an ICMP echo request to our unicast or anycast address
//! is answered in place, on the worker; anything else addressed to our
//! unicast address (OSPF, BFD, SSH, …) goes to the kernel through the
//! exception tap; every malformed frame is dropped under a named reason.
//! Traffic to anycast groups is the IAP's (a later stage); until it exists
//! such packets are counted as `anycast_no_group`.
//!
//! Validation follows RFC 1812 §5.2.2 (version 4, IHL ≥ 5, total length ≥
//! IHL×4 and within the frame, header checksum) and §5.3.7 (no multicast,
//! broadcast, loopback or unspecified source).

use core::net::Ipv4Addr;

use crate::iface::Punt;
use crate::neighbour::Mac;
use crate::reason::DropReason;
use crate::types::Ipv4Prefix;
use crate::wire::{
    checksum, ArpOperation, ArpPacket, EtherType, EthernetAddress, EthernetFrame, Error as WireError,
    IpProtocol, Ipv4Packet,
};

/// One port's own addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortAddrs {
    /// The port's MAC.
    pub mac: Mac,
    /// The proxy's unicast address on this port.
    pub ip: Ipv4Addr,
    /// The on-link subnet.
    pub subnet: Ipv4Prefix,
    /// The next hop for everything off-link.
    pub gateway: Ipv4Addr,
    /// True when the port has a kernel exception tap.
    pub exception: bool,
}

/// Every address the proxy answers for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalAddrs {
    /// Per port, indexed like the config.
    pub ports: Vec<PortAddrs>,
    /// The anycast prefixes served (every address in them is ours).
    pub anycast: Vec<Ipv4Prefix>,
}

impl LocalAddrs {
    /// True when `ip` is in a served anycast prefix.
    #[inline]
    pub fn is_anycast(&self, ip: Ipv4Addr) -> bool {
        self.anycast.iter().any(|p| p.contains(ip))
    }

    /// True when `ip` is one of our unicast addresses (any port).
    #[inline]
    pub fn is_unicast_own(&self, ip: Ipv4Addr) -> bool {
        self.ports.iter().any(|p| p.ip == ip)
    }

    /// True when ARP on port `port` for `ip` should be answered by us: the
    /// port's own address or any anycast address.
    pub fn is_ours(&self, port: usize, ip: Ipv4Addr) -> bool {
        self.ports.get(port).is_some_and(|p| p.ip == ip) || self.is_anycast(ip)
    }
}

/// What the worker does with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Rewritten in place: send it back out of the port it came in on.
    Reply,
    /// Hand it to the control core.
    Punt(crate::iface::Punt),
    /// Drop it and count the reason.
    Drop(DropReason),
}

const ETH_HDR: usize = 14;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
/// TTL of packets the proxy originates (RFC 1700's default, as Linux).
pub const DEFAULT_TTL: u8 = 64;

/// What [`classify`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Handled here: answered, punted or dropped.
    Done(Verdict),
    /// A valid IPv4 packet (untagged, after 14 bytes of Ethernet) to our
    /// unicast address that is not an echo request: tunnels, reverse NAT,
    /// control datagrams, ICMP errors, or the host's own traffic.
    ToUnicast,
    /// A valid IPv4 packet to an anycast address that is not an echo
    /// request: the IAP's.
    ToAnycast,
}

/// Classifies (and, for echo requests, answers in place) the frame that
/// arrived on port `port`: the checks every packet passes before any PIAS
/// stage. Never panics, whatever the bytes.
pub fn classify(frame: &mut [u8], port: usize, local: &LocalAddrs) -> Class {
    let Some(me) = local.ports.get(port) else {
        return Class::Done(Verdict::Drop(DropReason::ControlRejected));
    };
    let Ok(eth) = EthernetFrame::new_checked(&*frame) else {
        return Class::Done(Verdict::Drop(DropReason::EthTruncated));
    };
    let dst = eth.dst_addr();
    if dst.is_unicast() && dst.0 != me.mac {
        return Class::Done(Verdict::Drop(DropReason::EthNotOurMac));
    }
    if !eth.src_addr().is_unicast() {
        return Class::Done(Verdict::Drop(DropReason::EthBadSource));
    }
    if eth.is_tagged() {
        return Class::Done(Verdict::Drop(DropReason::EthVlan));
    }
    let c = match eth.ethertype() {
        EtherType::Arp => Class::Done(arp_verdict(eth.payload(), port, local)),
        EtherType::Ipv4 => ipv4_class(frame, ETH_HDR, me, local, dst.0),
        _ => Class::Done(Verdict::Drop(DropReason::EthUnsupportedType)),
    };
    match c {
        // The exception path needs a tap; without one it is a drop.
        Class::Done(Verdict::Punt(Punt::Exception)) if !me.exception => Class::Done(Verdict::Drop(DropReason::NoExceptionPath)),
        c => c,
    }
}

/// [`classify`] for a proxy that serves no group yet (the foundation's
/// behaviour, kept for tests): the host's own traffic goes to the exception
/// path, anycast traffic is counted as having no group.
pub fn process(frame: &mut [u8], port: usize, local: &LocalAddrs) -> Verdict {
    let exception = local.ports.get(port).is_some_and(|p| p.exception);
    match classify(frame, port, local) {
        Class::Done(v) => v,
        Class::ToUnicast if exception => Verdict::Punt(Punt::Exception),
        Class::ToUnicast => Verdict::Drop(DropReason::NoExceptionPath),
        Class::ToAnycast => {
            let proto = frame.get(ETH_HDR + 9).copied();
            Verdict::Drop(if proto == Some(1) { DropReason::IcmpUnhandled } else { DropReason::AnycastNoGroup })
        }
    }
}

fn arp_verdict(payload: &[u8], port: usize, local: &LocalAddrs) -> Verdict {
    let Ok(arp) = ArpPacket::new_checked(payload) else {
        return Verdict::Drop(DropReason::ArpMalformed);
    };
    if arp.hardware_type() != 1 || arp.protocol_type() != EtherType::Ipv4 || arp.hardware_len() != 6 || arp.protocol_len() != 4 {
        return Verdict::Drop(DropReason::ArpMalformed);
    }
    match arp.operation() {
        ArpOperation::Request | ArpOperation::Reply => {}
        ArpOperation::Unknown(_) => return Verdict::Drop(DropReason::ArpMalformed),
    }
    if !local.is_ours(port, arp.target_protocol_addr()) {
        return Verdict::Drop(DropReason::ArpNotForUs);
    }
    Verdict::Punt(crate::iface::Punt::Arp)
}

fn bad_source(ip: Ipv4Addr, local: &LocalAddrs, me: &PortAddrs) -> bool {
    ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_loopback()
        || ip.is_unspecified()
        || (me.subnet.len < 31 && ip == me.subnet.broadcast())
        || local.is_unicast_own(ip)
        || local.is_anycast(ip)
}

fn ipv4_class(frame: &mut [u8], off: usize, me: &PortAddrs, local: &LocalAddrs, dst_mac: Mac) -> Class {
    let Some(ipbuf) = frame.get_mut(off..) else {
        return Class::Done(Verdict::Drop(DropReason::EthTruncated));
    };
    let len = ipbuf.len();
    if len < 20 {
        return Class::Done(Verdict::Drop(DropReason::Ipv4Truncated));
    }
    let ip = match Ipv4Packet::new_checked(&*ipbuf) {
        Ok(ip) => ip,
        Err(WireError::BadVersion) => return Class::Done(Verdict::Drop(DropReason::Ipv4BadVersion)),
        Err(_) => {
            let ihl = usize::from(ipbuf[0] & 0x0f) * 4;
            return Class::Done(Verdict::Drop(if ihl < 20 || ihl > len { DropReason::Ipv4BadIhl } else { DropReason::Ipv4BadLength }));
        }
    };
    if !ip.verify_checksum() {
        return Class::Done(Verdict::Drop(DropReason::Ipv4BadChecksum));
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if bad_source(src, local, me) {
        return Class::Done(Verdict::Drop(DropReason::Ipv4BadSource));
    }
    let to_unicast = dst == me.ip;
    let to_anycast = !to_unicast && local.is_anycast(dst);
    if !to_unicast && !to_anycast {
        // Link-local multicast and broadcast (OSPF hellos, …) are the
        // kernel's; any other destination is not ours to forward.
        let group = dst.is_multicast() || dst.is_broadcast() || (me.subnet.len < 31 && dst == me.subnet.broadcast());
        if group || dst_mac == [0xff; 6] {
            return Class::Done(Verdict::Punt(Punt::Exception));
        }
        return Class::Done(Verdict::Drop(DropReason::Ipv4NotForUs));
    }
    if dst_mac[0] & 1 != 0 {
        // Unicast IP in a broadcast/multicast frame (RFC 1122 §3.3.6).
        return Class::Done(Verdict::Drop(DropReason::Ipv4NotForUs));
    }
    let is_echo = ip.protocol() == IpProtocol::Icmp && !ip.is_fragment();
    let hlen = ip.header_len();
    let total = usize::from(ip.total_len());
    if is_echo {
        let icmp = &ipbuf[hlen..total];
        if icmp.len() < 8 {
            return Class::Done(Verdict::Drop(DropReason::IcmpTruncated));
        }
        if icmp[0] == ICMP_ECHO_REQUEST {
            if checksum::data(icmp) != 0xffff {
                return Class::Done(Verdict::Drop(DropReason::IcmpBadChecksum));
            }
            echo_reply_in_place(frame, off, hlen, total, me.mac, dst);
            return Class::Done(Verdict::Reply);
        }
    }
    if to_unicast {
        Class::ToUnicast
    } else {
        Class::ToAnycast
    }
}

/// Turns a validated echo request into its reply: MACs and addresses
/// swapped (the reply's source is the address that was pinged, unicast or
/// anycast), a fresh TTL, type 0, both checksums updated (RFC 1624).
fn echo_reply_in_place(frame: &mut [u8], off: usize, hlen: usize, total: usize, our_mac: Mac, pinged: Ipv4Addr) {
    let Ok(mut eth) = EthernetFrame::new_checked(&mut frame[..]) else { return };
    let peer = eth.src_addr();
    eth.set_dst_addr(peer);
    eth.set_src_addr(EthernetAddress(our_mac));
    let Some(ipbuf) = frame.get_mut(off..off + total) else { return };
    let Ok(mut ip) = Ipv4Packet::new_checked(&mut ipbuf[..]) else { return };
    let src = ip.src_addr();
    ip.set_dst_addr_incremental(src);
    ip.set_src_addr_incremental(pinged);
    ip.set_ttl_incremental(DEFAULT_TTL);
    let icmp = &mut ipbuf[hlen..total];
    let old = u16::from_be_bytes([icmp[0], icmp[1]]);
    let new = u16::from_be_bytes([ICMP_ECHO_REPLY, icmp[1]]);
    icmp[0] = ICMP_ECHO_REPLY;
    let c = checksum::update16(u16::from_be_bytes([icmp[2], icmp[3]]), old, new);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
}

/// The ARP operation, as the control core needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpOp {
    /// Who has `target_ip`?
    Request,
    /// `sender_ip` is at `sender_mac`.
    Reply,
}

/// What the control core reads from a punted ARP frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpFacts {
    /// Request or reply.
    pub op: ArpOp,
    /// Sender hardware address.
    pub sender_mac: Mac,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

/// Parses an Ethernet/IPv4 ARP frame; `None` for anything else.
pub fn arp_facts(frame: &[u8]) -> Option<ArpFacts> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.is_tagged() || eth.ethertype() != EtherType::Arp {
        return None;
    }
    let arp = ArpPacket::new_checked(eth.payload()).ok()?;
    if arp.hardware_type() != 1 || arp.protocol_type() != EtherType::Ipv4 || arp.hardware_len() != 6 || arp.protocol_len() != 4 {
        return None;
    }
    let op = match arp.operation() {
        ArpOperation::Request => ArpOp::Request,
        ArpOperation::Reply => ArpOp::Reply,
        ArpOperation::Unknown(_) => return None,
    };
    let sender_mac = arp.source_hardware_addr().0;
    if sender_mac[0] & 1 != 0 || sender_mac == [0; 6] {
        return None;
    }
    Some(ArpFacts { op, sender_mac, sender_ip: arp.source_protocol_addr(), target_ip: arp.target_protocol_addr() })
}

/// Rewrites an ARP request frame in place into our reply (RFC 826): the
/// asked-for address is at `our_mac`. False if the frame is not an
/// Ethernet/IPv4 ARP request.
pub fn arp_request_to_reply(frame: &mut [u8], our_mac: Mac) -> bool {
    let Some(a) = arp_facts(frame) else { return false };
    if a.op != ArpOp::Request {
        return false;
    }
    let Ok(mut eth) = EthernetFrame::new_checked(&mut frame[..]) else { return false };
    eth.set_dst_addr(EthernetAddress(a.sender_mac));
    eth.set_src_addr(EthernetAddress(our_mac));
    let Ok(mut arp) = ArpPacket::new_checked(eth.payload_mut()) else { return false };
    arp.set_operation(ArpOperation::Reply);
    arp.set_source_hardware_addr(EthernetAddress(our_mac));
    arp.set_source_protocol_addr(a.target_ip);
    arp.set_target_hardware_addr(EthernetAddress(a.sender_mac));
    arp.set_target_protocol_addr(a.sender_ip);
    true
}

/// Length of the ARP frames we build: the 60-byte Ethernet minimum (without
/// FCS), zero padded.
pub const ARP_FRAME_LEN: usize = 60;

/// A broadcast ARP request from `(our_mac, our_ip)` for `target`. With
/// `target == our_ip` it is a gratuitous ARP announcement (RFC 5227 §3).
pub fn build_arp_request(our_mac: Mac, our_ip: Ipv4Addr, target: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    let mut f = [0u8; ARP_FRAME_LEN];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&our_mac);
    f[12..14].copy_from_slice(&EtherType::Arp.number().to_be_bytes());
    let a = &mut f[ETH_HDR..ETH_HDR + 28];
    a[0..2].copy_from_slice(&1u16.to_be_bytes());
    a[2..4].copy_from_slice(&EtherType::Ipv4.number().to_be_bytes());
    a[4] = 6;
    a[5] = 4;
    a[6..8].copy_from_slice(&1u16.to_be_bytes());
    a[8..14].copy_from_slice(&our_mac);
    a[14..18].copy_from_slice(&our_ip.octets());
    a[18..24].copy_from_slice(&[0; 6]);
    a[24..28].copy_from_slice(&target.octets());
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iface::Punt;

    const MAC: Mac = [0x02, 0, 0, 0, 0, 0x10];
    const PEER: Mac = [0x02, 0, 0, 0, 0, 0x02];
    const ME: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    const AA: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);

    fn local(exception: bool) -> LocalAddrs {
        LocalAddrs {
            ports: vec![PortAddrs { mac: MAC, ip: ME, subnet: "192.0.2.10/24".parse().unwrap(), gateway: Ipv4Addr::new(192, 0, 2, 1), exception }],
            anycast: vec!["198.51.100.0/24".parse().unwrap()],
        }
    }

    fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&MAC);
        f.extend_from_slice(&PEER);
        f.extend_from_slice(&[0x08, 0x00]);
        let total = 20 + payload.len() as u16;
        let mut h = [0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[12..16].copy_from_slice(&src.octets());
        h[16..20].copy_from_slice(&dst.octets());
        let c = checksum::finish(checksum::data(&h));
        h[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&h);
        f.extend_from_slice(payload);
        f
    }

    fn echo(id: u16, data: &[u8]) -> Vec<u8> {
        let mut p = vec![8, 0, 0, 0];
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        p.extend_from_slice(data);
        let c = checksum::finish(checksum::data(&p));
        p[2..4].copy_from_slice(&c.to_be_bytes());
        p
    }

    fn verify_reply(f: &[u8], from: Ipv4Addr) {
        assert_eq!(&f[0..6], &PEER);
        assert_eq!(&f[6..12], &MAC);
        let ip = &f[14..];
        assert_eq!(checksum::data(&ip[..20]), 0xffff, "ip checksum");
        assert_eq!(&ip[12..16], &from.octets());
        assert_eq!(&ip[16..20], &CLIENT.octets());
        assert_eq!(ip[8], DEFAULT_TTL);
        let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
        assert_eq!(ip[20], 0, "echo reply type");
        assert_eq!(checksum::data(&ip[20..total]), 0xffff, "icmp checksum");
    }

    #[test]
    fn echo_to_unicast_and_anycast_is_answered_in_place() {
        for to in [ME, AA] {
            let mut f = ipv4(CLIENT, to, 1, &echo(7, b"hello pias"));
            assert_eq!(process(&mut f, 0, &local(false)), Verdict::Reply);
            verify_reply(&f, to);
        }
    }

    #[test]
    fn other_traffic_to_us_goes_to_the_kernel_only_with_a_tap() {
        let mut f = ipv4(CLIENT, ME, 6, &[0; 20]);
        assert_eq!(process(&mut f.clone(), 0, &local(true)), Verdict::Punt(Punt::Exception));
        assert_eq!(process(&mut f, 0, &local(false)), Verdict::Drop(DropReason::NoExceptionPath));
        let mut ospf = ipv4(CLIENT, Ipv4Addr::new(224, 0, 0, 5), 89, &[0; 20]);
        ospf[0..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0, 0, 5]);
        assert_eq!(process(&mut ospf, 0, &local(true)), Verdict::Punt(Punt::Exception));
    }

    #[test]
    fn anycast_non_echo_waits_for_the_iap() {
        let mut f = ipv4(CLIENT, AA, 17, &[0; 8]);
        assert_eq!(process(&mut f, 0, &local(true)), Verdict::Drop(DropReason::AnycastNoGroup));
    }

    #[test]
    fn arp_for_us_is_punted_and_answered_by_rewrite() {
        let mut f = build_arp_request(PEER, CLIENT, ME).to_vec();
        assert_eq!(process(&mut f, 0, &local(false)), Verdict::Punt(Punt::Arp));
        let mut any = build_arp_request(PEER, CLIENT, AA).to_vec();
        assert_eq!(process(&mut any, 0, &local(false)), Verdict::Punt(Punt::Arp));
        let mut other = build_arp_request(PEER, CLIENT, Ipv4Addr::new(192, 0, 2, 99)).to_vec();
        assert_eq!(process(&mut other, 0, &local(false)), Verdict::Drop(DropReason::ArpNotForUs));

        assert!(arp_request_to_reply(&mut f, MAC));
        let a = arp_facts(&f).unwrap();
        assert_eq!(a.op, ArpOp::Reply);
        assert_eq!(a.sender_mac, MAC);
        assert_eq!(a.sender_ip, ME);
        assert_eq!(a.target_ip, CLIENT);
        assert_eq!(&f[0..6], &PEER);
        assert!(!arp_request_to_reply(&mut f, MAC), "a reply is not rewritten again");
    }

    #[test]
    fn malformed_frames_are_dropped_by_reason() {
        let l = local(true);
        let good = ipv4(CLIENT, ME, 1, &echo(1, b"x"));
        let mut cases: Vec<(Vec<u8>, DropReason)> = Vec::new();
        cases.push((good[..10].to_vec(), DropReason::EthTruncated));
        let mut f = good.clone();
        f[0..6].copy_from_slice(&[2, 9, 9, 9, 9, 9]);
        cases.push((f, DropReason::EthNotOurMac));
        let mut f = good.clone();
        f[6] = 1;
        cases.push((f, DropReason::EthBadSource));
        let mut f = good.clone();
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        cases.push((f, DropReason::EthUnsupportedType));
        let mut f = good.clone();
        f[12..14].copy_from_slice(&[0x81, 0x00]);
        cases.push((f, DropReason::EthVlan));
        cases.push((good[..14 + 19].to_vec(), DropReason::Ipv4Truncated));
        let mut f = good.clone();
        f[14] = 0x65;
        cases.push((f, DropReason::Ipv4BadVersion));
        let mut f = good.clone();
        f[14] = 0x44;
        cases.push((f, DropReason::Ipv4BadIhl));
        let mut f = good.clone();
        f[16..18].copy_from_slice(&2000u16.to_be_bytes());
        cases.push((f, DropReason::Ipv4BadLength));
        let mut f = good.clone();
        f[14 + 10] ^= 0xff;
        cases.push((f, DropReason::Ipv4BadChecksum));
        cases.push((ipv4(Ipv4Addr::new(224, 0, 0, 1), ME, 1, &echo(1, b"x")), DropReason::Ipv4BadSource));
        cases.push((ipv4(ME, ME, 1, &echo(1, b"x")), DropReason::Ipv4BadSource));
        cases.push((ipv4(CLIENT, Ipv4Addr::new(203, 0, 113, 1), 1, &echo(1, b"x")), DropReason::Ipv4NotForUs));
        cases.push((ipv4(CLIENT, ME, 1, &[8, 0, 0]), DropReason::IcmpTruncated));
        let mut bad = echo(1, b"x");
        bad[5] ^= 1;
        cases.push((ipv4(CLIENT, ME, 1, &bad), DropReason::IcmpBadChecksum));
        cases.push((ipv4(CLIENT, AA, 1, &[3, 3, 0xfc, 0xfc, 0, 0, 0, 0]), DropReason::IcmpUnhandled));
        let mut arp = build_arp_request(PEER, CLIENT, ME).to_vec();
        arp[14 + 4] = 8;
        cases.push((arp, DropReason::ArpMalformed));
        for (i, (mut f, want)) in cases.into_iter().enumerate() {
            assert_eq!(process(&mut f, 0, &l), Verdict::Drop(want), "case {i}");
        }
    }

    #[test]
    fn every_prefix_of_a_valid_frame_is_handled_without_panic() {
        let l = local(true);
        let good = ipv4(CLIENT, ME, 1, &echo(1, b"0123456789"));
        for n in 0..good.len() {
            let mut f = good[..n].to_vec();
            let v = process(&mut f, 0, &l);
            assert!(matches!(v, Verdict::Drop(_)), "prefix {n}: {v:?}");
        }
        let arp = build_arp_request(PEER, CLIENT, ME);
        for n in 0..14 + 28 {
            let mut f = arp[..n].to_vec();
            assert!(matches!(process(&mut f, 0, &l), Verdict::Drop(_)), "arp prefix {n}");
        }
    }
}
