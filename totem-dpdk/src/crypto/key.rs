//! Key epochs ([`EpochKey`]), their derived keys, and wrapping a new epoch's key under the
//! current one for a rekey ([`rekey_wrap`], [`rekey_unwrap`]).

use core::fmt;

use super::aead::Cipher;
use hkdf::Hkdf;
use sha2::Sha256;

use super::{KeyError, MAX_SECRET_LEN, MIN_SECRET_LEN, NONCE_LEN, TAG_LEN, be_u32};

const SALT: &[u8] = b"openais-rs totem frames v1";
const INFO_FINGERPRINT: &[u8] = b"fingerprint";
const INFO_REKEY_WRAP: &[u8] = b"rekey wrap";
const REKEY_AAD: &[u8] = b"openais-rs totem rekey v1";
/// HKDF info label of the frame key.
pub(super) const INFO_FRAME_KEY: &[u8] = b"frame key";

/// A key epoch: its number and secret (32..=4096 bytes; from the key file or a rekey).
/// Debug never prints the secret.
#[derive(Clone)]
pub struct EpochKey {
    pub(super) epoch: u32,
    secret: Vec<u8>,
}

impl EpochKey {
    /// A key for `epoch`.
    ///
    /// # Errors
    ///
    /// [`KeyError::BadLength`] unless the secret is 32 to 4096 bytes.
    pub fn new(epoch: u32, secret: Vec<u8>) -> Result<EpochKey, KeyError> {
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret.len()) {
            return Err(KeyError::BadLength { len: secret.len() });
        }
        Ok(EpochKey { epoch, secret })
    }

    /// The epoch number.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The secret.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// 16 hex digits identifying the key for logs (HKDF-derived, not the secret itself; same
    /// secret+epoch → same fingerprint).
    pub fn fingerprint(&self) -> String {
        let mut id = [0u8; 8];
        self.derive(INFO_FINGERPRINT, self.epoch, &mut id);
        id.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// HKDF-SHA256 of the secret with the crate salt and `label ++ epoch BE` as info.
    fn derive(&self, label: &[u8], epoch: u32, okm: &mut [u8]) {
        let hkdf = Hkdf::<Sha256>::new(Some(SALT), &self.secret);
        // Only fails for outputs above 255 hash lengths; ours are at most 32 bytes.
        hkdf.expand_multi_info(&[label, &epoch.to_be_bytes()], okm)
            .expect("HKDF output of at most 32 bytes");
    }

    /// A cipher under a key derived for `label` and `epoch`.
    pub(super) fn cipher(&self, label: &[u8], epoch: u32) -> Cipher {
        let mut key = [0u8; 32];
        self.derive(label, epoch, &mut key);
        let cipher = Cipher::new(&key);
        key.fill(0);
        core::hint::black_box(&key);
        cipher
    }
}

impl fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochKey")
            .field("epoch", &self.epoch)
            .field("fingerprint", &self.fingerprint())
            .field("secret_len", &self.secret.len())
            .finish_non_exhaustive()
    }
}

impl Drop for EpochKey {
    /// Best effort: overwrites the secret before its memory is freed.
    fn drop(&mut self) {
        self.secret.fill(0);
        core::hint::black_box(&self.secret);
    }
}

/// Encrypts a new epoch's key under a wrap key derived from `current` (HKDF info "rekey
/// wrap"), for sending through the ring: AES-256-GCM with the caller's `nonce` (draw it at
/// random for every wrap: two nodes may start a rekey to the same epoch at the same time, and
/// a nonce derived from the epochs alone would then repeat under one key), and associated data
/// binding both epochs. Output: new epoch u32 BE | nonce (12) | ciphertext | tag.
///
/// `new.epoch()` must be above `current.epoch()` ([`rekey_unwrap`] refuses it otherwise).
pub fn rekey_wrap(current: &EpochKey, new: &EpochKey, nonce: [u8; NONCE_LEN]) -> Vec<u8> {
    let cipher = current.cipher(INFO_REKEY_WRAP, current.epoch);
    let aad = rekey_aad(current.epoch, new.epoch);
    let mut out = Vec::with_capacity(4 + NONCE_LEN + new.secret.len() + TAG_LEN);
    out.extend_from_slice(&new.epoch.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&new.secret);
    // Secrets are at most 4096 bytes, far within AES-GCM limits.
    let tag = cipher.seal(&nonce, &aad, &mut out[4 + NONCE_LEN..]);
    out.extend_from_slice(&tag);
    out
}

/// Decrypts a key wrapped by [`rekey_wrap`] under `current`.
///
/// # Errors
///
/// [`KeyError::Unwrap`] if the bytes are too short or fail authentication (wrong current
/// key, damage, forgery); [`KeyError::EpochNotNewer`] if the wrapped epoch is not above the
/// current one; [`KeyError::BadLength`] if the secret has a bad length.
pub fn rekey_unwrap(current: &EpochKey, wrapped: &[u8]) -> Result<EpochKey, KeyError> {
    let Some(tag_start) = wrapped
        .len()
        .checked_sub(TAG_LEN)
        .filter(|&s| s >= 4 + NONCE_LEN)
    else {
        return Err(KeyError::Unwrap);
    };
    let (head, tag) = wrapped.split_at(tag_start);
    let (epoch, rest) = head.split_at(4);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let epoch = be_u32(epoch);
    if epoch <= current.epoch {
        return Err(KeyError::EpochNotNewer {
            epoch,
            current: current.epoch,
        });
    }
    let cipher = current.cipher(INFO_REKEY_WRAP, current.epoch);
    let aad = rekey_aad(current.epoch, epoch);
    let mut secret = ciphertext.to_vec();
    let mut n = [0u8; NONCE_LEN];
    n.copy_from_slice(nonce);
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(tag);
    if cipher.open(&n, &aad, &mut secret, &t).is_err() {
        return Err(KeyError::Unwrap);
    }
    EpochKey::new(epoch, secret)
}

/// The associated data (label | current epoch BE | new epoch BE) of a key wrap.
fn rekey_aad(current: u32, new: u32) -> [u8; REKEY_AAD.len() + 8] {
    let mut aad = [0u8; REKEY_AAD.len() + 8];
    aad[..REKEY_AAD.len()].copy_from_slice(REKEY_AAD);
    aad[REKEY_AAD.len()..REKEY_AAD.len() + 4].copy_from_slice(&current.to_be_bytes());
    aad[REKEY_AAD.len() + 4..].copy_from_slice(&new.to_be_bytes());
    aad
}
