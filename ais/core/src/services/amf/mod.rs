//! The Availability Management Framework (SA Forum AMF).
//!
//! [`model`] holds the entities an operator configures (nodes, component types, applications
//! with their service groups, service units, components, service instances and component
//! service instances) as plain data, with every default; [`validate`] checks a model and
//! returns every problem found, each naming the entity it is about. The `ais` crate reads the
//! model from TOML (`ais::config::amf`); `docs/amf.md` describes the fields and the rules.
//!
//! [`state`] is the replicated state (assignments, presence, administrative states) and the
//! assignment rules every member applies at the same points of the total order; [`service`]
//! is the executive service: that state on the ring, and this node's component life cycle,
//! callbacks, health checks and recovery. [`status`] builds the tree `aisctl amf status`
//! shows. [`checker`] judges a run of it under the seeded
//! simulator.

pub mod checker;
pub mod model;
pub mod service;
pub mod state;
pub mod status;
pub mod validate;

pub use model::{
    AmfModel, Application, CompType, Component, Csi, CsiTarget, Escalation, HealthCheck,
    HealthCheckInvoker, Node, PassiveMonitoring, Recovery, Redundancy, ServiceGroup,
    ServiceInstance, ServiceUnit,
};
pub use service::{Amf, AmfConfig, AmfDefects, AmfStats, Observer};
pub use state::{Cluster, Flat};
pub use validate::{Entity, Problem, Severity, validate};
