//! The fuzz seed corpus (tests/seeds/, copied into every fuzz target's
//! corpus by fuzz/seed.sh) was written from PROTOCOL.md's byte tables (by
//! hand, in Python), not by this crate: every seed datagram must decode,
//! which checks the specification and the code against each other.

use std::fs;
use std::path::Path;

use pias_control::wire::{decode_unauthenticated, MessageType};

#[test]
fn spec_written_seeds_decode() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seeds");
    let mut seen = Vec::new();
    for entry in fs::read_dir(&dir).expect("seed directory") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let Some(hex) = name.strip_prefix("seed-") else {
            continue;
        };
        let ty = u8::from_str_radix(hex, 16).expect("seed-<type in hex>");
        let bytes = fs::read(&path).expect("read seed");
        let (frame, msg) = decode_unauthenticated(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(frame.msg_type as u8, ty, "{name}");
        assert_eq!(msg.msg_type() as u8, ty, "{name}");
        seen.push(ty);
    }
    seen.sort();
    let all: Vec<u8> = MessageType::ALL.iter().map(|t| *t as u8).collect();
    assert_eq!(seen, all, "one seed per message type");
}
