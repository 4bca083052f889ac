//! The event log of a real run: `aisexec --event-log FILE` records what its node submitted,
//! delivered, installed and stored in the JSON Lines format the simulator writes too
//! (`docs/event-log.md`, `totem_evlog::log`), so one checker (`totem_evlog::checker`)
//! verifies simulated and real runs alike.
//!
//! One file per node. [`EventLogWriter`] appends to it; [`check_files`] reads the files of all
//! nodes of a run and checks them together.
//!
//! # What is written
//! - `send` for every submission Totem accepted ([`EventLogWriter::send`]);
//! - `deliver`, `config` and `stored` for the core's deliveries, configuration changes and
//!   `Observation::Stored` events ([`EventLogWriter::event`]; `stored` needs
//!   `srp::Config::observe`);
//! - `crash` then `restart` when the file already has content at [`EventLogWriter::open`]:
//!   this process is a restart of the node, and the previous incarnation's state is gone
//!   whether it crashed or stopped cleanly;
//! - `service` lines for what services report ([`EventLogWriter::service`]): the executive
//!   writes a `quorum` line at start and at every change of this node's quorum
//!   (`crate::runtime`; the fields are in `docs/event-log.md`). The checker skips them.
//!
//! No `meta` line is written (the checker's defaults apply), and no `token` events.
//!
//! # Time
//! `t` is nanoseconds since the UNIX epoch (`SystemTime::now()`): one clock shared by every
//! process of the host, so per-node files can be concatenated and `t` keeps growing across a
//! restart. A writer never writes a `t` smaller than its previous one (nor than the last `t` in
//! the file it appends to): if the clock steps back, `t` is held at the previous value.
//!
//! `t` is taken when the event is recorded, not when the core produced it, so record events
//! as close as possible to where they happen (on the Totem driver thread, through a
//! `totem_dpdk::driver::EventSink`). The safe-delivery check (property 7) compares `t` of
//! different nodes: a node that records its `stored` events late (a slow consumer thread) can
//! make another node's safe delivery look premature.
//!
//! # Crash safety
//! Lines are buffered in memory and written by [`EventLogWriter::flush`] with one `write_all`
//! of whole lines, so a process killed between flushes leaves only complete lines (a write
//! interrupted inside the system call can still tear the last line; [`EventLogWriter::open`]
//! then ends it with a newline so later lines stay readable, and the checker reports the torn
//! line as a parse error).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use totem_dpdk::srp::{self, Event, Observation};
use totem_dpdk::{DeliveryKind, MsgId, NodeId, RingId};
use totem_evlog::checker::Report;
use totem_evlog::log::{
    ConfigEvent, ConfigKind, DeliverEvent, EventLog, LogError, LogEvent, SendEvent, ServiceEvent,
    StoredEvent, read_log,
};

/// The buffer size above which lines are written without waiting for [`EventLogWriter::flush`].
pub const FLUSH_THRESHOLD: usize = 64 * 1024;

/// How much of the end of an existing file [`EventLogWriter::open`] reads to find its last `t`.
const TAIL_BYTES: u64 = 64 * 1024;

/// The clock: nanoseconds since the UNIX epoch.
type Clock = Box<dyn FnMut() -> u64 + Send>;

/// Nanoseconds since the UNIX epoch now: the clock of `t`. Take it where an event happens
/// (the Totem thread) and pass it to [`EventLogWriter::event_at`] /
/// [`EventLogWriter::send_at`] when the event is written later on another thread.
pub fn unix_nanos() -> u64 {
    system_clock()
}

fn system_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Appends the JSON Lines event log of one aisexec process (one node).
///
/// See the [module documentation](self) for the format, the clock and crash safety. No `meta`
/// line is written: the checker uses its defaults. Dropping the writer flushes it (errors
/// ignored).
pub struct EventLogWriter {
    file: File,
    path: PathBuf,
    node: NodeId,
    buf: Vec<u8>,
    last_t: u64,
    lines: u64,
    repaired_torn_line: bool,
    restarted: bool,
    opened_at: u64,
    clock: Clock,
}

impl std::fmt::Debug for EventLogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLogWriter")
            .field("path", &self.path)
            .field("node", &self.node)
            .field("buffered", &self.buf.len())
            .field("last_t", &self.last_t)
            .field("lines", &self.lines)
            .finish_non_exhaustive()
    }
}

impl EventLogWriter {
    /// Opens (creates or appends to) `path` for node `node`.
    ///
    /// If the file already has content, this process is a restart of that node: a `crash` and
    /// then a `restart` event for `node` are appended (and flushed) at the current time. If the
    /// file's last byte is not `'\n'` (a write torn by a kill), a `'\n'` is appended first so
    /// the next line starts clean; [`EventLogWriter::repaired_torn_line`] then returns true and
    /// a warning is logged.
    ///
    /// # Errors
    /// Opening, reading or writing the file failed.
    pub fn open(path: &Path, node: NodeId) -> io::Result<EventLogWriter> {
        Self::open_with_clock(path, node, Box::new(system_clock))
    }

    /// [`EventLogWriter::open`] with another clock (tests).
    fn open_with_clock(path: &Path, node: NodeId, clock: Clock) -> io::Result<EventLogWriter> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let len = file.metadata()?.len();
        let mut writer = EventLogWriter {
            file,
            path: path.to_path_buf(),
            node,
            buf: Vec::new(),
            last_t: 0,
            lines: 0,
            repaired_torn_line: false,
            restarted: false,
            opened_at: 0,
            clock,
        };
        if len > 0 {
            let start = len.saturating_sub(TAIL_BYTES);
            writer.file.seek(SeekFrom::Start(start))?;
            let mut tail = Vec::new();
            (&mut writer.file)
                .take(len - start)
                .read_to_end(&mut tail)?;
            writer.last_t = last_time(&tail, start > 0);
            if tail.last() != Some(&b'\n') {
                tracing::warn!(
                    path = %path.display(),
                    "event log ends in a torn line (killed mid-write?); starting a new line"
                );
                writer.buf.push(b'\n');
                writer.repaired_torn_line = true;
            }
            writer.restarted = true;
            let t = writer.now();
            writer.push(&LogEvent::Crash { t, node })?;
            let t = writer.now();
            writer.push(&LogEvent::Restart { t, node })?;
            writer.flush()?;
        }
        writer.opened_at = writer.now();
        Ok(writer)
    }

    /// Whether [`EventLogWriter::open`] found the file ending in a torn line and ended it.
    pub fn repaired_torn_line(&self) -> bool {
        self.repaired_torn_line
    }

    /// Whether the file had content at open, so `crash` and `restart` were appended.
    pub fn restarted(&self) -> bool {
        self.restarted
    }

    /// The node this log is for.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// A `send` event for a message this node submitted and Totem accepted with id `msg`,
    /// at priority `prio` (0 to 3).
    ///
    /// Record it before any event the core produced after accepting the submission (in
    /// particular before the message's own delivery).
    ///
    /// # Errors
    /// Writing to the file failed (only when the buffer is flushed).
    pub fn send(
        &mut self,
        msg: MsgId,
        kind: DeliveryKind,
        prio: u8,
        payload: &[u8],
    ) -> io::Result<()> {
        let t = (self.clock)();
        self.send_at(t, msg, kind, prio, payload)
    }

    /// [`EventLogWriter::send`] with the time it happened (nanoseconds since the UNIX epoch,
    /// from [`unix_nanos`]); kept monotone like every `t`.
    ///
    /// # Errors
    /// Writing to the file failed (only when the buffer is flushed).
    pub fn send_at(
        &mut self,
        t: u64,
        msg: MsgId,
        kind: DeliveryKind,
        prio: u8,
        payload: &[u8],
    ) -> io::Result<()> {
        let t = self.stamp(t);
        let ev = SendEvent::new(t, self.node, msg, kind, prio, payload);
        self.push(&LogEvent::Send(ev))
    }

    /// Records a core event: `Deliver` as `deliver`, `ConfigChange` as `config`,
    /// `Observe(Stored)` as `stored`. Other events (flow control, ring sequence numbers, token
    /// observations) are ignored.
    ///
    /// # Errors
    /// Writing to the file failed (only when the buffer is flushed).
    pub fn event(&mut self, event: &Event) -> io::Result<()> {
        let t = (self.clock)();
        self.event_at(t, event)
    }

    /// [`EventLogWriter::event`] with the time it happened (from [`unix_nanos`], taken on the
    /// Totem thread): a `stored` written late would otherwise make another node's safe
    /// delivery look premature to the checker.
    ///
    /// # Errors
    /// Writing to the file failed (only when the buffer is flushed).
    pub fn event_at(&mut self, t: u64, event: &Event) -> io::Result<()> {
        let node = self.node;
        let ev = match event {
            Event::Deliver(d) => {
                let t = self.stamp(t);
                LogEvent::Deliver(DeliverEvent::new(
                    t, node, d.id, d.ring, d.seq, d.kind, &d.payload,
                ))
            }
            Event::ConfigChange(c) => LogEvent::Config(ConfigEvent {
                t: self.stamp(t),
                node,
                kind: match c.kind {
                    srp::ConfigKind::Regular => ConfigKind::Regular,
                    srp::ConfigKind::Transitional => ConfigKind::Transitional,
                },
                ring: c.ring,
                members: c.members.clone(),
                left: c.left.clone(),
                joined: c.joined.clone(),
                failed: c.failed.clone(),
            }),
            Event::Observe(Observation::Stored { ring, seq }) => LogEvent::Stored(StoredEvent {
                t: self.stamp(t),
                node,
                ring: *ring,
                seq: *seq,
            }),
            Event::Observe(Observation::Token(_))
            | Event::FlowControl(_)
            | Event::RingSeq(_)
            | Event::Gather
            | Event::Heard(_)
            | Event::Excluded(_) => {
                return Ok(());
            }
        };
        self.push(&ev)
    }

    /// A `service` line at `t` (kept monotone like every `t`): `service` reports `what` (both
    /// non-empty), about `ring` if any, with the service's own fields in `data`.
    ///
    /// Give it the time of the input that caused the report (a Totem event's, from the Totem
    /// thread), not the clock now: events the Totem thread recorded earlier may still wait in
    /// the executive's queue, and a later `t` here would raise theirs (`t` never decreases),
    /// making a `stored` look late to the checker. Without such a time,
    /// [`EventLogWriter::last_t`] or [`EventLogWriter::opened_at`] raise nothing.
    ///
    /// # Errors
    /// Writing to the file failed (only when the buffer is flushed).
    pub fn service_at(
        &mut self,
        t: u64,
        service: &str,
        what: &str,
        ring: Option<RingId>,
        data: serde_json::Map<String, serde_json::Value>,
    ) -> io::Result<()> {
        let t = self.stamp(t);
        let ev = ServiceEvent {
            t,
            node: self.node,
            service: service.to_owned(),
            what: what.to_owned(),
            ring,
            data,
        };
        self.push(&LogEvent::Service(ev))
    }

    /// Writes the buffered lines to the file, with one `write_all` of whole lines. Call it
    /// after every batch of work; it also happens when the buffer exceeds
    /// [`FLUSH_THRESHOLD`].
    ///
    /// # Errors
    /// Writing failed. The buffered lines are dropped either way (retrying could duplicate
    /// lines that were partly written).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(&self.buf);
        self.buf.clear();
        result
    }

    /// The largest `t` written so far (0 for a new, empty file).
    pub fn last_t(&self) -> u64 {
        self.last_t
    }

    /// The time [`EventLogWriter::open`] returned at (the `restart` line's `t` if it wrote
    /// one). Every event of a Totem driver started after the open comes later.
    pub fn opened_at(&self) -> u64 {
        self.opened_at
    }

    /// Lines recorded so far by this writer (`crash` and `restart` included), buffered or
    /// written.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// The current time, never below the previous one.
    fn now(&mut self) -> u64 {
        let t = (self.clock)();
        self.stamp(t)
    }

    /// `t`, raised to the previous `t` if it is behind (per-node time never decreases).
    fn stamp(&mut self, t: u64) -> u64 {
        let t = t.max(self.last_t);
        self.last_t = t;
        t
    }

    fn push(&mut self, event: &LogEvent) -> io::Result<()> {
        EventLog::new(&mut self.buf).write(event)?;
        self.lines += 1;
        if self.buf.len() > FLUSH_THRESHOLD {
            self.flush()?;
        }
        Ok(())
    }
}

impl Drop for EventLogWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// The largest `t` among the complete lines of `tail` (the end of a log file; if `partial`,
/// its first line may be cut and is skipped). Unparseable lines are ignored.
fn last_time(tail: &[u8], partial: bool) -> u64 {
    let mut lines: Vec<&[u8]> = tail.split(|&b| b == b'\n').collect();
    // The piece after the last newline is empty or torn.
    lines.pop();
    if partial && !lines.is_empty() {
        lines.remove(0);
    }
    lines
        .iter()
        .rev()
        .filter_map(|line| read_log(*line).ok())
        .flatten()
        .filter_map(|ev| ev.t())
        .max()
        .unwrap_or(0)
}

/// Checks a real run: reads every file (each one node's log, as [`EventLogWriter`] writes
/// it), concatenates their events in file order (each file keeps its node's order, which is
/// what the checker uses) and runs the checker with its default parameters
/// ([`totem_evlog::checker::check_files`]).
///
/// The run is not treated as drained: liveness (properties 5 and 7's liveness part, 16) is not
/// checked, since a real run usually ends with messages in flight.
///
/// # Errors
/// A file cannot be opened or read, or has a line that is not a valid event (a torn final
/// line included): [`LogError::InFile`] names the file, its source the line in it.
pub fn check_files(paths: &[PathBuf]) -> Result<Report, LogError> {
    totem_evlog::checker::check_files(paths)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use bytes::Bytes;
    use totem_dpdk::RingId;
    use totem_dpdk::srp::{ConfigChange, Delivery};

    use super::*;

    fn temp_file(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("eventlog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("node.jsonl")
    }

    fn read(path: &Path) -> Vec<LogEvent> {
        read_log(std::io::BufReader::new(File::open(path).unwrap())).unwrap()
    }

    fn ring(seq: u64) -> RingId {
        RingId {
            rep: NodeId(1),
            seq,
        }
    }

    fn regular(seq: u64) -> Event {
        Event::ConfigChange(ConfigChange {
            kind: srp::ConfigKind::Regular,
            ring: ring(seq),
            members: vec![NodeId(1)],
            left: Vec::new(),
            joined: vec![NodeId(1)],
            failed: Vec::new(),
        })
    }

    fn deliver(no: u64, seq: u64, ring_seq: u64) -> Event {
        Event::Deliver(Delivery {
            id: MsgId {
                sender: NodeId(1),
                no,
            },
            ring: ring(ring_seq),
            seq: totem_dpdk::Seq(seq),
            kind: DeliveryKind::Agreed,
            payload: Bytes::from_static(b"abc"),
        })
    }

    /// One incarnation: a regular configuration, a send and its delivery.
    fn incarnation(w: &mut EventLogWriter, no: u64, ring_seq: u64) {
        w.event(&regular(ring_seq)).unwrap();
        let id = MsgId {
            sender: NodeId(1),
            no,
        };
        w.send(id, DeliveryKind::Agreed, 2, b"abc").unwrap();
        w.event(&deliver(no, 1, ring_seq)).unwrap();
        w.event(&Event::RingSeq(ring_seq)).unwrap();
        w.event(&Event::Observe(Observation::Stored {
            ring: ring(ring_seq),
            seq: totem_dpdk::Seq(1),
        }))
        .unwrap();
    }

    #[test]
    fn fresh_file_has_no_crash_or_restart() {
        let path = temp_file("fresh");
        let mut w = EventLogWriter::open(&path, NodeId(1)).unwrap();
        assert!(!w.restarted());
        incarnation(&mut w, 1, 4);
        assert_eq!(w.lines(), 4);
        drop(w);
        let names: Vec<_> = read(&path).iter().map(LogEvent::name).collect();
        assert_eq!(names, ["config", "send", "deliver", "stored"]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(r#"{"t":"#), "{text}");
        let report = check_files(&[path]).unwrap();
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.delivered, 1);
    }

    #[test]
    fn reopening_appends_crash_and_restart() {
        let path = temp_file("reopen");
        let mut w = EventLogWriter::open(&path, NodeId(1)).unwrap();
        incarnation(&mut w, 1, 4);
        w.flush().unwrap();
        drop(w);
        let mut w = EventLogWriter::open(&path, NodeId(1)).unwrap();
        assert!(w.restarted());
        assert!(!w.repaired_torn_line());
        assert_eq!(w.lines(), 2);
        incarnation(&mut w, 2, 8);
        drop(w);
        let events = read(&path);
        let names: Vec<_> = events.iter().map(LogEvent::name).collect();
        assert_eq!(
            names,
            [
                "config", "send", "deliver", "stored", "crash", "restart", "config", "send",
                "deliver", "stored"
            ]
        );
        assert!(events.iter().all(|e| e.node() == Some(NodeId(1))));
        let report = check_files(&[path]).unwrap();
        assert!(report.is_ok(), "{report}");
        assert_eq!((report.crashes, report.restarts), (1, 1));
    }

    #[test]
    fn torn_last_line_gets_a_newline() {
        let path = temp_file("torn");
        let mut w = EventLogWriter::open(&path, NodeId(1)).unwrap();
        incarnation(&mut w, 1, 4);
        drop(w);
        // A kill in the middle of a write.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"t":5,"node":1,"ev":"deli"#).unwrap();
        drop(f);
        let mut w = EventLogWriter::open(&path, NodeId(1)).unwrap();
        assert!(w.repaired_torn_line());
        incarnation(&mut w, 2, 8);
        drop(w);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4 + 1 + 2 + 4);
        assert_eq!(lines[4], r#"{"t":5,"node":1,"ev":"deli"#);
        assert!(lines[5].contains(r#""ev":"crash""#), "{}", lines[5]);
        assert!(lines[6].contains(r#""ev":"restart""#), "{}", lines[6]);
        // The torn line itself is a real error for the checker.
        match check_files(&[path]) {
            Err(LogError::InFile { source, .. })
                if matches!(*source, LogError::Parse { line: 5, .. }) => {}
            other => panic!("expected a parse error at line 5, got {other:?}"),
        }
    }

    #[test]
    fn time_never_goes_back() {
        let path = temp_file("clock");
        let now = Arc::new(AtomicU64::new(1_000));
        let clock = {
            let now = Arc::clone(&now);
            Box::new(move || now.load(Ordering::SeqCst))
        };
        let mut w = EventLogWriter::open_with_clock(&path, NodeId(1), clock).unwrap();
        w.event(&regular(4)).unwrap();
        now.store(500, Ordering::SeqCst); // the clock steps back
        w.send(
            MsgId {
                sender: NodeId(1),
                no: 1,
            },
            DeliveryKind::Agreed,
            2,
            b"abc",
        )
        .unwrap();
        now.store(2_000, Ordering::SeqCst);
        w.event(&deliver(1, 1, 4)).unwrap();
        drop(w);
        let ts: Vec<_> = read(&path).iter().filter_map(LogEvent::t).collect();
        assert_eq!(ts, [1_000, 1_000, 2_000]);

        // A restart whose clock is behind the file's last `t` continues from it.
        now.store(10, Ordering::SeqCst);
        let clock = {
            let now = Arc::clone(&now);
            Box::new(move || now.load(Ordering::SeqCst))
        };
        let w = EventLogWriter::open_with_clock(&path, NodeId(1), clock).unwrap();
        drop(w);
        let ts: Vec<_> = read(&path).iter().filter_map(LogEvent::t).collect();
        assert_eq!(ts, [1_000, 1_000, 2_000, 2_000, 2_000]);
    }

    #[test]
    fn large_buffers_flush_on_their_own() {
        let path = temp_file("big");
        let mut w = EventLogWriter::open(&path, NodeId(1)).unwrap();
        w.event(&regular(4)).unwrap();
        for no in 1..=1000 {
            w.event(&deliver(no, no, 4)).unwrap();
        }
        let on_disk = std::fs::metadata(&path).unwrap().len();
        assert!(on_disk > 0, "nothing written after 1000 lines");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'), "a flush wrote a partial line");
        drop(w);
        assert_eq!(read(&path).len(), 1001);
    }

    #[test]
    fn tail_parsing_skips_cut_and_torn_lines() {
        let tail = b"ode\":1,\"ev\":\"crash\"}\n{\"t\":7,\"node\":1,\"ev\":\"crash\"}\n{\"t\":9";
        assert_eq!(last_time(tail, true), 7);
        assert_eq!(last_time(b"", false), 0);
        assert_eq!(last_time(b"garbage\n", false), 0);
    }
}
