//! Sequences of NAT operations (create, lookups both ways, peeks, time
//! jumps, amortised expiry) on a small table with a small port range, so
//! that it fills, exhausts ports and expires often.
//!
//! Input: byte 0 sizes the port range (1–32 ports); then 4-byte operations
//! `op, a, b, c`. Checks, after every operation: the table never holds more
//! than its capacity; a created or found mapping uses a port of the range,
//! is found again both ways by the peeks; a live key keeps its mapping (one
//! flow, one `q`); peeks change nothing; and at the end every entry is
//! unique both ways, and expiry far in the future empties the table.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use pias_dataplane::flow::{FlowKey, PortRange};
use pias_dataplane::nat::{NatConfig, NatError, NatTable};
use pias_dataplane::types::TargetAddr;
use pias_dataplane::wire::TcpFlags;

const MAX: usize = 12;

fuzz_target!(|data: &[u8]| {
    let Some((&size, ops)) = data.split_first() else { return };
    let lo = 20000;
    let ports = PortRange::new(lo, lo + u16::from(size % 32)).unwrap();
    let cfg = NatConfig {
        udp_idle: 300,
        tcp_established: 7440,
        tcp_transitory: 240,
        tcp_rst_grace: 30,
        icmp_idle: 60,
        max_flows: MAX,
        ports,
        port_tries: 4,
        hash_seed: 7,
        // Sometimes one port of the range is reserved (piasd's control port).
        reserved_port: (size & 0x40 != 0).then_some(lo + 1),
    };
    let mut t = NatTable::new(cfg).unwrap();
    let mut now: u64 = 1;
    // The mapping each key last had: while it is live, it must not change.
    let mut known: HashMap<FlowKey, (TargetAddr, u16)> = HashMap::new();
    for op in ops.chunks_exact(4) {
        let (code, a, b, c) = (op[0], op[1], op[2], op[3]);
        let proto = [6u8, 17, 1][usize::from(c % 3)];
        let key = FlowKey::new(Ipv4Addr::new(192, 0, 2, a % 6), 1000 + u16::from(b % 4), Ipv4Addr::new(198, 51, 100, 10), 80, proto);
        let target = TargetAddr { ip: Ipv4Addr::new(203, 0, 113, 1 + (c >> 4) % 2), port: 8080 };
        let flags = (proto == 6).then(|| TcpFlags::from_bits(b >> 2));
        match code % 8 {
            0 | 1 => {
                let live = t.peek_forward(&key, now);
                match t.create(&key, target, now, flags) {
                    Ok(h) => {
                        assert!(ports.contains(h.nat_port));
                        assert_ne!(Some(h.nat_port), t.config().reserved_port, "the reserved port was handed out");
                        if let Some(l) = live {
                            assert!(!h.created, "a second entry for a live flow");
                            assert_eq!((l.target, l.nat_port), (h.target, h.nat_port), "a live flow changed its mapping");
                        } else {
                            assert_eq!(h.target, target);
                        }
                        found_both_ways(&t, &key, h.target, h.nat_port, now);
                        known.insert(key, (h.target, h.nat_port));
                    }
                    Err(NatError::TableFull) => assert!(live.is_none()),
                    Err(NatError::PortsExhausted) => assert!(live.is_none()),
                }
            }
            2 => {
                if let Some(h) = t.lookup_forward(&key, now, flags) {
                    assert_eq!(known.get(&key), Some(&(h.target, h.nat_port)));
                    found_both_ways(&t, &key, h.target, h.nat_port, now);
                }
            }
            3 => {
                if let Some(&(tg, q)) = known.get(&key) {
                    // Once the key's mapping expired, its port may serve
                    // another key: only a live mapping must answer for it.
                    let mine = t.peek_forward(&key, now).is_some_and(|h| (h.target, h.nat_port) == (tg, q));
                    if let Some(r) = t.lookup_reverse(tg, q, key.proto, now, flags) {
                        if mine {
                            assert_eq!(r.key, key);
                        }
                    } else {
                        assert!(!mine, "a live mapping not found by its reverse key");
                    }
                }
            }
            4 => now += u64::from(a) * u64::from(b),
            5 => {
                t.expire(now, usize::from(c));
            }
            6 => {
                let before: Vec<_> = t.flows().collect();
                let _ = t.peek_forward(&key, now);
                if let Some(&(tg, q)) = known.get(&key) {
                    let _ = t.peek_reverse(tg, q, key.proto, now);
                }
                assert_eq!(before, t.flows().collect::<Vec<_>>(), "a peek changed the table");
            }
            _ => now += 1,
        }
        assert!(t.len() <= MAX);
    }
    let mut fwd = HashSet::new();
    let mut rev = HashSet::new();
    for f in t.flows() {
        assert!(fwd.insert(f.key), "a key twice");
        assert!(rev.insert((f.target, f.nat_port, f.key.proto)), "a reverse key twice");
        assert!(ports.contains(f.nat_port));
        if f.expires_at > now {
            found_both_ways(&t, &f.key, f.target, f.nat_port, now);
        }
    }
    t.expire(u64::MAX / 2, usize::MAX);
    assert!(t.is_empty(), "expiry left entries");
});

fn found_both_ways(t: &NatTable, key: &FlowKey, target: TargetAddr, q: u16, now: u64) {
    let f = t.peek_forward(key, now).expect("peek_forward");
    assert_eq!((f.target, f.nat_port), (target, q));
    assert_eq!(t.peek_reverse(target, q, key.proto, now).expect("peek_reverse").key, *key);
}
