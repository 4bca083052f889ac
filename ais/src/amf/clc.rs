//! The CLC-CLI runner and passive monitor: AMF's hands on this node.
//!
//! # What it does
//!
//! [`ClcRunner`] carries out three kinds of request, each on threads of its own so that the
//! executive's thread never blocks, and reports every result as a [`ClcEvent`] on the
//! channel given to [`ClcRunner::new`]:
//!
//! - [`ClcRunner::run`]: a command that is done when its process exits (terminate, cleanup,
//!   node failfast, the instantiate command of a component that does not stay running). The
//!   outcome is [`Outcome::Succeeded`] (exit status 0), [`Outcome::Failed`] (another status or
//!   a signal), [`Outcome::TimedOut`] (the timeout passed: the whole process group was killed
//!   with SIGKILL) or [`Outcome::SpawnFailed`]. Whatever the command left running in its
//!   process group when it exited is killed too: nothing outlives a CLC-CLI command.
//! - [`ClcRunner::instantiate`]: the instantiate command of a long-running component. The
//!   process the command starts **is** the component's process: the command must not
//!   daemonize (fork and exit), it must run the component in the foreground or `exec` it. The
//!   outcome is `Succeeded { pid }` once the process is still running after the settle time
//!   given, `Failed` if it exited before (also with status 0: a command that daemonized). From
//!   then on the component's process group is monitored ([`Monitoring`]): its exit comes as
//!   [`ClcEvent::Exited`], and [`ClcEvent::Gone`] when no process of the group is left.
//! - [`ClcRunner::cleanup`]: the component's cleanup command if it has one, then SIGKILL to
//!   whatever is left of the component's process group; done when the group is empty.
//!
//! # Processes, groups, reaping
//!
//! Every command runs as `/bin/sh -c COMMAND` in a new process group whose id is the shell's
//! pid. The runner makes this process a *child subreaper* (`PR_SET_CHILD_SUBREAPER`), so a
//! descendant whose parent exits is re-parented to the executive instead of init; one thread
//! per group waits with `waitpid(-pgid)`, blocking (no polling), and so reaps the command's
//! process and every such orphan of its group until none is left (`ECHILD`): no zombie stays
//! behind. A descendant that leaves the group (`setsid`, `setpgid`) is out of reach of the
//! group's kill and of the monitor: components must not do that.
//!
//! The runner reaps only its own groups (`waitpid` with a negative pgid); other children of
//! the executive are left to whoever started them.
//!
//! # Environment, user, output
//!
//! The environment is cleared and set to: `PATH` ([`DEFAULT_PATH`]); with a user, `HOME`,
//! `USER`, `LOGNAME` from the password database; `SA_AMF_COMPONENT_NAME` (the component's
//! DN); then the caller's variables ([`ClcCommand::env`], which may override the others). The
//! working directory is `/` unless given. With [`ClcCommand::user`] the command runs with that
//! user's uid and primary gid (supplementary groups are dropped); a user that does not exist
//! is refused as [`SpawnError::NoSuchUser`] before anything runs.
//!
//! Standard output and standard error share one pipe read by one thread, line by line, each
//! line logged (`tracing`, target `ais::amf::output`, at `info`) with the fields `component`,
//! `command` (the kind) and `pid`. Memory is bounded: a line longer than
//! [`OutputLimits::max_line`] bytes is logged in pieces, and after
//! [`OutputLimits::max_lines`] lines the rest is read and counted, not logged (one line says
//! how many were dropped). The log lines go to the tracing dispatcher that was current where
//! the request was made.

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader, PipeReader, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Pid, User};
use tracing::{Dispatch, info, warn};

/// `PATH` of every command.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The environment variable holding the component's SA Forum name (its DN).
pub const COMPONENT_NAME_VAR: &str = "SA_AMF_COMPONENT_NAME";

/// Which command of a component (or of the node) this is; a field of every log line and
/// event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandKind {
    /// The CLC-CLI instantiate command.
    Instantiate,
    /// The CLC-CLI terminate command.
    Terminate,
    /// The CLC-CLI cleanup command (or, without one, the SIGKILL of the component's group).
    Cleanup,
    /// The node failfast command.
    Failfast,
    /// A built-in component's CSI assignment, which the executive carries out itself (no
    /// command; reported through [`ClcRunner::external`]).
    Csi,
}

impl CommandKind {
    /// The lower-case name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::Instantiate => "instantiate",
            CommandKind::Terminate => "terminate",
            CommandKind::Cleanup => "cleanup",
            CommandKind::Failfast => "failfast",
            CommandKind::Csi => "csi",
        }
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One command to run for a component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClcCommand {
    /// The component's SA Forum DN (`SA_AMF_COMPONENT_NAME`, log field `component`); for the
    /// node failfast command, the node's name.
    pub component: String,
    /// Which command this is.
    pub kind: CommandKind,
    /// The shell text, run with `/bin/sh -c`.
    pub command: String,
    /// Run as this user (looked up by name); `None`: as the executive's user.
    pub user: Option<String>,
    /// Run with this group (looked up by name) instead of the user's primary group; `None`:
    /// the user's (or the executive's).
    pub group: Option<String>,
    /// Extra environment variables, set last.
    pub env: Vec<(String, String)>,
    /// Working directory; `None`: `/`.
    pub cwd: Option<PathBuf>,
    /// For [`ClcRunner::run`]: how long the command may take before its group is killed.
    /// For [`ClcRunner::instantiate`] the settle time is given separately.
    pub timeout: Duration,
}

impl ClcCommand {
    /// A command with no user, no extra environment, working directory `/`.
    pub fn new(
        component: impl Into<String>,
        kind: CommandKind,
        command: impl Into<String>,
        timeout: Duration,
    ) -> ClcCommand {
        ClcCommand {
            component: component.into(),
            kind,
            command: command.into(),
            user: None,
            group: None,
            env: Vec::new(),
            cwd: None,
            timeout,
        }
    }

    /// Looks the configured user up, so that a configuration naming a user this node does not
    /// have can be refused before anything runs.
    ///
    /// # Errors
    ///
    /// [`SpawnError::NoSuchUser`] or [`SpawnError::UserLookup`].
    pub fn check_user(&self) -> Result<(), SpawnError> {
        match &self.user {
            None => Ok(()),
            Some(name) => lookup_user(name).map(|_| ()),
        }
    }
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// A signal (this number) killed it.
    Signal(i32),
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => match Signal::try_from(*s) {
                Ok(sig) => write!(f, "signal {sig}"),
                Err(_) => write!(f, "signal {s}"),
            },
        }
    }
}

/// Why a command could not be started.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpawnError {
    /// The configured user is not in the password database.
    #[error("user {0:?} does not exist on this node")]
    NoSuchUser(String),
    /// The configured group is not in the group database.
    #[error("group {0:?} does not exist on this node")]
    NoSuchGroup(String),
    /// Looking the user up failed.
    #[error("looking up user {user:?}: {reason}")]
    UserLookup {
        /// The user.
        user: String,
        /// Why.
        reason: String,
    },
    /// `instantiate` for a component whose previous process group is still alive.
    #[error("component {0} still has processes running: clean it up first")]
    AlreadyRunning(String),
    /// The operating system refused to start `/bin/sh`.
    #[error("starting /bin/sh: {0}")]
    Spawn(String),
}

/// The result of a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// [`ClcRunner::run`]: the command exited with status 0. [`ClcRunner::instantiate`]: the
    /// component's process is running. [`ClcRunner::cleanup`]: the cleanup command (if any)
    /// exited with 0 and no process of the component is left. `pid` is the command's process
    /// (for a cleanup without a command, the component's process group, 0 if it had none).
    Succeeded {
        /// The process id.
        pid: u32,
    },
    /// The command (or the component's process, during the settle time) ended otherwise.
    Failed {
        /// How it ended.
        status: ExitStatus,
    },
    /// The timeout passed; the whole process group was killed and reaped.
    TimedOut,
    /// The command did not start.
    SpawnFailed(SpawnError),
}

/// Which exits of a monitored component are reported (passive monitoring).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Monitoring {
    /// None: only [`ClcEvent::Gone`] when the group is empty (for cleanup to know).
    Off,
    /// The exit of the process the instantiate command started.
    Process,
    /// That, and the exit of every other process of its group that the executive reaps (a
    /// descendant whose parent has exited before it).
    ProcessAndDescendants,
}

/// Identifies one request to the runner; its [`ClcEvent::Done`] carries the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(pub u64);

/// What the runner reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClcEvent {
    /// A request finished.
    Done {
        /// The request.
        run: RunId,
        /// The component (DN).
        component: String,
        /// Which command.
        kind: CommandKind,
        /// How it went.
        outcome: Outcome,
    },
    /// A monitored process of an instantiated component exited (passive monitoring).
    Exited {
        /// The component (DN).
        component: String,
        /// The process.
        pid: u32,
        /// How it ended.
        status: ExitStatus,
        /// Whether it is the process the instantiate command started (else a descendant).
        leader: bool,
    },
    /// No process of an instantiated component is left (all exited and were reaped).
    Gone {
        /// The component (DN).
        component: String,
    },
}

/// Bounds on the output logged per command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLimits {
    /// Longest piece of a line logged as one record, bytes.
    pub max_line: usize,
    /// Records logged per command; the rest is counted and dropped.
    pub max_lines: u64,
}

impl Default for OutputLimits {
    fn default() -> Self {
        OutputLimits {
            max_line: 1024,
            max_lines: 1000,
        }
    }
}

/// Why the runner cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ClcError {
    /// `prctl(PR_SET_CHILD_SUBREAPER)` failed.
    #[error("becoming a child subreaper: {0}")]
    Subreaper(Errno),
}

/// The CLC-CLI runner and passive monitor of this node. See the module documentation.
#[derive(Clone)]
pub struct ClcRunner {
    events: Sender<ClcEvent>,
    limits: OutputLimits,
    next: Arc<AtomicU64>,
    /// Instantiated components whose group still has processes.
    live: Arc<Mutex<HashMap<String, Arc<Group>>>>,
}

impl ClcRunner {
    /// A runner reporting to `events`. Makes this process a child subreaper.
    ///
    /// # Errors
    ///
    /// [`ClcError::Subreaper`] if the kernel refuses.
    pub fn new(events: Sender<ClcEvent>) -> Result<ClcRunner, ClcError> {
        nix::sys::prctl::set_child_subreaper(true).map_err(ClcError::Subreaper)?;
        Ok(ClcRunner {
            events,
            limits: OutputLimits::default(),
            next: Arc::new(AtomicU64::new(1)),
            live: Arc::default(),
        })
    }

    /// The same runner with other output limits.
    pub fn with_limits(mut self, limits: OutputLimits) -> ClcRunner {
        self.limits = limits;
        self
    }

    /// Whether an instantiated component still has processes.
    pub fn is_live(&self, component: &str) -> bool {
        lock(&self.live).contains_key(component)
    }

    /// Runs a command that is done when its process exits, within `cmd.timeout`; reports
    /// [`ClcEvent::Done`]. Returns at once.
    pub fn run(&self, cmd: ClcCommand) -> RunId {
        let run = self.next_id();
        let this = self.clone();
        let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
        spawn_thread("clc-run", move || {
            tracing::dispatcher::with_default(&dispatch, || {
                let outcome = this.run_blocking(&cmd, &dispatch);
                this.done(run, &cmd, outcome);
            })
        });
        run
    }

    /// Starts a long-running component: reports [`ClcEvent::Done`] with `Succeeded { pid }`
    /// once its process has kept running for `settle` (zero: as soon as it is started), or
    /// `Failed` if it exited before; then monitors it as `monitoring` says. Returns at once.
    pub fn instantiate(&self, cmd: ClcCommand, settle: Duration, monitoring: Monitoring) -> RunId {
        let run = self.next_id();
        let this = self.clone();
        let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
        spawn_thread("clc-instantiate", move || {
            tracing::dispatcher::with_default(&dispatch, || {
                this.instantiate_blocking(run, &cmd, settle, monitoring, &dispatch);
            })
        });
        run
    }

    /// Cleans a component up: runs `command` if given (within its timeout), then kills what
    /// is left of the component's process group with SIGKILL and waits until it is empty;
    /// reports [`ClcEvent::Done`] with kind [`CommandKind::Cleanup`]. Returns at once.
    pub fn cleanup(&self, component: &str, command: Option<ClcCommand>) -> RunId {
        let run = self.next_id();
        let this = self.clone();
        let component = component.to_owned();
        let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
        spawn_thread("clc-cleanup", move || {
            tracing::dispatcher::with_default(&dispatch, || {
                let outcome = command
                    .as_ref()
                    .map(|cmd| this.run_blocking(cmd, &dispatch));
                let group = lock(&this.live).get(&component).cloned();
                let pgid = group.as_ref().map_or(0, |g| g.pgid);
                if let Some(g) = group {
                    if g.kill(Signal::SIGKILL) {
                        info!(component = %component, pgid = g.pgid, "cleanup: SIGKILL to the component's process group");
                    }
                    g.wait_gone();
                    // Not live any more from now on (the old process's monitor thread may
                    // not have noticed yet): a new instantiation may start at once.
                    let mut live = lock(&this.live);
                    if live.get(&component).is_some_and(|l| Arc::ptr_eq(l, &g)) {
                        live.remove(&component);
                    }
                }
                let outcome = outcome.unwrap_or(Outcome::Succeeded { pid: pgid as u32 });
                let _ = this.events.send(ClcEvent::Done {
                    run,
                    component,
                    kind: CommandKind::Cleanup,
                    outcome,
                });
            })
        });
        run
    }

    /// A request the caller carries out itself (the work of a built-in component): its id,
    /// and the channel its [`ClcEvent::Done`] is to be sent on, so that it is reported like
    /// the runner's own requests.
    pub fn external(&self) -> (RunId, Sender<ClcEvent>) {
        (self.next_id(), self.events.clone())
    }

    fn next_id(&self) -> RunId {
        RunId(self.next.fetch_add(1, Ordering::Relaxed))
    }

    fn done(&self, run: RunId, cmd: &ClcCommand, outcome: Outcome) {
        let _ = self.events.send(ClcEvent::Done {
            run,
            component: cmd.component.clone(),
            kind: cmd.kind,
            outcome,
        });
    }

    /// Runs `cmd` to its end or its timeout, on this thread.
    fn run_blocking(&self, cmd: &ClcCommand, dispatch: &Dispatch) -> Outcome {
        let started = match start(cmd, self.limits, dispatch) {
            Ok(s) => s,
            Err(e) => {
                warn!(component = %cmd.component, command = %cmd.kind, error = %e, "CLC-CLI command not started");
                return Outcome::SpawnFailed(e);
            }
        };
        let deadline = Instant::now() + cmd.timeout;
        let mut leader_status = None;
        loop {
            match started.reaps.recv_deadline(deadline) {
                Ok((pid, status)) if pid == started.pid => {
                    leader_status = Some(status);
                    // Done: anything it left in its group goes too.
                    started.group.kill(Signal::SIGKILL);
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    warn!(component = %cmd.component, command = %cmd.kind, pid = started.pid,
                        timeout_ms = cmd.timeout.as_millis() as u64,
                        "CLC-CLI command timed out: SIGKILL to its process group");
                    started.group.kill(Signal::SIGKILL);
                    while started.reaps.recv().is_ok() {}
                    started.wait_output();
                    return Outcome::TimedOut;
                }
            }
        }
        started.wait_output();
        match leader_status {
            Some(ExitStatus::Code(0)) => Outcome::Succeeded { pid: started.pid },
            Some(status) => Outcome::Failed { status },
            // The group emptied without the leader's exit being seen: cannot happen, as the
            // leader is a child of this process; report it as a failure, not a success.
            None => Outcome::Failed {
                status: ExitStatus::Signal(Signal::SIGKILL as i32),
            },
        }
    }

    fn instantiate_blocking(
        &self,
        run: RunId,
        cmd: &ClcCommand,
        settle: Duration,
        monitoring: Monitoring,
        dispatch: &Dispatch,
    ) {
        let started = {
            let mut live = lock(&self.live);
            if live.contains_key(&cmd.component) {
                drop(live);
                let e = SpawnError::AlreadyRunning(cmd.component.clone());
                return self.done(run, cmd, Outcome::SpawnFailed(e));
            }
            match start(cmd, self.limits, dispatch) {
                Ok(s) => {
                    live.insert(cmd.component.clone(), s.group.clone());
                    s
                }
                Err(e) => {
                    drop(live);
                    warn!(component = %cmd.component, command = %cmd.kind, error = %e, "CLC-CLI command not started");
                    return self.done(run, cmd, Outcome::SpawnFailed(e));
                }
            }
        };
        let deadline = Instant::now() + settle;
        let mut running = true;
        loop {
            match started.reaps.recv_deadline(deadline) {
                Ok((pid, status)) if pid == started.pid => {
                    if status == ExitStatus::Code(0) {
                        warn!(component = %cmd.component, pid,
                            "instantiate: the component's process exited with status 0 during the settle time: \
                             an instantiate command must not daemonize (run in the foreground or exec)");
                    }
                    self.done(run, cmd, Outcome::Failed { status });
                    started.group.kill(Signal::SIGKILL);
                    running = false;
                    break;
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    self.done(run, cmd, Outcome::Succeeded { pid: started.pid });
                    break;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        // Monitoring, until the group is empty.
        for (pid, status) in started.reaps.iter() {
            let leader = pid == started.pid;
            if !running {
                continue;
            }
            let report = match monitoring {
                Monitoring::Off => false,
                Monitoring::Process => leader,
                Monitoring::ProcessAndDescendants => true,
            };
            info!(component = %cmd.component, pid, leader, status = %status, reported = report, "component process exited");
            if report {
                let _ = self.events.send(ClcEvent::Exited {
                    component: cmd.component.clone(),
                    pid,
                    status,
                    leader,
                });
            }
        }
        // Only its own group: the component may have been cleaned up and started again.
        let mut live = lock(&self.live);
        if live
            .get(&cmd.component)
            .is_some_and(|l| Arc::ptr_eq(l, &started.group))
        {
            live.remove(&cmd.component);
        }
        drop(live);
        started.wait_output();
        let _ = self.events.send(ClcEvent::Gone {
            component: cmd.component.clone(),
        });
    }
}

/// A process group the runner started and reaps.
#[derive(Debug)]
struct Group {
    pgid: i32,
    /// Set (under the lock) once every process of the group has been reaped: from then on the
    /// pgid may be reused and is never signalled.
    gone: Mutex<bool>,
    gone_cv: std::sync::Condvar,
}

impl Group {
    /// Sends `sig` to the group unless it is empty; whether it was sent.
    fn kill(&self, sig: Signal) -> bool {
        let gone = lock(&self.gone);
        if *gone {
            return false;
        }
        // The group has an unreaped member, so its id cannot have been reused.
        killpg(Pid::from_raw(self.pgid), sig).is_ok()
    }

    fn wait_gone(&self) {
        let mut gone = lock(&self.gone);
        while !*gone {
            gone = self
                .gone_cv
                .wait(gone)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A started command: its process, its group and the reaper's reports (closed when the group
/// is empty).
struct Started {
    pid: u32,
    group: Arc<Group>,
    reaps: Receiver<(u32, ExitStatus)>,
    /// Closed when the output thread has logged everything (every writer closed the pipe).
    output: Receiver<()>,
}

impl Started {
    /// Waits (a bounded time: a process that left the group may hold the pipe) until the
    /// output has been logged, so that it is in the log before the outcome is reported.
    fn wait_output(&self) {
        let _ = self.output.recv_timeout(OUTPUT_GRACE);
    }
}

/// How long an outcome waits for the command's output to be logged once its group is empty.
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// Starts `cmd` in a new process group with the reaper and output threads.
fn start(
    cmd: &ClcCommand,
    limits: OutputLimits,
    dispatch: &Dispatch,
) -> Result<Started, SpawnError> {
    let user = match &cmd.user {
        Some(name) => Some(lookup_user(name)?),
        None => None,
    };
    let group = match &cmd.group {
        Some(name) => Some(lookup_group(name)?),
        None => None,
    };
    let (reader, writer) = std::io::pipe().map_err(|e| SpawnError::Spawn(e.to_string()))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| SpawnError::Spawn(e.to_string()))?;
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg(&cmd.command)
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .current_dir(cmd.cwd.clone().unwrap_or_else(|| PathBuf::from("/")))
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .process_group(0);
    if let Some(u) = &user {
        c.uid(u.uid.as_raw())
            .gid(u.gid.as_raw())
            .env("HOME", &u.dir)
            .env("USER", &u.name)
            .env("LOGNAME", &u.name);
    }
    if let Some(g) = &group {
        c.gid(g.gid.as_raw());
    }
    c.env(COMPONENT_NAME_VAR, &cmd.component);
    for (k, v) in &cmd.env {
        c.env(k, v);
    }
    let child = c.spawn().map_err(|e| SpawnError::Spawn(e.to_string()))?;
    // Our copies of the pipe's write end go with the Command: only the group holds it now.
    drop(c);
    let pid = child.id();
    drop(child);
    info!(component = %cmd.component, command = %cmd.kind, pid, user = cmd.user.as_deref().unwrap_or(""), "CLC-CLI command started");
    let group = Arc::new(Group {
        pgid: pid as i32,
        gone: Mutex::new(false),
        gone_cv: std::sync::Condvar::new(),
    });
    let (tx, reaps) = crossbeam_channel::unbounded();
    let g = group.clone();
    spawn_thread("clc-reap", move || reap(&g, &tx));
    let (component, kind, d) = (cmd.component.clone(), cmd.kind, dispatch.clone());
    let (output_done, output) = crossbeam_channel::bounded::<()>(0);
    spawn_thread("clc-output", move || {
        tracing::dispatcher::with_default(&d, || log_output(reader, &component, kind, pid, limits));
        drop(output_done);
    });
    Ok(Started {
        pid,
        group,
        reaps,
        output,
    })
}

/// Reaps every process of the group (blocking `waitpid(-pgid)`) and reports each; marks the
/// group gone at `ECHILD`.
fn reap(group: &Group, tx: &Sender<(u32, ExitStatus)>) {
    let target = Pid::from_raw(-group.pgid);
    loop {
        match waitpid(target, None) {
            Ok(WaitStatus::Exited(pid, code)) => {
                let _ = tx.send((pid.as_raw() as u32, ExitStatus::Code(code)));
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                let _ = tx.send((pid.as_raw() as u32, ExitStatus::Signal(sig as i32)));
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(Errno::ECHILD) => break,
            Err(e) => {
                warn!(pgid = group.pgid, error = %e, "waitpid on a CLC-CLI process group");
                break;
            }
        }
    }
    *lock(&group.gone) = true;
    group.gone_cv.notify_all();
}

/// Logs the group's output line by line, bounded by `limits`, until every writer has closed.
fn log_output(
    reader: PipeReader,
    component: &str,
    kind: CommandKind,
    pid: u32,
    limits: OutputLimits,
) {
    let mut r = BufReader::new(reader);
    let mut buf = Vec::with_capacity(limits.max_line.min(4096));
    let mut logged = 0u64;
    let mut dropped = 0u64;
    loop {
        buf.clear();
        match (&mut r)
            .take(limits.max_line as u64)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
        if logged < limits.max_lines {
            logged += 1;
            let line = String::from_utf8_lossy(&buf);
            let line = line.strip_suffix('\n').unwrap_or(&line);
            info!(target: "ais::amf::output", component, command = kind.as_str(), pid, "{line}");
        } else {
            dropped += 1;
        }
    }
    if dropped > 0 {
        warn!(target: "ais::amf::output", component, command = kind.as_str(), pid, dropped,
            "output lines not logged (over the limit of {} per command)", limits.max_lines);
    }
}

/// Looks user `name` up in this node's password database, as a command run as that user
/// would (for validation: a model naming a user this node does not have is refused before
/// anything runs).
///
/// # Errors
///
/// [`SpawnError::NoSuchUser`] or [`SpawnError::UserLookup`].
pub fn check_user_name(name: &str) -> Result<(), SpawnError> {
    lookup_user(name).map(|_| ())
}

/// Looks group `name` up in this node's group database (for validation, as
/// [`check_user_name`]).
///
/// # Errors
///
/// [`SpawnError::NoSuchGroup`] or [`SpawnError::UserLookup`].
pub fn check_group_name(name: &str) -> Result<(), SpawnError> {
    lookup_group(name).map(|_| ())
}

fn lookup_group(name: &str) -> Result<nix::unistd::Group, SpawnError> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g),
        Ok(None) => Err(SpawnError::NoSuchGroup(name.to_owned())),
        Err(e) => Err(SpawnError::UserLookup {
            user: name.to_owned(),
            reason: e.to_string(),
        }),
    }
}

fn lookup_user(name: &str) -> Result<User, SpawnError> {
    match User::from_name(name) {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(SpawnError::NoSuchUser(name.to_owned())),
        Err(e) => Err(SpawnError::UserLookup {
            user: name.to_owned(),
            reason: e.to_string(),
        }),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn spawn_thread(name: &str, f: impl FnOnce() + Send + 'static) {
    // A thread that cannot be created leaves its request unanswered; the state machine's own
    // timer for the request covers that, and the log says why.
    if let Err(e) = thread::Builder::new().name(name.into()).spawn(f) {
        warn!(thread = name, error = %e, "cannot start a CLC-CLI thread");
    }
}
