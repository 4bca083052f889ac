//! The cluster key file: the shared secret from which every node derives the keys that
//! authenticate (and, with `crypto_cipher = "aes256"`, encrypt) Totem frames. It plays the part
//! of the original openais `/etc/ais/authkey`; `ais-keygen` creates it and every node needs a
//! byte-identical copy.
//!
//! Two formats are read:
//!
//! - **ours**: the 8-byte magic [`MAGIC`] (`OAISKEY1`), the key epoch as a big-endian `u32`,
//!   then the secret ([`MIN_SECRET_LEN`]..=[`MAX_SECRET_LEN`] bytes). [`write()`] always writes
//!   this format. The epoch grows by one at every online rekey.
//! - **legacy**: a raw key of [`MIN_SECRET_LEN`]..=[`MAX_SECRET_LEN`] bytes that does not start
//!   with the magic (an openais or corosync `authkey`), read as epoch 0 with the whole content as
//!   the secret.
//!
//! The file must not be accessible by group or others: [`read`] refuses any mode with bits in
//! `0o077`. [`write()`] replaces the file atomically (temporary file created with mode 0400 in the
//! same directory, synced, renamed, directory synced), so a crash leaves the old or the new key,
//! never a torn one. Every error names the file and says what to do.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use ais_core::key::{
    GENERATED_SECRET_LEN, HEADER_LEN, KeyMaterial, MAGIC, MAX_SECRET_LEN, MIN_SECRET_LEN,
};

/// Where the key file is when the configuration does not say (`totem.keyfile`).
pub const DEFAULT_KEYFILE: &str = "/etc/openais/authkey";

/// The mode [`write()`] gives the key file: read-only for its owner.
pub const KEYFILE_MODE: u32 = 0o400;

/// The mode of a parent directory [`write()`] creates.
const DIR_MODE: u32 = 0o755;

/// What can go wrong reading, writing or generating a key file. Every message names the file
/// (except [`KeyFileError::Random`], which has none) and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The key file does not exist.
    #[error(
        "{}: no key file; create one with `ais-keygen --keyfile {}` and copy it to every node",
        path.display(), path.display()
    )]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The key file can be read or written by group or others.
    #[error(
        "{} is accessible by group/others (mode {mode:04o}); run `chmod 0400 {}`",
        path.display(), path.display()
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits (`st_mode & 0o7777`).
        mode: u32,
    },
    /// The key file's size fits neither format.
    #[error(
        "{}: not a key file: {len} bytes; a key file holds a raw key of {MIN_SECRET_LEN}..={MAX_SECRET_LEN} \
         bytes, or the {HEADER_LEN}-byte OAISKEY1 header and a secret of {MIN_SECRET_LEN}..={MAX_SECRET_LEN} \
         bytes; copy the key file from a running node, or create a new one for the whole cluster with \
         `ais-keygen --keyfile {} --force`",
        path.display(), path.display()
    )]
    Length {
        /// The file.
        path: PathBuf,
        /// Its size in bytes (at most one more than the largest allowed size: reading stops
        /// there).
        len: u64,
    },
    /// The key file exists but cannot be read.
    #[error(
        "{}: cannot read the key file: {error}; it must be a regular file readable by the user running aisexec (root)",
        path.display()
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error (part of the message, so not a `source`).
        error: io::Error,
    },
    /// [`write()`] without `replace` found the file already there.
    #[error(
        "{} exists; pass --force to replace it (every node needs the same key)",
        path.display()
    )]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// [`write()`] was given a secret of a size the format does not allow.
    #[error(
        "{}: refusing to write a secret of {len} bytes; it must be {MIN_SECRET_LEN}..={MAX_SECRET_LEN} bytes",
        path.display()
    )]
    SecretLength {
        /// The file.
        path: PathBuf,
        /// The secret's size in bytes.
        len: usize,
    },
    /// The key file, its temporary file or its directory could not be created, written,
    /// synced or renamed.
    #[error(
        "{}: cannot write the key file: {error}; check that its directory is writable (run as root)",
        path.display()
    )]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's error (part of the message, so not a `source`).
        error: io::Error,
    },
    /// The operating system's random number generator failed.
    #[error(
        "cannot get random bytes from the operating system: {error}; check that the kernel's random source (getrandom(2), /dev/urandom) is available"
    )]
    Random {
        /// The error of `getrandom`.
        error: getrandom::Error,
    },
}

/// Reads the key file at `path`, in either format (see the module documentation).
///
/// # Errors
/// [`KeyFileError::Missing`] if there is no file, [`KeyFileError::Permissions`] if any group or
/// other permission bit is set, [`KeyFileError::Read`] if it cannot be read,
/// [`KeyFileError::Length`] if its size fits neither format.
pub fn read(path: &Path) -> Result<KeyMaterial, KeyFileError> {
    let read_error = |error: io::Error| match error.kind() {
        io::ErrorKind::NotFound => KeyFileError::Missing {
            path: path.to_owned(),
        },
        _ => KeyFileError::Read {
            path: path.to_owned(),
            error,
        },
    };
    let metadata = fs::metadata(path).map_err(read_error)?;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let file = fs::File::open(path).map_err(read_error)?;
    // Read one byte more than the largest file, so a huge file is not read whole.
    let limit = (HEADER_LEN + MAX_SECRET_LEN + 1) as u64;
    let mut bytes = Vec::new();
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    KeyMaterial::from_bytes(&bytes).ok_or_else(|| KeyFileError::Length {
        path: path.to_owned(),
        len: bytes.len() as u64,
    })
}

/// Writes `key` to `path` in this project's format, atomically: a temporary file in the same
/// directory, created with mode 0400, is written, synced and renamed over `path`, then the
/// directory is synced. A missing parent directory is created (mode 0755).
///
/// # Errors
/// [`KeyFileError::Exists`] if `path` exists and `replace` is false (checked atomically: the
/// new file is linked into place only if the name is free), [`KeyFileError::SecretLength`] if
/// the secret's size is not allowed, [`KeyFileError::Write`] for an I/O error (no temporary
/// file is left behind, and an existing key file is unchanged).
pub fn write(path: &Path, key: &KeyMaterial, replace: bool) -> Result<(), KeyFileError> {
    if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&key.secret.len()) {
        return Err(KeyFileError::SecretLength {
            path: path.to_owned(),
            len: key.secret.len(),
        });
    }
    let exists = || KeyFileError::Exists {
        path: path.to_owned(),
    };
    let write_error = |error: io::Error| KeyFileError::Write {
        path: path.to_owned(),
        error,
    };
    if !replace && fs::symlink_metadata(path).is_ok() {
        return Err(exists());
    }
    let Some(name) = path.file_name() else {
        return Err(write_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path does not name a file",
        )));
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(write_error)?;
    }

    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_temporary(&tmp, &key.to_bytes()).and_then(|()| {
        if replace {
            fs::rename(&tmp, path)
        } else {
            // Linking fails if the name was taken since the check above; then the temporary
            // file is removed below.
            fs::hard_link(&tmp, path)
        }
    });
    // After a rename the temporary name is gone already; otherwise remove it.
    let _ = fs::remove_file(&tmp);
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !replace => return Err(exists()),
        Err(e) => return Err(write_error(e)),
    }
    // Make the new directory entry durable.
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_error)
}

/// Creates `tmp` with mode 0400 (never wider, whatever the umask), writes `bytes` and syncs.
fn write_temporary(tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(KEYFILE_MODE)
        .open(tmp)?;
    // The umask can only have narrowed the mode; make it exactly 0400.
    file.set_permissions(fs::Permissions::from_mode(KEYFILE_MODE))?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// A fresh random secret of [`GENERATED_SECRET_LEN`] (32) bytes from the operating system.
///
/// # Errors
/// [`KeyFileError::Random`] if the operating system's generator fails.
pub fn generate() -> Result<Vec<u8>, KeyFileError> {
    let mut secret = vec![0; GENERATED_SECRET_LEN];
    getrandom::fill(&mut secret).map_err(|error| KeyFileError::Random { error })?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("keyfile-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
        fs::write(path, bytes).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn key(epoch: u32, fill: u8, len: usize) -> KeyMaterial {
        KeyMaterial {
            epoch,
            secret: vec![fill; len],
        }
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let shown = format!("{:?}", key(3, 0xab, 32));
        assert_eq!(
            shown,
            "KeyMaterial { epoch: 3, secret: <32 bytes, not shown> }"
        );
    }

    #[test]
    fn bytes_round_trip_and_sizes_are_checked() {
        for k in [key(0, 1, 32), key(7, 2, 4096), key(u32::MAX, 3, 100)] {
            let bytes = k.to_bytes();
            assert_eq!(&bytes[..8], b"OAISKEY1");
            assert_eq!(bytes.len(), HEADER_LEN + k.secret.len());
            assert_eq!(KeyMaterial::from_bytes(&bytes), Some(k));
        }
        assert_eq!(KeyMaterial::from_bytes(&key(0, 1, 31).to_bytes()), None);
        assert_eq!(KeyMaterial::from_bytes(&key(0, 1, 4097).to_bytes()), None);
        assert_eq!(KeyMaterial::from_bytes(b"OAISKEY1\0\0"), None);
        // Legacy raw keys.
        assert_eq!(KeyMaterial::from_bytes(&[9; 32]), Some(key(0, 9, 32)));
        assert_eq!(KeyMaterial::from_bytes(&[9; 4096]), Some(key(0, 9, 4096)));
        assert_eq!(KeyMaterial::from_bytes(&[9; 31]), None);
        assert_eq!(KeyMaterial::from_bytes(&[9; 4097]), None);
        assert_eq!(KeyMaterial::from_bytes(&[]), None);
    }

    #[test]
    fn write_then_read_with_mode_0400_and_no_leftovers() {
        let dir = temp_dir("roundtrip");
        let path = dir.join("sub/authkey");
        let k = key(5, 0x5a, 64);
        write(&path, &k, false).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o400);
        assert_eq!(
            fs::metadata(dir.join("sub")).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert_eq!(read(&path).unwrap(), k);
        let names: Vec<_> = fs::read_dir(dir.join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["authkey"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn write_refuses_to_replace_unless_asked() {
        let dir = temp_dir("replace");
        let path = dir.join("authkey");
        write(&path, &key(0, 1, 32), false).unwrap();
        let e = write(&path, &key(1, 2, 32), false).unwrap_err();
        assert!(matches!(e, KeyFileError::Exists { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "{} exists; pass --force to replace it (every node needs the same key)",
                path.display()
            )
        );
        assert_eq!(read(&path).unwrap(), key(0, 1, 32));
        write(&path, &key(1, 2, 32), true).unwrap();
        assert_eq!(read(&path).unwrap(), key(1, 2, 32));
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn write_refuses_a_bad_secret_size() {
        let dir = temp_dir("badsize");
        let path = dir.join("authkey");
        let e = write(&path, &key(0, 1, 16), true).unwrap_err();
        assert!(
            matches!(e, KeyFileError::SecretLength { len: 16, .. }),
            "{e}"
        );
        assert!(!path.exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn read_errors_name_the_file_and_the_remedy() {
        let dir = temp_dir("errors");
        let path = dir.join("authkey");
        let p = path.display();

        let e = read(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{p}: no key file; create one with `ais-keygen --keyfile {p}` and copy it to every node"
            )
        );

        write_mode(&path, &[7; 32], 0o644);
        let e = read(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{p} is accessible by group/others (mode 0644); run `chmod 0400 {p}`")
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o604)).unwrap();
        assert!(matches!(
            read(&path),
            Err(KeyFileError::Permissions { mode: 0o604, .. })
        ));

        fs::remove_file(&path).unwrap();
        write_mode(&path, &[7; 20], 0o600);
        let e = read(&path).unwrap_err();
        assert!(matches!(e, KeyFileError::Length { len: 20, .. }), "{e}");
        let shown = e.to_string();
        assert!(shown.starts_with(&format!("{p}: ")), "{shown}");
        assert!(shown.contains("32..=4096 bytes"), "{shown}");

        // A directory in its place: the I/O error, with the path.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
        let e = read(&path).unwrap_err();
        assert!(matches!(e, KeyFileError::Read { .. }), "{e}");
        assert!(
            e.to_string().starts_with(&format!("{p}: cannot read")),
            "{e}"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_legacy_key_reads_as_epoch_zero() {
        let dir = temp_dir("legacy");
        let path = dir.join("authkey");
        let raw: Vec<u8> = (0..128u8).collect();
        write_mode(&path, &raw, 0o400);
        assert_eq!(
            read(&path).unwrap(),
            KeyMaterial {
                epoch: 0,
                secret: raw
            }
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn generated_secrets_are_32_bytes_and_differ() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
