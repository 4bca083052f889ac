//! Clusters of real `aisexec` processes on this host, for `aisctl demo`, the integration tests
//! and the benchmarks.
//!
//! A [`ProcessCluster`] owns a directory with the cluster key file ([`KEY_FILE`], when asked
//! for) and one directory per node, `node<id>/`, holding the node's configuration
//! (`aisexec.toml`), IPC socket (`aisexec.sock`), state files, standard output and error
//! (`aisexec.log`) and event log (`events.jsonl`, when the executives are started with
//! `--event-log`). The caller writes the configurations through a closure: [`loopback_config`]
//! (kernel UDP unicast on 127.0.0.1, ports from [`free_ports`]) covers the common case, and
//! [`aisexec_section`] and [`key_lines`] are the parts other transports share.
//!
//! The executives are started as `[ip netns exec NS] PROGRAM ARGS... --config CONFIG
//! [--event-log EVENTS]`: the program is the `aisexec` binary, or a binary with a hidden
//! `aisexec` subcommand (then `ARGS` is `aisexec`). Each node can run in a network namespace.
//! The cluster starts, signals, kills (SIGKILL), terminates (SIGTERM, waiting for a clean exit)
//! and stops its nodes, reads their status over IPC ([`ais_client::Admin`]) and waits, bounded,
//! for a ring of given members; an error names the node, its last status and the tail of its
//! log.
//!
//! Dropping the cluster kills and reaps every process still running and removes the directory
//! unless [`ProcessCluster::keep`] was set.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ais_client::{Admin, Status};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::keyfile::{KeyFileError, KeyMaterial};

/// The cluster key file's name in the cluster directory.
pub const KEY_FILE: &str = "authkey";
/// Lines of a node's log quoted in errors.
pub const LOG_TAIL_LINES: usize = 30;
/// How often the waits look again.
const POLL: Duration = Duration::from_millis(10);

/// What went wrong with a cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file, directory, socket or process operation failed.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's error.
        error: io::Error,
    },
    /// The cluster key could not be made or written.
    #[error("the cluster key: {0}")]
    Key(KeyFileError),
    /// The node has no running process.
    #[error("node {node} is not running")]
    NotRunning {
        /// Node id.
        node: u32,
    },
    /// A signal could not be sent.
    #[error("{signal} to node {node}: {error}")]
    Signal {
        /// Node id.
        node: u32,
        /// The signal.
        signal: Signal,
        /// Why not.
        error: nix::errno::Errno,
    },
    /// The node does not answer a status request.
    #[error("status of node {node}: {error}")]
    Status {
        /// Node id.
        node: u32,
        /// The client library's error.
        error: ais_client::Error,
    },
    /// The node's status has no counter of that name.
    #[error("node {node} has no counter {name:?}")]
    NoCounter {
        /// Node id.
        node: u32,
        /// The counter's name.
        name: String,
    },
    /// The executive exited while the ring was awaited.
    #[error(
        "the executive of node {node} exited ({status}) before the ring of {members:?} formed; its log ({}) ends:\n{tail}",
        log.display()
    )]
    Exited {
        /// Node id.
        node: u32,
        /// How it exited.
        status: ExitStatus,
        /// The members awaited.
        members: Vec<u32>,
        /// Its log file.
        log: PathBuf,
        /// The last [`LOG_TAIL_LINES`] lines of its log.
        tail: String,
    },
    /// The ring did not form in time.
    #[error(
        "node {node} has no operational ring of {members:?} after {waited:?} (last status: {last}); its log ({}) ends:\n{tail}",
        log.display()
    )]
    NoRing {
        /// Node id.
        node: u32,
        /// The members awaited.
        members: Vec<u32>,
        /// How long it was awaited.
        waited: Duration,
        /// The last status the node gave, or that it gave none.
        last: String,
        /// Its log file.
        log: PathBuf,
        /// The last [`LOG_TAIL_LINES`] lines of its log.
        tail: String,
    },
    /// After SIGTERM the executive exited, but not with status 0.
    #[error("node {node} exited with {status} after SIGTERM")]
    ExitedBadly {
        /// Node id.
        node: u32,
        /// How it exited.
        status: ExitStatus,
    },
    /// After SIGTERM the executive did not exit in time (it was killed).
    #[error("node {node} did not stop within {within:?} of SIGTERM")]
    NotStopped {
        /// Node id.
        node: u32,
        /// How long it was given.
        within: Duration,
    },
}

fn io_error(what: impl FnOnce() -> String) -> impl FnOnce(io::Error) -> Error {
    move |error| Error::Io {
        what: what(),
        error,
    }
}

/// `n` free UDP ports on 127.0.0.1, from the kernel (bound to port 0 together, then released).
///
/// # Errors
/// [`Error::Io`] if a socket cannot be bound.
pub fn free_ports(n: usize) -> Result<Vec<u16>, Error> {
    let what = || "finding free UDP ports on 127.0.0.1".to_owned();
    let sockets = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()
        .map_err(io_error(what))?;
    sockets
        .iter()
        .map(|s| Ok(s.local_addr()?.port()))
        .collect::<io::Result<Vec<u16>>>()
        .map_err(io_error(what))
}

/// Writes a fresh random cluster key (epoch 0) to `path`, replacing any file there.
///
/// # Errors
/// [`Error::Key`] if no random bytes can be had or the file cannot be written.
pub fn write_key(path: &Path) -> Result<(), Error> {
    let material = KeyMaterial {
        epoch: 0,
        secret: crate::keyfile::generate().map_err(Error::Key)?,
    };
    crate::keyfile::write(path, &material, true).map_err(Error::Key)
}

/// The `[totem]` lines that turn secauth on with the key file `key`.
pub fn key_lines(key: &Path) -> String {
    format!("secauth = true\nkeyfile = \"{}\"\n", key.display())
}

/// The `[aisexec]` table of a node: its IPC socket and state directory. Further `[aisexec]`
/// keys can be appended.
pub fn aisexec_section(node: &Node) -> String {
    format!(
        "[aisexec]\nipc_socket = \"{}\"\nstate_dir = \"{}\"\n",
        node.socket.display(),
        node.dir.display()
    )
}

/// `[totem.interface]` and the node list of a loopback cluster: 127.0.0.1, node `i + 1` on
/// `ports[i]`.
pub fn loopback_nodelist(ports: &[u16]) -> String {
    let mut t = format!(
        "[totem.interface]\nmcastport = {}\n\n",
        ports.first().copied().unwrap_or(0)
    );
    for (i, port) in ports.iter().enumerate() {
        let _ = write!(
            t,
            "[[nodelist.node]]\nnodeid = {}\nring0_addr = \"127.0.0.1\"\nport = {port}\n\n",
            i + 1
        );
    }
    t
}

/// The configuration of `node` in a loopback cluster: kernel UDP unicast (`udpu`) on
/// 127.0.0.1 with one port per node ([`loopback_nodelist`]), `totem` lines (e.g. secauth from
/// [`key_lines`] and other settings) in `[totem]`, and [`aisexec_section`] last, so more
/// `[aisexec]` keys can be appended.
pub fn loopback_config(node: &Node, ports: &[u16], totem: &str) -> String {
    format!(
        "[totem]\nnodeid = {}\ntransport = \"udpu\"\n{totem}\n{}{}",
        node.id,
        loopback_nodelist(ports),
        aisexec_section(node)
    )
}

/// The last `lines` lines of the file at `path`, `(empty)`, or why it cannot be read.
pub fn tail(path: &Path, lines: usize) -> String {
    match fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => "(empty)".to_owned(),
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read it: {e})"),
    }
}

/// A counter of a status, by name.
pub fn counter(status: &Status, name: &str) -> Option<u64> {
    status
        .counters
        .iter()
        .find(|c| &c.name[..] == name.as_bytes())
        .map(|c| c.value)
}

/// One node's files and process.
#[derive(Debug)]
pub struct Node {
    /// Node id (1-based; node index `i` has id `i + 1`).
    pub id: u32,
    /// Its directory, `node<id>/`, also its state directory.
    pub dir: PathBuf,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its IPC socket.
    pub socket: PathBuf,
    /// Its standard output and error.
    pub log: PathBuf,
    /// Its event log (written when the cluster passes `--event-log`).
    pub events: PathBuf,
    netns: Option<String>,
    child: Option<Child>,
}

impl Node {
    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// How to lay out and start a [`ProcessCluster`]; from [`ProcessCluster::builder`].
#[derive(Debug)]
#[must_use]
pub struct Builder {
    dir: PathBuf,
    nodes: usize,
    program: PathBuf,
    args: Vec<OsString>,
    netns: Vec<String>,
    event_log: bool,
    key: bool,
}

impl Builder {
    /// An argument before `--config` (e.g. the hidden `aisexec` subcommand).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Runs node index `i` in network namespace `names[i]` (`ip netns exec`).
    pub fn netns(mut self, names: Vec<String>) -> Self {
        self.netns = names;
        self
    }

    /// Starts every executive with `--event-log` (the node's `events.jsonl`).
    pub fn event_log(mut self) -> Self {
        self.event_log = true;
        self
    }

    /// Writes a fresh cluster key to [`Self::key_path`] (secauth).
    pub fn key(mut self) -> Self {
        self.key = true;
        self
    }

    /// Where the cluster key file is.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }

    /// Creates the directories (if missing), the key file if asked for, and each node's
    /// configuration, `config(node)`; removes a socket left by an earlier run. Starts nothing.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Key`] if a directory or file cannot be written.
    pub fn create(self, mut config: impl FnMut(&Node) -> String) -> Result<ProcessCluster, Error> {
        fs::create_dir_all(&self.dir)
            .map_err(io_error(|| format!("creating {}", self.dir.display())))?;
        if self.key {
            write_key(&self.key_path())?;
        }
        let mut nodes = Vec::with_capacity(self.nodes);
        for i in 0..self.nodes {
            let id = i as u32 + 1;
            let dir = self.dir.join(format!("node{id}"));
            fs::create_dir_all(&dir).map_err(io_error(|| format!("creating {}", dir.display())))?;
            let node = Node {
                id,
                config: dir.join("aisexec.toml"),
                socket: dir.join("aisexec.sock"),
                log: dir.join("aisexec.log"),
                events: dir.join("events.jsonl"),
                netns: self.netns.get(i).cloned(),
                child: None,
                dir,
            };
            fs::write(&node.config, config(&node))
                .map_err(io_error(|| format!("writing {}", node.config.display())))?;
            let _ = fs::remove_file(&node.socket);
            nodes.push(node);
        }
        Ok(ProcessCluster {
            dir: self.dir,
            program: self.program,
            args: self.args,
            event_log: self.event_log,
            nodes,
            keep: false,
        })
    }
}

/// A set of `aisexec` processes on this host; see the module documentation. Nodes are
/// addressed by index `i` (0-based; node id `i + 1`).
#[derive(Debug)]
pub struct ProcessCluster {
    dir: PathBuf,
    program: PathBuf,
    args: Vec<OsString>,
    event_log: bool,
    nodes: Vec<Node>,
    keep: bool,
}

impl ProcessCluster {
    /// A cluster of `nodes` executives in `dir`, started as `program`.
    pub fn builder(dir: impl Into<PathBuf>, nodes: usize, program: impl Into<PathBuf>) -> Builder {
        Builder {
            dir: dir.into(),
            nodes,
            program: program.into(),
            args: Vec::new(),
            netns: Vec::new(),
            event_log: false,
            key: false,
        }
    }

    /// The cluster's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The nodes.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node index `i`.
    ///
    /// # Panics
    /// If there is no node `i`.
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Keeps the directory when the cluster is dropped (`true`), or removes it (`false`, the
    /// default).
    pub fn keep(&mut self, keep: bool) {
        self.keep = keep;
    }

    /// Starts node `i`'s executive, its output appended to its log.
    ///
    /// # Errors
    /// [`Error::Io`] if the log cannot be opened or the process cannot be started.
    pub fn spawn(&mut self, i: usize) -> Result<(), Error> {
        let node = &self.nodes[i];
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(io_error(|| format!("opening {}", node.log.display())))?;
        let out = log
            .try_clone()
            .map_err(io_error(|| format!("opening {}", node.log.display())))?;
        let mut cmd = match &node.netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns]).arg(&self.program);
                cmd
            }
            None => Command::new(&self.program),
        };
        cmd.args(&self.args).arg("--config").arg(&node.config);
        if self.event_log {
            cmd.arg("--event-log").arg(&node.events);
        }
        cmd.stdin(Stdio::null()).stdout(out).stderr(log);
        let child = cmd.spawn().map_err(io_error(|| {
            format!(
                "starting the executive of node {} ({})",
                node.id,
                self.program.display()
            )
        }))?;
        self.nodes[i].child = Some(child);
        Ok(())
    }

    /// Starts every node.
    ///
    /// # Errors
    /// As [`Self::spawn`].
    pub fn spawn_all(&mut self) -> Result<(), Error> {
        (0..self.nodes.len()).try_for_each(|i| self.spawn(i))
    }

    /// Sends `signal` to node `i`'s process (SIGSTOP and SIGCONT pause and resume it).
    ///
    /// # Errors
    /// [`Error::NotRunning`] or [`Error::Signal`].
    pub fn signal(&self, i: usize, signal: Signal) -> Result<(), Error> {
        let node = &self.nodes[i];
        let pid = node.pid().ok_or(Error::NotRunning { node: node.id })?;
        kill(Pid::from_raw(pid as i32), signal).map_err(|error| Error::Signal {
            node: node.id,
            signal,
            error,
        })
    }

    /// SIGKILL of node `i`, and reaps it. Returns whether it was running.
    ///
    /// # Errors
    /// [`Error::Io`] if the process cannot be killed or reaped.
    pub fn kill(&mut self, i: usize) -> Result<bool, Error> {
        let node = &mut self.nodes[i];
        let Some(mut child) = node.child.take() else {
            return Ok(false);
        };
        let id = node.id;
        child
            .kill()
            .map_err(io_error(|| format!("SIGKILL of node {id}")))?;
        child
            .wait()
            .map_err(io_error(|| format!("reaping node {id}")))?;
        Ok(true)
    }

    /// SIGTERM of node `i` (a graceful leave), then waits up to `within` for it to exit 0;
    /// if it does not exit in time it is killed. Nothing happens if it is not running.
    ///
    /// # Errors
    /// [`Error::ExitedBadly`] for an exit status other than 0, [`Error::NotStopped`] if it
    /// had to be killed, [`Error::Io`] if it cannot be waited for.
    pub fn terminate(&mut self, i: usize, within: Duration) -> Result<(), Error> {
        let node = &mut self.nodes[i];
        let Some(mut child) = node.child.take() else {
            return Ok(());
        };
        let id = node.id;
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + within;
        loop {
            let exited = child
                .try_wait()
                .map_err(io_error(|| format!("waiting for node {id}")))?;
            if let Some(status) = exited {
                if !status.success() {
                    return Err(Error::ExitedBadly { node: id, status });
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::NotStopped { node: id, within });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Stops every running node: SIGTERM from the last node to the first, then SIGKILL to
    /// whatever has not exited after `within`; all reaped. With `one_by_one`, each node is
    /// waited for (within the same `within`) before the next one is signalled.
    pub fn stop_all(&mut self, within: Duration, one_by_one: bool) {
        let deadline = Instant::now() + within;
        for i in (0..self.nodes.len()).rev() {
            if let Some(pid) = self.nodes[i].pid() {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
            if one_by_one {
                reap_until(&mut self.nodes[i], deadline);
            }
        }
        for node in &mut self.nodes {
            reap_until(node, deadline);
            if let Some(mut c) = node.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Node `i`'s status over its IPC socket.
    ///
    /// # Errors
    /// [`Error::Status`] if it does not answer.
    pub fn status(&self, i: usize) -> Result<Status, Error> {
        let node = &self.nodes[i];
        Admin::connect(&node.socket)
            .and_then(|mut admin| admin.status())
            .map_err(|error| Error::Status {
                node: node.id,
                error,
            })
    }

    /// A counter of node `i`'s status, by name.
    ///
    /// # Errors
    /// [`Error::Status`] if it does not answer, [`Error::NoCounter`] if it has no such
    /// counter.
    pub fn counter(&self, i: usize, name: &str) -> Result<u64, Error> {
        counter(&self.status(i)?, name).ok_or_else(|| Error::NoCounter {
            node: self.nodes[i].id,
            name: name.to_owned(),
        })
    }

    /// Waits until node `i` is operational with exactly `members`, or until `deadline`.
    /// Returns when it saw the ring.
    ///
    /// # Errors
    /// [`Error::Exited`] if the executive exits meanwhile, [`Error::NoRing`] at the deadline
    /// (with its last status), both with the tail of its log; [`Error::Io`] if it cannot be
    /// waited for.
    pub fn wait_ring(
        &mut self,
        i: usize,
        members: &[u32],
        deadline: Instant,
    ) -> Result<Instant, Error> {
        let started = Instant::now();
        let mut last = None;
        loop {
            let node = &mut self.nodes[i];
            if let Some(c) = node.child.as_mut() {
                let exited = c
                    .try_wait()
                    .map_err(io_error(|| format!("waiting for node {}", node.id)))?;
                if let Some(status) = exited {
                    node.child = None;
                    return Err(Error::Exited {
                        node: node.id,
                        status,
                        members: members.to_vec(),
                        log: node.log.clone(),
                        tail: tail(&node.log, LOG_TAIL_LINES),
                    });
                }
            }
            if let Ok(s) = self.status(i) {
                if &s.state[..] == b"operational" && s.members == members {
                    return Ok(Instant::now());
                }
                last = Some(s);
            }
            if Instant::now() >= deadline {
                let node = &self.nodes[i];
                return Err(Error::NoRing {
                    node: node.id,
                    members: members.to_vec(),
                    waited: started.elapsed(),
                    last: last.map_or_else(
                        || "no answer on its IPC socket".to_owned(),
                        |s| {
                            format!(
                                "state {}, ring {}, members {:?}",
                                String::from_utf8_lossy(&s.state),
                                String::from_utf8_lossy(&s.ring),
                                s.members
                            )
                        },
                    ),
                    log: node.log.clone(),
                    tail: tail(&node.log, LOG_TAIL_LINES),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// What node `i`'s executive has written to its log so far (empty if nothing).
    pub fn log(&self, i: usize) -> String {
        fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    /// The last `lines` lines of node `i`'s log (see [`tail`]).
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        tail(&self.nodes[i].log, lines)
    }
}

impl Drop for ProcessCluster {
    /// Kills and reaps every process still running; removes the directory unless kept.
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut c) = node.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if !self.keep {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Reaps `node`'s process if it exits before `deadline`.
fn reap_until(node: &mut Node, deadline: Instant) {
    while let Some(c) = node.child.as_mut() {
        match c.try_wait() {
            Ok(Some(_)) | Err(_) => node.child = None,
            Ok(None) if Instant::now() >= deadline => return,
            Ok(None) => std::thread::sleep(POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_configurations_parse() {
        let dir = std::env::temp_dir().join(format!("ais-harness-unit-{}", std::process::id()));
        let ports = [5405, 5406, 5407];
        let key = dir.join(KEY_FILE);
        let c = ProcessCluster::builder(&dir, 3, "aisexec")
            .key()
            .create(|node| loopback_config(node, &ports, &key_lines(&key)))
            .expect("create");
        for node in c.nodes() {
            let text = fs::read_to_string(&node.config).expect("config");
            let cfg = crate::config::Config::from_str(&text, "test").expect(&text);
            assert_eq!(cfg.totem.nodeid, node.id);
            assert_eq!(cfg.aisexec.ipc_socket, node.socket);
        }
        drop(c);
        assert!(!dir.exists(), "the directory is removed on drop");
    }

    #[test]
    fn a_tail_is_the_last_lines() {
        let dir = std::env::temp_dir().join(format!("ais-harness-tail-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("log");
        fs::write(&f, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&f, 2), "b\nc");
        fs::write(&f, "").unwrap();
        assert_eq!(tail(&f, 2), "(empty)");
        assert!(tail(&dir.join("none"), 2).starts_with("(cannot read it"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
