//! [`AnyTransport`]: one type over the backends, for a node whose networks do not all run on
//! the same backend (redundant rings with network 0 on DPDK and network 1 on kernel UDP, the
//! ATCA case of a base interface through DPDK and a management network through the kernel).
//!
//! The Totem driver is generic over one transport type for all of its networks; a node that
//! mixes backends gives it `AnyTransport`s. Each call is one `match` on the variant, then the
//! backend's own code: a frame is still borrowed in place and written straight into the TX
//! slot. A node whose networks share a backend keeps using that backend's type directly.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::{Caps, Dest, Member, MembersError, NodeId, SendError, Source, Stats, Transport};

/// One network's transport, whichever backend it is.
///
/// The variants differ in size (DPDK's holds its burst arrays inline); there are at most four
/// of these per process, created once and never moved on the hot path, so they are not boxed
/// (a box would add a pointer chase to every call).
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum AnyTransport {
    /// Kernel UDP (multicast or unicast).
    Udp(crate::udp::UdpTransport),
    /// DPDK (feature `dpdk`).
    #[cfg(feature = "dpdk")]
    Dpdk(crate::dpdk::DpdkTransport),
}

impl AnyTransport {
    /// The backend's name, for logs: `"udp"` or `"dpdk"`.
    pub fn backend(&self) -> &'static str {
        match self {
            AnyTransport::Udp(_) => "udp",
            #[cfg(feature = "dpdk")]
            AnyTransport::Dpdk(_) => "dpdk",
        }
    }
}

impl From<crate::udp::UdpTransport> for AnyTransport {
    fn from(t: crate::udp::UdpTransport) -> Self {
        AnyTransport::Udp(t)
    }
}

#[cfg(feature = "dpdk")]
impl From<crate::dpdk::DpdkTransport> for AnyTransport {
    fn from(t: crate::dpdk::DpdkTransport) -> Self {
        AnyTransport::Dpdk(t)
    }
}

/// Calls `$body` with `$t` bound to the backend inside `$self`.
macro_rules! each {
    ($self:expr, $t:ident => $body:expr) => {
        match $self {
            AnyTransport::Udp($t) => $body,
            #[cfg(feature = "dpdk")]
            AnyTransport::Dpdk($t) => $body,
        }
    };
}

impl Transport for AnyTransport {
    fn caps(&self) -> Caps {
        each!(self, t => t.caps())
    }

    fn recv_burst(&mut self, f: impl FnMut(Source, &[u8])) -> io::Result<usize> {
        each!(self, t => t.recv_burst(f))
    }

    fn send(
        &mut self,
        dest: Dest,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), SendError> {
        each!(self, t => t.send(dest, len, fill))
    }

    fn flush(&mut self) -> io::Result<()> {
        each!(self, t => t.flush())
    }

    fn set_members(&mut self, members: &[Member]) -> Result<(), MembersError> {
        each!(self, t => t.set_members(members))
    }

    fn learn_member(&mut self, node: NodeId, addr: SocketAddr) -> bool {
        each!(self, t => t.learn_member(node, addr))
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        each!(self, t => t.wait(timeout))
    }

    #[cfg(target_os = "linux")]
    fn waker(&self) -> Option<crate::wake::Waker> {
        each!(self, t => t.waker())
    }

    #[cfg(target_os = "linux")]
    fn wait_fds(&self, out: &mut Vec<std::os::fd::RawFd>) -> bool {
        each!(self, t => t.wait_fds(out))
    }

    fn stats(&self) -> Stats {
        each!(self, t => t.stats())
    }

    fn visit_backend(&self, v: &mut dyn crate::stats::Visitor) {
        each!(self, t => t.visit_backend(v));
    }
}
