//! Building a key management function from its environment, during the cold start. Only the
//! issuing function reads the pepper; the others never name its secret. Anything wrong refuses to
//! start with an error naming the variable or secret.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::TimeDelta;
use latchkey::SystemClock;
use latchkey::config::{ConfigError, Env, Settings};
use latchkey::events::eventbridge::EventBridgeEvents;
use latchkey::gateway::apigateway::{ApiGatewayKeys, PlanNames, UsagePlans};
use latchkey::gateway::pool::{DEFAULT_POOL_SIZE, Pools};
use latchkey::ingest::dynamo::DynamoRecordStore;
use latchkey::leaks::github::SigningKeys;
use latchkey::manage::{Issuance, KeyPolicy, KeyService, Management, Role};
use latchkey::pepper::{CachedPepper, PepperError, SecretsManagerPepper, SecretsManagerSigningSecret};
use latchkey::session::SessionSigner;
use latchkey::store::dynamo::DynamoKeyStore;
use latchkey::{TierName, Tiers};

pub type DeployedFunction = Management<DynamoKeyStore, ApiGatewayKeys, SecretsManagerPepper, DynamoRecordStore>;

/// Key management settings on top of [`Settings`].
#[derive(Debug, Clone)]
pub struct KeysSettings {
    /// `LATCHKEY_KEYS_TABLE`.
    pub keys_table: String,
    /// `LATCHKEY_MAX_KEY_LIFETIME_DAYS` (default: unset, keys may live forever; at most 3650).
    pub max_lifetime: Option<TimeDelta>,
    /// `LATCHKEY_AUDIT_RETENTION_DAYS` (default 365): how long audit events are kept.
    pub audit_retention: TimeDelta,
    /// `LATCHKEY_USAGE_PLANS` (`tier=usage-plan-id,...`, one for every configured tier) or
    /// `LATCHKEY_USAGE_PLAN_NAMES` (a plan name with `{tier}` in it: the deployed stack's way).
    pub usage_plans: UsagePlans,
    /// `LATCHKEY_RECORDS_TABLE`: the datasources' records (read and change roles).
    pub records_table: Option<String>,
    /// `LATCHKEY_INGEST_TIER` (default: the default tier): the tier of datasources' ingest keys.
    pub ingest_tier: TierName,
}

impl KeysSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>, tiers: &Tiers) -> Result<Self, ConfigError> {
        let usage_plans = match (env.get("LATCHKEY_USAGE_PLANS"), env.get("LATCHKEY_USAGE_PLAN_NAMES")) {
            (Some(_), Some(_)) => {
                let reason = "set LATCHKEY_USAGE_PLANS or LATCHKEY_USAGE_PLAN_NAMES, not both".to_owned();
                return Err(ConfigError::Invalid { var: "LATCHKEY_USAGE_PLAN_NAMES", reason });
            }
            (None, Some(pattern)) => UsagePlans::Named(
                PlanNames::parse(&pattern)
                    .map_err(|reason| ConfigError::Invalid { var: "LATCHKEY_USAGE_PLAN_NAMES", reason })?,
            ),
            _ => {
                let ids = env.parse_or("LATCHKEY_USAGE_PLANS", HashMap::new(), ApiGatewayKeys::parse_usage_plans)?;
                // A tier without a plan would issue keys that API Gateway refuses or never throttles.
                if let Some(tier) = tiers.iter().find(|tier| !ids.contains_key(&tier.name)) {
                    let reason = format!(
                        "tier `{}` has no usage plan (expected tier=usage-plan-id pairs, or LATCHKEY_USAGE_PLAN_NAMES)",
                        tier.name
                    );
                    return Err(ConfigError::Invalid { var: "LATCHKEY_USAGE_PLANS", reason });
                }
                UsagePlans::Ids(ids)
            }
        };
        let max_lifetime = match env.get("LATCHKEY_MAX_KEY_LIFETIME_DAYS") {
            None => None,
            Some(_) => Some(TimeDelta::days(env.number_or("LATCHKEY_MAX_KEY_LIFETIME_DAYS", 0, 1..=3650)? as i64)),
        };
        Ok(Self {
            keys_table: env.required("LATCHKEY_KEYS_TABLE")?,
            max_lifetime,
            audit_retention: TimeDelta::days(env.number_or("LATCHKEY_AUDIT_RETENTION_DAYS", 365, 1..=3650)? as i64),
            usage_plans,
            records_table: env.get("LATCHKEY_RECORDS_TABLE"),
            ingest_tier: env.parse_or("LATCHKEY_INGEST_TIER", tiers.default_tier().clone(), |text| {
                text.parse::<TierName>()
                    .ok()
                    .filter(|tier| tiers.get(tier).is_some())
                    .ok_or_else(|| format!("no tier `{text}` is configured"))
            })?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secret(#[from] PepperError),
    #[error("the keys table could not be reached: {0}")]
    Store(latchkey::store::StoreError),
}

/// GitHub's secret scanning keys (`LATCHKEY_GITHUB_KEYS_URL`), for `POST /leaks/github`:
/// fetched when a report names one not fetched yet.
pub fn github_keys() -> Result<SigningKeys, ConfigError> {
    let settings = Settings::from_env(&Env::process())?;
    Ok(SigningKeys::new(settings.github_keys_url))
}

/// The cold start of a function serving `roles`.
pub async fn from_env(roles: &'static [Role]) -> Result<DeployedFunction, SetupError> {
    let env = Env::process();
    let settings = Settings::from_env(&env)?;
    let keys = KeysSettings::from_env(&env, &settings.tiers)?;
    let issues = roles.contains(&Role::Issue);
    // Read before any I/O, so a missing variable is reported as such.
    let pepper_secret = if issues { Some(env.required("LATCHKEY_PEPPER_SECRET_ID")?) } else { None };
    let reads_records = roles.iter().any(|role| *role != Role::Issue);
    if reads_records && keys.records_table.is_none() {
        return Err(ConfigError::Missing { var: "LATCHKEY_RECORDS_TABLE" }.into());
    }

    let sdk = latchkey::aws::load_sdk_config(&settings.aws_timeouts).await;
    let store = store(&sdk, &settings, &keys);
    let gateway = ApiGatewayKeys::new(aws_sdk_apigateway::Client::new(&sdk), keys.usage_plans);
    let records = keys
        .records_table
        .filter(|_| reads_records)
        .map(|table| Arc::new(DynamoRecordStore::new(aws_sdk_dynamodb::Client::new(&sdk), table)));
    let session_secret = if issues { env.get("LATCHKEY_SESSION_SECRET_ID") } else { None };
    let issuance = async {
        let Some(secret) = pepper_secret else { return Ok(None) };
        let client = aws_sdk_secretsmanager::Client::new(&sdk);
        let provider = SecretsManagerPepper::new(client.clone(), secret);
        let peppers = CachedPepper::load_current(provider, settings.pepper_refresh).await?;
        // Signed with the current secret, read again every `SECRET_REFRESH` as the authorizer
        // reads it; the authorizer also accepts the previous one, so a rotation does not end the
        // sessions a warm instance signed before it.
        let sessions = match &session_secret {
            None => None,
            Some(id) => {
                let secret = SecretsManagerSigningSecret::new(client.clone(), id.clone());
                Some(SessionSigner::refreshing(secret, settings.session_ttl, Arc::new(SystemClock)).await?)
            }
        };
        Ok::<_, PepperError>(Some(Issuance { peppers, profile: settings.key_profile.clone(), sessions }))
    };
    let (issuance, warmed) = tokio::join!(issuance, store.warm_up());
    warmed.map_err(SetupError::Store)?;
    Ok(Management {
        service: KeyService {
            store: Arc::new(store),
            gateway,
            clock: Arc::new(SystemClock),
            policy: KeyPolicy { tiers: settings.tiers, max_lifetime: keys.max_lifetime },
            events: EventBridgeEvents::from_env(&sdk, &env),
            pools: Default::default(),
        },
        issuance: issuance?,
        records,
        ingest_tier: keys.ingest_tier,
        roles,
        leak_action: settings.leak_action,
    })
}

fn store(sdk: &latchkey::aws::SdkConfig, settings: &Settings, keys: &KeysSettings) -> DynamoKeyStore {
    DynamoKeyStore::new(aws_sdk_dynamodb::Client::new(sdk), keys.keys_table.clone(), settings.record_retention)
        .with_audit_retention(keys.audit_retention)
        .with_max_keys_per_tenant(settings.max_keys_per_tenant)
}

/// The cold start of `keys-sweep`: the keys table, API Gateway and the event bus, as the other
/// functions have them; no routes, no pepper, no records. With it, how long before an expiry
/// `key.expiring` is sent (`LATCHKEY_EXPIRY_WARNING_DAYS`), and how many slots each tier's gateway
/// key pool grows to (`LATCHKEY_GATEWAY_POOL_SIZE`; all the pools and the keys from before them
/// share the account's 10,000 API keys per region with every other API in it).
pub async fn sweeper_from_env() -> Result<(KeyService<DynamoKeyStore, ApiGatewayKeys>, Option<TimeDelta>), SetupError> {
    let env = Env::process();
    let settings = Settings::from_env(&env)?;
    let keys = KeysSettings::from_env(&env, &settings.tiers)?;
    let sdk = latchkey::aws::load_sdk_config(&settings.aws_timeouts).await;
    let store = store(&sdk, &settings, &keys);
    store.warm_up().await.map_err(SetupError::Store)?;
    let notice = settings.expiry_notice;
    let target = env.number_or("LATCHKEY_GATEWAY_POOL_SIZE", u64::from(DEFAULT_POOL_SIZE), 1..=10_000)? as u32;
    let service = KeyService {
        store: Arc::new(store),
        gateway: ApiGatewayKeys::new(aws_sdk_apigateway::Client::new(&sdk), keys.usage_plans),
        clock: Arc::new(SystemClock),
        policy: KeyPolicy { tiers: settings.tiers, max_lifetime: keys.max_lifetime },
        events: EventBridgeEvents::from_env(&sdk, &env),
        pools: Arc::new(Pools::new(target)),
    };
    Ok((service, notice))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> Env<impl Fn(&str) -> Option<String>> {
        Env::from_fn(move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
    }

    const PLANS: (&str, &str) = ("LATCHKEY_USAGE_PLANS", "free=p1, starter=p2, internal=p3");

    #[test]
    fn reads_and_checks_every_variable() {
        let tiers = Tiers::default();
        let settings = KeysSettings::from_env(&env(&[("LATCHKEY_KEYS_TABLE", "keys"), PLANS]), &tiers).unwrap();
        assert_eq!(settings.max_lifetime, None);
        assert_eq!(settings.audit_retention, TimeDelta::days(365));
        assert!(matches!(&settings.usage_plans, UsagePlans::Ids(ids) if ids.len() == 3));

        let named = env(&[("LATCHKEY_KEYS_TABLE", "keys"), ("LATCHKEY_USAGE_PLAN_NAMES", "latchkey-{tier}")]);
        let UsagePlans::Named(names) = KeysSettings::from_env(&named, &tiers).unwrap().usage_plans else {
            panic!("plans by name")
        };
        assert_eq!(names.name_of(&"free".parse().unwrap()), "latchkey-free");

        let limited = env(&[("LATCHKEY_KEYS_TABLE", "keys"), PLANS, ("LATCHKEY_MAX_KEY_LIFETIME_DAYS", "90")]);
        assert_eq!(KeysSettings::from_env(&limited, &tiers).unwrap().max_lifetime, Some(TimeDelta::days(90)));

        let bad = [
            (env(&[("LATCHKEY_KEYS_TABLE", "keys")]), "LATCHKEY_USAGE_PLANS"),
            (
                env(&[("LATCHKEY_KEYS_TABLE", "keys"), ("LATCHKEY_USAGE_PLANS", "free=p1,starter=p2")]),
                "LATCHKEY_USAGE_PLANS",
            ),
            (env(&[("LATCHKEY_KEYS_TABLE", "keys"), ("LATCHKEY_USAGE_PLANS", "free")]), "LATCHKEY_USAGE_PLANS"),
            (env(&[PLANS]), "LATCHKEY_KEYS_TABLE"),
            (
                env(&[("LATCHKEY_KEYS_TABLE", "keys"), ("LATCHKEY_USAGE_PLAN_NAMES", "latchkey-free")]),
                "LATCHKEY_USAGE_PLAN_NAMES",
            ),
            (
                env(&[("LATCHKEY_KEYS_TABLE", "keys"), PLANS, ("LATCHKEY_USAGE_PLAN_NAMES", "latchkey-{tier}")]),
                "LATCHKEY_USAGE_PLAN_NAMES",
            ),
            (
                env(&[("LATCHKEY_KEYS_TABLE", "k"), PLANS, ("LATCHKEY_MAX_KEY_LIFETIME_DAYS", "0")]),
                "LATCHKEY_MAX_KEY_LIFETIME_DAYS",
            ),
            (
                env(&[("LATCHKEY_KEYS_TABLE", "k"), PLANS, ("LATCHKEY_AUDIT_RETENTION_DAYS", "x")]),
                "LATCHKEY_AUDIT_RETENTION_DAYS",
            ),
        ];
        for (env, var) in bad {
            let error = KeysSettings::from_env(&env, &tiers).unwrap_err();
            let named = match error {
                ConfigError::Missing { var } | ConfigError::Invalid { var, .. } => var,
            };
            assert_eq!(named, var);
        }
    }
}
