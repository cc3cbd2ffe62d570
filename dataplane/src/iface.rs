//! The worker ↔ control-core interface, defined once (DESIGN.md §5).
//!
//! Each worker has two typed lock-free queues with the control core (plus,
//! in piasd, one ring of punted packets, because packets are DPDK mbufs and
//! this crate knows nothing of DPDK):
//!
//! - **down** ([`Down`], control → worker): table changes. The worker
//!   applies them at the top of each poll iteration, so its own state stays
//!   single-writer and the fast path never takes a lock.
//! - **up** ([`Up`], worker → control): events the control plane must act
//!   on, and superseded snapshots handed back so that freeing them happens
//!   on the control core, never on a worker's fast path.
//!
//! The PIAS stages (IAP misses, RAP choices, JAP invalidations, passive
//! health observations) add their variants here as they land; a variant is
//! added in one place and both sides match on it.

use std::sync::Arc;

use crate::neighbour::Neighbours;

/// A table change for one worker.
#[derive(Debug)]
pub enum Down {
    /// A new neighbour snapshot replaces the worker's current one.
    Neighbours(Arc<Neighbours>),
}

/// An event from one worker.
#[derive(Debug)]
pub enum Up {
    /// A snapshot the worker no longer uses; dropped on the control core.
    Retired(Down),
}

/// Why a packet was punted to the control core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Punt {
    /// ARP for one of our addresses, or a reply: the control core keeps the
    /// neighbour table and answers.
    Arp,
    /// Traffic for the proxy host itself (routing daemons, SSH, …): the
    /// control core writes it to the port's kernel tap.
    Exception,
}

/// Capacity of each worker's down and up queue. Table changes are rare and
/// a worker drains its queue every iteration, so a full queue means a stuck
/// worker; the sender keeps the change and retries.
pub const QUEUE_DEPTH: usize = 256;
