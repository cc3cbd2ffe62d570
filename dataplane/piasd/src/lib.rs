//! piasd: the PIAS proxy daemon's runtime. DPDK ports, one control core and
//! N poll-mode workers, the rings between them, the kernel exception path,
//! counters and the operator socket. The per-packet logic lives in
//! `pias-dataplane` (no DPDK); this crate drives it on real queues.

pub mod config;
pub mod control;
pub mod ctl;
pub mod exception;
pub mod metrics;
pub mod plane;
pub mod runtime;
pub mod stats;
pub mod worker;
