//! The shelf watcher: `aisexec`'s HPI thread, with `[hpi]` in the configuration.
//!
//! It runs an `hpi` domain over RMCP+ to the shelf manager (as `hpictl watch` does: connect,
//! discover, poll the SEL every `sel_poll_ms`, reconnect with back-off), and hands every
//! hot-swap transition and critical threshold event that comes from a SEL record to the
//! local executive's shelf service (`ais_core::services::shelf`) as a client of the IPC
//! socket, like any application. The service puts it on the ring and every node accepts it
//! once (docs/hpi.md, "Shelf events in the cluster"). Events without a SEL record (found by
//! rediscovery) have no key every node agrees on: they are logged here only.
//!
//! The domain watches without acting: auto-insert and auto-extract are blocked (the shelf
//! manager's own policy activates and deactivates FRUs), so several nodes watching one
//! shelf never command it. The shelf manager going away is logged and retried, never fatal.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ais_client::Connection;
use ais_proto::shelf::{Request, ShelfEvent, ShelfEventKind, ShelfKey, ShelfProtocol};
use bytes::Bytes;
use hpi::ipmi::IpmiShelf;
use hpi::ipmi::credentials::Credentials;
use hpi::ipmi::session::SessionConfig;
use hpi::{
    Domain, DomainConfig, DomainEvent, Event, EventKind, HsState, SensorEventState, ThresholdState,
    Timeout,
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
        match d.start(Instant::now()) {
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
        let mut conn: Option<Connection<ShelfProtocol>> = None;
        let mut backlog: Vec<ShelfEvent> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            d.poll(Instant::now());
            loop {
                match d.event_get(sub) {
                    Ok(Some(ev)) => {
                        if let Some(e) = self.shelf_event(&d, &ev) {
                            backlog.push(e);
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
            self.hand_over(&mut conn, &mut backlog);
            let wait = d
                .poll_timeout()
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(self.sel_poll)
                .clamp(Duration::from_millis(1), Duration::from_millis(50));
            std::thread::sleep(wait);
        }
    }

    /// Gives `backlog` to the executive, connecting first; what it cannot give stays for
    /// the next round (bounded: the oldest go first).
    fn hand_over(
        &self,
        conn: &mut Option<Connection<ShelfProtocol>>,
        backlog: &mut Vec<ShelfEvent>,
    ) {
        if backlog.is_empty() {
            return;
        }
        if conn.is_none() {
            match Connection::<ShelfProtocol>::connect(&self.socket) {
                Ok(c) => *conn = Some(c),
                Err(e) => {
                    debug!("hpi: the executive's socket: {e}");
                    return;
                }
            }
        }
        let Some(c) = conn else { return };
        while let Some(e) = backlog.first().cloned() {
            match c.call(Request::Observe(e)) {
                Ok(_) => {
                    backlog.remove(0);
                }
                Err(err) if err.is_try_again() => return,
                Err(err) => {
                    warn!("hpi: handing an event to the executive: {err}");
                    *conn = None;
                    return;
                }
            }
        }
        if backlog.len() > 4096 {
            let drop = backlog.len() - 4096;
            warn!("hpi: {drop} shelf events not handed to the executive were dropped");
            backlog.drain(..drop);
        }
    }

    /// The cluster's form of `ev`, or `None` for what does not go through the ring (logged).
    fn shelf_event(&self, d: &Domain<IpmiShelf>, ev: &Event) -> Option<ShelfEvent> {
        let entry = ev.resource.and_then(|r| d.rpt_entry(r).ok());
        let slot = entry
            .and_then(|e| e.entity.0.first())
            .map_or(0, |(_, i)| u8::try_from(*i).unwrap_or(u8::MAX));
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
                state:
                    SensorEventState::Threshold(
                        t @ (ThresholdState::LowerCrit | ThresholdState::UpperCrit),
                    ),
                ..
            } => ShelfEventKind::Sensor {
                slot,
                sensor: *num,
                sensor_type: *sensor_type,
                assertion: *assertion,
                offset: if *t == ThresholdState::LowerCrit {
                    4
                } else {
                    10
                },
            },
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
            offset,
            ..
        } => format!(
            "critical sensor {sensor} of slot {slot} {} (offset {offset}) ({key})",
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
        let slot = match event.kind {
            ShelfEventKind::HotSwap { slot, .. } | ShelfEventKind::Sensor { slot, .. } => slot,
        };
        let own = if self.slot == Some(slot) {
            " (this node's blade)"
        } else {
            ""
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
