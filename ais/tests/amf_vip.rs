//! IP takeover (`ais::amf::vip`) in network namespaces: a virtual address moves from node A to
//! node B while a client keeps asking it questions, and the client's neighbour cache follows.
//!
//! The lab (`netlab::Lab`) has three hosts on one bridge: h1 = node A, h2 = node B, h3 = the
//! client. Both nodes run a UDP echo server on every address (port [`PORT`]) that answers with
//! its host number. The virtual address is `.100` of the lab's /24.
//!
//! 1. `moves_with_gratuitous_arp`: A takes the address (`VirtualIp::assign_active` in h1);
//!    the client sends a request every millisecond for 3 s; after 1 s the address is removed
//!    on A and assigned active on B (`VirtualIp::remove` in h1, then `assign_active` in h2). The client's answers come first from A, last from B, with
//!    a gap below [`MAX_GAP`] (printed: the figure of docs/amf.md), and its neighbour entry for
//!    the address holds B's MAC.
//! 2. Without the announcement the cache does not follow: the address is added back on A with
//!    plain `ip address add` (no gratuitous ARP) after removal on B, and the client's neighbour
//!    entry still points at B: the first step could fail, and what made it pass is the
//!    announcement.
//!
//! 3. `executives_move_the_address`: two `aisexec` in h1 and h2 with an AMF model whose 2N
//!    SG has, in each SU, an SA-aware echo component (this binary, started by the executive:
//!    it registers, answers every callback and answers UDP requests with its host number)
//!    and a component of the built-in type `ip-address` whose CSI is the virtual address.
//!    An address left over on h2 before the executives start is removed when h2's executive
//!    starts its component (before any assignment); the active SU's node holds the address,
//!    the other does not. The
//!    client sends a request every millisecond; `kill -9` of the active echo component: the
//!    executive sees the exit, the node fails over (removing the address), the other SU
//!    goes active (adding and announcing it). The client's answers come first from the old
//!    node and last from the new one within [`MAX_FAILOVER_GAP`] (printed), the old node no
//!    longer holds the address and the client's neighbour entry follows. Then the operator
//!    repairs the old SU (`aisctl amf lock`, `lock-instantiation`, `unlock-instantiation`,
//!    `unlock`: it becomes the standby) and `aisctl amf switchover web` moves the address
//!    back the graceful way (the active quiesced, its address removed, then the standby made
//!    active): the client's answers move back, the gap is printed and bounded the same way.
//!
//! Assumes: root, iproute2. This binary has its own `main` (`harness = false` in
//! `ais/Cargo.toml`): with `AMF_VIP_HELPER` set it is the echo server, the client or a node
//! carrying out the IP component's operations on order (as a running executive would),
//! started in a host with `ip netns exec`.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use ais::amf::vip::VirtualIp;
use ais_client::amf::{Amf, Callback};
use common::amf::put;
use common::cluster::{Cluster, Mode, netns_config};
use netlab::Lab;

const HELPER_ENV: &str = "AMF_VIP_HELPER";
const PORT: u16 = 7100;
/// The longest acceptable time without answers while the address moves. Without the
/// gratuitous ARP the client would keep sending to A's MAC until its neighbour entry expires
/// (tens of seconds).
const MAX_GAP: Duration = Duration::from_millis(1000);
const CLIENT_RUN: Duration = Duration::from_secs(3);
/// The longest acceptable time without answers through a failover by the executives: the
/// kill is seen at once (process exit), the rest is ring messages and two address changes.
const MAX_FAILOVER_GAP: Duration = Duration::from_millis(2000);
/// Waits of the executive scenario (a loaded 2-core machine).
const LONG: Duration = Duration::from_secs(60);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("component") {
        // Started by an executive (the environment is its own, not this test's).
        component(Path::new(&args[2]));
        return;
    }
    match std::env::var(HELPER_ENV).ok().as_deref() {
        Some("echo") => echo(),
        Some("client") => client(),
        Some("node") => node(),
        Some(other) => panic!("{HELPER_ENV}={other}: unknown role"),
        None => {
            moves_with_gratuitous_arp();
            println!("test moves_with_gratuitous_arp ... ok");
            executives_move_the_address();
            println!("test executives_move_the_address ... ok");
        }
    }
}

/// Echo server: answers each request (8-byte sequence number) with the number and this
/// host's number (argument 1).
fn echo() {
    let host: u8 = std::env::args().nth(1).unwrap().parse().unwrap();
    let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT)).unwrap();
    println!("ready");
    let mut buf = [0u8; 64];
    loop {
        let (n, from) = s.recv_from(&mut buf).unwrap();
        if n == 8 {
            buf[8] = host;
            let _ = s.send_to(&buf[..9], from);
        }
    }
}

/// Client: a request to the address (argument 1) every millisecond for [`CLIENT_RUN`] (or
/// argument 2, in milliseconds); prints
/// `RESULT first=H last=H answers=N switch_gap_us=G max_gap_us=M`, where the switch gap is
/// the time between the last answer from the first host and the first from another.
fn client() {
    let vip: Ipv4Addr = std::env::args().nth(1).unwrap().parse().unwrap();
    let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    let to = SocketAddrV4::new(vip, PORT);
    let run = std::env::args()
        .nth(2)
        .map_or(CLIENT_RUN, |ms| Duration::from_millis(ms.parse().unwrap()));
    let start = Instant::now();
    let mut seq = 0u64;
    let mut answers: Vec<(Duration, u8)> = Vec::new();
    let mut buf = [0u8; 64];
    println!("ready");
    // Requests on a fixed schedule, one per millisecond, answers read in between.
    let mut next_send = start;
    while start.elapsed() < run {
        let now = Instant::now();
        if now >= next_send {
            seq += 1;
            let _ = s.send_to(&seq.to_be_bytes(), to);
            next_send += Duration::from_millis(1);
            continue;
        }
        s.set_read_timeout(Some(next_send - now)).unwrap();
        if let Ok((9, _)) = s.recv_from(&mut buf) {
            answers.push((start.elapsed(), buf[8]));
        }
    }
    let first = answers.first().map_or(0, |a| a.1);
    let last = answers.last().map_or(0, |a| a.1);
    let mut max_gap = Duration::ZERO;
    let mut switch_gap = Duration::ZERO;
    for w in answers.windows(2) {
        let gap = w[1].0 - w[0].0;
        max_gap = max_gap.max(gap);
        if w[0].1 == first && w[1].1 != first && switch_gap.is_zero() {
            switch_gap = gap;
        }
    }
    println!(
        "RESULT first={first} last={last} requests={seq} answers={} switch_gap_us={} max_gap_us={}",
        answers.len(),
        switch_gap.as_micros(),
        max_gap.as_micros()
    );
}

/// A node's executive, as far as the IP component goes: for the address (argument 1) on
/// `eth0`, reads `assign` or `remove` lines on standard input, carries each out as the IP
/// component does and answers with the microseconds it took (or `error ...`).
fn node() {
    let vip: Ipv4Addr = std::env::args().nth(1).unwrap().parse().unwrap();
    let v = VirtualIp::new(vip, 24, "eth0").unwrap();
    println!("ready");
    for line in std::io::stdin().lines() {
        let line = line.unwrap();
        let t = Instant::now();
        let r = match line.trim() {
            "assign" => v.assign_active().map(|_| ()),
            "remove" => v.remove().map(|_| ()),
            other => panic!("node: {other:?}"),
        };
        match r {
            Ok(()) => println!("{}", t.elapsed().as_micros()),
            Err(e) => println!("error {e}"),
        }
    }
}

fn helper(lab: &Lab, host: usize, role: &str, arg: &str) -> std::process::Command {
    let mut c = lab.command(host, std::env::current_exe().unwrap());
    c.args(arg.split(' ')).env(HELPER_ENV, role);
    c
}

/// A helper process with its standard output read line by line.
struct Helper {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Helper {
    /// Starts a helper and waits for its "ready" line.
    fn start(lab: &Lab, host: usize, role: &str, arg: &str) -> Helper {
        let mut child = helper(lab, host, role, arg)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut h = Helper { child, out };
        assert_eq!(h.line(), "ready", "{role} on h{host}");
        h
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line.trim().to_owned()
    }

    /// Has a node helper assign or remove the address; how long it took in there.
    fn order(&mut self, what: &str) -> Duration {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{what}").unwrap();
        stdin.flush().unwrap();
        let answer = self.line();
        let us = answer
            .parse()
            .unwrap_or_else(|_| panic!("{what}: {answer}"));
        Duration::from_micros(us)
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ip(args: &[&str]) -> String {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "ip {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn mac(lab: &Lab, host: usize) -> String {
    let link = ip(&["-n", lab.netns(host), "-o", "link", "show", "eth0"]);
    let after = link.split("link/ether ").nth(1).expect("link/ether");
    after.split_whitespace().next().unwrap().to_owned()
}

/// The MAC the client's neighbour cache holds for `vip`.
fn neighbour(lab: &Lab, vip: Ipv4Addr) -> String {
    let n = ip(&["-n", lab.netns(3), "neigh", "show", &vip.to_string()]);
    n.split("lladdr ")
        .nth(1)
        .map(|s| s.split_whitespace().next().unwrap().to_owned())
        .unwrap_or_default()
}

fn moves_with_gratuitous_arp() {
    let lab = Lab::new(3, 1500).expect("network-namespace lab");
    let [a, b, c, _] = lab.network().octets();
    let vip = Ipv4Addr::new(a, b, c, 100);
    let _echo1 = Helper::start(&lab, 1, "echo", "1");
    let _echo2 = Helper::start(&lab, 2, "echo", "2");
    let mut node_a = Helper::start(&lab, 1, "node", &vip.to_string());
    let mut node_b = Helper::start(&lab, 2, "node", &vip.to_string());

    let first_assign = node_a.order("assign");
    let mut client = Helper::start(&lab, 3, "client", &vip.to_string());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(neighbour(&lab, vip), mac(&lab, 1), "client learnt A");

    let t = Instant::now();
    let removed = node_a.order("remove");
    let assigned = node_b.order("assign");
    let moved = t.elapsed();

    let line = client.line();
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(k))
            .unwrap_or_else(|| panic!("{k} in {line:?}"))
            .parse()
            .unwrap()
    };
    println!(
        "vip moved h1 -> h2: client gap {:.1} ms (max gap {:.1} ms, {} answers to {} requests in {CLIENT_RUN:?}); \
         remove on A {removed:?}, assign on B {assigned:?}, first assign {first_assign:?}, move {moved:?} (both orders, from the test)",
        field("switch_gap_us=") as f64 / 1000.0,
        field("max_gap_us=") as f64 / 1000.0,
        field("answers="),
        field("requests="),
    );
    assert_eq!(field("first="), 1, "{line}");
    assert_eq!(field("last="), 2, "{line}");
    assert!(
        Duration::from_micros(field("switch_gap_us=")) < MAX_GAP,
        "{line}"
    );
    assert_eq!(neighbour(&lab, vip), mac(&lab, 2), "client follows to B");

    // Without the announcement the client's cache stays on B.
    node_b.order("remove");
    ip(&[
        "-n",
        lab.netns(1),
        "address",
        "add",
        &format!("{vip}/24"),
        "dev",
        "eth0",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        neighbour(&lab, vip),
        mac(&lab, 2),
        "without gratuitous ARP the client's entry should not have moved"
    );
    drop((client, node_a, node_b, _echo1, _echo2));
    drop(lab);
}

/// The echo component an executive starts (`component DIR`): reads its executive's socket
/// from `DIR/SU.socket`, writes its pid to `DIR/SU.pid`, answers UDP requests on [`PORT`]
/// with its SU's number (`web-N`) and every AMF callback with OK.
fn component(dir: &Path) {
    let name = std::env::var("SA_AMF_COMPONENT_NAME").expect("SA_AMF_COMPONENT_NAME is set");
    let su = name
        .split(',')
        .find_map(|p| p.strip_prefix("safSu="))
        .expect("the DN names the SU")
        .to_owned();
    let host: u8 = su.strip_prefix("web-").unwrap().parse().unwrap();
    let socket = PathBuf::from(
        fs::read_to_string(dir.join(format!("{su}.socket")))
            .expect("socket file")
            .trim(),
    );
    let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT)).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        loop {
            let (n, from) = s.recv_from(&mut buf).unwrap();
            if n == 8 {
                buf[8] = host;
                let _ = s.send_to(&buf[..9], from);
            }
        }
    });
    let mut amf = Amf::initialize(&socket).expect("connect to the executive");
    amf.register(None).expect("register");
    put(
        &dir.join(format!("{su}.pid")),
        &std::process::id().to_string(),
    );
    loop {
        let Ok(cb) = amf.dispatch(None) else { return };
        let invocation = match cb {
            Some(Callback::CsiSet { invocation, .. })
            | Some(Callback::CsiRemove { invocation, .. })
            | Some(Callback::Healthcheck { invocation, .. }) => invocation,
            Some(Callback::Terminate { invocation }) => {
                let _ = amf.response(invocation, true);
                return;
            }
            Some(_) | None => continue,
        };
        if amf.response(invocation, true).is_err() {
            return;
        }
    }
}

/// Whether host `host` of `lab` has `vip` on its `eth0`.
fn holds(lab: &Lab, host: usize, vip: Ipv4Addr) -> bool {
    ip(&[
        "-n",
        lab.netns(host),
        "-o",
        "address",
        "show",
        "dev",
        "eth0",
    ])
    .contains(&format!(" inet {vip}/24 "))
}

/// Waits until exactly host `want` of h1, h2 holds `vip` (`None`: either one); returns it.
fn wait_holder(lab: &Lab, vip: Ipv4Addr, want: Option<usize>, c: &Cluster) -> usize {
    let start = Instant::now();
    loop {
        let h = (holds(lab, 1, vip), holds(lab, 2, vip));
        let holder = match h {
            (true, false) => Some(1),
            (false, true) => Some(2),
            _ => None,
        };
        if let Some(x) = holder
            && want.is_none_or(|w| w == x)
        {
            return x;
        }
        assert!(
            start.elapsed() < LONG,
            "h1, h2 hold {vip}: {h:?}, want {want:?}\nnode 1 log:\n{}\nnode 2 log:\n{}",
            ais::harness::tail(&c.node(0).log, 40),
            ais::harness::tail(&c.node(1).log, 40)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn executives_move_the_address() {
    let lab = Lab::new(3, 1500).expect("network-namespace lab");
    let [a, b, c3, _] = lab.network().octets();
    let vip = Ipv4Addr::new(a, b, c3, 101);
    let dir = std::env::temp_dir().join(format!("ais-amf-vip-comp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("component dir");
    let exe = std::env::current_exe().expect("this binary");
    let model = dir.join("amf.toml");
    fs::write(
        &model,
        format!(
            "[node]\nn1 = {{ nodeid = 1 }}\nn2 = {{ nodeid = 2 }}\n\n\
             [comp_type.echo]\ninstantiate = {:?}\nrecovery = \"node-failover\"\n\n\
             [comp_type.vip]\nbuiltin = \"ip-address\"\n\n\
             [sg.web]\nredundancy = \"2n\"\ncomponents = [\"echo\", \"vip\"]\n\
             su.web-1 = {{ node = \"n1\" }}\nsu.web-2 = {{ node = \"n2\" }}\n\n\
             [si.web]\nsg = \"web\"\ncsi.service = {{ comp_type = \"echo\" }}\n\
             csi.addr = {{ comp_type = \"vip\", attributes = {{ address = \"{vip}/24\", interface = \"eth0\" }} }}\n",
            format!("exec {} component {}", exe.display(), dir.display())
        ),
    )
    .expect("model");
    let mut c = Cluster::new(
        "amf-vip",
        2,
        |node| {
            netns_config(Mode::Multicast, 1500, node, &lab)
                + &format!("\n[amf]\nmodel = {:?}\n", model.display().to_string())
        },
        vec![lab.netns(1).to_owned(), lab.netns(2).to_owned()],
    );
    for (i, su) in ["web-1", "web-2"].into_iter().enumerate() {
        put(
            &dir.join(format!("{su}.socket")),
            &c.node(i).socket.display().to_string(),
        );
    }
    // A leftover of an earlier executive on h2.
    ip(&[
        "-n",
        lab.netns(2),
        "address",
        "add",
        &format!("{vip}/24"),
        "dev",
        "eth0",
    ]);
    c.start_all();
    for i in 0..2 {
        c.wait_ring(i, &[1, 2], LONG);
    }
    // h2's leftover is removed when its executive starts the component (before any
    // assignment there).
    let start = Instant::now();
    let log2 = loop {
        let log2 = c.log(1);
        if log2.contains("virtual address removed") {
            break log2;
        }
        assert!(
            start.elapsed() < LONG,
            "h2 never removed the leftover:\n{log2}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let removed = log2.find("virtual address removed").unwrap();
    assert!(
        log2.find("virtual address assigned")
            .is_none_or(|a| a > removed),
        "{log2}"
    );
    // One SU goes active, and only its node holds the address.
    let active = wait_holder(&lab, vip, None, &c);
    let (old, new) = (active, 3 - active);
    let start = Instant::now();
    // Both echo components running.
    while !["web-1", "web-2"]
        .iter()
        .all(|su| dir.join(format!("{su}.pid")).exists())
    {
        assert!(start.elapsed() < LONG, "components not both started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The standby's CSIs are set too before the kill (its SU took the SI as standby).
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        holds(&lab, old, vip) && !holds(&lab, new, vip),
        "h{old} should hold {vip}, h{new} not"
    );

    let mut client = Helper::start(&lab, 3, "client", &format!("{vip} 4000"));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        neighbour(&lab, vip),
        mac(&lab, old),
        "client learnt the active node"
    );
    // The pid file again: a component restarted meanwhile (under load) wrote a new one.
    let pid: i32 = fs::read_to_string(dir.join(format!("web-{old}.pid")))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let killed = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the active echo component");
    wait_holder(&lab, vip, Some(new), &c);
    let seen = killed.elapsed();

    let line = client.line();
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(k))
            .unwrap_or_else(|| panic!("{k} in {line:?}"))
            .parse()
            .unwrap()
    };
    println!(
        "executives moved the vip h{old} -> h{new} after kill -9 of the active component: \
         client gap {:.1} ms (max gap {:.1} ms, {} answers to {} requests); address seen on \
         h{new} by `ip` polling {seen:?} after the kill",
        field("switch_gap_us=") as f64 / 1000.0,
        field("max_gap_us=") as f64 / 1000.0,
        field("answers="),
        field("requests="),
    );
    assert_eq!(field("first="), old as u64, "{line}");
    assert_eq!(field("last="), new as u64, "{line}");
    assert!(
        Duration::from_micros(field("switch_gap_us=")) < MAX_FAILOVER_GAP,
        "{line}"
    );
    assert!(!holds(&lab, old, vip), "the old node still holds {vip}");
    assert_eq!(neighbour(&lab, vip), mac(&lab, new), "client follows");
    let log = c.log(old - 1);
    assert!(log.contains("virtual address removed"), "{log}");
    drop(client);

    // The operator repairs the old SU (a node failover leaves it uninstantiated) and it
    // becomes the standby; then a switchover moves the address back, gracefully: the active
    // is quiesced (the address removed) before the old SU is made active (added).
    let (old_su, new_su) = (format!("web-{old}"), format!("web-{new}"));
    let start = Instant::now();
    for op in [
        "lock",
        "lock-instantiation",
        "unlock-instantiation",
        "unlock",
    ] {
        let (ok, out) = aisctl(&c, new - 1, &[op, &old_su]);
        assert!(ok, "{op} {old_su}: {out}");
        // Each operation is answered before the ring has applied it: wait for it to show
        // before the next one.
        let want = match op {
            "lock" => ", locked, ",
            "lock-instantiation" => ", uninstantiated",
            "unlock-instantiation" => ", instantiated",
            _ => ", unlocked, ",
        };
        wait_status(&c, new - 1, start, |l| {
            l.contains(&format!("SU {old_su} ")) && l.contains(want)
        });
    }
    let both = format!("SI web: {}", {
        let mut v = [format!("{old_su} standby"), format!("{new_su} active")];
        v.sort();
        v.join(", ")
    });
    wait_status(&c, new - 1, start, |l| l.trim_start() == both);
    assert!(holds(&lab, new, vip) && !holds(&lab, old, vip));
    let mut client = Helper::start(&lab, 3, "client", &format!("{vip} 3000"));
    std::thread::sleep(Duration::from_secs(1));
    let (ok, out) = aisctl(&c, new - 1, &["switchover", "web"]);
    assert!(ok, "switchover: {out}");
    wait_holder(&lab, vip, Some(old), &c);
    let line = client.line();
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(k))
            .unwrap_or_else(|| panic!("{k} in {line:?}"))
            .parse()
            .unwrap()
    };
    println!(
        "aisctl amf switchover moved the vip h{new} -> h{old}: client gap {:.1} ms (max gap \
         {:.1} ms, {} answers to {} requests)",
        field("switch_gap_us=") as f64 / 1000.0,
        field("max_gap_us=") as f64 / 1000.0,
        field("answers="),
        field("requests="),
    );
    assert_eq!(field("first="), new as u64, "{line}");
    assert_eq!(field("last="), old as u64, "{line}");
    assert!(
        Duration::from_micros(field("switch_gap_us=")) < MAX_FAILOVER_GAP,
        "{line}"
    );
    assert!(
        !holds(&lab, new, vip),
        "h{new} still holds {vip} after the switchover"
    );
    assert_eq!(neighbour(&lab, vip), mac(&lab, old), "client follows back");
    drop(client);
    c.terminate(0);
    c.terminate(1);
    drop(c);
    drop(lab);
    let _ = fs::remove_dir_all(&dir);
}

/// Runs `aisctl amf ARGS` against node `i`: (success, stdout + stderr).
fn aisctl(c: &Cluster, i: usize, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aisctl"))
        .arg("--socket")
        .arg(&c.node(i).socket)
        .arg("amf")
        .args(args)
        .output()
        .expect("aisctl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Waits until a line of node `i`'s `aisctl amf status` satisfies `want`.
fn wait_status(c: &Cluster, i: usize, start: Instant, want: impl Fn(&str) -> bool) {
    loop {
        let (ok, s) = aisctl(c, i, &["status"]);
        if ok && s.lines().any(&want) {
            return;
        }
        assert!(start.elapsed() < LONG, "status:\n{s}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
