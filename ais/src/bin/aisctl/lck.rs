//! `aisctl lck`: the operator's view of the cluster's locks (list, take and hold one, purge
//! orphans).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ais_client::lck::{self, Lck, LckEvent, LockStatus, Mode};
use anyhow::{Context, bail};
use clap::Subcommand;

use super::retry;

#[derive(Subcommand, Debug)]
pub(crate) enum LckCommand {
    /// Every lock resource of the cluster: its open handles, granted locks and queued
    /// requests (in the order they will be served).
    ///
    /// A lock is NODE.EPOCH.N (its requester's node, that node's epoch, its number there);
    /// a holder NODE.EPOCH/hHANDLE; an orphan lock has no holder (purge it).
    ///
    /// Examples:
    ///   aisctl lck ls
    ///   aisctl lck ls --json
    #[command(visible_alias = "list", verbatim_doc_comment)]
    Ls {
        /// A JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Take a lock on a resource (created when missing) and hold it until interrupted
    /// (Ctrl-C, SIGTERM) or for --hold seconds, printing waiter callbacks; then unlock.
    ///
    /// With --orphan the lock is taken with SA_LCK_LOCK_ORPHAN and --detach leaves it held
    /// when aisctl exits (an orphan lock, until `aisctl lck purge`).
    ///
    /// Examples:
    ///   aisctl lck lock config --mode ex --hold 10
    ///   aisctl lck lock config --mode pr --timeout-ms 500
    ///   aisctl lck lock maintenance --mode ex --orphan --detach
    #[command(verbatim_doc_comment)]
    Lock {
        /// The resource's name.
        name: String,
        /// `pr` (shared) or `ex` (exclusive).
        #[arg(long, default_value = "ex")]
        mode: String,
        /// Give up after this many milliseconds (default: wait forever).
        #[arg(long, value_name = "MS")]
        timeout_ms: Option<u64>,
        /// Fail at once (NOT_QUEUED) instead of waiting (SA_LCK_LOCK_NO_QUEUE).
        #[arg(long)]
        no_queue: bool,
        /// Take it as an orphan lock (SA_LCK_LOCK_ORPHAN).
        #[arg(long)]
        orphan: bool,
        /// Exit without unlocking (with --orphan: the lock stays).
        #[arg(long, requires = "orphan")]
        detach: bool,
        /// Hold it this many seconds, then unlock (default: until interrupted).
        #[arg(long, value_name = "SECS")]
        hold: Option<u64>,
    },
    /// Release one granted lock of a resource, whoever holds it: a live holder or none (an
    /// orphan). An operator's override, not a B.01.01 call: every node applies it at the same
    /// point of the total order and the next queued request is served. A live holder is NOT
    /// told (LCK has no callback for it) and may go on believing it holds the lock; its own
    /// unlock later fails with NOT_EXIST. Use it for a holder known to be stuck or gone; every
    /// node logs the release. Refused without quorum.
    ///
    /// LOCK is the id `aisctl lck ls` shows (NODE.EPOCH.N).
    ///
    /// Examples:
    ///   aisctl lck ls
    ///   aisctl lck unlock config 2.40.7
    #[command(verbatim_doc_comment)]
    Unlock {
        /// The resource's name.
        name: String,
        /// The lock, as NODE.EPOCH.N.
        lock: String,
    },
    /// Remove the orphan locks of a resource (saLckLockPurge).
    ///
    /// Example:
    ///   aisctl lck purge maintenance
    #[command(verbatim_doc_comment)]
    Purge {
        /// The resource's name.
        name: String,
    },
}

pub(crate) fn lck_command(path: &Path, c: &LckCommand) -> anyhow::Result<()> {
    match c {
        LckCommand::Ls { json } => lck_ls(path, *json),
        LckCommand::Lock {
            name,
            mode,
            timeout_ms,
            no_queue,
            orphan,
            detach,
            hold,
        } => {
            let mode = match mode.to_ascii_lowercase().as_str() {
                "pr" => Mode::Pr,
                "ex" => Mode::Ex,
                other => bail!("mode {other:?}: give pr or ex"),
            };
            let mut flags = 0;
            if *no_queue {
                flags |= lck::LOCK_NO_QUEUE;
            }
            if *orphan {
                flags |= lck::LOCK_ORPHAN;
            }
            let timeout = timeout_ms.map_or(lck::TIME_END, |ms| ms.saturating_mul(1_000_000));
            lck_lock(path, name, mode, flags, timeout, *detach, *hold)
        }
        LckCommand::Unlock { name, lock } => {
            let id = parse_lock_id(lock)?;
            let mut l = Lck::connect(path).context("connecting to the executive")?;
            match retry(|| l.release(name.as_bytes(), id)) {
                Ok(()) => {
                    say!("released lock {id} of {name:?}");
                    Ok(())
                }
                Err(ais_client::Error::Ais(ais_client::AisError::NotExist)) => {
                    bail!("resource {name:?} has no granted lock {id} (see `aisctl lck ls`)")
                }
                Err(ais_client::Error::Ais(ais_client::AisError::BadOperation)) => {
                    bail!("lock {id} of {name:?} is queued, not granted: nothing to release")
                }
                Err(e) if e.is_try_again() => bail!(
                    "the cluster kept answering TRY_AGAIN for 10 s: without quorum the lock \
                     table is frozen (see `aisctl status`)"
                ),
                Err(e) => Err(e).context("releasing"),
            }
        }
        LckCommand::Purge { name } => {
            let mut l = Lck::connect(path).context("connecting to the executive")?;
            let h = retry(|| l.resource_open(name.as_bytes(), 0))
                .with_context(|| format!("opening resource {name:?}"))?;
            retry(|| l.purge(h)).context("purging")?;
            say!("purged the orphan locks of {name:?}");
            Ok(())
        }
    }
}

/// A lock's cluster-wide id as `aisctl lck ls` prints it: NODE.EPOCH.N.
fn parse_lock_id(s: &str) -> anyhow::Result<lck::ClusterLockId> {
    let parts: Vec<&str> = s.split('.').collect();
    let bad =
        || anyhow::anyhow!("lock {s:?}: give it as NODE.EPOCH.N, as `aisctl lck ls` shows it");
    let [node, epoch, n] = parts[..] else {
        return Err(bad());
    };
    Ok(lck::ClusterLockId {
        node: node.parse().map_err(|_| bad())?,
        epoch: epoch.parse().map_err(|_| bad())?,
        n: n.parse().map_err(|_| bad())?,
    })
}

fn text(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

fn lck_ls(path: &Path, json: bool) -> anyhow::Result<()> {
    let mut l = Lck::connect(path).context("connecting to the executive")?;
    let (resources, more) = l.list()?;
    if json {
        let v: Vec<serde_json::Value> = resources
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": text(&r.name),
                    "opens": r.opens,
                    "locks": r.locks.iter().map(|k| serde_json::json!({
                        "id": k.id.to_string(),
                        "mode": k.mode.to_string(),
                        "granted": k.granted,
                        "holder": k.holder.map(|h| h.to_string()),
                        "orphan_flag": k.orphan_flag,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        say!("{}", serde_json::Value::from(v));
        return Ok(());
    }
    if resources.is_empty() {
        say!("no lock resources");
        return Ok(());
    }
    for r in &resources {
        let granted = r.locks.iter().filter(|k| k.granted).count();
        say!(
            "{}: {} open, {} granted, {} queued",
            text(&r.name),
            r.opens,
            granted,
            r.locks.len() - granted
        );
        for k in &r.locks {
            say!(
                "  {:<16} {}  {:<7} {}{}",
                k.id.to_string(),
                k.mode,
                if k.granted { "granted" } else { "queued" },
                k.holder
                    .map_or_else(|| "orphan".to_string(), |h| format!("holder {h}")),
                if k.orphan_flag && k.holder.is_some() {
                    " (LOCK_ORPHAN)"
                } else {
                    ""
                }
            );
        }
    }
    if more > 0 {
        say!("({more} more resources not listed)");
    }
    Ok(())
}

fn lck_lock(
    path: &Path,
    name: &str,
    mode: Mode,
    flags: u32,
    timeout: u64,
    detach: bool,
    hold: Option<u64>,
) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    let mut l = Lck::connect(path).context("connecting to the executive")?;
    let h = retry(|| l.resource_open(name.as_bytes(), lck::RESOURCE_CREATE))
        .with_context(|| format!("opening resource {name:?}"))?;
    let start = Instant::now();
    let (id, status) =
        match retry(|| l.lock(h, mode, flags, u64::from(std::process::id()), timeout)) {
            Ok(x) => x,
            Err(e) if e.ais_error() == Some(ais_client::AisError::Timeout) => {
                bail!("{mode} lock on {name:?} not granted within the timeout")
            }
            Err(e) => return Err(e).context("locking"),
        };
    if status != LockStatus::Granted {
        bail!("{mode} lock on {name:?} not granted: {status:?}");
    }
    say!(
        "{mode} lock {} on {name:?} granted after {} ms",
        id.0,
        start.elapsed().as_millis()
    );
    if detach {
        say!("left held as an orphan lock (aisctl lck purge {name})");
        return Ok(());
    }
    let until = hold.map(|s| Instant::now() + Duration::from_secs(s));
    while !stop.load(Ordering::Relaxed) && until.is_none_or(|u| Instant::now() < u) {
        if let Some(LckEvent::Waiter {
            waiter_signal,
            mode_requested,
            ..
        }) = l.dispatch(Some(Duration::from_millis(100)))?
        {
            say!("waiter: process {waiter_signal} wants {mode_requested}");
        }
    }
    retry(|| l.unlock(id)).context("unlocking")?;
    say!("unlocked after holding {} ms", start.elapsed().as_millis());
    Ok(())
}
