//! The agent instance uid: 16 bytes on the wire, 32 lowercase hex digits in the REST API.

use std::fmt;

/// A 16-byte OpAMP agent instance uid.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceUid(pub [u8; 16]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UidError {
    #[error("instance_uid must be 16 bytes, got {0}")]
    Length(usize),
    #[error("instance uid must be 32 hex digits (dashes allowed)")]
    Text,
}

impl InstanceUid {
    /// A fresh UUID v7 (time ordered, as the spec recommends).
    pub fn new_v7() -> Self {
        Self(*uuid::Uuid::now_v7().as_bytes())
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, UidError> {
        let arr: [u8; 16] = bytes
            .try_into()
            .map_err(|_| UidError::Length(bytes.len()))?;
        Ok(Self(arr))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses the REST form (32 hex digits); hyphenated UUID text is accepted too.
    pub fn parse(text: &str) -> Result<Self, UidError> {
        let digits: String = text.chars().filter(|c| *c != '-').collect();
        if digits.len() != 32 {
            return Err(UidError::Text);
        }
        let mut out = [0u8; 16];
        for (i, chunk) in digits.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(chunk).map_err(|_| UidError::Text)?;
            out[i] = u8::from_str_radix(s, 16).map_err(|_| UidError::Text)?;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for InstanceUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for InstanceUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstanceUid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        let uid = InstanceUid::new_v7();
        assert_eq!(InstanceUid::parse(&uid.to_string()).unwrap(), uid);
        let hyphenated = uuid::Uuid::from_bytes(uid.0).hyphenated().to_string();
        assert_eq!(InstanceUid::parse(&hyphenated).unwrap(), uid);
        assert_eq!(InstanceUid::parse("xyz"), Err(UidError::Text));
        assert_eq!(InstanceUid::parse(&"g".repeat(32)), Err(UidError::Text));
        assert_eq!(InstanceUid::from_bytes(&[1; 15]), Err(UidError::Length(15)));
    }
}
