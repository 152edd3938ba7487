//! The local API over real HTTP: the first start prints (and writes) the admin key once; keys and
//! datasources work end to end; errors come in the envelope with the deployed statuses; the
//! tier's rate limit answers 429 with Retry-After; a restart keeps every key.

use crate::common;

use common::Running;
use reqwest::{Client, Method};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_api_end_to_end_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let admin = api.admin_key.clone().expect("the first start makes an admin key");
    let written = std::fs::read_to_string(dir.path().join("admin-key")).unwrap();
    assert_eq!(written, admin);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("admin-key")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // Errors in the envelope, with the deployed statuses.
    let (status, body) = api.json(None, Method::GET, "/whoami", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str(), body["message"].as_str()),
        (401, Some("MISSING_API_KEY"), Some("Unauthorized"))
    );
    let (status, body) = api.json(Some("lk_nope"), Method::GET, "/whoami", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("INVALID_API_KEY_FORMAT")));
    let (status, response) = api.call(Some(&admin), Method::PUT, "/keys", None).await;
    assert_eq!((status, response.headers()["allow"].to_str().unwrap()), (405, "GET, POST"));

    // A key, used in the three header styles.
    let (status, created) =
        api.json(Some(&admin), Method::POST, "/keys", Some(json!({"name": "ci", "tier": "starter"}))).await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    for (header, value) in
        [("x-api-key", key.clone()), ("authorization", format!("Bearer {key}")), ("Authorization", key.clone())]
    {
        let response = Client::new().get(format!("{}/whoami", api.base)).header(header, value).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let me: Value = response.json().await.unwrap();
        assert_eq!(me["id"], created["id"]);
    }
    let (status, body) = api.json(Some(&key), Method::GET, "/keys", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("INSUFFICIENT_PERMISSIONS")));

    // Datasource, ingest, records.
    let (status, datasource) =
        api.json(Some(&admin), Method::POST, "/datasources", Some(json!({"name": "station"}))).await;
    assert_eq!(status, 201, "{datasource}");
    let ingest_key = datasource["key"].as_str().unwrap().to_owned();
    let (status, answer) =
        api.json(Some(&ingest_key), Method::POST, "/ingest", Some(json!({"records": [{"t": 1}, {"t": 2}]}))).await;
    assert_eq!((status, answer["accepted"].as_u64()), (202, Some(2)));
    let path = format!("/datasources/{}/records", datasource["id"].as_str().unwrap());
    let (status, records) = api.json(Some(&admin), Method::GET, &format!("{path}?limit=1"), None).await;
    assert_eq!((status, records["records"][0]["data"]["t"].as_u64()), (200, Some(1)));
    let cursor = records["next_cursor"].as_str().unwrap();
    let (_, rest) = api.json(Some(&admin), Method::GET, &format!("{path}?limit=1&cursor={cursor}"), None).await;
    assert_eq!(rest["records"][0]["data"]["t"], 2);

    // The free tier (2 requests a second, burst 4) runs out; 429 with Retry-After.
    let (_, free) = api.json(Some(&admin), Method::POST, "/keys", Some(json!({"name": "metered"}))).await;
    let free_key = free["key"].as_str().unwrap().to_owned();
    let mut limited = None;
    for _ in 0..20 {
        let (status, response) = api.call(Some(&free_key), Method::GET, "/whoami", None).await;
        if status == 429 {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("the free tier's burst is 4");
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    // The unthrottled internal tier (the admin key) is not limited.
    for _ in 0..20 {
        assert_eq!(api.call(Some(&admin), Method::GET, "/whoami", None).await.0, 200);
    }
    api.stop().await;

    // A restart keeps the keys and makes no second admin key.
    let again = Running::start(dir.path()).await;
    assert_eq!(again.admin_key, None);
    assert_eq!(again.call(Some(&admin), Method::GET, "/whoami", None).await.0, 200);
    assert_eq!(again.call(Some(&key), Method::GET, "/whoami", None).await.0, 200);
    let (status, _) =
        again.json(Some(&admin), Method::DELETE, &format!("/keys/{}", created["id"].as_str().unwrap()), None).await;
    assert_eq!(status, 204);
    assert_eq!(again.json(Some(&key), Method::GET, "/whoami", None).await.1["error"]["code"], "INVALID_API_KEY");
    again.stop().await;
}
