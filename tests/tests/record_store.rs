//! The record store contract, against DynamoDB Local and the embedded (redb) store: records
//! stored in order (across shards in DynamoDB), retries reported as duplicates and never stored
//! twice, pagination exactly once, `since`, bounded deletes.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use latchkey::DatasourceId;
use latchkey::ingest::body::prepare;
use latchkey::ingest::dynamo::DynamoRecordStore;
use latchkey::ingest::{Identity, MAX_PAGE_BYTES, PutOutcome, RecordStore, StoredRecord};
use latchkey::store::Cursor;
use latchkey::store::schema::create_records_table;
use latchkey_tests::{sdk_config, unique_name};

async fn fresh_dynamo() -> DynamoRecordStore {
    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let table = unique_name("records");
    create_records_table(&client, &table).await.unwrap_or_else(|e| panic!("creating {table}: {e}"));
    DynamoRecordStore::new(client, table)
}

fn at(seconds: i64) -> DateTime<Utc> {
    "2030-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::seconds(seconds)
}

fn batch(count: usize, start: usize) -> String {
    let records: Vec<String> = (start..start + count).map(|n| format!(r#"{{"n": {n}}}"#)).collect();
    format!(r#"{{"records": [{}]}}"#, records.join(","))
}

async fn put(store: &impl RecordStore, ds: &DatasourceId, body: &str, key: Option<&str>, when: i64) -> Vec<PutOutcome> {
    let prepared = prepare(body.as_bytes(), key, at(when), rand_request()).unwrap();
    assert!(prepared.rejected.is_empty());
    let records: Vec<_> = prepared.records.into_iter().map(|(_, record)| record).collect();
    store.put(ds, &records).await
}

fn rand_request() -> u64 {
    uuid::Uuid::now_v7().as_u64_pair().1
}

async fn all(
    store: &impl RecordStore,
    ds: &DatasourceId,
    limit: u32,
    since: Option<DateTime<Utc>>,
) -> Vec<StoredRecord> {
    let mut records = Vec::new();
    let mut cursor: Option<Cursor<latchkey::ingest::Sequence>> = None;
    loop {
        let page = store.list(ds, since, limit, cursor.as_ref()).await.unwrap();
        assert!(page.items.len() <= limit as usize);
        let bytes = serde_json::to_string(&page.items).unwrap().len();
        assert!(bytes <= MAX_PAGE_BYTES, "a page of {bytes} bytes");
        records.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(Cursor::decode(&next).unwrap()),
            None => return records,
        }
    }
}

fn numbers(records: &[StoredRecord]) -> Vec<u64> {
    records
        .iter()
        .map(|r| serde_json::from_str::<serde_json::Value>(r.data.get()).unwrap()["n"].as_u64().unwrap())
        .collect()
}

async fn records_come_back_in_order_and_exactly_once(store: impl RecordStore) {
    let ds = DatasourceId::generate();
    // Three requests, a second apart: 300 records over eight shards.
    for (i, when) in [0, 1, 2].into_iter().enumerate() {
        let outcomes = put(&store, &ds, &batch(100, i * 100), None, when).await;
        assert!(outcomes.iter().all(|o| *o == PutOutcome::Stored), "{outcomes:?}");
    }
    for limit in [1, 7, 100] {
        let records = all(&store, &ds, limit, None).await;
        assert_eq!(numbers(&records), (0..300).collect::<Vec<u64>>(), "limit {limit}");
    }
    // `since` starts at a receive time.
    let from_second = all(&store, &ds, 50, Some(at(1))).await;
    assert_eq!(numbers(&from_second), (100..300).collect::<Vec<u64>>());
    assert_eq!(from_second[0].received_at, at(1));
    // Another datasource sees nothing of these.
    assert!(all(&store, &DatasourceId::generate(), 10, None).await.is_empty());
}

/// Client ids whose records all land in one shard (`Some`), or in any other (`None`).
fn ids_in_shard(prefix: &str, shard: Option<u8>, count: usize) -> Vec<String> {
    let hit = |id: &String| {
        let of = Identity::of(Some(id), None, 0).shard();
        shard.map_or(of != 0, |shard| of == shard)
    };
    (0..).map(|n| format!("{prefix}-{n}")).filter(hit).take(count).collect()
}

/// A DynamoDB query stops at 1 MB: a shard of large records answers with a few while the others
/// answer with a page each. Whoever sends records chooses their shard through their `id`.
async fn large_and_small_records_across_shards_come_back_exactly_once(store: impl RecordStore) {
    let ds = DatasourceId::generate();
    let (big, small) = (ids_in_shard("big", Some(0), 25), ids_in_shard("small", None, 75));
    // Nearly the largest record ingest takes (MAX_RECORD_BYTES, 190,000 B: the `by_sequence`
    // index projects everything, so DynamoDB counts an item twice against its 400 KB limit).
    let pad = "x".repeat(latchkey::ingest::MAX_RECORD_BYTES - 100);
    // Each large record, then three small ones: 100 records, 4.75 MB, in one request.
    let mut records = Vec::new();
    let mut small = small.iter();
    for id in &big {
        records.push(format!(r#"{{"id": "{id}", "n": {}, "pad": "{pad}"}}"#, records.len()));
        for _ in 0..3 {
            records.push(format!(r#"{{"id": "{}", "n": {}}}"#, small.next().unwrap(), records.len()));
        }
    }
    let body = format!(r#"{{"records": [{}]}}"#, records.join(","));
    let outcomes = put(&store, &ds, &body, None, 0).await;
    assert!(outcomes.iter().all(|o| *o == PutOutcome::Stored), "{outcomes:?}");
    for limit in [100, 7] {
        let records = all(&store, &ds, limit, None).await;
        assert_eq!(numbers(&records), (0..100).collect::<Vec<u64>>(), "limit {limit}");
    }
    // A page stops at its byte bound before its count: 25 large records take more than one.
    let first = store.list(&ds, None, 100, None).await.unwrap();
    assert!(first.items.len() < 100 && first.next_cursor.is_some(), "{} records", first.items.len());
}

async fn retries_are_duplicates_never_copies(store: impl RecordStore) {
    let ds = DatasourceId::generate();
    let first = put(&store, &ds, &batch(30, 0), Some("req-1"), 0).await;
    assert!(first.iter().all(|o| *o == PutOutcome::Stored));
    // The same request again, later (a client retry): every record a duplicate.
    let again = put(&store, &ds, &batch(30, 0), Some("req-1"), 5).await;
    assert!(again.iter().all(|o| *o == PutOutcome::Duplicate), "{again:?}");
    // Client ids deduplicate across requests and keys.
    let with_ids = r#"{"records": [{"id": "a", "n": 100}, {"id": "b", "n": 101}]}"#;
    assert!(put(&store, &ds, with_ids, Some("req-2"), 6).await.iter().all(|o| *o == PutOutcome::Stored));
    let overlap = r#"{"records": [{"id": "b", "n": 101}, {"id": "c", "n": 102}]}"#;
    assert_eq!(put(&store, &ds, overlap, None, 7).await, [PutOutcome::Duplicate, PutOutcome::Stored]);
    // Without an idempotency key or ids, a resend is new records.
    assert!(put(&store, &ds, &batch(2, 200), None, 8).await.iter().all(|o| *o == PutOutcome::Stored));
    assert!(put(&store, &ds, &batch(2, 200), None, 9).await.iter().all(|o| *o == PutOutcome::Stored));

    let records = all(&store, &ds, 100, None).await;
    assert_eq!(records.len(), 30 + 3 + 4);
    let ids: HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), records.len(), "no record twice");
    // The first write's receive time stands.
    assert!(records[..30].iter().all(|r| r.received_at == at(0)));
}

/// Every stored record carries the table's TTL attribute: records outlive nothing by more than
/// the retention (`LATCHKEY_RECORD_TTL_DAYS`, 90 days by default), not even those a warm
/// authorizer let in after their datasource's delete.
#[tokio::test]
async fn every_record_expires_after_the_retention() {
    let store = fresh_dynamo().await;
    let ds = DatasourceId::generate();
    assert!(put(&store, &ds, &batch(20, 0), None, 0).await.iter().all(|o| *o == PutOutcome::Stored));
    let items = store.client().scan().table_name(store.table()).send().await.unwrap().items.unwrap_or_default();
    assert_eq!(items.len(), 20);
    let expected = (at(0) + TimeDelta::days(90)).timestamp().to_string();
    for item in &items {
        let ttl = item.get(latchkey::store::schema::TTL_ATTRIBUTE).and_then(|ttl| ttl.as_n().ok());
        assert_eq!(ttl, Some(&expected), "{:?}", item.get("id"));
    }
}

#[tokio::test]
async fn an_unreachable_table_fails_each_record_without_panicking() {
    let store = DynamoRecordStore::new(
        latchkey_tests::dynamodb_client_at("http://127.0.0.1:9", latchkey_tests::short_timeouts()).await,
        "nowhere",
    );
    let outcomes = put(&store, &DatasourceId::generate(), &batch(3, 0), None, 0).await;
    assert!(outcomes.iter().all(|o| matches!(o, PutOutcome::Failed(_))), "{outcomes:?}");
    assert!(store.list(&DatasourceId::generate(), None, 10, None).await.is_err());
}

async fn deleting_a_datasources_records_goes_in_bounded_steps(store: impl RecordStore) {
    let (ds, other) = (DatasourceId::generate(), DatasourceId::generate());
    for n in 0..3 {
        put(&store, &ds, &batch(100, n * 100), None, n as i64).await;
    }
    put(&store, &other, &batch(5, 0), None, 0).await;
    let mut total = 0;
    let mut calls = 0;
    loop {
        let step = store.delete_records(&ds, 120).await.unwrap();
        assert!(step.deleted <= 120);
        total += step.deleted;
        calls += 1;
        if !step.remaining {
            break;
        }
        assert!(calls < 10);
    }
    assert_eq!(total, 300);
    assert!(calls >= 3, "the budget bounds each call");
    assert!(all(&store, &ds, 100, None).await.is_empty());
    assert_eq!(all(&store, &other, 100, None).await.len(), 5, "another datasource keeps its records");
    assert_eq!(store.delete_records(&ds, 120).await.unwrap().deleted, 0);
}

/// The ingest cap's count: per datasource and day, never past the cap, nothing counted when
/// refused, and the counter invisible to listings.
async fn the_daily_count_stops_at_the_cap(store: impl RecordStore) {
    let (ds, other) = (DatasourceId::generate(), DatasourceId::generate());
    let day: chrono::NaiveDate = "2100-01-01".parse().unwrap();
    assert!(store.count_received(&ds, day, 6, 10).await.unwrap());
    assert!(!store.count_received(&ds, day, 5, 10).await.unwrap(), "6 + 5 passes 10");
    assert!(store.count_received(&ds, day, 4, 10).await.unwrap(), "the refused 5 were not counted");
    assert!(!store.count_received(&ds, day, 1, 10).await.unwrap());
    assert!(store.count_received(&other, day, 10, 10).await.unwrap(), "another datasource");
    assert!(store.count_received(&ds, day.succ_opt().unwrap(), 10, 10).await.unwrap(), "the next day");
    assert!(!store.count_received(&ds, day, 11, 10).await.unwrap(), "more than the cap at once");
    assert!(store.list(&ds, None, 100, None).await.unwrap().items.is_empty());
}

macro_rules! contract {
    ($store_module:ident, $make:expr) => {
        mod $store_module {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn records_come_back_in_order_and_exactly_once() {
                super::records_come_back_in_order_and_exactly_once($make).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn large_and_small_records_across_shards_come_back_exactly_once() {
                super::large_and_small_records_across_shards_come_back_exactly_once($make).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_daily_count_stops_at_the_cap() {
                super::the_daily_count_stops_at_the_cap($make).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn retries_are_duplicates_never_copies() {
                super::retries_are_duplicates_never_copies($make).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn deleting_a_datasources_records_goes_in_bounded_steps() {
                super::deleting_a_datasources_records_goes_in_bounded_steps($make).await;
            }
        }
    };
}

contract!(dynamodb, super::fresh_dynamo().await);
contract!(embedded, {
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(latchkey_tests::unique_name("records") + ".redb");
    latchkey::store::embedded::EmbeddedKeyStore::open(&file).unwrap()
});
