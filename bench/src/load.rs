//! The CPG workload every system under test runs, and what a load generator reports.
//!
//! A measurement starts a cluster (this stack's `aisexec`, or corosync: see [`Cluster`]), then
//! one **load generator process** per sender and one receive-only generator on every node that
//! has no sender. Every generator joins the same CPG group on its node's daemon. This stack's
//! generator is `bench cpg-load` (Rust, `ais_client`); corosync's is `bench/peer/cpgload.c`
//! (libcpg). Both speak the same command line, protocol and file formats, so one analysis
//! serves both systems.
//!
//! # Command line (both generators)
//!
//! ```text
//! --group NAME      CPG group to join
//! --members M       wait until the group has M members before saying "ready"
//! --sender I        send, as sender I (0-based); absent: receive only
//! --size BYTES      message size, at least HEADER_LEN
//! --rate R          offer R messages/s (this sender); absent or 0: as fast as flow control allows
//! --batch N         most messages per submit call (Rust generator; C sends one per call):
//!                   unpaced, always up to N; paced, one when on schedule, or every message
//!                   already due (up to N) when the sender fell behind
//! --warmup-ms W     delivered messages are counted from start + W
//! --seconds-ms S    ... until start + W + S; the sender stops sending then
//! --out DIR         where to write the latency files
//! --times           (Rust generator only) also write every in-window delivery's time
//! ```
//!
//! # Protocol on stdin/stdout
//!
//! 1. The generator connects, joins, waits for M members (giving up after 60 s), prints
//!    `ready` and a newline. It keeps dispatching CPG callbacks from here on.
//! 2. The harness, once every generator said ready, writes `start NS` and a newline to each,
//!    NS being a CLOCK_REALTIME time in nanoseconds shortly in the future (all processes run
//!    on one host, so they share the clock).
//! 3. The generator waits until NS, sends during `[NS, NS + W + S)` (a submit refused for flow
//!    control, TRY_AGAIN, is retried after dispatching callbacks for up to 1 ms), then keeps
//!    dispatching until its own messages are all back *and* nothing arrived for 200 ms, at
//!    most [`DRAIN`]; writes its latency files, prints one JSON line ([`LoadReport`]) and
//!    exits 0. Errors go to stderr, exit status 1.
//!
//! # Message format (little-endian)
//!
//! `magic u32 = MAGIC | sender u32 | seq u64 | sent_ns u64 (CLOCK_REALTIME) | padding to size`.
//! `sent_ns` is taken just before the submit call that carries the message.
//!
//! # Latency files (little-endian, no header)
//!
//! * `self-<node>-<pid>.lat`: one `u32` per own message sent inside the window
//!   `[NS + W, NS + W + S)` and delivered back: microseconds from `sent_ns` to its delivery.
//! * `all-<node>-<pid>.lat`: for every delivered message (any sender) with `seq % SAMPLE == 0`
//!   sent inside the window: `sender u32, seq u32 (low bits), latency_us u32`. The harness takes
//!   the maximum over the nodes per (sender, seq): the latency to delivery everywhere.
//! * `times-<node>-<pid>.ns` (with `--times`): one `u64` per delivery inside the window, its
//!   CLOCK_REALTIME time in nanoseconds (the time-resolved rate around a network cut).
//!
//! # Configuration changes
//!
//! Every CPG configuration change the generator sees is listed in the report as
//! `[realtime_ns, members]`: the failover benchmark reads the time the new membership reached
//! each survivor from it. After the window, changes in which processes only left (leave or
//! procdown: other generators finishing first) are not listed; node failures always are.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// First field of every benchmark message.
pub const MAGIC: u32 = 0x424E_4348;
/// Bytes of the message header; the smallest message size.
pub const HEADER_LEN: usize = 24;
/// Every SAMPLE-th sequence number is recorded in the `all-*.lat` files.
pub const SAMPLE: u64 = 16;
/// Longest time a generator waits for its own messages after the window.
pub const DRAIN: Duration = Duration::from_secs(2);

/// What one measurement runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// CPG group name.
    pub group: String,
    /// Message size in bytes (at least [`HEADER_LEN`]).
    pub size: usize,
    /// Number of sender processes, spread round-robin over the nodes (sender `i` on node
    /// `i % nodes + 1`).
    pub senders: usize,
    /// Total offered load in messages/s, split evenly over the senders; `None`: every sender
    /// as fast as flow control allows.
    pub rate: Option<f64>,
    /// Messages per submit call when unpaced (this stack's generator only).
    pub batch: u32,
    /// Time from start before deliveries are counted.
    pub warmup: Duration,
    /// Length of the counted window.
    pub window: Duration,
}

/// The one JSON line a generator prints at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Node id of the daemon the generator is connected to.
    pub node: u32,
    /// Process id of the generator.
    pub pid: u32,
    /// Sender index, `None` for a receive-only generator.
    pub sender: Option<u32>,
    /// Messages this generator submitted inside the window.
    pub sent: u64,
    /// Messages (of every sender) delivered to it inside the window.
    pub delivered: u64,
    /// Their bytes.
    pub delivered_bytes: u64,
    /// Submit calls refused with TRY_AGAIN (flow control) over the whole run.
    pub try_again: u64,
    /// Own messages sent in the window that never came back before the drain ended.
    pub missing_own: u64,
    /// Configuration changes seen: `[realtime_ns, members]`.
    pub confchg: Vec<(u64, u32)>,
    /// Path of the `self-*.lat` file.
    pub self_lat_file: PathBuf,
    /// Path of the `all-*.lat` file.
    pub all_lat_file: PathBuf,
    /// Path of the `times-*.ns` file (this stack's generator with `--times` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times_file: Option<PathBuf>,
}

/// A running cluster of one system, ready for load generators. Dropping it stops every
/// daemon and removes what it created.
pub trait Cluster {
    /// The system's name in reports: `"openais-rs"` or `"corosync"`.
    fn system(&self) -> &'static str;
    /// The transport's name in reports (`"udp"`, `"udp-netns"`, `"knet"`, ...).
    fn transport(&self) -> String;
    /// Number of nodes (node ids are `1..=nodes`).
    fn nodes(&self) -> usize;
    /// A command that runs a load generator on `node`, connected to that node's daemon, in
    /// the node's namespaces. The caller appends the workload arguments (module docs).
    fn load_command(&self, node: usize) -> Command;
    /// Process ids of the running daemons (for CPU accounting), by node; `None` once killed.
    fn daemon_pids(&self) -> Vec<Option<u32>>;
    /// SIGKILLs the daemon of `node` and reaps it.
    fn kill(&mut self, node: usize) -> anyhow::Result<()>;
}
