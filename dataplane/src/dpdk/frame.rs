//! The Ethernet framing of the DPDK backend: pure byte handling, no `unsafe`.
//!
//! ```text
//! 0      6      12     14   15    16      18          22        26
//! | dst  | src  | type | ver | flags | len | sender id | dest id | payload (len bytes) ...
//!   MAC    MAC   0x88B5  1            u16 BE  u32 BE      u32 BE
//! ```
//!
//! - `type` is 0x88B5, the IEEE "local experimental" ethertype.
//! - `ver` is [`VERSION`]; frames of another version are dropped.
//! - `flags` bit [`FLAG_UNICAST`]: the frame is for the node in `dest id` only. Without it the
//!   frame is a ring frame and `dest id` is 0.
//! - `len` is the payload length. Ethernet pads frames shorter than 60 bytes, so the length
//!   on the wire says nothing about the payload's; a frame shorter than `26 + len` was cut.
//!   (The design sketch had a reserved `u16` here; the padding makes a length necessary.)
//! - The header is always [`HEADER_LEN`] = 14 + 12 bytes: the destination id is always
//!   present, which keeps parsing branch-free (the sketch's optional 4-byte extension was
//!   not worth its second layout).

/// The IEEE 802 local experimental ethertype 1.
pub(crate) const ETHERTYPE: u16 = 0x88B5;
/// The shim header version this code writes and accepts.
pub(crate) const VERSION: u8 = 1;
/// `flags`: the frame is addressed to one node (`dest id`), not to the ring.
pub(crate) const FLAG_UNICAST: u8 = 0x01;
/// Ethernet header length (no VLAN tag).
pub(crate) const ETH_LEN: usize = 14;
/// The shim header after the Ethernet header.
pub(crate) const SHIM_LEN: usize = 12;
/// Everything before the payload.
pub(crate) const HEADER_LEN: usize = ETH_LEN + SHIM_LEN;
/// The locally administered multicast MAC every ring frame (and every node frame whose
/// destination MAC is not learned yet) goes to: `03:4f:41:49:53:00`, "OAIS".
pub(crate) const RING_MAC: [u8; 6] = [0x03, 0x4f, 0x41, 0x49, 0x53, 0x00];

/// The fields of a header to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) dst_mac: [u8; 6],
    pub(crate) src_mac: [u8; 6],
    pub(crate) sender: u32,
    /// `Some(node)`: a node frame; `None`: a ring frame.
    pub(crate) dest: Option<u32>,
    pub(crate) len: u16,
}

impl Header {
    /// Writes the header into `buf[..HEADER_LEN]`.
    pub(crate) fn emit(&self, buf: &mut [u8]) {
        let buf = &mut buf[..HEADER_LEN];
        buf[0..6].copy_from_slice(&self.dst_mac);
        buf[6..12].copy_from_slice(&self.src_mac);
        buf[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
        buf[14] = VERSION;
        buf[15] = if self.dest.is_some() { FLAG_UNICAST } else { 0 };
        buf[16..18].copy_from_slice(&self.len.to_be_bytes());
        buf[18..22].copy_from_slice(&self.sender.to_be_bytes());
        buf[22..26].copy_from_slice(&self.dest.unwrap_or(0).to_be_bytes());
    }
}

/// A received frame, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    pub(crate) src_mac: [u8; 6],
    pub(crate) sender: u32,
    pub(crate) dest: Option<u32>,
    pub(crate) payload: &'a [u8],
}

/// Why a received frame was not parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Not our ethertype (or too short for an Ethernet header).
    Foreign,
    /// Our ethertype, another shim version.
    Version,
    /// Shorter than its header says.
    Short,
}

/// Parses one received frame.
pub(crate) fn parse(frame: &[u8]) -> Result<Parsed<'_>, Reject> {
    if frame.len() < ETH_LEN || frame[12..14] != ETHERTYPE.to_be_bytes() {
        return Err(Reject::Foreign);
    }
    if frame.len() < HEADER_LEN {
        return Err(Reject::Short);
    }
    if frame[14] != VERSION {
        return Err(Reject::Version);
    }
    let be32 =
        |at: usize| u32::from_be_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]]);
    let len = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let payload = frame
        .get(HEADER_LEN..HEADER_LEN + len)
        .ok_or(Reject::Short)?;
    let mut src_mac = [0; 6];
    src_mac.copy_from_slice(&frame[6..12]);
    Ok(Parsed {
        src_mac,
        sender: be32(18),
        dest: (frame[15] & FLAG_UNICAST != 0).then(|| be32(22)),
        payload,
    })
}

/// Whether a MAC address is a group (multicast/broadcast) address.
pub(crate) fn is_group(mac: [u8; 6]) -> bool {
    mac[0] & 1 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dest: Option<u32>, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0; HEADER_LEN + payload.len()];
        Header {
            dst_mac: RING_MAC,
            src_mac: [2, 0, 0, 0, 0, 1],
            sender: 7,
            dest,
            len: u16::try_from(payload.len()).unwrap(),
        }
        .emit(&mut buf);
        buf[HEADER_LEN..].copy_from_slice(payload);
        buf
    }

    #[test]
    fn header_round_trips_and_padding_is_ignored() {
        let mut f = frame(Some(9), b"abc");
        f.resize(60, 0); // Ethernet minimum-size padding
        let p = parse(&f).unwrap();
        assert_eq!(p.sender, 7);
        assert_eq!(p.dest, Some(9));
        assert_eq!(p.payload, b"abc");
        assert_eq!(p.src_mac, [2, 0, 0, 0, 0, 1]);
        let empty = frame(None, b"");
        let p = parse(&empty).unwrap();
        assert_eq!((p.dest, p.payload), (None, &b""[..]));
    }

    #[test]
    fn bad_frames_are_rejected() {
        let mut f = frame(None, b"hello");
        assert_eq!(parse(&f[..10]), Err(Reject::Foreign));
        assert_eq!(parse(&f[..HEADER_LEN + 2]), Err(Reject::Short));
        f[14] = 2;
        assert_eq!(parse(&f), Err(Reject::Version));
        f[14] = VERSION;
        f[12] = 0x08;
        assert_eq!(parse(&f), Err(Reject::Foreign));
    }

    #[test]
    fn the_ring_mac_is_a_local_multicast_address() {
        assert!(is_group(RING_MAC));
        assert_eq!(RING_MAC[0] & 2, 2, "locally administered");
        assert!(!is_group([2, 0, 0, 0, 0, 1]));
    }
}
