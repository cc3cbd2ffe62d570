#![no_main]
//! Target requests and replies: body round trip, then whole datagrams
//! through the gate (signatures and session MACs pass under cfg(fuzzing))
//! against a registry with a few groups and one session, exercising the
//! timestamp, nonce, session expiry and session counter logic.
//!
//! Input: `[clock byte][datagram…]` after a first byte that selects the
//! body round-trip type.

#[path = "common.rs"]
mod common;

use core::net::{Ipv4Addr, SocketAddrV4};
use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use pias_control::auth::{Accepted, Gate, GateConfig, KeyRing, SessionState, Sessions};
use pias_control::groups::GroupRegistry;
use pias_control::wire::{GroupRegister, KeyId, MessageType};
use pias_control::UnixTime;
use pias_dataplane::types::{GroupAddr, GroupOptions, GroupProto, TargetAddr};

/// One session: group 198.51.100.1:53/udp, target 203.0.113.5:53, id 1,
/// counter 5, ending 30 s after the base clock.
struct OneSession(SessionState);

impl Sessions for OneSession {
    fn session(&self, group: &GroupAddr, target: &TargetAddr) -> Option<&SessionState> {
        let g = GroupAddr::Port {
            ip: Ipv4Addr::new(198, 51, 100, 1),
            port: 53,
            proto: GroupProto::Udp,
        };
        let t = TargetAddr {
            ip: Ipv4Addr::new(203, 0, 113, 5),
            port: 53,
        };
        (*group == g && *target == t).then_some(&self.0)
    }
}

const TYPES: &[MessageType] = &[
    MessageType::Join,
    MessageType::Refresh,
    MessageType::Leave,
    MessageType::SessionRefresh,
    MessageType::JoinAck,
    MessageType::JoinNack,
];

/// Built once: deriving keys per input would dominate the run time.
fn registry() -> &'static GroupRegistry {
    static REGISTRY: OnceLock<GroupRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut groups = GroupRegistry::new(8);
        for port in [0u16, 53, 80] {
            let group = if port == 0 {
                GroupAddr::WholeIp(Ipv4Addr::new(198, 51, 100, 1))
            } else {
                GroupAddr::Port {
                    ip: Ipv4Addr::new(198, 51, 100, 1),
                    port,
                    proto: GroupProto::Udp,
                }
            };
            let _ = groups.apply(&GroupRegister {
                group,
                options: GroupOptions::default(),
                withdrawn: false,
                serial: 1,
                owner_key: SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes(),
            });
        }
        groups
    })
}

fuzz_target!(|data: &[u8]| {
    common::body_roundtrip(TYPES, data);
    let groups = registry();
    let mut gate = Gate::new(
        GateConfig {
            nonce_cache_cap: 4,
            ..GateConfig::default()
        },
        KeyRing::new(KeyId(0), &[1; 32]).expect("key"),
    );
    let src = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 5), 40000);
    // The same datagram at several clock readings, twice each: fresh,
    // replayed, stale.
    let Some((&clock, dgram)) = data.get(1..).and_then(|d| d.split_first()) else {
        return;
    };
    let sessions = OneSession(SessionState {
        id: 1,
        key: [7; 16],
        counter: 5,
        expires: UnixTime(1_700_000_030),
    });
    for dt in [0u64, 0, u64::from(clock), 60] {
        let now = UnixTime(1_700_000_000 + dt);
        match gate.open_with_sessions(now, src, dgram, groups, &sessions) {
            Ok(Accepted::Target(_)) => assert!(gate.nonces().len() <= 4),
            Ok(Accepted::Session(r)) => {
                assert!(r.session == 1 && r.counter > 5 && now <= sessions.0.expires)
            }
            _ => {}
        }
    }
});
