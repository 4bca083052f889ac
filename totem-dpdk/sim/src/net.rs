//! The simulated network: per-link delay, jitter and faults (loss, duplication, reordering,
//! corruption), decided by the simulation's seeded random source.

use bytes::Bytes;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use totem_dpdk::Duration;

/// Which link faults a schedule may use, and how often (probabilities per frame per link).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Probability that a frame arrives twice.
    pub dup: f64,
    /// Probability that a frame is held back by an extra delay of up to `reorder_delay`, so
    /// that frames sent after it overtake it.
    pub reorder: f64,
    /// Probability that 1 to 4 bytes of a frame are flipped in flight.
    pub corrupt: f64,
    /// Attack: probability, per frame carried, that an attacker also injects a forged frame
    /// (random bytes behind a valid header) or a truncated copy of a real one. Needs crypto
    /// ([`crate::sim::Schedule::crypto`]): the protection layer must reject every one.
    pub forge: f64,
    /// Attack: probability, per frame carried, that an attacker also replays a frame recorded
    /// earlier on any link (older rings and earlier incarnations of restarted nodes included).
    pub replay: f64,
}

/// One link's behaviour.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// Propagation and processing delay of every frame.
    pub delay: Duration,
    /// Uniform extra delay in `[0, jitter]`.
    pub jitter: Duration,
    /// Largest extra delay of a reordered frame.
    pub reorder_delay: Duration,
    /// Fault probabilities.
    pub faults: Faults,
}

impl Default for Link {
    fn default() -> Link {
        Link {
            delay: Duration::from_micros(20),
            jitter: Duration::from_micros(5),
            reorder_delay: Duration::from_micros(400),
            faults: Faults::default(),
        }
    }
}

/// What happened to one frame on one link: zero, one or two copies with their delays.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Copies to deliver: (delay, frame, whether this copy was corrupted). Empty when the
    /// frame was lost.
    pub copies: Vec<(Duration, Bytes, bool)>,
    /// The frame was corrupted (in at least one copy).
    pub corrupted: bool,
}

impl Link {
    /// Decides the fate of `frame` on this link.
    pub fn carry(&self, rng: &mut ChaCha8Rng, frame: &Bytes) -> Verdict {
        let mut verdict = Verdict::default();
        if rng.random_bool(self.faults.loss) {
            return verdict;
        }
        let copies = if rng.random_bool(self.faults.dup) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = self.delay.0 + rng.random_range(0..=self.jitter.0);
            if rng.random_bool(self.faults.reorder) {
                delay += rng.random_range(0..=self.reorder_delay.0);
            }
            let (bytes, corrupted) = if rng.random_bool(self.faults.corrupt) && !frame.is_empty() {
                verdict.corrupted = true;
                (corrupt(rng, frame), true)
            } else {
                (frame.clone(), false)
            };
            verdict.copies.push((Duration(delay), bytes, corrupted));
        }
        verdict
    }
}

/// A copy of `frame` with 1 to 4 bytes changed.
fn corrupt(rng: &mut ChaCha8Rng, frame: &Bytes) -> Bytes {
    let mut copy = frame.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let at = rng.random_range(0..copy.len());
        copy[at] ^= rng.random_range(1..=255u8);
    }
    Bytes::from(copy)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn run(faults: Faults, n: usize) -> (usize, usize, usize) {
        let link = Link {
            faults,
            ..Link::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let frame = Bytes::from(vec![0u8; 100]);
        let (mut copies, mut corrupted, mut late) = (0, 0, 0);
        for _ in 0..n {
            let v = link.carry(&mut rng, &frame);
            copies += v.copies.len();
            corrupted += usize::from(v.corrupted);
            late += v.copies.iter().filter(|(d, _, _)| d.0 > 25_000).count();
        }
        (copies, corrupted, late)
    }

    #[test]
    fn fault_rates_follow_the_probabilities() {
        let (copies, corrupted, late) = run(Faults::default(), 10_000);
        assert_eq!((copies, corrupted, late), (10_000, 0, 0));
        let (copies, ..) = run(
            Faults {
                loss: 0.3,
                ..Faults::default()
            },
            10_000,
        );
        assert!((6_500..7_500).contains(&copies), "{copies}");
        let (copies, ..) = run(
            Faults {
                dup: 0.5,
                ..Faults::default()
            },
            10_000,
        );
        assert!((14_500..15_500).contains(&copies), "{copies}");
        let (_, corrupted, _) = run(
            Faults {
                corrupt: 0.1,
                ..Faults::default()
            },
            10_000,
        );
        assert!((800..1_200).contains(&corrupted), "{corrupted}");
        let (_, _, late) = run(
            Faults {
                reorder: 0.2,
                ..Faults::default()
            },
            10_000,
        );
        assert!((1_500..2_100).contains(&late), "{late}");
    }

    #[test]
    fn corruption_changes_the_frame() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let frame = Bytes::from(vec![7u8; 64]);
        for _ in 0..100 {
            assert_ne!(corrupt(&mut rng, &frame), frame);
        }
    }
}
