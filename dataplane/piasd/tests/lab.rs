//! Namespace lab tests: real clients (ping, arping, a TCP client) against
//! piasd on an af_packet port. They need root and network namespaces; where
//! those are missing the test says it was skipped, unless PIAS_REQUIRE_LAB=1
//! (set by bench/run-tests.sh, so CI never passes by skipping); see labkit.

mod labkit;

fn run_lab(script: &str, prefix: &str, env: &[(&str, &str)]) {
    labkit::run_lab(script, prefix, env, &[]);
}

/// ping/arping of the unicast and anycast addresses, TCP through the
/// exception tap, SIGTERM with exit 0 and a full mempool.
#[test]
fn foundation_lab() {
    run_lab("foundation.sh", "pias-t1", &[]);
}

/// The same with two workers: one af_packet queue pair each, flows spread
/// by the kernel's hash; every worker must answer some of 16 clients.
#[test]
fn foundation_lab_two_workers() {
    run_lab("foundation.sh", "pias-t2", &[("WORKERS", "2")]);
}

/// The PIAS path end to end: a real TCP client fetches from a real HTTP
/// server through three piasd proxies (IAP → RAP → JAP, then IAP → JAP
/// with the cache pinned); every daemon exits 0 with a full mempool.
#[test]
fn pias_path_lab() {
    run_lab("pias-path.sh", "pias-t3", &[]);
}

/// The same with two workers per proxy: tunnel packets land on whichever
/// queue the kernel's hash of the outer header picks, so the JAP hands
/// flows it does not own to the worker that does, and every fetch is still
/// answered.
#[test]
fn pias_path_lab_two_workers() {
    run_lab("pias-path.sh", "pias-t4", &[("WORKERS", "2")]);
}

/// The control plane end to end: two piasd proxies form a proxy group over
/// the wire, a target joins with pias-target through the anycast address,
/// a client reaches it through A (IAP) and B (JAP), forged messages are
/// rejected, and the agent's leave invalidates A's cache.
#[test]
fn pias_control_lab() {
    run_lab("pias-control.sh", "pias-t5", &[]);
}

/// PIAS failures with the control plane on: connection affinity when the
/// client's route moves mid-connection, a graceful target leave under a
/// loop of connections (none fails), and a JAP proxy killed (failover
/// within 1 s of the overlay noticing).
#[test]
fn pias_failover_lab() {
    run_lab("pias-failover.sh", "pias-t6", &[]);
}

/// piasd inside a QEMU guest on a virtio-net NIC bound to DPDK (the path a
/// VM's NIC takes). Opt-in with PIAS_QEMU=1: it builds a Debian guest image
/// with debootstrap on its first run and boots it under software emulation.
#[test]
fn qemu_virtio_lab() {
    if std::env::var("PIAS_QEMU").as_deref() != Ok("1") {
        eprintln!("SKIPPED lab test qemu-virtio.sh: opt-in, set PIAS_QEMU=1");
        return;
    }
    run_lab("qemu-virtio.sh", "pias-t7", &[]);
}
