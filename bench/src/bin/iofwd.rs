//! io-forward benchmark: receive bursts of 32 on one port, send them out of
//! another, on one lcore, with the pias-dpdk safe layer. The counterpart of
//! `dpdk-testpmd --forward-mode=io`, to measure what the bindings cost.
//!
//! ```text
//! iofwd --seconds 10 -- -l 0,1 --no-huge -m 512 --no-pci \
//!     --vdev net_pcap0,rx_pcap=udp60.pcap,infinite_rx=1 --vdev net_null0,no-rx=1
//! ```
//!
//! The forwarding loop runs on the first worker lcore (like testpmd's
//! forwarding core) or, with a single lcore, on the main one. While it runs,
//! the main lcore samples the tx port's counters once a second, exactly like
//! testpmd's `--stats-period 1` "Tx-pps", so the two figures compare.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use pias_dpdk::{tsc, tsc_hz, Burst32, Eal, Mempool, Port, PortConf, RxQueue, TxQueue};

#[derive(Parser, Debug)]
#[command(about = "Forward bursts from one DPDK port to another and report Mpps")]
struct Args {
    /// How long to forward.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Port to receive on.
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

#[derive(Default)]
struct Counts {
    rx: AtomicU64,
    tx: AtomicU64,
    dropped: AtomicU64,
    cycles: AtomicU64,
}

fn forward(mut rx: RxQueue, mut tx: TxQueue, stop: &AtomicBool, deadline_tsc: Option<u64>, out: &Counts) {
    let mut b = Burst32::new();
    let (mut nrx, mut ntx, mut ndrop) = (0u64, 0u64, 0u64);
    let start = tsc();
    let mut polls = 0u32;
    loop {
        let n = rx.burst(&mut b);
        if n != 0 {
            nrx += n as u64;
            ntx += tx.burst(&mut b) as u64;
            if !b.is_empty() {
                ndrop += b.len() as u64;
                b.clear();
            }
        }
        polls = polls.wrapping_add(1);
        if polls % 64 == 0 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if let Some(d) = deadline_tsc {
                if tsc() >= d {
                    break;
                }
            }
        }
    }
    out.cycles.store(tsc() - start, Ordering::Relaxed);
    out.rx.store(nrx, Ordering::Relaxed);
    out.tx.store(ntx, Ordering::Relaxed);
    out.dropped.store(ndrop, Ordering::Relaxed);
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

fn run(args: Args) -> Result<(), String> {
    let eal = Eal::init(&args.eal).map_err(|e| e.to_string())?;
    let rx_port = Port::from_id(args.rx_port).map_err(|e| e.to_string())?;
    let tx_port = Port::from_id(args.tx_port).map_err(|e| e.to_string())?;
    let pool = Mempool::pktmbuf("iofwd_pool", args.mbufs, 256, pias_dpdk::DEFAULT_BUF_SIZE, -1)
        .map_err(|e| e.to_string())?;
    let conf = PortConf {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: args.desc,
        tx_desc: args.desc,
        rss: false,
        mtu: None,
    };
    let mut ports = vec![rx_port];
    if tx_port != rx_port {
        ports.push(tx_port);
    }
    for p in &ports {
        let setup = p.configure(&conf, &pool).map_err(|e| e.to_string())?;
        p.start().map_err(|e| e.to_string())?;
        eprintln!("iofwd: port {} ({}) {:?}", p.id(), p.name(), setup);
    }
    let rx = rx_port.rx_queue(0).map_err(|e| e.to_string())?;
    let tx = tx_port.tx_queue(0).map_err(|e| e.to_string())?;

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let hz = tsc_hz() as f64;
    let base = tx_port.stats().map_err(|e| e.to_string())?;
    let base_rx = rx_port.stats().map_err(|e| e.to_string())?;
    let mut samples = Vec::new();

    let worker = eal.worker_lcores().first().copied();
    match worker {
        Some(lcore) => {
            let (s, c) = (stop.clone(), counts.clone());
            eal.launch(lcore, move || {
                forward(rx, tx, &s, None, &c);
                0
            })
            .map_err(|e| e.to_string())?;
            eprintln!("iofwd: forwarding {} -> {} on lcore {lcore} for {} s", rx_port.id(), tx_port.id(), args.seconds);
            // Once a second, the tx port's packet rate (as testpmd's
            // --stats-period does).
            let end = Instant::now() + Duration::from_secs(args.seconds);
            let (mut prev_pkts, mut prev_tsc) = (base.opackets, tsc());
            while Instant::now() < end {
                std::thread::sleep(Duration::from_secs(1).min(end.saturating_duration_since(Instant::now())));
                let now = tsc();
                let st = tx_port.stats().map_err(|e| e.to_string())?;
                let secs = (now - prev_tsc) as f64 / hz;
                if secs > 0.5 {
                    let pps = (st.opackets - prev_pkts) as f64 / secs;
                    println!("sample tx_pps={pps:.0}");
                    samples.push(pps / 1e6);
                }
                prev_pkts = st.opackets;
                prev_tsc = now;
            }
            stop.store(true, Ordering::Relaxed);
            eal.wait(lcore);
        }
        None => {
            eprintln!("iofwd: no worker lcore; forwarding on the main lcore");
            let deadline = tsc() + args.seconds * tsc_hz();
            forward(rx, tx, &stop, Some(deadline), &counts);
        }
    }

    let st_tx = tx_port.stats().map_err(|e| e.to_string())?;
    let st_rx = rx_port.stats().map_err(|e| e.to_string())?;
    let secs = counts.cycles.load(Ordering::Relaxed) as f64 / hz;
    let (nrx, ntx, ndrop) = (
        counts.rx.load(Ordering::Relaxed),
        counts.tx.load(Ordering::Relaxed),
        counts.dropped.load(Ordering::Relaxed),
    );
    println!(
        "port {} rx: ipackets={} imissed={} rx_nombuf={}",
        rx_port.id(),
        st_rx.ipackets - base_rx.ipackets,
        st_rx.imissed - base_rx.imissed,
        st_rx.rx_nombuf - base_rx.rx_nombuf
    );
    println!(
        "port {} tx: opackets={} oerrors={}",
        tx_port.id(),
        st_tx.opackets - base.opackets,
        st_tx.oerrors - base.oerrors
    );
    println!("loop: rx={nrx} tx={ntx} dropped={ndrop} seconds={secs:.3}");
    // Steady state: drop the first sample (it includes the ramp-up).
    let steady = if samples.len() > 1 { &mut samples[1..] } else { &mut samples[..] };
    let med = median(steady);
    println!(
        "iofwd-result: rx_mpps={:.3} tx_mpps={:.3} median_sample_tx_mpps={med:.3}",
        nrx as f64 / secs / 1e6,
        ntx as f64 / secs / 1e6
    );

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
        eprintln!("iofwd: {e}");
        std::process::exit(1);
    }
}
