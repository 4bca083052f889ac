//! What the core tells its caller: deliveries, configuration changes, flow control, and
//! (for the simulator) observations of its internal steps.

use bytes::Bytes;

use crate::types::{DeliveryKind, MsgId, NodeId, RingId, Seq};

/// An output event, taken with `Totem::poll_event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message delivered in the ring's total order.
    Deliver(Delivery),
    /// A configuration change (extended virtual synchrony).
    ConfigChange(ConfigChange),
    /// The send queues crossed their limit: submits are refused until `Clear`.
    FlowControl(FlowControl),
    /// This node left its ring's operational state (token lost, or another node's join,
    /// leave or ring seen) and is forming a new membership. Said once per change: not again
    /// until a regular configuration was delivered.
    Gather,
    /// While a membership forms: a node's join or a commit token showed that node alive and
    /// counting this one in (not in its failed set). Each join interval while gathering.
    Heard(NodeId),
    /// A member of this node's ring, coming from that ring, sent a join that counts this node
    /// failed: it is forming a ring without this node, possibly at once (a member that failed
    /// to receive is not waited for).
    Excluded(NodeId),
    /// This node is about to use ring sequence number N: persist it (asynchronously is fine)
    /// and pass the highest persisted value as `Config::ring_seq` after a restart.
    RingSeq(u64),
    /// An internal step, reported only with `Config::observe` for the checker.
    Observe(Observation),
}

/// One delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(alias = "deliver_fn")]
pub struct Delivery {
    /// Sender and the sender's counter.
    pub id: MsgId,
    /// The ring it was ordered in.
    pub ring: RingId,
    /// Sequence number of the frame that completed the message.
    pub seq: Seq,
    /// The guarantee the sender asked for (and that was honoured).
    pub kind: DeliveryKind,
    /// The message. Shares memory with the received frame when the message fit in one frame.
    pub payload: Bytes,
}

/// Transitional or regular configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigKind {
    /// The members that move together from the old ring to the new one.
    Transitional,
    /// A new ring's full membership.
    Regular,
}

/// A configuration change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(alias = "confchg_fn")]
pub struct ConfigChange {
    /// Transitional or regular.
    pub kind: ConfigKind,
    /// Regular: the new ring. Transitional: the ring that is ending; the messages delivered
    /// after it belong to that ring.
    pub ring: RingId,
    /// Members, ascending.
    pub members: Vec<NodeId>,
    /// Members of the previous configuration that left gracefully ([`crate::srp::Totem::leave`]).
    #[doc(alias = "CPG_REASON_LEAVE")]
    pub left: Vec<NodeId>,
    /// Members of this configuration that were not in the previous one.
    pub joined: Vec<NodeId>,
    /// Members of the previous configuration that disappeared without leaving: crashed,
    /// unreachable, or declared failed by the membership protocol.
    #[doc(alias = "CPG_REASON_NODEDOWN")]
    pub failed: Vec<NodeId>,
}

/// Send-queue state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowControl {
    /// A submit was refused because the send queues are full.
    Blocked,
    /// The queues drained below half of their limits: submits are accepted again.
    Clear,
}

/// Internal steps reported for the checker (only with `Config::observe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A token was received. If `accepted`, the fields are the token as this node forwarded
    /// it after its visit; otherwise as received (a duplicate, which changed nothing).
    Token(TokenObservation),
    /// A frame carrying a safe message was stored for the first time.
    Stored {
        /// Its ring.
        ring: RingId,
        /// Its sequence number.
        seq: Seq,
    },
}

/// A token visit, for the checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenObservation {
    /// The token's ring.
    pub ring: RingId,
    /// Rotation counter.
    pub token_seq: u64,
    /// False for a duplicate or old token that was discarded.
    pub accepted: bool,
    /// Highest sequence number assigned on the ring.
    pub seq: Seq,
    /// Ring-wide all-received-up-to.
    pub aru: Seq,
    /// The node that last lowered `aru`.
    pub aru_addr: NodeId,
    /// Frames sent in the last rotation.
    pub fcc: u32,
    /// Sum of the members' reported backlogs.
    pub backlog: u32,
    /// Retransmit requests.
    pub rtr: Vec<Seq>,
    /// New frames this node stamped in this visit.
    pub sent_new: u32,
    /// Frames this node retransmitted in this visit.
    pub sent_retrans: u32,
    /// The backlog this node reported.
    pub my_backlog: u32,
    /// Every member holds every frame up to here.
    pub safe: Seq,
}
