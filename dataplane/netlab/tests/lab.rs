//! Tests of the network-namespace lab itself ([`netlab::Lab`]).
//!
//! What they assert:
//! 1. `three_hosts_reach_each_other`: in a 3-host lab every host reaches every other by
//!    unicast UDP, a multicast datagram from any host reaches the two others (bridge floods,
//!    route `224.0.0.0/4 dev eth0` works), and every interface has the requested MTU while the
//!    bridge has multicast snooping and STP off.
//! 2. `cut_and_heal`: after `cut(3)`, h1 no longer reaches h3 (unicast or multicast) but still
//!    reaches h2; after `heal(3)` it reaches h3 again.
//! 3. `two_labs_do_not_collide`: two labs alive at once have distinct namespace names and
//!    distinct subnets.
//! 4. `drop_removes_namespaces`: dropping a lab, normally or while a test panics, removes all
//!    its namespaces from `ip netns list`.
//!
//! Assumes: root and iproute2 (the lab fails, not skips, without them: see the lab's docs).
//! Nothing else is needed: the UDP checks use this very test binary as the helper program in
//! the namespaces. This test binary has its own `main` (`harness = false` in `dataplane/netlab/Cargo.toml`):
//! run with `OAIS_NETNS_LAB_HELPER` set it acts as a UDP responder or prober (see [`helper`])
//! instead of running the tests, which start it with `ip netns exec HOST <this binary>`. Network checks are retried
//! for up to 3 s, because carrier and bridge port state change asynchronously after cut/heal.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netlab::Lab;

/// Environment variable that turns this binary into a responder or a prober.
const HELPER_ENV: &str = "OAIS_NETNS_LAB_HELPER";
/// UDP port the responders listen on (each lab is isolated, so a fixed port is fine).
const PORT: u16 = 5405;
/// Multicast group the responders join.
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 192, 77, 1);
/// How long a network expectation may take to come true.
const PATIENCE: Duration = Duration::from_secs(3);
/// What a responder prints once it listens, and what precedes each replier a probe prints.
/// Matched anywhere in a line, because the test harness may print on the same line.
const READY: &str = "netns-lab-ready";
const REPLY: &str = "netns-lab-reply ";
/// How long one probe waits for replies.
const PROBE_WINDOW: Duration = Duration::from_millis(400);

fn three_hosts_reach_each_other() {
    let lab = Lab::new(3, 1400).unwrap();
    let _responders = Responders::start(&lab);

    for from in 1..=3 {
        for to in (1..=3).filter(|&to| to != from) {
            let want = BTreeSet::from([lab.addr(to)]);
            eventually(&format!("h{from} reaches h{to}"), || {
                probe(&lab, from, lab.addr(to), 1) == want
            });
        }
        let others: BTreeSet<_> = (1..=3)
            .filter(|&h| h != from)
            .map(|h| lab.addr(h))
            .collect();
        eventually(
            &format!("multicast from h{from} reaches the others"),
            || probe(&lab, from, GROUP, 2) == others,
        );
    }

    for i in 1..=3 {
        let link = ip_output(&["-n", lab.netns(i), "-o", "link", "show", "eth0"]);
        assert!(link.contains(" mtu 1400 "), "h{i} eth0: {link}");
        let port = ip_output(&[
            "-n",
            lab.bridge_netns(),
            "-o",
            "link",
            "show",
            &format!("vh{i}"),
        ]);
        assert!(port.contains(" mtu 1400 "), "vh{i}: {port}");
        assert!(port.contains("master br0"), "vh{i}: {port}");
    }
    let br = ip_output(&["-n", lab.bridge_netns(), "-o", "-d", "link", "show", "br0"]);
    for want in [
        " mtu 1400 ",
        "mcast_snooping 0",
        "stp_state 0",
        "forward_delay 0",
    ] {
        assert!(br.contains(want), "br0 lacks {want:?}: {br}");
    }
}

fn cut_and_heal() {
    let lab = Lab::new(3, 1500).unwrap();
    let _responders = Responders::start(&lab);
    let (h2, h3) = (lab.addr(2), lab.addr(3));

    eventually("h1 reaches h3 before the cut", || {
        probe(&lab, 1, h3, 1) == BTreeSet::from([h3])
    });

    lab.cut(3).unwrap();
    eventually("h1 no longer reaches h3", || {
        probe(&lab, 1, h3, 1).is_empty()
    });
    eventually("h1 still reaches h2", || {
        probe(&lab, 1, h2, 1) == BTreeSet::from([h2])
    });
    eventually("multicast from h1 reaches h2 only", || {
        probe(&lab, 1, GROUP, 2) == BTreeSet::from([h2])
    });

    lab.heal(3).unwrap();
    eventually("h1 reaches h3 again", || {
        probe(&lab, 1, h3, 1) == BTreeSet::from([h3])
    });
    eventually("multicast from h1 reaches h2 and h3 again", || {
        probe(&lab, 1, GROUP, 2) == BTreeSet::from([h2, h3])
    });
}

fn two_labs_do_not_collide() {
    let a = Lab::new(2, 1500).unwrap();
    let b = Lab::new(2, 1500).unwrap();
    assert_ne!(a.network(), b.network());
    let names_a: BTreeSet<&str> = (1..=2)
        .map(|i| a.netns(i))
        .chain([a.bridge_netns()])
        .collect();
    let names_b: BTreeSet<&str> = (1..=2)
        .map(|i| b.netns(i))
        .chain([b.bridge_netns()])
        .collect();
    assert_eq!(names_a.len(), 3);
    assert_eq!(names_b.len(), 3);
    assert!(names_a.is_disjoint(&names_b), "{names_a:?} vs {names_b:?}");
    let listed = netns_list();
    for name in names_a.iter().chain(&names_b) {
        assert!(
            listed.contains(*name),
            "{name} missing from `ip netns list`"
        );
    }
    for lab in [&a, &b] {
        assert_eq!(lab.hosts(), 2);
        let [n0, n1, n2, n3] = lab.network().octets();
        assert_eq!((n0, n3), (10, 0), "{}", lab.network());
        assert_eq!(lab.addr(2), Ipv4Addr::new(n0, n1, n2, 2));
    }
}

fn drop_removes_namespaces() {
    let names = |lab: &Lab| -> Vec<String> {
        (1..=lab.hosts())
            .map(|i| lab.netns(i).to_owned())
            .chain([lab.bridge_netns().to_owned()])
            .collect()
    };

    let lab = Lab::new(2, 1500).unwrap();
    let created = names(&lab);
    assert!(created.iter().all(|n| netns_list().contains(n)));
    drop(lab);
    let listed = netns_list();
    for name in &created {
        assert!(!listed.contains(name), "{name} still listed after drop");
    }

    // The same while a test panics: unwinding drops the lab.
    // The deliberate panic is silenced so the output shows no false alarm.
    let mut created = Vec::new();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = Lab::new(2, 1500).unwrap();
        created = names(&lab);
        panic!("test failure with a lab alive");
    }));
    std::panic::set_hook(hook);
    assert!(outcome.is_err());
    assert_eq!(created.len(), 3);
    let listed = netns_list();
    for name in &created {
        assert!(!listed.contains(name), "{name} still listed after a panic");
    }
}

/// Not a test: the UDP helper program run inside the namespaces (see the module docs).
/// Runs the tests in order (each prints its name and `ok`; a failure panics, which fails the
/// test binary), or, with `OAIS_NETNS_LAB_HELPER` set, the UDP helper.
fn main() {
    if let Ok(spec) = std::env::var(HELPER_ENV) {
        helper(&spec);
        return;
    }
    let tests: [(&str, fn()); 4] = [
        ("three_hosts_reach_each_other", three_hosts_reach_each_other),
        ("cut_and_heal", cut_and_heal),
        ("two_labs_do_not_collide", two_labs_do_not_collide),
        ("drop_removes_namespaces", drop_removes_namespaces),
    ];
    for (name, test) in tests {
        println!("test {name} ...");
        test();
        println!("test {name} ... ok");
    }
    println!("test result: ok. {} passed", tests.len());
}

/// Runs one helper role:
/// * `respond ADDR`: bind `0.0.0.0:PORT`, join `GROUP` on the interface with address `ADDR`,
///   print `READY`, then answer every datagram with an empty one, until stdin closes (so it
///   also ends when the test process dies).
/// * `probe DEST WANT`: send one datagram to `DEST:PORT` (multicast loopback off), print
///   `REPLY IP` for each distinct replier, stop after `WANT` repliers or `PROBE_WINDOW`.
fn helper(spec: &str) {
    let words: Vec<&str> = spec.split_whitespace().collect();
    match words[..] {
        ["respond", addr] => {
            let addr: Ipv4Addr = addr.parse().unwrap();
            let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, PORT)).unwrap();
            socket.join_multicast_v4(&GROUP, &addr).unwrap();
            std::thread::spawn(|| {
                let _ = std::io::stdin().read_to_end(&mut Vec::new());
                std::process::exit(0);
            });
            println!("{READY}");
            let mut buf = [0u8; 1500];
            loop {
                let (_, peer) = socket.recv_from(&mut buf).unwrap();
                socket.send_to(&[], peer).unwrap();
            }
        }
        ["probe", dest, want] => {
            let dest: Ipv4Addr = dest.parse().unwrap();
            let want: usize = want.parse().unwrap();
            let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
            socket.set_multicast_loop_v4(false).unwrap();
            socket
                .send_to(b"probe", SocketAddrV4::new(dest, PORT))
                .unwrap();
            let deadline = Instant::now() + PROBE_WINDOW;
            let mut seen = BTreeSet::new();
            let mut buf = [0u8; 64];
            while seen.len() < want {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                socket.set_read_timeout(Some(left)).unwrap();
                match socket.recv_from(&mut buf) {
                    Ok((_, peer)) => {
                        if seen.insert(peer.ip()) {
                            println!("{REPLY}{}", peer.ip());
                        }
                    }
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock) => break,
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut) => break,
                    Err(e) => panic!("probe recv: {e}"),
                }
            }
        }
        _ => panic!("bad {HELPER_ENV}: {spec:?}"),
    }
}

/// This test binary, started as the helper in host `i` with role `spec`.
fn helper_command(lab: &Lab, i: usize, spec: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = lab.command(i, exe);
    cmd.env(HELPER_ENV, spec);
    cmd
}

/// One responder per host; killed (and reaped) on drop, which must come before the lab's.
struct Responders(Vec<Child>);

impl Responders {
    fn start(lab: &Lab) -> Responders {
        let mut responders = Responders(Vec::new());
        for i in 1..=lab.hosts() {
            let child = helper_command(lab, i, &format!("respond {}", lab.addr(i)))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            responders.0.push(child);
            let stdout = responders.0.last_mut().unwrap().stdout.take().unwrap();
            let ready = BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .any(|line| line.contains(READY));
            assert!(ready, "responder in h{i} did not start");
        }
        responders
    }
}

impl Drop for Responders {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends one probe from host `from` to `dest` and returns who replied (stops at `want`).
fn probe(lab: &Lab, from: usize, dest: Ipv4Addr, want: usize) -> BTreeSet<Ipv4Addr> {
    let out = helper_command(lab, from, &format!("probe {dest} {want}"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "probe from h{from} to {dest}: {}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(REPLY).map(|(_, ip)| ip))
        .map(|ip| ip.parse().unwrap())
        .collect()
}

/// Retries `check` until it holds, failing the test after `PATIENCE`.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "not within {PATIENCE:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `ip ARGS`'s stdout; panics on failure.
fn ip_output(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The names in `ip netns list` (each line is `NAME` or `NAME (id: N)`).
fn netns_list() -> BTreeSet<String> {
    ip_output(&["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}
