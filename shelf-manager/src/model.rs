//! The shelf model: power feeds, sites and the boards in them, read from a TOML file.
//!
//! [`Config::from_str`] parses the text through serde structs that refuse unknown keys, then
//! checks what serde cannot (names that must be unique, feeds that must exist, addresses that
//! must be valid IPMB-0 addresses). Every problem is one [`ConfigError`] displayed as
//! `origin:line:column: key: message`. The format is described in `docs/shelf-manager.md`
//! and shown by `configs/shelf-sim.toml`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Deserialize;

/// The logical shelf manager's IPMB-0 address; no board may use it.
pub const SHELF_MANAGER_IPMB: u8 = 0x20;

/// The highest power level PICMG 3.0 lets a FRU describe (Get Power Level draws 1..=20).
pub const MAX_POWER_LEVELS: usize = 20;

/// A whole shelf model file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The shelf itself.
    pub shelf: Shelf,
    /// The power feeds, in file order.
    #[serde(default)]
    pub feed: Vec<Feed>,
    /// The boards, one per occupied site, in file order.
    #[serde(default)]
    pub board: Vec<Board>,
    /// The RMCP+ server of `shelfd`, when the file configures one.
    #[serde(default)]
    pub rmcp: Option<Rmcp>,
}

/// The `[rmcp]` table: where `shelfd` listens and who may log in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rmcp {
    /// UDP address to listen on (default `127.0.0.1:623`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The users file, relative to the model file's folder; it must be readable by its
    /// owner only.
    pub users: String,
    /// Most sessions at once, handshakes included (default 16).
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Seconds without a valid packet before a session is closed (default 60).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
}

fn default_listen() -> String {
    "127.0.0.1:623".into()
}

fn default_max_sessions() -> usize {
    16
}

fn default_idle_timeout() -> u64 {
    60
}

/// The `[shelf]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shelf {
    /// The shelf's name (its shelf address string).
    pub name: String,
    /// How many records the system event log holds before it is full.
    #[serde(default = "default_sel_capacity")]
    pub sel_capacity: usize,
}

fn default_sel_capacity() -> usize {
    1024
}

/// One `[[feed]]`: a power feed and the most it can deliver.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feed {
    /// The feed's name, referred to by boards.
    pub name: String,
    /// The most the feed delivers, in watts.
    pub max_watts: u32,
}

/// One `[[board]]`: the board in one site, managed by one IPMC.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// The board's name, unique in the shelf.
    pub name: String,
    /// The kind of site it sits in.
    #[serde(default)]
    pub site_type: SiteType,
    /// The site number (the slot number for ATCA boards).
    pub site_number: u8,
    /// The IPMC's IPMB-0 address (`hardware address << 1`).
    pub ipmb_address: u8,
    /// The FRU device id of the board inside its IPMC (0: the IPMC itself).
    #[serde(default)]
    pub fru_id: u8,
    /// Power order: lower values are powered first (see [`crate::power`]).
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// The watts the payload draws at power levels 1, 2, …, at most 20 levels.
    pub power_levels: Vec<u32>,
    /// The level the board asks for; the highest one when left out.
    #[serde(default)]
    pub desired_level: Option<u8>,
    /// The feeds that power the board; its draw counts against each of them (redundant feeds
    /// must each carry the board alone).
    pub feeds: Vec<String>,
    /// How the simulated IPMC misbehaves.
    #[serde(default)]
    pub sim: SimKnobs,
}

fn default_priority() -> u8 {
    100
}

impl Board {
    /// The level the board asks for (1-based).
    pub fn desired_level(&self) -> u8 {
        self.desired_level
            .unwrap_or(u8::try_from(self.power_levels.len()).unwrap_or(u8::MAX))
    }

    /// The watts drawn at `level` (1-based); 0 for level 0 or a level the board lacks.
    pub fn watts_at(&self, level: u8) -> u32 {
        match usize::from(level) {
            0 => 0,
            l => self.power_levels.get(l - 1).copied().unwrap_or(0),
        }
    }
}

/// The `[board.sim]` table: test knobs for the board's simulated IPMC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimKnobs {
    /// The payload fails when powered: the IPMC reports an unexpected deactivation.
    #[serde(default)]
    pub fails_to_activate: bool,
    /// Once active, the IPMC stops answering until the test brings it back.
    #[serde(default)]
    pub vanishes: bool,
}

/// Site types (PICMG 3.0 Get Address Info / Address Table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)]
pub enum SiteType {
    #[default]
    AtcaBoard,
    PowerEntry,
    ShelfFru,
    DedicatedShmc,
    FanTray,
    FanFilterTray,
    Alarm,
    Amc,
    Pmc,
    Rtm,
}

impl SiteType {
    /// The code on the wire.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// What is wrong with a shelf model, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The text is not valid TOML, or a key is unknown, missing or of the wrong type.
    #[error("{0}")]
    Syntax(Located),
    /// The values are inconsistent.
    #[error("{0}")]
    Invalid(Located),
}

impl ConfigError {
    /// Where the problem is.
    pub fn location(&self) -> &Located {
        match self {
            ConfigError::Syntax(l) | ConfigError::Invalid(l) => l,
        }
    }
}

/// A problem at a place in a model text, displayed as `origin:line:column: key: message`,
/// leaving out what is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The file name (or other origin) given to the parser.
    pub origin: String,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// 1-based column in characters, when known.
    pub column: Option<u32>,
    /// The key path, such as `board[2].ipmb_address`, when known.
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
    /// Parses and checks a model text; `origin` names it in errors.
    ///
    /// # Errors
    /// [`ConfigError::Syntax`] for what the TOML parser refuses, then [`ConfigError::Invalid`]
    /// for the first inconsistency found (in file order).
    pub fn from_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let keys = KeyLines::scan(text);
        let config: Config = toml::from_str(text)
            .map_err(|e| ConfigError::Syntax(locate_toml_error(text, origin, &keys, &e)))?;
        config
            .check()
            .map_err(|(key, message)| ConfigError::Invalid(keys.locate(origin, &key, message)))?;
        Ok(config)
    }

    /// The index of the feed called `name`.
    pub fn feed_index(&self, name: &str) -> Option<usize> {
        self.feed.iter().position(|f| f.name == name)
    }

    /// The first inconsistency: the key path and the message.
    fn check(&self) -> Result<(), (String, String)> {
        if self.shelf.sel_capacity == 0 {
            return Err(("shelf.sel_capacity".into(), "must be at least 1".into()));
        }
        if let Some(r) = &self.rmcp {
            if r.listen.parse::<std::net::SocketAddr>().is_err() {
                return Err((
                    "rmcp.listen".into(),
                    format!(
                        "{:?} is not an address:port such as 127.0.0.1:623",
                        r.listen
                    ),
                ));
            }
            if r.max_sessions == 0 {
                return Err(("rmcp.max_sessions".into(), "must be at least 1".into()));
            }
            if r.idle_timeout_secs == 0 {
                return Err(("rmcp.idle_timeout_secs".into(), "must be at least 1".into()));
            }
        }
        let mut feeds: HashMap<&str, usize> = HashMap::new();
        for (i, feed) in self.feed.iter().enumerate() {
            if let Some(first) = feeds.insert(&feed.name, i) {
                return Err((
                    format!("feed[{i}].name"),
                    format!("{:?} is already used by feed[{first}]", feed.name),
                ));
            }
            if feed.max_watts == 0 {
                return Err((
                    format!("feed[{i}].max_watts"),
                    "must be at least 1 W".into(),
                ));
            }
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut sites: BTreeMap<(SiteType, u8), usize> = BTreeMap::new();
        let mut addresses: BTreeMap<(u8, u8), usize> = BTreeMap::new();
        for (i, board) in self.board.iter().enumerate() {
            let at = |key: &str| format!("board[{i}].{key}");
            if let Some(first) = names.insert(&board.name, i) {
                return Err((
                    at("name"),
                    format!("{:?} is already used by board[{first}]", board.name),
                ));
            }
            if let Some(first) = sites.insert((board.site_type, board.site_number), i) {
                return Err((
                    at("site_number"),
                    format!(
                        "site {} is already used by board[{first}]",
                        board.site_number
                    ),
                ));
            }
            let a = board.ipmb_address;
            if a == 0 || a % 2 == 1 || a == SHELF_MANAGER_IPMB {
                return Err((
                    at("ipmb_address"),
                    format!("{a:#04x} is not a board's IPMB-0 address (even, not 0 or 0x20)"),
                ));
            }
            if let Some(first) = addresses.insert((a, board.fru_id), i) {
                return Err((
                    at("ipmb_address"),
                    format!(
                        "{a:#04x} FRU {} is already used by board[{first}]",
                        board.fru_id
                    ),
                ));
            }
            let levels = board.power_levels.len();
            if levels == 0 || levels > MAX_POWER_LEVELS {
                return Err((
                    at("power_levels"),
                    format!("must list 1..={MAX_POWER_LEVELS} levels, got {levels}"),
                ));
            }
            if let Some(l) = board.desired_level
                && (l == 0 || usize::from(l) > levels)
            {
                return Err((
                    at("desired_level"),
                    format!("must be 1..={levels} (one of power_levels), got {l}"),
                ));
            }
            if board.feeds.is_empty() {
                return Err((at("feeds"), "must name at least one feed".into()));
            }
            let watts = board.watts_at(board.desired_level());
            for name in &board.feeds {
                let Some(&f) = feeds.get(name.as_str()) else {
                    return Err((at("feeds"), format!("no feed is called {name:?}")));
                };
                let max = self.feed[f].max_watts;
                if watts > max {
                    return Err((
                        at("power_levels"),
                        format!(
                            "the board asks for {watts} W, more than feed {name:?} ever gives ({max} W)"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Turns the parser's error (a message and a byte span) into a located one.
fn locate_toml_error(
    text: &str,
    origin: &str,
    keys: &KeyLines,
    error: &toml::de::Error,
) -> Located {
    let message = error.message().trim().to_owned();
    let (position, table, key) = match error.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            let (table, key) = keys.at_line(line);
            (Some((line, column)), table, key)
        }
        None => (None, String::new(), None),
    };
    // "missing field `x`": the span is the table that lacks it.
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let key = match missing {
        Some(field) => Some(join(&table, field)),
        None => key.or((!table.is_empty()).then_some(table)),
    };
    Located {
        origin: origin.to_owned(),
        line: position.map(|p| p.0),
        column: position.map(|p| p.1),
        key,
        message,
    }
}

/// The 1-based line and character column of byte `offset`.
fn line_column(text: &str, offset: usize) -> (u32, u32) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[start..].chars().count() + 1;
    (to_u32(line), to_u32(column))
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn join(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_owned()
    } else {
        format!("{table}.{key}")
    }
}

/// For each line of a model text: the table in force and the key written there, if any.
/// Only reads `[table]`, `[[array]]` headers and `key = value` lines, which is what model files
/// hold; it never judges validity (the TOML parser does).
struct KeyLines {
    /// Per line (0-based): (table path, key path, column of the first character).
    lines: Vec<(String, Option<String>, u32)>,
}

impl KeyLines {
    fn scan(text: &str) -> KeyLines {
        let mut table = String::new();
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut lines = Vec::new();
        for raw in text.lines() {
            let trimmed = raw.trim();
            let column = to_u32(raw.chars().take_while(|c| c.is_whitespace()).count() + 1);
            let mut key = None;
            if let Some(rest) = trimmed.strip_prefix("[[") {
                let path = normalise(rest.split("]]").next().unwrap_or(""));
                let n = counts.entry(path.clone()).or_insert(0);
                table = format!("{path}[{n}]");
                *n += 1;
                key = Some(table.clone());
            } else if let Some(rest) = trimmed.strip_prefix('[') {
                let path = normalise(rest.split(']').next().unwrap_or(""));
                // `[board.sim]` belongs to the latest `[[board]]`.
                table = match path.split_once('.') {
                    Some((head, tail)) if counts.contains_key(head) => {
                        format!("{head}[{}].{tail}", counts[head] - 1)
                    }
                    _ => path,
                };
                key = Some(table.clone());
            } else if !trimmed.starts_with('#')
                && let Some((k, _)) = trimmed.split_once('=')
                && !k.trim().is_empty()
            {
                key = Some(join(&table, &normalise(k)));
            }
            lines.push((table.clone(), key, column));
        }
        KeyLines { lines }
    }

    /// The table in force at 1-based `line`, and the key written on it.
    fn at_line(&self, line: u32) -> (String, Option<String>) {
        match self.lines.get((line as usize).wrapping_sub(1)) {
            Some((table, key, _)) => (table.clone(), key.clone()),
            None => (String::new(), None),
        }
    }

    /// Locates `key`: its own line, else the nearest enclosing table's.
    fn locate(&self, origin: &str, key: &str, message: String) -> Located {
        let mut path = key;
        let found = loop {
            if let Some(i) = self
                .lines
                .iter()
                .position(|(_, k, _)| k.as_deref() == Some(path))
            {
                break Some(i);
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => break None,
            }
        };
        Located {
            origin: origin.to_owned(),
            line: found.map(|i| to_u32(i + 1)),
            column: found.map(|i| self.lines[i].2),
            key: Some(key.to_owned()),
            message,
        }
    }
}

/// Parses another TOML file of this crate (the RMCP+ users file) with the same located
/// errors as the model: `Err` carries `origin:line:col: key: message`. `check` returns the
/// key and message of the first inconsistency serde cannot see.
pub(crate) fn parse_located<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &str,
    check: impl FnOnce(&T) -> Result<(), (String, String)>,
) -> Result<T, Located> {
    let keys = KeyLines::scan(text);
    let value: T = toml::from_str(text).map_err(|e| locate_toml_error(text, origin, &keys, &e))?;
    check(&value).map_err(|(key, message)| keys.locate(origin, &key, message))?;
    Ok(value)
}

/// `a . "b"` → `a.b`.
fn normalise(key: &str) -> String {
    key.split('.')
        .map(|part| part.trim().trim_matches(['"', '\'']))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"[shelf]
name = "test"

[[feed]]
name = "A"
max_watts = 500

[[board]]
name = "one"
site_number = 1
ipmb_address = 0x82
power_levels = [100, 200]
feeds = ["A"]

[[board]]
name = "two"
site_number = 2
ipmb_address = 0x84
power_levels = [150]
feeds = ["A"]

[board.sim]
vanishes = true
"#;

    fn mistake(text: &str, line: u32, key: &str) -> ConfigError {
        let e = Config::from_str(text, "bad.toml").expect_err("the mistake must be reported");
        let shown = e.to_string();
        let at = e.location();
        assert_eq!(at.line, Some(line), "{shown}");
        assert!(at.column.is_some(), "{shown}");
        assert_eq!(at.key.as_deref(), Some(key), "{shown}");
        assert!(shown.starts_with(&format!("bad.toml:{line}:")), "{shown}");
        assert!(shown.contains(&format!(": {key}: ")), "{shown}");
        e
    }

    #[test]
    fn a_good_model_parses_with_its_defaults() {
        let c = Config::from_str(GOOD, "good.toml").unwrap();
        assert_eq!(c.shelf.sel_capacity, 1024);
        assert_eq!(c.board[0].desired_level(), 2);
        assert_eq!(c.board[0].watts_at(2), 200);
        assert_eq!(c.board[0].watts_at(0), 0);
        assert_eq!(c.board[0].priority, 100);
        assert_eq!(c.board[0].site_type, SiteType::AtcaBoard);
        assert!(c.board[1].sim.vanishes);
        assert!(!c.board[0].sim.vanishes);
    }

    #[test]
    fn an_unknown_key_is_named() {
        let e = mistake(
            &GOOD.replace("site_number = 2", "site_nmber = 2"),
            17,
            "board[1].site_nmber",
        );
        assert!(matches!(e, ConfigError::Syntax(_)));
        assert!(e.to_string().contains("unknown field"), "{e}");
        mistake(
            &GOOD.replace("vanishes", "vanish"),
            23,
            "board[1].sim.vanish",
        );
    }

    #[test]
    fn a_missing_key_is_named() {
        let e = mistake(
            &GOOD.replace("feeds = [\"A\"]\n\n[[board]]", "\n[[board]]"),
            8,
            "board[0].feeds",
        );
        assert!(e.to_string().contains("missing field"), "{e}");
    }

    #[test]
    fn inconsistencies_are_named() {
        let e = mistake(&GOOD.replace("0x84", "0x82"), 18, "board[1].ipmb_address");
        assert!(matches!(e, ConfigError::Invalid(_)));
        assert!(e.to_string().contains("already used by board[0]"), "{e}");
        mistake(&GOOD.replace("0x84", "0x85"), 18, "board[1].ipmb_address");
        mistake(&GOOD.replace("0x84", "0x20"), 18, "board[1].ipmb_address");
        mistake(
            &GOOD.replace("site_number = 2", "site_number = 1"),
            17,
            "board[1].site_number",
        );
        mistake(
            &GOOD.replace("name = \"two\"", "name = \"one\""),
            16,
            "board[1].name",
        );
        let e = mistake(
            &GOOD.replace("[150]", "[150]\nfeeds = [\"B\"]").replacen(
                "feeds = [\"A\"]\n\n[board",
                "\n[board",
                1,
            ),
            20,
            "board[1].feeds",
        );
        assert!(e.to_string().contains("no feed is called \"B\""), "{e}");
        let e = mistake(&GOOD.replace("[150]", "[600]"), 19, "board[1].power_levels");
        assert!(e.to_string().contains("more than feed \"A\""), "{e}");
        mistake(&GOOD.replace("[150]", "[]"), 19, "board[1].power_levels");
        mistake(
            &GOOD.replace("[100, 200]", "[100, 200]\ndesired_level = 3"),
            13,
            "board[0].desired_level",
        );
        mistake(
            &GOOD.replace("max_watts = 500", "max_watts = 0"),
            6,
            "feed[0].max_watts",
        );
    }

    #[test]
    fn the_rmcp_table_is_optional_and_checked() {
        assert_eq!(Config::from_str(GOOD, "good.toml").unwrap().rmcp, None);
        let with = format!("{GOOD}\n[rmcp]\nusers = \"users.toml\"\n");
        let r = Config::from_str(&with, "good.toml").unwrap().rmcp.unwrap();
        assert_eq!(
            (r.listen.as_str(), r.max_sessions, r.idle_timeout_secs),
            ("127.0.0.1:623", 16, 60)
        );
        let lines = GOOD.lines().count() as u32;
        mistake(
            &format!("{with}listen = \"localhost\"\n"),
            lines + 4,
            "rmcp.listen",
        );
        mistake(
            &format!("{with}max_sessions = 0\n"),
            lines + 4,
            "rmcp.max_sessions",
        );
    }
}
