//! Where things are in a configuration text: byte offsets to line and column, and the line of
//! each key, so that errors can point at the text the operator wrote.
//!
//! The scanner is deliberately simple: it reads table headers (`[a.b]`, `[[a.b]]`) and
//! `key = value` lines, which is what configuration files contain. It never decides whether a
//! file is valid (the `toml` parser does); it only finds positions, and a position it cannot
//! find falls back to the enclosing table or to none.

use std::collections::HashMap;

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) line: u32,
    pub(crate) column: u32,
}

/// The position of every key and table header of one text, by key path
/// (`totem.consensus`, `nodelist.node[1].ring0_addr`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Positions {
    by_path: HashMap<String, Position>,
}

impl Positions {
    /// Scans `text`.
    pub(crate) fn scan(text: &str) -> Positions {
        let mut by_path = HashMap::new();
        let mut table = String::new();
        let mut array_counts: HashMap<String, usize> = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let indent = raw.len() - raw.trim_start().len();
            let column = char_column(raw, indent);
            match classify(raw) {
                Line::Header { path, array } => {
                    table = if array {
                        let n = array_counts.entry(path.clone()).or_insert(0);
                        let indexed = format!("{path}[{n}]");
                        *n += 1;
                        indexed
                    } else {
                        path
                    };
                    by_path
                        .entry(table.clone())
                        .or_insert(Position { line, column });
                }
                Line::Key(key) => {
                    by_path
                        .entry(join(&table, &key))
                        .or_insert(Position { line, column });
                }
                Line::Other => {}
            }
        }
        Positions { by_path }
    }

    /// The position of `path`, or of its nearest enclosing key or table that has one.
    pub(crate) fn find(&self, path: &str) -> Option<Position> {
        let mut path = path;
        loop {
            if let Some(p) = self.by_path.get(path) {
                return Some(*p);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

/// The line and column of byte `offset` in `text` (clamped to the text's end).
pub(crate) fn position_of(text: &str, offset: usize) -> Position {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    Position {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: char_column(&text[line_start..], offset - line_start),
    }
}

/// The key path a byte offset belongs to: the table in force at that line (`""` at the top
/// level) and the full path of the key written on that line, if there is one.
pub(crate) fn key_at(text: &str, offset: usize) -> (String, Option<String>) {
    let target = position_of(text, offset).line as usize;
    let mut table = String::new();
    let mut array_counts: HashMap<String, usize> = HashMap::new();
    for (index, raw) in text.lines().enumerate() {
        let is_target = index + 1 == target;
        match classify(raw) {
            Line::Header { path, array } => {
                table = if array {
                    let n = array_counts.entry(path.clone()).or_insert(0);
                    let indexed = format!("{path}[{n}]");
                    *n += 1;
                    indexed
                } else {
                    path
                };
            }
            Line::Key(key) if is_target => {
                let path = join(&table, &key);
                return (table, Some(path));
            }
            _ => {}
        }
        if is_target {
            break;
        }
    }
    (table, None)
}

enum Line {
    Header { path: String, array: bool },
    Key(String),
    Other,
}

fn classify(raw: &str) -> Line {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Line::Other;
    }
    if let Some(rest) = line.strip_prefix("[[") {
        if let Some(end) = rest.find("]]") {
            return Line::Header {
                path: normalise_key(&rest[..end]),
                array: true,
            };
        }
    } else if let Some(rest) = line.strip_prefix('[')
        && let Some(end) = rest.find(']')
    {
        return Line::Header {
            path: normalise_key(&rest[..end]),
            array: false,
        };
    }
    match line.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() => Line::Key(normalise_key(key)),
        _ => Line::Other,
    }
}

/// `a . "b"` → `a.b`.
fn normalise_key(key: &str) -> String {
    key.split('.')
        .map(|part| part.trim().trim_matches(['"', '\'']))
        .collect::<Vec<_>>()
        .join(".")
}

fn join(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_owned()
    } else {
        format!("{table}.{key}")
    }
}

/// The 1-based character column of byte `byte` of `line`.
fn char_column(line: &str, byte: usize) -> u32 {
    let mut byte = byte.min(line.len());
    while !line.is_char_boundary(byte) {
        byte -= 1;
    }
    u32::try_from(line[..byte].chars().count() + 1).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# comment\n[totem]\n  token = 100\n\n[[nodelist.node]]\nnodeid = 1\n[[nodelist.node]]\nnodeid = 2\n";

    #[test]
    fn keys_tables_and_array_entries_have_positions() {
        let p = Positions::scan(TEXT);
        assert_eq!(p.find("totem.token"), Some(Position { line: 3, column: 3 }));
        assert_eq!(
            p.find("totem.consensus"),
            Some(Position { line: 2, column: 1 })
        );
        assert_eq!(
            p.find("nodelist.node[1].nodeid"),
            Some(Position { line: 8, column: 1 })
        );
        assert_eq!(
            p.find("nodelist.node[1].ring0_addr"),
            Some(Position { line: 7, column: 1 })
        );
        assert_eq!(p.find("logging.debug"), None);
    }

    #[test]
    fn offsets_map_to_lines_columns_and_keys() {
        let offset = TEXT.find("100").unwrap();
        assert_eq!(
            position_of(TEXT, offset),
            Position {
                line: 3,
                column: 11
            }
        );
        assert_eq!(
            key_at(TEXT, offset),
            ("totem".to_owned(), Some("totem.token".to_owned()))
        );
        let second = TEXT.rfind("nodeid").unwrap();
        assert_eq!(
            key_at(TEXT, second).1.as_deref(),
            Some("nodelist.node[1].nodeid")
        );
        let header = TEXT.rfind("[[").unwrap();
        assert_eq!(key_at(TEXT, header), ("nodelist.node[1]".to_owned(), None));
        assert_eq!(key_at(TEXT, 0), (String::new(), None));
    }
}
