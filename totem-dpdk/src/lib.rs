//! The Totem single-ring protocol with extended virtual synchrony.
//!
//! **Layer:** above `dataplane`, below the AIS services (`ais`). It may depend on `dataplane`
//! (for the `Transport` trait and jumbo-frame packing) and on nothing above it.
//!
//! **Structure** (each part lands with its issue; see `docs/architecture.md`):
//! - `wire`: zero-copy views of every Totem frame (ORF token, mcast, join, commit token, merge
//!   detect), one fixed byte order, a header with magic, protocol version and frame type.
//! - the sans-IO core: ordering (sequence assignment on token visit, retransmission, agreed and
//!   safe delivery, flow control), membership (gather, commit, recovery, EVS configuration
//!   changes), redundant rings, frame authentication and encryption, message packing and
//!   fragmentation. It owns no sockets, threads or clocks: time and randomness come in as
//!   arguments, so one seeded simulator (`totem-sim`) can drive any number of nodes.
//! - `driver`: runs the core on a `dataplane::Transport` with the real clock, on its own
//!   (optionally pinned) thread.
//!
//! Nothing is implemented yet: the ordering core is the next issue.

#![forbid(unsafe_code)]

pub mod pg;
pub mod srp;
pub mod time;
pub mod timer;
pub mod types;
pub mod wire;

pub use time::{Duration, Instant};
pub use types::{DeliveryKind, MsgId, NodeId, Priority, RingId, Seq};
