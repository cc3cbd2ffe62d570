//! piasd's YAML configuration: what is read, how it is checked, and the
//! errors an operator sees.
//!
//! Reading is two steps. Serde turns the YAML into [`raw`] structs of plain
//! values (unknown keys are refused, so a typo never silently disables a
//! setting); [`Config::from_raw`] then checks meaning (addresses, ranges,
//! cross-references) and builds the typed [`Config`]. Every error names the
//! file, the key path (`ports[0].address`) and what was expected, so an
//! operator can fix the file without reading our code (DESIGN.md §4).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use pias_dataplane::flow::PortRange;
use pias_dataplane::pipeline::PathConfig;
use pias_dataplane::tables::{LocalTarget, RttEntry, StaticState, Tables};
use pias_dataplane::types::{
    ClusterId, Criterion, GroupAddr, GroupOptions, Ipv4Prefix, JapLoad, ProxyId, ProxyInfo, TargetAddr,
};

/// A configuration that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The file could not be read.
    Io {
        /// The config file.
        file: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The YAML is not well-formed, or a value has the wrong type/shape.
    Syntax {
        /// The config file.
        file: PathBuf,
        /// Key path where parsing stopped (`.` for the document root).
        key: String,
        /// The parser's description, with line and column where known.
        reason: String,
    },
    /// A well-formed value that does not make sense.
    Invalid {
        /// The config file.
        file: PathBuf,
        /// Key path of the offending value.
        key: String,
        /// What was expected there.
        expected: String,
        /// What was found.
        found: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { file, reason } => {
                write!(f, "{}: cannot read: {reason}", file.display())
            }
            ConfigError::Syntax { file, key, reason } => {
                write!(f, "{}: key `{key}`: {reason}", file.display())
            }
            ConfigError::Invalid { file, key, expected, found } => write!(
                f,
                "{}: key `{key}`: expected {expected}, found {found}",
                file.display()
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The serde layer: plain values as written in the file.
pub mod raw {
    use serde::Deserialize;

    /// The whole file.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Config {
        /// DPDK EAL settings.
        pub eal: Eal,
        /// Number of worker (poll-mode) lcores.
        pub workers: u16,
        /// The lcore of the control core (default: EAL's main lcore).
        #[serde(default)]
        pub control_lcore: Option<u32>,
        /// The proxy's ports.
        pub ports: Vec<Port>,
        /// Anycast service settings.
        pub anycast: Anycast,
        /// Packet buffer pool.
        #[serde(default)]
        pub mempool: Mempool,
        /// Prometheus exporter.
        #[serde(default)]
        pub metrics: Option<Metrics>,
        /// The operator control socket (piasctl).
        pub control_socket: String,
        /// Seconds between ARP refreshes of the gateway and neighbours.
        #[serde(default)]
        pub arp_refresh_s: Option<u32>,
        /// Microseconds a worker sleeps after a poll that found nothing
        /// (0: never; dedicated cores). For shared cores: labs, CI, VMs.
        #[serde(default)]
        pub idle_sleep_us: Option<u32>,
        /// The PIAS service: this proxy, its peers, groups (static state).
        #[serde(default)]
        pub pias: Option<Pias>,
    }

    /// The PIAS section: what the control plane fills at run time, given
    /// statically (carriers pinning groups; labs before the control plane).
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Pias {
        /// This proxy's id (must be in `proxies`).
        pub me: u32,
        /// Every proxy of the proxy group, this one included.
        pub proxies: Vec<Proxy>,
        /// Measured RTTs between clusters.
        #[serde(default)]
        pub rtt: Vec<Rtt>,
        /// Groups.
        #[serde(default)]
        pub groups: Vec<Group>,
        /// NAT settings of the JAP.
        #[serde(default)]
        pub nat: Option<Nat>,
        /// Tunnel settings.
        #[serde(default)]
        pub tunnel: Option<Tunnel>,
        /// UDP port of the PIAS control protocol.
        #[serde(default)]
        pub control_port: Option<u16>,
        /// Run the PIAS control plane: membership, joins, RAPs, caches are
        /// learned at run time instead of pinned here.
        #[serde(default)]
        pub control: Option<Control>,
    }

    /// The control plane's settings (`pias.control`).
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Control {
        /// File holding the proxy-group secret (hex, ≥ 32 bytes).
        pub key_file: String,
        /// Id of that key (0..=255; rotations add a second id).
        #[serde(default)]
        pub key_id: Option<u8>,
        /// File holding the boot count (read, incremented, written back at
        /// every start: the replay protection of this proxy's messages).
        pub boot_file: String,
        /// Other proxies to say hello to until they are known.
        #[serde(default)]
        pub seeds: Vec<String>,
        /// RAPs per group.
        #[serde(default)]
        pub raps_per_group: Option<usize>,
        /// Heartbeat interval in milliseconds.
        #[serde(default)]
        pub heartbeat_ms: Option<u64>,
        /// A neighbour silent for this many heartbeats is down.
        #[serde(default)]
        pub dead_multiplier: Option<u32>,
        /// Seconds between health probes of a live target.
        #[serde(default)]
        pub probe_interval_s: Option<u64>,
        /// Milliseconds between the probes of a target that failed one.
        #[serde(default)]
        pub probe_retry_ms: Option<u64>,
        /// Failed probes in a row that make a target dead.
        #[serde(default)]
        pub probe_dead_after: Option<u8>,
        /// Milliseconds an IAP waits for a RAP's JAP list after a miss
        /// before it queries another RAP.
        #[serde(default)]
        pub query_delay_ms: Option<u64>,
        /// Operator's Ed25519 public key (hex): group registrations signed
        /// by it are accepted over the network.
        #[serde(default)]
        pub operator_key: Option<String>,
    }

    /// A proxy.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Proxy {
        /// Id, unique in the proxy group.
        pub id: u32,
        /// Unicast address (tunnel endpoint).
        pub address: String,
        /// POP cluster.
        pub cluster: u16,
        /// Believed up (default true).
        #[serde(default)]
        pub up: Option<bool>,
    }

    /// An RTT between two clusters.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Rtt {
        /// One cluster.
        pub a: u16,
        /// The other.
        pub b: u16,
        /// Microseconds.
        pub rtt_us: u32,
    }

    /// A group.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Group {
        /// `198.51.100.10:80/tcp`, `198.51.100.10:53/udp` or `198.51.100.20/ip`.
        pub group: String,
        /// proximity | load | random | weighted.
        #[serde(default)]
        pub criterion: Option<String>,
        /// Connection affinity.
        #[serde(default)]
        pub affinity: bool,
        /// No RAPs: JAPs flooded to every proxy.
        #[serde(default)]
        pub rapless: bool,
        /// The group's RAPs (proxy ids), ranked.
        #[serde(default)]
        pub raps: Vec<u32>,
        /// This proxy's RAP view: JAPs with approximate target counts.
        #[serde(default)]
        pub japs: Vec<Jap>,
        /// RAP-less groups: the JAPs every proxy chooses from.
        #[serde(default)]
        pub flooded: Vec<Jap>,
        /// This proxy's local targets (`203.0.113.5:80`; port 0 for whole-IP).
        #[serde(default)]
        pub targets: Vec<Target>,
        /// A JAP list pinned in this proxy's IAP cache (proxy ids).
        #[serde(default)]
        pub cache: Vec<u32>,
        /// With `pias.control`: the group owner's Ed25519 public key (hex);
        /// target joins must be signed by it.
        #[serde(default)]
        pub owner_key: Option<String>,
    }

    /// A JAP as a RAP sees it.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Jap {
        /// Proxy id.
        pub proxy: u32,
        /// Approximate live targets.
        #[serde(default)]
        pub targets: Option<u32>,
        /// Operator weight (criterion weighted).
        #[serde(default)]
        pub weight: Option<u16>,
    }

    /// A local target.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Target {
        /// `ip:port`.
        pub address: String,
        /// Weight (default 1).
        #[serde(default)]
        pub weight: Option<u16>,
        /// Alive (default true).
        #[serde(default)]
        pub alive: Option<bool>,
    }

    /// NAT settings.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Nat {
        /// `lo-hi`, split among the workers.
        #[serde(default)]
        pub ports: Option<String>,
        /// Flows per worker.
        #[serde(default)]
        pub max_flows: Option<usize>,
        /// UDP idle timeout (≥ 120 s, RFC 4787).
        #[serde(default)]
        pub udp_idle_s: Option<u64>,
        /// TCP established idle timeout (≥ 7440 s, RFC 5382).
        #[serde(default)]
        pub tcp_established_s: Option<u64>,
        /// TCP transitory timeout (≥ 240 s, RFC 5382).
        #[serde(default)]
        pub tcp_transitory_s: Option<u64>,
    }

    /// Tunnel settings.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Tunnel {
        /// MTU of the paths between proxies.
        #[serde(default)]
        pub mtu: Option<u16>,
        /// Clamp SYN MSS at the IAP.
        #[serde(default)]
        pub mss_clamp: Option<bool>,
        /// Outer TTL.
        #[serde(default)]
        pub ttl: Option<u8>,
    }

    /// EAL arguments, spelled out so they can be checked.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Eal {
        /// `--lcores` mapping, e.g. `"0-2"` or `"0@0,1@1"`.
        pub lcores: String,
        /// Memory in MiB (`-m`).
        #[serde(default)]
        pub memory_mb: Option<u32>,
        /// Run without hugepages (`--no-huge`).
        #[serde(default)]
        pub no_huge: bool,
        /// `--file-prefix`, so several instances can share a host.
        #[serde(default)]
        pub file_prefix: Option<String>,
        /// Virtual devices (`--vdev`).
        #[serde(default)]
        pub vdevs: Vec<String>,
        /// PCI allow-list (`-a`); when empty and `vdevs` is set, `--no-pci`.
        #[serde(default)]
        pub allow: Vec<String>,
        /// Extra EAL arguments passed verbatim.
        #[serde(default)]
        pub extra: Vec<String>,
    }

    /// One port.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Port {
        /// The DPDK device name (`net_af_packet0`, `0000:03:00.0`).
        pub device: String,
        /// The proxy's unicast address with on-link prefix, `192.0.2.10/24`.
        pub address: String,
        /// Next-hop gateway for everything not on-link.
        pub gateway: String,
        /// Other neighbours to resolve at start (proxies on-link).
        #[serde(default)]
        pub neighbours: Vec<String>,
        /// MTU (default 1500).
        #[serde(default)]
        pub mtu: Option<u16>,
        /// RX descriptors per queue.
        #[serde(default)]
        pub rx_desc: Option<u16>,
        /// TX descriptors per queue.
        #[serde(default)]
        pub tx_desc: Option<u16>,
        /// Kernel exception path.
        #[serde(default)]
        pub exception: Option<Exception>,
        /// Neighbours pinned (`ip: mac`), never aged: static ARP.
        #[serde(default)]
        pub static_neighbours: std::collections::BTreeMap<String, String>,
    }

    /// A kernel tap that mirrors the port (same MAC and address).
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Exception {
        /// The tap interface name.
        pub tap: String,
    }

    /// Anycast service settings.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Anycast {
        /// The anycast prefixes this proxy serves.
        pub prefixes: Vec<String>,
    }

    /// The mbuf pool.
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Mempool {
        /// Number of mbufs.
        #[serde(default)]
        pub mbufs: Option<u32>,
        /// Per-lcore cache.
        #[serde(default)]
        pub cache: Option<u32>,
    }

    /// The Prometheus exporter.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Metrics {
        /// `ip:port` to listen on.
        pub listen: String,
    }
}

/// EAL settings after checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalConfig {
    /// `--lcores` string.
    pub lcores: String,
    /// `-m` in MiB.
    pub memory_mb: Option<u32>,
    /// `--no-huge`.
    pub no_huge: bool,
    /// `--file-prefix`.
    pub file_prefix: Option<String>,
    /// `--vdev`s.
    pub vdevs: Vec<String>,
    /// `-a` PCI allow-list.
    pub allow: Vec<String>,
    /// Verbatim extras.
    pub extra: Vec<String>,
}

/// One port after checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// DPDK device name.
    pub device: String,
    /// The proxy's unicast address and subnet.
    pub address: Ipv4Prefix,
    /// Next hop for everything off-link.
    pub gateway: Ipv4Addr,
    /// On-link neighbours resolved at start.
    pub neighbours: Vec<Ipv4Addr>,
    /// MTU.
    pub mtu: u16,
    /// RX descriptors per queue.
    pub rx_desc: u16,
    /// TX descriptors per queue.
    pub tx_desc: u16,
    /// Kernel tap name for the exception path, if any.
    pub exception_tap: Option<String>,
    /// Static ARP entries.
    pub static_neighbours: Vec<(Ipv4Addr, [u8; 6])>,
}

/// The PIAS service settings after checking.
#[derive(Debug, Clone)]
pub struct PiasConfig {
    /// The forwarding tables' description (validated: it builds).
    pub state: StaticState,
    /// Static IAP cache pins: group → JAP ids.
    pub cache: Vec<(GroupAddr, Vec<ProxyId>)>,
    /// Packet path settings.
    pub path: PathConfig,
    /// The NAT port range (split among workers).
    pub nat_ports: PortRange,
    /// NAT flows per worker.
    pub nat_max_flows: usize,
    /// NAT timeouts.
    pub nat_udp_idle_s: u64,
    /// NAT timeouts.
    pub nat_tcp_established_s: u64,
    /// NAT timeouts.
    pub nat_tcp_transitory_s: u64,
    /// The run-time control plane, when configured.
    pub control: Option<ControlPlaneConfig>,
}

impl PartialEq for PiasConfig {
    fn eq(&self, o: &Self) -> bool {
        self.state == o.state
            && self.cache == o.cache
            && self.path == o.path
            && self.nat_ports == o.nat_ports
            && self.nat_max_flows == o.nat_max_flows
            && self.control == o.control
    }
}

/// A group registered from the config (trusted: no signature needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRegistration {
    /// The group.
    pub group: GroupAddr,
    /// Its options.
    pub options: GroupOptions,
    /// The owner's Ed25519 public key.
    pub owner_key: [u8; 32],
}

/// `pias.control` after checking. The secret itself is read at start
/// (never kept in the config struct, never printed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneConfig {
    /// The proxy-group secret's file.
    pub key_file: PathBuf,
    /// Its id.
    pub key_id: u8,
    /// The boot count's file.
    pub boot_file: PathBuf,
    /// This proxy's cluster.
    pub cluster: ClusterId,
    /// Hello targets.
    pub seeds: Vec<Ipv4Addr>,
    /// RAPs per group.
    pub raps_per_group: usize,
    /// Heartbeat interval, ms.
    pub heartbeat_ms: u64,
    /// Heartbeats missed before down.
    pub dead_multiplier: u32,
    /// Seconds between probes of a live target.
    pub probe_interval_s: u64,
    /// Milliseconds between probes after a failure.
    pub probe_retry_ms: u64,
    /// Failures in a row before a target is dead.
    pub probe_dead_after: u8,
    /// IAP: wait for a list this long before querying another RAP.
    pub query_delay_ms: u64,
    /// Operator key for network registrations.
    pub operator_key: Option<[u8; 32]>,
    /// Groups registered from this file.
    pub groups: Vec<GroupRegistration>,
}

/// Decodes hex (whitespace around it ignored).
pub fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// An Ed25519 public key as the target agent prints it (one parser for
/// both: `pias_control::keyfile`); it must be a valid curve point.
fn parse_key32(s: &str) -> Option<[u8; 32]> {
    pias_control::keyfile::parse_public(s).ok().map(|k| k.to_bytes())
}
impl Eq for PiasConfig {}

/// The whole configuration after checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where it was read from (for messages).
    pub file: PathBuf,
    /// EAL settings.
    pub eal: EalConfig,
    /// Worker lcores.
    pub workers: u16,
    /// Control lcore, if pinned.
    pub control_lcore: Option<u32>,
    /// Ports, in DPDK port order of the config.
    pub ports: Vec<PortConfig>,
    /// Anycast prefixes served.
    pub anycast: Vec<Ipv4Prefix>,
    /// Mbufs in the pool.
    pub mbufs: u32,
    /// Per-lcore mempool cache.
    pub mempool_cache: u32,
    /// Prometheus listen address.
    pub metrics_listen: Option<SocketAddr>,
    /// piasctl's unix socket.
    pub control_socket: PathBuf,
    /// Seconds between ARP refreshes.
    pub arp_refresh_s: u32,
    /// Worker sleep after an empty poll, microseconds (0 = pure polling).
    pub idle_sleep_us: u32,
    /// The PIAS service.
    pub pias: PiasConfig,
}

/// Most ports one proxy drives (each worker owns a queue on every port).
pub const MAX_PORTS: usize = 8;
/// Most worker lcores.
pub const MAX_WORKERS: u16 = 64;
/// Linux interface names are at most 15 bytes.
const IFNAMSIZ_MAX: usize = 15;

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
            file: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Config::parse(path, &text)
    }

    /// Checks `text` as if read from `file`.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let raw: raw::Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Syntax {
                file: file.to_path_buf(),
                key,
                reason: e.into_inner().to_string(),
            }
        })?;
        Config::from_raw(file, raw)
    }

    /// Checks meaning and builds the typed config.
    pub fn from_raw(file: &Path, raw: raw::Config) -> Result<Config, ConfigError> {
        let bad = |key: &str, expected: &str, found: &dyn fmt::Display| ConfigError::Invalid {
            file: file.to_path_buf(),
            key: key.to_string(),
            expected: expected.to_string(),
            found: format!("`{found}`"),
        };

        if raw.eal.lcores.trim().is_empty() {
            return Err(bad("eal.lcores", "an lcore list such as \"0-2\" or \"0@0,1@1\"", &""));
        }
        if let Some(m) = raw.eal.memory_mb {
            if !(64..=1 << 20).contains(&m) {
                return Err(bad("eal.memory_mb", "MiB between 64 and 1048576", &m));
            }
        }
        if let Some(p) = &raw.eal.file_prefix {
            if p.is_empty() || p.contains('/') || p.contains(char::is_whitespace) {
                return Err(bad("eal.file_prefix", "a non-empty name without '/' or spaces", p));
            }
        }
        for (i, v) in raw.eal.vdevs.iter().enumerate() {
            if v.is_empty() || v.starts_with('-') {
                return Err(bad(&format!("eal.vdevs[{i}]"), "a device spec like net_af_packet0,iface=veth0", v));
            }
        }
        if raw.workers == 0 || raw.workers > MAX_WORKERS {
            return Err(bad("workers", &format!("a worker count 1..={MAX_WORKERS}"), &raw.workers));
        }
        if raw.ports.is_empty() || raw.ports.len() > MAX_PORTS {
            return Err(bad("ports", &format!("1..={MAX_PORTS} ports"), &format!("{} ports", raw.ports.len())));
        }

        let mut ports = Vec::with_capacity(raw.ports.len());
        for (i, p) in raw.ports.iter().enumerate() {
            let key = |k: &str| format!("ports[{i}].{k}");
            if p.device.is_empty() {
                return Err(bad(&key("device"), "a DPDK device name such as net_af_packet0", &p.device));
            }
            if ports.iter().any(|q: &PortConfig| q.device == p.device) {
                return Err(bad(&key("device"), "a device not already used by another port", &p.device));
            }
            let address: Ipv4Prefix = p
                .address
                .parse()
                .map_err(|_| bad(&key("address"), "an IPv4 address with prefix such as 192.0.2.10/24", &p.address))?;
            if address.len == 0 || address.len > 32 || address.addr.is_unspecified() || address.addr.is_multicast() || address.addr.is_broadcast() {
                return Err(bad(&key("address"), "a unicast IPv4 address with prefix length 1..=32", &p.address));
            }
            if address.len < 31 && (address.addr == address.network() || address.addr == address.broadcast()) {
                return Err(bad(&key("address"), "a host address, not the subnet's network or broadcast address", &p.address));
            }
            let gateway: Ipv4Addr = p
                .gateway
                .parse()
                .map_err(|_| bad(&key("gateway"), "an IPv4 address", &p.gateway))?;
            if !address.contains(gateway) || gateway == address.addr {
                return Err(bad(&key("gateway"), &format!("an on-link address in {address} other than the port's own"), &p.gateway));
            }
            let mut neighbours = Vec::with_capacity(p.neighbours.len());
            for (j, n) in p.neighbours.iter().enumerate() {
                let ip: Ipv4Addr = n
                    .parse()
                    .map_err(|_| bad(&format!("ports[{i}].neighbours[{j}]"), "an IPv4 address", n))?;
                if !address.contains(ip) || ip == address.addr {
                    return Err(bad(&format!("ports[{i}].neighbours[{j}]"), &format!("an on-link address in {address}"), n));
                }
                neighbours.push(ip);
            }
            let mtu = p.mtu.unwrap_or(1500);
            if !(576..=9000).contains(&mtu) {
                return Err(bad(&key("mtu"), "an MTU between 576 and 9000", &mtu));
            }
            let desc = |k: &str, v: Option<u16>| -> Result<u16, ConfigError> {
                let v = v.unwrap_or(1024);
                if !(64..=8192).contains(&v) || !v.is_power_of_two() {
                    return Err(bad(&key(k), "a power of two between 64 and 8192", &v));
                }
                Ok(v)
            };
            let rx_desc = desc("rx_desc", p.rx_desc)?;
            let tx_desc = desc("tx_desc", p.tx_desc)?;
            let exception_tap = match &p.exception {
                None => None,
                Some(e) => {
                    let t = &e.tap;
                    if t.is_empty() || t.len() > IFNAMSIZ_MAX || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') {
                        return Err(bad(&key("exception.tap"), "an interface name of 1..=15 letters, digits, '-', '_' or '.'", t));
                    }
                    Some(t.clone())
                }
            };
            let mut static_neighbours = Vec::new();
            for (ip_s, mac_s) in &p.static_neighbours {
                let k = format!("ports[{i}].static_neighbours.{ip_s}");
                let ip: Ipv4Addr = ip_s.parse().map_err(|_| bad(&k, "an IPv4 address as the key", ip_s))?;
                if !address.contains(ip) || ip == address.addr {
                    return Err(bad(&k, &format!("an on-link address in {address}"), ip_s));
                }
                let mac = parse_mac(mac_s).ok_or_else(|| bad(&k, "a unicast MAC like 02:00:00:00:00:01", mac_s))?;
                static_neighbours.push((ip, mac));
            }
            ports.push(PortConfig {
                device: p.device.clone(),
                address,
                gateway,
                neighbours,
                mtu,
                rx_desc,
                tx_desc,
                exception_tap,
                static_neighbours,
            });
        }
        for (i, p) in ports.iter().enumerate() {
            if let Some(t) = &p.exception_tap {
                if ports[..i].iter().any(|q| q.exception_tap.as_ref() == Some(t)) {
                    return Err(bad(&format!("ports[{i}].exception.tap"), "a tap name not used by another port", t));
                }
            }
            if ports[..i].iter().any(|q| q.address.addr == p.address.addr) {
                return Err(bad(&format!("ports[{i}].address"), "an address not used by another port", &p.address));
            }
        }

        if raw.anycast.prefixes.is_empty() {
            return Err(bad("anycast.prefixes", "at least one anycast prefix such as 198.51.100.0/24", &"[]"));
        }
        let mut anycast = Vec::with_capacity(raw.anycast.prefixes.len());
        for (i, s) in raw.anycast.prefixes.iter().enumerate() {
            let key = format!("anycast.prefixes[{i}]");
            let p: Ipv4Prefix = s
                .parse()
                .map_err(|_| bad(&key, "an IPv4 prefix such as 198.51.100.0/24", s))?;
            if p.addr != p.network() {
                return Err(bad(&key, &format!("a prefix with no host bits set ({}/{})", p.network(), p.len), s));
            }
            if p.len < 8 {
                return Err(bad(&key, "a prefix length of at least 8", s));
            }
            if let Some(port) = ports.iter().find(|q| p.contains(q.address.addr)) {
                return Err(bad(&key, &format!("a prefix that does not contain a port's unicast address ({})", port.address.addr), s));
            }
            anycast.push(p);
        }

        let mbufs = raw.mempool.mbufs.unwrap_or(16383);
        if !(1023..=(1 << 24)).contains(&mbufs) {
            return Err(bad("mempool.mbufs", "a count between 1023 and 16777216", &mbufs));
        }
        let mempool_cache = raw.mempool.cache.unwrap_or(256);
        if mempool_cache > 512 || u64::from(mempool_cache) > u64::from(mbufs) / 2 {
            return Err(bad("mempool.cache", "a per-lcore cache of at most 512 and at most half the mbufs", &mempool_cache));
        }
        let metrics_listen = match &raw.metrics {
            None => None,
            Some(m) => Some(
                m.listen
                    .parse::<SocketAddr>()
                    .map_err(|_| bad("metrics.listen", "an ip:port such as 127.0.0.1:9464", &m.listen))?,
            ),
        };
        if raw.control_socket.is_empty() || !raw.control_socket.starts_with('/') || raw.control_socket.len() > 107 {
            return Err(bad("control_socket", "an absolute path of at most 107 bytes", &raw.control_socket));
        }
        let arp_refresh_s = raw.arp_refresh_s.unwrap_or(30);
        if !(1..=3600).contains(&arp_refresh_s) {
            return Err(bad("arp_refresh_s", "seconds between 1 and 3600", &arp_refresh_s));
        }

        let idle_sleep_us = raw.idle_sleep_us.unwrap_or(0);
        if idle_sleep_us > 100_000 {
            return Err(bad("idle_sleep_us", "microseconds between 0 and 100000", &idle_sleep_us));
        }

        let pias = pias_from_raw(file, raw.pias.as_ref(), &ports, &anycast, raw.workers)?;

        Ok(Config {
            file: file.to_path_buf(),
            eal: EalConfig {
                lcores: raw.eal.lcores,
                memory_mb: raw.eal.memory_mb,
                no_huge: raw.eal.no_huge,
                file_prefix: raw.eal.file_prefix,
                vdevs: raw.eal.vdevs,
                allow: raw.eal.allow,
                extra: raw.eal.extra,
            },
            workers: raw.workers,
            control_lcore: raw.control_lcore,
            ports,
            anycast,
            mbufs,
            mempool_cache,
            metrics_listen,
            control_socket: PathBuf::from(raw.control_socket),
            arp_refresh_s,
            idle_sleep_us,
            pias,
        })
    }

    /// The EAL argument list (without argv\[0\]), including one `net_tap`
    /// vdev per port with an exception path. Tap vdevs are named
    /// `net_tap_pias<i>` after the port index `i`.
    pub fn eal_args(&self) -> Vec<String> {
        let e = &self.eal;
        let mut a = vec!["--lcores".to_string(), e.lcores.clone()];
        if let Some(l) = self.control_lcore {
            a.push("--main-lcore".into());
            a.push(l.to_string());
        }
        if let Some(m) = e.memory_mb {
            a.push("-m".into());
            a.push(m.to_string());
        }
        if e.no_huge {
            a.push("--no-huge".into());
        }
        if let Some(p) = &e.file_prefix {
            a.push("--file-prefix".into());
            a.push(p.clone());
        }
        for v in &e.vdevs {
            a.push("--vdev".into());
            a.push(v.clone());
        }
        for (i, p) in self.ports.iter().enumerate() {
            if let Some(t) = &p.exception_tap {
                a.push("--vdev".into());
                a.push(format!("{},iface={t}", tap_device_name(i)));
            }
        }
        if e.allow.is_empty() {
            a.push("--no-pci".into());
        } else {
            for d in &e.allow {
                a.push("-a".into());
                a.push(d.clone());
            }
        }
        a.extend(e.extra.iter().cloned());
        a
    }
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut it = s.split(':');
    for b in &mut m {
        *b = u8::from_str_radix(it.next()?, 16).ok()?;
    }
    if it.next().is_some() || m[0] & 1 != 0 || m == [0; 6] {
        return None;
    }
    Some(m)
}

/// Parses `198.51.100.10:80/tcp`, `198.51.100.10:53/udp` or
/// `198.51.100.20/ip`.
pub fn parse_group(s: &str) -> Option<GroupAddr> {
    s.parse().ok()
}

/// Builds and checks the PIAS section. Without one, the proxy is alone
/// (id 0 at its first port's address) and serves no group.
fn pias_from_raw(
    file: &Path,
    raw: Option<&raw::Pias>,
    ports: &[PortConfig],
    anycast: &[Ipv4Prefix],
    workers: u16,
) -> Result<PiasConfig, ConfigError> {
    let bad = |key: &str, expected: &str, found: &dyn fmt::Display| ConfigError::Invalid {
        file: file.to_path_buf(),
        key: key.to_string(),
        expected: expected.to_string(),
        found: format!("`{found}`"),
    };
    let Some(raw) = raw else {
        let mut state = StaticState::new(ProxyId(0));
        state.anycast = anycast.to_vec();
        state.proxies.push(ProxyInfo { id: ProxyId(0), addr: ports[0].address.addr, cluster: ClusterId(0), up: true });
        return Ok(PiasConfig {
            state,
            cache: Vec::new(),
            path: PathConfig::default(),
            nat_ports: PortRange { lo: 1024, hi: 65535 },
            nat_max_flows: 1 << 16,
            nat_udp_idle_s: 300,
            nat_tcp_established_s: 7440,
            nat_tcp_transitory_s: 240,
            control: None,
        });
    };
    let mut state = StaticState::new(ProxyId(raw.me));
    state.anycast = anycast.to_vec();
    for (i, p) in raw.proxies.iter().enumerate() {
        let addr: Ipv4Addr = p.address.parse().map_err(|_| bad(&format!("pias.proxies[{i}].address"), "an IPv4 address", &p.address))?;
        state.proxies.push(ProxyInfo { id: ProxyId(p.id), addr, cluster: ClusterId(p.cluster), up: p.up.unwrap_or(true) });
    }
    if let Some(me) = state.proxies.iter().find(|p| p.id == state.me) {
        if !ports.iter().any(|pc| pc.address.addr == me.addr) {
            return Err(bad("pias.me", "the id of a proxy whose address is one of this host's port addresses", &raw.me));
        }
    }
    for r in &raw.rtt {
        state.rtt.push(RttEntry { a: ClusterId(r.a), b: ClusterId(r.b), rtt_us: r.rtt_us });
    }
    let control = match &raw.control {
        Some(c) => Some(control_from_raw(file, raw, c, &state)?),
        None => None,
    };
    if control.is_some() {
        // The control plane publishes the tables: the workers start with
        // this proxy alone and learn the rest.
        state.proxies.retain(|p| p.id == state.me);
        state.rtt.clear();
    }
    let mut cache: Vec<(GroupAddr, Vec<ProxyId>)> = Vec::new();
    for (i, g) in raw.groups.iter().enumerate().filter(|_| control.is_none()) {
        let key = |k: &str| format!("pias.groups[{i}].{k}");
        let group = parse_group(&g.group)
            .ok_or_else(|| bad(&key("group"), "198.51.100.10:80/tcp, 198.51.100.10:53/udp or 198.51.100.20/ip", &g.group))?;
        let criterion = parse_criterion(g.criterion.as_deref()).ok_or_else(|| {
            bad(&key("criterion"), "proximity, load, random or weighted", &g.criterion.clone().unwrap_or_default())
        })?;
        if g.owner_key.is_some() {
            return Err(bad(&key("owner_key"), "no owner key without pias.control (static groups take no joins)", &"a key"));
        }
        let mut spec = pias_dataplane::tables::GroupSpec::new(group, GroupOptions { criterion, affinity: g.affinity, rapless: g.rapless });
        spec.raps = g.raps.iter().map(|&r| ProxyId(r)).collect();
        let jap = |j: &raw::Jap| JapLoad { jap: ProxyId(j.proxy), approx_targets: j.targets.unwrap_or(1), overloaded: false, weight: j.weight.unwrap_or(0) };
        spec.japs = g.japs.iter().map(jap).collect();
        spec.flooded = g.flooded.iter().map(jap).collect();
        for (j, t) in g.targets.iter().enumerate() {
            let sa: std::net::SocketAddrV4 = t
                .address
                .parse()
                .map_err(|_| bad(&format!("pias.groups[{i}].targets[{j}].address"), "ip:port such as 203.0.113.5:80", &t.address))?;
            spec.targets.push(LocalTarget {
                addr: TargetAddr { ip: *sa.ip(), port: sa.port() },
                alive: t.alive.unwrap_or(true),
                weight: t.weight.unwrap_or(1),
            });
        }
        if !g.cache.is_empty() {
            if g.cache.len() > pias_dataplane::jap_cache::MAX_CACHED_JAPS {
                return Err(bad(&key("cache"), &format!("at most {} JAPs", pias_dataplane::jap_cache::MAX_CACHED_JAPS), &g.cache.len()));
            }
            cache.push((group, g.cache.iter().map(|&p| ProxyId(p)).collect()));
        }
        state.groups.push(spec);
    }
    if let Err(e) = Tables::build(&state) {
        let msg = e.to_string();
        let (k, rest) = match msg.split_once(": ") {
            Some((k, rest)) if k.starts_with("groups") || k.starts_with("proxies") || k.starts_with("rtt") => (format!("pias.{k}"), rest.to_string()),
            _ => ("pias".to_string(), msg.clone()),
        };
        return Err(ConfigError::Invalid { file: file.to_path_buf(), key: k, expected: "consistent PIAS tables".into(), found: rest });
    }
    for (g, japs) in &cache {
        for j in japs {
            if !state.proxies.iter().any(|p| p.id == *j) {
                return Err(bad("pias.groups[].cache", "known proxy ids", &format!("{} in the cache of {g}", j.0)));
            }
        }
    }

    let mut path = PathConfig::default();
    if let Some(t) = &raw.tunnel {
        path.tunnel_mtu = t.mtu.unwrap_or(path.tunnel_mtu);
        if !(576..=9000).contains(&path.tunnel_mtu) {
            return Err(bad("pias.tunnel.mtu", "an MTU between 576 and 9000", &path.tunnel_mtu));
        }
        path.mss_clamp = t.mss_clamp.unwrap_or(true);
        path.tunnel_ttl = t.ttl.unwrap_or(64);
        if path.tunnel_ttl == 0 {
            return Err(bad("pias.tunnel.ttl", "a TTL of 1..=255", &0));
        }
    }
    if let Some(p) = raw.control_port {
        if p == 0 {
            return Err(bad("pias.control_port", "a UDP port 1..=65535", &p));
        }
        path.control_port = p;
    }
    let nat = raw.nat.as_ref();
    let ports_s = nat.and_then(|n| n.ports.clone()).unwrap_or_else(|| "1024-65535".into());
    let range = ports_s
        .split_once('-')
        .and_then(|(a, b)| Some(PortRange { lo: a.trim().parse().ok()?, hi: b.trim().parse().ok()? }))
        .filter(|r| r.lo >= 1 && r.lo <= r.hi && usize::from(r.hi - r.lo) + 1 >= usize::from(workers))
        .ok_or_else(|| bad("pias.nat.ports", &format!("a range lo-hi within 1-65535 with at least {workers} ports (one per worker)"), &ports_s))?;
    let max_flows = nat.and_then(|n| n.max_flows).unwrap_or(1 << 20);
    if !(1..=pias_dataplane::nat::MAX_FLOWS_LIMIT).contains(&max_flows) {
        return Err(bad("pias.nat.max_flows", &format!("1..={} flows per worker", pias_dataplane::nat::MAX_FLOWS_LIMIT), &max_flows));
    }
    let udp = nat.and_then(|n| n.udp_idle_s).unwrap_or(300);
    if udp < 120 {
        return Err(bad("pias.nat.udp_idle_s", "at least 120 seconds (RFC 4787 REQ-5)", &udp));
    }
    let est = nat.and_then(|n| n.tcp_established_s).unwrap_or(7440);
    if est < 7440 {
        return Err(bad("pias.nat.tcp_established_s", "at least 7440 seconds (RFC 5382 REQ-5)", &est));
    }
    let tra = nat.and_then(|n| n.tcp_transitory_s).unwrap_or(240);
    if tra < 240 {
        return Err(bad("pias.nat.tcp_transitory_s", "at least 240 seconds (RFC 5382 REQ-5)", &tra));
    }
    Ok(PiasConfig {
        state,
        cache,
        path,
        nat_ports: range,
        nat_max_flows: max_flows,
        nat_udp_idle_s: udp,
        nat_tcp_established_s: est,
        nat_tcp_transitory_s: tra,
        control,
    })
}

/// Checks `pias.control` and the parts of `pias` it changes the meaning of.
fn control_from_raw(file: &Path, raw: &raw::Pias, c: &raw::Control, state: &StaticState) -> Result<ControlPlaneConfig, ConfigError> {
    let bad = |key: &str, expected: &str, found: &dyn fmt::Display| ConfigError::Invalid {
        file: file.to_path_buf(),
        key: key.to_string(),
        expected: expected.to_string(),
        found: format!("`{found}`"),
    };
    let Some(me) = state.proxies.iter().find(|p| p.id == state.me) else {
        return Err(bad("pias.me", "the id of an entry of pias.proxies (this proxy's address and cluster)", &state.me.0));
    };
    if c.key_file.is_empty() {
        return Err(bad("pias.control.key_file", "the path of the proxy-group secret (hex, at least 32 bytes)", &""));
    }
    if c.boot_file.is_empty() {
        return Err(bad("pias.control.boot_file", "a writable path for the boot count", &""));
    }
    let mut seeds: Vec<Ipv4Addr> = state.proxies.iter().filter(|p| p.id != state.me).map(|p| p.addr).collect();
    for (i, s) in c.seeds.iter().enumerate() {
        let a: Ipv4Addr = s.parse().map_err(|_| bad(&format!("pias.control.seeds[{i}]"), "an IPv4 address of another proxy", s))?;
        if a == me.addr {
            return Err(bad(&format!("pias.control.seeds[{i}]"), "another proxy's address, not this proxy's", s));
        }
        if !seeds.contains(&a) {
            seeds.push(a);
        }
    }
    if !raw.rtt.is_empty() {
        return Err(bad("pias.rtt", "no static RTTs with pias.control (the control plane measures them)", &format!("{} entries", raw.rtt.len())));
    }
    // A setting with a default and an allowed range: (key, unit).
    fn ranged<T: Copy + PartialOrd + fmt::Display>(
        v: Option<T>,
        default: T,
        range: core::ops::RangeInclusive<T>,
        key: &str,
        unit: &str,
        bad: &dyn Fn(&str, &str, &dyn fmt::Display) -> ConfigError,
    ) -> Result<T, ConfigError> {
        let v = v.unwrap_or(default);
        if range.contains(&v) {
            Ok(v)
        } else {
            Err(bad(&format!("pias.control.{key}"), &format!("{}..={} {unit}", range.start(), range.end()), &v))
        }
    }
    let raps = ranged(c.raps_per_group, 3, 1..=8, "raps_per_group", "RAPs", &bad)?;
    let hb = ranged(c.heartbeat_ms, 1000, 10..=60_000, "heartbeat_ms", "milliseconds", &bad)?;
    let dead = ranged(c.dead_multiplier, 3, 2..=100, "dead_multiplier", "heartbeats", &bad)?;
    let probe = ranged(c.probe_interval_s, 10, 1..=3600, "probe_interval_s", "seconds", &bad)?;
    let retry = ranged(c.probe_retry_ms, 1000, 100..=60_000, "probe_retry_ms", "milliseconds", &bad)?;
    let dead_after = ranged(c.probe_dead_after, 3, 1..=20, "probe_dead_after", "failed probes", &bad)?;
    let query_delay = ranged(c.query_delay_ms, 500, 50..=10_000, "query_delay_ms", "milliseconds", &bad)?;
    let operator_key = match &c.operator_key {
        Some(k) => Some(parse_key32(k).ok_or_else(|| bad("pias.control.operator_key", "an Ed25519 public key as 64 hex digits", k))?),
        None => None,
    };
    let mut groups = Vec::new();
    for (i, g) in raw.groups.iter().enumerate() {
        let key = |k: &str| format!("pias.groups[{i}].{k}");
        let group = parse_group(&g.group)
            .ok_or_else(|| bad(&key("group"), "198.51.100.10:80/tcp, 198.51.100.10:53/udp or 198.51.100.20/ip", &g.group))?;
        let criterion = parse_criterion(g.criterion.as_deref()).ok_or_else(|| {
            bad(&key("criterion"), "proximity, load, random or weighted", &g.criterion.clone().unwrap_or_default())
        })?;
        for (k, n) in [("raps", g.raps.len()), ("japs", g.japs.len()), ("flooded", g.flooded.len()), ("targets", g.targets.len()), ("cache", g.cache.len())] {
            if n > 0 {
                return Err(bad(&key(k), "nothing with pias.control (targets join with pias-target; RAPs, JAPs and caches are learned)", &format!("{n} entries")));
            }
        }
        let owner = g.owner_key.as_deref().ok_or_else(|| bad(&key("owner_key"), "the group owner's Ed25519 public key (64 hex digits) with pias.control", &"nothing"))?;
        let owner_key = parse_key32(owner).ok_or_else(|| bad(&key("owner_key"), "an Ed25519 public key as 64 hex digits", &owner))?;
        groups.push(GroupRegistration { group, options: GroupOptions { criterion, affinity: g.affinity, rapless: g.rapless }, owner_key });
    }
    Ok(ControlPlaneConfig {
        key_file: PathBuf::from(&c.key_file),
        key_id: c.key_id.unwrap_or(1),
        boot_file: PathBuf::from(&c.boot_file),
        cluster: me.cluster,
        seeds,
        raps_per_group: raps,
        heartbeat_ms: hb,
        dead_multiplier: dead,
        probe_interval_s: probe,
        probe_retry_ms: retry,
        probe_dead_after: dead_after,
        query_delay_ms: query_delay,
        operator_key,
        groups,
    })
}

fn parse_criterion(s: Option<&str>) -> Option<Criterion> {
    Some(match s.unwrap_or("proximity") {
        "proximity" => Criterion::Proximity,
        "load" => Criterion::Load,
        "random" => Criterion::Random,
        "weighted" => Criterion::Weighted,
        _ => return None,
    })
}

/// The DPDK name of the exception tap of port `i`.
pub fn tap_device_name(i: usize) -> String {
    format!("net_tap_pias{i}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
eal:
  lcores: "0@0,1@1"
  memory_mb: 256
  no_huge: true
  file_prefix: piasd-test
  vdevs: ["net_af_packet0,iface=px0"]
workers: 1
ports:
  - device: net_af_packet0
    address: 192.0.2.10/24
    gateway: 192.0.2.1
    neighbours: [192.0.2.11]
    exception: { tap: pias0 }
anycast:
  prefixes: [198.51.100.0/24]
metrics: { listen: "127.0.0.1:9464" }
control_socket: /run/piasd/test.sock
"#;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("test.yaml"), s)
    }

    #[test]
    fn good_config_parses_and_builds_eal_args() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.workers, 1);
        assert_eq!(c.ports[0].address.to_string(), "192.0.2.10/24");
        assert_eq!(c.ports[0].mtu, 1500);
        assert_eq!(c.ports[0].exception_tap.as_deref(), Some("pias0"));
        assert_eq!(c.anycast[0].to_string(), "198.51.100.0/24");
        let a = c.eal_args().join(" ");
        assert_eq!(
            a,
            "--lcores 0@0,1@1 -m 256 --no-huge --file-prefix piasd-test --vdev net_af_packet0,iface=px0 --vdev net_tap_pias0,iface=pias0 --no-pci"
        );
    }

    /// The table of bad configs: (what to replace in GOOD, with what, the
    /// key the error must name, a piece of the expectation).
    #[test]
    fn bad_configs_name_file_key_and_expectation() {
        let cases: &[(&str, &str, &str, &str)] = &[
            ("workers: 1", "workers: 0", "workers", "worker count"),
            ("workers: 1", "workers: many", "workers", "invalid type"),
            ("workers: 1\n", "", ".", "missing field `workers`"),
            ("address: 192.0.2.10/24", "address: 192.0.2.300/24", "ports[0].address", "IPv4 address with prefix"),
            ("address: 192.0.2.10/24", "address: 192.0.2.0/24", "ports[0].address", "host address"),
            ("gateway: 192.0.2.1", "gateway: 203.0.113.1", "ports[0].gateway", "on-link"),
            ("neighbours: [192.0.2.11]", "neighbours: [nope]", "ports[0].neighbours[0]", "IPv4 address"),
            ("exception: { tap: pias0 }", "exception: { tap: waytoolonginterfacename }", "ports[0].exception.tap", "interface name"),
            ("exception: { tap: pias0 }", "exception: { tap: pias0, colour: red }", "ports[0].exception.colour", "unknown field `colour`"),
            ("prefixes: [198.51.100.0/24]", "prefixes: [198.51.100.1/24]", "anycast.prefixes[0]", "no host bits"),
            ("prefixes: [198.51.100.0/24]", "prefixes: [192.0.2.0/24]", "anycast.prefixes[0]", "does not contain a port's unicast"),
            ("prefixes: [198.51.100.0/24]", "prefixes: []", "anycast.prefixes", "at least one"),
            ("listen: \"127.0.0.1:9464\"", "listen: \"localhost\"", "metrics.listen", "ip:port"),
            ("control_socket: /run/piasd/test.sock", "control_socket: relative.sock", "control_socket", "absolute path"),
            ("lcores: \"0@0,1@1\"", "lcores: \"\"", "eal.lcores", "lcore list"),
            ("memory_mb: 256", "memory_mb: 1", "eal.memory_mb", "MiB"),
            ("no_huge: true", "no_huge: yes please", "eal.no_huge", "invalid type"),
            ("workers: 1", "workers: 1\nwokers: 2", "wokers", "unknown field `wokers`"),
            ("control_socket: /run/piasd/test.sock", "control_socket: \"/run/piasd/test.sock", "control_socket", "line 18"),
        ];
        for (from, to, key, expect) in cases {
            assert!(GOOD.contains(from), "test case source missing: {from}");
            let text = GOOD.replacen(from, to, 1);
            let err = parse(&text).expect_err(&format!("accepted: {to}"));
            let msg = err.to_string();
            assert!(msg.starts_with("test.yaml: "), "no file in: {msg}");
            match &err {
                ConfigError::Invalid { key: k, .. } | ConfigError::Syntax { key: k, .. } => {
                    assert_eq!(k, key, "wrong key for {to}: {msg}")
                }
                ConfigError::Io { .. } => panic!("io error for {to}"),
            }
            assert!(msg.contains(expect), "message for {to} lacks {expect:?}: {msg}");
        }
    }

    const CONTROL: &str = r#"
pias:
  me: 1
  proxies:
    - { id: 1, address: 192.0.2.10, cluster: 1 }
    - { id: 2, address: 192.0.2.11, cluster: 2 }
  control:
    key_file: /etc/pias/group.key
    boot_file: /var/lib/pias/boot
    seeds: [192.0.2.12]
  groups:
    - group: "198.51.100.10:80/tcp"
      criterion: load
      owner_key: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
"#;

    #[test]
    fn control_section_parses() {
        let c = parse(&format!("{GOOD}{CONTROL}")).unwrap();
        let cp = c.pias.control.as_ref().unwrap();
        assert_eq!(cp.seeds, vec![Ipv4Addr::new(192, 0, 2, 11), Ipv4Addr::new(192, 0, 2, 12)]);
        assert_eq!(cp.cluster, ClusterId(1));
        assert_eq!((cp.raps_per_group, cp.heartbeat_ms, cp.dead_multiplier, cp.key_id), (3, 1000, 3, 1));
        assert_eq!(cp.groups.len(), 1);
        assert_eq!(cp.groups[0].options.criterion, Criterion::Load);
        assert_eq!(cp.groups[0].owner_key[0], 0xd7);
        // The workers start alone: the control plane publishes the rest.
        assert_eq!(c.pias.state.proxies.len(), 1);
        assert!(c.pias.state.groups.is_empty());
    }

    #[test]
    fn bad_control_sections_name_the_key() {
        let cases: &[(&str, &str, &str, &str)] = &[
            ("    seeds: [192.0.2.12]", "    seeds: [192.0.2.10]", "pias.control.seeds[0]", "another proxy"),
            ("    seeds: [192.0.2.12]", "    seeds: [nope]", "pias.control.seeds[0]", "IPv4"),
            ("    seeds: [192.0.2.12]", "    seeds: []\n    raps_per_group: 9", "pias.control.raps_per_group", "1..=8"),
            ("    seeds: [192.0.2.12]", "    heartbeat_ms: 1", "pias.control.heartbeat_ms", "milliseconds"),
            ("    seeds: [192.0.2.12]", "    operator_key: abc", "pias.control.operator_key", "64 hex"),
            ("    key_file: /etc/pias/group.key", "    key_file: \"\"", "pias.control.key_file", "secret"),
            ("      owner_key: \"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\"", "", "pias.groups[0].owner_key", "Ed25519"),
            ("      owner_key: \"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\"", "      owner_key: zz", "pias.groups[0].owner_key", "64 hex"),
            ("      criterion: load", "      criterion: load\n      targets: [ { address: \"203.0.113.5:80\" } ]", "pias.groups[0].targets", "pias-target"),
            ("      criterion: load", "      criterion: load\n      raps: [2]", "pias.groups[0].raps", "learned"),
            ("  me: 1", "  me: 7", "pias.me", "pias.proxies"),
            ("  control:", "  rtt: [ { a: 1, b: 2, rtt_us: 10 } ]\n  control:", "pias.rtt", "measures"),
            ("    boot_file: /var/lib/pias/boot", "    boot_file: /b\n    colour: red", "pias.control.colour", "unknown field"),
        ];
        for (from, to, key, expect) in cases {
            let text = format!("{GOOD}{CONTROL}");
            assert!(text.contains(from), "case source missing: {from}");
            let text = text.replacen(from, &to.replace("\\n", "\n").replace("\\\"", "\""), 1);
            let err = parse(&text).expect_err(&format!("accepted: {to}"));
            let msg = err.to_string();
            match &err {
                ConfigError::Invalid { key: k, .. } | ConfigError::Syntax { key: k, .. } => assert_eq!(k, key, "wrong key for {to}: {msg}"),
                ConfigError::Io { .. } => panic!("io error for {to}"),
            }
            assert!(msg.contains(expect), "message for {to} lacks {expect:?}: {msg}");
        }
        // A static group cannot carry an owner key.
        let text = format!("{GOOD}{CONTROL}").replace("  control:\n    key_file: /etc/pias/group.key\n    boot_file: /var/lib/pias/boot\n    seeds: [192.0.2.12]\n", "");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("pias.groups[0].owner_key") && err.contains("without pias.control"), "{err}");
    }

    #[test]
    fn missing_file_is_named() {
        let err = Config::load(Path::new("/nonexistent/piasd.yaml")).unwrap_err();
        assert!(err.to_string().starts_with("/nonexistent/piasd.yaml: cannot read"));
    }
}
