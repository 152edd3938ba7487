//! Verification analytics through the deployed shape: the authorizer counts its decisions, its
//! minute's flush writes them to the records table in DynamoDB Local, and `keys-read` answers
//! `GET /keys/{id}/verifications` and `GET /analytics/verifications` from there; another tenant
//! sees none of it.

use crate::common;

use common::Stack;
use serde_json::json;

#[tokio::test]
async fn the_authorizers_counts_reach_the_read_routes() {
    let stack = Stack::new().await;
    let admin = stack.bootstrap(&latchkey_tests::unique_name("acme")).await;
    let created = stack.call(&admin, "POST", "/keys", Some(json!({"name": "counted"}))).await.expect(201);
    let (id, key) = (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned());
    for _ in 0..3 {
        stack.call(&key, "GET", "/whoami", None).await.expect(200);
    }
    stack.call(&admin, "PATCH", &format!("/keys/{id}"), Some(json!({"enabled": false}))).await.expect(200);
    // The authorizer's cache holds the enabled record for its TTL: let it go, as time would.
    stack.let_cached_decisions_expire();
    stack.call(&key, "GET", "/whoami", None).await.expect(401);
    stack.call("lk_0123", "GET", "/whoami", None).await.expect(401);

    // What the flusher does once a minute, now.
    latchkey::verifications::flush(stack.authorizer.verifications(), &*stack.records).await;

    let counted =
        stack.call(&admin, "GET", &format!("/keys/{id}/verifications?granularity=hour"), None).await.expect(200);
    assert_eq!(counted["totals"]["valid"], 3, "{counted}");
    assert_eq!(counted["totals"]["disabled"], 1, "{counted}");
    assert_eq!(counted["buckets"].as_array().unwrap().len(), 1, "{counted}");

    let refused = stack.call(&admin, "GET", &format!("/keys/{id}/refusals"), None).await.expect(200);
    let latest = &refused["refusals"][0];
    assert_eq!(latest["code"], "DISABLED_API_KEY", "{refused}");
    // The method and path from the event's methodArn, the address from its sourceIp.
    assert_eq!((latest["method"].as_str(), latest["path"].as_str()), (Some("GET"), Some("/whoami")), "{refused}");

    let overview = stack.call(&admin, "GET", "/analytics/verifications", None).await.expect(200);
    let top = overview["top_keys"].as_array().unwrap();
    assert!(top.iter().any(|k| k["id"] == id.as_str() && k["total"] == 4), "{overview}");

    // Another tenant: the key is 404, and its overview holds none of acme's keys.
    let other = stack.bootstrap(&latchkey_tests::unique_name("globex")).await;
    let refused = stack.call(&other, "GET", &format!("/keys/{id}/verifications"), None).await.expect(404);
    assert_eq!(refused["error"]["code"], "NOT_FOUND");
    let theirs = stack.call(&other, "GET", "/analytics/verifications", None).await.expect(200);
    assert!(theirs["top_keys"].as_array().unwrap().iter().all(|k| k["id"] != id.as_str()), "{theirs}");
}
