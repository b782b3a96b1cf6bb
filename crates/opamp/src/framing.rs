//! The OpAMP WebSocket message format: a base-128 varint header (currently always 0) followed
//! by one protobuf message, with the size limit applied to the whole WebSocket message.
//!
//! Decoding never panics: truncated or over-long varints, a non-zero header, an oversize
//! message and undecodable protobuf each come back as a [`FrameError`].

use prost::Message;

/// Spec-recommended maximum message size (64 MiB), counted on the whole WebSocket message
/// after decompression. Servers may configure a smaller one.
pub const MAX_MESSAGE_BYTES_DEFAULT: usize = 64 << 20;

/// The longest valid varint encoding of a u64.
const MAX_VARINT_LEN: usize = 10;

/// Why an OpAMP message could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("empty websocket message: the varint header is missing")]
    Empty,
    #[error("malformed varint header: {0}")]
    BadHeader(&'static str),
    #[error("unsupported websocket message header {0} (only 0 is defined)")]
    NonZeroHeader(u64),
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("decoding protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

/// Reads the varint header at the start of `frame`; returns its value and its length in bytes.
pub fn read_header(frame: &[u8]) -> Result<(u64, usize), FrameError> {
    if frame.is_empty() {
        return Err(FrameError::Empty);
    }
    let mut value: u64 = 0;
    for (i, &byte) in frame.iter().take(MAX_VARINT_LEN).enumerate() {
        let low = u64::from(byte & 0x7f);
        // The tenth byte may carry only the top bit of a u64.
        if i == MAX_VARINT_LEN - 1 && low > 1 {
            return Err(FrameError::BadHeader("varint overflows 64 bits"));
        }
        value |= low << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if frame.len() < MAX_VARINT_LEN {
        Err(FrameError::BadHeader("truncated varint"))
    } else {
        Err(FrameError::BadHeader("varint longer than 10 bytes"))
    }
}

/// Splits a WebSocket message into its protobuf payload, checking the size limit and that the
/// header is 0.
pub fn payload(frame: &[u8], limit: usize) -> Result<&[u8], FrameError> {
    if frame.len() > limit {
        return Err(FrameError::TooLarge {
            size: frame.len(),
            limit,
        });
    }
    let (header, len) = read_header(frame)?;
    if header != 0 {
        return Err(FrameError::NonZeroHeader(header));
    }
    Ok(&frame[len..])
}

/// Decodes one WebSocket message into `M` (an `AgentToServer` on the server, a
/// `ServerToAgent` on an agent).
pub fn decode<M: Message + Default>(frame: &[u8], limit: usize) -> Result<M, FrameError> {
    Ok(M::decode(payload(frame, limit)?)?)
}

/// Decodes a plain-HTTP body (no header: the transport frames it) into `M`.
pub fn decode_http<M: Message + Default>(body: &[u8], limit: usize) -> Result<M, FrameError> {
    if body.len() > limit {
        return Err(FrameError::TooLarge {
            size: body.len(),
            limit,
        });
    }
    Ok(M::decode(body)?)
}

/// Encodes `msg` as one WebSocket message: header 0 (one byte) then the protobuf bytes.
pub fn encode<M: Message>(msg: &M) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + msg.encoded_len());
    out.push(0);
    // Writing into a Vec only fails when capacity is short; we reserved exactly enough.
    msg.encode(&mut out)
        .expect("a Vec with reserved capacity accepts the whole message");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::AgentToServer;

    #[test]
    fn header_zero_is_one_byte() {
        let msg = AgentToServer {
            sequence_num: 7,
            ..Default::default()
        };
        let frame = encode(&msg);
        assert_eq!(frame[0], 0);
        assert_eq!(decode::<AgentToServer>(&frame, 1024).unwrap(), msg);
    }

    #[test]
    fn empty_message_after_header_is_valid() {
        assert_eq!(
            decode::<AgentToServer>(&[0], 16).unwrap(),
            AgentToServer::default()
        );
    }

    #[test]
    fn multi_byte_zero_header_is_accepted() {
        // 0 written with a redundant continuation byte is still the value 0.
        assert_eq!(read_header(&[0x80, 0x00]).unwrap(), (0, 2));
        assert_eq!(payload(&[0x80, 0x00, 0x10], 16).unwrap(), &[0x10]);
    }

    #[test]
    fn rejects_bad_frames() {
        assert_eq!(payload(&[], 16), Err(FrameError::Empty));
        assert_eq!(payload(&[0x01], 16), Err(FrameError::NonZeroHeader(1)));
        assert_eq!(
            payload(&[0x80, 0x01, 0x00], 16),
            Err(FrameError::NonZeroHeader(128))
        );
        assert_eq!(
            payload(&[0x80, 0x80], 16),
            Err(FrameError::BadHeader("truncated varint"))
        );
        assert_eq!(
            payload(&[0xff; 11], 16),
            Err(FrameError::BadHeader("varint overflows 64 bits"))
        );
        assert_eq!(
            payload(&[0; 17], 16),
            Err(FrameError::TooLarge {
                size: 17,
                limit: 16
            })
        );
        // Field 1 (bytes) claiming 100 bytes with none following.
        assert!(matches!(
            decode::<AgentToServer>(&[0x00, 0x0a, 0x64], 16),
            Err(FrameError::Protobuf(_))
        ));
    }
}
