//! Rendezvous tests: stability, minimal disruption, determinism, balance,
//! nearest RAP.

use core::net::Ipv4Addr;

use pias_dataplane::types::{ClusterId, GroupAddr, GroupProto, ProxyId};
use proptest::prelude::*;

use super::*;

fn udp(port: u16) -> GroupAddr {
    GroupAddr::Port {
        ip: Ipv4Addr::new(198, 51, 100, 10),
        port,
        proto: GroupProto::Udp,
    }
}

fn live(ids: impl IntoIterator<Item = u32>) -> Rendezvous {
    let mut r = Rendezvous::new();
    for i in ids {
        r.insert(ProxyId(i));
    }
    r
}

/// Pinned values: if these change, every deployed proxy would disagree
/// with an upgraded one about every group's RAPs. A change here is a
/// protocol change.
#[test]
fn hash_is_pinned() {
    assert_eq!(proxy_hash(ProxyId(1)), 0xbe7d_fa15_511a_aebe);
    assert_eq!(group_hash(&udp(53)), 0x8ac2_2f2d_3678_51a2);
    let r = live(1..=10);
    let ids = |g| {
        r.raps(&g, 3)
            .as_slice()
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(udp(53)), vec![4, 5, 1]);
    assert_eq!(
        ids(GroupAddr::WholeIp(Ipv4Addr::new(198, 51, 100, 20))),
        vec![2, 3, 5]
    );
}

#[test]
fn fewer_proxies_than_k_and_clamping() {
    assert!(live([]).raps(&udp(1), 3).is_empty());
    assert_eq!(live([5]).raps(&udp(1), 3).as_slice(), &[ProxyId(5)]);
    assert_eq!(live(1..=2).raps(&udp(1), 3).len(), 2);
    assert_eq!(live(1..=20).raps(&udp(1), 100).len(), MAX_RAPS);
    assert!(live(1..=20).raps(&udp(1), 0).is_empty());
}

#[test]
fn scores_are_in_order() {
    let r = live((0..50).map(|i| i * 7919));
    for port in 0..100 {
        let g = udp(port);
        let set = r.raps(&g, 5);
        let gh = group_hash(&g);
        let scores: Vec<u64> = set
            .as_slice()
            .iter()
            .map(|p| score(gh, proxy_hash(*p)))
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]));
        // No proxy outside the set scores higher than the last RAP.
        let min = *scores.last().unwrap();
        for i in 0..50 {
            let p = ProxyId(i * 7919);
            if !set.contains(p) {
                assert!(score(gh, proxy_hash(p)) < min);
            }
        }
    }
}

#[test]
fn balanced_over_many_groups() {
    let n = 30u32;
    let k = 3;
    let groups = 30_000u16;
    let r = live(100..100 + n);
    let mut load = vec![0u32; n as usize];
    for port in 0..groups {
        for p in r.raps(&udp(port), k).as_slice() {
            load[(p.0 - 100) as usize] += 1;
        }
    }
    let expected = f64::from(groups) * k as f64 / f64::from(n);
    for (i, l) in load.iter().enumerate() {
        let dev = (f64::from(*l) - expected).abs() / expected;
        assert!(dev < 0.10, "proxy {i}: {l} roles, expected {expected}");
    }
    // Each group's first RAP (the usual nearest-RAP tie-break) too.
    let mut first = vec![0u32; n as usize];
    for port in 0..groups {
        first[(r.raps(&udp(port), k).as_slice()[0].0 - 100) as usize] += 1;
    }
    let expected = f64::from(groups) / f64::from(n);
    assert!(first
        .iter()
        .all(|l| (f64::from(*l) - expected).abs() / expected < 0.15));
}

#[test]
fn nearest_rap_by_cluster_rtt() {
    let r = live(1..=10);
    let set = r.raps(&udp(53), 3); // [4, 5, 1]
    let cluster_of = |p: ProxyId| Some(ClusterId(p.0 as u16));
    let mut rtt = RttMatrix::new();
    // Nothing measured: the highest-scored RAP.
    assert_eq!(
        nearest_rap(&set, ClusterId(99), cluster_of, &rtt),
        Some(ProxyId(4))
    );
    rtt.set(ClusterId(99), ClusterId(5), 5_000);
    rtt.set(ClusterId(99), ClusterId(1), 1_000);
    assert_eq!(
        nearest_rap(&set, ClusterId(99), cluster_of, &rtt),
        Some(ProxyId(1))
    );
    // Same cluster as a RAP: distance 0.
    assert_eq!(
        nearest_rap(&set, ClusterId(5), cluster_of, &rtt),
        Some(ProxyId(5))
    );
    // Ties go to the higher score.
    rtt.set(ClusterId(99), ClusterId(4), 1_000);
    assert_eq!(
        nearest_rap(&set, ClusterId(99), cluster_of, &rtt),
        Some(ProxyId(4))
    );
    assert_eq!(
        nearest_rap(&live([]).raps(&udp(1), 3), ClusterId(1), cluster_of, &rtt),
        None
    );
}

#[test]
fn follows_membership_events() {
    use pias_dataplane::types::ProxyInfo;
    let mut r = Rendezvous::new();
    let info = ProxyInfo {
        id: ProxyId(4),
        addr: Ipv4Addr::new(192, 0, 2, 4),
        cluster: ClusterId(1),
        up: true,
    };
    r.apply(&Event::ProxyUp(info));
    r.apply(&Event::ProxyUp(info));
    assert_eq!(r.len(), 1);
    r.apply(&Event::ProxyDown(ProxyId(4)));
    assert!(r.is_empty());
}

fn ids() -> impl Strategy<Value = Vec<u32>> {
    proptest::collection::btree_set(any::<u32>(), 2..80).prop_map(|s| s.into_iter().collect())
}

proptest! {
    /// Adding a proxy changes only the RAP sets that now contain it, and
    /// those by exactly that proxy in, one proxy out.
    #[test]
    fn minimal_disruption_on_add(ids in ids(), extra: u32, k in 1usize..=5, ports in proptest::collection::vec(any::<u16>(), 1..100)) {
        prop_assume!(!ids.contains(&extra));
        let before = live(ids.iter().copied());
        let mut after = before.clone();
        after.insert(ProxyId(extra));
        for port in ports {
            let g = udp(port);
            let (old, new) = (before.raps(&g, k), after.raps(&g, k));
            if new.contains(ProxyId(extra)) {
                let kept: Vec<_> = new.as_slice().iter().filter(|p| p.0 != extra).copied().collect();
                // The others keep their order, and at most one dropped out.
                prop_assert!(old.as_slice().starts_with(&kept[..]) || kept.iter().all(|p| old.contains(*p)));
                prop_assert!(old.len() - kept.len() <= 1);
            } else {
                prop_assert_eq!(old, new);
            }
        }
    }

    /// Removing a proxy changes only the RAP sets that contained it.
    #[test]
    fn minimal_disruption_on_remove(ids in ids(), pick: prop::sample::Index, k in 1usize..=5, ports in proptest::collection::vec(any::<u16>(), 1..100)) {
        let gone = ProxyId(ids[pick.index(ids.len())]);
        let before = live(ids.iter().copied());
        let mut after = before.clone();
        after.remove(gone);
        for port in ports {
            let g = udp(port);
            let (old, new) = (before.raps(&g, k), after.raps(&g, k));
            if old.contains(gone) {
                prop_assert!(!new.contains(gone));
                prop_assert!(old.as_slice().iter().filter(|p| **p != gone).all(|p| new.contains(*p)));
            } else {
                prop_assert_eq!(old, new);
            }
        }
    }

    /// The result depends on the set of live proxies only, not on the
    /// order they were learnt in, nor on the call.
    #[test]
    fn deterministic(ids in ids(), k in 1usize..=8, port: u16) {
        let a = live(ids.iter().copied());
        let b = live(ids.iter().rev().copied());
        let g = udp(port);
        prop_assert_eq!(a.raps(&g, k), b.raps(&g, k));
        prop_assert_eq!(a.raps(&g, k), a.raps(&g, k));
        prop_assert_eq!(a.raps(&g, k).len(), k.min(ids.len()));
    }
}

proptest! {
    /// The incremental table always equals a fresh lookup, through any
    /// sequence of proxies coming and going, and reports exactly the
    /// groups whose set changed.
    #[test]
    fn rap_table_tracks_rendezvous(
        ops in proptest::collection::vec((any::<bool>(), 0u32..40), 1..80),
        k in 1usize..5,
    ) {
        let groups: Vec<GroupAddr> = (1..=30).map(udp).collect();
        let mut rz = live(0..10);
        let mut t = RapTable::new(k);
        for g in &groups {
            t.insert(*g, &rz);
        }
        for (up, p) in ops {
            let p = ProxyId(p);
            let before: Vec<Vec<ProxyId>> = groups.iter().map(|g| t.get(g).to_vec()).collect();
            let changed = if up {
                rz.insert(p);
                t.proxy_up(p)
            } else {
                rz.remove(p);
                t.proxy_down(p, &rz)
            };
            for (i, g) in groups.iter().enumerate() {
                let want = rz.raps(g, k);
                prop_assert_eq!(t.get(g), want.as_slice());
                let moved = before[i].as_slice() != want.as_slice();
                prop_assert_eq!(moved, changed.contains(g), "group {}", i);
            }
        }
    }
}
