//! Message packing, fragmentation and reassembly: the layer between submitted messages and
//! mcast frames (openais's `totempg`). Pure: no I/O, no clock.
//!
//! **Sending.** Submitted messages wait in four FIFO queues, one per [`Priority`]. Each time
//! the core builds an mcast frame it calls [`pack`] (or [`Packer::pack`]) with the frame's chunk
//! area as the byte budget:
//!
//! 1. a message already partly sent (the *in-progress* message) is continued first, whatever
//!    the priorities, so a sender's fragments are never interleaved with its other messages;
//! 2. then whole messages are taken from the highest-priority non-empty queue (index 0) down
//!    to the lowest, FIFO within a queue;
//! 3. a message that fits in an empty frame but not in the space left ends the frame: it is not
//!    split, it goes first into the next frame (and nothing queued after it, at any priority,
//!    overtakes it);
//! 4. a message larger than a whole frame is split: its first fragment fills the rest of the
//!    frame (if at least [`CHUNK_HEADER_LEN`]` + 1` bytes are left) and it becomes the
//!    in-progress message.
//!
//! Packing copies payload bytes into the frame and allocates nothing; fragments of an
//! in-progress message are tracked by [`OutgoingMessage::sent`].
//!
//! **Receiving.** A [`Reassembler`] takes the chunks of delivered mcast frames in delivery
//! order and returns whole messages. A message that fits in one chunk comes back as a
//! zero-copy slice of the frame's `Bytes`; fragments are copied into one buffer per sender.
//!
//! **Configuration changes.** Fragments of a message that straddle a ring change would reach
//! only the nodes that saw the first fragment. The intended use: at a configuration change the
//! sender calls [`Packer::restart_in_progress`] and every receiver calls
//! [`Reassembler::clear`] (or [`Reassembler::discard_sender`] for the nodes that left), so the
//! message is sent again whole on the new ring.

use std::collections::{BTreeMap, VecDeque};

use bytes::{Bytes, BytesMut};

use crate::wire::{CHUNK_HEADER_LEN, Chunk, ChunkRepr, McastFrame};
use crate::{DeliveryKind, MsgId, NodeId, Priority};

#[cfg(test)]
mod tests;

/// The default largest message a [`Reassembler`] accepts: 64 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// The largest payload of one chunk (its `len` field is 16 bits).
pub const MAX_CHUNK_PAYLOAD: usize = u16::MAX as usize;

/// How much a growing reassembly buffer reserves up front, whatever the announced total
/// length: a remote sender cannot make a receiver allocate more than it actually sends.
const REASSEMBLY_PREALLOC: usize = 64 * 1024;

/// A submitted message waiting to be packed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The sender's message counter, from 1 (the chunks' `msg_no`).
    pub no: u64,
    /// Agreed or safe delivery.
    pub kind: DeliveryKind,
    /// The message. At most `u32::MAX` bytes (in practice the configured maximum message
    /// size, enforced when the message is submitted).
    pub payload: Bytes,
    /// Bytes of `payload` already packed into earlier frames; 0 for a message not started.
    pub sent: usize,
}

impl OutgoingMessage {
    /// A message not started yet.
    pub fn new(no: u64, kind: DeliveryKind, payload: Bytes) -> OutgoingMessage {
        OutgoingMessage {
            no,
            kind,
            payload,
            sent: 0,
        }
    }

    /// Bytes of the payload not packed yet.
    pub fn remaining(&self) -> usize {
        self.payload.len().saturating_sub(self.sent)
    }
}

/// What one call to [`pack`] wrote.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct PackResult {
    /// The number of chunks written: the frame's `chunk_count`. 0 when nothing was packed.
    pub chunk_count: u16,
    /// Bytes written at the start of the chunk area.
    pub bytes_written: usize,
    /// At least one chunk is of a safe message: the frame's SAFE flag.
    pub safe: bool,
}

impl PackResult {
    /// True when nothing was packed (no frame to send).
    pub fn is_empty(&self) -> bool {
        self.chunk_count == 0
    }
}

/// The bytes a message of `payload_len` bytes takes in a chunk area when packed whole: its
/// payload and one chunk header per [`MAX_CHUNK_PAYLOAD`] bytes (one for an empty message).
pub fn packed_len(payload_len: usize) -> usize {
    let chunks = payload_len.div_ceil(MAX_CHUNK_PAYLOAD).max(1);
    payload_len + chunks * CHUNK_HEADER_LEN
}

/// Packs queued messages into the chunk area of one mcast frame.
///
/// `queues` are the send queues by priority (index 0 highest), `in_progress` the message whose
/// first fragments went into earlier frames, and `out` the chunk area: its length is the byte
/// budget. The caller writes the frame's fixed part, with `chunk_count` and the SAFE flag from
/// the result (see [`crate::wire::McastRepr`]). The rules are in the [module doc](self).
/// Nothing is packed when `out` is shorter than [`CHUNK_HEADER_LEN`]` + 1`, except an empty
/// message.
///
/// # Panics
///
/// If a message's payload is longer than `u32::MAX` bytes or its `sent` is past its end.
pub fn pack(
    queues: &mut [VecDeque<OutgoingMessage>; Priority::LEVELS],
    in_progress: &mut Option<OutgoingMessage>,
    out: &mut [u8],
) -> PackResult {
    let frame_room = out.len();
    let mut writer = Writer {
        out,
        len: 0,
        count: 0,
        safe: false,
    };
    if let Some(msg) = in_progress {
        if !writer.write(msg) {
            return writer.result();
        }
        *in_progress = None;
    }
    for queue in queues.iter_mut() {
        while let Some(front) = queue.front() {
            let need = packed_len(front.remaining());
            if need > writer.room() {
                if need <= frame_room || writer.room() <= CHUNK_HEADER_LEN {
                    // Fits an empty frame (never split), or no room for a fragment: next frame.
                    return writer.result();
                }
                // Larger than a whole frame: its first fragment fills this one.
                let mut msg = queue.pop_front().expect("queue has a front");
                if !writer.write(&mut msg) {
                    *in_progress = Some(msg);
                }
                return writer.result();
            }
            let mut msg = queue.pop_front().expect("queue has a front");
            let done = writer.write(&mut msg);
            debug_assert!(done, "a message that fits is packed whole");
        }
    }
    writer.result()
}

/// Writes chunks into a chunk area.
struct Writer<'a> {
    out: &'a mut [u8],
    len: usize,
    count: u16,
    safe: bool,
}

impl Writer<'_> {
    /// Bytes still free (0 once the chunk count is at its maximum).
    fn room(&self) -> usize {
        if self.count == u16::MAX {
            0
        } else {
            self.out.len() - self.len
        }
    }

    /// Writes as much of `msg` as fits; true when the message is now wholly packed.
    fn write(&mut self, msg: &mut OutgoingMessage) -> bool {
        if msg.payload.is_empty() {
            if self.room() < CHUNK_HEADER_LEN {
                return false;
            }
            self.chunk(msg, 0);
            return true;
        }
        while msg.sent < msg.payload.len() {
            let room = self.room();
            if room <= CHUNK_HEADER_LEN {
                return false;
            }
            let take = msg
                .remaining()
                .min(room - CHUNK_HEADER_LEN)
                .min(MAX_CHUNK_PAYLOAD);
            self.chunk(msg, take);
        }
        true
    }

    fn chunk(&mut self, msg: &mut OutgoingMessage, take: usize) {
        let repr = ChunkRepr {
            msg_no: msg.no,
            total_len: u32::try_from(msg.payload.len()).expect("message at most u32::MAX bytes"),
            offset: u32::try_from(msg.sent).expect("offset inside the message"),
            kind: msg.kind,
            payload: &msg.payload[msg.sent..msg.sent + take],
        };
        repr.emit(&mut self.out[self.len..]);
        self.len += repr.buffer_len();
        self.count += 1;
        self.safe |= msg.kind == DeliveryKind::Safe;
        msg.sent += take;
    }

    fn result(&self) -> PackResult {
        PackResult {
            chunk_count: self.count,
            bytes_written: self.len,
            safe: self.safe,
        }
    }
}

/// The send side of this layer: the four priority queues and the in-progress message, around
/// [`pack`].
#[derive(Clone, Debug, Default)]
pub struct Packer {
    queues: [VecDeque<OutgoingMessage>; Priority::LEVELS],
    in_progress: Option<OutgoingMessage>,
}

impl Packer {
    /// An empty packer.
    pub fn new() -> Packer {
        Packer::default()
    }

    /// Queues `msg` at the back of its priority's queue.
    pub fn push(&mut self, priority: Priority, msg: OutgoingMessage) {
        self.queues[priority.index()].push_back(msg);
    }

    /// Packs the next frame's chunks into `out`; see [`pack`].
    ///
    /// # Panics
    ///
    /// As [`pack`].
    #[must_use = "the result gives the frame's chunk_count and SAFE flag"]
    pub fn pack(&mut self, out: &mut [u8]) -> PackResult {
        pack(&mut self.queues, &mut self.in_progress, out)
    }

    /// True when nothing is queued or in progress.
    pub fn is_empty(&self) -> bool {
        self.in_progress.is_none() && self.queues.iter().all(VecDeque::is_empty)
    }

    /// The number of messages waiting (not started) at `priority`.
    pub fn queued(&self, priority: Priority) -> usize {
        self.queues[priority.index()].len()
    }

    /// The partly sent message, if any.
    pub fn in_progress(&self) -> Option<&OutgoingMessage> {
        self.in_progress.as_ref()
    }

    /// Marks the in-progress message as not started, so its next frame carries it from
    /// offset 0 (for a configuration change: see the [module doc](self)).
    pub fn restart_in_progress(&mut self) {
        if let Some(msg) = &mut self.in_progress {
            msg.sent = 0;
        }
    }

    /// The queues, for flow control and for dropping messages.
    pub fn queues_mut(&mut self) -> &mut [VecDeque<OutgoingMessage>; Priority::LEVELS] {
        &mut self.queues
    }
}

/// A whole message, reassembled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reassembled {
    /// Sender and the sender's message counter.
    pub id: MsgId,
    /// Agreed or safe delivery.
    pub kind: DeliveryKind,
    /// The message: a slice of the frame for a single-chunk message, else a new buffer.
    pub payload: Bytes,
}

/// Why [`Reassembler::on_chunk`] refused a chunk. After any error the sender has no message in
/// progress (a partial message is discarded) and the chunk was not used.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ReassemblyError {
    /// The message's total length is over the reassembler's `max_message_size`.
    #[error("message {id} of {total_len} bytes is larger than the maximum message size")]
    TooLarge {
        /// The message.
        id: MsgId,
        /// Its announced total length.
        total_len: u32,
    },
    /// A chunk with a non-zero offset that does not continue the sender's partial message
    /// (none, another message, or not at the next offset).
    #[error("chunk of message {id} at offset {offset} continues no partial message")]
    UnexpectedContinuation {
        /// The message of the chunk.
        id: MsgId,
        /// The chunk's offset.
        offset: u32,
    },
    /// The first chunk of a new message arrived while another message of the same sender was
    /// incomplete. The partial message is discarded; the new chunk was **not** used: pass it
    /// again to start the new message.
    #[error("message {discarded} interrupted by the start of message {by}")]
    Interrupted {
        /// The discarded partial message.
        discarded: MsgId,
        /// The message whose first chunk interrupted it.
        by: MsgId,
    },
    /// A continuation announces another total length than the first chunk did.
    #[error("chunk of message {id} announces another total length")]
    LengthMismatch {
        /// The message.
        id: MsgId,
    },
    /// A continuation has another delivery kind than the first chunk had.
    #[error("chunk of message {id} has another delivery kind")]
    KindMismatch {
        /// The message.
        id: MsgId,
    },
    /// The chunk's own fields are invalid (see [`Chunk::check`]); only possible for chunks
    /// of an unchecked frame.
    #[error("invalid chunk of message {id}")]
    InvalidChunk {
        /// The message.
        id: MsgId,
    },
}

/// A message being reassembled.
#[derive(Clone, Debug)]
struct Partial {
    no: u64,
    kind: DeliveryKind,
    total_len: u32,
    buf: BytesMut,
}

/// The receive side of this layer: turns chunks, in delivery order, back into messages. Keeps
/// at most one partial message per sender (a sender never interleaves its messages'
/// fragments), in a `BTreeMap` so that iteration is deterministic.
#[derive(Clone, Debug)]
pub struct Reassembler {
    max_message_size: usize,
    partial: BTreeMap<NodeId, Partial>,
}

impl Default for Reassembler {
    fn default() -> Reassembler {
        Reassembler::new(DEFAULT_MAX_MESSAGE_SIZE)
    }
}

impl Reassembler {
    /// A reassembler that refuses messages longer than `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Reassembler {
        Reassembler {
            max_message_size,
            partial: BTreeMap::new(),
        }
    }

    /// The largest message accepted.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Takes the next chunk from `sender`, in delivery order. `frame` is the buffer the chunk
    /// was parsed from: a single-chunk message is returned as a slice of it, without copying.
    /// (If the chunk was not parsed from `frame`, its payload is copied instead.)
    ///
    /// Returns the message when this chunk completes one, `None` when more fragments are due.
    ///
    /// # Errors
    ///
    /// See [`ReassemblyError`]. After an error the sender has no partial message.
    ///
    /// # Fuzzing
    ///
    /// Never panics, also for chunks of unchecked frames (fuzz target `pg_reassemble`).
    pub fn on_chunk(
        &mut self,
        sender: NodeId,
        chunk: &Chunk<'_>,
        frame: &Bytes,
    ) -> Result<Option<Reassembled>, ReassemblyError> {
        let id = MsgId {
            sender,
            no: chunk.msg_no(),
        };
        if chunk.check().is_err() {
            self.partial.remove(&sender);
            return Err(ReassemblyError::InvalidChunk { id });
        }
        let total_len = chunk.total_len();
        let offset = chunk.offset();
        if offset == 0 {
            if let Some(partial) = self.partial.remove(&sender) {
                return Err(ReassemblyError::Interrupted {
                    discarded: MsgId {
                        sender,
                        no: partial.no,
                    },
                    by: id,
                });
            }
            if u64::from(total_len) > self.max_message_size as u64 {
                return Err(ReassemblyError::TooLarge { id, total_len });
            }
            if chunk.is_whole_message() {
                return Ok(Some(Reassembled {
                    id,
                    kind: chunk.kind(),
                    payload: frame_slice(chunk, frame),
                }));
            }
            let capacity = (total_len as usize).min(REASSEMBLY_PREALLOC);
            let mut buf = BytesMut::with_capacity(capacity);
            buf.extend_from_slice(chunk.payload());
            self.partial.insert(
                sender,
                Partial {
                    no: id.no,
                    kind: chunk.kind(),
                    total_len,
                    buf,
                },
            );
            return Ok(None);
        }

        let Some(partial) = self.partial.get_mut(&sender) else {
            return Err(ReassemblyError::UnexpectedContinuation { id, offset });
        };
        let error = if partial.no != id.no || partial.buf.len() != offset as usize {
            Some(ReassemblyError::UnexpectedContinuation { id, offset })
        } else if partial.total_len != total_len {
            Some(ReassemblyError::LengthMismatch { id })
        } else if partial.kind != chunk.kind() {
            Some(ReassemblyError::KindMismatch { id })
        } else {
            None
        };
        if let Some(error) = error {
            self.partial.remove(&sender);
            return Err(error);
        }
        partial.buf.extend_from_slice(chunk.payload());
        if partial.buf.len() < total_len as usize {
            return Ok(None);
        }
        let partial = self.partial.remove(&sender).expect("partial exists");
        Ok(Some(Reassembled {
            id,
            kind: partial.kind,
            payload: partial.buf.freeze(),
        }))
    }

    /// True when a message from `sender` is partly reassembled.
    pub fn is_in_progress(&self, sender: NodeId) -> bool {
        self.partial.contains_key(&sender)
    }

    /// Drops `sender`'s partial message, if any (for a node leaving the ring). True if there
    /// was one.
    pub fn discard_sender(&mut self, sender: NodeId) -> bool {
        self.partial.remove(&sender).is_some()
    }

    /// Drops every partial message (for a configuration change).
    pub fn clear(&mut self) {
        self.partial.clear();
    }
}

/// The chunk's payload as a slice of `frame` when it was parsed from it, else a copy.
fn frame_slice(chunk: &Chunk<'_>, frame: &Bytes) -> Bytes {
    let range = chunk.payload_range();
    match frame.get(range.clone()) {
        Some(bytes) if core::ptr::eq(bytes.as_ptr(), chunk.payload().as_ptr()) => {
            frame.slice(range)
        }
        _ => Bytes::copy_from_slice(chunk.payload()),
    }
}

/// The `pg_reassemble` fuzz target. `data` is a sequence of frames, each prefixed with its
/// length as a big-endian `u16` (cut short at the end of `data`). Each frame's chunks
/// (checked or not) are fed, from the frame's header sender, to one [`Reassembler`] with a
/// 1 MiB limit, and its answers are checked for consistency.
///
/// # Panics
///
/// When a check fails, which is a bug in this module.
pub fn fuzz_reassemble(data: &[u8]) {
    let mut reassembler = Reassembler::new(1 << 20);
    let mut rest = data;
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (frame, next) = tail.split_at(len);
        rest = next;
        fuzz_feed_frame(&mut reassembler, &Bytes::copy_from_slice(frame));
    }
}

fn fuzz_feed_frame(reassembler: &mut Reassembler, frame: &Bytes) {
    let view = McastFrame::new_unchecked(&frame[..]);
    if frame.len() < crate::wire::HEADER_LEN {
        return;
    }
    let checked = view.check().is_ok();
    let sender = view.sender();
    for chunk in view.chunks() {
        let mut result = reassembler.on_chunk(sender, &chunk, frame);
        if let Err(ReassemblyError::Interrupted { discarded, by }) = result {
            assert_eq!(discarded.sender, sender);
            assert_eq!(by.no, chunk.msg_no());
            assert!(!reassembler.is_in_progress(sender));
            result = reassembler.on_chunk(sender, &chunk, frame);
            assert!(!matches!(result, Err(ReassemblyError::Interrupted { .. })));
        }
        match result {
            Ok(Some(msg)) => {
                assert_eq!(
                    msg.id,
                    MsgId {
                        sender,
                        no: chunk.msg_no()
                    }
                );
                assert_eq!(msg.kind, chunk.kind());
                assert_eq!(msg.payload.len(), chunk.total_len() as usize);
                assert!(msg.payload.len() <= reassembler.max_message_size());
                assert!(msg.payload.ends_with(chunk.payload()));
                if chunk.is_whole_message() && !chunk.is_empty() {
                    assert!(core::ptr::eq(
                        msg.payload.as_ptr(),
                        chunk.payload().as_ptr()
                    ));
                }
                assert!(!reassembler.is_in_progress(sender));
            }
            Ok(None) => assert!(reassembler.is_in_progress(sender)),
            Err(ReassemblyError::InvalidChunk { .. }) => {
                assert!(!checked);
                assert!(!reassembler.is_in_progress(sender));
            }
            Err(_) => assert!(!reassembler.is_in_progress(sender)),
        }
    }
}
