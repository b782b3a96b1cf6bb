//! Tokens: generation, hashing, constant-time checks, what each scope may do (the bearer-auth
//! middleware of `/api/v1` applying it is `api/auth.rs`), and the derivation of endpoint
//! ingest tokens.
//!
//! Storage decisions (see README):
//! - Admin and agent-enrollment tokens are random 256-bit values; only their SHA-256 is stored
//!   (`tokens.hash`). A presented token is hashed, looked up by hash, and the stored hash is then
//!   compared in constant time; the `--admin-token` flag value is compared the same way.
//! - Endpoint ingest tokens are never stored at all: they are derived as
//!   HMAC-SHA256(server key, `"endpoint:<id>:<token_version>"`), where the 256-bit server key lives
//!   in the database (`server_secrets`, shared by all replicas). The renderer re-derives them to
//!   put them into the collector config; bumping `token_version` gives a new, unrelated token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use otaas_api::{EndpointId, TokenScope};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{ServerKey, Store, StoreError, TokenRecord};

/// A fresh random token for a scope (the format is the API's: [`TokenScope::mint`]).
pub fn generate_token(scope: TokenScope) -> String {
    scope.mint()
}

/// SHA-256 of a token, lowercase hex: what the database keeps.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time equality of two hex hashes (or of any two secrets compared as text: MACs,
/// CSRF tokens).
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The 256-bit key endpoint ingest tokens are derived from: the store's server key.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl From<&ServerKey> for TokenKey {
    fn from(key: &ServerKey) -> Self {
        Self(*key.bytes())
    }
}

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

    /// 12 hex digits of an HMAC of `value` under this key, for the audit trail to tell
    /// repeated unknown tokens apart without keeping them (see `audit::Actor::unknown`).
    pub fn fingerprint(&self, value: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key size");
        mac.update(b"audit-fingerprint:");
        mac.update(value.as_bytes());
        let mut hex = hex::encode(mac.finalize().into_bytes());
        hex.truncate(12);
        hex
    }

    /// The ingest token of an endpoint at a token version.
    pub fn endpoint_token(&self, id: EndpointId, version: u32) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key size");
        mac.update(format!("endpoint:{id}:{version}").as_bytes());
        format!(
            "{}_ingest_{}",
            otaas_api::TOKEN_PREFIX,
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

impl Principal {
    /// The scope in effect (the flag's token is an admin token).
    pub fn scope(&self) -> TokenScope {
        match self {
            Principal::FlagAdmin => TokenScope::Admin,
            Principal::Token(t) => t.scope,
        }
    }

    /// A stable key for per-token accounting (rate limits); never the token itself.
    pub fn key(&self) -> String {
        match self {
            Principal::FlagAdmin => "flag-admin".into(),
            Principal::Token(t) => t.id.to_string(),
        }
    }
}

/// The outcome of checking a presented token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenCheck {
    Valid(Principal),
    /// No token with this hash (or a wrong one).
    Unknown,
    /// Known, but past its expiry.
    Expired(chrono::DateTime<chrono::Utc>),
    /// Known, but revoked.
    Revoked,
}

/// Checks a presented token against the flag's admin token (if any) and the stored tokens.
pub async fn check_token(
    store: &dyn Store,
    admin_token_hash: Option<&str>,
    presented: &str,
) -> Result<TokenCheck, StoreError> {
    check_token_hash(store, admin_token_hash, &hash_token(presented)).await
}

/// [`check_token`] for a token known only by its SHA-256 hex (a console session holds that,
/// never the token).
pub async fn check_token_hash(
    store: &dyn Store,
    admin_token_hash: Option<&str>,
    hash: &str,
) -> Result<TokenCheck, StoreError> {
    if let Some(admin) = admin_token_hash
        && hashes_equal(admin, hash)
    {
        return Ok(TokenCheck::Valid(Principal::FlagAdmin));
    }
    // The lookup is by hash (an index seek); the final check is constant time anyway.
    let Some(record) = store.find_token_by_hash(hash).await? else {
        return Ok(TokenCheck::Unknown);
    };
    if !hashes_equal(&record.hash, hash) {
        return Ok(TokenCheck::Unknown);
    }
    if record.revoked_at.is_some() {
        return Ok(TokenCheck::Revoked);
    }
    if let Some(at) = record.expires_at
        && at <= chrono::Utc::now()
    {
        return Ok(TokenCheck::Expired(at));
    }
    Ok(TokenCheck::Valid(Principal::Token(record)))
}

/// Like [`check_token`], but `None` for unknown, revoked or expired tokens.
pub async fn verify_token(
    store: &dyn Store,
    admin_token_hash: Option<&str>,
    presented: &str,
) -> Result<Option<Principal>, StoreError> {
    Ok(
        match check_token(store, admin_token_hash, presented).await? {
            TokenCheck::Valid(p) => Some(p),
            _ => None,
        },
    )
}

/// For the OpAMP server (`--require-agent-token`): is this an active agent-enrollment token?
/// Admin tokens are accepted too, so an operator can connect a test agent with theirs;
/// read-only tokens are not.
pub async fn verify_agent_token(
    store: &dyn Store,
    admin_token_hash: Option<&str>,
    presented: &str,
) -> Result<bool, StoreError> {
    Ok(agent_principal(store, admin_token_hash, presented)
        .await?
        .is_some())
}

/// Like [`verify_agent_token`], but with the principal, so an OpAMP session can remember which
/// token (id and expiry) it was opened with and end when that token does.
pub async fn agent_principal(
    store: &dyn Store,
    admin_token_hash: Option<&str>,
    presented: &str,
) -> Result<Option<Principal>, StoreError> {
    Ok(verify_token(store, admin_token_hash, presented)
        .await?
        .filter(|p| p.scope() != TokenScope::ReadOnly))
}

/// The bearer token of a request, if it carries one.
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_credentials)
}

/// The credentials of an `Authorization` value using the `Bearer` scheme. Auth schemes are
/// case-insensitive (RFC 9110 §11.1), so `BEARER x` is `bearer x`; whitespace around the token
/// is not part of it.
pub fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim_start().split_once([' ', '\t'])?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// May a principal of this scope make this request? `Err` carries the 403 message.
pub fn authorize(scope: TokenScope, method: &http::Method, path: &str) -> Result<(), &'static str> {
    let read = matches!(*method, http::Method::GET | http::Method::HEAD);
    // Token metadata is for admins only, even to read.
    let token_route = path.starts_with("/tokens") || path.starts_with("/api/v1/tokens");
    // So is the audit trail: it names every token and where it was used from.
    let audit_route = path.starts_with("/audit") || path.starts_with("/api/v1/audit");
    match scope {
        TokenScope::Admin => Ok(()),
        TokenScope::ReadOnly if token_route => {
            Err("read-only tokens cannot list or manage tokens; use an admin token")
        }
        TokenScope::ReadOnly if audit_route => {
            Err("read-only tokens cannot read the audit trail; use an admin token")
        }
        TokenScope::ReadOnly if read => Ok(()),
        TokenScope::ReadOnly => Err("read-only token: only GET requests are allowed"),
        TokenScope::Agent => {
            Err("agent enrollment tokens are for OpAMP agents and are not accepted by the REST API")
        }
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
    fn scopes_allow_what_they_name() {
        use http::Method;
        assert_eq!(
            authorize(TokenScope::Admin, &Method::DELETE, "/tokens/x"),
            Ok(())
        );
        assert_eq!(
            authorize(TokenScope::ReadOnly, &Method::GET, "/pipelines"),
            Ok(())
        );
        assert_eq!(
            authorize(TokenScope::ReadOnly, &Method::HEAD, "/pipelines"),
            Ok(())
        );
        assert!(authorize(TokenScope::ReadOnly, &Method::POST, "/pipelines").is_err());
        assert!(authorize(TokenScope::ReadOnly, &Method::PUT, "/pipelines/x").is_err());
        assert!(authorize(TokenScope::ReadOnly, &Method::DELETE, "/pipelines/x").is_err());
        assert!(authorize(TokenScope::ReadOnly, &Method::GET, "/tokens").is_err());
        assert!(authorize(TokenScope::ReadOnly, &Method::GET, "/audit").is_err());
        assert!(authorize(TokenScope::ReadOnly, &Method::GET, "/audit/export").is_err());
        assert!(authorize(TokenScope::Agent, &Method::GET, "/pipelines").is_err());
    }

    #[test]
    fn token_key_hex_round_trip() {
        let k = TokenKey::generate();
        let back = TokenKey::from_hex(&k.to_hex()).unwrap();
        assert_eq!(back.0, k.0);
        assert!(TokenKey::from_hex("zz").is_none());
    }
}
