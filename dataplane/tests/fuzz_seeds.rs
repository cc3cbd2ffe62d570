//! The seed corpus of the `path` fuzz target, from the golden pcaps: one
//! seed per golden case, in the target's input format (a setup byte, then
//! frames with a big-endian u16 length each). `fuzz/seed.sh` runs the
//! ignored test that writes them to `fuzz/corpus/path/`; the plain test
//! checks that every golden input pcap converts.

use std::path::{Path, PathBuf};

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

/// The frames of a classic pcap.
fn read_pcap(bytes: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(&bytes[..4], &0xa1b2_c3d4u32.to_le_bytes(), "a little-endian µs pcap");
    let mut at = 24;
    let mut frames = Vec::new();
    while at + 16 <= bytes.len() {
        let n = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16;
        frames.push(bytes[at..at + n].to_vec());
        at += n;
    }
    frames
}

/// `(name, seed)` for every golden input pcap. The setup byte names the
/// proxy the frames are for (by their destination MAC); an IAP seed has
/// its cache filled (bit 7), as the cached-path cases need.
fn path_seeds(golden: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(golden).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let Some(case) = name.strip_suffix(".in.pcap") else { continue };
        let frames = read_pcap(&std::fs::read(&p).unwrap());
        assert!(!frames.is_empty(), "{name}: no frames");
        let sel: u8 = match &frames[0][..6] {
            m if m == MAC_A => 0x80,
            m if m == MAC_B => 1,
            _ => 2,
        };
        let mut seed = vec![sel];
        for f in &frames {
            seed.extend_from_slice(&(f.len() as u16).to_be_bytes());
            seed.extend_from_slice(f);
        }
        out.push((case.to_string(), seed));
    }
    out
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn every_golden_input_makes_a_seed() {
    let seeds = path_seeds(&golden_dir());
    assert!(seeds.len() >= 20, "{} seeds", seeds.len());
}

#[test]
#[ignore = "writes fuzz/corpus/path; run by fuzz/seed.sh"]
fn write_path_seeds() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/path");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, seed) in path_seeds(&golden_dir()) {
        std::fs::write(dir.join(format!("golden_{name}")), seed).unwrap();
    }
}
