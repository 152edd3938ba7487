//! Dashboard sessions: `Authorization: Bearer <JWT>`, verified with `jsonwebtoken`. Either HS256
//! with a shared secret (from Secrets Manager: [`secret`]), or RS256/ES256 against the identity
//! provider's JWKS ([`jwks`]). Both are fetched at start and again every refresh interval, so a
//! withdrawn key or a rotated secret reaches warm instances within it. Issuer, audience, expiry
//! and `nbf` (when present) are always checked. The tenant and the session's permissions come
//! from configurable claims.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use latchkey::pepper::PepperError;
use latchkey::{ApiError, Clock, Permission, Permissions, TenantId};
use serde_json::{Map, Value};

pub mod jwks;
pub mod secret;
#[cfg(test)]
mod tests;

use jwks::Jwks;
pub use jwks::JwksError;
use secret::SharedSecrets;

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: i64 = 30;
/// How often signing keys are fetched again by default (`LATCHKEY_JWT_REFRESH_SECONDS`).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub subject: String,
    pub tenant_id: TenantId,
    /// From the permissions claim; empty without one.
    pub permissions: Permissions,
}

/// What a token must say, and how often its keys are fetched again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    pub issuer: String,
    pub audience: String,
    /// The claim naming the session's tenant (default `tenant_id`). It must be one the identity
    /// provider sets and its users cannot write, or a user could name any tenant.
    pub tenant_claim: String,
    /// The claim listing the session's permissions (default `permissions`).
    pub permissions_claim: String,
    /// How old the fetched keys may grow before they are fetched again.
    pub refresh: Duration,
}

impl JwtConfig {
    /// The defaults: tenant in `tenant_id`, keys refreshed every [`DEFAULT_REFRESH`].
    pub fn new(issuer: &str, audience: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            tenant_claim: "tenant_id".to_owned(),
            permissions_claim: "permissions".to_owned(),
            refresh: DEFAULT_REFRESH,
        }
    }
}

pub struct JwtVerifier {
    config: JwtConfig,
    keys: Keys,
    /// `exp` and `nbf` are judged by the clock the rest of the decision uses, not the machine's
    /// own: expiry is tested without sleeping, and the local API's clock offset moves sessions too.
    clock: Arc<dyn Clock>,
}

enum Keys {
    Shared(SharedSecrets),
    Jwks(Jwks),
}

impl JwtVerifier {
    /// A fixed HS256 secret, never fetched again: for tests and the local API.
    pub fn with_shared_secret(secret: &[u8], config: JwtConfig, clock: Arc<dyn Clock>) -> Self {
        Self { keys: Keys::Shared(SharedSecrets::fixed(secret)), config, clock }
    }

    /// The HS256 secret in Secrets Manager (`AWSCURRENT`, and `AWSPREVIOUS` after a rotation),
    /// read now: a missing or short secret refuses to start.
    pub async fn with_secrets_manager(
        client: aws_sdk_secretsmanager::Client,
        secret_id: &str,
        config: JwtConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, PepperError> {
        let secrets = SharedSecrets::load(client, secret_id, config.refresh, Arc::clone(&clock)).await?;
        Ok(Self { keys: Keys::Shared(secrets), config, clock })
    }

    /// Fetches the JWKS now: an identity provider that cannot be reached refuses to start.
    pub async fn with_jwks(
        url: &str,
        timeout: Duration,
        config: JwtConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, JwksError> {
        let jwks = Jwks::load(url, timeout, config.refresh, Arc::clone(&clock)).await?;
        Ok(Self { keys: Keys::Jwks(jwks), config, clock })
    }

    /// `INVALID_TOKEN` / `EXPIRED_TOKEN` for a bad token; `SERVICE_UNAVAILABLE` when the keys
    /// cannot be fetched (never an allow).
    pub async fn verify(&self, token: &str) -> Result<Session, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| ApiError::InvalidToken)?;
        let keys: Arc<Vec<DecodingKey>> = match &self.keys {
            Keys::Shared(secrets) if header.alg == Algorithm::HS256 => secrets.keys().await,
            Keys::Shared(_) => return Err(ApiError::InvalidToken),
            Keys::Jwks(jwks) => {
                if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
                    return Err(ApiError::InvalidToken);
                }
                let kid = header.kid.as_deref().ok_or(ApiError::InvalidToken)?;
                let jwk = jwks.key(kid).await.map_err(|error| {
                    tracing::error!(%error, "JWKS unavailable");
                    ApiError::ServiceUnavailable
                })?;
                let jwk = jwk.ok_or(ApiError::InvalidToken)?;
                Arc::new(vec![DecodingKey::from_jwk(&jwk).map_err(|_| ApiError::InvalidToken)?])
            }
        };
        let claims = self.decode(token, header.alg, &keys)?;
        let subject = claims.get("sub").and_then(Value::as_str).ok_or(ApiError::InvalidToken)?;
        let tenant = claims.get(&self.config.tenant_claim).and_then(Value::as_str).ok_or(ApiError::InvalidToken)?;
        let tenant_id = tenant.parse().map_err(|_| ApiError::InvalidToken)?;
        let permissions = permissions(claims.get(&self.config.permissions_claim));
        Ok(Session { subject: subject.to_owned(), tenant_id, permissions })
    }

    /// The claims under the first key whose signature matches (HS256 during a rotation: the
    /// current secret, then the previous one).
    fn decode(&self, token: &str, alg: Algorithm, keys: &[DecodingKey]) -> Result<Map<String, Value>, ApiError> {
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        // Present, checked below against our clock rather than jsonwebtoken's reading of the
        // machine's.
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        for key in keys {
            match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
                Ok(data) => return self.in_time(data.claims),
                Err(error) if matches!(error.kind(), ErrorKind::InvalidSignature) => continue,
                Err(_) => return Err(ApiError::InvalidToken),
            }
        }
        Err(ApiError::InvalidToken)
    }

    /// `EXPIRED_TOKEN` once `exp` has passed, `INVALID_TOKEN` before `nbf` (when present: a token
    /// issued for later must not pass now), each with [`LEEWAY_SECONDS`] of skew.
    fn in_time(&self, claims: Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
        let now = self.clock.now().timestamp();
        let seconds = |name: &str| claims.get(name).map(|value| value.as_f64().map(|n| n as i64));
        match seconds("exp") {
            Some(Some(exp)) if exp + LEEWAY_SECONDS >= now => {}
            Some(Some(_)) => return Err(ApiError::ExpiredToken),
            _ => return Err(ApiError::InvalidToken),
        }
        match seconds("nbf") {
            None => Ok(claims),
            Some(Some(nbf)) if nbf - LEEWAY_SECONDS <= now => Ok(claims),
            Some(_) => Err(ApiError::InvalidToken),
        }
    }
}

/// A list of names, or one string of names separated by spaces (OAuth's `scope`) or commas.
/// Names that are no permission name are ignored (an IdP's claim may carry other scopes), and so
/// is `ingest`, which only a key scoped to a datasource can hold; the tenant's own names (a valid
/// custom name, `documents.read`) are carried like a key's, at most [`Permissions::MAX`]. A
/// missing claim, or one of another shape, grants nothing: a session can then authenticate
/// (`/whoami`) but every management route answers 403. Defaulting to `read` or `admin` would
/// grant what the identity provider never said; granting nothing makes a misconfigured claim
/// visible at once and harmless.
fn permissions(claim: Option<&Value>) -> Permissions {
    let names: Vec<&str> = match claim {
        Some(Value::String(text)) => text.split([' ', ',']).collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mut set = Permissions::default();
    for name in names.into_iter().filter(|name| *name != Permission::Ingest.as_str()) {
        // The vocabulary always counts; past the cap, further custom names are dropped.
        if name.parse::<Permission>().is_ok() || set.len() < Permissions::MAX {
            // A name that is not a permission is some other scope of the IdP's: not ours to refuse.
            let _ = set.insert_name(name);
        }
    }
    set
}
