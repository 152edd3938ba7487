//! Usage credits on the local API, over HTTP, in front of a real backend and with a real webhook
//! receiver: a key made with credits spends one per forwarded request and per `/ingest`, none on
//! Latchkey's own routes; spent, it is refused `401 USAGE_EXCEEDED` with `refills_at` (the status
//! the deployed authorizer's refusals have) and the backend never sees the request; GET, the list
//! and `/whoami` show what is left; PATCH sets credits anew or takes them away; the credit events
//! reach the webhook once each; bad credits name their field.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use common::Running;
use latchkey_tests::echo::EchoServer;
use reqwest::Method;
use serde_json::{Value, json};

/// A receiver that accepts every delivery: the events' bodies, in order.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    async fn receive(State(seen): State<Arc<Mutex<Vec<Value>>>>, body: Bytes) -> axum::http::StatusCode {
        seen.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
        axum::http::StatusCode::NO_CONTENT
    }
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hooks", post(receive)).with_state(Arc::clone(&seen));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// The next UTC midnight, as the API writes times.
fn next_midnight() -> String {
    let tomorrow = chrono::Utc::now().date_naive().succ_opt().unwrap();
    tomorrow.and_hms_opt(0, 0, 0).unwrap().and_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metered_key_spends_on_the_backend_and_ingest_and_is_refused_when_spent() {
    let echo = EchoServer::start().await;
    let (hooks, events) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let vars = [("LATCHKEY_UPSTREAM", echo.url.as_str()), ("LATCHKEY_WEBHOOK_URL", hooks.as_str())];
    let api = Running::start_configured(dir.path(), None, &vars).await;
    let admin = api.admin_key.clone().unwrap();
    let manage = |method: Method, path: String, body: Option<Value>| {
        let (api, admin) = (&api, admin.clone());
        async move { api.json(Some(&admin), method, &path, body).await }
    };

    let credits = json!({"remaining": 3, "refill": {"amount": 5, "interval": "day"}, "low_threshold": 1});
    let (status, created) =
        manage(Method::POST, "/keys".into(), Some(json!({"name": "metered", "tier": "starter", "credits": credits})))
            .await;
    assert_eq!(status, 201, "{created}");
    let expected = json!({"remaining": 3, "refill": {"amount": 5, "interval": "day"}, "low_threshold": 1,
        "refills_at": next_midnight()});
    assert_eq!(created["credits"], expected);
    let (id, key) = (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned());

    // Two requests to the backend; Latchkey's own routes spend nothing.
    for n in 0..2 {
        let (status, _) = api.json(Some(&key), Method::GET, &format!("/orders/{n}"), None).await;
        assert_eq!(status, 200);
    }
    let (status, me) = api.json(Some(&key), Method::GET, "/whoami", None).await;
    assert_eq!((status, &me["credits"]["remaining"]), (200, &json!(1)), "{me}");
    let (_, read) = manage(Method::GET, format!("/keys/{id}"), None).await;
    assert_eq!(read["credits"]["remaining"], 1, "{read}");
    // The last credit, then the refusal: the backend never sees it.
    let (status, _) = api.json(Some(&key), Method::POST, "/orders", Some(json!({"n": 3}))).await;
    assert_eq!(status, 200);
    let (status, refused) = api.json(Some(&key), Method::GET, "/orders/4", None).await;
    assert_eq!(status, 401, "{refused}");
    assert_eq!(refused["error"]["code"], "USAGE_EXCEEDED");
    assert_eq!(refused["error"]["details"], json!({"refills_at": next_midnight()}));
    assert_eq!(echo.count(), 3, "three requests reached the backend");
    let (_, listed) = manage(Method::GET, "/keys".into(), None).await;
    let listed = listed["keys"].as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).unwrap().clone();
    assert_eq!(listed["credits"]["remaining"], 0);
    api.flush_verifications().await;
    let (_, counted) = manage(Method::GET, format!("/keys/{id}/verifications"), None).await;
    assert_eq!(
        (counted["totals"]["valid"].as_u64(), counted["totals"]["usage_exceeded"].as_u64()),
        (Some(4), Some(1)),
        "three forwarded and /whoami"
    );

    // PATCH gives it two more (its period starts now), then takes credits away: unlimited.
    let (status, patched) =
        manage(Method::PATCH, format!("/keys/{id}"), Some(json!({"credits": {"remaining": 2}}))).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["credits"], json!({"remaining": 2, "refill": null, "low_threshold": null, "refills_at": null}));
    for n in 0..2 {
        assert_eq!(api.json(Some(&key), Method::GET, &format!("/more/{n}"), None).await.0, 200);
    }
    let (status, refused) = api.json(Some(&key), Method::GET, "/more/2", None).await;
    assert_eq!((status, &refused["error"]["details"]), (401, &Value::Null), "no refill, no details: {refused}");
    let (status, patched) = manage(Method::PATCH, format!("/keys/{id}"), Some(json!({"credits": null}))).await;
    assert_eq!((status, &patched["credits"]), (200, &Value::Null));
    for n in 0..3 {
        assert_eq!(api.json(Some(&key), Method::GET, &format!("/free/{n}"), None).await.0, 200);
    }

    // An ingest key with one credit: one record, then refused before the handler.
    let (_, source) = manage(Method::POST, "/datasources".into(), Some(json!({"name": "sensor"}))).await;
    let ingest_key = source["key"].as_str().unwrap().to_owned();
    let ingest_id = source["key_id"].as_str().unwrap().to_owned();
    let (status, _) =
        manage(Method::PATCH, format!("/keys/{ingest_id}"), Some(json!({"credits": {"remaining": 1}}))).await;
    assert_eq!(status, 200);
    let (status, stored) = api.json(Some(&ingest_key), Method::POST, "/ingest", Some(json!({"t": 1}))).await;
    assert!(status < 300, "{status} {stored}");
    let (status, refused) = api.json(Some(&ingest_key), Method::POST, "/ingest", Some(json!({"t": 2}))).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (401, Some("USAGE_EXCEEDED")));

    // The webhook: the threshold and the exhaustion of the first balance, the second
    // balance's exhaustion, and the ingest key's, each once, with what was left.
    let credit_events = || -> Vec<(String, String, u64)> {
        events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["type"].as_str().unwrap().starts_with("key.credits"))
            .map(|e| {
                let remaining = e["key"]["credits"]["remaining"].as_u64().unwrap();
                (e["type"].as_str().unwrap().to_owned(), e["key"]["name"].as_str().unwrap().to_owned(), remaining)
            })
            .collect()
    };
    let wanted = [
        ("key.credits_low", "metered", 1),
        ("key.credits_exhausted", "metered", 0),
        ("key.credits_exhausted", "metered", 0),
        ("key.credits_exhausted", "ingest: sensor", 0),
    ]
    .map(|(t, n, r)| (t.to_owned(), n.to_owned(), r));
    for _ in 0..50 {
        if credit_events().len() >= wanted.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(credit_events(), wanted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credits_name_their_field() {
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let admin = api.admin_key.clone().unwrap();
    for (credits, field) in [
        (json!({}), "credits.remaining"),
        (json!({"remaining": -1}), "credits.remaining"),
        (json!({"remaining": 1.5}), "credits.remaining"),
        (json!({"remaining": 1_000_000_000_001_u64}), "credits.remaining"),
        (json!({"remaining": 1, "refill": {"amount": 0, "interval": "day"}}), "credits.refill.amount"),
        (json!({"remaining": 1, "refill": {"amount": 5, "interval": "week"}}), "credits.refill.interval"),
        (json!({"remaining": 1, "refill": {"interval": "day"}}), "credits.refill.amount"),
        (json!({"remaining": 1, "low_threshold": 0}), "credits.low_threshold"),
        (json!({"remaining": 1, "spent": 0}), "credits.spent"),
        (json!(7), "credits"),
    ] {
        let body = json!({"name": "bad", "credits": credits});
        let (status, answer) = api.json(Some(&admin), Method::POST, "/keys", Some(body)).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{credits}");
        assert_eq!(answer["error"]["details"]["field"], field, "{credits}: {answer}");
    }
    let (_, listed) = api.json(Some(&admin), Method::GET, "/keys", None).await;
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1, "nothing was made: {listed}");
}
