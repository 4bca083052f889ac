//! Corosync as the reference system: N `corosync` daemons in a [`netlab::Lab`], and the C load
//! generator `bench/peer/cpgload.c` (libcpg) that speaks the [`crate::load`] contract.
//!
//! # Setup
//!
//! [`CorosyncCluster::start`] runs one corosync 3 daemon per lab host, in the foreground
//! (`corosync -f -c CONF`), each with its own directory `DIR/node<i>` holding its
//! `corosync.conf`, its log (`corosync.log`, `timestamp: hires`), its stdout/stderr
//! (`corosync.out`) and its state directory (`system.state_dir`: `ringid_<i>`, blackbox
//! dumps). The configuration is the knet transport with a nodelist of the lab addresses
//! (`ring0_addr: 10.X.Y.i`, `nodeid: i`), `crypto_cipher aes256` / `crypto_hash sha256` with a
//! key from `corosync-keygen -k DIR/authkey` when crypto is on (`none`/`none` when off), and
//! votequorum. Everything else is corosync's default (token 3000 ms, knet ping/pong timers),
//! with one exception: the scheduling. By default corosync gives itself SCHED_RR at maximal
//! priority; with N daemons and the generators sharing a 2-core machine, real-time daemons
//! would starve the (normal-priority) generators. This stack's `aisexec` runs its Totem
//! thread at a raised nice value (`aisexec.totem_nice`, -10 unless the run sets it) and the
//! rest at normal priority, so the daemons get `sched_rr: no` and `priority:` that same
//! value, for the whole process (its Totem work included).
//!
//! # Why each daemon gets a private mount namespace
//!
//! Each daemon is started as `ip netns exec h<i> unshare --mount --propagation private -- sh
//! -c 'mount ...; exec corosync -f -c CONF'`, so the child's pid *is* corosync's pid (`ip`,
//! `unshare` and `sh` all exec in place). One corosync per host is what corosync assumes, and
//! these hosts share one file system, so everything host-global it touches is made private:
//!
//! * **`/run`** (= `/var/run`): corosync takes a lock on `/run/corosync.pid`; a second daemon
//!   sharing `/run` exits at once with "Another Corosync instance is already running"
//!   (status 18). A tmpfs over `/run` gives each daemon its own. This hides `/run/netns`
//!   inside the namespace, which is fine: the daemon is already in its network namespace, and
//!   [`Cluster::load_command`] enters it through `/proc/<pid>/ns`, not by name.
//! * **`/dev/shm`**: libqb IPC (the client libraries: cpg, cmap, quorum) and the libqb
//!   blackbox live in shared-memory files there (`qb-corosync-<pid>-blackbox-*`, the per-
//!   connection ring buffers). A private tmpfs keeps the daemons apart and leaves nothing
//!   behind after a SIGKILL: the tmpfs goes with the namespace.
//! * **`/var/lib/corosync`** is not mounted over: `system.state_dir` points each daemon at its
//!   own node directory instead, which keeps the state files and blackbox dumps readable after
//!   the run.
//!
//! The IPC servers' *sockets* are abstract unix sockets (`@cpg`, `@cmap`, ...), which are
//! scoped by network namespace, so they are already per host. A client therefore needs the
//! daemon's network namespace (for the socket) *and* its mount namespace (for `/dev/shm`):
//! [`Cluster::load_command`] and the membership check run
//! `nsenter --target <corosync pid> --mount --net -- PROGRAM`. Entering a mount namespace
//! resets the working directory to `/`, so `load_command` adds `--wd=.`, which carries the
//! caller's working directory (that of the `Command`) across: a relative `--out` still
//! works. The generator binary ([`build_cpgload`], passed in [`CorosyncOptions::cpgload`])
//! must lie outside the tmpfs mounts to be visible inside; `start` checks that.
//!
//! # Readiness and teardown
//!
//! `start` waits (at most [`START_TIMEOUT`]) until every daemon lists all N nodes as `joined`
//! under `runtime.members` (`corosync-cmapctl -b runtime.members`); on a timeout or an early
//! exit the error carries the tail of the daemons' logs. With the default timers the ring
//! forms 2.5 to 6 s after the start (each daemon first forms a ring of one, the knet links
//! come up about 2 s later, then a membership round merges the rings).
//! Dropping the cluster sends SIGTERM to every daemon, waits up to 2 s, SIGKILLs the rest and
//! reaps them all.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::load::Cluster;

/// The source of the C load generator, compiled by [`build_cpgload`].
const CPGLOAD_SOURCE: &str = include_str!("../peer/cpgload.c");

/// What to do when corosync, libcpg or the compiler is missing.
const INSTALL_HINT: &str = "install corosync and libcpg-dev: apt-get install corosync libcpg-dev";

/// Longest wait in [`CorosyncCluster::start`] for every daemon to see every node.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Time given to the daemons to exit after SIGTERM before they are SIGKILLed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Lines of a daemon's log quoted in an error.
const LOG_TAIL: usize = 20;

/// Writes `cpgload.c` into `dir` (created if needed) and compiles it there with
/// `cc -O2 -Wall -o DIR/cpgload DIR/cpgload.c $(pkg-config --cflags --libs libcpg)`.
/// Returns the absolute path of the binary. Fails with an installation hint when `cc`,
/// `pkg-config` or libcpg is missing, and with the compiler's output when compiling fails.
pub fn build_cpgload(dir: &Path) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    let src = dir.join("cpgload.c");
    let bin = dir.join("cpgload");
    fs::write(&src, CPGLOAD_SOURCE).with_context(|| format!("cannot write {}", src.display()))?;

    let flags = run_tool(Command::new("pkg-config").args(["--cflags", "--libs", "libcpg"]))
        .map_err(|e| anyhow!("pkg-config --cflags --libs libcpg: {e}; {INSTALL_HINT}"))?;
    let flags = String::from_utf8_lossy(&flags.stdout).into_owned();

    let mut cc = Command::new("cc");
    cc.args(["-O2", "-Wall", "-o"])
        .arg(&bin)
        .arg(&src)
        .args(flags.split_whitespace());
    run_tool(&mut cc).map_err(|e| anyhow!("compiling {}: {e}; {INSTALL_HINT}", src.display()))?;
    Ok(bin)
}

/// Runs a tool to completion; "not found" and a non-zero exit (with its stderr) become errors.
fn run_tool(cmd: &mut Command) -> Result<Output, String> {
    let name = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            format!("`{name}` not found")
        } else {
            format!("`{name}` could not be started: {e}")
        }
    })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "`{name}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ))
    }
}

/// How to run the corosync cluster.
#[derive(Debug, Clone)]
pub struct CorosyncOptions {
    /// Number of daemons, on lab hosts `1..=nodes` (normally `lab.hosts()`).
    pub nodes: usize,
    /// knet encryption and authentication (aes256 + sha256) with a fresh key; off: none/none.
    pub crypto: bool,
    /// A work directory (created if needed): configurations, logs, key.
    pub dir: PathBuf,
    /// The load generator built by [`build_cpgload`], run by [`Cluster::load_command`]. It
    /// must not lie under `/run` or `/dev/shm` (the daemons' private mounts hide those).
    pub cpgload: PathBuf,
    /// The daemons' nice value (`system.priority`): the one this stack's Totem threads run at
    /// in the same comparison ([`crate::stack::totem_nice`]).
    pub priority: i32,
}

/// A running corosync cluster in a [`netlab::Lab`]; see the module documentation. Dropping it
/// stops every daemon (SIGTERM, then SIGKILL after 2 s) and reaps them.
pub struct CorosyncCluster<'a> {
    /// The lab the daemons run in (the caller's).
    lab: &'a netlab::Lab,
    /// The work directory (absolute).
    dir: PathBuf,
    /// The compiled generator (absolute).
    cpgload: PathBuf,
    /// Daemon of node `i` at index `i - 1`; `None` once killed.
    daemons: Vec<Option<Child>>,
    /// The daemons' nice value ([`CorosyncOptions::priority`]).
    priority: i32,
}

impl<'a> CorosyncCluster<'a> {
    /// Writes the configurations (and the key when `crypto` is on),
    /// starts `opts.nodes` daemons on lab hosts `1..=nodes`, and waits until every daemon sees
    /// every node (at most [`START_TIMEOUT`]). Every error names what failed; a daemon that
    /// exits early or a ring that does not form comes with the tail of the logs. Daemons
    /// started before an error are stopped again.
    pub fn start(lab: &'a netlab::Lab, opts: &CorosyncOptions) -> anyhow::Result<Self> {
        if !(1..=lab.hosts()).contains(&opts.nodes) {
            bail!(
                "corosync cluster of {} nodes in a lab of {} hosts",
                opts.nodes,
                lab.hosts()
            );
        }
        run_tool(Command::new("corosync").arg("-v"))
            .map_err(|e| anyhow!("corosync -v: {e}; {INSTALL_HINT}"))?;
        fs::create_dir_all(&opts.dir)
            .with_context(|| format!("cannot create {}", opts.dir.display()))?;
        let dir = fs::canonicalize(&opts.dir)
            .with_context(|| format!("cannot resolve {}", opts.dir.display()))?;
        let cpgload = fs::canonicalize(&opts.cpgload).with_context(|| {
            format!(
                "the load generator {} (build it with build_cpgload)",
                opts.cpgload.display()
            )
        })?;
        if cpgload.starts_with("/run") || cpgload.starts_with("/dev/shm") {
            bail!(
                "the load generator {} would be hidden by the daemons' private /run and /dev/shm",
                cpgload.display()
            );
        }

        let key = if opts.crypto {
            let key = dir.join("authkey");
            // A fresh key per cluster; keygen overwrites, but a stale key must not survive a
            // keygen that failed half-way.
            let _ = fs::remove_file(&key);
            run_tool(Command::new("corosync-keygen").arg("-k").arg(&key))
                .map_err(|e| anyhow!("corosync-keygen -k {}: {e}", key.display()))?;
            Some(key)
        } else {
            None
        };

        let mut cluster = CorosyncCluster {
            lab,
            dir,
            cpgload,
            daemons: Vec::with_capacity(opts.nodes),
            priority: opts.priority,
        };
        for node in 1..=opts.nodes {
            let child = cluster.spawn(node, opts.nodes, key.as_deref())?;
            cluster.daemons.push(Some(child));
        }
        cluster.wait_formed()?;
        Ok(cluster)
    }

    /// The work directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The load generator [`Cluster::load_command`] runs (absolute).
    pub fn cpgload(&self) -> &Path {
        &self.cpgload
    }

    /// The directory of `node`: `corosync.conf`, `corosync.log`, `corosync.out`, state.
    pub fn node_dir(&self, node: usize) -> PathBuf {
        self.dir.join(format!("node{node}"))
    }

    /// The log file of `node`'s daemon.
    pub fn log_file(&self, node: usize) -> PathBuf {
        self.node_dir(node).join("corosync.log")
    }

    /// Number of nodes `node`'s daemon lists as `joined` in `runtime.members` (cmap), i.e. the
    /// size of its current ring. Fails if the daemon was killed or cannot be queried.
    pub fn members(&self, node: usize) -> anyhow::Result<usize> {
        let pid = self
            .pid(node)
            .ok_or_else(|| anyhow!("corosync on node {node} was killed"))?;
        let out = run_tool(
            Command::new("nsenter")
                .arg("--target")
                .arg(pid.to_string())
                .args(["--mount", "--net", "--", "corosync-cmapctl", "-b"])
                .arg("runtime.members"),
        )
        .map_err(|e| anyhow!("corosync-cmapctl on node {node}: {e}"))?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(".status (str) = joined"))
            .count())
    }

    /// The last lines of `node`'s log (for error messages).
    pub fn log_tail(&self, node: usize) -> String {
        let log = self.log_file(node);
        let mut text = fs::read_to_string(&log).unwrap_or_default();
        if let Ok(out) = fs::read_to_string(self.node_dir(node).join("corosync.out")) {
            text.push_str(&out);
        }
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
        format!("--- node {node}: tail of {} ---\n{tail}", log.display())
    }

    fn pid(&self, node: usize) -> Option<u32> {
        self.daemons
            .get(node.wrapping_sub(1))
            .and_then(|d| d.as_ref())
            .map(Child::id)
    }

    /// Writes node `node`'s configuration and starts its daemon in its own mount namespace.
    fn spawn(&self, node: usize, nodes: usize, key: Option<&Path>) -> anyhow::Result<Child> {
        let ndir = self.node_dir(node);
        fs::create_dir_all(&ndir).with_context(|| format!("cannot create {}", ndir.display()))?;
        let conf = ndir.join("corosync.conf");
        fs::write(&conf, self.config(node, nodes, key))
            .with_context(|| format!("cannot write {}", conf.display()))?;
        let out = fs::File::create(ndir.join("corosync.out"))?;
        let err = out.try_clone()?;
        // `set -e`: a failed mount must not start a daemon sharing the host's /run.
        let script = "set -e; \
             mount -t tmpfs -o mode=1777 tmpfs /dev/shm; \
             mount -t tmpfs -o mode=0755 tmpfs /run; \
             exec corosync -f -c \"$1\"";
        self.lab
            .command(node, "unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(script)
            .arg("sh")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start corosync on node {node}"))
    }

    /// The `corosync.conf` of `node`.
    fn config(&self, node: usize, nodes: usize, key: Option<&Path>) -> String {
        let crypto = match key {
            Some(key) => format!(
                "    crypto_cipher: aes256\n    crypto_hash: sha256\n    keyfile: {}\n",
                key.display()
            ),
            None => "    crypto_cipher: none\n    crypto_hash: none\n".to_owned(),
        };
        let nodelist: String = (1..=nodes)
            .map(|i| {
                format!(
                    "    node {{\n        nodeid: {i}\n        name: node{i}\n        \
                     ring0_addr: {}\n    }}\n",
                    self.lab.addr(i)
                )
            })
            .collect();
        let ndir = self.node_dir(node);
        format!(
            "# Written by bench::corosync for node {node}.\n\
             totem {{\n    version: 2\n    cluster_name: openais-rs-bench\n    \
             transport: knet\n{crypto}}}\n\
             nodelist {{\n{nodelist}}}\n\
             quorum {{\n    provider: corosync_votequorum\n}}\n\
             logging {{\n    to_stderr: no\n    to_syslog: no\n    to_logfile: yes\n    \
             logfile: {log}\n    timestamp: hires\n}}\n\
             system {{\n    state_dir: {state}\n    sched_rr: no\n    priority: {priority}\n}}\n",
            log = ndir.join("corosync.log").display(),
            state = ndir.display(),
            priority = self.priority,
        )
    }

    /// Waits until every daemon lists every node as joined, or fails with the logs.
    fn wait_formed(&mut self) -> anyhow::Result<()> {
        let n = self.daemons.len();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            for node in 1..=n {
                if let Some(child) = self.daemons[node - 1].as_mut()
                    && let Some(status) = child.try_wait()?
                {
                    self.daemons[node - 1] = None;
                    bail!(
                        "corosync on node {node} exited during startup ({status})\n{}",
                        self.log_tail(node)
                    );
                }
            }
            let seen: Vec<Result<usize, String>> = (1..=n)
                .map(|node| self.members(node).map_err(|e| e.to_string()))
                .collect();
            if seen.iter().all(|s| s.as_ref().is_ok_and(|&m| m == n)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let mut msg = format!(
                    "the corosync ring of {n} nodes did not form within {} s:",
                    START_TIMEOUT.as_secs()
                );
                for (i, s) in seen.iter().enumerate() {
                    match s {
                        Ok(m) => msg.push_str(&format!("\n  node {}: {m} of {n} joined", i + 1)),
                        Err(e) => msg.push_str(&format!("\n  node {}: {e}", i + 1)),
                    }
                }
                for node in 1..=n {
                    msg.push('\n');
                    msg.push_str(&self.log_tail(node));
                }
                bail!(msg);
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Cluster for CorosyncCluster<'_> {
    fn system(&self) -> &'static str {
        "corosync"
    }

    fn transport(&self) -> String {
        "knet".to_owned()
    }

    fn nodes(&self) -> usize {
        self.daemons.len()
    }

    /// `nsenter --target <corosync pid> --mount --net --wd=. -- <cpgload>`. For a killed node
    /// the command fails at once with a message (a stale pid could have been reused).
    fn load_command(&self, node: usize) -> Command {
        assert!(
            (1..=self.daemons.len()).contains(&node),
            "node {node} does not exist: the cluster has nodes 1..={}",
            self.daemons.len()
        );
        match self.pid(node) {
            Some(pid) => {
                let mut cmd = Command::new("nsenter");
                cmd.arg("--target")
                    .arg(pid.to_string())
                    .args(["--mount", "--net", "--wd=.", "--"])
                    .arg(&self.cpgload);
                cmd
            }
            None => {
                let mut cmd = Command::new("sh");
                cmd.arg("-c")
                    .arg(format!(
                        "echo 'corosync on node {node} was killed' >&2; exit 1"
                    ))
                    .arg("sh");
                cmd
            }
        }
    }

    fn daemon_pids(&self) -> Vec<Option<u32>> {
        (1..=self.daemons.len()).map(|n| self.pid(n)).collect()
    }

    fn kill(&mut self, node: usize) -> anyhow::Result<()> {
        let slot = self
            .daemons
            .get_mut(node.wrapping_sub(1))
            .ok_or_else(|| anyhow!("node {node} does not exist"))?;
        let mut child = slot
            .take()
            .ok_or_else(|| anyhow!("corosync on node {node} was already killed"))?;
        // The child is ours and unreaped, so its pid cannot have been reused.
        let _ = child.kill();
        child
            .wait()
            .with_context(|| format!("waiting for corosync on node {node}"))?;
        Ok(())
    }
}

impl Drop for CorosyncCluster<'_> {
    /// SIGTERM to every daemon, up to 2 s for them to exit, SIGKILL to the rest; all reaped.
    fn drop(&mut self) {
        let mut running: Vec<Child> = self.daemons.iter_mut().filter_map(Option::take).collect();
        for child in &running {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        while !running.is_empty() && Instant::now() < deadline {
            running.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
            if !running.is_empty() {
                thread::sleep(Duration::from_millis(20));
            }
        }
        for mut child in running {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
