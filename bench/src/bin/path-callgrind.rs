//! A deterministic driver of the PIAS packet path for callgrind (no EAL):
//! builds the scenario of `--mode` (pias_bench::scenario), then runs
//! `--packets` packets of its traffic through `Path::process` on a
//! `VecBuf`, with the worker loop's per-burst work (events drained and
//! `NatTable::expire(now, 64)` every 32 packets). With `--burst`, through
//! `Path::process_burst` 32 packets at a time, as piasd's worker does.
//!
//! `bench/callgrind.sh` runs it under `valgrind --tool=callgrind
//! --toggle-collect=*run_packets*` for two packet counts: the difference of
//! the two totals over the difference of the counts is the instructions
//! per packet (set-up and start-up cancel out). `--no-path` runs the
//! generator and buffer reset alone, to subtract.
//!
//! ```text
//! path-callgrind --mode jap --packets 100000 [--flows 1024] [--groups 256]
//!     [--targets-per-group 4] [--no-path] [--burst]
//! ```

use std::hint::black_box;

use pias_bench::scenario::{Config, Mode, Scenario, Traffic};
use pias_dataplane::nat::SECOND;
use pias_dataplane::packet::VecBuf;
use pias_dataplane::pipeline::{Action, Path};

/// Packets per burst, as the worker's rx bursts.
const BURST: usize = 32;

/// The measured part: `n` packets, as a worker would see them in bursts of
/// 32. Virtual time moves 100 ns per packet.
#[inline(never)]
fn run_packets(path: &mut Path, traffic: &mut Traffic, n: u64, no_path: bool, burst: bool) -> (u64, u64) {
    if burst {
        return run_bursts(path, traffic, n, no_path);
    }
    let mut frame = [0u8; 128];
    let len = traffic.frame_len();
    let mut buf = VecBuf::new(&frame[..len]);
    let (mut tx, mut other) = (0u64, 0u64);
    let mut now = SECOND;
    for i in 0..n {
        traffic.next_into(&mut frame);
        buf.reset(&frame[..len]);
        if no_path {
            black_box(&mut buf);
            continue;
        }
        match path.process(&mut buf, 0, now) {
            Action::Tx(_) => tx += 1,
            _ => other += 1,
        }
        black_box(&buf);
        if i % 32 == 31 {
            path.events.drain().for_each(drop);
            path.nat.expire(now, 64);
            now += 3200;
        }
    }
    (tx, other)
}

/// [`run_packets`] through `Path::process_burst`, 32 frames at a time (`n`
/// rounded down to whole bursts), as piasd's worker runs them.
fn run_bursts(path: &mut Path, traffic: &mut Traffic, n: u64, no_path: bool) -> (u64, u64) {
    let mut frame = [0u8; 128];
    let len = traffic.frame_len();
    let mut bufs: Vec<VecBuf> = (0..BURST).map(|_| VecBuf::new(&frame[..len])).collect();
    let mut actions = [Action::Hold; BURST];
    let (mut tx, mut other) = (0u64, 0u64);
    let mut now = SECOND;
    for _ in 0..n / BURST as u64 {
        for b in bufs.iter_mut() {
            traffic.next_into(&mut frame);
            b.reset(&frame[..len]);
        }
        if no_path {
            black_box(&mut bufs);
            continue;
        }
        let mut done = 0;
        while done < BURST {
            done += path.process_burst(&mut bufs[done..], 0, now, &mut actions[done..]).max(1);
        }
        for a in &actions {
            match a {
                Action::Tx(_) => tx += 1,
                _ => other += 1,
            }
        }
        black_box(&bufs);
        path.events.drain().for_each(drop);
        path.nat.expire(now, 64);
        now += 3200;
    }
    (tx, other)
}

fn main() {
    let mut mode = None;
    let mut packets = 100_000u64;
    let mut flows = 1024u64;
    let mut no_path = false;
    let mut burst = false;
    let mut groups = None;
    let mut tpg = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mode" => mode = args.next().and_then(|s| Mode::from_name(&s)),
            "--packets" => packets = args.next().and_then(|s| s.parse().ok()).unwrap_or(packets),
            "--flows" => flows = args.next().and_then(|s| s.parse().ok()).unwrap_or(flows),
            "--no-path" => no_path = true,
            "--burst" => burst = true,
            "--groups" => groups = args.next().and_then(|s| s.parse().ok()),
            "--targets-per-group" => tpg = args.next().and_then(|s| s.parse().ok()),
            _ => {
                eprintln!("usage: path-callgrind --mode MODE [--packets N] [--flows N] [--groups N] [--targets-per-group N] [--no-path] [--burst]");
                std::process::exit(2);
            }
        }
    }
    let Some(mode) = mode else {
        eprintln!("path-callgrind: --mode iap-miss|iap-cached|rap|jap|jap-new|reverse");
        std::process::exit(2);
    };
    let mut cfg = Config::new(mode, flows);
    cfg.groups = groups.unwrap_or(cfg.groups);
    cfg.targets_per_group = tpg.unwrap_or(cfg.targets_per_group);
    if mode == Mode::JapNew {
        // Room for every new flow of the largest run; no expiry.
        cfg.nat_capacity = 1 << 20;
    }
    let Scenario { mut path, mut traffic } = Scenario::build(&cfg);
    let (tx, other) = run_packets(&mut path, &mut traffic, packets, no_path, burst);
    let stats = pias_dataplane::pipeline::PathStats::NAMES
        .iter()
        .zip(path.stats.values())
        .filter(|(_, v)| *v > 0)
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    println!("mode={mode} packets={packets} flows={flows} no_path={no_path} burst={burst} tx={tx} other={other} nat_flows={} {stats}", path.nat.len());
    if !no_path && other != 0 {
        eprintln!("path-callgrind: {other} packets were not forwarded");
        std::process::exit(1);
    }
}
