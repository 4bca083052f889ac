//! The secret of one key epoch: what the key file holds and what online rekeying replicates.
//! Reading and writing the file is the shell's (`ais::keyfile`); the core only carries it.

use std::fmt;

/// The first 8 bytes of a key file in this project's format.
pub const MAGIC: &[u8; 8] = b"OAISKEY1";

/// Bytes before the secret in this project's format: the magic and the epoch.
pub const HEADER_LEN: usize = MAGIC.len() + 4;

/// Smallest accepted secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Largest accepted secret, in bytes (the size limit of corosync's `authkey`).
pub const MAX_SECRET_LEN: usize = 4096;

/// Size of the secrets `ais-keygen` and online rekeying generate, in bytes (256 bits).
pub const GENERATED_SECRET_LEN: usize = 32;

/// The secret of one key epoch as stored on disk. `Debug` shows the epoch and the secret's
/// length, never the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    /// The key epoch: 0 for a key made by `ais-keygen` or a legacy key, one more at every
    /// online rekey.
    pub epoch: u32,
    /// The secret, [`MIN_SECRET_LEN`]..=[`MAX_SECRET_LEN`] bytes.
    pub secret: Vec<u8>,
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("epoch", &self.epoch)
            .field(
                "secret",
                &format_args!("<{} bytes, not shown>", self.secret.len()),
            )
            .finish()
    }
}

impl KeyMaterial {
    /// The file content in this project's format: magic, big-endian epoch, secret.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER_LEN + self.secret.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.epoch.to_be_bytes());
        bytes.extend_from_slice(&self.secret);
        bytes
    }

    /// Decodes a key file's content in either format (a legacy raw key is epoch 0); `None`
    /// if its length is not allowed.
    pub fn from_bytes(bytes: &[u8]) -> Option<KeyMaterial> {
        let secret_ok = |len: usize| (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&len);
        if let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) {
            let (epoch, secret) = rest.split_first_chunk::<4>()?;
            return secret_ok(secret.len()).then(|| KeyMaterial {
                epoch: u32::from_be_bytes(*epoch),
                secret: secret.to_vec(),
            });
        }
        secret_ok(bytes.len()).then(|| KeyMaterial {
            epoch: 0,
            secret: bytes.to_vec(),
        })
    }
}
