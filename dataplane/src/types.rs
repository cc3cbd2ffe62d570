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

/// A group written other than as `IP:PORT/tcp`, `IP:PORT/udp` (port not 0)
/// or `IP/ip`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadGroupAddr;

impl fmt::Display for BadGroupAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected IP:PORT/tcp, IP:PORT/udp or IP/ip")
    }
}

/// The inverse of `Display`: one syntax for piasd's config, `pias-target`
/// and the operator.
impl core::str::FromStr for GroupAddr {
    type Err = BadGroupAddr;

    fn from_str(s: &str) -> Result<Self, BadGroupAddr> {
        let (addr, kind) = s.rsplit_once('/').ok_or(BadGroupAddr)?;
        let proto = match kind {
            "ip" => return addr.parse().map(GroupAddr::WholeIp).map_err(|_| BadGroupAddr),
            "tcp" => GroupProto::Tcp,
            "udp" => GroupProto::Udp,
            _ => return Err(BadGroupAddr),
        };
        let sa: SocketAddrV4 = addr.parse().map_err(|_| BadGroupAddr)?;
        if sa.port() == 0 {
            return Err(BadGroupAddr);
        }
        Ok(GroupAddr::Port { ip: *sa.ip(), port: sa.port(), proto })
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

/// An IPv4 prefix such as the anycast block `198.51.100.0/24` or a port's
/// `192.0.2.10/24` (address plus on-link prefix length).
///
/// `addr` keeps the host bits as written (a port address is a host inside
/// its subnet); [`Ipv4Prefix::contains`] compares only the network bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Prefix {
    /// The address as written.
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub len: u8,
}

impl Ipv4Prefix {
    /// A prefix; `None` when `len > 32`.
    pub const fn new(addr: Ipv4Addr, len: u8) -> Option<Self> {
        if len > 32 {
            None
        } else {
            Some(Ipv4Prefix { addr, len })
        }
    }

    /// The network mask as a host-order integer.
    #[inline]
    pub const fn mask(&self) -> u32 {
        // Shifted in 64 bits, so /0 needs no branch (a shift by 32 clears
        // the low word); a length over 32 (not constructible by `new` or
        // parsing) counts as 32.
        let shift = 32u32.saturating_sub(self.len as u32);
        ((u32::MAX as u64) << shift) as u32
    }

    /// The network address (host bits cleared).
    pub const fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addr.to_bits() & self.mask())
    }

    /// True when `ip` is inside the prefix.
    #[inline]
    pub const fn contains(&self, ip: Ipv4Addr) -> bool {
        (ip.to_bits() ^ self.addr.to_bits()) & self.mask() == 0
    }

    /// The subnet's broadcast address.
    pub const fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addr.to_bits() | !self.mask())
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl core::str::FromStr for Ipv4Prefix {
    type Err = &'static str;

    /// Parses `a.b.c.d/len`; a bare address is a /32.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: Ipv4Addr = a.parse().map_err(|_| "an IPv4 address like 192.0.2.10/24")?;
        let len = match l {
            None => 32,
            Some(l) => l.parse::<u8>().map_err(|_| "a prefix length 0..=32 after '/'")?,
        };
        Ipv4Prefix::new(addr, len).ok_or("a prefix length 0..=32 after '/'")
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn group_addresses_parse_as_they_print() {
        for g in ["198.51.100.10:80/tcp", "198.51.100.10:53/udp", "198.51.100.20/ip"] {
            let a: GroupAddr = g.parse().unwrap();
            assert_eq!(a.to_string(), g);
        }
        for bad in ["198.51.100.10:0/tcp", "198.51.100.10/tcp", "198.51.100.10:53/sctp", "198.51.100.10:53", "x/ip", "198.51.100.10:80/ip", ""] {
            assert_eq!(bad.parse::<GroupAddr>(), Err(BadGroupAddr), "{bad}");
        }
    }

    use super::*;

    #[test]
    fn prefix_contains_and_parse() {
        let p: Ipv4Prefix = "198.51.100.0/24".parse().unwrap();
        assert!(p.contains(Ipv4Addr::new(198, 51, 100, 77)));
        assert!(!p.contains(Ipv4Addr::new(198, 51, 101, 1)));
        assert_eq!(p.broadcast(), Ipv4Addr::new(198, 51, 100, 255));
        let all: Ipv4Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(203, 0, 113, 9)));
        let host: Ipv4Prefix = "192.0.2.10".parse().unwrap();
        assert_eq!(host.len, 32);
        assert!(host.contains(Ipv4Addr::new(192, 0, 2, 10)));
        assert!(!host.contains(Ipv4Addr::new(192, 0, 2, 11)));
        assert!("192.0.2.1/33".parse::<Ipv4Prefix>().is_err());
        assert!("192.0.2/24".parse::<Ipv4Prefix>().is_err());
        assert!("192.0.2.1/x".parse::<Ipv4Prefix>().is_err());
    }
}
