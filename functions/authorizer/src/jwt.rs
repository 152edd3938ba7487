//! Dashboard sessions: `Authorization: Bearer <JWT>`, verified with `jsonwebtoken`. Either HS256
//! with a shared secret (from Secrets Manager), or RS256/ES256 against the identity provider's
//! JWKS, fetched at start, cached, and fetched again (at most once a minute) when a token names a
//! key id it does not know. Issuer, audience, expiry and `nbf` (when present) are always checked. The tenant comes from
//! a configurable claim; a session has admin rights over its tenant.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use latchkey::{ApiError, TenantId};
use serde_json::{Map, Value};

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub subject: String,
    pub tenant_id: TenantId,
}

pub struct JwtVerifier {
    issuer: String,
    audience: String,
    tenant_claim: String,
    keys: Keys,
}

enum Keys {
    Shared(DecodingKey),
    Jwks(Jwks),
}

struct Jwks {
    url: String,
    client: reqwest::Client,
    set: RwLock<(Arc<JwkSet>, Instant)>,
}

#[derive(Debug, thiserror::Error)]
#[error("the JWKS at {url} could not be fetched: {cause}")]
pub struct JwksError {
    pub url: String,
    pub cause: String,
}

impl Jwks {
    async fn fetch(client: &reqwest::Client, url: &str) -> Result<JwkSet, JwksError> {
        let error = |cause: String| JwksError { url: url.to_owned(), cause };
        let response = client.get(url).send().await.map_err(|e| error(e.to_string()))?;
        let response = response.error_for_status().map_err(|e| error(e.to_string()))?;
        let body = response.bytes().await.map_err(|e| error(e.to_string()))?;
        serde_json::from_slice(&body).map_err(|e| error(format!("not a JWKS: {e}")))
    }

    /// The key with this id; an unknown id triggers one refetch, at most once a minute.
    async fn key(&self, kid: &str) -> Result<Option<jsonwebtoken::jwk::Jwk>, JwksError> {
        let (set, fetched_at) = {
            let state = self.set.read().expect("jwks lock");
            (Arc::clone(&state.0), state.1)
        };
        if let Some(jwk) = set.find(kid) {
            return Ok(Some(jwk.clone()));
        }
        if fetched_at.elapsed() < JWKS_MIN_REFETCH {
            return Ok(None);
        }
        let fresh = Arc::new(Self::fetch(&self.client, &self.url).await?);
        *self.set.write().expect("jwks lock") = (Arc::clone(&fresh), Instant::now());
        Ok(fresh.find(kid).cloned())
    }
}

impl JwtVerifier {
    pub fn with_shared_secret(secret: &[u8], issuer: &str, audience: &str, tenant_claim: &str) -> Self {
        Self::new(Keys::Shared(DecodingKey::from_secret(secret)), issuer, audience, tenant_claim)
    }

    /// Fetches the JWKS now: an identity provider that cannot be reached refuses to start.
    pub async fn with_jwks(
        url: &str,
        timeout: Duration,
        issuer: &str,
        audience: &str,
        tenant_claim: &str,
    ) -> Result<Self, JwksError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| JwksError { url: url.to_owned(), cause: e.to_string() })?;
        let set = Jwks::fetch(&client, url).await?;
        let jwks = Jwks { url: url.to_owned(), client, set: RwLock::new((Arc::new(set), Instant::now())) };
        Ok(Self::new(Keys::Jwks(jwks), issuer, audience, tenant_claim))
    }

    fn new(keys: Keys, issuer: &str, audience: &str, tenant_claim: &str) -> Self {
        Self { issuer: issuer.to_owned(), audience: audience.to_owned(), tenant_claim: tenant_claim.to_owned(), keys }
    }

    /// `INVALID_TOKEN` / `EXPIRED_TOKEN` for a bad token; `SERVICE_UNAVAILABLE` when the JWKS
    /// cannot be fetched (never an allow).
    pub async fn verify(&self, token: &str) -> Result<Session, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| ApiError::InvalidToken)?;
        let key = match &self.keys {
            Keys::Shared(key) if header.alg == Algorithm::HS256 => key.clone(),
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
                DecodingKey::from_jwk(&jwk).map_err(|_| ApiError::InvalidToken)?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Off by default in jsonwebtoken: a token issued for later must not pass now.
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => ApiError::ExpiredToken,
                _ => ApiError::InvalidToken,
            })?
            .claims;
        let subject = claims.get("sub").and_then(Value::as_str).ok_or(ApiError::InvalidToken)?;
        let tenant = claims.get(&self.tenant_claim).and_then(Value::as_str).ok_or(ApiError::InvalidToken)?;
        let tenant_id = tenant.parse().map_err(|_| ApiError::InvalidToken)?;
        Ok(Session { subject: subject.to_owned(), tenant_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"unit-test-jwt-secret-0123456789abcdef";

    fn token(claims: Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn claims(now: u64) -> Value {
        json!({"sub": "user-1", "iss": "https://idp.test/", "aud": "latchkey", "tenant_id": "acme", "exp": now + 3600})
    }

    #[tokio::test]
    async fn a_token_not_valid_before_tomorrow_is_refused_today() {
        let verifier = JwtVerifier::with_shared_secret(SECRET, "https://idp.test/", "latchkey", "tenant_id");
        let now = jsonwebtoken::get_current_timestamp();
        let mut tomorrow = claims(now);
        tomorrow["nbf"] = json!(now + 86_400);
        tomorrow["exp"] = json!(now + 2 * 86_400);
        assert_eq!(verifier.verify(&token(tomorrow)).await, Err(ApiError::InvalidToken));
        // Within the leeway, and already valid: allowed.
        let mut skewed = claims(now);
        skewed["nbf"] = json!(now + 10);
        assert!(verifier.verify(&token(skewed)).await.is_ok());
        assert!(verifier.verify(&token(claims(now))).await.is_ok());
    }
}
