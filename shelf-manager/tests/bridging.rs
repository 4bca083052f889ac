//! Send Message bridging to the simulated IPMCs and the rest of the PICMG set (shelf address
//! info, FRU control, LEDs, power levels, device locator record ids), over an RMCP+ session
//! without sockets: `configs/shelf-sim.toml` behind a [`ShelfHandler`], driven by the
//! in-crate console. The same over UDP with ipmitool is in `ipmitool_bridging.rs`.

use std::net::SocketAddr;
use std::path::Path;

use shelf_manager::commands::ShelfHandler;
use shelf_manager::commands::sensor::state_of_reading;
use shelf_manager::hotswap::MState;
use shelf_manager::ipmc::SimIpmc;
use shelf_manager::model::Config;
use shelf_manager::rmcp::console::Console;
use shelf_manager::rmcp::crypto::Suite;
use shelf_manager::rmcp::server::{Outcome, Refusal, Server, ServerConfig};
use shelf_manager::rmcp::users::{Privilege, Users};
use shelf_manager::shelf::Shelf;

const FROM: ([u8; 4], u16) = ([127, 0, 0, 1], 4100);
const APP: u8 = 0x06;
const SENSOR: u8 = 0x04;
const STORAGE: u8 = 0x0A;
const PICMG: u8 = 0x2C;

struct Rig {
    server: Server,
    handler: ShelfHandler<SimIpmc>,
    now: u64,
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |a, &b| a.wrapping_add(b))
        .wrapping_neg()
}

/// Send Message data: IPMB-0 with tracking, the request to `to` as ipmitool builds it.
fn send_message(to: u8, netfn: u8, cmd: u8, data: &[u8]) -> Vec<u8> {
    let mut m = vec![0x40, to, netfn << 2];
    m.push(checksum(&m[1..3]));
    m.extend_from_slice(&[0x81, 0x05 << 2, cmd]);
    m.extend_from_slice(data);
    let sum = checksum(&m[4..]);
    m.push(sum);
    m
}

impl Rig {
    /// The sim shelf with every board inserted and its handle closed: hub-1 and node-2 in
    /// M4, node-3 waiting for power in M3 and node-4 waiting behind it.
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
            "[[user]]\nname = \"op\"\npassword = \"op-pw\"\nprivilege = \"operator\"\n\
             [[user]]\nname = \"viewer\"\npassword = \"viewer-pw\"\nprivilege = \"user\"\n",
            "users",
        )
        .unwrap();
        Rig {
            server: Server::new(ServerConfig::default(), users),
            handler,
            now: 1_700_000_000_000,
        }
    }

    fn send(&mut self, pkt: &[u8]) -> Outcome {
        self.now += 1;
        self.server
            .handle_datagram(self.now, SocketAddr::from(FROM), pkt, &mut self.handler)
    }

    /// A session of `user` at its highest privilege.
    fn login(&mut self, user: &str, password: &str, role: u8) -> Console {
        let mut c = Console::new(Suite::Sha256, 0x77 + u32::from(role), user, password, role);
        let open = self.send(&c.open_session()).reply.unwrap();
        let r1 = c.rakp1(&open).unwrap();
        let r2 = self.send(&r1).reply.unwrap();
        let r3 = c.rakp3(&r2).unwrap();
        let r4 = self.send(&r3).reply.unwrap();
        c.finish(&r4).unwrap();
        let set = c.request(APP, 0x3B, &[role]);
        let o = self.send(&set);
        assert_eq!(c.response(&o.reply.unwrap()).unwrap(), (0, vec![role]));
        c
    }

    fn cmd(&mut self, c: &mut Console, netfn: u8, cmd: u8, data: &[u8]) -> (u8, Vec<u8>) {
        let pkt = c.request(netfn, cmd, data);
        let o = self.send(&pkt);
        assert_eq!(o.bridged, None);
        c.response(&o.reply.unwrap()).unwrap()
    }

    /// A request bridged to `to`: the Send Message completion code, and the IPMC's answer
    /// (completion code, data) when it came.
    fn bridged(
        &mut self,
        c: &mut Console,
        to: u8,
        netfn: u8,
        cmd: u8,
        data: &[u8],
    ) -> (u8, Option<(u8, Vec<u8>)>) {
        let pkt = c.request(APP, 0x34, &send_message(to, netfn, cmd, data));
        let o = self.send(&pkt);
        let (code, rest) = c.response(&o.reply.unwrap()).unwrap();
        assert!(rest.is_empty(), "Send Message answers no data");
        let answer = o.bridged.map(|b| {
            let m = c.open(&b).unwrap();
            // Requester: the console; responder: the IPMC; the console's sequence number.
            assert_eq!(m[0], 0x81);
            assert_eq!(m[1] >> 2, netfn | 1);
            assert_eq!(m[3], to);
            assert_eq!(m[5], cmd);
            (m[6], m[7..m.len() - 1].to_vec())
        });
        assert!(code != 0 || answer.is_some(), "a taken request is answered");
        (code, answer)
    }

    fn direct_state(&mut self, c: &mut Console, board: u8) -> MState {
        let (code, reading) = self.cmd(c, SENSOR, 0x2D, &[board]);
        assert_eq!(code, 0);
        state_of_reading(&reading).unwrap()
    }

    fn bridged_state(&mut self, c: &mut Console, to: u8) -> MState {
        let (code, answer) = self.bridged(c, to, SENSOR, 0x2D, &[0]);
        assert_eq!(code, 0);
        let (cc, reading) = answer.unwrap();
        assert_eq!(cc, 0);
        state_of_reading(&reading).unwrap()
    }
}

#[test]
fn the_ipmc_answer_comes_as_a_second_message_with_the_console_sequence_number() {
    let mut rig = Rig::new();
    let mut c = rig.login("op", "op-pw", 3);
    let pkt = c.request(APP, 0x34, &send_message(0x82, APP, 0x01, &[]));
    let o = rig.send(&pkt);
    assert_eq!(o.refused, None);
    let first = c.open(&o.reply.unwrap()).unwrap();
    // The Send Message response from the shelf manager, completion code 0, no data.
    assert_eq!(
        (first[3], first[5], first[6], first.len()),
        (0x20, 0x34, 0, 8)
    );
    let second = c.open(&o.bridged.unwrap()).unwrap();
    assert_eq!(
        second[4] >> 2,
        first[4] >> 2,
        "same rqSeq as the Send Message"
    );
    assert_eq!(checksum(&second[..2]), second[2]);
    assert_eq!(
        checksum(&second[3..second.len() - 1]),
        second[second.len() - 1]
    );
    assert_eq!((second[3], second[5], second[6]), (0x82, 0x01, 0));
    // Get Device ID: provides device SDRs, FRU inventory and sensor device.
    assert_eq!(second[7 + 1] & 0x80, 0x80);
    assert_eq!(second[7 + 5], 0x29);
}

#[test]
fn each_ipmc_answers_for_its_own_board() {
    let mut rig = Rig::new();
    let mut c = rig.login("viewer", "viewer-pw", 2);
    for (to, site, name) in [(0x82u8, 1u8, "hub-1"), (0x84, 2, "node-2")] {
        // PICMG properties of an IPMC with one FRU, and its own address.
        let (_, a) = rig.bridged(&mut c, to, PICMG, 0x00, &[0]);
        assert_eq!(a.unwrap(), (0, vec![0, 0x22, 0, 0]));
        let (_, a) = rig.bridged(&mut c, to, PICMG, 0x01, &[0, 0]);
        assert_eq!(a.unwrap(), (0, vec![0, to >> 1, to, 0xFF, 0, site, 0]));
        // FRU inventory: the board area names the board and its site.
        let (_, a) = rig.bridged(&mut c, to, STORAGE, 0x10, &[0]);
        let (cc, info) = a.unwrap();
        assert_eq!(cc, 0);
        let size = u16::from_le_bytes([info[0], info[1]]);
        let (_, a) = rig.bridged(&mut c, to, STORAGE, 0x11, &[0, 0, 0, size as u8]);
        let (cc, data) = a.unwrap();
        assert_eq!((cc, usize::from(data[0])), (0, usize::from(size)));
        let text = String::from_utf8_lossy(&data[1..]);
        assert!(text.contains(name) && text.contains(&format!("site-{site}")));
        // Device SDRs: the MC Device Locator first, then the hot-swap sensor, owned by
        // the IPMC, number 0.
        let (_, a) = rig.bridged(&mut c, to, SENSOR, 0x20, &[1]);
        assert_eq!(a.unwrap(), (0, vec![2, 0x01]));
        let (_, a) = rig.bridged(&mut c, to, SENSOR, 0x21, &[0, 0, 0, 0, 0, 0xFF]);
        let (cc, r) = a.unwrap();
        assert_eq!(
            (cc, &r[..2], r[2 + 3], r[2 + 5]),
            (0, &[2u8, 0][..], 0x12, to)
        );
        let (_, a) = rig.bridged(&mut c, to, SENSOR, 0x21, &[0, 0, 2, 0, 0, 0xFF]);
        let (cc, r) = a.unwrap();
        let r = &r[2..];
        assert_eq!(
            (cc, r[3], r[5], r[7], r[12], r[13]),
            (0, 0x02, to, 0, 0xF0, 0x6F)
        );
        // The hot-swap sensor reads the state the shelf keeps.
        assert_eq!(rig.bridged_state(&mut c, to), MState::M4);
    }
    assert_eq!(rig.bridged_state(&mut c, 0x86), MState::M3);
    assert_eq!(rig.bridged_state(&mut c, 0x88), MState::M3);
    // A sensor the IPMC does not have, a command it does not know.
    let (_, a) = rig.bridged(&mut c, 0x82, SENSOR, 0x2D, &[5]);
    assert_eq!(a.unwrap().0, 0xCB);
    let (_, a) = rig.bridged(&mut c, 0x82, 0x30, 0x01, &[1]);
    assert_eq!(a.unwrap().0, 0xC1);
}

#[test]
fn absent_and_vanished_ipmcs_fail_the_send_message_with_0x83() {
    let mut rig = Rig::new();
    let mut c = rig.login("op", "op-pw", 3);
    // No board at 0x90.
    assert_eq!(rig.bridged(&mut c, 0x90, APP, 0x01, &[]), (0x83, None));
    // node-2 out: node-3 gets its power, becomes active and its IPMC vanishes.
    assert_eq!(rig.cmd(&mut c, PICMG, 0x0C, &[0, 2, 0]), (0, vec![0]));
    assert_eq!(rig.direct_state(&mut c, 3), MState::M4);
    assert_eq!(rig.bridged(&mut c, 0x86, APP, 0x01, &[]), (0x83, None));
    // Also for what the shelf core would answer in its name.
    assert_eq!(rig.bridged(&mut c, 0x86, SENSOR, 0x2D, &[0]), (0x83, None));
    assert_eq!(
        rig.bridged(&mut c, 0x86, PICMG, 0x0C, &[0, 0, 0]),
        (0x83, None)
    );
    assert_eq!(rig.direct_state(&mut c, 3), MState::M4);
    // A pulled board's IPMC is gone too.
    rig.handler.ipmc_mut().extract("node-4");
    rig.handler.settle();
    assert_eq!(rig.bridged(&mut c, 0x88, APP, 0x01, &[]), (0x83, None));
}

#[test]
fn bridged_activation_and_policy_drive_the_shelf_hot_swap_machine() {
    let mut rig = Rig::new();
    let mut c = rig.login("op", "op-pw", 3);
    // Deactivate node-2 through its IPMC (FRU 0 there): M4 -> M6 -> M1, seen both ways.
    let (code, a) = rig.bridged(&mut c, 0x84, PICMG, 0x0C, &[0, 0, 0]);
    assert_eq!((code, a.unwrap()), (0, (0, vec![0])));
    assert_eq!(rig.direct_state(&mut c, 2), MState::M1);
    assert_eq!(rig.bridged_state(&mut c, 0x84), MState::M1);
    // Lock it and read the policy back, bridged and direct.
    let (_, a) = rig.bridged(&mut c, 0x84, PICMG, 0x0A, &[0, 0, 1, 1]);
    assert_eq!(a.unwrap(), (0, vec![0]));
    let (_, a) = rig.bridged(&mut c, 0x84, PICMG, 0x0B, &[0, 0]);
    assert_eq!(a.unwrap(), (0, vec![0, 1]));
    assert_eq!(rig.cmd(&mut c, PICMG, 0x0B, &[0, 2]), (0, vec![0, 1]));
    // A FRU id the IPMC does not have.
    let (_, a) = rig.bridged(&mut c, 0x84, PICMG, 0x0C, &[0, 3, 1]);
    assert_eq!(a.unwrap().0, 0xCC);
    // Activate in M1 is refused by the machine (0xD5), as directly.
    let (_, a) = rig.bridged(&mut c, 0x84, PICMG, 0x0C, &[0, 0, 1]);
    assert_eq!(a.unwrap(), (0xD5, vec![0]));
    assert_eq!(rig.bridged_state(&mut c, 0x84), MState::M1);
}

#[test]
fn bridged_requests_obey_the_session_privilege_and_refusals_change_nothing() {
    let mut rig = Rig::new();
    let mut c = rig.login("viewer", "viewer-pw", 2);
    for (netfn, cmd, data) in [
        (PICMG, 0x0C, vec![0, 0, 0]),
        (PICMG, 0x0A, vec![0, 0, 2, 0]),
        (PICMG, 0x04, vec![0, 0, 0]),
        (PICMG, 0x07, vec![0, 0, 1, 0xFF, 0, 1]),
        (PICMG, 0x11, vec![0, 0, 1, 0]),
    ] {
        let pkt = c.request(APP, 0x34, &send_message(0x84, netfn, cmd, &data));
        let o = rig.send(&pkt);
        assert_eq!(o.bridged, None);
        assert!(
            matches!(
                o.refused,
                Some(Refusal::InsufficientPrivilege {
                    netfn: PICMG,
                    cmd: x,
                    needed: Privilege::Operator,
                    held: Privilege::User,
                }) if x == cmd
            ),
            "{:?}",
            o.refused
        );
        assert_eq!(c.response(&o.reply.unwrap()).unwrap().0, 0xD4);
    }
    assert_eq!(rig.direct_state(&mut c, 2), MState::M4);
    assert_eq!(rig.handler.ipmc_mut().controls("node-2"), Some(&[][..]));
    assert_eq!(rig.handler.ipmc_mut().payload_level("node-2"), Some(2));
    // Reads still work in the same session.
    assert_eq!(rig.bridged_state(&mut c, 0x84), MState::M4);
}

#[test]
fn malformed_send_messages_are_refused_with_invalid_data() {
    let mut rig = Rig::new();
    let mut c = rig.login("op", "op-pw", 3);
    let good = send_message(0x82, APP, 0x01, &[]);
    let mut bad_sum = good.clone();
    *bad_sum.last_mut().unwrap() ^= 1;
    let mut channel_1 = good.clone();
    channel_1[0] = 0x41;
    let mut untracked = good.clone();
    untracked[0] = 0x00;
    for (data, malformed) in [
        (bad_sum, true),
        (channel_1, false),
        (untracked, false),
        (vec![0x40, 0x82], true),
    ] {
        let pkt = c.request(APP, 0x34, &data);
        let o = rig.send(&pkt);
        assert_eq!(o.bridged, None);
        assert_eq!(matches!(o.refused, Some(Refusal::Malformed(_))), malformed);
        assert_eq!(c.response(&o.reply.unwrap()).unwrap().0, 0xCC);
    }
    let (code, a) = rig.bridged(&mut c, 0x82, APP, 0x01, &[]);
    assert_eq!((code, a.unwrap().0), (0, 0));
}

#[test]
fn a_retransmitted_send_message_gets_both_answers_again_without_running_twice() {
    let mut rig = Rig::new();
    let mut c = rig.login("op", "op-pw", 3);
    let pkt = c.request(APP, 0x34, &send_message(0x82, PICMG, 0x04, &[0, 0, 1]));
    let first = rig.send(&pkt);
    assert_eq!(first.refused, None);
    let again = rig.send(&pkt);
    assert!(matches!(again.refused, Some(Refusal::Replayed { .. })));
    assert_eq!(again.reply, first.reply);
    assert_eq!(again.bridged, first.bridged);
    assert!(again.bridged.is_some());
    assert_eq!(rig.handler.ipmc_mut().controls("hub-1"), Some(&[1u8][..]));
}

#[test]
fn shelf_address_and_device_locator_record_ids() {
    let mut rig = Rig::new();
    let mut c = rig.login("viewer", "viewer-pw", 2);
    let (code, data) = rig.cmd(&mut c, PICMG, 0x02, &[0]);
    assert_eq!(code, 0);
    assert_eq!(data[1], 0xC0 | 11);
    assert_eq!(&data[2..], b"sim-shelf-1");
    // Each board's locator id names its IPMC's MC Device Locator in the repository.
    for fru in 1..=4u8 {
        let (code, id) = rig.cmd(&mut c, PICMG, 0x0D, &[0, fru]);
        assert_eq!((code, id[0]), (0, 0));
        let (_, res) = rig.cmd(&mut c, STORAGE, 0x22, &[]);
        let (code, r) = rig.cmd(
            &mut c,
            STORAGE,
            0x23,
            &[res[0], res[1], id[1], id[2], 0, 0xFF],
        );
        assert_eq!(code, 0);
        let r = &r[2..];
        assert_eq!((&r[..2], r[3], r[5]), (&id[1..], 0x12, 0x80 + 2 * fru));
    }
    assert_eq!(rig.cmd(&mut c, PICMG, 0x0D, &[0, 0]).0, 0xCB);
    assert_eq!(rig.cmd(&mut c, PICMG, 0x0D, &[0, 9]).0, 0xCC);
    // Bridged: the IPMC's own MC Device Locator (record 1 of its device SDRs).
    let (_, a) = rig.bridged(&mut c, 0x84, PICMG, 0x0D, &[0, 0]);
    assert_eq!(a.unwrap(), (0, vec![0, 1, 0]));
}

#[test]
fn power_levels_are_read_from_the_ipmc_and_set_only_within_the_grant() {
    let mut rig = Rig::new();
    let mut c = rig.login("op", "op-pw", 3);
    // hub-1: levels 80, 150, 200 W; multiplier 1 W (10 × 0.1 W).
    let desired = rig.cmd(&mut c, PICMG, 0x12, &[0, 1, 1]);
    assert_eq!(desired, (0, vec![0, 3, 0, 10, 80, 150, 200]));
    assert_eq!(rig.cmd(&mut c, PICMG, 0x11, &[0, 1, 2, 0]), (0, vec![0]));
    assert_eq!(rig.handler.ipmc_mut().payload_level("hub-1"), Some(2));
    let present = rig.cmd(&mut c, PICMG, 0x12, &[0, 1, 0]);
    assert_eq!(present.1[1], 2);
    // Off (a deactivation's job) and past the levels are refused; nothing changes.
    assert_eq!(rig.cmd(&mut c, PICMG, 0x11, &[0, 1, 0, 0]).0, 0xCC);
    assert_eq!(rig.cmd(&mut c, PICMG, 0x11, &[0, 1, 4, 0]).0, 0xCC);
    assert_eq!(rig.handler.ipmc_mut().payload_level("hub-1"), Some(2));
    // node-3 waits for power in M3: no level may be set.
    assert_eq!(rig.cmd(&mut c, PICMG, 0x11, &[0, 3, 1, 0]).0, 0xD5);
    assert_eq!(rig.handler.ipmc_mut().payload_level("node-3"), Some(0));
    // Bridged, the same rule.
    let (_, a) = rig.bridged(&mut c, 0x86, PICMG, 0x11, &[0, 0, 1, 0]);
    assert_eq!(a.unwrap().0, 0xD5);
    let (_, a) = rig.bridged(&mut c, 0x82, PICMG, 0x11, &[0, 0, 3, 0]);
    assert_eq!(a.unwrap().0, 0);
    assert_eq!(rig.handler.ipmc_mut().payload_level("hub-1"), Some(3));
}

#[test]
fn leds_and_fru_control_through_the_shelf_manager() {
    let mut rig = Rig::new();
    let mut c = rig.login("op", "op-pw", 3);
    // Blue LED and LED 1, no application LEDs; blue can only be blue, LED 1 red.
    assert_eq!(rig.cmd(&mut c, PICMG, 0x05, &[0, 1]), (0, vec![0, 3, 0]));
    assert_eq!(
        rig.cmd(&mut c, PICMG, 0x06, &[0, 1, 0]),
        (0, vec![0, 2, 1, 1])
    );
    assert_eq!(
        rig.cmd(&mut c, PICMG, 0x06, &[0, 1, 1]),
        (0, vec![0, 4, 2, 2])
    );
    // Local control: blue off while the payload runs (hub-1), on while it is off (node-4).
    assert_eq!(
        rig.cmd(&mut c, PICMG, 0x08, &[0, 1, 0]),
        (0, vec![0, 1, 0, 0, 1])
    );
    assert_eq!(
        rig.cmd(&mut c, PICMG, 0x08, &[0, 4, 0]),
        (0, vec![0, 1, 0xFF, 0, 1])
    );
    // Override LED 1: blink 500 ms off / 200 ms on, red; then back to local control.
    assert_eq!(
        rig.cmd(&mut c, PICMG, 0x07, &[0, 1, 1, 50, 20, 2]),
        (0, vec![0])
    );
    assert_eq!(
        rig.cmd(&mut c, PICMG, 0x08, &[0, 1, 1]),
        (0, vec![0, 3, 0, 0, 2, 50, 20, 2])
    );
    assert!(rig.handler.ipmc_mut().led_override("hub-1", 1).is_some());
    // A colour the LED lacks, an LED that does not exist: refused, state kept.
    assert_eq!(rig.cmd(&mut c, PICMG, 0x07, &[0, 1, 1, 0xFF, 0, 3]).0, 0xCC);
    assert_eq!(rig.cmd(&mut c, PICMG, 0x07, &[0, 1, 5, 0xFF, 0, 2]).0, 0xCC);
    assert_eq!(rig.cmd(&mut c, PICMG, 0x08, &[0, 1, 1]).1[1], 3);
    assert_eq!(
        rig.cmd(&mut c, PICMG, 0x07, &[0, 1, 1, 0xFC, 0, 0x0F]),
        (0, vec![0])
    );
    assert_eq!(rig.handler.ipmc_mut().led_override("hub-1", 1), None);
    // FRU Control: capabilities, a warm reset of a running payload, refused without one.
    assert_eq!(rig.cmd(&mut c, PICMG, 0x1E, &[0, 1]), (0, vec![0, 0x0E]));
    assert_eq!(rig.cmd(&mut c, PICMG, 0x04, &[0, 1, 1]), (0, vec![0]));
    assert_eq!(rig.cmd(&mut c, PICMG, 0x04, &[0, 4, 0]).0, 0xD5);
    assert_eq!(rig.cmd(&mut c, PICMG, 0x04, &[0, 1, 7]).0, 0xCC);
    assert_eq!(rig.handler.ipmc_mut().controls("hub-1"), Some(&[1u8][..]));
    assert_eq!(rig.handler.ipmc_mut().controls("node-4"), Some(&[][..]));
    // The shelf manager itself (FRU 0) has none of these.
    assert_eq!(rig.cmd(&mut c, PICMG, 0x05, &[0, 0]).0, 0xCC);
    // Operator commands need operator: a user session is refused.
    let mut v = rig.login("viewer", "viewer-pw", 2);
    assert_eq!(rig.cmd(&mut v, PICMG, 0x04, &[0, 1, 1]).0, 0xD4);
    assert_eq!(rig.cmd(&mut v, PICMG, 0x07, &[0, 1, 1, 0xFF, 0, 2]).0, 0xD4);
    assert_eq!(rig.cmd(&mut v, PICMG, 0x11, &[0, 1, 1, 0]).0, 0xD4);
    assert_eq!(rig.handler.ipmc_mut().controls("hub-1"), Some(&[1u8][..]));
}

#[test]
fn clearing_a_clear_lock_asks_for_activation_or_deactivation_as_hpi_does() {
    let mut rig = Rig::new();
    let mut c = rig.login("op", "op-pw", 3);
    // node-2 deactivated to M1 (its handle stays closed); node-3 gets its power.
    assert_eq!(rig.cmd(&mut c, PICMG, 0x0C, &[0, 2, 0]), (0, vec![0]));
    assert_eq!(rig.direct_state(&mut c, 2), MState::M1);
    // HPI's insertion action request: "clear Locked" (mask 1, value 0) on an unlocked FRU in
    // M1. It goes to M2 and asks for power, which node-3 now holds: M3.
    let (_, a) = rig.bridged(&mut c, 0x84, PICMG, 0x0A, &[0, 0, 1, 0]);
    assert_eq!(a.unwrap(), (0, vec![0]));
    assert_eq!(rig.direct_state(&mut c, 2), MState::M3);
    assert_eq!(rig.cmd(&mut c, PICMG, 0x0B, &[0, 2]), (0, vec![0, 0]));
    // HPI's extraction action request: "clear Deactivation-Locked" (mask 2, value 0) on
    // hub-1 in M4: M5, and the shelf deactivates it (M6, M1); node-2 gets the power.
    assert_eq!(rig.cmd(&mut c, PICMG, 0x0A, &[0, 1, 2, 0]), (0, vec![0]));
    assert_eq!(rig.direct_state(&mut c, 1), MState::M1);
    assert_eq!(rig.direct_state(&mut c, 2), MState::M4);
    // The same requests in other states change nothing.
    assert_eq!(rig.cmd(&mut c, PICMG, 0x0A, &[0, 2, 1, 0]), (0, vec![0]));
    assert_eq!(rig.cmd(&mut c, PICMG, 0x0A, &[0, 1, 2, 0]), (0, vec![0]));
    assert_eq!(rig.direct_state(&mut c, 2), MState::M4);
    assert_eq!(rig.direct_state(&mut c, 1), MState::M1);
    assert_eq!(rig.cmd(&mut c, PICMG, 0x0B, &[0, 1]), (0, vec![0, 0]));
}
