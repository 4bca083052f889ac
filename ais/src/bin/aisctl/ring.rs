//! `aisctl ring`: the networks of the redundant ring (status, enable, disable).

use clap::Subcommand;
use totem_dpdk::driver::NET_NAMES;
use totem_dpdk::rrp::NetState;

use ais_client::Admin;

use crate::counter;

/// Exit status of `aisctl ring status` when a network is faulty.
pub(crate) const EXIT_FAULTY: i32 = 2;

#[derive(Subcommand, Debug)]
pub(crate) enum RingCommand {
    /// Each network's state and counters. Exits with status 2 when a network is faulty
    /// (for scripts and monitoring; 1 for an error, 0 otherwise, a disabled network included).
    Status {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Put this node's network N back in use (after `disable`).
    Enable {
        /// The network, 0 to 3 (the N of ringN_addr).
        net: u8,
    },
    /// Take this node's network N out of use: nothing is sent on it until `enable` (the
    /// other nodes then see it faulty, one-way from this node). The last network in use is
    /// refused.
    Disable {
        /// The network, 0 to 3.
        net: u8,
    },
}

/// One network as the status counters show it.
pub(crate) struct Net {
    pub(crate) state: Option<NetState>,
    pub(crate) values: Vec<(&'static str, u64)>,
}

/// The networks in a status (empty with one network: the executive reports none).
pub(crate) fn networks(s: &ais_client::Status) -> Vec<Net> {
    let count = counter(s, "rrp_networks") as usize;
    NET_NAMES
        .iter()
        .take(count)
        .map(|names| Net {
            state: NetState::from_gauge(counter(s, names[0])),
            values: names
                .iter()
                .skip(1)
                .map(|n| (short(n), counter(s, n)))
                .collect(),
        })
        .collect()
}

/// `rrp_net0_duplicates` -> `duplicates`.
fn short(name: &'static str) -> &'static str {
    name.get("rrp_net0_".len()..).unwrap_or(name)
}

fn state_text(state: Option<NetState>) -> String {
    state.map_or_else(|| "unknown".to_owned(), |s| s.to_string())
}

/// The networks on one line, for `aisctl status`.
pub(crate) fn summary(s: &ais_client::Status) -> Option<String> {
    let nets = networks(s);
    if nets.is_empty() {
        return None;
    }
    let mode = match counter(s, "rrp_mode") {
        2 => "passive",
        _ => "active",
    };
    let each: Vec<String> = nets
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{i} {}", state_text(n.state)))
        .collect();
    Some(format!("{} ({mode}): {}", nets.len(), each.join(", ")))
}

pub(crate) fn ring_command(path: &std::path::Path, c: &RingCommand) -> anyhow::Result<()> {
    let mut conn = Admin::connect(path)?;
    match c {
        RingCommand::Status { json } => {
            let s = conn.status()?;
            let nets = networks(&s);
            let faulty = nets
                .iter()
                .any(|n| matches!(n.state, Some(NetState::Faulty(_))));
            if *json {
                let v: Vec<serde_json::Value> = nets
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        let mut o = serde_json::Map::new();
                        o.insert("net".into(), i.into());
                        o.insert("state".into(), state_text(n.state).into());
                        for (k, v) in &n.values {
                            o.insert((*k).into(), (*v).into());
                        }
                        serde_json::Value::Object(o)
                    })
                    .collect();
                say!("{}", serde_json::json!({"node": s.node, "networks": v}));
            } else if nets.is_empty() {
                say!(
                    "node {}: one network (rrp_mode = \"none\"): nothing to report",
                    s.node
                );
            } else {
                say!("node {}: {}", s.node, summary(&s).unwrap_or_default());
                let mut header = format!("{:<4} {:<18}", "net", "state");
                for (k, _) in &nets[0].values {
                    header.push_str(&format!(" {k:>15}"));
                }
                say!("{header}");
                for (i, n) in nets.iter().enumerate() {
                    let mut line = format!("{i:<4} {:<18}", state_text(n.state));
                    for (_, v) in &n.values {
                        line.push_str(&format!(" {v:>15}"));
                    }
                    say!("{line}");
                }
            }
            if faulty {
                use std::io::Write as _;
                let _ = std::io::stdout().flush();
                std::process::exit(EXIT_FAULTY);
            }
            Ok(())
        }
        RingCommand::Enable { net } | RingCommand::Disable { net } => {
            let enable = matches!(c, RingCommand::Enable { .. });
            let count = networks(&conn.status()?).len().max(1);
            if usize::from(*net) >= count {
                anyhow::bail!("this node has {count} network(s), 0 to {}", count - 1);
            }
            conn.set_network(*net, enable).map_err(|e| {
                anyhow::anyhow!(
                    "ring {} {net}: {e}{}",
                    if enable { "enable" } else { "disable" },
                    if enable {
                        ""
                    } else {
                        " (the last network in use cannot be disabled)"
                    }
                )
            })?;
            let s = conn.status()?;
            say!(
                "network {net} {}; networks {}",
                if enable { "enabled" } else { "disabled" },
                summary(&s).unwrap_or_else(|| "1".to_owned())
            );
            Ok(())
        }
    }
}
