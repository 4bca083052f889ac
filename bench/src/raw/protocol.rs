//! What the harness and the two peers agree on: the frame tags and the control frames' length,
//! the node ids of the two ends, the timeouts, and the clock they share (`CLOCK_REALTIME`)
//! with the `start NS` line that sets the common start.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use dataplane::{Dest, NodeId, SendError, Transport};

/// Frame tags (first payload byte).
pub(super) const PROBE: u8 = 0xA0;
pub(super) const ACK: u8 = 0xA1;
pub(super) const DATA_WARMUP: u8 = 0xD0;
pub(super) const DATA_WINDOW: u8 = 0xD1;
/// Length of probe and ack frames.
const CONTROL_LEN: usize = 16;
/// Node ids of the two ends.
pub(super) const SENDER: NodeId = NodeId(1);
pub(super) const RECEIVER: NodeId = NodeId(2);
/// How long the sender probes before giving up (a memif connection can take seconds).
pub(super) const HANDSHAKE: Duration = Duration::from_secs(30);
/// The receiver stops once the window is over and nothing arrived for this long ...
pub(super) const QUIET: Duration = Duration::from_millis(50);
/// ... or this long after the window at the latest.
pub(super) const DRAIN_MAX: Duration = Duration::from_secs(1);

/// `CLOCK_REALTIME` in nanoseconds.
pub(super) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Parses `start NS`.
pub(super) fn parse_start(line: &str) -> anyhow::Result<u64> {
    line.strip_prefix("start ")
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("expected `start NS` on stdin, got {line:?}"))
}

/// Sleeps, then spins, until `CLOCK_REALTIME` reaches `ns`.
pub(super) fn wait_until(ns: u64) {
    loop {
        let now = now_ns();
        if now >= ns {
            return;
        }
        let left = ns - now;
        if left > 2_000_000 {
            std::thread::sleep(Duration::from_nanos(left - 1_000_000));
        } else {
            std::hint::spin_loop();
        }
    }
}

pub(super) fn control<T: Transport>(t: &mut T, dest: NodeId, tag: u8) -> anyhow::Result<()> {
    match t.send(Dest::Node(dest), CONTROL_LEN, |b| {
        b.fill(0);
        b[0] = tag;
    }) {
        Ok(()) | Err(SendError::TxFull) => {}
        Err(e) => return Err(e.into()),
    }
    // Before a memif link is up the frame is refused: the next probe tries again.
    let _ = t.flush();
    Ok(())
}
