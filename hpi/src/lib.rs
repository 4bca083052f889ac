//! SA Forum HPI (Hardware Platform Interface) over IPMI, for ATCA shelves.
//!
//! **Layer:** a platform layer beside `dataplane`: it talks to the shelf's IPMI controllers and
//! knows nothing of Totem. The AIS services (`ais`: CLM, AMF) depend on it to learn that a
//! blade is being extracted (hot-swap state M4 → M5) early enough to switch its services over
//! before it powers off.
//!
//! **Layers inside the crate, bottom first:**
//! - [`ipmi::msg`]: request bodies and bounds-checked response parsers for PICMG (netfn
//!   0x2C), Send Message bridging, sensors, SDR repository, SEL and FRU inventory. Pure;
//!   every parser has a fuzz target in `hpi/fuzz` (bodies in [`fuzzing`]).
//! - [`ipmi::session`]: the RMCP+ session on the `ipmi-rs` crate. ipmi-rs does the session
//!   setup (cipher suite 3), integrity, encryption and IPMB framing; this crate adds on top
//!   of it: typed connect errors, Set Session Privilege Level, raw requests for netfn 0x2C
//!   (which ipmi-rs's typed API rejects), retries and response matching, Send Message
//!   bridging to blade IPMCs (embedded or separate answers), a guard that turns ipmi-rs
//!   panics on bad input into errors, and all command decoding above. There is no second
//!   IPMI stack: no bytes go on the wire except through ipmi-rs.
//! - [`ipmi::credentials`]: the shelf password file (owner-only, never logged).
//! - [`access::ShelfAccess`]: what the HPI model asks of a shelf; [`ipmi::IpmiShelf`]
//!   implements it over the session, tests implement it with fakes.
//! - [`model`] and [`domain`]: the HPI model (pure: no sockets, time is an argument):
//!   resource presence table (shelf, shelf manager, boards and their subsidiary FRUs), RDRs
//!   (sensors, LED controls, inventory), hot-swap states
//!   mapped from PICMG M0–M7, policy cancel, action requests, auto-insert/auto-extract
//!   timers, an event queue with subscriptions, discovery at start and on change events,
//!   reconnection with back-off. The M-state mapping and the design are in docs/hpi.md.

#![forbid(unsafe_code)]

pub mod access;
pub mod domain;
pub mod fuzzing;
pub mod ipmi;
pub mod model;

pub use access::{AccessError, ShelfAccess};
pub use domain::{Domain, DomainConfig, HpiError, SubscriptionId};
pub use model::*;
