//! Usage credits through the authorizer, on DynamoDB Local, at the default decision cache (5 s):
//! N requests racing against a balance of M < N across two instances let exactly M through; a
//! refill boundary refills once; the Lambda answer of an exhausted key; what spends and what does
//! not; the credit events, once each.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use latchkey::credits::{CreditBalance, CreditStore, Credits, Refill, RefillInterval};
use latchkey::events::{KeyEvent, KeyEventType, KeyEvents};
use latchkey::store::KeyStore;
use latchkey::store::dynamo::DynamoKeyStore;
use latchkey::{ApiError, ApiKey, Clock, KeyProfile, KeyRecord, KeySpec, ManualClock, Meter, Permission};
use latchkey_authorizer::{Authorizer, RequestLine};
use latchkey_tests::StaticPepper;
use serde_json::{Value, json};

use crate::common::{self, PEPPER};

/// The events an authorizer sent, in order.
#[derive(Default)]
struct Recorded(Mutex<Vec<KeyEvent>>);

impl KeyEvents for Recorded {
    fn publish(&self, event: KeyEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recorded {
    fn types(&self) -> Vec<(KeyEventType, u64)> {
        let events = self.0.lock().unwrap();
        events.iter().map(|e| (e.event_type, e.key.credits.as_ref().map_or(u64::MAX, |c| c.remaining))).collect()
    }
}

struct Stack {
    store: Arc<DynamoKeyStore>,
    clock: Arc<ManualClock>,
    events: Arc<Recorded>,
}

impl Stack {
    async fn new(at: DateTime<Utc>) -> Self {
        Self {
            store: Arc::new(common::fresh_store().await),
            clock: Arc::new(ManualClock::new(at)),
            events: Arc::default(),
        }
    }

    /// One instance, as deployed but for the pool: its own 5 s cache, the stack's store and clock.
    async fn instance(&self) -> Authorizer<DynamoKeyStore, StaticPepper> {
        common::instance(Arc::clone(&self.store), self.clock.clone(), false).await.with_events(self.events.clone())
    }

    /// A key with `credits`, stored as `POST /keys` stores it: its balance, then its record.
    async fn metered_key(&self, credits: Credits) -> (ApiKey, KeyRecord) {
        let hasher = latchkey::KeyHasher::new(PEPPER, latchkey::PepperVersion::new("v1"));
        let mut spec = KeySpec::new(
            "acme".parse().unwrap(),
            "metered".into(),
            [Permission::Read].into_iter().collect(),
            "free".parse().unwrap(),
        );
        spec.meter = Some(Meter::Own);
        let (key, record) = KeyRecord::issue(&KeyProfile::latchkey(), &hasher, spec, self.clock.now());
        let meter = record.meter.clone().expect("its own meter");
        assert_eq!(meter, record.id);
        self.store.set_credits(&meter, Some(&CreditBalance::new(&credits, self.clock.now()))).await.unwrap();
        self.store.insert(&record).await.unwrap();
        (key, record)
    }
}

fn backend(path: &str) -> RequestLine<'_> {
    RequestLine { method: Some("GET"), path: Some(path) }
}

async fn call(authorizer: &Authorizer<DynamoKeyStore, StaticPepper>, key: &ApiKey, path: &str) -> Result<(), ApiError> {
    call_with(authorizer, key.expose_secret(), path).await
}

async fn call_with(
    authorizer: &Authorizer<DynamoKeyStore, StaticPepper>,
    key: &str,
    path: &str,
) -> Result<(), ApiError> {
    authorizer.authenticate_request([("x-api-key", key)], None, backend(path)).await.map(drop)
}

/// `n` requests for the backend, 16 in flight, spread over `instances` in turn: how many each
/// answer was.
async fn race(
    instances: &[Arc<Authorizer<DynamoKeyStore, StaticPepper>>],
    key: &ApiKey,
    n: usize,
) -> (usize, Vec<ApiError>) {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(16));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (authorizer, semaphore) = (Arc::clone(&instances[i % instances.len()]), semaphore.clone());
            let key = key.expose_secret().to_owned();
            tokio::spawn(async move {
                let _permit = semaphore.acquire().await.unwrap();
                call_with(&authorizer, &key, &format!("/orders/{i}")).await
            })
        })
        .collect();
    let (mut allowed, mut refused) = (0, Vec::new());
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => allowed += 1,
            Err(error) => refused.push(error),
        }
    }
    (allowed, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_on_two_instances_get_exactly_the_credits_through() {
    let stack = Stack::new(common::now() + TimeDelta::hours(12)).await;
    let (m, n) = (37, 100);
    let (key, record) = stack.metered_key(Credits { remaining: m, refill: None, low_threshold: Some(5) }).await;
    let instances = [Arc::new(stack.instance().await), Arc::new(stack.instance().await)];
    // Both instances have the record cached (a Latchkey route: admitted, nothing spent), so the
    // race below is decided by the balance alone, never by a read of the record.
    for instance in &instances {
        call(instance, &key, "/whoami").await.expect("a management route spends nothing");
    }
    let started = std::time::Instant::now();
    let (allowed, refused) = race(&instances, &key, n).await;
    let elapsed = started.elapsed();
    println!("{n} requests, {m} credits, 2 instances: {allowed} allowed, {} refused in {elapsed:?}", refused.len());
    assert_eq!(allowed, m as usize, "exactly the balance gets through");
    assert!(refused.iter().all(|e| *e == ApiError::UsageExceeded { refills_at: None }), "{refused:?}");
    assert_eq!(stack.store.credits(&record.id).await.unwrap().unwrap().remaining, 0);
    // The threshold and the last credit, each announced once, by whichever instance crossed it.
    // (Published by two instances at once: in either order.)
    let mut types = stack.events.types();
    types.sort_by_key(|(_, remaining)| std::cmp::Reverse(*remaining));
    assert_eq!(types, [(KeyEventType::CreditsLow, 5), (KeyEventType::CreditsExhausted, 0)]);
    // Latchkey's own routes still answer the key (and spend nothing); /ingest and the backend do not.
    call(&instances[0], &key, "/keys/key_x?limit=1").await.expect("a management route");
    for path in ["/ingest", "/", "/keys-of-the-backend", "/keys/a/b/c"] {
        assert!(matches!(call(&instances[1], &key, path).await, Err(ApiError::UsageExceeded { .. })), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refill_boundary_refills_once_and_the_refusal_says_when() {
    let last_second: DateTime<Utc> = (common::now() + TimeDelta::days(3) - TimeDelta::seconds(1)).to_utc();
    let stack = Stack::new(last_second).await;
    let refill = Refill { amount: 6, interval: RefillInterval::Day };
    let (key, _) = stack.metered_key(Credits { remaining: 2, refill: Some(refill), low_threshold: None }).await;
    let instances = [Arc::new(stack.instance().await), Arc::new(stack.instance().await)];
    let midnight = last_second + TimeDelta::seconds(1);
    let (allowed, refused) = race(&instances, &key, 5).await;
    assert_eq!(allowed, 2);
    assert!(refused.iter().all(|e| *e == ApiError::UsageExceeded { refills_at: Some(midnight) }), "{refused:?}");
    // Midnight: 20 requests race to the new day's 6 credits; the record is still cached.
    stack.clock.set(midnight);
    let (allowed, refused) = race(&instances, &key, 20).await;
    assert_eq!((allowed, refused.len()), (6, 14), "one refill of 6, not one per instance or per request");
    let tomorrow = midnight + TimeDelta::days(1);
    assert!(refused.iter().all(|e| *e == ApiError::UsageExceeded { refills_at: Some(tomorrow) }), "{refused:?}");
    // Two exhausted periods, two `key.credits_exhausted`; no threshold, no `key.credits_low`.
    let types = stack.events.types();
    assert_eq!(types, [(KeyEventType::CreditsExhausted, 0), (KeyEventType::CreditsExhausted, 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_answers_an_exhausted_key_with_the_envelope_and_an_unmetered_key_writes_nothing() {
    let stack = Stack::new(common::now() + TimeDelta::hours(1)).await;
    let refill = Refill { amount: 10, interval: RefillInterval::Month };
    let (key, _) = stack.metered_key(Credits { remaining: 0, refill: Some(refill), low_threshold: None }).await;
    let authorizer = stack.instance().await;
    let event = |path: &str, key: &str| {
        json!({
            "type": "REQUEST",
            "methodArn": format!("arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/GET{path}"),
            "resource": "/{proxy+}",
            "path": path,
            "httpMethod": "GET",
            "headers": {"x-api-key": key},
            "requestContext": {"identity": {"sourceIp": "203.0.113.7"}, "requestId": "r-1"},
        })
        .to_string()
    };
    let answer: Value = serde_json::from_slice(
        &authorizer.handle_event(event("/orders/1", key.expose_secret()).as_bytes()).await.unwrap(),
    )
    .unwrap();
    assert_eq!(answer["policyDocument"]["Statement"][0]["Effect"], "Deny");
    let body: Value = serde_json::from_str(answer["context"]["error_body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "USAGE_EXCEEDED");
    assert_eq!(body["error"]["details"]["refills_at"], "2026-07-01T00:00:00Z", "the next month");
    assert_eq!(answer["context"]["error_status"], "401");

    // A key without credits: allowed through the same path, its balance never touched (none is made).
    let counted = Arc::new(latchkey_tests::CountingStore::new(common::fresh_store().await));
    let hasher = latchkey::KeyHasher::new(PEPPER, latchkey::PepperVersion::new("v1"));
    let spec = KeySpec::new(
        "acme".parse().unwrap(),
        "plain".into(),
        [Permission::Read].into_iter().collect(),
        "free".parse().unwrap(),
    );
    let (plain, record) = KeyRecord::issue(&KeyProfile::latchkey(), &hasher, spec, stack.clock.now());
    counted.insert(&record).await.unwrap();
    let unmetered = common::instance(Arc::clone(&counted), stack.clock.clone(), false).await;
    for i in 0..10 {
        let path = format!("/orders/{i}");
        unmetered.authenticate_request([("x-api-key", plain.expose_secret())], None, backend(&path)).await.unwrap();
    }
    let spends = counted.spends.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(spends, 0, "a key without credits costs no write");
}
