//! The AIS services run by the executive ([`crate::exec::Service`]): [`cpg`] (closed process
//! groups) and [`evs`] (extended virtual synchrony groups).

pub mod cpg;
pub mod evs;

use totem_dpdk::DeliveryKind;

use crate::ipc::proto::Guarantee;

/// The Totem delivery kind for a client's guarantee.
pub fn delivery_kind(g: Guarantee) -> DeliveryKind {
    match g {
        Guarantee::Agreed => DeliveryKind::Agreed,
        Guarantee::Safe => DeliveryKind::Safe,
    }
}
