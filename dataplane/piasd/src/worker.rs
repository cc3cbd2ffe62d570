//! The worker: one poll-mode lcore that owns RX and TX queue `i` of every
//! port and runs `rx_burst → classify → act → tx_burst` with no locks, no
//! allocation and no syscalls (DESIGN.md §2).
//!
//! What a worker may touch: its own queues, its own bursts and counters,
//! the immutable [`LocalAddrs`], its current neighbour snapshot (replaced
//! only from its down queue), and the lock-free rings/queues to the control
//! core. Everything it allocates at start it frees when it returns.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
use pias_dataplane::iface::{Down, Up};
use pias_dataplane::local::{self, LocalAddrs, Verdict};
use pias_dataplane::neighbour::Neighbours;
use pias_dataplane::reason::DropReason;
use pias_dpdk::{Burst32, Ring, RxQueue, TxQueue};

use crate::stats::{Counters, WorkerStats};

/// Iterations between publications of the counters.
const PUBLISH_EVERY: u64 = 1024;

/// One port as a worker sees it: its own queue pair.
pub struct WorkerPort {
    /// RX queue `i` of the port.
    pub rx: RxQueue,
    /// TX queue `i` of the port.
    pub tx: TxQueue,
}

/// Everything a worker owns; moved onto its lcore at launch.
pub struct Worker {
    /// Worker index (= queue index).
    pub index: usize,
    /// Queue pairs, indexed like the config's ports.
    pub ports: Vec<WorkerPort>,
    /// Our addresses.
    pub local: Arc<LocalAddrs>,
    /// Packets for the control core (single producer: this worker).
    pub punt: Ring,
    /// Frames the control core asks this worker to send, one ring per port
    /// (ARP, the kernel's exception-path output, control datagrams). Only
    /// worker 0 has them; the control core owns no TX queue, so a port needs
    /// exactly one queue pair per worker.
    pub xmit: Vec<Ring>,
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
}

impl Worker {
    /// The poll loop. Returns 0 when stopped.
    pub fn run(mut self) -> i32 {
        let mut c = Counters::default();
        let mut neigh: Arc<Neighbours> = Arc::new(Neighbours::default());
        let mut rx = Burst32::new();
        let mut tx = Burst32::new();
        let mut punt = Burst32::new();
        log::info!("worker {} polling {} port(s)", self.index, self.ports.len());

        let idle = std::time::Duration::from_micros(u64::from(self.idle_sleep_us));
        while !self.stop.load(Relaxed) {
            self.apply_down(&mut neigh);
            let mut got = 0;
            for (pi, port) in self.ports.iter_mut().enumerate() {
                if let Some(x) = self.xmit.get(pi) {
                    got += x.dequeue_burst(&mut tx);
                }
                let n = port.rx.burst(&mut rx);
                got += n;
                c.rx[pi] += n as u64;
                for mut m in rx.drain() {
                    c.rx_bytes[pi] += m.len() as u64;
                    if !m.is_contiguous() {
                        c.drop(DropReason::MultiSegment);
                        continue;
                    }
                    match local::process(m.data_mut(), pi, &self.local) {
                        Verdict::Reply => {
                            c.echo_replied += 1;
                            if let Err(m) = tx.push(m) {
                                drop(m);
                                c.drop(DropReason::TxFull);
                            }
                        }
                        Verdict::Punt(_) => {
                            if let Err(m) = punt.push(m) {
                                drop(m);
                                c.drop(DropReason::PuntRingFull);
                            }
                        }
                        Verdict::Drop(r) => c.drop(r),
                    }
                }
                if !tx.is_empty() {
                    let bytes: u64 = tx.iter().map(|m| m.len() as u64).sum();
                    let sent = port.tx.burst(&mut tx);
                    let unsent: u64 = tx.iter().map(|m| m.len() as u64).sum();
                    c.tx[pi] += sent as u64;
                    c.tx_bytes[pi] += bytes - unsent;
                    for _ in 0..tx.len() {
                        c.drop(DropReason::TxFull);
                    }
                    tx.clear();
                }
                if !punt.is_empty() {
                    c.punted += self.punt.enqueue_burst(&mut punt) as u64;
                    for _ in 0..punt.len() {
                        c.drop(DropReason::PuntRingFull);
                    }
                    punt.clear();
                }
            }
            c.loops += 1;
            if c.loops % PUBLISH_EVERY == 0 {
                self.stats.publish(&c);
            }
            if got == 0 && !idle.is_zero() {
                // Shared cores only (labs, CI, VMs): yield after an empty
                // poll. Dedicated cores run with idle_sleep_us = 0.
                std::thread::sleep(idle);
            }
        }
        self.stats.publish(&c);
        log::info!("worker {} stopped after {} iterations", self.index, c.loops);
        0
    }

    /// Applies every pending table change (top of each iteration).
    #[inline]
    fn apply_down(&mut self, neigh: &mut Arc<Neighbours>) {
        while let Some(d) = self.down.pop() {
            match d {
                Down::Neighbours(n) => {
                    let old = std::mem::replace(neigh, n);
                    // Hand the old snapshot back so the control core frees
                    // it. If the queue is full it is freed here: rare, and
                    // still correct.
                    let _ = self.up.push(Up::Retired(Down::Neighbours(old)));
                }
            }
        }
    }
}
