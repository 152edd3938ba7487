//! Leaked keys: GitHub's secret scanning reports (`POST /leaks/github`), signed by a key pair the
//! test makes and checked against the key list a stand-in for GitHub's serves; and a tenant's own
//! reports (`POST /leaks`). What a user sees: the labels GitHub reads back, the key refused,
//! disabled or left working as configured, the audit log, and nothing acted on unless signed.

use crate::common;

use std::sync::atomic::Ordering;

use common::Running;
use latchkey_tests::github::{GitHub, Headers, KEY_ID, sign_with};
use p256::ecdsa::SigningKey;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// `POST /leaks/github` with these headers (name, value) and this raw body.
async fn report(api: &Running, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(format!("{}/leaks/github", api.base)).body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.header("content-type", "application/json").send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    latchkey_tests::capture_body(&text);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn signed_report(api: &Running, github: &GitHub, body: &str) -> (u16, Value) {
    let signature = github.sign(body);
    report(api, &[("Github-Public-Key-Identifier", KEY_ID), ("Github-Public-Key-Signature", &signature)], body).await
}

async fn start(github: &GitHub, action: &str, dir: &std::path::Path) -> Running {
    Running::start_configured(
        dir,
        None,
        &[("LATCHKEY_GITHUB_KEYS_URL", &github.keys_url), ("LATCHKEY_LEAK_ACTION", action)],
    )
    .await
}

/// A new key of the admin's tenant: (id, key).
async fn new_key(api: &Running, name: &str) -> (String, String) {
    let admin = api.admin_key.as_deref();
    let (status, created) = api.json(admin, Method::POST, "/keys", Some(json!({"name": name}))).await;
    assert_eq!(status, 201, "{created}");
    (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned())
}

async fn whoami(api: &Running, key: &str) -> (u16, Value) {
    api.json(Some(key), Method::GET, "/whoami", None).await
}

/// The tenant's `key.leaked` audit events: (actor, target, found_at).
async fn leaked_events(api: &Running) -> Vec<(String, String, String)> {
    let (status, audit) = api.json(api.admin_key.as_deref(), Method::GET, "/audit?limit=100", None).await;
    assert_eq!(status, 200, "{audit}");
    audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["action"] == "key.leaked")
        .map(|event| {
            let text = |field: &str| event[field].as_str().unwrap_or_default().to_owned();
            (text("actor"), text("target"), text("found_at"))
        })
        .collect()
}

fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_github_found_is_revoked_and_every_token_labelled() {
    let github = GitHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let api = start(&github, "", dir.path()).await;
    let (id, key) = new_key(&api, "committed by mistake").await;
    let (_, bystander) = new_key(&api, "still fine").await;
    // A key revoked already (still one of ours), a well-formed key no one holds, and a string
    // that is no key at all.
    let (revoked_id, revoked) = new_key(&api, "revoked before").await;
    let (status, _) = api.json(api.admin_key.as_deref(), Method::DELETE, &format!("/keys/{revoked_id}"), None).await;
    assert_eq!(status, 204);
    let unknown = latchkey::KeyProfile::latchkey().generate();
    let unknown = unknown.expose_secret();
    let url = "https://github.com/octocat/hello/blob/1234/config.env";
    let body = json!([
        {"token": key, "type": "latchkey_api_key", "url": url, "source": "content"},
        {"token": "lk_not_even_close", "type": "latchkey_api_key", "url": "", "source": "commit"},
        {"token": revoked, "type": "latchkey_api_key", "url": "", "source": "commit"},
        {"token": unknown, "type": "latchkey_api_key", "url": "", "source": "commit"},
    ])
    .to_string();

    let (status, feedback) = signed_report(&api, &github, &body).await;
    assert_eq!(status, 200, "{feedback}");
    assert_eq!(
        feedback,
        json!([
            {"token_hash": sha256_hex(&key), "token_type": "latchkey_api_key", "label": "true_positive"},
            {"token_hash": sha256_hex("lk_not_even_close"), "token_type": "latchkey_api_key", "label": "false_positive"},
            {"token_hash": sha256_hex(&revoked), "token_type": "latchkey_api_key", "label": "true_positive"},
            {"token_hash": sha256_hex(unknown), "token_type": "latchkey_api_key", "label": "false_positive"},
        ])
    );
    assert!(!feedback.to_string().contains(&key), "the answer names no key");

    let (status, refused) = whoami(&api, &key).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (401, Some("INVALID_API_KEY")));
    let (status, view) = api.json(api.admin_key.as_deref(), Method::GET, &format!("/keys/{id}"), None).await;
    assert_eq!((status, view["status"].as_str()), (200, Some("revoked")));
    assert_eq!(whoami(&api, &bystander).await.0, 200, "another key is untouched");
    let events = leaked_events(&api).await;
    assert!(
        events.contains(&("github:secret-scanning".to_owned(), id.clone(), url.to_owned())),
        "audited with where it was found: {events:?}"
    );
    assert_eq!(github.fetches.load(Ordering::SeqCst), 1, "GitHub's keys fetched once");

    // Reported again: the same answer, nothing more to do.
    let (status, again) = signed_report(&api, &github, &body).await;
    assert_eq!((status, &again), (200, &feedback));
    assert_eq!(github.fetches.load(Ordering::SeqCst), 1, "and not fetched again");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_badly_signed_oversized_or_malformed_report_touches_no_key() {
    let github = GitHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let api = start(&github, "", dir.path()).await;
    let (_, key) = new_key(&api, "leaked, but the report is not GitHub's").await;
    let body = json!([{"token": key, "type": "latchkey_api_key", "url": "", "source": "content"}]).to_string();
    let signature = github.sign(&body);
    let stranger = SigningKey::from_slice(&[9u8; 32]).unwrap();
    // (what, headers, body): each refused with 401 INVALID_SIGNATURE.
    let cases: Vec<(&str, Headers, String)> = vec![
        ("unsigned", vec![], body.clone()),
        ("no identifier", vec![("github-public-key-signature", signature.clone())], body.clone()),
        (
            "signed by another key",
            vec![
                ("github-public-key-identifier", KEY_ID.into()),
                ("github-public-key-signature", sign_with(&stranger, &body)),
            ],
            body.clone(),
        ),
        (
            "an identifier GitHub does not publish",
            vec![
                ("github-public-key-identifier", "not-a-key-id".into()),
                ("github-public-key-signature", signature.clone()),
            ],
            body.clone(),
        ),
        (
            "a signature of another body",
            vec![("github-public-key-identifier", KEY_ID.into()), ("github-public-key-signature", signature.clone())],
            body.replace("content", "commit"),
        ),
        (
            "not base64",
            vec![("github-public-key-identifier", KEY_ID.into()), ("github-public-key-signature", "%%%".into())],
            body.clone(),
        ),
    ];
    for (what, headers, body) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
        let (got, answer) = report(&api, &headers, &body).await;
        assert_eq!((got, answer["error"]["code"].as_str()), (401, Some("INVALID_SIGNATURE")), "{what}: {answer}");
    }
    // Signed, but not GitHub's shape: refused as a body, after the signature.
    let malformed = json!({"token": key}).to_string();
    let (status, answer) = signed_report(&api, &github, &malformed).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{answer}");
    // Larger than a report may be: refused before its signature is even checked.
    let oversized = format!(
        "[{}]",
        vec![format!(r#"{{"token":"{key}","type":"t","url":"","source":"content"}}"#); 12_000].join(",")
    );
    let (status, answer) = signed_report(&api, &github, &oversized).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (413, Some("PAYLOAD_TOO_LARGE")), "{answer}");
    // A made-up identifier within a minute of the last fetch fetches nothing more.
    let (status, _) = report(
        &api,
        &[("github-public-key-identifier", "another"), ("github-public-key-signature", &signature)],
        &body,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(github.fetches.load(Ordering::SeqCst), 1, "GitHub's list fetched once in all");

    assert_eq!(whoami(&api, &key).await.0, 200, "the key still works");
    assert_eq!(leaked_events(&api).await, vec![], "nothing audited");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_key_is_disabled_or_only_announced_as_configured() {
    let github = GitHub::start().await;
    for (action, status, code) in [("disable", 401, Some("DISABLED_API_KEY")), ("notify", 200, None)] {
        let dir = tempfile::tempdir().unwrap();
        let api = start(&github, action, dir.path()).await;
        let (id, key) = new_key(&api, action).await;
        let body = json!([{"token": key, "type": "latchkey_api_key", "url": "", "source": "npm"}]).to_string();
        let (got, feedback) = signed_report(&api, &github, &body).await;
        assert_eq!((got, feedback[0]["label"].as_str()), (200, Some("true_positive")), "{action}");
        let (got, answer) = whoami(&api, &key).await;
        assert_eq!((got, answer["error"]["code"].as_str()), (status, code), "{action}: {answer}");
        let events = leaked_events(&api).await;
        assert_eq!(events, vec![("github:secret-scanning".to_owned(), id, "github:npm".to_owned())], "{action}");
        api.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_reports_its_own_key() {
    let github = GitHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let api = start(&github, "", dir.path()).await;
    let admin = api.admin_key.clone().unwrap();
    let (id, key) = new_key(&api, "pasted in a chat").await;

    // Not an admin: 403 before anything is looked up.
    let (status, created) =
        api.json(Some(&admin), Method::POST, "/keys", Some(json!({"name": "reader", "permissions": ["read"]}))).await;
    assert_eq!(status, 201);
    let reader = created["key"].as_str().unwrap();
    let report = |key: &str| json!({"key": key, "found_at": "a support chat"});
    let (status, answer) = api.json(Some(reader), Method::POST, "/leaks", Some(report(&key))).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("INSUFFICIENT_PERMISSIONS")), "{answer}");
    // Not a key, or no key of this tenant: 404 alike.
    let unknown = latchkey::KeyProfile::latchkey().generate();
    for other in ["lk_garbage", unknown.expose_secret()] {
        let (status, answer) = api.json(Some(&admin), Method::POST, "/leaks", Some(report(other))).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("NOT_FOUND")), "{other}: {answer}");
    }
    // Too long, or holding a key (it is kept in the audit log): refused.
    for found_at in ["x".repeat(2049), format!("pasted as {key}, in a chat")] {
        let refused = json!({"key": key, "found_at": found_at});
        let (status, answer) = api.json(Some(&admin), Method::POST, "/leaks", Some(refused)).await;
        assert_eq!((status, answer["error"]["details"]["field"].as_str()), (400, Some("found_at")), "{answer}");
    }
    assert_eq!(whoami(&api, &key).await.0, 200, "refused reports change nothing");

    let (status, answer) = api.json(Some(&admin), Method::POST, "/leaks", Some(report(&key))).await;
    assert_eq!(
        (status, answer["action"].as_str(), answer["key"]["status"].as_str()),
        (200, Some("revoke"), Some("revoked")),
        "{answer}"
    );
    assert!(!answer.to_string().contains(&key), "the answer names no key");
    assert_eq!(whoami(&api, &key).await.0, 401);
    let admin_id = whoami(&api, &admin).await.1["id"].as_str().unwrap().to_owned();
    assert_eq!(leaked_events(&api).await, vec![(admin_id, id, "a support chat".to_owned())]);
    api.stop().await;
}
