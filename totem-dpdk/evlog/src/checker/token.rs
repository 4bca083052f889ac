//! Property 10: token invariants, from `token` events.

use std::collections::VecDeque;

use super::fast::HashMap;

use super::index::{Ev, Index, Ring};
use super::{EffectiveParams, Property, Sink};
use crate::log::{LogEvent, TokenEvent};

/// Property 10: Token invariants (P2, P3, P6, P7, M4).
///
/// Per node and ring: accepted `token_seq` strictly increases, and a rejected token's
/// `token_seq` is at most the last accepted one (P2).
///
/// Per accepted token: `aru <= seq`, `safe <= seq` (P3); `rtr` has no repeats, at most
/// `max_rtr` entries, each in `(0, seq]` (P6); `sent_new + sent_retrans <= max_messages` and
/// `fcc <= window_size` (P7); the node is a member of the ring (M4).
///
/// Ring-wide, over the accepted tokens ordered by `token_seq` (P2, P3, P7): no `token_seq` is
/// accepted twice; `seq` never decreases, and between consecutive `token_seq` values grows by
/// exactly the visit's `sent_new`; `safe` never decreases and never exceeds the highest `aru`
/// seen so far; `fcc` equals the sum of `sent_new + sent_retrans` and `backlog` the sum of
/// `my_backlog` over the last N visits (N = ring size; fewer from the ring's first logged
/// token on). After a hole in the logged `token_seq` values, the sums are checked again once
/// N consecutive visits have been seen.
pub(super) fn token_invariants(ix: &Index<'_>, params: &EffectiveParams, sink: &mut Sink) {
    let mut visits: HashMap<Ring, Vec<Ev>> = HashMap::default();
    for (&node, evs) in &ix.nodes {
        let mut last: HashMap<Ring, u64> = HashMap::default();
        for &i in evs {
            let LogEvent::Token(tok) = &ix.events[i as usize] else {
                continue;
            };
            let ring = ix.ring_of(tok.ring);
            let p = Property::TokenInvariants;
            let prev = last.get(&ring).copied();
            if !tok.accepted {
                if let Some(prev) = prev.filter(|&prev| tok.token_seq > prev) {
                    sink.report(p, Some(i), || {
                        format!(
                            "node {node} rejected token_seq {} of ring {} although it last accepted {prev}",
                            tok.token_seq, tok.ring
                        )
                    });
                }
                continue;
            }
            if let Some(prev) = prev.filter(|&prev| tok.token_seq <= prev) {
                sink.report(p, Some(i), || {
                    format!(
                        "node {node} accepted token_seq {} of ring {} after accepting {prev}",
                        tok.token_seq, tok.ring
                    )
                });
            }
            last.insert(ring, tok.token_seq);
            visit_fields(ix, i, tok, params, sink);
            visits.entry(ring).or_default().push(i);
        }
    }
    let mut rings: Vec<_> = visits.into_iter().collect();
    rings.sort_unstable_by_key(|(r, _)| *r);
    for (ring, mut evs) in rings {
        evs.sort_by_key(|&i| token(ix, i).token_seq);
        ring_wide(ix, ring, &evs, sink);
    }
}

fn token<'a>(ix: &Index<'a>, i: Ev) -> &'a TokenEvent {
    match &ix.events[i as usize] {
        LogEvent::Token(t) => t,
        _ => unreachable!("token index holds only token events"),
    }
}

/// Checks on one accepted token by itself.
fn visit_fields(
    ix: &Index<'_>,
    i: Ev,
    tok: &TokenEvent,
    params: &EffectiveParams,
    sink: &mut Sink,
) {
    let p = Property::TokenInvariants;
    let (node, ring, ts) = (tok.node, tok.ring, tok.token_seq);
    let at = || format!("node {node}, ring {ring}, token_seq {ts}");
    if tok.aru > tok.seq {
        sink.report(p, Some(i), || {
            format!("{}: aru {} > seq {}", at(), tok.aru, tok.seq)
        });
    }
    if tok.safe > tok.seq {
        sink.report(p, Some(i), || {
            format!("{}: safe {} > seq {}", at(), tok.safe, tok.seq)
        });
    }
    if tok.rtr.len() > params.max_rtr as usize {
        sink.report(p, Some(i), || {
            format!(
                "{}: {} rtr entries, more than max_rtr {}",
                at(),
                tok.rtr.len(),
                params.max_rtr
            )
        });
    }
    if let Some(bad) = tok.rtr.iter().find(|s| s.0 == 0 || **s > tok.seq) {
        sink.report(p, Some(i), || {
            format!("{}: rtr entry {bad} outside (0, seq {}]", at(), tok.seq)
        });
    }
    let mut sorted = tok.rtr.clone();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        sink.report(p, Some(i), || {
            format!("{}: rtr entry {} repeated", at(), w[0])
        });
    }
    let sent = u64::from(tok.sent_new) + u64::from(tok.sent_retrans);
    if sent > u64::from(params.max_messages) {
        sink.report(p, Some(i), || {
            format!(
                "{}: sent {} new + {} retransmitted frames, more than max_messages {}",
                at(),
                tok.sent_new,
                tok.sent_retrans,
                params.max_messages
            )
        });
    }
    if tok.fcc > params.window_size {
        sink.report(p, Some(i), || {
            format!(
                "{}: fcc {} > window_size {}",
                at(),
                tok.fcc,
                params.window_size
            )
        });
    }
    if let Some(members) = ix.ring_members(ix.ring_of(ring))
        && !members.contains(&node)
    {
        sink.report(p, Some(i), || {
            format!(
                "{}: node {node} accepted a token of a ring it is not a member of",
                at()
            )
        });
    }
}

/// Checks across the accepted tokens of one ring, in `token_seq` order.
fn ring_wide(ix: &Index<'_>, ring: Ring, evs: &[Ev], sink: &mut Sink) {
    let p = Property::TokenInvariants;
    let n = match ix.ring_members(ring) {
        Some(m) if !m.is_empty() => m.len(),
        _ => {
            let mut nodes: Vec<_> = evs.iter().map(|&i| token(ix, i).node).collect();
            nodes.sort_unstable();
            nodes.dedup();
            nodes.len().max(1)
        }
    };
    let mut window: VecDeque<(u64, u64)> = VecDeque::with_capacity(n + 1);
    let (mut sum_sent, mut sum_backlog) = (0u64, 0u64);
    // From the ring's first logged token on, sums over fewer than N visits are exact.
    let mut from_start = true;
    let mut max_aru = 0u64;
    let mut prev: Option<&TokenEvent> = None;
    for &i in evs {
        let tok = token(ix, i);
        let at = || {
            format!(
                "node {}, ring {}, token_seq {}",
                tok.node, tok.ring, tok.token_seq
            )
        };
        if let Some(pr) = prev {
            if pr.token_seq == tok.token_seq {
                sink.report(p, Some(i), || {
                    format!("{}: token_seq also accepted by node {}", at(), pr.node)
                });
                continue;
            }
            if tok.seq < pr.seq {
                sink.report(p, Some(i), || {
                    format!(
                        "{}: seq {} went back from {} (token_seq {})",
                        at(),
                        tok.seq,
                        pr.seq,
                        pr.token_seq
                    )
                });
            }
            if pr.token_seq + 1 == tok.token_seq
                && tok.seq.0 != pr.seq.0.saturating_add(u64::from(tok.sent_new))
            {
                sink.report(p, Some(i), || {
                    format!(
                        "{}: seq went from {} to {}, but the node stamped {} new frames",
                        at(),
                        pr.seq,
                        tok.seq,
                        tok.sent_new
                    )
                });
            }
            if tok.safe < pr.safe {
                sink.report(p, Some(i), || {
                    format!("{}: safe {} went back from {}", at(), tok.safe, pr.safe)
                });
            }
            if pr.token_seq + 1 != tok.token_seq {
                from_start = false;
                window.clear();
                sum_sent = 0;
                sum_backlog = 0;
            }
        }
        prev = Some(tok);
        max_aru = max_aru.max(tok.aru.0);
        if tok.safe.0 > max_aru {
            sink.report(p, Some(i), || {
                format!(
                    "{}: safe {} above every aru so far ({max_aru})",
                    at(),
                    tok.safe
                )
            });
        }
        let sent = u64::from(tok.sent_new) + u64::from(tok.sent_retrans);
        let backlog = u64::from(tok.my_backlog);
        window.push_back((sent, backlog));
        sum_sent += sent;
        sum_backlog += backlog;
        if window.len() > n {
            let (s, b) = window.pop_front().unwrap_or_default();
            sum_sent -= s;
            sum_backlog -= b;
        }
        if from_start || window.len() == n {
            if u64::from(tok.fcc) != sum_sent {
                sink.report(p, Some(i), || {
                    format!(
                        "{}: fcc {} but the last {} visits sent {sum_sent} frames",
                        at(),
                        tok.fcc,
                        window.len()
                    )
                });
            }
            if u64::from(tok.backlog) != sum_backlog {
                sink.report(p, Some(i), || {
                    format!(
                        "{}: backlog {} but the last {} visits reported {sum_backlog}",
                        at(),
                        tok.backlog,
                        window.len()
                    )
                });
            }
        }
    }
}
