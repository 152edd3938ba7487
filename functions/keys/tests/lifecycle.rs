//! A key's whole life through the deployed shape (authorizer → function), against DynamoDB Local
//! and moto's API Gateway: create, whoami in every header style, list, rotate with grace, the
//! grace ending, revoke; the audit trail; and no plaintext key anywhere in the table.

use crate::common;

use chrono::TimeDelta;
use common::Stack;
use latchkey::{KeyId, TenantId};
use serde_json::{Value, json};

#[tokio::test]
async fn create_use_rotate_expire_revoke() {
    let stack = Stack::new().await;
    let admin = stack.bootstrap("acme").await;
    let mut shown_keys = vec![admin.clone()];

    // Create: 201, the key once, and the record's public fields.
    let created = stack
        .call(
            &admin,
            "POST",
            "/keys",
            Some(json!({"name": "ci deploys", "permissions": ["read", "write"], "tier": "starter"})),
        )
        .await
        .expect(201);
    let key = created["key"].as_str().unwrap().to_owned();
    shown_keys.push(key.clone());
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("lk_") && id.starts_with("key_"));
    assert_eq!(created["hint"], format!("lk_...{}", &key[key.len() - 4..]));
    assert_eq!(created["status"], "active");
    assert_eq!(created["tier"], "starter");
    assert_eq!(created["permissions"], json!(["read", "write"]));
    // The configured maximum lifetime applies when no expiry is given.
    assert_eq!(created["expires_at"], "2101-01-01T00:00:00Z");

    // Whoami with the new key in all three header styles.
    let styles: [(&str, String); 3] =
        [("x-api-key", key.clone()), ("Authorization", format!("Bearer {key}")), ("authorization", key.clone())];
    for (header, value) in &styles {
        let me = stack.request(&[(header, value.as_str())], "GET", "/whoami", None).await.expect(200);
        assert_eq!(
            (me["auth_type"].as_str(), me["principal"].as_str()),
            (Some("api_key"), Some(id.as_str())),
            "{header}"
        );
        assert_eq!((me["id"].as_str(), me["name"].as_str()), (Some(id.as_str()), Some("ci deploys")));
        assert_eq!((me["tenant_id"].as_str(), me["tier"].as_str()), (Some("acme"), Some("starter")));
        assert_eq!(me["permissions"], json!(["read", "write"]));
    }
    // Not an admin: the management routes answer 403.
    stack.call(&key, "GET", "/keys", None).await.expect_error(403, "INSUFFICIENT_PERMISSIONS");

    // List shows it, and never a secret or a digest.
    let listed = stack.call(&admin, "GET", "/keys", None).await.expect(200);
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "the bootstrap key and the new one");
    let entry = keys.iter().find(|k| k["id"] == id.as_str()).unwrap();
    assert_eq!(entry["name"], "ci deploys");
    assert!(entry.get("key").is_none() && entry.get("digest").is_none() && entry.get("gateway_key").is_none());
    assert!(!listed.to_string().contains(&key[3..key.len() - 4]));
    assert_eq!(listed["next_cursor"], Value::Null);

    // Rotate with an hour's grace: 201, a new key, and when the old one stops.
    let rotated = stack
        .call(&admin, "POST", &format!("/keys/{id}/rotate"), Some(json!({"grace_period_seconds": 3600})))
        .await
        .expect(201);
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    shown_keys.push(new_key.clone());
    let new_id = rotated["id"].as_str().unwrap().to_owned();
    assert_eq!(rotated["replaces"], id.as_str());
    assert_eq!(rotated["replaced_key_expires_at"], "2100-01-01T01:00:00Z");
    assert_eq!((rotated["name"].as_str(), rotated["tier"].as_str()), (Some("ci deploys"), Some("starter")));
    assert_eq!(rotated["permissions"], json!(["read", "write"]));

    // Both work during the grace period.
    stack.call(&key, "GET", "/whoami", None).await.expect(200);
    stack.call(&new_key, "GET", "/whoami", None).await.expect(200);
    let old = stack.call(&admin, "GET", &format!("/keys/{id}"), None).await.expect(200);
    assert_eq!((old["status"].as_str(), old["replaced_by"].as_str()), (Some("active"), Some(new_id.as_str())));

    // The grace period passes: the old key is expired, with the time it expired.
    stack.clock.advance(TimeDelta::seconds(3601));
    let expired = stack.call(&key, "GET", "/whoami", None).await;
    expired.expect_error(401, "EXPIRED_API_KEY");
    assert_eq!(expired.body["error"]["details"]["expired_at"], "2100-01-01T01:00:00Z");
    assert_eq!(expired.body["message"], "Unauthorized");
    stack.call(&new_key, "GET", "/whoami", None).await.expect(200);

    // Revoke the new key: 204; INVALID_API_KEY within the cache TTL; again 204.
    let revoked = stack.call(&admin, "DELETE", &format!("/keys/{new_id}"), None).await;
    assert_eq!((revoked.status, &revoked.body), (204, &Value::Null));
    stack.let_cached_decisions_expire();
    stack.call(&new_key, "GET", "/whoami", None).await.expect_error(401, "INVALID_API_KEY");
    stack.clock.advance(TimeDelta::seconds(1));
    assert_eq!(stack.call(&admin, "DELETE", &format!("/keys/{new_id}"), None).await.status, 204);
    let record = stack.call(&admin, "GET", &format!("/keys/{new_id}"), None).await.expect(200);
    assert_eq!(record["status"], "revoked");
    // Updating or rotating a revoked key is a conflict.
    let patch = stack.call(&admin, "PATCH", &format!("/keys/{new_id}"), Some(json!({"name": "again"}))).await;
    patch.expect_error(409, "CONFLICT");
    let rotate = stack.call(&admin, "POST", &format!("/keys/{new_id}/rotate"), None).await;
    rotate.expect_error(409, "CONFLICT");

    // Status filter.
    let revoked_only = stack.call(&admin, "GET", "/keys?status=revoked", None).await.expect(200);
    let ids: Vec<&str> = revoked_only["keys"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [new_id.as_str()]);

    // The audit trail, newest first: create, rotate, revoke (once), each with actor and request id.
    let audit = stack.call(&admin, "GET", "/audit", None).await.expect(200);
    let events = audit["events"].as_array().unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["key.revoke", "key.rotate", "key.create", "key.create"]);
    assert_eq!(events[0]["target"], new_id.as_str());
    assert_eq!(events[1]["target"], id.as_str());
    assert_eq!(events[3]["actor"], "operator");
    let admin_id = stack.call(&admin, "GET", "/whoami", None).await.expect(200)["id"].clone();
    for event in &events[..3] {
        assert_eq!(event["actor"], admin_id);
        assert!(event["request_id"].as_str().unwrap().starts_with("req-"));
        assert_eq!(event["tenant_id"], "acme");
    }

    // No key, nor the random part of one, is anywhere in the table.
    let table = stack.table_dump().await;
    assert!(table.contains(&id), "the dump holds the records");
    for key in &shown_keys {
        assert!(!table.contains(&key[3..key.len() - 4]), "a plaintext key body is in the table");
    }
}

#[tokio::test]
async fn a_revoked_or_downgraded_admin_key_cannot_change_keys_while_its_allow_is_cached() {
    let stack = Stack::new().await;
    let admin = stack.bootstrap("acme").await;
    let second = stack
        .call(&admin, "POST", "/keys", Some(json!({"name": "second admin", "permissions": ["admin", "read"]})))
        .await
        .expect(201);
    let (second_id, second_key) = (second["id"].as_str().unwrap(), second["key"].as_str().unwrap());
    stack.call(second_key, "GET", "/keys", None).await.expect(200);

    // Downgraded to read: its cached Allow still says admin, but it cannot mint an admin key.
    let downgrade = json!({"permissions": ["read"]});
    stack.call(&admin, "PATCH", &format!("/keys/{second_id}"), Some(downgrade)).await.expect(200);
    let mint = json!({"name": "minted", "permissions": ["admin"]});
    stack.call(second_key, "POST", "/keys", Some(mint.clone())).await.expect_error(403, "INSUFFICIENT_PERMISSIONS");

    // Revoked: refused at once by every operation that changes keys.
    stack.call(&admin, "DELETE", &format!("/keys/{second_id}"), None).await.expect(204);
    stack.call(second_key, "POST", "/keys", Some(mint)).await.expect_error(401, "INVALID_API_KEY");
    let admin_id = stack.call(&admin, "GET", "/whoami", None).await.expect(200)["id"].as_str().unwrap().to_owned();
    stack.call(second_key, "DELETE", &format!("/keys/{admin_id}"), None).await.expect_error(401, "INVALID_API_KEY");
    stack
        .call(second_key, "POST", &format!("/keys/{admin_id}/rotate"), None)
        .await
        .expect_error(401, "INVALID_API_KEY");
    stack
        .call(second_key, "POST", "/datasources", Some(json!({"name": "d"})))
        .await
        .expect_error(401, "INVALID_API_KEY");
    // A read within the cache TTL is the documented window; past it, refused too.
    stack.let_cached_decisions_expire();
    stack.call(second_key, "GET", "/keys", None).await.expect_error(401, "INVALID_API_KEY");
    let keys = stack.call(&admin, "GET", "/keys", None).await.expect(200);
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2, "nothing was minted: {keys}");
}

#[tokio::test]
async fn update_changes_fields_and_validates_them() {
    let stack = Stack::new().await;
    let admin = stack.bootstrap("acme").await;
    let created = stack.call(&admin, "POST", "/keys", Some(json!({"name": "reporting"}))).await.expect(201);
    let (id, key) = (created["id"].as_str().unwrap(), created["key"].as_str().unwrap());
    assert_eq!((created["tier"].as_str(), created["permissions"].clone()), (Some("free"), json!(["read"])));

    let updated = stack
        .call(
            &admin,
            "PATCH",
            &format!("/keys/{id}"),
            Some(json!({"name": "reporting v2", "permissions": ["read", "webhook", "reports:*", "billing.read"],
                "expires_at": "2100-06-01T00:00:00Z"})),
        )
        .await
        .expect(200);
    assert_eq!(updated["name"], "reporting v2");
    // The tenant's own names are kept as given, after the seed vocabulary, sorted.
    let permissions = json!(["read", "webhook", "billing.read", "reports:*"]);
    assert_eq!(updated["permissions"], permissions);
    assert_eq!(updated["expires_at"], "2100-06-01T00:00:00Z");
    let me = stack.call(key, "GET", "/whoami", None).await.expect(200);
    assert_eq!(me["permissions"], permissions);
    let stored = stack.call(&admin, "GET", &format!("/keys/{id}"), None).await.expect(200);
    assert_eq!(stored["permissions"], permissions);
    let too_many: Vec<String> = (0..65).map(|i| format!("scope.{i}")).collect();

    // Each bad field is named.
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"tier": "gold"}), "tier"),
        (json!({"tier": "internal"}), "tier"),
        (json!({"permissions": ["Root"]}), "permissions[0]"),
        (json!({"permissions": ["read", "a,b"]}), "permissions[1]"),
        (json!({"permissions": ["read", "x".repeat(65)]}), "permissions[1]"),
        (json!({"permissions": ["ingest"]}), "permissions[0]"),
        (json!({"permissions": too_many}), "permissions"),
        (json!({"expires_at": "2099-01-01T00:00:00Z"}), "expires_at"),
        (json!({"expires_at": "2102-01-01T00:00:00Z"}), "expires_at"),
        (json!({"colour": "red"}), "colour"),
        (json!({"name": 7}), "name"),
    ] {
        let answer = stack.call(&admin, "PATCH", &format!("/keys/{id}"), Some(body.clone())).await;
        answer.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(answer.body["error"]["details"]["field"], field, "{body}");
    }
    let unchanged = stack.call(&admin, "GET", &format!("/keys/{id}"), None).await.expect(200);
    assert_eq!(unchanged["name"], "reporting v2");
}

#[tokio::test]
async fn bad_requests_get_the_envelope() {
    let stack = Stack::new().await;
    let admin = stack.bootstrap("acme").await;
    let header = [("x-api-key", admin.as_str())];

    for (body, field) in [
        ("{", "body"),
        ("[1]", "body"),
        (r#"{"name": "a", "permissions": "read"}"#, "permissions"),
        (r#"{"permissions": ["read"]}"#, "name"),
        (r#"{"name": "a", "expires_in_days": 0}"#, "expires_in_days"),
        (r#"{"name": "a", "expires_in_days": 400}"#, "expires_in_days"),
    ] {
        let answer = stack.request(&header, "POST", "/keys", Some(body)).await;
        answer.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(answer.body["error"]["details"]["field"], field, "{body}");
    }
    let huge = json!({"name": "x".repeat(17 * 1024)}).to_string();
    let too_large = stack.request(&header, "POST", "/keys", Some(&huge)).await;
    too_large.expect_error(413, "PAYLOAD_TOO_LARGE");

    let wrong_method = stack.request(&header, "PUT", "/keys", None).await;
    wrong_method.expect_error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(wrong_method.headers["allow"], "GET, POST");
    stack.request(&header, "GET", "/keys/key_x/nothing", None).await.expect_error(404, "NOT_FOUND");
    for query in ["limit=0", "limit=101", "limit=ten", "status=dead", "cursor=not-a-cursor"] {
        let answer = stack.request(&header, "GET", &format!("/keys?{query}"), None).await;
        answer.expect_error(400, "VALIDATION_ERROR");
    }
    for days in ["0", "91", "x"] {
        let answer = stack.request(&header, "GET", &format!("/keys/key_x/usage?days={days}"), None).await;
        answer.expect_error(400, "VALIDATION_ERROR");
    }

    // No key at all: the authorizer's 401, never a function's answer.
    let anonymous = stack.request(&[], "GET", "/whoami", None).await;
    anonymous.expect_error(401, "MISSING_API_KEY");
    assert_eq!(anonymous.body["message"], "Unauthorized");
}

#[tokio::test]
async fn a_function_deployed_without_the_authorizer_fails_closed() {
    let stack = Stack::new().await;
    // A proxy event without an authorizer context (the route left unprotected by mistake).
    let event = serde_json::json!({
        "resource": "/keys", "path": "/keys", "httpMethod": "GET", "headers": {}, "multiValueHeaders": {},
        "requestContext": {"resourcePath": "/keys", "httpMethod": "GET", "path": "/prod/keys", "stage": "prod",
                           "requestId": "r1", "accountId": "1", "apiId": "a", "identity": {}},
        "body": null, "isBase64Encoded": false,
    });
    let answer = stack.invoke(&event.to_string()).await;
    answer.expect_error(500, "INTERNAL");
}

#[tokio::test]
async fn another_tenants_keys_do_not_exist() {
    let stack = Stack::new().await;
    let (admin_a, admin_b) = (stack.bootstrap("tenant-a").await, stack.bootstrap("tenant-b").await);
    let created = stack.call(&admin_a, "POST", "/keys", Some(json!({"name": "a's key"}))).await.expect(201);
    let id = created["id"].as_str().unwrap();
    let missing = KeyId::generate();

    for target in [id.to_owned(), missing.to_string(), "not-an-id".to_owned()] {
        for (method, path, body) in [
            ("GET", format!("/keys/{target}"), None),
            ("PATCH", format!("/keys/{target}"), Some(json!({"name": "mine now"}))),
            ("POST", format!("/keys/{target}/rotate"), None),
            ("DELETE", format!("/keys/{target}"), None),
            ("GET", format!("/keys/{target}/usage"), None),
        ] {
            let answer = stack.call(&admin_b, method, &path, body).await;
            answer.expect_error(404, "NOT_FOUND");
            let details = &answer.body["error"].get("details");
            assert!(details.is_none_or(|d| !d.to_string().contains("tenant-a")), "{method} {path}");
        }
    }
    // B's listing and audit never show A's key; A's key is untouched.
    let listed = stack.call(&admin_b, "GET", "/keys", None).await.expect(200);
    assert!(!listed.to_string().contains(id));
    assert!(!stack.call(&admin_b, "GET", "/audit", None).await.expect(200).to_string().contains(id));
    let still = stack.call(&admin_a, "GET", &format!("/keys/{id}"), None).await.expect(200);
    assert_eq!((still["name"].as_str(), still["status"].as_str()), (Some("a's key"), Some("active")));
    let tenant: TenantId = "tenant-a".parse().unwrap();
    assert!(stack.store_has(&tenant, id).await);
}

impl Stack {
    async fn store_has(&self, tenant: &TenantId, id: &str) -> bool {
        use latchkey::store::KeyStore;
        self.store.get(tenant, &id.parse().unwrap()).await.unwrap().is_some()
    }
}
