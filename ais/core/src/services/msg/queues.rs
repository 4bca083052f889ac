//! The replicated queues of MSG: what every node holds, how a delivered update changes it
//! ([`Queues::apply`], the same outcome at every node), and how copies of a queue from two
//! partitions are merged after a heal ([`merge`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use totem_dpdk::RingId;

use ais_proto::ipc::AisError;
use ais_proto::msg::{
    Attributes, GroupCopy, Limits, MsgKey, OPEN_EMPTY, Opener, POLICY_LOCAL_BEST_QUEUE,
    POLICY_LOCAL_ROUND_ROBIN, POLICY_ROUND_ROBIN, PRIORITIES, QUEUE_PERSISTENT, QueueId, Status,
    Stored, Update, Usage,
};

/// Most keys of taken messages a queue remembers (the merge drops a message another
/// partition took only while its key is remembered).
pub const MAX_TAKEN: usize = 4096;
/// Most deleted queues remembered (a copy of one of them from another partition is dropped).
pub const MAX_DELETED: usize = 1024;

/// FNV-1a over `bytes`, from `h`.
pub fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One priority area of a queue: its messages, oldest first, and their bytes, counted with
/// every change so that the size and memory limits are checked without walking the messages
/// (reads go through `Deref` to the messages; changes only through these methods).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Area {
    messages: VecDeque<Stored>,
    bytes: u64,
}

impl Area {
    /// Bytes of its messages' data.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends `m`.
    pub fn push_back(&mut self, m: Stored) {
        self.bytes += m.body.data.len() as u64;
        self.messages.push_back(m);
    }

    /// Removes the oldest message.
    pub fn pop_front(&mut self) -> Option<Stored> {
        let m = self.messages.pop_front()?;
        self.bytes -= m.body.data.len() as u64;
        Some(m)
    }

    /// Keeps the messages `keep` accepts, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&Stored) -> bool) {
        self.messages.retain(|m| keep(m));
        self.bytes = self.messages.iter().map(|m| m.body.data.len() as u64).sum();
    }

    /// Removes every message.
    pub fn clear(&mut self) {
        self.messages.clear();
        self.bytes = 0;
    }

    /// Removes and returns every message, oldest first.
    pub fn take_all(&mut self) -> VecDeque<Stored> {
        self.bytes = 0;
        std::mem::take(&mut self.messages)
    }
}

impl std::ops::Deref for Area {
    type Target = VecDeque<Stored>;

    fn deref(&self) -> &VecDeque<Stored> {
        &self.messages
    }
}

impl IntoIterator for Area {
    type Item = Stored;
    type IntoIter = std::collections::vec_deque::IntoIter<Stored>;

    fn into_iter(self) -> Self::IntoIter {
        self.messages.into_iter()
    }
}

impl<'a> IntoIterator for &'a Area {
    type Item = &'a Stored;
    type IntoIter = std::collections::vec_deque::Iter<'a, Stored>;

    fn into_iter(self) -> Self::IntoIter {
        self.messages.iter()
    }
}

impl FromIterator<Stored> for Area {
    fn from_iter<I: IntoIterator<Item = Stored>>(iter: I) -> Area {
        let mut a = Area::default();
        for m in iter {
            a.push_back(m);
        }
        a
    }
}

/// One queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// Its identity.
    pub id: QueueId,
    /// Its name.
    pub name: Bytes,
    /// Its creation attributes.
    pub attrs: Attributes,
    /// Unlinked: it goes at its close.
    pub unlinked: bool,
    /// Its opener, if open.
    pub opener: Option<Opener>,
    /// The messages of each priority area, oldest first.
    pub areas: [Area; PRIORITIES],
    /// Keys of the messages taken (most recent last).
    pub taken: VecDeque<MsgKey>,
    /// Closes so far (the retention timer's epoch).
    pub close_epoch: u64,
    /// When it was last closed (the closer's clock).
    pub close_time: u64,
    /// Digest of every change applied to it.
    pub history: u64,
}

impl Queue {
    fn new(id: QueueId, name: Bytes, attrs: Attributes) -> Queue {
        Queue {
            id,
            name,
            attrs,
            unlinked: false,
            opener: None,
            areas: Default::default(),
            taken: VecDeque::new(),
            close_epoch: 0,
            close_time: 0,
            history: fnv(0xcbf2_9ce4_8422_2325, &id.seq.to_le_bytes()),
        }
    }

    /// Bytes held by priority area `p`.
    pub fn used(&self, p: usize) -> u64 {
        self.areas[p].bytes()
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        (0..PRIORITIES).map(|p| self.used(p)).sum()
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.areas.iter().map(|a| a.len()).sum()
    }

    /// Holds no message.
    pub fn is_empty(&self) -> bool {
        self.areas.iter().all(|a| a.is_empty())
    }

    /// Persistent (lives until unlinked).
    pub fn persistent(&self) -> bool {
        self.attrs.creation_flags & QUEUE_PERSISTENT != 0
    }

    /// Its status.
    pub fn status(&self) -> Status {
        let mut usage = [Usage::default(); PRIORITIES];
        for (p, u) in usage.iter_mut().enumerate() {
            *u = Usage {
                size: self.attrs.size[p],
                used: self.used(p),
                messages: self.areas[p].len() as u32,
            };
        }
        Status {
            creation_flags: self.attrs.creation_flags,
            retention_time: self.attrs.retention_time,
            close_time: if self.opener.is_some() {
                0
            } else {
                self.close_time
            },
            open: self.opener.is_some(),
            usage,
        }
    }

    fn remember_taken(&mut self, key: MsgKey) {
        self.taken.push_back(key);
        while self.taken.len() > MAX_TAKEN {
            self.taken.pop_front();
        }
    }
}

/// A queue group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Its identity.
    pub id: QueueId,
    /// Its name.
    pub name: Bytes,
    /// `POLICY_*`.
    pub policy: u8,
    /// Member queue names, in insertion order.
    pub members: Vec<Bytes>,
    /// Membership changes since creation.
    pub generation: u64,
    /// Round-robin position.
    pub cursor: u32,
    /// Local round-robin position of each sending node.
    pub local: BTreeMap<u32, u32>,
}

impl Group {
    /// As sent in a sync.
    pub fn copy(&self) -> GroupCopy {
        GroupCopy {
            id: self.id,
            name: self.name.clone(),
            policy: self.policy,
            members: self.members.clone(),
            generation: self.generation,
            cursor: self.cursor,
            local: self.local.iter().map(|(n, c)| (*n, *c)).collect(),
        }
    }

    /// From a sync.
    pub fn from_copy(c: GroupCopy) -> Group {
        Group {
            id: c.id,
            name: c.name,
            policy: c.policy,
            members: c.members,
            generation: c.generation,
            cursor: c.cursor,
            local: c.local.into_iter().collect(),
        }
    }
}

/// How a send to a group chose its queue: the group's members as they were, each with the
/// node of its opener and the room in the message's priority area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupChoice {
    /// The group.
    pub group: QueueId,
    /// Its policy.
    pub policy: u8,
    /// `(queue name, opener node, free bytes)` of each member, in order.
    pub members: Vec<(Bytes, Option<u32>, u64)>,
    /// The member chosen.
    pub chosen: usize,
    /// The sending node.
    pub sender: u32,
}

/// What an applied update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The queue was opened (created if new).
    Opened(QueueId),
    /// A message went into the queue, whose opener (if any) is this.
    Sent {
        /// The queue.
        queue: QueueId,
        /// Its opener.
        opener: Option<Opener>,
        /// Through a group: how it was chosen.
        via: Option<GroupChoice>,
    },
    /// The head message was taken.
    Taken(Stored),
    /// The queue holds no message to take.
    Empty,
    /// The queue is gone.
    Deleted(QueueId),
    /// Done.
    Done,
}

/// Every queue a node holds.
#[derive(Debug, Clone, Default)]
pub struct Queues {
    /// By identity.
    pub by_id: BTreeMap<QueueId, Queue>,
    /// Linked names.
    pub names: BTreeMap<Bytes, QueueId>,
    /// Queues deleted (most recent last).
    pub deleted: VecDeque<QueueId>,
    /// Queues created in the current ring (the next one's number).
    pub created: u32,
    /// The ring `created` counts in.
    pub created_in: (u32, u64),
    /// Queue groups, by name.
    pub groups: BTreeMap<Bytes, Group>,
    /// Groups deleted (most recent last).
    pub groups_deleted: VecDeque<QueueId>,
    /// A deliberate defect (tests of the checker): a send to a group goes to its first
    /// candidate whatever the policy.
    #[doc(hidden)]
    pub group_first_defect: bool,
}

impl Queues {
    /// Message bytes of all queues.
    pub fn memory(&self) -> u64 {
        self.by_id.values().map(Queue::bytes).sum()
    }

    /// The linked queue named `name`.
    pub fn named(&self, name: &[u8]) -> Option<&Queue> {
        self.names.get(name).and_then(|id| self.by_id.get(id))
    }

    fn next_id(&mut self, ring: RingId) -> QueueId {
        let here = (ring.rep.0, ring.seq);
        if self.created_in != here {
            self.created_in = here;
            self.created = 0;
        }
        let id = QueueId {
            seq: ring.seq,
            rep: ring.rep.0,
            n: self.created,
        };
        self.created += 1;
        id
    }

    /// The name leaves every group it is a member of.
    pub fn leave_groups(&mut self, name: &[u8]) {
        for g in self.groups.values_mut() {
            if let Some(i) = g.members.iter().position(|m| m == name) {
                g.members.remove(i);
                g.generation += 1;
            }
        }
    }

    fn delete(&mut self, id: QueueId) {
        if let Some(q) = self.by_id.remove(&id)
            && self.names.get(&q.name) == Some(&id)
        {
            self.names.remove(&q.name);
            self.leave_groups(&q.name);
        }
        self.deleted.push_back(id);
        while self.deleted.len() > MAX_DELETED {
            self.deleted.pop_front();
        }
    }

    /// Applies `update` from `sender` (its `key` names a message it sends), delivered in
    /// `ring`.
    ///
    /// # Errors
    /// The specified error of the call, the same at every node.
    pub fn apply(
        &mut self,
        ring: RingId,
        sender: u32,
        limits: Limits,
        time: u64,
        key: MsgKey,
        update: &Update,
    ) -> Result<Applied, AisError> {
        let digest = fnv(
            fnv(0xcbf2_9ce4_8422_2325, &key.seq.to_le_bytes()),
            &[
                key.node.to_le_bytes(),
                key.rep.to_le_bytes(),
                (key.tag as u32).to_le_bytes(),
                ((key.tag >> 32) as u32).to_le_bytes(),
            ]
            .concat(),
        );
        let touched = match update {
            Update::Open {
                name,
                attributes,
                flags,
                conn,
            } => {
                let opener = Opener {
                    node: sender,
                    conn: *conn,
                    flags: *flags,
                };
                if self.groups.contains_key(name) {
                    return Err(AisError::Exist);
                }
                if let Some(&id) = self.names.get(name) {
                    let q = self.by_id.get_mut(&id).ok_or(AisError::Library)?;
                    if attributes.is_some_and(|a| a != q.attrs) {
                        return Err(AisError::Exist);
                    }
                    if q.opener.is_some() {
                        return Err(AisError::Busy);
                    }
                    q.opener = Some(opener);
                    if flags & OPEN_EMPTY != 0 {
                        for a in &mut q.areas {
                            a.clear();
                        }
                    }
                    id
                } else {
                    let Some(a) = attributes else {
                        return Err(AisError::NotExist);
                    };
                    if self.by_id.len() >= limits.max_queues as usize
                        || a.size.iter().fold(0u64, |s, x| s.saturating_add(*x))
                            > limits.max_queue_size
                    {
                        return Err(AisError::NoResources);
                    }
                    let id = self.next_id(ring);
                    let mut q = Queue::new(id, name.clone(), *a);
                    q.opener = Some(opener);
                    self.by_id.insert(id, q);
                    self.names.insert(name.clone(), id);
                    id
                }
            }
            Update::Close { id, conn } => {
                let q = self.by_id.get_mut(id).ok_or(AisError::BadHandle)?;
                if q.opener.is_none_or(|o| o.node != sender || o.conn != *conn) {
                    return Err(AisError::BadHandle);
                }
                q.opener = None;
                q.close_epoch += 1;
                q.close_time = time;
                if q.unlinked {
                    self.delete(*id);
                    return Ok(Applied::Deleted(*id));
                }
                *id
            }
            Update::Unlink { name } => {
                let id = self.names.remove(name).ok_or(AisError::NotExist)?;
                self.leave_groups(name);
                let q = self.by_id.get_mut(&id).ok_or(AisError::Library)?;
                q.unlinked = true;
                if q.opener.is_none() {
                    self.delete(id);
                    return Ok(Applied::Deleted(id));
                }
                id
            }
            Update::Send {
                destination,
                message,
            }
            | Update::SendReceive {
                destination,
                message,
                ..
            } => {
                let p = usize::from(message.priority);
                if p >= PRIORITIES {
                    return Err(AisError::InvalidParam);
                }
                let (id, via) = match self.names.get(destination) {
                    Some(id) => (*id, None),
                    None => {
                        let choice = self.choose(destination, p, sender)?;
                        let name = &choice.members[choice.chosen].0;
                        (
                            *self.names.get(name).ok_or(AisError::Library)?,
                            Some(choice),
                        )
                    }
                };
                let size = message.data.len() as u64;
                if self.memory().saturating_add(size) > limits.max_memory {
                    return Err(AisError::NoResources);
                }
                let q = self.by_id.get_mut(&id).ok_or(AisError::Library)?;
                if q.used(p).saturating_add(size) > q.attrs.size[p] {
                    return Err(AisError::QueueFull);
                }
                q.areas[p].push_back(Stored {
                    key,
                    send_time: time,
                    body: message.clone(),
                });
                q.history = fnv(q.history, &digest.to_le_bytes());
                let opener = q.opener;
                if let Some(c) = &via
                    && let Some(g) = self.groups.get_mut(destination)
                {
                    match c.policy {
                        POLICY_ROUND_ROBIN => g.cursor = g.cursor.wrapping_add(1),
                        POLICY_LOCAL_ROUND_ROBIN => {
                            let l = g.local.entry(sender).or_insert(0);
                            *l = l.wrapping_add(1);
                        }
                        _ => {}
                    }
                }
                return Ok(Applied::Sent {
                    queue: id,
                    opener,
                    via,
                });
            }
            Update::Take { id, conn } => {
                let q = self.by_id.get_mut(id).ok_or(AisError::BadHandle)?;
                if q.opener.is_none_or(|o| o.node != sender || o.conn != *conn) {
                    return Err(AisError::BadHandle);
                }
                let Some(m) = q.areas.iter_mut().find_map(Area::pop_front) else {
                    return Ok(Applied::Empty);
                };
                q.remember_taken(m.key);
                q.history = fnv(q.history, &digest.to_le_bytes());
                return Ok(Applied::Taken(m));
            }
            Update::RetentionExpired { id, epoch } => {
                let q = self.by_id.get(id).ok_or(AisError::NotExist)?;
                if q.opener.is_some() || q.persistent() || q.close_epoch != *epoch {
                    return Err(AisError::BadOperation);
                }
                self.delete(*id);
                return Ok(Applied::Deleted(*id));
            }
            Update::GroupCreate { name, policy } => {
                if self.groups.contains_key(name) || self.names.contains_key(name) {
                    return Err(AisError::Exist);
                }
                if !(POLICY_ROUND_ROBIN..=POLICY_LOCAL_BEST_QUEUE).contains(policy) {
                    return Err(AisError::InvalidParam);
                }
                if self.groups.len() >= limits.max_groups as usize {
                    return Err(AisError::NoResources);
                }
                let id = self.next_id(ring);
                self.groups.insert(
                    name.clone(),
                    Group {
                        id,
                        name: name.clone(),
                        policy: *policy,
                        members: Vec::new(),
                        generation: 0,
                        cursor: 0,
                        local: BTreeMap::new(),
                    },
                );
                return Ok(Applied::Done);
            }
            Update::GroupInsert { group, queue } => {
                if !self.names.contains_key(queue) {
                    return Err(AisError::NotExist);
                }
                let g = self.groups.get_mut(group).ok_or(AisError::NotExist)?;
                if g.members.contains(queue) {
                    return Err(AisError::Exist);
                }
                g.members.push(queue.clone());
                g.generation += 1;
                return Ok(Applied::Done);
            }
            Update::GroupRemove { group, queue } => {
                let g = self.groups.get_mut(group).ok_or(AisError::NotExist)?;
                let i = g
                    .members
                    .iter()
                    .position(|m| m == queue)
                    .ok_or(AisError::NotExist)?;
                g.members.remove(i);
                g.generation += 1;
                return Ok(Applied::Done);
            }
            Update::GroupDelete { group } => {
                let g = self.groups.remove(group).ok_or(AisError::NotExist)?;
                self.groups_deleted.push_back(g.id);
                while self.groups_deleted.len() > MAX_DELETED {
                    self.groups_deleted.pop_front();
                }
                return Ok(Applied::Done);
            }
            // Replies change no queue: the service keeps the awaited replies.
            Update::Reply { .. } | Update::ReplyEnd { .. } | Update::ReplyAwait { .. } => {
                return Ok(Applied::Done);
            }
        };
        if let Some(q) = self.by_id.get_mut(&touched) {
            q.history = fnv(q.history, &digest.to_le_bytes());
        }
        match update {
            Update::Open { .. } => Ok(Applied::Opened(touched)),
            _ => Ok(Applied::Done),
        }
    }
}

impl Queues {
    /// The member of group `name` a message of priority `p` from `sender` goes to.
    fn choose(&self, name: &[u8], p: usize, sender: u32) -> Result<GroupChoice, AisError> {
        let g = self.groups.get(name).ok_or(AisError::NotExist)?;
        let members: Vec<(Bytes, Option<u32>, u64)> = g
            .members
            .iter()
            .filter_map(|m| self.named(m))
            .map(|q| {
                (
                    q.name.clone(),
                    q.opener.map(|o| o.node),
                    q.attrs.size[p].saturating_sub(q.used(p)),
                )
            })
            .collect();
        let local: Vec<usize> = (0..members.len())
            .filter(|i| members[*i].1 == Some(sender))
            .collect();
        let chosen = match g.policy {
            POLICY_ROUND_ROBIN if !members.is_empty() => g.cursor as usize % members.len(),
            POLICY_LOCAL_ROUND_ROBIN if !local.is_empty() => {
                let c = g.local.get(&sender).copied().unwrap_or(0) as usize;
                local[c % local.len()]
            }
            POLICY_LOCAL_BEST_QUEUE if !local.is_empty() => {
                let mut best = local[0];
                for &i in &local[1..] {
                    if members[i].2 > members[best].2 {
                        best = i;
                    }
                }
                best
            }
            _ => return Err(AisError::QueueNotAvailable),
        };
        let chosen = match (self.group_first_defect, g.policy) {
            (true, POLICY_ROUND_ROBIN) => 0,
            (true, _) => local[0],
            (false, _) => chosen,
        };
        Ok(GroupChoice {
            group: g.id,
            policy: g.policy,
            members,
            chosen,
            sender,
        })
    }
}

/// Deliberate defects of the merge, for the tests that prove the checker catches them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeDefects {
    /// Keep the lowest holder's copy whole: the messages sent in other partitions are lost.
    pub first_copy_only: bool,
    /// Ignore the other copies' taken keys: a message taken in one partition comes back.
    pub forget_taken: bool,
}

/// Merges copies of one queue, `(holder, copy)` ordered by holder: the lowest holder's
/// messages in their order, then each other copy's messages it lacks, in that copy's order;
/// a message any copy took is dropped; unlinked if any copy is; the latest close. The opener
/// is decided by the caller.
pub fn merge(copies: Vec<(u32, Queue)>, defects: MergeDefects) -> Queue {
    let mut it = copies.into_iter();
    let (_, mut base) = it.next().expect("at least one copy");
    let mut histories = vec![base.history];
    let mut seen: BTreeSet<MsgKey> = base.areas.iter().flatten().map(|m| m.key).collect();
    let mut taken: BTreeSet<MsgKey> = base.taken.iter().copied().collect();
    for (_, other) in it {
        histories.push(other.history);
        base.unlinked |= other.unlinked;
        base.close_epoch = base.close_epoch.max(other.close_epoch);
        base.close_time = base.close_time.max(other.close_time);
        if defects.first_copy_only {
            continue;
        }
        for k in &other.taken {
            if !defects.forget_taken && taken.insert(*k) {
                base.taken.push_back(*k);
            }
        }
        for (p, area) in other.areas.into_iter().enumerate() {
            for m in area {
                if seen.insert(m.key) {
                    base.areas[p].push_back(m);
                }
            }
        }
    }
    for a in &mut base.areas {
        a.retain(|m| !taken.contains(&m.key));
    }
    while base.taken.len() > MAX_TAKEN {
        base.taken.pop_front();
    }
    histories.sort_unstable();
    base.history = histories
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, x| fnv(h, &x.to_le_bytes()));
    base
}

/// Moves the messages of `from` (a newer queue of the same name) into `into`, skipping those
/// it holds or took.
pub fn absorb(into: &mut Queue, from: &mut Queue) {
    let have: BTreeSet<MsgKey> = into
        .areas
        .iter()
        .flatten()
        .map(|m| m.key)
        .chain(into.taken.iter().copied())
        .collect();
    for (p, area) in from.areas.iter_mut().enumerate() {
        for m in area.take_all() {
            if !have.contains(&m.key) {
                into.areas[p].push_back(m);
            }
        }
    }
    into.history = fnv(into.history, &from.history.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use ais_proto::msg::MessageBody;
    use totem_dpdk::NodeId;

    fn ring() -> RingId {
        RingId {
            rep: NodeId(1),
            seq: 4,
        }
    }

    #[test]
    fn an_areas_byte_count_follows_every_change() {
        let stored = |tag: u64, len: usize| Stored {
            key: key(tag),
            send_time: 0,
            body: MessageBody {
                data: Bytes::from(vec![7u8; len]),
                ..MessageBody::default()
            },
        };
        let recount = |a: &Area| a.iter().map(|m| m.body.data.len() as u64).sum::<u64>();
        let mut a = Area::default();
        // A fixed pseudo-random walk over the changes (xorshift, seeded).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for tag in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 10 {
                0..=5 => a.push_back(stored(tag, (x >> 8) as usize % 300)),
                6 | 7 => {
                    let before = a.bytes();
                    if let Some(m) = a.pop_front() {
                        assert_eq!(a.bytes(), before - m.body.data.len() as u64);
                    }
                }
                8 => a.retain(|m| m.key.tag % 3 != x % 3),
                _ if x % 50 == 9 => {
                    let all = a.take_all();
                    assert_eq!(a.bytes(), 0);
                    a = all.into_iter().collect();
                }
                _ if x % 70 == 19 => a.clear(),
                _ => {}
            }
            assert_eq!(a.bytes(), recount(&a), "after step {tag}");
        }
    }

    fn limits() -> Limits {
        Limits {
            max_queues: 2,
            max_queue_size: 100,
            max_memory: 60,
            max_groups: 1,
        }
    }

    fn attrs() -> Attributes {
        Attributes {
            creation_flags: 0,
            size: [10, 10, 10, 10],
            retention_time: 5,
        }
    }

    fn key(tag: u64) -> MsgKey {
        MsgKey {
            seq: 4,
            rep: 1,
            node: 1,
            tag,
        }
    }

    fn send(p: u8, data: &'static str) -> Update {
        Update::Send {
            destination: Bytes::from_static(b"q"),
            message: MessageBody {
                priority: p,
                data: Bytes::from_static(data.as_bytes()),
                ..MessageBody::default()
            },
        }
    }

    fn open(qs: &mut Queues, conn: u64) -> Result<Applied, AisError> {
        qs.apply(
            ring(),
            1,
            limits(),
            0,
            key(0),
            &Update::Open {
                name: Bytes::from_static(b"q"),
                attributes: Some(attrs()),
                flags: 0,
                conn,
            },
        )
    }

    #[test]
    fn takes_follow_priority_then_arrival_and_areas_have_limits() {
        let mut qs = Queues::default();
        let Ok(Applied::Opened(id)) = open(&mut qs, 1) else {
            panic!()
        };
        assert_eq!(open(&mut qs, 2), Err(AisError::Busy));
        let ap = |qs: &mut Queues, t, u: &Update| qs.apply(ring(), 1, limits(), 0, key(t), u);
        assert!(ap(&mut qs, 1, &send(3, "low")).is_ok());
        assert!(ap(&mut qs, 2, &send(1, "a")).is_ok());
        assert!(ap(&mut qs, 3, &send(1, "b")).is_ok());
        assert_eq!(
            ap(&mut qs, 4, &send(3, "toolong!")),
            Err(AisError::QueueFull)
        );
        assert_eq!(ap(&mut qs, 4, &send(4, "x")), Err(AisError::InvalidParam));
        let take = Update::Take { id, conn: 1 };
        let mut got = Vec::new();
        while let Ok(Applied::Taken(m)) = ap(&mut qs, 9, &take) {
            got.push(m.body.data);
        }
        assert_eq!(got, ["a", "b", "low"]);
        assert_eq!(ap(&mut qs, 9, &take), Ok(Applied::Empty));
        // Only the opener takes.
        assert_eq!(
            ap(&mut qs, 9, &Update::Take { id, conn: 2 }),
            Err(AisError::BadHandle)
        );
    }

    #[test]
    fn a_merge_keeps_every_message_once_and_drops_what_either_side_took() {
        let mut qs = Queues::default();
        let Ok(Applied::Opened(id)) = open(&mut qs, 1) else {
            panic!()
        };
        let ap = |qs: &mut Queues, t, u: &Update| qs.apply(ring(), 1, limits(), 0, key(t), u);
        ap(&mut qs, 1, &send(0, "m1")).unwrap();
        ap(&mut qs, 2, &send(0, "m2")).unwrap();
        let mut a = qs.clone();
        let mut b = qs;
        let take = Update::Take { id, conn: 1 };
        // A takes m1 and gets m3; B gets m4.
        ap(&mut a, 3, &take).unwrap();
        ap(&mut a, 4, &send(0, "m3")).unwrap();
        ap(&mut b, 5, &send(0, "m4")).unwrap();
        let qa = a.by_id[&id].clone();
        let qb = b.by_id[&id].clone();
        let m = merge(
            vec![(1, qa.clone()), (2, qb.clone())],
            MergeDefects::default(),
        );
        let data: Vec<_> = m.areas[0].iter().map(|m| m.body.data.clone()).collect();
        assert_eq!(data, ["m2", "m3", "m4"]);
        let lossy = merge(
            vec![(1, qa.clone()), (2, qb.clone())],
            MergeDefects {
                first_copy_only: true,
                ..MergeDefects::default()
            },
        );
        assert_eq!(lossy.areas[0].len(), 2);
        let dup = merge(
            vec![(2, qb), (1, qa)],
            MergeDefects {
                forget_taken: true,
                ..MergeDefects::default()
            },
        );
        assert!(dup.areas[0].iter().any(|m| m.body.data == "m1"));
    }

    #[test]
    fn limits_of_the_sender_decide() {
        let mut qs = Queues::default();
        open(&mut qs, 1).unwrap();
        let big = Attributes {
            size: [60, 60, 0, 0],
            ..attrs()
        };
        let o = |qs: &mut Queues, name: &'static [u8], a| {
            qs.apply(
                ring(),
                1,
                limits(),
                0,
                key(0),
                &Update::Open {
                    name: Bytes::from_static(name),
                    attributes: Some(a),
                    flags: 0,
                    conn: 1,
                },
            )
        };
        assert_eq!(o(&mut qs, b"big", big), Err(AisError::NoResources));
        assert!(o(&mut qs, b"second", attrs()).is_ok());
        assert_eq!(o(&mut qs, b"third", attrs()), Err(AisError::NoResources));
        // The same name with other attributes.
        let other = Attributes {
            retention_time: 9,
            ..attrs()
        };
        assert_eq!(o(&mut qs, b"q", other), Err(AisError::Exist));
    }
}
