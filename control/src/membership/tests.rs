//! Membership unit tests over parsed messages (no bytes, no auth); the
//! multi-node simulation with real datagrams is `tests/membership_sim.rs`.

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use super::*;

fn addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, i as u8)
}

fn sock(i: u32) -> SocketAddrV4 {
    SocketAddrV4::new(addr(i), DEFAULT_CONTROL_PORT)
}

/// Unit tests check what each message causes at once: no flood delay.
fn cfg(i: u32) -> Config {
    Config {
        flood_delay: Duration::ZERO,
        ..Config::new(ProxyId(i), addr(i), ClusterId(i as u16), 1)
    }
}

fn t(ms: u64) -> Instant {
    Instant::from_nanos(ms * 1_000_000)
}

fn drain(m: &mut Membership) -> Vec<Transmit> {
    std::iter::from_fn(|| m.poll_transmit()).collect()
}

fn events(m: &mut Membership) -> Vec<Event> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

fn up(i: u32, inc: u32, ver: u32) -> Lsa {
    Lsa {
        subject: ProxyId(i),
        origin: ProxyId(i),
        addr: addr(i),
        cluster: ClusterId(i as u16),
        state: ProxyState::Up,
        incarnation: inc,
        version: ver,
    }
}

fn flood(entries: Vec<Lsa>) -> Message {
    Message::Flood(Flood { entries })
}

/// Deliver every transmit among `nodes` (by address) until quiet, at a
/// fixed time.
fn settle(nodes: &mut [Membership], now: Instant) {
    for _ in 0..1000 {
        let mut moved = false;
        for i in 0..nodes.len() {
            for tx in drain(&mut nodes[i]) {
                let from = nodes[i].me();
                let src = SocketAddrV4::new(nodes[i].config().addr, DEFAULT_CONTROL_PORT);
                if let Some(dst) = nodes.iter_mut().find(|n| n.config().addr == *tx.dest.ip()) {
                    dst.handle(now, from, src, &tx.msg);
                    moved = true;
                }
            }
        }
        if !moved {
            return;
        }
    }
    panic!("no quiescence");
}

#[test]
fn starts_up_and_says_hello_to_seeds() {
    let mut c = cfg(1);
    c.seeds = vec![sock(2), sock(1)];
    let mut m = Membership::new(c, t(0)).unwrap();
    assert_eq!(
        events(&mut m),
        vec![Event::ProxyUp(ProxyInfo {
            id: ProxyId(1),
            addr: addr(1),
            cluster: ClusterId(1),
            up: true
        })]
    );
    assert_eq!(m.poll_timeout(), Some(t(0)));
    m.handle_timeout(t(0));
    let tx = drain(&mut m);
    // Its own address is skipped.
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].dest, sock(2));
    assert!(matches!(tx[0].msg, Message::Hello(Hello { lsa }) if lsa == up(1, 1, 1)));
    assert_eq!(m.poll_timeout(), Some(t(1000)));
}

#[test]
fn two_proxies_meet_through_a_seed() {
    let mut c1 = cfg(1);
    c1.seeds = vec![sock(2)];
    let mut nodes = [
        Membership::new(c1, t(0)).unwrap(),
        Membership::new(cfg(2), t(0)).unwrap(),
    ];
    nodes[0].handle_timeout(t(0));
    settle(&mut nodes, t(0));
    for n in &mut nodes {
        assert_eq!(n.live(), &[ProxyId(1), ProxyId(2)]);
        assert_eq!(n.unacked(), 0);
        let ev = events(n);
        assert_eq!(ev.len(), 2, "{ev:?}");
    }
    // Both monitor each other (ring distance 1) and are adjacent.
    assert_eq!(
        nodes[0].neighbours().collect::<Vec<_>>(),
        vec![(ProxyId(2), true, true)]
    );
    assert_eq!(
        nodes[1].neighbours().collect::<Vec<_>>(),
        vec![(ProxyId(1), true, true)]
    );
    // Heartbeats keep them alive; silence kills.
    for s in 1..10 {
        for n in &mut nodes {
            n.handle_timeout(t(s * 1000));
        }
        settle(&mut nodes, t(s * 1000));
    }
    assert!(nodes[0].is_up(ProxyId(2)));
    let dead_at = nodes[0].poll_timeout().unwrap();
    assert_eq!(dead_at, t(10_000), "next heartbeat tick first");
    nodes[0].handle_timeout(t(11_999));
    assert!(nodes[0].is_up(ProxyId(2)), "not yet: last heard at 9 s");
    nodes[0].handle_timeout(t(12_000));
    assert!(!nodes[0].is_up(ProxyId(2)));
    assert_eq!(events(&mut nodes[0]), vec![Event::ProxyDown(ProxyId(2))]);
    assert_eq!(nodes[0].counters().declared_down, 1);
}

#[test]
fn refutes_a_wrong_down_about_itself() {
    let mut m = Membership::new(cfg(1), t(0)).unwrap();
    events(&mut m);
    let down = Lsa {
        origin: ProxyId(2),
        state: ProxyState::Down,
        version: 7,
        ..up(1, 1, 1)
    };
    m.handle(t(5), ProxyId(2), sock(2), &flood(vec![down]));
    assert_eq!(m.counters().refutations, 1);
    assert!(m.is_up(ProxyId(1)));
    assert!(events(&mut m).is_empty());
    let tx = drain(&mut m);
    // The new adjacency with 2 got our database (version 1) first, then
    // the refutation.
    let refuted = tx.iter().rev().find_map(|t| match &t.msg {
        Message::Flood(f) => f
            .entries
            .iter()
            .rev()
            .find(|l| l.subject == ProxyId(1))
            .copied(),
        _ => None,
    });
    assert_eq!(refuted, Some(up(1, 1, 8)));
    // A statement of a later incarnation of us is outranked too.
    m.handle(
        t(6),
        ProxyId(2),
        sock(2),
        &flood(vec![Lsa {
            origin: ProxyId(2),
            state: ProxyState::Down,
            ..up(1, 4, 0)
        }]),
    );
    assert_eq!(m.incarnation(), 4);
    assert_eq!(m.proxy(ProxyId(1)).map(|p| p.up), Some(true));
}

#[test]
fn drops_invalid_statements_and_bad_hellos() {
    let mut m = Membership::new(cfg(1), t(0)).unwrap();
    // An Up statement about 3 issued by 2.
    let forged_up = Lsa {
        origin: ProxyId(2),
        ..up(3, 1, 1)
    };
    m.handle(t(1), ProxyId(2), sock(2), &flood(vec![forged_up]));
    assert_eq!(m.counters().lsa_invalid, 1);
    assert!(m.proxy(ProxyId(3)).is_none());
    // A hello carrying someone else's statement.
    m.handle(
        t(1),
        ProxyId(2),
        sock(2),
        &Message::Hello(Hello { lsa: up(3, 1, 1) }),
    );
    assert_eq!(m.counters().bad_hello, 1);
    // Messages claiming to be from ourselves.
    m.handle(t(1), ProxyId(1), sock(1), &flood(vec![up(4, 1, 1)]));
    assert_eq!(m.counters().from_self, 1);
    assert!(m.proxy(ProxyId(4)).is_none());
    // Not a membership message.
    assert!(!m.handle(
        t(1),
        ProxyId(2),
        sock(2),
        &Message::RapQuery(crate::wire::RapQuery {
            group: pias_dataplane::types::GroupAddr::WholeIp(addr(9))
        })
    ));
}

#[test]
fn database_is_capped() {
    let mut c = cfg(1);
    c.max_proxies = 3;
    let mut m = Membership::new(c, t(0)).unwrap();
    m.handle(
        t(1),
        ProxyId(2),
        sock(2),
        &flood((2..7).map(|i| up(i, 1, 1)).collect()),
    );
    assert_eq!(m.database_len(), 3);
    assert_eq!(m.counters().lsdb_full, 3);
    // Every statement is acknowledged anyway, so the sender stops resending.
    let acks: usize = drain(&mut m)
        .iter()
        .map(|t| match &t.msg {
            Message::FloodAck(a) => a.acks.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(acks, 5);
}

#[test]
fn older_statement_is_answered_with_the_newer_one() {
    let mut m = Membership::new(cfg(1), t(0)).unwrap();
    m.handle(t(1), ProxyId(3), sock(3), &flood(vec![up(2, 1, 5)]));
    drain(&mut m);
    m.handle(t(2), ProxyId(3), sock(3), &flood(vec![up(2, 1, 4)]));
    assert_eq!(m.counters().lsa_older, 1);
    let back: Vec<Lsa> = drain(&mut m)
        .into_iter()
        .filter(|t| t.dest == sock(3))
        .flat_map(|t| match t.msg {
            Message::Flood(f) => f.entries,
            _ => vec![],
        })
        .collect();
    assert_eq!(back, vec![up(2, 1, 5)]);
    m.handle(t(3), ProxyId(3), sock(3), &flood(vec![up(2, 1, 5)]));
    assert_eq!(m.counters().lsa_duplicate, 1);
}

#[test]
fn unacked_statements_are_retransmitted_until_acked() {
    let mut m = Membership::new(cfg(1), t(0)).unwrap();
    m.handle_timeout(t(0)); // first tick; the next is at 1 s
                            // 2 becomes adjacent: the database (1 statement) goes out, unacked.
    m.handle(
        t(0),
        ProxyId(2),
        sock(2),
        &Message::Heartbeat(Heartbeat {
            incarnation: 1,
            monitoring: true,
        }),
    );
    let first: Vec<_> = drain(&mut m);
    assert!(first.iter().any(|t| matches!(t.msg, Message::Flood(_))));
    assert_eq!(m.unacked(), 1);
    m.handle_timeout(t(999));
    assert!(drain(&mut m).is_empty(), "no tick yet");
    m.handle_timeout(t(1000));
    let again = drain(&mut m);
    assert!(again
        .iter()
        .any(|t| matches!(&t.msg, Message::Flood(f) if f.entries == vec![up(1, 1, 1)])));
    assert!(m.counters().retransmitted >= 1);
    // A wrong ack does nothing; the right one clears it.
    let wrong = LsaKey {
        version: 9,
        ..up(1, 1, 1).key()
    };
    m.handle(
        t(1001),
        ProxyId(2),
        sock(2),
        &Message::FloodAck(FloodAck { acks: vec![wrong] }),
    );
    assert_eq!(m.unacked(), 1);
    m.handle(
        t(1002),
        ProxyId(2),
        sock(2),
        &Message::FloodAck(FloodAck {
            acks: vec![up(1, 1, 1).key()],
        }),
    );
    assert_eq!(m.unacked(), 0);
}

#[test]
fn restart_is_reported_as_down_then_up() {
    let mut m = Membership::new(cfg(1), t(0)).unwrap();
    m.handle(
        t(0),
        ProxyId(2),
        sock(2),
        &Message::Hello(Hello { lsa: up(2, 1, 1) }),
    );
    events(&mut m);
    m.handle(
        t(5),
        ProxyId(2),
        sock(2),
        &Message::Hello(Hello { lsa: up(2, 2, 1) }),
    );
    let info = m.proxy(ProxyId(2)).unwrap();
    assert_eq!(
        events(&mut m),
        vec![Event::ProxyDown(ProxyId(2)), Event::ProxyUp(info)]
    );
    // The restart also restarted the adjacency (a fresh database exchange).
    assert_eq!(m.counters().adjacencies_up, 2);
}

#[test]
fn statements_age_out() {
    let mut c = cfg(1);
    c.refresh_interval = Duration::from_secs(10);
    c.max_age = Duration::from_secs(20);
    let mut m = Membership::new(c, t(0)).unwrap();
    // Learnt from 3, about 2, which is not our neighbour... but is wanted
    // (ring distance 1): make sure it is not declared by silence first by
    // feeding heartbeats from 2.
    m.handle(t(0), ProxyId(3), sock(3), &flood(vec![up(2, 1, 1)]));
    events(&mut m);
    let mut now = 0;
    while now < 25_000 {
        m.handle(
            t(now),
            ProxyId(2),
            sock(2),
            &Message::Heartbeat(Heartbeat {
                incarnation: 1,
                monitoring: true,
            }),
        );
        m.handle(
            t(now),
            ProxyId(3),
            sock(3),
            &Message::Heartbeat(Heartbeat {
                incarnation: 1,
                monitoring: true,
            }),
        );
        m.handle_timeout(t(now));
        drain(&mut m);
        now += 500;
    }
    assert_eq!(m.counters().declared_down, 0);
    // 2 never refreshed its statement (3 never sent one).
    assert_eq!(m.counters().aged_out, 1);
    assert!(!m.is_up(ProxyId(2)));
    // Our own statement was refreshed (version 1 → 3) and never ages.
    assert!(m.is_up(ProxyId(1)));
    assert_eq!(m.proxy(ProxyId(1)).map(|p| p.up), Some(true));
    // Down statements are forgotten after max_age too.
    let mut now = 25_000;
    while now < 50_000 {
        m.handle_timeout(t(now));
        drain(&mut m);
        now += 1000;
    }
    assert_eq!(m.database_len(), 1);
}

#[test]
fn config_is_validated() {
    let mut c = cfg(1);
    c.dead_multiplier = 1;
    assert_eq!(
        Membership::new(c, t(0)).err().map(|e| e.key),
        Some("dead_multiplier")
    );
    let mut c = cfg(1);
    c.max_age = c.refresh_interval;
    assert_eq!(
        Membership::new(c, t(0)).err().map(|e| e.key),
        Some("max_age")
    );
    let mut c = cfg(1);
    c.heartbeat_interval = Duration::ZERO;
    assert!(Membership::new(c, t(0)).is_err());
}

/// The fingers by brute force: for each `j`, the proxy at the smallest
/// clockwise distance from `me + 2^j`, and at the smallest counter-clockwise
/// distance from `me − 2^j`.
fn brute_fingers(me: ProxyId, live: &[ProxyId]) -> Vec<u32> {
    use crate::rendezvous::proxy_hash;
    let pos = proxy_hash(me);
    let mut out = std::collections::BTreeSet::new();
    for j in 0..64 {
        let cw = pos.wrapping_add(1 << j);
        let ccw = pos.wrapping_sub(1 << j);
        out.insert(
            *live
                .iter()
                .min_by_key(|p| proxy_hash(**p).wrapping_sub(cw))
                .unwrap(),
        );
        out.insert(
            *live
                .iter()
                .min_by_key(|p| ccw.wrapping_sub(proxy_hash(**p)))
                .unwrap(),
        );
    }
    out.remove(&me);
    out.into_iter().map(|p| p.0).collect()
}

#[test]
fn neighbours_are_ring_fingers() {
    let mut m = Membership::new(cfg(0), t(0)).unwrap();
    m.handle(
        t(0),
        ProxyId(99),
        sock(99),
        &flood((1..=40).map(|i| up(i, 1, 1)).collect()),
    );
    let live: Vec<ProxyId> = (0..=40).map(ProxyId).collect();
    assert_eq!(m.live(), &live[..]);
    let monitored: Vec<u32> = m.neighbours().filter(|n| n.2).map(|n| n.0 .0).collect();
    let want = brute_fingers(ProxyId(0), &live);
    assert_eq!(monitored, want);
    assert!((4..=14).contains(&want.len()), "{want:?}");
    // Each monitored one gets one hello right away.
    let hellos = drain(&mut m)
        .into_iter()
        .filter(|t| matches!(t.msg, Message::Hello(_)))
        .count();
    assert_eq!(hellos, want.len());
    // A proxy leaving changes our fingers only if it was one of them.
    let gone = (1..=40).find(|i| !want.contains(i)).unwrap();
    let down = Lsa {
        origin: ProxyId(99),
        state: ProxyState::Down,
        version: 2,
        ..up(gone, 1, 1)
    };
    m.handle(t(1), ProxyId(99), sock(99), &flood(vec![down]));
    let after: Vec<u32> = m.neighbours().filter(|n| n.2).map(|n| n.0 .0).collect();
    assert_eq!(after, want);
}

#[test]
fn heartbeats_whoever_monitors_it_until_that_lapses() {
    let mut m = Membership::new(cfg(1), t(0)).unwrap();
    m.handle_timeout(t(0));
    drain(&mut m);
    // 50 is not in our live set (we do not monitor it); it monitors us.
    let hb = |mon| {
        Message::Heartbeat(Heartbeat {
            incarnation: 1,
            monitoring: mon,
        })
    };
    m.handle(t(100), ProxyId(50), sock(50), &hb(true));
    drain(&mut m);
    let heartbeats_to_50 = |m: &mut Membership| {
        drain(m)
            .into_iter()
            .filter(|t| t.dest == sock(50) && matches!(t.msg, Message::Heartbeat(_)))
            .count()
    };
    m.handle_timeout(t(1000));
    assert_eq!(heartbeats_to_50(&mut m), 1);
    // 50 stops monitoring us (says so): we stop at once.
    m.handle(t(1500), ProxyId(50), sock(50), &hb(false));
    drain(&mut m);
    m.handle_timeout(t(2000));
    assert_eq!(heartbeats_to_50(&mut m), 0);
    // It monitors again, then goes silent: we keep heartbeating for the
    // dead interval, then the adjacency lapses and 50 is forgotten,
    // without a Down statement (we never monitored it).
    m.handle(t(2100), ProxyId(50), sock(50), &hb(true));
    drain(&mut m);
    let mut sent = 0;
    for s in 3..10 {
        m.handle_timeout(t(s * 1000));
        sent += heartbeats_to_50(&mut m);
    }
    assert_eq!(sent, 3, "at 3, 4 and 5 s; the promise lapsed at 5.1 s");
    assert_eq!(m.neighbours().count(), 0);
    assert_eq!(m.counters().declared_down, 0);
    assert_eq!(m.counters().adjacencies_down, 1);
}

#[test]
fn a_flood_delay_batches_relays() {
    let mut c = cfg(1);
    c.flood_delay = Duration::from_millis(10);
    let mut m = Membership::new(c, t(0)).unwrap();
    m.handle_timeout(t(0));
    drain(&mut m);
    // Neighbour 2 says hello: the heartbeat back goes at once, the
    // database waits for the delay.
    m.handle(
        t(1),
        ProxyId(2),
        sock(2),
        &Message::Hello(Hello { lsa: up(2, 1, 1) }),
    );
    let now: Vec<Transmit> = drain(&mut m);
    assert!(now
        .iter()
        .all(|x| !matches!(x.msg, Message::Flood(_) | Message::FloodAck(_))));
    assert_eq!(m.poll_timeout(), Some(t(11)));
    m.handle_timeout(t(11));
    let later = drain(&mut m);
    assert!(later.iter().any(|x| matches!(x.msg, Message::Flood(_))));
}

#[test]
fn seeds_get_hellos_until_known_even_with_an_adjacency() {
    let mut c = cfg(1);
    c.seeds = vec![sock(2), sock(3)];
    let mut m = Membership::new(c, t(0)).unwrap();
    m.handle_timeout(t(0));
    let hellos = |v: Vec<Transmit>| -> Vec<SocketAddrV4> {
        v.into_iter()
            .filter(|x| matches!(x.msg, Message::Hello(_)))
            .map(|x| x.dest)
            .collect()
    };
    assert_eq!(hellos(drain(&mut m)), vec![sock(2), sock(3)]);
    // 2 answers: adjacent, and known. 3 is still unknown: hello again.
    m.handle(
        t(10),
        ProxyId(2),
        sock(2),
        &Message::Hello(Hello { lsa: up(2, 1, 1) }),
    );
    drain(&mut m);
    m.handle_timeout(t(1000));
    let h = hellos(drain(&mut m));
    assert!(h.contains(&sock(3)), "{h:?}");
    assert!(!h.contains(&sock(2)) || m.neighbours().any(|n| n.0 == ProxyId(2) && n.2));
}

#[test]
fn a_full_table_still_answers_monitors_and_acks_floods() {
    let mut c = cfg(1);
    c.max_neighbours = 2;
    let mut m = Membership::new(c, t(0)).unwrap();
    for p in [2, 3] {
        m.handle(
            t(1),
            ProxyId(p),
            sock(p),
            &Message::Hello(Hello { lsa: up(p, 1, 1) }),
        );
    }
    drain(&mut m);
    // Proxy 4 monitors us: it gets a heartbeat back although there is no
    // room for it, and its statement is learnt.
    m.handle(
        t(2),
        ProxyId(4),
        sock(4),
        &Message::Hello(Hello { lsa: up(4, 1, 1) }),
    );
    let out = drain(&mut m);
    assert!(out
        .iter()
        .any(|x| x.dest == sock(4) && matches!(x.msg, Message::Heartbeat(_))));
    assert!(m.proxy(ProxyId(4)).is_some());
    assert!(!m.neighbours().any(|n| n.0 == ProxyId(4)));
    m.handle(
        t(3),
        ProxyId(4),
        sock(4),
        &Message::Heartbeat(Heartbeat {
            incarnation: 1,
            monitoring: true,
        }),
    );
    assert!(drain(&mut m)
        .iter()
        .any(|x| x.dest == sock(4) && matches!(x.msg, Message::Heartbeat(_))));
    // A flood from it is installed and acknowledged at once.
    m.handle(t(4), ProxyId(4), sock(4), &flood(vec![up(5, 1, 1)]));
    let out = drain(&mut m);
    assert!(out
        .iter()
        .any(|x| x.dest == sock(4) && matches!(&x.msg, Message::FloodAck(a) if a.acks.len() == 1)));
    assert!(m.is_up(ProxyId(5)));
    assert!(m.counters().stateless_replies >= 3);
}
