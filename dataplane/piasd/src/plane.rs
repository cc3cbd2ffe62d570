//! The PIAS control plane inside piasd: the sans-IO [`ProxyControl`] of
//! `pias-control`, driven by the control core.
//!
//! The control core hands this driver what the workers punted (control
//! datagrams on the control port, to this proxy's address or to an anycast
//! address; ICMP echo replies to this proxy's health probes) and the
//! workers' [`Up`] events; it takes back IPv4 packets to send (control
//! datagrams, probes) and [`Update`]s for every worker's down queue. The
//! driver owns the only clock the machines see (monotonic nanoseconds since
//! start, plus the wall clock for signed target joins), the boot count that
//! makes this incarnation's messages fresh, and the probes in flight.
//!
//! Health probes leave from this proxy's address: ICMP echo (identifier
//! [`PROBE_IDENT`]) or, for TCP groups, a SYN from the control port to the
//! target's port. The workers punt the answers to the control core (echo
//! replies to this proxy; TCP to the control port with no NAT mapping). A
//! SYN-ACK means the service is up (the half-open connection is reset at
//! once); a RST means the host is up and the service is not, a failure at
//! once, without waiting for the timeout. A UDP probe kind is run as an
//! ICMP echo (a UDP service need not answer an empty datagram). The probe
//! sequence number, echoed back in the echo sequence or the TCP
//! acknowledgement, matches an answer to its probe.

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::VerifyingKey;
use pias_control::auth::KeyRing;
use pias_control::jap::{HealthProbe, ProbeId, ProbeKind};
use pias_control::membership;
use pias_control::proxy::{ProxyConfig, ProxyControl, Update};
use pias_control::time::{Instant, UnixTime};
use pias_control::wire::{GroupRegister, KeyId, MAX_DATAGRAM};
use pias_dataplane::iface::Up;
use pias_dataplane::types::{Ipv4Prefix, ProxyId};
use pias_dataplane::wire::{checksum, EtherType, EthernetFrame, IpProtocol};
use serde::{Deserialize, Serialize};

use crate::config::{parse_hex, ControlPlaneConfig};

/// The ICMP echo identifier of this proxy's health probes.
pub const PROBE_IDENT: u16 = 0x5049; // "PI"

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    /// The secret's file.
    #[error("{file}: {reason}")]
    KeyFile {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// The boot count's file.
    #[error("{file}: {reason}")]
    BootFile {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// A setting the control plane refused.
    #[error("pias.control: {0}")]
    Config(String),
}

/// Reads the boot count, increments it and writes it back (through a
/// temporary file and a rename, so a crash never leaves it empty).
/// A missing file starts at 1.
pub fn next_boot_count(file: &Path) -> Result<u32, PlaneError> {
    let err = |reason: String| PlaneError::BootFile { file: file.display().to_string(), reason };
    let last = match std::fs::read_to_string(file) {
        Ok(s) => s.trim().parse::<u32>().map_err(|_| err(format!("expected a boot count (a number), found `{}`", s.trim())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(err(format!("cannot read: {e}"))),
    };
    let next = last.checked_add(1).ok_or_else(|| err("boot count exhausted".into()))?;
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create its directory: {e}")))?;
    }
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{next}\n")).map_err(|e| err(format!("cannot write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, file).map_err(|e| err(format!("cannot replace: {e}")))?;
    Ok(next)
}

/// Reads the proxy-group secret: hex, at least 32 bytes.
pub fn read_secret(file: &Path) -> Result<Vec<u8>, PlaneError> {
    let err = |reason: String| PlaneError::KeyFile { file: file.display().to_string(), reason };
    let text = std::fs::read_to_string(file).map_err(|e| err(format!("cannot read: {e}")))?;
    let key = parse_hex(&text).ok_or_else(|| err("expected the secret as hex digits".into()))?;
    if key.len() < pias_control::auth::MIN_SECRET_LEN {
        return Err(err(format!("secret of {} bytes, expected at least {}", key.len(), pias_control::auth::MIN_SECRET_LEN)));
    }
    Ok(key)
}

/// What the driver did, for `piasctl status` and Prometheus.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlaneCounters {
    /// Control datagrams handed to the machines.
    pub rx_datagrams: u64,
    /// Punted frames that were not well-formed IPv4/UDP (bad checksum,
    /// truncated, fragment).
    pub rx_malformed: u64,
    /// Datagrams the machines sent.
    pub tx_datagrams: u64,
    /// Table updates pushed to the workers (each to every worker).
    pub updates: u64,
    /// Health probes sent.
    pub probes_sent: u64,
    /// Probes answered.
    pub probes_answered: u64,
    /// Probes without an answer in time.
    pub probes_timed_out: u64,
    /// Probes not started: too many in flight.
    pub probes_refused: u64,
    /// Echo replies and TCP answers that matched no probe in flight (late,
    /// duplicated, or from another host).
    pub replies_unmatched: u64,
}

/// The control plane's state for `piasctl status`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlaneStatus {
    /// This proxy.
    pub me: u32,
    /// Its boot count.
    pub incarnation: u32,
    /// Proxies known, this one included.
    pub proxies: Vec<ProxyStatus>,
    /// Groups registered.
    pub groups: Vec<String>,
    /// Local targets by group (as this JAP serves them).
    pub targets: BTreeMap<String, Vec<String>>,
    /// Groups this proxy is a RAP of.
    pub rap_of: Vec<String>,
    /// This proxy's RAP view, for the groups it is a RAP of: the JAPs with
    /// live targets (what its JAP lists are made from).
    #[serde(default)]
    pub rap_japs: BTreeMap<String, Vec<u32>>,
    /// This proxy's IAP cache: the JAP list per group as its workers hold
    /// it (new flows go to the first; an affinity group's anchor), what a
    /// JAP's death or an invalidation fails over to.
    #[serde(default)]
    pub iap_cache: BTreeMap<String, Vec<u32>>,
    /// Datagrams refused by the gate, by reason (non-zero only).
    pub rejected: BTreeMap<String, u64>,
    /// Datagrams accepted by the gate.
    pub accepted: u64,
    /// The driver's counters.
    pub driver: PlaneCounters,
    /// The machines' counters an operator reads first (`jap.joins`,
    /// `iap.invalidations`, `membership.declared_down`, ...).
    pub counters: BTreeMap<String, u64>,
}

/// A proxy as this one sees it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProxyStatus {
    /// Id.
    pub id: u32,
    /// Address.
    pub addr: String,
    /// Cluster.
    pub cluster: u16,
    /// Live.
    pub up: bool,
}

/// A probe in flight.
struct InFlight {
    id: ProbeId,
    deadline: Instant,
    /// The target, for TCP: (address, port).
    target: (Ipv4Addr, u16),
}

/// The driver.
pub struct Plane {
    cp: ProxyControl,
    origin: std::time::Instant,
    me_addr: Ipv4Addr,
    incarnation: u32,
    buf: Vec<u8>,
    ip_id: u16,
    probes: BTreeMap<u16, InFlight>,
    next_seq: u16,
    probe_timeout: Duration,
    control_port: u16,
    /// Packets made outside `poll` (resets after a SYN-ACK).
    pending: Vec<Vec<u8>>,
    counters: PlaneCounters,
}

/// Most probes in flight (the sequence space is 16 bits).
const MAX_PROBES: usize = 4096;

impl Plane {
    /// Builds the control plane of proxy `me` at `addr`, registering the
    /// config's groups.
    pub fn new(cfg: &ControlPlaneConfig, me: ProxyId, addr: Ipv4Addr, anycast: &[Ipv4Prefix], port: u16) -> Result<Self, PlaneError> {
        let secret = read_secret(&cfg.key_file)?;
        let incarnation = next_boot_count(&cfg.boot_file)?;
        let keys = KeyRing::new(KeyId(cfg.key_id), &secret).map_err(|e| PlaneError::Config(format!("key_file: {e}")))?;
        let mut m = membership::Config::new(me, addr, cfg.cluster, incarnation);
        m.port = port;
        m.seeds = cfg.seeds.iter().map(|&ip| SocketAddrV4::new(ip, port)).collect();
        m.heartbeat_interval = Duration::from_millis(cfg.heartbeat_ms);
        m.dead_multiplier = cfg.dead_multiplier;
        m.retransmit_interval = m.retransmit_interval.min(m.heartbeat_interval);
        let mut pc = ProxyConfig::new(m, anycast.to_vec());
        pc.raps_per_group = cfg.raps_per_group;
        pc.jap.probe_interval = Duration::from_secs(cfg.probe_interval_s);
        pc.jap.retry_interval = Duration::from_millis(cfg.probe_retry_ms);
        pc.jap.dead_after = cfg.probe_dead_after;
        pc.iap.query_delay = Duration::from_millis(cfg.query_delay_ms);
        // A probe answered later than the next retry is as good as lost.
        pc.jap.probe_timeout = pc.jap.probe_timeout.min(pc.jap.retry_interval.max(Duration::from_millis(200)));
        if let Some(k) = cfg.operator_key {
            let vk = VerifyingKey::from_bytes(&k).map_err(|_| PlaneError::Config("operator_key: not an Ed25519 public key".into()))?;
            pc.operator_key = Some(vk);
        }
        let probe_timeout = pc.jap.probe_timeout;
        let origin = std::time::Instant::now();
        let now = Instant::ZERO;
        let mut cp = ProxyControl::new(pc, keys, now).map_err(|e| PlaneError::Config(e.to_string()))?;
        for g in &cfg.groups {
            let reg = GroupRegister { group: g.group, options: g.options, withdrawn: false, serial: 1, owner_key: g.owner_key };
            cp.apply_registration(now, &reg);
        }
        if cp.counters().registrations_refused > 0 {
            return Err(PlaneError::Config(format!("{} group registration(s) refused (bad owner key?)", cp.counters().registrations_refused)));
        }
        Ok(Plane {
            cp,
            origin,
            me_addr: addr,
            incarnation,
            buf: vec![0; MAX_DATAGRAM],
            ip_id: incarnation as u16,
            probes: BTreeMap::new(),
            next_seq: 0,
            probe_timeout,
            control_port: port,
            pending: Vec::new(),
            counters: PlaneCounters::default(),
        })
    }

    /// The machines' clock.
    pub fn now(&self) -> Instant {
        Instant::from_nanos(self.origin.elapsed().as_nanos() as u64)
    }

    fn wall() -> UnixTime {
        UnixTime(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0))
    }

    /// A punted control datagram (whole Ethernet frame). Malformed frames
    /// are counted and dropped; the gate authenticates the rest.
    pub fn datagram(&mut self, frame: &[u8]) {
        let Some((src, _dst, payload)) = parse_udp(frame) else {
            self.counters.rx_malformed += 1;
            return;
        };
        self.counters.rx_datagrams += 1;
        let now = self.now();
        self.cp.handle_datagram(now, Self::wall(), src, payload);
    }

    /// A punted frame that may answer one of our probes (an echo reply,
    /// or TCP to the control port); false if it is neither (the caller
    /// passes it on to the kernel).
    pub fn probe_reply(&mut self, frame: &[u8]) -> bool {
        if let Some((src, seq)) = parse_echo_reply(frame, self.me_addr) {
            // Only the probed host's reply counts: a reply from anyone else
            // (a guessed sequence number) neither proves nor disproves it.
            if self.probes.get(&seq).is_some_and(|p| p.target.0 == src) {
                self.answer(seq, true);
            } else {
                self.counters.replies_unmatched += 1;
            }
            return true;
        }
        let Some(t) = parse_tcp_to(frame, SocketAddrV4::new(self.me_addr, self.control_port)) else {
            return false;
        };
        // The probe's sequence number is the SYN's, shifted: the answer
        // acknowledges it plus one.
        let seq = (t.ack.wrapping_sub(1) >> 8) as u16;
        let ours = self.probes.get(&seq).is_some_and(|p| p.target == (*t.src.ip(), t.src.port()));
        if !ours {
            self.counters.replies_unmatched += 1;
            return true;
        }
        if t.syn && t.ack_flag && !t.rst {
            // Reset the half-open connection the probe made.
            self.ip_id = self.ip_id.wrapping_add(1);
            let me = SocketAddrV4::new(self.me_addr, self.control_port);
            self.pending.push(build_tcp(me, t.src, t.ack, 0, TCP_RST, self.ip_id));
            self.answer(seq, true);
        } else if t.rst {
            self.answer(seq, false);
        } else {
            self.counters.replies_unmatched += 1;
        }
        true
    }

    /// The probe `seq` (known to be in flight) answered.
    fn answer(&mut self, seq: u16, alive: bool) {
        if let Some(p) = self.probes.remove(&seq) {
            self.counters.probes_answered += 1;
            let now = self.now();
            self.cp.handle_probe_result(now, p.id, alive);
        }
    }

    /// An event from a worker.
    pub fn event(&mut self, up: &Up) {
        let now = self.now();
        self.cp.handle_event(now, up);
    }

    /// Runs due timers and probe deadlines; appends IPv4 packets to send
    /// to `out` and worker updates to `updates`.
    pub fn poll(&mut self, out: &mut Vec<Vec<u8>>, updates: &mut Vec<Update>) {
        let now = self.now();
        if self.cp.poll_timeout().is_some_and(|t| t <= now) {
            self.cp.handle_timeout(now);
        }
        let expired: Vec<u16> = self.probes.iter().filter(|(_, p)| p.deadline <= now).map(|(s, _)| *s).collect();
        for s in expired {
            if let Some(p) = self.probes.remove(&s) {
                self.counters.probes_timed_out += 1;
                self.cp.handle_probe_result(now, p.id, false);
            }
        }
        out.append(&mut self.pending);
        let mut buf = std::mem::take(&mut self.buf);
        while let Some(t) = self.cp.poll_transmit(&mut buf) {
            let Some(payload) = buf.get(..t.len) else { continue };
            self.counters.tx_datagrams += 1;
            self.ip_id = self.ip_id.wrapping_add(1);
            out.push(build_udp(t.src, t.dst, payload, self.ip_id));
        }
        self.buf = buf;
        while let Some(p) = self.cp.poll_probe() {
            if let Some(pkt) = self.start_probe(now, &p) {
                out.push(pkt);
            }
        }
        while let Some(u) = self.cp.poll_update() {
            self.counters.updates += 1;
            updates.push(u);
        }
    }

    fn start_probe(&mut self, now: Instant, p: &HealthProbe) -> Option<Vec<u8>> {
        if self.probes.len() >= MAX_PROBES {
            self.counters.probes_refused += 1;
            self.cp.handle_probe_result(now, p.id, false);
            return None;
        }
        let mut seq = self.next_seq;
        while self.probes.contains_key(&seq) {
            seq = seq.wrapping_add(1);
        }
        self.next_seq = seq.wrapping_add(1);
        self.probes.insert(seq, InFlight { id: p.id, deadline: now + self.probe_timeout, target: (p.target.ip, p.target.port) });
        self.counters.probes_sent += 1;
        self.ip_id = self.ip_id.wrapping_add(1);
        Some(match p.kind {
            ProbeKind::TcpConnect if p.target.port != 0 => {
                let me = SocketAddrV4::new(self.me_addr, self.control_port);
                build_tcp(me, p.target.sock(), u32::from(seq) << 8, 0, TCP_SYN, self.ip_id)
            }
            _ => build_echo(self.me_addr, p.target.ip, seq, self.ip_id),
        })
    }

    /// When `poll` has work next (timers, probe deadlines).
    pub fn next_wakeup(&self) -> Option<Instant> {
        let probe = self.probes.values().map(|p| p.deadline).min();
        [self.cp.poll_timeout(), probe].into_iter().flatten().min()
    }

    /// The composed machines (inspection).
    pub fn control(&self) -> &ProxyControl {
        &self.cp
    }

    /// For `piasctl status`.
    pub fn status(&self) -> PlaneStatus {
        let cp = &self.cp;
        let st = cp.static_state();
        let proxies = st
            .proxies
            .iter()
            .map(|p| ProxyStatus { id: p.id.0, addr: p.addr.to_string(), cluster: p.cluster.0, up: p.up })
            .collect();
        let mut targets = BTreeMap::new();
        let mut rap_of = Vec::new();
        let mut rap_japs = BTreeMap::new();
        for g in &st.groups {
            if !g.targets.is_empty() {
                targets.insert(g.group.to_string(), g.targets.iter().map(|t| format!("{}:{}{}", t.addr.ip, t.addr.port, if t.alive { "" } else { " (dead)" })).collect());
            }
            if g.raps.contains(&st.me) {
                rap_of.push(g.group.to_string());
                rap_japs.insert(g.group.to_string(), cp.rap().japs(&g.group).iter().map(|(j, _)| j.0).collect());
            }
        }
        let now = self.now();
        let iap_cache = cp
            .registry()
            .iter()
            .filter_map(|(g, _)| Some((g.to_string(), cp.iap().cached(g, now)?.as_slice().iter().map(|p| p.0).collect())))
            .collect();
        let gate = cp.gate().counters();
        PlaneStatus {
            me: st.me.0,
            incarnation: self.incarnation,
            proxies,
            groups: cp.registry().iter().map(|(g, _)| g.to_string()).collect(),
            targets,
            rap_of,
            rap_japs,
            iap_cache,
            rejected: gate.iter().filter(|(_, v)| *v > 0).map(|(k, v)| (k.to_string(), v)).collect(),
            accepted: gate.accepted(),
            driver: self.counters.clone(),
            counters: self.machine_counters(),
        }
    }

    fn machine_counters(&self) -> BTreeMap<String, u64> {
        let (j, i, r, m) = (self.cp.jap().counters(), self.cp.iap().counters(), self.cp.rap().counters(), self.cp.membership().counters());
        [
            ("jap.joins", j.joins),
            ("jap.refreshes", j.refreshes),
            ("jap.leaves", j.leaves),
            ("jap.expired", j.expired),
            ("jap.nack_unknown_group", j.nack_unknown_group),
            ("jap.nack_bad_target", j.nack_bad_target),
            ("jap.probes", j.probes),
            ("jap.probe_failures", j.probe_failures),
            ("jap.targets_died", j.targets_died),
            ("jap.targets_revived", j.targets_revived),
            ("jap.reports", j.reports),
            ("jap.invalidations", j.invalidations),
            ("rap.reports", r.reports),
            ("rap.acks", r.acks),
            ("rap.queries", r.queries),
            ("rap.lists", r.lists),
            ("iap.misses", i.misses),
            ("iap.queries", i.queries),
            ("iap.lists", i.lists),
            ("iap.invalidations", i.invalidations),
            ("iap.exhausted", i.exhausted),
            ("membership.adjacencies_up", m.adjacencies_up),
            ("membership.declared_down", m.declared_down),
            ("membership.lsa_installed", m.lsa_installed),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// The IPv4 header of a punted frame: (header bytes, offset of the
/// payload, protocol, src, dst), only if it is an unfragmented IPv4 packet
/// whose header checksum verifies and whose length fits the frame.
fn ipv4_of(frame: &[u8]) -> Option<(&[u8], IpProtocol, Ipv4Addr, Ipv4Addr)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::Ipv4 {
        return None;
    }
    let l3 = frame.get(eth.header_len()..)?;
    let ip = pias_dataplane::wire::Ipv4Packet::new_checked(l3).ok()?;
    if !ip.verify_checksum() || ip.is_fragment() {
        return None;
    }
    let (proto, src, dst) = (ip.protocol(), ip.src_addr(), ip.dst_addr());
    let body = l3.get(ip.header_len()..usize::from(ip.total_len()))?;
    Some((body, proto, src, dst))
}

/// `(source, destination, payload)` of a punted UDP datagram with a valid
/// (or absent) checksum.
fn parse_udp(frame: &[u8]) -> Option<(SocketAddrV4, SocketAddrV4, &[u8])> {
    let (body, proto, src, dst) = ipv4_of(frame)?;
    if proto != IpProtocol::Udp {
        return None;
    }
    let udp = pias_dataplane::wire::UdpPacket::new_checked(body).ok()?;
    if udp.checksum() != 0 && !udp.verify_checksum(src, dst) {
        return None;
    }
    let len = usize::from(udp.len());
    let payload = body.get(8..len)?;
    Some((SocketAddrV4::new(src, udp.src_port()), SocketAddrV4::new(dst, udp.dst_port()), payload))
}

/// `(source, sequence)` of an echo reply to this proxy's probe identifier.
fn parse_echo_reply(frame: &[u8], me: Ipv4Addr) -> Option<(Ipv4Addr, u16)> {
    let (body, proto, src, dst) = ipv4_of(frame)?;
    if proto != IpProtocol::Icmp || dst != me {
        return None;
    }
    let icmp = pias_dataplane::wire::Icmpv4Packet::new_checked(body).ok()?;
    if body.first() != Some(&0) || icmp.msg_code() != 0 || !icmp.verify_checksum() || icmp.echo_ident() != PROBE_IDENT {
        return None;
    }
    Some((src, icmp.echo_seq_no()))
}

fn ipv4_header(out: &mut Vec<u8>, src: Ipv4Addr, dst: Ipv4Addr, proto: u8, body_len: usize, id: u16) {
    let total = (20 + body_len) as u16;
    out.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0]);
    out[2..4].copy_from_slice(&total.to_be_bytes());
    out[4..6].copy_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
    let c = !checksum::data(&out[..20]);
    out[10..12].copy_from_slice(&c.to_be_bytes());
}

/// An IPv4/UDP packet (DF set: control datagrams fit every path, and a
/// fragment would be refused at the receiving proxy).
pub fn build_udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8], id: u16) -> Vec<u8> {
    let ulen = 8 + payload.len();
    let mut p = Vec::with_capacity(20 + ulen);
    ipv4_header(&mut p, *src.ip(), *dst.ip(), 17, ulen, id);
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&(ulen as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    let ph = checksum::pseudo_header_v4(*src.ip(), *dst.ip(), IpProtocol::Udp, ulen as u16);
    let mut c = !checksum::combine(&[ph, checksum::data(&p[20..])]);
    if c == 0 {
        c = 0xffff;
    }
    p[26..28].copy_from_slice(&c.to_be_bytes());
    p
}

/// TCP flags of the probes.
pub const TCP_SYN: u8 = 0x02;
/// Reset.
pub const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// The parts of a TCP segment a probe answer is judged by.
struct TcpFacts {
    src: SocketAddrV4,
    ack: u32,
    syn: bool,
    rst: bool,
    ack_flag: bool,
}

/// A TCP segment to `to` with a valid checksum.
fn parse_tcp_to(frame: &[u8], to: SocketAddrV4) -> Option<TcpFacts> {
    let (body, proto, src, dst) = ipv4_of(frame)?;
    if proto != IpProtocol::Tcp || dst != *to.ip() {
        return None;
    }
    let tcp = pias_dataplane::wire::TcpPacket::new_checked(body).ok()?;
    if tcp.dst_port() != to.port() || !tcp.verify_checksum(src, dst) {
        return None;
    }
    Some(TcpFacts {
        src: SocketAddrV4::new(src, tcp.src_port()),
        ack: tcp.ack_number(),
        syn: tcp.syn(),
        rst: tcp.rst(),
        ack_flag: tcp.ack(),
    })
}

/// A bare TCP segment (SYN or RST) with the given numbers.
pub fn build_tcp(src: SocketAddrV4, dst: SocketAddrV4, seq: u32, ack: u32, flags: u8, id: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(40);
    ipv4_header(&mut p, *src.ip(), *dst.ip(), 6, 20, id);
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ack.to_be_bytes());
    let flags = if ack != 0 { flags | TCP_ACK } else { flags };
    p.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    let ph = checksum::pseudo_header_v4(*src.ip(), *dst.ip(), IpProtocol::Tcp, 20);
    let c = !checksum::combine(&[ph, checksum::data(&p[20..])]);
    p[36..38].copy_from_slice(&c.to_be_bytes());
    p
}

/// An ICMP echo request with this proxy's probe identifier.
pub fn build_echo(src: Ipv4Addr, dst: Ipv4Addr, seq: u16, id: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(20 + 16);
    ipv4_header(&mut p, src, dst, 1, 16, id);
    p.extend_from_slice(&[8, 0, 0, 0]);
    p.extend_from_slice(&PROBE_IDENT.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(b"pias-hc\0");
    let c = !checksum::data(&p[20..]);
    p[22..24].copy_from_slice(&c.to_be_bytes());
    p
}

/// Frames waiting for a neighbour's MAC, oldest first, bounded.
#[derive(Default)]
pub struct Held {
    q: VecDeque<(std::time::Instant, u16, Ipv4Addr, Vec<u8>)>,
}

/// Most packets held for address resolution.
pub const MAX_HELD: usize = 256;
/// How long a packet waits for address resolution.
pub const HOLD_FOR: Duration = Duration::from_secs(2);

impl Held {
    /// Holds `pkt` for `(port, next_hop)`; false if full.
    pub fn hold(&mut self, port: u16, nh: Ipv4Addr, pkt: Vec<u8>) -> bool {
        if self.q.len() >= MAX_HELD {
            return false;
        }
        self.q.push_back((std::time::Instant::now(), port, nh, pkt));
        true
    }

    /// Takes every packet whose next hop `resolved` now knows, and returns
    /// how many expired unsent.
    pub fn release(&mut self, mut resolved: impl FnMut(u16, Ipv4Addr) -> bool, out: &mut Vec<(u16, Ipv4Addr, Vec<u8>)>) -> usize {
        let mut expired = 0;
        let mut keep = VecDeque::with_capacity(self.q.len());
        for (t, port, nh, pkt) in self.q.drain(..) {
            if resolved(port, nh) {
                out.push((port, nh, pkt));
            } else if t.elapsed() > HOLD_FOR {
                expired += 1;
            } else {
                keep.push_back((t, port, nh, pkt));
            }
        }
        self.q = keep;
        expired
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.q.len()
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(ip: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
        f.extend_from_slice(ip);
        f
    }

    #[test]
    fn udp_round_trips_through_the_parser() {
        let s = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), 7450);
        let d = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 10), 7450);
        let p = build_udp(s, d, b"hello", 7);
        let f = eth(&p);
        let (ps, pd, pl) = parse_udp(&f).unwrap();
        assert_eq!((ps, pd, pl), (s, d, &b"hello"[..]));
        // Independent check of both checksums.
        let ip = etherparse::Ipv4HeaderSlice::from_slice(&p).unwrap();
        assert_eq!(ip.header_checksum(), ip.to_header().calc_header_checksum());
        let udp = etherparse::UdpHeaderSlice::from_slice(&p[20..]).unwrap();
        assert_eq!(udp.checksum(), udp.to_header().calc_checksum_ipv4(&ip.to_header(), b"hello").unwrap());
    }

    #[test]
    fn corrupt_or_truncated_datagrams_are_refused() {
        let s = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), 7450);
        let d = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 20), 7450);
        let f = eth(&build_udp(s, d, b"payload", 1));
        for cut in 0..f.len() {
            assert!(parse_udp(&f[..cut]).is_none(), "accepted a cut at {cut}");
        }
        for i in 14..f.len() {
            let mut g = f.clone();
            g[i] ^= 0x01;
            if let Some((_, _, pl)) = parse_udp(&g) {
                // Only a flip the checksums cannot see may pass (none here
                // except in the payload, which the UDP checksum covers).
                panic!("accepted a flipped bit at {i}: {pl:?}");
            }
        }
    }

    #[test]
    fn echo_replies_match_only_our_ident_and_address() {
        let me = Ipv4Addr::new(192, 0, 2, 10);
        let t = Ipv4Addr::new(203, 0, 113, 5);
        let mut req = build_echo(me, t, 42, 9);
        // Turn it into the target's reply.
        req[12..16].copy_from_slice(&t.octets());
        req[16..20].copy_from_slice(&me.octets());
        req[10..12].copy_from_slice(&[0, 0]);
        let c = !checksum::data(&req[..20]);
        req[10..12].copy_from_slice(&c.to_be_bytes());
        req[20] = 0;
        req[22..24].copy_from_slice(&[0, 0]);
        let c = !checksum::data(&req[20..]);
        req[22..24].copy_from_slice(&c.to_be_bytes());
        assert_eq!(parse_echo_reply(&eth(&req), me), Some((t, 42)));
        assert_eq!(parse_echo_reply(&eth(&req), Ipv4Addr::new(192, 0, 2, 11)), None);
        let mut other = req.clone();
        other[24] ^= 1; // another identifier (checksum now wrong too)
        assert_eq!(parse_echo_reply(&eth(&other), me), None);
    }

    #[test]
    fn tcp_probe_answers_match_by_acknowledgement() {
        let me = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), 7450);
        let t = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 5), 80);
        let syn = build_tcp(me, t, 7 << 8, 0, TCP_SYN, 1);
        let h = etherparse::TcpHeaderSlice::from_slice(&syn[20..]).unwrap();
        assert!(h.syn() && !h.ack() && h.sequence_number() == 7 << 8);
        let ip = etherparse::Ipv4HeaderSlice::from_slice(&syn).unwrap();
        assert_eq!(h.checksum(), h.to_header().calc_checksum_ipv4(&ip.to_header(), &[]).unwrap());
        // The target's SYN-ACK and RST both acknowledge seq + 1.
        let synack = build_tcp(t, me, 99, (7 << 8) + 1, TCP_SYN, 2);
        let f = parse_tcp_to(&eth(&synack), me).unwrap();
        assert!(f.syn && f.ack_flag && !f.rst);
        assert_eq!((f.ack.wrapping_sub(1) >> 8) as u16, 7);
        assert_eq!(f.src, t);
        let rst = build_tcp(t, me, 0, (7 << 8) + 1, TCP_RST, 3);
        let f = parse_tcp_to(&eth(&rst), me).unwrap();
        assert!(f.rst && !f.syn);
        // Not to the control port, or a bad checksum: not ours.
        assert!(parse_tcp_to(&eth(&synack), SocketAddrV4::new(*me.ip(), 7451)).is_none());
        let mut bad = synack.clone();
        bad[30] ^= 1;
        assert!(parse_tcp_to(&eth(&bad), me).is_none());
    }

    proptest::proptest! {
        /// Whatever a worker punts, the parsers neither panic nor accept a
        /// frame whose checksums fail.
        #[test]
        fn parsers_survive_any_frame(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let me = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), 7450);
            let _ = parse_udp(&bytes);
            let _ = parse_echo_reply(&bytes, *me.ip());
            let _ = parse_tcp_to(&bytes, me);
        }

        /// What the driver builds, it parses back, for any payload.
        #[test]
        fn built_datagrams_parse_back(payload in proptest::collection::vec(proptest::num::u8::ANY, 0..1400), id in 0u16.., sport in 1u16.., dport in 1u16..) {
            let s = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), sport);
            let d = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 5), dport);
            let f = eth(&build_udp(s, d, &payload, id));
            let (ps, pd, pl) = parse_udp(&f).expect("own datagram refused");
            proptest::prop_assert_eq!((ps, pd, pl), (s, d, &payload[..]));
        }
    }

    #[test]
    fn boot_count_increments_and_survives() {
        let dir = std::env::temp_dir().join(format!("piasd-boot-{}", std::process::id()));
        let f = dir.join("boot");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(next_boot_count(&f).unwrap(), 1);
        assert_eq!(next_boot_count(&f).unwrap(), 2);
        std::fs::write(&f, "junk").unwrap();
        let e = next_boot_count(&f).unwrap_err().to_string();
        assert!(e.contains("expected a boot count"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn secrets_must_be_long_hex() {
        let dir = std::env::temp_dir().join(format!("piasd-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("k");
        std::fs::write(&f, "abcd\n").unwrap();
        assert!(read_secret(&f).unwrap_err().to_string().contains("at least 32"));
        std::fs::write(&f, "zz").unwrap();
        assert!(read_secret(&f).unwrap_err().to_string().contains("hex"));
        std::fs::write(&f, "ab".repeat(32) + "\n").unwrap();
        assert_eq!(read_secret(&f).unwrap(), vec![0xab; 32]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn held_packets_wait_then_expire() {
        let mut h = Held::default();
        let nh = Ipv4Addr::new(192, 0, 2, 20);
        assert!(h.hold(0, nh, vec![1]));
        let mut out = Vec::new();
        assert_eq!(h.release(|_, _| false, &mut out), 0);
        assert_eq!(h.len(), 1);
        assert_eq!(h.release(|p, a| p == 0 && a == nh, &mut out), 0);
        assert_eq!(out.len(), 1);
        assert!(h.is_empty());
        for _ in 0..MAX_HELD {
            assert!(h.hold(0, nh, vec![]));
        }
        assert!(!h.hold(0, nh, vec![]));
    }
}
