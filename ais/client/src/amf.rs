//! AMF, the component API (`saAmf*`): a component registers with its node's executive under
//! the name the executive gave it (`SA_AMF_COMPONENT_NAME`), then receives callbacks (CSI set,
//! CSI remove, health check, terminate) through [`Amf::dispatch`] and answers each with
//! [`Amf::response`]. Operators use [`Amf::status`] and [`Amf::admin`] (what `aisctl amf`
//! does) on a connection that does not register.
//!
//! The calls are [`Connection`] calls, so the [model](super) applies. An executive without an
//! `[amf]` table runs no AMF service: [`Amf::initialize`] then fails with
//! [`crate::AisError::NotSupported`].
//!
//! ```no_run
//! use ais_client::amf::{Amf, Callback, Ha, Invocation};
//! # fn main() -> Result<(), ais_client::Error> {
//! let mut amf = Amf::initialize(&ais_client::default_socket())?;
//! amf.register(None)?; // the name from SA_AMF_COMPONENT_NAME
//! loop {
//!     match amf.dispatch(None)? {
//!         Some(Callback::CsiSet { invocation, ha, .. }) => {
//!             // take the work in state `ha` (active: serve, standby: follow the state)
//!             let _ = ha == Ha::Active;
//!             amf.response(invocation, true)?;
//!         }
//!         Some(Callback::Terminate { invocation }) => {
//!             amf.response(invocation, true)?;
//!             return Ok(());
//!         }
//!         Some(cb) => amf.response(cb.invocation(), true)?,
//!         None => {}
//!     }
//! }
//! # }
//! ```

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use super::{AisError, Connection, Error, unexpected};
use ais_proto::amf::{AmfProtocol, Request, Response};
use ais_proto::ipc::Reply;

pub use ais_proto::amf::status::{
    CompStatus, CsiAssignment, SgStatus, SiStatus, SuAssignment, SuStatus,
};
pub use ais_proto::amf::{AdminOp, AdminState, Callback, Ha, Presence, Readiness, Tree, recovery};

/// The environment variable holding the component's name, set by the executive when it
/// starts the component.
pub const COMPONENT_NAME_VAR: &str = "SA_AMF_COMPONENT_NAME";

/// A connection to the executive's AMF service.
#[derive(Debug)]
pub struct Amf {
    conn: Connection<AmfProtocol>,
}

impl Amf {
    /// Connects to the executive at `path` (usually [`super::default_socket`])
    /// (`saAmfInitialize`).
    ///
    /// # Errors
    /// As [`Connection::connect`]; `SA_AIS_ERR_NOT_SUPPORTED` when the executive runs no AMF.
    pub fn initialize(path: &Path) -> Result<Amf, Error> {
        Connection::connect(path).map(|conn| Amf { conn })
    }

    /// Wraps an AMF connection.
    pub fn from_connection(conn: Connection<AmfProtocol>) -> Amf {
        Amf { conn }
    }

    /// Registers this connection as the component `name`, or without one as the component
    /// named by `SA_AMF_COMPONENT_NAME` (`saAmfComponentRegister`). From then on the
    /// executive sends this component's callbacks here; the component's death is seen by the
    /// executive (its process exits), not through this connection.
    ///
    /// # Errors
    /// `SA_AIS_ERR_INVALID_PARAM` without a name and without the variable;
    /// `SA_AIS_ERR_NOT_EXIST` when no component of this node has that name;
    /// `SA_AIS_ERR_EXIST` when it is registered already; otherwise as [`Connection::call`].
    pub fn register(&mut self, name: Option<&str>) -> Result<(), Error> {
        let comp = match name {
            Some(n) => n.to_owned(),
            None => {
                std::env::var(COMPONENT_NAME_VAR).map_err(|_| Error::Ais(AisError::InvalidParam))?
            }
        };
        self.conn.ok(Request::Register { comp })
    }

    /// Unregisters this connection's component (`saAmfComponentUnregister`).
    ///
    /// # Errors
    /// `SA_AIS_ERR_NOT_EXIST` when it did not register; otherwise as [`Connection::call`].
    pub fn unregister(&mut self) -> Result<(), Error> {
        self.conn.ok(Request::Unregister)
    }

    /// The next callback: a queued one first, else waits up to `timeout` (`None`: forever)
    /// (`saAmfDispatch`). `Ok(None)` when the time passes first. Every callback but a
    /// health check of a component-invoked kind carries an invocation to answer with
    /// [`Amf::response`].
    ///
    /// # Errors
    /// As [`Connection::next_callback`].
    pub fn dispatch(&mut self, timeout: Option<Duration>) -> Result<Option<Callback>, Error> {
        self.conn.next_callback(timeout)
    }

    /// Answers callback `invocation`: done (`ok`) or failed (`saAmfResponse`).
    ///
    /// # Errors
    /// `SA_AIS_ERR_NOT_EXIST` for an invocation that is not outstanding; otherwise as
    /// [`Connection::call`].
    pub fn response(&mut self, invocation: u64, ok: bool) -> Result<(), Error> {
        self.conn.ok(Request::Response { invocation, ok })
    }

    /// Confirms a component-invoked health check `key`: healthy (`ok`) or failed
    /// (`saAmfHealthcheckConfirm`). A missed confirmation is a failure the executive acts on.
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn healthcheck_confirm(&mut self, key: &str, ok: bool) -> Result<(), Error> {
        self.conn.ok(Request::HealthcheckConfirm {
            key: key.to_owned(),
            ok,
        })
    }

    /// Reports an error of this component with a recommended recovery (a [`recovery`]
    /// code; `NO_RECOMMENDATION`: the type's configured one) (`saAmfComponentErrorReport`).
    ///
    /// # Errors
    /// `SA_AIS_ERR_NOT_EXIST` when it did not register; otherwise as [`Connection::call`].
    pub fn error_report(&mut self, recovery: u8) -> Result<(), Error> {
        self.conn.ok(Request::ErrorReport { recovery })
    }

    /// This connection's component name (`saAmfComponentNameGet`).
    ///
    /// # Errors
    /// `SA_AIS_ERR_NOT_EXIST` when it did not register; otherwise as [`Connection::call`].
    pub fn name_get(&mut self) -> Result<String, Error> {
        match self.conn.call(Request::NameGet)? {
            Reply::Service(Response::Name(n)) => Ok(n),
            other => Err(unexpected("AmfNameGet", &other)),
        }
    }

    /// The tree of the model's entities with their states, one line per entity, indented by
    /// depth (what `aisctl amf status` prints).
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn status(&mut self) -> Result<Vec<String>, Error> {
        match self.conn.call(Request::Status)? {
            Reply::Service(Response::Status(lines)) => Ok(lines),
            other => Err(unexpected("AmfStatus", &other)),
        }
    }

    /// The same tree as values: every SU's administrative, operational, readiness and
    /// presence states, its components' presence, operational and readiness states and the
    /// CSIs they hold, every SI's assignments ([`Tree::lines`] is the text of
    /// [`Amf::status`]).
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn tree(&mut self) -> Result<Tree, Error> {
        match self.conn.call(Request::Tree)? {
            Reply::Service(Response::Tree(tree)) => Ok(*tree),
            other => Err(unexpected("AmfTree", &other)),
        }
    }

    /// Runs an administrative operation on the SU or SI named `entity`.
    ///
    /// # Errors
    /// `SA_AIS_ERR_NOT_EXIST`: no SU or SI has that name; `SA_AIS_ERR_BAD_OPERATION`: the
    /// operation is not allowed on it in its present state; `SA_AIS_ERR_TRY_AGAIN`: this
    /// node's partition has no quorum (or the cluster is busy); otherwise as
    /// [`Connection::call`].
    pub fn admin(&mut self, op: AdminOp, entity: &str) -> Result<(), Error> {
        self.conn.ok(Request::Admin {
            op,
            entity: entity.to_owned(),
        })
    }

    /// The underlying connection.
    pub fn connection(&mut self) -> &mut Connection<AmfProtocol> {
        &mut self.conn
    }
}

/// The invocation a callback carries.
pub trait Invocation {
    /// The invocation to quote in [`Amf::response`].
    fn invocation(&self) -> u64;
}

impl Invocation for Callback {
    fn invocation(&self) -> u64 {
        match self {
            Callback::CsiSet { invocation, .. }
            | Callback::CsiRemove { invocation, .. }
            | Callback::Healthcheck { invocation, .. }
            | Callback::Terminate { invocation } => *invocation,
            _ => 0,
        }
    }
}

impl AsRawFd for Amf {
    /// See [`Connection`]'s: queued callbacks do not show on the descriptor.
    fn as_raw_fd(&self) -> RawFd {
        self.conn.as_raw_fd()
    }
}

impl AsFd for Amf {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.conn.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::start_service;
    use super::*;

    #[test]
    fn register_callbacks_responses_and_operator_calls() {
        let (conn, server) = start_service::<AmfProtocol, _>(move |exec, id, req| {
            match req {
                Request::Register { comp } if comp == "safComp=a,safSu=u,safSg=g,safApp=x" => {
                    exec.reply(id, Reply::Ok);
                    exec.callback(Callback::CsiSet {
                        invocation: 7,
                        si: "web".into(),
                        csi: "state".into(),
                        ha: Ha::Standby,
                        attributes: vec![],
                    });
                    exec.callback(Callback::Healthcheck {
                        invocation: 8,
                        key: "ping".into(),
                    });
                }
                Request::Register { .. } => exec.reply(id, Reply::Error(AisError::NotExist)),
                Request::NameGet => exec.reply(
                    id,
                    Reply::Service(Response::Name("safComp=a,safSu=u,safSg=g,safApp=x".into())),
                ),
                Request::Status => exec.reply(
                    id,
                    Reply::Service(Response::Status(vec!["app x".into(), "  sg g".into()])),
                ),
                Request::Admin { entity, .. } if entity == "nope" => {
                    exec.reply(id, Reply::Error(AisError::NotExist))
                }
                _ => exec.reply(id, Reply::Ok),
            }
            true
        });
        let mut amf = Amf::from_connection(conn);
        assert_eq!(
            amf.register(Some("other")).unwrap_err().ais_error(),
            Some(AisError::NotExist)
        );
        amf.register(Some("safComp=a,safSu=u,safSg=g,safApp=x"))
            .unwrap();
        let cb = amf.dispatch(Some(Duration::from_secs(5))).unwrap().unwrap();
        assert!(
            matches!(
                cb,
                Callback::CsiSet {
                    ha: Ha::Standby,
                    ..
                }
            ),
            "{cb:?}"
        );
        amf.response(cb.invocation(), true).unwrap();
        let cb = amf.dispatch(Some(Duration::from_secs(5))).unwrap().unwrap();
        assert_eq!(cb.invocation(), 8);
        amf.response(8, true).unwrap();
        amf.healthcheck_confirm("ping", true).unwrap();
        amf.error_report(recovery::COMPONENT_RESTART).unwrap();
        assert_eq!(
            amf.name_get().unwrap(),
            "safComp=a,safSu=u,safSg=g,safApp=x"
        );
        assert_eq!(amf.status().unwrap(), ["app x", "  sg g"]);
        amf.admin(AdminOp::Switchover, "web").unwrap();
        assert_eq!(
            amf.admin(AdminOp::Lock, "nope").unwrap_err().ais_error(),
            Some(AisError::NotExist)
        );
        amf.unregister().unwrap();
        drop(amf);
        let seen = server.join().unwrap();
        assert_eq!(
            seen,
            [
                Request::Register {
                    comp: "other".into()
                },
                Request::Register {
                    comp: "safComp=a,safSu=u,safSg=g,safApp=x".into()
                },
                Request::Response {
                    invocation: 7,
                    ok: true
                },
                Request::Response {
                    invocation: 8,
                    ok: true
                },
                Request::HealthcheckConfirm {
                    key: "ping".into(),
                    ok: true
                },
                Request::ErrorReport {
                    recovery: recovery::COMPONENT_RESTART
                },
                Request::NameGet,
                Request::Status,
                Request::Admin {
                    op: AdminOp::Switchover,
                    entity: "web".into()
                },
                Request::Admin {
                    op: AdminOp::Lock,
                    entity: "nope".into()
                },
                Request::Unregister,
            ]
        );
    }
}
