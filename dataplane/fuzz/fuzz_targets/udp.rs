//! UDP: input is 4 bytes source address, 4 bytes destination, then the
//! datagram. Getters, checksum, `Repr` round trip, incremental NAT rewrites.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use pias_dataplane::wire::{UdpPacket, UdpRepr};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let src = Ipv4Addr::new(data[0], data[1], data[2], data[3]);
    let dst = Ipv4Addr::new(data[4], data[5], data[6], data[7]);
    let seg = &data[8..];
    let Ok(p) = UdpPacket::new_checked(seg) else { return };
    let _ = (p.src_port(), p.dst_port(), p.len(), p.is_empty(), p.checksum(), p.payload().len());
    let valid = p.verify_checksum(src, dst);

    let mut copy = seg.to_vec();
    let mut m = UdpPacket::new_checked(&mut copy[..]).unwrap();
    let new_src = Ipv4Addr::new(198, 51, 100, 1);
    m.set_src_port_incremental(0);
    m.set_dst_port_incremental(0xFFFF);
    m.update_addr_checksum(src, new_src);
    assert_eq!(m.checksum() == 0, p.checksum() == 0, "0 means none and stays 0");
    assert_eq!(m.verify_checksum(new_src, dst), valid);
    if valid && m.checksum() != 0 {
        let c = m.checksum();
        m.fill_checksum(new_src, dst);
        assert_eq!(c, m.checksum());
    }

    let Ok(repr) = UdpRepr::parse(&p, src, dst) else { return };
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut UdpPacket::new_unchecked(&mut out[..]), src, dst, p.payload());
    let again = UdpPacket::new_checked(&out[..]).unwrap();
    assert_ne!(again.checksum(), 0);
    assert_eq!(UdpRepr::parse(&again, src, dst), Ok(repr));
    assert_eq!(again.payload(), p.payload());
});
