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
        install: false,
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

#[rustfmt::skip]
static JOIN_BYTES: [u8; 52] = [
    0xa1, 0x5e, 0x01, 0x03, 0x00, 0x00, 0x00, 0x02, // magic, version 1, type 3, sender 2
    0x00, 0x00, 0x00, 0x01,                         // ring rep 1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, // ring seq 4
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, // max_ring_seq 8
    0x01, 0x00, 0x00, 0x03,                         // LEAVING, reserved, proc_count 3
    0x00, 0x01, 0x00, 0x00,                         // fail_count 1, reserved
    0x00, 0x00, 0x00, 0x01,                         // proc 1 (offset 36)
    0x00, 0x00, 0x00, 0x02,                         // proc 2
    0x00, 0x00, 0x00, 0x03,                         // proc 3
    0x00, 0x00, 0x00, 0x04,                         // fail 4 (offset 48)
];

fn join_repr() -> MembJoinRepr {
    MembJoinRepr {
        sender: NodeId(2),
        ring_id: RingId {
            seq: 4,
            rep: NodeId(1),
        },
        max_ring_seq: 8,
        leaving: true,
        proc_set: vec![NodeId(1), NodeId(2), NodeId(3)],
        fail_set: vec![NodeId(4)],
    }
}

#[rustfmt::skip]
static COMMIT_BYTES: [u8; 104] = [
    0xa1, 0x5e, 0x01, 0x04, 0x00, 0x00, 0x00, 0x01, // magic, version 1, type 4, sender 1
    0x00, 0x00, 0x00, 0x01,                         // new ring rep 1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, // new ring seq 8
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, // token_seq 3
    0x00, 0x01, 0x00, 0x02,                         // memb_index 1, entry_count 2
    // entry 0 (offset 32): node 1, old ring 1.4, old_aru 10, high_delivered 9
    0x00, 0x00, 0x00, 0x01,                         // node 1
    0x00, 0x00, 0x00, 0x01,                         // old ring rep 1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, // old ring seq 4
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, // old_aru 10
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, // high_delivered 9
    0x03, 0x00, 0x00, 0x00,                         // received_flg, filled, reserved
    // entry 1 (offset 68): node 3, old ring 3.5, old_aru 2, high_delivered 7 (above old_aru)
    0x00, 0x00, 0x00, 0x03,                         // node 3
    0x00, 0x00, 0x00, 0x03,                         // old ring rep 3
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, // old ring seq 5
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, // old_aru 2
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, // high_delivered 7
    0x01, 0x00, 0x00, 0x00,                         // received_flg, reserved
];

const ENTRY0: usize = 32;
const ENTRY1: usize = 68;

fn commit_entries() -> [CommitEntry; 2] {
    [
        CommitEntry {
            node: NodeId(1),
            old_ring: RingId {
                seq: 4,
                rep: NodeId(1),
            },
            old_aru: Seq(10),
            high_delivered: Seq(9),
            received_flg: true,
            filled: true,
        },
        CommitEntry {
            node: NodeId(3),
            old_ring: RingId {
                seq: 5,
                rep: NodeId(3),
            },
            old_aru: Seq(2),
            high_delivered: Seq(7),
            received_flg: true,
            filled: false,
        },
    ]
}

fn commit_repr() -> CommitTokenRepr {
    CommitTokenRepr {
        sender: NodeId(1),
        ring_id: RingId {
            seq: 8,
            rep: NodeId(1),
        },
        token_seq: 3,
        memb_index: 1,
        entries: commit_entries().to_vec(),
    }
}

#[rustfmt::skip]
static MERGE_BYTES: [u8; 20] = [
    0xa1, 0x5e, 0x01, 0x05, 0x00, 0x00, 0x00, 0x03, // magic, version 1, type 5, sender 3
    0x00, 0x00, 0x00, 0x03,                         // ring rep 3
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, // ring seq 12
];

#[rustfmt::skip]
static HOLD_CANCEL_BYTES: [u8; 20] = [
    0xa1, 0x5e, 0x01, 0x06, 0x00, 0x00, 0x00, 0x02, // magic, version 1, type 6, sender 2
    0x00, 0x00, 0x00, 0x01,                         // ring rep 1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, // ring seq 42
];

fn merge_repr() -> MergeDetectRepr {
    MergeDetectRepr {
        sender: NodeId(3),
        ring_id: RingId {
            seq: 12,
            rep: NodeId(3),
        },
    }
}

/// The fixed part of an encapsulated mcast frame; [`MCAST_BYTES`] follows it.
#[rustfmt::skip]
static ENCAP_FIXED: [u8; 32] = [
    0xa1, 0x5e, 0x01, 0x02, 0x00, 0x00, 0x00, 0x01, // magic, version 1, type 2, sender 1
    0x00, 0x00, 0x00, 0x01,                         // new ring rep 1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, // new ring seq 8
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, // seq 2
    0x02, 0x00, 0x00, 0x00,                         // ENCAPSULATED, reserved, chunk_count 0
];

/// An encapsulated frame: [`ENCAP_FIXED`] then the old ring's [`MCAST_BYTES`].
fn encap_bytes() -> Vec<u8> {
    [&ENCAP_FIXED[..], &MCAST_BYTES[..]].concat()
}

fn encap_repr() -> McastRepr {
    McastRepr {
        sender: NodeId(1),
        ring_id: RingId {
            seq: 8,
            rep: NodeId(1),
        },
        seq: Seq(2),
        safe: false,
        encapsulated: true,
        chunk_count: 0,
    }
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
    for raw in [0u8, 7, 0xff] {
        let bytes = patched(&TOKEN_BYTES, 3, raw);
        assert_eq!(parse_frame(&bytes).unwrap_err(), Error::UnknownType(raw));
    }
    // A token's bytes under a membership type byte reach that type's check and fail it.
    for raw in [3u8, 4, 5, 6] {
        let bytes = patched(&TOKEN_BYTES, 3, raw);
        assert_eq!(
            parse_frame(&bytes).unwrap_err(),
            Error::Malformed,
            "type {raw}"
        );
    }
    assert_eq!(parse_frame(&[]).unwrap_err(), Error::Truncated);
}

#[test]
fn parse_frame_dispatches_every_view() {
    let encap = encap_bytes();
    let cases: [(&[u8], NodeId, &str); 7] = [
        (&TOKEN_BYTES, NodeId(1), "OrfToken"),
        (&MCAST_BYTES, NodeId(2), "Mcast"),
        (&encap, NodeId(1), "Mcast"),
        (&JOIN_BYTES, NodeId(2), "MembJoin"),
        (&COMMIT_BYTES, NodeId(1), "MembCommitToken"),
        (&MERGE_BYTES, NodeId(3), "MergeDetect"),
        (&HOLD_CANCEL_BYTES, NodeId(2), "TokenHoldCancel"),
    ];
    for (bytes, sender, name) in cases {
        let frame = parse_frame(bytes).unwrap();
        assert_eq!(frame.sender(), sender);
        let text = frame.to_string();
        assert!(
            text.starts_with(&format!("{name} from {sender} ")),
            "{text}"
        );
        let ok = match frame {
            Frame::Token(_) => name == "OrfToken",
            Frame::Mcast(_) => name == "Mcast",
            Frame::MembJoin(_) => name == "MembJoin",
            Frame::CommitToken(_) => name == "MembCommitToken",
            Frame::MergeDetect(_) => name == "MergeDetect",
            Frame::TokenHoldCancel(_) => name == "TokenHoldCancel",
        };
        assert!(ok, "{name} parsed as {frame:?}");
        fuzz_parse_roundtrip(bytes);
    }
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
    frame.set_flags(true, false);
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
    for bit in 2..8 {
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
    // The retrans and install flags are fine in any combination.
    for flags in 0..4 {
        assert_eq!(
            check(&patched(&TOKEN_BYTES, 72, flags)),
            Ok(()),
            "flags {flags}"
        );
    }
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
fn mcast_empty_message() {
    let repr = McastRepr {
        safe: false,
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
    assert!(!frame.is_encapsulated());
    assert_eq!(frame.encapsulated(), None);
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
    assert_eq!(
        check(&patched(&MCAST_BYTES, 28, 3)),
        Err(Error::Malformed),
        "encapsulated with chunks"
    );
    assert_eq!(
        McastFrame::new_unchecked(&patched(&MCAST_BYTES, 28, 3)[..])
            .chunks()
            .count(),
        0,
        "an encapsulated frame has no chunks"
    );
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

// ---- encapsulated mcast ----

#[test]
fn encapsulated_deconstruct() {
    let bytes = encap_bytes();
    let frame = McastFrame::new_checked(&bytes[..]).unwrap();
    assert_eq!(frame.sender(), NodeId(1));
    assert_eq!(
        frame.ring_id(),
        RingId {
            seq: 8,
            rep: NodeId(1)
        }
    );
    assert_eq!(frame.seq(), Seq(2));
    assert!(frame.is_encapsulated());
    assert!(!frame.is_safe());
    assert_eq!(frame.chunk_count(), 0);
    assert_eq!(frame.chunks().count(), 0);
    let inner = frame.encapsulated().unwrap();
    assert_eq!(inner, McastFrame::new_unchecked(&MCAST_BYTES[..]));
    assert!(inner.is_safe());
    assert!(!inner.is_encapsulated());
    let chunks: Vec<_> = inner.chunks().map(|c| ChunkRepr::parse(&c)).collect();
    assert_eq!(chunks, mcast_chunks().map(Ok::<_, Error>));
    let second = inner.chunks().nth(1).unwrap();
    let range = second.payload_range();
    assert_eq!(
        &bytes[MCAST_FIXED_LEN + range.start..MCAST_FIXED_LEN + range.end],
        b"wxyz"
    );
    assert_eq!(
        frame.to_string(),
        "Mcast from 1 ring 1.8 seq 2 chunks 0 encapsulated [Mcast from 2 ring 1.4 seq 11 \
         chunks 2 safe [msg 5 0+3/3 agreed, msg 6 0+4/10 safe]]"
    );
}

#[test]
fn encapsulated_construct_parse_and_emit() {
    let bytes = encap_bytes();
    let frame = McastFrame::new_unchecked(&bytes[..]);
    assert_eq!(McastRepr::parse(&frame), Ok(encap_repr()));

    let mut out = vec![0xffu8; bytes.len()];
    let mut view = McastFrame::new_unchecked(&mut out[..]);
    {
        let mut header = view.header_mut();
        header.set_magic(MAGIC);
        header.set_version(PROTOCOL_VERSION);
        header.set_frame_type(FrameType::Mcast);
        header.set_sender(NodeId(1));
    }
    view.set_ring_id(RingId {
        seq: 8,
        rep: NodeId(1),
    });
    view.set_seq(Seq(2));
    view.set_flags(false, true);
    view.set_chunk_count(0);
    view.chunk_area_mut().copy_from_slice(&MCAST_BYTES);
    assert_eq!(out, bytes);

    let repr = encap_repr();
    assert_eq!(repr.buffer_len(), MCAST_FIXED_LEN);
    let mut out = vec![0x5au8; repr.buffer_len() + MCAST_BYTES.len()];
    let mut view = McastFrame::new_unchecked(&mut out[..]);
    repr.emit(&mut view);
    view.chunk_area_mut().copy_from_slice(&MCAST_BYTES);
    assert_eq!(out, bytes);
    match parse_frame(&bytes).unwrap() {
        Frame::Mcast(mcast) => assert_eq!(mcast, frame),
        other => panic!("parsed as {other:?}"),
    }
    fuzz_parse_roundtrip(&bytes);
}

#[test]
fn encapsulated_every_truncation_is_rejected() {
    let bytes = encap_bytes();
    for len in 0..bytes.len() {
        assert_eq!(
            McastFrame::new_checked(&bytes[..len]),
            Err(Error::Truncated),
            "length {len}"
        );
        assert_eq!(parse_frame(&bytes[..len]).unwrap_err(), Error::Truncated);
        let frame = McastFrame::new_unchecked(&bytes[..len]);
        assert_eq!(frame.chunks().count(), 0);
        assert_eq!(frame.encapsulated(), None, "length {len}");
        assert!(frame.to_string().starts_with("Mcast ("));
    }
}

#[test]
fn encapsulated_bad_fields_are_rejected() {
    let check = |bytes: &[u8]| McastFrame::new_checked(bytes).map(|_| ());
    let bytes = encap_bytes();
    assert_eq!(check(&bytes), Ok(()));
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(check(&longer), Err(Error::Malformed), "trailing byte");
    assert_eq!(
        check(&patched(&bytes, 28, 3)),
        Err(Error::Malformed),
        "SAFE on an encapsulated frame"
    );
    assert_eq!(
        check(&patched(&bytes, 31, 1)),
        Err(Error::Malformed),
        "encapsulated with chunk_count 1"
    );
    assert_eq!(check(&patched(&bytes, 29, 1)), Err(Error::Malformed));
    // The chunks of a plain frame after an encapsulated fixed part.
    let mut with_chunks = MCAST_BYTES.to_vec();
    with_chunks[28] = 3;
    assert_eq!(check(&with_chunks), Err(Error::Malformed));

    // An invalid inner frame.
    let inner = MCAST_FIXED_LEN;
    for (at, value, why) in [
        (inner, 0x00, "inner magic"),
        (inner + 2, 0x02, "inner version"),
        (inner + 3, 0x01, "inner type token"),
        (inner + 28, 0x00, "inner SAFE flag missing"),
        (inner + 28, 0x05, "inner flag bit 2"),
        (inner + 29, 0x01, "inner reserved"),
        (inner + 31, 0x01, "inner chunk_count short"),
        (inner + CHUNK1 + 7, 0x00, "inner msg_no 0"),
        (inner + CHUNK2 + 18, 0x02, "inner chunk kind"),
    ] {
        assert_eq!(
            check(&patched(&bytes, at, value)),
            Err(Error::Malformed),
            "{why}"
        );
        assert_eq!(
            McastFrame::new_unchecked(&patched(&bytes, at, value)[..]).encapsulated(),
            None
        );
    }
    assert_eq!(
        check(&patched(&bytes, inner + 31, 3)),
        Err(Error::Truncated),
        "inner chunk_count runs past the end"
    );
    assert_eq!(
        check(&ENCAP_FIXED),
        Err(Error::Truncated),
        "no inner frame at all"
    );
    let token_inside = [&ENCAP_FIXED[..], &TOKEN_BYTES[..]].concat();
    assert_eq!(
        check(&token_inside),
        Err(Error::Malformed),
        "a token inside"
    );

    // Nested encapsulation, whatever the innermost frame.
    let nested = [&ENCAP_FIXED[..], &bytes[..]].concat();
    assert_eq!(check(&nested), Err(Error::Malformed), "nested");
    assert_eq!(McastFrame::new_unchecked(&nested[..]).encapsulated(), None);
    assert!(
        McastFrame::new_unchecked(&nested[..])
            .to_string()
            .starts_with("Mcast (")
    );
}

// ---- membership join ----

#[test]
fn join_deconstruct() {
    let frame = MembJoinFrame::new_checked(&JOIN_BYTES[..]).unwrap();
    assert_eq!(frame.sender(), NodeId(2));
    assert_eq!(
        frame.ring_id(),
        RingId {
            seq: 4,
            rep: NodeId(1)
        }
    );
    assert_eq!(frame.max_ring_seq(), 8);
    assert!(frame.is_leaving());
    assert_eq!(frame.flags(), 1);
    assert_eq!(frame.proc_count(), 3);
    assert_eq!(frame.fail_count(), 1);
    let procs = frame.proc_set();
    assert_eq!(procs.len(), 3);
    assert_eq!(procs.collect::<Vec<_>>(), [NodeId(1), NodeId(2), NodeId(3)]);
    assert_eq!(frame.fail_set().collect::<Vec<_>>(), [NodeId(4)]);
    assert_eq!(
        frame.to_string(),
        "MembJoin from 2 ring 1.4 max_ring_seq 8 leaving proc [1 2 3] fail [4]"
    );
    assert_eq!(join_repr().to_string(), frame.to_string());
}

#[test]
fn join_construct() {
    let mut bytes = [0xffu8; 52];
    let mut frame = MembJoinFrame::new_unchecked(&mut bytes[..]);
    {
        let mut header = frame.header_mut();
        header.set_magic(MAGIC);
        header.set_version(PROTOCOL_VERSION);
        header.set_frame_type(FrameType::MembJoin);
        header.set_sender(NodeId(2));
    }
    frame.set_ring_id(RingId {
        seq: 4,
        rep: NodeId(1),
    });
    frame.set_max_ring_seq(8);
    frame.set_leaving(true);
    frame.set_proc_count(3);
    frame.set_fail_count(1);
    frame.set_proc(0, NodeId(1));
    frame.set_proc(1, NodeId(2));
    frame.set_proc(2, NodeId(3));
    frame.set_fail(0, NodeId(4));
    assert_eq!(bytes, JOIN_BYTES);
}

#[test]
fn join_parse_and_emit() {
    let frame = MembJoinFrame::new_unchecked(&JOIN_BYTES[..]);
    assert_eq!(MembJoinRepr::parse(&frame), Ok(join_repr()));
    let repr = join_repr();
    assert_eq!(repr.buffer_len(), JOIN_BYTES.len());
    let mut bytes = vec![0xa5u8; repr.buffer_len()];
    repr.emit(&mut MembJoinFrame::new_unchecked(&mut bytes));
    assert_eq!(bytes, JOIN_BYTES);
    match parse_frame(&JOIN_BYTES).unwrap() {
        Frame::MembJoin(join) => assert_eq!(join, frame),
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn join_without_fail_set_and_not_leaving() {
    let repr = MembJoinRepr {
        leaving: false,
        proc_set: vec![NodeId(7)],
        fail_set: Vec::new(),
        ..join_repr()
    };
    let mut bytes = vec![0u8; repr.buffer_len()];
    assert_eq!(bytes.len(), JOIN_FIXED_LEN + 4);
    repr.emit(&mut MembJoinFrame::new_unchecked(&mut bytes));
    let frame = MembJoinFrame::new_checked(&bytes[..]).unwrap();
    assert!(!frame.is_leaving());
    assert_eq!(frame.fail_set().count(), 0);
    assert_eq!(
        frame.to_string(),
        "MembJoin from 2 ring 1.4 max_ring_seq 8 proc [7] fail []"
    );
    assert_eq!(MembJoinRepr::parse(&frame), Ok(repr));
    fuzz_parse_roundtrip(&bytes);
}

#[test]
fn join_every_truncation_is_rejected() {
    for len in 0..JOIN_BYTES.len() {
        assert_eq!(
            MembJoinFrame::new_checked(&JOIN_BYTES[..len]),
            Err(Error::Truncated),
            "length {len}"
        );
        assert_eq!(
            parse_frame(&JOIN_BYTES[..len]).unwrap_err(),
            Error::Truncated
        );
        let frame = MembJoinFrame::new_unchecked(&JOIN_BYTES[..len]);
        let whole = len.saturating_sub(JOIN_FIXED_LEN) / 4;
        assert_eq!(frame.proc_set().count(), whole.min(3), "length {len}");
        assert_eq!(
            frame.fail_set().count(),
            whole.saturating_sub(3),
            "length {len}"
        );
        assert!(frame.to_string().starts_with("MembJoin ("));
    }
}

/// Emits `repr` and checks the result.
fn check_join(repr: &MembJoinRepr) -> Result<()> {
    let mut bytes = vec![0u8; repr.buffer_len()];
    repr.emit(&mut MembJoinFrame::new_unchecked(&mut bytes));
    MembJoinFrame::new_checked(&bytes[..]).map(|_| ())
}

#[test]
fn join_bad_fields_are_rejected() {
    let check = |bytes: &[u8]| MembJoinFrame::new_checked(bytes).map(|_| ());
    let mut longer = JOIN_BYTES.to_vec();
    longer.push(0);
    assert_eq!(check(&longer), Err(Error::Malformed), "trailing byte");
    assert_eq!(check(&patched(&JOIN_BYTES, 0, 0)), Err(Error::BadMagic));
    assert_eq!(
        check(&patched(&JOIN_BYTES, 2, 3)),
        Err(Error::UnsupportedVersion(3))
    );
    assert_eq!(
        check(&patched(&JOIN_BYTES, 3, 2)),
        Err(Error::Malformed),
        "type"
    );
    for bit in 1..8 {
        assert_eq!(
            check(&patched(&JOIN_BYTES, 28, 1 | 1 << bit)),
            Err(Error::Malformed),
            "flag bit {bit}"
        );
    }
    assert_eq!(check(&patched(&JOIN_BYTES, 28, 0)), Ok(()), "not leaving");
    for at in [29, 34, 35] {
        assert_eq!(
            check(&patched(&JOIN_BYTES, at, 1)),
            Err(Error::Malformed),
            "reserved {at}"
        );
    }

    // Counts against the length.
    assert_eq!(
        check(&patched(&JOIN_BYTES, 31, 0)),
        Err(Error::Malformed),
        "proc_count 0"
    );
    assert_eq!(
        check(&patched(&JOIN_BYTES, 31, 2)),
        Err(Error::Malformed),
        "proc_count 2"
    );
    assert_eq!(
        check(&patched(&JOIN_BYTES, 31, 4)),
        Err(Error::Truncated),
        "proc_count 4"
    );
    assert_eq!(
        check(&patched(&JOIN_BYTES, 30, 1)),
        Err(Error::Truncated),
        "proc_count 259"
    );
    assert_eq!(
        check(&patched(&JOIN_BYTES, 33, 0)),
        Err(Error::Malformed),
        "fail_count 0"
    );
    assert_eq!(
        check(&patched(&JOIN_BYTES, 33, 2)),
        Err(Error::Truncated),
        "fail_count 2"
    );

    // Sets: unsorted, duplicate, zero.
    let mut swapped = JOIN_BYTES.to_vec();
    swapped[43] = 3;
    swapped[47] = 2;
    assert_eq!(check(&swapped), Err(Error::Malformed), "proc [1 3 2]");
    assert_eq!(
        check(&patched(&JOIN_BYTES, 43, 1)),
        Err(Error::Malformed),
        "proc [1 1 3]"
    );
    assert_eq!(
        check(&patched(&JOIN_BYTES, 39, 0)),
        Err(Error::Malformed),
        "proc [0 2 3]"
    );
    assert_eq!(
        check(&patched(&JOIN_BYTES, 51, 0)),
        Err(Error::Malformed),
        "fail [0]"
    );
    assert_eq!(
        check(&patched(&JOIN_BYTES, 48, 0x80)),
        Ok(()),
        "fail [2^31 + 4]"
    );
    assert_eq!(
        check(&patched(&JOIN_BYTES, 51, 3)),
        Ok(()),
        "the sets may overlap: only each set's own order is checked"
    );

    let base = join_repr();
    let with = |proc_set: &[u32], fail_set: &[u32]| MembJoinRepr {
        proc_set: proc_set.iter().copied().map(NodeId).collect(),
        fail_set: fail_set.iter().copied().map(NodeId).collect(),
        ..base.clone()
    };
    assert_eq!(
        check_join(&with(&[], &[4])),
        Err(Error::Malformed),
        "empty proc set"
    );
    assert_eq!(
        check_join(&with(&[], &[])),
        Err(Error::Malformed),
        "both empty"
    );
    assert_eq!(
        check_join(&with(&[1], &[5, 4])),
        Err(Error::Malformed),
        "fail unsorted"
    );
    assert_eq!(
        check_join(&with(&[1], &[4, 4])),
        Err(Error::Malformed),
        "fail duplicate"
    );
    assert_eq!(
        check_join(&with(&[1], &[0, 4])),
        Err(Error::Malformed),
        "fail zero"
    );
    assert_eq!(
        check_join(&with(&[2, 1], &[])),
        Err(Error::Malformed),
        "proc unsorted"
    );
    assert_eq!(check_join(&with(&[1, u32::MAX], &[1])), Ok(()));
}

// ---- membership commit token ----

#[test]
fn commit_deconstruct() {
    let frame = CommitTokenFrame::new_checked(&COMMIT_BYTES[..]).unwrap();
    assert_eq!(frame.sender(), NodeId(1));
    assert_eq!(
        frame.ring_id(),
        RingId {
            seq: 8,
            rep: NodeId(1)
        }
    );
    assert_eq!(frame.token_seq(), 3);
    assert_eq!(frame.memb_index(), 1);
    assert_eq!(frame.entry_count(), 2);
    let entries: Vec<CommitEntryView<'_>> = frame.entries().collect();
    assert_eq!(frame.entries().len(), 2);
    assert_eq!(entries[0].node(), NodeId(1));
    assert_eq!(
        entries[0].old_ring_id(),
        RingId {
            seq: 4,
            rep: NodeId(1)
        }
    );
    assert_eq!(entries[0].old_aru(), Seq(10));
    assert_eq!(entries[0].high_delivered(), Seq(9));
    assert_eq!(entries[0].flags(), 3);
    assert!(entries[0].received_flg());
    assert!(entries[0].is_filled());
    assert_eq!(entries[1].node(), NodeId(3));
    assert_eq!(entries[1].old_aru(), Seq(2));
    assert_eq!(entries[1].high_delivered(), Seq(7));
    assert!(entries[1].received_flg());
    assert!(!entries[1].is_filled());
    assert_eq!(
        entries[1].to_string(),
        "3 old 3.5 aru 2 high_delivered 7 received"
    );
    assert_eq!(
        frame.to_string(),
        "MembCommitToken from 1 ring 1.8 token_seq 3 memb_index 1/2 [1 old 1.4 aru 10 \
         high_delivered 9 received filled, 3 old 3.5 aru 2 high_delivered 7 received]"
    );
    assert_eq!(commit_repr().to_string(), frame.to_string());
}

#[test]
fn commit_construct() {
    let mut bytes = [0xffu8; 104];
    let mut frame = CommitTokenFrame::new_unchecked(&mut bytes[..]);
    {
        let mut header = frame.header_mut();
        header.set_magic(MAGIC);
        header.set_version(PROTOCOL_VERSION);
        header.set_frame_type(FrameType::MembCommitToken);
        header.set_sender(NodeId(1));
    }
    frame.set_ring_id(RingId {
        seq: 8,
        rep: NodeId(1),
    });
    frame.set_token_seq(3);
    frame.set_memb_index(1);
    frame.set_entry_count(2);
    let [first, second] = commit_entries();
    frame.set_entry(0, &first);
    frame.set_entry(1, &second);
    assert_eq!(bytes, COMMIT_BYTES);
}

#[test]
fn commit_fill_in_place() {
    // What a member does on the first rotation: fill its entry, count it, forward.
    let mut bytes = COMMIT_BYTES;
    let mut frame = CommitTokenFrame::new_checked(&mut bytes[..]).unwrap();
    let mut mine = CommitEntry::parse(&frame.entries().nth(1).unwrap()).unwrap();
    mine.filled = true;
    mine.received_flg = false;
    frame.set_entry(1, &mine);
    frame.set_memb_index(2);
    frame.set_token_seq(4);
    let frame = CommitTokenFrame::new_checked(&bytes[..]).unwrap();
    let repr = CommitTokenRepr::parse(&frame).unwrap();
    assert_eq!(repr.memb_index, 2);
    assert_eq!(repr.token_seq, 4);
    assert_eq!(repr.entries[1], mine);
    assert_eq!(repr.entries[0], commit_entries()[0]);
    assert_eq!(bytes[ENTRY1 + 32], 0x02);
}

#[test]
fn commit_parse_and_emit() {
    let frame = CommitTokenFrame::new_unchecked(&COMMIT_BYTES[..]);
    assert_eq!(CommitTokenRepr::parse(&frame), Ok(commit_repr()));
    let entries: Vec<_> = frame.entries().map(|e| CommitEntry::parse(&e)).collect();
    assert_eq!(entries, commit_entries().map(Ok::<_, Error>));
    let repr = commit_repr();
    assert_eq!(repr.buffer_len(), COMMIT_BYTES.len());
    assert_eq!(repr.entries[0].buffer_len(), COMMIT_ENTRY_LEN);
    let mut bytes = vec![0xa5u8; repr.buffer_len()];
    repr.emit(&mut CommitTokenFrame::new_unchecked(&mut bytes));
    assert_eq!(bytes, COMMIT_BYTES);
    let mut entry = [0xa5u8; COMMIT_ENTRY_LEN];
    repr.entries[1].emit(&mut entry);
    assert_eq!(entry, COMMIT_BYTES[ENTRY1..]);
    match parse_frame(&COMMIT_BYTES).unwrap() {
        Frame::CommitToken(commit) => assert_eq!(commit, frame),
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn commit_every_truncation_is_rejected() {
    for len in 0..COMMIT_BYTES.len() {
        assert_eq!(
            CommitTokenFrame::new_checked(&COMMIT_BYTES[..len]),
            Err(Error::Truncated),
            "length {len}"
        );
        assert_eq!(
            parse_frame(&COMMIT_BYTES[..len]).unwrap_err(),
            Error::Truncated
        );
        let frame = CommitTokenFrame::new_unchecked(&COMMIT_BYTES[..len]);
        let whole = usize::from(len >= ENTRY1);
        assert_eq!(frame.entries().count(), whole, "length {len}");
        assert!(frame.to_string().starts_with("MembCommitToken ("));
    }
}

#[test]
fn commit_bad_fields_are_rejected() {
    let check = |bytes: &[u8]| CommitTokenFrame::new_checked(bytes).map(|_| ());
    let mut longer = COMMIT_BYTES.to_vec();
    longer.push(0);
    assert_eq!(check(&longer), Err(Error::Malformed), "trailing byte");
    assert_eq!(check(&patched(&COMMIT_BYTES, 1, 0)), Err(Error::BadMagic));
    assert_eq!(
        check(&patched(&COMMIT_BYTES, 2, 0)),
        Err(Error::UnsupportedVersion(0))
    );
    assert_eq!(
        check(&patched(&COMMIT_BYTES, 3, 3)),
        Err(Error::Malformed),
        "type"
    );

    // Counts.
    assert_eq!(
        check(&patched(&COMMIT_BYTES, 31, 0)),
        Err(Error::Malformed),
        "no entries"
    );
    assert_eq!(
        check(&patched(&COMMIT_BYTES, 31, 1)),
        Err(Error::Malformed),
        "count 1"
    );
    assert_eq!(
        check(&patched(&COMMIT_BYTES, 31, 3)),
        Err(Error::Truncated),
        "count 3"
    );
    assert_eq!(
        check(&patched(&COMMIT_BYTES, 29, 3)),
        Err(Error::Malformed),
        "memb_index 3"
    );
    assert_eq!(
        check(&patched(&COMMIT_BYTES, 28, 1)),
        Err(Error::Malformed),
        "memb_index 257"
    );
    assert_eq!(
        check(&patched(&COMMIT_BYTES, 29, 2)),
        Ok(()),
        "memb_index == count"
    );
    assert_eq!(
        check(&patched(&COMMIT_BYTES, 29, 0)),
        Ok(()),
        "memb_index is not checked against the filled flags"
    );

    // Entry flags and reserved bytes.
    for entry in [ENTRY0, ENTRY1] {
        for bit in 2..8 {
            assert_eq!(
                check(&patched(&COMMIT_BYTES, entry + 32, 1 << bit)),
                Err(Error::Malformed),
                "entry {entry} flag bit {bit}"
            );
        }
        for at in 33..36 {
            assert_eq!(
                check(&patched(&COMMIT_BYTES, entry + at, 1)),
                Err(Error::Malformed),
                "entry {entry} reserved {at}"
            );
        }
        assert_eq!(check(&patched(&COMMIT_BYTES, entry + 32, 0)), Ok(()));
    }

    // Nodes and the rep.
    assert_eq!(
        check(&patched(&COMMIT_BYTES, ENTRY1 + 3, 1)),
        Err(Error::Malformed),
        "duplicate node"
    );
    let mut unsorted = patched(&COMMIT_BYTES, ENTRY0 + 3, 5);
    unsorted[11] = 5;
    assert_eq!(
        check(&unsorted),
        Err(Error::Malformed),
        "nodes [5 3], rep 5"
    );
    let mut zero = patched(&COMMIT_BYTES, ENTRY0 + 3, 0);
    zero[11] = 0;
    assert_eq!(check(&zero), Err(Error::Malformed), "node 0, rep 0");
    assert_eq!(
        check(&patched(&COMMIT_BYTES, 11, 3)),
        Err(Error::Malformed),
        "rep is not the first node"
    );
    assert_eq!(
        check(&patched(&COMMIT_BYTES, ENTRY1 + 3, 2)),
        Ok(()),
        "nodes [1 2]"
    );
    assert_eq!(
        check(&patched(&COMMIT_BYTES, ENTRY0 + 23, 0)),
        Ok(()),
        "high_delivered above old_aru is not checked"
    );

    // Through the representation.
    let check_repr = |repr: &CommitTokenRepr| {
        let mut bytes = vec![0u8; repr.buffer_len()];
        repr.emit(&mut CommitTokenFrame::new_unchecked(&mut bytes));
        check(&bytes)
    };
    let empty = CommitTokenRepr {
        entries: Vec::new(),
        memb_index: 0,
        ..commit_repr()
    };
    assert_eq!(check_repr(&empty), Err(Error::Malformed), "no entries");
    let mut reversed = commit_repr();
    reversed.entries.reverse();
    reversed.ring_id.rep = NodeId(3);
    assert_eq!(check_repr(&reversed), Err(Error::Malformed), "reversed");
    let over = CommitTokenRepr {
        memb_index: 3,
        ..commit_repr()
    };
    assert_eq!(check_repr(&over), Err(Error::Malformed), "memb_index over");
}

// ---- merge detect ----

#[test]
fn merge_deconstruct_construct_parse_and_emit() {
    let frame = MergeDetectFrame::new_checked(&MERGE_BYTES[..]).unwrap();
    assert_eq!(frame.sender(), NodeId(3));
    assert_eq!(
        frame.ring_id(),
        RingId {
            seq: 12,
            rep: NodeId(3)
        }
    );
    assert_eq!(frame.to_string(), "MergeDetect from 3 ring 3.12");
    assert_eq!(merge_repr().to_string(), frame.to_string());
    assert_eq!(MergeDetectRepr::parse(&frame), Ok(merge_repr()));

    let mut bytes = [0xffu8; 20];
    let mut view = MergeDetectFrame::new_unchecked(&mut bytes[..]);
    {
        let mut header = view.header_mut();
        header.set_magic(MAGIC);
        header.set_version(PROTOCOL_VERSION);
        header.set_frame_type(FrameType::MergeDetect);
        header.set_sender(NodeId(3));
    }
    view.set_ring_id(RingId {
        seq: 12,
        rep: NodeId(3),
    });
    assert_eq!(bytes, MERGE_BYTES);

    let repr = merge_repr();
    assert_eq!(repr.buffer_len(), MERGE_DETECT_LEN);
    let mut bytes = [0x5au8; 20];
    repr.emit(&mut MergeDetectFrame::new_unchecked(&mut bytes[..]));
    assert_eq!(bytes, MERGE_BYTES);
    match parse_frame(&MERGE_BYTES).unwrap() {
        Frame::MergeDetect(merge) => assert_eq!(merge, frame),
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn merge_truncation_and_bad_fields_are_rejected() {
    let check = |bytes: &[u8]| MergeDetectFrame::new_checked(bytes).map(|_| ());
    for len in 0..MERGE_BYTES.len() {
        assert_eq!(
            check(&MERGE_BYTES[..len]),
            Err(Error::Truncated),
            "length {len}"
        );
        assert_eq!(
            parse_frame(&MERGE_BYTES[..len]).unwrap_err(),
            Error::Truncated
        );
        assert!(
            MergeDetectFrame::new_unchecked(&MERGE_BYTES[..len])
                .to_string()
                .starts_with("MergeDetect (")
        );
    }
    let mut longer = MERGE_BYTES.to_vec();
    longer.push(0);
    assert_eq!(check(&longer), Err(Error::Malformed), "trailing byte");
    assert_eq!(check(&patched(&MERGE_BYTES, 0, 0)), Err(Error::BadMagic));
    assert_eq!(
        check(&patched(&MERGE_BYTES, 2, 7)),
        Err(Error::UnsupportedVersion(7))
    );
    assert_eq!(
        check(&patched(&MERGE_BYTES, 3, 6)),
        Err(Error::Malformed),
        "type"
    );
    // The same bytes with type 6 are a token hold cancel: the two views never accept each
    // other's frames.
    let cancel = patched(&MERGE_BYTES, 3, 6);
    assert!(matches!(
        parse_frame(&cancel),
        Ok(Frame::TokenHoldCancel(_))
    ));
    assert_eq!(
        TokenHoldCancelFrame::new_checked(&MERGE_BYTES[..]).map(|_| ()),
        Err(Error::Malformed)
    );
    assert_eq!(
        parse_frame(&patched(&MERGE_BYTES, 3, 7)).unwrap_err(),
        Error::UnknownType(7)
    );
}

#[test]
fn hold_cancel_deconstruct_construct_parse_and_emit() {
    let frame = TokenHoldCancelFrame::new_checked(&HOLD_CANCEL_BYTES[..]).unwrap();
    assert_eq!(frame.sender(), NodeId(2));
    let ring = RingId {
        seq: 42,
        rep: NodeId(1),
    };
    assert_eq!(frame.ring_id(), ring);
    assert_eq!(frame.to_string(), "TokenHoldCancel from 2 ring 1.42");
    let repr = TokenHoldCancelRepr {
        sender: NodeId(2),
        ring_id: ring,
    };
    assert_eq!(TokenHoldCancelRepr::parse(&frame), Ok(repr));
    let mut bytes = [0x5au8; 20];
    repr.emit(&mut TokenHoldCancelFrame::new_unchecked(&mut bytes[..]));
    assert_eq!(bytes, HOLD_CANCEL_BYTES);
    for len in 0..HOLD_CANCEL_BYTES.len() {
        assert_eq!(
            parse_frame(&HOLD_CANCEL_BYTES[..len]).unwrap_err(),
            Error::Truncated
        );
        assert!(
            TokenHoldCancelFrame::new_unchecked(&HOLD_CANCEL_BYTES[..len])
                .to_string()
                .starts_with("TokenHoldCancel (")
        );
    }
    let mut longer = HOLD_CANCEL_BYTES.to_vec();
    longer.push(0);
    assert_eq!(
        TokenHoldCancelFrame::new_checked(&longer[..]).map(|_| ()),
        Err(Error::Malformed)
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
        flags in any::<(bool, bool)>(),
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
            retrans_flg: flags.0,
            install: flags.1,
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
        chunks in prop::collection::vec(arb_chunk(), 1..8),
    ) -> (McastRepr, Vec<OwnedChunk>) {
        let repr = McastRepr {
            sender: NodeId(sender),
            ring_id,
            seq,
            safe: chunks.iter().any(|c| c.3 == DeliveryKind::Safe),
            encapsulated: false,
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

prop_compose! {
    /// An encapsulated frame's fixed part and the bytes of the old-ring frame it carries.
    fn arb_encapsulated()(
        sender in any::<u32>(),
        ring_id in arb_ring(),
        seq in arb_seq(),
        (inner, chunks) in arb_mcast(),
    ) -> (McastRepr, Vec<u8>) {
        let repr = McastRepr {
            sender: NodeId(sender),
            ring_id,
            seq,
            safe: false,
            encapsulated: true,
            chunk_count: 0,
        };
        (repr, emit_mcast(&inner, &chunks))
    }
}

fn emit_encapsulated(repr: &McastRepr, inner: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0u8; repr.buffer_len() + inner.len()];
    let mut view = McastFrame::new_unchecked(&mut bytes[..]);
    repr.emit(&mut view);
    view.chunk_area_mut().copy_from_slice(inner);
    bytes
}

/// A valid node set of `sizes` members: strictly ascending, no zero.
fn arb_nodes(sizes: core::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<NodeId>> {
    prop::collection::btree_set(1..=u32::MAX, sizes)
        .prop_map(|set| set.into_iter().map(NodeId).collect())
}

prop_compose! {
    fn arb_join()(
        sender in any::<u32>(),
        ring_id in arb_ring(),
        max_ring_seq in any::<u64>(),
        leaving in any::<bool>(),
        proc_set in arb_nodes(1..=16),
        fail_set in arb_nodes(0..=16),
    ) -> MembJoinRepr {
        MembJoinRepr { sender: NodeId(sender), ring_id, max_ring_seq, leaving, proc_set, fail_set }
    }
}

prop_compose! {
    fn arb_commit_entry(node: NodeId)(
        old_ring in arb_ring(),
        old_aru in arb_seq(),
        high_delivered in arb_seq(),
        received_flg in any::<bool>(),
        filled in any::<bool>(),
    ) -> CommitEntry {
        CommitEntry { node, old_ring, old_aru, high_delivered, received_flg, filled }
    }
}

prop_compose! {
    fn arb_commit()(
        sender in any::<u32>(),
        ring_seq in any::<u64>(),
        token_seq in any::<u64>(),
        index in any::<prop::sample::Index>(),
        entries in arb_nodes(1..=16).prop_flat_map(|nodes| {
            nodes.into_iter().map(arb_commit_entry).collect::<Vec<_>>()
        }),
    ) -> CommitTokenRepr {
        let memb_index = index.index(entries.len() + 1) as u16;
        CommitTokenRepr {
            sender: NodeId(sender),
            ring_id: RingId { seq: ring_seq, rep: entries[0].node },
            token_seq,
            memb_index,
            entries,
        }
    }
}

prop_compose! {
    fn arb_merge()(sender in any::<u32>(), ring_id in arb_ring()) -> MergeDetectRepr {
        MergeDetectRepr { sender: NodeId(sender), ring_id }
    }
}

fn emit_join(repr: &MembJoinRepr) -> Vec<u8> {
    let mut bytes = vec![0u8; repr.buffer_len()];
    repr.emit(&mut MembJoinFrame::new_unchecked(&mut bytes));
    bytes
}

fn emit_commit(repr: &CommitTokenRepr) -> Vec<u8> {
    let mut bytes = vec![0u8; repr.buffer_len()];
    repr.emit(&mut CommitTokenFrame::new_unchecked(&mut bytes));
    bytes
}

fn emit_merge(repr: &MergeDetectRepr) -> Vec<u8> {
    let mut bytes = vec![0u8; repr.buffer_len()];
    repr.emit(&mut MergeDetectFrame::new_unchecked(&mut bytes));
    bytes
}

/// Valid frames of every kind, as bytes.
fn arb_frame_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        arb_token().prop_map(|repr| {
            let mut bytes = vec![0u8; repr.buffer_len()];
            repr.emit(&mut OrfTokenFrame::new_unchecked(&mut bytes));
            bytes
        }),
        arb_mcast().prop_map(|(repr, chunks)| emit_mcast(&repr, &chunks)),
        arb_encapsulated().prop_map(|(repr, inner)| emit_encapsulated(&repr, &inner)),
        arb_join().prop_map(|repr| emit_join(&repr)),
        arb_commit().prop_map(|repr| emit_commit(&repr)),
        arb_merge().prop_map(|repr| emit_merge(&repr)),
        arb_merge().prop_map(|m| {
            let repr = TokenHoldCancelRepr {
                sender: m.sender,
                ring_id: m.ring_id,
            };
            let mut bytes = vec![0u8; repr.buffer_len()];
            repr.emit(&mut TokenHoldCancelFrame::new_unchecked(&mut bytes));
            bytes
        }),
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
    fn encapsulated_repr_round_trip((repr, inner) in arb_encapsulated()) {
        let bytes = emit_encapsulated(&repr, &inner);
        let frame = McastFrame::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(McastRepr::parse(&frame), Ok(repr));
        prop_assert_eq!(frame.chunks().count(), 0);
        prop_assert_eq!(frame.encapsulated(), Some(McastFrame::new_unchecked(&inner[..])));
        fuzz_parse_roundtrip(&bytes);
        // Encapsulating it once more is rejected.
        let nested = emit_encapsulated(&repr, &bytes);
        prop_assert_eq!(McastFrame::new_checked(&nested[..]), Err(Error::Malformed));
    }

    #[test]
    fn join_repr_round_trip(repr in arb_join()) {
        let bytes = emit_join(&repr);
        let frame = MembJoinFrame::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(frame.proc_set().collect::<Vec<_>>(), repr.proc_set.clone());
        prop_assert_eq!(frame.fail_set().collect::<Vec<_>>(), repr.fail_set.clone());
        prop_assert_eq!(frame.to_string(), repr.to_string());
        prop_assert_eq!(MembJoinRepr::parse(&frame), Ok(repr));
        fuzz_parse_roundtrip(&bytes);
    }

    #[test]
    fn join_unsorted_sets_are_rejected(repr in arb_join(), which in any::<bool>()) {
        let mut repr = repr;
        let set = if which { &mut repr.proc_set } else { &mut repr.fail_set };
        prop_assume!(!set.is_empty());
        let first = set[0];
        set.push(first);
        let bytes = emit_join(&repr);
        prop_assert_eq!(MembJoinFrame::new_checked(&bytes[..]), Err(Error::Malformed));
    }

    #[test]
    fn commit_repr_round_trip(repr in arb_commit()) {
        let bytes = emit_commit(&repr);
        let frame = CommitTokenFrame::new_checked(&bytes[..]).unwrap();
        let entries: Vec<_> = frame.entries().map(|e| CommitEntry::parse(&e)).collect();
        let expected: Vec<_> = repr.entries.iter().map(|e| Ok::<_, Error>(*e)).collect();
        prop_assert_eq!(entries, expected);
        prop_assert_eq!(frame.to_string(), repr.to_string());
        prop_assert_eq!(CommitTokenRepr::parse(&frame), Ok(repr));
        fuzz_parse_roundtrip(&bytes);
    }

    #[test]
    fn commit_unsorted_entries_are_rejected(
        repr in arb_commit(),
        at in any::<prop::sample::Index>(),
    ) {
        let mut repr = repr;
        let dup = repr.entries[at.index(repr.entries.len())];
        repr.entries.push(dup);
        let bytes = emit_commit(&repr);
        prop_assert_eq!(CommitTokenFrame::new_checked(&bytes[..]), Err(Error::Malformed));
    }

    #[test]
    fn merge_repr_round_trip(repr in arb_merge()) {
        let bytes = emit_merge(&repr);
        let frame = MergeDetectFrame::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(MergeDetectRepr::parse(&frame), Ok(repr));
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
        let _ = McastFrame::new_unchecked(&bytes[..]).encapsulated();
        let _ = MembJoinFrame::new_unchecked(&bytes[..]).proc_set().count();
        let _ = MembJoinFrame::new_unchecked(&bytes[..]).fail_set().count();
        for entry in CommitTokenFrame::new_unchecked(&bytes[..]).entries() {
            let _ = entry.to_string();
        }
        let _ = OrfTokenFrame::new_unchecked(&bytes[..]).to_string();
        let _ = McastFrame::new_unchecked(&bytes[..]).to_string();
        let _ = MembJoinFrame::new_unchecked(&bytes[..]).to_string();
        let _ = CommitTokenFrame::new_unchecked(&bytes[..]).to_string();
        let _ = MergeDetectFrame::new_unchecked(&bytes[..]).to_string();
        let _ = Header::new_unchecked(&bytes[..]).to_string();
    }

    #[test]
    fn arbitrary_bytes_with_valid_header_never_panic(
        ty in 0u8..8,
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
