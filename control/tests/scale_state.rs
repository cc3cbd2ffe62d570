//! How much one proxy holds when it knows N proxies (PROTOCOL.md §15:
//! "every proxy knows every proxy"): one `ProxyControl` is flooded with
//! N Up statements (as from a neighbour, 48 per datagram), its tables are
//! published, and the resident memory it grew by is printed. A simulator of
//! N proxies holds N such copies, so this is what bounds it.
//!
//! `cargo test --release -p pias-control --test scale_state -- --ignored --nocapture`

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use pias_control::auth::{KeyRing, Sealer};
use pias_control::membership;
use pias_control::proxy::{ProxyConfig, ProxyControl};
use pias_control::wire::{
    Flood, KeyId, Lsa, Message, ProxyState, DEFAULT_CONTROL_PORT, MAX_DATAGRAM, MAX_FLOOD_ENTRIES,
};
use pias_control::{Instant, UnixTime};
use pias_dataplane::types::{ClusterId, ProxyId};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// One proxy that learns `n` others; returns it, the KiB the process grew
/// by, and how many proxies it holds live. (Kept alive by the caller, so a
/// later measurement does not reuse its freed memory.)
fn state_for(n: u32) -> (ProxyControl, u64, usize) {
    let keys = || KeyRing::new(KeyId(1), &[0x42; 32]).expect("key");
    let m = membership::Config::new(ProxyId(1), Ipv4Addr::new(10, 0, 0, 1), ClusterId(0), 1);
    let cfg = ProxyConfig::new(m, vec!["198.51.100.0/24".parse().expect("prefix")]);
    let before = rss_kib();
    let mut now = Instant::from_nanos(1);
    let mut cp = ProxyControl::new(cfg, keys(), now).expect("proxy");
    let mut sealer = Sealer::new(ProxyId(2), 1);
    let src = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), DEFAULT_CONTROL_PORT);
    let mut buf = [0u8; MAX_DATAGRAM];
    let subjects: Vec<u32> = (2..n + 2).collect();
    for chunk in subjects.chunks(MAX_FLOOD_ENTRIES) {
        let entries = chunk
            .iter()
            .map(|&s| Lsa {
                subject: ProxyId(s),
                origin: ProxyId(s),
                addr: Ipv4Addr::from_bits(0x0a00_0000 + s),
                // Clusters of 3, as the paper's POPs.
                cluster: ClusterId((s / 3) as u16),
                state: ProxyState::Up,
                incarnation: 1,
                version: 1,
            })
            .collect();
        let len = sealer
            .seal(&keys(), &Message::Flood(Flood { entries }), src, &mut buf)
            .expect("seal");
        now += Duration::from_micros(10);
        cp.handle_datagram(now, UnixTime(1_700_000_000), src, &buf[..len]);
        while cp.poll_transmit(&mut buf).is_some() {}
        while cp.poll_update().is_some() {}
    }
    // Let the tables be rebuilt and published with every proxy in them.
    let end = now + Duration::from_secs(2);
    while let Some(t) = cp.poll_timeout() {
        if t > end {
            break;
        }
        cp.handle_timeout(t);
        while cp.poll_transmit(&mut buf).is_some() {}
        while cp.poll_update().is_some() {}
    }
    let live = cp.membership().live().len();
    let grown = rss_kib().saturating_sub(before);
    (cp, grown, live)
}

#[test]
#[ignore = "scale measurement; run in release with --nocapture"]
fn state_of_one_proxy_that_knows_n_proxies() {
    let mut keep = Vec::new();
    for n in [1_000u32, 5_000, 20_000] {
        let (cp, kib, live) = state_for(n);
        keep.push(cp);
        println!(
            "knows {n:>6} proxies: {live} live, RSS grew {:.1} MiB ({:.0} B per known proxy); \
             a simulator of {n} such proxies needs ≥ {:.1} GiB",
            kib as f64 / 1024.0,
            kib as f64 * 1024.0 / f64::from(n),
            kib as f64 * f64::from(n) / (1024.0 * 1024.0)
        );
        assert!(live > 0);
    }
}

/// The bound the simulator's size rests on (bench/RESULTS.md, issue 5): a
/// proxy that knows 2 000 others holds well under 2 KiB per known proxy
/// (measured ≈ 350 B at 5 000 and 20 000). Short enough for CI.
#[test]
fn state_per_known_proxy_stays_small() {
    let (cp, kib, live) = state_for(2_000);
    assert_eq!(live, 2_001);
    assert!(
        kib * 1024 < 2 * 1024 * 2_000,
        "{kib} KiB for 2 000 known proxies"
    );
    drop(cp);
}
