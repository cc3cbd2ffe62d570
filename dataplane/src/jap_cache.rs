//! The IAP's JAP cache (seed §3.2), one per worker.
//!
//! When a RAP has chosen a JAP for a group it tells the IAP the group's JAP
//! list, best first, the rest for failover; the IAP caches it so that later
//! packets, of this connection and of later ones, go IAP → JAP directly
//! (Figure 2, segment 7). Entries live long (a TTL of minutes to hours)
//! because they are invalidated actively: a JAP whose targets left tells
//! the IAP on the next packet ([`JapCache::invalidate`]: fail over to the
//! next JAP), and the proxy overlay's news that a proxy died removes it
//! from every entry ([`JapCache::proxy_down`]). An emptied or expired entry
//! is a miss: the IAP goes back to the group's nearest RAP.
//!
//! Each worker owns its cache (single writer, no lock). Fills and
//! invalidations are decided on the control core and reach every worker as
//! [`crate::iface::Down`] messages applied at the top of the poll loop.
//!
//! The map is allocated once, at twice its entry cap, so neither a lookup
//! nor a fill ever allocates: hashbrown reclaims deleted slots by rehashing
//! in place while the table is at most half full. When the cap is reached a
//! fill first drops expired entries, then is refused and counted.
//!
//! [`Debounce`] keeps the stages from raising the same event (an IAP miss,
//! a RAP's choice for one IAP, a JAP's invalidation) for every packet of a
//! burst while the control plane is still answering the first one.

use core::hash::{BuildHasher, Hash};

use hashbrown::{DefaultHashBuilder, HashMap};

use crate::neighbour::Nanos;
use crate::types::{GroupAddr, ProxyId};

/// Most JAPs kept per cached group: the RAP's choice and seven failover
/// candidates. A longer list from a RAP is truncated; when all eight have
/// failed the IAP asks the RAP again.
pub const MAX_CACHED_JAPS: usize = 8;

/// Default entry cap of one worker's cache (about 7 MiB with the map's
/// slack).
pub const DEFAULT_CACHE_ENTRIES: usize = 1 << 16;

/// An ordered list of up to [`MAX_CACHED_JAPS`] distinct JAPs, failover
/// order (best first). Fixed size, `Copy`: it travels in a down message
/// without allocating.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CachedJaps {
    ids: [ProxyId; MAX_CACHED_JAPS],
    len: u8,
}

impl Default for CachedJaps {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl core::fmt::Debug for CachedJaps {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl CachedJaps {
    /// The empty list.
    pub const EMPTY: CachedJaps = CachedJaps { ids: [ProxyId(0); MAX_CACHED_JAPS], len: 0 };

    /// The first [`MAX_CACHED_JAPS`] distinct ids of `japs`, in order
    /// (repeats are skipped).
    pub fn from_slice(japs: &[ProxyId]) -> Self {
        let mut l = Self::EMPTY;
        for &j in japs {
            if l.is_full() {
                break;
            }
            l.push(j);
        }
        l
    }

    /// Appends `jap` unless the list is full or already holds it; true when
    /// appended.
    pub fn push(&mut self, jap: ProxyId) -> bool {
        if self.is_full() || self.contains(jap) {
            return false;
        }
        if let Some(slot) = self.ids.get_mut(usize::from(self.len)) {
            *slot = jap;
            self.len += 1;
            true
        } else {
            false
        }
    }

    /// The JAPs, best first.
    #[inline]
    pub fn as_slice(&self) -> &[ProxyId] {
        self.ids.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The best JAP.
    #[inline]
    pub fn first(&self) -> Option<ProxyId> {
        self.as_slice().first().copied()
    }

    /// Number of JAPs.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True when empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when it holds [`MAX_CACHED_JAPS`].
    #[inline]
    pub fn is_full(&self) -> bool {
        usize::from(self.len) >= MAX_CACHED_JAPS
    }

    /// True when `jap` is in the list.
    #[inline]
    pub fn contains(&self, jap: ProxyId) -> bool {
        self.as_slice().contains(&jap)
    }

    /// Removes `jap`, keeping the order of the rest; true when it was
    /// there.
    pub fn remove(&mut self, jap: ProxyId) -> bool {
        let n = usize::from(self.len);
        let Some(pos) = self.as_slice().iter().position(|&j| j == jap) else {
            return false;
        };
        if let Some(tail) = self.ids.get_mut(pos..n) {
            tail.rotate_left(1);
        }
        self.len -= 1;
        true
    }

    /// Moves `jap` to the front (inserting it, and dropping the last entry
    /// if the list was full): the RAP's actual choice goes first in the
    /// list sent to the IAP.
    pub fn promote(&mut self, jap: ProxyId) {
        if !self.remove(jap) && self.is_full() {
            self.len -= 1;
        }
        let n = usize::from(self.len);
        if let Some(head) = self.ids.get_mut(..=n) {
            head.rotate_right(1);
            if let Some(h) = head.first_mut() {
                *h = jap;
                self.len += 1;
            }
        }
    }
}

/// Counters of one cache (per worker; the worker publishes them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered with a live JAP.
    pub hits: u64,
    /// Lookups with no entry (including expired ones).
    pub misses: u64,
    /// Lookups that found the entry expired (also counted as misses).
    pub expired: u64,
    /// Lookups whose entry named no live JAP (not counted as misses).
    pub all_down: u64,
    /// Entries filled or replaced.
    pub fills: u64,
    /// Fills refused because the cache was full.
    pub refused_full: u64,
    /// JAPs removed by invalidations.
    pub invalidated: u64,
    /// JAPs removed because their proxy went down.
    pub proxy_down_removed: u64,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    japs: CachedJaps,
    expires: Nanos,
}

/// One worker's JAP cache; see the module documentation.
#[derive(Debug)]
pub struct JapCache {
    map: HashMap<GroupAddr, Entry>,
    cap: usize,
    stats: CacheStats,
}

impl Default for JapCache {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_ENTRIES)
    }
}

impl JapCache {
    /// A cache of at most `cap` entries (at least 1), allocated now.
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        JapCache { map: HashMap::with_capacity(cap.saturating_mul(2)), cap, stats: CacheStats::default() }
    }

    /// Caches `japs` (best first; repeats dropped, at most
    /// [`MAX_CACHED_JAPS`] kept) for `group` until `now + ttl`, replacing
    /// any earlier list. An empty list or a zero TTL removes the entry (the
    /// RAP knows no JAP). Returns false when refused because the cache is
    /// full even after dropping expired entries.
    pub fn fill(&mut self, group: GroupAddr, japs: &[ProxyId], ttl: Nanos, now: Nanos) -> bool {
        self.fill_list(group, CachedJaps::from_slice(japs), ttl, now)
    }

    /// [`JapCache::fill`] with a list already in cache form (as it arrives
    /// in [`crate::iface::Down::CacheFill`]).
    pub fn fill_list(&mut self, group: GroupAddr, japs: CachedJaps, ttl: Nanos, now: Nanos) -> bool {
        if japs.is_empty() || ttl == 0 {
            self.map.remove(&group);
            return true;
        }
        let entry = Entry { japs, expires: now.saturating_add(ttl) };
        if let Some(e) = self.map.get_mut(&group) {
            *e = entry;
            self.stats.fills += 1;
            return true;
        }
        if self.map.len() >= self.cap {
            self.map.retain(|_, e| e.expires > now);
            if self.map.len() >= self.cap {
                self.stats.refused_full += 1;
                return false;
            }
        }
        self.map.insert(group, entry);
        self.stats.fills += 1;
        true
    }

    /// The JAP to tunnel a packet for `group` to: the first JAP of the
    /// cached list for which `is_up` holds. `None` is a miss: no entry, an
    /// expired one (removed now), or no live JAP in it (kept: the overlay's
    /// proxy-down news will prune it). Never allocates.
    #[inline]
    pub fn lookup(&mut self, group: &GroupAddr, now: Nanos, is_up: impl Fn(ProxyId) -> bool) -> Option<ProxyId> {
        let Some(e) = self.map.get(group) else {
            self.stats.misses += 1;
            return None;
        };
        if now >= e.expires {
            self.map.remove(group);
            self.stats.expired += 1;
            self.stats.misses += 1;
            return None;
        }
        match e.japs.as_slice().iter().copied().find(|&j| is_up(j)) {
            Some(j) => {
                self.stats.hits += 1;
                Some(j)
            }
            None => {
                self.stats.all_down += 1;
                None
            }
        }
    }

    /// The cached list of `group` if present and not expired (status and
    /// tests; the packet path uses [`JapCache::lookup`]).
    pub fn get(&self, group: &GroupAddr, now: Nanos) -> Option<&CachedJaps> {
        self.map.get(group).filter(|e| now < e.expires).map(|e| &e.japs)
    }

    /// `jap` told us it no longer serves `group` (seed §3.2): drop it from
    /// the list so the next packet fails over to the next JAP; an emptied
    /// entry is removed (the next packet goes to a RAP). True when `jap`
    /// was in the list.
    pub fn invalidate(&mut self, group: &GroupAddr, jap: ProxyId) -> bool {
        let Some(e) = self.map.get_mut(group) else {
            return false;
        };
        if !e.japs.remove(jap) {
            return false;
        }
        self.stats.invalidated += 1;
        if e.japs.is_empty() {
            self.map.remove(group);
        }
        true
    }

    /// `proxy` went down (seed §3.2: "inter-AP monitoring will inform all
    /// APs"): remove it from every entry; emptied entries go. Returns the
    /// number of entries it was removed from. Linear in the cache size: a
    /// rare control event, never per packet.
    pub fn proxy_down(&mut self, proxy: ProxyId) -> usize {
        let mut n = 0usize;
        self.map.retain(|_, e| {
            if e.japs.remove(proxy) {
                n += 1;
            }
            !e.japs.is_empty()
        });
        self.stats.proxy_down_removed += n as u64;
        n
    }

    /// Forgets `group`.
    pub fn remove(&mut self, group: &GroupAddr) -> bool {
        self.map.remove(group).is_some()
    }

    /// Forgets everything (kept allocated).
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// Number of entries (expired ones included until looked up or swept).
    #[inline]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The entry cap.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The counters.
    #[inline]
    pub fn stats(&self) -> CacheStats {
        self.stats
    }
}

/// Rate limiter for events raised from the packet path: at most one event
/// per key per `interval`. A direct-mapped table of fixed size (allocated
/// once): a collision only lets an extra event through, never suppresses
/// one wrongly for longer than `interval`. No allocation per call.
#[derive(Debug)]
pub struct Debounce<K> {
    slots: Box<[Option<(K, Nanos)>]>,
    interval: Nanos,
    hasher: DefaultHashBuilder,
    suppressed: u64,
}

impl<K: Hash + Eq + Copy> Debounce<K> {
    /// A limiter with `slots` slots (at least 1) and the given interval.
    pub fn new(slots: usize, interval: Nanos) -> Self {
        Debounce {
            slots: vec![None; slots.max(1)].into_boxed_slice(),
            interval,
            hasher: DefaultHashBuilder::default(),
            suppressed: 0,
        }
    }

    #[inline]
    fn slot(&self, key: &K) -> usize {
        // The modulo keeps the index in range whatever the hash.
        (self.hasher.hash_one(key) % self.slots.len() as u64) as usize
    }

    /// True when the event for `key` should be raised now (and records
    /// that it was); false when the same key was raised less than
    /// `interval` ago.
    #[inline]
    pub fn should_raise(&mut self, key: K, now: Nanos) -> bool {
        let i = self.slot(&key);
        let interval = self.interval;
        let Some(slot) = self.slots.get_mut(i) else {
            return true;
        };
        if let Some((k, at)) = *slot {
            if k == key && now.saturating_sub(at) < interval {
                self.suppressed += 1;
                return false;
            }
        }
        *slot = Some((key, now));
        true
    }

    /// Forgets `key`, so its next event is raised at once (e.g. after the
    /// answer arrived: a later miss is a new one).
    pub fn forget(&mut self, key: K) {
        let i = self.slot(&key);
        if let Some(slot) = self.slots.get_mut(i) {
            if matches!(*slot, Some((k, _)) if k == key) {
                *slot = None;
            }
        }
    }

    /// Events suppressed so far.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::GroupProto;
    use core::net::Ipv4Addr;
    use proptest::prelude::*;

    const S: Nanos = 1_000_000_000;

    fn g(port: u16) -> GroupAddr {
        GroupAddr::Port { ip: Ipv4Addr::new(198, 51, 100, 10), port, proto: GroupProto::Udp }
    }

    fn ids(v: &[u32]) -> Vec<ProxyId> {
        v.iter().map(|&i| ProxyId(i)).collect()
    }

    fn up(_: ProxyId) -> bool {
        true
    }

    #[test]
    fn cached_japs_list_ops() {
        let mut l = CachedJaps::from_slice(&ids(&[3, 1, 3, 2]));
        assert_eq!(l.as_slice(), ids(&[3, 1, 2]).as_slice());
        assert_eq!(l.first(), Some(ProxyId(3)));
        assert!(l.contains(ProxyId(1)));
        assert!(!l.push(ProxyId(1)));
        assert!(l.remove(ProxyId(1)));
        assert!(!l.remove(ProxyId(1)));
        assert_eq!(l.as_slice(), ids(&[3, 2]).as_slice());
        l.promote(ProxyId(2));
        assert_eq!(l.as_slice(), ids(&[2, 3]).as_slice());
        l.promote(ProxyId(9));
        assert_eq!(l.as_slice(), ids(&[9, 2, 3]).as_slice());
        let mut full = CachedJaps::from_slice(&ids(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
        assert_eq!(full.len(), MAX_CACHED_JAPS);
        assert!(full.is_full());
        assert!(!full.push(ProxyId(11)));
        full.promote(ProxyId(11));
        assert_eq!(full.as_slice(), ids(&[11, 1, 2, 3, 4, 5, 6, 7]).as_slice());
        full.promote(ProxyId(5));
        assert_eq!(full.as_slice(), ids(&[5, 11, 1, 2, 3, 4, 6, 7]).as_slice());
        assert!(CachedJaps::EMPTY.is_empty());
        assert_eq!(CachedJaps::default().first(), None);
        assert_eq!(format!("{:?}", CachedJaps::from_slice(&ids(&[1]))), "[ProxyId(1)]");
    }

    #[test]
    fn fill_lookup_expire() {
        let mut c = JapCache::new(4);
        assert_eq!(c.lookup(&g(1), 0, up), None);
        assert!(c.fill(g(1), &ids(&[5, 6]), 100 * S, 10 * S));
        assert_eq!(c.len(), 1);
        assert_eq!(c.lookup(&g(1), 10 * S, up), Some(ProxyId(5)));
        assert_eq!(c.lookup(&g(1), 110 * S - 1, up), Some(ProxyId(5)));
        assert_eq!(c.get(&g(1), 11 * S).unwrap().as_slice(), ids(&[5, 6]).as_slice());
        // Expired: a miss, and the entry goes.
        assert_eq!(c.lookup(&g(1), 110 * S, up), None);
        assert!(c.is_empty());
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.expired, s.fills), (2, 2, 1, 1));
    }

    #[test]
    fn lookup_skips_down_japs_in_order() {
        let mut c = JapCache::new(4);
        c.fill(g(1), &ids(&[5, 6, 7]), 100 * S, 0);
        assert_eq!(c.lookup(&g(1), 1, |p| p != ProxyId(5)), Some(ProxyId(6)));
        assert_eq!(c.lookup(&g(1), 1, |p| p == ProxyId(7)), Some(ProxyId(7)));
        assert_eq!(c.lookup(&g(1), 1, |_| false), None);
        assert_eq!(c.stats().all_down, 1);
        assert_eq!(c.len(), 1, "kept: proxy-down news prunes it");
    }

    #[test]
    fn refill_replaces_and_empty_fill_removes() {
        let mut c = JapCache::new(4);
        c.fill(g(1), &ids(&[5, 6]), 100 * S, 0);
        c.fill(g(1), &ids(&[7]), 100 * S, 0);
        assert_eq!(c.lookup(&g(1), 1, up), Some(ProxyId(7)));
        assert!(c.fill(g(1), &[], 100 * S, 0));
        assert!(c.is_empty());
        c.fill(g(1), &ids(&[7]), 100 * S, 0);
        assert!(c.fill(g(1), &ids(&[7]), 0, 0));
        assert!(c.is_empty());
        // A long list keeps its first eight distinct JAPs.
        c.fill(g(2), &ids(&[1, 1, 2, 3, 4, 5, 6, 7, 8, 9]), S, 0);
        assert_eq!(c.get(&g(2), 0).unwrap().as_slice(), ids(&[1, 2, 3, 4, 5, 6, 7, 8]).as_slice());
    }

    #[test]
    fn invalidate_fails_over_then_empties() {
        let mut c = JapCache::new(4);
        c.fill(g(1), &ids(&[5, 6, 7]), 100 * S, 0);
        assert!(c.invalidate(&g(1), ProxyId(5)));
        assert_eq!(c.lookup(&g(1), 1, up), Some(ProxyId(6)));
        assert!(!c.invalidate(&g(1), ProxyId(5)), "already gone");
        assert!(!c.invalidate(&g(2), ProxyId(6)), "no entry");
        assert!(c.invalidate(&g(1), ProxyId(7)));
        assert_eq!(c.lookup(&g(1), 1, up), Some(ProxyId(6)));
        assert!(c.invalidate(&g(1), ProxyId(6)));
        assert!(c.is_empty(), "an emptied entry is removed");
        assert_eq!(c.lookup(&g(1), 1, up), None);
        assert_eq!(c.stats().invalidated, 3);
    }

    #[test]
    fn proxy_down_prunes_every_entry() {
        let mut c = JapCache::new(8);
        c.fill(g(1), &ids(&[5, 6]), 100 * S, 0);
        c.fill(g(2), &ids(&[6, 5]), 100 * S, 0);
        c.fill(g(3), &ids(&[5]), 100 * S, 0);
        c.fill(g(4), &ids(&[7]), 100 * S, 0);
        assert_eq!(c.proxy_down(ProxyId(5)), 3);
        assert_eq!(c.len(), 3);
        assert_eq!(c.lookup(&g(1), 1, up), Some(ProxyId(6)));
        assert_eq!(c.lookup(&g(2), 1, up), Some(ProxyId(6)));
        assert_eq!(c.lookup(&g(3), 1, up), None);
        assert_eq!(c.lookup(&g(4), 1, up), Some(ProxyId(7)));
        assert_eq!(c.proxy_down(ProxyId(5)), 0);
        assert_eq!(c.stats().proxy_down_removed, 3);
        assert!(c.remove(&g(4)));
        assert!(!c.remove(&g(4)));
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn cap_refuses_then_reclaims_expired() {
        let mut c = JapCache::new(2);
        assert_eq!(c.capacity(), 2);
        assert!(c.fill(g(1), &ids(&[1]), 10 * S, 0));
        assert!(c.fill(g(2), &ids(&[1]), 100 * S, 0));
        assert!(!c.fill(g(3), &ids(&[1]), 100 * S, S));
        assert_eq!(c.stats().refused_full, 1);
        // Replacing an existing entry is always allowed.
        assert!(c.fill(g(2), &ids(&[2]), 100 * S, S));
        // Once g(1) expired, its slot is reclaimed.
        assert!(c.fill(g(3), &ids(&[1]), 100 * S, 10 * S));
        assert_eq!(c.len(), 2);
        assert!(c.get(&g(1), 10 * S).is_none());
    }

    #[test]
    fn churn_never_grows_the_map() {
        let mut c = JapCache::new(64);
        let before = c.map.capacity();
        for i in 0..100_000u32 {
            c.fill(g(i as u16), &ids(&[i]), S, 0);
            if i % 3 == 0 {
                c.invalidate(&g(i as u16), ProxyId(i));
            } else {
                c.remove(&g(i.wrapping_sub(40) as u16));
            }
        }
        assert_eq!(c.map.capacity(), before, "the map reallocated");
    }

    #[test]
    fn debounce_limits_per_key() {
        let mut d: Debounce<GroupAddr> = Debounce::new(64, S);
        assert!(d.should_raise(g(1), 0));
        assert!(!d.should_raise(g(1), S / 2));
        assert!(d.should_raise(g(2), S / 2));
        assert!(d.should_raise(g(1), S));
        d.forget(g(1));
        assert!(d.should_raise(g(1), S + 1));
        assert_eq!(d.suppressed(), 1);
        // One slot: keys evict each other, never suppressing wrongly.
        let mut one: Debounce<u32> = Debounce::new(0, S);
        assert!(one.should_raise(1, 0));
        assert!(one.should_raise(2, 0));
        assert!(one.should_raise(1, 0));
        assert!(!one.should_raise(1, 1));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Fill(u16, Vec<u32>),
        Invalidate(u16, u32),
        Down(u32),
        Lookup(u16, u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u16..6, proptest::collection::vec(0u32..10, 0..12)).prop_map(|(g, v)| Op::Fill(g, v)),
            (0u16..6, 0u32..10).prop_map(|(g, j)| Op::Invalidate(g, j)),
            (0u32..10).prop_map(Op::Down),
            (0u16..6, any::<u32>()).prop_map(|(g, m)| Op::Lookup(g, m)),
        ]
    }

    proptest! {
        /// The cache against a model (a map of plain vectors): failover
        /// order, invalidation, proxy-down and the cap hold whatever the
        /// sequence of operations.
        #[test]
        fn matches_model(ops in proptest::collection::vec(op(), 0..200)) {
            let mut c = JapCache::new(4);
            let mut model: std::collections::BTreeMap<u16, Vec<u32>> = Default::default();
            for op in ops {
                match op {
                    Op::Fill(grp, v) => {
                        let mut l: Vec<u32> = Vec::new();
                        for j in v {
                            if !l.contains(&j) && l.len() < MAX_CACHED_JAPS {
                                l.push(j);
                            }
                        }
                        let ok = c.fill(g(grp), &ids(&l), S, 0);
                        if l.is_empty() {
                            model.remove(&grp);
                        } else if model.contains_key(&grp) || model.len() < 4 {
                            prop_assert!(ok);
                            model.insert(grp, l);
                        } else {
                            prop_assert!(!ok);
                        }
                    }
                    Op::Invalidate(grp, j) => {
                        let was = model.get(&grp).is_some_and(|l| l.contains(&j));
                        prop_assert_eq!(c.invalidate(&g(grp), ProxyId(j)), was);
                        if let Some(l) = model.get_mut(&grp) {
                            l.retain(|&x| x != j);
                            if l.is_empty() {
                                model.remove(&grp);
                            }
                        }
                    }
                    Op::Down(p) => {
                        c.proxy_down(ProxyId(p));
                        for l in model.values_mut() {
                            l.retain(|&x| x != p);
                        }
                        model.retain(|_, l| !l.is_empty());
                    }
                    Op::Lookup(grp, mask) => {
                        let is_up = |p: ProxyId| mask & (1 << (p.0 % 32)) != 0;
                        let want = model.get(&grp).and_then(|l| l.iter().copied().find(|&x| is_up(ProxyId(x))));
                        prop_assert_eq!(c.lookup(&g(grp), 1, is_up), want.map(ProxyId));
                    }
                }
                prop_assert_eq!(c.len(), model.len());
                prop_assert!(c.len() <= c.capacity());
                for (grp, l) in &model {
                    prop_assert_eq!(c.get(&g(*grp), 1).map(|x| x.as_slice().to_vec()), Some(ids(l)));
                }
            }
        }
    }
}
