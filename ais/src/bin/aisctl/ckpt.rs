//! `aisctl ckpt`: the operator's view of the checkpoints (list, show, read, write, unlink).

use std::path::PathBuf;

use ais_client as client;
use anyhow::{Context, bail};
use clap::Subcommand;

use super::{humantime_utc, retry};

/// What a checkpoint section argument names.
#[derive(clap::Args, Debug)]
pub(crate) struct SectionArg {
    /// The section, by its id as text. Without it (and without --section-hex): the default
    /// section, which only checkpoints of at most one section have.
    #[arg(long, value_name = "ID", conflicts_with = "section_hex")]
    section: Option<String>,
    /// The section, by its id in hex (how `aisctl ckpt show` prints ids that are not
    /// text), e.g. 0x00ff10.
    #[arg(long, value_name = "HEX")]
    section_hex: Option<String>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum CkptCommand {
    /// Every checkpoint of the cluster: name, id, sections, bytes used, opens, whether it
    /// is unlinked, and its retention duration.
    ///
    /// The id is REP.SEQ.N: the ring the checkpoint was created in (its representative and
    /// sequence number) and its number there. OPENS counts the opens of every node. An
    /// unlinked checkpoint has given up its name and goes at its last close; a checkpoint
    /// nobody has open stays for its retention duration after the last close.
    ///
    /// Examples:
    ///   aisctl ckpt ls
    ///   aisctl ckpt ls --json | jq '.[] | select(.opens == 0) | .name'
    #[command(visible_alias = "list", verbatim_doc_comment)]
    Ls {
        /// A JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// One checkpoint: its creation attributes, its use, and every section (id, size,
    /// expiration time, last update).
    ///
    /// Section ids are printed as text when they are printable UTF-8, else in hex (0x...);
    /// the default section is shown as (default). Looking does not open the checkpoint, so
    /// the retention time of one nobody has open keeps running.
    ///
    /// Examples:
    ///   aisctl ckpt show app-state
    ///   aisctl ckpt show app-state --json
    #[command(verbatim_doc_comment)]
    Show {
        /// The checkpoint's name.
        name: String,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a section's bytes to standard output, as they are (or as a hex dump).
    ///
    /// Without --size, reads from --offset to the end of the section, however large (in
    /// pieces of at most one IPC packet). Like show, it does not open the checkpoint.
    ///
    /// Examples:
    ///   aisctl ckpt read app-state                      # the default section
    ///   aisctl ckpt read sessions --section user-42 > user-42.bin
    ///   aisctl ckpt read sessions --section user-42 --offset 16 --size 64 --hex
    #[command(verbatim_doc_comment)]
    Read {
        /// The checkpoint's name.
        name: String,
        #[command(flatten)]
        section: SectionArg,
        /// Where to start in the section, bytes.
        #[arg(long, default_value_t = 0, value_name = "BYTES")]
        offset: u64,
        /// How many bytes at most (default: to the end of the section).
        #[arg(long, value_name = "BYTES")]
        size: Option<u64>,
        /// A hex dump (offset, hex bytes, printable characters) instead of raw bytes.
        #[arg(long)]
        hex: bool,
    },
    /// Write bytes into a section; with --create, create the checkpoint and the section
    /// when they are missing.
    ///
    /// Writes at --offset (default 0), extending the section if needed; --overwrite makes
    /// the data the section's whole content instead. Data larger than one IPC packet
    /// (192 KiB) is sent in several writes, one after the other.
    ///
    /// A checkpoint created by --create has: creation flags WR_ALL_REPLICAS (a write returns
    /// once every replica has it), retention forever (it stays until `aisctl ckpt unlink`),
    /// section ids of up to 256 bytes, sections of up to --max-section-size bytes (1 MiB),
    /// and either one section (the default section, when no --section is given) or up to
    /// 64 sections; the checkpoint size is the number of sections times the section size.
    /// A missing section is created with no expiration time.
    ///
    /// Examples:
    ///   aisctl ckpt write app-state --create --data "v=1"
    ///   aisctl ckpt write app-state --data "2" --offset 2       # now "v=2"
    ///   aisctl ckpt write sessions --create --section user-42 --file state.bin --overwrite
    ///   tar c conf | aisctl ckpt write backups --create --section conf --file - --overwrite
    #[command(verbatim_doc_comment)]
    Write {
        /// The checkpoint's name.
        name: String,
        #[command(flatten)]
        section: SectionArg,
        /// The data, as text.
        #[arg(
            long,
            value_name = "TEXT",
            conflicts_with = "file",
            required_unless_present = "file"
        )]
        data: Option<String>,
        /// The data, from a file (- for standard input).
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// Where to write in the section, bytes.
        #[arg(long, value_name = "BYTES", conflicts_with = "overwrite")]
        offset: Option<u64>,
        /// Replace the section's whole content (saCkptSectionOverwrite).
        #[arg(long)]
        overwrite: bool,
        /// Create the checkpoint and the section when they do not exist (see above).
        #[arg(long)]
        create: bool,
        /// With --create: the most bytes of one section of a new checkpoint.
        #[arg(long, value_name = "BYTES", default_value_t = CKPT_SECTION_SIZE, requires = "create")]
        max_section_size: u64,
    },
    /// Unlink a checkpoint: its name is free at once (a new checkpoint may take it); its
    /// data goes when the last process that has it open closes it.
    ///
    /// Example:
    ///   aisctl ckpt unlink app-state
    #[command(verbatim_doc_comment)]
    Unlink {
        /// The checkpoint's name.
        name: String,
    },
}

/// `aisctl ckpt write --create`: the most bytes of one section (`--max-section-size`).
const CKPT_SECTION_SIZE: u64 = 1 << 20;
/// `aisctl ckpt write --create --section`: the most sections.
const CKPT_SECTIONS: u32 = 64;
/// `aisctl ckpt write --create`: the longest section id.
const CKPT_SECTION_ID: u64 = 256;

pub(crate) fn ckpt_command(path: &std::path::Path, c: &CkptCommand) -> anyhow::Result<()> {
    match c {
        CkptCommand::Ls { json } => ckpt_ls(path, *json),
        CkptCommand::Show { name, json } => ckpt_show(path, name, *json),
        CkptCommand::Read {
            name,
            section,
            offset,
            size,
            hex,
        } => ckpt_read(path, name, &section.id()?, *offset, *size, *hex),
        CkptCommand::Write {
            name,
            section,
            data,
            file,
            offset,
            overwrite,
            create,
            max_section_size,
        } => {
            let data = match (data, file) {
                (Some(d), _) => d.as_bytes().to_vec(),
                (None, Some(f)) if f.as_os_str() == "-" => {
                    let mut v = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
                        .context("reading standard input")?;
                    v
                }
                (None, Some(f)) => {
                    std::fs::read(f).with_context(|| format!("reading {}", f.display()))?
                }
                (None, None) => bail!("give the data with --data or --file"),
            };
            if data.is_empty() && !overwrite {
                bail!("nothing to write: the data is empty (--overwrite empties a section)");
            }
            ckpt_write(
                path,
                name,
                &section.id()?,
                &data,
                CkptWrite {
                    offset: *offset,
                    overwrite: *overwrite,
                    create: create.then_some(*max_section_size),
                },
            )
        }
        CkptCommand::Unlink { name } => ckpt_unlink(path, name),
    }
}

impl SectionArg {
    /// The section's id (empty: the default section).
    fn id(&self) -> anyhow::Result<bytes::Bytes> {
        Ok(match (&self.section, &self.section_hex) {
            (Some(text), _) => bytes::Bytes::copy_from_slice(text.as_bytes()),
            (None, Some(hex)) => bytes::Bytes::from(parse_hex(hex).with_context(|| {
                format!("--section-hex {hex:?} is not hex (pairs of 0-9 a-f, optionally after 0x)")
            })?),
            (None, None) => bytes::Bytes::new(),
        })
    }
}

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(digits.get(i..i + 2)?, 16).ok())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Printable UTF-8 (no control characters), else `None`.
fn printable(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes)
        .ok()
        .filter(|t| !t.is_empty() && t.chars().all(|c| !c.is_control()))
}

/// A checkpoint name or section id for people: the text when printable, else 0x and hex;
/// the empty section id is the default section.
fn ckpt_id_text(bytes: &[u8]) -> String {
    match printable(bytes) {
        Some(t) => t.to_owned(),
        None if bytes.is_empty() => "(default)".to_owned(),
        None => format!("0x{}", hex(bytes)),
    }
}

/// A section for a sentence: `section 'x'` or `the default section`.
fn section_phrase(id: &[u8]) -> String {
    if id.is_empty() {
        "the default section".to_owned()
    } else {
        format!("section '{}'", ckpt_id_text(id))
    }
}

/// A duration in nanoseconds in the largest unit that divides it; `forever` for TIME_END.
fn ckpt_duration(ns: u64) -> String {
    if ns == client::ckpt::TIME_END {
        return "forever".to_owned();
    }
    const UNITS: [(u64, &str); 7] = [
        (86_400_000_000_000, "d"),
        (3_600_000_000_000, "h"),
        (60_000_000_000, "min"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "µs"),
        (1, "ns"),
    ];
    if ns == 0 {
        return "0s".to_owned();
    }
    let (unit, name) = UNITS
        .iter()
        .find(|(u, _)| ns.is_multiple_of(*u))
        .expect("1 divides everything");
    format!("{}{name}", ns / unit)
}

/// An absolute time in nanoseconds, `never` for TIME_END.
fn ckpt_time(ns: u64) -> String {
    if ns == client::ckpt::TIME_END {
        "never".to_owned()
    } else {
        humantime_utc(ns)
    }
}

fn creation_flags(flags: u32) -> Vec<&'static str> {
    use client::ckpt::{
        CHECKPOINT_COLLOCATED, WR_ACTIVE_REPLICA, WR_ACTIVE_REPLICA_WEAK, WR_ALL_REPLICAS,
    };
    [
        (WR_ALL_REPLICAS, "WR_ALL_REPLICAS"),
        (WR_ACTIVE_REPLICA, "WR_ACTIVE_REPLICA"),
        (WR_ACTIVE_REPLICA_WEAK, "WR_ACTIVE_REPLICA_WEAK"),
        (CHECKPOINT_COLLOCATED, "CHECKPOINT_COLLOCATED"),
    ]
    .into_iter()
    .filter(|(bit, _)| flags & bit != 0)
    .map(|(_, name)| name)
    .collect()
}

/// `null` for forever (TIME_END), else the nanoseconds.
fn ns_or_null(ns: u64) -> serde_json::Value {
    if ns == client::ckpt::TIME_END {
        serde_json::Value::Null
    } else {
        serde_json::Value::from(ns)
    }
}

/// A sentence for a refused checkpoint operation: what it means for `name` (and `section`),
/// the error's name, and what to do when there is something to say.
fn ckpt_error(e: &client::Error, name: &str, section: Option<&[u8]>) -> anyhow::Error {
    use client::AisError as E;
    let Some(code) = e.ais_error() else {
        return anyhow::anyhow!("checkpoint '{name}': {e}");
    };
    let show = format!("`aisctl ckpt show {name}`");
    let (what, hint) = match (code, section) {
        (E::NotSupported, _) => ("this aisexec runs no checkpoint service".to_owned(), None),
        (E::NameTooLong, _) => (
            format!(
                "checkpoint name '{name}' is {} bytes, longer than the {} allowed",
                name.len(),
                client::ckpt::MAX_NAME
            ),
            None,
        ),
        (E::InvalidParam, None) if name.is_empty() => {
            ("a checkpoint name cannot be empty".to_owned(), None)
        }
        (E::NotExist, Some([])) => (
            format!("checkpoint '{name}' has no default section"),
            Some(format!(
                "only checkpoints of one section have one: name a section with --section \
                 ({show} lists them)"
            )),
        ),
        (E::NotExist, Some(id)) => (
            format!("checkpoint '{name}' has no {}", section_phrase(id)),
            None,
        ),
        (E::NotExist, None) => (format!("checkpoint '{name}' does not exist"), None),
        (E::Exist, _) => (
            format!("checkpoint '{name}' exists with other creation attributes"),
            Some(format!("{show} shows them")),
        ),
        (E::Access, _) => (
            format!("checkpoint '{name}' was not opened for this access"),
            None,
        ),
        (E::InvalidParam, Some(id)) => (
            format!(
                "checkpoint '{name}' refuses this for {}: past the maximum section size, past \
                 the end of the section, or an id over the maximum id size",
                section_phrase(id)
            ),
            Some(format!("{show} shows the limits")),
        ),
        (E::NoSpace, _) => (
            format!(
                "checkpoint '{name}' is full: it has its most sections, or this would pass its \
                 checkpoint size"
            ),
            Some(format!("{show} shows the limits")),
        ),
        (E::NoResources, _) => (
            format!(
                "no room for this in checkpoint '{name}': the executive's memory limit for all \
                 checkpoints ([ckpt] max_memory_mb) would be passed"
            ),
            None,
        ),
        (E::TryAgain, _) => (
            format!("checkpoint '{name}': the cluster is busy or changing membership"),
            Some("try again".to_owned()),
        ),
        _ => (format!("checkpoint '{name}' refused the operation"), None),
    };
    match hint {
        Some(h) => anyhow::anyhow!("{what} ({code}); {h}"),
        None => anyhow::anyhow!("{what} ({code})"),
    }
}

fn ckpt_connect(path: &std::path::Path) -> anyhow::Result<client::ckpt::Ckpt> {
    match client::ckpt::Ckpt::connect(path) {
        Err(e) if e.ais_error() == Some(client::AisError::NotSupported) => {
            Err(ckpt_error(&e, "", None))
        }
        other => Ok(other?),
    }
}

fn ckpt_ls(path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let mut ckpt = ckpt_connect(path)?;
    let list = ckpt.list()?;
    if json {
        let v: Vec<serde_json::Value> = list.iter().map(ckpt_info_json).collect();
        say!("{}", serde_json::Value::from(v));
        return Ok(());
    }
    if list.is_empty() {
        say!("no checkpoints");
        return Ok(());
    }
    let names: Vec<String> = list.iter().map(|c| ckpt_id_text(&c.name)).collect();
    let wide = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let id_wide = list.iter().map(|c| c.id.len()).max().unwrap_or(0).max(2);
    say!(
        "{:<wide$}  {:<id_wide$}  {:>9}  {:>12}  {:>5}  {:<8}  RETENTION",
        "NAME",
        "ID",
        "SECTIONS",
        "BYTES",
        "OPENS",
        "UNLINKED"
    );
    for (c, name) in list.iter().zip(&names) {
        let s = &c.status;
        say!(
            "{name:<wide$}  {:<id_wide$}  {:>9}  {:>12}  {:>5}  {:<8}  {}",
            c.id,
            format!("{}/{}", s.sections, s.attributes.max_sections),
            s.memory_used,
            c.opens,
            if c.unlinked { "yes" } else { "no" },
            ckpt_duration(s.attributes.retention_duration)
        );
    }
    Ok(())
}

fn ckpt_attributes_json(s: &client::ckpt::Status) -> serde_json::Value {
    let a = &s.attributes;
    serde_json::json!({
        "creation_flags": creation_flags(a.creation_flags),
        "checkpoint_size": a.checkpoint_size,
        "retention_ns": ns_or_null(a.retention_duration),
        "max_sections": a.max_sections,
        "max_section_size": a.max_section_size,
        "max_section_id_size": a.max_section_id_size,
        "sections": s.sections,
        "memory_used": s.memory_used,
    })
}

fn ckpt_info_json(c: &client::ckpt::CheckpointInfo) -> serde_json::Value {
    let mut v = ckpt_attributes_json(&c.status);
    let o = v.as_object_mut().expect("an object");
    o.insert("name".into(), String::from_utf8_lossy(&c.name).into());
    o.insert("id".into(), c.id.clone().into());
    o.insert("opens".into(), c.opens.into());
    o.insert("unlinked".into(), c.unlinked.into());
    v
}

fn ckpt_show(path: &std::path::Path, name: &str, json: bool) -> anyhow::Result<()> {
    use client::ckpt::SECTION_CORRUPTED;
    let mut ckpt = ckpt_connect(path)?;
    // Described, not opened: an open and close would restart the retention clock of a
    // checkpoint nobody has open.
    let (info, sections) = ckpt
        .describe(name.as_bytes())
        .map_err(|e| ckpt_error(&e, name, None))?;
    let status = info.status.clone();
    let info = Some(info);
    let state = |s: u8| {
        if s == SECTION_CORRUPTED {
            "corrupted"
        } else {
            "valid"
        }
    };
    if json {
        let mut v = ckpt_attributes_json(&status);
        let o = v.as_object_mut().expect("an object");
        o.insert("name".into(), name.into());
        if let Some(c) = &info {
            o.insert("id".into(), c.id.clone().into());
            o.insert("opens".into(), c.opens.into());
        }
        let list: Vec<serde_json::Value> = sections
            .iter()
            .map(|d| {
                serde_json::json!({
                    "id": printable(&d.id),
                    "id_hex": hex(&d.id),
                    "size": d.size,
                    "expiration_ns": ns_or_null(d.expiration_time),
                    "last_update_ns": d.last_update,
                    "state": state(d.state),
                })
            })
            .collect();
        o.insert("section_list".into(), list.into());
        say!("{v}");
        return Ok(());
    }
    let a = &status.attributes;
    say!("checkpoint        {name}");
    if let Some(c) = &info {
        say!("id                {}", c.id);
        say!("opens             {} (all nodes)", c.opens);
    }
    say!(
        "creation flags    {}",
        creation_flags(a.creation_flags).join("|")
    );
    say!("retention         {}", ckpt_duration(a.retention_duration));
    say!(
        "bytes used        {} of {}",
        status.memory_used,
        a.checkpoint_size
    );
    say!(
        "sections          {} of {}, each at most {} bytes, ids at most {} bytes",
        status.sections,
        a.max_sections,
        a.max_section_size,
        a.max_section_id_size
    );
    if sections.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = sections.iter().map(|d| ckpt_id_text(&d.id)).collect();
    let wide = ids
        .iter()
        .map(|i| i.chars().count())
        .max()
        .unwrap_or(0)
        .max(2);
    say!(
        "\n  {:<wide$}  {:>10}  {:<23}  {:<23}  STATE",
        "ID",
        "SIZE",
        "EXPIRES",
        "LAST UPDATE"
    );
    for (d, id) in sections.iter().zip(&ids) {
        say!(
            "  {id:<wide$}  {:>10}  {:<23}  {:<23}  {}",
            d.size,
            ckpt_time(d.expiration_time),
            humantime_utc(d.last_update),
            state(d.state)
        );
    }
    Ok(())
}

/// Bytes to standard output; a closed output ends the program quietly, as `say!` does.
fn put_bytes(data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(data).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => Ok(other.context("writing to standard output")?),
    }
}

/// `hexdump -C`: offset, 16 bytes in hex, the printable ones as text.
fn hex_dump(start: u64, data: &[u8]) -> String {
    let mut out = String::new();
    for (i, row) in data.chunks(16).enumerate() {
        let mut bytes = String::new();
        for (j, b) in row.iter().enumerate() {
            bytes += &format!("{b:02x} ");
            if j == 7 {
                bytes.push(' ');
            }
        }
        let text: String = row
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        out += &format!("{:08x}  {bytes:<49} |{text}|\n", start + 16 * i as u64);
    }
    out += &format!("{:08x}\n", start + data.len() as u64);
    out
}

fn ckpt_read(
    path: &std::path::Path,
    name: &str,
    section: &bytes::Bytes,
    offset: u64,
    size: Option<u64>,
    hex: bool,
) -> anyhow::Result<()> {
    let mut ckpt = ckpt_connect(path)?;
    // Peeked, not opened: an open and close would restart the retention clock of a
    // checkpoint nobody has open.
    let data = match ckpt.peek(name.as_bytes(), section, offset, size.unwrap_or(u64::MAX)) {
        Ok(data) => data,
        // NOT_EXIST names no culprit: the checkpoint, or only the section?
        Err(e) if e.ais_error() == Some(client::AisError::NotExist) => {
            return Err(match ckpt.describe(name.as_bytes()) {
                Err(e) => ckpt_error(&e, name, None),
                Ok(_) => ckpt_error(&e, name, Some(&section[..])),
            });
        }
        Err(e) => return Err(ckpt_error(&e, name, Some(&section[..]))),
    };
    if hex {
        put_bytes(hex_dump(offset, &data).as_bytes())
    } else {
        put_bytes(&data)
    }
}

/// How `aisctl ckpt write` writes.
struct CkptWrite {
    offset: Option<u64>,
    overwrite: bool,
    /// `--create`, with the section size of a new checkpoint.
    create: Option<u64>,
}

/// The attributes `aisctl ckpt write --create` gives a new checkpoint (see its help).
fn ckpt_new_attributes(sections: u32, max_section_size: u64) -> client::ckpt::Attributes {
    client::ckpt::Attributes {
        creation_flags: client::ckpt::WR_ALL_REPLICAS,
        checkpoint_size: u64::from(sections).saturating_mul(max_section_size),
        retention_duration: client::ckpt::TIME_END,
        max_sections: sections,
        max_section_size,
        max_section_id_size: CKPT_SECTION_ID,
    }
}

fn ckpt_write(
    path: &std::path::Path,
    name: &str,
    section: &bytes::Bytes,
    data: &[u8],
    how: CkptWrite,
) -> anyhow::Result<()> {
    use client::AisError;
    use client::ckpt::{OPEN_CREATE, OPEN_WRITE, TIME_END, WriteElement};
    let mut ckpt = ckpt_connect(path)?;
    let fail = |e: client::Error| ckpt_error(&e, name, None);
    let h = match ckpt.open(name.as_bytes(), OPEN_WRITE, None) {
        Err(e) if e.ais_error() == Some(AisError::NotExist) && how.create.is_some() => {
            let sections = if section.is_empty() { 1 } else { CKPT_SECTIONS };
            let attrs = ckpt_new_attributes(sections, how.create.unwrap_or(CKPT_SECTION_SIZE));
            match retry(|| ckpt.open(name.as_bytes(), OPEN_WRITE | OPEN_CREATE, Some(attrs))) {
                Ok(h) => {
                    say!(
                        "created checkpoint '{name}': {}, {} section(s) of at most {} bytes, \
                         {} bytes in all, retention forever",
                        creation_flags(attrs.creation_flags).join("|"),
                        attrs.max_sections,
                        attrs.max_section_size,
                        attrs.checkpoint_size
                    );
                    h
                }
                // Created meanwhile by someone else, with other attributes: use theirs.
                Err(e) if e.ais_error() == Some(AisError::Exist) => {
                    ckpt.open(name.as_bytes(), OPEN_WRITE, None).map_err(fail)?
                }
                Err(e) => return Err(fail(e)),
            }
        }
        other => other.map_err(fail)?,
    };
    let offset = how.offset.unwrap_or(0);
    let put = |ckpt: &mut client::ckpt::Ckpt| {
        retry(|| {
            if how.overwrite {
                ckpt.section_overwrite(h, section, data)
            } else {
                ckpt.write(
                    h,
                    &[WriteElement {
                        section: section.clone(),
                        offset,
                        data: bytes::Bytes::copy_from_slice(data),
                    }],
                )
                .map_err(client::Error::from)
            }
        })
    };
    let section_fail = |e: client::Error| {
        let missing = e.ais_error() == Some(AisError::NotExist) && !section.is_empty();
        let err = ckpt_error(&e, name, Some(section));
        if missing && how.create.is_none() {
            anyhow::anyhow!("{err}; add --create to create it")
        } else {
            err
        }
    };
    match put(&mut ckpt) {
        Err(e)
            if e.ais_error() == Some(AisError::NotExist)
                && how.create.is_some()
                && !section.is_empty() =>
        {
            // A new section: with the data when it starts there, else empty and written.
            let initial = if how.overwrite || offset == 0 {
                data
            } else {
                &[]
            };
            retry(|| ckpt.section_create(h, Some(section), TIME_END, initial))
                .map_err(section_fail)?;
            say!(
                "created {} of checkpoint '{name}', never expiring",
                section_phrase(section)
            );
            if initial.is_empty() && !data.is_empty() {
                put(&mut ckpt).map_err(section_fail)?;
            }
        }
        other => other.map_err(section_fail)?,
    }
    ckpt.close(h).map_err(fail)?;
    if how.overwrite {
        say!(
            "{} of checkpoint '{name}' is now {} bytes",
            section_phrase(section),
            data.len()
        );
    } else {
        say!(
            "wrote {} bytes at offset {offset} of {} of checkpoint '{name}'",
            data.len(),
            section_phrase(section)
        );
    }
    Ok(())
}

fn ckpt_unlink(path: &std::path::Path, name: &str) -> anyhow::Result<()> {
    let mut ckpt = ckpt_connect(path)?;
    let opens = ckpt
        .list()?
        .into_iter()
        .find(|c| &c.name[..] == name.as_bytes() && !c.unlinked)
        .map(|c| c.opens);
    retry(|| ckpt.unlink(name.as_bytes())).map_err(|e| ckpt_error(&e, name, None))?;
    match opens {
        Some(n) if n > 0 => say!(
            "unlinked checkpoint '{name}': the name is free; its data goes when its {n} open(s) close"
        ),
        _ => say!("unlinked checkpoint '{name}': the name is free and its data gone"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_ids_print_as_text_or_hex_and_parse_back() {
        assert_eq!(ckpt_id_text(b"user-42"), "user-42");
        assert_eq!(ckpt_id_text(b""), "(default)");
        assert_eq!(ckpt_id_text(&[0, 0xff, 0x10]), "0x00ff10");
        assert_eq!(ckpt_id_text(b"tab\there"), "0x7461620968657265");
        assert_eq!(parse_hex("0x00ff10"), Some(vec![0, 0xff, 0x10]));
        assert_eq!(parse_hex("00FF10"), Some(vec![0, 0xff, 0x10]));
        for bad in ["", "0x", "abc", "zz", "0xé1"] {
            assert_eq!(parse_hex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn durations_and_times_use_the_largest_unit_and_name_the_infinite() {
        use client::ckpt::TIME_END;
        assert_eq!(ckpt_duration(TIME_END), "forever");
        assert_eq!(ckpt_duration(0), "0s");
        assert_eq!(ckpt_duration(90_000_000_000), "90s");
        assert_eq!(ckpt_duration(120_000_000_000), "2min");
        assert_eq!(ckpt_duration(86_400_000_000_000), "1d");
        assert_eq!(ckpt_duration(1_500_000), "1500µs");
        assert_eq!(ckpt_duration(7), "7ns");
        assert_eq!(ckpt_time(TIME_END), "never");
        assert_eq!(ckpt_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(ns_or_null(TIME_END), serde_json::Value::Null);
    }

    #[test]
    fn the_hex_dump_is_hexdump_c() {
        assert_eq!(
            hex_dump(16, b"hello, world\n\x00\x01\x02\x03"),
            "00000010  68 65 6c 6c 6f 2c 20 77  6f 72 6c 64 0a 00 01 02  |hello, world....|\n\
             00000020  03                                                |.|\n\
             00000021\n"
        );
        assert_eq!(hex_dump(0, b""), "00000000\n");
    }

    #[test]
    fn refusals_become_sentences_with_the_error_name() {
        let e = |a| client::Error::Ais(a);
        assert_eq!(
            ckpt_error(&e(client::AisError::NotExist), "x", None).to_string(),
            "checkpoint 'x' does not exist (SA_AIS_ERR_NOT_EXIST)"
        );
        let msg = ckpt_error(&e(client::AisError::NotExist), "x", Some(b"")).to_string();
        assert!(msg.contains("no default section"), "{msg}");
        let msg = ckpt_error(&e(client::AisError::NotExist), "x", Some(b"s")).to_string();
        assert!(
            msg.starts_with("checkpoint 'x' has no section 's'"),
            "{msg}"
        );
        let long = "n".repeat(300);
        let msg = ckpt_error(&e(client::AisError::NameTooLong), &long, None).to_string();
        assert!(
            msg.contains("is 300 bytes, longer than the 256 allowed"),
            "{msg}"
        );
        assert!(msg.ends_with("(SA_AIS_ERR_NAME_TOO_LONG)"), "{msg}");
    }

    #[test]
    fn the_created_checkpoint_has_the_documented_attributes() {
        let a = ckpt_new_attributes(CKPT_SECTIONS, CKPT_SECTION_SIZE);
        assert_eq!(a.creation_flags, client::ckpt::WR_ALL_REPLICAS);
        assert_eq!(a.retention_duration, client::ckpt::TIME_END);
        assert_eq!((a.max_sections, a.max_section_size), (64, 1 << 20));
        assert_eq!(a.checkpoint_size, 64 << 20);
        assert_eq!(a.max_section_id_size, 256);
        assert_eq!(ckpt_new_attributes(1, 10).checkpoint_size, 10);
    }
}
