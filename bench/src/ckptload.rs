//! `bench ckpt-load`: the checkpoint write generator `bench ckpt` starts, one process per
//! writer, connected to one executive through `ais_client::ckpt`.
//!
//! The client library is synchronous: a connection has one request outstanding at a time. So
//! a writer keeps `--connections` writes in flight by running that many threads, each with
//! its own connection to the same executive, its own open of the checkpoint and its own
//! section, writing it again and again (`saCkptCheckpointWrite` of `--size` bytes at offset
//! 0). With `--connections 1` the writer is one synchronous caller: one write in flight, the
//! next sent when the last is acknowledged.
//!
//! It speaks the stdin/stdout protocol of [`crate::load`] (`ready`, `start NS`, one JSON
//! report line):
//!
//! 1. Every thread connects, opens checkpoint `--name` for writing (the harness created it)
//!    and creates its section `w<writer>c<connection>` holding `--size` bytes; then the
//!    process prints `ready`.
//! 2. On `start NS` (CLOCK_REALTIME ns) every thread writes from NS until NS + W + S. A write
//!    refused with `SA_AIS_ERR_TRY_AGAIN` (send window full, membership change) is sent again
//!    after [`RETRY_WAIT`]; its latency counts from the first attempt, so it includes the
//!    refusals (what the application waits).
//! 3. A write is counted when it is acknowledged inside the window `[NS + W, NS + W + S)`;
//!    its latency (call to acknowledgement, monotonic clock) is recorded when it was called
//!    inside the window.
//! 4. After the window each thread closes its open; the process writes its latencies to
//!    `ckpt-<node>-<pid>.lat` in `--out` (one `u32` of microseconds per write, little-endian)
//!    and prints its [`WriterReport`].

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};

use ais_client::ckpt::{self, Ckpt, WriteElement};
use anyhow::{Context, bail};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::measure::realtime_ns;

/// Pause before a write refused with `TRY_AGAIN` is sent again.
pub const RETRY_WAIT: Duration = Duration::from_micros(200);
/// Longest wait for the connection and the open.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Command line of `bench ckpt-load`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The executive's IPC socket.
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
    /// Checkpoint to open for writing (it must exist, with room for this writer's sections).
    #[arg(long)]
    pub name: String,
    /// This writer's index: its sections are `w<I>c<connection>`.
    #[arg(long, value_name = "I")]
    pub writer: u32,
    /// Connections (threads), each with one write in flight.
    #[arg(long, default_value_t = 1)]
    pub connections: u32,
    /// Bytes per write.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Writes are counted from start + W milliseconds.
    #[arg(long = "warmup-ms", value_name = "W", default_value_t = 0)]
    pub warmup_ms: u64,
    /// ... until start + W + S milliseconds; writing stops then.
    #[arg(long = "seconds-ms", value_name = "S")]
    pub seconds_ms: u64,
    /// Where to write the latency file.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// The one JSON line a writer prints at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriterReport {
    /// Node id of the executive the writer is connected to.
    pub node: u32,
    /// Process id of the writer.
    pub pid: u32,
    /// Writer index.
    pub writer: u32,
    /// Connections it wrote through.
    pub connections: u32,
    /// Writes acknowledged inside the window.
    pub writes: u64,
    /// Their data bytes.
    pub bytes: u64,
    /// Writes refused with TRY_AGAIN (and sent again), whole run.
    pub try_again: u64,
    /// The latency file: one `u32` (µs) per write called inside the window.
    pub lat_file: PathBuf,
}

/// What one connection's thread counted.
#[derive(Default)]
struct Counts {
    writes: u64,
    bytes: u64,
    try_again: u64,
    lat_us: Vec<u32>,
}

/// A connection with the checkpoint open and its section created.
struct Writer {
    ckpt: Ckpt,
    handle: ckpt::CheckpointHandle,
    section: Bytes,
}

fn retry<T>(
    what: &str,
    deadline: Instant,
    mut f: impl FnMut() -> Result<T, ais_client::Error>,
) -> anyhow::Result<T> {
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if e.is_try_again() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e).context(what.to_owned()),
        }
    }
}

fn setup(args: &Args, connection: u32) -> anyhow::Result<Writer> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let mut ckpt = loop {
        match Ckpt::connect(&args.socket) {
            Ok(c) => break c,
            Err(e) if Instant::now() >= deadline => {
                return Err(e).with_context(|| format!("connecting to {}", args.socket.display()));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let handle = retry("opening the checkpoint", deadline, || {
        ckpt.open(args.name.as_bytes(), ckpt::OPEN_WRITE, None)
    })?;
    let id = format!("w{}c{connection}", args.writer);
    let data = vec![0x5a; args.size];
    let section = retry("creating a section", deadline, || {
        ckpt.section_create(handle, Some(id.as_bytes()), ckpt::TIME_END, &data)
    })?;
    Ok(Writer {
        ckpt,
        handle,
        section,
    })
}

/// Writes from `start_ns` until the window ends.
fn write_loop(
    mut w: Writer,
    size: usize,
    connection: u32,
    start_ns: u64,
    win: (u64, u64),
) -> anyhow::Result<Counts> {
    let mut c = Counts::default();
    let data: Bytes = (0..size)
        .map(|i| (i as u8).wrapping_add(connection as u8))
        .collect::<Vec<u8>>()
        .into();
    let element = [WriteElement {
        section: w.section.clone(),
        offset: 0,
        data,
    }];
    let now = realtime_ns();
    if start_ns > now {
        std::thread::sleep(Duration::from_nanos(start_ns - now));
    }
    loop {
        let called = realtime_ns();
        if called >= win.1 {
            break;
        }
        let t0 = Instant::now();
        loop {
            match w.ckpt.write(w.handle, &element) {
                Ok(()) => break,
                Err(e) if e.is_try_again() => {
                    c.try_again += 1;
                    std::thread::sleep(RETRY_WAIT);
                }
                Err(e) => return Err(e).context("writing"),
            }
        }
        let us = u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX);
        let done = realtime_ns();
        if (win.0..win.1).contains(&done) {
            c.writes += 1;
            c.bytes += size as u64;
        }
        if (win.0..win.1).contains(&called) {
            c.lat_us.push(us);
        }
    }
    let _ = w.ckpt.close(w.handle);
    Ok(c)
}

/// Runs the writer (see the module documentation).
///
/// # Errors
/// Bad arguments, an executive that cannot be reached or refuses the open, the section or a
/// write (other than `TRY_AGAIN`), standard input closed before `start`, the latency file.
pub fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.size >= 1 && args.size <= ckpt::REQUEST_BUDGET - 64,
        "--size {}: use 1..={} bytes (one request)",
        args.size,
        ckpt::REQUEST_BUDGET - 64
    );
    anyhow::ensure!(args.connections >= 1, "--connections must be at least 1");
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    // 1. Every connection set up, in its own thread; each then waits for the start time.
    let n = args.connections as usize;
    let ready = Arc::new(Barrier::new(n + 1));
    let (start_tx, start_rx): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel::<u64>()).unzip();
    let mut threads = Vec::with_capacity(n);
    let (setup_tx, setup_rx) = mpsc::channel::<anyhow::Result<()>>();
    let win_ms = (args.warmup_ms, args.seconds_ms);
    for (k, rx) in start_rx.into_iter().enumerate() {
        let args = args.clone();
        let ready = Arc::clone(&ready);
        let setup_tx = setup_tx.clone();
        threads.push(std::thread::spawn(move || -> anyhow::Result<Counts> {
            let connection = k as u32;
            let w = setup(&args, connection);
            let ok = w.as_ref().map(|_| ()).map_err(|e| anyhow::anyhow!("{e:#}"));
            let _ = setup_tx.send(ok);
            let w = w?;
            ready.wait();
            let Ok(start_ns) = rx.recv() else {
                return Ok(Counts::default());
            };
            let ms = |v: u64| v.saturating_mul(1_000_000);
            let win_start = start_ns.saturating_add(ms(win_ms.0));
            let win = (win_start, win_start.saturating_add(ms(win_ms.1)));
            write_loop(w, args.size, connection, start_ns, win)
        }));
    }
    drop(setup_tx);
    for _ in 0..n {
        setup_rx
            .recv()
            .context("a connection thread ended during setup")??;
    }
    ready.wait();
    let node = {
        let mut c = Ckpt::connect(&args.socket).context("connecting for the node id")?;
        c.connection()
            .status()
            .context("asking the executive's node id")?
            .node
    };

    // 2. ready / start NS.
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready").context("writing ready")?;
        out.flush().context("writing ready")?;
    }
    let start_ns = loop {
        let mut line = String::new();
        let read = std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading standard input")?;
        if read == 0 {
            bail!("standard input closed before \"start NS\"");
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.strip_prefix("start ").map(|n| n.trim().parse::<u64>()) {
            Some(Ok(ns)) => break ns,
            _ => bail!("expected \"start NS\" on standard input, got {line:?}"),
        }
    };
    for tx in &start_tx {
        let _ = tx.send(start_ns);
    }

    // 3. Collect.
    let mut total = Counts::default();
    for t in threads {
        let c = t
            .join()
            .map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
        total.writes += c.writes;
        total.bytes += c.bytes;
        total.try_again += c.try_again;
        total.lat_us.extend(c.lat_us);
    }
    let pid = std::process::id();
    let lat_file = args.out.join(format!("ckpt-{node}-{pid}.lat"));
    let bytes: Vec<u8> = total.lat_us.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&lat_file, bytes).with_context(|| format!("writing {}", lat_file.display()))?;
    let report = WriterReport {
        node,
        pid,
        writer: args.writer,
        connections: args.connections,
        writes: total.writes,
        bytes: total.bytes,
        try_again: total.try_again,
        lat_file,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
