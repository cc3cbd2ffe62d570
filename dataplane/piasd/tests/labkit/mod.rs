//! Running a namespace lab script as a test (shared by the lab test files).
//! A lab needs root and network namespaces, and the tools it drives; where
//! those are missing the test says it was skipped, unless
//! PIAS_REQUIRE_LAB=1 (set by bench/run-tests.sh, so CI never passes by
//! skipping).

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn lab_possible(tools: &[&str]) -> Result<(), String> {
    let uid = Command::new("id").arg("-u").output().map_err(|e| e.to_string())?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err("not root".into());
    }
    let ok = Command::new("ip").args(["netns", "list"]).stdout(Stdio::null()).status().map_err(|e| format!("ip: {e}"))?;
    if !ok.success() {
        return Err("`ip netns` does not work here".into());
    }
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()))
        .collect();
    if !missing.is_empty() {
        return Err(format!("missing {} (bash bench/setup.sh installs them)", missing.join(", ")));
    }
    Ok(())
}

/// Labs run one at a time: each starts several poll-mode daemons, and on a
/// 2-core CI machine two labs at once starve each other's control cores
/// into missed heartbeats and timeouts that test nothing.
static ONE_LAB: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The target agent, a binary of the control crate: built beside piasd by
/// `cargo test --workspace`, or built here when this crate is tested alone.
fn pias_target() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_piasd")).with_file_name("pias-target");
    if !exe.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = exe.parent().is_some_and(|d| d.ends_with("release"));
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "pias-control", "--bin", "pias-target"]);
        if release {
            cmd.arg("--release");
        }
        let ok = cmd.status().expect("run cargo to build pias-target");
        assert!(ok.success(), "cannot build pias-target");
    }
    exe
}

/// Runs `bench/lab/<script>` with `LAB_PREFIX=prefix` and `env`; passes when
/// it exits 0 and says "all checks passed". `tools`: commands it needs
/// beyond iproute2. `PIAS_LAB_PREFIX=P` in the environment makes the
/// prefix `P-prefix`, so runs beside other labs on one machine do not
/// share (or clean up) each other's namespaces and files.
pub fn run_lab(script: &str, prefix: &str, env: &[(&str, &str)], tools: &[&str]) {
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(why) = lab_possible(tools) {
        if std::env::var("PIAS_REQUIRE_LAB").as_deref() == Ok("1") {
            panic!("lab test {script} cannot run ({why}) and PIAS_REQUIRE_LAB=1");
        }
        eprintln!("SKIPPED lab test {script}: {why}");
        return;
    }
    let prefix = match std::env::var("PIAS_LAB_PREFIX") {
        Ok(p) if !p.is_empty() => format!("{p}-{prefix}"),
        _ => prefix.to_string(),
    };
    let top = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("bash")
        .arg(top.join("bench/lab").join(script))
        .env("PIASD", env!("CARGO_BIN_EXE_piasd"))
        .env("PIASCTL", env!("CARGO_BIN_EXE_piasctl"))
        .env("PIAS_TARGET", pias_target())
        .env("LAB_PREFIX", &prefix)
        .envs(env.iter().copied())
        .output()
        .expect("run lab script");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "lab {script} failed:\n{text}");
    assert!(text.contains("all checks passed"), "lab {script} did not finish:\n{text}");
    // The measured results, for the test log (cargo test --nocapture).
    if let Some(i) = text.find("== results") {
        println!("{}", &text[i..]);
    }
}
