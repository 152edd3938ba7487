//! Verification analytics on the local API, over HTTP: every decision about a known key counted by
//! outcome (valid, expired, revoked, disabled, ip_not_allowed, usage_exceeded, rate_limited) and read back per key
//! and per tenant; another tenant's key `404`; a bad window the envelope naming its field.

use crate::common;

use common::Running;
use reqwest::Method;
use serde_json::{Value, json};

fn counts(answer: &Value) -> (u64, u64, u64, u64, u64, u64, u64) {
    let n = |name: &str| answer["totals"][name].as_u64().unwrap_or_else(|| panic!("totals.{name}: {answer}"));
    (n("valid"), n("expired"), n("revoked"), n("disabled"), n("ip_not_allowed"), n("usage_exceeded"), n("rate_limited"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decision_about_a_key_is_counted_by_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let admin = api.admin_key.clone().unwrap();
    let create = |body: Value| {
        let (api, admin) = (&api, admin.clone());
        async move {
            let (status, created) = api.json(Some(&admin), Method::POST, "/keys", Some(body)).await;
            assert_eq!(status, 201, "{created}");
            (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned())
        }
    };
    // 3 valid, then disabled once, enabled, then the allowlist refuses once (the test calls from
    // loopback), then revoked twice.
    let (id, key) = create(json!({"name": "counted", "tier": "starter"})).await;
    for _ in 0..3 {
        assert_eq!(api.json(Some(&key), Method::GET, "/whoami", None).await.0, 200);
    }
    let path = format!("/keys/{id}");
    let patch = |body: Value| api.json(Some(&admin), Method::PATCH, &path, Some(body));
    assert_eq!(patch(json!({"enabled": false})).await.0, 200);
    assert_eq!(api.json(Some(&key), Method::GET, "/whoami", None).await.0, 401);
    assert_eq!(patch(json!({"enabled": true, "ip_allowlist": ["192.0.2.0/24"]})).await.0, 200);
    assert_eq!(api.json(Some(&key), Method::GET, "/whoami", None).await.0, 401);
    assert_eq!(api.json(Some(&admin), Method::DELETE, &format!("/keys/{id}"), None).await.0, 204);
    for _ in 0..2 {
        assert_eq!(api.json(Some(&key), Method::GET, "/whoami", None).await.0, 401);
    }
    // The free tier's burst (4), then its 429s: counted rate_limited, not valid.
    let (free_id, free) = create(json!({"name": "throttled", "tier": "free"})).await;
    let statuses: Vec<u16> = futures_statuses(&api, &free, 8).await;
    let limited = statuses.iter().filter(|s| **s == 429).count() as u64;
    assert!(limited >= 3, "{statuses:?}");
    // Unknown and malformed keys name no key: not in any key's counts.
    assert_eq!(api.json(Some("lk_0123"), Method::GET, "/whoami", None).await.0, 401);

    api.flush_verifications().await;
    let (status, answer) = api.json(Some(&admin), Method::GET, &format!("/keys/{id}/verifications"), None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(counts(&answer), (3, 0, 2, 1, 1, 0, 0), "{answer}");
    assert_eq!((answer["id"].as_str(), answer["granularity"].as_str()), (Some(id.as_str()), Some("day")));
    let buckets = answer["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 1, "one day: {answer}");
    let (_, hourly) =
        api.json(Some(&admin), Method::GET, &format!("/keys/{id}/verifications?granularity=hour"), None).await;
    assert_eq!(counts(&hourly), (3, 0, 2, 1, 1, 0, 0), "{hourly}");

    // The latest refusals, newest first: what the caller got, from where, for what.
    let (status, refused) = api.json(Some(&admin), Method::GET, &format!("/keys/{id}/refusals"), None).await;
    assert_eq!(status, 200, "{refused}");
    let codes: Vec<&str> =
        refused["refusals"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["INVALID_API_KEY", "INVALID_API_KEY", "IP_NOT_ALLOWED", "DISABLED_API_KEY"], "{refused}");
    let latest = &refused["refusals"][0];
    assert_eq!((latest["method"].as_str(), latest["path"].as_str()), (Some("GET"), Some("/whoami")), "{refused}");
    assert_eq!(latest["source_ip"], "127.0.0.1", "{refused}");
    assert!(!refused.to_string().contains(&key), "never the key");

    let (_, throttled) = api.json(Some(&admin), Method::GET, &format!("/keys/{free_id}/verifications"), None).await;
    assert_eq!(counts(&throttled), (8 - limited, 0, 0, 0, 0, 0, limited), "{throttled} after {statuses:?}");

    let (status, tenant) = api.json(Some(&admin), Method::GET, "/analytics/verifications", None).await;
    assert_eq!(status, 200, "{tenant}");
    let admin_calls = tenant["top_keys"].as_array().unwrap().iter().find(|k| k["id"] != id && k["id"] != free_id);
    let top: Vec<&str> = tenant["top_keys"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert!(top.contains(&id.as_str()) && top.contains(&free_id.as_str()), "{tenant}");
    let totals = tenant["totals"]["valid"].as_u64().unwrap();
    let admin_valid = admin_calls.map_or(0, |k| k["counts"]["valid"].as_u64().unwrap());
    assert_eq!(totals, 3 + (8 - limited) + admin_valid, "the tenant's totals are its keys' sums: {tenant}");
    api.stop().await;
}

async fn futures_statuses(api: &Running, key: &str, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        statuses.push(api.json(Some(key), Method::GET, "/whoami", None).await.0);
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_key_and_a_bad_window_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let admin = api.admin_key.clone().unwrap();
    for route in ["verifications", "refusals"] {
        let missing = format!("/keys/key_00000000000000000000000000000000/{route}");
        let (status, answer) = api.json(Some(&admin), Method::GET, &missing, None).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("NOT_FOUND")), "{answer}");
    }
    for (query, field) in [
        ("granularity=minute", "granularity"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("since=2030-01-02T00:00:00Z&until=2030-01-01T00:00:00Z", "since"),
        ("since=2020-01-01T00:00:00Z&until=2030-01-01T00:00:00Z", "since"),
    ] {
        let (status, answer) =
            api.json(Some(&admin), Method::GET, &format!("/analytics/verifications?{query}"), None).await;
        assert_eq!((status, answer["error"]["details"]["field"].as_str()), (400, Some(field)), "{query}: {answer}");
    }
    let (_, created) =
        api.json(Some(&admin), Method::POST, "/keys", Some(json!({"name": "reader", "permissions": ["read"]}))).await;
    let reader = created["key"].as_str().unwrap();
    let (status, answer) = api.json(Some(reader), Method::GET, "/analytics/verifications", None).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("INSUFFICIENT_PERMISSIONS")), "{answer}");
    let (status, _) = api.json(Some(&admin), Method::POST, "/analytics/verifications", None).await;
    assert_eq!(status, 405);
    api.stop().await;
}
