//! The runtime's side of component life-cycle commands: carries out the AMF service's
//! [`Effect::Clc`](ais_core::exec::Effect::Clc) with the node's [`ClcRunner`] and turns the
//! runner's [`ClcEvent`]s back into [`ExecCore::clc_result`] calls.
//!
//! | Command of the core | Runner call |
//! |---|---|
//! | `Instantiate` | [`ClcRunner::instantiate`], settle time 0, monitoring from the component type's `passive_monitoring` |
//! | `Terminate`, `Failfast` | [`ClcRunner::run`] |
//! | `Cleanup` | [`ClcRunner::cleanup`] (the command if any, then SIGKILL to the group) |
//!
//! | `Csi` (a built-in component's CSI) | the IP address added and announced ([`VirtualIp::assign_active`]) when held active, else removed ([`VirtualIp::remove`]) |
//!
//! A component of a built-in type (`builtin = "ip-address"`) runs no command: its
//! `Instantiate`, `Terminate` and `Cleanup` remove every address its CSIs name from their
//! interfaces (a new or stopped instance holds nothing, so an address left over by an
//! executive that died is removed when the next one starts the component), and its `Csi`
//! adds or removes one. These run on one thread of their own, in the order asked, so a
//! removal never overtakes the addition before it. A failure is reported `Failed`.
//! Commands of a type with `user` run as that user, with `group` with that group.
//!
//! Outcomes: `Succeeded` → `Succeeded`; `Failed` and `SpawnFailed` → `Failed`; `TimedOut` →
//! `TimedOut`. The first [`ClcEvent::Exited`] of an instantiated component is reported once
//! as `Exited` for that instantiation's id; an exit after the core asked to terminate or clean
//! the component up is expected and not reported. An exit is the current instantiation's
//! only once its `Done { Succeeded }` came (the runner sends that before any exit of the same
//! run) and, for the leader, only with its pid: the exit report of a cleaned-up process may
//! come after the cleanup's answer, when the component was started again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ais_core::exec::{ClcCommand, ClcKind, ClcOutcome, ExecCore, ServiceId};
use ais_core::services::amf::PassiveMonitoring;
use ais_core::services::amf::state::Flat;
use tracing::{info, warn};

use crate::amf::clc::{
    self as runner, ClcEvent, ClcRunner, CommandKind, ExitStatus, Monitoring, Outcome, RunId,
};
use crate::amf::vip::VirtualIp;
use ais_core::services::amf::model::{
    Builtin, IP_ADDRESS_ATTR, IP_ANNOUNCEMENTS_ATTR, IP_INTERFACE_ATTR, parse_cidr,
};
use crossbeam_channel::Sender;

/// A built-in component's addresses: every one its CSIs name, and by (SI, CSI) index.
#[derive(Debug, Default)]
struct BuiltinComp {
    all: Vec<VirtualIp>,
    by_csi: HashMap<(u32, u32), VirtualIp>,
}

/// What the built-in worker does.
#[derive(Debug)]
enum VipOp {
    /// Add and announce.
    Add(VirtualIp),
    /// Remove these (absent ones are no error).
    Remove(Vec<VirtualIp>),
}

#[derive(Debug)]
struct VipJob {
    run: RunId,
    component: String,
    kind: CommandKind,
    op: VipOp,
    reply: Sender<ClcEvent>,
}

/// The address of a validated `ip-address` CSI.
fn vip_of(attrs: &[(String, String)]) -> Option<VirtualIp> {
    let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (addr, prefix) = parse_cidr(get(IP_ADDRESS_ATTR)?)?;
    let v = VirtualIp::new(addr, prefix, get(IP_INTERFACE_ATTR)?).ok()?;
    match get(IP_ANNOUNCEMENTS_ATTR) {
        Some(n) => v.with_announcements(n.parse().ok()?).ok(),
        None => Some(v),
    }
}

/// Carries out the built-in components' work, one job after the other.
fn vip_worker(jobs: crossbeam_channel::Receiver<VipJob>) {
    while let Ok(job) = jobs.recv() {
        let t = Instant::now();
        let result = match &job.op {
            VipOp::Add(v) => v.assign_active().map(|_| ()),
            VipOp::Remove(vs) => vs.iter().try_for_each(|v| v.remove().map(|_| ())),
        };
        let outcome = match result {
            Ok(()) => {
                info!(component = %job.component, command = %job.kind, op = ?job.op,
                    us = t.elapsed().as_micros() as u64, "built-in component: done");
                Outcome::Succeeded { pid: 0 }
            }
            Err(e) => {
                warn!(component = %job.component, command = %job.kind, op = ?job.op,
                    error = %e, "built-in component: failed");
                Outcome::Failed {
                    status: ExitStatus::Code(1),
                }
            }
        };
        let _ = job.reply.send(ClcEvent::Done {
            run: job.run,
            component: job.component,
            kind: job.kind,
            outcome,
        });
    }
}

/// What the runtime keeps about the commands in flight.
pub struct ClcDriver {
    runner: ClcRunner,
    /// The passive monitoring of every component of this node's model, by DN.
    monitoring: HashMap<String, Monitoring>,
    /// Commands in flight: the service and the core's id.
    running: HashMap<RunId, (ServiceId, u64)>,
    /// Instantiated components whose exit is reported, by DN: the service, the id, and the
    /// pid of its process once its instantiation succeeded.
    watched: HashMap<String, (ServiceId, u64, Option<u32>)>,
    /// The node's name, the component name of a failfast command.
    node: String,
    /// The user of each component's commands, by DN (types with `user`).
    users: HashMap<String, String>,
    /// The group of each component's commands, by DN (types with `group`).
    groups: HashMap<String, String>,
    /// The built-in components of this model, by DN.
    builtins: HashMap<String, BuiltinComp>,
    /// The built-in components' worker (started when the model has any).
    vip_jobs: Option<Sender<VipJob>>,
}

impl std::fmt::Debug for ClcDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClcDriver")
            .field("running", &self.running.len())
            .field("watched", &self.watched.len())
            .finish_non_exhaustive()
    }
}

impl ClcDriver {
    /// A driver running commands with `runner`, the components' monitoring read from `flat`;
    /// `node` names this node in the failfast command's environment.
    pub fn new(runner: ClcRunner, flat: &Flat, node: String) -> ClcDriver {
        let mut monitoring = HashMap::new();
        let mut users = HashMap::new();
        let mut groups = HashMap::new();
        let mut builtins: HashMap<String, BuiltinComp> = HashMap::new();
        for (sx, su) in flat.sus.iter().enumerate() {
            for (cx, c) in su.comps.iter().enumerate() {
                let t = flat.model.comp_types.get(c.ctype);
                if let Some(user) = t.and_then(|t| t.user.clone()) {
                    users.insert(c.dn.clone(), user);
                }
                if let Some(group) = t.and_then(|t| t.group.clone()) {
                    groups.insert(c.dn.clone(), group);
                }
                if t.and_then(|t| t.builtin) == Some(Builtin::IpAddress) {
                    let b = builtins.entry(c.dn.clone()).or_default();
                    for (si, s) in flat.sis.iter().enumerate() {
                        for (k, (_, _, attrs)) in s.csis.iter().enumerate() {
                            if flat.comp_of(sx, si, k) != Some(cx) {
                                continue;
                            }
                            if let Some(v) = vip_of(attrs) {
                                if !b.all.contains(&v) {
                                    b.all.push(v.clone());
                                }
                                b.by_csi.insert((si as u32, k as u32), v);
                            }
                        }
                    }
                }
                let m = flat
                    .model
                    .comp_types
                    .get(c.ctype)
                    .map_or(Monitoring::Process, |t| match t.passive_monitoring {
                        PassiveMonitoring::Off => Monitoring::Off,
                        PassiveMonitoring::Process => Monitoring::Process,
                        PassiveMonitoring::ProcessAndDescendants => {
                            Monitoring::ProcessAndDescendants
                        }
                    });
                monitoring.insert(c.dn.clone(), m);
            }
        }
        let vip_jobs = if builtins.is_empty() {
            None
        } else {
            let (tx, rx) = crossbeam_channel::unbounded();
            match std::thread::Builder::new()
                .name("amf-builtin".into())
                .spawn(move || vip_worker(rx))
            {
                Ok(_) => Some(tx),
                Err(e) => {
                    // Their requests are then answered Failed: component failures.
                    warn!(error = %e, "cannot start the built-in components' thread");
                    None
                }
            }
        };
        ClcDriver {
            runner,
            monitoring,
            running: HashMap::new(),
            watched: HashMap::new(),
            node,
            users,
            groups,
            builtins,
            vip_jobs,
        }
    }

    /// Carries out `command` for a built-in component; false if `command.comp` is not one.
    fn start_builtin(
        &mut self,
        core: &mut ExecCore,
        service: ServiceId,
        command: &ClcCommand,
    ) -> bool {
        let Some(b) = self.builtins.get(&command.comp) else {
            return false;
        };
        let (kind, op) = match command.kind {
            ClcKind::Csi { si, csi, active } => {
                let Some(v) = b.by_csi.get(&(si, csi)) else {
                    warn!(component = %command.comp, si, csi, "no address for this CSI: refused");
                    core.clc_result(service, command.id, ClcOutcome::Failed);
                    return true;
                };
                let op = if active {
                    VipOp::Add(v.clone())
                } else {
                    VipOp::Remove(vec![v.clone()])
                };
                (CommandKind::Csi, op)
            }
            ClcKind::Instantiate => (CommandKind::Instantiate, VipOp::Remove(b.all.clone())),
            ClcKind::Terminate => (CommandKind::Terminate, VipOp::Remove(b.all.clone())),
            ClcKind::Cleanup => (CommandKind::Cleanup, VipOp::Remove(b.all.clone())),
            ClcKind::Failfast => return false,
        };
        info!(component = %command.comp, command = %kind, id = command.id, op = ?op,
            "built-in component");
        let (run, reply) = self.runner.external();
        let job = VipJob {
            run,
            component: command.comp.clone(),
            kind,
            op,
            reply,
        };
        match &self.vip_jobs {
            Some(tx) if tx.send(job).is_ok() => {
                self.running.insert(run, (service, command.id));
            }
            _ => core.clc_result(service, command.id, ClcOutcome::Failed),
        }
        true
    }

    /// Starts `command` for `service`; its outcome comes back through [`ClcDriver::event`].
    /// A command that cannot be started at all is answered at once.
    pub fn start(&mut self, core: &mut ExecCore, service: ServiceId, command: ClcCommand) {
        if self.start_builtin(core, service, &command) {
            return;
        }
        let timeout = Duration::from_millis(command.timeout_ms);
        let kind = match command.kind {
            ClcKind::Instantiate => CommandKind::Instantiate,
            ClcKind::Terminate => CommandKind::Terminate,
            ClcKind::Cleanup => CommandKind::Cleanup,
            ClcKind::Failfast => CommandKind::Failfast,
            ClcKind::Csi { .. } => {
                warn!(component = %command.comp, id = command.id,
                    "CSI command for a component that is not built in: failed");
                core.clc_result(service, command.id, ClcOutcome::Failed);
                return;
            }
        };
        let component = if command.kind == ClcKind::Failfast {
            self.node.clone()
        } else {
            command.comp.clone()
        };
        info!(
            component = %component,
            command = %kind,
            id = command.id,
            text = command.command.as_deref().unwrap_or("(SIGKILL)"),
            timeout_ms = command.timeout_ms,
            "CLC command"
        );
        // The node's failfast command runs as the executive, whatever the types say.
        let (user, group) = if command.kind == ClcKind::Failfast {
            (None, None)
        } else {
            (
                self.users.get(&command.comp).cloned(),
                self.groups.get(&command.comp).cloned(),
            )
        };
        let cmd = |text: &str| runner::ClcCommand {
            user: user.clone(),
            group: group.clone(),
            ..runner::ClcCommand::new(component.clone(), kind, text, timeout)
        };
        let run = match (command.kind, command.command.as_deref()) {
            (ClcKind::Instantiate, Some(text)) => {
                let monitoring = self
                    .monitoring
                    .get(&command.comp)
                    .copied()
                    .unwrap_or(Monitoring::Process);
                self.watched
                    .insert(command.comp.clone(), (service, command.id, None));
                self.runner
                    .instantiate(cmd(text), Duration::ZERO, monitoring)
            }
            (ClcKind::Cleanup, text) => {
                // The component is being stopped: its exit is no failure.
                self.watched.remove(&command.comp);
                self.runner.cleanup(&command.comp, text.map(cmd))
            }
            (ClcKind::Terminate, Some(text)) => {
                self.watched.remove(&command.comp);
                self.runner.run(cmd(text))
            }
            (ClcKind::Failfast, Some(text)) => self.runner.run(cmd(text)),
            (ClcKind::Csi { .. }, _) | (_, None) => {
                warn!(component = %component, command = %kind, id = command.id,
                    "CLC command without a command text: failed");
                core.clc_result(service, command.id, ClcOutcome::Failed);
                return;
            }
        };
        self.running.insert(run, (service, command.id));
    }

    /// Hands a runner event to the core.
    pub fn event(&mut self, core: &mut ExecCore, event: ClcEvent) {
        match event {
            ClcEvent::Done {
                run,
                component,
                kind,
                outcome,
            } => {
                let Some((service, id)) = self.running.remove(&run) else {
                    return;
                };
                let result = match &outcome {
                    Outcome::Succeeded { .. } => ClcOutcome::Succeeded,
                    Outcome::Failed { .. } | Outcome::SpawnFailed(_) => ClcOutcome::Failed,
                    Outcome::TimedOut => ClcOutcome::TimedOut,
                };
                if result == ClcOutcome::Succeeded {
                    if let (Outcome::Succeeded { pid }, Some(w)) =
                        (&outcome, self.watched.get_mut(&component))
                        && kind == CommandKind::Instantiate
                        && w.1 == id
                    {
                        w.2 = Some(*pid);
                    }
                    info!(component = %component, command = %kind, id, outcome = ?outcome, "CLC command done");
                } else {
                    warn!(component = %component, command = %kind, id, outcome = ?outcome, "CLC command done");
                    if kind == CommandKind::Instantiate
                        && self.watched.get(&component).is_some_and(|w| w.1 == id)
                    {
                        self.watched.remove(&component);
                    }
                }
                core.clc_result(service, id, result);
            }
            ClcEvent::Exited {
                component,
                pid,
                status,
                leader,
            } => {
                let current = match self.watched.get(&component) {
                    Some(&(service, id, Some(p))) if !leader || p == pid => Some((service, id)),
                    _ => None,
                };
                let Some((service, id)) = current else {
                    info!(component = %component, pid, %status, leader, "component process exited (expected)");
                    return;
                };
                self.watched.remove(&component);
                warn!(component = %component, pid, %status, leader, id, "component process exited");
                core.clc_result(service, id, ClcOutcome::Exited);
            }
            ClcEvent::Gone { component } => {
                info!(component = %component, "no process of the component is left");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use ais_core::exec::{ConnId, Context, Service};
    use bytes::Bytes;
    use crossbeam_channel::Receiver;
    use totem_dpdk::NodeId;
    use totem_dpdk::srp::ConfigChange;

    use super::*;
    use crate::config::amf::AmfConfig;

    const SVC: ServiceId = ServiceId(250);
    const DN: &str = "safComp=c,safSu=u1,safSg=g,safApp=g";

    /// Records the outcomes the core hands it.
    struct Recorder(Arc<Mutex<Vec<(u64, ClcOutcome)>>>);

    impl Service for Recorder {
        fn id(&self) -> ServiceId {
            SVC
        }
        fn name(&self) -> &'static str {
            "recorder"
        }
        fn lib_request(
            &mut self,
            _: &mut Context<'_>,
            _: ConnId,
            _: u64,
            _: u16,
            _: Bytes,
        ) -> Result<(), ais_proto::codec::DecodeError> {
            Ok(())
        }
        fn clc_result(&mut self, _: &mut Context<'_>, id: u64, outcome: ClcOutcome) {
            self.0.lock().unwrap().push((id, outcome));
        }
        fn exec_deliver(
            &mut self,
            _: &mut Context<'_>,
            _: NodeId,
            _: u16,
            _: Bytes,
        ) -> Result<(), ais_proto::codec::DecodeError> {
            Ok(())
        }
        fn confchg(&mut self, _: &mut Context<'_>, _: &ConfigChange) {}
        fn conn_closed(&mut self, _: &mut Context<'_>, _: ConnId) {}
    }

    struct Rig {
        core: ExecCore,
        driver: ClcDriver,
        events: Receiver<ClcEvent>,
        seen: Arc<Mutex<Vec<(u64, ClcOutcome)>>>,
    }

    impl Rig {
        fn new() -> Rig {
            Rig::with_type("instantiate = \"x\"\n")
        }

        /// The one-component model with component type `c` given by `type_keys`.
        fn with_type(type_keys: &str) -> Rig {
            let model = AmfConfig::from_str(
                &format!(
                    "[node]\nn1 = {{ nodeid = 1 }}\n[comp_type.c]\n{type_keys}\
                     [sg.g]\nredundancy = \"no-redundancy\"\ncomponents = [\"c\"]\n\
                     su.u1 = {{ node = \"n1\" }}\n[si.s]\nsg = \"g\"\ncsi.x = {{ comp_type = \"c\" }}\n"
                ),
                "amf.toml",
            )
            .expect("model")
            .model;
            let flat = Flat::new(model);
            assert!(flat.sus[0].comps.iter().any(|c| c.dn == DN), "{flat:?}");
            let (tx, events) = crossbeam_channel::unbounded();
            let seen = Arc::new(Mutex::new(Vec::new()));
            Rig {
                core: ExecCore::new(NodeId(1), vec![Box::new(Recorder(Arc::clone(&seen)))]),
                driver: ClcDriver::new(ClcRunner::new(tx).expect("runner"), &flat, "n1".into()),
                events,
                seen,
            }
        }

        fn start(&mut self, id: u64, kind: ClcKind, command: Option<&str>, timeout_ms: u64) {
            let cmd = ClcCommand {
                id,
                kind,
                comp: DN.into(),
                command: command.map(str::to_owned),
                timeout_ms,
            };
            self.driver.start(&mut self.core, SVC, cmd);
        }

        /// Feeds runner events to the driver until the core has `n` outcomes; returns them
        /// and the pid of any successful instantiation seen on the way.
        fn wait(&mut self, n: usize) -> (Vec<(u64, ClcOutcome)>, Option<u32>) {
            let mut pid = None;
            while self.seen.lock().unwrap().len() < n {
                let ev = self
                    .events
                    .recv_timeout(Duration::from_secs(20))
                    .expect("a runner event");
                if let ClcEvent::Done {
                    kind: CommandKind::Instantiate,
                    outcome: Outcome::Succeeded { pid: p },
                    ..
                } = &ev
                {
                    pid = Some(*p);
                }
                self.driver.event(&mut self.core, ev);
            }
            (self.seen.lock().unwrap().clone(), pid)
        }
    }

    #[test]
    fn outcomes_reach_the_core_and_an_exit_is_reported_once_unless_asked_for() {
        let mut r = Rig::new();
        // A running component, then killed: Succeeded, then Exited with the same id.
        r.start(1, ClcKind::Instantiate, Some("exec sleep 30"), 5000);
        let (seen, pid) = r.wait(1);
        assert_eq!(seen, [(1, ClcOutcome::Succeeded)]);
        let pid = pid.expect("its pid");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let (seen, _) = r.wait(2);
        assert_eq!(seen[1], (1, ClcOutcome::Exited));
        // Its cleanup (no command: SIGKILL to what is left) succeeds.
        r.start(2, ClcKind::Cleanup, None, 5000);
        assert_eq!(r.wait(3).0[2], (2, ClcOutcome::Succeeded));
        // Started again and cleaned up: the exit the cleanup causes is not reported.
        r.start(3, ClcKind::Instantiate, Some("exec sleep 30"), 5000);
        assert_eq!(r.wait(4).0[3], (3, ClcOutcome::Succeeded));
        r.start(4, ClcKind::Cleanup, Some("true"), 5000);
        assert_eq!(r.wait(5).0[4], (4, ClcOutcome::Succeeded));
        // Commands that end: failed, timed out, succeeded; one without text fails at once.
        r.start(5, ClcKind::Terminate, Some("exit 3"), 5000);
        assert_eq!(r.wait(6).0[5], (5, ClcOutcome::Failed));
        r.start(6, ClcKind::Terminate, Some("sleep 10"), 100);
        assert_eq!(r.wait(7).0[6], (6, ClcOutcome::TimedOut));
        r.start(
            7,
            ClcKind::Failfast,
            Some("test \"$SA_AMF_COMPONENT_NAME\" = n1"),
            5000,
        );
        assert_eq!(r.wait(8).0[7], (7, ClcOutcome::Succeeded));
        r.start(8, ClcKind::Terminate, None, 5000);
        let (seen, _) = r.wait(9);
        assert_eq!(seen[8], (8, ClcOutcome::Failed));
        // Nothing else came: in particular no Exited for instantiation 3.
        std::thread::sleep(Duration::from_millis(200));
        while let Ok(ev) = r.events.try_recv() {
            r.driver.event(&mut r.core, ev);
        }
        assert_eq!(
            r.seen.lock().unwrap().len(),
            9,
            "{:?}",
            r.seen.lock().unwrap()
        );
    }

    /// The runner's exit report of a cleaned-up process can reach the driver after the
    /// cleanup's own answer, when the core has already started the component again (two
    /// runner threads, one channel; seen with real executives in `amf_models`). It is no
    /// failure of the new instantiation.
    #[test]
    fn a_late_exit_of_the_previous_process_is_not_the_new_one_s() {
        let mut r = Rig::new();
        r.start(1, ClcKind::Instantiate, Some("exec sleep 30"), 5000);
        let (_, pid) = r.wait(1);
        let old = pid.expect("its pid");
        // The cleanup: its answer goes to the driver, the old process's exit is held back.
        r.start(2, ClcKind::Cleanup, None, 5000);
        let mut held = Vec::new();
        while r.seen.lock().unwrap().len() < 2 {
            let ev = r
                .events
                .recv_timeout(Duration::from_secs(20))
                .expect("a runner event");
            match ev {
                ClcEvent::Exited { .. } => held.push(ev),
                ev => r.driver.event(&mut r.core, ev),
            }
        }
        assert_eq!(r.seen.lock().unwrap()[1], (2, ClcOutcome::Succeeded));
        while held.is_empty() {
            match r.events.recv_timeout(Duration::from_secs(20)) {
                Ok(ev @ ClcEvent::Exited { .. }) => held.push(ev),
                Ok(ev) => r.driver.event(&mut r.core, ev),
                Err(e) => panic!("no exit report of the old process: {e}"),
            }
        }
        // Started again; the held exit arrives before the new instantiation's answer.
        r.start(3, ClcKind::Instantiate, Some("exec sleep 30"), 5000);
        assert!(
            held.iter()
                .any(|e| matches!(e, ClcEvent::Exited { pid, .. } if *pid == old)),
            "{held:?}"
        );
        for ev in held {
            r.driver.event(&mut r.core, ev);
        }
        let (seen, pid) = r.wait(3);
        assert_eq!(seen[2], (3, ClcOutcome::Succeeded), "{seen:?}");
        // And a real exit of the new process is still reported, for the new instantiation.
        let new = pid.expect("the new pid");
        assert_ne!(new, old);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(new as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        assert_eq!(r.wait(4).0[3], (3, ClcOutcome::Exited));
        r.start(4, ClcKind::Cleanup, None, 5000);
        r.wait(5);
    }

    #[test]
    fn the_commands_of_a_type_with_a_user_run_as_that_user() {
        let mut r = Rig::with_type("instantiate = \"x\"\nterminate = \"x\"\nuser = \"nobody\"\n");
        // The identity the command runs with, and the environment that goes with it.
        r.start(
            1,
            ClcKind::Terminate,
            Some(
                "test \"$(id -un)\" = nobody && test \"$USER\" = nobody && test \"$(id -u)\" != 0",
            ),
            5000,
        );
        assert_eq!(r.wait(1).0[0], (1, ClcOutcome::Succeeded));
        r.start(2, ClcKind::Terminate, Some("test \"$(id -u)\" = 0"), 5000);
        assert_eq!(r.wait(2).0[1], (2, ClcOutcome::Failed));
        // The instantiated process runs as the user too.
        r.start(3, ClcKind::Instantiate, Some("exec sleep 30"), 5000);
        let (seen, pid) = r.wait(3);
        assert_eq!(seen[2], (3, ClcOutcome::Succeeded));
        let status = std::fs::read_to_string(format!("/proc/{}/status", pid.expect("pid")))
            .expect("its status");
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .expect("Uid line");
        assert!(uid.split_whitespace().all(|u| u == "65534"), "{uid}");
        r.start(4, ClcKind::Cleanup, None, 5000);
        assert_eq!(r.wait(4).0[3], (4, ClcOutcome::Succeeded));
        // The failfast command is the node's, not the type's: it runs as the executive.
        r.start(5, ClcKind::Failfast, Some("test \"$(id -u)\" = 0"), 5000);
        assert_eq!(r.wait(5).0[4], (5, ClcOutcome::Succeeded));
    }

    #[test]
    fn the_commands_of_a_type_with_a_group_run_with_that_group() {
        let mut r = Rig::with_type(
            "instantiate = \"x\"\nterminate = \"x\"\nuser = \"nobody\"\ngroup = \"nogroup\"\n",
        );
        r.start(
            1,
            ClcKind::Terminate,
            Some("test \"$(id -un)\" = nobody && test \"$(id -gn)\" = nogroup"),
            5000,
        );
        assert_eq!(r.wait(1).0[0], (1, ClcOutcome::Succeeded));
        // A group without a user: the executive's user with that group.
        let mut r = Rig::with_type("instantiate = \"x\"\nterminate = \"x\"\ngroup = \"nogroup\"\n");
        r.start(
            1,
            ClcKind::Terminate,
            Some("test \"$(id -u)\" = 0 && test \"$(id -gn)\" = nogroup"),
            5000,
        );
        assert_eq!(r.wait(1).0[0], (1, ClcOutcome::Succeeded));
    }
}
