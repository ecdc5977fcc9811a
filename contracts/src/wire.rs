//! Confluent wire format: magic byte 0, the schema id as 4 bytes big-endian, then the Avro datum.

/// The first byte of every framed message.
pub const MAGIC: u8 = 0;
/// Bytes before the datum.
pub const HEADER_LEN: usize = 5;

/// A message that is not in the Confluent wire format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer than 5 bytes: no room for the header.
    #[error("message of {len} bytes is too short for the 5-byte Confluent header")]
    TooShort {
        /// Length of the message.
        len: usize,
    },
    /// The first byte is not [`MAGIC`].
    #[error("message starts with byte {found:#04x}, not the Confluent magic byte 0")]
    BadMagic {
        /// The byte found.
        found: u8,
    },
}

/// Appends the header for `schema_id` and then `datum`.
pub fn frame(schema_id: u32, datum: &[u8], out: &mut Vec<u8>) {
    out.reserve(HEADER_LEN + datum.len());
    out.push(MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(datum);
}

/// Splits a framed message into its schema id and datum.
pub fn unframe(bytes: &[u8]) -> Result<(u32, &[u8]), WireError> {
    if bytes.len() < HEADER_LEN {
        return Err(WireError::TooShort { len: bytes.len() });
    }
    if bytes[0] != MAGIC {
        return Err(WireError::BadMagic { found: bytes[0] });
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header is byte-exact and a frame unframes to what went in.
    #[test]
    fn frame_and_unframe() {
        let mut out = vec![];
        frame(0x0102_0304, b"datum", &mut out);
        assert_eq!(out, b"\x00\x01\x02\x03\x04datum");
        assert_eq!(unframe(&out), Ok((0x0102_0304, &b"datum"[..])));
        assert_eq!(unframe(b"\x00\x00\x00\x00\x07"), Ok((7, &b""[..])));
    }

    /// Short and foreign messages are refused with what was wrong.
    #[test]
    fn refuses_what_is_not_framed() {
        assert_eq!(unframe(b"\x00\x01"), Err(WireError::TooShort { len: 2 }));
        assert_eq!(
            unframe(b"{\"json\":1}"),
            Err(WireError::BadMagic { found: b'{' })
        );
    }
}
