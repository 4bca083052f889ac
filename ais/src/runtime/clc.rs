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
//! Outcomes: `Succeeded` → `Succeeded`; `Failed` and `SpawnFailed` → `Failed`; `TimedOut` →
//! `TimedOut`. The first [`ClcEvent::Exited`] of an instantiated component is reported once
//! as `Exited` for that instantiation's id; an exit after the core asked to terminate or clean
//! the component up is expected and not reported.

use std::collections::HashMap;
use std::time::Duration;

use ais_core::exec::{ClcCommand, ClcKind, ClcOutcome, ExecCore, ServiceId};
use ais_core::services::amf::PassiveMonitoring;
use ais_core::services::amf::state::Flat;
use tracing::{info, warn};

use crate::amf::clc::{
    self as runner, ClcEvent, ClcRunner, CommandKind, Monitoring, Outcome, RunId,
};

/// What the runtime keeps about the commands in flight.
pub struct ClcDriver {
    runner: ClcRunner,
    /// The passive monitoring of every component of this node's model, by DN.
    monitoring: HashMap<String, Monitoring>,
    /// Commands in flight: the service and the core's id.
    running: HashMap<RunId, (ServiceId, u64)>,
    /// Instantiated components whose exit is reported, by DN: the service and the id.
    watched: HashMap<String, (ServiceId, u64)>,
    /// The node's name, the component name of a failfast command.
    node: String,
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
        for su in &flat.sus {
            for c in &su.comps {
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
        ClcDriver {
            runner,
            monitoring,
            running: HashMap::new(),
            watched: HashMap::new(),
            node,
        }
    }

    /// Starts `command` for `service`; its outcome comes back through [`ClcDriver::event`].
    /// A command that cannot be started at all is answered at once.
    pub fn start(&mut self, core: &mut ExecCore, service: ServiceId, command: ClcCommand) {
        let timeout = Duration::from_millis(command.timeout_ms);
        let kind = match command.kind {
            ClcKind::Instantiate => CommandKind::Instantiate,
            ClcKind::Terminate => CommandKind::Terminate,
            ClcKind::Cleanup => CommandKind::Cleanup,
            ClcKind::Failfast => CommandKind::Failfast,
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
        let cmd = |text: &str| runner::ClcCommand::new(component.clone(), kind, text, timeout);
        let run = match (command.kind, command.command.as_deref()) {
            (ClcKind::Instantiate, Some(text)) => {
                let monitoring = self
                    .monitoring
                    .get(&command.comp)
                    .copied()
                    .unwrap_or(Monitoring::Process);
                self.watched
                    .insert(command.comp.clone(), (service, command.id));
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
            (_, None) => {
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
                    info!(component = %component, command = %kind, id, outcome = ?outcome, "CLC command done");
                } else {
                    warn!(component = %component, command = %kind, id, outcome = ?outcome, "CLC command done");
                    if kind == CommandKind::Instantiate {
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
                let Some((service, id)) = self.watched.remove(&component) else {
                    info!(component = %component, pid, %status, leader, "component process exited (expected)");
                    return;
                };
                warn!(component = %component, pid, %status, leader, id, "component process exited");
                core.clc_result(service, id, ClcOutcome::Exited);
            }
            ClcEvent::Gone { component } => {
                info!(component = %component, "no process of the component is left");
            }
        }
    }
}
