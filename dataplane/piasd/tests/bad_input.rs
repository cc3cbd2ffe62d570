//! A burst of malformed frames through the real daemon: piasd reads them
//! from a pcap port (DPDK's net_pcap PMD), and the test checks that every
//! frame was counted under the expected reason, that only the two valid
//! requests were answered (and answered right), and that SIGTERM ends piasd
//! with exit 0, which it gives only when every mbuf is back in the pool.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;
use pias_dataplane::wire::checksum;

const PCAP_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
const PEER: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const ME: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const AA: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);

fn arp(op: u16, sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&PEER);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&PEER);
    f.extend_from_slice(&sender.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f.resize(60, 0);
    f
}

/// A TCP SYN header (data offset 5); its checksum is not checked here.
fn tcp_syn() -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&40000u16.to_be_bytes());
    t[2..4].copy_from_slice(&22u16.to_be_bytes());
    t[12] = 0x50;
    t[13] = 0x02;
    t
}

/// (frame, expected drop reason; None = answered).
fn frames() -> Vec<(Vec<u8>, Option<&'static str>)> {
    let ip = |src, dst, proto, p: &[u8]| ipv4(PCAP_MAC, PEER, src, dst, proto, p);
    let good = ip(CLIENT, ME, 1, &echo_request(0x77, 1, b"pias bad-input test"));
    let mut v: Vec<(Vec<u8>, Option<&'static str>)> = vec![
        (good.clone(), None),
        (arp(1, CLIENT, ME), None),
        (vec![0xff], Some("eth_truncated")),
        (good[..13].to_vec(), Some("eth_truncated")),
        (good[..14 + 19].to_vec(), Some("ipv4_truncated")),
        (arp(1, CLIENT, Ipv4Addr::new(192, 0, 2, 99)), Some("arp_not_for_us")),
        (arp(9, CLIENT, ME), Some("arp_malformed")),
        (arp(1, CLIENT, ME)[..20].to_vec(), Some("arp_malformed")),
        (ip(CLIENT, ME, 6, &tcp_syn()), Some("no_exception_path")),
        (ip(CLIENT, AA, 17, &[0x30, 0x39, 0, 53, 0, 8, 0, 0]), Some("anycast_no_group")),
        (ip(CLIENT, ME, 6, &[0; 20]), Some("l4_malformed")),
        (ip(CLIENT, AA, 17, &[0x30, 0x39, 0, 53, 0, 0, 0, 0]), Some("l4_malformed")),
        (ip(CLIENT, Ipv4Addr::new(203, 0, 113, 1), 1, &echo_request(1, 1, b"x")), Some("ipv4_not_for_us")),
        (ip(Ipv4Addr::new(255, 255, 255, 255), ME, 1, &echo_request(1, 1, b"x")), Some("ipv4_bad_source")),
        (ip(CLIENT, ME, 1, &[8, 0, 0]), Some("icmp_truncated")),
    ];
    let mut f = good.clone();
    f[0] = 0x04; // unicast MAC, not ours
    v.push((f, Some("eth_not_our_mac")));
    let mut f = good.clone();
    f[6] = 0x01; // multicast source MAC
    v.push((f, Some("eth_bad_source")));
    let mut f = good.clone();
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    v.push((f, Some("eth_unsupported_type")));
    let mut f = good.clone();
    f[12..14].copy_from_slice(&[0x81, 0x00]);
    v.push((f, Some("eth_vlan")));
    let mut f = good.clone();
    f[14] = 0x65;
    v.push((f, Some("ipv4_bad_version")));
    let mut f = good.clone();
    f[14] = 0x43;
    v.push((f, Some("ipv4_bad_ihl")));
    let mut f = good.clone();
    f[16..18].copy_from_slice(&9000u16.to_be_bytes());
    v.push((f, Some("ipv4_bad_length")));
    let mut f = good.clone();
    f[24] ^= 0x5a;
    v.push((f, Some("ipv4_bad_checksum")));
    let mut e = echo_request(1, 1, b"x");
    e[6] ^= 0xff;
    v.push((ip(CLIENT, ME, 1, &e), Some("icmp_bad_checksum")));
    v
}

#[test]
fn malformed_burst_is_counted_never_answered_and_leaks_nothing() {
    let dir = scratch("bad-input");
    let frames = frames();
    let input: Vec<Vec<u8>> = frames.iter().map(|(f, _)| f.clone()).collect();
    let rx = dir.join("in.pcap");
    let tx = dir.join("out.pcap");
    write_pcap(&rx, &input);
    let sock = dir.join("ctl.sock");
    let cfg = dir.join("piasd.yaml");
    std::fs::write(
        &cfg,
        format!(
            r#"
eal:
  lcores: "0@0,1@0"
  memory_mb: 256
  no_huge: true
  file_prefix: pias-badinput-{pid}
  vdevs: ["net_pcap0,rx_pcap={rx},tx_pcap={tx}"]
workers: 1
idle_sleep_us: 100
ports: [{{ device: net_pcap0, address: 192.0.2.10/24, gateway: 192.0.2.1 }}]
anycast: {{ prefixes: [198.51.100.0/24] }}
control_socket: {sock}
"#,
            pid = std::process::id(),
            rx = rx.display(),
            tx = tx.display(),
            sock = sock.display()
        ),
    )
    .unwrap();

    let mut d = Piasd::start(&cfg, &dir.join("piasd.log"));
    let n = frames.len() as u64;
    let status = wait_for(Duration::from_secs(90), || {
        let s = piasd::ctl::request_status(&sock).ok()?;
        let rx: u64 = s.workers.iter().flat_map(|w| w.rx.iter()).sum();
        let arp_done = s.control.arp_replied >= 1;
        (rx >= n && arp_done && s.uptime_s > 1.5).then_some(s)
    });
    let Some(status) = status else {
        panic!("piasd did not take all {n} frames; log:\n{}", d.log());
    };
    let rx: u64 = status.workers.iter().flat_map(|w| w.rx.iter()).sum();
    assert_eq!(rx, n, "frames received");

    // Every bad frame counted under its reason; nothing else dropped.
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for (_, r) in &frames {
        if let Some(r) = r {
            *want.entry(r.to_string()).or_default() += 1;
        }
    }
    assert_eq!(status.drops, want, "drops by reason");
    assert_eq!(status.control.arp_replied, 1);
    assert_eq!(status.workers[0].echo_replied, 1);

    let code = d.terminate(Duration::from_secs(60));
    let log = d.log();
    assert_eq!(code, Some(0), "piasd exit; log:\n{log}");
    assert!(log.contains("mempool: 0 of"), "no mempool audit in log:\n{log}");

    // Only answers to the two valid requests, plus our own ARP requests.
    let out = read_pcap(&tx);
    let mut echo_replies = 0;
    let mut arp_replies = 0;
    for f in &out {
        assert_eq!(&f[6..12], &PCAP_MAC, "a frame not from our MAC: {f:02x?}");
        match (f[12], f[13]) {
            (0x08, 0x06) => {
                let op = u16::from_be_bytes([f[20], f[21]]);
                if op == 2 {
                    arp_replies += 1;
                    assert_eq!(&f[0..6], &PEER);
                    assert_eq!(&f[22..28], &PCAP_MAC, "ARP reply hardware address");
                    assert_eq!(&f[28..32], &ME.octets(), "ARP reply for our address");
                    assert_eq!(&f[38..42], &CLIENT.octets());
                } else {
                    assert_eq!(op, 1, "unexpected ARP op");
                    assert_eq!(&f[0..6], &[0xff; 6]);
                    assert_eq!(&f[28..32], &ME.octets(), "our requests come from our address");
                }
            }
            (0x08, 0x00) => {
                echo_replies += 1;
                let ip = &f[14..];
                assert_eq!(checksum::data(&ip[..20]), 0xffff, "reply IP checksum");
                assert_eq!(&ip[12..16], &ME.octets());
                assert_eq!(&ip[16..20], &CLIENT.octets());
                let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
                assert_eq!(ip[20], 0, "echo reply");
                assert_eq!(checksum::data(&ip[20..total]), 0xffff, "ICMP checksum");
                assert_eq!(&ip[28..total], b"pias bad-input test");
            }
            t => panic!("unexpected frame type {t:?}: {f:02x?}"),
        }
    }
    assert_eq!((echo_replies, arp_replies), (1, 1), "answers sent");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bad tunnel and NAT input through the real daemon configured as a JAP
/// (proxy C of the golden topology): every frame dropped under its reason,
/// nothing forwarded, nothing leaked.
#[test]
fn malformed_tunnel_and_nat_burst_is_counted_and_leaks_nothing() {
    const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
    const C: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);
    const TARGET: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
    let client = Ipv4Addr::new(203, 0, 113, 100);
    let ip = |src, dst, proto, p: &[u8]| ipv4(PCAP_MAC, PEER, src, dst, proto, p);
    // An IPv4 packet without Ethernet, for tunnelling.
    let inner = |src: Ipv4Addr, dst: Ipv4Addr, proto: u8, ttl: u8, p: &[u8]| {
        let mut v = ipv4([0; 6], [0; 6], src, dst, proto, p)[14..].to_vec();
        v[8] = ttl;
        v[10] = 0;
        v[11] = 0;
        let c = pias_dataplane::wire::checksum::finish(checksum::data(&v[..20]));
        v[10..12].copy_from_slice(&c.to_be_bytes());
        v
    };
    let syn = tcp_syn_to(80);
    let good_inner = inner(client, AA, 6, 62, &syn);
    let nested = ip(B, C, 4, &inner(B, AA, 4, 64, &good_inner));
    let mut bad_sum = ip(B, C, 4, &good_inner);
    bad_sum[14 + 20 + 10] ^= 0xff;
    let mut frag = ip(B, C, 4, &good_inner);
    frag[14 + 6] = 0x20; // MF on the outer header
    let c = {
        let mut h = frag[14..34].to_vec();
        h[10] = 0;
        h[11] = 0;
        pias_dataplane::wire::checksum::finish(checksum::data(&h))
    };
    frag[24..26].copy_from_slice(&c.to_be_bytes());
    let mut bad_tcp = syn.clone();
    bad_tcp[12] = 0x20; // data offset 2
    let frames: Vec<(Vec<u8>, &str)> = vec![
        (ip(Ipv4Addr::new(203, 0, 113, 66), C, 4, &good_inner), "tunnel_unknown_source"),
        (nested, "tunnel_nested"),
        (ip(B, C, 4, &inner(client, Ipv4Addr::new(203, 0, 113, 9), 6, 62, &syn)), "tunnel_inner_not_anycast"),
        (ip(B, C, 4, &inner(B, AA, 6, 62, &syn)), "tunnel_loop"),
        (bad_sum, "tunnel_malformed"),
        (ip(B, C, 4, &good_inner[..30]), "tunnel_malformed"),
        (frag, "tunnel_fragment"),
        (ip(B, C, 4, &inner(client, AA, 6, 62, &tcp_syn_to(81))), "anycast_no_group"),
        (ip(B, C, 4, &inner(client, AA, 6, 62, &bad_tcp)), "l4_malformed"),
        (ip(TARGET, C, 6, &tcp_syn_to(20001)), "nat_no_entry"),
    ];
    let dir = scratch("bad-tunnel");
    let input: Vec<Vec<u8>> = frames.iter().map(|(f, _)| f.clone()).collect();
    let (rx, tx, sock) = (dir.join("in.pcap"), dir.join("out.pcap"), dir.join("ctl.sock"));
    write_pcap(&rx, &input);
    let cfg = dir.join("piasd.yaml");
    std::fs::write(
        &cfg,
        format!(
            r#"
eal: {{ lcores: "0@0,1@0", memory_mb: 256, no_huge: true, file_prefix: pias-badtun-{pid}, vdevs: ["net_pcap0,rx_pcap={rx},tx_pcap={tx}"] }}
workers: 1
idle_sleep_us: 100
ports: [{{ device: net_pcap0, address: 192.0.2.12/24, gateway: 192.0.2.1, static_neighbours: {{ 192.0.2.1: "02:00:00:00:00:01", 192.0.2.11: "02:00:00:00:00:0b" }} }}]
anycast: {{ prefixes: [198.51.100.0/24] }}
control_socket: {sock}
pias:
  me: 3
  proxies:
    - {{ id: 2, address: 192.0.2.11, cluster: 1 }}
    - {{ id: 3, address: 192.0.2.12, cluster: 2 }}
  nat: {{ ports: "20000-29999" }}
  groups:
    - group: "198.51.100.10:80/tcp"
      raps: [2]
      targets: [ {{ address: "203.0.113.5:8080" }} ]
"#,
            pid = std::process::id(),
            rx = rx.display(),
            tx = tx.display(),
            sock = sock.display()
        ),
    )
    .unwrap();
    let mut d = Piasd::start(&cfg, &dir.join("piasd.log"));
    let n = frames.len() as u64;
    let status = wait_for(Duration::from_secs(90), || {
        let s = piasd::ctl::request_status(&sock).ok()?;
        let rx: u64 = s.workers.iter().flat_map(|w| w.rx.iter()).sum();
        (rx >= n && s.uptime_s > 1.5).then_some(s)
    });
    let Some(status) = status else { panic!("piasd did not take the frames; log:\n{}", d.log()) };
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for (_, r) in &frames {
        *want.entry(r.to_string()).or_default() += 1;
    }
    assert_eq!(status.drops, want, "drops by reason");
    assert_eq!(status.workers[0].nat_flows, 0, "no state from bad input");
    assert_eq!(d.terminate(Duration::from_secs(60)), Some(0), "exit; log:\n{}", d.log());
    let forwarded = read_pcap(&tx).into_iter().filter(|f| f.get(12..14) != Some(&[0x08, 0x06][..])).count();
    assert_eq!(forwarded, 0, "nothing but our own ARP leaves");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A TCP SYN header to `dport` (data offset 5).
fn tcp_syn_to(dport: u16) -> Vec<u8> {
    let mut t = tcp_syn();
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t
}
