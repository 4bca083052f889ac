//! The IPMI commands the shelf manager answers over RMCP+, from the shelf core: one module per
//! network function (the session layer in [`crate::rmcp::server`] knows none of them).
//!
//! **Addressing:** every command goes to the shelf manager itself (IPMB address 0x20). It
//! presents each configured board as one of its own FRU devices: FRU device id 0 is the shelf
//! manager (its FRU data describes the shelf), id `n` is the `n`-th `[[board]]` of the model
//! file (1-based). `ipmitool picmg activate 2` therefore activates the second board.
//! Requests bridged with Send Message (`ipmitool -b 0 -t 0x82`) reach the boards' IPMCs
//! instead, which know their FRUs by their own FRU ids (see [`bridge`]).
//!
//! **Sensors and records:** the shelf manager's own sensors are feed `k`'s power use (number
//! `0x40 + k`, watts granted from it) and the power budget (0x80, Power Unit type 0x09,
//! offset 5 "soft power control failure" asserted while a FRU waits for power). The SDR
//! repository also holds its MC Device Locator and a copy of every IPMC's device SDRs (MC
//! Device Locator, hot-swap sensors owned by the IPMC), and hot-swap SEL records are the
//! IPMCs' events, as on a real shelf. Get Sensor Reading of number `n` on the shelf manager
//! answers FRU `n`'s M-state as the shelf core keeps it.
//!
//! **Privileges:** reads need User; FRU Activation, Set FRU Activation Policy, FRU Control,
//! Set FRU LED State, Set Power Level, Clear SEL and the simulated handle need Operator, the
//! same whether sent to the shelf manager or bridged to an IPMC.
//!
//! - [`app`]: Get Device ID; [`chassis`]: Get Chassis Status;
//! - [`picmg`]: the PICMG 3.0 group extension (netfn 0x2C);
//! - [`bridge`]: requests bridged to the IPMCs with Send Message;
//! - [`storage`]: SEL, SDR repository, FRU inventory; [`sensor`]: sensor readings and the
//!   SDR records they are described by;
//! - [`oem`]: the simulated shelf's operator actions (injector handles).

pub mod app;
pub mod bridge;
pub mod chassis;
pub mod oem;
pub mod picmg;
pub mod sensor;
pub mod storage;

use tracing::warn;

use crate::hotswap::FruAddr;
use crate::ipmc::Ipmc;
use crate::model::Config;
use crate::rmcp::server::{Handler, Millis};
use crate::rmcp::users::Privilege;
use crate::rmcp::wire::{Request, cc, netfn};
use crate::shelf::{Shelf, drive};

/// Steps [`drive`] may take per command before giving up (a bound, never reached by a
/// well-behaved shelf).
const DRIVE_STEPS: usize = 10_000;

/// The shelf manager as seen by system managers: the shelf core, its IPMCs, and what the
/// commands need beside them (SDRs, FRU images, SEL timestamps, reservations).
#[derive(Debug)]
pub struct ShelfHandler<I: Ipmc> {
    config: Config,
    shelf: Shelf,
    ipmc: I,
    sdrs: Vec<Vec<u8>>,
    /// Seconds since the epoch at which each SEL record (by index) was first seen.
    sel_times: Vec<u32>,
    sel_reservation: u16,
    sdr_reservation: u16,
    last_erase: u32,
    now_secs: u32,
    /// When the SDR repository was built (its "most recent addition"; clients re-read the
    /// repository when it changes).
    pub(crate) sdr_added: u32,
}

impl<I: Ipmc> ShelfHandler<I> {
    /// Serves `shelf` (already built from `config`) talking to its boards through `ipmc`.
    /// `now` is the wall clock in milliseconds since the Unix epoch (SEL timestamps).
    pub fn new(config: Config, shelf: Shelf, ipmc: I, now: Millis) -> ShelfHandler<I> {
        let sdrs = sensor::sdr_records(&config);
        let mut h = ShelfHandler {
            config,
            shelf,
            ipmc,
            sdrs,
            sel_times: Vec::new(),
            sel_reservation: 0,
            sdr_reservation: 0,
            last_erase: 0,
            now_secs: secs(now),
            sdr_added: secs(now),
        };
        h.settle();
        h
    }

    /// The shelf core.
    pub fn shelf(&self) -> &Shelf {
        &self.shelf
    }

    /// The IPMCs (the simulated ones take handle and insertion commands).
    pub fn ipmc_mut(&mut self) -> &mut I {
        &mut self.ipmc
    }

    /// Runs the shelf against its IPMCs until quiet, and timestamps new SEL records.
    pub fn settle(&mut self) {
        let driven = drive(&mut self.shelf, &mut self.ipmc, DRIVE_STEPS);
        for r in driven.refused {
            warn!(error = %r, "shelf refused an IPMC report");
        }
        let n = self.shelf.sel().records().len();
        if self.sel_times.len() > n {
            self.sel_times.truncate(n);
        }
        while self.sel_times.len() < n {
            self.sel_times.push(self.now_secs);
        }
    }

    /// The FRU behind FRU device id `id` (1-based board index); `None` for 0 or unknown.
    fn board_fru(&self, id: u8) -> Option<(usize, FruAddr)> {
        let i = usize::from(id).checked_sub(1)?;
        let b = self.config.board.get(i)?;
        Some((
            i,
            FruAddr {
                ipmb: b.ipmb_address,
                fru_id: b.fru_id,
            },
        ))
    }

    /// The highest FRU device id.
    fn max_fru_id(&self) -> u8 {
        u8::try_from(self.config.board.len()).unwrap_or(u8::MAX)
    }
}

fn secs(ms: Millis) -> u32 {
    u32::try_from(ms / 1000).unwrap_or(u32::MAX)
}

impl<I: Ipmc> Handler for ShelfHandler<I> {
    fn privilege(&self, netfn: u8, cmd: u8, data: &[u8]) -> Option<Privilege> {
        use Privilege::{Operator, User};
        match netfn {
            netfn::APP => app::known(cmd).then_some(User),
            netfn::CHASSIS => chassis::known(cmd).then_some(User),
            netfn::SENSOR => sensor::known(cmd).then_some(User),
            netfn::STORAGE => storage::privilege(cmd),
            netfn::GROUP if data.first() == Some(&picmg::PICMG_ID) => picmg::privilege(cmd),
            oem::NETFN_OEM => oem::privilege(cmd),
            _ => None,
        }
        .map(|p| p.max(User).min(Operator))
    }

    fn handle(&mut self, now: Millis, request: &Request<'_>) -> (u8, Vec<u8>) {
        self.now_secs = secs(now);
        let answer = self.answer(request);
        self.settle();
        answer
    }

    fn bridged_privilege(&self, to: u8, netfn: u8, cmd: u8, data: &[u8]) -> Option<Privilege> {
        bridge::privilege(self, to, netfn, cmd, data)
    }

    fn bridge(&mut self, now: Millis, request: &Request<'_>) -> Result<(u8, Vec<u8>), u8> {
        self.now_secs = secs(now);
        let answer = bridge::deliver(self, request);
        self.settle();
        answer
    }
}

impl<I: Ipmc> ShelfHandler<I> {
    /// Answers a request to the shelf manager itself (privilege already checked).
    fn answer(&mut self, request: &Request<'_>) -> (u8, Vec<u8>) {
        match request.netfn {
            netfn::APP => app::handle(self, request.cmd, request.data),
            netfn::CHASSIS => chassis::handle(self, request.cmd, request.data),
            netfn::SENSOR => sensor::handle(self, request.cmd, request.data),
            netfn::STORAGE => storage::handle(self, request.cmd, request.data),
            netfn::GROUP => picmg::handle(self, request.cmd, request.data),
            oem::NETFN_OEM => oem::handle(self, request.cmd, request.data),
            _ => (cc::INVALID_COMMAND, vec![]),
        }
    }
}

/// The body of the `commands` fuzz target in `shelf-manager/fuzz`, here so unit tests run it
/// too.
pub mod fuzzing {
    use std::net::SocketAddr;

    use super::ShelfHandler;
    use crate::ipmc::SimIpmc;
    use crate::model::Config;
    use crate::rmcp::console::Console;
    use crate::rmcp::crypto::Suite;
    use crate::rmcp::server::{Server, ServerConfig};
    use crate::rmcp::users::Users;
    use crate::shelf::Shelf;

    fn checksum(bytes: &[u8]) -> u8 {
        bytes
            .iter()
            .fold(0u8, |a, &b| a.wrapping_add(b))
            .wrapping_neg()
    }

    /// Arbitrary commands, direct and bridged, into the simulated shelf of
    /// `configs/shelf-sim.toml` over an operator session: never a panic. Each input is
    /// split at 0xFE into commands: byte 0 picks the network function, byte 1 the command,
    /// the rest is the data; each is sent to the shelf manager, as raw Send Message data,
    /// and bridged (well formed) to the IPMC byte 0 picks. Returns how many packets were
    /// answered (0 when the session could not be opened).
    pub fn fuzz_commands(data: &[u8]) -> usize {
        let Ok(config) = Config::from_str(
            include_str!("../../../configs/shelf-sim.toml"),
            "shelf-sim.toml",
        ) else {
            return 0;
        };
        let Ok(users) = Users::from_str(
            "[[user]]\nname = \"op\"\npassword = \"pw\"\nprivilege = \"operator\"\n",
            "fuzz",
        ) else {
            return 0;
        };
        let mut sim = SimIpmc::new(&config);
        for b in &config.board {
            sim.insert(&b.name);
            sim.close_handle(&b.name);
        }
        let shelf = Shelf::new(&config);
        let mut handler = ShelfHandler::new(config, shelf, sim, 0);
        let mut server = Server::new(ServerConfig::default(), users);
        let from = SocketAddr::from(([127, 0, 0, 1], 623));
        let mut now = 0;
        let mut send = |server: &mut Server, handler: &mut ShelfHandler<SimIpmc>, pkt: &[u8]| {
            now += 1;
            server.handle_datagram(now, from, pkt, handler).reply
        };
        let mut c = Console::new(Suite::Sha1, 1, "op", "pw", 3);
        let Some(open) = send(&mut server, &mut handler, &c.open_session()) else {
            return 0;
        };
        let Ok(r1) = c.rakp1(&open) else { return 0 };
        let Some(r2) = send(&mut server, &mut handler, &r1) else {
            return 0;
        };
        let Ok(r3) = c.rakp3(&r2) else { return 0 };
        let Some(r4) = send(&mut server, &mut handler, &r3) else {
            return 0;
        };
        if c.finish(&r4).is_err() {
            return 0;
        }
        let set = c.request(0x06, 0x3B, &[3]);
        let _ = send(&mut server, &mut handler, &set);
        let mut answered = 0;
        for chunk in data.split(|&b| b == 0xFE) {
            let [pick, cmd, rest @ ..] = chunk else {
                continue;
            };
            let netfn = [0x00, 0x04, 0x06, 0x0A, 0x2C, 0x30][usize::from(pick % 6)];
            let direct = c.request(netfn, *cmd, rest);
            answered += usize::from(send(&mut server, &mut handler, &direct).is_some());
            let raw = c.request(0x06, 0x34, chunk);
            answered += usize::from(send(&mut server, &mut handler, &raw).is_some());
            let to = [0x20, 0x82, 0x84, 0x86, 0x88, 0x90][usize::from(pick / 6 % 6)];
            let mut m = vec![0x40, to, netfn << 2];
            m.push(checksum(&m[1..3]));
            m.extend_from_slice(&[0x81, 0x04, *cmd]);
            m.extend_from_slice(rest);
            let sum = checksum(&m[4..]);
            m.push(sum);
            let bridged = c.request(0x06, 0x34, &m);
            answered += usize::from(send(&mut server, &mut handler, &bridged).is_some());
        }
        answered
    }

    #[cfg(test)]
    mod tests {
        use rand::{Rng, SeedableRng};
        use rand_chacha::ChaCha8Rng;

        /// The fuzz body on seeded random inputs, most of them PICMG, sensor and storage
        /// commands with short random data.
        #[test]
        fn fuzz_commands_survives_random_commands() {
            let mut rng = ChaCha8Rng::seed_from_u64(34);
            for _ in 0..60 {
                let mut data = Vec::new();
                // No 0xFE inside a command, and no Close Session (App 0x3C): every command
                // then gets its three answers.
                let byte = |rng: &mut ChaCha8Rng| rng.random_range(0..0xFEu8);
                for _ in 0..rng.random_range(1..40) {
                    let pick = rng.random_range(0..36u8);
                    let mut cmd = if rng.random_bool(0.8) {
                        rng.random_range(0..0x30u8)
                    } else {
                        byte(&mut rng)
                    };
                    if pick % 6 == 2 && cmd == 0x3C {
                        cmd = 0x01;
                    }
                    data.extend_from_slice(&[pick, cmd]);
                    for _ in 0..rng.random_range(0..8) {
                        let b = if rng.random_bool(0.5) {
                            rng.random_range(0..5u8)
                        } else {
                            byte(&mut rng)
                        };
                        data.push(b);
                    }
                    data.push(0xFE);
                }
                let commands = data.iter().filter(|&&b| b == 0xFE).count();
                // Every command got its three answers: the session stayed up throughout.
                assert_eq!(super::fuzz_commands(&data), 3 * commands);
            }
        }
    }
}
