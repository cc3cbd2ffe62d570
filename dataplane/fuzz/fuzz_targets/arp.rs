//! ARP: the view, every getter, `Repr`, its exact round trip and replies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pias_dataplane::wire::{ArpPacket, ArpRepr, EthernetAddress};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = ArpPacket::new_checked(data) else { return };
    let _ = (p.hardware_type(), p.protocol_type(), p.hardware_len(), p.protocol_len(), p.operation());
    let _ = (p.source_hardware_addr(), p.source_protocol_addr(), p.target_hardware_addr(), p.target_protocol_addr());
    let Ok(repr) = ArpRepr::parse(&p) else { return };
    let mut out = [0u8; 28];
    repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
    assert_eq!(&out[..], &data[..28]);
    assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&out[..]).unwrap()), Ok(repr));
    if let Some(reply) = repr.reply(EthernetAddress([2, 0, 0, 0, 0, 1])) {
        reply.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
        assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&out[..]).unwrap()), Ok(reply));
    }
});
