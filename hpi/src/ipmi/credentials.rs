//! The shelf manager's user name and password, read from a file only its owner can read.
//!
//! File format, one `key = value` per line, `#` comments:
//! ```text
//! user = admin
//! password = s3cret
//! ```
//! A file that group or others may read (or write) is refused. The password is never
//! printed: `Debug` shows `<redacted>`.

use std::path::{Path, PathBuf};

/// User name and password for the RMCP+ session.
#[derive(Clone)]
pub struct Credentials {
    user: String,
    password: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why a credentials file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Error.
        source: std::io::Error,
    },
    /// Group or others have access.
    #[error("{path}: mode {mode:03o} lets group or others access the shelf password; chmod 600 it")]
    Permissions {
        /// File.
        path: PathBuf,
        /// Permission bits.
        mode: u32,
    },
    /// A line is not `user = ...` or `password = ...`.
    #[error("{path}:{line}: {detail}")]
    Syntax {
        /// File.
        path: PathBuf,
        /// Line number (1-based).
        line: usize,
        /// What is wrong (never the password).
        detail: String,
    },
}

impl Credentials {
    /// Credentials from values (tests, tools that prompt).
    pub fn new(user: impl Into<String>, password: impl Into<Vec<u8>>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
        }
    }

    /// User name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Password bytes.
    pub fn password(&self) -> &[u8] {
        &self.password
    }

    /// Reads `path`; refuses a file with any group or other permission bit.
    ///
    /// # Errors
    /// [`CredentialsError`].
    pub fn from_file(path: &Path) -> Result<Self, CredentialsError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |source| CredentialsError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CredentialsError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let mut user = None;
        let mut password = None;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = |detail: &str| CredentialsError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
                detail: detail.into(),
            };
            let Some((k, v)) = line.split_once('=') else {
                return Err(syntax("expected `user = NAME` or `password = SECRET`"));
            };
            match k.trim() {
                "user" => user = Some(v.trim().to_string()),
                "password" => password = Some(v.trim().as_bytes().to_vec()),
                other => return Err(syntax(&format!("unknown key `{other}`"))),
            }
        }
        let missing = |what: &str| CredentialsError::Syntax {
            path: path.to_path_buf(),
            line: text.lines().count(),
            detail: format!("no `{what}` line"),
        };
        Ok(Self {
            user: user.ok_or_else(|| missing("user"))?,
            password: password.ok_or_else(|| missing("password"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(mode: u32, text: &str) -> (tempdir::Dir, PathBuf) {
        let d = tempdir::Dir::new();
        let p = d.0.join("shelf.cred");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        (d, p)
    }

    mod tempdir {
        pub(super) struct Dir(pub(super) std::path::PathBuf);
        impl Dir {
            pub(super) fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "hpi-cred-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Self(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn owner_only_file_is_read_and_password_never_printed() {
        let (_d, p) = write(0o600, "# shelf\nuser = admin\npassword = s3cret\n");
        let c = Credentials::from_file(&p).unwrap();
        assert_eq!(c.user(), "admin");
        assert_eq!(c.password(), b"s3cret");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
    }

    #[test]
    fn world_or_group_readable_file_is_refused() {
        for mode in [0o644, 0o640, 0o604, 0o660] {
            let (_d, p) = write(mode, "user = admin\npassword = s3cret\n");
            let e = Credentials::from_file(&p).unwrap_err();
            assert!(
                matches!(e, CredentialsError::Permissions { .. }),
                "{mode:o}: {e}"
            );
            assert!(!e.to_string().contains("s3cret"));
        }
    }

    #[test]
    fn syntax_errors_name_the_line_not_the_secret() {
        let (_d, p) = write(0o600, "user = admin\ns3cret\n");
        let e = Credentials::from_file(&p).unwrap_err().to_string();
        assert!(e.contains(":2:"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        let (_d, p) = write(0o600, "user = admin\n");
        assert!(
            Credentials::from_file(&p)
                .unwrap_err()
                .to_string()
                .contains("no `password` line")
        );
    }
}
