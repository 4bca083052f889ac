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
use std::path::PathBuf;

use bytes::Bytes;
use totem_dpdk::crypto::{EpochKey, rekey_unwrap, rekey_wrap};
use totem_dpdk::srp::{ConfigChange, ConfigKind, SubmitError};
use totem_dpdk::{DeliveryKind, MsgId, NodeId};
use tracing::{error, info, warn};

use crate::exec::{ConnId, Context, Service, ServiceId, exec_message, submit_response};
use crate::ipc::codec::{DecodeError, Reader, Writer};
use crate::ipc::proto::{AisError, Request, Response};
use crate::keyfile::{self, KeyMaterial};

const REKEY: u16 = 1;
const KEY_DONE: u16 = 2;

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
    /// The key file rewritten at every rekey.
    keyfile: PathBuf,
    /// This node's request in flight: (connection, request id, epoch it introduces).
    pending: Option<(ConnId, u64, u32)>,
    /// The epoch being confirmed: the members that must confirm it (those of the ring when
    /// it was delivered, still present) and those that did.
    confirming: Option<Confirming>,
    rekeys: u64,
}

impl Keys {
    /// The service for a node whose current key is `current`, stored in `keyfile`.
    pub fn new(current: Option<EpochKey>, keyfile: PathBuf) -> Keys {
        Keys {
            current,
            keyfile,
            pending: None,
            confirming: None,
            rekeys: 0,
        }
    }

    fn request_rekey(&mut self, cx: &mut Context<'_>, conn: ConnId, id: u64) {
        let Some(current) = &self.current else {
            warn!("rekey refused: secauth is off, there is no key to replace");
            return cx.reply(conn, id, Response::Error(AisError::NotSupported));
        };
        if self.pending.is_some() || self.confirming.is_some() {
            // One rekey at a time from this node; the previous one is still completing.
            return cx.reply(conn, id, Response::Error(AisError::TryAgain));
        }
        let secret = match keyfile::generate() {
            Ok(s) => s,
            Err(e) => {
                error!("rekey: {e}");
                return cx.reply(conn, id, Response::Error(AisError::Library));
            }
        };
        let epoch = current.epoch() + 1;
        let new = match EpochKey::new(epoch, secret) {
            Ok(k) => k,
            Err(e) => {
                error!("rekey: {e}");
                return cx.reply(conn, id, Response::Error(AisError::Library));
            }
        };
        let mut nonce = [0u8; 12];
        if let Err(e) = keyfile::generate().map(|r| nonce.copy_from_slice(&r[..12])) {
            error!("rekey: {e}");
            return cx.reply(conn, id, Response::Error(AisError::Library));
        }
        let wrapped = rekey_wrap(current, &new, nonce);
        let msg = exec_message(ServiceId::Keys, REKEY, &wrapped);
        if cx.submit_for(
            conn,
            id,
            ServiceId::Keys,
            u64::from(epoch),
            DeliveryKind::Safe,
            msg,
        ) {
            self.pending = Some((conn, id, epoch));
        } else {
            cx.reply(conn, id, Response::Error(AisError::TryAgain));
        }
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
                    cx.reply(conn, id, Response::Error(AisError::BadOperation));
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
                    cx.reply(conn, id, Response::Error(AisError::BadOperation));
                }
                return;
            }
        };
        let epoch = new.epoch();
        let material = KeyMaterial {
            epoch,
            secret: new.secret().to_vec(),
        };
        if let Err(e) = keyfile::write(&self.keyfile, &material, true) {
            error!(
                "could not write key epoch {epoch} to {}: {e}; this node runs with it, but after a restart it needs the key file copied from another node",
                self.keyfile.display()
            );
        }
        let install = new.clone();
        let installed = cx.with_core(Box::new(move |core| {
            if let Err(e) = core.install_key(install) {
                error!("installing key epoch {epoch}: {e}");
            }
        }));
        if !installed {
            error!("installing key epoch {epoch}: the Totem thread has stopped");
        }
        info!(
            "switched to key epoch {epoch} (fingerprint {}) at the rekey from node {sender}; {} rewritten",
            new.fingerprint(),
            self.keyfile.display()
        );
        self.current = Some(new);
        self.rekeys += 1;
        self.confirming = Some(Confirming {
            epoch,
            required: cx.members().iter().copied().collect(),
            confirmed: BTreeSet::new(),
        });
        let mut w = Writer::with_capacity(4);
        w.u32(epoch);
        cx.submit_internal(
            DeliveryKind::Agreed,
            exec_message(ServiceId::Keys, KEY_DONE, &w.finish()),
        );
        if mine(epoch, &self.pending)
            && let Some((conn, id, _)) = self.pending.take()
        {
            cx.reply(conn, id, Response::Ok);
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
        let retired = cx.with_core(Box::new(|core| core.retire_previous_key()));
        if retired {
            info!(
                "every member uses key epoch {epoch}; epoch {} is retired",
                epoch - 1
            );
        }
    }
}

impl Service for Keys {
    fn id(&self) -> ServiceId {
        ServiceId::Keys
    }

    fn lib_request(&mut self, cx: &mut Context<'_>, conn: ConnId, id: u64, req: Request) {
        match req {
            Request::Rekey => self.request_rekey(cx, conn, id),
            _ => cx.reply(conn, id, Response::Error(AisError::BadOperation)),
        }
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
            cx.reply(conn, id, submit_response(result));
        }
    }

    fn exec_deliver(
        &mut self,
        cx: &mut Context<'_>,
        sender: NodeId,
        kind: u16,
        body: Bytes,
    ) -> Result<(), DecodeError> {
        match kind {
            REKEY => self.deliver_rekey(cx, sender, &body),
            KEY_DONE => {
                let mut r = Reader::new(body);
                let epoch = r.u32("epoch")?;
                r.end()?;
                if let Some(c) = &mut self.confirming
                    && c.epoch == epoch
                {
                    c.confirmed.insert(sender);
                }
                self.maybe_retire(cx);
            }
            other => {
                return Err(DecodeError::Unknown {
                    what: "key service message",
                    value: u64::from(other),
                });
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

    fn counters(&self, out: &mut Vec<(&'static str, u64)>) {
        out.push((
            "key_epoch",
            self.current.as_ref().map_or(0, |k| u64::from(k.epoch())),
        ));
        out.push(("rekeys", self.rekeys));
    }
}
