//! The counter's state and its checkpoint encoding: pure, no I/O.
//!
//! The state is the total and, for each client, the last sequence number applied. It is
//! written whole into the checkpoint's default section after every batch of additions, as
//! text (readable with `aisctl ckpt read NAME`):
//!
//! ```text
//! amf-counter 1
//! total 42
//! stamp 7
//! client alice 3 6
//! client bob 12 7
//! ```
//!
//! `stamp` counts the additions applied; each client line holds the client's id, its last
//! applied sequence number and the stamp of that addition (when it was last heard from), so
//! that the client to forget beyond [`State::max_clients`] is the least recently heard from.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The longest client id, in bytes.
pub const MAX_CLIENT_ID: usize = 64;

/// The most clients a state may remember: its encoding must fit one CKPT request
/// ([`ais_client::ckpt::REQUEST_BUDGET`]), so that every checkpoint write is atomic.
pub const MAX_CLIENTS_LIMIT: usize = 1024;

/// The first line of the encoding.
const MAGIC: &str = "amf-counter 1";

/// What the state remembers about one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Client {
    /// The last sequence number applied.
    seq: u64,
    /// The stamp of that addition.
    stamp: u64,
}

/// The outcome of [`State::add`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Counted; `forgotten` is the client dropped to stay within the bound, if one was.
    Added {
        /// The client forgotten (the least recently heard from), if the bound was reached.
        forgotten: Option<String>,
    },
    /// A sequence number at or below the client's last applied one: already counted,
    /// nothing changed.
    Duplicate,
}

/// Why an addition is refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddError {
    /// The total would pass `u64::MAX`.
    Overflow,
    /// The client id is empty, longer than [`MAX_CLIENT_ID`] or not printable ASCII without
    /// spaces.
    BadClientId,
}

impl std::fmt::Display for AddError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddError::Overflow => write!(f, "overflow"),
            AddError::BadClientId => write!(
                f,
                "bad client id (1 to {MAX_CLIENT_ID} printable characters, no spaces)"
            ),
        }
    }
}

impl std::error::Error for AddError {}

/// Why a checkpoint's content cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "checkpoint content: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// The counter: the total and each client's last applied sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    total: u64,
    stamp: u64,
    clients: BTreeMap<String, Client>,
    max_clients: usize,
}

/// Whether `id` is a valid client id.
pub fn valid_client_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_CLIENT_ID && id.bytes().all(|b| b.is_ascii_graphic())
}

impl State {
    /// An empty state remembering at most `max_clients` clients (clamped to
    /// 1..=[`MAX_CLIENTS_LIMIT`]).
    pub fn new(max_clients: usize) -> State {
        State {
            total: 0,
            stamp: 0,
            clients: BTreeMap::new(),
            max_clients: max_clients.clamp(1, MAX_CLIENTS_LIMIT),
        }
    }

    /// The total.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The most clients remembered.
    pub fn max_clients(&self) -> usize {
        self.max_clients
    }

    /// The clients remembered.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// The last sequence number applied for `client`, if it is remembered.
    pub fn last_seq(&self, client: &str) -> Option<u64> {
        self.clients.get(client).map(|c| c.seq)
    }

    /// `ADD client seq n`: counts `n` unless `seq` is at or below the client's last applied
    /// one (a retry of something already counted). A client not remembered (new, or
    /// forgotten) is always counted. Beyond [`State::max_clients`] clients the least
    /// recently heard from is forgotten.
    ///
    /// # Errors
    /// [`AddError`]: nothing changed.
    pub fn add(&mut self, client: &str, seq: u64, n: u64) -> Result<Applied, AddError> {
        if !valid_client_id(client) {
            return Err(AddError::BadClientId);
        }
        if let Some(c) = self.clients.get(client)
            && seq <= c.seq
        {
            return Ok(Applied::Duplicate);
        }
        self.total = self.total.checked_add(n).ok_or(AddError::Overflow)?;
        self.stamp += 1;
        let stamp = self.stamp;
        self.clients
            .insert(client.to_owned(), Client { seq, stamp });
        let mut forgotten = None;
        if self.clients.len() > self.max_clients {
            let oldest = self
                .clients
                .iter()
                .min_by_key(|(_, c)| c.stamp)
                .map(|(id, _)| id.clone())
                .expect("more clients than the bound, so at least one");
            self.clients.remove(&oldest);
            forgotten = Some(oldest);
        }
        Ok(Applied::Added { forgotten })
    }

    /// The longest encoding of a state remembering `max_clients` clients: the checkpoint's
    /// size.
    pub fn max_encoded_len(max_clients: usize) -> usize {
        // "client " + id + " " + seq + " " + stamp + "\n", numbers up to 20 digits.
        let line = 7 + MAX_CLIENT_ID + 1 + 20 + 1 + 20 + 1;
        MAGIC.len() + 1 + (6 + 20 + 1) + (6 + 20 + 1) + max_clients * line
    }

    /// The checkpoint content.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = String::with_capacity(64 + self.clients.len() * 40);
        let _ = writeln!(s, "{MAGIC}");
        let _ = writeln!(s, "total {}", self.total);
        let _ = writeln!(s, "stamp {}", self.stamp);
        for (id, c) in &self.clients {
            let _ = writeln!(s, "client {id} {} {}", c.seq, c.stamp);
        }
        s.into_bytes()
    }

    /// The state a checkpoint holds; empty content is the empty state. Beyond `max_clients`
    /// clients (a smaller bound than the writer's), the least recently heard from are
    /// forgotten.
    ///
    /// # Errors
    /// [`DecodeError`] for content this program did not write.
    pub fn decode(bytes: &[u8], max_clients: usize) -> Result<State, DecodeError> {
        let mut state = State::new(max_clients);
        if bytes.is_empty() {
            return Ok(state);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| DecodeError("not UTF-8".into()))?;
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(DecodeError(format!("the first line is not {MAGIC:?}")));
        }
        let number = |s: Option<&str>, what: &str| -> Result<u64, DecodeError> {
            s.and_then(|s| s.parse().ok())
                .ok_or_else(|| DecodeError(format!("bad {what}")))
        };
        for line in lines {
            let mut f = line.split(' ');
            match f.next() {
                Some("total") => state.total = number(f.next(), "total")?,
                Some("stamp") => state.stamp = number(f.next(), "stamp")?,
                Some("client") => {
                    let id = f.next().unwrap_or("");
                    if !valid_client_id(id) {
                        return Err(DecodeError(format!("bad client id in {line:?}")));
                    }
                    let seq = number(f.next(), "client seq")?;
                    let stamp = number(f.next(), "client stamp")?;
                    state.clients.insert(id.to_owned(), Client { seq, stamp });
                }
                _ => return Err(DecodeError(format!("unknown line {line:?}"))),
            }
        }
        while state.clients.len() > state.max_clients {
            let oldest = state
                .clients
                .iter()
                .min_by_key(|(_, c)| c.stamp)
                .map(|(id, _)| id.clone())
                .expect("not empty");
            state.clients.remove(&oldest);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_addition_counts_once_per_sequence_number() {
        let mut s = State::new(8);
        assert_eq!(s.add("a", 1, 5), Ok(Applied::Added { forgotten: None }));
        assert_eq!(s.add("a", 1, 5), Ok(Applied::Duplicate));
        assert_eq!(s.add("b", 1, 7), Ok(Applied::Added { forgotten: None }));
        assert_eq!(s.add("a", 3, 1), Ok(Applied::Added { forgotten: None }));
        // A retry of an older one after a newer one was applied: already counted.
        assert_eq!(s.add("a", 2, 100), Ok(Applied::Duplicate));
        assert_eq!(s.total(), 13);
        assert_eq!(s.last_seq("a"), Some(3));
        assert_eq!(s.last_seq("c"), None);
    }

    #[test]
    fn refused_additions_change_nothing() {
        let mut s = State::new(8);
        s.add("a", 1, u64::MAX - 1).unwrap();
        let before = s.clone();
        assert_eq!(s.add("b", 1, 2), Err(AddError::Overflow));
        assert_eq!(s.add("", 1, 2), Err(AddError::BadClientId));
        assert_eq!(s.add("with space", 1, 2), Err(AddError::BadClientId));
        assert_eq!(
            s.add(&"x".repeat(MAX_CLIENT_ID + 1), 1, 2),
            Err(AddError::BadClientId)
        );
        assert_eq!(s, before);
        assert_eq!(
            s.add(&"x".repeat(MAX_CLIENT_ID), 1, 1),
            Ok(Applied::Added { forgotten: None })
        );
    }

    #[test]
    fn beyond_the_bound_the_least_recently_heard_from_is_forgotten() {
        let mut s = State::new(2);
        s.add("a", 1, 1).unwrap();
        s.add("b", 1, 1).unwrap();
        s.add("a", 2, 1).unwrap(); // a heard from after b
        assert_eq!(
            s.add("c", 1, 1),
            Ok(Applied::Added {
                forgotten: Some("b".into())
            })
        );
        assert_eq!(s.clients(), 2);
        // The documented cost: a forgotten client's retry counts again.
        assert_eq!(
            s.add("b", 1, 1),
            Ok(Applied::Added {
                forgotten: Some("a".into())
            })
        );
        assert_eq!(s.total(), 5);
    }

    #[test]
    fn the_encoding_round_trips_and_fits_its_bound() {
        let mut s = State::new(MAX_CLIENTS_LIMIT);
        assert_eq!(State::decode(b"", 16).unwrap(), State::new(16));
        for i in 0..MAX_CLIENTS_LIMIT {
            let id = format!("{i:0>64}");
            s.add(&id, u64::MAX - 1, 1).unwrap();
        }
        let bytes = s.encode();
        assert!(bytes.len() <= State::max_encoded_len(MAX_CLIENTS_LIMIT));
        assert!(
            State::max_encoded_len(MAX_CLIENTS_LIMIT) <= ais_client::ckpt::REQUEST_BUDGET - 1024
        );
        let back = State::decode(&bytes, MAX_CLIENTS_LIMIT).unwrap();
        assert_eq!(back, s);
        // Read with a smaller bound: the most recent are kept.
        let small = State::decode(&bytes, 2).unwrap();
        assert_eq!(small.clients(), 2);
        assert_eq!(
            small.last_seq(&format!("{:0>64}", MAX_CLIENTS_LIMIT - 1)),
            Some(u64::MAX - 1)
        );
        assert_eq!(small.total(), s.total());
    }

    #[test]
    fn foreign_content_is_refused() {
        for bad in [
            &b"hello"[..],
            b"amf-counter 1\ntotal x\n",
            b"amf-counter 1\nclient a 1\n",
            b"amf-counter 1\nclient  1 1\n",
            b"amf-counter 1\nother 1\n",
            b"\xff\xfe",
        ] {
            assert!(State::decode(bad, 8).is_err(), "{bad:?}");
        }
    }
}
