//! Namespace lab tests: real clients (ping, arping, a TCP client) against
//! piasd on an af_packet port. They need root and network namespaces; where
//! those are missing the test says it was skipped, unless PIAS_REQUIRE_LAB=1
//! (set by bench/run-tests.sh, so CI never passes by skipping).

use std::path::PathBuf;
use std::process::Command;

fn lab_possible() -> Result<(), String> {
    let uid = Command::new("id").arg("-u").output().map_err(|e| e.to_string())?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err("not root".into());
    }
    let ok = Command::new("ip").args(["netns", "list"]).status().map_err(|e| format!("ip: {e}"))?;
    if !ok.success() {
        return Err("`ip netns` does not work here".into());
    }
    Ok(())
}

/// The target agent, a binary of the control crate: built beside piasd by
/// `cargo test --workspace`, or built here when this crate is tested alone.
fn pias_target() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_piasd")).with_file_name("pias-target");
    if !exe.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let profile_release = exe.parent().is_some_and(|d| d.ends_with("release"));
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "pias-control", "--bin", "pias-target"]);
        if profile_release {
            cmd.arg("--release");
        }
        let ok = cmd.status().expect("run cargo to build pias-target");
        assert!(ok.success(), "cannot build pias-target");
    }
    exe
}

/// Labs run one at a time: each starts several poll-mode daemons, and on a
/// 2-core CI machine two labs at once starve each other's control cores
/// into missed heartbeats and timeouts that test nothing.
static ONE_LAB: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run_lab(script: &str, prefix: &str, env: &[(&str, &str)]) {
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(why) = lab_possible() {
        if std::env::var("PIAS_REQUIRE_LAB").as_deref() == Ok("1") {
            panic!("lab test {script} cannot run ({why}) and PIAS_REQUIRE_LAB=1");
        }
        eprintln!("SKIPPED lab test {script}: {why}");
        return;
    }
    let top = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("bash")
        .arg(top.join("bench/lab").join(script))
        .env("PIASD", env!("CARGO_BIN_EXE_piasd"))
        .env("PIASCTL", env!("CARGO_BIN_EXE_piasctl"))
        .env("PIAS_TARGET", pias_target())
        .env("LAB_PREFIX", prefix)
        .envs(env.iter().copied())
        .output()
        .expect("run lab script");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "lab {script} failed:\n{text}");
    assert!(text.contains("all checks passed"), "lab {script} did not finish:\n{text}");
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
