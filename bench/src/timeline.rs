//! Delivery around a network cut, time-resolved: from the delivery times every load generator
//! recorded (`--times`, [`crate::measure::Options::record_times`]), the delivered msgs/s in
//! small bins, the longest stall of delivery, and the time until throughput is back.
//!
//! Definitions (per receiving generator, then the mean or the worst over them):
//! - **rate of a span**: deliveries in it / its length, mean over the generators;
//! - **pre-cut rate**: from the window's start to the cut; **post-cut rate**: from
//!   `cut + settle` to the window's end (the steady rate the remaining networks carry);
//! - **full**: the pre-cut rate ([`Full::PreCut`], where the networks left carry as much as
//!   before: active mode, or an offered load they can carry) or the post-cut rate
//!   ([`Full::PostCut`], passive mode at maximum load, whose steady rate after the cut is one
//!   network's fewer);
//! - **longest stall**: the largest gap between two consecutive deliveries at any generator,
//!   among the gaps that end after the cut and begin before `cut + settle` (the gap across the
//!   cut included); the same over the time before the cut is the **baseline stall**;
//! - **back to full**: the time from the cut to the start of the first [`RATE_SPAN`] span
//!   (starting at the cut, then sliding by one bin) that delivers at least [`FULL_SHARE`] of
//!   full (0 when throughput never dipped). A span of 100 ms, not a bin, because at the maximum
//!   a 10 ms bin's rate swings by ±50% with the token's rotations and the link's bursts.

use std::time::Duration;

/// Length of the spans whose rate is compared with full.
pub const RATE_SPAN: Duration = Duration::from_millis(100);
/// The share of full that counts as full throughput.
pub const FULL_SHARE: f64 = 0.9;

/// Which rate is "full throughput".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The rate before the cut.
    PreCut,
    /// The steady rate after the cut.
    PostCut,
}

/// What [`analyse`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct CutTimeline {
    /// Bin length.
    pub bin: Duration,
    /// Every bin of the window: (start of the bin relative to the cut in ms, msgs/s delivered,
    /// mean over the generators).
    pub bins: Vec<(f64, f64)>,
    /// Pre-cut rate, msgs/s per generator.
    pub pre_rate: f64,
    /// Post-cut rate, msgs/s per generator.
    pub post_rate: f64,
    /// The rate taken as full.
    pub full: f64,
    /// Longest stall across and after the cut, ms.
    pub longest_stall_ms: f64,
    /// Longest gap before the cut, ms (what the load itself gives).
    pub baseline_stall_ms: f64,
    /// Time from the cut until throughput is back to full, ms; `None`: not within `settle`.
    pub back_to_full_ms: Option<f64>,
}

/// Analyses the delivery times of every generator (`times[g]`, CLOCK_REALTIME ns, sorted) of
/// a window `[window.0, window.1)` cut at `cut` (ns).
///
/// # Panics
/// If `bin` is zero.
pub fn analyse(
    times: &[Vec<u64>],
    window: (u64, u64),
    cut: u64,
    bin: Duration,
    settle: Duration,
    which: Full,
) -> CutTimeline {
    assert!(!bin.is_zero(), "a bin has a length");
    let g = times.len().max(1) as f64;
    let (start, end) = window;
    let cut = cut.clamp(start, end);
    let settle_end = (cut + settle.as_nanos() as u64).min(end);
    let bin_ns = bin.as_nanos() as u64;
    let nbins = (end.saturating_sub(start)).div_ceil(bin_ns) as usize;
    let mut counts = vec![0u64; nbins];
    for t in times.iter().flatten() {
        if (start..end).contains(t) {
            counts[((t - start) / bin_ns) as usize] += 1;
        }
    }
    let rate = |from: u64, to: u64| -> f64 {
        if to <= from {
            return 0.0;
        }
        let n: usize = times
            .iter()
            .map(|ts| ts.partition_point(|&t| t < to) - ts.partition_point(|&t| t < from))
            .sum();
        n as f64 / g / ((to - from) as f64 / 1e9)
    };
    let pre_rate = rate(start, cut);
    let post_rate = rate(settle_end, end);
    let full = match which {
        Full::PreCut => pre_rate,
        Full::PostCut => post_rate,
    };
    let mut longest = 0u64;
    let mut baseline = 0u64;
    for ts in times {
        for w in ts.windows(2) {
            let (a, b) = (w[0], w[1]);
            if b > cut && a < settle_end {
                longest = longest.max(b - a);
            } else if b <= cut && a >= start {
                baseline = baseline.max(b - a);
            }
        }
        // A generator that delivered nothing after the cut stalled until the end.
        if let Some(&last) = ts.iter().rev().find(|&&t| t < end)
            && last < settle_end
            && ts.iter().all(|&t| t < cut || t >= end)
        {
            longest = longest.max(settle_end - last.max(start));
        }
    }
    let bin_rate = |i: usize| counts[i] as f64 / g / bin.as_secs_f64();
    let bins = (0..nbins)
        .map(|i| {
            let at = start + i as u64 * bin_ns;
            ((at as f64 - cut as f64) / 1e6, bin_rate(i))
        })
        .collect();
    // Back to full: the first RATE_SPAN span at full.
    let span = RATE_SPAN.as_nanos() as u64;
    let mut back = None;
    let mut t = cut;
    while t + span <= end && t <= settle_end {
        if rate(t, t + span) >= FULL_SHARE * full {
            back = Some((t - cut) as f64 / 1e6);
            break;
        }
        t += bin_ns;
    }
    CutTimeline {
        bin,
        bins,
        pre_rate,
        post_rate,
        full,
        longest_stall_ms: longest as f64 / 1e6,
        baseline_stall_ms: baseline as f64 / 1e6,
        back_to_full_ms: back,
    }
}

impl CutTimeline {
    /// The bins from `before` ms before the cut to `after` ms after it, as CSV
    /// (`ms_from_cut,msgs_per_sec`).
    pub fn csv(&self, before: f64, after: f64) -> String {
        let mut s = String::from("ms_from_cut,msgs_per_sec\n");
        for &(ms, r) in self.bins.iter().filter(|b| b.0 >= -before && b.0 < after) {
            s += &format!("{ms:.0},{r:.0}\n");
        }
        s
    }

    /// The mean rate of the bins from `from` to `to` ms relative to the cut, as a short
    /// sparkline-like list (one value per bin), for the terminal.
    pub fn around(&self, from: f64, to: f64) -> String {
        self.bins
            .iter()
            .filter(|b| b.0 >= from && b.0 < to)
            .map(|b| format!("{:.0}", b.1 / 1000.0))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Deliveries every `every` ns from `from` to `to` (exclusive).
    fn steady(from: u64, to: u64, every: u64) -> Vec<u64> {
        (from..to).step_by(every as usize).collect()
    }

    #[test]
    fn a_stall_after_the_cut_and_the_return_to_full_are_measured() {
        // 10 000 msgs/s for 1 s, the cut, nothing for 60 ms, then 10 000 msgs/s again.
        let start = 1_000 * MS;
        let cut = start + 1_000 * MS;
        let mut t = steady(start, cut, 100_000);
        t.extend(steady(cut + 60 * MS, start + 3_000 * MS, 100_000));
        let times = vec![t.clone(), t];
        let tl = analyse(
            &times,
            (start, start + 3_000 * MS),
            cut,
            Duration::from_millis(10),
            Duration::from_secs(1),
            Full::PreCut,
        );
        assert!((tl.pre_rate - 10_000.0).abs() < 50.0, "{}", tl.pre_rate);
        assert!((tl.post_rate - 10_000.0).abs() < 50.0, "{}", tl.post_rate);
        assert!(
            (tl.longest_stall_ms - 60.1).abs() < 0.2,
            "{}",
            tl.longest_stall_ms
        );
        assert!(tl.baseline_stall_ms < 0.2, "{}", tl.baseline_stall_ms);
        // The first 100 ms span at 90% (sampled every 10 ms) starts 50 ms after the cut.
        let back = tl.back_to_full_ms.expect("back");
        assert!((50.0..=60.0).contains(&back), "{back}");
        // The bin of the cut and the five after it are empty.
        let after: Vec<f64> = tl
            .bins
            .iter()
            .filter(|b| (0.0..60.0).contains(&b.0))
            .map(|b| b.1)
            .collect();
        assert_eq!(after, vec![0.0; 6]);
        assert_eq!(tl.bins.len(), 300);
    }

    #[test]
    fn full_after_the_cut_is_the_steady_rate_then() {
        // 20 000 msgs/s before, a 200 ms dip to 2 000 msgs/s, then 10 000 msgs/s.
        let start = 0;
        let cut = 1_000 * MS;
        let mut t = steady(start, cut, 50_000);
        t.extend(steady(cut, cut + 200 * MS, 500_000));
        t.extend(steady(cut + 200 * MS, 3_000 * MS, 100_000));
        let times = vec![t];
        let window = (start, 3_000 * MS);
        let bin = Duration::from_millis(10);
        let post = analyse(
            &times,
            window,
            cut,
            bin,
            Duration::from_secs(1),
            Full::PostCut,
        );
        assert!((post.full - 10_000.0).abs() < 50.0, "{}", post.full);
        let back = post.back_to_full_ms.expect("back");
        assert!((190.0..=210.0).contains(&back), "{back}");
        // Measured against the pre-cut rate it never comes back within the settle time.
        let pre = analyse(
            &times,
            window,
            cut,
            bin,
            Duration::from_secs(1),
            Full::PreCut,
        );
        assert_eq!(pre.back_to_full_ms, None);
        // No dip at all: back at once.
        let flat = vec![steady(start, 3_000 * MS, 100_000)];
        let f = analyse(
            &flat,
            window,
            cut,
            bin,
            Duration::from_secs(1),
            Full::PreCut,
        );
        assert_eq!(f.back_to_full_ms, Some(0.0));
    }

    #[test]
    fn a_generator_silent_after_the_cut_stalls_until_the_settle_time() {
        let cut = 1_000 * MS;
        let times = vec![steady(0, cut, 1_000_000)];
        let tl = analyse(
            &times,
            (0, 3_000 * MS),
            cut,
            Duration::from_millis(10),
            Duration::from_secs(1),
            Full::PreCut,
        );
        assert!(tl.longest_stall_ms >= 1_000.0, "{}", tl.longest_stall_ms);
        assert_eq!(tl.back_to_full_ms, None);
    }
}
