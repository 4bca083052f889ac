//! The JSON Lines event log: one [`LogEvent`] per line.
//!
//! Both the simulator and a real `aisexec` write this format, and the checker
//! ([`crate::checker`]) reads it, so logs from either source are checked the same way. The
//! format is specified in `docs/event-log.md`. In short, every line is one JSON object tagged by
//! `"ev"`; `t` is nanoseconds, `node` a node id; ring ids are strings `"REP.SEQ"`, message ids
//! `"SENDER:N"`, payload hashes 16 lowercase hex digits ([`PayloadHash`]).
//!
//! Totem-level kinds (`send`, `deliver`, `config`, `stored`, `token`, `crash`, `restart`) are
//! what the checker reads; `service` lines ([`ServiceEvent`]) carry what services above Totem
//! report (the executive's quorum changes) and the checker skips them. The reader rejects an
//! unknown `ev`: a new Totem-level kind changes what the checker must check, so an old reader
//! must not skip it silently, and anything else belongs in a `service` line, which every
//! reader accepts whatever its `service`, `what` and `data`.
//!
//! Write with [`EventLog`] (one line per [`EventLog::write`]; wrap files in a
//! [`std::io::BufWriter`]) and read with [`read_log`]. Serialization goes straight to the
//! writer: ids and hashes are formatted in place, nothing is allocated per event.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, BufRead, Write};

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, SerializeStruct, Serializer};
use sha2::{Digest, Sha256};
use totem_dpdk::{DeliveryKind, MsgId, NodeId, RingId, Seq};

/// The first 8 bytes of the SHA-256 of a message payload; written as 16 lowercase hex digits.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct PayloadHash(pub [u8; 8]);

impl PayloadHash {
    /// Hashes `payload`.
    pub fn of(payload: &[u8]) -> PayloadHash {
        let digest = Sha256::digest(payload);
        let mut out = [0u8; 8];
        out.copy_from_slice(&digest[..8]);
        PayloadHash(out)
    }

    /// Parses exactly 16 hex digits (either case); `None` otherwise.
    pub fn parse(text: &str) -> Option<PayloadHash> {
        let bytes = text.as_bytes();
        if bytes.len() != 16 {
            return None;
        }
        let mut out = [0u8; 8];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
        }
        Some(PayloadHash(out))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for PayloadHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 16];
        for (i, b) in self.0.iter().enumerate() {
            buf[2 * i] = DIGITS[usize::from(b >> 4)];
            buf[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
        }
        // Only ASCII hex digits were written.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

/// The log's payload hash of `payload` (first 8 bytes of SHA-256); `Display` gives the 16 hex
/// digits written in `hash` fields.
pub fn payload_hash(payload: &[u8]) -> PayloadHash {
    PayloadHash::of(payload)
}

/// Parses a ring id written as `"REP.SEQ"` (the `Display` form of [`RingId`]).
pub fn parse_ring_id(text: &str) -> Option<RingId> {
    let (rep, seq) = text.split_once('.')?;
    Some(RingId {
        rep: NodeId(parse_digits(rep)?),
        seq: parse_digits(seq)?,
    })
}

/// Parses a message id written as `"SENDER:N"` (the `Display` form of [`MsgId`]).
pub fn parse_msg_id(text: &str) -> Option<MsgId> {
    let (sender, no) = text.split_once(':')?;
    Some(MsgId {
        sender: NodeId(parse_digits(sender)?),
        no: parse_digits(no)?,
    })
}

/// Decimal digits only (no sign, no spaces), as the writer produces them.
fn parse_digits<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Which configuration a `config` event installs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ConfigKind {
    /// A new ring: the members that formed it.
    Regular,
    /// The end of a ring: the members of the old ring that move on together to the next one.
    Transitional,
}

impl ConfigKind {
    /// `"regular"` or `"transitional"`, as in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigKind::Regular => "regular",
            ConfigKind::Transitional => "transitional",
        }
    }
}

/// Optional first line: the run's parameters, which the checker uses unless overridden.
/// Every field may be absent.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Meta {
    /// Number of nodes in the run.
    pub nodes: Option<u32>,
    /// Flow-control window (`window_size`): upper bound of a token's `fcc`.
    pub window_size: Option<u32>,
    /// Frames a node may send (new plus retransmitted) per token visit (`max_messages`).
    pub max_messages: Option<u32>,
    /// Maximum number of entries in a token's retransmit list.
    pub max_rtr: Option<u32>,
    /// The run ended quiescent: every message that could be delivered was delivered.
    pub drained: Option<bool>,
}

/// `send`: a local submission accepted by Totem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendEvent {
    /// Time, nanoseconds.
    pub t: u64,
    /// The submitting node; equal to `msg.sender`.
    pub node: NodeId,
    /// The message id.
    pub msg: MsgId,
    /// Payload length, bytes.
    pub len: u32,
    /// Payload hash.
    pub hash: PayloadHash,
    /// Requested delivery guarantee.
    pub kind: DeliveryKind,
    /// Priority, 0 (highest) to 3.
    pub prio: u8,
}

impl SendEvent {
    /// A `send` event for `payload` (its length and hash are computed).
    ///
    /// # Panics
    /// If `payload` is longer than `u32::MAX` bytes.
    pub fn new(
        t: u64,
        node: NodeId,
        msg: MsgId,
        kind: DeliveryKind,
        prio: u8,
        payload: &[u8],
    ) -> SendEvent {
        SendEvent {
            t,
            node,
            msg,
            len: u32::try_from(payload.len()).expect("payload over 4 GiB"),
            hash: PayloadHash::of(payload),
            kind,
            prio,
        }
    }
}

/// `deliver`: a message handed to the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliverEvent {
    /// Time, nanoseconds.
    pub t: u64,
    /// The delivering node.
    pub node: NodeId,
    /// The message id.
    pub msg: MsgId,
    /// The ring in which the message was ordered (its original ring, also when it arrived
    /// encapsulated in a later ring's recovery).
    pub ring: RingId,
    /// Sequence number, in `ring`, of the frame that completed the message.
    pub seq: Seq,
    /// Delivery guarantee it was delivered with.
    pub kind: DeliveryKind,
    /// Hash of the delivered payload.
    pub hash: PayloadHash,
    /// Length of the delivered payload, bytes.
    pub len: u32,
}

impl DeliverEvent {
    /// A `deliver` event for `payload` (its length and hash are computed).
    ///
    /// # Panics
    /// If `payload` is longer than `u32::MAX` bytes.
    pub fn new(
        t: u64,
        node: NodeId,
        msg: MsgId,
        ring: RingId,
        seq: Seq,
        kind: DeliveryKind,
        payload: &[u8],
    ) -> DeliverEvent {
        DeliverEvent {
            t,
            node,
            msg,
            ring,
            seq,
            kind,
            hash: PayloadHash::of(payload),
            len: u32::try_from(payload.len()).expect("payload over 4 GiB"),
        }
    }
}

/// `config`: a configuration change delivered to the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEvent {
    /// Time, nanoseconds.
    pub t: u64,
    /// The node that delivered the change.
    pub node: NodeId,
    /// Regular or transitional.
    pub kind: ConfigKind,
    /// Regular: the new ring. Transitional: the ring that is ending (whose remaining messages
    /// follow this event).
    pub ring: RingId,
    /// Members, ascending, without repeats.
    pub members: Vec<NodeId>,
    /// Members that left gracefully, announcing it (ascending); written only when non-empty.
    pub left: Vec<NodeId>,
    /// Members that joined (ascending); written only when non-empty.
    pub joined: Vec<NodeId>,
    /// Members that disappeared without a leave (crashed, unreachable, declared failed);
    /// written only when non-empty.
    pub failed: Vec<NodeId>,
}

/// `stored`: the node first holds the frame `seq` of `ring` (logged for frames carrying a safe
/// message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// Time, nanoseconds.
    pub t: u64,
    /// The node that now holds the frame.
    pub node: NodeId,
    /// The frame's ring.
    pub ring: RingId,
    /// The frame's sequence number.
    pub seq: Seq,
}

/// `token`: an ORF token the node received.
///
/// When `accepted`, the fields after `accepted` are the token as this node forwarded it; when
/// not (a duplicate or old `token_seq`), they are as received and the node did nothing else.
#[derive(Clone, Debug, PartialEq, Eq)]
#[doc(alias = "orf_token")]
pub struct TokenEvent {
    /// Time, nanoseconds.
    pub t: u64,
    /// The receiving node.
    pub node: NodeId,
    /// The token's ring.
    pub ring: RingId,
    /// Token rotation counter.
    pub token_seq: u64,
    /// Whether the node processed the token.
    pub accepted: bool,
    /// Highest sequence number assigned in the ring.
    pub seq: Seq,
    /// Ring-wide all-received-up-to.
    pub aru: Seq,
    /// Node that last lowered `aru` (0: nobody).
    pub aru_addr: NodeId,
    /// Flow-control count: frames sent in the last rotation.
    pub fcc: u32,
    /// Sum of the members' send-queue backlogs.
    pub backlog: u32,
    /// Retransmit requests (sequence numbers of this ring).
    pub rtr: Vec<Seq>,
    /// Frames this node stamped with new sequence numbers on this visit.
    pub sent_new: u32,
    /// Frames this node retransmitted on this visit.
    pub sent_retrans: u32,
    /// This node's send-queue backlog as it reported it on this visit.
    pub my_backlog: u32,
    /// Highest sequence number known to be held by every member.
    pub safe: Seq,
}

/// `service`: something a service above Totem reports (quorum gained or lost, say).
///
/// The Totem layer does not interpret it: the checker skips these lines, and this crate knows
/// no service by name. `service` names the reporting service, `what` the kind of report (both
/// chosen by the writer; lowercase ASCII, digits and `_` by convention), `ring` the regular
/// configuration it concerns, if any, and `data` the service's own fields (a JSON object,
/// documented by the service: `docs/event-log.md` lists the ones the executive writes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEvent {
    /// Time, nanoseconds.
    pub t: u64,
    /// The reporting node.
    pub node: NodeId,
    /// The service, e.g. `"quorum"`; never empty.
    pub service: String,
    /// What it reports, e.g. `"quorate"`; never empty.
    pub what: String,
    /// The ring the report concerns; written only when set.
    pub ring: Option<RingId>,
    /// The service's fields; written only when non-empty (keys in the map's order).
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// One line of the event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEvent {
    /// `meta`: run parameters.
    Meta(Meta),
    /// `send`.
    Send(SendEvent),
    /// `deliver`.
    Deliver(DeliverEvent),
    /// `config`.
    Config(ConfigEvent),
    /// `crash`: the node stopped (all its state is lost).
    Crash {
        /// Time, nanoseconds.
        t: u64,
        /// The node.
        node: NodeId,
    },
    /// `restart`: a crashed node starts again, empty.
    Restart {
        /// Time, nanoseconds.
        t: u64,
        /// The node.
        node: NodeId,
    },
    /// `stored`.
    Stored(StoredEvent),
    /// `token`.
    Token(TokenEvent),
    /// `service`: a service-level report, which the checker skips.
    Service(ServiceEvent),
}

impl LogEvent {
    /// The `ev` tag of this event.
    pub fn name(&self) -> &'static str {
        match self {
            LogEvent::Meta(_) => "meta",
            LogEvent::Send(_) => "send",
            LogEvent::Deliver(_) => "deliver",
            LogEvent::Config(_) => "config",
            LogEvent::Crash { .. } => "crash",
            LogEvent::Restart { .. } => "restart",
            LogEvent::Stored(_) => "stored",
            LogEvent::Token(_) => "token",
            LogEvent::Service(_) => "service",
        }
    }

    /// Time in nanoseconds; `None` for `meta`.
    pub fn t(&self) -> Option<u64> {
        Some(match self {
            LogEvent::Meta(_) => return None,
            LogEvent::Send(e) => e.t,
            LogEvent::Deliver(e) => e.t,
            LogEvent::Config(e) => e.t,
            LogEvent::Crash { t, .. } | LogEvent::Restart { t, .. } => *t,
            LogEvent::Stored(e) => e.t,
            LogEvent::Token(e) => e.t,
            LogEvent::Service(e) => e.t,
        })
    }

    /// The node that logged the event; `None` for `meta`.
    pub fn node(&self) -> Option<NodeId> {
        Some(match self {
            LogEvent::Meta(_) => return None,
            LogEvent::Send(e) => e.node,
            LogEvent::Deliver(e) => e.node,
            LogEvent::Config(e) => e.node,
            LogEvent::Crash { node, .. } | LogEvent::Restart { node, .. } => *node,
            LogEvent::Stored(e) => e.node,
            LogEvent::Token(e) => e.node,
            LogEvent::Service(e) => e.node,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Serialization: field order as documented (t, node, ev, then the event's fields).

/// Serializes a `Display` value as a JSON string, formatted in place.
struct AsStr<'a, T: fmt::Display>(&'a T);

impl<T: fmt::Display> Serialize for AsStr<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

struct Nodes<'a>(&'a [NodeId]);

impl Serialize for Nodes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|n| n.0))
    }
}

struct Seqs<'a>(&'a [Seq]);

impl Serialize for Seqs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|n| n.0))
    }
}

fn head<S: SerializeStruct>(
    st: &mut S,
    t: u64,
    node: NodeId,
    ev: &'static str,
) -> Result<(), S::Error> {
    st.serialize_field("t", &t)?;
    st.serialize_field("node", &node.0)?;
    st.serialize_field("ev", ev)
}

fn opt_field<S: SerializeStruct, T: Serialize>(
    st: &mut S,
    key: &'static str,
    value: Option<T>,
) -> Result<(), S::Error> {
    match value {
        Some(v) => st.serialize_field(key, &v),
        None => st.skip_field(key),
    }
}

fn list_field<S: SerializeStruct>(
    st: &mut S,
    key: &'static str,
    list: &[NodeId],
) -> Result<(), S::Error> {
    if list.is_empty() {
        st.skip_field(key)
    } else {
        st.serialize_field(key, &Nodes(list))
    }
}

impl Serialize for LogEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            LogEvent::Meta(m) => {
                let mut st = s.serialize_struct("LogEvent", 6)?;
                st.serialize_field("ev", "meta")?;
                opt_field(&mut st, "nodes", m.nodes)?;
                opt_field(&mut st, "window_size", m.window_size)?;
                opt_field(&mut st, "max_messages", m.max_messages)?;
                opt_field(&mut st, "max_rtr", m.max_rtr)?;
                opt_field(&mut st, "drained", m.drained)?;
                st.end()
            }
            LogEvent::Send(e) => {
                let mut st = s.serialize_struct("LogEvent", 8)?;
                head(&mut st, e.t, e.node, "send")?;
                st.serialize_field("msg", &AsStr(&e.msg))?;
                st.serialize_field("len", &e.len)?;
                st.serialize_field("hash", &AsStr(&e.hash))?;
                st.serialize_field("kind", e.kind.as_str())?;
                st.serialize_field("prio", &e.prio)?;
                st.end()
            }
            LogEvent::Deliver(e) => {
                let mut st = s.serialize_struct("LogEvent", 9)?;
                head(&mut st, e.t, e.node, "deliver")?;
                st.serialize_field("msg", &AsStr(&e.msg))?;
                st.serialize_field("ring", &AsStr(&e.ring))?;
                st.serialize_field("seq", &e.seq.0)?;
                st.serialize_field("kind", e.kind.as_str())?;
                st.serialize_field("hash", &AsStr(&e.hash))?;
                st.serialize_field("len", &e.len)?;
                st.end()
            }
            LogEvent::Config(e) => {
                let mut st = s.serialize_struct("LogEvent", 9)?;
                head(&mut st, e.t, e.node, "config")?;
                st.serialize_field("kind", e.kind.as_str())?;
                st.serialize_field("ring", &AsStr(&e.ring))?;
                st.serialize_field("members", &Nodes(&e.members))?;
                list_field(&mut st, "left", &e.left)?;
                list_field(&mut st, "joined", &e.joined)?;
                list_field(&mut st, "failed", &e.failed)?;
                st.end()
            }
            LogEvent::Crash { t, node } => {
                let mut st = s.serialize_struct("LogEvent", 3)?;
                head(&mut st, *t, *node, "crash")?;
                st.end()
            }
            LogEvent::Restart { t, node } => {
                let mut st = s.serialize_struct("LogEvent", 3)?;
                head(&mut st, *t, *node, "restart")?;
                st.end()
            }
            LogEvent::Stored(e) => {
                let mut st = s.serialize_struct("LogEvent", 5)?;
                head(&mut st, e.t, e.node, "stored")?;
                st.serialize_field("ring", &AsStr(&e.ring))?;
                st.serialize_field("seq", &e.seq.0)?;
                st.end()
            }
            LogEvent::Token(e) => {
                let mut st = s.serialize_struct("LogEvent", 17)?;
                head(&mut st, e.t, e.node, "token")?;
                st.serialize_field("ring", &AsStr(&e.ring))?;
                st.serialize_field("token_seq", &e.token_seq)?;
                st.serialize_field("accepted", &e.accepted)?;
                st.serialize_field("seq", &e.seq.0)?;
                st.serialize_field("aru", &e.aru.0)?;
                st.serialize_field("aru_addr", &e.aru_addr.0)?;
                st.serialize_field("fcc", &e.fcc)?;
                st.serialize_field("backlog", &e.backlog)?;
                st.serialize_field("rtr", &Seqs(&e.rtr))?;
                st.serialize_field("sent_new", &e.sent_new)?;
                st.serialize_field("sent_retrans", &e.sent_retrans)?;
                st.serialize_field("my_backlog", &e.my_backlog)?;
                st.serialize_field("safe", &e.safe.0)?;
                st.end()
            }
            LogEvent::Service(e) => {
                let mut st = s.serialize_struct("LogEvent", 7)?;
                head(&mut st, e.t, e.node, "service")?;
                st.serialize_field("service", &e.service)?;
                st.serialize_field("what", &e.what)?;
                opt_field(&mut st, "ring", e.ring.as_ref().map(AsStr))?;
                if e.data.is_empty() {
                    st.skip_field("data")?;
                } else {
                    st.serialize_field("data", &e.data)?;
                }
                st.end()
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Deserialization: one flat pass into `Raw`, then a per-`ev` check of the fields.

/// A string that borrows from the input when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// Every field any event may carry; unknown fields are ignored.
#[derive(serde::Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    ev: Str<'a>,
    t: Option<u64>,
    node: Option<u32>,
    #[serde(borrow)]
    msg: Option<Str<'a>>,
    len: Option<u32>,
    #[serde(borrow)]
    hash: Option<Str<'a>>,
    #[serde(borrow)]
    kind: Option<Str<'a>>,
    prio: Option<u8>,
    #[serde(borrow)]
    ring: Option<Str<'a>>,
    seq: Option<u64>,
    members: Option<Vec<u32>>,
    left: Option<Vec<u32>>,
    joined: Option<Vec<u32>>,
    failed: Option<Vec<u32>>,
    token_seq: Option<u64>,
    accepted: Option<bool>,
    aru: Option<u64>,
    aru_addr: Option<u32>,
    fcc: Option<u32>,
    backlog: Option<u32>,
    rtr: Option<Vec<u64>>,
    sent_new: Option<u32>,
    sent_retrans: Option<u32>,
    my_backlog: Option<u32>,
    safe: Option<u64>,
    nodes: Option<u32>,
    window_size: Option<u32>,
    max_messages: Option<u32>,
    max_rtr: Option<u32>,
    drained: Option<bool>,
    #[serde(borrow)]
    service: Option<Str<'a>>,
    #[serde(borrow)]
    what: Option<Str<'a>>,
    data: Option<serde_json::Map<String, serde_json::Value>>,
}

fn need<T, E: de::Error>(v: Option<T>, ev: &str, field: &'static str) -> Result<T, E> {
    v.ok_or_else(|| E::custom(format_args!("`{ev}` event without field `{field}`")))
}

fn delivery_kind<E: de::Error>(s: &str) -> Result<DeliveryKind, E> {
    match s {
        "agreed" => Ok(DeliveryKind::Agreed),
        "safe" => Ok(DeliveryKind::Safe),
        other => Err(E::custom(format_args!(
            "kind `{other}` is neither `agreed` nor `safe`"
        ))),
    }
}

fn ring_id<E: de::Error>(s: &str) -> Result<RingId, E> {
    parse_ring_id(s).ok_or_else(|| E::custom(format_args!("ring `{s}` is not REP.SEQ")))
}

fn nodes(v: Option<Vec<u32>>) -> Vec<NodeId> {
    v.unwrap_or_default().into_iter().map(NodeId).collect()
}

impl Raw<'_> {
    fn into_event<E: de::Error>(self) -> Result<LogEvent, E> {
        let ev: &str = &self.ev.0;
        if ev == "meta" {
            return Ok(LogEvent::Meta(Meta {
                nodes: self.nodes,
                window_size: self.window_size,
                max_messages: self.max_messages,
                max_rtr: self.max_rtr,
                drained: self.drained,
            }));
        }
        let t = need(self.t, ev, "t")?;
        let node = NodeId(need(self.node, ev, "node")?);
        let ring = |r: Option<Str<'_>>| -> Result<RingId, E> { ring_id(&need(r, ev, "ring")?.0) };
        let msg = |m: Option<Str<'_>>| -> Result<MsgId, E> {
            let m = need(m, ev, "msg")?;
            parse_msg_id(&m.0)
                .ok_or_else(|| E::custom(format_args!("msg `{}` is not SENDER:N", m.0)))
        };
        let hash = |h: Option<Str<'_>>| -> Result<PayloadHash, E> {
            let h = need(h, ev, "hash")?;
            PayloadHash::parse(&h.0)
                .ok_or_else(|| E::custom(format_args!("hash `{}` is not 16 hex digits", h.0)))
        };
        Ok(match ev {
            "send" => LogEvent::Send(SendEvent {
                t,
                node,
                msg: msg(self.msg)?,
                len: need(self.len, ev, "len")?,
                hash: hash(self.hash)?,
                kind: delivery_kind(&need(self.kind, ev, "kind")?.0)?,
                prio: need(self.prio, ev, "prio")?,
            }),
            "deliver" => LogEvent::Deliver(DeliverEvent {
                t,
                node,
                msg: msg(self.msg)?,
                ring: ring(self.ring)?,
                seq: Seq(need(self.seq, ev, "seq")?),
                kind: delivery_kind(&need(self.kind, ev, "kind")?.0)?,
                hash: hash(self.hash)?,
                len: need(self.len, ev, "len")?,
            }),
            "config" => {
                let kind = match &*need(self.kind, ev, "kind")?.0 {
                    "regular" => ConfigKind::Regular,
                    "transitional" => ConfigKind::Transitional,
                    other => {
                        return Err(E::custom(format_args!(
                            "config kind `{other}` is neither `regular` nor `transitional`"
                        )));
                    }
                };
                LogEvent::Config(ConfigEvent {
                    t,
                    node,
                    kind,
                    ring: ring(self.ring)?,
                    members: nodes(Some(need(self.members, ev, "members")?)),
                    left: nodes(self.left),
                    joined: nodes(self.joined),
                    failed: nodes(self.failed),
                })
            }
            "crash" => LogEvent::Crash { t, node },
            "restart" => LogEvent::Restart { t, node },
            "stored" => LogEvent::Stored(StoredEvent {
                t,
                node,
                ring: ring(self.ring)?,
                seq: Seq(need(self.seq, ev, "seq")?),
            }),
            "token" => LogEvent::Token(TokenEvent {
                t,
                node,
                ring: ring(self.ring)?,
                token_seq: need(self.token_seq, ev, "token_seq")?,
                accepted: need(self.accepted, ev, "accepted")?,
                seq: Seq(need(self.seq, ev, "seq")?),
                aru: Seq(need(self.aru, ev, "aru")?),
                aru_addr: NodeId(need(self.aru_addr, ev, "aru_addr")?),
                fcc: need(self.fcc, ev, "fcc")?,
                backlog: need(self.backlog, ev, "backlog")?,
                rtr: need(self.rtr, ev, "rtr")?.into_iter().map(Seq).collect(),
                sent_new: need(self.sent_new, ev, "sent_new")?,
                sent_retrans: need(self.sent_retrans, ev, "sent_retrans")?,
                my_backlog: need(self.my_backlog, ev, "my_backlog")?,
                safe: Seq(need(self.safe, ev, "safe")?),
            }),
            "service" => {
                let name = |v: Option<Str<'_>>, field: &'static str| -> Result<String, E> {
                    let v = need(v, ev, field)?.0.into_owned();
                    if v.is_empty() {
                        return Err(E::custom(format_args!(
                            "`service` event with empty `{field}`"
                        )));
                    }
                    Ok(v)
                };
                LogEvent::Service(ServiceEvent {
                    t,
                    node,
                    service: name(self.service, "service")?,
                    what: name(self.what, "what")?,
                    ring: self.ring.map(|r| ring_id(&r.0)).transpose()?,
                    data: self.data.unwrap_or_default(),
                })
            }
            other => return Err(E::custom(format_args!("unknown event `{other}`"))),
        })
    }
}

impl<'de> Deserialize<'de> for LogEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Raw::deserialize(d)?.into_event()
    }
}

// ---------------------------------------------------------------------------------------------
// Reading and writing.

/// Why a log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The path given.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Reading failed at this line (1-based).
    #[error("line {line}: read error: {source}")]
    Io {
        /// 1-based line number.
        line: usize,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The line (1-based) is not a valid event.
    #[error("line {line}: {source}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        #[source]
        source: serde_json::Error,
    },
    /// An error reading one of several files ([`crate::checker::check_files`]).
    #[error("{path}: {source}")]
    InFile {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: Box<LogError>,
    },
}

/// Reads a whole log: one event per non-blank line.
///
/// # Errors
/// [`LogError::Io`] or [`LogError::Parse`] with the 1-based line number of the first bad line.
pub fn read_log(input: impl BufRead) -> Result<Vec<LogEvent>, LogError> {
    Ok(read_log_with_lines(input)?.0)
}

/// [`read_log`], also returning the 1-based line number of each event.
pub(crate) fn read_log_with_lines(
    mut input: impl BufRead,
) -> Result<(Vec<LogEvent>, Vec<usize>), LogError> {
    let mut events = Vec::new();
    let mut lines = Vec::new();
    let mut buf = String::new();
    let mut line = 0usize;
    loop {
        buf.clear();
        let n = input.read_line(&mut buf).map_err(|source| LogError::Io {
            line: line + 1,
            source,
        })?;
        if n == 0 {
            break;
        }
        line += 1;
        let text = buf.trim();
        if text.is_empty() {
            continue;
        }
        let ev = serde_json::from_str(text).map_err(|source| LogError::Parse { line, source })?;
        events.push(ev);
        lines.push(line);
    }
    Ok((events, lines))
}

/// Appends events to a writer, one JSON line each.
///
/// Each [`EventLog::write`] issues several small writes: give it a buffered writer (such as
/// [`std::io::BufWriter`]) for files and sockets, and call [`EventLog::flush`] at the end.
#[derive(Debug)]
pub struct EventLog<W: Write> {
    out: W,
    lines: u64,
}

impl<W: Write> EventLog<W> {
    /// A log appending to `out`.
    pub fn new(out: W) -> EventLog<W> {
        EventLog { out, lines: 0 }
    }

    /// Appends one event as one line.
    ///
    /// # Errors
    /// The writer's error.
    pub fn write(&mut self, event: &LogEvent) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, event)?;
        self.out.write_all(b"\n")?;
        self.lines += 1;
        Ok(())
    }

    /// Number of events written so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Flushes the writer.
    ///
    /// # Errors
    /// The writer's error.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Gives the writer back (not flushed).
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_first_eight_bytes_of_sha256() {
        // SHA-256("abc") = ba7816bf8f01cfea 414140de...
        assert_eq!(payload_hash(b"abc").to_string(), "ba7816bf8f01cfea");
        assert_eq!(
            PayloadHash::parse("BA7816BF8F01CFEA"),
            Some(payload_hash(b"abc"))
        );
        assert_eq!(PayloadHash::parse("ba7816bf8f01cfe"), None);
        assert_eq!(PayloadHash::parse("ba7816bf8f01cfeg"), None);
    }

    #[test]
    fn ids_parse_strictly() {
        assert_eq!(
            parse_ring_id("3.12"),
            Some(RingId {
                rep: NodeId(3),
                seq: 12
            })
        );
        assert_eq!(
            parse_msg_id("2:7"),
            Some(MsgId {
                sender: NodeId(2),
                no: 7
            })
        );
        for bad in ["", "3", "3.", ".4", "+3.4", "3.4.5", "a.4", "3 .4"] {
            assert_eq!(parse_ring_id(bad), None, "{bad}");
        }
        for bad in ["", "2", "2:", ":7", "2:-7", "2:7:1"] {
            assert_eq!(parse_msg_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn escaped_strings_still_parse() {
        let line = r#"{"t":1,"node":1,"ev":"crash","x":"\u0041"}"#;
        let ev: LogEvent = serde_json::from_str(line).unwrap();
        assert_eq!(
            ev,
            LogEvent::Crash {
                t: 1,
                node: NodeId(1)
            }
        );
        let line = r#"{"t":1,"node":1,"ev":"stored","ring":"1\u002e4","seq":2}"#;
        let ev: LogEvent = serde_json::from_str(line).unwrap();
        assert_eq!(ev.name(), "stored");
    }
}
