//! Benchmark scenarios of the PIAS packet path (issue 4, "Benchmarks"):
//! a [`Path`] set up as one proxy of the golden tests' topology (A the IAP,
//! B the RAP, C the JAP; `dataplane/tests/golden.rs`), and a traffic
//! generator that writes that proxy's input frames for any number of flows.
//!
//! Shared by `pathfwd` (DPDK), `path-callgrind` (no EAL) and the criterion
//! bench `dataplane/benches/path.rs` (which includes this file by path), so
//! it uses nothing but `pias_dataplane` and std.
//!
//! # Topology
//!
//! Proxies A 192.0.2.10 (cluster 1), B 192.0.2.11 (cluster 1), C 192.0.2.12
//! (cluster 2), gateway 192.0.2.1, all on one /24. `groups` groups on the
//! anycast address 198.51.100.10, group `g` at port `1000 + g`, TCP for even
//! `g`, UDP for odd `g` (the traffic is half TCP, half UDP), every group with
//! RAP B; at B every group has JAP C; at C every group has
//! `targets_per_group` live targets of its own (203.0.113.0/24, off-link:
//! behind the gateway). A NAT port is unique per target, so C holds at most
//! `targets × 64 512` flows: the defaults (256 groups × 4 targets) allow
//! 66 M.
//!
//! # Flows
//!
//! Flow `f` is client `10.0.0.0 + (f >> 8)`, port `1024 + (f & 255)`, to
//! group `f % groups`. A traffic of `n` flows visits them in a fixed
//! pseudo-random order (`f = j × step mod n`, `step` coprime to `n`), so
//! consecutive packets hit unrelated NAT entries, as real traffic would;
//! one cycle holds every flow once. `jap-new` numbers flows with a counter
//! that never repeats: every packet opens a new flow.
//!
//! # Frames (all IPv4 checksums and TCP/UDP checksums valid)
//!
//! | mode | proxy | frame | bytes |
//! |---|---|---|---|
//! | `iap-miss` | A, empty JAP cache | client → AA:g (segment 1, leaves as 2) | 60 |
//! | `iap-cached` | A, cache filled with C | client → AA:g (segment 1, leaves as 7) | 60 |
//! | `rap` | B | IP-IP A → B, inner client → AA:g (segment 2, leaves as 3) | 80 |
//! | `jap` | C, flows pre-created | IP-IP A → C, inner client → AA:g (segment 7, leaves as 4) | 80 |
//! | `jap-new` | C, empty NAT | as `jap`, TCP flows open with a SYN | 80 |
//! | `reverse` | C, flows pre-created | target AT:r → C:q (segment 5, leaves as 6) | 60 |
//!
//! Inner packets: 46 bytes of IPv4 (TCP ACK with 6 bytes of payload, or
//! UDP with 18), DF set, TTL 64 from the client (63 at B, 62 at C as the
//! previous proxies decremented it).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use pias_dataplane::flow::{FlowKey, NatPorts, PortRange};
use pias_dataplane::jap_cache::JapCache;
use pias_dataplane::local::{LocalAddrs, PortAddrs};
use pias_dataplane::nat::{NatConfig, NatTable, SECOND};
use pias_dataplane::neighbour::{Mac, Nanos, Resolver, ResolverTiming};
use pias_dataplane::packet::VecBuf;
use pias_dataplane::pipeline::{Action, Path, PathConfig, PathStats};
use pias_dataplane::tables::{GroupSpec, LocalTarget, RttEntry, StaticState, Tables};
use pias_dataplane::types::{ClusterId, GroupAddr, GroupOptions, GroupProto, JapLoad, ProxyId, ProxyInfo, TargetAddr};

/// The gateway.
pub const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// Proxy A (the IAP).
pub const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// Proxy B (the RAP).
pub const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
/// Proxy C (the JAP).
pub const C: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);
/// The anycast address of every group.
pub const AA: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// Gateway MAC.
pub const MAC_GW: Mac = [0x02, 0, 0, 0, 0, 0x01];
/// A's MAC.
pub const MAC_A: Mac = [0x02, 0, 0, 0, 0, 0x0a];
/// B's MAC.
pub const MAC_B: Mac = [0x02, 0, 0, 0, 0, 0x0b];
/// C's MAC.
pub const MAC_C: Mac = [0x02, 0, 0, 0, 0, 0x0c];

/// First port of the groups (group `g` is at `GROUP_PORT0 + g`).
pub const GROUP_PORT0: u16 = 1000;
/// The NAT port range of the (single) worker.
pub const NAT_PORTS: PortRange = PortRange { lo: 1024, hi: 65535 };

/// Which stage the traffic exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// IAP with an empty JAP cache: segment 1 → 2 (every packet a miss).
    IapMiss,
    /// IAP with the cache filled: segment 1 → 7.
    IapCached,
    /// RAP: segment 2 → 3.
    Rap,
    /// JAP, every flow already in the NAT table: segment 7 → 4.
    Jap,
    /// JAP, every packet a new flow: segment 7 → 4 with a NAT create.
    JapNew,
    /// Reverse NAT, every flow in the table: segment 5 → 6.
    Reverse,
}

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 6] = [Mode::IapMiss, Mode::IapCached, Mode::Rap, Mode::Jap, Mode::JapNew, Mode::Reverse];

    /// The name used on command lines and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::IapMiss => "iap-miss",
            Mode::IapCached => "iap-cached",
            Mode::Rap => "rap",
            Mode::Jap => "jap",
            Mode::JapNew => "jap-new",
            Mode::Reverse => "reverse",
        }
    }

    /// The mode called `s`.
    pub fn from_name(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Length of every input frame of the mode.
    pub const fn frame_len(self) -> usize {
        match self {
            Mode::IapMiss | Mode::IapCached | Mode::Reverse => 14 + INNER_LEN,
            Mode::Rap | Mode::Jap | Mode::JapNew => 14 + 20 + INNER_LEN,
        }
    }

    /// The proxy that receives the mode's traffic.
    fn proxy(self) -> Who {
        match self {
            Mode::IapMiss | Mode::IapCached => Who::A,
            Mode::Rap => Who::B,
            Mode::Jap | Mode::JapNew | Mode::Reverse => Who::C,
        }
    }

    /// True when the mode's flows must exist in the NAT table first.
    pub const fn needs_flows(self) -> bool {
        matches!(self, Mode::Jap | Mode::Reverse)
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Inner IPv4 packet length (TCP: 20 + 20 + 6; UDP: 20 + 8 + 18).
const INNER_LEN: usize = 46;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    A,
    B,
    C,
}

/// What to build.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// The stage and its traffic.
    pub mode: Mode,
    /// Distinct flows in the traffic (ignored by `jap-new`: every packet is
    /// a new flow).
    pub flows: u64,
    /// Groups (half TCP, half UDP).
    pub groups: u32,
    /// Live targets per group at the JAP.
    pub targets_per_group: u32,
    /// NAT table capacity; 0 picks one (the flows, at least 1 024; 8 Mi
    /// for `jap-new`).
    pub nat_capacity: usize,
    /// Replaces every NAT idle timeout (e.g. 1 s for `jap-new`, so that
    /// creations and expiries balance within a short run); `None` keeps the
    /// RFC defaults.
    pub nat_idle: Option<Nanos>,
}

impl Config {
    /// The defaults for `mode` with `flows` flows.
    pub fn new(mode: Mode, flows: u64) -> Config {
        Config { mode, flows: flows.max(1), groups: 256, targets_per_group: 4, nat_capacity: 0, nat_idle: None }
    }

    fn nat_capacity(&self) -> usize {
        match (self.nat_capacity, self.mode) {
            (0, Mode::JapNew) => 8 << 20,
            // Exactly the flows: 10 M then take the 588 MB the NAT module
            // documents (a margin would cross a power of two of its index).
            (0, _) => (self.flows as usize).max(1024),
            (n, _) => n,
        }
    }
}

/// Group `g`: `AA:(1000 + g)`, TCP when `g` is even.
pub fn group(g: u32) -> GroupAddr {
    let proto = if g % 2 == 0 { GroupProto::Tcp } else { GroupProto::Udp };
    GroupAddr::Port { ip: AA, port: GROUP_PORT0 + g as u16, proto }
}

/// Target `k` (group `k / targets_per_group`): unique address and port.
pub fn target(k: u32) -> TargetAddr {
    TargetAddr { ip: Ipv4Addr::new(203, 0, 113, 1 + (k % 250) as u8), port: 8000 + (k / 250) as u16 }
}

/// Client address and port of flow `f`.
#[inline]
pub fn client(f: u64) -> (u32, u16) {
    (0x0A00_0000 | ((f >> 8) as u32 & 0x00FF_FFFF), 1024 + (f & 0xFF) as u16)
}

/// The forward key of flow `f` (as the client sent it).
pub fn flow_key(f: u64, groups: u32) -> FlowKey {
    let (ip, port) = client(f);
    let g = (f % u64::from(groups)) as u32;
    let GroupAddr::Port { port: gport, proto, .. } = group(g) else { unreachable!() };
    FlowKey::new(Ipv4Addr::from_bits(ip), port, AA, gport, proto.ip_proto())
}

/// The Path of the mode's proxy, with static tables, pinned neighbours and
/// an empty NAT table and JAP cache.
pub fn build_path(cfg: &Config) -> Path {
    let who = cfg.mode.proxy();
    let (me, ip, mac) = match who {
        Who::A => (1, A, MAC_A),
        Who::B => (2, B, MAC_B),
        Who::C => (3, C, MAC_C),
    };
    let mut st = StaticState::new(ProxyId(me));
    st.anycast = vec!["198.51.100.0/24".parse().expect("prefix")];
    st.proxies = vec![
        ProxyInfo { id: ProxyId(1), addr: A, cluster: ClusterId(1), up: true },
        ProxyInfo { id: ProxyId(2), addr: B, cluster: ClusterId(1), up: true },
        ProxyInfo { id: ProxyId(3), addr: C, cluster: ClusterId(2), up: true },
    ];
    st.rtt = vec![RttEntry { a: ClusterId(1), b: ClusterId(2), rtt_us: 5000 }];
    let tpg = cfg.targets_per_group.max(1);
    st.groups = (0..cfg.groups.max(1))
        .map(|g| {
            let mut s = GroupSpec::new(group(g), GroupOptions::default());
            s.raps = vec![ProxyId(2)];
            if who == Who::B {
                s.japs = vec![JapLoad { jap: ProxyId(3), approx_targets: tpg, overloaded: false, weight: 0 }];
            }
            if who == Who::C {
                s.targets = (0..tpg).map(|t| LocalTarget { addr: target(g * tpg + t), alive: true, weight: 1 }).collect();
            }
            s
        })
        .collect();
    let tables = Arc::new(Tables::build(&st).expect("tables"));
    let local = Arc::new(LocalAddrs {
        ports: vec![PortAddrs { mac, ip, subnet: format!("{ip}/24").parse().expect("subnet"), gateway: GW, exception: false }],
        anycast: st.anycast.clone(),
    });
    let ports = NatPorts::new(NAT_PORTS, 1).expect("nat ports");
    let mut nc = NatConfig { ports: ports.range_of(0).expect("range"), max_flows: cfg.nat_capacity(), ..NatConfig::default() };
    if let Some(t) = cfg.nat_idle {
        nc.udp_idle = t;
        nc.tcp_established = t;
        nc.tcp_transitory = t;
        nc.tcp_rst_grace = t;
        nc.icmp_idle = t;
    }
    let nat = NatTable::new(nc).expect("nat table");
    let cache = JapCache::new((2 * cfg.groups as usize).max(1024));
    let mut p = Path::new(0, 1, PathConfig::default(), local, tables, cache, nat, ports);
    let mut r = Resolver::new(ResolverTiming::from_refresh_secs(30));
    for (n, m) in [(GW, MAC_GW), (A, MAC_A), (B, MAC_B), (C, MAC_C)] {
        r.pin(0, n, m);
    }
    p.neigh = Arc::new(r.take_snapshot().expect("neighbours"));
    p
}

/// A Path ready for the mode's traffic, and that traffic.
pub struct Scenario {
    /// The proxy's packet path.
    pub path: Path,
    /// Its input frames.
    pub traffic: Traffic,
}

impl Scenario {
    /// Builds the proxy; for `iap-cached` fills its JAP cache with C for
    /// every group; for `jap` and `reverse` creates every flow by running
    /// its first packet through the JAP at time 0 (then clears the path
    /// counters).
    pub fn build(cfg: &Config) -> Scenario {
        let mut path = build_path(cfg);
        if cfg.mode == Mode::IapCached {
            for g in 0..cfg.groups {
                assert!(path.cache.fill(group(g), &[ProxyId(3)], 1_000_000 * SECOND, 0));
            }
        }
        if cfg.mode.needs_flows() {
            let make = Traffic::new(&Config { mode: Mode::Jap, ..*cfg }, None);
            let mut frame = vec![0u8; make.frame_len()];
            let mut buf = VecBuf::new(&frame);
            for f in 0..cfg.flows {
                make.write_flow(f, &mut frame);
                buf.reset(&frame);
                let a = path.process(&mut buf, 0, 0);
                assert_eq!(a, Action::Tx(0), "pre-creating flow {f}");
                path.events.drain().for_each(drop);
            }
            assert_eq!(path.nat.len() as u64, cfg.flows, "every flow created");
            path.stats = PathStats::default();
        }
        let traffic = Traffic::new(cfg, Some(&path));
        Scenario { path, traffic }
    }
}

/// One frame shape with its variable fields zeroed, and the ones'-complement
/// sums of the rest of each checksummed header.
#[derive(Clone)]
struct Template {
    bytes: [u8; 80],
    /// Offset of the IPv4 header the variable fields belong to.
    ip: usize,
    /// Offset of its TCP/UDP header.
    l4: usize,
    udp: bool,
    /// Sum of that IPv4 header (checksum field zero), unfolded.
    ip_sum: u32,
    /// Sum of the pseudo-header and the TCP/UDP segment (checksum zero).
    l4_sum: u32,
}

/// The frames of a mode, generated on the fly from a few templates (no
/// per-flow storage except `reverse`'s 4 bytes per flow), so that 10 M
/// flows cost no more memory traffic to generate than 1 k.
#[derive(Clone)]
pub struct Traffic {
    mode: Mode,
    groups: u32,
    /// Forward modes: one per group; reverse: one per target.
    templates: Vec<Template>,
    flows: u64,
    step: u64,
    /// Next flow of the permutation.
    x: u64,
    /// `jap-new`: next flow number.
    counter: u64,
    /// `reverse`: per visit slot, `target index << 16 | q`, in visit order.
    rev: Vec<u32>,
    pos: usize,
}

fn sum16(b: &[u8]) -> u32 {
    let mut s = 0u32;
    for c in b.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    s
}

#[inline]
fn fold(mut s: u32) -> u16 {
    s = (s & 0xFFFF) + (s >> 16);
    s = (s & 0xFFFF) + (s >> 16);
    s as u16
}

fn ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, total: usize, proto: u8, ttl: u8, ident: u16) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[4..6].copy_from_slice(&ident.to_be_bytes());
    h[6] = 0x40; // DF
    h[8] = ttl;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = !fold(sum16(&h));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// Inner packet `src:sport → dst:dport` (46 bytes), TCP (ACK, or SYN when
/// `syn`) or UDP, checksums filled.
#[allow(clippy::too_many_arguments)]
fn inner(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, udp: bool, ttl: u8, syn: bool) -> [u8; INNER_LEN] {
    let mut p = [0u8; INNER_LEN];
    let proto = if udp { 17 } else { 6 };
    p[..20].copy_from_slice(&ipv4_header(src, dst, INNER_LEN, proto, ttl, 0x4242));
    let l4 = &mut p[20..];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    if udp {
        l4[4..6].copy_from_slice(&((INNER_LEN - 20) as u16).to_be_bytes());
        for (i, b) in l4[8..].iter_mut().enumerate() {
            *b = b'a' + i as u8;
        }
    } else {
        l4[4..8].copy_from_slice(&1000u32.to_be_bytes());
        if !syn {
            l4[8..12].copy_from_slice(&5000u32.to_be_bytes());
        }
        l4[12] = 5 << 4;
        l4[13] = if syn { 0x02 } else { 0x10 };
        l4[14..16].copy_from_slice(&64240u16.to_be_bytes());
        l4[20..].copy_from_slice(b"hello!");
    }
    let c = !fold(l4_sum(&p[..20], &p[20..]));
    let c = if udp && c == 0 { 0xFFFF } else { c };
    let off = if udp { 20 + 6 } else { 20 + 16 };
    p[off..off + 2].copy_from_slice(&c.to_be_bytes());
    p
}

/// Pseudo-header + segment sum (the segment's checksum field as it is).
fn l4_sum(ip: &[u8], seg: &[u8]) -> u32 {
    sum16(&ip[12..20]) + u32::from(ip[9]) + seg.len() as u32 + sum16(seg)
}

fn eth(dst: Mac, src: Mac) -> [u8; 14] {
    let mut e = [0u8; 14];
    e[0..6].copy_from_slice(&dst);
    e[6..12].copy_from_slice(&src);
    e[12..14].copy_from_slice(&[0x08, 0x00]);
    e
}

impl Template {
    fn new(frame: &[u8], ip: usize) -> Template {
        let mut bytes = [0u8; 80];
        bytes[..frame.len()].copy_from_slice(frame);
        let udp = frame[ip + 9] == 17;
        let l4 = ip + 20;
        let ck = if udp { l4 + 6 } else { l4 + 16 };
        let mut t = frame.to_vec();
        t[ip + 10..ip + 12].fill(0);
        t[ck..ck + 2].fill(0);
        let ip_sum = sum16(&t[ip..ip + 20]);
        let l4_sum = l4_sum(&t[ip..ip + 20], &t[l4..ip + INNER_LEN]);
        Template { bytes, ip, l4, udp, ip_sum, l4_sum }
    }

    #[inline]
    fn l4_csum_off(&self) -> usize {
        if self.udp {
            self.l4 + 6
        } else {
            self.l4 + 16
        }
    }
}

/// A step coprime to `n` near `n × 0.618` (a full-cycle permutation).
fn coprime_step(n: u64) -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    if n <= 2 {
        return 1;
    }
    let mut s = (n as f64 * 0.618_033_988_7) as u64 | 1;
    while gcd(s, n) != 1 {
        s += 2;
    }
    s % n
}

impl Traffic {
    /// The traffic of `cfg`. `reverse` needs the path whose NAT holds the
    /// flows (to learn each flow's target and `q`).
    pub fn new(cfg: &Config, path: Option<&Path>) -> Traffic {
        let mode = cfg.mode;
        let groups = cfg.groups.max(1);
        let tpg = cfg.targets_per_group.max(1);
        let mut templates = Vec::new();
        let zero = Ipv4Addr::UNSPECIFIED;
        match mode {
            Mode::IapMiss | Mode::IapCached => {
                for g in 0..groups {
                    let GroupAddr::Port { port, proto, .. } = group(g) else { unreachable!() };
                    let mut f = eth(MAC_A, MAC_GW).to_vec();
                    f.extend_from_slice(&inner(zero, 0, AA, port, proto == GroupProto::Udp, 64, false));
                    templates.push(Template::new(&f, 14));
                }
            }
            Mode::Rap | Mode::Jap | Mode::JapNew => {
                let (dst, mac, ttl) = if mode == Mode::Rap { (B, MAC_B, 63) } else { (C, MAC_C, 62) };
                for g in 0..groups {
                    let GroupAddr::Port { port, proto, .. } = group(g) else { unreachable!() };
                    let mut f = eth(mac, MAC_A).to_vec();
                    f.extend_from_slice(&ipv4_header(A, dst, 20 + INNER_LEN, 4, 64, 0x0101));
                    f.extend_from_slice(&inner(zero, 0, AA, port, proto == GroupProto::Udp, ttl, mode == Mode::JapNew));
                    templates.push(Template::new(&f, 34));
                }
            }
            Mode::Reverse => {
                for k in 0..groups * tpg {
                    let GroupAddr::Port { proto, .. } = group(k / tpg) else { unreachable!() };
                    let t = target(k);
                    let mut f = eth(MAC_C, MAC_GW).to_vec();
                    f.extend_from_slice(&inner(t.ip, t.port, C, 0, proto == GroupProto::Udp, 64, false));
                    templates.push(Template::new(&f, 14));
                }
            }
        }
        let flows = cfg.flows.max(1);
        let mut tr = Traffic { mode, groups, templates, flows, step: coprime_step(flows), x: 0, counter: 0, rev: Vec::new(), pos: 0 };
        if mode == Mode::Reverse {
            let path = path.expect("reverse traffic needs the JAP's path");
            let index: HashMap<TargetAddr, u32> = (0..groups * tpg).map(|k| (target(k), k)).collect();
            let mut x = 0u64;
            tr.rev = (0..flows)
                .map(|_| {
                    let f = x;
                    x = (x + tr.step) % flows;
                    let hit = path.nat.peek_forward(&flow_key(f, groups), 0).expect("flow pre-created");
                    (index[&hit.target] << 16) | u32::from(hit.nat_port)
                })
                .collect();
        }
        tr
    }

    /// Bytes of every frame.
    pub fn frame_len(&self) -> usize {
        self.mode.frame_len()
    }

    /// Frames in one cycle of the traffic (`jap-new`: unbounded, reported
    /// as `u64::MAX`).
    pub fn cycle(&self) -> u64 {
        if self.mode == Mode::JapNew {
            u64::MAX
        } else {
            self.flows
        }
    }

    /// The forward frame of flow `f` (forward modes).
    #[inline]
    pub fn write_flow(&self, f: u64, out: &mut [u8]) {
        let t = &self.templates[(f % u64::from(self.groups)) as usize];
        let len = self.mode.frame_len();
        out[..len].copy_from_slice(&t.bytes[..len]);
        let (ip, port) = client(f);
        let ipw = (ip >> 16) + (ip & 0xFFFF);
        out[t.ip + 12..t.ip + 16].copy_from_slice(&ip.to_be_bytes());
        out[t.l4..t.l4 + 2].copy_from_slice(&port.to_be_bytes());
        let c = !fold(t.ip_sum + ipw);
        out[t.ip + 10..t.ip + 12].copy_from_slice(&c.to_be_bytes());
        let c = !fold(t.l4_sum + ipw + u32::from(port));
        let c = if t.udp && c == 0 { 0xFFFF } else { c };
        let o = t.l4_csum_off();
        out[o..o + 2].copy_from_slice(&c.to_be_bytes());
    }

    /// Writes the next frame into `out` (at least [`Traffic::frame_len`]
    /// bytes).
    #[inline]
    pub fn next_into(&mut self, out: &mut [u8]) {
        match self.mode {
            Mode::JapNew => {
                let f = self.counter;
                self.counter += 1;
                self.write_flow(f, out);
            }
            Mode::Reverse => {
                let r = self.rev[self.pos];
                self.pos += 1;
                if self.pos == self.rev.len() {
                    self.pos = 0;
                }
                let t = &self.templates[(r >> 16) as usize];
                let q = r as u16;
                let len = self.mode.frame_len();
                out[..len].copy_from_slice(&t.bytes[..len]);
                out[t.l4 + 2..t.l4 + 4].copy_from_slice(&q.to_be_bytes());
                let c = !fold(t.l4_sum + u32::from(q));
                let c = if t.udp && c == 0 { 0xFFFF } else { c };
                let o = t.l4_csum_off();
                out[o..o + 2].copy_from_slice(&c.to_be_bytes());
            }
            _ => {
                let f = self.x;
                self.x += self.step;
                if self.x >= self.flows {
                    self.x -= self.flows;
                }
                self.write_flow(f, out);
            }
        }
    }

    /// One cycle of the traffic as frames (for a pcap); `jap-new`: `n`
    /// frames of new flows.
    pub fn frames(&self, n_new: u64) -> Vec<Vec<u8>> {
        let mut t = self.clone();
        t.x = 0;
        t.pos = 0;
        t.counter = 0;
        let n = if self.mode == Mode::JapNew { n_new } else { self.flows };
        let mut buf = vec![0u8; self.frame_len()];
        (0..n)
            .map(|_| {
                t.next_into(&mut buf);
                buf.clone()
            })
            .collect()
    }
}

/// A classic pcap (µs timestamps, Ethernet) of `frames`.
pub fn write_pcap(path: &std::path::Path, frames: &[Vec<u8>]) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&[0; 8])?;
    w.write_all(&65535u32.to_le_bytes())?;
    w.write_all(&1u32.to_le_bytes())?;
    for (i, f) in frames.iter().enumerate() {
        w.write_all(&1u32.to_le_bytes())?;
        w.write_all(&(i as u32).to_le_bytes())?;
        w.write_all(&(f.len() as u32).to_le_bytes())?;
        w.write_all(&(f.len() as u32).to_le_bytes())?;
        w.write_all(f)?;
    }
    w.flush()
}
