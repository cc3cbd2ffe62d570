//! PIAS packet logic, independent of DPDK: header views and rewrites, the
//! IAP/RAP/JAP stages, the NAT table and the JAP cache. It works on byte
//! buffers, so it is unit-tested, fuzzed and benchmarked without EAL; only
//! `piasd`'s port/runtime layer touches the DPDK bindings.

pub mod iface;
pub mod local;
pub mod neighbour;
pub mod reason;
pub mod types;
pub mod wire;
