//! `bench amf-memory-counter` (hidden): a counter that speaks the example service's protocol
//! but keeps its total in memory only, so every failover loses it. It exists to prove that
//! `bench amf-failover` counts lost acknowledged updates: run with `--service memory`, the
//! bench must report them (`bench/tests/amf_failover.rs`).
//!
//! The protocol is the one of `examples/amf-counter`: an SA-aware component whose CSI carries
//! `listen = "HOST:PORT"` (and `checkpoint`, ignored here); while it holds the CSI active it
//! listens there and answers lines `ADD <client-id> <seq> <n>` with `OK <total>` (idempotent
//! per client and sequence number) and `GET` with `VALUE <total>`. The executive's socket
//! comes from `OPENAIS_IPC_SOCKET` (the component name from `SA_AMF_COMPONENT_NAME`, as the
//! executive sets it). It starts listening on its first active assignment and stops only when
//! its process ends (this bench never hands an active back).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};

use ais_client::amf::{Amf, Callback, Ha};
use anyhow::Context;

#[derive(Default)]
struct Counter {
    total: u64,
    seen: HashSet<(String, u64)>,
}

/// Runs the component until the executive goes away or terminates it.
///
/// # Errors
/// No executive, a failed registration, or a `listen` address that cannot be bound.
pub fn run() -> anyhow::Result<()> {
    let socket = ais_client::default_socket();
    let mut amf = Amf::initialize(&socket)
        .with_context(|| format!("connecting to the executive at {}", socket.display()))?;
    amf.register(None).context("registering")?;
    let counter = Arc::new(Mutex::new(Counter::default()));
    let mut listening = false;
    loop {
        // The executive went away: the component ends.
        let Ok(cb) = amf.dispatch(None) else {
            return Ok(());
        };
        match cb {
            Some(Callback::CsiSet {
                invocation,
                ha,
                attributes,
                ..
            }) => {
                if ha == Ha::Active && !listening {
                    let addr = attributes
                        .iter()
                        .find(|(k, _)| k == "listen")
                        .map(|(_, v)| v.clone())
                        .context("the CSI has no listen attribute")?;
                    let l =
                        TcpListener::bind(&addr).with_context(|| format!("listening on {addr}"))?;
                    let c = Arc::clone(&counter);
                    std::thread::spawn(move || accept(&l, &c));
                    listening = true;
                }
                amf.response(invocation, true)?;
            }
            Some(Callback::CsiRemove { invocation, .. })
            | Some(Callback::Healthcheck { invocation, .. }) => amf.response(invocation, true)?,
            Some(Callback::Terminate { invocation }) => {
                let _ = amf.response(invocation, true);
                return Ok(());
            }
            Some(_) | None => {}
        }
    }
}

fn accept(l: &TcpListener, counter: &Arc<Mutex<Counter>>) {
    for s in l.incoming().flatten() {
        let c = Arc::clone(counter);
        std::thread::spawn(move || serve(s, &c));
    }
}

fn serve(s: TcpStream, counter: &Mutex<Counter>) {
    let _ = s.set_nodelay(true);
    let Ok(mut out) = s.try_clone() else { return };
    for line in BufReader::new(s).lines() {
        let Ok(line) = line else { return };
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = {
            let mut c = counter.lock().unwrap_or_else(PoisonError::into_inner);
            match words[..] {
                ["ADD", client, seq, n] => match (seq.parse::<u64>(), n.parse::<u64>()) {
                    (Ok(seq), Ok(n)) => {
                        if c.seen.insert((client.to_owned(), seq)) {
                            c.total += n;
                        }
                        format!("OK {}\n", c.total)
                    }
                    _ => "ERR bad number\n".to_owned(),
                },
                ["GET"] => format!("VALUE {}\n", c.total),
                _ => "ERR unknown request\n".to_owned(),
            }
        };
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}
