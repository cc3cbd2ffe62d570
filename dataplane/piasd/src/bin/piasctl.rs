//! `piasctl`: the operator CLI. Talks to a running piasd over its unix
//! control socket.
//!
//! - `piasctl status` prints ports, links, workers, neighbours and drops
//!   (`--json` for the raw document);
//! - `piasctl stats --watch` prints one testpmd-style line per second with
//!   rates computed from successive status documents.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use piasd::ctl::{request_status, Status};

#[derive(Parser, Debug)]
#[command(name = "piasctl", version, about = "Operate a running piasd")]
struct Args {
    /// piasd's control socket.
    #[arg(long, short, default_value = "/run/piasd/piasd.sock")]
    socket: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Ports, link, workers, neighbours and counters.
    Status {
        /// Print the raw JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Packet and drop counters; with --watch, one line per second.
    Stats {
        /// Keep printing rates every second until interrupted.
        #[arg(long)]
        watch: bool,
        /// Stop after this many lines (with --watch).
        #[arg(long)]
        count: Option<u64>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let r = match args.cmd {
        Cmd::Status { json } => status(&args.socket, json),
        Cmd::Stats { watch, count } => stats(&args.socket, watch, count),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("piasctl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn status(sock: &Path, json: bool) -> Result<(), String> {
    let s = request_status(sock)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s).map_err(|e| e.to_string())?);
        return Ok(());
    }
    println!("piasd {}  up {:.0}s  config {}", s.version, s.uptime_s, s.config);
    println!("anycast: {}", s.anycast.join(", "));
    println!("mempool: {} / {} mbufs in use", s.mempool_in_use, s.mempool_size);
    println!();
    println!("{:<4} {:<24} {:<14} {:<17} {:<18} {:<6} {:>12} {:>12} {:>9} {:>9}", "port", "device", "driver", "mac", "address", "link", "rx", "tx", "missed", "errors");
    for p in &s.ports {
        println!(
            "{:<4} {:<24} {:<14} {:<17} {:<18} {:<6} {:>12} {:>12} {:>9} {:>9}{}",
            p.index,
            p.device,
            p.driver,
            p.mac,
            p.address,
            if p.link_up { "up" } else { "down" },
            p.ipackets,
            p.opackets,
            p.imissed,
            p.ierrors + p.oerrors,
            p.tap.as_ref().map(|t| format!("  tap {t}")).unwrap_or_default()
        );
    }
    println!();
    println!("{:<7} {:<6} {:>12} {:>12} {:>9} {:>9} {:>14}", "worker", "lcore", "rx", "tx", "punted", "echo", "loops");
    for w in &s.workers {
        println!(
            "{:<7} {:<6} {:>12} {:>12} {:>9} {:>9} {:>14}",
            w.index,
            w.lcore,
            w.rx.iter().sum::<u64>(),
            w.tx.iter().sum::<u64>(),
            w.punted,
            w.echo_replied,
            w.loops
        );
    }
    println!();
    println!("{:<7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9}", "worker", "iap-cache", "iap->rap", "rap->jap", "jap->tgt", "new-flows", "bounced", "reverse", "handoff", "nat-flows");
    for w in &s.workers {
        let g = |k: &str| w.path.get(k).copied().unwrap_or(0);
        println!(
            "{:<7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9}",
            w.index,
            g("iap_cached"),
            g("iap_to_rap"),
            g("rap_forwarded"),
            g("jap_forwarded"),
            g("jap_new_flows"),
            g("jap_bounced"),
            g("reverse"),
            w.handoff_out,
            w.nat_flows
        );
    }
    let c = &s.control;
    println!();
    println!(
        "control: arp replied {}  arp sent {}  arp learned {}  to kernel {}  from kernel {}",
        c.arp_replied, c.arp_requests_sent, c.arp_learned, c.to_kernel, c.from_kernel
    );
    println!(
        "events: iap misses {}  rap choices {}  jap without target {}  silent targets {}  control datagrams {}",
        c.iap_misses, c.rap_choices, c.jap_no_target, c.target_silent, c.control_datagrams
    );
    if let Some(p) = &c.plane {
        println!();
        println!("control plane: proxy {}  boot {}  accepted {}  rejected {}", p.me, p.incarnation, p.accepted, p.rejected.values().sum::<u64>());
        for x in &p.proxies {
            println!("  proxy {:<5} {:<15} cluster {:<5} {}", x.id, x.addr, x.cluster, if x.up { "up" } else { "down" });
        }
        println!("  groups: {}", if p.groups.is_empty() { "none".to_string() } else { p.groups.join(", ") });
        println!("  rap of: {}", if p.rap_of.is_empty() { "none".to_string() } else { p.rap_of.join(", ") });
        for (g, t) in &p.targets {
            println!("  targets of {g}: {}", t.join(", "));
        }
        for (g, l) in &p.rap_japs {
            println!("  rap view {g}: JAPs {}", l.iter().map(u32::to_string).collect::<Vec<_>>().join(", "));
        }
        for (g, l) in &p.iap_cache {
            println!("  iap cache {g}: JAPs {}", l.iter().map(u32::to_string).collect::<Vec<_>>().join(", "));
        }
        let nz: Vec<String> = p.counters.iter().filter(|(_, v)| **v > 0).map(|(k, v)| format!("{k} {v}")).collect();
        println!("  counters: {}", nz.join("  "));
        for (r, v) in &p.rejected {
            println!("  rejected {r:<22} {v}");
        }
        println!(
            "  driver: rx {}  malformed {}  tx {}  updates {}  probes {} answered {} timed out {}  unrouted {}  unresolved {}",
            p.driver.rx_datagrams,
            p.driver.rx_malformed,
            p.driver.tx_datagrams,
            p.driver.updates,
            p.driver.probes_sent,
            p.driver.probes_answered,
            p.driver.probes_timed_out,
            c.control_unrouted,
            c.control_unresolved
        );
    }
    println!("neighbours:");
    for n in &s.neighbours {
        println!("  port {} {:<15} {}", n.port, n.ip, n.mac);
    }
    println!("drops:");
    if s.drops.is_empty() {
        println!("  none");
    }
    for (r, v) in &s.drops {
        println!("  {r:<24} {v}");
    }
    Ok(())
}

fn totals(s: &Status) -> (u64, u64, u64, u64) {
    let rx = s.ports.iter().map(|p| p.ipackets).sum();
    let tx = s.ports.iter().map(|p| p.opackets).sum();
    let rxb = s.ports.iter().map(|p| p.ibytes).sum();
    let drops = s.drops.values().sum::<u64>() + s.ports.iter().map(|p| p.imissed).sum::<u64>();
    (rx, tx, rxb, drops)
}

fn stats(sock: &Path, watch: bool, count: Option<u64>) -> Result<(), String> {
    let mut prev = request_status(sock)?;
    let mut t0 = Instant::now();
    let (rx, tx, _, drops) = totals(&prev);
    println!("rx-packets: {rx}  tx-packets: {tx}  drops: {drops}");
    if !watch {
        return Ok(());
    }
    let mut n = 0u64;
    loop {
        if count.is_some_and(|c| n >= c) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
        let cur = request_status(sock)?;
        let dt = t0.elapsed().as_secs_f64().max(1e-3);
        t0 = Instant::now();
        let (rx0, tx0, rxb0, d0) = totals(&prev);
        let (rx1, tx1, rxb1, d1) = totals(&cur);
        println!(
            "Rx-pps: {:>12.0}  Tx-pps: {:>12.0}  Rx-Mbps: {:>9.1}  Drop-pps: {:>10.0}  Rx-total: {:>12}  Tx-total: {:>12}  Drops: {:>10}",
            rx1.saturating_sub(rx0) as f64 / dt,
            tx1.saturating_sub(tx0) as f64 / dt,
            rxb1.saturating_sub(rxb0) as f64 * 8.0 / dt / 1e6,
            d1.saturating_sub(d0) as f64 / dt,
            rx1,
            tx1,
            d1
        );
        prev = cur;
        n += 1;
    }
}
