//! The AIS services run by the executive ([`crate::exec::Service`]): [`cpg`] (closed process
//! groups), [`evs`] (extended virtual synchrony groups), [`clm`] (cluster membership),
//! [`quorum`] (whether this partition may act), [`ckpt`] (checkpoints), [`evt`] (events) and [`keys`] (online
//! rekeying of the frame key).
//! [`quorum`] (whether this partition may act), [`ckpt`] (checkpoints) and [`keys`] (online rekeying of the frame
//! key), [`lck`] (distributed locks).

pub mod ckpt;
pub mod clm;
pub mod cpg;
pub mod evs;
pub mod keys;
pub mod msg;
pub mod lck;
pub mod quorum;

use totem_dpdk::DeliveryKind;

use ais_proto::ipc::Guarantee;

/// The Totem delivery kind for a client's guarantee.
pub fn delivery_kind(g: Guarantee) -> DeliveryKind {
    match g {
        Guarantee::Agreed => DeliveryKind::Agreed,
        Guarantee::Safe => DeliveryKind::Safe,
    }
}
pub mod evt;
