//! The shelf watcher: `aisexec`'s HPI thread, with `[hpi]` in the configuration.
//!
//! It runs an `hpi` domain over RMCP+ to the shelf manager (as `hpictl watch` does: connect,
//! discover, poll the SEL every `sel_poll_ms`, reconnect with back-off), and hands every
//! hot-swap transition and critical threshold event that comes from a SEL record to the
//! local executive's shelf service (`ais_core::services::shelf`) as a client of the IPC
//! socket, like any application. The hand-over runs on a thread of its own behind a bounded
//! queue ([`Handover`]): while the executive holds requests (its first sync, a configuration
//! change) the HPI thread keeps polling the SEL and queues what it reads. The service puts it on the ring and every node accepts it
//! once (docs/hpi.md, "Shelf events in the cluster"). Events without a SEL record (found by
//! rediscovery) have no key every node agrees on: they are logged here only.
//!
//! The domain watches without acting: auto-insert and auto-extract are blocked (the shelf
//! manager's own policy activates and deactivates FRUs), so several nodes watching one
//! shelf never command it. The shelf manager going away is logged and retried, never fatal.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ais_client::Connection;
use ais_proto::shelf::{Request, ShelfEvent, ShelfEventKind, ShelfKey, ShelfProtocol};
use bytes::Bytes;
use hpi::ipmi::IpmiShelf;
use hpi::ipmi::credentials::Credentials;
use hpi::ipmi::session::SessionConfig;
use hpi::{
    Domain, DomainConfig, DomainEvent, EntityPath, EntityType, Event, EventKind, HsState,
    SensorEventState, Timeout,
};
use tracing::{debug, info, warn};

use crate::config::Hpi;

/// Why the watcher cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The credentials file is unreadable, readable by others, or malformed.
    #[error("[hpi] credentials: {0}")]
    Credentials(#[from] hpi::ipmi::credentials::CredentialsError),
    /// `[hpi] user` differs from the file's.
    #[error("[hpi] user = {configured:?}, but the credentials file {path} is for user {file:?}")]
    User {
        /// The configured user.
        configured: String,
        /// The file's.
        file: String,
        /// The file.
        path: PathBuf,
    },
    /// The address does not resolve.
    #[error("[hpi] address {address}:{port}: {source}")]
    Address {
        /// The address.
        address: String,
        /// The port.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
}

/// What the watcher thread needs, checked before `aisexec` joins the ring.
#[derive(Debug)]
pub struct Watch {
    session: SessionConfig,
    creds: Credentials,
    shelf: Bytes,
    slot: Option<u8>,
    sel_poll: Duration,
    socket: PathBuf,
}

impl Watch {
    /// Reads the credentials (refusing a file group or others may read) and resolves the
    /// address; `socket` is the executive's IPC socket.
    ///
    /// # Errors
    /// What is wrong, never showing the password.
    pub fn new(hpi: &Hpi, socket: PathBuf) -> Result<Watch, WatchError> {
        let creds = Credentials::from_file(&hpi.credentials)?;
        if let Some(user) = &hpi.user
            && user != creds.user()
        {
            return Err(WatchError::User {
                configured: user.clone(),
                file: creds.user().to_owned(),
                path: hpi.credentials.clone(),
            });
        }
        let session = SessionConfig::new((hpi.address.as_str(), hpi.port)).map_err(|source| {
            WatchError::Address {
                address: hpi.address.clone(),
                port: hpi.port,
                source,
            }
        })?;
        Ok(Watch {
            session,
            creds,
            shelf: Bytes::from(format!("{}:{}", hpi.address, hpi.port)),
            slot: hpi.slot,
            sel_poll: Duration::from_millis(hpi.sel_poll_ms),
            socket,
        })
    }

    /// Starts the thread; it ends when `stop` is set.
    ///
    /// # Errors
    /// The thread could not be created.
    pub fn spawn(self, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("hpi".into())
            .spawn(move || self.run(&stop))
    }

    fn run(self, stop: &AtomicBool) {
        info!(
            "hpi: watching shelf {} (user {:?}, SEL poll every {} ms){}",
            String::from_utf8_lossy(&self.shelf),
            self.creds.user(),
            self.sel_poll.as_millis(),
            self.slot
                .map(|s| format!("; this node is the blade in slot {s}"))
                .unwrap_or_default()
        );
        let shelf = IpmiShelf::new(self.session.clone(), self.creds.clone());
        let mut d = Domain::new(
            shelf,
            DomainConfig {
                sel_poll_interval: self.sel_poll,
                auto_insert_timeout: Timeout::Block,
                auto_extract_timeout: Timeout::Block,
                ..DomainConfig::default()
            },
        );
        let sub = d.subscribe();
        let watching = Instant::now();
        match d.start(watching) {
            Ok(()) => info!(
                "hpi: connected to the shelf manager {}: {} resources discovered",
                String::from_utf8_lossy(&self.shelf),
                d.rpt().count()
            ),
            Err(e) => warn!(
                "hpi: shelf manager {} not reachable: {e}; retrying with back-off",
                String::from_utf8_lossy(&self.shelf)
            ),
        }
        let queue = Arc::new(Handover::new(HANDOVER_CAPACITY));
        let handing = {
            let queue = Arc::clone(&queue);
            let socket = self.socket.clone();
            std::thread::Builder::new()
                .name("hpi-handover".into())
                .spawn(move || {
                    hand_over(&queue, &mut IpcExecutive::new(socket), HANDOVER_RETRY);
                })
        };
        let handing = match handing {
            Ok(h) => h,
            Err(e) => {
                warn!("hpi: cannot start the hand-over thread: {e}; not watching the shelf");
                return;
            }
        };
        while !stop.load(Ordering::Relaxed) {
            d.poll(Instant::now());
            loop {
                match d.event_get(sub) {
                    Ok(Some(ev)) => {
                        if let Some(e) = self.shelf_event(&d, &ev)
                            && let Pushed::DroppedOldest { dropped } = queue.push(e)
                            && (dropped == 1 || dropped.is_power_of_two())
                        {
                            warn!(
                                "hpi: {dropped} shelf events dropped in all (the oldest first): \
                                 the executive took none of the last {HANDOVER_CAPACITY}"
                            );
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        warn!("hpi: event queue: {e}");
                        break;
                    }
                }
            }
            if d.queue_overflowed(sub).unwrap_or(false) {
                warn!("hpi: the domain's event queue overflowed; events were lost here");
            }
            let wait = d
                .poll_timeout()
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(self.sel_poll)
                .clamp(Duration::from_millis(1), Duration::from_millis(50));
            std::thread::sleep(wait);
        }
        queue.close();
        let _ = handing.join();
        let s = d.stats();
        let secs = watching.elapsed().as_secs_f64();
        // One line a bench or an operator can read the shelf manager's cost from.
        info!(
            "hpi: stopped after {secs:.1} s: sel_info={} sel_entry={} ({:.1} SEL requests/s), \
             discoveries={} connection_losses={} handover_dropped={}",
            s.sel_polls,
            s.sel_entry_requests,
            (s.sel_polls + s.sel_entry_requests) as f64 / secs.max(1e-3),
            s.discoveries,
            s.connection_losses,
            queue.dropped()
        );
    }

    /// The cluster's form of `ev`, or `None` for what does not go through the ring (logged).
    fn shelf_event(&self, d: &Domain<IpmiShelf>, ev: &Event) -> Option<ShelfEvent> {
        // the event's own copy of the entry: a resource that left is no longer in the RPT
        let entry = ev
            .rpt_entry
            .as_ref()
            .or_else(|| ev.resource.and_then(|r| d.rpt_entry(r).ok()));
        let slot = entry.map_or(0, |e| slot_of(&e.entity));
        let kind = match &ev.kind {
            EventKind::HotSwap {
                state,
                previous,
                picmg,
                ..
            } => ShelfEventKind::HotSwap {
                slot,
                fru: entry.map_or(0, |e| e.fru_id),
                previous: hs_code(*previous),
                state: hs_code(*state),
                cause: picmg.map_or(0xFF, |(_, _, c)| c),
            },
            EventKind::Sensor {
                num,
                sensor_type,
                assertion,
                state,
                ..
            } if state.critical() => sensor_kind(slot, *num, *sensor_type, *assertion, *state),
            EventKind::Domain(DomainEvent::ShelfManagerLost { reason }) => {
                warn!(
                    "hpi: lost the shelf manager {}: {reason}; reconnecting with back-off",
                    String::from_utf8_lossy(&self.shelf)
                );
                return None;
            }
            EventKind::Domain(DomainEvent::ShelfManagerRestored) => {
                info!(
                    "hpi: the shelf manager {} is back; shelf rediscovered",
                    String::from_utf8_lossy(&self.shelf)
                );
                return None;
            }
            EventKind::Domain(DomainEvent::SelFull) => {
                warn!("hpi: the shelf's SEL is full: the shelf manager drops events");
                return None;
            }
            other => {
                debug!(?other, "hpi: event not for the cluster");
                return None;
            }
        };
        let (Some(record), Some(timestamp)) = (ev.sel_record, ev.sel_timestamp) else {
            info!(
                ?kind,
                "hpi: shelf event without a SEL record (rediscovery): not sent to the cluster"
            );
            return None;
        };
        Some(ShelfEvent {
            key: ShelfKey {
                shelf: self.shelf.clone(),
                record,
                timestamp,
            },
            kind,
        })
    }
}

/// How many shelf events at most wait for the executive (besides the one being handed over).
pub const HANDOVER_CAPACITY: usize = 4096;
/// Pause before handing an event over again after the executive refused it (try again) or
/// its socket failed.
const HANDOVER_RETRY: Duration = Duration::from_millis(50);

/// The queue between the HPI thread and the hand-over thread.
///
/// The HPI thread [`push`](Self::push)es and never waits, so it keeps polling the SEL while
/// the executive holds requests (its first sync, a configuration change) or is not up yet.
/// The hand-over thread ([`hand_over`]) takes the events in order and gives each to the
/// executive until it is taken. The queue is bounded: a push into a full queue drops the
/// oldest waiting event (the newest say most about the shelf now, and the other nodes'
/// watchers submit their own copies of what this one drops) and counts it.
#[derive(Debug)]
pub struct Handover {
    state: Mutex<Queue>,
    changed: Condvar,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Queue {
    events: VecDeque<ShelfEvent>,
    dropped: u64,
    closed: bool,
}

/// What [`Handover::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The event waits its turn.
    Queued,
    /// The queue was full: its oldest event was dropped to make room.
    DroppedOldest {
        /// Events dropped so far, this one included.
        dropped: u64,
    },
}

impl Handover {
    /// An empty queue of at most `capacity` (at least 1) waiting events.
    pub fn new(capacity: usize) -> Handover {
        Handover {
            state: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `e` without waiting; in a full queue the oldest event makes room.
    pub fn push(&self, e: ShelfEvent) -> Pushed {
        let mut q = self.lock();
        let pushed = if q.events.len() >= self.capacity {
            q.events.pop_front();
            q.dropped += 1;
            Pushed::DroppedOldest { dropped: q.dropped }
        } else {
            Pushed::Queued
        };
        q.events.push_back(e);
        self.changed.notify_all();
        pushed
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Ends the hand-over: [`hand_over`] returns (what still waits is not handed over).
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// The oldest event, waiting for one; `None` once closed.
    fn pop(&self) -> Option<ShelfEvent> {
        let mut q = self.lock();
        loop {
            if q.closed {
                return None;
            }
            if let Some(e) = q.events.pop_front() {
                return Some(e);
            }
            q = self.changed.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Waits `d` or until closed; whether it is closed.
    fn closed_within(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        let mut q = self.lock();
        while !q.closed {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            q = self
                .changed
                .wait_timeout(q, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        q.closed
    }
}

/// Why the executive did not take an event.
#[derive(Debug, thiserror::Error)]
pub enum HandError {
    /// It holds requests for now (answered TRY_AGAIN).
    #[error("the executive asks to try again")]
    TryAgain,
    /// Its socket cannot be reached or failed.
    #[error("{0}")]
    Unavailable(String),
}

/// Where the hand-over thread gives the watcher's events: the executive's shelf service.
pub trait Executive {
    /// Hands `e` over; returns when the executive answered.
    ///
    /// # Errors
    /// It was not taken; [`hand_over`] gives it again after a pause.
    fn observe(&mut self, e: &ShelfEvent) -> Result<(), HandError>;
}

/// The executive's shelf service over its IPC socket (connecting when needed).
#[derive(Debug)]
pub struct IpcExecutive {
    socket: PathBuf,
    conn: Option<Connection<ShelfProtocol>>,
}

impl IpcExecutive {
    /// The executive listening on `socket`.
    pub fn new(socket: PathBuf) -> IpcExecutive {
        IpcExecutive { socket, conn: None }
    }
}

impl Executive for IpcExecutive {
    fn observe(&mut self, e: &ShelfEvent) -> Result<(), HandError> {
        let c = match &mut self.conn {
            Some(c) => c,
            None => self
                .conn
                .insert(
                    Connection::<ShelfProtocol>::connect(&self.socket).map_err(|err| {
                        HandError::Unavailable(format!(
                            "the executive's socket {}: {err}",
                            self.socket.display()
                        ))
                    })?,
                ),
        };
        match c.call(Request::Observe(e.clone())) {
            Ok(_) => Ok(()),
            Err(err) if err.is_try_again() => Err(HandError::TryAgain),
            Err(err) => {
                self.conn = None;
                Err(HandError::Unavailable(format!(
                    "handing an event to the executive: {err}"
                )))
            }
        }
    }
}

/// The hand-over thread's loop: gives every event of `queue` to `exec` in order, each until
/// it is taken (again after `retry` when it was not); returns when `queue` is closed.
pub fn hand_over(queue: &Handover, exec: &mut impl Executive, retry: Duration) {
    let mut failing = false;
    while let Some(e) = queue.pop() {
        loop {
            match exec.observe(&e) {
                Ok(()) => {
                    if failing {
                        info!("hpi: handing shelf events to the executive again");
                        failing = false;
                    }
                    break;
                }
                Err(HandError::TryAgain) => debug!("hpi: the executive holds requests"),
                Err(HandError::Unavailable(why)) if !failing => {
                    warn!("hpi: {why}; trying again every {} ms", retry.as_millis());
                    failing = true;
                }
                Err(HandError::Unavailable(why)) => debug!("hpi: {why}"),
            }
            if queue.closed_within(retry) {
                return;
            }
        }
    }
}

/// The cluster's form of a critical sensor event (`state.critical()`): the IPMI event type
/// and offset (a threshold's is the one of its SEL record: the level and which way the
/// reading crossed it, e.g. upper critical going high 0x09, going low 0x08).
fn sensor_kind(
    slot: u8,
    sensor: u8,
    sensor_type: u8,
    assertion: bool,
    state: SensorEventState,
) -> ShelfEventKind {
    let (event_type, offset) = match state {
        SensorEventState::Threshold(t, crossing) => (0x01, t.offset(crossing)),
        SensorEventState::Discrete { event_type, offset } => (event_type, offset),
    };
    ShelfEventKind::Sensor {
        slot,
        sensor,
        sensor_type,
        assertion,
        event_type,
        offset,
    }
}

/// The physical slot in an entity path (`{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,3}...` is 3),
/// 0 for a shelf-level resource (no slot in its path).
fn slot_of(entity: &EntityPath) -> u8 {
    entity
        .0
        .iter()
        .find(|(t, _)| *t == EntityType::PhysicalSlot)
        .map_or(0, |(_, i)| u8::try_from(*i).unwrap_or(u8::MAX))
}

/// The protocol's code of an HPI hot-swap state.
fn hs_code(s: HsState) -> u8 {
    match s {
        HsState::Inactive => 0,
        HsState::InsertionPending => 1,
        HsState::Active => 2,
        HsState::ExtractionPending => 3,
        HsState::NotPresent => 4,
    }
}

/// What `aisexec` does with each shelf event the cluster accepts: one line in its log (with
/// "this node's blade" when the event is about the configured slot) and, with an event log,
/// a `shelf` service line there (queued here, written by the runtime).
#[derive(Debug)]
pub struct LogAccepted {
    /// This node's slot (`[hpi] slot`).
    pub slot: Option<u8>,
    /// Where event-log lines go, if there is an event log.
    pub lines: Option<crossbeam_channel::Sender<AcceptedLine>>,
}

/// One accepted shelf event, for the event log.
#[derive(Debug, Clone)]
pub struct AcceptedLine {
    /// The ring it was accepted in.
    pub ring: totem_dpdk::RingId,
    /// The node whose copy was accepted.
    pub from: u32,
    /// The event.
    pub event: ShelfEvent,
}

/// A short description of a shelf event for logs.
pub fn describe(e: &ShelfEvent) -> String {
    let key = format!(
        "shelf {} SEL record {} at {}",
        String::from_utf8_lossy(&e.key.shelf),
        e.key.record,
        e.key.timestamp
    );
    match e.kind {
        ShelfEventKind::HotSwap {
            slot,
            fru,
            previous,
            state,
            ..
        } => format!(
            "hot-swap of slot {slot} FRU {fru}: {} -> {} ({key})",
            hs_name(previous),
            hs_name(state)
        ),
        ShelfEventKind::Sensor {
            slot,
            sensor,
            assertion,
            event_type,
            offset,
            ..
        } => format!(
            "critical sensor {sensor} of slot {slot} {} (event type 0x{event_type:02x} offset \
             0x{offset:02x}) ({key})",
            if assertion { "asserted" } else { "deasserted" }
        ),
    }
}

fn hs_name(code: u8) -> &'static str {
    match code {
        0 => "INACTIVE",
        1 => "INSERTION_PENDING",
        2 => "ACTIVE",
        3 => "EXTRACTION_PENDING",
        4 => "NOT_PRESENT",
        _ => "UNKNOWN",
    }
}

impl ais_core::services::shelf::Observer for LogAccepted {
    fn accepted(
        &mut self,
        _node: totem_dpdk::NodeId,
        ring: totem_dpdk::RingId,
        from: totem_dpdk::NodeId,
        event: &ShelfEvent,
    ) {
        let (slot, fru) = match event.kind {
            ShelfEventKind::HotSwap { slot, fru, .. } => (slot, fru),
            ShelfEventKind::Sensor { slot, .. } => (slot, 0),
        };
        // A subsidiary FRU in the slot (an RTM, an AMC) is not the blade itself.
        let own = match (self.slot == Some(slot), fru) {
            (false, _) => String::new(),
            (true, 0) => " (this node's blade)".to_owned(),
            (true, n) => format!(" (FRU {n} of this node's blade)"),
        };
        info!(
            "shelf: accepted {}{own}, from node {from} in ring {ring}",
            describe(event)
        );
        if let Some(tx) = &self.lines {
            let _ = tx.send(AcceptedLine {
                ring,
                from: from.0,
                event: event.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use hpi::Crossing::{GoingHigh, GoingLow};
    use hpi::ThresholdState;

    use super::*;

    fn ev(record: u16) -> ShelfEvent {
        ShelfEvent {
            key: ShelfKey {
                shelf: Bytes::from_static(b"127.0.0.1:623"),
                record,
                timestamp: 1000 + u32::from(record),
            },
            kind: ShelfEventKind::HotSwap {
                slot: 3,
                fru: 0,
                previous: 0,
                state: 1,
                cause: 0,
            },
        }
    }

    /// An executive that answers only when the test says so: each `observe` reports the
    /// record it got on `got`, then waits for one verdict on `verdicts`.
    struct Gated {
        got: mpsc::Sender<u16>,
        verdicts: mpsc::Receiver<Result<(), HandError>>,
    }

    impl Executive for Gated {
        fn observe(&mut self, e: &ShelfEvent) -> Result<(), HandError> {
            self.got.send(e.key.record).unwrap();
            self.verdicts
                .recv_timeout(Duration::from_secs(60))
                .expect("the test gives a verdict")
        }
    }

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn the_slot_is_the_physical_slot_of_the_entity_path() {
        let blade = EntityPath(vec![
            (EntityType::AdvancedTcaChassis, 1),
            (EntityType::PhysicalSlot, 3),
            (EntityType::PicmgFrontBlade, 0),
        ]);
        assert_eq!(slot_of(&blade), 3);
        let shmc = EntityPath(vec![
            (EntityType::AdvancedTcaChassis, 1),
            (EntityType::ShelfManager, 1),
        ]);
        assert_eq!(slot_of(&shmc), 0);
    }

    #[test]
    fn critical_sensor_events_keep_their_ipmi_type_and_offset() {
        let k = |state| match sensor_kind(3, 1, 0x01, true, state) {
            ShelfEventKind::Sensor {
                event_type, offset, ..
            } => (event_type, offset),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            k(SensorEventState::Threshold(
                ThresholdState::LowerCrit,
                GoingLow
            )),
            (0x01, 0x04)
        );
        assert_eq!(
            k(SensorEventState::Threshold(
                ThresholdState::UpperCrit,
                GoingHigh
            )),
            (0x01, 0x0B)
        );
        assert_eq!(
            k(SensorEventState::Threshold(
                ThresholdState::UpperMajor,
                GoingHigh
            )),
            (0x01, 0x09)
        );
        // The crossing the SEL record said, not the usual one: upper critical going low,
        // lower non-recoverable going high.
        assert_eq!(
            k(SensorEventState::Threshold(
                ThresholdState::UpperMajor,
                GoingLow
            )),
            (0x01, 0x08)
        );
        assert_eq!(
            k(SensorEventState::Threshold(
                ThresholdState::LowerCrit,
                GoingHigh
            )),
            (0x01, 0x05)
        );
        assert_eq!(
            k(SensorEventState::Discrete {
                event_type: 0x07,
                offset: 3
            }),
            (0x07, 3)
        );
        let e = ShelfEvent {
            kind: sensor_kind(
                3,
                1,
                0x08,
                true,
                SensorEventState::Discrete {
                    event_type: 0x07,
                    offset: 5,
                },
            ),
            ..ev(4)
        };
        assert!(
            describe(&e).contains("event type 0x07 offset 0x05"),
            "{}",
            describe(&e)
        );
    }

    #[test]
    fn a_resource_that_left_keeps_its_slot_and_fru_in_the_cluster() {
        let session = SessionConfig::new(("127.0.0.1", 9)).unwrap();
        let w = Watch {
            session: session.clone(),
            creds: Credentials::new("u", "p"),
            shelf: Bytes::from_static(b"127.0.0.1:623"),
            slot: None,
            sel_poll: Duration::from_millis(50),
            socket: PathBuf::from("/nonexistent"),
        };
        // The domain never started: its RPT is empty, as it is for a resource that an event
        // took out of it before the watcher read that event.
        let d = Domain::new(
            IpmiShelf::new(session, Credentials::new("u", "p")),
            DomainConfig::default(),
        );
        let rid = hpi::ResourceId(7);
        let entry = hpi::RptEntry {
            id: rid,
            entity: EntityPath(vec![
                (EntityType::AdvancedTcaChassis, 1),
                (EntityType::PhysicalSlot, 2),
                (EntityType::BackPanelBoard, 1),
            ]),
            tag: "rtm-2".into(),
            kind: hpi::ResourceKind::Subsidiary {
                site: 2,
                entity_id: 0xC0,
            },
            ipmb_addr: 0x84,
            fru_id: 1,
            caps: hpi::Capabilities::default(),
            hs_state: Some(HsState::NotPresent),
            m_state: Some(hpi::ipmi::msg::MState::M0),
            failed: false,
        };
        let ev = |rpt_entry| Event {
            seq: 1,
            resource: Some(rid),
            rpt_entry,
            sel_record: Some(12),
            sel_timestamp: Some(5_000),
            kind: EventKind::HotSwap {
                state: HsState::NotPresent,
                previous: HsState::Active,
                cause: hpi::HsCause::SurpriseExtraction,
                picmg: Some((
                    Some(hpi::ipmi::msg::MState::M4),
                    hpi::ipmi::msg::MState::M0,
                    6,
                )),
            },
        };
        let slot_fru = |e: Option<ShelfEvent>| match e.map(|e| e.kind) {
            Some(ShelfEventKind::HotSwap { slot, fru, .. }) => (slot, fru),
            other => panic!("{other:?}"),
        };
        assert_eq!(slot_fru(w.shelf_event(&d, &ev(Some(entry)))), (2, 1));
        // Without the event's own entry (before 2026-12-04) it said slot 0 FRU 0.
        assert_eq!(slot_fru(w.shelf_event(&d, &ev(None))), (0, 0));
    }

    /// Starts `hand_over` on `queue` with a gated executive; the test's ends of the gate.
    fn gated(
        queue: &Arc<Handover>,
    ) -> (
        mpsc::Receiver<u16>,
        mpsc::Sender<Result<(), HandError>>,
        JoinHandle<()>,
    ) {
        let (got_tx, got) = mpsc::channel();
        let (verdict, verdicts) = mpsc::channel();
        let q = Arc::clone(queue);
        let h = std::thread::spawn(move || {
            hand_over(
                &q,
                &mut Gated {
                    got: got_tx,
                    verdicts,
                },
                Duration::from_millis(1),
            );
        });
        (got, verdict, h)
    }

    #[test]
    fn pushes_do_not_wait_for_a_held_executive_and_nothing_is_lost_or_reordered() {
        let queue = Arc::new(Handover::new(16));
        let (got, verdict, h) = gated(&queue);
        queue.push(ev(1));
        // The executive holds event 1 (no verdict yet): the watcher goes on queueing.
        assert_eq!(got.recv_timeout(LONG).unwrap(), 1);
        for r in 2..=10 {
            assert_eq!(queue.push(ev(r)), Pushed::Queued);
        }
        assert_eq!(queue.len(), 9);
        // Held twice (try again), then a broken socket: event 1 is given again each time.
        verdict.send(Err(HandError::TryAgain)).unwrap();
        assert_eq!(got.recv_timeout(LONG).unwrap(), 1);
        verdict.send(Err(HandError::TryAgain)).unwrap();
        assert_eq!(got.recv_timeout(LONG).unwrap(), 1);
        verdict
            .send(Err(HandError::Unavailable("gone".into())))
            .unwrap();
        assert_eq!(got.recv_timeout(LONG).unwrap(), 1);
        verdict.send(Ok(())).unwrap();
        for r in 2..=10 {
            assert_eq!(got.recv_timeout(LONG).unwrap(), r);
            verdict.send(Ok(())).unwrap();
        }
        assert_eq!(queue.dropped(), 0);
        queue.close();
        h.join().unwrap();
        assert!(
            got.try_recv().is_err(),
            "nothing handed twice after it was taken"
        );
    }

    #[test]
    fn a_full_queue_drops_its_oldest_events_and_counts_them() {
        let queue = Arc::new(Handover::new(4));
        let (got, verdict, h) = gated(&queue);
        queue.push(ev(0));
        assert_eq!(got.recv_timeout(LONG).unwrap(), 0);
        // Event 0 is being handed over; 1..=10 arrive meanwhile: the queue keeps 7..=10.
        let mut outcomes = Vec::new();
        for r in 1..=10 {
            outcomes.push(queue.push(ev(r)));
        }
        assert_eq!(outcomes[..4], [Pushed::Queued; 4]);
        assert_eq!(
            outcomes[4..],
            (1..=6)
                .map(|dropped| Pushed::DroppedOldest { dropped })
                .collect::<Vec<_>>()
        );
        assert_eq!((queue.len(), queue.dropped()), (4, 6));
        verdict.send(Ok(())).unwrap();
        for r in 7..=10 {
            assert_eq!(got.recv_timeout(LONG).unwrap(), r);
            verdict.send(Ok(())).unwrap();
        }
        queue.close();
        h.join().unwrap();
    }

    #[test]
    fn close_ends_the_hand_over_also_while_the_executive_is_unreachable() {
        let queue = Arc::new(Handover::new(4));
        let q = Arc::clone(&queue);
        let (tx, rx) = mpsc::channel();
        let h = std::thread::spawn(move || {
            let mut exec = IpcExecutive::new(PathBuf::from("/nonexistent/aisexec.sock"));
            hand_over(&q, &mut exec, Duration::from_millis(5));
            tx.send(()).unwrap();
        });
        queue.push(ev(1));
        std::thread::sleep(Duration::from_millis(20));
        queue.close();
        rx.recv_timeout(LONG)
            .expect("hand_over returned after close");
        h.join().unwrap();
    }
}
