//! IP takeover (CGL CAF.2.2): the built-in component type for a virtual IPv4 address.
//!
//! A [`VirtualIp`] is an address with its prefix length on an interface of this node. When its
//! CSI is assigned active here, [`VirtualIp::assign_active`] adds the address to the interface
//! (over rtnetlink, as `ip address replace` does, so a repeated assignment is not an error;
//! no process is started) and then announces it with
//! gratuitous ARP ([`dataplane::garp`]: unsolicited ARP requests whose sender and target are
//! the address, sent from a raw `AF_PACKET` socket, so that every neighbour that has the
//! address in its cache points it at this node's MAC). When the assignment is removed, or the
//! component is cleaned up, [`VirtualIp::remove`] deletes the address; an address already
//! absent is not an error, so a cleanup after a crash can always run it.
//!
//! Both calls are a few system calls (well under a millisecond) but do block on the kernel:
//! call them off the executive's thread. They need `CAP_NET_ADMIN` and `CAP_NET_RAW` (the
//! executive runs as root). [`VirtualIp::is_assigned`] asks `ip` (for checks, not on the
//! failover path).

use std::fmt;
use std::net::Ipv4Addr;
use std::process::Command;

use nix::errno::Errno;
use tracing::info;

use super::netlink::{self, Op};

/// Why a virtual address is refused or an operation on it failed.
#[derive(Debug, thiserror::Error)]
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
    /// The kernel refused to add or delete the address (rtnetlink), or the interface does not
    /// exist (`ENODEV`).
    #[error("{operation} {address} on {interface}: {errno}")]
    Netlink {
        /// `replace` or `delete`.
        operation: &'static str,
        /// `address/prefix`.
        address: String,
        /// The interface.
        interface: String,
        /// The kernel's answer.
        errno: Errno,
    },
    /// An `ip` command failed.
    #[error("`{command}` failed: {stderr}")]
    Ip {
        /// The command line.
        command: String,
        /// Its standard error (or why it did not start).
        stderr: String,
    },
    /// The gratuitous ARP could not be sent.
    #[error("announcing {address} on {interface}: {source}")]
    Announce {
        /// The address.
        address: Ipv4Addr,
        /// The interface.
        interface: String,
        /// Why.
        source: std::io::Error,
    },
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
    /// The address `address/prefix` on `interface`, announced with [`Self::announcements`]
    /// gratuitous ARP requests (default 2).
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
            announcements: 2,
        })
    }

    /// The same address announced `n` times.
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

    /// The interface.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// How many gratuitous ARP requests an assignment sends.
    pub fn announcements(&self) -> u32 {
        self.announcements
    }

    /// Adds the address to the interface and announces it; returns the MAC it was announced
    /// at.
    ///
    /// # Errors
    ///
    /// [`VipError::Netlink`] if the kernel refuses the address, [`VipError::Announce`] if the
    /// announcement does (the address stays added: remove it to undo).
    pub fn assign_active(&self) -> Result<[u8; 6], VipError> {
        netlink::change(Op::Replace, &self.interface, self.address, self.prefix).map_err(|e| {
            VipError::Netlink {
                operation: "replace",
                address: self.to_string(),
                interface: self.interface.clone(),
                errno: e,
            }
        })?;
        let mac = dataplane::garp::announce(&self.interface, self.address, self.announcements)
            .map_err(|source| VipError::Announce {
                address: self.address,
                interface: self.interface.clone(),
                source,
            })?;
        info!(address = %self, interface = %self.interface, mac = %Mac(mac), "virtual address assigned and announced");
        Ok(mac)
    }

    /// Deletes the address from the interface; whether it was there.
    ///
    /// # Errors
    ///
    /// [`VipError::Netlink`] if the address is there and cannot be deleted, or the interface
    /// does not exist.
    pub fn remove(&self) -> Result<bool, VipError> {
        match netlink::change(Op::Delete, &self.interface, self.address, self.prefix) {
            Ok(()) => {
                info!(address = %self, interface = %self.interface, "virtual address removed");
                Ok(true)
            }
            Err(Errno::EADDRNOTAVAIL) => Ok(false),
            Err(e) => Err(VipError::Netlink {
                operation: "delete",
                address: self.to_string(),
                interface: self.interface.clone(),
                errno: e,
            }),
        }
    }

    /// Whether the interface has the address.
    ///
    /// # Errors
    ///
    /// [`VipError::Ip`] if `ip address show` fails (no such interface).
    pub fn is_assigned(&self) -> Result<bool, VipError> {
        let out = ip(&["-o", "address", "show", "dev", &self.interface])?;
        let want = format!(" inet {self} ");
        Ok(out.lines().any(|l| l.contains(&want)))
    }
}

impl fmt::Display for VirtualIp {
    /// `address/prefix`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

struct Mac([u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Runs `ip ARGS`; its standard output, or the error with its standard error.
fn ip(args: &[&str]) -> Result<String, VipError> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| VipError::Ip {
            command: command.clone(),
            stderr: e.to_string(),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(VipError::Ip {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_prefix_and_interface() {
        let a = Ipv4Addr::new(10, 0, 0, 9);
        assert!(matches!(
            VirtualIp::new(a, 0, "eth0"),
            Err(VipError::Prefix(0))
        ));
        assert!(matches!(
            VirtualIp::new(a, 33, "eth0"),
            Err(VipError::Prefix(33))
        ));
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
        let v = VirtualIp::new(a, 24, "eth0").unwrap();
        assert_eq!(v.to_string(), "10.0.0.9/24");
        assert_eq!(v.announcements(), 2);
    }

    #[test]
    fn an_unknown_interface_is_an_ip_error() {
        let v = VirtualIp::new(Ipv4Addr::new(10, 0, 0, 9), 24, "nosuchif0").unwrap();
        assert!(matches!(v.is_assigned(), Err(VipError::Ip { .. })));
        assert!(matches!(
            v.remove(),
            Err(VipError::Netlink {
                errno: Errno::ENODEV,
                ..
            })
        ));
        assert!(matches!(
            v.assign_active(),
            Err(VipError::Netlink {
                errno: Errno::ENODEV,
                ..
            })
        ));
    }
}
