//! Usage per key and day on the local API: what it let through, from the verification counts, as
//! deployed; up to the last request (the local API writes its counts before it reads them, where
//! the deployed authorizers write theirs once a minute).

use crate::common;

use common::Running;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_api_counts_each_keys_requests_per_day() {
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let admin = api.admin_key.clone().unwrap();
    let (_, created) = api.json(Some(&admin), Method::POST, "/keys", Some(json!({"name": "counted"}))).await;
    let (id, key) = (created["id"].as_str().unwrap(), created["key"].as_str().unwrap());
    for _ in 0..3 {
        assert_eq!(api.json(Some(key), Method::GET, "/whoami", None).await.0, 200);
    }
    // A 403 from the handler comes after the key was let through, and counts.
    assert_eq!(api.json(Some(key), Method::GET, "/keys", None).await.0, 403);
    let (status, usage) = api.json(Some(&admin), Method::GET, &format!("/keys/{id}/usage?days=7"), None).await;
    assert_eq!(status, 200, "{usage}");
    let days = usage["days"].as_array().unwrap();
    assert_eq!(days.len(), 7, "{usage}");
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(days.last().unwrap(), &json!({"date": today, "requests": 4}), "{usage}");
    assert!(days[..6].iter().all(|day| day["requests"] == 0), "{usage}");
    api.stop().await;
}
