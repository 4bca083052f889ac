//! Connect errors, each one clear and typed: wrong password or user and unsupported cipher
//! suites against the simulated shelf; a host that does not answer, nothing listening, and
//! fake hosts that answer with truncated or malformed packets (some of which make ipmi-rs
//! 0.6 panic inside: the session's guard turns that into an error).

mod common;

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Sim;
use hpi::ipmi::credentials::Credentials;
use hpi::ipmi::session::{ConnectError, Session, SessionConfig};

fn cfg(port: u16) -> SessionConfig {
    let mut c = SessionConfig::new(("127.0.0.1", port)).unwrap();
    c.timeout = Duration::from_millis(300);
    c
}

#[test]
fn wrong_password_wrong_user_and_cipher_suites_against_the_sim() {
    let sim = Sim::start();
    let e = Session::connect(&sim.config(), &Credentials::new("admin", "wrong")).unwrap_err();
    assert!(matches!(e, ConnectError::Authentication { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("authentication as user \"admin\""), "{msg}");
    assert!(
        !msg.contains("wrong"),
        "the password is never printed: {msg}"
    );
    eprintln!("wrong password: {msg}");

    let e = Session::connect(&sim.config(), &Credentials::new("nobody", "admin")).unwrap_err();
    assert!(matches!(e, ConnectError::Authentication { .. }), "{e:?}");

    for suite in [0u8, 1, 17] {
        let mut c = sim.config();
        c.cipher_suite = suite;
        let e = Session::connect(&c, &Sim::creds()).unwrap_err();
        assert!(
            matches!(e, ConnectError::UnsupportedCipherSuite { requested } if requested == suite),
            "{e:?}"
        );
        assert!(e.to_string().contains(&format!("cipher suite {suite}")));
    }
    // and the right ones work, with the privilege raised (a PICMG command answers)
    let mut s = Session::connect(&sim.config(), &Sim::creds()).unwrap();
    let a = s.request(0x2C, 0x00, &[0x00]).unwrap();
    assert_eq!(a.cc, 0);
    assert_eq!(a.data[0], 0x00);
}

#[test]
fn nothing_listening_is_refused() {
    let port = {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.local_addr().unwrap().port()
    };
    let e = Session::connect(&cfg(port), &Sim::creds()).unwrap_err();
    assert!(
        matches!(
            e,
            ConnectError::Refused { .. } | ConnectError::NoAnswer { .. }
        ),
        "{e:?}"
    );
}

/// A UDP responder on 127.0.0.1: `answer` maps each request datagram to an optional reply.
struct FakeHost {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeHost {
    fn new(answer: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + 'static) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s2.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf)
                    && let Some(r) = answer(&buf[..n])
                {
                    let _ = sock.send_to(&r, from);
                }
            }
        });
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeHost {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ipmb_checksum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, x| a.wrapping_add(*x)).wrapping_neg()
}

/// A valid ASF presence pong (IPMI supported) for a ping.
fn pong(req: &[u8]) -> Vec<u8> {
    let tag = req.get(9).copied().unwrap_or(0);
    let mut p = vec![
        0x06, 0x00, 0xFF, 0x06, 0x00, 0x00, 0x11, 0xBE, 0x40, tag, 0x00, 0x10,
    ];
    p.extend([
        0x00, 0x00, 0x11, 0xBE, 0, 0, 0, 0, 0x81, 0x00, 0, 0, 0, 0, 0, 0,
    ]);
    p
}

/// An IPMI 1.5 session-less reply to Get Channel Authentication Capabilities with
/// IPMI 2.0 support, answering the request in `req`.
fn auth_caps(req: &[u8]) -> Vec<u8> {
    // request: RMCP(4) authtype(1) seq(4) id(4) len(1) msg: rsSA netfn chk rqSA rqSeq cmd ...
    let rq_seq = req.get(18).copied().unwrap_or(0);
    let hdr = [0x81, 0x07 << 2];
    let mut msg = vec![hdr[0], hdr[1], ipmb_checksum(&hdr)];
    let body = [
        0x20, rq_seq, 0x38, 0x00, 0x01, 0x81, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
    ];
    msg.extend(body);
    msg.push(ipmb_checksum(&body));
    let mut p = vec![0x06, 0x00, 0xFF, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
    p.push(msg.len() as u8);
    p.extend(msg);
    p
}

/// An RMCP+ Open Session Response with an error status.
fn open_session_status(status: u8) -> Vec<u8> {
    let payload = [0x00, status];
    let mut p = vec![0x06, 0x00, 0xFF, 0x07, 0x06, 0x11, 0, 0, 0, 0, 0, 0, 0, 0];
    p.extend((payload.len() as u16).to_le_bytes());
    p.extend(payload);
    p
}

fn is_ping(d: &[u8]) -> bool {
    d.get(3) == Some(&0x06)
}

fn is_rmcp_plus(d: &[u8]) -> bool {
    d.get(3) == Some(&0x07) && d.get(4) == Some(&0x06)
}

#[test]
fn a_host_that_does_not_answer_times_out() {
    let host = FakeHost::new(|_| None);
    let t0 = Instant::now();
    let e = Session::connect(&cfg(host.port), &Sim::creds()).unwrap_err();
    assert!(matches!(e, ConnectError::NoAnswer { .. }), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert!(e.to_string().contains("did not answer"), "{e}");
}

#[test]
fn the_shelf_manager_refusing_the_cipher_suite_is_named() {
    let host = FakeHost::new(|d| {
        if is_ping(d) {
            Some(pong(d))
        } else if is_rmcp_plus(d) {
            Some(open_session_status(0x11)) // no matching cipher suite
        } else {
            Some(auth_caps(d))
        }
    });
    let e = Session::connect(&cfg(host.port), &Sim::creds()).unwrap_err();
    assert!(
        matches!(e, ConnectError::CipherSuiteRefused { suite: 3, .. }),
        "{e:?}"
    );
}

#[test]
fn truncated_and_malformed_answers_are_errors_not_panics() {
    // (name, responder): each must give ConnectError::Malformed (or NoAnswer when the
    // garbage is dropped as undecodable), never a crash
    type Answer = fn(&[u8]) -> Option<Vec<u8>>;
    let cases: Vec<(&str, Answer)> = vec![
        ("garbage to the ping", |_| Some(vec![0xDE, 0xAD, 0xBE])),
        ("pong cut short (ipmi-rs 0.6 indexes past its end)", |d| {
            let mut p = pong(d);
            p.truncate(14);
            Some(p)
        }),
        ("pong without IPMI", |d| {
            let mut p = pong(d);
            p[20] = 0x00;
            Some(p)
        }),
        ("truncated auth capabilities", |d| {
            if is_ping(d) {
                Some(pong(d))
            } else {
                let mut p = auth_caps(d);
                p.truncate(17);
                Some(p)
            }
        }),
        ("auth capabilities with a bad checksum", |d| {
            if is_ping(d) {
                Some(pong(d))
            } else {
                let mut p = auth_caps(d);
                let n = p.len();
                p[n - 1] ^= 0x55;
                Some(p)
            }
        }),
        ("open session response cut short", |d| {
            if is_ping(d) {
                Some(pong(d))
            } else if is_rmcp_plus(d) {
                let mut p = open_session_status(0x00);
                p.truncate(12);
                Some(p)
            } else {
                Some(auth_caps(d))
            }
        }),
        ("open session response 'ok' without its body", |d| {
            if is_ping(d) {
                Some(pong(d))
            } else if is_rmcp_plus(d) {
                Some(open_session_status(0x00))
            } else {
                Some(auth_caps(d))
            }
        }),
    ];
    for (name, f) in cases {
        let host = FakeHost::new(f);
        let e = Session::connect(&cfg(host.port), &Sim::creds()).unwrap_err();
        assert!(
            matches!(
                e,
                ConnectError::Malformed { .. } | ConnectError::NoAnswer { .. }
            ),
            "{name}: {e:?}"
        );
        eprintln!("{name}: {e}");
    }
}
