//! [`Config::validate`]: whether the values make sense together and are supported, each
//! problem reported with the key and its place in the text.

use std::net::SocketAddr;

use super::{
    Config, ConfigError, CryptoCipher, Located, MAX_MESSAGE_SIZE_LIMIT, MAX_NETMTU, MAX_TIMER_MS,
    MIN_NETMTU, RrpModeKey, TransportKind,
};

impl Config {
    fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        self.invalid_near(key, key, message)
    }

    /// An error about `key`, located at `near` (for a key that is absent from the text).
    fn invalid_near(&self, key: &str, near: &str, message: impl Into<String>) -> ConfigError {
        let at = self.source.positions.find(near);
        ConfigError::Invalid(Located {
            origin: self.source.origin.clone(),
            line: at.map(|p| p.line),
            column: at.map(|p| p.column),
            key: Some(key.to_owned()),
            message: message.into(),
        })
    }

    /// Checks that the values make sense together and are supported by this version.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for the first problem found, naming the key (and its line when
    /// the configuration was parsed from text).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.totem;
        if t.nodeid == 0 {
            return Err(self.invalid("totem.nodeid", "node id 0 is reserved; use 1..=4294967295"));
        }
        if t.transport == TransportKind::Dpdk && self.dpdk.port.is_empty() {
            return Err(self.invalid_near(
                "dpdk",
                "totem.transport",
                "transport \"dpdk\" needs [dpdk] port (the device name, e.g. \"net_af_packet0\") and the EAL arguments that create it",
            ));
        }
        if !(10..=100_000).contains(&self.dpdk.max_backoff_us) {
            return Err(self.invalid(
                "dpdk.max_backoff_us",
                format!(
                    "{} µs is out of range: the idle back-off sleeps 10..=100000 µs at most",
                    self.dpdk.max_backoff_us
                ),
            ));
        }
        self.validate_crypto()?;
        self.validate_quorum()?;
        self.validate_ckpt()?;
        self.validate_evt()?;
        self.validate_msg()?;
        self.validate_lck()?;
        self.validate_hpi()?;
        self.validate_timers()?;
        self.validate_flow_control()?;
        match t.transport {
            TransportKind::Udp => self.validate_udp()?,
            TransportKind::Udpu | TransportKind::Dpdk => self.validate_udpu()?,
        }
        if !self.nodelist.node.is_empty() && t.transport == TransportKind::Udp {
            self.validate_nodelist()?;
        }
        self.validate_aisexec()?;
        self.validate_rrp()?;
        // Anything the Totem core would still refuse.
        self.totem_config()
            .validate()
            .map_err(|e| self.invalid("totem", e.to_string()))
    }

    fn validate_quorum(&self) -> Result<(), ConfigError> {
        let Some(q) = &self.quorum else {
            return Ok(());
        };
        match (q.expected_votes, self.nodelist.node.len()) {
            (None, 0) => {
                return Err(self.invalid_near(
                    "quorum.expected_votes",
                    "quorum",
                    "quorum.expected_votes is needed without a [[nodelist.node]] list (the \
                     votes of the whole cluster, usually its number of nodes)",
                ));
            }
            (Some(0), _) => {
                return Err(self.invalid(
                    "quorum.expected_votes",
                    "must be at least 1 (the votes of the whole cluster)",
                ));
            }
            _ => {}
        }
        if q.two_node && self.quorum_config().map(|c| c.expected_votes) != Some(2) {
            return Err(self.invalid(
                "quorum.two_node",
                "two_node is for a cluster of exactly two votes: set expected_votes = 2 (or \
                 list two nodes), or remove two_node",
            ));
        }
        Ok(())
    }

    fn validate_ckpt(&self) -> Result<(), ConfigError> {
        if self.ckpt.max_memory_mb == 0 {
            return Err(self.invalid(
                "ckpt.max_memory_mb",
                "must be at least 1 (mebibytes of checkpoint data this node may hold)",
            ));
        }
        if self.ckpt.writes_need_quorum && self.quorum.is_none() {
            return Err(self.invalid_near(
                "ckpt.writes_need_quorum",
                "ckpt",
                "writes_need_quorum needs a [quorum] table (without one every partition \
                 counts as quorate, so nothing would ever be refused)",
            ));
        }
        Ok(())
    }

    fn validate_evt(&self) -> Result<(), ConfigError> {
        let e = &self.evt;
        for (field, value, what) in [
            ("evt.max_channels", e.max_channels, "channels"),
            (
                "evt.max_subscriptions",
                e.max_subscriptions,
                "subscriptions of one client",
            ),
            (
                "evt.delivery_window",
                e.delivery_window,
                "deliveries in flight to one client",
            ),
        ] {
            if value == 0 {
                return Err(self.invalid(field, format!("must be at least 1 ({what})")));
            }
        }
        Ok(())
    }

    fn validate_msg(&self) -> Result<(), ConfigError> {
        let m = &self.msg;
        let at_least_one = [
            ("msg.max_queues", u64::from(m.max_queues), "queues"),
            (
                "msg.max_queue_bytes",
                m.max_queue_bytes,
                "bytes of one queue",
            ),
            (
                "msg.max_memory_mb",
                m.max_memory_mb,
                "mebibytes of messages",
            ),
            ("msg.max_groups", u64::from(m.max_groups), "queue groups"),
        ];
        for (key, value, what) in at_least_one {
            if value == 0 {
                return Err(self.invalid(key, format!("must be at least 1 ({what})")));
            }
        }
        let most = ais_proto::msg::MAX_MESSAGE as u64;
        if !(1..=most).contains(&m.max_message_bytes) {
            return Err(self.invalid(
                "msg.max_message_bytes",
                format!(
                    "{} is out of range: a message carries 1..={most} data bytes (one IPC \
                     answer)",
                    m.max_message_bytes
                ),
            ));
        }
        Ok(())
    }

    fn validate_lck(&self) -> Result<(), ConfigError> {
        if self.lck.max_resources == 0 {
            return Err(self.invalid(
                "lck.max_resources",
                "must be at least 1 (resources the cluster may hold)",
            ));
        }
        if self.lck.max_locks == 0 {
            return Err(self.invalid(
                "lck.max_locks",
                "must be at least 1 (locks, granted and queued, the cluster may hold)",
            ));
        }
        Ok(())
    }

    fn validate_hpi(&self) -> Result<(), ConfigError> {
        let Some(h) = &self.hpi else { return Ok(()) };
        if h.address.trim().is_empty() {
            return Err(self.invalid(
                "hpi.address",
                "the shelf manager's host name or IP address is empty",
            ));
        }
        if h.port == 0 {
            return Err(self.invalid("hpi.port", "port 0: the RMCP+ port is 623 on most shelves"));
        }
        if h.credentials.as_os_str().is_empty() {
            return Err(self.invalid(
                "hpi.credentials",
                "needs the path of the file with the shelf's user and password",
            ));
        }
        if h.slot == Some(0) {
            return Err(self.invalid("hpi.slot", "slots are numbered from 1"));
        }
        if !(10..=10_000).contains(&h.sel_poll_ms) {
            return Err(self.invalid(
                "hpi.sel_poll_ms",
                format!(
                    "{} ms is out of range: the SEL is polled every 10..=10000 ms (it is also \
                     the session's keep-alive)",
                    h.sel_poll_ms
                ),
            ));
        }
        Ok(())
    }

    fn validate_crypto(&self) -> Result<(), ConfigError> {
        let t = &self.totem;
        if !t.secauth && t.crypto_cipher == Some(CryptoCipher::Aes256) {
            // The file asks for encryption and switches it off: refuse rather than run in clear.
            return Err(self.invalid(
                "totem.crypto_cipher",
                "\"aes256\" needs secauth = true (with secauth = false frames are neither \
                 authenticated nor encrypted); set secauth = true or remove crypto_cipher",
            ));
        }
        if t.keyfile.as_os_str().is_empty() {
            return Err(self.invalid(
                "totem.keyfile",
                format!(
                    "must not be empty; leave it out for the default {}",
                    crate::keyfile::DEFAULT_KEYFILE
                ),
            ));
        }
        Ok(())
    }

    fn validate_timers(&self) -> Result<(), ConfigError> {
        let t = &self.totem;
        for (key, ms) in [
            ("totem.token", Some(t.token)),
            ("totem.join", Some(t.join)),
            ("totem.consensus", t.consensus),
            ("totem.merge", Some(t.merge)),
            // 0 is allowed here: it turns pause detection off.
            ("totem.pause_threshold", t.pause_threshold.map(|v| v.max(1))),
        ] {
            if let Some(ms) = ms
                && !(1..=MAX_TIMER_MS).contains(&ms)
            {
                return Err(
                    self.invalid(key, format!("must be 1..={MAX_TIMER_MS} ms, got {ms} ms"))
                );
            }
        }
        // The representative's hold of an idle token: half the token retransmit interval
        // (`srp::Config::token_hold`); a pace must end before it.
        let hold_us = t.token_hold_us();
        if let Some(pace) = t.token_pace_us
            && pace >= hold_us
        {
            return Err(self.invalid(
                "totem.token_pace_us",
                format!(
                    "must be below the token hold of {hold_us} µs (half the token retransmit \
                     interval: totem.token / (token_retransmits_before_loss_const + 0.2) / 2), \
                     got {pace} µs; lower it or set 0 to turn pacing off"
                ),
            ));
        }
        let consensus = t.consensus_ms();
        if consensus < t.token && !t.short_consensus {
            return Err(self.invalid(
                "totem.consensus",
                format!(
                    "must be at least totem.token ({} ms), got {consensus} ms (a shorter \
                     consensus detects a crash sooner but excludes a member slow to answer \
                     for longer than it: set totem.short_consensus = true to accept that)",
                    t.token
                ),
            ));
        }
        if t.join >= consensus {
            return Err(self.invalid(
                "totem.join",
                format!(
                    "must be less than totem.consensus ({consensus} ms), got {} ms",
                    t.join
                ),
            ));
        }
        for (key, value) in [
            (
                "totem.token_retransmits_before_loss_const",
                t.token_retransmits_before_loss_const,
            ),
            ("totem.seqno_unchanged_const", t.seqno_unchanged_const),
            ("totem.fail_recv_const", t.fail_recv_const),
        ] {
            if value == 0 {
                return Err(self.invalid(key, "must be at least 1, got 0"));
            }
        }
        Ok(())
    }

    fn validate_flow_control(&self) -> Result<(), ConfigError> {
        let t = &self.totem;
        if !(MIN_NETMTU..=MAX_NETMTU).contains(&t.netmtu) {
            return Err(self.invalid(
                "totem.netmtu",
                format!(
                    "must be {MIN_NETMTU}..={MAX_NETMTU} bytes, got {}",
                    t.netmtu
                ),
            ));
        }
        if t.max_messages == 0 {
            return Err(self.invalid("totem.max_messages", "must be at least 1, got 0"));
        }
        if t.max_queued_bytes == 0 {
            return Err(self.invalid(
                "totem.max_queued_bytes",
                "must be at least 1 byte, got 0 (a message is always taken when the queue is empty)",
            ));
        }
        if t.window_size < t.max_messages {
            return Err(self.invalid(
                "totem.window_size",
                format!(
                    "must be at least totem.max_messages ({}), got {}",
                    t.max_messages, t.window_size
                ),
            ));
        }
        if !(1..=MAX_MESSAGE_SIZE_LIMIT).contains(&t.max_message_size) {
            return Err(self.invalid(
                "totem.max_message_size",
                format!(
                    "must be 1..={MAX_MESSAGE_SIZE_LIMIT} bytes, got {}",
                    t.max_message_size
                ),
            ));
        }
        Ok(())
    }

    fn validate_udp(&self) -> Result<(), ConfigError> {
        let i = &self.totem.interface;
        let Some(bind) = i.bindnetaddr else {
            return Err(self.invalid(
                "totem.interface.bindnetaddr",
                "required for transport \"udp\": the local address to bind",
            ));
        };
        if bind.is_unspecified() || bind.is_multicast() {
            return Err(self.invalid(
                "totem.interface.bindnetaddr",
                format!("must be a specific local unicast address, got {bind}"),
            ));
        }
        let Some(group) = i.mcastaddr else {
            return Err(self.invalid(
                "totem.interface.mcastaddr",
                "required for transport \"udp\": the multicast group",
            ));
        };
        if !group.is_multicast() {
            return Err(self.invalid(
                "totem.interface.mcastaddr",
                format!("{group} is not a multicast address (224.0.0.0/4 or ff00::/8)"),
            ));
        }
        if group.is_ipv6() != bind.is_ipv6() {
            return Err(self.invalid(
                "totem.interface.mcastaddr",
                format!("{group} is not of the same address family as bindnetaddr {bind}"),
            ));
        }
        if i.mcastport < 2 {
            return Err(self.invalid(
                "totem.interface.mcastport",
                format!(
                    "must be 2..=65535 (the node's own socket uses mcastport - 1), got {}",
                    i.mcastport
                ),
            ));
        }
        if i.ttl == 0 || i.ttl > 255 {
            return Err(self.invalid(
                "totem.interface.ttl",
                format!("must be 1..=255, got {}", i.ttl),
            ));
        }
        Ok(())
    }

    fn validate_udpu(&self) -> Result<(), ConfigError> {
        if self.nodelist.node.is_empty() {
            return Err(self.invalid_near(
                "nodelist",
                "totem.transport",
                "transport \"udpu\" needs a [[nodelist.node]] entry (nodeid, ring0_addr) for every node",
            ));
        }
        if let Some(group) = self.totem.interface.mcastaddr {
            return Err(self.invalid(
                "totem.interface.mcastaddr",
                format!("not used by transport \"udpu\"; remove it (got {group})"),
            ));
        }
        self.validate_nodelist()?;
        let me = self.this_node().ok_or_else(|| {
            self.invalid(
                "totem.nodeid",
                format!(
                    "node {} is not in the nodelist ([[nodelist.node]] entries)",
                    self.totem.nodeid
                ),
            )
        })?;
        if let Some(bind) = self.totem.interface.bindnetaddr
            && bind != me.ring0_addr
        {
            return Err(self.invalid(
                "totem.interface.bindnetaddr",
                format!(
                    "must equal this node's ring0_addr {} for transport \"udpu\", got {bind}",
                    me.ring0_addr
                ),
            ));
        }
        Ok(())
    }

    /// One `[[totem.rrp_interface]]` entry's transport keys: `transport` (no mixing of
    /// multicast with the others), `bindnetaddr` and `mcastaddr` (multicast only),
    /// `dpdk_port` (required on a DPDK network, only there, and not another network's port).
    fn validate_net_transport(&self, i: usize, r: &super::RrpInterface) -> Result<(), ConfigError> {
        let base = self.totem.transport;
        let net = usize::from(r.ringnumber);
        let key = |k: &str| format!("totem.rrp_interface[{i}].{k}");
        match (base, r.transport) {
            (TransportKind::Udp, Some(other)) if other != TransportKind::Udp => {
                return Err(self.invalid(
                    &key("transport"),
                    format!(
                        "\"{other}\" on a multicast ring: with totem.transport = \"udp\" every \
                         network is multicast (a node mixes \"udpu\" and \"dpdk\" networks only)"
                    ),
                ));
            }
            (TransportKind::Udpu | TransportKind::Dpdk, Some(TransportKind::Udp)) => {
                return Err(self.invalid(
                    &key("transport"),
                    format!(
                        "multicast networks need totem.transport = \"udp\" (then every network is \
                         multicast); with \"{base}\" a network is \"udpu\" or \"dpdk\""
                    ),
                ));
            }
            _ => {}
        }
        if base != TransportKind::Udp {
            for (name, given) in [
                ("bindnetaddr", r.bindnetaddr.is_some()),
                ("mcastaddr", r.mcastaddr.is_some()),
            ] {
                if given {
                    return Err(self.invalid(
                        &key(name),
                        format!(
                            "only for transport \"udp\" (multicast); with \"{base}\" network \
                             {net}'s addresses are the node entries' ring{net}_addr"
                        ),
                    ));
                }
            }
        }
        let dpdk = self.transport_on(net) == TransportKind::Dpdk;
        match (&r.dpdk_port, dpdk) {
            (Some(_), false) => Err(self.invalid(
                &key("dpdk_port"),
                format!(
                    "only for a network with transport \"dpdk\" (network {net} is \"{}\")",
                    self.transport_on(net)
                ),
            )),
            (None, true) => Err(self.invalid_near(
                &key("dpdk_port"),
                &key("ringnumber"),
                format!(
                    "network {net} is a DPDK network: give its port's device name, e.g. \
                     dpdk_port = \"net_af_packet{net}\" (its --vdev goes in [dpdk] eal_args)"
                ),
            )),
            (Some(p), true) if p.is_empty() => Err(self.invalid(
                &key("dpdk_port"),
                "must name a DPDK port, e.g. \"net_af_packet1\"",
            )),
            (Some(p), true) => {
                match (0..net).find(|&j| {
                    self.transport_on(j) == TransportKind::Dpdk && self.dpdk_port_on(j) == p
                }) {
                    Some(j) => Err(self.invalid(
                        &key("dpdk_port"),
                        format!(
                            "{p:?} is network {j}'s DPDK port too: each network needs its own port"
                        ),
                    )),
                    None => Ok(()),
                }
            }
            (None, false) => Ok(()),
        }
    }

    /// Multicast networks 1 to 3: a local address and a group each, and no two networks on the
    /// same group and port (nor the same local socket, `bindnetaddr:(mcastport − 1)`).
    fn validate_groups(&self) -> Result<(), ConfigError> {
        let base = &self.totem.interface;
        // (group, port, bind) of network 0, then of each entry as it is checked.
        let mut seen: Vec<(
            usize,
            Option<std::net::IpAddr>,
            u16,
            Option<std::net::IpAddr>,
        )> = vec![(0, base.mcastaddr, base.mcastport, base.bindnetaddr)];
        let mut entries: Vec<(usize, &super::RrpInterface)> =
            self.totem.rrp_interface.iter().enumerate().collect();
        entries.sort_by_key(|(_, r)| r.ringnumber);
        for (i, r) in entries {
            let net = usize::from(r.ringnumber);
            let key = |k: &str| format!("totem.rrp_interface[{i}].{k}");
            let Some(bind) = r.bindnetaddr else {
                return Err(self.invalid_near(
                    &key("bindnetaddr"),
                    &key("ringnumber"),
                    format!("required for multicast network {net}: this node's address on it"),
                ));
            };
            if bind.is_unspecified() || bind.is_multicast() {
                return Err(self.invalid(
                    &key("bindnetaddr"),
                    format!("must be a specific local unicast address, got {bind}"),
                ));
            }
            let Some(group) = r.mcastaddr else {
                return Err(self.invalid_near(
                    &key("mcastaddr"),
                    &key("ringnumber"),
                    format!("required for multicast network {net}: its multicast group"),
                ));
            };
            if !group.is_multicast() {
                return Err(self.invalid(
                    &key("mcastaddr"),
                    format!("{group} is not a multicast address (224.0.0.0/4 or ff00::/8)"),
                ));
            }
            if group.is_ipv6() != bind.is_ipv6() {
                return Err(self.invalid(
                    &key("mcastaddr"),
                    format!("{group} is not of the same address family as bindnetaddr {bind}"),
                ));
            }
            let port = r.mcastport.unwrap_or(base.mcastport);
            if port < 2 {
                return Err(self.invalid(
                    &key("mcastport"),
                    format!(
                        "must be 2..=65535 (the node's own socket uses mcastport - 1), got {port}"
                    ),
                ));
            }
            for &(j, g, p, b) in &seen {
                if g == Some(group) && p == port {
                    let which = if r.mcastport.is_some() {
                        "mcastport"
                    } else {
                        "mcastaddr"
                    };
                    return Err(self.invalid(
                        &key(which),
                        format!(
                            "group {group} port {port} is network {j}'s too: each network needs \
                             its own group or port (mcastaddr or mcastport)"
                        ),
                    ));
                }
                if b == Some(bind) && p == port {
                    return Err(self.invalid(
                        &key("bindnetaddr"),
                        format!(
                            "{bind} with port {port} is network {j}'s too: this node's socket on \
                             each network needs its own address or port"
                        ),
                    ));
                }
            }
            seen.push((net, Some(group), port, Some(bind)));
        }
        Ok(())
    }

    fn validate_nodelist(&self) -> Result<(), ConfigError> {
        let nodes = &self.nodelist.node;
        let default_port = self.totem.interface.mcastport;
        for (n, node) in nodes.iter().enumerate() {
            if node.nodeid == 0 {
                return Err(self.invalid(
                    &format!("nodelist.node[{n}].nodeid"),
                    "node id 0 is reserved; use 1..=4294967295",
                ));
            }
            let addr = node.ring0_addr;
            if addr.is_unspecified() || addr.is_multicast() {
                return Err(self.invalid(
                    &format!("nodelist.node[{n}].ring0_addr"),
                    format!("must be a specific unicast address, got {addr}"),
                ));
            }
            if addr.is_ipv6() != nodes[0].ring0_addr.is_ipv6() {
                return Err(self.invalid(
                    &format!("nodelist.node[{n}].ring0_addr"),
                    format!(
                        "{addr} is not of the same address family as the first node's {}",
                        nodes[0].ring0_addr
                    ),
                ));
            }
            let port = node.port.unwrap_or(default_port);
            if port == 0 {
                return Err(self.invalid(
                    &format!("nodelist.node[{n}].port"),
                    "port 0 is not allowed: peers must know the port",
                ));
            }
            for (m, earlier) in nodes[..n].iter().enumerate() {
                if earlier.nodeid == node.nodeid {
                    return Err(self.invalid(
                        &format!("nodelist.node[{n}].nodeid"),
                        format!(
                            "node id {} is already used by nodelist.node[{m}]",
                            node.nodeid
                        ),
                    ));
                }
                let earlier_addr =
                    SocketAddr::new(earlier.ring0_addr, earlier.port.unwrap_or(default_port));
                if earlier_addr == SocketAddr::new(addr, port) {
                    return Err(self.invalid(
                        &format!("nodelist.node[{n}].ring0_addr"),
                        format!("address {earlier_addr} is already used by nodelist.node[{m}]"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Redundant rings: `rrp_mode`, the `ringN_addr` of every node entry (the same networks
    /// for every node, without gaps), their ports, and the detection keys.
    fn validate_rrp(&self) -> Result<(), ConfigError> {
        let t = &self.totem;
        let nodes = &self.nodelist.node;
        // Every entry lists the same networks, contiguously from ring0_addr.
        for (n, node) in nodes.iter().enumerate() {
            let listed: Vec<usize> = (1..4).filter(|&k| node.ring_addr(k).is_some()).collect();
            if let Some(gap) = (1..4).find(|&k| node.ring_addr(k).is_none())
                && let Some(&after) = listed.iter().find(|&&k| k > gap)
            {
                return Err(self.invalid(
                    &format!("nodelist.node[{n}].ring{after}_addr"),
                    format!(
                        "ring{after}_addr without ring{gap}_addr: networks are numbered \
                         without gaps"
                    ),
                ));
            }
            let count = 1 + listed.len();
            let first = nodes.first().map_or(1, |f| {
                1 + (1..4).filter(|&k| f.ring_addr(k).is_some()).count()
            });
            if count != first {
                return Err(self.invalid(
                    &format!("nodelist.node[{n}]"),
                    format!(
                        "lists {count} network(s) (ring0_addr to ring{}_addr) but \
                         nodelist.node[0] lists {first}: every node is on the same networks",
                        count - 1
                    ),
                ));
            }
            for k in 1..count {
                let Some(addr) = node.ring_addr(k) else {
                    continue;
                };
                let key = format!("nodelist.node[{n}].ring{k}_addr");
                if addr.is_unspecified() || addr.is_multicast() {
                    return Err(self.invalid(
                        &key,
                        format!("must be a specific unicast address, got {addr}"),
                    ));
                }
                let sock = SocketAddr::new(addr, self.port_on_net(node, k));
                for j in 0..k {
                    if let Some(other) = node.ring_addr(j)
                        && SocketAddr::new(other, self.port_on_net(node, j)) == sock
                    {
                        return Err(self.invalid(
                            &key,
                            format!(
                                "{sock} is this node's address on network {j} too: each \
                                 network needs its own address or port"
                            ),
                        ));
                    }
                }
                for (m, earlier) in nodes[..n].iter().enumerate() {
                    if earlier
                        .ring_addr(k)
                        .is_some_and(|a| SocketAddr::new(a, self.port_on_net(earlier, k)) == sock)
                    {
                        return Err(self.invalid(
                            &key,
                            format!("address {sock} is already used by nodelist.node[{m}]"),
                        ));
                    }
                }
            }
        }
        let multicast = t.transport == TransportKind::Udp;
        if multicast {
            for (n, node) in nodes.iter().enumerate() {
                if let Some(k) = (1..4).find(|&k| node.ring_addr(k).is_some()) {
                    return Err(self.invalid(
                        &format!("nodelist.node[{n}].ring{k}_addr"),
                        format!(
                            "not used by transport \"udp\": each multicast network is a \
                             [[totem.rrp_interface]] entry (ringnumber = {k}, bindnetaddr, \
                             mcastaddr); remove it, or use transport \"udpu\""
                        ),
                    ));
                }
            }
        }
        let networks = self.networks();
        for (i, r) in t.rrp_interface.iter().enumerate() {
            let key = format!("totem.rrp_interface[{i}].ringnumber");
            if multicast && !(1..=3).contains(&r.ringnumber) {
                return Err(self.invalid(
                    &key,
                    format!(
                        "network {} is not one of 1..=3 (network 0 is [totem.interface])",
                        r.ringnumber
                    ),
                ));
            }
            if !(1..networks).contains(&usize::from(r.ringnumber)) {
                return Err(self.invalid(
                    &key,
                    format!(
                        "network {} is not one of this cluster's networks 1..={} (network 0 \
                         is [totem.interface]; the networks are the ringN_addr of the node \
                         entries)",
                        r.ringnumber,
                        networks - 1
                    ),
                ));
            }
            if t.rrp_interface[..i]
                .iter()
                .any(|e| e.ringnumber == r.ringnumber)
            {
                return Err(self.invalid(
                    &key,
                    format!("network {} is configured twice", r.ringnumber),
                ));
            }
            if r.mcastport == Some(0) {
                return Err(self.invalid(
                    &format!("totem.rrp_interface[{i}].mcastport"),
                    "port 0 is not allowed: peers must know the port",
                ));
            }
            self.validate_net_transport(i, r)?;
        }
        if multicast && let Some(k) = (1..networks).find(|&k| self.rrp_interface_on(k).is_none()) {
            return Err(self.invalid_near(
                "totem.rrp_interface",
                "totem.transport",
                format!(
                    "network {k} has no [[totem.rrp_interface]] entry: multicast networks are \
                     numbered 1, 2, 3 without gaps"
                ),
            ));
        }
        if multicast {
            self.validate_groups()?;
        }
        match (t.rrp_mode, networks) {
            (RrpModeKey::None, 1) => return Ok(()),
            (RrpModeKey::None, n) => {
                let (listed, keys) = if multicast {
                    ("[[totem.rrp_interface]] entries", "those entries")
                } else {
                    ("node entries (ring1_addr ...)", "the ringN_addr keys")
                };
                return Err(self.invalid(
                    "totem.rrp_mode",
                    format!(
                        "the {listed} give {n} networks, but rrp_mode is \"none\" (one \
                         network): set rrp_mode = \"active\" or \"passive\", or remove {keys}"
                    ),
                ));
            }
            (mode, 1) => {
                let how = if multicast {
                    "a [[totem.rrp_interface]] entry (ringnumber = 1, bindnetaddr, mcastaddr)"
                } else {
                    "a ring1_addr in every node entry"
                };
                return Err(self.invalid(
                    "totem.rrp_mode",
                    format!(
                        "\"{mode}\" needs at least two networks: give {how} (or set rrp_mode = \
                         \"none\")"
                    ),
                ));
            }
            _ => {}
        }
        for (key, value) in [
            (
                "totem.rrp_problem_count_timeout",
                t.rrp_problem_count_timeout,
            ),
            (
                "totem.rrp_token_expired_timeout",
                t.rrp_token_expired_timeout,
            ),
            (
                "totem.rrp_autorecovery_check_timeout",
                t.rrp_autorecovery_check_timeout,
            ),
        ] {
            if !(1..=MAX_TIMER_MS).contains(&value) {
                return Err(self.invalid(
                    key,
                    format!("must be 1..={MAX_TIMER_MS} ms, got {value} ms"),
                ));
            }
        }
        if t.rrp_token_expired_timeout >= t.rrp_problem_count_timeout {
            return Err(self.invalid(
                "totem.rrp_token_expired_timeout",
                format!(
                    "must be less than totem.rrp_problem_count_timeout ({} ms), got {} ms",
                    t.rrp_problem_count_timeout, t.rrp_token_expired_timeout
                ),
            ));
        }
        if t.rrp_token_expired_timeout >= t.join {
            return Err(self.invalid(
                "totem.rrp_token_expired_timeout",
                format!(
                    "must be less than totem.join ({} ms): copies are remembered at least this \
                     long, and a join re-sent within it would be taken for a copy",
                    t.join
                ),
            ));
        }
        self.rrp_config().validate().map_err(|e| {
            let key = match e {
                totem_dpdk::rrp::RrpConfigError::Networks(_) => "nodelist",
                totem_dpdk::rrp::RrpConfigError::Detection(m) if m.contains("permille") => {
                    "totem.rrp_bad_window_permille"
                }
                totem_dpdk::rrp::RrpConfigError::Detection(_) => {
                    "totem.rrp_problem_count_threshold"
                }
            };
            self.invalid(key, e.to_string())
        })
    }

    fn validate_aisexec(&self) -> Result<(), ConfigError> {
        if self
            .amf
            .as_ref()
            .is_some_and(|a| a.model.as_os_str().is_empty())
        {
            return Err(self.invalid("amf.model", "must not be empty (the AMF model file)"));
        }
        if let Some(lease) = self.amf_core_config().map(|c| c.lease_ms)
            && let Some(fence) = self.amf.as_ref().and_then(|a| a.fence_ms)
            && fence <= lease
        {
            return Err(self.invalid(
                "amf.fence_ms",
                format!(
                    "{fence} ms is too short: it must be more than the contact lease ({lease} ms, \
                     1.5 × totem.join), or a node cut off could still serve its SIs when another \
                     takes them active (leave it out for the default, the lease + totem.token / 8)"
                ),
            ));
        }
        let a = &self.aisexec;
        if a.ipc_socket.as_os_str().is_empty() {
            return Err(self.invalid("aisexec.ipc_socket", "must not be empty"));
        }
        if a.state_dir.as_os_str().is_empty() {
            return Err(self.invalid("aisexec.state_dir", "must not be empty"));
        }
        if !(256..=1 << 24).contains(&a.ipc_outbox_packets) {
            return Err(self.invalid(
                "aisexec.ipc_outbox_packets",
                format!(
                    "{} is out of range: 256..=16777216 packets per client",
                    a.ipc_outbox_packets
                ),
            ));
        }
        if !(-20..=19).contains(&a.totem_nice) {
            return Err(self.invalid(
                "aisexec.totem_nice",
                format!(
                    "{} is out of range: a nice value is -20 (the most CPU) to 19 (the least)",
                    a.totem_nice
                ),
            ));
        }
        if a.ipc_group.as_deref() == Some("") {
            return Err(self.invalid(
                "aisexec.ipc_group",
                "must not be empty; leave it out instead",
            ));
        }
        Ok(())
    }
}
