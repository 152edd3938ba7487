//! The local API as a gateway (`LATCHKEY_UPSTREAM`) in front of a real backend on a loopback
//! port (`latchkey_tests::echo`): what the backend receives, what it never receives, and what a
//! client gets when the backend fails. At the defaults users get (a 5 s key cache).

use crate::common;

use std::time::{Duration, Instant};

use common::Running;
use latchkey_tests::echo::{EchoServer, Seen};
use reqwest::{Client, Method};
use serde_json::{Value, json};

async fn gateway(dir: &std::path::Path, upstream: &str, vars: &[(&str, &str)]) -> Running {
    let mut all = vec![("LATCHKEY_UPSTREAM", upstream)];
    all.extend_from_slice(vars);
    Running::start_configured(dir, None, &all).await
}

/// A new key of the admin's tenant: (id, key).
async fn new_key(api: &Running, body: Value) -> (String, String) {
    let (status, created) = api.json(api.admin_key.as_deref(), Method::POST, "/keys", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned())
}

fn latchkey_headers(seen: &Seen) -> Vec<(String, String)> {
    seen.headers.iter().filter(|(name, _)| name.starts_with("x-latchkey-")).cloned().collect()
}

#[tokio::test]
async fn the_backend_learns_who_called_and_never_sees_the_key() {
    let echo = EchoServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let api = gateway(dir.path(), &echo.url, &[]).await;
    let (id, key) = new_key(
        &api,
        json!({"name": "catalog reader", "permissions": ["sources:*", "read", "documents.read"], "tier": "starter",
            "meta": {"plan": "pro", "city": "Zürich"}}),
    )
    .await;
    let client = Client::new();
    let styles: [(&str, String); 3] =
        [("x-api-key", key.clone()), ("authorization", format!("Bearer {key}")), ("authorization", key.clone())];
    for (header, value) in styles {
        let response = client
            .get(format!("{}/v1/catalog/sources?limit=2&q=a%20b", api.base))
            .header(header, value)
            .header("X-Latchkey-Tenant-Id", "someone-else")
            .header("x-latchkey-anything", "forged")
            .header("x-multi", "one")
            .header("x-multi", "two")
            .header("connection", "x-hop")
            .header("x-hop", "per-connection")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{header}");
        assert_eq!(response.headers()["x-echo"], "1", "answered by the backend");
        let seen = echo.seen().pop().unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.path_and_query.as_str()),
            ("GET", "/v1/catalog/sources?limit=2&q=a%20b")
        );
        let expected: Vec<(String, String)> = [
            ("x-latchkey-auth-type", "api_key"),
            ("x-latchkey-principal", id.as_str()),
            ("x-latchkey-tenant-id", "default"),
            ("x-latchkey-key-id", id.as_str()),
            // The tenant's own names, unchanged, after the seed vocabulary.
            ("x-latchkey-permissions", "read,documents.read,sources:*"),
            ("x-latchkey-tier", "starter"),
            // Compact JSON, non-ASCII escaped: what a header carries unchanged.
            ("x-latchkey-meta", r#"{"city":"Z\u00fcrich","plan":"pro"}"#),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
        let mut got = latchkey_headers(&seen);
        got.sort();
        let mut expected = expected;
        expected.sort();
        assert_eq!(got, expected, "only Latchkey's own X-Latchkey-* headers ({header})");
        assert!(seen.header("x-api-key").is_empty() && seen.header("authorization").is_empty(), "{header}");
        assert!(!seen.headers.iter().any(|(_, value)| value.contains(&key)), "the key reached the backend");
        assert_eq!(seen.header("x-multi"), ["one", "two"]);
        assert!(seen.header("x-hop").is_empty() && seen.header("connection").is_empty(), "hop-by-hop passed on");
        assert_eq!(seen.header("host"), [echo.url.trim_start_matches("http://")]);
    }
    assert_eq!(echo.count(), 3);
}

#[tokio::test]
async fn no_spelling_of_a_reserved_header_reaches_the_backend_and_meta_always_does() {
    let echo = EchoServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let api = gateway(dir.path(), &echo.url, &[]).await;
    // DEL is valid JSON text unescaped, and no header value may carry it.
    let (id, key) = new_key(&api, json!({"name": "odd meta", "meta": {"a": "\u{7f}"}})).await;
    let response = Client::new()
        .get(format!("{}/v1/anything", api.base))
        .header("x-api-key", &key)
        // What a CGI or WSGI server reads as HTTP_X_LATCHKEY_TENANT_ID, HTTP_X_API_KEY, ...
        .header("X_Latchkey_Tenant_Id", "someone-else")
        .header("x_latchkey-principal", "forged")
        .header("X_Api_Key", key.as_str())
        .header("x_request_id", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = echo.seen().pop().unwrap();
    let cgi = |name: &str| name.replace('_', "-");
    let reserved: Vec<&(String, String)> = seen
        .headers
        .iter()
        .filter(|(name, _)| cgi(name).starts_with("x-latchkey-") || cgi(name) == "x-api-key")
        .collect();
    assert!(reserved.iter().all(|(name, _)| !name.contains('_')), "an underscore spelling passed: {reserved:?}");
    assert_eq!(seen.header("x-latchkey-tenant-id"), ["default"]);
    assert_eq!(seen.header("x-latchkey-principal"), [id.as_str()]);
    assert_eq!(seen.header("x_request_id"), ["kept"], "other underscore names pass");
    assert!(!seen.headers.iter().any(|(_, value)| value.contains(&key)), "the key reached the backend");
    assert_eq!(seen.header("x-latchkey-meta"), [r#"{"a":"\u007f"}"#], "meta is always sent");
}

async fn refused(api: &Running, key: Option<&str>, code: &str) {
    let (status, body) = api.json(key, Method::GET, "/v1/catalog/sources", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some(code)), "{body}");
    assert_eq!(body["message"], "Unauthorized");
    assert_eq!(body["success"], false);
}

#[tokio::test]
async fn refused_requests_never_reach_the_backend() {
    let echo = EchoServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let api = gateway(dir.path(), &echo.url, &[]).await;
    let (revoked_id, revoked) = new_key(&api, json!({"name": "to revoke"})).await;
    let soon = (chrono::Utc::now() + chrono::TimeDelta::seconds(2)).to_rfc3339();
    let (_, expiring) = new_key(&api, json!({"name": "short-lived", "expires_at": soon})).await;
    let (disabled_id, disabled) = new_key(&api, json!({"name": "to disable"})).await;
    let (status, body) = api
        .json(api.admin_key.as_deref(), Method::PATCH, &format!("/keys/{disabled_id}"), Some(json!({"enabled": false})))
        .await;
    assert_eq!((status, &body["enabled"]), (200, &json!(false)), "{body}");
    let (status, _) = api.json(api.admin_key.as_deref(), Method::DELETE, &format!("/keys/{revoked_id}"), None).await;
    assert_eq!(status, 204);

    refused(&api, None, "MISSING_API_KEY").await;
    refused(&api, Some("lk_not-a-key"), "INVALID_API_KEY_FORMAT").await;
    let unknown = latchkey::KeyProfile::latchkey().generate();
    refused(&api, Some(unknown.expose_secret()), "INVALID_API_KEY").await;
    // Revocation reaches this process's cache within its TTL (5 s by default), as deployed.
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    refused(&api, Some(&revoked), "INVALID_API_KEY").await;
    refused(&api, Some(&expiring), "EXPIRED_API_KEY").await;
    refused(&api, Some(&disabled), "DISABLED_API_KEY").await;
    assert_eq!(echo.count(), 0, "a refused request reached the backend");
}

#[tokio::test]
async fn methods_paths_and_large_bodies_stream_through() {
    let echo = EchoServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let api = gateway(dir.path(), &echo.url, &[]).await;
    let (_, key) = new_key(&api, json!({"name": "writer", "permissions": ["read", "write"], "tier": "starter"})).await;
    let client = Client::new();
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS] {
        let response = client
            .request(method.clone(), format!("{}/v1/items/a%2Fb/%E2%9C%93?x=%26&x=2", api.base))
            .header("x-api-key", &key)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{method}");
        let seen = echo.seen().pop().unwrap();
        assert_eq!(seen.method, method.as_str());
        assert_eq!(seen.path_and_query, "/v1/items/a%2Fb/%E2%9C%93?x=%26&x=2", "{method}");
        assert_eq!(seen.body_len, 2);
    }
    let head = client.head(format!("{}/v1/items", api.base)).header("x-api-key", &key).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(echo.seen().pop().unwrap().method, "HEAD");

    const FIVE_MIB: usize = 5 * 1024 * 1024;
    let upload = client
        .post(format!("{}/v1/uploads", api.base))
        .header("x-api-key", &key)
        .body(vec![b'u'; FIVE_MIB])
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 200);
    assert_eq!(echo.seen().pop().unwrap().body_len, FIVE_MIB as u64);
    let download = client.get(format!("{}/bytes/{FIVE_MIB}", api.base)).header("x-api-key", &key).send().await.unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().len(), FIVE_MIB);
}

#[tokio::test]
async fn a_backend_down_is_502_and_a_slow_one_504() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let api = gateway(dir.path(), &format!("http://{closed}"), &[]).await;
    let (_, key) = new_key(&api, json!({"name": "k", "tier": "starter"})).await;
    let (status, body) = api.json(Some(&key), Method::GET, "/v1/catalog/sources", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (502, Some("BAD_GATEWAY")), "{body}");
    api.stop().await;

    let echo = EchoServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let api = gateway(dir.path(), &echo.url, &[("LATCHKEY_UPSTREAM_TIMEOUT_SECONDS", "1")]).await;
    let (_, key) = new_key(&api, json!({"name": "k", "tier": "starter"})).await;
    // An answered request first, on the same client connection: the slow one's timeout counts
    // from its own start, not from the earlier one's (the connection has one timer).
    let (status, _) = api.call(Some(&key), Method::GET, "/slow/0", None).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let started = Instant::now();
    let (status, body) = api.json(Some(&key), Method::GET, "/slow/4000", None).await;
    let took = started.elapsed();
    assert_eq!((status, body["error"]["code"].as_str()), (504, Some("GATEWAY_TIMEOUT")), "{body}");
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(4), "answered after {took:?}");
    // Below the timeout the answer is the backend's.
    let (status, _) = api.call(Some(&key), Method::GET, "/slow/100", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn latchkeys_own_routes_are_never_forwarded() {
    let echo = EchoServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let api = gateway(dir.path(), &echo.url, &[]).await;
    let admin = api.admin_key.clone().unwrap();
    let (status, me) = api.json(Some(&admin), Method::GET, "/whoami", None).await;
    assert_eq!((status, me["tenant_id"].as_str()), (200, Some("default")));
    let (status, _) = api.json(Some(&admin), Method::PUT, "/keys", None).await;
    assert_eq!(status, 405);
    let (status, _) = api.json(Some(&admin), Method::GET, "/keys/", None).await;
    assert_eq!(status, 200);
    let (status, body) = api.json(Some(&admin), Method::POST, "/ingest", Some(json!({"id": "x"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("INSUFFICIENT_PERMISSIONS")), "{body}");
    assert_eq!(echo.count(), 0);
    // A path below a route that is no route of ours is the backend's.
    let (status, _) = api.call(Some(&admin), Method::GET, "/keys/x/y/z", None).await;
    assert_eq!(status, 200);
    assert_eq!(echo.seen().pop().unwrap().path_and_query, "/keys/x/y/z");
}

#[tokio::test]
async fn each_key_is_throttled_by_its_tier_before_the_backend() {
    let echo = EchoServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let api = gateway(dir.path(), &echo.url, &[]).await;
    let (_, free) = new_key(&api, json!({"name": "free", "tier": "free"})).await;
    let (_, other) = new_key(&api, json!({"name": "another free key", "tier": "free"})).await;
    let mut passed = 0;
    let mut limited = 0;
    let started = std::time::Instant::now();
    for _ in 0..12 {
        let (status, response) = api.call(Some(&free), Method::GET, "/v1/catalog/sources", None).await;
        match status {
            200 => passed += 1,
            429 => {
                limited += 1;
                assert!(response.headers().get("retry-after").is_some());
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"]["code"], "RATE_LIMITED");
            }
            other => panic!("status {other}"),
        }
    }
    // The free tier: 2 req/s with a burst of 4, so at most the burst and what refilled while the
    // requests were made (a loaded machine makes them slowly), and at least the burst.
    let refilled = (2.0 * started.elapsed().as_secs_f64()).ceil() as usize;
    assert!(
        (4..=4 + refilled).contains(&passed) && limited >= 1,
        "{passed} passed, {limited} limited, {refilled} refilled"
    );
    assert_eq!(echo.count(), passed, "a throttled request reached the backend");
    // Another key of the same tier has its own bucket.
    let (status, _) = api.call(Some(&other), Method::GET, "/v1/catalog/sources", None).await;
    assert_eq!(status, 200);
}

/// A backend that answers one request per connection and then closes it without saying so (no
/// `Connection: close`), as one whose keep-alive timeout has just run out: the request is
/// forwarded on a new connection, never answered 502. Each request line and `Host` it received.
#[tokio::test]
async fn a_backend_that_drops_kept_connections_still_gets_every_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = backend.local_addr().unwrap();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let kept = std::sync::Arc::clone(&received);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = backend.accept().await.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap() == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8(head).unwrap();
            let host = head.lines().find_map(|line| line.strip_prefix("host: ")).unwrap_or("none").to_owned();
            kept.lock().unwrap().push(format!("{} host={host}", head.lines().next().unwrap()));
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
            drop(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let api = gateway(dir.path(), &format!("http://{addr}/base/"), &[]).await;
    let (_, key) = new_key(&api, json!({"name": "k", "tier": "starter"})).await;
    let client = Client::new();
    for n in 0..4 {
        // Half of them after the backend's close has certainly arrived, half right away.
        if n % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let response =
            client.get(format!("{}/v1/items?n={n}", api.base)).header("x-api-key", &key).send().await.unwrap();
        assert_eq!(response.status(), 200, "request {n}");
        assert_eq!(response.text().await.unwrap(), "ok");
    }
    let expected: Vec<String> = (0..4).map(|n| format!("GET /base/v1/items?n={n} HTTP/1.1 host={addr}")).collect();
    assert_eq!(*received.lock().unwrap(), expected);
}
