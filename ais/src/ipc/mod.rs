//! Client ⇄ executive IPC: the packet format ([`proto`]), shared byte codec ([`codec`]) and
//! the SA Forum error codes ([`proto::AisError`]). The socket itself is a Unix SEQPACKET
//! socket (`dataplane::unix`): one packet per datagram, peer credentials checked at accept.

pub mod codec;
pub mod proto;
