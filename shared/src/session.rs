//! Dashboard sessions Latchkey signs itself: `POST /sessions` exchanges an admin key (or a
//! session it signed) for a short-lived JWT, HS256 under a secret of the deployment's (the local
//! API: a 0600 file in the data directory, like the pepper), which the authorizer verifies with
//! its JWT machinery: issuer [`ISSUER`], audience [`AUDIENCE`]. The token names the key it was
//! made from (`sub`), its tenant and the key's permissions; it is refreshed by asking again before
//! `exp`, which is allowed while that key still verifies and is still an admin key, so a revoked
//! key's sessions end within one session lifetime.

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::{KeyId, Permissions, TenantId};

/// The `iss` of Latchkey's own sessions.
pub const ISSUER: &str = "latchkey";
/// The `aud` of Latchkey's own sessions.
pub const AUDIENCE: &str = "latchkey-dashboard";
/// `LATCHKEY_SESSION_TTL_SECONDS` unset: 15 minutes.
pub const DEFAULT_TTL: TimeDelta = TimeDelta::minutes(15);
/// A session secret has at least this many bytes (HS256's key is the hash's block of 32).
pub const MIN_SECRET_BYTES: usize = 32;

/// Signs sessions; held by the functions that issue credentials (the local API, `keys-issue`).
pub struct SessionSigner {
    key: EncodingKey,
    ttl: TimeDelta,
}

impl std::fmt::Debug for SessionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSigner").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

/// A signed session, as `POST /sessions` answers it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionToken {
    pub token: String,
    pub token_type: &'static str,
    pub expires_at: DateTime<Utc>,
    pub expires_in: i64,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'static str,
    aud: &'static str,
    sub: &'a str,
    tenant_id: &'a str,
    permissions: Vec<&'a str>,
    iat: i64,
    exp: i64,
}

impl SessionSigner {
    /// `None` for a secret shorter than [`MIN_SECRET_BYTES`].
    pub fn new(secret: &[u8], ttl: TimeDelta) -> Option<Self> {
        (secret.len() >= MIN_SECRET_BYTES).then(|| Self { key: EncodingKey::from_secret(secret), ttl })
    }

    /// A session for `key`'s holder, with its tenant and permissions, valid from `now` for the
    /// signer's lifetime.
    pub fn sign(&self, key: &KeyId, tenant: &TenantId, permissions: &Permissions, now: DateTime<Utc>) -> SessionToken {
        let expires_at = now + self.ttl;
        let claims = Claims {
            iss: ISSUER,
            aud: AUDIENCE,
            sub: key.as_str(),
            tenant_id: tenant.as_str(),
            permissions: permissions.names().collect(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .expect("HS256 over serializable claims cannot fail");
        SessionToken { token, token_type: "Bearer", expires_at, expires_in: self.ttl.num_seconds() }
    }
}
