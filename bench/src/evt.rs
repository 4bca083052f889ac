//! `bench evt`: event publish → subscriber delivery beside CPG, on one cluster, in one run.
//!
//! One cluster of N `aisexec` (started as `bench ckpt` starts them) is measured three ways
//! per `--size`, in this order:
//!
//! 1. **CPG as fast as flow control allows**: one `bench cpg-load` sender per node, batches of
//!    `--batch` (the code path of `bench throughput`); msgs/s delivered per node.
//! 2. **EVT, a filter that matches**: on every node one subscriber connection (one
//!    subscription whose prefix filter passes every event) and `--in-flight` publisher
//!    connections, each publishing one event after another (the client library has one
//!    request per connection in flight). Events/s delivered per node, mean over the nodes,
//!    and the latency from the publish call to the delivery at each subscriber (the
//!    publisher's CLOCK_REALTIME in the data; one host, one clock).
//! 3. **EVT, a filter that does not match**: the same, every subscription's filter passing
//!    nothing: publishes/s acknowledged (what the executives sustain when matching is all
//!    they do at the subscribers' nodes).
//!
//! The target the EVT issue sets is printed and written to the JSON: matching events/s
//! delivered per node ≥ 50% of CPG msgs/s at the same size.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ais_client::evt::{
    Event, Evt, EvtEvent, Filter, FilterType, OPEN_CREATE, OPEN_PUBLISHER, OPEN_SUBSCRIBER,
};
use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::load::Workload;
use crate::measure::{self, Percentiles, realtime_ns};
use crate::stack::{AisCluster, StackOptions, StackTransport};

/// Target: matching events/s delivered per node at least this fraction of CPG's msgs/s.
pub const TARGET: f64 = 0.5;

/// Arguments of `bench evt`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Executives in the cluster.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=16))]
    pub nodes: u32,
    /// Event data (and CPG message) sizes in bytes, comma-separated (at least 24).
    #[arg(long, default_value = "1024", value_delimiter = ',')]
    pub size: Vec<usize>,
    /// Publisher connections per node, each with one publish in flight.
    #[arg(long, default_value_t = 8)]
    pub in_flight: u32,
    /// Length of each measurement window in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Seconds of load before each window starts counting.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// How the executives talk (as `bench ckpt --transport`).
    #[arg(long, default_value = "udp-netns")]
    pub transport: String,
    /// Frame crypto (AES-256-GCM): on or off.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub crypto: String,
    /// Link MTU: 1500 or 9000.
    #[arg(long, default_value_t = 1500)]
    pub mtu: u32,
    /// Most CPG messages per submit call.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub batch: u32,
    /// Set an executive configuration key, TABLE.KEY=VALUE.
    #[arg(long = "set", value_name = "TABLE.KEY=VALUE", value_parser = crate::stack::parse_setting)]
    pub settings: Vec<(String, String, String)>,
    /// Also write the results as one JSON document to PATH.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

/// One size's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Bytes of data.
    pub size: usize,
    /// CPG messages delivered per second, mean over the nodes.
    pub cpg_msgs_per_sec: f64,
    /// CPG call to the sender's own delivery, µs.
    pub cpg_lat_self_us: Percentiles,
    /// Events delivered per second to the matching subscription, mean over the nodes.
    pub evt_events_per_sec: f64,
    /// Publish call to delivery, every subscriber, µs.
    pub evt_lat_us: Percentiles,
    /// Publishes acknowledged per second (filters matching).
    pub evt_published_per_sec: f64,
    /// Publishes acknowledged per second with filters that match nothing.
    pub evt_unmatched_published_per_sec: f64,
    /// Lost-event notifications seen (a subscriber that could not keep up).
    pub evt_lost: u64,
    /// `evt_events_per_sec / cpg_msgs_per_sec`.
    pub ratio: f64,
}

/// What `bench evt` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The command line.
    pub command: String,
    /// When (UTC).
    pub date_unix_s: u64,
    /// Transport.
    pub transport: String,
    /// Nodes.
    pub nodes: usize,
    /// Publisher connections per node.
    pub in_flight: u32,
    /// Per size.
    pub rows: Vec<Row>,
    /// Every row meets [`TARGET`].
    pub target_met: bool,
}

struct EvtFigures {
    events_per_sec: f64,
    lat: Histogram<u64>,
    published_per_sec: f64,
    lost: u64,
}

/// Runs `bench evt`.
///
/// # Errors
/// The cluster does not start, or a client cannot connect.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let transport: StackTransport = args.transport.parse()?;
    anyhow::ensure!(
        args.seconds > 0.0 && args.warmup >= 0.0,
        "bad --seconds/--warmup"
    );
    for &s in &args.size {
        anyhow::ensure!(
            (crate::load::HEADER_LEN..=ais_client::evt::MAX_DATA).contains(&s),
            "--size {s}: use {}..={} bytes",
            crate::load::HEADER_LEN,
            ais_client::evt::MAX_DATA
        );
    }
    let nodes = args.nodes as usize;
    let work = std::env::temp_dir().join(format!("oais-bench-evt-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let program = std::env::current_exe().context("locating the bench executable")?;
    let warmup = Duration::from_secs_f64(args.warmup);
    let window = Duration::from_secs_f64(args.seconds);
    let lab =
        if transport.needs_lab() {
            Some(netlab::Lab::new(nodes.max(2), args.mtu).context(
                "creating the network namespaces (needs root; --transport udp does not)",
            )?)
        } else {
            None
        };
    eprintln!(
        "bench evt: starting {nodes} executives ({})",
        transport.name()
    );
    let mut cluster = AisCluster::start(
        lab.as_ref(),
        &StackOptions {
            nodes,
            transport,
            crypto: args.crypto == "on",
            mtu: args.mtu,
            dir: work.join("cluster"),
            busy_poll: false,
            program,
            settings: args.settings.clone(),
        },
    )?;
    let mut rows = Vec::new();
    for (k, &size) in args.size.iter().enumerate() {
        eprintln!("  CPG {size} B, {nodes} senders, batches of {}", args.batch);
        let workload = Workload {
            group: format!("evtbench{k}"),
            size,
            senders: nodes,
            rate: None,
            batch: args.batch,
            warmup,
            window,
        };
        let dir = work.join(format!("cpg-{k}"));
        let cpg = measure::run(
            &mut cluster,
            &workload,
            &dir,
            |_, _| Ok(()),
            &measure::Options::default(),
        )
        .with_context(|| format!("measuring CPG with {size} B messages"))?;
        eprintln!(
            "  EVT {size} B, matching filters, {} publishers per node",
            args.in_flight
        );
        let matched = evt_phase(
            &cluster,
            nodes,
            &format!("evtbench{k}m"),
            size,
            args.in_flight,
            true,
            warmup,
            window,
        )?;
        eprintln!("  EVT {size} B, filters that match nothing");
        let unmatched = evt_phase(
            &cluster,
            nodes,
            &format!("evtbench{k}u"),
            size,
            args.in_flight,
            false,
            warmup,
            window,
        )?;
        let ratio = matched.events_per_sec / cpg.msgs_per_sec.max(1e-9);
        rows.push(Row {
            size,
            cpg_msgs_per_sec: cpg.msgs_per_sec,
            cpg_lat_self_us: Percentiles::of(&cpg.lat_self),
            evt_events_per_sec: matched.events_per_sec,
            evt_lat_us: Percentiles::of(&matched.lat),
            evt_published_per_sec: matched.published_per_sec,
            evt_unmatched_published_per_sec: unmatched.published_per_sec,
            evt_lost: matched.lost + unmatched.lost,
            ratio,
        });
    }
    drop(cluster);
    drop(lab);
    let _ = std::fs::remove_dir_all(&work);
    let report = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        date_unix_s: realtime_ns() / 1_000_000_000,
        transport: transport.name().to_owned(),
        nodes,
        in_flight: args.in_flight,
        target_met: rows.iter().all(|r| r.ratio >= TARGET),
        rows,
    };
    println!(
        "{:>6} {:>12} {:>10} {:>12} {:>10} {:>10} {:>12} {:>14} {:>6} {:>7}",
        "SIZE",
        "CPG msg/s",
        "CPG p99us",
        "EVT ev/s",
        "EVT p50us",
        "EVT p99us",
        "EVT pub/s",
        "unmatched pub/s",
        "lost",
        "ratio"
    );
    for r in &report.rows {
        println!(
            "{:>6} {:>12.0} {:>10} {:>12.0} {:>10} {:>10} {:>12.0} {:>14.0} {:>6} {:>7.2}",
            r.size,
            r.cpg_msgs_per_sec,
            r.cpg_lat_self_us.p99,
            r.evt_events_per_sec,
            r.evt_lat_us.p50,
            r.evt_lat_us.p99,
            r.evt_published_per_sec,
            r.evt_unmatched_published_per_sec,
            r.evt_lost,
            r.ratio
        );
    }
    println!(
        "target: EVT events/s delivered per node >= {:.0}% of CPG msgs/s at each size: {}",
        TARGET * 100.0,
        if report.target_met { "met" } else { "NOT met" }
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn retry<T>(mut op: impl FnMut() -> Result<T, ais_client::Error>) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match op() {
            Err(e) if e.is_try_again() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return Ok(other?),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn evt_phase(
    cluster: &AisCluster<'_>,
    nodes: usize,
    channel: &str,
    size: usize,
    in_flight: u32,
    matching: bool,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<EvtFigures> {
    let publishers = nodes * in_flight as usize;
    let ready = Arc::new(Barrier::new(nodes + publishers + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let start_ns = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut subs = Vec::new();
    for n in 1..=nodes {
        let socket = cluster.socket(n).to_path_buf();
        let (ready, stop, start_ns) =
            (Arc::clone(&ready), Arc::clone(&stop), Arc::clone(&start_ns));
        let channel = channel.to_owned();
        subs.push(std::thread::spawn(
            move || -> anyhow::Result<(u64, Histogram<u64>, u64)> {
                let mut e = Evt::connect(&socket)?;
                let h = retry(|| e.open(channel.as_bytes(), OPEN_CREATE | OPEN_SUBSCRIBER))?;
                let pattern = if matching { "m" } else { "nothing" };
                let filter = Filter {
                    kind: FilterType::Prefix.code(),
                    pattern: pattern.into(),
                };
                retry(|| e.subscribe(h, 1, vec![filter.clone()]))?;
                ready.wait();
                let mut lat = Histogram::<u64>::new(3)?;
                let (mut counted, mut lost) = (0u64, 0u64);
                loop {
                    match e.dispatch(Some(Duration::from_millis(200)))? {
                        Some(EvtEvent::Deliver(d)) => {
                            if d.is_lost() {
                                lost += 1;
                                continue;
                            }
                            let now = realtime_ns();
                            let t0 = start_ns.load(Ordering::Acquire);
                            let from = t0 + warmup.as_nanos() as u64;
                            let to = from + window.as_nanos() as u64;
                            if (from..to).contains(&now) {
                                counted += 1;
                            }
                            let sent = d
                                .data
                                .get(..8)
                                .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8")));
                            if (from..to).contains(&sent) {
                                let _ = lat.record(now.saturating_sub(sent) / 1000);
                            }
                        }
                        Some(EvtEvent::ChannelOpen { .. }) => {}
                        None if stop.load(Ordering::Acquire) => break,
                        None => {}
                    }
                }
                Ok((counted, lat, lost))
            },
        ));
    }
    let mut pubs = Vec::new();
    for p in 0..publishers {
        let socket = cluster.socket(p % nodes + 1).to_path_buf();
        let (ready, start_ns) = (Arc::clone(&ready), Arc::clone(&start_ns));
        let channel = channel.to_owned();
        pubs.push(std::thread::spawn(move || -> anyhow::Result<u64> {
            let mut e = Evt::connect(&socket)?;
            let h = retry(|| e.open(channel.as_bytes(), OPEN_CREATE | OPEN_PUBLISHER))?;
            ready.wait();
            let t0 = loop {
                let t = start_ns.load(Ordering::Acquire);
                if t != 0 {
                    break t;
                }
                std::thread::yield_now();
            };
            let from = t0 + warmup.as_nanos() as u64;
            let to = from + window.as_nanos() as u64;
            let mut data = vec![0u8; size];
            let mut event = Event::new();
            event.set_attributes(&[b"match"], 1, 0, b"bench")?;
            let mut acked = 0u64;
            loop {
                let now = realtime_ns();
                if now >= to {
                    return Ok(acked);
                }
                data[..8].copy_from_slice(&now.to_le_bytes());
                event.set_data(&data);
                match e.publish(h, &event) {
                    Ok(_) => {
                        if (from..to).contains(&realtime_ns()) {
                            acked += 1;
                        }
                    }
                    Err(err) if err.is_try_again() => std::thread::sleep(Duration::from_micros(50)),
                    Err(err) => return Err(err.into()),
                }
            }
        }));
    }
    ready.wait();
    start_ns.store(realtime_ns(), Ordering::Release);
    let mut published = 0;
    for p in pubs {
        published += p
            .join()
            .map_err(|_| anyhow::anyhow!("a publisher panicked"))??;
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Release);
    let mut lat = Histogram::<u64>::new(3)?;
    let (mut delivered, mut lost) = (0u64, 0u64);
    for s in subs {
        let (c, h, l) = s
            .join()
            .map_err(|_| anyhow::anyhow!("a subscriber panicked"))??;
        delivered += c;
        lost += l;
        lat.add(&h)?;
    }
    let secs = window.as_secs_f64();
    Ok(EvtFigures {
        events_per_sec: delivered as f64 / secs / nodes as f64,
        lat,
        published_per_sec: published as f64 / secs,
        lost,
    })
}
