//! AMF's node side: what the executive does on this node when the AMF state machine
//! (`ais_core::services::amf`) decides something about a component here.
//!
//! - [`clc`]: the CLC-CLI runner. Runs a component's instantiate, terminate and cleanup
//!   commands (and the node failfast command) with `/bin/sh -c`, as a configured user, in a
//!   process group of their own, with a timeout that kills the whole group, their output
//!   logged line by line; outcomes come back as values ([`clc::ClcEvent`]). It also does
//!   passive monitoring (the exit of a component's process, and of its descendants) and the
//!   default cleanup (SIGKILL to the component's process group).
//! - [`vip`]: the built-in IP takeover component type: a virtual IPv4 address added to an
//!   interface and announced with gratuitous ARP when its CSI is assigned active here,
//!   removed when the assignment is removed (CGL CAF.2.2).
//!
//! This API does not know the state machine's types: components are named by their SA Forum
//! DN, commands by [`clc::CommandKind`]. The rules are in docs/amf.md, "The node side:
//! CLC-CLI, passive monitoring, IP takeover".

pub mod clc;
mod netlink;
pub mod vip;
