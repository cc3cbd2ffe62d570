//! The agent against a real `ProxyControl`, in memory: every byte goes
//! through the agent's signer, the proxy's gate and JAP, and back.

use core::net::{Ipv4Addr, SocketAddrV4};

use pias_dataplane::types::{ClusterId, GroupProto};

use super::*;
use crate::auth::KeyRing;
use crate::membership;
use crate::proxy::{ProxyConfig, ProxyControl};
use crate::wire::{GroupRegister, KeyId, KeyShare, MAX_DATAGRAM};

const WALL0: u64 = 1_700_000_000;

fn group() -> GroupAddr {
    GroupAddr::Port {
        ip: Ipv4Addr::new(198, 51, 100, 10),
        port: 53,
        proto: GroupProto::Udp,
    }
}

fn owner() -> SigningKey {
    SigningKey::from_bytes(&[3; 32])
}

fn sub() -> Subscription {
    Subscription {
        group: group(),
        target: TargetAddr {
            ip: Ipv4Addr::new(203, 0, 113, 5),
            port: 53,
        },
        options: GroupOptions::default(),
    }
}

fn proxy() -> ProxyControl {
    let m = membership::Config::new(ProxyId(7), Ipv4Addr::new(192, 0, 2, 1), ClusterId(0), 1);
    let cfg = ProxyConfig::new(m, vec!["198.51.100.0/24".parse().expect("prefix")]);
    let keys = KeyRing::new(KeyId(1), &[9; 32]).expect("key");
    let mut cp = ProxyControl::new(cfg, keys, Instant::ZERO).expect("valid");
    cp.apply_registration(
        Instant::ZERO,
        &GroupRegister {
            group: group(),
            options: GroupOptions::default(),
            withdrawn: false,
            serial: 1,
            owner_key: owner().verifying_key().to_bytes(),
        },
    );
    cp
}

const AGENT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 5), 40_000);

fn wall(now: Instant) -> UnixTime {
    UnixTime(WALL0 + now.as_nanos() / 1_000_000_000)
}

/// Run agent and proxy until `until`, dropping agent requests for which
/// `lose(n)` (n counts requests) is true. Returns the events.
fn run(
    agent: &mut Agent,
    cp: &mut ProxyControl,
    from: Instant,
    until: Instant,
    lose: &mut dyn FnMut(u64) -> bool,
    sent: &mut u64,
) -> Vec<Event> {
    run_tampered(agent, cp, from, until, lose, sent, &mut |_| {})
}

/// [`run`], with every reply to the agent passed through `tamper` first
/// (an attacker on the path).
fn run_tampered(
    agent: &mut Agent,
    cp: &mut ProxyControl,
    from: Instant,
    until: Instant,
    lose: &mut dyn FnMut(u64) -> bool,
    sent: &mut u64,
    tamper: &mut dyn FnMut(&mut [u8]),
) -> Vec<Event> {
    let mut now = from;
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut reply = [0u8; MAX_DATAGRAM];
    let mut events = Vec::new();
    while now <= until {
        while let Some((dst, len)) = agent.poll_transmit(now, wall(now), &mut buf) {
            assert_eq!(dst, SocketAddrV4::new(group().ip(), DEFAULT_CONTROL_PORT));
            *sent += 1;
            if lose(*sent) {
                continue;
            }
            cp.handle_datagram(now, wall(now), AGENT, &buf[..len]);
            while let Some(t) = cp.poll_transmit(&mut reply) {
                if t.dst == AGENT {
                    tamper(&mut reply[..t.len]);
                    agent.handle_datagram(now, wall(now), t.src, &reply[..t.len]);
                }
            }
        }
        events.extend(core::iter::from_fn(|| agent.poll_event()));
        let next = [agent.poll_timeout(), cp.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(until + Duration::from_secs(1));
        now = next.max(now + Duration::from_millis(1));
        if cp.poll_timeout().is_some_and(|t| t <= now) {
            cp.handle_timeout(now);
            while cp.poll_transmit(&mut reply).is_some() {}
        }
    }
    events
}

/// An agent refreshing every 5 s, asking for 30 s, RNG seeded with `seed`.
fn quick_agent(seed: u8) -> Agent {
    let cfg = AgentConfig {
        refresh: Duration::from_secs(5),
        lifetime_s: 30,
        ..AgentConfig::default()
    };
    Agent::new(cfg, owner(), &[sub()], [seed; 32], Instant::ZERO)
}

#[test]
fn join_ack_refresh_leave_through_a_real_jap() {
    let mut cp = proxy();
    let mut a = quick_agent(1);
    let mut sent = 0;
    let ev = run(
        &mut a,
        &mut cp,
        Instant::ZERO,
        Instant::ZERO + Duration::from_secs(12),
        &mut |_| false,
        &mut sent,
    );
    assert_eq!(
        ev.first(),
        Some(&Event::Acked {
            index: 0,
            refresh: false
        })
    );
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::Acked { refresh: true, .. }))
            .count(),
        2,
        "refreshes at 5 s and 10 s: {ev:?}"
    );
    let st = *a.status().next().expect("one");
    assert_eq!(st.state, State::Joined);
    assert_eq!(st.jap, Some(ProxyId(7)));
    assert_eq!(st.granted_s, 30);
    assert_eq!(
        st.ack_from,
        Some(SocketAddrV4::new(group().ip(), DEFAULT_CONTROL_PORT))
    );
    // The join was signed; both refreshes went under the session the
    // join's ack granted (a MAC, no signature).
    assert_eq!(cp.jap().counters().joins, 1);
    assert_eq!(cp.jap().counters().refreshes, 0);
    assert_eq!(cp.jap().counters().session_refreshes, 2);
    assert_eq!((st.sent, st.signed), (3, 1));
    assert_eq!(st.session_expires, Some(UnixTime(WALL0 + 3600)));
    assert_eq!(cp.jap().target_count(), 1);

    let t = Instant::ZERO + Duration::from_secs(13);
    a.leave(t);
    let ev = run(
        &mut a,
        &mut cp,
        t,
        t + Duration::from_secs(2),
        &mut |_| false,
        &mut sent,
    );
    assert_eq!(
        ev,
        vec![Event::Left {
            index: 0,
            acked: true
        }]
    );
    assert!(a.is_done());
    assert_eq!(cp.jap().counters().leaves, 1);
    assert_eq!(cp.jap().target_count(), 0);
    assert_eq!(*a.counters(), AgentCounters::default());
}

#[test]
fn lost_requests_are_retried_with_fresh_nonces_then_given_up() {
    let mut cp = proxy();
    let mut a = Agent::new(
        AgentConfig::default(),
        owner(),
        &[sub()],
        [2; 32],
        Instant::ZERO,
    );
    let mut sent = 0;
    // The first two tries are lost; the third (after 1 s + 2 s) is acked:
    // a copy of a lost try would have been refused as a nonce replay.
    let ev = run(
        &mut a,
        &mut cp,
        Instant::ZERO,
        Instant::ZERO + Duration::from_secs(4),
        &mut |n| n <= 2,
        &mut sent,
    );
    assert_eq!(
        ev,
        vec![Event::Acked {
            index: 0,
            refresh: false
        }]
    );
    assert_eq!(sent, 3);
    // Now every request is lost: 5 tries, then the round fails, and the
    // next round starts a refresh interval later.
    let t = Instant::ZERO + Duration::from_secs(5);
    let ev = run(
        &mut a,
        &mut cp,
        t,
        t + Duration::from_secs(60),
        &mut |_| true,
        &mut sent,
    );
    assert_eq!(ev[0], Event::GaveUp { index: 0 });
    let st = *a.status().next().expect("one");
    assert_eq!(st.state, State::Failed);
    assert!(st.failures >= 1);
    assert_eq!(
        cp.gate().counters().get(crate::auth::Reject::NonceReplay),
        0
    );
}

#[test]
fn nacks_forged_and_late_replies() {
    let mut cp = proxy();
    // A target inside the anycast prefix: the JAP refuses it.
    let bad = Subscription {
        target: TargetAddr {
            ip: Ipv4Addr::new(198, 51, 100, 99),
            port: 53,
        },
        ..sub()
    };
    let mut a = Agent::new(
        AgentConfig::default(),
        owner(),
        &[bad],
        [3; 32],
        Instant::ZERO,
    );
    let mut sent = 0;
    let ev = run(
        &mut a,
        &mut cp,
        Instant::ZERO,
        Instant::ZERO + Duration::from_secs(2),
        &mut |_| false,
        &mut sent,
    );
    assert_eq!(
        ev,
        vec![Event::Nacked {
            index: 0,
            reason: NackReason::BadTarget
        }]
    );
    let st = *a.status().next().expect("one");
    assert_eq!(
        (st.state, st.last_nack, st.failures),
        (State::Failed, Some(NackReason::BadTarget), 1)
    );

    // An ack with a nonce never sent, one from a stranger, and garbage:
    // counted and ignored.
    let mut a = Agent::new(
        AgentConfig::default(),
        owner(),
        &[sub()],
        [4; 32],
        Instant::ZERO,
    );
    let mut buf = [0u8; MAX_DATAGRAM];
    let (dst, _) = a
        .poll_transmit(Instant::ZERO, UnixTime(WALL0), &mut buf)
        .expect("join");
    let forged = Message::JoinAck(JoinAck {
        group: group(),
        target: sub().target,
        nonce: 42,
        jap: ProxyId(666),
        lifetime_s: 300,
        session: None,
    });
    let n = forged.emit(None, &mut buf).expect("emit");
    a.handle_datagram(Instant::ZERO, UnixTime(WALL0), dst, &buf[..n]);
    a.handle_datagram(Instant::ZERO, UnixTime(WALL0), dst, &[2, 0x48, 0, 3]);
    a.handle_datagram(Instant::ZERO, UnixTime(WALL0), dst, b"\x02\x48");
    assert_eq!(a.counters().unmatched, 1);
    assert_eq!(a.counters().malformed, 2);
    assert_eq!(a.status().next().expect("one").state, State::Joining);
}

#[test]
fn a_restarted_jap_knows_no_session_and_the_agent_signs_again_at_once() {
    let mut cp = proxy();
    let mut a = quick_agent(5);
    let mut sent = 0;
    let t = Instant::ZERO + Duration::from_secs(1);
    run(&mut a, &mut cp, Instant::ZERO, t, &mut |_| false, &mut sent);
    assert_eq!(a.status().next().expect("one").signed, 1);
    // The JAP restarts (or routing moves the target to another JAP): the
    // next session refresh is nacked and a signed refresh follows at once.
    let mut cp = proxy();
    let ev = run(
        &mut a,
        &mut cp,
        t,
        t + Duration::from_secs(5),
        &mut |_| false,
        &mut sent,
    );
    assert_eq!(
        ev,
        vec![
            Event::Nacked {
                index: 0,
                reason: NackReason::SessionUnknown
            },
            Event::Acked {
                index: 0,
                refresh: true
            }
        ]
    );
    let st = *a.status().next().expect("one");
    assert_eq!((st.state, st.signed, st.failures), (State::Joined, 2, 0));
    assert_eq!(cp.jap().counters().refresh_as_join, 1);
}

/// A [`quick_agent`]`(seed)` and a JAP run for `secs` seconds, with every
/// ack that grants a session rewritten by `f` on the way (the ack is
/// unauthenticated: anyone on the path can).
fn run_rewriting_acks(
    seed: u8,
    secs: u64,
    f: &mut dyn FnMut(&mut JoinAck),
) -> (Agent, ProxyControl, Vec<Event>) {
    let mut cp = proxy();
    let mut a = quick_agent(seed);
    let mut sent = 0;
    let ev = run_tampered(
        &mut a,
        &mut cp,
        Instant::ZERO,
        Instant::ZERO + Duration::from_secs(secs),
        &mut |_| false,
        &mut sent,
        &mut |b| {
            if let Ok((_, Message::JoinAck(mut ack))) = decode_unauthenticated(b) {
                if ack.session.is_some() {
                    f(&mut ack);
                    let n = Message::JoinAck(ack).emit(None, b).expect("same length");
                    assert_eq!(n, b.len());
                }
            }
        },
    );
    (a, cp, ev)
}

fn swap_share(ack: &mut JoinAck, share: KeyShare) {
    if let Some(g) = ack.session.as_mut() {
        g.share = share;
    }
}

#[test]
fn a_swapped_jap_share_only_denies_the_session_and_the_agent_signs_again() {
    use crate::auth::{EphemeralSecret, Reject};
    // An active attacker swaps the JAP's share for its own in every ack:
    // the agent derives a key the JAP does not hold.
    let mitm = EphemeralSecret::from_bytes([0xEE; 32]).share();
    let (mut a, mut cp, ev) = run_rewriting_acks(6, 60, &mut |ack| swap_share(ack, mitm));
    let end = Instant::ZERO + Duration::from_secs(60);
    let mut sent = 0;
    let gate = cp.gate().counters();
    let jc = *cp.jap().counters();
    // The JAP never accepted a refresh under the attacker's session ...
    assert_eq!(jc.session_refreshes, 0);
    assert!(gate.get(Reject::BadSessionMac) >= 2 * 4, "{gate:?}");
    // ... the agent gave each such session up after SESSION_TRIES
    // unanswered refreshes and signed the next try, so the target stayed
    // joined all along: no round failed, the soft state never ran out.
    let st = *a.status().next().expect("one");
    assert!(a.counters().session_unanswered >= 4, "{:?}", a.counters());
    // Every session refresh was a bad MAC at the JAP; each given-up
    // session had SESSION_TRIES of them (the last may still be in flight).
    let (bad, gave_up) = (
        gate.get(Reject::BadSessionMac),
        a.counters().session_unanswered,
    );
    let tries = u64::from(SESSION_TRIES);
    assert!(
        gave_up * tries <= bad && bad <= (gave_up + 1) * tries,
        "{bad} {gave_up}"
    );
    assert_eq!(st.sent - st.signed, bad, "every session refresh refused");
    assert_eq!((st.state, st.failures), (State::Joined, 0), "{ev:?}");
    assert!(jc.refreshes >= 4, "signed refreshes: {jc:?}");
    assert_eq!((jc.expired, cp.jap().target_count()), (0, 1));
    assert!(
        !ev.iter().any(|e| matches!(e, Event::GaveUp { .. })),
        "{ev:?}"
    );

    // The attacker goes away: the next signed refresh's session works.
    let t = end + Duration::from_millis(1);
    run(
        &mut a,
        &mut cp,
        t,
        t + Duration::from_secs(30),
        &mut |_| false,
        &mut sent,
    );
    assert!(
        cp.jap().counters().session_refreshes >= 2,
        "{:?}",
        cp.jap().counters()
    );
    assert_eq!(cp.jap().target_count(), 1);
}

#[test]
fn a_small_order_jap_share_gives_no_session_and_refreshes_stay_signed() {
    use crate::auth::Reject;
    let (a, cp, _) = run_rewriting_acks(7, 12, &mut |ack| swap_share(ack, KeyShare([0; 32])));
    let st = *a.status().next().expect("one");
    assert_eq!(a.counters().session_small_order, 3, "join + 2 refreshes");
    assert_eq!((st.state, st.sent, st.signed), (State::Joined, 3, 3));
    assert_eq!(st.session_expires, None);
    assert_eq!(cp.gate().counters().get(Reject::BadSessionMac), 0);
    assert_eq!(cp.jap().counters().refreshes, 2);
}

#[test]
fn the_ack_of_a_signed_refresh_without_a_session_ends_the_agents_session() {
    // Near the session's end (1 h) the agent signs its refresh; an
    // attacker strips the session from that ack (and every later one).
    // The JAP replaced its session with the new one, so the agent must not
    // keep the old one.
    let (a, cp, _) = run_rewriting_acks(9, 3620, &mut |ack| {
        if ack.session.is_some_and(|g| g.expires.0 > WALL0 + 3600) {
            ack.session = None;
        }
    });
    let st = *a.status().next().expect("one");
    assert_eq!(st.state, State::Joined);
    assert_eq!(st.session_expires, None, "the stripped ack ended it");
    assert!(st.signed >= 3, "{st:?}");
    assert_eq!(st.last_nack, None, "no session-unknown round trip");
    assert_eq!(cp.jap().counters().nack_session, 0);
}
