#![no_main]
//! JAP ↔ RAP bodies (Report, ReportAck), the RAP-less groups' JapAnnounce
//! and the proximity bodies.

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use pias_control::wire::MessageType;

fuzz_target!(|data: &[u8]| {
    common::body_roundtrip(
        &[
            MessageType::Report,
            MessageType::ReportAck,
            MessageType::RttProbe,
            MessageType::RttReply,
            MessageType::RttAdvert,
            MessageType::JapAnnounce,
        ],
        data,
    );
});
