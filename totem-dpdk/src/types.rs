//! Identifiers and small value types shared by every layer of the Totem core.

use core::fmt;

/// A processor (node) identifier. `0` is reserved: it means "nobody" in fields such as the
/// token's `aru_addr`, and is never a valid member.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[doc(alias = "nodeid")]
pub struct NodeId(pub u32);

impl NodeId {
    /// "Nobody": the empty value of node-valued fields.
    pub const NONE: NodeId = NodeId(0);

    /// True for a real node id (not [`NodeId::NONE`]).
    pub fn is_some(self) -> bool {
        self.0 != 0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A ring-wide message sequence number.
///
/// 64 bits, so it never wraps in practice (2 million messages a second would take 290,000
/// years): corosync's 32-bit sequence wraps in about half an hour at that rate, and its
/// wrap-around comparisons are a known source of recovery bugs. Sequence numbers start at 1 in
/// every ring; 0 means "nothing yet".
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Seq(pub u64);

impl Seq {
    /// "Nothing received or assigned yet".
    pub const ZERO: Seq = Seq(0);

    /// The next sequence number.
    #[must_use]
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Identifies one ring (one configuration): its representative and a sequence number that
/// never repeats. Displayed as `REP.SEQ`, the event log's format.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[doc(alias = "memb_ring_id")]
pub struct RingId {
    /// Ring sequence number; compared first, so a newer ring orders after an older one.
    pub seq: u64,
    /// The representative: the member with the smallest id when the ring formed.
    pub rep: NodeId,
}

impl fmt::Display for RingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.rep.0, self.seq)
    }
}

/// Priority of a queued submission: 0 is the highest, 3 the lowest. Higher-priority messages
/// are put on the wire first at each token visit.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Priority(u8);

impl Priority {
    /// Number of priority levels.
    pub const LEVELS: usize = 4;
    /// The highest priority (0).
    pub const HIGHEST: Priority = Priority(0);
    /// The default for application traffic (2).
    pub const NORMAL: Priority = Priority(2);
    /// The lowest priority (3).
    pub const LOWEST: Priority = Priority(3);

    /// `Some` for 0..=3.
    pub fn new(level: u8) -> Option<Priority> {
        (usize::from(level) < Self::LEVELS).then_some(Priority(level))
    }

    /// The level, 0..=3.
    pub fn level(self) -> u8 {
        self.0
    }

    /// The level as an index into per-priority arrays.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// How strongly a message's delivery is ordered (extended virtual synchrony).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum DeliveryKind {
    /// Delivered in the ring's total order once every earlier message has been delivered.
    #[default]
    Agreed,
    /// Agreed, and additionally delivered only once every member of the ring is known to
    /// hold the message.
    Safe,
}

impl DeliveryKind {
    /// `"agreed"` or `"safe"`, as in the event log.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Agreed => "agreed",
            DeliveryKind::Safe => "safe",
        }
    }
}

/// Identifies one submitted message: its sender and that sender's message counter (starting at
/// 1). Displayed as `SENDER:N`, the event log's format.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MsgId {
    /// The node that submitted the message.
    pub sender: NodeId,
    /// The sender's counter for this message; 1 for its first.
    pub no: u64,
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.sender.0, self.no)
    }
}
