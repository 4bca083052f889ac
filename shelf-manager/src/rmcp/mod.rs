//! The RMCP+ (IPMI 2.0 LAN) server that system managers (`ipmitool -I lanplus`, OpenHPI, our
//! `hpi/`) talk to.
//!
//! Layered like the rest of the crate, bottom up:
//!
//! - [`wire`]: RMCP, ASF, IPMI 1.5/2.0 session headers and IPMI messages; parsers of remote
//!   input that never panic.
//! - [`crypto`]: the cipher suites offered (3 and 17), RAKP codes, session keys, AuthCodes,
//!   AES-CBC-128.
//! - [`users`]: the users file (owner-only mode, located errors, passwords never shown).
//! - [`server`]: sessions: Open Session, RAKP 1–4, privilege levels, sequence windows, the
//!   session table and its timeouts. It hands every command it does not own to a
//!   [`server::Handler`] after checking privilege; it reads no clock and opens no socket.
//! - [`console`]: the client side, for tests and benches.
//!
//! The rules (what is refused, how it is logged) are in `docs/shelf-manager.md`.

pub mod console;
pub mod crypto;
pub mod server;
pub mod users;
pub mod wire;

/// Bodies of the fuzz targets in `shelf-manager/fuzz`, here so unit tests run them too.
pub mod fuzzing {
    use super::server::{Handler, Millis, Server, ServerConfig};
    use super::users::{Privilege, Users};
    use super::wire::{self, Request};

    struct Echo;

    impl Handler for Echo {
        fn privilege(&self, _netfn: u8, _cmd: u8, _data: &[u8]) -> Option<Privilege> {
            Some(Privilege::User)
        }
        fn handle(&mut self, _now: Millis, request: &Request<'_>) -> (u8, Vec<u8>) {
            (0, request.data.to_vec())
        }
    }

    /// Arbitrary bytes through the packet and message parsers: never a panic.
    pub fn fuzz_wire(data: &[u8]) {
        if let Ok(wire::Packet::V20(p)) = wire::parse(data) {
            for n in [12, 16] {
                let _ = p.authenticated_parts(n);
            }
        }
        let _ = Request::parse(data);
        let _ = wire::parse_response(data);
    }

    /// Arbitrary datagrams into a server (one user, small table): never a panic. Each input
    /// is split at 0xFE 0xFE into several datagrams so sessions can progress.
    pub fn fuzz_server(data: &[u8]) {
        static USERS: std::sync::OnceLock<Users> = std::sync::OnceLock::new();
        let users = USERS
            .get_or_init(|| {
                Users::from_str(
                    "[[user]]\nname = \"admin\"\npassword = \"pw\"\nprivilege = \"administrator\"\n\
                     ipmi15 = true\n",
                    "fuzz",
                )
                .unwrap_or_else(|_| Users { user: vec![] })
            })
            .clone();
        let config = ServerConfig {
            max_sessions: 2,
            ..ServerConfig::default()
        };
        let mut server = Server::new(config, users);
        let from = std::net::SocketAddr::from(([127, 0, 0, 1], 623));
        for (i, chunk) in data.split(|&b| b == 0xFE).enumerate() {
            let _ = server.handle_datagram(i as Millis * 1000, from, chunk, &mut Echo);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::console::Console;
    use super::crypto::Suite;

    /// The fuzz bodies on seeded random inputs: random bytes, and valid handshake packets
    /// with random bytes flipped or cut off.
    #[test]
    fn fuzz_bodies_survive_random_and_mutated_packets() {
        let mut rng = ChaCha8Rng::seed_from_u64(20);
        let c = Console::new(Suite::Sha1, 1, "admin", "pw", 4);
        let seeds = [
            c.open_session(),
            super::console::v15_request(0x06, 0x38, &[0x8E, 4]),
            super::console::v15_request(
                0x06,
                0x39,
                &[
                    2, b'a', b'd', b'm', b'i', b'n', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
            ),
        ];
        for _ in 0..3000 {
            let mut data: Vec<u8> = if rng.random_bool(0.5) {
                (0..rng.random_range(0..80)).map(|_| rng.random()).collect()
            } else {
                seeds[rng.random_range(0..seeds.len())].clone()
            };
            for _ in 0..rng.random_range(0..4) {
                if !data.is_empty() {
                    let i = rng.random_range(0..data.len());
                    data[i] = rng.random();
                }
            }
            data.truncate(rng.random_range(0..=data.len()));
            super::fuzzing::fuzz_wire(&data);
            super::fuzzing::fuzz_server(&data);
        }
    }
}
