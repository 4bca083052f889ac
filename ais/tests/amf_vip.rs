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
//! Assumes: root, iproute2. This binary has its own `main` (`harness = false` in
//! `ais/Cargo.toml`): with `AMF_VIP_HELPER` set it is the echo server, the client or a node
//! carrying out the IP component's operations on order (as a running executive would),
//! started in a host with `ip netns exec`.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use ais::amf::vip::VirtualIp;
use netlab::Lab;

const HELPER_ENV: &str = "AMF_VIP_HELPER";
const PORT: u16 = 7100;
/// The longest acceptable time without answers while the address moves. Without the
/// gratuitous ARP the client would keep sending to A's MAC until its neighbour entry expires
/// (tens of seconds).
const MAX_GAP: Duration = Duration::from_millis(1000);
const CLIENT_RUN: Duration = Duration::from_secs(3);

fn main() {
    match std::env::var(HELPER_ENV).ok().as_deref() {
        Some("echo") => echo(),
        Some("client") => client(),
        Some("node") => node(),
        Some(other) => panic!("{HELPER_ENV}={other}: unknown role"),
        None => {
            moves_with_gratuitous_arp();
            println!("test moves_with_gratuitous_arp ... ok");
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

/// Client: a request to the address (argument 1) every millisecond for [`CLIENT_RUN`]; prints
/// `RESULT first=H last=H answers=N switch_gap_us=G max_gap_us=M`, where the switch gap is
/// the time between the last answer from the first host and the first from another.
fn client() {
    let vip: Ipv4Addr = std::env::args().nth(1).unwrap().parse().unwrap();
    let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    let to = SocketAddrV4::new(vip, PORT);
    let start = Instant::now();
    let mut seq = 0u64;
    let mut answers: Vec<(Duration, u8)> = Vec::new();
    let mut buf = [0u8; 64];
    println!("ready");
    // Requests on a fixed schedule, one per millisecond, answers read in between.
    let mut next_send = start;
    while start.elapsed() < CLIENT_RUN {
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
    c.arg(arg).env(HELPER_ENV, role);
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
