//! The authorizer under test: DynamoDB Local behind it, fixed peppers, a manual clock, and the
//! fixture keys seeded in every state the fixtures exercise.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use latchkey::pepper::{CachedPepper, PepperProvider};
use latchkey::store::KeyStore;
use latchkey::store::dynamo::DynamoKeyStore;
use latchkey::{DatasourceId, GatewayKey, KeyHasher, KeyId, KeyProfile, KeyRecord, KeySpec, ManualClock, Permission};
use latchkey_authorizer::jwt::{JwtConfig, JwtVerifier};
use latchkey_authorizer::sessions::SessionUsageKeys;
use latchkey_authorizer::{Authorizer, Dependencies};
use latchkey_tests::StaticPepper;
use serde_json::Value;

pub const PEPPER: &[u8] = b"authorizer-tests-pepper-0123456789abcdef";
pub const JWT_SECRET: &[u8] = b"fixture-jwt-secret-0123456789abcdef0123";
pub const RESOURCE: &str = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/*";
pub const SESSION_USAGE_KEY: &str = "gw-session-usage-key";

pub fn now() -> DateTime<Utc> {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn fixture_keys() -> HashMap<String, String> {
    serde_json::from_slice(&fixture("keys")).unwrap()
}

pub struct Harness<
    S: KeyStore + latchkey::gateway::pool::GatewaySlots + latchkey::credits::CreditStore + 'static,
    P: PepperProvider,
> {
    pub authorizer: Authorizer<S, P>,
    pub store: Arc<S>,
    pub clock: Arc<ManualClock>,
    /// Fixture key name → its record as seeded.
    pub records: HashMap<String, KeyRecord>,
}

/// How long the test tables keep dead records. The fixtures' clock (and their JWTs) sit at a
/// fixed date, while DynamoDB Local deletes items whose TTL has passed in real time: a century
/// keeps every seeded record's TTL in the future, so no record vanishes mid-test.
pub fn retention() -> TimeDelta {
    TimeDelta::days(36_500)
}

pub async fn fresh_store() -> DynamoKeyStore {
    latchkey_tests::fresh_dynamo_store(retention()).await
}

/// One authorizer instance over `store`, as deployed but for what the test decides: the fixtures'
/// pepper, the default 5 s cache, no sessions; `gateway_pool` as the test needs it.
pub async fn instance<S>(
    store: Arc<S>,
    clock: Arc<dyn latchkey::Clock>,
    gateway_pool: bool,
) -> Authorizer<S, StaticPepper>
where
    S: KeyStore + latchkey::gateway::pool::GatewaySlots + latchkey::credits::CreditStore + 'static,
{
    Authorizer::new(Dependencies {
        store,
        peppers: CachedPepper::load(StaticPepper::new(PEPPER, "v1"), Duration::from_secs(60)).await.unwrap(),
        clock,
        profile: KeyProfile::latchkey(),
        cache_ttl: Duration::from_secs(5),
        cache_capacity: 1_000,
        jwt: None,
        sessions: None,
        session_usage_keys: None,
        gateway_pool,
    })
}

pub async fn dynamo_harness(cache_ttl: Duration) -> Harness<DynamoKeyStore, StaticPepper> {
    let store = fresh_store().await;
    harness(store, StaticPepper::new(PEPPER, "v1"), cache_ttl).await
}

pub async fn harness<
    S: KeyStore + latchkey::gateway::pool::GatewaySlots + latchkey::credits::CreditStore + 'static,
    P: PepperProvider,
>(
    store: S,
    pepper: P,
    cache_ttl: Duration,
) -> Harness<S, P> {
    let store = Arc::new(store);
    let clock = Arc::new(ManualClock::new(now()));
    // A short refresh, so tests that rotate the pepper see it quickly.
    let peppers = CachedPepper::load(pepper, Duration::from_millis(100)).await.unwrap();
    let hasher = peppers.current().await.current.clone();
    let records = seed(&*store, &hasher).await;
    let authorizer = Authorizer::new(Dependencies {
        store: Arc::clone(&store),
        peppers,
        clock: clock.clone(),
        profile: KeyProfile::latchkey(),
        cache_ttl,
        cache_capacity: 1_000,
        jwt: Some(JwtVerifier::with_shared_secret(
            JWT_SECRET,
            JwtConfig::new("https://auth.example.com/", "latchkey"),
            clock.clone(),
        )),
        sessions: None,
        session_usage_keys: Some(SessionUsageKeys::new(SESSION_USAGE_KEY.to_owned(), HashMap::new())),
        gateway_pool: false,
    });
    Harness { authorizer, store, clock, records }
}

fn spec(permissions: &[Permission], tier: &str) -> KeySpec {
    KeySpec {
        tenant_id: "acme".parse().unwrap(),
        name: "fixture".into(),
        permissions: permissions.iter().copied().collect(),
        tier: tier.parse().unwrap(),
        expires_at: None,
        datasource_id: None,
        replaces: None,
        owner_id: None,
        meta: Default::default(),
        enabled: true,
        ip_allowlist: Default::default(),
        meter: None,
    }
}

async fn seed<S: KeyStore>(store: &S, hasher: &KeyHasher) -> HashMap<String, KeyRecord> {
    let profile = KeyProfile::latchkey();
    let mut records = HashMap::new();
    for (name, text) in fixture_keys() {
        if name == "unknown" {
            continue;
        }
        let key = profile.parse(&text).expect("fixture keys are valid");
        let mut record = KeyRecord::new(
            &key,
            hasher,
            spec(&[Permission::Read, Permission::Write], "starter"),
            now() - TimeDelta::days(10),
        );
        record.gateway_key = Some(GatewayKey { id: format!("gw-id-{name}"), value: format!("gw-value-{name}") });
        match name.as_str() {
            "expired" => record.expires_at = Some(now() - TimeDelta::days(1)),
            "in_grace" | "past_grace" => {
                let offset = if name == "in_grace" { TimeDelta::hours(1) } else { -TimeDelta::hours(1) };
                record.expires_at = Some(now() + offset);
                record.replaced_by = Some(KeyId::generate());
            }
            "datasource" => {
                record.permissions = [Permission::Ingest].into_iter().collect();
                record.datasource_id = Some(DatasourceId::generate());
                record.tier = "free".parse().unwrap();
            }
            _ => {}
        }
        store.insert(&record).await.unwrap();
        if name == "revoked" {
            record = store.revoke(&record.tenant_id, &record.id, now() - TimeDelta::days(2)).await.unwrap();
        }
        records.insert(name, record);
    }
    records
}

impl<S: KeyStore + latchkey::gateway::pool::GatewaySlots + latchkey::credits::CreditStore + 'static, P: PepperProvider>
    Harness<S, P>
{
    /// The authorizer's answer to a fixture, as JSON; `Err` when it refused to decide. A key's
    /// Allow carries its view for `/whoami` (`key_view`): checked to be that key's, active, and
    /// taken out, so the fixtures compare the rest.
    pub async fn decide(&self, name: &str) -> Result<Value, latchkey_authorizer::HandlerError> {
        let bytes = self.authorizer.handle_event(&fixture(name)).await?;
        let mut answer: Value = serde_json::from_slice(&bytes).expect("the response is JSON");
        if let Some(context) = answer.get_mut("context").and_then(Value::as_object_mut)
            && let Some(view) = context.remove("key_view")
        {
            let view: Value = serde_json::from_str(view.as_str().expect("a string")).unwrap_or(Value::Null);
            match context.get("auth_type").and_then(Value::as_str) {
                Some("api_key") => {
                    assert_eq!((&view["id"], view["status"].as_str()), (&context["key_id"], Some("active")), "{view}")
                }
                _ => assert_eq!(view, Value::Null, "a session has no key view"),
            }
        }
        Ok(answer)
    }

    pub fn record(&self, name: &str) -> &KeyRecord {
        &self.records[name]
    }

    /// The effect of the policy answered to a fixture.
    pub async fn effect(&self, name: &str) -> String {
        let response = self.decide(name).await.expect("decided");
        response["policyDocument"]["Statement"][0]["Effect"].as_str().unwrap().to_owned()
    }

    pub async fn code(&self, name: &str) -> String {
        let response = self.decide(name).await.expect("decided");
        response["context"]["error_code"].as_str().unwrap_or("").to_owned()
    }
}
