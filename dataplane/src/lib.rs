//! PIAS packet logic, independent of DPDK: header views and rewrites, the
//! IAP/RAP/JAP stages, the NAT table and the JAP cache. It works on byte
//! buffers, so it is unit-tested, fuzzed and benchmarked without EAL; only
//! `piasd`'s port/runtime layer touches the DPDK bindings.

pub mod flow;
pub mod forward;
pub mod frag;
mod huge_pages;
pub mod iface;
pub mod jap_cache;
pub mod local;
pub mod nat;
pub mod neighbour;
pub mod packet;
pub mod pipeline;
pub mod reason;
pub mod select;
pub mod tables;
pub mod types;
pub mod wire;
