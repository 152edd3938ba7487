//! `POST /leaks/github` as `keys-issue` answers it deployed: a proxy event without an
//! authorizer's context (the route has none), GitHub's signature checked against a stand-in for
//! its key list, the key revoked in DynamoDB Local and refused by the authorizer after its cache
//! TTL, the report in the tenant's audit log.

use crate::common;

use std::collections::HashMap;

use common::Stack;
use latchkey::leaks::github::SigningKeys;
use latchkey_tests::api_gateway::{Answer, proxy_event};
use latchkey_tests::github::GitHub;
use serde_json::{Value, json};

/// The report as API Gateway hands it to `keys-issue`.
async fn report(stack: &Stack, keys: &SigningKeys, headers: &[(&'static str, String)], body: &str) -> Answer {
    let headers: HashMap<&str, &str> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let event = proxy_event("POST", "/leaks/github", &headers, Some(body), Value::Null);
    let request = lambda_http::request::from_str(&event.to_string()).expect("a REST API proxy event");
    Answer::of(latchkey_keys::respond_github(&stack.issue, keys, request).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_issue_revokes_a_key_github_reports_and_only_when_signed() {
    let github = GitHub::start().await;
    let stack = Stack::new().await;
    let admin = stack.bootstrap("acme").await;
    let created = stack.call(&admin, "POST", "/keys", Some(json!({"name": "pushed"}))).await.expect(201);
    let (id, key) = (created["id"].as_str().unwrap(), created["key"].as_str().unwrap());
    stack.call(key, "GET", "/whoami", None).await.expect(200);
    let keys = SigningKeys::new(github.keys_url.clone());
    let url = "https://github.com/acme/site/blob/0123/.env";
    let body = json!([{"token": key, "type": "acme_latchkey_api_key", "url": url, "source": "content"}]).to_string();

    report(&stack, &keys, &[], &body).await.expect_error(401, "INVALID_SIGNATURE");
    stack.let_cached_decisions_expire();
    stack.call(key, "GET", "/whoami", None).await.expect(200);

    let answer = report(&stack, &keys, &github.signed(&body), &body).await;
    let feedback = answer.expect(200);
    assert_eq!(feedback[0]["label"], "true_positive", "{feedback}");
    assert_eq!(feedback[0]["token_type"], "acme_latchkey_api_key");
    // Deployed, other authorizer instances refuse it once their cached decision ages out.
    stack.let_cached_decisions_expire();
    stack.call(key, "GET", "/whoami", None).await.expect_error(401, "INVALID_API_KEY");
    let audit = stack.call(&admin, "GET", "/audit?limit=10", None).await.expect(200);
    let leaked: Vec<&Value> =
        audit["events"].as_array().unwrap().iter().filter(|e| e["action"] == "key.leaked").collect();
    assert_eq!(leaked.len(), 1, "{audit}");
    assert_eq!(
        (&leaked[0]["actor"], &leaked[0]["target"], &leaked[0]["found_at"]),
        (&json!("github:secret-scanning"), &json!(id), &json!(url))
    );
}
