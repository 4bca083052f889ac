//! The Totem single-ring protocol with extended virtual synchrony.
//!
//! **Layer:** above `dataplane`, below the AIS services (`ais`). It may depend on `dataplane`
//! (for the `Transport` trait and jumbo-frame packing) and on nothing above it.
//!
//! **Structure**, bottom up (see `docs/architecture.md`):
//! - [`types`], [`time`]: identifiers (`NodeId`, `Seq`, `RingId`, `MsgId`) and the core's own
//!   clock types; the core never reads a clock.
//! - [`wire`]: zero-copy views of the frames (common header with magic, protocol version and
//!   frame type; ORF token; mcast with message chunks), big-endian, checked constructors.
//! - [`pg`]: packing many messages per frame, fragmenting large ones, reassembling them.
//! - [`srp`]: the sans-IO ordering state machine ([`srp::Totem`]): sequence assignment on token
//!   visits, retransmission, flow control with four priorities, agreed and safe delivery, a
//!   CRC-32 frame trailer; [`timer`] holds its deadlines. It owns no sockets, threads or
//!   clocks, so one seeded simulator (`totem-sim`) can drive any number of nodes.
//!
//! - [`driver`]: runs the core on a `dataplane::Transport` with the real clock, on a thread of
//!   its own (optionally pinned to a CPU); submits and events cross threads through channels.
//!
//! [`rrp`]: redundant rings, one ring over 1 to 4 networks (active or passive), between the
//! core and the transports: copies dropped, each network judged and re-enabled by itself.
//!
//! [`crypto`] seals and opens frames (AES-256-GCM with per-epoch keys, nonces that never
//! repeat, replay windows); the core applies it to every frame.

#![forbid(unsafe_code)]

pub mod crypto;
pub mod driver;
pub mod pg;
pub mod rrp;
pub mod srp;
pub mod time;
pub mod timer;
pub mod types;
pub mod wire;

pub use time::{Duration, Instant};
pub use types::{DeliveryKind, MsgId, NodeId, Priority, RingId, Seq};
