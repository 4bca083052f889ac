//! AES-256-GCM, the one primitive frames and key wraps use, behind a small adapter.
//!
//! The implementation is `ring`'s (BoringSSL's assembly with AES-NI, CLMUL, AVX2 and VAES),
//! chosen for speed because frame crypto is on the hot path of every node: `bench aead`
//! measures about 5.6 GB/s sealing 1400-byte frames on one core of the reference machine
//! (`docs/performance.md`); the pure-Rust `aes-gcm` crate we started with was several times
//! slower there and cost up to half the ring's throughput with jumbo frames. Everything else (key derivation with HKDF-SHA256,
//! frame layout, nonces, replay windows) is ours and does not depend on the choice.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};

use super::{NONCE_LEN, TAG_LEN};

/// An AES-256-GCM key, ready to seal and open.
pub(super) struct Cipher(LessSafeKey);

impl Cipher {
    /// The cipher for a 32-byte key.
    pub(super) fn new(key: &[u8; 32]) -> Cipher {
        // Only a key of the wrong length is refused, and the type rules that out.
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte AES-256 key");
        Cipher(LessSafeKey::new(unbound))
    }

    /// Encrypts `buf` in place with `aad` authenticated; returns the tag.
    pub(super) fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let tag = self
            .0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
            // Refused only above GCM's 64 GiB message limit; frames are a few KiB.
            .expect("frame within the AES-GCM length limit");
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Decrypts `buf` in place if `tag` authenticates it with `aad`; on failure `buf` holds
    /// garbage the caller must discard.
    pub(super) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), ()> {
        let tag = Tag::from(*tag);
        self.0
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                tag,
                buf,
                0..,
            )
            .map(|_| ())
            .map_err(|_| ())
    }
}
