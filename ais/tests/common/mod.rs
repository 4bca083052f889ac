//! Helpers shared by the `ais` integration tests. Each test binary declares `mod common;` and
//! uses a subset, hence the `dead_code` allowance.
#![allow(dead_code, unreachable_pub)]

pub mod amf;
pub mod ckpt;
pub mod cluster;
pub mod sim;
