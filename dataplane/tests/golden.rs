//! Golden packet tests of the PIAS path (seed Figure 2, segments 1–7; the
//! TTL and MTU answers; ICMP errors about NAT'd flows and from inside
//! tunnels; fragments in and out of order, both ways): for each case an
//! input frame (or sequence), run through the real
//! per-packet function of the proxy that receives it, compared byte for
//! byte with the expected frame. Expected frames are built independently
//! with etherparse (its own header writers and checksum code), never with
//! ours. Every case is also written as a pcap pair under
//! `tests/golden/` (input, expected output) — the same files piasd replays
//! through DPDK's net_pcap in its own test — and the files must match what
//! this test builds, so they cannot drift.
//!
//! The topology (`common/topology.rs`): proxies A (IAP, 192.0.2.10,
//! cluster 1), B (RAP, 192.0.2.11, cluster 1), C (JAP, 192.0.2.12, cluster
//! 2); the gateway 192.0.2.1; a client 203.0.113.100 behind it; a target
//! 203.0.113.5:8080 behind it too; the group 198.51.100.10:80/tcp with RAP
//! B. The fragment and UDP cases use a second group, 198.51.100.10:53/udp
//! (RAP B, JAP C), served by the same target on port 5353 (piasd's replay
//! of those pcaps needs that group in its config).
//!
//! A case may be a sequence (an earlier packet creates the NAT mapping a
//! later one needs); its pcaps then hold every input, and every output in
//! the order the proxy sent them, a worker's order: a held fragment goes
//! out when its first fragment releases it.

mod common;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use common::*;
use etherparse::{IpNumber, Ipv4Header};
use pias_dataplane::flow::{owner, FlowKey};
use pias_dataplane::iface::Up;
use pias_dataplane::packet::VecBuf;
use pias_dataplane::pipeline::{Action, Path, PathConfig};
use pias_dataplane::reason::DropReason;
use pias_dataplane::types::ProxyId;

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

/// Runs one input as a worker does: a held fragment goes to `Path::hold`
/// (a refused hold is reported as the drop the worker counts), released
/// ones are processed right after. Returns every other action with its
/// frame, in order.
fn drive(p: &mut Path, input: &[u8], now: u64) -> Vec<(Action, Vec<u8>)> {
    let mut out = Vec::new();
    let mut b = VecBuf::new(input);
    match p.process(&mut b, 0, now) {
        Action::Hold => {
            if let Err(b) = p.hold(b, now) {
                out.push((Action::Drop(DropReason::FragmentHoldRefused), b.to_vec()));
            }
        }
        a => out.push((a, b.to_vec())),
    }
    while let Some((mut m, port)) = p.next_released() {
        let a = p.process(&mut m, port, now);
        out.push((a, m.to_vec()));
    }
    out
}

/// A sequence case: every input through `p` (held fragments included),
/// every output sent (`Tx(0)`), equal in order to `expected`.
struct Seq {
    name: &'static str,
    inputs: Vec<Vec<u8>>,
    expected: Vec<Vec<u8>>,
}

fn check_seq(case: &Seq, p: &mut Path) {
    let mut got = Vec::new();
    for (i, input) in case.inputs.iter().enumerate() {
        for (a, f) in drive(p, input, NOW) {
            assert_eq!(a, Action::Tx(0), "{}: input {i}: action", case.name);
            got.push(f);
        }
    }
    assert_eq!(got.len(), case.expected.len(), "{}: frames sent", case.name);
    for (i, (g, w)) in got.iter().zip(&case.expected).enumerate() {
        assert!(g == w, "{}: output {i} differs\n{}", case.name, hex_diff(g, w));
    }
    golden_pcaps(case.name, &case.inputs, &case.expected);
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Writes (GOLDEN_UPDATE=1) or checks the case's pcap pair.
fn golden_files(case: &Case) {
    golden_pcaps(case.name, std::slice::from_ref(&case.input), std::slice::from_ref(&case.expected));
}

/// Writes (GOLDEN_UPDATE=1) or checks the pcap pair of `inputs` and
/// `expected` frames.
fn golden_pcaps(name: &str, inputs: &[Vec<u8>], expected: &[Vec<u8>]) {
    let dir = golden_dir();
    let inp = dir.join(format!("{name}.in.pcap"));
    let exp = dir.join(format!("{name}.out.pcap"));
    let refs = |v: &[Vec<u8>]| -> Vec<u8> { pcap(&v.iter().map(Vec::as_slice).collect::<Vec<_>>()) };
    if std::env::var("GOLDEN_UPDATE").as_deref() == Ok("1") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&inp, refs(inputs)).unwrap();
        std::fs::write(&exp, refs(expected)).unwrap();
        return;
    }
    assert_eq!(std::fs::read(&inp).ok(), Some(refs(inputs)), "{name}: {} stale (GOLDEN_UPDATE=1 rewrites)", inp.display());
    assert_eq!(std::fs::read(&exp).ok(), Some(refs(expected)), "{name}: {} stale (GOLDEN_UPDATE=1 rewrites)", exp.display());
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
    // Unless that port is the control port: the answer to a TCP health
    // probe goes to the control core (a mapped control port is NAT, above).
    let cport = PathConfig::default().control_port;
    if q != cport {
        let probe = eth(MAC_C, MAC_GW, &tcp(synack(TARGET, TPORT, C, cport, 64), b""));
        assert_eq!(run(&mut c, &probe).0, Action::Punt(pias_dataplane::iface::Punt::Control));
    }
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

// ----- ICMP errors about NAT'd flows (RFC 5508) --------------------------------

/// The JAP's NATed client SYN (segment 4), as the golden seg4 case: input
/// and output, and the output's IP packet (what a router would quote).
fn jap_syn() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let inner_in = tcp(Tcp { ttl: 62, mss: Some(1440), ..client_syn(64) }, b"");
    let input = eth(MAC_C, MAC_B, &ipip(B, C, 1, true, &inner_in));
    let natted = tcp(Tcp { src: C, sport: Q0, dst: TARGET, dport: TPORT, ttl: 61, mss: Some(1440), ..client_syn(64) }, b"");
    (input, eth(MAC_GW, MAC_C, &natted), natted)
}

/// The client's SYN as the router saw it after the JAP (TTL 61), back in
/// the client's terms: what a translated error must quote.
fn client_syn_quoted() -> Vec<u8> {
    tcp(Tcp { ttl: 61, mss: Some(1440), ..client_syn(64) }, b"")
}

/// Segment 4's path MTU is small: a router between JAP and target answers
/// the JAP with "fragmentation needed" (MTU 1400) quoting `JAP:q → AT:r`
/// (header + 8 bytes). The JAP finds the flow by `q` without refreshing it
/// and sends the client the error as if from `AA`, quoting `AC:p → AA:g`:
/// MTU kept (the client's packet is the one that did not fit; JAP → client
/// is native), outer TTL one lower, quoted header checksum fixed, ICMP
/// checksum recomputed.
#[test]
fn icmp_frag_needed_from_the_target_side_reaches_the_client() {
    let mut c = proxy(Who::C, 0, 1, true);
    let (syn_in, syn_out, natted) = jap_syn();
    let err_in = eth(MAC_C, MAC_GW, &icmp_error(R_TARGET, C, 64, 0x3333, 3, 4, mtu_rest(1400), &natted[..28]));
    let err_out = eth(MAC_GW, MAC_C, &icmp_error(AA, CLIENT, 63, 0x3333, 3, 4, mtu_rest(1400), &client_syn_quoted()[..28]));
    check_seq(&Seq { name: "icmp_nat_frag_needed_to_client", inputs: vec![syn_in, err_in.clone()], expected: vec![syn_out, err_out] }, &mut c);
    assert_eq!(c.stats.icmp_translated, 1);
    let f = c.nat.flows().next().unwrap();
    // No ICMP refreshes a mapping (RFC 5508 REQ-6): same deadline later.
    let later = NOW + 10_000_000_000;
    let mut b = VecBuf::new(&err_in);
    assert_eq!(c.process(&mut b, 0, later), Action::Tx(0));
    assert_eq!(c.nat.flows().next().unwrap().expires_at, f.expires_at, "an ICMP error refreshed the mapping");
}

/// A time exceeded from a router between JAP and target that quotes the
/// whole packet: the quoted TCP checksum is in the quote and is fixed too.
#[test]
fn icmp_time_exceeded_with_whole_quote_reaches_the_client() {
    let mut c = proxy(Who::C, 0, 1, true);
    let (syn_in, syn_out, natted) = jap_syn();
    let err_in = eth(MAC_C, MAC_GW, &icmp_error(R_TARGET, C, 250, 0x3434, 11, 0, [0; 4], &natted));
    let err_out = eth(MAC_GW, MAC_C, &icmp_error(AA, CLIENT, 249, 0x3434, 11, 0, [0; 4], &client_syn_quoted()));
    check_seq(&Seq { name: "icmp_nat_time_exceeded_to_client", inputs: vec![syn_in, err_in], expected: vec![syn_out, err_out] }, &mut c);
}

/// A parameter problem keeps its pointer (the quote's layout is unchanged).
#[test]
fn icmp_parameter_problem_keeps_its_pointer() {
    let mut c = proxy(Who::C, 0, 1, true);
    let (syn_in, syn_out, natted) = jap_syn();
    let err_in = eth(MAC_C, MAC_GW, &icmp_error(TARGET, C, 64, 0x3535, 12, 0, [20, 0, 0, 0], &natted[..40]));
    let err_out = eth(MAC_GW, MAC_C, &icmp_error(AA, CLIENT, 63, 0x3535, 12, 0, [20, 0, 0, 0], &client_syn_quoted()[..40]));
    check_seq(&Seq { name: "icmp_nat_param_problem_to_client", inputs: vec![syn_in, err_in], expected: vec![syn_out, err_out] }, &mut c);
}

/// A UDP flow whose target's port is closed: the target's port unreachable
/// quotes the whole datagram, UDP checksum included; the client gets it
/// about `AC:p → AA:53`.
#[test]
fn icmp_port_unreachable_from_the_target_reaches_the_client() {
    let mut c = proxy(Who::C, 0, 1, true);
    let q = Udp { src: CLIENT, sport: 40001, dst: AA, dport: UPORT, ttl: 62, ident: 0x0101 };
    let query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01";
    let input = eth(MAC_C, MAC_A, &ipip(A, C, 9, false, &udp(q, query)));
    let natted = udp(Udp { src: C, sport: Q0, dst: TARGET, dport: UTPORT, ttl: 61, ..q }, query);
    let output = eth(MAC_GW, MAC_C, &natted);
    let err_in = eth(MAC_C, MAC_GW, &icmp_error(TARGET, C, 64, 0x3636, 3, 3, [0; 4], &natted));
    let quoted = udp(Udp { ttl: 61, ..q }, query);
    let err_out = eth(MAC_GW, MAC_C, &icmp_error(AA, CLIENT, 63, 0x3636, 3, 3, [0; 4], &quoted));
    check_seq(&Seq { name: "icmp_nat_port_unreachable_to_client", inputs: vec![input, err_in], expected: vec![output, err_out] }, &mut c);
}

/// Our reply (`AA:80 → AC:p`) is too big for a link on the client's side:
/// the router's "fragmentation needed" goes to `AA`, i.e. to the nearest
/// proxy. The IAP routes it by the quoted flow `AC:p → AA:80`, as the
/// flow's own packets: its cache names the JAP, so IP-IP to C (inner TTL
/// one lower). No event is raised for it.
#[test]
fn icmp_about_our_reply_at_the_iap_goes_to_the_jap() {
    let mut a = proxy(Who::A, 0, 1, true);
    a.cache.fill(group(), &[ProxyId(3)], 3600 * NOW, NOW);
    let reply = tcp(synack(AA, 80, CLIENT, CPORT, 63), b"");
    let err = |ttl| icmp_error(R_CLIENT, AA, ttl, 0x3737, 3, 4, mtu_rest(1280), &reply[..28]);
    let input = eth(MAC_A, MAC_GW, &err(64));
    let expected = eth(MAC_C, MAC_A, &ipip(A, C, 1, false, &err(63)));
    check(&Case { name: "icmp_reply_error_iap_to_jap", input, expected }, &mut a);
    assert!(a.events.is_empty(), "no event for an ICMP error");
    assert_eq!(a.stats.icmp_tunnelled, 1);
    // Without a cache entry it goes to the group's RAP, still silently.
    let mut a = proxy(Who::A, 0, 1, true);
    let (x, out) = run(&mut a, &eth(MAC_A, MAC_GW, &err(64)));
    assert_eq!(x, Action::Tx(0));
    assert_eq!(out, eth(MAC_B, MAC_A, &ipip(A, B, 1, false, &err(63))));
    assert!(a.events.is_empty());
}

/// The RAP sends the tunnelled error on to the quoted flow's JAP.
#[test]
fn icmp_about_our_reply_at_the_rap_goes_to_the_jap() {
    let mut b = proxy(Who::B, 0, 1, true);
    let reply = tcp(synack(AA, 80, CLIENT, CPORT, 63), b"");
    let err = |ttl| icmp_error(R_CLIENT, AA, ttl, 0x3737, 3, 4, mtu_rest(1280), &reply[..28]);
    let input = eth(MAC_B, MAC_A, &ipip(A, B, 1, false, &err(63)));
    let expected = eth(MAC_C, MAC_B, &ipip(B, C, 1, false, &err(62)));
    check(&Case { name: "icmp_reply_error_rap_to_jap", input, expected }, &mut b);
    assert!(b.events.is_empty(), "no RapChose for an ICMP error");
}

/// At the JAP the tunnelled error about our reply is translated for the
/// target: from the JAP's address, about `AT:r → JAP:q`, the packet the
/// target sent (MTU kept: JAP → client is native).
#[test]
fn icmp_about_our_reply_at_the_jap_reaches_the_target() {
    let mut c = proxy(Who::C, 0, 1, true);
    let (syn_in, syn_out, _) = jap_syn();
    let reply = tcp(synack(AA, 80, CLIENT, CPORT, 63), b"");
    let err_in = eth(MAC_C, MAC_A, &ipip(A, C, 1, false, &icmp_error(R_CLIENT, AA, 63, 0x3737, 3, 4, mtu_rest(1280), &reply[..28])));
    let sent = tcp(synack(TARGET, TPORT, C, Q0, 63), b"");
    let err_out = eth(MAC_GW, MAC_C, &icmp_error(C, TARGET, 62, 0x3737, 3, 4, mtu_rest(1280), &sent[..28]));
    check_seq(&Seq { name: "icmp_reply_error_jap_to_target", inputs: vec![syn_in, err_in], expected: vec![syn_out, err_out] }, &mut c);
    assert_eq!(c.stats.icmp_translated, 1);
}

/// The IAP's tunnel packet (`A → B`, inner SYN) dies in the tunnel: the
/// router's time exceeded quotes our outer header and the inner header + 8
/// bytes, so the IAP can tell the client — as host unreachable (3/1), RFC
/// 2003 §4 — from its own address, quoting the inner packet.
#[test]
fn icmp_time_exceeded_from_inside_the_tunnel_is_relayed_as_host_unreachable() {
    let mut a = proxy(Who::A, 0, 1, true);
    let inner = tcp(Tcp { ttl: 63, mss: Some(1440), ..client_syn(64) }, b"");
    let tunnelled = ipip(A, B, 1, true, &inner);
    let input = eth(MAC_A, MAC_GW, &icmp_error(GW, A, 64, 0x3838, 11, 0, [0; 4], &tunnelled[..48]));
    let expected = eth(MAC_GW, MAC_A, &icmp_error(A, CLIENT, 64, 1, 3, 1, [0; 4], &inner[..28]));
    check(&Case { name: "icmp_tunnel_time_exceeded_relayed", input, expected }, &mut a);
    assert_eq!((a.stats.icmp_relayed, a.stats.icmp_sent), (1, 1));
}

/// A "fragmentation needed" from inside the tunnel (MTU 1400) reaches the
/// client with the MTU less the tunnel header (1380), quoting as much of
/// the inner packet as the router quoted.
#[test]
fn icmp_frag_needed_from_inside_the_tunnel_is_relayed_less_the_tunnel_header() {
    let mut a = proxy(Who::A, 0, 1, true);
    let inner = tcp(Tcp { ttl: 63, mss: None, syn: false, ..client_syn(64) }, &[0x5a; 1400]);
    let tunnelled = ipip(A, C, 7, true, &inner);
    let input = eth(MAC_A, MAC_GW, &icmp_error(GW, A, 64, 0x3939, 3, 4, mtu_rest(1400), &tunnelled[..20 + 128]));
    let expected = eth(MAC_GW, MAC_A, &icmp_error(A, CLIENT, 64, 1, 3, 4, mtu_rest(1380), &inner[..128]));
    check(&Case { name: "icmp_tunnel_frag_needed_relayed", input, expected }, &mut a);
}

/// What is not translated or relayed is dropped under its reason; nothing
/// changes the NAT.
#[test]
fn icmp_errors_that_are_not_relayed_are_dropped_by_reason() {
    let mut c = proxy(Who::C, 0, 1, true);
    let (syn_in, _, natted) = jap_syn();
    assert_eq!(run(&mut c, &syn_in).0, Action::Tx(0));
    let flows = c.nat.len();
    // Bad ICMP checksum.
    let mut bad = eth(MAC_C, MAC_GW, &icmp_error(R_TARGET, C, 64, 1, 3, 4, mtu_rest(1400), &natted[..28]));
    bad[14 + 20 + 2] ^= 0x55;
    assert_eq!(run(&mut c, &bad).0, Action::Drop(DropReason::IcmpBadChecksum));
    // A quote of a flow that has no mapping (another NAT port, of a target).
    let mut other = natted.clone();
    other[20..22].copy_from_slice(&(Q0 + 7).to_be_bytes());
    let x = eth(MAC_C, MAC_GW, &icmp_error(R_TARGET, C, 64, 1, 3, 4, mtu_rest(1400), &other[..28]));
    assert_eq!(run(&mut c, &x).0, Action::Drop(DropReason::IcmpErrorUnmatched));
    // A redirect is never relayed.
    let x = eth(MAC_C, MAC_GW, &icmp_error(R_TARGET, C, 64, 1, 5, 1, [192, 0, 2, 1], &natted[..28]));
    assert_eq!(run(&mut c, &x).0, Action::Drop(DropReason::IcmpNotRelayed));
    // TTL 1: not forwarded, and no error about an error.
    let x = eth(MAC_C, MAC_GW, &icmp_error(R_TARGET, C, 1, 1, 3, 4, mtu_rest(1400), &natted[..28]));
    assert_eq!(run(&mut c, &x).0, Action::Drop(DropReason::TtlExceeded));
    // The host's own traffic (not a NAT port): the exception path.
    let mut own = natted.clone();
    own[20..22].copy_from_slice(&179u16.to_be_bytes());
    let x = eth(MAC_C, MAC_GW, &icmp_error(R_TARGET, C, 64, 1, 3, 3, [0; 4], &own[..28]));
    assert_eq!(run(&mut c, &x).0, Action::Drop(DropReason::NoExceptionPath));
    assert_eq!(c.nat.len(), flows);
    assert_eq!(c.stats.icmp_translated, 0);

    // At the IAP: an error quoting a packet that is not one of ours.
    let mut a = proxy(Who::A, 0, 1, true);
    let foreign = tcp(synack(Ipv4Addr::new(198, 51, 100, 99), 80, CLIENT, CPORT, 63), b"");
    let x = eth(MAC_A, MAC_GW, &icmp_error(R_CLIENT, AA, 64, 1, 3, 4, mtu_rest(1280), &foreign[..28]));
    assert_eq!(run(&mut a, &x).0, Action::Drop(DropReason::IcmpErrorUnmatched));
    let reply = tcp(synack(AA, 81, CLIENT, CPORT, 63), b"");
    let x = eth(MAC_A, MAC_GW, &icmp_error(R_CLIENT, AA, 64, 1, 3, 4, mtu_rest(1280), &reply[..28]));
    assert_eq!(run(&mut a, &x).0, Action::Drop(DropReason::IcmpErrorUnmatched), "no group");
    let reply = tcp(synack(AA, 80, CLIENT, CPORT, 63), b"");
    let x = eth(MAC_A, MAC_GW, &icmp_error(R_CLIENT, AA, 64, 1, 4, 0, [0; 4], &reply[..28]));
    assert_eq!(run(&mut a, &x).0, Action::Drop(DropReason::IcmpNotRelayed), "source quench");
    // At the JAP, an error about our reply for a flow it does not have.
    let mut c = proxy(Who::C, 0, 1, true);
    let x = eth(MAC_C, MAC_A, &ipip(A, C, 1, false, &icmp_error(R_CLIENT, AA, 63, 1, 3, 4, mtu_rest(1280), &reply[..28])));
    assert_eq!(run(&mut c, &x).0, Action::Drop(DropReason::IcmpErrorUnmatched));
    assert_eq!(c.nat.len(), 0, "an ICMP error never creates a mapping");

    // From inside a tunnel: too short a quote, port unreachable, redirect,
    // a parameter problem, an unknown tunnel peer.
    let mut a = proxy(Who::A, 0, 1, true);
    let inner = tcp(Tcp { ttl: 63, mss: Some(1440), ..client_syn(64) }, b"");
    let tunnelled = ipip(A, B, 1, true, &inner);
    let from_tunnel = |ty, code, quote: &[u8]| eth(MAC_A, MAC_GW, &icmp_error(GW, A, 64, 1, ty, code, [0; 4], quote));
    assert_eq!(run(&mut a, &from_tunnel(11, 0, &tunnelled[..28])).0, Action::Drop(DropReason::IcmpQuoteTooShort));
    assert_eq!(run(&mut a, &from_tunnel(11, 0, &tunnelled[..46])).0, Action::Drop(DropReason::IcmpQuoteTooShort));
    assert_eq!(run(&mut a, &from_tunnel(3, 3, &tunnelled[..48])).0, Action::Drop(DropReason::IcmpNotRelayed));
    assert_eq!(run(&mut a, &from_tunnel(5, 0, &tunnelled[..48])).0, Action::Drop(DropReason::IcmpNotRelayed));
    assert_eq!(run(&mut a, &from_tunnel(12, 0, &tunnelled[..48])).0, Action::Drop(DropReason::IcmpNotRelayed));
    let stray = ipip(A, Ipv4Addr::new(192, 0, 2, 77), 1, true, &inner);
    assert_eq!(run(&mut a, &from_tunnel(11, 0, &stray[..48])).0, Action::Drop(DropReason::IcmpErrorUnmatched));
    // About a tunnelled ICMP error: never an error about an error.
    let err_inner = icmp_error(R_CLIENT, AA, 63, 1, 3, 4, mtu_rest(1280), &reply[..28]);
    let t = ipip(A, C, 1, false, &err_inner);
    assert_eq!(run(&mut a, &from_tunnel(11, 0, &t[..48])).0, Action::Drop(DropReason::IcmpNotRelayed));
    assert_eq!(a.stats.icmp_relayed, 0);
}

/// The errors a worker originates are rate-limited by a token bucket (RFC
/// 1812 §4.3.2.8): a burst, then one per interval; the rest are dropped
/// and counted.
#[test]
fn originated_icmp_errors_are_rate_limited() {
    let cfg = PathConfig { icmp_errors_per_s: 10, icmp_burst: 3, ..PathConfig::default() };
    let mut a = proxy_with(Who::A, 0, 1, true, cfg);
    let input = eth(MAC_A, MAC_GW, &tcp(client_syn(1), b""));
    let at = |a: &mut Path, now| {
        let mut b = VecBuf::new(&input);
        a.process(&mut b, 0, now)
    };
    for _ in 0..3 {
        assert_eq!(at(&mut a, NOW), Action::Tx(0));
    }
    assert_eq!(at(&mut a, NOW), Action::Drop(DropReason::IcmpRateLimited));
    assert_eq!(at(&mut a, NOW + 50_000_000), Action::Drop(DropReason::IcmpRateLimited));
    assert_eq!(at(&mut a, NOW + 100_000_000), Action::Tx(0), "one token per 100 ms");
    assert_eq!(at(&mut a, NOW + 100_000_000), Action::Drop(DropReason::IcmpRateLimited));
    assert_eq!(a.stats.icmp_sent, 4);
    // A rate of 0 sends none.
    let mut a = proxy_with(Who::A, 0, 1, true, PathConfig { icmp_errors_per_s: 0, ..PathConfig::default() });
    assert_eq!(at(&mut a, NOW), Action::Drop(DropReason::IcmpRateLimited));
    // Relayed tunnel errors take tokens too.
    let mut a = proxy_with(Who::A, 0, 1, true, PathConfig { icmp_errors_per_s: 1, icmp_burst: 1, ..PathConfig::default() });
    let inner = tcp(Tcp { ttl: 63, mss: Some(1440), ..client_syn(64) }, b"");
    let relay_in = eth(MAC_A, MAC_GW, &icmp_error(GW, A, 64, 0x3838, 11, 0, [0; 4], &ipip(A, B, 1, true, &inner)[..48]));
    assert_eq!(run(&mut a, &relay_in).0, Action::Tx(0));
    assert_eq!(run(&mut a, &relay_in).0, Action::Drop(DropReason::IcmpRateLimited));
}

// ----- fragments (RFC 4787 REQ-14) ----------------------------------------------

/// A 1 000-byte DNS-sized payload, 3 fragments of ≤ 400 bytes of UDP data.
fn big_payload() -> Vec<u8> {
    (0..1000u32).map(|i| (i * 7 + 3) as u8).collect()
}

const CHUNK: usize = 400;

/// The client's fragmented datagram to the UDP group, as sent (TTL 64).
fn client_datagram(ttl: u8) -> Udp {
    Udp { src: CLIENT, sport: 40001, dst: AA, dport: UPORT, ttl, ident: 0x4242 }
}

/// At the IAP, each fragment of a client datagram to a port group is
/// tunnelled to the group's JAP: the first with its ports, the others with
/// the ports the first one recorded (the group lookup needs them).
#[test]
fn fragments_in_order_at_the_iap() {
    let mut a = proxy(Who::A, 0, 1, true);
    a.cache.fill(udp_group(), &[ProxyId(3)], 3600 * NOW, NOW);
    let frags = udp_fragments(client_datagram(64), &big_payload(), CHUNK);
    let out = udp_fragments(client_datagram(63), &big_payload(), CHUNK);
    assert_eq!(frags.len(), 3);
    let inputs: Vec<_> = frags.iter().map(|f| eth(MAC_A, MAC_GW, f)).collect();
    let expected: Vec<_> = out.iter().enumerate().map(|(i, f)| eth(MAC_C, MAC_A, &ipip(A, C, i as u16 + 1, false, f))).collect();
    check_seq(&Seq { name: "frag_iap_in_order", inputs, expected }, &mut a);
    assert_eq!(a.fragments_tracked(), 0, "complete: retired");
}

/// Out of order at the IAP: the later fragments wait for the first, then
/// go out right behind it, in the order they came.
#[test]
fn fragments_out_of_order_at_the_iap() {
    let mut a = proxy(Who::A, 0, 1, true);
    a.cache.fill(udp_group(), &[ProxyId(3)], 3600 * NOW, NOW);
    let frags = udp_fragments(client_datagram(64), &big_payload(), CHUNK);
    let out = udp_fragments(client_datagram(63), &big_payload(), CHUNK);
    let inputs: Vec<_> = [2, 1, 0].iter().map(|&i| eth(MAC_A, MAC_GW, &frags[i])).collect();
    let expected: Vec<_> = [0, 2, 1].iter().enumerate().map(|(n, &i)| eth(MAC_C, MAC_A, &ipip(A, C, n as u16 + 1, false, &out[i]))).collect();
    check_seq(&Seq { name: "frag_iap_out_of_order", inputs, expected }, &mut a);
    assert_eq!((a.stats.frag_held, a.stats.frag_released), (2, 2));
    assert_eq!((a.fragments_held(), a.fragments_tracked()), (0, 0));
}

/// The client's fragments as the JAP receives them (tunnelled by A).
fn jap_fragment_inputs() -> Vec<Vec<u8>> {
    udp_fragments(client_datagram(63), &big_payload(), CHUNK)
        .iter()
        .enumerate()
        .map(|(i, f)| eth(MAC_C, MAC_A, &ipip(A, C, i as u16 + 1, false, f)))
        .collect()
}

/// What the target must receive: the same datagram, NATed (`JAP:q →
/// AT:r`), fragmented the same way; only the first fragment's UDP header
/// changes, the others' IP addresses.
fn jap_fragment_outputs() -> Vec<Vec<u8>> {
    let natted = Udp { src: C, sport: Q0, dst: TARGET, dport: UTPORT, ttl: 62, ident: 0x4242 };
    udp_fragments(natted, &big_payload(), CHUNK).iter().map(|f| eth(MAC_GW, MAC_C, f)).collect()
}

#[test]
fn fragments_in_order_at_the_jap() {
    let mut c = proxy(Who::C, 0, 1, true);
    check_seq(&Seq { name: "frag_jap_in_order", inputs: jap_fragment_inputs(), expected: jap_fragment_outputs() }, &mut c);
    assert_eq!((c.nat.len(), c.stats.jap_forwarded), (1, 3));
    assert_eq!(c.fragments_tracked(), 0);
}

#[test]
fn fragments_out_of_order_at_the_jap() {
    let mut c = proxy(Who::C, 0, 1, true);
    let (i, o) = (jap_fragment_inputs(), jap_fragment_outputs());
    let inputs = vec![i[2].clone(), i[0].clone(), i[1].clone()];
    let expected = vec![o[0].clone(), o[2].clone(), o[1].clone()];
    check_seq(&Seq { name: "frag_jap_out_of_order", inputs, expected }, &mut c);
    assert_eq!((c.fragments_held(), c.fragments_tracked()), (0, 0));
}

/// A small query opens the flow; the target's large answer comes back
/// fragmented and leaves, every fragment, as `AA:53 → AC:p`.
fn reverse_case(order: &[usize]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let q = Udp { src: CLIENT, sport: 40001, dst: AA, dport: UPORT, ttl: 62, ident: 0x0101 };
    let query = b"query";
    let open_in = eth(MAC_C, MAC_A, &ipip(A, C, 9, false, &udp(q, query)));
    let open_out = eth(MAC_GW, MAC_C, &udp(Udp { src: C, sport: Q0, dst: TARGET, dport: UTPORT, ttl: 61, ..q }, query));
    let answer = Udp { src: TARGET, sport: UTPORT, dst: C, dport: Q0, ttl: 64, ident: 0x5151 };
    let back = Udp { src: AA, sport: UPORT, dst: CLIENT, dport: 40001, ttl: 63, ident: 0x5151 };
    let frags = udp_fragments(answer, &big_payload(), CHUNK);
    let out = udp_fragments(back, &big_payload(), CHUNK);
    let mut inputs = vec![open_in];
    inputs.extend(order.iter().map(|&i| eth(MAC_C, MAC_GW, &frags[i])));
    // Held fragments follow their first fragment, in arrival order.
    let first = order.iter().position(|&i| i == 0).unwrap();
    let mut sent: Vec<usize> = vec![0];
    sent.extend(order[..first].iter().copied());
    sent.extend(order[first + 1..].iter().copied());
    let mut expected = vec![open_out];
    expected.extend(sent.iter().map(|&i| eth(MAC_GW, MAC_C, &out[i])));
    (inputs, expected)
}

#[test]
fn fragments_in_order_reverse_nat() {
    let mut c = proxy(Who::C, 0, 1, true);
    let (inputs, expected) = reverse_case(&[0, 1, 2]);
    check_seq(&Seq { name: "frag_reverse_in_order", inputs, expected }, &mut c);
    assert_eq!(c.stats.reverse, 3);
}

#[test]
fn fragments_out_of_order_reverse_nat() {
    let mut c = proxy(Who::C, 0, 1, true);
    let (inputs, expected) = reverse_case(&[1, 2, 0]);
    check_seq(&Seq { name: "frag_reverse_out_of_order", inputs, expected }, &mut c);
    assert_eq!((c.stats.frag_held, c.stats.frag_released), (2, 2));
}

/// What cannot be matched is dropped and counted: a non-first fragment of
/// a flow with no mapping, a held fragment whose first fragment never
/// comes (handed back by expiry), a duplicate first fragment.
#[test]
fn unmatched_fragments_are_dropped_by_reason() {
    // A later fragment of a datagram whose first fragment opened no flow:
    // held, then expired.
    let mut c = proxy(Who::C, 0, 1, true);
    let i = jap_fragment_inputs();
    let mut b = VecBuf::new(&i[1]);
    assert_eq!(c.process(&mut b, 0, NOW), Action::Hold);
    c.hold(b, NOW).unwrap();
    let mut back = Vec::new();
    let timeout = PathConfig::default().frag.timeout;
    assert_eq!(c.expire_fragments(NOW + timeout - 1, 64, &mut |m| back.push(m)), 0);
    assert_eq!(c.expire_fragments(NOW + timeout, 64, &mut |m| back.push(m)), 1);
    assert_eq!(back.len(), 1, "the held fragment comes back to be freed");
    assert_eq!(back[0].to_vec(), i[1]);
    assert_eq!((c.fragments_held(), c.fragments_tracked(), c.nat.len()), (0, 0, 0));

    // A duplicate first fragment is not forwarded twice.
    let mut c = proxy(Who::C, 0, 1, true);
    assert_eq!(run(&mut c, &i[0]).0, Action::Tx(0));
    assert_eq!(run(&mut c, &i[0]).0, Action::Drop(DropReason::FragmentDuplicate));

    // A hold cap: the packet comes back to the caller.
    let cfg = PathConfig { frag: pias_dataplane::frag::FragConfig { max_held: 1, ..Default::default() }, ..PathConfig::default() };
    let mut c = proxy_with(Who::C, 0, 1, true, cfg);
    for (n, f) in [&i[1], &i[2]].into_iter().enumerate() {
        let mut b = VecBuf::new(f);
        assert_eq!(c.process(&mut b, 0, NOW), Action::Hold);
        assert_eq!(c.hold(b, NOW).is_ok(), n == 0);
    }
    // `hold` without a pending hold gives the packet back.
    assert!(c.hold(VecBuf::new(&i[1]), NOW).is_err());

    // The reverse direction: an answer's later fragment for a port with no
    // mapping, once its first fragment came: dropped.
    let mut c = proxy(Who::C, 0, 1, true);
    let answer = Udp { src: TARGET, sport: UTPORT, dst: C, dport: Q0, ttl: 64, ident: 0x5151 };
    let frags = udp_fragments(answer, &big_payload(), CHUNK);
    assert_eq!(run(&mut c, &eth(MAC_C, MAC_GW, &frags[0])).0, Action::Drop(DropReason::NatNoEntry));
    assert_eq!(run(&mut c, &eth(MAC_C, MAC_GW, &frags[1])).0, Action::Drop(DropReason::NatNoEntry));
}

/// A tiny first TCP fragment that splits the TCP header (RFC 1858) is
/// dropped.
#[test]
fn tiny_first_tcp_fragment_is_dropped() {
    let mut a = proxy(Who::A, 0, 1, true);
    let syn = tcp(client_syn(64), b"");
    let mut ip = Ipv4Header::from_slice(&syn).unwrap().0;
    ip.more_fragments = true;
    ip.dont_fragment = false;
    ip.total_len = 20 + 8;
    ip.header_checksum = ip.calc_header_checksum();
    let mut f = Vec::new();
    ip.write(&mut f).unwrap();
    f.extend_from_slice(&syn[20..28]);
    assert_eq!(run(&mut a, &eth(MAC_A, MAC_GW, &f)).0, Action::Drop(DropReason::L4Malformed));
}

// ----- bad input over every golden case --------------------------------------------

/// The frames of every golden input pcap, by case name.
fn golden_inputs() -> Vec<(String, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(golden_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    for p in paths {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let Some(case) = name.strip_suffix(".in.pcap") else { continue };
        let bytes = std::fs::read(&p).unwrap();
        let mut at = 24;
        let mut frames = Vec::new();
        while at + 16 <= bytes.len() {
            let n = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
            frames.push(bytes[at + 16..at + 16 + n].to_vec());
            at += 16 + n;
        }
        out.push((case.to_string(), frames));
    }
    out
}

/// Every strict prefix of every golden input frame, through every proxy:
/// never sent, never a panic; and every frame with one byte inverted: a
/// frame that is still sent is IPv4 with a valid header checksum. Held
/// fragments all come back by expiry.
#[test]
fn every_prefix_and_corruption_of_every_golden_input_is_safe() {
    let inputs = golden_inputs();
    assert!(inputs.len() >= 20);
    for (name, frames) in &inputs {
        for who in [Who::A, Who::B, Who::C] {
            let mut p = proxy(who, 0, 1, true);
            p.cache.fill(udp_group(), &[ProxyId(3)], 3600 * NOW, NOW);
            for f in frames {
                for n in 0..f.len() {
                    for (a, _) in drive(&mut p, &f[..n], NOW) {
                        assert!(!matches!(a, Action::Tx(_)), "{name}: prefix {n} sent");
                    }
                }
                for i in 0..f.len() {
                    let mut g = f.clone();
                    g[i] ^= 0xff;
                    for (a, out) in drive(&mut p, &g, NOW) {
                        if let Action::Tx(_) = a {
                            let (h, _) = Ipv4Header::from_slice(&out[14..]).unwrap_or_else(|e| panic!("{name}: byte {i}: sent non-IPv4 {e:?}"));
                            assert_eq!(h.calc_header_checksum(), h.header_checksum, "{name}: byte {i}: IPv4 checksum");
                        }
                    }
                }
            }
            let mut freed = 0;
            p.expire_fragments(NOW + 60 * NOW, usize::MAX, &mut |_| freed += 1);
            assert_eq!(p.fragments_held(), 0, "{name}");
        }
    }
}

/// TTL 1 on arrival at the JAP (after two tunnels): the time exceeded goes
/// to the client by the routing table (the gateway), not back to the
/// proxy that tunnelled the packet here.
#[test]
fn icmp_error_at_the_jap_is_routed_to_the_client() {
    let mut c: Path = proxy(Who::C, 0, 1, true);
    let offending = tcp(Tcp { ttl: 1, ..client_syn(64) }, b"");
    let input = eth(MAC_C, MAC_B, &ipip(B, C, 1, true, &offending));
    let mut b = VecBuf::new(&input);
    let a = c.process(&mut b, 0, NOW);
    assert_eq!(a, Action::Tx(0));
    let out = b.to_vec();
    assert_eq!(&out[0..6], &MAC_GW, "to the gateway, towards the client");
    assert_eq!(&out[6..12], &MAC_C);
    let expected = icmp_error(C, CLIENT, 64, 1, 11, 0, [0; 4], &offending[..28]);
    assert_eq!(&out[14..], &expected[..], "time exceeded from the JAP to the client");
}

/// A target's join, UDP to an anycast address on the control port, goes to
/// the control core of the proxy native anycast delivered it to; so does a
/// control datagram to the proxy's own address.
#[test]
fn control_datagrams_to_anycast_and_unicast_are_punted() {
    let mut a: Path = proxy(Who::A, 0, 1, true);
    let port = PathConfig::default().control_port;
    for dst in [AA, A] {
        let join = eth(MAC_A, MAC_GW, &udp(Udp { src: TARGET, sport: 40123, dst, dport: port, ttl: 64, ident: 7 }, b"join"));
        let mut b = VecBuf::new(&join);
        assert_eq!(a.process(&mut b, 0, NOW), Action::Punt(pias_dataplane::iface::Punt::Control), "to {dst}");
    }
}

/// A NAT port that happens to equal the control port: the target's reply
/// to that mapping is reverse-NATed, not taken for a control datagram
/// (found by the benchmark: ~8 replies per million were lost).
#[test]
fn reply_to_a_nat_port_equal_to_the_control_port_is_nat_traffic() {
    use pias_dataplane::flow::{NatPorts, PortRange};
    use pias_dataplane::nat::{NatConfig, NatTable};
    let mut c: Path = proxy(Who::C, 0, 1, true);
    let cport = PathConfig::default().control_port;
    // A NAT table whose only port is the control port.
    let ports = NatPorts::new(PortRange { lo: cport, hi: cport }, 1).unwrap();
    c.nat = NatTable::new(NatConfig { ports: ports.range_of(0).unwrap(), max_flows: 16, ..NatConfig::default() }).unwrap();
    c.ports = ports;
    let q = Udp { src: CLIENT, sport: 40001, dst: AA, dport: UPORT, ttl: 62, ident: 1 };
    let open = eth(MAC_C, MAC_A, &ipip(A, C, 9, false, &udp(q, b"query")));
    let mut b = VecBuf::new(&open);
    assert_eq!(c.process(&mut b, 0, NOW), Action::Tx(0));
    assert_eq!(c.nat.flows().next().unwrap().nat_port, cport);
    let answer = eth(MAC_C, MAC_GW, &udp(Udp { src: TARGET, sport: UTPORT, dst: C, dport: cport, ttl: 64, ident: 2 }, b"answer"));
    let mut b = VecBuf::new(&answer);
    assert_eq!(c.process(&mut b, 0, NOW), Action::Tx(0), "reverse NAT, not a punt");
    assert_eq!(&b.to_vec()[14 + 12..14 + 16], &AA.octets());
    // From anyone else, the control port is still the control port.
    let ctl = eth(MAC_C, MAC_GW, &udp(Udp { src: B, sport: cport, dst: C, dport: cport, ttl: 64, ident: 3 }, b"hello"));
    let mut b = VecBuf::new(&ctl);
    assert_eq!(c.process(&mut b, 0, NOW), Action::Punt(pias_dataplane::iface::Punt::Control));
}
