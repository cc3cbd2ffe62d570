//! Fragments across the workers of one proxy (RFC 4787 REQ-14; the
//! fragment policy in `pipeline.rs`): N `Path`s of the same proxy, joined
//! by handoff queues, driven exactly as piasd's worker must drive them —
//! `process` for arrivals, `process_handed_over` for handed packets, `hold`
//! on `Action::Hold`, `next_released` after each packet. Fragments arrive in
//! any order on any worker, the workers run in any interleaving; every
//! fragment must leave exactly once, NATed consistently, reassembling into
//! a datagram with a valid checksum, and nothing may circle or stay held.

mod common;

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use common::*;
use etherparse::{Ipv4Header, UdpHeader};
use pias_dataplane::flow::{owner, FlowKey, NatPorts, PortRange};
use pias_dataplane::packet::VecBuf;
use pias_dataplane::pipeline::{Action, Path};
use pias_dataplane::reason::DropReason;
use pias_dataplane::types::ProxyId;
use proptest::prelude::*;

/// One proxy's workers and the queues between them.
struct Workers {
    paths: Vec<Path>,
    /// Per worker: (frame, handed over by another worker).
    queues: Vec<VecDeque<(VecBuf, bool)>>,
    sent: Vec<Vec<u8>>,
    drops: Vec<DropReason>,
    steps: usize,
}

impl Workers {
    fn new(who: Who, n: u16) -> Workers {
        Workers {
            paths: (0..n).map(|w| proxy(who, w, n, true)).collect(),
            queues: (0..n).map(|_| VecDeque::new()).collect(),
            sent: Vec::new(),
            drops: Vec::new(),
            steps: 0,
        }
    }

    fn arrive(&mut self, w: usize, frame: &[u8]) {
        self.queues[w].push_back((VecBuf::new(frame), false));
    }

    fn act(&mut self, w: usize, a: Action, pkt: VecBuf) {
        match a {
            Action::Tx(0) => self.sent.push(pkt.to_vec()),
            Action::Handoff(to) => {
                assert_ne!(usize::from(to), w, "handed to itself");
                self.queues[usize::from(to)].push_back((pkt, true));
            }
            Action::Hold => {
                if self.paths[w].hold(pkt, NOW).is_err() {
                    self.drops.push(DropReason::FragmentHoldRefused);
                }
            }
            Action::Drop(r) => self.drops.push(r),
            a => panic!("unexpected {a:?}"),
        }
    }

    /// Processes one packet of worker `w`, then its released fragments.
    fn step(&mut self, w: usize) {
        let Some((mut pkt, handed)) = self.queues[w].pop_front() else { return };
        self.steps += 1;
        let p = &mut self.paths[w];
        let a = if handed { p.process_handed_over(&mut pkt, 0, NOW) } else { p.process(&mut pkt, 0, NOW) };
        self.act(w, a, pkt);
        while let Some((mut m, port)) = self.paths[w].next_released() {
            let a = self.paths[w].process(&mut m, port, NOW);
            self.act(w, a, m);
        }
    }

    /// Runs until every queue is empty, picking workers by `picks`.
    fn run(&mut self, picks: &mut impl Iterator<Item = usize>) {
        let budget = 10_000;
        while self.queues.iter().any(|q| !q.is_empty()) {
            assert!(self.steps < budget, "livelock: packets circle between workers");
            let busy: Vec<usize> = (0..self.queues.len()).filter(|&w| !self.queues[w].is_empty()).collect();
            let w = busy[picks.next().unwrap_or(0) % busy.len()];
            self.step(w);
        }
    }

    fn idle(&self) -> bool {
        self.paths.iter().all(|p| p.fragments_held() == 0)
    }
}

/// Sorts IPv4 fragments by offset and reassembles their payload; checks
/// they all agree on addresses and ident and cover the datagram exactly.
fn reassemble(frames: &[Vec<u8>]) -> (Ipv4Header, Vec<u8>) {
    let mut parts: Vec<(Ipv4Header, Vec<u8>)> = frames
        .iter()
        .map(|f| {
            let (h, rest) = Ipv4Header::from_slice(&f[14..]).unwrap();
            assert_eq!(h.calc_header_checksum(), h.header_checksum, "IP checksum");
            (h.clone(), rest[..usize::from(h.total_len) - h.header_len()].to_vec())
        })
        .collect();
    parts.sort_by_key(|(h, _)| h.fragment_offset.value());
    let first = parts[0].0.clone();
    let mut data = Vec::new();
    for (i, (h, p)) in parts.iter().enumerate() {
        assert_eq!((h.source, h.destination, h.identification), (first.source, first.destination, first.identification));
        assert_eq!(usize::from(h.fragment_offset.value()) * 8, data.len(), "gap or overlap");
        assert_eq!(h.more_fragments, i + 1 < parts.len());
        data.extend_from_slice(p);
    }
    (first, data)
}

/// The reassembled UDP datagram's ports, checking its checksum.
fn udp_ports(h: &Ipv4Header, l4: &[u8], payload: &[u8]) -> (u16, u16) {
    let (u, rest) = UdpHeader::from_slice(l4).unwrap();
    assert_eq!(rest, payload);
    assert_eq!(u.calc_checksum_ipv4_raw(h.source, h.destination, rest).unwrap(), u.checksum, "UDP checksum");
    (u.source_port, u.destination_port)
}

fn payload() -> Vec<u8> {
    (0..1000u32).map(|i| (i * 13 + 1) as u8).collect()
}

/// The random schedule of one case.
#[derive(Debug, Clone)]
struct Schedule {
    workers: u16,
    /// Arrival order of the fragments (a permutation of 0..n).
    order: Vec<usize>,
    /// Arrival worker of each fragment, mod the worker count.
    arrive: Vec<usize>,
    /// Which busy worker runs next, mod their count.
    picks: Vec<usize>,
}

fn schedule(n: usize) -> impl Strategy<Value = Schedule> {
    (1u16..=6, Just((0..n).collect::<Vec<_>>()).prop_shuffle(), prop::collection::vec(0usize..64, n + 1), prop::collection::vec(0usize..64, 64))
        .prop_map(|(workers, order, arrive, picks)| Schedule { workers, order, arrive, picks })
}

const CHUNK: usize = 208;

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Client → group at the JAP: every fragment, in any order on any
    /// worker, is NATed with the one mapping of the flow's owner.
    #[test]
    fn jap_fragments_any_order_any_worker(s in schedule(5)) {
        let pl = payload();
        let u = Udp { src: CLIENT, sport: 40001, dst: AA, dport: UPORT, ttl: 63, ident: 0x4242 };
        let frags = udp_fragments(u, &pl, CHUNK);
        prop_assert_eq!(frags.len(), 5);
        let mut ws = Workers::new(Who::C, s.workers);
        let nw = usize::from(s.workers);
        for (k, &i) in s.order.iter().enumerate() {
            ws.arrive(s.arrive[k] % nw, &eth(MAC_C, MAC_A, &ipip(A, C, i as u16, false, &frags[i])));
        }
        ws.run(&mut s.picks.iter().copied().cycle());
        prop_assert!(ws.drops.is_empty(), "drops: {:?}", ws.drops);
        prop_assert_eq!(ws.sent.len(), 5);
        let (h, l4) = reassemble(&ws.sent);
        prop_assert_eq!((Ipv4Addr::from(h.source), Ipv4Addr::from(h.destination)), (C, TARGET));
        let (q, r) = udp_ports(&h, &l4, &pl);
        prop_assert_eq!(r, UTPORT);
        let own = owner(&FlowKey::new(CLIENT, 40001, AA, UPORT, 17), s.workers);
        let ports = NatPorts::new(PortRange { lo: 20000, hi: 29999 }, s.workers).unwrap();
        prop_assert_eq!(ports.worker_of_port(q), Some(own), "NATed by the flow's owner");
        prop_assert_eq!(ws.paths.iter().map(|p| p.nat.len()).sum::<usize>(), 1, "one flow, one mapping");
        prop_assert!(ws.idle());
        // At most arrival → tracker → owner per fragment, plus releases.
        prop_assert!(ws.steps <= 3 * 5);
    }

    /// Target → client: the flow is opened by a query, then the target's
    /// fragmented answer arrives in any order on any worker.
    #[test]
    fn reverse_fragments_any_order_any_worker(s in schedule(5)) {
        let pl = payload();
        let mut ws = Workers::new(Who::C, s.workers);
        let nw = usize::from(s.workers);
        let q = Udp { src: CLIENT, sport: 40001, dst: AA, dport: UPORT, ttl: 62, ident: 0x0101 };
        ws.arrive(s.arrive[5] % nw, &eth(MAC_C, MAC_A, &ipip(A, C, 9, false, &udp(q, b"query"))));
        ws.run(&mut s.picks.iter().copied().cycle());
        prop_assert_eq!(ws.sent.len(), 1);
        let opened = ws.sent.remove(0);
        let nat_port = u16::from_be_bytes([opened[14 + 20], opened[14 + 21]]);
        let answer = Udp { src: TARGET, sport: UTPORT, dst: C, dport: nat_port, ttl: 64, ident: 0x5151 };
        let frags = udp_fragments(answer, &pl, CHUNK);
        for (k, &i) in s.order.iter().enumerate() {
            ws.arrive(s.arrive[k] % nw, &eth(MAC_C, MAC_GW, &frags[i]));
        }
        ws.run(&mut s.picks.iter().copied().cycle());
        prop_assert!(ws.drops.is_empty(), "drops: {:?}", ws.drops);
        prop_assert_eq!(ws.sent.len(), 5);
        let (h, l4) = reassemble(&ws.sent);
        prop_assert_eq!((Ipv4Addr::from(h.source), Ipv4Addr::from(h.destination)), (AA, CLIENT));
        prop_assert_eq!(udp_ports(&h, &l4, &pl), (UPORT, 40001));
        prop_assert!(ws.idle());
    }

    /// At the IAP (no flow state): every fragment is tunnelled to the
    /// group's JAP, whichever worker it reached.
    #[test]
    fn iap_fragments_any_order_any_worker(s in schedule(5)) {
        let pl = payload();
        let mut ws = Workers::new(Who::A, s.workers);
        for p in &mut ws.paths {
            p.cache.fill(udp_group(), &[ProxyId(3)], 3600 * NOW, NOW);
        }
        let nw = usize::from(s.workers);
        let u = Udp { src: CLIENT, sport: 40001, dst: AA, dport: UPORT, ttl: 64, ident: 0x4242 };
        let frags = udp_fragments(u, &pl, CHUNK);
        for (k, &i) in s.order.iter().enumerate() {
            ws.arrive(s.arrive[k] % nw, &eth(MAC_A, MAC_GW, &frags[i]));
        }
        ws.run(&mut s.picks.iter().copied().cycle());
        prop_assert!(ws.drops.is_empty(), "drops: {:?}", ws.drops);
        prop_assert_eq!(ws.sent.len(), 5);
        let inner: Vec<Vec<u8>> = ws
            .sent
            .iter()
            .map(|f| {
                prop_assert_eq!(&f[14 + 12..14 + 20], &[192, 0, 2, 10, 192, 0, 2, 12][..], "A → C");
                let mut e = f[..14].to_vec();
                e.extend_from_slice(&f[34..]);
                Ok(e)
            })
            .collect::<Result<_, TestCaseError>>()?;
        let (h, l4) = reassemble(&inner);
        prop_assert_eq!(h.time_to_live, 63);
        prop_assert_eq!(udp_ports(&h, &l4, &pl), (40001, UPORT));
        prop_assert!(ws.idle());
    }
}

/// A worker that is not the datagram's tracker never hands a handed-over
/// fragment on: a fragment can take at most two hops.
#[test]
fn a_handed_over_fragment_is_never_handed_on() {
    let u = Udp { src: CLIENT, sport: 40001, dst: AA, dport: UPORT, ttl: 63, ident: 0x4242 };
    let frags = udp_fragments(u, &payload(), CHUNK);
    let key = pias_dataplane::frag::FragKey { src: CLIENT, dst: AA, proto: 17, id: 0x4242 };
    let workers = 4;
    let tracker = key.owner(workers);
    let other = (tracker + 1) % workers;
    let mut p: Path = proxy(Who::C, other, workers, true);
    let frame = eth(MAC_C, MAC_A, &ipip(A, C, 2, false, &frags[1]));
    // Arriving from the NIC: to the tracking worker.
    assert_eq!(p.process(&mut VecBuf::new(&frame), 0, NOW), Action::Handoff(tracker));
    // Handed over but unknown here: dropped, never handed again.
    assert_eq!(p.process_handed_over(&mut VecBuf::new(&frame), 0, NOW), Action::Drop(DropReason::FragmentUnmatched));
}
