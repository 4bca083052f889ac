//! Debian's ipmitool against `shelfd` on 127.0.0.1: requests bridged to the boards' IPMCs
//! (`-b 0 -t 0x82`, over RMCP+ with suites 3 and 17 and over IPMI 1.5), and the PICMG LED,
//! power level and FRU control commands; outputs checked, refusals found in shelfd's log.

mod common;

use common::Shelfd;

/// The M-state the shelf manager keeps for its FRU `n` (Get Sensor Reading on 0x20).
fn hs_state(s: &Shelfd, n: u8) -> u8 {
    let raw = s.ok(17, &["raw", "0x04", "0x2d", &n.to_string()]);
    let bits = u8::from_str_radix(raw.split_whitespace().nth(2).unwrap(), 16).unwrap();
    assert_eq!(bits.count_ones(), 1, "{raw}");
    bits.trailing_zeros() as u8
}

fn fails(out: &std::process::Output, needle: &str) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success() || text.contains("failed"),
        "should fail: {text}"
    );
    assert!(text.contains(needle), "{needle} in {text}");
}

#[test]
fn ipmitool_bridges_to_each_board_ipmc() {
    let s = Shelfd::start("bridge", &[]);
    for cipher in [3, 17] {
        let mc = s.ok(cipher, &["-b", "0", "-t", "0x82", "mc", "info"]);
        assert!(mc.contains("Firmware Revision         : 1.00"), "{mc}");
        assert!(mc.contains("Provides Device SDRs      : yes"), "{mc}");
        assert!(mc.contains("FRU Inventory Device"), "{mc}");
        let p = s.ok(cipher, &["-b", "0", "-t", "0x84", "picmg", "properties"]);
        assert!(p.contains("PICMG Ext. Version : 2.2"), "{p}");
        assert!(p.contains("Max FRU Device ID\t: 0x00"), "{p}");
    }
    let a = s.ok(17, &["-b", "0", "-t", "0x84", "picmg", "addrinfo"]);
    assert!(a.contains("Hardware Address : 0x42"), "{a}");
    assert!(a.contains("IPMB-0 Address   : 0x84"), "{a}");
    assert!(a.contains("Site ID          : 0x02"), "{a}");
    let fru = s.ok(17, &["-b", "0", "-t", "0x82", "fru", "print", "0"]);
    assert!(fru.contains("Board Product         : hub-1"), "{fru}");
    assert!(fru.contains("Board Serial          : site-1"), "{fru}");
    // The IPMC's device SDRs: its MC locator and its hot-swap sensor, read in M4.
    let sdr = s.ok(17, &["-b", "0", "-t", "0x82", "sdr", "list", "all"]);
    assert!(sdr.contains("Dynamic MC @ 82h"), "{sdr}");
    let hs = sdr.lines().find(|l| l.starts_with("HS hub-1")).unwrap();
    assert!(hs.contains("0x10"), "{sdr}");
    let raw = s.ok(
        17,
        &["-b", "0", "-t", "0x84", "raw", "0x04", "0x2d", "0x00"],
    );
    assert_eq!(raw.trim(), "00 c0 10 00");
    // node-3 waits for power in M3 (bit 3).
    let raw = s.ok(
        17,
        &["-b", "0", "-t", "0x86", "raw", "0x04", "0x2d", "0x00"],
    );
    assert_eq!(raw.trim(), "00 c0 08 00");
    // Nobody at 0x90: the Send Message fails with 0x83.
    let out = s.ipmitool(
        "admin",
        "admin-secret",
        17,
        &["-b", "0", "-t", "0x90", "mc", "info"],
    );
    fails(&out, "0x83");
    // Over IPMI 1.5 too.
    let out = s.ipmitool15(
        "legacy",
        "legacy-secret",
        &[
            "-L", "OPERATOR", "-b", "0", "-t", "0x82", "picmg", "addrinfo",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Hardware Address : 0x41"), "{text}");
}

#[test]
fn ipmitool_bridged_hot_swap_obeys_privileges() {
    let s = Shelfd::start("bridge-hs", &[]);
    // A user-privilege session may read through the bridge but not deactivate.
    let args = [
        "-L",
        "USER",
        "-b",
        "0",
        "-t",
        "0x82",
        "picmg",
        "deactivate",
        "0",
    ];
    let out = s.ipmitool("viewer", "viewer-secret", 17, &args);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ok"));
    assert!(
        s.log_has("needs operator, the session holds user"),
        "{}",
        s.log()
    );
    assert_eq!(hs_state(&s, 1), 4);
    let args = [
        "-L", "USER", "-b", "0", "-t", "0x82", "raw", "0x04", "0x2d", "0x00",
    ];
    let out = s.ipmitool("viewer", "viewer-secret", 17, &args);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "00 c0 10 00");
    // An operator deactivates node-2 through its IPMC: M1, logged in the SEL; node-3 gets
    // node-2's power.
    s.ok(17, &["-b", "0", "-t", "0x84", "picmg", "deactivate", "0"]);
    assert_eq!(hs_state(&s, 2), 1);
    assert_eq!(hs_state(&s, 3), 4);
    let sel = s.ok(17, &["sel", "elist"]);
    assert!(
        sel.lines()
            .any(|l| l.contains("FRU Hot Swap HS node-2") && l.contains("Transition to M6")),
        "{sel}"
    );
    // Lock it through the bridge; the shelf manager's view agrees.
    s.ok(
        17,
        &[
            "-b", "0", "-t", "0x84", "picmg", "policy", "set", "0", "1", "1",
        ],
    );
    let policy = s.ok(
        17,
        &["-b", "0", "-t", "0x84", "picmg", "policy", "get", "0"],
    );
    assert!(policy.contains(" activation locked"), "{policy}");
    let policy = s.ok(17, &["picmg", "policy", "get", "2"]);
    assert!(policy.contains(" activation locked"), "{policy}");
    // node-3's IPMC vanished once powered: bridged requests fail, the shelf keeps M4.
    let out = s.ipmitool(
        "admin",
        "admin-secret",
        17,
        &["-b", "0", "-t", "0x86", "mc", "info"],
    );
    fails(&out, "0x83");
}

#[test]
fn ipmitool_picmg_leds_power_levels_and_fru_control() {
    let s = Shelfd::start("picmg-rest", &[]);
    let p = s.ok(17, &["picmg", "led", "prop", "1"]);
    assert!(p.contains("General Status LED Properties:  0x 3"), "{p}");
    let c = s.ok(17, &["picmg", "led", "cap", "1", "1"]);
    assert!(c.contains("LED Color Capabilities: RED"), "{c}");
    let g = s.ok(17, &["picmg", "led", "get", "1", "0"]);
    assert!(g.contains("Local Control function:     0  [OFF]"), "{g}");
    assert!(g.contains("Local Control Color:        1  [BLUE]"), "{g}");
    s.ok(17, &["picmg", "led", "set", "1", "1", "0xff", "0", "2"]);
    let g = s.ok(17, &["picmg", "led", "get", "1", "1"]);
    assert!(g.contains("[LOCAL CONTROL|OVERRIDE]"), "{g}");
    assert!(g.contains("Override function:     ff"), "{g}");
    assert!(g.contains("Override Color:        2  [RED]"), "{g}");
    // Bridged: the same LED seen from its IPMC.
    let g = s.ok(
        17,
        &["-b", "0", "-t", "0x82", "picmg", "led", "get", "0", "1"],
    );
    assert!(g.contains("Override function:     ff"), "{g}");

    let pw = s.ok(17, &["picmg", "power", "get", "1", "1"]);
    for line in [
        "Power Multiplier:            10",
        "Power Draw 1:            80",
        "Power Draw 3:            200",
    ] {
        assert!(pw.contains(line), "{line} in {pw}");
    }
    s.ok(17, &["picmg", "power", "set", "1", "2", "0"]);
    let pw = s.ok(17, &["picmg", "power", "get", "1", "0"]);
    assert!(pw.contains("Actual Power Level:          2"), "{pw}");
    let out = s.ipmitool(
        "admin",
        "admin-secret",
        17,
        &["picmg", "power", "set", "1", "0", "0"],
    );
    fails(&out, "0xcc");
    assert!(s.log_has("set power level refused"));

    let f = s.ok(17, &["picmg", "frucontrol", "1", "1"]);
    assert!(f.contains("frucontrol: ok"), "{f}");
    let f = s.ok(
        17,
        &["-b", "0", "-t", "0x84", "picmg", "frucontrol", "0", "0"],
    );
    assert!(f.contains("frucontrol: ok"), "{f}");
    // node-4 waits for power: no payload to reset.
    let out = s.ipmitool(
        "admin",
        "admin-secret",
        17,
        &["picmg", "frucontrol", "4", "1"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("frucontrol: ok"), "{text}");
    assert_eq!(hs_state(&s, 1), 4);
}
