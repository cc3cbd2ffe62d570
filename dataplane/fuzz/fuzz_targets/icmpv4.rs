//! ICMPv4: getters, the embedded (quoted) datagram of errors and its
//! rewrite, `Repr` round trip.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use pias_dataplane::wire::{Icmpv4Packet, Icmpv4Repr};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Icmpv4Packet::new_checked(data) else { return };
    let t = p.msg_type();
    let _ = (t.is_error(), p.msg_code(), p.checksum(), p.echo_ident(), p.echo_seq_no());
    let _ = (p.next_hop_mtu(), p.pointer(), p.rest_of_header(), p.payload().len());
    let valid = p.verify_checksum();
    let embedded_ok = match p.embedded() {
        Ok(e) => {
            let _ = (e.version(), e.header_len(), e.total_len(), e.ident(), e.ttl(), e.protocol());
            let _ = (e.src_addr(), e.dst_addr(), e.verify_checksum(), e.options().len());
            assert!(e.payload().len() >= 8);
            true
        }
        Err(_) => false,
    };

    // The NAT's rewrite of an ICMP error: quoted header, then the message.
    let mut copy = data.to_vec();
    let mut m = Icmpv4Packet::new_checked(&mut copy[..]).unwrap();
    if let Ok(mut e) = m.embedded_mut() {
        assert!(embedded_ok);
        let inner_valid = e.verify_checksum();
        e.set_src_addr_incremental(Ipv4Addr::new(203, 0, 113, 5));
        e.set_ttl_incremental(1);
        assert_eq!(e.verify_checksum(), inner_valid);
        m.fill_checksum();
        assert!(m.verify_checksum());
    }
    m.set_echo_ident_incremental(7);

    let Ok(repr) = Icmpv4Repr::parse(&p) else { return };
    assert!(valid);
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]));
    assert_eq!(Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&out[..]).unwrap()), Ok(repr));
});
