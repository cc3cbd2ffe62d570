//! What the role machines may read of the rest of the proxy: the
//! [`View`] trait. The composition ([`crate::proxy::ProxyControl`])
//! implements it over its registry, membership, rendezvous and RTT
//! tables; unit tests implement it over a few fixed values. Machines read
//! through it and never write: each machine's own state stays its own, so
//! the borrow of `&mut jap` beside `&view` is plain field splitting.

use core::net::Ipv4Addr;

use pias_dataplane::tables::Tables;
use pias_dataplane::types::{GroupAddr, GroupOptions, Ipv4Prefix, ProxyId, ProxyInfo, TargetAddr};

/// This proxy's knowledge of the proxy group, read-only.
pub trait View {
    /// This proxy.
    fn me(&self) -> ProxyId;
    /// Options of a registered, not withdrawn group that this proxy
    /// serves (inside its anycast prefixes); `None` otherwise.
    fn options(&self, g: &GroupAddr) -> Option<GroupOptions>;
    /// The group's RAPs, best-ranked first (empty for RAP-less and
    /// unknown groups, or when no proxy is live).
    fn raps(&self, g: &GroupAddr) -> &[ProxyId];
    /// Whether `t` may be a target of `g` (see [`target_allowed`]).
    fn target_allowed(&self, g: &GroupAddr, t: &TargetAddr) -> bool;
    /// Live proxies other than this one, by id.
    fn peers(&self) -> &[ProxyId];
    /// A snapshot of the proxies (with clusters and up/down state) and the
    /// cluster RTT matrix, without groups: what the dataplane's selection
    /// functions ([`pias_dataplane::select`]) rank JAPs with. Current as
    /// of the last membership or RTT change.
    fn tables(&self) -> &Tables;
    /// A proxy by id (up or down).
    fn proxy(&self, id: ProxyId) -> Option<ProxyInfo>;
    /// A proxy by unicast address (up or down).
    fn proxy_by_addr(&self, ip: Ipv4Addr) -> Option<ProxyInfo>;
}

/// True for an address a target can have: not unspecified, "this
/// network" (0/8), loopback, multicast, reserved (240/4) or broadcast.
/// The same rule as the dataplane's table validation.
pub fn is_unicast_host(ip: Ipv4Addr) -> bool {
    let first = ip.octets()[0];
    first != 0 && first != 127 && first < 224
}

/// Whether `t` may be a target of `g`: exactly the checks
/// [`Tables::build`] makes on a group's targets, so that no accepted join
/// can make a table snapshot invalid. A unicast host address, outside
/// every anycast prefix, not a proxy's address (`is_proxy`), and port 0 for
/// whole-IP groups (they keep the client's port).
pub fn target_allowed(
    g: &GroupAddr,
    t: &TargetAddr,
    anycast: &[Ipv4Prefix],
    is_proxy: impl Fn(Ipv4Addr) -> bool,
) -> bool {
    let whole_ip_with_port = matches!(g, GroupAddr::WholeIp(_)) && t.port != 0;
    is_unicast_host(t.ip)
        && !anycast.iter().any(|p| p.contains(t.ip))
        && !is_proxy(t.ip)
        && !whole_ip_with_port
}

#[cfg(test)]
pub(crate) mod testing {
    //! A fixed [`View`] for the machines' unit tests.

    use super::*;
    use hashbrown::HashMap;
    use pias_dataplane::tables::StaticState;
    use pias_dataplane::types::ClusterId;

    /// Proxies 1..=n at 192.0.2.i in cluster `(i - 1) / 2`, all up; groups
    /// with options and RAPs as set by the test.
    pub struct TestView {
        pub me: ProxyId,
        pub groups: HashMap<GroupAddr, (GroupOptions, Vec<ProxyId>)>,
        pub peers: Vec<ProxyId>,
        pub tables: Tables,
        pub anycast: Vec<Ipv4Prefix>,
    }

    impl TestView {
        pub fn new(me: u32, n: u32) -> Self {
            let mut s = StaticState::new(ProxyId(me));
            s.anycast = vec!["198.51.100.0/24".parse().expect("prefix")];
            s.proxies = (1..=n)
                .map(|i| ProxyInfo {
                    id: ProxyId(i),
                    addr: Ipv4Addr::new(192, 0, 2, i as u8),
                    cluster: ClusterId(((i - 1) / 2) as u16),
                    up: true,
                })
                .collect();
            TestView {
                me: ProxyId(me),
                groups: HashMap::new(),
                peers: (1..=n).filter(|&i| i != me).map(ProxyId).collect(),
                anycast: s.anycast.clone(),
                tables: Tables::build(&s).expect("valid test tables"),
            }
        }

        pub fn with_rtt(mut self, rtt: Vec<pias_dataplane::tables::RttEntry>) -> Self {
            let mut s = self.tables.to_static_state();
            s.rtt = rtt;
            self.tables = Tables::build(&s).expect("valid rtt");
            self
        }

        pub fn group(mut self, g: GroupAddr, o: GroupOptions, raps: &[u32]) -> Self {
            self.groups
                .insert(g, (o, raps.iter().map(|&r| ProxyId(r)).collect()));
            self
        }
    }

    impl View for TestView {
        fn me(&self) -> ProxyId {
            self.me
        }
        fn options(&self, g: &GroupAddr) -> Option<GroupOptions> {
            self.groups.get(g).map(|x| x.0)
        }
        fn raps(&self, g: &GroupAddr) -> &[ProxyId] {
            self.groups.get(g).map_or(&[], |x| &x.1)
        }
        fn target_allowed(&self, g: &GroupAddr, t: &TargetAddr) -> bool {
            target_allowed(g, t, &self.anycast, |ip| {
                self.tables.proxy_by_addr(ip).is_some()
            })
        }
        fn peers(&self) -> &[ProxyId] {
            &self.peers
        }
        fn tables(&self) -> &Tables {
            &self.tables
        }
        fn proxy(&self, id: ProxyId) -> Option<ProxyInfo> {
            self.tables.proxy(id).copied()
        }
        fn proxy_by_addr(&self, ip: Ipv4Addr) -> Option<ProxyInfo> {
            self.tables.proxy_by_addr(ip).copied()
        }
    }
}
