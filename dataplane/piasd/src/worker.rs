//! The worker: one poll-mode lcore that owns RX and TX queue `i` of every
//! port and runs `rx_burst → classify → PIAS stage → tx_burst` with no
//! locks, no allocation and no syscalls (DESIGN.md §2).
//!
//! What a worker may touch: its own queues, bursts, counters and
//! [`Path`] (NAT table, JAP cache, table snapshots — replaced only from its
//! down queue), and the lock-free rings to the control core and to the other
//! workers. A packet that belongs to another worker (its flow's NAT state
//! lives there) is handed over unmodified on the per-pair SPSC ring and
//! processed there from scratch.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
use pias_dataplane::iface::{Down, Up};
use pias_dataplane::neighbour::Nanos;
use pias_dataplane::packet::PacketBuf;
use pias_dataplane::pipeline::{Action, Path};
use pias_dataplane::reason::DropReason;
use pias_dpdk::{Burst32, Mbuf, Ring, RxQueue, TxQueue};

use crate::config::MAX_PORTS;
use crate::stats::{Counters, WorkerStats};

/// Iterations between publications of the counters.
const PUBLISH_EVERY: u64 = 1024;
/// NAT entries examined for expiry per iteration (amortised, bounded).
const EXPIRE_BUDGET: usize = 64;

/// One port as a worker sees it: its own queue pair.
pub struct WorkerPort {
    /// RX queue `i` of the port.
    pub rx: RxQueue,
    /// TX queue `i` of the port.
    pub tx: TxQueue,
}

/// `PacketBuf` for a wrapper whose field `0` is an mbuf or a reference to
/// one (the same calls work on both).
macro_rules! mbuf_packet_buf {
    ($t:ty) => {
        impl PacketBuf for $t {
            #[inline]
            fn data(&self) -> &[u8] {
                self.0.data()
            }
            #[inline]
            fn data_mut(&mut self) -> &mut [u8] {
                self.0.data_mut()
            }
            #[inline]
            fn prepend(&mut self, n: usize) -> bool {
                self.0.prepend(n).is_ok()
            }
            #[inline]
            fn adj(&mut self, n: usize) -> bool {
                self.0.adj(n).is_ok()
            }
            #[inline]
            fn trim(&mut self, n: usize) -> bool {
                self.0.trim(n).is_ok()
            }
            #[inline]
            fn append(&mut self, n: usize) -> bool {
                self.0.append(n).is_ok()
            }
        }
    };
}

/// An mbuf seen through the packet logic's buffer trait (also used by the
/// benchmarks, so they measure exactly what the worker runs).
pub struct Pkt<'a>(pub &'a mut Mbuf);

mbuf_packet_buf!(Pkt<'_>);

/// An mbuf, by value, seen through the packet logic's buffer trait: the
/// element type of the slices [`Path::process_burst`] takes (a burst's
/// mbufs viewed in place with [`MbufPkt::slice`]).
#[repr(transparent)]
pub struct MbufPkt(pub Mbuf);

impl MbufPkt {
    /// The mbufs of a burst as packet buffers, in place.
    #[inline]
    pub fn slice(ms: &mut [Mbuf]) -> &mut [MbufPkt] {
        // SAFETY: `MbufPkt` is `repr(transparent)` over `Mbuf`, so the two
        // slice types have the same layout, length and alignment; the
        // returned slice borrows `ms` exclusively for its lifetime and no
        // mbuf is moved, copied or dropped through it.
        unsafe { &mut *(ms as *mut [Mbuf] as *mut [MbufPkt]) }
    }
}

mbuf_packet_buf!(MbufPkt);

/// Nanoseconds from the TSC, without a syscall.
#[derive(Clone, Copy)]
pub struct Clock {
    hz: u64,
    t0: u64,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        Clock { hz: pias_dpdk::tsc_hz().max(1), t0: pias_dpdk::tsc() }
    }

    /// Nanoseconds since the clock was made.
    #[inline]
    pub fn now(&self) -> Nanos {
        let d = pias_dpdk::tsc().wrapping_sub(self.t0) as u128;
        (d * 1_000_000_000 / self.hz as u128) as Nanos
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Everything a worker owns; moved onto its lcore at launch.
pub struct Worker {
    /// Worker index (= queue index).
    pub index: usize,
    /// Queue pairs, indexed like the config's ports.
    pub ports: Vec<WorkerPort>,
    /// DPDK port id → config index (for handed-over packets).
    pub port_ids: Vec<u16>,
    /// The packet path: tables, NAT, cache, fragment trackers (holding
    /// mbufs of out-of-order fragments), counters.
    pub path: Path<Mbuf>,
    /// Packets for the control core (single producer: this worker).
    pub punt: Ring,
    /// Frames the control core asks this worker to send, one ring per port
    /// (ARP, the kernel's exception-path output, control datagrams). Only
    /// worker 0 has them; the control core owns no TX queue, so a port needs
    /// exactly one queue pair per worker.
    pub xmit: Vec<Ring>,
    /// Handoff rings to each worker (`None` for itself); SPSC per pair.
    pub handoff_out: Vec<Option<Ring>>,
    /// Handoff rings from each other worker.
    pub handoff_in: Vec<Ring>,
    /// Table changes from the control core.
    pub down: Arc<ArrayQueue<Down>>,
    /// Events to the control core.
    pub up: Arc<ArrayQueue<Up>>,
    /// Published counters.
    pub stats: Arc<WorkerStats>,
    /// Set by the control core to stop after the current iteration.
    pub stop: Arc<AtomicBool>,
    /// Sleep after an iteration that received nothing (0: pure polling).
    pub idle_sleep_us: u32,
    /// The clock.
    pub clock: Clock,
}

/// The bursts a worker fills while processing one batch.
struct Out {
    tx: Vec<Burst32>,
    punt: Burst32,
    handoff: Vec<Burst32>,
}

impl Worker {
    /// The poll loop. Returns 0 when stopped.
    pub fn run(mut self) -> i32 {
        let mut c = Counters::default();
        let np = self.ports.len().min(MAX_PORTS);
        let nw = self.handoff_out.len();
        let mut rx = Burst32::new();
        let mut out = Out {
            tx: (0..np).map(|_| Burst32::new()).collect(),
            punt: Burst32::new(),
            handoff: (0..nw).map(|_| Burst32::new()).collect(),
        };
        log::info!("worker {} polling {} port(s)", self.index, np);
        let idle = std::time::Duration::from_micros(u64::from(self.idle_sleep_us));

        while !self.stop.load(Relaxed) {
            let now = self.clock.now();
            self.apply_down(now);
            let mut got = 0;

            // Packets other workers found to be ours.
            for r in 0..self.handoff_in.len() {
                let n = self.handoff_in[r].dequeue_burst(&mut rx);
                got += n;
                for mut m in rx.drain() {
                    c.handoff_in += 1;
                    let port = self.port_ids.iter().position(|&id| id == m.port()).unwrap_or(0);
                    // Handed-over packets are never handed on again (a
                    // fragment takes at most two hops between workers).
                    let a = self.path.process_handed_over(&mut Pkt(&mut m), port, now);
                    self.place(m, a, now, &mut c, &mut out);
                    self.release(now, &mut c, &mut out);
                }
            }
            for pi in 0..np {
                if let Some(x) = self.xmit.get(pi) {
                    got += x.dequeue_burst(&mut out.tx[pi]);
                }
                let n = self.ports[pi].rx.burst(&mut rx);
                got += n;
                c.rx[pi] += n as u64;
                rx.retain_mut(|m| {
                    c.rx_bytes[pi] += m.len() as u64;
                    if !m.is_contiguous() {
                        c.drop(DropReason::MultiSegment);
                        return false;
                    }
                    true
                });
                self.process_rx(&mut rx, pi, now, &mut c, &mut out);
            }
            self.flush(&mut c, &mut out);
            for e in self.path.events.drain() {
                if self.up.push(e).is_err() {
                    c.events_lost += 1;
                }
            }
            self.path.nat.expire(now, EXPIRE_BUDGET);
            self.path.expire_fragments(now, EXPIRE_BUDGET, &mut |m| {
                drop(m);
                c.drop(DropReason::FragmentExpired);
            });
            c.loops += 1;
            if c.loops % PUBLISH_EVERY == 0 {
                c.path = self.path.stats.clone();
                c.echo_replied = c.path.echo_replied;
                c.nat_flows = self.path.nat.len() as u64;
                self.stats.publish(&c);
            }
            if got == 0 && !idle.is_zero() {
                // Shared cores only (labs, CI, VMs): yield after an empty
                // poll. Dedicated cores run with idle_sleep_us = 0.
                std::thread::sleep(idle);
            }
        }
        // Held fragments are freed before the worker returns.
        self.path.clear_fragments(&mut |m| {
            drop(m);
            c.drop(DropReason::FragmentExpired);
        });
        c.path = self.path.stats.clone();
        c.echo_replied = c.path.echo_replied;
        c.nat_flows = self.path.nat.len() as u64;
        self.stats.publish(&c);
        log::info!("worker {} stopped after {} iterations", self.index, c.loops);
        0
    }

    /// Puts a processed packet where its action sends it; a full burst is
    /// flushed first, so nothing is dropped for lack of burst room.
    #[inline]
    fn place(&mut self, m: Mbuf, a: Action, now: Nanos, c: &mut Counters, out: &mut Out) {
        match a {
            Action::Hold => {
                if let Err(m) = self.path.hold(m, now) {
                    drop(m);
                    c.drop(DropReason::FragmentHoldRefused);
                }
            }
            Action::Tx(p) if p < out.tx.len() => {
                if out.tx[p].is_full() {
                    self.flush_tx(p, c, out);
                }
                if let Err(m) = out.tx[p].push(m) {
                    drop(m);
                    c.drop(DropReason::TxFull);
                }
            }
            Action::Tx(_) => c.drop(DropReason::ControlRejected),
            Action::Punt(_) => {
                if out.punt.is_full() {
                    self.flush_punt(c, out);
                }
                if let Err(m) = out.punt.push(m) {
                    drop(m);
                    c.drop(DropReason::PuntRingFull);
                }
            }
            Action::Drop(r) => c.drop(r),
            Action::Handoff(w) => {
                let w = usize::from(w);
                if w >= out.handoff.len() || self.handoff_out[w].is_none() {
                    c.drop(DropReason::HandoffRingFull);
                    return;
                }
                if out.handoff[w].is_full() {
                    self.flush_handoff(w, c, out);
                }
                if let Err(m) = out.handoff[w].push(m) {
                    drop(m);
                    c.drop(DropReason::HandoffRingFull);
                }
            }
        }
    }

    /// Runs a received burst through [`Path::process_burst`] (the NAT
    /// lookups of the whole burst prefetched, the table snapshot
    /// referenced once) and places each packet in order. The path stops a
    /// burst right after a packet it holds or that releases held
    /// fragments; that packet is held or followed by its fragments here,
    /// and the rest of the burst goes through [`Path::process`] one by one,
    /// exactly as before bursts (such packets are rare: fragments out of
    /// order).
    #[inline]
    fn process_rx(&mut self, rx: &mut Burst32, pi: usize, now: Nanos, c: &mut Counters, out: &mut Out) {
        let mut actions = [Action::Drop(DropReason::ControlRejected); 32];
        let k = self.path.process_burst(MbufPkt::slice(rx.as_mut_slice()), pi, now, &mut actions);
        for (i, mut m) in rx.drain().enumerate() {
            let a = match actions.get(i) {
                Some(&a) if i < k => a,
                _ => self.path.process(&mut Pkt(&mut m), pi, now),
            };
            self.place(m, a, now, c, out);
            self.release(now, c, out);
        }
    }

    /// Processes the fragments that waited for their first fragment, right
    /// after the packet that released them (so they leave in that order).
    #[inline]
    fn release(&mut self, now: Nanos, c: &mut Counters, out: &mut Out) {
        while let Some((mut m, port)) = self.path.next_released() {
            let a = self.path.process(&mut Pkt(&mut m), port, now);
            self.place(m, a, now, c, out);
        }
    }

    fn flush_tx(&mut self, p: usize, c: &mut Counters, out: &mut Out) {
        let b = &mut out.tx[p];
        if b.is_empty() {
            return;
        }
        let bytes: u64 = b.iter().map(|m| m.len() as u64).sum();
        let sent = self.ports[p].tx.burst(b);
        let unsent: u64 = b.iter().map(|m| m.len() as u64).sum();
        c.tx[p] += sent as u64;
        c.tx_bytes[p] += bytes - unsent;
        for _ in 0..b.len() {
            c.drop(DropReason::TxFull);
        }
        b.clear();
    }

    fn flush_punt(&mut self, c: &mut Counters, out: &mut Out) {
        if out.punt.is_empty() {
            return;
        }
        c.punted += self.punt.enqueue_burst(&mut out.punt) as u64;
        for _ in 0..out.punt.len() {
            c.drop(DropReason::PuntRingFull);
        }
        out.punt.clear();
    }

    fn flush_handoff(&mut self, w: usize, c: &mut Counters, out: &mut Out) {
        let b = &mut out.handoff[w];
        if b.is_empty() {
            return;
        }
        if let Some(r) = &self.handoff_out[w] {
            c.handoff_out += r.enqueue_burst(b) as u64;
        }
        for _ in 0..b.len() {
            c.drop(DropReason::HandoffRingFull);
        }
        b.clear();
    }

    fn flush(&mut self, c: &mut Counters, out: &mut Out) {
        for p in 0..out.tx.len() {
            self.flush_tx(p, c, out);
        }
        self.flush_punt(c, out);
        for w in 0..out.handoff.len() {
            self.flush_handoff(w, c, out);
        }
    }

    /// Applies every pending table change (top of each iteration). A
    /// replaced snapshot goes back up so the control core frees it.
    #[inline]
    fn apply_down(&mut self, now: Nanos) {
        while let Some(d) = self.down.pop() {
            let retired = match d {
                Down::Neighbours(n) => Down::Neighbours(self.path.set_neighbours(n)),
                Down::Tables(t) => Down::Tables(std::mem::replace(&mut self.path.tables, t)),
                Down::CacheFill { group, japs, ttl } => {
                    self.path.cache.fill_list(group, japs, ttl, now);
                    continue;
                }
                Down::CacheInvalidate { group, jap } => {
                    self.path.cache.invalidate(&group, jap);
                    continue;
                }
                Down::ProxyDown(p) => {
                    self.path.cache.proxy_down(p);
                    continue;
                }
            };
            // If the queue is full the old snapshot is freed here: rare,
            // and still correct.
            let _ = self.up.push(Up::Retired(retired));
        }
    }
}
