//! hpictl: look at an ATCA shelf through the HPI model, over RMCP+ (in the spirit of
//! OpenHPI's `hpi_shell` and `ipmitool picmg`).
//!
//! ```text
//! hpictl --host 10.0.0.2 --credentials /etc/openais/shelf.cred list
//! hpictl ... sensors            # readings and thresholds
//! hpictl ... inventory          # FRU fields
//! hpictl ... watch --seconds 60 # follow events
//! hpictl ... request 3 extract  # saHpiHotSwapActionRequest on resource 3
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use hpi::ipmi::IpmiShelf;
use hpi::ipmi::credentials::Credentials;
use hpi::ipmi::session::{Session, SessionConfig};
use hpi::{Domain, DomainConfig, EventKind, HsAction, Rdr, ResourceId, SensorEventState, Timeout};

#[derive(Parser)]
#[command(about = "HPI view of an ATCA shelf over RMCP+ (cipher suite 3)")]
struct Cli {
    /// Shelf manager address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// RMCP+ UDP port.
    #[arg(long, default_value_t = 623)]
    port: u16,
    /// File with `user = ...` and `password = ...`, mode 600.
    #[arg(long)]
    credentials: PathBuf,
    /// RMCP+ cipher suite.
    #[arg(long, default_value_t = 3)]
    cipher_suite: u8,
    /// Seconds to wait for one answer.
    #[arg(long, default_value_t = 1.0)]
    timeout: f64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Resources with their entity paths and hot-swap states.
    List,
    /// Sensors of every resource: reading, thresholds.
    Sensors,
    /// FRU inventory fields.
    Inventory,
    /// Follow events (hot-swap, sensor, domain) until interrupted or for --seconds.
    Watch {
        /// Stop after this many seconds (0: run until killed).
        #[arg(long, default_value_t = 0)]
        seconds: u64,
        /// Activate FRUs that request it (auto-insert immediate); default: leave them.
        #[arg(long)]
        auto_insert: bool,
    },
    /// saHpiHotSwapActionRequest: ask a FRU to go active (insert) or inactive (extract).
    Request {
        /// Resource id (from `list`).
        resource: u32,
        /// What to request.
        action: Action,
    },
    /// Open a session and close it: checks address, credentials and cipher suite.
    Ping,
}

#[derive(Clone, Copy, ValueEnum)]
enum Action {
    Insert,
    Extract,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hpictl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let creds = Credentials::from_file(&cli.credentials).map_err(|e| e.to_string())?;
    let mut cfg = SessionConfig::new((cli.host.as_str(), cli.port)).map_err(|e| e.to_string())?;
    cfg.cipher_suite = cli.cipher_suite;
    cfg.timeout = Duration::from_secs_f64(cli.timeout);
    if let Cmd::Ping = cli.cmd {
        Session::connect(&cfg, &creds).map_err(|e| e.to_string())?;
        println!("RMCP+ session to {} as {:?}: ok", cfg.addr, creds.user());
        return Ok(());
    }
    let mut shelf = IpmiShelf::new(cfg, creds);
    // the typed connect error first, so the operator sees exactly what failed
    shelf.open().map_err(|e| e.to_string())?;
    let auto_insert = matches!(
        cli.cmd,
        Cmd::Watch {
            auto_insert: true,
            ..
        }
    );
    let mut d = Domain::new(
        shelf,
        DomainConfig {
            auto_insert_timeout: if auto_insert {
                Timeout::Immediate
            } else {
                Timeout::Block
            },
            auto_extract_timeout: Timeout::Block,
            ..DomainConfig::default()
        },
    );
    let now = Instant::now();
    d.start(now).map_err(|e| e.to_string())?;
    match cli.cmd {
        Cmd::List => {
            println!(
                "{:>3}  {:<14} {:<20} {:<4} entity",
                "id", "tag", "hot-swap", "M"
            );
            for e in d.rpt() {
                let hs = e.hs_state.map_or("-".to_string(), |s| s.to_string());
                let m = e.m_state.map_or("-".to_string(), |m| m.to_string());
                let failed = if e.failed { " FAILED" } else { "" };
                println!(
                    "{:>3}  {:<14} {:<20} {:<4} {}{failed}",
                    e.id, e.tag, hs, m, e.entity
                );
            }
        }
        Cmd::Sensors => {
            let rids: Vec<ResourceId> = d.rpt().map(|e| e.id).collect();
            for rid in rids {
                let tag = d.rpt_entry(rid).map(|e| e.tag.clone()).unwrap_or_default();
                let sensors: Vec<(u8, String, bool)> = d
                    .rdrs(rid)
                    .unwrap_or(&[])
                    .iter()
                    .filter_map(|r| match r {
                        Rdr::Sensor(s) => Some((
                            s.num,
                            s.name.clone(),
                            s.category == hpi::EventCategory::Threshold,
                        )),
                        _ => None,
                    })
                    .collect();
                for (num, name, threshold) in sensors {
                    let v = d.sensor_reading(now, rid, num);
                    let reading = match v {
                        Ok(v) => match v.value {
                            Some(x) => format!("{x}"),
                            None => format!("states 0x{:04x}", v.event_state),
                        },
                        Err(e) => format!("error: {e}"),
                    };
                    let th = if threshold {
                        match d.sensor_thresholds(now, rid, num) {
                            Ok(t) => format!(
                                "  thresholds up minor/major/critical {:?}/{:?}/{:?}",
                                t.up_minor, t.up_major, t.up_critical
                            ),
                            Err(e) => format!("  thresholds: {e}"),
                        }
                    } else {
                        String::new()
                    };
                    println!("{rid:>3} {tag:<14} sensor {num:>3} {name:<12} {reading}{th}");
                }
            }
        }
        Cmd::Inventory => {
            let rids: Vec<ResourceId> = d.rpt().map(|e| e.id).collect();
            for rid in rids {
                let tag = d.rpt_entry(rid).map(|e| e.tag.clone()).unwrap_or_default();
                if let Ok(fields) = d.inventory(rid) {
                    for f in fields {
                        println!("{rid:>3} {tag:<14} {:?} {:<16} {}", f.area, f.name, f.value);
                    }
                }
            }
        }
        Cmd::Request { resource, action } => {
            let a = match action {
                Action::Insert => HsAction::Insertion,
                Action::Extract => HsAction::Extraction,
            };
            d.action_request(now, ResourceId(resource), a)
                .map_err(|e| e.to_string())?;
            println!("requested {a:?} of resource {resource}");
        }
        Cmd::Watch { seconds, .. } => {
            let sub = d.subscribe();
            let end = (seconds > 0).then(|| Instant::now() + Duration::from_secs(seconds));
            loop {
                let now = Instant::now();
                if end.is_some_and(|e| now >= e) {
                    break;
                }
                d.poll(now);
                while let Some(ev) = d.event_get(sub).map_err(|e| e.to_string())? {
                    // the event's own entry: the tag of a resource that just left too
                    let who = match (ev.resource, &ev.rpt_entry) {
                        (Some(r), Some(e)) => format!("{r} {}", e.tag),
                        (Some(r), None) => r.to_string(),
                        (None, _) => "domain".into(),
                    };
                    let what = match &ev.kind {
                        EventKind::HotSwap {
                            state,
                            previous,
                            cause,
                            picmg,
                        } => format!("hot-swap {previous} -> {state} ({cause:?}, PICMG {picmg:?})"),
                        EventKind::Sensor {
                            num,
                            assertion,
                            state,
                            trigger_reading,
                            trigger_threshold,
                            ..
                        } => {
                            let s = match state {
                                SensorEventState::Threshold(t, c) => format!("{t:?} {c:?}"),
                                SensorEventState::Discrete { event_type, offset } => {
                                    format!("state {offset} (event type 0x{event_type:02x})")
                                }
                            };
                            format!(
                                "sensor {num} {} {s} reading {trigger_reading:?} threshold {trigger_threshold:?}",
                                if *assertion { "asserted" } else { "deasserted" }
                            )
                        }
                        other => format!("{other:?}"),
                    };
                    println!("#{:<5} {who:<18} {what}", ev.seq);
                }
                let wait = d
                    .poll_timeout()
                    .map(|t| t.saturating_duration_since(Instant::now()))
                    .unwrap_or(Duration::from_millis(100))
                    .min(Duration::from_millis(100));
                std::thread::sleep(wait);
            }
        }
        Cmd::Ping => unreachable!("handled above"),
    }
    Ok(())
}
