//! The protocols of the AIS layer: client ⇄ executive IPC (the framing and what every service
//! shares, [`ipc`]), the executive's messages on the Totem ring (their header and the sync
//! barrier, [`ring`]), one module per service with its requests, answers, callbacks and ring
//! messages ([`cpg`], [`evs`], [`clm`], [`quorum`], [`ckpt`], [`evt`], [`lck`], [`msg`],
//! [`admin`], [`amf`]), the shared byte codec ([`codec`]) and the SA Forum error codes ([`ipc::AisError`]). The socket itself is a Unix
//! SEQPACKET socket (`dataplane::unix`): one packet per datagram, peer credentials checked at
//! accept.
//!
//! A new service adds its own module here (its [`ipc::Protocol`] and its [`ipc::Message`]
//! types); nothing in [`ipc`] or [`ring`] names a service.
//!
//! Both sides link this crate: the client library (`ais-client`) and the executive
//! (`ais-core`, `ais`). It depends on nothing of the runtime.

#![forbid(unsafe_code)]

pub mod admin;
pub mod amf;
pub mod ckpt;
pub mod clm;
pub mod codec;
pub mod cpg;
pub mod evs;
pub mod evt;
pub mod ipc;
pub mod lck;
pub mod msg;
pub mod quorum;
pub mod ring;
pub mod shelf;
