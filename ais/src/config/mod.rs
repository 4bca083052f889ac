//! The configuration file of `aisexec`: TOML whose `[totem]` table uses corosync's key names.
//!
//! Reading a file has two steps. [`Config::parse`] checks the syntax and the types (a
//! misspelt key is an error: every table denies unknown fields); [`Config::validate`] checks
//! the meaning (timers consistent, addresses of the right kind, the member list complete).
//! [`Config::from_str`] and [`Config::from_file`] do both. Every error names the file, the line
//! and column, and the key (see [`ConfigError`]). The conversions
//! [`Config::totem_config`], [`Config::udp_config`] and [`Config::members`] produce the
//! settings of the Totem core and of the kernel UDP transport; [`Config::protection`] says how
//! frames are protected (`secauth`, `crypto_cipher`) and `totem.keyfile` where the cluster key
//! is (read with [`crate::keyfile::read`]).
//!
//! `docs/configuration.md` describes every key; `configs/` holds examples, all parsed by a test.
//!
//! The code: `schema` holds the serde structs of every table and their defaults, `validate`
//! the checks of [`Config::validate`], `lower` the conversions to the settings of the Totem
//! core and the transport; `positions` finds where each key is in the text. Parsing and the
//! errors are here. [`amf`] reads the AMF model file that `[amf] model` names.

pub mod amf;
mod lower;
mod positions;
mod schema;
mod validate;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use positions::{Positions, key_at, position_of};
pub use schema::{
    Aisexec, Amf, Config, CryptoCipher, Dpdk, FrameProtection, Hpi, Interface, IpcTransport,
    Logging, Node, Nodelist, RrpInterface, RrpModeKey, Totem, TransportKind,
};

/// The environment variable naming the configuration file when no path is given explicitly
/// (the name the original openais executive reads).
pub const CONFIG_FILE_ENV: &str = "OPENAIS_MAIN_CONFIG_FILE";

/// The configuration file used when neither an explicit path nor [`CONFIG_FILE_ENV`] is given.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/openais/aisexec.toml";

/// Smallest accepted `totem.netmtu` (the IPv4 minimum reassembly size).
pub const MIN_NETMTU: u32 = 576;
/// Largest accepted `totem.netmtu` (jumbo frames).
pub const MAX_NETMTU: u32 = 9216;
/// Largest accepted timer value, in milliseconds (10 minutes).
pub const MAX_TIMER_MS: u64 = 600_000;
/// Largest accepted `totem.max_message_size` (1 GiB).
pub const MAX_MESSAGE_SIZE_LIMIT: u64 = 1 << 30;
/// The Totem thread's nice value when `aisexec.totem_nice` is not set: well ahead of the
/// machine's normal-priority work (a nice-0 thread competing with it for a core gets about a
/// tenth of it), and not the lowest, so an administrator can still put something ahead.
pub const DEFAULT_TOTEM_NICE: i32 = -10;

/// The text a [`Config`] came from: its name and where each key is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Source {
    origin: String,
    positions: Positions,
}

/// What is wrong with a configuration, and where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the configuration file", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The text is not valid TOML, or a key is unknown, missing or of the wrong type.
    #[error("{0}")]
    Syntax(Located),
    /// The values are inconsistent or unsupported.
    #[error("{0}")]
    Invalid(Located),
}

impl ConfigError {
    /// Where the problem is, for [`ConfigError::Syntax`] and [`ConfigError::Invalid`].
    pub fn location(&self) -> Option<&Located> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Syntax(l) | ConfigError::Invalid(l) => Some(l),
        }
    }
}

/// A problem at a place in a configuration text. Displayed as
/// `origin:line:column: key: message`, leaving out what is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The file name (or other origin) given to the parser.
    pub origin: String,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// 1-based column (in characters), when known.
    pub column: Option<u32>,
    /// The key path, such as `totem.consensus` or `nodelist.node[1].nodeid`, when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl Config {
    /// Reads, parses and validates the file at `path`; errors name it as given.
    ///
    /// # Errors
    /// [`ConfigError::Read`] if the file cannot be read, otherwise as [`Config::from_str`].
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_str(&text, &path.display().to_string())
    }

    /// Parses and validates `text`; `origin` names it in errors (usually the file name).
    ///
    /// # Errors
    /// The first problem found: [`ConfigError::Syntax`] from [`Config::parse`], then
    /// [`ConfigError::Invalid`] from [`Config::validate`].
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config = Config::parse(text, origin)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses `text` without checking the values' meaning (see [`Config::validate`]).
    ///
    /// # Errors
    /// [`ConfigError::Syntax`]: invalid TOML, an unknown key, a missing required key or a value
    /// of the wrong type, with its line, column and key path.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text)
            .map_err(|e| ConfigError::Syntax(locate_toml_error(text, origin, &e)))?;
        config.source = Source {
            origin: origin.to_owned(),
            positions: Positions::scan(text),
        };
        Ok(config)
    }

    /// The file to read: `explicit` if given, else the file named by the environment variable
    /// [`CONFIG_FILE_ENV`] (`OPENAIS_MAIN_CONFIG_FILE`) if set and not empty, else
    /// [`DEFAULT_CONFIG_FILE`].
    pub fn locate(explicit: Option<&Path>) -> PathBuf {
        Config::locate_with(explicit, |name| std::env::var(name).ok())
    }

    /// [`Config::locate`] with the environment given as a function (for tests and callers that
    /// carry their own environment).
    pub fn locate_with(explicit: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> PathBuf {
        if let Some(path) = explicit {
            return path.to_owned();
        }
        match env(CONFIG_FILE_ENV) {
            Some(value) if !value.is_empty() => PathBuf::from(value),
            _ => PathBuf::from(DEFAULT_CONFIG_FILE),
        }
    }

    /// The name given to the parser (empty for a configuration built in code).
    pub fn origin(&self) -> &str {
        &self.source.origin
    }
}

/// Turns the parser's error (a message and a byte span) into a [`Located`] problem.
fn locate_toml_error(text: &str, origin: &str, error: &toml::de::Error) -> Located {
    let message = error.message().trim().to_owned();
    let (position, table, key) = match error.span() {
        Some(span) => {
            let (table, key) = key_at(text, span.start);
            (Some(position_of(text, span.start)), table, key)
        }
        None => (None, String::new(), None),
    };
    // "missing field `x`": the span is the table that lacks it.
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let key = match missing {
        Some(field) if table.is_empty() => Some(field.to_owned()),
        Some(field) => Some(format!("{table}.{field}")),
        None => key.or((!table.is_empty()).then_some(table)),
    };
    Located {
        origin: origin.to_owned(),
        line: position.map(|p| p.line),
        column: position.map(|p| p.column),
        key,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[totem]\nnodeid = 1\ntransport = \"udpu\"\n{crypto}\n\n[[nodelist.node]]\nnodeid = 1\nring0_addr = \"10.0.0.1\"\n";

    fn with(crypto: &str) -> Result<Config, ConfigError> {
        Config::from_str(&BASE.replace("{crypto}", crypto), "crypto.toml")
    }

    #[test]
    fn a_busy_poller_without_a_cpu_is_noticed() {
        let dpdk = "[totem]\nnodeid = 1\ntransport = \"dpdk\"\n\n[dpdk]\nport = \"net_ring0\"\n{dpdk}\n{aisexec}\n[[nodelist.node]]\nnodeid = 1\nring0_addr = \"10.0.0.1\"\n";
        let config = |dpdk_keys: &str, aisexec: &str| {
            let text = dpdk
                .replace("{dpdk}", dpdk_keys)
                .replace("{aisexec}", aisexec);
            Config::from_str(&text, "dpdk.toml").unwrap_or_else(|e| panic!("{text}: {e}"))
        };
        assert!(config("busy_poll = true", "").unpinned_busy_poll());
        assert!(!config("busy_poll = true", "[aisexec]\ncpu = 1").unpinned_busy_poll());
        assert!(!config("busy_poll = false", "").unpinned_busy_poll());
        assert!(!config("", "").unpinned_busy_poll());
        // Not a DPDK ring: the key means nothing.
        let udpu = BASE.replace("{crypto}", "") + "\n[dpdk]\nbusy_poll = true\n";
        let udpu = Config::from_str(&udpu, "udpu.toml").unwrap();
        assert!(udpu.dpdk.busy_poll && !udpu.unpinned_busy_poll());
    }

    #[test]
    fn protection_follows_secauth_and_the_cipher() {
        for (crypto, expected) in [
            ("", FrameProtection::Encrypt),
            ("secauth = true", FrameProtection::Encrypt),
            ("crypto_cipher = \"aes256\"", FrameProtection::Encrypt),
            ("crypto_cipher = \"none\"", FrameProtection::Authenticate),
            (
                "secauth = true\ncrypto_cipher = \"none\"",
                FrameProtection::Authenticate,
            ),
            ("secauth = false", FrameProtection::Integrity),
            (
                "secauth = false\ncrypto_cipher = \"none\"",
                FrameProtection::Integrity,
            ),
        ] {
            let config = with(crypto).unwrap_or_else(|e| panic!("{crypto:?}: {e}"));
            assert_eq!(config.protection(), expected, "{crypto:?}");
            assert_eq!(expected.needs_key(), expected != FrameProtection::Integrity);
        }
    }

    #[test]
    fn the_key_file_defaults_and_can_be_moved() {
        let config = with("").unwrap();
        assert_eq!(
            config.totem.keyfile,
            Path::new(crate::keyfile::DEFAULT_KEYFILE)
        );
        assert_eq!(config.totem.crypto_cipher, None);
        assert_eq!(config.totem.cipher(), CryptoCipher::Aes256);
        let config = with("keyfile = \"/srv/key\"").unwrap();
        assert_eq!(config.totem.keyfile, Path::new("/srv/key"));
    }

    #[test]
    fn crypto_mistakes_are_located() {
        let e = with("crypto_cipher = \"aes128\"").unwrap_err();
        assert!(matches!(e, ConfigError::Syntax(_)));
        assert_eq!(
            e.to_string(),
            "crypto.toml:4:17: totem.crypto_cipher: unsupported cipher \"aes128\"; allowed values: \
             \"aes256\" (authenticate and encrypt, the default) or \"none\" (authenticate only)"
        );
        let e = with("secauth = false\ncrypto_cipher = \"aes256\"").unwrap_err();
        assert!(matches!(e, ConfigError::Invalid(_)));
        assert!(
            e.to_string().starts_with(
                "crypto.toml:5:1: totem.crypto_cipher: \"aes256\" needs secauth = true"
            ),
            "{e}"
        );
        let e = with("keyfile = \"\"").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("crypto.toml:4:1: totem.keyfile: must not be empty"),
            "{e}"
        );
    }
}
