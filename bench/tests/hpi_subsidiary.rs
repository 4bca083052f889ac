//! A subsidiary FRU's hot-swap events through real executives (issue 19): `shelfd` (the
//! `bench shelfd` subcommand) on `configs/shelf-sim-rtm.toml`, whose node board's IPMC
//! (0x84, slot 2) also manages an RTM, FRU 1, and two `aisexec` on loopback, both with
//! `[hpi]` watching it. `ipmitool -b 0 -t 0x84 picmg deactivate 1` takes the RTM M4 → M6 →
//! M1: each node logs the two HPI transitions it gives (ACTIVE → EXTRACTION_PENDING →
//! INACTIVE) exactly once, in that order, as "hot-swap of slot 2 FRU 1" (the FRU id and the
//! slot of its board, as they went through the ring), and nothing about the board itself
//! (slot 2 FRU 0), which stays in M4. Node 1, configured as slot 2's blade, logs them as
//! "FRU 1 of this node's blade", not as its blade. Then the board is pulled out (shelfd's OEM
//! Simulated Presence): its NOT_PRESENT is accepted once per node as "slot 2 FRU 0" (node 1:
//! "this node's blade"), and nothing more about the RTM that left with it (its event has no
//! SEL record of its own and is not sent). Needs ipmitool (as `.ci/run` installs);
//! about 1 s plus the build.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ais::harness::{self, ProcessCluster};

const WAIT: Duration = Duration::from_secs(60);

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ipmitool(port: u16, args: &[&str]) -> Output {
    Command::new("ipmitool")
        .args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(["-U", "admin", "-P", "admin-secret", "-R", "2", "-N", "2"])
        .args(args)
        .output()
        .expect("ipmitool (Debian: ipmitool; .ci/run installs it)")
}

/// The M-state bits shelfd's sensor `n` reads (its n-th FRU), once it answers.
fn m_bits(port: u16, n: u8) -> Option<String> {
    let out = ipmitool(port, &["raw", "0x04", "0x2d", &n.to_string()]);
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .to_owned()
    })
}

/// The hot-swap lines node `i` accepted, "slot S FRU F: A -> B", in order.
fn accepted(c: &ProcessCluster, i: usize) -> Vec<String> {
    c.log(i)
        .lines()
        .filter_map(|l| {
            let rest = l.split("shelf: accepted hot-swap of ").nth(1)?;
            Some(rest.split(" (").next()?.to_owned())
        })
        .collect()
}

/// Waits (up to `WAIT`) until both nodes accepted the hot-swap line `line`.
fn until_every_node_accepted(c: &ProcessCluster, line: &str) {
    for i in 0..2 {
        let deadline = Instant::now() + WAIT;
        while !accepted(c, i).iter().any(|l| l == line) {
            assert!(
                Instant::now() < deadline,
                "node {}: {:?}\n{}",
                i + 1,
                accepted(c, i),
                c.log_tail(i, 30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn write_private(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn an_rtm_hot_swap_reaches_every_executive_with_its_fru_id() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("hpi-subsidiary-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users.toml");
    write_private(
        &users,
        "[[user]]\nname = \"admin\"\npassword = \"admin-secret\"\nprivilege = \"administrator\"\n",
    );
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/shelf-sim-rtm.toml");
    let port = harness::free_ports(1).unwrap()[0];
    let shelfd = Killed(
        Command::new(env!("CARGO_BIN_EXE_bench"))
            .arg("shelfd")
            .arg(&model)
            .arg("--users")
            .arg(&users)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--seed", "7"])
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("shelfd.log")).unwrap())
            .spawn()
            .expect("start bench shelfd"),
    );
    // shelfd answers, and has activated every FRU (the RTM is its third: M4 is bit 4).
    let deadline = Instant::now() + WAIT;
    while m_bits(port, 3).as_deref() != Some("10") {
        assert!(
            Instant::now() < deadline,
            "shelfd did not activate the RTM: {}",
            fs::read_to_string(dir.join("shelfd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let ports = harness::free_ports(2).unwrap();
    let builder = ProcessCluster::builder(dir.join("cluster"), 2, env!("CARGO_BIN_EXE_bench"))
        .arg("aisexec")
        .key();
    let totem = harness::key_lines(&builder.key_path());
    let cred = dir.join("shelf.cred");
    write_private(&cred, "user = admin\npassword = admin-secret\n");
    let hpi = format!(
        "\n[hpi]\naddress = \"127.0.0.1\"\nport = {port}\ncredentials = {:?}\n",
        cred.display().to_string()
    );
    // Node 1 is the blade in slot 2.
    let mut c = builder
        .create(|node| {
            let slot = if node.id == 1 { "slot = 2\n" } else { "" };
            harness::loopback_config(node, &ports, &totem) + &hpi + slot
        })
        .unwrap();
    c.spawn_all().unwrap();
    for i in 0..2 {
        c.wait_ring(i, &[1, 2], Instant::now() + WAIT).unwrap();
    }
    // Each watcher discovered the shelf (at its start, or on a retry: two watchers reading
    // the repository at once may cancel each other's SDR reservation).
    let watching = |log: String| {
        log.contains("hpi: connected to the shelf manager") || log.contains("shelf rediscovered")
    };
    let deadline = Instant::now() + WAIT;
    while !(0..2).all(|i| watching(c.log(i))) {
        assert!(
            Instant::now() < deadline,
            "{}\n{}",
            c.log_tail(0, 30),
            c.log_tail(1, 30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let out = ipmitool(port, &["-b", "0", "-t", "0x84", "picmg", "deactivate", "1"]);
    assert!(out.status.success(), "{out:?}");
    let want = [
        "slot 2 FRU 1: ACTIVE -> EXTRACTION_PENDING",
        "slot 2 FRU 1: EXTRACTION_PENDING -> INACTIVE",
    ];
    until_every_node_accepted(&c, want[1]);
    // Time for a late copy from the other node's watcher to arrive (and be dropped).
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..2 {
        assert_eq!(accepted(&c, i), want, "node {}", i + 1);
    }
    // Node 1 logs them as a FRU of its blade, not as its blade; node 2 as neither.
    assert!(
        c.log(0).contains("(FRU 1 of this node's blade)"),
        "{}",
        c.log(0)
    );
    assert!(!c.log(0).contains("(this node's blade)"), "{}", c.log(0));
    assert!(!c.log(1).contains("this node's blade"), "{}", c.log(1));
    // The board behind the same IPMC (shelfd's FRU 2) is still active.
    assert_eq!(m_bits(port, 2).as_deref(), Some("10"));
    assert_eq!(m_bits(port, 3).as_deref(), Some("02"), "the RTM in M1");

    // The board pulled out (shelfd's OEM Simulated Presence on its FRU device 2) with the
    // RTM behind its IPMC: the board's NOT_PRESENT reaches every node once with its slot
    // and FRU id (the resource had left the RPT when the watcher read the event); the RTM's
    // INACTIVE -> NOT_PRESENT has no SEL record of its own and stays local, and its own M0
    // record gives nothing.
    let out = ipmitool(port, &["raw", "0x30", "0x02", "2", "0"]);
    assert!(out.status.success(), "{out:?}");
    let pulled = "slot 2 FRU 0: ACTIVE -> NOT_PRESENT";
    until_every_node_accepted(&c, pulled);
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..2 {
        assert_eq!(
            accepted(&c, i),
            [want[0], want[1], pulled],
            "node {}",
            i + 1
        );
    }
    assert!(c.log(0).contains("(this node's blade)"), "{}", c.log(0));
    assert_eq!(m_bits(port, 3).as_deref(), Some("01"), "the RTM in M0");
    drop(c);
    drop(shelfd);
    let _ = fs::remove_dir_all(&dir);
}
