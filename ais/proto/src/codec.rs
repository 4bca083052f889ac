//! Little-endian byte writer and bounds-checked reader shared by the IPC protocol and the
//! executive's Totem messages. Every read checks the remaining length; nothing panics on
//! malformed input.

use bytes::Bytes;

/// Why a packet or message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("truncated: {field} needs {need} more bytes, {have} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes it needed.
        need: usize,
        /// Bytes that were left.
        have: usize,
    },
    /// A tag, kind or enumeration value this version does not know.
    #[error("unknown {what} {value}")]
    Unknown {
        /// What was being decoded.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// The input speaks a version of its protocol this build does not.
    #[error("{what} version {got}; this build speaks version {supported}")]
    Version {
        /// Which protocol.
        what: &'static str,
        /// The version found.
        got: u8,
        /// The version this build speaks.
        supported: u8,
    },
    /// An operation the service does not have (a newer client, or a request meant for another
    /// service): the executive answers `SA_AIS_ERR_BAD_OPERATION` and keeps the connection.
    #[error("unknown {service} operation {op}")]
    UnknownOp {
        /// The service whose operations were searched.
        service: &'static str,
        /// The operation code found.
        op: u16,
    },
    /// A field is out of its allowed range.
    #[error("invalid {field}: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        why: &'static str,
    },
    /// Bytes were left after the last field.
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// Appends little-endian fields to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Writer {
        Writer {
            buf: Vec::with_capacity(capacity),
        }
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Two bytes.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Four bytes.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Eight bytes.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A byte string with a u16 length (at most 65535 bytes; callers check their limits first).
    pub fn short_bytes(&mut self, v: &[u8]) -> &mut Self {
        let len = u16::try_from(v.len()).unwrap_or(u16::MAX);
        self.u16(len);
        self.buf.extend_from_slice(&v[..usize::from(len)]);
        self
    }

    /// A byte string with a u32 length (callers check their limits first).
    pub fn long_bytes(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.buf.extend_from_slice(&v[..len as usize]);
        self
    }

    /// A count of list entries (u32).
    pub fn count(&mut self, n: usize) -> &mut Self {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Raw bytes, no length (the last field of a packet).
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// The bytes written.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Nothing written yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Reads little-endian fields from a [`Bytes`], so byte strings and the tail come out as
/// zero-copy slices.
#[derive(Debug, Clone)]
pub struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    /// Reads `buf` from its start.
    pub fn new(buf: Bytes) -> Reader {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&[u8], DecodeError> {
        let have = self.buf.len() - self.pos;
        if have < n {
            return Err(DecodeError::Truncated {
                field,
                need: n,
                have,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// One byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    /// One byte that must be 0 (false) or 1 (true).
    ///
    /// # Errors
    /// [`DecodeError::Invalid`] for any other value.
    pub fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Invalid {
                field,
                why: "not 0 or 1",
            }),
        }
    }

    /// Two bytes.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, field)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// Four bytes.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Eight bytes.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A byte string with a u16 length, as a zero-copy slice.
    pub fn short_bytes(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let len = usize::from(self.u16(field)?);
        self.take(len, field)?;
        Ok(self.buf.slice(self.pos - len..self.pos))
    }

    /// A byte string with a u32 length, as a zero-copy slice.
    pub fn long_bytes(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u32(field)? as usize;
        self.take(len, field)?;
        Ok(self.buf.slice(self.pos - len..self.pos))
    }

    /// The next `len` bytes as a zero-copy slice (the caller checked [`Reader::remaining`];
    /// fewer are returned if fewer are left).
    pub fn bytes(&mut self, len: usize) -> Bytes {
        let end = (self.pos + len).min(self.buf.len());
        let out = self.buf.slice(self.pos..end);
        self.pos = end;
        out
    }

    /// A list count, refused when even `min_entry` bytes per entry cannot fit in what is left
    /// (so a forged count cannot make the caller reserve memory).
    pub fn count(&mut self, field: &'static str, min_entry: usize) -> Result<usize, DecodeError> {
        let n = self.u32(field)? as usize;
        if n.saturating_mul(min_entry.max(1)) > self.remaining() {
            return Err(DecodeError::Invalid {
                field,
                why: "count larger than the packet",
            });
        }
        Ok(n)
    }

    /// Everything left, as a zero-copy slice.
    pub fn rest(&mut self) -> Bytes {
        let rest = self.buf.slice(self.pos..);
        self.pos = self.buf.len();
        rest
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Fails unless every byte was read.
    pub fn end(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

/// Reads little-endian fields from a borrowed slice, with the same checks and errors as
/// [`Reader`]; byte strings and the tail come out borrowed, so reading touches no reference
/// count (the executive's per-delivery path).
#[derive(Debug, Clone)]
pub struct SliceReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> SliceReader<'a> {
    /// Reads `buf` from its start.
    pub fn new(buf: &'a [u8]) -> SliceReader<'a> {
        SliceReader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let have = self.buf.len() - self.pos;
        if have < n {
            return Err(DecodeError::Truncated {
                field,
                need: n,
                have,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// One byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    /// Two bytes.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, field)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// Four bytes.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A byte string with a u16 length, borrowed.
    pub fn short_bytes(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = usize::from(self.u16(field)?);
        self.take(len, field)
    }

    /// Everything left, borrowed.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        self.pos = self.buf.len();
        rest
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut w = Writer::default();
        w.u8(1)
            .u16(2)
            .u32(3)
            .u64(4)
            .short_bytes(b"abc")
            .raw(b"tail");
        let bytes = Bytes::from(w.finish());
        let mut r = Reader::new(bytes.clone());
        assert_eq!(r.u8("a").unwrap(), 1);
        assert_eq!(r.u16("b").unwrap(), 2);
        assert_eq!(r.u32("c").unwrap(), 3);
        assert_eq!(r.u64("d").unwrap(), 4);
        assert_eq!(&r.short_bytes("e").unwrap()[..], b"abc");
        assert_eq!(&r.rest()[..], b"tail");
        r.end().unwrap();
        // Every truncation of the fixed fields is an error, never a panic.
        for cut in 0..bytes.len() - 4 {
            let mut r = Reader::new(bytes.slice(..cut));
            let ok = r.u8("a").is_ok()
                && r.u16("b").is_ok()
                && r.u32("c").is_ok()
                && r.u64("d").is_ok()
                && r.short_bytes("e").is_ok();
            assert!(!ok, "cut at {cut} decoded");
        }
    }

    #[test]
    fn forged_count_is_refused() {
        let mut w = Writer::default();
        w.u32(u32::MAX).raw(&[0; 16]);
        let mut r = Reader::new(Bytes::from(w.finish()));
        assert!(matches!(
            r.count("n", 4),
            Err(DecodeError::Invalid { field: "n", .. })
        ));
    }

    #[test]
    fn the_slice_reader_reads_and_fails_as_the_reader() {
        let mut w = Writer::default();
        w.u8(1).u16(2).u32(3).short_bytes(b"abc").raw(b"tail");
        let bytes = Bytes::from(w.finish());
        for cut in 0..=bytes.len() {
            let owned = bytes.slice(..cut);
            let mut r = Reader::new(owned.clone());
            let mut s = SliceReader::new(&owned);
            assert_eq!(r.u8("a"), s.u8("a"), "cut at {cut}");
            assert_eq!(r.u16("b"), s.u16("b"), "cut at {cut}");
            assert_eq!(r.u32("c"), s.u32("c"), "cut at {cut}");
            assert_eq!(
                r.short_bytes("e").map(|b| b.to_vec()),
                s.short_bytes("e").map(<[u8]>::to_vec),
                "cut at {cut}"
            );
            assert_eq!(r.remaining(), s.remaining(), "cut at {cut}");
            assert_eq!(&r.rest()[..], s.rest(), "cut at {cut}");
            assert_eq!(s.remaining(), 0);
        }
    }
}
