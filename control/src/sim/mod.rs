//! A deterministic simulator of a proxy group (issue 5 item 13; smoltcp's
//! netsim and quinn's `Pair`, scaled up).
//!
//! N proxies in clusters on a topology ([`topology`]: latencies from a
//! file or generated) run the real control plane, [`ProxyControl`], driven
//! exactly as piasd's control core drives it: every datagram is sealed with
//! the proxy-group HMAC (or signed with a group's Ed25519 key, for target
//! requests) and opened by the receiver's gate. A virtual clock jumps from
//! event to event on a heap; loss and delay jitter are drawn from one
//! seeded RNG, so a run is a function of its [`SimConfig`].
//!
//! Besides proxies the simulator models:
//! - **target agents**: they join their group through the anycast address
//!   (delivered to a live proxy of their cluster, the nearest cluster's if
//!   theirs has none), refresh at a third of their lifetime, answer health
//!   probes, and churn (leave gracefully, or die silently, then come back);
//! - **the dataplane**, per proxy: the real [`Tables`] snapshots the
//!   control plane publishes, a real [`JapCache`] fed by its cache updates,
//!   a NAT (flow → target) per JAP, and the packet path of Figure 2 built
//!   from the dataplane's own selection functions
//!   ([`pias_dataplane::select`]), raising the same `Up` events (IAP miss,
//!   RAP choice, JAP without target, silent target) after the hop's
//!   latency;
//! - **proxy crash and recovery** (the state is lost; a recovered proxy
//!   starts with its next boot count).
//!
//! [`Sim::csv`] gives one row per `sample_interval`; the `pias-sim` binary
//! writes it to a file.

pub mod topology;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use ed25519_dalek::SigningKey;
use hashbrown::HashMap;
use pias_dataplane::flow::FlowKey;
use pias_dataplane::iface::Up;
use pias_dataplane::jap_cache::JapCache;
use pias_dataplane::select::{choose_jap, choose_target, client_hash, mix64};
use pias_dataplane::tables::Tables;
use pias_dataplane::types::{
    ClusterId, Criterion, GroupAddr, GroupOptions, GroupProto, Ipv4Prefix, ProxyId, TargetAddr,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::auth::{sign_target_request, EphemeralSecret, KeyRing, TargetSession};
use crate::membership;
use crate::proxy::{ProxyConfig, ProxyControl, Update};
use crate::time::{Instant, UnixTime};
use crate::wire::{
    GroupRegister, KeyId, Message, NackReason, TargetRequest, DEFAULT_CONTROL_PORT, MAX_DATAGRAM,
};

pub use topology::Topology;

/// The wall clock at virtual time zero (target request timestamps).
pub const WALL_EPOCH: u64 = 1_700_000_000;

const SECRET: [u8; 32] = [0x5a; 32];

/// Everything a run depends on.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Proxies.
    pub proxies: usize,
    /// Clusters (proxy `i` is in cluster `i % clusters`).
    pub clusters: usize,
    /// Groups.
    pub groups: usize,
    /// Targets per group, each in a random cluster.
    pub targets_per_group: usize,
    /// Virtual time to run ([`Sim::run`]).
    pub duration: Duration,
    /// Seed of every random choice.
    pub seed: u64,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Extra delay per datagram, uniform in `[0, jitter]`.
    pub jitter: Duration,
    /// Latencies; `None`: [`Topology::synthetic`] with `clusters`.
    pub topology: Option<Topology>,
    /// Proxies start at random times in `[0, start_spread)`.
    pub start_spread: Duration,
    /// Targets start at random times in `[targets_start, targets_start +
    /// start_spread)`.
    pub targets_start: Duration,
    /// Lifetime targets ask for (they refresh at a third of it).
    pub target_lifetime_s: u32,
    /// Target churn: leave or crash events per second, whole population.
    pub churn_per_s: f64,
    /// Fraction of churn events that are silent crashes (the rest are
    /// graceful leaves).
    pub crash_fraction: f64,
    /// Mean time a churned target stays away.
    pub off_time: Duration,
    /// Client flows per second (one packet each), random client and group.
    pub flows_per_s: f64,
    /// Every n-th group is RAP-less (0: none).
    pub rapless_every: usize,
    /// Every n-th group asks for affinity (0: none).
    pub affinity_every: usize,
    /// JAP selection criterion of every group.
    pub criterion: Criterion,
    /// Membership heartbeat interval.
    pub heartbeat: Duration,
    /// Membership dead multiplier.
    pub dead_multiplier: u32,
    /// Seeds per proxy for membership bootstrap.
    pub seeds_per_proxy: usize,
    /// CSV row interval.
    pub sample_interval: Duration,
    /// Applied to every proxy's configuration (tests tune timers).
    pub tweak: Option<fn(&mut ProxyConfig)>,
}

impl SimConfig {
    /// Defaults for a small run.
    pub fn new(proxies: usize, clusters: usize, groups: usize, targets_per_group: usize) -> Self {
        SimConfig {
            proxies,
            clusters: clusters.max(1),
            groups,
            targets_per_group,
            duration: Duration::from_secs(60),
            seed: 1,
            loss: 0.0,
            jitter: Duration::from_micros(200),
            topology: None,
            start_spread: Duration::from_secs(1),
            targets_start: Duration::from_secs(5),
            target_lifetime_s: 60,
            churn_per_s: 0.0,
            crash_fraction: 0.2,
            off_time: Duration::from_secs(20),
            flows_per_s: 0.0,
            rapless_every: 0,
            affinity_every: 0,
            criterion: Criterion::Proximity,
            heartbeat: Duration::from_secs(1),
            dead_multiplier: 3,
            seeds_per_proxy: 3,
            sample_interval: Duration::from_secs(1),
            tweak: None,
        }
    }
}

/// Where a client's packet went ([`Sim::packet`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketOutcome {
    /// It reached a live target.
    Delivered {
        /// The IAP (proxy index).
        iap: usize,
        /// The RAP it went through, if the IAP missed.
        rap: Option<ProxyId>,
        /// The JAP.
        jap: ProxyId,
        /// The target.
        target: TargetAddr,
    },
    /// It did not, and why.
    Lost(&'static str),
}

/// A client host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its cluster (where native anycast delivers its packets).
    pub cluster: usize,
}

/// Cumulative counts of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Events processed.
    pub events: u64,
    /// Datagrams sent (proxies and targets).
    pub datagrams: u64,
    /// Datagrams lost (drawn loss, dead or unknown destination).
    pub lost: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Join acks received by targets.
    pub acks: u64,
    /// Nacks received by targets.
    pub nacks: u64,
    /// Refreshes sent under a session (MAC'd, not signed).
    pub session_refreshes: u64,
    /// Flows delivered.
    pub flows_ok: u64,
    /// Flows lost.
    pub flows_lost: u64,
    /// Proxy crashes.
    pub crashes: u64,
}

/// The dataplane model of one proxy.
#[derive(Debug)]
struct Dataplane {
    tables: Arc<Tables>,
    cache: JapCache,
    nat: HashMap<FlowKey, TargetAddr>,
}

#[derive(Debug)]
struct Node {
    cp: Option<ProxyControl>,
    cluster: usize,
    addr: Ipv4Addr,
    incarnation: u32,
    seeds: Vec<SocketAddrV4>,
    gen: u64,
    scheduled: Option<Instant>,
    dp: Dataplane,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TargetState {
    Up,
    Left,
    Crashed,
}

#[derive(Debug)]
struct Target {
    group: usize,
    addr: TargetAddr,
    cluster: usize,
    state: TargetState,
    nonce: u64,
    /// Bumped at every (re)start: stale refresh timers are ignored.
    life: u64,
    /// The session of the last signed request's ack (PROTOCOL.md §5.6).
    session: Option<TargetSession>,
    /// The nonce of the last signed join or refresh and the ephemeral key
    /// whose share it carried (until its ack derives the session key).
    pending: Option<(u64, EphemeralSecret)>,
}

/// What a dataplane stage tells its control core.
#[derive(Clone, Copy, Debug)]
enum DpEvent {
    IapMiss(GroupAddr, Option<ProxyId>),
    RapChose(GroupAddr, ProxyId, Ipv4Addr),
    JapNoTarget(GroupAddr, Ipv4Addr),
    TargetSilent(GroupAddr, TargetAddr),
}

impl DpEvent {
    fn to_up(self) -> Up {
        match self {
            DpEvent::IapMiss(group, rap) => Up::IapMiss { group, rap },
            DpEvent::RapChose(group, jap, iap) => Up::RapChose { group, jap, iap },
            DpEvent::JapNoTarget(group, iap) => Up::JapNoTarget { group, iap },
            DpEvent::TargetSilent(group, target) => Up::TargetSilent { group, target },
        }
    }
}

#[derive(Debug)]
enum Kind {
    Datagram {
        to: usize,
        src: SocketAddrV4,
        bytes: Vec<u8>,
    },
    ToTarget {
        bytes: Vec<u8>,
    },
    Timer {
        node: usize,
        gen: u64,
    },
    Dp {
        node: usize,
        ev: DpEvent,
    },
    Probe {
        node: usize,
        id: crate::jap::ProbeId,
        alive: bool,
    },
    TargetStart {
        target: usize,
    },
    TargetRefresh {
        target: usize,
        life: u64,
    },
    Churn,
    Flow,
    Sample,
    Start {
        node: usize,
    },
}

#[derive(Debug)]
struct Ev {
    at: Instant,
    seq: u64,
    kind: Kind,
}

impl PartialEq for Ev {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Ev {}
impl PartialOrd for Ev {
    fn partial_cmp(&self, o: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ev {
    fn cmp(&self, o: &Self) -> core::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// The anycast prefix of the simulated proxy group.
pub fn anycast_prefix() -> Ipv4Prefix {
    Ipv4Prefix {
        addr: Ipv4Addr::new(198, 51, 100, 0),
        len: 24,
    }
}

/// Group `i` of a run: `198.51.100.(1 + i % 250):(1000 + i / 250)/udp`.
pub fn group_addr(i: usize) -> GroupAddr {
    GroupAddr::Port {
        ip: Ipv4Addr::new(198, 51, 100, 1 + (i % 250) as u8),
        port: 1000 + (i / 250) as u16,
        proto: GroupProto::Udp,
    }
}

/// The id of proxy index `i`.
pub fn proxy_id(i: usize) -> ProxyId {
    ProxyId(1000 + i as u32)
}

fn proxy_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::from_bits(0x0a00_0001 + i as u32)
}

fn target_addr(i: usize, port: u16) -> TargetAddr {
    TargetAddr {
        ip: Ipv4Addr::from_bits(0xac10_0001 + i as u32),
        port,
    }
}

/// The simulator. See the module docs.
#[derive(Debug)]
pub struct Sim {
    cfg: SimConfig,
    topo: Topology,
    now: Instant,
    heap: BinaryHeap<Reverse<Ev>>,
    seq: u64,
    rng: ChaCha8Rng,
    nodes: Vec<Node>,
    by_ip: HashMap<Ipv4Addr, usize>,
    /// Live proxies per cluster, sorted.
    live_in: Vec<Vec<usize>>,
    groups: Vec<(GroupAddr, GroupOptions, SigningKey)>,
    targets: Vec<Target>,
    target_by_ip: HashMap<Ipv4Addr, usize>,
    stats: SimStats,
    rows: Vec<String>,
    proxy_down_log: Vec<(Instant, usize, ProxyId)>,
    by_type: std::collections::BTreeMap<u8, u64>,
    buf: Vec<u8>,
}

impl Sim {
    /// A simulation at time zero: proxies, groups and targets scheduled,
    /// nothing run yet.
    pub fn new(cfg: SimConfig) -> Self {
        let topo = cfg
            .topology
            .clone()
            .unwrap_or_else(|| Topology::synthetic(cfg.clusters, cfg.seed));
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let n = cfg.proxies;
        let clusters = cfg.clusters.max(1);
        let mut nodes = Vec::with_capacity(n);
        let mut by_ip = HashMap::new();
        let cache_cap = (cfg.groups * 2).max(16);
        for i in 0..n {
            let seeds = (0..cfg.seeds_per_proxy.min(n.saturating_sub(1)))
                .map(|_| loop {
                    let s = rng.gen_range(0..n);
                    if s != i {
                        break SocketAddrV4::new(proxy_addr(s), DEFAULT_CONTROL_PORT);
                    }
                })
                .collect();
            by_ip.insert(proxy_addr(i), i);
            nodes.push(Node {
                cp: None,
                cluster: i % clusters,
                addr: proxy_addr(i),
                incarnation: 0,
                seeds,
                gen: 0,
                scheduled: None,
                dp: Dataplane {
                    tables: Arc::new(Tables::default()),
                    cache: JapCache::new(cache_cap),
                    nat: HashMap::new(),
                },
            });
        }
        let groups: Vec<(GroupAddr, GroupOptions, SigningKey)> = (0..cfg.groups)
            .map(|i| {
                let every = |k: usize| k > 0 && i % k == k - 1;
                let o = GroupOptions {
                    criterion: cfg.criterion,
                    affinity: every(cfg.affinity_every),
                    rapless: every(cfg.rapless_every),
                };
                let mut seed = [0u8; 32];
                rng.fill(&mut seed);
                (group_addr(i), o, SigningKey::from_bytes(&seed))
            })
            .collect();
        let mut targets = Vec::new();
        let mut target_by_ip = HashMap::new();
        for (gi, (g, _, _)) in groups.iter().enumerate() {
            let port = match g {
                GroupAddr::Port { port, .. } => *port,
                GroupAddr::WholeIp(_) => 0,
            };
            for _ in 0..cfg.targets_per_group {
                let i = targets.len();
                target_by_ip.insert(target_addr(i, port).ip, i);
                targets.push(Target {
                    group: gi,
                    addr: target_addr(i, port),
                    cluster: rng.gen_range(0..clusters),
                    state: TargetState::Left,
                    nonce: 0,
                    life: 0,
                    session: None,
                    pending: None,
                });
            }
        }
        let mut sim = Sim {
            topo,
            now: Instant::ZERO,
            heap: BinaryHeap::new(),
            seq: 0,
            rng,
            nodes,
            by_ip,
            live_in: vec![Vec::new(); clusters],
            groups,
            targets,
            target_by_ip,
            stats: SimStats::default(),
            rows: Vec::new(),
            proxy_down_log: Vec::new(),
            by_type: std::collections::BTreeMap::new(),
            buf: vec![0u8; MAX_DATAGRAM],
            cfg,
        };
        for i in 0..n {
            let at = sim.rand_dur(sim.cfg.start_spread);
            sim.push(Instant::ZERO + at, Kind::Start { node: i });
        }
        for t in 0..sim.targets.len() {
            let at = sim.cfg.targets_start + sim.rand_dur(sim.cfg.start_spread);
            sim.push(Instant::ZERO + at, Kind::TargetStart { target: t });
        }
        if sim.cfg.churn_per_s > 0.0 {
            let d = sim.exp(sim.cfg.churn_per_s);
            sim.push(Instant::ZERO + sim.cfg.targets_start + d, Kind::Churn);
        }
        if sim.cfg.flows_per_s > 0.0 {
            let d = sim.exp(sim.cfg.flows_per_s);
            sim.push(Instant::ZERO + sim.cfg.targets_start + d, Kind::Flow);
        }
        let s = sim.cfg.sample_interval;
        sim.push(Instant::ZERO + s, Kind::Sample);
        sim.rows.push(CSV_HEADER.to_owned());
        sim
    }

    fn rand_dur(&mut self, max: Duration) -> Duration {
        let n = max.as_nanos() as u64;
        if n == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(self.rng.gen_range(0..n))
        }
    }

    fn exp(&mut self, rate: f64) -> Duration {
        let u: f64 = self.rng.gen_range(f64::EPSILON..1.0);
        Duration::from_secs_f64(-u.ln() / rate.max(1e-9))
    }

    fn push(&mut self, at: Instant, kind: Kind) {
        self.seq += 1;
        self.heap.push(Reverse(Ev {
            at: at.max(self.now),
            seq: self.seq,
            kind,
        }));
    }

    fn wall(&self) -> UnixTime {
        UnixTime(WALL_EPOCH + self.now.as_nanos() / 1_000_000_000)
    }

    fn latency(&mut self, a: usize, b: usize) -> Duration {
        let base = Duration::from_micros(u64::from(self.topo.one_way_us(a, b)));
        base + self.rand_dur(self.cfg.jitter)
    }

    // ----- accessors ----------------------------------------------------

    /// Virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The settings.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// The cumulative counts.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// Proxies (live or not).
    pub fn proxy_count(&self) -> usize {
        self.nodes.len()
    }

    /// The control plane of proxy `i`, if it runs.
    pub fn node(&self, i: usize) -> Option<&ProxyControl> {
        self.nodes.get(i).and_then(|n| n.cp.as_ref())
    }

    /// The dataplane tables proxy `i` last received.
    pub fn tables(&self, i: usize) -> Option<&Arc<Tables>> {
        self.nodes.get(i).map(|n| &n.dp.tables)
    }

    /// The cached JAP list of proxy `i` (its workers' cache) for a group.
    pub fn cached(&self, i: usize, g: &GroupAddr) -> Vec<ProxyId> {
        self.nodes
            .get(i)
            .and_then(|n| n.dp.cache.get(g, self.now.as_nanos()))
            .map(|l| l.as_slice().to_vec())
            .unwrap_or_default()
    }

    /// Proxy `i`'s cluster.
    pub fn cluster_of(&self, i: usize) -> usize {
        self.nodes.get(i).map_or(0, |n| n.cluster)
    }

    /// Index of the proxy with this id.
    pub fn index_of(&self, p: ProxyId) -> Option<usize> {
        (p.0 as usize)
            .checked_sub(1000)
            .filter(|&i| i < self.nodes.len())
    }

    /// Whether proxy `i` runs.
    pub fn is_alive(&self, i: usize) -> bool {
        self.nodes.get(i).is_some_and(|n| n.cp.is_some())
    }

    /// The groups: address and options.
    pub fn groups(&self) -> Vec<(GroupAddr, GroupOptions)> {
        self.groups.iter().map(|(g, o, _)| (*g, *o)).collect()
    }

    /// Targets of group `gi` that are up (joined and answering).
    pub fn live_targets(&self, gi: usize) -> Vec<TargetAddr> {
        self.targets
            .iter()
            .filter(|t| t.group == gi && t.state == TargetState::Up)
            .map(|t| t.addr)
            .collect()
    }

    /// When each proxy learnt that a proxy went down (time, observer index,
    /// the proxy), from the `ProxyDown` cache updates it published.
    pub fn proxy_down_log(&self) -> &[(Instant, usize, ProxyId)] {
        &self.proxy_down_log
    }

    /// The CSV so far (header and one row per sample).
    pub fn csv(&self) -> String {
        let mut s = self.rows.join("\n");
        s.push('\n');
        s
    }

    /// Datagrams sent per message type (by name).
    pub fn datagrams_by_type(&self) -> Vec<(String, u64)> {
        self.by_type
            .iter()
            .map(|(t, n)| {
                let name = crate::wire::MessageType::from_u8(*t)
                    .map_or_else(|| format!("{t:#04x}"), |m| format!("{m:?}"));
                (name, *n)
            })
            .collect()
    }

    /// Pending events.
    pub fn pending_events(&self) -> usize {
        self.heap.len()
    }

    // ----- control ------------------------------------------------------

    /// Run until the configured duration.
    pub fn run(&mut self) {
        let end = Instant::ZERO + self.cfg.duration;
        self.run_until(end);
    }

    /// Process every event up to `until`, then stop the clock there.
    pub fn run_until(&mut self, until: Instant) {
        while let Some(Reverse(ev)) = self.heap.peek() {
            if ev.at > until {
                break;
            }
            let Some(Reverse(ev)) = self.heap.pop() else {
                break;
            };
            self.now = self.now.max(ev.at);
            self.stats.events += 1;
            self.handle(ev.kind);
        }
        self.now = self.now.max(until);
    }

    /// Crash proxy `i` now: its state is lost; datagrams to it vanish.
    pub fn crash(&mut self, i: usize) {
        let Some(n) = self.nodes.get_mut(i) else {
            return;
        };
        if n.cp.take().is_some() {
            self.stats.crashes += 1;
            n.gen += 1;
            n.scheduled = None;
            n.dp.tables = Arc::new(Tables::default());
            n.dp.cache.clear();
            n.dp.nat.clear();
            let c = n.cluster;
            if let Some(l) = self.live_in.get_mut(c) {
                l.retain(|&x| x != i);
            }
        }
    }

    /// Restart proxy `i` now, with its next boot count.
    pub fn recover(&mut self, i: usize) {
        if self.nodes.get(i).is_some_and(|n| n.cp.is_none()) {
            self.start_node(i);
        }
    }

    /// Make target `t` of group `gi` (its index among the group's targets)
    /// die silently now (it stops answering and refreshing).
    pub fn kill_target(&mut self, addr: TargetAddr) {
        if let Some(&t) = self.target_by_ip.get(&addr.ip) {
            if let Some(x) = self.targets.get_mut(t) {
                x.state = TargetState::Crashed;
                x.life += 1;
            }
        }
    }

    /// A client in cluster `cluster`, number `n`.
    pub fn client(&self, cluster: usize, n: u32) -> Client {
        Client {
            ip: Ipv4Addr::from_bits(0x6440_0000 + ((cluster as u32) << 12) + n % 4096),
            cluster,
        }
    }

    /// The proxy native anycast delivers a packet from `ip` in `cluster`
    /// to: a live proxy of the cluster chosen by the address (ECMP), or of
    /// the nearest cluster with a live proxy.
    pub fn catchment(&self, cluster: usize, ip: Ipv4Addr) -> Option<usize> {
        let pick = |l: &Vec<usize>| -> Option<usize> {
            if l.is_empty() {
                None
            } else {
                l.get((mix64(u64::from(ip.to_bits())) % l.len() as u64) as usize)
                    .copied()
            }
        };
        if let Some(p) = self.live_in.get(cluster).and_then(pick) {
            return Some(p);
        }
        (0..self.live_in.len())
            .filter(|&c| !self.live_in[c].is_empty())
            .min_by_key(|&c| (self.topo.one_way_us(cluster, c), c))
            .and_then(|c| pick(&self.live_in[c]))
    }

    /// Send one packet of flow `(client, sport)` to group `gi` now, through
    /// the proxy native anycast delivers it to.
    pub fn packet(&mut self, client: Client, gi: usize, sport: u16) -> PacketOutcome {
        match self.catchment(client.cluster, client.ip) {
            Some(iap) => self.packet_via(iap, client, gi, sport),
            None => PacketOutcome::Lost("no live proxy"),
        }
    }

    /// Send one packet of flow `(client, sport)` to group `gi` now, entering
    /// at proxy `iap` (as if routing moved the client there).
    ///
    /// The packet's path is evaluated at once against each proxy's current
    /// dataplane state; the events the stages raise reach the control
    /// planes after the hops' latencies.
    pub fn packet_via(
        &mut self,
        iap: usize,
        client: Client,
        gi: usize,
        sport: u16,
    ) -> PacketOutcome {
        let out = self.route(iap, client, gi, sport);
        match out {
            PacketOutcome::Delivered { .. } => self.stats.flows_ok += 1,
            PacketOutcome::Lost(_) => self.stats.flows_lost += 1,
        }
        out
    }

    fn route(&mut self, iap: usize, client: Client, gi: usize, sport: u16) -> PacketOutcome {
        let Some(&(g, _, _)) = self.groups.get(gi) else {
            return PacketOutcome::Lost("no such group");
        };
        if !self.is_alive(iap) {
            return PacketOutcome::Lost("IAP down");
        }
        let key = FlowKey::new(client.ip, sport, g.ip(), 1000, 17);
        let fh = key.hash();
        let ch = client_hash(client.ip);
        let now_ns = self.now.as_nanos();
        let tables = self.nodes[iap].dp.tables.clone();
        let me = tables.me();
        let Some(entry) = tables.group(&g) else {
            return PacketOutcome::Lost("IAP: no group");
        };
        let iap_addr = self.nodes[iap].addr;
        let iap_cluster = tables.my_cluster();
        // IAP stage.
        let (jap, rap) = if entry.options().rapless {
            match choose_jap(&tables, entry, iap_cluster, ch, fh) {
                Some(j) => (j, None),
                None => return PacketOutcome::Lost("IAP: no flooded JAP"),
            }
        } else if let Some(j) = self.nodes[iap]
            .dp
            .cache
            .lookup(&g, now_ns, |p| tables.is_up(p))
        {
            (j, None)
        } else {
            let rap = tables.nearest_rap(entry).map(|r| r.id);
            self.dp_event(iap, iap, DpEvent::IapMiss(g, rap));
            let Some(r) = rap else {
                return PacketOutcome::Lost("IAP: no RAP");
            };
            // RAP stage (at r, or here when this proxy is the RAP).
            let Some(ri) = self.index_of(r).filter(|&x| self.is_alive(x)) else {
                return PacketOutcome::Lost("RAP down");
            };
            let rt = self.nodes[ri].dp.tables.clone();
            let Some(re) = rt.group(&g) else {
                return PacketOutcome::Lost("RAP: no group");
            };
            if !re.targets().is_empty() && r != me {
                // The RAP is a JAP of the group: the dataplane delivers
                // locally (JAP before RAP).
                (r, Some(r))
            } else if re.has_rap(r) {
                match choose_jap(&rt, re, ClusterId(iap_cluster.0), ch, fh) {
                    Some(j) => {
                        self.dp_event(ri, iap, DpEvent::RapChose(g, j, iap_addr));
                        (j, Some(r))
                    }
                    None => return PacketOutcome::Lost("RAP: no JAP"),
                }
            } else {
                self.dp_event(ri, iap, DpEvent::JapNoTarget(g, iap_addr));
                return PacketOutcome::Lost("RAP: not a RAP");
            }
        };
        // JAP stage.
        let Some(ji) = self.index_of(jap).filter(|&x| self.is_alive(x)) else {
            return PacketOutcome::Lost("JAP down");
        };
        let jt = self.nodes[ji].dp.tables.clone();
        let Some(je) = jt.group(&g) else {
            self.dp_event(ji, iap, DpEvent::JapNoTarget(g, iap_addr));
            return PacketOutcome::Lost("JAP: no group");
        };
        let target = match self.nodes[ji].dp.nat.get(&key).copied() {
            Some(t) => t,
            None => match choose_target(je, fh, client.ip) {
                Some(t) => {
                    self.nodes[ji].dp.nat.insert(key, t);
                    t
                }
                None => {
                    self.dp_event(ji, iap, DpEvent::JapNoTarget(g, iap_addr));
                    return PacketOutcome::Lost("JAP: no live target");
                }
            },
        };
        let up = self
            .target_by_ip
            .get(&target.ip)
            .and_then(|&t| self.targets.get(t))
            .is_some_and(|t| t.state == TargetState::Up);
        if !up {
            // No reply will come: passive detection after a second.
            let at = self.now + Duration::from_secs(1);
            self.push(
                at,
                Kind::Dp {
                    node: ji,
                    ev: DpEvent::TargetSilent(g, target),
                },
            );
            return PacketOutcome::Lost("target down");
        }
        PacketOutcome::Delivered {
            iap,
            rap,
            jap,
            target,
        }
    }

    /// Raise a dataplane event at proxy `at`, after the latency from the
    /// packet's entry proxy.
    fn dp_event(&mut self, at: usize, from: usize, ev: DpEvent) {
        let (a, b) = (self.cluster_of(from), self.cluster_of(at));
        let d = if at == from {
            Duration::from_micros(10)
        } else {
            self.latency(a, b)
        };
        let t = self.now + d;
        self.push(t, Kind::Dp { node: at, ev });
    }

    // ----- event handling ------------------------------------------------

    fn handle(&mut self, kind: Kind) {
        match kind {
            Kind::Start { node } => self.start_node(node),
            Kind::Timer { node, gen } => {
                let now = self.now;
                let Some(n) = self.nodes.get_mut(node) else {
                    return;
                };
                if n.gen != gen {
                    return;
                }
                n.scheduled = None;
                if let Some(cp) = n.cp.as_mut() {
                    cp.handle_timeout(now);
                }
                self.drain(node);
            }
            Kind::Datagram { to, src, bytes } => {
                let (now, wall) = (self.now, self.wall());
                let Some(cp) = self.nodes.get_mut(to).and_then(|n| n.cp.as_mut()) else {
                    self.stats.lost += 1;
                    return;
                };
                cp.handle_datagram(now, wall, src, &bytes);
                self.drain(to);
            }
            Kind::ToTarget { bytes } => match crate::wire::decode_unauthenticated(&bytes) {
                Ok((_, Message::JoinAck(a))) => {
                    self.stats.acks += 1;
                    if let Some(x) = self
                        .target_by_ip
                        .get(&a.target.ip)
                        .and_then(|&t| self.targets.get_mut(t))
                    {
                        // Derive the key with the ephemeral key of the
                        // request this ack answers, as the agent does.
                        if x.pending.as_ref().is_some_and(|(n, _)| *n == a.nonce) {
                            if let Some((_, k)) = x.pending.take() {
                                if let Some(r) = TargetSession::accept(k, &a) {
                                    x.session = r.ok();
                                }
                            }
                        }
                    }
                }
                Ok((_, Message::JoinNack(n))) => {
                    self.stats.nacks += 1;
                    if matches!(
                        n.reason,
                        NackReason::SessionUnknown | NackReason::SessionExpired
                    ) {
                        // The JAP restarted or routing moved the target:
                        // sign a refresh at once, as the agent does.
                        if let Some(&t) = self.target_by_ip.get(&n.target.ip) {
                            let up = self.targets.get_mut(t).is_some_and(|x| {
                                x.session = None;
                                x.state == TargetState::Up
                            });
                            if up {
                                self.target_send(t, 1);
                            }
                        }
                    }
                }
                _ => {}
            },
            Kind::Dp { node, ev } => {
                let now = self.now;
                let Some(cp) = self.nodes.get_mut(node).and_then(|n| n.cp.as_mut()) else {
                    return;
                };
                cp.handle_event(now, &ev.to_up());
                self.drain(node);
            }
            Kind::Probe { node, id, alive } => {
                let now = self.now;
                let Some(cp) = self.nodes.get_mut(node).and_then(|n| n.cp.as_mut()) else {
                    return;
                };
                cp.handle_probe_result(now, id, alive);
                self.drain(node);
            }
            Kind::TargetStart { target } => self.target_start(target),
            Kind::TargetRefresh { target, life } => {
                if self
                    .targets
                    .get(target)
                    .is_some_and(|t| t.life == life && t.state == TargetState::Up)
                {
                    self.target_send(target, 1);
                    let every = Duration::from_secs(u64::from(self.cfg.target_lifetime_s) / 3)
                        .max(Duration::from_secs(1));
                    let at = self.now + every;
                    self.push(at, Kind::TargetRefresh { target, life });
                }
            }
            Kind::Churn => {
                self.churn();
                let d = self.exp(self.cfg.churn_per_s);
                let at = self.now + d;
                self.push(at, Kind::Churn);
            }
            Kind::Flow => {
                let cluster = self.rng.gen_range(0..self.cfg.clusters.max(1));
                let n: u32 = self.rng.gen();
                let c = self.client(cluster, n);
                let gi = self.rng.gen_range(0..self.groups.len().max(1));
                let sport = self.rng.gen();
                let _ = self.packet(c, gi, sport);
                let d = self.exp(self.cfg.flows_per_s);
                let at = self.now + d;
                self.push(at, Kind::Flow);
            }
            Kind::Sample => {
                self.sample();
                let at = self.now + self.cfg.sample_interval;
                self.push(at, Kind::Sample);
            }
        }
    }

    fn start_node(&mut self, i: usize) {
        let now = self.now;
        let Some(n) = self.nodes.get_mut(i) else {
            return;
        };
        n.incarnation += 1;
        let mut m = membership::Config::new(
            proxy_id(i),
            n.addr,
            ClusterId(n.cluster as u16),
            n.incarnation,
        );
        m.seeds = n.seeds.clone();
        m.heartbeat_interval = self.cfg.heartbeat;
        m.dead_multiplier = self.cfg.dead_multiplier;
        m.retransmit_interval = Duration::from_millis(500);
        let mut pc = ProxyConfig::new(m, vec![anycast_prefix()]);
        if let Some(f) = self.cfg.tweak {
            f(&mut pc);
        }
        let Ok(keys) = KeyRing::new(KeyId(1), &SECRET) else {
            return;
        };
        let Ok(mut cp) = ProxyControl::new(pc, keys, now) else {
            return;
        };
        for (g, o, key) in &self.groups {
            cp.apply_registration(
                now,
                &GroupRegister {
                    group: *g,
                    options: *o,
                    withdrawn: false,
                    serial: 1,
                    owner_key: key.verifying_key().to_bytes(),
                },
            );
        }
        n.cp = Some(cp);
        n.gen += 1;
        n.scheduled = None;
        let c = n.cluster;
        if let Some(l) = self.live_in.get_mut(c) {
            if let Err(p) = l.binary_search(&i) {
                l.insert(p, i);
            }
        }
        self.drain(i);
    }

    /// Everything a proxy produced: datagrams onto the network, updates
    /// into its dataplane, probes to their targets; then its next timer.
    fn drain(&mut self, i: usize) {
        let now = self.now;
        let mut buf = core::mem::take(&mut self.buf);
        while let Some(cp) = self.nodes.get_mut(i).and_then(|n| n.cp.as_mut()) {
            let Some(t) = cp.poll_transmit(&mut buf) else {
                break;
            };
            let bytes = buf[..t.len].to_vec();
            self.send(self.nodes[i].cluster, t.src, t.dst, bytes);
        }
        self.buf = buf;
        let mut updates = Vec::new();
        let mut probes = Vec::new();
        if let Some(cp) = self.nodes.get_mut(i).and_then(|n| n.cp.as_mut()) {
            while let Some(u) = cp.poll_update() {
                updates.push(u);
            }
            while let Some(p) = cp.poll_probe() {
                probes.push(p);
            }
        }
        let now_ns = now.as_nanos();
        for u in updates {
            let dp = &mut self.nodes[i].dp;
            match u {
                Update::Tables(t) => dp.tables = t,
                Update::CacheFill { group, japs, ttl } => {
                    dp.cache.fill_list(group, japs, ttl, now_ns);
                }
                Update::CacheInvalidate { group, jap } => {
                    dp.cache.invalidate(&group, jap);
                }
                Update::ProxyDown(p) => {
                    dp.cache.proxy_down(p);
                    self.proxy_down_log.push((now, i, p));
                }
            }
        }
        for p in probes {
            let alive = self
                .target_by_ip
                .get(&p.target.ip)
                .and_then(|&t| self.targets.get(t))
                .is_some_and(|t| t.state == TargetState::Up);
            let c = self.nodes[i].cluster;
            let d = if alive {
                self.latency(c, c) * 2
            } else {
                Duration::from_secs(1)
            };
            self.push(
                now + d,
                Kind::Probe {
                    node: i,
                    id: p.id,
                    alive,
                },
            );
        }
        // Reschedule the timer if it moved.
        let Some(n) = self.nodes.get_mut(i) else {
            return;
        };
        let want = n.cp.as_ref().and_then(|cp| cp.poll_timeout());
        if want != n.scheduled {
            n.gen += 1;
            n.scheduled = want;
            if let Some(t) = want {
                let gen = n.gen;
                self.push(t, Kind::Timer { node: i, gen });
            }
        }
    }

    /// Put a datagram on the network from a host in `from_cluster`.
    fn send(&mut self, from_cluster: usize, src: SocketAddrV4, dst: SocketAddrV4, bytes: Vec<u8>) {
        self.stats.datagrams += 1;
        self.stats.bytes += bytes.len() as u64;
        if let Some(&t) = bytes.get(1) {
            *self.by_type.entry(t).or_default() += 1;
        }
        if self.cfg.loss > 0.0 && self.rng.gen_bool(self.cfg.loss.min(1.0)) {
            self.stats.lost += 1;
            return;
        }
        if let Some(&to) = self.by_ip.get(dst.ip()) {
            let d = self.latency(from_cluster, self.nodes[to].cluster);
            let at = self.now + d;
            self.push(at, Kind::Datagram { to, src, bytes });
            return;
        }
        if let Some(&t) = self.target_by_ip.get(dst.ip()) {
            let c = self.targets[t].cluster;
            let d = self.latency(from_cluster, c);
            let at = self.now + d;
            self.push(at, Kind::ToTarget { bytes });
            return;
        }
        // To an anycast address: a target request, routed to the catchment.
        if anycast_prefix().contains(*dst.ip()) {
            let to = self
                .target_by_ip
                .get(src.ip())
                .and_then(|&t| self.targets.get(t))
                .and_then(|t| self.catchment(t.cluster, t.addr.ip));
            if let Some(to) = to {
                let d = self.latency(from_cluster, self.nodes[to].cluster);
                let at = self.now + d;
                self.push(at, Kind::Datagram { to, src, bytes });
                return;
            }
        }
        self.stats.lost += 1;
    }

    fn target_start(&mut self, t: usize) {
        let Some(x) = self.targets.get_mut(t) else {
            return;
        };
        x.state = TargetState::Up;
        x.life += 1;
        x.session = None;
        let life = x.life;
        self.target_send(t, 0);
        let every = Duration::from_secs(u64::from(self.cfg.target_lifetime_s) / 3)
            .max(Duration::from_secs(1));
        let at = self.now + every;
        self.push(at, Kind::TargetRefresh { target: t, life });
    }

    /// Send a join (0), refresh (1) or leave (2) for target `t`.
    fn target_send(&mut self, t: usize, kind: u8) {
        let wall = self.wall();
        let Some(x) = self.targets.get_mut(t) else {
            return;
        };
        x.nonce += 1;
        let (g, _, key) = &self.groups[x.group];
        let nonce = mix64(x.addr.ip.to_bits() as u64 ^ (x.nonce << 32) ^ self.cfg.seed);
        let src = SocketAddrV4::new(x.addr.ip, 40_000);
        let dst = SocketAddrV4::new(g.ip(), DEFAULT_CONTROL_PORT);
        let mut buf = [0u8; MAX_DATAGRAM];
        // Refreshes go under the session while it has more than two refresh
        // intervals left (the agent's rule).
        let margin = 2 * u64::from(self.cfg.target_lifetime_s / 3).max(1);
        if let Some(sess) = x
            .session
            .as_mut()
            .filter(|s| kind == 1 && s.usable(wall, margin))
        {
            let life = self.cfg.target_lifetime_s;
            let Ok(n) = sess.seal_next(*g, x.addr, nonce, life, &mut buf) else {
                return;
            };
            let c = x.cluster;
            self.stats.session_refreshes += 1;
            self.send(c, src, dst, buf[..n].to_vec());
            return;
        }
        let req = TargetRequest {
            group: *g,
            target: x.addr,
            options: self.groups[x.group].1,
            lifetime_s: if kind == 2 {
                0
            } else {
                self.cfg.target_lifetime_s
            },
            timestamp: wall,
            nonce,
            share: None,
        };
        // Joins and refreshes carry an ephemeral share (simulated targets
        // draw it from their nonce: deterministic per seed).
        let req = if kind == 2 {
            req
        } else {
            let k = EphemeralSecret::random(&mut ChaCha8Rng::seed_from_u64(nonce));
            let req = TargetRequest {
                share: Some(k.share()),
                ..req
            };
            x.pending = Some((nonce, k));
            req
        };
        let msg = match kind {
            0 => Message::Join(req),
            1 => Message::Refresh(req),
            _ => Message::Leave(req),
        };
        let Ok(n) = sign_target_request(key, &msg, &mut buf) else {
            return;
        };
        let c = x.cluster;
        self.send(c, src, dst, buf[..n].to_vec());
    }

    fn churn(&mut self) {
        let up: Vec<usize> = (0..self.targets.len())
            .filter(|&t| self.targets[t].state == TargetState::Up)
            .collect();
        if up.is_empty() {
            return;
        }
        let t = up[self.rng.gen_range(0..up.len())];
        if self.rng.gen_bool(self.cfg.crash_fraction.clamp(0.0, 1.0)) {
            self.targets[t].state = TargetState::Crashed;
        } else {
            self.target_send(t, 2);
            self.targets[t].state = TargetState::Left;
        }
        self.targets[t].life += 1;
        let d = self.exp(1.0 / self.cfg.off_time.as_secs_f64().max(1e-3));
        let at = self.now + d;
        self.push(at, Kind::TargetStart { target: t });
    }

    fn sample(&mut self) {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.is_alive(i))
            .collect();
        let n_live = live.len();
        let agree = live
            .iter()
            .filter(|&&i| {
                self.node(i)
                    .is_some_and(|cp| cp.membership().live().len() == n_live)
            })
            .count();
        let (mut rep_dg, mut applied, mut acks, mut lists, mut queries, mut inval) =
            (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
        let (mut band_sum, mut band_n, mut band_max) = (0u64, 0u64, 0u8);
        let (mut cache, mut invalid) = (0usize, 0u64);
        for &i in &live {
            let Some(cp) = self.node(i) else { continue };
            let r = cp.rap().counters();
            rep_dg += r.reports;
            applied += r.entries_applied;
            acks += r.acks;
            lists += r.lists;
            queries += cp.iap().counters().queries;
            inval += cp.jap().counters().invalidations;
            if cp.rap().group_count() > 0 {
                band_sum += u64::from(cp.rap().band_pct());
                band_n += 1;
                band_max = band_max.max(cp.rap().band_pct());
            }
            cache += self.nodes[i].dp.cache.len();
            invalid += cp.counters().tables_invalid;
        }
        let targets_up = self
            .targets
            .iter()
            .filter(|t| t.state == TargetState::Up)
            .count();
        let s = self.stats;
        self.rows.push(format!(
            "{:.3},{},{:.4},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.2},{},{},{},{},{}",
            self.now.as_nanos() as f64 / 1e9,
            n_live,
            if n_live == 0 {
                0.0
            } else {
                agree as f64 / n_live as f64
            },
            s.datagrams,
            s.lost,
            s.bytes,
            targets_up,
            s.acks,
            s.nacks,
            rep_dg,
            applied,
            acks,
            lists,
            queries,
            inval,
            self.proxy_down_log.len(),
            if band_n == 0 {
                0.0
            } else {
                band_sum as f64 / band_n as f64
            },
            band_max,
            s.flows_ok,
            s.flows_lost,
            cache,
            invalid,
        ));
    }
}

/// The CSV columns, cumulative counts unless said otherwise.
pub const CSV_HEADER: &str = "time_s,live_proxies,membership_agree,datagrams,lost,bytes,targets_up,join_acks,join_nacks,report_datagrams,report_entries_applied,report_acks,jap_lists,rap_queries,invalidations,proxy_down_updates,mean_band_pct,max_band_pct,flows_ok,flows_lost,cache_entries,tables_invalid";
