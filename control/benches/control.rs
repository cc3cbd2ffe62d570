//! Control-plane throughput on one core (issue 5 "Benchmarks"): joins
//! (first joins, signed, and refreshes under a session, MAC'd), reports
//! and floods as received datagrams through the whole receive
//! path of one proxy ([`ProxyControl::handle_datagram`]: frame, gate,
//! machine, and the replies written with `poll_transmit`), plus the
//! signature check alone, and the simulator.
//!
//! `cargo bench -p pias-control --bench control`
//!
//! Every datagram is used once (replay protection would refuse a second
//! use): the benches pre-build a pool, run a fresh proxy over it, and time
//! only the receive path (`iter_custom`).
//!
//! The time reported for the datagram benches is the bench thread's time
//! **on CPU** ([`CpuClock`], `CLOCK_THREAD_CPUTIME_ID`), not wall time: the
//! development VM has 2 cores shared with other builds, and a thread that
//! waits for a core would otherwise count the wait.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::sync::OnceLock;
use std::time::{Duration, Instant as WallInstant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ed25519_dalek::SigningKey;
use pias_control::auth::{
    sign_target_request, EphemeralSecret, Gate, GateConfig, KeyRing, Sealer, TargetSession,
};
use pias_control::groups::GroupRegistry;
use pias_control::jap::{Jap, JapConfig};
use pias_control::membership;
use pias_control::proxy::{ProxyConfig, ProxyControl};
use pias_control::sim::{Sim, SimConfig};
use pias_control::view::View;
use pias_control::wire::{
    Flood, GroupRegister, KeyId, Lsa, Message, ProxyState, Report, ReportEntry, TargetRequest,
    DEFAULT_CONTROL_PORT, MAX_DATAGRAM, MAX_FLOOD_ENTRIES, MAX_REPORT_ENTRIES,
};
use pias_control::{Instant, UnixTime};
use pias_dataplane::types::{
    ClusterId, GroupAddr, GroupOptions, GroupProto, Ipv4Prefix, ProxyId, TargetAddr,
};

const SECRET: [u8; 32] = [0x42; 32];
const WALL: UnixTime = UnixTime(1_700_000_000);
const GROUPS: usize = 64;
/// Joins per pool: 64 groups × 1 000 targets (under the per-group cap).
const JOIN_POOL: usize = GROUPS * 1000;

fn group(i: usize) -> GroupAddr {
    GroupAddr::Port {
        ip: Ipv4Addr::new(198, 51, 100, 1 + (i % 250) as u8),
        port: 1000 + (i / 250) as u16,
        proto: GroupProto::Udp,
    }
}

fn owner() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn keys() -> KeyRing {
    KeyRing::new(KeyId(1), &SECRET).expect("key")
}

fn proxy(now: Instant) -> ProxyControl {
    let mut m = membership::Config::new(ProxyId(1), Ipv4Addr::new(10, 0, 0, 1), ClusterId(0), 1);
    // Acks and relays written within the timed call, not batched later.
    m.flood_delay = Duration::ZERO;
    let anycast: Ipv4Prefix = "198.51.100.0/24".parse().expect("prefix");
    let mut cfg = ProxyConfig::new(m, vec![anycast]);
    cfg.gate.nonce_cache_cap = JOIN_POOL + 1;
    let mut cp = ProxyControl::new(cfg, keys(), now).expect("proxy");
    for i in 0..GROUPS {
        cp.apply_registration(
            now,
            &GroupRegister {
                group: group(i),
                options: GroupOptions::default(),
                withdrawn: false,
                serial: 1,
                owner_key: owner().verifying_key().to_bytes(),
            },
        );
    }
    drain(&mut cp);
    cp
}

fn drain(cp: &mut ProxyControl) {
    let mut buf = [0u8; MAX_DATAGRAM];
    while cp.poll_transmit(&mut buf).is_some() {}
    while cp.poll_update().is_some() {}
    while cp.poll_probe().is_some() {}
}

/// The ephemeral X25519 key of join `k` of the pool (deterministic, so
/// the session set-up can derive the keys its acks grant).
fn ephemeral(k: usize) -> EphemeralSecret {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&(k as u64 + 1).to_be_bytes());
    EphemeralSecret::from_bytes(b)
}

/// Signed joins: (source, datagram), distinct targets and nonces.
fn joins() -> &'static Vec<(SocketAddrV4, Vec<u8>)> {
    static POOL: OnceLock<Vec<(SocketAddrV4, Vec<u8>)>> = OnceLock::new();
    POOL.get_or_init(|| {
        let key = owner();
        (0..JOIN_POOL)
            .map(|k| {
                let target = TargetAddr {
                    ip: Ipv4Addr::from_bits(0xac10_0000 + k as u32),
                    port: 53,
                };
                let req = TargetRequest {
                    group: group(k % GROUPS),
                    target,
                    options: GroupOptions::default(),
                    lifetime_s: 60,
                    timestamp: WALL,
                    nonce: k as u64 + 1,
                    share: Some(ephemeral(k).share()),
                };
                let mut buf = [0u8; MAX_DATAGRAM];
                let n = sign_target_request(&key, &Message::Join(req), &mut buf).expect("sign");
                (SocketAddrV4::new(target.ip, 40_000), buf[..n].to_vec())
            })
            .collect()
    })
}

fn sealed(sender: u32, seq_from: &mut Sealer, msg: &Message) -> (SocketAddrV4, Vec<u8>) {
    let src = SocketAddrV4::new(
        Ipv4Addr::from_bits(0x0a00_0000 + sender),
        DEFAULT_CONTROL_PORT,
    );
    let mut buf = [0u8; MAX_DATAGRAM];
    let n = seq_from.seal(&keys(), msg, src, &mut buf).expect("seal");
    (src, buf[..n].to_vec())
}

/// Reports of 64 groups each from 256 JAPs, every count changing.
fn reports() -> &'static Vec<(SocketAddrV4, Vec<u8>)> {
    static POOL: OnceLock<Vec<(SocketAddrV4, Vec<u8>)>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut sealers: Vec<Sealer> = (0..256u32)
            .map(|j| Sealer::new(ProxyId(100 + j), 1))
            .collect();
        (0..20_000usize)
            .map(|k| {
                let j = k % 256;
                let round = (k / 256) as u32;
                let entries = (0..MAX_REPORT_ENTRIES)
                    .map(|g| ReportEntry {
                        group: group(g % GROUPS),
                        approx_targets: 1 + (round + g as u32) % 50,
                        overloaded: false,
                        seq: round + 1,
                    })
                    .collect();
                let msg = Message::Report(Report {
                    jap: ProxyId(100 + j as u32),
                    entries,
                });
                sealed(100 + j as u32, &mut sealers[j], &msg)
            })
            .collect()
    })
}

/// Floods of 48 new statements each from one neighbour.
fn floods() -> &'static Vec<(SocketAddrV4, Vec<u8>)> {
    static POOL: OnceLock<Vec<(SocketAddrV4, Vec<u8>)>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut s = Sealer::new(ProxyId(2), 1);
        (0..4_000usize)
            .map(|k| {
                let entries = (0..MAX_FLOOD_ENTRIES)
                    .map(|e| {
                        let n = k * MAX_FLOOD_ENTRIES + e;
                        let subject = 10 + (n % 15_000) as u32;
                        Lsa {
                            subject: ProxyId(subject),
                            origin: ProxyId(subject),
                            addr: Ipv4Addr::from_bits(0x0b00_0000 + subject),
                            cluster: ClusterId((subject % 500) as u16),
                            state: ProxyState::Up,
                            incarnation: 1,
                            version: 1 + (n / 15_000) as u32,
                        }
                    })
                    .collect();
                sealed(2, &mut s, &Message::Flood(Flood { entries }))
            })
            .collect()
    })
}

/// Time on CPU of the calling thread (see the module docs).
#[derive(Clone, Copy)]
struct CpuClock(Duration);

impl CpuClock {
    #[allow(unsafe_code)]
    fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec through a pointer to a
        // live, exclusively borrowed local; CLOCK_THREAD_CPUTIME_ID is
        // always supported on Linux.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
        CpuClock(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    fn elapsed(self) -> Duration {
        Self::now().0.saturating_sub(self.0)
    }
}

/// Run `iters` datagrams of `pool` through fresh proxies; time only the
/// receive path and the draining of its output.
fn run_pool(pool: &[(SocketAddrV4, Vec<u8>)], iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters as usize;
    let mut now = Instant::from_nanos(1);
    while left > 0 {
        let mut cp = proxy(now);
        let n = left.min(pool.len());
        let start = CpuClock::now();
        for (src, bytes) in &pool[..n] {
            now += Duration::from_micros(1);
            cp.handle_datagram(now, WALL, *src, bytes);
            drain(&mut cp);
        }
        total += start.elapsed();
        left -= n;
    }
    total
}

fn bench_joins(c: &mut Criterion) {
    let pool = joins();
    let mut g = c.benchmark_group("joins");
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify_and_apply", |b| {
        b.iter_custom(|iters| run_pool(pool, iters))
    });
    // Refreshes under the sessions the join acks granted (PROTOCOL.md
    // §5.6): a MAC instead of a signature. One proxy holds every target of
    // the pool (joined untimed); each round refreshes every target once
    // with the next counter, sealed untimed.
    let mut now = Instant::from_nanos(1);
    let mut cp = proxy(now);
    let mut grants = Vec::with_capacity(pool.len());
    let mut buf = [0u8; MAX_DATAGRAM];
    for (k, (src, bytes)) in pool.iter().enumerate() {
        now += Duration::from_micros(1);
        cp.handle_datagram(now, WALL, *src, bytes);
        while let Some(t) = cp.poll_transmit(&mut buf) {
            if let Ok((_, Message::JoinAck(a))) =
                pias_control::wire::decode_unauthenticated(&buf[..t.len])
            {
                if let Some(Ok(sess)) = TargetSession::accept(ephemeral(k), &a) {
                    grants.push((*src, a.group, a.target, sess));
                }
            }
        }
        drain(&mut cp);
    }
    assert_eq!(grants.len(), pool.len(), "every join granted a session");
    let mut counter = 0u64;
    let mut round: Vec<(SocketAddrV4, Vec<u8>)> = Vec::new();
    let mut next = 0usize;
    // (criterion calls this closure once per sample: the joins above are
    // set up once, outside it.)
    g.bench_function("session_refresh", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                if next == round.len() {
                    counter += 1;
                    round = grants
                        .iter_mut()
                        .map(|(src, group, target, sess)| {
                            let n = sess
                                .seal_next(*group, *target, counter, 60, &mut buf)
                                .expect("seal");
                            (*src, buf[..n].to_vec())
                        })
                        .collect();
                    next = 0;
                }
                let n = left.min(round.len() - next);
                let start = CpuClock::now();
                for (src, bytes) in &round[next..next + n] {
                    now += Duration::from_micros(1);
                    cp.handle_datagram(now, WALL, *src, bytes);
                    drain(&mut cp);
                }
                total += start.elapsed();
                next += n;
                left -= n;
            }
            total
        })
    });
    // The signature check alone: the gate of a proxy, nothing after.
    g.bench_function("gate_only", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let mut reg = GroupRegistry::default();
                for i in 0..GROUPS {
                    let _ = reg.apply(&GroupRegister {
                        group: group(i),
                        options: GroupOptions::default(),
                        withdrawn: false,
                        serial: 1,
                        owner_key: owner().verifying_key().to_bytes(),
                    });
                }
                let mut gate = Gate::new(
                    GateConfig {
                        nonce_cache_cap: JOIN_POOL + 1,
                        ..GateConfig::default()
                    },
                    keys(),
                );
                let n = left.min(pool.len());
                let start = CpuClock::now();
                for (src, bytes) in &pool[..n] {
                    let _ = gate.open(WALL, *src, bytes, &reg);
                }
                total += start.elapsed();
                left -= n;
            }
            total
        })
    });
    // What the JAP does once the gate has passed a join: no signature.
    g.bench_function("apply_only", |b| {
        let msgs: Vec<(SocketAddrV4, Message)> = pool
            .iter()
            .map(|(src, bytes)| {
                (
                    *src,
                    pias_control::wire::decode_unauthenticated(bytes)
                        .expect("join")
                        .1,
                )
            })
            .collect();
        let view = BenchView::new();
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let mut jap = Jap::new(JapConfig::default());
                let n = left.min(msgs.len());
                let start = CpuClock::now();
                for (src, m) in &msgs[..n] {
                    jap.handle_request(Instant::ZERO, UnixTime(0), &view, *src, m);
                    while jap.poll_transmit().is_some() {}
                }
                total += start.elapsed();
                left -= n;
            }
            total
        })
    });
    g.finish();
}

/// The fixed view the JAP reads in `joins/apply_only`: every bench group
/// registered, three RAPs each.
struct BenchView {
    tables: pias_dataplane::tables::Tables,
    raps: Vec<ProxyId>,
}

impl BenchView {
    fn new() -> Self {
        BenchView {
            tables: pias_dataplane::tables::Tables::default(),
            raps: vec![ProxyId(2), ProxyId(3), ProxyId(4)],
        }
    }
}

impl View for BenchView {
    fn me(&self) -> ProxyId {
        ProxyId(1)
    }
    fn options(&self, _: &GroupAddr) -> Option<GroupOptions> {
        Some(GroupOptions::default())
    }
    fn raps(&self, _: &GroupAddr) -> &[ProxyId] {
        &self.raps
    }
    fn target_allowed(&self, g: &GroupAddr, t: &TargetAddr) -> bool {
        pias_control::view::target_allowed(g, t, &[], |_| false)
    }
    fn peers(&self) -> &[ProxyId] {
        &self.raps
    }
    fn tables(&self) -> &pias_dataplane::tables::Tables {
        &self.tables
    }
    fn proxy(&self, _: ProxyId) -> Option<pias_dataplane::types::ProxyInfo> {
        None
    }
    fn proxy_by_addr(&self, _: Ipv4Addr) -> Option<pias_dataplane::types::ProxyInfo> {
        None
    }
}

fn bench_reports(c: &mut Criterion) {
    let pool = reports();
    let mut g = c.benchmark_group("reports");
    g.throughput(Throughput::Elements(MAX_REPORT_ENTRIES as u64));
    g.bench_function("64_entries_per_datagram", |b| {
        b.iter_custom(|iters| run_pool(pool, iters))
    });
    g.finish();
}

fn bench_floods(c: &mut Criterion) {
    let pool = floods();
    let mut g = c.benchmark_group("floods");
    g.throughput(Throughput::Elements(MAX_FLOOD_ENTRIES as u64));
    g.bench_function("48_statements_per_datagram", |b| {
        b.iter_custom(|iters| run_pool(pool, iters))
    });
    g.finish();
}

fn bench_sim(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim");
    g.sample_size(10);
    for proxies in [50usize, 200] {
        // Proxy-seconds simulated per iteration (after a 10 s warm-up that
        // is not timed: the membership start-up is a one-off).
        let secs = 10u64;
        g.throughput(Throughput::Elements(proxies as u64 * secs));
        g.bench_with_input(
            BenchmarkId::new("steady_state_proxy_seconds", proxies),
            &proxies,
            |b, &n| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let mut cfg = SimConfig::new(n, (n / 3).max(1), n / 10, 10);
                        cfg.churn_per_s = 1.0;
                        cfg.flows_per_s = 20.0;
                        let mut sim = Sim::new(cfg);
                        sim.run_until(Instant::ZERO + Duration::from_secs(10));
                        let start = WallInstant::now();
                        sim.run_until(Instant::ZERO + Duration::from_secs(10 + secs));
                        total += start.elapsed();
                    }
                    total
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench_joins, bench_reports, bench_floods, bench_sim);
criterion_main!(benches);
