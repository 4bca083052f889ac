//! The shelf commands over an RMCP+ session, without sockets: `configs/shelf-sim.toml` with
//! simulated boards behind a [`ShelfHandler`], driven by the in-crate console.

use std::net::SocketAddr;
use std::path::Path;

use shelf_manager::commands::ShelfHandler;
use shelf_manager::commands::sensor::state_of_reading;
use shelf_manager::commands::storage::fru_image;
use shelf_manager::hotswap::MState;
use shelf_manager::ipmc::SimIpmc;
use shelf_manager::model::Config;
use shelf_manager::rmcp::console::Console;
use shelf_manager::rmcp::crypto::Suite;
use shelf_manager::rmcp::server::{Server, ServerConfig};
use shelf_manager::rmcp::users::Users;
use shelf_manager::shelf::Shelf;

struct Rig {
    server: Server,
    handler: ShelfHandler<SimIpmc>,
    console: Console,
    now: u64,
}

const FROM: ([u8; 4], u16) = ([127, 0, 0, 1], 4000);

impl Rig {
    /// The sim shelf with every board inserted and its handle closed; an operator session.
    fn new() -> Rig {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/shelf-sim.toml");
        let config = Config::from_str(&std::fs::read_to_string(path).unwrap(), "sim").unwrap();
        let mut sim = SimIpmc::new(&config);
        for b in &config.board {
            sim.insert(&b.name);
        }
        let shelf = Shelf::new(&config);
        let mut handler = ShelfHandler::new(config.clone(), shelf, sim, 1_700_000_000_000);
        for b in &config.board {
            handler.ipmc_mut().close_handle(&b.name);
            handler.settle();
        }
        let users = Users::from_str(
            "[[user]]\nname = \"op\"\npassword = \"op-pw\"\nprivilege = \"operator\"\n",
            "users",
        )
        .unwrap();
        let server = Server::new(ServerConfig::default(), users);
        let console = Console::new(Suite::Sha256, 77, "op", "op-pw", 3);
        let mut rig = Rig {
            server,
            handler,
            console,
            now: 1_700_000_000_000,
        };
        let open = rig.raw(&rig.console.open_session());
        let r1 = rig.console.rakp1(&open).unwrap();
        let r2 = rig.raw(&r1);
        let r3 = rig.console.rakp3(&r2).unwrap();
        let r4 = rig.raw(&r3);
        rig.console.finish(&r4).unwrap();
        assert_eq!(rig.cmd(0x06, 0x3B, &[3]), (0, vec![3]));
        rig
    }

    fn raw(&mut self, pkt: &[u8]) -> Vec<u8> {
        self.now += 1;
        let o =
            self.server
                .handle_datagram(self.now, SocketAddr::from(FROM), pkt, &mut self.handler);
        assert_eq!(o.refused, None);
        o.reply.unwrap()
    }

    fn cmd(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> (u8, Vec<u8>) {
        let pkt = self.console.request(netfn, cmd, data);
        let reply = self.raw(&pkt);
        self.console.response(&reply).unwrap()
    }

    fn state(&mut self, fru: u8) -> MState {
        let (code, reading) = self.cmd(0x04, 0x2D, &[fru]);
        assert_eq!(code, 0);
        state_of_reading(&reading).unwrap()
    }

    fn sel(&mut self) -> Vec<Vec<u8>> {
        let (_, res) = self.cmd(0x0A, 0x42, &[]);
        let mut id = [0u8, 0];
        let mut out = Vec::new();
        loop {
            let (code, data) = self.cmd(0x0A, 0x43, &[res[0], res[1], id[0], id[1], 0, 0xFF]);
            assert_eq!(code, 0);
            out.push(data[2..].to_vec());
            if data[..2] == [0xFF, 0xFF] {
                return out;
            }
            id = [data[0], data[1]];
        }
    }
}

fn power_denials_for(sel: &[Vec<u8>], fru: u8) -> usize {
    sel.iter()
        .filter(|r| r[10] == 0x09 && r[11] == 0x80 && r[13] == 0xA5 && r[15] == fru)
        .count()
}

#[test]
fn feeds_for_two_boards_refuse_the_third_until_one_deactivates() {
    let mut rig = Rig::new();
    assert_eq!(
        (1..=4).map(|f| rig.state(f)).collect::<Vec<_>>(),
        [MState::M4, MState::M4, MState::M3, MState::M3]
    );
    // The refusal is in the SEL and on the power budget sensor.
    let sel = rig.sel();
    assert_eq!(power_denials_for(&sel, 3), 1);
    assert_eq!(rig.cmd(0x04, 0x2D, &[0x80]).1[2], 1 << 5);
    // Feed A carries 400 W: raw 100 at 4 W per count.
    assert_eq!(rig.cmd(0x04, 0x2D, &[0x40]).1[0], 100);

    // Deactivate board 2: its power goes to board 3.
    assert_eq!(rig.cmd(0x2C, 0x0C, &[0, 2, 0]), (0, vec![0]));
    assert_eq!(rig.state(2), MState::M1);
    assert_eq!(rig.state(3), MState::M4);
    // Activating an M1 FRU is refused (not supported in present state), nothing moves.
    assert_eq!(rig.cmd(0x2C, 0x0C, &[0, 2, 1]).0, 0xD5);
    assert_eq!(rig.state(2), MState::M1);
    // Lock then unlock: M1 -> M2 -> M3, and it waits for power: a new denial.
    assert_eq!(rig.cmd(0x2C, 0x0A, &[0, 2, 1, 1]).0, 0);
    assert_eq!(rig.cmd(0x2C, 0x0B, &[0, 2]), (0, vec![0, 1]));
    assert_eq!(rig.cmd(0x2C, 0x0A, &[0, 2, 1, 0]).0, 0);
    assert_eq!(rig.state(2), MState::M3);
    assert_eq!(power_denials_for(&rig.sel(), 2), 1);
    // Unknown FRU ids are refused.
    assert_eq!(rig.cmd(0x2C, 0x0C, &[0, 9, 1]).0, 0xCC);
}

#[test]
fn sdr_repository_and_fru_inventory_are_consistent() {
    let mut rig = Rig::new();
    let (_, info) = rig.cmd(0x0A, 0x20, &[]);
    let count = usize::from(u16::from_le_bytes([info[1], info[2]]));
    // The repository never changes: its addition time stays (clients re-read it otherwise).
    rig.now += 5_000;
    assert_eq!(rig.cmd(0x0A, 0x20, &[]).1[5..9], info[5..9]);
    // 4 hot-swap sensors, 2 feeds, the budget, the shelf manager's MC locator, 4 FRU
    // locators.
    assert_eq!(count, 12);
    let (_, res) = rig.cmd(0x0A, 0x22, &[]);
    let mut id = [0u8, 0];
    let mut seen = 0;
    loop {
        let (code, data) = rig.cmd(0x0A, 0x23, &[res[0], res[1], id[0], id[1], 0, 0xFF]);
        assert_eq!(code, 0);
        let rec = &data[2..];
        assert_eq!(
            usize::from(rec[4]) + 5,
            rec.len(),
            "length byte of record {seen}"
        );
        seen += 1;
        if data[..2] == [0xFF, 0xFF] {
            break;
        }
        id = [data[0], data[1]];
    }
    assert_eq!(seen, count);
    let config = Config::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/shelf-sim.toml"),
        )
        .unwrap(),
        "sim",
    )
    .unwrap();
    for id in 0..=4 {
        let image = fru_image(&config, id).unwrap();
        assert_eq!(image[..8].iter().fold(0u8, |a, &b| a.wrapping_add(b)), 0);
        let area = &image[8..];
        assert_eq!(area.len(), usize::from(area[1]) * 8);
        assert_eq!(area.iter().fold(0u8, |a, &b| a.wrapping_add(b)), 0);
        let (code, size) = rig.cmd(0x0A, 0x10, &[id]);
        assert_eq!((code, usize::from(size[0])), (0, image.len()));
    }
    assert!(fru_image(&config, 5).is_none());
}
