//! Test-only fault injection for `aisexec` (`--test-fault-file FILE`): each network's transport
//! is wrapped in [`dataplane::fault::FaultInjector`], and a thread applies the faults FILE lists
//! whenever its contents change.
//!
//! The file is the *current* set of faults, one per line, `NETWORK FAULT` with the fault in
//! [`Fault`]'s text form (`0 lossy 0.5`, `1 oneway 1 2`, `0 down`; `#` starts a comment). When
//! the contents change, every network first gets [`Fault::Up`], then the faults listed for it:
//! an empty or missing file means no fault. Every node of a test reads the same file, and each
//! node's wrappers apply the part of a fault that concerns that node (the wrapper's rules), so
//! one file describes what the whole cluster sees.
//!
//! This is for tests of lossy and one-way networks with real executives (the kernel here has no
//! `netem`); it is not a configuration key and is hidden from `--help`. The wrapper copies every
//! received frame.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dataplane::fault::{Fault, FaultControl, ParseFaultError};
use tracing::{info, warn};

/// How often the file is read again.
pub const POLL: Duration = Duration::from_millis(10);

/// A line of the fault file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FaultFileError {
    /// The line is not `NETWORK FAULT`.
    #[error("line {line}: expected NETWORK FAULT (e.g. \"0 lossy 0.5\"), found {text:?}")]
    Shape {
        /// 1-based line number.
        line: usize,
        /// The line (at most 80 characters).
        text: String,
    },
    /// The network number is not one of this node's networks.
    #[error("line {line}: network {net} does not exist (this node has {networks})")]
    Network {
        /// 1-based line number.
        line: usize,
        /// The number given.
        net: String,
        /// This node's number of networks.
        networks: usize,
    },
    /// The fault is not one the wrapper knows.
    #[error("line {line}: {source}")]
    Fault {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        source: ParseFaultError,
    },
}

/// Reads a fault file's contents for a node with `networks` networks: (network, fault) in the
/// order listed.
///
/// # Errors
/// The first line that is not `NETWORK FAULT` with an existing network and a known fault.
pub fn parse(text: &str, networks: usize) -> Result<Vec<(usize, Fault)>, FaultFileError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let body = raw.split('#').next().unwrap_or("").trim();
        if body.is_empty() {
            continue;
        }
        let Some((net, fault)) = body.split_once(char::is_whitespace) else {
            return Err(FaultFileError::Shape {
                line,
                text: body.chars().take(80).collect(),
            });
        };
        let k = net
            .parse::<usize>()
            .ok()
            .filter(|&k| k < networks)
            .ok_or_else(|| FaultFileError::Network {
                line,
                net: net.chars().take(20).collect(),
                networks,
            })?;
        let fault = fault
            .trim()
            .parse::<Fault>()
            .map_err(|source| FaultFileError::Fault { line, source })?;
        out.push((k, fault));
    }
    Ok(out)
}

/// Applies `faults` (from [`parse`]) to the wrappers: `Up` on every network, then each fault.
pub fn apply(controls: &[FaultControl], faults: &[(usize, Fault)]) {
    for c in controls {
        c.apply(Fault::Up);
    }
    for &(k, f) in faults {
        controls[k].apply(f);
    }
}

/// Starts the thread that reads `path` every [`POLL`] and applies its faults when it changes
/// (`controls[k]` is network `k`'s wrapper). A file that cannot be read is no fault; one that
/// does not parse is logged and ignored until it changes again.
///
/// # Errors
/// The thread could not be started.
pub fn watch(path: PathBuf, controls: Vec<FaultControl>) -> std::io::Result<()> {
    warn!(
        "test fault injection: every network's transport is wrapped, faults from {}",
        path.display()
    );
    std::thread::Builder::new()
        .name("fault-file".into())
        .spawn(move || {
            let mut last = String::new();
            loop {
                let now = read(&path);
                if now != last {
                    match parse(&now, controls.len()) {
                        Ok(faults) => {
                            info!(
                                "test fault injection: {}",
                                if faults.is_empty() {
                                    "no fault".to_owned()
                                } else {
                                    faults
                                        .iter()
                                        .map(|(k, f)| format!("network {k} {f}"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                }
                            );
                            apply(&controls, &faults);
                        }
                        Err(e) => warn!("test fault file {}: {e}", path.display()),
                    }
                    last = now;
                }
                std::thread::sleep(POLL);
            }
        })
        .map(|_| ())
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::NodeId;

    #[test]
    fn lines_name_a_network_and_a_fault() {
        let text = "# lossy network 0, node 1's sends on network 1 lost\n\
                    0 lossy 0.5\n\n1 oneway 1 2   # towards node 2\n1 oneway 1 3\n";
        assert_eq!(
            parse(text, 2).unwrap(),
            vec![
                (0, Fault::Lossy(0.5)),
                (
                    1,
                    Fault::OneWay {
                        from: NodeId(1),
                        to: NodeId(2)
                    }
                ),
                (
                    1,
                    Fault::OneWay {
                        from: NodeId(1),
                        to: NodeId(3)
                    }
                ),
            ]
        );
        assert!(parse("", 2).unwrap().is_empty());
        assert!(parse("# nothing\n", 1).unwrap().is_empty());
    }

    #[test]
    fn mistakes_name_their_line() {
        let e = parse("0 down\nlossy\n", 2).unwrap_err().to_string();
        assert!(e.starts_with("line 2: expected NETWORK FAULT"), "{e}");
        let e = parse("2 down\n", 2).unwrap_err().to_string();
        assert!(
            e.contains("line 1: network 2 does not exist (this node has 2)"),
            "{e}"
        );
        let e = parse("0 down\n0 lossy 2\n", 2).unwrap_err().to_string();
        assert!(e.starts_with("line 2: bad fault"), "{e}");
        let e = parse("x down\n", 2).unwrap_err().to_string();
        assert!(e.contains("network x does not exist"), "{e}");
    }
}
