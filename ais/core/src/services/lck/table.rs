//! The lock table every node holds, and what each change does to it: a pure state machine
//! applied at delivery ([`Table::apply`]), the grant algorithm ([`Table::grant`]) and the
//! waits-for graph ([`Table::closes_cycle`]).
//!
//! **Grant rule** (FIFO with PR batching): a resource's queue is served from its head; the
//! head is granted when it conflicts with no granted lock, and so on until a head that
//! conflicts. A new request is granted at once only when the queue is empty and it conflicts
//! with no granted lock; otherwise it queues behind the others, so a PR never overtakes a
//! waiting EX (writers do not starve) and consecutive PRs at the head are granted together.
//!
//! **Waits-for graph**: the vertices are holders (one resource handle of one process); a
//! queued request of `h` gives the edges `h → g` for every holder `g` of a conflicting
//! granted lock and of a conflicting request queued before it (FIFO: it is served after
//! them). Orphan locks have no holder and give no edge. A request whose edges would close a
//! cycle (one reaching back to its own holder, itself included) is answered
//! `SA_LCK_LOCK_DEADLOCK` and not queued. Only a new queued request adds edges (a grant
//! turns "queued before" edges into "granted" edges to the same holder, releases and
//! withdrawals remove edges), so the table never holds a cycle.

use std::collections::{BTreeMap, BTreeSet};

use ais_proto::codec::Writer;
use ais_proto::ipc::AisError;
use ais_proto::lck::{
    Holder, LOCK_NO_QUEUE, LOCK_ORPHAN, LockEntry, LockId, LockStatus, Mode, Update,
};
use bytes::Bytes;

/// A lock, granted or queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// Its identity.
    pub id: LockId,
    /// Its holder; `None`: an orphan (its holder went, it was taken with `LOCK_ORPHAN`).
    pub holder: Option<Holder>,
    /// Its mode.
    pub mode: Mode,
    /// The `LOCK_*` flags it was requested with.
    pub flags: u32,
    /// Its requester's waiter signal.
    pub waiter_signal: u64,
}

impl Lock {
    fn entry(&self) -> LockEntry {
        LockEntry {
            id: self.id,
            holder: self.holder,
            mode: self.mode,
            flags: self.flags,
            waiter_signal: self.waiter_signal,
        }
    }

    /// The lock sync sent.
    pub fn from_entry(e: &LockEntry) -> Lock {
        Lock {
            id: e.id,
            holder: e.holder,
            mode: e.mode,
            flags: e.flags,
            waiter_signal: e.waiter_signal,
        }
    }
}

/// One resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    /// Its open handles.
    pub opens: BTreeSet<Holder>,
    /// Granted locks, oldest first.
    pub granted: Vec<Lock>,
    /// Queued requests, first served first.
    pub queued: Vec<Lock>,
}

impl Resource {
    fn is_unused(&self) -> bool {
        self.opens.is_empty() && self.granted.is_empty() && self.queued.is_empty()
    }
}

/// Deliberate defects, for the tests that prove the LCK checker catches a broken service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableDefects {
    /// Never answer DEADLOCK: requests closing a cycle are queued.
    pub no_deadlock_detection: bool,
    /// Answer DEADLOCK to every request that would wait for another holder.
    pub false_deadlock: bool,
    /// Grant EX beside PR (a wrong conflict test).
    pub ex_beside_pr: bool,
}

/// A waiter callback to send: `lock` (granted, of `holder`) blocks a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaiterCall {
    /// The held lock.
    pub lock: LockId,
    /// Its holder.
    pub holder: Holder,
    /// Its mode.
    pub mode_held: Mode,
    /// The waiter's mode.
    pub mode_requested: Mode,
    /// The waiter's signal.
    pub waiter_signal: u64,
}

/// What a change did, for its requester's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The holder was opened.
    Opened,
    /// The holder was closed.
    Closed,
    /// The lock request was granted at once.
    Granted,
    /// The lock request was queued.
    Queued,
    /// The lock request was decided otherwise (not granted, not queued).
    Status(LockStatus),
    /// The lock was released.
    Unlocked,
    /// The queued request was withdrawn (its timeout).
    Withdrawn,
    /// The orphans were purged.
    Purged,
    /// An operator released the lock.
    Released,
    /// Refused; nothing changed.
    Refused(AisError),
}

/// The effects of one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The answer to its requester.
    pub outcome: Outcome,
    /// Locks granted by it (the request itself when granted at once, and requests served
    /// from queues), in grant order.
    pub granted: Vec<LockId>,
    /// Queued requests it removed without a grant (their holder closed).
    pub dropped: Vec<LockId>,
    /// Waiter callbacks to send.
    pub waiters: Vec<WaiterCall>,
}

impl Applied {
    fn just(outcome: Outcome) -> Applied {
        Applied {
            outcome,
            granted: Vec::new(),
            dropped: Vec::new(),
            waiters: Vec::new(),
        }
    }
}

/// The cluster's locks, identical at every member after each delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Resources by name.
    pub resources: BTreeMap<Bytes, Resource>,
    /// Every open holder and its resource.
    pub holders: BTreeMap<Holder, Bytes>,
    /// Defects (tests of the checker).
    pub defects: TableDefects,
}

/// The limits a change is applied with (the sender's; every node applies the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most resources.
    pub max_resources: u32,
    /// Most locks, granted and queued.
    pub max_locks: u32,
}

impl Table {
    /// Locks, granted and queued, in all resources.
    pub fn lock_count(&self) -> usize {
        self.resources
            .values()
            .map(|r| r.granted.len() + r.queued.len())
            .sum()
    }

    /// Where lock `id` is: its resource and whether it is granted.
    pub fn find(&self, id: &LockId) -> Option<(&Bytes, &Lock, bool)> {
        for (name, r) in &self.resources {
            if let Some(l) = r.granted.iter().find(|l| l.id == *id) {
                return Some((name, l, true));
            }
            if let Some(l) = r.queued.iter().find(|l| l.id == *id) {
                return Some((name, l, false));
            }
        }
        None
    }

    fn conflicts(&self, a: Mode, b: Mode) -> bool {
        if self.defects.ex_beside_pr && a != b {
            return false;
        }
        a.conflicts(b)
    }

    /// Applies `update`, sent by `sender`, in a ring that is `quorate` or not.
    pub fn apply(
        &mut self,
        sender: u32,
        quorate: bool,
        limits: Limits,
        update: &Update,
    ) -> Applied {
        match update {
            Update::Open {
                holder,
                name,
                create,
            } => {
                if holder.node != sender || self.holders.contains_key(holder) {
                    return Applied::just(Outcome::Refused(AisError::InvalidParam));
                }
                if !self.resources.contains_key(name) {
                    if !create {
                        return Applied::just(Outcome::Refused(AisError::NotExist));
                    }
                    if self.resources.len() >= limits.max_resources as usize {
                        return Applied::just(Outcome::Refused(AisError::NoResources));
                    }
                }
                self.resources
                    .entry(name.clone())
                    .or_default()
                    .opens
                    .insert(*holder);
                self.holders.insert(*holder, name.clone());
                Applied::just(Outcome::Opened)
            }
            Update::Close { holder } => {
                if holder.node != sender {
                    return Applied::just(Outcome::Refused(AisError::InvalidParam));
                }
                let Some(name) = self.holders.get(holder).cloned() else {
                    return Applied::just(Outcome::Refused(AisError::BadHandle));
                };
                let mut applied = Applied::just(Outcome::Closed);
                let gone = BTreeSet::from([*holder]);
                self.release(&name, &gone, &mut applied);
                self.grant(&name, quorate, &mut applied);
                self.forget_if_unused(&name);
                applied
            }
            Update::Lock {
                lock,
                holder,
                mode,
                flags,
                waiter_signal,
            } => self.lock(
                sender,
                quorate,
                limits,
                *lock,
                *holder,
                *mode,
                *flags,
                *waiter_signal,
            ),
            Update::Unlock { lock } => {
                if lock.node != sender {
                    return Applied::just(Outcome::Refused(AisError::InvalidParam));
                }
                let Some((name, _, true)) = self.find(lock) else {
                    return Applied::just(Outcome::Refused(AisError::NotExist));
                };
                let name = name.clone();
                let r = self.resources.get_mut(&name).expect("found");
                r.granted.retain(|l| l.id != *lock);
                let mut applied = Applied::just(Outcome::Unlocked);
                self.grant(&name, quorate, &mut applied);
                self.forget_if_unused(&name);
                applied
            }
            Update::Withdraw { lock } => {
                if lock.node != sender {
                    return Applied::just(Outcome::Refused(AisError::InvalidParam));
                }
                let Some((name, _, false)) = self.find(lock) else {
                    // Granted first (the grant wins), or gone.
                    return Applied::just(Outcome::Refused(AisError::NotExist));
                };
                let name = name.clone();
                let r = self.resources.get_mut(&name).expect("found");
                r.queued.retain(|l| l.id != *lock);
                let mut applied = Applied::just(Outcome::Withdrawn);
                // Requests behind it may be grantable now.
                self.grant(&name, quorate, &mut applied);
                self.forget_if_unused(&name);
                applied
            }
            Update::Purge { holder } => {
                if holder.node != sender {
                    return Applied::just(Outcome::Refused(AisError::InvalidParam));
                }
                let Some(name) = self.holders.get(holder).cloned() else {
                    return Applied::just(Outcome::Refused(AisError::BadHandle));
                };
                let r = self
                    .resources
                    .get_mut(&name)
                    .expect("an open holder's resource");
                r.granted.retain(|l| l.holder.is_some());
                let mut applied = Applied::just(Outcome::Purged);
                self.grant(&name, quorate, &mut applied);
                applied
            }
            Update::Release { by, name, lock } => {
                if by.node != sender {
                    return Applied::just(Outcome::Refused(AisError::InvalidParam));
                }
                if !quorate {
                    // The table is frozen without quorum (and a minority's change would be
                    // lost to the quorate table at the merge anyway).
                    return Applied::just(Outcome::Refused(AisError::TryAgain));
                }
                match self.find(lock) {
                    Some((n, _, true)) if n == name => {}
                    Some((n, _, false)) if n == name => {
                        return Applied::just(Outcome::Refused(AisError::BadOperation));
                    }
                    _ => return Applied::just(Outcome::Refused(AisError::NotExist)),
                }
                let r = self.resources.get_mut(name).expect("found");
                r.granted.retain(|l| l.id != *lock);
                let mut applied = Applied::just(Outcome::Released);
                self.grant(name, quorate, &mut applied);
                self.forget_if_unused(name);
                applied
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn lock(
        &mut self,
        sender: u32,
        quorate: bool,
        limits: Limits,
        id: LockId,
        holder: Holder,
        mode: Mode,
        flags: u32,
        waiter_signal: u64,
    ) -> Applied {
        if holder.node != sender || id.node != sender || self.find(&id).is_some() {
            return Applied::just(Outcome::Refused(AisError::InvalidParam));
        }
        let Some(name) = self.holders.get(&holder).cloned() else {
            // Closed while the request travelled.
            return Applied::just(Outcome::Refused(AisError::BadHandle));
        };
        if !quorate {
            return Applied::just(Outcome::Refused(AisError::TryAgain));
        }
        let lock = Lock {
            id,
            holder: Some(holder),
            mode,
            flags,
            waiter_signal,
        };
        let full = self.lock_count() >= limits.max_locks as usize;
        let r = &self.resources[&name];
        if mode == Mode::Ex
            && r.granted
                .iter()
                .any(|l| l.holder == Some(holder) && l.mode == Mode::Ex)
        {
            return Applied::just(Outcome::Status(LockStatus::DuplicateEx));
        }
        let blockers: Vec<&Lock> = r
            .granted
            .iter()
            .filter(|l| self.conflicts(l.mode, mode))
            .collect();
        if blockers.is_empty() && r.queued.is_empty() {
            if full {
                return Applied::just(Outcome::Status(LockStatus::NoMore));
            }
            let r = self.resources.get_mut(&name).expect("exists");
            r.granted.push(lock);
            let mut applied = Applied::just(Outcome::Granted);
            applied.granted.push(id);
            return applied;
        }
        let waiters: Vec<WaiterCall> = blockers
            .iter()
            .filter_map(|l| {
                Some(WaiterCall {
                    lock: l.id,
                    holder: l.holder?,
                    mode_held: l.mode,
                    mode_requested: mode,
                    waiter_signal,
                })
            })
            .collect();
        if blockers.iter().any(|l| l.holder.is_none()) {
            return Applied::just(Outcome::Status(LockStatus::Orphaned));
        }
        if flags & LOCK_NO_QUEUE != 0 {
            let mut applied = Applied::just(Outcome::Status(LockStatus::NotQueued));
            applied.waiters = waiters;
            return applied;
        }
        let waits = !blockers.is_empty() || r.queued.iter().any(|q| self.conflicts(q.mode, mode));
        if self.defects.false_deadlock && waits {
            return Applied::just(Outcome::Status(LockStatus::Deadlock));
        }
        if !self.defects.no_deadlock_detection && self.closes_cycle(&name, holder, mode) {
            return Applied::just(Outcome::Status(LockStatus::Deadlock));
        }
        if full {
            return Applied::just(Outcome::Status(LockStatus::NoMore));
        }
        self.resources
            .get_mut(&name)
            .expect("exists")
            .queued
            .push(lock);
        let mut applied = Applied::just(Outcome::Queued);
        applied.waiters = waiters;
        applied
    }

    /// The holders `h` waits for through its queued requests.
    pub fn waits_for(&self, h: &Holder) -> BTreeSet<Holder> {
        let mut out = BTreeSet::new();
        let Some(name) = self.holders.get(h) else {
            return out;
        };
        let r = &self.resources[name];
        for (i, q) in r.queued.iter().enumerate() {
            if q.holder != Some(*h) {
                continue;
            }
            out.extend(self.blocking(r, i, q.mode));
        }
        out
    }

    /// Holders of the granted locks and of the requests queued before position `pos` that
    /// conflict with `mode`.
    fn blocking(&self, r: &Resource, pos: usize, mode: Mode) -> Vec<Holder> {
        r.granted
            .iter()
            .chain(r.queued.iter().take(pos))
            .filter(|l| self.conflicts(l.mode, mode))
            .filter_map(|l| l.holder)
            .collect()
    }

    /// Whether a request of `holder` for `mode` on `name`, queued at the end, would close a
    /// cycle of the waits-for graph.
    pub fn closes_cycle(&self, name: &Bytes, holder: Holder, mode: Mode) -> bool {
        let r = &self.resources[name];
        let mut stack = self.blocking(r, r.queued.len(), mode);
        let mut seen = BTreeSet::new();
        while let Some(h) = stack.pop() {
            if h == holder {
                return true;
            }
            if seen.insert(h) {
                stack.extend(self.waits_for(&h));
            }
        }
        false
    }

    /// Serves `name`'s queue from its head (the grant rule), when `quorate`.
    pub fn grant(&mut self, name: &Bytes, quorate: bool, applied: &mut Applied) {
        if !quorate {
            return;
        }
        let defects = self.defects;
        let Some(r) = self.resources.get_mut(name) else {
            return;
        };
        while let Some(head) = r.queued.first() {
            let conflicts = |a: Mode, b: Mode| {
                if defects.ex_beside_pr && a != b {
                    false
                } else {
                    a.conflicts(b)
                }
            };
            if r.granted.iter().any(|l| conflicts(l.mode, head.mode)) {
                break;
            }
            let l = r.queued.remove(0);
            applied.granted.push(l.id);
            r.granted.push(l);
        }
    }

    /// Releases the locks of the holders in `gone` on `name` (orphaning granted ones taken
    /// with `LOCK_ORPHAN`), withdraws their queued requests and closes them.
    pub fn release(&mut self, name: &Bytes, gone: &BTreeSet<Holder>, applied: &mut Applied) {
        let Some(r) = self.resources.get_mut(name) else {
            return;
        };
        let is_gone = |l: &Lock| l.holder.is_some_and(|h| gone.contains(&h));
        r.granted.retain_mut(|l| {
            if !is_gone(l) {
                return true;
            }
            if l.flags & LOCK_ORPHAN != 0 {
                l.holder = None;
                return true;
            }
            false
        });
        r.queued.retain(|l| {
            if is_gone(l) {
                applied.dropped.push(l.id);
                false
            } else {
                true
            }
        });
        for h in gone {
            r.opens.remove(h);
            self.holders.remove(h);
        }
    }

    fn forget_if_unused(&mut self, name: &Bytes) {
        if self.resources.get(name).is_some_and(Resource::is_unused) {
            self.resources.remove(name);
        }
    }

    /// Drops every resource nothing uses.
    pub fn forget_unused(&mut self) {
        self.resources.retain(|_, r| !r.is_unused());
    }

    /// A digest of the locks (not the opens, which sync rebuilds): equal tables, equal
    /// digests.
    pub fn digest(&self) -> u64 {
        let mut w = Writer::with_capacity(256);
        for (name, r) in &self.resources {
            if r.granted.is_empty() && r.queued.is_empty() {
                continue;
            }
            w.short_bytes(name);
            for list in [&r.granted, &r.queued] {
                w.u32(list.len() as u32);
                for l in list {
                    let e = l.entry();
                    w.u32(e.id.node).u64(e.id.epoch).u64(e.id.n);
                    match e.holder {
                        Some(h) => w.u8(1).u32(h.node).u64(h.epoch).u64(h.handle),
                        None => w.u8(0),
                    };
                    w.u8(e.mode.code()).u32(e.flags).u64(e.waiter_signal);
                }
            }
        }
        fnv(&w.finish())
    }

    /// The resources that have locks, as sync sends them.
    pub fn entries(&self) -> Vec<(Bytes, Vec<LockEntry>, Vec<LockEntry>)> {
        self.resources
            .iter()
            .filter(|(_, r)| !r.granted.is_empty() || !r.queued.is_empty())
            .map(|(n, r)| {
                (
                    n.clone(),
                    r.granted.iter().map(Lock::entry).collect(),
                    r.queued.iter().map(Lock::entry).collect(),
                )
            })
            .collect()
    }
}

/// FNV-1a, 64 bits.
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
