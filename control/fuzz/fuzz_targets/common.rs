//! Shared by the targets (included with `#[path]`, not a crate).
#![allow(dead_code)]

use pias_control::wire::{Frame, Message, MessageType, ProxyHeader, MAX_DATAGRAM};

/// Parse a body of one of `types` (picked by the first byte); if it
/// parses, emitting it again must give the same bytes (the encoding is
/// canonical: strict parsing leaves no freedom).
pub fn body_roundtrip(types: &[MessageType], data: &[u8]) {
    let Some((sel, body)) = data.split_first() else {
        return;
    };
    let ty = types[usize::from(*sel) % types.len()];
    let Ok(msg) = Message::parse_body(ty, body) else {
        return;
    };
    assert_eq!(msg.msg_type(), ty);
    let header = ProxyHeader {
        sender: pias_dataplane::types::ProxyId(1),
        key_id: pias_control::wire::KeyId(0),
        epoch: 0,
        seq: 0,
    };
    let h = (ty.auth_class() == pias_control::wire::AuthClass::ProxyMac).then_some(&header);
    let mut buf = [0u8; MAX_DATAGRAM];
    match msg.emit(h, &mut buf) {
        Ok(n) => {
            let frame = Frame::parse(&buf[..n]).expect("emitted datagram parses");
            assert_eq!(frame.body, body, "canonical encoding");
            assert_eq!(frame.message().expect("body parses"), msg);
        }
        // A body that parses but does not fit one datagram once framed.
        Err(pias_control::wire::EmitError::Oversized) => assert!(body.len() > MAX_DATAGRAM - 40),
        Err(e) => panic!("emit of a parsed message failed: {e:?}"),
    }
}
