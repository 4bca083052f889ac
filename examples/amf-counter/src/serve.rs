//! The active side: a listener, one reader thread per connection, and one worker that owns
//! the state and the checkpoint.
//!
//! Readers parse lines and queue them to the worker in order. The worker takes everything
//! queued (up to [`BATCH`] requests), applies it to the state, writes the state into the
//! checkpoint once (a group commit), and only then writes the replies, in the order the
//! requests came. A failed write answers the batch's requests with `ERR` and reloads the
//! state from the checkpoint, so memory never runs ahead of what is stored.
//!
//! [`Serving::stop`] is what a quiesce or a removal does: the listener is closed (the
//! acceptor is woken with a connection to itself, and joined), the worker finishes the batch
//! it is writing and stops, then every client connection is shut down. Requests queued but
//! not taken are never answered: their clients send them again to the next active.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ais_client::AisError;
use ais_client::ckpt::{CheckpointHandle, Ckpt, ReadElement};
use bytes::Bytes;
use tracing::{debug, info, warn};

use crate::Defect;
use crate::protocol::{Reply, Request};
use crate::state::{Applied, State};

/// Most requests applied with one checkpoint write.
pub(crate) const BATCH: usize = 1024;

/// How long a checkpoint write is tried again while the executive answers TRY_AGAIN (a
/// membership change, a full send window).
const WRITE_RETRY: Duration = Duration::from_secs(5);

/// How long the listen address is tried while it is still taken (the previous active on the
/// same host closing it).
const BIND_RETRY: Duration = Duration::from_secs(2);

/// An open checkpoint: the connection and the handle.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) ckpt: Ckpt,
    pub(crate) handle: CheckpointHandle,
}

impl Opened {
    /// The state the checkpoint holds.
    pub(crate) fn load(&mut self, max_clients: usize) -> anyhow::Result<State> {
        let read = self.ckpt.read(
            self.handle,
            &[ReadElement {
                section: Bytes::new(),
                offset: 0,
                size: u64::MAX,
            }],
        );
        let bytes = match read {
            Ok(mut parts) => parts.pop().unwrap_or_default(),
            // A default section never written: offset 0 is past its (empty) end.
            Err(e) if e.ais_error() == Some(AisError::InvalidParam) => Bytes::new(),
            Err(e) => return Err(anyhow::anyhow!("reading the checkpoint: {e}")),
        };
        Ok(State::decode(&bytes, max_clients)?)
    }

    /// Writes `state` whole into the default section, trying TRY_AGAIN again for up to
    /// [`WRITE_RETRY`].
    fn store(&mut self, state: &State) -> Result<(), ais_client::Error> {
        let data = state.encode();
        let deadline = Instant::now() + WRITE_RETRY;
        let mut pause = Duration::from_micros(200);
        loop {
            match self.ckpt.section_overwrite(self.handle, b"", &data) {
                Err(e)
                    if e.ais_error() == Some(AisError::TryAgain) && Instant::now() < deadline =>
                {
                    thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }
}

/// One client connection: its number and the stream the worker writes replies to.
struct Conn {
    id: u64,
    stream: TcpStream,
}

/// The open client connections by number, for [`Serving::stop`] to shut them down; a reader
/// removes its own when its client goes.
type Streams = Arc<Mutex<BTreeMap<u64, TcpStream>>>;

/// What readers and the controller queue to the worker.
enum Work {
    Request(Arc<Conn>, Result<Request, String>),
    Stop,
}

/// A running active: listener, readers, worker.
pub(crate) struct Serving {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: JoinHandle<()>,
    work: Sender<Work>,
    worker: JoinHandle<Opened>,
    streams: Streams,
}

impl Serving {
    /// Binds `listen` and serves `state`, stored in `opened`.
    ///
    /// # Errors
    /// The address cannot be bound within [`BIND_RETRY`]; then `opened` comes back.
    pub(crate) fn start(
        listen: &str,
        opened: Opened,
        state: State,
        defect: Defect,
    ) -> Result<Serving, (anyhow::Error, Opened)> {
        let deadline = Instant::now() + BIND_RETRY;
        let listener = loop {
            match TcpListener::bind(listen) {
                Ok(l) => break l,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err((anyhow::anyhow!("binding {listen}: {e}"), opened)),
            }
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => return Err((e.into(), opened)),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let streams = Streams::default();
        let (work, queue) = mpsc::channel();
        let worker = thread::Builder::new()
            .name("counter-worker".into())
            .spawn(move || worker(queue, opened, state, defect))
            .expect("spawn the worker");
        let acceptor = {
            let (stop, streams, work) = (stop.clone(), streams.clone(), work.clone());
            thread::Builder::new()
                .name("counter-accept".into())
                .spawn(move || accept(listener, stop, streams, work))
                .expect("spawn the acceptor")
        };
        info!(%addr, "serving");
        Ok(Serving {
            addr,
            stop,
            acceptor,
            work,
            worker,
            streams,
        })
    }

    /// Whether the worker and the acceptor still run (a health check's answer).
    pub(crate) fn healthy(&self) -> bool {
        !self.worker.is_finished() && !self.acceptor.is_finished()
    }

    /// Stops serving: the listener is closed when this returns, the last batch written and
    /// answered, every client connection shut down. Gives the checkpoint back.
    pub(crate) fn stop(self) -> Opened {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor; it sees the flag and drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        let _ = self.acceptor.join();
        let _ = self.work.send(Work::Stop);
        let opened = self.worker.join().expect("the worker does not panic");
        for s in self
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        info!(addr = %self.addr, "stopped serving, listener closed");
        opened
    }
}

fn accept(listener: TcpListener, stop: Arc<AtomicBool>, streams: Streams, work: Sender<Work>) {
    let mut next = 0u64;
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let (Ok(write), Ok(keep)) = (stream.try_clone(), stream.try_clone()) else {
            continue;
        };
        next += 1;
        streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(next, keep);
        let conn = Arc::new(Conn {
            id: next,
            stream: write,
        });
        let (work, streams) = (work.clone(), streams.clone());
        let _ = thread::Builder::new()
            .name("counter-conn".into())
            .spawn(move || {
                read(stream, conn, work);
                streams
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&next);
            });
    }
    // The listener is dropped here: closed.
}

fn read(stream: TcpStream, conn: Arc<Conn>, work: Sender<Work>) {
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let req = Request::parse(&line);
        if work.send(Work::Request(conn.clone(), req)).is_err() {
            return;
        }
    }
}

fn worker(queue: Receiver<Work>, mut opened: Opened, mut state: State, defect: Defect) -> Opened {
    let mut batch = Vec::with_capacity(BATCH);
    let mut stopping = false;
    while !stopping {
        match queue.recv() {
            Ok(Work::Request(c, r)) => batch.push((c, r)),
            Ok(Work::Stop) | Err(_) => break,
        }
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(Work::Request(c, r)) => batch.push((c, r)),
                Ok(Work::Stop) => {
                    stopping = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(batch.len());
        let mut dirty = false;
        for (conn, req) in batch.drain(..) {
            let reply = match req {
                Err(reason) => Reply::Err(reason),
                Ok(Request::Get) => Reply::Value(state.total()),
                Ok(Request::Add { client, seq, n }) => {
                    let seq = match (defect, state.last_seq(&client)) {
                        (Defect::NoDedup, Some(last)) => seq.max(last.saturating_add(1)),
                        _ => seq,
                    };
                    match state.add(&client, seq, n) {
                        Ok(Applied::Added { forgotten }) => {
                            if let Some(f) = forgotten {
                                warn!(client = %f, max = state.max_clients(), "client forgotten: too many clients");
                            }
                            dirty = true;
                            Reply::Ok(state.total())
                        }
                        Ok(Applied::Duplicate) => {
                            debug!(%client, seq, "already applied");
                            Reply::Ok(state.total())
                        }
                        Err(e) => Reply::Err(e.to_string()),
                    }
                }
            };
            replies.push((conn, reply));
        }
        if dirty && let Err(e) = opened.store(&state) {
            warn!(error = %e, "checkpoint write failed: the batch is refused");
            for (_, r) in &mut replies {
                *r = Reply::Err(format!("checkpoint write failed: {e}"));
            }
            match opened.load(state.max_clients()) {
                Ok(s) => state = s,
                Err(e) => {
                    // Neither written nor readable: stop, so the AMF's health check sees it.
                    warn!(error = %e, "cannot reload the state: the worker stops");
                    send(replies);
                    return opened;
                }
            }
        }
        send(replies);
    }
    opened
}

/// Writes the replies, one write per connection, in order.
fn send(replies: Vec<(Arc<Conn>, Reply)>) {
    let mut out: BTreeMap<u64, (Arc<Conn>, String)> = BTreeMap::new();
    for (conn, reply) in replies {
        let e = out
            .entry(conn.id)
            .or_insert_with(|| (conn.clone(), String::new()));
        e.1.push_str(&reply.to_string());
        e.1.push('\n');
    }
    for (conn, text) in out.into_values() {
        // A client gone: it sends again elsewhere.
        let _ = (&conn.stream).write_all(text.as_bytes());
    }
}
