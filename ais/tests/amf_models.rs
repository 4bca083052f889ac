//! AMF with real executives on loopback, one cluster per redundancy model, driven through
//! every recovery action and administrative operation. The components are this binary
//! (`harness = false`: started as `amf_models component DIR` it is the test component of
//! `common::amf`, which writes what it holds to files). Each step checks what the
//! components hold, what `aisctl amf status` says (the tree with readiness, components and
//! CSIs) and the executives' log lines.
//!
//! 1. **2N** (two nodes, SUs of two components at two instantiation levels;
//!    `comp_restart_max = 1`, `su_restart_max = 1`): `kill -9` of the active component is a
//!    component restart (only that component's process is new, the SU stays active); the
//!    second within the probation escalates to an SU restart (both processes new); the
//!    third is a component restart again and the fourth escalates past `su_restart_max` to
//!    an SU failover (the standby takes over; the failed SU is repaired and becomes the
//!    standby). Then `aisctl amf restart` of the active SU; a component that stops answering
//!    its health checks (its check's recovery is `su-failover`); lock and unlock of the
//!    active SU; shutdown (the active quiesced before it is removed); lock-instantiation
//!    (processes gone, presence uninstantiated) and unlock-instantiation.
//! 2. **N+M** (2+1 on three nodes, two SIs, recovery `su-failover`): SU failover to the
//!    SI's standby; node failover by error report (the node's SUs are not repaired); node
//!    failfast by error report, whose command kills the executive: the SI goes to the last
//!    node after the fence delay.
//! 3. **N-way active** (three SUs, one SI active in all): component restart keeps the SI in
//!    three; shutdown of an SU quiesces and removes its assignment; lock and unlock of the SI.
//! 4. **No redundancy** (two SUs, two SIs): a component restart gives the SU its SI back;
//!    a locked SU's SI stays unassigned (no other SU is free) until it is unlocked.

mod common;

use std::time::{Duration, Instant};

use ais_client::amf::{Readiness, Tree, recovery};
use common::amf::{AmfCluster, alive, component, line_of, su_block};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("component") {
        component(std::path::Path::new(&args[2]));
        return;
    }
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-'));
    let tests: [(&str, fn()); 4] = [
        ("two_n_recovery_escalation_and_admin", two_n),
        ("n_plus_m_failover_node_failover_failfast", n_plus_m),
        ("n_way_active_restart_shutdown_si_lock", n_way_active),
        ("no_redundancy_restart_and_lock", no_redundancy),
    ];
    for (name, test) in tests {
        if filter.is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let start = Instant::now();
        test();
        println!(
            "test {name} ... ok ({:.1} s)",
            start.elapsed().as_secs_f64()
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The SU holding SI `si` in HA state `ha` (confirmed) in `tree`.
fn holder(tree: &Tree, si: &str, ha: &str) -> Option<String> {
    tree.sgs
        .iter()
        .flat_map(|g| &g.sis)
        .filter(|s| s.name == si)
        .flat_map(|s| &s.assignments)
        .find(|a| a.held.map(|h| h.name()) == Some(ha) && a.held == a.target)
        .map(|a| a.su.clone())
}

/// Every SI of `tree` settled (no assignment changing) with the given number of actives
/// and standbys.
fn settled(tree: &Tree, actives: usize, standbys: usize) -> bool {
    tree.sgs.iter().flat_map(|g| &g.sis).all(|s| {
        let count = |ha: &str| {
            s.assignments
                .iter()
                .filter(|a| a.held == a.target && a.held.map(|h| h.name()) == Some(ha))
                .count()
        };
        s.assignments.iter().all(|a| a.held == a.target)
            && count("active") == actives
            && count("standby") == standbys
    })
}

const TWO_N: &str = r#"
[comp_type.svc]
instantiate = {cmd}

[comp_type.svc.health_check.ping]
period_ms = 500
max_duration_ms = 1000
recovery = "su-failover"

[comp_type.aux]
instantiate = {cmd}
instantiation_level = 2

[sg.tn]
redundancy = "2n"
components = ["svc", "aux"]
comp_restart_max = 1
su_restart_max = 1
su.tn-1 = { node = "n1" }
su.tn-2 = { node = "n2" }

[si.tn]
sg = "tn"
csi.state = { comp_type = "svc" }
"#;

/// The status line of SI `si` with the confirmed assignments `asg` (SU, HA state), in the
/// order of the SUs' names (their model order in these tests).
fn si_line(si: &str, asg: &[(&str, &str)]) -> String {
    let mut asg = asg.to_vec();
    asg.sort();
    let text: Vec<String> = asg.iter().map(|(su, ha)| format!("{su} {ha}")).collect();
    format!("SI {si}: {}", text.join(", "))
}

fn two_n() {
    let mut a = AmfCluster::new("amf-2n", 2, TWO_N);
    a.socket_for("tn-1", 1);
    a.socket_for("tn-2", 2);
    a.start();
    let both = [1, 2];

    // Setup: one SU active (the first to be instantiated), the other standby, at both
    // nodes, with every state. x is the SU first active, y the other; nx, ny their nodes.
    a.wait("one active, one standby", 1, |a| {
        let (h1, h2) = (a.ha("tn-1", "svc", "tn"), a.ha("tn-2", "svc", "tn"));
        (h1 == "active" && h2 == "standby") || (h1 == "standby" && h2 == "active")
    });
    let (x, y) = if a.ha("tn-1", "svc", "tn") == "active" {
        ("tn-1", "tn-2")
    } else {
        ("tn-2", "tn-1")
    };
    let (nx, ny) = (node_of(x), node_of(y));
    let status = a.wait_line(&both, &si_line("tn", &[(x, "active"), (y, "standby")]));
    assert_eq!(line_of(&status, "SG tn "), "SG tn (2n), application tn");
    assert_eq!(
        su_block(&status, x),
        [
            format!("SU {x} on node {nx}: in-service, unlocked, enabled, instantiated"),
            "component svc: in-service, enabled, instantiated; CSI state of SI tn active".into(),
            "component aux: in-service, enabled, instantiated".into(),
        ],
        "{status}"
    );
    assert_eq!(
        su_block(&status, y)[1],
        "component svc: in-service, enabled, instantiated; CSI state of SI tn standby"
    );
    // Both nodes answer the same tree (each knows its own components, the other's from the
    // replicated SU state: in a settled cluster they agree).
    let (t1, t2) = (a.tree(1), a.tree(2));
    assert_eq!((t1.node, t2.node), (1, 2));
    assert_eq!(t1.sgs, t2.sgs);
    // And as JSON.
    let (ok, json) = a.aisctl(2, &["status", "--json"]);
    assert!(ok, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let su = &v["sgs"][0]["sus"][nx - 1];
    assert_eq!(su["name"], x);
    assert_eq!(su["readiness"], "in-service");
    assert_eq!(su["admin"], "unlocked");
    assert_eq!(su["operational"], "enabled");
    assert_eq!(su["presence"], "instantiated");
    assert_eq!(su["components"][0]["name"], "svc");
    assert_eq!(su["components"][0]["readiness"], "in-service");
    assert_eq!(su["components"][0]["csis"][0]["ha"], "active");
    assert_eq!(
        v["sgs"][0]["sis"][0]["assignments"][ny - 1]["ha"],
        "standby"
    );
    assert_eq!(v["quorate"], true);

    // 1. kill -9 of the active component: component restart, the SU stays active.
    let recoveries = |a: &AmfCluster, su: &str, action: &str| {
        a.log_lines(node_of(su), &["amf: recovery", su, action])
    };
    let (svc, aux) = (a.pid(x, "svc"), a.pid(x, "aux"));
    let killed = a.kill_comp(x, "svc");
    a.wait("the svc restarted and active again", nx, |a| {
        a.pid(x, "svc") != svc && a.ha(x, "svc", "tn") == "active"
    });
    println!(
        "amf_models 2n: kill -9 of the active component to it holding active again (component restart): {:.1} ms",
        ms(killed.elapsed())
    );
    assert_eq!(
        a.pid(x, "aux"),
        aux,
        "a component restart restarts one component"
    );
    assert_eq!(a.ha(y, "svc", "tn"), "standby");
    assert_eq!(recoveries(&a, x, "component-restart"), 1);

    // 2. Again within the probation: beyond comp_restart_max (1), an SU restart.
    let (svc, aux) = (a.pid(x, "svc"), a.pid(x, "aux"));
    a.kill_comp(x, "svc");
    a.wait("the SU restarted whole and active again", nx, |a| {
        a.pid(x, "svc") != svc && a.pid(x, "aux") != aux && a.ha(x, "svc", "tn") == "active"
    });
    assert!(!alive(aux), "the SU restart stopped the old aux process");
    assert_eq!(recoveries(&a, x, "su-restart"), 1);
    assert_eq!(a.ha(y, "svc", "tn"), "standby");

    // 3. A third: a component restart again (the escalation started the count afresh).
    let svc = a.pid(x, "svc");
    a.kill_comp(x, "svc");
    a.wait("the svc restarted again", nx, |a| {
        a.pid(x, "svc") != svc && a.ha(x, "svc", "tn") == "active"
    });
    assert_eq!(recoveries(&a, x, "component-restart"), 2);

    // 4. A fourth: an SU restart is due, beyond su_restart_max (1): SU failover. The
    // standby takes over without being quiesced, the failed SU is repaired as standby.
    let svc = a.pid(x, "svc");
    let killed = a.kill_comp(x, "svc");
    a.wait("the standby active after the SU failover", ny, |a| {
        a.ha(y, "svc", "tn") == "active"
    });
    println!(
        "amf_models 2n: kill -9 escalated to SU failover, to the standby holding active: {:.1} ms",
        ms(killed.elapsed())
    );
    a.wait("the failed SU repaired as standby", nx, |a| {
        a.pid(x, "svc") != svc && a.ha(x, "svc", "tn") == "standby"
    });
    assert_eq!(recoveries(&a, x, "su-failover"), 1);
    assert_eq!(
        a.history(y, "svc"),
        ["tn standby", "tn active"],
        "a failover promotes the standby directly"
    );
    a.wait_line(&both, &si_line("tn", &[(x, "standby"), (y, "active")]));

    // 5. The operator restarts the active SU: new processes, the assignment kept.
    let (svc, aux) = (a.pid(y, "svc"), a.pid(y, "aux"));
    a.admin(nx, &["restart", y]);
    a.wait(
        "the SU restarted by the operator and active again",
        ny,
        |a| a.pid(y, "svc") != svc && a.pid(y, "aux") != aux && a.ha(y, "svc", "tn") == "active",
    );
    assert_eq!(a.ha(x, "svc", "tn"), "standby");
    assert_eq!(a.log_lines(ny, &["amf: SU restart by the operator", y]), 1);

    // 6. The active stops answering health checks (period 500 ms, max duration 1 s; the
    // check's recovery is su-failover): the standby takes over, the hung SU is repaired.
    a.wait_line(&both, &si_line("tn", &[(x, "standby"), (y, "active")]));
    a.order(y, "svc", "hang", "");
    let took = a.wait("the standby active after the active hung", ny, |a| {
        a.ha(x, "svc", "tn") == "active"
    });
    a.unorder(y, "svc", "hang");
    println!(
        "amf_models 2n: health checks unanswered to the standby holding active: {:.0} ms (period 500 ms, max duration 1000 ms)",
        ms(took)
    );
    assert!(
        took >= Duration::from_millis(1000),
        "not before the max duration: {took:?}"
    );
    assert!(
        a.log_lines(ny, &["health check"]) >= 1,
        "the missed check is logged"
    );
    assert_eq!(recoveries(&a, y, "su-failover"), 1);
    a.wait("the hung SU repaired as standby", ny, |a| {
        a.ha(y, "svc", "tn") == "standby"
    });
    a.wait_line(&both, &si_line("tn", &[(x, "active"), (y, "standby")]));

    // 7. Lock of the active SU: its assignment is quiesced then removed, the standby made
    // active; the locked SU's components keep running, out of service. Unlock: standby.
    let svc = a.pid(x, "svc");
    a.admin(ny, &["lock", x]);
    a.wait("the standby active after the lock", ny, |a| {
        a.ha(y, "svc", "tn") == "active" && a.held(x, "svc").is_empty()
    });
    let status = a.wait_line(&both, &si_line("tn", &[(y, "active")]));
    assert_eq!(
        su_block(&status, x),
        [
            format!("SU {x} on node {nx}: out-of-service, locked, enabled, instantiated"),
            "component svc: out-of-service, enabled, instantiated".into(),
            "component aux: out-of-service, enabled, instantiated".into(),
        ],
        "{status}"
    );
    assert_eq!(a.pid(x, "svc"), svc, "a lock stops no process");
    let h = a.history(x, "svc");
    assert_eq!(h[h.len() - 2..], ["tn quiesced", "tn none"], "{h:?}");
    a.admin(nx, &["unlock", x]);
    a.wait("the unlocked SU standby", nx, |a| {
        a.ha(x, "svc", "tn") == "standby"
    });
    a.wait_line(&both, &si_line("tn", &[(x, "standby"), (y, "active")]));

    // 8. Shutdown of the active SU: quiesced, removed, then locked; the standby active.
    a.admin(nx, &["shutdown", y]);
    a.wait("the standby active after the shutdown", nx, |a| {
        a.ha(x, "svc", "tn") == "active" && a.held(y, "svc").is_empty()
    });
    let status = a.wait_line(&both, &si_line("tn", &[(x, "active")]));
    assert_eq!(
        line_of(&status, &format!("SU {y} ")),
        format!("SU {y} on node {ny}: out-of-service, locked, enabled, instantiated")
    );
    let h = a.history(y, "svc");
    assert_eq!(h[h.len() - 2..], ["tn quiesced", "tn none"], "{h:?}");

    // 9. Lock-instantiation of the locked SU: its processes stop, it is uninstantiated.
    let (svc, aux) = (a.pid(y, "svc"), a.pid(y, "aux"));
    a.admin(nx, &["lock-instantiation", y]);
    let status = a.wait_line(
        &both,
        &format!(
            "SU {y} on node {ny}: out-of-service, locked-instantiation, enabled, uninstantiated"
        ),
    );
    assert_eq!(
        su_block(&status, y)[1..],
        [
            "component svc: out-of-service, enabled, uninstantiated",
            "component aux: out-of-service, enabled, uninstantiated",
        ],
        "{status}"
    );
    a.wait("the SU's processes gone", ny, |_| {
        !alive(svc) && !alive(aux)
    });
    // Unlock-instantiation: new processes, still locked (no assignment); unlock: standby.
    a.admin(nx, &["unlock-instantiation", y]);
    a.wait_line(
        &both,
        &format!("SU {y} on node {ny}: out-of-service, locked, enabled, instantiated"),
    );
    assert_ne!(a.pid(y, "svc"), svc);
    assert!(a.held(y, "svc").is_empty());
    a.admin(ny, &["unlock", y]);
    a.wait("the unlocked SU standby", ny, |a| {
        a.ha(y, "svc", "tn") == "standby"
    });
    a.wait_line(&both, &si_line("tn", &[(x, "active"), (y, "standby")]));

    // Every assignment a node carried out and every administrative operation is logged.
    for n in both {
        assert!(a.log_lines(n, &["amf: assignment carried out"]) >= 4);
    }
    assert!(
        a.log_lines(1, &["amf: administrative operation"])
            + a.log_lines(2, &["amf: administrative operation"])
            == 7,
        "restart, lock, unlock, shutdown, lock-instantiation, unlock-instantiation, unlock"
    );
}

const N_PLUS_M: &str = r#"
[comp_type.svc]
instantiate = {cmd}
recovery = "su-failover"

[sg.npm]
redundancy = "n+m"
active_sus = 2
standby_sus = 1
max_active_sis_per_su = 2
components = ["svc"]
su.npm-1 = { node = "n1" }
su.npm-2 = { node = "n2" }
su.npm-3 = { node = "n3" }

[si.s1]
sg = "npm"
csi.x = { comp_type = "svc" }

[si.s2]
sg = "npm"
rank = 1
csi.x = { comp_type = "svc" }
"#;

fn node_of(su: &str) -> usize {
    su.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("SU names end with their node")
}

/// Whether every SI of `tree` has exactly one confirmed active, none changing.
fn all_active(tree: &Tree) -> bool {
    tree.sgs.iter().flat_map(|g| &g.sis).all(|s| {
        s.assignments.iter().all(|a| a.held == a.target)
            && s.assignments
                .iter()
                .filter(|a| a.held.is_some_and(|h| h.name() == "active"))
                .count()
                == 1
    })
}

fn n_plus_m() {
    let mut a = AmfCluster::new("amf-npm", 3, N_PLUS_M);
    for n in 1..=3 {
        a.socket_for(&format!("npm-{n}"), n);
    }
    a.start();
    // Each SI one active and one standby. Which SUs depends on the order in which they
    // came up (an SU with room takes another SI active before a spare does, and an SU may
    // stand by for one SI while it serves another): the test reads the layout.
    a.wait("each SI one active and one standby", 1, |a| {
        settled(&a.tree(1), 1, 1)
    });
    let t = a.tree(1);
    let act = |t: &Tree, si: &str| holder(t, si, "active").expect("an active");
    let stb = |t: &Tree, si: &str| holder(t, si, "standby").expect("a standby");
    let (a1, s1_standby) = (act(&t, "s1"), stb(&t, "s1"));
    assert_ne!(a1, s1_standby);
    for su in ["npm-1", "npm-2", "npm-3"] {
        a.wait_line(
            &[1, 2, 3],
            &format!(
                "SU {su} on node {}: in-service, unlocked, enabled, instantiated",
                node_of(su)
            ),
        );
    }
    a.wait("the components hold what the tree says", 1, |a| {
        a.ha(&a1, "svc", "s1") == "active" && a.ha(&s1_standby, "svc", "s1") == "standby"
    });
    // The SIs the failing SU does not serve are not touched.
    let others: Vec<(String, String)> = ["s2"]
        .iter()
        .map(|si| (si.to_string(), act(&t, si)))
        .filter(|(_, su)| *su != a1)
        .collect();

    // 1. kill -9 of s1's active (recovery su-failover): s1's standby takes over; the failed
    // SU is repaired.
    let killed = a.kill_comp(&a1, "svc");
    a.wait("s1's standby active", node_of(&s1_standby), |a| {
        a.ha(&s1_standby, "svc", "s1") == "active"
    });
    println!(
        "amf_models n+m: kill -9 (su-failover) to s1's standby holding active: {:.1} ms",
        ms(killed.elapsed())
    );
    for (si, su) in &others {
        assert_eq!(a.ha(su, "svc", si), "active", "{si} untouched on {su}");
    }
    assert_eq!(
        a.log_lines(node_of(&a1), &["amf: recovery", &a1, "su-failover"]),
        1
    );
    a.wait("every SI active and standby again", 1, |a| {
        settled(&a.tree(1), 1, 1)
    });

    // 2. s2's active component reports an error recommending node failover: every SU of
    // its node fails over and is not repaired (disabled, uninstantiated).
    let t = a.tree(1);
    let b = act(&t, "s2");
    let nb = node_of(&b);
    a.order(&b, "svc", "report", &recovery::NODE_FAILOVER.to_string());
    a.wait("s2 active elsewhere after the node failover", 1, |a| {
        holder(&a.tree(1), "s2", "active").is_some_and(|s| s != b)
    });
    assert_eq!(a.log_lines(nb, &["amf: recovery", &b, "node-failover"]), 1);
    let line = format!("SU {b} on node {nb}: out-of-service, unlocked, disabled, uninstantiated");
    let status = a.wait_line(&[1, 2, 3], &line);
    assert_eq!(
        su_block(&status, &b)[1],
        "component svc: out-of-service, disabled, uninstantiated"
    );

    // 3. s1's active component reports an error recommending node failfast: its node runs
    // the failfast command (kill -9 of its executive); after the fence delay the SIs are
    // active on the last node.
    a.wait("every SI active after the node failover", 1, |a| {
        all_active(&a.tree(1))
    });
    let t = a.tree(1);
    let c = act(&t, "s1");
    let nc = node_of(&c);
    assert_ne!(nc, nb);
    let last = 6 - nb - nc;
    let reported = Instant::now();
    a.order(&c, "svc", "report", &recovery::NODE_FAILFAST.to_string());
    a.wait("the failfast node's executive gone", last, |a| {
        a.c.status(nc - 1).is_none()
    });
    assert_eq!(a.log_lines(nc, &["amf: node failfast"]), 1);
    let su = format!("npm-{last}");
    a.wait("s1 and s2 active on the last node", last, |a| {
        a.ha(&su, "svc", "s1") == "active" && a.ha(&su, "svc", "s2") == "active"
    });
    println!(
        "amf_models n+m: node failfast (error report) to both SIs active on the last node: {:.0} ms (tens of ms when the node's cleanups reach the ring before its executive dies, else token loss, consensus and the fence delay)",
        ms(reported.elapsed())
    );
    a.wait_line(&[last], &si_line("s1", &[(&su, "active")]));
    // The failfast node is gone from the membership (its SUs may have been reported
    // cleaned up before its executive died: then the SIs moved without the fence delay).
    let members = format!("[{}, {}]", nb.min(last), nb.max(last));
    a.wait_line(&[last], &format!("cluster: members {members}, quorate"));
}

const N_WAY_ACTIVE: &str = r#"
[comp_type.web]
instantiate = {cmd}

[sg.nwa]
redundancy = "n-way-active"
components = ["web"]
su.nwa-1 = { node = "n1" }
su.nwa-2 = { node = "n2" }
su.nwa-3 = { node = "n3" }

[si.web]
sg = "nwa"
csi.x = { comp_type = "web" }
"#;

fn n_way_active() {
    let mut a = AmfCluster::new("amf-nwa", 3, N_WAY_ACTIVE);
    for n in 1..=3 {
        a.socket_for(&format!("nwa-{n}"), n);
    }
    a.start();
    let all = [1, 2, 3];
    let three = "SI web: nwa-1 active, nwa-2 active, nwa-3 active";
    let status = a.wait_line(&all, three);
    assert_eq!(
        line_of(&status, "SG nwa "),
        "SG nwa (n-way-active), application nwa"
    );
    a.wait("three components active", 1, |a| {
        (1..=3).all(|n| a.ha(&format!("nwa-{n}"), "web", "web") == "active")
    });

    // 1. kill -9 of one: component restart; the other two stay active throughout.
    let pid = a.pid("nwa-2", "web");
    let killed = a.kill_comp("nwa-2", "web");
    a.wait("nwa-2 restarted and active", 2, |a| {
        a.pid("nwa-2", "web") != pid && a.ha("nwa-2", "web", "web") == "active"
    });
    println!(
        "amf_models n-way-active: kill -9 to the restarted component holding active: {:.1} ms",
        ms(killed.elapsed())
    );
    for su in ["nwa-1", "nwa-3"] {
        assert_eq!(a.history(su, "web"), ["web active"], "{su} untouched");
    }
    assert_eq!(
        a.log_lines(2, &["amf: recovery", "nwa-2", "component-restart"]),
        1
    );
    a.wait_line(&all, three);

    // 2. Shutdown of nwa-3: its active quiesced, then removed; the SU ends locked.
    a.admin(1, &["shutdown", "nwa-3"]);
    let status = a.wait_line(&all, "SI web: nwa-1 active, nwa-2 active");
    assert_eq!(
        line_of(&status, "SU nwa-3 "),
        "SU nwa-3 on node 3: out-of-service, locked, enabled, instantiated"
    );
    a.wait("nwa-3 holds nothing", 3, |a| {
        a.held("nwa-3", "web").is_empty()
    });
    assert_eq!(
        a.history("nwa-3", "web"),
        ["web active", "web quiesced", "web none"]
    );
    a.admin(3, &["unlock", "nwa-3"]);
    a.wait_line(&all, three);

    // 3. Lock of the SI: every assignment removed; unlock: active in three again.
    a.admin(2, &["lock", "web"]);
    a.wait_line(&all, "SI web: locked, unassigned");
    a.wait("no component holds web", 1, |a| {
        (1..=3).all(|n| a.held(&format!("nwa-{n}"), "web").is_empty())
    });
    let tree = a.tree(3);
    assert!(
        tree.sgs[0]
            .sus
            .iter()
            .all(|s| s.readiness == Readiness::InService)
    );
    assert!(tree.sgs[0].sus.iter().all(|s| s.comps[0].csis.is_empty()));
    a.admin(2, &["unlock", "web"]);
    a.wait_line(&all, three);
}

const NO_REDUNDANCY: &str = r#"
[comp_type.col]
instantiate = {cmd}

[sg.nr]
redundancy = "no-redundancy"
components = ["col"]
su.nr-1 = { node = "n1" }
su.nr-2 = { node = "n2" }

[si.a]
sg = "nr"
csi.x = { comp_type = "col" }

[si.b]
sg = "nr"
rank = 1
csi.x = { comp_type = "col" }
"#;

fn no_redundancy() {
    let mut a = AmfCluster::new("amf-nored", 2, NO_REDUNDANCY);
    a.socket_for("nr-1", 1);
    a.socket_for("nr-2", 2);
    a.start();
    let both = [1, 2];
    // One SI per SU (which SU gets which depends on the order they came up): x holds a,
    // y holds b.
    a.wait("each SU one SI", 1, |a| all_active(&a.tree(1)));
    let t = a.tree(1);
    let x = holder(&t, "a", "active").expect("a is assigned");
    let y = holder(&t, "b", "active").expect("b is assigned");
    assert_ne!(x, y, "one SI per SU");
    let (nx, ny) = (node_of(&x), node_of(&y));
    a.wait_line(&both, &si_line("a", &[(&x, "active")]));
    let status = a.wait_line(&both, &si_line("b", &[(&y, "active")]));
    assert_eq!(
        su_block(&status, &x)[1],
        "component col: in-service, enabled, instantiated; CSI x of SI a active"
    );
    a.wait("each component holds its SI", nx, |a| {
        a.ha(&x, "col", "a") == "active" && a.ha(&y, "col", "b") == "active"
    });

    // 1. kill -9: repaired by restart, the SU gets its SI back.
    let pid = a.pid(&x, "col");
    let killed = a.kill_comp(&x, "col");
    a.wait("the component restarted with its SI", nx, |a| {
        a.pid(&x, "col") != pid && a.ha(&x, "col", "a") == "active"
    });
    println!(
        "amf_models no-redundancy: kill -9 to the restarted component holding its SI: {:.1} ms",
        ms(killed.elapsed())
    );
    assert_eq!(a.history(&y, "col"), ["b active"], "the other SU untouched");
    assert_eq!(
        a.log_lines(nx, &["amf: recovery", &x, "component-restart"]),
        1
    );

    // 2. Lock of x: a has nowhere to go (y holds b) and stays unassigned.
    a.admin(ny, &["lock", &x]);
    let status = a.wait_line(&both, "SI a: unassigned");
    assert_eq!(line_of(&status, "SI b: "), si_line("b", &[(&y, "active")]));
    a.wait("x holds nothing", nx, |a| a.held(&x, "col").is_empty());
    a.admin(ny, &["unlock", &x]);
    a.wait_line(&both, &si_line("a", &[(&x, "active")]));
    a.wait("x holds a again", nx, |a| a.ha(&x, "col", "a") == "active");
}
