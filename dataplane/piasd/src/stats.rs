//! Counters: each worker counts in its own plain memory and now and then
//! copies the totals into its own published block; the control core reads
//! every block, aggregates and exports.
//!
//! No shared atomic is touched per packet: a worker's published block has
//! one writer (that worker) and is updated with relaxed stores of values the
//! worker already holds, which compile to plain moves. Readers may see a
//! block mid-update (one counter newer than another); totals are monotonic
//! per counter, which is all a rate display or Prometheus needs.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crossbeam::utils::CachePadded;
use pias_dataplane::pipeline::PathStats;
use pias_dataplane::reason::{DropCounts, DropReason, DROP_REASONS};

use crate::config::MAX_PORTS;

/// A worker's private counters (plain integers, bumped per packet).
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Packets received per port.
    pub rx: [u64; MAX_PORTS],
    /// Packets sent per port.
    pub tx: [u64; MAX_PORTS],
    /// Bytes received per port.
    pub rx_bytes: [u64; MAX_PORTS],
    /// Bytes sent per port.
    pub tx_bytes: [u64; MAX_PORTS],
    /// Packets handed to the control core (ARP, exception path).
    pub punted: u64,
    /// ICMP echo requests answered by this worker.
    pub echo_replied: u64,
    /// Poll iterations (a liveness signal: it must keep moving).
    pub loops: u64,
    /// Drops by reason.
    pub drops: DropCounts,
    /// Packets received from other workers (their flows are ours).
    pub handoff_in: u64,
    /// Packets handed to their owning worker.
    pub handoff_out: u64,
    /// Events that did not fit in the up queue.
    pub events_lost: u64,
    /// Live NAT flows.
    pub nat_flows: u64,
    /// The PIAS path's counters.
    pub path: PathStats,
}

impl Counters {
    /// Counts a drop.
    #[inline]
    pub fn drop(&mut self, r: DropReason) {
        self.drops.bump(r);
    }
}

/// A worker's published counters: written by that worker only.
#[derive(Debug)]
pub struct WorkerStats {
    inner: CachePadded<Published>,
}

#[derive(Debug)]
struct Published {
    rx: [AtomicU64; MAX_PORTS],
    tx: [AtomicU64; MAX_PORTS],
    rx_bytes: [AtomicU64; MAX_PORTS],
    tx_bytes: [AtomicU64; MAX_PORTS],
    punted: AtomicU64,
    echo_replied: AtomicU64,
    loops: AtomicU64,
    drops: [AtomicU64; DROP_REASONS],
    misc: [AtomicU64; 4],
    path: [AtomicU64; PathStats::COUNT],
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            inner: CachePadded::new(Published {
                rx: Default::default(),
                tx: Default::default(),
                rx_bytes: Default::default(),
                tx_bytes: Default::default(),
                punted: AtomicU64::new(0),
                echo_replied: AtomicU64::new(0),
                loops: AtomicU64::new(0),
                drops: std::array::from_fn(|_| AtomicU64::new(0)),
                misc: Default::default(),
                path: std::array::from_fn(|_| AtomicU64::new(0)),
            }),
        }
    }
}

fn store_all<const N: usize>(dst: &[AtomicU64; N], src: &[u64; N]) {
    for (d, s) in dst.iter().zip(src) {
        d.store(*s, Relaxed);
    }
}

fn load_all<const N: usize>(src: &[AtomicU64; N]) -> [u64; N] {
    std::array::from_fn(|i| src[i].load(Relaxed))
}

impl WorkerStats {
    /// Publishes the worker's totals (called by the owning worker only).
    pub fn publish(&self, c: &Counters) {
        let p = &*self.inner;
        store_all(&p.rx, &c.rx);
        store_all(&p.tx, &c.tx);
        store_all(&p.rx_bytes, &c.rx_bytes);
        store_all(&p.tx_bytes, &c.tx_bytes);
        p.punted.store(c.punted, Relaxed);
        p.echo_replied.store(c.echo_replied, Relaxed);
        p.loops.store(c.loops, Relaxed);
        store_all(&p.drops, &c.drops.0);
        store_all(&p.misc, &[c.handoff_in, c.handoff_out, c.events_lost, c.nat_flows]);
        store_all(&p.path, &c.path.values());
    }

    /// A copy of the last published totals.
    pub fn snapshot(&self) -> Counters {
        let p = &*self.inner;
        Counters {
            rx: load_all(&p.rx),
            tx: load_all(&p.tx),
            rx_bytes: load_all(&p.rx_bytes),
            tx_bytes: load_all(&p.tx_bytes),
            punted: p.punted.load(Relaxed),
            echo_replied: p.echo_replied.load(Relaxed),
            loops: p.loops.load(Relaxed),
            drops: DropCounts(load_all(&p.drops)),
            handoff_in: p.misc[0].load(Relaxed),
            handoff_out: p.misc[1].load(Relaxed),
            events_lost: p.misc[2].load(Relaxed),
            nat_flows: p.misc[3].load(Relaxed),
            path: PathStats::from_values(load_all(&p.path)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_then_snapshot_round_trips() {
        let s = WorkerStats::default();
        let mut c = Counters::default();
        c.rx[1] = 7;
        c.tx_bytes[0] = 99;
        c.punted = 3;
        c.drop(DropReason::Ipv4BadChecksum);
        c.drop(DropReason::Ipv4BadChecksum);
        s.publish(&c);
        let got = s.snapshot();
        assert_eq!(got.rx[1], 7);
        assert_eq!(got.tx_bytes[0], 99);
        assert_eq!(got.punted, 3);
        assert_eq!(got.drops.get(DropReason::Ipv4BadChecksum), 2);
        assert_eq!(got.drops.total(), 2);
    }
}
