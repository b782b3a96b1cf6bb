//! The server key (256 bits in `server_secrets`, shared by every replica) and the sealing of
//! secret values at rest with a key derived from it: secrets and header values go into a
//! `secrets` column of their own, sealed, never into the `body` column.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// What a sealed value starts with.
pub const SEALED_PREFIX: &str = "v1:";
const SEAL_AAD: &[u8] = b"otaas secret values";

/// The server's 256-bit key: plain bytes to the store, which seals secret values at rest with
/// a key derived from it; the layers above derive endpoint ingest tokens from it.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerKey([u8; 32]);

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("ServerKey(..)")
    }
}

impl ServerKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    pub(crate) fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub(crate) fn from_hex(s: &str) -> Option<Self> {
        let v = hex::decode(s).ok()?;
        Some(Self(v.try_into().ok()?))
    }

    /// The key secret values are sealed with at rest: derived from this key, so every replica
    /// has it, and distinct from the one ingest tokens come from.
    fn sealing_key(&self) -> ring::aead::LessSafeKey {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key size");
        mac.update(b"otaas:secrets-at-rest:v1");
        let bytes = mac.finalize().into_bytes();
        let key = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, &bytes)
            .expect("32 bytes is a ChaCha20-Poly1305 key");
        ring::aead::LessSafeKey::new(key)
    }

    /// `plaintext` sealed (ChaCha20-Poly1305, random nonce) as `v1:<base64url of nonce,
    /// ciphertext and tag>`.
    pub fn seal(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; ring::aead::NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut buf = plaintext.as_bytes().to_vec();
        self.sealing_key()
            .seal_in_place_append_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::from(SEAL_AAD),
                &mut buf,
            )
            .expect("sealing fails only for absurd lengths");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// The plaintext of a [`ServerKey::seal`] result; `None` when it is not one, or was sealed
    /// with another key or altered.
    pub fn open(&self, sealed: &str) -> Option<String> {
        let raw = URL_SAFE_NO_PAD
            .decode(sealed.strip_prefix(SEALED_PREFIX)?)
            .ok()?;
        if raw.len() < ring::aead::NONCE_LEN {
            return None;
        }
        let (nonce, body) = raw.split_at(ring::aead::NONCE_LEN);
        let mut buf = body.to_vec();
        let plain = self
            .sealing_key()
            .open_in_place(
                ring::aead::Nonce::try_assume_unique_for_key(nonce).ok()?,
                ring::aead::Aad::from(SEAL_AAD),
                &mut buf,
            )
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

/// Splits a spec's JSON into what goes into the `body` column and what into the `secrets`
/// column: the `secrets` map and every destination's `headers` (by destination name).
pub(crate) fn split_secrets(mut spec: serde_json::Value) -> (serde_json::Value, serde_json::Value) {
    let mut apart = serde_json::Map::new();
    let Some(obj) = spec.as_object_mut() else {
        return (spec, serde_json::Value::Object(apart));
    };
    if let Some(s) = obj.remove("secrets") {
        apart.insert("secrets".into(), s);
    }
    if let Some(serde_json::Value::Array(dests)) = obj.get_mut("destinations") {
        let mut headers = serde_json::Map::new();
        for d in dests {
            let Some(d) = d.as_object_mut() else { continue };
            let name = d
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_string();
            if let Some(h) = d.remove("headers") {
                headers.insert(name, h);
            }
        }
        if !headers.is_empty() {
            apart.insert("headers".into(), serde_json::Value::Object(headers));
        }
    }
    (spec, serde_json::Value::Object(apart))
}

/// The inverse of [`split_secrets`]. Rows written before the `secrets` column existed keep
/// their headers in the body; those stay.
pub(crate) fn join_secrets(body: &mut serde_json::Value, apart: serde_json::Value) {
    let (Some(obj), serde_json::Value::Object(mut apart)) = (body.as_object_mut(), apart) else {
        return;
    };
    if let Some(s) = apart.remove("secrets") {
        obj.insert("secrets".into(), s);
    }
    if let (Some(serde_json::Value::Object(headers)), Some(serde_json::Value::Array(dests))) =
        (apart.remove("headers"), obj.get_mut("destinations"))
    {
        for d in dests {
            let Some(d) = d.as_object_mut() else { continue };
            let name = d.get("name").and_then(|n| n.as_str()).unwrap_or_default();
            if let Some(h) = headers.get(name) {
                d.insert("headers".into(), h.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key() {
        let key = ServerKey::from_bytes([7; 32]);
        let sealed = key.seal("{\"pw\":\"hunter2\"}");
        assert!(sealed.starts_with(SEALED_PREFIX) && !sealed.contains("hunter2"));
        assert_ne!(sealed, key.seal("{\"pw\":\"hunter2\"}"), "random nonce");
        assert_eq!(key.open(&sealed).as_deref(), Some("{\"pw\":\"hunter2\"}"));
        assert_eq!(ServerKey::from_bytes([8; 32]).open(&sealed), None);
        let mut tampered = sealed.clone();
        tampered.pop();
        assert_eq!(key.open(&tampered), None);
        assert_eq!(key.open("{}"), None);
    }

    #[test]
    fn hex_round_trip() {
        let k = ServerKey::generate();
        assert_eq!(ServerKey::from_hex(&k.to_hex()), Some(k));
        assert!(ServerKey::from_hex("zz").is_none());
    }
}
