//! `aisctl evt`: the operator's view of the event service (list channels, publish, subscribe).

use std::time::{Duration, Instant};

use ais_client::evt::{
    Event, Evt, EvtEvent, Filter, FilterType, OPEN_CREATE, OPEN_PUBLISHER, OPEN_SUBSCRIBER,
    TIME_END,
};
use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Subcommand;

use super::retry;

#[derive(Subcommand, Debug)]
pub(crate) enum EvtCommand {
    /// The channels this node knows: name, opens (all nodes), retained events, unlinked.
    ///
    /// Examples:
    ///   aisctl evt ls
    ///   aisctl evt ls --json
    #[command(visible_alias = "list", verbatim_doc_comment)]
    Ls {
        /// A JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Publish one event (or --count of them) on a channel, creating the channel if needed;
    /// prints each event's id.
    ///
    /// Examples:
    ///   aisctl evt publish alarms --pattern disk/sda --data "full"
    ///   aisctl evt publish alarms --pattern a --pattern b --priority 0 --retention-ms 60000
    ///   aisctl evt publish load --count 1000 --data x
    #[command(verbatim_doc_comment)]
    Publish {
        /// The channel's name.
        channel: String,
        /// A pattern (repeat for several; the filters of subscriptions see them in order).
        #[arg(long = "pattern", value_name = "TEXT")]
        patterns: Vec<String>,
        /// 0 (highest) to 3 (lowest).
        #[arg(long, default_value_t = 3)]
        priority: u8,
        /// How long the event stays on the channel for later subscribers, ms (0: not
        /// retained; "forever" with --retain-forever).
        #[arg(long, default_value_t = 0, value_name = "MS")]
        retention_ms: u64,
        /// Keep the event until it is cleared.
        #[arg(long, conflicts_with = "retention_ms")]
        retain_forever: bool,
        /// The event's data.
        #[arg(long, default_value = "")]
        data: String,
        /// The publisher name.
        #[arg(long, default_value = "aisctl")]
        publisher: String,
        /// How many events.
        #[arg(long, default_value_t = 1)]
        count: u64,
    },
    /// Subscribe to a channel and print every event delivered (and every lost-event
    /// notification) until interrupted or --count events.
    ///
    /// A filter is TYPE:TEXT with TYPE prefix, suffix, exact or all; the first filter applies
    /// to an event's first pattern, the second to its second, and so on.
    ///
    /// Examples:
    ///   aisctl evt subscribe alarms
    ///   aisctl evt subscribe alarms --filter prefix:disk/ --count 10
    #[command(verbatim_doc_comment)]
    Subscribe {
        /// The channel's name.
        channel: String,
        /// A filter TYPE:TEXT (repeat for several).
        #[arg(long = "filter", value_name = "TYPE:TEXT")]
        filters: Vec<String>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this long without an event, seconds.
        #[arg(long, value_name = "SECONDS")]
        idle: Option<u64>,
        /// Create the channel if it does not exist.
        #[arg(long)]
        create: bool,
    },
}

fn filter(text: &str) -> anyhow::Result<Filter> {
    let (kind, pattern) = text.split_once(':').unwrap_or((text, ""));
    let kind = match kind {
        "prefix" => FilterType::Prefix,
        "suffix" => FilterType::Suffix,
        "exact" => FilterType::Exact,
        "all" => FilterType::PassAll,
        other => bail!("filter type {other:?}: use prefix, suffix, exact or all"),
    };
    Ok(Filter {
        kind: kind.code(),
        pattern: Bytes::copy_from_slice(pattern.as_bytes()),
    })
}

fn text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => s.to_owned(),
        _ => format!(
            "0x{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
    }
}

fn connect(path: &std::path::Path) -> anyhow::Result<Evt> {
    Evt::connect(path).with_context(|| format!("connecting to aisexec at {}", path.display()))
}

pub(crate) fn evt_command(path: &std::path::Path, c: &EvtCommand) -> anyhow::Result<()> {
    match c {
        EvtCommand::Ls { json } => {
            let mut evt = connect(path)?;
            let channels = retry(|| evt.channels()).context("listing channels")?;
            if *json {
                let items: Vec<String> = channels
                    .iter()
                    .map(|c| {
                        format!(
                            "{{\"name\":{:?},\"opens\":{},\"retained\":{},\"unlinked\":{}}}",
                            text(&c.name),
                            c.opens,
                            c.retained,
                            c.unlinked
                        )
                    })
                    .collect();
                say!("[{}]", items.join(","));
            } else {
                say!(
                    "{:<32} {:>6} {:>9} UNLINKED",
                    "CHANNEL",
                    "OPENS",
                    "RETAINED"
                );
                for c in &channels {
                    say!(
                        "{:<32} {:>6} {:>9} {}",
                        text(&c.name),
                        c.opens,
                        c.retained,
                        if c.unlinked { "yes" } else { "no" }
                    );
                }
            }
            Ok(())
        }
        EvtCommand::Publish {
            channel,
            patterns,
            priority,
            retention_ms,
            retain_forever,
            data,
            publisher,
            count,
        } => {
            let mut evt = connect(path)?;
            let h = retry(|| evt.open(channel.as_bytes(), OPEN_CREATE | OPEN_PUBLISHER))
                .with_context(|| format!("opening channel {channel:?}"))?;
            let mut event = Event::new();
            let pats: Vec<&[u8]> = patterns.iter().map(|p| p.as_bytes()).collect();
            let retention = if *retain_forever {
                TIME_END
            } else {
                retention_ms.saturating_mul(1_000_000)
            };
            event
                .set_attributes(&pats, *priority, retention, publisher.as_bytes())
                .context("event attributes")?;
            event.set_data(data.as_bytes());
            for _ in 0..*count {
                let id = retry(|| evt.publish(h, &event)).context("publishing")?;
                say!("{id:#x}");
            }
            Ok(())
        }
        EvtCommand::Subscribe {
            channel,
            filters,
            count,
            idle,
            create,
        } => {
            let filters = filters
                .iter()
                .map(|f| filter(f))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut evt = connect(path)?;
            let flags = OPEN_SUBSCRIBER | if *create { OPEN_CREATE } else { 0 };
            let h = retry(|| evt.open(channel.as_bytes(), flags))
                .with_context(|| format!("opening channel {channel:?}"))?;
            retry(|| evt.subscribe(h, 1, filters.clone())).context("subscribing")?;
            let mut seen = 0u64;
            let wait = idle.map(Duration::from_secs);
            let mut last = Instant::now();
            while count.is_none_or(|c| seen < c) {
                match evt.dispatch(Some(Duration::from_millis(200)))? {
                    Some(EvtEvent::Deliver(d)) => {
                        last = Instant::now();
                        if d.is_lost() {
                            say!("LOST events (the executive could not queue them)");
                            continue;
                        }
                        seen += 1;
                        let pats: Vec<String> = d.header.patterns.iter().map(|p| text(p)).collect();
                        say!(
                            "{:#x} priority {} from {} patterns [{}] {} bytes: {}",
                            d.header.id,
                            d.header.priority,
                            text(&d.header.publisher),
                            pats.join(", "),
                            d.data.len(),
                            text(&d.data)
                        );
                    }
                    Some(EvtEvent::ChannelOpen { .. }) => {}
                    None => {
                        if wait.is_some_and(|w| last.elapsed() >= w) {
                            break;
                        }
                    }
                }
            }
            Ok(())
        }
    }
}
