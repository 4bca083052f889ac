//! The AIS services run by the executive ([`crate::exec::Service`]): [`cpg`] (closed process
//! groups), [`evs`] (extended virtual synchrony groups), [`clm`] (cluster membership),
//! [`quorum`] (whether this partition may act), [`ckpt`] (checkpoints), [`evt`] (events),
//! [`lck`] (distributed locks), [`msg`] (message queues) and [`keys`] (online rekeying of the
//! frame key).
//! [`amf`] holds the information model of the availability management framework.

pub mod amf;
pub mod ckpt;
pub mod clm;
pub mod cpg;
pub mod evs;
pub mod evt;
pub mod keys;
pub mod lck;
pub mod msg;
pub mod quorum;
pub mod shelf;

use totem_dpdk::DeliveryKind;

use ais_proto::ipc::Guarantee;

/// The Totem delivery kind for a client's guarantee.
pub fn delivery_kind(g: Guarantee) -> DeliveryKind {
    match g {
        Guarantee::Agreed => DeliveryKind::Agreed,
        Guarantee::Safe => DeliveryKind::Safe,
    }
}
