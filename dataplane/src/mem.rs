//! An in-process network for tests of the layers above: [`MemNetwork`] and its endpoints,
//! [`MemTransport`].
//!
//! Endpoints are attached to a network under a socket address (use
//! [`MemNetwork::attach_node`] to derive one from a [`NodeId`]); the member list maps node ids
//! to those addresses exactly as with UDP. [`Dest::Ring`] fans out to every other endpoint
//! attached to the network (multicast semantics: members or not), [`Dest::Node`] reaches the
//! one endpoint at the member's address. A frame to an address nobody is attached at is lost,
//! as on a real network.
//!
//! Each endpoint has a fixed-capacity receive queue whose slots are allocated when it is
//! attached: a full queue drops the frame and counts it in [`Stats::rx_dropped`], like a NIC;
//! a frame larger than the receiver's MTU is dropped and counted in [`Stats::rx_truncated`].
//! Frames are copied into the queue on [`Transport::flush`] and out of it on
//! [`Transport::recv_burst`]; the callback runs with no lock held, so it may drive other
//! endpoints of the same network. [`Transport::wait`] blocks on a condition variable until the
//! endpoint's queue is non-empty.
//!
//! There is no fault injection here; the simulator (`totem-sim`) has its own.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::members::MemberTable;
use crate::{Caps, Dest, Member, MembersError, NodeId, SendError, Source, Stats, Transport};

/// Sizes of one [`MemTransport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemConfig {
    /// The largest frame this endpoint sends or accepts, in bytes.
    pub mtu: usize,
    /// TX slots between flushes, and the most frames one `recv_burst` delivers.
    pub burst: usize,
    /// Capacity of the receive queue, in frames.
    pub queue_frames: usize,
}

impl Default for MemConfig {
    /// MTU 1472 (a UDP datagram on a 1500-byte link), burst 32, 256 queued frames.
    fn default() -> Self {
        Self {
            mtu: 1472,
            burst: 32,
            queue_frames: 256,
        }
    }
}

/// Why an endpoint could not be attached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemError {
    /// Another endpoint is attached at this address.
    #[error("address {0} is already attached to this memory network")]
    AddrInUse(SocketAddr),
    /// A size in [`MemConfig`] is zero.
    #[error("invalid memory transport configuration: {0} must not be zero")]
    Config(&'static str),
}

/// One endpoint's receive queue: a ring of `frames.len()` slots of `mtu` bytes.
struct RxQueue {
    mtu: usize,
    data: Box<[u8]>,
    /// (source, length) of each slot.
    frames: Box<[(SocketAddr, usize)]>,
    head: usize,
    len: usize,
    dropped: u64,
    truncated: u64,
}

impl RxQueue {
    fn new(config: &MemConfig, placeholder: SocketAddr) -> Self {
        Self {
            mtu: config.mtu,
            data: vec![0; config.queue_frames * config.mtu].into_boxed_slice(),
            frames: vec![(placeholder, 0); config.queue_frames].into_boxed_slice(),
            head: 0,
            len: 0,
            dropped: 0,
            truncated: 0,
        }
    }

    fn push(&mut self, src: SocketAddr, frame: &[u8]) {
        if frame.len() > self.mtu {
            self.truncated += 1;
            return;
        }
        if self.len == self.frames.len() {
            self.dropped += 1;
            return;
        }
        let slot = (self.head + self.len) % self.frames.len();
        let start = slot * self.mtu;
        self.data[start..start + frame.len()].copy_from_slice(frame);
        self.frames[slot] = (src, frame.len());
        self.len += 1;
    }

    fn pop(&mut self) -> Option<(SocketAddr, &[u8])> {
        if self.len == 0 {
            return None;
        }
        let slot = self.head;
        self.head = (self.head + 1) % self.frames.len();
        self.len -= 1;
        let (src, len) = self.frames[slot];
        let start = slot * self.mtu;
        Some((src, &self.data[start..start + len]))
    }
}

#[derive(Default)]
struct NetState {
    endpoints: BTreeMap<SocketAddr, RxQueue>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<NetState>,
    /// Signalled whenever frames are queued anywhere.
    arrived: Condvar,
}

impl Shared {
    /// A panic elsewhere (a failed test thread) must not take the network down with it: the
    /// state is plain queues, valid after any interrupted operation.
    fn lock(&self) -> MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An in-process network. Cloning gives another handle to the same network.
#[derive(Clone, Default)]
pub struct MemNetwork {
    shared: Arc<Shared>,
}

impl fmt::Debug for MemNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemNetwork")
            .field("endpoints", &self.shared.lock().endpoints.len())
            .finish()
    }
}

impl MemNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// The address [`attach_node`](Self::attach_node) uses for `id`: `[fd00::<id>]:5405`
    /// (unique per id).
    pub fn node_addr(id: NodeId) -> SocketAddr {
        let ip = Ipv6Addr::from((0xfd00_u128 << 112) | u128::from(id.0));
        SocketAddrV6::new(ip, 5405, 0, 0).into()
    }

    /// Attaches a new endpoint at `addr`. Its member list starts empty.
    ///
    /// # Errors
    /// [`MemError::AddrInUse`] when an endpoint is already attached there, [`MemError::Config`]
    /// when a size is zero.
    pub fn attach(&self, addr: SocketAddr, config: MemConfig) -> Result<MemTransport, MemError> {
        for (value, name) in [
            (config.mtu, "mtu"),
            (config.burst, "burst"),
            (config.queue_frames, "queue_frames"),
        ] {
            if value == 0 {
                return Err(MemError::Config(name));
            }
        }
        {
            let mut state = self.shared.lock();
            if state.endpoints.contains_key(&addr) {
                return Err(MemError::AddrInUse(addr));
            }
            state.endpoints.insert(addr, RxQueue::new(&config, addr));
        }
        Ok(MemTransport {
            net: Arc::clone(&self.shared),
            addr,
            config,
            members: MemberTable::default(),
            rx_data: vec![0; config.burst * config.mtu].into_boxed_slice(),
            rx_frames: vec![(addr, 0); config.burst].into_boxed_slice(),
            tx_data: vec![0; config.burst * config.mtu].into_boxed_slice(),
            tx: Vec::with_capacity(config.burst),
            stats: Stats::default(),
        })
    }

    /// Attaches a new endpoint at [`node_addr(id)`](Self::node_addr).
    ///
    /// # Errors
    /// As [`attach`](Self::attach).
    pub fn attach_node(&self, id: NodeId, config: MemConfig) -> Result<MemTransport, MemError> {
        self.attach(Self::node_addr(id), config)
    }

    /// Puts a raw frame from `from` (attached or not: a stranger) into the queue of the
    /// endpoint at `to`, as if it had arrived from the network. Returns false when nothing is
    /// attached at `to`; a full queue or an oversized frame is counted by the receiver.
    pub fn inject(&self, from: SocketAddr, to: SocketAddr, frame: &[u8]) -> bool {
        let attached = match self.shared.lock().endpoints.get_mut(&to) {
            Some(q) => {
                q.push(from, frame);
                true
            }
            None => false,
        };
        self.shared.arrived.notify_all();
        attached
    }
}

/// Where a queued frame goes.
#[derive(Clone, Copy)]
enum MemDest {
    Ring,
    To(SocketAddr),
}

/// One endpoint of a [`MemNetwork`]; detaches when dropped. See the [module
/// documentation](self).
pub struct MemTransport {
    net: Arc<Shared>,
    addr: SocketAddr,
    config: MemConfig,
    members: MemberTable,
    rx_data: Box<[u8]>,
    rx_frames: Box<[(SocketAddr, usize)]>,
    tx_data: Box<[u8]>,
    /// Queued frames; frame `i` is in slot `i` of `tx_data`. Capacity `burst`.
    tx: Vec<(MemDest, usize)>,
    stats: Stats,
}

impl fmt::Debug for MemTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemTransport")
            .field("addr", &self.addr)
            .field("config", &self.config)
            .field("members", &self.members.members().len())
            .field("queued", &self.tx.len())
            .finish_non_exhaustive()
    }
}

impl Drop for MemTransport {
    fn drop(&mut self) {
        self.net.lock().endpoints.remove(&self.addr);
    }
}

impl MemTransport {
    /// The address this endpoint is attached at: use it as its [`Member::addr`].
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The current member list, sorted by node id.
    pub fn members(&self) -> &[Member] {
        self.members.members()
    }
}

impl Transport for MemTransport {
    fn caps(&self) -> Caps {
        Caps {
            mtu: self.config.mtu,
            max_burst: self.config.burst,
        }
    }

    fn recv_burst(&mut self, mut f: impl FnMut(Source, &[u8])) -> io::Result<usize> {
        let mtu = self.config.mtu;
        let mut n = 0;
        {
            let mut state = self.net.lock();
            let Some(queue) = state.endpoints.get_mut(&self.addr) else {
                return Ok(0);
            };
            while n < self.rx_frames.len() {
                let Some((src, frame)) = queue.pop() else {
                    break;
                };
                self.rx_data[n * mtu..n * mtu + frame.len()].copy_from_slice(frame);
                self.rx_frames[n] = (src, frame.len());
                n += 1;
            }
        }
        for (i, &(addr, len)) in self.rx_frames[..n].iter().enumerate() {
            let node = self.members.node_of(addr);
            if node.is_none() {
                self.stats.unknown_sources += 1;
            }
            self.stats.frames_in += 1;
            self.stats.bytes_in += len as u64;
            f(Source { node, addr }, &self.rx_data[i * mtu..i * mtu + len]);
        }
        Ok(n)
    }

    fn send(
        &mut self,
        dest: Dest,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), SendError> {
        let mtu = self.config.mtu;
        if len > mtu {
            return Err(SendError::TooLarge { len, mtu });
        }
        if self.tx.len() == self.config.burst {
            return Err(SendError::TxFull);
        }
        let dest = match dest {
            Dest::Ring => MemDest::Ring,
            Dest::Node(id) => {
                let i = self.members.index_of(id).ok_or(SendError::Unknown(id))?;
                MemDest::To(self.members.members()[i].addr)
            }
        };
        let start = self.tx.len() * mtu;
        fill(&mut self.tx_data[start..start + len]);
        self.tx.push((dest, len));
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.tx.is_empty() {
            return Ok(());
        }
        let mtu = self.config.mtu;
        {
            let mut state = self.net.lock();
            for (i, &(dest, len)) in self.tx.iter().enumerate() {
                let frame = &self.tx_data[i * mtu..i * mtu + len];
                match dest {
                    MemDest::Ring => {
                        for (_, q) in state.endpoints.iter_mut().filter(|(a, _)| **a != self.addr) {
                            q.push(self.addr, frame);
                            self.stats.frames_out += 1;
                            self.stats.bytes_out += len as u64;
                        }
                    }
                    MemDest::To(to) => {
                        if let Some(q) = state.endpoints.get_mut(&to) {
                            q.push(self.addr, frame);
                        }
                        self.stats.frames_out += 1;
                        self.stats.bytes_out += len as u64;
                    }
                }
            }
        }
        self.tx.clear();
        self.net.arrived.notify_all();
        Ok(())
    }

    fn set_members(&mut self, members: &[Member]) -> Result<(), MembersError> {
        self.members = MemberTable::new(members, None)?;
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut state = self.net.lock();
        loop {
            let ready = state.endpoints.get(&self.addr).is_none_or(|q| q.len > 0);
            if ready {
                return Ok(());
            }
            state = match deadline {
                // No timeout, or one too large for `Instant`: wait for ever.
                None => self
                    .net
                    .arrived
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(());
                    }
                    self.net
                        .arrived
                        .wait_timeout(state, d - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    fn stats(&self) -> Stats {
        let mut stats = self.stats;
        if let Some(q) = self.net.lock().endpoints.get(&self.addr) {
            stats.rx_dropped = q.dropped;
            stats.rx_truncated = q.truncated;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;

    fn small() -> MemConfig {
        MemConfig {
            mtu: 16,
            burst: 4,
            queue_frames: 3,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let net = MemNetwork::new();
        let mut a = net.attach_node(NodeId(1), small()).unwrap();
        let mut b = net.attach_node(NodeId(2), small()).unwrap();
        for i in 0..4u8 {
            a.send(Dest::Ring, 1, |buf| buf[0] = i).unwrap();
        }
        a.flush().unwrap();
        let mut got = Vec::new();
        assert_eq!(b.recv_burst(|_, f| got.push(f[0])).unwrap(), 3);
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(b.stats().rx_dropped, 1);
        assert_eq!(a.stats().frames_out, 4, "the sender cannot see the drop");
    }

    #[test]
    fn attach_checks_address_and_sizes() {
        let net = MemNetwork::new();
        let a = net.attach_node(NodeId(1), small()).unwrap();
        assert_eq!(
            net.attach_node(NodeId(1), small()).unwrap_err(),
            MemError::AddrInUse(MemNetwork::node_addr(NodeId(1)))
        );
        drop(a);
        net.attach_node(NodeId(1), small()).unwrap();
        let zero = MemConfig {
            queue_frames: 0,
            ..small()
        };
        assert_eq!(
            net.attach_node(NodeId(3), zero).unwrap_err(),
            MemError::Config("queue_frames")
        );
    }

    #[test]
    fn node_addresses_are_distinct() {
        assert_ne!(
            MemNetwork::node_addr(NodeId(1)),
            MemNetwork::node_addr(NodeId(u32::MAX))
        );
        assert_eq!(
            MemNetwork::node_addr(NodeId(0x0102_0304)).to_string(),
            "[fd00::102:304]:5405"
        );
    }

    #[test]
    fn wait_wakes_when_a_frame_arrives_from_another_thread() {
        let net = MemNetwork::new();
        let mut a = net.attach_node(NodeId(1), small()).unwrap();
        let mut b = net.attach_node(NodeId(2), small()).unwrap();
        let sender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            a.send(Dest::Ring, 3, |buf| buf.copy_from_slice(b"abc"))
                .unwrap();
            a.flush().unwrap();
            a
        });
        let start = Instant::now();
        let mut got = 0;
        while got == 0 && start.elapsed() < Duration::from_secs(5) {
            b.wait(Some(Duration::from_secs(5))).unwrap();
            got += b.recv_burst(|_, f| assert_eq!(f, b"abc")).unwrap();
        }
        assert_eq!(got, 1);
        drop(sender.join().unwrap());
        b.wait(Some(Duration::from_millis(1))).unwrap();
    }
}
