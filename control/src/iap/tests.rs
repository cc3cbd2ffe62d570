//! IAP tests: misses and queries, fills, invalidations, proxy down,
//! negative caching, caps.

use core::net::Ipv4Addr;

use pias_dataplane::types::{GroupOptions, GroupProto};

use super::*;
use crate::transmit::Dest;
use crate::view::testing::TestView;

fn g() -> GroupAddr {
    GroupAddr::Port {
        ip: Ipv4Addr::new(198, 51, 100, 10),
        port: 53,
        proto: GroupProto::Udp,
    }
}

fn view() -> TestView {
    TestView::new(1, 8).group(g(), GroupOptions::default(), &[4, 6, 8])
}

fn list(japs: &[u32]) -> JapList {
    JapList {
        group: g(),
        ttl_s: 600,
        japs: japs.iter().map(|&j| ProxyId(j)).collect(),
    }
}

fn queries(i: &mut Iap) -> Vec<ProxyId> {
    core::iter::from_fn(|| i.poll_transmit())
        .filter_map(|o| match (o.dest, o.msg) {
            (Dest::Proxy(p), Message::RapQuery(_)) => Some(p),
            _ => None,
        })
        .collect()
}

fn updates(i: &mut Iap) -> Vec<CacheUpdate> {
    core::iter::from_fn(|| i.poll_update()).collect()
}

fn ms(x: u64) -> Duration {
    Duration::from_millis(x)
}

#[test]
fn a_miss_asks_the_rap_only_when_its_own_list_does_not_come() {
    let v = view();
    let cfg = IapConfig::default();
    let mut i = Iap::new(cfg.clone());
    let t0 = Instant::ZERO;
    i.handle_miss(t0, &v, &g(), Some(ProxyId(6)));
    i.handle_miss(t0, &v, &g(), Some(ProxyId(6)));
    assert_eq!(i.pending(), 1);
    assert_eq!(i.poll_timeout(), Some(t0 + cfg.query_delay));
    // The RAP's list arrives first: no query.
    i.handle_jap_list(t0 + ms(100), &v, ProxyId(6), &list(&[3, 5]));
    assert_eq!(i.pending(), 0);
    assert_eq!(i.poll_timeout(), None);
    match updates(&mut i).as_slice() {
        [CacheUpdate::Fill { group, japs, ttl }] => {
            assert_eq!(*group, g());
            assert_eq!(japs.as_slice(), &[ProxyId(3), ProxyId(5)]);
            assert_eq!(*ttl, 600_000_000_000);
        }
        u => panic!("{u:?}"),
    }
    assert_eq!(i.cached(&g(), t0 + ms(100)).map(|l| l.len()), Some(2));
    assert!(queries(&mut i).is_empty());
}

#[test]
fn lost_answers_are_repaired_then_given_up() {
    let v = view();
    let cfg = IapConfig::default();
    let mut i = Iap::new(cfg.clone());
    let t0 = Instant::ZERO;
    i.handle_miss(t0, &v, &g(), Some(ProxyId(6)));
    let mut sent = Vec::new();
    let mut now = t0;
    while let Some(t) = i.poll_timeout() {
        now = t;
        i.handle_timeout(now, &v);
        sent.extend(queries(&mut i));
    }
    // Each query to the next RAP by distance after the one before (the
    // miss went to 6): a dead RAP costs one retry, not all of them.
    assert_eq!(sent.len(), usize::from(cfg.query_attempts));
    assert!(
        sent.iter().all(|r| [4, 6, 8].map(ProxyId).contains(r)),
        "{sent:?}"
    );
    assert_ne!(
        sent[0],
        ProxyId(6),
        "the first query goes to another RAP than the miss"
    );
    for w in sent.windows(2) {
        assert_ne!(w[0], w[1], "consecutive queries to one RAP: {sent:?}");
    }
    assert_eq!(i.counters().gave_up, 1);
    assert_eq!(
        now,
        t0 + cfg.query_delay + cfg.query_retry * u32::from(cfg.query_attempts)
    );
}

#[test]
fn a_query_goes_to_a_current_rap() {
    let v = view();
    let mut i = Iap::new(IapConfig::default());
    // The miss named 2, which is not (or no longer) a RAP of g.
    i.handle_miss(Instant::ZERO, &v, &g(), Some(ProxyId(2)));
    i.handle_timeout(Instant::ZERO + ms(600), &v);
    let q = queries(&mut i);
    assert_eq!(q.len(), 1);
    assert!([4, 6, 8].map(ProxyId).contains(&q[0]));
    // Without a RAP at all (the dataplane had none): the nearest.
    let mut i = Iap::new(IapConfig::default());
    i.handle_miss(Instant::ZERO, &v, &g(), None);
    assert_eq!(i.pending(), 1);
}

#[test]
fn lists_leave_out_unknown_proxies_and_empty_lists_cache_negatively() {
    let v = view();
    let mut i = Iap::new(IapConfig::default());
    let t0 = Instant::ZERO;
    i.handle_jap_list(t0, &v, ProxyId(4), &list(&[99, 3]));
    assert_eq!(i.counters().japs_filtered, 1);
    assert_eq!(
        i.cached(&g(), t0).map(|l| l.as_slice().to_vec()),
        Some(vec![ProxyId(3)])
    );
    i.handle_jap_list(t0, &v, ProxyId(4), &list(&[]));
    assert!(
        matches!(updates(&mut i).last(), Some(CacheUpdate::Fill { japs, .. }) if japs.is_empty())
    );
    assert!(i.cached(&g(), t0).is_none());
    i.handle_miss(t0 + ms(500), &v, &g(), Some(ProxyId(4)));
    assert_eq!(i.pending(), 0, "negative cache");
    i.handle_miss(t0 + ms(1500), &v, &g(), Some(ProxyId(4)));
    assert_eq!(i.pending(), 1);
}

#[test]
fn invalidations_fail_over_and_an_exhausted_list_asks_again() {
    let v = view();
    let mut i = Iap::new(IapConfig::default());
    let t0 = Instant::ZERO;
    i.handle_jap_list(t0, &v, ProxyId(4), &list(&[3, 5]));
    updates(&mut i);
    // Only the JAP itself may invalidate itself.
    i.handle_invalidate(
        t0,
        &v,
        ProxyId(5),
        &Invalidate {
            group: g(),
            jap: ProxyId(3),
        },
    );
    assert!(updates(&mut i).is_empty());
    assert_eq!(i.counters().invalidations_wrong_jap, 1);
    i.handle_invalidate(
        t0,
        &v,
        ProxyId(3),
        &Invalidate {
            group: g(),
            jap: ProxyId(3),
        },
    );
    assert_eq!(
        updates(&mut i),
        vec![CacheUpdate::Invalidate {
            group: g(),
            jap: ProxyId(3)
        }]
    );
    assert_eq!(i.pending(), 0, "5 is left");
    i.handle_invalidate(
        t0,
        &v,
        ProxyId(5),
        &Invalidate {
            group: g(),
            jap: ProxyId(5),
        },
    );
    assert_eq!(i.counters().exhausted, 1);
    assert_eq!(i.poll_timeout(), Some(t0), "asks at once");
    i.handle_timeout(t0, &v);
    assert_eq!(queries(&mut i).len(), 1);
}

#[test]
fn proxy_down_reaches_the_workers_and_the_mirror() {
    let v = view();
    let mut i = Iap::new(IapConfig::default());
    i.handle_jap_list(Instant::ZERO, &v, ProxyId(4), &list(&[3, 5]));
    updates(&mut i);
    i.handle_proxy_down(ProxyId(3));
    assert_eq!(updates(&mut i), vec![CacheUpdate::ProxyDown(ProxyId(3))]);
    assert_eq!(i.cached(&g(), Instant::ZERO).map(|l| l.len()), Some(1));
    i.handle_proxy_down(ProxyId(5));
    assert!(i.cached(&g(), Instant::ZERO).is_none());
}

#[test]
fn rapless_and_unknown_groups_are_not_queried_and_pending_is_capped() {
    let w = GroupAddr::WholeIp(Ipv4Addr::new(198, 51, 100, 40));
    let v = view().group(
        w,
        GroupOptions {
            rapless: true,
            ..GroupOptions::default()
        },
        &[],
    );
    let mut i = Iap::new(IapConfig {
        max_pending: 1,
        ..IapConfig::default()
    });
    i.handle_miss(Instant::ZERO, &v, &w, Some(ProxyId(4)));
    i.handle_miss(
        Instant::ZERO,
        &v,
        &GroupAddr::WholeIp(Ipv4Addr::new(198, 51, 100, 41)),
        Some(ProxyId(4)),
    );
    assert_eq!(i.pending(), 0);
    i.handle_jap_list(
        Instant::ZERO,
        &v,
        ProxyId(4),
        &JapList {
            group: w,
            ttl_s: 1,
            japs: vec![],
        },
    );
    assert_eq!(i.counters().lists_unknown_group, 1);
    let h = GroupAddr::WholeIp(Ipv4Addr::new(198, 51, 100, 42));
    let v = v.group(h, GroupOptions::default(), &[4]);
    i.handle_miss(Instant::ZERO, &v, &g(), Some(ProxyId(4)));
    i.handle_miss(Instant::ZERO, &v, &h, Some(ProxyId(4)));
    assert_eq!(i.pending(), 1);
    assert_eq!(i.counters().pending_full, 1);
}
