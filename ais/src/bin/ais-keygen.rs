//! `ais-keygen`: creates the cluster key file (see `ais::keyfile` and `docs/security.md`).

use std::path::PathBuf;
use std::process::ExitCode;

use ais::keyfile::{self, DEFAULT_KEYFILE, KeyMaterial};
use clap::Parser;

/// Create the cluster key file that authenticates and encrypts Totem frames.
///
/// Writes a fresh 256-bit secret from the operating system's random generator as key epoch 0,
/// readable by its owner only (mode 0400). Every node of the cluster needs a byte-identical
/// copy at the path its configuration names (totem.keyfile, default /etc/openais/authkey):
/// run ais-keygen once, on one node, then copy the file to the others. A node with a
/// different key cannot join the ring; its frames are rejected as forged.
///
/// An existing key file is never replaced without --force: replacing it on one node of a
/// running cluster cuts that node off. To change the key of a running cluster, use
/// `aisctl rekey` instead (see docs/security.md).
///
/// Examples:
///   ais-keygen                                   # writes /etc/openais/authkey
///   ais-keygen --keyfile /tmp/openais-demo/authkey
///   ais-keygen --force                           # replace the key (cluster stopped)
///   scp -p /etc/openais/authkey node2:/etc/openais/authkey
#[derive(Parser, Debug)]
#[command(version, verbatim_doc_comment)]
struct Cli {
    /// Where to write the key file (created with its directory if missing).
    #[arg(long, short = 'k', value_name = "PATH", default_value = DEFAULT_KEYFILE)]
    keyfile: PathBuf,
    /// Replace an existing key file.
    #[arg(long, short = 'f')]
    force: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = keyfile::generate().and_then(|secret| {
        keyfile::write(&cli.keyfile, &KeyMaterial { epoch: 0, secret }, cli.force)
    });
    match result {
        Ok(()) => {
            println!(
                "wrote a new cluster key to {} (mode 0400, epoch 0); copy it to the same path on \
                 every node before starting aisexec",
                cli.keyfile.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ais-keygen: {e}");
            ExitCode::FAILURE
        }
    }
}
