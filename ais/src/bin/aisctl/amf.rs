//! `aisctl amf`: the availability management framework. `check` validates a model file
//! without starting anything.

use std::path::{Path, PathBuf};

use ais::config::Config;
use ais::config::amf::{AmfConfig, AmfError};
use ais_client::AisError;
use ais_client::amf::{AdminOp, Amf, Ha, Tree};
use ais_core::services::amf::model::{AmfModel, CsiTarget, Redundancy};
use anyhow::{Context, bail};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub(crate) enum AmfCommand {
    /// Validate an AMF model file without starting anything: print the model as a tree
    /// (application → SG → SU → component; SI → CSI) and "ok", or every error as
    /// FILE:LINE:COLUMN: KEY: MESSAGE and exit with status 1. Warnings (a model that works
    /// but protects less than its redundancy model promises, e.g. 2N with one SU) are
    /// printed and do not fail the check.
    ///
    /// The file is the one the executive's configuration names with
    ///   [amf]
    ///   model = "/etc/openais/amf.toml"
    /// Its format, every key and its default, and the rules checked are in docs/amf.md;
    /// configs/amf/ has examples (minimal-2n.toml is the smallest useful model).
    ///
    /// Without FILE, the model file is the one named by [amf] model in the executive's
    /// configuration (--config, else $OPENAIS_MAIN_CONFIG_FILE, else
    /// /etc/openais/aisexec.toml). aisexec runs the same check when it starts and refuses
    /// to start on an error.
    ///
    /// Examples:
    ///   aisctl amf check configs/amf/minimal-2n.toml
    ///   aisctl amf check /etc/openais/amf.toml --quiet   # errors and warnings only
    ///   aisctl --config /etc/openais/aisexec.toml amf check
    #[command(verbatim_doc_comment)]
    Check {
        /// The model file (default: [amf] model of the executive's configuration).
        file: Option<PathBuf>,
        /// Print only the problems and the verdict, not the tree.
        #[arg(long, short)]
        quiet: bool,
    },
    /// The running AMF's tree, one line per entity with every state: the cluster (members,
    /// quorate), each service group with its application and redundancy model, each
    /// service unit on its node with its readiness, administrative, operational and
    /// presence states, each of its components with its readiness, operational and
    /// presence states and the CSIs it holds with their HA state, and each service
    /// instance with every assignment and its HA state (active, standby, quiescing,
    /// quiesced); "held -> target" while an assignment changes. Readiness is derived:
    /// in-service (instantiated, enabled, unlocked, on a member node), stopping (the same,
    /// shutting down), out-of-service otherwise. Asked of this node's executive: every
    /// node holds the same replicated state, and knows its own components exactly.
    ///
    ///   SG counter (2n), application counter
    ///     SU counter-1 on node 1: in-service, unlocked, enabled, instantiated
    ///       component counter: in-service, enabled, instantiated; CSI state of SI counter active
    ///
    /// Examples:
    ///   aisctl amf status
    ///   aisctl --socket /run/openais/node2.sock amf status
    ///   aisctl amf status --json | jq '.sgs[].sis[] | {name, assignments}'
    #[command(verbatim_doc_comment)]
    Status {
        /// Print the tree as JSON (the same fields; states by name, "none" for no HA state).
        #[arg(long)]
        json: bool,
    },
    /// Lock an SU (its assignments are removed, its components keep running) or an SI (it
    /// is unassigned). Allowed on an unlocked or shutting-down SU.
    #[command(verbatim_doc_comment)]
    Lock {
        /// The SU's or SI's name (names are unique in the model).
        entity: String,
    },
    /// Unlock a locked (or shutting-down) SU or a locked SI: back in service, assignable.
    Unlock {
        /// The SU's or SI's name.
        entity: String,
    },
    /// Terminate the components of a locked SU (it must be locked first) and keep them down.
    LockInstantiation {
        /// The SU's name.
        entity: String,
    },
    /// Instantiate again the components of an SU locked for instantiation (it stays locked:
    /// unlock it to give it work).
    UnlockInstantiation {
        /// The SU's name.
        entity: String,
    },
    /// Like lock, gracefully: an unlocked SU's (or an SI's) active assignments are quiesced
    /// (finish current work, take no new work) before they are removed.
    Shutdown {
        /// The SU's or SI's name.
        entity: String,
    },
    /// Restart every component of an unlocked SU (terminate, instantiate); its assignments
    /// are given back once they are up.
    Restart {
        /// The SU's name.
        entity: String,
    },
    /// Move an SI's active assignment to its standby, gracefully: the active is quiesced,
    /// then the standby is made active and the old active becomes standby. Only for an SI
    /// whose redundancy model has a standby (2N, N+M).
    ///
    /// Errors: NOT_EXIST (no such SU or SI), BAD_OPERATION (not allowed on this entity in
    /// its present state, e.g. unlock of an unlocked SU or a switchover of an SU), TRY_AGAIN
    /// (this node's partition has no quorum: only the quorate side changes assignments).
    ///
    /// Examples:
    ///   aisctl amf switchover counter
    ///   aisctl amf lock counter-1 && aisctl amf lock-instantiation counter-1
    #[command(verbatim_doc_comment)]
    Switchover {
        /// The SI's name.
        entity: String,
    },
}

/// `config`: the executive's configuration file given with `--config`, if any; `socket`:
/// where the executive is.
pub(crate) fn amf_command(
    command: &AmfCommand,
    config: Option<&Path>,
    socket: &dyn Fn() -> anyhow::Result<PathBuf>,
) -> anyhow::Result<()> {
    let (op, entity) = match command {
        AmfCommand::Check {
            file: Some(file),
            quiet,
        } => return check(file, *quiet),
        AmfCommand::Check { file: None, quiet } => {
            let path = Config::locate(config);
            let config = Config::from_file(&path)?;
            let Some(amf) = config.amf else {
                bail!(
                    "{}: no [amf] table names a model file; give the file: aisctl amf check FILE",
                    path.display()
                );
            };
            return check(&amf.model, *quiet);
        }
        AmfCommand::Status { json } => return status(&socket()?, *json),
        AmfCommand::Lock { entity } => (AdminOp::Lock, entity),
        AmfCommand::Unlock { entity } => (AdminOp::Unlock, entity),
        AmfCommand::LockInstantiation { entity } => (AdminOp::LockInstantiation, entity),
        AmfCommand::UnlockInstantiation { entity } => (AdminOp::UnlockInstantiation, entity),
        AmfCommand::Shutdown { entity } => (AdminOp::Shutdown, entity),
        AmfCommand::Restart { entity } => (AdminOp::Restart, entity),
        AmfCommand::Switchover { entity } => (AdminOp::Switchover, entity),
    };
    admin(&socket()?, op, entity)
}

fn check(file: &Path, quiet: bool) -> anyhow::Result<()> {
    match AmfConfig::from_file(file) {
        Ok(config) => {
            if !quiet {
                print_tree(&config.model);
            }
            for w in &config.warnings {
                say!("warning: {w}");
            }
            say!("ok: {}", summary(&config.model));
            Ok(())
        }
        Err(AmfError::Invalid { errors, warnings }) => {
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            for e in &errors {
                eprintln!("{e}");
            }
            bail!(
                "{}: {} error{}",
                file.display(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            )
        }
        Err(e) => Err(e.into()),
    }
}

fn summary(model: &AmfModel) -> String {
    let sgs = model.apps.iter().flat_map(|a| &a.sgs);
    let sus = sgs.clone().flat_map(|g| &g.sus);
    let comps: usize = sus.clone().map(|u| u.components.len()).sum();
    let sis = model.apps.iter().flat_map(|a| &a.sis);
    let csis: usize = sis.clone().map(|s| s.csis.len()).sum();
    format!(
        "{} nodes, {} component types, {} applications, {} SGs, {} SUs, {} components, {} SIs, \
         {} CSIs",
        model.nodes.len(),
        model.comp_types.len(),
        model.apps.len(),
        sgs.count(),
        sus.count(),
        comps,
        sis.count(),
        csis
    )
}

fn redundancy(r: &Redundancy) -> String {
    match r {
        Redundancy::TwoN | Redundancy::NoRedundancy => r.name().to_owned(),
        Redundancy::NPlusM {
            active_sus,
            standby_sus,
            ..
        } => format!("n+m, {active_sus}+{standby_sus}"),
        Redundancy::NWayActive { active_sus, .. } => format!("n-way-active, {active_sus} active"),
    }
}

fn print_tree(model: &AmfModel) {
    for n in &model.nodes {
        let failfast = n
            .failfast
            .as_deref()
            .map_or(String::new(), |f| format!(", failfast {f:?}"));
        say!("node {} (nodeid {}{failfast})", n.name, n.nodeid);
    }
    for t in &model.comp_types {
        let checks: Vec<&str> = t.health_checks.iter().map(|h| h.key.as_str()).collect();
        if let Some(b) = t.builtin {
            say!(
                "component type {} (built in: {}, level {}, recovery {})",
                t.name,
                b.name(),
                t.instantiation_level,
                t.recovery.name()
            );
            continue;
        }
        let user = match (&t.user, &t.group) {
            (Some(u), Some(g)) => format!(" (as user {u}, group {g})"),
            (Some(u), None) => format!(" (as user {u})"),
            (None, Some(g)) => format!(" (with group {g})"),
            (None, None) => String::new(),
        };
        say!(
            "component type {} ({}, level {}, recovery {}{}): {}",
            t.name,
            if t.sa_aware {
                "SA-aware"
            } else {
                "not SA-aware"
            },
            t.instantiation_level,
            t.recovery.name(),
            if checks.is_empty() {
                String::new()
            } else {
                format!(", health checks {}", checks.join(" "))
            },
            t.instantiate
        );
        if !user.is_empty() {
            say!("  commands run{user}");
        }
    }
    for app in &model.apps {
        say!("application {}", app.name);
        for sg in &app.sgs {
            say!("  SG {} ({})", sg.name, redundancy(&sg.redundancy));
            for su in &sg.sus {
                say!("    SU {} on {} (rank {})", su.name, su.node, su.rank);
                for c in &su.components {
                    say!("      component {} (type {})", c.name, c.comp_type);
                }
            }
        }
        for si in &app.sis {
            say!("  SI {} (SG {}, rank {})", si.name, si.sg, si.rank);
            for csi in &si.csis {
                let target = match &csi.target {
                    CsiTarget::CompType(t) => format!("type {t}"),
                    CsiTarget::Component(c) => format!("component {c}"),
                };
                let attrs: Vec<String> = csi
                    .attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                if attrs.is_empty() {
                    say!("    CSI {} -> {target}", csi.name);
                } else {
                    say!("    CSI {} -> {target} [{}]", csi.name, attrs.join(", "));
                }
            }
        }
    }
}

fn connect(socket: &Path) -> anyhow::Result<Amf> {
    match Amf::initialize(socket) {
        Err(e) if e.ais_error() == Some(AisError::NotSupported) => bail!(
            "the executive at {} runs no AMF: its configuration has no [amf] model",
            socket.display()
        ),
        other => {
            other.with_context(|| format!("connecting to the executive at {}", socket.display()))
        }
    }
}

fn status(socket: &Path, json: bool) -> anyhow::Result<()> {
    let mut amf = connect(socket)?;
    let tree = amf.tree().context("asking for the AMF status")?;
    if json {
        say!("{}", tree_json(&tree));
    } else {
        for l in tree.lines() {
            say!("{l}");
        }
    }
    Ok(())
}

fn ha_json(ha: Option<Ha>) -> &'static str {
    ha.map_or("none", Ha::name)
}

/// The status tree as JSON: the fields of [`Tree`], states by name.
fn tree_json(t: &Tree) -> serde_json::Value {
    use serde_json::json;
    let sgs: Vec<_> = t
        .sgs
        .iter()
        .map(|sg| {
            let sus: Vec<_> = sg
                .sus
                .iter()
                .map(|su| {
                    let comps: Vec<_> = su
                        .comps
                        .iter()
                        .map(|c| {
                            let csis: Vec<_> = c
                                .csis
                                .iter()
                                .map(|a| {
                                    json!({"si": a.si, "csi": a.csi, "ha": ha_json(a.held),
                                           "target": ha_json(a.target)})
                                })
                                .collect();
                            json!({"name": c.name, "presence": c.presence.name(),
                                   "operational": if c.enabled { "enabled" } else { "disabled" },
                                   "readiness": c.readiness.name(), "csis": csis})
                        })
                        .collect();
                    json!({"name": su.name, "node": su.node, "admin": su.admin.name(),
                           "operational": if su.enabled { "enabled" } else { "disabled" },
                           "presence": su.presence.name(), "readiness": su.readiness.name(),
                           "components": comps})
                })
                .collect();
            let sis: Vec<_> = sg
                .sis
                .iter()
                .map(|si| {
                    let asg: Vec<_> = si
                        .assignments
                        .iter()
                        .map(|a| {
                            json!({"su": a.su, "ha": ha_json(a.held), "target": ha_json(a.target)})
                        })
                        .collect();
                    json!({"name": si.name, "locked": si.locked, "fenced": si.fenced,
                           "assignments": asg})
                })
                .collect();
            json!({"name": sg.name, "application": sg.app, "redundancy": sg.redundancy,
                   "sus": sus, "sis": sis})
        })
        .collect();
    json!({"node": t.node, "members": t.members, "quorate": t.quorate, "sgs": sgs})
}

fn admin(socket: &Path, op: AdminOp, entity: &str) -> anyhow::Result<()> {
    let mut amf = connect(socket)?;
    // TRY_AGAIN also comes from a full send window: a few tries before calling it no quorum.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let result = loop {
        match amf.admin(op, entity) {
            Err(e) if e.is_try_again() && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => break other,
        }
    };
    match result {
        Ok(()) => {
            say!("{}: {entity}: done", op.name());
            Ok(())
        }
        Err(e) => match e.ais_error() {
            Some(AisError::NotExist) => bail!(
                "{}: {entity}: NOT_EXIST: no SU or SI is named {entity:?} (see aisctl amf status)",
                op.name()
            ),
            Some(AisError::BadOperation) => bail!(
                "{}: {entity}: BAD_OPERATION: not allowed on {entity:?} in its present state{}",
                op.name(),
                match op {
                    AdminOp::Switchover => " (switchover is for an SI with a standby, 2N or N+M)",
                    AdminOp::Unlock => " (only a locked or shutting-down SU or SI can be unlocked)",
                    AdminOp::LockInstantiation => " (lock the SU first)",
                    AdminOp::UnlockInstantiation => " (only an SU locked for instantiation)",
                    AdminOp::Restart => " (only an unlocked SU can be restarted; not an SI)",
                    _ => "",
                }
            ),
            Some(AisError::TryAgain) => bail!(
                "{}: {entity}: TRY_AGAIN: this node's partition has no quorum (only the quorate side changes assignments); try again when it has",
                op.name()
            ),
            _ => Err(e).with_context(|| format!("{}: {entity}", op.name())),
        },
    }
}
