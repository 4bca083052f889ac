//! Online rekeying of the Totem frame key (`aisctl rekey`).
//!
//! 1. The node that gets the request draws a fresh secret, makes it key epoch `current + 1`,
//!    encrypts it under a wrap key derived from the current epoch
//!    (`totem_dpdk::crypto::rekey_wrap`) and sends `REKEY {wrapped}` through the ring as a
//!    **safe** message (every member holds it before anyone acts on it). The frame carrying it
//!    is itself sealed under the current key.
//! 2. Every member delivers `REKEY` at the same point of the total order. It unwraps the key,
//!    rewrites its key file (so a restart uses the new epoch), and has its Totem core **accept**
//!    the new epoch: it opens frames sealed under it but still seals with the current one.
//!    Then it sends `KEY_READY {epoch}`.
//! 3. When every member of the ring has sent `KEY_READY`, each node **switches**: its Totem
//!    core seals with the new epoch from then on and still opens the previous one (frames of
//!    members that have not switched yet). Then it sends `KEY_DONE {epoch}`, sealed under the
//!    new epoch.
//! 4. When every member has sent `KEY_DONE`, each node retires the previous epoch: frames
//!    sealed under it are refused from then on.
//!
//! Why three steps: members deliver a message at the same point of the total order but not at
//! the same moment. Had each member sealed with the new epoch as soon as it delivered `REKEY`,
//! the first one to deliver could send a frame (the token, held a moment by token pacing)
//! under an epoch the next member does not know yet; that member refuses it and the ring
//! breaks. A member's `KEY_READY` comes after its core accepts the epoch, and its `KEY_DONE`
//! after its core switched, so no member ever gets a frame it cannot open. (`KEY_DONE` also
//! counts as `KEY_READY`: a member that switched has accepted.)
//!
//! Two concurrent rekeys: both name the same next epoch; the first delivered wins everywhere,
//! the second unwraps to an epoch that is not newer and is refused everywhere (its requester
//! gets `SA_AIS_ERR_BAD_OPERATION`). No membership change, no lost or duplicated message:
//! only the key under which frames travel changes. Members that leave during a rekey need not
//! answer; members that join during one never do.
//!
//! A node that was down during a rekey starts with the old epoch from its key file: the others
//! refuse its frames (unknown epoch, once the old epoch is retired) and it refuses theirs; its
//! log says the cluster was rekeyed while it was away and the key file must be copied from a
//! running node (see `docs/security.md`).

use std::collections::BTreeSet;

use bytes::Bytes;
use totem_dpdk::crypto::{EpochKey, rekey_unwrap, rekey_wrap};
use totem_dpdk::srp::{ConfigChange, ConfigKind, SubmitError};
use totem_dpdk::{DeliveryKind, MsgId, NodeId};
use tracing::{error, info, warn};

use crate::exec::{ConnId, Context, Service, ServiceId, submit_reply};
use crate::key::{GENERATED_SECRET_LEN, KeyMaterial};
use ais_proto::admin::{AdminProtocol, Request, RingMessage};
use ais_proto::codec::DecodeError;
use ais_proto::ipc::{AisError, Nothing, Protocol, decode_body};
use ais_proto::ring;
use dataplane::stats::Visitor;

/// The administration service's id: rekeying is requested on an `aisctl` connection, and the
/// key messages carry the same id.
const ID: ServiceId = AdminProtocol::ID;

/// Random bytes a rekey needs: the new secret, then the wrap nonce.
const RANDOM_LEN: usize = GENERATED_SECRET_LEN + 12;

/// A rekey under way at this node: the epoch, the members that must answer each step (those
/// of the ring when `REKEY` was delivered, while still present) and those that did.
#[derive(Debug)]
struct Rollover {
    key: EpochKey,
    required: BTreeSet<NodeId>,
    ready: BTreeSet<NodeId>,
    done: BTreeSet<NodeId>,
    /// This node seals with the new epoch.
    switched: bool,
}

/// Deliberate defects, for the simulator's checker tests (`ais/tests/sim_keys.rs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct KeysDefects {
    /// Seal with the new epoch as soon as `REKEY` is delivered (no `KEY_READY` step): a
    /// member that switches first sends frames the others cannot open yet.
    pub switch_at_delivery: bool,
}

/// The key service.
#[derive(Debug)]
pub struct Keys {
    /// The newest key (`None` with secauth off: rekey is refused). During a rekey this is the
    /// new epoch's, before this node seals with it.
    current: Option<EpochKey>,
    /// This node's request in flight: (connection, request id, epoch it introduces).
    pending: Option<(ConnId, u64, u32)>,
    /// The rekey under way.
    rollover: Option<Rollover>,
    rekeys: u64,
    defects: KeysDefects,
}

impl Keys {
    /// The service for a node whose current key is `current` (the runtime writes the key
    /// file at every rekey: [`Context::persist_key`]).
    pub fn new(current: Option<EpochKey>) -> Keys {
        Keys::with_defects(current, KeysDefects::default())
    }

    /// As [`Keys::new`], with deliberate defects (tests of the simulator's checker).
    pub fn with_defects(current: Option<EpochKey>, defects: KeysDefects) -> Keys {
        Keys {
            current,
            pending: None,
            rollover: None,
            rekeys: 0,
            defects,
        }
    }

    fn request_rekey(&mut self, cx: &mut Context<'_>, conn: ConnId, id: u64) {
        let Some(current) = &self.current else {
            warn!("rekey refused: secauth is off, there is no key to replace");
            return cx.error(conn, id, AisError::NotSupported);
        };
        if self.pending.is_some() || self.rollover.is_some() {
            // One rekey at a time from this node; the previous one is still completing.
            return cx.error(conn, id, AisError::TryAgain);
        }
        // The secret and the wrap nonce come from the runtime (`random`).
        self.pending = Some((conn, id, current.epoch() + 1));
        cx.need_random(ID, conn, id, RANDOM_LEN);
    }

    fn random_ready(&mut self, cx: &mut Context<'_>, conn: ConnId, id: u64, bytes: &[u8]) {
        let Some(current) = &self.current else { return };
        if self.pending.map(|(c, i, _)| (c, i)) != Some((conn, id)) {
            // The client went away meanwhile.
            return;
        }
        // The epoch after the current one now (a rekey of another node may have come first).
        let epoch = current.epoch() + 1;
        self.pending = Some((conn, id, epoch));
        if bytes.len() != RANDOM_LEN {
            self.pending = None;
            return cx.error(conn, id, AisError::Library);
        }
        let (secret, nonce_bytes) = bytes.split_at(GENERATED_SECRET_LEN);
        let new = match EpochKey::new(epoch, secret.to_vec()) {
            Ok(k) => k,
            Err(e) => {
                error!("rekey: {e}");
                self.pending = None;
                return cx.error(conn, id, AisError::Library);
            }
        };
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(nonce_bytes);
        let wrapped = rekey_wrap(current, &new, nonce);
        let msg = ring::encode(
            ID,
            &RingMessage::Rekey {
                wrapped: Bytes::from(wrapped),
            },
        );
        cx.submit_for(conn, id, ID, u64::from(epoch), DeliveryKind::Safe, msg);
    }

    fn deliver_rekey(&mut self, cx: &mut Context<'_>, sender: NodeId, wrapped: &[u8]) {
        let from_me = sender == cx.node();
        let mine = |epoch: u32, p: &Option<(ConnId, u64, u32)>| {
            from_me && p.is_some_and(|(_, _, e)| e == epoch)
        };
        let Some(current) = &self.current else {
            return;
        };
        let new = match rekey_unwrap(current, wrapped) {
            Ok(k) if k.epoch() == current.epoch() + 1 => k,
            Ok(k) => {
                // A concurrent rekey to the same epoch was delivered first.
                warn!(
                    "rekey to epoch {} from node {sender} ignored: this node already has epoch {}",
                    k.epoch(),
                    current.epoch()
                );
                if mine(k.epoch(), &self.pending)
                    && let Some((conn, id, _)) = self.pending.take()
                {
                    cx.error(conn, id, AisError::BadOperation);
                }
                return;
            }
            Err(_) => {
                // Wrapped under another epoch's key: superseded by a rekey delivered first.
                warn!(
                    "rekey message from node {sender} does not unwrap under epoch {}; ignored",
                    current.epoch()
                );
                if sender == cx.node()
                    && let Some((conn, id, _)) = self.pending.take()
                {
                    cx.error(conn, id, AisError::BadOperation);
                }
                return;
            }
        };
        let epoch = new.epoch();
        let material = KeyMaterial {
            epoch,
            secret: new.secret().to_vec(),
        };
        cx.persist_key(material);
        self.current = Some(new.clone());
        self.rekeys += 1;
        let mut rollover = Rollover {
            key: new.clone(),
            required: cx.members().iter().copied().collect(),
            ready: BTreeSet::new(),
            done: BTreeSet::new(),
            switched: false,
        };
        if self.defects.switch_at_delivery {
            cx.install_key(new.clone());
            rollover.switched = true;
            info!(
                "switched to key epoch {epoch} (fingerprint {}) at the rekey from node {sender}",
                new.fingerprint(),
            );
            cx.submit_internal(
                DeliveryKind::Agreed,
                ring::encode(ID, &RingMessage::KeyDone { epoch }),
            );
        } else {
            cx.accept_key(new.clone());
            info!(
                "accepting key epoch {epoch} (fingerprint {}) from the rekey of node {sender}; \
                 switching once every member does",
                new.fingerprint(),
            );
            cx.submit_internal(
                DeliveryKind::Agreed,
                ring::encode(ID, &RingMessage::KeyReady { epoch }),
            );
        }
        self.rollover = Some(rollover);
        if mine(epoch, &self.pending)
            && let Some((conn, id, _)) = self.pending.take()
        {
            cx.ok(conn, id);
        }
    }

    /// A member's `KEY_READY` (`done` false) or `KEY_DONE` (`done` true) for `epoch`.
    fn answered(&mut self, cx: &mut Context<'_>, sender: NodeId, epoch: u32, done: bool) {
        let Some(r) = &mut self.rollover else {
            return;
        };
        if r.key.epoch() != epoch {
            return;
        }
        r.ready.insert(sender);
        if done {
            r.done.insert(sender);
        }
        self.advance(cx);
    }

    /// Switches once every member accepts the new epoch; retires the previous one once every
    /// member switched. Members that left need not answer; members that joined after the
    /// rekey never do.
    fn advance(&mut self, cx: &mut Context<'_>) {
        let Some(r) = &mut self.rollover else {
            return;
        };
        let members = cx.members();
        let all = |answered: &BTreeSet<NodeId>| {
            r.required
                .iter()
                .all(|m| !members.contains(m) || answered.contains(m))
        };
        if !r.switched {
            if !all(&r.ready) {
                return;
            }
            r.switched = true;
            let epoch = r.key.epoch();
            cx.install_key(r.key.clone());
            info!(
                "switched to key epoch {epoch} (fingerprint {}): every member accepts it",
                r.key.fingerprint()
            );
            cx.submit_internal(
                DeliveryKind::Agreed,
                ring::encode(ID, &RingMessage::KeyDone { epoch }),
            );
            return;
        }
        if !all(&r.done) {
            return;
        }
        let epoch = r.key.epoch();
        self.rollover = None;
        cx.retire_previous_key();
        info!(
            "every member uses key epoch {epoch}; epoch {} is retired",
            epoch.saturating_sub(1)
        );
    }
}

impl Service for Keys {
    fn id(&self) -> ServiceId {
        ID
    }

    fn name(&self) -> &'static str {
        "keys"
    }

    fn lib_request(
        &mut self,
        cx: &mut Context<'_>,
        conn: ConnId,
        id: u64,
        op: u16,
        body: Bytes,
    ) -> Result<(), DecodeError> {
        match decode_body(op, body)? {
            Request::Rekey => self.request_rekey(cx, conn, id),
            Request::SetNetwork { net, enabled } => cx.set_network(conn, id, net, enabled),
        }
        Ok(())
    }

    fn random(&mut self, cx: &mut Context<'_>, conn: ConnId, id: u64, bytes: &[u8]) {
        self.random_ready(cx, conn, id, bytes);
    }

    fn submitted(
        &mut self,
        cx: &mut Context<'_>,
        conn: ConnId,
        id: u64,
        _tag: u64,
        result: Result<MsgId, SubmitError>,
    ) {
        // Accepted: the answer comes when the rekey is delivered and applied.
        if result.is_err() {
            self.pending = None;
            cx.reply(conn, id, submit_reply::<Nothing>(result));
        }
    }

    fn exec_deliver(
        &mut self,
        cx: &mut Context<'_>,
        sender: NodeId,
        kind: u16,
        body: Bytes,
    ) -> Result<(), DecodeError> {
        match decode_body(kind, body)? {
            RingMessage::Rekey { wrapped } => self.deliver_rekey(cx, sender, &wrapped),
            RingMessage::KeyReady { epoch } => self.answered(cx, sender, epoch, false),
            RingMessage::KeyDone { epoch } => self.answered(cx, sender, epoch, true),
        }
        Ok(())
    }

    fn confchg(&mut self, cx: &mut Context<'_>, change: &ConfigChange) {
        if change.kind == ConfigKind::Regular {
            // A member that left need not answer.
            self.advance(cx);
        }
    }

    fn conn_closed(&mut self, _cx: &mut Context<'_>, conn: ConnId) {
        if self.pending.is_some_and(|(c, _, _)| c == conn) {
            // The rekey goes on; only the answer has nobody to go to.
            self.pending = None;
        }
    }

    fn stats(&self, v: &mut dyn Visitor) {
        v.gauge(
            "key_epoch",
            self.current.as_ref().map_or(0, |k| u64::from(k.epoch())),
        );
        v.counter("rekeys", self.rekeys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Effect;
    use crate::exec::testkit::TestRing;
    use ais_proto::ipc::Reply;

    fn key(epoch: u32) -> EpochKey {
        EpochKey::new(epoch, vec![7; 32]).expect("key")
    }

    fn ring(with_key: bool) -> TestRing {
        TestRing::new(2, move || {
            vec![Box::new(Keys::new(with_key.then(|| key(0)))) as Box<dyn Service + Send>]
        })
    }

    #[test]
    fn a_rekey_installs_persists_and_retires_at_every_member() {
        let mut r = ring(true);
        r.node(1).connect(1, 100, ID);
        r.node(1).core.request_value(1, 5, &Request::Rekey);
        let asked = r.node(1).take();
        let Some(Effect::NeedRandom { len, .. }) = asked.first() else {
            panic!("the rekey asks for random bytes first: {asked:?}");
        };
        assert_eq!(*len, RANDOM_LEN);
        r.node(1).core.random(ID, 1, 5, &[3; RANDOM_LEN]);
        r.flush();
        for id in [1, 2] {
            let effects = r.node(id).take();
            let persisted: Vec<u32> = effects
                .iter()
                .filter_map(|e| match e {
                    Effect::PersistKey(k) => Some(k.epoch),
                    _ => None,
                })
                .collect();
            // The key steps in order: open the new epoch, seal with it, stop opening the old.
            let steps: Vec<(&str, u32)> = effects
                .iter()
                .filter_map(|e| match e {
                    Effect::AcceptKey(k) => Some(("accept", k.epoch())),
                    Effect::InstallKey(k) => Some(("install", k.epoch())),
                    Effect::RetirePreviousKey => Some(("retire", 0)),
                    _ => None,
                })
                .collect();
            assert_eq!(persisted, vec![1], "node {id}");
            assert_eq!(
                steps,
                vec![("accept", 1), ("install", 1), ("retire", 0)],
                "node {id}"
            );
            if id == 1 {
                assert!(
                    effects
                        .iter()
                        .any(|e| e.reply::<Nothing>() == Some((1, 5, Reply::Ok)))
                );
            }
        }
    }

    fn key_steps(effects: &[Effect]) -> Vec<&'static str> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::AcceptKey(_) => Some("accept"),
                Effect::InstallKey(_) => Some("install"),
                Effect::RetirePreviousKey => Some("retire"),
                _ => None,
            })
            .collect()
    }

    /// No member seals with the new epoch before every member said it opens it; a member that
    /// leaves need not say so.
    #[test]
    fn members_switch_only_once_every_member_accepts_the_epoch() {
        let mut r = TestRing::new(3, || {
            vec![Box::new(Keys::new(Some(key(0)))) as Box<dyn Service + Send>]
        });
        // Node 3's Totem refuses its submissions: its KEY_READY never travels.
        r.node(3).refuse = true;
        let wrapped = rekey_wrap(&key(0), &key(1), [1; 12]);
        r.inject(
            1,
            ring::encode(
                ID,
                &RingMessage::Rekey {
                    wrapped: Bytes::from(wrapped),
                },
            ),
        );
        r.flush();
        for id in [1, 2] {
            assert_eq!(key_steps(&r.node(id).take()), vec!["accept"], "node {id}");
        }
        // Node 3 fails: the others switch, then retire the old epoch.
        r.config(&[1, 2], &[1, 2]);
        r.flush();
        for id in [1, 2] {
            assert_eq!(
                key_steps(&r.node(id).take()),
                vec!["install", "retire"],
                "node {id}"
            );
        }
    }

    #[test]
    fn a_second_rekey_while_one_runs_is_try_again() {
        let mut r = ring(true);
        r.node(1).connect(1, 100, ID);
        r.node(1).core.request_value(1, 5, &Request::Rekey);
        r.node(1).core.request_value(1, 6, &Request::Rekey);
        let effects = r.node(1).take();
        assert!(
            effects
                .iter()
                .any(|e| e.reply::<Nothing>() == Some((1, 6, Reply::Error(AisError::TryAgain))))
        );
    }

    #[test]
    fn no_random_bytes_is_a_library_error_and_ends_the_rekey() {
        let mut r = ring(true);
        r.node(1).connect(1, 100, ID);
        r.node(1).core.request_value(1, 5, &Request::Rekey);
        r.node(1).core.random(ID, 1, 5, &[]);
        r.node(1).core.request_value(1, 6, &Request::Rekey);
        let effects = r.node(1).take();
        assert!(
            effects
                .iter()
                .any(|e| e.reply::<Nothing>() == Some((1, 5, Reply::Error(AisError::Library))))
        );
        assert!(
            effects
                .iter()
                .any(|e| matches!(e, Effect::NeedRandom { id: 6, .. })),
            "a new rekey may start: {effects:?}"
        );
    }

    #[test]
    fn without_secauth_there_is_nothing_to_rekey() {
        let mut r = ring(false);
        r.node(1).connect(1, 100, ID);
        r.node(1).core.request_value(1, 5, &Request::Rekey);
        let effects = r.node(1).take();
        assert!(
            matches!(
                effects.as_slice(),
                [e] if e.reply::<Nothing>() == Some((1, 5, Reply::Error(AisError::NotSupported)))
            ),
            "{effects:?}"
        );
    }

    #[test]
    fn a_rekey_wrapped_under_another_key_is_refused() {
        let mut r = ring(true);
        let other = EpochKey::new(0, vec![9; 32]).expect("key");
        let wrapped = rekey_wrap(&other, &key(1), [1; 12]);
        r.inject(
            2,
            ring::encode(
                ID,
                &RingMessage::Rekey {
                    wrapped: Bytes::from(wrapped),
                },
            ),
        );
        let effects = r.node(1).take();
        assert!(
            !effects.iter().any(|e| matches!(
                e,
                Effect::AcceptKey(_) | Effect::InstallKey(_) | Effect::PersistKey(_)
            )),
            "{effects:?}"
        );
    }
}
