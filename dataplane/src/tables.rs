//! The forwarding tables: the read-mostly state every worker reads.
//!
//! # The interface "table updates down"
//!
//! [`StaticState`] is the one plain-data description of what a proxy knows
//! about the proxy group (issue 4 item 11): this proxy's id, the anycast
//! prefixes, every proxy with its cluster and up/down state (seed §3.2), the
//! cluster RTT matrix (seed §3.5), and per group its options, its ordered
//! RAPs, this proxy's RAP view of the group's JAPs (seed §3.3), this
//! proxy's local targets (its JAP view), and the flooded JAP list of a
//! RAP-less group (seed §3.2, end). Two producers fill it:
//!
//! - piasd's config loader deserializes its own raw YAML structs and
//!   converts them into a `StaticState`, so the dataplane runs before (or
//!   without) the control plane and carriers can pin groups statically;
//! - the control plane (issue 5) builds one from its membership, RTT, RAP
//!   and JAP tables at run time.
//!
//! Either way [`Tables::build`] validates every cross-reference and returns
//! an immutable [`Tables`], or a [`TablesError`] that names the list and the
//! index at fault (`groups[3].raps[1]`), which the config loader maps to its
//! own keys. The control core publishes the result to every worker as an
//! `Arc<Tables>` over the down queue ([`crate::iface::Down::Tables`]); the
//! worker swaps it in between bursts and hands the old one back
//! ([`crate::iface::Up::Retired`]) so it is freed off the fast path
//! (DESIGN.md §5: read-mostly state as immutable snapshots, no lock on the
//! fast path). Per-worker state that changes per event (the IAP's
//! [`crate::jap_cache::JapCache`]) is *not* in here: it has its own down
//! messages.
//!
//! A snapshot is made of three parts behind their own `Arc`s (proxies, RTT
//! matrix, groups), so the control plane's common updates are cheaper than
//! a full rebuild: [`Tables::with_groups`] keeps the proxies and RTTs,
//! [`Tables::with_rtt`] keeps the proxies and groups. A change to the
//! proxies (one went down) is a full [`Tables::build`], because the RAP
//! lists must be checked again.
//!
//! # Fast path
//!
//! Lookups ([`Tables::group_for`], [`Tables::proxy_by_addr`],
//! [`Tables::nearest_rap`], [`Tables::rtt_us`]) never allocate, lock or
//! panic. Group entries keep the position of each named proxy in the proxy
//! list, so the RAP's JAP choice ([`crate::select`]) reads a JAP's cluster
//! and state without a hash lookup, and the RTT matrix is a dense array for
//! up to [`DENSE_RTT_CLUSTERS`] clusters.

use core::fmt;
use core::net::Ipv4Addr;
use std::sync::Arc;

use hashbrown::HashMap;
use thiserror::Error;

use crate::types::{
    ClusterId, GroupAddr, GroupOptions, GroupProto, Ipv4Prefix, JapLoad, ProxyId, ProxyInfo, TargetAddr,
};

/// Most proxies in one proxy group (seed §3.4: about 20 000 before the
/// provider splits the group; the control plane's membership uses the same
/// bound).
pub const MAX_PROXIES: usize = 20_000;

/// Most groups one snapshot holds (the control plane's group registry uses
/// the same bound). Each costs about 200 bytes plus its lists.
pub const MAX_GROUPS: usize = 1_000_000;

/// Most RAPs per group (seed §3.2: "three or four"; the control plane's
/// rendezvous hashing allows up to 8).
pub const MAX_RAPS: usize = 8;

/// Most JAPs per group in a RAP's view or a flooded list. The RAP's choice
/// is linear in this, so it is bounded.
pub const MAX_JAPS_PER_GROUP: usize = 1024;

/// Most local targets per group at one JAP. A new flow's target choice is
/// linear in this.
pub const MAX_TARGETS_PER_GROUP: usize = 1024;

/// Most RTT entries (about 5 800 clusters, full mesh).
pub const MAX_RTT_ENTRIES: usize = 1 << 24;

/// Up to this many clusters the RTT matrix is a dense `n × n` array (4 MiB
/// at the limit); above it, a hash map of the measured pairs.
pub const DENSE_RTT_CLUSTERS: usize = 1024;

/// One local target of a group as this proxy (its JAP) sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LocalTarget {
    /// `AT:r`.
    pub addr: TargetAddr,
    /// Alive by the JAP's health checks (seed §3.6.1); dead targets get no
    /// new flows.
    pub alive: bool,
    /// Load-balancing weight among the group's targets; 0 counts as 1.
    pub weight: u16,
}

/// One measured RTT between two clusters (seed §3.5), symmetric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RttEntry {
    /// One end.
    pub a: ClusterId,
    /// The other end (≠ `a`).
    pub b: ClusterId,
    /// Minimum measured round-trip time in microseconds.
    pub rtt_us: u32,
}

/// One group as [`StaticState`] describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSpec {
    /// `AA:g/proto` or a whole anycast IP.
    pub group: GroupAddr,
    /// Criterion, affinity, RAP-less.
    pub options: GroupOptions,
    /// The group's RAPs in the order the control plane ranked them (empty
    /// for a RAP-less group). Every one must be a known, live proxy.
    pub raps: Vec<ProxyId>,
    /// This proxy's RAP view: the group's JAPs with approximate target
    /// counts. Only when this proxy is one of `raps`.
    pub japs: Vec<JapLoad>,
    /// This proxy's JAP view: its local targets of the group.
    pub targets: Vec<LocalTarget>,
    /// RAP-less groups only: the JAPs, flooded to every proxy, from which
    /// every IAP chooses itself.
    pub flooded: Vec<JapLoad>,
}

impl GroupSpec {
    /// A group with empty lists.
    pub fn new(group: GroupAddr, options: GroupOptions) -> Self {
        GroupSpec { group, options, raps: Vec::new(), japs: Vec::new(), targets: Vec::new(), flooded: Vec::new() }
    }
}

/// Everything a proxy's forwarding tables are built from; see the module
/// documentation. Plain data, no serde: producers convert into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticState {
    /// This proxy; must be in `proxies`.
    pub me: ProxyId,
    /// Bumped by the producer on every publication (for logs and tests).
    pub version: u64,
    /// The anycast prefixes served: groups must be inside, proxies and
    /// targets outside.
    pub anycast: Vec<Ipv4Prefix>,
    /// Every proxy of the proxy group, this one included.
    pub proxies: Vec<ProxyInfo>,
    /// Measured RTTs between clusters that have proxies.
    pub rtt: Vec<RttEntry>,
    /// The groups this proxy knows.
    pub groups: Vec<GroupSpec>,
}

impl StaticState {
    /// An empty description for proxy `me` (which must still be added to
    /// `proxies`).
    pub fn new(me: ProxyId) -> Self {
        StaticState { me, version: 0, anycast: Vec::new(), proxies: Vec::new(), rtt: Vec::new(), groups: Vec::new() }
    }
}

/// Which list of a group an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupField {
    /// `raps`.
    Raps,
    /// `japs`.
    Japs,
    /// `targets`.
    Targets,
    /// `flooded`.
    Flooded,
}

impl fmt::Display for GroupField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GroupField::Raps => "raps",
            GroupField::Japs => "japs",
            GroupField::Targets => "targets",
            GroupField::Flooded => "flooded",
        })
    }
}

/// Why a [`StaticState`] was refused. Every variant names the list and the
/// index at fault (indices into the `StaticState`'s vectors) so that the
/// config loader can point at its own key.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum TablesError {
    /// `me` is not among the proxies.
    #[error("this proxy (id {}) is not in the proxy list", .me.0)]
    SelfUnknown {
        /// This proxy's id.
        me: ProxyId,
    },
    /// Too many proxies.
    #[error("proxies: {count} proxies, at most {max}")]
    TooManyProxies {
        /// How many were given.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// Two proxies with one id.
    #[error("proxies[{index}]: id {} repeats proxies[{first}]", .id.0)]
    DuplicateProxyId {
        /// The repeat.
        index: usize,
        /// The first with this id.
        first: usize,
        /// The id.
        id: ProxyId,
    },
    /// Two proxies with one unicast address.
    #[error("proxies[{index}]: address {addr} is already proxies[{first}]'s")]
    DuplicateProxyAddr {
        /// The repeat.
        index: usize,
        /// The first with this address.
        first: usize,
        /// The address.
        addr: Ipv4Addr,
    },
    /// A proxy address that cannot be a tunnel endpoint.
    #[error("proxies[{index}]: {addr} is not a unicast host address")]
    ProxyAddrNotUnicast {
        /// The proxy.
        index: usize,
        /// The address.
        addr: Ipv4Addr,
    },
    /// A proxy address inside the anycast block (tunnels would loop).
    #[error("proxies[{index}]: {addr} is inside the anycast prefix {prefix}")]
    ProxyAddrInAnycast {
        /// The proxy.
        index: usize,
        /// The address.
        addr: Ipv4Addr,
        /// The prefix containing it.
        prefix: Ipv4Prefix,
    },
    /// Too many RTT entries.
    #[error("rtt: {count} entries, at most {max}")]
    TooManyRtts {
        /// How many were given.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// An RTT entry names a cluster no proxy is in.
    #[error("rtt[{index}]: no proxy is in cluster {}", .cluster.0)]
    RttUnknownCluster {
        /// The entry.
        index: usize,
        /// The cluster.
        cluster: ClusterId,
    },
    /// An RTT entry from a cluster to itself (that RTT is 0 by definition).
    #[error("rtt[{index}]: both ends are cluster {}; a cluster's RTT to itself is 0", .cluster.0)]
    RttSameCluster {
        /// The entry.
        index: usize,
        /// The cluster.
        cluster: ClusterId,
    },
    /// Two RTT entries for one pair of clusters (in either order).
    #[error("rtt[{index}]: clusters {} and {} are already in rtt[{first}]", .a.0, .b.0)]
    DuplicateRtt {
        /// The repeat.
        index: usize,
        /// The first entry for the pair.
        first: usize,
        /// One end.
        a: ClusterId,
        /// The other end.
        b: ClusterId,
    },
    /// Too many groups.
    #[error("groups: {count} groups, at most {max}")]
    TooManyGroups {
        /// How many were given.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// A group given twice.
    #[error("groups[{index}]: {group} repeats groups[{first}]")]
    DuplicateGroup {
        /// The repeat.
        index: usize,
        /// The first.
        first: usize,
        /// The group.
        group: GroupAddr,
    },
    /// A group address outside every served anycast prefix.
    #[error("groups[{index}]: {group} is outside every anycast prefix")]
    GroupOutsideAnycast {
        /// The group.
        index: usize,
        /// Its address.
        group: GroupAddr,
    },
    /// A port group on port 0.
    #[error("groups[{index}]: {group}: port 0 is not a group port (use a whole-IP group)")]
    GroupPortZero {
        /// The group.
        index: usize,
        /// Its address.
        group: GroupAddr,
    },
    /// A group that is not RAP-less lists no RAP: IAP misses could go
    /// nowhere.
    #[error("groups[{index}]: {group} has no raps (list its RAPs, or make it rapless)")]
    NoRaps {
        /// The group.
        index: usize,
        /// Its address.
        group: GroupAddr,
    },
    /// A RAP-less group lists RAPs.
    #[error("groups[{index}]: {group} is rapless but lists raps")]
    RaplessWithRaps {
        /// The group.
        index: usize,
        /// Its address.
        group: GroupAddr,
    },
    /// A group with RAPs lists flooded JAPs.
    #[error("groups[{index}]: {group} lists flooded JAPs but is not rapless")]
    FloodedWithoutRapless {
        /// The group.
        index: usize,
        /// Its address.
        group: GroupAddr,
    },
    /// A RAP view (`japs`) on a proxy that is not one of the group's RAPs.
    #[error("groups[{index}]: {group} lists japs, but this proxy (id {}) is not one of its raps", .me.0)]
    JapsButNotRap {
        /// The group.
        index: usize,
        /// Its address.
        group: GroupAddr,
        /// This proxy.
        me: ProxyId,
    },
    /// A list of a group is longer than its cap.
    #[error("groups[{index}].{field}: {count} entries, at most {max}")]
    TooManyMembers {
        /// The group.
        index: usize,
        /// Its address.
        group: GroupAddr,
        /// The list.
        field: GroupField,
        /// How many were given.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// A group names a proxy id that is not in the proxy list.
    #[error("groups[{index}].{field}[{item}]: unknown proxy id {}", .id.0)]
    UnknownProxy {
        /// The group.
        index: usize,
        /// Its address.
        group: GroupAddr,
        /// The list.
        field: GroupField,
        /// Position in the list.
        item: usize,
        /// The id.
        id: ProxyId,
    },
    /// A RAP that is down: the control plane moves RAP roles off dead
    /// proxies, so a RAP list naming one is stale.
    #[error("groups[{index}].raps[{item}]: proxy id {} is down", .id.0)]
    DeadRap {
        /// The group.
        index: usize,
        /// Its address.
        group: GroupAddr,
        /// Position in the list.
        item: usize,
        /// The id.
        id: ProxyId,
    },
    /// A proxy or target given twice in one list.
    #[error("groups[{index}].{field}[{item}]: repeats {field}[{first}]")]
    DuplicateMember {
        /// The group.
        index: usize,
        /// Its address.
        group: GroupAddr,
        /// The list.
        field: GroupField,
        /// The repeat.
        item: usize,
        /// The first.
        first: usize,
    },
    /// A target address that cannot be a unicast destination.
    #[error("groups[{index}].targets[{item}]: {} is not a unicast host address", .addr.ip)]
    TargetNotUnicast {
        /// The group.
        index: usize,
        /// Its address.
        group: GroupAddr,
        /// Position in the list.
        item: usize,
        /// The target.
        addr: TargetAddr,
    },
    /// A target inside the anycast block (its packets would loop back).
    #[error("groups[{index}].targets[{item}]: {} is inside the anycast prefix {prefix}", .addr.ip)]
    TargetInAnycast {
        /// The group.
        index: usize,
        /// Its address.
        group: GroupAddr,
        /// Position in the list.
        item: usize,
        /// The target.
        addr: TargetAddr,
        /// The prefix containing it.
        prefix: Ipv4Prefix,
    },
    /// A target at a proxy's unicast address.
    #[error("groups[{index}].targets[{item}]: {} is proxy id {}'s address", .addr.ip, .proxy.0)]
    TargetIsProxy {
        /// The group.
        index: usize,
        /// Its address.
        group: GroupAddr,
        /// Position in the list.
        item: usize,
        /// The target.
        addr: TargetAddr,
        /// The proxy with that address.
        proxy: ProxyId,
    },
    /// A whole-IP group's target with a port: such groups keep the
    /// client's destination port, so the target port must be 0.
    #[error("groups[{index}].targets[{item}]: {group} is a whole-IP group; its targets keep the client's port, so port must be 0, not {}", .addr.port)]
    WholeIpTargetPort {
        /// The group.
        index: usize,
        /// Its address.
        group: GroupAddr,
        /// Position in the list.
        item: usize,
        /// The target.
        addr: TargetAddr,
    },
}

/// True for an address a proxy or target can have: not unspecified, "this
/// network" (0/8), loopback, multicast, reserved (240/4) or broadcast.
fn is_unicast_host(ip: Ipv4Addr) -> bool {
    let first = ip.octets()[0];
    first != 0 && first != 127 && first < 224
}

fn anycast_prefix_of(anycast: &[Ipv4Prefix], ip: Ipv4Addr) -> Option<Ipv4Prefix> {
    anycast.iter().copied().find(|p| p.contains(ip))
}

/// The proxies: by position, by id and by unicast address, and the dense
/// numbering of their clusters.
#[derive(Debug, Default)]
struct ProxyTable {
    infos: Vec<ProxyInfo>,
    /// Per proxy, the index of its cluster in `clusters`.
    cluster_idx: Vec<u32>,
    by_id: HashMap<ProxyId, u32>,
    by_addr: HashMap<Ipv4Addr, u32>,
    clusters: Vec<ClusterId>,
    cluster_index: HashMap<ClusterId, u32>,
}

impl ProxyTable {
    fn build(proxies: &[ProxyInfo], anycast: &[Ipv4Prefix]) -> Result<Self, TablesError> {
        if proxies.len() > MAX_PROXIES {
            return Err(TablesError::TooManyProxies { count: proxies.len(), max: MAX_PROXIES });
        }
        let mut t = ProxyTable {
            infos: proxies.to_vec(),
            cluster_idx: Vec::with_capacity(proxies.len()),
            by_id: HashMap::with_capacity(proxies.len()),
            by_addr: HashMap::with_capacity(proxies.len()),
            clusters: Vec::new(),
            cluster_index: HashMap::new(),
        };
        for (index, p) in proxies.iter().enumerate() {
            // `index` < MAX_PROXIES, so it fits a u32.
            let i = index as u32;
            if let Some(&first) = t.by_id.get(&p.id) {
                return Err(TablesError::DuplicateProxyId { index, first: first as usize, id: p.id });
            }
            if !is_unicast_host(p.addr) {
                return Err(TablesError::ProxyAddrNotUnicast { index, addr: p.addr });
            }
            if let Some(prefix) = anycast_prefix_of(anycast, p.addr) {
                return Err(TablesError::ProxyAddrInAnycast { index, addr: p.addr, prefix });
            }
            if let Some(&first) = t.by_addr.get(&p.addr) {
                return Err(TablesError::DuplicateProxyAddr { index, first: first as usize, addr: p.addr });
            }
            t.by_id.insert(p.id, i);
            t.by_addr.insert(p.addr, i);
            let next = t.clusters.len() as u32;
            let ci = *t.cluster_index.entry(p.cluster).or_insert(next);
            if ci == next {
                t.clusters.push(p.cluster);
            }
            t.cluster_idx.push(ci);
        }
        Ok(t)
    }

    /// The proxy at position `idx` if it is `id`, else by id (an entry
    /// from another snapshot still resolves correctly).
    #[inline]
    fn resolve(&self, id: ProxyId, idx: u32) -> Option<(&ProxyInfo, u32)> {
        let i = match self.infos.get(idx as usize) {
            Some(p) if p.id == id => idx,
            _ => *self.by_id.get(&id)?,
        };
        let info = self.infos.get(i as usize)?;
        let ci = *self.cluster_idx.get(i as usize)?;
        Some((info, ci))
    }
}

/// Sentinel for "not measured" in the dense matrix.
const RTT_UNKNOWN: u32 = u32::MAX;

/// The cluster RTT matrix over the dense cluster numbering of a
/// [`ProxyTable`].
#[derive(Debug)]
enum RttTable {
    /// `n × n`, row-major, symmetric, [`RTT_UNKNOWN`] where not measured.
    Dense { n: usize, rtt: Box<[u32]> },
    /// Measured pairs, key `(min << 32) | max`.
    Sparse(HashMap<u64, u32>),
}

impl Default for RttTable {
    fn default() -> Self {
        RttTable::Dense { n: 0, rtt: Box::new([]) }
    }
}

impl RttTable {
    fn build(entries: &[RttEntry], proxies: &ProxyTable) -> Result<Self, TablesError> {
        if entries.len() > MAX_RTT_ENTRIES {
            return Err(TablesError::TooManyRtts { count: entries.len(), max: MAX_RTT_ENTRIES });
        }
        let n = proxies.clusters.len();
        let mut seen: HashMap<u64, usize> = HashMap::with_capacity(entries.len());
        let mut pairs = Vec::with_capacity(entries.len());
        for (index, e) in entries.iter().enumerate() {
            if e.a == e.b {
                return Err(TablesError::RttSameCluster { index, cluster: e.a });
            }
            let idx = |c: ClusterId| {
                proxies.cluster_index.get(&c).copied().ok_or(TablesError::RttUnknownCluster { index, cluster: c })
            };
            let (i, j) = (idx(e.a)?, idx(e.b)?);
            let key = pair_key(i, j);
            if let Some(&first) = seen.get(&key) {
                return Err(TablesError::DuplicateRtt { index, first, a: e.a, b: e.b });
            }
            seen.insert(key, index);
            // u32::MAX µs (71 minutes) is the "unknown" sentinel.
            pairs.push((i, j, e.rtt_us.min(RTT_UNKNOWN - 1)));
        }
        if n <= DENSE_RTT_CLUSTERS {
            let mut rtt = vec![RTT_UNKNOWN; n * n].into_boxed_slice();
            for (i, j, r) in pairs {
                let (i, j) = (i as usize, j as usize);
                rtt[i * n + j] = r;
                rtt[j * n + i] = r;
            }
            Ok(RttTable::Dense { n, rtt })
        } else {
            Ok(RttTable::Sparse(pairs.into_iter().map(|(i, j, r)| (pair_key(i, j), r)).collect()))
        }
    }

    /// RTT between two cluster indices.
    #[inline]
    fn get(&self, i: u32, j: u32) -> Option<u32> {
        if i == j {
            return Some(0);
        }
        let r = match self {
            RttTable::Dense { n, rtt } => {
                let (i, j) = (i as usize, j as usize);
                if i >= *n || j >= *n {
                    return None;
                }
                *rtt.get(i * n + j)?
            }
            RttTable::Sparse(m) => *m.get(&pair_key(i, j))?,
        };
        (r != RTT_UNKNOWN).then_some(r)
    }

    /// Every measured pair, for [`Tables::to_static_state`].
    fn entries(&self, clusters: &[ClusterId]) -> Vec<RttEntry> {
        let mut out = Vec::new();
        let mut push = |i: usize, j: usize, r: u32| {
            if let (Some(&a), Some(&b)) = (clusters.get(i), clusters.get(j)) {
                out.push(RttEntry { a, b, rtt_us: r });
            }
        };
        match self {
            RttTable::Dense { n, rtt } => {
                for i in 0..*n {
                    for j in i + 1..*n {
                        if let Some(&r) = rtt.get(i * n + j) {
                            if r != RTT_UNKNOWN {
                                push(i, j, r);
                            }
                        }
                    }
                }
            }
            RttTable::Sparse(m) => {
                for (&k, &r) in m {
                    push((k >> 32) as usize, (k & 0xffff_ffff) as usize, r);
                }
            }
        }
        out.sort_unstable_by_key(|e| (e.a, e.b));
        out
    }
}

#[inline]
fn pair_key(i: u32, j: u32) -> u64 {
    let (lo, hi) = if i <= j { (i, j) } else { (j, i) };
    (u64::from(lo) << 32) | u64::from(hi)
}

/// One group as this proxy knows it. Built only by [`Tables`], so its
/// lists are validated and its derived fields consistent.
#[derive(Clone, Debug)]
pub struct GroupEntry {
    options: GroupOptions,
    rap_ids: [ProxyId; MAX_RAPS],
    rap_idx: [u32; MAX_RAPS],
    rap_len: u8,
    japs: Box<[JapLoad]>,
    jap_idx: Box<[u32]>,
    flooded: Box<[JapLoad]>,
    flooded_idx: Box<[u32]>,
    targets: Box<[LocalTarget]>,
    live_targets: u32,
    targets_uniform: bool,
    cand_weight_uniform: bool,
    cand_load_uniform: bool,
}

impl GroupEntry {
    /// The group's options.
    #[inline]
    pub fn options(&self) -> GroupOptions {
        self.options
    }

    /// The group's RAPs, in the control plane's order (empty when
    /// RAP-less).
    #[inline]
    pub fn raps(&self) -> &[ProxyId] {
        self.rap_ids.get(..usize::from(self.rap_len)).unwrap_or(&[])
    }

    /// True when `p` is one of the group's RAPs.
    #[inline]
    pub fn has_rap(&self, p: ProxyId) -> bool {
        self.raps().contains(&p)
    }

    /// This proxy's RAP view of the group's JAPs (empty unless this proxy
    /// is a RAP of the group).
    #[inline]
    pub fn japs(&self) -> &[JapLoad] {
        &self.japs
    }

    /// The flooded JAP list of a RAP-less group (empty otherwise).
    #[inline]
    pub fn flooded(&self) -> &[JapLoad] {
        &self.flooded
    }

    /// The JAPs a choice is made from here: the flooded list for a
    /// RAP-less group (the IAP chooses itself), else the RAP view.
    #[inline]
    pub fn candidate_japs(&self) -> &[JapLoad] {
        if self.options.rapless {
            &self.flooded
        } else {
            &self.japs
        }
    }

    /// This proxy's local targets of the group (its JAP view).
    #[inline]
    pub fn targets(&self) -> &[LocalTarget] {
        &self.targets
    }

    /// Number of alive local targets.
    #[inline]
    pub fn live_targets(&self) -> usize {
        self.live_targets as usize
    }

    /// True when this proxy is a JAP with at least one alive target: a
    /// packet tunnelled here for the group can be delivered.
    #[inline]
    pub fn has_live_target(&self) -> bool {
        self.live_targets > 0
    }

    /// Candidate JAPs with their positions in the proxy list.
    #[inline]
    pub(crate) fn candidates_indexed(&self) -> (&[JapLoad], &[u32]) {
        if self.options.rapless {
            (&self.flooded, &self.flooded_idx)
        } else {
            (&self.japs, &self.jap_idx)
        }
    }

    /// True when every target has the same effective weight.
    #[inline]
    pub(crate) fn targets_uniform(&self) -> bool {
        self.targets_uniform
    }

    /// True when every candidate JAP has the same effective operator
    /// weight.
    #[inline]
    pub(crate) fn cand_weight_uniform(&self) -> bool {
        self.cand_weight_uniform
    }

    /// True when every candidate JAP has the same effective load weight.
    #[inline]
    pub(crate) fn cand_load_uniform(&self) -> bool {
        self.cand_load_uniform
    }

    fn to_spec(&self, group: GroupAddr) -> GroupSpec {
        GroupSpec {
            group,
            options: self.options,
            raps: self.raps().to_vec(),
            japs: self.japs.to_vec(),
            targets: self.targets.to_vec(),
            flooded: self.flooded.to_vec(),
        }
    }
}

/// Effective weight of a JAP under `Weighted`: 0 means "not set", i.e. 1.
#[inline]
pub(crate) fn jap_weight(j: &JapLoad) -> u32 {
    u32::from(j.weight.max(1))
}

/// Effective weight of a JAP under `Load`: its approximate target count,
/// at least 1 (a JAP reporting none is ranked last by the selection, not
/// weighted out).
#[inline]
pub(crate) fn jap_load_weight(j: &JapLoad) -> u32 {
    j.approx_targets.max(1)
}

/// Effective weight of a target: 0 means "not set", i.e. 1.
#[inline]
pub(crate) fn target_weight(t: &LocalTarget) -> u32 {
    u32::from(t.weight.max(1))
}

fn all_equal<T, K: PartialEq>(items: &[T], key: impl Fn(&T) -> K) -> bool {
    match items.first() {
        None => true,
        Some(f) => {
            let k = key(f);
            items.iter().all(|x| key(x) == k)
        }
    }
}

/// The groups, by address.
#[derive(Debug, Default)]
struct GroupTable {
    map: HashMap<GroupAddr, GroupEntry>,
    /// Any whole-IP group: the second lookup is skipped when there is none.
    whole_ip: bool,
    /// Addresses of this proxy's local targets (any group): a packet from
    /// one of them to a NAT port without a mapping is a NAT miss, not the
    /// host's own traffic.
    target_ips: hashbrown::HashSet<Ipv4Addr>,
}

impl GroupTable {
    fn build(
        specs: &[GroupSpec],
        me: ProxyId,
        proxies: &ProxyTable,
        anycast: &[Ipv4Prefix],
    ) -> Result<Self, TablesError> {
        if specs.len() > MAX_GROUPS {
            return Err(TablesError::TooManyGroups { count: specs.len(), max: MAX_GROUPS });
        }
        let mut first_of: HashMap<GroupAddr, usize> = HashMap::with_capacity(specs.len());
        let mut t = GroupTable { map: HashMap::with_capacity(specs.len()), whole_ip: false, target_ips: Default::default() };
        for (index, s) in specs.iter().enumerate() {
            if let Some(&first) = first_of.get(&s.group) {
                return Err(TablesError::DuplicateGroup { index, first, group: s.group });
            }
            first_of.insert(s.group, index);
            let entry = build_entry(index, s, me, proxies, anycast)?;
            t.whole_ip |= matches!(s.group, GroupAddr::WholeIp(_));
            t.target_ips.extend(s.targets.iter().map(|t| t.addr.ip));
            t.map.insert(s.group, entry);
        }
        Ok(t)
    }
}

fn build_entry(
    index: usize,
    s: &GroupSpec,
    me: ProxyId,
    proxies: &ProxyTable,
    anycast: &[Ipv4Prefix],
) -> Result<GroupEntry, TablesError> {
    let group = s.group;
    if anycast_prefix_of(anycast, group.ip()).is_none() {
        return Err(TablesError::GroupOutsideAnycast { index, group });
    }
    if let GroupAddr::Port { port: 0, .. } = group {
        return Err(TablesError::GroupPortZero { index, group });
    }
    let too_many = |field, count, max| {
        if count > max {
            Err(TablesError::TooManyMembers { index, group, field, count, max })
        } else {
            Ok(())
        }
    };
    too_many(GroupField::Raps, s.raps.len(), MAX_RAPS)?;
    too_many(GroupField::Japs, s.japs.len(), MAX_JAPS_PER_GROUP)?;
    too_many(GroupField::Flooded, s.flooded.len(), MAX_JAPS_PER_GROUP)?;
    too_many(GroupField::Targets, s.targets.len(), MAX_TARGETS_PER_GROUP)?;
    if s.options.rapless {
        if !s.raps.is_empty() {
            return Err(TablesError::RaplessWithRaps { index, group });
        }
    } else {
        if !s.flooded.is_empty() {
            return Err(TablesError::FloodedWithoutRapless { index, group });
        }
        if s.raps.is_empty() {
            return Err(TablesError::NoRaps { index, group });
        }
    }
    if !s.japs.is_empty() && !s.raps.contains(&me) {
        return Err(TablesError::JapsButNotRap { index, group, me });
    }

    // Each named proxy must be known and named once (RAPs also up); keep
    // its position in the proxy list.
    let mut rap_pos: Vec<u32> = Vec::with_capacity(s.raps.len());
    for (item, &id) in s.raps.iter().enumerate() {
        let field = GroupField::Raps;
        let Some(&i) = proxies.by_id.get(&id) else {
            return Err(TablesError::UnknownProxy { index, group, field, item, id });
        };
        if let Some(first) = s.raps.iter().take(item).position(|&x| x == id) {
            return Err(TablesError::DuplicateMember { index, group, field, item, first });
        }
        if !proxies.infos.get(i as usize).is_some_and(|p| p.up) {
            return Err(TablesError::DeadRap { index, group, item, id });
        }
        rap_pos.push(i);
    }
    // Duplicate JAPs are found with a hash set: the lists may be long.
    let jap_pos = resolve_long(index, group, GroupField::Japs, &s.japs, proxies)?;
    let flooded_pos = resolve_long(index, group, GroupField::Flooded, &s.flooded, proxies)?;

    let mut seen_targets: HashMap<TargetAddr, usize> = HashMap::with_capacity(s.targets.len());
    for (item, t) in s.targets.iter().enumerate() {
        let addr = t.addr;
        if !is_unicast_host(addr.ip) {
            return Err(TablesError::TargetNotUnicast { index, group, item, addr });
        }
        if let Some(prefix) = anycast_prefix_of(anycast, addr.ip) {
            return Err(TablesError::TargetInAnycast { index, group, item, addr, prefix });
        }
        if let Some(&p) = proxies.by_addr.get(&addr.ip) {
            let proxy = proxies.infos.get(p as usize).map_or(ProxyId(0), |x| x.id);
            return Err(TablesError::TargetIsProxy { index, group, item, addr, proxy });
        }
        if matches!(group, GroupAddr::WholeIp(_)) && addr.port != 0 {
            return Err(TablesError::WholeIpTargetPort { index, group, item, addr });
        }
        if let Some(&first) = seen_targets.get(&addr) {
            return Err(TablesError::DuplicateMember { index, group, field: GroupField::Targets, item, first });
        }
        seen_targets.insert(addr, item);
    }

    let mut rap_ids = [ProxyId(0); MAX_RAPS];
    let mut rap_idx = [0u32; MAX_RAPS];
    for ((dst_id, dst_idx), (&id, &pos)) in rap_ids.iter_mut().zip(rap_idx.iter_mut()).zip(s.raps.iter().zip(&rap_pos))
    {
        *dst_id = id;
        *dst_idx = pos;
    }
    let cand: &[JapLoad] = if s.options.rapless { &s.flooded } else { &s.japs };
    Ok(GroupEntry {
        options: s.options,
        rap_ids,
        rap_idx,
        rap_len: s.raps.len() as u8,
        japs: s.japs.clone().into_boxed_slice(),
        jap_idx: jap_pos.into_boxed_slice(),
        flooded: s.flooded.clone().into_boxed_slice(),
        flooded_idx: flooded_pos.into_boxed_slice(),
        targets: s.targets.clone().into_boxed_slice(),
        live_targets: s.targets.iter().filter(|t| t.alive).count() as u32,
        targets_uniform: all_equal(&s.targets, target_weight),
        cand_weight_uniform: all_equal(cand, jap_weight),
        cand_load_uniform: all_equal(cand, jap_load_weight),
    })
}

fn resolve_long(
    index: usize,
    group: GroupAddr,
    field: GroupField,
    japs: &[JapLoad],
    proxies: &ProxyTable,
) -> Result<Vec<u32>, TablesError> {
    let mut out = Vec::with_capacity(japs.len());
    let mut seen: HashMap<ProxyId, usize> = HashMap::with_capacity(japs.len());
    for (item, j) in japs.iter().enumerate() {
        let Some(&i) = proxies.by_id.get(&j.jap) else {
            return Err(TablesError::UnknownProxy { index, group, field, item, id: j.jap });
        };
        if let Some(&first) = seen.get(&j.jap) {
            return Err(TablesError::DuplicateMember { index, group, field, item, first });
        }
        seen.insert(j.jap, item);
        out.push(i);
    }
    Ok(out)
}

/// An immutable snapshot of the forwarding tables; see the module
/// documentation. Cheap to share (`Arc<Tables>`), never mutated: a change
/// is a new snapshot.
#[derive(Debug)]
pub struct Tables {
    me: ProxyId,
    my_cluster: ClusterId,
    /// Index of this proxy's cluster; `None` only in [`Tables::default`].
    my_ci: Option<u32>,
    version: u64,
    anycast: Arc<[Ipv4Prefix]>,
    proxies: Arc<ProxyTable>,
    rtt: Arc<RttTable>,
    groups: Arc<GroupTable>,
}

impl Default for Tables {
    /// An empty snapshot (what a worker holds before the first
    /// publication): no proxy, no group; every lookup misses.
    fn default() -> Self {
        Tables {
            me: ProxyId(0),
            my_cluster: ClusterId(0),
            my_ci: None,
            version: 0,
            anycast: Arc::new([]),
            proxies: Arc::default(),
            rtt: Arc::default(),
            groups: Arc::default(),
        }
    }
}

impl Tables {
    /// Validates `state` and builds a snapshot.
    pub fn build(state: &StaticState) -> Result<Tables, TablesError> {
        let anycast: Arc<[Ipv4Prefix]> = state.anycast.as_slice().into();
        let proxies = ProxyTable::build(&state.proxies, &anycast)?;
        if !proxies.by_id.contains_key(&state.me) {
            return Err(TablesError::SelfUnknown { me: state.me });
        }
        let rtt = RttTable::build(&state.rtt, &proxies)?;
        let groups = GroupTable::build(&state.groups, state.me, &proxies, &anycast)?;
        Self::assemble(state.me, state.version, anycast, Arc::new(proxies), Arc::new(rtt), Arc::new(groups))
    }

    fn assemble(
        me: ProxyId,
        version: u64,
        anycast: Arc<[Ipv4Prefix]>,
        proxies: Arc<ProxyTable>,
        rtt: Arc<RttTable>,
        groups: Arc<GroupTable>,
    ) -> Result<Tables, TablesError> {
        let &i = proxies.by_id.get(&me).ok_or(TablesError::SelfUnknown { me })?;
        let my_cluster = proxies.infos.get(i as usize).map_or(ClusterId(0), |p| p.cluster);
        let my_ci = proxies.cluster_idx.get(i as usize).copied();
        Ok(Tables { me, my_cluster, my_ci, version, anycast, proxies, rtt, groups })
    }

    /// A new snapshot with these groups and this snapshot's proxies, RTTs
    /// and anycast prefixes (the control plane's common update: a JAP
    /// report, a target's join or death).
    pub fn with_groups(&self, groups: &[GroupSpec], version: u64) -> Result<Tables, TablesError> {
        let g = GroupTable::build(groups, self.me, &self.proxies, &self.anycast)?;
        Self::assemble(self.me, version, self.anycast.clone(), self.proxies.clone(), self.rtt.clone(), Arc::new(g))
    }

    /// A new snapshot with these RTTs and this snapshot's proxies and
    /// groups (a proximity advertisement).
    pub fn with_rtt(&self, rtt: &[RttEntry], version: u64) -> Result<Tables, TablesError> {
        let r = RttTable::build(rtt, &self.proxies)?;
        Self::assemble(self.me, version, self.anycast.clone(), self.proxies.clone(), Arc::new(r), self.groups.clone())
    }

    /// The description this snapshot was built from (proxies in their
    /// order, RTTs and groups sorted): the control plane edits it and
    /// builds the next snapshot; `piasctl` shows it.
    pub fn to_static_state(&self) -> StaticState {
        let mut groups: Vec<GroupSpec> = self.groups.map.iter().map(|(g, e)| e.to_spec(*g)).collect();
        groups.sort_unstable_by_key(|s| s.group);
        StaticState {
            me: self.me,
            version: self.version,
            anycast: self.anycast.to_vec(),
            proxies: self.proxies.infos.clone(),
            rtt: self.rtt.entries(&self.proxies.clusters),
            groups,
        }
    }

    /// True when `ip` is a local target of some group on this proxy.
    #[inline]
    pub fn is_local_target(&self, ip: Ipv4Addr) -> bool {
        self.groups.target_ips.contains(&ip)
    }

    /// This proxy.
    #[inline]
    pub fn me(&self) -> ProxyId {
        self.me
    }

    /// This proxy's cluster.
    #[inline]
    pub fn my_cluster(&self) -> ClusterId {
        self.my_cluster
    }

    /// The producer's version of this snapshot.
    #[inline]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The anycast prefixes served.
    #[inline]
    pub fn anycast(&self) -> &[Ipv4Prefix] {
        &self.anycast
    }

    /// True when `ip` is inside a served anycast prefix.
    #[inline]
    pub fn is_anycast(&self, ip: Ipv4Addr) -> bool {
        self.anycast.iter().any(|p| p.contains(ip))
    }

    /// Every proxy, in the order given.
    #[inline]
    pub fn proxies(&self) -> &[ProxyInfo] {
        &self.proxies.infos
    }

    /// A proxy by id.
    #[inline]
    pub fn proxy(&self, id: ProxyId) -> Option<&ProxyInfo> {
        let &i = self.proxies.by_id.get(&id)?;
        self.proxies.infos.get(i as usize)
    }

    /// The proxy whose unicast address is `ip`: the worker checks an
    /// IP-in-IP packet's outer source with it (a source claiming to be a
    /// proxy that is not one is dropped).
    #[inline]
    pub fn proxy_by_addr(&self, ip: Ipv4Addr) -> Option<&ProxyInfo> {
        let &i = self.proxies.by_addr.get(&ip)?;
        self.proxies.infos.get(i as usize)
    }

    /// True when `id` is a known proxy believed up.
    #[inline]
    pub fn is_up(&self, id: ProxyId) -> bool {
        self.proxy(id).is_some_and(|p| p.up)
    }

    /// RTT between two clusters in µs (symmetric; a cluster to itself is
    /// 0); `None` when not measured or a cluster is unknown.
    #[inline]
    pub fn rtt_us(&self, a: ClusterId, b: ClusterId) -> Option<u32> {
        if a == b {
            return Some(0);
        }
        let i = *self.proxies.cluster_index.get(&a)?;
        let j = *self.proxies.cluster_index.get(&b)?;
        self.rtt.get(i, j)
    }

    /// The dense index of a cluster (for [`crate::select`]).
    #[inline]
    pub(crate) fn cluster_idx(&self, c: ClusterId) -> Option<u32> {
        self.proxies.cluster_index.get(&c).copied()
    }

    /// RTT between two dense cluster indices.
    #[inline]
    pub(crate) fn rtt_idx(&self, i: u32, j: u32) -> Option<u32> {
        self.rtt.get(i, j)
    }

    /// A proxy and its dense cluster index, from a group entry's id and
    /// position.
    #[inline]
    pub(crate) fn resolve(&self, id: ProxyId, idx: u32) -> Option<(&ProxyInfo, u32)> {
        self.proxies.resolve(id, idx)
    }

    /// The group a packet to `dst_ip:dst_port` with IP protocol `ip_proto`
    /// belongs to: the exact `AA:g/proto` group first, then the whole-IP
    /// group of `AA` (DESIGN.md §1; issue 4 item 3). Protocols other than
    /// TCP and UDP can only match a whole-IP group.
    #[inline]
    pub fn group_for(&self, dst_ip: Ipv4Addr, dst_port: u16, ip_proto: u8) -> Option<(&GroupAddr, &GroupEntry)> {
        if let Some(proto) = GroupProto::from_ip_proto(ip_proto) {
            let exact = GroupAddr::Port { ip: dst_ip, port: dst_port, proto };
            if let Some(kv) = self.groups.map.get_key_value(&exact) {
                return Some(kv);
            }
        }
        if self.groups.whole_ip {
            self.groups.map.get_key_value(&GroupAddr::WholeIp(dst_ip))
        } else {
            None
        }
    }

    /// A group by its exact address.
    #[inline]
    pub fn group(&self, g: &GroupAddr) -> Option<&GroupEntry> {
        self.groups.map.get(g)
    }

    /// Number of groups.
    #[inline]
    pub fn group_count(&self) -> usize {
        self.groups.map.len()
    }

    /// Every group, in no particular order.
    pub fn groups(&self) -> impl Iterator<Item = (&GroupAddr, &GroupEntry)> {
        self.groups.map.iter()
    }

    /// The RAP an IAP sends a missed packet to (seed §3.2: "selects the
    /// nearest RAP for the group"): the live RAP whose cluster has the
    /// lowest RTT from this proxy's cluster; RAPs at an unmeasured RTT come
    /// after measured ones; ties go to the earlier RAP in the list. This
    /// proxy itself may be the answer. `None` when the group has no live
    /// RAP (or is RAP-less).
    #[inline]
    pub fn nearest_rap(&self, e: &GroupEntry) -> Option<ProxyInfo> {
        let mut best: Option<(u32, &ProxyInfo)> = None;
        for (&id, &idx) in e.raps().iter().zip(&e.rap_idx) {
            let Some((info, ci)) = self.resolve(id, idx) else { continue };
            if !info.up {
                continue;
            }
            let d = self.my_ci.and_then(|m| self.rtt.get(m, ci)).unwrap_or(u32::MAX);
            if best.map_or(true, |(bd, _)| d < bd) {
                best = Some((d, info));
            }
        }
        best.map(|(_, p)| *p)
    }
}

/// A small, valid [`StaticState`] for tests in this crate: proxies 1–6 in
/// clusters 1–3, RTTs between them, and a few groups.
#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use crate::types::Criterion;

    pub const AA: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
    pub const WHOLE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);

    pub fn proxy(id: u32, cluster: u16, up: bool) -> ProxyInfo {
        ProxyInfo { id: ProxyId(id), addr: Ipv4Addr::new(192, 0, 2, id as u8), cluster: ClusterId(cluster), up }
    }

    pub fn jap(id: u32, approx: u32) -> JapLoad {
        JapLoad { jap: ProxyId(id), approx_targets: approx, overloaded: false, weight: 0 }
    }

    pub fn target(last: u8, port: u16) -> LocalTarget {
        LocalTarget { addr: TargetAddr { ip: Ipv4Addr::new(203, 0, 113, last), port }, alive: true, weight: 1 }
    }

    pub fn udp(port: u16) -> GroupAddr {
        GroupAddr::Port { ip: AA, port, proto: GroupProto::Udp }
    }

    pub fn tcp(port: u16) -> GroupAddr {
        GroupAddr::Port { ip: AA, port, proto: GroupProto::Tcp }
    }

    /// Proxy 1 (me) in cluster 1; 2 in 1; 3, 4 in 2; 5 in 3; 6 (down) in 3.
    /// RTT 1–2: 10 ms, 1–3: 50 ms, 2–3: 20 ms.
    pub fn state() -> StaticState {
        let mut s = StaticState::new(ProxyId(1));
        s.version = 7;
        s.anycast = vec!["198.51.100.0/24".parse().unwrap()];
        s.proxies = vec![
            proxy(1, 1, true),
            proxy(2, 1, true),
            proxy(3, 2, true),
            proxy(4, 2, true),
            proxy(5, 3, true),
            proxy(6, 3, false),
        ];
        s.rtt = vec![
            RttEntry { a: ClusterId(1), b: ClusterId(2), rtt_us: 10_000 },
            RttEntry { a: ClusterId(3), b: ClusterId(1), rtt_us: 50_000 },
            RttEntry { a: ClusterId(2), b: ClusterId(3), rtt_us: 20_000 },
        ];
        // udp/53: RAPs 3, 1, 5; this proxy is a RAP and a JAP.
        let mut dns = GroupSpec::new(udp(53), GroupOptions::default());
        dns.raps = vec![ProxyId(3), ProxyId(1), ProxyId(5)];
        dns.japs = vec![jap(1, 4), jap(3, 10), jap(5, 2), jap(6, 8)];
        dns.targets = vec![target(1, 53), target(2, 53), LocalTarget { alive: false, ..target(3, 53) }];
        // tcp/80: RAPs 5, 4 (not me), no local state.
        let mut web = GroupSpec::new(tcp(80), GroupOptions { criterion: Criterion::Load, ..Default::default() });
        web.raps = vec![ProxyId(5), ProxyId(4)];
        // Whole IP: RAP-less, flooded JAPs.
        let mut whole = GroupSpec::new(
            GroupAddr::WholeIp(WHOLE),
            GroupOptions { rapless: true, affinity: true, ..Default::default() },
        );
        whole.flooded = vec![jap(2, 1), jap(4, 1)];
        whole.targets = vec![target(9, 0)];
        s.groups = vec![dns, web, whole];
        s
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use proptest::prelude::*;

    fn tables() -> Tables {
        Tables::build(&state()).unwrap()
    }

    #[test]
    fn builds_and_looks_up_proxies() {
        let t = tables();
        assert_eq!(t.me(), ProxyId(1));
        assert_eq!(t.my_cluster(), ClusterId(1));
        assert_eq!(t.version(), 7);
        assert_eq!(t.proxies().len(), 6);
        assert_eq!(t.proxy(ProxyId(3)).unwrap().cluster, ClusterId(2));
        assert_eq!(t.proxy(ProxyId(99)), None);
        assert_eq!(t.proxy_by_addr(Ipv4Addr::new(192, 0, 2, 4)).unwrap().id, ProxyId(4));
        assert_eq!(t.proxy_by_addr(Ipv4Addr::new(192, 0, 2, 40)), None);
        assert!(t.is_up(ProxyId(5)));
        assert!(!t.is_up(ProxyId(6)));
        assert!(!t.is_up(ProxyId(99)));
        assert!(t.is_anycast(AA));
        assert!(!t.is_anycast(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(t.anycast().len(), 1);
    }

    #[test]
    fn rtt_is_symmetric_and_self_is_zero() {
        let t = tables();
        let c = ClusterId;
        assert_eq!(t.rtt_us(c(1), c(2)), Some(10_000));
        assert_eq!(t.rtt_us(c(2), c(1)), Some(10_000));
        assert_eq!(t.rtt_us(c(1), c(3)), Some(50_000));
        assert_eq!(t.rtt_us(c(3), c(2)), Some(20_000));
        assert_eq!(t.rtt_us(c(2), c(2)), Some(0));
        assert_eq!(t.rtt_us(c(9), c(9)), Some(0));
        assert_eq!(t.rtt_us(c(1), c(9)), None);
        let mut s = state();
        s.rtt.pop();
        let t = Tables::build(&s).unwrap();
        assert_eq!(t.rtt_us(c(2), c(3)), None);
    }

    #[test]
    fn sparse_rtt_matrix_beyond_dense_limit() {
        let mut s = StaticState::new(ProxyId(1));
        let n = DENSE_RTT_CLUSTERS as u32 + 5;
        s.proxies = (1..=n)
            .map(|i| ProxyInfo {
                id: ProxyId(i),
                addr: Ipv4Addr::from_bits(0x0a00_0000 + i),
                cluster: ClusterId(i as u16),
                up: true,
            })
            .collect();
        s.rtt = (2..=n).map(|i| RttEntry { a: ClusterId(1), b: ClusterId(i as u16), rtt_us: i }).collect();
        let t = Tables::build(&s).unwrap();
        assert!(matches!(*t.rtt, RttTable::Sparse(_)));
        assert_eq!(t.rtt_us(ClusterId(700), ClusterId(1)), Some(700));
        assert_eq!(t.rtt_us(ClusterId(700), ClusterId(701)), None);
        assert_eq!(t.to_static_state().rtt.len(), s.rtt.len());
    }

    #[test]
    fn group_for_exact_then_whole_ip() {
        let t = tables();
        let (g, e) = t.group_for(AA, 53, 17).unwrap();
        assert_eq!(*g, udp(53));
        assert_eq!(e.raps(), &[ProxyId(3), ProxyId(1), ProxyId(5)]);
        assert_eq!(e.japs().len(), 4);
        assert_eq!(e.targets().len(), 3);
        assert_eq!(e.live_targets(), 2);
        assert!(e.has_live_target());
        assert!(e.has_rap(ProxyId(1)));
        assert!(!e.has_rap(ProxyId(2)));
        assert_eq!(e.candidate_japs(), e.japs());
        // Same port, other protocol: no group.
        assert!(t.group_for(AA, 53, 6).is_none());
        assert_eq!(*t.group_for(AA, 80, 6).unwrap().0, tcp(80));
        // Other port, ICMP: nothing at AA (no whole-IP group there).
        assert!(t.group_for(AA, 54, 17).is_none());
        assert!(t.group_for(AA, 0, 1).is_none());
        // The whole-IP group catches every port and protocol of its address.
        for (port, proto) in [(53, 17), (1, 6), (0, 1), (9, 47)] {
            let (g, e) = t.group_for(WHOLE, port, proto).unwrap();
            assert_eq!(*g, GroupAddr::WholeIp(WHOLE));
            assert!(e.options().rapless);
            assert!(e.raps().is_empty());
            assert_eq!(e.candidate_japs(), e.flooded());
        }
        assert!(t.group(&udp(53)).is_some());
        assert!(t.group(&udp(54)).is_none());
        assert_eq!(t.group_count(), 3);
        assert_eq!(t.groups().count(), 3);
    }

    #[test]
    fn exact_group_wins_over_whole_ip() {
        let mut s = state();
        let mut exact =
            GroupSpec::new(GroupAddr::Port { ip: WHOLE, port: 443, proto: GroupProto::Tcp }, GroupOptions::default());
        exact.raps = vec![ProxyId(2)];
        s.groups.push(exact);
        let t = Tables::build(&s).unwrap();
        assert_eq!(
            t.group_for(WHOLE, 443, 6).unwrap().0,
            &GroupAddr::Port { ip: WHOLE, port: 443, proto: GroupProto::Tcp }
        );
        assert_eq!(t.group_for(WHOLE, 443, 17).unwrap().0, &GroupAddr::WholeIp(WHOLE));
    }

    #[test]
    fn nearest_rap_by_rtt_then_order() {
        let t = tables();
        // RAPs 3 (cluster 2, 10 ms), 1 (me, cluster 1, 0), 5 (cluster 3, 50 ms).
        assert_eq!(t.nearest_rap(t.group(&udp(53)).unwrap()).unwrap().id, ProxyId(1));
        // RAPs 5 (50 ms), 4 (10 ms).
        assert_eq!(t.nearest_rap(t.group(&tcp(80)).unwrap()).unwrap().id, ProxyId(4));
        // RAP-less: none.
        assert!(t.nearest_rap(t.group(&GroupAddr::WholeIp(WHOLE)).unwrap()).is_none());
        // Ties go to the earlier RAP; unmeasured RTTs come last.
        let mut s = state();
        s.groups[1].raps = vec![ProxyId(4), ProxyId(3)];
        let t = Tables::build(&s).unwrap();
        assert_eq!(t.nearest_rap(t.group(&tcp(80)).unwrap()).unwrap().id, ProxyId(4));
        s.groups[1].raps = vec![ProxyId(3), ProxyId(4)];
        let t = Tables::build(&s).unwrap();
        assert_eq!(t.nearest_rap(t.group(&tcp(80)).unwrap()).unwrap().id, ProxyId(3));
        s.rtt.retain(|e| e.a != ClusterId(1) && e.b != ClusterId(1));
        s.groups[1].raps = vec![ProxyId(5), ProxyId(2)];
        let t = Tables::build(&s).unwrap();
        // 5's RTT is unknown now, 2 shares my cluster.
        assert_eq!(t.nearest_rap(t.group(&tcp(80)).unwrap()).unwrap().id, ProxyId(2));
        s.groups[1].raps = vec![ProxyId(5), ProxyId(3)];
        let t = Tables::build(&s).unwrap();
        assert_eq!(t.nearest_rap(t.group(&tcp(80)).unwrap()).unwrap().id, ProxyId(5));
    }

    #[test]
    fn nearest_rap_skips_dead_with_entry_from_older_snapshot() {
        // An entry from a snapshot where 4 was up, used with one where it
        // is down: resolution is by id, and the dead RAP is skipped.
        let old = tables();
        let mut s = state();
        s.groups[1].raps = vec![ProxyId(5)];
        s.proxies[3].up = false;
        let new = Tables::build(&s).unwrap();
        let e = old.group(&tcp(80)).unwrap();
        assert_eq!(new.nearest_rap(e).unwrap().id, ProxyId(5));
    }

    #[test]
    fn default_tables_miss_everything() {
        let t = Tables::default();
        assert!(t.group_for(AA, 53, 17).is_none());
        assert!(t.proxy_by_addr(Ipv4Addr::new(192, 0, 2, 1)).is_none());
        assert_eq!(t.rtt_us(ClusterId(1), ClusterId(2)), None);
        assert_eq!(t.group_count(), 0);
    }

    #[test]
    fn round_trips_through_static_state() {
        let s = state();
        let t = Tables::build(&s).unwrap();
        let back = t.to_static_state();
        assert_eq!(back.me, s.me);
        assert_eq!(back.version, s.version);
        assert_eq!(back.proxies, s.proxies);
        assert_eq!(back.anycast, s.anycast);
        let mut groups = s.groups.clone();
        groups.sort_unstable_by_key(|g| g.group);
        assert_eq!(back.groups, groups);
        let rtt = |v: &[RttEntry]| {
            let mut v: Vec<_> = v.iter().map(|e| (e.a.min(e.b), e.a.max(e.b), e.rtt_us)).collect();
            v.sort_unstable();
            v
        };
        assert_eq!(rtt(&back.rtt), rtt(&s.rtt));
        let again = Tables::build(&back).unwrap().to_static_state();
        assert_eq!(again, back);
    }

    #[test]
    fn with_groups_and_with_rtt_share_the_rest() {
        let t = tables();
        let mut groups = state().groups;
        groups.truncate(1);
        let t2 = t.with_groups(&groups, 8).unwrap();
        assert_eq!(t2.version(), 8);
        assert_eq!(t2.group_count(), 1);
        assert!(Arc::ptr_eq(&t.proxies, &t2.proxies));
        assert!(Arc::ptr_eq(&t.rtt, &t2.rtt));
        let t3 = t2.with_rtt(&[RttEntry { a: ClusterId(1), b: ClusterId(3), rtt_us: 5 }], 9).unwrap();
        assert!(Arc::ptr_eq(&t2.groups, &t3.groups));
        assert_eq!(t3.rtt_us(ClusterId(3), ClusterId(1)), Some(5));
        assert_eq!(t3.rtt_us(ClusterId(1), ClusterId(2)), None);
        // Validation still applies.
        let mut bad = groups.clone();
        bad[0].raps.push(ProxyId(42));
        assert!(matches!(t.with_groups(&bad, 10), Err(TablesError::UnknownProxy { .. })));
        let bad_rtt = [RttEntry { a: ClusterId(1), b: ClusterId(77), rtt_us: 5 }];
        assert!(matches!(t.with_rtt(&bad_rtt, 10), Err(TablesError::RttUnknownCluster { index: 0, .. })));
    }

    /// Each broken state and the error it must give, with its message.
    #[test]
    fn validation_errors_say_what_and_where() {
        type Case = (fn(&mut StaticState), TablesError, &'static str);
        let cases: Vec<Case> = vec![
            (
                |s| s.me = ProxyId(77),
                TablesError::SelfUnknown { me: ProxyId(77) },
                "this proxy (id 77) is not in the proxy list",
            ),
            (
                |s| s.proxies[2].id = ProxyId(1),
                TablesError::DuplicateProxyId { index: 2, first: 0, id: ProxyId(1) },
                "proxies[2]: id 1 repeats proxies[0]",
            ),
            (
                |s| s.proxies[1].addr = Ipv4Addr::new(192, 0, 2, 1),
                TablesError::DuplicateProxyAddr { index: 1, first: 0, addr: Ipv4Addr::new(192, 0, 2, 1) },
                "proxies[1]: address 192.0.2.1 is already proxies[0]'s",
            ),
            (
                |s| s.proxies[1].addr = Ipv4Addr::new(224, 0, 0, 5),
                TablesError::ProxyAddrNotUnicast { index: 1, addr: Ipv4Addr::new(224, 0, 0, 5) },
                "not a unicast host address",
            ),
            (
                |s| s.proxies[1].addr = Ipv4Addr::new(198, 51, 100, 1),
                TablesError::ProxyAddrInAnycast {
                    index: 1,
                    addr: Ipv4Addr::new(198, 51, 100, 1),
                    prefix: "198.51.100.0/24".parse().unwrap(),
                },
                "inside the anycast prefix 198.51.100.0/24",
            ),
            (
                |s| s.rtt[1].a = ClusterId(9),
                TablesError::RttUnknownCluster { index: 1, cluster: ClusterId(9) },
                "rtt[1]: no proxy is in cluster 9",
            ),
            (
                |s| s.rtt[0].b = ClusterId(1),
                TablesError::RttSameCluster { index: 0, cluster: ClusterId(1) },
                "rtt[0]: both ends are cluster 1",
            ),
            (
                |s| s.rtt.push(RttEntry { a: ClusterId(2), b: ClusterId(1), rtt_us: 3 }),
                TablesError::DuplicateRtt { index: 3, first: 0, a: ClusterId(2), b: ClusterId(1) },
                "rtt[3]: clusters 2 and 1 are already in rtt[0]",
            ),
            (
                |s| {
                    let g = s.groups[0].clone();
                    s.groups.push(g);
                },
                TablesError::DuplicateGroup { index: 3, first: 0, group: udp(53) },
                "groups[3]: 198.51.100.10:53/udp repeats groups[0]",
            ),
            (
                |s| s.groups[0].group = GroupAddr::WholeIp(Ipv4Addr::new(203, 0, 113, 1)),
                TablesError::GroupOutsideAnycast { index: 0, group: GroupAddr::WholeIp(Ipv4Addr::new(203, 0, 113, 1)) },
                "groups[0]: 203.0.113.1/ip is outside every anycast prefix",
            ),
            (
                |s| s.groups[1].group = udp(0),
                TablesError::GroupPortZero { index: 1, group: udp(0) },
                "groups[1]: 198.51.100.10:0/udp: port 0",
            ),
            (
                |s| s.groups[1].raps.clear(),
                TablesError::NoRaps { index: 1, group: tcp(80) },
                "groups[1]: 198.51.100.10:80/tcp has no raps",
            ),
            (
                |s| s.groups[2].raps.push(ProxyId(1)),
                TablesError::RaplessWithRaps { index: 2, group: GroupAddr::WholeIp(WHOLE) },
                "is rapless but lists raps",
            ),
            (
                |s| s.groups[1].flooded.push(jap(2, 1)),
                TablesError::FloodedWithoutRapless { index: 1, group: tcp(80) },
                "lists flooded JAPs but is not rapless",
            ),
            (
                |s| s.groups[1].japs.push(jap(2, 1)),
                TablesError::JapsButNotRap { index: 1, group: tcp(80), me: ProxyId(1) },
                "groups[1]: 198.51.100.10:80/tcp lists japs, but this proxy (id 1) is not one of its raps",
            ),
            (
                |s| s.groups[0].raps = (1..=9).map(ProxyId).collect(),
                TablesError::TooManyMembers {
                    index: 0,
                    group: udp(53),
                    field: GroupField::Raps,
                    count: 9,
                    max: MAX_RAPS,
                },
                "groups[0].raps: 9 entries, at most 8",
            ),
            (
                |s| s.groups[0].raps[2] = ProxyId(42),
                TablesError::UnknownProxy {
                    index: 0,
                    group: udp(53),
                    field: GroupField::Raps,
                    item: 2,
                    id: ProxyId(42),
                },
                "groups[0].raps[2]: unknown proxy id 42",
            ),
            (
                |s| s.groups[0].japs[1].jap = ProxyId(42),
                TablesError::UnknownProxy {
                    index: 0,
                    group: udp(53),
                    field: GroupField::Japs,
                    item: 1,
                    id: ProxyId(42),
                },
                "groups[0].japs[1]: unknown proxy id 42",
            ),
            (
                |s| s.groups[2].flooded[1].jap = ProxyId(42),
                TablesError::UnknownProxy {
                    index: 2,
                    group: GroupAddr::WholeIp(WHOLE),
                    field: GroupField::Flooded,
                    item: 1,
                    id: ProxyId(42),
                },
                "groups[2].flooded[1]: unknown proxy id 42",
            ),
            (
                |s| s.groups[0].raps[0] = ProxyId(6),
                TablesError::DeadRap { index: 0, group: udp(53), item: 0, id: ProxyId(6) },
                "groups[0].raps[0]: proxy id 6 is down",
            ),
            (
                |s| s.groups[0].raps[2] = ProxyId(3),
                TablesError::DuplicateMember { index: 0, group: udp(53), field: GroupField::Raps, item: 2, first: 0 },
                "groups[0].raps[2]: repeats raps[0]",
            ),
            (
                |s| s.groups[0].japs[3].jap = ProxyId(1),
                TablesError::DuplicateMember { index: 0, group: udp(53), field: GroupField::Japs, item: 3, first: 0 },
                "groups[0].japs[3]: repeats japs[0]",
            ),
            (
                |s| s.groups[0].targets[2].addr = s.groups[0].targets[0].addr,
                TablesError::DuplicateMember {
                    index: 0,
                    group: udp(53),
                    field: GroupField::Targets,
                    item: 2,
                    first: 0,
                },
                "groups[0].targets[2]: repeats targets[0]",
            ),
            (
                |s| s.groups[0].targets[1].addr.ip = Ipv4Addr::new(127, 0, 0, 1),
                TablesError::TargetNotUnicast {
                    index: 0,
                    group: udp(53),
                    item: 1,
                    addr: TargetAddr { ip: Ipv4Addr::new(127, 0, 0, 1), port: 53 },
                },
                "groups[0].targets[1]: 127.0.0.1 is not a unicast host address",
            ),
            (
                |s| s.groups[0].targets[1].addr.ip = Ipv4Addr::new(198, 51, 100, 99),
                TablesError::TargetInAnycast {
                    index: 0,
                    group: udp(53),
                    item: 1,
                    addr: TargetAddr { ip: Ipv4Addr::new(198, 51, 100, 99), port: 53 },
                    prefix: "198.51.100.0/24".parse().unwrap(),
                },
                "groups[0].targets[1]: 198.51.100.99 is inside the anycast prefix 198.51.100.0/24",
            ),
            (
                |s| s.groups[0].targets[0].addr.ip = Ipv4Addr::new(192, 0, 2, 3),
                TablesError::TargetIsProxy {
                    index: 0,
                    group: udp(53),
                    item: 0,
                    addr: TargetAddr { ip: Ipv4Addr::new(192, 0, 2, 3), port: 53 },
                    proxy: ProxyId(3),
                },
                "groups[0].targets[0]: 192.0.2.3 is proxy id 3's address",
            ),
            (
                |s| s.groups[2].targets[0].addr.port = 8080,
                TablesError::WholeIpTargetPort {
                    index: 2,
                    group: GroupAddr::WholeIp(WHOLE),
                    item: 0,
                    addr: TargetAddr { ip: Ipv4Addr::new(203, 0, 113, 9), port: 8080 },
                },
                "port must be 0, not 8080",
            ),
        ];
        for (i, (breakit, want, msg)) in cases.into_iter().enumerate() {
            let mut s = state();
            breakit(&mut s);
            let got = Tables::build(&s).unwrap_err();
            assert_eq!(got, want, "case {i}");
            let text = got.to_string();
            assert!(text.contains(msg), "case {i}: {text:?} lacks {msg:?}");
        }
    }

    #[test]
    fn caps_are_enforced() {
        let mut s = state();
        s.proxies = (0..=MAX_PROXIES as u32)
            .map(|i| ProxyInfo {
                id: ProxyId(i),
                addr: Ipv4Addr::from_bits(0x0a00_0000 + i),
                cluster: ClusterId(1),
                up: true,
            })
            .collect();
        assert_eq!(
            Tables::build(&s).unwrap_err(),
            TablesError::TooManyProxies { count: MAX_PROXIES + 1, max: MAX_PROXIES }
        );
        let mut s = state();
        s.groups[0].targets = (0..=MAX_TARGETS_PER_GROUP as u32)
            .map(|i| LocalTarget {
                addr: TargetAddr { ip: Ipv4Addr::from_bits(0xcb00_7100 + (i >> 8)), port: i as u16 + 1 },
                alive: true,
                weight: 1,
            })
            .collect();
        assert!(matches!(
            Tables::build(&s),
            Err(TablesError::TooManyMembers { field: GroupField::Targets, count, .. }) if count == MAX_TARGETS_PER_GROUP + 1
        ));
        let mut s = state();
        s.groups[0].japs = (0..=MAX_JAPS_PER_GROUP as u32).map(|i| jap(i, 1)).collect();
        assert!(matches!(Tables::build(&s), Err(TablesError::TooManyMembers { field: GroupField::Japs, .. })));
    }

    #[test]
    fn dead_japs_and_targets_are_allowed() {
        // Only RAP lists must be live; JAP views and targets carry state.
        let t = tables();
        let e = t.group(&udp(53)).unwrap();
        assert!(e.japs().iter().any(|j| j.jap == ProxyId(6)));
        assert!(e.targets().iter().any(|t| !t.alive));
    }

    proptest! {
        /// Lookups on arbitrary addresses, ports and protocols never panic
        /// and only return a group that matches the packet.
        #[test]
        fn lookups_never_panic(ip in any::<u32>(), port in any::<u16>(), proto in any::<u8>(), id in any::<u32>(), c1 in any::<u16>(), c2 in any::<u16>()) {
            let t = tables();
            let ip = Ipv4Addr::from_bits(ip);
            if let Some((g, _)) = t.group_for(ip, port, proto) {
                prop_assert_eq!(g.ip(), ip);
                match *g {
                    GroupAddr::Port { port: p, proto: pr, .. } => {
                        prop_assert_eq!(p, port);
                        prop_assert_eq!(pr.ip_proto(), proto);
                    }
                    GroupAddr::WholeIp(_) => {}
                }
            }
            let _ = t.proxy_by_addr(ip);
            let _ = t.proxy(ProxyId(id));
            let _ = t.is_up(ProxyId(id));
            let r = t.rtt_us(ClusterId(c1), ClusterId(c2));
            prop_assert_eq!(r, t.rtt_us(ClusterId(c2), ClusterId(c1)));
            let d = Tables::default();
            prop_assert!(d.group_for(ip, port, proto).is_none());
        }

        /// Build never panics on random states; whatever it accepts it
        /// round-trips.
        #[test]
        fn build_never_panics(
            nproxies in 0usize..8,
            me in 0u32..8,
            clusters in proptest::collection::vec(0u16..4, 8),
            ups in proptest::collection::vec(any::<bool>(), 8),
            rtts in proptest::collection::vec((0u16..5, 0u16..5, any::<u32>()), 0..6),
            groups in proptest::collection::vec(
                (0u8..4, 0u16..3, any::<bool>(), proptest::collection::vec(0u32..9, 0..4),
                 proptest::collection::vec(0u32..9, 0..4), proptest::collection::vec((0u8..4, 0u16..3), 0..3)),
                0..5),
        ) {
            let mut s = StaticState::new(ProxyId(me));
            s.anycast = vec!["198.51.100.0/24".parse().unwrap()];
            s.proxies = (0..nproxies as u32).map(|i| ProxyInfo {
                id: ProxyId(i),
                addr: Ipv4Addr::new(192, 0, 2, i as u8 + 1),
                cluster: ClusterId(clusters[i as usize]),
                up: ups[i as usize],
            }).collect();
            s.rtt = rtts.iter().map(|&(a, b, r)| RttEntry { a: ClusterId(a), b: ClusterId(b), rtt_us: r }).collect();
            s.groups = groups.iter().map(|(ipb, port, rapless, raps, japs, targets)| {
                let g = if *port == 0 { GroupAddr::WholeIp(Ipv4Addr::new(198, 51, 100, *ipb)) } else { udp(*port) };
                let mut spec = GroupSpec::new(g, GroupOptions { rapless: *rapless, ..Default::default() });
                spec.raps = raps.iter().map(|&i| ProxyId(i)).collect();
                if *rapless { spec.flooded = japs.iter().map(|&i| jap(i, 1)).collect(); } else { spec.japs = japs.iter().map(|&i| jap(i, 1)).collect(); }
                spec.targets = targets.iter().map(|&(l, p)| target(l + 1, p)).collect();
                spec
            }).collect();
            if let Ok(t) = Tables::build(&s) {
                let back = t.to_static_state();
                let t2 = Tables::build(&back).unwrap();
                prop_assert_eq!(t2.to_static_state(), back);
                for (_, e) in t.groups() {
                    let _ = t.nearest_rap(e);
                }
            }
        }
    }
}
