//! The Totem driver over two networks (redundant rings): kernel UDP on loopback (each network
//! its own sockets; unicast, or multicast with a group per network) and the in-memory network, each transport behind the fault-injecting
//! wrapper (`dataplane::fault::FaultInjector`) so that a test can cut a network while the
//! drivers run.
//!
//! Assumptions: loopback only, no root, a loaded 2-core machine (waits are generous; the one
//! timing bound each test checks is stated on it).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use dataplane::fault::{Fault, FaultControl, FaultInjector};
use dataplane::mem::{MemConfig, MemNetwork, MemTransport};
use dataplane::udp::{UdpConfig, UdpTransport};
use dataplane::{Member, Transport};
use totem_dpdk::driver::{
    self, Driver, DriverConfig, DriverSubmitError, EventSink, Mismatch, NetworkControlError,
    NetworkEvent,
};
use totem_dpdk::rrp::{NetState, RrpAdminError, RrpConfig, RrpMode};
use totem_dpdk::srp::{self, ConfigKind, Event, SubmitError};
use totem_dpdk::{DeliveryKind, MsgId, NodeId, Priority};

const IDS: [u32; 3] = [1, 2, 3];

/// The test's side of a transport behind a `FaultInjector`: faults set from the test thread.
type Lever = FaultControl;
type Switch<T> = FaultInjector<T>;

fn switch<T: Transport>(inner: T, me: u32) -> (Switch<T>, Lever) {
    let t = FaultInjector::new(inner, dataplane::NodeId(me), u64::from(me));
    let control = t.control();
    (t, control)
}

/// What a driver reports: the core's events and the network events, in one channel.
#[derive(Debug)]
enum Out {
    Core(Event),
    Net(NetworkEvent),
}

struct Sink(Sender<Out>);

impl EventSink for Sink {
    fn event(&mut self, event: Event) {
        let _ = self.0.send(Out::Core(event));
    }
    fn network(&mut self, event: NetworkEvent) {
        let _ = self.0.send(Out::Net(event));
    }
}

struct Node {
    driver: Driver,
    out: Receiver<Out>,
    /// One lever per network.
    levers: Vec<Lever>,
}

fn rrp(mode: RrpMode) -> RrpConfig {
    RrpConfig::new(2, mode)
}

/// Three nodes over two UDP networks on loopback (each node one socket per network).
/// `order[i]`: the order in which node `i + 1` lists the networks.
fn spawn_udp(mode: RrpMode, orders: [[usize; 2]; 3]) -> Vec<Node> {
    let sockets: Vec<Vec<UdpTransport>> = IDS
        .iter()
        .map(|_| {
            (0..2)
                .map(|_| {
                    UdpTransport::new(UdpConfig::unicast("127.0.0.1:0".parse().unwrap()))
                        .expect("bind")
                })
                .collect()
        })
        .collect();
    // members[physical network] = every node's address on it.
    let members: Vec<Vec<Member>> = (0..2)
        .map(|net| {
            IDS.iter()
                .zip(&sockets)
                .map(|(&id, s)| Member {
                    id: dataplane::NodeId(id),
                    addr: s[net].local_addr(),
                })
                .collect()
        })
        .collect();
    IDS.iter()
        .zip(sockets)
        .zip(orders)
        .map(|((&id, socks), order)| {
            let mut socks: Vec<Option<UdpTransport>> = socks.into_iter().map(Some).collect();
            let mut transports = Vec::new();
            let mut levers = Vec::new();
            for &phys in &order {
                let (t, l) = switch(socks[phys].take().expect("each network once"), id);
                transports.push(t);
                levers.push(l);
            }
            let mut cfg = DriverConfig::new(
                srp::Config::new(NodeId(id), Vec::new()),
                members[order[0]].clone(),
            );
            cfg.more_members = vec![members[order[1]].clone()];
            cfg.rrp = rrp(mode);
            let (tx, out) = crossbeam_channel::unbounded();
            let driver = driver::spawn_networks(transports, cfg, Sink(tx)).expect("spawn");
            Node {
                driver,
                out,
                levers,
            }
        })
        .collect()
}

/// Three nodes over two multicast UDP networks on loopback (`transport = "udp"` with one
/// group per network): no member list, every node's address on each network is learnt from
/// its frames there.
fn spawn_udp_multicast(mode: RrpMode) -> Vec<Node> {
    use dataplane::udp::Mode;
    let mut ports = [0u16; 2];
    let sockets: Vec<Vec<UdpTransport>> = IDS
        .iter()
        .map(|_| {
            (0..2)
                .map(|net| {
                    let t = UdpTransport::new(UdpConfig {
                        mode: Mode::Multicast {
                            group: std::net::Ipv4Addr::new(239, 255, 21, 1 + net as u8).into(),
                            port: ports[net],
                            ttl: 1,
                            loopback: true,
                            interface: Some(std::net::Ipv4Addr::LOCALHOST.into()),
                        },
                        ..UdpConfig::unicast("127.0.0.1:0".parse().unwrap())
                    })
                    .expect("bind");
                    // The first node's kernel-chosen group port is every node's.
                    ports[net] = t.group_addr().expect("multicast").port();
                    t
                })
                .collect()
        })
        .collect();
    IDS.iter()
        .zip(sockets)
        .map(|(&id, socks)| {
            let (transports, levers): (Vec<_>, Vec<_>) =
                socks.into_iter().map(|t| switch(t, id)).unzip();
            let mut cfg = DriverConfig::new(srp::Config::new(NodeId(id), Vec::new()), Vec::new());
            cfg.more_members = vec![Vec::new()];
            cfg.rrp = rrp(mode);
            let (tx, out) = crossbeam_channel::unbounded();
            let driver = driver::spawn_networks(transports, cfg, Sink(tx)).expect("spawn");
            Node {
                driver,
                out,
                levers,
            }
        })
        .collect()
}

/// Three nodes over two in-memory networks.
fn spawn_mem(mode: RrpMode) -> Vec<Node> {
    let nets = [MemNetwork::new(), MemNetwork::new()];
    let members: Vec<Member> = IDS
        .iter()
        .map(|&id| Member {
            id: dataplane::NodeId(id),
            addr: MemNetwork::node_addr(dataplane::NodeId(id)),
        })
        .collect();
    IDS.iter()
        .map(|&id| {
            let (transports, levers): (Vec<Switch<MemTransport>>, Vec<Lever>) = nets
                .iter()
                .map(|n| {
                    switch(
                        n.attach_node(dataplane::NodeId(id), MemConfig::default())
                            .expect("attach"),
                        id,
                    )
                })
                .unzip();
            let mut cfg =
                DriverConfig::new(srp::Config::new(NodeId(id), Vec::new()), members.clone());
            cfg.rrp = rrp(mode);
            let (tx, out) = crossbeam_channel::unbounded();
            let driver = driver::spawn_networks(transports, cfg, Sink(tx)).expect("spawn");
            Node {
                driver,
                out,
                levers,
            }
        })
        .collect()
}

/// Waits for a regular configuration of `n` members at every node.
fn wait_ring(nodes: &[Node], n: usize) {
    for node in nodes {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match node.out.recv_timeout(left) {
                Ok(Out::Core(Event::ConfigChange(c)))
                    if c.kind == ConfigKind::Regular && c.members.len() == n =>
                {
                    break;
                }
                Ok(_) => {}
                Err(e) => panic!("no ring of {n} within 10 s: {e}"),
            }
        }
    }
}

fn submit_retrying(d: &driver::Submitter, p: Bytes) -> MsgId {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match d.submit(Priority::NORMAL, DeliveryKind::Agreed, p.clone()) {
            Ok(id) => return id,
            Err(DriverSubmitError::Core(SubmitError::Backpressure)) => {
                assert!(Instant::now() < deadline, "backpressure for 20 s");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("submit failed: {e}"),
        }
    }
}

/// Waits until `pred` holds for every node's status, within `within`; returns how long it took.
fn wait_status(
    nodes: &[Node],
    within: Duration,
    what: &str,
    pred: impl Fn(&driver::DriverStatus) -> bool,
) -> Duration {
    let t0 = Instant::now();
    while !nodes.iter().all(|n| pred(&n.driver.status())) {
        assert!(
            t0.elapsed() < within,
            "{what}: not within {within:?}: {:?}",
            nodes
                .iter()
                .map(|n| n
                    .driver
                    .status()
                    .networks
                    .iter()
                    .map(|s| s.rrp.state)
                    .collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    t0.elapsed()
}

/// Under a stream of messages from every node, network 0 is cut (every node's transport on it
/// drops everything), stays cut for a while, and comes back. Checks: no configuration change
/// at any node; every message delivered exactly once, in one order, at every node; every node
/// marks network 0 faulty and, once it works again, re-enables it by itself (bound: 5 s, far
/// above the 200 ms of the layer's four good windows, for a loaded machine).
fn cut_and_restore(nodes: Vec<Node>) {
    fault_and_restore(nodes, Fault::Down, &[0, 1, 2]);
}

/// [`cut_and_restore`] with `fault` on network 0 (every node's wrapper applies the part that
/// concerns it), which the nodes of index `marked` must mark faulty.
fn fault_and_restore(nodes: Vec<Node>, fault: Fault, marked: &[usize]) {
    wait_ring(&nodes, 3);
    const PER_NODE: u32 = 300;
    let submitters: Vec<_> = nodes.iter().map(|n| n.driver.submitter()).collect();
    let levers: Vec<Lever> = nodes.iter().map(|n| n.levers[0].clone()).collect();
    let mut expected: BTreeMap<MsgId, Bytes> = BTreeMap::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = IDS
            .iter()
            .zip(&submitters)
            .map(|(&id, sub)| {
                s.spawn(move || {
                    (0..PER_NODE)
                        .map(|i| {
                            let p = Bytes::from(format!("{id}:{i}:{}", "x".repeat(200)));
                            let m = (submit_retrying(sub, p.clone()), p);
                            std::thread::sleep(Duration::from_millis(2));
                            m
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // Cut network 0 once the stream runs, and wait until every node sees it faulty.
        std::thread::sleep(Duration::from_millis(150));
        for l in &levers {
            l.apply(fault);
        }
        for &i in marked {
            wait_status(
                &nodes[i..=i],
                Duration::from_secs(5),
                "network 0 faulty",
                |st| {
                    matches!(st.networks[0].rrp.state, NetState::Faulty(_))
                        && st.networks[1].rrp.state == NetState::Working
                },
            );
        }
        std::thread::sleep(Duration::from_millis(300));
        for l in &levers {
            l.apply(Fault::Up);
        }
        let took = wait_status(&nodes, Duration::from_secs(5), "network 0 restored", |st| {
            st.networks.iter().all(|n| n.rrp.state == NetState::Working)
        });
        eprintln!("network 0 re-enabled at every node {took:?} after it works again");
        for h in handles {
            expected.extend(h.join().expect("submitter"));
        }
    });
    let total = expected.len();
    let mut orders = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut order = Vec::with_capacity(total);
        let mut net_events = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while order.len() < total {
            let left = deadline.saturating_duration_since(Instant::now());
            match node.out.recv_timeout(left) {
                Ok(Out::Core(Event::Deliver(d))) => {
                    assert_eq!(expected.get(&d.id), Some(&d.payload), "node {}", i + 1);
                    order.push(d.id);
                }
                Ok(Out::Core(Event::ConfigChange(c))) => {
                    panic!("node {} changed configuration: {c:?}", i + 1)
                }
                Ok(Out::Net(e)) => net_events.push(e),
                Ok(_) => {}
                Err(e) => panic!("node {} delivered {} of {total}: {e}", i + 1, order.len()),
            }
        }
        net_events.extend(node.out.try_iter().filter_map(|o| match o {
            Out::Net(e) => Some(e),
            Out::Core(Event::ConfigChange(c)) => {
                panic!("node {} changed configuration: {c:?}", i + 1)
            }
            Out::Core(_) => None,
        }));
        if marked.contains(&i) {
            assert!(
                net_events
                    .iter()
                    .any(|e| matches!(e, NetworkEvent::Faulty { net: 0, .. })),
                "node {}: {net_events:?}",
                i + 1
            );
            assert!(
                net_events.contains(&NetworkEvent::Restored { net: 0 }),
                "node {}: {net_events:?}",
                i + 1
            );
        }
        assert!(
            !net_events
                .iter()
                .any(|e| matches!(e, NetworkEvent::Faulty { net: 1, .. })),
            "node {}: {net_events:?}",
            i + 1
        );
        orders.push(order);
    }
    let mut sorted = orders[0].clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), total, "a message delivered twice");
    for o in &orders[1..] {
        assert_eq!(o, &orders[0], "orders differ");
    }
    // Network 1 carried the first copy of what network 0 lost somewhere (at the receivers of
    // the cut; elsewhere network 0's copy usually wins the race). The driver's status is a
    // snapshot refreshed periodically: wait for one that counts them (a generous deadline).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let firsts: u64 = nodes
            .iter()
            .map(|n| n.driver.status().networks[1].rrp.first_copies)
            .sum();
        if firsts > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "network 1 delivered no first copy at any node"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The fault wrappers' own counters reach the driver's status (summed over the two
    // networks by name, listed once each): what `aisctl status` shows of a transport.
    let mut dropped = 0;
    for node in nodes {
        let status = node.driver.status();
        assert_eq!(status.networks.len(), 2);
        assert!(status.networks.iter().all(|n| n.mismatched == 0));
        let names = dataplane::stats::names(&status);
        assert_eq!(dataplane::stats::duplicate(&names), None, "{names:?}");
        assert!(names.contains(&"fault_loss_dropped"), "{names:?}");
        dropped += status
            .backend
            .0
            .iter()
            .filter(|e| e.0.starts_with("fault_") && e.0.ends_with("_dropped"))
            .map(|e| e.2)
            .sum::<u64>();
        node.driver.stop().expect("stop");
    }
    assert!(
        dropped > 0,
        "no node's status counted the frames the fault dropped"
    );
}

#[test]
fn udp_active_cut_network_costs_no_membership_change_and_comes_back() {
    cut_and_restore(spawn_udp(RrpMode::Active, [[0, 1]; 3]));
}

#[test]
fn udp_passive_cut_network_costs_no_membership_change_and_comes_back() {
    cut_and_restore(spawn_udp(RrpMode::Passive, [[0, 1]; 3]));
}

/// Multicast on both networks: a network whose copies mostly lose the race to the other
/// still learns every member's address (from the copies the layer drops), so it is never
/// marked faulty and carries the token when network 0 is cut.
#[test]
fn udp_multicast_cut_network_costs_no_membership_change_and_comes_back() {
    cut_and_restore(spawn_udp_multicast(RrpMode::Active));
}

/// The same in passive mode (data frames spread over the two groups).
#[test]
fn udp_multicast_passive_cut_network_costs_no_membership_change_and_comes_back() {
    cut_and_restore(spawn_udp_multicast(RrpMode::Passive));
}

/// Network 0 loses half of every link's frames: every node marks it faulty, nothing else
/// changes, and it comes back once the loss ends.
#[test]
fn udp_active_lossy_network_costs_no_membership_change_and_comes_back() {
    fault_and_restore(
        spawn_udp(RrpMode::Active, [[0, 1]; 3]),
        Fault::Lossy(0.5),
        &[0, 1, 2],
    );
}

/// Network 0 is cut from node 1 to node 2 only: node 2 (which hears node 1's token and
/// messages there) marks it faulty; no configuration change; re-enabled once it works.
#[test]
fn udp_active_one_way_cut_costs_no_membership_change_and_comes_back() {
    fault_and_restore(
        spawn_udp(RrpMode::Active, [[0, 1]; 3]),
        Fault::OneWay {
            from: dataplane::NodeId(1),
            to: dataplane::NodeId(2),
        },
        &[1],
    );
}

/// The in-memory network cannot say which descriptors it waits on: the loop falls back to
/// short waits, and still rides out the cut.
#[test]
fn mem_active_cut_network_costs_no_membership_change_and_comes_back() {
    cut_and_restore(spawn_mem(RrpMode::Active));
}

/// Node 3 lists the two networks in the other order: its frames arrive on the others'
/// network 1 tagged as its network 0 (and the reverse), so nodes 1 and 2 refuse them and
/// report a mismatch naming node 3; node 3 reports the same of them. 1 and 2 form a ring
/// without it.
#[test]
fn networks_listed_in_another_order_are_refused_and_named() {
    let nodes = spawn_udp(RrpMode::Active, [[0, 1], [0, 1], [1, 0]]);
    let saw = |node: &Node, want: &dyn Fn(&NetworkEvent) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match node.out.recv_timeout(left) {
                Ok(Out::Net(e)) if want(&e) => return e,
                Ok(Out::Core(Event::ConfigChange(c))) if c.kind == ConfigKind::Regular => {
                    assert!(c.members.len() <= 2, "a ring with node 3: {c:?}");
                }
                Ok(_) => {}
                Err(e) => panic!("no such network event within 10 s: {e}"),
            }
        }
    };
    for node in &nodes[..2] {
        let e = saw(node, &|e| {
            matches!(
                e,
                NetworkEvent::Mismatch {
                    from: NodeId(3),
                    ..
                }
            )
        });
        let NetworkEvent::Mismatch {
            net,
            problem,
            networks,
            ..
        } = e
        else {
            unreachable!()
        };
        assert_eq!(
            problem,
            Mismatch::Order {
                theirs: 1 - usize::from(net)
            }
        );
        assert_eq!(networks, 2);
        assert!(e.to_string().contains("another order"), "{e}");
    }
    saw(&nodes[2], &|e| {
        matches!(
            e,
            NetworkEvent::Mismatch {
                from: NodeId(1 | 2),
                ..
            }
        )
    });
    wait_status(
        &nodes[..2],
        Duration::from_secs(10),
        "ring of 1 and 2",
        |st| st.members == vec![NodeId(1), NodeId(2)],
    );
    // Both of node 1's networks count node 3's refused frames (the status is refreshed every
    // 100 ms, and node 3's frames reach each network in their own time).
    wait_status(
        &nodes[..1],
        Duration::from_secs(10),
        "mismatches counted on both networks",
        |st| st.networks.iter().all(|n| n.mismatched > 0),
    );
    for n in nodes {
        n.driver.stop().expect("stop");
    }
}

/// A node with one network (untagged frames) next to two nodes with two: the two refuse its
/// frames on their network 0 and say it has no network tag.
#[test]
fn a_node_with_another_number_of_networks_is_refused_and_named() {
    let socks: Vec<Vec<UdpTransport>> = IDS
        .iter()
        .map(|&id| {
            (0..if id == 3 { 1 } else { 2 })
                .map(|_| {
                    UdpTransport::new(UdpConfig::unicast("127.0.0.1:0".parse().unwrap()))
                        .expect("bind")
                })
                .collect()
        })
        .collect();
    let members = |net: usize| -> Vec<Member> {
        IDS.iter()
            .zip(&socks)
            .filter_map(|(&id, s)| {
                s.get(net).map(|t| Member {
                    id: dataplane::NodeId(id),
                    addr: t.local_addr(),
                })
            })
            .collect()
    };
    let (m0, m1) = (members(0), members(1));
    let mut outs = Vec::new();
    let mut drivers = Vec::new();
    for (&id, s) in IDS.iter().zip(socks) {
        let mut cfg = DriverConfig::new(srp::Config::new(NodeId(id), Vec::new()), m0.clone());
        let (tx, out) = crossbeam_channel::unbounded();
        if s.len() == 2 {
            cfg.more_members = vec![m1.clone()];
            cfg.rrp = rrp(RrpMode::Passive);
            drivers.push(driver::spawn_networks(s, cfg, Sink(tx)).expect("spawn"));
        } else {
            drivers.push(
                driver::spawn_with(s.into_iter().next().unwrap(), cfg, Sink(tx)).expect("spawn"),
            );
        }
        outs.push(out);
    }
    for out in &outs[..2] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match out.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Out::Net(NetworkEvent::Mismatch {
                    net: 0,
                    from: NodeId(3),
                    problem: Mismatch::Untagged,
                    ..
                })) => break,
                Ok(_) => {}
                Err(e) => panic!("no mismatch reported within 10 s: {e}"),
            }
        }
    }
    for d in drivers {
        d.stop().expect("stop");
    }
}

/// The operator's commands: network 1 disabled (nothing sent on it: the other nodes see its
/// copies from node 1 go missing), the last network refused, and enabled again.
#[test]
fn the_operator_disables_and_enables_a_network() {
    let nodes = spawn_mem(RrpMode::Active);
    wait_ring(&nodes, 3);
    let sub = nodes[0].driver.submitter();
    assert_eq!(sub.set_network(1, false), Ok(()));
    assert_eq!(
        sub.set_network(0, false),
        Err(NetworkControlError::Refused(RrpAdminError::LastNetwork(0)))
    );
    assert_eq!(
        sub.set_network(2, true),
        Err(NetworkControlError::Refused(RrpAdminError::NoSuchNetwork {
            net: 2,
            networks: 2
        }))
    );
    wait_status(&nodes[..1], Duration::from_secs(2), "disabled", |st| {
        st.networks[1].rrp.state == NetState::Disabled
    });
    let sent = nodes[0].driver.status().networks[1].rrp.frames_sent;
    for i in 0..50u32 {
        submit_retrying(&sub, Bytes::from(i.to_string()));
    }
    // The others judge network 1 by node 1's missing copies: its successor, which receives
    // the token from it, marks it faulty (lost or one-way, depending on what else it hears).
    let t0 = Instant::now();
    while !nodes[1..]
        .iter()
        .any(|n| matches!(n.driver.status().networks[1].rrp.state, NetState::Faulty(_)))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "nobody marked network 1 faulty"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(nodes[0].driver.status().networks[1].rrp.frames_sent, sent);
    assert_eq!(sub.set_network(1, true), Ok(()));
    wait_status(&nodes, Duration::from_secs(5), "all working", |st| {
        st.networks.iter().all(|n| n.rrp.state == NetState::Working)
    });
    let events: Vec<NetworkEvent> = nodes[0]
        .out
        .try_iter()
        .filter_map(|o| match o {
            Out::Net(e) => Some(e),
            Out::Core(Event::ConfigChange(c)) => panic!("configuration change: {c:?}"),
            Out::Core(_) => None,
        })
        .collect();
    assert_eq!(
        events,
        vec![
            NetworkEvent::Disabled { net: 1 },
            NetworkEvent::Enabled { net: 1 }
        ]
    );
    for n in nodes {
        n.driver.stop().expect("stop");
    }
}

/// With one network the operator can only enable network 0; the status has one network and
/// visits no per-network names.
#[test]
fn one_network_has_nothing_to_switch() {
    let net = MemNetwork::new();
    let t = net
        .attach_node(dataplane::NodeId(1), MemConfig::default())
        .expect("attach");
    let addr = MemNetwork::node_addr(dataplane::NodeId(1));
    let d = driver::spawn(
        t,
        DriverConfig::new(
            srp::Config::new(NodeId(1), Vec::new()),
            vec![Member {
                id: dataplane::NodeId(1),
                addr,
            }],
        ),
    )
    .expect("spawn");
    let sub = d.submitter();
    assert_eq!(sub.set_network(0, true), Ok(()));
    assert_eq!(
        sub.set_network(0, false),
        Err(NetworkControlError::Refused(RrpAdminError::LastNetwork(0)))
    );
    let st = d.status();
    assert_eq!(st.networks.len(), 1);
    assert_eq!(st.rrp_mode, None);
    assert!(
        !dataplane::stats::names(&st)
            .iter()
            .any(|n| n.starts_with("rrp_"))
    );
    d.stop().expect("stop");
}

/// Mismatched numbers of transports and networks are refused at spawn.
#[test]
fn transports_must_match_the_networks() {
    let net = MemNetwork::new();
    let t = net
        .attach_node(dataplane::NodeId(1), MemConfig::default())
        .expect("attach");
    let mut cfg = DriverConfig::new(srp::Config::new(NodeId(1), Vec::new()), Vec::new());
    cfg.rrp = rrp(RrpMode::Active);
    let (tx, _rx) = crossbeam_channel::unbounded();
    assert!(matches!(
        driver::spawn_networks(vec![t], cfg, Sink(tx)),
        Err(driver::DriverError::Networks {
            networks: 2,
            transports: 1,
            ..
        })
    ));
}
