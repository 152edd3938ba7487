//! `POST /ingest` as the deployed API runs it (authorizer, then the function as a proxy event)
//! against DynamoDB Local: nothing saved without a valid ingest key, bad bodies refused or
//! rejected record by record, and retries under injected faults storing every acknowledged
//! record exactly once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use latchkey::datasource::{Datasource, DatasourceStore};
use latchkey::ingest::dynamo::DynamoRecordStore;
use latchkey::ingest::service::IngestService;
use latchkey::ingest::{
    DEFAULT_DAILY_CAP, MAX_RECORD_BYTES, MAX_RECORDS, NewRecord, PutOutcome, RecordStore, RecordsDeleted, Sequence,
    StoredRecord,
};
use latchkey::pepper::CachedPepper;
use latchkey::store::dynamo::DynamoKeyStore;
use latchkey::store::schema::create_records_table;
use latchkey::store::{Cursor, KeyStore, Page, StoreError};
use latchkey::{DatasourceId, KeyProfile, KeyRecord, KeySpec, ManualClock, Permission};
use latchkey_authorizer::{Authorizer, Dependencies};
use latchkey_tests::api_gateway::{self, Answer};
use latchkey_tests::dynamodb_local::DynamoDbLocal;
use latchkey_tests::{StaticPepper, sdk_config, unique_name};
use serde_json::{Value, json};

const PEPPER: &[u8] = b"ingest-tests-pepper-0123456789abcdef0123";

fn start() -> DateTime<Utc> {
    "2100-01-01T00:00:00Z".parse().unwrap()
}

struct Stack<R> {
    authorizer: Authorizer<DynamoKeyStore, StaticPepper>,
    keys: Arc<DynamoKeyStore>,
    ingest: IngestService<R, DynamoKeyStore>,
    clock: Arc<ManualClock>,
}

impl<R: RecordStore> Stack<R> {
    async fn post(&self, headers: &[(&str, &str)], body: &str) -> Answer {
        self.request(headers, "POST", body).await
    }

    async fn request(&self, headers: &[(&str, &str)], method: &str, body: &str) -> Answer {
        let authorize = |event: Vec<u8>| async move { self.authorizer.handle_event(&event).await.map_err(drop) };
        let invoke = |event: String| async move {
            let request = lambda_http::request::from_str(&event).unwrap();
            Answer::of(latchkey_ingest::respond(&self.ingest, request).await)
        };
        api_gateway::request(authorize, invoke, headers, method, "/ingest", Some(body)).await
    }

    /// A key stored the way the key functions store one, with its datasource.
    async fn key(&self, permissions: &[Permission], datasource: Option<&DatasourceId>) -> (String, KeyRecord) {
        let peppers = CachedPepper::load(StaticPepper::new(PEPPER, "v1"), Duration::from_secs(300)).await.unwrap();
        let spec = KeySpec {
            tenant_id: "acme".parse().unwrap(),
            name: "device".into(),
            permissions: permissions.iter().copied().collect(),
            tier: "free".parse().unwrap(),
            expires_at: None,
            datasource_id: datasource.cloned(),
            replaces: None,
            owner_id: None,
            meta: Default::default(),
            enabled: true,
            ip_allowlist: Default::default(),
            meter: None,
        };
        let (key, record) = KeyRecord::issue(&KeyProfile::latchkey(), &peppers.current().await.current, spec, start());
        self.keys.insert(&record).await.unwrap();
        if let Some(id) = datasource {
            let datasource = Datasource {
                id: id.clone(),
                tenant_id: record.tenant_id.clone(),
                name: "meters".into(),
                created_at: start(),
                key_id: record.id.clone(),
            };
            match self.keys.insert_datasource(&datasource).await {
                Ok(()) | Err(StoreError::AlreadyExists) => {}
                Err(error) => panic!("{error}"),
            }
        }
        (key.expose_secret().to_owned(), record)
    }

    async fn stored(&self, datasource: &DatasourceId) -> Vec<StoredRecord> {
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.ingest.records.list(datasource, None, 100, cursor.as_ref()).await.unwrap();
            all.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(Cursor::decode(&next).unwrap()),
                None => return all,
            }
        }
    }
}

async fn stack_with<R: RecordStore>(wrap: impl FnOnce(DynamoRecordStore) -> R) -> Stack<R> {
    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let table = unique_name("records");
    create_records_table(&client, &table).await.unwrap();
    let records = DynamoRecordStore::new(client, table);
    let keys = Arc::new(latchkey_tests::fresh_dynamo_store(TimeDelta::days(30)).await);
    let clock = Arc::new(ManualClock::new(start()));
    let authorizer = Authorizer::new(Dependencies {
        store: Arc::clone(&keys),
        peppers: CachedPepper::load(StaticPepper::new(PEPPER, "v1"), Duration::from_secs(300)).await.unwrap(),
        clock: clock.clone(),
        profile: KeyProfile::latchkey(),
        cache_ttl: Duration::ZERO,
        cache_capacity: 0,
        jwt: None,
        sessions: None,
        session_usage_keys: None,
        gateway_pool: false,
    });
    let ingest = IngestService {
        records: Arc::new(wrap(records)),
        datasources: Arc::clone(&keys),
        clock: clock.clone(),
        daily_cap: DEFAULT_DAILY_CAP,
    };
    Stack { authorizer, keys, ingest, clock }
}

async fn stack() -> Stack<DynamoRecordStore> {
    stack_with(|records| records).await
}

/// Deleting a datasource revokes its keys; a key that was missed (issue 28: a regenerated key
/// nothing led to) still saves nothing once its datasource is gone.
#[tokio::test]
async fn a_key_whose_datasource_is_gone_saves_nothing() {
    let stack = stack().await;
    let datasource = DatasourceId::generate();
    let (key, record) = stack.key(&[Permission::Ingest], Some(&datasource)).await;
    let header = [("x-api-key", key.as_str())];
    stack.post(&header, r#"{"t": 1}"#).await.expect(202);
    stack.keys.delete_datasource(&record.tenant_id, &datasource).await.unwrap();
    stack.post(&header, r#"{"t": 2}"#).await.expect_error(401, "INVALID_API_KEY");
    assert_eq!(stack.stored(&datasource).await.len(), 1, "a record was saved for a datasource that is gone");
}

#[tokio::test]
async fn nothing_is_saved_without_a_valid_ingest_key() {
    let stack = stack().await;
    let datasource = DatasourceId::generate();
    let (ingest_key, _) = stack.key(&[Permission::Ingest], Some(&datasource)).await;
    let (read_key, _) = stack.key(&[Permission::Read, Permission::Write], None).await;
    let (revoked_key, revoked) = stack.key(&[Permission::Ingest], Some(&datasource)).await;
    stack.keys.revoke(&revoked.tenant_id, &revoked.id, start()).await.unwrap();
    let (expiring_key, expiring) = stack.key(&[Permission::Ingest], Some(&datasource)).await;
    let body = r#"{"temperature": 21.5}"#;

    stack.post(&[], body).await.expect_error(401, "MISSING_API_KEY");
    stack.post(&[("x-api-key", "lk_not-a-key")], body).await.expect_error(401, "INVALID_API_KEY_FORMAT");
    let unknown = KeyProfile::latchkey().generate();
    stack.post(&[("x-api-key", unknown.expose_secret())], body).await.expect_error(401, "INVALID_API_KEY");
    stack.post(&[("x-api-key", &revoked_key)], body).await.expect_error(401, "INVALID_API_KEY");
    stack.post(&[("x-api-key", &read_key)], body).await.expect_error(403, "INSUFFICIENT_PERMISSIONS");
    let mut expired = expiring.clone();
    expired.expires_at = Some(start() - TimeDelta::seconds(1));
    stack
        .keys
        .update(
            &expired.tenant_id,
            &expired.id,
            &latchkey::KeyChanges { expires_at: expired.expires_at, ..Default::default() },
        )
        .await
        .unwrap();
    stack.post(&[("x-api-key", &expiring_key)], body).await.expect_error(401, "EXPIRED_API_KEY");
    assert!(stack.stored(&datasource).await.is_empty(), "nothing was written");

    // The three header styles (seed 002 sends a bare Authorization).
    let bearer = format!("Bearer {ingest_key}");
    for header in
        [("x-api-key", ingest_key.as_str()), ("Authorization", bearer.as_str()), ("authorization", ingest_key.as_str())]
    {
        let answer = stack.post(&[header], body).await.expect(202);
        assert_eq!(answer, json!({"accepted": 1, "duplicates": 0, "rejected": []}));
    }
    let stored = stack.stored(&datasource).await;
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[0].data.get(), body);
    assert_eq!(stored[0].received_at, start());
    // Another method on /ingest.
    let put = stack.request(&[("x-api-key", &ingest_key)], "PUT", body).await;
    put.expect_error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(put.headers["allow"], "POST");
}

#[tokio::test]
async fn bad_bodies_and_bad_records() {
    let stack = stack().await;
    let datasource = DatasourceId::generate();
    let (key, _) = stack.key(&[Permission::Ingest], Some(&datasource)).await;
    let header = [("x-api-key", key.as_str())];

    for (body, field) in
        [("not json", "body"), ("[1, 2]", "body"), ("\"text\"", "body"), (r#"{"records": []}"#, "records")]
    {
        let answer = stack.post(&header, body).await;
        answer.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(answer.body["error"]["details"]["field"], field, "{body}");
    }
    let too_many = json!({"records": vec![json!({"n": 1}); MAX_RECORDS + 1]}).to_string();
    stack.post(&header, &too_many).await.expect_error(400, "VALIDATION_ERROR");
    let oversized_body = json!({"blob": "x".repeat(latchkey::ingest::MAX_BODY_BYTES)}).to_string();
    stack.post(&header, &oversized_body).await.expect_error(413, "PAYLOAD_TOO_LARGE");
    let bad_key = [("x-api-key", key.as_str()), ("Idempotency-Key", "has spaces")];
    stack.post(&bad_key, "{}").await.expect_error(400, "VALIDATION_ERROR");
    // Not visible ASCII: refused, not taken for an absent key (a retry would store twice).
    let unreadable_key = [("x-api-key", key.as_str()), ("Idempotency-Key", "clé-1")];
    stack.post(&unreadable_key, "{}").await.expect_error(400, "VALIDATION_ERROR");
    assert!(stack.stored(&datasource).await.is_empty(), "no refused request stored anything");

    // Bad records are rejected alone; the rest are stored.
    let big = json!({"blob": "x".repeat(MAX_RECORD_BYTES)});
    let body = json!({"records": [{"n": 0}, 7, {"n": 2, "id": 12}, big, {"n": 4, "id": "dev-4"}]}).to_string();
    let answer = stack.post(&header, &body).await.expect(202);
    assert_eq!((answer["accepted"].as_u64(), answer["duplicates"].as_u64()), (Some(2), Some(0)));
    let rejected: Vec<(u64, &str)> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    assert_eq!(rejected, [(1, "VALIDATION_ERROR"), (2, "VALIDATION_ERROR"), (3, "PAYLOAD_TOO_LARGE")]);
    let stored = stack.stored(&datasource).await;
    let ids: Vec<&str> = stored.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[1], "dev-4", "in the order sent");
}

#[tokio::test]
async fn the_largest_record_ingest_accepts_is_one_dynamodb_stores() {
    let stack = stack().await;
    let datasource = DatasourceId::generate();
    let (key, _) = stack.key(&[Permission::Ingest], Some(&datasource)).await;
    // Exactly MAX_RECORD_BYTES of JSON: accepted, stored, listed back whole.
    let largest = format!(r#"{{"blob":"{}"}}"#, "x".repeat(MAX_RECORD_BYTES - r#"{"blob":""}"#.len()));
    assert_eq!(largest.len(), MAX_RECORD_BYTES);
    let body = format!(r#"{{"records": [{largest}]}}"#);
    let answer = stack.post(&[("x-api-key", key.as_str())], &body).await.expect(202);
    assert_eq!(answer["accepted"], 1, "{answer}");
    let stored = stack.stored(&datasource).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].data.get().len(), MAX_RECORD_BYTES);
}

#[tokio::test]
async fn a_datasource_past_its_daily_cap_is_refused_whichever_instance_it_reaches() {
    let mut stack = stack().await;
    stack.ingest.daily_cap = 10;
    let datasource = DatasourceId::generate();
    let (key, record) = stack.key(&[Permission::Ingest], Some(&datasource)).await;
    let header = [("x-api-key", key.as_str())];
    let batch = |n: usize| json!({"records": (0..n).map(|i| json!({"i": i})).collect::<Vec<_>>()}).to_string();
    // A second instance of the function over the same table, with its own memory.
    let other = IngestService {
        records: Arc::new(DynamoRecordStore::new(
            stack.ingest.records.client().clone(),
            stack.ingest.records.table().to_owned(),
        )),
        datasources: Arc::clone(&stack.keys),
        clock: stack.clock.clone(),
        daily_cap: 10,
    };
    let caller = || {
        Ok(latchkey::manage::Caller {
            actor: latchkey::manage::Actor::Key(record.id.clone()),
            tenant: record.tenant_id.clone(),
            permissions: record.permissions.clone(),
            datasource: Some(datasource.clone()),
            request_id: None,
            key_view: None,
            meter: None,
        })
    };

    assert_eq!(stack.post(&header, &batch(6)).await.expect(202)["accepted"], 6);
    // 6 + 5 would pass 10: refused whole, nothing stored, until midnight UTC.
    let refused = other.ingest(caller(), None, batch(5).as_bytes()).await;
    assert_eq!(refused.status, 429);
    let body: Value = serde_json::from_str(refused.body.as_deref().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "QUOTA_EXCEEDED");
    assert_eq!(body["error"]["details"]["retry_after_seconds"], "86400", "the clock is at midnight");
    assert!(refused.headers.contains(&("retry-after", "86400".to_owned())));
    assert_eq!(stack.stored(&datasource).await.len(), 6);
    // What still fits is taken, on either instance; then nothing more that day.
    assert_eq!(other.ingest(caller(), None, batch(4).as_bytes()).await.status, 202);
    stack.post(&header, &batch(1)).await.expect_error(429, "QUOTA_EXCEEDED");
    // Another datasource has a day of its own; and the next day starts again.
    let elsewhere = DatasourceId::generate();
    let (other_key, _) = stack.key(&[Permission::Ingest], Some(&elsewhere)).await;
    stack.post(&[("x-api-key", other_key.as_str())], &batch(10)).await.expect(202);
    stack.clock.advance(TimeDelta::days(1));
    stack.post(&header, &batch(10)).await.expect(202);
    assert_eq!(stack.stored(&datasource).await.len(), 20);
}

#[tokio::test]
async fn idempotency_keys_and_record_ids_make_retries_harmless() {
    let stack = stack().await;
    let datasource = DatasourceId::generate();
    let (key, _) = stack.key(&[Permission::Ingest], Some(&datasource)).await;
    let body = json!({"records": [{"n": 1}, {"n": 2}, {"id": "fixed", "n": 3}]}).to_string();
    let with_key = [("x-api-key", key.as_str()), ("Idempotency-Key", "batch-0001")];
    assert_eq!(stack.post(&with_key, &body).await.expect(202)["accepted"], 3);
    stack.clock.advance(TimeDelta::seconds(5));
    let again = stack.post(&with_key, &body).await.expect(202);
    assert_eq!(again, json!({"accepted": 0, "duplicates": 3, "rejected": []}));
    // Without the header, only the record with an id is recognised.
    let plain = stack.post(&[("x-api-key", key.as_str())], &body).await.expect(202);
    assert_eq!(plain, json!({"accepted": 2, "duplicates": 1, "rejected": []}));
    assert_eq!(stack.stored(&datasource).await.len(), 5);
}

/// The real store, failing a seeded share of writes (as throttling past the SDK's retries or an
/// outage would), after or before really writing some of them (an answer lost on the way).
struct Flaky {
    inner: DynamoRecordStore,
    state: Mutex<u64>,
    failures: AtomicU64,
}

impl Flaky {
    fn roll(&self) -> u64 {
        let mut state = self.state.lock().unwrap();
        // xorshift64: seeded, so a failing run can be replayed.
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state % 100
    }
}

impl RecordStore for Flaky {
    async fn put(&self, datasource: &DatasourceId, records: &[NewRecord]) -> Vec<PutOutcome> {
        let mut fate = Vec::with_capacity(records.len());
        let mut written = Vec::new();
        for record in records {
            let roll = self.roll();
            // 20 %: not written; 10 %: written but the answer lost; 70 %: written.
            fate.push(roll);
            if roll >= 20 {
                written.push(record.clone());
            }
        }
        let mut outcomes = self.inner.put(datasource, &written).await.into_iter();
        fate.into_iter()
            .map(|roll| {
                if roll < 20 {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    return PutOutcome::Failed("injected: throttled".into());
                }
                let outcome = outcomes.next().unwrap();
                if roll < 30 {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    PutOutcome::Failed("injected: the answer was lost".into())
                } else {
                    outcome
                }
            })
            .collect()
    }

    async fn list(
        &self,
        datasource: &DatasourceId,
        since: Option<DateTime<Utc>>,
        limit: u32,
        after: Option<&Cursor<Sequence>>,
    ) -> Result<Page<StoredRecord>, StoreError> {
        self.inner.list(datasource, since, limit, after).await
    }

    async fn count_received(
        &self,
        datasource: &DatasourceId,
        day: chrono::NaiveDate,
        records: u64,
        cap: u64,
    ) -> Result<bool, StoreError> {
        self.inner.count_received(datasource, day, records, cap).await
    }

    async fn delete_records(&self, datasource: &DatasourceId, budget: u32) -> Result<RecordsDeleted, StoreError> {
        self.inner.delete_records(datasource, budget).await
    }
}

#[tokio::test]
async fn under_injected_faults_every_acknowledged_record_is_stored_exactly_once() {
    let stack =
        stack_with(|inner| Flaky { inner, state: Mutex::new(0x5eed_1234_abcd_0042), failures: AtomicU64::new(0) })
            .await;
    let datasource = DatasourceId::generate();
    let (key, _) = stack.key(&[Permission::Ingest], Some(&datasource)).await;
    let mut acknowledged: HashMap<u64, String> = HashMap::new();
    let mut sent = 0;
    for batch in 0..20 {
        let records: Vec<Value> = (0..25).map(|i| json!({"n": batch * 25 + i})).collect();
        let body = json!({"records": records}).to_string();
        let idempotency = format!("batch-{batch}");
        let headers = [("x-api-key", key.as_str()), ("Idempotency-Key", idempotency.as_str())];
        sent += 25;
        // The client sends the same request (same Idempotency-Key) again until every record has
        // been acknowledged once: 202, or a 503 that does not list it.
        let mut pending: HashSet<u64> = (0..25).collect();
        for attempt in 0.. {
            assert!(attempt < 50, "batch {batch} never got through");
            let answer = stack.post(&headers, &body).await;
            if answer.status == 202 {
                let accounted = answer.body["accepted"].as_u64().unwrap() + answer.body["duplicates"].as_u64().unwrap();
                assert_eq!(accounted, 25);
                pending.clear();
            } else {
                answer.expect_error(503, "SERVICE_UNAVAILABLE");
                let not_stored: HashSet<u64> = answer.body["error"]["details"]["not_stored"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|index| index.as_u64().unwrap())
                    .collect();
                let accepted = answer.body["accepted"].as_u64().unwrap();
                let duplicates = answer.body["duplicates"].as_u64().unwrap();
                assert_eq!(accepted + duplicates + not_stored.len() as u64, 25, "every record accounted for");
                pending.retain(|index| not_stored.contains(index));
            }
            if pending.is_empty() {
                break;
            }
        }
        for n in batch * 25..batch * 25 + 25 {
            acknowledged.insert(n, idempotency.clone());
        }
    }
    assert!(stack.ingest.records.failures.load(Ordering::Relaxed) > 50, "the faults really happened");

    let stored = stack.stored(&datasource).await;
    let mut numbers: Vec<u64> =
        stored.iter().map(|r| serde_json::from_str::<Value>(r.data.get()).unwrap()["n"].as_u64().unwrap()).collect();
    numbers.sort_unstable();
    assert_eq!(numbers.len(), sent as usize, "0 lost, 0 duplicated");
    assert_eq!(numbers, (0..sent).collect::<Vec<u64>>());
    assert_eq!(acknowledged.len(), sent as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_stopped_mid_run_then_restarted_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = DynamoDbLocal::free_port();
    let mut engine = DynamoDbLocal::start_persistent_on(port, dir.path()).await;
    let client = latchkey_tests::dynamodb_client_at(&engine.endpoint(), latchkey_tests::short_timeouts()).await;
    let table = unique_name("records");
    create_records_table(&client, &table).await.unwrap();
    let records = DynamoRecordStore::new(client, table);
    let stack = stack_with(|_| records.clone()).await;
    let datasource = DatasourceId::generate();
    let (key, _) = stack.key(&[Permission::Ingest], Some(&datasource)).await;
    let send = |batch: u64| {
        let body = json!({"records": (0..10).map(|i| json!({"n": batch * 10 + i})).collect::<Vec<_>>()}).to_string();
        let idempotency = format!("batch-{batch}");
        let key = key.clone();
        let stack = &stack;
        async move { stack.post(&[("x-api-key", key.as_str()), ("Idempotency-Key", idempotency.as_str())], &body).await }
    };

    for batch in 0..3 {
        assert_eq!(send(batch).await.expect(202)["accepted"], 10);
    }
    engine.stop().await;
    // Down: every record of these requests is reported not stored; nothing panics.
    for batch in 3..6 {
        let answer = send(batch).await;
        answer.expect_error(503, "SERVICE_UNAVAILABLE");
        assert_eq!(answer.body["error"]["details"]["not_stored"].as_array().unwrap().len(), 10);
        assert_eq!(answer.headers["retry-after"], "1");
    }
    // Back on the same port and data: the client's retries go through; the first batches stay.
    let _engine = DynamoDbLocal::start_persistent_on(port, dir.path()).await;
    for batch in 3..6 {
        let mut answer = send(batch).await;
        for _ in 0..20 {
            if answer.status == 202 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            answer = send(batch).await;
        }
        assert_eq!(answer.expect(202)["accepted"], 10);
    }
    for batch in 0..6 {
        assert_eq!(send(batch).await.expect(202)["duplicates"], 10, "batch {batch} again");
    }
    let mut numbers: Vec<u64> = stack
        .stored(&datasource)
        .await
        .iter()
        .map(|r| serde_json::from_str::<Value>(r.data.get()).unwrap()["n"].as_u64().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..60).collect::<Vec<u64>>(), "0 lost, 0 duplicated");
}
