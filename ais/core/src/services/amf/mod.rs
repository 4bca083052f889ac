//! The Availability Management Framework (SA Forum AMF): its information model.
//!
//! [`model`] holds the entities an operator configures (nodes, component types, applications
//! with their service groups, service units, components, service instances and component
//! service instances) as plain data, with every default; [`validate`] checks a model and
//! returns every problem found, each naming the entity it is about. The `ais` crate reads the
//! model from TOML (`ais::config::amf`); `docs/amf.md` describes the fields and the rules.

pub mod model;
pub mod validate;

pub use model::{
    AmfModel, Application, CompType, Component, Csi, CsiTarget, Escalation, HealthCheck,
    HealthCheckInvoker, Node, PassiveMonitoring, Recovery, Redundancy, ServiceGroup,
    ServiceInstance, ServiceUnit,
};
pub use validate::{Entity, Problem, Severity, validate};
