//! Key events to a webhook: each operation's event POSTed to `LATCHKEY_WEBHOOK_URL`, signed over
//! timestamp and body with the configured secret, retried when the receiver fails, never carrying
//! a key; the operation answers without waiting for the receiver.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::Running;
use reqwest::Method;
use serde_json::{Value, json};

const SECRET: &str = "whsec_local-test-0123456789";

#[derive(Default)]
struct Received {
    /// Attempts so far, the refused ones included.
    attempts: usize,
    /// What was accepted: (Latchkey-Signature, body).
    accepted: Vec<(String, Vec<u8>)>,
}

/// A receiver that refuses its first attempt (503), then accepts everything.
async fn receiver() -> (String, Arc<Mutex<Received>>) {
    async fn receive(State(seen): State<Arc<Mutex<Received>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
        let mut seen = seen.lock().unwrap();
        seen.attempts += 1;
        if seen.attempts == 1 {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        let signature = headers["latchkey-signature"].to_str().unwrap().to_owned();
        seen.accepted.push((signature, body.to_vec()));
        StatusCode::NO_CONTENT
    }
    let seen = Arc::new(Mutex::new(Received::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/latchkey", listener.local_addr().unwrap());
    let app = Router::new().route("/hooks/latchkey", post(receive)).with_state(Arc::clone(&seen));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// The body of a delivery, its signature checked as a receiver would (`t=..,v1=..`).
fn verified(signature: &str, body: &[u8]) -> Value {
    let timestamp: i64 = signature.strip_prefix("t=").unwrap().split(',').next().unwrap().parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60, "signed just now");
    assert_eq!(signature, latchkey::events::signature(SECRET.as_bytes(), timestamp, body), "the signature");
    serde_json::from_slice(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_is_delivered_signed_in_order_retried_and_without_a_key() {
    let (url, seen) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let vars = [("LATCHKEY_WEBHOOK_URL", url.as_str()), ("LATCHKEY_WEBHOOK_SECRET", SECRET)];
    let api = Running::start_configured(dir.path(), None, &vars).await;
    let admin = api.admin_key.clone().unwrap();
    let call = |method: Method, path: String, body: Option<Value>| {
        let (api, admin) = (&api, admin.clone());
        async move { api.json(Some(&admin), method, &path, body).await }
    };
    let (status, created) =
        call(Method::POST, "/keys".into(), Some(json!({"name": "hooked", "owner_id": "cus_9"}))).await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_owned();
    let mut secrets = vec![admin.clone(), created["key"].as_str().unwrap().to_owned()];
    call(Method::PATCH, format!("/keys/{id}"), Some(json!({"enabled": false}))).await;
    call(Method::PATCH, format!("/keys/{id}"), Some(json!({"enabled": true, "name": "hooked v2"}))).await;
    let (_, rotated) =
        call(Method::POST, format!("/keys/{id}/rotate"), Some(json!({"grace_period_seconds": 60}))).await;
    secrets.push(rotated["key"].as_str().unwrap().to_owned());
    let new_id = rotated["id"].as_str().unwrap().to_owned();
    let (status, _) = call(Method::DELETE, format!("/keys/{new_id}"), None).await;
    assert_eq!(status, 204);
    let (_, source) = call(Method::POST, "/datasources".into(), Some(json!({"name": "sensor"}))).await;
    secrets.push(source["key"].as_str().unwrap().to_owned());
    let source_id = source["id"].as_str().unwrap();
    let (_, regenerated) = call(Method::POST, format!("/datasources/{source_id}/regenerate-key"), None).await;
    secrets.push(regenerated["key"].as_str().unwrap().to_owned());
    // A key its tenant reports leaked: revoked (the default action), then announced.
    let (_, leaky) = call(Method::POST, "/keys".into(), Some(json!({"name": "leaky"}))).await;
    let leaky_key = leaky["key"].as_str().unwrap().to_owned();
    secrets.push(leaky_key.clone());
    let (status, _) = call(Method::POST, "/leaks".into(), Some(json!({"key": leaky_key, "found_at": "a gist"}))).await;
    assert_eq!(status, 200);

    // The first attempt was refused and retried after 1 s; the rest follow in order.
    let expected = [
        ("key.created", "local admin"),
        ("key.created", "hooked"),
        ("key.disabled", "hooked"),
        ("key.enabled", "hooked v2"),
        ("key.updated", "hooked v2"),
        ("key.rotated", "hooked v2"),
        ("key.revoked", "hooked v2"),
        ("key.created", "ingest: sensor"),
        ("key.rotated", "ingest: sensor"),
        ("datasource.key_regenerated", "ingest: sensor"),
        ("key.created", "leaky"),
        ("key.leaked", "leaky"),
    ];
    for _ in 0..100 {
        if seen.lock().unwrap().accepted.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = seen.lock().unwrap();
    let events: Vec<Value> = seen.accepted.iter().map(|(signature, body)| verified(signature, body)).collect();
    let got: Vec<(&str, &str)> =
        events.iter().map(|e| (e["type"].as_str().unwrap(), e["key"]["name"].as_str().unwrap())).collect();
    assert_eq!(got, expected);
    assert_eq!(seen.attempts, expected.len() + 1, "one retry, of the refused first attempt");
    assert_eq!(events[2]["key"]["enabled"], false);
    assert_eq!(events[5]["key"]["replaces"], json!(id));
    assert_eq!(events[1]["key"]["owner_id"], "cus_9");
    assert_eq!(events[11]["key"]["status"], "revoked", "key.leaked shows what the report did");
    // Each delivery is the event openapi.yaml's `webhooks.keyEvent` describes.
    let openapi = latchkey_tests::openapi::OpenApi::load();
    for event in &events {
        openapi.validate(&openapi.schema("KeyEvent"), event).unwrap_or_else(|e| panic!("{e}: {event}"));
    }
    let ids: std::collections::HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "an id per event");
    for (_, body) in &seen.accepted {
        let text = String::from_utf8_lossy(body);
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "a key in an event: {text}");
        }
    }
}

/// The local API runs the deployed stack's sweep on its own schedule (`LATCHKEY_SWEEP_SECONDS`,
/// the subject here): a key that will expire within the notice period is announced once, and
/// again when it has expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_sweep_announces_a_key_expiring_then_expired() {
    let (url, seen) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let vars =
        [("LATCHKEY_WEBHOOK_URL", url.as_str()), ("LATCHKEY_WEBHOOK_SECRET", SECRET), ("LATCHKEY_SWEEP_SECONDS", "1")];
    let api = Running::start_configured(dir.path(), None, &vars).await;
    let expires_at = (chrono::Utc::now() + chrono::TimeDelta::seconds(3)).to_rfc3339();
    let body = json!({"name": "brief", "expires_at": expires_at});
    let (status, created) = api.json(api.admin_key.as_deref(), Method::POST, "/keys", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let delivered = || {
        let seen = seen.lock().unwrap();
        let events: Vec<Value> = seen.accepted.iter().map(|(signature, body)| verified(signature, body)).collect();
        events
    };
    for _ in 0..100 {
        if delivered().iter().any(|e| e["type"] == "key.expired") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A few more sweeps: nothing is announced twice.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let events = delivered();
    let got: Vec<(&str, &str)> =
        events.iter().map(|e| (e["type"].as_str().unwrap(), e["key"]["name"].as_str().unwrap())).collect();
    assert_eq!(
        got,
        [("key.created", "local admin"), ("key.created", "brief"), ("key.expiring", "brief"), ("key.expired", "brief")]
    );
    assert_eq!(events[2]["key"]["expires_at"], created["expires_at"]);
    assert_eq!(events[3]["key"]["status"], "expired");
    assert!(!events.iter().any(|e| e.to_string().contains(created["key"].as_str().unwrap())), "a key in an event");
}

#[test]
fn a_webhook_is_an_http_url_with_a_secret_worth_the_name() {
    let error = |vars: &'static [(&'static str, &'static str)]| {
        let env =
            latchkey::config::Env::from_fn(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()));
        latchkey_local::LocalConfig::from_env(&env).err().map(|e| e.to_string()).unwrap_or_default()
    };
    assert!(error(&[("LATCHKEY_WEBHOOK_URL", "ftp://example.com/")]).contains("LATCHKEY_WEBHOOK_URL"));
    let short = error(&[("LATCHKEY_WEBHOOK_URL", "http://127.0.0.1:9/"), ("LATCHKEY_WEBHOOK_SECRET", "short")]);
    assert!(short.contains("LATCHKEY_WEBHOOK_SECRET"), "{short}");
    assert_eq!(error(&[("LATCHKEY_WEBHOOK_URL", "http://127.0.0.1:9/")]), "", "the secret defaults to a file");
}
