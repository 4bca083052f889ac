//! Cross-check with the anchor: for the same simulated shelf, the resources and hot-swap
//! states `hpi` reports match what OpenHPI's `openhpid` (ipmidirect plugin, IPMI 1.5 LAN)
//! reports, at discovery and again after a blade was extracted.
//!
//! Compared, for every managed hot-swap resource: the tag, the entity path and the hot-swap
//! state; and that both see the shelf manager (tag "ShMC") as a resource without managed
//! hot-swap. Not compared (documented in docs/hpi.md): resource ids (assigned in discovery
//! order by each), the shelf manager's entity path (openhpid
//! `{ADVANCEDTCA_CHASSIS,1}{SHELF_MANAGER,0}{SHELF_MANAGER,0}`, hpi
//! `{ADVANCEDTCA_CHASSIS,1}{SHELF_MANAGER,1}` from its site number), and the Shelf resource
//! hpi adds for the Shelf FRU information (openhpid has none).

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Sim;
use hpi::ipmi::IpmiShelf;
use hpi::{Domain, DomainConfig, HsState, Timeout};

struct Openhpid {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Openhpid {
    fn start(sim: &Sim) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("openhpid-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("var")).unwrap();
        let tmpl = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/atca-sim/hpi/openhpi.conf.in"),
        )
        .unwrap();
        let conf = tmpl
            .replace("@HPI_DIR@", dir.to_str().unwrap())
            .replace("@SIM_PORT@", &sim.port.to_string())
            .replace("@SIM_USER@", "admin")
            .replace("@SIM_PASS@", "admin");
        let conf_path = dir.join("openhpi.conf");
        std::fs::write(&conf_path, conf).unwrap();
        std::fs::set_permissions(&conf_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let child = Command::new("openhpid")
            .arg("-n")
            .arg("-c")
            .arg(&conf_path)
            .args(["-p", &port.to_string()])
            .arg("-f")
            .arg(dir.join("openhpid.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openhpid (Debian: openhpid openhpi-clients openhpi-plugin-ipmidirect)");
        Self { child, port, dir }
    }

    fn client(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.env("OPENHPI_DAEMON_HOST", "127.0.0.1")
            .env("OPENHPI_DAEMON_PORT", self.port.to_string());
        c
    }

    /// (tag, entity path, managed hot-swap) of every resource, from `hpitree -r`.
    fn resources(&self) -> Vec<(String, String, bool)> {
        let out = self.client("hpitree").arg("-r").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut res = Vec::new();
        let (mut entity, mut hs) = (String::new(), false);
        for line in text.lines().map(str::trim) {
            if let Some(e) = line.strip_prefix("Entity Path: ") {
                entity = e.to_string();
            } else if line.contains("RESOURCE") && line.contains('|') {
                hs = line.contains("MANAGED_HOTSWAP");
            } else if let Some(tag) = line.strip_prefix("Data: ") {
                res.push((tag.to_string(), entity.clone(), hs));
            }
        }
        res
    }

    /// The resource id openhpid gave the resource tagged `tag` (hpi_shell `lsres`).
    fn rid(&self, tag: &str) -> Option<u32> {
        let text = self.shell(&["lsres"]);
        text.lines().find_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix('(')?;
            let (num, after) = rest.split_once(')')?;
            after
                .starts_with(&format!(":{tag}:"))
                .then(|| num.parse().ok())?
        })
    }

    fn shell(&self, cmds: &[&str]) -> String {
        let f = self.dir.join("cmd");
        std::fs::write(&f, cmds.join("\n") + "\nq\nq\n").unwrap();
        let out = self.client("hpi_shell").arg("-f").arg(&f).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// HPI hot-swap state of `tag`, normalised to hpi's names (ACTIVE, INACTIVE, ...).
    fn hs_state(&self, tag: &str) -> String {
        let rid = self
            .rid(tag)
            .unwrap_or_else(|| panic!("openhpid has no {tag}"));
        let text = self.shell(&[&format!("hs {rid}"), "state"]);
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Hot Swap State: "))
            .unwrap_or_else(|| panic!("no hot-swap state for {tag}: {text}"));
        normalise(line)
    }

    /// Waits until openhpid lists `n` managed hot-swap resources.
    fn wait_for_hs_resources(&self, n: usize) -> Vec<(String, String, bool)> {
        let end = Instant::now() + Duration::from_secs(40);
        loop {
            let r = self.resources();
            if r.iter().filter(|x| x.2).count() == n {
                return r;
            }
            assert!(
                Instant::now() < end,
                "openhpid did not discover {n} hot-swap resources: {r:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Openhpid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn normalise(s: &str) -> String {
    let s: String = s.chars().filter(|c| c.is_ascii_alphabetic()).collect();
    match s.to_ascii_uppercase().as_str() {
        "ACTIVE" => "ACTIVE",
        "INACTIVE" => "INACTIVE",
        "INSERTIONPENDING" => "INSERTION_PENDING",
        "EXTRACTIONPENDING" => "EXTRACTION_PENDING",
        "NOTPRESENT" => "NOT_PRESENT",
        other => panic!("unknown hot-swap state {other}"),
    }
    .to_string()
}

/// hpi's view: (tag, entity, state) of managed hot-swap resources, and the other tags.
fn ours(sim: &Sim) -> (BTreeSet<(String, String, String)>, BTreeSet<String>) {
    let mut d = Domain::new(
        IpmiShelf::new(sim.config(), Sim::creds()),
        DomainConfig {
            auto_insert_timeout: Timeout::Block,
            auto_extract_timeout: Timeout::Block,
            ..DomainConfig::default()
        },
    );
    d.start(Instant::now()).unwrap();
    let mut hs = BTreeSet::new();
    let mut other = BTreeSet::new();
    for e in d.rpt() {
        match e.hs_state {
            Some(s) if e.caps.managed_hotswap => {
                hs.insert((e.tag.clone(), e.entity.to_string(), s.name().to_string()));
            }
            _ => {
                other.insert(e.tag.clone());
            }
        }
    }
    (hs, other)
}

fn theirs(o: &Openhpid, n: usize) -> (BTreeSet<(String, String, String)>, BTreeSet<String>) {
    let res = o.wait_for_hs_resources(n);
    let mut hs = BTreeSet::new();
    let mut other = BTreeSet::new();
    for (tag, entity, managed) in res {
        if managed {
            let s = o.hs_state(&tag);
            hs.insert((tag, entity, s));
        } else {
            other.insert(tag);
        }
    }
    (hs, other)
}

#[test]
fn resources_and_hot_swap_states_match_openhpid() {
    let sim = Sim::start();
    // hpi first: openhpid clears the SEL and activates blades that request it
    let (our_hs, our_other) = ours(&sim);
    let o = Openhpid::start(&sim);
    let (their_hs, their_other) = theirs(&o, 3);
    eprintln!("hpi: {our_hs:?}\nopenhpid: {their_hs:?}");
    assert_eq!(
        our_hs, their_hs,
        "managed hot-swap resources (tag, entity path, state)"
    );
    assert!(our_other.contains("ShMC") && their_other.contains("ShMC"));
    assert!(our_hs.iter().any(|(_, _, s)| s == HsState::Active.name()));
    assert!(our_hs.iter().any(|(_, _, s)| s == HsState::Inactive.name()));

    // Blade2 pulled (M4 -> M5 -> M6 -> M1 -> M0, IPMC gone): both drop it
    sim.sh_checked(&["extract", "0x84"]);
    let (their_hs, _) = theirs(&o, 2);
    drop(o);
    let (our_hs, _) = ours(&sim);
    assert_eq!(our_hs, their_hs, "after the extraction of Blade2");
    assert!(!our_hs.iter().any(|(t, _, _)| t == "Blade2"));
}
