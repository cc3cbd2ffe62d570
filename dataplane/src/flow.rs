//! Flow keys, the flow hash, and which worker owns a flow (DESIGN.md §2 and
//! §5 "Ownership"; issue 4 item 7).
//!
//! A worker owns a shard of the flow state (its NAT table, its fragment
//! tracker). Both directions of a flow must reach the same worker:
//!
//! - **forward** (`AC:p → AA:g`, arriving IP-in-IP, so RSS sees only the
//!   outer pair): the owner is [`owner`]`(key, workers)`, a fixed hash of the
//!   inner tuple [`FlowKey`], the same in every worker and every process;
//! - **reverse** (`AT:r → JAP:q`): the NAT port `q` was drawn from the
//!   owner's own slice of the NAT port range ([`NatPorts`]), so
//!   [`NatPorts::worker_of_port`] names the owner.
//!
//! A packet that landed on another worker is handed to its owner (issue 4
//! item 7); hardware steering is an optimisation on top.
//!
//! The module also holds `SlotIndex`, the open-addressing index the NAT
//! table and the fragment tracker share (crate-private).

use core::fmt;
use core::net::Ipv4Addr;

/// IPv4 protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IPv4 protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IPv4 protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// The inner tuple of a flow as the client sent it: `AC:p → AA:g` (seed
/// Figure 2, segment 1).
///
/// For ICMP echo the identifier plays the port on both sides, `sport ==
/// dport == identifier` (RFC 5508 REQ-1: the identifier is mapped like a
/// port); see [`FlowKey::icmp_echo`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(C)]
pub struct FlowKey {
    /// The client's address `AC`.
    pub src: Ipv4Addr,
    /// The group's anycast address `AA`.
    pub dst: Ipv4Addr,
    /// The client's port `p` (ICMP echo: the identifier).
    pub sport: u16,
    /// The group's port `g` (ICMP echo: the identifier).
    pub dport: u16,
    /// IPv4 protocol number.
    pub proto: u8,
}

impl FlowKey {
    /// A TCP or UDP (or any ported protocol) key.
    #[inline]
    pub const fn new(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, proto: u8) -> FlowKey {
        FlowKey { src, dst, sport, dport, proto }
    }

    /// The key of an ICMP echo flow: the identifier is both ports.
    #[inline]
    pub const fn icmp_echo(src: Ipv4Addr, dst: Ipv4Addr, ident: u16) -> FlowKey {
        FlowKey { src, dst, sport: ident, dport: ident, proto: PROTO_ICMP }
    }

    /// The ownership hash: [`FlowKey::hash_with`] under [`OWNER_SEED`].
    #[inline]
    pub fn hash(&self) -> u64 {
        self.hash_with(OWNER_SEED)
    }

    /// The flow hash under `seed`: [`hash2`] of the 13 key bytes packed in two
    /// words, `a = src ‖ sport ‖ dport` and `b = dst ‖ proto`.
    ///
    /// Why this packing: each word combines fields that are not adjacent in
    /// the (`repr(C)`) key, so the compiler cannot merge their loads into one
    /// 8-byte load. Such a load of a key the caller has just written field by
    /// field misses store-to-load forwarding and waits for the stores to
    /// retire, which serialises consecutive lookups; measured here it made a
    /// random forward lookup in a 1 M table 4–5× slower.
    #[inline]
    pub fn hash_with(&self, seed: u64) -> u64 {
        let a = (u64::from(self.src.to_bits()) << 32) | (u64::from(self.sport) << 16) | u64::from(self.dport);
        let b = (u64::from(self.dst.to_bits()) << 8) | u64::from(self.proto);
        hash2(seed, a, b)
    }
}

impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} -> {}:{} proto {}", self.src, self.sport, self.dst, self.dport, self.proto)
    }
}

/// The seed of the ownership hash. Fixed, never random per process: every
/// worker (and every restart) must agree on a flow's owner.
pub const OWNER_SEED: u64 = 0x5049_4153_2005_0001; // "PIAS" 2005

/// The 64-bit finaliser of MurmurHash3 (`fmix64`): a bijection on `u64`
/// with full avalanche (every input bit flips each output bit with
/// probability ≈ ½). Two multiplies and three xor-shifts.
#[inline]
const fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// The flow hash of two 64-bit words: `fmix64(fmix64(a ⊕ seed) ⊕ b)`.
///
/// Why this function: it decides flow ownership across workers, so it must
/// be deterministic (no per-process random state, unlike std's `SipHash`
/// `RandomState`) and cheap (four multiplies, ~20 cycles, no table, no
/// branch). Each stage is a bijection, so for a fixed `a` distinct `b`s never
/// collide and vice versa: no input "blinds" the other (the weakness of a
/// single wide multiply of `a × b`). Tables that index flows use their own
/// seed (configurable, so a deployment can make it secret) so that their
/// bucket bits are independent of the ownership bits.
#[inline]
pub const fn hash2(seed: u64, a: u64, b: u64) -> u64 {
    fmix64(fmix64(a ^ seed) ^ b)
}

/// The worker that owns the forward direction of `key`, in `0..workers`
/// (`0` when `workers` is 0).
///
/// Lemire's multiply-shift reduction of the hash's high 32 bits: uniform,
/// no division. Stable: the same key and worker count give the same owner
/// in every worker and every process.
#[inline]
pub fn owner(key: &FlowKey, workers: u16) -> u16 {
    // One worker (or none) owns everything: `reduce` would give 0 for any
    // hash, so the hash is not computed.
    if workers <= 1 {
        return 0;
    }
    reduce(key.hash(), workers)
}

/// Maps a hash into `0..n` by its high 32 bits (`0` when `n` is 0).
#[inline]
pub(crate) const fn reduce(hash: u64, n: u16) -> u16 {
    // (h32 × n) >> 32 < n ≤ u16::MAX, so the cast keeps every bit.
    (((hash >> 32) * n as u64) >> 32) as u16
}

/// An inclusive range of ports `lo..=hi`, never empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port (inclusive).
    pub hi: u16,
}

impl PortRange {
    /// `lo..=hi`; `None` when `lo > hi`.
    #[inline]
    pub const fn new(lo: u16, hi: u16) -> Option<PortRange> {
        if lo > hi {
            None
        } else {
            Some(PortRange { lo, hi })
        }
    }

    /// Number of ports (1..=65 536; 0 only for a hand-built `lo > hi`).
    #[inline]
    pub const fn len(&self) -> u32 {
        if self.lo > self.hi {
            0
        } else {
            self.hi as u32 - self.lo as u32 + 1
        }
    }

    /// True for a hand-built range with `lo > hi`.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when `q` is in the range.
    #[inline]
    pub const fn contains(&self, q: u16) -> bool {
        self.lo <= q && q <= self.hi
    }
}

impl Default for PortRange {
    /// The NAT port range: every non-well-known port, 1024..=65535.
    fn default() -> Self {
        PortRange { lo: 1024, hi: 65535 }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.lo, self.hi)
    }
}

/// Why a NAT port range cannot be split among workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NatPortsError {
    /// The worker count is 0.
    #[error("the worker count must be at least 1")]
    NoWorkers,
    /// The range has `lo > hi`.
    #[error("the NAT port range {0} is empty (lo > hi)")]
    EmptyRange(PortRange),
    /// Fewer ports than workers: some worker would get none.
    #[error("the NAT port range {range} has {ports} ports, fewer than the {workers} workers")]
    TooFewPorts {
        /// The configured range.
        range: PortRange,
        /// Its number of ports.
        ports: u32,
        /// The worker count.
        workers: u16,
    },
}

/// The configured NAT port range split into `workers` disjoint contiguous
/// slices, one per worker, covering the range.
///
/// With `n` ports and `w` workers each worker gets `⌊n/w⌋` ports and the
/// first `n mod w` workers one more. Worker `i`'s NAT table allocates `q`
/// only from [`NatPorts::range_of`]`(i)`, so a reverse packet's destination
/// port names its owner ([`NatPorts::worker_of_port`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatPorts {
    range: PortRange,
    workers: u16,
    /// `⌊n/w⌋`.
    base: u32,
    /// `n mod w`: workers `0..rem` hold `base + 1` ports.
    rem: u32,
}

impl NatPorts {
    /// Splits `range` among `workers`.
    pub fn new(range: PortRange, workers: u16) -> Result<NatPorts, NatPortsError> {
        if workers == 0 {
            return Err(NatPortsError::NoWorkers);
        }
        let n = range.len();
        if n == 0 {
            return Err(NatPortsError::EmptyRange(range));
        }
        if n < u32::from(workers) {
            return Err(NatPortsError::TooFewPorts { range, ports: n, workers });
        }
        let w = u32::from(workers);
        Ok(NatPorts { range, workers, base: n / w, rem: n % w })
    }

    /// The whole range.
    pub const fn range(&self) -> PortRange {
        self.range
    }

    /// The worker count.
    pub const fn workers(&self) -> u16 {
        self.workers
    }

    /// Worker `w`'s slice; `None` when `w ≥ workers`.
    pub fn range_of(&self, w: u16) -> Option<PortRange> {
        if w >= self.workers {
            return None;
        }
        let w = u32::from(w);
        let start = u32::from(self.range.lo) + w * self.base + w.min(self.rem);
        let size = self.base + u32::from(w < self.rem);
        // start + size - 1 ≤ hi ≤ u16::MAX by construction.
        let lo = u16::try_from(start).ok()?;
        let hi = u16::try_from(start + size - 1).ok()?;
        Some(PortRange { lo, hi })
    }

    /// The worker whose slice holds NAT port `q` (the reverse owner); `None`
    /// when `q` is outside the NAT range (then the packet is no NAT reply).
    ///
    /// One compare and one division: cheap enough per reverse packet.
    #[inline]
    pub fn worker_of_port(&self, q: u16) -> Option<u16> {
        if !self.range.contains(q) {
            return None;
        }
        let off = u32::from(q - self.range.lo);
        let big = self.rem * (self.base + 1);
        let w = if off < big { off / (self.base + 1) } else { self.rem + (off - big) / self.base };
        u16::try_from(w).ok()
    }
}

/// An open-addressing index from a 64-bit hash to a `u32` slot number of the
/// table that owns it, shared by the NAT table and the fragment tracker.
///
/// Linear probing over 8-byte slots (32 hash bits + the slot number), sized
/// once at construction to at least 1.5 × the most items it will ever hold
/// (load ≤ ⅔), and deleted by backward shift (Knuth vol. 3, 6.4 Algorithm
/// R): no tombstones, so it never needs a rehash, never allocates after
/// construction and never stalls, whatever the churn. A lookup compares the
/// stored 32 hash bits before calling the owner's equality on the slot, so a
/// miss rarely touches the owner's entries; a probe run stays within one or
/// two cache lines at this load.
#[derive(Clone, Debug)]
pub(crate) struct SlotIndex {
    slots: Vec<Slot>,
    mask: usize,
}

/// Asks the CPU to bring the cache line at `p` into all cache levels
/// (x86-64 `prefetcht0`; nothing elsewhere). A hint: it never faults, even
/// for an address that is not mapped, and changes no program state, so a
/// wrong guess only wastes a memory access.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` only hints the cache; it does not dereference
    // `p` architecturally (no fault, no read visible to the program), so
    // any pointer value is sound. SSE is part of the x86-64 baseline.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Low 32 bits of the item's hash; its home is `hash & mask`.
    hash: u32,
    /// The item, or [`SlotIndex::EMPTY`].
    item: u32,
}

impl SlotIndex {
    /// Marks a free slot; never a valid item.
    pub(crate) const EMPTY: u32 = u32::MAX;
    /// Most items any index may be built for (2³⁰, so `mask` fits 32 bits).
    pub(crate) const MAX_ITEMS: usize = 1 << 30;

    /// An index for up to `max_items` items (clamped to [`Self::MAX_ITEMS`]).
    pub(crate) fn with_max_items(max_items: usize) -> SlotIndex {
        let m = max_items.min(Self::MAX_ITEMS);
        let want = (m + m / 2 + 1).max(8);
        let n = want.next_power_of_two();
        let mut slots = Vec::with_capacity(n);
        // Huge pages before the first touch (the fill below).
        crate::huge_pages::advise(&slots);
        slots.resize(n, Slot { hash: 0, item: Self::EMPTY });
        SlotIndex { slots, mask: n - 1 }
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        (hash as u32 as usize) & self.mask
    }

    /// The position and item of the first slot with `hash` whose item
    /// satisfies `eq`.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<(usize, u32)> {
        let h = hash as u32;
        let mut pos = self.home(hash);
        // At least one slot is always empty (items < slots), so this ends.
        loop {
            let s = self.slots[pos];
            if s.item == Self::EMPTY {
                return None;
            }
            if s.hash == h && eq(s.item) {
                return Some((pos, s.item));
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// Prefetches the cache line of `hash`'s home slot (a hint; see
    /// [`prefetch`]).
    #[inline]
    pub(crate) fn prefetch_home(&self, hash: u64) {
        prefetch(self.slots.as_ptr().wrapping_add(self.home(hash)));
    }

    /// The first item stored under `hash` within a few slots of its home,
    /// without comparing items: the entry a lookup of `hash` will most
    /// likely read, for prefetching it. `None` past an empty slot or after
    /// [`Self::HINT_PROBES`] slots.
    #[inline]
    pub(crate) fn hint(&self, hash: u64) -> Option<u32> {
        let h = hash as u32;
        let mut pos = self.home(hash);
        for _ in 0..Self::HINT_PROBES {
            let s = *self.slots.get(pos)?;
            if s.item == Self::EMPTY {
                return None;
            }
            if s.hash == h {
                return Some(s.item);
            }
            pos = (pos + 1) & self.mask;
        }
        None
    }

    /// Slots [`Self::hint`] looks at: one cache line of 8-byte slots.
    const HINT_PROBES: usize = 8;

    /// Adds `item` under `hash`. The caller guarantees the owner never holds
    /// more than the `max_items` the index was built for.
    #[inline]
    pub(crate) fn insert(&mut self, hash: u64, item: u32) {
        debug_assert!(item != Self::EMPTY);
        let mut pos = self.home(hash);
        while self.slots[pos].item != Self::EMPTY {
            pos = (pos + 1) & self.mask;
        }
        self.slots[pos] = Slot { hash: hash as u32, item };
    }

    /// Removes `item` stored under `hash`; false if it is not there.
    #[inline]
    pub(crate) fn remove(&mut self, hash: u64, item: u32) -> bool {
        match self.find(hash, |i| i == item) {
            Some((pos, _)) => {
                self.remove_at(pos);
                true
            }
            None => false,
        }
    }

    /// Empties slot `pos` and shifts back the rest of its probe run.
    pub(crate) fn remove_at(&mut self, mut hole: usize) {
        let mask = self.mask;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s.item == Self::EMPTY {
                break;
            }
            let home = (s.hash as usize) & mask;
            // `s` may fill the hole when the hole lies cyclically in
            // [home, j): its probe from home passes the hole before j.
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = Slot { hash: 0, item: Self::EMPTY };
    }

    /// Bytes held by the index.
    pub(crate) fn bytes(&self) -> usize {
        self.slots.len() * core::mem::size_of::<Slot>()
    }

    /// Number of slots.
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Mean and largest distance of the items from their home slot (tests:
    /// a hash that clusters shows here first).
    #[cfg(test)]
    pub(crate) fn displacement(&self) -> (f64, usize) {
        let (mut sum, mut max, mut n) = (0usize, 0usize, 0usize);
        for (pos, s) in self.slots.iter().enumerate().filter(|(_, s)| s.item != Self::EMPTY) {
            let d = pos.wrapping_sub((s.hash as usize) & self.mask) & self.mask;
            sum += d;
            max = max.max(d);
            n += 1;
        }
        (sum as f64 / n.max(1) as f64, max)
    }

    /// Every stored item, in slot order (tests).
    #[cfg(test)]
    pub(crate) fn items(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().filter(|s| s.item != Self::EMPTY).map(|s| s.item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(a: u32, p: u16, b: u32, g: u16, proto: u8) -> FlowKey {
        FlowKey::new(Ipv4Addr::from_bits(a), p, Ipv4Addr::from_bits(b), g, proto)
    }

    #[test]
    fn hash_is_fixed_across_builds() {
        // A golden value: changing the hash moves every flow to another
        // worker on upgrade, so it must be a deliberate act.
        let k = key(0xC000_0201, 40000, 0xC633_6405, 53, PROTO_UDP);
        assert_eq!(k.hash(), k.hash());
        assert_eq!(k.hash(), FlowKey { ..k }.hash_with(OWNER_SEED));
        let golden = hash2(OWNER_SEED, (0xC000_0201 << 32) | (40000 << 16) | 53, (0xC633_6405 << 8) | 17);
        assert_eq!(k.hash(), golden);
        assert_ne!(k.hash(), k.hash_with(1));
    }

    #[test]
    fn every_field_moves_the_hash() {
        let k = key(0x0A00_0001, 1000, 0xC633_6401, 80, PROTO_TCP);
        let h = k.hash();
        assert_ne!(h, FlowKey { src: Ipv4Addr::from_bits(0x0A00_0002), ..k }.hash());
        assert_ne!(h, FlowKey { dst: Ipv4Addr::from_bits(0xC633_6402), ..k }.hash());
        assert_ne!(h, FlowKey { sport: 1001, ..k }.hash());
        assert_ne!(h, FlowKey { dport: 81, ..k }.hash());
        assert_ne!(h, FlowKey { proto: PROTO_UDP, ..k }.hash());
        // Swapped ports are another flow.
        assert_ne!(h, FlowKey { sport: 80, dport: 1000, ..k }.hash());
    }

    #[test]
    fn owner_spreads_evenly() {
        let workers = 8u16;
        let mut count = [0u32; 8];
        for i in 0..80_000u32 {
            let k = key(0x0A00_0000 + (i >> 6), 1024 + (i & 63) as u16, 0xC633_6401, 443, PROTO_TCP);
            count[usize::from(owner(&k, workers))] += 1;
        }
        for c in count {
            assert!((9_000..11_000).contains(&c), "uneven spread: {count:?}");
        }
        assert_eq!(owner(&key(1, 2, 3, 4, 6), 0), 0);
        assert_eq!(owner(&key(1, 2, 3, 4, 6), 1), 0);
    }

    #[test]
    fn icmp_echo_key_uses_identifier_as_both_ports() {
        let k = FlowKey::icmp_echo(Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 1), 77);
        assert_eq!((k.sport, k.dport, k.proto), (77, 77, PROTO_ICMP));
    }

    #[test]
    fn nat_ports_split_examples() {
        let p = NatPorts::new(PortRange::default(), 4).unwrap();
        assert_eq!(p.range_of(0), Some(PortRange { lo: 1024, hi: 17151 }));
        assert_eq!(p.range_of(3), Some(PortRange { lo: 49408, hi: 65535 }));
        assert_eq!(p.range_of(4), None);
        assert_eq!(p.worker_of_port(1023), None);
        assert_eq!(p.worker_of_port(1024), Some(0));
        assert_eq!(p.worker_of_port(65535), Some(3));
        // 10 ports over 3 workers: 4, 3, 3.
        let p = NatPorts::new(PortRange::new(10, 19).unwrap(), 3).unwrap();
        assert_eq!(p.range_of(0), Some(PortRange { lo: 10, hi: 13 }));
        assert_eq!(p.range_of(1), Some(PortRange { lo: 14, hi: 16 }));
        assert_eq!(p.range_of(2), Some(PortRange { lo: 17, hi: 19 }));
        assert_eq!(NatPorts::new(PortRange::default(), 0), Err(NatPortsError::NoWorkers));
        assert!(matches!(
            NatPorts::new(PortRange::new(1, 2).unwrap(), 3),
            Err(NatPortsError::TooFewPorts { ports: 2, workers: 3, .. })
        ));
        assert!(NatPorts::new(PortRange { lo: 5, hi: 4 }, 1).is_err());
        assert!(PortRange::new(5, 4).is_none());
        assert_eq!(PortRange::new(0, 65535).unwrap().len(), 65536);
    }

    #[test]
    fn slot_index_insert_find_remove() {
        let mut ix = SlotIndex::with_max_items(4);
        assert_eq!(ix.slots(), 8);
        // Items 0..4 all with the same home to exercise probing and shifts.
        for i in 0..4u32 {
            ix.insert(u64::from(i) << 8, i);
        }
        for i in 0..4u32 {
            assert_eq!(ix.find(u64::from(i) << 8, |x| x == i), Some((i as usize, i)));
        }
        assert!(ix.remove(0, 0));
        assert!(!ix.remove(0, 0));
        for i in 1..4u32 {
            assert!(ix.find(u64::from(i) << 8, |x| x == i).is_some(), "lost {i} after a shift");
        }
        assert_eq!(ix.items().count(), 3);
    }

    proptest! {
        #[test]
        fn owner_is_deterministic_and_in_range(a: u32, p: u16, b: u32, g: u16, proto: u8, workers in 1u16..=256) {
            let k = key(a, p, b, g, proto);
            let w = owner(&k, workers);
            prop_assert!(w < workers);
            prop_assert_eq!(w, owner(&FlowKey { ..k }, workers));
            prop_assert_eq!(k.hash(), key(a, p, b, g, proto).hash());
        }

        #[test]
        fn nat_port_slices_are_disjoint_covering_and_reversible(
            lo in 0u16..=65535, span in 0u32..=65535, workers in 1u16..=300,
        ) {
            let hi = (u32::from(lo) + span).min(65535) as u16;
            let range = PortRange::new(lo, hi).unwrap();
            let Ok(split) = NatPorts::new(range, workers) else {
                prop_assert!(range.len() < u32::from(workers));
                return Ok(());
            };
            let mut next = u32::from(lo);
            let (mut min, mut max) = (u32::MAX, 0);
            for w in 0..workers {
                let r = split.range_of(w).unwrap();
                prop_assert_eq!(u32::from(r.lo), next, "gap or overlap before worker {}", w);
                prop_assert!(r.lo <= r.hi);
                next = u32::from(r.hi) + 1;
                min = min.min(r.len());
                max = max.max(r.len());
                for q in [r.lo, r.hi, r.lo + (r.hi - r.lo) / 2] {
                    prop_assert_eq!(split.worker_of_port(q), Some(w));
                }
            }
            prop_assert_eq!(next, u32::from(hi) + 1, "slices do not cover the range");
            prop_assert!(max - min <= 1, "uneven split");
            if lo > 0 {
                prop_assert_eq!(split.worker_of_port(lo - 1), None);
            }
            if hi < 65535 {
                prop_assert_eq!(split.worker_of_port(hi + 1), None);
            }
        }

        #[test]
        fn worker_of_every_port_matches_its_slice(workers in 1u16..=64, q: u16) {
            let split = NatPorts::new(PortRange::default(), workers).unwrap();
            match split.worker_of_port(q) {
                None => prop_assert!(q < 1024),
                Some(w) => prop_assert!(split.range_of(w).unwrap().contains(q)),
            }
        }

        #[test]
        fn slot_index_matches_a_set(ops in prop::collection::vec((any::<bool>(), 0u32..48, 0u64..6), 1..400)) {
            // Few distinct hashes force long runs, collisions and wraparound.
            let mut ix = SlotIndex::with_max_items(48);
            let mut model: std::collections::HashMap<u32, u64> = Default::default();
            for (ins, item, h) in ops {
                let hash = (h << 32) | (120 + h); // homes at the end of the 128 slots: wraparound
                if ins {
                    if let std::collections::hash_map::Entry::Vacant(v) = model.entry(item) {
                        v.insert(hash);
                        ix.insert(hash, item);
                    }
                } else if let Some(hash) = model.remove(&item) {
                    prop_assert!(ix.remove(hash, item));
                }
                for (&i, &hash) in &model {
                    prop_assert_eq!(ix.find(hash, |x| x == i).map(|f| f.1), Some(i));
                }
                prop_assert_eq!(ix.items().count(), model.len());
            }
        }
    }
}
