//! The example 2N service (`examples/amf-counter`, run as `aisctl amf-counter`) under the AMF
//! of three real executives on loopback, with a load of clients that keep several additions
//! in flight and send the unanswered ones again after a connection error:
//!
//! 1. `kill -9` of the active component: the standby becomes active and the clients go on;
//! 2. `aisctl amf switchover counter`: the same;
//! 3. `kill -9` of the active node's executive and of its components (a node crash): the
//!    standby on another node becomes active after the fence delay.
//!
//! Each ends with the exact check: the total (`GET`) equals the sum of every acknowledged
//! `ADD`, so no acknowledged update was lost and none counted twice; no `ERR` reply is
//! accepted. After a reconnection each client also sends its last acknowledged addition again
//! (as if its answer had been lost), so the service's duplicate detection is exercised on
//! every failover. 4. The check can fail: against the service with a deliberate defect
//! (`--defect fresh-state`: the new active ignores the checkpoint; `--defect no-dedup`: every
//! `ADD` counts) the same run ends with additions lost, or counted twice. The times from the fault to the standby's assignment confirmed and to the first
//! request served after it are printed, not asserted (speed is measured by `bench
//! amf-failover`).
//!
//! The model's two SUs are on nodes 1 and 2 (node 3 carries no SU: a third vote, and a
//! survivor set of two after a node crash). Both SUs serve the same TCP address on
//! 127.0.0.1: a new active binds it only once the old one closed it. The component type's
//! recovery is `su-failover`, so a component failure moves the SI to the standby (the
//! default, `component-restart`, would restart the component in place). Each node's
//! component finds its executive through a symbolic link named after its SU
//! (`DIR/counter-N.socket`), since the model's instantiate command is the same for every SU.
//!
//! The three tests run one after another (a lock): each starts three executives and two
//! components on a 2-core machine.

mod common;

use std::collections::VecDeque;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ais_client::amf::Amf;
use amf_counter::protocol::{Reply, Request};
use common::cluster::{Cluster, free_ports, key_lines};

const LONG: Duration = Duration::from_secs(60);

/// Clients of the load, and additions each keeps in flight.
const CLIENTS: usize = 3;
const WINDOW: usize = 4;

static SERIAL: Mutex<()> = Mutex::new(());

/// A free TCP port on 127.0.0.1.
fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free TCP port")
        .port()
}

/// The cluster: three executives with the 2N model, started, the SI active on one SU and
/// standby on the other, both confirmed.
struct Setup {
    c: Cluster,
    dir: PathBuf,
    addr: SocketAddr,
    active: &'static str,
    standby: &'static str,
}

fn node_of(su: &str) -> usize {
    if su == "counter-1" { 0 } else { 1 }
}

fn setup(name: &str) -> Setup {
    setup_with(name, "none")
}

/// [`setup`] with the service's hidden `--defect` switch.
fn setup_with(name: &str, defect: &str) -> Setup {
    let dir = std::env::temp_dir().join(format!("ais-counter-comp-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("dir");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let model = dir.join("amf.toml");
    let instantiate = format!(
        "su=${{SA_AMF_COMPONENT_NAME#*safSu=}}; exec {} amf-counter --socket {}/${{su%%,*}}.socket --defect {defect}",
        env!("CARGO_BIN_EXE_aisctl"),
        dir.display()
    );
    fs::write(
        &model,
        format!(
            "[node]\nn1 = {{ nodeid = 1 }}\nn2 = {{ nodeid = 2 }}\nn3 = {{ nodeid = 3 }}\n\n\
             [comp_type.counter]\ninstantiate = {instantiate:?}\nrecovery = \"su-failover\"\n\n\
             [sg.counter]\nredundancy = \"2n\"\ncomponents = [\"counter\"]\n\
             su.counter-1 = {{ node = \"n1\" }}\nsu.counter-2 = {{ node = \"n2\" }}\n\n\
             [si.counter]\nsg = \"counter\"\n\
             csi.state = {{ comp_type = \"counter\", attributes = {{ listen = \"{addr}\", checkpoint = \"counter-{name}\" }} }}\n"
        ),
    )
    .expect("model");
    let ports = free_ports(3);
    let mut c = Cluster::new(
        &format!("amf-counter-{name}"),
        3,
        |node| {
            let totem = key_lines(&node.dir) + "\n";
            ais::harness::loopback_config(node, &ports, &totem)
                + &format!("\n[amf]\nmodel = {:?}\n", model.display().to_string())
        },
        Vec::new(),
    );
    for (i, su) in ["counter-1", "counter-2"].into_iter().enumerate() {
        std::os::unix::fs::symlink(&c.node(i).socket, dir.join(format!("{su}.socket")))
            .expect("socket link");
    }
    c.start_all();
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    let start = Instant::now();
    let (active, standby) = loop {
        let s = status(&c, 2);
        let si = si_line(&s);
        if si == "SI counter: counter-1 active, counter-2 standby" {
            break ("counter-1", "counter-2");
        }
        if si == "SI counter: counter-1 standby, counter-2 active" {
            break ("counter-2", "counter-1");
        }
        assert!(
            start.elapsed() < LONG,
            "no active and standby:\n{s}\nnode 1 log:\n{}",
            c.log(0)
        );
        thread::sleep(Duration::from_millis(20));
    };
    println!(
        "amf_counter {name}: {active} active, {standby} standby {:.0} ms after the ring formed",
        start.elapsed().as_secs_f64() * 1e3
    );
    Setup {
        c,
        dir,
        addr,
        active,
        standby,
    }
}

/// Node `i`'s `aisctl amf status` lines (through the library), or the error.
fn status(c: &Cluster, i: usize) -> String {
    match Amf::initialize(&c.node(i).socket).and_then(|mut a| a.status()) {
        Ok(lines) => lines.join("\n"),
        Err(e) => format!("status: {e}"),
    }
}

fn si_line(status: &str) -> String {
    status
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("SI counter:"))
        .unwrap_or("")
        .to_owned()
}

/// Waits until node `i` shows `su` active, confirmed; the time it took.
fn wait_active(c: &Cluster, i: usize, su: &str, since: Instant) -> Duration {
    let want = format!("{su} active");
    loop {
        let s = status(c, i);
        let si = si_line(&s);
        if si.split([':', ',']).any(|p| p.trim() == want) {
            return since.elapsed();
        }
        assert!(since.elapsed() < LONG, "{su} never active:\n{s}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// What one load client saw.
#[derive(Debug, Default)]
struct Seen {
    /// Sum of the acknowledged additions.
    acked_sum: u64,
    /// Acknowledged additions.
    acked: u64,
    /// Times a connection was lost or refused and the client started over.
    reconnects: u64,
    /// Acknowledged additions sent again after a reconnection, as if their answer had been
    /// lost (the service must answer OK without counting them again).
    resent: u64,
    /// When the first acknowledgment after each reconnection arrived.
    resumed: Vec<Instant>,
}

/// The load: clients adding 1..=9, `WINDOW` in flight each.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<Seen>>,
}

impl Load {
    fn start(addr: SocketAddr, tag: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..CLIENTS)
            .map(|k| {
                let stop = stop.clone();
                let id = format!("{tag}-{k}");
                thread::spawn(move || client(addr, &id, &stop))
            })
            .collect();
        Load { stop, clients }
    }

    /// Stops sending new additions, waits until every one sent is acknowledged.
    fn finish(self) -> Vec<Seen> {
        self.stop.store(true, Ordering::SeqCst);
        self.clients
            .into_iter()
            .map(|h| h.join().expect("a load client"))
            .collect()
    }
}

/// One client: keeps `WINDOW` additions in flight; after any connection error, connects again
/// (every millisecond) and sends every unanswered addition again, same numbers, in order,
/// preceded by the last acknowledged one (as a client whose answer was lost would: the
/// service must not count it twice). Panics on an `ERR`.
fn client(addr: SocketAddr, id: &str, stop: &AtomicBool) -> Seen {
    let mut seen = Seen::default();
    let mut next_seq = 1u64;
    // Sent (or to send) and not acknowledged: (seq, n, acknowledged before), in order.
    let mut pending: VecDeque<(u64, u64, bool)> = VecDeque::new();
    let mut last_acked: Option<(u64, u64)> = None;
    let deadline = || Instant::now() + LONG;
    let mut give_up = deadline();
    let mut reconnected = false;
    'connect: loop {
        if stop.load(Ordering::SeqCst) && pending.is_empty() {
            return seen;
        }
        assert!(
            Instant::now() < give_up,
            "client {id}: no server for {LONG:?}"
        );
        let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            thread::sleep(Duration::from_millis(1));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut w = stream.try_clone().expect("clone");
        let mut r = BufReader::new(stream);
        if reconnected
            && let Some((seq, n)) = last_acked
            && pending.front().is_none_or(|p| p.0 > seq)
        {
            pending.push_front((seq, n, true));
        }
        let mut text = String::new();
        for (seq, n, _) in &pending {
            text += &format!("{}\n", add(id, *seq, *n));
        }
        if !text.is_empty() && w.write_all(text.as_bytes()).is_err() {
            seen.reconnects += 1;
            reconnected = true;
            continue;
        }
        let mut in_flight = pending.len();
        let mut line = String::new();
        loop {
            while in_flight < WINDOW && !stop.load(Ordering::SeqCst) {
                let n = next_seq % 9 + 1;
                pending.push_back((next_seq, n, false));
                let req = format!("{}\n", add(id, next_seq, n));
                next_seq += 1;
                in_flight += 1;
                if w.write_all(req.as_bytes()).is_err() {
                    seen.reconnects += 1;
                    reconnected = true;
                    continue 'connect;
                }
            }
            if pending.is_empty() {
                return seen;
            }
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    seen.reconnects += 1;
                    reconnected = true;
                    continue 'connect;
                }
                Ok(_) => {}
            }
            let (seq, n, before) = pending.pop_front().expect("a reply answers a request");
            in_flight -= 1;
            match Reply::parse(line.trim_end()) {
                Some(Reply::Ok(_)) if before => seen.resent += 1,
                Some(Reply::Ok(_)) => {
                    seen.acked += 1;
                    seen.acked_sum += n;
                    last_acked = Some((seq, n));
                    if reconnected {
                        seen.resumed.push(Instant::now());
                        reconnected = false;
                    }
                    give_up = deadline();
                }
                other => panic!("client {id}: {other:?} ({line:?})"),
            }
        }
    }
}

fn add(client: &str, seq: u64, n: u64) -> Request {
    Request::Add {
        client: client.to_owned(),
        seq,
        n,
    }
}

/// `GET` from whichever process serves `addr` (retrying the connection).
fn get(addr: SocketAddr) -> u64 {
    let start = Instant::now();
    loop {
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut line = String::new();
            if s.write_all(b"GET\n").is_ok()
                && BufReader::new(&s).read_line(&mut line).is_ok_and(|n| n > 0)
            {
                match Reply::parse(line.trim_end()) {
                    Some(Reply::Value(v)) => return v,
                    other => panic!("GET: {other:?}"),
                }
            }
        }
        assert!(start.elapsed() < LONG, "no server at {addr}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// What a run under load ended with.
struct Outcome {
    /// `GET` at the end.
    total: u64,
    /// The sum of every acknowledged addition.
    acked_sum: u64,
}

impl Outcome {
    /// The exact check: no acknowledged addition lost, none counted twice.
    fn verdict(&self) -> Result<(), String> {
        if self.total == self.acked_sum {
            return Ok(());
        }
        Err(format!(
            "the total {} is not the sum of the acknowledged additions {} (lost: {}, counted twice: {})",
            self.total,
            self.acked_sum,
            self.acked_sum.saturating_sub(self.total),
            self.total.saturating_sub(self.acked_sum)
        ))
    }

    fn check(&self, what: &str) {
        if let Err(e) = self.verdict() {
            panic!("{what}: {e}");
        }
    }
}

/// Runs the load until the total passes 1000, applies `fault` (which returns the instant of
/// the fault, the SU expected to become active and the node to watch), runs on until the
/// total grew by 1000 more, stops the load once every addition is answered; prints the
/// times.
fn under_load(
    s: &mut Setup,
    tag: &str,
    what: &str,
    fault: impl FnOnce(&mut Setup) -> (Instant, &'static str, usize),
) -> Outcome {
    let load = Load::start(s.addr, tag);
    // Some traffic before the fault.
    let start = Instant::now();
    while get(s.addr) < 1000 {
        assert!(start.elapsed() < LONG, "the load does not progress");
        thread::sleep(Duration::from_millis(10));
    }
    let (at, new_active, watch) = fault(s);
    let to_active = wait_active(&s.c, watch, new_active, at);
    // Let the clients go on for a while on the new active.
    let total_then = get(s.addr);
    let start = Instant::now();
    while get(s.addr) < total_then + 1000 {
        assert!(
            start.elapsed() < LONG,
            "the load does not go on after {what}"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let seen = load.finish();
    let acked_sum: u64 = seen.iter().map(|c| c.acked_sum).sum();
    let acked: u64 = seen.iter().map(|c| c.acked).sum();
    let reconnects: u64 = seen.iter().map(|c| c.reconnects).sum();
    let resent: u64 = seen.iter().map(|c| c.resent).sum();
    let first_after = seen
        .iter()
        .flat_map(|c| c.resumed.iter().copied())
        .filter(|t| *t > at)
        .min()
        .expect("acknowledgments after a reconnection after the fault");
    let total = get(s.addr);
    println!(
        "amf_counter {what}: standby {new_active} active (confirmed) {:.1} ms after the fault, first request served after a reconnection {:.1} ms after it; {acked} additions acknowledged (sum {acked_sum}), {reconnects} reconnections, {resent} acknowledged ones sent again, GET {total}",
        to_active.as_secs_f64() * 1e3,
        first_after.duration_since(at).as_secs_f64() * 1e3,
    );
    assert!(reconnects >= 1, "the clients saw the fault");
    assert!(resent >= 1, "a client sent an acknowledged addition again");
    // Sanity only: the failover happened within the test's patience.
    assert!(to_active < LONG);
    Outcome { total, acked_sum }
}

/// The pids of the processes whose command line contains `needle`.
fn pids_with(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

/// The component process of SU `su`.
fn component_pids(dir: &Path, su: &str) -> Vec<i32> {
    pids_with(&format!(
        "amf-counter --socket {}/{su}.socket",
        dir.display()
    ))
}

fn kill9(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

fn cleanup(s: Setup) {
    let dir = s.dir.clone();
    drop(s.c);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn kill_9_of_the_active_component_under_load() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = setup("kill");
    under_load(&mut s, "kill", "kill -9 of the active component", |s| {
        let pids = component_pids(&s.dir, s.active);
        assert_eq!(pids.len(), 1, "one component process of {}", s.active);
        let at = Instant::now();
        kill9(pids[0]);
        (at, s.standby, node_of(s.standby))
    })
    .check("kill -9 of the active component");
    cleanup(s);
}

#[test]
fn switchover_under_load() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = setup("switchover");
    under_load(&mut s, "switch", "aisctl amf switchover", |s| {
        let at = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_aisctl"))
            .arg("--socket")
            .arg(&s.c.node(2).socket)
            .args(["amf", "switchover", "counter"])
            .output()
            .expect("aisctl runs");
        assert!(
            out.status.success(),
            "switchover: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (at, s.standby, 2)
    })
    .check("switchover");
    cleanup(s);
}

#[test]
fn kill_9_of_the_active_node_under_load() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = setup("node");
    under_load(&mut s, "node", "kill -9 of the active node", |s| {
        // A node crash: its components and its executive, at once.
        let pids = component_pids(&s.dir, s.active);
        assert_eq!(pids.len(), 1, "one component process of {}", s.active);
        let at = Instant::now();
        for pid in pids {
            kill9(pid);
        }
        s.c.kill(node_of(s.active));
        (at, s.standby, 2)
    })
    .check("kill -9 of the active node");
    cleanup(s);
}

/// The exact check can fail: the same run against the service with a deliberate defect. A new
/// active that starts from an empty state loses acknowledged additions; a service that counts
/// every `ADD` counts the clients' resent ones twice.
#[test]
fn the_exact_check_catches_a_broken_service() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for defect in ["fresh-state", "no-dedup"] {
        let mut s = setup_with(&format!("defect-{defect}"), defect);
        let o = under_load(&mut s, "broken", &format!("defect {defect}"), |s| {
            let pids = component_pids(&s.dir, s.active);
            assert_eq!(pids.len(), 1, "one component process of {}", s.active);
            let at = Instant::now();
            kill9(pids[0]);
            (at, s.standby, node_of(s.standby))
        });
        let verdict = o.verdict();
        println!("amf_counter defect {defect}: the check says {verdict:?}");
        assert!(
            verdict.is_err(),
            "the check passes a service with defect {defect}"
        );
        if defect == "fresh-state" {
            assert!(o.total < o.acked_sum, "additions lost");
        } else {
            assert!(o.total > o.acked_sum, "additions counted twice");
        }
        cleanup(s);
    }
}
