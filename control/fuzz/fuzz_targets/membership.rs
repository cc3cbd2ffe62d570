#![no_main]
//! Membership bodies (Hello, Heartbeat, Flood, FloodAck): round trip, then a
//! sequence of them driven through the membership state machine.
//!
//! Input: chunks of `[len][sender][time step][type][body…]` (len counts the
//! bytes after itself).

#[path = "common.rs"]
mod common;

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use libfuzzer_sys::fuzz_target;
use pias_control::membership::{Config, Membership};
use pias_control::wire::{Message, MessageType};
use pias_control::Instant;
use pias_dataplane::types::{ClusterId, ProxyId};

const TYPES: &[MessageType] = &[
    MessageType::Hello,
    MessageType::Heartbeat,
    MessageType::Flood,
    MessageType::FloodAck,
];

fuzz_target!(|data: &[u8]| {
    common::body_roundtrip(TYPES, data);

    let mut cfg = Config::new(ProxyId(1), Ipv4Addr::new(192, 0, 2, 1), ClusterId(1), 1);
    cfg.max_proxies = 64;
    cfg.max_neighbours = 16;
    cfg.refresh_interval = Duration::from_secs(5);
    cfg.max_age = Duration::from_secs(20);
    let mut m = Membership::new(cfg, Instant::ZERO).expect("config");
    let mut now = Instant::ZERO;
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        rest = next;
        let [sender, step, sel, body @ ..] = chunk else {
            break;
        };
        now += Duration::from_millis(u64::from(*step) * 50);
        let ty = TYPES[usize::from(*sel) % TYPES.len()];
        let from = ProxyId(u32::from(*sender % 8));
        let src = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, *sender % 8), 7450);
        if let Ok(msg) = Message::parse_body(ty, body) {
            m.handle(now, from, src, &msg);
        }
        if m.poll_timeout().is_some_and(|t| t <= now) {
            m.handle_timeout(now);
        }
        while m.poll_transmit().is_some() {}
        while m.poll_event().is_some() {}
        assert!(m.database_len() <= 64);
        assert!(m.neighbours().count() <= 16);
        assert!(m.is_up(ProxyId(1)), "a proxy never believes itself down");
        assert!(m.live().windows(2).all(|w| w[0] < w[1]));
    }
});
