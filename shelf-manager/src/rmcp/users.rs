//! The users who may open RMCP+ sessions, from a TOML file readable by its owner only.
//!
//! RAKP needs each user's plaintext password (it keys the HMACs with it), so the file holds
//! them in clear and [`Users::load`] refuses a file whose mode lets anyone but its owner read
//! or write it. Passwords are never logged: [`User`]'s `Debug` leaves them out.
//!
//! ```toml
//! [[user]]
//! name = "admin"
//! password = "change-me"
//! privilege = "administrator"   # callback | user | operator | administrator
//! ipmi15 = false                # also IPMI 1.5 sessions (MD5, unencrypted); default false
//! ```

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::model::{Located, parse_located};

/// IPMI privilege levels, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Privilege {
    /// Callback (1).
    Callback,
    /// User (2): reads.
    User,
    /// Operator (3): changes FRU states and policies.
    Operator,
    /// Administrator (4): everything, including other users' sessions.
    Administrator,
}

impl Privilege {
    /// The level from its code (1–4); 5 (OEM) and others are `None`.
    pub fn from_code(code: u8) -> Option<Privilege> {
        match code {
            1 => Some(Privilege::Callback),
            2 => Some(Privilege::User),
            3 => Some(Privilege::Operator),
            4 => Some(Privilege::Administrator),
            _ => None,
        }
    }

    /// The code (1–4).
    pub fn code(self) -> u8 {
        match self {
            Privilege::Callback => 1,
            Privilege::User => 2,
            Privilege::Operator => 3,
            Privilege::Administrator => 4,
        }
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Privilege::Callback => "callback",
            Privilege::User => "user",
            Privilege::Operator => "operator",
            Privilege::Administrator => "administrator",
        })
    }
}

/// One user.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name, 1–16 bytes.
    pub name: String,
    /// Password, up to 20 bytes (IPMI 2.0's limit); the RAKP key Kuid.
    pub password: String,
    /// The highest privilege the user may hold.
    pub privilege: Privilege,
    /// May also open IPMI 1.5 sessions (MD5 authentication, no encryption: the weaker path,
    /// for clients such as OpenHPI's ipmidirect that speak nothing else). Default off; the
    /// password then has at most 16 bytes.
    #[serde(default)]
    pub ipmi15: bool,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("privilege", &self.privilege)
            .field("ipmi15", &self.ipmi15)
            .finish_non_exhaustive()
    }
}

/// The users file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    /// The users, in file order.
    #[serde(default)]
    pub user: Vec<User>,
}

/// Why the users file was refused.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Group or others may read or write it.
    #[error(
        "{path}: mode {mode:04o} lets users other than the owner read or change the passwords; \
         run `chmod 600 {path}`"
    )]
    Exposed {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The text is wrong.
    #[error("{0}")]
    Invalid(Located),
}

impl Users {
    /// Parses a users file's text; `origin` names it in errors.
    ///
    /// # Errors
    /// A located error for bad TOML, unknown keys, an empty or long name, a long password, a
    /// duplicate name.
    pub fn from_str(text: &str, origin: &str) -> Result<Users, Located> {
        parse_located(text, origin, |users: &Users| {
            for (i, u) in users.user.iter().enumerate() {
                if u.name.is_empty() || u.name.len() > 16 {
                    return Err((
                        format!("user[{i}].name"),
                        "a user name has 1 to 16 bytes".into(),
                    ));
                }
                if u.password.len() > 20 {
                    return Err((
                        format!("user[{i}].password"),
                        "a password has at most 20 bytes (IPMI 2.0)".into(),
                    ));
                }
                if u.ipmi15 && u.password.len() > 16 {
                    return Err((
                        format!("user[{i}].password"),
                        "an IPMI 1.5 (ipmi15 = true) password has at most 16 bytes".into(),
                    ));
                }
                if users.user[..i].iter().any(|o| o.name == u.name) {
                    return Err((
                        format!("user[{i}].name"),
                        format!("user {:?} is defined twice", u.name),
                    ));
                }
            }
            Ok(())
        })
    }

    /// Reads and parses the file at `path`, refusing it unless only its owner may read and
    /// write it (mode bits 0o077 clear).
    ///
    /// # Errors
    /// [`UsersError::Io`], [`UsersError::Exposed`], [`UsersError::Invalid`].
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let shown = path.display().to_string();
        let io = |source| UsersError::Io {
            path: shown.clone(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        let mode = file_mode(&meta);
        if mode & 0o077 != 0 {
            return Err(UsersError::Exposed {
                path: shown,
                mode: mode & 0o7777,
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Users::from_str(&text, &shown).map_err(UsersError::Invalid)
    }

    /// The user called `name`.
    pub fn find(&self, name: &[u8]) -> Option<&User> {
        self.user.iter().find(|u| u.name.as_bytes() == name)
    }
}

#[cfg(unix)]
fn file_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode()
}

#[cfg(not(unix))]
fn file_mode(_meta: &std::fs::Metadata) -> u32 {
    0o600
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[user]]
name = "admin"
password = "secret-password"
privilege = "administrator"

[[user]]
name = "viewer"
password = "viewer-pass"
privilege = "user"
"#;

    #[test]
    fn parses_users_and_hides_passwords_in_debug() {
        let users = Users::from_str(GOOD, "users.toml").unwrap();
        assert_eq!(users.user.len(), 2);
        assert_eq!(users.find(b"viewer").unwrap().privilege, Privilege::User);
        assert!(users.find(b"nobody").is_none());
        let shown = format!("{users:?}");
        assert!(
            shown.contains("admin") && !shown.contains("secret-password"),
            "{shown}"
        );
    }

    #[test]
    fn errors_are_located() {
        let dup =
            format!("{GOOD}\n[[user]]\nname = \"admin\"\npassword = \"x\"\nprivilege = \"user\"\n");
        let e = Users::from_str(&dup, "users.toml").unwrap_err().to_string();
        assert!(e.starts_with("users.toml:13:1: user[2].name: "), "{e}");
        let long = GOOD.replace("viewer-pass", "123456789012345678901");
        let e = Users::from_str(&long, "u.toml").unwrap_err().to_string();
        assert!(
            e.contains("u.toml:9:1:") && e.contains("user[1].password"),
            "{e}"
        );
        let legacy = GOOD.replace("viewer-pass\"", "12345678901234567\"\nipmi15 = true");
        let e = Users::from_str(&legacy, "u.toml").unwrap_err().to_string();
        assert!(e.contains("user[1].password: an IPMI 1.5"), "{e}");
        let bad = GOOD.replace("\"user\"", "\"root\"");
        let e = Users::from_str(&bad, "u.toml").unwrap_err().to_string();
        assert!(e.starts_with("u.toml:10:"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_read_is_refused_and_an_owner_only_one_loads() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("shelf-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users.toml");
        std::fs::write(&path, GOOD).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Users::load(&path).unwrap_err();
        assert!(matches!(e, UsersError::Exposed { mode: 0o644, .. }), "{e}");
        assert!(e.to_string().contains("chmod 600"));
        assert!(!e.to_string().contains("secret"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            Users::load(&path),
            Err(UsersError::Exposed { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Users::load(&path).unwrap().user.len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
