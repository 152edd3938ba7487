//! DynamoDB requests per request type, counted at the SDK as they leave (latchkey_tests'
//! `DynamoCalls`), on DynamoDB Local through the authorizer and the key functions as deployed
//! (the gateway key pool on, the authorizer's 5 s cache). The table BENCHMARKS.md reports is
//! what this test prints (`cargo test -p latchkey-keys --test it costs -- --nocapture`), and the
//! counts are asserted, so a change in what a request costs fails here first.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::TimeDelta;
use latchkey_tests::dynamo_calls::DynamoCalls;
use serde_json::json;

use crate::common::Stack;

/// Waits for background writes (`last_used_at`, queued by the authorizer) to land: until no
/// request has left for this long.
const QUIET: Duration = Duration::from_millis(300);

async fn settle(calls: &DynamoCalls) -> BTreeMap<String, u64> {
    let mut seen = calls.take();
    for _ in 0..20 {
        tokio::time::sleep(QUIET).await;
        let more = calls.take();
        if more.is_empty() {
            break;
        }
        for (operation, n) in more {
            *seen.entry(operation).or_default() += n;
        }
    }
    seen
}

fn reads_and_writes(calls: &BTreeMap<String, u64>) -> (u64, u64) {
    let mut counts = (0, 0);
    for (operation, n) in calls {
        match operation.as_str() {
            "GetItem" | "Query" | "Scan" | "BatchGetItem" | "TransactGetItems" => counts.0 += n,
            _ => counts.1 += n,
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_per_request_type() {
    let calls = DynamoCalls::default();
    let store = latchkey_tests::fresh_dynamo_store_with(calls.client().await, TimeDelta::days(30)).await;
    let stack = Stack::with_store(store).await;
    let admin = stack.bootstrap("acme").await;
    // Warm: the admin key's decision cached, its lease and last_used_at of the minute written,
    // the free tier's pool made.
    stack.call(&admin, "GET", "/whoami", None).await.expect(200);
    // A key of another tier, so that the measured key's probes meet no holder in its pool.
    let warm = stack.call(&admin, "POST", "/keys", Some(json!({"name": "warm", "tier": "starter"}))).await.expect(201);
    // The free tier's pool, as the sweep makes it deployed, before the authorizer reads its size.
    let free = "free".parse().unwrap();
    let gateway = latchkey::gateway::apigateway::ApiGatewayKeys::new(stack.apigateway.clone(), stack.plans.clone());
    latchkey::gateway::pool::fill(&*stack.store, &gateway, &free, 4, 4).await.unwrap();
    stack.call(warm["key"].as_str().unwrap(), "GET", "/whoami", None).await.expect(200);
    // keys-issue has checked the free pool once (a key made, never used).
    stack.call(&admin, "POST", "/keys", Some(json!({"name": "unused", "tier": "free"}))).await.expect(201);
    settle(&calls).await;

    let mut rows: Vec<(&str, BTreeMap<String, u64>)> = Vec::new();
    macro_rules! measure {
        ($label:expr, $request:expr) => {{
            let answer = $request;
            rows.push(($label, settle(&calls).await));
            answer
        }};
    }
    let created = measure!(
        "POST /keys (the tier's pool has its slot)",
        stack.call(&admin, "POST", "/keys", Some(json!({"name": "measured", "tier": "free"}))).await.expect(201)
    );
    let (id, key) = (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned());
    measure!(
        "verification: a key's first request of the day (and its instance's first of the tier this minute)",
        stack.authorizer.authenticate([("x-api-key", key.as_str())]).await.unwrap()
    );
    measure!("verification: cached (5 s)", stack.authorizer.authenticate([("x-api-key", key.as_str())]).await.unwrap());
    measure!("GET /whoami", stack.call(&key, "GET", "/whoami", None).await.expect(200));
    measure!("GET /keys?limit=100", stack.call(&admin, "GET", "/keys?limit=100", None).await.expect(200));
    measure!("GET /keys/{id}", stack.call(&admin, "GET", &format!("/keys/{id}"), None).await.expect(200));
    measure!("GET /keys/{id}/usage", stack.call(&admin, "GET", &format!("/keys/{id}/usage"), None).await.expect(200));
    measure!(
        "PATCH /keys/{id}",
        stack.call(&admin, "PATCH", &format!("/keys/{id}"), Some(json!({"name": "renamed"}))).await.expect(200)
    );
    let rotated = measure!(
        "POST /keys/{id}/rotate (grace 60 s)",
        stack
            .call(&admin, "POST", &format!("/keys/{id}/rotate"), Some(json!({"grace_period_seconds": 60})))
            .await
            .expect(201)
    );
    let new_id = rotated["id"].as_str().unwrap();
    measure!("DELETE /keys/{id}", stack.call(&admin, "DELETE", &format!("/keys/{new_id}"), None).await.status);

    // Last: the clock moves past the cache's TTL.
    stack.let_cached_decisions_expire();
    measure!(
        "verification: not cached, lease held",
        stack.authorizer.authenticate([("x-api-key", key.as_str())]).await.unwrap()
    );

    eprintln!("| request | DynamoDB requests | reads | writes |");
    eprintln!("| --- | --- | --- | --- |");
    let mut measured = BTreeMap::new();
    for (label, counted) in &rows {
        let (reads, writes) = reads_and_writes(counted);
        let detail: Vec<String> = counted.iter().map(|(op, n)| format!("{n} {op}")).collect();
        eprintln!(
            "| {label} | {} | {reads} | {writes} |",
            if detail.is_empty() { "none".into() } else { detail.join(", ") }
        );
        measured.insert(*label, (reads, writes));
    }
    let expected = BTreeMap::from([
        ("POST /keys (the tier's pool has its slot)", (3, 2)),
        ("verification: a key's first request of the day (and its instance's first of the tier this minute)", (2, 3)),
        ("verification: cached (5 s)", (0, 0)),
        ("GET /whoami", (0, 0)),
        ("GET /keys?limit=100", (1, 0)),
        ("GET /keys/{id}", (1, 0)),
        ("GET /keys/{id}/usage", (3, 0)),
        ("PATCH /keys/{id}", (6, 2)),
        ("POST /keys/{id}/rotate (grace 60 s)", (7, 2)),
        ("DELETE /keys/{id}", (6, 3)),
        ("verification: not cached, lease held", (1, 0)),
    ]);
    assert_eq!(measured, expected);
}
