//! The driver thread's loop (see the module docs of [`super`]): submits, receive bursts,
//! timers and transmits, and the idle wait.

use crossbeam_channel::{Receiver, TryRecvError};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration as StdDuration;

use dataplane::{SendError, Transport};

use super::diagnostics::Diagnostics;
use super::networks::{self, NetworkEvent, NetworkStatus};
use super::{
    Control, DIAG_INTERVAL, DriverStats, DriverStatus, EventSink, RX_BURSTS, Reply, Request,
    SUBMIT_BATCH, WOKEN_IDLE_WAIT, WakeState,
};
use crate::rrp::{NetId, Rrp, RrpAdminError, Verdict};
use crate::srp::{self, Totem};
use crate::time::Instant;
use crate::types::RingId;
use crate::wire;

/// Attempts to push out the frames left in the transport when the driver stops or leaves.
const FINAL_FLUSH_TRIES: usize = 10;
/// The longest idle wait over several networks when some transport cannot say which
/// descriptors it waits on (the in-memory network, DPDK): the loop then waits on network 0
/// only, and polls the others this often.
const MULTI_NET_POLL: StdDuration = StdDuration::from_micros(500);

/// The redundant-ring state of a driver over more than one network.
pub(super) struct Networks {
    pub(super) rrp: Rrp,
    count: usize,
    /// Frames dropped per network for a tag that disagrees.
    mismatched: Vec<u64>,
    /// Mismatches to report to the sink, and when each (network, sender) was last reported.
    pending: Vec<NetworkEvent>,
    reported: Vec<(u8, u32, std::time::Instant)>,
    /// Descriptors to wait on (reused).
    fds: Vec<std::os::fd::RawFd>,
    /// Per network, the senders whose address the transport learnt from a frame (discovered
    /// members, multicast): a copy the layer drops as a duplicate teaches a sender's address
    /// only while the network has none for it.
    learned: Vec<Vec<u32>>,
}

impl Networks {
    pub(super) fn new(rrp: Rrp, count: usize) -> Networks {
        Networks {
            rrp,
            count,
            mismatched: vec![0; count],
            pending: Vec::new(),
            reported: Vec::new(),
            fds: Vec::with_capacity(dataplane::wake::WAIT_ANY_MAX),
            learned: vec![Vec::new(); count],
        }
    }

    /// A frame whose tag disagrees: counted, and reported unless this sender was reported
    /// on this network within [`DIAG_INTERVAL`].
    fn mismatch(
        &mut self,
        net: usize,
        addr: std::net::SocketAddr,
        frame: &[u8],
        problem: networks::Mismatch,
    ) {
        self.mismatched[net] += 1;
        let from = match wire::Header::new_checked(frame) {
            Ok(h) => h.sender(),
            Err(_) => crate::types::NodeId(0),
        };
        let now = std::time::Instant::now();
        let key = (net as u8, from.0);
        let full = self.reported.len() >= 64;
        match self.reported.iter_mut().find(|(n, f, _)| (*n, *f) == key) {
            Some((_, _, at)) if now.duration_since(*at) < DIAG_INTERVAL => return,
            Some((_, _, at)) => *at = now,
            None if !full => self.reported.push((key.0, key.1, now)),
            None => {}
        }
        let event = NetworkEvent::Mismatch {
            net: net as u8,
            from,
            addr,
            problem,
            networks: self.count,
        };
        tracing::error!("{event}");
        self.pending.push(event);
    }
}

/// The real clock, as the core's [`Instant`]: nanoseconds since the driver started.
#[derive(Clone, Copy)]
pub(super) struct Clock(pub(super) std::time::Instant);

impl Clock {
    pub(super) fn now(self) -> Instant {
        Instant(u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
}

pub(super) struct Loop<T, S> {
    pub(super) core: Totem,
    /// Network 0's transport (the only one without redundant rings).
    pub(super) transport: T,
    /// Networks 1, 2, 3.
    pub(super) others: Vec<T>,
    /// The redundant-ring layer, with more than one network.
    pub(super) rrp: Option<Networks>,
    pub(super) clock: Clock,
    pub(super) requests: Receiver<Request>,
    pub(super) events: S,
    /// Rate limit of the protection layer's diagnostics.
    pub(super) diag: Diagnostics,
    /// The core's `pauses_detected` when last logged.
    pub(super) pauses_logged: u64,
    pub(super) control: Arc<Control>,
    pub(super) idle_wait: StdDuration,
    pub(super) stats: DriverStats,
    pub(super) status: Arc<Mutex<DriverStatus>>,
    pub(super) status_at: std::time::Instant,
    /// State and ring of the last published status.
    pub(super) status_key: Option<(srp::MembState, RingId)>,
    pub(super) wake: Arc<WakeState>,
    /// The longest sleep the sink's `run` asked for.
    pub(super) sink_wait: Option<StdDuration>,
}

/// Senders the transport does not know, whose frames the core accepted: at most a few per
/// burst, kept without allocating.
type Strangers = [Option<(crate::types::NodeId, std::net::SocketAddr)>; 4];

/// One received frame (after the redundant-ring layer, if any) into the core: a refused
/// frame goes to the diagnostics, an accepted one from a stranger is noted to be learnt.
#[inline]
fn handle_frame(
    core: &mut Totem,
    diag: &mut Diagnostics,
    strangers: &mut Strangers,
    now: Instant,
    src: dataplane::Source,
    frame: &[u8],
) {
    let malformed = core.stats().malformed;
    core.handle_frame(now, frame);
    if let Some(e) = core.last_open_error() {
        diag.refused(src.addr, e, core.key_epoch(), frame);
        return;
    }
    if src.node.is_none()
        && core.stats().malformed == malformed
        && let Ok(h) = wire::Header::new_checked(frame)
        && let Some(slot) = strangers.iter_mut().find(|s| s.is_none())
    {
        *slot = Some((h.sender(), src.addr));
    }
}

impl<T: Transport, S: EventSink> Loop<T, S> {
    pub(super) fn run(mut self) -> DriverStats {
        loop {
            self.stats.iterations += 1;
            if self.control.stop.load(Ordering::Acquire) {
                break;
            }
            if self.control.leave.load(Ordering::Acquire) {
                self.core.leave();
                self.transmit();
                self.forward_events();
                break;
            }
            self.take_submits();
            let received = self.receive();
            self.fire_timers();
            self.log_pauses();
            self.forward_events();
            self.run_sink();
            self.flush();
            self.maybe_publish_status();
            if received == 0 {
                self.wait();
            }
        }
        self.final_flush();
        self.publish_status();
        self.events.closed();
        self.stats.core = self.core.stats().clone();
        self.stats.transport = self.transport_stats();
        self.stats
    }

    /// The transports' counters, summed over the networks.
    pub(super) fn transport_stats(&self) -> dataplane::Stats {
        let mut sum = self.transport.stats();
        for t in &self.others {
            let s = t.stats();
            sum.frames_in += s.frames_in;
            sum.bytes_in += s.bytes_in;
            sum.frames_out += s.frames_out;
            sum.bytes_out += s.bytes_out;
            sum.rx_truncated += s.rx_truncated;
            sum.rx_dropped += s.rx_dropped;
            sum.tx_errors += s.tx_errors;
            sum.unknown_sources += s.unknown_sources;
        }
        sum
    }

    /// Each network's status.
    pub(super) fn network_status(&self) -> Vec<NetworkStatus> {
        let mut out = vec![NetworkStatus {
            transport: self.transport.stats(),
            ..NetworkStatus::default()
        }];
        out.extend(self.others.iter().map(|t| NetworkStatus {
            transport: t.stats(),
            ..NetworkStatus::default()
        }));
        if let Some(n) = &self.rrp {
            for (i, s) in out.iter_mut().enumerate() {
                s.rrp = n.rrp.stats().nets[i].clone();
                s.mismatched = n.mismatched[i];
            }
        }
        out
    }

    /// The operator's `aisctl ring enable|disable`.
    fn set_network(&mut self, net: u8, enabled: bool) -> Result<(), RrpAdminError> {
        let Some(n) = &mut self.rrp else {
            return match (net, enabled) {
                (0, true) => Ok(()),
                (0, false) => Err(RrpAdminError::LastNetwork(0)),
                _ => Err(RrpAdminError::NoSuchNetwork { net, networks: 1 }),
            };
        };
        let before = n.rrp.stats().nets.get(usize::from(net)).map(|s| s.state);
        n.rrp.set_enabled(NetId(net), enabled)?;
        if Some(n.rrp.state(NetId(net))) != before {
            self.events.network(if enabled {
                NetworkEvent::Enabled { net }
            } else {
                NetworkEvent::Disabled { net }
            });
        }
        self.publish_status();
        Ok(())
    }

    /// Forwards the redundant-ring layer's events and the mismatches found.
    fn forward_network_events(&mut self) {
        let Some(n) = &mut self.rrp else {
            return;
        };
        let mut changed = false;
        while let Some(e) = n.rrp.poll_event() {
            self.events.network(e.into());
            changed = true;
        }
        for e in n.pending.drain(..) {
            self.events.network(e);
        }
        if changed {
            self.publish_status();
        }
    }

    fn take_submits(&mut self) {
        for _ in 0..SUBMIT_BATCH {
            let taken = self.requests.try_recv();
            if taken.is_ok() {
                self.wake.pending.fetch_sub(1, Ordering::SeqCst);
            }
            match taken {
                Ok(Request::Core(call)) => {
                    call(&mut self.core);
                    self.transmit();
                }
                Ok(Request::Network {
                    net,
                    enabled,
                    reply,
                }) => {
                    let result = self.set_network(net, enabled);
                    let _ = reply.send(result);
                }
                Ok(Request::Submit(req)) => {
                    let result = self.core.submit(req.prio, req.kind, req.payload);
                    self.stats.submits += 1;
                    match req.reply {
                        // The submitter may have given up; its answer is then moot.
                        Reply::Wait(tx) => {
                            let _ = tx.send(result);
                        }
                        Reply::Call(done) => done(result),
                    }
                    self.transmit();
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
    }

    fn receive(&mut self) -> usize {
        if self.rrp.is_some() {
            let n = self.receive_networks();
            self.forward_network_events();
            return n;
        }
        let mut total = 0;
        for _ in 0..RX_BURSTS {
            let now = self.clock.now();
            let core = &mut self.core;
            let mut strangers: Strangers = [None; 4];
            let diag = &mut self.diag;
            let result = self.transport.recv_burst(|src, frame| {
                handle_frame(core, diag, &mut strangers, now, src, frame);
            });
            for (node, addr) in strangers.into_iter().flatten() {
                if self.transport.learn_member(dataplane::NodeId(node.0), addr) {
                    self.stats.members_learned += 1;
                }
            }
            // The core queues its transmits; send them after the burst, in order.
            self.transmit();
            match result {
                Ok(0) => break,
                Ok(n) => {
                    total += n;
                    self.stats.frames_in += n as u64;
                }
                Err(_) => {
                    self.stats.io_errors += 1;
                    break;
                }
            }
        }
        total
    }

    /// [`Loop::receive`] over every network, through the redundant-ring layer.
    fn receive_networks(&mut self) -> usize {
        let mut total = 0;
        for _ in 0..RX_BURSTS {
            let mut got = 0;
            for i in 0..=self.others.len() {
                let now = self.clock.now();
                let Some(nets) = self.rrp.as_mut() else {
                    return total;
                };
                let count = nets.count;
                let core = &mut self.core;
                let diag = &mut self.diag;
                let mut strangers: Strangers = [None; 4];
                let transport = if i == 0 {
                    &mut self.transport
                } else {
                    &mut self.others[i - 1]
                };
                let result = transport.recv_burst(|src, tagged| {
                    let frame = match networks::untag(tagged, i, count) {
                        Ok(frame) => frame,
                        Err(problem) => {
                            nets.mismatch(i, src.addr, tagged, problem);
                            return;
                        }
                    };
                    if nets.rrp.handle_frame(now, NetId(i as u8), frame) == Verdict::Duplicate {
                        // Multicast networks discover their members: a network whose copies
                        // mostly lose the race would otherwise never learn where to send the
                        // token. A copy teaches an address only while this network has none
                        // for its sender (the first copy went through the core's checks; a
                        // moved sender is learnt from a first copy, as with one network).
                        if src.node.is_none()
                            && let Ok(h) = wire::Header::new_checked(frame)
                            && !nets.learned[i].contains(&h.sender().0)
                            && let Some(slot) = strangers.iter_mut().find(|s| s.is_none())
                        {
                            *slot = Some((h.sender(), src.addr));
                        }
                        return;
                    }
                    handle_frame(core, diag, &mut strangers, now, src, frame);
                });
                for (node, addr) in strangers.into_iter().flatten() {
                    if transport.learn_member(dataplane::NodeId(node.0), addr) {
                        self.stats.members_learned += 1;
                        if !nets.learned[i].contains(&node.0) {
                            nets.learned[i].push(node.0);
                        }
                    }
                }
                self.transmit();
                match result {
                    Ok(n) => {
                        got += n;
                        self.stats.frames_in += n as u64;
                    }
                    Err(_) => self.stats.io_errors += 1,
                }
            }
            total += got;
            if got == 0 {
                break;
            }
        }
        total
    }

    fn fire_timers(&mut self) {
        if let Some(n) = &mut self.rrp {
            let now = self.clock.now();
            if n.rrp.poll_timeout().is_some_and(|at| at <= now) {
                n.rrp.handle_timeout(now);
            }
            self.forward_network_events();
        }
        // A timer handler may set a deadline already past (a prompt call): a few rounds.
        for _ in 0..8 {
            let now = self.clock.now();
            match self.core.poll_timeout() {
                Some(deadline) if deadline <= now => {
                    self.core.handle_timeout(now);
                    self.transmit();
                }
                _ => break,
            }
        }
    }

    /// Queues every pending transmit of the core on the transport. The core's events are
    /// forwarded first: what the core did before sending (a frame stored, a message
    /// delivered) reaches the caller before anyone can react to the frames.
    fn transmit(&mut self) {
        self.forward_events();
        while let Some(t) = self.core.poll_transmit() {
            // A frame for this node itself (the token of a ring of one) never needs the
            // network, whose member table may not even know this node's own address.
            if t.dest == srp::Dest::Node(self.core.node_id()) {
                let now = self.clock.now();
                self.core.handle_frame(now, &t.frame);
                self.stats.frames_looped += 1;
                continue;
            }
            let dest = match t.dest {
                srp::Dest::Ring => dataplane::Dest::Ring,
                srp::Dest::Node(n) => dataplane::Dest::Node(dataplane::NodeId(n.0)),
            };
            let frame = &t.frame;
            if let Some(nets) = &mut self.rrp {
                let count = nets.count;
                for net in nets.rrp.networks_for(frame).iter() {
                    let i = usize::from(net.0);
                    let transport = if i == 0 {
                        &mut self.transport
                    } else {
                        &mut self.others[i - 1]
                    };
                    let tag = networks::tag(i, count);
                    let len = frame.len() + tag.len();
                    let fill = |buf: &mut [u8]| {
                        buf[..frame.len()].copy_from_slice(frame);
                        buf[frame.len()..].copy_from_slice(&tag);
                    };
                    let mut result = transport.send(dest, len, fill);
                    if matches!(result, Err(SendError::TxFull)) {
                        if let Err(e) = transport.flush()
                            && e.kind() != io::ErrorKind::WouldBlock
                        {
                            self.stats.io_errors += 1;
                        }
                        result = transport.send(dest, len, fill);
                    }
                    match result {
                        Ok(()) => self.stats.frames_out += 1,
                        Err(_) => self.stats.send_errors += 1,
                    }
                }
                continue;
            }
            let mut result = self
                .transport
                .send(dest, frame.len(), |buf| buf.copy_from_slice(frame));
            if matches!(result, Err(SendError::TxFull)) {
                self.flush();
                result = self
                    .transport
                    .send(dest, frame.len(), |buf| buf.copy_from_slice(frame));
            }
            match result {
                Ok(()) => self.stats.frames_out += 1,
                Err(_) => self.stats.send_errors += 1,
            }
        }
    }

    /// Flushes (every network); returns false when the kernel's buffer was full and frames
    /// stay queued.
    fn flush(&mut self) -> bool {
        let mut all = match self.transport.flush() {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(_) => {
                self.stats.io_errors += 1;
                true
            }
        };
        for t in &mut self.others {
            match t.flush() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => all = false,
                Err(_) => self.stats.io_errors += 1,
            }
        }
        all
    }

    fn final_flush(&mut self) {
        for _ in 0..FINAL_FLUSH_TRIES {
            if self.flush() {
                return;
            }
            thread::sleep(StdDuration::from_micros(100));
        }
    }

    /// The sink's own work on this thread ([`EventSink::run`]), again while it makes the
    /// core emit events (a few rounds; the rest waits for the next iteration, which then does
    /// not sleep).
    fn run_sink(&mut self) {
        for _ in 0..4 {
            self.wake.poked.store(false, Ordering::SeqCst);
            self.sink_wait = self.events.run(&mut self.core);
            let before = self.stats.events;
            self.transmit();
            if self.stats.events == before {
                return;
            }
        }
        // Events are still waiting for the sink: no sleep before the next call.
        self.wake.poked.store(true, Ordering::SeqCst);
    }

    fn forward_events(&mut self) {
        while let Some(event) = self.core.poll_event() {
            self.stats.events += 1;
            self.events.event(event);
        }
    }

    fn wait(&mut self) {
        let now = self.clock.now();
        // With a waker, submits, leave and stop wake the thread: it may sleep until its next
        // timer (at most WOKEN_IDLE_WAIT). Without one, `idle_wait` bounds a submit's delay.
        let cap = if self.wake.waker.is_some() {
            WOKEN_IDLE_WAIT
        } else {
            self.idle_wait
        };
        let cap = self.sink_wait.map_or(cap, |w| w.min(cap));
        let deadline = match (self.core.poll_timeout(), &self.rrp) {
            (Some(c), Some(n)) => Some(n.rrp.poll_timeout().map_or(c, |r| r.min(c))),
            (c, Some(n)) => c.or(n.rrp.poll_timeout()),
            (c, None) => c,
        };
        let timeout = match deadline {
            Some(deadline) => {
                StdDuration::from_nanos(deadline.saturating_since(now).as_nanos()).min(cap)
            }
            None => cap,
        };
        if timeout.is_zero() {
            return;
        }
        // Announce the sleep, then sleep only if no request is waiting (see `WakeState`).
        self.wake.sleeping.store(true, Ordering::SeqCst);
        if self.wake.pending.load(Ordering::SeqCst) > 0 || self.wake.poked.load(Ordering::SeqCst) {
            self.wake.sleeping.store(false, Ordering::SeqCst);
            return;
        }
        let result = match &mut self.rrp {
            None => self.transport.wait(Some(timeout)),
            Some(n) => {
                n.fds.clear();
                let mut described = self.transport.wait_fds(&mut n.fds);
                for t in &self.others {
                    described &= t.wait_fds(&mut n.fds);
                }
                if described && n.fds.len() < dataplane::wake::WAIT_ANY_MAX {
                    dataplane::wake::wait_any(&n.fds, self.wake.waker.as_ref(), Some(timeout))
                } else {
                    self.transport.wait(Some(timeout.min(MULTI_NET_POLL)))
                }
            }
        };
        self.wake.sleeping.store(false, Ordering::SeqCst);
        if result.is_err() {
            self.stats.io_errors += 1;
            // Do not spin on a broken transport.
            thread::sleep(timeout);
        }
    }
}
