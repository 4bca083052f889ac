//! What the CKPT tests with real executives share: a client that waits for its executive, and
//! a call repeated while the service answers TRY_AGAIN.

use std::time::{Duration, Instant};

use ais_client::Error;
use ais_client::ckpt::Ckpt;

use super::cluster::Cluster;

/// A CKPT client of node `i`, retrying the connect while the executive starts, for `within`.
pub fn connect(c: &Cluster, i: usize, within: Duration) -> Ckpt {
    let deadline = Instant::now() + within;
    loop {
        match Ckpt::connect(&c.node(i).socket) {
            Ok(k) => return k,
            Err(e) if Instant::now() > deadline => panic!("connect to node {}: {e}", i + 1),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Runs `op` again while it answers TRY_AGAIN (a membership change settling), for `within`.
pub fn again<T>(within: Duration, mut op: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    let deadline = Instant::now() + within;
    loop {
        match op() {
            Err(e) if e.is_try_again() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}
