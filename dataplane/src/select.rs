//! Choices on the packet path: the RAP's choice of a JAP for an IAP (seed
//! §3.2, §3.3, §3.5) and the JAP's choice of a target for a new flow.
//!
//! # JAP choice (RAP, or the IAP itself for a RAP-less group)
//!
//! Candidates are the group's JAPs ([`GroupEntry::candidate_japs`]) whose
//! proxy is up. They are ranked, best first, by:
//!
//! 1. **class**: JAPs with targets and not overloaded first, then
//!    overloaded ones (seed §3.3: "the JAP may simply need to send a message
//!    to the RAPs whenever its set of targets are overloaded"), then JAPs
//!    that report no target at all. An overloaded JAP is chosen only when
//!    every live JAP is.
//! 2. **the criterion** of the group:
//!    - `Proximity`: the lowest RTT from the IAP's cluster to the JAP's
//!      cluster by the RTT matrix (unmeasured = worst); ties (JAPs in one
//!      cluster, or at equal distance) go by rendezvous hashing of
//!      `client_hash` over the JAP ids, so one client is always sent to the
//!      same JAP and different clients spread over the tied JAPs.
//!    - `Load`: weighted rendezvous hashing with the JAPs' approximate
//!      target counts as weights: over many keys each JAP gets a share
//!      proportional to its count (seed §3.3).
//!    - `Weighted`: the same with the operator's weights (0 = 1).
//!    - `Random`: plain rendezvous hashing (uniform).
//!
//!    For `Load`, `Weighted` and `Random` the key is the caller's `seed`
//!    (a per-packet random or hash value: no RNG in here), or
//!    `client_hash` when the group asks for affinity, so that the choice is
//!    a function of the client and stays the same at every RAP.
//! 3. the JAP id (a total order: equal inputs, equal answer everywhere).
//!
//! [`jap_list_for_iap`] returns the best [`MAX_CACHED_JAPS`] in that order:
//! the choice first, then the IAP's failover candidates (seed §3.2: "the
//! RAP sends a list of JAPs, for failover purposes");
//! [`choose_jap`] is its first element, found without building the list.
//!
//! What `client_hash` should be is the caller's choice of stickiness:
//! [`client_prefix_hash`] of the client's /24 by default. Note that the
//! IAP caches one list per *group*, not per client, so the list a RAP
//! hands out serves every client of that IAP until it is invalidated.
//!
//! # Target choice (JAP)
//!
//! [`choose_target`] picks among the group's alive local targets by
//! weighted rendezvous hashing (highest random weight) of a key over the
//! targets' addresses: each target's share of flows is proportional to
//! its weight, and when a target dies or is removed only the flows that
//! were on it move (every other flow's best target is unchanged); a new
//! target takes flows only for itself. The key is the flow hash, or the
//! hash of the client address when the group asks for affinity (all flows
//! of one client reach the same target).
//!
//! Nothing here allocates, locks or panics; each choice is one pass over
//! the group's list.

use core::net::Ipv4Addr;

use crate::jap_cache::{CachedJaps, MAX_CACHED_JAPS};
use crate::tables::{jap_load_weight, jap_weight, target_weight, GroupEntry, Tables};
use crate::types::{ClusterId, Criterion, Ipv4Prefix, JapLoad, ProxyId, TargetAddr};

/// Default client prefix length for affinity hashing: clients of one /24
/// are treated as one client.
pub const DEFAULT_AFFINITY_PREFIX: u8 = 24;

const JAP_SALT: u64 = 0x6a61_7073_2d72_6831; // "japs-rh1"
const TARGET_SALT: u64 = 0x7467_7473_2d72_6831; // "tgts-rh1"
const CLIENT_SALT: u64 = 0x636c_6e74_2d61_6666; // "clnt-aff"

/// A 64-bit mixer (the SplitMix64 finalizer): a bijection whose output
/// bits each depend on every input bit. Stable across builds and hosts.
#[inline]
pub const fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hash of one client address (target affinity).
#[inline]
pub fn client_hash(ip: Ipv4Addr) -> u64 {
    mix64(u64::from(ip.to_bits()) ^ CLIENT_SALT)
}

/// Hash of the client's prefix of length `len` (clamped to 32): the
/// `client_hash` argument of [`choose_jap`] that keeps one client network
/// on one JAP.
#[inline]
pub fn client_prefix_hash(ip: Ipv4Addr, len: u8) -> u64 {
    let len = len.min(32);
    let net = Ipv4Prefix { addr: ip, len }.network();
    mix64((u64::from(net.to_bits()) | (u64::from(len) << 32)) ^ CLIENT_SALT)
}

/// Rendezvous hash of `member` under an already mixed `key`.
#[inline]
fn member_hash(key: u64, member: u64) -> u64 {
    mix64(key ^ member)
}

#[inline]
fn jap_member(p: ProxyId) -> u64 {
    mix64(u64::from(p.0) ^ JAP_SALT)
}

#[inline]
fn target_member(a: TargetAddr) -> u64 {
    mix64(((u64::from(a.ip.to_bits()) << 16) | u64::from(a.port)) ^ TARGET_SALT)
}

/// Weighted rendezvous score, lower is better: `-ln(u) / w` for `u` in
/// (0, 1) from the hash, an exponential variable with rate `w`, so the
/// minimum over members falls on each with probability `w / Σw`. As a
/// non-negative finite `f64`, its bit pattern orders like its value.
#[inline]
fn weighted_score(h: u64, w: u32) -> u64 {
    // 52 bits plus ½ are exact in an f64, so u is never 0 or 1 and
    // -ln(u) is finite and > 0 (never -0.0, whose bits would sort last).
    let u = ((h >> 12) as f64 + 0.5) * (1.0 / (1u64 << 52) as f64);
    (-u.ln() / f64::from(w.max(1))).to_bits()
}

/// Uniform rendezvous score, lower is better: the highest hash wins.
#[inline]
fn uniform_score(h: u64) -> u64 {
    !h
}

/// A candidate JAP's rank; lower is better (field order is the order of
/// the criteria).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    class: u8,
    rtt: u32,
    score: u64,
    id: ProxyId,
}

/// What ranking needs, computed once per choice.
struct Ranker<'a> {
    tables: &'a Tables,
    criterion: Criterion,
    iap_ci: Option<u32>,
    tie_key: u64,
    key: u64,
    uniform: bool,
}

impl<'a> Ranker<'a> {
    fn new(tables: &'a Tables, e: &GroupEntry, iap_cluster: ClusterId, client_hash: u64, seed: u64) -> Self {
        let o = e.options();
        let key = if o.affinity { client_hash } else { seed };
        let uniform = match o.criterion {
            Criterion::Proximity | Criterion::Random => true,
            Criterion::Load => e.cand_load_uniform(),
            Criterion::Weighted => e.cand_weight_uniform(),
        };
        Ranker {
            tables,
            criterion: o.criterion,
            iap_ci: tables.cluster_idx(iap_cluster),
            tie_key: mix64(client_hash),
            key: mix64(key),
            uniform,
        }
    }

    /// The rank of a candidate, `None` when its proxy is unknown or down.
    #[inline]
    fn rank(&self, j: &JapLoad, idx: u32) -> Option<Rank> {
        let (info, ci) = self.tables.resolve(j.jap, idx)?;
        if !info.up {
            return None;
        }
        let class = if j.approx_targets == 0 {
            2
        } else if j.overloaded {
            1
        } else {
            0
        };
        let (rtt, score) = match self.criterion {
            Criterion::Proximity => {
                let rtt = self.iap_ci.and_then(|a| self.tables.rtt_idx(a, ci)).unwrap_or(u32::MAX);
                (rtt, uniform_score(member_hash(self.tie_key, jap_member(j.jap))))
            }
            Criterion::Load | Criterion::Weighted | Criterion::Random => {
                let h = member_hash(self.key, jap_member(j.jap));
                let score = if self.uniform {
                    uniform_score(h)
                } else if self.criterion == Criterion::Load {
                    weighted_score(h, jap_load_weight(j))
                } else {
                    weighted_score(h, jap_weight(j))
                };
                (0, score)
            }
        };
        Some(Rank { class, rtt, score, id: j.jap })
    }
}

/// The JAP a RAP sends a packet for group `e` to, for an IAP in
/// `iap_cluster` (for a RAP-less group the IAP calls it with its own
/// cluster); see the module documentation for the ranking. `client_hash`
/// keeps a client on one JAP ([`client_prefix_hash`]); `seed` is a random
/// or per-packet hash value for the `Random`, `Load` and `Weighted`
/// criteria. `None` when no candidate JAP is up.
#[inline]
pub fn choose_jap(
    tables: &Tables,
    e: &GroupEntry,
    iap_cluster: ClusterId,
    client_hash: u64,
    seed: u64,
) -> Option<ProxyId> {
    let r = Ranker::new(tables, e, iap_cluster, client_hash, seed);
    let (japs, idx) = e.candidates_indexed();
    let mut best: Option<Rank> = None;
    for (j, &i) in japs.iter().zip(idx) {
        if let Some(rank) = r.rank(j, i) {
            if best.map_or(true, |b| rank < b) {
                best = Some(rank);
            }
        }
    }
    best.map(|b| b.id)
}

/// The JAP list a RAP sends to an IAP: the live candidates in rank order,
/// at most [`MAX_CACHED_JAPS`]; the first is [`choose_jap`]'s answer for
/// the same arguments, the rest are the IAP's failover order. Empty when
/// no candidate is up.
pub fn jap_list_for_iap(
    tables: &Tables,
    e: &GroupEntry,
    iap_cluster: ClusterId,
    client_hash: u64,
    seed: u64,
) -> CachedJaps {
    let r = Ranker::new(tables, e, iap_cluster, client_hash, seed);
    let (japs, idx) = e.candidates_indexed();
    let mut best = [Rank { class: u8::MAX, rtt: u32::MAX, score: u64::MAX, id: ProxyId(u32::MAX) }; MAX_CACHED_JAPS];
    let mut n = 0usize;
    for (j, &i) in japs.iter().zip(idx) {
        let Some(rank) = r.rank(j, i) else { continue };
        let pos = best.iter().take(n).position(|b| rank < *b).unwrap_or(n);
        if pos >= MAX_CACHED_JAPS {
            continue;
        }
        let end = (n + 1).min(MAX_CACHED_JAPS);
        if let Some(s) = best.get_mut(pos..end) {
            s.rotate_right(1);
            if let Some(f) = s.first_mut() {
                *f = rank;
            }
        }
        n = end;
    }
    let mut out = CachedJaps::EMPTY;
    for b in best.iter().take(n) {
        out.push(b.id);
    }
    out
}

/// The target for a new flow of group `e` at this JAP: an alive local
/// target by weighted rendezvous hashing of `flow_hash` (or of the client
/// address when the group asks for affinity) over the targets; see the
/// module documentation. `None` when no target is alive: the JAP sends the
/// packet back to a RAP and tells the IAP to drop its cache entry.
#[inline]
pub fn choose_target(e: &GroupEntry, flow_hash: u64, client_ip: Ipv4Addr) -> Option<TargetAddr> {
    let key = if e.options().affinity { client_hash(client_ip) } else { flow_hash };
    let key = mix64(key);
    let uniform = e.targets_uniform();
    let mut best: Option<(u64, TargetAddr)> = None;
    for t in e.targets() {
        if !t.alive {
            continue;
        }
        let h = member_hash(key, target_member(t.addr));
        let s = if uniform { uniform_score(h) } else { weighted_score(h, target_weight(t)) };
        if best.map_or(true, |(b, _)| s < b) {
            best = Some((s, t.addr));
        }
    }
    best.map(|(_, a)| a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::testutil::{self, jap, tcp, udp, AA, WHOLE};
    use crate::tables::{GroupSpec, LocalTarget, RttEntry, StaticState};
    use crate::types::{GroupAddr, GroupOptions, ProxyInfo};
    use proptest::prelude::*;

    fn c(i: u16) -> ClusterId {
        ClusterId(i)
    }

    fn p(i: u32) -> ProxyId {
        ProxyId(i)
    }

    /// The shared sample with udp/53's options and JAP view replaced.
    fn with_japs(options: GroupOptions, japs: Vec<JapLoad>) -> Tables {
        let mut s = testutil::state();
        s.groups[0].options = options;
        s.groups[0].japs = japs;
        Tables::build(&s).unwrap()
    }

    fn dns(t: &Tables) -> &GroupEntry {
        t.group(&udp(53)).unwrap()
    }

    fn opts(criterion: Criterion) -> GroupOptions {
        GroupOptions { criterion, ..Default::default() }
    }

    #[test]
    fn weighted_score_extremes_order_correctly() {
        // The best and worst hashes give finite, positive, ordered scores.
        let best = f64::from_bits(weighted_score(u64::MAX, 1));
        let worst = f64::from_bits(weighted_score(0, 1));
        assert!(best > 0.0 && best.is_finite() && worst.is_finite());
        assert!(weighted_score(u64::MAX, 1) < weighted_score(1 << 40, 1));
        assert!(weighted_score(1 << 40, 1) < weighted_score(0, 1));
        // A heavier weight scores lower for the same hash.
        assert!(weighted_score(1 << 40, 10) < weighted_score(1 << 40, 1));
        assert_eq!(weighted_score(5, 0), weighted_score(5, 1));
    }

    #[test]
    fn mixers_are_stable_and_prefix_hash_ignores_host_bits() {
        assert_eq!(mix64(0), 0xe220_a839_7b1d_cdaf);
        let a = Ipv4Addr::new(203, 0, 113, 7);
        let b = Ipv4Addr::new(203, 0, 113, 200);
        assert_eq!(client_prefix_hash(a, 24), client_prefix_hash(b, 24));
        assert_ne!(client_prefix_hash(a, 32), client_prefix_hash(b, 32));
        assert_ne!(client_prefix_hash(a, 24), client_prefix_hash(a, 16));
        assert_eq!(client_prefix_hash(a, 40), client_prefix_hash(a, 32));
        assert_ne!(client_hash(a), client_hash(b));
    }

    #[test]
    fn proximity_picks_the_nearest_live_jap() {
        // JAPs 1 (cluster 1), 3 (2), 5 (3), 6 (3, down). RTT 1-2 10 ms,
        // 1-3 50 ms, 2-3 20 ms.
        let t = testutil::state();
        let t = Tables::build(&t).unwrap();
        let e = dns(&t);
        for (iap, want) in [(1, 1), (2, 3), (3, 5)] {
            for h in 0..50u64 {
                assert_eq!(choose_jap(&t, e, c(iap), h, h * 7), Some(p(want)), "IAP in cluster {iap}");
            }
        }
        assert_eq!(jap_list_for_iap(&t, e, c(3), 0, 0).as_slice(), &[p(5), p(3), p(1)]);
        assert_eq!(jap_list_for_iap(&t, e, c(1), 0, 0).as_slice(), &[p(1), p(3), p(5)]);
        // An IAP cluster with no RTTs: every JAP is equally far; still a
        // live one.
        let got = choose_jap(&t, e, c(42), 5, 5).unwrap();
        assert!([p(1), p(3), p(5)].contains(&got));
    }

    #[test]
    fn proximity_ties_follow_the_client() {
        // JAPs 3 and 4 share cluster 2.
        let t = with_japs(opts(Criterion::Proximity), vec![jap(3, 5), jap(4, 5), jap(5, 5)]);
        let e = dns(&t);
        let mut seen = [0u32; 2];
        for h in 0..2000u64 {
            let ch = client_prefix_hash(Ipv4Addr::from_bits(h as u32 * 256), 24);
            let a = choose_jap(&t, e, c(2), ch, 1).unwrap();
            // The seed does not matter; the client does.
            assert_eq!(choose_jap(&t, e, c(2), ch, 99), Some(a));
            assert!(a == p(3) || a == p(4));
            seen[(a.0 - 3) as usize] += 1;
        }
        assert!(seen[0] > 800 && seen[1] > 800, "ties not spread: {seen:?}");
    }

    #[test]
    fn overloaded_and_empty_japs_are_last_resort() {
        let mut j = vec![jap(1, 4), jap(3, 10), jap(5, 2)];
        j[2].overloaded = true;
        let t = with_japs(opts(Criterion::Proximity), j.clone());
        // From cluster 3, 5 is nearest but overloaded.
        assert_eq!(choose_jap(&t, dns(&t), c(3), 0, 0), Some(p(3)));
        assert_eq!(jap_list_for_iap(&t, dns(&t), c(3), 0, 0).as_slice(), &[p(3), p(1), p(5)]);
        // All overloaded: back to proximity.
        for x in &mut j {
            x.overloaded = true;
        }
        let t = with_japs(opts(Criterion::Proximity), j.clone());
        assert_eq!(choose_jap(&t, dns(&t), c(3), 0, 0), Some(p(5)));
        // A JAP reporting no target loses even to overloaded ones.
        j[1].approx_targets = 0;
        j[1].overloaded = false;
        let t = with_japs(opts(Criterion::Proximity), j.clone());
        // From cluster 2: 1 (10 ms) and 5 (20 ms) are overloaded, 3 (same
        // cluster) has none.
        assert_eq!(jap_list_for_iap(&t, dns(&t), c(2), 0, 0).as_slice(), &[p(1), p(5), p(3)]);
        for crit in [Criterion::Load, Criterion::Random, Criterion::Weighted] {
            let mut j = vec![jap(1, 4), jap(3, 10), jap(5, 2)];
            j[0].overloaded = true;
            j[1].overloaded = true;
            let t = with_japs(opts(crit), j);
            for s in 0..200 {
                assert_eq!(choose_jap(&t, dns(&t), c(1), 0, s), Some(p(5)), "{crit:?}");
            }
        }
    }

    #[test]
    fn dead_and_unknown_japs_are_never_chosen() {
        let t = with_japs(opts(Criterion::Random), vec![jap(6, 5)]);
        assert_eq!(choose_jap(&t, dns(&t), c(1), 0, 0), None);
        assert!(jap_list_for_iap(&t, dns(&t), c(1), 0, 0).is_empty());
        let t = with_japs(opts(Criterion::Random), vec![]);
        assert_eq!(choose_jap(&t, dns(&t), c(1), 0, 0), None);
        // tcp/80 has no JAP view here.
        let e = t.group(&tcp(80)).unwrap();
        assert_eq!(choose_jap(&t, e, c(1), 0, 0), None);
        // An entry from this snapshot used with one where JAP 3 is down.
        let old = with_japs(opts(Criterion::Random), vec![jap(3, 5), jap(5, 5)]);
        let mut s = testutil::state();
        s.proxies[2].up = false;
        s.groups[0].raps = vec![p(1)];
        let new = Tables::build(&s).unwrap();
        for seed in 0..100 {
            assert_eq!(choose_jap(&new, dns(&old), c(1), 0, seed), Some(p(5)));
        }
    }

    #[test]
    fn random_follows_the_seed_unless_affinity() {
        let t = with_japs(opts(Criterion::Random), vec![jap(1, 1), jap(3, 1), jap(5, 1)]);
        let mut seen = std::collections::BTreeSet::new();
        for s in 0..100 {
            seen.insert(choose_jap(&t, dns(&t), c(1), 7, s).unwrap());
        }
        assert_eq!(seen.len(), 3);
        let t = with_japs(
            GroupOptions { criterion: Criterion::Random, affinity: true, ..Default::default() },
            vec![jap(1, 1), jap(3, 1), jap(5, 1)],
        );
        let mut seen = std::collections::BTreeSet::new();
        for s in 0..100 {
            seen.insert(choose_jap(&t, dns(&t), c(1), 7, s).unwrap());
        }
        assert_eq!(seen.len(), 1, "affinity: the client decides, not the seed");
    }

    fn shares(counts: &[u32]) -> Vec<f64> {
        let total: u32 = counts.iter().sum();
        counts.iter().map(|&x| f64::from(x) / f64::from(total)).collect()
    }

    fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < tol, "shares {got:?}, expected {want:?}");
        }
    }

    #[test]
    fn load_and_weighted_follow_their_weights() {
        const N: u64 = 200_000;
        let mut j = vec![jap(1, 10), jap(3, 30), jap(5, 60)];
        let t = with_japs(opts(Criterion::Load), j.clone());
        let mut counts = [0u32; 3];
        for s in 0..N {
            let k = match choose_jap(&t, dns(&t), c(1), 0, s).unwrap().0 {
                1 => 0,
                3 => 1,
                _ => 2,
            };
            counts[k] += 1;
        }
        assert_close(&shares(&counts), &[0.1, 0.3, 0.6], 0.01);
        // Operator weights, with 0 meaning 1.
        j[0].weight = 0;
        j[1].weight = 1;
        j[2].weight = 2;
        let t = with_japs(opts(Criterion::Weighted), j);
        let mut counts = [0u32; 3];
        for s in 0..N {
            let k = match choose_jap(&t, dns(&t), c(1), 0, mix64(s)).unwrap().0 {
                1 => 0,
                3 => 1,
                _ => 2,
            };
            counts[k] += 1;
        }
        assert_close(&shares(&counts), &[0.25, 0.25, 0.5], 0.01);
    }

    #[test]
    fn rapless_group_chooses_from_the_flooded_list() {
        let t = Tables::build(&testutil::state()).unwrap();
        let e = t.group(&GroupAddr::WholeIp(WHOLE)).unwrap();
        // Flooded 2 (cluster 1), 4 (cluster 2).
        assert_eq!(choose_jap(&t, e, c(1), 0, 0), Some(p(2)));
        assert_eq!(choose_jap(&t, e, c(3), 0, 0), Some(p(4)));
        assert_eq!(jap_list_for_iap(&t, e, c(3), 0, 0).as_slice(), &[p(4), p(2)]);
    }

    #[test]
    fn list_is_capped_and_starts_with_the_choice() {
        let mut s = testutil::state();
        for i in 10..30u32 {
            s.proxies.push(ProxyInfo { id: p(i), addr: Ipv4Addr::new(192, 0, 2, i as u8), cluster: c(2), up: true });
        }
        s.groups[0].japs = (10..30).map(|i| jap(i, i)).collect();
        s.groups[0].options = opts(Criterion::Load);
        let t = Tables::build(&s).unwrap();
        for seed in 0..100 {
            let l = jap_list_for_iap(&t, dns(&t), c(1), 3, seed);
            assert_eq!(l.len(), MAX_CACHED_JAPS);
            assert_eq!(l.first(), choose_jap(&t, dns(&t), c(1), 3, seed));
        }
    }

    #[test]
    fn targets_alive_only_and_none_when_all_dead() {
        let t = Tables::build(&testutil::state()).unwrap();
        let e = dns(&t);
        let dead = e.targets().iter().find(|t| !t.alive).unwrap().addr;
        for h in 0..1000 {
            let got = choose_target(e, h, AA).unwrap();
            assert_ne!(got, dead);
        }
        let e = t.group(&tcp(80)).unwrap();
        assert_eq!(choose_target(e, 1, AA), None);
        let mut s = testutil::state();
        for x in &mut s.groups[0].targets {
            x.alive = false;
        }
        let t = Tables::build(&s).unwrap();
        assert!(!dns(&t).has_live_target());
        assert_eq!(choose_target(dns(&t), 1, AA), None);
    }

    fn target_group(targets: Vec<LocalTarget>, affinity: bool) -> Tables {
        let mut s = testutil::state();
        s.groups[0].targets = targets;
        s.groups[0].options.affinity = affinity;
        Tables::build(&s).unwrap()
    }

    fn tgt(last: u8, weight: u16, alive: bool) -> LocalTarget {
        LocalTarget { weight, alive, ..testutil::target(last, 53) }
    }

    #[test]
    fn targets_share_flows_by_weight() {
        let t = target_group(vec![tgt(1, 1, true), tgt(2, 2, true), tgt(3, 3, true), tgt(4, 4, true)], false);
        let mut counts = [0u32; 4];
        for h in 0..200_000u64 {
            let a = choose_target(dns(&t), h, AA).unwrap();
            counts[usize::from(a.ip.octets()[3] - 1)] += 1;
        }
        assert_close(&shares(&counts), &[0.1, 0.2, 0.3, 0.4], 0.01);
        // Equal weights: even.
        let t = target_group(vec![tgt(1, 5, true), tgt(2, 5, true)], false);
        let mut counts = [0u32; 2];
        for h in 0..100_000u64 {
            counts[usize::from(choose_target(dns(&t), h, AA).unwrap().ip.octets()[3] - 1)] += 1;
        }
        assert_close(&shares(&counts), &[0.5, 0.5], 0.01);
    }

    #[test]
    fn affinity_keeps_a_client_on_one_target() {
        let targets = vec![tgt(1, 1, true), tgt(2, 1, true), tgt(3, 2, true)];
        let t = target_group(targets.clone(), true);
        let mut spread = std::collections::BTreeSet::new();
        for client in 0..200u32 {
            let ip = Ipv4Addr::from_bits(0x0a00_0000 + client);
            let first = choose_target(dns(&t), 0, ip).unwrap();
            for flow in 1..50u64 {
                assert_eq!(choose_target(dns(&t), mix64(flow), ip), Some(first));
            }
            spread.insert(first);
        }
        assert_eq!(spread.len(), 3, "clients not spread over targets");
        // Without affinity, one client's flows spread.
        let t = target_group(targets, false);
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        let mut spread = std::collections::BTreeSet::new();
        for flow in 0..100u64 {
            spread.insert(choose_target(dns(&t), flow, ip).unwrap());
        }
        assert_eq!(spread.len(), 3);
    }

    #[test]
    fn a_dead_target_moves_only_its_flows() {
        let all = vec![tgt(1, 1, true), tgt(2, 3, true), tgt(3, 1, true), tgt(4, 2, true)];
        let before = target_group(all.clone(), false);
        let mut dead = all.clone();
        dead[1].alive = false;
        let after = target_group(dead, false);
        let mut moved = 0;
        for h in 0..20_000u64 {
            let a = choose_target(dns(&before), h, AA).unwrap();
            let b = choose_target(dns(&after), h, AA).unwrap();
            if a == all[1].addr {
                assert_ne!(b, a);
                moved += 1;
            } else {
                assert_eq!(a, b, "flow {h} moved off a live target");
            }
        }
        assert!(moved > 0);
    }

    /// A random valid table: proxies 0..n (0 is me, a RAP of udp/53) in
    /// random clusters, random up/down and a random full RTT mesh; udp/53
    /// with a random JAP view and targets.
    fn random_tables(
        clusters: &[u16],
        ups: &[bool],
        rtts: &[u32],
        japs: &[(u32, bool, u16, u32)],
        criterion: Criterion,
        affinity: bool,
    ) -> Tables {
        let n = clusters.len() as u32;
        let mut s = StaticState::new(p(0));
        s.anycast = vec!["198.51.100.0/24".parse().unwrap()];
        s.proxies = (0..n)
            .map(|i| ProxyInfo {
                id: p(i),
                addr: Ipv4Addr::new(192, 0, 2, i as u8 + 1),
                cluster: c(clusters[i as usize]),
                up: i == 0 || ups[i as usize],
            })
            .collect();
        let mut cl: Vec<u16> = clusters.to_vec();
        cl.sort_unstable();
        cl.dedup();
        let mut k = 0;
        for (x, &a) in cl.iter().enumerate() {
            for &b in &cl[x + 1..] {
                s.rtt.push(RttEntry { a: c(a), b: c(b), rtt_us: rtts[k % rtts.len()] });
                k += 1;
            }
        }
        let mut g = GroupSpec::new(udp(53), GroupOptions { criterion, affinity, ..Default::default() });
        g.raps = vec![p(0)];
        let mut seen = std::collections::BTreeSet::new();
        for &(id, overloaded, weight, approx) in japs {
            let id = id % n;
            if seen.insert(id) {
                g.japs.push(JapLoad { jap: p(id), approx_targets: approx, overloaded, weight });
            }
        }
        s.groups = vec![g];
        Tables::build(&s).unwrap()
    }

    fn criterion() -> impl Strategy<Value = Criterion> {
        prop_oneof![
            Just(Criterion::Proximity),
            Just(Criterion::Load),
            Just(Criterion::Random),
            Just(Criterion::Weighted)
        ]
    }

    proptest! {
        /// Only live candidate JAPs are returned; the list is distinct,
        /// starts with the choice, holds every live candidate up to the cap,
        /// and never-overloaded ones come before overloaded ones.
        #[test]
        fn selection_returns_live_members_only(
            clusters in proptest::collection::vec(0u16..5, 1..12),
            ups in proptest::collection::vec(any::<bool>(), 12),
            rtts in proptest::collection::vec(0u32..100_000, 1..20),
            japs in proptest::collection::vec((any::<u32>(), any::<bool>(), any::<u16>(), 0u32..50), 0..12),
            crit in criterion(),
            affinity in any::<bool>(),
            iap in 0u16..6,
            ch in any::<u64>(),
            seed in any::<u64>(),
        ) {
            let t = random_tables(&clusters, &ups, &rtts, &japs, crit, affinity);
            let e = dns(&t);
            let live: Vec<&JapLoad> = e.japs().iter().filter(|j| t.is_up(j.jap)).collect();
            let chosen = choose_jap(&t, e, c(iap), ch, seed);
            let list = jap_list_for_iap(&t, e, c(iap), ch, seed);
            prop_assert_eq!(list.first(), chosen);
            prop_assert_eq!(list.len(), live.len().min(MAX_CACHED_JAPS));
            for &id in list.as_slice() {
                prop_assert!(live.iter().any(|j| j.jap == id));
            }
            let mut ids = list.as_slice().to_vec();
            ids.sort_unstable();
            ids.dedup();
            prop_assert_eq!(ids.len(), list.len());
            let class = |id: ProxyId| {
                let j = e.japs().iter().find(|j| j.jap == id).unwrap();
                if j.approx_targets == 0 { 2 } else if j.overloaded { 1 } else { 0 }
            };
            let classes: Vec<u8> = list.as_slice().iter().map(|&id| class(id)).collect();
            prop_assert!(classes.windows(2).all(|w| w[0] <= w[1]), "classes out of order: {:?}", classes);
            if let Some(best) = live.iter().map(|j| class(j.jap)).min() {
                prop_assert_eq!(chosen.map(class), Some(best));
            } else {
                prop_assert_eq!(chosen, None);
            }
        }

        /// Proximity picks a JAP at minimal RTT from the IAP's cluster
        /// among the live JAPs of the best class.
        #[test]
        fn proximity_picks_a_minimal_rtt_jap(
            clusters in proptest::collection::vec(0u16..5, 1..12),
            ups in proptest::collection::vec(any::<bool>(), 12),
            rtts in proptest::collection::vec(0u32..100_000, 1..20),
            japs in proptest::collection::vec((any::<u32>(), any::<bool>(), any::<u16>(), 0u32..50), 0..12),
            iap in 0u16..5,
            ch in any::<u64>(),
        ) {
            let t = random_tables(&clusters, &ups, &rtts, &japs, Criterion::Proximity, false);
            let e = dns(&t);
            let class = |j: &JapLoad| if j.approx_targets == 0 { 2 } else if j.overloaded { 1 } else { 0 };
            let live: Vec<&JapLoad> = e.japs().iter().filter(|j| t.is_up(j.jap)).collect();
            let Some(best_class) = live.iter().map(|j| class(j)).min() else {
                prop_assert_eq!(choose_jap(&t, e, c(iap), ch, 0), None);
                return Ok(());
            };
            let dist = |id: ProxyId| t.rtt_us(c(iap), t.proxy(id).unwrap().cluster).unwrap_or(u32::MAX);
            let min = live.iter().filter(|j| class(j) == best_class).map(|j| dist(j.jap)).min().unwrap();
            let got = choose_jap(&t, e, c(iap), ch, 0).unwrap();
            prop_assert_eq!(dist(got), min);
            // And the rest of the list is in RTT order within a class.
            let l = jap_list_for_iap(&t, e, c(iap), ch, 0);
            let keys: Vec<(u8, u32)> = l.as_slice().iter().map(|&id| {
                (class(e.japs().iter().find(|j| j.jap == id).unwrap()), dist(id))
            }).collect();
            prop_assert!(keys.windows(2).all(|w| w[0] <= w[1]), "not in order: {:?}", keys);
        }

        /// Weighted target choice: over many flows each target's share is
        /// its weight's share.
        #[test]
        fn target_shares_follow_random_weights(weights in proptest::collection::vec(1u16..20, 1..6)) {
            let targets: Vec<LocalTarget> = weights.iter().enumerate().map(|(i, &w)| tgt(i as u8 + 1, w, true)).collect();
            let t = target_group(targets, false);
            let mut counts = vec![0u32; weights.len()];
            for h in 0..40_000u64 {
                counts[usize::from(choose_target(dns(&t), h, AA).unwrap().ip.octets()[3] - 1)] += 1;
            }
            let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
            let want: Vec<f64> = weights.iter().map(|&w| f64::from(w) / total).collect();
            for (g, w) in shares(&counts).iter().zip(&want) {
                prop_assert!((g - w).abs() < 0.02, "shares {:?}, expected {:?}", shares(&counts), want);
            }
        }

        /// Rendezvous property: removing (or killing) a target moves only
        /// the flows that were on it; adding one moves flows only onto it.
        #[test]
        fn removing_a_target_moves_only_its_flows(
            weights in proptest::collection::vec(1u16..10, 2..8),
            victim in any::<prop::sample::Index>(),
            affinity in any::<bool>(),
            flows in proptest::collection::vec((any::<u64>(), any::<u32>()), 1..200),
        ) {
            let all: Vec<LocalTarget> = weights.iter().enumerate().map(|(i, &w)| tgt(i as u8 + 1, w, true)).collect();
            let v = victim.index(all.len());
            let mut fewer = all.clone();
            let gone = fewer.remove(v).addr;
            let before = target_group(all, affinity);
            let after = target_group(fewer, affinity);
            for &(h, ip) in &flows {
                let ip = Ipv4Addr::from_bits(ip);
                let a = choose_target(dns(&before), h, ip).unwrap();
                let b = choose_target(dns(&after), h, ip).unwrap();
                if a == gone {
                    prop_assert_ne!(b, gone);
                } else {
                    prop_assert_eq!(a, b);
                }
                // Added back: flows move only onto the returning target.
                let c2 = choose_target(dns(&before), h, ip).unwrap();
                prop_assert!(c2 == b || c2 == gone);
            }
        }

        /// Affinity: every flow of one client reaches the same target.
        #[test]
        fn affinity_same_client_same_target(
            weights in proptest::collection::vec(1u16..10, 1..8),
            client in any::<u32>(),
            flows in proptest::collection::vec(any::<u64>(), 1..50),
        ) {
            let targets: Vec<LocalTarget> = weights.iter().enumerate().map(|(i, &w)| tgt(i as u8 + 1, w, true)).collect();
            let t = target_group(targets, true);
            let ip = Ipv4Addr::from_bits(client);
            let first = choose_target(dns(&t), flows[0], ip);
            prop_assert!(first.is_some());
            for &f in &flows {
                prop_assert_eq!(choose_target(dns(&t), f, ip), first);
            }
        }

        /// Choices never panic, whatever the cluster and hashes.
        #[test]
        fn choices_never_panic(iap in any::<u16>(), ch in any::<u64>(), seed in any::<u64>(), ip in any::<u32>()) {
            let t = Tables::build(&testutil::state()).unwrap();
            for (_, e) in t.groups() {
                let _ = choose_jap(&t, e, c(iap), ch, seed);
                let _ = jap_list_for_iap(&t, e, c(iap), ch, seed);
                let _ = choose_target(e, seed, Ipv4Addr::from_bits(ip));
                // With a snapshot that knows nothing.
                let d = Tables::default();
                prop_assert_eq!(choose_jap(&d, e, c(iap), ch, seed), None);
            }
        }
    }
}
