//! The whole per-packet function (`Path::process`), as one proxy of the
//! golden topology (IAP A, RAP B or JAP C) sees a short sequence of frames.
//!
//! Input: byte 0 picks the setup — bits 0–1 the proxy (A, B, C, C), bit 2
//! "the first frame was handed over by another worker", bit 3 three workers
//! instead of one, bits 4–5 which worker this is, bit 6 the targets are
//! dead, bit 7 the IAP's cache already names C. Then frames, each a
//! big-endian u16 length and that many bytes (the last one takes what is
//! left). The seeds are the golden cases' input pcaps (`fuzz/seed.sh`), so
//! sequences that open a flow and then answer it, fragment it or send ICMP
//! errors about it are there to mutate.
//!
//! Checks: no panic; a sent frame is Ethernet + IPv4 with a valid header
//! checksum (a tunnel packet parses as IP-in-IP, inner checksum included;
//! an ICMP message we send or translate has a valid checksum); a handed-off
//! or held frame is unmodified; nothing stays held after expiry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pias_dataplane::frag::FragConfig;
use pias_dataplane::packet::{PacketBuf, VecBuf};
use pias_dataplane::pipeline::{Action, Path, PathConfig};
use pias_dataplane::types::ProxyId;
use pias_dataplane::wire::{checksum, ipip, EtherType, EthernetFrame, IpProtocol, Ipv4Packet};

#[allow(dead_code)]
#[path = "../../tests/common/topology.rs"]
mod topology;
use topology::*;

const MS: u64 = 1_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else { return };
    let who = match sel & 3 {
        0 => Who::A,
        1 => Who::B,
        _ => Who::C,
    };
    let workers = if sel & 0x08 != 0 { 3 } else { 1 };
    let w = u16::from((sel >> 4) & 3) % workers;
    let cfg = PathConfig {
        icmp_burst: 4,
        frag: FragConfig { max_datagrams: 8, max_held: 6, max_held_per_datagram: 4, ..FragConfig::default() },
        ..PathConfig::default()
    };
    let mut p: Path = proxy_with(who, w, workers, sel & 0x40 == 0, cfg);
    if sel & 0x80 != 0 {
        p.cache.fill(group(), &[ProxyId(3)], 3600 * NOW, NOW);
        p.cache.fill(udp_group(), &[ProxyId(3)], 3600 * NOW, NOW);
    }
    let mut now = NOW;
    let mut first = true;
    for _ in 0..16 {
        if rest.is_empty() {
            break;
        }
        let (frame, r) = next_frame(rest);
        rest = r;
        one(&mut p, frame, first && sel & 0x04 != 0, now);
        first = false;
        now += MS;
    }
    let mut freed = 0usize;
    p.expire_fragments(now + 60_000 * MS, usize::MAX, &mut |_m| freed += 1);
    assert_eq!(p.fragments_held(), 0, "held fragments left after expiry");
    assert_eq!(p.fragments_tracked(), 0);
    p.nat.expire(now + 100_000_000 * MS, usize::MAX);
    assert!(p.nat.is_empty());
});

fn next_frame(d: &[u8]) -> (&[u8], &[u8]) {
    if d.len() < 2 {
        return (d, &[]);
    }
    let n = usize::from(u16::from_be_bytes([d[0], d[1]]));
    let d = &d[2..];
    d.split_at(n.min(d.len()))
}

fn one(p: &mut Path, frame: &[u8], handed: bool, now: u64) {
    let mut b = VecBuf::new(frame);
    let a = if handed { p.process_handed_over(&mut b, 0, now) } else { p.process(&mut b, 0, now) };
    settle(p, a, b, frame, now);
    while let Some((mut m, port)) = p.next_released() {
        let before = m.to_vec();
        let a = p.process(&mut m, port, now);
        assert!(!matches!(a, Action::Hold), "a released fragment held again");
        settle(p, a, m, &before, now);
    }
}

fn settle(p: &mut Path, a: Action, b: VecBuf, input: &[u8], now: u64) {
    match a {
        Action::Tx(port) => {
            assert_eq!(port, 0);
            check_sent(b.data());
        }
        Action::Handoff(to) => {
            assert!(to < p.workers && to != p.worker, "handoff to {to}");
            assert_eq!(b.data(), input, "handed over modified");
        }
        Action::Hold => {
            assert_eq!(b.data(), input, "held modified");
            let _ = p.hold(b, now);
        }
        Action::Punt(_) | Action::Drop(_) => {}
    }
}

fn check_sent(f: &[u8]) {
    let eth = EthernetFrame::new_checked(f).expect("sent: Ethernet");
    assert_eq!(eth.ethertype(), EtherType::Ipv4, "sent: not IPv4");
    let ipb = eth.payload();
    let ip = Ipv4Packet::new_checked(ipb).expect("sent: IPv4");
    assert!(ip.verify_checksum(), "sent: IPv4 checksum");
    match ip.protocol() {
        IpProtocol::IpIp => {
            let d = ipip::parse(&ipb[..usize::from(ip.total_len())]).expect("sent: IP-in-IP");
            check_icmp(&d.inner);
        }
        _ => check_icmp(&ip),
    }
}

/// ICMP we send (built, translated, or forwarded after checking) has a
/// valid checksum.
fn check_icmp(ip: &Ipv4Packet<&[u8]>) {
    if ip.protocol() == IpProtocol::Icmp && !ip.is_fragment() {
        assert_eq!(checksum::data(ip.payload()), 0xffff, "sent: ICMP checksum");
    }
}
