//! The JAP's NAT table: one per worker (seed Figure 2, segments 4 and 6;
//! issue 4 items 5, 6, 8).
//!
//! Forward, a client's packet `AC:p → AA:g` leaves the JAP as `JAP:q → AT:r`
//! (`JAP:q = NAT(AC:p)`); reverse, the target's reply `AT:r → JAP:q` leaves
//! as `AA:g → AC:p`. The table maps the forward key ([`FlowKey`]) to the
//! target and the NAT port `q`, and the reverse key `(AT, r, q, proto)` back
//! to the flow. It knows no packet format: the JAP stage parses, asks, and
//! rewrites.
//!
//! # Shape (10 M flows in ≤ 1 GiB, no allocation after construction)
//!
//! - A slab of 32-byte entries (`Vec`, capacity `max_flows`, reserved once
//!   in [`NatTable::new`]; pages are touched as the table fills), with an
//!   intrusive free list. An entry holds the client, group and target
//!   addresses and ports, `q`, the protocol, the TCP state bits and its
//!   deadline in [`Nanos`].
//! - Two open-addressing indexes (forward key → slot, reverse key → slot) of
//!   8-byte slots, sized once to ≥ 1.5 × `max_flows` (load ≤ ⅔), deleted by
//!   backward shift: no tombstones, so no rehash and no allocation ever,
//!   whatever the churn. Their hash is [`crate::flow::hash2`] under the
//!   table's own [`NatConfig::hash_seed`], independent of the ownership hash.
//! - Memory at capacity: 32 B of slab + 2 × 8 B × (1.5…3) index slots, i.e.
//!   56–80 B per flow; 10 M flows take 320 MB + 2 × 134 MB ≈ 588 MB
//!   (≈ 59 B per flow). [`NatTable::memory_bytes`] reports it.
//! - The slab and both indexes are advised onto transparent huge pages
//!   (`crate::huge_pages`): a random lookup in hundreds of MB then costs no
//!   4 KiB TLB miss. A burst's index slots and entries are loaded before
//!   its packets are processed ([`NatTable::prefetch_forward`],
//!   [`NatTable::touch_entry`]) so that their cache misses overlap.
//!
//! The table is single-writer (DESIGN.md §2): only its worker calls it, so it
//! takes no lock. No method but [`NatTable::new`] allocates, and none panics
//! on any key, address, port or time.
//!
//! # Lifetimes (RFC 4787 REQ-5/6, RFC 5382 REQ-5, RFC 7857 §2.2)
//!
//! Every packet of a flow, in either direction, refreshes its entry: the
//! deadline becomes `now + timeout(state)`. An entry is dead from its
//! deadline on: lookups treat it as absent and free it on contact, and
//! [`NatTable::expire`] walks the slab a bounded number of slots per call
//! (amortised expiry: bounded work per poll iteration, never a stall) and
//! frees the rest. Defaults ([`NatConfig::default`]) are the RFC minimums,
//! which are also VPP's defaults:
//!
//! | protocol / state | timeout |
//! |---|---|
//! | UDP (and any other protocol) | 300 s (RFC 4787 REQ-5: ≥ 2 min, 5 min recommended) |
//! | ICMP echo | 60 s (RFC 5508 REQ-1) |
//! | TCP opening (SYN seen one way, or no handshake seen yet) | 240 s transitory (RFC 5382 REQ-5) |
//! | TCP established (SYN seen both ways, or traffic both ways on a flow picked up mid-stream), also with a FIN in one direction (half-close may last) | 7 440 s = 2 h 4 min (RFC 5382 REQ-5) |
//! | TCP closed (FIN seen both ways) | 240 s transitory |
//! | TCP reset (RST seen) | [`NatConfig::tcp_rst_grace`], default 240 s |
//!
//! RST policy: RFC 7857 §2.2 says a NAT should not delete a session on a
//! RST at once (the RST may be out of window and ignored by the peer, RFC
//! 5961) but keep it for 4 minutes if no further packet is seen. So a RST
//! moves the flow to the reset state with the grace timeout; any later
//! packet of the flow refreshes the grace (a connection that is really
//! alive keeps its mapping), and only a new SYN from the client leaves the
//! reset state (a new connection on the same tuple). An operator wanting a
//! "short grace" sets `tcp_rst_grace` to a few seconds.
//!
//! TCP sequences handled (RFC 5382 REQ-2): retransmitted SYN (stays opening,
//! refreshed), SYN/SYN-ACK, simultaneous open (SYN both ways without ACK),
//! half-close, simultaneous close, RST either way, and a new SYN after a
//! close or a reset on the same tuple (same mapping, state restarted).
//!
//! No ICMP message may create, refresh or end a mapping (RFC 4787 REQ-12,
//! RFC 5382 REQ-10, RFC 5508 REQ-6): translate ICMP errors with
//! [`NatTable::peek_forward`] / [`NatTable::peek_reverse`], which change
//! nothing. (ICMP *echo* flows, whose identifier plays the port, are flows
//! like any other and are refreshed by their echo traffic.)
//!
//! # Ports (RFC 4787 REQ-1 spirit; issue 4 item 8)
//!
//! `q` is unique per `(target ip, target port, proto)`: that is exactly what
//! the reverse key needs, and it lets one worker serve its whole port slice
//! to every target. It is drawn from this worker's slice of the NAT range
//! ([`crate::flow::NatPorts::range_of`], passed as [`NatConfig::ports`]) by
//! a cursor that moves on after each allocation, probing the reverse index
//! at most [`NatConfig::port_tries`] times. A port held by a live entry is
//! never taken: a port is reused only after its entry's deadline (an
//! expired holder met by the probe is freed then and there). When no port
//! is found the flow is refused ([`NatError::PortsExhausted`]) and counted;
//! when the slab is full (after reclaiming expired entries met by a short
//! sweep) it is refused ([`NatError::TableFull`]) and counted. A live entry
//! is never evicted.
//!
//! # One flow, one entry
//!
//! All packets of `(AC, p, AA, g, proto)` use the same `q` and the same
//! target for the entry's lifetime. [`NatTable::create`] on a key that
//! already has a live entry does not create a second one: it treats the
//! packet as a hit on the existing entry and returns it with
//! [`NatHit::created`] false (its `target` argument is ignored).

use core::net::Ipv4Addr;

use crate::flow::{hash2, FlowKey, PortRange, SlotIndex, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use crate::neighbour::Nanos;
use crate::types::TargetAddr;
use crate::wire::TcpFlags;

/// One second in [`Nanos`].
pub const SECOND: Nanos = 1_000_000_000;

/// Most flows one table may be built for (2²⁸; 8.6 GB of slab).
pub const MAX_FLOWS_LIMIT: usize = 1 << 28;

/// Slab slots a refused-for-full [`NatTable::create`] sweeps to reclaim
/// expired entries before giving up (a contiguous 2 KiB walk).
const RECLAIM_SWEEP: usize = 64;

/// Memory in use from which [`NatTable::prefetch_worthwhile`] says yes:
/// about twice a core's L2 cache (1–2 MiB on the machines measured).
pub const PREFETCH_MIN_BYTES: usize = 4 << 20;

/// Domain separator of the reverse-key hash.
const REVERSE_DOMAIN: u64 = 0x7265_7665_7273_6521; // "reverse!"

/// Timeouts and sizes of one worker's NAT table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatConfig {
    /// UDP idle timeout (also used for protocols without state tracking).
    pub udp_idle: Nanos,
    /// TCP established idle timeout.
    pub tcp_established: Nanos,
    /// TCP transitory timeout: opening, and closed (FIN both ways).
    pub tcp_transitory: Nanos,
    /// How long a flow lives after a RST with no further packet.
    pub tcp_rst_grace: Nanos,
    /// ICMP echo idle timeout.
    pub icmp_idle: Nanos,
    /// Capacity of the table (flows), reserved at construction.
    pub max_flows: usize,
    /// This worker's NAT ports.
    pub ports: PortRange,
    /// Most reverse-index probes per port allocation (at least 1).
    pub port_tries: u16,
    /// Seed of the index hashes. Any value works; a deployment may draw it
    /// at start-up so that index collisions cannot be predicted.
    pub hash_seed: u64,
    /// A port in `ports` never handed out: piasd reserves the PIAS control
    /// port, the source of its TCP health probes, so a probe's SYN can
    /// never share a 4-tuple with a NATed flow to the same target.
    pub reserved_port: Option<u16>,
}

impl Default for NatConfig {
    /// The RFC minimums (VPP's defaults), 1 Mi flows, ports 1024–65535.
    fn default() -> Self {
        NatConfig {
            udp_idle: 300 * SECOND,
            tcp_established: 7440 * SECOND,
            tcp_transitory: 240 * SECOND,
            tcp_rst_grace: 240 * SECOND,
            icmp_idle: 60 * SECOND,
            max_flows: 1 << 20,
            ports: PortRange::default(),
            port_tries: 64,
            hash_seed: 0x6e61_7434_345f_7069, // "nat44_pi"
            reserved_port: None,
        }
    }
}

/// Why a NAT table cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NatConfigError {
    /// `max_flows` is 0.
    #[error("max_flows must be at least 1")]
    NoFlows,
    /// `max_flows` is above [`MAX_FLOWS_LIMIT`].
    #[error("max_flows {max_flows} is above the limit of {limit} per worker")]
    TooManyFlows {
        /// The configured value.
        max_flows: usize,
        /// [`MAX_FLOWS_LIMIT`].
        limit: usize,
    },
    /// The port range has `lo > hi`.
    #[error("the NAT port range {0} is empty (lo > hi)")]
    EmptyPortRange(PortRange),
}

/// Why a new flow was refused. Counted, never allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatError {
    /// The table holds `max_flows` live entries.
    TableFull,
    /// No free NAT port toward this target (this worker's slice is in use
    /// for `(target ip, target port, proto)`, or the bounded probe found
    /// none).
    PortsExhausted,
}

/// A slab slot number. Valid until the next call that may free entries
/// (`lookup_*`, `create`, `expire`); meant for use within one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId(u32);

impl EntryId {
    /// The slot number.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A forward hit: where the packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatHit {
    /// The entry.
    pub id: EntryId,
    /// The target `AT:r` (the new destination).
    pub target: TargetAddr,
    /// The NAT port `q` (the new source port; for ICMP echo, the new
    /// identifier).
    pub nat_port: u16,
    /// True when this call created the entry.
    pub created: bool,
    /// True once a reverse packet has been seen (passive health: a flow
    /// that never hears back points at a dead target, seed §3.3).
    pub replied: bool,
}

/// A lookup prefetched by [`NatTable::prefetch_forward`] or
/// [`NatTable::prefetch_reverse`], for [`NatTable::prefetch_entry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatPrefetch {
    hash: u64,
    reverse: bool,
}

/// A reverse hit: the flow a target's reply belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReverseHit {
    /// The entry.
    pub id: EntryId,
    /// The forward key as the client sent it. The reply is rewritten to
    /// `key.dst:key.dport → key.src:key.sport` (`AA:g → AC:p`).
    pub key: FlowKey,
}

/// The TCP state of a flow, from the flags the NAT has seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// SYN seen one way (or no handshake yet): transitory timeout.
    Opening,
    /// Handshake seen both ways (or traffic both ways): established.
    Established,
    /// FIN seen in one direction: established timeout still (half-close).
    Closing,
    /// FIN seen both ways: transitory timeout.
    Closed,
    /// RST seen: the RST grace.
    Reset,
}

/// A view of one entry (status displays, tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowInfo {
    /// The entry.
    pub id: EntryId,
    /// The client's forward key.
    pub key: FlowKey,
    /// The target.
    pub target: TargetAddr,
    /// The NAT port.
    pub nat_port: u16,
    /// When the entry dies unless refreshed (may be past: not yet freed).
    pub expires_at: Nanos,
    /// A reverse packet has been seen.
    pub replied: bool,
    /// TCP state, for TCP flows.
    pub tcp: Option<TcpState>,
}

/// Counters of one table (monotonic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatCounters {
    /// Entries created.
    pub created: u64,
    /// Entries freed at or after their deadline.
    pub expired: u64,
    /// New flows refused: table full.
    pub refused_full: u64,
    /// New flows refused: no free NAT port.
    pub refused_ports: u64,
}

/// Direction of a packet relative to the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    /// Client → target (`AC:p → AA:g`).
    Forward,
    /// Target → client (`AT:r → JAP:q`).
    Reverse,
}

/// Entry flag bits.
mod flag {
    /// The slot holds a flow (else it is on the free list).
    pub const USED: u8 = 0x01;
    /// A reverse packet has been seen.
    pub const REPLIED: u8 = 0x02;
}

/// TCP state bits.
mod tcp {
    pub const SYN_FWD: u8 = 0x01;
    pub const SYN_REV: u8 = 0x02;
    pub const FIN_FWD: u8 = 0x04;
    pub const FIN_REV: u8 = 0x08;
    pub const RST: u8 = 0x10;
    pub const EST: u8 = 0x20;
}

/// End of the free list.
const NIL: u32 = u32::MAX;

/// One flow, 32 bytes, 8-aligned: two per cache line, never straddling.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct Entry {
    /// Dead from this instant on.
    deadline: Nanos,
    /// `AC` (a free slot keeps the next free slot here).
    client_ip: u32,
    /// `AA`.
    group_ip: u32,
    /// `AT`.
    target_ip: u32,
    /// `p`.
    client_port: u16,
    /// `g`.
    group_port: u16,
    /// `r`.
    target_port: u16,
    /// `q`.
    nat_port: u16,
    proto: u8,
    flags: u8,
    tcp: u8,
    _pad: u8,
}

const _: () = assert!(core::mem::size_of::<Entry>() == 32);

impl Entry {
    const fn free(next: u32) -> Entry {
        Entry {
            deadline: 0,
            client_ip: next,
            group_ip: 0,
            target_ip: 0,
            client_port: 0,
            group_port: 0,
            target_port: 0,
            nat_port: 0,
            proto: 0,
            flags: 0,
            tcp: 0,
            _pad: 0,
        }
    }

    #[inline]
    fn used(&self) -> bool {
        self.flags & flag::USED != 0
    }

    #[inline]
    fn dead(&self, now: Nanos) -> bool {
        now >= self.deadline
    }

    #[inline]
    fn matches_forward(&self, k: &FlowKey) -> bool {
        self.client_ip == k.src.to_bits()
            && self.group_ip == k.dst.to_bits()
            && self.client_port == k.sport
            && self.group_port == k.dport
            && self.proto == k.proto
            && self.used()
    }

    #[inline]
    fn matches_reverse(&self, target_ip: u32, target_port: u16, q: u16, proto: u8) -> bool {
        self.target_ip == target_ip
            && self.target_port == target_port
            && self.nat_port == q
            && self.proto == proto
            && self.used()
    }

    #[inline]
    fn key(&self) -> FlowKey {
        FlowKey {
            src: Ipv4Addr::from_bits(self.client_ip),
            dst: Ipv4Addr::from_bits(self.group_ip),
            sport: self.client_port,
            dport: self.group_port,
            proto: self.proto,
        }
    }

    #[inline]
    fn target(&self) -> TargetAddr {
        TargetAddr { ip: Ipv4Addr::from_bits(self.target_ip), port: self.target_port }
    }

    fn tcp_state(&self) -> Option<TcpState> {
        (self.proto == PROTO_TCP).then(|| tcp_state(self.tcp))
    }
}

/// The TCP state named by state bits.
const fn tcp_state(bits: u8) -> TcpState {
    if bits & tcp::RST != 0 {
        TcpState::Reset
    } else if bits & tcp::FIN_FWD != 0 && bits & tcp::FIN_REV != 0 {
        TcpState::Closed
    } else if bits & (tcp::FIN_FWD | tcp::FIN_REV) != 0 {
        TcpState::Closing
    } else if bits & tcp::EST != 0 {
        TcpState::Established
    } else {
        TcpState::Opening
    }
}

/// The TCP state bits after a packet with `f` in direction `dir`.
/// `replied`: a reverse packet has been seen (this one included).
const fn tcp_advance(bits: u8, f: TcpFlags, dir: Dir, replied: bool) -> u8 {
    let syn = f.contains(TcpFlags::SYN);
    let fwd = matches!(dir, Dir::Forward);
    if f.contains(TcpFlags::RST) {
        return bits | tcp::RST;
    }
    // A bare SYN from the client after a close or a reset: a new connection
    // on the same tuple (e.g. after TIME-WAIT). Same mapping, state anew.
    if fwd && syn && !f.contains(TcpFlags::ACK) && bits & (tcp::RST | tcp::FIN_FWD | tcp::FIN_REV) != 0 {
        return tcp::SYN_FWD;
    }
    let mut b = bits;
    if syn {
        b |= if fwd { tcp::SYN_FWD } else { tcp::SYN_REV };
    }
    if f.contains(TcpFlags::FIN) {
        b |= if fwd { tcp::FIN_FWD } else { tcp::FIN_REV };
    }
    let syns = b & (tcp::SYN_FWD | tcp::SYN_REV);
    // SYN both ways: SYN + SYN-ACK, or a simultaneous open.
    // No SYN at all but traffic both ways: a flow picked up mid-stream.
    if syns == (tcp::SYN_FWD | tcp::SYN_REV) || (syns == 0 && replied) {
        b |= tcp::EST;
    }
    b
}

/// One worker's NAT table. See the module documentation.
#[derive(Debug)]
pub struct NatTable {
    cfg: NatConfig,
    slab: Vec<Entry>,
    free_head: u32,
    len: usize,
    fwd: SlotIndex,
    rev: SlotIndex,
    /// Next port to try, as an offset into `cfg.ports`.
    port_cursor: u32,
    /// Next slab slot the expiry sweep visits.
    sweep: usize,
    counters: NatCounters,
}

impl NatTable {
    /// A table for `cfg.max_flows` flows: the slab and both indexes are
    /// reserved here, once.
    pub fn new(mut cfg: NatConfig) -> Result<NatTable, NatConfigError> {
        if cfg.max_flows == 0 {
            return Err(NatConfigError::NoFlows);
        }
        if cfg.max_flows > MAX_FLOWS_LIMIT {
            return Err(NatConfigError::TooManyFlows { max_flows: cfg.max_flows, limit: MAX_FLOWS_LIMIT });
        }
        if cfg.ports.is_empty() {
            return Err(NatConfigError::EmptyPortRange(cfg.ports));
        }
        cfg.port_tries = cfg.port_tries.max(1);
        let slab = Vec::with_capacity(cfg.max_flows);
        // Touched only as the table fills: advised before any entry is.
        crate::huge_pages::advise(&slab);
        Ok(NatTable {
            slab,
            free_head: NIL,
            len: 0,
            fwd: SlotIndex::with_max_items(cfg.max_flows),
            rev: SlotIndex::with_max_items(cfg.max_flows),
            port_cursor: 0,
            sweep: 0,
            counters: NatCounters::default(),
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &NatConfig {
        &self.cfg
    }

    /// Entries in the table, including dead ones not yet freed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `max_flows`.
    pub fn capacity(&self) -> usize {
        self.cfg.max_flows
    }

    /// The counters.
    pub fn counters(&self) -> &NatCounters {
        &self.counters
    }

    /// Bytes reserved by the slab and both indexes (the table's memory at
    /// capacity; pages of the slab are touched only as it fills).
    pub fn memory_bytes(&self) -> usize {
        self.slab.capacity() * core::mem::size_of::<Entry>() + self.fwd.bytes() + self.rev.bytes()
    }

    #[inline]
    fn forward_hash(&self, k: &FlowKey) -> u64 {
        k.hash_with(self.cfg.hash_seed)
    }

    #[inline]
    fn reverse_hash(&self, target_ip: u32, target_port: u16, q: u16, proto: u8) -> u64 {
        let b = (u64::from(target_port) << 32) | (u64::from(q) << 16) | u64::from(proto);
        hash2(self.cfg.hash_seed ^ REVERSE_DOMAIN, u64::from(target_ip), b)
    }

    #[inline]
    fn find_forward(&self, h: u64, k: &FlowKey) -> Option<u32> {
        let slab = &self.slab;
        self.fwd.find(h, |i| slab.get(i as usize).is_some_and(|e| e.matches_forward(k))).map(|(_, i)| i)
    }

    #[inline]
    fn find_reverse(&self, h: u64, target_ip: u32, target_port: u16, q: u16, proto: u8) -> Option<u32> {
        let slab = &self.slab;
        self.rev
            .find(h, |i| slab.get(i as usize).is_some_and(|e| e.matches_reverse(target_ip, target_port, q, proto)))
            .map(|(_, i)| i)
    }

    /// The timeout of an entry in its current state.
    #[inline]
    fn timeout(&self, e: &Entry) -> Nanos {
        match e.proto {
            PROTO_TCP => match tcp_state(e.tcp) {
                TcpState::Reset => self.cfg.tcp_rst_grace,
                TcpState::Closed | TcpState::Opening => self.cfg.tcp_transitory,
                TcpState::Established | TcpState::Closing => {
                    if e.tcp & tcp::EST != 0 {
                        self.cfg.tcp_established
                    } else {
                        // A FIN before the handshake completed.
                        self.cfg.tcp_transitory
                    }
                }
            },
            PROTO_ICMP => self.cfg.icmp_idle,
            PROTO_UDP => self.cfg.udp_idle,
            _ => self.cfg.udp_idle,
        }
    }

    /// A packet of the flow in `dir`: advance the state, push the deadline.
    #[inline]
    fn touch(&self, e: &mut Entry, dir: Dir, flags: Option<TcpFlags>, now: Nanos) {
        if dir == Dir::Reverse {
            e.flags |= flag::REPLIED;
        }
        if e.proto == PROTO_TCP {
            let f = flags.unwrap_or(TcpFlags::empty());
            e.tcp = tcp_advance(e.tcp, f, dir, e.flags & flag::REPLIED != 0);
        }
        e.deadline = now.saturating_add(self.timeout(e));
    }

    /// Touches slot `i` (which must be used), returning the forward hit.
    #[inline]
    fn touch_slot(&mut self, i: u32, dir: Dir, flags: Option<TcpFlags>, now: Nanos) -> Option<Entry> {
        let mut e = *self.slab.get(i as usize)?;
        self.touch(&mut e, dir, flags, now);
        let slot = self.slab.get_mut(i as usize)?;
        *slot = e;
        Some(e)
    }

    fn hit(i: u32, e: &Entry, created: bool) -> NatHit {
        NatHit {
            id: EntryId(i),
            target: e.target(),
            nat_port: e.nat_port,
            created,
            replied: e.flags & flag::REPLIED != 0,
        }
    }

    /// Frees slot `i` from both indexes and the slab.
    fn free_slot(&mut self, i: u32) {
        let Some(&e) = self.slab.get(i as usize) else { return };
        if !e.used() {
            return;
        }
        let fh = self.forward_hash(&e.key());
        let rh = self.reverse_hash(e.target_ip, e.target_port, e.nat_port, e.proto);
        self.fwd.remove(fh, i);
        self.rev.remove(rh, i);
        if let Some(slot) = self.slab.get_mut(i as usize) {
            *slot = Entry::free(self.free_head);
        }
        self.free_head = i;
        self.len -= 1;
    }

    /// Frees a dead entry and counts it.
    fn free_dead(&mut self, i: u32) {
        self.free_slot(i);
        self.counters.expired += 1;
    }

    /// A free slab slot, or `None` when the slab is full.
    fn alloc_slot(&mut self) -> Option<u32> {
        if self.free_head != NIL {
            let i = self.free_head;
            self.free_head = self.slab.get(i as usize)?.client_ip;
            return Some(i);
        }
        if self.slab.len() < self.cfg.max_flows {
            // Within the capacity reserved in `new`: never reallocates.
            self.slab.push(Entry::free(NIL));
            return u32::try_from(self.slab.len() - 1).ok();
        }
        None
    }

    /// A NAT port free toward `(target, proto)`, or `None` after the
    /// bounded probe. A dead holder met on the way is freed.
    fn alloc_port(&mut self, target: TargetAddr, proto: u8, now: Nanos) -> Option<u16> {
        let n = self.cfg.ports.len();
        let tries = n.min(u32::from(self.cfg.port_tries));
        let tip = target.ip.to_bits();
        for _ in 0..tries {
            let off = self.port_cursor % n;
            self.port_cursor = (off + 1) % n;
            // lo + off ≤ hi ≤ u16::MAX.
            let Ok(q) = u16::try_from(u32::from(self.cfg.ports.lo) + off) else { continue };
            if Some(q) == self.cfg.reserved_port {
                continue;
            }
            let rh = self.reverse_hash(tip, target.port, q, proto);
            match self.find_reverse(rh, tip, target.port, q, proto) {
                None => return Some(q),
                Some(i) => {
                    if self.slab.get(i as usize).is_some_and(|e| e.dead(now)) {
                        self.free_dead(i);
                        return Some(q);
                    }
                }
            }
        }
        None
    }

    /// True when the table's memory in use (both indexes, which a lookup
    /// hits anywhere, and the used slab) exceeds [`PREFETCH_MIN_BYTES`]:
    /// then lookups miss the caches and a burst's prefetches pay; below it
    /// they would only add instructions.
    #[inline]
    pub fn prefetch_worthwhile(&self) -> bool {
        self.fwd.bytes() + self.rev.bytes() + self.slab.len() * core::mem::size_of::<Entry>() >= PREFETCH_MIN_BYTES
    }

    /// Prefetches the forward index slot of `key` (first step of a burst's
    /// prefetch; [`NatTable::prefetch_entry`] is the second). A hint: it
    /// changes nothing.
    #[inline]
    pub fn prefetch_forward(&self, key: &FlowKey) -> NatPrefetch {
        let h = self.forward_hash(key);
        self.fwd.prefetch_home(h);
        NatPrefetch { hash: h, reverse: false }
    }

    /// Prefetches the reverse index slot of `(target, q, proto)`.
    #[inline]
    pub fn prefetch_reverse(&self, target: TargetAddr, q: u16, proto: u8) -> NatPrefetch {
        let h = self.reverse_hash(target.ip.to_bits(), target.port, q, proto);
        self.rev.prefetch_home(h);
        NatPrefetch { hash: h, reverse: true }
    }

    /// Prefetches the entry the index slot prefetched by `p` most likely
    /// names (call once that slot has had time to arrive, e.g. after the
    /// whole burst's first step).
    #[inline]
    pub fn prefetch_entry(&self, p: NatPrefetch) {
        let ix = if p.reverse { &self.rev } else { &self.fwd };
        if let Some(i) = ix.hint(p.hash) {
            crate::flow::prefetch(self.slab.as_ptr().wrapping_add(i as usize));
        }
    }

    /// Loads — not prefetches — the index slot prefetched by `p` and then
    /// the entry it most likely names, and returns a word of that entry (0
    /// when there is none) so that the loads cannot be optimised away.
    ///
    /// A burst calls this for all its packets in one loop before processing
    /// any: the loads of different packets are independent, so the core
    /// overlaps their misses (and page walks) as far as its load buffers
    /// allow, where prefetch hints alone were measured to stall: at 10 M
    /// flows on this VM the read of a "prefetched" index slot eight packets
    /// later still took 29 % of the lcore's time (perf, cpu-clock).
    #[inline]
    pub fn touch_entry(&self, p: NatPrefetch) -> u64 {
        let ix = if p.reverse { &self.rev } else { &self.fwd };
        match ix.hint(p.hash).and_then(|i| self.slab.get(i as usize)) {
            Some(e) => u64::from(e.client_ip) ^ u64::from(e.target_ip),
            None => 0,
        }
    }

    /// A forward packet (`AC:p → AA:g`, `key`) of an existing flow: refreshes
    /// the entry and advances its TCP state by `tcp_flags` (`None` for
    /// non-TCP). `None` when the flow has no live entry (a dead one is freed).
    #[inline]
    pub fn lookup_forward(&mut self, key: &FlowKey, now: Nanos, tcp_flags: Option<TcpFlags>) -> Option<NatHit> {
        let h = self.forward_hash(key);
        let i = self.find_forward(h, key)?;
        self.hit_forward(i, now, tcp_flags, false)
    }

    #[inline]
    fn hit_forward(&mut self, i: u32, now: Nanos, tcp_flags: Option<TcpFlags>, created: bool) -> Option<NatHit> {
        if self.slab.get(i as usize)?.dead(now) {
            self.free_dead(i);
            return None;
        }
        let e = self.touch_slot(i, Dir::Forward, tcp_flags, now)?;
        Some(Self::hit(i, &e, created))
    }

    /// The live entry of `key`, changing nothing (ICMP errors: RFC 4787
    /// REQ-12, RFC 5508 REQ-6).
    #[inline]
    pub fn peek_forward(&self, key: &FlowKey, now: Nanos) -> Option<NatHit> {
        let i = self.find_forward(self.forward_hash(key), key)?;
        let e = self.slab.get(i as usize)?;
        (!e.dead(now)).then(|| Self::hit(i, e, false))
    }

    /// The first packet of a new flow, to `target` (`AT:r`; for a whole-IP
    /// group the caller passes the client's destination port as `r`; for ICMP
    /// echo, port 0). Allocates `q` and the entry.
    ///
    /// If `key` already has a live entry, no second entry is made: the call
    /// is a forward hit on it (refreshed, TCP state advanced) with
    /// `created: false`, and `target` is ignored.
    ///
    /// Refused and counted, nothing else changed: [`NatError::TableFull`]
    /// when `max_flows` live entries exist, [`NatError::PortsExhausted`] when
    /// no port is free toward `(target, proto)`.
    ///
    /// Which packets may open a flow is the caller's policy: the table
    /// accepts any, and a TCP flow opened by a non-SYN packet is tracked as
    /// picked up mid-stream (opening until the target answers). A packet
    /// that cannot open a connection (a RST) should not create an entry.
    pub fn create(
        &mut self,
        key: &FlowKey,
        target: TargetAddr,
        now: Nanos,
        tcp_flags: Option<TcpFlags>,
    ) -> Result<NatHit, NatError> {
        let h = self.forward_hash(key);
        if let Some(i) = self.find_forward(h, key) {
            if let Some(hit) = self.hit_forward(i, now, tcp_flags, false) {
                return Ok(hit);
            }
        }
        self.insert_new(h, key, target, now, tcp_flags)
    }

    /// [`NatTable::create`] for a key whose [`NatTable::lookup_forward`]
    /// has just returned `None`, with no other call on the table since (the
    /// JAP's new-flow path): the forward index is not probed a second
    /// time. Called in any other situation it could enter a second entry
    /// for a live key; debug builds check the precondition.
    pub fn create_missed(&mut self, key: &FlowKey, target: TargetAddr, now: Nanos, flags: Option<TcpFlags>) -> Result<NatHit, NatError> {
        let h = self.forward_hash(key);
        debug_assert!(self.peek_forward(key, now).is_none(), "create_missed on a live key");
        self.insert_new(h, key, target, now, flags)
    }

    /// The rest of [`NatTable::create`] once `key` (forward hash `h`) is
    /// known to have no live entry.
    #[inline]
    fn insert_new(&mut self, h: u64, key: &FlowKey, target: TargetAddr, now: Nanos, tcp_flags: Option<TcpFlags>) -> Result<NatHit, NatError> {
        if self.len >= self.cfg.max_flows {
            self.expire(now, RECLAIM_SWEEP);
            if self.len >= self.cfg.max_flows {
                self.counters.refused_full += 1;
                return Err(NatError::TableFull);
            }
        }
        let Some(q) = self.alloc_port(target, key.proto, now) else {
            self.counters.refused_ports += 1;
            return Err(NatError::PortsExhausted);
        };
        let Some(i) = self.alloc_slot() else {
            self.counters.refused_full += 1;
            return Err(NatError::TableFull);
        };
        let mut e = Entry {
            deadline: 0,
            client_ip: key.src.to_bits(),
            group_ip: key.dst.to_bits(),
            target_ip: target.ip.to_bits(),
            client_port: key.sport,
            group_port: key.dport,
            target_port: target.port,
            nat_port: q,
            proto: key.proto,
            flags: flag::USED,
            tcp: 0,
            _pad: 0,
        };
        self.touch(&mut e, Dir::Forward, tcp_flags, now);
        let rh = self.reverse_hash(e.target_ip, e.target_port, q, e.proto);
        if let Some(slot) = self.slab.get_mut(i as usize) {
            *slot = e;
        }
        self.fwd.insert(h, i);
        self.rev.insert(rh, i);
        self.len += 1;
        self.counters.created += 1;
        Ok(Self::hit(i, &e, true))
    }

    /// A reverse packet `AT:r → JAP:q` (`target`, `q`, `proto`): refreshes
    /// the entry and advances its TCP state in the reverse direction. Gives
    /// the client's key: the packet becomes `AA:g → AC:p`. `None` when no
    /// live entry (a dead one is freed): count and drop.
    ///
    /// The caller has checked that the destination is one of our NAT
    /// addresses; the table keys on `q`, not on the address.
    #[inline]
    pub fn lookup_reverse(
        &mut self,
        target: TargetAddr,
        q: u16,
        proto: u8,
        now: Nanos,
        tcp_flags: Option<TcpFlags>,
    ) -> Option<ReverseHit> {
        let tip = target.ip.to_bits();
        let h = self.reverse_hash(tip, target.port, q, proto);
        let i = self.find_reverse(h, tip, target.port, q, proto)?;
        if self.slab.get(i as usize)?.dead(now) {
            self.free_dead(i);
            return None;
        }
        let e = self.touch_slot(i, Dir::Reverse, tcp_flags, now)?;
        Some(ReverseHit { id: EntryId(i), key: e.key() })
    }

    /// The live entry for a reverse key, changing nothing (ICMP errors).
    #[inline]
    pub fn peek_reverse(&self, target: TargetAddr, q: u16, proto: u8, now: Nanos) -> Option<ReverseHit> {
        let tip = target.ip.to_bits();
        let i = self.find_reverse(self.reverse_hash(tip, target.port, q, proto), tip, target.port, q, proto)?;
        let e = self.slab.get(i as usize)?;
        (!e.dead(now)).then(|| ReverseHit { id: EntryId(i), key: e.key() })
    }

    /// Amortised expiry: visits the next `budget` slab slots (wrapping) and
    /// frees the entries dead at `now`. Returns how many were freed. Call
    /// once per poll iteration with a small budget (e.g. 32–256): a full
    /// pass over `n` used slots takes `n / budget` calls.
    pub fn expire(&mut self, now: Nanos, budget: usize) -> usize {
        let n = self.slab.len();
        let mut freed = 0;
        for _ in 0..budget.min(n) {
            if self.sweep >= n {
                self.sweep = 0;
            }
            let i = self.sweep;
            self.sweep += 1;
            let dead = self.slab.get(i).is_some_and(|e| e.used() && e.dead(now));
            if dead {
                if let Ok(i) = u32::try_from(i) {
                    self.free_dead(i);
                    freed += 1;
                }
            }
        }
        freed
    }

    /// The entry in slot `id`, if used (dead ones included until freed).
    pub fn flow(&self, id: EntryId) -> Option<FlowInfo> {
        let e = self.slab.get(id.index())?;
        e.used().then(|| Self::info(id.0, e))
    }

    /// Every entry (dead ones included until freed). Walks the slab: for
    /// status displays, not the fast path.
    pub fn flows(&self) -> impl Iterator<Item = FlowInfo> + '_ {
        self.slab.iter().zip(0u32..).filter(|(e, _)| e.used()).map(|(e, i)| Self::info(i, e))
    }

    fn info(i: u32, e: &Entry) -> FlowInfo {
        FlowInfo {
            id: EntryId(i),
            key: e.key(),
            target: e.target(),
            nat_port: e.nat_port,
            expires_at: e.deadline,
            replied: e.flags & flag::REPLIED != 0,
            tcp: e.tcp_state(),
        }
    }

    /// Checks every structural invariant (tests): both indexes hold exactly
    /// the used slots, each findable under its own key; keys are unique; the
    /// free list holds exactly the unused slots; `len` counts the used ones.
    #[cfg(test)]
    fn check_invariants(&self) {
        use std::collections::HashSet;
        let used: HashSet<u32> = self.flows().map(|f| f.id.0).collect();
        assert_eq!(used.len(), self.len, "len");
        let fwd: Vec<u32> = self.fwd.items().collect();
        let rev: Vec<u32> = self.rev.items().collect();
        assert_eq!(fwd.len(), self.len, "forward index size");
        assert_eq!(rev.len(), self.len, "reverse index size");
        assert_eq!(fwd.iter().copied().collect::<HashSet<_>>(), used, "forward index items");
        assert_eq!(rev.iter().copied().collect::<HashSet<_>>(), used, "reverse index items");
        let mut rkeys = HashSet::new();
        for f in self.flows() {
            assert_eq!(self.find_forward(self.forward_hash(&f.key), &f.key), Some(f.id.0));
            let t = f.target.ip.to_bits();
            let rh = self.reverse_hash(t, f.target.port, f.nat_port, f.key.proto);
            assert_eq!(self.find_reverse(rh, t, f.target.port, f.nat_port, f.key.proto), Some(f.id.0));
            assert!(rkeys.insert((f.target, f.nat_port, f.key.proto)), "reverse key twice");
            assert!(self.cfg.ports.contains(f.nat_port), "port outside the range");
        }
        let mut free = HashSet::new();
        let mut i = self.free_head;
        while i != NIL {
            assert!(free.insert(i), "free list loops");
            assert!(!self.slab[i as usize].used(), "used slot on the free list");
            i = self.slab[i as usize].client_ip;
        }
        assert_eq!(free.len() + used.len(), self.slab.len(), "slots lost");
        assert!(self.slab.capacity() >= self.cfg.max_flows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const S: Nanos = SECOND;

    fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
        Ipv4Addr::new(a, b, c, d)
    }

    fn udp(client: u8, p: u16) -> FlowKey {
        FlowKey::new(ip(192, 0, 2, client), p, ip(198, 51, 100, 1), 53, PROTO_UDP)
    }

    fn tcpk(client: u8, p: u16) -> FlowKey {
        FlowKey::new(ip(192, 0, 2, client), p, ip(198, 51, 100, 1), 443, PROTO_TCP)
    }

    fn target(d: u8, port: u16) -> TargetAddr {
        TargetAddr { ip: ip(203, 0, 113, d), port }
    }

    fn table(max: usize, lo: u16, hi: u16) -> NatTable {
        NatTable::new(NatConfig { max_flows: max, ports: PortRange::new(lo, hi).unwrap(), ..NatConfig::default() })
            .unwrap()
    }

    const SYN: TcpFlags = TcpFlags::SYN;
    const SYNACK: TcpFlags = TcpFlags::from_bits(0x12);
    const ACK: TcpFlags = TcpFlags::ACK;
    const FINACK: TcpFlags = TcpFlags::from_bits(0x11);
    const RST: TcpFlags = TcpFlags::RST;

    #[test]
    fn entry_is_32_bytes_and_config_checks() {
        assert_eq!(core::mem::size_of::<Entry>(), 32);
        assert_eq!(
            NatTable::new(NatConfig { max_flows: 0, ..NatConfig::default() }).unwrap_err(),
            NatConfigError::NoFlows
        );
        assert!(matches!(
            NatTable::new(NatConfig { max_flows: MAX_FLOWS_LIMIT + 1, ..NatConfig::default() }),
            Err(NatConfigError::TooManyFlows { .. })
        ));
        assert!(matches!(
            NatTable::new(NatConfig { ports: PortRange { lo: 9, hi: 8 }, ..NatConfig::default() }),
            Err(NatConfigError::EmptyPortRange(_))
        ));
        let d = NatConfig::default();
        assert!(d.udp_idle >= 120 * S, "RFC 4787 REQ-5");
        assert!(d.tcp_established >= 7440 * S, "RFC 5382 REQ-5");
        assert!(d.tcp_transitory >= 240 * S, "RFC 5382 REQ-5");
    }

    #[test]
    fn forward_then_reverse_restores_the_client() {
        let mut t = table(16, 2000, 2999);
        let k = udp(7, 40000);
        let hit = t.create(&k, target(9, 5353), 0, None).unwrap();
        assert!(hit.created && !hit.replied);
        assert_eq!(hit.target, target(9, 5353));
        assert!((2000..=2999).contains(&hit.nat_port));
        let again = t.lookup_forward(&k, S, None).unwrap();
        assert_eq!((again.id, again.nat_port, again.created), (hit.id, hit.nat_port, false));
        let back = t.lookup_reverse(target(9, 5353), hit.nat_port, PROTO_UDP, 2 * S, None).unwrap();
        assert_eq!(back.key, k);
        assert_eq!(back.id, hit.id);
        assert!(t.lookup_forward(&k, 3 * S, None).unwrap().replied);
        // Wrong protocol, port, target port: misses.
        assert!(t.lookup_reverse(target(9, 5353), hit.nat_port, PROTO_TCP, 3 * S, None).is_none());
        assert!(t.lookup_reverse(target(9, 5354), hit.nat_port, PROTO_UDP, 3 * S, None).is_none());
        assert!(t.lookup_reverse(target(9, 5353), hit.nat_port ^ 1, PROTO_UDP, 3 * S, None).is_none());
        assert_eq!(t.len(), 1);
        t.check_invariants();
    }

    #[test]
    fn the_reserved_port_is_never_handed_out() {
        let cfg = |lo, hi| NatConfig { max_flows: 16, ports: PortRange::new(lo, hi).unwrap(), reserved_port: Some(7450), ..NatConfig::default() };
        let mut t = NatTable::new(cfg(7450, 7451)).unwrap();
        // A port is unique per target: one flow per target fits in 7451.
        for c in 0..4u8 {
            let hit = t.create(&udp(c, 40000 + u16::from(c)), target(9 + c, 53), 0, None).unwrap();
            assert_eq!(hit.nat_port, 7451, "flow {c}");
        }
        assert!(t.create(&udp(9, 1), target(9, 53), 0, None).is_err(), "7450 stays unused");
        let mut only = NatTable::new(cfg(7450, 7450)).unwrap();
        assert!(only.create(&udp(1, 40000), target(9, 53), 0, None).is_err(), "the only port is reserved");
        t.check_invariants();
    }

    #[test]
    fn creating_an_existing_flow_returns_it() {
        let mut t = table(16, 2000, 2999);
        let k = udp(1, 1111);
        let a = t.create(&k, target(1, 53), 0, None).unwrap();
        let b = t.create(&k, target(2, 53), S, None).unwrap();
        assert!(!b.created);
        assert_eq!((b.id, b.target, b.nat_port), (a.id, target(1, 53), a.nat_port));
        assert_eq!((t.len(), t.counters().created), (1, 1));
        // The second create refreshed it.
        assert_eq!(t.flow(a.id).unwrap().expires_at, S + 300 * S);
    }

    #[test]
    fn udp_lives_300s_refreshed_both_ways() {
        let mut t = table(16, 2000, 2999);
        let k = udp(1, 1111);
        let h = t.create(&k, target(1, 53), 0, None).unwrap();
        assert!(t.peek_forward(&k, 300 * S - 1).is_some());
        // A reply at 200 s pushes the deadline to 500 s (RFC 4787 REQ-6).
        t.lookup_reverse(target(1, 53), h.nat_port, PROTO_UDP, 200 * S, None).unwrap();
        assert!(t.lookup_forward(&k, 499 * S, None).is_some());
        assert!(t.lookup_forward(&k, 799 * S - 1, None).is_some());
        assert!(t.lookup_forward(&k, 1099 * S, None).is_none(), "alive after 300 s idle");
        assert_eq!((t.len(), t.counters().expired), (0, 1), "a dead entry met by a lookup is freed");
        t.check_invariants();
    }

    #[test]
    fn peek_never_refreshes() {
        let mut t = table(16, 2000, 2999);
        let k = udp(1, 1111);
        let h = t.create(&k, target(1, 53), 0, None).unwrap();
        for s in [100, 200, 299] {
            assert!(t.peek_forward(&k, s * S).is_some());
            assert_eq!(t.peek_reverse(target(1, 53), h.nat_port, PROTO_UDP, s * S).unwrap().key, k);
        }
        assert_eq!(t.flow(h.id).unwrap().expires_at, 300 * S);
        assert!(t.peek_forward(&k, 300 * S).is_none());
        assert!(t.peek_reverse(target(1, 53), h.nat_port, PROTO_UDP, 300 * S).is_none());
        assert!(!t.flow(h.id).unwrap().replied);
    }

    #[test]
    fn icmp_echo_maps_the_identifier_for_60s() {
        let mut t = table(16, 2000, 2999);
        let k = FlowKey::icmp_echo(ip(192, 0, 2, 1), ip(198, 51, 100, 1), 4242);
        let h = t.create(&k, target(1, 0), 0, None).unwrap();
        let back = t.lookup_reverse(target(1, 0), h.nat_port, PROTO_ICMP, 10 * S, None).unwrap();
        assert_eq!(back.key, k);
        assert_eq!(t.flow(h.id).unwrap().expires_at, 70 * S);
        assert!(t.peek_forward(&k, 70 * S).is_none());
    }

    /// Drives one TCP flow; returns (state, expires_at) after each step.
    fn tcp_steps(steps: &[(Dir, TcpFlags, Nanos)]) -> Vec<(TcpState, Nanos)> {
        let mut t = table(16, 2000, 2999);
        let k = tcpk(1, 50000);
        let tg = target(1, 8443);
        let mut q = 0;
        let mut out = Vec::new();
        for (n, &(dir, f, now)) in steps.iter().enumerate() {
            let id = match dir {
                Dir::Forward if n == 0 => {
                    let h = t.create(&k, tg, now, Some(f)).unwrap();
                    q = h.nat_port;
                    h.id
                }
                Dir::Forward => t.lookup_forward(&k, now, Some(f)).unwrap().id,
                Dir::Reverse => t.lookup_reverse(tg, q, PROTO_TCP, now, Some(f)).unwrap().id,
            };
            let info = t.flow(id).unwrap();
            out.push((info.tcp.unwrap(), info.expires_at));
        }
        out
    }

    use Dir::{Forward as F, Reverse as R};

    #[test]
    fn tcp_handshake_data_and_close() {
        let s = tcp_steps(&[
            (F, SYN, 0),
            (R, SYNACK, S),
            (F, ACK, 2 * S),
            (F, FINACK, 10 * S),
            (R, ACK, 11 * S),
            (R, FINACK, 12 * S),
            (F, ACK, 13 * S),
        ]);
        assert_eq!(s[0], (TcpState::Opening, 240 * S));
        assert_eq!(s[1], (TcpState::Established, S + 7440 * S));
        assert_eq!(s[2], (TcpState::Established, 2 * S + 7440 * S));
        assert_eq!(s[3], (TcpState::Closing, 10 * S + 7440 * S), "half-close keeps the established timeout");
        assert_eq!(s[4], (TcpState::Closing, 11 * S + 7440 * S));
        assert_eq!(s[5], (TcpState::Closed, 12 * S + 240 * S));
        assert_eq!(s[6], (TcpState::Closed, 13 * S + 240 * S));
    }

    #[test]
    fn tcp_retransmitted_syn_stays_transitory() {
        let s = tcp_steps(&[(F, SYN, 0), (F, SYN, 3 * S), (F, SYN, 9 * S)]);
        assert!(s.iter().all(|x| x.0 == TcpState::Opening));
        assert_eq!(s[2].1, 9 * S + 240 * S);
    }

    #[test]
    fn tcp_simultaneous_open_and_close() {
        let s = tcp_steps(&[(F, SYN, 0), (R, SYN, S), (F, FINACK, 5 * S), (R, FINACK, 5 * S)]);
        assert_eq!(s[1], (TcpState::Established, S + 7440 * S));
        assert_eq!(s[2].0, TcpState::Closing);
        assert_eq!(s[3], (TcpState::Closed, 5 * S + 240 * S));
    }

    #[test]
    fn tcp_rst_gives_a_grace_then_the_flow_dies() {
        let s = tcp_steps(&[(F, SYN, 0), (R, SYNACK, S), (R, RST, 100 * S), (F, ACK, 150 * S)]);
        assert_eq!(s[2], (TcpState::Reset, 100 * S + 240 * S));
        assert_eq!(s[3], (TcpState::Reset, 150 * S + 240 * S), "later packets refresh the grace only");
        // Short grace configured.
        let mut t = NatTable::new(NatConfig { tcp_rst_grace: 2 * S, ..NatConfig::default() }).unwrap();
        let k = tcpk(1, 1);
        let h = t.create(&k, target(1, 80), 0, Some(SYN)).unwrap();
        t.lookup_reverse(target(1, 80), h.nat_port, PROTO_TCP, S, Some(RST)).unwrap();
        assert!(t.peek_forward(&k, 3 * S - 1).is_some());
        assert!(t.peek_forward(&k, 3 * S).is_none());
        assert_eq!(t.expire(3 * S, 10), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn tcp_new_syn_after_close_or_reset_restarts_the_state() {
        for close in [&[(F, FINACK, 10 * S), (R, FINACK, 11 * S)][..], &[(R, RST, 10 * S)][..]] {
            let mut steps = vec![(F, SYN, 0), (R, SYNACK, S), (F, ACK, 2 * S)];
            steps.extend_from_slice(close);
            steps.push((F, SYN, 20 * S));
            steps.push((R, SYNACK, 21 * S));
            let s = tcp_steps(&steps);
            let n = s.len();
            assert_eq!(s[n - 2], (TcpState::Opening, 20 * S + 240 * S));
            assert_eq!(s[n - 1], (TcpState::Established, 21 * S + 7440 * S));
        }
    }

    #[test]
    fn tcp_picked_up_mid_stream() {
        let s = tcp_steps(&[(F, ACK, 0), (F, ACK, S), (R, ACK, 2 * S)]);
        assert_eq!(s[1], (TcpState::Opening, S + 240 * S));
        assert_eq!(s[2], (TcpState::Established, 2 * S + 7440 * S));
    }

    #[test]
    fn tcp_fin_before_handshake_is_transitory() {
        let s = tcp_steps(&[(F, SYN, 0), (F, FINACK, S)]);
        assert_eq!(s[1], (TcpState::Closing, S + 240 * S));
    }

    #[test]
    fn port_exhaustion_refuses_counts_and_spares_live_flows() {
        let mut t = table(64, 5000, 5003);
        let tg = target(1, 53);
        let mut hits = Vec::new();
        for p in 0..4 {
            hits.push(t.create(&udp(1, p), tg, 0, None).unwrap());
        }
        let mut ports: Vec<u16> = hits.iter().map(|h| h.nat_port).collect();
        ports.sort_unstable();
        assert_eq!(ports, vec![5000, 5001, 5002, 5003]);
        assert_eq!(t.create(&udp(1, 9), tg, S, None), Err(NatError::PortsExhausted));
        assert_eq!(t.create(&udp(1, 10), tg, S, None), Err(NatError::PortsExhausted));
        assert_eq!(t.counters().refused_ports, 2);
        assert_eq!(t.len(), 4);
        for (p, h) in hits.iter().enumerate() {
            assert_eq!(t.lookup_reverse(tg, h.nat_port, PROTO_UDP, 2 * S, None).unwrap().key, udp(1, p as u16));
        }
        // Another target port, or another protocol, has its own ports.
        assert!(t.create(&udp(1, 9), target(1, 54), S, None).is_ok());
        assert!(t.create(&tcpk(1, 9), tg, S, Some(SYN)).is_ok());
        t.check_invariants();
    }

    #[test]
    fn ports_are_reused_only_after_expiry() {
        let mut t = table(64, 5000, 5001);
        let tg = target(1, 53);
        let a = t.create(&udp(1, 1), tg, 0, None).unwrap();
        let b = t.create(&udp(1, 2), tg, 100 * S, None).unwrap();
        // a dies at 300 s, b at 400 s.
        assert_eq!(t.create(&udp(1, 3), tg, 300 * S - 1, None), Err(NatError::PortsExhausted));
        let c = t.create(&udp(1, 3), tg, 300 * S, None).unwrap();
        assert_eq!(c.nat_port, a.nat_port, "a's port after a expired");
        assert_eq!(t.counters().expired, 1);
        assert!(t.peek_forward(&udp(1, 2), 300 * S).is_some(), "b untouched");
        assert_eq!(t.lookup_reverse(tg, c.nat_port, PROTO_UDP, 301 * S, None).unwrap().key, udp(1, 3));
        assert_eq!(t.lookup_reverse(tg, b.nat_port, PROTO_UDP, 301 * S, None).unwrap().key, udp(1, 2));
        t.check_invariants();
    }

    #[test]
    fn table_full_refuses_and_counts_then_recovers() {
        let mut t = table(3, 5000, 5999);
        for p in 0..3 {
            t.create(&udp(1, p), target(1, 53), 0, None).unwrap();
        }
        assert_eq!(t.create(&udp(1, 3), target(1, 53), S, None), Err(NatError::TableFull));
        assert_eq!(t.counters().refused_full, 1);
        assert!(t.lookup_forward(&udp(1, 0), 2 * S, None).is_some());
        // Existing flows still create-hit when full.
        assert!(!t.create(&udp(1, 1), target(2, 53), 2 * S, None).unwrap().created);
        // Flow 2 dies at 300 s (0 and 1 were refreshed at 2 s): the reclaim
        // sweep frees it and makes room; 0 and 1 are untouched.
        assert_eq!(t.create(&udp(1, 3), target(1, 53), 300 * S - 1, None), Err(NatError::TableFull));
        let h = t.create(&udp(1, 3), target(1, 53), 300 * S, None).unwrap();
        assert!(h.created);
        assert_eq!((t.len(), t.counters().expired, t.counters().refused_full), (3, 1, 2));
        assert!(t.peek_forward(&udp(1, 0), 300 * S).is_some());
        assert!(t.peek_forward(&udp(1, 1), 300 * S).is_some());
        t.check_invariants();
    }

    #[test]
    fn expiry_is_amortised_and_empties_the_table() {
        let mut t = table(1000, 1024, 65535);
        for p in 0..1000u16 {
            t.create(&udp((p % 200) as u8, p), target(1, 53), u64::from(p), None).unwrap();
        }
        assert_eq!(t.len(), 1000);
        assert_eq!(t.expire(299 * S, 1000), 0);
        let mut freed = 0;
        let mut calls = 0;
        while !t.is_empty() {
            let n = t.expire(301 * S, 64);
            assert!(n <= 64);
            freed += n;
            calls += 1;
        }
        assert_eq!((freed, calls), (1000, 16));
        assert_eq!(t.counters().expired, 1000);
        t.check_invariants();
        // Slots are reused, the slab does not grow.
        for p in 0..1000u16 {
            t.create(&udp(1, p), target(1, 53), 400 * S, None).unwrap();
        }
        assert_eq!(t.slab.len(), 1000);
        t.check_invariants();
    }

    #[test]
    fn structured_keys_spread_over_both_indexes() {
        // Sequential client ports from few addresses to few targets: the
        // shape of real traffic, and the worst for a weak hash. Linear
        // probing at load ≤ ⅔ expects a mean displacement well under 1.
        let n = 100_000u32;
        let mut t = NatTable::new(NatConfig { max_flows: n as usize, ..NatConfig::default() }).unwrap();
        for i in 0..n {
            let k = FlowKey::new(
                Ipv4Addr::from_bits(0x0A00_0000 + (i >> 10)),
                (i & 1023) as u16,
                ip(198, 51, 100, 1),
                53,
                PROTO_UDP,
            );
            t.create(&k, target((i % 7) as u8, 53), S, None).unwrap();
        }
        for (name, (mean, max)) in [("forward", t.fwd.displacement()), ("reverse", t.rev.displacement())] {
            assert!(mean < 1.0 && max < 64, "{name} index clusters: mean {mean}, max {max}");
        }
    }

    #[test]
    fn memory_is_reported_per_flow() {
        let t = table(1 << 20, 1024, 65535);
        let per_flow = t.memory_bytes() / t.capacity();
        assert!((50..=80).contains(&per_flow), "{per_flow} B/flow");
    }

    #[derive(Clone, Debug)]
    enum Op {
        Create { key: usize, target: usize, flags: u8 },
        Forward { key: usize, flags: u8 },
        Reverse { key: usize, flags: u8 },
        Stray { target: usize, q: u16 },
        Peek { key: usize },
        Tick(Nanos),
        Expire(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0usize..24, 0usize..2, any::<u8>()).prop_map(|(key, target, flags)| Op::Create { key, target, flags }),
            3 => (0usize..24, any::<u8>()).prop_map(|(key, flags)| Op::Forward { key, flags }),
            3 => (0usize..24, any::<u8>()).prop_map(|(key, flags)| Op::Reverse { key, flags }),
            1 => (0usize..2, 6999u16..7004).prop_map(|(target, q)| Op::Stray { target, q }),
            1 => (0usize..24).prop_map(|key| Op::Peek { key }),
            2 => (0u64..40).prop_map(Op::Tick),
            1 => (0usize..20).prop_map(Op::Expire),
        ]
    }

    /// The model: live flows by key, with the state that decides timeouts.
    #[derive(Clone, Copy, Debug)]
    struct Model {
        target: TargetAddr,
        q: u16,
        deadline: Nanos,
        replied: bool,
        tcp: u8,
    }

    const PT: Nanos = 10; // model timeouts, small so that flows die often

    fn model_cfg() -> NatConfig {
        NatConfig {
            udp_idle: 3 * PT,
            tcp_established: 9 * PT,
            tcp_transitory: 2 * PT,
            tcp_rst_grace: PT,
            icmp_idle: PT,
            max_flows: 12,
            ports: PortRange::new(7000, 7002).unwrap(),
            port_tries: 64,
            hash_seed: 3,
            reserved_port: None,
        }
    }

    fn model_key(i: usize) -> FlowKey {
        let proto = [PROTO_UDP, PROTO_TCP, PROTO_ICMP][i % 3];
        let p = 1000 + (i / 6) as u16;
        if proto == PROTO_ICMP {
            FlowKey::icmp_echo(ip(192, 0, 2, (i % 2) as u8), ip(198, 51, 100, 1), p)
        } else {
            FlowKey::new(ip(192, 0, 2, (i % 2) as u8), p, ip(198, 51, 100, 1), 80, proto)
        }
    }

    fn model_target(i: usize, proto: u8) -> TargetAddr {
        target(i as u8, if proto == PROTO_ICMP { 0 } else { 8080 })
    }

    /// The model's timeout rule, written from the RFC table in the module doc.
    fn model_timeout(cfg: &NatConfig, m: &Model, proto: u8) -> Nanos {
        match proto {
            PROTO_UDP => cfg.udp_idle,
            PROTO_ICMP => cfg.icmp_idle,
            _ => {
                let fins = m.tcp & (tcp::FIN_FWD | tcp::FIN_REV);
                if m.tcp & tcp::RST != 0 {
                    cfg.tcp_rst_grace
                } else if fins == tcp::FIN_FWD | tcp::FIN_REV {
                    cfg.tcp_transitory
                } else if m.tcp & tcp::EST != 0 {
                    cfg.tcp_established
                } else {
                    cfg.tcp_transitory
                }
            }
        }
    }

    fn model_touch(cfg: &NatConfig, m: &mut Model, proto: u8, dir: Dir, flags: u8, now: Nanos) {
        if dir == Dir::Reverse {
            m.replied = true;
        }
        if proto == PROTO_TCP {
            m.tcp = tcp_advance(m.tcp, TcpFlags::from_bits(flags), dir, m.replied);
        }
        m.deadline = now + model_timeout(cfg, m, proto);
    }

    fn flags_for(proto: u8, f: u8) -> Option<TcpFlags> {
        (proto == PROTO_TCP).then(|| TcpFlags::from_bits(f & 0x17))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn random_operations_match_a_reference_model(ops in prop::collection::vec(op(), 1..300)) {
            let cfg = model_cfg();
            let mut t = NatTable::new(cfg).unwrap();
            let mut model: HashMap<FlowKey, Model> = HashMap::new();
            let mut now: Nanos = 0;
            for op in ops {
                // Dead flows leave the model (the table frees them lazily).
                model.retain(|_, m| now < m.deadline);
                match op {
                    Op::Create { key, target, flags } => {
                        let k = model_key(key);
                        let tg = model_target(target, k.proto);
                        let f = flags_for(k.proto, flags);
                        let r = t.create(&k, tg, now, f);
                        let fb = f.map_or(0, |f| f.bits());
                        if let Some(m) = model.get_mut(&k) {
                            let h = r.unwrap();
                            prop_assert!(!h.created);
                            prop_assert_eq!((h.target, h.nat_port), (m.target, m.q));
                            model_touch(&cfg, m, k.proto, Dir::Forward, fb, now);
                        } else if model.len() >= cfg.max_flows {
                            prop_assert_eq!(r, Err(NatError::TableFull));
                        } else if model.iter().filter(|(mk, m)| m.target == tg && mk.proto == k.proto).count()
                            >= cfg.ports.len() as usize
                        {
                            prop_assert_eq!(r, Err(NatError::PortsExhausted));
                        } else {
                            let h = r.unwrap();
                            prop_assert!(h.created);
                            prop_assert_eq!(h.target, tg);
                            prop_assert!(cfg.ports.contains(h.nat_port));
                            prop_assert!(
                                !model.iter().any(|(mk, m)| m.target == tg && mk.proto == k.proto && m.q == h.nat_port),
                                "port {} in use toward {:?}", h.nat_port, tg
                            );
                            let mut m = Model { target: tg, q: h.nat_port, deadline: 0, replied: false, tcp: 0 };
                            model_touch(&cfg, &mut m, k.proto, Dir::Forward, fb, now);
                            model.insert(k, m);
                        }
                    }
                    Op::Forward { key, flags } => {
                        let k = model_key(key);
                        let f = flags_for(k.proto, flags);
                        let r = t.lookup_forward(&k, now, f);
                        match model.get_mut(&k) {
                            Some(m) => {
                                let h = r.unwrap();
                                prop_assert_eq!((h.target, h.nat_port, h.replied), (m.target, m.q, m.replied));
                                model_touch(&cfg, m, k.proto, Dir::Forward, f.map_or(0, |f| f.bits()), now);
                            }
                            None => prop_assert!(r.is_none()),
                        }
                    }
                    Op::Reverse { key, flags } => {
                        let k = model_key(key);
                        let f = flags_for(k.proto, flags);
                        if let Some(m) = model.get_mut(&k) {
                            let r = t.lookup_reverse(m.target, m.q, k.proto, now, f).unwrap();
                            prop_assert_eq!(r.key, k);
                            model_touch(&cfg, m, k.proto, Dir::Reverse, f.map_or(0, |f| f.bits()), now);
                        }
                    }
                    Op::Stray { target, q } => {
                        for proto in [PROTO_UDP, PROTO_TCP, PROTO_ICMP] {
                            let tg = model_target(target, proto);
                            let expect = model.iter().find(|(mk, m)| mk.proto == proto && m.target == tg && m.q == q);
                            let got = t.peek_reverse(tg, q, proto, now);
                            prop_assert_eq!(got.map(|h| h.key), expect.map(|(k, _)| *k));
                        }
                    }
                    Op::Peek { key } => {
                        let k = model_key(key);
                        let got = t.peek_forward(&k, now);
                        prop_assert_eq!(got.map(|h| (h.target, h.nat_port)), model.get(&k).map(|m| (m.target, m.q)));
                    }
                    Op::Tick(d) => now += d,
                    Op::Expire(budget) => {
                        t.expire(now, budget);
                    }
                }
                t.check_invariants();
                model.retain(|_, m| now < m.deadline);
                // Every live model flow has its deadline in the table.
                for (k, m) in &model {
                    let h = t.peek_forward(k, now).unwrap();
                    prop_assert_eq!(t.flow(h.id).unwrap().expires_at, m.deadline);
                }
                prop_assert!(t.len() >= model.len());
                prop_assert_eq!(
                    t.flows().filter(|f| now < f.expires_at).count(),
                    model.values().filter(|m| now < m.deadline).count()
                );
            }
            now += 100 * PT;
            for _ in 0..cfg.max_flows.div_ceil(5) {
                t.expire(now, 5);
                t.check_invariants();
            }
            prop_assert_eq!(t.len(), 0);
            let c = t.counters();
            prop_assert_eq!(c.created, c.expired);
            t.check_invariants();
        }

        #[test]
        fn forward_then_reverse_restores_any_tuple(
            flows in prop::collection::vec((any::<u32>(), any::<u16>(), any::<u32>(), any::<u16>(),
                prop::sample::select(vec![PROTO_UDP, PROTO_TCP, PROTO_ICMP]), any::<u32>(), any::<u16>()), 1..64),
        ) {
            let mut t = table(64, 1024, 65535);
            let mut made = Vec::new();
            for (a, p, b, g, proto, at, r) in flows {
                let k = FlowKey::new(Ipv4Addr::from_bits(a), p, Ipv4Addr::from_bits(b), g, proto);
                let tg = TargetAddr { ip: Ipv4Addr::from_bits(at), port: r };
                let h = t.create(&k, tg, 0, flags_for(proto, 0x02)).unwrap();
                if h.created {
                    made.push((k, h));
                }
            }
            for (k, h) in &made {
                let back = t.lookup_reverse(h.target, h.nat_port, k.proto, 1, None).unwrap();
                prop_assert_eq!(back.key, *k);
                prop_assert_eq!(back.id, h.id);
            }
            t.check_invariants();
        }

        #[test]
        fn both_directions_of_a_flow_reach_the_same_worker(
            flows in prop::collection::vec((any::<u32>(), any::<u16>(), any::<u16>(), any::<u8>()), 1..50),
            workers in 1u16..=16,
        ) {
            use crate::flow::{owner, NatPorts};
            let split = NatPorts::new(PortRange::default(), workers).unwrap();
            let mut tables: Vec<NatTable> = (0..workers)
                .map(|w| {
                    let ports = split.range_of(w).unwrap();
                    NatTable::new(NatConfig { max_flows: 64, ports, ..NatConfig::default() }).unwrap()
                })
                .collect();
            for (a, p, g, t) in flows {
                let k = FlowKey::new(Ipv4Addr::from_bits(a), p, ip(198, 51, 100, 1), g, PROTO_UDP);
                let w = owner(&k, workers);
                let h = tables[usize::from(w)].create(&k, target(t, 53), 0, None).unwrap();
                prop_assert_eq!(split.worker_of_port(h.nat_port), Some(w));
                let back = tables[usize::from(w)].lookup_reverse(target(t, 53), h.nat_port, PROTO_UDP, 1, None);
                prop_assert_eq!(back.map(|b| b.key), Some(k));
            }
        }

        #[test]
        fn create_never_makes_two_entries_for_one_key(
            creates in prop::collection::vec((0u16..20, 0u8..4, 0u64..50), 1..200),
        ) {
            let mut t = table(64, 1024, 65535);
            let mut first: HashMap<u16, (TargetAddr, u16)> = HashMap::new();
            for (p, tg, now) in creates {
                let k = udp(1, p);
                let h = t.create(&k, target(tg, 53), now, None).unwrap();
                let e = first.entry(p).or_insert((h.target, h.nat_port));
                prop_assert_eq!(*e, (h.target, h.nat_port));
            }
            prop_assert_eq!(t.len(), first.len());
            t.check_invariants();
        }
    }
}
