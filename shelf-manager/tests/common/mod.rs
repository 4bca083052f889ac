//! The `shelfd` test harness shared by the tests that run it as a process: start it on a
//! free port with a users file, run ipmitool against it, read its log, log in over UDP with
//! the in-crate console.
#![allow(dead_code, unreachable_pub)]

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use shelf_manager::rmcp::console::Console;
use shelf_manager::rmcp::crypto::Suite;

pub const USERS: &str = r#"
[[user]]
name = "admin"
password = "admin-secret"
privilege = "administrator"

[[user]]
name = "op"
password = "op-secret"
privilege = "operator"

[[user]]
name = "viewer"
password = "viewer-secret"
privilege = "user"

[[user]]
name = "legacy"
password = "legacy-secret"
privilege = "operator"
ipmi15 = true
"#;

/// A running `shelfd` on its own port, killed on drop.
pub struct Shelfd {
    child: Child,
    dir: PathBuf,
    /// Where it listens.
    pub addr: SocketAddr,
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Shelfd {
    pub fn start(name: &str, extra: &[&str]) -> Shelfd {
        Shelfd::start_model(name, "shelf-sim.toml", extra)
    }

    /// Starts `shelfd` on the shelf model `configs/<model>`.
    pub fn start_model(name: &str, model: &str, extra: &[&str]) -> Shelfd {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("shelfd-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let users = dir.join("users.toml");
        std::fs::write(&users, USERS).unwrap();
        std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();
        let model = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../configs")
            .join(model);
        for _ in 0..5 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
            let log = std::fs::File::create(dir.join("shelfd.log")).unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_shelfd"))
                .arg(&model)
                .arg("--users")
                .arg(&users)
                .arg("--listen")
                .arg(addr.to_string())
                .args(["--seed", "7"])
                .args(extra)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            let mut s = Shelfd {
                child,
                dir: dir.clone(),
                addr,
            };
            if s.wait_ready() {
                return s;
            }
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
        panic!(
            "shelfd did not start; log:\n{}",
            std::fs::read_to_string(dir.join("shelfd.log")).unwrap_or_default()
        );
    }

    /// Waits for an RMCP pong.
    pub fn wait_ready(&mut self) -> bool {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let ping = [0x06, 0, 0xFF, 0x06, 0, 0, 0x11, 0xBE, 0x80, 1, 0, 0];
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 64];
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            sock.send_to(&ping, self.addr).unwrap();
            if let Ok((n, _)) = sock.recv_from(&mut buf)
                && n > 9
                && buf[8] == 0x40
            {
                return true;
            }
        }
        false
    }

    pub fn ipmitool(&self, user: &str, password: &str, cipher: u8, args: &[&str]) -> Output {
        self.ipmitool_at(self.addr, user, password, cipher, args)
    }

    /// ipmitool over IPMI 1.5 (`-I lan -A MD5`).
    pub fn ipmitool15(&self, user: &str, password: &str, args: &[&str]) -> Output {
        Command::new("ipmitool")
            .args(["-I", "lan", "-A", "MD5", "-H", "127.0.0.1", "-p"])
            .arg(self.addr.port().to_string())
            .args(["-U", user, "-P", password, "-R", "1", "-N", "2"])
            .args(args)
            .output()
            .expect("run ipmitool (installed by .ci/run)")
    }

    pub fn ipmitool_at(
        &self,
        addr: SocketAddr,
        user: &str,
        password: &str,
        cipher: u8,
        args: &[&str],
    ) -> Output {
        Command::new("ipmitool")
            .args(["-I", "lanplus", "-H", "127.0.0.1", "-p"])
            .arg(addr.port().to_string())
            .args(["-U", user, "-P", password, "-C"])
            .arg(cipher.to_string())
            .args(["-R", "1", "-N", "2"])
            .args(args)
            .output()
            .expect("run ipmitool (installed by .ci/run)")
    }

    /// ipmitool as admin; panics with its output unless it succeeds; returns stdout.
    pub fn ok(&self, cipher: u8, args: &[&str]) -> String {
        let out = self.ipmitool("admin", "admin-secret", cipher, args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "ipmitool {args:?} failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("shelfd.log")).unwrap_or_default()
    }

    /// Waits up to 5 s for `needle` in the log.
    pub fn log_has(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// A logged-in console over UDP.
    pub fn console(&self, user: &str, password: &str, role: u8) -> Udp {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        sock.connect(self.addr).unwrap();
        let mut c = Console::new(Suite::Sha256, 0x5151, user, password, role);
        let mut udp = Udp { sock, c: c.clone() };
        let open = udp.exchange(&c.open_session()).unwrap();
        let r1 = c.rakp1(&open).unwrap();
        let r2 = udp.exchange(&r1).unwrap();
        let r3 = c.rakp3(&r2).unwrap();
        let r4 = udp.exchange(&r3).unwrap();
        c.finish(&r4).unwrap();
        udp.c = c;
        udp
    }
}

impl Drop for Shelfd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct Udp {
    sock: UdpSocket,
    /// The console state (sequence numbers, keys).
    pub c: Console,
}

impl Udp {
    pub fn exchange(&self, pkt: &[u8]) -> Option<Vec<u8>> {
        self.sock.send(pkt).unwrap();
        let mut buf = [0u8; 1024];
        self.sock.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
    }

    /// A request; `None` when the server does not answer.
    pub fn cmd(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> Option<(u8, Vec<u8>)> {
        let pkt = self.c.request(netfn, cmd, data);
        let reply = self.exchange(&pkt)?;
        Some(self.c.response(&reply).unwrap())
    }
}

/// An `hpi` domain over the shelf manager at 127.0.0.1:`port`, started (discovery done),
/// with the auto-insert and auto-extract timeouts blocked so a test drives every transition.
pub fn started_domain(port: u16, user: &str, password: &str) -> hpi::Domain<hpi::ipmi::IpmiShelf> {
    let session = hpi::ipmi::session::SessionConfig::new(("127.0.0.1", port)).unwrap();
    let mut d = hpi::Domain::new(
        hpi::ipmi::IpmiShelf::new(
            session,
            hpi::ipmi::credentials::Credentials::new(user, password),
        ),
        hpi::DomainConfig {
            auto_insert_timeout: hpi::Timeout::Block,
            auto_extract_timeout: hpi::Timeout::Block,
            ..hpi::DomainConfig::default()
        },
    );
    d.start(Instant::now()).unwrap();
    d
}
