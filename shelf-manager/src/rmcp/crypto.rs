//! The cipher suites the server offers and their arithmetic: RAKP key-exchange codes, the
//! session keys, per-packet integrity codes and AES-CBC-128 confidentiality (IPMI 2.0 §13.28–
//! §13.29, facts in `../shared/research/atca-notes.md` §6).
//!
//! Two suites, both authenticated, integrity-protected and encrypted; suite 0 (no
//! authentication) and the suites without encryption are never offered:
//!
//! | Suite | Authentication | Integrity | Confidentiality |
//! |---|---|---|---|
//! | 3 | RAKP-HMAC-SHA1 (1) | HMAC-SHA1-96 (1) | AES-CBC-128 (1) |
//! | 17 | RAKP-HMAC-SHA256 (3) | HMAC-SHA256-128 (4) | AES-CBC-128 (1) |

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use hmac::{Hmac, Mac};

/// A cipher suite the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// Suite 3: HMAC-SHA1 family.
    Sha1,
    /// Suite 17: HMAC-SHA256 family.
    Sha256,
}

/// Authentication algorithm numbers (Open Session payloads).
pub const AUTH_HMAC_SHA1: u8 = 1;
/// RAKP-HMAC-SHA256.
pub const AUTH_HMAC_SHA256: u8 = 3;
/// Integrity HMAC-SHA1-96.
pub const INTEGRITY_HMAC_SHA1_96: u8 = 1;
/// Integrity HMAC-SHA256-128.
pub const INTEGRITY_HMAC_SHA256_128: u8 = 4;
/// Confidentiality AES-CBC-128.
pub const CONF_AES_CBC_128: u8 = 1;

/// AES block and IV size.
const BLOCK: usize = 16;

impl Suite {
    /// Every suite offered, in the order Get Channel Cipher Suites lists them.
    pub const ALL: [Suite; 2] = [Suite::Sha1, Suite::Sha256];

    /// The suite with these algorithms, if offered.
    pub fn from_algorithms(auth: u8, integrity: u8, confidentiality: u8) -> Option<Suite> {
        Suite::ALL
            .into_iter()
            .find(|s| s.algorithms() == (auth, integrity, confidentiality))
    }

    /// The suite's number (3 or 17).
    pub fn id(self) -> u8 {
        match self {
            Suite::Sha1 => 3,
            Suite::Sha256 => 17,
        }
    }

    /// (authentication, integrity, confidentiality) algorithm numbers.
    pub fn algorithms(self) -> (u8, u8, u8) {
        match self {
            Suite::Sha1 => (AUTH_HMAC_SHA1, INTEGRITY_HMAC_SHA1_96, CONF_AES_CBC_128),
            Suite::Sha256 => (
                AUTH_HMAC_SHA256,
                INTEGRITY_HMAC_SHA256_128,
                CONF_AES_CBC_128,
            ),
        }
    }

    /// The full HMAC of `parts` under `key` (20 bytes for SHA1, 32 for SHA256): RAKP 2 and 3
    /// codes, the SIK, K1 and K2.
    pub fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match self {
            Suite::Sha1 => {
                // HMAC accepts keys of any length.
                let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
                for p in parts {
                    mac.update(p);
                }
                mac.finalize().into_bytes().to_vec()
            }
            Suite::Sha256 => {
                let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
                for p in parts {
                    mac.update(p);
                }
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    /// Length of the truncated codes: the RAKP 4 integrity check value and every packet's
    /// AuthCode (12 for HMAC-SHA1-96, 16 for HMAC-SHA256-128).
    pub fn icv_len(self) -> usize {
        match self {
            Suite::Sha1 => 12,
            Suite::Sha256 => 16,
        }
    }

    /// Length of the RAKP 2 and RAKP 3 key-exchange codes (the full HMAC).
    pub fn rakp_len(self) -> usize {
        match self {
            Suite::Sha1 => 20,
            Suite::Sha256 => 32,
        }
    }

    /// The truncated HMAC of `parts` under `key`.
    pub fn icv(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut v = self.hmac(key, parts);
        v.truncate(self.icv_len());
        v
    }
}

/// Compares two codes in time that depends only on their lengths.
pub fn codes_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The IPMI 1.5 MD5 AuthCode: MD5(password, session id, message, sequence, password), the
/// password zero-padded to 16 bytes, the numbers little-endian as on the wire.
pub fn md5_code(password: &[u8; 16], session_id: u32, message: &[u8], seq: u32) -> [u8; 16] {
    let mut c = md5::Context::new();
    c.consume(password);
    c.consume(session_id.to_le_bytes());
    c.consume(message);
    c.consume(seq.to_le_bytes());
    c.consume(password);
    c.finalize().0
}

/// The keys of an active session.
#[derive(Clone)]
pub struct SessionKeys {
    /// The suite.
    pub suite: Suite,
    /// K1: the integrity key.
    k1: Vec<u8>,
    /// The first 16 bytes of K2: the AES key.
    aes_key: [u8; BLOCK],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are never printed.
        f.debug_struct("SessionKeys")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// Derives K1 and K2 from the session integrity key: K1 = HMAC(SIK, 20 × 0x01),
    /// K2 = HMAC(SIK, 20 × 0x02).
    pub fn from_sik(suite: Suite, sik: &[u8]) -> SessionKeys {
        let k1 = suite.hmac(sik, &[&[0x01; 20]]);
        let k2 = suite.hmac(sik, &[&[0x02; 20]]);
        let mut aes_key = [0u8; BLOCK];
        aes_key.copy_from_slice(&k2[..BLOCK]);
        SessionKeys { suite, k1, aes_key }
    }

    /// The AuthCode of the bytes from the auth type through the next-header byte.
    pub fn auth_code(&self, covered: &[u8]) -> Vec<u8> {
        self.suite.icv(&self.k1, &[covered])
    }

    /// Encrypts a payload: a 16-byte IV (from `iv`), then the AES-CBC-128 ciphertext of the
    /// payload, pad bytes 1, 2, 3, … and the pad length, filling whole blocks.
    pub fn encrypt(&self, iv: [u8; BLOCK], payload: &[u8]) -> Vec<u8> {
        let pad = (BLOCK - (payload.len() + 1) % BLOCK) % BLOCK;
        let mut plain = Vec::with_capacity(payload.len() + pad + 1);
        plain.extend_from_slice(payload);
        plain.extend((1..=pad).map(|i| i as u8));
        plain.push(pad as u8);
        let len = plain.len();
        let enc = cbc::Encryptor::<aes::Aes128>::new(&self.aes_key.into(), &iv.into());
        let cipher = enc
            .encrypt_padded_mut::<NoPadding>(&mut plain, len)
            .unwrap_or_else(|_| unreachable!("the plaintext fills whole blocks"));
        let mut out = Vec::with_capacity(BLOCK + cipher.len());
        out.extend_from_slice(&iv);
        out.extend_from_slice(cipher);
        out
    }

    /// Decrypts a payload made by [`SessionKeys::encrypt`]; `None` when its length is not
    /// IV + whole blocks or its padding is malformed.
    pub fn decrypt(&self, data: &[u8]) -> Option<Vec<u8>> {
        if data.len() < 2 * BLOCK || !data.len().is_multiple_of(BLOCK) {
            return None;
        }
        let (iv, cipher) = data.split_at(BLOCK);
        let mut iv_arr = [0u8; BLOCK];
        iv_arr.copy_from_slice(iv);
        let mut buf = cipher.to_vec();
        let dec = cbc::Decryptor::<aes::Aes128>::new(&self.aes_key.into(), &iv_arr.into());
        let plain = dec.decrypt_padded_mut::<NoPadding>(&mut buf).ok()?;
        let (&pad, rest) = plain.split_last()?;
        let pad = usize::from(pad);
        if pad >= BLOCK || pad > rest.len() {
            return None;
        }
        let (payload, pad_bytes) = rest.split_at(rest.len() - pad);
        if pad_bytes
            .iter()
            .enumerate()
            .any(|(i, &b)| b != (i + 1) as u8)
        {
            return None;
        }
        Some(payload.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_are_found_by_their_algorithms_and_nothing_else() {
        assert_eq!(Suite::from_algorithms(1, 1, 1), Some(Suite::Sha1));
        assert_eq!(Suite::from_algorithms(3, 4, 1), Some(Suite::Sha256));
        assert_eq!(Suite::from_algorithms(0, 0, 0), None);
        assert_eq!(Suite::from_algorithms(1, 1, 0), None);
        assert_eq!(Suite::from_algorithms(3, 4, 0), None);
    }

    #[test]
    fn hmac_sha1_matches_rfc_2202_case_2() {
        let mac = Suite::Sha1.hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            mac,
            [
                0xef, 0xfc, 0xdf, 0x6a, 0xe5, 0xeb, 0x2f, 0xa2, 0xd2, 0x74, 0x16, 0xd5, 0xf1, 0x84,
                0xdf, 0x9c, 0x25, 0x9a, 0x7c, 0x79
            ]
        );
        assert_eq!(
            Suite::Sha1.icv(b"Jefe", &[b"what do ya want for nothing?"]),
            mac[..12]
        );
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_2() {
        let mac = Suite::Sha256.hmac(b"Jefe", &[b"what do ya want for nothing?"]);
        assert_eq!(mac[..8], [0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e]);
        assert_eq!(mac.len(), 32);
    }

    #[test]
    fn encryption_round_trips_every_length_and_pads_as_ipmi_says() {
        let keys = SessionKeys::from_sik(Suite::Sha1, &[7; 20]);
        for len in 0..40 {
            let payload: Vec<u8> = (0..len as u8).collect();
            let enc = keys.encrypt([9; 16], &payload);
            assert_eq!(enc.len() % 16, 0);
            assert_eq!(enc[..16], [9; 16]);
            assert_eq!(keys.decrypt(&enc).as_deref(), Some(&payload[..]));
        }
        // Another key does not decrypt to the payload.
        let other = SessionKeys::from_sik(Suite::Sha1, &[8; 20]);
        let enc = keys.encrypt([1; 16], b"hello");
        assert_ne!(other.decrypt(&enc).as_deref(), Some(&b"hello"[..]));
        // Truncated or unaligned input is refused, not a panic.
        assert!(keys.decrypt(&enc[..20]).is_none());
        assert!(keys.decrypt(&enc[..16]).is_none());
    }

    #[test]
    fn the_md5_code_covers_password_session_message_sequence_password() {
        let mut key = [0u8; 16];
        key[..2].copy_from_slice(b"pw");
        let mut whole = key.to_vec();
        whole.extend_from_slice(&[4, 3, 2, 1]);
        whole.extend_from_slice(b"msg");
        whole.extend_from_slice(&[9, 0, 0, 0]);
        whole.extend_from_slice(&key);
        assert_eq!(
            md5_code(&key, 0x0102_0304, b"msg", 9),
            md5::compute(&whole).0
        );
        assert_ne!(
            md5_code(&key, 0x0102_0304, b"msg", 10),
            md5::compute(&whole).0
        );
    }

    #[test]
    fn codes_compare_by_content_and_length() {
        assert!(codes_equal(b"abc", b"abc"));
        assert!(!codes_equal(b"abc", b"abd"));
        assert!(!codes_equal(b"abc", b"ab"));
    }
}
