//! RAP tests: report ordering and acks, the band rule, lists by
//! proximity, promotion, affinity anchors, pushes, role changes.

use core::net::Ipv4Addr;

use pias_dataplane::tables::RttEntry;
use pias_dataplane::types::{ClusterId, Criterion, GroupOptions, GroupProto};
use proptest::prelude::*;

use super::*;
use crate::transmit::Dest;
use crate::view::testing::TestView;
use crate::wire::{KeyId, ReportEntry};

fn g() -> GroupAddr {
    GroupAddr::Port {
        ip: Ipv4Addr::new(198, 51, 100, 10),
        port: 53,
        proto: GroupProto::Udp,
    }
}

fn c(i: u16) -> ClusterId {
    ClusterId(i)
}

/// Proxies 1..=8 in clusters 0..=3 (two each); this proxy (1) is a RAP of
/// g with 2 and 3.
fn view_with(o: GroupOptions) -> TestView {
    let rtt = |a, b, ms: u32| RttEntry {
        a: c(a),
        b: c(b),
        rtt_us: ms * 1000,
    };
    TestView::new(1, 8)
        .with_rtt(vec![
            rtt(0, 1, 10),
            rtt(0, 2, 20),
            rtt(0, 3, 30),
            rtt(1, 2, 15),
            rtt(1, 3, 25),
            rtt(2, 3, 5),
        ])
        .group(g(), o, &[1, 2, 3])
}

fn view() -> TestView {
    view_with(GroupOptions::default())
}

fn hdr(sender: u32, epoch: u32) -> ProxyHeader {
    ProxyHeader {
        sender: ProxyId(sender),
        key_id: KeyId(0),
        epoch,
        seq: 0,
    }
}

fn report(jap: u32, n: u32, seq: u32) -> Report {
    Report {
        jap: ProxyId(jap),
        entries: vec![ReportEntry {
            group: g(),
            approx_targets: n,
            overloaded: false,
            seq,
        }],
    }
}

fn drain(r: &mut Rap) -> Vec<Outgoing> {
    core::iter::from_fn(|| r.poll_transmit()).collect()
}

fn acks(out: &[Outgoing]) -> Vec<(ProxyId, u32, u8)> {
    out.iter()
        .filter_map(|o| match (&o.dest, &o.msg) {
            (Dest::Proxy(p), Message::ReportAck(a)) => {
                Some((*p, a.entries[0].seq, a.entries[0].band_pct))
            }
            _ => None,
        })
        .collect()
}

fn lists(out: &[Outgoing]) -> Vec<(ProxyId, Vec<ProxyId>)> {
    out.iter()
        .filter_map(|o| match (&o.dest, &o.msg) {
            (Dest::Proxy(p), Message::JapList(l)) => Some((*p, l.japs.clone())),
            _ => None,
        })
        .collect()
}

fn ids(v: &[u32]) -> Vec<ProxyId> {
    v.iter().map(|&i| ProxyId(i)).collect()
}

#[test]
fn reports_are_ordered_acked_and_checked() {
    let v = view();
    let mut r = Rap::new(RapConfig::default());
    let t0 = Instant::ZERO;
    r.handle_report(t0, &v, &hdr(5, 1), &report(5, 10, 1));
    assert_eq!(acks(&drain(&mut r)), vec![(ProxyId(5), 1, 5)]);
    assert_eq!(r.japs(&g()), vec![(ProxyId(5), 10)]);
    assert_eq!(r.take_dirty(), vec![g()]);
    // Older or equal: acked (so the band reaches the JAP), not applied.
    r.handle_report(t0, &v, &hdr(5, 1), &report(5, 99, 1));
    assert_eq!(acks(&drain(&mut r)).len(), 1);
    assert_eq!(r.japs(&g()), vec![(ProxyId(5), 10)]);
    assert_eq!(r.counters().entries_stale, 1);
    // A new epoch (the JAP restarted) wins whatever its seq.
    r.handle_report(t0, &v, &hdr(5, 2), &report(5, 7, 1));
    assert_eq!(r.japs(&g()), vec![(ProxyId(5), 7)]);
    drain(&mut r);
    // Wrong JAP field: dropped, no ack.
    r.handle_report(t0, &v, &hdr(6, 1), &report(5, 1, 9));
    assert!(drain(&mut r).is_empty());
    assert_eq!(r.counters().wrong_jap, 1);
    // Count 0 withdraws; a reordered older report cannot bring it back.
    r.handle_report(t0, &v, &hdr(5, 2), &report(5, 0, 3));
    r.handle_report(t0, &v, &hdr(5, 2), &report(5, 4, 2));
    assert!(r.japs(&g()).is_empty());
    drain(&mut r);
    // Groups this proxy is no RAP of: no ack.
    let other = view_with(GroupOptions::default()).group(g(), GroupOptions::default(), &[2, 3, 4]);
    r.handle_report(t0, &other, &hdr(6, 1), &report(6, 3, 1));
    assert!(acks(&drain(&mut r)).is_empty());
    assert_eq!(r.counters().not_rap, 1);
}

#[test]
fn band_rule() {
    let cfg = RapConfig::default();
    assert_eq!(cfg.band_for(0.0), 5);
    assert_eq!(cfg.band_for(200.0), 25);
    assert_eq!(cfg.band_for(400.0), 50);
    assert_eq!(cfg.band_for(800.0), 100);
    assert_eq!(cfg.band_for(1e12), 100);
    assert_eq!(cfg.band_for(f64::NAN), 5);
    let zero = RapConfig {
        target_load: 0.0,
        ..RapConfig::default()
    };
    assert_eq!(zero.band_for(1.0), 25);
}

#[test]
fn the_band_widens_under_load_and_narrows_after() {
    let v = view();
    let mut r = Rap::new(RapConfig::default());
    let mut now = Instant::ZERO;
    assert_eq!(r.band_pct(), 5);
    // 800 reports a second for 30 s.
    let mut seq = 0;
    for _ in 0..30 {
        for _ in 0..800 {
            seq += 1;
            r.handle_report(now, &v, &hdr(5, 1), &report(5, 1 + seq % 50, seq));
        }
        now += Duration::from_secs(1);
        r.handle_timeout(now);
        drain(&mut r);
    }
    assert!(r.load() > 700.0, "{}", r.load());
    assert!(r.band_pct() >= 90, "{}", r.band_pct());
    // Every ack carries the band.
    seq += 1;
    r.handle_report(now, &v, &hdr(5, 1), &report(5, 3, seq));
    assert_eq!(acks(&drain(&mut r))[0].2, r.band_pct());
    // Quiet for a minute: back to the narrowest band.
    for _ in 0..60 {
        now += Duration::from_secs(1);
        r.handle_timeout(now);
    }
    assert_eq!(r.band_pct(), 5);
}

#[test]
fn lists_follow_proximity_and_promote_the_dataplane_choice() {
    let v = view();
    let mut r = Rap::new(RapConfig::default());
    let t0 = Instant::ZERO;
    // JAPs 3 (cluster 1) and 5 (cluster 2).
    r.handle_report(t0, &v, &hdr(3, 1), &report(3, 4, 1));
    r.handle_report(t0, &v, &hdr(5, 1), &report(5, 4, 1));
    drain(&mut r);
    // IAP 7 (cluster 3): 5 is 5 ms away, 3 is 25 ms.
    r.handle_query(t0, &v, ProxyId(7), &RapQuery { group: g() });
    assert_eq!(lists(&drain(&mut r)), vec![(ProxyId(7), ids(&[5, 3]))]);
    // IAP 1 (cluster 0, this proxy): 3 first.
    r.handle_query(t0, &v, ProxyId(1), &RapQuery { group: g() });
    assert_eq!(lists(&drain(&mut r)), vec![(ProxyId(1), ids(&[3, 5]))]);
    // The dataplane chose 5 for IAP 2: 5 goes first.
    r.handle_chose(t0, &v, &g(), ProxyId(5), Ipv4Addr::new(192, 0, 2, 2));
    assert_eq!(lists(&drain(&mut r)), vec![(ProxyId(2), ids(&[5, 3]))]);
    // The same choice again within the gap is suppressed.
    r.handle_chose(t0, &v, &g(), ProxyId(5), Ipv4Addr::new(192, 0, 2, 2));
    assert!(drain(&mut r).is_empty());
    assert_eq!(r.counters().lists_suppressed, 1);
    // Unknown IAP address.
    r.handle_chose(t0, &v, &g(), ProxyId(5), Ipv4Addr::new(10, 9, 9, 9));
    assert_eq!(r.counters().unknown_iap, 1);
    // The dataplane view: both JAPs.
    assert_eq!(r.view_japs(&v, &g()).len(), 2);
    // No JAP: an empty list.
    let w = GroupAddr::WholeIp(Ipv4Addr::new(198, 51, 100, 30));
    let v2 = view().group(w, GroupOptions::default(), &[1]);
    r.handle_query(t0, &v2, ProxyId(7), &RapQuery { group: w });
    assert_eq!(lists(&drain(&mut r)), vec![(ProxyId(7), vec![])]);
}

#[test]
fn affinity_groups_get_one_order_everywhere_and_publish_the_anchor() {
    let o = GroupOptions {
        affinity: true,
        criterion: Criterion::Proximity,
        ..GroupOptions::default()
    };
    let v = view_with(o);
    let mut r = Rap::new(RapConfig::default());
    let t0 = Instant::ZERO;
    for j in [3, 5, 6, 8] {
        r.handle_report(t0, &v, &hdr(j, 1), &report(j, 2, 1));
    }
    drain(&mut r);
    let mut seen = Vec::new();
    for iap in [1u32, 2, 4, 7, 8] {
        r.handle_query(t0, &v, ProxyId(iap), &RapQuery { group: g() });
        seen.extend(lists(&drain(&mut r)).into_iter().map(|x| x.1));
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    let order = seen[0].clone();
    assert_eq!(order.len(), 4);
    // A dataplane choice is not promoted for affinity groups.
    r.handle_chose(t0, &v, &g(), order[3], Ipv4Addr::new(192, 0, 2, 6));
    assert_eq!(lists(&drain(&mut r))[0].1, order);
    // The dataplane view is the anchor alone.
    let vj = r.view_japs(&v, &g());
    assert_eq!(vj.len(), 1);
    assert_eq!(vj[0].jap, order[0]);
    // When the anchor goes, the next in the order is the anchor: the IAPs'
    // failover and the RAPs' new choice agree.
    r.handle_proxy_down(order[0]);
    assert_eq!(r.view_japs(&v, &g())[0].jap, order[1]);
}

#[test]
fn a_jap_leaving_pushes_fresh_lists_to_recent_iaps() {
    let v = view();
    let mut r = Rap::new(RapConfig::default());
    let t0 = Instant::ZERO;
    r.handle_report(t0, &v, &hdr(3, 1), &report(3, 4, 1));
    r.handle_report(t0, &v, &hdr(5, 1), &report(5, 4, 1));
    for iap in [7, 8] {
        r.handle_query(t0, &v, ProxyId(iap), &RapQuery { group: g() });
    }
    drain(&mut r);
    r.handle_report(t0, &v, &hdr(5, 1), &report(5, 0, 2));
    let pushed = lists(&drain(&mut r));
    assert_eq!(
        pushed,
        vec![(ProxyId(7), ids(&[3])), (ProxyId(8), ids(&[3]))]
    );
    assert_eq!(r.counters().pushes, 2);
}

#[test]
fn roles_move_with_the_view() {
    let v = view();
    let mut r = Rap::new(RapConfig::default());
    r.handle_report(Instant::ZERO, &v, &hdr(3, 1), &report(3, 4, 1));
    assert_eq!(r.group_count(), 1);
    r.take_dirty();
    let moved = view().group(g(), GroupOptions::default(), &[2, 3, 4]);
    r.handle_view_change(&moved);
    assert_eq!(r.group_count(), 0);
    assert_eq!(r.take_dirty(), vec![g()]);
}

#[test]
fn caps_bound_groups_and_japs() {
    let v = view();
    let mut r = Rap::new(RapConfig {
        max_japs_per_group: 2,
        ..RapConfig::default()
    });
    for j in 3..=6 {
        r.handle_report(Instant::ZERO, &v, &hdr(j, 1), &report(j, 1, 1));
    }
    assert_eq!(r.japs(&g()).len(), 2);
    assert_eq!(r.counters().japs_full, 2);
}

proptest! {
    /// Whatever arrives, every list names only JAPs with live targets, at
    /// most the cache size, without repeats.
    #[test]
    fn lists_are_well_formed(
        reps in proptest::collection::vec((2u32..=8, 2u32..=8, 0u32..5, 1u32..4, 0u32..20), 0..60),
        iap in 1u32..=8,
        crit in 0u8..4,
        affinity in any::<bool>(),
    ) {
        let o = GroupOptions {
            criterion: [Criterion::Proximity, Criterion::Load, Criterion::Random, Criterion::Weighted][usize::from(crit)],
            affinity,
            rapless: false,
        };
        let v = view_with(o);
        let mut r = Rap::new(RapConfig::default());
        for (sender, jap, n, epoch, seq) in reps {
            r.handle_report(Instant::ZERO, &v, &hdr(sender, epoch), &report(jap, n, seq));
        }
        let live: Vec<ProxyId> = r.japs(&g()).into_iter().map(|x| x.0).collect();
        let info = v.proxy(ProxyId(iap)).unwrap();
        let l = r.list_for(&v, &g(), &info, None);
        prop_assert!(l.len() <= MAX_CACHED_JAPS);
        prop_assert_eq!(l.len(), live.len().min(MAX_CACHED_JAPS));
        for j in &l {
            prop_assert!(live.contains(j));
        }
        let mut d = l.clone();
        d.sort();
        d.dedup();
        prop_assert_eq!(d.len(), l.len());
        let vj = r.view_japs(&v, &g());
        if affinity {
            prop_assert!(vj.len() <= 1);
            prop_assert_eq!(vj.first().map(|j| j.jap), l.first().copied());
        } else {
            prop_assert_eq!(vj.len(), live.len());
        }
    }
}
