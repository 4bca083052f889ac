//! `aisctl amf`: the availability management framework. `check` validates a model file
//! without starting anything.

use std::path::{Path, PathBuf};

use ais::config::Config;
use ais::config::amf::{AmfConfig, AmfError};
use ais_core::services::amf::model::{AmfModel, CsiTarget, Redundancy};
use anyhow::bail;
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
}

/// `config`: the executive's configuration file given with `--config`, if any.
pub(crate) fn amf_command(command: &AmfCommand, config: Option<&Path>) -> anyhow::Result<()> {
    match command {
        AmfCommand::Check {
            file: Some(file),
            quiet,
        } => check(file, *quiet),
        AmfCommand::Check { file: None, quiet } => {
            let path = Config::locate(config);
            let config = Config::from_file(&path)?;
            let Some(amf) = config.amf else {
                bail!(
                    "{}: no [amf] table names a model file; give the file: aisctl amf check FILE",
                    path.display()
                );
            };
            check(&amf.model, *quiet)
        }
    }
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
