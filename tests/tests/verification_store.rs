//! The verification counts' contract, against DynamoDB Local (the records table) and the embedded
//! (redb) store: additions add up (also from concurrent flushes, as several authorizer instances
//! make them), a key's hours and a tenant's hours come back in range and in order, and a tenant
//! never sees another's; a flush that fails keeps its counts for the next.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use latchkey::ingest::dynamo::DynamoRecordStore;
use latchkey::store::StoreError;
use latchkey::store::schema::create_records_table;
use latchkey::verifications::{
    KeyHour, Outcome, OutcomeCounts, REFUSALS_KEPT, Refusal, Tally, UnknownCounts, VerificationStore, flush,
};
use latchkey::{KeyId, TenantId};
use latchkey_tests::{sdk_config, unique_name};

async fn fresh_dynamo() -> DynamoRecordStore {
    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let table = unique_name("verifications");
    create_records_table(&client, &table).await.unwrap_or_else(|e| panic!("creating {table}: {e}"));
    DynamoRecordStore::new(client, table)
}

fn hour(n: i64) -> DateTime<Utc> {
    "2030-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::hours(n)
}

fn counts(pairs: &[(Outcome, u64)]) -> OutcomeCounts {
    let mut counts = OutcomeCounts::default();
    for (outcome, n) in pairs {
        counts.add(*outcome, *n);
    }
    counts
}

fn tenant(name: &str) -> TenantId {
    name.parse().unwrap()
}

async fn additions_add_up_and_read_back_in_range<S: VerificationStore>(store: S) {
    let (acme, globex) = (tenant(&unique_name("acme")), tenant(&unique_name("globex")));
    let (key, other) = (KeyId::generate(), KeyId::generate());
    let add = |tenant: &TenantId, key: &KeyId, n: i64, pairs: &[(Outcome, u64)]| KeyHour {
        tenant: tenant.clone(),
        key: key.clone(),
        hour: hour(n),
        counts: counts(pairs),
    };
    store.add_key_hour(&add(&acme, &key, 0, &[(Outcome::Valid, 3)])).await.unwrap();
    store.add_key_hour(&add(&acme, &key, 0, &[(Outcome::Valid, 2), (Outcome::Expired, 1)])).await.unwrap();
    store.add_key_hour(&add(&acme, &key, 1, &[(Outcome::IpNotAllowed, 4)])).await.unwrap();
    store.add_key_hour(&add(&acme, &key, 5, &[(Outcome::Valid, 1)])).await.unwrap();
    store.add_key_hour(&add(&acme, &other, 1, &[(Outcome::Revoked, 7)])).await.unwrap();
    store.add_key_hour(&add(&globex, &KeyId::generate(), 1, &[(Outcome::Valid, 100)])).await.unwrap();
    store.add_unknown(hour(0), UnknownCounts { unknown: 2, malformed: 5 }).await.unwrap();

    let hours = store.key_hours(&acme, &key, hour(0), hour(5)).await.unwrap();
    assert_eq!(
        hours,
        vec![
            (hour(0), counts(&[(Outcome::Valid, 5), (Outcome::Expired, 1)])),
            (hour(1), counts(&[(Outcome::IpNotAllowed, 4)])),
        ],
        "added up, oldest first, and the until hour left out"
    );
    assert_eq!(store.key_hours(&acme, &key, hour(1), hour(6)).await.unwrap().len(), 2, "from since's hour on");
    assert!(store.key_hours(&globex, &key, hour(0), hour(6)).await.unwrap().is_empty(), "another tenant's view");

    let tenant_hours = store.tenant_hours(&acme, hour(0), hour(2)).await.unwrap();
    let mut seen: Vec<(DateTime<Utc>, KeyId, u64)> =
        tenant_hours.iter().map(|h| (h.hour, h.key.clone(), h.counts.total())).collect();
    seen.sort_by(|a, b| (a.0, a.1.as_str()).cmp(&(b.0, b.1.as_str())));
    let mut expected = vec![(hour(0), key.clone(), 6), (hour(1), key.clone(), 4), (hour(1), other.clone(), 7)];
    expected.sort_by(|a, b| (a.0, a.1.as_str()).cmp(&(b.0, b.1.as_str())));
    assert_eq!(seen, expected, "the tenant's key-hours in range, and no other tenant's");
    assert!(tenant_hours.iter().all(|h| h.tenant == acme));
}

async fn concurrent_flushes_add_up<S: VerificationStore + 'static>(store: S) {
    let store = Arc::new(store);
    let (acme, key) = (tenant(&unique_name("acme")), KeyId::generate());
    let mut flushes = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (store, acme, key) = (Arc::clone(&store), acme.clone(), key.clone());
        flushes.spawn(async move {
            let tally = Tally::new();
            for _ in 0..25 {
                tally.count(&acme, &key, Outcome::Valid, hour(0));
            }
            tally.count(&acme, &key, Outcome::Disabled, hour(0));
            flush(&tally, &*store).await;
            assert!(tally.drain().is_empty(), "everything was written");
        });
    }
    while let Some(done) = flushes.join_next().await {
        done.unwrap();
    }
    let hours = store.key_hours(&acme, &key, hour(0), hour(1)).await.unwrap();
    assert_eq!(hours, vec![(hour(0), counts(&[(Outcome::Valid, 200), (Outcome::Disabled, 8)]))]);
    let overview = store.tenant_hours(&acme, hour(0), hour(1)).await.unwrap();
    assert_eq!(overview.len(), 1);
    assert_eq!(overview[0].counts.total(), 208, "the tenant's view holds the same counts");
}

/// A store that refuses every write, as DynamoDB does while it is down.
struct Down;

impl VerificationStore for Down {
    async fn add_refusals(&self, _: &TenantId, _: &KeyId, _: &[Refusal]) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("down".into()))
    }
    async fn refusals(&self, _: &TenantId, _: &KeyId) -> Result<Vec<Refusal>, StoreError> {
        Ok(Vec::new())
    }
    async fn add_key_hour(&self, _: &KeyHour) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("down".into()))
    }
    async fn add_unknown(&self, _: DateTime<Utc>, _: UnknownCounts) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("down".into()))
    }
    async fn key_hours(
        &self,
        _: &TenantId,
        _: &KeyId,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, OutcomeCounts)>, StoreError> {
        Ok(Vec::new())
    }
    async fn tenant_hours(&self, _: &TenantId, _: DateTime<Utc>, _: DateTime<Utc>) -> Result<Vec<KeyHour>, StoreError> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_failed_flush_keeps_its_counts_for_the_next() {
    let store = fresh_dynamo().await;
    let (acme, key) = (tenant(&unique_name("acme")), KeyId::generate());
    let tally = Tally::new();
    tally.count(&acme, &key, Outcome::Valid, hour(0));
    tally.count_unknown(true, hour(0));
    flush(&tally, &Down).await;
    tally.count(&acme, &key, Outcome::Valid, hour(0));
    flush(&tally, &store).await;
    assert_eq!(
        store.key_hours(&acme, &key, hour(0), hour(1)).await.unwrap(),
        vec![(hour(0), counts(&[(Outcome::Valid, 2)]))]
    );
}

fn refusal(n: i64, code: &str) -> Refusal {
    Refusal {
        at: hour(0) + TimeDelta::seconds(n),
        code: code.into(),
        source_ip: Some("203.0.113.9".into()),
        method: Some("GET".into()),
        path: Some(format!("/v1/orders/{n}")),
    }
}

async fn a_key_keeps_its_latest_refusals_newest_first<S: VerificationStore>(store: S) {
    let (acme, key, other) = (tenant(&unique_name("acme")), KeyId::generate(), KeyId::generate());
    let first: Vec<Refusal> = (0..30).map(|n| refusal(n, "EXPIRED_API_KEY")).collect();
    store.add_refusals(&acme, &key, &first).await.unwrap();
    // Two in the same second, as a burst sends them: both kept, in order.
    let second: Vec<Refusal> = (30..60).map(|n| refusal(n.min(58), "INVALID_API_KEY")).collect();
    store.add_refusals(&acme, &key, &second).await.unwrap();
    store.add_refusals(&acme, &other, &[refusal(0, "DISABLED_API_KEY")]).await.unwrap();
    let kept = store.refusals(&acme, &key).await.unwrap();
    assert_eq!(kept.len(), REFUSALS_KEPT);
    assert_eq!(kept[0], refusal(58, "INVALID_API_KEY"), "newest first");
    assert_eq!(kept[REFUSALS_KEPT - 1], refusal(10, "EXPIRED_API_KEY"), "the oldest of the latest 50");
    assert_eq!(store.refusals(&acme, &other).await.unwrap().len(), 1, "each key its own");
    assert!(store.refusals(&tenant(&unique_name("globex")), &key).await.unwrap().is_empty(), "another tenant's view");
}

macro_rules! contract {
    ($name:ident, $make:expr) => {
        mod $name {
            #[tokio::test]
            async fn additions_add_up_and_read_back_in_range() {
                super::additions_add_up_and_read_back_in_range($make).await;
            }

            #[tokio::test]
            async fn a_key_keeps_its_latest_refusals_newest_first() {
                super::a_key_keeps_its_latest_refusals_newest_first($make).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_flushes_add_up() {
                super::concurrent_flushes_add_up($make).await;
            }
        }
    };
}

contract!(dynamodb, super::fresh_dynamo().await);
contract!(embedded, {
    let file =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(latchkey_tests::unique_name("verifications") + ".redb");
    latchkey::store::embedded::EmbeddedKeyStore::open(&file).unwrap()
});
