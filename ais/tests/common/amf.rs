//! Real executives running an AMF model whose components are the test binary itself (it
//! needs `harness = false` and its own `main`, which calls [`component`] when started as
//! `BINARY component DIR`).
//!
//! The component registers under the name its executive gave it, answers every callback,
//! and writes into `DIR`, per component (`SU.COMP`): its pid (`SU.COMP.pid`) and what it holds
//! (`SU.COMP.state`: one `SI HA` line per SI, sorted; empty when nothing), and every change
//! (`SU.COMP.history`: `SI HA` or `SI none` lines, appended). On the test's
//! order it misbehaves: while `SU.COMP.hang` exists its health checks go unanswered; a
//! recovery code written to `SU.COMP.report` is reported with `saAmfComponentErrorReport`
//! (once: the file is removed).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ais_client::amf::{Amf, Callback, Tree};

use super::cluster::{Cluster, free_ports, key_lines};

/// How long a wait may take before the test fails.
pub const LONG: Duration = Duration::from_secs(30);

/// Writes `text` to `path` whole (a reader never sees half of it).
pub fn put(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).expect("write");
    fs::rename(&tmp, path).expect("rename");
}

/// The test component: registers, answers callbacks, writes what it holds.
pub fn component(dir: &Path) {
    let name = std::env::var("SA_AMF_COMPONENT_NAME").expect("SA_AMF_COMPONENT_NAME is set");
    let part = |prefix: &str| {
        name.split(',')
            .find_map(|p| p.strip_prefix(prefix))
            .expect("the DN names the SU and the component")
            .to_owned()
    };
    let me = format!("{}.{}", part("safSu="), part("safComp="));
    let socket = PathBuf::from(
        fs::read_to_string(dir.join("socket").join(part("safSu=")))
            .expect("socket file")
            .trim(),
    );
    let file = |ext: &str| dir.join(format!("{me}.{ext}"));
    let mut holds: BTreeMap<String, String> = BTreeMap::new();
    let write = |holds: &BTreeMap<String, String>| {
        let text: String = holds
            .iter()
            .map(|(si, ha)| format!("{si} {ha}\n"))
            .collect();
        put(&file("state"), &text);
    };
    let note = |si: &str, ha: &str| {
        use std::io::Write as _;
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file("history"))
            .expect("history file");
        writeln!(f, "{si} {ha}").expect("history");
    };
    // The state first: a reader that sees the new pid sees what this process holds.
    write(&holds);
    put(&file("pid"), &std::process::id().to_string());
    let mut amf = Amf::initialize(&socket).expect("connect to the executive");
    // Refused (EXIST) when the executive is already cleaning this instance up: just go.
    if amf.register(None).is_err() {
        return;
    }
    assert_eq!(amf.name_get().expect("name get"), name);
    loop {
        if let Ok(code) = fs::read_to_string(file("report")) {
            let _ = fs::remove_file(file("report"));
            let code: u8 = code.trim().parse().expect("a recovery code");
            if amf.error_report(code).is_err() {
                return;
            }
        }
        // Any error (the executive went away): exit.
        let Ok(cb) = amf.dispatch(Some(Duration::from_millis(20))) else {
            return;
        };
        let answer = match cb {
            Some(Callback::CsiSet {
                invocation, si, ha, ..
            }) => {
                note(&si, ha.name());
                holds.insert(si, ha.name().to_owned());
                write(&holds);
                invocation
            }
            Some(Callback::CsiRemove { invocation, si, .. }) => {
                note(&si, "none");
                holds.remove(&si);
                write(&holds);
                invocation
            }
            Some(Callback::Healthcheck { invocation, .. }) => {
                if file("hang").exists() {
                    continue;
                }
                invocation
            }
            Some(Callback::Terminate { invocation }) => {
                holds.clear();
                write(&holds);
                let _ = amf.response(invocation, true);
                return;
            }
            Some(_) | None => continue,
        };
        if amf.response(answer, true).is_err() {
            return;
        }
    }
}

/// A cluster of executives running one AMF model, and the components' directory.
pub struct AmfCluster {
    /// The executives.
    pub c: Cluster,
    /// The components' directory.
    pub dir: PathBuf,
}

impl Drop for AmfCluster {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl AmfCluster {
    /// `n` executives on loopback (not started) with the model `model`, in which `{cmd}`
    /// stands for the command that runs the test component, and `[node.nI]` tables are
    /// added for nodes 1..=n (node id I, failfast: `kill -9` of the executive) unless the
    /// model has a `[node` table of its own.
    pub fn new(name: &str, n: usize, model: &str) -> AmfCluster {
        let dir = std::env::temp_dir().join(format!("ais-amf-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("socket")).expect("component dir");
        let exe = std::env::current_exe().expect("this binary");
        let cmd = format!("exec {} component {}", exe.display(), dir.display());
        let mut text = String::new();
        if !model.contains("[node") {
            for i in 1..=n {
                text += &format!("[node.n{i}]\nnodeid = {i}\nfailfast = \"kill -9 $PPID\"\n\n");
            }
        }
        text += &model.replace("{cmd}", &format!("{cmd:?}"));
        let path = dir.join("amf.toml");
        fs::write(&path, text).expect("model");
        let ports = free_ports(n);
        let c = Cluster::new(
            name,
            n,
            |node| {
                let totem = key_lines(&node.dir) + "\n";
                ais::harness::loopback_config(node, &ports, &totem)
                    + &format!("\n[amf]\nmodel = {:?}\n", path.display().to_string())
            },
            Vec::new(),
        );
        AmfCluster { c, dir }
    }

    /// Tells the components of SU `su` (on node `node`, 1-based) where their executive is.
    pub fn socket_for(&self, su: &str, node: usize) {
        put(
            &self.dir.join("socket").join(su),
            &self.c.node(node - 1).socket.display().to_string(),
        );
    }

    /// Starts every executive and waits for the ring of all of them.
    pub fn start(&mut self) {
        self.c.start_all();
        let all: Vec<u32> = (1..=self.c.len() as u32).collect();
        for i in 0..self.c.len() {
            self.c.wait_ring(i, &all, LONG);
        }
    }

    /// What component `comp` of SU `su` holds: SI -> HA state name.
    pub fn held(&self, su: &str, comp: &str) -> BTreeMap<String, String> {
        fs::read_to_string(self.dir.join(format!("{su}.{comp}.state")))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(si, ha)| (si.to_owned(), ha.to_owned()))
            .collect()
    }

    /// The HA state component `comp` of SU `su` holds for SI `si` ("" for none).
    pub fn ha(&self, su: &str, comp: &str, si: &str) -> String {
        self.held(su, comp).remove(si).unwrap_or_default()
    }

    /// Every HA change component `comp` of SU `su` took, oldest first (`SI HA`, `SI none`).
    pub fn history(&self, su: &str, comp: &str) -> Vec<String> {
        fs::read_to_string(self.dir.join(format!("{su}.{comp}.history")))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The pid of component `comp` of SU `su`'s last process.
    pub fn pid(&self, su: &str, comp: &str) -> i32 {
        fs::read_to_string(self.dir.join(format!("{su}.{comp}.pid")))
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid")
    }

    /// `kill -9` of component `comp` of SU `su`; returns when it was sent.
    pub fn kill_comp(&self, su: &str, comp: &str) -> Instant {
        let pid = self.pid(su, comp);
        let at = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill -9 the component");
        at
    }

    /// Writes the order file `SU.COMP.EXT` (`hang`, `report`) with `text`.
    pub fn order(&self, su: &str, comp: &str, ext: &str, text: &str) {
        put(&self.dir.join(format!("{su}.{comp}.{ext}")), text);
    }

    /// Removes the order file `SU.COMP.EXT`.
    pub fn unorder(&self, su: &str, comp: &str, ext: &str) {
        let _ = fs::remove_file(self.dir.join(format!("{su}.{comp}.{ext}")));
    }

    /// Runs `aisctl amf ARGS` against node `node` (1-based): (success, stdout + stderr).
    pub fn aisctl(&self, node: usize, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_aisctl"))
            .arg("--socket")
            .arg(&self.c.node(node - 1).socket)
            .arg("amf")
            .args(args)
            .output()
            .expect("aisctl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// `aisctl amf ARGS` against node `node`, which must succeed.
    pub fn admin(&self, node: usize, args: &[&str]) {
        let (ok, out) = self.aisctl(node, args);
        assert!(ok, "aisctl amf {args:?}: {out}\n{}", self.status(node));
    }

    /// `aisctl amf status` of node `node`.
    pub fn status(&self, node: usize) -> String {
        self.aisctl(node, &["status"]).1
    }

    /// The tree node `node` answers (through the client library).
    pub fn tree(&self, node: usize) -> Tree {
        let mut amf = Amf::initialize(&self.c.node(node - 1).socket).expect("connect");
        amf.tree().expect("tree")
    }

    /// What node `node`'s executive logged.
    pub fn log(&self, node: usize) -> String {
        self.c.log(node - 1)
    }

    /// Log lines of node `node` that contain every one of `parts`.
    pub fn log_lines(&self, node: usize, parts: &[&str]) -> usize {
        self.log(node)
            .lines()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .count()
    }

    /// Waits until `cond` holds (checked every millisecond), at most [`LONG`]; returns how
    /// long it took. On a timeout, fails with `what`, every node's status and node
    /// `diag`'s log tail.
    pub fn wait(&self, what: &str, diag: usize, cond: impl Fn(&Self) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            if cond(self) {
                return start.elapsed();
            }
            if start.elapsed() > LONG {
                let mut status = String::new();
                for n in 1..=self.c.len() {
                    status += &format!("node {n}:\n{}\n", self.status(n));
                }
                panic!(
                    "{what}: not within {LONG:?}\n{status}node {diag} log:\n{}",
                    ais::harness::tail(&self.c.node(diag - 1).log, 80)
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits until every node in `nodes` (1-based) shows the line `line` (trimmed) in its
    /// `aisctl amf status`; returns the status of the first.
    pub fn wait_line(&self, nodes: &[usize], line: &str) -> String {
        let start = Instant::now();
        loop {
            let all: Vec<String> = nodes.iter().map(|&n| self.status(n)).collect();
            if all
                .iter()
                .all(|s| s.lines().any(|l| l.trim_start() == line))
            {
                return all.into_iter().next().unwrap_or_default();
            }
            assert!(
                start.elapsed() < LONG,
                "want {line:?} at nodes {nodes:?}:\n{}",
                all.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The lines of SU `su`'s block in `status`: its own line, then its components' (trimmed).
pub fn su_block<'a>(status: &'a str, su: &str) -> Vec<&'a str> {
    let head = format!("SU {su} on node ");
    let mut out = Vec::new();
    for l in status.lines().map(str::trim_start) {
        if l.starts_with(&head) || (!out.is_empty() && l.starts_with("component ")) {
            out.push(l);
        } else if !out.is_empty() {
            break;
        }
    }
    assert!(!out.is_empty(), "no SU {su} in:\n{status}");
    out
}

/// Whether process `pid` exists.
pub fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// The line of `status` that starts (after its indent) with `prefix`.
pub fn line_of<'a>(status: &'a str, prefix: &str) -> &'a str {
    status
        .lines()
        .map(str::trim_start)
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{status}"))
}
