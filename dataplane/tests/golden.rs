//! Golden packet tests of the PIAS path (seed Figure 2, segments 1–7, and
//! the ICMP/MTU cases): for each case an input frame, run through the real
//! per-packet function of the proxy that receives it, compared byte for
//! byte with the expected frame. Expected frames are built independently
//! with etherparse (its own header writers and checksum code), never with
//! ours. Every case is also written as a pcap pair under
//! `tests/golden/` (input, expected output) — the same files piasd replays
//! through DPDK's net_pcap in its own test — and the files must match what
//! this test builds, so they cannot drift.
//!
//! The topology: proxies A (IAP, 192.0.2.10, cluster 1), B (RAP,
//! 192.0.2.11, cluster 1), C (JAP, 192.0.2.12, cluster 2); the gateway
//! 192.0.2.1; a client 203.0.113.100 behind it; a target 203.0.113.5:8080
//! behind it too; the group 198.51.100.10:80/tcp with RAP B.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

use etherparse::{IpNumber, Ipv4Header, TcpHeader, TcpOptionElement};
use pias_dataplane::flow::{owner, FlowKey, NatPorts, PortRange};
use pias_dataplane::iface::Up;
use pias_dataplane::jap_cache::JapCache;
use pias_dataplane::local::{LocalAddrs, PortAddrs};
use pias_dataplane::nat::{NatConfig, NatTable};
use pias_dataplane::neighbour::{Mac, Resolver, ResolverTiming};
use pias_dataplane::packet::VecBuf;
use pias_dataplane::pipeline::{Action, Path, PathConfig};
use pias_dataplane::reason::DropReason;
use pias_dataplane::tables::{GroupSpec, LocalTarget, RttEntry, StaticState, Tables};
use pias_dataplane::types::{ClusterId, GroupAddr, GroupOptions, GroupProto, JapLoad, ProxyId, ProxyInfo, TargetAddr};

const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const C: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);
const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
const TARGET: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
const AA: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const MAC_GW: Mac = [0x02, 0, 0, 0, 0, 0x01];
const MAC_A: Mac = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: Mac = [0x02, 0, 0, 0, 0, 0x0b];
const MAC_C: Mac = [0x02, 0, 0, 0, 0, 0x0c];
const CPORT: u16 = 40000;
const TPORT: u16 = 8080;
const NOW: u64 = 1_000_000_000;

fn group() -> GroupAddr {
    GroupAddr::Port { ip: AA, port: 80, proto: GroupProto::Tcp }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    A,
    B,
    C,
}

/// The Path of proxy `who` (worker `w` of `workers`), with the view of the
/// group that proxy has: A knows the RAP, B knows the JAPs, C the target.
fn proxy(who: Who, w: u16, workers: u16, target_alive: bool) -> Path {
    let (me, ip, mac) = match who {
        Who::A => (1, A, MAC_A),
        Who::B => (2, B, MAC_B),
        Who::C => (3, C, MAC_C),
    };
    let mut st = StaticState::new(ProxyId(me));
    st.anycast = vec!["198.51.100.0/24".parse().unwrap()];
    st.proxies = vec![
        ProxyInfo { id: ProxyId(1), addr: A, cluster: ClusterId(1), up: true },
        ProxyInfo { id: ProxyId(2), addr: B, cluster: ClusterId(1), up: true },
        ProxyInfo { id: ProxyId(3), addr: C, cluster: ClusterId(2), up: true },
    ];
    st.rtt = vec![RttEntry { a: ClusterId(1), b: ClusterId(2), rtt_us: 5000 }];
    let mut g = GroupSpec::new(group(), GroupOptions::default());
    g.raps = vec![ProxyId(2)];
    if who == Who::B {
        g.japs = vec![JapLoad { jap: ProxyId(3), approx_targets: 1, overloaded: false, weight: 0 }];
    }
    if who == Who::C {
        g.targets = vec![LocalTarget { addr: TargetAddr { ip: TARGET, port: TPORT }, alive: target_alive, weight: 1 }];
    }
    st.groups = vec![g];
    let tables = Arc::new(Tables::build(&st).expect("tables"));
    let local = Arc::new(LocalAddrs {
        ports: vec![PortAddrs { mac, ip, subnet: format!("{ip}/24").parse().unwrap(), gateway: GW, exception: false }],
        anycast: st.anycast.clone(),
    });
    let ports = NatPorts::new(PortRange { lo: 20000, hi: 29999 }, workers).unwrap();
    let nat = NatTable::new(NatConfig { ports: ports.range_of(w).unwrap(), max_flows: 1024, ..NatConfig::default() }).unwrap();
    let mut p = Path::new(w, workers, PathConfig::default(), local, tables, JapCache::new(64), nat, ports);
    let mut r = Resolver::new(ResolverTiming::from_refresh_secs(30));
    for (n, m) in [(GW, MAC_GW), (A, MAC_A), (B, MAC_B), (C, MAC_C)] {
        r.pin(0, n, m);
    }
    p.neigh = Arc::new(r.take_snapshot().unwrap());
    p
}

// ----- expected packets, built with etherparse only -----------------------

fn eth(dst: Mac, src: Mac, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(payload);
    f
}

#[derive(Clone, Copy)]
struct Tcp {
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    ttl: u8,
    ident: u16,
    syn: bool,
    mss: Option<u16>,
}

fn tcp(t: Tcp, payload: &[u8]) -> Vec<u8> {
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

fn ipip(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, df: bool, inner: &[u8]) -> Vec<u8> {
    let mut ip = Ipv4Header::new(inner.len() as u16, 64, IpNumber::IPV4, src.octets(), dst.octets()).unwrap();
    ip.identification = ident;
    ip.dont_fragment = df;
    ip.header_checksum = ip.calc_header_checksum();
    let mut out = Vec::new();
    ip.write(&mut out).unwrap();
    out.extend_from_slice(inner);
    out
}

fn client_syn(ttl: u8) -> Tcp {
    Tcp { src: CLIENT, sport: CPORT, dst: AA, dport: 80, ttl, ident: 0x1111, syn: true, mss: Some(1460) }
}

// ----- the harness -------------------------------------------------------

struct Case {
    name: &'static str,
    input: Vec<u8>,
    expected: Vec<u8>,
}

fn run(p: &mut Path, input: &[u8]) -> (Action, Vec<u8>) {
    let mut b = VecBuf::new(input);
    let a = p.process(&mut b, 0, NOW);
    (a, b.to_vec())
}

fn hex_diff(got: &[u8], want: &[u8]) -> String {
    let mut s = format!("got {} bytes, want {} bytes\n", got.len(), want.len());
    for i in 0..got.len().max(want.len()) {
        let (g, w) = (got.get(i), want.get(i));
        if g != w {
            s += &format!("  byte {i:4}: got {g:02x?} want {w:02x?}\n");
        }
    }
    s
}

fn check(case: &Case, p: &mut Path) {
    let (a, out) = run(p, &case.input);
    assert!(matches!(a, Action::Tx(0)), "{}: action {a:?}", case.name);
    assert!(out == case.expected, "{}: frame differs\n{}", case.name, hex_diff(&out, &case.expected));
    golden_files(case);
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Writes (GOLDEN_UPDATE=1) or checks the case's pcap pair.
fn golden_files(case: &Case) {
    let dir = golden_dir();
    let inp = dir.join(format!("{}.in.pcap", case.name));
    let exp = dir.join(format!("{}.out.pcap", case.name));
    if std::env::var("GOLDEN_UPDATE").as_deref() == Ok("1") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&inp, pcap(&[&case.input])).unwrap();
        std::fs::write(&exp, pcap(&[&case.expected])).unwrap();
        return;
    }
    assert_eq!(std::fs::read(&inp).ok(), Some(pcap(&[&case.input])), "{}: {} stale (GOLDEN_UPDATE=1 rewrites)", case.name, inp.display());
    assert_eq!(std::fs::read(&exp).ok(), Some(pcap(&[&case.expected])), "{}: {} stale (GOLDEN_UPDATE=1 rewrites)", case.name, exp.display());
}

/// A classic pcap (µs, Ethernet) holding `frames`, with fixed timestamps.
fn pcap(frames: &[&[u8]]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    for (i, fr) in frames.iter().enumerate() {
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&(i as u32).to_le_bytes());
        f.extend_from_slice(&(fr.len() as u32).to_le_bytes());
        f.extend_from_slice(&(fr.len() as u32).to_le_bytes());
        f.extend_from_slice(fr);
    }
    f
}

// ----- segments ------------------------------------------------------------

/// Segment 1 → 2: the IAP misses its cache and tunnels the first packet to
/// the nearest RAP; the inner TTL drops by one, the SYN's MSS is clamped to
/// the tunnel (1500 − 20 − 40 = 1440), DF is copied to the outer header,
/// and the control core hears of the miss.
#[test]
fn seg2_iap_miss_to_rap() {
    let mut a = proxy(Who::A, 0, 1, true);
    let input = eth(MAC_A, MAC_GW, &tcp(client_syn(64), b""));
    let inner = tcp(Tcp { ttl: 63, mss: Some(1440), ..client_syn(64) }, b"");
    let expected = eth(MAC_B, MAC_A, &ipip(A, B, 1, true, &inner));
    check(&Case { name: "seg2_iap_to_rap", input, expected }, &mut a);
    let ev: Vec<Up> = a.events.drain().collect();
    assert!(matches!(ev.as_slice(), [Up::IapMiss { group: g, rap: Some(ProxyId(2)) }] if *g == group()), "{ev:?}");
    assert_eq!(a.stats.iap_to_rap, 1);
    assert_eq!(a.stats.mss_clamped, 1);
}

/// Segment 2 → 3: the RAP picks the JAP and re-tunnels (outer source is now
/// the RAP, inner TTL one lower), and asks the control core to send the
/// IAP the JAP list.
#[test]
fn seg3_rap_to_jap() {
    let mut b = proxy(Who::B, 0, 1, true);
    let inner_in = tcp(Tcp { ttl: 63, mss: Some(1440), ..client_syn(64) }, b"");
    let input = eth(MAC_B, MAC_A, &ipip(A, B, 1, true, &inner_in));
    let inner_out = tcp(Tcp { ttl: 62, mss: Some(1440), ..client_syn(64) }, b"");
    let expected = eth(MAC_C, MAC_B, &ipip(B, C, 1, true, &inner_out));
    check(&Case { name: "seg3_rap_to_jap", input, expected }, &mut b);
    let ev: Vec<Up> = b.events.drain().collect();
    assert!(matches!(ev.as_slice(), [Up::RapChose { jap: ProxyId(3), iap, .. }] if *iap == A), "{ev:?}");
}

/// Segments 3 → 4 and 5 → 6: the JAP decapsulates and NATs the flow to the
/// target (`JAP:q → AT:r`); the target's answer comes back to `JAP:q` and
/// leaves as `AA:g → AC:p`.
#[test]
fn seg4_jap_nat_and_seg6_reverse() {
    let mut c = proxy(Who::C, 0, 1, true);
    let inner_in = tcp(Tcp { ttl: 62, mss: Some(1440), ..client_syn(64) }, b"");
    let input = eth(MAC_C, MAC_B, &ipip(B, C, 1, true, &inner_in));
    let (a, out) = run(&mut c, &input);
    assert_eq!(a, Action::Tx(0));
    let flow = c.nat.flows().next().expect("a flow");
    let q = flow.nat_port;
    assert!((20000..=29999).contains(&q));
    let expected = eth(MAC_GW, MAC_C, &tcp(Tcp { src: C, sport: q, dst: TARGET, dport: TPORT, ttl: 61, mss: Some(1440), ..client_syn(64) }, b""));
    let case = Case { name: "seg4_jap_to_target", input, expected };
    assert!(out == case.expected, "seg4: {}", hex_diff(&out, &case.expected));
    golden_files(&case);

    // The target's SYN-ACK (segment 5) becomes the anycast answer (6).
    let synack = |src, sport, dst, dport, ttl| {
        let mut t = Tcp { src, sport, dst, dport, ttl, ident: 0x2222, syn: true, mss: Some(1400) };
        t.syn = true;
        t
    };
    let input = eth(MAC_C, MAC_GW, &tcp(synack(TARGET, TPORT, C, q, 64), b""));
    let expected = eth(MAC_GW, MAC_C, &tcp(synack(AA, 80, CLIENT, CPORT, 63), b""));
    check(&Case { name: "seg6_reverse_nat", input, expected }, &mut c);
    assert_eq!((c.stats.jap_new_flows, c.stats.jap_forwarded, c.stats.reverse), (1, 1, 1));

    // No mapping: a target's packet to an unused NAT port is dropped.
    let stray = eth(MAC_C, MAC_GW, &tcp(synack(TARGET, TPORT, C, q + 1, 64), b""));
    assert_eq!(run(&mut c, &stray).0, Action::Drop(DropReason::NatNoEntry));
}

/// Segment 7: once the IAP's cache names the JAP, later packets (and later
/// connections) go IAP → JAP directly.
#[test]
fn seg7_iap_cached_to_jap() {
    let mut a = proxy(Who::A, 0, 1, true);
    a.cache.fill(group(), &[ProxyId(3)], 3600 * NOW, NOW);
    let data = Tcp { syn: false, mss: None, ..client_syn(64) };
    let input = eth(MAC_A, MAC_GW, &tcp(data, b"GET / HTTP/1.0\r\n\r\n"));
    let inner = tcp(Tcp { ttl: 63, ..data }, b"GET / HTTP/1.0\r\n\r\n");
    let expected = eth(MAC_C, MAC_A, &ipip(A, C, 1, true, &inner));
    check(&Case { name: "seg7_iap_to_jap", input, expected }, &mut a);
    assert!(a.events.is_empty(), "a cache hit raises no event");
    assert_eq!(a.stats.iap_cached, 1);
}

/// Forward NAT then reverse NAT restores the client's tuple, through the
/// whole chain A → B → C → target → C → client.
#[test]
fn whole_chain_restores_the_client_tuple() {
    let (mut a, mut b, mut c) = (proxy(Who::A, 0, 1, true), proxy(Who::B, 0, 1, true), proxy(Who::C, 0, 1, true));
    let data = Tcp { syn: false, mss: None, ..client_syn(64) };
    let (x, f1) = run(&mut a, &eth(MAC_A, MAC_GW, &tcp(data, b"ping")));
    assert_eq!(x, Action::Tx(0));
    let (x, f2) = run(&mut b, &f1);
    assert_eq!(x, Action::Tx(0));
    let (x, f3) = run(&mut c, &f2);
    assert_eq!(x, Action::Tx(0));
    let to_target = etherparse::SlicedPacket::from_ethernet(&f3).unwrap();
    let Some(etherparse::TransportSlice::Tcp(t)) = to_target.transport else { panic!("not tcp") };
    let q = t.source_port();
    let reply = eth(MAC_C, MAC_GW, &tcp(Tcp { src: TARGET, sport: TPORT, dst: C, dport: q, ttl: 64, ident: 9, syn: false, mss: None }, b"pong"));
    let (x, f4) = run(&mut c, &reply);
    assert_eq!(x, Action::Tx(0));
    let back = etherparse::SlicedPacket::from_ethernet(&f4).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = back.net else { panic!("not ipv4") };
    assert_eq!((ip.header().source_addr(), ip.header().destination_addr()), (AA, CLIENT));
    let Some(etherparse::TransportSlice::Tcp(t)) = back.transport else { panic!("not tcp") };
    assert_eq!((t.source_port(), t.destination_port()), (80, CPORT));
    assert_eq!(t.payload(), b"pong");
}

// ----- ICMP and MTU ----------------------------------------------------------

/// TTL 1 at the IAP: ICMP time exceeded to the client (RFC 1812 §5.3.1),
/// quoting the header and 8 bytes, from the proxy's address.
#[test]
fn icmp_ttl_exceeded_at_the_iap() {
    let mut a = proxy(Who::A, 0, 1, true);
    let offending = tcp(client_syn(1), b"");
    let input = eth(MAC_A, MAC_GW, &offending);
    let mut quoted = offending[..28].to_vec();
    quoted.truncate(28);
    let mut icmp = vec![11, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&quoted);
    let c = etherparse::checksum::Sum16BitWords::new().add_slice(&icmp).ones_complement().to_be();
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ip = Ipv4Header::new(icmp.len() as u16, 64, IpNumber::ICMP, A.octets(), CLIENT.octets()).unwrap();
    ip.identification = 1;
    ip.dont_fragment = false;
    ip.header_checksum = ip.calc_header_checksum();
    let mut pkt = Vec::new();
    ip.write(&mut pkt).unwrap();
    pkt.extend_from_slice(&icmp);
    let expected = eth(MAC_GW, MAC_A, &pkt);
    check(&Case { name: "icmp_ttl_exceeded", input, expected }, &mut a);
}

/// DF and too big for the tunnel: "fragmentation needed" with next-hop MTU
/// 1480 (RFC 1191, RFC 2003 §4), not forwarded.
#[test]
fn icmp_frag_needed_at_the_iap() {
    let mut a = proxy(Who::A, 0, 1, true);
    let data = Tcp { syn: false, mss: None, ..client_syn(64) };
    let payload = vec![0x5a; 1500 - 40];
    let offending = tcp(data, &payload);
    assert_eq!(offending.len(), 1500);
    let input = eth(MAC_A, MAC_GW, &offending);
    let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0xc8];
    icmp.extend_from_slice(&offending[..28]);
    let c = etherparse::checksum::Sum16BitWords::new().add_slice(&icmp).ones_complement().to_be();
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ip = Ipv4Header::new(icmp.len() as u16, 64, IpNumber::ICMP, A.octets(), CLIENT.octets()).unwrap();
    ip.identification = 1;
    ip.dont_fragment = false;
    ip.header_checksum = ip.calc_header_checksum();
    let mut pkt = Vec::new();
    ip.write(&mut pkt).unwrap();
    pkt.extend_from_slice(&icmp);
    let expected = eth(MAC_GW, MAC_A, &pkt);
    check(&Case { name: "icmp_frag_needed", input, expected }, &mut a);
}

// ----- ownership, failures, bad input ----------------------------------------

/// A flow's NAT state lives on one worker: the JAP stage on any other
/// worker hands the packet over unmodified.
#[test]
fn jap_hands_foreign_flows_to_their_owner_unmodified() {
    let key = FlowKey::new(CLIENT, CPORT, AA, 80, 6);
    let own = owner(&key, 4);
    let other = (own + 1) % 4;
    let mut c = proxy(Who::C, other, 4, true);
    let inner = tcp(Tcp { ttl: 62, ..client_syn(64) }, b"");
    let input = eth(MAC_C, MAC_B, &ipip(B, C, 1, true, &inner));
    let (a, out) = run(&mut c, &input);
    assert_eq!(a, Action::Handoff(own));
    assert_eq!(out, input, "handed over unmodified");
    let mut o = proxy(Who::C, own, 4, true);
    assert_eq!(run(&mut o, &input).0, Action::Tx(0), "the owner forwards it");
    // Its reverse packets belong to the owner too: their NAT port says so.
    let q = o.nat.flows().next().unwrap().nat_port;
    let reply = eth(MAC_C, MAC_GW, &tcp(Tcp { src: TARGET, sport: TPORT, dst: C, dport: q, ttl: 64, ident: 3, syn: false, mss: None }, b""));
    assert_eq!(run(&mut c, &reply).0, Action::Handoff(own));
    assert_eq!(run(&mut o, &reply).0, Action::Tx(0));
}

/// A JAP with no live target does not lose the packet: back to a RAP, and
/// the IAP is to be told to forget this JAP.
#[test]
fn jap_without_live_target_bounces_to_the_rap() {
    let mut c = proxy(Who::C, 0, 1, false);
    let inner = tcp(Tcp { ttl: 62, ..client_syn(64) }, b"");
    let input = eth(MAC_C, MAC_A, &ipip(A, C, 7, true, &inner));
    let (a, out) = run(&mut c, &input);
    assert_eq!(a, Action::Tx(0));
    let expected = eth(MAC_B, MAC_C, &ipip(C, B, 1, true, &tcp(Tcp { ttl: 61, ..client_syn(64) }, b"")));
    assert!(out == expected, "{}", hex_diff(&out, &expected));
    let ev: Vec<Up> = c.events.drain().collect();
    assert!(matches!(ev.as_slice(), [Up::JapNoTarget { iap, .. }] if *iap == A), "{ev:?}");
}

/// The tunnel's bad-input list: each counted under its reason, nothing
/// forwarded.
#[test]
fn tunnel_bad_input_is_dropped_by_reason() {
    let mut c = proxy(Who::C, 0, 1, true);
    let inner = tcp(Tcp { ttl: 62, ..client_syn(64) }, b"");
    let spoofed = eth(MAC_C, MAC_GW, &ipip(Ipv4Addr::new(203, 0, 113, 66), C, 1, true, &inner));
    assert_eq!(run(&mut c, &spoofed).0, Action::Drop(DropReason::TunnelUnknownSource));
    let nested = eth(MAC_C, MAC_B, &ipip(B, C, 1, true, &ipip(B, AA, 1, true, &inner)));
    assert_eq!(run(&mut c, &nested).0, Action::Drop(DropReason::TunnelNested));
    let not_anycast = tcp(Tcp { dst: Ipv4Addr::new(203, 0, 113, 9), ..client_syn(64) }, b"");
    let x = eth(MAC_C, MAC_B, &ipip(B, C, 1, true, &not_anycast));
    assert_eq!(run(&mut c, &x).0, Action::Drop(DropReason::TunnelInnerNotAnycast));
    let looping = tcp(Tcp { src: A, ..client_syn(64) }, b"");
    let x = eth(MAC_C, MAC_B, &ipip(B, C, 1, true, &looping));
    assert_eq!(run(&mut c, &x).0, Action::Drop(DropReason::TunnelLoop));
    let mut bad = ipip(B, C, 1, true, &inner);
    bad[20 + 10] ^= 0xff; // inner header checksum
    assert_eq!(run(&mut c, &eth(MAC_C, MAC_B, &bad)).0, Action::Drop(DropReason::TunnelMalformed));
    let mut short = ipip(B, C, 1, true, &inner);
    short.truncate(30);
    assert!(matches!(run(&mut c, &eth(MAC_C, MAC_B, &short)).0, Action::Drop(_)));
    let other_group = tcp(Tcp { dport: 81, ..client_syn(64) }, b"");
    let x = eth(MAC_C, MAC_B, &ipip(B, C, 1, true, &other_group));
    assert_eq!(run(&mut c, &x).0, Action::Drop(DropReason::AnycastNoGroup));
    assert_eq!(c.nat.len(), 0, "no state from bad input");
}

/// Every prefix of every golden input is handled without a panic.
#[test]
fn truncated_inputs_never_panic() {
    let inner = tcp(Tcp { ttl: 62, ..client_syn(64) }, b"0123456789");
    let frames = [eth(MAC_A, MAC_GW, &tcp(client_syn(64), b"abc")), eth(MAC_C, MAC_B, &ipip(B, C, 1, true, &inner))];
    for who in [Who::A, Who::B, Who::C] {
        let mut p = proxy(who, 0, 1, true);
        for f in &frames {
            for n in 0..f.len() {
                let (a, _) = run(&mut p, &f[..n]);
                assert!(!matches!(a, Action::Tx(_)), "prefix {n} forwarded");
            }
        }
    }
}
