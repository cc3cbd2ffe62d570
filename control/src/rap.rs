//! The RAP role (seed §3.2, §3.3): the JAPs of the groups this proxy is a
//! rendezvous point for, with approximate target counts, and the JAP lists
//! it hands to IAPs.
//!
//! # Reports and the band
//! A JAP reports per group an approximate count and an overload flag
//! ([`Report`]); the report's `jap` must be its authenticated sender. The
//! RAP keeps the newest report per `(JAP, group)`, ordered by the sender's
//! `(epoch, seq)` (the epoch is the authenticated boot count of the
//! header, so a restarted JAP's reports are never taken for old ones). A
//! count of 0 withdraws the JAP from the group (kept as a tombstone so a
//! reordered older report cannot bring it back). Reports for groups this
//! proxy is not a RAP of (by its own view) are neither applied nor acked:
//! the JAP retransmits until the views agree.
//!
//! Every applied report is acked ([`ReportAck`]) with the band the JAP must
//! use from then on. The band follows this RAP's own message load `L`
//! (reports and queries received plus lists sent, per second, an
//! exponentially weighted average over `load_window`):
//!
//! ```text
//! band % = clamp(round(base_band × L / target_load), min_band, max_band)
//!        = clamp(round(25 × L / 200), 5, 100)            (defaults)
//! ```
//!
//! so a RAP at its target load asks for ±25 % (the seed's example), a
//! lightly loaded one for ±5 %, and one at four times its target load for
//! ±100 % (report only to and from 0, or a doubling). A wider band means
//! fewer reports (seed §3.3: "as the RAP load goes up, it would request
//! less accuracy, thus reducing its load").
//!
//! # JAP lists (seed §3.2)
//! When the dataplane forwarded a packet for an IAP
//! ([`pias_dataplane::iface::Up::RapChose`]) or an IAP asks ([`RapQuery`]),
//! the RAP sends that IAP a [`JapList`]: the dataplane's own ranking
//! ([`pias_dataplane::select::jap_list_for_iap`]) over this RAP's view, for
//! the IAP's cluster, with a key fixed per (group, IAP) so that IAPs of one
//! cluster spread over JAPs tied in distance; after a `RapChose` the JAP the
//! dataplane actually chose goes first (so the flow that missed continues
//! where its first packet went). At most [`MAX_CACHED_JAPS`] JAPs: the IAP
//! caches that many.
//!
//! # Connection affinity (PROTOCOL.md §8)
//! For a group with the `affinity` option every RAP, for every IAP, hands
//! out the same list: the group's JAPs with live targets in rendezvous
//! order (highest `score(group, JAP)` first), and publishes only the first
//! of them (the group's *anchor*) in its dataplane view, so the
//! dataplane's per-packet choice is the anchor too. Every IAP then sends
//! every client of the group to the anchor, whose NAT keeps established
//! flows and whose target choice is keyed by the client's address; when
//! the anchor fails every IAP fails over to the same next JAP.
//!
//! # Pushing fresh lists
//! The RAP remembers the IAPs it answered per group (the last
//! `max_recent_iaps`). When a JAP stops serving a group (count 0), those
//! IAPs get a fresh list at once instead of learning it from their next
//! packet. A JAP that *starts* serving a group pushes nothing: the IAP
//! sends every packet of a group to the first live JAP of its list, so a
//! pushed list that ranks the new JAP first (nearer, or above the anchor
//! in rendezvous order) would move the connections in flight to a JAP
//! without their NAT state and reset them. IAPs learn a new JAP when a
//! listed one leaves, or when their list expires.

use std::collections::{BTreeMap, VecDeque};

use core::time::Duration;

use hashbrown::HashMap;
use pias_dataplane::jap_cache::MAX_CACHED_JAPS;
use pias_dataplane::select::{jap_list_for_iap, mix64};
use pias_dataplane::tables::{GroupSpec, MAX_JAPS_PER_GROUP};
use pias_dataplane::types::{GroupAddr, JapLoad, ProxyId, ProxyInfo};

use crate::rendezvous::{group_hash, proxy_hash, score};
use crate::time::Instant;
use crate::transmit::Outgoing;
use crate::view::View;
use crate::wire::{
    JapList, Message, ProxyHeader, RapQuery, Report, ReportAck, ReportAckEntry,
    MAX_REPORT_ACK_ENTRIES,
};

/// Settings of the RAP role.
#[derive(Clone, Debug, PartialEq)]
pub struct RapConfig {
    /// Lifetime of the lists handed to IAPs.
    pub list_ttl: Duration,
    /// Band at the target load, in percent.
    pub base_band_pct: u8,
    /// Narrowest band.
    pub min_band_pct: u8,
    /// Widest band (at most 100).
    pub max_band_pct: u8,
    /// Message load (datagrams per second) at which the band is the base.
    pub target_load: f64,
    /// Time constant of the load average.
    pub load_window: Duration,
    /// The load is sampled and the band recomputed this often.
    pub tick: Duration,
    /// Most groups with a JAP table here.
    pub max_groups: usize,
    /// Most JAPs per group (the dataplane's cap).
    pub max_japs_per_group: usize,
    /// IAPs remembered per group, for list pushes.
    pub max_recent_iaps: usize,
    /// A second list for the same (group, IAP) within this is suppressed
    /// (several workers may report one choice).
    pub list_gap: Duration,
}

impl Default for RapConfig {
    fn default() -> Self {
        RapConfig {
            list_ttl: Duration::from_secs(3600),
            base_band_pct: 25,
            min_band_pct: 5,
            max_band_pct: 100,
            target_load: 200.0,
            load_window: Duration::from_secs(10),
            tick: Duration::from_secs(1),
            max_groups: 1_000_000,
            max_japs_per_group: MAX_JAPS_PER_GROUP,
            max_recent_iaps: 32,
            list_gap: Duration::from_millis(100),
        }
    }
}

impl RapConfig {
    /// The band for a load, by the rule in the module docs.
    pub fn band_for(&self, load: f64) -> u8 {
        let target = if self.target_load > 0.0 {
            self.target_load
        } else {
            1.0
        };
        let raw = (f64::from(self.base_band_pct) * load / target).round();
        let lo = f64::from(self.min_band_pct.min(100));
        let hi = f64::from(self.max_band_pct.min(100)).max(lo);
        // NaN (a NaN load) clamps to the minimum.
        let b = if raw.is_nan() { lo } else { raw.clamp(lo, hi) };
        b as u8
    }
}

/// What the RAP did and refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RapCounters {
    /// Report datagrams received.
    pub reports: u64,
    /// Report entries applied (newer than the one held).
    pub entries_applied: u64,
    /// Report entries older than or equal to the one held (acked, not
    /// applied).
    pub entries_stale: u64,
    /// Reports whose `jap` is not the authenticated sender (dropped).
    pub wrong_jap: u64,
    /// Entries for groups this proxy is not a RAP of (not acked).
    pub not_rap: u64,
    /// Entries for groups not served (unknown, withdrawn or RAP-less).
    pub not_served: u64,
    /// Entries refused: too many groups.
    pub groups_full: u64,
    /// Entries refused: too many JAPs in the group.
    pub japs_full: u64,
    /// Ack datagrams sent.
    pub acks: u64,
    /// Queries received.
    pub queries: u64,
    /// Lists sent (answers and pushes).
    pub lists: u64,
    /// Lists pushed after a JAP left a group.
    pub pushes: u64,
    /// Lists suppressed by `list_gap`.
    pub lists_suppressed: u64,
    /// Choices or queries naming an IAP this proxy does not know.
    pub unknown_iap: u64,
    /// Lists that could not be computed (an invalid one-group table:
    /// never expected).
    pub list_failed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct JapEntry {
    approx: u32,
    overloaded: bool,
    epoch: u32,
    seq: u32,
}

#[derive(Clone, Debug, Default)]
struct RapGroup {
    japs: BTreeMap<ProxyId, JapEntry>,
    recent: Vec<(ProxyId, Instant)>,
}

impl RapGroup {
    fn live(&self) -> impl Iterator<Item = (ProxyId, &JapEntry)> + '_ {
        self.japs
            .iter()
            .filter(|(_, e)| e.approx > 0)
            .map(|(j, e)| (*j, e))
    }
}

/// The RAP role of one proxy. Call order as for every machine:
/// `handle_*`, then drain [`Rap::poll_transmit`] and [`Rap::take_dirty`];
/// [`Rap::handle_timeout`] at [`Rap::poll_timeout`].
#[derive(Clone, Debug)]
pub struct Rap {
    cfg: RapConfig,
    groups: HashMap<GroupAddr, RapGroup>,
    out: VecDeque<Outgoing>,
    dirty: Vec<GroupAddr>,
    /// Datagrams since the last tick.
    events: u64,
    load: f64,
    band: u8,
    next_tick: Option<Instant>,
    counters: RapCounters,
}

impl Rap {
    /// An empty RAP.
    pub fn new(cfg: RapConfig) -> Self {
        let band = cfg.band_for(0.0);
        Rap {
            cfg,
            groups: HashMap::new(),
            out: VecDeque::new(),
            dirty: Vec::new(),
            events: 0,
            load: 0.0,
            band,
            next_tick: None,
            counters: RapCounters::default(),
        }
    }

    /// The counters.
    pub fn counters(&self) -> &RapCounters {
        &self.counters
    }

    /// The band this RAP asks for now, in percent.
    pub fn band_pct(&self) -> u8 {
        self.band
    }

    /// The measured message load, datagrams per second.
    pub fn load(&self) -> f64 {
        self.load
    }

    /// Groups with a JAP table here.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The JAPs with live targets of a group, with their approximate
    /// counts, by id.
    pub fn japs(&self, g: &GroupAddr) -> Vec<(ProxyId, u32)> {
        self.groups
            .get(g)
            .map_or_else(Vec::new, |s| s.live().map(|(j, e)| (j, e.approx)).collect())
    }

    /// Groups whose view changed since the last call.
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

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_tick
    }

    fn activity(&mut self, now: Instant, n: u64) {
        self.events = self.events.saturating_add(n);
        if self.next_tick.is_none() {
            self.next_tick = Some(now + self.cfg.tick);
        }
    }

    /// Sample the load and recompute the band.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(t) = self.next_tick else { return };
        if t > now {
            return;
        }
        let dt = self.cfg.tick.as_secs_f64().max(1e-6);
        let rate = self.events as f64 / dt;
        let alpha = (dt / self.cfg.load_window.as_secs_f64().max(dt)).min(1.0);
        self.load += alpha * (rate - self.load);
        self.events = 0;
        self.band = self.cfg.band_for(self.load);
        // Keep ticking while the average has not decayed to nothing.
        self.next_tick = if self.load > 0.01 || !self.groups.is_empty() {
            Some(now + self.cfg.tick)
        } else {
            None
        };
    }

    /// A report from proxy `header.sender`.
    pub fn handle_report(
        &mut self,
        now: Instant,
        view: &impl View,
        header: &ProxyHeader,
        report: &Report,
    ) {
        self.counters.reports += 1;
        self.activity(now, 1);
        if report.jap != header.sender {
            self.counters.wrong_jap += 1;
            return;
        }
        let jap = report.jap;
        let me = view.me();
        let mut acks = Vec::new();
        let mut withdrawn = Vec::new();
        for e in &report.entries {
            match view.options(&e.group) {
                Some(o) if !o.rapless => {}
                _ => {
                    self.counters.not_served += 1;
                    continue;
                }
            }
            if !view.raps(&e.group).contains(&me) {
                self.counters.not_rap += 1;
                continue;
            }
            if !self.groups.contains_key(&e.group) && self.groups.len() >= self.cfg.max_groups {
                self.counters.groups_full += 1;
                continue;
            }
            let st = self.groups.entry(e.group).or_default();
            let new = JapEntry {
                approx: e.approx_targets,
                overloaded: e.overloaded,
                epoch: header.epoch,
                seq: e.seq,
            };
            match st.japs.get(&jap).copied() {
                None if st.japs.len() >= self.cfg.max_japs_per_group => {
                    self.counters.japs_full += 1;
                    continue;
                }
                Some(old) if (old.epoch, old.seq) >= (new.epoch, new.seq) => {
                    self.counters.entries_stale += 1;
                }
                old => {
                    self.counters.entries_applied += 1;
                    st.japs.insert(jap, new);
                    let was_live = old.is_some_and(|o| o.approx > 0);
                    if old.map(|o| (o.approx, o.overloaded)) != Some((new.approx, new.overloaded)) {
                        self.dirty.push(e.group);
                    }
                    if was_live && new.approx == 0 {
                        withdrawn.push(e.group);
                    }
                }
            }
            acks.push(ReportAckEntry {
                group: e.group,
                seq: e.seq,
                band_pct: self.band,
            });
        }
        for chunk in acks.chunks(MAX_REPORT_ACK_ENTRIES) {
            self.counters.acks += 1;
            self.out.push_back(Outgoing::to_proxy(
                jap,
                Message::ReportAck(ReportAck {
                    entries: chunk.to_vec(),
                }),
            ));
        }
        for g in withdrawn {
            self.push_lists(now, view, &g);
        }
    }

    /// A query from IAP `from`.
    pub fn handle_query(&mut self, now: Instant, view: &impl View, from: ProxyId, q: &RapQuery) {
        self.counters.queries += 1;
        self.activity(now, 1);
        let Some(iap) = view.proxy(from) else {
            self.counters.unknown_iap += 1;
            return;
        };
        self.send_list(now, view, &q.group, iap, None, true);
    }

    /// The dataplane forwarded a packet of `g` from the IAP at `iap` to
    /// `jap` (`Up::RapChose`): send that IAP the list, `jap` first.
    pub fn handle_chose(
        &mut self,
        now: Instant,
        view: &impl View,
        g: &GroupAddr,
        jap: ProxyId,
        iap: core::net::Ipv4Addr,
    ) {
        let Some(info) = view.proxy_by_addr(iap) else {
            self.counters.unknown_iap += 1;
            return;
        };
        self.send_list(now, view, g, info, Some(jap), false);
    }

    fn send_list(
        &mut self,
        now: Instant,
        view: &impl View,
        g: &GroupAddr,
        iap: ProxyInfo,
        chose: Option<ProxyId>,
        force: bool,
    ) {
        let gap = self.cfg.list_gap;
        if let Some(st) = self.groups.get(g) {
            if !force
                && st
                    .recent
                    .iter()
                    .any(|(p, t)| *p == iap.id && *t + gap > now)
            {
                self.counters.lists_suppressed += 1;
                return;
            }
        }
        let japs = self.list_for(view, g, &iap, chose);
        self.remember(g, iap.id, now);
        self.activity(now, 1);
        self.counters.lists += 1;
        self.out.push_back(Outgoing::to_proxy(
            iap.id,
            Message::JapList(JapList {
                group: *g,
                ttl_s: u32::try_from(self.cfg.list_ttl.as_secs()).unwrap_or(u32::MAX),
                japs,
            }),
        ));
    }

    fn remember(&mut self, g: &GroupAddr, iap: ProxyId, now: Instant) {
        let Some(st) = self.groups.get_mut(g) else {
            return;
        };
        if let Some(e) = st.recent.iter_mut().find(|(p, _)| *p == iap) {
            e.1 = now;
            return;
        }
        if st.recent.len() >= self.cfg.max_recent_iaps {
            if let Some(oldest) = st
                .recent
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(i, _)| i)
            {
                st.recent.swap_remove(oldest);
            }
        }
        st.recent.push((iap, now));
    }

    fn push_lists(&mut self, now: Instant, view: &impl View, g: &GroupAddr) {
        let ttl = self.cfg.list_ttl;
        let recent: Vec<ProxyId> = self
            .groups
            .get(g)
            .map(|s| {
                s.recent
                    .iter()
                    .filter(|(_, t)| *t + ttl > now)
                    .map(|(p, _)| *p)
                    .collect()
            })
            .unwrap_or_default();
        for p in recent {
            let Some(iap) = view.proxy(p).filter(|i| i.up) else {
                continue;
            };
            let japs = self.list_for(view, g, &iap, None);
            self.counters.lists += 1;
            self.counters.pushes += 1;
            self.activity(now, 1);
            self.out.push_back(Outgoing::to_proxy(
                p,
                Message::JapList(JapList {
                    group: *g,
                    ttl_s: u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX),
                    japs,
                }),
            ));
        }
    }

    /// The group's JAPs with live targets that the view knows as up, in
    /// rendezvous order for the group (highest score first): the affinity
    /// order.
    fn anchor_order(&self, view: &impl View, g: &GroupAddr) -> Vec<ProxyId> {
        let Some(st) = self.groups.get(g) else {
            return Vec::new();
        };
        let gh = group_hash(g);
        let mut v: Vec<(u64, ProxyId)> = st
            .live()
            .filter(|(j, _)| view.proxy(*j).is_some_and(|p| p.up))
            .map(|(j, _)| (score(gh, proxy_hash(j)), j))
            .collect();
        v.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        v.into_iter().map(|(_, j)| j).collect()
    }

    /// The JAP list for an IAP (see the module docs).
    pub fn list_for(
        &mut self,
        view: &impl View,
        g: &GroupAddr,
        iap: &ProxyInfo,
        chose: Option<ProxyId>,
    ) -> Vec<ProxyId> {
        let Some(options) = view.options(g) else {
            return Vec::new();
        };
        if options.affinity {
            let mut v = self.anchor_order(view, g);
            v.truncate(MAX_CACHED_JAPS);
            return v;
        }
        let all = self.all_japs(view, g);
        if all.is_empty() {
            return Vec::new();
        }
        let mut spec = GroupSpec::new(*g, options);
        spec.raps = vec![view.me()];
        spec.japs = all;
        let t = match view.tables().with_groups(&[spec], 0) {
            Ok(t) => t,
            Err(_) => {
                self.counters.list_failed += 1;
                return Vec::new();
            }
        };
        let Some(e) = t.group(g) else {
            self.counters.list_failed += 1;
            return Vec::new();
        };
        let key = mix64(group_hash(g) ^ u64::from(iap.id.0));
        let mut l = jap_list_for_iap(&t, e, iap.cluster, key, key);
        if let Some(j) = chose {
            l.promote(j);
        }
        l.as_slice().to_vec()
    }

    /// Every JAP with live targets that the view knows, with its load.
    fn all_japs(&self, view: &impl View, g: &GroupAddr) -> Vec<JapLoad> {
        self.groups.get(g).map_or_else(Vec::new, |s| {
            s.live()
                .filter(|(j, _)| view.proxy(*j).is_some())
                .take(MAX_JAPS_PER_GROUP)
                .map(|(j, e)| JapLoad {
                    jap: j,
                    approx_targets: e.approx,
                    overloaded: e.overloaded,
                    weight: 0,
                })
                .collect()
        })
    }

    /// This RAP's view of a group for the dataplane's table
    /// ([`GroupSpec::japs`]): every JAP with live targets, or for an
    /// affinity group only its anchor (see the module docs).
    pub fn view_japs(&self, view: &impl View, g: &GroupAddr) -> Vec<JapLoad> {
        let Some(options) = view.options(g) else {
            return Vec::new();
        };
        let all = self.all_japs(view, g);
        if !options.affinity {
            return all;
        }
        match self.anchor_order(view, g).first() {
            Some(a) => all.into_iter().filter(|j| j.jap == *a).collect(),
            None => Vec::new(),
        }
    }

    /// Membership or registrations changed: drop the groups this proxy no
    /// longer is a RAP of (their JAPs report to the new RAPs).
    pub fn handle_view_change(&mut self, view: &impl View) {
        let me = view.me();
        let mut gone = Vec::new();
        for g in self.groups.keys() {
            let served = view.options(g).is_some_and(|o| !o.rapless);
            if !served || !view.raps(g).contains(&me) {
                gone.push(*g);
            }
        }
        for g in gone {
            self.groups.remove(&g);
            self.dirty.push(g);
        }
    }

    /// A proxy went down: it is no JAP of anything any more (every IAP
    /// purges it by itself; no push needed). Affinity groups whose anchor
    /// it was get a new anchor.
    pub fn handle_proxy_down(&mut self, p: ProxyId) {
        for (g, st) in self.groups.iter_mut() {
            if st.japs.remove(&p).is_some() {
                self.dirty.push(*g);
            }
            st.recent.retain(|(i, _)| *i != p);
        }
    }
}

#[cfg(test)]
mod tests;
