//! The client library: how an application talks to the `aisexec` executive on its host. This
//! crate is all an application links: no Totem, no frame crypto, no configuration parser, no
//! command line (checked by `bench/tests/workspace_layers.rs`).
//!
//! # Model
//!
//! A [`Connection`] is one Unix `SOCK_SEQPACKET` socket to the executive, for one service
//! (its type parameter: [`CpgProtocol`], [`EvsProtocol`], [`ClmProtocol`],
//! [`QuorumProtocol`], [`CkptProtocol`](ais_proto::ckpt::CkptProtocol) or [`AdminProtocol`]),
//! announced when it is made. The service wrappers [`cpg::Cpg`], [`evs::Evs`],
//! [`clm::Clm`], [`quorum::Quorum`], [`ckpt::Ckpt`] and [`evt::Evt`] own one each. Like corosync's
//! `libcpg`, the library is synchronous and has no thread of its own:
//!
//! - **One request at a time.** [`Connection::call`] sends a request and blocks until the
//!   executive answers it. Answers come back in order, each carrying its request's number; an
//!   answer to anything but the request outstanding is a [`Error::Protocol`].
//! - **Callbacks are queued.** The executive sends callbacks (messages delivered to a group,
//!   membership changes) whenever it has them, so some may arrive while a call waits for its
//!   answer. Those are kept, in arrival order, and handed out first by
//!   [`Connection::next_callback`] (or the services' `dispatch`), which otherwise waits on the
//!   socket. Nothing is lost and the order is the executive's.
//! - **Poll loops.** The socket's descriptor ([`AsRawFd`]) becomes readable when the executive
//!   sends something, so an application can wait on it with `poll`/`epoll` next to its other
//!   descriptors. Callbacks already queued by a call are *not* visible through the descriptor:
//!   check [`Connection::has_queued`] (or simply drain with a zero timeout, which returns
//!   queued callbacks first) before going back to sleep.
//! - **`TRY_AGAIN`.** Sends are refused with [`AisError::TryAgain`]
//!   ([`Error::is_try_again`]) while Totem's send window is full. Nothing was queued: send
//!   again a little later, ideally after dispatching pending callbacks (which is what frees
//!   the executive's queues). [`cpg::Cpg::mcast_retry`] does that loop with a short back-off.
//! - **Threads.** A connection is [`Send`]: it can move to another thread. Its methods take
//!   `&mut self`, so it is not used from two threads at once; give each thread that talks to
//!   the executive its own connection (they are cheap) rather than sharing one behind a lock,
//!   which would let one thread's call collect another thread's callbacks.
//! - **Closing.** Dropping a connection closes the socket; the executive then releases
//!   everything the connection held (a CPG process leaves its groups with
//!   [`Reason::ProcDown`]). If the executive goes away, the next operation fails with
//!   [`Error::Closed`].
//!
//! The socket path is [`default_socket`]: `$OPENAIS_IPC_SOCKET`, else [`DEFAULT_SOCKET`].
//!
//! # Shared memory
//!
//! Unless told otherwise ([`Transport::Seqpacket`], or `OPENAIS_IPC_TRANSPORT=seqpacket` in
//! the environment: [`default_transport`]), a connection moves its packets to two
//! shared-memory rings right after `Hello` ([`dataplane::shm`]: an anonymous sealed `memfd`
//! passed over the socket, one ring each way). Requests and answers then cost no system call
//! and no kernel copy; the socket stays for wake-ups, sent only to a side that sleeps, and
//! still shows the executive's death as a closed connection. When the executive refuses
//! (configured with `aisexec.ipc_transport = "seqpacket"`, or an older executive), the
//! connection stays on the socket: [`Connection::transport`] says which. Nothing else
//! changes for the application: the same calls, answers, callbacks, `TRY_AGAIN` and
//! descriptor ([`Connection::has_queued`] also looks at the ring, and arms the wake-up, so
//! "check `has_queued`, then poll the descriptor" still never sleeps on a waiting packet).
//! Packets are read out of the ring into 16 KiB buffers that the `Bytes` in callbacks share
//! ([`dataplane::shm::Reader::try_read_shared`]): no allocation per callback, but data kept
//! alive keeps its buffer; copy what you keep long.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use ais_client::{self as client, cpg::{Cpg, CpgEvent}, Guarantee};
//!
//! # fn main() -> Result<(), client::Error> {
//! let mut cpg = Cpg::connect(&client::default_socket())?;
//! cpg.join(b"my-group")?;
//! cpg.mcast_retry(b"my-group", Guarantee::Agreed, b"hello", Duration::from_secs(1))?;
//! while let Some(event) = cpg.dispatch(Some(Duration::from_secs(5)))? {
//!     match event {
//!         CpgEvent::Deliver { sender, data, .. } => {
//!             println!("{}/{} sent {} bytes", sender.node, sender.pid, data.len());
//!         }
//!         CpgEvent::ConfChg { members, .. } => println!("{} members", members.len()),
//!     }
//! }
//! cpg.leave(b"my-group")?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod amf;
pub mod ckpt;
pub mod clm;
pub mod cpg;
pub mod evs;
pub mod evt;
pub mod lck;
pub mod msg;
pub mod quorum;

use std::collections::VecDeque;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dataplane::shm::{self, RingError, Segment};
use dataplane::unix::{Recv, SeqpacketConn};

use ais_proto::ipc::{
    Encoded, Frame, Kind, MAX_PACKET, Message, Request, SOCKET_BUFFER, VERSION, WAKE,
    shm_setup_request,
};

pub use ais_proto::admin::AdminProtocol;
pub use ais_proto::clm::ClmProtocol;
pub use ais_proto::cpg::{CpgAddress, CpgProtocol, Reason};
pub use ais_proto::evs::{ConfKind, EvsProtocol};
pub use ais_proto::ipc::{
    AisError, Guarantee, MAX_GROUP_NAME, MAX_PAYLOAD, Protocol, Reply, Status, check_group,
};
pub use ais_proto::quorum::QuorumProtocol;

/// A connection for administration (`aisctl status`, `aisctl rekey`).
pub type Admin = Connection<AdminProtocol>;

/// Where `aisexec` listens unless configured otherwise.
pub const DEFAULT_SOCKET: &str = "/run/openais/aisexec.sock";

/// The environment variable that overrides [`DEFAULT_SOCKET`].
pub const SOCKET_ENV: &str = "OPENAIS_IPC_SOCKET";

/// The executive's socket path: the environment variable `OPENAIS_IPC_SOCKET` if it is set
/// and not empty, else [`DEFAULT_SOCKET`].
pub fn default_socket() -> PathBuf {
    match std::env::var_os(SOCKET_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_SOCKET),
    }
}

/// The environment variable that chooses the transport ([`default_transport`]).
pub const TRANSPORT_ENV: &str = "OPENAIS_IPC_TRANSPORT";

/// How a connection carries its packets once connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Shared-memory rings, if the executive agrees (else the socket).
    Shm,
    /// The `SOCK_SEQPACKET` socket.
    Seqpacket,
}

/// The transport [`Connection::connect`] asks for: [`Transport::Seqpacket`] when
/// `OPENAIS_IPC_TRANSPORT` is `seqpacket`, else [`Transport::Shm`].
pub fn default_transport() -> Transport {
    match std::env::var_os(TRANSPORT_ENV) {
        Some(v) if v == "seqpacket" => Transport::Seqpacket,
        _ => Transport::Shm,
    }
}

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The executive (or the library, for arguments it can check itself) refused the request
    /// with an SA Forum error code. [`AisError::TryAgain`] means "not now, nothing was done".
    #[error("{0}")]
    Ais(#[from] AisError),
    /// The socket failed (no executive at the path, permission denied, …).
    #[error("cannot reach aisexec: {0}")]
    Io(#[from] io::Error),
    /// The executive closed the connection.
    #[error("aisexec closed the connection")]
    Closed,
    /// The executive sent something this library cannot decode or did not expect.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl Error {
    /// Whether this is [`AisError::TryAgain`]: retry later, nothing was done.
    pub fn is_try_again(&self) -> bool {
        matches!(self, Error::Ais(AisError::TryAgain))
    }

    /// The SA Forum error code, if this is one.
    pub fn ais_error(&self) -> Option<AisError> {
        match self {
            Error::Ais(e) => Some(*e),
            _ => None,
        }
    }
}

/// One connection to the executive, for service `P` ([`CpgProtocol`], [`EvsProtocol`],
/// [`AdminProtocol`]). Requests are answered in order; callbacks that arrive while waiting
/// for an answer are queued and returned by [`next_callback`](Self::next_callback). See the
/// [module documentation](self).
#[derive(Debug)]
pub struct Connection<P: Protocol> {
    sock: SeqpacketConn,
    /// Number of the next request.
    next_id: u64,
    /// Callbacks received while a call waited for its answer, oldest first.
    queued: VecDeque<P::Callback>,
    /// Receive buffer, [`MAX_PACKET`] bytes, allocated once.
    buf: Vec<u8>,
    /// A call failed after its request was sent, so an answer may still be on its way and
    /// later answers cannot be matched: every further call fails.
    out_of_step: bool,
    /// Tags of notifications ([`notify`](Self::notify)) the executive refused, oldest first.
    refused: Vec<u32>,
    /// The rings, once the executive agreed to shared memory.
    shm: Option<Box<ClientShm>>,
    service: PhantomData<fn() -> P>,
}

/// The client's ends of its rings.
#[derive(Debug)]
struct ClientShm {
    writer: shm::Writer,
    reader: shm::Reader,
    /// The buffers packets from the ring are read into, shared by the packets they hold
    /// ([`shm::Reader::try_read_shared`]): no allocation per packet.
    bufs: shm::ReadBuffers,
}

/// A ring the executive broke.
fn ring_error(e: RingError) -> Error {
    Error::Protocol(format!("shared-memory ring: {e}"))
}

/// Request ids with this bit are notifications: the executive does not answer them, and an
/// answer to one is a refusal. The low 32 bits are the sender's tag.
const NOTIFY_BIT: u64 = 1 << 63;

/// A packet from the executive, decoded for service `P`.
enum Incoming<P: Protocol> {
    Answer(u64, Reply<P::Response>),
    Callback(P::Callback),
}

impl<P: Protocol> Connection<P> {
    /// Connects to the executive at `path` and announces the service (`Hello`). Raises the
    /// socket buffers to [`SOCKET_BUFFER`] so that packets of up to [`MAX_PACKET`] bytes fit.
    ///
    /// # Errors
    /// [`Error::Io`] when the socket cannot be reached (its message names the path; "is
    /// aisexec running?" when there is no socket file); [`Error::Ais`] when the executive
    /// refuses the connection ([`AisError::Version`] for an incompatible library,
    /// [`AisError::NotSupported`] for a service it does not run).
    pub fn connect(path: &Path) -> Result<Connection<P>, Error> {
        Connection::connect_with(path, default_transport())
    }

    /// As [`connect`](Self::connect), with the transport chosen by the caller.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn connect_with(path: &Path, transport: Transport) -> Result<Connection<P>, Error> {
        let sock = SeqpacketConn::connect(path)?;
        let mut conn = Connection::from_socket(sock)?;
        if transport == Transport::Shm {
            conn.try_shared_memory()?;
        }
        Ok(conn)
    }

    /// The transport in use: [`Transport::Shm`] only when the executive agreed.
    pub fn transport(&self) -> Transport {
        if self.shm.is_some() {
            Transport::Shm
        } else {
            Transport::Seqpacket
        }
    }

    /// Offers the executive a new segment; stays on the socket when it (or the system)
    /// refuses.
    fn try_shared_memory(&mut self) -> Result<(), Error> {
        let Ok(seg) = Segment::create(shm::DEFAULT_RING_BYTES) else {
            // No memfd here (seccomp, an old kernel): the socket works.
            return Ok(());
        };
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let packet = shm_setup_request(id, shm::DEFAULT_RING_BYTES as u32);
        self.sock
            .send_with_fd(&[&packet], seg.fd())
            .map_err(closed_or_io)?;
        match self.wait_response(id) {
            Ok(Reply::Ok) => {
                let seg = Arc::new(seg);
                let (writer, reader) = seg.client_ends();
                self.shm = Some(Box::new(ClientShm {
                    writer,
                    reader,
                    bufs: shm::ReadBuffers::new(),
                }));
                Ok(())
            }
            // Refused (configured off, a limit): the socket it is.
            Ok(Reply::Error(_)) => Ok(()),
            Ok(other) => Err(unexpected("shared-memory setup", &other)),
            Err(e) => {
                self.out_of_step = true;
                Err(e)
            }
        }
    }

    /// Uses an already connected socket (for example one end of [`SeqpacketConn::pair`]):
    /// raises its buffers and announces the service, as [`connect`](Self::connect) does.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn from_socket(sock: SeqpacketConn) -> Result<Connection<P>, Error> {
        sock.set_buffer_sizes(SOCKET_BUFFER, SOCKET_BUFFER)?;
        let mut conn = Connection {
            sock,
            next_id: 1,
            queued: VecDeque::new(),
            buf: vec![0; MAX_PACKET],
            out_of_step: false,
            refused: Vec::new(),
            shm: None,
            service: PhantomData,
        };
        let hello = Request::Hello {
            version: VERSION,
            service: P::ID,
        };
        match conn.exchange(&hello, &[])? {
            Reply::Ok => Ok(conn),
            other => Err(unexpected("Hello", &other)),
        }
    }

    /// Sends one of the service's requests and waits for its answer, queueing the callbacks
    /// that arrive first. An answer of [`Reply::Error`] becomes `Err(Error::Ais(..))`.
    ///
    /// # Errors
    /// [`Error::Ais`] when the executive refuses the request; [`Error::Closed`] when it
    /// closed the connection; [`Error::Protocol`] for an undecodable packet or an answer to
    /// another request (after which the connection is out of step and every further call
    /// fails: reconnect); [`Error::Io`] when the socket fails.
    pub fn call(&mut self, req: P::Request) -> Result<Reply<P::Response>, Error> {
        self.exchange(&Request::Service(req), &[])
    }

    /// As [`call`](Self::call), with `payload` sent after the encoded request in the same
    /// packet, without copying it: `req` must carry an empty payload (its last field), whose
    /// place is the packet's tail.
    pub(crate) fn call_with_payload(
        &mut self,
        req: P::Request,
        payload: &[u8],
    ) -> Result<Reply<P::Response>, Error> {
        self.exchange(&Request::Service(req), payload)
    }

    fn exchange(
        &mut self,
        req: &Request<P::Request>,
        payload: &[u8],
    ) -> Result<Reply<P::Response>, Error> {
        let id = self.next_request()?;
        let Encoded { head, tail } = Encoded::request(id, req);
        debug_assert!(tail.is_empty() || payload.is_empty(), "payload given twice");
        self.exchange_parts(id, &[&head, &tail, payload])
    }

    /// As [`call`](Self::call), for a request the caller encodes itself as gather parts,
    /// sent without being copied into one buffer first: `head(id)` gives the packet's first
    /// bytes for request number `id` (header included), `rest` follows it.
    pub(crate) fn call_parts(
        &mut self,
        head: impl FnOnce(u64) -> Vec<u8>,
        rest: &[&[u8]],
    ) -> Result<Reply<P::Response>, Error> {
        let id = self.next_request()?;
        let head = head(id);
        let mut parts = Vec::with_capacity(rest.len() + 1);
        parts.push(head.as_slice());
        parts.extend_from_slice(rest);
        self.exchange_parts(id, &parts)
    }

    /// The number for the next request; refused once the connection is out of step.
    fn next_request(&mut self) -> Result<u64, Error> {
        if self.out_of_step {
            return Err(Error::Protocol(
                "an earlier request failed while waiting for its answer; reconnect".to_owned(),
            ));
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        Ok(id)
    }

    /// Sends request `id`, made of `parts`, and waits for its answer.
    fn exchange_parts(&mut self, id: u64, parts: &[&[u8]]) -> Result<Reply<P::Response>, Error> {
        if parts.iter().map(|p| p.len()).sum::<usize>() > MAX_PACKET {
            return Err(Error::Ais(AisError::TooBig));
        }
        self.send_packet(parts)?;
        let result = self.wait_response(id);
        // After `Closed` every send fails with `Closed` anyway.
        if matches!(result, Err(Error::Protocol(_) | Error::Io(_))) {
            self.out_of_step = true;
        }
        match result? {
            Reply::Error(e) => Err(Error::Ais(e)),
            resp => Ok(resp),
        }
    }

    /// Sends a request the executive does not answer (a service documents which) and does
    /// not wait. Should the executive refuse it all the same (it answers an error, say
    /// `TRY_AGAIN` while it holds too many requests during a sync), `tag` is kept for
    /// [`take_refused`](Self::take_refused).
    ///
    /// # Errors
    /// [`Error::Closed`] or [`Error::Io`] when the socket fails; as [`call`](Self::call)
    /// after an earlier call went out of step.
    pub(crate) fn notify(&mut self, req: P::Request, tag: u32) -> Result<(), Error> {
        if self.out_of_step {
            return Err(Error::Protocol(
                "an earlier request failed while waiting for its answer; reconnect".to_owned(),
            ));
        }
        let id = NOTIFY_BIT | ((self.next_id & 0x7fff_ffff) << 32) | u64::from(tag);
        self.next_id = self.next_id.wrapping_add(1);
        let Encoded { head, tail } = Encoded::request(id, &Request::Service(req));
        self.send_packet(&[&head, &tail])
    }

    /// Sends one packet: on the socket, or into the request ring (waking the executive if it
    /// sleeps; waiting for room if the ring is full).
    fn send_packet(&mut self, parts: &[&[u8]]) -> Result<(), Error> {
        let Some(shm) = self.shm.as_mut() else {
            return self.sock.send(parts).map_err(closed_or_io);
        };
        let len = parts.iter().map(|p| p.len()).sum();
        let mut wake = [0u8; 16];
        loop {
            if shm.writer.try_write(parts).map_err(ring_error)? {
                if shm.writer.wake_needed() {
                    self.sock.send(&[&WAKE]).map_err(closed_or_io)?;
                }
                return Ok(());
            }
            if shm.writer.wait_for_space(len).map_err(ring_error)?
                && self.sock.recv(&mut wake)? == Recv::Closed
            {
                return Err(Error::Closed);
            }
        }
    }

    /// The next packet from the executive, waiting up to `timeout` (`None`: forever);
    /// `Ok(None)` when the time passed first.
    fn receive(&mut self, timeout: Option<Duration>) -> Result<Option<Incoming<P>>, Error> {
        let Some(shm) = self.shm.as_mut() else {
            let Some(recv) = self.sock.recv_timeout(&mut self.buf, timeout)? else {
                return Ok(None);
            };
            return self.packet(recv).map(Some);
        };
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut wake = [0u8; 16];
        loop {
            if let Some(record) = shm
                .reader
                .try_read_shared(&mut shm.bufs)
                .map_err(ring_error)?
            {
                if shm.reader.space_wake_needed() {
                    self.sock.send(&[&WAKE]).map_err(closed_or_io)?;
                }
                return decode_packet(record).map(Some);
            }
            // Empty: drop wake-ups already read about, ask for one, look again, sleep.
            while let Some(r) = self.sock.try_recv(&mut wake)? {
                if r == Recv::Closed {
                    return Err(Error::Closed);
                }
            }
            if !shm.reader.prepare_sleep().map_err(ring_error)? {
                continue;
            }
            let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match self.sock.recv_timeout(&mut wake, wait)? {
                None => return Ok(None),
                Some(Recv::Closed) => return Err(Error::Closed),
                Some(_) => {}
            }
        }
    }

    /// The tags of the notifications the executive refused since the last look.
    pub(crate) fn take_refused(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.refused)
    }

    /// Receives until the answer to request `id` arrives, queueing callbacks.
    fn wait_response(&mut self, id: u64) -> Result<Reply<P::Response>, Error> {
        loop {
            let Some(incoming) = self.receive(None)? else {
                continue;
            };
            match incoming {
                Incoming::Answer(got, resp) if got == id => return Ok(resp),
                Incoming::Answer(got, _) if got & NOTIFY_BIT != 0 => {
                    self.refused.push(got as u32);
                }
                Incoming::Answer(got, resp) => {
                    return Err(Error::Protocol(format!(
                        "answer {} to request {got} while waiting for request {id}",
                        resp.name()
                    )));
                }
                Incoming::Callback(cb) => self.queued.push_back(cb),
            }
        }
    }

    /// Decodes what one receive got into the buffer.
    fn packet(&self, recv: Recv) -> Result<Incoming<P>, Error> {
        let n = match recv {
            Recv::Packet(n) => n,
            Recv::Truncated(n) => {
                return Err(Error::Protocol(format!(
                    "packet of {n} bytes, larger than the {MAX_PACKET} allowed"
                )));
            }
            Recv::Closed => return Err(Error::Closed),
        };
        decode_packet(Bytes::copy_from_slice(&self.buf[..n]))
    }

    /// The next callback: a queued one first, else waits up to `timeout` for one (`None`:
    /// forever; `Some(Duration::ZERO)`: only looks). `Ok(None)` when the time passes first.
    ///
    /// # Errors
    /// [`Error::Closed`] when the executive closed the connection; [`Error::Protocol`] for an
    /// undecodable packet or an answer when no request is outstanding; [`Error::Io`] when
    /// the socket fails.
    pub fn next_callback(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Option<P::Callback>, Error> {
        if let Some(cb) = self.queued.pop_front() {
            return Ok(Some(cb));
        }
        loop {
            let Some(incoming) = self.receive(timeout)? else {
                return Ok(None);
            };
            match incoming {
                Incoming::Callback(cb) => return Ok(Some(cb)),
                Incoming::Answer(id, _) if id & NOTIFY_BIT != 0 => {
                    // A refused notification: nothing for the caller; the wait goes on (a
                    // rare event, so the timeout is not shortened for it).
                    self.refused.push(id as u32);
                }
                Incoming::Answer(id, resp) => {
                    return Err(Error::Protocol(format!(
                        "answer {} to request {id} with no request outstanding",
                        resp.name()
                    )));
                }
            }
        }
    }

    /// Whether callbacks received during calls wait in the queue (or, on shared memory,
    /// packets wait in the ring). They are not visible through the descriptor: a poll loop
    /// checks this before sleeping on it. On shared memory a `false` also asks the
    /// executive to wake the descriptor for the next packet.
    pub fn has_queued(&self) -> bool {
        !self.queued.is_empty()
            || self
                .shm
                .as_ref()
                .is_some_and(|s| !s.reader.prepare_sleep().unwrap_or(false))
    }

    /// The executive's ring, membership and counters (`aisctl status`); every connection
    /// may ask.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub fn status(&mut self) -> Result<Status, Error> {
        match self.exchange(&Request::Status, &[])? {
            Reply::Status(s) => Ok(s),
            other => Err(unexpected("Status", &other)),
        }
    }

    /// A request answered by `Ok`.
    pub(crate) fn ok(&mut self, req: P::Request) -> Result<(), Error> {
        let what = req.name();
        match self.call(req)? {
            Reply::Ok => Ok(()),
            other => Err(unexpected(what, &other)),
        }
    }
}

impl Connection<AdminProtocol> {
    /// Replaces the cluster's frame key with a new epoch (`aisctl rekey`). Returns once this
    /// node seals with the new epoch; every member switches at the same point of the total
    /// order and rewrites its key file.
    ///
    /// # Errors
    /// `SA_AIS_ERR_NOT_SUPPORTED` with secauth off; `SA_AIS_ERR_TRY_AGAIN` while a rekey is
    /// completing or Totem's queue is full; `SA_AIS_ERR_BAD_OPERATION` when a concurrent rekey
    /// from another node won.
    pub fn rekey(&mut self) -> Result<(), Error> {
        self.ok(ais_proto::admin::Request::Rekey)
    }

    /// Takes this node's network `net` out of use (`enabled` false) or puts it back
    /// (redundant rings: `aisctl ring disable|enable N`). Only this node stops sending on it;
    /// the others see its copies go missing there and mark the network faulty on their side
    /// until it is enabled again.
    ///
    /// # Errors
    /// `SA_AIS_ERR_INVALID_PARAM` for a network this node does not have, or the last one in
    /// use; `SA_AIS_ERR_TRY_AGAIN` when the Totem thread did not answer.
    pub fn set_network(&mut self, net: u8, enabled: bool) -> Result<(), Error> {
        self.ok(ais_proto::admin::Request::SetNetwork { net, enabled })
    }
}

impl<P: Protocol> AsRawFd for Connection<P> {
    /// The socket, readable when the executive has sent something. Callbacks already queued
    /// ([`Connection::has_queued`]) do not show here.
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl<P: Protocol> AsFd for Connection<P> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// Decodes one packet from the executive.
fn decode_packet<P: Protocol>(bytes: Bytes) -> Result<Incoming<P>, Error> {
    let n = bytes.len();
    let undecodable = |e| Error::Protocol(format!("undecodable packet of {n} bytes: {e}"));
    let frame = Frame::decode(bytes).map_err(undecodable)?;
    match frame.kind {
        Kind::Response => Ok(Incoming::Answer(
            frame.id,
            frame.body().map_err(undecodable)?,
        )),
        Kind::Callback => Ok(Incoming::Callback(frame.body().map_err(undecodable)?)),
        Kind::Request => Err(Error::Protocol("the executive sent a request".to_owned())),
    }
}

/// A failed send: the peer's close becomes [`Error::Closed`].
fn closed_or_io(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Error::Closed
    } else {
        Error::Io(e)
    }
}

/// The error for an answer of the wrong kind to request `what`.
pub(crate) fn unexpected<R: Message>(what: &str, resp: &Reply<R>) -> Error {
    Error::Protocol(format!("unexpected answer {} to {what}", resp.name()))
}

/// A fake executive for the tests of this module and the services'.
#[cfg(test)]
pub(crate) mod fake {
    use std::thread::{self, JoinHandle};

    use super::*;

    /// The executive's end of a test connection for service `P`.
    pub(crate) struct Exec<P: Protocol> {
        pub(crate) sock: SeqpacketConn,
        service: PhantomData<fn() -> P>,
    }

    impl<P: Protocol> Exec<P> {
        pub(crate) fn new(sock: SeqpacketConn) -> Exec<P> {
            Exec {
                sock,
                service: PhantomData,
            }
        }

        pub(crate) fn reply(&self, id: u64, resp: Reply<P::Response>) {
            self.send(&Encoded::reply(id, &resp));
        }

        pub(crate) fn callback(&self, cb: P::Callback) {
            self.send(&Encoded::callback(&cb));
        }

        pub(crate) fn send(&self, p: &Encoded) {
            self.sock.send(&[&p.head, &p.tail]).unwrap();
        }
    }

    /// The fake executive's thread, returning the requests it saw.
    pub(crate) type Seen<R> = JoinHandle<Vec<R>>;

    /// Starts a fake executive in a thread: it answers `Hello` for `P` with `Ok`, then hands
    /// every request to `handle`, which answers through the `Exec` and returns `false` to
    /// close the connection. The thread returns the requests it saw after `Hello`, once the
    /// client closes (or `handle` returns false).
    pub(crate) fn start<P, F>(mut handle: F) -> (Connection<P>, Seen<Request<P::Request>>)
    where
        P: Protocol + 'static,
        P::Request: Clone + Send,
        F: FnMut(&Exec<P>, u64, Request<P::Request>) -> bool + Send + 'static,
    {
        let (client, server) = SeqpacketConn::pair().unwrap();
        server
            .set_buffer_sizes(SOCKET_BUFFER, SOCKET_BUFFER)
            .unwrap();
        let thread = thread::spawn(move || {
            let exec = Exec::<P>::new(server);
            let mut buf = vec![0; MAX_PACKET];
            let mut seen = Vec::new();
            loop {
                let n = match exec.sock.recv(&mut buf).unwrap() {
                    Recv::Packet(n) => n,
                    Recv::Closed => return seen,
                    Recv::Truncated(n) => panic!("truncated request of {n} bytes"),
                };
                let frame = Frame::decode(Bytes::copy_from_slice(&buf[..n])).unwrap();
                assert_eq!(frame.kind, Kind::Request, "the client sent a non-request");
                let req: Request<P::Request> = frame.body().unwrap();
                if let Request::Hello { version, service } = req {
                    assert_eq!((version, service), (VERSION, P::ID));
                    exec.reply(frame.id, Reply::Ok);
                    continue;
                }
                seen.push(req.clone());
                if !handle(&exec, frame.id, req) {
                    return seen;
                }
            }
        });
        let conn = Connection::from_socket(client).unwrap();
        (conn, thread)
    }

    /// [`start`], for a handler that sees only the service's own requests (a `Status`
    /// request fails the test).
    pub(crate) fn start_service<P, F>(mut handle: F) -> (Connection<P>, JoinHandle<Vec<P::Request>>)
    where
        P: Protocol + 'static,
        P::Request: Clone + Send,
        F: FnMut(&Exec<P>, u64, P::Request) -> bool + Send + 'static,
    {
        let (conn, server) = start::<P, _>(move |exec, id, req| match req {
            Request::Service(r) => handle(exec, id, r),
            other => panic!("{other:?}"),
        });
        let server = thread::spawn(move || {
            let seen = server.join().unwrap();
            seen.into_iter()
                .map(|r| match r {
                    Request::Service(r) => r,
                    other => panic!("{other:?}"),
                })
                .collect()
        });
        (conn, server)
    }
}

#[cfg(test)]
mod tests {
    use super::fake::start;
    use super::*;
    use ais_proto::cpg::Callback;

    fn deliver(n: u8) -> Callback {
        Callback::Deliver {
            group: Bytes::from_static(b"g"),
            sender: CpgAddress { node: 1, pid: 2 },
            data: Bytes::from(vec![n]),
        }
    }

    #[test]
    fn call_returns_its_answer_and_queues_earlier_callbacks_in_order() {
        let (mut conn, server) = start::<CpgProtocol, _>(|exec, id, req| {
            assert_eq!(req, Request::Status);
            exec.callback(deliver(1));
            exec.callback(deliver(2));
            exec.reply(
                id,
                Reply::Status(Status {
                    node: 7,
                    ..Status::default()
                }),
            );
            exec.callback(deliver(3));
            true
        });
        assert!(!conn.has_queued());
        assert_eq!(conn.status().unwrap().node, 7);
        assert!(conn.has_queued());
        for n in 1..=3 {
            assert_eq!(conn.next_callback(None).unwrap(), Some(deliver(n)));
        }
        assert!(!conn.has_queued());
        assert_eq!(conn.next_callback(Some(Duration::ZERO)).unwrap(), None);
        drop(conn);
        assert_eq!(server.join().unwrap(), vec![Request::Status]);
    }

    #[test]
    fn an_error_answer_becomes_an_ais_error() {
        let (mut conn, _server) = start::<AdminProtocol, _>(|exec, id, _| {
            exec.reply(id, Reply::Error(AisError::TryAgain));
            true
        });
        let err = conn.rekey().unwrap_err();
        assert!(err.is_try_again(), "{err}");
        assert_eq!(err.ais_error(), Some(AisError::TryAgain));
        assert_eq!(err.to_string(), "SA_AIS_ERR_TRY_AGAIN");
        // The connection is still in step.
        assert!(conn.status().unwrap_err().is_try_again());
    }

    #[test]
    fn an_error_code_this_build_does_not_know_is_kept() {
        let (mut conn, _server) = start::<AdminProtocol, _>(|exec, id, _| {
            exec.reply(id, Reply::Error(AisError::Unknown(31)));
            true
        });
        assert_eq!(
            conn.status().unwrap_err().ais_error(),
            Some(AisError::Unknown(31))
        );
    }

    #[test]
    fn an_answer_to_another_request_is_a_protocol_error() {
        let (mut conn, _server) = start::<AdminProtocol, _>(|exec, id, _| {
            exec.reply(id + 5, Reply::Ok);
            true
        });
        let err = conn.status().unwrap_err();
        assert!(matches!(err, Error::Protocol(_)), "{err}");
        assert!(
            err.to_string().contains("while waiting for request"),
            "{err}"
        );
        // Out of step from now on, without sending anything.
        assert!(matches!(conn.status(), Err(Error::Protocol(_))));
    }

    #[test]
    fn an_unasked_answer_is_a_protocol_error() {
        let (mut conn, _server) = start::<AdminProtocol, _>(|exec, id, _| {
            exec.reply(id, Reply::Ok);
            exec.reply(id, Reply::Ok);
            true
        });
        conn.rekey().unwrap();
        let err = conn.next_callback(None).unwrap_err();
        assert!(matches!(err, Error::Protocol(_)), "{err}");
        assert!(err.to_string().contains("no request outstanding"), "{err}");
    }

    #[test]
    fn a_callback_of_another_service_is_a_protocol_error() {
        let (mut conn, _server) = start::<CpgProtocol, _>(|_, _, _| true);
        let (client, server) = SeqpacketConn::pair().unwrap();
        conn.sock = client;
        // EVS's configuration callback is op 4, which CPG's callbacks do not have.
        fake::Exec::<EvsProtocol>::new(server).callback(ais_proto::evs::Callback::ConfChg {
            kind: ConfKind::Regular,
            ring: Bytes::from_static(b"1.4"),
            members: vec![1],
            left: vec![],
            joined: vec![],
        });
        let err = conn.next_callback(None).unwrap_err();
        assert!(err.to_string().contains("unknown cpg operation 4"), "{err}");
    }

    #[test]
    fn a_closed_connection_is_reported() {
        let (mut conn, server) = start::<AdminProtocol, _>(|_, _, _| false);
        // Closed while waiting for the answer.
        assert!(matches!(conn.status(), Err(Error::Closed)));
        server.join().unwrap();
        // Closed when sending.
        assert!(matches!(conn.status(), Err(Error::Closed)));
        // Closed when waiting for callbacks.
        assert!(matches!(conn.next_callback(None), Err(Error::Closed)));
        assert!(matches!(
            conn.next_callback(Some(Duration::ZERO)),
            Err(Error::Closed)
        ));
    }

    #[test]
    fn connections_can_move_to_another_thread() {
        fn send<T: Send>() {}
        send::<Admin>();
        send::<cpg::Cpg>();
        send::<evs::Evs>();
    }

    #[test]
    fn polling_with_nothing_there_returns_none() {
        let (mut conn, _server) = start::<CpgProtocol, _>(|_, _, _| true);
        assert_eq!(conn.next_callback(Some(Duration::ZERO)).unwrap(), None);
        assert_eq!(
            conn.next_callback(Some(Duration::from_millis(10))).unwrap(),
            None
        );
    }

    #[test]
    fn a_refused_hello_fails_the_connection() {
        let (client, server) = SeqpacketConn::pair().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = vec![0; MAX_PACKET];
            let Recv::Packet(n) = server.recv(&mut buf).unwrap() else {
                panic!()
            };
            let frame = Frame::decode(Bytes::copy_from_slice(&buf[..n])).unwrap();
            let req: Request<ais_proto::evs::Request> = frame.body().unwrap();
            assert_eq!(
                req,
                Request::Hello {
                    version: VERSION,
                    service: EvsProtocol::ID,
                }
            );
            fake::Exec::<EvsProtocol>::new(server).reply(frame.id, Reply::Error(AisError::Version));
        });
        let err = Connection::<EvsProtocol>::from_socket(client).unwrap_err();
        assert_eq!(err.ais_error(), Some(AisError::Version));
        t.join().unwrap();
    }

    #[test]
    fn a_truncated_or_garbled_packet_is_a_protocol_error() {
        let (mut conn, _server) = start::<AdminProtocol, _>(|_, _, _| true);
        let (client, server) = SeqpacketConn::pair().unwrap();
        server.set_buffer_sizes(4 << 20, 4 << 20).unwrap();
        conn.sock = client;
        server.send(&[&vec![1u8; MAX_PACKET + 1]]).unwrap();
        let err = conn.next_callback(None).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("packet of {} bytes", MAX_PACKET + 1)),
            "{err}"
        );
        server.send(&[b"garbage-garbage"]).unwrap();
        let err = conn.next_callback(None).unwrap_err();
        assert!(err.to_string().contains("undecodable"), "{err}");
    }

    #[test]
    fn connect_names_the_missing_socket() {
        let path = Path::new("/nonexistent-openais-test/aisexec.sock");
        let err = Admin::connect(path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Io(_)), "{msg}");
        assert!(msg.contains("aisexec.sock"), "{msg}");
    }

    #[test]
    fn the_default_socket_is_the_variable_or_the_constant() {
        let p = default_socket();
        match std::env::var_os(SOCKET_ENV) {
            Some(v) if !v.is_empty() => assert_eq!(p, PathBuf::from(v)),
            _ => assert_eq!(p, Path::new(DEFAULT_SOCKET)),
        }
    }
}
