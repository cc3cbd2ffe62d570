//! Ethernet frames: the view, every getter, `Repr` and its exact round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pias_dataplane::wire::{EtherType, EthernetFrame, EthernetRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(f) = EthernetFrame::new_checked(data) else { return };
    let (dst, src) = (f.dst_addr(), f.src_addr());
    let _ = (dst.is_broadcast(), dst.is_multicast(), src.is_unicast(), src.is_local(), dst.to_string());
    let _ = (f.is_tagged(), f.vlan().map(|t| t.tci()), f.ethertype().number(), f.header_len());
    assert_eq!(f.payload_offset() + f.payload().len(), data.len());

    let mut copy = data.to_vec();
    let mut m = EthernetFrame::new_checked(&mut copy[..]).unwrap();
    m.swap_addrs();
    let _ = m.set_vlan(Default::default());
    m.payload_mut().fill(0);

    let Ok(repr) = EthernetRepr::parse(&f) else {
        assert_eq!(f.ethertype(), EtherType::Vlan);
        return;
    };
    let mut out = vec![0u8; repr.buffer_len(f.payload().len())];
    let mut o = EthernetFrame::new_unchecked(&mut out[..]);
    repr.emit(&mut o);
    o.payload_mut().copy_from_slice(f.payload());
    // Every header bit is in the Repr: the bytes come back exactly.
    assert_eq!(&out[..], data);
    let again = EthernetFrame::new_checked(&out[..]).unwrap();
    assert_eq!(EthernetRepr::parse(&again), Ok(repr));
});
