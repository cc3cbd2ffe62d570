//! `pias-sim`: run the deterministic simulator of a proxy group and write
//! its CSV (see `pias_control::sim`).
//!
//! ```text
//! pias-sim --proxies 1000 --clusters 300 --groups 100 --targets 20 \
//!          --duration 60 --seed 1 --loss 0.01 --out run.csv
//! ```
//!
//! | option | meaning | default |
//! |---|---|---|
//! | `--proxies N` | proxies | 100 |
//! | `--clusters N` | clusters (proxy i in cluster i mod N) | proxies / 3 |
//! | `--groups N` | groups | 10 |
//! | `--targets N` | targets per group | 10 |
//! | `--duration S` | simulated seconds | 60 |
//! | `--seed N` | seed of every random choice | 1 |
//! | `--loss P` | datagram loss probability | 0 |
//! | `--out FILE` | CSV output | sim.csv |
//! | `--topology FILE` | latencies (format in `sim::topology`) | synthetic |
//! | `--write-topology FILE` | write the topology used | — |
//! | `--churn R` | target leaves and crashes per second | 0 |
//! | `--flows R` | client flows per second | 0 |
//! | `--rapless-every K` | every K-th group RAP-less | 0 (none) |
//! | `--affinity-every K` | every K-th group with affinity | 0 (none) |
//! | `--crash N` | proxies crashed at `--crash-at` | 0 |
//! | `--crash-at S` | when | duration / 2 |
//! | `--recover-after S` | restart the crashed proxies after S | never |
//! | `--start-spread S` | proxies start within S | 1 |
//! | `--targets-start S` | targets start at S | 5 |
//! | `--heartbeat S` | membership heartbeat interval | 1 |
//!
//! Prints a summary: wall time, events, simulator speed (proxies ×
//! simulated seconds per wall second), datagrams, and the process's peak
//! resident memory.

use std::process::ExitCode;
use std::time::Duration;

use pias_control::sim::{Sim, SimConfig, Topology};
use pias_control::Instant;

fn usage() -> &'static str {
    "usage: pias-sim [--proxies N] [--clusters N] [--groups N] [--targets N] [--duration S] \
     [--seed N] [--loss P] [--out FILE] [--topology FILE] [--write-topology FILE] [--churn R] \
     [--flows R] [--rapless-every K] [--affinity-every K] [--crash N] [--crash-at S] \
     [--recover-after S] [--start-spread S] [--targets-start S] [--heartbeat S]"
}

fn status_kib(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Args {
    cfg: SimConfig,
    out: String,
    write_topology: Option<String>,
    crash: usize,
    crash_at: Option<f64>,
    recover_after: Option<f64>,
}

fn parse() -> Result<Args, String> {
    let mut a: Vec<String> = std::env::args().skip(1).collect();
    let mut get = |name: &str| -> Result<Option<String>, String> {
        match a.iter().position(|x| x == name) {
            None => Ok(None),
            Some(i) => {
                if i + 1 >= a.len() {
                    return Err(format!("{name}: missing value"));
                }
                let v = a.remove(i + 1);
                a.remove(i);
                Ok(Some(v))
            }
        }
    };
    fn num<T: std::str::FromStr>(name: &str, v: Option<String>, d: T) -> Result<T, String> {
        match v {
            None => Ok(d),
            Some(s) => s
                .parse()
                .map_err(|_| format!("{name}: expected a number, got {s:?}")),
        }
    }
    let proxies: usize = num("--proxies", get("--proxies")?, 100)?;
    let clusters: usize = num("--clusters", get("--clusters")?, (proxies / 3).max(1))?;
    let groups: usize = num("--groups", get("--groups")?, 10)?;
    let targets: usize = num("--targets", get("--targets")?, 10)?;
    let mut cfg = SimConfig::new(proxies, clusters, groups, targets);
    cfg.duration = Duration::from_secs_f64(num("--duration", get("--duration")?, 60.0)?);
    cfg.seed = num("--seed", get("--seed")?, 1)?;
    cfg.loss = num("--loss", get("--loss")?, 0.0)?;
    if !(0.0..=1.0).contains(&cfg.loss) {
        return Err("--loss: expected a probability in [0, 1]".into());
    }
    cfg.churn_per_s = num("--churn", get("--churn")?, 0.0)?;
    cfg.flows_per_s = num("--flows", get("--flows")?, 0.0)?;
    cfg.rapless_every = num("--rapless-every", get("--rapless-every")?, 0)?;
    cfg.affinity_every = num("--affinity-every", get("--affinity-every")?, 0)?;
    cfg.start_spread = Duration::from_secs_f64(num("--start-spread", get("--start-spread")?, 1.0)?);
    cfg.targets_start =
        Duration::from_secs_f64(num("--targets-start", get("--targets-start")?, 5.0)?);
    cfg.heartbeat = Duration::from_secs_f64(num("--heartbeat", get("--heartbeat")?, 1.0)?);
    if let Some(path) = get("--topology")? {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("--topology {path}: {e}"))?;
        let t = Topology::parse(&text).map_err(|e| format!("--topology {path}: {e}"))?;
        cfg.clusters = t.clusters();
        cfg.topology = Some(t);
    }
    let out = get("--out")?.unwrap_or_else(|| "sim.csv".into());
    let write_topology = get("--write-topology")?;
    let crash = num("--crash", get("--crash")?, 0)?;
    let crash_at = get("--crash-at")?
        .map(|s| s.parse::<f64>())
        .transpose()
        .map_err(|_| "--crash-at: expected seconds")?;
    let recover_after = get("--recover-after")?
        .map(|s| s.parse::<f64>())
        .transpose()
        .map_err(|_| "--recover-after: expected seconds")?;
    if let Some(x) = a.first() {
        return Err(format!("unknown argument {x:?}"));
    }
    Ok(Args {
        cfg,
        out,
        write_topology,
        crash,
        crash_at,
        recover_after,
    })
}

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!("{}", usage());
        return ExitCode::SUCCESS;
    }
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pias-sim: {e}\n{}", usage());
            return ExitCode::from(2);
        }
    };
    let cfg = args.cfg.clone();
    let started = std::time::Instant::now();
    let mut sim = Sim::new(cfg.clone());
    if let Some(path) = &args.write_topology {
        let t = cfg
            .topology
            .clone()
            .unwrap_or_else(|| Topology::synthetic(cfg.clusters, cfg.seed));
        if let Err(e) = std::fs::write(path, t.to_text()) {
            eprintln!("pias-sim: --write-topology {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let end = cfg.duration.as_secs_f64();
    if let Some(step) = cfg.proxies.checked_div(args.crash) {
        let at = args.crash_at.unwrap_or(end / 2.0);
        sim.run_until(Instant::ZERO + Duration::from_secs_f64(at));
        // Deterministic victims: spread over the index space.
        let step = step.max(1);
        let victims: Vec<usize> = (0..args.crash)
            .map(|k| (k * step + step / 2) % cfg.proxies)
            .collect();
        for &v in &victims {
            sim.crash(v);
        }
        if let Some(r) = args.recover_after {
            sim.run_until(Instant::ZERO + Duration::from_secs_f64((at + r).min(end)));
            for &v in &victims {
                sim.recover(v);
            }
        }
    }
    // In steps, with progress on stderr (simulated time, wall time).
    let mut t = sim.now().as_nanos() as f64 / 1e9;
    let mut half: Option<(f64, f64)> = None;
    while t < end {
        t = (t + 5.0).min(end);
        sim.run_until(Instant::ZERO + Duration::from_secs_f64(t));
        if half.is_none() && t >= end / 2.0 {
            half = Some((t, started.elapsed().as_secs_f64()));
        }
        eprintln!(
            "  {:>7.1} s simulated, {:>8.1} s wall, {} events",
            t,
            started.elapsed().as_secs_f64(),
            sim.stats().events
        );
    }
    sim.run();
    let wall = started.elapsed().as_secs_f64();
    if let Err(e) = std::fs::write(&args.out, sim.csv()) {
        eprintln!("pias-sim: --out {}: {e}", args.out);
        return ExitCode::FAILURE;
    }
    let s = sim.stats();
    let speed = cfg.proxies as f64 * end / wall.max(1e-9);
    println!(
        "proxies {} clusters {} groups {} targets/group {} simulated {:.1} s in {:.2} s wall",
        cfg.proxies, cfg.clusters, cfg.groups, cfg.targets_per_group, end, wall
    );
    println!(
        "events {} datagrams {} lost {} bytes {} join acks {} flows ok/lost {}/{}",
        s.events, s.datagrams, s.lost, s.bytes, s.acks, s.flows_ok, s.flows_lost
    );
    let types: Vec<String> = sim
        .datagrams_by_type()
        .into_iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    println!("by type: {}", types.join(", "));
    println!(
        "speed {:.0} proxy-seconds per wall second (whole run, start-up included)",
        speed
    );
    if let Some((t_half, w_half)) = half {
        if end > t_half && wall > w_half {
            println!(
                "speed {:.0} proxy-seconds per wall second (second half, {:.0}–{:.0} s)",
                cfg.proxies as f64 * (end - t_half) / (wall - w_half),
                t_half,
                end
            );
        }
    }
    let per = |kib: u64| kib as f64 / cfg.proxies.max(1) as f64;
    if let (Some(peak), Some(now)) = (status_kib("VmHWM:"), status_kib("VmRSS:")) {
        println!(
            "RSS peak {:.1} MiB ({:.0} KiB per proxy), at the end {:.1} MiB ({:.0} KiB per proxy)",
            peak as f64 / 1024.0,
            per(peak),
            now as f64 / 1024.0,
            per(now)
        );
    }
    println!("csv: {}", args.out);
    ExitCode::SUCCESS
}
