//! Client ⇄ executive IPC: the packet format ([`proto`]), shared byte codec ([`codec`]) and
//! the SA Forum error codes ([`proto::AisError`]). The socket itself is a Unix SEQPACKET
//! socket (`dataplane::unix`): one packet per datagram, peer credentials checked at accept.
//!
//! Both sides link this crate: the client library (`ais-client`) and the executive
//! (`ais-core`, `ais`). It depends on nothing of the runtime.

#![forbid(unsafe_code)]

pub mod codec;
pub mod proto;
