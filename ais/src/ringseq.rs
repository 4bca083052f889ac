//! The persisted ring sequence number: the file through which Totem ring ids never repeat
//! across restarts of `aisexec`.
//!
//! The Totem core reports every ring sequence number it is about to use
//! (`totem_dpdk::srp::Event::RingSeq`); the executive stores it here, on its own thread (never
//! on the Totem thread: corosync once stalled its ring for seconds writing this file), and
//! passes [`RingSeqFile::load`]'s value as `srp::Config::ring_seq` at the next start.
//!
//! The file holds one decimal number and a newline. A store writes a temporary file, syncs it,
//! and renames it over the old one, so a crash mid-write leaves either the old or the new
//! value, never a torn one. Values only grow: storing a smaller value than the one on disk is
//! a no-op.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// What can go wrong with the ring sequence file.
#[derive(Debug, thiserror::Error)]
pub enum RingSeqError {
    /// The file could not be read, written, synced or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file exists but does not hold a number.
    #[error("{path}: not a ring sequence number: {content:?}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it holds (at most 64 characters).
        content: String,
    },
}

/// The ring sequence file in a state directory.
#[derive(Debug, Clone)]
pub struct RingSeqFile {
    path: PathBuf,
    /// The highest value known to be on disk.
    stored: u64,
}

impl RingSeqFile {
    /// The file name inside the state directory.
    pub const FILE_NAME: &'static str = "ringseq";

    /// Opens (without creating) the file in `state_dir` and reads its value: 0 when the file
    /// does not exist yet (first start).
    ///
    /// # Errors
    /// [`RingSeqError::Corrupt`] when the file holds anything but a number (the executive must
    /// not guess: a too small value could repeat a ring id), or an I/O error.
    pub fn open(state_dir: &Path) -> Result<RingSeqFile, RingSeqError> {
        Self::open_named(state_dir, Self::FILE_NAME)
    }

    /// As [`RingSeqFile::open`] for another counter file of the state directory with the same
    /// rules (one number, only grows, atomic replace); `aisexec` keeps its message-number
    /// lease in `msgno` this way.
    ///
    /// # Errors
    /// As [`RingSeqFile::open`].
    pub fn open_named(state_dir: &Path, name: &str) -> Result<RingSeqFile, RingSeqError> {
        let path = state_dir.join(name);
        let stored = match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map_err(|_| RingSeqError::Corrupt {
                content: text.chars().take(64).collect(),
                path: path.clone(),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(source) => return Err(RingSeqError::Io { path, source }),
        };
        Ok(RingSeqFile { path, stored })
    }

    /// The highest ring sequence number stored: pass it as `srp::Config::ring_seq`.
    pub fn load(&self) -> u64 {
        self.stored
    }

    /// Stores `seq` durably if it is higher than the stored value.
    ///
    /// # Errors
    /// An I/O error writing, syncing or renaming (the stored value is then unchanged).
    pub fn store(&mut self, seq: u64) -> Result<(), RingSeqError> {
        if seq <= self.stored {
            return Ok(());
        }
        let tmp = self.path.with_extension("tmp");
        let io = |source| RingSeqError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = fs::File::create(&tmp).map_err(io)?;
        writeln!(file, "{seq}").map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent()
            && let Ok(dir) = fs::File::open(dir)
        {
            // Make the rename itself durable; a failure here only weakens durability.
            let _ = dir.sync_all();
        }
        self.stored = seq;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ringseq-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn first_start_reads_zero_and_values_survive_a_reopen() {
        let dir = temp_dir("reopen");
        let mut f = RingSeqFile::open(&dir).unwrap();
        assert_eq!(f.load(), 0);
        f.store(12).unwrap();
        f.store(8).unwrap(); // never goes back
        assert_eq!(RingSeqFile::open(&dir).unwrap().load(), 12);
        assert_eq!(fs::read_to_string(dir.join("ringseq")).unwrap(), "12\n");
        assert!(!dir.join("ringseq.tmp").exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = temp_dir("corrupt");
        fs::write(dir.join("ringseq"), "twelve\n").unwrap();
        let err = RingSeqFile::open(&dir).unwrap_err().to_string();
        assert!(err.contains("ringseq") && err.contains("twelve"), "{err}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unwritable_directory_is_an_error_and_keeps_the_value() {
        let dir = temp_dir("gone");
        let mut f = RingSeqFile::open(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert!(f.store(4).is_err());
        assert_eq!(f.load(), 0);
    }
}
