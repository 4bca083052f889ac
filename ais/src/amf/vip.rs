//! IP takeover (CGL CAF.2.2): the built-in component type for a virtual IPv4 address.
//!
//! A [`VirtualIp`] is an address with its prefix length on an interface of this node. When its
//! CSI is assigned active here, [`VirtualIp::assign_active`] gives the command that adds the
//! address to the interface (`ip address replace`, so a repeated assignment is not an error)
//! and then announces it with gratuitous ARP (`arping -U`, from iputils: an unsolicited ARP
//! request whose sender and target are the address, so that every neighbour that has the
//! address in its cache points it at this node's MAC). When the assignment is removed,
//! [`VirtualIp::remove`] gives the command that deletes the address; an address already
//! absent is not an error, so a cleanup after a crash can always run it.
//!
//! The commands are ordinary [`ClcCommand`]s: the [`super::clc::ClcRunner`] runs them with
//! their timeout and logs their output, and the outcome comes back like any other CLC-CLI
//! command's. The first announcement leaves at once; `arping` then waits a second for
//! replies that never come to an unsolicited request, so the assign command takes about
//! [`VirtualIp::announcements`] seconds (the address works from the start).

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::clc::{ClcCommand, CommandKind};

/// Why a virtual address is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VipError {
    /// The prefix length is not 1..=32.
    #[error("prefix length {0} is not in 1..=32")]
    Prefix(u8),
    /// The interface name is not a Linux interface name (1..=15 bytes of letters, digits,
    /// `-`, `_`, `.`, `@`).
    #[error("{0:?} is not an interface name")]
    Interface(String),
    /// The number of announcements is not 1..=10.
    #[error("{0} announcements: 1..=10")]
    Announcements(u32),
}

/// A virtual IPv4 address that follows its CSI's active assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualIp {
    address: Ipv4Addr,
    prefix: u8,
    interface: String,
    announcements: u32,
}

impl VirtualIp {
    /// The address `address/prefix` on `interface`, announced once.
    ///
    /// # Errors
    ///
    /// [`VipError::Prefix`], [`VipError::Interface`].
    pub fn new(address: Ipv4Addr, prefix: u8, interface: &str) -> Result<VirtualIp, VipError> {
        if !(1..=32).contains(&prefix) {
            return Err(VipError::Prefix(prefix));
        }
        let ok = (1..=15).contains(&interface.len())
            && interface
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
        if !ok {
            return Err(VipError::Interface(interface.to_owned()));
        }
        Ok(VirtualIp {
            address,
            prefix,
            interface: interface.to_owned(),
            announcements: 1,
        })
    }

    /// The same address announced `n` times, a second apart.
    ///
    /// # Errors
    ///
    /// [`VipError::Announcements`] unless `n` is 1..=10.
    pub fn with_announcements(mut self, n: u32) -> Result<VirtualIp, VipError> {
        if !(1..=10).contains(&n) {
            return Err(VipError::Announcements(n));
        }
        self.announcements = n;
        Ok(self)
    }

    /// The address.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// How many gratuitous ARP requests an assignment sends.
    pub fn announcements(&self) -> u32 {
        self.announcements
    }

    /// The command that adds the address and announces it, for the CSI of `component` (its
    /// DN) assigned active on this node.
    pub fn assign_active(&self, component: &str, timeout: Duration) -> ClcCommand {
        let text = format!(
            "ip address replace {self} dev {dev} && arping -q -U -c {n} -I {dev} {addr}",
            dev = self.interface,
            n = self.announcements,
            addr = self.address,
        );
        ClcCommand::new(component, CommandKind::Instantiate, text, timeout)
    }

    /// The command that deletes the address (no error if it is not there), for the removal of
    /// the CSI of `component` (or its cleanup).
    pub fn remove(&self, component: &str, timeout: Duration) -> ClcCommand {
        // `ip address del` fails for an absent address: ask first, so that only a real
        // failure to delete fails the command.
        let text = format!(
            "if ip -o address show dev {dev} to {self} | grep -q .; then ip address del {self} dev {dev}; fi",
            dev = self.interface,
        );
        ClcCommand::new(component, CommandKind::Terminate, text, timeout)
    }
}

impl fmt::Display for VirtualIp {
    /// `address/prefix`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_prefix_and_interface() {
        let a = Ipv4Addr::new(10, 0, 0, 9);
        assert_eq!(VirtualIp::new(a, 0, "eth0"), Err(VipError::Prefix(0)));
        assert_eq!(VirtualIp::new(a, 33, "eth0"), Err(VipError::Prefix(33)));
        assert!(matches!(
            VirtualIp::new(a, 24, "eth0; rm -rf /"),
            Err(VipError::Interface(_))
        ));
        assert!(matches!(
            VirtualIp::new(a, 24, "a-very-long-interface"),
            Err(VipError::Interface(_))
        ));
        assert!(matches!(
            VirtualIp::new(a, 24, "eth0").unwrap().with_announcements(0),
            Err(VipError::Announcements(0))
        ));
    }

    #[test]
    fn commands_name_address_interface_and_count() {
        let v = VirtualIp::new(Ipv4Addr::new(10, 1, 2, 3), 24, "eth0")
            .unwrap()
            .with_announcements(2)
            .unwrap();
        let add = v.assign_active("safComp=vip", Duration::from_secs(5));
        assert_eq!(
            add.command,
            "ip address replace 10.1.2.3/24 dev eth0 && arping -q -U -c 2 -I eth0 10.1.2.3"
        );
        assert_eq!(add.component, "safComp=vip");
        let del = v.remove("safComp=vip", Duration::from_secs(5));
        assert!(del.command.contains("ip address del 10.1.2.3/24 dev eth0"));
    }
}
