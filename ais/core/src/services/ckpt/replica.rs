//! One node's replicas of every checkpoint, and the pure rules that change them: each
//! update as every node applies it at delivery, and the merge of the copies that meet in a
//! sync.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use totem_dpdk::RingId;

use ais_proto::ckpt::{
    Attributes, CheckpointInfo, CkptId, SECTION_VALID, SectionDescriptor, Status, TIME_END, Update,
    WriteElement,
};
use ais_proto::ipc::AisError;

/// Most section deletions a checkpoint remembers (so a merge does not bring back a section
/// deleted in one partition and unchanged in the other).
pub const MAX_TOMBSTONES: usize = 1024;
/// Most checkpoint deletions a node remembers, for the same reason.
pub const MAX_DELETED: usize = 4096;

/// A 64-bit FNV-1a step: the digest of a checkpoint's history (the same on every node and
/// build; not a defence against forged updates, which Totem's frame authentication is).
pub fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// One section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Its data.
    pub data: Vec<u8>,
    /// When it expires (`TIME_END`: never).
    pub expiration: u64,
    /// Changes to it since it was first created, a deletion and re-creation included
    /// (decides merges: copies share every change before they parted, so the copy with more
    /// changes is the one that changed it since).
    pub changes: u64,
    /// When it last changed (the sender's clock).
    pub last_update: u64,
}

/// One checkpoint's replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Its identity.
    pub id: CkptId,
    /// Its name (still bound to it unless `unlinked`).
    pub name: Bytes,
    /// Its attributes (the retention duration may change).
    pub attrs: Attributes,
    /// Its name was freed; it lives until its last close.
    pub unlinked: bool,
    /// Changes applied since creation.
    pub generation: u64,
    /// Digest of every change applied since creation.
    pub history: u64,
    /// Times its open count fell to 0 (a retention timer is valid for one epoch).
    pub retention_epoch: u64,
    /// Its sections.
    pub sections: BTreeMap<Bytes, Section>,
    /// Sections deleted, with their change count at the deletion (the deletion counted),
    /// oldest first.
    pub tombstones: VecDeque<(Bytes, u64)>,
    /// Opens per node.
    pub opens: BTreeMap<u32, u32>,
    /// Data bytes in its sections (kept as they change: a write checks the limits without
    /// adding every section up).
    pub(crate) used: u64,
}

impl Checkpoint {
    fn new(id: CkptId, name: Bytes, attrs: Attributes, time: u64) -> Checkpoint {
        let mut sections = BTreeMap::new();
        if attrs.max_sections == 1 {
            // The default section exists only in single-section checkpoints.
            sections.insert(
                Bytes::new(),
                Section {
                    data: Vec::new(),
                    expiration: TIME_END,
                    changes: 0,
                    last_update: time,
                },
            );
        }
        let mut h = fnv(FNV_START, &id.seq.to_le_bytes());
        h = fnv(h, &id.rep.to_le_bytes());
        h = fnv(h, &id.n.to_le_bytes());
        Checkpoint {
            id,
            name,
            attrs,
            unlinked: false,
            generation: 0,
            history: h,
            retention_epoch: 0,
            sections,
            tombstones: VecDeque::new(),
            opens: BTreeMap::new(),
            used: 0,
        }
    }

    /// Counts its data bytes again (after it was built from parts).
    pub(crate) fn recount(&mut self) {
        self.used = self.sections.values().map(|s| s.data.len() as u64).sum();
    }

    /// Opens, all nodes together.
    pub fn total_opens(&self) -> u32 {
        self.opens.values().fold(0u32, |a, b| a.saturating_add(*b))
    }

    /// Data bytes in its sections.
    pub fn memory(&self) -> u64 {
        self.used
    }

    /// Its status.
    pub fn status(&self) -> Status {
        Status {
            attributes: self.attrs,
            sections: self.sections.len() as u32,
            memory_used: self.memory(),
        }
    }

    /// A section's descriptor.
    pub fn descriptor(&self, id: &Bytes, s: &Section) -> SectionDescriptor {
        SectionDescriptor {
            id: id.clone(),
            expiration_time: s.expiration,
            size: s.data.len() as u64,
            state: SECTION_VALID,
            last_update: s.last_update,
        }
    }

    /// Its line in `aisctl ckpt ls`.
    pub fn info(&self) -> CheckpointInfo {
        CheckpointInfo {
            name: self.name.clone(),
            status: self.status(),
            opens: self.total_opens(),
            unlinked: self.unlinked,
            id: self.id.to_string(),
        }
    }

    /// A change was applied: one more generation, its digest folded into the history.
    fn changed(&mut self, digest: u64) -> u64 {
        self.generation += 1;
        self.history = fnv(self.history, &digest.to_le_bytes());
        self.generation
    }

    fn bury(&mut self, section: Bytes, changes: u64) {
        self.tombstones.retain(|(s, _)| *s != section);
        self.tombstones.push_back((section, changes));
        while self.tombstones.len() > MAX_TOMBSTONES {
            self.tombstones.pop_front();
        }
    }
}

/// What an applied update produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The sender opened (or created) this checkpoint.
    Opened(CkptId),
    /// A section was created with this id.
    Section(Bytes),
    /// Done.
    Done,
    /// Nothing to do (a stale expiry): not an error, nothing changed.
    Stale,
}

/// Why an update was refused (everywhere alike), and for a write which element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The element of a write that could not be written.
    pub index: Option<u32>,
    /// Why.
    pub error: AisError,
}

fn refuse<T>(error: AisError) -> Result<T, Refused> {
    Err(Refused { index: None, error })
}

/// Every checkpoint this node holds.
#[derive(Debug, Clone, Default)]
pub struct Replicas {
    /// By identity.
    pub by_id: BTreeMap<CkptId, Checkpoint>,
    /// Linked checkpoints by name.
    pub names: BTreeMap<Bytes, CkptId>,
    /// Checkpoints deleted, oldest first.
    pub deleted: VecDeque<CkptId>,
    /// Checkpoints created in the current ring (the next one's number).
    pub created: u32,
}

impl Replicas {
    /// Data bytes in every checkpoint.
    pub fn memory(&self) -> u64 {
        self.by_id.values().map(Checkpoint::memory).sum()
    }

    /// The checkpoint `id` goes.
    pub fn delete(&mut self, id: CkptId) {
        if let Some(c) = self.by_id.remove(&id)
            && self.names.get(&c.name) == Some(&id)
        {
            self.names.remove(&c.name);
        }
        self.deleted.push_back(id);
        while self.deleted.len() > MAX_DELETED {
            self.deleted.pop_front();
        }
    }

    /// Applies `update` from `sender`, sent in `ring` at `time` with the sender's memory
    /// `limit`, whose encoding digests to `digest`: the same outcome at every node that
    /// holds the same replicas.
    pub fn apply(
        &mut self,
        ring: RingId,
        sender: u32,
        limit: u64,
        time: u64,
        digest: u64,
        update: &Update,
    ) -> Result<Applied, Refused> {
        match update {
            Update::Open { name, attributes } => {
                if let Some(&id) = self.names.get(name) {
                    let c = self.by_id.get_mut(&id).expect("names point at checkpoints");
                    if let Some(a) = attributes
                        && !a.same_shape(&c.attrs)
                    {
                        return refuse(AisError::Exist);
                    }
                    *c.opens.entry(sender).or_insert(0) += 1;
                    return Ok(Applied::Opened(id));
                }
                let Some(attrs) = attributes else {
                    return refuse(AisError::NotExist);
                };
                let id = CkptId {
                    seq: ring.seq,
                    rep: ring.rep.0,
                    n: self.created,
                };
                self.created += 1;
                let mut c = Checkpoint::new(id, name.clone(), *attrs, time);
                c.opens.insert(sender, 1);
                self.names.insert(name.clone(), id);
                self.by_id.insert(id, c);
                Ok(Applied::Opened(id))
            }
            Update::Close { id } => {
                let Some(c) = self.by_id.get_mut(id) else {
                    return refuse(AisError::NotExist);
                };
                match c.opens.get_mut(&sender) {
                    Some(n) if *n > 1 => *n -= 1,
                    Some(_) => {
                        c.opens.remove(&sender);
                    }
                    None => return refuse(AisError::BadHandle),
                }
                if c.total_opens() == 0 {
                    if c.unlinked {
                        self.delete(*id);
                    } else {
                        c.retention_epoch += 1;
                    }
                }
                Ok(Applied::Done)
            }
            Update::Unlink { name } => {
                let Some(id) = self.names.remove(name) else {
                    return refuse(AisError::NotExist);
                };
                let c = self.by_id.get_mut(&id).expect("names point at checkpoints");
                c.unlinked = true;
                c.changed(digest);
                if c.total_opens() == 0 {
                    self.delete(id);
                }
                Ok(Applied::Done)
            }
            Update::Retention { id, duration } => {
                let c = self.get(id)?;
                if c.unlinked {
                    return refuse(AisError::BadOperation);
                }
                c.attrs.retention_duration = *duration;
                c.changed(digest);
                Ok(Applied::Done)
            }
            Update::SectionCreate {
                id,
                section,
                expiration_time,
                data,
            } => {
                let memory = self.memory();
                let c = self.get(id)?;
                if c.attrs.max_sections == 1 {
                    return refuse(AisError::Exist);
                }
                if c.sections.len() >= c.attrs.max_sections as usize {
                    return refuse(AisError::NoSpace);
                }
                if let Some(s) = section
                    && (s.is_empty() || s.len() as u64 > c.attrs.max_section_id_size)
                {
                    return refuse(AisError::InvalidParam);
                }
                if data.len() as u64 > c.attrs.max_section_size {
                    return refuse(AisError::InvalidParam);
                }
                if c.memory() + data.len() as u64 > c.attrs.checkpoint_size {
                    return refuse(AisError::NoSpace);
                }
                if memory + data.len() as u64 > limit {
                    return refuse(AisError::NoResources);
                }
                let generation = c.generation + 1;
                let sid = match section {
                    Some(s) => s.clone(),
                    None => {
                        // Generated: unique because one sender is in one partition at a time
                        // and generations only grow along a checkpoint's history.
                        let mut g = sender.to_be_bytes().to_vec();
                        g.extend_from_slice(&generation.to_be_bytes());
                        Bytes::from(g)
                    }
                };
                if c.sections.contains_key(&sid) {
                    return refuse(AisError::Exist);
                }
                c.changed(digest);
                // A section created again continues the count of the one deleted.
                let before = c
                    .tombstones
                    .iter()
                    .find(|(s, _)| *s == sid)
                    .map(|(_, n)| *n);
                c.tombstones.retain(|(s, _)| *s != sid);
                c.sections.insert(
                    sid.clone(),
                    Section {
                        data: data.to_vec(),
                        expiration: *expiration_time,
                        changes: before.unwrap_or(0) + 1,
                        last_update: time,
                    },
                );
                c.used += data.len() as u64;
                Ok(Applied::Section(sid))
            }
            Update::SectionDelete { id, section } => {
                let c = self.get(id)?;
                if section.is_empty() {
                    return refuse(AisError::InvalidParam);
                }
                if !c.sections.contains_key(section) {
                    return refuse(AisError::NotExist);
                }
                let gone = c.sections.remove(section).expect("checked");
                c.used -= gone.data.len() as u64;
                c.changed(digest);
                c.bury(section.clone(), gone.changes + 1);
                Ok(Applied::Done)
            }
            Update::SectionExpiration {
                id,
                section,
                expiration_time,
            } => {
                let c = self.get(id)?;
                if section.is_empty() {
                    return refuse(AisError::InvalidParam);
                }
                if !c.sections.contains_key(section) {
                    return refuse(AisError::NotExist);
                }
                c.changed(digest);
                let s = c.sections.get_mut(section).expect("checked");
                s.expiration = *expiration_time;
                s.changes += 1;
                s.last_update = time;
                Ok(Applied::Done)
            }
            Update::Write { id, elements } => {
                let memory = self.memory();
                let c = self.get(id).map_err(|r| Refused {
                    index: Some(0),
                    ..r
                })?;
                check_writes(c, memory, limit, elements)?;
                c.changed(digest);
                for e in elements {
                    let s = c.sections.get_mut(&e.section).expect("checked");
                    let start = e.offset as usize;
                    let end = start + e.data.len();
                    if s.data.len() < end {
                        c.used += (end - s.data.len()) as u64;
                        s.data.resize(end, 0);
                    }
                    s.data[start..end].copy_from_slice(&e.data);
                    s.changes += 1;
                    s.last_update = time;
                }
                Ok(Applied::Done)
            }
            Update::Overwrite { id, section, data } => {
                let memory = self.memory();
                let c = self.get(id)?;
                let Some(s) = c.sections.get(section) else {
                    return refuse(AisError::NotExist);
                };
                if data.len() as u64 > c.attrs.max_section_size {
                    return refuse(AisError::InvalidParam);
                }
                let old = s.data.len() as u64;
                let new = data.len() as u64;
                if c.memory() - old + new > c.attrs.checkpoint_size {
                    return refuse(AisError::NoSpace);
                }
                if new > old && memory - old + new > limit {
                    return refuse(AisError::NoResources);
                }
                c.changed(digest);
                c.used = c.used - old + new;
                let s = c.sections.get_mut(section).expect("checked");
                s.data = data.to_vec();
                s.changes += 1;
                s.last_update = time;
                Ok(Applied::Done)
            }
            Update::Barrier => Ok(Applied::Done),
            Update::RetentionExpired { id, epoch } => {
                match self.by_id.get(id) {
                    Some(c)
                        if !c.unlinked && c.total_opens() == 0 && c.retention_epoch == *epoch =>
                    {
                        self.delete(*id);
                        Ok(Applied::Done)
                    }
                    // Opened again, or already gone: the timer was stale.
                    _ => Ok(Applied::Stale),
                }
            }
            Update::SectionExpired {
                id,
                section,
                expiration_time,
            } => {
                let Some(c) = self.by_id.get_mut(id) else {
                    return Ok(Applied::Stale);
                };
                match c.sections.get(section) {
                    Some(s) if s.expiration == *expiration_time && !section.is_empty() => {
                        let changes = s.changes + 1;
                        c.used -= s.data.len() as u64;
                        c.sections.remove(section);
                        c.changed(digest);
                        c.bury(section.clone(), changes);
                        Ok(Applied::Done)
                    }
                    _ => Ok(Applied::Stale),
                }
            }
        }
    }

    fn get(&mut self, id: &CkptId) -> Result<&mut Checkpoint, Refused> {
        self.by_id.get_mut(id).ok_or(Refused {
            index: None,
            error: AisError::NotExist,
        })
    }
}

/// Checks every element of a write against the checkpoint as it would be after the
/// elements before it: the first that cannot be written is refused with its index, and
/// then none is.
fn check_writes(
    c: &Checkpoint,
    memory: u64,
    limit: u64,
    elements: &[WriteElement],
) -> Result<(), Refused> {
    let mut sizes: BTreeMap<&Bytes, u64> = BTreeMap::new();
    let mut total = c.memory();
    let mut node_total = memory;
    for (i, e) in elements.iter().enumerate() {
        let fail = |error| {
            Err(Refused {
                index: Some(i as u32),
                error,
            })
        };
        let Some(s) = c.sections.get(&e.section) else {
            return fail(AisError::NotExist);
        };
        if e.data.is_empty() {
            return fail(AisError::InvalidParam);
        }
        let Some(end) = e.offset.checked_add(e.data.len() as u64) else {
            return fail(AisError::InvalidParam);
        };
        if end > c.attrs.max_section_size {
            return fail(AisError::InvalidParam);
        }
        let size = sizes.entry(&e.section).or_insert(s.data.len() as u64);
        if end > *size {
            let grow = end - *size;
            if total + grow > c.attrs.checkpoint_size {
                return fail(AisError::NoSpace);
            }
            if node_total + grow > limit {
                return fail(AisError::NoResources);
            }
            total += grow;
            node_total += grow;
            *size = end;
        }
    }
    Ok(())
}

/// One copy of a checkpoint met in a sync, and the lowest member that holds it.
#[derive(Debug, Clone)]
pub struct Copy {
    /// The member.
    pub holder: u32,
    /// The copy.
    pub ckpt: Checkpoint,
}

/// Deliberate defects of the merge, for the tests that prove the checker catches them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeDefects {
    /// Keep this node's own copy when it has one (members then disagree).
    pub keep_local: bool,
    /// Keep the whole copy with the highest generation, dropping sections changed only in
    /// the others (acknowledged writes are then lost).
    pub whole_copy: bool,
}

/// Merges the copies of one checkpoint (the same identity) that met in a sync: the rule every
/// node applies alike.
///
/// - The copy with the highest generation leads (ties: the lowest holder); its attributes
///   (retention duration) and retention epoch are kept.
/// - Sections: each section from the copy where it has the most changes (copies share every
///   change before they parted, so that is the copy that changed it since; ties: the leading
///   order); a section whose deletion is recorded with at least as many changes stays
///   deleted.
/// - Unlinked in any copy: unlinked.
/// - The generation is the highest; the history digests the copies' histories in order.
///
/// `me`: this node (only for the `keep_local` defect).
pub fn merge(mut copies: Vec<Copy>, me: u32, defects: MergeDefects) -> Checkpoint {
    assert!(!copies.is_empty(), "a merge of no copies");
    copies.sort_by(|a, b| {
        b.ckpt
            .generation
            .cmp(&a.ckpt.generation)
            .then(a.holder.cmp(&b.holder))
    });
    if defects.keep_local
        && let Some(i) = copies.iter().position(|c| c.holder == me)
    {
        let local = copies.remove(i);
        copies.insert(0, local);
    }
    if copies.len() == 1 || defects.whole_copy {
        let mut c = copies.swap_remove(0).ckpt;
        c.opens.clear();
        return c;
    }
    let lead = &copies[0].ckpt;
    let mut out = Checkpoint {
        used: 0,
        id: lead.id,
        name: lead.name.clone(),
        attrs: lead.attrs,
        unlinked: copies.iter().any(|c| c.ckpt.unlinked),
        generation: lead.generation,
        history: FNV_START,
        retention_epoch: copies
            .iter()
            .map(|c| c.ckpt.retention_epoch)
            .max()
            .unwrap_or(0),
        sections: BTreeMap::new(),
        tombstones: VecDeque::new(),
        opens: BTreeMap::new(),
    };
    let mut histories: Vec<u64> = copies.iter().map(|c| c.ckpt.history).collect();
    histories.sort_unstable();
    histories.dedup();
    for h in histories {
        out.history = fnv(out.history, &h.to_le_bytes());
    }
    // Deletions: the latest of each section.
    let mut buried: BTreeMap<Bytes, u64> = BTreeMap::new();
    for c in &copies {
        for (s, g) in &c.ckpt.tombstones {
            let e = buried.entry(s.clone()).or_insert(*g);
            *e = (*e).max(*g);
        }
    }
    for c in &copies {
        for (sid, s) in &c.ckpt.sections {
            if buried.get(sid).is_some_and(|g| *g >= s.changes) {
                continue;
            }
            match out.sections.get(sid) {
                Some(have) if have.changes >= s.changes => {}
                _ => {
                    out.sections.insert(sid.clone(), s.clone());
                }
            }
        }
    }
    let mut tombs: Vec<(u64, Bytes)> = buried.into_iter().map(|(s, g)| (g, s)).collect();
    tombs.sort();
    let skip = tombs.len().saturating_sub(MAX_TOMBSTONES);
    out.tombstones = tombs.into_iter().skip(skip).map(|(g, s)| (s, g)).collect();
    out.recount();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ais_proto::ckpt::WR_ALL_REPLICAS;
    use totem_dpdk::NodeId;

    fn attrs(max_sections: u32) -> Attributes {
        Attributes {
            creation_flags: WR_ALL_REPLICAS,
            checkpoint_size: 100,
            retention_duration: TIME_END,
            max_sections,
            max_section_size: 40,
            max_section_id_size: 8,
        }
    }

    fn ring() -> RingId {
        RingId {
            rep: NodeId(1),
            seq: 4,
        }
    }

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    fn apply(r: &mut Replicas, sender: u32, u: Update) -> Result<Applied, Refused> {
        r.apply(ring(), sender, 1000, 5, 1, &u)
    }

    fn open(r: &mut Replicas, max_sections: u32) -> CkptId {
        let Ok(Applied::Opened(id)) = apply(
            r,
            1,
            Update::Open {
                name: b("ck"),
                attributes: Some(attrs(max_sections)),
            },
        ) else {
            panic!("not created")
        };
        id
    }

    fn create(r: &mut Replicas, id: CkptId, s: &'static str, data: &'static str) {
        apply(
            r,
            1,
            Update::SectionCreate {
                id,
                section: Some(b(s)),
                expiration_time: TIME_END,
                data: b(data),
            },
        )
        .expect("created");
    }

    fn err(r: Result<Applied, Refused>) -> AisError {
        r.expect_err("refused").error
    }

    #[test]
    fn open_creates_once_and_checks_the_attributes_of_later_creates() {
        let mut r = Replicas::default();
        let id = open(&mut r, 4);
        let again = apply(
            &mut r,
            2,
            Update::Open {
                name: b("ck"),
                attributes: Some(Attributes {
                    retention_duration: 5,
                    ..attrs(4)
                }),
            },
        );
        assert_eq!(again, Ok(Applied::Opened(id)));
        assert_eq!(r.by_id[&id].total_opens(), 2);
        let other = Update::Open {
            name: b("ck"),
            attributes: Some(attrs(5)),
        };
        assert_eq!(err(apply(&mut r, 2, other)), AisError::Exist);
        let missing = Update::Open {
            name: b("nope"),
            attributes: None,
        };
        assert_eq!(err(apply(&mut r, 2, missing)), AisError::NotExist);
        // A single-section checkpoint has the default section, and no other.
        let mut r = Replicas::default();
        let id = open(&mut r, 1);
        assert!(r.by_id[&id].sections.contains_key(&Bytes::new()));
        let create = Update::SectionCreate {
            id,
            section: Some(b("s")),
            expiration_time: TIME_END,
            data: Bytes::new(),
        };
        assert_eq!(err(apply(&mut r, 1, create)), AisError::Exist);
    }

    #[test]
    fn section_limits_give_the_specified_errors() {
        let mut r = Replicas::default();
        let id = open(&mut r, 2);
        create(&mut r, id, "a", "x");
        let mk = |s: &'static str, data: &'static str| Update::SectionCreate {
            id,
            section: Some(b(s)),
            expiration_time: TIME_END,
            data: b(data),
        };
        assert_eq!(err(apply(&mut r, 1, mk("a", ""))), AisError::Exist);
        assert_eq!(
            err(apply(&mut r, 1, mk("longer-than-8", ""))),
            AisError::InvalidParam
        );
        create(&mut r, id, "b", "");
        assert_eq!(err(apply(&mut r, 1, mk("c", ""))), AisError::NoSpace);
        let delete = |s: &'static str| Update::SectionDelete { id, section: b(s) };
        assert_eq!(err(apply(&mut r, 1, delete(""))), AisError::InvalidParam);
        assert_eq!(err(apply(&mut r, 1, delete("z"))), AisError::NotExist);
        assert_eq!(apply(&mut r, 1, delete("b")), Ok(Applied::Done));
        assert_eq!(r.by_id[&id].tombstones.len(), 1);
    }

    #[test]
    fn a_write_applies_every_element_or_names_the_first_that_fails() {
        let mut r = Replicas::default();
        let id = open(&mut r, 3);
        create(&mut r, id, "a", "0123");
        create(&mut r, id, "b", "");
        let el = |s: &'static str, offset: u64, data: &'static str| WriteElement {
            section: b(s),
            offset,
            data: b(data),
        };
        let w = |elements| Update::Write { id, elements };
        let before = r.by_id[&id].clone();
        let bad = apply(&mut r, 1, w(vec![el("a", 2, "xy"), el("zz", 0, "q")]));
        assert_eq!(
            bad,
            Err(Refused {
                index: Some(1),
                error: AisError::NotExist
            })
        );
        assert_eq!(r.by_id[&id], before, "a refused write changed nothing");
        let empty = apply(&mut r, 1, w(vec![el("a", 0, "")]));
        assert_eq!(empty.unwrap_err().error, AisError::InvalidParam);
        // Past the largest section size.
        let big = apply(&mut r, 1, w(vec![el("b", 39, "xy")]));
        assert_eq!(big.unwrap_err().error, AisError::InvalidParam);
        // Past the end extends the section (a gap reads as zeros).
        assert_eq!(
            apply(&mut r, 1, w(vec![el("a", 2, "xy"), el("b", 2, "q")])),
            Ok(Applied::Done)
        );
        assert_eq!(r.by_id[&id].sections[&b("a")].data, b"01xy");
        assert_eq!(r.by_id[&id].sections[&b("b")].data, b"\0\0q");
        // The checkpoint size (100) counts every section: 3 × 40 does not fit.
        create(&mut r, id, "c", "");
        let fill = "0123456789012345678901234567890123456789";
        let too_much = apply(
            &mut r,
            1,
            w(vec![el("a", 0, fill), el("b", 0, fill), el("c", 0, fill)]),
        );
        assert_eq!(
            too_much,
            Err(Refused {
                index: Some(2),
                error: AisError::NoSpace
            })
        );
        // The sender's memory limit.
        let limited = r.apply(ring(), 1, 10, 5, 1, &w(vec![el("c", 0, fill)]));
        assert_eq!(limited.unwrap_err().error, AisError::NoResources);
    }

    #[test]
    fn unlink_frees_the_name_and_the_last_close_deletes() {
        let mut r = Replicas::default();
        let id = open(&mut r, 2);
        let unlink = Update::Unlink { name: b("ck") };
        assert_eq!(apply(&mut r, 1, unlink.clone()), Ok(Applied::Done));
        assert_eq!(err(apply(&mut r, 1, unlink)), AisError::NotExist);
        assert!(r.by_id.contains_key(&id), "lives while open");
        // A new create makes another checkpoint under the name.
        let again = open(&mut r, 2);
        assert_ne!(again, id);
        let retention = Update::Retention { id, duration: 1 };
        assert_eq!(err(apply(&mut r, 1, retention)), AisError::BadOperation);
        assert_eq!(apply(&mut r, 1, Update::Close { id }), Ok(Applied::Done));
        assert!(!r.by_id.contains_key(&id));
        assert_eq!(r.deleted.back(), Some(&id));
        assert_eq!(r.names[&b("ck")], again);
    }

    #[test]
    fn retention_expiry_deletes_only_a_checkpoint_still_closed_since_the_same_close() {
        let mut r = Replicas::default();
        let id = open(&mut r, 2);
        apply(&mut r, 1, Update::Close { id }).unwrap();
        let epoch = r.by_id[&id].retention_epoch;
        assert_eq!(epoch, 1);
        let stale = Update::RetentionExpired { id, epoch: 0 };
        assert_eq!(apply(&mut r, 1, stale), Ok(Applied::Stale));
        let open_again = Update::Open {
            name: b("ck"),
            attributes: None,
        };
        apply(&mut r, 2, open_again).unwrap();
        let expired = Update::RetentionExpired { id, epoch };
        assert_eq!(apply(&mut r, 1, expired.clone()), Ok(Applied::Stale));
        apply(&mut r, 2, Update::Close { id }).unwrap();
        let expired = Update::RetentionExpired { id, epoch: 2 };
        assert_eq!(apply(&mut r, 1, expired), Ok(Applied::Done));
        assert!(r.names.is_empty() && r.by_id.is_empty());
    }

    fn copy(holder: u32, c: &Checkpoint) -> Copy {
        Copy {
            holder,
            ckpt: c.clone(),
        }
    }

    /// Two partitions changed different sections and one section both: every section
    /// changed on one side only survives; the one changed on both comes from the side with
    /// the later change; a deletion on one side of a section unchanged on the other sticks.
    #[test]
    fn a_merge_keeps_each_section_from_the_side_that_changed_it_last() {
        let mut r = Replicas::default();
        let id = open(&mut r, 8);
        for s in ["both", "gone", "left", "right"] {
            create(&mut r, id, s, "base");
        }
        let base = r.clone();
        let ow = |s: &'static str, d: &'static str| Update::Overwrite {
            id,
            section: b(s),
            data: b(d),
        };
        let mut left = base.clone();
        apply(&mut left, 1, ow("left", "L")).unwrap();
        apply(&mut left, 1, ow("both", "L")).unwrap();
        apply(&mut left, 1, ow("both", "L2")).unwrap();
        let mut right = base.clone();
        apply(&mut right, 2, ow("right", "R")).unwrap();
        apply(&mut right, 2, ow("both", "R")).unwrap();
        let del = Update::SectionDelete {
            id,
            section: b("gone"),
        };
        apply(&mut right, 2, del).unwrap();
        let m = merge(
            vec![copy(2, &right.by_id[&id]), copy(1, &left.by_id[&id])],
            1,
            MergeDefects::default(),
        );
        let data = |s: &'static str| m.sections.get(&b(s)).map(|s| s.data.clone());
        assert_eq!(data("left"), Some(b"L".to_vec()));
        assert_eq!(data("right"), Some(b"R".to_vec()));
        assert_eq!(data("both"), Some(b"L2".to_vec()), "the later change wins");
        assert_eq!(data("gone"), None, "the deletion sticks");
        // Every node gets the same result whatever order it met the copies in.
        let again = merge(
            vec![copy(1, &left.by_id[&id]), copy(2, &right.by_id[&id])],
            2,
            MergeDefects::default(),
        );
        assert_eq!(m, again);
        // The whole-copy defect loses the section changed only on the other side.
        let whole = merge(
            vec![copy(1, &left.by_id[&id]), copy(2, &right.by_id[&id])],
            2,
            MergeDefects {
                whole_copy: true,
                ..MergeDefects::default()
            },
        );
        assert_eq!(whole.sections[&b("right")].data, b"base");
    }
}
