//! The control plane of one proxy: every machine composed behind one
//! quinn-proto-shaped interface, so that piasd's control core (and the
//! simulator) is a thin loop.
//!
//! | machine | module | role |
//! |---|---|---|
//! | gate, sealer | [`crate::auth`] | authenticate what comes in, seal what goes out |
//! | registry | [`crate::groups`] | registered groups and owner keys |
//! | membership | [`crate::membership`] | every proxy up/down (flooding, heartbeats) |
//! | RAP sets | [`crate::rendezvous`] | the k RAPs of every group, kept incrementally |
//! | JAP | [`crate::jap`] | local targets, health, reports, invalidations |
//! | RAP | [`crate::rap`] | JAP tables, band, JAP lists |
//! | IAP | [`crate::iap`] | the workers' JAP caches, RAP queries |
//! | prober | [`crate::proximity`] | cluster RTT matrix |
//! | flooded | [`crate::flooded`] | JAP lists of RAP-less groups |
//!
//! # Driving it (piasd's control core)
//!
//! ```text
//! loop {
//!     for each control datagram punted by a worker (src, bytes):
//!         cp.handle_datagram(now, wall_clock, src, bytes)
//!     for each Up event from a worker (not Retired):
//!         cp.handle_event(now, &up)
//!     for each finished health probe: cp.handle_probe_result(now, id, alive)
//!     if cp.poll_timeout() <= now: cp.handle_timeout(now)
//!     while let Some(t) = cp.poll_transmit(&mut buf): send buf[..t.len] from t.src to t.dst (UDP)
//!     while let Some(u) = cp.poll_update(): for each worker: push u.to_down() on its down ring
//!     while let Some(p) = cp.poll_probe(): start the probe (ICMP echo / TCP / UDP), report later
//!     sleep until min(cp.poll_timeout(), next ring poll)
//! }
//! ```
//!
//! [`Update::Tables`] carries a validated `Arc<Tables>` (built here with
//! the dataplane's own [`Tables::build`] / [`Tables::with_groups`]), so the
//! driver forwards it as [`Down::Tables`] without building anything. The
//! cache updates map one to one onto [`Down::CacheFill`],
//! [`Down::CacheInvalidate`] and [`Down::ProxyDown`]. Table publications
//! are coalesced: at most one per `publish_interval`; a proxy going down
//! reaches the caches at once through [`Update::ProxyDown`].
//!
//! Messages between machines of this same proxy (this proxy is the RAP of a
//! group it is also a JAP or IAP of) are delivered locally, never sent.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use ed25519_dalek::VerifyingKey;
use hashbrown::HashMap;
use pias_dataplane::iface::{Down, Up};
use pias_dataplane::jap_cache::CachedJaps;
use pias_dataplane::neighbour::Nanos;
use pias_dataplane::tables::{GroupSpec, StaticState, Tables, TablesError};
use pias_dataplane::types::{GroupAddr, GroupOptions, Ipv4Prefix, ProxyId, ProxyInfo, TargetAddr};

use crate::auth::{Accepted, Gate, GateConfig, KeyRing, Reject, Sealer, SessionSecret};
use crate::flooded::{Flooded, FloodedConfig};
use crate::groups::{GroupChange, GroupRegistry, RegistryError};
use crate::iap::{CacheUpdate, Iap, IapConfig};
use crate::jap::{HealthProbe, Jap, JapConfig, ProbeId};
use crate::membership::{self, Event, Membership};
use crate::proximity::{Prober, ProberConfig};
use crate::rap::{Rap, RapConfig};
use crate::rendezvous::{RapTable, Rendezvous, DEFAULT_RAPS};
use crate::time::{Instant, UnixTime};
use crate::transmit::{Dest, Outgoing};
use crate::view::{self, View};
use crate::wire::{decode_unauthenticated, GroupRegister, KeyId, Message, NackReason, ProxyHeader};

/// Settings of one proxy's control plane.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Membership: this proxy's id, address, cluster, boot count, control
    /// port, seeds and timers.
    pub membership: membership::Config,
    /// The anycast prefixes served (groups inside, proxies and targets
    /// outside).
    pub anycast: Vec<Ipv4Prefix>,
    /// RAPs per group.
    pub raps_per_group: usize,
    /// Limits of the gate (`me` is filled in).
    pub gate: GateConfig,
    /// Key that signs group registrations, if registrations are accepted
    /// over the network.
    pub operator_key: Option<VerifyingKey>,
    /// The JAP role.
    pub jap: JapConfig,
    /// The RAP role.
    pub rap: RapConfig,
    /// The IAP role.
    pub iap: IapConfig,
    /// Proximity.
    pub prober: ProberConfig,
    /// RAP-less groups.
    pub flooded: FloodedConfig,
    /// At most one table publication per this interval.
    pub publish_interval: Duration,
    /// The proxy list of the tables (which is rebuilt whole) is rebuilt at
    /// most this often while proxies only come up; a proxy going down, or a
    /// group left without a listed RAP, rebuilds it at the next
    /// publication.
    pub base_interval: Duration,
    /// Most datagrams waiting in the transmit queue.
    pub max_queue: usize,
    /// Most down proxies kept in the table.
    pub max_down_proxies: usize,
}

impl ProxyConfig {
    /// Defaults around a membership configuration.
    pub fn new(membership: membership::Config, anycast: Vec<Ipv4Prefix>) -> Self {
        let port = membership.port;
        ProxyConfig {
            membership,
            anycast,
            raps_per_group: DEFAULT_RAPS,
            gate: GateConfig::default(),
            operator_key: None,
            jap: JapConfig {
                port,
                ..JapConfig::default()
            },
            rap: RapConfig::default(),
            iap: IapConfig::default(),
            prober: ProberConfig::default(),
            flooded: FloodedConfig::default(),
            publish_interval: Duration::from_millis(50),
            base_interval: Duration::from_millis(500),
            max_queue: 1 << 20,
            max_down_proxies: 4096,
        }
    }
}

/// A setting out of range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A membership setting.
    #[error(transparent)]
    Membership(#[from] membership::ConfigError),
    /// This proxy's address cannot be in a table.
    #[error("membership.addr: {0} is not a unicast host address outside the anycast prefixes")]
    BadAddress(Ipv4Addr),
    /// `raps_per_group` must be 1..=8.
    #[error("raps_per_group: expected 1..=8, got {0}")]
    RapsPerGroup(usize),
    /// The initial table could not be built.
    #[error("initial tables: {0}")]
    Tables(#[from] TablesError),
}

/// A change for every worker.
#[derive(Clone, Debug)]
pub enum Update {
    /// A new forwarding-table snapshot: [`Down::Tables`].
    Tables(Arc<Tables>),
    /// [`Down::CacheFill`].
    CacheFill {
        /// The group.
        group: GroupAddr,
        /// JAPs, best first (empty: remove the entry).
        japs: CachedJaps,
        /// Lifetime.
        ttl: Nanos,
    },
    /// [`Down::CacheInvalidate`].
    CacheInvalidate {
        /// The group.
        group: GroupAddr,
        /// The JAP.
        jap: ProxyId,
    },
    /// [`Down::ProxyDown`].
    ProxyDown(ProxyId),
}

impl Update {
    /// The down-ring message for one worker.
    pub fn to_down(&self) -> Down {
        match self {
            Update::Tables(t) => Down::Tables(t.clone()),
            Update::CacheFill { group, japs, ttl } => Down::CacheFill {
                group: *group,
                japs: *japs,
                ttl: *ttl,
            },
            Update::CacheInvalidate { group, jap } => Down::CacheInvalidate {
                group: *group,
                jap: *jap,
            },
            Update::ProxyDown(p) => Down::ProxyDown(*p),
        }
    }
}

impl From<CacheUpdate> for Update {
    fn from(u: CacheUpdate) -> Self {
        match u {
            CacheUpdate::Fill { group, japs, ttl } => Update::CacheFill { group, japs, ttl },
            CacheUpdate::Invalidate { group, jap } => Update::CacheInvalidate { group, jap },
            CacheUpdate::ProxyDown(p) => Update::ProxyDown(p),
        }
    }
}

/// A datagram written into the caller's buffer by
/// [`ProxyControl::poll_transmit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Send from this address (this proxy's unicast address, or a group's
    /// anycast address for replies to targets) and the control port.
    pub src: SocketAddrV4,
    /// To.
    pub dst: SocketAddrV4,
    /// Bytes written.
    pub len: usize,
}

/// What the composition did and refused (the machines have their own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyCounters {
    /// Messages to a proxy this proxy does not know (dropped).
    pub unknown_dest: u64,
    /// Messages delivered between this proxy's own machines.
    pub loopback: u64,
    /// Messages that could not be sealed or written (never expected).
    pub emit_failed: u64,
    /// Authenticated messages of a type no machine takes here.
    pub unexpected: u64,
    /// Replies to targets received (only target agents want them).
    pub replies_ignored: u64,
    /// Registrations refused by the registry.
    pub registrations_refused: u64,
    /// Table publications.
    pub publications: u64,
    /// Table builds that failed (never expected: the inputs are
    /// sanitised; the last error is kept).
    pub tables_invalid: u64,
    /// Proxies left out of the table (address not unicast, in the anycast
    /// prefix, or a duplicate).
    pub proxies_left_out: u64,
    /// Datagrams dropped because the transmit queue was full.
    pub queue_full: u64,
}

/// This proxy's knowledge of the proxy group, as the machines see it.
#[derive(Debug)]
struct ProxyView {
    me: ProxyId,
    anycast: Vec<Ipv4Prefix>,
    registry: GroupRegistry,
    rendezvous: Rendezvous,
    raps: RapTable,
    proxies: BTreeMap<ProxyId, ProxyInfo>,
    by_addr: HashMap<Ipv4Addr, ProxyId>,
    cluster_count: HashMap<pias_dataplane::types::ClusterId, usize>,
    peers: Vec<ProxyId>,
    base: Tables,
    base_dirty: bool,
    /// The prober's matrix changed since `rtt` was taken from it.
    rtt_dirty: bool,
    /// Rebuild the base at the next chance, whatever the interval.
    base_urgent: bool,
    last_base: Option<Instant>,
}

impl ProxyView {
    /// Add or replace a proxy, keeping the address index and the cluster
    /// counts (a cluster appearing or vanishing changes which RTTs can be
    /// in a table).
    fn insert_proxy(&mut self, info: ProxyInfo) {
        self.remove_proxy(info.id);
        self.proxies.insert(info.id, info);
        self.by_addr.insert(info.addr, info.id);
        let n = self.cluster_count.entry(info.cluster).or_insert(0);
        *n += 1;
        if *n == 1 {
            self.rtt_dirty = true;
        }
    }

    fn remove_proxy(&mut self, id: ProxyId) {
        let Some(p) = self.proxies.remove(&id) else {
            return;
        };
        if self.by_addr.get(&p.addr) == Some(&id) {
            self.by_addr.remove(&p.addr);
        }
        if let Some(n) = self.cluster_count.get_mut(&p.cluster) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.cluster_count.remove(&p.cluster);
                self.rtt_dirty = true;
            }
        }
    }

    fn served(&self, g: &GroupAddr) -> bool {
        self.anycast.iter().any(|p| p.contains(g.ip()))
            && !matches!(g, GroupAddr::Port { port: 0, .. })
    }

    /// The proxies that can go into a table: valid addresses, one per
    /// address (an up proxy wins over a down one, then the lower id).
    fn table_proxies(&self) -> (Vec<ProxyInfo>, u64) {
        let mut by_addr: HashMap<Ipv4Addr, ProxyInfo> = HashMap::new();
        let mut left_out = 0u64;
        for p in self.proxies.values() {
            if !view::is_unicast_host(p.addr) || self.anycast.iter().any(|a| a.contains(p.addr)) {
                left_out += 1;
                continue;
            }
            match by_addr.get(&p.addr) {
                Some(q) if q.up && !p.up => left_out += 1,
                Some(q) if q.up == p.up && q.id < p.id => left_out += 1,
                Some(_) => {
                    left_out += 1;
                    by_addr.insert(p.addr, *p);
                }
                None => {
                    by_addr.insert(p.addr, *p);
                }
            }
        }
        let mut v: Vec<ProxyInfo> = by_addr.into_values().collect();
        v.sort_unstable_by_key(|p| p.id);
        (v, left_out)
    }

    fn rebuild_base(&mut self, rtt: Option<&Prober>) -> Result<u64, TablesError> {
        let (proxies, left_out) = self.table_proxies();
        let clusters: BTreeSet<_> = proxies.iter().map(|p| p.cluster).collect();
        let mut s = StaticState::new(self.me);
        s.anycast = self.anycast.clone();
        s.proxies = proxies;
        s.rtt = match rtt {
            Some(p) => p.entries(|c| clusters.contains(&c)),
            None => self.base.to_static_state().rtt,
        };
        s.rtt
            .retain(|e| clusters.contains(&e.a) && clusters.contains(&e.b));
        self.base = Tables::build(&s)?;
        self.base_dirty = false;
        Ok(left_out)
    }
}

impl View for ProxyView {
    fn me(&self) -> ProxyId {
        self.me
    }

    fn options(&self, g: &GroupAddr) -> Option<GroupOptions> {
        self.registry
            .get(g)
            .filter(|r| !r.withdrawn && self.served(g))
            .map(|r| r.options)
    }

    fn raps(&self, g: &GroupAddr) -> &[ProxyId] {
        self.raps.get(g)
    }

    fn target_allowed(&self, g: &GroupAddr, t: &TargetAddr) -> bool {
        view::target_allowed(g, t, &self.anycast, |ip| self.by_addr.contains_key(&ip))
    }

    fn peers(&self) -> &[ProxyId] {
        &self.peers
    }

    fn tables(&self) -> &Tables {
        &self.base
    }

    fn proxy(&self, id: ProxyId) -> Option<ProxyInfo> {
        self.proxies.get(&id).copied()
    }

    fn proxy_by_addr(&self, ip: Ipv4Addr) -> Option<ProxyInfo> {
        self.by_addr
            .get(&ip)
            .and_then(|id| self.proxies.get(id))
            .copied()
    }
}

/// A message ready to be written: where from, where to, sealed or not.
#[derive(Clone, Debug)]
struct Queued {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    msg: Message,
    sealed: bool,
}

/// One proxy's control plane. See the module docs for the driving loop.
#[derive(Debug)]
pub struct ProxyControl {
    cfg: ProxyConfig,
    gate: Gate,
    sealer: Sealer,
    membership: Membership,
    view: ProxyView,
    jap: Jap,
    rap: Rap,
    iap: Iap,
    prober: Prober,
    flooded: Flooded,
    queue: VecDeque<Queued>,
    updates: VecDeque<Update>,
    specs: BTreeMap<GroupAddr, GroupSpec>,
    dirty_groups: BTreeSet<GroupAddr>,
    all_groups_dirty: bool,
    tables: Arc<Tables>,
    tables_dirty: bool,
    /// RTT entries taken into the base but not yet published.
    pending_rtt: Option<Vec<pias_dataplane::tables::RttEntry>>,
    version: u64,
    last_publish: Option<Instant>,
    last_tables_error: Option<TablesError>,
    refutations_seen: u64,
    counters: ProxyCounters,
}

impl ProxyControl {
    /// A proxy's control plane starting at `now` with the proxy-group keys.
    pub fn new(cfg: ProxyConfig, keys: KeyRing, now: Instant) -> Result<Self, ConfigError> {
        let m = &cfg.membership;
        if !view::is_unicast_host(m.addr) || cfg.anycast.iter().any(|p| p.contains(m.addr)) {
            return Err(ConfigError::BadAddress(m.addr));
        }
        if !(1..=crate::rendezvous::MAX_RAPS).contains(&cfg.raps_per_group) {
            return Err(ConfigError::RapsPerGroup(cfg.raps_per_group));
        }
        let me = m.me;
        let membership = Membership::new(m.clone(), now)?;
        let mut gate = Gate::new(
            GateConfig {
                me: Some(me),
                ..cfg.gate
            },
            keys,
        );
        gate.set_operator_key(cfg.operator_key);
        let mut view = ProxyView {
            me,
            anycast: cfg.anycast.clone(),
            registry: GroupRegistry::default(),
            rendezvous: Rendezvous::new(),
            raps: RapTable::new(cfg.raps_per_group),
            proxies: BTreeMap::new(),
            by_addr: HashMap::new(),
            cluster_count: HashMap::new(),
            peers: Vec::new(),
            base: Tables::default(),
            base_dirty: true,
            rtt_dirty: false,
            base_urgent: false,
            last_base: None,
        };
        let me_info = ProxyInfo {
            id: me,
            addr: m.addr,
            cluster: m.cluster,
            up: true,
        };
        view.insert_proxy(me_info);
        view.rendezvous.insert(me);
        view.rebuild_base(None)?;
        let tables = Arc::new(view.base.with_groups(&[], 0)?);
        let mut jap = Jap::new(cfg.jap.clone());
        jap.set_session_secret(SessionSecret::derive(gate.keys(), me, m.incarnation));
        let mut cp = ProxyControl {
            sealer: Sealer::new(me, m.incarnation),
            jap,
            rap: Rap::new(cfg.rap.clone()),
            iap: Iap::new(cfg.iap.clone()),
            prober: Prober::new(cfg.prober.clone(), me, m.cluster, now),
            flooded: Flooded::new(cfg.flooded.clone()),
            gate,
            membership,
            view,
            queue: VecDeque::new(),
            updates: VecDeque::new(),
            specs: BTreeMap::new(),
            dirty_groups: BTreeSet::new(),
            all_groups_dirty: false,
            tables: tables.clone(),
            tables_dirty: false,
            pending_rtt: None,
            version: 0,
            last_publish: None,
            last_tables_error: None,
            refutations_seen: 0,
            counters: ProxyCounters::default(),
            cfg,
        };
        cp.updates.push_back(Update::Tables(tables));
        cp.pump(now);
        Ok(cp)
    }

    // ----- inputs ------------------------------------------------------

    /// A control datagram received from `src` (UDP source). `wall` is the
    /// wall clock, for the freshness of target requests.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        wall: UnixTime,
        src: SocketAddrV4,
        bytes: &[u8],
    ) {
        match self
            .gate
            .open_with_sessions(wall, src, bytes, &self.view.registry, &self.jap)
        {
            Ok(Accepted::Proxy { header, msg }) => self.dispatch(now, header, src, &msg),
            Ok(Accepted::Target(msg)) => {
                self.jap.handle_request(now, wall, &self.view, src, &msg);
            }
            Ok(Accepted::Session(r)) => {
                self.jap.handle_session_refresh(now, &self.view, src, &r);
            }
            Ok(Accepted::Operator(reg)) => self.apply_registration(now, &reg),
            Ok(Accepted::Reply(_)) => self.counters.replies_ignored += 1,
            Err(reason @ (Reject::UnknownSession | Reject::SessionExpired)) => {
                // Tell the target to sign again rather than retry: the
                // nack is shorter than the request and carries nothing.
                if let Ok((_, Message::SessionRefresh(r))) = decode_unauthenticated(bytes) {
                    let why = if reason == Reject::SessionExpired {
                        NackReason::SessionExpired
                    } else {
                        NackReason::SessionUnknown
                    };
                    self.jap.nack_session(src, &r, why);
                }
            }
            Err(_) => {}
        }
        self.pump(now);
    }

    /// An event from a worker ([`Up::Retired`] is ignored: the driver
    /// drops it).
    pub fn handle_event(&mut self, now: Instant, ev: &Up) {
        match ev {
            Up::Retired(_) => return,
            Up::IapMiss { group, rap } => self.iap.handle_miss(now, &self.view, group, *rap),
            Up::RapChose { group, jap, iap } => {
                self.refresh_base(now, false);
                self.rap.handle_chose(now, &self.view, group, *jap, *iap);
            }
            Up::JapNoTarget { group, iap } => {
                self.jap.handle_no_target(now, &self.view, group, *iap)
            }
            Up::TargetSilent { group, target } => self.jap.handle_silent(now, group, target),
        }
        self.pump(now);
    }

    /// The result of a health probe from [`Self::poll_probe`].
    pub fn handle_probe_result(&mut self, now: Instant, id: ProbeId, alive: bool) {
        self.jap.handle_probe_result(now, id, alive);
        self.pump(now);
    }

    /// A registration from local configuration (trusted: no signature), or
    /// one the driver verified. Serials order registrations as for signed
    /// ones.
    pub fn apply_registration(&mut self, now: Instant, reg: &GroupRegister) {
        match self.view.registry.apply(reg) {
            Ok(change) => self.group_changed(now, reg.group, change),
            Err(
                RegistryError::StaleSerial { .. }
                | RegistryError::InvalidOwnerKey
                | RegistryError::Full,
            ) => self.counters.registrations_refused += 1,
        }
        self.pump(now);
    }

    /// Set a group's overload signal at this JAP (seed §3.3).
    pub fn set_overloaded(&mut self, now: Instant, g: &GroupAddr, overloaded: bool) {
        self.jap.set_overloaded(now, g, overloaded);
        self.pump(now);
    }

    /// Run the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.membership.poll_timeout()) {
            self.membership.handle_timeout(now);
        }
        if due(self.prober.poll_timeout()) {
            self.prober.handle_timeout(now);
        }
        if due(self.jap.poll_timeout()) {
            self.jap.handle_timeout(now, &self.view);
        }
        if due(self.rap.poll_timeout()) {
            self.rap.handle_timeout(now);
        }
        if due(self.iap.poll_timeout()) {
            self.iap.handle_timeout(now, &self.view);
        }
        if due(self.flooded.poll_timeout()) {
            self.flooded.handle_timeout(now);
        }
        self.pump(now);
    }

    // ----- outputs -----------------------------------------------------

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let publish = if self.tables_dirty {
            Some(self.publish_at())
        } else {
            // A stale proxy list is rebuilt (and published) when due.
            self.base_due(self.last_publish.unwrap_or(Instant::ZERO))
        };
        [
            self.membership.poll_timeout(),
            self.prober.poll_timeout(),
            self.jap.poll_timeout(),
            self.rap.poll_timeout(),
            self.iap.poll_timeout(),
            self.flooded.poll_timeout(),
            publish,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next datagram, written into `buf` (at least
    /// [`crate::wire::MAX_DATAGRAM`] bytes).
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        while let Some(q) = self.queue.pop_front() {
            let r = if q.sealed {
                self.sealer
                    .seal(self.gate.keys(), &q.msg, q.src, buf)
                    .map_err(|_| ())
            } else {
                q.msg.emit(None, buf).map_err(|_| ())
            };
            match r {
                Ok(len) => {
                    return Some(Transmit {
                        src: q.src,
                        dst: q.dst,
                        len,
                    })
                }
                Err(()) => self.counters.emit_failed += 1,
            }
        }
        None
    }

    /// Datagrams waiting.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The next change for the workers.
    pub fn poll_update(&mut self) -> Option<Update> {
        self.updates.pop_front()
    }

    /// The next health probe to run.
    pub fn poll_probe(&mut self) -> Option<HealthProbe> {
        self.jap.poll_probe()
    }

    // ----- inspection --------------------------------------------------

    /// This proxy.
    pub fn me(&self) -> ProxyId {
        self.view.me
    }

    /// The last published table snapshot.
    pub fn tables(&self) -> &Arc<Tables> {
        &self.tables
    }

    /// The description the last snapshot was built from.
    pub fn static_state(&self) -> StaticState {
        self.tables.to_static_state()
    }

    /// The last table build error, if a build ever failed.
    pub fn last_tables_error(&self) -> Option<&TablesError> {
        self.last_tables_error.as_ref()
    }

    /// Membership.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The gate (its counters: every refused datagram by reason).
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The gate, to rotate keys or raise replay floors.
    pub fn gate_mut(&mut self) -> &mut Gate {
        &mut self.gate
    }

    /// The group registry.
    pub fn registry(&self) -> &GroupRegistry {
        &self.view.registry
    }

    /// The JAP role.
    pub fn jap(&self) -> &Jap {
        &self.jap
    }

    /// The RAP role.
    pub fn rap(&self) -> &Rap {
        &self.rap
    }

    /// The IAP role.
    pub fn iap(&self) -> &Iap {
        &self.iap
    }

    /// Proximity.
    pub fn prober(&self) -> &Prober {
        &self.prober
    }

    /// RAP-less groups.
    pub fn flooded(&self) -> &Flooded {
        &self.flooded
    }

    /// A group's RAPs as this proxy sees them.
    pub fn raps(&self, g: &GroupAddr) -> &[ProxyId] {
        self.view.raps.get(g)
    }

    /// The composition's counters.
    pub fn counters(&self) -> &ProxyCounters {
        &self.counters
    }

    /// The settings.
    pub fn config(&self) -> &ProxyConfig {
        &self.cfg
    }

    // ----- internals ---------------------------------------------------

    fn my_addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.cfg.membership.addr, self.cfg.membership.port)
    }

    /// Rebuild the proxies-and-RTT snapshot the machines read if it is
    /// stale: at most once per `base_interval`, unless `force` or a proxy
    /// went down (its `up` flag must reach the dataplane's choices soon).
    /// Returns true when the proxy list was rebuilt (every group spec must
    /// then be recomputed); an RTT-only change leaves the groups alone and
    /// is published with [`Tables::with_rtt`].
    fn refresh_base(&mut self, now: Instant, force: bool) -> bool {
        let due = self
            .view
            .last_base
            .map_or(true, |t| t + self.cfg.base_interval <= now);
        if !(force || due || self.view.base_urgent) {
            return false;
        }
        if !self.view.base_dirty && self.view.rtt_dirty {
            self.view.last_base = Some(now);
            self.view.rtt_dirty = false;
            let present = &self.view.cluster_count;
            let rtt = self.prober.entries(|c| present.contains_key(&c));
            match self.view.base.with_rtt(&rtt, 0) {
                Ok(b) => {
                    self.view.base = b;
                    self.pending_rtt = Some(rtt);
                    self.tables_dirty = true;
                }
                Err(e) => {
                    self.counters.tables_invalid += 1;
                    self.last_tables_error = Some(e);
                }
            }
            return false;
        }
        if self.view.base_dirty {
            self.view.last_base = Some(now);
            self.view.base_urgent = false;
            let rtt = core::mem::take(&mut self.view.rtt_dirty).then_some(&self.prober);
            match self.view.rebuild_base(rtt) {
                Ok(left_out) => {
                    self.counters.proxies_left_out = left_out;
                    // Every group may name proxies of the new list.
                    self.all_groups_dirty = true;
                    self.tables_dirty = true;
                    return true;
                }
                Err(e) => {
                    self.counters.tables_invalid += 1;
                    self.last_tables_error = Some(e);
                    self.view.base_dirty = false;
                }
            }
        }
        false
    }

    fn base_due(&self, now: Instant) -> Option<Instant> {
        if !self.view.base_dirty && !self.view.rtt_dirty {
            return None;
        }
        if self.view.base_urgent && self.view.base_dirty {
            return Some(now);
        }
        Some(
            self.view
                .last_base
                .map_or(now, |t| (t + self.cfg.base_interval).max(now)),
        )
    }

    fn dispatch(&mut self, now: Instant, header: ProxyHeader, src: SocketAddrV4, msg: &Message) {
        let from = header.sender;
        match msg {
            Message::Hello(_)
            | Message::Heartbeat(_)
            | Message::Flood(_)
            | Message::FloodAck(_) => {
                self.membership.handle(now, from, src, msg);
            }
            Message::RttProbe(p) => self.prober.handle_probe(from, p),
            Message::RttReply(r) => self.prober.handle_reply(now, r),
            Message::RttAdvert(a) => self.prober.handle_advert(a),
            Message::Report(r) => self.rap.handle_report(now, &self.view, &header, r),
            Message::ReportAck(a) => self.jap.handle_report_ack(now, from, a),
            Message::JapList(l) => self.iap.handle_jap_list(now, &self.view, from, l),
            Message::Invalidate(i) => self.iap.handle_invalidate(now, &self.view, from, i),
            Message::RapQuery(q) => {
                self.refresh_base(now, false);
                self.rap.handle_query(now, &self.view, from, q);
            }
            Message::JapAnnounce(a) => self.flooded.handle_announce(now, &self.view, &header, a),
            _ => self.counters.unexpected += 1,
        }
    }

    fn group_changed(&mut self, now: Instant, g: GroupAddr, change: GroupChange) {
        match self.view.options(&g) {
            Some(o) if !o.rapless => {
                let rz = &self.view.rendezvous;
                self.view.raps.insert(g, rz);
            }
            _ => self.view.raps.remove(&g),
        }
        self.dirty_groups.insert(g);
        // A new group has no state in any machine yet: only a change or a
        // withdrawal needs the machines to look again (a scan of their
        // groups, so that loading a million registrations stays linear).
        if change != GroupChange::Added {
            self.view_changed(now);
        }
    }

    fn view_changed(&mut self, now: Instant) {
        self.jap.handle_view_change(now, &self.view);
        self.rap.handle_view_change(&self.view);
        self.flooded.handle_view_change(&self.view);
    }

    fn on_membership_event(&mut self, ev: Event) -> bool {
        let me = self.view.me;
        match ev {
            Event::ProxyUp(info) => {
                let v = &mut self.view;
                // A down proxy that held this address is gone for good.
                if let Some(&other) = v.by_addr.get(&info.addr) {
                    if other != info.id && v.proxies.get(&other).is_some_and(|p| !p.up) {
                        v.remove_proxy(other);
                    }
                }
                v.insert_proxy(ProxyInfo { up: true, ..info });
                v.rendezvous.insert(info.id);
                if info.id != me {
                    if let Err(i) = v.peers.binary_search(&info.id) {
                        v.peers.insert(i, info.id);
                    }
                }
                v.base_dirty = true;
                self.prober.handle_proxy_up(&info);
                let changed = self.view.raps.proxy_up(info.id);
                let any = !changed.is_empty();
                self.dirty_groups.extend(changed);
                any
            }
            Event::ProxyDown(id) => {
                if id == me {
                    return false;
                }
                let v = &mut self.view;
                if let Some(p) = v.proxies.get_mut(&id) {
                    p.up = false;
                }
                v.rendezvous.remove(id);
                if let Ok(i) = v.peers.binary_search(&id) {
                    v.peers.remove(i);
                }
                v.base_dirty = true;
                v.base_urgent = true;
                let down = v.proxies.values().filter(|p| !p.up).count();
                if down > self.cfg.max_down_proxies {
                    let victims: Vec<ProxyId> = v
                        .proxies
                        .values()
                        .filter(|p| !p.up && p.id != id)
                        .take(down - self.cfg.max_down_proxies)
                        .map(|p| p.id)
                        .collect();
                    for x in victims {
                        v.remove_proxy(x);
                    }
                }
                self.prober.handle_proxy_down(id);
                self.jap.handle_proxy_down(id);
                self.rap.handle_proxy_down(id);
                self.flooded.handle_proxy_down(id);
                self.iap.handle_proxy_down(id);
                let changed = self.view.raps.proxy_down(id, &self.view.rendezvous);
                let any = !changed.is_empty();
                self.dirty_groups.extend(changed);
                any
            }
        }
    }

    /// Move everything the machines produced to where it goes: events,
    /// local deliveries, the transmit queue, cache updates, table
    /// publication.
    fn pump(&mut self, now: Instant) {
        let mut rounds = 0;
        loop {
            rounds += 1;
            let mut raps_changed = false;
            while let Some(ev) = self.membership.poll_event() {
                raps_changed |= self.on_membership_event(ev);
            }
            let refuted = self.membership.counters().refutations;
            if refuted != self.refutations_seen {
                // Declared down by someone (wrongly): every RAP and IAP
                // purged this proxy as a JAP.
                self.refutations_seen = refuted;
                self.jap.handle_refuted(now);
            }
            if raps_changed {
                self.view_changed(now);
            }
            if self.prober.take_changed() {
                self.view.rtt_dirty = true;
            }
            while let Some(t) = self.membership.poll_transmit() {
                let src = self.my_addr();
                self.enqueue(Queued {
                    src,
                    dst: t.dest,
                    msg: t.msg,
                    sealed: true,
                });
            }
            let mut local = Vec::new();
            let mut outs = Vec::new();
            while let Some(o) = self.prober.poll_transmit() {
                outs.push(o);
            }
            while let Some(o) = self.jap.poll_transmit() {
                outs.push(o);
            }
            while let Some(o) = self.rap.poll_transmit() {
                outs.push(o);
            }
            while let Some(o) = self.iap.poll_transmit() {
                outs.push(o);
            }
            for o in outs {
                self.route(o, &mut local);
            }
            while let Some(u) = self.iap.poll_update() {
                self.updates.push_back(u.into());
            }
            let header = ProxyHeader {
                sender: self.view.me,
                key_id: KeyId(0),
                epoch: self.membership.incarnation(),
                seq: 0,
            };
            let src = self.my_addr();
            let more = !local.is_empty();
            for msg in local {
                self.counters.loopback += 1;
                self.dispatch(now, header, src, &msg);
            }
            // Local deliveries may produce more; a few rounds settle it
            // (JAP → RAP → IAP is the longest chain).
            if !more || rounds >= 8 {
                break;
            }
        }
        self.dirty_groups.extend(self.jap.take_dirty());
        self.dirty_groups.extend(self.rap.take_dirty());
        self.dirty_groups.extend(self.flooded.take_dirty());
        if !self.dirty_groups.is_empty()
            || self.all_groups_dirty
            || self.base_due(now).is_some_and(|t| t <= now)
        {
            self.tables_dirty = true;
        }
        if self.tables_dirty && self.publish_at() <= now {
            self.publish(now);
        }
    }

    fn route(&mut self, o: Outgoing, local: &mut Vec<Message>) {
        let me = self.view.me;
        let port = self.cfg.membership.port;
        let (dst, src, sealed) = match o.dest {
            Dest::Proxy(p) if p == me => {
                local.push(o.msg);
                return;
            }
            Dest::ProxyAddr(ip) if ip == self.cfg.membership.addr => {
                local.push(o.msg);
                return;
            }
            Dest::Proxy(p) => match self.view.proxies.get(&p) {
                Some(info) => (SocketAddrV4::new(info.addr, port), self.my_addr(), true),
                None => {
                    self.counters.unknown_dest += 1;
                    return;
                }
            },
            Dest::ProxyAddr(ip) => (SocketAddrV4::new(ip, port), self.my_addr(), true),
            Dest::Target { from, to } => (to, from, false),
        };
        self.enqueue(Queued {
            src,
            dst,
            msg: o.msg,
            sealed,
        });
    }

    fn enqueue(&mut self, q: Queued) {
        if self.queue.len() >= self.cfg.max_queue {
            self.counters.queue_full += 1;
            return;
        }
        self.queue.push_back(q);
    }

    fn publish_at(&self) -> Instant {
        match self.last_publish {
            Some(t) => t + self.cfg.publish_interval,
            None => Instant::ZERO,
        }
    }

    fn spec(&self, g: &GroupAddr, o: GroupOptions, listed: &HashMap<ProxyId, bool>) -> GroupSpec {
        let me = self.view.me;
        let mut s = GroupSpec::new(*g, o);
        if !o.rapless {
            s.raps = self
                .view
                .raps
                .get(g)
                .iter()
                .copied()
                .filter(|p| listed.get(p) == Some(&true))
                .collect();
            if s.raps.contains(&me) {
                s.japs = self.rap.view_japs(&self.view, g);
                s.japs.retain(|j| listed.contains_key(&j.jap));
            }
        } else {
            s.flooded = self.flooded.list(&self.view, g);
            s.flooded.retain(|j| listed.contains_key(&j.jap));
        }
        s.targets = self.jap.local_targets(g);
        s.targets.retain(|t| self.view.target_allowed(g, &t.addr));
        s
    }

    fn publish(&mut self, now: Instant) {
        self.refresh_base(now, false);
        if let Some(rtt) = self.pending_rtt.take() {
            if !self.all_groups_dirty && self.dirty_groups.is_empty() {
                // Only the RTT matrix changed: keep the groups.
                self.version += 1;
                match self.tables.with_rtt(&rtt, self.version) {
                    Ok(t) => {
                        let t = Arc::new(t);
                        self.tables = t.clone();
                        self.updates.push_back(Update::Tables(t));
                        self.counters.publications += 1;
                    }
                    Err(e) => {
                        self.counters.tables_invalid += 1;
                        self.last_tables_error = Some(e);
                    }
                }
                self.tables_dirty = false;
                self.last_publish = Some(now);
                return;
            }
        }
        self.build_specs();
        // A group whose RAPs are all too new for the proxy list: rebuild
        // the list now rather than publish a group without RAP.
        let starved = self.specs.values().any(|s| {
            !s.options.rapless && s.raps.is_empty() && !self.view.raps.get(&s.group).is_empty()
        });
        if starved && self.refresh_base(now, true) {
            self.build_specs();
        }
        self.version += 1;
        let specs: Vec<GroupSpec> = self.specs.values().cloned().collect();
        match self.view.base.with_groups(&specs, self.version) {
            Ok(t) => {
                let t = Arc::new(t);
                self.tables = t.clone();
                self.updates.push_back(Update::Tables(t));
                self.counters.publications += 1;
            }
            Err(e) => {
                self.counters.tables_invalid += 1;
                self.last_tables_error = Some(e);
            }
        }
        self.tables_dirty = false;
        self.last_publish = Some(now);
    }

    /// Recompute the specs of the dirty groups (all of them when
    /// `all_groups_dirty`).
    fn build_specs(&mut self) {
        let listed: HashMap<ProxyId, bool> = self
            .view
            .base
            .proxies()
            .iter()
            .map(|p| (p.id, p.up))
            .collect();
        let groups: Vec<GroupAddr> = if self.all_groups_dirty {
            self.specs.clear();
            self.view.registry.iter().map(|(g, _)| *g).collect()
        } else {
            core::mem::take(&mut self.dirty_groups)
                .into_iter()
                .collect()
        };
        for g in groups {
            match self.view.options(&g) {
                Some(o) => {
                    let s = self.spec(&g, o, &listed);
                    self.specs.insert(g, s);
                }
                None => {
                    self.specs.remove(&g);
                }
            }
        }
        self.dirty_groups.clear();
        self.all_groups_dirty = false;
    }
}

#[cfg(test)]
mod tests;
