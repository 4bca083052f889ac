use proptest::prelude::*;

use super::*;

const ALL: [Protection; 3] = [
    Protection::Integrity,
    Protection::Authenticate,
    Protection::Encrypt,
];
const CRYPTO: [Protection; 2] = [Protection::Authenticate, Protection::Encrypt];

fn key(epoch: u32, fill: u8) -> EpochKey {
    EpochKey::new(epoch, vec![fill; 48]).unwrap()
}

fn node(protection: Protection, id: u32, counter_start: u64) -> FrameCrypto {
    FrameCrypto::new(protection, NodeId(id), Some(key(1, 0x11)), counter_start).unwrap()
}

/// A plaintext frame: a Totem-looking header from `sender` and a patterned body.
fn frame(sender: u32, body_len: usize) -> Vec<u8> {
    let mut plain = vec![0xA1, 0x5E, 1, 3];
    plain.extend_from_slice(&sender.to_be_bytes());
    plain.extend((0..body_len).map(|i| (i * 7 + 13) as u8));
    plain
}

fn sealed(tx: &mut FrameCrypto, plain: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    tx.seal(plain, &mut wire).unwrap();
    wire
}

fn open(rx: &mut FrameCrypto, wire: &[u8]) -> Result<Vec<u8>, OpenError> {
    let mut out = Vec::new();
    rx.open(wire, &mut out).map(|_| out)
}

fn rejections(stats: &CryptoStats) -> u64 {
    stats.malformed
        + stats.bad_crc
        + stats.unknown_epoch
        + stats.bad_tag
        + stats.replayed
        + stats.too_old
}

fn counter_of(wire: &[u8]) -> u64 {
    u64::from_be_bytes(wire[16..24].try_into().unwrap())
}

#[test]
fn round_trip_all_protections_and_sizes() {
    for protection in ALL {
        let mut tx = node(protection, 1, 0);
        let mut rx = node(protection, 2, 0);
        let mut wire = Vec::new();
        let mut out = Vec::new();
        for body_len in [0, 1, 1000, 9000] {
            let plain = frame(1, body_len);
            tx.seal(&plain, &mut wire).unwrap();
            assert_eq!(wire.len(), plain.len() + tx.overhead(), "{protection:?}");
            let opened = rx.open(&wire, &mut out).unwrap();
            assert_eq!(out, plain, "{protection:?} {body_len}");
            if protection == Protection::Integrity {
                assert_eq!(
                    opened,
                    Opened {
                        transmitter: None,
                        epoch: None
                    }
                );
            } else {
                assert_eq!(
                    opened,
                    Opened {
                        transmitter: Some(NodeId(1)),
                        epoch: Some(1)
                    }
                );
            }
        }
        assert_eq!(tx.stats().sealed, 4);
        assert_eq!(rx.stats().opened, 4);
        assert_eq!(rejections(rx.stats()), 0);
    }
}

#[test]
fn overhead_and_integrity_matches_crc_trailer() {
    let mut tx = FrameCrypto::new(Protection::Integrity, NodeId(1), None, 0).unwrap();
    assert_eq!(tx.overhead(), 4);
    assert_eq!(tx.epoch(), None);
    assert!(tx.current_key().is_none());
    let plain = frame(1, 20);
    let wire = sealed(&mut tx, &plain);
    assert_eq!(&wire[..plain.len()], &plain[..]);
    assert_eq!(wire[plain.len()..], crc32fast::hash(&plain).to_be_bytes());
    assert_eq!(node(Protection::Encrypt, 1, 0).overhead(), 36);
    assert_eq!(node(Protection::Authenticate, 1, 0).overhead(), 36);
}

#[test]
fn key_required_for_crypto() {
    for protection in CRYPTO {
        assert_eq!(
            FrameCrypto::new(protection, NodeId(1), None, 0).unwrap_err(),
            KeyError::Missing
        );
    }
}

#[test]
fn seal_too_short_and_no_allocation_reuse() {
    for protection in ALL {
        let mut tx = node(protection, 1, 0);
        let mut out = vec![1, 2, 3];
        assert_eq!(tx.seal(&[0; 7], &mut out), Err(SealError::TooShort));
        assert!(out.is_empty());
        let mut out = Vec::with_capacity(2048);
        let ptr = out.as_ptr();
        tx.seal(&frame(1, 1000), &mut out).unwrap();
        tx.seal(&frame(1, 500), &mut out).unwrap();
        assert_eq!(out.as_ptr(), ptr, "seal reallocated");
        let wire = out.clone();
        let mut rx = node(protection, 2, 0);
        let mut plain = Vec::with_capacity(2048);
        let ptr = plain.as_ptr();
        rx.open(&wire, &mut plain).unwrap();
        assert_eq!(plain.as_ptr(), ptr, "open reallocated");
    }
}

#[test]
fn encrypt_hides_body_and_authenticate_shows_it() {
    let mut plain = frame(1, 0);
    plain.extend_from_slice(b"the quick brown fox jumps over the lazy dog");
    let needle = b"quick brown fox";
    let contains = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    let wire = sealed(&mut node(Protection::Encrypt, 1, 0), &plain);
    assert!(!contains(&wire));
    assert_eq!(wire[..8], plain[..8], "header stays clear");
    let wire = sealed(&mut node(Protection::Authenticate, 1, 0), &plain);
    assert!(contains(&wire));
    assert_eq!(wire[28..wire.len() - 16], plain[8..]);
}

#[test]
fn layout_epoch_nonce_and_counter_start() {
    let mut tx = node(Protection::Encrypt, 0x0102_0304, 1000);
    assert_eq!(tx.next_counter(), 1000);
    let wire = sealed(&mut tx, &frame(7, 10));
    assert_eq!(wire[8..12], 1u32.to_be_bytes());
    assert_eq!(wire[12..16], [1, 2, 3, 4]);
    assert_eq!(counter_of(&wire), 1000);
    assert_eq!(counter_of(&sealed(&mut tx, &frame(7, 10))), 1001);
    assert_eq!(tx.next_counter(), 1002);
}

#[test]
fn counter_exhausted() {
    let mut tx = node(Protection::Encrypt, 1, u64::MAX - 1);
    let wire = sealed(&mut tx, &frame(1, 4));
    assert_eq!(counter_of(&wire), u64::MAX - 1);
    let mut out = Vec::new();
    assert_eq!(
        tx.seal(&frame(1, 4), &mut out),
        Err(SealError::CounterExhausted)
    );
    assert!(out.is_empty());
    assert_eq!(tx.next_counter(), u64::MAX);
    assert_eq!(tx.stats().sealed, 1);
    // Integrity mode has no counter.
    let mut tx = FrameCrypto::new(Protection::Integrity, NodeId(1), None, u64::MAX).unwrap();
    sealed(&mut tx, &frame(1, 4));
}

#[test]
fn every_bit_flip_rejected_and_counted() {
    for protection in ALL {
        let mut tx = node(protection, 1, 0);
        let mut rx = node(protection, 2, 0);
        let wire = sealed(&mut tx, &frame(1, 24));
        let mut flips = 0;
        for bit in 0..wire.len() * 8 {
            let mut bad = wire.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let err = open(&mut rx, &bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    OpenError::BadTag
                        | OpenError::BadCrc
                        | OpenError::UnknownEpoch { .. }
                        | OpenError::Malformed
                ),
                "{protection:?} bit {bit}: {err:?}"
            );
            flips += 1;
        }
        assert_eq!(rejections(rx.stats()), flips, "{protection:?}");
        assert_eq!(rx.stats().opened, 0);
        // The intact frame still opens: failures did not touch the window.
        open(&mut rx, &wire).unwrap();
    }
}

#[test]
fn every_bit_flip_rejected_large_frame_sampled() {
    for protection in CRYPTO {
        let mut tx = node(protection, 1, 0);
        let mut rx = node(protection, 2, 0);
        let wire = sealed(&mut tx, &frame(1, 9000));
        for bit in (0..wire.len() * 8).step_by(61) {
            let mut bad = wire.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(open(&mut rx, &bad).is_err(), "{protection:?} bit {bit}");
        }
        open(&mut rx, &wire).unwrap();
    }
}

#[test]
fn every_truncation_rejected() {
    for protection in ALL {
        let mut tx = node(protection, 1, 0);
        let mut rx = node(protection, 2, 0);
        let wire = sealed(&mut tx, &frame(1, 40));
        for len in 0..wire.len() {
            let err = open(&mut rx, &wire[..len]).unwrap_err();
            assert!(
                matches!(
                    err,
                    OpenError::Malformed | OpenError::BadCrc | OpenError::BadTag
                ),
                "{protection:?} len {len}: {err:?}"
            );
        }
        assert_eq!(rejections(rx.stats()), wire.len() as u64);
        // Extending is rejected too.
        let mut long = wire.clone();
        long.push(0);
        assert!(open(&mut rx, &long).is_err());
        open(&mut rx, &wire).unwrap();
    }
}

#[test]
fn different_secret_is_bad_tag() {
    for protection in CRYPTO {
        let mut tx = node(protection, 1, 0);
        let mut rx = FrameCrypto::new(protection, NodeId(2), Some(key(1, 0x22)), 0).unwrap();
        let wire = sealed(&mut tx, &frame(1, 100));
        let mut out = vec![9; 3];
        assert_eq!(rx.open(&wire, &mut out), Err(OpenError::BadTag));
        assert!(out.is_empty(), "no unauthenticated plaintext left behind");
        assert_eq!(rx.stats().bad_tag, 1);
    }
}

#[test]
fn replay_rejected() {
    for protection in CRYPTO {
        let mut tx = node(protection, 1, 0);
        let mut rx = node(protection, 2, 0);
        let wire = sealed(&mut tx, &frame(1, 10));
        open(&mut rx, &wire).unwrap();
        assert_eq!(
            open(&mut rx, &wire),
            Err(OpenError::Replayed {
                transmitter: NodeId(1)
            })
        );
        assert_eq!(rx.stats().replayed, 1);
    }
}

#[test]
fn too_old_and_reordering() {
    let mut tx = node(Protection::Encrypt, 1, 0);
    let mut rx = node(Protection::Encrypt, 2, 0);
    let frames: Vec<Vec<u8>> = (0..REPLAY_WINDOW + 2)
        .map(|_| sealed(&mut tx, &frame(1, 4)))
        .collect();
    // Out of order within the window: all accepted.
    for index in [5, 3, 4, 0, 2, 1] {
        open(&mut rx, &frames[index]).unwrap();
    }
    // Newest is REPLAY_WINDOW + 1: counters 0 and 1 fall out; 2 is remembered.
    open(&mut rx, &frames[REPLAY_WINDOW as usize + 1]).unwrap();
    open(&mut rx, &frames[6]).unwrap();
    assert_eq!(
        open(&mut rx, &frames[2]),
        Err(OpenError::Replayed {
            transmitter: NodeId(1)
        })
    );
    // Never seen, but more than REPLAY_WINDOW below the newest: refused.
    let mut rx = node(Protection::Encrypt, 2, 0);
    open(&mut rx, &frames[REPLAY_WINDOW as usize + 1]).unwrap();
    assert_eq!(
        open(&mut rx, &frames[0]),
        Err(OpenError::TooOld {
            transmitter: NodeId(1)
        })
    );
    assert_eq!(rx.stats().too_old, 1);
    open(&mut rx, &frames[2]).unwrap();
}

#[test]
fn transmitters_have_independent_windows() {
    let mut a = node(Protection::Encrypt, 1, 0);
    let mut b = node(Protection::Encrypt, 2, 0);
    let mut rx = node(Protection::Encrypt, 3, 0);
    let first_b = sealed(&mut b, &frame(2, 4));
    let a_frames: Vec<Vec<u8>> = (0..REPLAY_WINDOW + 10)
        .map(|_| sealed(&mut a, &frame(1, 4)))
        .collect();
    open(&mut rx, a_frames.last().unwrap()).unwrap();
    // B's counter 0 is far below A's newest, but B has its own window.
    let opened = rx.open(&first_b, &mut Vec::new()).unwrap();
    assert_eq!(opened.transmitter, Some(NodeId(2)));
    // Same counter, different transmitters: both accepted.
    let mut a2 = node(Protection::Encrypt, 1, 500);
    let mut b2 = node(Protection::Encrypt, 2, 500);
    let mut rx = node(Protection::Encrypt, 3, 0);
    open(&mut rx, &sealed(&mut a2, &frame(1, 4))).unwrap();
    open(&mut rx, &sealed(&mut b2, &frame(2, 4))).unwrap();
}

#[test]
fn restart_with_higher_counter_start_accepted() {
    let mut rx = node(Protection::Encrypt, 2, 0);
    let mut tx = node(Protection::Encrypt, 1, 0);
    for _ in 0..10 {
        open(&mut rx, &sealed(&mut tx, &frame(1, 4))).unwrap();
    }
    // The lease persisted before the crash was 1 << 20.
    let mut restarted = node(Protection::Encrypt, 1, 1 << 20);
    open(&mut rx, &sealed(&mut restarted, &frame(1, 4))).unwrap();
    open(&mut rx, &sealed(&mut restarted, &frame(1, 4))).unwrap();
    // Frames of the earlier incarnation are now too old.
    let mut old = node(Protection::Encrypt, 1, 5);
    assert_eq!(
        open(&mut rx, &sealed(&mut old, &frame(1, 4))),
        Err(OpenError::TooOld {
            transmitter: NodeId(1)
        })
    );
}

#[test]
fn epochs_install_and_retire() {
    for protection in CRYPTO {
        let mut tx = node(protection, 1, 0);
        let mut rx = node(protection, 2, 0);
        let old = sealed(&mut tx, &frame(1, 30));
        let old2 = sealed(&mut tx, &frame(1, 30));
        tx.install(key(2, 0x33)).unwrap();
        rx.install(key(2, 0x33)).unwrap();
        assert_eq!(tx.epoch(), Some(2));
        assert_eq!(tx.previous_epoch(), Some(1));
        assert_eq!(tx.current_key().unwrap().epoch(), 2);
        let new = sealed(&mut tx, &frame(1, 30));
        assert_eq!(new[8..12], 2u32.to_be_bytes());
        // Counters continue across epochs.
        assert_eq!(counter_of(&new), 2);
        let mut out = Vec::new();
        assert_eq!(rx.open(&new, &mut out).unwrap().epoch, Some(2));
        assert_eq!(rx.open(&old, &mut out).unwrap().epoch, Some(1));
        // One window across epochs: a replay under the old epoch is still caught.
        assert_eq!(
            rx.open(&old, &mut out),
            Err(OpenError::Replayed {
                transmitter: NodeId(1)
            })
        );
        rx.retire_previous();
        assert_eq!(rx.previous_epoch(), None);
        assert_eq!(
            rx.open(&old2, &mut out),
            Err(OpenError::UnknownEpoch {
                epoch: 1,
                current: 2
            })
        );
        assert_eq!(rx.stats().unknown_epoch, 1);
        // A third epoch drops the first from `previous` without retire.
        tx.install(key(3, 0x44)).unwrap();
        assert_eq!(tx.previous_epoch(), Some(2));
    }
}

/// A rekey's first step: the receiver accepts the next epoch before it seals with it, so a
/// sender that switched first is heard; installing it later keeps it, and the receiver's own
/// frames stay under the old epoch until then.
#[test]
fn an_accepted_epoch_opens_before_it_seals() {
    for protection in CRYPTO {
        let mut tx = node(protection, 1, 0);
        let mut rx = node(protection, 2, 0);
        let mut out = Vec::new();
        tx.install(key(2, 0x33)).unwrap();
        let early = sealed(&mut tx, &frame(1, 30));
        assert_eq!(
            rx.open(&early, &mut out),
            Err(OpenError::UnknownEpoch {
                epoch: 2,
                current: 1
            }),
            "not accepted yet"
        );
        rx.accept(key(2, 0x33)).unwrap();
        assert_eq!((rx.epoch(), rx.next_epoch()), (Some(1), Some(2)));
        let early = sealed(&mut tx, &frame(1, 30));
        assert_eq!(rx.open(&early, &mut out).unwrap().epoch, Some(2));
        // Still sealing under the current epoch.
        assert_eq!(sealed(&mut rx, &frame(2, 30))[8..12], 1u32.to_be_bytes());
        rx.install(key(2, 0x33)).unwrap();
        assert_eq!(
            (rx.epoch(), rx.previous_epoch(), rx.next_epoch()),
            (Some(2), Some(1), None)
        );
        assert_eq!(sealed(&mut rx, &frame(2, 30))[8..12], 2u32.to_be_bytes());
        assert_eq!(
            rx.accept(key(2, 0x33)),
            Err(KeyError::EpochNotNewer {
                epoch: 2,
                current: 2
            })
        );
        // An accepted epoch that another install supersedes is dropped.
        rx.accept(key(3, 0x44)).unwrap();
        rx.install(key(4, 0x55)).unwrap();
        assert_eq!(rx.next_epoch(), None);
    }
    let mut integrity = FrameCrypto::new(Protection::Integrity, NodeId(1), None, 0).unwrap();
    assert_eq!(integrity.accept(key(2, 1)), Err(KeyError::NoCrypto));
}

#[test]
fn install_not_newer_or_without_crypto_fails() {
    let mut tx = node(Protection::Encrypt, 1, 0);
    assert_eq!(
        tx.install(key(1, 0x55)),
        Err(KeyError::EpochNotNewer {
            epoch: 1,
            current: 1
        })
    );
    tx.install(key(5, 0x55)).unwrap();
    assert_eq!(
        tx.install(key(4, 0x66)),
        Err(KeyError::EpochNotNewer {
            epoch: 4,
            current: 5
        })
    );
    assert_eq!(tx.epoch(), Some(5));
    assert_eq!(tx.previous_epoch(), Some(1));
    let mut integrity = FrameCrypto::new(Protection::Integrity, NodeId(1), None, 0).unwrap();
    assert_eq!(integrity.install(key(2, 1)), Err(KeyError::NoCrypto));
}

#[test]
fn key_lengths() {
    assert_eq!(
        EpochKey::new(1, vec![0; 31]).unwrap_err(),
        KeyError::BadLength { len: 31 }
    );
    assert_eq!(
        EpochKey::new(1, vec![0; 4097]).unwrap_err(),
        KeyError::BadLength { len: 4097 }
    );
    EpochKey::new(1, vec![0; 32]).unwrap();
    EpochKey::new(1, vec![0; 4096]).unwrap();
}

#[test]
fn rekey_wrap_round_trip_and_failures() {
    let current = key(7, 0x77);
    let new = EpochKey::new(8, (0..200u8).collect()).unwrap();
    let wrapped = rekey_wrap(&current, &new, [5; 12]);
    assert_eq!(wrapped[..4], 8u32.to_be_bytes());
    assert_eq!(wrapped.len(), 4 + 12 + 200 + TAG_LEN);
    // Another nonce gives another ciphertext of the same key.
    assert_ne!(rekey_wrap(&current, &new, [6; 12]), wrapped);
    assert!(!wrapped.windows(16).any(|w| w == &new.secret()[..16]));
    let unwrapped = rekey_unwrap(&current, &wrapped).unwrap();
    assert_eq!(unwrapped.epoch(), 8);
    assert_eq!(unwrapped.secret(), new.secret());
    // The wrong current key: another secret, or the same secret under another epoch.
    assert_eq!(
        rekey_unwrap(&key(7, 0x78), &wrapped).unwrap_err(),
        KeyError::Unwrap
    );
    assert_eq!(
        rekey_unwrap(&key(6, 0x77), &wrapped).unwrap_err(),
        KeyError::Unwrap
    );
    // Tampering anywhere, including the epoch number.
    for bit in 0..wrapped.len() * 8 {
        let mut bad = wrapped.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(rekey_unwrap(&current, &bad).is_err(), "bit {bit}");
    }
    for len in 0..wrapped.len() {
        assert!(
            rekey_unwrap(&current, &wrapped[..len]).is_err(),
            "len {len}"
        );
    }
    // A wrapped epoch that is not newer than the current is refused.
    let stale = rekey_wrap(&current, &key(7, 0x99), [1; 12]);
    assert_eq!(
        rekey_unwrap(&current, &stale).unwrap_err(),
        KeyError::EpochNotNewer {
            epoch: 7,
            current: 7
        }
    );
}

#[test]
fn debug_hides_secrets() {
    let secret = b"correct horse battery staple, very secret".to_vec();
    let key = EpochKey::new(3, secret.clone()).unwrap();
    let debug = format!("{key:?}");
    assert!(!debug.contains("correct horse"), "{debug}");
    assert!(!debug.contains(&format!("{secret:?}")), "{debug}");
    assert!(!debug.contains("99, 111, 114"), "{debug}");
    assert!(debug.contains(&key.fingerprint()));
    let crypto = FrameCrypto::new(Protection::Encrypt, NodeId(1), Some(key), 0).unwrap();
    let debug = format!("{crypto:?}");
    assert!(!debug.contains("correct horse"), "{debug}");
    assert!(!debug.contains("99, 111, 114"), "{debug}");
}

#[test]
fn fingerprint_stable_and_distinct() {
    let a = key(1, 0xaa);
    let fingerprint = a.fingerprint();
    assert_eq!(fingerprint.len(), 16);
    assert!(fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(fingerprint, key(1, 0xaa).fingerprint());
    assert_eq!(fingerprint, a.clone().fingerprint());
    assert_ne!(fingerprint, key(1, 0xab).fingerprint());
    assert_ne!(fingerprint, key(2, 0xaa).fingerprint());
    assert!(!fingerprint.contains("aaaa"));
}

#[test]
fn error_messages() {
    assert_eq!(
        OpenError::UnknownEpoch {
            epoch: 3,
            current: 5
        }
        .to_string(),
        "frame of unknown key epoch 3 (current epoch 5)"
    );
    assert_eq!(
        OpenError::Replayed {
            transmitter: NodeId(4)
        }
        .to_string(),
        "replayed frame from node 4"
    );
    assert!(
        KeyError::BadLength { len: 3 }
            .to_string()
            .contains("32 to 4096")
    );
}

proptest! {
    #[test]
    fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        for protection in ALL {
            let mut rx = node(protection, 2, 0);
            let mut out = Vec::new();
            let result = rx.open(&bytes, &mut out);
            if result.is_err() {
                prop_assert!(out.is_empty());
            }
        }
    }

    #[test]
    fn open_never_panics_with_known_epoch(
        header in proptest::array::uniform8(any::<u8>()),
        tail in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        for protection in CRYPTO {
            let mut rx = node(protection, 2, 0);
            let mut wire = header.to_vec();
            wire.extend_from_slice(&1u32.to_be_bytes());
            wire.extend_from_slice(&tail);
            let mut out = Vec::new();
            prop_assert!(rx.open(&wire, &mut out).is_err());
            prop_assert!(out.is_empty());
        }
    }

    #[test]
    fn round_trip_any_frame(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        counter_start in 0..u64::MAX - 1,
        sender in any::<u32>(),
    ) {
        for protection in ALL {
            let mut tx = node(protection, sender, counter_start);
            let mut rx = node(protection, 2, 0);
            let mut plain = frame(sender, 0);
            plain.extend_from_slice(&body);
            let wire = sealed(&mut tx, &plain);
            prop_assert_eq!(open(&mut rx, &wire).unwrap(), plain);
        }
    }
}

#[test]
fn own_frames_open_only_when_sent_to_self() {
    let k = key(0, 0x33);
    let mut me = FrameCrypto::new(Protection::Encrypt, NodeId(1), Some(k), 0).unwrap();
    let plain = frame(1, 40);
    let (mut wire, mut out) = (Vec::new(), Vec::new());
    // A frame to another node, reflected back by an attacker: refused.
    me.seal(&plain, &mut wire).unwrap();
    assert_eq!(
        me.open(&wire, &mut out).unwrap_err(),
        OpenError::Replayed {
            transmitter: NodeId(1)
        }
    );
    // A frame this node addressed to itself: opened once, not twice.
    me.expect_own(me.next_counter());
    me.seal(&plain, &mut wire).unwrap();
    me.open(&wire, &mut out).unwrap();
    assert_eq!(out, plain);
    assert!(me.open(&wire, &mut out).is_err());
}

#[test]
fn frames_sealed_for_another_node_are_refused() {
    let k = key(0, 0x44);
    let mut a = FrameCrypto::new(Protection::Encrypt, NodeId(1), Some(k.clone()), 0).unwrap();
    let mut b = FrameCrypto::new(Protection::Encrypt, NodeId(2), Some(k.clone()), 0).unwrap();
    let mut c = FrameCrypto::new(Protection::Encrypt, NodeId(3), Some(k), 0).unwrap();
    let plain = frame(1, 30);
    let (mut wire, mut out) = (Vec::new(), Vec::new());
    a.seal_to(&plain, Some(NodeId(2)), &mut wire).unwrap();
    assert_eq!(
        c.open(&wire, &mut out).unwrap_err(),
        OpenError::Misdirected { dest: NodeId(2) }
    );
    assert_eq!(c.stats().misdirected, 1);
    b.open(&wire, &mut out).unwrap();
    assert_eq!(out, plain);
    // A ring frame opens everywhere.
    a.seal(&plain, &mut wire).unwrap();
    b.open(&wire, &mut out).unwrap();
    c.open(&wire, &mut out).unwrap();
}

/// `plain` laid out for [`FrameCrypto::seal_in_place`]: head room, the frame, tail room,
/// the rooms filled with a pattern the seal must overwrite or leave outside the wire frame.
fn roomy(plain: &[u8]) -> Vec<u8> {
    let mut buf = vec![0xEE; SEAL_HEADROOM];
    buf.extend_from_slice(plain);
    buf.extend_from_slice(&[0xEE; SEAL_TAILROOM]);
    buf
}

#[test]
fn in_place_seal_matches_the_copying_seal_and_opens_in_place() {
    for protection in ALL {
        for body_len in [0, 1, 1000, 9000] {
            let plain = frame(1, body_len);
            let mut copying = node(protection, 1, 7);
            let expected = sealed(&mut copying, &plain);
            let mut tx = node(protection, 1, 7);
            let mut buf = roomy(&plain);
            let wire = tx.seal_in_place(&mut buf, plain.len(), None).unwrap();
            assert_eq!(
                &buf[wire.clone()],
                &expected[..],
                "{protection:?} {body_len}"
            );
            assert_eq!(tx.next_counter(), copying.next_counter());
            assert_eq!(tx.stats().sealed, 1);

            // Open in the receive buffer itself: the plaintext is a range of it.
            let mut rx = node(protection, 2, 0);
            let mut rx_buf = buf[wire].to_vec();
            let ptr = rx_buf.as_ptr();
            let (opened, range) = rx.open_in_place(&mut rx_buf).unwrap();
            assert_eq!(
                &rx_buf[range.clone()],
                &plain[..],
                "{protection:?} {body_len}"
            );
            assert_eq!(rx_buf.as_ptr(), ptr);
            let expected_start = if protection == Protection::Integrity {
                0
            } else {
                SEAL_HEADROOM
            };
            assert_eq!(range.start, expected_start);
            assert_eq!(opened.epoch.is_some(), protection != Protection::Integrity);
            assert_eq!(rx.stats().opened, 1);
        }
    }
}

#[test]
fn in_place_seal_refuses_short_frames_and_missing_room() {
    for protection in ALL {
        let mut tx = node(protection, 1, 0);
        let plain = frame(1, 30);
        let mut buf = roomy(&plain);
        let before = buf.clone();
        assert_eq!(
            tx.seal_in_place(&mut buf, 7, None),
            Err(SealError::TooShort)
        );
        // One byte of tail room short, and no head room.
        assert_eq!(
            tx.seal_in_place(&mut buf[..before.len() - 1], plain.len(), None),
            Err(SealError::NoRoom)
        );
        assert_eq!(
            tx.seal_in_place(&mut buf[SEAL_HEADROOM..], plain.len(), None),
            Err(SealError::NoRoom)
        );
        assert_eq!(buf, before, "{protection:?}: a refused seal wrote nothing");
        assert_eq!(tx.next_counter(), 0);
        assert_eq!(tx.stats().sealed, 0);
        assert_eq!(
            SealError::NoRoom.to_string(),
            "no room around the frame for the crypto fields and tag"
        );
    }
}

#[test]
fn tampered_frame_opened_in_place_is_refused_and_changes_nothing() {
    for protection in ALL {
        let mut tx = node(protection, 1, 0);
        let mut rx = node(protection, 2, 0);
        let plain = frame(1, 200);
        let wire = sealed(&mut tx, &plain);
        for bit in (0..wire.len() * 8).step_by(7) {
            let mut bad = wire.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                rx.open_in_place(&mut bad).is_err(),
                "{protection:?} bit {bit}"
            );
        }
        assert_eq!(rx.stats().opened, 0);
        // The window did not move: the genuine frame with the same counter opens, once.
        let mut good = wire.clone();
        let (_, range) = rx.open_in_place(&mut good).unwrap();
        assert_eq!(&good[range], &plain[..]);
        if protection != Protection::Integrity {
            let mut again = wire.clone();
            assert_eq!(
                rx.open_in_place(&mut again),
                Err(OpenError::Replayed {
                    transmitter: NodeId(1)
                })
            );
        }
    }
}

proptest! {
    #[test]
    fn open_in_place_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        for protection in ALL {
            let mut rx = node(protection, 2, 0);
            let mut buf = bytes.clone();
            if let Ok((_, range)) = rx.open_in_place(&mut buf) {
                // Only an intact CRC can pass without a key holder's seal.
                prop_assert_eq!(protection, Protection::Integrity);
                prop_assert!(range.end <= buf.len());
            }
        }
    }

    #[test]
    fn in_place_round_trip_any_frame(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        dest in proptest::option::of(1u32..4),
    ) {
        for protection in ALL {
            let mut tx = node(protection, 1, 0);
            let mut rx = node(protection, 2, 0);
            let mut plain = frame(1, 0);
            plain.extend_from_slice(&body);
            let mut buf = roomy(&plain);
            let wire = tx.seal_in_place(&mut buf, plain.len(), dest.map(NodeId)).unwrap();
            let mut rx_buf = buf[wire].to_vec();
            let result = rx.open_in_place(&mut rx_buf);
            match (protection, dest) {
                (Protection::Integrity, _) | (_, None | Some(2)) => {
                    let (_, range) = result.unwrap();
                    prop_assert_eq!(&rx_buf[range], &plain[..]);
                }
                (_, Some(d)) => {
                    prop_assert_eq!(result, Err(OpenError::Misdirected { dest: NodeId(d) }));
                }
            }
        }
    }
}

proptest! {
    #[test]
    fn the_fuzz_target_holds_on_random_frames(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        fuzz_open(&data);
    }
}

#[test]
fn the_fuzz_target_holds_on_valid_integrity_frames() {
    // A frame with a valid CRC is the one input accepted without a key: the target's
    // assertion allows it in integrity mode only.
    let plain = frame(1, 50);
    let mut data = vec![17];
    data.extend_from_slice(&plain);
    data.extend_from_slice(&crc32fast::hash(&plain).to_be_bytes());
    fuzz_open(&data);
}
