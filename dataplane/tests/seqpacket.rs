//! Unix-domain `SOCK_SEQPACKET` sockets (`dataplane::unix`): packet boundaries, credentials,
//! close detection, back-pressure and the listener's handling of its socket file.

#![cfg(target_os = "linux")]

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use dataplane::unix::{PeerCred, Recv, SeqpacketConn, SeqpacketListener};

/// A socket path unique to this process and test, removed (if still there) on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("dp-seqp-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        TempPath(path)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const WAIT: Duration = Duration::from_secs(5);

fn recv_packet(conn: &SeqpacketConn, buf: &mut [u8]) -> usize {
    match conn.recv_timeout(buf, Some(WAIT)).unwrap() {
        Some(Recv::Packet(n)) => n,
        other => panic!("expected a packet, got {other:?}"),
    }
}

/// A listener at `path` and one connection to it: (client end, server end, server's view of
/// the client's credentials).
fn connected(path: &Path) -> (SeqpacketListener, SeqpacketConn, SeqpacketConn, PeerCred) {
    let listener = SeqpacketListener::bind(path, 0o600).unwrap();
    let client = SeqpacketConn::connect(path).unwrap();
    let (server, cred) = listener
        .accept_timeout(WAIT)
        .unwrap()
        .expect("no connection");
    (listener, client, server, cred)
}

#[test]
fn types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SeqpacketConn>();
    check::<SeqpacketListener>();
}

#[test]
fn packet_boundaries_are_kept() {
    let (a, b) = SeqpacketConn::pair().unwrap();
    let packets: [Vec<u8>; 3] = [vec![7], vec![1; 1000], (0..70).collect()];
    for p in &packets {
        a.send(&[p]).unwrap();
    }
    let mut buf = [0u8; 4096];
    for p in &packets {
        let n = recv_packet(&b, &mut buf);
        assert_eq!(&buf[..n], &p[..]);
    }
    assert_eq!(
        b.recv_timeout(&mut buf, Some(Duration::ZERO)).unwrap(),
        None
    );
}

#[test]
fn multi_part_send_concatenates() {
    let (a, b) = SeqpacketConn::pair().unwrap();
    let mut buf = [0u8; 4096];

    a.send(&[b"head", b"", b"-body-", &[1, 2, 3]]).unwrap();
    let n = recv_packet(&b, &mut buf);
    assert_eq!(&buf[..n], b"head-body-\x01\x02\x03");

    // More parts than the inline iovec array holds.
    let parts: Vec<Vec<u8>> = (0u8..20).map(|i| vec![i; usize::from(i) + 1]).collect();
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    a.send(&refs).unwrap();
    let n = recv_packet(&b, &mut buf);
    assert_eq!(&buf[..n], &parts.concat()[..]);
}

#[test]
fn empty_packet_is_refused() {
    let (a, _b) = SeqpacketConn::pair().unwrap();
    for parts in [&[][..], &[&b""[..], &b""[..]][..]] {
        let err = a.send(parts).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}

#[test]
fn truncated_packet_is_reported_and_next_is_intact() {
    let (a, b) = SeqpacketConn::pair().unwrap();
    a.send(&[&[9u8; 300]]).unwrap();
    a.send(&[b"small"]).unwrap();
    let mut buf = [0u8; 100];
    assert_eq!(b.recv(&mut buf).unwrap(), Recv::Truncated(300));
    assert_eq!(b.recv(&mut buf).unwrap(), Recv::Packet(5));
    assert_eq!(&buf[..5], b"small");
}

#[test]
fn pair_ends_report_this_process() {
    let (a, b) = SeqpacketConn::pair().unwrap();
    let ca = a.peer_cred().unwrap();
    let cb = b.peer_cred().unwrap();
    assert_eq!(ca, cb);
    assert_eq!(ca.pid, std::process::id());
}

#[test]
fn accepted_connection_reports_client_credentials() {
    let path = TempPath::new("cred");
    let (listener, client, server, cred) = connected(&path.0);
    assert_eq!(cred.pid, std::process::id());
    // Both ends are this process, so each sees the same credentials of the other.
    assert_eq!(server.peer_cred().unwrap(), cred);
    assert_eq!(client.peer_cred().unwrap(), cred);
    // The socket file was created with our effective uid.
    let meta = std::fs::symlink_metadata(listener.path()).unwrap();
    assert_eq!(cred.uid, meta.uid());
    assert_eq!(meta.mode() & 0o777, 0o600);

    let mut buf = [0u8; 64];
    client.send(&[b"ping"]).unwrap();
    let n = recv_packet(&server, &mut buf);
    assert_eq!(&buf[..n], b"ping");
    server.send(&[b"pong"]).unwrap();
    let n = recv_packet(&client, &mut buf);
    assert_eq!(&buf[..n], b"pong");
}

#[test]
fn peer_groups_is_ok() {
    let (a, _b) = SeqpacketConn::pair().unwrap();
    a.peer_groups().unwrap();
    let path = TempPath::new("groups");
    let (_listener, client, server, _) = connected(&path.0);
    assert_eq!(server.peer_groups().unwrap(), client.peer_groups().unwrap());
}

#[test]
fn closed_after_peer_dropped() {
    let (a, b) = SeqpacketConn::pair().unwrap();
    a.send(&[b"last words"]).unwrap();
    drop(a);
    let mut buf = [0u8; 64];
    // What was sent before the close is still delivered, then the close.
    let n = recv_packet(&b, &mut buf);
    assert_eq!(&buf[..n], b"last words");
    assert_eq!(b.recv(&mut buf).unwrap(), Recv::Closed);
    assert_eq!(b.recv(&mut buf).unwrap(), Recv::Closed);
}

#[test]
fn closed_when_peer_dropped_with_unread_packets() {
    // The peer dies without reading what we sent: the kernel reports ECONNRESET.
    let (a, b) = SeqpacketConn::pair().unwrap();
    a.send(&[b"never read"]).unwrap();
    drop(b);
    let mut buf = [0u8; 64];
    assert_eq!(a.recv(&mut buf).unwrap(), Recv::Closed);
}

#[test]
fn shutdown_wakes_a_blocked_recv() {
    let (a, _b) = SeqpacketConn::pair().unwrap();
    thread::scope(|s| {
        let receiver = s.spawn(|| {
            let mut buf = [0u8; 64];
            a.recv(&mut buf)
        });
        thread::sleep(Duration::from_millis(100));
        a.shutdown().unwrap();
        assert_eq!(receiver.join().unwrap().unwrap(), Recv::Closed);
    });
    let err = a.send(&[b"x"]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
}

#[test]
fn try_send_reports_a_full_buffer() {
    let (a, b) = SeqpacketConn::pair().unwrap();
    let mut sent: u32 = 0;
    while a.try_send(&[&sent.to_le_bytes(), b"padding"]).unwrap() {
        sent += 1;
        assert!(sent < 1_000_000, "the send buffer never filled");
    }
    assert!(sent > 0);
    // Everything accepted arrives whole and in order; the refused packet does not.
    let mut buf = [0u8; 64];
    for i in 0..sent {
        let n = match b.recv_timeout(&mut buf, Some(Duration::ZERO)).unwrap() {
            Some(Recv::Packet(n)) => n,
            other => panic!("packet {i} of {sent}: got {other:?}"),
        };
        assert_eq!(n, 11);
        assert_eq!(buf[..4], i.to_le_bytes());
    }
    assert_eq!(
        b.recv_timeout(&mut buf, Some(Duration::ZERO)).unwrap(),
        None
    );
    assert!(a.try_send(&[b"room again"]).unwrap());
}

fn assert_broken_pipe_to_dropped_peer() {
    let (a, b) = SeqpacketConn::pair().unwrap();
    drop(b);
    let err = a.send(&[b"anyone there?"]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
    let err = a.try_send(&[b"anyone there?"]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
}

const SIGPIPE_CHILD: &str = "DATAPLANE_SEQPACKET_SIGPIPE_CHILD";

#[test]
fn send_to_dropped_peer_is_broken_pipe() {
    if std::env::var_os(SIGPIPE_CHILD).is_some() {
        restore_default_sigpipe();
        assert_broken_pipe_to_dropped_peer();
        return;
    }
    assert_broken_pipe_to_dropped_peer();
    // The Rust runtime ignores SIGPIPE, which would hide one: run the same check again in a
    // child process that restores the default action (terminate). (Linux raises SIGPIPE only
    // for SOCK_STREAM, so this guards the documented behaviour rather than MSG_NOSIGNAL.)
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "send_to_dropped_peer_is_broken_pipe",
            "--test-threads=1",
        ])
        .env(SIGPIPE_CHILD, "1")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), None, "the child was killed by a signal");
    assert!(status.success(), "the child failed: {status}");
}

#[allow(unsafe_code)]
fn restore_default_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL installs no handler; this runs in a
    // child process made only for this test.
    let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(previous, libc::SIG_ERR);
}

#[test]
fn bind_replaces_a_stale_socket_file() {
    let path = TempPath::new("stale");
    // A socket file whose server is gone (std does not remove it on drop).
    drop(std::os::unix::net::UnixListener::bind(&path.0).unwrap());
    assert!(path.0.exists());
    let err = SeqpacketConn::connect(&path.0).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    assert!(
        err.to_string().contains(&*path.0.to_string_lossy()),
        "{err}"
    );

    let (_listener, client, server, _) = connected(&path.0);
    client.send(&[b"hello"]).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(recv_packet(&server, &mut buf), 5);
}

#[test]
fn bind_while_a_listener_is_live_is_addr_in_use() {
    let path = TempPath::new("live");
    let first = SeqpacketListener::bind(&path.0, 0o600).unwrap();
    let err = SeqpacketListener::bind(&path.0, 0o600).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    let msg = err.to_string();
    assert!(msg.contains(&*path.0.to_string_lossy()), "{msg}");
    assert!(msg.contains("another server is listening there"), "{msg}");
    // The live listener's file is untouched: clients still reach it.
    assert!(path.0.exists());
    SeqpacketConn::connect(&path.0).unwrap();
    drop(first);
}

#[test]
fn bind_on_a_regular_file_is_already_exists() {
    let path = TempPath::new("regular");
    std::fs::write(&path.0, b"not a socket").unwrap();
    let err = SeqpacketListener::bind(&path.0, 0o600).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    assert!(
        err.to_string().contains(&*path.0.to_string_lossy()),
        "{err}"
    );
    assert_eq!(std::fs::read(&path.0).unwrap(), b"not a socket");
}

#[test]
fn bind_on_a_too_long_path_is_invalid_input() {
    let path = std::env::temp_dir().join("x".repeat(200));
    let err = SeqpacketListener::bind(&path, 0o600).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    assert!(!path.exists());
}

#[test]
fn listener_drop_removes_the_socket_file() {
    let path = TempPath::new("drop");
    let listener = SeqpacketListener::bind(&path.0, 0o600).unwrap();
    assert_eq!(listener.path(), path.0);
    assert!(path.0.exists());
    drop(listener);
    assert!(!path.0.exists());
}

#[test]
fn accept_timeout_returns_none_when_nobody_connects() {
    let path = TempPath::new("accept");
    let listener = SeqpacketListener::bind(&path.0, 0o600).unwrap();
    let start = Instant::now();
    assert!(
        listener
            .accept_timeout(Duration::from_millis(50))
            .unwrap()
            .is_none()
    );
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[test]
fn connect_to_a_missing_path_is_not_found() {
    let path = TempPath::new("missing");
    let err = SeqpacketConn::connect(&path.0).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(
        err.to_string().contains(&*path.0.to_string_lossy()),
        "{err}"
    );
}

#[test]
fn recv_timeout_returns_none_on_timeout() {
    let (a, b) = SeqpacketConn::pair().unwrap();
    let mut buf = [0u8; 16];
    let start = Instant::now();
    assert_eq!(
        b.recv_timeout(&mut buf, Some(Duration::from_millis(50)))
            .unwrap(),
        None
    );
    assert!(start.elapsed() >= Duration::from_millis(50));
    a.send(&[b"late"]).unwrap();
    assert_eq!(recv_packet(&b, &mut buf), 4);
}

#[test]
fn a_sub_millisecond_timeout_is_not_rounded_up_to_a_millisecond() {
    // A client waiting 200 µs for its next send must wake then, not a millisecond later
    // (`poll(2)` counts milliseconds; a 1 ms timeout sleeps at least 1 ms every time). The
    // shortest of 20 waits, so a busy machine delaying some of them does not matter.
    let (_a, b) = SeqpacketConn::pair().unwrap();
    let mut buf = [0u8; 16];
    let shortest = (0..20)
        .map(|_| {
            let start = Instant::now();
            assert_eq!(
                b.recv_timeout(&mut buf, Some(Duration::from_micros(200)))
                    .unwrap(),
                None
            );
            start.elapsed()
        })
        .min()
        .unwrap();
    assert!(
        shortest >= Duration::from_micros(200) && shortest < Duration::from_micros(900),
        "{shortest:?}"
    );
}

#[test]
fn large_packet_after_raising_buffers() {
    const LARGE: usize = 100 * 1024;
    let (a, b) = SeqpacketConn::pair().unwrap();
    a.set_buffer_sizes(1 << 20, 1 << 20).unwrap();
    b.set_buffer_sizes(1 << 20, 1 << 20).unwrap();
    let packet: Vec<u8> = (0..LARGE).map(|i| (i % 251) as u8).collect();
    // Linux refuses a packet within a few dozen bytes of SO_SNDBUF; stay clear of the edge.
    if a.send_buffer_size().unwrap() >= LARGE + 1024 {
        a.send(&[&packet]).unwrap();
        let mut buf = vec![0u8; LARGE + 1];
        let n = recv_packet(&b, &mut buf);
        assert_eq!(n, LARGE);
        assert!(buf[..n] == packet[..]);
    } else {
        // net.core.wmem_max keeps the buffer too small for this packet.
        let err = a.send(&[&packet]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("102400 bytes"), "{err}");
    }
}
