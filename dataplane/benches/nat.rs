//! NAT table benchmarks (issue 4, "Benchmarks"): new-flow creation rate and
//! forward / reverse lookup at 1 k, 100 k, 1 M and 10 M flows, with the
//! table's memory per flow printed for each size.
//!
//! Run: `cargo bench -p pias-dataplane --bench nat -- --warm-up-time 1 --measurement-time 3`
//! (`PIAS_NAT_BENCH_MAX=1000000` skips the 10 M table).
//!
//! Lookups visit the flows in a random order (a precomputed permutation), so
//! the bigger tables measure cache and TLB misses, not a warm working set.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use pias_dataplane::flow::{FlowKey, PortRange, PROTO_UDP};
use pias_dataplane::nat::{NatConfig, NatTable, SECOND};
use pias_dataplane::types::TargetAddr;

/// The key of flow `i`: 1 024 client ports per client address.
#[inline]
fn key(i: u32) -> FlowKey {
    FlowKey::new(
        Ipv4Addr::from_bits(0x0A00_0000 + (i >> 10)),
        1024 + (i & 1023) as u16,
        Ipv4Addr::new(198, 51, 100, 1),
        53,
        PROTO_UDP,
    )
}

/// The target of flow `i`: 1 024 targets (256 addresses × 4 ports).
#[inline]
fn target(i: u32) -> TargetAddr {
    let t = i.wrapping_mul(0x9E37_79B1) >> 22;
    TargetAddr { ip: Ipv4Addr::new(203, 0, 113, (t & 255) as u8), port: 8000 + (t >> 8) as u16 }
}

fn config(max_flows: usize) -> NatConfig {
    NatConfig { max_flows, ports: PortRange::new(1024, 65535).unwrap(), ..NatConfig::default() }
}

/// A shuffled `0..n` (xorshift Fisher-Yates, fixed seed).
fn permutation(n: u32) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n).collect();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

/// A table holding flows `0..n`, their NAT ports, and how long the fill took.
fn filled(n: u32) -> (NatTable, Vec<u16>, Duration) {
    let mut t = NatTable::new(config(n as usize)).unwrap();
    let mut ports = Vec::with_capacity(n as usize);
    let start = Instant::now();
    for i in 0..n {
        let h = t.create(&key(i), target(i), SECOND, None).unwrap();
        ports.push(h.nat_port);
    }
    let took = start.elapsed();
    assert_eq!(t.len(), n as usize);
    (t, ports, took)
}

fn sizes() -> Vec<u32> {
    let max: u32 = std::env::var("PIAS_NAT_BENCH_MAX").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    [1_000, 100_000, 1_000_000, 10_000_000].into_iter().filter(|&n| n <= max).collect()
}

fn label(n: u32) -> String {
    match n {
        n if n >= 1_000_000 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// New flows into an empty 1 M table, batches of up to 1 M, emptied by
/// expiry (untimed) between batches so that slots and pages are reused as in
/// steady state.
fn create(c: &mut Criterion) {
    const CAP: u32 = 1_000_000;
    let mut g = c.benchmark_group("nat_create");
    g.throughput(Throughput::Elements(1));
    g.bench_function("into_1M_table", |b| {
        let mut t = NatTable::new(config(CAP as usize)).unwrap();
        let mut now = SECOND;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let batch = left.min(u64::from(CAP)) as u32;
                let start = Instant::now();
                for i in 0..batch {
                    black_box(t.create(&key(i), target(i), now, None).unwrap());
                }
                total += start.elapsed();
                left -= u64::from(batch);
                now += 1000 * SECOND;
                while !t.is_empty() {
                    t.expire(now, 1 << 16);
                }
            }
            total
        });
    });
    g.finish();
}

fn lookups(c: &mut Criterion) {
    for n in sizes() {
        let (mut t, ports, fill) = filled(n);
        let mem = t.memory_bytes();
        eprintln!(
            "nat table {:>4}: {:>6.1} MiB reserved = {:.1} B/flow at capacity (entry 32 B + 2 indexes); \
             filled in {:.3} s = {:.2} M new flows/s",
            label(n),
            mem as f64 / (1 << 20) as f64,
            mem as f64 / f64::from(n),
            fill.as_secs_f64(),
            f64::from(n) / fill.as_secs_f64() / 1e6,
        );
        let perm = permutation(n);
        let mut g = c.benchmark_group("nat_lookup");
        g.throughput(Throughput::Elements(1));
        let mut now = 2 * SECOND;
        let mut j = 0usize;
        g.bench_function(BenchmarkId::new("forward", label(n)), |b| {
            b.iter(|| {
                let i = perm[j];
                j += 1;
                if j == perm.len() {
                    j = 0;
                }
                now += 1;
                black_box(t.lookup_forward(&key(i), now, None))
            })
        });
        g.bench_function(BenchmarkId::new("reverse", label(n)), |b| {
            b.iter(|| {
                let i = perm[j];
                j += 1;
                if j == perm.len() {
                    j = 0;
                }
                now += 1;
                black_box(t.lookup_reverse(target(i), ports[i as usize], PROTO_UDP, now, None))
            })
        });
        g.bench_function(BenchmarkId::new("forward_miss", label(n)), |b| {
            b.iter(|| {
                let i = perm[j] + n; // never created
                j += 1;
                if j == perm.len() {
                    j = 0;
                }
                black_box(t.lookup_forward(&key(i), now, None))
            })
        });
        g.finish();
        let mut g = c.benchmark_group("nat_expire_sweep");
        g.throughput(Throughput::Elements(256));
        g.bench_function(BenchmarkId::new("256_live_slots", label(n)), |b| {
            b.iter_batched(|| (), |()| black_box(t.expire(now, 256)), BatchSize::SmallInput)
        });
        g.finish();
        assert_eq!(t.len(), n as usize, "a benchmark lost flows");
    }
}

criterion_group!(benches, create, lookups);
criterion_main!(benches);
