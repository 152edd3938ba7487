//! The built `keys-read`, `keys-issue` and `keys-sweep` binaries run as Lambda runs them (`cargo lambda
//! watch`, `cargo lambda invoke`), configured as template.yaml configures them, over DynamoDB
//! Local and moto (Secrets Manager, API Gateway), with proxy events as API Gateway sends them
//! behind the authorizer, and the scheduled event EventBridge sends the sweep.

use crate::common;

use std::collections::HashMap;

use common::Stack;
use latchkey::gateway::GatewayKeys;
use latchkey::store::KeyStore;
use latchkey_tests::api_gateway::proxy_event;
use latchkey_tests::cargo_lambda::Watch;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_functions_answer_through_the_lambda_runtime_as_deployed() {
    let stack = Stack::new().await;
    let admin = stack.bootstrap("acme").await;
    let me = stack.call(&admin, "GET", "/whoami", None).await.expect(200);
    let admin_id = me["id"].as_str().unwrap();
    let secrets = aws_sdk_secretsmanager::Client::new(&latchkey_tests::sdk_config().await);
    let pepper = latchkey_tests::create_secret(&secrets, std::str::from_utf8(common::PEPPER).unwrap()).await;
    let session_secret = "s".repeat(64);
    let sessions = latchkey_tests::create_secret(&secrets, &session_secret).await;

    // The variables template.yaml gives the functions: usage plans by name, not by id.
    let watch = Watch::start(&[
        ("LATCHKEY_KEYS_TABLE", stack.store.table().to_owned()),
        ("LATCHKEY_USAGE_PLAN_NAMES", stack.plan_names.clone()),
        ("LATCHKEY_RECORDS_TABLE", stack.records.table().to_owned()),
        ("LATCHKEY_PEPPER_SECRET_ID", pepper),
        ("LATCHKEY_SESSION_SECRET_ID", sessions),
        // Small pools, so that the sweep's filling is seen whole in one run.
        ("LATCHKEY_GATEWAY_POOL_SIZE", "2".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ])
    .await;
    let context = json!({
        "auth_type": "api_key", "principal": admin_id, "key_id": admin_id, "tenant_id": "acme",
        "permissions": "read,write,admin", "tier": "internal", "principalId": admin_id,
    });
    let call = |method: &str, path: &str| proxy_event(method, path, &HashMap::new(), None, context.clone()).to_string();

    let whoami = watch.invoke("keys-read", &call("GET", "/whoami")).await;
    assert_eq!(whoami["statusCode"], 200, "{whoami}");
    let body: Value = serde_json::from_str(whoami["body"].as_str().unwrap()).unwrap();
    assert_eq!((body["id"].as_str(), body["tenant_id"].as_str()), (Some(admin_id), Some("acme")));

    let missing = watch.invoke("keys-read", &call("GET", "/keys/key_00000000000000000000000000000000")).await;
    assert_eq!(missing["statusCode"], 404, "{missing}");
    let body: Value = serde_json::from_str(missing["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "NOT_FOUND");

    // A write routed to the reading function by mistake is refused, not served.
    let misrouted = watch.invoke("keys-read", &call("DELETE", &format!("/keys/{admin_id}"))).await;
    assert_eq!(misrouted["statusCode"], 404, "{misrouted}");
    stack.call(&admin, "GET", "/whoami", None).await.expect(200);

    // keys-issue makes the starter pool's first gateway key (the plan found by its name), and none
    // for the key.
    let body = json!({"name": "from the runtime", "tier": "starter"});
    let created = watch
        .invoke(
            "keys-issue",
            &proxy_event("POST", "/keys", &HashMap::new(), Some(&body.to_string()), context.clone()).to_string(),
        )
        .await;
    assert_eq!(created["statusCode"], 201, "{created}");
    let created: Value = serde_json::from_str(created["body"].as_str().unwrap()).unwrap();
    let id = created["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(stack.store.get(&"acme".parse().unwrap(), &id).await.unwrap().unwrap().gateway_key, None);
    let starter = "starter".parse().unwrap();
    assert_eq!(latchkey::gateway::pool::GatewaySlots::pool_size(&*stack.store, &starter).await.unwrap(), 1);
    // And the key it showed once works, throttled under that slot.
    let whoami = stack.call(created["key"].as_str().unwrap(), "GET", "/whoami", None).await.expect(200);
    assert_eq!(whoami["name"], "from the runtime");
    let lease = stack.store.get(&"acme".parse().unwrap(), &id).await.unwrap().unwrap().lease.expect("leased");
    let slots = stack.apigateway.get_api_keys().include_values(true).limit(500).send().await.unwrap();
    let slot = slots.items().iter().find(|k| k.value() == Some(lease.value.as_str())).expect("the slot's key");
    assert_eq!(stack.gateway_key(slot.id().unwrap()).await, Some((true, vec!["starter".to_owned()])));

    // keys-issue signs a dashboard session with the secret the authorizer verifies it with.
    let session = watch.invoke("keys-issue", &call("POST", "/sessions")).await;
    assert_eq!(session["statusCode"], 201, "{session}");
    let session: Value = serde_json::from_str(session["body"].as_str().unwrap()).unwrap();
    let verifier = latchkey_authorizer::jwt::JwtVerifier::with_shared_secret(
        session_secret.as_bytes(),
        latchkey_authorizer::jwt::JwtConfig::new(latchkey::session::ISSUER, latchkey::session::AUDIENCE),
        std::sync::Arc::new(latchkey::SystemClock),
    );
    let verified = verifier.verify(session["token"].as_str().unwrap()).await.unwrap();
    assert_eq!((verified.subject.as_str(), verified.tenant_id.as_str()), (admin_id, "acme"));

    // keys-sweep, on the wall clock as deployed: a key that expired an hour ago (stored as it
    // was issued then, with its gateway key) is retired by a scheduled event, and the key
    // that has no expiry is left alone.
    let issued_at = chrono::Utc::now() - chrono::TimeDelta::hours(2);
    let spec = latchkey::KeySpec {
        tenant_id: "acme".parse().unwrap(),
        name: "expired an hour ago".into(),
        permissions: latchkey::Permissions::from_csv("read").unwrap(),
        tier: "free".parse().unwrap(),
        expires_at: Some(issued_at + chrono::TimeDelta::hours(1)),
        datasource_id: None,
        replaces: None,
        owner_id: None,
        meta: Default::default(),
        enabled: true,
        ip_allowlist: Default::default(),
        meter: None,
    };
    let hasher = common::issuance().await.peppers.current().await.current.clone();
    let (_, mut expired) = latchkey::KeyRecord::issue(&latchkey::KeyProfile::latchkey(), &hasher, spec, issued_at);
    expired.gateway_key = stack.issue.service.gateway.issue(expired.id.as_str(), &expired.tier).await.unwrap();
    let expired_gateway = expired.gateway_key.clone().unwrap();
    stack.store.insert(&expired).await.unwrap();
    let scheduled = json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-12-02T00:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/latchkey-KeysSweepFunctionSweep"], "detail": {},
    });
    let swept = watch.invoke("keys-sweep", &scheduled.to_string()).await;
    assert_eq!((&swept["retired"], &swept["left"], &swept["warned"]), (&json!(1), &json!(0), &json!(0)), "{swept}");
    // And grew every tier's pool to its size, 2.
    let mut sizes = Vec::new();
    for tier in ["free", "starter", "internal"] {
        let tier = tier.parse().unwrap();
        sizes.push(latchkey::gateway::pool::GatewaySlots::pool_size(&*stack.store, &tier).await.unwrap());
    }
    assert_eq!(sizes, [2, 2, 2], "{swept}");
    assert!(swept["pooled"].as_u64().unwrap() >= 3, "{swept}");
    assert_eq!(stack.gateway_key(&expired_gateway.id).await, None);
    let retired = stack.store.get(&expired.tenant_id, &expired.id).await.unwrap().unwrap();
    assert!(retired.retired_at.is_some(), "{retired:?}");
    stack.call(&admin, "GET", "/whoami", None).await.expect(200);
    assert_eq!(
        watch.invoke("keys-sweep", &scheduled.to_string()).await,
        json!({"retired": 0, "left": 0, "warned": 0, "pooled": 0})
    );
}
