//! `ais-keygen` and the key file as an operator meets them: the binary run in a temporary
//! directory, and `keyfile::read` on what it writes and on hand-made files.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ais::keyfile::{self, KeyFileError, KeyMaterial};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ais-keygen-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn keygen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ais-keygen"))
        .args(args)
        .output()
        .expect("ais-keygen runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn keygen_creates_refuses_and_replaces_with_force() {
    let dir = temp_dir("run");
    let path = dir.join("etc/openais/authkey");
    let p = path.to_str().unwrap();

    let out = keygen(&["--keyfile", p]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim_end(),
        format!(
            "wrote a new cluster key to {p} (mode 0400, epoch 0); copy it to the same path on \
             every node before starting aisexec"
        )
    );
    assert_eq!(mode(&path), 0o400);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 8 + 4 + 32);
    assert_eq!(&bytes[..8], b"OAISKEY1");
    assert_eq!(&bytes[8..12], &[0, 0, 0, 0]);
    let first = keyfile::read(&path).unwrap();
    assert_eq!(first.epoch, 0);
    assert_eq!(first.secret, bytes[12..]);

    // A second run must not replace the key.
    let out = keygen(&["--keyfile", p]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr).trim_end(),
        format!(
            "ais-keygen: {p} exists; pass --force to replace it (every node needs the same key)"
        )
    );
    assert_eq!(keyfile::read(&path).unwrap(), first);

    let out = keygen(&["--keyfile", p, "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(mode(&path), 0o400);
    let second = keyfile::read(&path).unwrap();
    assert_eq!(second.epoch, 0);
    assert_eq!(second.secret.len(), 32);
    assert_ne!(second.secret, first.secret);

    // Only the key file is left in its directory: no temporary files.
    assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn help_names_the_default_path_and_shows_examples() {
    let out = keygen(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in ["--keyfile", "--force", "/etc/openais/authkey", "Examples:"] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

#[test]
fn a_legacy_raw_key_reads_as_epoch_zero() {
    let dir = temp_dir("legacy");
    let path = dir.join("authkey");
    let raw: Vec<u8> = (0..128).map(|i: u32| (i * 37 % 251) as u8).collect();
    write_mode(&path, &raw, 0o400);
    assert_eq!(
        keyfile::read(&path).unwrap(),
        KeyMaterial {
            epoch: 0,
            secret: raw
        }
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_key_readable_by_others_is_refused_with_the_chmod_hint() {
    let dir = temp_dir("mode");
    let path = dir.join("authkey");
    write_mode(&path, &[1; 128], 0o644);
    let e = keyfile::read(&path).unwrap_err();
    assert!(matches!(e, KeyFileError::Permissions { mode: 0o644, .. }));
    let p = path.display();
    assert_eq!(
        e.to_string(),
        format!("{p} is accessible by group/others (mode 0644); run `chmod 0400 {p}`")
    );
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    keyfile::read(&path).unwrap();
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_too_short_key_is_refused() {
    let dir = temp_dir("short");
    let path = dir.join("authkey");
    write_mode(&path, &[1; 16], 0o400);
    let e = keyfile::read(&path).unwrap_err();
    assert!(matches!(e, KeyFileError::Length { len: 16, .. }), "{e}");
    assert!(
        e.to_string().starts_with(&format!("{}: ", path.display())),
        "{e}"
    );
    assert!(e.to_string().contains("32..=4096"), "{e}");
    // Our header with a too-short secret.
    let mut bytes = b"OAISKEY1\0\0\0\x01".to_vec();
    bytes.extend_from_slice(&[2; 31]);
    fs::remove_file(&path).unwrap();
    write_mode(&path, &bytes, 0o400);
    assert!(matches!(
        keyfile::read(&path),
        Err(KeyFileError::Length { len: 43, .. })
    ));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_key_names_ais_keygen() {
    let dir = temp_dir("missing");
    let path = dir.join("authkey");
    let e = keyfile::read(&path).unwrap_err();
    assert!(matches!(e, KeyFileError::Missing { .. }));
    let p = path.display();
    assert_eq!(
        e.to_string(),
        format!(
            "{p}: no key file; create one with `ais-keygen --keyfile {p}` and copy it to every node"
        )
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_key_with_a_later_epoch_round_trips() {
    let dir = temp_dir("epoch");
    let path = dir.join("authkey");
    let key = KeyMaterial {
        epoch: 0x0102_0304,
        secret: vec![0xee; 48],
    };
    keyfile::write(&path, &key, false).unwrap();
    assert_eq!(&fs::read(&path).unwrap()[8..12], &[1, 2, 3, 4]);
    assert_eq!(keyfile::read(&path).unwrap(), key);
    fs::remove_dir_all(dir).unwrap();
}
