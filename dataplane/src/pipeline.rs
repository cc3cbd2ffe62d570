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
//!
//! # ICMP errors (RFC 5508, RFC 2003 §4, RFC 1812 §4.3.2; CHECKLISTS.md)
//!
//! No ICMP message creates, refreshes or ends a NAT mapping: every lookup
//! here is [`NatTable::peek_forward`] / [`NatTable::peek_reverse`]. An
//! error with a bad ICMP checksum is dropped (`icmp_bad_checksum`), one
//! whose quoted packet has no live mapping too (`icmp_error_unmatched`).
//! Redirects and source quenches are never relayed or translated
//! (`icmp_not_relayed`); nothing here ever sends an error about an error.
//!
//! | arrives | quotes | what happens |
//! |---|---|---|
//! | at the JAP's unicast address, from the target or a router between JAP and target | `JAP:q → AT:r` (segment 4) | owner = the worker of `q`; `peek_reverse`; translated for the client: outer `AA → AC`, quote `AC:p → AA:g` |
//! | at an anycast address (the IAP), from the client or a router on its side | `AA:g → AC:p` (segment 6: our reply) | routed like the flow's traffic by the quoted flow `AC:p → AA:g`: cache or RAP, IP-IP to the JAP (RFC 8899 §4.6.1; Katran and GLB route these by the embedded header). No IAP miss or RAP event is raised for it |
//! | inside a tunnel at the JAP | `AA:g → AC:p` | owner = the flow's; `peek_forward`; translated for the target: outer `JAP → AT`, quote `AT:r → JAP:q` |
//! | at any proxy's unicast address, from a router inside a tunnel | our outer `us → proxy`, proto 4 | relayed to the inner packet's source when the quote holds the inner header and 8 bytes (RFC 2003 §4), else `icmp_quote_too_short` |
//!
//! Translated errors keep type, code, the next-hop MTU and a parameter
//! problem's pointer (the quote's layout does not change). Their outer
//! source is an address of ours — `AA` toward the client, the JAP's
//! address toward the target — never the router's or the target's: the
//! target may have an address that must not leak or cannot be routed, and
//! the proxy must not send packets with sources that are not its own (BCP
//! 38 filters would drop them). The client matches an error by the quoted
//! `AC:p → AA:g`, not by the outer source.
//!
//! *Next-hop MTU of a translated "fragmentation needed".* It is kept. An
//! error from the JAP–target path is about the packet the JAP sent there,
//! which is the client's packet minus nothing: the tunnel header was
//! removed before it, and the IAP checks the tunnel leg on its own (it
//! answers `inner MTU = tunnel MTU − 20` itself). The return path JAP →
//! client is native, with no tunnel overhead to subtract either. So the
//! client must fit exactly the MTU reported. The same holds toward the
//! target for an error about our reply (JAP → client is native).
//!
//! *Errors from inside a tunnel* (RFC 2003 §4): time exceeded becomes host
//! unreachable (3/1) — the tunnel is a single hop to the sender;
//! destination unreachable codes other than 3, 4, 5 become 3/1 (the anycast
//! destination is ours, RFC 2003's "same network" case); port unreachable
//! (3/3) and source route failed (3/5) are not relayed; fragmentation
//! needed (3/4) is relayed with the reported MTU less the 20-byte tunnel
//! header (a missing or impossible MTU is replaced by RFC 1191's plateau
//! below the quoted outer length; never below 68); parameter problems
//! point into the outer header we built and are not relayed. The relayed
//! error comes from this proxy's address and quotes the inner packet as
//! far as the router quoted it (at most 548 bytes). No per-tunnel MTU soft
//! state is kept yet (RFC 2003 §5.1): the sender learns the MTU from the
//! relayed error.
//!
//! *Rate limit* (RFC 1812 §4.3.2.8). Every error the proxy originates —
//! time exceeded and fragmentation needed at a tunnel entry or exit, and
//! relayed tunnel errors — takes a token from a per-worker bucket
//! ([`PathConfig::icmp_errors_per_s`], [`PathConfig::icmp_burst`]); without
//! one the packet is dropped as `icmp_rate_limited`. Translated errors are
//! forwarded, not originated, and are not limited.
//!
//! # Fragments (RFC 4787 REQ-14; issue 4 item 10)
//!
//! The proxy does not reassemble. TCP and UDP fragments are NATed and
//! tunnelled one by one with the ports of their datagram's first fragment
//! ([`crate::frag`]: "virtual reassembly"), in order or out of order, both
//! ways: client → group (at the IAP and the RAP, for the group lookup and
//! the JAP choice; at the JAP, for the NAT) and target → client (reverse
//! NAT, e.g. a large DNS answer). A non-first fragment has only its IP
//! header rewritten (addresses, TTL); the transport checksum lives in the
//! first fragment, which is rewritten as any packet is. Two trackers per
//! worker keep datagrams that arrive natively (IAP, reverse NAT) apart
//! from those inside tunnels (RAP, JAP), so that a datagram passing a
//! proxy twice (as IAP, then as JAP via the RAP) is not counted twice.
//!
//! *Which worker.* Non-first fragments carry no ports, so neither the
//! flow's owner nor the NAT port's is known from them. Every fragment goes
//! first to its datagram's tracking worker, [`FragKey::owner`] (a hash of
//! `(src, dst, proto, IP id)`; the same for all of a datagram's
//! fragments). There the first fragment records the ports, releases the
//! fragments held before it, and, when the stage needs flow state (JAP,
//! reverse NAT) owned elsewhere, is handed to the flow's owner, which
//! records the ports too; later fragments find the ports at the tracking
//! worker and follow the same way. So a fragment takes at most two
//! handoffs (arrival → tracker → flow owner), and the first fragment
//! reaches the flow owner before the others on the same ring. A worker
//! tells the path that a packet came from another worker
//! ([`Path::process_handed_over`]); a handed-over fragment at a worker that
//! is not its tracker is never handed on (`fragment_unmatched` if it does
//! not match), so no fragment can circle. IAP and RAP work needs no flow
//! state and runs on the tracking worker.
//!
//! *Out of order.* A non-first fragment whose first fragment the tracking
//! worker has not seen yields [`Action::Hold`]: the worker gives the packet
//! to [`Path::hold`]. When the first fragment arrives, the held fragments
//! come back from [`Path::next_released`] (with their port) and the worker
//! runs them through [`Path::process`] at once; the path remembers their
//! ports for that call. Held fragments whose first fragment does not come
//! within [`crate::frag::FragConfig::timeout`] come back from
//! [`Path::expire_fragments`] to be freed (`fragment_expired`).
//!
//! *What is dropped, each counted:* a fragment that cannot be held (caps:
//! `fragment_hold_refused`), a first fragment when the tracker is full
//! (`fragment_tracker_full`), a repeated first fragment at the tracking
//! worker (`fragment_duplicate`), a non-first fragment of a flow with no
//! NAT mapping or arriving unmatched at a flow owner
//! (`fragment_unmatched`; a non-first fragment never creates a mapping),
//! held fragments past their time (`fragment_expired`). A first TCP
//! fragment too short for the TCP header is `l4_malformed` (RFC 1858's
//! tiny fragments). Fragments of other protocols to an anycast address are
//! dropped as before. Fragments to our unicast address that are not NAT
//! replies follow their first fragment to the exception path.
//!
//! *Not handled:* a fragment (or any packet without DF) that does not fit
//! the tunnel with its 20-byte header is tunnelled oversize, as before;
//! splitting it would need a second buffer from the worker.
//!
//! # What the worker does
//!
//! Per packet from RX: `a = path.process(pkt, port, now)`; per packet from
//! a handoff ring: `a = path.process_handed_over(pkt, port, now)`. Then by
//! `a`: `Tx(p)` send on port `p`; `Punt` to the control core; `Drop(r)`
//! free and count `r`; `Handoff(w)` onto the ring to worker `w`; `Hold`:
//! `path.hold(mbuf, now)`, and if that gives the mbuf back, free it and
//! count `fragment_hold_refused`. After each packet (at the latest after
//! each burst): `while let Some((m, port)) = path.next_released()` run `m`
//! through `path.process(m, port, now)` and act on the result as above.
//! Once per poll iteration, beside the NAT's expiry:
//! `path.expire_fragments(now, budget, |m| free m, count fragment_expired)`;
//! at shutdown `path.clear_fragments(..)`. The held packet type is the
//! path's type parameter `H` (`Path<Mbuf>` in piasd).

use core::net::Ipv4Addr;
use std::sync::Arc;

use crate::flow::{self, FlowKey, NatPorts};
use crate::forward::{self, ErrorRewrite, IcmpError, Relay, ETH_LEN};
use crate::frag::{FragConfig, FragCounters, FragKey, FragMeta, FragPorts, FragTracker};
use crate::iface::{Punt, Up};
use crate::jap_cache::JapCache;
use crate::local::{self, Class, LocalAddrs, Verdict};
use crate::nat::{NatError, NatPrefetch, NatTable};
use crate::neighbour::{Mac, Nanos, Neighbours};
use crate::packet::{PacketBuf, VecBuf};
use crate::reason::DropReason;
use crate::select::{self, client_hash};
use crate::tables::{GroupEntry, Tables};
use crate::types::{ClusterId, GroupAddr, ProxyId, TargetAddr};
use crate::wire::ipip::{DfPolicy, EncapParams, OUTER_HEADER_LEN};
use crate::wire::{checksum, Error as WireError, Icmpv4Packet, IpProtocol, Ipv4Packet, TcpFlags, TcpPacket, UdpPacket};

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
    /// ICMP errors one worker may originate per second, on average (RFC
    /// 1812 §4.3.2.8); 0 sends none.
    pub icmp_errors_per_s: u32,
    /// How many of them may go out back to back.
    pub icmp_burst: u32,
    /// Limits of each of the worker's two fragment trackers.
    pub frag: FragConfig,
}

impl Default for PathConfig {
    fn default() -> Self {
        PathConfig {
            tunnel_mtu: 1500,
            mss_clamp: true,
            tunnel_ttl: 64,
            control_port: 7450,
            cache_ttl: 3600 * 1_000_000_000,
            // Linux's defaults: icmp_msgs_per_sec 1000, icmp_msgs_burst 50.
            icmp_errors_per_s: 1000,
            icmp_burst: 50,
            frag: FragConfig::default(),
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
    /// Belongs to another worker: hand it over unmodified (the receiver
    /// runs it through [`Path::process_handed_over`]).
    Handoff(u16),
    /// An IPv4 fragment that came before its datagram's first fragment:
    /// give the packet, unmodified, to [`Path::hold`]. It comes back from
    /// [`Path::next_released`] when the first fragment arrives, or from
    /// [`Path::expire_fragments`] when it does not.
    Hold,
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
    /// ICMP errors about NAT'd flows translated (RFC 5508) toward the
    /// client or the target.
    pub icmp_translated: u64,
    /// ICMP errors about our replies tunnelled toward the flow's JAP.
    pub icmp_tunnelled: u64,
    /// ICMP errors from inside a tunnel relayed to the original sender.
    pub icmp_relayed: u64,
    /// Out-of-order fragments held.
    pub frag_held: u64,
    /// Held fragments released by their first fragment.
    pub frag_released: u64,
}

impl PathStats {
    /// Number of counters.
    pub const COUNT: usize = 16;
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
        "icmp_translated",
        "icmp_tunnelled",
        "icmp_relayed",
        "frag_held",
        "frag_released",
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
            self.icmp_translated,
            self.icmp_tunnelled,
            self.icmp_relayed,
            self.frag_held,
            self.frag_released,
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
            icmp_translated: v[11],
            icmp_tunnelled: v[12],
            icmp_relayed: v[13],
            frag_held: v[14],
            frag_released: v[15],
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

/// A token bucket in the GCRA form: one token every `interval`, up to
/// `burst` saved. Limits the ICMP errors a worker originates (RFC 1812
/// §4.3.2.8). Integer time, no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Nanoseconds per token; `None` when the rate is 0 (nothing passes).
    interval: Option<Nanos>,
    /// `burst × interval`.
    depth: Nanos,
    /// The theoretical arrival time of the next token.
    tat: Nanos,
}

impl RateLimit {
    /// `per_s` tokens a second on average, `burst` (at least 1) at once.
    pub fn new(per_s: u32, burst: u32) -> RateLimit {
        let interval = (per_s > 0).then(|| 1_000_000_000 / Nanos::from(per_s));
        let depth = interval.unwrap_or(0).saturating_mul(Nanos::from(burst.max(1)));
        RateLimit { interval, depth, tat: 0 }
    }

    /// Takes a token at `now`; false when none is left.
    pub fn take(&mut self, now: Nanos) -> bool {
        let Some(interval) = self.interval else { return false };
        let next = self.tat.max(now).saturating_add(interval);
        if next - now > self.depth {
            return false;
        }
        self.tat = next;
        true
    }
}

/// Which of a worker's two fragment trackers a datagram is in: those that
/// arrive natively (IAP, reverse NAT) or inside a tunnel (RAP, JAP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plane {
    Native,
    Tunnel,
}

/// A held fragment and the port it arrived on.
#[derive(Debug)]
struct Held<H> {
    pkt: H,
    port: usize,
}

/// What [`Path::hold`] needs of the packet that got [`Action::Hold`].
#[derive(Clone, Copy, Debug)]
struct PendingHold {
    plane: Plane,
    key: FragKey,
    meta: FragMeta,
    port: usize,
}

/// A datagram whose first fragment arrived while fragments were held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Release {
    plane: Plane,
    key: FragKey,
    ports: FragPorts,
}

/// Datagrams with fragments to release that one burst may queue; more
/// (never seen with bursts of 32) leave their fragments held until expiry.
const RELEASE_CAP: usize = 64;

/// Facts of the packet being processed.
#[derive(Clone, Copy, Debug, Default)]
struct PacketCtx {
    /// It came from another worker.
    handed: bool,
    /// A fragment pinned to this worker: handed here by its tracking
    /// worker, it is never handed on.
    pinned: bool,
    /// A released fragment: the ports of its datagram.
    replay: Option<Release>,
}

/// One worker's share of the packet path: its tables, caches, NAT, fragment
/// trackers and counters. Owned by the worker; the control core changes it
/// only through the worker's down queue. `H` is the type of the packets the
/// worker hands to [`Path::hold`] (its mbufs; [`VecBuf`] in tests).
pub struct Path<H = VecBuf> {
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
    icmp_limit: RateLimit,
    frag_native: FragTracker<Held<H>>,
    frag_tunnel: FragTracker<Held<H>>,
    pending_hold: Option<PendingHold>,
    releases: [Option<Release>; RELEASE_CAP],
    release_head: usize,
    release_len: usize,
    replay_next: Option<Release>,
    cur: PacketCtx,
    macs: MacCache,
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
    /// IP identification (fragments).
    ident: u16,
    /// Fragment offset in bytes.
    frag_off: u16,
    /// The MF flag.
    more: bool,
    sport: u16,
    dport: u16,
    tcp_flags: Option<TcpFlags>,
}

impl Ip4 {
    #[inline]
    fn is_fragment(&self) -> bool {
        self.first_frag || self.later_frag
    }
}

/// Most frames [`Path::prefetch_burst`] looks at (bursts are 32).
pub const PREFETCH_MAX: usize = 64;

/// The NAT lookup a frame will most likely make, guessed from its bytes.
#[derive(Clone, Copy, Debug)]
enum NatProbe {
    /// An IP-in-IP packet to us: the inner flow's forward lookup.
    Forward(FlowKey),
    /// TCP or UDP to us: a target's reply, the reverse lookup.
    Reverse { target: TargetAddr, q: u16, proto: u8 },
}

/// [`Path::prefetch_burst`]'s guess for one frame: reads fixed offsets
/// of an untagged IPv4 frame to `me` (inner header without options), with
/// one bounds check per header and no validation (the path validates when
/// it processes the frame), so garbage gives a useless guess, never a
/// panic.
#[inline]
fn nat_probe(f: &[u8], me: [u8; 4]) -> Option<NatProbe> {
    let later_frag = |flags_off: [u8; 2]| u16::from_be_bytes(flags_off) & 0x1fff != 0;
    let h: &[u8; ETH_LEN + 20] = f.get(..ETH_LEN + 20)?.try_into().ok()?;
    let ip = &h[ETH_LEN..];
    if h[12..14] != [0x08, 0x00] || ip[0] >> 4 != 4 || ip[16..20] != me || later_frag([ip[6], ip[7]]) {
        return None;
    }
    let l4 = ETH_LEN + usize::from(ip[0] & 0x0f) * 4;
    let quad = |b: &[u8]| [b[0], b[1], b[2], b[3]];
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    match ip[9] {
        4 => {
            let i: &[u8; 24] = f.get(l4..l4 + 24)?.try_into().ok()?;
            if i[0] != 0x45 || later_frag([i[6], i[7]]) || !matches!(i[9], 6 | 17) {
                return None;
            }
            let (src, dst) = (Ipv4Addr::from(quad(&i[12..])), Ipv4Addr::from(quad(&i[16..])));
            Some(NatProbe::Forward(FlowKey::new(src, port(&i[20..]), dst, port(&i[22..]), i[9])))
        }
        proto @ (6 | 17) => {
            let p: &[u8; 4] = f.get(l4..l4 + 4)?.try_into().ok()?;
            let target = TargetAddr { ip: Ipv4Addr::from(quad(&ip[12..])), port: port(&p[..]) };
            Some(NatProbe::Reverse { target, q: port(&p[2..]), proto })
        }
        _ => None,
    }
}

/// The inner packet of the IP-in-IP packet whose outer header `outer` (at
/// [`ETH_LEN`]) `local::classify` has validated (checksum included) and the
/// caller has checked is protocol 4 and not a fragment: what
/// [`crate::wire::ipip::parse`] checks beyond that — the inner header
/// valid, its checksum right, its total length exactly the outer payload
/// (else `tunnel_malformed`) — and the inner facts as [`read_classified_ip`] reads
/// them, with each header parsed once.
#[inline(always)]
fn read_inner(d: &[u8], outer: &Ip4) -> Result<Ip4, DropReason> {
    let payload = d.get(ETH_LEN + outer.hlen..ETH_LEN + outer.total).ok_or(DropReason::TunnelMalformed)?;
    let inner = Ipv4Packet::new_checked(payload).map_err(|_| DropReason::TunnelMalformed)?;
    if !inner.verify_checksum() || usize::from(inner.total_len()) != payload.len() {
        return Err(DropReason::TunnelMalformed);
    }
    ip_facts(&inner)
}

/// Reads the IPv4 header at [`ETH_LEN`] and the transport ports when
/// present; the header is the one `local::classify` has just validated in
/// this same buffer (it returns `ToAnycast` or `ToUnicast` only after
/// `Ipv4Packet::new_checked` and the header checksum passed, and changes no
/// byte), so a second `check_len` is skipped. The slices `ip_facts` takes
/// stay inside the header's own total length, which that check bounded by
/// the buffer.
///
/// Always inlined: returned through memory, the `Result<Ip4, _>` was
/// written with narrow stores and read back at once with wide loads, which
/// store forwarding cannot serve (RESULTS.md, issue 4, profile item 2).
#[inline(always)]
fn read_classified_ip(d: &[u8]) -> Result<Ip4, DropReason> {
    let buf = d.get(ETH_LEN..).ok_or(DropReason::Ipv4Truncated)?;
    let ip = Ipv4Packet::new_unchecked(buf);
    debug_assert!(ip.check_len().is_ok(), "classify validated this header");
    ip_facts(&ip)
}

/// The facts of a header that passed `check_len`.
#[inline(always)]
fn ip_facts(ip: &Ipv4Packet<&[u8]>) -> Result<Ip4, DropReason> {
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
        ident: ip.ident(),
        frag_off: ip.frag_offset(),
        more: ip.more_frags(),
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
            // A first fragment must hold the whole TCP header (RFC 1858).
            let t = TcpPacket::new_checked(l4).map_err(|_| DropReason::L4Malformed)?;
            f.sport = t.src_port();
            f.dport = t.dst_port();
            f.tcp_flags = Some(t.flags());
        }
        _ => {}
    }
    Ok(f)
}

/// The facts of an ICMP error message (RFC 792) and of the datagram it
/// quotes, read without holding a borrow of the buffer.
#[derive(Clone, Copy, Debug)]
struct IcmpErr {
    ty: u8,
    code: u8,
    /// Next-hop MTU (meaningful for 3/4).
    mtu: u16,
    /// Frame offset and length of the ICMP message.
    icmp_off: usize,
    icmp_len: usize,
    /// Frame offset of the quoted IP header.
    q_off: usize,
    q_hlen: usize,
    /// Bytes of the quoted datagram present (header included).
    q_len: usize,
    /// The quoted datagram's total length field.
    q_total: u16,
    q_src: Ipv4Addr,
    q_dst: Ipv4Addr,
    q_proto: u8,
    /// Quoted ports (TCP, UDP; 0 otherwise).
    q_sport: u16,
    q_dport: u16,
    q_later_frag: bool,
}

/// Reads the ICMP message of the IPv4 packet `ip` at frame offset `off`.
/// `Ok(None)` for a message that is not an error (echo reply, …).
fn read_icmp_error(d: &[u8], off: usize, ip: &Ip4) -> Result<Option<IcmpErr>, DropReason> {
    let icmp_off = off + ip.hlen;
    let icmp_len = ip.total.saturating_sub(ip.hlen);
    let buf = d.get(icmp_off..icmp_off + icmp_len).ok_or(DropReason::IcmpTruncated)?;
    let icmp = Icmpv4Packet::new_checked(buf).map_err(|_| DropReason::IcmpTruncated)?;
    if !icmp.msg_type().is_error() {
        return Ok(None);
    }
    let q = icmp.embedded().map_err(|e| match e {
        WireError::Truncated => DropReason::IcmpTruncated,
        _ => DropReason::IcmpErrorUnmatched,
    })?;
    let qp = q.payload();
    let q_later_frag = q.is_non_initial_fragment();
    let proto = u8::from(q.protocol());
    let ported = !q_later_frag && matches!(proto, 6 | 17) && qp.len() >= 4;
    Ok(Some(IcmpErr {
        ty: icmp.msg_type().number(),
        code: icmp.msg_code(),
        mtu: icmp.next_hop_mtu(),
        icmp_off,
        icmp_len,
        q_off: icmp_off + 8,
        q_hlen: q.header_len(),
        q_len: q.header_len() + qp.len(),
        q_total: q.total_len(),
        q_src: q.src_addr(),
        q_dst: q.dst_addr(),
        q_proto: proto,
        q_sport: if ported { u16::from_be_bytes([qp[0], qp[1]]) } else { 0 },
        q_dport: if ported { u16::from_be_bytes([qp[2], qp[3]]) } else { 0 },
        q_later_frag,
    }))
}

impl IcmpErr {
    /// The ICMP checksum verifies over the whole message.
    fn checksum_ok(&self, d: &[u8]) -> bool {
        d.get(self.icmp_off..self.icmp_off + self.icmp_len).is_some_and(|m| checksum::data(m) == 0xffff)
    }

    /// A redirect or a source quench: never relayed nor translated
    /// (RFC 2003 §4; RFC 6633 deprecates source quench).
    fn never_relayed(&self) -> bool {
        matches!(self.ty, 4 | 5)
    }

    /// The flow the error is about when it quotes one of our replies
    /// (`AA:g → AC:p`): the client's key `AC:p → AA:g`.
    fn reply_flow(&self) -> FlowKey {
        FlowKey::new(self.q_dst, self.q_dport, self.q_src, self.q_sport, self.q_proto)
    }

    /// It quotes a TCP or UDP header.
    fn quotes_ports(&self) -> bool {
        matches!(self.q_proto, 6 | 17) && !self.q_later_frag
    }
}

impl<H> Path<H> {
    /// A path for worker `worker` of `workers`. Everything it will use is
    /// reserved here (the fragment trackers from `cfg.frag`).
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
    ) -> Path<H> {
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
            icmp_limit: RateLimit::new(cfg.icmp_errors_per_s, cfg.icmp_burst),
            frag_native: FragTracker::new(cfg.frag),
            frag_tunnel: FragTracker::new(cfg.frag),
            pending_hold: None,
            releases: [None; RELEASE_CAP],
            release_head: 0,
            release_len: 0,
            replay_next: None,
            cur: PacketCtx::default(),
            macs: MacCache::default(),
        }
    }

    fn next_ident(&mut self) -> u16 {
        self.ident = self.ident.wrapping_add(1);
        self.ident
    }

    /// Processes one frame that arrived on port `port` (from the NIC, or a
    /// fragment from [`Path::next_released`]).
    pub fn process<B: PacketBuf>(&mut self, pkt: &mut B, port: usize, now: Nanos) -> Action {
        self.process_with(pkt, port, now, false)
    }

    /// Processes one frame another worker handed to this one
    /// ([`Action::Handoff`]); `port` is the port it arrived on. Fragments
    /// rely on the difference (see the module documentation).
    pub fn process_handed_over<B: PacketBuf>(&mut self, pkt: &mut B, port: usize, now: Nanos) -> Action {
        self.process_with(pkt, port, now, true)
    }

    fn process_with<B: PacketBuf>(&mut self, pkt: &mut B, port: usize, now: Nanos, handed: bool) -> Action {
        // One reference count per call; a burst takes one per burst.
        let tables = Arc::clone(&self.tables);
        self.process_one(&tables, pkt, port, now, handed)
    }

    /// Processes `pkts`, all arrived on port `port`, writing `actions[i]`
    /// for `pkts[i]`: exactly what [`process`](Self::process) on each in
    /// order would do (same actions, bytes, counters, events, NAT state),
    /// only faster. Before the packets are processed, the NAT index slots
    /// their flows will need are prefetched and then loaded, each with the
    /// entry it names ([`NatTable::touch_entry`]), in one loop, so that the
    /// cache and TLB misses of a burst overlap instead of being paid one
    /// after the other; and the table snapshot is referenced once per
    /// burst.
    ///
    /// Returns how many packets were processed. It stops early, right
    /// after a packet that got [`Action::Hold`] or that released held
    /// fragments, so that the caller can [`hold`](Self::hold) it and run
    /// [`next_released`](Self::next_released) before the rest, as the
    /// per-packet protocol requires; the caller then calls again with the
    /// rest. At most `min(pkts.len(), actions.len())` packets are taken.
    pub fn process_burst<B: PacketBuf>(&mut self, pkts: &mut [B], port: usize, now: Nanos, actions: &mut [Action]) -> usize {
        let n = pkts.len().min(actions.len());
        // The index slots of the whole burst are prefetched, then loaded
        // with the entries they name, all before the first packet
        // (`NatTable::touch_entry`: independent loads overlap their misses).
        let mut probes = [None; PREFETCH_MAX];
        let probed = self.prefetch_index(pkts[..n].iter().map(|p| p.data()), port, &mut probes);
        let mut touched = 0u64;
        for p in probes[..probed].iter().flatten() {
            touched ^= self.nat.touch_entry(*p);
        }
        core::hint::black_box(touched);
        let tables = Arc::clone(&self.tables);
        for (i, (pkt, a)) in pkts[..n].iter_mut().zip(actions.iter_mut()).enumerate() {
            *a = self.process_one(&tables, pkt, port, now, false);
            if *a == Action::Hold || self.release_len > 0 {
                return i + 1;
            }
        }
        n
    }

    /// Prefetches, for a burst of frames arrived on port `port`, the NAT
    /// index slots and then the NAT entries their flows will be looked up
    /// in: the forward index for IP-in-IP packets (the inner tuple; the
    /// JAP's segments 3 and 7), the reverse index for TCP and UDP to a
    /// unicast address (segment 5). A hint only: it reads the frames
    /// without validating them (a malformed one costs a useless prefetch),
    /// changes nothing and can never change a result. At most
    /// [`PREFETCH_MAX`] frames are looked at, and none while the NAT table
    /// is small enough to stay in cache
    /// ([`NatTable::prefetch_worthwhile`]): there the guess would only add
    /// instructions.
    pub fn prefetch_burst<'a>(&self, frames: impl IntoIterator<Item = &'a [u8]>, port: usize) {
        let mut probes = [None; PREFETCH_MAX];
        let n = self.prefetch_index(frames, port, &mut probes);
        for p in probes[..n].iter().flatten() {
            self.nat.prefetch_entry(*p);
        }
    }

    /// The first step of [`prefetch_burst`](Self::prefetch_burst): the
    /// index slots, each frame's lookup noted in `probes` for the second.
    /// Returns how many frames were looked at (0 when the table is small).
    fn prefetch_index<'a>(&self, frames: impl IntoIterator<Item = &'a [u8]>, port: usize, probes: &mut [Option<NatPrefetch>; PREFETCH_MAX]) -> usize {
        if !self.nat.prefetch_worthwhile() {
            return 0;
        }
        let Some(me) = self.local.ports.get(port).map(|p| p.ip.octets()) else { return 0 };
        let mut n = 0;
        for f in frames.into_iter().take(PREFETCH_MAX) {
            probes[n] = match nat_probe(f, me) {
                Some(NatProbe::Forward(k)) => Some(self.nat.prefetch_forward(&k)),
                Some(NatProbe::Reverse { target, q, proto }) => Some(self.nat.prefetch_reverse(target, q, proto)),
                None => None,
            };
            n += 1;
        }
        n
    }

    fn process_one<B: PacketBuf>(&mut self, tables: &Tables, pkt: &mut B, port: usize, now: Nanos, handed: bool) -> Action {
        self.pending_hold = None;
        self.cur = PacketCtx { handed, pinned: false, replay: self.replay_next.take() };
        let class = local::classify(pkt.data_mut(), port, &self.local);
        match class {
            Class::Done(Verdict::Reply) => {
                self.stats.echo_replied += 1;
                Action::Tx(port)
            }
            Class::Done(Verdict::Punt(p)) => Action::Punt(p),
            Class::Done(Verdict::Drop(r)) => Action::Drop(r),
            Class::ToAnycast => self.iap(tables, pkt, port, now),
            Class::ToUnicast => self.unicast(tables, pkt, port, now),
        }
    }

    // ----- fragments ----------------------------------------------------

    /// Takes the packet that [`process`](Self::process) answered with
    /// [`Action::Hold`] (call it right after, before processing another).
    /// `Err` gives the packet back: a hold cap is reached, or there was no
    /// hold pending; the caller frees it and counts
    /// [`DropReason::FragmentHoldRefused`].
    pub fn hold(&mut self, pkt: H, now: Nanos) -> Result<(), H> {
        let Some(p) = self.pending_hold.take() else { return Err(pkt) };
        let tracker = match p.plane {
            Plane::Native => &mut self.frag_native,
            Plane::Tunnel => &mut self.frag_tunnel,
        };
        match tracker.hold(&p.key, p.meta, Held { pkt, port: p.port }, now) {
            Ok(()) => {
                self.stats.frag_held += 1;
                Ok(())
            }
            Err(h) => Err(h.pkt),
        }
    }

    /// The next held fragment whose first fragment has arrived, with the
    /// port it arrived on. Run it through [`process`](Self::process) right
    /// away (the path remembers its ports for that one call), and repeat
    /// until `None`. Call after each packet or at least after each burst.
    pub fn next_released(&mut self) -> Option<(H, usize)> {
        while self.release_len > 0 {
            let r = self.releases[self.release_head];
            if let Some(r) = r {
                let tracker = match r.plane {
                    Plane::Native => &mut self.frag_native,
                    Plane::Tunnel => &mut self.frag_tunnel,
                };
                if let Some(h) = tracker.take_held(&r.key).next() {
                    self.replay_next = Some(r);
                    self.stats.frag_released += 1;
                    return Some((h.pkt, h.port));
                }
            }
            self.releases[self.release_head] = None;
            self.release_head = (self.release_head + 1) % RELEASE_CAP;
            self.release_len -= 1;
        }
        None
    }

    /// Amortised expiry of both fragment trackers: visits `budget` entries
    /// of each and hands every held fragment whose datagram timed out to
    /// `dropped` (free it, count [`DropReason::FragmentExpired`]). Returns
    /// the datagrams retired.
    pub fn expire_fragments(&mut self, now: Nanos, budget: usize, dropped: &mut impl FnMut(H)) -> usize {
        let mut f = |h: Held<H>| dropped(h.pkt);
        self.frag_native.expire(now, budget, &mut f) + self.frag_tunnel.expire(now, budget, &mut f)
    }

    /// Forgets every tracked datagram, handing each held fragment to
    /// `dropped` (shutdown).
    pub fn clear_fragments(&mut self, dropped: &mut impl FnMut(H)) {
        let mut f = |h: Held<H>| dropped(h.pkt);
        self.frag_native.clear(&mut f);
        self.frag_tunnel.clear(&mut f);
        self.release_len = 0;
        self.releases = [None; RELEASE_CAP];
    }

    /// Fragments held, both trackers.
    pub fn fragments_held(&self) -> usize {
        self.frag_native.held() + self.frag_tunnel.held()
    }

    /// Datagrams tracked, both trackers.
    pub fn fragments_tracked(&self) -> usize {
        self.frag_native.datagrams() + self.frag_tunnel.datagrams()
    }

    /// The counters of the native and the tunnel tracker.
    pub fn fragment_counters(&self) -> (FragCounters, FragCounters) {
        (*self.frag_native.counters(), *self.frag_tunnel.counters())
    }

    fn queue_release(&mut self, r: Release) {
        if self.release_len >= RELEASE_CAP {
            // Its fragments stay held until expiry (counted there).
            return;
        }
        let at = (self.release_head + self.release_len) % RELEASE_CAP;
        self.releases[at] = Some(r);
        self.release_len += 1;
    }

    /// The ports of the fragment `ip` (its datagram's, from the first
    /// fragment), or what to do with it instead: go to its tracking worker,
    /// wait ([`Action::Hold`]), or be dropped. See the module documentation.
    fn frag_ports(&mut self, plane: Plane, ip: &Ip4, port: usize, now: Nanos) -> Result<FragPorts, Action> {
        let key = FragKey { src: ip.src, dst: ip.dst, proto: ip.proto, id: ip.ident };
        if let Some(r) = self.cur.replay {
            if r.plane == plane && r.key == key {
                return Ok(r.ports);
            }
        }
        let tracker_worker = key.owner(self.workers);
        let at_tracker = tracker_worker == self.worker;
        if !at_tracker {
            if !self.cur.handed {
                return Err(Action::Handoff(tracker_worker));
            }
            // Handed here by the tracking worker: this is the flow's owner.
            self.cur.pinned = true;
        }
        let meta = FragMeta { offset: ip.frag_off, len: u16::try_from(ip.total - ip.hlen).unwrap_or(u16::MAX), more: ip.more };
        let tracker = match plane {
            Plane::Native => &mut self.frag_native,
            Plane::Tunnel => &mut self.frag_tunnel,
        };
        if ip.first_frag {
            let ports = FragPorts { sport: ip.sport, dport: ip.dport };
            if at_tracker && tracker.ports(&key, now) == Some(ports) {
                return Err(Action::Drop(DropReason::FragmentDuplicate));
            }
            if tracker.first_fragment(&key, ports, meta, now).is_err() {
                return Err(Action::Drop(DropReason::FragmentTrackerFull));
            }
            if at_tracker && tracker.held_for(&key) > 0 {
                self.queue_release(Release { plane, key, ports });
            }
            return Ok(ports);
        }
        match tracker.other_fragment(&key, meta, now) {
            Some(p) => Ok(p),
            None if at_tracker => {
                self.pending_hold = Some(PendingHold { plane, key, meta, port });
                Err(Action::Hold)
            }
            None => Err(Action::Drop(DropReason::FragmentUnmatched)),
        }
    }

    /// Hands the packet to worker `w`, unless it is a fragment pinned here.
    #[inline]
    fn hand_to(&self, w: u16) -> Action {
        if self.cur.pinned {
            Action::Drop(DropReason::FragmentUnmatched)
        } else {
            Action::Handoff(w)
        }
    }

    // ----- segment 1: the IAP -------------------------------------------

    fn iap<B: PacketBuf>(&mut self, tables: &Tables, pkt: &mut B, port: usize, now: Nanos) -> Action {
        let mut ip = match read_classified_ip(pkt.data()) {
            Ok(ip) => ip,
            Err(r) => return Action::Drop(r),
        };
        if ip.proto == 1 {
            return self.iap_icmp(tables, pkt, &ip, now);
        }
        if ip.is_fragment() {
            if matches!(ip.proto, 6 | 17) {
                match self.frag_ports(Plane::Native, &ip, port, now) {
                    Ok(p) => (ip.sport, ip.dport) = (p.sport, p.dport),
                    Err(a) => return a,
                }
            } else if ip.later_frag {
                return Action::Drop(DropReason::FragmentUnmatched);
            }
        }
        // A target's join travels to an anycast address on the control
        // port: native anycast brings it to the nearest proxy, which
        // becomes its JAP (seed §3.1; DESIGN.md §5).
        if ip.proto == 17 && ip.dport == self.cfg.control_port && !ip.later_frag {
            return Action::Punt(Punt::Control);
        }
        let Some((group, entry)) = tables.group_for(ip.dst, ip.dport, ip.proto) else {
            return Action::Drop(DropReason::AnycastNoGroup);
        };
        // Groups carry TCP and UDP (a whole-IP group: every port of both).
        // ICMP echo to an anycast address is answered by the proxy itself.
        if ip.proto != 6 && ip.proto != 17 {
            return Action::Drop(DropReason::UnsupportedProtocol);
        }
        let group = *group;
        let me = tables.me();

        // Where does it go: a cached JAP, a RAP-less group's own choice, or
        // the nearest RAP (which may be this proxy). `known`: the address
        // of the proxy chosen, when the choice looked it up already.
        let known = core::cell::Cell::new(None);
        let next = if entry.options().rapless {
            let key = FlowKey::new(ip.src, ip.sport, ip.dst, ip.dport, ip.proto);
            select::choose_jap(tables, entry, tables.my_cluster(), client_hash(ip.src), key.hash())
                .map(Hop::Jap)
        } else if let Some(j) = self.cache.lookup(&group, now, |p| match tables.proxy(p) {
            // `tables.is_up(p)`, keeping the address found on the way.
            Some(info) if info.up => {
                known.set(Some((p, info.addr)));
                true
            }
            _ => false,
        }) {
            Some(Hop::Jap(j))
        } else {
            let rap = tables.nearest_rap(entry).map(|r| {
                known.set(Some((r.id, r.addr)));
                r.id
            });
            self.events.push(Up::IapMiss { group, rap }, &mut self.stats);
            rap.map(Hop::Rap)
        };
        let next = match next {
            Some(Hop::Rap(r)) if r == me => {
                // This proxy is the RAP: choose the JAP here.
                let key = FlowKey::new(ip.src, ip.sport, ip.dst, ip.dport, ip.proto);
                match select::choose_jap(tables, entry, tables.my_cluster(), client_hash(ip.src), key.hash()) {
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
            return self.jap_local(tables, pkt, port, &ip, group, entry, now);
        }
        let (to, seg_cached) = match next {
            Hop::Jap(j) => (j, true),
            Hop::Rap(r) => (r, false),
        };
        let Some(dst) = known.get().filter(|&(id, _)| id == to).map(|(_, a)| a).or_else(|| tables.proxy(to).map(|p| p.addr)) else {
            return Action::Drop(DropReason::NoRap);
        };
        // Entry checks of the tunnel (RFC 2003 §3.1, §4; RFC 1812 §5.3.1).
        if ip.ttl <= 1 {
            return self.icmp_error(pkt, port, IcmpError::TtlExceeded, DropReason::TtlExceeded, now);
        }
        if ip.total + OUTER_HEADER_LEN > usize::from(self.cfg.tunnel_mtu) && ip.df {
            let mtu = self.cfg.inner_mtu();
            return self.icmp_error(pkt, port, IcmpError::FragNeeded { mtu }, DropReason::TooBig, now);
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

    /// An ICMP error to an anycast address about one of our replies
    /// (`AA:g → AC:p`), e.g. "fragmentation needed" from a router on the
    /// client's side: routed by the quoted flow to its JAP (RFC 8899
    /// §4.6.1), as the flow's own packets are, but raising no event and
    /// creating no state.
    fn iap_icmp<B: PacketBuf>(&mut self, tables: &Tables, pkt: &mut B, ip: &Ip4, now: Nanos) -> Action {
        if ip.is_fragment() {
            return Action::Drop(DropReason::IcmpUnhandled);
        }
        let e = match read_icmp_error(pkt.data(), ETH_LEN, ip) {
            Ok(Some(e)) => e,
            Ok(None) => return Action::Drop(DropReason::IcmpUnhandled),
            Err(r) => return Action::Drop(r),
        };
        if e.never_relayed() {
            return Action::Drop(DropReason::IcmpNotRelayed);
        }
        if !e.quotes_ports() || e.q_src != ip.dst {
            return Action::Drop(DropReason::IcmpErrorUnmatched);
        }
        if !e.checksum_ok(pkt.data()) {
            return Action::Drop(DropReason::IcmpBadChecksum);
        }
        let key = e.reply_flow();
        let Some((group, entry)) = tables.group_for(key.dst, key.dport, key.proto) else {
            return Action::Drop(DropReason::IcmpErrorUnmatched);
        };
        let me = tables.me();
        let choose = || select::choose_jap(tables, entry, tables.my_cluster(), client_hash(key.src), key.hash());
        let to = if entry.options().rapless {
            choose()
        } else if let Some(j) = self.cache.lookup(group, now, |p| tables.is_up(p)) {
            Some(j)
        } else {
            match tables.nearest_rap(entry) {
                Some(r) if r.id == me => choose(),
                Some(r) => Some(r.id),
                None => None,
            }
        };
        let Some(to) = to else { return Action::Drop(DropReason::IcmpErrorUnmatched) };
        if to == me {
            let owner = flow::owner(&key, self.workers);
            if owner != self.worker {
                return self.hand_to(owner);
            }
            return self.jap_icmp(pkt, &key, now);
        }
        let Some(dst) = tables.proxy(to).map(|p| p.addr) else {
            return Action::Drop(DropReason::IcmpErrorUnmatched);
        };
        if ip.ttl <= 1 {
            // Never an error about an error.
            return Action::Drop(DropReason::TtlExceeded);
        }
        let a = self.tunnel_to(pkt, ip, dst, false, now);
        if matches!(a, Action::Tx(_)) {
            self.stats.icmp_tunnelled += 1;
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

    fn unicast<B: PacketBuf>(&mut self, tables: &Tables, pkt: &mut B, port: usize, now: Nanos) -> Action {
        let mut ip = match read_classified_ip(pkt.data()) {
            Ok(ip) => ip,
            Err(r) => return Action::Drop(r),
        };
        match ip.proto {
            4 => self.tunnel_in(tables, pkt, port, &ip, now),
            1 if !ip.is_fragment() => self.unicast_icmp(pkt, &ip, now),
            6 | 17 => {
                if ip.is_fragment() {
                    match self.frag_ports(Plane::Native, &ip, port, now) {
                        Ok(p) => (ip.sport, ip.dport) = (p.sport, p.dport),
                        Err(a) => return a.or_exception(&self.local, port),
                    }
                }
                // The control port may also be a NAT port (the NAT range is
                // the operator's): a reply to a live mapping is NAT traffic,
                // anything else to that port is a control datagram.
                let nat_reply = || {
                    self.nat
                        .peek_reverse(TargetAddr { ip: ip.src, port: ip.sport }, ip.dport, ip.proto, now)
                        .is_some()
                };
                if ip.proto == 17 && ip.dport == self.cfg.control_port && !nat_reply() {
                    Action::Punt(Punt::Control)
                } else {
                    self.reverse(pkt, port, &ip, now)
                }
            }
            _ => Action::Punt(Punt::Exception),
        }
        .or_exception(&self.local, port)
    }

    /// An ICMP error to our unicast address: about a NAT'd flow's packet to
    /// its target (translated for the client), about one of our tunnel
    /// packets (relayed to the inner sender), or about the host's own
    /// traffic (the exception path).
    fn unicast_icmp<B: PacketBuf>(&mut self, pkt: &mut B, ip: &Ip4, now: Nanos) -> Action {
        let e = match read_icmp_error(pkt.data(), ETH_LEN, ip) {
            Ok(Some(e)) => e,
            Ok(None) => return Action::Punt(Punt::Exception),
            Err(r) => return Action::Drop(r),
        };
        if !self.local.is_unicast_own(e.q_src) {
            return Action::Punt(Punt::Exception);
        }
        match e.q_proto {
            4 => self.tunnel_error(pkt, &e, now),
            6 | 17 if e.quotes_ports() => {
                // The quoted packet is `JAP:q → AT:r`: q names the owner.
                let q = e.q_sport;
                let Some(w) = self.ports.worker_of_port(q) else { return Action::Punt(Punt::Exception) };
                if w != self.worker {
                    return self.hand_to(w);
                }
                let target = TargetAddr { ip: e.q_dst, port: e.q_dport };
                let Some(hit) = self.nat.peek_reverse(target, q, e.q_proto, now) else {
                    return if self.tables.is_local_target(e.q_dst) {
                        Action::Drop(DropReason::IcmpErrorUnmatched)
                    } else {
                        Action::Punt(Punt::Exception)
                    };
                };
                if e.never_relayed() {
                    return Action::Drop(DropReason::IcmpNotRelayed);
                }
                if !e.checksum_ok(pkt.data()) {
                    return Action::Drop(DropReason::IcmpBadChecksum);
                }
                if ip.ttl <= 1 {
                    return Action::Drop(DropReason::TtlExceeded);
                }
                // Back to what the client sent: `AC:p → AA:g`, from `AA`.
                let k = hit.key;
                let Some((out_port, _, src_mac, dst_mac)) = self.route(k.src) else {
                    return Action::Drop(DropReason::NoNeighbour);
                };
                let rw = ErrorRewrite { outer_src: k.dst, outer_dst: k.src, quoted_src: (k.src, k.sport), quoted_dst: (k.dst, k.dport) };
                if let Err(r) = forward::translate_icmp_error(pkt, &rw) {
                    return Action::Drop(r);
                }
                forward::set_eth(pkt, src_mac, dst_mac);
                self.stats.icmp_translated += 1;
                Action::Tx(out_port)
            }
            _ => Action::Punt(Punt::Exception),
        }
    }

    /// An ICMP error from a router inside one of our tunnels, quoting our
    /// outer header (RFC 2003 §4; see the module documentation).
    fn tunnel_error<B: PacketBuf>(&mut self, pkt: &mut B, e: &IcmpErr, now: Nanos) -> Action {
        if self.tables.proxy_by_addr(e.q_dst).is_none() {
            return Action::Drop(DropReason::IcmpErrorUnmatched);
        }
        let kind = match (e.ty, e.code) {
            (11, _) => IcmpError::HostUnreachable,
            (3, 3) | (3, 5) => return Action::Drop(DropReason::IcmpNotRelayed),
            (3, 4) => {
                let outer_len = e.q_total;
                let mtu = if e.mtu == 0 || e.mtu >= outer_len { forward::plateau_below(outer_len) } else { e.mtu };
                IcmpError::FragNeeded { mtu: mtu.saturating_sub(OUTER_HEADER_LEN as u16).max(68) }
            }
            (3, _) => IcmpError::HostUnreachable,
            _ => return Action::Drop(DropReason::IcmpNotRelayed),
        };
        if !e.checksum_ok(pkt.data()) {
            return Action::Drop(DropReason::IcmpBadChecksum);
        }
        // The inner packet, as far as the router quoted it.
        let inner_off = e.q_off + e.q_hlen;
        let inner_len = e.q_len.saturating_sub(e.q_hlen);
        let inner_src = {
            let d = pkt.data();
            let Some(ib) = d.get(inner_off..inner_off + inner_len) else {
                return Action::Drop(DropReason::IcmpQuoteTooShort);
            };
            let inner = Ipv4Packet::new_unchecked(ib);
            if inner.check_header_len().is_err() || ib.len() < inner.header_len() + 8 {
                return Action::Drop(DropReason::IcmpQuoteTooShort);
            }
            if inner.is_non_initial_fragment() {
                return Action::Drop(DropReason::IcmpNotRelayed);
            }
            if inner.protocol() == IpProtocol::Icmp {
                let t = ib[inner.header_len()];
                if crate::wire::Icmpv4Message::from(t).is_error() {
                    return Action::Drop(DropReason::IcmpNotRelayed);
                }
            }
            let src = inner.src_addr();
            let bad = src.is_multicast() || src.is_broadcast() || src.is_unspecified() || src.is_loopback();
            if bad || self.local.is_unicast_own(src) || self.local.is_anycast(src) || !self.local.is_anycast(inner.dst_addr()) {
                return Action::Drop(DropReason::IcmpErrorUnmatched);
            }
            src
        };
        if !self.icmp_limit.take(now) {
            return Action::Drop(DropReason::IcmpRateLimited);
        }
        let Some((out_port, src_ip, src_mac, dst_mac)) = self.route(inner_src) else {
            return Action::Drop(DropReason::NoNeighbour);
        };
        let relay = Relay { kind, from: src_ip, to: inner_src, src_mac, dst_mac, ident: self.next_ident() };
        if !forward::relay_error_in_place(pkt, inner_off, inner_len, &relay) {
            return Action::Drop(DropReason::IcmpQuoteTooShort);
        }
        self.stats.icmp_relayed += 1;
        self.stats.icmp_sent += 1;
        Action::Tx(out_port)
    }

    // ----- segments 2/3/7 arriving: RAP or JAP ----------------------------

    fn tunnel_in<B: PacketBuf>(&mut self, tables: &Tables, pkt: &mut B, port: usize, outer: &Ip4, now: Nanos) -> Action {
        // Only proxies tunnel to us (spoofed outer sources are dropped).
        let Some(iap) = tables.proxy_by_addr(outer.src).copied() else {
            return Action::Drop(DropReason::TunnelUnknownSource);
        };
        if outer.first_frag || outer.later_frag {
            return Action::Drop(DropReason::TunnelFragment);
        }
        let mut inner = match read_inner(pkt.data(), outer) {
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
        if inner.proto == 1 {
            return self.tunnel_icmp(tables, pkt, port, outer, &inner, iap.cluster, now);
        }
        if inner.is_fragment() {
            if matches!(inner.proto, 6 | 17) {
                match self.frag_ports(Plane::Tunnel, &inner, port, now) {
                    Ok(p) => (inner.sport, inner.dport) = (p.sport, p.dport),
                    Err(a) => return a,
                }
            } else if inner.later_frag {
                return Action::Drop(DropReason::FragmentUnmatched);
            }
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
                return self.hand_to(owner);
            }
            if inner.ttl == 0 {
                return Action::Drop(DropReason::TtlExceeded);
            }
            if !forward::decap(pkt, outer.hlen) {
                return Action::Drop(DropReason::TunnelMalformed);
            }
            return self.jap(tables, pkt, port, &inner, group, entry, Some(outer.src), now);
        }
        // RAP: choose a JAP and send it on (segment 3).
        if entry.has_rap(me) {
            let Some(jap) = select::choose_jap(tables, entry, iap.cluster, client_hash(inner.src), key.hash()) else {
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
        let Some(rap) = other_rap(tables, entry, me) else {
            return Action::Drop(DropReason::NoTarget);
        };
        self.retunnel(pkt, outer, &inner, rap, port, |s| s.jap_bounced += 1, now)
    }

    /// A tunnelled ICMP error about one of our replies, sent on by an IAP
    /// ([`Path::iap_icmp`]): at the JAP, translated for the target; at the
    /// RAP, sent on to the JAP of the quoted flow. No event, no bounce.
    #[allow(clippy::too_many_arguments)]
    fn tunnel_icmp<B: PacketBuf>(&mut self, tables: &Tables, pkt: &mut B, port: usize, outer: &Ip4, inner: &Ip4, iap_cluster: ClusterId, now: Nanos) -> Action {
        if inner.is_fragment() {
            return Action::Drop(DropReason::IcmpUnhandled);
        }
        let inner_off = ETH_LEN + outer.hlen;
        let e = match read_icmp_error(pkt.data(), inner_off, inner) {
            Ok(Some(e)) => e,
            Ok(None) => return Action::Drop(DropReason::IcmpUnhandled),
            Err(r) => return Action::Drop(r),
        };
        if e.never_relayed() {
            return Action::Drop(DropReason::IcmpNotRelayed);
        }
        if !e.quotes_ports() || e.q_src != inner.dst {
            return Action::Drop(DropReason::IcmpErrorUnmatched);
        }
        if !e.checksum_ok(pkt.data()) {
            return Action::Drop(DropReason::IcmpBadChecksum);
        }
        let key = e.reply_flow();
        let Some((_, entry)) = tables.group_for(key.dst, key.dport, key.proto) else {
            return Action::Drop(DropReason::IcmpErrorUnmatched);
        };
        let me = tables.me();
        if !entry.targets().is_empty() {
            let owner = flow::owner(&key, self.workers);
            if owner != self.worker {
                return self.hand_to(owner);
            }
            if !forward::decap(pkt, outer.hlen) {
                return Action::Drop(DropReason::TunnelMalformed);
            }
            return self.jap_icmp(pkt, &key, now);
        }
        if entry.has_rap(me) {
            let Some(jap) = select::choose_jap(tables, entry, iap_cluster, client_hash(key.src), key.hash()) else {
                return Action::Drop(DropReason::IcmpErrorUnmatched);
            };
            let Some(dst) = tables.proxy(jap).map(|p| p.addr).filter(|_| jap != me) else {
                return Action::Drop(DropReason::IcmpErrorUnmatched);
            };
            return self.retunnel(pkt, outer, inner, dst, port, |s| s.icmp_tunnelled += 1, now);
        }
        Action::Drop(DropReason::IcmpErrorUnmatched)
    }

    /// Sends a received tunnel packet on to `dst`: the outer header is
    /// rewritten in place (source: this proxy; fresh TTL and ident), the
    /// inner TTL decremented once.
    #[allow(clippy::too_many_arguments)]
    fn retunnel<B: PacketBuf>(&mut self, pkt: &mut B, outer: &Ip4, inner: &Ip4, dst: Ipv4Addr, port: usize, count: impl FnOnce(&mut PathStats), now: Nanos) -> Action {
        if inner.ttl <= 1 {
            // Answer about the inner packet, to the client.
            if !forward::decap(pkt, outer.hlen) {
                return Action::Drop(DropReason::TunnelMalformed);
            }
            return self.icmp_error(pkt, port, IcmpError::TtlExceeded, DropReason::TtlExceeded, now);
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
    #[allow(clippy::too_many_arguments)]
    fn jap_local<B: PacketBuf>(&mut self, tables: &Tables, pkt: &mut B, port: usize, ip: &Ip4, group: GroupAddr, entry: &GroupEntry, now: Nanos) -> Action {
        let key = FlowKey::new(ip.src, ip.sport, ip.dst, ip.dport, ip.proto);
        let owner = flow::owner(&key, self.workers);
        if owner != self.worker {
            return self.hand_to(owner);
        }
        self.jap(tables, pkt, port, ip, group, entry, None, now)
    }

    /// NATs the (decapsulated) packet to a target: `AC:p → AA:g` becomes
    /// `JAP:q → AT:r`. `iap` is the tunnel's source, when it came by one.
    /// A non-first fragment only follows an existing mapping.
    #[allow(clippy::too_many_arguments)]
    fn jap<B: PacketBuf>(&mut self, tables: &Tables, pkt: &mut B, port: usize, ip: &Ip4, group: GroupAddr, entry: &GroupEntry, iap: Option<Ipv4Addr>, now: Nanos) -> Action {
        let key = FlowKey::new(ip.src, ip.sport, ip.dst, ip.dport, ip.proto);
        let flags = ip.tcp_flags;
        let hit = match self.nat.lookup_forward(&key, now, flags) {
            Some(h) => h,
            None if ip.later_frag => return Action::Drop(DropReason::FragmentUnmatched),
            None => {
                let Some(mut target) = select::choose_target(entry, key.hash(), ip.src) else {
                    // No live target here: back to a RAP, the IAP told.
                    if let Some(iap) = iap {
                        self.events.push(Up::JapNoTarget { group, iap }, &mut self.stats);
                        if let Some(rap) = other_rap(tables, entry, tables.me()) {
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
                // The lookup above has just missed: no second probe.
                match self.nat.create_missed(&key, target, now, flags) {
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
            return self.icmp_error(pkt, port, IcmpError::TtlExceeded, DropReason::TtlExceeded, now);
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

    /// Translates an ICMP error about our reply (quoting `AA:g → AC:p`,
    /// the packet after the Ethernet header, decapsulated) for the target:
    /// outer `JAP → AT`, quote `AT:r → JAP:q` (what the target sent).
    fn jap_icmp<B: PacketBuf>(&mut self, pkt: &mut B, key: &FlowKey, now: Nanos) -> Action {
        let Some(hit) = self.nat.peek_forward(key, now) else {
            return Action::Drop(DropReason::IcmpErrorUnmatched);
        };
        let ttl = pkt.data().get(ETH_LEN + 8).copied().unwrap_or(0);
        if ttl <= 1 {
            return Action::Drop(DropReason::TtlExceeded);
        }
        let t = hit.target;
        let Some((out_port, src_ip, src_mac, dst_mac)) = self.route(t.ip) else {
            return Action::Drop(DropReason::NoNeighbour);
        };
        let rw = ErrorRewrite { outer_src: src_ip, outer_dst: t.ip, quoted_src: (t.ip, t.port), quoted_dst: (src_ip, hit.nat_port) };
        if let Err(r) = forward::translate_icmp_error(pkt, &rw) {
            return Action::Drop(r);
        }
        forward::set_eth(pkt, src_mac, dst_mac);
        self.stats.icmp_translated += 1;
        Action::Tx(out_port)
    }

    // ----- segments 5 → 6: reverse NAT ------------------------------------

    fn reverse<B: PacketBuf>(&mut self, pkt: &mut B, port: usize, ip: &Ip4, now: Nanos) -> Action {
        let target = TargetAddr { ip: ip.src, port: ip.sport };
        let owner = self.ports.worker_of_port(ip.dport);
        if let Some(w) = owner {
            if w != self.worker {
                return self.hand_to(w);
            }
        }
        let hit = owner.and_then(|_| self.nat.lookup_reverse(target, ip.dport, ip.proto, now, ip.tcp_flags));
        let Some(hit) = hit else {
            // Not a NATed flow: the control plane's TCP health probes
            // leave from the control port; else the host's own traffic
            // (BGP, BFD, SSH…) unless it comes from one of our targets.
            return if ip.proto == 6 && ip.dport == self.cfg.control_port {
                Action::Punt(Punt::Control)
            } else if self.tables.is_local_target(ip.src) {
                Action::Drop(DropReason::NatNoEntry)
            } else {
                Action::Punt(Punt::Exception)
            };
        };
        if ip.ttl <= 1 {
            return self.icmp_error(pkt, port, IcmpError::TtlExceeded, DropReason::TtlExceeded, now);
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
    fn route(&mut self, dst: Ipv4Addr) -> Option<(usize, Ipv4Addr, Mac, Mac)> {
        let (pi, hop) = match self.local.ports.iter().position(|p| p.subnet.contains(dst)) {
            Some(pi) => (pi, dst),
            None => (0, self.local.ports.first()?.gateway),
        };
        let p = &self.local.ports[pi];
        let mac = self.macs.get(&self.neigh, pi as u16, hop)?;
        Some((pi, p.ip, p.mac, mac))
    }

    /// Replaces the neighbour snapshot (the worker's [`crate::iface::Down::Neighbours`])
    /// and returns the old one, which nothing here references any more
    /// (the MAC cache lets go of it too), so it is freed wherever the
    /// caller drops it: on the control core, not on the worker.
    pub fn set_neighbours(&mut self, n: Arc<Neighbours>) -> Arc<Neighbours> {
        self.macs.clear();
        std::mem::replace(&mut self.neigh, n)
    }

    /// Answers the packet with an ICMP error of our own, back to the hop it
    /// came from, when RFC 1812 §4.3.2.7 allows one and the rate limit has
    /// a token; else drops it under `reason` (or `icmp_rate_limited`).
    fn icmp_error<B: PacketBuf>(&mut self, pkt: &mut B, port: usize, kind: IcmpError, reason: DropReason, now: Nanos) -> Action {
        let Some(me) = self.local.ports.get(port) else { return Action::Drop(reason) };
        let (ip, mac) = (me.ip, me.mac);
        if !forward::may_answer_with_error(pkt.data()) {
            return Action::Drop(reason);
        }
        if !self.icmp_limit.take(now) {
            return Action::Drop(DropReason::IcmpRateLimited);
        }
        forward::trim_to_ip(pkt);
        let ident = self.next_ident();
        if !forward::icmp_error_in_place(pkt, kind, ip, mac, ident) {
            return Action::Drop(reason);
        }
        self.stats.icmp_sent += 1;
        // The error goes to the offending packet's source by the routing
        // table, not back to the previous hop: after a tunnel the previous
        // hop is a proxy, not the way to the client.
        let d = pkt.data();
        let dst = Ipv4Addr::new(d[ETH_LEN + 16], d[ETH_LEN + 17], d[ETH_LEN + 18], d[ETH_LEN + 19]);
        match self.route(dst) {
            Some((out_port, _, src_mac, dst_mac)) if out_port == port => {
                forward::set_eth(pkt, src_mac, dst_mac);
                Action::Tx(out_port)
            }
            // Another port, or no resolved next hop: back the way it came.
            _ => Action::Tx(port),
        }
    }
}

/// Entries of the [`MacCache`] (direct-mapped, by next-hop address).
const MAC_CACHE: usize = 16;

/// The worker's cache of next-hop MACs from its neighbour snapshot: most
/// packets of a stage go to one next hop (the gateway, a peer proxy), and
/// the snapshot's hash lookup cost ~60 instructions per packet.
///
/// Valid for one snapshot only: it holds a reference to the snapshot it
/// was filled from and is emptied when `Path::neigh` is another one. The
/// reference keeps that snapshot alive, so no new snapshot can be
/// allocated at its address while entries refer to it (no ABA).
#[derive(Debug, Default)]
struct MacCache {
    snapshot: Option<Arc<Neighbours>>,
    slots: [Option<(u16, Ipv4Addr, Mac)>; MAC_CACHE],
}

impl MacCache {
    /// The MAC of `hop` on `port` in `neigh`.
    #[inline]
    fn get(&mut self, neigh: &Arc<Neighbours>, port: u16, hop: Ipv4Addr) -> Option<Mac> {
        if !self.snapshot.as_ref().is_some_and(|s| Arc::ptr_eq(s, neigh)) {
            self.slots = [None; MAC_CACHE];
            self.snapshot = Some(Arc::clone(neigh));
        }
        let b = hop.to_bits();
        let i = ((b ^ (b >> 8) ^ u32::from(port)) as usize) % MAC_CACHE;
        match self.slots[i] {
            Some((p, h, mac)) if p == port && h == hop => Some(mac),
            _ => {
                // Unresolved hops are not cached: the next snapshot may
                // resolve them, and it empties the cache anyway.
                let mac = neigh.get(port, hop)?;
                self.slots[i] = Some((port, hop, mac));
                Some(mac)
            }
        }
    }

    fn clear(&mut self) {
        self.snapshot = None;
        self.slots = [None; MAC_CACHE];
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
///
/// A non-first fragment has no transport header: only its IP header
/// changes (the transport checksum, in the first fragment, was updated
/// there for the whole datagram).
///
/// Each header's checksum is updated once for all its changes
/// ([`checksum::Delta`]: the same bytes as one incremental update per
/// field, with one fold instead of up to five).
fn rewrite<B: PacketBuf>(pkt: &mut B, ip: &Ip4, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Result<(), DropReason> {
    forward::trim_to_ip(pkt);
    let d = pkt.data_mut();
    let (hdr, l4) = d[ETH_LEN..].split_at_mut(ip.hlen);
    let l4 = &mut l4[..ip.total - ip.hlen];
    let mut h = Ipv4Packet::new_unchecked(&mut hdr[..]);
    let (old_src, old_dst) = (h.src_addr(), h.dst_addr());
    let mut ipd = checksum::Delta::NONE;
    ipd.word32(old_src.to_bits(), src.0.to_bits());
    ipd.word32(old_dst.to_bits(), dst.0.to_bits());
    h.set_src_addr(src.0);
    h.set_dst_addr(dst.0);
    // As `decrement_ttl`: a TTL of 0 stays (callers answer TTL ≤ 1 first).
    if let Some(ttl) = h.ttl().checked_sub(1) {
        let proto = u8::from(h.protocol());
        ipd.word(u16::from_be_bytes([ttl + 1, proto]), u16::from_be_bytes([ttl, proto]));
        h.set_ttl(ttl);
    }
    h.set_checksum(ipd.apply(h.checksum()));
    if ip.later_frag {
        return Ok(());
    }
    // The pseudo-header's addresses and both ports.
    let mut l4d = checksum::Delta::NONE;
    l4d.word32(old_src.to_bits(), src.0.to_bits());
    l4d.word32(old_dst.to_bits(), dst.0.to_bits());
    match ip.proto {
        17 => {
            let mut u = UdpPacket::new_unchecked(l4);
            l4d.word(u.src_port(), src.1);
            l4d.word(u.dst_port(), dst.1);
            u.set_src_port(src.1);
            u.set_dst_port(dst.1);
            // A UDP checksum of 0 (none) stays 0; a computed 0 is sent as
            // 0xFFFF (RFC 768).
            let c = u.checksum();
            if c != 0 {
                u.set_checksum(match l4d.apply(c) {
                    0 => 0xFFFF,
                    c => c,
                });
            }
        }
        6 => {
            let mut t = TcpPacket::new_checked(l4).map_err(|_| DropReason::L4Malformed)?;
            l4d.word(t.src_port(), src.1);
            l4d.word(t.dst_port(), dst.1);
            t.set_src_port(src.1);
            t.set_dst_port(dst.1);
            t.set_checksum(l4d.apply(t.checksum()));
        }
        _ => return Err(DropReason::UnsupportedProtocol),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    #[test]
    fn rate_limit_allows_a_burst_then_the_rate() {
        let mut r = RateLimit::new(100, 5);
        let t0 = 1_000 * MS;
        assert_eq!((0..10).filter(|_| r.take(t0)).count(), 5);
        assert!(!r.take(t0 + 9 * MS));
        assert!(r.take(t0 + 10 * MS), "one token per 10 ms");
        assert!(!r.take(t0 + 10 * MS));
        // Idle long: the bucket refills to the burst, no more.
        assert_eq!((0..10).filter(|_| r.take(t0 + 10_000 * MS)).count(), 5);
        // Rate 0: nothing passes; a huge rate: everything.
        let mut none = RateLimit::new(0, 10);
        assert!(!none.take(t0));
        let mut all = RateLimit::new(u32::MAX, u32::MAX);
        assert!((0..1000).all(|_| all.take(t0)));
        // Time 0 and u64::MAX do not overflow.
        assert!(RateLimit::new(1, 1).take(0));
        assert!(RateLimit::new(1, 1).take(Nanos::MAX));
    }

    /// `rewrite` before `checksum::Delta`: one incremental update per field.
    fn rewrite_field_by_field(d: &mut [u8], ip: &Ip4, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) {
        let (hdr, l4) = d[ETH_LEN..].split_at_mut(ip.hlen);
        let l4 = &mut l4[..ip.total - ip.hlen];
        let mut h = Ipv4Packet::new_unchecked(&mut hdr[..]);
        let (old_src, old_dst) = (h.src_addr(), h.dst_addr());
        h.set_src_addr_incremental(src.0);
        h.set_dst_addr_incremental(dst.0);
        h.decrement_ttl();
        if ip.later_frag {
            return;
        }
        if ip.proto == 17 {
            let mut u = UdpPacket::new_unchecked(l4);
            u.update_addr_checksum(old_src, src.0);
            u.update_addr_checksum(old_dst, dst.0);
            u.set_src_port_incremental(src.1);
            u.set_dst_port_incremental(dst.1);
        } else {
            let mut t = TcpPacket::new_unchecked(l4);
            t.update_addr_checksum(old_src, src.0);
            t.update_addr_checksum(old_dst, dst.0);
            t.set_src_port_incremental(src.1);
            t.set_dst_port_incremental(dst.1);
        }
    }

    proptest::proptest! {
        /// The one-fold rewrite gives the bytes of the field-by-field one,
        /// whatever the checksums, TTL, addresses and ports (0, 0xFFFF and
        /// UDP's checksum 0 included).
        #[test]
        fn rewrite_equals_field_by_field(
            tcp: bool,
            later_frag: bool,
            ttl in proptest::prop_oneof![proptest::prelude::Just(0u8), proptest::prelude::Just(1u8), proptest::prelude::Just(255u8), 0u8..=255],
            ip_sum in proptest::prop_oneof![proptest::prelude::Just(0u16), proptest::prelude::Just(0xFFFFu16), 0u16..=0xFFFF],
            l4_sum in proptest::prop_oneof![proptest::prelude::Just(0u16), proptest::prelude::Just(0xFFFFu16), 0u16..=0xFFFF],
            old: (u32, u16, u32, u16),
            new: (u32, u16, u32, u16),
        ) {
            let proto = if tcp { 6u8 } else { 17 };
            let mut f = vec![0u8; ETH_LEN + 20 + 20];
            let ipb = &mut f[ETH_LEN..];
            ipb[0] = 0x45;
            ipb[2..4].copy_from_slice(&40u16.to_be_bytes());
            ipb[8] = ttl;
            ipb[9] = proto;
            ipb[10..12].copy_from_slice(&ip_sum.to_be_bytes());
            ipb[12..16].copy_from_slice(&old.0.to_be_bytes());
            ipb[16..20].copy_from_slice(&old.2.to_be_bytes());
            ipb[20..22].copy_from_slice(&old.1.to_be_bytes());
            ipb[22..24].copy_from_slice(&old.3.to_be_bytes());
            ipb[32] = 0x50; // TCP data offset 5
            let at = if tcp { 20 + 16 } else { 20 + 6 };
            ipb[at..at + 2].copy_from_slice(&l4_sum.to_be_bytes());
            let ip = Ip4 {
                src: Ipv4Addr::from_bits(old.0),
                dst: Ipv4Addr::from_bits(old.2),
                proto,
                ttl,
                hlen: 20,
                total: 40,
                df: false,
                first_frag: false,
                later_frag,
                ident: 0,
                frag_off: 0,
                more: false,
                sport: old.1,
                dport: old.3,
                tcp_flags: None,
            };
            let (src, dst) = ((Ipv4Addr::from_bits(new.0), new.1), (Ipv4Addr::from_bits(new.2), new.3));
            let mut want = f.clone();
            rewrite_field_by_field(&mut want, &ip, src, dst);
            let mut b = VecBuf::new(&f);
            proptest::prop_assert_eq!(rewrite(&mut b, &ip, src, dst), Ok(()));
            proptest::prop_assert_eq!(b.to_vec(), want);
        }
    }

    #[test]
    fn mac_cache_follows_the_snapshot() {
        use crate::neighbour::{Resolver, ResolverTiming};
        let hop = Ipv4Addr::new(192, 0, 2, 1);
        let other = Ipv4Addr::new(192, 0, 2, 17); // same slot as `hop` on port 0
        let snap = |pins: &[(Ipv4Addr, u8)]| {
            let mut r = Resolver::new(ResolverTiming::from_refresh_secs(30));
            for &(ip, m) in pins {
                r.pin(0, ip, [2, 0, 0, 0, 0, m]);
            }
            Arc::new(r.take_snapshot().unwrap_or_default())
        };
        let mut c = MacCache::default();
        let a = snap(&[(hop, 1)]);
        assert_eq!(c.get(&a, 0, hop), Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(c.get(&a, 0, hop), Some([2, 0, 0, 0, 0, 1]), "cached");
        assert_eq!(c.get(&a, 1, hop), None, "another port");
        assert_eq!(c.get(&a, 0, other), None, "unresolved");
        // A new snapshot: the MAC changed, the other hop resolved.
        let b = snap(&[(hop, 2), (other, 3)]);
        assert_eq!(c.get(&b, 0, hop), Some([2, 0, 0, 0, 0, 2]));
        assert_eq!(c.get(&b, 0, other), Some([2, 0, 0, 0, 0, 3]));
        assert_eq!(c.get(&b, 0, hop), Some([2, 0, 0, 0, 0, 2]), "a collision evicts, never confuses");
        // Back to the first (still alive): refilled from it.
        assert_eq!(c.get(&a, 0, other), None);
        // The cache holds the snapshot it was filled from, until cleared.
        assert_eq!(Arc::strong_count(&a), 2);
        c.clear();
        assert_eq!(Arc::strong_count(&a), 1);
    }

    #[test]
    fn a_path_moves_to_its_worker() {
        fn send<T: Send>() {}
        send::<Path>();
        send::<Path<Vec<u8>>>();
    }
}
