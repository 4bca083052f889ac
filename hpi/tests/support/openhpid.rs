//! The `openhpid` harness shared by the tests that compare with OpenHPI (the anchor):
//! `hpi/tests/openhpi_crosscheck.rs` (against `ipmi_sim`) and
//! `shelf-manager/tests/openhpid.rs` (against `shelfd`), which includes this file by path
//! (`#[path]`; a test-support file of the lower layer, no crate dependency).
//!
//! It starts `openhpid` with one ipmidirect handler (IPMI 1.5 LAN, MD5) on a shelf manager
//! at 127.0.0.1, on a free TCP port of its own, in a directory under the including crate's
//! `CARGO_TARGET_TMPDIR`, killed and removed on drop; and reads it with OpenHPI's clients
//! (`hpitree`, `hpi_shell`, `hpievents`). Needs what `.ci/run` installs: openhpid,
//! openhpi-clients, openhpi-plugin-ipmidirect.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `openhpid`, killed on drop.
pub struct Openhpid {
    child: Child,
    port: u16,
    /// Its directory (configuration, state, ipmidirect's protocol log `ipmidirect00.log`).
    pub dir: PathBuf,
}

/// One resource as `hpitree -r` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// openhpid's resource id.
    pub rid: u32,
    /// Tag.
    pub tag: String,
    /// Entity path as printed.
    pub entity: String,
    /// MANAGED_HOTSWAP capability.
    pub managed_hotswap: bool,
}

impl Openhpid {
    /// openhpid watching the shelf manager at 127.0.0.1:`shelf_port` as `user` (an IPMI 1.5
    /// MD5 login at privilege `auth_level`: "operator" or "admin").
    pub fn start(shelf_port: u16, user: &str, password: &str, auth_level: &str) -> Openhpid {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("openhpid-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("var")).unwrap();
        let conf = format!(
            r#"OPENHPI_LOG_ON_SEV = "INFORMATIONAL"
OPENHPI_DEL_SAVE = "NO"
OPENHPI_DAT_SAVE = "NO"
OPENHPI_PATH = "/usr/lib/openhpi"
OPENHPI_VARPATH = "{dir}/var"

handler libipmidirect {{
        entity_root = "{{ADVANCEDTCA_CHASSIS,1}}"
        name = "lan"
        addr = "127.0.0.1"
        port = "{shelf_port}"
        auth_type = "md5"
        auth_level = "{auth_level}"
        username = "{user}"
        password = "{password}"
        IpmiConnectionTimeout = "5000"
        AtcaConnectionTimeout = "1000"
        MaxOutstanding = "1"
        AtcaPollAliveMCs = "1"
        logflags = "file"
        logfile = "{dir}/ipmidirect"
        logfile_max = "1"
}}
"#,
            dir = dir.display(),
        );
        let conf_path = dir.join("openhpi.conf");
        std::fs::write(&conf_path, conf).unwrap();
        // openhpid refuses a configuration others may read.
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
            .expect("openhpid (Debian: openhpid openhpi-clients openhpi-plugin-ipmidirect; .ci/run installs them)");
        Openhpid { child, port, dir }
    }

    /// An OpenHPI client program pointed at this daemon.
    pub fn client(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.env("OPENHPI_DAEMON_HOST", "127.0.0.1")
            .env("OPENHPI_DAEMON_PORT", self.port.to_string());
        c
    }

    /// Every resource, from `hpitree -r`.
    pub fn resources(&self) -> Vec<Resource> {
        let out = self.client("hpitree").arg("-r").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut res = Vec::new();
        let (mut rid, mut entity, mut hs) = (0, String::new(), false);
        for line in text.lines().map(str::trim) {
            if let Some(e) = line.strip_prefix("Entity Path: ") {
                entity = e.to_string();
            } else if let Some(r) = line.strip_prefix("ResourceId: ") {
                rid = r.parse().unwrap_or(0);
            } else if line.contains("RESOURCE") && line.contains('|') {
                hs = line.contains("MANAGED_HOTSWAP");
            } else if let Some(tag) = line.strip_prefix("Data: ") {
                res.push(Resource {
                    rid,
                    tag: tag.to_string(),
                    entity: entity.clone(),
                    managed_hotswap: hs,
                });
            }
        }
        res
    }

    /// Waits (up to 60 s) until `done` holds for the resource list; returns it.
    pub fn wait_for(&self, what: &str, done: impl Fn(&[Resource]) -> bool) -> Vec<Resource> {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.resources();
            if done(&r) {
                return r;
            }
            assert!(Instant::now() < end, "openhpid: {what}: {r:?}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Waits (up to 60 s) until openhpid lists exactly `n` managed hot-swap resources.
    pub fn wait_for_hs_resources(&self, n: usize) -> Vec<Resource> {
        self.wait_for(&format!("{n} hot-swap resources"), |r| {
            r.iter().filter(|x| x.managed_hotswap).count() == n
        })
    }

    /// Runs `hpi_shell` on `cmds`; its output.
    pub fn shell(&self, cmds: &[&str]) -> String {
        let f = self.dir.join("cmd");
        std::fs::write(&f, cmds.join("\n") + "\nq\nq\n").unwrap();
        let out = self.client("hpi_shell").arg("-f").arg(&f).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The resource id openhpid gave the first resource tagged `tag` (hpi_shell `lsres`).
    pub fn rid(&self, tag: &str) -> Option<u32> {
        self.shell(&["lsres"]).lines().find_map(|l| {
            let (num, after) = l.trim().strip_prefix('(')?.split_once(')')?;
            after
                .starts_with(&format!(":{tag}:"))
                .then(|| num.parse().ok())?
        })
    }

    /// The HPI hot-swap state openhpid reports for the resource tagged `tag`, in hpi's names.
    pub fn hs_state(&self, tag: &str) -> String {
        let rid = self
            .rid(tag)
            .unwrap_or_else(|| panic!("openhpid has no {tag}"));
        self.hs_state_of(rid)
    }

    /// The HPI hot-swap state openhpid reports for resource `rid`, in hpi's names (ACTIVE,
    /// INACTIVE, INSERTION_PENDING, EXTRACTION_PENDING, NOT_PRESENT).
    pub fn hs_state_of(&self, rid: u32) -> String {
        let text = self.shell(&[&format!("hs {rid}"), "state"]);
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Hot Swap State: "))
            .unwrap_or_else(|| panic!("no hot-swap state for resource {rid}: {text}"));
        normalise(line)
    }
}

impl Drop for Openhpid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An `hpi_shell` hot-swap state in hpi's names.
pub fn normalise(s: &str) -> String {
    let s: String = s.chars().filter(char::is_ascii_alphabetic).collect();
    match s.to_ascii_uppercase().as_str() {
        "ACTIVE" => "ACTIVE",
        "INACTIVE" => "INACTIVE",
        "INSPENDING" | "INSERTIONPENDING" => "INSERTION_PENDING",
        "EXTPENDING" | "EXTRACTIONPENDING" => "EXTRACTION_PENDING",
        "NOTPRESENT" => "NOT_PRESENT",
        other => panic!("unknown hot-swap state {other}"),
    }
    .to_string()
}

/// (resource entity, previous state, new state) of the HOTSWAP events in `hpievents` output.
pub fn hot_swap_events(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut from = String::new();
    let mut current = None;
    for line in text.lines().map(str::trim) {
        if let Some(e) = line.strip_prefix("From Resource: ") {
            from = e.to_string();
        } else if let Some(s) = line.strip_prefix("HotSwapState: ") {
            current = Some(s.to_string());
        } else if let Some(prev) = line.strip_prefix("PreviousHotSwapState: ")
            && let Some(c) = current.take()
        {
            out.push((from.clone(), prev.to_string(), c));
        }
    }
    out
}
