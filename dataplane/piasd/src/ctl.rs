//! The operator socket: piasd serves its status as one JSON document per
//! request on a unix socket; `piasctl` is the client.
//!
//! The socket is served by a plain thread, never by the control core or a
//! worker: it reads the [`Status`] the control core publishes once a second
//! behind a mutex that only those two ever take, so a slow or hostile client
//! can delay nothing but itself.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One port in the status.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PortStatus {
    /// Config index.
    pub index: usize,
    /// DPDK device name.
    pub device: String,
    /// DPDK driver.
    pub driver: String,
    /// MAC address.
    pub mac: String,
    /// Unicast address/prefix.
    pub address: String,
    /// Link up.
    pub link_up: bool,
    /// Link speed (Mbit/s).
    pub speed_mbps: u32,
    /// Kernel tap of the exception path.
    pub tap: Option<String>,
    /// RSS on across the workers' queues.
    pub rss: bool,
    /// Device counters: received packets.
    pub ipackets: u64,
    /// Device counters: sent packets.
    pub opackets: u64,
    /// Device counters: received bytes.
    pub ibytes: u64,
    /// Device counters: sent bytes.
    pub obytes: u64,
    /// Device counters: dropped by the NIC (no descriptor).
    pub imissed: u64,
    /// Device counters: receive errors.
    pub ierrors: u64,
    /// Device counters: transmit errors.
    pub oerrors: u64,
    /// Device counters: no mbuf for receive.
    pub rx_nombuf: u64,
}

/// One worker in the status.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct WorkerStatus {
    /// Worker index (= queue index).
    pub index: usize,
    /// Its lcore.
    pub lcore: u32,
    /// Received, per port.
    pub rx: Vec<u64>,
    /// Sent, per port.
    pub tx: Vec<u64>,
    /// Handed to the control core.
    pub punted: u64,
    /// Echo requests answered.
    pub echo_replied: u64,
    /// Poll iterations.
    pub loops: u64,
    /// Drops by reason (non-zero only).
    pub drops: BTreeMap<String, u64>,
    /// Packets received from other workers.
    #[serde(default)]
    pub handoff_in: u64,
    /// Packets handed to their owning worker.
    #[serde(default)]
    pub handoff_out: u64,
    /// Live NAT flows.
    #[serde(default)]
    pub nat_flows: u64,
    /// PIAS path counters (segment by segment).
    #[serde(default)]
    pub path: BTreeMap<String, u64>,
}

/// The control core's own counters.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ControlStatus {
    /// ARP requests answered.
    pub arp_replied: u64,
    /// ARP requests sent (resolution, refresh, gratuitous).
    pub arp_requests_sent: u64,
    /// ARP packets learned from.
    pub arp_learned: u64,
    /// Packets written to a kernel tap.
    pub to_kernel: u64,
    /// Packets the kernel sent out through a port.
    pub from_kernel: u64,
    /// Control-core drops by reason (non-zero only).
    pub drops: BTreeMap<String, u64>,
    /// IAP cache misses reported by workers.
    #[serde(default)]
    pub iap_misses: u64,
    /// RAP choices reported by workers (JAP lists to send).
    #[serde(default)]
    pub rap_choices: u64,
    /// JAP-without-target events (invalidations to send).
    #[serde(default)]
    pub jap_no_target: u64,
    /// Targets seen silent by passive health checks.
    #[serde(default)]
    pub target_silent: u64,
    /// PIAS control datagrams received.
    #[serde(default)]
    pub control_datagrams: u64,
    /// Control-plane packets with no route (no port, no gateway).
    #[serde(default)]
    pub control_unrouted: u64,
    /// Control-plane packets dropped waiting for ARP (held too long, or
    /// the hold queue full).
    #[serde(default)]
    pub control_unresolved: u64,
    /// The control plane, when configured.
    #[serde(default)]
    pub plane: Option<crate::plane::PlaneStatus>,
}

/// A resolved neighbour.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct NeighbourStatus {
    /// Port index.
    pub port: u16,
    /// Address.
    pub ip: String,
    /// MAC.
    pub mac: String,
}

/// Everything `piasctl status` shows.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// piasd version.
    pub version: String,
    /// Seconds since start.
    pub uptime_s: f64,
    /// Config file.
    pub config: String,
    /// Anycast prefixes served.
    pub anycast: Vec<String>,
    /// Ports.
    pub ports: Vec<PortStatus>,
    /// Workers.
    pub workers: Vec<WorkerStatus>,
    /// Control core.
    pub control: ControlStatus,
    /// All drops by reason (workers + control; non-zero only).
    pub drops: BTreeMap<String, u64>,
    /// Resolved neighbours.
    pub neighbours: Vec<NeighbourStatus>,
    /// Mbufs in the pool.
    pub mempool_size: u32,
    /// Mbufs in use (in queues, rings, bursts).
    pub mempool_in_use: u32,
}

/// Longest request line accepted.
const MAX_REQUEST: usize = 256;

/// Serves `status` on `path` until `stop` is set. Removes a stale socket
/// file first; the caller joins the returned thread at shutdown.
pub fn serve(
    path: &Path,
    status: Arc<Mutex<Status>>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    listener.set_nonblocking(true)?;
    let path: PathBuf = path.to_path_buf();
    std::thread::Builder::new().name("piasd-ctl".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((s, _)) => {
                    if let Err(e) = answer(s, &status) {
                        log::debug!("control socket client: {e}");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    log::warn!("control socket accept: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        let _ = std::fs::remove_file(&path);
    })
}

fn answer(s: UnixStream, status: &Mutex<Status>) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new((&s).take_limited()).read_line(&mut line)?;
    let mut w = &s;
    match line.trim() {
        "status" => {
            let snap = status.lock().map(|g| g.clone()).unwrap_or_default();
            let body = serde_json::to_string(&snap).map_err(std::io::Error::other)?;
            w.write_all(body.as_bytes())?;
            w.write_all(b"\n")
        }
        other => {
            let msg = serde_json::json!({ "error": format!("unknown request {other:?}; try \"status\"") });
            w.write_all(msg.to_string().as_bytes())?;
            w.write_all(b"\n")
        }
    }
}

trait TakeLimited: std::io::Read + Sized {
    fn take_limited(self) -> std::io::Take<Self> {
        self.take(MAX_REQUEST as u64)
    }
}
impl<R: std::io::Read> TakeLimited for R {}

/// Client side: asks piasd at `path` for its status.
pub fn request_status(path: &Path) -> Result<Status, String> {
    let s = UnixStream::connect(path).map_err(|e| format!("{}: cannot connect: {e} (is piasd running?)", path.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    (&s).write_all(b"status\n").map_err(|e| format!("{}: {e}", path.display()))?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&line).map_err(|e| format!("{}: bad answer: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_status_and_refuses_unknown_requests() {
        let dir = std::env::temp_dir().join(format!("piasd-ctl-test-{}", std::process::id()));
        let path = dir.join("ctl.sock");
        let status = Arc::new(Mutex::new(Status { version: "t".into(), mempool_size: 7, ..Default::default() }));
        let stop = Arc::new(AtomicBool::new(false));
        let h = serve(&path, status.clone(), stop.clone()).unwrap();
        let got = request_status(&path).unwrap();
        assert_eq!(got.mempool_size, 7);
        status.lock().unwrap().mempool_in_use = 3;
        assert_eq!(request_status(&path).unwrap().mempool_in_use, 3);

        let s = UnixStream::connect(&path).unwrap();
        (&s).write_all(b"reboot\n").unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        assert!(line.contains("unknown request"), "{line}");

        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
        assert!(!path.exists(), "socket file left behind");
        let _ = std::fs::remove_dir_all(dir);
    }
}
