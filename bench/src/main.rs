//! `bench`: the openais-rs benchmark harness.

use clap::{Parser, Subcommand};
use totem_dpdk::DeliveryKind;

/// Measures openais-rs. Every figure quoted in docs/performance.md names the command that
/// produced it.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// CPU cost of the Totem ordering core alone: N nodes in one thread on a lossless
    /// in-memory network, send queues kept full, no crypto. Reports messages ordered per
    /// second on one core.
    Core {
        /// Ring size.
        #[arg(long, default_value_t = 3)]
        nodes: u32,
        /// Message sizes in bytes, comma-separated.
        #[arg(long, default_value = "1024", value_delimiter = ',')]
        size: Vec<usize>,
        /// Link MTU: 1500 (1472-byte Totem frames) or 9000 (8972).
        #[arg(long, default_value_t = 1500)]
        mtu: usize,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Use safe delivery instead of agreed.
        #[arg(long)]
        safe: bool,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Core {
            nodes,
            size,
            mtu,
            seconds,
            safe,
            json,
        } => {
            anyhow::ensure!((2..=16).contains(&nodes), "--nodes must be within 2..16");
            let frame = match mtu {
                1500 => 1472,
                9000 => 8972,
                other => anyhow::bail!("--mtu {other}: use 1500 or 9000"),
            };
            let kind = if safe {
                DeliveryKind::Safe
            } else {
                DeliveryKind::Agreed
            };
            for size in size {
                let p = bench::ordering::CoreBench {
                    nodes,
                    size,
                    frame,
                    seconds,
                    kind,
                };
                let r = bench::ordering::run(&p);
                if json {
                    let v = serde_json::json!({
                        "bench": "core", "system": "openais-rs", "transport": "in-memory",
                        "nodes": nodes, "size": size, "mtu": mtu, "kind": kind.as_str(),
                        "crypto": "off", "msgs_per_sec": r.ordered_per_sec.round(),
                        "deliveries_per_sec": r.deliveries_per_sec.round(),
                        "mb_per_sec": (r.mb_per_sec * 10.0).round() / 10.0, "cores": 1,
                        "seconds": r.elapsed,
                    });
                    println!("{v}");
                } else {
                    println!(
                        "core: {nodes} nodes, {size} B {} messages, MTU {mtu}: {:.0} msgs/s \
                         ordered ({:.1} MB/s) with all nodes on one core; {:.0} deliveries/s \
                         summed over the nodes (one node's work per message per core-second)",
                        kind.as_str(),
                        r.ordered_per_sec,
                        r.mb_per_sec,
                        r.deliveries_per_sec
                    );
                }
            }
            Ok(())
        }
    }
}
