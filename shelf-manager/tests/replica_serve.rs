//! The contract the redundant pair rests on, without a cluster: `shelfd::serve` shows every
//! changed shelf to its commit step (where `shelfd --amf` writes the checkpoint) before the
//! answer goes out, and a failed commit withholds the answer and stops serving. Over UDP on
//! 127.0.0.1 with the in-crate console; the cluster side is `bench/tests/shelf_failover.rs`.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shelf_manager::model::Config;
use shelf_manager::replica::Snapshot;
use shelf_manager::rmcp::console::Console;
use shelf_manager::rmcp::crypto::Suite;
use shelf_manager::rmcp::server::{Server, ServerConfig};
use shelf_manager::rmcp::users::Users;
use shelf_manager::shelfd::{Defect, Prepared, Start, serve};

const USERS: &str = r#"
[[user]]
name = "op"
password = "op-secret"
privilege = "operator"
"#;

fn prepared() -> Prepared {
    let model = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/shelf-sim.toml"),
    )
    .unwrap();
    let config = Config::from_str(&model, "shelf-sim.toml").unwrap();
    Prepared {
        config,
        users: Users::from_str(USERS, "users.toml").unwrap(),
        server_config: ServerConfig {
            seed: 11,
            ..ServerConfig::default()
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        start: Start::Closed,
        manual_activation: false,
        defect: Defect::None,
    }
}

/// A console logged in at operator privilege over `sock` (connected to the server).
fn login(sock: &UdpSocket) -> Console {
    let exchange = |pkt: &[u8]| {
        sock.send(pkt).unwrap();
        let mut buf = [0u8; 1024];
        let n = sock.recv(&mut buf).expect("an answer within the timeout");
        buf[..n].to_vec()
    };
    let mut c = Console::new(Suite::Sha256, 0x77, "op", "op-secret", 3);
    let open = exchange(&c.open_session());
    let r2 = exchange(&c.rakp1(&open).unwrap());
    let r4 = exchange(&c.rakp3(&r2).unwrap());
    c.finish(&r4).unwrap();
    let pkt = c.request(0x06, 0x3B, &[3]);
    let (cc, _) = c.response(&exchange(&pkt)).unwrap();
    assert_eq!(cc, 0, "Set Session Privilege Level");
    c
}

/// Runs `serve` on a thread with `commit`, returns the client socket, the stop flag and the
/// thread.
#[allow(clippy::type_complexity)]
fn start(
    commit: impl FnMut(&Snapshot) -> anyhow::Result<()> + Send + 'static,
) -> (
    UdpSocket,
    Arc<AtomicBool>,
    std::thread::JoinHandle<anyhow::Result<()>>,
) {
    let p = prepared();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = Arc::clone(&stop);
        let mut commit = commit;
        std::thread::spawn(move || {
            let mut handler = p.fresh_handler();
            let mut server = Server::new(p.server_config.clone(), p.users.clone());
            serve(&socket, &mut server, &mut handler, &stop, |h| {
                commit(&Snapshot::of(h.shelf(), 0))
            })
        })
    };
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client.connect(addr).unwrap();
    (client, stop, thread)
}

#[test]
fn a_change_is_committed_before_its_answer_goes_out() {
    let fresh = Snapshot::of(prepared().fresh_handler().shelf(), 0);
    // What the commit step saw last, and how many different shelves it saw.
    let seen = Arc::new(Mutex::new(fresh.clone()));
    let changes = Arc::new(AtomicU64::new(0));
    let (client, stop, thread) = {
        let (seen, changes) = (Arc::clone(&seen), Arc::clone(&changes));
        start(move |s| {
            let mut last = seen.lock().unwrap();
            if *last != *s {
                changes.fetch_add(1, Ordering::SeqCst);
                *last = s.clone();
            }
            Ok(())
        })
    };
    let mut c = login(&client);
    assert_eq!(
        changes.load(Ordering::SeqCst),
        0,
        "logging in changes no shelf"
    );
    // Deactivate board 2 (node-2): when the answer arrives, the commit step has seen it.
    let pkt = c.request(0x2C, 0x0C, &[0x00, 2, 0x00]);
    client.send(&pkt).unwrap();
    let mut buf = [0u8; 1024];
    let n = client.recv(&mut buf).unwrap();
    let (cc, _) = c.response(&buf[..n]).unwrap();
    assert_eq!(cc, 0);
    assert_eq!(changes.load(Ordering::SeqCst), 1);
    let committed = seen.lock().unwrap().clone();
    assert_ne!(committed, fresh);
    assert_eq!(
        committed.frus[1].state.code(),
        1,
        "node-2 in M1: {committed}"
    );
    stop.store(true, Ordering::SeqCst);
    thread.join().unwrap().unwrap();
}

#[test]
fn a_failed_commit_withholds_the_answer_and_stops_serving() {
    let fresh = Snapshot::of(prepared().fresh_handler().shelf(), 0);
    let (client, _stop, thread) = start(move |s| {
        if *s == fresh {
            Ok(())
        } else {
            Err(anyhow::anyhow!("the checkpoint cannot be written"))
        }
    });
    let mut c = login(&client);
    let pkt = c.request(0x2C, 0x0C, &[0x00, 2, 0x00]);
    client.send(&pkt).unwrap();
    // The loop ends with the commit's error, and no answer was sent before it did.
    let err = thread.join().unwrap().unwrap_err();
    assert!(err.to_string().contains("cannot be written"), "{err}");
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 1024];
    assert!(
        client.recv(&mut buf).is_err(),
        "an answer went out for a change that was not committed"
    );
}
