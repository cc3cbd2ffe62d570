//! The per-packet function of each PIAS stage without EAL (issue 4,
//! "Benchmarks"): `Path::process` on a `VecBuf` refilled from the stage's
//! traffic before every call, in ns/packet.
//!
//! Run: `cargo bench -p pias-dataplane --bench path -- --warm-up-time 1 --measurement-time 3`
//!
//! The scenarios (proxies, groups, targets, flows, frames) are the bench
//! harness's, `bench/src/scenario.rs`, included here by path so that this
//! bench, `pathfwd` (DPDK) and `path-callgrind` run the very same packets.
//! Every iteration writes the next frame of the traffic (flows in a
//! pseudo-random order) and copies it into the buffer: `gen_reset/*`
//! measures that alone, to subtract. Events are drained every 32 packets,
//! as a worker does after each burst.
//!
//! - `iap-miss`, `iap-cached`, `rap`: 1 024 flows over 256 groups.
//! - `jap`, `reverse`: every flow in the NAT table; 1 k and 1 M flows (the
//!   1 M table does not fit the caches: lookups miss).
//! - `jap-new`: every packet a new flow; the virtual clock moves 1 µs per
//!   packet and every NAT timeout is 1 s, with `expire(now, 64)` every 32
//!   packets (piasd's budget), so creations and expiries balance at about
//!   1 M live flows. `jap-new/256tpg`: the same with 2 groups of 256 targets
//!   each (target choice is rendezvous hashing over a group's targets).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pias_dataplane::nat::SECOND;
use pias_dataplane::packet::{PacketBuf, VecBuf};

#[allow(dead_code)]
#[path = "../../bench/src/scenario.rs"]
mod scenario;

use scenario::{Config, Mode, Scenario};

fn label(n: u64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

fn bench_one(c: &mut Criterion, name: &str, param: &str, cfg: Config, process: bool) {
    let Scenario { mut path, mut traffic } = Scenario::build(&cfg);
    let mut frame = [0u8; 128];
    let len = traffic.frame_len();
    let mut buf = VecBuf::new(&frame[..len]);
    let churn = cfg.mode == Mode::JapNew;
    let mut now = SECOND;
    let mut i = 0u64;
    let mut g = c.benchmark_group(if process { "path_process" } else { "gen_reset" });
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new(name, param), |b| {
        b.iter(|| {
            traffic.next_into(&mut frame);
            buf.reset(&frame[..len]);
            if !process {
                return black_box(&mut buf).len();
            }
            let a = path.process(&mut buf, 0, now);
            i += 1;
            if churn {
                now += 1000;
            }
            if i % 32 == 0 {
                path.events.drain().for_each(drop);
                if churn {
                    path.nat.expire(now, 64);
                }
            }
            black_box(a);
            buf.len()
        })
    });
    g.finish();
    let s = &path.stats;
    let forwarded = s.iap_cached + s.iap_to_rap + s.rap_forwarded + s.jap_forwarded + s.reverse;
    if process && forwarded == 0 {
        panic!("{name}/{param}: nothing forwarded");
    }
    if churn {
        eprintln!(
            "{name}/{param}: {} new flows, {} live, {} expired, NAT {:.1} MiB",
            s.jap_new_flows,
            path.nat.len(),
            path.nat.counters().expired,
            path.nat.memory_bytes() as f64 / (1 << 20) as f64
        );
    }
}

fn stages(c: &mut Criterion) {
    for (name, len_mode) in [("eth60", Mode::IapCached), ("ipip80", Mode::Jap)] {
        bench_one(c, name, "1k", Config::new(len_mode, 1024), false);
    }
    for mode in [Mode::IapMiss, Mode::IapCached, Mode::Rap] {
        bench_one(c, mode.name(), "1k", Config::new(mode, 1024), true);
    }
    for mode in [Mode::Jap, Mode::Reverse] {
        for n in [1024u64, 1 << 20] {
            bench_one(c, mode.name(), &label(n), Config::new(mode, n), true);
        }
    }
    let churn = Config { nat_idle: Some(SECOND), nat_capacity: 4 << 20, ..Config::new(Mode::JapNew, 1) };
    bench_one(c, "jap-new", "4tpg", churn, true);
    bench_one(c, "jap-new", "256tpg", Config { groups: 2, targets_per_group: 256, ..churn }, true);
}

criterion_group!(benches, stages);
criterion_main!(benches);
