//! The 8-byte header common to every Totem frame.

use core::fmt;

use super::{Error, FrameType, HEADER_LEN, MAGIC, PROTOCOL_VERSION, Result};
use super::{get_u16, get_u32, put_u16, put_u32};
use crate::NodeId;

mod field {
    use core::ops::Range;

    pub(super) const MAGIC: Range<usize> = 0..2;
    pub(super) const VERSION: usize = 2;
    pub(super) const TYPE: usize = 3;
    pub(super) const SENDER: Range<usize> = 4..8;
}

/// A view of the common header at the start of a frame buffer.
///
/// Layout: `0..2` magic ([`MAGIC`]), `2` version ([`PROTOCOL_VERSION`]), `3` frame type,
/// `4..8` sender node id.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Header<T> {
        Header { buffer }
    }

    /// Wraps `buffer` and checks its length, magic and version. The frame type is not checked:
    /// any value reads as a [`FrameType`].
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`] if shorter than [`HEADER_LEN`], [`Error::BadMagic`],
    /// [`Error::UnsupportedVersion`].
    pub fn new_checked(buffer: T) -> Result<Header<T>> {
        let header = Self::new_unchecked(buffer);
        header.check()?;
        Ok(header)
    }

    /// Checks that the buffer holds a whole header.
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`] if shorter than [`HEADER_LEN`].
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Checks the length, magic and version (what [`Header::new_checked`] checks).
    ///
    /// # Errors
    ///
    /// As [`Header::new_checked`].
    pub fn check(&self) -> Result<()> {
        self.check_len()?;
        if self.magic() != MAGIC {
            return Err(Error::BadMagic);
        }
        match self.version() {
            PROTOCOL_VERSION => Ok(()),
            other => Err(Error::UnsupportedVersion(other)),
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The magic field.
    ///
    /// # Panics
    ///
    /// On an unchecked buffer shorter than [`HEADER_LEN`] (likewise for every getter).
    pub fn magic(&self) -> u16 {
        get_u16(&self.buffer.as_ref()[field::MAGIC])
    }

    /// The protocol version field.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// The frame type field.
    pub fn frame_type(&self) -> FrameType {
        FrameType::from(self.buffer.as_ref()[field::TYPE])
    }

    /// The sending node.
    pub fn sender(&self) -> NodeId {
        NodeId(get_u32(&self.buffer.as_ref()[field::SENDER]))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    /// Sets the magic field.
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than [`HEADER_LEN`] (likewise for every setter).
    pub fn set_magic(&mut self, value: u16) {
        put_u16(&mut self.buffer.as_mut()[field::MAGIC], value);
    }

    /// Sets the protocol version field.
    pub fn set_version(&mut self, value: u8) {
        self.buffer.as_mut()[field::VERSION] = value;
    }

    /// Sets the frame type field.
    pub fn set_frame_type(&mut self, value: FrameType) {
        self.buffer.as_mut()[field::TYPE] = value.into();
    }

    /// Sets the sending node.
    pub fn set_sender(&mut self, value: NodeId) {
        put_u32(&mut self.buffer.as_mut()[field::SENDER], value.0);
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Header<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match HeaderRepr::parse(self) {
            Ok(repr) => repr.fmt(f),
            Err(err) => write!(f, "Header ({err})"),
        }
    }
}

/// The common header as plain values. Magic and version are implied: [`HeaderRepr::emit`]
/// writes [`MAGIC`] and [`PROTOCOL_VERSION`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeaderRepr {
    /// The frame type.
    pub frame_type: FrameType,
    /// The sending node.
    pub sender: NodeId,
}

impl HeaderRepr {
    /// Checks `header` and reads it.
    ///
    /// # Errors
    ///
    /// As [`Header::new_checked`].
    pub fn parse<T: AsRef<[u8]>>(header: &Header<T>) -> Result<HeaderRepr> {
        header.check()?;
        Ok(HeaderRepr {
            frame_type: header.frame_type(),
            sender: header.sender(),
        })
    }

    /// The number of bytes [`HeaderRepr::emit`] writes: [`HEADER_LEN`].
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes magic, version, frame type and sender.
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, header: &mut Header<T>) {
        header.set_magic(MAGIC);
        header.set_version(PROTOCOL_VERSION);
        header.set_frame_type(self.frame_type);
        header.set_sender(self.sender);
    }
}

impl fmt::Display for HeaderRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} from {}", self.frame_type, self.sender)
    }
}
