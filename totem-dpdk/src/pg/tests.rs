//! Tests of packing and reassembly: unit tests per rule and per error, and a proptest that packs
//! random message streams into frames, parses them and reassembles them.

use proptest::prelude::*;

use super::*;
use crate::wire::{Frame, MCAST_FIXED_LEN, McastRepr, parse_frame};
use crate::{RingId, Seq};

const SENDER: NodeId = NodeId(7);

fn prio(level: u8) -> Priority {
    Priority::new(level).unwrap()
}

fn message(no: u64, kind: DeliveryKind, len: usize) -> OutgoingMessage {
    OutgoingMessage::new(no, kind, payload(no, len))
}

fn payload(no: u64, len: usize) -> Bytes {
    (0..len)
        .map(|i| (no as usize * 131 + i * 7 + i / 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// A checked mcast frame around a packed chunk area.
fn frame(seq: u64, area: &[u8], result: PackResult) -> Bytes {
    let repr = McastRepr {
        sender: SENDER,
        ring_id: RingId {
            seq: 1,
            rep: NodeId(1),
        },
        seq: Seq(seq),
        safe: result.safe,
        encapsulated: false,
        chunk_count: result.chunk_count,
    };
    let mut bytes = vec![0u8; MCAST_FIXED_LEN + result.bytes_written];
    let mut view = McastFrame::new_unchecked(&mut bytes[..]);
    repr.emit(&mut view);
    view.chunk_area_mut()
        .copy_from_slice(&area[..result.bytes_written]);
    let bytes = Bytes::from(bytes);
    McastFrame::new_checked(&bytes[..]).expect("packed frames are valid");
    bytes
}

/// (msg_no, offset, len) of each chunk packed by one call.
fn pack_chunks(packer: &mut Packer, budget: usize) -> Vec<(u64, u32, u16)> {
    let mut area = vec![0u8; budget];
    let result = packer.pack(&mut area);
    let bytes = frame(1, &area, result);
    let view = McastFrame::new_checked(&bytes[..]).unwrap();
    view.chunks()
        .map(|c| (c.msg_no(), c.offset(), c.len()))
        .collect()
}

/// A frame of hand-made chunks (which must be valid).
fn chunk_frame(chunks: &[ChunkRepr<'_>]) -> Bytes {
    let mut area = Vec::new();
    for chunk in chunks {
        let at = area.len();
        area.resize(at + chunk.buffer_len(), 0);
        chunk.emit(&mut area[at..]);
    }
    let result = PackResult {
        chunk_count: chunks.len() as u16,
        bytes_written: area.len(),
        safe: chunks.iter().any(|c| c.kind == DeliveryKind::Safe),
    };
    frame(1, &area, result)
}

fn feed(
    reassembler: &mut Reassembler,
    frame: &Bytes,
) -> Vec<Result<Option<Reassembled>, ReassemblyError>> {
    let view = McastFrame::new_unchecked(&frame[..]);
    view.chunks()
        .map(|chunk| reassembler.on_chunk(SENDER, &chunk, frame))
        .collect()
}

fn piece(no: u64, total: u32, offset: u32, data: &[u8]) -> ChunkRepr<'_> {
    ChunkRepr {
        msg_no: no,
        total_len: total,
        offset,
        kind: DeliveryKind::Agreed,
        payload: data,
    }
}

fn id(no: u64) -> MsgId {
    MsgId { sender: SENDER, no }
}

// ---- packing ----

#[test]
fn packed_len_counts_chunk_headers() {
    assert_eq!(packed_len(0), CHUNK_HEADER_LEN);
    assert_eq!(packed_len(1), 1 + CHUNK_HEADER_LEN);
    assert_eq!(
        packed_len(MAX_CHUNK_PAYLOAD),
        MAX_CHUNK_PAYLOAD + CHUNK_HEADER_LEN
    );
    assert_eq!(
        packed_len(MAX_CHUNK_PAYLOAD + 1),
        MAX_CHUNK_PAYLOAD + 1 + 2 * CHUNK_HEADER_LEN
    );
}

#[test]
fn nothing_queued_packs_nothing() {
    let mut packer = Packer::new();
    assert!(packer.is_empty());
    let mut area = [0u8; 100];
    assert!(packer.pack(&mut area).is_empty());
    packer.push(Priority::NORMAL, message(1, DeliveryKind::Agreed, 5));
    assert!(
        packer.pack(&mut area[..CHUNK_HEADER_LEN]).is_empty(),
        "no room for a byte"
    );
    assert_eq!(packer.queued(Priority::NORMAL), 1);
}

#[test]
fn many_small_messages_per_frame() {
    let mut packer = Packer::new();
    for no in 1..=4 {
        packer.push(Priority::NORMAL, message(no, DeliveryKind::Agreed, 10));
    }
    let mut area = [0u8; 100];
    let result = packer.pack(&mut area);
    assert_eq!(
        result,
        PackResult {
            chunk_count: 3,
            bytes_written: 90,
            safe: false
        }
    );
    assert_eq!(packer.queued(Priority::NORMAL), 1);
}

#[test]
fn priorities_first_then_fifo() {
    let mut packer = Packer::new();
    packer.push(prio(3), message(1, DeliveryKind::Agreed, 1));
    packer.push(prio(0), message(2, DeliveryKind::Agreed, 1));
    packer.push(prio(1), message(3, DeliveryKind::Safe, 1));
    packer.push(prio(0), message(4, DeliveryKind::Agreed, 1));
    let mut area = [0u8; 200];
    let result = packer.pack(&mut area);
    assert!(result.safe);
    let bytes = frame(1, &area, result);
    let view = McastFrame::new_checked(&bytes[..]).unwrap();
    let order: Vec<u64> = view.chunks().map(|c| c.msg_no()).collect();
    assert_eq!(order, [2, 4, 3, 1]);
}

#[test]
fn a_message_that_fits_an_empty_frame_is_not_split() {
    let mut packer = Packer::new();
    packer.push(prio(0), message(1, DeliveryKind::Agreed, 50));
    packer.push(prio(0), message(2, DeliveryKind::Agreed, 40));
    packer.push(prio(1), message(3, DeliveryKind::Agreed, 1));
    // 70 bytes used, 30 left: message 2 (60) waits, and message 3 (21) does not overtake it.
    assert_eq!(pack_chunks(&mut packer, 100), [(1, 0, 50)]);
    assert_eq!(pack_chunks(&mut packer, 100), [(2, 0, 40), (3, 0, 1)]);
    assert!(packer.is_empty());
}

#[test]
fn a_large_message_is_fragmented_and_continued_first() {
    let mut packer = Packer::new();
    packer.push(prio(0), message(1, DeliveryKind::Agreed, 10));
    packer.push(prio(3), message(2, DeliveryKind::Safe, 180));
    // Message 2 starts in the space message 1 left.
    assert_eq!(pack_chunks(&mut packer, 100), [(1, 0, 10), (2, 0, 50)]);
    assert_eq!(packer.in_progress().map(|m| m.sent), Some(50));
    // A new highest-priority message waits until message 2 is finished.
    packer.push(prio(0), message(3, DeliveryKind::Agreed, 10));
    assert_eq!(pack_chunks(&mut packer, 100), [(2, 50, 80)]);
    assert_eq!(pack_chunks(&mut packer, 100), [(2, 130, 50), (3, 0, 10)]);
    assert!(packer.is_empty());
}

#[test]
fn a_fragment_needs_one_payload_byte_of_room() {
    let mut packer = Packer::new();
    packer.push(prio(0), message(1, DeliveryKind::Agreed, 59));
    packer.push(prio(0), message(2, DeliveryKind::Agreed, 200));
    // 21 bytes left: a one-byte fragment.
    assert_eq!(pack_chunks(&mut packer, 100), [(1, 0, 59), (2, 0, 1)]);

    let mut packer = Packer::new();
    packer.push(prio(0), message(1, DeliveryKind::Agreed, 60));
    packer.push(prio(0), message(2, DeliveryKind::Agreed, 200));
    packer.push(prio(0), message(3, DeliveryKind::Agreed, 0));
    // 20 bytes left: no fragment, and the empty message 3 does not overtake message 2.
    assert_eq!(pack_chunks(&mut packer, 100), [(1, 0, 60)]);
    assert_eq!(pack_chunks(&mut packer, 100), [(2, 0, 80)]);
}

#[test]
fn empty_messages_take_one_chunk_header() {
    let mut packer = Packer::new();
    packer.push(prio(2), message(1, DeliveryKind::Agreed, 0));
    packer.push(prio(2), message(2, DeliveryKind::Safe, 0));
    let mut area = [0u8; 40];
    let result = packer.pack(&mut area);
    assert_eq!(
        result,
        PackResult {
            chunk_count: 2,
            bytes_written: 40,
            safe: true
        }
    );
    let mut reassembler = Reassembler::default();
    let out = feed(&mut reassembler, &frame(1, &area, result));
    let out: Vec<Reassembled> = out.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert_eq!(out[0].id, id(1));
    assert!(out[0].payload.is_empty());
    assert_eq!(out[1].kind, DeliveryKind::Safe);
}

#[test]
fn restart_in_progress_sends_from_offset_zero() {
    let mut packer = Packer::new();
    packer.push(prio(0), message(1, DeliveryKind::Agreed, 300));
    assert_eq!(pack_chunks(&mut packer, 100), [(1, 0, 80)]);
    packer.restart_in_progress();
    assert_eq!(pack_chunks(&mut packer, 100), [(1, 0, 80)]);
    assert_eq!(pack_chunks(&mut packer, 100), [(1, 80, 80)]);
}

#[test]
fn chunks_are_capped_at_u16_max() {
    let mut packer = Packer::new();
    let len = MAX_CHUNK_PAYLOAD + 10;
    packer.push(prio(0), message(1, DeliveryKind::Agreed, len));
    packer.push(prio(0), message(2, DeliveryKind::Agreed, 5));
    // The whole of message 1 fits this frame in two chunks.
    let chunks = pack_chunks(&mut packer, 2 * MAX_CHUNK_PAYLOAD);
    assert_eq!(
        chunks,
        [(1, 0, u16::MAX), (1, u32::from(u16::MAX), 10), (2, 0, 5)]
    );
}

// ---- reassembly ----

#[test]
fn a_whole_message_is_a_slice_of_the_frame() {
    let bytes = chunk_frame(&[piece(1, 3, 0, b"abc")]);
    let mut reassembler = Reassembler::default();
    let msg = feed(&mut reassembler, &bytes).remove(0).unwrap().unwrap();
    assert_eq!(msg.id, id(1));
    assert_eq!(msg.kind, DeliveryKind::Agreed);
    assert_eq!(&msg.payload[..], b"abc");
    let frame_range = bytes.as_ptr_range();
    assert!(frame_range.contains(&msg.payload.as_ptr()), "zero-copy");
}

#[test]
fn a_chunk_from_another_buffer_is_copied() {
    let bytes = chunk_frame(&[piece(1, 3, 0, b"abc")]);
    let view = McastFrame::new_checked(&bytes[..]).unwrap();
    let chunk = view.chunks().next().unwrap();
    let other = Bytes::from(vec![0u8; bytes.len()]);
    let msg = Reassembler::default()
        .on_chunk(SENDER, &chunk, &other)
        .unwrap()
        .unwrap();
    assert_eq!(&msg.payload[..], b"abc");
}

#[test]
fn fragments_are_joined() {
    let mut reassembler = Reassembler::default();
    let first = chunk_frame(&[piece(4, 9, 0, b"abc")]);
    let second = chunk_frame(&[piece(4, 9, 3, b"def")]);
    let third = chunk_frame(&[piece(4, 9, 6, b"ghi"), piece(5, 1, 0, b"z")]);
    assert_eq!(feed(&mut reassembler, &first), [Ok(None)]);
    assert!(reassembler.is_in_progress(SENDER));
    assert_eq!(feed(&mut reassembler, &second), [Ok(None)]);
    let out = feed(&mut reassembler, &third);
    assert_eq!(
        out[0],
        Ok(Some(Reassembled {
            id: id(4),
            kind: DeliveryKind::Agreed,
            payload: Bytes::from_static(b"abcdefghi"),
        }))
    );
    assert_eq!(out[1].as_ref().unwrap().as_ref().unwrap().id, id(5));
    assert!(!reassembler.is_in_progress(SENDER));
}

#[test]
fn too_large() {
    let mut reassembler = Reassembler::new(8);
    assert_eq!(reassembler.max_message_size(), 8);
    let ok = chunk_frame(&[piece(1, 8, 0, b"12345678")]);
    assert!(matches!(feed(&mut reassembler, &ok)[0], Ok(Some(_))));
    let big = chunk_frame(&[piece(2, 9, 0, b"12")]);
    assert_eq!(
        feed(&mut reassembler, &big),
        [Err(ReassemblyError::TooLarge {
            id: id(2),
            total_len: 9
        })]
    );
    assert!(!reassembler.is_in_progress(SENDER));
    assert_eq!(
        Reassembler::default().max_message_size(),
        DEFAULT_MAX_MESSAGE_SIZE
    );
}

#[test]
fn unexpected_continuation() {
    let mut reassembler = Reassembler::default();
    let orphan = chunk_frame(&[piece(1, 6, 3, b"def")]);
    assert_eq!(
        feed(&mut reassembler, &orphan),
        [Err(ReassemblyError::UnexpectedContinuation {
            id: id(1),
            offset: 3
        })]
    );
    // Another message's continuation, and a gap, both discard the partial message.
    let start = chunk_frame(&[piece(1, 9, 0, b"abc")]);
    for wrong in [piece(2, 9, 3, b"def"), piece(1, 9, 6, b"ghi")] {
        assert_eq!(feed(&mut reassembler, &start), [Ok(None)]);
        let result = feed(&mut reassembler, &chunk_frame(&[wrong]));
        assert!(
            matches!(
                result[0],
                Err(ReassemblyError::UnexpectedContinuation { .. })
            ),
            "{result:?}"
        );
        assert!(!reassembler.is_in_progress(SENDER));
    }
}

#[test]
fn interrupted() {
    let mut reassembler = Reassembler::default();
    let start = chunk_frame(&[piece(1, 9, 0, b"abc")]);
    let next = chunk_frame(&[piece(2, 2, 0, b"xy")]);
    assert_eq!(feed(&mut reassembler, &start), [Ok(None)]);
    assert_eq!(
        feed(&mut reassembler, &next),
        [Err(ReassemblyError::Interrupted {
            discarded: id(1),
            by: id(2)
        })]
    );
    assert!(!reassembler.is_in_progress(SENDER));
    // The interrupting chunk was not used: passing it again delivers its message.
    let again = feed(&mut reassembler, &next).remove(0).unwrap().unwrap();
    assert_eq!(again.id, id(2));
}

#[test]
fn length_and_kind_mismatch() {
    let mut reassembler = Reassembler::default();
    let start = chunk_frame(&[piece(1, 9, 0, b"abc")]);
    assert_eq!(feed(&mut reassembler, &start), [Ok(None)]);
    assert_eq!(
        feed(&mut reassembler, &chunk_frame(&[piece(1, 10, 3, b"def")])),
        [Err(ReassemblyError::LengthMismatch { id: id(1) })]
    );
    assert!(!reassembler.is_in_progress(SENDER));

    assert_eq!(feed(&mut reassembler, &start), [Ok(None)]);
    let safe = ChunkRepr {
        kind: DeliveryKind::Safe,
        ..piece(1, 9, 3, b"def")
    };
    assert_eq!(
        feed(&mut reassembler, &chunk_frame(&[safe])),
        [Err(ReassemblyError::KindMismatch { id: id(1) })]
    );
    assert!(!reassembler.is_in_progress(SENDER));
}

#[test]
fn invalid_chunk_of_an_unchecked_frame() {
    let mut bytes = chunk_frame(&[piece(1, 3, 0, b"abc")]).to_vec();
    bytes[MCAST_FIXED_LEN + 11] = 2; // total_len 2 < len 3
    let bytes = Bytes::from(bytes);
    let mut reassembler = Reassembler::default();
    assert_eq!(
        feed(&mut reassembler, &bytes),
        [Err(ReassemblyError::InvalidChunk { id: id(1) })]
    );
}

#[test]
fn discard_sender_and_clear() {
    let mut reassembler = Reassembler::default();
    let start = chunk_frame(&[piece(1, 9, 0, b"abc")]);
    assert_eq!(feed(&mut reassembler, &start), [Ok(None)]);
    assert!(reassembler.discard_sender(SENDER));
    assert!(!reassembler.discard_sender(SENDER));
    // The next fragment of the discarded message is now an orphan.
    let next = chunk_frame(&[piece(1, 9, 3, b"def")]);
    assert!(matches!(
        feed(&mut reassembler, &next)[0],
        Err(ReassemblyError::UnexpectedContinuation { .. })
    ));
    assert_eq!(feed(&mut reassembler, &start), [Ok(None)]);
    reassembler.clear();
    assert!(!reassembler.is_in_progress(SENDER));
}

#[test]
fn error_display() {
    let e = ReassemblyError::Interrupted {
        discarded: id(1),
        by: id(2),
    };
    assert_eq!(
        e.to_string(),
        "message 7:1 interrupted by the start of message 7:2"
    );
}

// ---- proptest: pack, frame, parse, reassemble ----

#[derive(Clone, Debug)]
enum Op {
    Push(u8, DeliveryKind, usize),
    Pack,
}

fn arb_size() -> impl Strategy<Value = usize> {
    prop_oneof![6 => 0usize..200, 3 => 200usize..3_000, 1 => 3_000usize..=40_000]
}

fn arb_op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![Just(DeliveryKind::Agreed), Just(DeliveryKind::Safe)];
    prop_oneof![
        3 => (0u8..4, kind, arb_size()).prop_map(|(p, k, s)| Op::Push(p, k, s)),
        1 => Just(Op::Pack),
    ]
}

/// Chunk-area budgets for MTU 1500 and 9000: minus IPv4 + UDP headers (28), an AEAD nonce and
/// tag (28) and the mcast fixed part.
const BUDGET_1500: usize = 1500 - 28 - 28 - MCAST_FIXED_LEN;
const BUDGET_9000: usize = 9000 - 28 - 28 - MCAST_FIXED_LEN;

struct Harness {
    budget: usize,
    packer: Packer,
    reassembler: Reassembler,
    /// Pushed messages, indexed by `no - 1`: (priority, kind, payload).
    sent: Vec<(u8, DeliveryKind, Bytes)>,
    delivered: Vec<Reassembled>,
    area: Vec<u8>,
    seq: u64,
}

impl Harness {
    fn new(budget: usize) -> Harness {
        Harness {
            budget,
            packer: Packer::new(),
            reassembler: Reassembler::default(),
            sent: Vec::new(),
            delivered: Vec::new(),
            area: vec![0u8; budget],
            seq: 0,
        }
    }

    fn push(&mut self, level: u8, kind: DeliveryKind, size: usize) {
        let no = self.sent.len() as u64 + 1;
        let data = payload(no, size);
        self.sent.push((level, kind, data.clone()));
        self.packer
            .push(prio(level), OutgoingMessage::new(no, kind, data));
    }

    fn pack(&mut self) -> Result<(), TestCaseError> {
        let had_work = !self.packer.is_empty();
        let result = self.packer.pack(&mut self.area);
        prop_assert_eq!(
            result.is_empty(),
            !had_work,
            "packs whenever work is queued"
        );
        if result.is_empty() {
            return Ok(());
        }
        self.seq += 1;
        let bytes = frame(self.seq, &self.area, result);
        let Ok(Frame::Mcast(view)) = parse_frame(&bytes) else {
            return Err(TestCaseError::fail("packed frame does not parse"));
        };
        for chunk in view.chunks() {
            let no = chunk.msg_no();
            let (level, _, _) = self.sent[no as usize - 1];
            prop_assert!(
                packed_len(chunk.total_len() as usize) > self.budget || chunk.is_whole_message(),
                "message {} fits a frame but was split",
                no
            );
            if chunk.offset() == 0 {
                for higher in 0..level {
                    prop_assert_eq!(self.packer.queued(prio(higher)), 0, "priority order");
                }
            }
            match self.reassembler.on_chunk(SENDER, &chunk, &bytes) {
                Ok(Some(msg)) => {
                    if chunk.is_whole_message() && !chunk.is_empty() {
                        prop_assert!(bytes.as_ptr_range().contains(&msg.payload.as_ptr()));
                    }
                    self.delivered.push(msg);
                }
                Ok(None) => {}
                Err(err) => return Err(TestCaseError::fail(format!("reassembly: {err}"))),
            }
        }
        // The frame is as full as the rules allow.
        let room = self.budget - result.bytes_written;
        if self.packer.in_progress().is_some() {
            prop_assert!(
                room <= CHUNK_HEADER_LEN,
                "unfinished fragment left {} bytes",
                room
            );
        } else if let Some(head) = self.packer.queues_mut().iter().find_map(|q| q.front()) {
            let need = packed_len(head.payload.len());
            prop_assert!(need > room, "message {} would have fitted", head.no);
            if need > self.budget {
                prop_assert!(
                    room <= CHUNK_HEADER_LEN,
                    "large message {} not started",
                    head.no
                );
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), TestCaseError> {
        // Every frame carries at least one payload byte or one whole (empty) message.
        let bound = self
            .sent
            .iter()
            .map(|(_, _, data)| data.len() + 1)
            .sum::<usize>();
        let mut frames = 0;
        while !self.packer.is_empty() {
            self.pack()?;
            frames += 1;
            prop_assert!(frames <= bound, "packing does not terminate");
        }
        prop_assert!(!self.reassembler.is_in_progress(SENDER));
        prop_assert_eq!(self.delivered.len(), self.sent.len());
        // Every message exactly once, intact.
        let mut seen = vec![false; self.sent.len()];
        for msg in &self.delivered {
            let index = msg.id.no as usize - 1;
            prop_assert!(!seen[index], "message {} delivered twice", msg.id);
            seen[index] = true;
            let (_, kind, data) = &self.sent[index];
            prop_assert_eq!(msg.kind, *kind);
            prop_assert_eq!(&msg.payload, data);
        }
        // FIFO within each priority.
        for level in 0..4 {
            let order: Vec<u64> = self
                .delivered
                .iter()
                .map(|m| m.id.no)
                .filter(|no| self.sent[*no as usize - 1].0 == level)
                .collect();
            prop_assert!(
                order.is_sorted(),
                "priority {} out of order: {:?}",
                level,
                order
            );
        }
        Ok(())
    }
}

fn run(ops: &[Op], budget: usize) -> Result<(), TestCaseError> {
    let mut harness = Harness::new(budget);
    for op in ops {
        match *op {
            Op::Push(level, kind, size) => harness.push(level, kind, size),
            Op::Pack => harness.pack()?,
        }
    }
    harness.finish()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn pack_then_reassemble_mtu_1500(ops in prop::collection::vec(arb_op(), 0..40)) {
        run(&ops, BUDGET_1500)?;
    }

    #[test]
    fn pack_then_reassemble_mtu_9000(ops in prop::collection::vec(arb_op(), 0..40)) {
        run(&ops, BUDGET_9000)?;
    }

    #[test]
    fn pack_then_reassemble_any_budget(
        ops in prop::collection::vec(arb_op(), 0..25),
        budget in 64usize..2_000,
    ) {
        run(&ops, budget)?;
    }

    #[test]
    fn pack_then_reassemble_tiny_budget(
        ops in prop::collection::vec(arb_op(), 0..10),
        budget in (CHUNK_HEADER_LEN + 1)..64,
    ) {
        let ops: Vec<Op> = ops
            .into_iter()
            .map(|op| match op {
                Op::Push(level, kind, size) => Op::Push(level, kind, size % 300),
                Op::Pack => Op::Pack,
            })
            .collect();
        run(&ops, budget)?;
    }
}

// ---- proptest: the fuzz target on random chunk streams ----

/// One frame with one chunk of small, possibly inconsistent fields:
/// (sender, msg_no, total_len, offset, payload len, safe).
fn arb_small_chunk() -> impl Strategy<Value = (u32, u64, u32, u32, usize, bool)> {
    (
        1u32..3,
        0u64..4,
        0u32..12,
        0u32..12,
        0usize..12,
        any::<bool>(),
    )
}

fn fuzz_input(chunks: &[(u32, u64, u32, u32, usize, bool)]) -> Vec<u8> {
    let mut input = Vec::new();
    for &(sender, no, total, offset, len, safe) in chunks {
        let data = vec![no as u8; len];
        let chunk = ChunkRepr {
            msg_no: no,
            total_len: total,
            offset,
            kind: if safe {
                DeliveryKind::Safe
            } else {
                DeliveryKind::Agreed
            },
            payload: &data,
        };
        let repr = McastRepr {
            sender: NodeId(sender),
            safe,
            chunk_count: 1,
            ..McastRepr::default()
        };
        let mut bytes = vec![0u8; MCAST_FIXED_LEN + chunk.buffer_len()];
        let mut view = McastFrame::new_unchecked(&mut bytes[..]);
        repr.emit(&mut view);
        chunk.emit(view.chunk_area_mut());
        input.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        input.extend_from_slice(&bytes);
    }
    input
}

proptest! {
    #[test]
    fn fuzz_reassemble_on_chunk_streams(
        chunks in prop::collection::vec(arb_small_chunk(), 0..30),
    ) {
        fuzz_reassemble(&fuzz_input(&chunks));
    }

    #[test]
    fn fuzz_reassemble_on_random_bytes(data in prop::collection::vec(any::<u8>(), 0..400)) {
        fuzz_reassemble(&data);
    }
}
