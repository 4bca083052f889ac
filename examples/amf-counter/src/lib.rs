//! `amf-counter`: the example stateful service of openais-rs, a counter that runs 2N under the
//! AMF and keeps its state in a CKPT checkpoint, so that the standby continues from the last
//! acknowledged state when the active fails. It is meant to be read: this is how to write a
//! stateful 2N component with `ais-client` (and nothing else of the stack).
//!
//! # The component
//!
//! It is SA-aware: started by the executive (the model's `instantiate` command), it connects
//! to the executive's IPC socket (`--socket PATH`, else `$OPENAIS_IPC_SOCKET`, else
//! `/run/openais/aisexec.sock`; the executive clears the environment of the commands it runs,
//! so a model passes `--socket`), registers under `SA_AMF_COMPONENT_NAME` (or `--name`), and
//! answers every callback:
//!
//! | Callback | What it does before answering |
//! |---|---|
//! | CSI set, active | opens (or creates) the checkpoint named by the CSI attribute `checkpoint` (kept open from standby if it was), reads the state, binds the CSI attribute `listen` (`HOST:PORT`, TCP) and serves |
//! | CSI set, standby | opens (or creates) the checkpoint and keeps it open; does not listen |
//! | CSI set, quiesced or quiescing; CSI remove | stops accepting and **closes its listener** (and its client connections) after the write in progress has been answered, so the next active can bind the same address on the same host; a remove also closes the checkpoint |
//! | health check | answers OK while the active's threads run, else failed (the AMF then recovers) |
//! | terminate | as a removal, then exits |
//!
//! The checkpoint is created with `WR_ALL_REPLICAS` (a replica on every node, every write
//! applied at every node in safe order before it returns), one section, and an infinite
//! retention, so the state outlives both processes.
//!
//! # The request protocol
//!
//! Text lines over TCP ([`protocol`]): `ADD <client-id> <seq> <n>` → `OK <total>`; `GET` →
//! `VALUE <total>`; anything else → `ERR <reason>`. An `ADD` is answered only after the
//! checkpoint write holding its effect returned OK: CKPT writes are safe-order, so an
//! acknowledged addition survives any crash. The state ([`state`]) keeps each client's last
//! applied `seq`: a client that sends an addition again after a failover (with the same
//! `seq`) gets `OK` without it being counted twice. This is what "continues from the last
//! acknowledged state" means.
//!
//! The state remembers at most `--max-clients` clients (default and most: 1024, so that the
//! whole state fits one CKPT request and every write is atomic). Beyond that the client least
//! recently heard from is forgotten (logged): if that client then sends again an addition
//! that had already been counted, it is counted twice. Keep the bound above the number of
//! clients that may be retrying at once.
//!
//! # Layers
//!
//! [`state`] is pure (the state, its rules and its encoding, unit-tested); [`protocol`] is the
//! line format; `serve` runs the active side (listener, one reader thread per connection, one
//! worker that applies a batch, writes it to the checkpoint once, then answers); [`run`] is the
//! AMF loop.

pub mod protocol;
pub mod state;

mod serve;

use std::path::PathBuf;

use ais_client::amf::{Amf, Callback, Ha, Invocation};
use ais_client::ckpt::{self, Attributes, Ckpt};
use anyhow::Context;
use tracing::{info, warn};

use serve::{Opened, Serving};
use state::{MAX_CLIENTS_LIMIT, State};

/// The CSI attribute naming the TCP address the active listens on.
pub const ATTR_LISTEN: &str = "listen";

/// The CSI attribute naming the checkpoint holding the state.
pub const ATTR_CHECKPOINT: &str = "checkpoint";

/// The example 2N counter service: an SA-aware AMF component.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "amf-counter", version)]
pub struct Args {
    /// The executive's IPC socket (default: $OPENAIS_IPC_SOCKET, else
    /// /run/openais/aisexec.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The component name to register (default: $SA_AMF_COMPONENT_NAME, which the executive
    /// sets).
    #[arg(long)]
    pub name: Option<String>,
    /// The most clients whose last sequence number is kept (beyond it the least recently
    /// heard from is forgotten).
    #[arg(long, default_value_t = MAX_CLIENTS_LIMIT,
          value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..=MAX_CLIENTS_LIMIT as i64), usize::from))]
    pub max_clients: usize,
    /// A deliberate defect, for the tests that prove the exact check of the total catches a
    /// broken service (hidden; `none` in every real use).
    #[arg(long, hide = true, value_enum, default_value_t = Defect::None)]
    pub defect: Defect,
}

impl Default for Args {
    /// What the command line gives without options: the default socket, the name from the
    /// environment, 1024 clients, no defect. A caller in code writes
    /// `Args { socket: Some(path), ..Args::default() }`.
    fn default() -> Args {
        Args {
            socket: None,
            name: None,
            max_clients: MAX_CLIENTS_LIMIT,
            defect: Defect::None,
        }
    }
}

/// A deliberate defect (see [`Args::defect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Defect {
    /// None: the service as documented.
    #[default]
    None,
    /// A new active starts from an empty state instead of reading the checkpoint.
    FreshState,
    /// Every `ADD` is counted, also one sent again after it was applied.
    NoDedup,
}

/// Logs to standard error (the executive captures a component's output into its log);
/// `RUST_LOG` filters, `info` by default. Does nothing when a subscriber is installed.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// Runs the component until the executive terminates it (`Ok`) or goes away (`Err`).
///
/// # Errors
/// The executive cannot be reached, refuses the registration, or its connection fails.
pub fn run(args: Args) -> anyhow::Result<()> {
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(ais_client::default_socket);
    let mut amf = Amf::initialize(&socket)
        .with_context(|| format!("connecting to the executive at {}", socket.display()))?;
    amf.register(args.name.as_deref())
        .context("registering with the AMF")?;
    let name = amf.name_get().context("component name")?;
    info!(component = %name, socket = %socket.display(), "registered");
    if args.defect != Defect::None {
        warn!(defect = ?args.defect, "running with a deliberate defect");
    }
    let mut comp = Component {
        socket,
        max_clients: args.max_clients,
        defect: args.defect,
        checkpoint: None,
        listen: None,
        opened: None,
        serving: None,
    };
    loop {
        let cb = amf.dispatch(None).context("the executive's connection")?;
        match cb {
            Some(Callback::CsiSet {
                invocation,
                si,
                csi,
                ha,
                attributes,
            }) => {
                let ok = match comp.set(ha, &attributes) {
                    Ok(()) => {
                        info!(%si, %csi, ha = ha.name(), "CSI set");
                        true
                    }
                    Err(e) => {
                        warn!(%si, %csi, ha = ha.name(), error = format!("{e:#}"), "CSI set failed");
                        false
                    }
                };
                answer(&mut amf, invocation, ok)?;
            }
            Some(Callback::CsiRemove {
                invocation,
                si,
                csi,
            }) => {
                comp.remove();
                info!(%si, %csi, "CSI removed");
                answer(&mut amf, invocation, true)?;
            }
            Some(Callback::Healthcheck { invocation, .. }) => {
                let ok = comp.serving.as_ref().is_none_or(Serving::healthy);
                answer(&mut amf, invocation, ok)?;
            }
            Some(Callback::Terminate { invocation }) => {
                comp.remove();
                info!("terminated");
                answer(&mut amf, invocation, true)?;
                return Ok(());
            }
            // A kind this program does not know: accepted, if it asks for an answer.
            Some(other) if other.invocation() != 0 => {
                answer(&mut amf, other.invocation(), true)?;
            }
            Some(_) | None => {}
        }
    }
}

/// Answers callback `invocation`. A refusal by the executive (the invocation timed out and is
/// no longer outstanding) is logged; only a failed connection ends the component.
fn answer(amf: &mut Amf, invocation: u64, ok: bool) -> anyhow::Result<()> {
    match amf.response(invocation, ok) {
        Err(e) if e.ais_error().is_some() => {
            warn!(invocation, error = %e, "answer refused");
            Ok(())
        }
        other => Ok(other.context("answering the executive")?),
    }
}

/// The component's side of its one CSI.
struct Component {
    socket: PathBuf,
    max_clients: usize,
    defect: Defect,
    checkpoint: Option<String>,
    listen: Option<String>,
    /// The checkpoint, open, while not serving (standby, quiesced).
    opened: Option<Opened>,
    /// The active side, while active.
    serving: Option<Serving>,
}

impl Component {
    /// Takes HA state `ha` with `attributes` (a quiesce may come without them: the ones held
    /// stay).
    fn set(&mut self, ha: Ha, attributes: &[(String, String)]) -> anyhow::Result<()> {
        let attr = |k: &str| {
            attributes
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        if let Some(c) = attr(ATTR_CHECKPOINT) {
            if self.checkpoint.as_ref().is_some_and(|old| *old != c) {
                self.remove();
            }
            self.checkpoint = Some(c);
        }
        if let Some(l) = attr(ATTR_LISTEN) {
            if self.listen.as_ref().is_some_and(|old| *old != l) {
                self.stop_serving();
            }
            self.listen = Some(l);
        }
        match ha {
            Ha::Active => {
                if self.serving.is_none() {
                    let listen = self
                        .listen
                        .clone()
                        .context("the CSI has no \"listen\" attribute")?;
                    let mut opened = self.open()?;
                    let state = match self.defect {
                        Defect::FreshState => State::new(self.max_clients),
                        _ => opened.load(self.max_clients)?,
                    };
                    info!(
                        total = state.total(),
                        clients = state.clients(),
                        "state read from the checkpoint"
                    );
                    match Serving::start(&listen, opened, state, self.defect) {
                        Ok(s) => self.serving = Some(s),
                        Err((e, opened)) => {
                            self.opened = Some(opened);
                            return Err(e);
                        }
                    }
                }
            }
            Ha::Standby => {
                self.stop_serving();
                let opened = self.open()?;
                self.opened = Some(opened);
            }
            Ha::Quiesced | Ha::Quiescing => self.stop_serving(),
        }
        Ok(())
    }

    /// The open checkpoint, opened (created when missing) if it is not.
    fn open(&mut self) -> anyhow::Result<Opened> {
        if let Some(o) = self.opened.take() {
            return Ok(o);
        }
        let name = self
            .checkpoint
            .clone()
            .context("the CSI has no \"checkpoint\" attribute")?;
        let mut ckpt = Ckpt::connect(&self.socket).context("connecting to CKPT")?;
        // The same attributes at every process, whatever its --max-clients.
        let size = State::max_encoded_len(MAX_CLIENTS_LIMIT) as u64;
        let attributes = Attributes {
            creation_flags: ckpt::WR_ALL_REPLICAS,
            checkpoint_size: size,
            retention_duration: ckpt::TIME_END,
            max_sections: 1,
            max_section_size: size,
            max_section_id_size: 0,
        };
        let flags = ckpt::OPEN_CREATE | ckpt::OPEN_READ | ckpt::OPEN_WRITE;
        let handle = ckpt
            .open(name.as_bytes(), flags, Some(attributes))
            .with_context(|| format!("opening checkpoint {name:?}"))?;
        Ok(Opened { ckpt, handle })
    }

    /// Stops serving (listener closed when this returns); keeps the checkpoint open.
    fn stop_serving(&mut self) {
        if let Some(s) = self.serving.take() {
            self.opened = Some(s.stop());
        }
    }

    /// Gives the CSI up: stops serving and closes the checkpoint.
    fn remove(&mut self) {
        self.stop_serving();
        if let Some(mut o) = self.opened.take() {
            let _ = o.ckpt.close(o.handle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn the_default_arguments_are_the_command_lines() {
        let parsed = Args::parse_from(["amf-counter"]);
        let d = Args::default();
        assert_eq!(
            (
                parsed.socket,
                parsed.name,
                parsed.max_clients,
                parsed.defect
            ),
            (d.socket, d.name, d.max_clients, d.defect)
        );
        let a = Args::parse_from(["amf-counter", "--socket", "/s", "--max-clients", "2"]);
        assert_eq!(a.socket.as_deref(), Some(std::path::Path::new("/s")));
        assert_eq!(a.max_clients, 2);
        assert!(Args::try_parse_from(["amf-counter", "--max-clients", "0"]).is_err());
        assert!(Args::try_parse_from(["amf-counter", "--max-clients", "1025"]).is_err());
    }
}
