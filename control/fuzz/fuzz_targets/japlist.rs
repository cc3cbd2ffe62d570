#![no_main]
//! IAP cache bodies (JapList, Invalidate, RapQuery) and GroupRegister.

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use pias_control::wire::MessageType;

fuzz_target!(|data: &[u8]| {
    common::body_roundtrip(
        &[
            MessageType::JapList,
            MessageType::Invalidate,
            MessageType::RapQuery,
            MessageType::GroupRegister,
        ],
        data,
    );
});
