//! Debian's `ipmitool -I lanplus` against `shelfd` on 127.0.0.1 (CI installs ipmitool: see
//! `.ci/run`): cipher suites 3 and 17, the PICMG commands, SEL, SDR, FRU, sensors, the power
//! budget, and the security refusals, each checked in ipmitool's output and in shelfd's log.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use shelf_manager::rmcp::console::Console;
use shelf_manager::rmcp::crypto::Suite;

const USERS: &str = r#"
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
struct Shelfd {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Shelfd {
    fn start(name: &str, extra: &[&str]) -> Shelfd {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("shelfd-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let users = dir.join("users.toml");
        std::fs::write(&users, USERS).unwrap();
        std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();
        let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs/shelf-sim.toml");
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
    fn wait_ready(&mut self) -> bool {
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

    fn ipmitool(&self, user: &str, password: &str, cipher: u8, args: &[&str]) -> Output {
        self.ipmitool_at(self.addr, user, password, cipher, args)
    }

    /// ipmitool over IPMI 1.5 (`-I lan -A MD5`).
    fn ipmitool15(&self, user: &str, password: &str, args: &[&str]) -> Output {
        Command::new("ipmitool")
            .args(["-I", "lan", "-A", "MD5", "-H", "127.0.0.1", "-p"])
            .arg(self.addr.port().to_string())
            .args(["-U", user, "-P", password, "-R", "1", "-N", "2"])
            .args(args)
            .output()
            .expect("run ipmitool (installed by .ci/run)")
    }

    fn ipmitool_at(
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
    fn ok(&self, cipher: u8, args: &[&str]) -> String {
        let out = self.ipmitool("admin", "admin-secret", cipher, args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "ipmitool {args:?} failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("shelfd.log")).unwrap_or_default()
    }

    /// Waits up to 5 s for `needle` in the log.
    fn log_has(&self, needle: &str) -> bool {
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
    fn console(&self, user: &str, password: &str, role: u8) -> Udp {
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

struct Udp {
    sock: UdpSocket,
    c: Console,
}

impl Udp {
    fn exchange(&self, pkt: &[u8]) -> Option<Vec<u8>> {
        self.sock.send(pkt).unwrap();
        let mut buf = [0u8; 1024];
        self.sock.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
    }

    /// A request; `None` when the server does not answer.
    fn cmd(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> Option<(u8, Vec<u8>)> {
        let pkt = self.c.request(netfn, cmd, data);
        let reply = self.exchange(&pkt)?;
        Some(self.c.response(&reply).unwrap())
    }
}

/// The M-state shown by `sensor list` for board `name` ("HS name | 0x10 | discrete ...").
fn hs_state(sensor_list: &str, board: &str) -> u8 {
    let line = sensor_list
        .lines()
        .find(|l| l.starts_with(&format!("HS {board} ")))
        .unwrap_or_else(|| panic!("no HS {board} in {sensor_list}"));
    let value = line.split('|').nth(1).unwrap().trim();
    let bits = u8::from_str_radix(value.trim_start_matches("0x"), 16).unwrap();
    assert_eq!(bits.count_ones(), 1, "{line}");
    bits.trailing_zeros() as u8
}

fn states(s: &Shelfd) -> Vec<u8> {
    let list = s.ok(17, &["sensor", "list"]);
    ["hub-1", "node-2", "node-3", "node-4"]
        .iter()
        .map(|b| hs_state(&list, b))
        .collect()
}

fn denials(s: &Shelfd) -> usize {
    s.ok(3, &["sel", "list"])
        .lines()
        .filter(|l| l.contains("Power Unit #0x80") && l.contains("Soft-power control failure"))
        .count()
}

#[test]
fn both_cipher_suites_answer_the_picmg_properties_and_address_info() {
    let s = Shelfd::start("picmg", &[]);
    for cipher in [3, 17] {
        let p = s.ok(cipher, &["picmg", "properties"]);
        assert!(p.contains("PICMG Ext. Version : 2.2"), "{p}");
        assert!(p.contains("Max FRU Device ID\t: 0x04"), "{p}");
        let a = s.ok(cipher, &["picmg", "addrinfo"]);
        assert!(a.contains("IPMB-0 Address   : 0x20"), "{a}");
        assert!(
            a.contains("Site Type        : Dedicated Shelf Manager"),
            "{a}"
        );
        let a = s.ok(cipher, &["picmg", "addrinfo", "3"]);
        assert!(a.contains("Hardware Address : 0x43"), "{a}");
        assert!(a.contains("IPMB-0 Address   : 0x86"), "{a}");
        assert!(a.contains("Site ID          : 0x03"), "{a}");
        assert!(a.contains("Site Type        : ATCA board"), "{a}");
    }
    assert!(s.log_has("session open"));
    assert!(s.log().contains("suite=3") && s.log().contains("suite=17"));
}

#[test]
fn activation_deactivation_policy_and_the_power_budget() {
    let s = Shelfd::start("activate", &["--manual-activation"]);
    // Every board inserted, handle closed, waiting in M2 for the system manager.
    assert_eq!(states(&s), [2, 2, 2, 2]);
    assert_eq!(denials(&s), 0);
    s.ok(17, &["picmg", "activate", "1"]);
    s.ok(17, &["picmg", "activate", "2"]);
    assert_eq!(states(&s), [4, 4, 2, 2]);
    // The feeds cover two boards: the third is refused power and waits in M3; the
    // refusal is in the SEL and on the power budget sensor.
    s.ok(3, &["picmg", "activate", "3"]);
    assert_eq!(states(&s), [4, 4, 3, 2]);
    assert_eq!(denials(&s), 1);
    let list = s.ok(3, &["sensor", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("Power budget") && l.contains("0x20")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("Feed A W") && l.contains("400.000")),
        "{list}"
    );
    // One deactivates: its power goes to the waiting board.
    s.ok(17, &["picmg", "deactivate", "1"]);
    assert_eq!(states(&s), [1, 4, 4, 2]);
    // Activating an M1 FRU is refused; nothing moves.
    let out = s.ipmitool("admin", "admin-secret", 17, &["picmg", "activate", "1"]);
    assert!(!out.status.success());
    assert_eq!(states(&s), [1, 4, 4, 2]);
    assert!(s.log_has("system manager request refused"));
    // Activation policy: lock, read back, unlock.
    s.ok(3, &["picmg", "policy", "set", "4", "1", "1"]);
    let p = s.ok(3, &["picmg", "policy", "get", "4"]);
    assert!(
        p.contains(" activation locked") && p.contains("deactivation not locked"),
        "{p}"
    );
    s.ok(3, &["picmg", "policy", "set", "4", "3", "2"]);
    let p = s.ok(3, &["picmg", "policy", "get", "4"]);
    assert!(
        p.contains("activation not locked") && p.contains(" deactivation locked"),
        "{p}"
    );
    // The SEL tells the story: ipmitool shows every transition.
    let sel = s.ok(17, &["sel", "list"]);
    assert!(
        sel.contains("FRU Hot Swap #0x03 | Transition to M3"),
        "{sel}"
    );
    assert!(
        sel.contains("FRU Hot Swap #0x03 | Transition to M4"),
        "{sel}"
    );
    assert!(
        sel.contains("FRU Hot Swap #0x01 | Transition to M6"),
        "{sel}"
    );
}

#[test]
fn sel_sdr_fru_sensor_and_chassis_outputs() {
    let s = Shelfd::start("lists", &[]);
    // Automatic activation: two boards powered, node-3 waits, node-4 waits behind it.
    assert_eq!(states(&s), [4, 4, 3, 3]);
    let info = s.ok(17, &["sel", "info"]);
    let entries: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("Entries          : "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let sel = s.ok(17, &["sel", "list"]);
    assert_eq!(sel.lines().count(), entries, "{sel}");
    assert!(sel.lines().all(|l| l.contains("Asserted")), "{sel}");
    assert_eq!(denials(&s), 2);

    let sdr = s.ok(3, &["sdr", "list", "all"]);
    for name in [
        "HS hub-1",
        "HS node-4",
        "Feed A W",
        "Feed B W",
        "Power budget",
    ] {
        assert!(sdr.lines().any(|l| l.starts_with(name)), "{name} in {sdr}");
    }
    assert!(sdr.contains("Log FRU @02h a0.2"), "{sdr}");
    assert!(sdr.contains("400 Watts"), "{sdr}");

    let fru = s.ok(3, &["fru", "print"]);
    assert_eq!(fru.matches("FRU Device Description").count(), 5, "{fru}");
    assert!(fru.contains("Board Product         : sim-shelf-1"), "{fru}");
    assert!(
        fru.contains("FRU Device Description : node-3 (ID 3)"),
        "{fru}"
    );
    assert!(fru.contains("Board Serial          : site-3"), "{fru}");

    let chassis = s.ok(17, &["chassis", "status"]);
    assert!(chassis.contains("System Power         : on"), "{chassis}");
    let mc = s.ok(17, &["mc", "info"]);
    assert!(mc.contains("IPMI Version              : 2.0"), "{mc}");
}

/// A UDP relay between ipmitool and shelfd that sends every sealed request twice: the copy
/// is a replay of ipmitool's own packet from the same address.
fn replaying_relay(server: SocketAddr, stop: Arc<AtomicBool>) -> SocketAddr {
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").unwrap();
    back.connect(server).unwrap();
    front
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    back.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = front.local_addr().unwrap();
    thread::spawn(move || {
        let mut client = None;
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = front.recv_from(&mut buf) {
                client = Some(from);
                back.send(&buf[..n]).unwrap();
                if n > 5 && buf[4] == 0x06 && buf[5] & 0xC0 == 0xC0 {
                    back.send(&buf[..n]).unwrap();
                }
            }
            if let (Ok(n), Some(c)) = (back.recv(&mut buf), client) {
                front.send_to(&buf[..n], c).unwrap();
            }
        }
    });
    addr
}

#[test]
fn security_refusals_are_logged_and_disturb_nothing_else() {
    let s = Shelfd::start("security", &["--handshake-timeout", "1"]);
    // A session that must keep working through everything below.
    let mut bystander = s.console("op", "op-secret", 3);
    assert_eq!(bystander.cmd(0x06, 0x3B, &[3]), Some((0, vec![3])));
    let before = states(&s);

    // Wrong password: ipmitool rejects our RAKP 2 and stops; the handshake times out.
    let out = s.ipmitool("admin", "wrong-password", 17, &["mc", "info"]);
    assert!(!out.status.success());
    assert!(s.log_has("handshake abandoned after RAKP 2 (wrong password at the console?)"));
    // Unknown user.
    let out = s.ipmitool("mallory", "x", 3, &["mc", "info"]);
    assert!(!out.status.success());
    assert!(s.log_has("unknown user \"mallory\""));
    // Escalation: a user-level account asking for administrator.
    let out = s.ipmitool("viewer", "viewer-secret", 3, &["mc", "info"]);
    assert!(!out.status.success());
    assert!(s.log_has("user \"viewer\" asked for privilege 4 above its maximum user"));
    // ... and, logged in at its own level, trying an operator command.
    let out = s.ipmitool(
        "viewer",
        "viewer-secret",
        3,
        &["-L", "USER", "picmg", "deactivate", "1"],
    );
    assert!(!out.status.success());
    assert!(s.log_has("netfn 0x2c cmd 0x0c needs operator, the session holds user"));
    let out = s.ipmitool(
        "viewer",
        "viewer-secret",
        3,
        &["-L", "USER", "picmg", "properties"],
    );
    assert!(out.status.success(), "{out:?}");
    // A command outside any session.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(
        &shelf_manager::rmcp::console::v15_request(0x2C, 0x0C, &[0, 1, 0]),
        s.addr,
    )
    .unwrap();
    assert!(s.log_has("netfn 0x2c cmd 0x0c needs a session"));

    // Replay: every sealed ipmitool packet is sent twice; the copies are refused and
    // ipmitool's commands still work.
    let stop = Arc::new(AtomicBool::new(false));
    let relay = replaying_relay(s.addr, stop.clone());
    let out = s.ipmitool_at(relay, "admin", "admin-secret", 17, &["picmg", "properties"]);
    stop.store(true, Ordering::Relaxed);
    assert!(out.status.success(), "{out:?}");
    assert!(s.log_has("replayed"));

    // Out of the window: a correctly sealed request far ahead is dropped unanswered.
    let far = bystander.c.seq + 100;
    let pkt = bystander.c.request_with_seq(far, 0x06, 0x01, &[]);
    assert_eq!(bystander.exchange(&pkt), None);
    assert!(s.log_has("outside the window"));

    // Nothing else disturbed: the bystander and the FRU states.
    assert_eq!(bystander.cmd(0x06, 0x01, &[]).map(|r| r.0), Some(0));
    assert_eq!(states(&s), before);
    let log = s.log();
    for secret in [
        "admin-secret",
        "op-secret",
        "viewer-secret",
        "wrong-password",
    ] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

#[test]
fn a_full_session_table_refuses_new_sessions_until_handshakes_expire() {
    let s = Shelfd::start(
        "table",
        &["--max-sessions", "2", "--handshake-timeout", "2"],
    );
    let mut first = s.console("admin", "admin-secret", 4);
    // One half-open session (Open Session only) fills the table.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let c = Console::new(Suite::Sha1, 9, "admin", "admin-secret", 4);
    sock.send_to(&c.open_session(), s.addr).unwrap();
    let mut buf = [0u8; 256];
    sock.recv_from(&mut buf).unwrap();
    let out = s.ipmitool("admin", "admin-secret", 17, &["mc", "info"]);
    assert!(!out.status.success());
    assert!(s.log_has("session table full"));
    // The established session is unaffected.
    assert_eq!(first.cmd(0x06, 0x01, &[]).map(|r| r.0), Some(0));
    // The half-open one expires; ipmitool gets in (keep `first` alive meanwhile).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        thread::sleep(Duration::from_millis(500));
        assert_eq!(first.cmd(0x06, 0x01, &[]).map(|r| r.0), Some(0));
        let out = s.ipmitool("admin", "admin-secret", 17, &["mc", "info"]);
        if out.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "the table never freed");
    }
}

#[test]
fn ipmi15_md5_sessions_only_for_users_that_allow_them() {
    let s = Shelfd::start("ipmi15", &[]);
    let out = s.ipmitool15(
        "legacy",
        "legacy-secret",
        &["-L", "OPERATOR", "picmg", "properties"],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Max FRU Device ID\t: 0x04"));
    let out = s.ipmitool15("legacy", "legacy-secret", &["-L", "USER", "sel", "list"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("FRU Hot Swap #0x01 | Transition to M4"));
    assert!(s.log_has("IPMI 1.5 session open (MD5)"));
    // An operator command at operator level works; above the user's level it is refused.
    let out = s.ipmitool15(
        "legacy",
        "legacy-secret",
        &["-L", "OPERATOR", "picmg", "deactivate", "2"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(states(&s)[1], 1);
    let out = s.ipmitool15(
        "legacy",
        "legacy-secret",
        &["-L", "ADMINISTRATOR", "mc", "info"],
    );
    assert!(!out.status.success());
    assert!(s.log_has("user \"legacy\" asked for privilege 4 above its maximum operator"));
    // Wrong password: the Activate Session AuthCode does not match.
    let out = s.ipmitool15("legacy", "wrong", &["mc", "info"]);
    assert!(!out.status.success());
    assert!(s.log_has("user \"legacy\": wrong password"));
    // A user without ipmi15 cannot take the weaker path, but RMCP+ still works for it.
    let out = s.ipmitool15("admin", "admin-secret", &["mc", "info"]);
    assert!(!out.status.success());
    assert!(s.log_has("user \"admin\" may not open IPMI 1.5 sessions (ipmi15 is off)"));
    s.ok(17, &["mc", "info"]);
    assert!(!s.log().contains("legacy-secret"));
}
