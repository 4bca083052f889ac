//! `shelfctl`: the operator CLI of the shelf manager, over RMCP+ (cipher suite 17).

use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};

use shelf_manager::hotswap::MState;
use shelf_manager::rmcp::console::Console;
use shelf_manager::rmcp::crypto::Suite;

/// Operate an ATCA shelf manager (`shelfd`, or any shelf manager answering the standard
/// PICMG commands) over RMCP+ with cipher suite 17.
///
/// The password comes from the SHELF_PASSWORD environment variable or from
/// --password-file, never from the command line (it would show in `ps`).
///
/// Examples:
///   SHELF_PASSWORD=secret shelfctl --host 127.0.0.1:6230 status
///   SHELF_PASSWORD=secret shelfctl --host 127.0.0.1:6230 deactivate 2
///   SHELF_PASSWORD=secret shelfctl --host 127.0.0.1:6230 handle open 1   # simulated shelf
///   SHELF_PASSWORD=secret shelfctl --host 127.0.0.1:6230 presence pull 2 # simulated shelf
///
/// FRU numbers are the shelf manager's FRU device ids (`status` lists them; in shelfd, the
/// n-th board of the model file is FRU n).
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// The shelf manager's address:port.
    #[arg(long, default_value = "127.0.0.1:623")]
    host: String,
    /// User name.
    #[arg(long, short = 'U', default_value = "admin")]
    user: String,
    /// File holding the password (first line); default: the SHELF_PASSWORD variable.
    #[arg(long)]
    password_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// FRUs with their site, IPMB address, hot-swap state and activation policy; power feeds.
    Status,
    /// Activate a FRU (Set FRU Activation: M2 → M3, or M5 → M4).
    Activate {
        /// FRU device id.
        fru: u8,
    },
    /// Deactivate a FRU (Set FRU Activation: M2 → M1, M3/M4/M5 → M6).
    Deactivate {
        /// FRU device id.
        fru: u8,
    },
    /// Set a FRU's activation policy bits.
    Policy {
        /// FRU device id.
        fru: u8,
        /// Locked: the FRU stays in M1.
        #[arg(long)]
        locked: Option<OnOff>,
        /// Deactivation-Locked: the FRU stays in M4.
        #[arg(long)]
        deactivation_locked: Option<OnOff>,
    },
    /// Open or close a board's injector handle (simulated shelves only).
    Handle {
        /// open or close.
        action: HandleAction,
        /// FRU device id.
        fru: u8,
    },
    /// Pull a board out or insert it, handle open (simulated shelves only); a board that is
    /// FRU 0 of its IPMC takes the IPMC's other FRUs (RTMs, AMCs) out with it.
    Presence {
        /// pull or insert.
        action: PresenceAction,
        /// FRU device id.
        fru: u8,
    },
    /// The system event log, decoded.
    Sel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PresenceAction {
    Pull,
    Insert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum HandleAction {
    Open,
    Close,
}

struct Link {
    sock: UdpSocket,
    console: Console,
}

impl Link {
    fn exchange(&self, pkt: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.sock.send(pkt)?;
        let mut buf = [0u8; 2048];
        let n = self
            .sock
            .recv(&mut buf)
            .context("no answer from the shelf manager (address, port, firewall?)")?;
        Ok(buf[..n].to_vec())
    }

    fn open(host: &str, user: &str, password: &str, role: u8) -> anyhow::Result<Link> {
        let sock = UdpSocket::bind("0.0.0.0:0")?;
        sock.set_read_timeout(Some(Duration::from_secs(2)))?;
        sock.connect(host).with_context(|| host.to_string())?;
        let mut link = Link {
            sock,
            console: Console::new(Suite::Sha256, 0x5C7C_0001, user, password, role),
        };
        let open = link.exchange(&link.console.open_session())?;
        let r1 = link.console.rakp1(&open).map_err(refusal)?;
        let r2 = link.exchange(&r1)?;
        let r3 = link.console.rakp3(&r2).map_err(refusal)?;
        let r4 = link.exchange(&r3)?;
        link.console.finish(&r4).map_err(refusal)?;
        let (code, _) = link.cmd(0x06, 0x3B, &[role])?;
        if code != 0 {
            bail!("the shelf manager refused privilege level {role} (completion code {code:#04x})");
        }
        Ok(link)
    }

    fn cmd(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> anyhow::Result<(u8, Vec<u8>)> {
        let pkt = self.console.request(netfn, cmd, data);
        let reply = self.exchange(&pkt)?;
        Ok(self.console.response(&reply)?)
    }

    /// A command that must succeed; returns its data.
    fn ok(&mut self, what: &str, netfn: u8, cmd: u8, data: &[u8]) -> anyhow::Result<Vec<u8>> {
        let (code, out) = self.cmd(netfn, cmd, data)?;
        if code != 0 {
            bail!("{what}: {}", completion(code));
        }
        Ok(out)
    }

    fn close(&mut self) {
        let id = self.console.server_id.to_le_bytes();
        let _ = self.cmd(0x06, 0x3C, &id);
    }
}

fn refusal(e: shelf_manager::rmcp::console::ConsoleError) -> anyhow::Error {
    use shelf_manager::rmcp::console::ConsoleError;
    match e {
        ConsoleError::Rakp2Mismatch => anyhow::anyhow!("wrong password"),
        ConsoleError::Status(0x0D) => anyhow::anyhow!("unknown user"),
        ConsoleError::Status(0x0A) => {
            anyhow::anyhow!("the user may not hold the privilege this command needs")
        }
        ConsoleError::Status(0x01) => anyhow::anyhow!("the shelf manager has no free session"),
        other => anyhow::anyhow!("session refused: {other}"),
    }
}

fn completion(code: u8) -> String {
    let text = match code {
        0xC1 => "not supported by this shelf manager",
        0xCC => "no such FRU",
        0xD4 => "insufficient privilege",
        0xD5 => "not accepted in the FRU's present state",
        _ => "refused",
    };
    format!("{text} (completion code {code:#04x})")
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("shelfctl: {e:#}");
        std::process::exit(1);
    }
}

fn password(args: &Args) -> anyhow::Result<String> {
    if let Some(path) = &args.password_file {
        let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
        return Ok(text.lines().next().unwrap_or("").to_string());
    }
    std::env::var("SHELF_PASSWORD")
        .context("no password: set SHELF_PASSWORD or give --password-file")
}

fn run(args: Args) -> anyhow::Result<()> {
    let password = password(&args)?;
    let role = match args.command {
        Cmd::Status | Cmd::Sel => 2,
        _ => 3,
    };
    let mut link = Link::open(&args.host, &args.user, &password, role)?;
    let result = command(&mut link, &args.command);
    link.close();
    result
}

fn command(link: &mut Link, cmd: &Cmd) -> anyhow::Result<()> {
    match *cmd {
        Cmd::Status => status(link),
        Cmd::Activate { fru } => {
            link.ok("activate", 0x2C, 0x0C, &[0, fru, 1])?;
            println!("FRU {fru}: activation requested");
            Ok(())
        }
        Cmd::Deactivate { fru } => {
            link.ok("deactivate", 0x2C, 0x0C, &[0, fru, 0])?;
            println!("FRU {fru}: deactivation requested");
            Ok(())
        }
        Cmd::Policy {
            fru,
            locked,
            deactivation_locked,
        } => {
            let mut mask = 0;
            let mut bits = 0;
            if let Some(v) = locked {
                mask |= 1;
                bits |= u8::from(v == OnOff::On);
            }
            if let Some(v) = deactivation_locked {
                mask |= 2;
                bits |= u8::from(v == OnOff::On) << 1;
            }
            if mask == 0 {
                bail!("give --locked and/or --deactivation-locked");
            }
            link.ok("set policy", 0x2C, 0x0A, &[0, fru, mask, bits])?;
            let p = link.ok("get policy", 0x2C, 0x0B, &[0, fru])?;
            println!(
                "FRU {fru}: policy {}",
                policy(p.get(1).copied().unwrap_or(0))
            );
            Ok(())
        }
        Cmd::Handle { action, fru } => {
            let what = u8::from(action == HandleAction::Close);
            link.ok("handle", 0x30, 0x01, &[fru, what])?;
            println!(
                "FRU {fru}: handle {}",
                if what == 1 { "closed" } else { "opened" }
            );
            Ok(())
        }
        Cmd::Presence { action, fru } => {
            let what = u8::from(action == PresenceAction::Insert);
            link.ok("presence", 0x30, 0x02, &[fru, what])?;
            println!(
                "FRU {fru}: {}",
                if what == 1 { "inserted" } else { "pulled out" }
            );
            Ok(())
        }
        Cmd::Sel => sel(link),
    }
}

fn policy(bits: u8) -> String {
    match (bits & 1 != 0, bits & 2 != 0) {
        (false, false) => "-".into(),
        (true, false) => "locked".into(),
        (false, true) => "deactivation-locked".into(),
        (true, true) => "locked,deactivation-locked".into(),
    }
}

fn state_name(bits: u8) -> String {
    MState::ALL
        .into_iter()
        .find(|s| bits == 1 << s.code())
        .map_or_else(|| format!("?{bits:#04x}"), |s| format!("{s:?}"))
}

/// Every SDR record.
fn sdrs(link: &mut Link) -> anyhow::Result<Vec<Vec<u8>>> {
    let res = link.ok("reserve SDR", 0x0A, 0x22, &[])?;
    let (r0, r1) = (
        res.first().copied().unwrap_or(0),
        res.get(1).copied().unwrap_or(0),
    );
    let mut id = [0u8, 0];
    let mut out = Vec::new();
    for _ in 0..1024 {
        let data = link.ok("get SDR", 0x0A, 0x23, &[r0, r1, id[0], id[1], 0, 0xFF])?;
        if data.len() < 7 {
            bail!("short SDR record");
        }
        out.push(data[2..].to_vec());
        if data[..2] == [0xFF, 0xFF] {
            break;
        }
        id = [data[0], data[1]];
    }
    Ok(out)
}

fn id_string(rec: &[u8], at: usize) -> String {
    let Some(&tl) = rec.get(at) else {
        return String::new();
    };
    let len = usize::from(tl & 0x1F);
    rec.get(at + 1..at + 1 + len)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

fn status(link: &mut Link) -> anyhow::Result<()> {
    let records = sdrs(link)?;
    println!("FRU  board             site  IPMB  state  policy");
    // The shelf manager's FRU devices 1..max; each one's name from its locator record (its
    // IPMC's MC Device Locator, copied into the repository).
    let props = link.ok("PICMG properties", 0x2C, 0x00, &[0])?;
    for fru in 1..=props.get(2).copied().unwrap_or(0) {
        let locator = link.ok("device locator", 0x2C, 0x0D, &[0, fru])?;
        let name = records
            .iter()
            .find(|r| r.len() > 16 && locator.get(1..3) == Some(&r[..2]))
            .map(|r| id_string(r, 15))
            .unwrap_or_default();
        let addr = link.ok("address info", 0x2C, 0x01, &[0, fru])?;
        let (ipmb, site) = (
            addr.get(2).copied().unwrap_or(0),
            addr.get(5).copied().unwrap_or(0),
        );
        let reading = link.ok("hot-swap sensor", 0x04, 0x2D, &[fru])?;
        let state = state_name(reading.get(2).copied().unwrap_or(0));
        let p = link.ok("policy", 0x2C, 0x0B, &[0, fru])?;
        println!(
            "{fru:<4} {name:<17} {site:<5} {ipmb:#04x}  {state:<6} {}",
            policy(p.get(1).copied().unwrap_or(0))
        );
    }
    for rec in records.iter().filter(|r| r[3] == 0x01 && r.len() > 48) {
        let number = rec[7];
        let m = u32::from(rec[24]);
        let name = id_string(rec, 47);
        let reading = link.ok("feed sensor", 0x04, 0x2D, &[number])?;
        let watts = u32::from(reading.first().copied().unwrap_or(0)) * m;
        println!("{name}: {watts} W granted");
    }
    let budget = link.cmd(0x04, 0x2D, &[0x80])?;
    if budget.0 == 0 {
        let waiting = budget.1.get(2).is_some_and(|b| b & (1 << 5) != 0);
        println!(
            "power budget: {}",
            if waiting {
                "a FRU waits in M3 for power"
            } else {
                "no FRU waits for power"
            }
        );
    }
    Ok(())
}

fn sel(link: &mut Link) -> anyhow::Result<()> {
    // Hot-swap records come from the IPMCs: name the board by the generating IPMC's
    // hot-swap sensor in the repository ("HS <board>").
    let records = sdrs(link)?;
    let board = |ipmb: u8, sensor: u8| {
        records
            .iter()
            .find(|r| r.len() > 32 && r[3] == 0x02 && r[5] == ipmb && r[7] == sensor)
            .map(|r| id_string(r, 31).trim_start_matches("HS ").to_string())
            .unwrap_or_else(|| "?".into())
    };
    let res = link.ok("reserve SEL", 0x0A, 0x42, &[])?;
    let (r0, r1) = (
        res.first().copied().unwrap_or(0),
        res.get(1).copied().unwrap_or(0),
    );
    let mut id = [0u8, 0];
    for _ in 0..65536 {
        let (code, data) = link.cmd(0x0A, 0x43, &[r0, r1, id[0], id[1], 0, 0xFF])?;
        if code == 0xCB {
            println!("(empty)");
            return Ok(());
        }
        if code != 0 || data.len() < 18 {
            bail!("get SEL entry: {}", completion(code));
        }
        let r = &data[2..];
        let rid = u16::from_le_bytes([r[0], r[1]]);
        let text = match (r[10], r[12], r[13]) {
            (0xF0, 0x6F, ed1) => format!(
                "{} (IPMC {:#04x} FRU {}): M{} -> M{} (cause {})",
                board(r[7], r[11]),
                r[7],
                r[15],
                r[14] & 0x0F,
                ed1 & 0x0F,
                r[14] >> 4
            ),
            (0x09, 0x6F, ed1) if ed1 & 0x0F == 5 => {
                format!("FRU {}: power denied at level {}", r[15], r[14])
            }
            _ => format!("{:02x?}", &r[7..16]),
        };
        println!("{rid:>5}  {text}");
        if data[..2] == [0xFF, 0xFF] {
            return Ok(());
        }
        id = [data[0], data[1]];
    }
    Ok(())
}
