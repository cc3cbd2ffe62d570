//! The IAP role (seed §3.2, §3.6): what the workers' JAP caches should
//! hold.
//!
//! The cache itself lives in every worker
//! ([`pias_dataplane::jap_cache::JapCache`], one per worker, single
//! writer). This machine decides its contents and says so in
//! [`CacheUpdate`]s, which the control core sends to every worker
//! ([`pias_dataplane::iface::Down`]); it keeps a mirror of what it told
//! them, to know when a list is exhausted and for inspection.
//!
//! - A RAP's [`JapList`] fills the group's entry (JAPs the view does not
//!   know as up are left out; an empty list removes the entry), for the
//!   list's TTL, capped by `max_ttl`.
//! - A JAP's [`Invalidate`] (its `jap` must be the authenticated sender)
//!   drops that JAP from the group's entry: the worker fails over to the
//!   next one. If that exhausts the list, the IAP asks the nearest RAP at
//!   once ([`RapQuery`]) instead of waiting for the next packet.
//! - Membership's news that a proxy is down drops it from every entry.
//! - An IAP miss ([`pias_dataplane::iface::Up::IapMiss`]): the packet went
//!   to a RAP, which answers with a list by itself. If no list arrived
//!   within `query_delay` the IAP asks explicitly, then every
//!   `query_retry`, `query_attempts` times at most (so a lost answer is
//!   repaired and a dead RAP does not cost more than that), each query to
//!   the next RAP by distance after the one before (the first one not to
//!   the RAP the miss went to), so a RAP that died silently costs one
//!   retry, not the overlay's detection time; at most one
//!   query in flight per group, at most `max_pending` groups waiting. An
//!   empty answer suppresses queries for the group for `negative_ttl`.

use std::collections::VecDeque;

use core::time::Duration;

use hashbrown::HashMap;
use pias_dataplane::jap_cache::CachedJaps;
use pias_dataplane::neighbour::Nanos;
use pias_dataplane::types::{GroupAddr, ProxyId};

use crate::time::Instant;
use crate::transmit::Outgoing;
use crate::view::View;
use crate::wire::{Invalidate, JapList, Message, RapQuery};

/// A change to the workers' JAP caches (maps one to one onto
/// [`pias_dataplane::iface::Down`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheUpdate {
    /// `Down::CacheFill`: cache this list for `ttl` (empty: remove).
    Fill {
        /// The group.
        group: GroupAddr,
        /// JAPs, best first.
        japs: CachedJaps,
        /// Lifetime in nanoseconds.
        ttl: Nanos,
    },
    /// `Down::CacheInvalidate`: drop `jap` from the group's list.
    Invalidate {
        /// The group.
        group: GroupAddr,
        /// The JAP.
        jap: ProxyId,
    },
    /// `Down::ProxyDown`: drop the proxy from every list.
    ProxyDown(ProxyId),
}

/// Settings of the IAP role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IapConfig {
    /// After a miss, wait this long for the RAP's own list before asking.
    pub query_delay: Duration,
    /// Then ask again this often…
    pub query_retry: Duration,
    /// …this many times at most.
    pub query_attempts: u8,
    /// Most groups waiting for a list.
    pub max_pending: usize,
    /// Longest lifetime of a cache entry, whatever the RAP says.
    pub max_ttl: Duration,
    /// Most entries in the mirror (the workers' caches have their own
    /// cap).
    pub max_cached: usize,
    /// After an empty list, misses of the group cause no query for this
    /// long.
    pub negative_ttl: Duration,
}

impl Default for IapConfig {
    fn default() -> Self {
        IapConfig {
            query_delay: Duration::from_millis(500),
            query_retry: Duration::from_secs(1),
            query_attempts: 3,
            max_pending: 4096,
            max_ttl: Duration::from_secs(3600),
            max_cached: 1 << 16,
            negative_ttl: Duration::from_secs(1),
        }
    }
}

/// What the IAP did and refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IapCounters {
    /// Misses reported by the dataplane.
    pub misses: u64,
    /// Misses of groups with no live RAP.
    pub misses_no_rap: u64,
    /// Misses not tracked: the pending table is full.
    pub pending_full: u64,
    /// Queries sent.
    pub queries: u64,
    /// Groups given up on after `query_attempts` queries.
    pub gave_up: u64,
    /// Lists received and applied.
    pub lists: u64,
    /// Lists received for groups not served here.
    pub lists_unknown_group: u64,
    /// JAPs left out of lists because the view does not know them as up.
    pub japs_filtered: u64,
    /// Invalidations applied.
    pub invalidations: u64,
    /// Invalidations whose `jap` is not the sender (dropped).
    pub invalidations_wrong_jap: u64,
    /// Lists exhausted by an invalidation (followed by a query).
    pub exhausted: u64,
    /// Mirror entries dropped because the mirror was full.
    pub mirror_full: u64,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    rap: ProxyId,
    due: Instant,
    attempts: u8,
}

/// The IAP role of one proxy. Call order: `handle_*`, then drain
/// [`Iap::poll_transmit`] and [`Iap::poll_update`];
/// [`Iap::handle_timeout`] at [`Iap::poll_timeout`].
#[derive(Clone, Debug)]
pub struct Iap {
    cfg: IapConfig,
    pending: HashMap<GroupAddr, Pending>,
    negative: HashMap<GroupAddr, Instant>,
    cache: HashMap<GroupAddr, (CachedJaps, Instant)>,
    out: VecDeque<Outgoing>,
    updates: VecDeque<CacheUpdate>,
    counters: IapCounters,
}

impl Iap {
    /// An IAP with nothing cached.
    pub fn new(cfg: IapConfig) -> Self {
        Iap {
            cfg,
            pending: HashMap::new(),
            negative: HashMap::new(),
            cache: HashMap::new(),
            out: VecDeque::new(),
            updates: VecDeque::new(),
            counters: IapCounters::default(),
        }
    }

    /// The counters.
    pub fn counters(&self) -> &IapCounters {
        &self.counters
    }

    /// The list the workers hold for a group (as this machine told them),
    /// if it has not expired.
    pub fn cached(&self, g: &GroupAddr, now: Instant) -> Option<CachedJaps> {
        self.cache
            .get(g)
            .filter(|(_, exp)| *exp > now)
            .map(|(l, _)| *l)
    }

    /// Groups waiting for a list.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Outgoing> {
        self.out.pop_front()
    }

    /// The next change for the workers' caches.
    pub fn poll_update(&mut self) -> Option<CacheUpdate> {
        self.updates.pop_front()
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.due).min()
    }

    /// The dataplane missed `g` and sent the packet to `rap`.
    pub fn handle_miss(
        &mut self,
        now: Instant,
        view: &impl View,
        g: &GroupAddr,
        rap: Option<ProxyId>,
    ) {
        self.counters.misses += 1;
        match view.options(g) {
            Some(o) if !o.rapless => {}
            _ => return,
        }
        let Some(rap) = rap.or_else(|| nearest_rap(view, g)) else {
            self.counters.misses_no_rap += 1;
            return;
        };
        if self.negative.get(g).is_some_and(|t| *t > now) || self.pending.contains_key(g) {
            return;
        }
        self.track(now, *g, rap, now + self.cfg.query_delay);
    }

    fn track(&mut self, now: Instant, g: GroupAddr, rap: ProxyId, due: Instant) {
        if self.pending.len() >= self.cfg.max_pending {
            self.negative.retain(|_, t| *t > now);
            self.counters.pending_full += 1;
            return;
        }
        self.pending.insert(
            g,
            Pending {
                rap,
                due,
                attempts: 0,
            },
        );
    }

    /// A RAP's list, from proxy `from`.
    pub fn handle_jap_list(&mut self, now: Instant, view: &impl View, _from: ProxyId, l: &JapList) {
        if view.options(&l.group).map_or(true, |o| o.rapless) {
            self.counters.lists_unknown_group += 1;
            return;
        }
        self.counters.lists += 1;
        let mut japs = CachedJaps::EMPTY;
        for &j in &l.japs {
            if view.proxy(j).is_some_and(|p| p.up) {
                japs.push(j);
            } else {
                self.counters.japs_filtered += 1;
            }
        }
        let ttl = Duration::from_secs(u64::from(l.ttl_s)).min(self.cfg.max_ttl);
        self.pending.remove(&l.group);
        if japs.is_empty() {
            self.cache.remove(&l.group);
            self.negative.insert(l.group, now + self.cfg.negative_ttl);
        } else {
            self.negative.remove(&l.group);
            if !self.cache.contains_key(&l.group) && self.cache.len() >= self.cfg.max_cached {
                self.cache.retain(|_, (_, exp)| *exp > now);
                if self.cache.len() >= self.cfg.max_cached {
                    self.counters.mirror_full += 1;
                    self.cache.clear();
                }
            }
            self.cache.insert(l.group, (japs, now + ttl));
        }
        self.updates.push_back(CacheUpdate::Fill {
            group: l.group,
            japs,
            ttl: u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX),
        });
    }

    /// A JAP's invalidation, from proxy `from`.
    pub fn handle_invalidate(
        &mut self,
        now: Instant,
        view: &impl View,
        from: ProxyId,
        inv: &Invalidate,
    ) {
        if inv.jap != from {
            self.counters.invalidations_wrong_jap += 1;
            return;
        }
        self.counters.invalidations += 1;
        self.updates.push_back(CacheUpdate::Invalidate {
            group: inv.group,
            jap: inv.jap,
        });
        let exhausted = match self.cache.get_mut(&inv.group) {
            Some((l, _)) => l.remove(inv.jap) && l.is_empty(),
            None => false,
        };
        if exhausted {
            self.cache.remove(&inv.group);
            self.counters.exhausted += 1;
            if !self.pending.contains_key(&inv.group) {
                if let Some(rap) = nearest_rap(view, &inv.group) {
                    self.track(now, inv.group, rap, now);
                }
            }
        }
    }

    /// Membership declared `p` down.
    pub fn handle_proxy_down(&mut self, p: ProxyId) {
        self.updates.push_back(CacheUpdate::ProxyDown(p));
        self.cache.retain(|_, (l, _)| {
            l.remove(p);
            !l.is_empty()
        });
    }

    /// Send the queries that are due.
    pub fn handle_timeout(&mut self, now: Instant, view: &impl View) {
        let due: Vec<GroupAddr> = self
            .pending
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(g, _)| *g)
            .collect();
        for g in due {
            let Some(p) = self.pending.get_mut(&g) else {
                continue;
            };
            if p.attempts >= self.cfg.query_attempts {
                self.pending.remove(&g);
                self.counters.gave_up += 1;
                continue;
            }
            // Each query goes to the next RAP by distance after the one
            // the miss (or the last query) went to: the explicit query is
            // the fallback for a RAP that did not answer, and that RAP may
            // be dead (e.g. it died with the IAP whose clients routing just
            // moved here) until the overlay notices.
            match rap_after(view, &g, p.rap) {
                Some(r) => p.rap = r,
                None => {
                    self.pending.remove(&g);
                    continue;
                }
            }
            p.attempts += 1;
            p.due = now + self.cfg.query_retry;
            let rap = p.rap;
            self.counters.queries += 1;
            self.out.push_back(Outgoing::to_proxy(
                rap,
                Message::RapQuery(RapQuery { group: g }),
            ));
        }
        self.negative.retain(|_, t| *t > now);
    }
}

/// The group's RAP nearest this proxy's cluster (seed §3.2), by the view's
/// RTT matrix; ties and unknown RTTs by rank.
pub fn nearest_rap(view: &impl View, g: &GroupAddr) -> Option<ProxyId> {
    raps_by_distance(view, g).first().copied()
}

/// The group's RAPs, nearest first (ties and unknown RTTs by rank).
fn raps_by_distance(view: &impl View, g: &GroupAddr) -> Vec<ProxyId> {
    let t = view.tables();
    let mine = view.proxy(view.me()).map(|p| p.cluster);
    let mut v: Vec<(u32, usize, ProxyId)> = view
        .raps(g)
        .iter()
        .enumerate()
        .map(|(rank, &r)| {
            let d = match (mine, view.proxy(r)) {
                (Some(a), Some(p)) => t.rtt_us(a, p.cluster).unwrap_or(u32::MAX),
                _ => u32::MAX,
            };
            (d, rank, r)
        })
        .collect();
    v.sort_unstable();
    v.into_iter().map(|(_, _, r)| r).collect()
}

/// The RAP after `prev` in distance order, cyclically (the nearest when
/// `prev` is no longer a RAP of `g`; `prev` itself when it is the only one).
fn rap_after(view: &impl View, g: &GroupAddr, prev: ProxyId) -> Option<ProxyId> {
    let v = raps_by_distance(view, g);
    match v.iter().position(|&r| r == prev) {
        Some(i) => v.get((i + 1) % v.len()).copied(),
        None => v.first().copied(),
    }
}

#[cfg(test)]
mod tests;
