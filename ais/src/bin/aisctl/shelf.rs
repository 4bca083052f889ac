//! `aisctl shelf`: the ATCA shelf events the cluster accepted (each once, whichever nodes
//! watch the shelf; docs/hpi.md).

use std::path::Path;
use std::time::{Duration, Instant};

use ais_client::Connection;
use ais_proto::ipc::Reply;
use ais_proto::shelf::{Callback, Request, ShelfProtocol};
use anyhow::{Context, bail};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub(crate) enum ShelfCommand {
    /// Follow the shelf events the cluster accepts from now on (hot-swap transitions and
    /// critical sensor events), one line each, until interrupted, --count events or
    /// --seconds.
    ///
    /// Examples:
    ///   aisctl shelf events
    ///   aisctl shelf events --count 1 --seconds 30
    #[command(verbatim_doc_comment)]
    Events {
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        seconds: Option<f64>,
    },
}

pub(crate) fn shelf_command(path: &Path, c: &ShelfCommand) -> anyhow::Result<()> {
    let ShelfCommand::Events { count, seconds } = c;
    let mut conn = Connection::<ShelfProtocol>::connect(path)
        .with_context(|| format!("connecting to {}", path.display()))?;
    match conn.call(Request::Follow(true))? {
        Reply::Ok => {}
        other => bail!("the executive answered {other:?} to Follow"),
    }
    let end = seconds.map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut seen = 0u64;
    while count.is_none_or(|n| seen < n) {
        let wait = match end {
            Some(e) => {
                let left = e.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                Some(left)
            }
            None => None,
        };
        let Some(cb) = conn.next_callback(wait)? else {
            break;
        };
        if let Callback::Accepted { from, event } = cb {
            seen += 1;
            println!("{} (from node {from})", ais::shelfwatch::describe(&event));
        }
    }
    Ok(())
}
