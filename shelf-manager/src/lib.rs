//! The ATCA shelf manager.
//!
//! **Layer:** a separate program beside the per-blade runtime: it manages the shelf's FRUs and
//! answers the system manager interface; blades reach it over IPMI, never through Totem.
//!
//! **What it holds:** the FRU hot-swap state machine (M0 not installed … M7 communication
//! lost), activation and the shelf power budget, and an RMCP+ (IPMI v2.0 LAN) server that
//! `ipmitool` and OpenHPI can talk to.

#![forbid(unsafe_code)]

pub mod hotswap;
pub mod model;
pub mod power;
