//! Tests of the frame views: static frames, every truncation and bad field, proptest round
//! trips, and the fuzz target on random and mutated input.

use proptest::prelude::*;

use super::*;
use crate::{DeliveryKind, NodeId, RingId, Seq};

#[rustfmt::skip]
static TOKEN_BYTES: [u8; 92] = [
    0xa1, 0x5e, 0x01, 0x01, 0x00, 0x00, 0x00, 0x01, // magic, version 1, type 1, sender 1
    0x00, 0x00, 0x00, 0x01,                         // ring rep 1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, // ring seq 4
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, // token_seq 7
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, // seq 10
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, // aru 9
    0x00, 0x00, 0x00, 0x02,                         // aru_addr 2
    0x00, 0x00, 0x00, 0x03,                         // fcc 3
    0x00, 0x00, 0x00, 0x05,                         // backlog 5
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, // rot_min 8
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, // safe 6
    0x01, 0x00, 0x00, 0x02,                         // retrans_flg, reserved, rtr_count 2
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, // rtr 9
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, // rtr 10
];

fn token_repr() -> OrfTokenRepr {
    OrfTokenRepr {
        sender: NodeId(1),
        ring_id: RingId {
            seq: 4,
            rep: NodeId(1),
        },
        token_seq: 7,
        seq: Seq(10),
        aru: Seq(9),
        aru_addr: NodeId(2),
        fcc: 3,
        backlog: 5,
        rot_min: Seq(8),
        safe: Seq(6),
        retrans_flg: true,
        rtr: vec![Seq(9), Seq(10)],
    }
}

#[rustfmt::skip]
static MCAST_BYTES: [u8; 79] = [
    0xa1, 0x5e, 0x01, 0x02, 0x00, 0x00, 0x00, 0x02, // magic, version 1, type 2, sender 2
    0x00, 0x00, 0x00, 0x01,                         // ring rep 1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, // ring seq 4
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, // seq 11
    0x01, 0x00, 0x00, 0x02,                         // SAFE, reserved, chunk_count 2
    // chunk 1 (offset 32): message 5, whole, agreed, "abc"
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, // msg_no 5
    0x00, 0x00, 0x00, 0x03,                         // total_len 3
    0x00, 0x00, 0x00, 0x00,                         // offset 0
    0x00, 0x03, 0x00, 0x00,                         // len 3, agreed, reserved
    b'a', b'b', b'c',
    // chunk 2 (offset 55): first 4 bytes of message 6 (10 bytes), safe, "wxyz"
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, // msg_no 6
    0x00, 0x00, 0x00, 0x0a,                         // total_len 10
    0x00, 0x00, 0x00, 0x00,                         // offset 0
    0x00, 0x04, 0x01, 0x00,                         // len 4, safe, reserved
    b'w', b'x', b'y', b'z',
];

const CHUNK1: usize = 32;
const CHUNK2: usize = 55;

fn mcast_repr() -> McastRepr {
    McastRepr {
        sender: NodeId(2),
        ring_id: RingId {
            seq: 4,
            rep: NodeId(1),
        },
        seq: Seq(11),
        safe: true,
        encapsulated: false,
        chunk_count: 2,
    }
}

fn mcast_chunks() -> [ChunkRepr<'static>; 2] {
    [
        ChunkRepr {
            msg_no: 5,
            total_len: 3,
            offset: 0,
            kind: DeliveryKind::Agreed,
            payload: b"abc",
        },
        ChunkRepr {
            msg_no: 6,
            total_len: 10,
            offset: 0,
            kind: DeliveryKind::Safe,
            payload: b"wxyz",
        },
    ]
}

fn patched(base: &[u8], at: usize, value: u8) -> Vec<u8> {
    let mut bytes = base.to_vec();
    bytes[at] = value;
    bytes
}

// ---- header ----

#[test]
fn header_deconstruct_and_errors() {
    let header = Header::new_checked(&TOKEN_BYTES[..8]).unwrap();
    assert_eq!(header.magic(), MAGIC);
    assert_eq!(header.version(), PROTOCOL_VERSION);
    assert_eq!(header.frame_type(), FrameType::OrfToken);
    assert_eq!(header.sender(), NodeId(1));
    assert_eq!(header.to_string(), "OrfToken from 1");
    for len in 0..HEADER_LEN {
        assert_eq!(
            Header::new_checked(&TOKEN_BYTES[..len]),
            Err(Error::Truncated)
        );
    }
    let bad = patched(&TOKEN_BYTES, 1, 0x5f);
    assert_eq!(Header::new_checked(&bad[..]), Err(Error::BadMagic));
    let bad = patched(&TOKEN_BYTES, 2, 2);
    assert_eq!(
        Header::new_checked(&bad[..]),
        Err(Error::UnsupportedVersion(2))
    );
    assert_eq!(
        Header::new_unchecked(&bad[..]).to_string(),
        "Header (unsupported protocol version 2)"
    );
}

#[test]
fn header_construct() {
    let mut bytes = [0u8; 8];
    let repr = HeaderRepr {
        frame_type: FrameType::Mcast,
        sender: NodeId(2),
    };
    assert_eq!(repr.buffer_len(), HEADER_LEN);
    repr.emit(&mut Header::new_unchecked(&mut bytes[..]));
    assert_eq!(bytes, MCAST_BYTES[..8]);
    assert_eq!(HeaderRepr::parse(&Header::new_unchecked(&bytes)), Ok(repr));
}

#[test]
fn frame_types_round_trip() {
    for raw in 0..=u8::MAX {
        let ty = FrameType::from(raw);
        assert_eq!(u8::from(ty), raw);
        assert_eq!(matches!(ty, FrameType::Unknown(_)), !(1..=6).contains(&raw));
    }
    assert_eq!(FrameType::MergeDetect.to_string(), "MergeDetect");
    assert_eq!(FrameType::Unknown(9).to_string(), "Unknown(9)");
}

#[test]
fn parse_frame_rejects_other_types() {
    for raw in [0u8, 3, 4, 5, 6, 7, 0xff] {
        let bytes = patched(&TOKEN_BYTES, 3, raw);
        assert_eq!(parse_frame(&bytes).unwrap_err(), Error::UnknownType(raw));
    }
    assert_eq!(parse_frame(&[]).unwrap_err(), Error::Truncated);
}

#[test]
fn error_display() {
    assert_eq!(Error::Truncated.to_string(), "truncated frame");
    assert_eq!(Error::BadMagic.to_string(), "bad magic");
    assert_eq!(Error::UnknownType(9).to_string(), "unknown frame type 9");
    assert_eq!(Error::Malformed.to_string(), "malformed frame");
}

// ---- ORF token ----

#[test]
fn token_deconstruct() {
    let frame = OrfTokenFrame::new_checked(&TOKEN_BYTES[..]).unwrap();
    assert_eq!(frame.sender(), NodeId(1));
    assert_eq!(
        frame.ring_id(),
        RingId {
            seq: 4,
            rep: NodeId(1)
        }
    );
    assert_eq!(frame.token_seq(), 7);
    assert_eq!(frame.seq(), Seq(10));
    assert_eq!(frame.aru(), Seq(9));
    assert_eq!(frame.aru_addr(), NodeId(2));
    assert_eq!(frame.fcc(), 3);
    assert_eq!(frame.backlog(), 5);
    assert_eq!(frame.rot_min(), Seq(8));
    assert_eq!(frame.safe(), Seq(6));
    assert!(frame.retrans_flg());
    assert_eq!(frame.rtr_count(), 2);
    let rtr = frame.rtr_list();
    assert_eq!(rtr.len(), 2);
    assert_eq!(rtr.collect::<Vec<_>>(), [Seq(9), Seq(10)]);
    assert_eq!(
        frame.to_string(),
        "OrfToken from 1 ring 1.4 token_seq 7 seq 10 aru 9 aru_addr 2 fcc 3 backlog 5 \
         rot_min 8 safe 6 retrans rtr [9 10]"
    );
    assert_eq!(token_repr().to_string(), frame.to_string());
}

#[test]
fn token_construct() {
    let mut bytes = [0xffu8; 92];
    let mut frame = OrfTokenFrame::new_unchecked(&mut bytes[..]);
    {
        let mut header = frame.header_mut();
        header.set_magic(MAGIC);
        header.set_version(PROTOCOL_VERSION);
        header.set_frame_type(FrameType::OrfToken);
        header.set_sender(NodeId(1));
    }
    frame.set_ring_id(RingId {
        seq: 4,
        rep: NodeId(1),
    });
    frame.set_token_seq(7);
    frame.set_seq(Seq(10));
    frame.set_aru(Seq(9));
    frame.set_aru_addr(NodeId(2));
    frame.set_fcc(3);
    frame.set_backlog(5);
    frame.set_rot_min(Seq(8));
    frame.set_safe(Seq(6));
    frame.set_retrans_flg(true);
    frame.set_rtr_count(2);
    frame.set_rtr(0, Seq(9));
    frame.set_rtr(1, Seq(10));
    assert_eq!(bytes, TOKEN_BYTES);
}

#[test]
fn token_parse_and_emit() {
    let frame = OrfTokenFrame::new_unchecked(&TOKEN_BYTES[..]);
    assert_eq!(OrfTokenRepr::parse(&frame), Ok(token_repr()));
    let repr = token_repr();
    assert_eq!(repr.buffer_len(), TOKEN_BYTES.len());
    let mut bytes = vec![0xa5u8; repr.buffer_len()];
    repr.emit(&mut OrfTokenFrame::new_unchecked(&mut bytes));
    assert_eq!(bytes, TOKEN_BYTES);
    match parse_frame(&TOKEN_BYTES).unwrap() {
        Frame::Token(token) => assert_eq!(token, frame),
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn token_without_rtr() {
    let repr = OrfTokenRepr {
        rtr: Vec::new(),
        retrans_flg: false,
        ..token_repr()
    };
    let mut bytes = vec![0u8; repr.buffer_len()];
    assert_eq!(bytes.len(), TOKEN_FIXED_LEN);
    repr.emit(&mut OrfTokenFrame::new_unchecked(&mut bytes));
    let frame = OrfTokenFrame::new_checked(&bytes[..]).unwrap();
    assert_eq!(frame.rtr_list().count(), 0);
    assert!(!frame.to_string().contains("rtr"));
    assert_eq!(OrfTokenRepr::parse(&frame), Ok(repr));
}

#[test]
fn token_every_truncation_is_rejected() {
    for len in 0..TOKEN_BYTES.len() {
        assert_eq!(
            OrfTokenFrame::new_checked(&TOKEN_BYTES[..len]),
            Err(Error::Truncated),
            "length {len}"
        );
        assert_eq!(
            parse_frame(&TOKEN_BYTES[..len]).unwrap_err(),
            Error::Truncated
        );
        // Unchecked views never panic in the list iterator or Display.
        let frame = OrfTokenFrame::new_unchecked(&TOKEN_BYTES[..len]);
        assert!(frame.rtr_list().count() <= 2);
        assert!(frame.to_string().starts_with("OrfToken ("));
    }
}

#[test]
fn token_bad_fields_are_rejected() {
    let check = |bytes: &[u8]| OrfTokenFrame::new_checked(bytes).map(|_| ());
    let mut longer = TOKEN_BYTES.to_vec();
    longer.push(0);
    assert_eq!(check(&longer), Err(Error::Malformed), "trailing byte");
    assert_eq!(check(&patched(&TOKEN_BYTES, 0, 0)), Err(Error::BadMagic));
    assert_eq!(
        check(&patched(&TOKEN_BYTES, 2, 0)),
        Err(Error::UnsupportedVersion(0))
    );
    assert_eq!(
        check(&patched(&TOKEN_BYTES, 3, 2)),
        Err(Error::Malformed),
        "an mcast type byte is not a token"
    );
    for bit in 1..8 {
        assert_eq!(
            check(&patched(&TOKEN_BYTES, 72, 1 << bit)),
            Err(Error::Malformed),
            "flag bit {bit}"
        );
    }
    assert_eq!(check(&patched(&TOKEN_BYTES, 73, 1)), Err(Error::Malformed));
    assert_eq!(check(&patched(&TOKEN_BYTES, 75, 3)), Err(Error::Truncated));
    assert_eq!(check(&patched(&TOKEN_BYTES, 75, 1)), Err(Error::Malformed));
    assert_eq!(check(&patched(&TOKEN_BYTES, 74, 1)), Err(Error::Truncated));
    // The retrans flag alone is fine either way.
    assert_eq!(check(&patched(&TOKEN_BYTES, 72, 0)), Ok(()));
}

// ---- mcast ----

#[test]
fn mcast_deconstruct() {
    let frame = McastFrame::new_checked(&MCAST_BYTES[..]).unwrap();
    assert_eq!(frame.sender(), NodeId(2));
    assert_eq!(
        frame.ring_id(),
        RingId {
            seq: 4,
            rep: NodeId(1)
        }
    );
    assert_eq!(frame.seq(), Seq(11));
    assert!(frame.is_safe());
    assert!(!frame.is_encapsulated());
    assert_eq!(frame.chunk_count(), 2);
    let chunks: Vec<Chunk<'_>> = frame.chunks().collect();
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[0].msg_no(), 5);
    assert_eq!(chunks[0].total_len(), 3);
    assert_eq!(chunks[0].offset(), 0);
    assert_eq!(chunks[0].len(), 3);
    assert_eq!(chunks[0].kind(), DeliveryKind::Agreed);
    assert!(chunks[0].is_whole_message());
    assert_eq!(chunks[0].payload(), b"abc");
    assert_eq!(chunks[0].payload_range(), CHUNK1 + 20..CHUNK1 + 23);
    assert_eq!(chunks[1].msg_no(), 6);
    assert_eq!(chunks[1].total_len(), 10);
    assert_eq!(chunks[1].len(), 4);
    assert_eq!(chunks[1].kind(), DeliveryKind::Safe);
    assert!(!chunks[1].is_whole_message());
    assert_eq!(chunks[1].payload(), b"wxyz");
    assert_eq!(&MCAST_BYTES[chunks[1].payload_range()], b"wxyz");
    assert_eq!(
        frame.to_string(),
        "Mcast from 2 ring 1.4 seq 11 chunks 2 safe [msg 5 0+3/3 agreed, msg 6 0+4/10 safe]"
    );
}

#[test]
fn mcast_construct() {
    let mut bytes = [0xffu8; 79];
    let mut frame = McastFrame::new_unchecked(&mut bytes[..]);
    {
        let mut header = frame.header_mut();
        header.set_magic(MAGIC);
        header.set_version(PROTOCOL_VERSION);
        header.set_frame_type(FrameType::Mcast);
        header.set_sender(NodeId(2));
    }
    frame.set_ring_id(RingId {
        seq: 4,
        rep: NodeId(1),
    });
    frame.set_seq(Seq(11));
    frame.set_flags(true, false);
    frame.set_chunk_count(2);
    let [first, second] = mcast_chunks();
    first.emit(&mut frame.chunk_area_mut()[..]);
    second.emit(&mut frame.chunk_area_mut()[first.buffer_len()..]);
    assert_eq!(bytes, MCAST_BYTES);
}

#[test]
fn mcast_parse_and_emit() {
    let frame = McastFrame::new_unchecked(&MCAST_BYTES[..]);
    assert_eq!(McastRepr::parse(&frame), Ok(mcast_repr()));
    let parsed: Vec<_> = frame.chunks().map(|c| ChunkRepr::parse(&c)).collect();
    assert_eq!(parsed, mcast_chunks().map(Ok::<_, Error>));

    let repr = mcast_repr();
    let chunks = mcast_chunks();
    let len = repr.buffer_len() + chunks.iter().map(ChunkRepr::buffer_len).sum::<usize>();
    assert_eq!(len, MCAST_BYTES.len());
    let mut bytes = vec![0x5au8; len];
    let mut view = McastFrame::new_unchecked(&mut bytes[..]);
    repr.emit(&mut view);
    let mut at = 0;
    for chunk in &chunks {
        chunk.emit(&mut view.chunk_area_mut()[at..]);
        at += chunk.buffer_len();
    }
    assert_eq!(bytes, MCAST_BYTES);
    match parse_frame(&MCAST_BYTES).unwrap() {
        Frame::Mcast(mcast) => assert_eq!(mcast, frame),
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn mcast_empty_message_and_encapsulated() {
    let repr = McastRepr {
        safe: false,
        encapsulated: true,
        chunk_count: 1,
        ..mcast_repr()
    };
    let empty = ChunkRepr {
        msg_no: 1,
        total_len: 0,
        offset: 0,
        kind: DeliveryKind::Agreed,
        payload: &[],
    };
    let mut bytes = vec![0u8; MCAST_FIXED_LEN + CHUNK_HEADER_LEN];
    let mut view = McastFrame::new_unchecked(&mut bytes[..]);
    repr.emit(&mut view);
    empty.emit(view.chunk_area_mut());
    let frame = McastFrame::new_checked(&bytes[..]).unwrap();
    assert!(frame.is_encapsulated());
    let chunk = frame.chunks().next().unwrap();
    assert!(chunk.is_empty());
    assert!(chunk.is_whole_message());
    assert_eq!(ChunkRepr::parse(&chunk), Ok(empty));
    assert_eq!(McastRepr::parse(&frame), Ok(repr));
    fuzz_parse_roundtrip(&bytes);
}

#[test]
fn mcast_every_truncation_is_rejected() {
    for len in 0..MCAST_BYTES.len() {
        assert_eq!(
            McastFrame::new_checked(&MCAST_BYTES[..len]),
            Err(Error::Truncated),
            "length {len}"
        );
        assert_eq!(
            parse_frame(&MCAST_BYTES[..len]).unwrap_err(),
            Error::Truncated
        );
        let frame = McastFrame::new_unchecked(&MCAST_BYTES[..len]);
        let whole = usize::from(len >= CHUNK2) + usize::from(len >= MCAST_BYTES.len());
        assert_eq!(frame.chunks().count(), whole, "length {len}");
        assert!(frame.to_string().starts_with("Mcast ("));
    }
}

#[test]
fn mcast_bad_fields_are_rejected() {
    let check = |bytes: &[u8]| McastFrame::new_checked(bytes).map(|_| ());
    let mut longer = MCAST_BYTES.to_vec();
    longer.push(0);
    assert_eq!(check(&longer), Err(Error::Malformed), "trailing byte");
    assert_eq!(check(&patched(&MCAST_BYTES, 0, 0)), Err(Error::BadMagic));
    assert_eq!(
        check(&patched(&MCAST_BYTES, 2, 9)),
        Err(Error::UnsupportedVersion(9))
    );
    assert_eq!(check(&patched(&MCAST_BYTES, 3, 1)), Err(Error::Malformed));
    for bit in 2..8 {
        assert_eq!(
            check(&patched(&MCAST_BYTES, 28, 1 | 1 << bit)),
            Err(Error::Malformed),
            "flag bit {bit}"
        );
    }
    assert_eq!(check(&patched(&MCAST_BYTES, 28, 3)), Ok(()), "encapsulated");
    assert_eq!(
        check(&patched(&MCAST_BYTES, 28, 0)),
        Err(Error::Malformed),
        "SAFE flag missing although a chunk is safe"
    );
    assert_eq!(check(&patched(&MCAST_BYTES, 29, 1)), Err(Error::Malformed));
    assert_eq!(
        check(&patched(&MCAST_BYTES, 31, 1)),
        Err(Error::Malformed),
        "one chunk and trailing bytes"
    );
    assert_eq!(check(&patched(&MCAST_BYTES, 31, 3)), Err(Error::Truncated));
    let mut no_chunks = MCAST_BYTES[..MCAST_FIXED_LEN].to_vec();
    no_chunks[31] = 0;
    no_chunks[28] = 0;
    assert_eq!(check(&no_chunks), Err(Error::Malformed), "chunk_count 0");

    // Chunk fields (first chunk at CHUNK1, second at CHUNK2).
    assert_eq!(
        check(&patched(&MCAST_BYTES, CHUNK1 + 7, 0)),
        Err(Error::Malformed),
        "msg_no 0"
    );
    assert_eq!(
        check(&patched(&MCAST_BYTES, CHUNK1 + 18, 2)),
        Err(Error::Malformed),
        "kind 2"
    );
    assert_eq!(
        check(&patched(&MCAST_BYTES, CHUNK1 + 19, 1)),
        Err(Error::Malformed),
        "chunk reserved"
    );
    assert_eq!(
        check(&patched(&MCAST_BYTES, CHUNK1 + 11, 2)),
        Err(Error::Malformed),
        "len > total_len"
    );
    assert_eq!(
        check(&patched(&MCAST_BYTES, CHUNK2 + 15, 7)),
        Err(Error::Malformed),
        "offset + len > total_len"
    );
    assert_eq!(
        check(&patched(&MCAST_BYTES, CHUNK2 + 15, 6)),
        Ok(()),
        "offset + len == total_len"
    );
    assert_eq!(
        check(&patched(&MCAST_BYTES, CHUNK2 + 12, 0xff)),
        Err(Error::Malformed),
        "huge offset"
    );
    assert_eq!(
        check(&patched(&MCAST_BYTES, CHUNK2 + 18, 0)),
        Err(Error::Malformed),
        "no safe chunk left but SAFE set"
    );
    assert_eq!(
        check(&patched(&MCAST_BYTES, CHUNK2 + 17, 3)),
        Err(Error::Malformed),
        "shorter chunk leaves trailing bytes"
    );
    assert_eq!(
        check(&patched(&MCAST_BYTES, CHUNK2 + 17, 5)),
        Err(Error::Truncated),
        "longer chunk runs past the end"
    );

    // A zero-length chunk of a non-empty message, and an empty message with an offset.
    let mut zero = MCAST_BYTES[..CHUNK2].to_vec();
    zero.truncate(CHUNK1 + CHUNK_HEADER_LEN);
    zero[31] = 1;
    zero[28] = 0;
    zero[CHUNK1 + 17] = 0;
    assert_eq!(check(&zero), Err(Error::Malformed), "len 0, total_len 3");
    zero[CHUNK1 + 11] = 0;
    assert_eq!(check(&zero), Ok(()), "empty message");
    zero[CHUNK1 + 15] = 1;
    assert_eq!(
        check(&zero),
        Err(Error::Malformed),
        "empty message, offset 1"
    );
}

// ---- proptest ----

fn arb_seq() -> impl Strategy<Value = Seq> {
    any::<u64>().prop_map(Seq)
}

fn arb_ring() -> impl Strategy<Value = RingId> {
    (any::<u64>(), any::<u32>()).prop_map(|(seq, rep)| RingId {
        seq,
        rep: NodeId(rep),
    })
}

prop_compose! {
    fn arb_token()(
        sender in any::<u32>(),
        ring_id in arb_ring(),
        token_seq in any::<u64>(),
        seqs in (arb_seq(), arb_seq(), arb_seq(), arb_seq()),
        aru_addr in any::<u32>(),
        fcc in any::<u32>(),
        backlog in any::<u32>(),
        retrans_flg in any::<bool>(),
        rtr in prop::collection::vec(arb_seq(), 0..40),
    ) -> OrfTokenRepr {
        OrfTokenRepr {
            sender: NodeId(sender),
            ring_id,
            token_seq,
            seq: seqs.0,
            aru: seqs.1,
            aru_addr: NodeId(aru_addr),
            fcc,
            backlog,
            rot_min: seqs.2,
            safe: seqs.3,
            retrans_flg,
            rtr,
        }
    }
}

/// A valid chunk as owned values: (msg_no, total_len, offset, kind, payload).
type OwnedChunk = (u64, u32, u32, DeliveryKind, Vec<u8>);

fn arb_chunk() -> impl Strategy<Value = OwnedChunk> {
    let kind = prop_oneof![Just(DeliveryKind::Agreed), Just(DeliveryKind::Safe)];
    let empty = (1..=u64::MAX, kind.clone()).prop_map(|(no, kind)| (no, 0, 0, kind, Vec::new()));
    let data = (
        1..=u64::MAX,
        prop::collection::vec(any::<u8>(), 1..300),
        any::<u32>(),
        any::<u32>(),
        kind,
    )
        .prop_map(|(no, payload, before, after, kind)| {
            let len = payload.len() as u32;
            let offset = before % (u32::MAX - len + 1);
            let total = offset + len + after % (u32::MAX - offset - len + 1);
            (no, total, offset, kind, payload)
        });
    prop_oneof![1 => empty, 8 => data]
}

fn chunk_repr(chunk: &OwnedChunk) -> ChunkRepr<'_> {
    ChunkRepr {
        msg_no: chunk.0,
        total_len: chunk.1,
        offset: chunk.2,
        kind: chunk.3,
        payload: &chunk.4,
    }
}

prop_compose! {
    fn arb_mcast()(
        sender in any::<u32>(),
        ring_id in arb_ring(),
        seq in arb_seq(),
        encapsulated in any::<bool>(),
        chunks in prop::collection::vec(arb_chunk(), 1..8),
    ) -> (McastRepr, Vec<OwnedChunk>) {
        let repr = McastRepr {
            sender: NodeId(sender),
            ring_id,
            seq,
            safe: chunks.iter().any(|c| c.3 == DeliveryKind::Safe),
            encapsulated,
            chunk_count: chunks.len() as u16,
        };
        (repr, chunks)
    }
}

fn emit_mcast(repr: &McastRepr, chunks: &[OwnedChunk]) -> Vec<u8> {
    let reprs: Vec<ChunkRepr<'_>> = chunks.iter().map(chunk_repr).collect();
    let len = repr.buffer_len() + reprs.iter().map(ChunkRepr::buffer_len).sum::<usize>();
    let mut bytes = vec![0u8; len];
    let mut view = McastFrame::new_unchecked(&mut bytes[..]);
    repr.emit(&mut view);
    let mut at = 0;
    for chunk in &reprs {
        chunk.emit(&mut view.chunk_area_mut()[at..]);
        at += chunk.buffer_len();
    }
    bytes
}

/// Valid frames of both kinds, as bytes.
fn arb_frame_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        arb_token().prop_map(|repr| {
            let mut bytes = vec![0u8; repr.buffer_len()];
            repr.emit(&mut OrfTokenFrame::new_unchecked(&mut bytes));
            bytes
        }),
        arb_mcast().prop_map(|(repr, chunks)| emit_mcast(&repr, &chunks)),
    ]
}

proptest! {
    #[test]
    fn header_repr_round_trip(ty in any::<u8>(), sender in any::<u32>()) {
        let repr = HeaderRepr { frame_type: FrameType::from(ty), sender: NodeId(sender) };
        let mut bytes = [0u8; HEADER_LEN];
        repr.emit(&mut Header::new_unchecked(&mut bytes[..]));
        prop_assert_eq!(HeaderRepr::parse(&Header::new_unchecked(&bytes)), Ok(repr));
    }

    #[test]
    fn token_repr_round_trip(repr in arb_token()) {
        let mut bytes = vec![0u8; repr.buffer_len()];
        repr.emit(&mut OrfTokenFrame::new_unchecked(&mut bytes));
        let frame = OrfTokenFrame::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(frame.rtr_list().collect::<Vec<_>>(), repr.rtr.clone());
        prop_assert_eq!(OrfTokenRepr::parse(&frame), Ok(repr));
        fuzz_parse_roundtrip(&bytes);
    }

    #[test]
    fn mcast_repr_round_trip((repr, chunks) in arb_mcast()) {
        let bytes = emit_mcast(&repr, &chunks);
        let frame = McastFrame::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(McastRepr::parse(&frame), Ok(repr));
        let parsed: Vec<_> = frame.chunks().map(|c| ChunkRepr::parse(&c)).collect();
        let expected: Vec<_> = chunks.iter().map(|c| Ok::<_, Error>(chunk_repr(c))).collect();
        prop_assert_eq!(parsed, expected);
        fuzz_parse_roundtrip(&bytes);
    }

    #[test]
    fn chunk_repr_round_trip(chunk in arb_chunk()) {
        let repr = chunk_repr(&chunk);
        let bytes = emit_mcast(
            &McastRepr {
                chunk_count: 1,
                safe: repr.kind == DeliveryKind::Safe,
                ..McastRepr::default()
            },
            std::slice::from_ref(&chunk),
        );
        let frame = McastFrame::new_checked(&bytes[..]).unwrap();
        let parsed = frame.chunks().next().unwrap();
        prop_assert_eq!(ChunkRepr::parse(&parsed), Ok(repr));
        prop_assert_eq!(&bytes[parsed.payload_range()], repr.payload);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_frame(&bytes);
        fuzz_parse_roundtrip(&bytes);
        let _ = OrfTokenFrame::new_unchecked(&bytes[..]).rtr_list().count();
        let _ = McastFrame::new_unchecked(&bytes[..]).chunks().count();
        let _ = OrfTokenFrame::new_unchecked(&bytes[..]).to_string();
        let _ = McastFrame::new_unchecked(&bytes[..]).to_string();
        let _ = Header::new_unchecked(&bytes[..]).to_string();
    }

    #[test]
    fn arbitrary_bytes_with_valid_header_never_panic(
        ty in 0u8..4,
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut bytes = vec![0xa1, 0x5e, PROTOCOL_VERSION, ty, 0, 0, 0, 1];
        bytes.extend_from_slice(&body);
        let _ = parse_frame(&bytes);
        fuzz_parse_roundtrip(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(
        bytes in arb_frame_bytes(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = bytes;
        for (at, value) in edits {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        fuzz_parse_roundtrip(&bytes);
    }
}
