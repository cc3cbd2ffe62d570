//! The benchmark scenarios do what the benchmarks claim: every mode's
//! traffic is forwarded by its proxy (no drop hides in a benchmark), every
//! frame's checksums verify (the path checks the IPv4 ones), and one cycle
//! of the traffic holds every flow exactly once.

use std::collections::HashSet;

use pias_bench::scenario::{Config, Mode, Scenario, Traffic};
use pias_dataplane::packet::{PacketBuf, VecBuf};
use pias_dataplane::pipeline::Action;

fn sum16(b: &[u8]) -> u32 {
    b.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xFFFF {
        s = (s & 0xFFFF) + (s >> 16);
    }
    s as u16
}

/// The IPv4 header at `ip` and its TCP/UDP segment verify.
fn verify(frame: &[u8], ip: usize) {
    assert_eq!(fold(sum16(&frame[ip..ip + 20])), 0xFFFF, "ip checksum");
    let total = usize::from(u16::from_be_bytes([frame[ip + 2], frame[ip + 3]]));
    let seg = &frame[ip + 20..ip + total];
    let pseudo = sum16(&frame[ip + 12..ip + 20]) + u32::from(frame[ip + 9]) + seg.len() as u32;
    assert_eq!(fold(pseudo + sum16(seg)), 0xFFFF, "l4 checksum");
}

fn tunnelled_in(mode: Mode) -> bool {
    matches!(mode, Mode::Rap | Mode::Jap | Mode::JapNew)
}

fn tunnelled_out(mode: Mode) -> bool {
    matches!(mode, Mode::IapMiss | Mode::IapCached | Mode::Rap)
}

#[test]
fn every_mode_forwards_and_checksums_verify() {
    for mode in Mode::ALL {
        let mut s = Scenario::build(&Config { groups: 8, ..Config::new(mode, 100) });
        let mut frame = vec![0u8; s.traffic.frame_len()];
        for i in 0..300 {
            s.traffic.next_into(&mut frame);
            if tunnelled_in(mode) {
                assert_eq!(fold(sum16(&frame[14..34])), 0xFFFF, "outer checksum");
                verify(&frame, 34);
            } else {
                verify(&frame, 14);
            }
            let mut b = VecBuf::new(&frame);
            let a = s.path.process(&mut b, 0, 1);
            assert_eq!(a, Action::Tx(0), "{mode} packet {i}");
            verify(b.data(), if tunnelled_out(mode) { 34 } else { 14 });
            s.path.events.drain().for_each(drop);
        }
        match mode {
            Mode::JapNew => assert_eq!(s.path.stats.jap_new_flows, 300),
            Mode::Jap | Mode::Reverse => {
                assert_eq!(s.path.stats.jap_new_flows, 0);
                assert_eq!(s.path.nat.len(), 100);
            }
            _ => {}
        }
    }
}

#[test]
fn one_cycle_holds_every_flow_once() {
    for n in [1u64, 2, 3, 1000, 1024, 50_000] {
        let t = Traffic::new(&Config::new(Mode::IapCached, n), None);
        let frames = t.frames(0);
        assert_eq!(frames.len() as u64, n);
        let flows: HashSet<[u8; 6]> = frames
            .iter()
            .map(|f| [f[26], f[27], f[28], f[29], f[34], f[35]]) // client address and port
            .collect();
        assert_eq!(flows.len() as u64, n, "{n} flows");
    }
    let t = Traffic::new(&Config::new(Mode::JapNew, 1), None);
    let frames = t.frames(5000);
    let flows: HashSet<[u8; 6]> = frames.iter().map(|f| [f[46], f[47], f[48], f[49], f[54], f[55]]).collect();
    assert_eq!(flows.len(), 5000, "jap-new: every packet a new flow");
}
