//! Tokens: generation, hashing, constant-time checks, the bearer-auth middleware for `/api/v1`,
//! and the derivation of endpoint ingest tokens.
//!
//! Storage decisions (see README):
//! - Admin and agent-enrollment tokens are random 256-bit values; only their SHA-256 is stored
//!   (`tokens.hash`). A presented token is hashed, looked up by hash, and the stored hash is then
//!   compared in constant time; the `--admin-token` flag value is compared the same way.
//! - Endpoint ingest tokens are never stored at all: they are derived as
//!   HMAC-SHA256(server key, `"endpoint:<id>:<token_version>"`), where the 256-bit server key lives
//!   in the database (`server_secrets`, shared by all replicas). The renderer re-derives them to
//!   put them into the collector config; bumping `token_version` gives a new, unrelated token.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use otaas_api::{EndpointId, TokenScope};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::ApiError;
use crate::state::AppState;
use crate::store::{Store, StoreError, TokenRecord};

/// Prefix of every token otaas mints, so leaked tokens are easy to grep for in secret scanners.
const PREFIX: &str = "otaas";

/// A fresh random token for a scope, e.g. `otaas_agent_<43 base64url chars>`.
pub fn generate_token(scope: TokenScope) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{PREFIX}_{}_{}",
        scope.as_str(),
        URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// SHA-256 of a token, lowercase hex: what the database keeps.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time equality of two hex hashes.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The 256-bit key endpoint ingest tokens are derived from.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let v = hex::decode(s).ok()?;
        Some(Self(v.try_into().ok()?))
    }

    /// The ingest token of an endpoint at a token version.
    pub fn endpoint_token(&self, id: EndpointId, version: u32) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key size");
        mac.update(format!("endpoint:{id}:{version}").as_bytes());
        format!(
            "{PREFIX}_ingest_{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }
}

/// What a verified bearer token is allowed to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The token given with `--admin-token`.
    FlagAdmin,
    /// A stored token.
    Token(TokenRecord),
}

/// Checks a presented token against the flag's admin token (if any) and the stored tokens.
/// Returns `None` for unknown, revoked or expired tokens.
pub async fn verify_token(
    store: &dyn Store,
    admin_token_hash: Option<&str>,
    presented: &str,
) -> Result<Option<Principal>, StoreError> {
    let hash = hash_token(presented);
    if let Some(admin) = admin_token_hash
        && hashes_equal(admin, &hash)
    {
        return Ok(Some(Principal::FlagAdmin));
    }
    // The lookup is by hash (an index seek); the final check is constant time anyway.
    let Some(record) = store.find_token_by_hash(&hash).await? else {
        return Ok(None);
    };
    if !hashes_equal(&record.hash, &hash) || !record.is_active(chrono::Utc::now()) {
        return Ok(None);
    }
    Ok(Some(Principal::Token(record)))
}

/// For the OpAMP server (`--require-agent-token`): is this an active agent-enrollment token?
/// Admin tokens are accepted too, so an operator can connect a test agent with theirs.
pub async fn verify_agent_token(
    store: &dyn Store,
    admin_token_hash: Option<&str>,
    presented: &str,
) -> Result<bool, StoreError> {
    Ok(verify_token(store, admin_token_hash, presented)
        .await?
        .is_some())
}

/// `Authorization: Bearer` middleware for `/api/v1`: only admin-scoped tokens pass.
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(presented) = presented else {
        state.metrics.inc("otaas_api_auth_failures_total", &[]);
        return ApiError::unauthorized("missing bearer token").into_response();
    };
    match verify_token(
        state.store.as_ref(),
        state.admin_token_hash.as_deref(),
        presented,
    )
    .await
    {
        Ok(Some(Principal::FlagAdmin)) => next.run(request).await,
        Ok(Some(Principal::Token(t))) if t.scope == TokenScope::Admin => next.run(request).await,
        Ok(_) => {
            state.metrics.inc("otaas_api_auth_failures_total", &[]);
            ApiError::unauthorized("invalid bearer token").into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_tokens_depend_on_key_id_and_version() {
        let key = TokenKey::from_bytes([7; 32]);
        let id = EndpointId::new();
        let t1 = key.endpoint_token(id, 1);
        assert_eq!(t1, key.endpoint_token(id, 1));
        assert_ne!(t1, key.endpoint_token(id, 2));
        assert_ne!(t1, key.endpoint_token(EndpointId::new(), 1));
        assert_ne!(t1, TokenKey::from_bytes([8; 32]).endpoint_token(id, 1));
        assert!(t1.starts_with("otaas_ingest_"));
    }

    #[test]
    fn hashing_and_comparison() {
        let t = generate_token(TokenScope::Agent);
        assert!(t.starts_with("otaas_agent_"));
        assert_eq!(hash_token(&t).len(), 64);
        assert!(hashes_equal(&hash_token(&t), &hash_token(&t)));
        assert!(!hashes_equal(&hash_token(&t), &hash_token("other")));
        assert!(!hashes_equal("ab", "abc"));
    }

    #[test]
    fn token_key_hex_round_trip() {
        let k = TokenKey::generate();
        let back = TokenKey::from_hex(&k.to_hex()).unwrap();
        assert_eq!(back.0, k.0);
        assert!(TokenKey::from_hex("zz").is_none());
    }
}
