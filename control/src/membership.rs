//! Proxy membership (seed §3.2: "every proxy know all other proxies, and
//! maintain their current up/down status … the current implementation uses
//! flooding"): a sans-IO state machine in the quinn-proto shape.
//!
//! # Protocol (PROTOCOL.md, "Membership")
//! - **Statements.** The membership database holds one [`Lsa`] per proxy:
//!   "subject is up/down at (incarnation, version)". A proxy originates `Up`
//!   statements about itself only: at start (incarnation = its boot count,
//!   version 1), every `refresh_interval`, and to refute a wrong `Down`
//!   about itself. A proxy that detects a neighbour dead originates a `Down`
//!   statement about it, one version above the latest it holds.
//! - **Flooding.** A statement that ranks above the one held (by
//!   `(incarnation, version, state)`, `Down` winning ties) is installed and
//!   relayed unchanged to every adjacent neighbour except the one it came
//!   from; an equal one is a duplicate (dropped); an older one is answered
//!   with the newer statement held. Every received statement is
//!   acknowledged ([`FloodAck`]); unacknowledged ones are retransmitted
//!   every `retransmit_interval` (OSPF's reliable flooding, RFC 2328
//!   §13). A new adjacency starts with the whole database.
//! - **Neighbours.** Live proxies sit on a 64-bit hash ring at
//!   `pos(p) = rendezvous::proxy_hash(p)`. Each proxy monitors, for every
//!   `j` in 0..64, the first live proxy clockwise from `pos(me) + 2^j` and
//!   the first counter-clockwise from `pos(me) − 2^j` (Chord-style fingers,
//!   both ways): about 2·log2(n) distinct neighbours (≈ 28 at 20 000
//!   proxies), a flooding graph of diameter O(log n). Fingers are points on
//!   the ring, not ranks, so a proxy coming or going changes the
//!   neighbours of only O(log n) proxies (those whose finger points it
//!   lands next to or leaves), not of everyone. It sends
//!   [`Hello`] to a wanted neighbour until it hears from it, then
//!   [`Heartbeat`]s every `heartbeat_interval`; a monitored neighbour
//!   silent for `heartbeat_interval × dead_multiplier` is declared down. A
//!   proxy heartbeats whoever monitors it, so monitoring need not be
//!   mutual; the "I monitor you" flag is repeated in every heartbeat and
//!   lapses after the dead interval. With no adjacency at all (bootstrap,
//!   isolation) it sends
//!   `Hello`s to the configured seed addresses.
//! - **Ageing.** An `Up` statement not refreshed for `max_age` is declared
//!   down like a silent neighbour; a `Down` statement older than `max_age`
//!   is forgotten.
//!
//! # Driving it
//! Feed authenticated membership messages with [`Membership::handle`]
//! (the sender id comes from [`crate::auth::Accepted::Proxy`]), call
//! [`Membership::handle_timeout`] at [`Membership::poll_timeout`], then
//! drain [`Membership::poll_transmit`] (seal each with
//! [`crate::auth::Sealer`]) and [`Membership::poll_event`].
//!
//! Events: [`Event::ProxyUp`] when a proxy becomes live (or its address or
//! cluster changes), [`Event::ProxyDown`] when it stops being live. A proxy
//! that restarted (new incarnation) while up yields `ProxyDown` then
//! `ProxyUp`: it lost its state, so IAP cache entries naming it must go.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use pias_dataplane::types::{ClusterId, ProxyId, ProxyInfo};

use crate::rendezvous::proxy_hash;
use crate::time::Instant;
use crate::wire::{
    Flood, FloodAck, Heartbeat, Hello, Lsa, LsaKey, Message, ProxyState, DEFAULT_CONTROL_PORT,
    MAX_FLOOD_ACKS, MAX_FLOOD_ENTRIES,
};

/// Most proxies in one proxy group (seed §3.4: "roughly 20,000 proxies
/// before the infrastructure can be split").
pub const DEFAULT_MAX_PROXIES: usize = 20_000;

/// Settings of one proxy's membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This proxy.
    pub me: ProxyId,
    /// Its unicast address (control source, tunnel endpoint).
    pub addr: Ipv4Addr,
    /// Its cluster.
    pub cluster: ClusterId,
    /// Its boot count (persisted, incremented at every start).
    pub incarnation: u32,
    /// The control port every proxy listens on.
    pub port: u16,
    /// Addresses to say hello to until they are known as live proxies.
    pub seeds: Vec<SocketAddrV4>,
    /// Interval between heartbeats (and hellos).
    pub heartbeat_interval: Duration,
    /// A monitored neighbour silent for `heartbeat_interval ×
    /// dead_multiplier` is declared down.
    pub dead_multiplier: u32,
    /// Unacknowledged statements are resent after this long.
    pub retransmit_interval: Duration,
    /// A proxy re-floods its own statement this often.
    pub refresh_interval: Duration,
    /// Statements not refreshed for this long are aged out.
    pub max_age: Duration,
    /// Most proxies in the database.
    pub max_proxies: usize,
    /// Most neighbours (monitored, monitoring us, or both).
    pub max_neighbours: usize,
    /// Most datagrams of retransmissions per neighbour per heartbeat tick.
    pub max_retransmit_datagrams: usize,
    /// Statements and acks to send are held this long after a received
    /// message, so that relays batch up to 48 statements per datagram
    /// instead of one (zero: send at once). Adds at most this much per
    /// flooding hop.
    pub flood_delay: Duration,
}

impl Config {
    /// Defaults: heartbeats every second, dead after 3 s, retransmit after
    /// 1 s, refresh every 30 min, age out after 65 min (OSPF's
    /// LSRefreshTime and MaxAge, plus margin), 20 000 proxies.
    pub fn new(me: ProxyId, addr: Ipv4Addr, cluster: ClusterId, incarnation: u32) -> Self {
        Config {
            me,
            addr,
            cluster,
            incarnation,
            port: DEFAULT_CONTROL_PORT,
            seeds: Vec::new(),
            heartbeat_interval: Duration::from_secs(1),
            dead_multiplier: 3,
            retransmit_interval: Duration::from_secs(1),
            refresh_interval: Duration::from_secs(30 * 60),
            max_age: Duration::from_secs(65 * 60),
            max_proxies: DEFAULT_MAX_PROXIES,
            max_neighbours: 128,
            max_retransmit_datagrams: 4,
            flood_delay: Duration::from_millis(10),
        }
    }

    /// `heartbeat_interval × dead_multiplier`.
    pub fn dead_interval(&self) -> Duration {
        self.heartbeat_interval.saturating_mul(self.dead_multiplier)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, expected: &'static str| Err(ConfigError { key, expected });
        if self.heartbeat_interval.is_zero() {
            return bad("heartbeat_interval", "greater than zero");
        }
        if self.dead_multiplier < 2 {
            return bad("dead_multiplier", "at least 2");
        }
        if self.retransmit_interval.is_zero() {
            return bad("retransmit_interval", "greater than zero");
        }
        if self.refresh_interval.is_zero() {
            return bad("refresh_interval", "greater than zero");
        }
        if self.max_age <= self.refresh_interval.saturating_add(self.dead_interval()) {
            return bad(
                "max_age",
                "longer than refresh_interval + the dead interval",
            );
        }
        if self.max_proxies == 0 {
            return bad("max_proxies", "at least 1");
        }
        if self.max_neighbours < 2 {
            return bad("max_neighbours", "at least 2");
        }
        if self.max_retransmit_datagrams == 0 {
            return bad("max_retransmit_datagrams", "at least 1");
        }
        Ok(())
    }
}

/// A setting out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("membership setting {key}: expected {expected}")]
pub struct ConfigError {
    /// The setting.
    pub key: &'static str,
    /// What it must be.
    pub expected: &'static str,
}

/// News for the layers above (IAP caches, RAP roles, rendezvous).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A proxy is live (new, back, restarted, or moved address/cluster).
    ProxyUp(ProxyInfo),
    /// A proxy is no longer live: purge cache entries naming it; its RAP
    /// roles move.
    ProxyDown(ProxyId),
}

/// A message for the driver to seal and send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub dest: SocketAddrV4,
    /// What.
    pub msg: Message,
}

/// What membership did and refused; every drop has a counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages claiming to come from this proxy.
    pub from_self: u64,
    /// Hellos whose statement is not the sender's own `Up`.
    pub bad_hello: u64,
    /// `Up` statements not issued by their subject (dropped).
    pub lsa_invalid: u64,
    /// Statements installed (new or newer).
    pub lsa_installed: u64,
    /// Statements already held.
    pub lsa_duplicate: u64,
    /// Statements older than the one held (answered with ours).
    pub lsa_older: u64,
    /// New proxies refused because the database is full.
    pub lsdb_full: u64,
    /// Wrong statements about this proxy refuted.
    pub refutations: u64,
    /// Neighbours declared down by this proxy.
    pub declared_down: u64,
    /// Proxies declared down because their statement aged out.
    pub aged_out: u64,
    /// Adjacencies that came up (each starts a database exchange).
    pub adjacencies_up: u64,
    /// Adjacencies lost to silence.
    pub adjacencies_down: u64,
    /// Messages from new peers that found the neighbour table full (they
    /// get a stateless answer: see `stateless_replies`).
    pub neighbour_table_full: u64,
    /// Heartbeats and flood acks sent without neighbour state, to peers the
    /// table had no room for.
    pub stateless_replies: u64,
    /// Flood datagrams queued.
    pub floods_sent: u64,
    /// Statements retransmitted.
    pub retransmitted: u64,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    lsa: Lsa,
    installed: Instant,
}

#[derive(Clone, Debug)]
struct Neighbour {
    addr: SocketAddrV4,
    /// We monitor it (one of our ring fingers).
    wanted: bool,
    /// Since when it is wanted without being heard (or last declared).
    wanted_since: Instant,
    /// Adjacent iff heard within the dead interval.
    last_heard: Option<Instant>,
    /// It monitors us (said so within the dead interval): keep
    /// heartbeating it until then.
    monitors_us_until: Option<Instant>,
    incarnation: Option<u32>,
    /// Statements to send at the next flush.
    outbox: Vec<Lsa>,
    /// Acks to send at the next flush.
    acks: Vec<LsaKey>,
    /// Sent, not acknowledged: statement and last send time, per subject.
    pending: BTreeMap<ProxyId, (Lsa, Instant)>,
}

impl Neighbour {
    fn new(addr: SocketAddrV4, now: Instant) -> Self {
        Neighbour {
            addr,
            wanted: false,
            wanted_since: now,
            last_heard: None,
            monitors_us_until: None,
            incarnation: None,
            outbox: Vec::new(),
            acks: Vec::new(),
            pending: BTreeMap::new(),
        }
    }

    fn queue(&mut self, lsa: Lsa, now: Instant) {
        self.outbox.push(lsa);
        self.pending.insert(lsa.subject, (lsa, now));
    }

    fn reset_adjacency(&mut self) {
        self.last_heard = None;
        self.monitors_us_until = None;
        self.incarnation = None;
        self.outbox.clear();
        self.acks.clear();
        self.pending.clear();
    }
}

/// The next `(incarnation, version)` above `(inc, ver)`.
fn bump(inc: u32, ver: u32) -> (u32, u32) {
    match ver.checked_add(1) {
        Some(v) => (inc, v),
        None => (inc.saturating_add(1), 0),
    }
}

fn info(lsa: &Lsa) -> ProxyInfo {
    ProxyInfo {
        id: lsa.subject,
        addr: lsa.addr,
        cluster: lsa.cluster,
        up: lsa.state == ProxyState::Up,
    }
}

/// The ring fingers of the point `me` on `ring` (sorted by position): for
/// every `j` in 0..64, the first proxy clockwise from `me + 2^j` and the
/// first counter-clockwise from `me − 2^j`, both wrapping around.
fn fingers(ring: &[(u64, ProxyId)], me: u64) -> BTreeSet<ProxyId> {
    let mut out = BTreeSet::new();
    if ring.is_empty() {
        return out;
    }
    for j in 0..64 {
        let d = 1u64 << j;
        let cw = me.wrapping_add(d);
        let i = ring.partition_point(|(p, _)| *p < cw);
        if let Some((_, id)) = ring.get(i).or_else(|| ring.first()) {
            out.insert(*id);
        }
        let ccw = me.wrapping_sub(d);
        let i = ring.partition_point(|(p, _)| *p <= ccw);
        let prev = i
            .checked_sub(1)
            .and_then(|i| ring.get(i))
            .or_else(|| ring.last());
        if let Some((_, id)) = prev {
            out.insert(*id);
        }
    }
    out
}

/// One proxy's view of the proxy group. See the module docs.
#[derive(Clone, Debug)]
pub struct Membership {
    cfg: Config,
    me_lsa: Lsa,
    lsdb: BTreeMap<ProxyId, Entry>,
    /// Ids of live proxies (this one included), sorted.
    live: Vec<ProxyId>,
    /// The same proxies by ring position.
    ring: Vec<(u64, ProxyId)>,
    neighbours: BTreeMap<ProxyId, Neighbour>,
    next_tick: Instant,
    next_refresh: Instant,
    /// Outboxes are flushed at this time (see `Config::flood_delay`).
    flush_due: Option<Instant>,
    /// The live set changed: recompute the neighbours before flushing.
    live_changed: bool,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    counters: Counters,
}

impl Membership {
    /// Start at `now`. The first event is `ProxyUp` of this proxy; the
    /// first timeout is `now` (hellos to the seeds).
    pub fn new(cfg: Config, now: Instant) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let me_lsa = Lsa {
            subject: cfg.me,
            origin: cfg.me,
            addr: cfg.addr,
            cluster: cfg.cluster,
            state: ProxyState::Up,
            incarnation: cfg.incarnation,
            version: 1,
        };
        let mut lsdb = BTreeMap::new();
        lsdb.insert(
            cfg.me,
            Entry {
                lsa: me_lsa,
                installed: now,
            },
        );
        let mut events = VecDeque::new();
        events.push_back(Event::ProxyUp(info(&me_lsa)));
        Ok(Membership {
            live: vec![cfg.me],
            ring: vec![(proxy_hash(cfg.me), cfg.me)],
            next_tick: now,
            flush_due: None,
            next_refresh: now + cfg.refresh_interval,
            live_changed: false,
            cfg,
            me_lsa,
            lsdb,
            neighbours: BTreeMap::new(),
            transmits: VecDeque::new(),
            events,
            counters: Counters::default(),
        })
    }

    /// This proxy.
    pub fn me(&self) -> ProxyId {
        self.cfg.me
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// This proxy's current incarnation (its boot count, unless it had to
    /// refute a statement from a later one).
    pub fn incarnation(&self) -> u32 {
        self.me_lsa.incarnation
    }

    /// What the database says about a proxy.
    pub fn proxy(&self, id: ProxyId) -> Option<ProxyInfo> {
        self.lsdb.get(&id).map(|e| info(&e.lsa))
    }

    /// Whether a proxy is live.
    pub fn is_up(&self, id: ProxyId) -> bool {
        self.live.binary_search(&id).is_ok()
    }

    /// Live proxies, this one included, sorted by id.
    pub fn live(&self) -> &[ProxyId] {
        &self.live
    }

    /// Statements in the database (live and down proxies).
    pub fn database_len(&self) -> usize {
        self.lsdb.len()
    }

    /// Neighbours as `(id, adjacent, monitored)`.
    pub fn neighbours(&self) -> impl Iterator<Item = (ProxyId, bool, bool)> + '_ {
        self.neighbours
            .iter()
            .map(|(id, n)| (*id, n.last_heard.is_some(), n.wanted))
    }

    /// Statements sent to neighbours and not acknowledged yet (zero once
    /// flooding has settled).
    pub fn unacked(&self) -> usize {
        self.neighbours.values().map(|n| n.pending.len()).sum()
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Feed an authenticated message from proxy `from`, received from
    /// `src`. Returns `false` (and does nothing) for messages that are not
    /// membership messages.
    pub fn handle(
        &mut self,
        now: Instant,
        from: ProxyId,
        src: SocketAddrV4,
        msg: &Message,
    ) -> bool {
        if !matches!(
            msg,
            Message::Hello(_) | Message::Heartbeat(_) | Message::Flood(_) | Message::FloodAck(_)
        ) {
            return false;
        }
        if from == self.cfg.me {
            self.counters.from_self += 1;
            return true;
        }
        match msg {
            Message::Hello(h) => {
                let l = h.lsa;
                if l.subject != from || l.origin != from || l.state != ProxyState::Up {
                    self.counters.bad_hello += 1;
                } else if self.heard(now, from, src, Some(l.incarnation), Some(true)) {
                    self.receive_lsa(now, from, l);
                } else {
                    // Table full: still learn the statement and show
                    // we are alive, without keeping state for `from`.
                    self.receive_lsa(now, from, l);
                    self.reply_alive(src);
                }
            }
            Message::Heartbeat(hb) => {
                let known = self.heard(now, from, src, Some(hb.incarnation), Some(hb.monitoring));
                if !known && hb.monitoring {
                    self.reply_alive(src);
                }
            }
            Message::Flood(f) => self.on_flood(now, from, src, f),
            Message::FloodAck(a) => self.on_flood_ack(now, from, src, a),
            _ => {}
        }
        if self.cfg.flood_delay.is_zero() {
            self.flush(now);
        } else {
            let t = now + self.cfg.flood_delay;
            self.flush_due = Some(self.flush_due.map_or(t, |d| d.min(t)));
        }
        true
    }

    /// A heartbeat to a proxy the neighbour table has no room for: it
    /// monitors this proxy, and without an answer it would declare it
    /// dead. A stateless answer per message it sends (at most one per its
    /// heartbeat interval) keeps it right.
    fn reply_alive(&mut self, to: SocketAddrV4) {
        self.counters.stateless_replies += 1;
        self.transmits.push_back(Transmit {
            dest: to,
            msg: Message::Heartbeat(Heartbeat {
                incarnation: self.me_lsa.incarnation,
                monitoring: false,
            }),
        });
    }

    fn on_flood(&mut self, now: Instant, from: ProxyId, src: SocketAddrV4, f: &Flood) {
        if !self.heard(now, from, src, None, None) {
            // Table full: install and relay what is new, and acknowledge
            // at once so the sender stops retransmitting.
            let acks: Vec<LsaKey> = f.entries.iter().map(|l| l.key()).collect();
            for lsa in &f.entries {
                self.receive_lsa(now, from, *lsa);
            }
            self.counters.stateless_replies += 1;
            for chunk in acks.chunks(MAX_FLOOD_ACKS) {
                self.transmits.push_back(Transmit {
                    dest: src,
                    msg: Message::FloodAck(FloodAck {
                        acks: chunk.to_vec(),
                    }),
                });
            }
            return;
        }
        for lsa in &f.entries {
            if let Some(nb) = self.neighbours.get_mut(&from) {
                nb.acks.push(lsa.key());
            }
            self.receive_lsa(now, from, *lsa);
        }
    }

    fn on_flood_ack(&mut self, now: Instant, from: ProxyId, src: SocketAddrV4, a: &FloodAck) {
        if !self.heard(now, from, src, None, None) {
            return;
        }
        let Some(nb) = self.neighbours.get_mut(&from) else {
            return;
        };
        for key in &a.acks {
            if nb
                .pending
                .get(&key.subject)
                .is_some_and(|(l, _)| l.key() == *key)
            {
                nb.pending.remove(&key.subject);
            }
        }
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let dead = self.cfg.dead_interval();
        let mut t = self.next_tick;
        for nb in self.neighbours.values() {
            match nb.last_heard {
                Some(h) => t = t.min(h + dead),
                None if nb.wanted => t = t.min(nb.wanted_since + dead),
                None => {}
            }
        }
        if let Some(f) = self.flush_due {
            t = t.min(f);
        }
        Some(t)
    }

    /// Run the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_tick {
            self.tick(now);
            self.next_tick = now + self.cfg.heartbeat_interval;
        }
        self.check_dead(now);
        self.flush_due = None;
        self.flush(now);
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn control_addr(&self, ip: Ipv4Addr) -> SocketAddrV4 {
        SocketAddrV4::new(ip, self.cfg.port)
    }

    /// Note that `from` was heard; bring the adjacency up (and send it the
    /// database) if it was down or `from` restarted. `false` if `from` is
    /// new and the neighbour table is full.
    fn heard(
        &mut self,
        now: Instant,
        from: ProxyId,
        src: SocketAddrV4,
        incarnation: Option<u32>,
        monitors_us: Option<bool>,
    ) -> bool {
        if !self.neighbours.contains_key(&from) && self.neighbours.len() >= self.cfg.max_neighbours
        {
            self.counters.neighbour_table_full += 1;
            return false;
        }
        let me_inc = self.me_lsa.incarnation;
        let nb = self
            .neighbours
            .entry(from)
            .or_insert_with(|| Neighbour::new(src, now));
        nb.addr = src;
        let was_adjacent = nb.last_heard.is_some();
        let restarted = matches!((nb.incarnation, incarnation), (Some(a), Some(b)) if a != b);
        if restarted {
            nb.reset_adjacency();
        }
        nb.last_heard = Some(now);
        if incarnation.is_some() {
            nb.incarnation = incarnation;
        }
        match monitors_us {
            Some(true) => nb.monitors_us_until = Some(now + self.cfg.dead_interval()),
            Some(false) => nb.monitors_us_until = None,
            None => {}
        }
        if !was_adjacent || restarted {
            self.counters.adjacencies_up += 1;
            for e in self.lsdb.values() {
                nb.queue(e.lsa, now);
            }
            self.transmits.push_back(Transmit {
                dest: nb.addr,
                msg: Message::Heartbeat(Heartbeat {
                    incarnation: me_inc,
                    monitoring: nb.wanted,
                }),
            });
        }
        true
    }

    fn receive_lsa(&mut self, now: Instant, from: ProxyId, lsa: Lsa) {
        if lsa.state == ProxyState::Up && lsa.origin != lsa.subject {
            self.counters.lsa_invalid += 1;
            return;
        }
        // Implicit acknowledgement: `from` holds this or something newer.
        if let Some(nb) = self.neighbours.get_mut(&from) {
            if nb
                .pending
                .get(&lsa.subject)
                .is_some_and(|(p, _)| p.rank() <= lsa.rank())
            {
                nb.pending.remove(&lsa.subject);
            }
        }
        if lsa.subject == self.cfg.me {
            self.receive_own(now, from, lsa);
            return;
        }
        match self.lsdb.get(&lsa.subject) {
            Some(cur) => match lsa.rank().cmp(&cur.lsa.rank()) {
                core::cmp::Ordering::Equal => self.counters.lsa_duplicate += 1,
                core::cmp::Ordering::Less => {
                    self.counters.lsa_older += 1;
                    let ours = cur.lsa;
                    if let Some(nb) = self.neighbours.get_mut(&from) {
                        nb.queue(ours, now);
                    }
                }
                core::cmp::Ordering::Greater => self.install(now, lsa, Some(from)),
            },
            None if self.lsdb.len() >= self.cfg.max_proxies => self.counters.lsdb_full += 1,
            None => self.install(now, lsa, Some(from)),
        }
    }

    /// A statement about this proxy: refute it if it is newer than ours.
    fn receive_own(&mut self, now: Instant, from: ProxyId, lsa: Lsa) {
        let mine = self.me_lsa;
        match lsa.rank().cmp(&mine.rank()) {
            core::cmp::Ordering::Greater => {
                let top = (lsa.incarnation, lsa.version).max((mine.incarnation, mine.version));
                let (incarnation, version) = bump(top.0, top.1);
                self.me_lsa = Lsa {
                    state: ProxyState::Up,
                    origin: self.cfg.me,
                    incarnation,
                    version,
                    ..mine
                };
                self.counters.refutations += 1;
                self.install(now, self.me_lsa, None);
            }
            core::cmp::Ordering::Less => {
                if let Some(nb) = self.neighbours.get_mut(&from) {
                    nb.queue(mine, now);
                }
            }
            core::cmp::Ordering::Equal => self.counters.lsa_duplicate += 1,
        }
    }

    /// Install a statement, flood it to adjacent neighbours except
    /// `except`, and report what changed.
    fn install(&mut self, now: Instant, lsa: Lsa, except: Option<ProxyId>) {
        let prev = self.lsdb.insert(
            lsa.subject,
            Entry {
                lsa,
                installed: now,
            },
        );
        self.counters.lsa_installed += 1;
        for (id, nb) in self.neighbours.iter_mut() {
            if nb.last_heard.is_some() && Some(*id) != except {
                nb.queue(lsa, now);
            }
        }
        let was_up = prev.filter(|e| e.lsa.state == ProxyState::Up);
        match (was_up, lsa.state) {
            (None, ProxyState::Up) => {
                if let Err(i) = self.live.binary_search(&lsa.subject) {
                    self.live.insert(i, lsa.subject);
                }
                let at = (proxy_hash(lsa.subject), lsa.subject);
                if let Err(i) = self.ring.binary_search(&at) {
                    self.ring.insert(i, at);
                }
                self.live_changed = true;
                self.events.push_back(Event::ProxyUp(info(&lsa)));
            }
            (Some(p), ProxyState::Up) => {
                if p.lsa.incarnation != lsa.incarnation && lsa.subject != self.cfg.me {
                    // Restarted: the old incarnation's state is gone.
                    self.events.push_back(Event::ProxyDown(lsa.subject));
                    self.events.push_back(Event::ProxyUp(info(&lsa)));
                } else if p.lsa.addr != lsa.addr || p.lsa.cluster != lsa.cluster {
                    self.events.push_back(Event::ProxyUp(info(&lsa)));
                }
            }
            (Some(_), ProxyState::Down) => {
                if let Ok(i) = self.live.binary_search(&lsa.subject) {
                    self.live.remove(i);
                }
                if let Ok(i) = self
                    .ring
                    .binary_search(&(proxy_hash(lsa.subject), lsa.subject))
                {
                    self.ring.remove(i);
                }
                self.live_changed = true;
                self.events.push_back(Event::ProxyDown(lsa.subject));
            }
            (None, ProxyState::Down) => {}
        }
    }

    /// Neighbours to monitor: the ring fingers (see the module docs).
    fn recompute_wanted(&mut self, now: Instant) {
        let mut want = fingers(&self.ring, proxy_hash(self.cfg.me));
        want.remove(&self.cfg.me);
        for (id, nb) in self.neighbours.iter_mut() {
            let w = want.contains(id);
            if w && !nb.wanted {
                nb.wanted_since = now;
            }
            nb.wanted = w;
        }
        for id in &want {
            if self.neighbours.contains_key(id) || self.neighbours.len() >= self.cfg.max_neighbours
            {
                continue;
            }
            let Some(e) = self.lsdb.get(id) else { continue };
            let mut nb = Neighbour::new(self.control_addr(e.lsa.addr), now);
            nb.wanted = true;
            self.transmits.push_back(Transmit {
                dest: nb.addr,
                msg: Message::Hello(Hello { lsa: self.me_lsa }),
            });
            self.neighbours.insert(*id, nb);
        }
        self.neighbours
            .retain(|_, nb| nb.wanted || nb.last_heard.is_some());
    }

    fn tick(&mut self, now: Instant) {
        if now >= self.next_refresh {
            let (incarnation, version) = bump(self.me_lsa.incarnation, self.me_lsa.version);
            self.me_lsa.incarnation = incarnation;
            self.me_lsa.version = version;
            self.install(now, self.me_lsa, None);
            self.next_refresh = now + self.cfg.refresh_interval;
        }
        let me_inc = self.me_lsa.incarnation;
        for nb in self.neighbours.values() {
            let msg = if nb.last_heard.is_some() {
                if !(nb.wanted || nb.monitors_us_until.is_some_and(|t| t > now)) {
                    continue;
                }
                Message::Heartbeat(Heartbeat {
                    incarnation: me_inc,
                    monitoring: nb.wanted,
                })
            } else if nb.wanted {
                Message::Hello(Hello { lsa: self.me_lsa })
            } else {
                continue;
            };
            self.transmits.push_back(Transmit { dest: nb.addr, msg });
        }
        // Seeds not known as live proxies get a hello every tick. Saying
        // hello to seeds only while no neighbour is adjacent would let two
        // proxies that found each other first stay an island forever.
        let me = self.control_addr(self.cfg.addr);
        let pending: Vec<SocketAddrV4> = self
            .cfg
            .seeds
            .iter()
            .filter(|s| **s != me && !self.live_at(**s))
            .copied()
            .collect();
        for seed in pending {
            self.transmits.push_back(Transmit {
                dest: seed,
                msg: Message::Hello(Hello { lsa: self.me_lsa }),
            });
        }
        self.retransmit(now);
        self.age(now);
    }

    /// Whether a live proxy of the database has this control address.
    fn live_at(&self, a: SocketAddrV4) -> bool {
        a.port() == self.cfg.port
            && self.live.iter().any(|id| {
                self.lsdb
                    .get(id)
                    .is_some_and(|e| e.lsa.addr == *a.ip() && e.lsa.state == ProxyState::Up)
            })
    }

    fn retransmit(&mut self, now: Instant) {
        let rxmt = self.cfg.retransmit_interval;
        let budget = self.cfg.max_retransmit_datagrams * MAX_FLOOD_ENTRIES;
        for nb in self.neighbours.values_mut() {
            if nb.last_heard.is_none() {
                continue;
            }
            let mut n = 0;
            for (lsa, sent) in nb.pending.values_mut() {
                if n == budget {
                    break;
                }
                if *sent + rxmt <= now {
                    *sent = now;
                    nb.outbox.push(*lsa);
                    n += 1;
                }
            }
            self.counters.retransmitted += n as u64;
        }
    }

    fn age(&mut self, now: Instant) {
        let max_age = self.cfg.max_age;
        let mut expired_up = Vec::new();
        let mut expired_down = Vec::new();
        for (id, e) in &self.lsdb {
            if *id == self.cfg.me || e.installed + max_age > now {
                continue;
            }
            match e.lsa.state {
                ProxyState::Up => expired_up.push(*id),
                ProxyState::Down => expired_down.push(*id),
            }
        }
        for id in expired_down {
            self.lsdb.remove(&id);
        }
        for id in expired_up {
            self.counters.aged_out += 1;
            self.declare_down(now, id);
        }
    }

    fn check_dead(&mut self, now: Instant) {
        let dead = self.cfg.dead_interval();
        let mut declare = Vec::new();
        let mut forget = Vec::new();
        for (id, nb) in self.neighbours.iter_mut() {
            match nb.last_heard {
                Some(t) if t + dead <= now => {
                    nb.reset_adjacency();
                    self.counters.adjacencies_down += 1;
                    if nb.wanted {
                        nb.wanted_since = now;
                        declare.push(*id);
                    } else {
                        forget.push(*id);
                    }
                }
                None if nb.wanted && nb.wanted_since + dead <= now => {
                    nb.wanted_since = now;
                    declare.push(*id);
                }
                _ => {}
            }
        }
        for id in forget {
            self.neighbours.remove(&id);
        }
        for id in declare {
            if self
                .lsdb
                .get(&id)
                .is_some_and(|e| e.lsa.state == ProxyState::Up)
            {
                self.counters.declared_down += 1;
                self.declare_down(now, id);
            }
        }
    }

    /// Originate a `Down` statement about `id`, one version above the one
    /// held.
    fn declare_down(&mut self, now: Instant, id: ProxyId) {
        let Some(cur) = self.lsdb.get(&id).map(|e| e.lsa) else {
            return;
        };
        if cur.state != ProxyState::Up {
            return;
        }
        let (incarnation, version) = bump(cur.incarnation, cur.version);
        let lsa = Lsa {
            origin: self.cfg.me,
            state: ProxyState::Down,
            incarnation,
            version,
            ..cur
        };
        self.install(now, lsa, None);
    }

    /// Recompute the neighbours if the live set changed, then turn every
    /// neighbour's outbox and acks into datagrams.
    fn flush(&mut self, now: Instant) {
        if self.live_changed {
            self.live_changed = false;
            self.recompute_wanted(now);
        }
        for nb in self.neighbours.values_mut() {
            for chunk in nb.outbox.chunks(MAX_FLOOD_ENTRIES) {
                self.counters.floods_sent += 1;
                self.transmits.push_back(Transmit {
                    dest: nb.addr,
                    msg: Message::Flood(Flood {
                        entries: chunk.to_vec(),
                    }),
                });
            }
            nb.outbox.clear();
            for chunk in nb.acks.chunks(MAX_FLOOD_ACKS) {
                self.transmits.push_back(Transmit {
                    dest: nb.addr,
                    msg: Message::FloodAck(FloodAck {
                        acks: chunk.to_vec(),
                    }),
                });
            }
            nb.acks.clear();
        }
    }
}

#[cfg(test)]
mod tests;
