//! Helpers shared by piasd's integration tests: pcap files, frames, and a
//! piasd child process that is always killed when the test ends.

#![allow(dead_code)]

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pias_dataplane::wire::checksum;

/// Writes a classic pcap file (microsecond timestamps, Ethernet link type).
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut f = std::fs::File::create(path).unwrap();
    let mut hdr = Vec::new();
    hdr.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    hdr.extend_from_slice(&2u16.to_le_bytes());
    hdr.extend_from_slice(&4u16.to_le_bytes());
    hdr.extend_from_slice(&0i32.to_le_bytes());
    hdr.extend_from_slice(&0u32.to_le_bytes());
    hdr.extend_from_slice(&65535u32.to_le_bytes());
    hdr.extend_from_slice(&1u32.to_le_bytes());
    f.write_all(&hdr).unwrap();
    for (i, fr) in frames.iter().enumerate() {
        let mut r = Vec::new();
        r.extend_from_slice(&1u32.to_le_bytes());
        r.extend_from_slice(&(i as u32).to_le_bytes());
        r.extend_from_slice(&(fr.len() as u32).to_le_bytes());
        r.extend_from_slice(&(fr.len() as u32).to_le_bytes());
        f.write_all(&r).unwrap();
        f.write_all(fr).unwrap();
    }
}

/// Reads the frames of a classic pcap file (either byte order, µs or ns).
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).unwrap_or_default();
    if b.len() < 24 {
        return Vec::new();
    }
    let magic = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let le = matches!(magic, 0xa1b2_c3d4 | 0xa1b2_3c4d);
    let rd = |o: usize| -> u32 {
        let w = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if le { u32::from_le_bytes(w) } else { u32::from_be_bytes(w) }
    };
    let mut out = Vec::new();
    let mut o = 24;
    while o + 16 <= b.len() {
        let incl = rd(o + 8) as usize;
        o += 16;
        if o + incl > b.len() {
            break;
        }
        out.push(b[o..o + incl].to_vec());
        o += incl;
    }
    out
}

/// Builds Ethernet + IPv4 with a valid header checksum.
pub fn ipv4(dst_mac: [u8; 6], src_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = 20 + payload.len() as u16;
    let mut h = [0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = checksum::finish(checksum::data(&h));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(payload);
    f
}

/// An ICMP echo request with a valid checksum.
pub fn echo_request(id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut p = vec![8, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(data);
    let c = checksum::finish(checksum::data(&p));
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// A piasd child, killed on drop.
pub struct Piasd {
    pub child: Child,
    pub log: PathBuf,
}

impl Piasd {
    /// Starts piasd with `config`, logging to `log`.
    pub fn start(config: &Path, log: &Path) -> Piasd {
        let out = std::fs::File::create(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_piasd"))
            .arg("--config")
            .arg(config)
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("spawn piasd");
        Piasd { child, log: log.to_path_buf() }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit code (None if it had to be killed).
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                if st.code().is_none() {
                    // Killed by a signal: say which, the log cannot.
                    eprintln!("piasd ended by {st}");
                }
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Piasd {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `f` until it returns Some or `within` passes.
pub fn wait_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("piasd-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
