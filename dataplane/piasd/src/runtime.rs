//! Start-up and shutdown of piasd: EAL, the mempool, ports and their
//! exception taps, the rings, the workers on their lcores, the control core
//! on the main lcore; then, on SIGINT/SIGTERM, the reverse, ending with the
//! mempool audit (DESIGN.md CHECKLISTS: every mbuf back in the pool).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam::queue::ArrayQueue;
use pias_dataplane::flow::NatPorts;
use pias_dataplane::iface::QUEUE_DEPTH;
use pias_dataplane::jap_cache::{JapCache, DEFAULT_CACHE_ENTRIES};
use pias_dataplane::local::{LocalAddrs, PortAddrs};
use pias_dataplane::nat::{NatConfig, NatTable, SECOND};
use pias_dataplane::neighbour::{Resolver, ResolverTiming};
use pias_dataplane::pipeline::Path;
use pias_dataplane::tables::Tables;
use pias_dpdk::{Eal, Mempool, Port, PortConf, Ring};

use crate::config::{tap_device_name, Config};
use crate::control::{ControlCore, ControlPort, Tap, WorkerLink};
use crate::ctl::{self, Status};
use crate::exception;
use crate::plane::Plane;
use crate::stats::WorkerStats;
use crate::worker::{Clock, Worker, WorkerPort};

/// Why piasd could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// EAL refused its arguments.
    #[error("EAL: {0}")]
    Eal(String),
    /// A config value did not match the machine (e.g. no such device).
    #[error("{file}: key `{key}`: {msg}")]
    Config {
        /// Config file.
        file: String,
        /// Key path.
        key: String,
        /// What went wrong.
        msg: String,
    },
    /// A DPDK or OS step failed.
    #[error("{0}")]
    Setup(String),
    /// Shutdown found mbufs not returned to the pool.
    #[error("{0} mbuf(s) still in use at exit: a leak")]
    Leak(u32),
}

/// Mbuf data room: 2 KiB of packet plus DPDK's default headroom, so every
/// frame up to a 1500-byte MTU (and an IP-in-IP header in front) is one
/// segment.
const DATA_ROOM: u16 = 2048 + 128;
/// Punt ring slots per worker.
const PUNT_RING: u32 = 1024;
/// Transmit ring slots per port (control core → worker 0).
const XMIT_RING: u32 = 1024;
/// Handoff ring slots per ordered pair of workers.
const HANDOFF_RING: u32 = 2048;

/// Runs piasd with `cfg` until `term` is set. Returns Ok when shutdown was
/// clean (every mbuf back in the pool).
pub fn run(cfg: Config, term: Arc<AtomicBool>) -> Result<(), RunError> {
    let cfg = Arc::new(cfg);
    let file = cfg.file.display().to_string();
    // The control plane first: a bad key or boot file is reported before
    // any device is touched.
    let plane = match &cfg.pias.control {
        Some(c) => {
            let me = cfg.pias.state.me;
            let addr = cfg
                .pias
                .state
                .proxies
                .iter()
                .find(|p| p.id == me)
                .map(|p| p.addr)
                .ok_or_else(|| RunError::Config { file: file.clone(), key: "pias.me".into(), msg: "not in pias.proxies".into() })?;
            let p = Plane::new(c, me, addr, &cfg.anycast, cfg.pias.path.control_port)
                .map_err(|e| RunError::Config { file: file.clone(), key: "pias.control".into(), msg: e.to_string() })?;
            log::info!("control plane: proxy {} at {addr}, boot {}", me.0, p.status().incarnation);
            Some(p)
        }
        None => None,
    };
    let eal = Eal::init(cfg.eal_args()).map_err(|e| RunError::Eal(e.to_string()))?;
    let lcores = eal.worker_lcores();
    let nw = cfg.workers as usize;
    if lcores.len() < nw {
        return Err(RunError::Config {
            file,
            key: "workers".into(),
            msg: format!(
                "{nw} worker(s) need {nw} lcores besides the main lcore, but eal.lcores gives {} ({:?})",
                lcores.len(),
                lcores
            ),
        });
    }
    log::info!("EAL up: main lcore {}, workers on {:?}", eal.main_lcore(), &lcores[..nw]);

    let pool = Mempool::pktmbuf("pias_mbufs", cfg.mbufs, cfg.mempool_cache, DATA_ROOM, pias_dpdk::socket_id())
        .map_err(|e| RunError::Setup(format!("mempool of {} mbufs: {e}", cfg.mbufs)))?;

    // Ports: queue pair i belongs to worker i; the control core sends
    // through worker 0's transmit rings.
    let mut ctl_ports = Vec::new();
    let mut worker_ports: Vec<Vec<WorkerPort>> = (0..nw).map(|_| Vec::new()).collect();
    let mut addrs = Vec::new();
    let mut xmit_rings = Vec::new();
    for (i, pc) in cfg.ports.iter().enumerate() {
        let key = format!("ports[{i}].device");
        let port = Port::by_name(&pc.device).map_err(|e| RunError::Config {
            file: file.clone(),
            key: key.clone(),
            msg: format!("no DPDK port named {:?} ({e}); is it in eal.vdevs or eal.allow?", pc.device),
        })?;
        let info = port.info().map_err(|e| RunError::Setup(e.to_string()))?;
        if (info.max_rx_queues as usize) < nw || (info.max_tx_queues as usize) < nw {
            return Err(RunError::Config {
                file: file.clone(),
                key: "workers".into(),
                msg: format!(
                    "port {} ({}) has {} rx / {} tx queues; {nw} workers need {nw} of each",
                    pc.device, info.driver, info.max_rx_queues, info.max_tx_queues
                ),
            });
        }
        let setup = port
            .configure(
                &PortConf {
                    rx_queues: nw as u16,
                    tx_queues: nw as u16,
                    rx_desc: pc.rx_desc,
                    tx_desc: pc.tx_desc,
                    rss: nw > 1,
                    mtu: Some(pc.mtu),
                },
                &pool,
            )
            .map_err(|e| RunError::Setup(e.to_string()))?;
        let mac = port.mac().map_err(|e| RunError::Setup(e.to_string()))?;
        for (w, wp) in worker_ports.iter_mut().enumerate() {
            wp.push(WorkerPort {
                rx: port.rx_queue(w as u16).map_err(|e| RunError::Setup(e.to_string()))?,
                tx: port.tx_queue(w as u16).map_err(|e| RunError::Setup(e.to_string()))?,
            });
        }
        let xmit = Ring::new(&format!("pias_xmit{i}"), XMIT_RING, true, true).map_err(|e| RunError::Setup(e.to_string()))?;
        xmit_rings.push(xmit.clone());
        port.start().map_err(|e| RunError::Setup(e.to_string()))?;
        let tap = match &pc.exception_tap {
            None => None,
            Some(name) => {
                let tport = Port::by_name(&tap_device_name(i)).map_err(|e| RunError::Setup(format!("exception tap {name}: {e}")))?;
                tport
                    .configure(&PortConf { rx_queues: 1, tx_queues: 1, rx_desc: 512, tx_desc: 512, rss: false, mtu: Some(pc.mtu) }, &pool)
                    .map_err(|e| RunError::Setup(format!("exception tap {name}: {e}")))?;
                let rx = tport.rx_queue(0).map_err(|e| RunError::Setup(e.to_string()))?;
                let tx = tport.tx_queue(0).map_err(|e| RunError::Setup(e.to_string()))?;
                tport.start().map_err(|e| RunError::Setup(format!("exception tap {name}: {e}")))?;
                exception::configure_tap(name, &mac, &pc.address, pc.mtu)
                    .map_err(|e| RunError::Setup(format!("exception tap {name}: {e}")))?;
                Some(Tap { port: tport, rx, tx, name: name.clone() })
            }
        };
        log::info!(
            "port {i}: {} ({}) mac {} addr {} rss {} tap {:?}",
            pc.device,
            info.driver,
            crate::control::fmt_mac(&mac),
            pc.address,
            setup.rss,
            pc.exception_tap
        );
        addrs.push(PortAddrs { mac, ip: pc.address.addr, subnet: pc.address, gateway: pc.gateway, exception: tap.is_some() });
        ctl_ports.push(ControlPort::new(port, xmit, pc.clone(), mac, info.driver.clone(), setup.rss, tap));
    }
    let local = Arc::new(LocalAddrs { ports: addrs, anycast: cfg.anycast.clone() });
    let port_ids: Vec<u16> = ctl_ports.iter().map(|p| p.port.id()).collect();

    // The forwarding tables (checked when the config was read) and the
    // NAT port split.
    let tables = Arc::new(Tables::build(&cfg.pias.state).map_err(|e| RunError::Setup(format!("tables: {e}")))?);
    let nat_ports = NatPorts::new(cfg.pias.nat_ports, nw as u16).map_err(|e| RunError::Config {
        file: file.clone(),
        key: "pias.nat.ports".into(),
        msg: e.to_string(),
    })?;

    // Static ARP entries are known before the first packet: workers start
    // with them (the control core's resolver republishes them with what it
    // learns).
    let mut pins = Resolver::new(ResolverTiming::from_refresh_secs(cfg.arp_refresh_s));
    for (i, p) in cfg.ports.iter().enumerate() {
        for &(ip, mac) in &p.static_neighbours {
            pins.pin(i as u16, ip, mac);
        }
    }
    let initial_neigh = Arc::new(pins.take_snapshot().unwrap_or_default());

    // Handoff rings: one SPSC ring per ordered pair of workers.
    let mut handoff: Vec<Vec<Option<Ring>>> = Vec::with_capacity(nw);
    for from in 0..nw {
        let mut row = Vec::with_capacity(nw);
        for to in 0..nw {
            row.push(if from == to {
                None
            } else {
                Some(Ring::new(&format!("pias_h{from}_{to}"), HANDOFF_RING, true, true).map_err(|e| RunError::Setup(e.to_string()))?)
            });
        }
        handoff.push(row);
    }

    // Rings and queues, then the workers.
    let stop = Arc::new(AtomicBool::new(false));
    let mut links = Vec::with_capacity(nw);
    for (w, ports) in worker_ports.into_iter().enumerate() {
        let range = nat_ports.range_of(w as u16).ok_or_else(|| RunError::Setup(format!("no NAT ports for worker {w}")))?;
        let nat = NatTable::new(NatConfig {
            udp_idle: cfg.pias.nat_udp_idle_s * SECOND,
            tcp_established: cfg.pias.nat_tcp_established_s * SECOND,
            tcp_transitory: cfg.pias.nat_tcp_transitory_s * SECOND,
            max_flows: cfg.pias.nat_max_flows,
            ports: range,
            reserved_port: Some(cfg.pias.path.control_port),
            ..NatConfig::default()
        })
        .map_err(|e| RunError::Config { file: file.clone(), key: "pias.nat".into(), msg: e.to_string() })?;
        let mut path = Path::new(
            w as u16,
            nw as u16,
            cfg.pias.path,
            local.clone(),
            tables.clone(),
            JapCache::new(DEFAULT_CACHE_ENTRIES),
            nat,
            nat_ports,
        );
        path.neigh = initial_neigh.clone();
        // Static IAP cache pins live as long as the process.
        for (g, japs) in &cfg.pias.cache {
            path.cache.fill(*g, japs, u64::MAX / 4, 0);
        }
        let handoff_out = handoff[w].clone();
        let handoff_in: Vec<Ring> = (0..nw).filter(|&f| f != w).filter_map(|f| handoff[f][w].clone()).collect();
        let punt = Ring::new(&format!("pias_punt{w}"), PUNT_RING, true, true).map_err(|e| RunError::Setup(e.to_string()))?;
        let down = Arc::new(ArrayQueue::new(QUEUE_DEPTH));
        let up = Arc::new(ArrayQueue::new(QUEUE_DEPTH));
        let stats = Arc::new(WorkerStats::default());
        let worker = Worker {
            index: w,
            ports,
            port_ids: port_ids.clone(),
            path,
            handoff_out,
            handoff_in,
            clock: Clock::new(),
            punt: punt.clone(),
            xmit: if w == 0 { xmit_rings.clone() } else { Vec::new() },
            down: down.clone(),
            up: up.clone(),
            stats: stats.clone(),
            stop: stop.clone(),
            idle_sleep_us: cfg.idle_sleep_us,
        };
        eal.launch(lcores[w], move || worker.run()).map_err(|e| RunError::Setup(format!("launch worker {w}: {e}")))?;
        links.push(WorkerLink::new(lcores[w], punt, down, up, stats));
    }

    let status = Arc::new(Mutex::new(Status::default()));
    let ctl_stop = Arc::new(AtomicBool::new(false));
    let ctl_thread = ctl::serve(&cfg.control_socket, status.clone(), ctl_stop.clone());
    let ctl_thread = match ctl_thread {
        Ok(t) => Some(t),
        Err(e) => {
            // Stop what was started before reporting.
            stop.store(true, Ordering::Relaxed);
            eal.wait_all();
            return Err(RunError::Config {
                file,
                key: "control_socket".into(),
                msg: format!("cannot serve {}: {e}", cfg.control_socket.display()),
            });
        }
    };
    if let Some(listen) = cfg.metrics_listen {
        if let Err(e) = crate::metrics::install(listen) {
            log::warn!("{e}; continuing without Prometheus export");
        }
    }

    let mut core = ControlCore::new(cfg.clone(), ctl_ports, links, local, pool.clone(), status, plane);
    log::info!("piasd running: {nw} worker(s), control on lcore {}", eal.main_lcore());
    core.run(&term);

    log::info!("stopping: workers finish their burst");
    stop.store(true, Ordering::Relaxed);
    eal.wait_all();
    core.drain();
    ctl_stop.store(true, Ordering::Relaxed);
    if let Some(t) = ctl_thread {
        let _ = t.join();
    }
    for p in core.into_ports() {
        if let Some(t) = p.tap {
            drop(t.rx);
            drop(t.tx);
            let _ = t.port.stop();
            let _ = t.port.close();
        }
        if let Err(e) = p.port.stop() {
            log::warn!("stop {}: {e}", p.cfg.device);
        }
        if let Err(e) = p.port.close() {
            log::warn!("close {}: {e}", p.cfg.device);
        }
    }
    drop(xmit_rings);
    drop(handoff);
    let in_use = pool.in_use_count();
    log::info!("mempool: {in_use} of {} mbufs in use at exit", pool.size());
    drop(pool);
    drop(eal);
    if in_use != 0 {
        return Err(RunError::Leak(in_use));
    }
    Ok(())
}
