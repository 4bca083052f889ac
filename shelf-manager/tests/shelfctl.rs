//! `shelfctl` against `shelfd`: status, simulated handles, activation, policy, SEL, and its
//! error messages.

mod common;

use std::process::Command;

use common::Shelfd;

fn shelfctl(s: &Shelfd, user: &str, password: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shelfctl"))
        .args(["--host", &s.addr.to_string(), "-U", user])
        .args(args)
        .env("SHELF_PASSWORD", password)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ok(s: &Shelfd, args: &[&str]) -> String {
    let (success, text) = shelfctl(s, "op", "op-secret", args);
    assert!(success, "shelfctl {args:?}: {text}");
    text
}

/// The state column of FRU `fru` in `status`.
fn state(s: &Shelfd, fru: u8) -> String {
    let status = ok(s, &["status"]);
    status
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&fru.to_string()))
        .and_then(|l| l.split_whitespace().nth(4))
        .unwrap_or_else(|| panic!("FRU {fru} in {status}"))
        .to_string()
}

#[test]
fn status_handles_activation_policy_and_sel() {
    let s = Shelfd::start("shelfctl", &["--manual-activation"]);
    let status = ok(&s, &["status"]);
    assert!(
        status.contains("1    hub-1             1     0x82  M2     -"),
        "{status}"
    );
    assert!(status.contains("Feed A W: 0 W granted"), "{status}");
    assert!(
        status.contains("power budget: no FRU waits for power"),
        "{status}"
    );
    for fru in ["1", "2", "3"] {
        ok(&s, &["activate", fru]);
    }
    assert_eq!(
        [state(&s, 1), state(&s, 2), state(&s, 3)],
        ["M4", "M4", "M3"]
    );
    let status = ok(&s, &["status"]);
    assert!(status.contains("Feed B W: 400 W granted"), "{status}");
    assert!(status.contains("a FRU waits in M3 for power"), "{status}");
    // Opening hub-1's handle: M5, where manual activation waits for the manager.
    ok(&s, &["handle", "open", "1"]);
    assert_eq!(state(&s, 1), "M5");
    ok(&s, &["deactivate", "1"]);
    assert_eq!([state(&s, 1), state(&s, 3)], ["M1", "M4"]);
    // Policy.
    let p = ok(&s, &["policy", "4", "--locked", "on"]);
    assert!(p.contains("FRU 4: policy locked"), "{p}");
    // The SEL, decoded.
    let sel = ok(&s, &["sel"]);
    assert!(sel.contains("FRU 3: power denied at level 2"), "{sel}");
    assert!(
        sel.contains("hub-1 (IPMC 0x82 FRU 0): M4 -> M5 (cause 2)"),
        "{sel}"
    );
    assert!(
        sel.contains("node-3 (IPMC 0x86 FRU 0): M3 -> M4 (cause 0)"),
        "{sel}"
    );
    // node-2 pulled out (surprise extraction, cause 6) and inserted again, handle open.
    // (node-3 would not do: its IPMC stopped answering once active, so it reports nothing,
    // not even its extraction.)
    ok(&s, &["presence", "pull", "2"]);
    assert_eq!(state(&s, 2), "M0");
    let sel = ok(&s, &["sel"]);
    assert!(
        sel.contains("node-2 (IPMC 0x84 FRU 0): M4 -> M0 (cause 6)"),
        "{sel}"
    );
    let (success, text) = shelfctl(&s, "op", "op-secret", &["presence", "pull", "2"]);
    assert!(!success && text.contains("0xd5"), "pulled twice: {text}");
    ok(&s, &["presence", "insert", "2"]);
    assert_eq!(state(&s, 2), "M1");
}

#[test]
fn errors_are_explained() {
    let s = Shelfd::start("shelfctl-errors", &[]);
    let (success, text) = shelfctl(&s, "op", "nope", &["status"]);
    assert!(
        !success && text.contains("shelfctl: wrong password"),
        "{text}"
    );
    let (success, text) = shelfctl(&s, "ghost", "x", &["status"]);
    assert!(
        !success && text.contains("shelfctl: unknown user"),
        "{text}"
    );
    let (success, text) = shelfctl(&s, "viewer", "viewer-secret", &["deactivate", "1"]);
    assert!(
        !success && text.contains("may not hold the privilege"),
        "{text}"
    );
    let (success, text) = shelfctl(&s, "op", "op-secret", &["activate", "1"]);
    assert!(
        !success && text.contains("not accepted in the FRU's present state (completion code 0xd5)"),
        "{text}"
    );
    let (success, text) = shelfctl(&s, "op", "op-secret", &["activate", "9"]);
    assert!(!success && text.contains("no such FRU"), "{text}");
    // Reads work for a user-level account.
    let (success, text) = shelfctl(&s, "viewer", "viewer-secret", &["status"]);
    assert!(success, "{text}");
}
