//! Dashboard sessions on the local API: an admin key is exchanged for a short-lived JWT
//! (`POST /sessions`), which then authenticates as the key's tenant with the key's permissions;
//! a session is refreshed by asking again, while its key still verifies and is still an admin key.

use crate::common;

use common::Running;
use reqwest::{Client, Method};
use serde_json::{Value, json};

async fn with_bearer(api: &Running, token: &str, method: Method, path: &str) -> (u16, Value) {
    let response = Client::new()
        .request(method, format!("{}{path}", api.base))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_key_is_exchanged_for_a_session_that_refreshes_while_its_key_is_an_admin_key() {
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let admin = api.admin_key.clone().unwrap();

    let (status, session) = api.json(Some(&admin), Method::POST, "/sessions", None).await;
    assert_eq!(status, 201, "{session}");
    assert_eq!((session["token_type"].as_str(), session["expires_in"].as_i64()), (Some("Bearer"), Some(900)));
    let token = session["token"].as_str().unwrap().to_owned();
    assert!(!token.contains(&admin), "the key is not in its session");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("data/session-secret")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // The session is the key's tenant and permissions.
    let (status, me) = with_bearer(&api, &token, Method::GET, "/whoami").await;
    assert_eq!(
        (status, me["auth_type"].as_str(), me["tenant_id"].as_str()),
        (200, Some("jwt"), Some("default")),
        "{me}"
    );
    let (status, keys) = with_bearer(&api, &token, Method::GET, "/keys").await;
    assert_eq!((status, keys["keys"].as_array().map(Vec::len)), (200, Some(1)), "{keys}");

    // A second admin key's session refreshes while the key lives, and no longer once revoked.
    let body = json!({"name": "operator", "permissions": ["read", "write", "admin"]});
    let (_, second) = api.json(Some(&admin), Method::POST, "/keys", Some(body)).await;
    let (status, theirs) = api.json(Some(second["key"].as_str().unwrap()), Method::POST, "/sessions", None).await;
    assert_eq!(status, 201);
    let theirs = theirs["token"].as_str().unwrap().to_owned();
    let (status, refreshed) = with_bearer(&api, &theirs, Method::POST, "/sessions").await;
    assert_eq!(status, 201, "{refreshed}");
    let (status, _) =
        api.json(Some(&admin), Method::DELETE, &format!("/keys/{}", second["id"].as_str().unwrap()), None).await;
    assert_eq!(status, 204);
    // The session answers to its key: revoked, the key refuses it as it would refuse the key.
    let (status, refused) = with_bearer(&api, &theirs, Method::POST, "/sessions").await;
    assert_eq!((status, refused["error"]["code"].as_str()), (401, Some("INVALID_API_KEY")), "{refused}");

    // A key without admin gets no session; a forged or garbled token is refused.
    let (_, reader) = api.json(Some(&admin), Method::POST, "/keys", Some(json!({"name": "reader"}))).await;
    let (status, body) = api.json(Some(reader["key"].as_str().unwrap()), Method::POST, "/sessions", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("INSUFFICIENT_PERMISSIONS")));
    // One character of the signature changed (not its last, whose low bits are padding).
    let at = token.len() - 10;
    let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
    let (status, body) = with_bearer(&api, &forged, Method::GET, "/whoami").await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("INVALID_TOKEN")));
    api.stop().await;

    // The secret outlives a restart: a session made before it still verifies after.
    let api = Running::start(dir.path()).await;
    let (status, _) = with_bearer(&api, &token, Method::GET, "/whoami").await;
    assert_eq!(status, 200);
    api.stop().await;
}

/// A request from `client` with `token` as its bearer credential: (status, body).
async fn session_call(
    client: &Client,
    api: &Running,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, format!("{}{path}", api.base)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

/// A client whose requests come from `source`: every address of 127.0.0.0/8 is this machine.
fn client_from(source: &str) -> Client {
    Client::builder().local_address(source.parse::<std::net::IpAddr>().unwrap()).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_answers_to_its_key_as_stored_now_on_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let admin = api.admin_key.clone().unwrap();
    let body =
        json!({"name": "office admin", "permissions": ["read", "write", "admin"], "ip_allowlist": ["127.0.0.2"]});
    let (status, office) = api.json(Some(&admin), Method::POST, "/keys", Some(body)).await;
    assert_eq!(status, 201, "{office}");
    let (id, key) = (office["id"].as_str().unwrap(), office["key"].as_str().unwrap());
    let (here, elsewhere) = (client_from("127.0.0.2"), client_from("127.0.0.3"));

    let response = here.post(format!("{}/sessions", api.base)).header("x-api-key", key).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let token = response.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let (status, me) = session_call(&here, &api, &token, Method::GET, "/whoami", None).await;
    assert_eq!(status, 200, "{me}");

    // From elsewhere the session is refused as its key would be: reading, renewing, minting.
    let mint = json!({"name": "escape", "permissions": ["admin"]});
    for (method, path, body) in
        [(Method::GET, "/whoami", None), (Method::POST, "/sessions", None), (Method::POST, "/keys", Some(mint.clone()))]
    {
        let (status, refused) = session_call(&elsewhere, &api, &token, method, path, body).await;
        assert_eq!((status, refused["error"]["code"].as_str()), (401, Some("IP_NOT_ALLOWED")), "{path}: {refused}");
        assert_eq!(refused["error"]["details"]["source_ip"], "127.0.0.3");
    }
    let (_, listed) = api.json(Some(&admin), Method::GET, "/keys", None).await;
    assert!(!listed["keys"].as_array().unwrap().iter().any(|k| k["name"] == "escape"), "a key was minted: {listed}");

    // Disabled: the session reads nothing and creates nothing.
    let path = format!("/keys/{id}");
    let (status, _) = api.json(Some(&admin), Method::PATCH, &path, Some(json!({"enabled": false}))).await;
    assert_eq!(status, 200);
    for (method, path, body) in [(Method::GET, "/keys", None), (Method::POST, "/keys", Some(mint.clone()))] {
        let (status, refused) = session_call(&here, &api, &token, method, path, body).await;
        assert_eq!((status, refused["error"]["code"].as_str()), (401, Some("DISABLED_API_KEY")), "{path}: {refused}");
    }

    // Enabled again but only `read`: the session's permissions are the key's now.
    let change = json!({"enabled": true, "permissions": ["read"]});
    let (status, _) = api.json(Some(&admin), Method::PATCH, &path, Some(change)).await;
    assert_eq!(status, 200);
    let (status, me) = session_call(&here, &api, &token, Method::GET, "/whoami", None).await;
    assert_eq!((status, me["permissions"].clone()), (200, json!(["read"])), "{me}");
    let (status, refused) = session_call(&here, &api, &token, Method::POST, "/keys", Some(mint)).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (403, Some("INSUFFICIENT_PERMISSIONS")), "{refused}");

    // Revoked: 401.
    let (status, _) = api.json(Some(&admin), Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, refused) = session_call(&here, &api, &token, Method::GET, "/whoami", None).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (401, Some("INVALID_API_KEY")), "{refused}");
    api.stop().await;
}

fn config_error(vars: &'static [(&'static str, &'static str)]) -> String {
    let env = latchkey::config::Env::from_fn(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()));
    latchkey_local::LocalConfig::from_env(&env).err().map(|e| e.to_string()).unwrap_or_default()
}

#[test]
fn an_identity_provider_is_named_by_its_jwks_and_the_clock_runs_ahead_only() {
    let secret = config_error(&[
        ("LATCHKEY_JWT_SECRET_ID", "idp-secret"),
        ("LATCHKEY_JWT_ISSUER", "https://id.example.com/"),
        ("LATCHKEY_JWT_AUDIENCE", "dashboard"),
    ]);
    assert!(secret.contains("LATCHKEY_JWT_SECRET_ID") && secret.contains("LATCHKEY_JWT_JWKS_URL"), "{secret}");
    let plain = config_error(&[
        ("LATCHKEY_JWT_JWKS_URL", "http://id.example.com/jwks"),
        ("LATCHKEY_JWT_ISSUER", "https://id.example.com/"),
        ("LATCHKEY_JWT_AUDIENCE", "dashboard"),
    ]);
    assert!(plain.contains("must be an https URL"), "{plain}");
    let behind = config_error(&[("LATCHKEY_CLOCK_OFFSET_SECONDS", "-60")]);
    assert!(behind.contains("LATCHKEY_CLOCK_OFFSET_SECONDS"), "{behind}");
    assert_eq!(config_error(&[("LATCHKEY_CLOCK_OFFSET_SECONDS", "960")]), "");
}
