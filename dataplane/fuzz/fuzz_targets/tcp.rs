//! TCP: input is 4 bytes source address, 4 bytes destination, then the
//! segment. Getters, options, `Repr` round trip, MSS clamp and NAT rewrites.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use pias_dataplane::wire::{TcpOption, TcpPacket, TcpRepr};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let src = Ipv4Addr::new(data[0], data[1], data[2], data[3]);
    let dst = Ipv4Addr::new(data[4], data[5], data[6], data[7]);
    let seg = &data[8..];
    let Ok(p) = TcpPacket::new_checked(seg) else { return };
    let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number(), p.header_len(), p.flags());
    let _ = (p.syn(), p.ack(), p.fin(), p.rst(), p.window_len(), p.checksum(), p.urgent_at());
    let _ = (p.options().len(), p.payload().len());
    let mut first_mss = None;
    for o in p.options_iter() {
        match o {
            Ok(TcpOption::Mss(m)) if first_mss.is_none() => first_mss = Some(m),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert_eq!(p.mss(), first_mss);
    let valid = p.verify_checksum(src, dst);

    let mut copy = seg.to_vec();
    let mut m = TcpPacket::new_checked(&mut copy[..]).unwrap();
    let new_dst = Ipv4Addr::new(192, 0, 2, 99);
    m.set_src_port_incremental(0xFFFF);
    m.set_dst_port_incremental(0);
    m.update_addr_checksum(dst, new_dst);
    let clamped = m.clamp_mss(536);
    assert_eq!(clamped, first_mss.is_some_and(|v| v > 536));
    if clamped {
        assert_eq!(m.mss(), Some(536));
    }
    assert_eq!(m.verify_checksum(src, new_dst), valid);
    if valid {
        let c = m.checksum();
        m.fill_checksum(src, new_dst);
        assert_eq!(c, m.checksum());
    }

    let Ok(repr) = TcpRepr::parse(&p, src, dst) else { return };
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut TcpPacket::new_unchecked(&mut out[..]), src, dst, p.payload());
    let again = TcpPacket::new_checked(&out[..]).unwrap();
    assert_eq!(TcpRepr::parse(&again, src, dst), Ok(repr));
    assert_eq!(again.payload(), p.payload());
});
