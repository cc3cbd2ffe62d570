//! Why a packet was dropped: one named reason per check, so every bad packet
//! is counted where an operator can see it (DESIGN.md §4; Katran keeps a
//! counter per reason for the same purpose).
//!
//! Reasons are a small `Copy` enum indexing a fixed array of counters: the
//! fast path never allocates or formats to count a drop.

macro_rules! reasons {
    ($( $(#[$doc:meta])* $name:ident => $label:literal, )*) => {
        /// A drop reason. `as usize` indexes [`DropCounts`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $( $(#[$doc])* $name, )*
        }

        impl DropReason {
            /// Every reason, in index order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];

            /// The metric label (`snake_case`, stable: dashboards use it).
            pub const fn label(self) -> &'static str {
                match self {
                    $(DropReason::$name => $label,)*
                }
            }
        }
    };
}

reasons! {
    /// Shorter than an Ethernet header (or its VLAN tag).
    EthTruncated => "eth_truncated",
    /// Unicast frame for another MAC (the port is promiscuous or shared).
    EthNotOurMac => "eth_not_our_mac",
    /// Source MAC is multicast or broadcast (RFC 1812 §5.3.7 spirit).
    EthBadSource => "eth_bad_source",
    /// An EtherType piasd does not serve (IPv6 until it is supported, LLDP…).
    EthUnsupportedType => "eth_unsupported_type",
    /// An 802.1Q tag on a port with no VLAN configured, or a second tag.
    EthVlan => "eth_vlan",
    /// ARP shorter than its header or not Ethernet/IPv4.
    ArpMalformed => "arp_malformed",
    /// ARP whose target address is not one of ours (not answered).
    ArpNotForUs => "arp_not_for_us",
    /// ARP with a sender address that cannot be a neighbour.
    ArpBadSender => "arp_bad_sender",
    /// IPv4 header truncated.
    Ipv4Truncated => "ipv4_truncated",
    /// IP version is not 4.
    Ipv4BadVersion => "ipv4_bad_version",
    /// IHL below 5 or beyond the packet.
    Ipv4BadIhl => "ipv4_bad_ihl",
    /// Total length below the header or beyond the frame.
    Ipv4BadLength => "ipv4_bad_length",
    /// IPv4 header checksum does not verify.
    Ipv4BadChecksum => "ipv4_bad_checksum",
    /// Source is multicast, broadcast, loopback, unspecified or our own.
    Ipv4BadSource => "ipv4_bad_source",
    /// A fragment addressed to the proxy itself (not reassembled here).
    Ipv4Fragment => "ipv4_fragment",
    /// Not for one of our addresses and not to be forwarded.
    Ipv4NotForUs => "ipv4_not_for_us",
    /// ICMP shorter than its header.
    IcmpTruncated => "icmp_truncated",
    /// ICMP checksum does not verify.
    IcmpBadChecksum => "icmp_bad_checksum",
    /// ICMP to an anycast address that is not an echo request.
    IcmpUnhandled => "icmp_unhandled",
    /// Traffic to an anycast address that no served group matches.
    AnycastNoGroup => "anycast_no_group",
    /// To our unicast address but the port has no exception path.
    NoExceptionPath => "no_exception_path",
    /// The ring to the control core was full.
    PuntRingFull => "punt_ring_full",
    /// The TX queue did not take the packet.
    TxFull => "tx_full",
    /// The control core's ring to a worker's TX was full.
    XmitRingFull => "xmit_ring_full",
    /// Multi-segment mbuf (piasd uses single-segment buffers).
    MultiSegment => "multi_segment",
    /// The control core could not use a punted packet.
    ControlRejected => "control_rejected",
    /// No headroom to push a tunnel or ICMP header (mbuf too small).
    NoHeadroom => "no_headroom",
    /// UDP length or TCP data offset inconsistent with the IP payload.
    L4Malformed => "l4_malformed",
    /// A transport protocol the group cannot carry (port groups: TCP/UDP).
    UnsupportedProtocol => "unsupported_protocol",
    /// IP-in-IP from an address that is not a known proxy (spoofed).
    TunnelUnknownSource => "tunnel_unknown_source",
    /// IP-in-IP whose outer or inner header does not check.
    TunnelMalformed => "tunnel_malformed",
    /// A fragmented tunnel packet (the proxies do not reassemble).
    TunnelFragment => "tunnel_fragment",
    /// IP-in-IP inside IP-in-IP (nesting is capped at one level).
    TunnelNested => "tunnel_nested",
    /// The tunnelled packet is not addressed to an anycast group.
    TunnelInnerNotAnycast => "tunnel_inner_not_anycast",
    /// The inner source is a proxy address: it would loop.
    TunnelLoop => "tunnel_loop",
    /// TTL expired (answered with ICMP time exceeded where allowed).
    TtlExceeded => "ttl_exceeded",
    /// DF set and too big for the tunnel (answered with frag needed).
    TooBig => "too_big",
    /// The next hop's MAC is not resolved yet.
    NoNeighbour => "no_neighbour",
    /// The group has no live RAP known to this proxy.
    NoRap => "no_rap",
    /// The RAP knows no live JAP for the group.
    NoJap => "no_jap",
    /// This JAP has no live target and no RAP to send the packet back to.
    NoTarget => "no_target",
    /// A packet to a NAT port with no mapping.
    NatNoEntry => "nat_no_entry",
    /// The NAT table is full: new flow refused.
    NatTableFull => "nat_table_full",
    /// The worker's NAT port range is exhausted for that target.
    NatPortsExhausted => "nat_ports_exhausted",
    /// The owning worker's handoff ring was full.
    HandoffRingFull => "handoff_ring_full",
    /// A fragment whose first fragment was not seen (or expired).
    FragmentUnmatched => "fragment_unmatched",
    /// An ICMP error quoting no known flow, or one not translated.
    IcmpErrorUnmatched => "icmp_error_unmatched",
    /// An ICMP message the proxy never relays or translates: a redirect, a
    /// source quench, or a tunnel error RFC 2003 §4 forbids relaying (port
    /// unreachable, source route failed, parameter problem about our outer
    /// header), or one about a non-initial fragment or an ICMP error.
    IcmpNotRelayed => "icmp_not_relayed",
    /// An ICMP error from inside a tunnel that quotes too little of the
    /// inner packet (its header and 8 bytes) to be relayed (RFC 2003 §4).
    IcmpQuoteTooShort => "icmp_quote_too_short",
    /// An ICMP error the proxy would have sent was refused by the per-worker
    /// rate limit (RFC 1812 §4.3.2.8); the packet that caused it is dropped.
    IcmpRateLimited => "icmp_rate_limited",
    /// A first fragment not tracked: the fragment tracker holds its cap of
    /// datagrams (its later fragments could not be matched).
    FragmentTrackerFull => "fragment_tracker_full",
    /// An out-of-order fragment that could not be held (a hold cap), or one
    /// the worker could not hand to the tracker.
    FragmentHoldRefused => "fragment_hold_refused",
    /// A held fragment whose first fragment did not come in time.
    FragmentExpired => "fragment_expired",
    /// A first fragment seen twice by the worker that tracks its datagram
    /// (a network duplicate; never forwarded twice).
    FragmentDuplicate => "fragment_duplicate",
}

/// Number of reasons.
pub const DROP_REASONS: usize = DropReason::ALL.len();

/// A plain per-core array of drop counters, indexed by reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DropCounts(pub [u64; DROP_REASONS]);

impl Default for DropCounts {
    fn default() -> Self {
        DropCounts([0; DROP_REASONS])
    }
}

impl DropCounts {
    /// Counts one drop.
    #[inline]
    pub fn bump(&mut self, r: DropReason) {
        self.0[r as usize] += 1;
    }

    /// The count for `r`.
    pub fn get(&self, r: DropReason) -> u64 {
        self.0[r as usize]
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_indices_dense() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert!(r.label().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        }
        let mut labels: Vec<_> = DropReason::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), DROP_REASONS);
    }
}
