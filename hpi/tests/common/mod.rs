//! The simulated shelf for the tests: `tests/atca-sim/sim-shelf.sh` (ipmi_sim in ATCA mode
//! with the atca_ext module), started per test on its own free ports and stopped on drop.

#![allow(dead_code, unreachable_pub)]

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use hpi::ipmi::credentials::Credentials;
use hpi::ipmi::session::SessionConfig;
use hpi::{Domain, Event, ShelfAccess, SubscriptionId};

pub struct Sim {
    pub port: u16,
    dir: PathBuf,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/atca-sim/sim-shelf.sh")
}

/// A UDP port whose next port is free for TCP too (the sim's console).
fn free_ports() -> u16 {
    for _ in 0..200 {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = u.local_addr().unwrap().port();
        if p >= 65000 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no free port pair");
}

impl Sim {
    pub fn start() -> Sim {
        let port = free_ports();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("atca-sim-{port}"));
        let sim = Sim { port, dir };
        sim.sh_checked(&["start"]);
        sim
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("bash");
        c.arg(script()).args(args);
        c.env("SIM_PORT", self.port.to_string())
            .env("SIM_DIR", &self.dir)
            .env("SIM_EXT", "1")
            .env(
                "SIM_BUILD_DIR",
                PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("atca-sim-build"),
            )
            .env("SIM_LIFETIME", "600");
        c
    }

    /// Runs sim-shelf.sh with this sim's environment; panics (with its output) on failure.
    pub fn sh_checked(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("run sim-shelf.sh");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "sim-shelf.sh {args:?} failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// Moves blade `addr` to M-state `m` with PICMG cause `cause` (SEL event included).
    pub fn hs(&self, addr: u8, m: u8, cause: u8) {
        self.sh_checked(&[
            "hs",
            &format!("0x{addr:02x}"),
            &m.to_string(),
            &cause.to_string(),
        ]);
    }

    /// The blade's M-state as the sim holds it.
    pub fn state(&self, addr: u8) -> u8 {
        let s = self.sh_checked(&["state", &format!("0x{addr:02x}")]);
        s.trim()
            .parse()
            .unwrap_or_else(|_| panic!("state output {s:?}"))
    }

    pub fn temp(&self, addr: u8, degrees: u8) {
        self.sh_checked(&["temp", &format!("0x{addr:02x}"), &degrees.to_string()]);
    }

    /// SIGKILL to ipmi_sim itself (no clean shutdown).
    pub fn kill9(&self) {
        let pid = std::fs::read_to_string(self.dir.join("simpid")).expect("simpid");
        let st = Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Stops (cleans the run dir) and starts again on the same ports.
    pub fn restart(&self) {
        self.sh_checked(&["stop"]);
        self.sh_checked(&["start"]);
    }

    pub fn config(&self) -> SessionConfig {
        SessionConfig::new(("127.0.0.1", self.port)).unwrap()
    }

    pub fn creds() -> Credentials {
        Credentials::new("admin", "admin")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.command(&["stop"]).output();
    }
}

/// Polls the domain until `pred` accepts an event or `timeout` passes; returns every event
/// read, the accepted one last. Panics with the events seen on timeout.
pub fn drive_until<S: ShelfAccess>(
    d: &mut Domain<S>,
    sub: SubscriptionId,
    timeout: Duration,
    mut pred: impl FnMut(&Event) -> bool,
) -> Vec<Event> {
    let end = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let now = Instant::now();
        d.poll(now);
        while let Some(e) = d.event_get(sub).unwrap() {
            let hit = pred(&e);
            seen.push(e);
            if hit {
                return seen;
            }
        }
        assert!(
            now < end,
            "no matching event within {timeout:?}; saw {seen:#?}"
        );
        let wait = d
            .poll_timeout()
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(20))
            .min(Duration::from_millis(20));
        std::thread::sleep(wait);
    }
}

/// Polls the domain for `dur`, returning the events read.
pub fn drive_for<S: ShelfAccess>(
    d: &mut Domain<S>,
    sub: SubscriptionId,
    dur: Duration,
) -> Vec<Event> {
    let end = Instant::now() + dur;
    let mut seen = Vec::new();
    while Instant::now() < end {
        d.poll(Instant::now());
        while let Some(e) = d.event_get(sub).unwrap() {
            seen.push(e);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    seen
}
