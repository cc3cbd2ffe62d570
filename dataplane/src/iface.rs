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

use core::net::Ipv4Addr;
use std::sync::Arc;

use crate::jap_cache::CachedJaps;
use crate::neighbour::{Nanos, Neighbours};
use crate::tables::Tables;
use crate::types::{GroupAddr, ProxyId, TargetAddr};

/// A table change for one worker.
///
/// Snapshots (`Neighbours`, `Tables`) replace the worker's current one,
/// which goes back up as [`Up::Retired`]. The cache messages edit the
/// worker's own [`crate::jap_cache::JapCache`]; the control core sends each
/// of them to every worker (each has its own cache). None of them allocates
/// on the worker.
#[derive(Debug)]
pub enum Down {
    /// A new neighbour snapshot replaces the worker's current one.
    Neighbours(Arc<Neighbours>),
    /// A new forwarding-table snapshot (proxies, RTT matrix, groups with
    /// their RAPs, JAP views and local targets) replaces the worker's
    /// current one, between bursts. Built and validated by the control
    /// core with [`Tables::build`] from a [`crate::tables::StaticState`].
    Tables(Arc<Tables>),
    /// A RAP's JAP list for `group` (seed §3.2): cache it, best first, for
    /// `ttl` ([`crate::jap_cache::JapCache::fill_list`]). An empty list
    /// removes the entry.
    CacheFill {
        /// The group.
        group: GroupAddr,
        /// JAPs in failover order.
        japs: CachedJaps,
        /// Lifetime of the entry.
        ttl: Nanos,
    },
    /// `jap` no longer serves `group` (its targets left): drop it from the
    /// cached list, failing over to the next
    /// ([`crate::jap_cache::JapCache::invalidate`]).
    CacheInvalidate {
        /// The group.
        group: GroupAddr,
        /// The JAP that sent the invalidation.
        jap: ProxyId,
    },
    /// The proxy overlay declared this proxy down: remove it from every
    /// cached list ([`crate::jap_cache::JapCache::proxy_down`]). The next
    /// `Tables` snapshot marks it down too; this message makes the cache
    /// fail over without waiting for it.
    ProxyDown(ProxyId),
}

/// An event from one worker.
///
/// The stage events are raised from the packet path, so they are small and
/// `Copy`-sized; the stages rate-limit them per key
/// ([`crate::jap_cache::Debounce`]) so that a burst of packets for one
/// group raises one event.
#[derive(Debug)]
pub enum Up {
    /// A snapshot the worker no longer uses; dropped on the control core.
    Retired(Down),
    /// IAP: no cached JAP for `group`; the packet went to the group's
    /// nearest RAP (`rap`), or was dropped when the group had no live RAP
    /// (`None`). The RAP answers with a JAP list on its own; the control
    /// core uses this to query a RAP explicitly when no list arrives.
    IapMiss {
        /// The group.
        group: GroupAddr,
        /// The RAP the packet was tunnelled to.
        rap: Option<ProxyId>,
    },
    /// RAP: chose `jap` for a packet of `group` from the IAP at `iap` (the
    /// outer source): send that IAP the group's JAP list, `jap` first
    /// ([`crate::select::jap_list_for_iap`] then
    /// [`CachedJaps::promote`]).
    RapChose {
        /// The group.
        group: GroupAddr,
        /// The JAP the packet was forwarded to.
        jap: ProxyId,
        /// The IAP's unicast address.
        iap: Ipv4Addr,
    },
    /// JAP: a packet of `group` arrived from the IAP at `iap` but this
    /// proxy has no live target for it (the packet went back to a RAP):
    /// send that IAP an invalidation (seed §3.2).
    JapNoTarget {
        /// The group.
        group: GroupAddr,
        /// The IAP's unicast address.
        iap: Ipv4Addr,
    },
    /// JAP, passive health (seed §3.2, §3.6.1): forward packets of `group`
    /// went to `target` and no reply came back in time; the control core
    /// probes it.
    TargetSilent {
        /// The group.
        group: GroupAddr,
        /// The silent target.
        target: TargetAddr,
    },
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
    /// A PIAS control datagram (UDP to the control port on a proxy
    /// address): the control core hands it to the control plane.
    Control,
}

/// Capacity of each worker's down and up queue. Table changes are rare and
/// a worker drains its queue every iteration, so a full queue means a stuck
/// worker; the sender keeps the change and retries.
pub const QUEUE_DEPTH: usize = 256;
