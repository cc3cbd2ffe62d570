//! The PIAS control plane, sans-IO (DESIGN.md §2; issue 5).
//!
//! Pure state machines that take `(message | timer tick, now)` and return
//! messages to send and state changes; no sockets, threads, clocks or OS
//! randomness inside. The same code runs in `piasd`'s control core, in unit
//! tests and in the simulator. No DPDK.
//!
//! | module | holds |
//! |---|---|
//! | [`wire`] | the control protocol on the wire (spec: `control/PROTOCOL.md`) |
//! | [`auth`] | HMAC over the proxy-group key, replay windows, join and registration signatures, reject counters |
//! | [`groups`] | registered groups and their owner keys |
//! | [`membership`] | every proxy knows every proxy: flooding, heartbeats, failure detection |
//! | [`rendezvous`] | the k RAPs of a group by rendezvous hashing; nearest RAP |
//! | [`proximity`] | the cluster RTT matrix |
//! | [`siphash`] | SipHash-2-4, the stable hash behind rendezvous |
//! | [`time`] | the two clocks the driver passes in |
//!
//! Calling convention of every state machine (quinn-proto): feed input with
//! `handle(now, …)`, call `handle_timeout(now)` when `poll_timeout()` says,
//! then drain `poll_transmit()` and `poll_event()` until they return `None`.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod groups;
pub mod membership;
pub mod proximity;
pub mod rendezvous;
pub mod siphash;
pub mod time;
pub mod wire;

pub use time::{Instant, UnixTime};
