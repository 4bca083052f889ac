//! The workload: the simulator's own random messages, or an application per node ([`App`])
//! above its Totem core.

use bytes::Bytes;
use rand::{Rng, RngCore};
use totem_dpdk::srp::{Event, SubmitError};
use totem_dpdk::{DeliveryKind, Duration, Instant, MsgId, NodeId, Priority};

use super::{Action, Sim, Sizes};
use crate::record;

/// A message an [`App`] submits.
#[derive(Debug, Clone)]
pub struct AppSubmit {
    /// The application's tag, given back with the result.
    pub tag: u64,
    /// Totem priority.
    pub prio: Priority,
    /// Agreed or safe.
    pub kind: DeliveryKind,
    /// The payload.
    pub payload: Bytes,
}

/// An application on one simulated node, above its Totem core. The simulator calls it, in
/// virtual time, with every Totem event of the node ([`App::event`]) and at the times it
/// asks for ([`App::next_wake`], [`App::wake`]); after every call it takes the
/// application's submissions ([`App::poll_submit`]) into the node's core at once and reports
/// each result ([`App::submitted`]). A paused node's application is paused with it.
pub trait App {
    /// A Totem event of this node.
    fn event(&mut self, now: Instant, event: &Event);
    /// The wake-up asked for with [`App::next_wake`] came; `rng` is the run's random source.
    fn wake(&mut self, now: Instant, rng: &mut dyn RngCore);
    /// The next message to submit, if any.
    fn poll_submit(&mut self) -> Option<AppSubmit>;
    /// The next call on the node's Totem core (the executive's key changes), if any. The
    /// simulator takes calls and submissions alternately until neither is left, calls first:
    /// an application that orders a call after a submission returns `None` here until that
    /// submission was taken.
    fn poll_call(&mut self) -> Option<CoreCall> {
        None
    }
    /// What the core said to a submission.
    fn submitted(&mut self, now: Instant, tag: u64, result: Result<MsgId, SubmitError>);
    /// When to call [`App::wake`] next.
    fn next_wake(&self) -> Option<Instant>;
    /// Nothing left to do: the run may end once every node's application is idle.
    fn is_idle(&self) -> bool;
}

/// A call an [`App`] makes on its node's Totem core.
pub type CoreCall = Box<dyn FnOnce(&mut totem_dpdk::srp::Totem)>;

/// Builds a node's application at its start and at every restart: node id and incarnation
/// (0 for the first start, then one more at every restart).
pub type AppFactory = Box<dyn FnMut(NodeId, u32) -> Box<dyn App>>;

impl Sim {
    /// Takes the application's submissions into the node's core, then schedules its
    /// wake-up. Returns whether anything was submitted.
    pub(super) fn app_io(&mut self, node: usize) -> bool {
        let now = self.now;
        let slot = &mut self.nodes[node];
        let (Some(app), Some(totem)) = (slot.app.as_mut(), slot.totem.as_mut()) else {
            return false;
        };
        let mut any = false;
        loop {
            while let Some(call) = app.poll_call() {
                call(totem);
                any = true;
            }
            let Some(sub) = app.poll_submit() else {
                break;
            };
            let result = totem.submit(sub.prio, sub.kind, sub.payload.clone());
            match &result {
                Ok(id) => {
                    slot.next_msg_no = id.no + 1;
                    self.out.sent += 1;
                    self.out
                        .log
                        .push(record::send(now, *id, &sub.payload, sub.kind, sub.prio));
                }
                Err(_) => self.out.backpressure += 1,
            }
            any = true;
            app.submitted(now, sub.tag, result);
        }
        let wake = app.next_wake().map(|at| at.max(now));
        if let Some(at) = wake
            && slot.app_wake_at != Some(at)
        {
            slot.app_wake_at = Some(at);
            self.push(at, Action::AppWake { node });
        }
        any
    }

    pub(super) fn on_app_wake(&mut self, node: usize) {
        if self.nodes[node].app_wake_at != Some(self.now) {
            return; // superseded
        }
        if self.nodes[node].paused.is_some() {
            // Frozen: it wakes when the process resumes.
            self.nodes[node].app_wake_at = None;
            return;
        }
        self.nodes[node].app_wake_at = None;
        let now = self.now;
        let Some(app) = self.nodes[node].app.as_mut() else {
            return;
        };
        app.wake(now, &mut self.rng);
        if self.app_io(node) {
            self.drain(node);
        }
    }

    pub(super) fn on_submit(&mut self, node: usize) {
        if self.nodes[node].remaining == 0 {
            return; // done, or crashed (a crash cancels the rest)
        }
        if self.nodes[node].totem.is_none() || self.nodes[node].paused.is_some() {
            // Not started yet, or frozen: the application submits once it runs.
            self.push(
                self.now + Duration::from_millis(10),
                Action::Submit { node },
            );
            return;
        }
        let mtu = self.schedule.max_frame_size;
        let size = match (self.schedule.sizes, self.rng.random_range(0..100)) {
            (Sizes::Fixed(size), _) => size,
            (Sizes::Large, _) => self.rng.random_range(4 * mtu..=70_000),
            (Sizes::Mixed, 0..50) => self.rng.random_range(1..=64),
            (Sizes::Mixed, 50..80) => self.rng.random_range(65..=mtu),
            (Sizes::Mixed, 80..97) => self.rng.random_range(mtu..=4 * mtu),
            (Sizes::Mixed, _) => self.rng.random_range(4 * mtu..=70_000),
        };
        let mut payload = vec![0u8; size];
        self.rng.fill_bytes(&mut payload);
        let prio = Priority::new(self.rng.random_range(0..4)).expect("0..4");
        let kind = if self.rng.random_bool(0.3) {
            DeliveryKind::Safe
        } else {
            DeliveryKind::Agreed
        };
        let payload = Bytes::from(payload);
        let totem = self.nodes[node].totem.as_mut().expect("checked above");
        match totem.submit(prio, kind, payload.clone()) {
            Ok(id) => {
                self.nodes[node].remaining -= 1;
                self.nodes[node].next_msg_no = id.no + 1;
                self.out.sent += 1;
                self.out
                    .log
                    .push(record::send(self.now, id, &payload, kind, prio));
                self.drain(node);
            }
            Err(_) => {
                // Backpressure: the application waits for flow control to clear. If the core
                // never reports it, the run stalls and fails its liveness check.
                self.out.backpressure += 1;
                self.nodes[node].waiting += 1;
                self.drain(node);
            }
        }
    }
}
