//! IP-in-IP: outer and inner parse, every getter of both, and
//! re-encapsulation giving back the same tunnel.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pias_dataplane::wire::ipip::{self, DfPolicy, EncapParams};
use pias_dataplane::wire::{IpProtocol, Ipv4Packet, Ipv4Repr};

fn getters(p: &Ipv4Packet<&[u8]>) {
    let _ = (p.version(), p.header_len(), p.tos(), p.total_len(), p.ident(), p.dont_frag());
    let _ = (p.frag_offset(), p.ttl(), p.protocol(), p.src_addr(), p.dst_addr(), p.options().len());
}

fuzz_target!(|data: &[u8]| {
    let Ok(d) = ipip::parse(data) else { return };
    getters(&d.outer);
    getters(&d.inner);
    assert_eq!(d.outer.protocol(), IpProtocol::IpIp);
    assert!(!d.outer.is_fragment());
    // Both headers passed their checks: their Reprs parse.
    let outer = Ipv4Repr::parse(&d.outer).expect("outer checked by ipip::parse");
    let inner = Ipv4Repr::parse(&d.inner).expect("inner checked by ipip::parse");
    let inner_bytes = &d.outer.payload_slice()[..];
    assert_eq!(inner.buffer_len(), inner_bytes.len());

    let params = EncapParams {
        src_addr: outer.src_addr,
        dst_addr: outer.dst_addr,
        ident: outer.ident,
        ttl: outer.ttl,
        df: if outer.dont_frag { DfPolicy::Set } else { DfPolicy::Clear },
    };
    let mut out = vec![0u8; 20 + inner_bytes.len()];
    let n = ipip::encapsulate(inner_bytes, &mut out, &params).expect("inner fits");
    assert_eq!(n, out.len());
    let again = ipip::parse(&out).expect("re-encapsulated tunnel parses");
    assert_eq!(again.inner.payload_slice(), d.inner.payload_slice());
    assert_eq!(Ipv4Repr::parse(&again.inner), Ok(inner));
    let o = Ipv4Repr::parse(&again.outer).unwrap();
    assert_eq!((o.src_addr, o.dst_addr, o.ident, o.ttl, o.dont_frag), (outer.src_addr, outer.dst_addr, outer.ident, outer.ttl, outer.dont_frag));
    assert_eq!(again.outer.tos(), d.inner.tos());
});
