//! The member table shared by the backends: node id → address for sending, address → node id
//! for resolving [`Source::node`](crate::Source::node). Built on `set_members`; lookups are
//! binary searches and never allocate.

use std::net::SocketAddr;

use crate::{Member, MembersError, NodeId};

/// The key an address is matched on: IP and port only. IPv6 flow labels and scope ids are not
/// part of a peer's identity (the kernel reports them on receive, member lists rarely carry
/// them).
pub(crate) fn addr_key(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip(), addr.port())
}

/// A validated member list.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemberTable {
    /// Sorted by id.
    by_id: Vec<Member>,
    /// `(addr_key, id)`, sorted by address.
    by_addr: Vec<(SocketAddr, NodeId)>,
}

impl MemberTable {
    /// Validates `members`: ids and addresses must be unique, and when `ipv6` is given every
    /// address must be of that family.
    pub(crate) fn new(members: &[Member], ipv6: Option<bool>) -> Result<Self, MembersError> {
        let mut by_id = members.to_vec();
        by_id.sort_unstable_by_key(|m| m.id);
        if let Some(w) = by_id.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(MembersError::DuplicateNode(w[0].id));
        }
        if let Some(want_v6) = ipv6
            && let Some(m) = by_id.iter().find(|m| m.addr.is_ipv6() != want_v6)
        {
            return Err(MembersError::AddressFamily {
                id: m.id,
                addr: m.addr,
            });
        }
        let mut by_addr: Vec<(SocketAddr, NodeId)> =
            by_id.iter().map(|m| (addr_key(m.addr), m.id)).collect();
        by_addr.sort_unstable();
        if let Some(w) = by_addr.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(MembersError::DuplicateAddr(w[0].0));
        }
        Ok(Self { by_id, by_addr })
    }

    /// The members, sorted by id.
    pub(crate) fn members(&self) -> &[Member] {
        &self.by_id
    }

    /// The position of `id` in [`members`](Self::members).
    pub(crate) fn index_of(&self, id: NodeId) -> Option<usize> {
        self.by_id.binary_search_by_key(&id, |m| m.id).ok()
    }

    /// The member whose address is `addr` (matched on IP and port).
    pub(crate) fn node_of(&self, addr: SocketAddr) -> Option<NodeId> {
        let key = addr_key(addr);
        self.by_addr
            .binary_search_by_key(&key, |&(a, _)| a)
            .ok()
            .map(|i| self.by_addr[i].1)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv6Addr, SocketAddrV6};

    use super::*;

    fn m(id: u32, addr: &str) -> Member {
        Member {
            id: NodeId(id),
            addr: addr.parse().unwrap(),
        }
    }

    #[test]
    fn resolves_ids_and_addresses() {
        let t =
            MemberTable::new(&[m(3, "10.0.0.3:5405"), m(1, "10.0.0.1:5405")], Some(false)).unwrap();
        assert_eq!(t.members()[0].id, NodeId(1));
        assert_eq!(t.index_of(NodeId(3)), Some(1));
        assert_eq!(t.index_of(NodeId(2)), None);
        assert_eq!(t.node_of("10.0.0.3:5405".parse().unwrap()), Some(NodeId(3)));
        assert_eq!(t.node_of("10.0.0.3:5406".parse().unwrap()), None);
    }

    #[test]
    fn ipv6_scope_and_flowinfo_are_ignored() {
        let t = MemberTable::new(&[m(1, "[fe80::1]:5405")], Some(true)).unwrap();
        let seen = SocketAddrV6::new("fe80::1".parse::<Ipv6Addr>().unwrap(), 5405, 7, 2);
        assert_eq!(t.node_of(seen.into()), Some(NodeId(1)));
    }

    #[test]
    fn rejects_duplicates_and_mixed_families() {
        assert_eq!(
            MemberTable::new(&[m(1, "10.0.0.1:1"), m(1, "10.0.0.2:1")], None).unwrap_err(),
            MembersError::DuplicateNode(NodeId(1))
        );
        assert_eq!(
            MemberTable::new(&[m(1, "10.0.0.1:1"), m(2, "10.0.0.1:1")], None).unwrap_err(),
            MembersError::DuplicateAddr("10.0.0.1:1".parse().unwrap())
        );
        assert_eq!(
            MemberTable::new(&[m(1, "10.0.0.1:1"), m(2, "[::1]:1")], Some(false)).unwrap_err(),
            MembersError::AddressFamily {
                id: NodeId(2),
                addr: "[::1]:1".parse().unwrap()
            }
        );
    }
}
