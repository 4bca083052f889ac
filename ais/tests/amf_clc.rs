//! The CLC-CLI runner and passive monitor (`ais::amf::clc`) on real processes: commands that
//! succeed, fail, time out (the whole group killed, nothing left), run as another user, get
//! the component's name in their environment, have their output logged (bounded); a
//! long-running component's exit, a descendant's exit, cleanup killing the whole group; no
//! process is left unreaped.
//!
//! Assumes: root (to switch to `nobody`; CI runs as root), `/bin/sh`, coreutils.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ais::amf::clc::{
    ClcCommand, ClcEvent, ClcRunner, CommandKind, ExitStatus, Monitoring, Outcome, OutputLimits,
    RunId, SpawnError,
};
use crossbeam_channel::Receiver;

const COMP: &str = "safComp=c,safSu=u,safSg=g,safApp=a";
const WAIT: Duration = Duration::from_secs(20);

fn runner() -> (ClcRunner, Receiver<ClcEvent>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (ClcRunner::new(tx).expect("child subreaper"), rx)
}

fn cmd(text: &str, timeout_ms: u64) -> ClcCommand {
    ClcCommand::new(
        COMP,
        CommandKind::Instantiate,
        text,
        Duration::from_millis(timeout_ms),
    )
}

/// The next event, or a panic naming what was awaited.
fn next(rx: &Receiver<ClcEvent>, what: &str) -> ClcEvent {
    rx.recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("no event within {WAIT:?} while waiting for {what}"))
}

/// The outcome of `run`, skipping nothing: the runner reports nothing else for a plain run.
fn done(rx: &Receiver<ClcEvent>, run: RunId) -> Outcome {
    match next(rx, "Done") {
        ClcEvent::Done {
            run: r, outcome, ..
        } if r == run => outcome,
        other => panic!("expected Done for {run:?}, got {other:?}"),
    }
}

fn run(text: &str, timeout_ms: u64) -> Outcome {
    let (r, rx) = runner();
    let id = r.run(cmd(text, timeout_ms));
    done(&rx, id)
}

/// A fresh file path for a command to write into.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("amf_clc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

/// Reads a pid a command wrote to `path` (waiting for it to appear).
fn read_pid(path: &Path) -> u32 {
    let end = Instant::now() + WAIT;
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && let Ok(p) = s.trim().parse()
        {
            return p;
        }
        assert!(Instant::now() < end, "{} never written", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `pid` names a process, zombie included (a zombie is a process not reaped).
fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn kill9(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9");
}

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs `f` with a subscriber logging into the returned buffer.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    let buf = Buf::default();
    let b = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || b.clone())
        .finish();
    let out = tracing::subscriber::with_default(sub, f);
    (out, buf.text())
}

#[test]
fn a_command_that_succeeds() {
    match run("true", 5000) {
        Outcome::Succeeded { pid } => assert!(pid > 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_command_that_fails_by_code_or_signal() {
    assert_eq!(
        run("exit 3", 5000),
        Outcome::Failed {
            status: ExitStatus::Code(3)
        }
    );
    assert_eq!(
        run("kill -9 $$", 5000),
        Outcome::Failed {
            status: ExitStatus::Signal(9)
        }
    );
    assert_eq!(
        run("/nonexistent/program", 5000),
        Outcome::Failed {
            status: ExitStatus::Code(127)
        }
    );
}

#[test]
fn a_command_that_times_out_loses_its_whole_group() {
    let f = scratch("timeout-bg");
    let text = format!("sleep 60 & echo $! > {}; sleep 60", f.display());
    let t = Instant::now();
    assert_eq!(run(&text, 300), Outcome::TimedOut);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(10),
        "{took:?}"
    );
    // The background sleep was in the group: killed and reaped, not orphaned.
    let bg = read_pid(&f);
    assert!(!exists(bg), "background process {bg} survived the timeout");
}

#[test]
fn what_a_finished_command_left_behind_is_killed() {
    let f = scratch("leftover");
    let text = format!("sleep 60 & echo $! > {}; exit 0", f.display());
    assert!(matches!(run(&text, 5000), Outcome::Succeeded { .. }));
    let bg = read_pid(&f);
    assert!(!exists(bg), "leftover {bg} still there");
}

#[test]
fn runs_as_another_user_and_refuses_a_missing_one() {
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("user nobody");
    let (r, rx) = runner();
    let mut c = cmd(
        &format!(
            "test \"$(id -u)\" = {} && test \"$(id -g)\" = {} && test \"$USER\" = nobody && test -z \"$(id -G | tr -d ' {}')\"",
            nobody.uid, nobody.gid, nobody.gid
        ),
        5000,
    );
    c.user = Some("nobody".into());
    assert!(c.check_user().is_ok());
    let id = r.run(c.clone());
    assert!(matches!(done(&rx, id), Outcome::Succeeded { .. }));

    // The same check as root fails (so the test above could fail).
    c.user = None;
    let id = r.run(c.clone());
    assert!(matches!(done(&rx, id), Outcome::Failed { .. }));

    c.user = Some("no-such-user-amf".into());
    let err = SpawnError::NoSuchUser("no-such-user-amf".into());
    assert_eq!(c.check_user(), Err(err.clone()));
    let id = r.run(c);
    assert_eq!(done(&rx, id), Outcome::SpawnFailed(err.clone()));
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn environment_is_the_component_name_and_the_callers() {
    let mut c = cmd(
        &format!(
            "test \"$SA_AMF_COMPONENT_NAME\" = '{COMP}' && test \"$EXTRA\" = 'a b' && test -z \"$CARGO\" && test \"$(pwd)\" = /"
        ),
        5000,
    );
    c.env.push(("EXTRA".into(), "a b".into()));
    let (r, rx) = runner();
    let id = r.run(c.clone());
    assert!(matches!(done(&rx, id), Outcome::Succeeded { .. }));
    c.env.clear();
    let id = r.run(c);
    assert!(matches!(done(&rx, id), Outcome::Failed { .. }));
}

#[test]
fn output_is_logged_line_by_line_with_component_and_kind() {
    let (outcome, log) = logged(|| {
        let (r, rx) = runner();
        let mut c = cmd(
            "echo to-stdout-1; echo to-stderr-2 >&2; echo to-stdout-3",
            5000,
        );
        c.kind = CommandKind::Terminate;
        let id = r.run(c);
        done(&rx, id)
    });
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    for l in ["to-stdout-1", "to-stderr-2", "to-stdout-3"] {
        let line = log
            .lines()
            .find(|x| x.contains(l))
            .unwrap_or_else(|| panic!("{l} not logged:\n{log}"));
        assert!(line.contains(COMP), "{line}");
        assert!(line.contains("terminate"), "{line}");
        assert!(line.contains("pid="), "{line}");
    }
}

#[test]
fn chatty_output_is_bounded() {
    let (outcome, log) = logged(|| {
        let (r, rx) = runner();
        let r = r.with_limits(OutputLimits {
            max_line: 100,
            max_lines: 10,
        });
        // 5000 lines, then one line of 250 bytes that would be the 5001st.
        let id = r.run(cmd(
            "seq 1 5000; printf '%0250d\\n' 0; echo tail-marker",
            10000,
        ));
        done(&rx, id)
    });
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    let output_lines = log
        .lines()
        .filter(|l| l.contains("ais::amf::output"))
        .count();
    // 10 output lines and the one that counts the rest.
    assert_eq!(output_lines, 11, "{log}");
    assert!(!log.contains("tail-marker"), "{log}");
    // 4990 numbers, 3 pieces of the long line, the marker.
    assert!(log.contains("dropped=4994"), "{log}");

    // A long line alone is logged in pieces of at most max_line bytes.
    let (_, log) = logged(|| {
        let (r, rx) = runner();
        let r = r.with_limits(OutputLimits {
            max_line: 100,
            max_lines: 10,
        });
        let id = r.run(cmd("printf '%0250d\\n' 0", 5000));
        done(&rx, id)
    });
    let pieces: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ais::amf::output"))
        .collect();
    assert_eq!(pieces.len(), 3, "{log}");
}

/// Instantiates `text` (settle 200 ms) and returns its pid.
fn instantiate(r: &ClcRunner, rx: &Receiver<ClcEvent>, text: &str, m: Monitoring) -> u32 {
    let id = r.instantiate(cmd(text, 5000), Duration::from_millis(200), m);
    match done(rx, id) {
        Outcome::Succeeded { pid } => pid,
        other => panic!("instantiate: {other:?}"),
    }
}

#[test]
fn the_exit_of_a_component_process_is_reported() {
    let (r, rx) = runner();
    let pid = instantiate(&r, &rx, "exec sleep 60", Monitoring::Process);
    assert!(exists(pid) && r.is_live(COMP));
    kill9(pid);
    assert_eq!(
        next(&rx, "Exited"),
        ClcEvent::Exited {
            component: COMP.into(),
            pid,
            status: ExitStatus::Signal(9),
            leader: true
        }
    );
    assert_eq!(
        next(&rx, "Gone"),
        ClcEvent::Gone {
            component: COMP.into()
        }
    );
    assert!(!exists(pid), "{pid} not reaped");
    assert!(!r.is_live(COMP));
}

/// A component whose process (a shell) has an orphaned descendant (a `sleep` whose parent
/// subshell exited, re-parented to the executive); returns (leader, descendant).
fn with_descendant(r: &ClcRunner, rx: &Receiver<ClcEvent>, m: Monitoring) -> (u32, u32) {
    let f = scratch(&format!("desc-{m:?}"));
    let text = format!("(sleep 60 & echo $! > {}); exec sleep 60", f.display());
    let leader = instantiate(r, rx, &text, m);
    (leader, read_pid(&f))
}

#[test]
fn the_exit_of_a_descendant_is_reported_when_asked() {
    let (r, rx) = runner();
    let (leader, desc) = with_descendant(&r, &rx, Monitoring::ProcessAndDescendants);
    kill9(desc);
    assert_eq!(
        next(&rx, "descendant Exited"),
        ClcEvent::Exited {
            component: COMP.into(),
            pid: desc,
            status: ExitStatus::Signal(9),
            leader: false
        }
    );
    assert!(exists(leader) && !exists(desc));
    let c = r.cleanup(COMP, None);
    let seen = until_done_and_gone(&rx, c);
    assert!(seen.contains(&ClcEvent::Exited {
        component: COMP.into(),
        pid: leader,
        status: ExitStatus::Signal(9),
        leader: true
    }));
    assert!(seen.contains(&ClcEvent::Gone {
        component: COMP.into()
    }));
    assert!(seen.iter().any(|e| matches!(e, ClcEvent::Done { run, kind: CommandKind::Cleanup, outcome: Outcome::Succeeded { pid } , ..} if *run == c && *pid == leader)), "{seen:?}");
}

#[test]
fn only_the_process_is_reported_under_process_monitoring() {
    let (r, rx) = runner();
    let (leader, desc) = with_descendant(&r, &rx, Monitoring::Process);
    kill9(desc);
    // The descendant's exit is not reported: the next event is the leader's.
    std::thread::sleep(Duration::from_millis(200));
    assert!(!exists(desc), "descendant {desc} not reaped");
    kill9(leader);
    assert!(matches!(
        next(&rx, "leader Exited"),
        ClcEvent::Exited { pid, leader: true, .. } if pid == leader
    ));
    assert!(matches!(next(&rx, "Gone"), ClcEvent::Gone { .. }));
}

#[test]
fn cleanup_kills_the_whole_group_after_its_command() {
    let (r, rx) = runner();
    let (leader, desc) = with_descendant(&r, &rx, Monitoring::Off);
    let f = scratch("cleanup-ran");
    let mut c = cmd(&format!("echo ran > {}", f.display()), 5000);
    c.kind = CommandKind::Cleanup;
    let id = r.cleanup(COMP, Some(c));
    let events = until_done_and_gone(&rx, id);
    assert!(
        events.iter().any(|e| matches!(
            e,
            ClcEvent::Done {
                kind: CommandKind::Cleanup,
                outcome: Outcome::Succeeded { .. },
                ..
            }
        )),
        "{events:?}"
    );
    // Monitoring off: no Exited, only Gone.
    assert!(!events.iter().any(|e| matches!(e, ClcEvent::Exited { .. })));
    assert_eq!(std::fs::read_to_string(&f).unwrap().trim(), "ran");
    assert!(
        !exists(leader) && !exists(desc),
        "{leader} or {desc} survived cleanup"
    );
    assert!(!r.is_live(COMP));
}

/// The events up to both the `Done` of `run` and a `Gone` (in either order).
fn until_done_and_gone(rx: &Receiver<ClcEvent>, run: RunId) -> Vec<ClcEvent> {
    let mut events = Vec::new();
    let (mut done, mut gone) = (false, false);
    while !(done && gone) {
        let e = next(rx, "Done and Gone");
        done |= matches!(e, ClcEvent::Done { run: r, .. } if r == run);
        gone |= matches!(e, ClcEvent::Gone { .. });
        events.push(e);
    }
    events
}

#[test]
fn an_instantiate_command_that_daemonizes_fails() {
    let (r, rx) = runner();
    let f = scratch("daemon");
    let text = format!("sleep 60 & echo $! > {}; exit 0", f.display());
    let id = r.instantiate(
        cmd(&text, 5000),
        Duration::from_millis(300),
        Monitoring::Process,
    );
    assert_eq!(
        done(&rx, id),
        Outcome::Failed {
            status: ExitStatus::Code(0)
        }
    );
    assert!(matches!(next(&rx, "Gone"), ClcEvent::Gone { .. }));
    let bg = read_pid(&f);
    assert!(!exists(bg), "the daemon {bg} was left running");
}

#[test]
fn a_second_instantiate_of_a_live_component_is_refused() {
    let (r, rx) = runner();
    let comp = "safComp=twice,safSu=u,safSg=g,safApp=a";
    let mut c = cmd("exec sleep 60", 5000);
    c.component = comp.into();
    let id = r.instantiate(c.clone(), Duration::ZERO, Monitoring::Process);
    let pid = match done(&rx, id) {
        Outcome::Succeeded { pid } => pid,
        o => panic!("{o:?}"),
    };
    let id = r.instantiate(c, Duration::ZERO, Monitoring::Process);
    assert_eq!(
        done(&rx, id),
        Outcome::SpawnFailed(SpawnError::AlreadyRunning(comp.into()))
    );
    let id = r.cleanup(comp, None);
    until_done_and_gone(&rx, id);
    assert!(!exists(pid));
}

/// A cleanup's `Done` means the component may be started again at once: the executive
/// instantiates a restarted component as soon as its cleanup is answered. (The monitor
/// thread of the old process used to leave the component "live" a moment longer, so the
/// new instantiation was refused as AlreadyRunning; found by `amf_models`.)
#[test]
fn after_a_cleanup_the_component_can_be_started_again_at_once() {
    let (r, rx) = runner();
    for round in 0..30 {
        let id = r.instantiate(
            cmd("exec sleep 30", 5000),
            Duration::ZERO,
            Monitoring::Process,
        );
        let mut pid = None;
        while pid.is_none() {
            match next(&rx, "instantiate") {
                ClcEvent::Done {
                    run,
                    outcome: Outcome::Succeeded { pid: p },
                    ..
                } if run == id => pid = Some(p),
                ClcEvent::Done { run, outcome, .. } if run == id => {
                    panic!("round {round}: instantiate: {outcome:?}")
                }
                _ => {}
            }
        }
        let id = r.cleanup(COMP, None);
        loop {
            match next(&rx, "cleanup") {
                ClcEvent::Done { run, .. } if run == id => break,
                _ => {}
            }
        }
        assert!(!r.is_live(COMP), "round {round}: live after its cleanup");
    }
}
