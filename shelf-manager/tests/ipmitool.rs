//! Debian's `ipmitool -I lanplus` against `shelfd` on 127.0.0.1 (CI installs ipmitool: see
//! `.ci/run`): cipher suites 3 and 17, the PICMG commands, SEL, SDR, FRU, sensors, the power
//! budget, and the security refusals, each checked in ipmitool's output and in shelfd's log.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::Shelfd;
use shelf_manager::rmcp::console::Console;
use shelf_manager::rmcp::crypto::Suite;

/// The M-state bit of a hot-swap reading printed by `ipmitool raw` ("00 c0 10 00").
fn state_of_raw(raw: &str) -> u8 {
    let bits = u8::from_str_radix(raw.split_whitespace().nth(2).unwrap(), 16).unwrap();
    assert_eq!(bits.count_ones(), 1, "{raw}");
    bits.trailing_zeros() as u8
}

/// Each board's M-state as the shelf manager keeps it: Get Sensor Reading of its FRU *n*
/// on the shelf manager (answered even when the board's IPMC no longer answers, which the
/// IPMC-owned hot-swap sensors of `sensor list` cannot be).
fn states(s: &Shelfd) -> Vec<u8> {
    (1..=4)
        .map(|n| state_of_raw(&s.ok(17, &["raw", "0x04", "0x2d", &n.to_string()])))
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
    // Get Session Info describes the asking session; its port is the one shelfd logged.
    let info = s.ok(17, &["session", "info", "active"]);
    for line in [
        "session handle                : 1",
        "active sessions               : 1",
        "user id                       : 1",
        "privilege level               : ADMINISTRATOR",
        "session type                  : IPMIv2/RMCP+",
        "console ip                    : 127.0.0.1",
    ] {
        assert!(info.contains(line), "{line} in {info}");
    }
    let port = info
        .lines()
        .find_map(|l| l.strip_prefix("console port                  : "))
        .unwrap()
        .trim()
        .to_string();
    assert!(
        s.log()
            .contains(&format!("peer=127.0.0.1:{port} user=admin suite=17"))
    );
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
    // The SEL tells the story: ipmitool shows every transition, named by the IPMC's
    // hot-swap sensor that generated it.
    let sel = s.ok(17, &["sel", "elist"]);
    assert!(
        sel.contains("FRU Hot Swap HS node-3 | Transition to M3"),
        "{sel}"
    );
    assert!(
        sel.contains("FRU Hot Swap HS node-3 | Transition to M4"),
        "{sel}"
    );
    assert!(
        sel.contains("FRU Hot Swap HS hub-1 | Transition to M6"),
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
    // The shelf manager's MC locator and copies of each IPMC's records.
    assert!(sdr.contains("Dynamic MC @ 20h"), "{sdr}");
    assert!(
        sdr.lines()
            .any(|l| l.starts_with("node-2") && l.contains("Dynamic MC @ 84h")),
        "{sdr}"
    );
    // sensor list reads the IPMCs' hot-swap sensors through the bridge.
    let sensors = s.ok(17, &["sensor", "list"]);
    let hs = sensors
        .lines()
        .find(|l| l.starts_with("HS node-2 "))
        .unwrap();
    assert_eq!(hs.split('|').nth(1).unwrap().trim(), "0x10", "{sensors}");
    assert!(sdr.contains("400 Watts"), "{sdr}");

    let fru = s.ok(3, &["fru", "print"]);
    assert_eq!(fru.matches("FRU Device Description").count(), 5, "{fru}");
    assert!(fru.contains("Board Product         : sim-shelf-1"), "{fru}");
    // Each board's FRU 0, read from its IPMC through the bridge.
    assert!(fru.contains("FRU Device Description : node-3"), "{fru}");
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
    let out = s.ipmitool15("legacy", "legacy-secret", &["-L", "USER", "sel", "elist"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("FRU Hot Swap HS hub-1 | Transition to M4")
    );
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
