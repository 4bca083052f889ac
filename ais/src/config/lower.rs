//! From the file's values to what the executive runs: the Totem core's configuration
//! ([`Config::totem_config`]), the kernel UDP transport's ([`Config::udp_config`]), the
//! member list ([`Config::members`]), the frame protection ([`Config::protection`]) and the
//! quorum and checkpoint services' settings ([`Config::quorum_config`],
//! [`Config::ckpt_config`]).

use std::net::{IpAddr, SocketAddr};

use totem_dpdk::srp;

use super::{Config, FrameProtection, MAX_TIMER_MS, Node, RrpModeKey, TransportKind};

/// The least margin, ms, of the AMF's fence delay over the contact lease: how late the
/// self-fence of a node cut off may act after its lease ran out (its executive wakes for
/// that timer; a longer stall is the freeze case, docs/amf.md).
pub(crate) const FENCE_MARGIN_MS: u64 = 2;

impl Config {
    /// The shelf service's settings (the seen-set's capacity is the service's default).
    pub fn shelf_config(&self) -> ais_core::services::shelf::ShelfConfig {
        ais_core::services::shelf::ShelfConfig::default()
    }

    /// The quorum service's settings, or `None` without a `[quorum]` table.
    pub fn quorum_config(&self) -> Option<ais_core::services::quorum::QuorumConfig> {
        let q = self.quorum.as_ref()?;
        let listed = u32::try_from(self.nodelist.node.len()).unwrap_or(u32::MAX);
        Some(ais_core::services::quorum::QuorumConfig {
            votes: q.votes,
            expected_votes: q.expected_votes.unwrap_or(listed),
            two_node: q.two_node,
            wait_for_all: q.wait_for_all.unwrap_or(q.two_node),
        })
    }

    /// The AMF service's settings (`[amf]` and quorum's `two_node`), or `None` without an
    /// `[amf]` table. While a membership forms, a node fences itself once the nodes it heard
    /// from (their joins, re-sent every `join` interval) within the contact lease, 1.5 ×
    /// `join` (at least 5 ms), no longer hold quorum with it. The others stop counting it in
    /// at the latest when they form a ring without it; the fence delay they wait then is the
    /// lease plus the token's rotation (about token / 8 with the representative's hold) or
    /// [`FENCE_MARGIN_MS`], whichever is longer: 49 ms with the default timers, 9 ms with
    /// token 20 and join 5. The freeze threshold is the token timeout (at least 100 ms).
    pub fn amf_core_config(&self) -> Option<ais_core::services::amf::AmfConfig> {
        let a = self.amf.as_ref()?;
        let t = &self.totem;
        let lease_ms = (t.join + t.join / 2).max(super::Amf::MIN_LEASE_MS);
        // The self-fence acts on a timer of its own (`Service::next_timer`), not on the
        // executive's regular tick: the margin covers that timer's lateness, or the token's
        // rotation if longer.
        let fence_ms = a
            .fence_ms
            .unwrap_or(lease_ms + (t.token / 8).max(FENCE_MARGIN_MS));
        Some(ais_core::services::amf::AmfConfig {
            two_node: self.quorum.as_ref().is_some_and(|q| q.two_node),
            fence_ms,
            // A gap between two ticks as long as the token timeout may hide a ring change;
            // the executive's loop ticks at least every 50 ms, so no less than 100 ms.
            freeze_ms: t.token.max(100),
            lease_ms,
        })
    }

    /// The checkpoint service's settings (`[ckpt]`).
    pub fn ckpt_config(&self) -> ais_core::services::ckpt::CkptConfig {
        ais_core::services::ckpt::CkptConfig {
            max_memory: self.ckpt.max_memory_mb.saturating_mul(1 << 20),
            writes_need_quorum: self.ckpt.writes_need_quorum,
        }
    }

    /// The event service's settings (`[evt]`).
    pub fn evt_config(&self) -> ais_core::services::evt::EvtConfig {
        ais_core::services::evt::EvtConfig {
            max_channels: self.evt.max_channels,
            max_retained: self.evt.max_retained,
            max_subscriptions: self.evt.max_subscriptions,
            delivery_window: self.evt.delivery_window,
            delivery_queue: self.evt.delivery_queue,
        }
    }

    /// The message queue service's settings (`[msg]`).
    pub fn msg_config(&self) -> ais_core::services::msg::MsgConfig {
        ais_core::services::msg::MsgConfig {
            max_queues: self.msg.max_queues,
            max_queue_size: self.msg.max_queue_bytes,
            max_message_size: self.msg.max_message_bytes,
            max_memory: self.msg.max_memory_mb.saturating_mul(1 << 20),
            max_groups: self.msg.max_groups,
        }
    }

    /// The lock service's settings (`[lck]`).
    pub fn lck_config(&self) -> ais_core::services::lck::LckConfig {
        ais_core::services::lck::LckConfig {
            max_resources: self.lck.max_resources,
            max_locks: self.lck.max_locks,
        }
    }

    /// How Totem frames are protected (`totem.secauth` and `totem.crypto_cipher`); when it
    /// [needs a key](FrameProtection::needs_key), the executive reads `totem.keyfile` with
    /// [`crate::keyfile::read`].
    pub fn protection(&self) -> FrameProtection {
        self.totem.protection()
    }

    /// This node's `[[nodelist.node]]` entry, if any.
    pub fn this_node(&self) -> Option<&Node> {
        self.nodelist
            .node
            .iter()
            .find(|n| n.nodeid == self.totem.nodeid)
    }

    /// Whether the ring runs over IPv6 (from `bindnetaddr`, else this node's `ring0_addr`).
    fn ipv6(&self) -> bool {
        self.totem
            .interface
            .bindnetaddr
            .or_else(|| self.this_node().map(|n| n.ring0_addr))
            .is_some_and(|a| a.is_ipv6())
    }

    /// The Totem core's configuration: every timer and flow-control value of `[totem]`, the
    /// frame size from `netmtu`, no initial members (the node starts alone and discovers the
    /// others) and `ring_seq` 0 (the caller loads the persisted value).
    pub fn totem_config(&self) -> srp::Config {
        let t = &self.totem;
        let mut c = srp::Config::new(totem_dpdk::NodeId(t.nodeid), Vec::new());
        c.ring_seq = 0;
        c.max_frame_size = t.frame_size(self.ipv6()) as usize;
        c.window_size = t.window_size;
        c.max_messages = t.max_messages;
        c.max_queued_messages = t.max_queued_messages.max(1) as usize;
        c.max_message_size = usize::try_from(t.max_message_size).unwrap_or(usize::MAX);
        c.max_queued_bytes = usize::try_from(t.max_queued_bytes).unwrap_or(usize::MAX);
        c.token_timeout = ms(t.token);
        c.token_retransmits_before_loss = t.token_retransmits_before_loss_const;
        c.seqno_unchanged_const = t.seqno_unchanged_const;
        c.token_pace = totem_dpdk::Duration(t.token_pace_us() * 1000);
        c.fail_recv_const = t.fail_recv_const;
        c.join_timeout = ms(t.join);
        c.consensus_timeout = ms(t.consensus_ms());
        c.merge_timeout = ms(t.merge);
        c.pause_threshold = ms(t.pause_threshold_ms());
        c
    }

    /// The Totem driver's configuration around `totem` (the core's, from
    /// [`Config::totem_config`] with the key and persisted values added): the members on every
    /// network, the redundant-ring layer, and the Totem thread's CPU and nice value.
    pub fn driver_config(&self, totem: srp::Config) -> totem_dpdk::driver::DriverConfig {
        let mut c = totem_dpdk::driver::DriverConfig::new(totem, self.members());
        c.cpu = self.aisexec.cpu;
        c.nice = Some(self.aisexec.totem_nice);
        c.rrp = self.rrp_config();
        c.more_members = (1..self.networks()).map(|k| self.members_on(k)).collect();
        c
    }

    /// The kernel UDP transport's configuration. `udp`: bound to `bindnetaddr:(mcastport − 1)`,
    /// ring frames to `mcastaddr:mcastport` (multicast loopback on when `bindnetaddr` is a
    /// loopback address); `udpu`: bound to this node's `ring0_addr` and port. The MTU is the
    /// Totem frame size. Call on a validated configuration: missing addresses fall back to
    /// unspecified ones, which the transport refuses.
    pub fn udp_config(&self) -> dataplane::udp::UdpConfig {
        let t = &self.totem;
        let i = &t.interface;
        let mut c = match t.transport {
            TransportKind::Udp => {
                let bind = i.bindnetaddr.unwrap_or(IpAddr::from([0, 0, 0, 0]));
                let group = i.mcastaddr.unwrap_or(IpAddr::from([0, 0, 0, 0]));
                let mut c = dataplane::udp::UdpConfig::multicast(
                    SocketAddr::new(bind, i.mcastport.saturating_sub(1)),
                    group,
                    i.mcastport,
                );
                if let dataplane::udp::Mode::Multicast { ttl, loopback, .. } = &mut c.mode {
                    *ttl = i.ttl;
                    *loopback = bind.is_loopback();
                }
                c
            }
            TransportKind::Udpu | TransportKind::Dpdk => {
                let bind = self.this_node().map_or_else(
                    || {
                        SocketAddr::new(
                            i.bindnetaddr.unwrap_or(IpAddr::from([0, 0, 0, 0])),
                            i.mcastport,
                        )
                    },
                    |n| SocketAddr::new(n.ring0_addr, n.port.unwrap_or(i.mcastport)),
                );
                dataplane::udp::UdpConfig::unicast(bind)
            }
        };
        c.mtu = t.frame_size(self.ipv6()) as usize;
        c
    }

    /// How many networks the ring uses: 1 + the `ring1_addr`.. `ring3_addr` this node's entry
    /// lists (validation makes every entry list the same ones), 1 without a node entry.
    ///
    /// With `transport = "udp"` (multicast) the networks are network 0 and the
    /// `[[totem.rrp_interface]]` entries: 1 + the highest `ringnumber` (validation makes them
    /// 1, 2, … without gaps).
    pub fn networks(&self) -> usize {
        if self.totem.transport == TransportKind::Udp {
            return 1 + self
                .totem
                .rrp_interface
                .iter()
                .map(|i| usize::from(i.ringnumber).min(3))
                .max()
                .unwrap_or(0);
        }
        self.this_node().map_or(1, |n| {
            1 + (1..4).take_while(|&k| n.ring_addr(k).is_some()).count()
        })
    }

    /// The `[[totem.rrp_interface]]` entry of network `net` (1 to 3), if any.
    pub fn rrp_interface_on(&self, net: usize) -> Option<&super::RrpInterface> {
        self.totem
            .rrp_interface
            .iter()
            .find(|i| usize::from(i.ringnumber) == net)
    }

    /// The transport of network `net`: `totem.transport` for network 0, else its
    /// `[[totem.rrp_interface]]` `transport`, else `totem.transport`.
    pub fn transport_on(&self, net: usize) -> TransportKind {
        if net == 0 {
            return self.totem.transport;
        }
        self.rrp_interface_on(net)
            .and_then(|i| i.transport)
            .unwrap_or(self.totem.transport)
    }

    /// True when a DPDK network busy-polls (`dpdk.busy_poll`) while the Totem thread is not
    /// pinned (`aisexec.cpu` unset): the poller then takes a whole core wherever the scheduler
    /// puts it, moving among the cores the executive, the IPC loop and the applications need,
    /// at the Totem thread's raised priority (docs/dpdk.md). It works; `aisexec` warns.
    pub fn unpinned_busy_poll(&self) -> bool {
        self.dpdk.busy_poll
            && self.aisexec.cpu.is_none()
            && (0..self.networks()).any(|k| self.transport_on(k) == TransportKind::Dpdk)
    }

    /// The DPDK port (device name) of network `net`: `[dpdk] port` for network 0, else its
    /// `[[totem.rrp_interface]]` `dpdk_port`; empty when not set.
    pub fn dpdk_port_on(&self, net: usize) -> &str {
        if net == 0 {
            return &self.dpdk.port;
        }
        self.rrp_interface_on(net)
            .and_then(|i| i.dpdk_port.as_deref())
            .unwrap_or("")
    }

    /// The redundant-ring layer's settings: the networks, the mode (`rrp_mode`; `"none"` is
    /// active mode over one network, where the layer does not run) and the detection keys.
    pub fn rrp_config(&self) -> totem_dpdk::rrp::RrpConfig {
        let t = &self.totem;
        let mode = match t.rrp_mode {
            RrpModeKey::Passive => totem_dpdk::rrp::RrpMode::Passive,
            RrpModeKey::None | RrpModeKey::Active => totem_dpdk::rrp::RrpMode::Active,
        };
        let mut c = totem_dpdk::rrp::RrpConfig::new(self.networks(), mode);
        let window = t.rrp_problem_count_timeout.max(1);
        c.check_interval = ms(window);
        c.problem_threshold = t.rrp_problem_count_threshold;
        c.copy_timeout = ms(t.rrp_token_expired_timeout);
        // Copies are remembered for less than the join interval: without frame protection a
        // re-sent join repeats its bytes and must reach the core (the tuned timers have a 5 ms
        // join). Validation keeps `rrp_token_expired_timeout` below `join`.
        c.memory = c
            .memory
            .min(ms(t.join.saturating_sub(1)))
            .max(c.copy_timeout);
        c.reenable_windows =
            u32::try_from(t.rrp_autorecovery_check_timeout.div_ceil(window).max(1))
                .unwrap_or(u32::MAX);
        c.bad_window_permille = t.rrp_bad_window_permille;
        c
    }

    /// The port of network `net` (1 to 3) for `node`: its `[[totem.rrp_interface]]`
    /// `mcastport`, else network 0's.
    pub(super) fn port_on_net(&self, node: &Node, net: usize) -> u16 {
        let base = node.port.unwrap_or(self.totem.interface.mcastport);
        if net == 0 {
            return base;
        }
        self.totem
            .rrp_interface
            .iter()
            .find(|i| usize::from(i.ringnumber) == net)
            .and_then(|i| i.mcastport)
            .unwrap_or(base)
    }

    /// The kernel UDP transport of network `net` (0: [`Config::udp_config`]; 1 to 3 with
    /// `udp`: multicast to the network's `mcastaddr:mcastport`, bound to its
    /// `bindnetaddr:(mcastport − 1)`, with network 0's TTL; with `udpu`: unicast, bound to this
    /// node's `ringN_addr` and the network's port).
    pub fn udp_config_on(&self, net: usize) -> dataplane::udp::UdpConfig {
        if net == 0 {
            return self.udp_config();
        }
        if self.totem.transport == TransportKind::Udp {
            let e = self.rrp_interface_on(net);
            let unspecified = IpAddr::from([0, 0, 0, 0]);
            let bind = e.and_then(|e| e.bindnetaddr).unwrap_or(unspecified);
            let group = e.and_then(|e| e.mcastaddr).unwrap_or(unspecified);
            let port = e
                .and_then(|e| e.mcastport)
                .unwrap_or(self.totem.interface.mcastport);
            let mut c = dataplane::udp::UdpConfig::multicast(
                SocketAddr::new(bind, port.saturating_sub(1)),
                group,
                port,
            );
            if let dataplane::udp::Mode::Multicast { ttl, loopback, .. } = &mut c.mode {
                *ttl = self.totem.interface.ttl;
                *loopback = bind.is_loopback();
            }
            c.mtu = self.totem.frame_size(self.ipv6()) as usize;
            return c;
        }
        let bind = self
            .this_node()
            .and_then(|n| {
                n.ring_addr(net)
                    .map(|a| SocketAddr::new(a, self.port_on_net(n, net)))
            })
            .unwrap_or_else(|| SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0));
        let mut c = dataplane::udp::UdpConfig::unicast(bind);
        c.mtu = self.totem.frame_size(self.ipv6()) as usize;
        c
    }

    /// The members with their addresses on network `net` (0: [`Config::members`]).
    /// Empty with `udp`: multicast networks learn their members' addresses.
    pub fn members_on(&self, net: usize) -> Vec<dataplane::Member> {
        if net == 0 || self.totem.transport == TransportKind::Udp {
            return self.members();
        }
        self.nodelist
            .node
            .iter()
            .filter_map(|n| {
                n.ring_addr(net).map(|a| dataplane::Member {
                    id: dataplane::NodeId(n.nodeid),
                    addr: SocketAddr::new(a, self.port_on_net(n, net)),
                })
            })
            .collect()
    }

    /// The ring's members with their addresses (`ring0_addr` and `port`, else `mcastport`),
    /// for `udpu`; empty for `udp`, whose members are discovered: the driver teaches the
    /// transport each sender's address from its first valid frame
    /// (`dataplane::Transport::learn_member`), since the token is unicast.
    pub fn members(&self) -> Vec<dataplane::Member> {
        if self.totem.transport == TransportKind::Udp {
            return Vec::new();
        }
        let port = self.totem.interface.mcastport;
        self.nodelist
            .node
            .iter()
            .map(|n| dataplane::Member {
                id: dataplane::NodeId(n.nodeid),
                addr: SocketAddr::new(n.ring0_addr, n.port.unwrap_or(port)),
            })
            .collect()
    }
}

fn ms(value: u64) -> totem_dpdk::Duration {
    totem_dpdk::Duration::from_millis(value.min(MAX_TIMER_MS))
}
