//! The golden tests' topology, shared by the test files and the `path`
//! fuzz target (which includes this file by path, so it uses nothing but
//! `pias_dataplane`).
//!
//! Proxies A (IAP, 192.0.2.10, cluster 1), B (RAP, 192.0.2.11, cluster 1),
//! C (JAP, 192.0.2.12, cluster 2); the gateway 192.0.2.1; a client
//! 203.0.113.100 and a target 203.0.113.5 behind it. Groups
//! 198.51.100.10:80/tcp (target port 8080) and 198.51.100.10:53/udp
//! (target port 5353), both with RAP B and JAP C.

use std::net::Ipv4Addr;
use std::sync::Arc;

use pias_dataplane::flow::{NatPorts, PortRange};
use pias_dataplane::jap_cache::JapCache;
use pias_dataplane::local::{LocalAddrs, PortAddrs};
use pias_dataplane::nat::{NatConfig, NatTable};
use pias_dataplane::neighbour::{Mac, Resolver, ResolverTiming};
use pias_dataplane::pipeline::{Path, PathConfig};
use pias_dataplane::tables::{GroupSpec, LocalTarget, RttEntry, StaticState, Tables};
use pias_dataplane::types::{ClusterId, GroupAddr, GroupOptions, GroupProto, JapLoad, ProxyId, ProxyInfo, TargetAddr};

pub const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
pub const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
pub const C: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
pub const TARGET: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
pub const AA: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
pub const MAC_GW: Mac = [0x02, 0, 0, 0, 0, 0x01];
pub const MAC_A: Mac = [0x02, 0, 0, 0, 0, 0x0a];
pub const MAC_B: Mac = [0x02, 0, 0, 0, 0, 0x0b];
pub const MAC_C: Mac = [0x02, 0, 0, 0, 0, 0x0c];
pub const CPORT: u16 = 40000;
pub const TPORT: u16 = 8080;
/// The UDP group's port and its target's.
pub const UPORT: u16 = 53;
pub const UTPORT: u16 = 5353;
/// A router on the client's side and one on the target's side.
pub const R_CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 254);
pub const R_TARGET: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
pub const NOW: u64 = 1_000_000_000;
/// The first NAT port of worker 0 of 1 (range 20000–29999).
pub const Q0: u16 = 20000;

pub fn group() -> GroupAddr {
    GroupAddr::Port { ip: AA, port: 80, proto: GroupProto::Tcp }
}

pub fn udp_group() -> GroupAddr {
    GroupAddr::Port { ip: AA, port: UPORT, proto: GroupProto::Udp }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The IAP.
    A,
    /// The RAP.
    B,
    /// The JAP.
    C,
}

/// The Path of proxy `who` (worker `w` of `workers`), with the view of the
/// group that proxy has: A knows the RAP, B knows the JAPs, C the target.
pub fn proxy<H>(who: Who, w: u16, workers: u16, target_alive: bool) -> Path<H> {
    proxy_with(who, w, workers, target_alive, PathConfig::default())
}

pub fn proxy_with<H>(who: Who, w: u16, workers: u16, target_alive: bool, cfg: PathConfig) -> Path<H> {
    let (me, ip, mac) = match who {
        Who::A => (1, A, MAC_A),
        Who::B => (2, B, MAC_B),
        Who::C => (3, C, MAC_C),
    };
    let mut st = StaticState::new(ProxyId(me));
    st.anycast = vec!["198.51.100.0/24".parse().unwrap()];
    st.proxies = vec![
        ProxyInfo { id: ProxyId(1), addr: A, cluster: ClusterId(1), up: true },
        ProxyInfo { id: ProxyId(2), addr: B, cluster: ClusterId(1), up: true },
        ProxyInfo { id: ProxyId(3), addr: C, cluster: ClusterId(2), up: true },
    ];
    st.rtt = vec![RttEntry { a: ClusterId(1), b: ClusterId(2), rtt_us: 5000 }];
    st.groups = [(group(), TPORT), (udp_group(), UTPORT)]
        .into_iter()
        .map(|(addr, tport)| {
            let mut g = GroupSpec::new(addr, GroupOptions::default());
            g.raps = vec![ProxyId(2)];
            if who == Who::B {
                g.japs = vec![JapLoad { jap: ProxyId(3), approx_targets: 1, overloaded: false, weight: 0 }];
            }
            if who == Who::C {
                g.targets = vec![LocalTarget { addr: TargetAddr { ip: TARGET, port: tport }, alive: target_alive, weight: 1 }];
            }
            g
        })
        .collect();
    let tables = Arc::new(Tables::build(&st).expect("tables"));
    let local = Arc::new(LocalAddrs {
        ports: vec![PortAddrs { mac, ip, subnet: format!("{ip}/24").parse().unwrap(), gateway: GW, exception: false }],
        anycast: st.anycast.clone(),
    });
    let ports = NatPorts::new(PortRange { lo: 20000, hi: 29999 }, workers).unwrap();
    let nat = NatTable::new(NatConfig { ports: ports.range_of(w).unwrap(), max_flows: 1024, ..NatConfig::default() }).unwrap();
    let mut p = Path::new(w, workers, cfg, local, tables, JapCache::new(64), nat, ports);
    let mut r = Resolver::new(ResolverTiming::from_refresh_secs(30));
    for (n, m) in [(GW, MAC_GW), (A, MAC_A), (B, MAC_B), (C, MAC_C)] {
        r.pin(0, n, m);
    }
    p.neigh = Arc::new(r.take_snapshot().unwrap());
    p
}
