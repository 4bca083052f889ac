//! Speed of the frame protection layer alone: [`FrameCrypto::seal_to`] and
//! [`FrameCrypto::open`] of frames of a given size, on one core.

use std::time::Instant;

use totem_dpdk::NodeId;
use totem_dpdk::crypto::{EpochKey, FrameCrypto, Protection};

/// Seal and open rates for one frame size, MB/s of frame bytes.
#[derive(Debug, Clone, Copy)]
pub struct AeadResult {
    /// Sealing throughput.
    pub seal_mb_per_sec: f64,
    /// Opening throughput (the frames are opened by a second node, as on the ring).
    pub open_mb_per_sec: f64,
}

/// Seals about `bytes` bytes of `frame`-byte frames at node 1 and opens them at node 2.
///
/// # Panics
/// If a frame sealed here does not open (a bug).
pub fn run(frame: usize, bytes: usize) -> AeadResult {
    const BATCH: usize = 64;
    let key = EpochKey::new(0, vec![0x42; 32]).expect("valid key");
    let mut a = FrameCrypto::new(Protection::Encrypt, NodeId(1), Some(key.clone()), 0)
        .expect("valid crypto");
    let mut plain = vec![0x5au8; frame.max(8)];
    plain[..4].copy_from_slice(&[0xA1, 0x5E, 1, 2]);
    let rounds = (bytes / (frame.max(1) * BATCH)).max(1);
    // Buffers reused round after round, as the allocator would hand them back on the ring.
    let mut sealed: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(frame + 64)).collect();
    let mut out = Vec::with_capacity(frame + 64);
    let (mut seal, mut open) = (0.0, 0.0);
    for _ in 0..rounds {
        let start = Instant::now();
        for buf in &mut sealed {
            a.seal_to(&plain, None, buf).expect("seal");
        }
        seal += start.elapsed().as_secs_f64();
        // A fresh receiver per round: its replay window has not seen these counters.
        let mut b = FrameCrypto::new(Protection::Encrypt, NodeId(2), Some(key.clone()), 0)
            .expect("valid crypto");
        let start = Instant::now();
        for w in &sealed {
            b.open(w, &mut out).expect("open");
        }
        open += start.elapsed().as_secs_f64();
    }
    let total = (rounds * BATCH * frame) as f64 / 1e6;
    AeadResult {
        seal_mb_per_sec: total / seal,
        open_mb_per_sec: total / open,
    }
}
