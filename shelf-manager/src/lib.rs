//! The ATCA shelf manager.
//!
//! **Layer:** a separate program beside the per-blade runtime: it manages the shelf's FRUs and
//! answers the system manager interface; blades reach it over IPMI, never through Totem.
//!
//! **What it holds:** the FRU hot-swap state machine (M0 not installed … M7 communication
//! lost), activation and the shelf power budget, and an RMCP+ (IPMI v2.0 LAN) server that
//! `ipmitool` and OpenHPI can talk to.
//!
//! # Layers
//!
//! Bottom first; each layer uses only the ones above it in this list:
//!
//! - [`model`]: the shelf as configured (feeds, sites, boards, their power levels, simulation
//!   knobs), read from TOML with errors located as `file:line:col: key: message`.
//! - [`hotswap`]: the PICMG 3.0 state machine of one FRU, M0…M7 with the PICMG cause codes.
//!   Pure: an input in, a [`hotswap::Step`] out (state change, IPMC command, power returned),
//!   or a typed refusal that changes nothing.
//! - [`power`]: the power budget over the shelf's feeds, granting FRUs in M3 in a documented
//!   order.
//! - [`sel`]: the bounded system event log.
//! - [`ipmc`]: the messages to and from IPMCs, the [`ipmc::Ipmc`] trait the shelf talks
//!   through, and [`ipmc::SimIpmc`], simulated boards for tests and demos.
//! - [`shelf`]: [`shelf::Shelf`] ties the model, one state machine per FRU, the budget and
//!   the SEL together. It is driven by inputs and gives its effects out as values (messages
//!   for IPMCs, events); it starts no thread, opens no socket and reads no clock.
//!   [`shelf::drive`] runs it against an [`ipmc::Ipmc`].
//! - [`rmcp`]: the RMCP+ server: wire formats, cipher suites, users, sessions with RAKP;
//!   pure (time and randomness come in from the caller), commands handed to a handler.
//! - [`commands`]: the IPMI commands answered from the shelf core (one module per network
//!   function), the handler the RMCP+ server hands commands to.
//! - [`replica`]: the shelf's state as a snapshot for the standby shelf manager (pure:
//!   snapshot, encoding, the checks before a snapshot becomes a shelf), and
//!   [`replica::component`], `shelfd` as one of a redundant pair: an AMF component that keeps
//!   the snapshot in a CKPT checkpoint through the cluster's client library (`ais-client`).
//! - [`shelfd`]: the daemon (UDP socket, clock, threads): alone, or under the AMF.
//!
//! The file format, the state machine and the power order are described in
//! `docs/shelf-manager.md`.

#![forbid(unsafe_code)]

pub mod commands;
pub mod hotswap;
pub mod ipmc;
pub mod model;
pub mod power;
pub mod replica;
pub mod rmcp;
pub mod sel;
pub mod shelf;
pub mod shelfd;
