//! What IPv4 and (later) IPv6 share: the protocol number of the next header.

use core::fmt;

/// The IP protocol number (IPv4 "protocol", IPv6 "next header"), with the
/// values the proxy acts on named.
///
/// Build it with `From<u8>`, which never yields `Unknown` for a named number,
/// so that equality means equality of the wire value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpProtocol {
    /// ICMP for IPv4 (1).
    Icmp,
    /// IPv4 encapsulated in IPv4 (4), RFC 2003: the proxy's tunnels.
    IpIp,
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// Any other protocol number.
    Unknown(u8),
}

impl IpProtocol {
    /// The wire value.
    #[inline]
    pub const fn number(self) -> u8 {
        match self {
            IpProtocol::Icmp => 1,
            IpProtocol::IpIp => 4,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Unknown(n) => n,
        }
    }
}

impl From<u8> for IpProtocol {
    #[inline]
    fn from(n: u8) -> Self {
        match n {
            1 => IpProtocol::Icmp,
            4 => IpProtocol::IpIp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            n => IpProtocol::Unknown(n),
        }
    }
}

impl From<IpProtocol> for u8 {
    #[inline]
    fn from(p: IpProtocol) -> u8 {
        p.number()
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpProtocol::Icmp => f.write_str("ICMP"),
            IpProtocol::IpIp => f.write_str("IP-in-IP"),
            IpProtocol::Tcp => f.write_str("TCP"),
            IpProtocol::Udp => f.write_str("UDP"),
            IpProtocol::Unknown(n) => write!(f, "proto {n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_number() {
        for n in 0..=u8::MAX {
            assert_eq!(IpProtocol::from(n).number(), n);
        }
        assert_eq!(IpProtocol::from(6), IpProtocol::Tcp);
        assert_eq!(IpProtocol::IpIp.to_string(), "IP-in-IP");
    }
}
