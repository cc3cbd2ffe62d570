//! IPv4 fragment tracking for the NAT (RFC 4787 REQ-14; issue 4 item 10).
//!
//! A UDP datagram fragmented by the client or the target (a large DNS
//! answer, say) must arrive whole, in order or not. Only the first fragment
//! carries the ports that name its flow; the proxy does not reassemble.
//! Instead it remembers, per datagram, the first fragment's ports and NATs
//! every fragment with them ("virtual reassembly", as VPP does).
//!
//! # Policy
//!
//! - **What is matched.** A datagram is keyed by `(src, dst, proto, IP id)`
//!   ([`FragKey`]; RFC 791 §3.2, unique per RFC 6864 within the reassembly
//!   lifetime). The first fragment (offset 0, MF set) records its
//!   [`FragPorts`] ([`FragTracker::first_fragment`]); a later fragment gets
//!   them from [`FragTracker::other_fragment`].
//! - **Out of order.** A non-first fragment that arrives before its first
//!   fragment is held ([`FragTracker::hold`]; the tracker is generic over
//!   the held packet type `T`: the worker holds mbufs, this crate knows no
//!   DPDK). When the first fragment arrives the caller takes the held ones
//!   ([`FragTracker::take_held`], in arrival order) and NATs them with the
//!   ports just learned.
//! - **Lifetime.** A datagram is tracked for [`FragConfig::timeout`]
//!   (default 2 s, VPP's virtual-reassembly default; far below the 30 s
//!   reassembly time of RFC 1122, since fragments of one datagram arrive
//!   within milliseconds) from its first packet seen. It is freed early when
//!   complete: the last fragment (MF clear) gives the datagram's length, and
//!   when the fragment bytes seen reach it and nothing is held, the entry
//!   goes. Duplicated fragments count twice, so a duplicate can retire an
//!   entry early; the fragments after that are unmatched (dropped, counted)
//!   — acceptable for a rare event, and the sender's retry recovers.
//! - **Limits.** At most [`FragConfig::max_datagrams`] datagrams tracked
//!   (default 1 024), [`FragConfig::max_held`] fragments held in all
//!   (default 256) and [`FragConfig::max_held_per_datagram`] per datagram
//!   (default 64: a 64 KiB datagram at 1 500 bytes MTU has 45 fragments).
//!   Everything is reserved at construction; nothing allocates afterwards.
//! - **What is dropped (and counted).** A first fragment when the datagram
//!   cap is reached ([`FragError::TooManyDatagrams`]); a fragment that
//!   cannot be held (`hold` gives it back: the caller drops it); held
//!   fragments whose first fragment did not arrive in time
//!   ([`FragTracker::expire`] hands them back); a non-first fragment whose
//!   datagram is unknown and not held. Each has a counter in
//!   [`FragCounters`] or at the caller.
//! - **Expiry** is amortised like the NAT's: [`FragTracker::expire`] visits a
//!   bounded number of entries per call and hands every expired held packet
//!   to the caller's callback, which frees and counts it: nothing leaks.
//!
//! # Which worker tracks a datagram
//!
//! Non-first fragments carry no ports, so neither the forward owner (a hash
//! of the 5-tuple, [`crate::flow::owner`]) nor the reverse owner (the NAT
//! port) can be computed from them. Every fragment of a datagram, the first
//! included, is therefore first steered to the worker given by
//! [`FragKey::owner`] (a hash of the fragment key, the same for all of a
//! datagram's fragments), which runs this tracker and then hands each
//! fragment, with the ports it now knows, to the flow's owner. Fragments are
//! rare; the extra hop costs only them.

use core::net::Ipv4Addr;

use crate::flow::{hash2, reduce, SlotIndex, OWNER_SEED};
use crate::neighbour::Nanos;

/// Domain separator of the fragment-key hash.
const FRAG_DOMAIN: u64 = 0x6672_6167_6d65_6e74; // "fragment"

/// End of a list.
const NIL: u32 = u32::MAX;

/// Identifies one fragmented datagram (RFC 791 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(C)]
pub struct FragKey {
    /// Source address of the fragments.
    pub src: Ipv4Addr,
    /// Destination address of the fragments.
    pub dst: Ipv4Addr,
    /// IPv4 protocol number.
    pub proto: u8,
    /// IPv4 identification.
    pub id: u16,
}

impl FragKey {
    /// `hash2` of `a = src ‖ id ‖ proto`, `b = dst`: words of non-adjacent
    /// fields, for the store-forwarding reason given at
    /// [`crate::flow::FlowKey::hash_with`].
    #[inline]
    fn hash_with(&self, seed: u64) -> u64 {
        let a = (u64::from(self.src.to_bits()) << 32) | (u64::from(self.id) << 8) | u64::from(self.proto);
        let b = u64::from(self.dst.to_bits());
        hash2(seed ^ FRAG_DOMAIN, a, b)
    }

    /// The worker that tracks this datagram's fragments, in `0..workers`
    /// (`0` when `workers` is 0); fixed like [`crate::flow::owner`].
    #[inline]
    pub fn owner(&self, workers: u16) -> u16 {
        reduce(self.hash_with(OWNER_SEED), workers)
    }
}

/// The transport ports of a datagram's first fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragPorts {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// Where a fragment sits in its datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragMeta {
    /// Offset of its payload in bytes (the fragment offset field × 8).
    pub offset: u16,
    /// Payload length in bytes (IP total length − header length).
    pub len: u16,
    /// The MF (more fragments) flag.
    pub more: bool,
}

impl FragMeta {
    /// True for a first fragment (offset 0, MF set).
    #[inline]
    pub const fn is_first(&self) -> bool {
        self.offset == 0 && self.more
    }

    /// One past the fragment's last payload byte.
    #[inline]
    const fn end(&self) -> u32 {
        self.offset as u32 + self.len as u32
    }
}

/// Limits of a fragment tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragConfig {
    /// How long a datagram is tracked from its first packet seen.
    pub timeout: Nanos,
    /// Most datagrams tracked at once.
    pub max_datagrams: usize,
    /// Most fragments held at once (all datagrams).
    pub max_held: usize,
    /// Most fragments held for one datagram.
    pub max_held_per_datagram: u16,
    /// Seed of the index hash (any value).
    pub hash_seed: u64,
}

impl Default for FragConfig {
    /// 2 s, 1 024 datagrams, 256 held fragments, 64 per datagram.
    fn default() -> Self {
        FragConfig {
            timeout: 2_000_000_000,
            max_datagrams: 1024,
            max_held: 256,
            max_held_per_datagram: 64,
            hash_seed: 0x6672_6167_5f70_6961, // "frag_pia"
        }
    }
}

/// Why a first fragment was not tracked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FragError {
    /// [`FragConfig::max_datagrams`] datagrams are tracked: drop and count
    /// (its later fragments could not be matched).
    TooManyDatagrams,
}

/// Counters of one tracker (monotonic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragCounters {
    /// Datagrams started.
    pub tracked: u64,
    /// Datagrams retired complete.
    pub completed: u64,
    /// Datagrams retired by timeout.
    pub expired: u64,
    /// New datagrams refused: the datagram cap.
    pub refused_full: u64,
    /// Fragments held.
    pub held: u64,
    /// Fragments given back by `hold` (a cap, or a dead datagram).
    pub held_refused: u64,
    /// Held fragments handed back by `expire` (first fragment too late).
    pub held_expired: u64,
}

#[derive(Clone, Copy, Debug)]
struct Dgram {
    key: FragKey,
    deadline: Nanos,
    ports: FragPorts,
    used: bool,
    has_ports: bool,
    first_seen: bool,
    held_count: u16,
    /// Fragment payload bytes seen (held ones included).
    seen: u32,
    /// The datagram's payload length, once the last fragment was seen; 0
    /// while unknown.
    total: u32,
    held_head: u32,
    held_tail: u32,
    /// Next free entry while unused.
    next_free: u32,
}

impl Dgram {
    const FREE: Dgram = Dgram {
        key: FragKey { src: Ipv4Addr::UNSPECIFIED, dst: Ipv4Addr::UNSPECIFIED, proto: 0, id: 0 },
        deadline: 0,
        ports: FragPorts { sport: 0, dport: 0 },
        used: false,
        has_ports: false,
        first_seen: false,
        held_count: 0,
        seen: 0,
        total: 0,
        held_head: NIL,
        held_tail: NIL,
        next_free: NIL,
    };

    #[inline]
    fn dead(&self, now: Nanos) -> bool {
        now >= self.deadline
    }

    #[inline]
    fn account(&mut self, m: FragMeta) {
        self.seen = self.seen.saturating_add(u32::from(m.len));
        if !m.more {
            self.total = m.end().max(1);
        }
    }

    #[inline]
    fn complete(&self) -> bool {
        self.total != 0 && self.seen >= self.total
    }

    /// Forgets what was seen: a new datagram under the same key.
    fn restart(&mut self, now: Nanos, timeout: Nanos) {
        self.seen = 0;
        self.total = 0;
        self.first_seen = false;
        self.has_ports = false;
        self.deadline = now.saturating_add(timeout);
    }
}

#[derive(Debug)]
struct Held<T> {
    item: Option<T>,
    next: u32,
}

/// One worker's fragment tracker; see the module documentation.
///
/// Dropping a tracker that still holds packets drops them as `T`; a worker
/// holding raw mbufs calls [`FragTracker::clear`] first.
#[derive(Debug)]
pub struct FragTracker<T> {
    cfg: FragConfig,
    dgrams: Vec<Dgram>,
    dfree: u32,
    dlen: usize,
    index: SlotIndex,
    held: Vec<Held<T>>,
    hfree: u32,
    hlen: usize,
    sweep: usize,
    counters: FragCounters,
}

impl<T> FragTracker<T> {
    /// A tracker with everything reserved (limits clamped: at least 1
    /// datagram, at most 2³⁰ of each).
    pub fn new(mut cfg: FragConfig) -> FragTracker<T> {
        cfg.max_datagrams = cfg.max_datagrams.clamp(1, SlotIndex::MAX_ITEMS);
        cfg.max_held = cfg.max_held.min(SlotIndex::MAX_ITEMS);
        FragTracker {
            dgrams: Vec::with_capacity(cfg.max_datagrams),
            dfree: NIL,
            dlen: 0,
            index: SlotIndex::with_max_items(cfg.max_datagrams),
            held: Vec::with_capacity(cfg.max_held),
            hfree: NIL,
            hlen: 0,
            sweep: 0,
            counters: FragCounters::default(),
            cfg,
        }
    }

    /// The configuration (after clamping).
    pub fn config(&self) -> &FragConfig {
        &self.cfg
    }

    /// Datagrams tracked (dead ones included until freed).
    pub fn datagrams(&self) -> usize {
        self.dlen
    }

    /// Fragments held.
    pub fn held(&self) -> usize {
        self.hlen
    }

    /// The counters.
    pub fn counters(&self) -> &FragCounters {
        &self.counters
    }

    /// Fragments held for `key` (0 when it is not tracked).
    pub fn held_for(&self, key: &FragKey) -> usize {
        self.find(key).and_then(|i| self.dgrams.get(i as usize)).map_or(0, |d| usize::from(d.held_count))
    }

    /// The ports recorded for `key` by its first fragment, if that was seen
    /// and the datagram is live at `now`. Changes nothing (no accounting):
    /// a caller uses it to recognise a repeated first fragment.
    pub fn ports(&self, key: &FragKey, now: Nanos) -> Option<FragPorts> {
        let d = self.dgrams.get(self.find(key)? as usize)?;
        (d.used && d.has_ports && !d.dead(now)).then_some(d.ports)
    }

    #[inline]
    fn find(&self, key: &FragKey) -> Option<u32> {
        let dgrams = &self.dgrams;
        self.index
            .find(key.hash_with(self.cfg.hash_seed), |i| {
                dgrams.get(i as usize).is_some_and(|d| d.used && d.key == *key)
            })
            .map(|(_, i)| i)
    }

    /// A new datagram entry, or `None` at the cap.
    fn alloc(&mut self, key: &FragKey, now: Nanos) -> Option<u32> {
        if self.dlen >= self.cfg.max_datagrams {
            return None;
        }
        let i = if self.dfree != NIL {
            let i = self.dfree;
            self.dfree = self.dgrams.get(i as usize)?.next_free;
            i
        } else {
            // Within the capacity reserved in `new`: never reallocates.
            self.dgrams.push(Dgram::FREE);
            u32::try_from(self.dgrams.len() - 1).ok()?
        };
        let d = self.dgrams.get_mut(i as usize)?;
        *d = Dgram { key: *key, deadline: now.saturating_add(self.cfg.timeout), used: true, ..Dgram::FREE };
        self.index.insert(key.hash_with(self.cfg.hash_seed), i);
        self.dlen += 1;
        self.counters.tracked += 1;
        Some(i)
    }

    /// Frees entry `i`; its held list must be empty.
    fn free(&mut self, i: u32) {
        let Some(d) = self.dgrams.get_mut(i as usize) else { return };
        if !d.used {
            return;
        }
        debug_assert_eq!(d.held_count, 0);
        let key = d.key;
        *d = Dgram { next_free: self.dfree, ..Dgram::FREE };
        self.dfree = i;
        self.dlen -= 1;
        self.index.remove(key.hash_with(self.cfg.hash_seed), i);
    }

    /// Retires entry `i` if complete and holding nothing.
    fn retire_if_complete(&mut self, i: u32) {
        if self.dgrams.get(i as usize).is_some_and(|d| d.used && d.complete() && d.held_count == 0) {
            self.free(i);
            self.counters.completed += 1;
        }
    }

    /// A first fragment (offset 0, MF set) with its transport ports.
    /// Afterwards call [`FragTracker::take_held`] to release the fragments
    /// that came before it.
    ///
    /// A first fragment with other ports than the one recorded under its key
    /// starts a new datagram (the IP id was reused); a repeated one changes
    /// nothing. A datagram past its deadline but not yet swept is revived
    /// (its held fragments are released late rather than dropped).
    pub fn first_fragment(
        &mut self,
        key: &FragKey,
        ports: FragPorts,
        meta: FragMeta,
        now: Nanos,
    ) -> Result<(), FragError> {
        let timeout = self.cfg.timeout;
        let i = match self.find(key) {
            Some(i) => i,
            None => match self.alloc(key, now) {
                Some(i) => i,
                None => {
                    self.counters.refused_full += 1;
                    return Err(FragError::TooManyDatagrams);
                }
            },
        };
        if let Some(d) = self.dgrams.get_mut(i as usize) {
            if d.dead(now) || (d.has_ports && d.ports != ports) {
                d.restart(now, timeout);
            }
            d.ports = ports;
            d.has_ports = true;
            if !d.first_seen {
                d.first_seen = true;
                d.account(meta);
            }
        }
        self.retire_if_complete(i);
        Ok(())
    }

    /// A non-first fragment: the ports of its datagram when its first
    /// fragment has been seen. `None`: hold it ([`FragTracker::hold`]) or
    /// drop and count it.
    #[inline]
    pub fn other_fragment(&mut self, key: &FragKey, meta: FragMeta, now: Nanos) -> Option<FragPorts> {
        let i = self.find(key)?;
        let d = self.dgrams.get_mut(i as usize)?;
        if d.dead(now) {
            if d.held_count == 0 {
                self.free(i);
                self.counters.expired += 1;
            }
            return None;
        }
        if !d.has_ports {
            return None;
        }
        d.account(meta);
        let ports = d.ports;
        self.retire_if_complete(i);
        Some(ports)
    }

    /// Holds a fragment that came before its first fragment. `Err` gives it
    /// back (a cap is reached, or its datagram is past its deadline): the
    /// caller drops and counts it.
    pub fn hold(&mut self, key: &FragKey, meta: FragMeta, item: T, now: Nanos) -> Result<(), T> {
        if self.hlen >= self.cfg.max_held {
            self.counters.held_refused += 1;
            return Err(item);
        }
        let i = match self.find(key) {
            Some(i) => i,
            None => match self.alloc(key, now) {
                Some(i) => i,
                None => {
                    self.counters.refused_full += 1;
                    self.counters.held_refused += 1;
                    return Err(item);
                }
            },
        };
        let refuse =
            self.dgrams.get(i as usize).map_or(true, |d| d.dead(now) || d.held_count >= self.cfg.max_held_per_datagram);
        if refuse {
            self.counters.held_refused += 1;
            return Err(item);
        }
        let h = if self.hfree != NIL {
            let h = self.hfree;
            match self.held.get(h as usize) {
                Some(s) => self.hfree = s.next,
                None => return Err(item),
            }
            h
        } else {
            // hlen < max_held = reserved capacity: never reallocates.
            self.held.push(Held { item: None, next: NIL });
            match u32::try_from(self.held.len() - 1) {
                Ok(h) => h,
                Err(_) => return Err(item),
            }
        };
        let Some(slot) = self.held.get_mut(h as usize) else { return Err(item) };
        *slot = Held { item: Some(item), next: NIL };
        let tail = match self.dgrams.get_mut(i as usize) {
            Some(d) => {
                let tail = d.held_tail;
                if tail == NIL {
                    d.held_head = h;
                }
                d.held_tail = h;
                d.held_count += 1;
                d.account(meta);
                tail
            }
            None => NIL,
        };
        if let Some(t) = self.held.get_mut(tail as usize) {
            t.next = h;
        }
        self.hlen += 1;
        self.counters.held += 1;
        Ok(())
    }

    /// Takes the fragments held for `key`, in arrival order. Run it to the
    /// end (a complete datagram is then retired); dropping it early leaves
    /// the rest held.
    pub fn take_held(&mut self, key: &FragKey) -> HeldDrain<'_, T> {
        let dgram = self.find(key).unwrap_or(NIL);
        HeldDrain { tracker: self, dgram }
    }

    /// Pops the first held fragment of entry `i`.
    fn pop_held(&mut self, i: u32) -> Option<T> {
        loop {
            let d = self.dgrams.get_mut(i as usize)?;
            let h = d.held_head;
            let slot = self.held.get_mut(h as usize)?;
            d.held_head = slot.next;
            if d.held_head == NIL {
                d.held_tail = NIL;
            }
            d.held_count = d.held_count.saturating_sub(1);
            let item = slot.item.take();
            slot.next = self.hfree;
            self.hfree = h;
            self.hlen -= 1;
            if item.is_some() {
                return item;
            }
        }
    }

    /// Amortised expiry: visits the next `budget` entries (wrapping), frees
    /// the datagrams dead at `now` and hands each of their held fragments to
    /// `dropped` (the caller frees and counts them). Returns the datagrams
    /// freed.
    pub fn expire(&mut self, now: Nanos, budget: usize, dropped: &mut impl FnMut(T)) -> usize {
        let n = self.dgrams.len();
        let mut freed = 0;
        for _ in 0..budget.min(n) {
            if self.sweep >= n {
                self.sweep = 0;
            }
            let i = self.sweep;
            self.sweep += 1;
            let dead = self.dgrams.get(i).is_some_and(|d| d.used && d.dead(now));
            let Ok(i) = u32::try_from(i) else { continue };
            if dead {
                while let Some(item) = self.pop_held(i) {
                    self.counters.held_expired += 1;
                    dropped(item);
                }
                self.free(i);
                self.counters.expired += 1;
                freed += 1;
            }
        }
        freed
    }

    /// Forgets everything, handing every held fragment to `dropped`
    /// (shutdown, or a worker that must free its mbufs).
    pub fn clear(&mut self, dropped: &mut impl FnMut(T)) {
        for i in 0..self.dgrams.len() {
            let Ok(i) = u32::try_from(i) else { continue };
            if self.dgrams.get(i as usize).is_some_and(|d| d.used) {
                while let Some(item) = self.pop_held(i) {
                    dropped(item);
                }
                self.free(i);
            }
        }
    }
}

/// The fragments held for one datagram, in arrival order
/// ([`FragTracker::take_held`]).
#[derive(Debug)]
pub struct HeldDrain<'a, T> {
    tracker: &'a mut FragTracker<T>,
    dgram: u32,
}

impl<T> Iterator for HeldDrain<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.dgram == NIL {
            return None;
        }
        let item = self.tracker.pop_held(self.dgram);
        if item.is_none() {
            self.tracker.retire_if_complete(self.dgram);
            self.dgram = NIL;
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    const MS: Nanos = 1_000_000;

    fn key(id: u16) -> FragKey {
        FragKey { src: Ipv4Addr::new(203, 0, 113, 5), dst: Ipv4Addr::new(192, 0, 2, 10), proto: 17, id }
    }

    const PORTS: FragPorts = FragPorts { sport: 53, dport: 40000 };

    /// The fragments of a datagram of `n` fragments (1480-byte payloads, the
    /// last one 100 bytes).
    fn frags(n: u16) -> Vec<FragMeta> {
        (0..n)
            .map(|i| FragMeta { offset: i * 1480, len: if i + 1 == n { 100 } else { 1480 }, more: i + 1 < n })
            .collect()
    }

    impl<T> FragTracker<T> {
        fn check(&self) {
            let used = self.dgrams.iter().filter(|d| d.used).count();
            assert_eq!(used, self.dlen);
            let held: usize = self.dgrams.iter().filter(|d| d.used).map(|d| usize::from(d.held_count)).sum();
            assert_eq!(held, self.hlen);
            assert_eq!(self.held.iter().filter(|h| h.item.is_some()).count(), self.hlen);
            assert_eq!(self.index.items().count(), self.dlen);
            for (i, d) in self.dgrams.iter().enumerate().filter(|(_, d)| d.used) {
                assert_eq!(self.find(&d.key), Some(i as u32));
            }
        }
    }

    #[test]
    fn in_order_fragments_share_the_first_ports_and_retire() {
        let mut t: FragTracker<u32> = FragTracker::new(FragConfig::default());
        let f = frags(3);
        t.first_fragment(&key(1), PORTS, f[0], 0).unwrap();
        assert_eq!(t.take_held(&key(1)).count(), 0);
        assert_eq!(t.other_fragment(&key(1), f[1], MS), Some(PORTS));
        assert_eq!(t.datagrams(), 1);
        assert_eq!(t.other_fragment(&key(1), f[2], 2 * MS), Some(PORTS));
        assert_eq!(t.datagrams(), 0, "complete: retired");
        assert_eq!(t.counters().completed, 1);
        // Another datagram (other id) is unknown.
        assert_eq!(t.other_fragment(&key(2), f[1], 3 * MS), None);
        t.check();
    }

    #[test]
    fn out_of_order_fragments_are_held_then_released_in_order() {
        let mut t: FragTracker<&str> = FragTracker::new(FragConfig::default());
        let f = frags(4);
        assert_eq!(t.other_fragment(&key(7), f[3], 0), None);
        t.hold(&key(7), f[3], "last", 0).unwrap();
        assert_eq!(t.other_fragment(&key(7), f[1], MS), None);
        t.hold(&key(7), f[1], "second", MS).unwrap();
        assert_eq!(t.held(), 2);
        t.first_fragment(&key(7), PORTS, f[0], 2 * MS).unwrap();
        let released: Vec<_> = t.take_held(&key(7)).collect();
        assert_eq!(released, vec!["last", "second"]);
        assert_eq!((t.held(), t.datagrams()), (0, 1), "third fragment still to come");
        assert_eq!(t.other_fragment(&key(7), f[2], 3 * MS), Some(PORTS));
        assert_eq!(t.datagrams(), 0);
        t.check();
    }

    #[test]
    fn complete_after_draining_retires() {
        let mut t: FragTracker<u8> = FragTracker::new(FragConfig::default());
        let f = frags(2);
        t.hold(&key(1), f[1], 9, 0).unwrap();
        t.first_fragment(&key(1), PORTS, f[0], 1).unwrap();
        assert_eq!(t.datagrams(), 1, "kept while it holds packets");
        let mut d = t.take_held(&key(1));
        assert_eq!(d.next(), Some(9));
        assert_eq!(d.next(), None);
        assert_eq!(t.datagrams(), 0);
        t.check();
    }

    #[test]
    fn caps_give_packets_back() {
        let cfg = FragConfig { max_datagrams: 2, max_held: 3, max_held_per_datagram: 2, ..FragConfig::default() };
        let mut t: FragTracker<u32> = FragTracker::new(cfg);
        let f = frags(5);
        t.first_fragment(&key(1), PORTS, f[0], 0).unwrap();
        t.hold(&key(2), f[1], 21, 0).unwrap();
        assert_eq!(t.first_fragment(&key(3), PORTS, f[0], 0), Err(FragError::TooManyDatagrams));
        assert_eq!(t.hold(&key(3), f[1], 31, 0), Err(31), "datagram cap");
        t.hold(&key(2), f[2], 22, 0).unwrap();
        assert_eq!(t.hold(&key(2), f[3], 23, 0), Err(23), "per-datagram cap");
        t.hold(&key(1), f[3], 13, 0).unwrap();
        assert_eq!(t.hold(&key(1), f[4], 14, 0), Err(14), "total cap");
        let c = *t.counters();
        assert_eq!((c.refused_full, c.held_refused, c.held), (2, 3, 3));
        // Existing datagrams are untouched.
        assert_eq!(t.other_fragment(&key(1), f[1], 1), Some(PORTS));
        t.check();
    }

    #[test]
    fn expiry_hands_back_held_packets() {
        let mut t: FragTracker<u32> = FragTracker::new(FragConfig::default());
        let f = frags(3);
        t.hold(&key(1), f[1], 11, 0).unwrap();
        t.hold(&key(1), f[2], 12, MS).unwrap();
        t.first_fragment(&key(2), PORTS, f[0], 0).unwrap();
        let mut back = Vec::new();
        assert_eq!(t.expire(2000 * MS - 1, 10, &mut |x| back.push(x)), 0);
        assert_eq!(t.other_fragment(&key(2), f[1], 2000 * MS - 1), Some(PORTS));
        assert_eq!(t.expire(2000 * MS, 10, &mut |x| back.push(x)), 2);
        assert_eq!(back, vec![11, 12]);
        assert_eq!((t.datagrams(), t.held()), (0, 0));
        let c = *t.counters();
        assert_eq!((c.expired, c.held_expired), (2, 2));
        // Too late: unknown now.
        assert_eq!(t.other_fragment(&key(2), f[2], 2001 * MS), None);
        t.check();
    }

    #[test]
    fn dead_entries_are_not_matched_and_holding_into_them_is_refused() {
        let mut t: FragTracker<u32> = FragTracker::new(FragConfig::default());
        let f = frags(3);
        t.first_fragment(&key(1), PORTS, f[0], 0).unwrap();
        assert_eq!(t.other_fragment(&key(1), f[1], 2000 * MS), None);
        assert_eq!(t.datagrams(), 0, "freed on contact");
        t.hold(&key(2), f[1], 1, 0).unwrap();
        assert_eq!(t.hold(&key(2), f[2], 2, 2000 * MS), Err(2));
        // A late first fragment revives it and releases what is held.
        t.first_fragment(&key(2), PORTS, f[0], 2000 * MS).unwrap();
        assert_eq!(t.take_held(&key(2)).collect::<Vec<_>>(), vec![1]);
        assert_eq!(t.other_fragment(&key(2), f[2], 2001 * MS), Some(PORTS));
        t.check();
    }

    #[test]
    fn reused_id_with_other_ports_is_a_new_datagram() {
        let mut t: FragTracker<u32> = FragTracker::new(FragConfig::default());
        let f = frags(3);
        t.first_fragment(&key(1), PORTS, f[0], 0).unwrap();
        let other = FragPorts { sport: 53, dport: 40001 };
        t.first_fragment(&key(1), other, f[0], MS).unwrap();
        assert_eq!(t.other_fragment(&key(1), f[1], 2 * MS), Some(other));
        // A repeated first fragment changes nothing.
        t.first_fragment(&key(1), other, f[0], 3 * MS).unwrap();
        assert_eq!(t.other_fragment(&key(1), f[2], 4 * MS), Some(other));
        assert_eq!(t.datagrams(), 0);
    }

    #[test]
    fn clear_hands_back_everything() {
        let mut t: FragTracker<u32> = FragTracker::new(FragConfig::default());
        let f = frags(3);
        for id in 0..5 {
            t.hold(&key(id), f[1], u32::from(id), 0).unwrap();
        }
        let mut back = Vec::new();
        t.clear(&mut |x| back.push(x));
        back.sort_unstable();
        assert_eq!(back, vec![0, 1, 2, 3, 4]);
        assert_eq!((t.datagrams(), t.held()), (0, 0));
        t.check();
    }

    #[test]
    fn owner_is_the_same_for_every_fragment_and_in_range() {
        for id in 0..1000 {
            let w = key(id).owner(6);
            assert!(w < 6);
            assert_eq!(w, FragKey { ..key(id) }.owner(6));
        }
        assert_eq!(key(1).owner(0), 0);
    }

    proptest! {
        /// With room and time enough, every fragment of interleaved
        /// datagrams, in any order, is NAT'd exactly once with its
        /// datagram's ports, and the tracker retires them all (complete).
        #[test]
        fn any_order_with_room_nats_every_fragment(
            sizes in prop::collection::vec(1u16..10, 1..4),
            shuffle in Just(()).prop_perturb(|_, mut rng| rng.next_u64()),
        ) {
            let mut all: Vec<(u16, u16)> = sizes
                .iter()
                .enumerate()
                .flat_map(|(d, &n)| (0..=n).map(move |f| (d as u16, f)))
                .collect();
            // Fisher-Yates with the generated seed.
            let mut x = shuffle | 1;
            for i in (1..all.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                all.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut t: FragTracker<(u16, u16)> = FragTracker::new(FragConfig::default());
            let mut natted = HashSet::new();
            for (now, &(d, f)) in all.iter().enumerate() {
                let n = sizes[usize::from(d)];
                let meta = FragMeta { offset: f * 8, len: if f == n { 3 } else { 8 }, more: f < n };
                let ports = FragPorts { sport: d, dport: 53 };
                if f == 0 {
                    t.first_fragment(&key(d), ports, meta, now as Nanos).unwrap();
                    prop_assert!(natted.insert((d, f)));
                    for held in t.take_held(&key(d)) {
                        prop_assert_eq!(held.0, d);
                        prop_assert!(natted.insert(held));
                    }
                } else if let Some(p) = t.other_fragment(&key(d), meta, now as Nanos) {
                    prop_assert_eq!(p, ports);
                    prop_assert!(natted.insert((d, f)));
                } else {
                    prop_assert!(t.hold(&key(d), meta, (d, f), now as Nanos).is_ok());
                }
                t.check();
            }
            prop_assert_eq!(natted.len(), all.len());
            prop_assert_eq!((t.datagrams(), t.held()), (0, 0), "complete datagrams not retired");
            prop_assert_eq!(t.counters().completed, sizes.len() as u64);
        }

        /// Fragments of a few datagrams in any order (interleaved, some
        /// first fragments missing), a virtual clock, random expiry: every
        /// fragment is NAT'd with the right ports at most once, every held
        /// packet comes back exactly once (released or handed back), and the
        /// tracker ends empty.
        #[test]
        fn any_order_no_loss_no_duplicate(
            dgrams in prop::collection::vec((1u16..6, any::<bool>()), 1..6),
            order in prop::collection::vec(any::<prop::sample::Index>(), 0..60),
            ticks in prop::collection::vec(0u64..400, 60),
            cap in 1usize..12,
        ) {
            let cfg = FragConfig { max_held: cap, timeout: 1000, max_datagrams: 4, ..FragConfig::default() };
            let mut t: FragTracker<(u16, u16)> = FragTracker::new(cfg);
            // Pending fragments (datagram, fragment index); the first
            // fragment is absent when the bool says so.
            let mut pending: Vec<(u16, u16)> = Vec::new();
            for (d, &(n, skip_first)) in dgrams.iter().enumerate() {
                for f in 0..=n {
                    if !(f == 0 && skip_first) {
                        pending.push((d as u16, f));
                    }
                }
            }
            let ports = |d: u16| FragPorts { sport: 1000 + d, dport: 53 };
            let mut natted: HashSet<(u16, u16)> = HashSet::new();
            let mut held_out: HashSet<(u16, u16)> = HashSet::new();
            let mut now = 0;
            let mut step = 0;
            let next = |len: usize, step: &mut usize| -> usize {
                let i = order.get(*step).map_or(0, |ix| ix.index(len));
                *step += 1;
                i
            };
            while !pending.is_empty() {
                let (d, f) = pending.remove(next(pending.len(), &mut step));
                now += ticks[step % ticks.len()];
                let n = dgrams[usize::from(d)].0;
                let meta = FragMeta { offset: f * 8, len: if f == n { 3 } else { 8 }, more: f < n };
                if f == 0 {
                    if t.first_fragment(&key(d), ports(d), meta, now).is_ok() {
                        prop_assert!(natted.insert((d, 0)));
                        for (hd, hf) in t.take_held(&key(d)) {
                            prop_assert_eq!(hd, d);
                            prop_assert!(held_out.remove(&(hd, hf)));
                            prop_assert!(natted.insert((hd, hf)), "released twice");
                        }
                    }
                } else if let Some(p) = t.other_fragment(&key(d), meta, now) {
                    prop_assert_eq!(p, ports(d));
                    prop_assert!(natted.insert((d, f)));
                } else if t.hold(&key(d), meta, (d, f), now).is_ok() {
                    held_out.insert((d, f));
                }
                prop_assert!(t.held() <= cap);
                prop_assert_eq!(t.held(), held_out.len());
                let mut back = Vec::new();
                t.expire(now, 2, &mut |x| back.push(x));
                for x in back {
                    prop_assert!(held_out.remove(&x), "handed back twice or never held");
                }
                t.check();
            }
            let mut back = Vec::new();
            for _ in 0..8 {
                t.expire(now + 10_000, 4, &mut |x| back.push(x));
            }
            for x in back {
                prop_assert!(held_out.remove(&x));
            }
            prop_assert!(held_out.is_empty(), "held packets lost: {:?}", held_out);
            prop_assert_eq!((t.datagrams(), t.held()), (0, 0));
            // Datagrams whose first fragment came, in time and all held
            // ones were released, were NAT'd whole.
            t.check();
        }
    }
}
