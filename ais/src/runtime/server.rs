//! The client IPC server: a Unix SEQPACKET socket, an accept thread that checks each peer's
//! credentials, and per connection a reader thread (decodes packets into [`Input::Request`])
//! and a writer thread (drains the connection's outbox).
//!
//! Who may connect ([`Access`]): root, the user `aisexec` runs as, and members (primary or
//! supplementary) of the configured group. Everyone else is refused and logged with pid, uid
//! and gid; the socket file is also created mode 0660 so the filesystem agrees.
//!
//! Limits with defined outcomes: a packet that does not decode, or is larger than
//! [`MAX_PACKET`], disconnects the client (logged); a client may have at most
//! [`MAX_INFLIGHT`] requests waiting for the executive (its reader stops reading until they
//! are handled, so the kernel socket buffer pushes back on the client); a client that does
//! not read its answers and callbacks is disconnected once [`super::OUTBOX_PACKETS`] are
//! queued for it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::Sender;
use dataplane::unix::{PeerCred, Recv, SeqpacketConn, SeqpacketListener};
use tracing::{info, warn};

use super::{ConnId, Input, OUTBOX_PACKETS, Outgoing};
use ais_proto::codec::DecodeError;
use ais_proto::proto::{
    AisError, MAX_PACKET, Packet, Response, SOCKET_BUFFER, VERSION, request_id,
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

/// Requests in flight for one connection.
#[derive(Debug, Default)]
pub struct Inflight {
    state: Mutex<(usize, bool)>,
    cv: Condvar,
}

impl Inflight {
    /// Waits for room, then counts one more request. False when the connection is closed.
    fn acquire(&self) -> bool {
        let mut g = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while g.0 >= MAX_INFLIGHT && !g.1 {
            g = self.cv.wait(g).unwrap_or_else(PoisonError::into_inner);
        }
        if g.1 {
            return false;
        }
        g.0 += 1;
        true
    }

    /// One request was handled.
    pub fn done(&self) {
        let mut g = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        g.0 = g.0.saturating_sub(1);
        self.cv.notify_all();
    }

    /// The connection is gone: wake the reader for good.
    pub fn close(&self) {
        let mut g = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        g.1 = true;
        self.cv.notify_all();
    }
}

/// The running server. Dropping it stops accepting and removes the socket file; open
/// connections end when the executive drops them.
#[derive(Debug)]
pub struct IpcServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl IpcServer {
    /// Binds `path` (mode 0660; a stale socket file of a dead executive is replaced) and
    /// starts accepting; connections and their requests go to `tx`.
    ///
    /// # Errors
    /// The socket cannot be bound (another executive is listening, permissions, path too long).
    pub fn start(path: &Path, access: Access, tx: Sender<Input>) -> io::Result<IpcServer> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        }
        let listener = SeqpacketListener::bind(path, 0o660)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("ipc-accept".into())
            .spawn(move || accept_loop(&listener, &access, &tx, &thread_stop))?;
        info!("clients connect to {}", path.display());
        Ok(IpcServer {
            stop,
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
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

fn accept_loop(
    listener: &SeqpacketListener,
    access: &Access,
    tx: &Sender<Input>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Acquire) {
        let (sock, cred) = match listener.accept_timeout(Duration::from_millis(100)) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                warn!("accepting a client connection: {e}");
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let groups = sock.peer_groups().unwrap_or_default();
        if !access.allows(&cred, &groups) {
            let group = access.group.as_ref().map_or_else(
                || "no ipc_group configured".to_owned(),
                |(n, _)| format!("not in group {n}"),
            );
            warn!(
                "refused a client connection from pid {} uid {} gid {}: not root, not the user aisexec runs as, {group}",
                cred.pid, cred.uid, cred.gid
            );
            continue;
        }
        if let Err(e) = serve(sock, cred, tx) {
            warn!("could not serve client pid {}: {e}", cred.pid);
        }
    }
}

fn serve(sock: SeqpacketConn, cred: PeerCred, tx: &Sender<Input>) -> io::Result<()> {
    // Best effort: the kernel caps it at net.core.wmem_max.
    let _ = sock.set_buffer_sizes(SOCKET_BUFFER, SOCKET_BUFFER);
    let sock = Arc::new(sock);
    let conn: ConnId = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let (outbox, out_rx) = mpsc::sync_channel::<Outgoing>(OUTBOX_PACKETS);
    let inflight = Arc::new(Inflight::default());
    let writer_sock = Arc::clone(&sock);
    thread::Builder::new()
        .name(format!("ipc-w{conn}"))
        .spawn(move || {
            for (head, tail) in out_rx {
                if writer_sock.send(&[&head, &tail]).is_err() {
                    // The reader sees the shutdown and reports the disconnect.
                    let _ = writer_sock.shutdown();
                    break;
                }
            }
        })?;
    let _ = tx.send(Input::Connected {
        conn,
        pid: cred.pid,
        uid: cred.uid,
        outbox,
        socket: Arc::clone(&sock),
        inflight: Arc::clone(&inflight),
    });
    let reader_tx = tx.clone();
    thread::Builder::new()
        .name(format!("ipc-r{conn}"))
        .spawn(move || read_loop(&sock, conn, cred, &inflight, &reader_tx))?;
    Ok(())
}

fn read_loop(
    sock: &SeqpacketConn,
    conn: ConnId,
    cred: PeerCred,
    inflight: &Inflight,
    tx: &Sender<Input>,
) {
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        if !inflight.acquire() {
            break;
        }
        let len = match sock.recv(&mut buf) {
            Ok(Recv::Packet(len)) => len,
            Ok(Recv::Truncated(len)) => {
                warn!(
                    "client pid {} sent a packet of {len} bytes (limit {MAX_PACKET}); disconnecting it",
                    cred.pid
                );
                break;
            }
            Ok(Recv::Closed) => break,
            Err(e) => {
                warn!(
                    "reading from client pid {}: {e}; disconnecting it",
                    cred.pid
                );
                break;
            }
        };
        match Packet::decode(Bytes::copy_from_slice(&buf[..len])) {
            Ok(Packet::Request { id, req }) => {
                if tx.send(Input::Request { conn, id, req }).is_err() {
                    break;
                }
            }
            Ok(_) => {
                warn!(
                    "client pid {} sent a non-request packet; disconnecting it",
                    cred.pid
                );
                break;
            }
            Err(DecodeError::Version { got, .. }) => {
                warn!(
                    "client pid {} speaks IPC protocol version {got}; this executive speaks \
                     version {VERSION}: refusing it (SA_AIS_ERR_VERSION) and disconnecting it",
                    cred.pid
                );
                if let Some(id) = request_id(&buf[..len]) {
                    let answer = Packet::Response {
                        id,
                        resp: Response::Error(AisError::Version),
                    };
                    let _ = sock.send(&[&answer.to_vec()]);
                }
                break;
            }
            Err(e) => {
                warn!(
                    "client pid {} sent a malformed packet ({e}); disconnecting it",
                    cred.pid
                );
                break;
            }
        }
    }
    let _ = sock.shutdown();
    let _ = tx.send(Input::Disconnected { conn });
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
