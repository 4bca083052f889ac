//! LCK through the client library and `aisctl`, against real executives: the calls and their
//! specified errors across two nodes (a lock queued on one node behind a lock of the other,
//! the holder's waiter callback, the grant callback when it unlocks); a lock holder killed
//! with SIGKILL (an `aisctl lck lock` process) and the waiter on the other node granted; an
//! orphan lock left by a detached `aisctl`, refused as ORPHANED, purged; a lock holder's
//! executive killed with SIGKILL, its lock released at the survivor (the waiter's request,
//! submitted just before the kill, mostly reaches the ring only in the survivor's new ring:
//! it must be sent again, not answered TRY_AGAIN); and a stuck holder's lock released by an
//! operator with `aisctl lck unlock`.
//!
//! Assumes: loopback only, no root, free UDP ports from the kernel, a loaded 2-core machine
//! (every wait is generous). The processes are killed when a test ends, whatever happens.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ais_client::lck::{
    LOCK_ORPHAN, Lck, LckEvent, LockId, LockStatus, Mode, RESOURCE_CREATE, ResourceHandle, TIME_END,
};
use ais_client::{AisError, Error};
use common::cluster::Cluster;

const LONG: Duration = Duration::from_secs(20);

/// Two nodes, the token paced at 1 ms (stated, whatever the default): a request submitted just
/// before a kill then mostly reaches the ring only after the configuration change, the race
/// `a_killed_executive_releases_its_holders_locks_at_the_survivor` exercises.
fn pair(name: &str) -> Cluster {
    let mut c = Cluster::loopback(name, 2, "token_pace_us = 1000");
    c.start_all();
    for i in 0..2 {
        c.wait_ring(i, &[1, 2], LONG);
    }
    c
}

fn lck(c: &Cluster, i: usize) -> Lck {
    let deadline = Instant::now() + LONG;
    loop {
        match Lck::connect(&c.node(i).socket) {
            Ok(k) => return k,
            Err(e) if Instant::now() > deadline => panic!("connect to node {}: {e}", i + 1),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn again<T>(op: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    common::ckpt::again(LONG, op)
}

fn err<T: std::fmt::Debug>(r: Result<T, Error>) -> AisError {
    r.unwrap_err().ais_error().expect("an AIS error")
}

fn open(l: &mut Lck, name: &str) -> ResourceHandle {
    again(|| l.resource_open(name.as_bytes(), RESOURCE_CREATE)).expect("open")
}

/// Waits for the next grant callback, skipping waiter callbacks.
fn next_grant(l: &mut Lck) -> (LockId, Result<LockStatus, AisError>) {
    let deadline = Instant::now() + LONG;
    while Instant::now() < deadline {
        if let Some(LckEvent::Grant { lock, result, .. }) = l
            .dispatch(Some(Duration::from_millis(200)))
            .expect("dispatch")
        {
            return (lock, result);
        }
    }
    panic!("no grant callback within {LONG:?}");
}

fn aisctl(c: &Cluster, i: usize) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aisctl"));
    cmd.arg("--socket").arg(&c.node(i).socket);
    cmd
}

fn aisctl_out(c: &Cluster, i: usize, args: &[&str]) -> (bool, String) {
    let out = aisctl(c, i).args(args).output().expect("aisctl runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn calls_errors_waiters_and_grants_across_two_nodes() {
    let c = pair("lck-calls");
    let mut a = lck(&c, 0);
    let mut b = lck(&c, 1);
    assert_eq!(
        err(a.resource_open(b"", RESOURCE_CREATE)),
        AisError::InvalidParam
    );
    assert_eq!(err(a.resource_open(b"r", 0x8)), AisError::BadFlags);
    assert_eq!(
        err(again(|| a.resource_open(b"nothing", 0))),
        AisError::NotExist
    );
    let ha = open(&mut a, "r");
    // Node 2 finds it without CREATE.
    let hb = again(|| b.resource_open(b"r", 0)).expect("open at node 2");
    let bits = a.option_check().unwrap();
    assert_eq!(bits, 0x3, "orphan locks and deadlock detection");
    let (ex, s) = again(|| a.lock(ha, Mode::Ex, 0, 1, TIME_END)).unwrap();
    assert_eq!(s, LockStatus::Granted);
    assert_eq!(
        again(|| a.lock(ha, Mode::Ex, 0, 1, TIME_END)).unwrap().1,
        LockStatus::DuplicateEx
    );
    // Node 2: not queued, timed out, then queued asynchronously.
    assert_eq!(
        again(|| b.lock(hb, Mode::Pr, ais_client::lck::LOCK_NO_QUEUE, 2, TIME_END))
            .unwrap()
            .1,
        LockStatus::NotQueued
    );
    let t = Instant::now();
    assert_eq!(
        err(again(|| b.lock(hb, Mode::Pr, 0, 2, 300_000_000))),
        AisError::Timeout
    );
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    let waiting = again(|| b.lock_async(hb, Mode::Pr, 0, 77, 5)).unwrap();
    // Node 1's holder hears of the waiter.
    let deadline = Instant::now() + LONG;
    loop {
        match a.dispatch(Some(Duration::from_millis(200))).unwrap() {
            Some(LckEvent::Waiter {
                waiter_signal: 77,
                lock,
                mode_held: Mode::Ex,
                mode_requested: Mode::Pr,
            }) => {
                assert_eq!(lock, ex);
                break;
            }
            _ if Instant::now() > deadline => panic!("no waiter callback"),
            _ => {}
        }
    }
    // Errors of unlock, lock and close.
    assert_eq!(err(a.unlock(LockId(999))), AisError::NotExist);
    assert_eq!(
        err(b.unlock(waiting)),
        AisError::NotExist,
        "not granted yet"
    );
    assert_eq!(
        err(a.lock(ResourceHandle(999), Mode::Pr, 0, 0, TIME_END)),
        AisError::BadHandle
    );
    assert_eq!(
        err(a.lock(ha, Mode::Pr, 0x10, 0, TIME_END)),
        AisError::InvalidParam
    );
    again(|| a.unlock(ex)).unwrap();
    assert_eq!(next_grant(&mut b), (waiting, Ok(LockStatus::Granted)));
    again(|| b.unlock(waiting)).unwrap();
    again(|| a.resource_close(ha)).unwrap();
    assert_eq!(err(a.resource_close(ha)), AisError::BadHandle);
    // aisctl lck ls shows the resource with node 2's open handle.
    let (ok, out) = aisctl_out(&c, 0, &["lck", "ls"]);
    assert!(ok, "{out}");
    assert!(out.contains("r: 1 open, 0 granted, 0 queued"), "{out}");
}

#[test]
fn a_killed_holder_process_releases_its_lock_and_orphans_stay_until_purged() {
    let c = pair("lck-kill");
    // An aisctl process on node 1 holds EX on "r".
    let holder = Killed(
        aisctl(&c, 0)
            .args(["lck", "lock", "r", "--mode", "ex"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aisctl lck lock"),
    );
    let deadline = Instant::now() + LONG;
    loop {
        let (_, out) = aisctl_out(&c, 1, &["lck", "ls"]);
        if out.contains("r: 1 open, 1 granted") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the holder never got its lock: {out}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut b = lck(&c, 1);
    let hb = open(&mut b, "r");
    let waiting = again(|| b.lock_async(hb, Mode::Ex, 0, 2, 9)).unwrap();
    // SIGKILL the holder: its connection closes, its lock goes at every node.
    let mut holder = holder;
    holder.0.kill().unwrap();
    holder.0.wait().unwrap();
    assert_eq!(next_grant(&mut b), (waiting, Ok(LockStatus::Granted)));
    again(|| b.unlock(waiting)).unwrap();
    // A detached orphan lock stays after its aisctl exits.
    let (ok, out) = aisctl_out(&c, 0, &["lck", "lock", "o", "--orphan", "--detach"]);
    assert!(ok, "{out}");
    let ho = open(&mut b, "o");
    assert_eq!(
        again(|| b.lock(ho, Mode::Pr, 0, 2, TIME_END)).unwrap().1,
        LockStatus::Orphaned
    );
    let (ok, out) = aisctl_out(&c, 1, &["lck", "ls"]);
    assert!(ok && out.contains("orphan"), "{out}");
    let (ok, out) = aisctl_out(&c, 1, &["lck", "purge", "o"]);
    assert!(ok, "{out}");
    assert_eq!(
        again(|| b.lock(ho, Mode::Pr, LOCK_ORPHAN, 2, TIME_END))
            .unwrap()
            .1,
        LockStatus::Granted
    );
}

#[test]
fn a_killed_executive_releases_its_holders_locks_at_the_survivor() {
    let mut c = pair("lck-node");
    let mut a = lck(&c, 0);
    let ha = open(&mut a, "r");
    let (_ex, s) = again(|| a.lock(ha, Mode::Ex, 0, 1, TIME_END)).unwrap();
    assert_eq!(s, LockStatus::Granted);
    let mut b = lck(&c, 1);
    let hb = open(&mut b, "r");
    let waiting = again(|| b.lock_async(hb, Mode::Ex, 0, 2, 3)).unwrap();
    let t = Instant::now();
    c.kill(0);
    assert_eq!(next_grant(&mut b), (waiting, Ok(LockStatus::Granted)));
    eprintln!("granted at the survivor {:?} after the kill", t.elapsed());
    let (ok, out) = aisctl_out(&c, 1, &["lck", "ls"]);
    assert!(ok, "{out}");
    assert!(out.contains("r: 1 open, 1 granted, 0 queued"), "{out}");
}

#[test]
fn an_operator_releases_a_stuck_holders_lock_with_aisctl() {
    let c = pair("lck-release");
    let mut a = lck(&c, 0);
    let ha = open(&mut a, "stuck");
    let (held, s) = again(|| a.lock(ha, Mode::Ex, 0, 1, TIME_END)).unwrap();
    assert_eq!(s, LockStatus::Granted);
    let mut b = lck(&c, 1);
    let hb = open(&mut b, "stuck");
    let waiting = again(|| b.lock_async(hb, Mode::Ex, 0, 2, 4)).unwrap();
    // The operator at node 2 finds the lock's id in the listing (once the queued request
    // is delivered: the asynchronous lock returned at its submission).
    let deadline = Instant::now() + LONG;
    let r = loop {
        let (resources, _) = again(|| b.list()).unwrap();
        let r = resources
            .into_iter()
            .find(|r| r.name.as_ref() == b"stuck")
            .expect("listed");
        if r.locks.len() == 2 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let granted: Vec<_> = r.locks.iter().filter(|l| l.granted).collect();
    assert_eq!(granted.len(), 1, "{r:?}");
    let queued = r.locks.iter().find(|l| !l.granted).expect("queued").id;
    let id = granted[0].id.to_string();
    // Bad input first: each refused with a message that says what to do.
    let (ok, out) = aisctl_out(&c, 1, &["lck", "unlock", "stuck", "7"]);
    assert!(!ok && out.contains("NODE.EPOCH.N"), "{out}");
    let (ok, out) = aisctl_out(&c, 1, &["lck", "unlock", "other", &id]);
    assert!(!ok && out.contains("has no granted lock"), "{out}");
    let (ok, out) = aisctl_out(&c, 1, &["lck", "unlock", "stuck", &queued.to_string()]);
    assert!(!ok && out.contains("queued, not granted"), "{out}");
    // The release: node 2's waiter is granted; node 1's holder was not told, and its own
    // unlock finds nothing.
    let (ok, out) = aisctl_out(&c, 1, &["lck", "unlock", "stuck", &id]);
    assert!(ok && out.contains("released lock"), "{out}");
    assert_eq!(next_grant(&mut b), (waiting, Ok(LockStatus::Granted)));
    assert!(
        matches!(a.unlock(held), Err(Error::Ais(AisError::NotExist))),
        "the released holder's unlock"
    );
    let (ok, out) = aisctl_out(&c, 0, &["lck", "ls"]);
    assert!(
        ok && out.contains("stuck: 2 open, 1 granted, 0 queued"),
        "{out}"
    );
}
