//! Building the deployed authorizer from its environment, during the cold start: configuration
//! checked, pepper fetched, JWT keys loaded, DynamoDB connection opened. Anything wrong refuses to
//! start with an error naming the variable or secret.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use latchkey::config::{AwsResources, ConfigError, Env, Settings};
use latchkey::events::eventbridge::EventBridgeEvents;
use latchkey::pepper::{CachedPepper, PepperError, SecretsManagerPepper};
use latchkey::store::dynamo::DynamoKeyStore;
use latchkey::verifications::dynamo::DynamoVerificationStore;
use latchkey::{Clock, SystemClock};

use crate::jwt::{DEFAULT_REFRESH, JwtConfig, JwtVerifier};
use crate::sessions::SessionUsageKeys;
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
    pub config: JwtConfig,
}

impl JwtSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Option<Self>, ConfigError> {
        let source = match (env.get("LATCHKEY_JWT_SECRET_ID"), env.get("LATCHKEY_JWT_JWKS_URL")) {
            (None, None) => return Ok(None),
            (Some(secret), None) => JwtKeySource::SharedSecret(secret),
            (None, Some(url)) => {
                check_jwks_url(&url).map_err(|reason| ConfigError::Invalid { var: "LATCHKEY_JWT_JWKS_URL", reason })?;
                JwtKeySource::Jwks(url)
            }
            (Some(_), Some(_)) => {
                let reason = "set LATCHKEY_JWT_SECRET_ID or LATCHKEY_JWT_JWKS_URL, not both".to_owned();
                return Err(ConfigError::Invalid { var: "LATCHKEY_JWT_JWKS_URL", reason });
            }
        };
        let mut config = JwtConfig::new(&env.required("LATCHKEY_JWT_ISSUER")?, &env.required("LATCHKEY_JWT_AUDIENCE")?);
        if let Some(claim) = env.get("LATCHKEY_JWT_TENANT_CLAIM") {
            config.tenant_claim = claim;
        }
        if let Some(claim) = env.get("LATCHKEY_JWT_PERMISSIONS_CLAIM") {
            config.permissions_claim = claim;
        }
        let refresh = env.number_or("LATCHKEY_JWT_REFRESH_SECONDS", DEFAULT_REFRESH.as_secs(), 1..=86_400)?;
        config.refresh = Duration::from_secs(refresh);
        Ok(Some(Self { source, config }))
    }
}

/// The JWKS is what every session's signature is checked against: fetched over plain http,
/// anyone on the path could substitute their own keys. Loopback http is allowed, for tests.
fn check_jwks_url(text: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!("`{text}` must be an https URL (plain http only on loopback, for tests)")),
    }
}

/// Authorizer-only settings on top of [`Settings`].
#[derive(Debug, Clone)]
pub struct AuthorizerSettings {
    /// `LATCHKEY_CACHE_CAPACITY` (default 10,000 keys).
    pub cache_capacity: usize,
    /// `LATCHKEY_SESSION_USAGE_KEY` (required with sessions) and `LATCHKEY_SESSION_USAGE_KEYS`:
    /// the API Gateway keys sessions are throttled under (see [`crate::sessions`]).
    pub session_usage_keys: Option<SessionUsageKeys>,
    pub jwt: Option<JwtSettings>,
    /// `LATCHKEY_SESSION_SECRET_ID`: the secret Latchkey's own sessions are signed with
    /// (`POST /sessions`, by `keys-issue`); unset, only the identity provider's are verified.
    pub session_secret_id: Option<String>,
}

impl AuthorizerSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let jwt = JwtSettings::from_env(env)?;
        let session_secret_id = env.get("LATCHKEY_SESSION_SECRET_ID");
        // Without a gateway key, API Gateway answers every session 403 before any handler runs.
        let session_usage_keys = match (&jwt, &session_secret_id) {
            (None, None) => None,
            _ => {
                let shared = env.required("LATCHKEY_SESSION_USAGE_KEY")?;
                let by_tenant = env.parse_or("LATCHKEY_SESSION_USAGE_KEYS", HashMap::new(), |text| {
                    SessionUsageKeys::parse_by_tenant(text)
                })?;
                Some(SessionUsageKeys::new(shared, by_tenant))
            }
        };
        Ok(Self {
            cache_capacity: env.number_or("LATCHKEY_CACHE_CAPACITY", 10_000, 0..=1_000_000)? as usize,
            session_usage_keys,
            jwt,
            session_secret_id,
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
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let pepper_provider = SecretsManagerPepper::new(secrets.clone(), resources.pepper_secret_id);
    let own_sessions = async {
        let Some(secret_id) = &extra.session_secret_id else { return Ok(None) };
        // Read again at the interval `keys-issue` reads it at, so a rotation reaches both at once.
        let refresh = latchkey::session::SECRET_REFRESH.to_std().expect("a positive interval");
        let config = JwtConfig { refresh, ..JwtConfig::new(latchkey::session::ISSUER, latchkey::session::AUDIENCE) };
        JwtVerifier::with_secrets_manager(secrets.clone(), secret_id, config, Arc::clone(&clock)).await.map(Some)
    };
    let (peppers, jwt, sessions, warmed) = tokio::join!(
        CachedPepper::load_current(pepper_provider, settings.pepper_refresh),
        jwt_verifier(extra.jwt, &secrets, settings.aws_timeouts.operation, Arc::clone(&clock)),
        own_sessions,
        store.warm_up(),
    );
    warmed.map_err(SetupError::Store)?;
    let dynamodb = store.client().clone();
    let authorizer = Authorizer::new(Dependencies {
        store: Arc::new(store),
        peppers: peppers?,
        clock,
        profile: settings.key_profile,
        cache_ttl: settings.cache_ttl,
        cache_capacity: extra.cache_capacity,
        jwt: jwt?,
        sessions: sessions?,
        session_usage_keys: extra.session_usage_keys,
        gateway_pool: true,
    })
    .with_events(EventBridgeEvents::from_env(&sdk, &env));
    // The verification counts go to the records table, once a minute, off every request's path.
    match env.get("LATCHKEY_RECORDS_TABLE") {
        Some(table) => {
            let (tally, store) =
                (Arc::clone(authorizer.verifications()), DynamoVerificationStore::new(dynamodb, table));
            tokio::spawn(async move { latchkey::verifications::flush_periodically(&tally, &store).await });
        }
        None => tracing::warn!("LATCHKEY_RECORDS_TABLE is not set: verification counts are not kept"),
    }
    Ok(authorizer)
}

async fn jwt_verifier(
    settings: Option<JwtSettings>,
    secrets: &aws_sdk_secretsmanager::Client,
    timeout: Duration,
    clock: Arc<dyn Clock>,
) -> Result<Option<JwtVerifier>, SetupError> {
    let Some(JwtSettings { source, config }) = settings else { return Ok(None) };
    let verifier = match source {
        JwtKeySource::SharedSecret(secret_id) => {
            JwtVerifier::with_secrets_manager(secrets.clone(), &secret_id, config, clock).await?
        }
        JwtKeySource::Jwks(url) => JwtVerifier::with_jwks(&url, timeout, config, clock).await?,
    };
    Ok(Some(verifier))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn jwt_settings(vars: &[(&str, &str)]) -> Result<Option<JwtSettings>, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        JwtSettings::from_env(&Env::from_fn(move |name| vars.get(name).cloned()))
    }

    fn with_jwks(url: &str) -> Result<Option<JwtSettings>, ConfigError> {
        jwt_settings(&[
            ("LATCHKEY_JWT_JWKS_URL", url),
            ("LATCHKEY_JWT_ISSUER", "https://idp.test/"),
            ("LATCHKEY_JWT_AUDIENCE", "latchkey"),
        ])
    }

    #[test]
    fn a_jwks_url_must_be_https_except_on_loopback() {
        for url in ["http://example.com/.well-known/jwks.json", "ftp://idp.test/jwks", "not a url", "http://10.0.0.1/"]
        {
            match with_jwks(url) {
                Err(ConfigError::Invalid { var: "LATCHKEY_JWT_JWKS_URL", .. }) => {}
                other => panic!("{url}: {other:?}"),
            }
        }
        for url in [
            "https://idp.test/.well-known/jwks.json",
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]:1/",
        ] {
            let settings = with_jwks(url).unwrap().unwrap();
            assert_eq!(settings.source, JwtKeySource::Jwks(url.to_owned()));
        }
    }

    fn settings(vars: &[(&str, &str)]) -> Result<AuthorizerSettings, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        AuthorizerSettings::from_env(&Env::from_fn(move |name| vars.get(name).cloned()))
    }

    const JWT: [(&str, &str); 3] = [
        ("LATCHKEY_JWT_SECRET_ID", "session-secret"),
        ("LATCHKEY_JWT_ISSUER", "https://idp.test/"),
        ("LATCHKEY_JWT_AUDIENCE", "latchkey"),
    ];

    /// Without a gateway key, API Gateway answers every session 403 before any handler runs.
    #[test]
    fn sessions_without_a_session_usage_key_refuse_to_start() {
        match settings(&JWT) {
            Err(ConfigError::Missing { var: "LATCHKEY_SESSION_USAGE_KEY" }) => {}
            other => panic!("{other:?}"),
        }
        assert!(settings(&[]).is_ok(), "no sessions, no session key needed");
        let with = |keys: &'static str| {
            let mut vars = JWT.to_vec();
            vars.extend([("LATCHKEY_SESSION_USAGE_KEY", "gw-shared"), ("LATCHKEY_SESSION_USAGE_KEYS", keys)]);
            settings(&vars)
        };
        let keys = with("acme=gw-acme").unwrap().session_usage_keys.unwrap();
        assert_eq!(keys.for_tenant(&"acme".parse().unwrap()), "gw-acme");
        match with("acme") {
            Err(ConfigError::Invalid { var: "LATCHKEY_SESSION_USAGE_KEYS", .. }) => {}
            other => panic!("{other:?}"),
        }
        // Latchkey's own sessions need one too, with or without an identity provider.
        match settings(&[("LATCHKEY_SESSION_SECRET_ID", "sessions")]) {
            Err(ConfigError::Missing { var: "LATCHKEY_SESSION_USAGE_KEY" }) => {}
            other => panic!("{other:?}"),
        }
        let own =
            settings(&[("LATCHKEY_SESSION_SECRET_ID", "sessions"), ("LATCHKEY_SESSION_USAGE_KEY", "gw")]).unwrap();
        assert_eq!((own.session_secret_id.as_deref(), own.jwt.is_none()), (Some("sessions"), true));
    }

    #[test]
    fn the_refresh_interval_defaults_to_five_minutes() {
        assert_eq!(with_jwks("https://idp.test/jwks").unwrap().unwrap().config.refresh, Duration::from_secs(300));
        let settings = jwt_settings(&[
            ("LATCHKEY_JWT_SECRET_ID", "session-secret"),
            ("LATCHKEY_JWT_ISSUER", "https://idp.test/"),
            ("LATCHKEY_JWT_AUDIENCE", "latchkey"),
            ("LATCHKEY_JWT_REFRESH_SECONDS", "60"),
        ]);
        assert_eq!(settings.unwrap().unwrap().config.refresh, Duration::from_secs(60));
    }
}
