//! What only the DynamoDB store has: the TTL attribute, the item layout, and behaviour when
//! DynamoDB is unreachable, silent or restarted.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeDelta, Utc};
use latchkey::store::dynamo::DynamoKeyStore;
use latchkey::store::schema::{self, digest_pk};
use latchkey::store::{KeyStore, StoreError};
use latchkey::{KeyDigest, KeyHasher, KeyProfile, KeyRecord, KeySpec, PepperVersion, Permission, TenantId};
use latchkey_tests::dynamodb_local::DynamoDbLocal;
use latchkey_tests::{dynamodb_client_at, fresh_dynamo_store, fresh_dynamo_store_with, short_timeouts};

/// A fixed clock far in the future: DynamoDB Local deletes items whose TTL has passed in real
/// time, and a record's TTL derives from this clock, so a past date would let records vanish
/// mid-test.
fn now() -> DateTime<Utc> {
    "2100-01-01T00:00:00Z".parse().unwrap()
}

fn record(expires_at: Option<DateTime<Utc>>) -> KeyRecord {
    let spec = KeySpec {
        tenant_id: "acme".parse::<TenantId>().unwrap(),
        name: "ttl".into(),
        permissions: [Permission::Read].into_iter().collect(),
        tier: "free".parse().unwrap(),
        expires_at,
        datasource_id: None,
        replaces: None,
        owner_id: None,
        meta: Default::default(),
        enabled: true,
        ip_allowlist: Default::default(),
        meter: None,
    };
    KeyRecord::issue(&KeyProfile::ctw(), &KeyHasher::new(&[1; 32], PepperVersion::new("v1")), spec, now()).1
}

async fn stored_ttl(store: &DynamoKeyStore, digest: &KeyDigest) -> Option<i64> {
    let item = store
        .client()
        .get_item()
        .table_name(store.table())
        .key(schema::PARTITION_KEY, AttributeValue::S(digest_pk(digest)))
        .send()
        .await
        .unwrap()
        .item
        .expect("the item exists");
    item.get(schema::TTL_ATTRIBUTE).map(|ttl| ttl.as_n().unwrap().parse().unwrap())
}

/// The TTL is set only once a dead key is retired (its gateway key deleted, its place in the
/// tenant's count given back): a record collected before would leak both.
#[tokio::test]
async fn ttl_attribute_is_set_at_retirement_to_the_end_of_life_plus_retention() {
    let retention = TimeDelta::days(30);
    let store = fresh_dynamo_store(retention).await;

    let forever = record(None);
    store.insert(&forever).await.unwrap();
    assert_eq!(stored_ttl(&store, &forever.digest).await, None, "a key without expiry is never collected");

    let expiring = record(Some(now() + TimeDelta::days(7)));
    store.insert(&expiring).await.unwrap();
    assert_eq!(stored_ttl(&store, &expiring.digest).await, None, "not while it holds its place");

    let revoked_at = now() + TimeDelta::hours(1);
    store.revoke(&forever.tenant_id, &forever.id, revoked_at).await.unwrap();
    assert_eq!(stored_ttl(&store, &forever.digest).await, None);
    assert!(store.retire(&forever.tenant_id, &forever.id, revoked_at).await.unwrap());
    assert_eq!(stored_ttl(&store, &forever.digest).await, Some((revoked_at + retention).timestamp()));

    // Rotation sets the old key's expiry to the end of its grace: the TTL follows, once retired.
    let mut replacement = record(None);
    replacement.tenant_id = expiring.tenant_id.clone();
    let grace_end = now() + TimeDelta::minutes(5);
    store.rotate(&expiring.tenant_id, &expiring.id, &replacement, grace_end).await.unwrap();
    assert!(matches!(store.retire(&expiring.tenant_id, &expiring.id, now()).await, Err(StoreError::Conflict(_))));
    assert!(store.retire(&expiring.tenant_id, &expiring.id, grace_end).await.unwrap());
    assert_eq!(stored_ttl(&store, &expiring.digest).await, Some((grace_end + retention).timestamp()));
}

#[tokio::test]
async fn the_table_holds_no_plaintext_key() {
    let store = fresh_dynamo_store(TimeDelta::days(1)).await;
    let profile = KeyProfile::latchkey();
    let hasher = KeyHasher::new(&[9; 32], PepperVersion::new("v1"));
    let mut keys = Vec::new();
    for i in 0..5 {
        let spec = KeySpec {
            tenant_id: "acme".parse().unwrap(),
            name: format!("k{i}"),
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
        };
        let (key, record) = KeyRecord::issue(&profile, &hasher, spec, now());
        store.insert(&record).await.unwrap();
        keys.push(key);
    }
    let scan = store.client().scan().table_name(store.table()).send().await.unwrap();
    let dump = format!("{:?}", scan.items());
    assert_eq!(scan.items().len(), 11, "a record and an id pointer per key, and the tenant's count");
    for key in &keys {
        let text = key.expose_secret();
        let body = &text[profile.prefix().len() + 1..];
        assert!(!dump.contains(body), "a key body is stored in plaintext");
        assert!(dump.contains(&key.hint()), "the hint is stored");
    }
}

#[tokio::test]
async fn a_closed_port_is_a_typed_error_not_a_panic_or_a_hang() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // Nothing listens there any more.
    let client = dynamodb_client_at(&format!("http://127.0.0.1:{port}"), short_timeouts()).await;
    let store = DynamoKeyStore::new(client, "keys", TimeDelta::days(1));
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), store.find_by_digest(&record(None).digest)).await;
    let result = result.expect("bounded by the configured timeouts");
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_silent_server_times_out() {
    // Accepts connections and never answers: the operation timeout must end the call.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let _hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let client = dynamodb_client_at(&endpoint, short_timeouts()).await;
    let store = DynamoKeyStore::new(client, "keys", TimeDelta::days(1));
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), store.find_by_digest(&record(None).digest)).await;
    let result = result.expect("bounded by the configured timeouts");
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    let elapsed = started.elapsed();
    assert!(elapsed >= short_timeouts().attempt && elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_dynamodb_ends_at_the_configured_timeout_and_recovers() {
    let upstream = latchkey_tests::required_env("AWS_ENDPOINT_URL_DYNAMODB");
    let upstream = upstream.trim_start_matches("http://").parse().unwrap();
    let proxy = latchkey_tests::slow_proxy::SlowProxy::start(upstream).await;
    let client = dynamodb_client_at(&proxy.endpoint(), short_timeouts()).await;
    let store = fresh_dynamo_store_with(client, TimeDelta::days(1)).await;
    let key_record = record(None);
    store.insert(&key_record).await.unwrap();

    // Slow, but within the attempt timeout (500 ms): answered.
    proxy.set_delay(Duration::from_millis(150));
    assert_eq!(store.find_by_digest(&key_record.digest).await.unwrap().as_ref(), Some(&key_record));

    // Slower than the operation allows (1.5 s over two attempts): a typed error, on time.
    proxy.set_delay(Duration::from_secs(3));
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), store.find_by_digest(&key_record.digest)).await;
    let result = result.expect("bounded by the configured timeouts, never a hang");
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    let elapsed = started.elapsed();
    assert!(elapsed >= short_timeouts().attempt && elapsed < Duration::from_secs(3), "{elapsed:?}");

    // Fast again: the same client answers, without being rebuilt.
    proxy.set_delay(Duration::ZERO);
    assert_eq!(store.find_by_digest(&key_record.digest).await.unwrap(), Some(key_record));
}

#[tokio::test]
async fn dynamodb_stopped_then_restarted() {
    let mut engine = DynamoDbLocal::start().await;
    let client = dynamodb_client_at(&engine.endpoint(), short_timeouts()).await;
    let store = fresh_dynamo_store_with(client, TimeDelta::days(1)).await;
    let key_record = record(None);
    store.insert(&key_record).await.unwrap();

    engine.stop().await;
    let down = store.find_by_digest(&key_record.digest).await;
    assert!(matches!(down, Err(StoreError::Unavailable(_))), "{down:?}");

    // Same port, same client: it recovers without being rebuilt. The engine is in memory, so
    // the table is made again before the key is.
    let _engine = DynamoDbLocal::start_on(engine.port()).await;
    let mut table_ready = false;
    for _ in 0..50 {
        let created = latchkey::store::schema::create_keys_table(store.client(), store.table()).await;
        if created.is_ok() {
            table_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(table_ready, "DynamoDB Local answers again after the restart");
    store.insert(&key_record).await.unwrap();
    assert_eq!(store.find_by_digest(&key_record.digest).await.unwrap(), Some(key_record));
}
