//! IPv4: header-only and full checks, every getter, `Repr` round trip, and
//! the incremental setters keeping a valid checksum valid.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use pias_dataplane::wire::{Ipv4Packet, Ipv4Repr};

fn getters<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) {
    let _ = (p.version(), p.header_len(), p.dscp(), p.ecn(), p.tos(), p.total_len(), p.ident());
    let _ = (p.reserved_flag(), p.dont_frag(), p.more_frags(), p.frag_offset(), p.is_fragment());
    let _ = (p.is_first_fragment(), p.is_non_initial_fragment(), p.ttl(), p.protocol(), p.checksum());
    let _ = (p.src_addr(), p.dst_addr(), p.verify_checksum(), p.options().len(), p.payload().len());
}

fuzz_target!(|data: &[u8]| {
    let header_only = Ipv4Packet::new_unchecked(data);
    if header_only.check_header_len().is_ok() {
        getters(&header_only);
    }
    let Ok(p) = Ipv4Packet::new_checked(data) else { return };
    getters(&p);
    assert!(p.payload().len() + p.header_len() == usize::from(p.total_len()));

    // Incremental rewrites keep a valid checksum valid, and equal a full
    // recompute when the packet's checksum was canonical.
    let valid = p.verify_checksum();
    let mut copy = data.to_vec();
    let mut m = Ipv4Packet::new_checked(&mut copy[..]).unwrap();
    m.set_src_addr_incremental(Ipv4Addr::new(203, 0, 113, 1));
    m.set_dst_addr_incremental(Ipv4Addr::new(0, 0, 0, 0));
    m.set_ident_incremental(0xFFFF);
    m.set_dont_frag_incremental(true);
    m.set_tos_incremental(0);
    let _ = m.decrement_ttl();
    assert_eq!(m.verify_checksum(), valid);
    if valid {
        let c = m.checksum();
        m.fill_checksum();
        assert_eq!(c, m.checksum());
    }

    let Ok(repr) = Ipv4Repr::parse(&p) else { return };
    assert_eq!(repr.buffer_len(), usize::from(p.total_len()));
    let mut out = vec![0u8; repr.buffer_len()];
    let mut o = Ipv4Packet::new_unchecked(&mut out[..]);
    repr.emit(&mut o);
    o.payload_mut().copy_from_slice(p.payload());
    let again = Ipv4Packet::new_checked(&out[..]).unwrap();
    assert_eq!(Ipv4Repr::parse(&again), Ok(repr));
    assert_eq!(again.payload(), p.payload());
});
