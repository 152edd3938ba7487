//! DynamoDB killed under load, then restarted: while it is down no request is allowed (every
//! answer is 503 SERVICE_UNAVAILABLE in the envelope), and once it is back the same process
//! answers 200 again, without a restart of ours. The local API on `--store dynamodb`, over HTTP,
//! with the authorizer's cache off so every request reaches the table.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Running;
use latchkey::store::schema::{create_keys_table, create_records_table};
use latchkey_tests::dynamodb_local::DynamoDbLocal;
use latchkey_tests::{dynamodb_client_at, patient_timeouts, unique_name};
use reqwest::Client;
use serde_json::Value;

/// (when the request was sent, when its answer came, status, error code).
type Answers = Arc<Mutex<Vec<(Instant, Instant, u16, Option<String>)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_killed_under_load_then_restarted() {
    let data = tempfile::tempdir().unwrap();
    let port = DynamoDbLocal::free_port();
    let mut engine = DynamoDbLocal::start_persistent_on(port, data.path()).await;
    // This test binary holds only this test, so the process environment is its own: the local
    // API's SDK finds this engine through the standard variable, as it would any endpoint.
    unsafe { std::env::set_var("AWS_ENDPOINT_URL_DYNAMODB", engine.endpoint()) };
    let client = dynamodb_client_at(&engine.endpoint(), patient_timeouts()).await;
    let (keys, records) = (unique_name("keys"), unique_name("records"));
    create_keys_table(&client, &keys).await.unwrap();
    create_records_table(&client, &records).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    // The cache off (its TTL 0): what is tested is that a read that fails is never an allow; a
    // decision cached before the outage would be one, for its TTL, by design.
    let api =
        Running::start_configured(dir.path(), Some((keys, records)), &[("LATCHKEY_CACHE_TTL_SECONDS", "0")]).await;
    let admin = api.admin_key.clone().unwrap();
    // The admin key's tier is not metered, so the load meets DynamoDB and never the rate limit.
    let key = admin.clone();
    let answers: Answers = Arc::default();
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (answers, running, url, key) =
            (Arc::clone(&answers), Arc::clone(&running), format!("{}/whoami", api.base), key.clone());
        load.push(tokio::spawn(async move {
            let client = Client::new();
            while running.load(std::sync::atomic::Ordering::SeqCst) {
                let sent = Instant::now();
                let response = client.get(&url).header("x-api-key", &key).send().await.unwrap();
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap();
                let code = body["error"]["code"].as_str().map(str::to_owned);
                answers.lock().unwrap().push((sent, Instant::now(), status, code));
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    engine.stop().await;
    let stopped = Instant::now();
    // Longer than an operation's timeout (4 s by default, retries included), so that requests
    // are sent, retried and answered while the engine is down.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let restarting = Instant::now();
    let _engine = DynamoDbLocal::start_persistent_on(port, data.path()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let recovered = loop {
        let after = answers.lock().unwrap().iter().any(|(sent, _, status, _)| *sent > restarting && *status == 200);
        if after || Instant::now() > deadline {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }

    let answers = std::mem::take(&mut *answers.lock().unwrap());
    let before = answers.iter().filter(|(sent, _, status, _)| *sent < stopped && *status == 200).count();
    assert!(before > 0, "the load ran before the outage");
    // Sent after the engine died and answered before it was started again. (A request sent
    // during the outage may be answered after the restart: the SDK retries within its timeout.)
    let down: Vec<_> =
        answers.iter().filter(|(sent, answered, _, _)| *sent > stopped && *answered < restarting).collect();
    assert!(!down.is_empty(), "the load ran during the outage");
    for (_, _, status, code) in &down {
        assert_eq!((*status, code.as_deref()), (503, Some("SERVICE_UNAVAILABLE")), "no allow while DynamoDB is down");
    }
    for (_, _, status, code) in answers.iter() {
        assert!(
            *status == 200 || (*status == 503 && code.as_deref() == Some("SERVICE_UNAVAILABLE")),
            "{status} {code:?}"
        );
    }
    assert!(recovered, "200 again after the restart, from the same process");
    api.stop().await;
}
