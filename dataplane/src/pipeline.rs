//! The PIAS packet path on one worker (seed Figure 2; DESIGN.md path table):
//!
//! | seg | stage | what happens here |
//! |---|---|---|
//! | 1 → 2 | IAP, cache miss | native `AC:p → AA:g` tunnelled to the nearest RAP of g; the control core is told |
//! | 1 → 7 | IAP, cache hit | tunnelled straight to the first live cached JAP |
//! | 2 → 3 | RAP | JAP chosen by the group's criterion; re-tunnelled; the control core sends the IAP the JAP list |
//! | 3/7 → 4 | JAP | decapsulated, NATed `JAP:q → AT:r` to a live target |
//! | 5 → 6 | reverse NAT | `AT:r → JAP:q` becomes `AA:g → AC:p` towards the client |
//!
//! One proxy plays every role: an IAP whose chosen RAP or JAP is itself
//! goes on to that stage without a tunnel.
//!
//! Ownership (DESIGN.md §2): NAT state belongs to one worker. A forward
//! packet belongs to `owner(inner 5-tuple)`; a reverse packet to the worker
//! whose NAT port range holds its destination port. The decision is made
//! before the packet is modified, so a packet handed to its owner is
//! processed there from scratch. IAP and RAP work needs no flow state and
//! runs on whichever worker received the packet.
//!
//! The fast path allocates nothing: events for the control core go into a
//! fixed buffer the worker drains after each burst.

use core::net::Ipv4Addr;
use std::sync::Arc;

use crate::flow::{self, FlowKey, NatPorts};
use crate::forward::{self, IcmpError, ETH_LEN};
use crate::iface::{Punt, Up};
use crate::jap_cache::JapCache;
use crate::local::{self, Class, LocalAddrs, Verdict};
use crate::nat::{NatError, NatTable};
use crate::neighbour::{Mac, Nanos, Neighbours};
use crate::packet::PacketBuf;
use crate::reason::DropReason;
use crate::select::{self, client_hash};
use crate::tables::{GroupEntry, Tables};
use crate::types::{GroupAddr, ProxyId, TargetAddr};
use crate::wire::ipip::{DfPolicy, EncapParams, OUTER_HEADER_LEN};
use crate::wire::{IpProtocol, Ipv4Packet, TcpFlags, TcpPacket, UdpPacket};

/// Settings of the packet path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathConfig {
    /// MTU of the links between proxies: an outer packet may be this big.
    pub tunnel_mtu: u16,
    /// Clamp the MSS of TCP SYNs at the IAP so that segments fit the tunnel.
    pub mss_clamp: bool,
    /// TTL of outer headers.
    pub tunnel_ttl: u8,
    /// UDP port of the PIAS control protocol on proxy addresses.
    pub control_port: u16,
    /// Lifetime of IAP cache entries filled from the RAP's answer.
    pub cache_ttl: Nanos,
}

impl Default for PathConfig {
    fn default() -> Self {
        PathConfig {
            tunnel_mtu: 1500,
            mss_clamp: true,
            tunnel_ttl: 64,
            control_port: 7450,
            cache_ttl: 3600 * 1_000_000_000,
        }
    }
}

impl PathConfig {
    /// The largest inner packet a tunnel carries unfragmented.
    pub fn inner_mtu(&self) -> u16 {
        self.tunnel_mtu.saturating_sub(OUTER_HEADER_LEN as u16)
    }

    /// The MSS the IAP clamps SYNs to: inner MTU less IPv4 and TCP headers.
    pub fn clamped_mss(&self) -> u16 {
        self.inner_mtu().saturating_sub(40)
    }
}

/// What the worker does with the packet next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send out of port `0` (index into the config's ports); the frame is
    /// complete (Ethernet addresses set).
    Tx(usize),
    /// Hand to the control core.
    Punt(Punt),
    /// Drop and count.
    Drop(DropReason),
    /// Belongs to another worker: hand it over unmodified.
    Handoff(u16),
}

/// Per-worker path counters (plain integers; the worker publishes them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathStats {
    /// IAP: packets sent to a cached JAP (segment 7).
    pub iap_cached: u64,
    /// IAP: packets sent to a RAP on a cache miss (segment 2).
    pub iap_to_rap: u64,
    /// RAP: packets forwarded to a chosen JAP (segment 3).
    pub rap_forwarded: u64,
    /// JAP: packets NATed to a target (segment 4).
    pub jap_forwarded: u64,
    /// JAP: flows created.
    pub jap_new_flows: u64,
    /// JAP: packets sent back to a RAP for lack of a live target.
    pub jap_bounced: u64,
    /// Reverse NAT: packets sent to clients (segment 6).
    pub reverse: u64,
    /// ICMP errors sent (time exceeded, frag needed).
    pub icmp_sent: u64,
    /// SYNs whose MSS was clamped.
    pub mss_clamped: u64,
    /// Events lost because the event buffer was full.
    pub events_lost: u64,
    /// ICMP echo requests to our addresses answered.
    pub echo_replied: u64,
}

impl PathStats {
    /// Number of counters.
    pub const COUNT: usize = 11;
    /// Their names (metric labels), in [`PathStats::values`] order.
    pub const NAMES: [&'static str; Self::COUNT] = [
        "iap_cached",
        "iap_to_rap",
        "rap_forwarded",
        "jap_forwarded",
        "jap_new_flows",
        "jap_bounced",
        "reverse",
        "icmp_sent",
        "mss_clamped",
        "events_lost",
        "echo_replied",
    ];

    /// The counters as an array.
    pub fn values(&self) -> [u64; Self::COUNT] {
        [
            self.iap_cached,
            self.iap_to_rap,
            self.rap_forwarded,
            self.jap_forwarded,
            self.jap_new_flows,
            self.jap_bounced,
            self.reverse,
            self.icmp_sent,
            self.mss_clamped,
            self.events_lost,
            self.echo_replied,
        ]
    }

    /// The inverse of [`PathStats::values`].
    pub fn from_values(v: [u64; Self::COUNT]) -> Self {
        PathStats {
            iap_cached: v[0],
            iap_to_rap: v[1],
            rap_forwarded: v[2],
            jap_forwarded: v[3],
            jap_new_flows: v[4],
            jap_bounced: v[5],
            reverse: v[6],
            icmp_sent: v[7],
            mss_clamped: v[8],
            events_lost: v[9],
            echo_replied: v[10],
        }
    }
}

/// Most events one burst can raise before they are drained.
pub const EVENT_CAP: usize = 64;

/// Fixed-capacity event buffer (no allocation on the fast path).
#[derive(Debug)]
pub struct Events {
    buf: [Option<Up>; EVENT_CAP],
    len: usize,
}

impl Default for Events {
    fn default() -> Self {
        Events { buf: std::array::from_fn(|_| None), len: 0 }
    }
}

impl Events {
    fn push(&mut self, e: Up, stats: &mut PathStats) {
        if self.len < EVENT_CAP {
            self.buf[self.len] = Some(e);
            self.len += 1;
        } else {
            stats.events_lost += 1;
        }
    }

    /// Takes every pending event, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = Up> + '_ {
        let n = std::mem::replace(&mut self.len, 0);
        self.buf[..n].iter_mut().filter_map(Option::take)
    }

    /// Number pending.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when none pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One worker's share of the packet path: its tables, caches, NAT and
/// counters. Owned by the worker; the control core changes it only through
/// the worker's down queue.
pub struct Path {
    /// This worker's index.
    pub worker: u16,
    /// Number of workers.
    pub workers: u16,
    /// Settings.
    pub cfg: PathConfig,
    /// Our addresses.
    pub local: Arc<LocalAddrs>,
    /// Forwarding tables (snapshot).
    pub tables: Arc<Tables>,
    /// Neighbours (snapshot).
    pub neigh: Arc<Neighbours>,
    /// The IAP's JAP cache.
    pub cache: JapCache,
    /// The JAP's NAT table (this worker's flows).
    pub nat: NatTable,
    /// NAT port ranges of all workers.
    pub ports: NatPorts,
    /// Events for the control core.
    pub events: Events,
    /// Counters.
    pub stats: PathStats,
    ident: u16,
}

/// Parsed facts of the IPv4 packet after the Ethernet header; enough to
/// route it without holding a borrow of the buffer.
#[derive(Clone, Copy, Debug)]
struct Ip4 {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ttl: u8,
    hlen: usize,
    total: usize,
    df: bool,
    first_frag: bool,
    later_frag: bool,
    sport: u16,
    dport: u16,
    tcp_flags: Option<TcpFlags>,
}

/// Reads the IPv4 header at `off` (already validated by `local::classify`
/// or by the tunnel parser) and the transport ports when present.
fn read_ip(d: &[u8], off: usize) -> Result<Ip4, DropReason> {
    let buf = d.get(off..).ok_or(DropReason::Ipv4Truncated)?;
    let ip = Ipv4Packet::new_checked(buf).map_err(|_| DropReason::Ipv4BadLength)?;
    let proto = u8::from(ip.protocol());
    let later_frag = ip.is_non_initial_fragment();
    let mut f = Ip4 {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        proto,
        ttl: ip.ttl(),
        hlen: ip.header_len(),
        total: usize::from(ip.total_len()),
        df: ip.dont_frag(),
        first_frag: ip.is_first_fragment(),
        later_frag,
        sport: 0,
        dport: 0,
        tcp_flags: None,
    };
    if later_frag {
        return Ok(f);
    }
    let l4 = ip.payload();
    match ip.protocol() {
        IpProtocol::Udp => {
            // A first fragment carries the UDP header but not the whole
            // datagram: only the ports are read.
            if l4.len() < 8 {
                return Err(DropReason::L4Malformed);
            }
            if !f.first_frag {
                UdpPacket::new_checked(l4).map_err(|_| DropReason::L4Malformed)?;
            }
            f.sport = u16::from_be_bytes([l4[0], l4[1]]);
            f.dport = u16::from_be_bytes([l4[2], l4[3]]);
        }
        IpProtocol::Tcp => {
            let t = TcpPacket::new_checked(l4).map_err(|_| DropReason::L4Malformed)?;
            f.sport = t.src_port();
            f.dport = t.dst_port();
            f.tcp_flags = Some(t.flags());
        }
        _ => {}
    }
    Ok(f)
}

impl Path {
    /// A path for worker `worker` of `workers`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        worker: u16,
        workers: u16,
        cfg: PathConfig,
        local: Arc<LocalAddrs>,
        tables: Arc<Tables>,
        cache: JapCache,
        nat: NatTable,
        ports: NatPorts,
    ) -> Path {
        Path {
            worker,
            workers,
            cfg,
            local,
            tables,
            neigh: Arc::new(Neighbours::default()),
            cache,
            nat,
            ports,
            events: Events::default(),
            stats: PathStats::default(),
            // Different workers start their outer idents apart.
            ident: worker.wrapping_mul(0x9e37),
        }
    }

    fn next_ident(&mut self) -> u16 {
        self.ident = self.ident.wrapping_add(1);
        self.ident
    }

    /// Processes one frame that arrived on port `port`.
    pub fn process<B: PacketBuf>(&mut self, pkt: &mut B, port: usize, now: Nanos) -> Action {
        let class = local::classify(pkt.data_mut(), port, &self.local);
        match class {
            Class::Done(Verdict::Reply) => {
                self.stats.echo_replied += 1;
                Action::Tx(port)
            }
            Class::Done(Verdict::Punt(p)) => Action::Punt(p),
            Class::Done(Verdict::Drop(r)) => Action::Drop(r),
            Class::ToAnycast => self.iap(pkt, port, now),
            Class::ToUnicast => self.unicast(pkt, port, now),
        }
    }

    // ----- segment 1: the IAP -------------------------------------------

    fn iap<B: PacketBuf>(&mut self, pkt: &mut B, port: usize, now: Nanos) -> Action {
        let ip = match read_ip(pkt.data(), ETH_LEN) {
            Ok(ip) => ip,
            Err(r) => return Action::Drop(r),
        };
        if ip.later_frag {
            return Action::Drop(DropReason::FragmentUnmatched);
        }
        let tables = self.tables.clone();
        let Some((group, entry)) = tables.group_for(ip.dst, ip.dport, ip.proto) else {
            return Action::Drop(if ip.proto == 1 { DropReason::IcmpUnhandled } else { DropReason::AnycastNoGroup });
        };
        // Groups carry TCP and UDP (a whole-IP group: every port of both).
        // ICMP echo to an anycast address is answered by the proxy itself.
        if ip.proto != 6 && ip.proto != 17 {
            return Action::Drop(DropReason::UnsupportedProtocol);
        }
        let group = *group;
        let me = tables.me();

        // Where does it go: a cached JAP, a RAP-less group's own choice, or
        // the nearest RAP (which may be this proxy).
        let next = if entry.options().rapless {
            let key = FlowKey::new(ip.src, ip.sport, ip.dst, ip.dport, ip.proto);
            select::choose_jap(&tables, entry, tables.my_cluster(), client_hash(ip.src), key.hash())
                .map(Hop::Jap)
        } else if let Some(j) = self.cache.lookup(&group, now, |p| tables.is_up(p)) {
            Some(Hop::Jap(j))
        } else {
            let rap = tables.nearest_rap(entry).map(|r| r.id);
            self.events.push(Up::IapMiss { group, rap }, &mut self.stats);
            rap.map(Hop::Rap)
        };
        let next = match next {
            Some(Hop::Rap(r)) if r == me => {
                // This proxy is the RAP: choose the JAP here.
                let key = FlowKey::new(ip.src, ip.sport, ip.dst, ip.dport, ip.proto);
                match select::choose_jap(&tables, entry, tables.my_cluster(), client_hash(ip.src), key.hash()) {
                    Some(j) => {
                        self.rap_chose(group, j, self.local.ports[port].ip);
                        Hop::Jap(j)
                    }
                    None => return Action::Drop(DropReason::NoJap),
                }
            }
            Some(h) => h,
            None => return Action::Drop(if entry.options().rapless { DropReason::NoJap } else { DropReason::NoRap }),
        };
        if next == Hop::Jap(me) {
            return self.jap_local(pkt, port, &ip, group, entry, now);
        }
        let (to, seg_cached) = match next {
            Hop::Jap(j) => (j, true),
            Hop::Rap(r) => (r, false),
        };
        let Some(dst) = tables.proxy(to).map(|p| p.addr) else {
            return Action::Drop(DropReason::NoRap);
        };
        // Entry checks of the tunnel (RFC 2003 §3.1, §4; RFC 1812 §5.3.1).
        if ip.ttl <= 1 {
            return self.icmp_error(pkt, port, IcmpError::TtlExceeded, DropReason::TtlExceeded);
        }
        if ip.total + OUTER_HEADER_LEN > usize::from(self.cfg.tunnel_mtu) && ip.df {
            let mtu = self.cfg.inner_mtu();
            return self.icmp_error(pkt, port, IcmpError::FragNeeded { mtu }, DropReason::TooBig);
        }
        let a = self.tunnel_to(pkt, &ip, dst, true, now);
        if matches!(a, Action::Tx(_)) {
            if seg_cached {
                self.stats.iap_cached += 1;
            } else {
                self.stats.iap_to_rap += 1;
            }
        }
        a
    }

    /// Decrements the inner TTL (once per proxy), clamps a SYN's MSS when
    /// entering the tunnel, pushes the outer header and routes it to `dst`.
    fn tunnel_to<B: PacketBuf>(&mut self, pkt: &mut B, ip: &Ip4, dst: Ipv4Addr, entry: bool, _now: Nanos) -> Action {
        let Some((port, src_ip, src_mac, dst_mac)) = self.route(dst) else {
            return Action::Drop(DropReason::NoNeighbour);
        };
        forward::trim_to_ip(pkt);
        {
            let d = pkt.data_mut();
            let Ok(mut p) = Ipv4Packet::new_checked(&mut d[ETH_LEN..]) else {
                return Action::Drop(DropReason::Ipv4BadLength);
            };
            p.decrement_ttl();
        }
        if entry && self.cfg.mss_clamp && ip.proto == 6 && ip.tcp_flags.is_some_and(|f| f.contains(TcpFlags::SYN)) {
            let max = self.cfg.clamped_mss();
            let d = pkt.data_mut();
            if let Ok(mut t) = TcpPacket::new_checked(&mut d[ETH_LEN + ip.hlen..ETH_LEN + ip.total]) {
                if t.clamp_mss(max) {
                    self.stats.mss_clamped += 1;
                }
            }
        }
        let params = EncapParams { src_addr: src_ip, dst_addr: dst, ident: self.next_ident(), ttl: self.cfg.tunnel_ttl, df: DfPolicy::CopyInner };
        if let Err(r) = forward::encap(pkt, &params) {
            return Action::Drop(r);
        }
        forward::set_eth(pkt, src_mac, dst_mac);
        Action::Tx(port)
    }

    fn rap_chose(&mut self, group: GroupAddr, jap: ProxyId, iap: Ipv4Addr) {
        self.events.push(Up::RapChose { group, jap, iap }, &mut self.stats);
    }

    // ----- traffic to our unicast address ---------------------------------

    fn unicast<B: PacketBuf>(&mut self, pkt: &mut B, port: usize, now: Nanos) -> Action {
        let ip = match read_ip(pkt.data(), ETH_LEN) {
            Ok(ip) => ip,
            Err(r) => return Action::Drop(r),
        };
        match ip.proto {
            4 => self.tunnel_in(pkt, port, &ip, now),
            17 if ip.dport == self.cfg.control_port && !ip.later_frag => Action::Punt(Punt::Control),
            6 | 17 if !ip.later_frag => self.reverse(pkt, port, &ip, now),
            _ => Action::Punt(Punt::Exception),
        }
        .or_exception(&self.local, port)
    }

    // ----- segments 2/3/7 arriving: RAP or JAP ----------------------------

    fn tunnel_in<B: PacketBuf>(&mut self, pkt: &mut B, port: usize, outer: &Ip4, now: Nanos) -> Action {
        let tables = self.tables.clone();
        // Only proxies tunnel to us (spoofed outer sources are dropped).
        let Some(iap) = tables.proxy_by_addr(outer.src).copied() else {
            return Action::Drop(DropReason::TunnelUnknownSource);
        };
        if outer.first_frag || outer.later_frag {
            return Action::Drop(DropReason::TunnelFragment);
        }
        let inner_off = ETH_LEN + outer.hlen;
        {
            let d = pkt.data();
            let Some(t) = d.get(ETH_LEN..ETH_LEN + outer.total) else {
                return Action::Drop(DropReason::TunnelMalformed);
            };
            if crate::wire::ipip::parse(t).is_err() {
                return Action::Drop(DropReason::TunnelMalformed);
            }
        }
        let inner = match read_ip(pkt.data(), inner_off) {
            Ok(i) => i,
            Err(r) => return Action::Drop(r),
        };
        if inner.proto == 4 {
            return Action::Drop(DropReason::TunnelNested);
        }
        if !self.local.is_anycast(inner.dst) {
            return Action::Drop(DropReason::TunnelInnerNotAnycast);
        }
        if self.local.is_unicast_own(inner.src) || tables.proxy_by_addr(inner.src).is_some() || self.local.is_anycast(inner.src) {
            return Action::Drop(DropReason::TunnelLoop);
        }
        if inner.later_frag {
            return Action::Drop(DropReason::FragmentUnmatched);
        }
        let Some((group, entry)) = tables.group_for(inner.dst, inner.dport, inner.proto) else {
            return Action::Drop(DropReason::AnycastNoGroup);
        };
        let group = *group;
        let me = tables.me();
        let key = FlowKey::new(inner.src, inner.sport, inner.dst, inner.dport, inner.proto);

        // JAP: we hold local targets of g, or a live flow of this key.
        if !entry.targets().is_empty() {
            let owner = flow::owner(&key, self.workers);
            if owner != self.worker {
                return Action::Handoff(owner);
            }
            if inner.ttl == 0 {
                return Action::Drop(DropReason::TtlExceeded);
            }
            if !forward::decap(pkt, outer.hlen) {
                return Action::Drop(DropReason::TunnelMalformed);
            }
            return self.jap(pkt, port, &inner, group, entry, Some(outer.src), now);
        }
        // RAP: choose a JAP and send it on (segment 3).
        if entry.has_rap(me) {
            let Some(jap) = select::choose_jap(&tables, entry, iap.cluster, client_hash(inner.src), key.hash()) else {
                return Action::Drop(DropReason::NoJap);
            };
            self.rap_chose(group, jap, outer.src);
            let Some(dst) = tables.proxy(jap).map(|p| p.addr) else {
                return Action::Drop(DropReason::NoJap);
            };
            if jap == me {
                return Action::Drop(DropReason::NoTarget);
            }
            return self.retunnel(pkt, outer, &inner, dst, port, |s| s.rap_forwarded += 1, now);
        }
        // Neither: a stale cache at the IAP named us. The packet is not
        // lost: back to a RAP of g, and the IAP is told to forget us.
        self.events.push(Up::JapNoTarget { group, iap: outer.src }, &mut self.stats);
        let Some(rap) = other_rap(&tables, entry, me) else {
            return Action::Drop(DropReason::NoTarget);
        };
        self.retunnel(pkt, outer, &inner, rap, port, |s| s.jap_bounced += 1, now)
    }

    /// Sends a received tunnel packet on to `dst`: the outer header is
    /// rewritten in place (source: this proxy; fresh TTL and ident), the
    /// inner TTL decremented once.
    #[allow(clippy::too_many_arguments)]
    fn retunnel<B: PacketBuf>(&mut self, pkt: &mut B, outer: &Ip4, inner: &Ip4, dst: Ipv4Addr, port: usize, count: impl FnOnce(&mut PathStats), _now: Nanos) -> Action {
        if inner.ttl <= 1 {
            // Answer about the inner packet, to the client.
            if !forward::decap(pkt, outer.hlen) {
                return Action::Drop(DropReason::TunnelMalformed);
            }
            return self.icmp_error(pkt, port, IcmpError::TtlExceeded, DropReason::TtlExceeded);
        }
        let Some((out_port, src_ip, src_mac, dst_mac)) = self.route(dst) else {
            return Action::Drop(DropReason::NoNeighbour);
        };
        let ident = self.next_ident();
        let ttl = self.cfg.tunnel_ttl;
        {
            let d = pkt.data_mut();
            let Ok(mut o) = Ipv4Packet::new_checked(&mut d[ETH_LEN..]) else {
                return Action::Drop(DropReason::TunnelMalformed);
            };
            o.set_src_addr(src_ip);
            o.set_dst_addr(dst);
            o.set_ttl(ttl);
            o.set_ident(ident);
            o.fill_checksum();
            let hl = o.header_len();
            let Ok(mut i) = Ipv4Packet::new_checked(&mut d[ETH_LEN + hl..]) else {
                return Action::Drop(DropReason::TunnelMalformed);
            };
            i.decrement_ttl();
        }
        forward::set_eth(pkt, src_mac, dst_mac);
        count(&mut self.stats);
        Action::Tx(out_port)
    }

    // ----- segment 4: the JAP ---------------------------------------------

    /// JAP work for a packet that reached it natively (this proxy is also
    /// the IAP): ownership first, then as for a tunnelled one.
    fn jap_local<B: PacketBuf>(&mut self, pkt: &mut B, port: usize, ip: &Ip4, group: GroupAddr, entry: &GroupEntry, now: Nanos) -> Action {
        let key = FlowKey::new(ip.src, ip.sport, ip.dst, ip.dport, ip.proto);
        let owner = flow::owner(&key, self.workers);
        if owner != self.worker {
            return Action::Handoff(owner);
        }
        self.jap(pkt, port, ip, group, entry, None, now)
    }

    /// NATs the (decapsulated) packet to a target: `AC:p → AA:g` becomes
    /// `JAP:q → AT:r`. `iap` is the tunnel's source, when it came by one.
    #[allow(clippy::too_many_arguments)]
    fn jap<B: PacketBuf>(&mut self, pkt: &mut B, port: usize, ip: &Ip4, group: GroupAddr, entry: &GroupEntry, iap: Option<Ipv4Addr>, now: Nanos) -> Action {
        let key = FlowKey::new(ip.src, ip.sport, ip.dst, ip.dport, ip.proto);
        let flags = ip.tcp_flags;
        let hit = match self.nat.lookup_forward(&key, now, flags) {
            Some(h) => h,
            None => {
                let Some(mut target) = select::choose_target(entry, key.hash(), ip.src) else {
                    // No live target here: back to a RAP, the IAP told.
                    if let Some(iap) = iap {
                        self.events.push(Up::JapNoTarget { group, iap }, &mut self.stats);
                        let me = self.tables.me();
                        let tables = self.tables.clone();
                        if let Some(rap) = other_rap(&tables, entry, me) {
                            self.stats.jap_bounced += 1;
                            return self.tunnel_to(pkt, ip, rap, false, now);
                        }
                    }
                    return Action::Drop(DropReason::NoTarget);
                };
                // Whole-IP groups keep the client's port: the mapping names
                // it, so the target's replies (from that port) match.
                if target.port == 0 {
                    target.port = ip.dport;
                }
                match self.nat.create(&key, target, now, flags) {
                    Ok(h) => {
                        self.stats.jap_new_flows += 1;
                        h
                    }
                    Err(NatError::TableFull) => return Action::Drop(DropReason::NatTableFull),
                    Err(NatError::PortsExhausted) => return Action::Drop(DropReason::NatPortsExhausted),
                }
            }
        };
        if ip.ttl <= 1 {
            return self.icmp_error(pkt, port, IcmpError::TtlExceeded, DropReason::TtlExceeded);
        }
        let target: TargetAddr = hit.target;
        let Some((out_port, src_ip, src_mac, dst_mac)) = self.route(target.ip) else {
            return Action::Drop(DropReason::NoNeighbour);
        };
        if let Err(r) = rewrite(pkt, ip, (src_ip, hit.nat_port), (target.ip, target.port)) {
            return Action::Drop(r);
        }
        forward::set_eth(pkt, src_mac, dst_mac);
        self.stats.jap_forwarded += 1;
        Action::Tx(out_port)
    }

    // ----- segments 5 → 6: reverse NAT ------------------------------------

    fn reverse<B: PacketBuf>(&mut self, pkt: &mut B, port: usize, ip: &Ip4, now: Nanos) -> Action {
        let target = TargetAddr { ip: ip.src, port: ip.sport };
        let owner = self.ports.worker_of_port(ip.dport);
        if let Some(w) = owner {
            if w != self.worker {
                return Action::Handoff(w);
            }
        }
        let hit = owner.and_then(|_| self.nat.lookup_reverse(target, ip.dport, ip.proto, now, ip.tcp_flags));
        let Some(hit) = hit else {
            // Not a NATed flow: the host's own traffic (BGP, BFD, SSH…)
            // unless it comes from one of our targets.
            return if self.tables.is_local_target(ip.src) {
                Action::Drop(DropReason::NatNoEntry)
            } else {
                Action::Punt(Punt::Exception)
            };
        };
        if ip.ttl <= 1 {
            return self.icmp_error(pkt, port, IcmpError::TtlExceeded, DropReason::TtlExceeded);
        }
        let k = hit.key;
        let Some((out_port, _src_ip, src_mac, dst_mac)) = self.route(k.src) else {
            return Action::Drop(DropReason::NoNeighbour);
        };
        if let Err(r) = rewrite(pkt, ip, (k.dst, k.dport), (k.src, k.sport)) {
            return Action::Drop(r);
        }
        forward::set_eth(pkt, src_mac, dst_mac);
        self.stats.reverse += 1;
        Action::Tx(out_port)
    }

    // ----- helpers ----------------------------------------------------------

    /// Where to send a packet for `dst`: the port whose subnet holds it
    /// (on-link), else port 0's gateway; `None` while the next hop's MAC is
    /// unresolved. Returns (port, our address there, our MAC, next hop MAC).
    fn route(&self, dst: Ipv4Addr) -> Option<(usize, Ipv4Addr, Mac, Mac)> {
        let (pi, hop) = match self.local.ports.iter().position(|p| p.subnet.contains(dst)) {
            Some(pi) => (pi, dst),
            None => (0, self.local.ports.first()?.gateway),
        };
        let p = &self.local.ports[pi];
        let mac = self.neigh.get(pi as u16, hop)?;
        Some((pi, p.ip, p.mac, mac))
    }

    fn icmp_error<B: PacketBuf>(&mut self, pkt: &mut B, port: usize, kind: IcmpError, reason: DropReason) -> Action {
        let Some(me) = self.local.ports.get(port) else { return Action::Drop(reason) };
        let (ip, mac) = (me.ip, me.mac);
        forward::trim_to_ip(pkt);
        let ident = self.next_ident();
        if forward::icmp_error_in_place(pkt, kind, ip, mac, ident) {
            self.stats.icmp_sent += 1;
            Action::Tx(port)
        } else {
            Action::Drop(reason)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hop {
    Jap(ProxyId),
    Rap(ProxyId),
}

trait OrException {
    fn or_exception(self, local: &LocalAddrs, port: usize) -> Action;
}

impl OrException for Action {
    /// The exception path needs a tap; without one the packet is dropped.
    fn or_exception(self, local: &LocalAddrs, port: usize) -> Action {
        match self {
            Action::Punt(Punt::Exception) if !local.ports.get(port).is_some_and(|p| p.exception) => {
                Action::Drop(DropReason::NoExceptionPath)
            }
            a => a,
        }
    }
}

/// The nearest live RAP of the group that is not `me`.
fn other_rap(tables: &Tables, entry: &GroupEntry, me: ProxyId) -> Option<Ipv4Addr> {
    match tables.nearest_rap(entry) {
        Some(r) if r.id != me => Some(r.addr),
        _ => entry.raps().iter().filter(|&&r| r != me).find_map(|&r| tables.proxy(r).filter(|p| p.up).map(|p| p.addr)),
    }
}

/// Rewrites addresses and ports of the IPv4 packet after the Ethernet
/// header: source to `src`, destination to `dst`, TTL decremented, every
/// checksum updated incrementally (RFC 1624). A UDP checksum of 0 stays 0.
fn rewrite<B: PacketBuf>(pkt: &mut B, ip: &Ip4, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Result<(), DropReason> {
    forward::trim_to_ip(pkt);
    let d = pkt.data_mut();
    let (hdr, l4) = d[ETH_LEN..].split_at_mut(ip.hlen);
    let l4 = &mut l4[..ip.total - ip.hlen];
    let mut h = Ipv4Packet::new_unchecked(&mut hdr[..]);
    let (old_src, old_dst) = (h.src_addr(), h.dst_addr());
    h.set_src_addr_incremental(src.0);
    h.set_dst_addr_incremental(dst.0);
    h.decrement_ttl();
    match ip.proto {
        17 => {
            let mut u = UdpPacket::new_unchecked(l4);
            u.update_addr_checksum(old_src, src.0);
            u.update_addr_checksum(old_dst, dst.0);
            u.set_src_port_incremental(src.1);
            u.set_dst_port_incremental(dst.1);
        }
        6 => {
            let mut t = TcpPacket::new_checked(l4).map_err(|_| DropReason::L4Malformed)?;
            t.update_addr_checksum(old_src, src.0);
            t.update_addr_checksum(old_dst, dst.0);
            t.set_src_port_incremental(src.1);
            t.set_dst_port_incremental(dst.1);
        }
        _ => return Err(DropReason::UnsupportedProtocol),
    }
    Ok(())
}
