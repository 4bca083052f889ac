//! Online rekeying of the Totem frame key (`aisctl rekey`).
//!
//! 1. The node that gets the request draws a fresh secret, makes it key epoch `current + 1`,
//!    encrypts it under a wrap key derived from the current epoch
//!    (`totem_dpdk::crypto::rekey_wrap`) and sends `REKEY {wrapped}` through the ring as a
//!    **safe** message (every member holds it before anyone acts on it). The frame carrying it
//!    is itself sealed under the current key.
//! 2. Every member delivers `REKEY` at the same point of the total order. It unwraps the key,
//!    rewrites its key file (so a restart uses the new epoch), and installs the new epoch in
//!    its Totem core: from then on it seals with the new key, and still opens frames of the
//!    previous epoch (sent by members that have not reached that point yet, or retransmitted).
//!    Then it sends `KEY_DONE {epoch}`.
//! 3. When every member of the ring has sent `KEY_DONE`, each node retires the previous epoch:
//!    frames sealed under the old key are refused from then on.
//!
//! Two concurrent rekeys: both name the same next epoch; the first delivered wins everywhere,
//! the second unwraps to an epoch that is not newer and is refused everywhere (its requester
//! gets `SA_AIS_ERR_BAD_OPERATION`). No membership change, no lost or duplicated message:
//! only the key under which frames travel changes.
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

#[derive(Debug)]
struct Confirming {
    epoch: u32,
    required: BTreeSet<NodeId>,
    confirmed: BTreeSet<NodeId>,
}

/// The key service.
#[derive(Debug)]
pub struct Keys {
    /// The current key (`None` with secauth off: rekey is refused).
    current: Option<EpochKey>,
    /// This node's request in flight: (connection, request id, epoch it introduces).
    pending: Option<(ConnId, u64, u32)>,
    /// The epoch being confirmed: the members that must confirm it (those of the ring when
    /// it was delivered, still present) and those that did.
    confirming: Option<Confirming>,
    rekeys: u64,
}

impl Keys {
    /// The service for a node whose current key is `current` (the runtime writes the key
    /// file at every rekey: [`Context::persist_key`]).
    pub fn new(current: Option<EpochKey>) -> Keys {
        Keys {
            current,
            pending: None,
            confirming: None,
            rekeys: 0,
        }
    }

    fn request_rekey(&mut self, cx: &mut Context<'_>, conn: ConnId, id: u64) {
        let Some(current) = &self.current else {
            warn!("rekey refused: secauth is off, there is no key to replace");
            return cx.error(conn, id, AisError::NotSupported);
        };
        if self.pending.is_some() || self.confirming.is_some() {
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
        cx.install_key(new.clone());
        info!(
            "switched to key epoch {epoch} (fingerprint {}) at the rekey from node {sender}",
            new.fingerprint(),
        );
        self.current = Some(new);
        self.rekeys += 1;
        self.confirming = Some(Confirming {
            epoch,
            required: cx.members().iter().copied().collect(),
            confirmed: BTreeSet::new(),
        });
        cx.submit_internal(
            DeliveryKind::Agreed,
            ring::encode(ID, &RingMessage::KeyDone { epoch }),
        );
        if mine(epoch, &self.pending)
            && let Some((conn, id, _)) = self.pending.take()
        {
            cx.ok(conn, id);
        }
    }

    /// Retires the previous epoch once every member confirmed the current one.
    fn maybe_retire(&mut self, cx: &mut Context<'_>) {
        let Some(c) = &self.confirming else {
            return;
        };
        // Members that joined after the rekey never confirm it; members that left need not.
        let missing = c
            .required
            .iter()
            .any(|m| cx.members().contains(m) && !c.confirmed.contains(m));
        if missing {
            return;
        }
        let epoch = c.epoch;
        self.confirming = None;
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
            RingMessage::KeyDone { epoch } => {
                if let Some(c) = &mut self.confirming
                    && c.epoch == epoch
                {
                    c.confirmed.insert(sender);
                }
                self.maybe_retire(cx);
            }
        }
        Ok(())
    }

    fn confchg(&mut self, cx: &mut Context<'_>, change: &ConfigChange) {
        if change.kind == ConfigKind::Regular {
            // A member that left need not confirm.
            self.maybe_retire(cx);
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
            let installed: Vec<u32> = effects
                .iter()
                .filter_map(|e| match e {
                    Effect::InstallKey(k) => Some(k.epoch()),
                    _ => None,
                })
                .collect();
            assert_eq!((persisted, installed), (vec![1], vec![1]), "node {id}");
            assert!(
                effects
                    .iter()
                    .any(|e| matches!(e, Effect::RetirePreviousKey)),
                "node {id} retires epoch 0 once every member confirmed"
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
            !effects
                .iter()
                .any(|e| matches!(e, Effect::InstallKey(_) | Effect::PersistKey(_))),
            "{effects:?}"
        );
    }
}
