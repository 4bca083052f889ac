//! Adding and deleting an IPv4 address over rtnetlink (`RTM_NEWADDR`, `RTM_DELADDR`), what
//! `ip address replace` and `ip address del` do, without starting a process: the IP takeover
//! component assigns its address in well under a millisecond instead of the tens of
//! milliseconds `ip` takes to start on a loaded node.
//!
//! The messages are built and their acknowledgements parsed by pure functions
//! ([`request`], [`ack`]), tested on bytes; [`change`] sends one over a `NETLINK_ROUTE`
//! socket (through `nix`, no `unsafe`) and waits for the kernel's answer.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    socket,
};

const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const AF_INET: u8 = 2;

/// What to do with the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Add it, or update it if present (`ip address replace`).
    Replace,
    /// Delete it (`ip address del`).
    Delete,
}

/// The rtnetlink request for `op` on `addr/prefix` of interface `ifindex`, sequence `seq`:
/// `nlmsghdr`, `ifaddrmsg` (family IPv4, scope universe) and the attributes `IFA_LOCAL` and
/// `IFA_ADDRESS`, in the host's byte order as netlink wants (addresses in network order).
pub(crate) fn request(op: Op, ifindex: u32, addr: Ipv4Addr, prefix: u8, seq: u32) -> Vec<u8> {
    let (kind, flags) = match op {
        Op::Replace => (
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        ),
        Op::Delete => (RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK),
    };
    let len: u32 = 16 + 8 + 2 * 8;
    let mut m = Vec::with_capacity(len as usize);
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[AF_INET, prefix, 0, 0]);
    m.extend_from_slice(&ifindex.to_ne_bytes());
    for attr in [IFA_LOCAL, IFA_ADDRESS] {
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&attr.to_ne_bytes());
        m.extend_from_slice(&addr.octets());
    }
    m
}

/// The kernel's answer to request `seq` in `buf`: `Some(Ok(()))` for an acknowledgement,
/// `Some(Err(errno))` for an error, `None` if `buf` holds no answer to `seq`.
pub(crate) fn ack(buf: &[u8], seq: u32) -> Option<Result<(), Errno>> {
    let mut rest = buf;
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes(rest[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(rest[4..6].try_into().ok()?);
        let s = u32::from_ne_bytes(rest[8..12].try_into().ok()?);
        if len < 16 || len > rest.len() {
            return None;
        }
        if kind == NLMSG_ERROR && s == seq && len >= 20 {
            let code = i32::from_ne_bytes(rest[16..20].try_into().ok()?);
            return Some(if code == 0 {
                Ok(())
            } else {
                Err(Errno::from_raw(-code))
            });
        }
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
    }
    None
}

/// Carries out `op` on `addr/prefix` of `interface` and waits for the kernel's answer.
///
/// # Errors
///
/// The interface does not exist (`ENODEV`), the kernel refuses (its errno: `EPERM` without
/// `CAP_NET_ADMIN`, `EADDRNOTAVAIL` when deleting an absent address), or the socket fails.
pub(crate) fn change(op: Op, interface: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), Errno> {
    let ifindex = nix::net::if_::if_nametoindex(interface).map_err(|_| Errno::ENODEV)?;
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
    let seq = 1;
    let msg = request(op, ifindex, addr, prefix, seq);
    send(fd.as_raw_fd(), &msg, MsgFlags::empty())?;
    let mut buf = vec![0u8; 8192];
    loop {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        if let Some(r) = ack(&buf[..n], seq) {
            return r;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_request_bytes() {
        let m = request(Op::Replace, 7, Ipv4Addr::new(10, 1, 2, 100), 24, 9);
        let mut want = Vec::new();
        want.extend_from_slice(&40u32.to_ne_bytes());
        want.extend_from_slice(&20u16.to_ne_bytes());
        want.extend_from_slice(&0x505u16.to_ne_bytes());
        want.extend_from_slice(&9u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[2, 24, 0, 0]);
        want.extend_from_slice(&7u32.to_ne_bytes());
        want.extend_from_slice(&8u16.to_ne_bytes());
        want.extend_from_slice(&2u16.to_ne_bytes());
        want.extend_from_slice(&[10, 1, 2, 100]);
        want.extend_from_slice(&8u16.to_ne_bytes());
        want.extend_from_slice(&1u16.to_ne_bytes());
        want.extend_from_slice(&[10, 1, 2, 100]);
        assert_eq!(m, want);
        let d = request(Op::Delete, 7, Ipv4Addr::new(10, 1, 2, 100), 24, 9);
        assert_eq!(
            &d[4..8],
            &[21u16.to_ne_bytes(), 5u16.to_ne_bytes()].concat()[..]
        );
    }

    fn error_msg(seq: u32, code: i32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&36u32.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&code.to_ne_bytes());
        m.extend_from_slice(&[0; 16]); // the request's header, echoed
        m
    }

    #[test]
    fn acknowledgements_and_errors() {
        assert_eq!(ack(&error_msg(3, 0), 3), Some(Ok(())));
        assert_eq!(ack(&error_msg(3, -99), 3), Some(Err(Errno::EADDRNOTAVAIL)));
        // Another request's answer, then ours.
        let mut two = error_msg(2, -1);
        two.extend_from_slice(&error_msg(3, -1));
        assert_eq!(ack(&two, 3), Some(Err(Errno::EPERM)));
        assert_eq!(ack(&error_msg(2, 0), 3), None);
        // Truncated or nonsense lengths are no answer, never a panic.
        assert_eq!(ack(&error_msg(3, 0)[..10], 3), None);
        let mut bad = error_msg(3, 0);
        bad[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(ack(&bad, 3), None);
        bad[0..4].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(ack(&bad, 3), None);
    }
}
