//! Building the deployed authorizer from its environment, during the cold start: configuration
//! checked, pepper fetched, JWT keys loaded, DynamoDB connection opened. Anything wrong refuses to
//! start with an error naming the variable or secret.

use std::sync::Arc;
use std::time::Duration;

use latchkey::SystemClock;
use latchkey::config::{AwsResources, ConfigError, Env, Settings};
use latchkey::pepper::{CachedPepper, MIN_PEPPER_BYTES, PepperError, SecretsManagerPepper, read_secret};
use latchkey::store::dynamo::DynamoKeyStore;

use crate::jwt::JwtVerifier;
use crate::{Authorizer, Dependencies};

pub type DeployedAuthorizer = Authorizer<DynamoKeyStore, SecretsManagerPepper>;

/// Where a session's signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtKeySource {
    /// `LATCHKEY_JWT_SECRET_ID`: an HS256 secret in Secrets Manager.
    SharedSecret(String),
    /// `LATCHKEY_JWT_JWKS_URL`: the identity provider's JWKS (RS256/ES256).
    Jwks(String),
}

/// `LATCHKEY_JWT_*`; `None` when sessions are not configured (a JWT is then `INVALID_TOKEN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    pub source: JwtKeySource,
    pub issuer: String,
    pub audience: String,
    pub tenant_claim: String,
}

impl JwtSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Option<Self>, ConfigError> {
        let source = match (env.get("LATCHKEY_JWT_SECRET_ID"), env.get("LATCHKEY_JWT_JWKS_URL")) {
            (None, None) => return Ok(None),
            (Some(secret), None) => JwtKeySource::SharedSecret(secret),
            (None, Some(url)) => JwtKeySource::Jwks(url),
            (Some(_), Some(_)) => {
                let reason = "set LATCHKEY_JWT_SECRET_ID or LATCHKEY_JWT_JWKS_URL, not both".to_owned();
                return Err(ConfigError::Invalid { var: "LATCHKEY_JWT_JWKS_URL", reason });
            }
        };
        Ok(Some(Self {
            source,
            issuer: env.required("LATCHKEY_JWT_ISSUER")?,
            audience: env.required("LATCHKEY_JWT_AUDIENCE")?,
            tenant_claim: env.get("LATCHKEY_JWT_TENANT_CLAIM").unwrap_or_else(|| "tenant_id".to_owned()),
        }))
    }
}

/// Authorizer-only settings on top of [`Settings`].
#[derive(Debug, Clone)]
pub struct AuthorizerSettings {
    /// `LATCHKEY_CACHE_CAPACITY` (default 10,000 keys).
    pub cache_capacity: usize,
    /// `LATCHKEY_SESSION_USAGE_KEY`: API Gateway key value for JWT sessions.
    pub session_usage_key: Option<String>,
    pub jwt: Option<JwtSettings>,
}

impl AuthorizerSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            cache_capacity: env.number_or("LATCHKEY_CACHE_CAPACITY", 10_000, 0..=1_000_000)? as usize,
            session_usage_key: env.get("LATCHKEY_SESSION_USAGE_KEY"),
            jwt: JwtSettings::from_env(env)?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secret(#[from] PepperError),
    #[error(transparent)]
    Jwks(#[from] crate::jwt::JwksError),
    #[error("the keys table could not be reached: {0}")]
    Store(latchkey::store::StoreError),
}

/// The cold start.
pub async fn from_env() -> Result<DeployedAuthorizer, SetupError> {
    let env = Env::process();
    let settings = Settings::from_env(&env)?;
    let resources = AwsResources::from_env(&env)?;
    let extra = AuthorizerSettings::from_env(&env)?;
    let sdk = latchkey::aws::load_sdk_config(&settings.aws_timeouts).await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let store =
        DynamoKeyStore::new(aws_sdk_dynamodb::Client::new(&sdk), resources.keys_table, settings.record_retention);

    // The start-up reads run side by side: the current pepper (a previous one, left by a
    // rotation, is fetched on the first miss: BENCHMARKS.md), the JWT keys, and a first
    // DynamoDB read that opens the connection.
    let pepper_provider = SecretsManagerPepper::new(secrets.clone(), resources.pepper_secret_id);
    let (peppers, jwt, warmed) = tokio::join!(
        CachedPepper::load_current(pepper_provider, settings.pepper_refresh),
        jwt_verifier(extra.jwt.as_ref(), &secrets, settings.aws_timeouts.operation),
        store.warm_up(),
    );
    warmed.map_err(SetupError::Store)?;
    Ok(Authorizer::new(Dependencies {
        store: Arc::new(store),
        peppers: peppers?,
        clock: Arc::new(SystemClock),
        profile: settings.key_profile,
        cache_ttl: settings.cache_ttl,
        cache_capacity: extra.cache_capacity,
        jwt: jwt?,
        session_usage_key: extra.session_usage_key,
    }))
}

async fn jwt_verifier(
    settings: Option<&JwtSettings>,
    secrets: &aws_sdk_secretsmanager::Client,
    timeout: Duration,
) -> Result<Option<JwtVerifier>, SetupError> {
    let Some(settings) = settings else { return Ok(None) };
    let verifier = match &settings.source {
        JwtKeySource::SharedSecret(secret_id) => {
            let secret = read_secret(secrets, secret_id, "AWSCURRENT")
                .await?
                .ok_or_else(|| PepperError::Missing { secret: secret_id.clone() })?;
            // HS256 wants a key of at least 256 bits, like the pepper.
            if secret.bytes.len() < MIN_PEPPER_BYTES {
                Err(PepperError::TooShort { secret: secret_id.clone(), len: secret.bytes.len() })?;
            }
            JwtVerifier::with_shared_secret(&secret.bytes, &settings.issuer, &settings.audience, &settings.tenant_claim)
        }
        JwtKeySource::Jwks(url) => {
            JwtVerifier::with_jwks(url, timeout, &settings.issuer, &settings.audience, &settings.tenant_claim).await?
        }
    };
    Ok(Some(verifier))
}
