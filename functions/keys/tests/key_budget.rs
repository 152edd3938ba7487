//! API Gateway keys are a per-region budget of 10,000 that AWS does not raise: keys are made
//! without one (they lease pooled ones), a key from before the pool that can no longer verify
//! gives its own back (deleted in moto's API Gateway), and a tenant holds at most
//! `LATCHKEY_MAX_KEYS_PER_TENANT` keys that still verify.

use crate::common;

use chrono::TimeDelta;
use common::{Noting, Stack, start};
use latchkey::TenantId;
use latchkey::manage::sweep::{MAX_KEYS_PER_SWEEP, Swept};
use latchkey::manage::{Caller, KeyService};
use latchkey::store::KeyStore;
use serde_json::{Value, json};

/// A tenant's key made a key from before the pool: the id of the gateway key of its own it then
/// holds (none is made for a key now: checked here).
async fn gateway_id(stack: &Stack, tenant: &str, id: &str) -> String {
    let record = stack.store.get(&tenant.parse::<TenantId>().unwrap(), &id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(record.gateway_key, None, "a key made now has no gateway key of its own");
    stack.make_own_gateway_key(tenant, id).await
}

async fn create(stack: &Stack, admin: &str, body: Value) -> (String, String) {
    let created = stack.call(admin, "POST", "/keys", Some(body)).await.expect(201);
    (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_revoked_key_loses_its_gateway_key() {
    let stack = Stack::new().await;
    let admin = stack.bootstrap("acme").await;
    let (id, key) = create(&stack, &admin, json!({"name": "doomed", "tier": "free"})).await;
    let gateway = gateway_id(&stack, "acme", &id).await;
    assert_eq!(stack.gateway_key(&gateway).await, Some((true, vec!["free".to_owned()])));
    for _ in 0..2 {
        assert_eq!(stack.call(&admin, "DELETE", &format!("/keys/{id}"), None).await.status, 204);
        assert_eq!(stack.gateway_key(&gateway).await, None, "deleted, not only disabled");
    }
    stack.let_cached_decisions_expire();
    stack.call(&key, "GET", "/whoami", None).await.expect_error(401, "INVALID_API_KEY");
}

#[tokio::test]
async fn a_rotation_without_grace_deletes_the_old_gateway_key_at_once() {
    let stack = Stack::new().await;
    let admin = stack.bootstrap("acme").await;
    let (id, _) = create(&stack, &admin, json!({"name": "rotated", "tier": "free"})).await;
    let old = gateway_id(&stack, "acme", &id).await;
    let rotated = stack.call(&admin, "POST", &format!("/keys/{id}/rotate"), None).await.expect(201);
    assert_eq!(stack.gateway_key(&old).await, None);
    let new = gateway_id(&stack, "acme", rotated["id"].as_str().unwrap()).await;
    assert_eq!(stack.gateway_key(&new).await, Some((true, vec!["free".to_owned()])));
    stack.call(rotated["key"].as_str().unwrap(), "GET", "/whoami", None).await.expect(200);
}

/// The scheduled sweep, as `keys-sweep` runs it.
async fn sweep(stack: &Stack) -> Swept {
    stack.change.service.sweep_stopped(MAX_KEYS_PER_SWEEP).await.expect("the sweep reads the store")
}

/// With a grace period the old key keeps verifying, and keeps its gateway key (its plan throttles
/// it) until the grace ends; the first sweep after that deletes it, with no further request.
#[tokio::test]
async fn a_rotated_key_loses_its_gateway_key_at_the_first_sweep_after_its_grace_period() {
    let stack = Stack::new().await;
    let admin = stack.bootstrap("acme").await;
    let (id, old_key) = create(&stack, &admin, json!({"name": "graceful", "tier": "free"})).await;
    let old = gateway_id(&stack, "acme", &id).await;
    let grace = json!({"grace_period_seconds": 60});
    let rotated = stack.call(&admin, "POST", &format!("/keys/{id}/rotate"), Some(grace)).await.expect(201);
    assert_eq!(
        sweep(&stack).await,
        Swept { retired: 0, left: 0, warned: 0, pooled: 0 },
        "in its grace, the old key still verifies"
    );
    assert_eq!(stack.gateway_key(&old).await, Some((true, vec!["free".to_owned()])));
    stack.call(&old_key, "GET", "/whoami", None).await.expect(200);

    stack.clock.advance(TimeDelta::seconds(61));
    assert_eq!(sweep(&stack).await, Swept { retired: 1, left: 0, warned: 0, pooled: 0 });
    assert_eq!(stack.gateway_key(&old).await, None);
    let record = stack.store.get(&"acme".parse().unwrap(), &id.parse().unwrap()).await.unwrap().unwrap();
    assert!(record.retired_at.is_some(), "{record:?}");
    stack.call(&old_key, "GET", "/whoami", None).await.expect_error(401, "EXPIRED_API_KEY");
    assert_eq!(
        sweep(&stack).await,
        Swept { retired: 0, left: 0, warned: 0, pooled: 0 },
        "retired keys leave the sweep's index"
    );
    stack.call(rotated["key"].as_str().unwrap(), "GET", "/whoami", None).await.expect(200);
}

/// An expired key is reached by the sweep alone: its gateway key is deleted and its place given
/// back, while keys that still verify (with or without an expiry) are left as they are.
#[tokio::test]
async fn the_sweep_retires_expired_keys_and_only_those() {
    let stack = limited(3).await;
    let admin = stack.bootstrap("acme").await;
    let soon = (start() + TimeDelta::hours(1)).to_rfc3339();
    let later = (start() + TimeDelta::days(30)).to_rfc3339();
    let (expiring, _) = create(&stack, &admin, json!({"name": "soon", "tier": "free", "expires_at": soon})).await;
    let (lasting, lasting_key) = create(&stack, &admin, json!({"name": "later", "expires_at": later})).await;
    let (expiring_gateway, lasting_gateway) =
        (gateway_id(&stack, "acme", &expiring).await, gateway_id(&stack, "acme", &lasting).await);
    stack
        .call(&admin, "POST", "/keys", Some(json!({"name": "four"})))
        .await
        .expect_error(409, "TENANT_KEY_LIMIT_REACHED");

    stack.clock.advance(TimeDelta::hours(2));
    assert_eq!(sweep(&stack).await, Swept { retired: 1, left: 0, warned: 0, pooled: 0 });
    assert_eq!(stack.gateway_key(&expiring_gateway).await, None);
    assert_eq!(stack.gateway_key(&lasting_gateway).await, Some((true, vec!["free".to_owned()])));
    stack.call(&lasting_key, "GET", "/whoami", None).await.expect(200);
    stack.call(&admin, "GET", "/whoami", None).await.expect(200);
    let record = stack.store.get(&"acme".parse().unwrap(), &expiring.parse().unwrap()).await.unwrap().unwrap();
    assert!(record.retired_at.is_some(), "its place is given back: {record:?}");
    create(&stack, &admin, json!({"name": "four"})).await;
}

#[tokio::test]
async fn a_deleted_datasource_deletes_its_keys_gateway_keys() {
    let stack = Stack::new().await;
    let admin = stack.bootstrap("acme").await;
    let created = stack.call(&admin, "POST", "/datasources", Some(json!({"name": "sensors"}))).await.expect(201);
    let id = created["id"].as_str().unwrap();
    let first = gateway_id(&stack, "acme", created["key_id"].as_str().unwrap()).await;
    let grace = json!({"grace_period_seconds": 3600});
    let regenerated =
        stack.call(&admin, "POST", &format!("/datasources/{id}/regenerate-key"), Some(grace)).await.expect(201);
    let second = gateway_id(&stack, "acme", regenerated["key_id"].as_str().unwrap()).await;
    stack.call(&admin, "DELETE", &format!("/datasources/{id}"), None).await.expect(200);
    assert_eq!((stack.gateway_key(&first).await, stack.gateway_key(&second).await), (None, None));
}

/// A stack whose tenants may hold `limit` keys that still verify.
async fn limited(limit: u32) -> Stack {
    let store = latchkey_tests::fresh_dynamo_store(TimeDelta::days(30)).await.with_max_keys_per_tenant(limit);
    Stack::with_store(store).await
}

#[tokio::test]
async fn a_tenant_holds_at_most_its_limit_of_keys_that_verify() {
    // 3: the bootstrap admin key and two more (the default, 1,000, is checked below).
    let stack = limited(3).await;
    let admin = stack.bootstrap("acme").await;
    let (revoked, _) = create(&stack, &admin, json!({"name": "one"})).await;
    let expiry = (start() + TimeDelta::hours(1)).to_rfc3339();
    let (expiring, _) = create(&stack, &admin, json!({"name": "two", "expires_at": expiry})).await;

    let refused = stack.call(&admin, "POST", "/keys", Some(json!({"name": "three"}))).await;
    assert_eq!(refused.body["error"]["details"]["limit"], "3", "{:?}", refused.body);
    refused.expect_error(409, "TENANT_KEY_LIMIT_REACHED");
    let rotate = format!("/keys/{revoked}/rotate");
    let grace = json!({"grace_period_seconds": 60});
    stack.call(&admin, "POST", &rotate, Some(grace)).await.expect_error(409, "TENANT_KEY_LIMIT_REACHED");
    // Another tenant's budget is its own.
    let other = stack.bootstrap("globex").await;
    create(&stack, &other, json!({"name": "theirs"})).await;

    // A revoked key frees its place at once; an expired one as soon as it is needed.
    assert_eq!(stack.call(&admin, "DELETE", &format!("/keys/{revoked}"), None).await.status, 204);
    create(&stack, &admin, json!({"name": "three"})).await;
    stack
        .call(&admin, "POST", "/keys", Some(json!({"name": "four"})))
        .await
        .expect_error(409, "TENANT_KEY_LIMIT_REACHED");
    let expiring_gateway = gateway_id(&stack, "acme", &expiring).await;
    stack.clock.advance(TimeDelta::hours(2));
    create(&stack, &admin, json!({"name": "four"})).await;
    assert_eq!(stack.gateway_key(&expiring_gateway).await, None);
}

#[test]
fn the_default_limit_is_a_thousand_keys_per_tenant() {
    let settings = latchkey::config::Settings::from_env(&latchkey::config::Env::from_fn(|_| None)).unwrap();
    assert_eq!(settings.max_keys_per_tenant, 1_000);
}

/// Keys are made without an API Gateway key (the tier's pool had its slot already), a tenant at
/// its limit is refused, and a rotation at the limit whose old key stops at once is made: no
/// create, rotation or refusal spends the `CreateApiKey` rate every tenant shares.
#[tokio::test]
async fn a_tenant_at_its_limit_is_refused_and_no_key_makes_a_gateway_key() {
    let stack = limited(2).await;
    let admin = stack.bootstrap("acme").await;
    let (other, _) = create(&stack, &admin, json!({"name": "second"})).await;
    let service = KeyService {
        store: stack.store.clone(),
        gateway: Noting::new(&stack),
        clock: stack.clock.clone(),
        policy: common::policy(),
        events: std::sync::Arc::new(latchkey::events::NoEvents),
        pools: Default::default(),
    };
    let issuance = common::issuance().await;
    let operator = Caller::operator("acme".parse().unwrap());
    let body = || serde_json::from_value(json!({"name": "third"})).unwrap();
    for _ in 0..3 {
        let refused = service.create(&issuance, &operator, body()).await.unwrap_err();
        assert_eq!(refused.code(), "TENANT_KEY_LIMIT_REACHED");
    }
    let grace = serde_json::from_value(json!({"grace_period_seconds": 60})).unwrap();
    let refused = service.rotate(&issuance, &operator, &other, grace).await.unwrap_err();
    assert_eq!(refused.code(), "TENANT_KEY_LIMIT_REACHED");
    assert_eq!(service.gateway.issued.lock().unwrap().len(), 0, "gateway keys made for refused keys");

    // A rotation whose old key stops at once may be made at the limit (its old key retires).
    let at_once = serde_json::from_value(json!({})).unwrap();
    let rotated = service.rotate(&issuance, &operator, &other, at_once).await.unwrap();
    let refused = service.create(&issuance, &operator, body()).await.unwrap_err();
    assert_eq!(refused.code(), "TENANT_KEY_LIMIT_REACHED");
    // A revocation gives the place back, and the next create is made, still without one.
    let rotated = serde_json::to_value(&rotated).unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(stack.call(&admin, "DELETE", &format!("/keys/{rotated}"), None).await.status, 204);
    service.create(&issuance, &operator, body()).await.unwrap();
    assert_eq!(service.gateway.issued.lock().unwrap().len(), 0, "gateway keys made for keys");
}
