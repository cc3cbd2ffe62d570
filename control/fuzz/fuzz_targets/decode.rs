#![no_main]
//! The whole receive path: `Gate::open` (MAC and signatures pass under
//! cfg(fuzzing)), replay windows, nonce cache and the group registry, fed a
//! sequence of datagrams; plus the canonical-encoding check on each.
//!
//! Input: chunks of `[len hi][len lo][datagram…]`.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pias_control::auth::{Accepted, Gate, GateConfig, KeyRing};
use pias_control::groups::GroupRegistry;
use pias_control::wire::{decode_unauthenticated, KeyId, MAX_DATAGRAM};
use pias_control::UnixTime;
use pias_dataplane::types::ProxyId;

fuzz_target!(|data: &[u8]| {
    let mut gate = Gate::new(
        GateConfig {
            me: Some(ProxyId(1)),
            nonce_cache_cap: 8,
            replay_senders_cap: 4,
            ..GateConfig::default()
        },
        KeyRing::new(KeyId(0), &[1; 32]).expect("key"),
    );
    static OPERATOR: OnceLock<ed25519_dalek::VerifyingKey> = OnceLock::new();
    gate.set_operator_key(Some(*OPERATOR.get_or_init(|| {
        ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key()
    })));
    let mut groups = GroupRegistry::new(4);
    let src = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 7450);
    let mut rest = data;
    let mut n = 0u64;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let dgram = &rest[2..2 + len];
        rest = &rest[2 + len..];
        n += 1;

        if let Ok((frame, msg)) = decode_unauthenticated(dgram) {
            let mut buf = [0u8; MAX_DATAGRAM];
            let out = msg.emit(frame.proxy.as_ref(), &mut buf).expect("re-emit");
            assert_eq!(
                &buf[..out - frame.trailer.len()],
                frame.covered,
                "canonical"
            );
        }
        let before = gate.counters().accepted() + gate.counters().rejected_total();
        match gate.open(UnixTime(1_700_000_000 + n), src, dgram, &groups) {
            Ok(Accepted::Operator(reg)) => {
                let _ = groups.apply(&reg);
                assert!(groups.len() <= 4);
            }
            Ok(Accepted::Proxy { header, .. }) => assert_ne!(header.sender, ProxyId(1)),
            _ => {}
        }
        let after = gate.counters().accepted() + gate.counters().rejected_total();
        assert_eq!(after, before + 1, "every datagram counted once");
        assert!(gate.replay_mut().len() <= 4);
        assert!(gate.nonces().len() <= 8);
    }
});
