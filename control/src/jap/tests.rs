//! JAP tests: joins and their refusals, soft state, health, the band,
//! retransmission, RAP changes, RAP-less announcements, invalidations.

use core::net::{Ipv4Addr, SocketAddrV4};

use pias_dataplane::types::{GroupOptions, GroupProto};
use proptest::prelude::*;

use super::*;
use crate::time::UnixTime;
use crate::view::testing::TestView;
use crate::wire::ReportAckEntry;

fn g() -> GroupAddr {
    GroupAddr::Port {
        ip: Ipv4Addr::new(198, 51, 100, 10),
        port: 53,
        proto: GroupProto::Udp,
    }
}

fn view() -> TestView {
    TestView::new(1, 6).group(g(), GroupOptions::default(), &[2, 3, 4])
}

fn tgt(i: u32) -> TargetAddr {
    TargetAddr {
        ip: Ipv4Addr::from_bits(0xcb00_7100 + i), // 203.0.113.i
        port: 53,
    }
}

fn src(i: u32) -> SocketAddrV4 {
    SocketAddrV4::new(tgt(i).ip, 40_000)
}

fn req(t: TargetAddr, lifetime_s: u32, nonce: u64) -> TargetRequest {
    TargetRequest {
        group: g(),
        target: t,
        options: GroupOptions::default(),
        lifetime_s,
        timestamp: UnixTime(0),
        nonce,
        // The base point (u = 9): a valid share.
        share: Some(crate::wire::KeyShare(BASE_POINT)),
    }
}

const BASE_POINT: [u8; 32] = {
    let mut u = [0u8; 32];
    u[0] = 9;
    u
};

fn drain(j: &mut Jap) -> Vec<Outgoing> {
    core::iter::from_fn(|| j.poll_transmit()).collect()
}

/// Run timeouts up to `until`, collecting what was sent.
fn run(j: &mut Jap, v: &TestView, until: Instant) -> Vec<Outgoing> {
    let mut out = Vec::new();
    while let Some(t) = j.poll_timeout() {
        if t > until {
            break;
        }
        j.handle_timeout(t, v);
        out.extend(drain(j));
    }
    out
}

fn reports(out: &[Outgoing]) -> Vec<(ProxyId, Vec<ReportEntry>)> {
    out.iter()
        .filter_map(|o| match (&o.dest, &o.msg) {
            (Dest::Proxy(p), Message::Report(r)) => Some((*p, r.entries.clone())),
            _ => None,
        })
        .collect()
}

fn join(j: &mut Jap, v: &TestView, now: Instant, i: u32) -> Message {
    j.handle_request(
        now,
        UnixTime(0),
        v,
        src(i),
        &Message::Join(req(tgt(i), 60, u64::from(i))),
    );
    let out = drain(j);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].dest,
        Dest::Target {
            from: SocketAddrV4::new(g().ip(), DEFAULT_CONTROL_PORT),
            to: src(i)
        }
    );
    out[0].msg.clone()
}

fn ack_all(j: &mut Jap, out: &[Outgoing], band: u8) {
    for (rap, entries) in reports(out) {
        j.handle_report_ack(
            Instant::ZERO,
            rap,
            &ReportAck {
                entries: entries
                    .iter()
                    .map(|e| ReportAckEntry {
                        group: e.group,
                        seq: e.seq,
                        band_pct: band,
                    })
                    .collect(),
            },
        );
    }
}

fn s(x: f64) -> Duration {
    Duration::from_secs_f64(x)
}

#[test]
fn join_is_acked_clamped_and_reported_to_every_rap() {
    let v = view();
    let mut j = Jap::new(JapConfig::default());
    let t0 = Instant::ZERO;
    match join(&mut j, &v, t0, 1) {
        Message::JoinAck(a) => {
            assert_eq!(a.jap, ProxyId(1));
            assert_eq!(a.lifetime_s, 60);
            assert_eq!(a.nonce, 1);
        }
        m => panic!("{m:?}"),
    }
    // Lifetimes are clamped.
    j.handle_request(
        t0,
        UnixTime(0),
        &v,
        src(2),
        &Message::Join(req(tgt(2), 1, 2)),
    );
    j.handle_request(
        t0,
        UnixTime(0),
        &v,
        src(3),
        &Message::Join(req(tgt(3), 100_000, 3)),
    );
    let acks: Vec<u32> = drain(&mut j)
        .into_iter()
        .filter_map(|o| match o.msg {
            Message::JoinAck(a) => Some(a.lifetime_s),
            _ => None,
        })
        .collect();
    assert_eq!(acks, vec![10, 300]);
    assert_eq!(j.take_dirty(), vec![g()]);
    assert_eq!(j.local_targets(&g()).len(), 3);
    assert!(j.local_targets(&g()).iter().all(|t| t.alive));
    // After the report delay: one report per RAP, count 3.
    let out = run(&mut j, &v, t0 + s(0.06));
    let r = reports(&out);
    assert_eq!(
        r.iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![ProxyId(2), ProxyId(3), ProxyId(4)]
    );
    assert!(r
        .iter()
        .all(|(_, e)| e.len() == 1 && e[0].approx_targets == 3));
    assert_eq!(j.unacked_reports(), 3);
    ack_all(&mut j, &out, 25);
    assert_eq!(j.unacked_reports(), 0);
    assert_eq!(j.counters().acks, 3);
}

#[test]
fn refusals_are_nacked_and_counted() {
    let v = view();
    let mut j = Jap::new(JapConfig {
        max_targets_per_group: 2,
        ..JapConfig::default()
    });
    let t0 = Instant::ZERO;
    let nack = |j: &mut Jap, m: Message| -> NackReason {
        j.handle_request(t0, UnixTime(0), &v, src(9), &m);
        match drain(j).pop().map(|o| o.msg) {
            Some(Message::JoinNack(n)) => n.reason,
            other => panic!("{other:?}"),
        }
    };
    // Targets the dataplane's tables would refuse.
    for bad in [
        TargetAddr {
            ip: Ipv4Addr::new(127, 0, 0, 1),
            port: 53,
        },
        TargetAddr {
            ip: Ipv4Addr::new(224, 0, 0, 1),
            port: 53,
        },
        TargetAddr {
            ip: Ipv4Addr::new(198, 51, 100, 99),
            port: 53,
        },
        TargetAddr {
            ip: Ipv4Addr::new(192, 0, 2, 3),
            port: 53,
        },
    ] {
        assert_eq!(
            nack(&mut j, Message::Join(req(bad, 60, 1))),
            NackReason::BadTarget
        );
    }
    let mut unknown = req(tgt(1), 60, 1);
    unknown.group = GroupAddr::WholeIp(Ipv4Addr::new(198, 51, 100, 50));
    assert_eq!(
        nack(&mut j, Message::Join(unknown)),
        NackReason::UnknownGroup
    );
    assert_eq!(
        nack(&mut j, Message::Leave(req(tgt(1), 0, 1))),
        NackReason::NotJoined
    );
    join(&mut j, &v, t0, 1);
    join(&mut j, &v, t0, 2);
    assert_eq!(
        nack(&mut j, Message::Join(req(tgt(3), 60, 3))),
        NackReason::Full
    );
    // A held target may still refresh when the group is full.
    assert!(matches!(join(&mut j, &v, t0, 2), Message::JoinAck(_)));
    let c = j.counters();
    assert_eq!(
        (
            c.nack_bad_target,
            c.nack_unknown_group,
            c.nack_not_joined,
            c.nack_full
        ),
        (4, 1, 1, 1)
    );
    assert_eq!(j.target_count(), 2);
}

#[test]
fn whole_ip_targets_need_port_zero() {
    let w = GroupAddr::WholeIp(Ipv4Addr::new(198, 51, 100, 20));
    let v = TestView::new(1, 4).group(w, GroupOptions::default(), &[2]);
    let mut j = Jap::new(JapConfig::default());
    let mut r = req(tgt(1), 60, 1);
    r.group = w;
    j.handle_request(Instant::ZERO, UnixTime(0), &v, src(1), &Message::Join(r));
    assert!(matches!(drain(&mut j)[0].msg, Message::JoinNack(_)));
    r.target.port = 0;
    j.handle_request(Instant::ZERO, UnixTime(0), &v, src(1), &Message::Join(r));
    assert!(matches!(drain(&mut j)[0].msg, Message::JoinAck(_)));
}

#[test]
fn soft_state_expires_refresh_renews_and_refresh_of_unknown_joins() {
    let v = view();
    let mut j = Jap::new(JapConfig::default());
    let t0 = Instant::ZERO;
    join(&mut j, &v, t0, 1);
    join(&mut j, &v, t0, 2);
    // Refresh target 1 at 50 s (lifetime 60 s).
    run(&mut j, &v, t0 + s(50.0));
    // Keep both healthy: answer every probe.
    j.handle_request(
        t0 + s(50.0),
        UnixTime(0),
        &v,
        src(1),
        &Message::Refresh(req(tgt(1), 60, 11)),
    );
    assert!(matches!(drain(&mut j)[0].msg, Message::JoinAck(_)));
    while let Some(p) = j.poll_probe() {
        j.handle_probe_result(t0 + s(50.0), p.id, true);
    }
    run(&mut j, &v, t0 + s(61.0));
    assert_eq!(j.local_targets(&g()).len(), 1, "target 2 expired");
    assert_eq!(j.counters().expired, 1);
    // Refresh of a target this JAP does not hold: accepted as a join.
    j.handle_request(
        t0 + s(61.0),
        UnixTime(0),
        &v,
        src(2),
        &Message::Refresh(req(tgt(2), 60, 12)),
    );
    assert!(matches!(drain(&mut j)[0].msg, Message::JoinAck(_)));
    assert_eq!(j.counters().refresh_as_join, 1);
    // Leave.
    j.handle_request(
        t0 + s(62.0),
        UnixTime(0),
        &v,
        src(2),
        &Message::Leave(req(tgt(2), 0, 13)),
    );
    assert!(matches!(drain(&mut j)[0].msg, Message::JoinAck(a) if a.lifetime_s == 0));
    assert_eq!(j.local_targets(&g()).len(), 1);
}

#[test]
fn probes_mark_dead_and_alive_and_timeouts_count_as_failures() {
    let v = view();
    let cfg = JapConfig::default();
    let mut j = Jap::new(cfg.clone());
    let t0 = Instant::ZERO;
    join(&mut j, &v, t0, 1);
    let out = run(&mut j, &v, t0 + s(0.1));
    ack_all(&mut j, &out, 0);
    // The first probe comes after retry_interval.
    run(&mut j, &v, t0 + cfg.retry_interval);
    let p = j.poll_probe().expect("first probe");
    assert_eq!(p.kind, ProbeKind::IcmpEcho, "UDP groups are pinged");
    assert_eq!(p.target, tgt(1));
    let mut now = t0 + cfg.retry_interval;
    j.handle_probe_result(now, p.id, false);
    assert_eq!(j.live(&g()), 1, "one failure is not death");
    // Second failure by timeout.
    now += cfg.retry_interval;
    run(&mut j, &v, now);
    let p = j.poll_probe().expect("retry");
    run(&mut j, &v, now + cfg.probe_timeout);
    assert_eq!(j.counters().probe_timeouts, 1);
    assert_eq!(j.counters().probe_failures, 2);
    j.handle_probe_result(now, p.id, true);
    assert_eq!(j.counters().probe_unknown, 1, "a late result is ignored");
    // Third failure: dead; the RAPs hear 0.
    now = now + cfg.probe_timeout + cfg.retry_interval;
    let out = run(&mut j, &v, now);
    let p = j.poll_probe().expect("third");
    j.handle_probe_result(now, p.id, false);
    assert_eq!(j.live(&g()), 0);
    assert!(!j.local_targets(&g())[0].alive);
    assert_eq!(j.counters().targets_died, 1);
    let _ = out;
    let out = run(&mut j, &v, now + s(0.1));
    let r = reports(&out);
    assert_eq!(r.len(), 3);
    assert!(r.iter().all(|(_, e)| e[0].approx_targets == 0));
    // Alive again after one success.
    now = now + s(0.1) + cfg.retry_interval;
    run(&mut j, &v, now);
    let p = j.poll_probe().expect("fourth");
    j.handle_probe_result(now, p.id, true);
    assert_eq!(j.live(&g()), 1);
    assert_eq!(j.counters().targets_revived, 1);
}

#[test]
fn passive_detection_probes_at_once_but_not_twice_in_a_gap() {
    let v = view();
    let mut j = Jap::new(JapConfig::default());
    let t0 = Instant::ZERO;
    join(&mut j, &v, t0, 1);
    j.handle_silent(t0, &g(), &tgt(1));
    run(&mut j, &v, t0 + s(0.1));
    let p = j.poll_probe().expect("probe now");
    j.handle_probe_result(t0 + s(0.1), p.id, true);
    j.handle_silent(t0 + s(0.2), &g(), &tgt(1));
    j.handle_silent(t0 + s(0.3), &tgt_group_unknown(), &tgt(1));
    assert_eq!(j.counters().passive_probes, 1, "within the gap");
    j.handle_silent(t0 + s(1.5), &g(), &tgt(1));
    assert_eq!(j.counters().passive_probes, 2);
}

fn tgt_group_unknown() -> GroupAddr {
    GroupAddr::WholeIp(Ipv4Addr::new(198, 51, 100, 77))
}

#[test]
fn tcp_groups_probe_by_connect_and_overrides_win() {
    assert_eq!(
        ProbeKind::default_for(&GroupAddr::Port {
            ip: Ipv4Addr::new(198, 51, 100, 1),
            port: 80,
            proto: GroupProto::Tcp
        }),
        ProbeKind::TcpConnect
    );
    let v = view();
    let mut cfg = JapConfig::default();
    cfg.probe_kinds.insert(g(), ProbeKind::UdpConnect);
    let mut j = Jap::new(cfg);
    join(&mut j, &v, Instant::ZERO, 1);
    run(&mut j, &v, Instant::ZERO + s(1.0));
    assert_eq!(j.poll_probe().map(|p| p.kind), Some(ProbeKind::UdpConnect));
}

#[test]
fn the_band_decides_when_to_report_again() {
    let v = view();
    let mut j = Jap::new(JapConfig::default());
    let mut now = Instant::ZERO;
    for i in 1..=100 {
        join(&mut j, &v, now, i);
    }
    now += s(0.1);
    let out = run(&mut j, &v, now);
    assert_eq!(reports(&out).len(), 3);
    assert_eq!(reports(&out)[0].1[0].approx_targets, 100);
    ack_all(&mut j, &out, 25);
    // Leaves down to 75: inside ±25 %, no report.
    for i in 76..=100 {
        j.handle_request(
            now,
            UnixTime(0),
            &v,
            src(i),
            &Message::Leave(req(tgt(i), 0, 1000 + u64::from(i))),
        );
    }
    drain(&mut j);
    now += s(0.1);
    assert!(
        reports(&run(&mut j, &v, now)).is_empty(),
        "75 is inside the band"
    );
    // 74: outside.
    j.handle_request(
        now,
        UnixTime(0),
        &v,
        src(75),
        &Message::Leave(req(tgt(75), 0, 2000)),
    );
    drain(&mut j);
    now += s(0.1);
    let out = run(&mut j, &v, now);
    let r = reports(&out);
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].1[0].approx_targets, 74);
    ack_all(&mut j, &out, 25);
    // Up to 92 (74 × 1.25 = 92.5): inside; 93: outside.
    for i in 75..=92 {
        join(&mut j, &v, now, i);
    }
    now += s(0.1);
    assert!(reports(&run(&mut j, &v, now)).is_empty());
    join(&mut j, &v, now, 93);
    now += s(0.1);
    assert_eq!(reports(&run(&mut j, &v, now)).len(), 3);
}

#[test]
fn unacked_reports_are_retransmitted_and_new_raps_get_one() {
    let mut v = view();
    let cfg = JapConfig::default();
    let mut j = Jap::new(cfg.clone());
    let t0 = Instant::ZERO;
    join(&mut j, &v, t0, 1);
    let out = run(&mut j, &v, t0 + s(0.1));
    assert_eq!(reports(&out).len(), 3);
    // Only RAP 2 acks.
    let first = reports(&out);
    j.handle_report_ack(
        t0,
        ProxyId(2),
        &ReportAck {
            entries: vec![ReportAckEntry {
                group: g(),
                seq: first[0].1[0].seq,
                band_pct: 10,
            }],
        },
    );
    let out = run(&mut j, &v, t0 + s(0.1) + cfg.report_retransmit);
    let again: Vec<ProxyId> = reports(&out).iter().map(|x| x.0).collect();
    assert_eq!(again, vec![ProxyId(3), ProxyId(4)]);
    assert_eq!(j.counters().report_retransmits, 2);
    // A stale ack (wrong seq) changes nothing outstanding.
    j.handle_report_ack(
        t0,
        ProxyId(3),
        &ReportAck {
            entries: vec![ReportAckEntry {
                group: g(),
                seq: 999,
                band_pct: 10,
            }],
        },
    );
    assert_eq!(j.unacked_reports(), 2);
    // The RAP set changes: 4 leaves, 5 comes; 5 gets a report at once,
    // 4 is forgotten.
    v.groups.insert(
        g(),
        (
            GroupOptions::default(),
            vec![ProxyId(2), ProxyId(3), ProxyId(5)],
        ),
    );
    let now = t0 + s(2.0);
    j.handle_view_change(now, &v);
    let out = run(&mut j, &v, now + s(0.1));
    let to: Vec<ProxyId> = reports(&out).iter().map(|x| x.0).collect();
    assert!(to.contains(&ProxyId(5)));
    assert!(!to.contains(&ProxyId(4)));
    // Withdrawn group: targets dropped.
    v.groups.clear();
    j.handle_view_change(now, &v);
    assert_eq!(j.target_count(), 0);
}

#[test]
fn last_target_gone_reports_zero_then_the_group_is_dropped() {
    let v = view();
    let mut j = Jap::new(JapConfig::default());
    let t0 = Instant::ZERO;
    join(&mut j, &v, t0, 1);
    let out = run(&mut j, &v, t0 + s(0.1));
    ack_all(&mut j, &out, 25);
    j.handle_request(
        t0 + s(0.2),
        UnixTime(0),
        &v,
        src(1),
        &Message::Leave(req(tgt(1), 0, 5)),
    );
    drain(&mut j);
    let out = run(&mut j, &v, t0 + s(0.3));
    let r = reports(&out);
    assert_eq!(r.len(), 3);
    assert!(r.iter().all(|(_, e)| e[0].approx_targets == 0));
    ack_all(&mut j, &out, 25);
    run(&mut j, &v, t0 + s(2.0));
    assert_eq!(j.groups().count(), 0, "nothing left to say about g");
    assert_eq!(j.poll_timeout(), None, "an idle JAP sleeps");
}

#[test]
fn rapless_groups_are_announced_to_every_proxy_including_itself() {
    let o = GroupOptions {
        rapless: true,
        ..GroupOptions::default()
    };
    let v = TestView::new(1, 4).group(g(), o, &[]);
    let cfg = JapConfig::default();
    let mut j = Jap::new(cfg.clone());
    let t0 = Instant::ZERO;
    join(&mut j, &v, t0, 1);
    let out = run(&mut j, &v, t0 + s(0.1));
    let to: Vec<Dest> = out
        .iter()
        .filter(|o| matches!(o.msg, Message::JapAnnounce(_)))
        .map(|o| o.dest)
        .collect();
    assert_eq!(to, [1, 2, 3, 4].map(|p| Dest::Proxy(ProxyId(p))));
    assert!(reports(&out).is_empty());
    // Refreshed every announce interval, unchanged.
    while let Some(p) = j.poll_probe() {
        j.handle_probe_result(t0 + s(0.5), p.id, true);
    }
    let out = run(&mut j, &v, t0 + cfg.announce_interval + s(0.2));
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o.msg, Message::JapAnnounce(_)))
            .count(),
        4
    );
}

#[test]
fn invalidations_are_sent_to_the_iap_and_rate_limited() {
    let v = view();
    let mut j = Jap::new(JapConfig::default());
    let iap = Ipv4Addr::new(192, 0, 2, 5);
    let t0 = Instant::ZERO;
    j.handle_no_target(t0, &v, &g(), iap);
    j.handle_no_target(t0 + s(0.5), &v, &g(), iap);
    let out = drain(&mut j);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].dest, Dest::ProxyAddr(iap));
    assert_eq!(
        out[0].msg,
        Message::Invalidate(Invalidate {
            group: g(),
            jap: ProxyId(1)
        })
    );
    j.handle_no_target(t0 + s(1.5), &v, &g(), iap);
    assert_eq!(drain(&mut j).len(), 1);
    assert_eq!(j.counters().invalidations_suppressed, 1);
}

#[test]
fn overload_flag_is_reported() {
    let v = view();
    let mut j = Jap::new(JapConfig::default());
    let t0 = Instant::ZERO;
    join(&mut j, &v, t0, 1);
    let out = run(&mut j, &v, t0 + s(0.1));
    ack_all(&mut j, &out, 100);
    j.set_overloaded(t0 + s(0.2), &g(), true);
    let r = reports(&run(&mut j, &v, t0 + s(0.3)));
    assert_eq!(r.len(), 3);
    assert!(r.iter().all(|(_, e)| e[0].overloaded));
}

#[test]
fn caps_bound_every_table() {
    let v = view();
    let mut j = Jap::new(JapConfig {
        max_targets: 3,
        max_probes_in_flight: 1,
        ..JapConfig::default()
    });
    for i in 1..=5 {
        j.handle_request(
            Instant::ZERO,
            UnixTime(0),
            &v,
            src(i),
            &Message::Join(req(tgt(i), 60, u64::from(i))),
        );
    }
    assert_eq!(j.target_count(), 3);
    assert_eq!(j.counters().nack_full, 2);
    run(&mut j, &v, Instant::ZERO + s(1.0));
    assert_eq!(j.probes_in_flight(), 1);
    assert!(j.counters().probes_in_flight_full >= 2);
}

#[test]
fn out_of_band_examples() {
    // The seed's example: 100 with ±25 %.
    assert!(!out_of_band(100, 75, 25));
    assert!(out_of_band(100, 74, 25));
    assert!(!out_of_band(100, 125, 25));
    assert!(out_of_band(100, 126, 25));
    // 0 is always exact; band 0 reports every change.
    assert!(out_of_band(0, 1, 100));
    assert!(out_of_band(1, 0, 100));
    assert!(!out_of_band(0, 0, 0));
    assert!(out_of_band(10, 11, 0));
    assert!(!out_of_band(u32::MAX, u32::MAX, 0));
}

proptest! {
    /// Any sequence of requests, probe results and time steps keeps the
    /// counts consistent and within the caps, and never panics.
    #[test]
    fn random_operations_keep_invariants(ops in proptest::collection::vec((0u8..6, 1u32..12, any::<bool>()), 1..200)) {
        let v = view();
        let cfg = JapConfig { max_targets: 8, max_targets_per_group: 6, ..JapConfig::default() };
        let mut j = Jap::new(cfg);
        let mut now = Instant::ZERO;
        for (op, i, b) in ops {
            match op {
                0 => j.handle_request(now, UnixTime(0), &v, src(i), &Message::Join(req(tgt(i), 30, u64::from(i)))),
                1 => j.handle_request(now, UnixTime(0), &v, src(i), &Message::Leave(req(tgt(i), 0, u64::from(i)))),
                2 => if let Some(p) = j.poll_probe() { j.handle_probe_result(now, p.id, b) },
                3 => j.handle_silent(now, &g(), &tgt(i)),
                4 => now += Duration::from_millis(u64::from(i) * 700),
                _ => j.handle_no_target(now, &v, &g(), Ipv4Addr::new(192, 0, 2, i as u8)),
            }
            if let Some(t) = j.poll_timeout() {
                if t <= now {
                    j.handle_timeout(now, &v);
                }
            }
            drain(&mut j);
            prop_assert!(j.target_count() <= 6);
            let listed = j.local_targets(&g());
            prop_assert_eq!(listed.len(), j.target_count());
            prop_assert_eq!(listed.iter().filter(|t| t.alive).count() as u32, j.live(&g()));
            prop_assert!(j.probes_in_flight() <= j.target_count());
        }
    }
}

#[test]
fn a_group_created_again_reports_above_its_old_sequence() {
    // The RAP keeps a tombstone of the 0 at the old sequence number: the
    // new group's reports must not look older than it.
    let v = view();
    let mut j = Jap::new(JapConfig::default());
    let t0 = Instant::ZERO;
    join(&mut j, &v, t0, 1);
    let out = run(&mut j, &v, t0 + s(0.1));
    ack_all(&mut j, &out, 0);
    j.handle_request(
        t0 + s(0.2),
        UnixTime(0),
        &v,
        src(1),
        &Message::Leave(req(tgt(1), 0, 7)),
    );
    drain(&mut j);
    let out = run(&mut j, &v, t0 + s(0.3));
    let zero_seq = reports(&out)[0].1[0].seq;
    ack_all(&mut j, &out, 0);
    run(&mut j, &v, t0 + s(1.0));
    assert_eq!(j.groups().count(), 0);
    join(&mut j, &v, t0 + s(2.0), 2);
    let out = run(&mut j, &v, t0 + s(2.1));
    assert!(reports(&out).iter().all(|(_, e)| e[0].seq > zero_seq));
    // Declared down and refuted: everything is reported again.
    ack_all(&mut j, &out, 0);
    j.handle_refuted(t0 + s(3.0));
    assert_eq!(reports(&run(&mut j, &v, t0 + s(3.1))).len(), 3);
}
