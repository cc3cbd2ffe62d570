//! The JAP role (seed §3.1–3.3, §3.6.1): this proxy's targets, their
//! health, and what it tells the group's RAPs and the IAPs.
//!
//! # Targets: soft state
//! A target joins by sending a signed [`TargetRequest`] to the group's
//! anycast address; native anycast delivers it to the nearest proxy, which
//! becomes its JAP. The gate ([`crate::auth::Gate::open`]) has checked the
//! group credential, the timestamp and the nonce before [`Jap::handle_request`]
//! sees it. Here:
//! - **Join**: the target must be allowed ([`crate::view::target_allowed`]:
//!   the same checks the dataplane's table validation makes, so no join can
//!   make a snapshot invalid), the group's table and the JAP's must have
//!   room; the lifetime asked for is clamped to `[min_lifetime,
//!   max_lifetime]`; the answer is a [`JoinAck`] with the granted lifetime,
//!   sent from the anycast address the request went to.
//! - **Refresh** renews the lifetime. A refresh for a target this JAP does
//!   not hold is accepted as a join (the signature authorises it; routing
//!   may have moved the target to this JAP, or this JAP restarted).
//! - The ack of a signed join or refresh grants a **session**
//!   ([`crate::auth::session`], PROTOCOL.md §5.6): until it ends the
//!   target refreshes with a [`SessionRefresh`] MAC'd with the session key
//!   (which both derive from an X25519 exchange: the target's share in the
//!   signed request, the JAP's in the ack; the key never travels), and the
//!   gate checks it against this table ([`Sessions`]) for the cost of an
//!   HMAC instead of an Ed25519 verification. A session ends with
//!   the target (leave, expiry) and when a signed request replaces it.
//! - **Leave** removes the target; a leave for an unknown target is
//!   answered with [`NackReason::NotJoined`].
//! - A target not refreshed within its lifetime expires.
//!
//! # Health (seed §3.2, §3.6.1)
//! Every target is probed every `probe_interval` ([`HealthProbe`]: the
//! driver performs an ICMP echo, a TCP connect or a UDP exchange, per the
//! group's [`ProbeKind`], and reports the result with
//! [`Jap::handle_probe_result`]; a result not back within `probe_timeout`
//! is a failure). Passive detection: the dataplane reports a target that
//! received forward packets and sent nothing back
//! ([`pias_dataplane::iface::Up::TargetSilent`]); it is probed at once.
//! After a failure the next probe comes after `retry_interval`;
//! `dead_after` consecutive failures mark the target dead (it stays in the
//! table with `alive = false`, so the dataplane gives it no new flow), one
//! success marks it alive again.
//!
//! # Reports to the RAPs (seed §3.3)
//! Per group and per RAP of the group, the JAP remembers the count it last
//! reported and the band the RAP last set (`band_pct`, in its
//! [`crate::wire::ReportAck`]). It reports again only when the live count
//! leaves the band: reported `c`, band `b` % → report when
//! `|live − c| × 100 > b × c` (100 with ±25 % → again below 75 or above
//! 125), when the count becomes or stops being 0, when the overload flag
//! changes, when the RAP set gains a RAP, and every `report_refresh`.
//! Reports are batched per RAP (up to 64 groups per datagram) after
//! `report_delay` and retransmitted every `report_retransmit` until acked.
//! Each report entry carries a sequence number that changes with the
//! content, drawn from one counter for the whole JAP (so a group dropped
//! and created again never restarts below the tombstone its RAPs keep); the
//! RAP orders reports by `(sender epoch, seq)`. A JAP declared down (and
//! refuting it) reports everything again.
//!
//! # RAP-less groups (seed §3.2, end)
//! For a group with the `rapless` option the JAP announces its exact count
//! to every live proxy ([`JapAnnounce`]) on every change and every
//! `announce_interval` (receivers expire what stops being refreshed).
//!
//! # Invalidation (seed §3.2)
//! When the dataplane reports a packet for a group this JAP cannot deliver
//! ([`pias_dataplane::iface::Up::JapNoTarget`]), the JAP sends that IAP an
//! [`Invalidate`], at most once per `(group, IAP)` per `invalidate_gap`.
//! When the last live target of a group leaves or dies, the count 0 goes to
//! the RAPs, which stop choosing this JAP and push fresh lists to the IAPs
//! they recently answered ([`crate::rap`]).

use std::collections::{BTreeMap, VecDeque};

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use hashbrown::HashMap;
use pias_dataplane::tables::{LocalTarget, MAX_TARGETS_PER_GROUP};
use pias_dataplane::types::{GroupAddr, GroupOptions, GroupProto, ProxyId, TargetAddr};

use crate::auth::{SessionSecret, SessionState, Sessions, SmallOrder};
use crate::time::{Instant, UnixTime};
use crate::transmit::{Dest, Outgoing};
use crate::view::View;
use crate::wire::{
    Invalidate, JapAnnounce, JoinAck, JoinNack, Message, NackReason, Report, ReportAck,
    ReportEntry, SessionRefresh, TargetRequest, DEFAULT_CONTROL_PORT, MAX_REPORT_ENTRIES,
};

/// How the driver checks a target's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// ICMP echo to the target's address.
    IcmpEcho,
    /// A TCP connection to the target's port (SYN answered by SYN-ACK or
    /// RST means the host is up; SYN-ACK means the service is).
    TcpConnect,
    /// A UDP datagram to the target's port; an ICMP port unreachable (or
    /// no answer, for services that answer) is a failure.
    UdpConnect,
}

impl ProbeKind {
    /// The default for a group: TCP connect for TCP groups, ICMP echo for
    /// UDP and whole-IP groups (UDP has no handshake to test).
    pub fn default_for(g: &GroupAddr) -> Self {
        match g {
            GroupAddr::Port {
                proto: GroupProto::Tcp,
                ..
            } => ProbeKind::TcpConnect,
            _ => ProbeKind::IcmpEcho,
        }
    }
}

/// Identifies one health probe between [`Jap::poll_probe`] and
/// [`Jap::handle_probe_result`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProbeId(pub u64);

/// A health check for the driver to perform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HealthProbe {
    /// Echo this in the result.
    pub id: ProbeId,
    /// The group the target serves (for logs).
    pub group: GroupAddr,
    /// The target.
    pub target: TargetAddr,
    /// What to do.
    pub kind: ProbeKind,
}

/// Settings of the JAP role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JapConfig {
    /// The control port (replies to targets are sent from it).
    pub port: u16,
    /// Shortest lifetime granted.
    pub min_lifetime: Duration,
    /// Longest lifetime granted.
    pub max_lifetime: Duration,
    /// Most targets per group (the dataplane's table cap).
    pub max_targets_per_group: usize,
    /// Most groups with targets here.
    pub max_groups: usize,
    /// Most targets in all.
    pub max_targets: usize,
    /// Interval between active probes of a healthy target.
    pub probe_interval: Duration,
    /// Interval between probes after a failure.
    pub retry_interval: Duration,
    /// A probe result not back within this is a failure.
    pub probe_timeout: Duration,
    /// Consecutive failures that mark a target dead.
    pub dead_after: u8,
    /// Passive detection probes a target at most this often.
    pub silent_probe_gap: Duration,
    /// Most probes in flight.
    pub max_probes_in_flight: usize,
    /// Probe kind per group, overriding [`ProbeKind::default_for`].
    pub probe_kinds: BTreeMap<GroupAddr, ProbeKind>,
    /// Changes are reported after this delay, batched.
    pub report_delay: Duration,
    /// Unacknowledged reports are resent after this.
    pub report_retransmit: Duration,
    /// Every group's count is reported again after this, changed or not.
    pub report_refresh: Duration,
    /// Band used until a RAP sets one (0: report every change).
    pub initial_band_pct: u8,
    /// RAP-less groups: counts are announced to every proxy this often.
    pub announce_interval: Duration,
    /// One invalidation per (group, IAP) per this interval.
    pub invalidate_gap: Duration,
    /// Most (group, IAP) pairs remembered for that limit.
    pub max_invalidate_memory: usize,
    /// Targets are scanned (probes due, expiry, retransmits) on this grid.
    pub tick: Duration,
    /// Length of the sessions granted with the ack of a signed join or
    /// refresh (PROTOCOL.md §5.6); zero grants none (every refresh signed).
    pub session_lifetime: Duration,
}

impl Default for JapConfig {
    fn default() -> Self {
        JapConfig {
            port: DEFAULT_CONTROL_PORT,
            min_lifetime: Duration::from_secs(10),
            max_lifetime: Duration::from_secs(300),
            max_targets_per_group: MAX_TARGETS_PER_GROUP,
            max_groups: 65_536,
            max_targets: 262_144,
            probe_interval: Duration::from_secs(10),
            retry_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(2),
            dead_after: 3,
            silent_probe_gap: Duration::from_secs(1),
            max_probes_in_flight: 4096,
            probe_kinds: BTreeMap::new(),
            report_delay: Duration::from_millis(50),
            report_retransmit: Duration::from_secs(1),
            report_refresh: Duration::from_secs(600),
            initial_band_pct: 0,
            announce_interval: Duration::from_secs(60),
            invalidate_gap: Duration::from_secs(1),
            max_invalidate_memory: 4096,
            tick: Duration::from_millis(100),
            session_lifetime: Duration::from_secs(3600),
        }
    }
}

/// What the JAP did and refused; every refusal has a counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JapCounters {
    /// Joins accepted (new targets).
    pub joins: u64,
    /// Refreshes of held targets.
    pub refreshes: u64,
    /// Refreshes of unknown targets, accepted as joins.
    pub refresh_as_join: u64,
    /// Leaves applied.
    pub leaves: u64,
    /// Sessions granted (acks of signed joins and refreshes).
    pub sessions_granted: u64,
    /// Refreshes under a session (MAC'd, no signature).
    pub session_refreshes: u64,
    /// Session refreshes answered with a nack (unknown or expired
    /// session: the target signs again).
    pub nack_session: u64,
    /// Signed requests whose X25519 key share has small order (the shared
    /// secret came out all zero): accepted, acked without a session.
    pub session_small_order: u64,
    /// Refused: the group is not registered here.
    pub nack_unknown_group: u64,
    /// Refused: the target address cannot be a target.
    pub nack_bad_target: u64,
    /// Refused: a table is full (group, groups or targets cap).
    pub nack_full: u64,
    /// Refused: leave of an unknown target.
    pub nack_not_joined: u64,
    /// Targets whose soft state expired.
    pub expired: u64,
    /// Probes handed to the driver.
    pub probes: u64,
    /// Probes that failed (or timed out).
    pub probe_failures: u64,
    /// Probes that timed out (counted in `probe_failures` too).
    pub probe_timeouts: u64,
    /// Results for unknown probe ids.
    pub probe_unknown: u64,
    /// Probes not sent because too many were in flight.
    pub probes_in_flight_full: u64,
    /// Passive detections that led to a probe.
    pub passive_probes: u64,
    /// Targets marked dead.
    pub targets_died: u64,
    /// Dead targets seen alive again.
    pub targets_revived: u64,
    /// Report datagrams queued.
    pub reports: u64,
    /// Report entries queued (first sends and resends).
    pub report_entries: u64,
    /// Report entries resent for lack of an ack.
    pub report_retransmits: u64,
    /// Acks that matched an outstanding report.
    pub acks: u64,
    /// Acks for nothing outstanding (late, duplicate, or from a non-RAP).
    pub acks_stale: u64,
    /// Announce datagrams queued (one per peer per chunk).
    pub announces: u64,
    /// Invalidations sent.
    pub invalidations: u64,
    /// Invalidations suppressed by the per-(group, IAP) limit.
    pub invalidations_suppressed: u64,
}

#[derive(Clone, Copy, Debug)]
struct Target {
    expires: Instant,
    alive: bool,
    fails: u8,
    next_probe: Instant,
    probe: Option<ProbeId>,
    last_passive: Option<Instant>,
    /// The session granted with the last signed request.
    session: Option<SessionState>,
}

/// Reporting state towards one RAP of a group.
#[derive(Clone, Copy, Debug)]
struct RapLink {
    rap: ProxyId,
    /// (count, overloaded) last sent.
    reported: Option<(u32, bool)>,
    band_pct: u8,
    /// Sequence and send time of the report not acked yet.
    unacked: Option<(u32, Instant)>,
    refresh_at: Instant,
}

#[derive(Clone, Debug)]
struct GroupState {
    options: GroupOptions,
    targets: BTreeMap<TargetAddr, Target>,
    live: u32,
    overloaded: bool,
    /// The content last given a sequence number, and that number.
    stamped: Option<(u32, bool)>,
    seq: u32,
    raps: Vec<RapLink>,
    /// RAP-less: (count, overloaded) last announced, and the next refresh.
    announced: Option<(u32, bool)>,
    next_announce: Instant,
}

impl GroupState {
    fn live_count(&self) -> u32 {
        self.targets.values().filter(|t| t.alive).count() as u32
    }

    /// The sequence number of the current content, from the JAP-wide
    /// counter `next`: a group dropped and created again (its last target
    /// left, a new one joined) must not restart below the tombstone the
    /// RAPs hold for it, or they would take its reports for old ones.
    fn stamp(&mut self, next: &mut u32) -> u32 {
        let content = (self.live, self.overloaded);
        if self.stamped != Some(content) {
            self.stamped = Some(content);
            *next = next.saturating_add(1);
            self.seq = *next;
        }
        self.seq
    }
}

/// Whether a count must be reported again: see the module docs.
pub fn out_of_band(reported: u32, live: u32, band_pct: u8) -> bool {
    if reported == 0 || live == 0 {
        return reported != live;
    }
    let diff = u64::from(reported.abs_diff(live));
    diff * 100 > u64::from(band_pct) * u64::from(reported)
}

/// The JAP role of one proxy. Call order (quinn-proto): `handle_*`, then
/// drain [`Jap::poll_transmit`], [`Jap::poll_probe`] and
/// [`Jap::take_dirty`]; call [`Jap::handle_timeout`] at
/// [`Jap::poll_timeout`].
#[derive(Clone, Debug)]
pub struct Jap {
    cfg: JapConfig,
    groups: BTreeMap<GroupAddr, GroupState>,
    targets_total: usize,
    in_flight: HashMap<ProbeId, (GroupAddr, TargetAddr, Instant)>,
    next_probe_id: u64,
    probes: VecDeque<HealthProbe>,
    out: VecDeque<Outgoing>,
    invalidated: HashMap<(GroupAddr, Ipv4Addr), Instant>,
    /// Groups whose table entry (targets, alive flags) changed.
    dirty: Vec<GroupAddr>,
    /// Earliest time something is due.
    wake: Option<Instant>,
    /// Last report sequence number given (all groups; see `stamp`).
    seq: u32,
    /// Reports are flushed at this time.
    report_due: Option<Instant>,
    counters: JapCounters,
    /// Derives session keys; none: no sessions granted.
    session_secret: Option<SessionSecret>,
    /// Last session id given.
    session_id: u64,
}

impl Jap {
    /// An empty JAP.
    pub fn new(cfg: JapConfig) -> Self {
        Jap {
            cfg,
            groups: BTreeMap::new(),
            targets_total: 0,
            in_flight: HashMap::new(),
            next_probe_id: 1,
            probes: VecDeque::new(),
            out: VecDeque::new(),
            invalidated: HashMap::new(),
            dirty: Vec::new(),
            wake: None,
            seq: 0,
            report_due: None,
            counters: JapCounters::default(),
            session_secret: None,
            session_id: 0,
        }
    }

    /// Grant sessions derived from this secret from now on
    /// ([`SessionSecret::derive`]; `ProxyControl` sets it).
    pub fn set_session_secret(&mut self, secret: SessionSecret) {
        self.session_secret = Some(secret);
    }

    /// The settings.
    pub fn config(&self) -> &JapConfig {
        &self.cfg
    }

    /// The counters.
    pub fn counters(&self) -> &JapCounters {
        &self.counters
    }

    /// Groups with state here (targets, or a count of 0 still to report).
    pub fn groups(&self) -> impl Iterator<Item = &GroupAddr> + '_ {
        self.groups.keys()
    }

    /// Targets held, all groups.
    pub fn target_count(&self) -> usize {
        self.targets_total
    }

    /// Live targets of a group here.
    pub fn live(&self, g: &GroupAddr) -> u32 {
        self.groups.get(g).map_or(0, |s| s.live)
    }

    /// Reporting state of a group towards each of its RAPs: the RAP, the
    /// count last reported (if any), the band in force, and whether the
    /// last report is still unacknowledged.
    pub fn reported(&self, g: &GroupAddr) -> Vec<(ProxyId, Option<u32>, u8, bool)> {
        self.groups.get(g).map_or_else(Vec::new, |s| {
            s.raps
                .iter()
                .map(|l| {
                    (
                        l.rap,
                        l.reported.map(|r| r.0),
                        l.band_pct,
                        l.unacked.is_some(),
                    )
                })
                .collect()
        })
    }

    /// Probes handed out and not answered yet.
    pub fn probes_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Report entries sent to RAPs and not acknowledged yet.
    pub fn unacked_reports(&self) -> usize {
        self.groups
            .values()
            .flat_map(|s| &s.raps)
            .filter(|l| l.unacked.is_some())
            .count()
    }

    /// The group's targets as the dataplane's table wants them (the JAP
    /// view of [`pias_dataplane::tables::GroupSpec`]).
    pub fn local_targets(&self, g: &GroupAddr) -> Vec<LocalTarget> {
        self.groups.get(g).map_or_else(Vec::new, |s| {
            s.targets
                .iter()
                .map(|(a, t)| LocalTarget {
                    addr: *a,
                    alive: t.alive,
                    weight: 1,
                })
                .collect()
        })
    }

    /// Groups whose targets changed since the last call.
    pub fn take_dirty(&mut self) -> Vec<GroupAddr> {
        let mut d = core::mem::take(&mut self.dirty);
        d.sort_unstable();
        d.dedup();
        d
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Outgoing> {
        self.out.pop_front()
    }

    /// The next health probe for the driver.
    pub fn poll_probe(&mut self) -> Option<HealthProbe> {
        self.probes.pop_front()
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.wake, self.report_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn wake_at(&mut self, t: Instant) {
        // Round up to the tick grid so that a JAP with many targets scans
        // them at most once per tick.
        let tick = self.cfg.tick.as_nanos().max(1) as u64;
        let n = t.as_nanos();
        let t = Instant::from_nanos(n.div_ceil(tick).saturating_mul(tick));
        self.wake = Some(self.wake.map_or(t, |w| w.min(t)));
    }

    fn report_soon(&mut self, now: Instant) {
        let t = now + self.cfg.report_delay;
        self.report_due = Some(self.report_due.map_or(t, |d| d.min(t)));
    }

    fn mark(&mut self, g: GroupAddr) {
        self.dirty.push(g);
    }

    fn reply(&mut self, src: SocketAddrV4, group: &GroupAddr, msg: Message) {
        self.out.push_back(Outgoing {
            dest: Dest::Target {
                from: SocketAddrV4::new(group.ip(), self.cfg.port),
                to: src,
            },
            msg,
        });
    }

    fn nack(&mut self, src: SocketAddrV4, req: &TargetRequest, reason: NackReason) {
        match reason {
            NackReason::UnknownGroup | NackReason::Withdrawn => {
                self.counters.nack_unknown_group += 1
            }
            NackReason::BadTarget => self.counters.nack_bad_target += 1,
            NackReason::Full => self.counters.nack_full += 1,
            NackReason::NotJoined => self.counters.nack_not_joined += 1,
            _ => {}
        }
        self.reply(
            src,
            &req.group,
            Message::JoinNack(JoinNack {
                group: req.group,
                target: req.target,
                nonce: req.nonce,
                reason,
            }),
        );
    }

    fn rap_links(view: &impl View, g: &GroupAddr, now: Instant, band: u8) -> Vec<RapLink> {
        view.raps(g)
            .iter()
            .map(|&rap| RapLink {
                rap,
                reported: None,
                band_pct: band,
                unacked: None,
                refresh_at: now,
            })
            .collect()
    }

    /// A join, refresh or leave that passed the gate, received from `src`
    /// at wall-clock `wall` (a session granted with the ack ends
    /// `session_lifetime` after it). Other messages are ignored.
    pub fn handle_request(
        &mut self,
        now: Instant,
        wall: UnixTime,
        view: &impl View,
        src: SocketAddrV4,
        msg: &Message,
    ) {
        let (req, kind) = match msg {
            Message::Join(r) => (r, 0),
            Message::Refresh(r) => (r, 1),
            Message::Leave(r) => (r, 2),
            _ => return,
        };
        let Some(options) = view.options(&req.group) else {
            self.nack(src, req, NackReason::UnknownGroup);
            return;
        };
        if kind == 2 {
            self.leave(now, view.me(), src, req);
            return;
        }
        if !view.target_allowed(&req.group, &req.target) {
            self.nack(src, req, NackReason::BadTarget);
            return;
        }
        let held = self
            .groups
            .get(&req.group)
            .is_some_and(|s| s.targets.contains_key(&req.target));
        if !held {
            let group_len = self.groups.get(&req.group).map_or(0, |s| s.targets.len());
            let new_group = !self.groups.contains_key(&req.group);
            if group_len >= self.cfg.max_targets_per_group
                || self.targets_total >= self.cfg.max_targets
                || (new_group && self.groups.len() >= self.cfg.max_groups)
            {
                self.nack(src, req, NackReason::Full);
                return;
            }
        }
        let lifetime = Duration::from_secs(u64::from(req.lifetime_s))
            .clamp(self.cfg.min_lifetime, self.cfg.max_lifetime);
        let band = self.cfg.initial_band_pct;
        let st = self.groups.entry(req.group).or_insert_with(|| GroupState {
            options,
            targets: BTreeMap::new(),
            live: 0,
            overloaded: false,
            stamped: None,
            seq: 0,
            raps: Self::rap_links(view, &req.group, now, band),
            announced: None,
            next_announce: now,
        });
        st.options = options;
        let expires = now + lifetime;
        let granted = match &self.session_secret {
            Some(secret) if !self.cfg.session_lifetime.is_zero() => {
                self.session_id += 1;
                let ends = UnixTime(
                    wall.0
                        .saturating_add(self.cfg.session_lifetime.as_secs().max(1)),
                );
                match secret.grant(req, self.session_id, ends) {
                    Some(Ok(g)) => {
                        self.counters.sessions_granted += 1;
                        Some(g)
                    }
                    Some(Err(SmallOrder)) => {
                        self.counters.session_small_order += 1;
                        None
                    }
                    None => None,
                }
            }
            _ => None,
        };
        // The JAP keeps the derived key only; its ephemeral key is gone.
        let session = granted.map(|(g, _)| g);
        let state = granted.map(|(g, key)| SessionState {
            id: g.id,
            key,
            counter: 0,
            expires: g.expires,
        });
        match st.targets.get_mut(&req.target) {
            Some(t) => {
                t.expires = expires;
                t.session = state;
                self.counters.refreshes += 1;
            }
            None => {
                st.targets.insert(
                    req.target,
                    Target {
                        expires,
                        alive: true,
                        fails: 0,
                        // First probe soon: confirms the target serves.
                        next_probe: now + self.cfg.retry_interval,
                        probe: None,
                        last_passive: None,
                        session: state,
                    },
                );
                st.live = st.live_count();
                self.targets_total += 1;
                if kind == 1 {
                    self.counters.refresh_as_join += 1;
                } else {
                    self.counters.joins += 1;
                }
                self.mark(req.group);
                self.report_soon(now);
                self.wake_at(now + self.cfg.retry_interval);
            }
        }
        self.wake_at(expires);
        self.reply(
            src,
            &req.group,
            Message::JoinAck(JoinAck {
                group: req.group,
                target: req.target,
                nonce: req.nonce,
                jap: view.me(),
                lifetime_s: u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX),
                session,
            }),
        );
    }

    /// A session refresh that passed the gate (session held, not expired,
    /// tag and counter checked against [`Sessions::session`]): record the
    /// counter, renew the soft state, ack without a new session.
    pub fn handle_session_refresh(
        &mut self,
        now: Instant,
        view: &impl View,
        src: SocketAddrV4,
        r: &SessionRefresh,
    ) {
        let lifetime = Duration::from_secs(u64::from(r.lifetime_s))
            .clamp(self.cfg.min_lifetime, self.cfg.max_lifetime);
        let expires = now + lifetime;
        let Some(t) = self
            .groups
            .get_mut(&r.group)
            .and_then(|s| s.targets.get_mut(&r.target))
        else {
            // The gate found the session a moment ago; nothing between.
            self.nack_session(src, r, NackReason::SessionUnknown);
            return;
        };
        match &mut t.session {
            Some(s) if s.id == r.session && r.counter > s.counter => s.counter = r.counter,
            _ => {
                self.nack_session(src, r, NackReason::SessionUnknown);
                return;
            }
        }
        t.expires = expires;
        self.counters.session_refreshes += 1;
        self.wake_at(expires);
        self.reply(
            src,
            &r.group,
            Message::JoinAck(JoinAck {
                group: r.group,
                target: r.target,
                nonce: r.nonce,
                jap: view.me(),
                lifetime_s: u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX),
                session: None,
            }),
        );
    }

    /// Answer a session refresh the gate refused as unknown or expired, so
    /// the target signs again at once instead of retrying.
    pub fn nack_session(&mut self, src: SocketAddrV4, r: &SessionRefresh, reason: NackReason) {
        self.counters.nack_session += 1;
        self.reply(
            src,
            &r.group,
            Message::JoinNack(JoinNack {
                group: r.group,
                target: r.target,
                nonce: r.nonce,
                reason,
            }),
        );
    }

    fn leave(&mut self, now: Instant, me: ProxyId, src: SocketAddrV4, req: &TargetRequest) {
        let removed = self
            .groups
            .get_mut(&req.group)
            .and_then(|s| s.targets.remove(&req.target));
        let Some(t) = removed else {
            self.nack(src, req, NackReason::NotJoined);
            return;
        };
        if let Some(p) = t.probe {
            self.in_flight.remove(&p);
        }
        self.targets_total = self.targets_total.saturating_sub(1);
        self.counters.leaves += 1;
        self.after_target_change(now, req.group);
        self.reply(
            src,
            &req.group,
            Message::JoinAck(JoinAck {
                group: req.group,
                target: req.target,
                nonce: req.nonce,
                jap: me,
                lifetime_s: 0,
                session: None,
            }),
        );
    }

    fn after_target_change(&mut self, now: Instant, g: GroupAddr) {
        if let Some(st) = self.groups.get_mut(&g) {
            st.live = st.live_count();
        }
        self.mark(g);
        self.report_soon(now);
    }

    /// The result of a probe from [`Self::poll_probe`].
    pub fn handle_probe_result(&mut self, now: Instant, id: ProbeId, alive: bool) {
        let Some((g, a, _)) = self.in_flight.remove(&id) else {
            self.counters.probe_unknown += 1;
            return;
        };
        self.probe_outcome(now, g, a, id, alive);
    }

    fn probe_outcome(&mut self, now: Instant, g: GroupAddr, a: TargetAddr, id: ProbeId, ok: bool) {
        let (interval, retry, dead_after) = (
            self.cfg.probe_interval,
            self.cfg.retry_interval,
            self.cfg.dead_after.max(1),
        );
        let Some(t) = self.groups.get_mut(&g).and_then(|s| s.targets.get_mut(&a)) else {
            return;
        };
        if t.probe != Some(id) {
            return;
        }
        t.probe = None;
        let was = t.alive;
        if ok {
            t.fails = 0;
            t.alive = true;
            t.next_probe = now + interval;
        } else {
            self.counters.probe_failures += 1;
            t.fails = t.fails.saturating_add(1);
            if t.fails >= dead_after {
                t.alive = false;
            }
            t.next_probe = now + retry;
        }
        let (is, next) = (t.alive, t.next_probe);
        self.wake_at(next);
        if was != is {
            if is {
                self.counters.targets_revived += 1;
            } else {
                self.counters.targets_died += 1;
            }
            self.after_target_change(now, g);
        }
    }

    /// Passive health (dataplane `Up::TargetSilent`): probe the target now
    /// unless it was probed passively within `silent_probe_gap`.
    pub fn handle_silent(&mut self, now: Instant, g: &GroupAddr, target: &TargetAddr) {
        let gap = self.cfg.silent_probe_gap;
        let Some(t) = self
            .groups
            .get_mut(g)
            .and_then(|s| s.targets.get_mut(target))
        else {
            return;
        };
        if t.probe.is_some() || t.last_passive.is_some_and(|l| l + gap > now) {
            return;
        }
        t.last_passive = Some(now);
        t.next_probe = now;
        self.counters.passive_probes += 1;
        self.wake_at(now);
    }

    /// The dataplane got a packet of `g` from the IAP at `iap` and had no
    /// live target (`Up::JapNoTarget`): tell that IAP to drop this JAP.
    pub fn handle_no_target(
        &mut self,
        now: Instant,
        view: &impl View,
        g: &GroupAddr,
        iap: Ipv4Addr,
    ) {
        let key = (*g, iap);
        if self
            .invalidated
            .get(&key)
            .is_some_and(|t| *t + self.cfg.invalidate_gap > now)
        {
            self.counters.invalidations_suppressed += 1;
            return;
        }
        if self.invalidated.len() >= self.cfg.max_invalidate_memory {
            let gap = self.cfg.invalidate_gap;
            self.invalidated.retain(|_, t| *t + gap > now);
            if self.invalidated.len() >= self.cfg.max_invalidate_memory {
                self.invalidated.clear();
            }
        }
        self.invalidated.insert(key, now);
        self.counters.invalidations += 1;
        self.out.push_back(Outgoing {
            dest: Dest::ProxyAddr(iap),
            msg: Message::Invalidate(Invalidate {
                group: *g,
                jap: view.me(),
            }),
        });
    }

    /// Set the overload signal of a group (seed §3.3, end: "the JAP may
    /// simply need to send a message to the RAPs whenever its set of
    /// targets are overloaded"); the driver decides what overloaded means.
    pub fn set_overloaded(&mut self, now: Instant, g: &GroupAddr, overloaded: bool) {
        if let Some(st) = self.groups.get_mut(g) {
            if st.overloaded != overloaded {
                st.overloaded = overloaded;
                self.report_soon(now);
            }
        }
    }

    /// A RAP's acknowledgement, from proxy `from`.
    pub fn handle_report_ack(&mut self, _now: Instant, from: ProxyId, ack: &ReportAck) {
        for e in &ack.entries {
            self.apply_ack(from, e);
            // A group with no target left goes once every RAP has its 0.
            if self.groups.get(&e.group).is_some_and(|s| {
                s.targets.is_empty()
                    && !s.options.rapless
                    && s.raps.iter().all(|l| l.unacked.is_none())
            }) {
                self.groups.remove(&e.group);
            }
        }
    }

    fn apply_ack(&mut self, from: ProxyId, e: &crate::wire::ReportAckEntry) {
        {
            let link = self
                .groups
                .get_mut(&e.group)
                .and_then(|s| s.raps.iter_mut().find(|l| l.rap == from));
            match link {
                Some(l) if l.unacked.is_some_and(|(s, _)| s == e.seq) => {
                    l.unacked = None;
                    l.band_pct = e.band_pct.min(100);
                    self.counters.acks += 1;
                }
                Some(l) if l.reported.is_some() => {
                    // An ack of an older report still carries the band.
                    l.band_pct = e.band_pct.min(100);
                    self.counters.acks_stale += 1;
                }
                _ => self.counters.acks_stale += 1,
            }
        }
    }

    /// The RAP sets (or the options) of groups may have changed: compare
    /// every group held with the view. New RAPs get a report; RAPs no
    /// longer in a group's set are forgotten.
    pub fn handle_view_change(&mut self, now: Instant, view: &impl View) {
        let band = self.cfg.initial_band_pct;
        let mut gone = Vec::new();
        let mut changed = false;
        for (g, st) in self.groups.iter_mut() {
            let Some(options) = view.options(g) else {
                gone.push(*g);
                continue;
            };
            if options != st.options {
                st.options = options;
                st.raps.clear();
                st.announced = None;
                changed = true;
            }
            let want = view.raps(g);
            let before = st.raps.len();
            st.raps.retain(|l| want.contains(&l.rap));
            changed |= st.raps.len() != before;
            for &r in want {
                if !st.raps.iter().any(|l| l.rap == r) {
                    st.raps.push(RapLink {
                        rap: r,
                        reported: None,
                        band_pct: band,
                        unacked: None,
                        refresh_at: now,
                    });
                    changed = true;
                }
            }
        }
        for g in gone {
            // Withdrawn or no longer served: drop the targets.
            if let Some(st) = self.groups.remove(&g) {
                self.targets_total = self.targets_total.saturating_sub(st.targets.len());
                for t in st.targets.values() {
                    if let Some(p) = t.probe {
                        self.in_flight.remove(&p);
                    }
                }
                self.mark(g);
            }
        }
        if changed {
            self.report_soon(now);
        }
    }

    /// This proxy was declared down and refuted it (membership): every
    /// RAP and every proxy purged what it knew from this JAP, so report and
    /// announce everything again.
    pub fn handle_refuted(&mut self, now: Instant) {
        for st in self.groups.values_mut() {
            st.announced = None;
            for l in &mut st.raps {
                l.reported = None;
            }
        }
        self.report_soon(now);
    }

    /// A proxy went down: a RAP that restarts lost what we reported.
    pub fn handle_proxy_down(&mut self, p: ProxyId) {
        for st in self.groups.values_mut() {
            st.raps.retain(|l| l.rap != p);
        }
    }

    /// Run what is due at `now`: probes, expiry, reports.
    pub fn handle_timeout(&mut self, now: Instant, view: &impl View) {
        if self.wake.is_some_and(|w| w <= now) {
            self.wake = None;
            self.scan_targets(now);
        }
        if self.report_due.is_some_and(|d| d <= now) {
            self.report_due = None;
            self.flush_reports(now, view);
        }
    }

    fn scan_targets(&mut self, now: Instant) {
        // Probes whose result did not come back in time.
        let timeout = self.cfg.probe_timeout;
        let late: Vec<(ProbeId, GroupAddr, TargetAddr)> = self
            .in_flight
            .iter()
            .filter(|(_, (_, _, sent))| *sent + timeout <= now)
            .map(|(id, (g, a, _))| (*id, *g, *a))
            .collect();
        for (id, g, a) in late {
            self.in_flight.remove(&id);
            self.counters.probe_timeouts += 1;
            self.probe_outcome(now, g, a, id, false);
        }
        let mut changed = Vec::new();
        let mut next: Option<Instant> = None;
        let mut soonest = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        for (g, st) in self.groups.iter_mut() {
            let before = st.targets.len();
            st.targets.retain(|_, t| {
                if t.expires <= now {
                    if let Some(p) = t.probe {
                        self.in_flight.remove(&p);
                    }
                    false
                } else {
                    true
                }
            });
            let expired = before - st.targets.len();
            if expired > 0 {
                self.counters.expired += expired as u64;
                self.targets_total = self.targets_total.saturating_sub(expired);
                changed.push(*g);
            }
            let kind = self
                .cfg
                .probe_kinds
                .get(g)
                .copied()
                .unwrap_or_else(|| ProbeKind::default_for(g));
            for (a, t) in st.targets.iter_mut() {
                soonest(t.expires);
                if t.probe.is_none() && t.next_probe <= now {
                    if self.in_flight.len() >= self.cfg.max_probes_in_flight {
                        self.counters.probes_in_flight_full += 1;
                        t.next_probe = now + self.cfg.retry_interval;
                    } else {
                        let id = ProbeId(self.next_probe_id);
                        self.next_probe_id += 1;
                        t.probe = Some(id);
                        self.in_flight.insert(id, (*g, *a, now));
                        self.probes.push_back(HealthProbe {
                            id,
                            group: *g,
                            target: *a,
                            kind,
                        });
                        self.counters.probes += 1;
                        soonest(now + timeout);
                        continue;
                    }
                }
                if t.probe.is_none() {
                    soonest(t.next_probe);
                }
            }
        }
        if !self.in_flight.is_empty() {
            soonest(now + timeout);
        }
        let gap = self.cfg.invalidate_gap;
        self.invalidated.retain(|_, t| *t + gap > now);
        for g in changed {
            self.after_target_change(now, g);
        }
        if let Some(t) = next {
            self.wake_at(t);
        }
    }

    fn flush_reports(&mut self, now: Instant, view: &impl View) {
        let mut per_rap: BTreeMap<ProxyId, Vec<ReportEntry>> = BTreeMap::new();
        let mut announce: Vec<ReportEntry> = Vec::new();
        let mut next: Option<Instant> = None;
        let mut drop_groups = Vec::new();
        let (retransmit, refresh, every) = (
            self.cfg.report_retransmit,
            self.cfg.report_refresh,
            self.cfg.announce_interval,
        );
        for (g, st) in self.groups.iter_mut() {
            st.live = st.live_count();
            let content = (st.live, st.overloaded);
            if st.options.rapless {
                if st.announced != Some(content) || st.next_announce <= now {
                    let seq = st.stamp(&mut self.seq);
                    announce.push(ReportEntry {
                        group: *g,
                        approx_targets: content.0,
                        overloaded: content.1,
                        seq,
                    });
                    st.announced = Some(content);
                    st.next_announce = now + every;
                }
                if st.targets.is_empty() {
                    drop_groups.push(*g);
                    continue;
                }
                let t = st.next_announce;
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
                continue;
            }
            let mut group_next: Option<Instant> = None;
            for i in 0..st.raps.len() {
                let l = st.raps[i];
                let need = match l.reported {
                    None => true,
                    Some((c, o)) => o != content.1 || out_of_band(c, content.0, l.band_pct),
                } || l.refresh_at <= now;
                let resend = !need && l.unacked.is_some_and(|(_, sent)| sent + retransmit <= now);
                if need {
                    let seq = st.stamp(&mut self.seq);
                    per_rap.entry(l.rap).or_default().push(ReportEntry {
                        group: *g,
                        approx_targets: content.0,
                        overloaded: content.1,
                        seq,
                    });
                    let l = &mut st.raps[i];
                    l.reported = Some(content);
                    l.unacked = Some((seq, now));
                    l.refresh_at = now + refresh;
                } else if resend {
                    if let (Some((c, o)), Some((seq, _))) = (l.reported, l.unacked) {
                        per_rap.entry(l.rap).or_default().push(ReportEntry {
                            group: *g,
                            approx_targets: c,
                            overloaded: o,
                            seq,
                        });
                        self.counters.report_retransmits += 1;
                        st.raps[i].unacked = Some((seq, now));
                    }
                }
                let l = st.raps[i];
                let mut t = l.refresh_at;
                if let Some((_, sent)) = l.unacked {
                    t = t.min(sent + retransmit);
                }
                group_next = Some(group_next.map_or(t, |n: Instant| n.min(t)));
            }
            // A group with no target left is dropped once every RAP has
            // acknowledged the 0 (or there is no RAP to tell).
            if st.targets.is_empty() && st.raps.iter().all(|l| l.unacked.is_none()) {
                drop_groups.push(*g);
            } else if let Some(t) = group_next {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        }
        for g in drop_groups {
            self.groups.remove(&g);
        }
        for (rap, entries) in per_rap {
            for chunk in entries.chunks(MAX_REPORT_ENTRIES) {
                self.counters.reports += 1;
                self.counters.report_entries += chunk.len() as u64;
                self.out.push_back(Outgoing::to_proxy(
                    rap,
                    Message::Report(Report {
                        jap: view.me(),
                        entries: chunk.to_vec(),
                    }),
                ));
            }
        }
        if !announce.is_empty() {
            for chunk in announce.chunks(MAX_REPORT_ENTRIES) {
                // This proxy's own IAP role needs the entry too (delivered
                // locally by the composition).
                for &p in core::iter::once(&view.me()).chain(view.peers()) {
                    self.counters.announces += 1;
                    self.out.push_back(Outgoing::to_proxy(
                        p,
                        Message::JapAnnounce(JapAnnounce {
                            jap: view.me(),
                            entries: chunk.to_vec(),
                        }),
                    ));
                }
            }
        }
        if let Some(t) = next {
            self.report_due = Some(self.report_due.map_or(t, |d| d.min(t)));
        }
    }
}

impl Sessions for Jap {
    fn session(&self, group: &GroupAddr, target: &TargetAddr) -> Option<&SessionState> {
        self.groups
            .get(group)?
            .targets
            .get(target)?
            .session
            .as_ref()
    }
}

#[cfg(test)]
mod tests;
