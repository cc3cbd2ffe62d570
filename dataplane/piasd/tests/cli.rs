//! The daemon's command line: `--check-config` accepts the shipped configs
//! and refuses a bad one with exit 2 and a message naming file and key.

use std::path::PathBuf;
use std::process::Command;

fn top() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn shipped_configs_are_valid() {
    for c in ["configs/demo.yaml", "configs/carrier.yaml"] {
        let out = Command::new(env!("CARGO_BIN_EXE_piasd")).arg("--check-config").arg(top().join(c)).output().unwrap();
        assert!(out.status.success(), "{c}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
    }
}

#[test]
fn bad_config_exits_2_naming_file_and_key() {
    let dir = std::env::temp_dir().join(format!("piasd-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read_to_string(top().join("configs/demo.yaml")).unwrap();
    let bad = good.replace("gateway: 192.0.2.1", "gateway: 192.0.2.1.7");
    assert_ne!(good, bad);
    let path = dir.join("bad.yaml");
    std::fs::write(&path, bad).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_piasd")).arg("--check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}: key `ports[0].gateway`: expected an IPv4 address", path.display())), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_piasd")).arg("--config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "--config refuses it too");
    let _ = std::fs::remove_dir_all(&dir);
}
