//! `bench`: the openais-rs benchmark harness.

use std::process::ExitCode;

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
    /// CPG throughput and latency through N executives driven by K sender processes, this
    /// stack vs the raw link vs corosync, with JSON/CSV output and plots.
    Throughput(bench::throughput::Args),
    /// The raw link alone (UDP datagrams or DPDK frames between two hosts, no Totem): the
    /// physical limit the throughput figures are compared with.
    Raw(bench::raw::Args),
    /// Totem over DPDK like for like: two node processes, each busy-polling on its own pinned
    /// core with its load generated there, against the raw frame rate of the same device and
    /// pinning in the same run (issue 22).
    DpdkRing(bench::dpdk_ring::Args),
    /// Replicated checkpoint writes beside CPG on the same cluster in the same run:
    /// pipelined writes/s and MB/s against CPG msgs/s and MB/s at each size, and synchronous
    /// write latency against CPG self-delivery latency at the same load, with the CKPT
    /// issue's targets.
    Ckpt(bench::ckpt::Args),
    /// Event publish to every subscriber beside CPG on the same cluster in the same run:
    /// events/s delivered and latency with filters that match, publishes/s with filters
    /// that do not, against CPG msgs/s, with the EVT issue's target.
    Evt(bench::evt::Args),
    /// Lock round trips beside CPG on the same cluster in the same run: uncontended
    /// lock+unlock pairs/s and latency, contended handover rate, and CPG self-delivery
    /// latency at the same load, with the LCK issue's target.
    Lck(bench::lck::Args),
    /// Message queues beside CPG on the same cluster in the same run: messages/s from
    /// senders to receivers on other nodes against CPG msgs/s with as many connections, and
    /// send-receive round trips/s and latency against CPG ping-pong, every message checked.
    Msg(bench::msg::Args),
    /// Failover time: SIGKILL one node under load at a random time, measure at each survivor
    /// the time until the new membership is delivered; repeated.
    Failover(bench::failover::Args),
    /// ATCA shelf events: a blade's hot-swap transition in the simulated shelf (SEL entry
    /// written) to the event accepted at every executive watching it, beside openhpid
    /// (ipmidirect) in the same run (issue 19).
    Hpi(bench::hpi::Args),
    /// AMF's node side on this host: time to start a component, to notice its process die
    /// (passive monitoring), and to clean it up (SIGKILL to its process group).
    AmfNode(bench::amf::Args),
    /// AMF failover of a stateful service under load: kill -9 of the active component or of
    /// the active node (executive and components), repeated; time to the standby confirmed
    /// active and to the first request it serves, and lost acknowledged updates (issue 18).
    AmfFailover(bench::amf_failover::Args),
    /// Two redundant shelf managers (shelfd under the AMF, state in CKPT): kill -9 of the
    /// active shelfd or its node; time until the standby answers ipmitool with the shelf
    /// intact; RMCP+ sessions/s and latency against shelfd and ipmi_sim (issue 20).
    ShelfFailover(bench::shelf_failover::Args),
    /// The shelf manager daemon (started by `shelf-failover` as the AMF component).
    #[command(hide = true, name = "shelfd")]
    Shelfd(shelf_manager::shelfd::Args),
    /// The example stateful service, `examples/amf-counter` (started by `amf-failover` as the
    /// AMF component, so the bench needs only its own binary).
    #[command(hide = true, name = "amf-counter")]
    AmfCounter(amf_counter::Args),
    /// Runs an executive (what `throughput` and `failover` start on each node; the same as the
    /// aisexec program).
    #[command(hide = true, name = "aisexec")]
    Exec(ais::aisexec::Cli),
    /// A CPG load generator connected to one executive (started by `throughput`).
    #[command(hide = true, name = "cpg-load")]
    CpgLoad(bench::cpgload::Args),
    /// A checkpoint writer connected to one executive (started by `ckpt`).
    #[command(hide = true, name = "ckpt-load")]
    CkptLoad(bench::ckptload::Args),
    /// One end of the raw link (started by `raw`).
    #[command(hide = true, name = "raw-peer")]
    RawPeer(bench::raw::PeerArgs),
    /// Speed of frame protection alone (AES-256-GCM seal at one node, open at another) on
    /// one core, MB/s of frame bytes.
    Aead {
        /// Frame sizes in bytes, comma-separated.
        #[arg(long, default_value = "1400,8972,65000", value_delimiter = ',')]
        size: Vec<usize>,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Totem drivers over kernel UDP on loopback (N threads in this process, the real socket
    /// path), every node submitting as fast as flow control allows. Reports messages
    /// delivered per second at node 1, crypto off and/or on.
    Udp {
        /// Ring size.
        #[arg(long, default_value_t = 3)]
        nodes: u32,
        /// Message sizes in bytes, comma-separated.
        #[arg(long, default_value = "1024", value_delimiter = ',')]
        size: Vec<usize>,
        /// Link MTU: 1500 or 9000.
        #[arg(long, default_value_t = 1500)]
        mtu: usize,
        /// Seconds per measurement (after a 0.5 s warm-up).
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Frame crypto: on (AES-256-GCM), off (CRC-32 only), or both.
        #[arg(long, default_value = "both", value_parser = ["on", "off", "both"])]
        crypto: String,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// CPU cost of the Totem ordering core alone: N nodes in one thread on a lossless
    /// in-memory network, send queues kept full. Reports messages ordered per second on one
    /// core. With --crypto on every frame is sealed and opened with AES-256-GCM.
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
        /// Frame crypto: on (AES-256-GCM, as secauth) or off (CRC-32 only), or both.
        #[arg(long, default_value = "off", value_parser = ["on", "off", "both"])]
        crypto: String,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// Networks of a redundant ring, comma-separated (1: no redundant-ring layer; 2 to 4:
        /// every node runs `totem_dpdk::rrp`), each measured in the same run.
        #[arg(long, default_value = "1", value_delimiter = ',')]
        networks: Vec<usize>,
        /// Redundant-ring mode with more than one network.
        #[arg(long, default_value = "active", value_parser = ["active", "passive"])]
        rrp: String,
    },
}

fn frame_size(mtu: usize) -> anyhow::Result<usize> {
    match mtu {
        1500 => Ok(1472),
        9000 => Ok(8972),
        other => anyhow::bail!("--mtu {other}: use 1500 or 9000"),
    }
}

fn crypto_modes(crypto: &str) -> &'static [&'static str] {
    match crypto {
        "both" => &["off", "on"],
        "on" => &["on"],
        _ => &["off"],
    }
}

fn protection(mode: &str) -> totem_dpdk::crypto::Protection {
    if mode == "on" {
        totem_dpdk::crypto::Protection::Encrypt
    } else {
        totem_dpdk::crypto::Protection::Integrity
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Exec(exec_cli) = cli.command {
        return ais::aisexec::run_cli(exec_cli);
    }
    if let Command::Shelfd(args) = cli.command {
        return shelf_manager::shelfd::main_with(args);
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Exec(_) | Command::Shelfd(_) => unreachable!("handled in main"),
        Command::ShelfFailover(args) => bench::shelf_failover::run(&args),
        Command::Throughput(args) => bench::throughput::run(&args),
        Command::Raw(args) => bench::raw::run(&args),
        Command::DpdkRing(args) => bench::dpdk_ring::run(&args),
        Command::Ckpt(args) => bench::ckpt::run(&args),
        Command::Evt(args) => bench::evt::run(&args),
        Command::Lck(args) => bench::lck::run(&args),
        Command::Msg(args) => bench::msg::run(&args),
        Command::CkptLoad(args) => bench::ckptload::run(&args),
        Command::Failover(args) => bench::failover::run(&args),
        Command::AmfNode(args) => bench::amf::run(&args),
        Command::Hpi(args) => bench::hpi::run(&args),
        Command::AmfFailover(args) => bench::amf_failover::run(&args),
        Command::AmfCounter(args) => {
            amf_counter::init_logging();
            amf_counter::run(args)
        }
        Command::CpgLoad(args) => bench::cpgload::run(&args),
        Command::RawPeer(args) => bench::raw::run_peer(&args),
        Command::Aead { size, json } => {
            for s in size {
                let r = bench::aead::run(s, 200_000_000);
                if json {
                    let v = serde_json::json!({
                        "bench": "aead", "cipher": "aes-256-gcm", "frame": s,
                        "seal_mb_per_sec": r.seal_mb_per_sec.round(),
                        "open_mb_per_sec": r.open_mb_per_sec.round(),
                    });
                    println!("{v}");
                } else {
                    println!(
                        "aead: {s}-byte frames: seal {:.0} MB/s, open {:.0} MB/s (one core)",
                        r.seal_mb_per_sec, r.open_mb_per_sec
                    );
                }
            }
            Ok(())
        }
        Command::Udp {
            nodes,
            size,
            mtu,
            seconds,
            crypto,
            json,
        } => {
            anyhow::ensure!((2..=16).contains(&nodes), "--nodes must be within 2..16");
            let frame = frame_size(mtu)?;
            for s in size {
                for &mode in crypto_modes(&crypto) {
                    let r = bench::udp::run(&bench::udp::UdpBench {
                        nodes,
                        size: s,
                        frame,
                        seconds,
                        protection: protection(mode),
                    })?;
                    if json {
                        let v = serde_json::json!({
                            "bench": "udp", "system": "openais-rs", "transport": "udp-loopback",
                            "nodes": nodes, "size": s, "mtu": mtu, "crypto": mode,
                            "senders": nodes, "msgs_per_sec": r.msgs_per_sec.round(),
                            "mb_per_sec": (r.mb_per_sec * 10.0).round() / 10.0,
                            "backpressure": r.backpressure, "seconds": seconds,
                        });
                        println!("{v}");
                    } else {
                        println!(
                            "udp: {nodes} nodes on loopback, {s} B messages, MTU {mtu}, crypto {mode}: {:.0} msgs/s delivered at node 1 ({:.1} MB/s)",
                            r.msgs_per_sec, r.mb_per_sec
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Core {
            nodes,
            size,
            mtu,
            seconds,
            safe,
            crypto,
            json,
            networks,
            rrp,
        } => {
            let rrp_mode = if rrp == "passive" {
                totem_dpdk::rrp::RrpMode::Passive
            } else {
                totem_dpdk::rrp::RrpMode::Active
            };
            anyhow::ensure!(
                networks.iter().all(|n| (1..=4).contains(n)),
                "--networks must be within 1..4"
            );
            let modes: &[&str] = match crypto.as_str() {
                "both" => &["off", "on"],
                "on" => &["on"],
                _ => &["off"],
            };
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
            let mut runs = Vec::new();
            for s in &size {
                for m in modes {
                    for n in &networks {
                        runs.push((*s, *m, *n));
                    }
                }
            }
            for (size, crypto, nets) in runs {
                let protection = if crypto == "on" {
                    totem_dpdk::crypto::Protection::Encrypt
                } else {
                    totem_dpdk::crypto::Protection::Integrity
                };
                let p = bench::ordering::CoreBench {
                    nodes,
                    size,
                    frame,
                    seconds,
                    kind,
                    protection,
                    networks: nets,
                    rrp_mode,
                };
                let r = bench::ordering::run(&p);
                let rrp = if nets > 1 { rrp.as_str() } else { "none" };
                if json {
                    let v = serde_json::json!({
                        "bench": "core", "system": "openais-rs", "transport": "in-memory",
                        "nodes": nodes, "size": size, "mtu": mtu, "kind": kind.as_str(),
                        "crypto": crypto, "msgs_per_sec": r.ordered_per_sec.round(),
                        "deliveries_per_sec": r.deliveries_per_sec.round(),
                        "mb_per_sec": (r.mb_per_sec * 10.0).round() / 10.0, "cores": 1,
                        "seconds": r.elapsed, "networks": nets, "rrp": rrp,
                    });
                    println!("{v}");
                } else {
                    println!(
                        "core: {nodes} nodes, {size} B {} messages, MTU {mtu}, crypto {crypto}, \
                         {nets} network(s) (rrp {rrp}): \
                         {:.0} msgs/s ordered ({:.1} MB/s) with all nodes on one core; {:.0} \
                         deliveries/s summed over the nodes (one node's work per message per \
                         core-second)",
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
