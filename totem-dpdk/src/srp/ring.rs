//! The state a node keeps for one ring: its identity and order, the token bookkeeping, and the
//! frames received on it.

use bytes::Bytes;

use super::recv_buffer::RecvBuffer;
use crate::time::Instant;
use crate::types::{NodeId, RingId, Seq};

/// One ring as this node sees it.
#[derive(Debug)]
pub(crate) struct Ring {
    pub(crate) id: RingId,
    /// Members in token order (ascending ids).
    pub(crate) members: Vec<NodeId>,
    /// The member this node forwards the token to.
    pub(crate) next: NodeId,
    /// This node is the representative (smallest id): it opens each token rotation.
    pub(crate) is_rep: bool,
    /// `token_seq` of the last token accepted.
    pub(crate) my_token_seq: u64,
    /// The last token (ORF or commit) forwarded and where to, kept for retransmission until
    /// the ring shows progress.
    pub(crate) last_token: Option<(NodeId, Bytes)>,
    /// `token.seq` as forwarded at this node's last visit.
    pub(crate) last_visit_seq: Seq,
    /// Frames this node sent at its last visit (its share of `token.fcc`).
    pub(crate) my_last_sent: u32,
    /// Backlog this node reported at its last visit (its share of `token.backlog`).
    pub(crate) my_last_backlog: u32,
    pub(crate) recv: RecvBuffer,
    /// Highest sequence number delivered (or, for recovery frames, consumed).
    pub(crate) delivered: Seq,
    /// Every member holds every frame up to here.
    pub(crate) safe: Seq,
    /// The token's `aru` at this node's last visit, and how many visits in a row it stayed
    /// stuck below `seq` with the same `aru_addr` (failure to receive).
    pub(crate) stuck_aru: (Seq, NodeId, u32),
    /// Consecutive rotations (seen by the representative) that stamped nothing.
    pub(crate) idle_rotations: u32,
    /// A token the representative holds while the ring is idle, with its next hop.
    pub(crate) held: Option<(NodeId, Bytes)>,
    /// Representative: a member asked for the token (token hold cancel) and it was not held
    /// then; the next idle visit passes the token on instead of holding it.
    pub(crate) hold_cancelled: bool,
    /// Member: a token hold cancel went to the representative since the last token visit.
    pub(crate) cancel_sent: bool,
    /// The held token is paced ([`crate::srp::Config::token_pace`]), not idle: only its
    /// timer passes it on (a submit or a hold cancel does not).
    pub(crate) paced: bool,
    /// When this node last passed the token on.
    pub(crate) last_pass: Instant,
}

impl Ring {
    /// A ring `id` of `members` as seen by `me` (which must be a member).
    pub(crate) fn new(id: RingId, mut members: Vec<NodeId>, me: NodeId, window: u64) -> Ring {
        members.sort();
        members.dedup();
        let index = members.iter().position(|m| *m == me).unwrap_or(0);
        Ring {
            id,
            next: members[(index + 1) % members.len()],
            is_rep: members.first() == Some(&me),
            members,
            my_token_seq: 0,
            last_token: None,
            last_visit_seq: Seq::ZERO,
            my_last_sent: 0,
            my_last_backlog: 0,
            recv: RecvBuffer::new(window),
            delivered: Seq::ZERO,
            safe: Seq::ZERO,
            stuck_aru: (Seq::ZERO, NodeId::NONE, 0),
            idle_rotations: 0,
            held: None,
            hold_cancelled: false,
            cancel_sent: false,
            paced: false,
            last_pass: Instant(0),
        }
    }

    /// The placeholder ring of a node that has not yet formed or joined one (sequence 0).
    pub(crate) fn none(me: NodeId, window: u64) -> Ring {
        Ring::new(RingId { seq: 0, rep: me }, vec![me], me, window)
    }

    /// False for the placeholder of [`Ring::none`].
    pub(crate) fn is_real(&self) -> bool {
        self.id.seq != 0
    }
}
