//! Events, with SA Forum EVT B.01.01 semantics (`saEvt*`).
//!
//! A channel is a cluster-wide name that publishers put events on and subscribers receive
//! them from. [`Evt::open`] returns a [`ChannelHandle`] (with [`OPEN_CREATE`] it creates the
//! channel when missing); [`Evt::publish`] sends an [`Event`] (a local object until then:
//! allocation, attributes and data are this library's business, as `saEvtEventAllocate`,
//! `AttributesSet` and `DataGet` are); [`Evt::subscribe`] registers filters under a
//! subscription id; [`Evt::dispatch`] hands out the deliveries ([`EvtEvent::Deliver`]) and
//! the asynchronous opens' outcomes. The calls are [`Connection`] calls, so the
//! [model](super) applies: one request at a time, callbacks queued while waiting.
//!
//! # Flow control
//!
//! The executive sends a connection at most a window of deliveries and waits for them to be
//! acknowledged; [`Evt::dispatch`] acknowledges the deliveries it handed out every
//! [`ACK_EVERY`] deliveries and before it waits on an empty socket, so an application that
//! dispatches keeps them flowing. An acknowledgement is sent without waiting for an answer
//! (the executive sends none): reading never stops for a round trip. One that does not is sent a lost-event notification
//! ([`Delivered::is_lost`]) in place of what the executive could not queue for it.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use ais_client::{self as client, evt::{self, Evt, EvtEvent, Event, Filter, FilterType}};
//!
//! # fn main() -> Result<(), client::Error> {
//! let mut evt = Evt::connect(&client::default_socket())?;
//! let ch = evt.open(b"alarms", evt::OPEN_CREATE | evt::OPEN_PUBLISHER | evt::OPEN_SUBSCRIBER)?;
//! evt.subscribe(ch, 1, vec![Filter { kind: FilterType::Prefix.code(), pattern: "disk".into() }])?;
//! let mut event = Event::new();
//! event.set_attributes(&[b"disk/sda"], 1, 0, b"me")?;
//! event.set_data(b"full");
//! let id = evt.publish(ch, &event)?;
//! while let Some(EvtEvent::Deliver(d)) = evt.dispatch(Some(Duration::from_secs(1)))? {
//!     println!("event {:#x}: {} bytes", d.header.id, d.data.len());
//! #   let _ = id;
//! }
//! # Ok(())
//! # }
//! ```

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

use super::{AisError, Connection, Error, unexpected};
use ais_proto::evt::{Callback, EvtProtocol, Request, Response};
use ais_proto::ipc::{Message, Reply};

pub use ais_proto::evt::{
    ChannelInfo, EVENT_ID_LOST, EVENT_ID_NONE, EventHeader, Filter, FilterType, HIGHEST_PRIORITY,
    LOST_EVENT_PATTERN, LOWEST_PRIORITY, MAX_DATA, MAX_NAME, MAX_PATTERN, MAX_PATTERNS,
    OPEN_CREATE, OPEN_FLAGS, OPEN_PUBLISHER, OPEN_SUBSCRIBER, TIME_END,
};

/// Deliveries handed out before [`Evt::dispatch`] acknowledges them even while more are
/// queued.
pub const ACK_EVERY: u32 = 32;

/// The executive's number for one open of one channel by one connection
/// (`SaEvtChannelHandleT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelHandle(pub u64);

/// An event being prepared for publication (`saEvtEventAllocate`): priority
/// [`LOWEST_PRIORITY`], no retention, no patterns, no data until set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    priority: u8,
    retention: u64,
    publisher: Bytes,
    patterns: Vec<Bytes>,
    data: Bytes,
}

impl Default for Event {
    fn default() -> Event {
        Event::new()
    }
}

impl Event {
    /// `saEvtEventAllocate`.
    pub fn new() -> Event {
        Event {
            priority: LOWEST_PRIORITY,
            retention: 0,
            publisher: Bytes::new(),
            patterns: Vec::new(),
            data: Bytes::new(),
        }
    }

    /// `saEvtEventAttributesSet`.
    ///
    /// # Errors
    /// `INVALID_PARAM` for a priority above [`LOWEST_PRIORITY`] or a publisher name longer
    /// than [`MAX_NAME`]; `TOO_BIG` for more than [`MAX_PATTERNS`] patterns or one longer
    /// than [`MAX_PATTERN`].
    pub fn set_attributes(
        &mut self,
        patterns: &[&[u8]],
        priority: u8,
        retention: u64,
        publisher: &[u8],
    ) -> Result<(), AisError> {
        if priority > LOWEST_PRIORITY || publisher.len() > MAX_NAME {
            return Err(AisError::InvalidParam);
        }
        if patterns.len() > MAX_PATTERNS || patterns.iter().any(|p| p.len() > MAX_PATTERN) {
            return Err(AisError::TooBig);
        }
        self.patterns = patterns.iter().map(|p| Bytes::copy_from_slice(p)).collect();
        self.priority = priority;
        self.retention = retention;
        self.publisher = Bytes::copy_from_slice(publisher);
        Ok(())
    }

    /// The data published with the event.
    pub fn set_data(&mut self, data: &[u8]) {
        self.data = Bytes::copy_from_slice(data);
    }

    /// Its priority.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// Its patterns.
    pub fn patterns(&self) -> &[Bytes] {
        &self.patterns
    }
}

/// A delivered event (what `saEvtEventAttributesGet` and `saEvtEventDataGet` read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The channel open it came through.
    pub channel: ChannelHandle,
    /// The subscription it matched.
    pub subscription: u32,
    /// Its attributes.
    pub header: EventHeader,
    /// Its data.
    pub data: Bytes,
}

impl Delivered {
    /// Whether this is a lost-event notification: the subscription missed events here.
    pub fn is_lost(&self) -> bool {
        self.header.id == EVENT_ID_LOST
    }
}

/// A callback of an EVT connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvtEvent {
    /// The outcome of [`Evt::open_async`] (`saEvtChannelOpenCallback`).
    ChannelOpen {
        /// The caller's number.
        invocation: u64,
        /// The handle, or why not.
        result: Result<ChannelHandle, AisError>,
    },
    /// An event for a subscription (`saEvtEventDeliverCallback`).
    Deliver(Delivered),
}

fn check_name(name: &[u8]) -> Result<(), AisError> {
    if name.is_empty() {
        Err(AisError::InvalidParam)
    } else if name.len() > MAX_NAME {
        Err(AisError::NameTooLong)
    } else {
        Ok(())
    }
}

/// An EVT connection (`SaEvtHandleT`).
#[derive(Debug)]
pub struct Evt {
    conn: Connection<EvtProtocol>,
    /// Deliveries handed out and not yet acknowledged.
    unacked: u32,
}

impl Evt {
    /// `saEvtInitialize`: connects to the executive at `path`.
    ///
    /// # Errors
    /// As [`Connection::connect`].
    pub fn connect(path: &Path) -> Result<Evt, Error> {
        Ok(Evt {
            conn: Connection::connect(path)?,
            unacked: 0,
        })
    }

    fn ok(&mut self, req: Request, what: &str) -> Result<(), Error> {
        match self.conn.call(req)? {
            Reply::Ok => Ok(()),
            other => Err(unexpected(what, &other)),
        }
    }

    /// `saEvtChannelOpen`.
    ///
    /// # Errors
    /// `INVALID_PARAM` (empty name), `NAME_TOO_LONG`, `BAD_FLAGS`, `NOT_EXIST` (no such
    /// channel and no [`OPEN_CREATE`]), `NO_RESOURCES` (too many channels), `TRY_AGAIN`.
    pub fn open(&mut self, name: &[u8], flags: u8) -> Result<ChannelHandle, Error> {
        check_name(name)?;
        let req = Request::Open {
            name: Bytes::copy_from_slice(name),
            flags,
        };
        match self.conn.call(req)? {
            Reply::Service(Response::Opened { channel }) => Ok(ChannelHandle(channel)),
            other => Err(unexpected("open", &other)),
        }
    }

    /// `saEvtChannelOpenAsync`: the outcome comes as [`EvtEvent::ChannelOpen`].
    ///
    /// # Errors
    /// As [`Evt::open`] for what is checked at once.
    pub fn open_async(&mut self, name: &[u8], flags: u8, invocation: u64) -> Result<(), Error> {
        check_name(name)?;
        let req = Request::OpenAsync {
            name: Bytes::copy_from_slice(name),
            flags,
            invocation,
        };
        self.ok(req, "open")
    }

    /// `saEvtChannelClose`: its subscriptions end.
    ///
    /// # Errors
    /// `BAD_HANDLE`.
    pub fn close(&mut self, channel: ChannelHandle) -> Result<(), Error> {
        self.ok(Request::Close { channel: channel.0 }, "close")
    }

    /// `saEvtChannelUnlink`.
    ///
    /// # Errors
    /// `NOT_EXIST`, `INVALID_PARAM`, `NAME_TOO_LONG`, `TRY_AGAIN`.
    pub fn unlink(&mut self, name: &[u8]) -> Result<(), Error> {
        check_name(name)?;
        self.ok(
            Request::Unlink {
                name: Bytes::copy_from_slice(name),
            },
            "unlink",
        )
    }

    /// `saEvtEventPublish`: the event's id.
    ///
    /// # Errors
    /// `BAD_HANDLE`, `ACCESS` (not opened for publishing), `TOO_BIG` (data over
    /// [`MAX_DATA`]), `NO_RESOURCES` (too many retained events), `TRY_AGAIN`.
    pub fn publish(&mut self, channel: ChannelHandle, event: &Event) -> Result<u64, Error> {
        if event.data.len() > MAX_DATA {
            return Err(AisError::TooBig.into());
        }
        let req = Request::Publish {
            channel: channel.0,
            header: EventHeader {
                id: EVENT_ID_NONE,
                priority: event.priority,
                retention: event.retention,
                publish_time: 0,
                publisher: event.publisher.clone(),
                patterns: event.patterns.clone(),
            },
            data: Bytes::new(),
        };
        match self.conn.call_with_payload(req, &event.data)? {
            Reply::Service(Response::Published { event }) => Ok(event),
            other => Err(unexpected("publish", &other)),
        }
    }

    /// `saEvtEventSubscribe`.
    ///
    /// # Errors
    /// `BAD_HANDLE`, `ACCESS` (not opened for subscribing), `EXIST` (the id is used on this
    /// handle), `INVALID_PARAM` (an unknown filter type), `TOO_BIG`, `NO_RESOURCES`.
    pub fn subscribe(
        &mut self,
        channel: ChannelHandle,
        subscription: u32,
        filters: Vec<Filter>,
    ) -> Result<(), Error> {
        let req = Request::Subscribe {
            channel: channel.0,
            subscription,
            filters,
        };
        self.ok(req, "subscribe")
    }

    /// `saEvtEventUnsubscribe`.
    ///
    /// # Errors
    /// `BAD_HANDLE`, `NOT_EXIST`.
    pub fn unsubscribe(&mut self, channel: ChannelHandle, subscription: u32) -> Result<(), Error> {
        let req = Request::Unsubscribe {
            channel: channel.0,
            subscription,
        };
        self.ok(req, "unsubscribe")
    }

    /// `saEvtEventRetentionTimeClear`.
    ///
    /// # Errors
    /// `BAD_HANDLE`, `INVALID_PARAM` (a reserved id), `NOT_EXIST`, `TRY_AGAIN`.
    pub fn retention_time_clear(
        &mut self,
        channel: ChannelHandle,
        event: u64,
    ) -> Result<(), Error> {
        let req = Request::RetentionTimeClear {
            channel: channel.0,
            event,
        };
        self.ok(req, "retention time clear")
    }

    /// The channels the executive knows (`aisctl evt ls`), every page.
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn channels(&mut self) -> Result<Vec<ChannelInfo>, Error> {
        let mut all = Vec::new();
        let mut start = 0;
        loop {
            match self.conn.call(Request::List { start })? {
                Reply::Service(Response::List { items, next }) => {
                    all.extend(items);
                    match next {
                        Some(n) => start = n,
                        None => return Ok(all),
                    }
                }
                other => return Err(unexpected("list", &other)),
            }
        }
    }

    /// Acknowledges the deliveries handed out so far, without waiting (an acknowledgement
    /// the executive refused counts again).
    fn ack(&mut self) -> Result<(), Error> {
        for count in self.conn.take_refused() {
            self.unacked = self.unacked.saturating_add(count);
        }
        if self.unacked > 0 {
            let count = self.unacked;
            self.unacked = 0;
            self.conn.notify(Request::Consumed { count }, count)?;
        }
        Ok(())
    }

    /// `saEvtDispatch`: the next callback, waiting up to `timeout` (`None`: forever).
    /// Deliveries handed out are acknowledged every [`ACK_EVERY`] and before it waits on an
    /// empty socket.
    ///
    /// # Errors
    /// As [`Connection::next_callback`].
    pub fn dispatch(&mut self, timeout: Option<Duration>) -> Result<Option<EvtEvent>, Error> {
        if self.unacked >= ACK_EVERY {
            self.ack()?;
        }
        let mut next = self.conn.next_callback(Some(Duration::ZERO))?;
        if next.is_none() {
            // Nothing waiting: acknowledge before sleeping, so the executive sends more.
            self.ack()?;
            if timeout != Some(Duration::ZERO) {
                next = self.conn.next_callback(timeout)?;
            }
        }
        Ok(match next {
            None => None,
            Some(Callback::Open { invocation, result }) => Some(EvtEvent::ChannelOpen {
                invocation,
                result: result.map(ChannelHandle),
            }),
            Some(Callback::Deliver {
                channel,
                subscription,
                header,
                data,
            }) => {
                self.unacked += 1;
                Some(EvtEvent::Deliver(Delivered {
                    channel: ChannelHandle(channel),
                    subscription,
                    header,
                    data,
                }))
            }
            Some(other) => {
                return Err(Error::Protocol(format!(
                    "callback {} is not handled by this library",
                    other.name()
                )));
            }
        })
    }

    /// The underlying connection.
    pub fn connection(&mut self) -> &mut Connection<EvtProtocol> {
        &mut self.conn
    }
}

impl AsRawFd for Evt {
    fn as_raw_fd(&self) -> RawFd {
        self.conn.as_raw_fd()
    }
}

impl AsFd for Evt {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.conn.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_starts_with_the_specified_defaults_and_checks_its_attributes() {
        let mut e = Event::new();
        assert_eq!((e.priority(), e.patterns().len()), (LOWEST_PRIORITY, 0));
        assert_eq!(
            e.set_attributes(&[b"a"], LOWEST_PRIORITY + 1, 0, b""),
            Err(AisError::InvalidParam)
        );
        let long = vec![b'x'; MAX_PATTERN + 1];
        assert_eq!(e.set_attributes(&[&long], 0, 0, b""), Err(AisError::TooBig));
        assert_eq!(e.set_attributes(&[b"a", b"b"], 0, 5, b"me"), Ok(()));
        assert_eq!(e.patterns().len(), 2);
        assert_eq!(e.priority(), 0);
    }

    #[test]
    fn dispatch_acknowledges_without_waiting_and_again_when_refused() {
        let mut refused_one = false;
        let (conn, server) = crate::fake::start_service::<EvtProtocol, _>(move |exec, id, req| {
            match req {
                Request::Subscribe { .. } => {
                    for n in 1..=2 {
                        exec.callback(Callback::Deliver {
                            channel: 7,
                            subscription: 1,
                            header: EventHeader {
                                id: n,
                                priority: 0,
                                retention: 0,
                                publish_time: 0,
                                publisher: Bytes::new(),
                                patterns: Vec::new(),
                            },
                            data: Bytes::new(),
                        });
                    }
                    exec.reply(id, Reply::Ok);
                }
                // The first acknowledgement is refused (as while the executive holds too
                // many requests); none is answered otherwise.
                Request::Consumed { .. } if !refused_one => {
                    refused_one = true;
                    exec.reply(id, Reply::Error(AisError::TryAgain));
                }
                _ => {}
            }
            true
        });
        let mut evt = Evt { conn, unacked: 0 };
        evt.subscribe(ChannelHandle(7), 1, Vec::new()).unwrap();
        for n in 1..=2 {
            match evt.dispatch(Some(Duration::ZERO)).unwrap() {
                Some(EvtEvent::Deliver(d)) => assert_eq!(d.header.id, n),
                other => panic!("{other:?}"),
            }
        }
        // Drained: acknowledges (no answer awaited), then waits; the refusal is read there.
        assert_eq!(
            evt.dispatch(Some(Duration::from_millis(200))).unwrap(),
            None
        );
        // The refused acknowledgement is sent again before the next wait.
        assert_eq!(evt.dispatch(Some(Duration::ZERO)).unwrap(), None);
        drop(evt);
        assert_eq!(
            server.join().unwrap()[1..],
            [
                Request::Consumed { count: 2 },
                Request::Consumed { count: 2 }
            ]
        );
    }
}
