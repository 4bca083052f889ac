//! Configuration of one Totem node: identity, ring, frame size, flow control and timers.
//!
//! Names follow corosync's `totem` section where a corosync key exists, so operators can carry
//! their knowledge over; defaults are explained on each field.

use crate::crypto::{EpochKey, KeyError, Protection};
use crate::time::Duration;
use crate::types::NodeId;

/// What can be wrong with a [`Config`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `node_id` is 0 (reserved for "nobody").
    #[error("node id 0 is reserved; give every node an id from 1 to 4294967295")]
    ZeroNodeId,
    /// This node is not in `members`.
    #[error("node {0} is not in the member list")]
    NotAMember(NodeId),
    /// `members` lists a node twice or contains 0.
    #[error("member list has a duplicate or a 0 id")]
    BadMembers,
    /// `max_frame_size` is too small to carry a message chunk, or too large for a u16 length.
    #[error("max_frame_size {0} is outside 128..=65000 bytes")]
    FrameSize(usize),
    /// A flow-control limit is zero or inconsistent.
    #[error("flow control: {0}")]
    FlowControl(&'static str),
    /// The key does not fit the protection (missing with secauth on, for example).
    #[error("frame protection: {0}")]
    Key(#[from] KeyError),
    /// `token_pace` is not below the token hold (half the token retransmit interval).
    #[error(
        "token_pace {pace_us} µs must be below the token hold of {hold_us} µs (half the token \
         retransmit interval)"
    )]
    TokenPace {
        /// The pace asked for.
        pace_us: u64,
        /// The token hold it must stay under.
        hold_us: u64,
    },
}

/// Configuration of one node. Build with [`Config::new`] and adjust fields; [`Config::validate`]
/// is called by the core's constructor.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's id (corosync `nodeid`); never 0.
    pub node_id: NodeId,
    /// An initial ring formed without a membership round: every listed node must be started
    /// with the same list at the same time (benchmarks, unit tests). Empty (the normal case):
    /// the node starts alone and forms or joins a ring through the membership protocol.
    pub members: Vec<NodeId>,
    /// The highest ring sequence number this node has used, as persisted by the caller (0 on
    /// first start). New rings get a higher one, so ring ids never repeat across restarts. The
    /// core reports each new value with [`crate::srp::Event::RingSeq`] for the caller to persist.
    pub ring_seq: u64,
    /// Largest Totem frame, in bytes, before encryption: the transport's payload MTU (for UDP
    /// over Ethernet, the link MTU minus 28 bytes of IP and UDP headers: 1472 for a 1500-byte
    /// link, 8972 for jumbo frames). Small messages are packed many per frame up to this size.
    pub max_frame_size: usize,
    /// Most frames (new plus retransmitted) the whole ring may send in one token rotation
    /// (corosync `window_size`, default 50). Bounds the burst that receive buffers must absorb.
    pub window_size: u32,
    /// Most frames one node may send per token visit (corosync `max_messages`, default 17).
    pub max_messages: u32,
    /// Most retransmit requests the token carries (corosync's `RETRANSMIT_ENTRIES_MAX`, 30).
    pub max_rtr: usize,
    /// Largest message an application may submit (default 64 MiB). Larger messages are
    /// fragmented across frames and reassembled before delivery.
    pub max_message_size: usize,
    /// Most messages waiting in this node's send queues (all priorities together). A submit
    /// beyond it is refused with backpressure (the client's TRY_AGAIN). Default 16384.
    pub max_queued_messages: usize,
    /// Most payload bytes waiting in the send queues (default 8 MiB). A submit beyond it is
    /// refused with backpressure, except that a message is always taken when nothing is
    /// queued (so messages up to `max_message_size` can be sent with any bound). It bounds
    /// the queueing delay of a saturated sender in bytes, whatever the message size: 8 MiB
    /// is ~70 ms of a 1 Gb/s ring, enough to keep every token visit full.
    pub max_queued_bytes: usize,
    /// Largest distance, in frames, between this node's all-received-up-to point and a frame
    /// it will buffer (default 16384). A frame further ahead is dropped and counted, to be
    /// retransmitted later: a forged or corrupt sequence number cannot exhaust memory.
    pub receive_window: u64,
    /// Token timeout (corosync `token`). Default 100 ms: failure detection must let the
    /// survivors install a new membership within 300 ms on kernel UDP. Used by membership.
    pub token_timeout: Duration,
    /// How many token retransmissions fit in `token_timeout` (corosync
    /// `token_retransmits_before_loss_const`, default 4).
    pub token_retransmits_before_loss: u32,
    /// Idle rotations (no new frame, no retransmit request) after which the representative
    /// holds the token for [`Config::token_hold`] before passing it on (corosync
    /// `seqno_unchanged_const`, whose default is 30; ours is 5). A local submit ends the hold
    /// at once, and a member with a message to send ends it with a token hold cancel, so
    /// holding early costs little latency and saves the CPU an idle token burns going round.
    pub seqno_unchanged_const: u32,
    /// Token pacing on a lightly loaded ring: the representative passes the token on no
    /// sooner than this after it last did while the last rotation stamped fewer frames than
    /// half the window and left no member with messages waiting, so the messages submitted
    /// meanwhile travel in one rotation instead of a rotation each (fewer token visits and
    /// wake-ups per message, at the cost of up to this much latency). Zero (the default
    /// here) passes the token at once; a busy ring is never paced. Must stay below
    /// [`Config::token_hold`].
    pub token_pace: Duration,
    /// Token rotations during which the ring's all-received-up-to point may stay stuck on one
    /// member (the token's `aru_addr`) while frames are missing before the others declare it
    /// failed to receive (corosync `fail_recv_const`, whose 2500 counts rotations of a ring
    /// that holds idle tokens; here idle tokens are held and retransmission is prompt, so the
    /// default is 50: a member that misses every retransmission for 50 rotations is cut off
    /// instead of stalling the ring).
    pub fail_recv_const: u32,
    /// Interval between join messages while gathering (corosync `join`; default 25 ms, a quarter of the token
    /// timeout, where corosync has 50 ms: a short join interval keeps the AMF's contact lease short).
    pub join_timeout: Duration,
    /// How long to wait for every known node to agree on the membership before declaring the
    /// silent ones failed (corosync `consensus`, default 1.2 × `token_timeout` = 120 ms).
    pub consensus_timeout: Duration,
    /// A gap this long between the time an input arrives and the deadline the core asked to
    /// be called at ([`crate::srp::Totem::poll_timeout`]) means this node's process did not
    /// run (a VM pause, swapping, a stalled write, a debugger): its own timers expired while
    /// it could observe nothing, so they are not evidence that the others failed. Default
    /// 50 ms, half of `token_timeout` (the ratio corosync uses for its pause detection).
    /// [`Duration::ZERO`] turns detection off. See [`crate::srp::Stats::pauses_detected`].
    pub pause_threshold: Duration,
    /// Interval of the representative's merge-detect announcements, by which partitions that
    /// can talk again find each other (corosync `merge`, default 200 ms).
    pub merge_timeout: Duration,
    /// Counter of this node's first message ([`crate::MsgId::no`]), default 1. A restarted
    /// node continues after the last counter it used, so message ids never repeat.
    pub first_msg_no: u64,
    /// How frames are protected on the wire (default
    /// [`Protection::Integrity`]: a CRC-32 only; the executive defaults to `Encrypt`).
    pub protection: Protection,
    /// The key epoch to seal with; required unless `protection` is `Integrity`.
    pub key: Option<EpochKey>,
    /// First nonce counter (default 0). Counters must never repeat under one key, restarts
    /// included: persist a value above [`crate::srp::Stats::next_nonce`] while running and pass
    /// it here at the next start.
    pub nonce_start: u64,
    /// Emit [`crate::srp::Observation`] events (tokens seen, safe frames stored) for the
    /// event-log checker (`totem-evlog`). Off in production.
    pub observe: bool,
}

impl Config {
    /// A configuration with the documented defaults for `node_id` in a ring of `members`.
    pub fn new(node_id: NodeId, members: Vec<NodeId>) -> Config {
        Config {
            node_id,
            members,
            ring_seq: 0,
            max_frame_size: 1472,
            window_size: 50,
            max_messages: 17,
            max_rtr: 30,
            max_message_size: crate::pg::DEFAULT_MAX_MESSAGE_SIZE,
            max_queued_messages: 16384,
            max_queued_bytes: 8 << 20,
            receive_window: 16384,
            token_timeout: Duration::from_millis(100),
            token_retransmits_before_loss: 4,
            seqno_unchanged_const: 5,
            token_pace: Duration(0),
            fail_recv_const: 50,
            join_timeout: Duration::from_millis(25),
            consensus_timeout: Duration::from_millis(120),
            merge_timeout: Duration::from_millis(200),
            pause_threshold: Duration::from_millis(50),
            first_msg_no: 1,
            protection: Protection::Integrity,
            key: None,
            nonce_start: 0,
            observe: false,
        }
    }

    /// Time after which the last forwarded token is sent again (corosync's formula:
    /// `token / (token_retransmits_before_loss + 0.2)`, 23.8 ms with the defaults).
    pub fn token_retransmit(&self) -> Duration {
        let n = u64::from(self.token_retransmits_before_loss) * 10 + 2;
        Duration(self.token_timeout.0 * 10 / n.max(1))
    }

    /// How long the representative holds an idle ring's token (corosync `hold`): half of
    /// `token_retransmit`, 11.9 ms with the defaults, so the hold ends well before the previous
    /// node would re-send the token.
    pub fn token_hold(&self) -> Duration {
        Duration(self.token_retransmit().0 / 2)
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// The first problem found, as a [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.node_id.is_some() {
            return Err(ConfigError::ZeroNodeId);
        }
        let mut sorted = self.members.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != self.members.len() || sorted.iter().any(|m| !m.is_some()) {
            return Err(ConfigError::BadMembers);
        }
        if !sorted.is_empty() && !sorted.contains(&self.node_id) {
            return Err(ConfigError::NotAMember(self.node_id));
        }
        if !(128..=65000).contains(&self.max_frame_size) {
            return Err(ConfigError::FrameSize(self.max_frame_size));
        }
        if self.protection != Protection::Integrity && self.key.is_none() {
            return Err(ConfigError::Key(KeyError::Missing));
        }
        if self.window_size == 0 || self.max_messages == 0 {
            return Err(ConfigError::FlowControl(
                "window_size and max_messages must be > 0",
            ));
        }
        if self.max_queued_messages == 0 || self.max_queued_bytes == 0 {
            return Err(ConfigError::FlowControl(
                "max_queued_messages and max_queued_bytes must be > 0",
            ));
        }
        if self.receive_window < u64::from(self.window_size) * 2 {
            return Err(ConfigError::FlowControl(
                "receive_window must be >= 2 * window_size",
            ));
        }
        if self.token_pace.0 > 0 && self.token_pace >= self.token_hold() {
            return Err(ConfigError::TokenPace {
                pace_us: self.token_pace.0 / 1000,
                hold_us: self.token_hold().0 / 1000,
            });
        }
        Ok(())
    }
}
