//! EVT (SA Forum event service, B.01.01 semantics) on the IPC socket and on the ring. The
//! executive's half is `ais_core::services::evt`.
//!
//! An event is a local object of the client library until it is published (allocation,
//! attributes and data never reach the executive). The executive sees channel opens, closes
//! and unlinks, subscriptions, publishes and retention clears. A publish is one
//! [`RingMessage::Publish`] in agreed order; every node delivers it to its own matching
//! subscribers, so events of one priority reach every subscriber in the ring's total order.
//! Deliveries are flow-controlled: the executive keeps at most a window of unacknowledged
//! deliveries in flight per connection ([`Request::Consumed`] acknowledges them) and queues
//! the rest up to a bound; past the bound a subscription is told of lost events
//! ([`EVENT_ID_LOST`], [`LOST_EVENT_PATTERN`]) instead of losing them silently.

use bytes::Bytes;

use crate::codec::{DecodeError, Reader, Writer};
use crate::ipc::{AisError, Message, Protocol, ServiceId};

/// The EVT protocol.
#[derive(Debug, Clone, Copy)]
pub struct EvtProtocol;

impl Protocol for EvtProtocol {
    const ID: ServiceId = ServiceId(7);
    const NAME: &'static str = "evt";
    type Request = Request;
    type Response = Response;
    type Callback = Callback;
}

/// `SA_EVT_CHANNEL_PUBLISHER`.
pub const OPEN_PUBLISHER: u8 = 0x1;
/// `SA_EVT_CHANNEL_SUBSCRIBER`.
pub const OPEN_SUBSCRIBER: u8 = 0x2;
/// `SA_EVT_CHANNEL_CREATE`.
pub const OPEN_CREATE: u8 = 0x4;
/// Every open flag.
pub const OPEN_FLAGS: u8 = OPEN_PUBLISHER | OPEN_SUBSCRIBER | OPEN_CREATE;

/// `SA_EVT_HIGHEST_PRIORITY`.
pub const HIGHEST_PRIORITY: u8 = 0;
/// `SA_EVT_LOWEST_PRIORITY`.
pub const LOWEST_PRIORITY: u8 = 3;
/// Number of priorities.
pub const PRIORITIES: usize = 4;

/// `SA_EVT_EVENTID_NONE`.
pub const EVENT_ID_NONE: u64 = 0;
/// `SA_EVT_EVENTID_LOST`: the id of a lost-event notification.
pub const EVENT_ID_LOST: u64 = 1;
/// The only pattern of a lost-event notification (`SA_EVT_LOST_EVENT_PATTERN`).
pub const LOST_EVENT_PATTERN: &[u8] = b"SA_EVT_LOST_EVENT_PATTERN";
/// The publisher name of a lost-event notification.
pub const LOST_EVENT_PUBLISHER: &[u8] = b"EVT";

/// `SA_TIME_END` as a retention time: never expires.
pub const TIME_END: u64 = i64::MAX as u64;
/// Longest channel or publisher name (`SaNameT`).
pub const MAX_NAME: usize = 256;
/// Most event data bytes (`SA_EVT_DATA_MAX_LEN`, as openais): more is `SA_AIS_ERR_TOO_BIG`.
pub const MAX_DATA: usize = 64 * 1024;
/// Most patterns in one event, and most filters in one subscription.
pub const MAX_PATTERNS: usize = 64;
/// Longest pattern or filter (more is `SA_AIS_ERR_TOO_BIG`).
pub const MAX_PATTERN: usize = 4096;

/// A filter's type (`SaEvtEventFilterTypeT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FilterType {
    /// `SA_EVT_PREFIX_FILTER`: the pattern starts with the filter's bytes.
    Prefix,
    /// `SA_EVT_SUFFIX_FILTER`: the pattern ends with them.
    Suffix,
    /// `SA_EVT_EXACT_FILTER`: the pattern is them.
    Exact,
    /// `SA_EVT_PASS_ALL_FILTER`: any pattern.
    PassAll,
}

impl FilterType {
    /// The specification's value.
    pub fn code(self) -> u8 {
        match self {
            FilterType::Prefix => 1,
            FilterType::Suffix => 2,
            FilterType::Exact => 3,
            FilterType::PassAll => 4,
        }
    }

    /// The type of a code, `None` for an unknown one (`SA_AIS_ERR_INVALID_PARAM`).
    pub fn from_code(c: u8) -> Option<FilterType> {
        Some(match c {
            1 => FilterType::Prefix,
            2 => FilterType::Suffix,
            3 => FilterType::Exact,
            4 => FilterType::PassAll,
            _ => return None,
        })
    }
}

/// One filter of a subscription (`SaEvtEventFilterT`); its type is kept as its code so an
/// unknown one reaches the executive and is answered `SA_AIS_ERR_INVALID_PARAM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// [`FilterType::code`].
    pub kind: u8,
    /// The bytes compared.
    pub pattern: Bytes,
}

impl Filter {
    /// Whether this filter passes `pattern` (bytes, compared as bytes: a NUL is a byte like
    /// any other). An unknown type passes nothing.
    pub fn passes(&self, pattern: &[u8]) -> bool {
        match FilterType::from_code(self.kind) {
            Some(FilterType::Prefix) => pattern.starts_with(&self.pattern),
            Some(FilterType::Suffix) => pattern.ends_with(&self.pattern),
            Some(FilterType::Exact) => pattern == &self.pattern[..],
            Some(FilterType::PassAll) => true,
            None => false,
        }
    }
}

/// Whether an event with `patterns` matches a subscription with `filters`: filter *i* is
/// applied to pattern *i*; a filter without a pattern is applied to the empty pattern, and
/// patterns without a filter pass (OpenSAF's rule; openais compared only the shorter list).
pub fn matches(filters: &[Filter], patterns: &[Bytes]) -> bool {
    filters.iter().enumerate().all(|(i, f)| {
        let p = patterns.get(i).map_or(&[][..], |p| &p[..]);
        f.passes(p)
    })
}

/// What an event carries besides its data (`saEvtEventAttributesGet`'s values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHeader {
    /// Its cluster-wide id ([`EVENT_ID_LOST`] for a lost-event notification).
    pub id: u64,
    /// 0 (highest) to 3 (lowest).
    pub priority: u8,
    /// How long it stays on the channel after its publication, nanoseconds (0: not
    /// retained; [`TIME_END`]: until cleared).
    pub retention: u64,
    /// When it was published, nanoseconds since the UNIX epoch (the publisher's clock).
    pub publish_time: u64,
    /// The publisher's name.
    pub publisher: Bytes,
    /// Its patterns.
    pub patterns: Vec<Bytes>,
}

fn put_header(w: &mut Writer, h: &EventHeader) {
    w.u64(h.id)
        .u8(h.priority)
        .u64(h.retention)
        .u64(h.publish_time)
        .short_bytes(&h.publisher);
    put_patterns(w, &h.patterns);
}

fn get_header(r: &mut Reader) -> Result<EventHeader, DecodeError> {
    Ok(EventHeader {
        id: r.u64("event id")?,
        priority: r.u8("priority")?,
        retention: r.u64("retention time")?,
        publish_time: r.u64("publish time")?,
        publisher: r.short_bytes("publisher name")?,
        patterns: get_patterns(r)?,
    })
}

fn put_patterns(w: &mut Writer, patterns: &[Bytes]) {
    w.count(patterns.len());
    for p in patterns {
        w.short_bytes(p);
    }
}

fn get_patterns(r: &mut Reader) -> Result<Vec<Bytes>, DecodeError> {
    let n = r.count("patterns", 2)?;
    (0..n).map(|_| r.short_bytes("pattern")).collect()
}

fn put_filters(w: &mut Writer, filters: &[Filter]) {
    w.count(filters.len());
    for f in filters {
        w.u8(f.kind).short_bytes(&f.pattern);
    }
}

fn get_filters(r: &mut Reader) -> Result<Vec<Filter>, DecodeError> {
    let n = r.count("filters", 3)?;
    (0..n)
        .map(|_| {
            Ok(Filter {
                kind: r.u8("filter type")?,
                pattern: r.short_bytes("filter")?,
            })
        })
        .collect()
}

fn unknown(op: u16) -> DecodeError {
    DecodeError::UnknownOp { service: "evt", op }
}

/// One channel in a [`Response::List`] (for `aisctl evt ls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Its name.
    pub name: Bytes,
    /// Unlinked (its name is free; it lives until its last close).
    pub unlinked: bool,
    /// Opens of it, all nodes together.
    pub opens: u32,
    /// Events retained on it.
    pub retained: u32,
}

/// An EVT request. Channel handles are the executive's numbers for one open of one channel
/// by one connection.
///
/// Not `non_exhaustive`: the executive's handler must answer every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `saEvtChannelOpen`: answered [`Response::Opened`].
    Open {
        /// The channel's name.
        name: Bytes,
        /// `OPEN_*` flags.
        flags: u8,
    },
    /// `saEvtChannelOpenAsync`: answered `Ok`, then [`Callback::Open`].
    OpenAsync {
        /// The channel's name.
        name: Bytes,
        /// `OPEN_*` flags.
        flags: u8,
        /// The caller's number for it.
        invocation: u64,
    },
    /// `saEvtChannelClose`: its subscriptions end, its undelivered events are dropped.
    Close {
        /// The channel handle.
        channel: u64,
    },
    /// `saEvtChannelUnlink`: the name is freed at once; the channel lives until its last
    /// close.
    Unlink {
        /// The channel's name.
        name: Bytes,
    },
    /// `saEvtEventPublish`: answered [`Response::Published`] once Totem took it.
    Publish {
        /// The channel handle.
        channel: u64,
        /// Its header (the `id` is ignored: the executive assigns it).
        header: EventHeader,
        /// Its data.
        data: Bytes,
    },
    /// `saEvtEventSubscribe`.
    Subscribe {
        /// The channel handle.
        channel: u64,
        /// The caller's id for the subscription (unique per channel handle).
        subscription: u32,
        /// Its filters.
        filters: Vec<Filter>,
    },
    /// `saEvtEventUnsubscribe`.
    Unsubscribe {
        /// The channel handle.
        channel: u64,
        /// The subscription.
        subscription: u32,
    },
    /// `saEvtEventRetentionTimeClear`.
    RetentionTimeClear {
        /// The channel handle.
        channel: u64,
        /// The event.
        event: u64,
    },
    /// The client read `count` more deliveries ([`Callback::Deliver`]): the executive may
    /// send as many more. Not answered (the client sends it and reads on; an error in it,
    /// such as a connection with nothing in flight, is ignored).
    Consumed {
        /// How many.
        count: u32,
    },
    /// The channels this node knows (`aisctl evt ls`), from the `start`-th by name:
    /// answered [`Response::List`].
    List {
        /// The first one's position (0 for the first page).
        start: u32,
    },
}

const OP_OPEN: u16 = 80;
const OP_OPEN_ASYNC: u16 = 81;
const OP_CLOSE: u16 = 82;
const OP_UNLINK: u16 = 83;
const OP_PUBLISH: u16 = 84;
const OP_SUBSCRIBE: u16 = 85;
const OP_UNSUBSCRIBE: u16 = 86;
const OP_CLEAR: u16 = 87;
const OP_CONSUMED: u16 = 88;
const OP_LIST: u16 = 89;

impl Message for Request {
    fn op(&self) -> u16 {
        match self {
            Request::Open { .. } => OP_OPEN,
            Request::OpenAsync { .. } => OP_OPEN_ASYNC,
            Request::Close { .. } => OP_CLOSE,
            Request::Unlink { .. } => OP_UNLINK,
            Request::Publish { .. } => OP_PUBLISH,
            Request::Subscribe { .. } => OP_SUBSCRIBE,
            Request::Unsubscribe { .. } => OP_UNSUBSCRIBE,
            Request::RetentionTimeClear { .. } => OP_CLEAR,
            Request::Consumed { .. } => OP_CONSUMED,
            Request::List { .. } => OP_LIST,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Request::Open { .. } => "EvtChannelOpen",
            Request::OpenAsync { .. } => "EvtChannelOpenAsync",
            Request::Close { .. } => "EvtChannelClose",
            Request::Unlink { .. } => "EvtChannelUnlink",
            Request::Publish { .. } => "EvtEventPublish",
            Request::Subscribe { .. } => "EvtEventSubscribe",
            Request::Unsubscribe { .. } => "EvtEventUnsubscribe",
            Request::RetentionTimeClear { .. } => "EvtEventRetentionTimeClear",
            Request::Consumed { .. } => "EvtConsumed",
            Request::List { .. } => "EvtList",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Request::Open { name, flags } => {
                w.short_bytes(name).u8(*flags);
            }
            Request::OpenAsync {
                name,
                flags,
                invocation,
            } => {
                w.short_bytes(name).u8(*flags).u64(*invocation);
            }
            Request::Close { channel } => {
                w.u64(*channel);
            }
            Request::Unlink { name } => {
                w.short_bytes(name);
            }
            Request::Publish {
                channel,
                header,
                data,
            } => {
                w.u64(*channel);
                put_header(w, header);
                return data.clone();
            }
            Request::Subscribe {
                channel,
                subscription,
                filters,
            } => {
                w.u64(*channel).u32(*subscription);
                put_filters(w, filters);
            }
            Request::Unsubscribe {
                channel,
                subscription,
            } => {
                w.u64(*channel).u32(*subscription);
            }
            Request::RetentionTimeClear { channel, event } => {
                w.u64(*channel).u64(*event);
            }
            Request::Consumed { count } => {
                w.u32(*count);
            }
            Request::List { start } => {
                w.u32(*start);
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            OP_OPEN => Request::Open {
                name: r.short_bytes("name")?,
                flags: r.u8("open flags")?,
            },
            OP_OPEN_ASYNC => Request::OpenAsync {
                name: r.short_bytes("name")?,
                flags: r.u8("open flags")?,
                invocation: r.u64("invocation")?,
            },
            OP_CLOSE => Request::Close {
                channel: r.u64("channel")?,
            },
            OP_UNLINK => Request::Unlink {
                name: r.short_bytes("name")?,
            },
            OP_PUBLISH => Request::Publish {
                channel: r.u64("channel")?,
                header: get_header(r)?,
                data: r.rest(),
            },
            OP_SUBSCRIBE => Request::Subscribe {
                channel: r.u64("channel")?,
                subscription: r.u32("subscription")?,
                filters: get_filters(r)?,
            },
            OP_UNSUBSCRIBE => Request::Unsubscribe {
                channel: r.u64("channel")?,
                subscription: r.u32("subscription")?,
            },
            OP_CLEAR => Request::RetentionTimeClear {
                channel: r.u64("channel")?,
                event: r.u64("event id")?,
            },
            OP_CONSUMED => Request::Consumed {
                count: r.u32("count")?,
            },
            OP_LIST => Request::List {
                start: r.u32("start")?,
            },
            other => return Err(unknown(other)),
        })
    }
}

/// The EVT answers besides `Ok` and `Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// A channel was opened: its handle.
    Opened {
        /// The channel handle.
        channel: u64,
    },
    /// An event was published: its id.
    Published {
        /// The event id.
        event: u64,
    },
    /// A page of [`Request::List`].
    List {
        /// The channels.
        items: Vec<ChannelInfo>,
        /// Where the next page starts, if there is one.
        next: Option<u32>,
    },
}

const R_OPENED: u16 = 80;
const R_PUBLISHED: u16 = 81;
const R_LIST: u16 = 82;

impl Message for Response {
    fn op(&self) -> u16 {
        match self {
            Response::Opened { .. } => R_OPENED,
            Response::Published { .. } => R_PUBLISHED,
            Response::List { .. } => R_LIST,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Response::Opened { .. } => "EvtOpened",
            Response::Published { .. } => "EvtPublished",
            Response::List { .. } => "EvtList",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Response::Opened { channel } => {
                w.u64(*channel);
            }
            Response::Published { event } => {
                w.u64(*event);
            }
            Response::List { items, next } => {
                w.count(items.len());
                for c in items {
                    w.short_bytes(&c.name)
                        .u8(u8::from(c.unlinked))
                        .u32(c.opens)
                        .u32(c.retained);
                }
                match next {
                    None => {
                        w.u8(0);
                    }
                    Some(n) => {
                        w.u8(1).u32(*n);
                    }
                }
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            R_OPENED => Response::Opened {
                channel: r.u64("channel")?,
            },
            R_PUBLISHED => Response::Published {
                event: r.u64("event id")?,
            },
            R_LIST => {
                let n = r.count("channels", 2 + 1 + 4 + 4)?;
                let items = (0..n)
                    .map(|_| {
                        Ok(ChannelInfo {
                            name: r.short_bytes("name")?,
                            unlinked: r.bool("unlinked")?,
                            opens: r.u32("opens")?,
                            retained: r.u32("retained")?,
                        })
                    })
                    .collect::<Result<_, DecodeError>>()?;
                let next = if r.bool("more")? {
                    Some(r.u32("next")?)
                } else {
                    None
                };
                Response::List { items, next }
            }
            other => return Err(unknown(other)),
        })
    }
}

/// What the executive sends unasked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Callback {
    /// `SaEvtChannelOpenCallbackT`: the outcome of a [`Request::OpenAsync`].
    Open {
        /// The caller's number.
        invocation: u64,
        /// The channel handle, or why not.
        result: Result<u64, AisError>,
    },
    /// `SaEvtEventDeliverCallbackT`: an event for a subscription (or a lost-event
    /// notification: id [`EVENT_ID_LOST`]). Counts toward the connection's window until
    /// acknowledged with [`Request::Consumed`].
    Deliver {
        /// The channel handle.
        channel: u64,
        /// The subscription.
        subscription: u32,
        /// The event's attributes.
        header: EventHeader,
        /// Its data.
        data: Bytes,
    },
}

const C_OPEN: u16 = 80;
const C_DELIVER: u16 = 81;

impl Message for Callback {
    fn op(&self) -> u16 {
        match self {
            Callback::Open { .. } => C_OPEN,
            Callback::Deliver { .. } => C_DELIVER,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Callback::Open { .. } => "EvtChannelOpenCallback",
            Callback::Deliver { .. } => "EvtEventDeliverCallback",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Callback::Open { invocation, result } => {
                w.u64(*invocation);
                match result {
                    Ok(h) => {
                        w.u32(1).u64(*h);
                    }
                    Err(e) => {
                        w.u32(e.code());
                    }
                }
            }
            Callback::Deliver {
                channel,
                subscription,
                header,
                data,
            } => {
                w.u64(*channel).u32(*subscription);
                put_header(w, header);
                return data.clone();
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            C_OPEN => {
                let invocation = r.u64("invocation")?;
                let result = match r.u32("error")? {
                    1 => Ok(r.u64("channel")?),
                    code => Err(AisError::from_code(code)),
                };
                Callback::Open { invocation, result }
            }
            C_DELIVER => Callback::Deliver {
                channel: r.u64("channel")?,
                subscription: r.u32("subscription")?,
                header: get_header(r)?,
                data: r.rest(),
            },
            other => return Err(unknown(other)),
        })
    }
}

/// A channel's cluster-wide identity: its name, and 0 while it is linked or the unlink's
/// unique number once it was unlinked (a new channel may then take the name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelKey {
    /// Its name.
    pub name: Bytes,
    /// 0: linked; else the id of the unlink that detached it.
    pub unlinked: u64,
}

fn put_key(w: &mut Writer, k: &ChannelKey) {
    w.short_bytes(&k.name).u64(k.unlinked);
}

fn get_key(r: &mut Reader) -> Result<ChannelKey, DecodeError> {
    Ok(ChannelKey {
        name: r.short_bytes("channel name")?,
        unlinked: r.u64("unlinked")?,
    })
}

/// A change of the replicated channel table, applied by every node at delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A client opened `name` (creating it with `create`).
    Open {
        /// The channel's name.
        name: Bytes,
        /// Create it if it does not exist.
        create: bool,
    },
    /// A client of the sender closed an open of the channel.
    Close {
        /// The channel.
        key: ChannelKey,
    },
    /// Unlink the linked channel `name`; `id` is the unique number it is known by after.
    Unlink {
        /// The channel's name.
        name: Bytes,
        /// The unlink's unique number.
        id: u64,
    },
    /// Clear the retention of event `event` on the channel.
    Clear {
        /// The channel.
        key: ChannelKey,
        /// The event.
        event: u64,
    },
}

/// EVT's messages on the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingMessage {
    /// A published event (agreed order; the data is the message's tail).
    Publish {
        /// The channel.
        key: ChannelKey,
        /// The sender's most retained events (past it the event is delivered, not
        /// retained).
        max_retained: u32,
        /// Its attributes (its id assigned by the sender).
        header: EventHeader,
        /// Its data.
        data: Bytes,
    },
    /// A change of the channel table, refused when delivered in another ring than the one
    /// (`rep`, `seq`) it was sent in.
    Change {
        /// The sending ring's representative.
        rep: u32,
        /// The sending ring's sequence number.
        seq: u64,
        /// The sender's number for it (its client is answered at delivery).
        tag: u64,
        /// The sender's most channels (a create past it is `SA_AIS_ERR_NO_RESOURCES`).
        max_channels: u32,
        /// The change.
        change: Change,
    },
    /// Sync, first step: what the sender knows.
    Summary {
        /// The ring synchronised.
        rep: u32,
        /// Its sequence number.
        seq: u64,
        /// Every channel the sender knows, with its own opens of it.
        channels: Vec<(ChannelKey, u32)>,
        /// The events it retains, as (id, publish time): an event's identity (a restarted
        /// node may reuse an id its new partition never saw; never at the same time).
        retained: Vec<(u64, u64)>,
        /// Events whose retention was cleared (id, publish time), with when they would have
        /// expired.
        cleared: Vec<((u64, u64), u64)>,
        /// The highest event counter it has seen of each node.
        counters: Vec<(u32, u32)>,
    },
    /// Sync, second step: a retained event some member lacks (sent by the lowest member
    /// holding it).
    SyncEvent {
        /// The ring synchronised.
        rep: u32,
        /// Its sequence number.
        seq: u64,
        /// The channel.
        key: ChannelKey,
        /// The event's attributes.
        header: EventHeader,
        /// Its data.
        data: Bytes,
    },
}

const RING_PUBLISH: u16 = 1;
const RING_CHANGE: u16 = 2;
const RING_SUMMARY: u16 = 3;
const RING_SYNC_EVENT: u16 = 4;

fn put_change(w: &mut Writer, c: &Change) {
    match c {
        Change::Open { name, create } => {
            w.u8(1).short_bytes(name).u8(u8::from(*create));
        }
        Change::Close { key } => {
            w.u8(2);
            put_key(w, key);
        }
        Change::Unlink { name, id } => {
            w.u8(3).short_bytes(name).u64(*id);
        }
        Change::Clear { key, event } => {
            w.u8(4);
            put_key(w, key);
            w.u64(*event);
        }
    }
}

fn get_change(r: &mut Reader) -> Result<Change, DecodeError> {
    Ok(match r.u8("change")? {
        1 => Change::Open {
            name: r.short_bytes("name")?,
            create: r.bool("create")?,
        },
        2 => Change::Close { key: get_key(r)? },
        3 => Change::Unlink {
            name: r.short_bytes("name")?,
            id: r.u64("unlink id")?,
        },
        4 => Change::Clear {
            key: get_key(r)?,
            event: r.u64("event id")?,
        },
        v => {
            return Err(DecodeError::Unknown {
                what: "channel change",
                value: u64::from(v),
            });
        }
    })
}

impl Message for RingMessage {
    fn op(&self) -> u16 {
        match self {
            RingMessage::Publish { .. } => RING_PUBLISH,
            RingMessage::Change { .. } => RING_CHANGE,
            RingMessage::Summary { .. } => RING_SUMMARY,
            RingMessage::SyncEvent { .. } => RING_SYNC_EVENT,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            RingMessage::Publish { .. } => "EvtPublish",
            RingMessage::Change { .. } => "EvtChange",
            RingMessage::Summary { .. } => "EvtSummary",
            RingMessage::SyncEvent { .. } => "EvtSyncEvent",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            RingMessage::Publish {
                key,
                max_retained,
                header,
                data,
            } => {
                put_key(w, key);
                w.u32(*max_retained);
                put_header(w, header);
                return data.clone();
            }
            RingMessage::Change {
                rep,
                seq,
                tag,
                max_channels,
                change,
            } => {
                w.u32(*rep).u64(*seq).u64(*tag).u32(*max_channels);
                put_change(w, change);
            }
            RingMessage::Summary {
                rep,
                seq,
                channels,
                retained,
                cleared,
                counters,
            } => {
                w.u32(*rep).u64(*seq).count(channels.len());
                for (k, opens) in channels {
                    put_key(w, k);
                    w.u32(*opens);
                }
                w.count(retained.len());
                for (id, time) in retained {
                    w.u64(*id).u64(*time);
                }
                w.count(cleared.len());
                for ((id, time), until) in cleared {
                    w.u64(*id).u64(*time).u64(*until);
                }
                w.count(counters.len());
                for (node, c) in counters {
                    w.u32(*node).u32(*c);
                }
            }
            RingMessage::SyncEvent {
                rep,
                seq,
                key,
                header,
                data,
            } => {
                w.u32(*rep).u64(*seq);
                put_key(w, key);
                put_header(w, header);
                return data.clone();
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            RING_PUBLISH => RingMessage::Publish {
                key: get_key(r)?,
                max_retained: r.u32("max retained")?,
                header: get_header(r)?,
                data: r.rest(),
            },
            RING_CHANGE => RingMessage::Change {
                rep: r.u32("ring representative")?,
                seq: r.u64("ring sequence")?,
                tag: r.u64("tag")?,
                max_channels: r.u32("max channels")?,
                change: get_change(r)?,
            },
            RING_SUMMARY => {
                let rep = r.u32("ring representative")?;
                let seq = r.u64("ring sequence")?;
                let n = r.count("channels", 2 + 8 + 4)?;
                let channels = (0..n)
                    .map(|_| Ok((get_key(r)?, r.u32("opens")?)))
                    .collect::<Result<_, DecodeError>>()?;
                let n = r.count("retained", 16)?;
                let retained = (0..n)
                    .map(|_| Ok((r.u64("event id")?, r.u64("publish time")?)))
                    .collect::<Result<_, DecodeError>>()?;
                let n = r.count("cleared", 24)?;
                let cleared = (0..n)
                    .map(|_| {
                        Ok((
                            (r.u64("event id")?, r.u64("publish time")?),
                            r.u64("until")?,
                        ))
                    })
                    .collect::<Result<_, DecodeError>>()?;
                let n = r.count("counters", 8)?;
                let counters = (0..n)
                    .map(|_| Ok((r.u32("node")?, r.u32("counter")?)))
                    .collect::<Result<_, DecodeError>>()?;
                RingMessage::Summary {
                    rep,
                    seq,
                    channels,
                    retained,
                    cleared,
                    counters,
                }
            }
            RING_SYNC_EVENT => RingMessage::SyncEvent {
                rep: r.u32("ring representative")?,
                seq: r.u64("ring sequence")?,
                key: get_key(r)?,
                header: get_header(r)?,
                data: r.rest(),
            },
            other => return Err(unknown(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{FIRST_REQUEST_OP, FIRST_RESPONSE_OP, Kind, assert_round_trips};

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    fn header() -> EventHeader {
        EventHeader {
            id: (3 << 32) | 9,
            priority: 2,
            retention: 5_000,
            publish_time: 77,
            publisher: b("pub"),
            patterns: vec![b("a"), Bytes::new(), b("ccc")],
        }
    }

    fn key() -> ChannelKey {
        ChannelKey {
            name: b("ch"),
            unlinked: 0,
        }
    }

    #[test]
    fn every_evt_message_round_trips() {
        let filters = vec![
            Filter {
                kind: FilterType::Prefix.code(),
                pattern: b("a"),
            },
            Filter {
                kind: 9,
                pattern: Bytes::new(),
            },
        ];
        let reqs = [
            Request::Open {
                name: b("ch"),
                flags: OPEN_CREATE | OPEN_PUBLISHER,
            },
            Request::OpenAsync {
                name: b("ch"),
                flags: OPEN_SUBSCRIBER,
                invocation: 4,
            },
            Request::Close { channel: 1 },
            Request::Unlink { name: b("ch") },
            Request::Publish {
                channel: 1,
                header: header(),
                data: b("payload"),
            },
            Request::Subscribe {
                channel: 1,
                subscription: 7,
                filters,
            },
            Request::Subscribe {
                channel: 1,
                subscription: 8,
                filters: vec![],
            },
            Request::Unsubscribe {
                channel: 1,
                subscription: 7,
            },
            Request::RetentionTimeClear {
                channel: 1,
                event: 99,
            },
            Request::Consumed { count: 32 },
            Request::List { start: 3 },
        ];
        assert!(reqs.iter().all(|r| r.op() >= FIRST_REQUEST_OP));
        assert_round_trips(Kind::Request, &reqs);
        let resps = [
            Response::Opened { channel: 3 },
            Response::Published { event: 1 << 33 },
            Response::List {
                items: vec![],
                next: None,
            },
            Response::List {
                items: vec![ChannelInfo {
                    name: b("ch"),
                    unlinked: true,
                    opens: 2,
                    retained: 5,
                }],
                next: Some(1),
            },
        ];
        assert!(resps.iter().all(|r| r.op() >= FIRST_RESPONSE_OP));
        assert_round_trips(Kind::Response, &resps);
        assert_round_trips(
            Kind::Callback,
            &[
                Callback::Open {
                    invocation: 1,
                    result: Ok(5),
                },
                Callback::Open {
                    invocation: 1,
                    result: Err(AisError::NotExist),
                },
                Callback::Deliver {
                    channel: 5,
                    subscription: 2,
                    header: header(),
                    data: b("xyz"),
                },
            ],
        );
        let change = |change| RingMessage::Change {
            rep: 1,
            seq: 8,
            tag: 3,
            max_channels: 10,
            change,
        };
        assert_round_trips(
            Kind::Request,
            &[
                RingMessage::Publish {
                    key: key(),
                    max_retained: 10,
                    header: header(),
                    data: b("d"),
                },
                change(Change::Open {
                    name: b("ch"),
                    create: true,
                }),
                change(Change::Close { key: key() }),
                change(Change::Unlink {
                    name: b("ch"),
                    id: 12,
                }),
                change(Change::Clear {
                    key: key(),
                    event: 4,
                }),
                RingMessage::Summary {
                    rep: 1,
                    seq: 8,
                    channels: vec![(key(), 2)],
                    retained: vec![(4, 1), (5, 2)],
                    cleared: vec![((6, 3), 100)],
                    counters: vec![(1, 9)],
                },
                RingMessage::SyncEvent {
                    rep: 1,
                    seq: 8,
                    key: key(),
                    header: header(),
                    data: b("data"),
                },
            ],
        );
    }

    #[test]
    fn filters_compare_bytes_pairwise() {
        let f = |kind: FilterType, p: &'static str| Filter {
            kind: kind.code(),
            pattern: b(p),
        };
        let pats = vec![b("abc"), Bytes::from_static(b"x\0y")];
        assert!(matches(&[f(FilterType::Prefix, "ab")], &pats));
        assert!(!matches(&[f(FilterType::Prefix, "b")], &pats));
        assert!(matches(&[f(FilterType::Suffix, "bc")], &pats));
        assert!(!matches(&[f(FilterType::Suffix, "ab")], &pats));
        assert!(matches(&[f(FilterType::Exact, "abc")], &pats));
        assert!(!matches(&[f(FilterType::Exact, "ab")], &pats));
        assert!(matches(&[f(FilterType::PassAll, "zz")], &pats));
        // Pairwise: the second filter sees the second pattern, NUL byte included.
        assert!(matches(
            &[
                f(FilterType::PassAll, ""),
                Filter {
                    kind: FilterType::Exact.code(),
                    pattern: Bytes::from_static(b"x\0y"),
                }
            ],
            &pats
        ));
        assert!(!matches(
            &[f(FilterType::PassAll, ""), f(FilterType::Exact, "x")],
            &pats
        ));
        // A surplus filter sees the empty pattern; surplus patterns pass.
        let three = [
            f(FilterType::PassAll, ""),
            f(FilterType::PassAll, ""),
            f(FilterType::Exact, ""),
        ];
        assert!(matches(&three, &pats));
        let mut three_a = three.clone();
        three_a[2] = f(FilterType::Prefix, "a");
        assert!(!matches(&three_a, &pats));
        assert!(matches(&[], &pats));
        // An unknown type passes nothing.
        assert!(!matches(
            &[Filter {
                kind: 0,
                pattern: Bytes::new()
            }],
            &pats
        ));
        for t in [
            FilterType::Prefix,
            FilterType::Suffix,
            FilterType::Exact,
            FilterType::PassAll,
        ] {
            assert_eq!(FilterType::from_code(t.code()), Some(t));
        }
        assert_eq!(FilterType::from_code(5), None);
    }
}
