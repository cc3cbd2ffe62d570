//! The anycast lab (issue 6, configs/lab.yaml): BIRD 2 routers with OSPF
//! (ECMP) and BFD, two clusters of two piasd proxies announcing the anycast
//! prefix over their exception taps, nginx, unbound and iperf3 targets,
//! curl/dig/iperf3 clients. Each scenario set builds the whole lab, so the
//! sets run one at a time (labkit's lock), in their own test binary (after the
//! smaller labs of lab.rs): two labs at once on a two-core machine would
//! starve the 100 ms BFD timers the failover scenario measures.

mod labkit;

const TOOLS: &[&str] = &["bird", "birdc", "nginx", "unbound", "iperf3", "dig", "curl", "ethtool", "/usr/bin/python3"];

fn run(script: &str, prefix: &str, env: &[(&str, &str)], extra: &[&str]) {
    let tools: Vec<&str> = TOOLS.iter().chain(extra).copied().collect();
    labkit::run_lab(script, prefix, env, &tools);
}

/// curl, dig, a 4 MB download and iperf3 through the anycast address from
/// both regions; a 60 s mixed load (the issue's) loses nothing and flaps no
/// BFD session; every piasd exits 0 with a full mempool.
#[test]
fn anycast_lab_traffic() {
    run("anycast-traffic.sh", "pias-at", &[("LOAD_SECONDS", "60")], &[]);
}

/// The control plane's failures in the anycast lab: a target dies (new
/// connections reach the other target within 3 s), a target leaves under a
/// loop of connections (none fails), a wrong-key join and a forged proxy
/// message are refused and counted.
#[test]
fn anycast_lab_control() {
    run("anycast-control.sh", "pias-ac", &[], &[]);
}

/// An IAP proxy dies: BFD moves the client to the other proxy of its
/// cluster. The lab's default routing (configs/lab.yaml `fast_reroute`):
/// the cluster's router holds BFD-tracked static routes to its proxies, so
/// the dead IAP is dropped on BFD's verdict and the 1 s goal is
/// the hard limit.
#[test]
fn anycast_lab_failover() {
    run("anycast-failover.sh", "pias-af", &[("FAILOVER_RUNS", "2"), ("FAILOVER_LIMIT_MS", "1000")], &[]);
}

/// The same with OSPF + BFD alone (LAB_FAST_REROUTE=0), kept so both stay
/// measured. BIRD 2's OSPF recomputes routes only on its `tick` timer,
/// whole seconds, at least 1 s, so failover takes BFD's ~300 ms detection
/// plus up to 1 s: the limit is 1.6 s (1 s goal reported per run, often
/// missed: bench/RESULTS.md).
#[test]
fn anycast_lab_failover_ospf() {
    run(
        "anycast-failover.sh",
        "pias-ao",
        &[("FAILOVER_RUNS", "2"), ("LAB_FAST_REROUTE", "0"), ("FAILOVER_LIMIT_MS", "1600")],
        &[],
    );
}

/// The overlay's failures with real routing: a client's route moves to the
/// other cluster and back mid-connection (HTTP/1.1 keep-alive to the
/// affinity group: one connection, one target throughout); then the JAP
/// serving the client dies: its router routes around it, the IAPs declare
/// it down and connections are answered via the other JAP within 1 s of
/// that (none fails later).
#[test]
fn anycast_lab_move_jap() {
    run("anycast-move-jap.sh", "pias-am", &[], &[]);
}

/// The traffic set with one proxy's port on net_virtio_user, served by a
/// vhost-user backend (dpdk-testpmd), all without hugepages.
#[test]
fn anycast_lab_virtio() {
    run("anycast-virtio.sh", "pias-av", &[("LOAD_SECONDS", "10")], &["dpdk-testpmd"]);
}
