//! The peer side, `bench raw-peer` ([`run_peer`]): sets up the transport (kernel UDP, or DPDK
//! with feature `dpdk`), then sends as fast as it takes frames or counts what arrives, and
//! prints its [`PeerReport`].

use std::io::{BufRead, Write};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dataplane::udp::{UdpConfig, UdpTransport};
use dataplane::{Dest, Member, SendError, Source, Transport};

use super::protocol::{
    ACK, DATA_WARMUP, DATA_WINDOW, DRAIN_MAX, HANDSHAKE, PROBE, QUIET, RECEIVER, SENDER, control,
    now_ns, parse_start, wait_until,
};
use super::{PeerArgs, PeerReport, RawTransport, Role};

/// Runs `bench raw-peer`: one end of the link (see the [module documentation](super)).
///
/// # Errors
/// Bad arguments, a transport that cannot be set up, no answer from the receiver, a broken
/// protocol on stdin.
pub fn run_peer(args: &PeerArgs) -> anyhow::Result<()> {
    // Ring messages larger than a frame are fragmented; raw datagrams must fit.
    if args.size == 0 || (args.size > args.mtu && args.role != Role::Ring) {
        bail!("size {} is not in 1..={}", args.size, args.mtu);
    }
    let stdin = stdin_lines();
    if args.role == Role::Ring && !args.transport.is_dpdk() {
        let path = args
            .config
            .as_deref()
            .context("--role ring over UDP needs --config (an aisexec configuration)")?;
        // Each step before `up` says it on stderr (the harness's log of this node), so that
        // a node that never says `up` shows where it stopped.
        eprintln!("ring node: reading {}", path.display());
        let (cfg, transports) = super::ring::udp_node(path)?;
        eprintln!("ring node: {} socket(s) open", transports.len());
        return super::ring::ring_peer(transports, cfg, args, &stdin);
    }
    match args.transport {
        RawTransport::Udp | RawTransport::UdpNetns => {
            let bind = args.bind.context("--bind is required for UDP")?;
            let mut c = UdpConfig::unicast(bind);
            c.mtu = args.mtu;
            let mut t = UdpTransport::new(c).context("creating the UDP transport")?;
            let me = Member {
                id: if args.role == Role::Send {
                    SENDER
                } else {
                    RECEIVER
                },
                addr: t.local_addr(),
            };
            match args.role {
                Role::Send => {
                    anyhow::ensure!(
                        !args.peer.is_empty(),
                        "--peer is required for the UDP sender"
                    );
                    // Receivers are nodes 2, 3, ... in --peer order.
                    let mut members = vec![me];
                    members.extend(
                        args.peer
                            .iter()
                            .zip(RECEIVER.0..)
                            .map(|(&addr, id)| Member {
                                id: dataplane::NodeId(id),
                                addr,
                            }),
                    );
                    t.set_members(&members)?;
                    sender(&mut t, args, &stdin)
                }
                Role::Recv => {
                    t.set_members(&[me])?;
                    println!("ready {}", t.local_addr());
                    receiver(&mut t, args, &stdin, Some(me))
                }
                Role::Ring => unreachable!("refused above"),
            }
        }
        RawTransport::DpdkAfPacket | RawTransport::DpdkMemif => dpdk_peer(args, &stdin),
    }
}

#[cfg(feature = "dpdk")]
fn dpdk_peer(args: &PeerArgs, stdin: &Receiver<String>) -> anyhow::Result<()> {
    use dataplane::dpdk::{self, DpdkConfig, DpdkTransport};
    use std::net::SocketAddr;
    let name = args
        .dpdk_port
        .as_deref()
        .context("--dpdk-port is required for DPDK")?;
    dpdk::init_eal(&args.eal).context("initialising DPDK's EAL")?;
    let port = dpdk::port_by_name(name)?;
    let node = match args.role {
        Role::Send => SENDER,
        Role::Recv => RECEIVER,
        Role::Ring if args.node == 1 => SENDER,
        Role::Ring => RECEIVER,
    };
    let mut c = DpdkConfig::new(args.eal.clone(), port, node);
    c.mtu = args.mtu;
    c.busy_poll = true;
    c.mbufs = args.mbufs;
    c.min_data_room = args.min_data_room;
    let mut t = DpdkTransport::new(c).with_context(|| format!("opening DPDK port {name}"))?;
    if args.role == Role::Ring {
        let cfg = super::ring::dpdk_config(args)?;
        return super::ring::ring_peer(vec![t], cfg, args, stdin);
    }
    // Ethernet members are known by id; the address is not used.
    let addr = SocketAddr::from(([0, 0, 0, 0], 0));
    t.set_members(&[Member { id: SENDER, addr }, Member { id: RECEIVER, addr }])?;
    let r = match args.role {
        Role::Send => sender(&mut t, args, stdin),
        Role::Recv => {
            println!("ready -");
            receiver(&mut t, args, stdin, None)
        }
        Role::Ring => unreachable!("returned above"),
    };
    if t.stats().tx_errors > 0 || t.dpdk_stats().tx_no_mbuf > 0 {
        eprintln!("{:?} {:?}", t.stats(), t.dpdk_stats());
    }
    r
}

#[cfg(not(feature = "dpdk"))]
fn dpdk_peer(_args: &PeerArgs, _stdin: &Receiver<String>) -> anyhow::Result<()> {
    bail!(
        "this bench was built without DPDK: cargo run --release -p bench --features dpdk -- raw ..."
    )
}

/// Lines of stdin, read by a thread; the channel closes at EOF.
fn stdin_lines() -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Prints the report, then waits for stdin to close (the harness says when to exit, so a
/// memif peer never vanishes while the other one polls).
fn report_and_linger(report: &PeerReport, stdin: &Receiver<String>) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(report)?);
    std::io::stdout().flush()?;
    while stdin.recv().is_ok() {}
    Ok(())
}

fn sender<T: Transport>(
    t: &mut T,
    args: &PeerArgs,
    stdin: &Receiver<String>,
) -> anyhow::Result<()> {
    // Handshake: probe until every receiver answers.
    let receivers: Vec<dataplane::NodeId> = (0..args.peer.len().max(1))
        .map(|i| dataplane::NodeId(RECEIVER.0 + i as u32))
        .collect();
    let mut pending = receivers.clone();
    let deadline = Instant::now() + HANDSHAKE;
    while !pending.is_empty() {
        if Instant::now() > deadline {
            bail!("no answer from receiver(s) {pending:?} within {HANDSHAKE:?}");
        }
        for &r in &pending {
            control(t, r, PROBE)?;
        }
        let step = Instant::now();
        while !pending.is_empty() && step.elapsed() < Duration::from_millis(10) {
            let n = t.recv_burst(|src, d| {
                if d.first() == Some(&ACK) {
                    // DPDK knows one receiver and may not name it.
                    let from = src.node.unwrap_or(RECEIVER);
                    pending.retain(|&p| p != from);
                }
            })?;
            if n == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    // One receiver: a stream to it; more: every datagram to each of them, the way the udpu
    // transport sends a ring frame (Dest::Ring queues one datagram per other member).
    let (dest, fanout) = if receivers.len() > 1 {
        (Dest::Ring, receivers.len() as u64)
    } else {
        (Dest::Node(RECEIVER), 1)
    };
    println!("ready");
    std::io::stdout().flush()?;
    let line = stdin
        .recv_timeout(Duration::from_secs(120))
        .context("no `start` on stdin")?;
    let start = parse_start(&line)?;
    let window_start = start + args.warmup_ms * 1_000_000;
    let end = window_start + args.window_ms * 1_000_000;

    let mut template = vec![0u8; args.size];
    for (i, b) in template.iter_mut().enumerate() {
        *b = i as u8;
    }
    let mut sent = 0u64;
    wait_until(start);
    loop {
        let now = now_ns();
        if now >= end {
            break;
        }
        let in_window = now >= window_start;
        let tag = if in_window { DATA_WINDOW } else { DATA_WARMUP };
        let before = t.stats().frames_out;
        loop {
            match t.send(dest, args.size, |b| {
                b.copy_from_slice(&template);
                b[0] = tag;
            }) {
                Ok(()) => {}
                Err(SendError::TxFull) => break,
                Err(e) => return Err(e.into()),
            }
        }
        // Flush the whole burst: retry while the kernel's send buffer is full.
        let give_up = Instant::now() + Duration::from_secs(5);
        loop {
            match t.flush() {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > give_up {
                        bail!("the send buffer stayed full for 5 s");
                    }
                }
                // Refused frames are dropped and counted in tx_errors; not sent.
                Err(_) => break,
            }
        }
        if in_window {
            sent += (t.stats().frames_out - before) / fanout;
        }
    }
    let report = PeerReport {
        role: "send".into(),
        sent,
        tx_errors: t.stats().tx_errors,
        ..PeerReport::default()
    };
    report_and_linger(&report, stdin)
}

/// `me`: for UDP, this node's member entry; the sender is added on its first probe.
fn receiver<T: Transport>(
    t: &mut T,
    args: &PeerArgs,
    stdin: &Receiver<String>,
    me: Option<Member>,
) -> anyhow::Result<()> {
    std::io::stdout().flush()?;
    // Until `start`: answer probes.
    let start = loop {
        match stdin.try_recv() {
            Ok(line) => break parse_start(&line)?,
            Err(mpsc::TryRecvError::Disconnected) => bail!("stdin closed before `start`"),
            Err(mpsc::TryRecvError::Empty) => {}
        }
        let mut probe: Option<Source> = None;
        let n = t.recv_burst(|src, d| {
            if d.first() == Some(&PROBE) {
                probe = Some(src);
            }
        })?;
        if let Some(src) = probe {
            if let (None, Some(me)) = (src.node, me) {
                t.set_members(&[
                    Member {
                        id: SENDER,
                        addr: src.addr,
                    },
                    me,
                ])?;
            }
            control(t, SENDER, ACK)?;
        }
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let end = start + (args.warmup_ms + args.window_ms) * 1_000_000;
    let (mut received, mut bytes) = (0u64, 0u64);
    wait_until(start);
    let mut last_frame = now_ns();
    loop {
        let n = t.recv_burst(|_, d| {
            if d.first() == Some(&DATA_WINDOW) {
                received += 1;
                bytes += d.len() as u64;
            }
        })?;
        let now = now_ns();
        if n > 0 {
            last_frame = now;
        } else if now >= end
            && (now - last_frame >= QUIET.as_nanos() as u64
                || now - end >= DRAIN_MAX.as_nanos() as u64)
        {
            break;
        }
    }
    let report = PeerReport {
        role: "recv".into(),
        received,
        bytes,
        ..PeerReport::default()
    };
    report_and_linger(&report, stdin)
}
