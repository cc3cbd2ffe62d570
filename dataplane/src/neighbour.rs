//! The neighbour (ARP) table: the control core's resolver, and the
//! read-only snapshot the workers use to address frames.
//!
//! Workers never write this table. ARP is punted to the control core, whose
//! [`Resolver`] learns and ages entries and asks for the gateway and the
//! configured neighbours; whenever the set of resolved addresses changes it
//! builds a fresh [`Neighbours`] snapshot and hands it to every worker over
//! its down ring (DESIGN.md §5: read-mostly state published as immutable
//! snapshots, no lock on the fast path).

use core::net::Ipv4Addr;

use hashbrown::HashMap;

/// A MAC address.
pub type Mac = [u8; 6];

/// Nanoseconds on some monotonic clock, chosen by the caller (the resolver
/// reads no clock itself).
pub type Nanos = u64;

/// An immutable neighbour table: (port, IPv4) → MAC.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Neighbours {
    map: HashMap<(u16, Ipv4Addr), Mac>,
    /// Bumped on every published change, for logs and tests.
    pub version: u64,
}

impl Neighbours {
    /// The MAC of `ip` on `port`, if resolved.
    #[inline]
    pub fn get(&self, port: u16, ip: Ipv4Addr) -> Option<Mac> {
        self.map.get(&(port, ip)).copied()
    }

    /// Number of resolved entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is resolved.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// All entries (for status displays), sorted.
    pub fn entries(&self) -> Vec<(u16, Ipv4Addr, Mac)> {
        let mut v: Vec<_> = self.map.iter().map(|(&(p, ip), &m)| (p, ip, m)).collect();
        v.sort_unstable();
        v
    }
}

/// Timing of the resolver.
#[derive(Clone, Copy, Debug)]
pub struct ResolverTiming {
    /// Re-ask a wanted neighbour this often while unresolved.
    pub retry: Nanos,
    /// Refresh a resolved wanted neighbour this often.
    pub refresh: Nanos,
    /// Forget an entry not heard from for this long (wanted ones are kept
    /// until refresh fails this long).
    pub expire: Nanos,
}

impl ResolverTiming {
    /// Defaults from a refresh period in seconds: retry every second,
    /// expire after three refresh periods.
    pub fn from_refresh_secs(s: u32) -> Self {
        let s = u64::from(s.max(1)) * 1_000_000_000;
        ResolverTiming { retry: 1_000_000_000, refresh: s, expire: 3 * s }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    mac: Option<Mac>,
    heard: Nanos,
    asked: Option<Nanos>,
    wanted: bool,
    /// Configured (static ARP): never asked for, never aged, never changed
    /// by what ARP says.
    pinned: bool,
}

/// Most entries the resolver keeps: ARP is untrusted input and must not
/// grow memory without bound (DESIGN.md §4).
pub const MAX_NEIGHBOURS: usize = 4096;

/// The control core's ARP state machine (sans-IO).
#[derive(Debug)]
pub struct Resolver {
    timing: ResolverTiming,
    entries: HashMap<(u16, Ipv4Addr), Entry>,
    version: u64,
    dirty: bool,
    /// Learned entries refused because the table was full.
    pub refused_full: u64,
}

impl Resolver {
    /// An empty resolver.
    pub fn new(timing: ResolverTiming) -> Self {
        Resolver { timing, entries: HashMap::new(), version: 0, dirty: true, refused_full: 0 }
    }

    /// Asks the resolver to keep `ip` on `port` resolved (gateway, peers).
    pub fn want(&mut self, port: u16, ip: Ipv4Addr) {
        self.entries
            .entry((port, ip))
            .and_modify(|e| e.wanted = true)
            .or_insert(Entry { mac: None, heard: 0, asked: None, wanted: true, pinned: false });
    }

    /// Pins `ip` on `port` to `mac` (static ARP, from the config).
    pub fn pin(&mut self, port: u16, ip: Ipv4Addr, mac: Mac) {
        self.entries.insert((port, ip), Entry { mac: Some(mac), heard: 0, asked: None, wanted: false, pinned: true });
        self.dirty = true;
    }

    /// An ARP packet told us `ip` is at `mac` on `port` (a reply to us, or a
    /// request naming us as target). Returns true when the table changed.
    pub fn learn(&mut self, now: Nanos, port: u16, ip: Ipv4Addr, mac: Mac) -> bool {
        let full = self.entries.len() >= MAX_NEIGHBOURS;
        match self.entries.get_mut(&(port, ip)) {
            Some(e) if e.pinned => false,
            Some(e) => {
                e.heard = now;
                e.asked = None;
                if e.mac != Some(mac) {
                    e.mac = Some(mac);
                    self.dirty = true;
                    return true;
                }
                false
            }
            None if full => {
                self.refused_full += 1;
                false
            }
            None => {
                self.entries.insert((port, ip), Entry { mac: Some(mac), heard: now, asked: None, wanted: false, pinned: false });
                self.dirty = true;
                true
            }
        }
    }

    /// Ages entries and returns the (port, ip) pairs to send an ARP request
    /// for now, in `out` (cleared first).
    pub fn poll_requests(&mut self, now: Nanos, out: &mut Vec<(u16, Ipv4Addr)>) {
        out.clear();
        let t = self.timing;
        let mut dirty = false;
        self.entries.retain(|&(port, ip), e| {
            if e.pinned {
                return true;
            }
            let stale = e.mac.is_some() && now.saturating_sub(e.heard) >= t.expire;
            if stale {
                e.mac = None;
                dirty = true;
            }
            if !e.wanted {
                return !stale;
            }
            let due = match (e.mac, e.asked) {
                (None, None) => true,
                (None, Some(a)) => now.saturating_sub(a) >= t.retry,
                (Some(_), None) => now.saturating_sub(e.heard) >= t.refresh,
                (Some(_), Some(a)) => now.saturating_sub(a) >= t.retry,
            };
            if due {
                e.asked = Some(now);
                out.push((port, ip));
            }
            true
        });
        self.dirty |= dirty;
    }

    /// A new snapshot when something changed since the last one.
    pub fn take_snapshot(&mut self) -> Option<Neighbours> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        self.version += 1;
        let map = self
            .entries
            .iter()
            .filter_map(|(k, e)| e.mac.map(|m| (*k, m)))
            .collect();
        Some(Neighbours { map, version: self.version })
    }

    /// Every resolved entry, sorted (for status displays).
    pub fn entries(&self) -> Vec<(u16, Ipv4Addr, Mac)> {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .filter_map(|(&(p, ip), e)| e.mac.map(|m| (p, ip, m)))
            .collect();
        v.sort_unstable();
        v
    }

    /// Resolved MAC of `ip` on `port`.
    pub fn lookup(&self, port: u16, ip: Ipv4Addr) -> Option<Mac> {
        self.entries.get(&(port, ip)).and_then(|e| e.mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const MAC: Mac = [2, 0, 0, 0, 0, 1];

    #[test]
    fn wanted_neighbour_is_asked_retried_then_refreshed() {
        let mut r = Resolver::new(ResolverTiming::from_refresh_secs(30));
        r.want(0, GW);
        let mut out = Vec::new();
        r.poll_requests(0, &mut out);
        assert_eq!(out, vec![(0, GW)]);
        r.poll_requests(S / 2, &mut out);
        assert!(out.is_empty(), "retried too early");
        r.poll_requests(S, &mut out);
        assert_eq!(out, vec![(0, GW)], "not retried after a second");
        assert!(r.learn(S + 1, 0, GW, MAC));
        let snap = r.take_snapshot().unwrap();
        assert_eq!(snap.get(0, GW), Some(MAC));
        assert!(r.take_snapshot().is_none(), "no change, no snapshot");
        r.poll_requests(10 * S, &mut out);
        assert!(out.is_empty());
        r.poll_requests(31 * S + 1, &mut out);
        assert_eq!(out, vec![(0, GW)], "not refreshed");
        // No answer for 3 refresh periods: the entry goes, the want stays.
        r.poll_requests(91 * S + 1, &mut out);
        assert_eq!(r.lookup(0, GW), None);
        assert_eq!(r.take_snapshot().unwrap().get(0, GW), None);
    }

    #[test]
    fn learned_unwanted_entries_expire_and_table_is_capped() {
        let mut r = Resolver::new(ResolverTiming::from_refresh_secs(1));
        for i in 0..(MAX_NEIGHBOURS as u32 + 10) {
            r.learn(0, 0, Ipv4Addr::from_bits(0xC000_0200 + i), MAC);
        }
        assert_eq!(r.refused_full, 10);
        let mut out = Vec::new();
        r.poll_requests(3 * S, &mut out);
        assert!(out.is_empty());
        assert!(r.take_snapshot().unwrap().is_empty());
    }

    #[test]
    fn pinned_entries_never_age_or_change() {
        let mut r = Resolver::new(ResolverTiming::from_refresh_secs(1));
        r.pin(0, GW, MAC);
        assert!(!r.learn(1, 0, GW, [2, 0, 0, 0, 0, 9]));
        let mut out = Vec::new();
        r.poll_requests(100 * S, &mut out);
        assert!(out.is_empty());
        assert_eq!(r.take_snapshot().unwrap().get(0, GW), Some(MAC));
    }

    #[test]
    fn mac_change_republishes() {
        let mut r = Resolver::new(ResolverTiming::from_refresh_secs(30));
        r.learn(0, 0, GW, MAC);
        let a = r.take_snapshot().unwrap();
        assert!(!r.learn(1, 0, GW, MAC));
        assert!(r.learn(2, 0, GW, [2, 0, 0, 0, 0, 2]));
        let b = r.take_snapshot().unwrap();
        assert!(b.version > a.version);
        assert_eq!(b.get(0, GW), Some([2, 0, 0, 0, 0, 2]));
    }
}
