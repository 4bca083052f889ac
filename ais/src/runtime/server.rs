//! The client IPC server: one thread (`ipc`) runs an `epoll` loop over the listening Unix
//! SEQPACKET socket, every client connection and a waker. It accepts connections and checks
//! each peer's credentials, reads requests and checks their header into [`Input::Request`]
//! (the executive core has the connection's service decode the body), and sends the
//! packets the executive queued for each connection. No thread per client: a client costs a
//! descriptor and its queues.
//!
//! Who may connect ([`Access`]): root, the user `aisexec` runs as, and members (primary or
//! supplementary) of the configured group. Everyone else is refused and logged with pid, uid
//! and gid; the socket file is also created mode 0660 so the filesystem agrees.
//!
//! Limits with defined outcomes: a packet whose header does not decode, that is not a request,
//! or is larger than [`MAX_PACKET`], disconnects the client (logged; a request of another protocol version is
//! answered `SA_AIS_ERR_VERSION` first); a client may have at most [`MAX_INFLIGHT`] requests
//! waiting for the executive (the loop stops reading its socket until they are handled, so the
//! kernel socket buffer pushes back on the client); a client that does not read its answers
//! and callbacks is disconnected by the executive once [`super::OUTBOX_PACKETS`] are queued
//! for it (`aisexec.ipc_outbox_packets`; its outbox is bounded by the executive, which counts
//! what it queued against what this loop took, [`ConnLink::taken`]; the socket's own buffer
//! comes first). Before that, a client that reads slowly but reads holds the senders with
//! TRY_AGAIN ([`ais_core::exec::flow`]).
//!
//! **Shared memory.** A client may move its packets to two shared-memory rings
//! ([`dataplane::shm`]): it sends a setup request ([`OP_SHM_SETUP`]) with a sealed `memfd`
//! attached, which the loop checks (a memfd sealed against resizing, the size its ring size
//! implies, a ring large enough for the largest packet) and maps, on the connection whose
//! credentials were checked when it was accepted. Refusals are answered with an error and
//! logged; the connection then goes on over the socket. Accepted, every packet both ways
//! goes through the rings and the socket carries one-byte wake-ups, sent only when the peer
//! sleeps; the loop reads a client's ring under the same [`MAX_INFLIGHT`] limit, writes its
//! outbox into the other ring (a full ring waits for the client's wake-up, and the bounded
//! outbox behind it disconnects a client that does not read, as on the socket), and treats
//! every index and length in the segment as hostile: a corrupt ring disconnects that client
//! with the reason logged. With `aisexec.ipc_transport = "seqpacket"` setups are refused
//! (`SA_AIS_ERR_NOT_SUPPORTED`) and every client stays on its socket.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::Sender;
use dataplane::epoll::{Epoll, Interest, Ready};
use dataplane::shm::{self, Segment};
use dataplane::unix::{PeerCred, Recv, SeqpacketConn, SeqpacketListener};
use dataplane::wake::Waker;
use tracing::{debug, info, warn};

use super::{ConnId, Input, Outgoing};
use ais_proto::codec::DecodeError;
use ais_proto::ipc::{
    AisError, Encoded, Frame, Kind, MAX_PACKET, Nothing, OP_SHM_SETUP, Reply, SOCKET_BUFFER,
    VERSION, WAKE, decode_shm_setup, request_id,
};

/// Most requests of one client read but not yet handled by the executive.
pub const MAX_INFLIGHT: usize = 64;

/// Who may connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The user aisexec runs as (besides root, always allowed).
    pub own_uid: u32,
    /// A group whose members may connect.
    pub group: Option<(String, u32)>,
}

impl Access {
    /// Whether a peer may connect (`groups`: its supplementary groups).
    pub fn allows(&self, cred: &PeerCred, groups: &[u32]) -> bool {
        cred.uid == 0
            || cred.uid == self.own_uid
            || self
                .group
                .as_ref()
                .is_some_and(|(_, gid)| cred.gid == *gid || groups.contains(gid))
    }
}

/// Finds a group's id in `/etc/group`.
///
/// # Errors
/// The file cannot be read, or has no such group.
pub fn group_id(name: &str) -> io::Result<u32> {
    group_id_in(Path::new("/etc/group"), name)
}

fn group_id_in(file: &Path, name: &str) -> io::Result<u32> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", file.display())))?;
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let n = f.next()?;
            let _pw = f.next()?;
            let gid = f.next()?.parse().ok()?;
            (n == name).then_some(gid)
        })
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no group named {name:?} in {}", file.display()),
            )
        })
}

/// What the executive thread and the IPC loop share about one connection: the requests read
/// but not yet handled, whether the executive closed it, and the loop's waker (the executive
/// wakes the loop after queueing packets, and when a paused connection may be read again).
#[derive(Debug)]
pub struct ConnLink {
    inflight: AtomicUsize,
    closed: AtomicBool,
    /// Packets were queued since the loop last looked at this connection's outbox: the first
    /// packet after the loop looked wakes it, the ones after it ride along.
    queued: AtomicBool,
    /// Packets and bytes the loop took from the outbox (written to the socket or ring).
    taken_packets: AtomicU64,
    taken_bytes: AtomicU64,
    /// Packets the executive handed over, in order, that the loop has not taken yet: the
    /// executive appends a batch at a time ([`hand_over`](Self::hand_over)), the loop moves
    /// all there is into its own queue; both keep their buffers, so nothing is allocated
    /// per packet or per batch once they have grown.
    outbox: Mutex<Vec<Outgoing>>,
    /// The loop let the connection go: what is handed over now is dropped.
    gone: AtomicBool,
    waker: Waker,
}

impl ConnLink {
    fn new(waker: Waker) -> ConnLink {
        ConnLink {
            inflight: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            queued: AtomicBool::new(false),
            taken_packets: AtomicU64::new(0),
            taken_bytes: AtomicU64::new(0),
            outbox: Mutex::new(Vec::new()),
            gone: AtomicBool::new(false),
            waker,
        }
    }

    /// Packets and bytes the loop has taken from the outbox so far (the executive's count
    /// of what it queued, less these, is the outbox's depth).
    pub fn taken(&self) -> (u64, u64) {
        (
            self.taken_packets.load(Ordering::Acquire),
            self.taken_bytes.load(Ordering::Acquire),
        )
    }

    fn took(&self, packets: u64, bytes: u64) {
        if packets > 0 {
            self.taken_bytes.fetch_add(bytes, Ordering::AcqRel);
            self.taken_packets.fetch_add(packets, Ordering::AcqRel);
        }
    }

    /// One request was handled (the loop reads on if it had stopped at the limit).
    pub fn done(&self) {
        let before = self
            .inflight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .unwrap_or(0);
        if before >= MAX_INFLIGHT {
            self.waker.wake();
        }
    }

    /// Hands `packets` (emptied; its buffer stays with the caller) to the loop, in order
    /// after those handed over before, and wakes the loop if it has not been woken since it
    /// last looked. False when the loop let the connection go (they are dropped).
    pub fn hand_over(&self, packets: &mut Vec<Outgoing>) -> bool {
        if self.gone.load(Ordering::Acquire) {
            packets.clear();
            return false;
        }
        self.outbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .append(packets);
        self.queued();
        true
    }

    /// Moves every packet handed over so far to the end of `queue`.
    fn take_handed(&self, queue: &mut VecDeque<Outgoing>) {
        let mut outbox = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        queue.extend(outbox.drain(..));
    }

    /// Packets were queued: the loop sends them (one wake for a burst of packets).
    fn queued(&self) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// The executive closed the connection: the loop lets it go.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn may_read(&self) -> bool {
        self.inflight.load(Ordering::Acquire) < MAX_INFLIGHT
    }
}

/// The running server. Dropping it stops the loop and removes the socket file; open
/// connections end when the executive drops them.
#[derive(Debug)]
pub struct IpcServer {
    stop: Arc<AtomicBool>,
    waker: Waker,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl IpcServer {
    /// Binds `path` (mode 0660; a stale socket file of a dead executive is replaced) and
    /// starts the loop; connections and their requests go to `tx`. `shared_memory`: whether
    /// clients may move to shared-memory rings (else their setups are refused).
    ///
    /// # Errors
    /// The socket cannot be bound (another executive is listening, permissions, path too
    /// long), or the loop's descriptors cannot be made.
    pub fn start(
        path: &Path,
        access: Access,
        shared_memory: bool,
        tx: Sender<Input>,
    ) -> io::Result<IpcServer> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        }
        let listener = SeqpacketListener::bind(path, 0o660)?;
        let waker = Waker::new()?;
        let epoll = Epoll::new(64)?;
        epoll.add(listener.as_fd(), LISTENER, Interest::READ)?;
        epoll.add(waker.as_fd(), WAKER, Interest::READ)?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut ipc = Loop {
            listener,
            access,
            tx,
            stop: Arc::clone(&stop),
            waker: waker.clone(),
            epoll,
            clients: HashMap::new(),
            buf: vec![0u8; MAX_PACKET],
            shared_memory,
        };
        let thread = thread::Builder::new()
            .name("ipc".into())
            .spawn(move || ipc.run())?;
        info!("clients connect to {}", path.display());
        Ok(IpcServer {
            stop,
            waker,
            thread: Some(thread),
            path: path.to_path_buf(),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for IpcServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Epoll tokens of the listening socket and the waker; connections use their [`ConnId`]
/// (from 1, counted far below these).
const LISTENER: u64 = u64::MAX;
const WAKER: u64 = u64::MAX - 1;

/// One client, as the loop holds it.
struct Client {
    sock: Arc<SeqpacketConn>,
    cred: PeerCred,
    /// Packets taken from [`ConnLink::hand_over`]'s queue, not yet sent.
    outbox: VecDeque<Outgoing>,
    /// A packet the socket had no room for yet (SEQPACKET sends are all or nothing).
    pending: Option<Outgoing>,
    link: Arc<ConnLink>,
    interest: Interest,
    /// The rings, once the client moved to shared memory.
    shm: Option<ShmEnds>,
}

/// The executive's ends of a client's rings.
struct ShmEnds {
    writer: shm::Writer,
    reader: shm::Reader,
    /// Reading stopped at [`MAX_INFLIGHT`] with records left: read on when the executive
    /// caught up (no wake-up will come from the client for those).
    backlog: bool,
}

/// Why a connection ends.
enum End {
    /// Open: go on.
    Open,
    /// Closed (by the client, the executive, or for breaking the protocol; logged already).
    Closed,
}

struct Loop {
    listener: SeqpacketListener,
    access: Access,
    tx: Sender<Input>,
    stop: Arc<AtomicBool>,
    waker: Waker,
    epoll: Epoll,
    clients: HashMap<ConnId, Client>,
    buf: Vec<u8>,
    shared_memory: bool,
}

impl Loop {
    fn run(&mut self) {
        let mut ready: Vec<Ready> = Vec::new();
        while !self.stop.load(Ordering::Acquire) {
            ready.clear();
            if let Err(e) = self
                .epoll
                .wait(&mut ready, Some(Duration::from_millis(500)))
            {
                warn!("waiting for client sockets: {e}");
                thread::sleep(Duration::from_millis(10));
                continue;
            }
            let mut woken = false;
            for r in &ready {
                match r.token {
                    LISTENER => self.accept_all(),
                    WAKER => {
                        self.waker.drain();
                        woken = true;
                    }
                    conn => self.service(conn, r.read || r.hangup, r.hangup),
                }
            }
            if woken {
                // Queued packets, connections the executive closed, reads to resume.
                let conns: Vec<ConnId> = self
                    .clients
                    .iter()
                    .filter(|(_, c)| {
                        // Cleared before the outbox is drained: a packet queued after this
                        // sets it again and wakes the loop again.
                        let queued = c.link.queued.swap(false, Ordering::AcqRel);
                        queued
                            || c.link.closed.load(Ordering::Acquire)
                            || match &c.shm {
                                None => c.interest.read != c.link.may_read(),
                                Some(s) => s.backlog && c.link.may_read(),
                            }
                    })
                    .map(|(conn, _)| *conn)
                    .collect();
                for conn in conns {
                    self.service(conn, false, false);
                }
            }
        }
    }

    fn accept_all(&mut self) {
        loop {
            let (sock, cred) = match self.listener.accept_timeout(Duration::ZERO) {
                Ok(Some(c)) => c,
                Ok(None) => return,
                Err(e) => {
                    // Out of descriptors, say: the listener stays readable, so do not spin.
                    warn!("accepting a client connection: {e}");
                    thread::sleep(Duration::from_millis(10));
                    return;
                }
            };
            let groups = sock.peer_groups().unwrap_or_default();
            if !self.access.allows(&cred, &groups) {
                let group = self.access.group.as_ref().map_or_else(
                    || "no ipc_group configured".to_owned(),
                    |(n, _)| format!("not in group {n}"),
                );
                warn!(
                    "refused a client connection from pid {} uid {} gid {}: not root, not the user aisexec runs as, {group}",
                    cred.pid, cred.uid, cred.gid
                );
                continue;
            }
            if let Err(e) = self.serve(sock, cred) {
                warn!("could not serve client pid {}: {e}", cred.pid);
            }
        }
    }

    fn serve(&mut self, sock: SeqpacketConn, cred: PeerCred) -> io::Result<()> {
        // Best effort: the kernel caps it at net.core.wmem_max.
        let _ = sock.set_buffer_sizes(SOCKET_BUFFER, SOCKET_BUFFER);
        let conn: ConnId = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        self.epoll.add(sock.as_fd(), conn, Interest::READ)?;
        let sock = Arc::new(sock);
        let link = Arc::new(ConnLink::new(self.waker.clone()));
        self.clients.insert(
            conn,
            Client {
                sock: Arc::clone(&sock),
                cred,
                outbox: VecDeque::new(),
                pending: None,
                link: Arc::clone(&link),
                interest: Interest::READ,
                shm: None,
            },
        );
        let _ = self.tx.send(Input::Connected {
            conn,
            pid: cred.pid,
            uid: cred.uid,
            socket: sock,
            link,
        });
        Ok(())
    }

    /// Reads what may be read, sends what is queued, and updates what the loop waits for.
    fn service(&mut self, conn: ConnId, readable: bool, hangup: bool) {
        let Some(c) = self.clients.get_mut(&conn) else {
            return;
        };
        let mut end = if c.link.closed.load(Ordering::Acquire) {
            End::Closed
        } else {
            End::Open
        };
        let read_now = match &c.shm {
            None => readable || c.interest.read,
            Some(s) => readable || s.backlog,
        };
        if matches!(end, End::Open) && read_now {
            // A hung-up client's last requests are read whatever the limit: nobody waits
            // for their answers, but what they sent (a last message) still counts.
            end = read(c, conn, &mut self.buf, &self.tx, hangup, self.shared_memory);
        }
        if matches!(end, End::Open) {
            end = flush(c);
        }
        match end {
            End::Closed => self.drop_client(conn),
            End::Open => {
                // On shared memory the socket carries wake-ups only: always read them; a full
                // ring waits for the client's wake-up, not for the socket.
                let want = Interest {
                    read: c.shm.is_some() || c.link.may_read(),
                    write: c.shm.is_none() && c.pending.is_some(),
                };
                if want != c.interest {
                    if let Err(e) = self.epoll.modify(c.sock.as_fd(), conn, want) {
                        warn!("client pid {}: {e}; disconnecting it", c.cred.pid);
                        self.drop_client(conn);
                        return;
                    }
                    c.interest = want;
                }
            }
        }
    }

    fn drop_client(&mut self, conn: ConnId) {
        if let Some(c) = self.clients.remove(&conn) {
            c.link.gone.store(true, Ordering::Release);
            c.link
                .outbox
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            let _ = self.epoll.delete(c.sock.as_fd());
            let _ = c.sock.shutdown();
            let _ = self.tx.send(Input::Disconnected { conn });
        }
    }
}

/// Reads and hands over requests until the socket (and the ring, on shared memory) is empty
/// or the client has [`MAX_INFLIGHT`] waiting (unless `all`).
fn read(
    c: &mut Client,
    conn: ConnId,
    buf: &mut [u8],
    tx: &Sender<Input>,
    all: bool,
    shared_memory: bool,
) -> End {
    let pid = c.cred.pid;
    while c.shm.is_some() || all || c.link.may_read() {
        let (len, fd) = match c.sock.try_recv_with_fd(buf) {
            Ok(Some((Recv::Packet(len), fd))) => (len, fd),
            Ok(None) => break,
            Ok(Some((Recv::Closed, _))) => {
                if c.shm.is_some() {
                    // What it published before it went still counts.
                    let _ = read_ring(c, conn, tx, true);
                }
                return End::Closed;
            }
            Ok(Some((Recv::Truncated(len), _))) => {
                warn!(
                    "client pid {pid} sent a packet of {len} bytes (limit {MAX_PACKET}); disconnecting it"
                );
                return End::Closed;
            }
            Err(e) => {
                warn!("reading from client pid {pid}: {e}; disconnecting it");
                return End::Closed;
            }
        };
        if c.shm.is_some() {
            if len == WAKE.len() {
                continue;
            }
            warn!(
                "client pid {pid} sent a packet of {len} bytes on its socket after moving to \
                 shared memory; disconnecting it"
            );
            return End::Closed;
        }
        let end = packet(
            c,
            conn,
            Bytes::copy_from_slice(&buf[..len]),
            fd,
            tx,
            shared_memory,
        );
        if !matches!(end, End::Open) {
            return end;
        }
    }
    if c.shm.is_some() {
        return read_ring(c, conn, tx, all);
    }
    End::Open
}

/// Reads the client's ring until it is empty (then asks for a wake-up) or the client has
/// [`MAX_INFLIGHT`] requests waiting (unless `all`).
fn read_ring(c: &mut Client, conn: ConnId, tx: &Sender<Input>, all: bool) -> End {
    let pid = c.cred.pid;
    let end = loop {
        let Some(s) = c.shm.as_mut() else {
            return End::Open;
        };
        if !all && !c.link.may_read() {
            s.backlog = true;
            break End::Open;
        }
        // A record of its own per request (not `try_read_shared`): services keep parts of
        // request bodies (checkpoint sections, queued messages) for as long as they like,
        // and a shared buffer would stay allocated whole behind each.
        let mut record = Vec::new();
        match s.reader.try_read(&mut record) {
            Ok(true) => {
                let end = packet(c, conn, Bytes::from(record), None, tx, false);
                if !matches!(end, End::Open) {
                    break end;
                }
            }
            Ok(false) => match s.reader.prepare_sleep() {
                Ok(true) => {
                    s.backlog = false;
                    break End::Open;
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(
                        "client pid {pid}: its shared-memory ring is corrupt ({e}); disconnecting it"
                    );
                    break End::Closed;
                }
            },
            Err(e) => {
                warn!(
                    "client pid {pid}: its shared-memory ring is corrupt ({e}); disconnecting it"
                );
                break End::Closed;
            }
        }
    };
    if let Some(s) = &c.shm
        && s.reader.space_wake_needed()
    {
        let _ = c.sock.try_send(&[&WAKE]);
    }
    end
}

/// One packet from the client (from its socket, with the descriptor that came with it, or
/// from its ring).
fn packet(
    c: &mut Client,
    conn: ConnId,
    bytes: Bytes,
    fd: Option<OwnedFd>,
    tx: &Sender<Input>,
    shared_memory: bool,
) -> End {
    let pid = c.cred.pid;
    match Frame::decode(bytes.clone()) {
        Ok(Frame {
            kind: Kind::Request,
            op: OP_SHM_SETUP,
            id,
            body,
        }) => setup(c, id, body, fd, shared_memory),
        Ok(Frame {
            kind: Kind::Request,
            op,
            id,
            body,
        }) => {
            c.link.inflight.fetch_add(1, Ordering::AcqRel);
            if tx.send(Input::Request { conn, id, op, body }).is_err() {
                return End::Closed;
            }
            End::Open
        }
        Ok(_) => {
            warn!("client pid {pid} sent a non-request packet; disconnecting it");
            End::Closed
        }
        Err(DecodeError::Version { got, .. }) => {
            warn!(
                "client pid {pid} speaks IPC protocol version {got}; this executive speaks \
                 version {VERSION}: refusing it (SA_AIS_ERR_VERSION) and disconnecting it"
            );
            if let Some(id) = request_id(&bytes)
                && c.shm.is_none()
            {
                let answer = Encoded::reply(id, &Reply::<Nothing>::Error(AisError::Version));
                let _ = c.sock.try_send(&[&answer.to_vec()]);
            }
            End::Closed
        }
        Err(e) => {
            warn!("client pid {pid} sent a malformed packet ({e}); disconnecting it");
            End::Closed
        }
    }
}

/// A shared-memory setup request (see the module documentation): answered on the socket.
fn setup(c: &mut Client, id: u64, body: Bytes, fd: Option<OwnedFd>, shared_memory: bool) -> End {
    let pid = c.cred.pid;
    if c.shm.is_some() {
        warn!("client pid {pid} asked for shared memory twice; disconnecting it");
        return End::Closed;
    }
    let ring_bytes = match decode_shm_setup(body) {
        Ok(n) => n as usize,
        Err(e) => {
            warn!("client pid {pid} sent a malformed shared-memory setup ({e}); disconnecting it");
            return End::Closed;
        }
    };
    let answer = |c: &Client, reply: Reply<Nothing>| -> End {
        match c.sock.try_send(&[&Encoded::reply(id, &reply).to_vec()]) {
            Ok(true) => End::Open,
            Ok(false) => {
                warn!(
                    "client pid {pid}: no room on its socket for the setup's answer; disconnecting it"
                );
                End::Closed
            }
            Err(_) => End::Closed,
        }
    };
    if !shared_memory {
        debug!("client pid {pid} asked for shared memory; configured off (seqpacket)");
        return answer(c, Reply::Error(AisError::NotSupported));
    }
    let Some(fd) = fd else {
        warn!("client pid {pid} asked for shared memory without a segment; refused");
        return answer(c, Reply::Error(AisError::InvalidParam));
    };
    if shm::max_record(ring_bytes) < MAX_PACKET {
        warn!(
            "client pid {pid}: refused its shared-memory segment: rings of {ring_bytes} bytes \
             cannot hold a packet of {MAX_PACKET} bytes"
        );
        return answer(c, Reply::Error(AisError::InvalidParam));
    }
    // Everything queued so far goes out on the socket first, so the order holds.
    if let End::Closed = flush(c) {
        return End::Closed;
    }
    if c.pending.is_some() {
        return answer(c, Reply::Error(AisError::TryAgain));
    }
    match Segment::open(fd, ring_bytes) {
        Err(e) => {
            warn!("client pid {pid}: refused its shared-memory segment: {e}");
            answer(c, Reply::Error(AisError::InvalidParam))
        }
        Ok(seg) => {
            let seg = Arc::new(seg);
            let (writer, reader) = seg.exec_ends();
            let end = answer(c, Reply::Ok);
            if matches!(end, End::Open) {
                debug!("client pid {pid} moved to shared-memory rings of {ring_bytes} bytes");
                c.shm = Some(ShmEnds {
                    writer,
                    reader,
                    backlog: false,
                });
            }
            end
        }
    }
}

/// The next packet to send: from the loop's own queue, refilled with all the executive
/// handed over when it is empty.
fn next_packet(queue: &mut VecDeque<Outgoing>, link: &ConnLink) -> Option<Outgoing> {
    if queue.is_empty() {
        link.take_handed(queue);
    }
    queue.pop_front()
}

/// Sends queued packets until the queue is empty or the socket (or ring) is full.
fn flush(c: &mut Client) -> End {
    if c.shm.is_some() {
        return flush_ring(c);
    }
    let (mut packets, mut bytes) = (0, 0);
    let end = loop {
        let Some(packet) = c
            .pending
            .take()
            .or_else(|| next_packet(&mut c.outbox, &c.link))
        else {
            break End::Open;
        };
        match c.sock.try_send(&[&packet.head, &packet.tail]) {
            Ok(true) => {
                packets += 1;
                bytes += packet.len() as u64;
            }
            Ok(false) => {
                c.pending = Some(packet);
                break End::Open;
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::BrokenPipe {
                    warn!(
                        "sending to client pid {}: {e}; disconnecting it",
                        c.cred.pid
                    );
                }
                break End::Closed;
            }
        }
    };
    c.link.took(packets, bytes);
    end
}

/// Records written into a client's ring before they are published (one store of the ring's
/// head for these, instead of one per record), so that a reader already awake starts on a
/// long burst before its end.
const PUBLISH_EVERY: u64 = 32;

/// Writes queued packets into the client's ring until the queue is empty or the ring is
/// full (then asks for a wake-up), and wakes the client if it sleeps.
fn flush_ring(c: &mut Client) -> End {
    let pid = c.cred.pid;
    let Client {
        shm: Some(s),
        pending,
        outbox,
        sock,
        link,
        ..
    } = c
    else {
        return End::Open;
    };
    let (mut packets, mut bytes) = (0, 0);
    let end = loop {
        let Some(packet) = pending.take().or_else(|| next_packet(outbox, link)) else {
            break End::Open;
        };
        // Written as a burst, published every PUBLISH_EVERY records and at its end (the
        // wake-up check and a wait for room publish first).
        match s.writer.write(&[&packet.head, &packet.tail]) {
            Ok(true) => {
                packets += 1;
                bytes += packet.len() as u64;
                if packets % PUBLISH_EVERY == 0 {
                    s.writer.publish();
                }
            }
            Ok(false) => {
                let len = packet.len();
                *pending = Some(packet);
                match s.writer.wait_for_space(len) {
                    // Room appeared meanwhile: write again.
                    Ok(false) => {}
                    Ok(true) => break End::Open,
                    Err(e) => {
                        warn!(
                            "client pid {pid}: its shared-memory ring is corrupt ({e}); disconnecting it"
                        );
                        break End::Closed;
                    }
                }
            }
            Err(e) => {
                warn!("client pid {pid}: writing to its shared-memory ring: {e}; disconnecting it");
                break End::Closed;
            }
        }
    };
    s.writer.publish();
    if packets > 0 && s.writer.wake_needed() {
        let _ = sock.try_send(&[&WAKE]);
    }
    link.took(packets, bytes);
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_policy() {
        let a = Access {
            own_uid: 1000,
            group: Some(("ais".into(), 50)),
        };
        let cred = |uid, gid| PeerCred { pid: 1, uid, gid };
        assert!(a.allows(&cred(0, 0), &[]));
        assert!(a.allows(&cred(1000, 1000), &[]));
        assert!(a.allows(&cred(2000, 50), &[]));
        assert!(a.allows(&cred(2000, 2000), &[7, 50]));
        assert!(!a.allows(&cred(2000, 2000), &[7]));
        let none = Access {
            own_uid: 1000,
            group: None,
        };
        assert!(!none.allows(&cred(2000, 50), &[50]));
    }

    #[test]
    fn group_lookup() {
        let dir = std::env::temp_dir().join(format!("ais-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("group");
        std::fs::write(&f, "root:x:0:\nbroken\nais:x:123:alice,bob\n").unwrap();
        assert_eq!(group_id_in(&f, "ais").unwrap(), 123);
        assert_eq!(group_id_in(&f, "root").unwrap(), 0);
        let e = group_id_in(&f, "nope").unwrap_err();
        assert!(e.to_string().contains("no group named \"nope\""), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
