//! Result rows of the throughput benchmark and their outputs: JSON lines, CSV, text lines and
//! SVG plots in a results folder.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;
use serde::Serialize;

use crate::measure::Percentiles;

/// One measured configuration: this stack, corosync, or the raw link.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `"throughput"` (as fast as flow control allows), `"latency"` (fixed offered load) or
    /// `"raw"` (the link without Totem).
    pub bench: &'static str,
    /// `"openais-rs"`, `"corosync"` or `"raw"`.
    pub system: String,
    /// Transport name (`"udp-netns"`, `"knet"`, `"dpdk-af-packet"`, ...).
    pub transport: String,
    /// Nodes in the cluster (2 for the raw link: one stream).
    pub nodes: usize,
    /// Message size in bytes (datagram/frame payload for the raw link).
    pub size: usize,
    /// Sender processes.
    pub senders: usize,
    /// Frame crypto: `"on"` or `"off"`.
    pub crypto: &'static str,
    /// Link MTU.
    pub mtu: u32,
    /// Offered load in messages/s for latency rows; `None`: as fast as flow control allows.
    pub offered_msgs_per_sec: Option<f64>,
    /// Messages delivered per second, mean over the nodes (frames/s for the raw link).
    pub msgs_per_sec: f64,
    /// Delivered payload in MB/s (10^6 bytes), mean over the nodes.
    pub mb_per_sec: f64,
    /// Messages delivered per second at each node.
    pub per_node_msgs_per_sec: Vec<f64>,
    /// Submit to the sender's own delivery, microseconds.
    pub lat_self_us: Percentiles,
    /// Submit to delivery at the last node (sampled), microseconds.
    pub lat_all_us: Percentiles,
    /// CPU used by the daemons (for system "ring", the bare ring's node processes) during the
    /// window, in cores.
    pub cpu_cores: f64,
    /// Submit calls refused for flow control.
    pub try_again: u64,
    /// Own messages sent in the window and not back when the drain ended: still queued when
    /// the system is saturated (latency beyond the window plus the drain), 0 below that.
    pub missing_own: u64,
    /// Length of the counted window.
    pub seconds: f64,
    /// msgs/s divided by the raw link's frames/s at the same MTU (one message per frame is
    /// the ceiling when messages are not packed).
    pub raw_frame_ratio: Option<f64>,
    /// MB/s divided by the raw link's MB/s at the same MTU.
    pub raw_byte_ratio: Option<f64>,
    /// msgs/s divided by corosync's in the same configuration.
    pub vs_corosync: Option<f64>,
    /// This stack's msgs/s per node divided by the bare ring's (`system` "ring": the same
    /// Totem drivers without executives and clients) in the same lab and run; the executive
    /// path costs 1 minus this.
    pub vs_ring: Option<f64>,
    /// Self-latency CDF points `(microseconds, fraction)` for the plot.
    #[serde(skip)]
    pub cdf: Vec<(f64, f64)>,
}

impl Row {
    /// One line of text for the terminal.
    pub fn text(&self) -> String {
        let mut s = format!(
            "{:<10} {:<15} {:>5} B mtu {:>4} crypto {:<3} ",
            self.system, self.transport, self.size, self.mtu, self.crypto
        );
        if self.bench == "raw" {
            let _ = write!(
                s,
                "{:>9.0} frames/s {:>8.1} MB/s",
                self.msgs_per_sec, self.mb_per_sec
            );
            if self.nodes <= 2 {
                s.push_str(" (one stream)");
            } else {
                // The fan-out: distinct datagrams every receiver got, then each receiver.
                let each: Vec<String> = self
                    .per_node_msgs_per_sec
                    .iter()
                    .map(|f| format!("{f:.0}"))
                    .collect();
                let _ = write!(
                    s,
                    " (fan-out: each datagram to {} hosts; frames/s per receiver {})",
                    self.nodes - 1,
                    each.join(" ")
                );
            }
            return s;
        }
        if self.system == "ring" && self.offered_msgs_per_sec.is_none() {
            // The bare ring at its maximum: no clients, no latency; every node's rate, and
            // the ring processes' CPU.
            let each: Vec<String> = self
                .per_node_msgs_per_sec
                .iter()
                .map(|f| format!("{f:.0}"))
                .collect();
            let _ = write!(
                s,
                "max:              {:>9.0} msgs/s/node {:>7.1} MB/s  (Totem drivers without \
                 executives; per node {})  cpu {:.2}",
                self.msgs_per_sec,
                self.mb_per_sec,
                each.join(" "),
                self.cpu_cores
            );
            if let Some(r) = self.raw_frame_ratio {
                let _ = write!(s, "  {:.0}% of raw frames/s", r * 100.0);
            }
            if let Some(r) = self.raw_byte_ratio {
                let _ = write!(s, ", {:.0}% of raw MB/s", r * 100.0);
            }
            return s;
        }
        match self.offered_msgs_per_sec {
            Some(r) => {
                let _ = write!(s, "offered {r:>8.0}/s: ");
            }
            None => s.push_str("max:              "),
        }
        let _ = write!(
            s,
            "{:>9.0} msgs/s/node {:>7.1} MB/s  ",
            self.msgs_per_sec, self.mb_per_sec
        );
        if self.lat_self_us.count == 0 && self.missing_own > 0 {
            // Saturated: the send queues hold more than the window plus the drain.
            let _ = write!(
                s,
                "self latency n/a: {} own messages still queued after the drain",
                self.missing_own
            );
        } else {
            let _ = write!(
                s,
                "self p50/p99/p99.9 {}/{}/{} µs",
                self.lat_self_us.p50, self.lat_self_us.p99, self.lat_self_us.p999,
            );
            // The bare ring measures its own deliveries only.
            if self.lat_all_us.count > 0 {
                let _ = write!(s, "  all p99 {} µs", self.lat_all_us.p99);
            }
        }
        let _ = write!(s, "  cpu {:.2}", self.cpu_cores);
        if let Some(r) = self.raw_frame_ratio {
            let _ = write!(s, "  {:.0}% of raw frames/s", r * 100.0);
        }
        if let Some(r) = self.raw_byte_ratio {
            let _ = write!(s, ", {:.0}% of raw MB/s", r * 100.0);
        }
        if let Some(r) = self.vs_corosync {
            let _ = write!(s, "  {r:.2}× corosync");
        }
        s
    }
}

/// Writes `results.json` (an array), `results.csv`, `throughput.svg` and `latency-cdf.svg`
/// into `dir`.
pub fn write_all(dir: &Path, rows: &[Row]) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(rows)? + "\n",
    )?;
    fs::write(dir.join("results.csv"), csv(rows))?;
    plot_throughput(&dir.join("throughput.svg"), rows)?;
    plot_latency(&dir.join("latency-cdf.svg"), rows)?;
    Ok(())
}

/// The rows as CSV with a header line.
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "bench,system,transport,nodes,size,senders,crypto,mtu,offered_msgs_per_sec,msgs_per_sec,\
         mb_per_sec,lat_self_p50_us,lat_self_p99_us,lat_self_p999_us,lat_all_p50_us,\
         lat_all_p99_us,lat_all_p999_us,cpu_cores,try_again,missing_own,seconds,\
         raw_frame_ratio,raw_byte_ratio,vs_corosync,vs_ring\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{:.0},{:.2},{},{},{},{},{},{},{:.2},{},{},{},{},{},{},{}",
            r.bench,
            r.system,
            r.transport,
            r.nodes,
            r.size,
            r.senders,
            r.crypto,
            r.mtu,
            r.offered_msgs_per_sec
                .map_or(String::new(), |v| format!("{v:.0}")),
            r.msgs_per_sec,
            r.mb_per_sec,
            r.lat_self_us.p50,
            r.lat_self_us.p99,
            r.lat_self_us.p999,
            r.lat_all_us.p50,
            r.lat_all_us.p99,
            r.lat_all_us.p999,
            r.cpu_cores,
            r.try_again,
            r.missing_own,
            r.seconds,
            opt(r.raw_frame_ratio),
            opt(r.raw_byte_ratio),
            opt(r.vs_corosync),
            opt(r.vs_ring),
        );
    }
    out
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {e:?}")
}

/// MB/s against message size, one line per system/transport/MTU; the raw link as a flat
/// dashed line per MTU (it has no messages, only full frames).
fn plot_throughput(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let series = group(rows.iter().filter(|r| r.bench == "throughput"), |r| {
        format!("{} {} mtu {}", r.system, r.transport, r.mtu)
    });
    let raws: Vec<&Row> = rows.iter().filter(|r| r.bench == "raw").collect();
    let sizes: Vec<usize> = series
        .iter()
        .flat_map(|(_, rs)| rs.iter().map(|r| r.size))
        .collect();
    let (xmin, xmax) = (
        sizes.iter().copied().min().unwrap_or(64) as f64,
        sizes.iter().copied().max().unwrap_or(65536) as f64,
    );
    let (xmin, xmax) = (xmin / 1.5, xmax * 1.5);
    let ymax = rows
        .iter()
        .filter(|r| r.bench != "latency")
        .map(|r| r.mb_per_sec)
        .fold(1.0, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "CPG throughput vs message size (MB/s delivered per node)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((xmin..xmax).log_scale(), 0.0..ymax)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("message size (bytes)")
        .y_desc("MB/s")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(plot_err)?;
    for (i, (name, rs)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut pts: Vec<(f64, f64)> = rs.iter().map(|r| (r.size as f64, r.mb_per_sec)).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(plot_err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))
            .map_err(plot_err)?;
    }
    for (i, r) in raws.iter().enumerate() {
        let color = COLORS[(series.len() + i) % COLORS.len()];
        let y = r.mb_per_sec;
        let dashes: Vec<Vec<(f64, f64)>> = dashed(xmin, xmax, y);
        for d in dashes {
            chart
                .draw_series(LineSeries::new(d, color.stroke_width(1)))
                .map_err(plot_err)?;
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(xmin, y), (xmin, y)],
                color,
            )))
            .map_err(plot_err)?
            .label(format!(
                "raw {} mtu {} ({} B frames, dashed)",
                r.transport, r.mtu, r.size
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// Short segments along `y` on a log x axis, for a dashed line.
fn dashed(xmin: f64, xmax: f64, y: f64) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let step = (xmax / xmin).powf(1.0 / 60.0);
    let mut x = xmin;
    while x * step < xmax {
        out.push(vec![(x, y), (x * step.sqrt(), y)]);
        x *= step;
    }
    out
}

/// Self-delivery latency CDF, one line per measured row that has latencies (latency rows if
/// there are any, otherwise the throughput rows).
fn plot_latency(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let has_latency_rows = rows.iter().any(|r| r.bench == "latency");
    let chosen: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            !r.cdf.is_empty()
                && if has_latency_rows {
                    r.bench == "latency"
                } else {
                    r.bench == "throughput"
                }
        })
        .collect();
    let xmax = chosen
        .iter()
        .flat_map(|r| r.cdf.iter().map(|p| p.0))
        .fold(100.0, f64::max)
        * 1.3;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let title = if has_latency_rows {
        "Latency from submit to own delivery, at a fixed offered load (CDF)"
    } else {
        "Latency from submit to own delivery, at maximum load (CDF)"
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((1.0..xmax).log_scale(), 0.0..1.0)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("microseconds")
        .y_desc("fraction of messages")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(plot_err)?;
    for (i, r) in chosen.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let label = format!(
            "{} {} {} B mtu {}{}",
            r.system,
            r.transport,
            r.size,
            r.mtu,
            r.offered_msgs_per_sec
                .map_or(String::new(), |o| format!(" @ {o:.0}/s"))
        );
        chart
            .draw_series(LineSeries::new(r.cdf.clone(), color.stroke_width(2)))
            .map_err(plot_err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// Groups rows by a key, keeping first-seen order.
fn group<'a>(
    rows: impl Iterator<Item = &'a Row>,
    key: impl Fn(&Row) -> String,
) -> Vec<(String, Vec<&'a Row>)> {
    let mut out: Vec<(String, Vec<&'a Row>)> = Vec::new();
    for r in rows {
        let k = key(r);
        match out.iter_mut().find(|(name, _)| *name == k) {
            Some((_, v)) => v.push(r),
            None => out.push((k, vec![r])),
        }
    }
    out
}

/// CDF points of a histogram, for the plot: one point per recorded value bucket.
pub fn cdf_points(h: &hdrhistogram::Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let total = h.len() as f64;
    let mut seen = 0u64;
    let mut out = Vec::new();
    for v in h.iter_recorded() {
        seen += v.count_since_last_iteration();
        out.push((v.value_iterated_to().max(1) as f64, seen as f64 / total));
    }
    // Thin to at most ~400 points so the SVG stays small.
    let keep = out.len().div_ceil(400).max(1);
    let last = out.last().copied();
    let mut thinned: Vec<(f64, f64)> = out.into_iter().step_by(keep).collect();
    if let Some(l) = last
        && thinned.last() != Some(&l)
    {
        thinned.push(l);
    }
    thinned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: &str, bench: &'static str, size: usize, mb: f64) -> Row {
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1_000_000, 3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 3).unwrap();
        }
        Row {
            bench,
            system: system.into(),
            transport: "udp-netns".into(),
            nodes: 3,
            size,
            senders: 3,
            crypto: "on",
            mtu: 1500,
            offered_msgs_per_sec: None,
            msgs_per_sec: mb * 1e6 / size as f64,
            mb_per_sec: mb,
            per_node_msgs_per_sec: vec![1.0, 2.0, 3.0],
            lat_self_us: Percentiles::of(&h),
            lat_all_us: Percentiles::default(),
            cpu_cores: 1.5,
            try_again: 0,
            missing_own: 0,
            seconds: 3.0,
            raw_frame_ratio: Some(0.5),
            raw_byte_ratio: None,
            vs_corosync: None,
            vs_ring: None,
            cdf: cdf_points(&h),
        }
    }

    #[test]
    fn csv_has_one_line_per_row_and_matching_columns() {
        let rows = [
            row("openais-rs", "throughput", 1024, 80.0),
            row("raw", "raw", 1472, 200.0),
        ];
        let text = csv(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let cols = lines[0].split(',').count();
        for l in &lines[1..] {
            assert_eq!(l.split(',').count(), cols, "{l}");
        }
        assert!(lines[1].starts_with("throughput,openais-rs,udp-netns,3,1024,3,on,1500,,"));
        assert!(lines[1].contains(",0.500,,"), "{}", lines[1]);
    }

    #[test]
    fn cdf_is_monotonic_and_ends_at_one() {
        let r = row("openais-rs", "throughput", 1024, 80.0);
        assert!(
            r.cdf
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1)
        );
        assert_eq!(r.cdf.last().unwrap().1, 1.0);
        assert!(r.cdf.len() <= 401);
    }

    #[test]
    fn writes_json_csv_and_two_svgs() {
        let dir = std::env::temp_dir().join(format!("bench-report-{}", std::process::id()));
        let mut lat = row("openais-rs", "latency", 1024, 40.0);
        lat.offered_msgs_per_sec = Some(20_000.0);
        let rows = [
            row("openais-rs", "throughput", 1024, 80.0),
            row("openais-rs", "throughput", 8192, 150.0),
            row("corosync", "throughput", 1024, 30.0),
            row("raw", "raw", 1472, 200.0),
            lat,
        ];
        write_all(&dir, &rows).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
        assert_eq!(json.as_array().unwrap().len(), 5);
        assert_eq!(json[0]["lat_self_us"]["p50"], rows[0].lat_self_us.p50);
        for svg in ["throughput.svg", "latency-cdf.svg"] {
            let text = fs::read_to_string(dir.join(svg)).unwrap();
            assert!(text.starts_with("<svg"), "{svg}");
            assert!(text.contains("openais-rs"), "{svg} has no legend");
        }
        assert!(
            fs::read_to_string(dir.join("throughput.svg"))
                .unwrap()
                .contains("corosync")
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
