//! The golden packet cases, once more through the real daemon: piasd,
//! configured as the proxy of the case (IAP A, RAP B or JAP C), reads the
//! case's input pcap through DPDK's net_pcap PMD and writes what it sends
//! to another pcap; that must equal the golden output byte for byte.
//!
//! One substitution, made openly: net_pcap gives the port its own MAC
//! (02:70:63:61:70:00), so the golden frames' proxy MAC is swapped for it
//! in the input's destination and the output's source. Frames piasd
//! originates on its own (gratuitous ARP, ARP requests) are set aside.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const PCAP_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];

/// The input and expected frames of one or more golden cases, in order
/// (`a+b` runs case a, then case b, through the same daemon).
fn golden(name: &str) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden");
    let (mut i, mut o) = (Vec::new(), Vec::new());
    for n in name.split('+') {
        i.extend(read_pcap(&dir.join(format!("{n}.in.pcap"))));
        o.extend(read_pcap(&dir.join(format!("{n}.out.pcap"))));
    }
    (i, o)
}

/// The static PIAS tables of proxy `me` (1 = A, 2 = B, 3 = C), as in the
/// in-process golden tests.
fn config(dir: &Path, tag: &str, me: u32, rx: &Path, tx: &Path, sock: &Path, pin: bool) -> String {
    let cache = if pin { "      cache: [3]\n" } else { "" };
    let addr = match me {
        1 => "192.0.2.10",
        2 => "192.0.2.11",
        _ => "192.0.2.12",
    };
    let role = match me {
        2 => "      japs: [ { proxy: 3, targets: 1 } ]\n",
        3 => "      targets: [ { address: \"203.0.113.5:8080\" } ]\n",
        _ => "",
    };
    let urole = match me {
        2 => "      japs: [ { proxy: 3, targets: 1 } ]\n",
        3 => "      targets: [ { address: \"203.0.113.5:5353\" } ]\n",
        _ => "",
    };
    let _ = dir;
    let neigh: String = [("192.0.2.1", "01"), ("192.0.2.10", "0a"), ("192.0.2.11", "0b"), ("192.0.2.12", "0c")]
        .iter()
        .filter(|(ip, _)| *ip != addr)
        .map(|(ip, m)| format!("      {ip}: \"02:00:00:00:00:{m}\"\n"))
        .collect();
    format!(
        r#"
eal:
  lcores: "0@0,1@0"
  memory_mb: 256
  no_huge: true
  file_prefix: pias-golden-{tag}-{pid}
  vdevs: ["net_pcap0,rx_pcap={rx},tx_pcap={tx}"]
workers: 1
idle_sleep_us: 100
ports:
  - device: net_pcap0
    address: {addr}/24
    gateway: 192.0.2.1
    static_neighbours:
{neigh}anycast: {{ prefixes: [198.51.100.0/24] }}
control_socket: {sock}
pias:
  me: {me}
  proxies:
    - {{ id: 1, address: 192.0.2.10, cluster: 1 }}
    - {{ id: 2, address: 192.0.2.11, cluster: 1 }}
    - {{ id: 3, address: 192.0.2.12, cluster: 2 }}
  rtt: [ {{ a: 1, b: 2, rtt_us: 5000 }} ]
  nat: {{ ports: "20000-29999" }}
  groups:
    - group: "198.51.100.10:80/tcp"
      raps: [2]
{role}{cache}    - group: "198.51.100.10:53/udp"
      raps: [2]
{urole}{cache}"#,
        pid = std::process::id(),
        rx = rx.display(),
        tx = tx.display(),
        sock = sock.display(),
        neigh = neigh,
        tag = tag.replace('+', "-"),
        urole = urole,
        cache = cache,
    )
}

fn run_case(name: &str, me: u32, proxy_mac: [u8; 6]) {
    run_case_with(name, me, proxy_mac, false)
}

/// `pin`: this proxy's IAP cache names C for both groups (the in-process
/// cases that fill the cache first).
fn run_case_with(name: &str, me: u32, proxy_mac: [u8; 6], pin: bool) {
    let (inputs, expected) = golden(name);
    assert!(!inputs.is_empty() && !expected.is_empty(), "{name}: golden pcaps missing");
    let dir = scratch(&format!("golden-{}", name.replace('+', "-")));
    let rx = dir.join("in.pcap");
    let tx = dir.join("out.pcap");
    let sock = dir.join("ctl.sock");
    let swap = |f: &[u8], at: std::ops::Range<usize>| -> Vec<u8> {
        let mut f = f.to_vec();
        if f[at.clone()] == proxy_mac {
            f[at].copy_from_slice(&PCAP_MAC);
        }
        f
    };
    let inputs: Vec<Vec<u8>> = inputs.iter().map(|f| swap(f, 0..6)).collect();
    let expected: Vec<Vec<u8>> = expected.iter().map(|f| swap(f, 6..12)).collect();
    write_pcap(&rx, &inputs);
    let cfg = dir.join("piasd.yaml");
    std::fs::write(&cfg, config(&dir, name, me, &rx, &tx, &sock, pin)).unwrap();

    let mut d = Piasd::start(&cfg, &dir.join("piasd.log"));
    let n = inputs.len() as u64;
    let done = wait_for(Duration::from_secs(90), || {
        if let Ok(Some(st)) = d.child.try_wait() {
            panic!("{name}: piasd exited early ({st}); log:\n{}", d.log());
        }
        let s = piasd::ctl::request_status(&sock).ok()?;
        let rx: u64 = s.workers.iter().flat_map(|w| w.rx.iter()).sum();
        (rx >= n && s.uptime_s > 1.2).then_some(s)
    });
    let Some(status) = done else { panic!("{name}: piasd did not take the input; log:\n{}", d.log()) };
    let code = d.terminate(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{name}: piasd exit; log:\n{}", d.log());

    let out: Vec<Vec<u8>> = read_pcap(&tx).into_iter().filter(|f| f.get(12..14) != Some(&[0x08, 0x06][..])).collect();
    assert_eq!(out.len(), expected.len(), "{name}: frames sent; drops {:?}, path {:?}", status.drops, status.workers[0].path);
    for (i, (g, w)) in out.iter().zip(&expected).enumerate() {
        assert!(g == w, "{name}: frame {i} differs from the golden output\n got {g:02x?}\nwant {w:02x?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Segment 1 → 2 at the IAP (cache miss, to the RAP).
#[test]
fn dpdk_seg2_iap_to_rap() {
    run_case("seg2_iap_to_rap", 1, [0x02, 0, 0, 0, 0, 0x0a]);
}

/// Segment 2 → 3 at the RAP.
#[test]
fn dpdk_seg3_rap_to_jap() {
    run_case("seg3_rap_to_jap", 2, [0x02, 0, 0, 0, 0, 0x0b]);
}

/// Segment 3 → 4 at the JAP (new flow, NAT port 20000).
#[test]
fn dpdk_seg4_jap_to_target() {
    run_case("seg4_jap_to_target", 3, [0x02, 0, 0, 0, 0, 0x0c]);
}

/// Segments 3 → 4 then 5 → 6 at the JAP: the target's answer to the flow
/// the first frame created leaves from the anycast address.
#[test]
fn dpdk_seg4_then_seg6_reverse_nat() {
    run_case("seg4_jap_to_target+seg6_reverse_nat", 3, [0x02, 0, 0, 0, 0, 0x0c]);
}

/// Segment 7 needs a filled cache: pinned in the config.
#[test]
fn dpdk_seg7_iap_cached() {
    run_case_with("seg7_iap_to_jap", 1, [0x02, 0, 0, 0, 0, 0x0a], true);
}

/// ICMP time exceeded and frag needed at the IAP.
#[test]
fn dpdk_icmp_errors_at_the_iap() {
    run_case("icmp_ttl_exceeded", 1, [0x02, 0, 0, 0, 0, 0x0a]);
    run_case("icmp_frag_needed", 1, [0x02, 0, 0, 0, 0, 0x0a]);
}

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const MAC_C: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0c];

/// ICMP errors about NAT'd flows and from inside tunnels (RFC 5508, RFC
/// 2003 §4), each a sequence that first makes the flow.
#[test]
fn dpdk_icmp_translation_and_relay() {
    for (name, me, mac, pin) in [
        ("icmp_nat_frag_needed_to_client", 3, MAC_C, false),
        ("icmp_nat_time_exceeded_to_client", 3, MAC_C, false),
        ("icmp_nat_param_problem_to_client", 3, MAC_C, false),
        ("icmp_nat_port_unreachable_to_client", 3, MAC_C, false),
        ("icmp_reply_error_iap_to_jap", 1, MAC_A, true),
        ("icmp_reply_error_rap_to_jap", 2, MAC_B, false),
        ("icmp_reply_error_jap_to_target", 3, MAC_C, false),
        ("icmp_tunnel_time_exceeded_relayed", 1, MAC_A, false),
        ("icmp_tunnel_frag_needed_relayed", 1, MAC_A, false),
    ] {
        run_case_with(name, me, mac, pin);
    }
}

/// Fragmented UDP in order and out of order (RFC 4787 REQ-14), at the IAP,
/// the JAP and on the reverse path: out-of-order fragments are held in
/// mbufs by the worker until their first fragment arrives.
#[test]
fn dpdk_fragments() {
    for (name, me, mac, pin) in [
        ("frag_iap_in_order", 1, MAC_A, true),
        ("frag_iap_out_of_order", 1, MAC_A, true),
        ("frag_jap_in_order", 3, MAC_C, false),
        ("frag_jap_out_of_order", 3, MAC_C, false),
        ("frag_reverse_in_order", 3, MAC_C, false),
        ("frag_reverse_out_of_order", 3, MAC_C, false),
    ] {
        run_case_with(name, me, mac, pin);
    }
}
