//! Simulator scenarios with fixed seeds (issue 5 item 13): convergence
//! after joins, invalidation time after a JAP crash, RAP load against the
//! band, connection affinity, RAP-less groups, crash and recovery,
//! reproducibility. Every proxy runs the real control plane over sealed
//! and signed datagrams (see `pias_control::sim`).
//!
//! Sizes are kept small so that the suite runs in seconds in a debug build
//! (an Ed25519 verification costs milliseconds there); `pias-sim` runs the
//! large configurations in release.

use core::time::Duration;

use pias_control::proxy::ProxyConfig;
use pias_control::sim::{PacketOutcome, Sim, SimConfig, Topology};
use pias_control::Instant;
use pias_dataplane::types::{Criterion, ProxyId};

fn alive(sim: &Sim) -> Vec<usize> {
    (0..sim.proxy_count())
        .filter(|&i| sim.is_alive(i))
        .collect()
}

fn at(s: f64) -> Instant {
    Instant::ZERO + Duration::from_secs_f64(s)
}

/// Every live proxy sends a packet of every group (as an IAP would on a
/// client's first packet), then the control planes get `settle` to answer.
fn touch_all(sim: &mut Sim, sport: u16) {
    let groups = sim.groups().len();
    for gi in 0..groups {
        for i in 0..sim.proxy_count() {
            if sim.is_alive(i) {
                let c = sim.client(sim.cluster_of(i), i as u32);
                let _ = sim.packet_via(i, c, gi, sport);
            }
        }
    }
}

/// Every tables snapshot every live proxy holds was accepted by the
/// dataplane's validation, and no datagram was refused by a gate.
fn assert_clean(sim: &Sim) {
    for i in 0..sim.proxy_count() {
        if let Some(cp) = sim.node(i) {
            assert_eq!(
                cp.counters().tables_invalid,
                0,
                "proxy {i}: {:?}",
                cp.last_tables_error()
            );
            assert_eq!(
                cp.gate().counters().rejected_total(),
                0,
                "proxy {i} refused datagrams"
            );
        }
    }
}

#[test]
fn every_iap_that_asks_gets_a_list_naming_a_jap_with_live_targets() {
    let mut cfg = SimConfig::new(24, 8, 6, 4);
    cfg.seed = 11;
    cfg.loss = 0.01;
    cfg.rapless_every = 6;
    cfg.affinity_every = 4;
    cfg.target_lifetime_s = 300;
    let mut sim = Sim::new(cfg);
    sim.run_until(at(12.0));
    touch_all(&mut sim, 1);
    sim.run_until(at(15.0));
    let groups = sim.groups();
    let mut checked = 0;
    for (gi, (g, o)) in groups.iter().enumerate() {
        assert!(!sim.live_targets(gi).is_empty());
        for i in 0..sim.proxy_count() {
            let c = sim.client(sim.cluster_of(i), i as u32);
            let out = sim.packet_via(i, c, gi, 2);
            let PacketOutcome::Delivered { rap, jap, .. } = out else {
                panic!("group {gi} at proxy {i}: {out:?}");
            };
            assert_eq!(
                rap, None,
                "group {gi} at proxy {i} still goes through a RAP"
            );
            if !o.rapless {
                let list = sim.cached(i, g);
                let first = *list
                    .first()
                    .unwrap_or_else(|| panic!("proxy {i} has no list for {gi}"));
                assert_eq!(first, jap);
                let j = sim.index_of(first).expect("a proxy");
                let live = sim
                    .tables(j)
                    .and_then(|t| t.group(g).map(|e| e.live_targets()));
                assert!(
                    live.unwrap_or(0) > 0,
                    "list of proxy {i} names {first:?} without live targets"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 24 * 5);
    assert_clean(&sim);
}

#[test]
fn a_jap_crash_is_invalidated_within_the_dead_interval_plus_the_flood() {
    let mut cfg = SimConfig::new(20, 5, 1, 6);
    cfg.seed = 5;
    cfg.target_lifetime_s = 300;
    let dead = cfg.heartbeat * cfg.dead_multiplier;
    let mut sim = Sim::new(cfg);
    sim.run_until(at(10.0));
    touch_all(&mut sim, 1);
    sim.run_until(at(12.0));
    let g = sim.groups()[0].0;
    // The JAP most IAPs cache first.
    let mut votes = std::collections::BTreeMap::<ProxyId, usize>::new();
    for i in 0..sim.proxy_count() {
        if let Some(j) = sim.cached(i, &g).first() {
            *votes.entry(*j).or_default() += 1;
        }
    }
    let (&victim, &n) = votes.iter().max_by_key(|x| *x.1).expect("cached lists");
    assert!(n > 1);
    let vi = sim.index_of(victim).expect("index");
    let t0 = sim.now();
    sim.crash(vi);
    sim.run_until(t0 + dead + Duration::from_secs(3));
    let mut worst = Duration::ZERO;
    for i in alive(&sim) {
        let seen = sim
            .proxy_down_log()
            .iter()
            .find(|(t, o, p)| *o == i && *p == victim && *t >= t0)
            .map(|(t, _, _)| t.saturating_since(t0))
            .unwrap_or_else(|| panic!("proxy {i} never dropped {victim:?}"));
        worst = worst.max(seen);
        assert!(
            !sim.cached(i, &g).contains(&victim),
            "proxy {i} still caches the dead JAP"
        );
    }
    eprintln!("JAP crash invalidated at every IAP within {worst:?} (dead interval {dead:?})");
    // Detection needs the dead interval (less up to one heartbeat: the last
    // one may predate the crash); the flood adds at most the diameter of
    // the overlay in one-way latencies (≤ 112 ms each here) plus jitter.
    assert!(worst <= dead + Duration::from_secs(1), "{worst:?}");
    assert!(
        worst + Duration::from_secs(1) >= dead,
        "{worst:?}: too early to be real"
    );
    // Packets fail over to the next JAP without a RAP.
    for i in alive(&sim) {
        let c = sim.client(sim.cluster_of(i), i as u32);
        match sim.packet_via(i, c, 0, 9) {
            PacketOutcome::Delivered { jap, .. } => assert_ne!(jap, victim),
            o => panic!("proxy {i}: {o:?}"),
        }
    }
    assert_clean(&sim);
}

#[test]
fn targets_leaving_a_jap_reach_the_iaps() {
    let mut cfg = SimConfig::new(12, 4, 1, 8);
    cfg.seed = 7;
    cfg.target_lifetime_s = 300;
    let mut sim = Sim::new(cfg);
    sim.run_until(at(10.0));
    touch_all(&mut sim, 1);
    sim.run_until(at(12.0));
    let g = sim.groups()[0].0;
    let first = sim.cached(0, &g)[0];
    let fi = sim.index_of(first).expect("index");
    // Kill every target of that JAP silently: its probes fail, it reports
    // 0, the RAPs push fresh lists, and an IAP still sending to it gets an
    // invalidation.
    let its: Vec<_> = sim
        .tables(fi)
        .and_then(|t| {
            t.group(&g)
                .map(|e| e.targets().iter().map(|t| t.addr).collect::<Vec<_>>())
        })
        .unwrap_or_default();
    assert!(!its.is_empty());
    for t in its {
        sim.kill_target(t);
    }
    let t0 = sim.now();
    sim.run_until(t0 + Duration::from_secs(10));
    for i in alive(&sim) {
        let c = sim.client(sim.cluster_of(i), 77);
        let _ = sim.packet_via(i, c, 0, 3);
    }
    sim.run_until(t0 + Duration::from_secs(12));
    for i in alive(&sim) {
        assert!(
            !sim.cached(i, &g).contains(&first),
            "proxy {i} still caches {first:?}"
        );
        let c = sim.client(sim.cluster_of(i), 78);
        assert!(matches!(
            sim.packet_via(i, c, 0, 4),
            PacketOutcome::Delivered { .. }
        ));
    }
    assert_clean(&sim);
}

/// Reports applied per RAP per target event, and the mean band, for a
/// churn rate. RAPs are tuned to a low target load so that the band reacts
/// within a short run.
fn band_run(churn: f64, adaptive: bool) -> (f64, f64) {
    let mut cfg = SimConfig::new(16, 8, 1, 40);
    cfg.seed = 21;
    cfg.target_lifetime_s = 600;
    cfg.churn_per_s = churn;
    cfg.crash_fraction = 0.0;
    cfg.off_time = Duration::from_secs(4);
    cfg.tweak = Some(if adaptive {
        |c: &mut ProxyConfig| {
            c.rap.target_load = 0.5;
        }
    } else {
        |c: &mut ProxyConfig| {
            c.rap.target_load = 0.5;
            c.rap.min_band_pct = 5;
            c.rap.max_band_pct = 5;
        }
    });
    let mut sim = Sim::new(cfg);
    sim.run_until(at(10.0));
    let before: u64 = (0..16)
        .filter_map(|i| sim.node(i))
        .map(|c| c.rap().counters().entries_applied)
        .sum();
    let acks0 = sim.stats().acks;
    sim.run_until(at(40.0));
    let after: u64 = (0..16)
        .filter_map(|i| sim.node(i))
        .map(|c| c.rap().counters().entries_applied)
        .sum();
    let events = (sim.stats().acks - acks0).max(1);
    let raps: Vec<_> = (0..16)
        .filter_map(|i| sim.node(i))
        .filter(|c| c.rap().group_count() > 0)
        .collect();
    assert!(!raps.is_empty());
    let band = raps
        .iter()
        .map(|c| f64::from(c.rap().band_pct()))
        .sum::<f64>()
        / raps.len() as f64;
    let per_rap_per_event = (after - before) as f64 / raps.len() as f64 / events as f64;
    (band, per_rap_per_event)
}

#[test]
fn more_churn_widens_the_band_and_cuts_reports_per_rap() {
    let (band_low, rep_low) = band_run(0.1, true);
    let (band_high, rep_high) = band_run(2.0, true);
    let (band_fixed, rep_fixed) = band_run(2.0, false);
    eprintln!(
        "churn 0.1/s: band {band_low:.0} %, {rep_low:.3} reports per RAP per target event\n\
         churn 2/s:   band {band_high:.0} %, {rep_high:.3}\n\
         churn 2/s with the band fixed at 5 %: {rep_fixed:.3}"
    );
    assert!(band_high >= 2.0 * band_low, "{band_low} → {band_high}");
    assert!(rep_high < rep_low, "{rep_low} → {rep_high}");
    assert_eq!(band_fixed, 5.0);
    assert!(
        rep_high < rep_fixed * 0.7,
        "adaptive {rep_high} vs fixed {rep_fixed}"
    );
}

#[test]
fn an_established_flow_keeps_its_target_when_the_client_moves() {
    let mut cfg = SimConfig::new(20, 5, 2, 6);
    cfg.seed = 13;
    cfg.target_lifetime_s = 300;
    // Group 1 asks for affinity, group 0 does not.
    cfg.affinity_every = 2;
    let mut sim = Sim::new(cfg);
    sim.run_until(at(10.0));
    touch_all(&mut sim, 1);
    sim.run_until(at(12.0));
    let (ga, oa) = sim.groups()[1];
    assert!(oa.affinity);
    let mut moves = 0;
    for n in 0..20u32 {
        // A client of cluster n % 5 starts a flow through its IAP…
        let client = sim.client((n % 5) as usize, n);
        let a = sim.catchment(client.cluster, client.ip).expect("an IAP");
        let PacketOutcome::Delivered { target, jap, .. } = sim.packet_via(a, client, 1, 5000)
        else {
            panic!("flow {n} not delivered");
        };
        // …then routing moves it to an IAP of another cluster, and to one
        // of its own cluster.
        for b in [(a + 1) % 20, (a + 5) % 20] {
            let out = sim.packet_via(b, client, 1, 5000);
            let PacketOutcome::Delivered {
                target: t2,
                jap: j2,
                ..
            } = out
            else {
                panic!("flow {n} via {b}: {out:?}");
            };
            assert_eq!(
                (j2, t2),
                (jap, target),
                "flow {n} moved from proxy {a} to {b}"
            );
            moves += 1;
        }
        // Every IAP caches the same first JAP for the group.
        assert_eq!(
            sim.cached(a, &ga).first(),
            sim.cached((a + 1) % 20, &ga).first()
        );
    }
    assert_eq!(moves, 40);
    // The IAP fails: clients move to another proxy of their cluster (the
    // IGP failover of seed §3.6.2) and keep their targets.
    let client = sim.client(2, 999);
    let a = sim.catchment(2, client.ip).expect("an IAP");
    let PacketOutcome::Delivered { target, .. } = sim.packet_via(a, client, 1, 7000) else {
        panic!("not delivered");
    };
    sim.crash(a);
    let b = sim.catchment(2, client.ip).expect("another IAP");
    assert_ne!(a, b);
    let PacketOutcome::Delivered { target: t2, .. } = sim.packet(client, 1, 7000) else {
        panic!("not delivered after the IAP crash");
    };
    assert_eq!(t2, target);
    assert_clean(&sim);
}

#[test]
fn rapless_groups_are_served_from_the_flooded_lists() {
    let mut cfg = SimConfig::new(15, 5, 2, 5);
    cfg.seed = 17;
    cfg.target_lifetime_s = 300;
    cfg.rapless_every = 1;
    cfg.criterion = Criterion::Random;
    let mut sim = Sim::new(cfg);
    sim.run_until(at(10.0));
    for gi in 0..2 {
        let (g, o) = sim.groups()[gi];
        assert!(o.rapless);
        // Every proxy's table floods the same JAPs, and nobody is a RAP.
        let lists: Vec<Vec<ProxyId>> = (0..15)
            .map(|i| {
                let t = sim.tables(i).expect("tables");
                let e = t.group(&g).expect("group");
                assert!(e.raps().is_empty());
                e.flooded().iter().map(|j| j.jap).collect()
            })
            .collect();
        assert!(!lists[0].is_empty());
        assert!(lists.windows(2).all(|w| w[0] == w[1]), "{lists:?}");
        for i in 0..15 {
            let c = sim.client(sim.cluster_of(i), 3);
            assert!(matches!(
                sim.packet_via(i, c, gi, 1),
                PacketOutcome::Delivered { rap: None, .. }
            ));
        }
    }
    let rap_reports: u64 = (0..15)
        .filter_map(|i| sim.node(i))
        .map(|c| c.rap().counters().reports)
        .sum();
    assert_eq!(rap_reports, 0, "RAP-less groups send no reports");
    assert_clean(&sim);
}

#[test]
fn a_crashed_proxy_recovers_and_everything_reconverges() {
    let mut cfg = SimConfig::new(16, 4, 3, 3);
    cfg.seed = 23;
    cfg.loss = 0.02;
    cfg.target_lifetime_s = 60;
    cfg.churn_per_s = 0.2;
    cfg.off_time = Duration::from_secs(5);
    let mut sim = Sim::new(cfg);
    sim.run_until(at(10.0));
    sim.crash(3);
    sim.crash(9);
    sim.run_until(at(16.0));
    for i in (0..16).filter(|&i| sim.is_alive(i)) {
        assert_eq!(sim.node(i).map(|c| c.membership().live().len()), Some(14));
    }
    sim.recover(3);
    sim.recover(9);
    sim.run_until(at(40.0));
    for i in 0..16 {
        let cp = sim.node(i).expect("alive");
        assert_eq!(cp.membership().live().len(), 16, "proxy {i}");
        assert_eq!(cp.counters().tables_invalid, 0);
    }
    touch_all(&mut sim, 1);
    sim.run_until(at(43.0));
    let (mut ok, mut tried) = (0, 0);
    for gi in 0..3 {
        if sim.live_targets(gi).is_empty() {
            continue;
        }
        for i in 0..16 {
            let c = sim.client(sim.cluster_of(i), 5);
            tried += 1;
            match sim.packet_via(i, c, gi, 2) {
                PacketOutcome::Delivered { .. } => ok += 1,
                o => eprintln!("group {gi} proxy {i}: {o:?}"),
            }
        }
    }
    // A target that churned in the last seconds may not be known yet (or
    // known dead yet): nearly every flow of a group with targets gets
    // through.
    assert!(tried >= 32 && ok * 10 >= tried * 9, "{ok}/{tried}");
}

#[test]
fn same_seed_same_run_and_a_topology_file() {
    let topo = Topology::parse("clusters 3\n0 1 20\n1 2 30\n").expect("topology");
    let run = |seed: u64| {
        let mut cfg = SimConfig::new(9, 3, 2, 2);
        cfg.seed = seed;
        cfg.loss = 0.05;
        cfg.churn_per_s = 0.5;
        cfg.flows_per_s = 5.0;
        cfg.topology = Some(topo.clone());
        cfg.duration = Duration::from_secs(20);
        let mut sim = Sim::new(cfg);
        sim.run();
        sim.csv()
    };
    let a = run(4);
    assert_eq!(a, run(4));
    assert_ne!(a, run(5));
    assert_eq!(a.lines().count(), 21, "header and one row per second");
}

/// Refreshes go under sessions (PROTOCOL.md §5.6: MACs, no signatures);
/// when a target's JAP crashes, anycast carries its next session refresh
/// to another proxy, which does not know the session and nacks it, and
/// the target signs a refresh there at once: every live target is held
/// again, by exactly one JAP.
#[test]
fn refreshes_use_sessions_and_a_jap_crash_moves_targets_by_signing_again() {
    let mut cfg = SimConfig::new(8, 4, 2, 4);
    cfg.seed = 31;
    cfg.target_lifetime_s = 15;
    let mut sim = Sim::new(cfg);
    sim.run_until(at(25.0));
    assert!(sim.stats().session_refreshes > 0);
    let by_session: u64 = (0..8)
        .filter_map(|i| sim.node(i))
        .map(|c| c.jap().counters().session_refreshes)
        .sum();
    assert!(by_session > 0, "no refresh went under a session");
    // Every simulated target derived its JAP's key (X25519 exchange): no
    // session refresh failed its MAC.
    let bad_mac: u64 = (0..8)
        .filter_map(|i| sim.node(i))
        .map(|c| {
            c.gate()
                .counters()
                .get(pias_control::auth::Reject::BadSessionMac)
        })
        .sum();
    assert_eq!(bad_mac, 0);
    assert_eq!(sim.stats().session_refreshes, by_session);
    assert_clean(&sim);
    let held = |sim: &Sim| -> usize {
        (0..8)
            .filter_map(|i| sim.node(i))
            .map(|c| c.jap().target_count())
            .sum()
    };
    let live = |sim: &Sim| -> usize { (0..2).map(|g| sim.live_targets(g).len()).sum() };
    assert_eq!(held(&sim), live(&sim));
    let jap = (0..8)
        .find(|&i| sim.node(i).is_some_and(|c| c.jap().target_count() > 0))
        .expect("some JAP holds targets");
    let moved = sim.node(jap).map_or(0, |c| c.jap().target_count());
    sim.crash(jap);
    sim.run_until(at(45.0));
    let nacked: u64 = (0..8)
        .filter_map(|i| sim.node(i))
        .map(|c| c.jap().counters().nack_session)
        .sum();
    assert!(
        nacked as usize >= moved,
        "{nacked} session nacks for {moved} moved targets"
    );
    assert_eq!(held(&sim), live(&sim));
}
