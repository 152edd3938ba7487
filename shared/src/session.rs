//! Dashboard sessions Latchkey signs itself: `POST /sessions` exchanges an admin key (or a
//! session it signed) for a short-lived JWT, HS256 under a secret of the deployment's (the local
//! API: a 0600 file in the data directory, like the pepper), which the authorizer verifies with
//! its JWT machinery: issuer [`ISSUER`], audience [`AUDIENCE`]. The token names the key it was
//! made from (`sub`), its tenant and the key's permissions; it is refreshed by asking again before
//! `exp`, which is allowed while that key still verifies and is still an admin key. On every
//! request the authorizer holds a session to that key as stored now (its refusal, allowlist and
//! permissions), so a session never outlives a change to its key.

use std::pin::Pin;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::pepper::PepperError;
use crate::{Clock, KeyId, Permissions, TenantId};

/// The `iss` of Latchkey's own sessions.
pub const ISSUER: &str = "latchkey";
/// The `aud` of Latchkey's own sessions.
pub const AUDIENCE: &str = "latchkey-dashboard";
/// `LATCHKEY_SESSION_TTL_SECONDS` unset: 15 minutes.
pub const DEFAULT_TTL: TimeDelta = TimeDelta::minutes(15);
/// A session secret has at least this many bytes (HS256's key is the hash's block of 32).
pub const MIN_SECRET_BYTES: usize = 32;

/// How often the secret that signs sessions is read again from Secrets Manager, by `keys-issue`
/// (which signs) and the authorizer (which verifies): one interval, so after a rotation both move
/// to the new secret within it.
pub const SECRET_REFRESH: TimeDelta = TimeDelta::minutes(5);

/// A read of a signing secret: its bytes, wiped when dropped.
pub type SecretRead<'a> = Pin<Box<dyn Future<Output = Result<Zeroizing<Vec<u8>>, PepperError>> + Send + 'a>>;

/// Where a signer's secret is read again from: Secrets Manager's `AWSCURRENT`, deployed.
pub trait SigningSecret: Send + Sync {
    /// The current secret's bytes.
    fn current(&self) -> SecretRead<'_>;
    /// Its name, for errors.
    fn name(&self) -> &str;
}

/// Signs sessions; held by the functions that issue credentials (the local API, `keys-issue`).
/// Its secret is fixed (the local API's file) or read again every [`SECRET_REFRESH`], as the
/// authorizer reads it: after a rotation that drops `AWSPREVIOUS` (the guide's Operations:
/// withdrawing a leaked secret), a warm `keys-issue` would otherwise sign sessions the authorizer
/// no longer accepts.
pub struct SessionSigner {
    key: RwLock<(EncodingKey, DateTime<Utc>)>,
    ttl: TimeDelta,
    refresh: Option<Refresh>,
}

struct Refresh {
    secret: Box<dyn SigningSecret>,
    clock: Arc<dyn Clock>,
    /// Held while reading: one read of the secret at a time.
    reading: tokio::sync::Mutex<()>,
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
    /// A signer with a fixed secret; `None` for one shorter than [`MIN_SECRET_BYTES`].
    pub fn new(secret: &[u8], ttl: TimeDelta) -> Option<Self> {
        let key = signing_key(secret)?;
        Some(Self { key: RwLock::new((key, DateTime::<Utc>::MAX_UTC)), ttl, refresh: None })
    }

    /// A signer whose secret is read now (a missing, short or unreadable one refuses to start)
    /// and again once [`SECRET_REFRESH`] has passed by `clock`. A failed refresh keeps the
    /// secret it has (logged) and is tried again an interval later, as the authorizer does.
    pub async fn refreshing(
        secret: impl SigningSecret + 'static,
        ttl: TimeDelta,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, PepperError> {
        let key = read_key(&secret).await?;
        let read_at = clock.now();
        let refresh = Refresh { secret: Box::new(secret), clock, reading: Default::default() };
        Ok(Self { key: RwLock::new((key, read_at)), ttl, refresh: Some(refresh) })
    }

    /// A session for `key`'s holder, with its tenant and permissions, valid from `now` for the
    /// signer's lifetime.
    pub async fn sign(
        &self,
        key: &KeyId,
        tenant: &TenantId,
        permissions: &Permissions,
        now: DateTime<Utc>,
    ) -> SessionToken {
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
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.signing_key().await)
            .expect("HS256 over serializable claims cannot fail");
        SessionToken { token, token_type: "Bearer", expires_at, expires_in: self.ttl.num_seconds() }
    }

    async fn signing_key(&self) -> EncodingKey {
        let cached = || self.key.read().expect("session key lock").clone();
        let Some(refresh) = &self.refresh else { return cached().0 };
        let (key, read_at) = cached();
        if refresh.clock.now() < read_at + SECRET_REFRESH {
            return key;
        }
        let _one = refresh.reading.lock().await;
        let (key, read_at) = cached();
        let now = refresh.clock.now();
        if now < read_at + SECRET_REFRESH {
            return key;
        }
        let key = match read_key(&*refresh.secret).await {
            Ok(fresh) => fresh,
            Err(error) => {
                tracing::warn!(%error, "session secret refresh failed; keeping the cached one");
                key
            }
        };
        *self.key.write().expect("session key lock") = (key.clone(), now);
        key
    }
}

fn signing_key(secret: &[u8]) -> Option<EncodingKey> {
    (secret.len() >= MIN_SECRET_BYTES).then(|| EncodingKey::from_secret(secret))
}

async fn read_key(secret: &(impl SigningSecret + ?Sized)) -> Result<EncodingKey, PepperError> {
    let bytes = secret.current().await?;
    signing_key(&bytes).ok_or_else(|| PepperError::TooShort { secret: secret.name().to_owned(), len: bytes.len() })
}
