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
//! | [`agent`] | the target agent (`pias-target`): signed joins, refreshes and leaves |
//! | [`keyfile`] | text forms of group owner keys (secret key files, public keys in configs) |
//! | [`auth`] | HMAC over the proxy-group key, replay windows, join and registration signatures, reject counters |
//! | [`groups`] | registered groups and their owner keys |
//! | [`membership`] | every proxy knows every proxy: flooding, heartbeats, failure detection |
//! | [`rendezvous`] | the k RAPs of a group by rendezvous hashing, kept per group; nearest RAP |
//! | [`proximity`] | the cluster RTT matrix and the prober that fills it |
//! | [`jap`] | JAP role: targets (soft state), health probes, reports, invalidations |
//! | [`rap`] | RAP role: JAP tables, the accuracy band, JAP lists, affinity anchors |
//! | [`iap`] | IAP role: what the workers' JAP caches hold, RAP queries |
//! | [`flooded`] | JAP lists of RAP-less groups |
//! | [`proxy`] | one proxy's whole control plane: the composition piasd drives |
//! | [`view`] | what the role machines read of the rest ([`view::View`]) |
//! | [`transmit`] | messages as the role machines address them |
//! | [`sim`] | the deterministic simulator of many proxies |
//! | [`siphash`] | SipHash-2-4, the stable hash behind rendezvous |
//! | [`time`] | the two clocks the driver passes in |
//!
//! Calling convention of every state machine (quinn-proto): feed input with
//! `handle_*(now, …)`, call `handle_timeout(now)` when `poll_timeout()` says,
//! then drain `poll_transmit()` and the other `poll_*()` until they return
//! `None`. [`proxy::ProxyControl`] composes them all behind that interface.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod auth;
pub mod flooded;
pub mod groups;
pub mod iap;
pub mod jap;
pub mod keyfile;
pub mod membership;
pub mod proximity;
pub mod proxy;
pub mod rap;
pub mod rendezvous;
pub mod sim;
pub mod siphash;
pub mod time;
pub mod transmit;
pub mod view;
pub mod wire;

pub use time::{Instant, UnixTime};
