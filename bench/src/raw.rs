//! (being written this session)

/// Arguments.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Arguments of one end.
#[derive(clap::Args, Debug)]
pub struct PeerArgs {}

/// Runs it.
pub fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("not written yet")
}

/// Runs one end.
pub fn run_peer(_args: &PeerArgs) -> anyhow::Result<()> {
    anyhow::bail!("not written yet")
}
