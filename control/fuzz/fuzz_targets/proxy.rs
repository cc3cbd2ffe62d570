#![no_main]
//! One proxy's whole control plane (`ProxyControl`) fed a sequence of
//! datagrams, dataplane events and clock steps. Under cfg(fuzzing) MACs and
//! signatures pass, so the fuzzer reaches every role machine (JAP, RAP,
//! IAP, prober, flooded lists, membership) with arbitrary bodies. Checks:
//! no panic, every table it publishes passes the dataplane's validation,
//! the transmit queue stays bounded.
//!
//! Input: chunks of `[op][len][bytes…]`.

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use libfuzzer_sys::fuzz_target;
use pias_control::auth::KeyRing;
use pias_control::membership;
use pias_control::proxy::{ProxyConfig, ProxyControl};
use pias_control::wire::{GroupRegister, KeyId, MAX_DATAGRAM};
use pias_control::{Instant, UnixTime};
use pias_dataplane::iface::Up;
use pias_dataplane::types::{ClusterId, GroupAddr, GroupOptions, GroupProto, ProxyId, TargetAddr};

fn group(b: u8) -> GroupAddr {
    GroupAddr::Port {
        ip: Ipv4Addr::new(198, 51, 100, 1 + b % 4),
        port: 53,
        proto: GroupProto::Udp,
    }
}

fuzz_target!(|data: &[u8]| {
    let m = membership::Config::new(ProxyId(1), Ipv4Addr::new(192, 0, 2, 1), ClusterId(0), 1);
    let mut cfg = ProxyConfig::new(m, vec!["198.51.100.0/24".parse().expect("prefix")]);
    cfg.max_queue = 4096;
    let keys = KeyRing::new(KeyId(0), &[1; 32]).expect("key");
    let mut now = Instant::ZERO;
    let Ok(mut cp) = ProxyControl::new(cfg, keys, now) else {
        return;
    };
    for b in 0..4u8 {
        cp.apply_registration(
            now,
            &GroupRegister {
                group: group(b),
                options: GroupOptions {
                    rapless: b == 3,
                    affinity: b == 2,
                    ..GroupOptions::default()
                },
                withdrawn: false,
                serial: 1,
                owner_key: ed25519_dalek::SigningKey::from_bytes(&[9; 32])
                    .verifying_key()
                    .to_bytes(),
            },
        );
    }
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut rest = data;
    while rest.len() >= 2 {
        let (op, len) = (rest[0], usize::from(rest[1]).min(rest.len() - 2));
        let bytes = &rest[2..2 + len];
        rest = &rest[2 + len..];
        let b = bytes.first().copied().unwrap_or(0);
        match op % 6 {
            0 | 1 => {
                let src = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2 + op % 3), 7450);
                cp.handle_datagram(now, UnixTime(1_700_000_000), src, bytes);
            }
            2 => {
                now = now + Duration::from_millis(u64::from(b) * 40);
                cp.handle_timeout(now);
            }
            3 => cp.handle_event(
                now,
                &Up::IapMiss {
                    group: group(b),
                    rap: Some(ProxyId(u32::from(b % 5))),
                },
            ),
            4 => cp.handle_event(
                now,
                &Up::RapChose {
                    group: group(b),
                    jap: ProxyId(u32::from(b % 5)),
                    iap: Ipv4Addr::new(192, 0, 2, b % 4),
                },
            ),
            _ => cp.handle_event(
                now,
                &Up::TargetSilent {
                    group: group(b),
                    target: TargetAddr {
                        ip: Ipv4Addr::new(203, 0, 113, b),
                        port: 53,
                    },
                },
            ),
        }
        while let Some(p) = cp.poll_probe() {
            cp.handle_probe_result(now, p.id, b % 2 == 0);
        }
        while cp.poll_update().is_some() {}
        while cp.poll_transmit(&mut buf).is_some() {}
        assert_eq!(
            cp.counters().tables_invalid,
            0,
            "{:?}",
            cp.last_tables_error()
        );
    }
});
