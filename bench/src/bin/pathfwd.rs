//! The PIAS packet path on one forwarding lcore between two DPDK ports:
//! the counterpart of `dpdk-testpmd --forward-mode=io` with the real
//! per-packet work of a proxy in the middle (issue 4, "Benchmarks").
//!
//! ```text
//! pathfwd --mode jap --flows 1024 --write-pcap jap.pcap            # traffic only, no EAL
//! pathfwd --mode jap --flows 1024 --seconds 5 -- -l 0,1 --no-huge -m 512 --no-pci \
//!     --vdev net_pcap0,rx_pcap=jap.pcap,infinite_rx=1 --vdev net_null0,no-rx=1
//! pathfwd --mode jap --flows 10000000 --source gen --tx-port 0 --seconds 5 -- \
//!     -l 0,1 --no-huge -m 512 --no-pci --vdev net_null0,no-rx=1
//! ```
//!
//! The proxy and its traffic are `pias_bench::scenario` (the golden tests'
//! topology; `--mode` picks the proxy and the frames). Before EAL starts,
//! the flows of `jap` and `reverse` are created by running each flow's first
//! packet through the JAP, so the measured traffic hits existing NAT
//! entries. The forwarding loop is piasd's worker loop (worker.rs) for one
//! worker and one port: per iteration the TSC clock, an rx burst of 32,
//! `Path::process_burst` on the burst's mbufs (`MbufPkt`, as in piasd;
//! `--per-packet`: `Path::process` per packet, the loop before bursts), the tx
//! burst, the path's events drained, and `NatTable::expire(now, 64)`. Not
//! included: piasd's per-iteration polls of its (empty) down queue, xmit
//! and handoff rings, and the push of events onto the control core's queue
//! (here they are counted and dropped).
//!
//! Sources:
//! - `--source pcap` (default): rx port `--rx-port`, e.g. net_pcap with
//!   `infinite_rx=1` replaying `--write-pcap`'s file (one packet per flow).
//!   net_pcap keeps the whole capture in mbufs of the rx pool, so this is
//!   for up to a few thousand flows.
//! - `--source gen`: no rx port; the lcore allocates 32 mbufs from the pool
//!   per iteration (`rte_pktmbuf_alloc_bulk`) and writes the next frames of
//!   the traffic into them from per-group templates: what net_pcap's
//!   infinite rx does (alloc_bulk + a copy per packet), with any number of
//!   flows and no per-flow storage (`reverse`: 4 bytes per flow). `jap-new`
//!   needs it (every packet a new flow).
//!
//! `--io`: the same source and tx port without the Path (io forwarding; the
//! baseline of `--source gen`).
//!
//! While it runs the main lcore samples the tx port's packet counter once a
//! second (as testpmd's `--stats-period 1` does) and the loop's count of new
//! flows; it prints the medians (first sample dropped), the drops by
//! reason, the NAT table's flows and memory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use pias_bench::scenario::{self, Config, Mode, Scenario, Traffic};
use pias_dataplane::nat::{NatCounters, SECOND};
use pias_dataplane::pipeline::{Action, Path, PathStats};
use pias_dataplane::reason::{DropCounts, DropReason};
use pias_dpdk::{tsc, tsc_hz, Burst32, Eal, Mempool, Port, PortConf, RxQueue, TxQueue};

#[derive(Parser, Debug)]
#[command(about = "Run the PIAS packet path between two DPDK ports and report Mpps")]
struct Args {
    /// iap-miss, iap-cached, rap, jap, jap-new or reverse.
    #[arg(long, value_parser = parse_mode)]
    mode: Mode,
    /// Distinct flows in the traffic.
    #[arg(long, default_value_t = 1024)]
    flows: u64,
    /// Groups (half TCP, half UDP).
    #[arg(long, default_value_t = 256)]
    groups: u32,
    /// Live targets per group at the JAP.
    #[arg(long, default_value_t = 4)]
    targets_per_group: u32,
    /// NAT table capacity (0: the flows, at least 1024; 8 Mi for jap-new).
    #[arg(long, default_value_t = 0)]
    nat_capacity: usize,
    /// Every NAT idle timeout, in ms (default: the RFC timeouts; jap-new:
    /// 1000, so creations and expiries balance within the run).
    #[arg(long)]
    nat_idle_ms: Option<u64>,
    /// pcap: receive from --rx-port; gen: write frames into fresh mbufs.
    #[arg(long, default_value = "pcap", value_parser = ["pcap", "gen"])]
    source: String,
    /// Forward without the Path (io baseline of the same source).
    #[arg(long)]
    io: bool,
    /// `Path::process` per packet instead of `Path::process_burst` (the
    /// loop before bursts, to compare).
    #[arg(long)]
    per_packet: bool,
    /// Back allocations of 2 MiB or more (the NAT table) with transparent
    /// huge pages (madvise), to measure what 4 KiB pages cost.
    #[arg(long)]
    thp: bool,
    /// Write one cycle of the traffic (jap-new: --flows new flows) to this
    /// pcap and exit (no EAL).
    #[arg(long)]
    write_pcap: Option<PathBuf>,
    /// How long to forward.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Port to receive on (--source pcap).
    #[arg(long, default_value_t = 0)]
    rx_port: u16,
    /// Port to send on.
    #[arg(long, default_value_t = 1)]
    tx_port: u16,
    /// Mbufs in the pool.
    #[arg(long, default_value_t = 16383)]
    mbufs: u32,
    /// Rx/tx descriptors per queue.
    #[arg(long, default_value_t = 1024)]
    desc: u16,
    /// EAL arguments (after `--`).
    #[arg(last = true)]
    eal: Vec<String>,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::from_name(s).ok_or_else(|| format!("unknown mode {s:?}: one of iap-miss, iap-cached, rap, jap, jap-new, reverse"))
}

// The mbuf wrapper and the TSC clock are piasd's own (piasd::worker).
use piasd::worker::{Clock, MbufPkt, Pkt};


/// NAT entries examined for expiry per iteration (piasd's EXPIRE_BUDGET).
const EXPIRE_BUDGET: usize = 64;

enum Source {
    Rx(RxQueue),
    Gen(Mempool, Traffic),
}

/// What the loop hands back.
struct Outcome {
    path: Path,
    drops: DropCounts,
    rx: u64,
    tx: u64,
    tx_full: u64,
    punts: u64,
    handoffs: u64,
    events: u64,
    loops: u64,
    cycles: u64,
    no_mbuf: u64,
}

/// Published by the loop every 64 iterations for the main lcore's samples.
#[derive(Default)]
struct Live {
    new_flows: AtomicU64,
}

#[inline]
fn flush(tx: &mut TxQueue, b: &mut Burst32, sent: &mut u64, full: &mut u64) {
    if b.is_empty() {
        return;
    }
    *sent += tx.burst(b) as u64;
    if !b.is_empty() {
        *full += b.len() as u64;
        b.clear();
    }
}

fn forward(mut src: Source, mut tx: TxQueue, mut path: Path, io: bool, per_packet: bool, stop: &AtomicBool, live: &Live) -> Outcome {
    let clock = Clock::new();
    let mut rx = Burst32::new();
    let mut out = Burst32::new();
    let mut drops = DropCounts::default();
    let mut actions = [Action::Hold; 32];
    let (mut nrx, mut ntx, mut tx_full, mut punts, mut handoffs, mut events, mut loops, mut no_mbuf) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let start = tsc();
    loop {
        let now = clock.now();
        let n = match &mut src {
            Source::Rx(q) => q.burst(&mut rx),
            Source::Gen(pool, traffic) => {
                if pool.alloc_bulk(&mut rx, 32) {
                    let len = traffic.frame_len();
                    for m in rx.iter_mut() {
                        match m.append(len) {
                            Ok(d) => traffic.next_into(d),
                            Err(_) => unreachable!("a fresh mbuf has room for {len} bytes"),
                        }
                    }
                    32
                } else {
                    no_mbuf += 1;
                    0
                }
            }
        };
        nrx += n as u64;
        if io {
            flush(&mut tx, &mut rx, &mut ntx, &mut tx_full);
        } else if n != 0 {
            rx.retain_mut(|m| {
                if !m.is_contiguous() {
                    drops.bump(DropReason::MultiSegment);
                    return false;
                }
                true
            });
            // As piasd's worker: the burst through process_burst; packets
            // after an early stop (a held fragment; none here) one by one.
            let k = if per_packet { 0 } else { path.process_burst(MbufPkt::slice(rx.as_mut_slice()), 0, now, &mut actions) };
            for (i, mut m) in rx.drain().enumerate() {
                let a = match actions.get(i) {
                    Some(&a) if i < k => a,
                    _ => path.process(&mut Pkt(&mut m), 0, now),
                };
                match a {
                    Action::Tx(_) => {
                        if out.is_full() {
                            flush(&mut tx, &mut out, &mut ntx, &mut tx_full);
                        }
                        if out.push(m).is_err() {
                            drops.bump(DropReason::TxFull);
                        }
                    }
                    Action::Drop(r) => drops.bump(r),
                    Action::Punt(_) => punts += 1,
                    Action::Handoff(_) => handoffs += 1,
                    // Newer actions (none occur with this traffic).
                    #[allow(unreachable_patterns)]
                    _ => handoffs += 1,
                }
            }
            flush(&mut tx, &mut out, &mut ntx, &mut tx_full);
            events += path.events.drain().count() as u64;
        }
        if !io {
            path.nat.expire(now, EXPIRE_BUDGET);
        }
        loops += 1;
        if loops % 64 == 0 {
            live.new_flows.store(path.stats.jap_new_flows, Ordering::Relaxed);
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
    }
    let cycles = tsc() - start;
    Outcome { path, drops, rx: nrx, tx: ntx, tx_full, punts, handoffs, events, loops, cycles, no_mbuf }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn config(args: &Args) -> Config {
    let mut cfg = Config::new(args.mode, args.flows);
    cfg.groups = args.groups;
    cfg.targets_per_group = args.targets_per_group;
    cfg.nat_capacity = args.nat_capacity;
    cfg.nat_idle = match (args.nat_idle_ms, args.mode) {
        (Some(ms), _) => Some(ms * 1_000_000),
        (None, Mode::JapNew) => Some(SECOND),
        (None, _) => None,
    };
    cfg
}

#[global_allocator]
static ALLOC: pias_bench::thp::ThpAlloc = pias_bench::thp::ThpAlloc;

fn run(args: Args) -> Result<(), String> {
    if args.thp {
        pias_bench::thp::enable();
    }
    let cfg = config(&args);
    let t0 = Instant::now();
    let Scenario { path, traffic } = Scenario::build(&cfg);
    eprintln!(
        "pathfwd: mode {} flows {} groups {} targets/group {}: set up in {:.2} s (NAT {} flows, {} bytes reserved)",
        cfg.mode,
        if cfg.mode == Mode::JapNew { "new per packet".to_string() } else { cfg.flows.to_string() },
        cfg.groups,
        cfg.targets_per_group,
        t0.elapsed().as_secs_f64(),
        path.nat.len(),
        path.nat.memory_bytes()
    );
    if let Some(file) = &args.write_pcap {
        let frames = traffic.frames(args.flows);
        scenario::write_pcap(file, &frames).map_err(|e| format!("{}: {e}", file.display()))?;
        println!("wrote {} frames of {} bytes to {}", frames.len(), traffic.frame_len(), file.display());
        return Ok(());
    }
    let created_before = path.nat.counters().created;
    let gen = args.source == "gen";

    let eal = Eal::init(&args.eal).map_err(|e| e.to_string())?;
    let pool = Mempool::pktmbuf("pathfwd_pool", args.mbufs, 256, pias_dpdk::DEFAULT_BUF_SIZE, -1).map_err(|e| e.to_string())?;
    let conf = PortConf { rx_queues: 1, tx_queues: 1, rx_desc: args.desc, tx_desc: args.desc, rss: false, mtu: None };
    let tx_port = Port::from_id(args.tx_port).map_err(|e| e.to_string())?;
    let mut ports = vec![tx_port];
    let rx_port = if gen {
        None
    } else {
        let p = Port::from_id(args.rx_port).map_err(|e| e.to_string())?;
        if p.id() != tx_port.id() {
            ports.insert(0, p);
        }
        Some(p)
    };
    for p in &ports {
        let setup = p.configure(&conf, &pool).map_err(|e| e.to_string())?;
        p.start().map_err(|e| e.to_string())?;
        eprintln!("pathfwd: port {} ({}) {:?}", p.id(), p.name(), setup);
    }
    let src = match rx_port {
        Some(p) => Source::Rx(p.rx_queue(0).map_err(|e| e.to_string())?),
        None => Source::Gen(pool.clone(), traffic),
    };
    let tx = tx_port.tx_queue(0).map_err(|e| e.to_string())?;

    let stop = Arc::new(AtomicBool::new(false));
    let live = Arc::new(Live::default());
    let result: Arc<Mutex<Option<Outcome>>> = Arc::new(Mutex::new(None));
    let hz = tsc_hz() as f64;
    let base = tx_port.stats().map_err(|e| e.to_string())?;
    let base_rx = rx_port.map(|p| p.stats()).transpose().map_err(|e| e.to_string())?;
    let lcore = *eal.worker_lcores().first().ok_or("pathfwd needs a worker lcore (-l 0,1)")?;
    {
        let (s, l, r) = (stop.clone(), live.clone(), result.clone());
        let (io, per_packet) = (args.io, args.per_packet);
        eal.launch(lcore, move || {
            let o = forward(src, tx, path, io, per_packet, &s, &l);
            *r.lock().expect("result lock") = Some(o);
            0
        })
        .map_err(|e| e.to_string())?;
    }
    eprintln!("pathfwd: forwarding on lcore {lcore} for {} s{}", args.seconds, if args.io { " (io, no Path)" } else { "" });
    let end = Instant::now() + Duration::from_secs(args.seconds);
    let (mut prev_pkts, mut prev_new, mut prev_tsc) = (base.opackets, 0u64, tsc());
    let (mut samples, mut new_samples) = (Vec::new(), Vec::new());
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(1).min(end.saturating_duration_since(Instant::now())));
        let now = tsc();
        let st = tx_port.stats().map_err(|e| e.to_string())?;
        let nf = live.new_flows.load(Ordering::Relaxed);
        let secs = (now - prev_tsc) as f64 / hz;
        if secs > 0.5 {
            let pps = (st.opackets - prev_pkts) as f64 / secs;
            let nps = (nf - prev_new) as f64 / secs;
            println!("sample tx_pps={pps:.0} new_flows_per_s={nps:.0}");
            samples.push(pps / 1e6);
            new_samples.push(nps / 1e6);
        }
        prev_pkts = st.opackets;
        prev_new = nf;
        prev_tsc = now;
    }
    stop.store(true, Ordering::Relaxed);
    let rc = eal.wait(lcore);
    if rc != 0 {
        return Err(format!("forwarding lcore returned {rc}"));
    }
    let o = result.lock().expect("result lock").take().ok_or("no result from the lcore")?;

    let st_tx = tx_port.stats().map_err(|e| e.to_string())?;
    if let (Some(p), Some(b)) = (rx_port, base_rx) {
        let s = p.stats().map_err(|e| e.to_string())?;
        println!("port {} rx: ipackets={} imissed={} rx_nombuf={}", p.id(), s.ipackets - b.ipackets, s.imissed - b.imissed, s.rx_nombuf - b.rx_nombuf);
    }
    println!("port {} tx: opackets={} oerrors={}", tx_port.id(), st_tx.opackets - base.opackets, st_tx.oerrors - base.oerrors);
    let secs = o.cycles as f64 / hz;
    println!(
        "loop: rx={} tx={} tx_full={} punts={} handoffs={} events={} loops={} no_mbuf={} seconds={secs:.3} pkts_per_loop={:.1}",
        o.rx,
        o.tx,
        o.tx_full,
        o.punts,
        o.handoffs,
        o.events,
        o.loops,
        o.no_mbuf,
        o.rx as f64 / o.loops.max(1) as f64
    );
    let mut drops: Vec<String> = DropReason::ALL.iter().filter(|r| o.drops.get(**r) > 0).map(|r| format!("{}={}", r.label(), o.drops.get(*r))).collect();
    if drops.is_empty() {
        drops.push("none".into());
    }
    println!("drops: total={} {}", o.drops.total(), drops.join(" "));
    let s: &PathStats = &o.path.stats;
    let names = PathStats::NAMES.iter().zip(s.values()).filter(|(_, v)| *v > 0).map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>();
    println!("path: {}", if names.is_empty() { "-".to_string() } else { names.join(" ") });
    let nc: NatCounters = *o.path.nat.counters();
    let created = nc.created - created_before;
    let mem = o.path.nat.memory_bytes();
    println!(
        "nat: flows={} capacity={} memory_bytes={} ({:.1} MiB, {:.1} B/flow at capacity) created_in_run={} expired={} refused_full={} refused_ports={}",
        o.path.nat.len(),
        o.path.nat.capacity(),
        mem,
        mem as f64 / (1 << 20) as f64,
        mem as f64 / o.path.nat.capacity() as f64,
        created,
        nc.expired,
        nc.refused_full,
        nc.refused_ports
    );
    let steady = if samples.len() > 1 { &mut samples[1..] } else { &mut samples[..] };
    let med = median(steady);
    let steady_new = if new_samples.len() > 1 { &mut new_samples[1..] } else { &mut new_samples[..] };
    let med_new = median(steady_new);
    println!(
        "pathfwd-result: mode={} io={} thp={} source={} flows={} rx_mpps={:.3} tx_mpps={:.3} median_sample_tx_mpps={med:.3} new_flows_mps={:.3} median_sample_new_flows_mps={med_new:.3} nat_flows={} nat_memory_bytes={mem}",
        args.mode,
        args.io,
        args.thp,
        args.source,
        if args.mode == Mode::JapNew { 0 } else { args.flows },
        o.rx as f64 / secs / 1e6,
        o.tx as f64 / secs / 1e6,
        created as f64 / secs / 1e6,
        o.path.nat.len()
    );

    drop(o);
    for p in &ports {
        p.stop().map_err(|e| e.to_string())?;
    }
    for p in &ports {
        p.close().map_err(|e| e.to_string())?;
    }
    drop(pool);
    drop(eal);
    Ok(())
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("pathfwd: {e}");
        std::process::exit(1);
    }
}
