//! `bench cpg-load`: this stack's CPG load generator, one process per sender (or receiver)
//! connected to one executive through `ais_client`. It implements the contract of
//! [`crate::load`] (command line, `ready` / `start NS` / report protocol, message format,
//! latency files) exactly as the C generator for corosync does, so one analysis serves both.
//!
//! How it runs:
//!
//! 1. Connects to `--socket`, joins `--group`, dispatches until a configuration change shows
//!    `--members` members, prints `ready`. Standard input is read by a thread, so callbacks
//!    keep flowing (and configuration changes get their true times) while it waits for
//!    `start NS`.
//! 2. Waits until NS, then sends until NS + W + S (CLOCK_REALTIME). Unpaced (`--rate` absent
//!    or 0): batches of up to `--batch` messages per `CpgMcastBatch` call (fewer when they
//!    would not fit one IPC packet), the rest of a partly taken batch sent again at once, a
//!    refused call (`TRY_AGAIN`) retried after waiting up to [`RETRY_WAIT`] for a callback.
//!    Paced: one message (`CpgMcast`) whenever the next is due, message `k` at
//!    `NS + k / rate`; when several are due because the calls fell behind the schedule (each
//!    call waits for the executive's answer), all of them, up to `--batch`, in one call, so
//!    the offered rate holds. Between calls every queued callback is dispatched (zero
//!    timeout).
//!    `sent_ns` is stamped just before the call that carries the message (a message sent
//!    again after `TRY_AGAIN` gets a new stamp).
//! 3. Every delivery is timed (CLOCK_REALTIME) when it is dispatched: counted when that time
//!    is inside the window (whatever its content); latencies taken from the header when it
//!    parses (magic, at least [`HEADER_LEN`] bytes) and `sent_ns` is inside the window.
//! 4. After the window it keeps dispatching until its own messages are all back and nothing
//!    was delivered for [`QUIET`] (receive-only generators: only the latter, so they still
//!    see the other senders' last messages), for at most [`DRAIN`]. Configuration changes in
//!    which only processes left (reason leave or procdown: other generators finishing) are
//!    not listed once the window is over; node failures always are.
//! 5. Writes `self-<node>-<pid>.lat` and `all-<node>-<pid>.lat` in `--out` (one write each)
//!    and prints the [`LoadReport`] JSON line.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ais_client::cpg::{Cpg, CpgEvent};
use ais_client::{CpgAddress, Guarantee, MAX_PAYLOAD, Reason};
use anyhow::{Context, bail};

use crate::load::{DRAIN, HEADER_LEN, LoadReport, MAGIC, SAMPLE};

/// Longest wait for a callback before a submit refused with `TRY_AGAIN` is tried again.
pub const RETRY_WAIT: Duration = Duration::from_millis(1);
/// The drain ends early once nothing was delivered for this long (and own messages are back).
pub const QUIET: Duration = Duration::from_millis(200);
/// Longest wait for the connection and for `--members` members.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest single wait in `dispatch` while something else (stdin, the clock) is awaited.
const POLL: Duration = Duration::from_millis(5);

/// Command line of `bench cpg-load`: the contract's options ([`crate::load`]) plus
/// `--socket`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The executive's IPC socket.
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
    /// CPG group to join.
    #[arg(long, default_value = "bench")]
    pub group: String,
    /// Wait until the group has this many members before saying "ready".
    #[arg(long, default_value_t = 1)]
    pub members: usize,
    /// Send, as sender I (0-based); absent: receive only.
    #[arg(long, value_name = "I")]
    pub sender: Option<u32>,
    /// Message size in bytes, at least the 24-byte header.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Offer this many messages/s; absent or 0: as fast as flow control allows.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Messages per submit call when unpaced (fewer when they would not fit one IPC packet).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub batch: u32,
    /// Deliveries are counted from start + W milliseconds.
    #[arg(long = "warmup-ms", value_name = "W", default_value_t = 0)]
    pub warmup_ms: u64,
    /// ... until start + W + S milliseconds; sending stops then.
    #[arg(long = "seconds-ms", value_name = "S")]
    pub seconds_ms: u64,
    /// Where to write the latency files.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Also write the CLOCK_REALTIME time of every delivery inside the window
    /// (`times-<node>-<pid>.ns`, one `u64` each): the time-resolved delivery rate.
    #[arg(long)]
    pub times: bool,
}

/// CLOCK_REALTIME in nanoseconds.
fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A parsed message header.
struct Header {
    sender: u32,
    seq: u64,
    sent_ns: u64,
}

fn parse_header(data: &[u8]) -> Option<Header> {
    if data.len() < HEADER_LEN {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes(data[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(data[i..i + 8].try_into().expect("8 bytes"));
    if u32_at(0) != MAGIC {
        return None;
    }
    Some(Header {
        sender: u32_at(4),
        seq: u64_at(8),
        sent_ns: u64_at(16),
    })
}

fn write_header(buf: &mut [u8], sender: u32, seq: u64, sent_ns: u64) {
    buf[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    buf[4..8].copy_from_slice(&sender.to_le_bytes());
    buf[8..16].copy_from_slice(&seq.to_le_bytes());
    buf[16..24].copy_from_slice(&sent_ns.to_le_bytes());
}

/// What the generator counts; see the module documentation.
struct Tally {
    me: CpgAddress,
    /// Window start and end, CLOCK_REALTIME ns.
    win_start: u64,
    win_end: u64,
    /// Whether the window is over (drain phase).
    draining: bool,
    members: usize,
    sent: u64,
    sent_total: u64,
    delivered: u64,
    delivered_bytes: u64,
    own_back_window: u64,
    own_back_total: u64,
    try_again: u64,
    /// CLOCK_REALTIME of the last delivery: the time each delivery is stamped with anyway
    /// (a second clock read per delivery was 1.3% of all CPU at the MTU 9000 maximum).
    last_delivery_ns: u64,
    confchg: Vec<(u64, u32)>,
    self_lat: Vec<u8>,
    all_lat: Vec<u8>,
    /// Delivery times inside the window (with `--times`).
    times: Option<Vec<u8>>,
}

impl Tally {
    fn in_window(&self, ns: u64) -> bool {
        (self.win_start..self.win_end).contains(&ns)
    }

    fn on_event(&mut self, ev: CpgEvent) {
        let now = realtime_ns();
        match ev {
            CpgEvent::Deliver { sender, data, .. } => {
                self.last_delivery_ns = now;
                if self.in_window(now) {
                    self.delivered += 1;
                    self.delivered_bytes += data.len() as u64;
                    if let Some(times) = self.times.as_mut() {
                        times.extend_from_slice(&now.to_le_bytes());
                    }
                }
                let own = sender == self.me;
                if own {
                    self.own_back_total += 1;
                }
                let Some(h) = parse_header(&data) else {
                    return;
                };
                if !self.in_window(h.sent_ns) {
                    return;
                }
                let us = u32::try_from(now.saturating_sub(h.sent_ns) / 1000).unwrap_or(u32::MAX);
                if own {
                    self.own_back_window += 1;
                    self.self_lat.extend_from_slice(&us.to_le_bytes());
                }
                if h.seq % SAMPLE == 0 {
                    self.all_lat.extend_from_slice(&h.sender.to_le_bytes());
                    self.all_lat
                        .extend_from_slice(&(h.seq as u32).to_le_bytes());
                    self.all_lat.extend_from_slice(&us.to_le_bytes());
                }
            }
            CpgEvent::ConfChg {
                members,
                left,
                joined,
                ..
            } => {
                self.members = members.len();
                let generators_finishing = joined.is_empty()
                    && !left.is_empty()
                    && left
                        .iter()
                        .all(|(_, r)| matches!(r, Reason::Leave | Reason::ProcDown));
                if !(self.draining && generators_finishing) {
                    self.confchg.push((now, members.len() as u32));
                }
            }
        }
    }

    /// Dispatches every queued callback without waiting.
    fn pump(&mut self, cpg: &mut Cpg) -> anyhow::Result<()> {
        while let Some(ev) = cpg.dispatch(Some(Duration::ZERO)).context("dispatch")? {
            self.on_event(ev);
        }
        Ok(())
    }

    /// Waits up to `timeout` for one callback, then dispatches every queued one.
    fn wait(&mut self, cpg: &mut Cpg, timeout: Duration) -> anyhow::Result<()> {
        if let Some(ev) = cpg.dispatch(Some(timeout)).context("dispatch")? {
            self.on_event(ev);
        }
        self.pump(cpg)
    }
}

/// Runs the generator (see the module documentation).
///
/// # Errors
/// Bad arguments, an executive that cannot be reached or fails a call, standard input closed
/// before `start`, latency files that cannot be written.
pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.size < HEADER_LEN || args.size > MAX_PAYLOAD {
        bail!(
            "--size {}: use {HEADER_LEN}..={MAX_PAYLOAD} bytes",
            args.size
        );
    }
    let rate = match args.rate {
        Some(r) if r.is_nan() || r < 0.0 => bail!("--rate must be a positive number or 0"),
        Some(r) if r > 0.0 => Some(r),
        _ => None,
    };
    let group = args.group.as_bytes();
    let guarantee = Guarantee::Agreed;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    // 1. Connect, join, wait for the members.
    let setup_deadline = Instant::now() + SETUP_TIMEOUT;
    let mut cpg = loop {
        match Cpg::connect(&args.socket) {
            Ok(c) => break c,
            Err(e) if Instant::now() >= setup_deadline => {
                return Err(e).with_context(|| format!("connecting to {}", args.socket.display()));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let me = CpgAddress {
        node: cpg.local_get().context("local node id")?,
        pid: std::process::id(),
    };
    loop {
        match cpg.join(group) {
            Ok(()) => break,
            Err(e) if e.is_try_again() && Instant::now() < setup_deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e).with_context(|| format!("joining {:?}", args.group)),
        }
    }
    let mut t = Tally {
        me,
        win_start: u64::MAX,
        win_end: u64::MAX,
        draining: false,
        members: 0,
        sent: 0,
        sent_total: 0,
        delivered: 0,
        delivered_bytes: 0,
        own_back_window: 0,
        own_back_total: 0,
        try_again: 0,
        last_delivery_ns: realtime_ns(),
        confchg: Vec::new(),
        self_lat: Vec::new(),
        all_lat: Vec::new(),
        times: args.times.then(Vec::new),
    };
    while t.members < args.members {
        if Instant::now() >= setup_deadline {
            bail!(
                "group {:?} has {} of {} members after {SETUP_TIMEOUT:?}",
                args.group,
                t.members,
                args.members
            );
        }
        t.wait(&mut cpg, POLL)?;
    }

    // 2. ready / start NS, callbacks flowing meanwhile.
    let (tx, rx) = mpsc::channel::<std::io::Result<String>>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let end = line.is_err();
            if tx.send(line).is_err() || end {
                return;
            }
        }
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready").context("writing ready")?;
        out.flush().context("writing ready")?;
    }
    let start_ns = loop {
        match rx.try_recv() {
            Ok(line) => {
                let line = line.context("reading standard input")?;
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                match line.strip_prefix("start ").map(|n| n.trim().parse::<u64>()) {
                    Some(Ok(ns)) => break ns,
                    _ => bail!("expected \"start NS\" on standard input, got {line:?}"),
                }
            }
            Err(mpsc::TryRecvError::Empty) => t.wait(&mut cpg, POLL)?,
            Err(mpsc::TryRecvError::Disconnected) => {
                bail!("standard input closed before \"start NS\"")
            }
        }
    };
    let ms = |v: u64| v.saturating_mul(1_000_000);
    t.win_start = start_ns.saturating_add(ms(args.warmup_ms));
    t.win_end = t.win_start.saturating_add(ms(args.seconds_ms));
    while let Some(left) = start_ns.checked_sub(realtime_ns()).filter(|&l| l > 0) {
        t.wait(&mut cpg, Duration::from_nanos(left).min(POLL))?;
    }

    // 3. Send (or only receive) until the window ends.
    let per_packet = MAX_PAYLOAD / (args.size + 4);
    let batch = (args.batch as usize).min(per_packet).max(1);
    let mut bufs: Vec<Vec<u8>> = (0..batch)
        .map(|_| {
            let mut b = vec![0u8; args.size];
            for (i, x) in b.iter_mut().enumerate().skip(HEADER_LEN) {
                *x = i as u8;
            }
            b
        })
        .collect();
    let mut seq = 0u64;
    let sender = args.sender;
    loop {
        let now = realtime_ns();
        if now >= t.win_end {
            break;
        }
        let Some(idx) = sender else {
            t.wait(&mut cpg, Duration::from_nanos(t.win_end - now).min(POLL))?;
            continue;
        };
        let n = match rate {
            Some(r) => {
                // Message k is due at start + k / rate: how many are due now.
                let due = (now.saturating_sub(start_ns) as f64 * r / 1e9) as u64 + 1;
                if due <= seq {
                    let next = start_ns.saturating_add((seq as f64 * 1e9 / r) as u64);
                    let left = next.saturating_sub(now).max(1);
                    t.wait(&mut cpg, Duration::from_nanos(left).min(POLL))?;
                    continue;
                }
                usize::try_from(due - seq).unwrap_or(batch).min(batch)
            }
            None => batch,
        };
        let stamp = realtime_ns();
        for (k, b) in bufs[..n].iter_mut().enumerate() {
            write_header(b, idx, seq + k as u64, stamp);
        }
        let result = if n == 1 {
            cpg.mcast(group, guarantee, &bufs[0]).map(|()| 1)
        } else {
            let refs: Vec<&[u8]> = bufs[..n].iter().map(Vec::as_slice).collect();
            cpg.mcast_batch(group, guarantee, &refs)
        };
        match result {
            Ok(taken) => {
                seq += taken as u64;
                t.sent_total += taken as u64;
                if t.in_window(stamp) {
                    t.sent += taken as u64;
                }
                t.pump(&mut cpg)?;
            }
            Err(e) if e.is_try_again() => {
                t.try_again += 1;
                t.wait(&mut cpg, RETRY_WAIT)?;
            }
            Err(e) => return Err(e).context("sending"),
        }
    }

    // 4. Drain.
    t.draining = true;
    let drain_end = Instant::now() + DRAIN;
    loop {
        let now = Instant::now();
        let own_back = t.own_back_total >= t.sent_total;
        let quiet = realtime_ns().saturating_sub(t.last_delivery_ns) >= QUIET.as_nanos() as u64;
        if now >= drain_end || (own_back && quiet) {
            break;
        }
        t.wait(&mut cpg, POLL)?;
    }

    // 5. Files and report.
    let self_file = args.out.join(format!("self-{}-{}.lat", me.node, me.pid));
    let all_file = args.out.join(format!("all-{}-{}.lat", me.node, me.pid));
    std::fs::write(&self_file, &t.self_lat)
        .with_context(|| format!("writing {}", self_file.display()))?;
    std::fs::write(&all_file, &t.all_lat)
        .with_context(|| format!("writing {}", all_file.display()))?;
    let times_file = match &t.times {
        Some(times) => {
            let f = args.out.join(format!("times-{}-{}.ns", me.node, me.pid));
            std::fs::write(&f, times).with_context(|| format!("writing {}", f.display()))?;
            Some(f)
        }
        None => None,
    };
    let report = LoadReport {
        node: me.node,
        pid: me.pid,
        sender,
        sent: t.sent,
        delivered: t.delivered,
        delivered_bytes: t.delivered_bytes,
        try_again: t.try_again,
        missing_own: t.sent.saturating_sub(t.own_back_window),
        confchg: t.confchg,
        self_lat_file: self_file,
        all_lat_file: all_file,
        times_file,
    };
    let line = serde_json::to_string(&report).context("encoding the report")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("writing the report")?;
    out.flush().context("writing the report")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_foreign_messages_do_not_parse() {
        let mut b = vec![0u8; 40];
        write_header(&mut b, 3, 1 << 40, 123_456_789);
        let h = parse_header(&b).unwrap();
        assert_eq!((h.sender, h.seq, h.sent_ns), (3, 1 << 40, 123_456_789));
        assert!(parse_header(&b[..HEADER_LEN - 1]).is_none());
        b[0] ^= 1;
        assert!(parse_header(&b).is_none());
    }
}
