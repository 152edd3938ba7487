//! Datasources through the deployed shape (authorizer → function), against DynamoDB Local and
//! moto: create with its ingest key, ingest with it, read the records back in order, regenerate
//! (at once, and with grace), delete (keys dead, records gone), tenant isolation, validation.

use crate::common;

use crate::gateway::{Faulty, management_over, request, same_table};
use chrono::TimeDelta;
use common::Stack;
use latchkey::datasource::DatasourceStore;
use serde_json::{Value, json};

async fn ingest(stack: &Stack, key: &str, records: &[Value]) -> common::Answer {
    stack.call(key, "POST", "/ingest", Some(json!({ "records": records }))).await
}

#[tokio::test]
async fn a_datasource_and_its_ingest_key_live_and_die_together() {
    let stack = Stack::new().await;
    let admin = stack.bootstrap("acme").await;

    let created =
        stack.call(&admin, "POST", "/datasources", Some(json!({"name": "weather station"}))).await.expect(201);
    let id = created["id"].as_str().unwrap().to_owned();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ds_") && key.starts_with("lk_"));
    assert_eq!(created["name"], "weather station");
    assert_eq!(created["key_hint"], format!("lk_...{}", &key[key.len() - 4..]));

    // The ingest key ingests, and can do nothing else.
    let answer = ingest(&stack, &key, &[json!({"t": 1}), json!({"t": 2})]).await.expect(202);
    assert_eq!(answer["accepted"], 2);
    stack.call(&key, "GET", "/keys", None).await.expect_error(403, "INSUFFICIENT_PERMISSIONS");
    stack
        .call(&key, "GET", &format!("/datasources/{id}/records"), None)
        .await
        .expect_error(403, "INSUFFICIENT_PERMISSIONS");
    // An admin key cannot ingest: ingest is the ingest key's alone.
    ingest(&stack, &admin, &[json!({"t": 0})]).await.expect_error(403, "INSUFFICIENT_PERMISSIONS");

    // Get, list: never the key.
    let got = stack.call(&admin, "GET", &format!("/datasources/{id}"), None).await.expect(200);
    assert_eq!((got["name"].as_str(), got["key_id"].as_str()), (Some("weather station"), created["key_id"].as_str()));
    assert!(got.get("key").is_none());
    let listed = stack.call(&admin, "GET", "/datasources", None).await.expect(200);
    assert_eq!(listed["datasources"].as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(&key[3..key.len() - 4]));

    // Records come back in the order sent, with `since` and pagination.
    ingest(&stack, &key, &[json!({"t": 3})]).await.expect(202);
    let page = stack.call(&admin, "GET", &format!("/datasources/{id}/records?limit=2"), None).await.expect(200);
    let values: Vec<&Value> = page["records"].as_array().unwrap().iter().map(|r| &r["data"]["t"]).collect();
    assert_eq!(values, [&json!(1), &json!(2)]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = stack
        .call(&admin, "GET", &format!("/datasources/{id}/records?limit=2&cursor={cursor}"), None)
        .await
        .expect(200);
    assert_eq!(rest["records"][0]["data"]["t"], 3);
    assert_eq!(rest["next_cursor"], Value::Null);
    let since = stack.call(&admin, "GET", &format!("/datasources/{id}/records?since=2101-01-01T00:00:00Z"), None).await;
    assert_eq!(since.expect(200)["records"], json!([]));
    stack
        .call(&admin, "GET", &format!("/datasources/{id}/records?since=yesterday"), None)
        .await
        .expect_error(400, "VALIDATION_ERROR");

    // Regenerate at once: the old key stops (within the cache TTL), the new one works.
    let regenerated = stack.call(&admin, "POST", &format!("/datasources/{id}/regenerate-key"), None).await.expect(201);
    let second = regenerated["key"].as_str().unwrap().to_owned();
    assert_eq!(regenerated["datasource_id"], id.as_str());
    stack.let_cached_decisions_expire();
    ingest(&stack, &key, &[json!({"t": 9})]).await.expect_error(401, "EXPIRED_API_KEY");
    ingest(&stack, &second, &[json!({"t": 4})]).await.expect(202);
    let got = stack.call(&admin, "GET", &format!("/datasources/{id}"), None).await.expect(200);
    assert_eq!(got["key_id"], regenerated["key_id"]);

    // Regenerate with a grace period: both work until it ends.
    let graceful = stack
        .call(&admin, "POST", &format!("/datasources/{id}/regenerate-key"), Some(json!({"grace_period_seconds": 600})))
        .await
        .expect(201);
    let third = graceful["key"].as_str().unwrap().to_owned();
    // Ten minutes from now (the clock is 5 s on: the cache TTL let pass above).
    assert_eq!(graceful["replaced_key_expires_at"], "2100-01-01T00:10:05Z");
    ingest(&stack, &second, &[json!({"t": 5})]).await.expect(202);
    ingest(&stack, &third, &[json!({"t": 6})]).await.expect(202);
    stack.clock.advance(TimeDelta::seconds(601));
    ingest(&stack, &second, &[json!({"t": 9})]).await.expect_error(401, "EXPIRED_API_KEY");

    // A second datasource is untouched by what follows.
    let other = stack.call(&admin, "POST", "/datasources", Some(json!({"name": "other"}))).await.expect(201);
    ingest(&stack, other["key"].as_str().unwrap(), &[json!({"o": 1})]).await.expect(202);

    // Delete: every key stops (the one in grace too) within the cache TTL, the records are gone.
    let graceful_again = stack
        .call(&admin, "POST", &format!("/datasources/{id}/regenerate-key"), Some(json!({"grace_period_seconds": 600})))
        .await
        .expect(201);
    let fourth = graceful_again["key"].as_str().unwrap().to_owned();
    let deleted = stack.call(&admin, "DELETE", &format!("/datasources/{id}"), None).await.expect(200);
    assert_eq!(deleted["deleted"], true);
    assert_eq!(deleted["records_deleted"], 6);
    assert_eq!(deleted["keys_revoked"], 2, "the current key and the one in its grace period");
    stack.let_cached_decisions_expire();
    for dead in [&third, &fourth] {
        ingest(&stack, dead, &[json!({"t": 9})]).await.expect_error(401, "INVALID_API_KEY");
    }
    stack.call(&admin, "GET", &format!("/datasources/{id}"), None).await.expect_error(404, "NOT_FOUND");
    stack.call(&admin, "DELETE", &format!("/datasources/{id}"), None).await.expect_error(404, "NOT_FOUND");
    let others =
        stack.call(&admin, "GET", &format!("/datasources/{}/records", other["id"].as_str().unwrap()), None).await;
    assert_eq!(others.expect(200)["records"].as_array().unwrap().len(), 1);

    // The audit trail names the datasource operations.
    let audit = stack.call(&admin, "GET", "/audit?limit=100", None).await.expect(200);
    let actions: Vec<&str> =
        audit["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in ["datasource.create", "datasource.regenerate_key", "datasource.delete"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    // No ingest key or body is in the keys table.
    let table = stack.table_dump().await;
    for key in [&key, &second, &third, &fourth] {
        assert!(!table.contains(&key[3..key.len() - 4]));
    }
}

/// `POST /keys/{id}/rotate` on an ingest key, again and again: the datasource follows its key
/// and stays manageable, and its delete stops every key that still works.
#[tokio::test]
async fn an_ingest_key_rotated_many_times_leaves_its_datasource_manageable() {
    let stack = Stack::new().await;
    let admin = stack.bootstrap("acme").await;
    let created = stack.call(&admin, "POST", "/datasources", Some(json!({"name": "rotated"}))).await.expect(201);
    let id = created["id"].as_str().unwrap().to_owned();

    // Twenty rotations, each old key in a grace period: twenty-one working keys.
    let mut keys = vec![created["key"].as_str().unwrap().to_owned()];
    let mut key_id = created["key_id"].as_str().unwrap().to_owned();
    for _ in 0..20 {
        let body = json!({"grace_period_seconds": 3600});
        let rotated = stack.call(&admin, "POST", &format!("/keys/{key_id}/rotate"), Some(body)).await.expect(201);
        key_id = rotated["id"].as_str().unwrap().to_owned();
        keys.push(rotated["key"].as_str().unwrap().to_owned());
    }
    for key in &keys {
        ingest(&stack, key, &[json!({"t": 1})]).await.expect(202);
    }

    let got = stack.call(&admin, "GET", &format!("/datasources/{id}"), None).await.expect(200);
    assert_eq!(got["key_id"], key_id.as_str(), "the datasource follows its rotated key");
    // Stored so, not only found along the chain.
    let (tenant, ds) = ("acme".parse().unwrap(), id.parse().unwrap());
    let stored = stack.store.get_datasource(&tenant, &ds).await.unwrap().unwrap();
    assert_eq!(stored.key_id.as_str(), key_id);
    let body = json!({"grace_period_seconds": 3600});
    let regenerated =
        stack.call(&admin, "POST", &format!("/datasources/{id}/regenerate-key"), Some(body)).await.expect(201);
    keys.push(regenerated["key"].as_str().unwrap().to_owned());

    let deleted = stack.call(&admin, "DELETE", &format!("/datasources/{id}"), None).await.expect(200);
    assert_eq!((deleted["deleted"].as_bool(), deleted["records_deleted"].as_u64()), (Some(true), Some(21)));
    assert_eq!(deleted["keys_revoked"], 22, "every key that still worked");
    stack.let_cached_decisions_expire();
    for key in &keys {
        ingest(&stack, key, &[json!({"t": 9})]).await.expect_error(401, "INVALID_API_KEY");
    }
    stack.call(&admin, "GET", &format!("/datasources/{id}"), None).await.expect_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn a_datasource_whose_key_was_revoked_through_keys_gets_a_new_one() {
    let stack = Stack::new().await;
    let admin = stack.bootstrap("acme").await;
    let created = stack.call(&admin, "POST", "/datasources", Some(json!({"name": "meters"}))).await.expect(201);
    let (id, key_id, key) =
        (created["id"].as_str().unwrap(), created["key_id"].as_str().unwrap(), created["key"].as_str().unwrap());
    stack.call(&admin, "DELETE", &format!("/keys/{key_id}"), None).await.expect(204);
    stack.let_cached_decisions_expire();
    ingest(&stack, key, &[json!({"t": 1})]).await.expect_error(401, "INVALID_API_KEY");

    let regenerated = stack.call(&admin, "POST", &format!("/datasources/{id}/regenerate-key"), None).await.expect(201);
    assert!(regenerated.get("replaced_key_expires_at").is_none(), "no grace for a revoked key: {regenerated}");
    ingest(&stack, regenerated["key"].as_str().unwrap(), &[json!({"t": 2})]).await.expect(202);
    let got = stack.call(&admin, "GET", &format!("/datasources/{id}"), None).await.expect(200);
    assert_eq!(got["key_id"], regenerated["key_id"]);
    let deleted = stack.call(&admin, "DELETE", &format!("/datasources/{id}"), None).await.expect(200);
    assert_eq!(deleted["keys_revoked"], 1, "{deleted}");
}

/// A regeneration of a datasource whose key was revoked, while the datasource's pointer cannot
/// be moved: the new key is still reached from the datasource, so deleting it stops the key.
#[tokio::test]
async fn a_key_regenerated_while_the_pointer_update_fails_dies_with_its_datasource() {
    let stack = Stack::new().await;
    let admin = stack.bootstrap("acme").await;
    let created = stack.call(&admin, "POST", "/datasources", Some(json!({"name": "meters"}))).await.expect(201);
    let (id, key_id) = (created["id"].as_str().unwrap(), created["key_id"].as_str().unwrap());
    stack.call(&admin, "DELETE", &format!("/keys/{key_id}"), None).await.expect(204);

    let faulty = management_over(&stack, Faulty::failing_pointer_updates(same_table(&stack), 1)).await;
    let path = format!("/datasources/{id}/regenerate-key");
    let regenerated = faulty.handle(request("POST", &path, "")).await;
    assert_eq!(regenerated.status, 201, "{:?}", regenerated.body);
    let body: Value = serde_json::from_str(&regenerated.body.unwrap()).unwrap();
    let key = body["key"].as_str().unwrap();
    ingest(&stack, key, &[json!({"t": 1})]).await.expect(202);

    let deleted = stack.call(&admin, "DELETE", &format!("/datasources/{id}"), None).await.expect(200);
    assert_eq!(deleted["keys_revoked"], 1, "{deleted}");
    stack.let_cached_decisions_expire();
    ingest(&stack, key, &[json!({"t": 2})]).await.expect_error(401, "INVALID_API_KEY");
}

#[tokio::test]
async fn another_tenants_datasources_do_not_exist() {
    let stack = Stack::new().await;
    let (admin_a, admin_b) = (stack.bootstrap("tenant-a").await, stack.bootstrap("tenant-b").await);
    let created = stack.call(&admin_a, "POST", "/datasources", Some(json!({"name": "a's"}))).await.expect(201);
    let id = created["id"].as_str().unwrap();
    ingest(&stack, created["key"].as_str().unwrap(), &[json!({"secret": true})]).await.expect(202);
    for (method, path) in [
        ("GET", format!("/datasources/{id}")),
        ("DELETE", format!("/datasources/{id}")),
        ("POST", format!("/datasources/{id}/regenerate-key")),
        ("GET", format!("/datasources/{id}/records")),
    ] {
        stack.call(&admin_b, method, &path, None).await.expect_error(404, "NOT_FOUND");
    }
    assert_eq!(stack.call(&admin_b, "GET", "/datasources", None).await.expect(200)["datasources"], json!([]));
    // A's datasource and key are intact.
    ingest(&stack, created["key"].as_str().unwrap(), &[json!({"still": true})]).await.expect(202);
    let records = stack.call(&admin_a, "GET", &format!("/datasources/{id}/records"), None).await.expect(200);
    assert_eq!(records["records"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn datasource_requests_are_validated() {
    let stack = Stack::new().await;
    let admin = stack.bootstrap("acme").await;
    for (body, field) in [(json!({}), "name"), (json!({"name": ""}), "name"), (json!({"name": "a", "x": 1}), "x")] {
        let answer = stack.call(&admin, "POST", "/datasources", Some(body)).await;
        answer.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(answer.body["error"]["details"]["field"], field);
    }
    let put = stack.call(&admin, "PUT", "/datasources", None).await;
    put.expect_error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(put.headers["allow"], "GET, POST");
    stack.call(&admin, "GET", "/datasources/not-an-id", None).await.expect_error(404, "NOT_FOUND");
    let (_, reader) = {
        let created = stack.call(&admin, "POST", "/keys", Some(json!({"name": "reader"}))).await.expect(201);
        ((), created["key"].as_str().unwrap().to_owned())
    };
    stack
        .call(&reader, "POST", "/datasources", Some(json!({"name": "x"})))
        .await
        .expect_error(403, "INSUFFICIENT_PERMISSIONS");
}
