//! `aisctl msg`: the operator's view of the message queues (list, send, get).

use std::io::Write as _;

use ais_client as client;
use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Subcommand;
use client::msg::{MessageBody, Msg, PRIORITIES, TIME_END};

use super::retry;

#[derive(Subcommand, Debug)]
pub(crate) enum MsgCommand {
    /// Every message queue of the cluster: name, whether it is open (and at which node),
    /// messages and bytes held per priority, persistence and retention time.
    ///
    /// Examples:
    ///   aisctl msg ls
    ///   aisctl msg ls --json | jq '.[] | select(.open == false) | .name'
    #[command(visible_alias = "list", verbatim_doc_comment)]
    Ls {
        /// A JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Send one message to a queue or a queue group; returns once every node holds it.
    ///
    /// Examples:
    ///   aisctl msg send jobs "hello"
    ///   aisctl msg send workers "job 42" --priority 0
    #[command(verbatim_doc_comment)]
    Send {
        /// The queue's (or group's) name.
        destination: String,
        /// The message's data.
        data: String,
        /// 0 (highest) to 3 (lowest).
        #[arg(long, default_value_t = 3)]
        priority: u8,
        /// The message's type.
        #[arg(long = "type", default_value_t = 0)]
        msg_type: u32,
    },
    /// Open a queue, get messages from it (highest priority first), print each, close it.
    /// The queue must exist and be closed (one opener at a time).
    ///
    /// Examples:
    ///   aisctl msg get jobs                  # one message, waiting up to 1 s
    ///   aisctl msg get jobs --count 10 --timeout-ms 0
    #[command(verbatim_doc_comment)]
    Get {
        /// The queue's name.
        name: String,
        /// How many messages at most.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// How long to wait for each, milliseconds (0: not at all).
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
    },
}

pub(crate) fn msg_command(path: &std::path::Path, c: &MsgCommand) -> anyhow::Result<()> {
    let mut msg = match Msg::connect(path) {
        Err(e) if e.ais_error() == Some(client::AisError::NotSupported) => {
            bail!("the executive at {} runs no MSG service", path.display())
        }
        other => other?,
    };
    match c {
        MsgCommand::Ls { json } => ls(&mut msg, *json),
        MsgCommand::Send {
            destination,
            data,
            priority,
            msg_type,
        } => {
            if usize::from(*priority) >= PRIORITIES {
                bail!("--priority is 0 (highest) to 3 (lowest)");
            }
            let message = MessageBody {
                msg_type: *msg_type,
                version: 1,
                priority: *priority,
                sender_name: Bytes::from_static(b"aisctl"),
                data: Bytes::copy_from_slice(data.as_bytes()),
            };
            retry(|| msg.message_send(destination.as_bytes(), &message))
                .with_context(|| format!("sending to {destination:?}"))?;
            say!("sent {} bytes to {destination}", data.len());
            Ok(())
        }
        MsgCommand::Get {
            name,
            count,
            timeout_ms,
        } => get(&mut msg, name, *count, *timeout_ms),
    }
}

fn get(msg: &mut Msg, name: &str, count: u32, timeout_ms: u64) -> anyhow::Result<()> {
    let h = retry(|| msg.queue_open(name.as_bytes(), 0, None))
        .with_context(|| format!("opening queue {name:?}"))?;
    let timeout = timeout_ms.saturating_mul(1_000_000).min(TIME_END);
    let mut got = 0;
    let mut result = Ok(());
    while got < count {
        match retry(|| msg.message_get(h, timeout)) {
            Ok(m) => {
                got += 1;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(
                    out,
                    "priority {} from node {} ({} bytes): {}",
                    m.message.priority,
                    m.key.node,
                    m.message.data.len(),
                    String::from_utf8_lossy(&m.message.data)
                );
            }
            Err(e) if e.ais_error() == Some(client::AisError::Timeout) => break,
            Err(e) => {
                result = Err(anyhow::Error::from(e).context(format!("getting from {name:?}")));
                break;
            }
        }
    }
    retry(|| msg.queue_close(h)).with_context(|| format!("closing queue {name:?}"))?;
    if got == 0 && result.is_ok() {
        say!("no message in {name}");
    }
    result
}

fn ls(msg: &mut Msg, json: bool) -> anyhow::Result<()> {
    let list = msg.list()?;
    if json {
        let v: Vec<serde_json::Value> = list
            .iter()
            .map(|q| {
                serde_json::json!({
                    "name": String::from_utf8_lossy(&q.name),
                    "open": q.status.open,
                    "opener_node": q.status.open.then_some(q.opener_node),
                    "unlinked": q.unlinked,
                    "persistent": q.status.creation_flags & client::msg::QUEUE_PERSISTENT != 0,
                    "retention_time_ns": q.status.retention_time,
                    "priorities": q.status.usage.iter().map(|u| serde_json::json!({
                        "size": u.size, "used": u.used, "messages": u.messages,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        say!("{}", serde_json::Value::from(v));
        return Ok(());
    }
    if list.is_empty() {
        say!("no queues");
        return Ok(());
    }
    let names: Vec<String> = list
        .iter()
        .map(|q| String::from_utf8_lossy(&q.name).into_owned())
        .collect();
    let wide = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    say!(
        "{:<wide$}  {:<8}  {:>9}  {:>12}  {:<10}  MESSAGES BY PRIORITY 0/1/2/3",
        "NAME",
        "OPEN AT",
        "MESSAGES",
        "BYTES",
        "KIND"
    );
    for (q, name) in list.iter().zip(&names) {
        let s = &q.status;
        let messages: u32 = s.usage.iter().map(|u| u.messages).sum();
        let bytes: u64 = s.usage.iter().map(|u| u.used).sum();
        let kind = if s.creation_flags & client::msg::QUEUE_PERSISTENT != 0 {
            "persistent".to_string()
        } else {
            format!("{} ms", s.retention_time / 1_000_000)
        };
        let open = if s.open {
            format!("node {}", q.opener_node)
        } else if q.unlinked {
            "unlinked".into()
        } else {
            "closed".into()
        };
        say!(
            "{name:<wide$}  {open:<8}  {messages:>9}  {bytes:>12}  {kind:<10}  {}",
            s.usage
                .iter()
                .map(|u| u.messages.to_string())
                .collect::<Vec<_>>()
                .join("/")
        );
    }
    Ok(())
}
