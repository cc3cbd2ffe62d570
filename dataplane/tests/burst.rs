//! `Path::process_burst` is `Path::process` on each packet in order: the
//! same actions, the same output bytes, the same counters, events, NAT and
//! fragment state (issue 4: the burst entry point prefetches, it must never
//! change a result).
//!
//! The traffic is every input frame of the golden pcaps (`tests/golden/`:
//! every segment, ICMP errors both ways, fragments in and out of order),
//! mixed in random order with repetitions and random corruptions (a byte
//! changed, the frame cut short), sent to the IAP, the RAP or the JAP of
//! the golden topology, one or two workers, in bursts of random sizes with
//! the clock moving between bursts (so flows and held fragments expire).
//! The reference runs the same packets one at a time through `process`,
//! exactly as a worker did before bursts (held fragments to `hold`,
//! released ones processed right after the packet that released them).

#[allow(unused_imports)] // the frame builders are not needed here
mod common;

use common::*;
use pias_dataplane::nat::{NatConfig, NatTable};
use pias_dataplane::packet::VecBuf;
use pias_dataplane::pipeline::{Action, Path};
use pias_dataplane::reason::DropReason;
use proptest::prelude::*;

/// Every input frame of every golden pcap.
fn golden_inputs() -> Vec<Vec<u8>> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/golden")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".in.pcap"))
        .collect();
    names.sort();
    let mut frames = Vec::new();
    for p in names {
        let f = std::fs::read(&p).expect("pcap");
        // Classic pcap: a 24-byte file header, then 16-byte record headers.
        let mut at = 24;
        while at + 16 <= f.len() {
            let len = u32::from_le_bytes(f[at + 8..at + 12].try_into().unwrap()) as usize;
            frames.push(f[at + 16..at + 16 + len].to_vec());
            at += 16 + len;
        }
    }
    assert!(frames.len() >= 30, "golden inputs: {}", frames.len());
    frames
}

/// One packet outcome: the action and the frame as the path left it.
type Outcome = (Action, Vec<u8>);

/// After a packet: a held one goes to `hold` (a refusal is the drop the
/// worker counts), then the fragments it released are processed.
fn settle(p: &mut Path, a: Action, b: &VecBuf, now: u64, out: &mut Vec<Outcome>) {
    out.push((a, b.to_vec()));
    if a == Action::Hold {
        if let Err(b) = p.hold(b.clone(), now) {
            out.push((Action::Drop(DropReason::FragmentHoldRefused), b.to_vec()));
        }
    }
}

fn release(p: &mut Path, now: u64, out: &mut Vec<Outcome>) {
    while let Some((mut m, port)) = p.next_released() {
        let a = p.process(&mut m, port, now);
        settle(p, a, &m, now, out);
    }
}

fn per_packet(p: &mut Path, bursts: &[(u64, Vec<Vec<u8>>)]) -> Vec<Outcome> {
    let mut out = Vec::new();
    for (now, frames) in bursts {
        for f in frames {
            let mut b = VecBuf::new(f);
            let a = p.process(&mut b, 0, *now);
            settle(p, a, &b, *now, &mut out);
            release(p, *now, &mut out);
        }
    }
    out
}

fn bursty(p: &mut Path, bursts: &[(u64, Vec<Vec<u8>>)]) -> Vec<Outcome> {
    let mut out = Vec::new();
    for (now, frames) in bursts {
        let mut bufs: Vec<VecBuf> = frames.iter().map(|f| VecBuf::new(f)).collect();
        let mut actions = vec![Action::Hold; bufs.len()];
        let mut done = 0;
        while done < bufs.len() {
            let n = p.process_burst(&mut bufs[done..], 0, *now, &mut actions[done..]);
            assert!(n > 0, "process_burst made no progress");
            for i in done..done + n {
                settle(p, actions[i], &bufs[i], *now, &mut out);
            }
            release(p, *now, &mut out);
            done += n;
        }
    }
    out
}

/// Everything observable of a path after the run.
fn state(p: &mut Path) -> String {
    let events: Vec<String> = p.events.drain().map(|e| format!("{e:?}")).collect();
    let flows: Vec<String> = p.nat.flows().map(|f| format!("{f:?}")).collect();
    format!(
        "stats {:?}\nevents {events:?}\nnat {} {:?}\nflows {flows:?}\nfrag {:?} held {} tracked {}",
        p.stats,
        p.nat.len(),
        p.nat.counters(),
        p.fragment_counters(),
        p.fragments_held(),
        p.fragments_tracked()
    )
}

/// A corruption of one input frame.
#[derive(Clone, Debug)]
enum Damage {
    None,
    /// Byte `at % len` XORed with `x` (non-zero).
    Flip { at: usize, x: u8 },
    /// Cut to `at % len` bytes.
    Cut { at: usize },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        6 => Just(Damage::None),
        2 => (any::<usize>(), 1u8..=255).prop_map(|(at, x)| Damage::Flip { at, x }),
        1 => any::<usize>().prop_map(|at| Damage::Cut { at }),
    ]
}

fn apply(f: &[u8], d: &Damage) -> Vec<u8> {
    let mut f = f.to_vec();
    match *d {
        Damage::None => {}
        Damage::Flip { at, x } => {
            let n = f.len();
            f[at % n] ^= x;
        }
        Damage::Cut { at } => f.truncate(at % f.len()),
    }
    f
}

fn who(i: u8) -> Who {
    match i % 3 {
        0 => Who::A,
        1 => Who::B,
        _ => Who::C,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn burst_equals_per_packet_on_mixed_golden_traffic(
        proxy in 0u8..3,
        workers in 1u16..=2,
        big in any::<bool>(),
        packets in prop::collection::vec((any::<prop::sample::Index>(), damage()), 1..160),
        sizes in prop::collection::vec(1usize..=40, 1..40),
        steps in prop::collection::vec(prop_oneof![4 => Just(0u64), 2 => 0u64..2_000_000_000, 1 => 0u64..400_000_000_000], 1..40),
    ) {
        let pool = golden_inputs();
        let frames: Vec<Vec<u8>> = packets.iter().map(|(i, d)| apply(&pool[i.index(pool.len())], d)).collect();
        // Cut into bursts of the drawn sizes, the clock moving between them.
        let mut bursts = Vec::new();
        let (mut at, mut now, mut k) = (0, NOW, 0);
        while at < frames.len() {
            let n = sizes[k % sizes.len()].min(frames.len() - at);
            bursts.push((now, frames[at..at + n].to_vec()));
            now += steps[k % steps.len()];
            at += n;
            k += 1;
        }
        let mut one = proxy_path(who(proxy), workers, big);
        let mut many = proxy_path(who(proxy), workers, big);
        let want = per_packet(&mut one, &bursts);
        let got = bursty(&mut many, &bursts);
        prop_assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            prop_assert_eq!(g.0, w.0, "packet {}: action", i);
            prop_assert!(g.1 == w.1, "packet {}: bytes differ", i);
        }
        prop_assert_eq!(state(&mut many), state(&mut one));
    }
}

/// The golden topology's proxy `w` (worker 0 of `workers`). `big`: with a
/// NAT table large enough that `process_burst` really prefetches
/// (`NatTable::prefetch_worthwhile`); the topology's own is too small.
fn proxy_path(w: Who, workers: u16, big: bool) -> Path {
    let mut p: Path = proxy(w, 0, workers, true);
    if big {
        let ports = p.ports.range_of(p.worker).unwrap();
        p.nat = NatTable::new(NatConfig { ports, max_flows: 1 << 18, ..NatConfig::default() }).unwrap();
        assert!(p.nat.prefetch_worthwhile());
    }
    assert!(big || !p.nat.prefetch_worthwhile());
    p
}

/// The golden traffic in one pass, in file order, at every proxy: each
/// packet's outcome is the same through `process_burst` (bursts of 32) as
/// through `process`, and some packets of every kind are forwarded.
#[test]
fn burst_equals_per_packet_on_the_golden_inputs_in_order() {
    let pool = golden_inputs();
    for (w, big) in [Who::A, Who::B, Who::C].into_iter().flat_map(|w| [(w, false), (w, true)]) {
        let bursts: Vec<_> = pool.chunks(32).map(|c| (NOW, c.to_vec())).collect();
        let mut one = proxy_path(w, 1, big);
        let mut many = proxy_path(w, 1, big);
        let want = per_packet(&mut one, &bursts);
        let got = bursty(&mut many, &bursts);
        assert_eq!(got, want);
        assert!(want.iter().any(|(a, _)| matches!(a, Action::Tx(_))), "nothing forwarded");
        assert_eq!(state(&mut many), state(&mut one));
    }
    let p = proxy_path(Who::C, 1, true);
    // The prefetch reads every prefix of every input without panicking.
    for f in &pool {
        p.prefetch_burst((0..=f.len()).map(|n| &f[..n]), 0);
        p.prefetch_burst((0..=f.len()).map(|n| &f[..n]), 7);
    }
}
