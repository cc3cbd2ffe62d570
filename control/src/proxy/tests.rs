//! Composition tests: one proxy's whole control plane driven through its
//! public interface (datagrams in, datagrams and updates out).

use core::net::{Ipv4Addr, SocketAddrV4};

use ed25519_dalek::SigningKey;
use pias_dataplane::types::{ClusterId, GroupProto};
use proptest::prelude::*;

use super::*;
use crate::auth::sign_target_request;
use crate::wire::{decode_unauthenticated, TargetRequest, DEFAULT_CONTROL_PORT, MAX_DATAGRAM};

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

fn join_bytes(port: u16, target: TargetAddr, nonce: u64) -> Vec<u8> {
    let req = TargetRequest {
        group: g(port),
        target,
        options: GroupOptions::default(),
        lifetime_s: 60,
        timestamp: WALL,
        nonce,
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
