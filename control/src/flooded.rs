//! The flooded JAP lists of RAP-less groups (seed §3.2, end: "it would be
//! possible for a small number of groups with minimal target churn to
//! operate without RAPs — that is, to spread JAP information among all
//! APs"). Every proxy holds, for every group with the `rapless` option,
//! the JAPs that announced live targets ([`JapAnnounce`]), and publishes
//! them as the group's `flooded` list; the dataplane's IAP stage chooses a
//! JAP from it itself, with no RAP hop.
//!
//! Announcements are ordered per `(JAP, group)` by the sender's
//! `(epoch, seq)`; a count of 0 removes the JAP; an entry not refreshed
//! within `expire_after` (three announce intervals by default) is dropped,
//! so a lost withdrawal costs at most that; a JAP declared down by
//! membership is dropped at once.
//!
//! Affinity: for a RAP-less group with affinity and the `Proximity`
//! criterion the published list is only the group's anchor (the JAP with
//! the highest rendezvous score), because a proximity choice depends on the
//! IAP's cluster; with the other criteria the dataplane's choice is keyed
//! by the client's address alone, the same at every IAP, so the whole list
//! is published.

use std::collections::BTreeMap;

use core::time::Duration;

use hashbrown::HashMap;
use pias_dataplane::tables::MAX_JAPS_PER_GROUP;
use pias_dataplane::types::{Criterion, GroupAddr, JapLoad, ProxyId};

use crate::rendezvous::{group_hash, proxy_hash, score};
use crate::time::Instant;
use crate::view::View;
use crate::wire::{JapAnnounce, ProxyHeader};

/// Settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloodedConfig {
    /// Entries not refreshed within this are dropped.
    pub expire_after: Duration,
    /// Most RAP-less groups.
    pub max_groups: usize,
    /// Most JAPs per group.
    pub max_japs_per_group: usize,
}

impl Default for FloodedConfig {
    fn default() -> Self {
        FloodedConfig {
            expire_after: Duration::from_secs(180),
            max_groups: 65_536,
            max_japs_per_group: MAX_JAPS_PER_GROUP,
        }
    }
}

/// What was applied and refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FloodedCounters {
    /// Announce datagrams received.
    pub announces: u64,
    /// Entries applied.
    pub applied: u64,
    /// Entries not newer than the one held.
    pub stale: u64,
    /// Announces whose `jap` is not the sender (dropped).
    pub wrong_jap: u64,
    /// Entries for groups that are not RAP-less here.
    pub not_rapless: u64,
    /// Entries refused by a cap.
    pub full: u64,
    /// Entries expired.
    pub expired: u64,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    approx: u32,
    overloaded: bool,
    epoch: u32,
    seq: u32,
    expires: Instant,
}

/// The flooded lists. Call [`Flooded::handle_timeout`] at
/// [`Flooded::poll_timeout`]; drain [`Flooded::take_dirty`].
#[derive(Clone, Debug)]
pub struct Flooded {
    cfg: FloodedConfig,
    groups: HashMap<GroupAddr, BTreeMap<ProxyId, Entry>>,
    dirty: Vec<GroupAddr>,
    wake: Option<Instant>,
    counters: FloodedCounters,
}

impl Flooded {
    /// Nothing known.
    pub fn new(cfg: FloodedConfig) -> Self {
        Flooded {
            cfg,
            groups: HashMap::new(),
            dirty: Vec::new(),
            wake: None,
            counters: FloodedCounters::default(),
        }
    }

    /// The counters.
    pub fn counters(&self) -> &FloodedCounters {
        &self.counters
    }

    /// Groups whose list changed since the last call.
    pub fn take_dirty(&mut self) -> Vec<GroupAddr> {
        let mut d = core::mem::take(&mut self.dirty);
        d.sort_unstable();
        d.dedup();
        d
    }

    /// When to call [`Self::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wake
    }

    /// An announcement from `header.sender`.
    pub fn handle_announce(
        &mut self,
        now: Instant,
        view: &impl View,
        header: &ProxyHeader,
        a: &JapAnnounce,
    ) {
        self.counters.announces += 1;
        if a.jap != header.sender {
            self.counters.wrong_jap += 1;
            return;
        }
        let expires = now + self.cfg.expire_after;
        for e in &a.entries {
            if !view.options(&e.group).is_some_and(|o| o.rapless) {
                self.counters.not_rapless += 1;
                continue;
            }
            if !self.groups.contains_key(&e.group) {
                if e.approx_targets == 0 {
                    continue;
                }
                if self.groups.len() >= self.cfg.max_groups {
                    self.counters.full += 1;
                    continue;
                }
            }
            let japs = self.groups.entry(e.group).or_default();
            let held = japs.get(&a.jap).copied();
            if held.is_some_and(|h| (h.epoch, h.seq) >= (header.epoch, e.seq)) {
                self.counters.stale += 1;
                if let Some(h) = japs.get_mut(&a.jap) {
                    // A repeat still proves the JAP is there.
                    if (h.epoch, h.seq) == (header.epoch, e.seq) {
                        h.expires = expires;
                    }
                }
                continue;
            }
            if held.is_none() && japs.len() >= self.cfg.max_japs_per_group {
                self.counters.full += 1;
                continue;
            }
            self.counters.applied += 1;
            if e.approx_targets == 0 {
                japs.remove(&a.jap);
            } else {
                japs.insert(
                    a.jap,
                    Entry {
                        approx: e.approx_targets,
                        overloaded: e.overloaded,
                        epoch: header.epoch,
                        seq: e.seq,
                        expires,
                    },
                );
            }
            if japs.is_empty() {
                self.groups.remove(&e.group);
            }
            if held.map(|h| (h.approx, h.overloaded)) != Some((e.approx_targets, e.overloaded)) {
                self.dirty.push(e.group);
            }
        }
        if !self.groups.is_empty() && self.wake.is_none() {
            self.wake = Some(expires);
        }
    }

    /// Membership declared `p` down.
    pub fn handle_proxy_down(&mut self, p: ProxyId) {
        let mut emptied = Vec::new();
        for (g, japs) in self.groups.iter_mut() {
            if japs.remove(&p).is_some() {
                self.dirty.push(*g);
                if japs.is_empty() {
                    emptied.push(*g);
                }
            }
        }
        for g in emptied {
            self.groups.remove(&g);
        }
    }

    /// Registrations changed: forget groups that are no longer RAP-less.
    pub fn handle_view_change(&mut self, view: &impl View) {
        let gone: Vec<GroupAddr> = self
            .groups
            .keys()
            .filter(|g| !view.options(g).is_some_and(|o| o.rapless))
            .copied()
            .collect();
        for g in gone {
            self.groups.remove(&g);
            self.dirty.push(g);
        }
    }

    /// Expire entries.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.wake.is_none_or_later(now) {
            return;
        }
        let mut next: Option<Instant> = None;
        let mut emptied = Vec::new();
        for (g, japs) in self.groups.iter_mut() {
            let before = japs.len();
            japs.retain(|_, e| e.expires > now);
            if japs.len() != before {
                self.counters.expired += (before - japs.len()) as u64;
                self.dirty.push(*g);
            }
            if japs.is_empty() {
                emptied.push(*g);
            }
            for e in japs.values() {
                next = Some(next.map_or(e.expires, |n| n.min(e.expires)));
            }
        }
        for g in emptied {
            self.groups.remove(&g);
        }
        self.wake = next;
    }

    /// The group's flooded list for the dataplane's table
    /// ([`pias_dataplane::tables::GroupSpec::flooded`]): JAPs the view
    /// knows, with their counts (see the module docs for affinity).
    pub fn list(&self, view: &impl View, g: &GroupAddr) -> Vec<JapLoad> {
        let Some(japs) = self.groups.get(g) else {
            return Vec::new();
        };
        let mut v: Vec<JapLoad> = japs
            .iter()
            .filter(|(j, _)| view.proxy(**j).is_some())
            .map(|(j, e)| JapLoad {
                jap: *j,
                approx_targets: e.approx,
                overloaded: e.overloaded,
                weight: 0,
            })
            .collect();
        let o = view.options(g).unwrap_or_default();
        if o.affinity && o.criterion == Criterion::Proximity {
            let gh = group_hash(g);
            let anchor = v
                .iter()
                .filter(|j| view.proxy(j.jap).is_some_and(|p| p.up))
                .max_by(|a, b| {
                    score(gh, proxy_hash(a.jap))
                        .cmp(&score(gh, proxy_hash(b.jap)))
                        .then(b.jap.cmp(&a.jap))
                })
                .map(|j| j.jap);
            v.retain(|j| Some(j.jap) == anchor);
        }
        v
    }
}

trait LaterThan {
    fn is_none_or_later(&self, now: Instant) -> bool;
}

impl LaterThan for Option<Instant> {
    fn is_none_or_later(&self, now: Instant) -> bool {
        self.map_or(true, |w| w > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::testing::TestView;
    use crate::wire::{KeyId, ReportEntry};
    use core::net::Ipv4Addr;
    use pias_dataplane::types::GroupOptions;

    fn g() -> GroupAddr {
        GroupAddr::WholeIp(Ipv4Addr::new(198, 51, 100, 7))
    }

    fn hdr(sender: u32, epoch: u32) -> ProxyHeader {
        ProxyHeader {
            sender: ProxyId(sender),
            key_id: KeyId(0),
            epoch,
            seq: 0,
        }
    }

    fn ann(jap: u32, n: u32, seq: u32) -> JapAnnounce {
        JapAnnounce {
            jap: ProxyId(jap),
            entries: vec![ReportEntry {
                group: g(),
                approx_targets: n,
                overloaded: false,
                seq,
            }],
        }
    }

    fn rapless() -> GroupOptions {
        GroupOptions {
            rapless: true,
            ..GroupOptions::default()
        }
    }

    #[test]
    fn order_withdraw_expire_and_proxy_down() {
        let v = TestView::new(1, 6).group(g(), rapless(), &[]);
        let mut f = Flooded::new(FloodedConfig::default());
        let t0 = Instant::ZERO;
        f.handle_announce(t0, &v, &hdr(2, 1), &ann(2, 5, 1));
        f.handle_announce(t0, &v, &hdr(3, 1), &ann(3, 1, 1));
        assert_eq!(f.list(&v, &g()).len(), 2);
        assert_eq!(f.take_dirty(), vec![g()]);
        // Older or equal: ignored. Newer epoch: applied whatever the seq.
        f.handle_announce(t0, &v, &hdr(2, 1), &ann(2, 9, 1));
        assert_eq!(f.list(&v, &g())[0].approx_targets, 5);
        f.handle_announce(t0, &v, &hdr(2, 2), &ann(2, 9, 0));
        assert_eq!(f.list(&v, &g())[0].approx_targets, 9);
        // Wrong sender.
        f.handle_announce(t0, &v, &hdr(4, 1), &ann(2, 0, 9));
        assert_eq!(f.counters().wrong_jap, 1);
        // Withdrawal.
        f.handle_announce(t0, &v, &hdr(3, 1), &ann(3, 0, 2));
        assert_eq!(f.list(&v, &g()).len(), 1);
        // Proxy down.
        f.handle_proxy_down(ProxyId(2));
        assert!(f.list(&v, &g()).is_empty());
        // Expiry.
        f.handle_announce(t0, &v, &hdr(5, 1), &ann(5, 1, 1));
        let late = t0 + Duration::from_secs(181);
        assert_eq!(f.poll_timeout(), Some(t0 + Duration::from_secs(180)));
        f.handle_timeout(late);
        assert!(f.list(&v, &g()).is_empty());
        assert_eq!(f.counters().expired, 1);
        assert_eq!(f.poll_timeout(), None);
    }

    #[test]
    fn only_rapless_groups_and_caps() {
        let v = TestView::new(1, 6).group(g(), GroupOptions::default(), &[2]);
        let mut f = Flooded::new(FloodedConfig {
            max_japs_per_group: 1,
            ..FloodedConfig::default()
        });
        f.handle_announce(Instant::ZERO, &v, &hdr(2, 1), &ann(2, 5, 1));
        assert_eq!(f.counters().not_rapless, 1);
        let v = TestView::new(1, 6).group(g(), rapless(), &[]);
        f.handle_announce(Instant::ZERO, &v, &hdr(2, 1), &ann(2, 5, 1));
        f.handle_announce(Instant::ZERO, &v, &hdr(3, 1), &ann(3, 5, 1));
        assert_eq!(f.counters().full, 1);
        assert_eq!(f.list(&v, &g()).len(), 1);
    }

    #[test]
    fn proximity_affinity_publishes_the_anchor_only() {
        let o = GroupOptions {
            rapless: true,
            affinity: true,
            ..GroupOptions::default()
        };
        let v = TestView::new(1, 6).group(g(), o, &[]);
        let mut f = Flooded::new(FloodedConfig::default());
        for j in 2..=6 {
            f.handle_announce(Instant::ZERO, &v, &hdr(j, 1), &ann(j, 3, 1));
        }
        let l = f.list(&v, &g());
        assert_eq!(l.len(), 1);
        let gh = group_hash(&g());
        let best = (2..=6u32)
            .max_by_key(|&j| score(gh, proxy_hash(ProxyId(j))))
            .unwrap();
        assert_eq!(l[0].jap, ProxyId(best));
        let o = GroupOptions {
            criterion: Criterion::Random,
            ..o
        };
        let v = TestView::new(1, 6).group(g(), o, &[]);
        assert_eq!(f.list(&v, &g()).len(), 5);
    }
}
