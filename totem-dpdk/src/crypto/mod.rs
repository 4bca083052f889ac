//! Frame protection: integrity trailer, or AES-256-GCM authentication or encryption.
//!
//! Sans-IO like the rest of the core: [`FrameCrypto::seal`] turns a plaintext frame into a
//! wire frame, [`FrameCrypto::open`] turns a wire frame back into the plaintext frame (or says
//! why it was refused). The caller owns the buffers, the key file and the counter lease.
//!
//! # Frame layout
//!
//! Every plaintext frame starts with the 8-byte common header (`crate::wire::header`).
//!
//! - [`Protection::Integrity`] (secauth off): `header | body | crc32 (4, BE)`, the CRC-32 of
//!   everything before it. It catches damage; an attacker can forge anything.
//! - [`Protection::Authenticate`] and [`Protection::Encrypt`]:
//!
//!   ```text
//!   0        8        12                  24       28            len-16     len
//!   | header | epoch  | nonce             | dest   | body          | tag      |
//!   | (8)    | u32 BE | transmitter u32 BE | u32 BE | (clear or    | (16)     |
//!   |        |        | counter u64 BE    |        |  encrypted)   |          |
//!   ```
//!
//!   `dest` is the node the frame is for (0: the whole ring); a node refuses an authentic
//!   frame sealed for another node ([`OpenError::Misdirected`]), so a recorded token cannot be
//!   handed to the wrong member. For `Encrypt` the body is AES-256-GCM ciphertext and the
//!   associated data is the first 28 bytes (header, epoch, nonce, dest). For `Authenticate`
//!   the plaintext is empty and the associated data is everything before the tag, so the body
//!   stays readable on the wire (a debugging aid) but is as authentic as with `Encrypt`. The
//!   added bytes are [`CRYPTO_FIELDS`] + [`TAG_LEN`] = 36 ([`FrameCrypto::overhead`]).
//!
//! # Keys and epochs
//!
//! A key epoch ([`EpochKey`]) is a number and a secret of 32 to 4096 bytes. The AES key of an
//! epoch is `HKDF-SHA256(salt = "openais-rs totem frames v1", ikm = secret,
//! info = "frame key" ++ epoch u32 BE)`; the cipher is built once per epoch. Each frame names
//! its epoch in clear; a receiver accepts the current epoch and, during a rekey, the next one
//! before it seals with it ([`FrameCrypto::accept`]) and the previous one after
//! ([`FrameCrypto::install`], [`FrameCrypto::retire_previous`]); any other epoch is refused as
//! [`OpenError::UnknownEpoch`] before any cryptography is spent on it.
//!
//! A rekey sends the new epoch's key through the ring wrapped under the current one
//! ([`rekey_wrap`], [`rekey_unwrap`]): AES-256-GCM under a key derived from the current secret
//! (HKDF info "rekey wrap"), with a random nonce chosen by the caller and carried in the
//! wrapped bytes, and associated data binding both epochs. The nonce is random, not derived
//! from the epochs, because two nodes may start a rekey to the same epoch concurrently (the
//! ring then applies the first one delivered and refuses the other).
//!
//! # Nonces never repeat under one key
//!
//! GCM breaks if one key encrypts two messages under the same nonce. The 12-byte nonce is the
//! transmitter's node id and a 64-bit counter:
//!
//! - the node id separates the nodes sharing a key: two nodes never produce the same nonce
//!   (node ids are unique within a cluster; a cloned or misconfigured node id breaks this);
//! - within one node, the counter grows by one per sealed frame ([`FrameCrypto::next_counter`])
//!   and **continues across epochs and restarts**: the caller passes `counter_start` to
//!   [`FrameCrypto::new`] from a lease it persists. Before it seals with any counter at or
//!   above the persisted value, the caller must durably persist a new value above
//!   [`FrameCrypto::next_counter`] (say `next_counter() + 2^20`) and restart from the
//!   persisted value after a crash. Counters skipped by a crash are simply never used. The
//!   counter never wraps: at `u64::MAX` sealing fails with [`SealError::CounterExhausted`].
//!
//! # Replay protection and its limits
//!
//! After the tag verified, the (transmitter, counter) of the nonce goes through a sliding
//! window of that transmitter: the highest counter seen and a bitmap of the [`REPLAY_WINDOW`]
//! counters ending at it. A counter above the highest slides the window; an unseen counter
//! inside it is accepted (reordering is fine); a seen one is [`OpenError::Replayed`]; one
//! below the window is [`OpenError::TooOld`]. One window per transmitter serves all epochs,
//! since the counters continue across them. At most [`MAX_TRANSMITTERS`] windows are kept;
//! the least recently updated is forgotten first (only key holders can create windows, as
//! the tag is checked first).
//!
//! A receiver that restarted (or forgot a transmitter's window) starts with an empty window:
//! the first frame it sees from each transmitter is accepted whatever its counter, so old
//! frames of the current or previous epoch replayed to it pass this layer. The protocol above
//! must reject them by its own state: frames of old ring ids, duplicate message sequence
//! numbers, tokens with an old token sequence number. Rotating the epoch bounds how far back
//! a replay can reach.
//!
//! # Cost
//!
//! [`FrameCrypto::seal_in_place`] and [`FrameCrypto::open_in_place`] copy nothing but the
//! 8-byte header: a sender builds the plaintext frame [`SEAL_HEADROOM`] bytes into its
//! buffer with [`SEAL_TAILROOM`] bytes free after it; the crypto fields and the tag are
//! written around it and the body is encrypted where it lies. A receiver decrypts the body in
//! the receive buffer and moves the header next to it, so the plaintext frame is a range of
//! that buffer and may be kept as slices of it. AES-256-GCM runs one AES-CTR pass over the
//! body (`Encrypt`) and one GHASH pass over the 28 bytes before it plus the body (both
//! modes). [`FrameCrypto::seal_to`] and [`FrameCrypto::open`] do the same on a copy in the
//! caller's `Vec` (no allocation when it has room for the frame plus [`SEAL_HEADROOM`] and
//! [`SEAL_TAILROOM`]). `ring`'s AES-GCM uses AES-NI, CLMUL, AVX2 and VAES when the CPU has
//! them (detected at run time): on the order of a microsecond for a 1500-byte frame.
//! `Integrity` costs a CRC-32. A transmitter's first frame inserts a window into a map (an
//! allocation).

use core::fmt;

use aead::Cipher;

use crate::NodeId;
use crate::wire::HEADER_LEN;

mod key;
mod replay;
#[cfg(test)]
mod tests;

use key::INFO_FRAME_KEY;
pub use key::{EpochKey, rekey_unwrap, rekey_wrap};
use replay::{Reject, ReplayWindows};

mod aead;

/// The replay window size per transmitter, in counters.
pub const REPLAY_WINDOW: u64 = 1024;

/// How many transmitters' replay windows are kept at most.
pub const MAX_TRANSMITTERS: usize = 1024;

/// Bytes of crypto fields after the header: epoch (4) and nonce (12).
pub const CRYPTO_FIELDS: usize = 4 + NONCE_LEN + 4;

/// Bytes of the AES-GCM tag at the end of an authenticated frame.
pub const TAG_LEN: usize = 16;

/// Bytes of the CRC-32 trailer in [`Protection::Integrity`] mode.
pub const CRC_LEN: usize = 4;

/// Bytes [`FrameCrypto::seal_in_place`] needs in front of a plaintext frame (the crypto
/// fields go there).
pub const SEAL_HEADROOM: usize = CRYPTO_FIELDS;

/// Bytes [`FrameCrypto::seal_in_place`] needs after a plaintext frame (the tag, or the CRC).
pub const SEAL_TAILROOM: usize = TAG_LEN;

/// Shortest accepted secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Longest accepted secret, in bytes.
pub const MAX_SECRET_LEN: usize = 4096;

const NONCE_LEN: usize = 12;
/// Where the body starts in an authenticated frame.
const BODY_START: usize = HEADER_LEN + CRYPTO_FIELDS;

/// How frames are protected on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protection {
    /// secauth off: a CRC-32 trailer catches damage, nothing stops an attacker.
    Integrity,
    /// AES-256-GCM tag over the whole frame (header, crypto fields and body as associated
    /// data, empty plaintext): authentic, readable on the wire (debugging).
    Authenticate,
    /// AES-256-GCM: body encrypted, header and crypto fields authenticated. The default.
    #[default]
    Encrypt,
}

/// Errors about keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Authentication or encryption was asked for without a key.
    #[error("frame protection needs a key, but none was given")]
    Missing,
    /// A key was installed while frames are only CRC-protected.
    #[error("frame protection is integrity-only (secauth off): keys have no use")]
    NoCrypto,
    /// The secret is shorter than 32 or longer than 4096 bytes.
    #[error("key secret is {len} bytes; it must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN}")]
    BadLength {
        /// The secret's length.
        len: usize,
    },
    /// The key's epoch is not above the current one.
    #[error("key epoch {epoch} is not newer than the current epoch {current}")]
    EpochNotNewer {
        /// The refused key's epoch.
        epoch: u32,
        /// The current epoch.
        current: u32,
    },
    /// A wrapped key failed authentication (wrong current key, or damaged or forged bytes).
    #[error("wrapped key failed authentication under the current key")]
    Unwrap,
}

/// Errors of [`FrameCrypto::seal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The frame is shorter than its 8-byte header.
    #[error("frame shorter than its {HEADER_LEN}-byte header")]
    TooShort,
    /// The nonce counter reached `u64::MAX`: no nonce is left under this node id.
    #[error("nonce counter exhausted")]
    CounterExhausted,
    /// The buffer given to [`FrameCrypto::seal_in_place`] lacks the head or tail room.
    #[error("no room around the frame for the crypto fields and tag")]
    NoRoom,
}

/// Why [`FrameCrypto::open`] refused a wire frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Too short to hold the header and the protection fields.
    #[error("frame too short for its header and protection fields")]
    Malformed,
    /// The CRC-32 trailer does not match (integrity mode).
    #[error("frame CRC-32 mismatch")]
    BadCrc,
    /// The frame names an epoch that is neither the current nor the previous one (nor the
    /// next one, accepted during a rekey).
    #[error("frame of unknown key epoch {epoch} (current epoch {current})")]
    UnknownEpoch {
        /// The epoch named by the frame.
        epoch: u32,
        /// The current epoch.
        current: u32,
    },
    /// The authentication tag does not verify: damaged, forged, or another key.
    #[error("frame authentication failed")]
    BadTag,
    /// The frame's counter was already accepted from its transmitter.
    #[error("replayed frame from node {transmitter}")]
    Replayed {
        /// The transmitter named in the nonce.
        transmitter: NodeId,
    },
    /// The frame's counter is below its transmitter's replay window.
    #[error("frame from node {transmitter} too old for the replay window")]
    TooOld {
        /// The transmitter named in the nonce.
        transmitter: NodeId,
    },
    /// An authentic frame addressed to another node (a token redirected by an attacker).
    #[error("frame addressed to node {dest}, not to this node")]
    Misdirected {
        /// The node the frame was sealed for.
        dest: NodeId,
    },
}

/// What [`FrameCrypto::open`] learned about an accepted frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The transmitter named in the nonce (authenticated); `None` in integrity mode.
    pub transmitter: Option<NodeId>,
    /// The key epoch the frame was sealed under; `None` in integrity mode.
    pub epoch: Option<u32>,
}

/// Counters of sealed, accepted and refused frames.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CryptoStats {
    /// Frames sealed.
    pub sealed: u64,
    /// Frames opened and accepted.
    pub opened: u64,
    /// Frames refused as [`OpenError::Malformed`].
    pub malformed: u64,
    /// Frames refused as [`OpenError::BadCrc`].
    pub bad_crc: u64,
    /// Frames refused as [`OpenError::UnknownEpoch`].
    pub unknown_epoch: u64,
    /// Frames refused as [`OpenError::BadTag`].
    pub bad_tag: u64,
    /// Frames refused as [`OpenError::Replayed`].
    pub replayed: u64,
    /// Frames refused as [`OpenError::TooOld`].
    pub too_old: u64,
    /// Frames refused as [`OpenError::Misdirected`].
    pub misdirected: u64,
}

/// The rejected frames are summed by what an operator acts on: `invalid_digest` (a frame that
/// is not ours or was damaged: bad tag, bad CRC, malformed), `unknown_key_epoch`, and
/// `replayed_frames` (replayed, too old, or addressed to another node).
impl dataplane::stats::Visit for CryptoStats {
    fn visit(&self, v: &mut dyn dataplane::stats::Visitor) {
        v.counter("frames_sealed", self.sealed);
        v.counter("frames_opened", self.opened);
        v.counter(
            "invalid_digest",
            self.bad_tag + self.bad_crc + self.malformed,
        );
        v.counter("unknown_key_epoch", self.unknown_epoch);
        v.counter(
            "replayed_frames",
            self.replayed + self.too_old + self.misdirected,
        );
    }
}

impl CryptoStats {
    fn count(&mut self, error: OpenError) {
        let counter = match error {
            OpenError::Malformed => &mut self.malformed,
            OpenError::BadCrc => &mut self.bad_crc,
            OpenError::UnknownEpoch { .. } => &mut self.unknown_epoch,
            OpenError::BadTag => &mut self.bad_tag,
            OpenError::Replayed { .. } => &mut self.replayed,
            OpenError::TooOld { .. } => &mut self.too_old,
            OpenError::Misdirected { .. } => &mut self.misdirected,
        };
        *counter += 1;
    }
}

/// An epoch's key with its frame cipher (built once).
struct Epoch {
    key: EpochKey,
    cipher: Cipher,
}

impl Epoch {
    fn new(key: EpochKey) -> Epoch {
        let cipher = key.cipher(INFO_FRAME_KEY, key.epoch);
        Epoch { key, cipher }
    }
}

/// Seals and opens frames for one node: keys of the current and previous epoch (and of the
/// next one during a rekey), this node's nonce counter, the replay windows of the transmitters
/// heard from, and statistics.
pub struct FrameCrypto {
    protection: Protection,
    transmitter: NodeId,
    current: Option<Epoch>,
    previous: Option<Epoch>,
    /// An epoch accepted for receiving before this node seals with it ([`FrameCrypto::accept`]).
    next: Option<Epoch>,
    next_counter: u64,
    replay: ReplayWindows,
    /// Counters of this node's own frames that it sent to itself and will open.
    own_expected: std::collections::VecDeque<u64>,
    stats: CryptoStats,
}

impl fmt::Debug for FrameCrypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameCrypto")
            .field("protection", &self.protection)
            .field("transmitter", &self.transmitter)
            .field("current", &self.current.as_ref().map(|e| &e.key))
            .field("previous", &self.previous.as_ref().map(|e| &e.key))
            .field("next", &self.next.as_ref().map(|e| &e.key))
            .field("next_counter", &self.next_counter)
            .field("tracked_transmitters", &self.replay.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl FrameCrypto {
    /// `key` is required unless `protection` is Integrity (KeyError::Missing); in Integrity
    /// mode a given key is ignored. `transmitter` = this node; `counter_start` = first nonce
    /// counter (the caller persists a lease so counters never repeat across restarts; see
    /// [`FrameCrypto::next_counter`]).
    ///
    /// # Errors
    ///
    /// [`KeyError::Missing`].
    pub fn new(
        protection: Protection,
        transmitter: NodeId,
        key: Option<EpochKey>,
        counter_start: u64,
    ) -> Result<FrameCrypto, KeyError> {
        let current = match (protection, key) {
            (Protection::Integrity, _) => None,
            (_, None) => return Err(KeyError::Missing),
            (_, Some(key)) => Some(Epoch::new(key)),
        };
        Ok(FrameCrypto {
            protection,
            transmitter,
            current,
            previous: None,
            next: None,
            next_counter: counter_start,
            replay: ReplayWindows::default(),
            own_expected: std::collections::VecDeque::new(),
            stats: CryptoStats::default(),
        })
    }

    /// The protection mode.
    pub fn protection(&self) -> Protection {
        self.protection
    }

    /// Bytes added to a frame: Integrity 4; otherwise [`CRYPTO_FIELDS`] (4 epoch + 12 nonce
    /// + 4 destination = 20) + [`TAG_LEN`] (16) = 36.
    pub fn overhead(&self) -> usize {
        match self.protection {
            Protection::Integrity => CRC_LEN,
            Protection::Authenticate | Protection::Encrypt => CRYPTO_FIELDS + TAG_LEN,
        }
    }

    /// Seals a plaintext frame (starting with its 8-byte header) into `out` (cleared first;
    /// no allocation when it has room for the frame plus [`SEAL_HEADROOM`] + [`SEAL_TAILROOM`]).
    ///
    /// Layout for Authenticate/Encrypt: header (8, clear) | epoch u32 BE | nonce
    /// (transmitter u32 BE | counter u64 BE) | dest u32 BE (0: the ring) | body (encrypted
    /// for Encrypt, clear for Authenticate) | tag (16). Each seal uses the next counter.
    ///
    /// # Errors
    ///
    /// [`SealError::TooShort`] if `plain` is shorter than 8 bytes;
    /// [`SealError::CounterExhausted`] once the counter reached `u64::MAX`. `out` is left
    /// empty and the counter unchanged then.
    pub fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        self.seal_to(plain, None, out)
    }

    /// As [`FrameCrypto::seal`] for a frame addressed to one node (`None`: to the whole ring).
    /// The destination is authenticated: a receiver refuses a frame sealed for another node
    /// ([`OpenError::Misdirected`]), so an attacker cannot hand one member's token to another.
    ///
    /// # Errors
    /// As [`FrameCrypto::seal`].
    pub fn seal_to(
        &mut self,
        plain: &[u8],
        dest: Option<NodeId>,
        out: &mut Vec<u8>,
    ) -> Result<(), SealError> {
        out.clear();
        if plain.len() < HEADER_LEN {
            return Err(SealError::TooShort);
        }
        out.reserve(SEAL_HEADROOM + plain.len() + SEAL_TAILROOM);
        out.extend_from_slice(&[0; SEAL_HEADROOM]);
        out.extend_from_slice(plain);
        out.extend_from_slice(&[0; SEAL_TAILROOM]);
        match self.seal_in_place(out, plain.len(), dest) {
            Ok(wire) => {
                out.truncate(wire.end);
                out.drain(..wire.start);
                Ok(())
            }
            Err(e) => {
                out.clear();
                Err(e)
            }
        }
    }

    /// Seals the plaintext frame that fills `buf[SEAL_HEADROOM..SEAL_HEADROOM + plain_len]`
    /// where it lies, for `dest` (`None`: the whole ring), and returns where the wire frame is
    /// in `buf`. Nothing is copied but the 8-byte header: the crypto fields are written into
    /// the [`SEAL_HEADROOM`] reserved before the frame, the body is encrypted in place and
    /// the tag (or the CRC-32 trailer with [`Protection::Integrity`]) goes into the
    /// [`SEAL_TAILROOM`] after it. The wire frame is `buf[0..SEAL_HEADROOM + plain_len +
    /// TAG_LEN]` when authenticated, `buf[SEAL_HEADROOM..SEAL_HEADROOM + plain_len + CRC_LEN]`
    /// with integrity only. Same nonce rules as [`FrameCrypto::seal_to`]: each seal uses the
    /// next counter.
    ///
    /// # Errors
    ///
    /// [`SealError::TooShort`] if `plain_len` is below the 8-byte header,
    /// [`SealError::NoRoom`] if `buf` is shorter than `SEAL_HEADROOM + plain_len +
    /// SEAL_TAILROOM`, [`SealError::CounterExhausted`]; `buf` and the counter are unchanged
    /// then.
    pub fn seal_in_place(
        &mut self,
        buf: &mut [u8],
        plain_len: usize,
        dest: Option<NodeId>,
    ) -> Result<core::ops::Range<usize>, SealError> {
        if plain_len < HEADER_LEN {
            return Err(SealError::TooShort);
        }
        let end = SEAL_HEADROOM + plain_len;
        if buf.len() < end + SEAL_TAILROOM {
            return Err(SealError::NoRoom);
        }
        let Some(epoch) = &self.current else {
            let crc = crc32fast::hash(&buf[SEAL_HEADROOM..end]);
            buf[end..end + CRC_LEN].copy_from_slice(&crc.to_be_bytes());
            self.stats.sealed += 1;
            return Ok(SEAL_HEADROOM..end + CRC_LEN);
        };
        let counter = self.next_counter;
        if counter == u64::MAX {
            return Err(SealError::CounterExhausted);
        }
        // The frame's header moves to the front; the crypto fields fill the gap it leaves,
        // so the body is already where the wire frame wants it (BODY_START == SEAL_HEADROOM
        // + HEADER_LEN).
        buf.copy_within(SEAL_HEADROOM..SEAL_HEADROOM + HEADER_LEN, 0);
        let fields = &mut buf[HEADER_LEN..BODY_START];
        fields[..4].copy_from_slice(&epoch.key.epoch.to_be_bytes());
        fields[4..8].copy_from_slice(&self.transmitter.0.to_be_bytes());
        fields[8..16].copy_from_slice(&counter.to_be_bytes());
        fields[16..20].copy_from_slice(&dest.map_or(0, |d| d.0).to_be_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&buf[HEADER_LEN + 4..HEADER_LEN + 4 + NONCE_LEN]);
        let tag = match self.protection {
            Protection::Encrypt => {
                let (aad, body) = buf[..end].split_at_mut(BODY_START);
                epoch.cipher.seal(&nonce, aad, body)
            }
            _ => epoch.cipher.seal(&nonce, &buf[..end], &mut []),
        };
        buf[end..end + TAG_LEN].copy_from_slice(&tag);
        self.next_counter = counter + 1;
        self.stats.sealed += 1;
        Ok(0..end + TAG_LEN)
    }

    /// Opens a wire frame into `out` (cleared first): the plaintext frame = header + body,
    /// without crypto fields, tag or CRC. No allocation when `out` has room for the wire
    /// frame. A copy of the wire frame opened by [`FrameCrypto::open_in_place`].
    ///
    /// # Errors
    ///
    /// As [`FrameCrypto::open_in_place`]; `out` is left empty.
    pub fn open(&mut self, wire: &[u8], out: &mut Vec<u8>) -> Result<Opened, OpenError> {
        out.clear();
        out.extend_from_slice(wire);
        match self.open_in_place(out) {
            Ok((opened, plain)) => {
                out.truncate(plain.end);
                out.drain(..plain.start);
                Ok(opened)
            }
            Err(error) => {
                out.clear();
                Err(error)
            }
        }
    }

    /// Opens the wire frame that fills `buf` where it lies and returns where the plaintext
    /// frame (header + body) now is in `buf`: the body is decrypted in place and the 8-byte
    /// header moved next to it, over the crypto fields (`buf[SEAL_HEADROOM..len - TAG_LEN]`
    /// when authenticated, `buf[..len - CRC_LEN]` with integrity only). The caller can keep
    /// slices of that range (no copy).
    ///
    /// Checks, in order: length; for Integrity the CRC; epoch known (current or previous);
    /// tag; destination; replay window of the transmitter named in the nonce, which is only
    /// updated after the tag verified. Never panics on any input. Every refusal is counted in
    /// [`FrameCrypto::stats`].
    ///
    /// # Errors
    ///
    /// [`OpenError`]: `Malformed`, `BadCrc`, `UnknownEpoch`, `BadTag`, `Misdirected`,
    /// `Replayed`, `TooOld`. After a refusal the contents of `buf` are unspecified (partly
    /// decrypted or forged bytes): discard them.
    pub fn open_in_place(
        &mut self,
        buf: &mut [u8],
    ) -> Result<(Opened, core::ops::Range<usize>), OpenError> {
        match self.open_inner(buf) {
            Ok(opened) => {
                self.stats.opened += 1;
                Ok(opened)
            }
            Err(error) => {
                self.stats.count(error);
                Err(error)
            }
        }
    }

    fn open_inner(
        &mut self,
        buf: &mut [u8],
    ) -> Result<(Opened, core::ops::Range<usize>), OpenError> {
        let Some(current) = &self.current else {
            let Some(split) = buf.len().checked_sub(CRC_LEN).filter(|&s| s >= HEADER_LEN) else {
                return Err(OpenError::Malformed);
            };
            let (frame, trailer) = buf.split_at(split);
            if trailer != crc32fast::hash(frame).to_be_bytes() {
                return Err(OpenError::BadCrc);
            }
            let opened = Opened {
                transmitter: None,
                epoch: None,
            };
            return Ok((opened, 0..split));
        };
        let Some(tag_start) = buf.len().checked_sub(TAG_LEN).filter(|&s| s >= BODY_START) else {
            return Err(OpenError::Malformed);
        };
        let epoch = be_u32(&buf[HEADER_LEN..HEADER_LEN + 4]);
        let cipher = if epoch == current.key.epoch {
            &current.cipher
        } else {
            match (&self.previous, &self.next) {
                (Some(previous), _) if previous.key.epoch == epoch => &previous.cipher,
                (_, Some(next)) if next.key.epoch == epoch => &next.cipher,
                _ => {
                    return Err(OpenError::UnknownEpoch {
                        epoch,
                        current: current.key.epoch,
                    });
                }
            }
        };
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&buf[HEADER_LEN + 4..HEADER_LEN + 4 + NONCE_LEN]);
        let dest = be_u32(&buf[HEADER_LEN + 4 + NONCE_LEN..BODY_START]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&buf[tag_start..]);
        let (sealed, _) = buf.split_at_mut(tag_start);
        match self.protection {
            Protection::Encrypt => {
                let (fields, body) = sealed.split_at_mut(BODY_START);
                cipher
                    .open(&nonce, fields, body, &tag)
                    .map_err(|()| OpenError::BadTag)?;
            }
            _ => {
                cipher
                    .open(&nonce, sealed, &mut [], &tag)
                    .map_err(|()| OpenError::BadTag)?;
            }
        }
        let transmitter = NodeId(be_u32(&nonce[..4]));
        let counter = u64::from_be_bytes(nonce[4..].try_into().unwrap_or([0xff; 8]));
        if dest != 0 && dest != self.transmitter.0 {
            return Err(OpenError::Misdirected { dest: NodeId(dest) });
        }
        if transmitter == self.transmitter {
            // This node's own frame: legitimate only when it addressed the frame to itself
            // (the token of a ring of one). Anything else is a reflection of its own traffic.
            match self.own_expected.iter().position(|&c| c == counter) {
                Some(i) => {
                    self.own_expected.remove(i);
                }
                None => return Err(OpenError::Replayed { transmitter }),
            }
        } else {
            self.replay
                .accept(transmitter, counter)
                .map_err(|reject| match reject {
                    Reject::Replayed => OpenError::Replayed { transmitter },
                    Reject::TooOld => OpenError::TooOld { transmitter },
                })?;
        }
        // The header goes next to the body, over the crypto fields.
        buf.copy_within(..HEADER_LEN, SEAL_HEADROOM);
        let opened = Opened {
            transmitter: Some(transmitter),
            epoch: Some(epoch),
        };
        Ok((opened, SEAL_HEADROOM..tag_start))
    }

    /// Makes `key` the current (sending) epoch; the old current epoch stays accepted for
    /// receiving as `previous` until [`FrameCrypto::retire_previous`] (an older previous
    /// epoch is dropped, and so is an accepted next epoch other than `key`). The nonce counter
    /// and replay windows carry on.
    ///
    /// # Errors
    ///
    /// [`KeyError::EpochNotNewer`] unless `key.epoch()` is above the current epoch;
    /// [`KeyError::NoCrypto`] in Integrity mode.
    pub fn install(&mut self, key: EpochKey) -> Result<(), KeyError> {
        self.check_newer(&key)?;
        // An epoch accepted before (its cipher is built already) is the one installed now;
        // any other accepted epoch is dropped.
        let epoch = match self.next.take() {
            Some(next) if next.key.epoch == key.epoch => next,
            _ => Epoch::new(key),
        };
        self.previous = self.current.replace(epoch);
        Ok(())
    }

    /// Accepts frames sealed under `key` from now on, while this node still seals with the
    /// current epoch: the first step of a rekey, so that no member refuses a frame of a member
    /// that switched before it ([`FrameCrypto::install`] then switches this node). Replaces an
    /// epoch accepted before and not installed.
    ///
    /// # Errors
    ///
    /// [`KeyError::EpochNotNewer`] unless `key.epoch()` is above the current epoch;
    /// [`KeyError::NoCrypto`] in Integrity mode.
    pub fn accept(&mut self, key: EpochKey) -> Result<(), KeyError> {
        self.check_newer(&key)?;
        self.next = Some(Epoch::new(key));
        Ok(())
    }

    /// `key` may follow the current epoch: there is one (not Integrity mode) and it is older.
    fn check_newer(&self, key: &EpochKey) -> Result<(), KeyError> {
        let Some(current) = &self.current else {
            return Err(KeyError::NoCrypto);
        };
        if key.epoch <= current.key.epoch {
            return Err(KeyError::EpochNotNewer {
                epoch: key.epoch,
                current: current.key.epoch,
            });
        }
        Ok(())
    }

    /// The epoch accepted for receiving and not sealed with yet ([`FrameCrypto::accept`]).
    pub fn next_epoch(&self) -> Option<u32> {
        self.next.as_ref().map(|e| e.key.epoch)
    }

    /// Stops accepting the previous epoch (once every node sends under the current one).
    pub fn retire_previous(&mut self) {
        self.previous = None;
    }

    /// The current (sending) epoch; `None` in Integrity mode.
    pub fn epoch(&self) -> Option<u32> {
        self.current.as_ref().map(|e| e.key.epoch)
    }

    /// The previous epoch, still accepted for receiving.
    pub fn previous_epoch(&self) -> Option<u32> {
        self.previous.as_ref().map(|e| e.key.epoch)
    }

    /// The current epoch's key (for [`rekey_wrap`]).
    pub fn current_key(&self) -> Option<&EpochKey> {
        self.current.as_ref().map(|e| &e.key)
    }

    /// Announces that the frame sealed with `counter` (read [`FrameCrypto::next_counter`]
    /// before sealing it) is addressed to this node itself and may be opened once. Every other
    /// frame that names this node as its transmitter is refused as replayed: an attacker
    /// reflecting a node's own frames back to it gets nothing. At most 64 are remembered.
    pub fn expect_own(&mut self, counter: u64) {
        if self.own_expected.len() == 64 {
            self.own_expected.pop_front();
        }
        self.own_expected.push_back(counter);
    }

    /// The counter the next sealed frame will use. The caller must durably persist a lease
    /// above this value before sealing with counters beyond the previously persisted lease,
    /// and pass the persisted lease as `counter_start` after a restart.
    pub fn next_counter(&self) -> u64 {
        self.next_counter
    }

    /// Counters of sealed, accepted and refused frames.
    pub fn stats(&self) -> &CryptoStats {
        &self.stats
    }
}

/// The `crypto_open` fuzz target: `data[1..]` is opened in place as a wire frame by a
/// receiver of every protection mode (refused unless it is a frame with a valid CRC in
/// integrity mode), then sealed in place as a plaintext frame, opened in place again (it
/// must come back byte for byte), damaged at the byte `data[0]` selects (refused, and the
/// intact frame still opens afterwards) and replayed (refused).
///
/// # Panics
/// If a forged, damaged or replayed frame is accepted, or a sealed frame does not open to
/// what was sealed.
pub fn fuzz_open(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let key = EpochKey::new(1, vec![0x42; MIN_SECRET_LEN]).expect("a valid secret");
    for protection in [
        Protection::Integrity,
        Protection::Authenticate,
        Protection::Encrypt,
    ] {
        let new =
            |id| FrameCrypto::new(protection, NodeId(id), Some(key.clone()), 0).expect("keyed");
        let (mut tx, mut rx) = (new(1), new(2));
        let mut raw = rest.to_vec();
        if rx.open_in_place(&mut raw).is_ok() {
            assert_eq!(
                protection,
                Protection::Integrity,
                "a forged frame was accepted"
            );
        }
        if rest.len() < HEADER_LEN {
            continue;
        }
        let mut buf = vec![0; SEAL_HEADROOM];
        buf.extend_from_slice(rest);
        buf.extend_from_slice(&[0; SEAL_TAILROOM]);
        let wire = tx
            .seal_in_place(&mut buf, rest.len(), None)
            .expect("room and counter");
        let wire = buf[wire].to_vec();
        let mut damaged = wire.clone();
        damaged[usize::from(pick) % wire.len()] ^= 1 << (pick % 8);
        assert!(
            rx.open_in_place(&mut damaged).is_err(),
            "{protection:?}: a damaged frame was accepted"
        );
        let mut opened = wire.clone();
        let (_, plain) = rx
            .open_in_place(&mut opened)
            .expect("an intact frame opens");
        assert_eq!(&opened[plain], rest, "{protection:?}: the frame changed");
        if protection != Protection::Integrity {
            let mut again = wire;
            assert!(
                rx.open_in_place(&mut again).is_err(),
                "a replay was accepted"
            );
        }
    }
}

/// A big-endian u32 from the first 4 bytes (callers pass exactly 4).
fn be_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(word)
}
