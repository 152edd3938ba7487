//! `POST /keys/import` on the local API, over HTTP: a key another system issued verifies as it
//! is from then on, whether imported as its plaintext or as its SHA-256 (moved under the pepper
//! by its first use); the answer never carries it; the same key twice is `409`; bad imports name
//! their field; strings of an imported key's shape are looked up, anything else still refused
//! without a lookup.

use crate::common;

use common::Running;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest;

/// A key as API Gateway makes them: 40 alphanumerics.
const GATEWAY_KEY: &str = "Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd4fGh7jKl0n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_keys_verify_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let admin = api.admin_key.clone().unwrap();
    let import = |body: Value| {
        let (api, admin) = (&api, admin.clone());
        async move { api.json(Some(&admin), Method::POST, "/keys/import", Some(body)).await }
    };

    // Its plaintext: stored peppered, with a hint; the answer is its view, never the key.
    let (status, imported) = import(json!({"key": GATEWAY_KEY, "name": "from api gateway", "tier": "starter"})).await;
    assert_eq!(status, 201, "{imported}");
    assert_eq!((imported["hint"].as_str(), imported["tier"].as_str()), (Some("...Kl0n"), Some("starter")));
    assert!(imported.get("key").is_none() && !imported.to_string().contains(GATEWAY_KEY), "{imported}");
    let (status, me) = api.json(Some(GATEWAY_KEY), Method::GET, "/whoami", None).await;
    assert_eq!((status, me["name"].as_str()), (200, Some("from api gateway")), "{me}");
    let (status, again) = import(json!({"key": GATEWAY_KEY, "name": "twice"})).await;
    assert_eq!((status, again["error"]["code"].as_str()), (409, Some("CONFLICT")), "{again}");

    // Only its SHA-256 (what Unkey and many home-grown systems keep): verifies, and its first use
    // moves it under the pepper, which gives it its hint.
    let unkey = "unkey_3ZHfJbHq7sJvGr9WBGmM5Lyy";
    let sha256 = hex::encode(sha2::Sha256::digest(unkey.as_bytes()));
    let (status, imported) = import(json!({"sha256": sha256.to_uppercase(), "name": "from unkey"})).await;
    assert_eq!((status, imported["hint"].as_str()), (201, Some("imported (sha256)")), "{imported}");
    let id = imported["id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let (status, me) = api.json(Some(unkey), Method::GET, "/whoami", None).await;
        assert_eq!((status, me["id"].as_str()), (200, Some(id.as_str())), "{me}");
    }
    let (_, moved) = api.json(Some(&admin), Method::GET, &format!("/keys/{id}"), None).await;
    assert_eq!(moved["hint"], "...5Lyy", "moved under the pepper by its first use: {moved}");
    let (status, again) = import(json!({"sha256": sha256, "name": "twice"})).await;
    assert_eq!(status, 201, "once moved, its SHA-256 is no longer stored: {again}");

    // Audited as imports.
    let (_, audit) = api.json(Some(&admin), Method::GET, "/audit", None).await;
    let imports = audit["events"].as_array().unwrap().iter().filter(|e| e["action"] == "key.import").count();
    assert_eq!(imports, 3, "{audit}");

    // A string of an imported key's shape that nobody imported is an unknown key; a string of
    // neither shape (too short, ours mistyped, a space) is refused by its format.
    for (text, code) in [
        ("Zz9yXw8vUt7sRq6pOn5mLk4j", "INVALID_API_KEY"),
        ("short-key", "INVALID_API_KEY_FORMAT"),
        ("lk_0badc0de0badc0de0badc0de0badc0deffbb8fe1", "INVALID_API_KEY_FORMAT"),
        ("has a space in it, twenty+", "INVALID_API_KEY_FORMAT"),
    ] {
        let (status, refused) = api.json(Some(text), Method::GET, "/whoami", None).await;
        assert_eq!((status, refused["error"]["code"].as_str()), (401, Some(code)), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_imports_name_their_field_and_make_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let admin = api.admin_key.clone().unwrap();
    for (body, field) in [
        (json!({"name": "x"}), "key"),
        (json!({"name": "x", "key": "too-short-for-a-key"}), "key"),
        (json!({"name": "x", "key": "x".repeat(257)}), "key"),
        (json!({"name": "x", "key": "lk_0badc0de0badc0de0badc0de0badc0deffbb8fe0"}), "key"),
        (json!({"name": "x", "key": 12345678901234567890_u64}), "key"),
        (json!({"name": "x", "key": GATEWAY_KEY, "sha256": "00"}), "sha256"),
        (json!({"name": "x", "sha256": "not hex at all"}), "sha256"),
        (json!({"key": GATEWAY_KEY}), "name"),
        (json!({"name": "x", "key": GATEWAY_KEY, "colour": "red"}), "colour"),
        (json!({"name": "x", "key": GATEWAY_KEY, "tier": "platinum"}), "tier"),
    ] {
        let (status, answer) = api.json(Some(&admin), Method::POST, "/keys/import", Some(body.clone())).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{body}: {answer}");
        assert_eq!(answer["error"]["details"]["field"], field, "{body}: {answer}");
    }
    let (_, listed) = api.json(Some(&admin), Method::GET, "/keys", None).await;
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1, "only the admin key: {listed}");
    // Only an admin imports.
    let (_, reader) =
        api.json(Some(&admin), Method::POST, "/keys", Some(json!({"name": "reader", "tier": "starter"}))).await;
    let reader = reader["key"].as_str().unwrap();
    let (status, refused) =
        api.json(Some(reader), Method::POST, "/keys/import", Some(json!({"name": "x", "key": GATEWAY_KEY}))).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (403, Some("INSUFFICIENT_PERMISSIONS")));
}
