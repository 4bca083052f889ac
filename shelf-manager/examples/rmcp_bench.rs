//! Measures the RMCP+ server: sessions per second (Open Session + RAKP 1–4) and sealed
//! request latency (Get Device ID), either in process (the pure server and the shelf
//! handler, no socket) or over UDP against a running `shelfd`.
//!
//!     cargo run --release -p shelf-manager --example rmcp_bench -- 2000
//!     cargo run --release -p shelf-manager --example rmcp_bench -- 2000 127.0.0.1:6230 admin secret
//!     cargo run --release -p shelf-manager --example rmcp_bench -- 2000 127.0.0.1:9623 admin admin 3
//!
//! The last argument is the cipher suite (17, the default, or 3: `ipmi_sim` offers only 3),
//! so the same measurement runs against `shelfd` and against OpenIPMI's `ipmi_sim`.
//!
//! Prints one line per figure: count, rate, and latency percentiles in microseconds.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shelf_manager::commands::ShelfHandler;
use shelf_manager::ipmc::SimIpmc;
use shelf_manager::model::Config;
use shelf_manager::rmcp::console::Console;
use shelf_manager::rmcp::crypto::Suite;
use shelf_manager::rmcp::server::{Server, ServerConfig};
use shelf_manager::rmcp::users::Users;
use shelf_manager::shelf::Shelf;

/// One datagram in, its answer out.
trait Link {
    fn exchange(&mut self, pkt: &[u8]) -> Vec<u8>;
}

struct InProcess {
    server: Server,
    handler: ShelfHandler<SimIpmc>,
    now: u64,
}

impl Link for InProcess {
    fn exchange(&mut self, pkt: &[u8]) -> Vec<u8> {
        self.now += 1;
        let from = SocketAddr::from(([127, 0, 0, 1], 9));
        let o = self
            .server
            .handle_datagram(self.now, from, pkt, &mut self.handler);
        o.reply.expect("an answer")
    }
}

struct Udp(UdpSocket);

impl Link for Udp {
    fn exchange(&mut self, pkt: &[u8]) -> Vec<u8> {
        self.0.send(pkt).expect("send");
        let mut buf = [0u8; 2048];
        let n = self.0.recv(&mut buf).expect("an answer within 1 s");
        buf[..n].to_vec()
    }
}

fn login(link: &mut impl Link, suite: Suite, id: u32, user: &str, pw: &str) -> Console {
    let mut c = Console::new(suite, id, user, pw, 4);
    let open = link.exchange(&c.open_session());
    let r2 = link.exchange(&c.rakp1(&open).expect("open session"));
    let r4 = link.exchange(&c.rakp3(&r2).expect("rakp 2"));
    c.finish(&r4).expect("rakp 4");
    c
}

fn report(what: &str, h: &Histogram<u64>, elapsed: Duration) {
    println!(
        "{what}: {} in {:.2} s = {:.0}/s; latency us p50 {} p99 {} max {}",
        h.len(),
        elapsed.as_secs_f64(),
        h.len() as f64 / elapsed.as_secs_f64(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.max()
    );
}

fn run(link: &mut impl Link, suite: Suite, n: u32, user: &str, pw: &str) {
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let mut c = login(link, suite, 1000 + i, user, pw);
        let close = c.request(0x06, 0x3C, &c.server_id.to_le_bytes());
        let (code, _) = c.response(&link.exchange(&close)).expect("close");
        assert_eq!(code, 0);
        h.record(t.elapsed().as_micros() as u64).expect("record");
    }
    report(
        &format!("sessions (open, RAKP 1-4, close; suite {})", suite.id()),
        &h,
        start.elapsed(),
    );
    let mut c = login(link, suite, 7, user, pw);
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let pkt = c.request(0x06, 0x01, &[]);
        let (code, _) = c.response(&link.exchange(&pkt)).expect("device id");
        assert_eq!(code, 0);
        h.record(t.elapsed().as_micros() as u64).expect("record");
    }
    report(
        &format!("sealed requests (Get Device ID; suite {})", suite.id()),
        &h,
        start.elapsed(),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u32 = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    if let Some(addr) = args.get(1) {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        sock.connect(addr.as_str()).expect("connect");
        let user = args.get(2).map_or("admin", String::as_str);
        let pw = args.get(3).map_or("secret", String::as_str);
        let suite = match args.get(4).map(String::as_str) {
            Some("3") => Suite::Sha1,
            None | Some("17") => Suite::Sha256,
            Some(other) => panic!("cipher suite {other}: 3 or 17"),
        };
        println!("over UDP against {addr}");
        run(&mut Udp(sock), suite, n, user, pw);
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/shelf-sim.toml");
    let config =
        Config::from_str(&std::fs::read_to_string(path).expect("model"), "sim").expect("model");
    let users = Users::from_str(
        "[[user]]\nname = \"admin\"\npassword = \"secret\"\nprivilege = \"administrator\"\n",
        "bench",
    )
    .expect("users");
    let shelf = Shelf::new(&config);
    let sim = SimIpmc::new(&config);
    let mut link = InProcess {
        server: Server::new(ServerConfig::default(), users),
        handler: ShelfHandler::new(config, shelf, sim, 0),
        now: 0,
    };
    println!("in process (no socket)");
    run(&mut link, Suite::Sha256, n, "admin", "secret");
}
