//! Identifiers shared by the dataplane and the control plane.
//!
//! Types over bare integers (STYLE.md): a `ProxyId` cannot be passed where a
//! `ClusterId` is expected, and a group is a `GroupAddr`, never a loose
//! `(u32, u16)`. These types cross the worker ↔ control boundary
//! ([`crate::iface`]), so they are small, `Copy` and free of allocation.

use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};

/// A proxy (AP) in the proxy group, unique within it (seed §3.2: every AP
/// knows every AP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProxyId(pub u32);

/// A cluster of 3–4 proxies in one POP that advertise the anycast prefix into
/// the IGP together (seed §3.4). Proximity is measured between clusters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterId(pub u16);

/// Transport protocol a group is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupProto {
    /// IP protocol 6.
    Tcp,
    /// IP protocol 17.
    Udp,
}

impl GroupProto {
    /// The IPv4 protocol number.
    pub const fn ip_proto(self) -> u8 {
        match self {
            GroupProto::Tcp => 6,
            GroupProto::Udp => 17,
        }
    }

    /// The protocol for an IPv4 protocol number, if groups can use it.
    pub const fn from_ip_proto(p: u8) -> Option<Self> {
        match p {
            6 => Some(GroupProto::Tcp),
            17 => Some(GroupProto::Udp),
            _ => None,
        }
    }
}

/// An anycast group: the transport address `AA:g` (anycast IP, port and
/// protocol), or a whole anycast IP (every port, every protocol).
///
/// Lookup order at the IAP is exact `AA:g/proto` first, then the whole-IP
/// group of `AA`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupAddr {
    /// `AA:g` for one protocol.
    Port {
        /// The anycast address `AA`, inside a served anycast prefix.
        ip: Ipv4Addr,
        /// The group's port `g`.
        port: u16,
        /// TCP or UDP.
        proto: GroupProto,
    },
    /// Every packet to `AA`, whatever the protocol and port.
    WholeIp(Ipv4Addr),
}

impl GroupAddr {
    /// The anycast address of the group.
    pub const fn ip(&self) -> Ipv4Addr {
        match *self {
            GroupAddr::Port { ip, .. } | GroupAddr::WholeIp(ip) => ip,
        }
    }
}

impl fmt::Display for GroupAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupAddr::Port { ip, port, proto } => {
                let p = match proto {
                    GroupProto::Tcp => "tcp",
                    GroupProto::Udp => "udp",
                };
                write!(f, "{ip}:{port}/{p}")
            }
            GroupAddr::WholeIp(ip) => write!(f, "{ip}/ip"),
        }
    }
}

/// How a RAP picks a JAP for a group (seed §3.2, §3.3, §3.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Criterion {
    /// The JAP whose cluster is nearest the IAP's cluster by the RTT matrix.
    #[default]
    Proximity,
    /// Weighted by the JAPs' approximate target counts.
    Load,
    /// Uniformly at random.
    Random,
    /// Weighted by operator-set weights.
    Weighted,
}

/// Per-group options carried by joins and group registration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupOptions {
    /// JAP selection at the RAP.
    pub criterion: Criterion,
    /// All packets of one client (by address) reach the same target, also
    /// when routing moves the client to another IAP.
    pub affinity: bool,
    /// Small, stable groups: JAP information flooded to every proxy, no RAP
    /// hop (seed §3.2, end).
    pub rapless: bool,
}

/// A target's transport address `AT:r`. For whole-IP groups `port` is 0 and
/// the client's destination port is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetAddr {
    /// The target's unicast address `AT`.
    pub ip: Ipv4Addr,
    /// The target's port `r` (0: keep the packet's port).
    pub port: u16,
}

impl TargetAddr {
    /// As a socket address.
    pub const fn sock(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.ip, self.port)
    }
}

/// A proxy as the dataplane needs to know it: its id, the unicast address
/// tunnels are sent to, its cluster and whether it is believed up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProxyInfo {
    /// Unique id in the proxy group.
    pub id: ProxyId,
    /// Unicast address: tunnel endpoint and control source.
    pub addr: Ipv4Addr,
    /// POP cluster.
    pub cluster: ClusterId,
    /// Up by the overlay's membership (heartbeats and floods).
    pub up: bool,
}

/// One JAP of a group as a RAP sees it: the proxy and its approximate
/// target count (seed §3.3), plus an operator weight for `Weighted`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JapLoad {
    /// The JAP.
    pub jap: ProxyId,
    /// Approximate number of live targets at that JAP.
    pub approx_targets: u32,
    /// True when the JAP reported its targets overloaded.
    pub overloaded: bool,
    /// Operator weight (criterion `Weighted`), 0 = not set.
    pub weight: u16,
}
