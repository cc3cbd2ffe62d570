//! Composition tests: one proxy's whole control plane driven through its
//! public interface (datagrams in, datagrams and updates out).

use core::net::{Ipv4Addr, SocketAddrV4};

use ed25519_dalek::SigningKey;
use pias_dataplane::types::{ClusterId, GroupProto};
use proptest::prelude::*;

use super::*;
use crate::auth::{sign_target_request, EphemeralSecret, TargetSession};
use crate::wire::{
    decode_unauthenticated, JoinAck, TargetRequest, DEFAULT_CONTROL_PORT, MAX_DATAGRAM,
};

const WALL: UnixTime = UnixTime(1_700_000_000);

fn g(port: u16) -> GroupAddr {
    GroupAddr::Port {
        ip: Ipv4Addr::new(198, 51, 100, 10),
        port,
        proto: GroupProto::Udp,
    }
}

fn owner() -> SigningKey {
    SigningKey::from_bytes(&[3; 32])
}

fn my_addr() -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 1)
}

fn proxy() -> ProxyControl {
    let m = membership::Config::new(ProxyId(1), my_addr(), ClusterId(0), 1);
    let cfg = ProxyConfig::new(m, vec!["198.51.100.0/24".parse().expect("prefix")]);
    let keys = KeyRing::new(KeyId(1), &[9; 32]).expect("key");
    ProxyControl::new(cfg, keys, Instant::ZERO).expect("valid")
}

fn register(cp: &mut ProxyControl, port: u16, o: GroupOptions) {
    cp.apply_registration(
        Instant::ZERO,
        &GroupRegister {
            group: g(port),
            options: o,
            withdrawn: false,
            serial: 1,
            owner_key: owner().verifying_key().to_bytes(),
        },
    );
}

/// The target's ephemeral X25519 key of the request with `nonce`
/// (deterministic: a test derives the session key again from it).
fn eph(nonce: u64) -> EphemeralSecret {
    let mut b = [0x11u8; 32];
    b[..8].copy_from_slice(&nonce.to_be_bytes());
    EphemeralSecret::from_bytes(b)
}

/// The session key the target derives from the ack of its request with
/// `nonce`.
fn session_key(nonce: u64, ack: &JoinAck) -> [u8; 16] {
    match TargetSession::accept(eph(nonce), ack) {
        Some(Ok(s)) => s.key,
        other => panic!("no session: {other:?}"),
    }
}

/// A request of `target` for group 53 asking for 60 s, with the share of
/// [`eph`]`(nonce)`.
fn request(target: TargetAddr, nonce: u64) -> TargetRequest {
    TargetRequest {
        group: g(53),
        target,
        options: GroupOptions::default(),
        lifetime_s: 60,
        timestamp: WALL,
        nonce,
        share: Some(eph(nonce).share()),
    }
}

fn join_bytes(port: u16, target: TargetAddr, nonce: u64) -> Vec<u8> {
    let req = TargetRequest {
        group: g(port),
        ..request(target, nonce)
    };
    let mut buf = [0u8; MAX_DATAGRAM];
    let n = sign_target_request(&owner(), &Message::Join(req), &mut buf).expect("sign");
    buf[..n].to_vec()
}

fn transmits(cp: &mut ProxyControl) -> Vec<(Transmit, Message)> {
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut v = Vec::new();
    while let Some(t) = cp.poll_transmit(&mut buf) {
        let (_, m) = decode_unauthenticated(&buf[..t.len]).expect("well-formed");
        v.push((t, m));
    }
    v
}

fn updates(cp: &mut ProxyControl) -> Vec<Update> {
    core::iter::from_fn(|| cp.poll_update()).collect()
}

fn settle(cp: &mut ProxyControl, until: Instant) {
    while let Some(t) = cp.poll_timeout() {
        if t > until {
            break;
        }
        cp.handle_timeout(t);
    }
}

#[test]
fn registration_publishes_a_table_with_the_group() {
    let mut cp = proxy();
    let u = updates(&mut cp);
    assert!(
        !u.is_empty() && u.iter().all(|u| matches!(u, Update::Tables(_))),
        "{u:?}"
    );
    register(&mut cp, 53, GroupOptions::default());
    // Publications are coalesced: the next one is due a publish interval
    // after the last.
    assert!(updates(&mut cp).is_empty());
    settle(&mut cp, Instant::ZERO + Duration::from_millis(50));
    let u = updates(&mut cp);
    let Some(Update::Tables(t)) = u.last() else {
        panic!("{u:?}");
    };
    let e = t.group(&g(53)).expect("group published");
    assert_eq!(e.raps(), &[ProxyId(1)], "alone, this proxy is the RAP");
    assert_eq!(cp.raps(&g(53)), &[ProxyId(1)]);
}

#[test]
fn a_join_is_acked_from_the_anycast_address_and_reaches_every_table() {
    let mut cp = proxy();
    register(&mut cp, 53, GroupOptions::default());
    updates(&mut cp);
    let target = TargetAddr {
        ip: Ipv4Addr::new(203, 0, 113, 5),
        port: 53,
    };
    let src = SocketAddrV4::new(target.ip, 40_000);
    let t1 = Instant::ZERO + Duration::from_secs(1);
    cp.handle_datagram(t1, WALL, src, &join_bytes(53, target, 1));
    let tx = transmits(&mut cp);
    assert_eq!(tx.len(), 1);
    assert_eq!(
        tx[0].0.src,
        SocketAddrV4::new(g(53).ip(), DEFAULT_CONTROL_PORT)
    );
    assert_eq!(tx[0].0.dst, src);
    assert!(matches!(tx[0].1, Message::JoinAck(a) if a.jap == ProxyId(1) && a.nonce == 1));
    // The same datagram again is a replay: refused by the gate.
    cp.handle_datagram(t1, WALL, src, &join_bytes(53, target, 1));
    assert!(transmits(&mut cp).is_empty());
    assert_eq!(
        cp.gate().counters().get(crate::auth::Reject::NonceReplay),
        1
    );
    // After the report delay the JAP reports to itself as RAP (locally),
    // and the published table holds the target and the JAP view.
    settle(&mut cp, t1 + Duration::from_millis(200));
    assert!(transmits(&mut cp).is_empty(), "nothing leaves a lone proxy");
    let t = cp.tables().clone();
    let e = t.group(&g(53)).expect("group");
    assert_eq!(e.targets().len(), 1);
    assert_eq!(
        e.japs()
            .iter()
            .map(|j| (j.jap, j.approx_targets))
            .collect::<Vec<_>>(),
        vec![(ProxyId(1), 1)]
    );
    assert!(
        cp.counters().loopback >= 2,
        "report and ack delivered locally"
    );
    // The dataplane's RAP stage chose this proxy for a packet from this
    // proxy's own IAP: the list is filled locally.
    cp.handle_event(
        t1 + Duration::from_millis(300),
        &Up::RapChose {
            group: g(53),
            jap: ProxyId(1),
            iap: my_addr(),
        },
    );
    let u = updates(&mut cp);
    assert!(
        u.iter().any(|u| matches!(u, Update::CacheFill { group, japs, .. } if *group == g(53) && japs.as_slice() == [ProxyId(1)])),
        "{u:?}"
    );
    // A health probe is due; its failure three times marks the target dead.
    let mut now = t1 + Duration::from_millis(300);
    for _ in 0..3 {
        now += Duration::from_secs(2);
        settle(&mut cp, now);
        while let Some(p) = cp.poll_probe() {
            cp.handle_probe_result(now, p.id, false);
        }
    }
    settle(&mut cp, now + Duration::from_secs(1));
    let t = cp.tables().clone();
    assert!(!t.group(&g(53)).expect("group").has_live_target());
    assert_eq!(cp.counters().tables_invalid, 0);
}

#[test]
fn dataplane_events_become_messages() {
    let mut cp = proxy();
    register(&mut cp, 53, GroupOptions::default());
    let iap = Ipv4Addr::new(192, 0, 2, 77);
    cp.handle_event(Instant::ZERO, &Up::JapNoTarget { group: g(53), iap });
    let tx = transmits(&mut cp);
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].0.dst, SocketAddrV4::new(iap, DEFAULT_CONTROL_PORT));
    assert_eq!(
        tx[0].0.src,
        SocketAddrV4::new(my_addr(), DEFAULT_CONTROL_PORT)
    );
    assert!(matches!(tx[0].1, Message::Invalidate(i) if i.jap == ProxyId(1)));
    // Retired snapshots are the driver's business.
    cp.handle_event(
        Instant::ZERO,
        &Up::Retired(pias_dataplane::iface::Down::ProxyDown(ProxyId(5))),
    );
    assert!(transmits(&mut cp).is_empty());
}

#[test]
fn joins_for_targets_the_table_would_refuse_are_nacked() {
    let mut cp = proxy();
    register(&mut cp, 53, GroupOptions::default());
    for (i, ip) in [
        my_addr(),
        Ipv4Addr::new(198, 51, 100, 9),
        Ipv4Addr::new(0, 1, 2, 3),
    ]
    .into_iter()
    .enumerate()
    {
        let target = TargetAddr { ip, port: 53 };
        cp.handle_datagram(
            Instant::ZERO,
            WALL,
            SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 1), 1),
            &join_bytes(53, target, 10 + i as u64),
        );
        let tx = transmits(&mut cp);
        assert!(
            matches!(tx[0].1, Message::JoinNack(n) if n.reason == crate::wire::NackReason::BadTarget),
            "{ip}"
        );
    }
}

proptest! {
    /// Arbitrary bytes never panic the composition, and every table it
    /// publishes is valid.
    #[test]
    fn garbage_never_panics(dgrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 1..40)) {
        let mut cp = proxy();
        register(&mut cp, 53, GroupOptions::default());
        let src = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), DEFAULT_CONTROL_PORT);
        let mut now = Instant::ZERO;
        for d in &dgrams {
            now += Duration::from_millis(30);
            cp.handle_datagram(now, WALL, src, d);
            cp.handle_timeout(now);
            transmits(&mut cp);
        }
        prop_assert_eq!(cp.counters().tables_invalid, 0);
    }
}

proptest! {
    // Few cases: each join is an Ed25519 signature and verification, slow
    // in a debug build.
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Joins of arbitrary targets in several groups: every publication
    /// passes the dataplane's validation.
    #[test]
    fn random_joins_keep_tables_valid(targets in proptest::collection::vec((any::<u32>(), any::<u16>(), 0u16..3), 1..30)) {
        let mut cp = proxy();
        for p in [53, 54] {
            register(&mut cp, p, GroupOptions::default());
        }
        cp.apply_registration(Instant::ZERO, &GroupRegister {
            group: GroupAddr::WholeIp(Ipv4Addr::new(198, 51, 100, 20)),
            options: GroupOptions { rapless: true, ..GroupOptions::default() },
            withdrawn: false,
            serial: 1,
            owner_key: owner().verifying_key().to_bytes(),
        });
        let mut now = Instant::ZERO;
        for (k, (ip, port, which)) in targets.iter().enumerate() {
            let (group, port) = match which {
                0 => (g(53), *port),
                1 => (g(54), *port),
                _ => (GroupAddr::WholeIp(Ipv4Addr::new(198, 51, 100, 20)), *port % 2),
            };
            let req = TargetRequest {
                group,
                target: TargetAddr { ip: Ipv4Addr::from_bits(*ip), port },
                options: GroupOptions::default(),
                lifetime_s: 30,
                timestamp: WALL,
                nonce: k as u64,
                share: Some(eph(k as u64).share()),
            };
            let mut buf = [0u8; MAX_DATAGRAM];
            let n = sign_target_request(&owner(), &Message::Join(req), &mut buf).expect("sign");
            now += Duration::from_millis(20);
            cp.handle_datagram(now, WALL, SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 1), 9), &buf[..n]);
            settle(&mut cp, now);
            transmits(&mut cp);
        }
        settle(&mut cp, now + Duration::from_secs(1));
        prop_assert_eq!(cp.counters().tables_invalid, 0);
        prop_assert!(cp.last_tables_error().is_none());
    }
}

// ----- sessions (PROTOCOL.md §5.6) -----------------------------------------

fn session_bytes(
    key: &[u8; 16],
    target: TargetAddr,
    session: u64,
    counter: u64,
    nonce: u64,
) -> Vec<u8> {
    let r = crate::wire::SessionRefresh {
        group: g(53),
        target,
        session,
        counter,
        nonce,
        lifetime_s: 60,
    };
    let mut buf = [0u8; MAX_DATAGRAM];
    let n = crate::auth::seal_session_refresh(key, &r, &mut buf).expect("seal");
    buf[..n].to_vec()
}

fn held_counter(cp: &ProxyControl, target: &TargetAddr) -> Option<(u64, u64)> {
    use crate::auth::Sessions;
    cp.jap().session(&g(53), target).map(|s| (s.id, s.counter))
}

fn held_key(cp: &ProxyControl, target: &TargetAddr) -> Option<[u8; 16]> {
    use crate::auth::Sessions;
    cp.jap().session(&g(53), target).map(|s| s.key)
}

/// A proxy with group 53 registered, a target of it, the target's source
/// address and a time to send at.
fn session_setup() -> (ProxyControl, TargetAddr, SocketAddrV4, Instant) {
    let mut cp = proxy();
    register(&mut cp, 53, GroupOptions::default());
    let target = TargetAddr {
        ip: Ipv4Addr::new(203, 0, 113, 5),
        port: 53,
    };
    let src = SocketAddrV4::new(target.ip, 40_000);
    (cp, target, src, Instant::ZERO + Duration::from_secs(1))
}

#[test]
fn sessions_forged_replayed_expired_and_revoked_refreshes_are_refused() {
    use crate::auth::Reject;
    use crate::wire::NackReason;
    let (mut cp, target, src, t) = session_setup();
    cp.handle_datagram(t, WALL, src, &join_bytes(53, target, 1));
    let tx = transmits(&mut cp);
    let Message::JoinAck(ack) = tx[0].1 else {
        panic!("{tx:?}")
    };
    let grant = ack.session.expect("a signed join's ack grants a session");
    assert_eq!(grant.expires, UnixTime(WALL.0 + 3600));
    assert_eq!(held_counter(&cp, &target), Some((grant.id, 0)));
    // The target derives the JAP's key; the key is nowhere in the ack.
    let key = session_key(1, &ack);
    assert_eq!(held_key(&cp, &target), Some(key));
    let mut ack_bytes = [0u8; MAX_DATAGRAM];
    let n = Message::JoinAck(ack)
        .emit(None, &mut ack_bytes)
        .expect("emit");
    assert!(
        !ack_bytes[..n].windows(16).any(|w| w == key),
        "key in clear"
    );

    // A valid session refresh: acked (same JAP, no new session), counter
    // recorded.
    let ok1 = session_bytes(&key, target, grant.id, 1, 77);
    cp.handle_datagram(t, WALL, src, &ok1);
    let tx = transmits(&mut cp);
    assert!(
        matches!(tx[..], [(_, Message::JoinAck(a))] if a.nonce == 77 && a.session.is_none() && a.jap == ProxyId(1)),
        "{tx:?}"
    );
    assert_eq!(held_counter(&cp, &target), Some((grant.id, 1)));
    assert_eq!(cp.jap().counters().session_refreshes, 1);

    let before = cp.gate().counters().clone();
    let count = |cp: &ProxyControl, r: Reject| cp.gate().counters().get(r) - before.get(r);
    // Replayed: refused silently, nothing moves.
    cp.handle_datagram(t, WALL, src, &ok1);
    assert!(transmits(&mut cp).is_empty());
    assert_eq!(count(&cp, Reject::SessionReplay), 1);
    // Forged: a key guessed, or any bit flipped: refused silently.
    let forged = session_bytes(&[0x42; 16], target, grant.id, 2, 78);
    cp.handle_datagram(t, WALL, src, &forged);
    assert_eq!(count(&cp, Reject::BadSessionMac), 1);
    let good2 = session_bytes(&key, target, grant.id, 2, 79);
    for bit in 0..good2.len() * 8 {
        let mut b = good2.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        cp.handle_datagram(t, WALL, src, &b);
        let tx = transmits(&mut cp);
        assert!(
            tx.iter().all(|(_, m)| !matches!(m, Message::JoinAck(_))),
            "bit {bit} accepted"
        );
    }
    assert_eq!(
        held_counter(&cp, &target),
        Some((grant.id, 1)),
        "nothing moved"
    );
    assert_eq!(cp.jap().counters().session_refreshes, 1);
    // A session key only works for its own (group, target): the same MAC'd
    // refresh naming another target finds no session there.
    let other = TargetAddr {
        ip: Ipv4Addr::new(203, 0, 113, 6),
        port: 53,
    };
    cp.handle_datagram(t, WALL, src, &session_bytes(&key, other, grant.id, 2, 80));
    let tx = transmits(&mut cp);
    assert!(
        matches!(tx[..], [(_, Message::JoinNack(n))] if n.reason == NackReason::SessionUnknown),
        "{tx:?}"
    );
    // The untouched original still works.
    cp.handle_datagram(t, WALL, src, &good2);
    assert!(matches!(transmits(&mut cp)[..], [(_, Message::JoinAck(_))]));

    // Expired: nacked (the target signs again), nothing moves.
    let late = UnixTime(grant.expires.0 + 1);
    cp.handle_datagram(t, late, src, &session_bytes(&key, target, grant.id, 3, 81));
    let tx = transmits(&mut cp);
    assert!(
        matches!(tx[..], [(_, Message::JoinNack(n))] if n.reason == NackReason::SessionExpired && n.nonce == 81),
        "{tx:?}"
    );
    assert_eq!(count(&cp, Reject::SessionExpired), 1);
    assert_eq!(held_counter(&cp, &target), Some((grant.id, 2)));

    // A new signed request replaces the session: the old one is refused.
    let mut buf = [0u8; MAX_DATAGRAM];
    let req = request(target, 2);
    let n = sign_target_request(&owner(), &Message::Refresh(req), &mut buf).expect("sign");
    cp.handle_datagram(t, WALL, src, &buf[..n]);
    let tx = transmits(&mut cp);
    let Message::JoinAck(ack2) = tx[0].1 else {
        panic!("{tx:?}")
    };
    let grant2 = ack2.session.expect("new session");
    assert_ne!(grant2.id, grant.id);
    let key2 = session_key(2, &ack2);
    assert_ne!(key2, key);
    let unknown = cp.gate().counters().get(Reject::UnknownSession);
    cp.handle_datagram(t, WALL, src, &session_bytes(&key, target, grant.id, 9, 82));
    assert_eq!(
        cp.gate().counters().get(Reject::UnknownSession),
        unknown + 1
    );

    // A leave revokes it: a refresh after the leave cannot resurrect the
    // target.
    let leave = TargetRequest {
        lifetime_s: 0,
        nonce: 3,
        share: None,
        ..req
    };
    let n = sign_target_request(&owner(), &Message::Leave(leave), &mut buf).expect("sign");
    cp.handle_datagram(t, WALL, src, &buf[..n]);
    transmits(&mut cp);
    assert_eq!(cp.jap().target_count(), 0);
    cp.handle_datagram(
        t,
        WALL,
        src,
        &session_bytes(&key2, target, grant2.id, 1, 83),
    );
    let tx = transmits(&mut cp);
    assert!(
        matches!(tx[..], [(_, Message::JoinNack(n))] if n.reason == NackReason::SessionUnknown),
        "{tx:?}"
    );
    assert_eq!(cp.jap().target_count(), 0);
    assert_eq!(cp.jap().counters().session_refreshes, 2);
}

#[test]
fn session_keys_differ_per_jap_boot_and_binding() {
    use crate::auth::SessionSecret;
    let keys = KeyRing::new(KeyId(1), &[9; 32]).expect("key");
    let a = SessionSecret::derive(&keys, ProxyId(1), 1);
    let t = TargetAddr {
        ip: Ipv4Addr::new(203, 0, 113, 5),
        port: 53,
    };
    let req = request(t, 1);
    let grant =
        |s: &SessionSecret, r: &TargetRequest, id: u64, e: u64| match s.grant(r, id, UnixTime(e)) {
            Some(Ok(x)) => x,
            other => panic!("{other:?}"),
        };
    let (g0, k) = grant(&a, &req, 1, 5);
    // The target derives the same key from the grant's share.
    let ack = JoinAck {
        group: req.group,
        target: t,
        nonce: 1,
        jap: ProxyId(1),
        lifetime_s: 60,
        session: Some(g0),
    };
    assert_eq!(session_key(1, &ack), k);
    for other in [
        grant(&SessionSecret::derive(&keys, ProxyId(2), 1), &req, 1, 5),
        grant(&SessionSecret::derive(&keys, ProxyId(1), 2), &req, 1, 5),
        grant(
            &a,
            &TargetRequest {
                group: g(54),
                ..req
            },
            1,
            5,
        ),
        grant(
            &a,
            &TargetRequest {
                target: TargetAddr { port: 54, ..t },
                ..req
            },
            1,
            5,
        ),
        grant(&a, &TargetRequest { nonce: 2, ..req }, 1, 5),
        grant(
            &a,
            &TargetRequest {
                share: Some(eph(2).share()),
                ..req
            },
            1,
            5,
        ),
        grant(&a, &req, 2, 5),
        grant(&a, &req, 1, 6),
    ] {
        assert_ne!(k, other.1);
        assert_ne!(g0.share, other.0.share, "a fresh JAP share per session");
    }
    assert_eq!(
        (g0, k),
        grant(&SessionSecret::derive(&keys, ProxyId(1), 1), &req, 1, 5)
    );
    // A leave has no share: no session.
    assert!(a
        .grant(&TargetRequest { share: None, ..req }, 3, UnixTime(5))
        .is_none());
}

#[test]
fn a_small_order_share_gets_the_join_but_no_session() {
    let (mut cp, target, src, t) = session_setup();
    for (i, u) in [[0u8; 32], {
        let mut one = [0u8; 32];
        one[0] = 1;
        one
    }]
    .into_iter()
    .enumerate()
    {
        let req = TargetRequest {
            share: Some(crate::wire::KeyShare(u)),
            ..request(target, 10 + i as u64)
        };
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = sign_target_request(&owner(), &Message::Join(req), &mut buf).expect("sign");
        cp.handle_datagram(t, WALL, src, &buf[..n]);
        let tx = transmits(&mut cp);
        assert!(
            matches!(tx[..], [(_, Message::JoinAck(a))] if a.session.is_none() && a.lifetime_s == 60),
            "{tx:?}"
        );
        assert_eq!(cp.jap().counters().session_small_order, i as u64 + 1);
    }
    assert_eq!(cp.jap().target_count(), 1, "the signed join itself stands");
    assert_eq!(held_counter(&cp, &target), None);
    assert_eq!(cp.jap().counters().sessions_granted, 0);
}
