//! The pepper in Secrets Manager (moto's server) and key verification across its rotation,
//! against DynamoDB Local.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::Client as SecretsClient;
use chrono::{DateTime, TimeDelta, Utc};
use latchkey::lookup::find_key;
use latchkey::pepper::{CachedPepper, PepperError, PepperProvider, SecretsManagerPepper};
use latchkey::store::KeyStore;
use latchkey::{KeyProfile, KeyRecord, KeySpec, TenantId};
use latchkey_tests::{CountingStore, create_secret, fresh_dynamo_store, sdk_config, short_timeouts};

const PEPPER_V1: &str = "first-pepper-0123456789abcdefghijklmnop";
const PEPPER_V2: &str = "second-pepper-0123456789abcdefghijklmno";

async fn secrets() -> SecretsClient {
    SecretsClient::new(&sdk_config().await)
}

fn spec() -> KeySpec {
    KeySpec {
        tenant_id: "acme".parse::<TenantId>().unwrap(),
        name: "rotating pepper".into(),
        permissions: Default::default(),
        tier: "free".parse().unwrap(),
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

/// A fixed clock far in the future: DynamoDB Local deletes items whose TTL has passed in real
/// time, and a record's TTL derives from this clock, so a past date would let records vanish
/// mid-test.
fn now() -> DateTime<Utc> {
    "2100-01-01T00:00:00Z".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_survive_a_pepper_rotation_and_are_rehashed_exactly_once() {
    let client = secrets().await;
    let secret = create_secret(&client, PEPPER_V1).await;
    let provider = SecretsManagerPepper::new(client.clone(), &secret);
    let before = provider.load().await.unwrap();
    assert!(before.previous.is_none(), "no previous version before the first rotation");

    let store = Arc::new(CountingStore::new(fresh_dynamo_store(TimeDelta::days(1)).await));
    let profile = KeyProfile::latchkey();
    let (key, record) = KeyRecord::issue(&profile, &before.current, spec(), now());
    store.insert(&record).await.unwrap();
    let (key2, record2) = KeyRecord::issue(&profile, &before.current, spec(), now());
    store.insert(&record2).await.unwrap();
    assert_eq!(find_key(&*store, &before, &key).await.unwrap().unwrap().id, record.id);
    assert_eq!(store.take(), (1, 0), "the normal path is one read");

    // Rotate: the new value becomes AWSCURRENT and the old one AWSPREVIOUS.
    client.put_secret_value().secret_id(&secret).secret_string(PEPPER_V2).send().await.unwrap();
    let after = provider.load().await.unwrap();
    assert_ne!(after.current.version(), before.current.version());
    assert_eq!(after.previous.as_ref().unwrap().version(), before.current.version());

    // First verification after the rotation: one extra read, one move.
    let found = find_key(&*store, &after, &key).await.unwrap().expect("still verifies");
    assert_eq!(found.id, record.id);
    assert_eq!(store.take(), (2, 1));
    let moved = store.find_by_digest(&after.current.digest(&key)).await.unwrap().unwrap();
    assert_eq!(&moved.pepper_version, after.current.version());
    assert_eq!(store.find_by_digest(&before.current.digest(&key)).await.unwrap(), None);
    store.take();

    // From then on, one read again.
    find_key(&*store, &after, &key).await.unwrap().unwrap();
    assert_eq!(store.take(), (1, 0));

    // Many verifications racing on another old key: all succeed, the record moves once.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (store, after) = (Arc::clone(&store), after.clone());
        let candidate = profile.parse(key2.expose_secret()).unwrap();
        tasks.push(tokio::spawn(async move { find_key(&*store, &after, &candidate).await }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().unwrap().id, record2.id);
    }
    let listed = store.list(&record2.tenant_id, 100, None).await.unwrap();
    let copies: Vec<_> = listed.items.iter().filter(|r| r.id == record2.id).collect();
    assert_eq!(copies.len(), 1, "exactly one record of the key remains");
    assert_eq!(&copies[0].pepper_version, after.current.version());

    // A key nobody issued misses under both peppers (and under the current one once more, in
    // case a concurrent verification moved it): three reads, no write.
    store.take();
    assert!(find_key(&*store, &after, &profile.generate()).await.unwrap().is_none());
    assert_eq!(store.take(), (3, 0));
}

#[tokio::test]
async fn the_cache_picks_up_a_rotation_after_its_refresh_interval() {
    let client = secrets().await;
    let secret = create_secret(&client, PEPPER_V1).await;
    let cached = CachedPepper::load(SecretsManagerPepper::new(client.clone(), &secret), Duration::from_millis(200))
        .await
        .unwrap();
    let first = cached.current().await.current.version().clone();
    client.put_secret_value().secret_id(&secret).secret_string(PEPPER_V2).send().await.unwrap();
    assert_eq!(cached.current().await.current.version(), &first, "cached within the interval");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refreshed = cached.current().await;
    assert_ne!(refreshed.current.version(), &first);
    assert_eq!(refreshed.previous.as_ref().unwrap().version(), &first);
}

#[tokio::test]
async fn bad_or_missing_peppers_refuse_to_start_naming_the_secret() {
    let client = secrets().await;
    let missing = latchkey_tests::unique_name("missing");
    let error = CachedPepper::load(SecretsManagerPepper::new(client.clone(), &missing), Duration::from_secs(60))
        .await
        .err()
        .expect("a missing secret refuses");
    assert_eq!(error, PepperError::Missing { secret: missing.clone() });
    assert!(error.to_string().contains(&missing));

    let short = create_secret(&client, "too-short").await;
    let error = SecretsManagerPepper::new(client.clone(), &short).load().await.unwrap_err();
    assert_eq!(error, PepperError::TooShort { secret: short.clone(), len: 9 });

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = latchkey::aws::load_sdk_config(&short_timeouts()).await;
    let config =
        aws_sdk_secretsmanager::config::Builder::from(&config).endpoint_url(format!("http://127.0.0.1:{port}")).build();
    let unreachable = SecretsClient::from_conf(config);
    let error = tokio::time::timeout(Duration::from_secs(10), SecretsManagerPepper::new(unreachable, &short).load())
        .await
        .expect("bounded by the configured timeouts")
        .unwrap_err();
    assert!(matches!(&error, PepperError::Unavailable { secret, .. } if secret == &short), "{error}");
}
