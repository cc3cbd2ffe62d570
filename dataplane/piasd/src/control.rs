//! The control core: the slow path beside the workers.
//!
//! It runs on EAL's main lcore and owns: the sending end of worker 0's
//! transmit rings (it has no TX queue of its own: frames it originates are
//! sent by worker 0, so a port needs one queue pair per worker and no more,
//! which single-queue devices such as af_packet and pcap can give), the
//! kernel exception taps, the ARP
//! [`Resolver`], the receiving ends of the workers' punt rings and up
//! queues, the sending ends of their down queues, counter aggregation, the
//! Prometheus export and the status that `piasctl` reads. Workers never
//! wait for it: if it falls behind, their punt rings fill and the overflow
//! is counted (`punt_ring_full`).

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;
use pias_dataplane::iface::{Down, Up};
use pias_dataplane::local::{self, ArpOp, LocalAddrs};
use pias_dataplane::neighbour::{Neighbours, Resolver, ResolverTiming};
use pias_dataplane::reason::{DropCounts, DropReason};
use pias_dpdk::{Burst32, Mbuf, Mempool, Port, Ring, RxQueue, TxQueue};

use crate::config::{Config, PortConfig};
use crate::plane::{Held, Plane};
use pias_control::proxy::Update;
use crate::ctl::{ControlStatus, NeighbourStatus, PortStatus, Status, WorkerStatus};
use crate::stats::{Counters, WorkerStats};

/// A port's kernel tap, driven only by the control core.
pub struct Tap {
    /// The tap's DPDK port.
    pub port: Port,
    /// Its only RX queue: what the kernel sends.
    pub rx: RxQueue,
    /// Its only TX queue: what we hand the kernel.
    pub tx: TxQueue,
    /// Interface name.
    pub name: String,
}

/// A port as the control core sees it.
pub struct ControlPort {
    /// The DPDK port.
    pub port: Port,
    /// Worker 0's transmit ring for this port.
    pub xmit: Ring,
    /// Its config.
    pub cfg: PortConfig,
    /// Its MAC.
    pub mac: [u8; 6],
    /// DPDK driver name.
    pub driver: String,
    /// RSS on.
    pub rss: bool,
    /// The exception path.
    pub tap: Option<Tap>,
    pending: Burst32,
}

impl ControlPort {
    /// A port with nothing pending.
    pub fn new(port: Port, xmit: Ring, cfg: PortConfig, mac: [u8; 6], driver: String, rss: bool, tap: Option<Tap>) -> Self {
        ControlPort { port, xmit, cfg, mac, driver, rss, tap, pending: Burst32::new() }
    }
}

/// The control core's side of one worker.
pub struct WorkerLink {
    /// Its lcore.
    pub lcore: u32,
    /// Packets it punted.
    pub punt: Ring,
    /// Table changes to it.
    pub down: Arc<ArrayQueue<Down>>,
    /// Its events.
    pub up: Arc<ArrayQueue<Up>>,
    /// Its published counters.
    pub stats: Arc<WorkerStats>,
    /// A snapshot that did not fit in `down` yet.
    pending: Option<Arc<Neighbours>>,
    /// Control-plane updates that did not fit in `down` yet, in order.
    /// Never dropped: a lost table or cache update would leave this
    /// worker disagreeing with the others.
    backlog: VecDeque<Down>,
}

impl WorkerLink {
    /// A link with nothing pending.
    pub fn new(lcore: u32, punt: Ring, down: Arc<ArrayQueue<Down>>, up: Arc<ArrayQueue<Up>>, stats: Arc<WorkerStats>) -> Self {
        WorkerLink { lcore, punt, down, up, stats, pending: None, backlog: VecDeque::new() }
    }
}

#[derive(Default)]
struct Own {
    iap_misses: u64,
    rap_choices: u64,
    jap_no_target: u64,
    target_silent: u64,
    control_datagrams: u64,
    control_unrouted: u64,
    control_unresolved: u64,
    arp_replied: u64,
    arp_requests_sent: u64,
    arp_learned: u64,
    to_kernel: u64,
    from_kernel: u64,
    drops: DropCounts,
}

/// The control core.
pub struct ControlCore {
    cfg: Arc<Config>,
    ports: Vec<ControlPort>,
    workers: Vec<WorkerLink>,
    local: Arc<LocalAddrs>,
    pool: Mempool,
    resolver: Resolver,
    own: Own,
    status: Arc<Mutex<Status>>,
    started: Instant,
    /// The PIAS control plane, when configured.
    plane: Option<Plane>,
    /// Control-plane packets waiting for a neighbour's MAC.
    held: Held,
    out: Vec<Vec<u8>>,
    updates: Vec<Update>,
}

/// How often ARP timers run.
const ARP_TICK: Duration = Duration::from_millis(100);
/// How often counters are aggregated, exported and published.
const STATUS_TICK: Duration = Duration::from_secs(1);
/// Idle sleep of the control core when a pass found nothing to do.
const IDLE: Duration = Duration::from_micros(200);

impl ControlCore {
    /// Builds the control core. The gateway and configured neighbours of
    /// every port are wanted by the resolver from the start.
    pub fn new(
        cfg: Arc<Config>,
        ports: Vec<ControlPort>,
        workers: Vec<WorkerLink>,
        local: Arc<LocalAddrs>,
        pool: Mempool,
        status: Arc<Mutex<Status>>,
        plane: Option<Plane>,
    ) -> Self {
        let mut resolver = Resolver::new(ResolverTiming::from_refresh_secs(cfg.arp_refresh_s));
        for (i, p) in cfg.ports.iter().enumerate() {
            resolver.want(i as u16, p.gateway);
            for n in &p.neighbours {
                resolver.want(i as u16, *n);
            }
            for &(ip, mac) in &p.static_neighbours {
                resolver.pin(i as u16, ip, mac);
            }
        }
        ControlCore {
            cfg,
            ports,
            workers,
            local,
            pool,
            resolver,
            own: Own::default(),
            status,
            started: Instant::now(),
            plane,
            held: Held::default(),
            out: Vec::new(),
            updates: Vec::new(),
        }
    }

    fn nanos(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Runs until `term` is set; then returns with every worker still
    /// running (the caller stops them, then calls [`ControlCore::drain`]).
    pub fn run(&mut self, term: &AtomicBool) {
        self.gratuitous_arp();
        let mut next_arp = Instant::now();
        let mut next_status = Instant::now();
        let mut burst = Burst32::new();
        let mut sends = Vec::new();
        while !term.load(Relaxed) {
            let mut work = 0usize;
            for w in 0..self.workers.len() {
                let n = self.workers[w].punt.dequeue_burst(&mut burst);
                work += n;
                for m in burst.drain() {
                    self.punted(m);
                }
                while let Some(up) = self.workers[w].up.pop() {
                    work += 1;
                    self.event(up);
                }
            }
            for p in 0..self.ports.len() {
                work += self.read_kernel(p, &mut burst);
            }
            work += self.drive_plane();
            let now = Instant::now();
            if now >= next_arp {
                next_arp = now + ARP_TICK;
                self.resolver.poll_requests(self.nanos(), &mut sends);
                for &(port, ip) in &sends {
                    self.send_arp_request(port as usize, ip);
                }
                self.release_held();
                if let Some(snap) = self.resolver.take_snapshot() {
                    log::info!("neighbours v{}: {} resolved", snap.version, snap.len());
                    let snap = Arc::new(snap);
                    for w in &mut self.workers {
                        w.pending = Some(snap.clone());
                    }
                }
                self.push_snapshots();
            }
            self.flush();
            if now >= next_status {
                next_status = now + STATUS_TICK;
                self.publish_status();
            }
            if work == 0 {
                std::thread::sleep(IDLE);
            }
        }
    }

    /// An event from a worker: counted, and handed to the control plane
    /// (RAP queries, JAP lists, invalidations, health probes follow).
    fn event(&mut self, up: Up) {
        if let (Some(p), false) = (self.plane.as_mut(), matches!(up, Up::Retired(_))) {
            p.event(&up);
        }
        match up {
            Up::Retired(d) => drop(d),
            Up::IapMiss { .. } => self.own.iap_misses += 1,
            Up::RapChose { .. } => self.own.rap_choices += 1,
            Up::JapNoTarget { .. } => self.own.jap_no_target += 1,
            Up::TargetSilent { .. } => self.own.target_silent += 1,
        }
    }

    /// After the workers stopped: frees everything still in the rings and
    /// queues and publishes the final counters.
    pub fn drain(&mut self) {
        let mut burst = Burst32::new();
        for w in &mut self.workers {
            while w.punt.dequeue_burst(&mut burst) > 0 {
                burst.clear();
            }
            while w.down.pop().is_some() {}
            while w.up.pop().is_some() {}
            w.pending = None;
            w.backlog.clear();
        }
        for p in &mut self.ports {
            p.pending.clear();
            while p.xmit.dequeue_burst(&mut burst) > 0 {
                burst.clear();
            }
        }
        self.publish_status();
    }

    /// The ports, for shutdown.
    pub fn into_ports(self) -> Vec<ControlPort> {
        self.ports
    }

    fn port_index(&self, port_id: u16) -> Option<usize> {
        self.ports.iter().position(|p| p.port.id() == port_id)
    }

    fn punted(&mut self, m: Mbuf) {
        let Some(pi) = self.port_index(m.port()) else {
            self.own.drops.bump(DropReason::ControlRejected);
            return;
        };
        if let Some(a) = local::arp_facts(m.data()) {
            return self.arp(pi, a, m);
        }
        if self.is_control_datagram(m.data()) {
            self.own.control_datagrams += 1;
            match self.plane.as_mut() {
                Some(p) => p.datagram(m.data()),
                None => self.own.drops.bump(DropReason::ControlRejected),
            }
            return;
        }
        if self.plane.as_mut().is_some_and(|p| p.probe_reply(m.data())) {
            return;
        }
        self.write_kernel(pi, m)
    }

    fn is_control_datagram(&self, f: &[u8]) -> bool {
        let port = self.cfg.pias.path.control_port;
        f.len() >= 14 + 20 + 8
            && f[12..14] == [0x08, 0x00]
            && f[14 + 9] == 17
            && {
                let ihl = usize::from(f[14] & 0x0f) * 4;
                f.len() >= 14 + ihl + 4 && u16::from_be_bytes([f[14 + ihl + 2], f[14 + ihl + 3]]) == port
            }
    }

    fn arp(&mut self, pi: usize, a: local::ArpFacts, mut m: Mbuf) {
        let cfg = &self.ports[pi].cfg;
        let sender_ok = cfg.address.contains(a.sender_ip)
            && a.sender_ip != cfg.address.addr
            && (cfg.address.len >= 31 || (a.sender_ip != cfg.address.network() && a.sender_ip != cfg.address.broadcast()));
        let for_us = self.local.is_ours(pi, a.target_ip);
        if !sender_ok {
            self.own.drops.bump(DropReason::ArpBadSender);
            return;
        }
        if !for_us {
            self.own.drops.bump(DropReason::ArpNotForUs);
            return;
        }
        self.own.arp_learned += 1;
        self.resolver.learn(self.nanos(), pi as u16, a.sender_ip, a.sender_mac);
        match a.op {
            ArpOp::Request => {
                let mac = self.ports[pi].mac;
                if local::arp_request_to_reply(m.data_mut(), mac) {
                    self.own.arp_replied += 1;
                    self.send(pi, m);
                } else {
                    self.own.drops.bump(DropReason::ArpMalformed);
                }
            }
            // The kernel behind the tap resolves its own neighbours; it
            // must see the replies to its requests.
            ArpOp::Reply => {
                if self.ports[pi].tap.is_some() {
                    self.write_kernel(pi, m);
                }
            }
        }
    }

    fn write_kernel(&mut self, pi: usize, m: Mbuf) {
        let Some(tap) = self.ports[pi].tap.as_mut() else {
            self.own.drops.bump(DropReason::NoExceptionPath);
            return;
        };
        let mut b = Burst32::new();
        if b.push(m).is_err() {
            return;
        }
        let n = tap.tx.burst(&mut b);
        self.own.to_kernel += n as u64;
        for _ in 0..b.len() {
            self.own.drops.bump(DropReason::TxFull);
        }
    }

    fn read_kernel(&mut self, pi: usize, burst: &mut Burst32) -> usize {
        let Some(tap) = self.ports[pi].tap.as_mut() else { return 0 };
        let n = tap.rx.burst(burst);
        for m in burst.drain() {
            self.own.from_kernel += 1;
            self.send(pi, m);
        }
        n
    }

    fn send(&mut self, pi: usize, m: Mbuf) {
        if self.ports[pi].pending.is_full() {
            self.flush_port(pi);
        }
        if let Err(m) = self.ports[pi].pending.push(m) {
            drop(m);
            self.own.drops.bump(DropReason::XmitRingFull);
        }
    }

    fn flush_port(&mut self, pi: usize) {
        let p = &mut self.ports[pi];
        if p.pending.is_empty() {
            return;
        }
        let _ = p.xmit.enqueue_burst(&mut p.pending);
        for _ in 0..p.pending.len() {
            self.own.drops.bump(DropReason::XmitRingFull);
        }
        p.pending.clear();
    }

    fn flush(&mut self) {
        for pi in 0..self.ports.len() {
            self.flush_port(pi);
        }
    }

    /// Runs the control plane's timers and sends what it produced: IPv4
    /// packets out of the ports, updates to every worker. Returns the work
    /// done (for the idle decision).
    fn drive_plane(&mut self) -> usize {
        let Some(plane) = self.plane.as_mut() else { return 0 };
        let mut out = std::mem::take(&mut self.out);
        let mut updates = std::mem::take(&mut self.updates);
        plane.poll(&mut out, &mut updates);
        let work = out.len() + updates.len();
        for pkt in out.drain(..) {
            self.send_ip(pkt);
        }
        for u in updates.drain(..) {
            match &u {
                Update::Tables(t) => self.want_neighbours(t),
                // Operators (and the failover lab) read when the overlay
                // noticed: the log's millisecond timestamp.
                Update::ProxyDown(p) => log::info!("control plane: proxy {} declared down, purged from the IAP caches", p.0),
                Update::CacheFill { group, japs, .. } => log::debug!("control plane: cache {group} = {japs:?}"),
                Update::CacheInvalidate { group, jap } => log::debug!("control plane: cache {group} drops proxy {}", jap.0),
            }
            for w in &mut self.workers {
                // A worker that fell behind needs only the newest tables:
                // one waiting snapshot is replaced in place, so the backlog
                // holds at most one (cache updates stay in order around it).
                match (u.to_down(), w.backlog.iter_mut().find(|d| matches!(d, Down::Tables(_)))) {
                    (Down::Tables(t), Some(waiting)) => *waiting = Down::Tables(t),
                    (d, _) => w.backlog.push_back(d),
                }
            }
        }
        self.out = out;
        self.updates = updates;
        for w in &mut self.workers {
            while let Some(d) = w.backlog.pop_front() {
                if let Err(d) = w.down.push(d) {
                    w.backlog.push_front(d);
                    break;
                }
            }
        }
        work
    }

    /// Proxies and local targets on a port's subnet must be resolved before
    /// the workers tunnel or NAT to them.
    fn want_neighbours(&mut self, t: &pias_dataplane::tables::Tables) {
        let st = t.to_static_state();
        let addrs = st
            .proxies
            .iter()
            .filter(|p| p.id != st.me)
            .map(|p| p.addr)
            .chain(st.groups.iter().flat_map(|g| g.targets.iter().map(|t| t.addr.ip)));
        for a in addrs {
            if let Some(pi) = self.ports.iter().position(|p| p.cfg.address.contains(a)) {
                if a != self.ports[pi].cfg.address.addr {
                    self.resolver.want(pi as u16, a);
                }
            }
        }
    }

    /// The port and next hop for `dst`: on a port's subnet, else the first
    /// port's gateway (the workers' rule, `Path::route`).
    fn next_hop(&self, dst: Ipv4Addr) -> Option<(usize, Ipv4Addr)> {
        match self.ports.iter().position(|p| p.cfg.address.contains(dst)) {
            Some(pi) => Some((pi, dst)),
            None => self.ports.first().map(|p| (0, p.cfg.gateway)),
        }
    }

    /// Sends an IPv4 packet the control plane made, or holds it until its
    /// next hop is resolved.
    fn send_ip(&mut self, pkt: Vec<u8>) {
        let Some(dst) = pkt.get(16..20).map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3])) else { return };
        let Some((pi, nh)) = self.next_hop(dst) else {
            self.own.control_unrouted += 1;
            return;
        };
        match self.resolver.lookup(pi as u16, nh) {
            Some(mac) => self.send_frame(pi, mac, &pkt),
            None => {
                self.resolver.want(pi as u16, nh);
                if !self.held.hold(pi as u16, nh, pkt) {
                    self.own.control_unresolved += 1;
                }
            }
        }
    }

    fn send_frame(&mut self, pi: usize, dst_mac: [u8; 6], pkt: &[u8]) {
        let mut f = Vec::with_capacity(14 + pkt.len());
        f.extend_from_slice(&dst_mac);
        f.extend_from_slice(&self.ports[pi].mac);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(pkt);
        match Mbuf::from_slice(&self.pool, &f) {
            Ok(m) => self.send(pi, m),
            Err(_) => self.own.drops.bump(DropReason::ControlRejected),
        }
    }

    /// Sends what waited for ARP and is now resolved.
    fn release_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let mut ready = Vec::new();
        let resolver = &self.resolver;
        let expired = self.held.release(|p, ip| resolver.lookup(p, ip).is_some(), &mut ready);
        self.own.control_unresolved += expired as u64;
        for (pi, nh, pkt) in ready {
            if let Some(mac) = self.resolver.lookup(pi, nh) {
                self.send_frame(pi as usize, mac, &pkt);
            }
        }
    }

    fn send_arp_request(&mut self, pi: usize, ip: Ipv4Addr) {
        let (mac, own) = (self.ports[pi].mac, self.ports[pi].cfg.address.addr);
        self.send_arp(pi, local::build_arp_request(mac, own, ip));
    }

    /// Announces every port's address once at start (RFC 5227 §3), so
    /// neighbours that cached an older MAC update at once.
    fn gratuitous_arp(&mut self) {
        for pi in 0..self.ports.len() {
            let (mac, own) = (self.ports[pi].mac, self.ports[pi].cfg.address.addr);
            self.send_arp(pi, local::build_arp_request(mac, own, own));
        }
    }

    fn send_arp(&mut self, pi: usize, frame: [u8; local::ARP_FRAME_LEN]) {
        match Mbuf::from_slice(&self.pool, &frame) {
            Ok(m) => {
                self.own.arp_requests_sent += 1;
                self.send(pi, m);
            }
            Err(_) => self.own.drops.bump(DropReason::ControlRejected),
        }
    }

    fn push_snapshots(&mut self) {
        for w in &mut self.workers {
            if let Some(s) = w.pending.take() {
                if let Err(Down::Neighbours(s)) = w.down.push(Down::Neighbours(s)) {
                    w.pending = Some(s);
                }
            }
        }
    }

    fn publish_status(&mut self) {
        let workers: Vec<Counters> = self.workers.iter().map(|w| w.stats.snapshot()).collect();
        let mut drops = self.own.drops.clone();
        for c in &workers {
            for (t, v) in drops.0.iter_mut().zip(c.drops.0.iter()) {
                *t += v;
            }
        }
        let labels = |d: &DropCounts| -> BTreeMap<String, u64> {
            DropReason::ALL
                .iter()
                .filter(|r| d.get(**r) > 0)
                .map(|r| (r.label().to_string(), d.get(*r)))
                .collect()
        };
        let np = self.ports.len();
        let mut ports = Vec::with_capacity(np);
        for (i, p) in self.ports.iter().enumerate() {
            let link = p.port.link().ok();
            let st = p.port.stats().ok().unwrap_or_default();
            ports.push(PortStatus {
                index: i,
                device: p.cfg.device.clone(),
                driver: p.driver.clone(),
                mac: fmt_mac(&p.mac),
                address: p.cfg.address.to_string(),
                link_up: link.map(|l| l.up).unwrap_or(false),
                speed_mbps: link.map(|l| l.speed_mbps).unwrap_or(0),
                tap: p.tap.as_ref().map(|t| t.name.clone()),
                rss: p.rss,
                ipackets: st.ipackets,
                opackets: st.opackets,
                ibytes: st.ibytes,
                obytes: st.obytes,
                imissed: st.imissed,
                ierrors: st.ierrors,
                oerrors: st.oerrors,
                rx_nombuf: st.rx_nombuf,
            });
        }
        let wstatus: Vec<WorkerStatus> = workers
            .iter()
            .enumerate()
            .map(|(i, c)| WorkerStatus {
                index: i,
                lcore: self.workers[i].lcore,
                rx: c.rx[..np].to_vec(),
                tx: c.tx[..np].to_vec(),
                punted: c.punted,
                echo_replied: c.echo_replied,
                loops: c.loops,
                drops: labels(&c.drops),
                handoff_in: c.handoff_in,
                handoff_out: c.handoff_out,
                nat_flows: c.nat_flows,
                path: pias_dataplane::pipeline::PathStats::NAMES
                    .iter()
                    .zip(c.path.values())
                    .map(|(n, v)| (n.to_string(), v))
                    .collect(),
            })
            .collect();
        let neighbours = self
            .resolver
            .entries()
            .into_iter()
            .map(|(port, ip, mac)| NeighbourStatus { port, ip: ip.to_string(), mac: fmt_mac(&mac) })
            .collect();
        let st = Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            config: self.cfg.file.display().to_string(),
            anycast: self.cfg.anycast.iter().map(|p| p.to_string()).collect(),
            ports,
            workers: wstatus,
            control: ControlStatus {
                arp_replied: self.own.arp_replied,
                arp_requests_sent: self.own.arp_requests_sent,
                arp_learned: self.own.arp_learned,
                to_kernel: self.own.to_kernel,
                from_kernel: self.own.from_kernel,
                drops: labels(&self.own.drops),
                iap_misses: self.own.iap_misses,
                rap_choices: self.own.rap_choices,
                jap_no_target: self.own.jap_no_target,
                target_silent: self.own.target_silent,
                control_datagrams: self.own.control_datagrams,
                control_unrouted: self.own.control_unrouted,
                control_unresolved: self.own.control_unresolved,
                plane: self.plane.as_ref().map(|p| p.status()),
            },
            drops: labels(&drops),
            neighbours,
            mempool_size: self.pool.size(),
            mempool_in_use: self.pool.in_use_count(),
        };
        crate::metrics::export(&st);
        if let Ok(mut g) = self.status.lock() {
            *g = st;
        }
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: &[u8; 6]) -> String {
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}
