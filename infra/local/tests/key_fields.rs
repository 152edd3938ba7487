//! What a key carries beyond its permissions, over the local API's HTTP: an owner (and the
//! listing of one owner's keys), metadata, and the enabled flag, with their audit events; a
//! rotation carries them over.

use crate::common;

use common::Running;
use reqwest::Method;
use serde_json::{Value, json};

async fn admin(api: &Running, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    api.json(api.admin_key.as_deref(), method, path, body).await
}

fn ids(list: &Value) -> Vec<&str> {
    list["keys"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_metadata_and_disabling_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let mut alice = Vec::new();
    for n in 0..3 {
        let body = json!({"name": format!("alice {n}"), "owner_id": "cus_alice", "meta": {"plan": "pro", "n": n}});
        let (status, created) = admin(&api, Method::POST, "/keys", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(
            (&created["owner_id"], &created["meta"]["n"], &created["enabled"]),
            (&json!("cus_alice"), &json!(n), &json!(true))
        );
        alice.push((created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned()));
    }
    let (_, other) = admin(&api, Method::POST, "/keys", Some(json!({"name": "bob's", "owner_id": "cus_bob"}))).await;

    // One owner's keys, in creation order, paged.
    let (status, page) = admin(&api, Method::GET, "/keys?owner_id=cus_alice&limit=2", None).await;
    assert_eq!(status, 200, "{page}");
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = admin(&api, Method::GET, &format!("/keys?owner_id=cus_alice&limit=2&cursor={cursor}"), None).await;
    let listed: Vec<&str> = ids(&page).into_iter().chain(ids(&rest)).collect();
    assert_eq!(listed, alice.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>());
    let (_, bobs) = admin(&api, Method::GET, "/keys?owner_id=cus_bob", None).await;
    assert_eq!(ids(&bobs), [other["id"].as_str().unwrap()]);
    let (status, bad) = admin(&api, Method::GET, "/keys?owner_id=", None).await;
    assert_eq!((status, &bad["error"]["details"]["field"]), (400, &json!("owner_id")), "{bad}");

    // The key sees its own fields.
    let (id, key) = &alice[0];
    let (status, me) = api.json(Some(key), Method::GET, "/whoami", None).await;
    assert_eq!((status, &me["owner_id"], &me["meta"]["plan"]), (200, &json!("cus_alice"), &json!("pro")), "{me}");

    // Disabled: refused as such, and reversible; each switch audited as itself.
    let path = format!("/keys/{id}");
    let (status, disabled) = admin(&api, Method::PATCH, &path, Some(json!({"enabled": false}))).await;
    assert_eq!((status, &disabled["enabled"], &disabled["status"]), (200, &json!(false), &json!("active")));
    tokio::time::sleep(std::time::Duration::from_millis(5_500)).await; // the default cache TTL, 5 s
    let (status, refused) = api.json(Some(key), Method::GET, "/whoami", None).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (401, Some("DISABLED_API_KEY")), "{refused}");
    let (status, _) = admin(&api, Method::PATCH, &path, Some(json!({"enabled": true, "meta": null}))).await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
    let (status, me) = api.json(Some(key), Method::GET, "/whoami", None).await;
    assert_eq!((status, &me["meta"]), (200, &json!({})), "{me}");
    let (_, audit) = admin(&api, Method::GET, "/audit?limit=5", None).await;
    let actions: Vec<(&str, &str)> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == json!(id))
        .map(|e| (e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, [("key.update", id.as_str()), ("key.enable", id.as_str()), ("key.disable", id.as_str())]);

    // An owner moved and taken away; a rotation keeps owner and metadata.
    let (second, _) = &alice[1];
    admin(&api, Method::PATCH, &format!("/keys/{second}"), Some(json!({"owner_id": "cus_bob"}))).await;
    let (_, bobs) = admin(&api, Method::GET, "/keys?owner_id=cus_bob", None).await;
    // Creation order: alice's second key is older than bob's own.
    assert_eq!(ids(&bobs), [second.as_str(), other["id"].as_str().unwrap()]);
    admin(&api, Method::PATCH, &format!("/keys/{second}"), Some(json!({"owner_id": null}))).await;
    let (_, bobs) = admin(&api, Method::GET, "/keys?owner_id=cus_bob", None).await;
    assert_eq!(ids(&bobs), [other["id"].as_str().unwrap()]);
    let (third, _) = &alice[2];
    let (status, rotated) = admin(&api, Method::POST, &format!("/keys/{third}/rotate"), None).await;
    assert_eq!(status, 201, "{rotated}");
    assert_eq!((&rotated["owner_id"], &rotated["meta"]), (&json!("cus_alice"), &json!({"plan": "pro", "n": 2})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_allowlist_admits_its_networks_only() {
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let body = json!({"name": "office only", "ip_allowlist": ["10.0.0.0/8", "2001:db8::/32"]});
    let (status, created) = admin(&api, Method::POST, "/keys", Some(body)).await;
    assert_eq!((status, &created["ip_allowlist"]), (201, &json!(["10.0.0.0/8", "2001:db8::/32"])), "{created}");
    let (id, key) = (created["id"].as_str().unwrap(), created["key"].as_str().unwrap());
    // The test calls from 127.0.0.1, the peer address the local API sees.
    let (status, refused) = api.json(Some(key), Method::GET, "/whoami", None).await;
    assert_eq!(status, 401, "{refused}");
    assert_eq!(
        refused["error"],
        json!({"code": "IP_NOT_ALLOWED", "message": "The API key may not be used from this address", "details": {"source_ip": "127.0.0.1"}})
    );
    let (status, _) =
        admin(&api, Method::PATCH, &format!("/keys/{id}"), Some(json!({"ip_allowlist": ["127.0.0.1"]}))).await;
    assert_eq!(status, 200);
    let (status, me) = api.json(Some(key), Method::GET, "/whoami", None).await;
    assert_eq!((status, &me["ip_allowlist"]), (200, &json!(["127.0.0.1/32"])), "{me}");
    let (status, cleared) =
        admin(&api, Method::PATCH, &format!("/keys/{id}"), Some(json!({"ip_allowlist": null}))).await;
    assert_eq!((status, &cleared["ip_allowlist"]), (200, &json!([])));

    let bad = json!({"name": "bad", "ip_allowlist": ["10.0.0.0/8", "10.0.0.0/40"]});
    let (status, error) = admin(&api, Method::POST, "/keys", Some(bad)).await;
    assert_eq!((status, &error["error"]["details"]["field"]), (400, &json!("ip_allowlist[1]")), "{error}");
}
