//! Every response the local API gives to a session that uses every operation (successes and the
//! usual errors) is one `openapi.yaml` allows: documented status, body valid against its schema
//! (closed objects, formats enforced). Every operation is reached with a success status, so a
//! route or field added to the code and not to the document fails here.

use crate::common;

use std::collections::BTreeSet;

use common::Running;
use latchkey_tests::github::{GitHub, Headers};
use latchkey_tests::openapi::OpenApi;
use reqwest::{Client, Method};
use serde_json::{Value, json};

struct Checked {
    api: Running,
    openapi: OpenApi,
    /// (METHOD, template) of every operation answered with a 2xx.
    succeeded: BTreeSet<(String, String)>,
}

impl Checked {
    async fn call(&mut self, key: Option<&str>, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = Client::new().request(method.clone(), format!("{}{path}", self.api.base));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.checked(method, path, request).await
    }

    /// `POST path` with these headers and this raw body (a signed report).
    async fn post_raw(&mut self, path: &str, headers: &Headers, body: &str) -> (u16, Value) {
        let mut request = Client::new().post(format!("{}{path}", self.api.base)).body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        self.checked(Method::POST, path, request.header("content-type", "application/json")).await
    }

    async fn checked(&mut self, method: Method, path: &str, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        latchkey_tests::capture_body(&text);
        if let Err(broken) = self.openapi.check(method.as_str(), path, status, &text) {
            panic!("{method} {path}: the response breaks openapi.yaml: {broken}");
        }
        if (200..300).contains(&status) {
            let template = self.openapi.template_of(path.split('?').next().unwrap()).unwrap();
            self.succeeded.insert((method.to_string(), template));
        }
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_matches_openapi() {
    let dir = tempfile::tempdir().unwrap();
    let github = GitHub::start().await;
    let api = Running::start_configured(dir.path(), None, &[("LATCHKEY_GITHUB_KEYS_URL", &github.keys_url)]).await;
    let admin_key = api.admin_key.clone().unwrap();
    let admin = Some(admin_key.as_str());
    let mut c = Checked { api, openapi: OpenApi::load(), succeeded: BTreeSet::new() };

    // Errors first: each in the envelope the document describes.
    assert_eq!(c.call(None, Method::GET, "/whoami", None).await.0, 401);
    assert_eq!(c.call(Some("lk_nope"), Method::GET, "/keys", None).await.0, 401);
    assert_eq!(c.call(admin, Method::POST, "/keys", Some(json!({"name": ""}))).await.0, 400);
    assert_eq!(c.call(admin, Method::POST, "/keys", Some(json!({"name": "x", "colour": 1}))).await.0, 400);
    assert_eq!(c.call(admin, Method::GET, "/keys?limit=0", None).await.0, 400);
    assert_eq!(c.call(admin, Method::GET, "/keys/key_nope", None).await.0, 404);
    assert_eq!(c.call(admin, Method::GET, "/datasources/ds_nope", None).await.0, 404);
    let big = "x".repeat(20 * 1024);
    assert_eq!(c.call(admin, Method::POST, "/keys", Some(json!({"name": big}))).await.0, 413);

    // Keys.
    assert_eq!(c.call(admin, Method::GET, "/whoami", None).await.0, 200);
    let me = Client::new().get(format!("{}/whoami", c.api.base)).header("x-api-key", &admin_key);
    let me = me.send().await.unwrap().text().await.unwrap();
    assert_eq!(me.matches("\"tenant_id\":").count(), 1, "no field twice in one object: {me}");
    let (status, key) = c
        .call(admin, Method::POST, "/keys", Some(json!({"name": "ci", "tier": "starter", "expires_in_days": 30})))
        .await;
    assert_eq!(status, 201);
    let id = key["id"].as_str().unwrap().to_owned();
    let secret = key["key"].as_str().unwrap().to_owned();
    assert_eq!(c.call(Some(&secret), Method::GET, "/whoami", None).await.0, 200);
    assert_eq!(c.call(Some(&secret), Method::GET, "/keys", None).await.0, 403);
    // Permission before validation: a bad query or body from a key without admin is still 403.
    assert_eq!(c.call(Some(&secret), Method::GET, "/keys?limit=0", None).await.0, 403);
    assert_eq!(c.call(Some(&secret), Method::POST, "/keys", Some(json!({"name": 5}))).await.0, 403);
    assert_eq!(c.call(admin, Method::GET, "/keys?limit=1", None).await.0, 200);
    assert_eq!(c.call(admin, Method::GET, "/keys?status=active", None).await.0, 200);
    assert_eq!(c.call(admin, Method::GET, &format!("/keys/{id}"), None).await.0, 200);
    let renamed = json!({"name": "renamed", "permissions": ["read", "write"]});
    assert_eq!(c.call(admin, Method::PATCH, &format!("/keys/{id}"), Some(renamed)).await.0, 200);
    assert_eq!(c.call(admin, Method::GET, &format!("/keys/{id}/usage?days=7"), None).await.0, 200);
    // Counts written now, so the answers below hold buckets and top keys to check.
    c.api.flush_verifications().await;
    assert_eq!(c.call(admin, Method::GET, &format!("/keys/{id}/verifications?granularity=hour"), None).await.0, 200);
    assert_eq!(c.call(admin, Method::GET, "/analytics/verifications", None).await.0, 200);
    assert_eq!(c.call(admin, Method::GET, &format!("/keys/{id}/refusals"), None).await.0, 200);
    assert_eq!(c.call(admin, Method::GET, "/analytics/verifications?granularity=week", None).await.0, 400);
    // JSON Schema's integer: 60.0 is one (found by schemathesis), 30.5 is not.
    let half = json!({"name": "x", "expires_in_days": 30.5});
    assert_eq!(c.call(admin, Method::POST, "/keys", Some(half)).await.0, 400);
    let (status, rotated) =
        c.call(admin, Method::POST, &format!("/keys/{id}/rotate"), Some(json!({"grace_period_seconds": 60.0}))).await;
    assert_eq!(status, 201);
    assert_eq!(c.call(admin, Method::GET, &format!("/keys/{id}"), None).await.0, 200, "the replaced key");
    let new_id = rotated["id"].as_str().unwrap().to_owned();
    assert_eq!(c.call(admin, Method::DELETE, &format!("/keys/{new_id}"), None).await.0, 204);
    assert_eq!(c.call(admin, Method::DELETE, &format!("/keys/{new_id}"), None).await.0, 204);
    assert_eq!(c.call(admin, Method::PATCH, &format!("/keys/{new_id}"), Some(json!({"name": "z"}))).await.0, 409);
    assert_eq!(c.call(admin, Method::GET, "/keys?status=revoked", None).await.0, 200);
    assert_eq!(c.call(admin, Method::GET, "/audit?limit=5", None).await.0, 200);
    assert_eq!(c.call(admin, Method::POST, "/sessions", None).await.0, 201);
    assert_eq!(c.call(Some(&secret), Method::POST, "/sessions", None).await.0, 403);

    // Datasources, ingest, records.
    let (status, datasource) = c.call(admin, Method::POST, "/datasources", Some(json!({"name": "station"}))).await;
    assert_eq!(status, 201);
    let ds = datasource["id"].as_str().unwrap().to_owned();
    let ingest_key = datasource["key"].as_str().unwrap().to_owned();
    assert_eq!(c.call(admin, Method::GET, "/datasources", None).await.0, 200);
    assert_eq!(c.call(admin, Method::GET, &format!("/datasources/{ds}"), None).await.0, 200);
    let batch = json!({"records": [{"t": 1}, {"t": 2, "id": "meter-7:2026-12-01"}, "not an object"]});
    assert_eq!(c.call(Some(&ingest_key), Method::POST, "/ingest", Some(batch)).await.0, 202);
    assert_eq!(c.call(Some(&ingest_key), Method::POST, "/ingest", Some(json!({"t": 3}))).await.0, 202);
    assert_eq!(c.call(Some(&ingest_key), Method::POST, "/ingest", Some(json!({"records": []}))).await.0, 400);
    assert_eq!(c.call(admin, Method::POST, "/ingest", Some(json!({"t": 4}))).await.0, 403);
    let (status, page) = c.call(admin, Method::GET, &format!("/datasources/{ds}/records?limit=2"), None).await;
    assert_eq!(status, 200);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let next = format!("/datasources/{ds}/records?limit=2&cursor={cursor}");
    assert_eq!(c.call(admin, Method::GET, &next, None).await.0, 200);
    let since = format!("/datasources/{ds}/records?since=2000-01-01T00:00:00Z");
    assert_eq!(c.call(admin, Method::GET, &since, None).await.0, 200);
    let regenerate = format!("/datasources/{ds}/regenerate-key");
    assert_eq!(c.call(admin, Method::POST, &regenerate, Some(json!({"grace_period_seconds": 0}))).await.0, 201);
    assert_eq!(c.call(admin, Method::DELETE, &format!("/datasources/{ds}"), None).await.0, 200);
    assert_eq!(c.call(admin, Method::GET, &format!("/datasources/{ds}"), None).await.0, 404);

    // Imports: a key of another system, with credits; the same again; and bad ones.
    let imported = json!({"key": "Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd4fGh7jKl0n", "name": "imported",
        "credits": {"remaining": 10, "refill": {"amount": 10, "interval": "month"}, "low_threshold": 2}});
    assert_eq!(c.call(admin, Method::POST, "/keys/import", Some(imported.clone())).await.0, 201);
    assert_eq!(c.call(admin, Method::POST, "/keys/import", Some(imported)).await.0, 409);
    let digest = json!({"sha256": "a".repeat(64), "name": "by digest"});
    assert_eq!(c.call(admin, Method::POST, "/keys/import", Some(digest)).await.0, 201);
    assert_eq!(c.call(admin, Method::POST, "/keys/import", Some(json!({"name": "x"}))).await.0, 400);

    // Leaks: a tenant's report, and GitHub's (signed, and not).
    let (status, leaking) = c.call(admin, Method::POST, "/keys", Some(json!({"name": "leaks"}))).await;
    assert_eq!(status, 201);
    let leaking = leaking["key"].as_str().unwrap().to_owned();
    let report = json!({"key": "lk_nope", "found_at": "a chat"});
    assert_eq!(c.call(admin, Method::POST, "/leaks", Some(report)).await.0, 404);
    assert_eq!(c.call(admin, Method::POST, "/leaks", Some(json!({"found_at": "a chat"}))).await.0, 400);
    let report = json!({"key": leaking, "found_at": "a chat"});
    assert_eq!(c.call(admin, Method::POST, "/leaks", Some(report)).await.0, 200);
    let found = json!([{"token": leaking, "type": "latchkey_api_key", "url": "", "source": "content"}]).to_string();
    assert_eq!(c.post_raw("/leaks/github", &Vec::new(), &found).await.0, 401);
    assert_eq!(c.post_raw("/leaks/github", &github.signed("{}"), "{}").await.0, 400);
    assert_eq!(c.post_raw("/leaks/github", &github.signed(&found), &found).await.0, 200);
    assert_eq!(c.call(admin, Method::GET, "/audit?limit=5", None).await.0, 200);

    let all = c.openapi.operations();
    let missed: Vec<_> = all.difference(&c.succeeded).collect();
    assert!(missed.is_empty(), "operations never answered with a success here: {missed:?}");
    c.api.stop().await;
}
