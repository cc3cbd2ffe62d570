//! The RAPs of a group (seed §3.2: "the RAPs associated with any given group
//! are selected with a consistent hash executed over all APs"): the `k`
//! live proxies with the highest rendezvous (highest-random-weight, Thaler
//! & Ravishankar 1998) score for the group.
//!
//! Score of proxy `p` for group `g`:
//!
//! ```text
//! gh = SipHash-2-4(K, wire bytes of g)          (7 bytes, wire::group)
//! ph = SipHash-2-4(K, big-endian u32 of p)      (4 bytes)
//! score(g, p) = mix64(gh XOR ph)                (splitmix64's finaliser)
//! K = ("PIAS-RAP", "hrw-v1\0\0") as two big-endian u64s
//! ```
//!
//! Ties (impossible unless two proxy hashes collide) go to the lower id.
//! `ph` is computed once per proxy, `gh` once per lookup, so a lookup over
//! 20 000 proxies costs 20 000 multiply-xorshift rounds, not 20 000
//! SipHashes. Every input and constant is fixed by this comment: the RAPs
//! of a group are the same on every proxy, build and platform, and a change
//! here is a protocol change.
//!
//! Minimal disruption (property-tested): adding or removing a proxy
//! changes the RAP set only of groups that have that proxy among their RAPs
//! after (added) or had it before (removed).

use hashbrown::HashMap;
use pias_dataplane::types::{ClusterId, GroupAddr, ProxyId};

use crate::membership::Event;
use crate::proximity::RttMatrix;
use crate::siphash::siphash24;
use crate::wire::group::group_addr_bytes;

/// RAPs per group unless configured otherwise (seed: "three or four").
pub const DEFAULT_RAPS: usize = 3;
/// Most RAPs a group may have.
pub const MAX_RAPS: usize = 8;

const K0: u64 = u64::from_be_bytes(*b"PIAS-RAP");
const K1: u64 = u64::from_be_bytes(*b"hrw-v1\0\0");

/// The rendezvous hash of a group.
pub fn group_hash(g: &GroupAddr) -> u64 {
    siphash24(K0, K1, &group_addr_bytes(g))
}

/// The rendezvous hash of a proxy.
pub fn proxy_hash(p: ProxyId) -> u64 {
    siphash24(K0, K1, &p.0.to_be_bytes())
}

/// splitmix64's output function: a bijection on u64 with full avalanche.
const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The score of a proxy (by its hash) for a group (by its hash).
pub const fn score(group_hash: u64, proxy_hash: u64) -> u64 {
    mix64(group_hash ^ proxy_hash)
}

/// A group's RAPs, highest score first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RapSet {
    ids: [ProxyId; MAX_RAPS],
    len: u8,
}

impl RapSet {
    /// The RAPs, highest score first.
    pub fn as_slice(&self) -> &[ProxyId] {
        &self.ids[..usize::from(self.len)]
    }

    /// Whether `p` is one of the RAPs.
    pub fn contains(&self, p: ProxyId) -> bool {
        self.as_slice().contains(&p)
    }

    /// Number of RAPs (fewer than asked when fewer proxies are live).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True when no proxy is live.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The live proxies, with their rendezvous hashes, sorted by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendezvous {
    proxies: Vec<(ProxyId, u64)>,
}

impl Rendezvous {
    /// No live proxy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Mark a proxy live (idempotent).
    pub fn insert(&mut self, p: ProxyId) {
        if let Err(i) = self.proxies.binary_search_by_key(&p, |e| e.0) {
            self.proxies.insert(i, (p, proxy_hash(p)));
        }
    }

    /// Mark a proxy not live (idempotent).
    pub fn remove(&mut self, p: ProxyId) {
        if let Ok(i) = self.proxies.binary_search_by_key(&p, |e| e.0) {
            self.proxies.remove(i);
        }
    }

    /// Follow membership: up inserts, down removes.
    pub fn apply(&mut self, ev: &Event) {
        match ev {
            Event::ProxyUp(info) => self.insert(info.id),
            Event::ProxyDown(id) => self.remove(*id),
        }
    }

    /// Live proxies.
    pub fn len(&self) -> usize {
        self.proxies.len()
    }

    /// True when no proxy is live.
    pub fn is_empty(&self) -> bool {
        self.proxies.is_empty()
    }

    /// The `k` RAPs of `g` (`k` is clamped to [`MAX_RAPS`]), highest score
    /// first. O(live proxies × k).
    pub fn raps(&self, g: &GroupAddr, k: usize) -> RapSet {
        let k = k.min(MAX_RAPS);
        let gh = group_hash(g);
        // Best first: (score, id) with higher score, then lower id, first.
        let mut best: [(u64, ProxyId); MAX_RAPS] = [(0, ProxyId(0)); MAX_RAPS];
        let mut n = 0usize;
        let better = |a: (u64, ProxyId), b: (u64, ProxyId)| a.0 > b.0 || (a.0 == b.0 && a.1 < b.1);
        for &(id, ph) in &self.proxies {
            let cand = (score(gh, ph), id);
            if n == k && (k == 0 || !better(cand, best[k - 1])) {
                continue;
            }
            // Insertion into the sorted prefix; drops the last when full.
            let mut i = if n < k { n } else { k - 1 };
            while i > 0 && better(cand, best[i - 1]) {
                best[i] = best[i - 1];
                i -= 1;
            }
            best[i] = cand;
            if n < k {
                n += 1;
            }
        }
        let mut set = RapSet {
            ids: [ProxyId(0); MAX_RAPS],
            len: n as u8,
        };
        for (dst, src) in set.ids.iter_mut().zip(&best[..n]) {
            *dst = src.1;
        }
        set
    }
}

/// One group's RAPs with their scores, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ranked {
    gh: u64,
    set: RapSet,
    scores: [u64; MAX_RAPS],
}

/// The RAP sets of many groups, kept current as proxies come and go
/// without recomputing every group: a proxy coming up is scored once per
/// group (O(groups)) and enters only the sets it beats the last member
/// of; a proxy going down forces a full lookup ([`Rendezvous::raps`]) only
/// for the groups it was a RAP of (a fraction `k / n` of them). The result
/// is always what [`Rendezvous::raps`] would give (property-tested).
#[derive(Clone, Debug, Default)]
pub struct RapTable {
    k: usize,
    groups: HashMap<GroupAddr, Ranked>,
}

impl RapTable {
    /// No group; `k` RAPs per group (clamped to [`MAX_RAPS`]).
    pub fn new(k: usize) -> Self {
        RapTable {
            k: k.min(MAX_RAPS),
            groups: HashMap::new(),
        }
    }

    /// RAPs per group.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Groups held.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// True when no group is held.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    fn rank(rz: &Rendezvous, g: &GroupAddr, k: usize) -> Ranked {
        let gh = group_hash(g);
        let set = rz.raps(g, k);
        let mut scores = [0u64; MAX_RAPS];
        for (s, p) in scores.iter_mut().zip(set.as_slice()) {
            *s = score(gh, proxy_hash(*p));
        }
        Ranked { gh, set, scores }
    }

    /// Add (or recompute) a group.
    pub fn insert(&mut self, g: GroupAddr, rz: &Rendezvous) {
        let r = Self::rank(rz, &g, self.k);
        self.groups.insert(g, r);
    }

    /// Forget a group.
    pub fn remove(&mut self, g: &GroupAddr) {
        self.groups.remove(g);
    }

    /// The group's RAPs, best first (empty for an unknown group).
    pub fn get(&self, g: &GroupAddr) -> &[ProxyId] {
        self.groups.get(g).map_or(&[], |r| r.set.as_slice())
    }

    /// `p` came up (and is already in `rz`'s live set): returns the groups
    /// whose RAP set changed.
    pub fn proxy_up(&mut self, p: ProxyId) -> Vec<GroupAddr> {
        let ph = proxy_hash(p);
        let k = self.k;
        let better = |a: (u64, ProxyId), b: (u64, ProxyId)| a.0 > b.0 || (a.0 == b.0 && a.1 < b.1);
        let mut changed = Vec::new();
        for (g, r) in self.groups.iter_mut() {
            if k == 0 || r.set.contains(p) {
                continue;
            }
            let s = score(r.gh, ph);
            let n = r.set.len();
            if n == k && !better((s, p), (r.scores[n - 1], r.set.ids[n - 1])) {
                continue;
            }
            // Insert in order, dropping the last when full.
            let mut i = if n < k { n } else { k - 1 };
            while i > 0 && better((s, p), (r.scores[i - 1], r.set.ids[i - 1])) {
                r.scores[i] = r.scores[i - 1];
                r.set.ids[i] = r.set.ids[i - 1];
                i -= 1;
            }
            r.scores[i] = s;
            r.set.ids[i] = p;
            if n < k {
                r.set.len += 1;
            }
            changed.push(*g);
        }
        changed
    }

    /// `p` went down (and is already out of `rz`'s live set): returns the
    /// groups whose RAP set changed.
    pub fn proxy_down(&mut self, p: ProxyId, rz: &Rendezvous) -> Vec<GroupAddr> {
        let k = self.k;
        let mut changed = Vec::new();
        for (g, r) in self.groups.iter_mut() {
            if r.set.contains(p) {
                *r = Self::rank(rz, g, k);
                changed.push(*g);
            }
        }
        changed
    }
}

/// The RAP an IAP in cluster `from` should use: the one whose cluster has
/// the lowest RTT from `from` (seed §3.2: "selects the nearest RAP for the
/// group"); RAPs with unknown cluster or RTT come last; ties go to the
/// higher-scored RAP. `None` only for an empty set.
pub fn nearest_rap(
    raps: &RapSet,
    from: ClusterId,
    cluster_of: impl Fn(ProxyId) -> Option<ClusterId>,
    rtt: &RttMatrix,
) -> Option<ProxyId> {
    raps.as_slice()
        .iter()
        .enumerate()
        .min_by_key(|&(rank, &p)| {
            let d = cluster_of(p)
                .and_then(|c| rtt.get(from, c))
                .unwrap_or(u32::MAX);
            (d, rank)
        })
        .map(|(_, &p)| p)
}

#[cfg(test)]
mod tests;
