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
use super::{
    Control, DriverStats, DriverStatus, EventSink, RX_BURSTS, Reply, Request, SUBMIT_BATCH,
    WOKEN_IDLE_WAIT, WakeState,
};
use crate::srp::{self, Totem};
use crate::time::Instant;
use crate::types::RingId;
use crate::wire;

/// Attempts to push out the frames left in the transport when the driver stops or leaves.
const FINAL_FLUSH_TRIES: usize = 10;

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
    pub(super) transport: T,
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
            self.flush();
            self.forward_events();
            self.maybe_publish_status();
            if received == 0 {
                self.wait();
            }
        }
        self.final_flush();
        self.publish_status();
        self.events.closed();
        self.stats.core = self.core.stats().clone();
        self.stats.transport = self.transport.stats();
        self.stats
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
        let mut total = 0;
        for _ in 0..RX_BURSTS {
            let now = self.clock.now();
            let core = &mut self.core;
            // Senders the transport does not know, whose frames the core accepted: at most a
            // few per burst, kept without allocating.
            let mut strangers = [None; 4];
            let diag = &mut self.diag;
            let result = self.transport.recv_burst(|src, frame| {
                let malformed = core.stats().malformed;
                core.handle_frame(now, frame);
                if let Some(e) = core.last_open_error() {
                    diag.refused(src.addr, e, core.key_epoch());
                    return;
                }
                if src.node.is_none()
                    && core.stats().malformed == malformed
                    && let Ok(h) = wire::Header::new_checked(frame)
                    && let Some(slot) = strangers.iter_mut().find(|s| s.is_none())
                {
                    *slot = Some((h.sender(), src.addr));
                }
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

    fn fire_timers(&mut self) {
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

    /// Flushes; returns false when the kernel's buffer was full and frames stay queued.
    fn flush(&mut self) -> bool {
        match self.transport.flush() {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(_) => {
                self.stats.io_errors += 1;
                true
            }
        }
    }

    fn final_flush(&mut self) {
        for _ in 0..FINAL_FLUSH_TRIES {
            if self.flush() {
                return;
            }
            thread::sleep(StdDuration::from_micros(100));
        }
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
        let timeout = match self.core.poll_timeout() {
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
        if self.wake.pending.load(Ordering::SeqCst) > 0 {
            self.wake.sleeping.store(false, Ordering::SeqCst);
            return;
        }
        let result = self.transport.wait(Some(timeout));
        self.wake.sleeping.store(false, Ordering::SeqCst);
        if result.is_err() {
            self.stats.io_errors += 1;
            // Do not spin on a broken transport.
            thread::sleep(timeout);
        }
    }
}
