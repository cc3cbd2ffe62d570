//! Proximity between clusters (seed §3.5): RAPs choose JAPs, and IAPs
//! choose among a group's RAPs, by the RTT between clusters.
//!
//! - [`RttMatrix`]: symmetric RTTs between clusters.
//! - [`Prober`]: the sans-IO machine that fills it. The seed's "simple,
//!   brute-force approach whereby every AP occasionally pings every other
//!   AP and advertises the minimum measured round trip time", reduced to
//!   what RAPs need (the distance between clusters, not proxies):
//!   - **Who probes.** One proxy per cluster, the *cluster's prober*: its
//!     live proxy with the lowest id (every proxy computes the same one from
//!     membership; when it dies the next takes over).
//!   - **Probes.** Every `interval` the prober sends an [`RttProbe`] to one
//!     proxy (the lowest live id) of every other cluster; any proxy answers
//!     an [`RttProbe`] with an [`RttReply`] echoing the nonce. The RTT of a
//!     reply is its arrival time minus the probe's send time (both on this
//!     proxy's clock; the nonce only matches them). Each peer cluster keeps
//!     the last `window` samples; its RTT is their minimum (queueing only
//!     adds delay). Replies not back within `probe_timeout` are forgotten.
//!   - **Adverts.** After a round, the prober advertises its cluster's row
//!     ([`RttAdvert`]) to every live proxy: the entries that are new or
//!     moved by more than `change_pct` % since last advertised, and the
//!     whole row every `advert_refresh` and to every proxy that comes up.
//!     Rows longer than 160 entries go in several datagrams with the same
//!     version. A new prober continues above the highest version its
//!     cluster advertised before.
//!   - **Merging.** Receivers apply an advert unless an advert of a
//!     higher version from the same origin was seen (chunks of one row share
//!     a version, so they all apply); the matrix keeps both directions of a
//!     pair and uses the smaller one known.
//!
//!   Cost per interval: `C − 1` probes and replies per cluster (`C` = number
//!   of clusters), and adverts of changed entries only, so with stable
//!   RTTs mostly the periodic refresh: `C` rows to every proxy per
//!   `advert_refresh`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use core::time::Duration;

use hashbrown::HashMap;
use pias_dataplane::types::{ClusterId, ProxyId, ProxyInfo};

use crate::rendezvous::proxy_hash;
use crate::time::Instant;
use crate::transmit::Outgoing;
use crate::wire::{
    Message, RttAdvert, RttEntry as WireRttEntry, RttProbe, RttReply, MAX_RTT_ENTRIES,
};

/// Symmetric RTTs between clusters, in microseconds. The RTT of a cluster
/// to itself is 0.
///
/// Each unordered pair keeps the two directed measurements (by the lower
/// cluster id, by the higher one; `u32::MAX` = not measured); the pair's
/// RTT is the smaller one known. Clusters are numbered densely in the
/// order they first appear and the pairs stored as a lower triangle, so a
/// full matrix of `C` clusters costs `4·C·(C − 1)` bytes (0.4 MB at 333
/// clusters, 100 MB at 5 000).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RttMatrix {
    index: HashMap<ClusterId, u32>,
    ids: Vec<ClusterId>,
    cells: Vec<[u32; 2]>,
    measured: usize,
}

const UNMEASURED: u32 = u32::MAX;

/// Cell of the pair of dense indices `i ≠ j`.
fn cell(i: u32, j: u32) -> usize {
    let (lo, hi) = if i < j { (i, j) } else { (j, i) };
    let hi = hi as usize;
    hi * (hi - 1) / 2 + lo as usize
}

impl RttMatrix {
    /// An empty matrix.
    pub fn new() -> Self {
        Self::default()
    }

    fn idx(&mut self, c: ClusterId) -> u32 {
        if let Some(&i) = self.index.get(&c) {
            return i;
        }
        let i = self.ids.len() as u32;
        // The triangle grows by one row per cluster: 0..i.
        self.index.insert(c, i);
        self.ids.push(c);
        // Row i: pairs (0..i, i).
        self.cells
            .resize(self.cells.len() + i as usize, [UNMEASURED, UNMEASURED]);
        i
    }

    fn get_cell(&self, a: ClusterId, b: ClusterId) -> Option<&[u32; 2]> {
        let (i, j) = (*self.index.get(&a)?, *self.index.get(&b)?);
        self.cells.get(cell(i, j))
    }

    /// Record the RTT between two clusters (both directions).
    pub fn set(&mut self, a: ClusterId, b: ClusterId, rtt_us: u32) {
        if a != b {
            self.set_directed(a, b, rtt_us);
            self.set_directed(b, a, rtt_us);
        }
    }

    /// Clusters with a row in the matrix.
    pub fn clusters(&self) -> usize {
        self.ids.len()
    }

    /// Whether `c` has a row.
    pub fn has_cluster(&self, c: ClusterId) -> bool {
        self.index.contains_key(&c)
    }

    /// Record the RTT cluster `origin` measured to `peer`; returns whether
    /// the pair's RTT changed.
    pub fn set_directed(&mut self, origin: ClusterId, peer: ClusterId, rtt_us: u32) -> bool {
        if origin == peer {
            return false;
        }
        let before = self.get(origin, peer);
        let (i, j) = (self.idx(origin), self.idx(peer));
        let Some(c) = self.cells.get_mut(cell(i, j)) else {
            return false;
        };
        let was = c[0] != UNMEASURED || c[1] != UNMEASURED;
        c[usize::from(origin > peer)] = rtt_us;
        if !was {
            self.measured += 1;
        }
        self.get(origin, peer) != before
    }

    /// The RTT between two clusters, if measured.
    pub fn get(&self, a: ClusterId, b: ClusterId) -> Option<u32> {
        if a == b {
            return Some(0);
        }
        self.get_cell(a, b)
            .map(|d| d[0].min(d[1]))
            .filter(|r| *r != UNMEASURED)
    }

    /// Every measured pair `(a, b, rtt)`, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (ClusterId, ClusterId, u32)> + '_ {
        self.ids.iter().enumerate().flat_map(move |(hi, &b)| {
            self.ids
                .iter()
                .take(hi)
                .enumerate()
                .filter_map(move |(lo, &a)| {
                    let d = self.cells.get(cell(lo as u32, hi as u32))?;
                    let r = d[0].min(d[1]);
                    (r != UNMEASURED).then_some((a, b, r))
                })
        })
    }

    /// Forget the RTTs of a cluster (its last proxy went down).
    pub fn remove_cluster(&mut self, c: ClusterId) {
        let Some(&i) = self.index.get(&c) else { return };
        for j in 0..self.ids.len() as u32 {
            if j != i {
                if let Some(d) = self.cells.get_mut(cell(i, j)) {
                    if d[0] != UNMEASURED || d[1] != UNMEASURED {
                        self.measured -= 1;
                    }
                    *d = [UNMEASURED, UNMEASURED];
                }
            }
        }
    }

    /// Number of measured pairs.
    pub fn len(&self) -> usize {
        self.measured
    }

    /// True when nothing is measured.
    pub fn is_empty(&self) -> bool {
        self.measured == 0
    }
}

/// Settings of the prober.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProberConfig {
    /// Interval between probe rounds.
    pub interval: Duration,
    /// Samples kept per peer cluster (the RTT is their minimum).
    pub window: usize,
    /// A reply later than this is not counted.
    pub probe_timeout: Duration,
    /// Most probes in flight.
    pub max_pending: usize,
    /// The whole row is advertised this often.
    pub advert_refresh: Duration,
    /// Entries that moved by more than this (percent) are advertised at
    /// once.
    pub change_pct: u32,
    /// Most clusters in the matrix (memory `4·C²` bytes: 134 MB at the
    /// default 5 790, the most whose full mesh fits the dataplane's
    /// `MAX_RTT_ENTRIES`; seed §3.4 counts about 5 000 POPs). Entries
    /// naming a further cluster are dropped (`clusters_full`).
    pub max_clusters: usize,
}

impl Default for ProberConfig {
    fn default() -> Self {
        ProberConfig {
            interval: Duration::from_secs(30),
            window: 8,
            probe_timeout: Duration::from_secs(5),
            max_pending: 8192,
            advert_refresh: Duration::from_secs(600),
            change_pct: 10,
            max_clusters: 5790,
        }
    }
}

/// What the prober did and refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProberCounters {
    /// Probes sent.
    pub probes: u64,
    /// Probes answered.
    pub replies_sent: u64,
    /// Replies matched to a probe.
    pub replies: u64,
    /// Replies matching no probe in flight (late, duplicate or forged).
    pub replies_unmatched: u64,
    /// Probes not sent: too many in flight.
    pub pending_full: u64,
    /// Advert datagrams queued.
    pub adverts_sent: u64,
    /// Advert datagrams received.
    pub adverts: u64,
    /// Advert entries applied (newer version).
    pub entries_applied: u64,
    /// Advert entries refused by the cluster cap.
    pub clusters_full: u64,
}

/// The proximity machine of one proxy (see the module docs). Call order:
/// `handle_*`, then drain [`Prober::poll_transmit`]; check
/// [`Prober::take_changed`]; [`Prober::handle_timeout`] at
/// [`Prober::poll_timeout`].
#[derive(Clone, Debug)]
pub struct Prober {
    cfg: ProberConfig,
    me: ProxyId,
    cluster: ClusterId,
    /// Live proxies per cluster.
    clusters: BTreeMap<ClusterId, BTreeSet<ProxyId>>,
    /// The cluster of each live proxy.
    cluster_of: HashMap<ProxyId, ClusterId>,
    /// Live proxies other than this one.
    peers: BTreeSet<ProxyId>,
    samples: BTreeMap<ClusterId, VecDeque<u32>>,
    advertised: BTreeMap<ClusterId, u32>,
    pending: HashMap<u64, (ClusterId, Instant)>,
    next_nonce: u64,
    next_round: Instant,
    /// An advert of the row is due after the current round's replies.
    advert_at: Option<Instant>,
    next_refresh: Instant,
    version: u32,
    /// Highest version seen per origin.
    versions: HashMap<ClusterId, u32>,
    matrix: RttMatrix,
    changed: bool,
    out: VecDeque<Outgoing>,
    counters: ProberCounters,
}

impl Prober {
    /// A prober for proxy `me` in `cluster`, starting at `now`. The first
    /// round is offset by a hash of `me` within one interval, so that
    /// probers started together do not probe in step.
    pub fn new(cfg: ProberConfig, me: ProxyId, cluster: ClusterId, now: Instant) -> Self {
        let iv = cfg.interval.as_nanos().max(1) as u64;
        let offset = Duration::from_nanos(proxy_hash(me) % iv);
        let mut clusters = BTreeMap::new();
        clusters.insert(cluster, BTreeSet::from([me]));
        Prober {
            next_round: now + offset,
            next_refresh: now + offset + cfg.advert_refresh,
            cfg,
            me,
            cluster,
            clusters,
            cluster_of: HashMap::from([(me, cluster)]),
            peers: BTreeSet::new(),
            samples: BTreeMap::new(),
            advertised: BTreeMap::new(),
            pending: HashMap::new(),
            next_nonce: 1,
            advert_at: None,
            version: 0,
            versions: HashMap::new(),
            matrix: RttMatrix::new(),
            changed: false,
            out: VecDeque::new(),
            counters: ProberCounters::default(),
        }
    }

    /// The counters.
    pub fn counters(&self) -> &ProberCounters {
        &self.counters
    }

    /// The matrix.
    pub fn matrix(&self) -> &RttMatrix {
        &self.matrix
    }

    /// The matrix changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        core::mem::take(&mut self.changed)
    }

    /// Whether this proxy probes for its cluster.
    pub fn is_prober(&self) -> bool {
        self.clusters
            .get(&self.cluster)
            .and_then(|s| s.first())
            .is_some_and(|p| *p == self.me)
    }

    /// This cluster's measured RTT to `peer` (minimum over the window).
    pub fn measured(&self, peer: ClusterId) -> Option<u32> {
        self.samples
            .get(&peer)
            .and_then(|s| s.iter().min().copied())
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Outgoing> {
        self.out.pop_front()
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(match self.advert_at {
            Some(a) => a.min(self.next_round),
            None => self.next_round,
        })
    }

    /// Membership: a proxy is live (possibly in a new cluster).
    pub fn handle_proxy_up(&mut self, p: &ProxyInfo) {
        let was_new = self.peers.insert(p.id) || p.id == self.me;
        if let Some(old) = self.cluster_of.insert(p.id, p.cluster) {
            if old != p.cluster {
                if let Some(s) = self.clusters.get_mut(&old) {
                    s.remove(&p.id);
                    if s.is_empty() {
                        self.clusters.remove(&old);
                    }
                }
            }
        }
        self.clusters.entry(p.cluster).or_default().insert(p.id);
        if p.id == self.me {
            self.peers.remove(&p.id);
        }
        if was_new && p.id != self.me && self.is_prober() && !self.advertised.is_empty() {
            // A new proxy needs the matrix: send it our row.
            let row: Vec<WireRttEntry> = self
                .advertised
                .iter()
                .map(|(c, r)| WireRttEntry {
                    peer: *c,
                    rtt_us: *r,
                })
                .collect();
            self.send_row(&row, Some(p.id));
        }
    }

    /// Membership: a proxy is down.
    pub fn handle_proxy_down(&mut self, p: ProxyId) {
        self.peers.remove(&p);
        if let Some(c) = self.cluster_of.remove(&p) {
            if let Some(s) = self.clusters.get_mut(&c) {
                s.remove(&p);
                if s.is_empty() {
                    self.clusters.remove(&c);
                }
            }
        }
    }

    /// A probe from proxy `from`: answer it.
    pub fn handle_probe(&mut self, from: ProxyId, p: &RttProbe) {
        self.counters.replies_sent += 1;
        self.out.push_back(Outgoing::to_proxy(
            from,
            Message::RttReply(RttReply {
                cluster: self.cluster,
                nonce: p.nonce,
            }),
        ));
    }

    /// A reply to one of our probes.
    pub fn handle_reply(&mut self, now: Instant, r: &RttReply) {
        let Some((c, sent)) = self.pending.remove(&r.nonce) else {
            self.counters.replies_unmatched += 1;
            return;
        };
        if c != r.cluster || sent + self.cfg.probe_timeout < now {
            self.counters.replies_unmatched += 1;
            return;
        }
        self.counters.replies += 1;
        let us = u32::try_from(now.saturating_since(sent).as_micros())
            .unwrap_or(u32::MAX)
            .max(1);
        let s = self.samples.entry(c).or_default();
        s.push_back(us);
        while s.len() > self.cfg.window.max(1) {
            s.pop_front();
        }
        let min = s.iter().min().copied().unwrap_or(us);
        let origin = self.cluster;
        self.learn(origin, c, min);
    }

    /// An advert from another proxy. Adverts of one origin are ordered by
    /// version: one older than the newest seen from that origin is
    /// ignored (chunks of one row share a version).
    pub fn handle_advert(&mut self, a: &RttAdvert) {
        self.counters.adverts += 1;
        let top = self.versions.entry(a.origin).or_insert(0);
        if a.version < *top {
            return;
        }
        *top = a.version;
        if a.origin == self.cluster && self.is_prober() {
            // Our own cluster's row from a previous prober: continue above it.
            self.version = self.version.max(a.version);
            return;
        }
        for e in &a.entries {
            self.counters.entries_applied += 1;
            self.learn(a.origin, e.peer, e.rtt_us);
        }
    }

    fn learn(&mut self, origin: ClusterId, peer: ClusterId, rtt: u32) {
        if origin == peer {
            return;
        }
        let new = usize::from(!self.matrix.has_cluster(origin))
            + usize::from(!self.matrix.has_cluster(peer));
        if new > 0 && self.matrix.clusters() + new > self.cfg.max_clusters {
            self.counters.clusters_full += 1;
            return;
        }
        if self.matrix.set_directed(origin, peer, rtt) {
            self.changed = true;
        }
    }

    /// Run a round or send an advert when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.advert_at.is_some_and(|a| a <= now) {
            self.advert_at = None;
            self.advertise(now);
        }
        if self.next_round > now {
            return;
        }
        self.next_round = now + self.cfg.interval;
        let timeout = self.cfg.probe_timeout;
        self.pending.retain(|_, (_, t)| *t + timeout > now);
        if !self.is_prober() {
            return;
        }
        let targets: Vec<(ClusterId, ProxyId)> = self
            .clusters
            .iter()
            .filter(|(c, _)| **c != self.cluster)
            .filter_map(|(c, s)| s.first().map(|p| (*c, *p)))
            .collect();
        for (c, p) in targets {
            if self.pending.len() >= self.cfg.max_pending {
                self.counters.pending_full += 1;
                break;
            }
            let nonce = self.next_nonce;
            self.next_nonce = self.next_nonce.wrapping_add(1);
            self.pending.insert(nonce, (c, now));
            self.counters.probes += 1;
            self.out.push_back(Outgoing::to_proxy(
                p,
                Message::RttProbe(RttProbe {
                    cluster: self.cluster,
                    nonce,
                }),
            ));
        }
        self.advert_at = Some(now + timeout);
    }

    fn advertise(&mut self, now: Instant) {
        let refresh = now >= self.next_refresh;
        let pct = u64::from(self.cfg.change_pct);
        let mut row = Vec::new();
        for c in self.samples.keys().copied().collect::<Vec<_>>() {
            let Some(m) = self.measured(c) else { continue };
            let moved = match self.advertised.get(&c) {
                None => true,
                Some(&a) => u64::from(a.abs_diff(m)) * 100 > pct * u64::from(a),
            };
            if moved || refresh {
                row.push(WireRttEntry { peer: c, rtt_us: m });
            }
        }
        if row.is_empty() {
            return;
        }
        if refresh {
            self.next_refresh = now + self.cfg.advert_refresh;
        }
        let seen = self.versions.get(&self.cluster).copied().unwrap_or(0);
        self.version = self.version.max(seen).wrapping_add(1);
        for e in &row {
            self.advertised.insert(e.peer, e.rtt_us);
        }
        self.send_row(&row, None);
    }

    fn send_row(&mut self, row: &[WireRttEntry], to: Option<ProxyId>) {
        let dests: Vec<ProxyId> = match to {
            Some(p) => vec![p],
            None => self.peers.iter().copied().collect(),
        };
        for chunk in row.chunks(MAX_RTT_ENTRIES) {
            for &p in &dests {
                self.counters.adverts_sent += 1;
                self.out.push_back(Outgoing::to_proxy(
                    p,
                    Message::RttAdvert(RttAdvert {
                        origin: self.cluster,
                        version: self.version,
                        entries: chunk.to_vec(),
                    }),
                ));
            }
        }
    }

    /// The matrix as the dataplane's table wants it, for the clusters in
    /// `present` only (an entry naming a cluster with no proxy in the
    /// table would make it invalid).
    pub fn entries(
        &self,
        present: impl Fn(ClusterId) -> bool,
    ) -> Vec<pias_dataplane::tables::RttEntry> {
        let mut v: Vec<pias_dataplane::tables::RttEntry> = self
            .matrix
            .iter()
            .filter(|(a, b, _)| present(*a) && present(*b))
            .map(|(a, b, rtt_us)| pias_dataplane::tables::RttEntry { a, b, rtt_us })
            .collect();
        v.sort_unstable_by_key(|e| (e.a, e.b));
        v.truncate(pias_dataplane::tables::MAX_RTT_ENTRIES);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_self_zero() {
        let mut m = RttMatrix::new();
        m.set(ClusterId(2), ClusterId(1), 500);
        assert_eq!(m.get(ClusterId(1), ClusterId(2)), Some(500));
        assert_eq!(m.get(ClusterId(2), ClusterId(1)), Some(500));
        assert_eq!(m.get(ClusterId(3), ClusterId(3)), Some(0));
        assert_eq!(m.get(ClusterId(1), ClusterId(3)), None);
        m.remove_cluster(ClusterId(1));
        assert!(m.is_empty());
    }

    proptest::proptest! {
        /// The triangular storage agrees with a plain map of directed
        /// measurements.
        #[test]
        fn matrix_matches_a_naive_model(ops in proptest::collection::vec((0u16..12, 0u16..12, 1u32..1000, proptest::bool::ANY), 0..80)) {
            let mut m = RttMatrix::new();
            let mut naive: std::collections::BTreeMap<(u16, u16), u32> = Default::default();
            for (a, b, r, remove) in ops {
                if remove {
                    m.remove_cluster(ClusterId(a));
                    naive.retain(|&(x, y), _| x != a && y != a);
                } else {
                    m.set_directed(ClusterId(a), ClusterId(b), r);
                    if a != b {
                        naive.insert((a, b), r);
                    }
                }
                for x in 0..12u16 {
                    for y in 0..12u16 {
                        let want = if x == y {
                            Some(0)
                        } else {
                            match (naive.get(&(x, y)), naive.get(&(y, x))) {
                                (None, None) => None,
                                (p, q) => Some((*p.unwrap_or(&u32::MAX)).min(*q.unwrap_or(&u32::MAX))),
                            }
                        };
                        proptest::prop_assert_eq!(m.get(ClusterId(x), ClusterId(y)), want);
                    }
                }
                let pairs: std::collections::BTreeSet<(u16, u16)> =
                    naive.keys().map(|&(x, y)| (x.min(y), x.max(y))).collect();
                proptest::prop_assert_eq!(m.len(), pairs.len());
                proptest::prop_assert_eq!(m.iter().count(), pairs.len());
            }
        }
    }

    #[test]
    fn adverts_cannot_grow_the_matrix_past_its_cap() {
        let cfg = ProberConfig {
            max_clusters: 10,
            ..ProberConfig::default()
        };
        let mut p = Prober::new(cfg, ProxyId(1), ClusterId(0), Instant::ZERO);
        let entries = (1..=160u16)
            .map(|c| WireRttEntry {
                peer: ClusterId(c),
                rtt_us: 5,
            })
            .collect();
        p.handle_advert(&RttAdvert {
            origin: ClusterId(500),
            version: 1,
            entries,
        });
        assert!(p.matrix().clusters() <= 10);
        assert!(p.counters().clusters_full >= 150);
    }

    fn info(id: u32, cluster: u16) -> ProxyInfo {
        ProxyInfo {
            id: ProxyId(id),
            addr: core::net::Ipv4Addr::new(192, 0, 2, id as u8),
            cluster: ClusterId(cluster),
            up: true,
        }
    }

    fn probe_to(out: &Outgoing) -> Option<(ProxyId, u64)> {
        match (&out.dest, &out.msg) {
            (crate::transmit::Dest::Proxy(p), Message::RttProbe(pr)) => Some((*p, pr.nonce)),
            _ => None,
        }
    }

    #[test]
    fn prober_measures_advertises_and_merges() {
        let cfg = ProberConfig {
            interval: Duration::from_secs(10),
            ..ProberConfig::default()
        };
        let t0 = Instant::ZERO;
        let mut a = Prober::new(cfg.clone(), ProxyId(1), ClusterId(0), t0);
        let mut b = Prober::new(cfg.clone(), ProxyId(3), ClusterId(1), t0);
        for p in [info(1, 0), info(2, 0), info(3, 1), info(4, 1)] {
            a.handle_proxy_up(&p);
            b.handle_proxy_up(&p);
        }
        assert!(a.is_prober());
        assert!(b.is_prober());
        let mut c = Prober::new(cfg.clone(), ProxyId(2), ClusterId(0), t0);
        c.handle_proxy_up(&info(1, 0));
        assert!(!c.is_prober(), "1 probes for cluster 0");

        // Round of a: one probe, to cluster 1's lowest id (3).
        let t = a.poll_timeout().unwrap();
        a.handle_timeout(t);
        let (to, nonce) = a.poll_transmit().and_then(|o| probe_to(&o)).unwrap();
        assert_eq!(to, ProxyId(3));
        assert!(a.poll_transmit().is_none());
        b.handle_probe(
            ProxyId(1),
            &RttProbe {
                cluster: ClusterId(0),
                nonce,
            },
        );
        let reply = match b.poll_transmit().unwrap().msg {
            Message::RttReply(r) => r,
            m => panic!("{m:?}"),
        };
        a.handle_reply(t + Duration::from_millis(40), &reply);
        assert_eq!(a.measured(ClusterId(1)), Some(40_000));
        assert!(a.take_changed());
        assert_eq!(a.matrix().get(ClusterId(0), ClusterId(1)), Some(40_000));
        // The same reply again matches nothing.
        a.handle_reply(t + Duration::from_millis(41), &reply);
        assert_eq!(a.counters().replies_unmatched, 1);
        // The advert after the round goes to every peer (2, 3, 4).
        let at = a.poll_timeout().unwrap();
        a.handle_timeout(at);
        let adverts: Vec<Outgoing> = core::iter::from_fn(|| a.poll_transmit()).collect();
        assert_eq!(adverts.len(), 3);
        let adv = match &adverts[0].msg {
            Message::RttAdvert(x) => x.clone(),
            m => panic!("{m:?}"),
        };
        assert_eq!(
            adv.entries,
            vec![WireRttEntry {
                peer: ClusterId(1),
                rtt_us: 40_000
            }]
        );
        // b merges; an older version later does not overwrite.
        b.handle_advert(&adv);
        assert_eq!(b.matrix().get(ClusterId(1), ClusterId(0)), Some(40_000));
        let mut old = adv.clone();
        old.version = 0;
        old.entries[0].rtt_us = 1;
        b.handle_advert(&old);
        assert_eq!(b.matrix().get(ClusterId(1), ClusterId(0)), Some(40_000));
        // Both directions known: the smaller wins.
        let mut other = adv.clone();
        other.origin = ClusterId(1);
        other.entries[0].peer = ClusterId(0);
        other.entries[0].rtt_us = 30_000;
        a.handle_advert(&other);
        assert_eq!(a.matrix().get(ClusterId(0), ClusterId(1)), Some(30_000));
        let e = a.entries(|c| c.0 <= 1);
        assert_eq!(e.len(), 1);
        assert!(a.entries(|c| c.0 == 0).is_empty());
        // A new proxy gets the row at once.
        a.handle_proxy_up(&info(9, 2));
        let got = a.poll_transmit().unwrap();
        assert_eq!(got.dest, crate::transmit::Dest::Proxy(ProxyId(9)));
        // When 1 dies, 2 becomes cluster 0's prober.
        c.handle_proxy_up(&info(3, 1));
        c.handle_advert(&adv);
        c.handle_proxy_down(ProxyId(1));
        assert!(c.is_prober());
    }

    #[test]
    fn minimum_over_window_and_change_threshold() {
        let cfg = ProberConfig {
            interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            window: 3,
            ..ProberConfig::default()
        };
        let mut a = Prober::new(cfg, ProxyId(1), ClusterId(0), Instant::ZERO);
        a.handle_proxy_up(&info(5, 1));
        let mut now = a.poll_timeout().unwrap();
        let mut adverts = 0;
        for rtt_ms in [50u64, 20, 30, 40, 45, 21] {
            a.handle_timeout(now);
            let (_, nonce) = core::iter::from_fn(|| a.poll_transmit())
                .find_map(|o| probe_to(&o))
                .unwrap();
            a.handle_reply(
                now + Duration::from_millis(rtt_ms),
                &RttReply {
                    cluster: ClusterId(1),
                    nonce,
                },
            );
            now = a.poll_timeout().unwrap();
            a.handle_timeout(now);
            adverts += core::iter::from_fn(|| a.poll_transmit())
                .filter(|o| matches!(o.msg, Message::RttAdvert(_)))
                .count();
            now = a.poll_timeout().unwrap();
        }
        // Window of 3: after 40, 45, 21 the minimum is 21 ms.
        assert_eq!(a.measured(ClusterId(1)), Some(21_000));
        // Minimum over the window after each sample: 50 (new: advertised),
        // 20 (−60 %: advertised), 20, 20 (no change), 30 (+50 %:
        // advertised), 21 (−30 %: advertised).
        assert_eq!(adverts, 4);
    }
}
