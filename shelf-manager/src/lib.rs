//! The ATCA shelf manager.
//!
//! **Layer:** a separate program beside the per-blade runtime: it manages the shelf's FRUs and
//! answers the system manager interface; blades reach it over IPMI, never through Totem.
//!
//! **What it will hold:** the FRU hot-swap state machine (M0 not installed … M7 communication
//! lost), activation and the shelf power budget, and an RMCP+ (IPMI v2.0 LAN) server that
//! `ipmitool` and OpenHPI can talk to. Nothing is implemented yet.

#![forbid(unsafe_code)]
