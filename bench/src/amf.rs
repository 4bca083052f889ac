//! `bench amf-node`: AMF's node side on this host, no cluster: how fast the CLC-CLI runner
//! (`ais::amf::clc`) starts a component, notices its process die, and cleans it up.
//!
//! Each round instantiates a component whose instantiate command `exec`s `sleep` (settle time
//! zero), then SIGKILLs its process, then cleans it up (no cleanup command: SIGKILL to the
//! group, done when it is empty). Measured per round:
//!
//! - **start**: from the instantiate request to its `Done { Succeeded }` (the process runs);
//! - **exit detection**: from the `kill(2)` to the `Exited` event of passive monitoring, the
//!   first step of a failover on a component failure detected by process exit (the AMF issue's
//!   target for the whole failover: p50 ≤ 20 ms);
//! - **cleanup**: from the cleanup request of a live component (a fresh one, not killed) to
//!   its `Done`, with the group empty.

use std::time::{Duration, Instant};

use ais::amf::clc::{ClcCommand, ClcEvent, ClcRunner, CommandKind, Monitoring, Outcome};
use anyhow::{Context, bail};
use crossbeam_channel::Receiver;
use hdrhistogram::Histogram;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;

use crate::measure::Percentiles;

/// Arguments of `bench amf-node`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Rounds (one component instantiated, killed, instantiated, cleaned up per round).
    #[arg(long, default_value_t = 200)]
    pub rounds: u32,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The figures, microseconds.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Instantiate request to the process running.
    pub start: Percentiles,
    /// SIGKILL to the `Exited` event.
    pub exit_detection: Percentiles,
    /// Cleanup request to its `Done` (group empty).
    pub cleanup: Percentiles,
}

const COMP: &str = "safComp=bench,safSu=u,safSg=g,safApp=bench";
const WAIT: Duration = Duration::from_secs(10);

fn event(rx: &Receiver<ClcEvent>, what: &str) -> anyhow::Result<ClcEvent> {
    rx.recv_timeout(WAIT)
        .with_context(|| format!("no {what} within {WAIT:?}"))
}

fn instantiate(r: &ClcRunner, rx: &Receiver<ClcEvent>) -> anyhow::Result<(u32, Duration)> {
    let cmd = ClcCommand::new(COMP, CommandKind::Instantiate, "exec sleep 600", WAIT);
    let t = Instant::now();
    r.instantiate(cmd, Duration::ZERO, Monitoring::Process);
    match event(rx, "instantiate Done")? {
        ClcEvent::Done {
            outcome: Outcome::Succeeded { pid },
            ..
        } => Ok((pid, t.elapsed())),
        other => bail!("instantiate: {other:?}"),
    }
}

/// Waits for the component's `Gone` (and the cleanup's `Done` when `cleanup`).
fn until_gone(rx: &Receiver<ClcEvent>, cleanup: bool) -> anyhow::Result<Option<Instant>> {
    let (mut gone, mut done) = (false, !cleanup);
    let mut done_at = None;
    while !(gone && done) {
        match event(rx, "Gone")? {
            ClcEvent::Gone { .. } => gone = true,
            ClcEvent::Done { outcome, .. } => {
                if !matches!(outcome, Outcome::Succeeded { .. }) {
                    bail!("cleanup: {outcome:?}");
                }
                done = true;
                done_at = Some(Instant::now());
            }
            ClcEvent::Exited { .. } => {}
        }
    }
    Ok(done_at)
}

/// Runs the rounds and prints the figures.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let r = ClcRunner::new(tx)?;
    let mut start = Histogram::<u64>::new(3)?;
    let mut exit = Histogram::<u64>::new(3)?;
    let mut clean = Histogram::<u64>::new(3)?;
    for _ in 0..args.rounds {
        let (pid, took) = instantiate(&r, &rx)?;
        start.record(took.as_micros() as u64)?;
        let t = Instant::now();
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL)?;
        match event(&rx, "Exited")? {
            ClcEvent::Exited { pid: p, .. } if p == pid => {
                exit.record(t.elapsed().as_micros() as u64)?;
            }
            other => bail!("after kill: {other:?}"),
        }
        until_gone(&rx, false)?;

        let (_, took) = instantiate(&r, &rx)?;
        start.record(took.as_micros() as u64)?;
        let t = Instant::now();
        r.cleanup(COMP, None);
        let done = until_gone(&rx, true)?.context("cleanup Done")?;
        clean.record((done - t).as_micros() as u64)?;
    }
    let report = Report {
        start: Percentiles::of(&start),
        exit_detection: Percentiles::of(&exit),
        cleanup: Percentiles::of(&clean),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("amf-node: {} rounds, microseconds", args.rounds);
        for (name, p) in [
            ("start", report.start),
            ("exit detection", report.exit_detection),
            ("cleanup", report.cleanup),
        ] {
            println!(
                "  {name:<15} p50 {:>7}  p99 {:>7}  max {:>7}  (n={})",
                p.p50, p.p99, p.max, p.count
            );
        }
    }
    Ok(())
}
