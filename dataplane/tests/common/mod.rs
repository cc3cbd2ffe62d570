//! What the integration tests share: the topology and the expected-frame
//! builders.
#![allow(dead_code)]

pub mod frames;
pub mod topology;

pub use frames::*;
pub use topology::*;
