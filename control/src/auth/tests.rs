//! Gate tests: every refusal with its counter, and "verify before touching
//! state".

use core::net::{Ipv4Addr, SocketAddrV4};

use ed25519_dalek::{Signer, SigningKey};
use pias_dataplane::types::{GroupAddr, GroupOptions, GroupProto, ProxyId, TargetAddr};
use proptest::prelude::*;

use super::*;
use crate::groups::GroupRegistry;
use crate::wire::tests::strategies;
use crate::wire::{
    GroupRegister, Heartbeat, JoinAck, KeyId, KeyShare, Message, MessageType, RapQuery,
    TargetRequest, MAX_DATAGRAM, SIGNATURE_LEN,
};

const SECRET_A: [u8; 32] = [0xa5; 32];
const SECRET_B: [u8; 32] = [0x5a; 32];
const NOW: UnixTime = UnixTime(1_700_000_000);

fn src() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 7450)
}

fn gate() -> Gate {
    Gate::new(
        GateConfig {
            me: Some(ProxyId(100)),
            ..GateConfig::default()
        },
        KeyRing::new(KeyId(1), &SECRET_A).unwrap(),
    )
}

fn ring() -> KeyRing {
    KeyRing::new(KeyId(1), &SECRET_A).unwrap()
}

fn hb() -> Message {
    Message::Heartbeat(Heartbeat {
        incarnation: 1,
        monitoring: true,
    })
}

fn seal(s: &mut Sealer, keys: &KeyRing, m: &Message) -> Vec<u8> {
    let mut buf = [0u8; MAX_DATAGRAM];
    let n = s.seal(keys, m, src(), &mut buf).unwrap();
    buf[..n].to_vec()
}

fn no_groups() -> GroupRegistry {
    GroupRegistry::new(10)
}

fn group_a() -> GroupAddr {
    GroupAddr::Port {
        ip: Ipv4Addr::new(198, 51, 100, 10),
        port: 53,
        proto: GroupProto::Udp,
    }
}

fn group_b() -> GroupAddr {
    GroupAddr::Port {
        ip: Ipv4Addr::new(198, 51, 100, 10),
        port: 54,
        proto: GroupProto::Udp,
    }
}

fn owner(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// Groups A (owner 1) and B (owner `b_owner`).
fn registry(b_owner: u8) -> GroupRegistry {
    let mut r = GroupRegistry::new(10);
    for (g, o) in [(group_a(), 1u8), (group_b(), b_owner)] {
        r.apply(&GroupRegister {
            group: g,
            options: GroupOptions::default(),
            withdrawn: false,
            serial: 1,
            owner_key: owner(o).verifying_key().to_bytes(),
        })
        .unwrap();
    }
    r
}

fn join(group: GroupAddr, ts: UnixTime, nonce: u64) -> Message {
    Message::Join(TargetRequest {
        group,
        target: TargetAddr {
            ip: Ipv4Addr::new(203, 0, 113, 5),
            port: 53,
        },
        options: GroupOptions::default(),
        lifetime_s: 60,
        timestamp: ts,
        nonce,
        share: Some(KeyShare([0x77; 32])),
    })
}

fn signed(key: &SigningKey, m: &Message) -> Vec<u8> {
    let mut buf = [0u8; MAX_DATAGRAM];
    let n = sign_target_request(key, m, &mut buf).unwrap();
    buf[..n].to_vec()
}

#[test]
fn sealed_message_is_accepted() {
    let mut g = gate();
    let mut s = Sealer::new(ProxyId(7), 3);
    let b = seal(&mut s, g.keys(), &hb());
    let r = g.open(NOW, src(), &b, &no_groups()).unwrap();
    let Accepted::Proxy { header, msg } = r else {
        panic!("not a proxy message");
    };
    assert_eq!(header.sender, ProxyId(7));
    assert_eq!((header.epoch, header.seq), (3, 0));
    assert_eq!(msg, hb());
    assert_eq!(g.counters().accepted(), 1);
    assert_eq!(g.counters().rejected_total(), 0);
}

#[test]
fn every_bit_flip_is_refused_and_moves_nothing() {
    let mut g = gate();
    let mut s = Sealer::new(ProxyId(7), 3);
    let first = seal(&mut s, g.keys(), &hb());
    // Advance the sender so that its later messages carry higher seqs.
    let later = seal(&mut s, g.keys(), &hb());
    let mut flips = 0;
    for i in 0..later.len() {
        for bit in 0..8 {
            let mut b = later.clone();
            b[i] ^= 1 << bit;
            assert!(
                g.open(NOW, src(), &b, &no_groups()).is_err(),
                "byte {i} bit {bit}"
            );
            flips += 1;
        }
    }
    assert_eq!(g.counters().rejected_total(), flips);
    assert_eq!(g.counters().accepted(), 0);
    assert!(g.counters().get(Reject::BadMac) > 0);
    assert_eq!(g.replay_mut().len(), 0, "no window was created");
    // Both genuine messages still pass, in either order.
    assert!(g.open(NOW, src(), &later, &no_groups()).is_ok());
    assert!(g.open(NOW, src(), &first, &no_groups()).is_ok());
}

#[test]
fn forged_high_sequence_does_not_move_the_window() {
    let mut g = gate();
    let mut s = Sealer::new(ProxyId(7), 3);
    let msgs: Vec<Vec<u8>> = (0..3).map(|_| seal(&mut s, g.keys(), &hb())).collect();
    assert!(g.open(NOW, src(), &msgs[0], &no_groups()).is_ok());
    // A message with seq far ahead and a wrong key: same sender, same epoch.
    let evil = KeyRing::new(KeyId(1), &SECRET_B).unwrap();
    let mut forger = Sealer::new(ProxyId(7), 3);
    let mut forged = Vec::new();
    for _ in 0..5000 {
        forged = seal(&mut forger, &evil, &hb());
    }
    assert_eq!(
        g.open(NOW, src(), &forged, &no_groups()),
        Err(Reject::BadMac)
    );
    // And a forged new epoch.
    let mut forger = Sealer::new(ProxyId(7), 99);
    let forged = seal(&mut forger, &evil, &hb());
    assert_eq!(
        g.open(NOW, src(), &forged, &no_groups()),
        Err(Reject::BadMac)
    );
    // Had either moved the window, these would be too old / old epoch.
    assert!(g.open(NOW, src(), &msgs[2], &no_groups()).is_ok());
    assert!(g.open(NOW, src(), &msgs[1], &no_groups()).is_ok());
}

#[test]
fn mac_covers_source_address_and_port() {
    let mut g = gate();
    let mut s = Sealer::new(ProxyId(7), 3);
    let b = seal(&mut s, g.keys(), &hb());
    let other_ip = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 7450);
    let other_port = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 7451);
    assert_eq!(g.open(NOW, other_ip, &b, &no_groups()), Err(Reject::BadMac));
    assert_eq!(
        g.open(NOW, other_port, &b, &no_groups()),
        Err(Reject::BadMac)
    );
    assert!(g.open(NOW, src(), &b, &no_groups()).is_ok());
}

#[test]
fn replays_are_refused() {
    let mut g = gate();
    let keys = ring();
    let mut s = Sealer::new(ProxyId(7), 3);
    let msgs: Vec<Vec<u8>> = (0..1100).map(|_| seal(&mut s, &keys, &hb())).collect();
    assert!(g.open(NOW, src(), &msgs[5], &no_groups()).is_ok());
    assert_eq!(
        g.open(NOW, src(), &msgs[5], &no_groups()),
        Err(Reject::Duplicate)
    );
    assert!(g.open(NOW, src(), &msgs[1099], &no_groups()).is_ok());
    // 1099 - 75 = 1024: just behind the window.
    assert_eq!(
        g.open(NOW, src(), &msgs[75], &no_groups()),
        Err(Reject::TooOld)
    );
    assert!(g.open(NOW, src(), &msgs[76], &no_groups()).is_ok());
    // The sender restarts with a higher epoch; its old epoch is dead.
    let mut s2 = Sealer::new(ProxyId(7), 4);
    let fresh = seal(&mut s2, &keys, &hb());
    assert!(g.open(NOW, src(), &fresh, &no_groups()).is_ok());
    assert_eq!(
        g.open(NOW, src(), &msgs[1000], &no_groups()),
        Err(Reject::OldEpoch)
    );
    let c = g.counters();
    assert_eq!(
        (
            c.get(Reject::Duplicate),
            c.get(Reject::TooOld),
            c.get(Reject::OldEpoch)
        ),
        (1, 1, 1)
    );
}

#[test]
fn key_rotation_with_two_live_keys() {
    let mut g = gate();
    let mut keys = ring();
    let mut s = Sealer::new(ProxyId(7), 1);
    let old = seal(&mut s, &keys, &hb());
    // Step 1: every proxy learns key 2; senders still use key 1.
    keys.add(KeyId(2), &SECRET_B).unwrap();
    g.keys_mut().add(KeyId(2), &SECRET_B).unwrap();
    // Step 2: senders switch.
    keys.set_send(KeyId(2)).unwrap();
    let new = seal(&mut s, &keys, &hb());
    assert_eq!(new[8], 2, "key id on the wire");
    assert!(g.open(NOW, src(), &new, &no_groups()).is_ok());
    assert!(g.open(NOW, src(), &old, &no_groups()).is_ok());
    // Step 3: key 1 is retired.
    g.keys_mut().set_send(KeyId(2)).unwrap();
    g.keys_mut().remove(KeyId(1)).unwrap();
    keys.set_send(KeyId(1)).unwrap();
    let stale = seal(&mut s, &keys, &hb());
    assert_eq!(
        g.open(NOW, src(), &stale, &no_groups()),
        Err(Reject::UnknownKeyId)
    );
    // Ring misuse is refused.
    assert_eq!(
        g.keys_mut().remove(KeyId(2)),
        Err(KeyError::IsSendKey(KeyId(2)))
    );
    assert_eq!(
        g.keys_mut().add(KeyId(2), &SECRET_A),
        Err(KeyError::Duplicate(KeyId(2)))
    );
    assert_eq!(
        g.keys_mut().add(KeyId(3), &[1; 16]),
        Err(KeyError::TooShort)
    );
    g.keys_mut().add(KeyId(3), &SECRET_A).unwrap();
    assert_eq!(g.keys_mut().add(KeyId(4), &SECRET_A), Err(KeyError::Full));
    assert_eq!(
        g.keys_mut().set_send(KeyId(9)),
        Err(KeyError::Unknown(KeyId(9)))
    );
    assert!(
        !format!("{:?}", g.keys()).contains("165"),
        "no secret bytes in Debug"
    );
}

#[test]
fn messages_from_self_are_refused() {
    let mut g = gate();
    let mut s = Sealer::new(ProxyId(100), 1);
    let b = seal(&mut s, g.keys(), &hb());
    assert_eq!(g.open(NOW, src(), &b, &no_groups()), Err(Reject::FromSelf));
}

#[test]
fn wire_errors_are_counted_by_name() {
    let mut g = gate();
    let mut s = Sealer::new(ProxyId(7), 1);
    let good = seal(&mut s, g.keys(), &hb());
    let mut v = good.clone();
    v[0] = 9;
    assert_eq!(
        g.open(NOW, src(), &v, &no_groups()),
        Err(Reject::UnknownVersion)
    );
    let mut t = good.clone();
    t[1] = 0x99;
    assert_eq!(
        g.open(NOW, src(), &t, &no_groups()),
        Err(Reject::UnknownType)
    );
    assert_eq!(
        g.open(NOW, src(), &good[..good.len() - 1], &no_groups()),
        Err(Reject::BadLength)
    );
    assert_eq!(
        g.open(NOW, src(), &good[..2], &no_groups()),
        Err(Reject::Truncated)
    );
    assert_eq!(
        g.open(NOW, src(), &[0u8; 2000], &no_groups()),
        Err(Reject::Oversized)
    );
    let names: Vec<(&str, u64)> = g.counters().iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(
        names,
        vec![
            ("truncated", 1),
            ("oversized", 1),
            ("unknown_version", 1),
            ("unknown_type", 1),
            ("bad_length", 1)
        ]
    );
    // Names are unique and indices dense.
    for (i, r) in Reject::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
        assert!(Reject::ALL[..i].iter().all(|q| q.name() != r.name()));
    }
}

#[test]
fn valid_join_then_replay() {
    let mut g = gate();
    let groups = registry(2);
    let b = signed(&owner(1), &join(group_a(), NOW, 42));
    let r = g.open(NOW, src(), &b, &groups).unwrap();
    assert_eq!(r.target_request().map(|t| t.nonce), Some(42));
    assert_eq!(g.open(NOW, src(), &b, &groups), Err(Reject::NonceReplay));
    assert_eq!(g.counters().get(Reject::NonceReplay), 1);
    // Same nonce for another group is a different request.
    let b2 = signed(&owner(2), &join(group_b(), NOW, 42));
    assert!(g.open(NOW, src(), &b2, &groups).is_ok());
}

#[test]
fn join_for_one_group_cannot_be_used_for_another() {
    let mut g = gate();
    // A and B have the same owner: the key alone does not tell them apart.
    let groups = registry(1);
    let mut b = signed(&owner(1), &join(group_a(), NOW, 1));
    // Port 53 → 54: now it names group B.
    assert_eq!(b[4 + 5], 53);
    b[4 + 5] = 54;
    assert_eq!(
        crate::wire::decode_unauthenticated(&b).unwrap().1,
        join(group_b(), NOW, 1)
    );
    assert_eq!(g.open(NOW, src(), &b, &groups), Err(Reject::BadSignature));
    // Signed by A's owner, claiming B with another owner.
    let groups = registry(2);
    let b = signed(&owner(1), &join(group_b(), NOW, 2));
    assert_eq!(g.open(NOW, src(), &b, &groups), Err(Reject::BadSignature));
    assert_eq!(g.counters().get(Reject::BadSignature), 2);
}

#[test]
fn leave_cannot_be_replayed_as_join() {
    let mut g = gate();
    let groups = registry(2);
    let Message::Join(req) = join(group_a(), NOW, 5) else {
        unreachable!()
    };
    let leave = Message::Leave(TargetRequest {
        lifetime_s: 0,
        share: None,
        ..req
    });
    let mut b = signed(&owner(1), &leave);
    b[1] = MessageType::Join as u8;
    // A leave's body has no key share: as a join it is short.
    assert_eq!(g.open(NOW, src(), &b, &groups), Err(Reject::Truncated));
    // And a join relabelled as a leave has a lifetime (and a share).
    let mut j = signed(&owner(1), &Message::Join(req));
    j[1] = MessageType::Leave as u8;
    assert_eq!(g.open(NOW, src(), &j, &groups), Err(Reject::Malformed));
}

#[test]
fn the_key_share_is_covered_by_the_signature() {
    let mut g = gate();
    let groups = registry(2);
    let good = signed(&owner(1), &join(group_a(), NOW, 6));
    // The share is the body's last 32 bytes before the signature.
    let end = good.len() - SIGNATURE_LEN;
    for i in end - 32..end {
        let mut b = good.clone();
        b[i] ^= 0x40;
        assert_eq!(
            g.open(NOW, src(), &b, &groups),
            Err(Reject::BadSignature),
            "byte {i}"
        );
    }
    // The same datagram as version 1 (the old layout): refused by name.
    let mut v1 = good.clone();
    v1[0] = 1;
    assert_eq!(
        g.open(NOW, src(), &v1, &groups),
        Err(Reject::UnknownVersion)
    );
    assert!(g.open(NOW, src(), &good, &groups).is_ok());
}

#[test]
fn stale_future_and_boundary_timestamps() {
    let mut g = gate();
    let groups = registry(2);
    let at = |d: i64, n: u64| {
        signed(
            &owner(1),
            &join(group_a(), UnixTime(NOW.0.wrapping_add_signed(d)), n),
        )
    };
    assert_eq!(
        g.open(NOW, src(), &at(-31, 1), &groups),
        Err(Reject::TimestampTooOld)
    );
    assert_eq!(
        g.open(NOW, src(), &at(31, 2), &groups),
        Err(Reject::TimestampInFuture)
    );
    assert!(g.open(NOW, src(), &at(-30, 3), &groups).is_ok());
    assert!(g.open(NOW, src(), &at(30, 4), &groups).is_ok());
    // The accepted request becomes stale: replaying it later fails on the
    // timestamp (the nonce is no longer needed and is forgotten).
    let b = at(0, 5);
    assert!(g.open(NOW, src(), &b, &groups).is_ok());
    let later = UnixTime(NOW.0 + 31);
    assert_eq!(
        g.open(later, src(), &b, &groups),
        Err(Reject::TimestampTooOld)
    );
    g.nonces.expire(UnixTime(NOW.0 + 61));
    assert!(g.nonces().is_empty());
}

#[test]
fn unknown_and_withdrawn_groups() {
    let mut g = gate();
    let mut groups = registry(2);
    let other = GroupAddr::WholeIp(Ipv4Addr::new(198, 51, 100, 99));
    let b = signed(&owner(1), &join(other, NOW, 1));
    assert_eq!(g.open(NOW, src(), &b, &groups), Err(Reject::UnknownGroup));
    groups
        .apply(&GroupRegister {
            group: group_a(),
            options: GroupOptions::default(),
            withdrawn: true,
            serial: 2,
            owner_key: owner(1).verifying_key().to_bytes(),
        })
        .unwrap();
    let b = signed(&owner(1), &join(group_a(), NOW, 2));
    assert_eq!(g.open(NOW, src(), &b, &groups), Err(Reject::UnknownGroup));
}

#[test]
fn forged_join_does_not_burn_the_nonce() {
    let mut g = gate();
    let groups = registry(2);
    let forged = signed(&owner(9), &join(group_a(), NOW, 77));
    assert_eq!(
        g.open(NOW, src(), &forged, &groups),
        Err(Reject::BadSignature)
    );
    let mut flipped = signed(&owner(1), &join(group_a(), NOW, 77));
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert_eq!(
        g.open(NOW, src(), &flipped, &groups),
        Err(Reject::BadSignature)
    );
    assert!(g.nonces().is_empty());
    let genuine = signed(&owner(1), &join(group_a(), NOW, 77));
    assert!(g.open(NOW, src(), &genuine, &groups).is_ok());
}

#[test]
fn nonce_cache_is_bounded() {
    let mut g = Gate::new(
        GateConfig {
            nonce_cache_cap: 2,
            ..GateConfig::default()
        },
        ring(),
    );
    let groups = registry(2);
    for n in 0..2 {
        assert!(g
            .open(
                NOW,
                src(),
                &signed(&owner(1), &join(group_a(), NOW, n)),
                &groups
            )
            .is_ok());
    }
    let b = signed(&owner(1), &join(group_a(), NOW, 2));
    assert_eq!(g.open(NOW, src(), &b, &groups), Err(Reject::NonceCacheFull));
    // Once the first two expire there is room again.
    let later = UnixTime(NOW.0 + 31);
    let b = signed(&owner(1), &join(group_a(), later, 3));
    assert!(g.open(later, src(), &b, &groups).is_ok());
    assert_eq!(g.nonces().len(), 1);
}

#[test]
fn group_registration_needs_the_operator() {
    let mut g = gate();
    let op = owner(50);
    let reg = GroupRegister {
        group: group_a(),
        options: GroupOptions::default(),
        withdrawn: false,
        serial: 9,
        owner_key: owner(1).verifying_key().to_bytes(),
    };
    let mut buf = [0u8; MAX_DATAGRAM];
    let n = sign_group_register(&op, &reg, &mut buf).unwrap();
    let b = buf[..n].to_vec();
    assert_eq!(
        g.open(NOW, src(), &b, &no_groups()),
        Err(Reject::NoOperatorKey)
    );
    g.set_operator_key(Some(owner(51).verifying_key()));
    assert_eq!(
        g.open(NOW, src(), &b, &no_groups()),
        Err(Reject::BadOperatorSignature)
    );
    g.set_operator_key(Some(op.verifying_key()));
    assert_eq!(
        g.open(NOW, src(), &b, &no_groups()),
        Ok(Accepted::Operator(reg))
    );
    // The operator's key signing with the group-credential context (domain
    // separation): refused.
    let mut wrong = b.clone();
    let covered_len = wrong.len() - SIGNATURE_LEN;
    let mut m = GROUP_CONTEXT.to_vec();
    m.extend_from_slice(&wrong[..covered_len]);
    let sig = op.sign(&m).to_bytes();
    wrong[covered_len..].copy_from_slice(&sig);
    assert_eq!(
        g.open(NOW, src(), &wrong, &no_groups()),
        Err(Reject::BadOperatorSignature)
    );
    // Only target requests take group-credential signatures.
    assert_eq!(
        sign_target_request(&op, &Message::GroupRegister(reg), &mut buf),
        Err(SignError::NotTargetRequest)
    );
}

#[test]
fn replies_pass_unauthenticated() {
    let mut g = gate();
    let ack = Message::JoinAck(JoinAck {
        group: group_a(),
        target: TargetAddr {
            ip: Ipv4Addr::new(203, 0, 113, 5),
            port: 53,
        },
        nonce: 1,
        jap: ProxyId(3),
        lifetime_s: 60,
        session: None,
    });
    let mut buf = [0u8; MAX_DATAGRAM];
    let n = ack.emit(None, &mut buf).unwrap();
    assert_eq!(
        g.open(NOW, src(), &buf[..n], &no_groups()),
        Ok(Accepted::Reply(ack))
    );
}

#[test]
fn sealing_refuses_other_classes() {
    let mut s = Sealer::new(ProxyId(1), 1);
    let mut buf = [0u8; MAX_DATAGRAM];
    assert!(s
        .seal(&ring(), &join(group_a(), NOW, 1), src(), &mut buf)
        .is_err());
    // Nothing was consumed: the next proxy message still has seq 0.
    let n = s
        .seal(
            &ring(),
            &Message::RapQuery(RapQuery { group: group_a() }),
            src(),
            &mut buf,
        )
        .unwrap();
    let (f, _) = crate::wire::decode_unauthenticated(&buf[..n]).unwrap();
    assert_eq!(f.proxy.map(|h| h.seq), Some(0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For any request, target key, JAP secret and session, the JAP's
    /// session key (kept with the target) is the one the target derives
    /// from the ack; a JAP share changed in any byte gives another key (or
    /// none, if it lands on a point of small order).
    #[test]
    fn both_ends_of_the_exchange_derive_the_same_key(
        req in strategies::target_request(false),
        t in any::<[u8; 32]>(),
        jap_key in any::<[u8; 32]>(),
        id in 1..=u64::MAX,
        expires: u64,
        flip in 0usize..32,
    ) {
        let secret = SessionSecret::new(&jap_key);
        let target = EphemeralSecret::from_bytes(t);
        let req = TargetRequest { share: Some(target.share()), ..req };
        let (grant, key) = match secret.grant(&req, id, UnixTime(expires)) {
            Some(Ok(x)) => x,
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        let ack = JoinAck {
            group: req.group,
            target: req.target,
            nonce: req.nonce,
            jap: ProxyId(1),
            lifetime_s: 60,
            session: Some(grant),
        };
        let got = TargetSession::accept(EphemeralSecret::from_bytes(t), &ack);
        prop_assert_eq!(got.and_then(Result::ok).map(|s| s.key), Some(key));
        let mut bad = grant;
        bad.share.0[flip] ^= 1;
        let other = TargetSession::accept(
            EphemeralSecret::from_bytes(t),
            &JoinAck { session: Some(bad), ..ack },
        );
        prop_assert_ne!(other.and_then(Result::ok).map(|s| s.key), Some(key));
    }
}

proptest! {
    #[test]
    fn seal_open_roundtrip(m in strategies::proxy_message(), sender in 0u32..100, epoch: u32) {
        let mut g = gate();
        let mut s = Sealer::new(ProxyId(sender), epoch);
        let b = seal(&mut s, g.keys(), &m);
        match g.open(NOW, src(), &b, &no_groups()) {
            Ok(Accepted::Proxy { header, msg }) => {
                prop_assert_eq!(header.sender, ProxyId(sender));
                prop_assert_eq!(header.epoch, epoch);
                prop_assert_eq!(msg, m);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn signed_requests_roundtrip(req in strategies::target_request(false), nonce: u64) {
        let mut g = gate();
        let groups = registry(2);
        let req = TargetRequest { group: group_a(), timestamp: NOW, nonce, ..req };
        let b = signed(&owner(1), &Message::Refresh(req));
        prop_assert_eq!(g.open(NOW, src(), &b, &groups), Ok(Accepted::Target(Message::Refresh(req))));
    }

    #[test]
    fn gate_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut g = gate();
        let _ = g.open(NOW, src(), &b, &registry(2));
    }
}
