//! Every input limit, at the limit and one past it, over HTTP: management bodies (16 KiB),
//! ingest bodies (5 MiB), records per request (500), one record's size (350,000 B) and nesting
//! (32), `Idempotency-Key` (128), a key header far too long, and a request past API Gateway's
//! 10 MB (the deployed gateway response's status and body).

use crate::common;

use common::Running;
use latchkey::ingest::{MAX_BODY_BYTES, MAX_ID_CHARS, MAX_RECORD_BYTES, MAX_RECORD_DEPTH, MAX_RECORDS};
use latchkey::manage::input::MAX_BODY_BYTES as MAX_MANAGEMENT_BODY_BYTES;
use reqwest::{Client, Method};
use serde_json::{Value, json};

/// A JSON object `{"pad": "xxx…"}` of exactly `len` bytes, with `extra` fields before `pad`.
fn padded(extra: &str, len: usize) -> String {
    let shell = format!(r#"{{{extra}"pad": ""}}"#);
    format!(r#"{{{extra}"pad": "{}"}}"#, "x".repeat(len - shell.len()))
}

/// A POST, waited out and sent again while the key's tier answers 429 (the ingest key is metered).
async fn post(api: &Running, key: &str, path: &str, body: String, idempotency: Option<&[u8]>) -> (u16, Value) {
    let response = loop {
        let mut request = Client::new().post(format!("{}{path}", api.base)).header("x-api-key", key).body(body.clone());
        if let Some(idempotency) = idempotency {
            request = request.header("idempotency-key", reqwest::header::HeaderValue::from_bytes(idempotency).unwrap());
        }
        let response = request.send().await.unwrap();
        if response.status() != 429 {
            break response;
        }
        let wait: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    };
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    latchkey_tests::capture_body(&text);
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_at_and_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let admin = api.admin_key.clone().unwrap();

    // Management bodies: 16 KiB is read (and judged on its fields), one byte more is not.
    let at = padded(r#""name": "bounds", "#, MAX_MANAGEMENT_BODY_BYTES);
    assert_eq!(at.len(), MAX_MANAGEMENT_BODY_BYTES);
    let (status, body) = post(&api, &admin, "/keys", at.clone(), None).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("pad")), "{body}");
    let past = padded(r#""name": "bounds", "#, MAX_MANAGEMENT_BODY_BYTES + 1);
    let (status, body) = post(&api, &admin, "/keys", past, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("PAYLOAD_TOO_LARGE")), "{body}");

    let (_, datasource) = api.json(Some(&admin), Method::POST, "/datasources", Some(json!({"name": "bounds"}))).await;
    let ingest_key = datasource["key"].as_str().unwrap().to_owned();
    let ingest = |body: String, idempotency: Option<&'static [u8]>| {
        let (api, key) = (&api, ingest_key.clone());
        async move { post(api, &key, "/ingest", body, idempotency).await }
    };

    // Records per request.
    let batch = |n: usize| format!(r#"{{"records": [{}]}}"#, vec!["{}"; n].join(","));
    let (status, body) = ingest(batch(MAX_RECORDS), None).await;
    assert_eq!((status, body["accepted"].as_u64()), (202, Some(MAX_RECORDS as u64)), "{body}");
    let (status, body) = ingest(batch(MAX_RECORDS + 1), None).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("records")), "{body}");

    // One record's size: at the limit stored, past it rejected alone.
    let records = format!(r#"{{"records": [{}, {}]}}"#, padded("", MAX_RECORD_BYTES), padded("", MAX_RECORD_BYTES + 1));
    let (status, body) = ingest(records, None).await;
    assert_eq!((status, body["accepted"].as_u64()), (202, Some(1)), "{body}");
    assert_eq!(
        (body["rejected"][0]["index"].as_u64(), body["rejected"][0]["code"].as_str()),
        (Some(1), Some("PAYLOAD_TOO_LARGE"))
    );

    // Nesting: at the limit stored, past it rejected alone.
    let nested = |depth: usize| format!(r#"{{"a": {}1{}}}"#, "[".repeat(depth - 1), "]".repeat(depth - 1));
    let records = format!(r#"{{"records": [{}, {}]}}"#, nested(MAX_RECORD_DEPTH), nested(MAX_RECORD_DEPTH + 1));
    let (status, body) = ingest(records, None).await;
    assert_eq!(
        (status, body["accepted"].as_u64(), body["rejected"][0]["index"].as_u64()),
        (202, Some(1), Some(1)),
        "{body}"
    );

    // The whole body: 5 MiB read, one byte more refused before parsing; nothing stored.
    let (status, body) = ingest(padded("", MAX_BODY_BYTES), None).await;
    assert_eq!((status, body["rejected"][0]["code"].as_str()), (202, Some("PAYLOAD_TOO_LARGE")), "{body}");
    let (status, body) = ingest(padded("", MAX_BODY_BYTES + 1), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("PAYLOAD_TOO_LARGE")), "{body}");

    // Idempotency-Key: 128 printable characters, not 129.
    let at: &'static str = "k".repeat(MAX_ID_CHARS).leak();
    assert_eq!(ingest("{}".into(), Some(at.as_bytes())).await.0, 202);
    let past: &'static str = "k".repeat(MAX_ID_CHARS + 1).leak();
    let (status, body) = ingest("{}".into(), Some(past.as_bytes())).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("Idempotency-Key")), "{body}");

    // Bytes outside visible ASCII: refused, not taken for an absent key.
    assert_eq!(ingest("{}".into(), Some(&[0xd7, 0xf8])).await.0, 400);

    // A key header far too long is a format error: refused before any lookup.
    let long = format!("lk_{}", "a".repeat(8 * 1024));
    let (status, body) = api.json(Some(&long), Method::GET, "/whoami", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("INVALID_API_KEY_FORMAT")));

    // Past API Gateway's 10 MB: the deployed REQUEST_TOO_LARGE response, status and body.
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml")).unwrap();
    assert!(template.contains(latchkey_local::REQUEST_TOO_LARGE_BODY), "the local API answers as template.yaml does");
    let huge = "x".repeat(latchkey_local::MAX_REQUEST_BYTES + 1);
    let (status, body) = post(&api, &admin, "/keys", huge, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("PAYLOAD_TOO_LARGE")), "{body}");

    // Only what was accepted above is stored.
    let path = format!("/datasources/{}/records?limit=100", datasource["id"].as_str().unwrap());
    let mut stored = 0;
    let mut cursor = String::new();
    loop {
        let (_, page) = api.json(Some(&admin), Method::GET, &format!("{path}{cursor}"), None).await;
        stored += page["records"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(stored, MAX_RECORDS + 1 + 1 + 1);
    api.stop().await;
}
