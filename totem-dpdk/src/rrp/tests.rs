use super::*;

const ME: NodeId = NodeId(1);
const TOKEN: u8 = 1;

/// A frame of `kind` from `sender`, made unique by `n`.
fn frame(kind: u8, sender: u32, n: u64) -> Vec<u8> {
    let mut f = vec![0xC0, 0x70, 1, kind];
    f.extend_from_slice(&sender.to_be_bytes());
    f.extend_from_slice(&n.to_be_bytes());
    f.extend_from_slice(&[0xAB; 40]);
    f
}

fn ms(t: u64) -> Instant {
    Instant(t * 1_000_000)
}

fn rrp(networks: usize, mode: RrpMode) -> Rrp {
    Rrp::new(RrpConfig::new(networks, mode), ME).expect("valid")
}

/// Feeds one frame per millisecond from `senders` (round robin) for `span` ms from `start`;
/// `arrives(i, net)` says whether copy `i` arrives on `net`. Fires timeouts as due. Returns
/// the next frame number.
fn feed(
    r: &mut Rrp,
    start: u64,
    span: u64,
    senders: &[u32],
    mut arrives: impl FnMut(u64, NetId, u32) -> bool,
    events: &mut Vec<RrpEvent>,
) {
    for t in start..start + span {
        let now = ms(t);
        if r.poll_timeout().is_some_and(|at| at <= now) {
            r.handle_timeout(now);
        }
        let sender = senders[(t as usize) % senders.len()];
        let f = frame(TOKEN, sender, t);
        let mut delivered = 0;
        for net in 0..r.config().networks as u8 {
            if arrives(t, NetId(net), sender) {
                let v = r.handle_frame(now, NetId(net), &f);
                delivered += usize::from(v == Verdict::Deliver);
            }
        }
        assert!(delivered <= 1, "frame {t} delivered {delivered} times");
        events.extend(std::iter::from_fn(|| r.poll_event()));
    }
    let end = ms(start + span);
    r.handle_timeout(end);
    events.extend(std::iter::from_fn(|| r.poll_event()));
}

#[test]
fn one_network_passes_everything_through_untouched() {
    let mut r = rrp(1, RrpMode::Active);
    let f = frame(TOKEN, 2, 1);
    assert_eq!(r.networks_for(&f), NetSet(1));
    assert_eq!(r.handle_frame(ms(0), NetId(0), &f), Verdict::Deliver);
    assert_eq!(r.handle_frame(ms(0), NetId(0), &f), Verdict::Deliver);
    assert_eq!(r.poll_timeout(), None);
    assert_eq!(
        r.stats().nets[0],
        NetStats::default(),
        "no per-frame work at all"
    );
}

#[test]
fn active_mode_sends_everything_everywhere_and_delivers_the_first_copy_only() {
    let mut r = rrp(3, RrpMode::Active);
    let data = frame(MCAST, 2, 1);
    assert_eq!(r.networks_for(&data), NetSet(0b111));
    assert_eq!(r.handle_frame(ms(0), NetId(2), &data), Verdict::Deliver);
    assert_eq!(r.handle_frame(ms(0), NetId(0), &data), Verdict::Duplicate);
    assert_eq!(r.handle_frame(ms(1), NetId(1), &data), Verdict::Duplicate);
    // A replay of the same bytes on any network, also the first one, is refused.
    assert_eq!(r.handle_frame(ms(2), NetId(0), &data), Verdict::Duplicate);
    assert_eq!(r.handle_frame(ms(3), NetId(2), &data), Verdict::Duplicate);
    // Another frame is not a copy.
    assert_eq!(
        r.handle_frame(ms(3), NetId(1), &frame(MCAST, 2, 2)),
        Verdict::Deliver
    );
    assert_eq!(r.stats().nets[2].first_copies, 1);
    assert_eq!(r.stats().nets[0].duplicates, 2);
}

#[test]
fn a_frame_is_forgotten_after_the_memory_so_a_resent_join_is_taken_again() {
    let mut r = rrp(2, RrpMode::Active);
    let join = frame(3, 2, 7);
    assert_eq!(r.handle_frame(ms(0), NetId(0), &join), Verdict::Deliver);
    assert_eq!(r.handle_frame(ms(19), NetId(1), &join), Verdict::Duplicate);
    r.handle_timeout(ms(50));
    assert_eq!(r.handle_frame(ms(50), NetId(0), &join), Verdict::Deliver);
}

#[test]
fn a_lost_network_is_marked_faulty_and_comes_back_by_itself() {
    let mut r = rrp(2, RrpMode::Active);
    let mut events = Vec::new();
    feed(&mut r, 0, 100, &[2, 3], |_, _, _| true, &mut events);
    assert!(events.is_empty());
    // Network 1 dies.
    feed(&mut r, 100, 300, &[2, 3], |_, n, _| n.0 == 0, &mut events);
    assert_eq!(
        events,
        vec![RrpEvent::Faulty {
            net: NetId(1),
            cause: FaultCause::Lost
        }]
    );
    assert_eq!(r.state(NetId(1)), NetState::Faulty(FaultCause::Lost));
    assert_eq!(r.state(NetId(0)), NetState::Working);
    // Marked within threshold windows (+ one for the window in progress).
    assert!(r.stats().nets[1].bad_windows >= 3);
    // Active mode keeps sending on it: its copies are the evidence that it works again.
    assert_eq!(r.networks_for(&frame(MCAST, 1, 0)), NetSet(0b11));
    events.clear();
    feed(&mut r, 400, 150, &[2, 3], |_, _, _| true, &mut events);
    assert!(events.is_empty(), "re-enabled only after 4 good windows");
    feed(&mut r, 550, 150, &[2, 3], |_, _, _| true, &mut events);
    assert_eq!(events, vec![RrpEvent::Restored { net: NetId(1) }]);
    assert_eq!(r.state(NetId(1)), NetState::Working);
    assert_eq!(r.stats().nets[1].restored, 1);
    assert_eq!(r.stats().nets[1].problem_count, 0);
}

#[test]
fn half_loss_is_lossy_and_light_loss_decays_without_marking() {
    let mut r = rrp(2, RrpMode::Active);
    let mut events = Vec::new();
    feed(
        &mut r,
        0,
        400,
        &[2, 3],
        |t, n, _| n.0 == 0 || (t / 2) % 2 == 0,
        &mut events,
    );
    assert_eq!(r.state(NetId(1)), NetState::Faulty(FaultCause::Lossy));

    // 10% loss for 10 s: no window reaches 20%, the counter stays at zero.
    let mut r = rrp(2, RrpMode::Active);
    let mut events = Vec::new();
    feed(
        &mut r,
        0,
        10_000,
        &[2, 3],
        |t, n, _| n.0 == 0 || t % 10 != 3,
        &mut events,
    );
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(r.stats().nets[1].problem_count, 0);
    assert_eq!(r.stats().nets[1].copies_missed, 1_000);

    // Bursts: one bad window in three, for 30 s. The counter decays on good windows, so
    // it never reaches the threshold (corosync's passive mode never decays and would).
    let mut r = rrp(2, RrpMode::Active);
    let mut events = Vec::new();
    feed(
        &mut r,
        0,
        30_000,
        &[2, 3],
        |t, n, _| n.0 == 0 || (t / 50) % 3 != 1,
        &mut events,
    );
    assert!(events.is_empty(), "{events:?}");
    assert!(r.stats().nets[1].bad_windows >= 150);
    assert!(r.stats().nets[1].problem_count <= 1);
}

#[test]
fn a_cut_from_one_sender_is_one_way() {
    let mut r = rrp(2, RrpMode::Active);
    let mut events = Vec::new();
    feed(
        &mut r,
        0,
        400,
        &[2, 3, 4],
        |_, n, s| n.0 == 0 || s != 3,
        &mut events,
    );
    assert_eq!(
        events,
        vec![RrpEvent::Faulty {
            net: NetId(1),
            cause: FaultCause::OneWay
        }]
    );
}

#[test]
fn a_network_flapping_faster_than_the_reenable_rule_stays_faulty() {
    let mut r = rrp(2, RrpMode::Active);
    let mut events = Vec::new();
    // 120 ms down, 120 ms up, for 3 s.
    feed(
        &mut r,
        0,
        3_000,
        &[2, 3],
        |t, n, _| n.0 == 0 || (t / 120) % 2 == 1,
        &mut events,
    );
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(matches!(r.state(NetId(1)), NetState::Faulty(_)));
}

#[test]
fn copies_from_this_node_are_no_evidence() {
    let mut r = rrp(2, RrpMode::Active);
    let mut events = Vec::new();
    feed(&mut r, 0, 400, &[ME.0], |_, n, _| n.0 == 0, &mut events);
    assert!(events.is_empty());
    assert_eq!(r.stats().nets[1].copies_missed, 0);
}

#[test]
fn late_copies_count_as_missed_and_late() {
    let mut r = rrp(2, RrpMode::Active);
    let f = frame(TOKEN, 2, 1);
    assert_eq!(r.handle_frame(ms(0), NetId(0), &f), Verdict::Deliver);
    r.handle_timeout(ms(6));
    assert_eq!(r.handle_frame(ms(7), NetId(1), &f), Verdict::Duplicate);
    let n1 = &r.stats().nets[1];
    assert_eq!((n1.copies_missed, n1.late_copies), (1, 1));
}

#[test]
fn passive_mode_spreads_data_frames_over_the_working_networks() {
    let mut r = rrp(3, RrpMode::Passive);
    let data = frame(MCAST, ME.0, 1);
    let sent: Vec<NetSet> = (0..6).map(|_| r.networks_for(&data)).collect();
    assert_eq!(
        sent,
        [1, 2, 4, 1, 2, 4].map(NetSet).to_vec(),
        "round robin, one network per data frame"
    );
    assert_eq!(r.networks_for(&frame(TOKEN, ME.0, 1)), NetSet(0b111));
    // Network 1 is lost: tokens (sent everywhere) show it.
    let mut events = Vec::new();
    feed(&mut r, 0, 300, &[2, 3], |_, n, _| n.0 != 1, &mut events);
    assert_eq!(r.state(NetId(1)), NetState::Faulty(FaultCause::Lost));
    let sent: Vec<NetSet> = (0..4).map(|_| r.networks_for(&data)).collect();
    assert!(
        sent.iter().all(|s| s.len() == 1 && !s.contains(NetId(1))),
        "{sent:?}"
    );
    assert_eq!(r.networks_for(&frame(TOKEN, ME.0, 2)), NetSet(0b111));
}

#[test]
fn passive_data_frames_on_one_network_are_no_evidence_against_the_others() {
    let mut r = rrp(2, RrpMode::Passive);
    let mut events = Vec::new();
    for t in 0..400 {
        let now = ms(t);
        if r.poll_timeout().is_some_and(|at| at <= now) {
            r.handle_timeout(now);
        }
        let net = NetId((t % 2) as u8);
        assert_eq!(
            r.handle_frame(now, net, &frame(MCAST, 2, t)),
            Verdict::Deliver
        );
        events.extend(std::iter::from_fn(|| r.poll_event()));
    }
    assert!(events.is_empty());
    assert_eq!(
        r.stats().nets[0].copies_missed + r.stats().nets[1].copies_missed,
        0
    );
}

#[test]
fn all_networks_faulty_still_sends() {
    let mut r = rrp(2, RrpMode::Passive);
    for s in &mut r.stats.nets {
        s.state = NetState::Faulty(FaultCause::Lost);
    }
    let data = frame(MCAST, ME.0, 1);
    assert_eq!(r.networks_for(&data).len(), 1);
    assert_eq!(r.networks_for(&data).len(), 1);
}

#[test]
fn the_defects_break_what_they_say() {
    let mut r = rrp(2, RrpMode::Active);
    r.set_defect(Defect::NoFailover);
    assert_eq!(r.networks_for(&frame(TOKEN, ME.0, 1)), NetSet(1));
    let mut r = rrp(2, RrpMode::Active);
    r.set_defect(Defect::NoDedup);
    let f = frame(TOKEN, 2, 1);
    assert_eq!(r.handle_frame(ms(0), NetId(0), &f), Verdict::Deliver);
    assert_eq!(r.handle_frame(ms(0), NetId(1), &f), Verdict::Deliver);
}

#[test]
fn the_configuration_is_checked() {
    for n in [0, 5] {
        assert_eq!(
            RrpConfig::new(n, RrpMode::Active).validate(),
            Err(RrpConfigError::Networks(n))
        );
    }
    let mut c = RrpConfig::new(2, RrpMode::Active);
    c.memory = Duration::from_millis(1);
    assert!(c.validate().is_err());
    let mut c = RrpConfig::new(2, RrpMode::Active);
    c.bad_window_permille = 1001;
    assert!(c.validate().is_err());
    let mut c = RrpConfig::new(2, RrpMode::Active);
    c.problem_threshold = 0;
    assert!(c.validate().is_err());
}

#[test]
fn remote_input_never_panics() {
    let mut r = rrp(4, RrpMode::Active);
    for len in 0..100 {
        let f = vec![0xFFu8; len];
        let _ = r.handle_frame(ms(len as u64), NetId((len % 4) as u8), &f);
    }
    let _ = r.handle_frame(ms(0), NetId(7), &[1, 2, 3]);
    r.handle_timeout(ms(1_000));
}

#[test]
fn a_disabled_network_carries_nothing_and_is_not_judged_until_enabled() {
    for mode in [RrpMode::Active, RrpMode::Passive] {
        let mut r = rrp(2, mode);
        assert_eq!(
            r.set_enabled(NetId(2), false),
            Err(RrpAdminError::NoSuchNetwork {
                net: 2,
                networks: 2
            })
        );
        r.set_enabled(NetId(1), false).expect("network 1 can go");
        assert_eq!(r.state(NetId(1)), NetState::Disabled);
        assert_eq!(
            r.set_enabled(NetId(0), false),
            Err(RrpAdminError::LastNetwork(0)),
            "{mode:?}"
        );
        // Nothing goes out on it, data or token.
        for n in 0..6 {
            assert_eq!(r.networks_for(&frame(MCAST, 1, n)), NetSet(1), "{mode:?}");
            assert_eq!(r.networks_for(&frame(TOKEN, 1, n)), NetSet(1), "{mode:?}");
        }
        // Its copies missing for a second is no evidence: it is never marked faulty.
        let mut events = Vec::new();
        feed(
            &mut r,
            0,
            1000,
            &[2, 3],
            |_, net, _| net.0 == 0,
            &mut events,
        );
        assert!(events.is_empty(), "{mode:?}: {events:?}");
        assert_eq!(r.state(NetId(1)), NetState::Disabled);
        assert_eq!(r.stats().nets[1].bad_windows, 0);
        // Enabled again: in use at once, and judged again (here: it is still cut, so it is
        // marked faulty).
        r.set_enabled(NetId(1), true).expect("enable");
        assert_eq!(r.state(NetId(1)), NetState::Working);
        assert_eq!(r.networks_for(&frame(TOKEN, 1, 99)), NetSet(0b11));
        feed(
            &mut r,
            1000,
            400,
            &[2, 3],
            |_, net, _| net.0 == 0,
            &mut events,
        );
        assert_eq!(
            events,
            vec![RrpEvent::Faulty {
                net: NetId(1),
                cause: FaultCause::Lost
            }],
            "{mode:?}"
        );
    }
}

#[test]
fn network_states_round_trip_through_their_gauge() {
    for s in [
        NetState::Working,
        NetState::Faulty(FaultCause::Lost),
        NetState::Faulty(FaultCause::OneWay),
        NetState::Faulty(FaultCause::Lossy),
        NetState::Disabled,
    ] {
        assert_eq!(NetState::from_gauge(s.gauge()), Some(s));
    }
    assert_eq!(NetState::from_gauge(5), None);
}

#[test]
fn passive_mode_takes_the_token_from_a_network_that_carries_data() {
    for mode in [RrpMode::Passive, RrpMode::Active] {
        let mut r = rrp(2, mode);
        let mut events = Vec::new();
        // Network 0 lost: marked faulty.
        feed(&mut r, 0, 300, &[2, 3], |_, net, _| net.0 == 1, &mut events);
        assert!(matches!(r.state(NetId(0)), NetState::Faulty(_)), "{mode:?}");
        let missed_before = r.stats().nets[1].copies_missed;
        // A token whose copy on network 0 (idle, so fast) overtakes the one on network 1,
        // which comes 12 ms later (behind queued data: beyond copy_timeout, within memory).
        let token = frame(TOKEN, 2, 10_000);
        let first = r.handle_frame(ms(400), NetId(0), &token);
        r.handle_timeout(ms(406));
        let second = r.handle_frame(ms(412), NetId(1), &token);
        r.handle_timeout(ms(440));
        if mode == RrpMode::Passive {
            assert_eq!(first, Verdict::Duplicate, "not from the faulty network");
            assert_eq!(second, Verdict::Deliver, "from the one that carries data");
            assert_eq!(r.stats().nets[0].faulty_tokens, 1);
            // Its judging waited for the working network's queue: no copy counted missed.
            assert_eq!(r.stats().nets[1].copies_missed, missed_before);
        } else {
            // Active mode sends data on every network: the first copy is taken.
            assert_eq!((first, second), (Verdict::Deliver, Verdict::Duplicate));
        }
        // A data frame is the only copy, whatever network it comes on.
        let data = frame(MCAST, 3, 10_001);
        assert_eq!(r.handle_frame(ms(441), NetId(0), &data), Verdict::Deliver);
        // The old layer (the defect switch) took the faulty network's copy.
        let mut old = rrp(2, mode);
        old.set_defect(Defect::TokenOvertakes);
        feed(
            &mut old,
            0,
            300,
            &[2, 3],
            |_, net, _| net.0 == 1,
            &mut Vec::new(),
        );
        assert_eq!(
            old.handle_frame(ms(400), NetId(0), &token),
            Verdict::Deliver
        );
    }
}

#[test]
fn with_every_network_faulty_a_passive_token_is_taken_from_any() {
    let mut r = rrp(2, RrpMode::Passive);
    let mut events = Vec::new();
    // Network 0 lost and marked faulty; then network 1 lost, marked faulty too before
    // network 0 has had the four good windows that re-enable it.
    feed(&mut r, 0, 300, &[2, 3], |_, net, _| net.0 == 1, &mut events);
    feed(
        &mut r,
        300,
        160,
        &[2, 3],
        |_, net, _| net.0 == 0,
        &mut events,
    );
    assert!(matches!(r.state(NetId(0)), NetState::Faulty(_)));
    assert!(matches!(r.state(NetId(1)), NetState::Faulty(_)));
    let token = frame(TOKEN, 2, 20_000);
    assert_eq!(r.handle_frame(ms(461), NetId(0), &token), Verdict::Deliver);
}

#[test]
fn passive_mode_starts_each_visit_on_the_next_network() {
    let mut r = rrp(2, RrpMode::Passive);
    let token = frame(TOKEN, 1, 0);
    // Two data frames per visit (an even count): the first of each visit (where the lowest
    // missing frame is re-sent) alternates between the networks all the same.
    let mut firsts = Vec::new();
    for visit in 0..4u64 {
        let nets: Vec<NetSet> = (0..2)
            .map(|i| r.networks_for(&frame(MCAST, 1, visit * 10 + i)))
            .collect();
        assert_ne!(nets[0], nets[1], "round robin within a visit");
        firsts.push(nets[0]);
        assert_eq!(r.networks_for(&token), NetSet(0b11), "the token on both");
    }
    assert_eq!(firsts, [NetSet(1), NetSet(2), NetSet(1), NetSet(2)]);
}
