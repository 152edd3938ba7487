//! The built `keys-read` and `keys-issue` binaries run as Lambda runs them (`cargo lambda
//! watch`, `cargo lambda invoke`), configured as template.yaml configures them, over DynamoDB
//! Local and moto (Secrets Manager, API Gateway), with proxy events as API Gateway sends them
//! behind the authorizer.

mod common;

use std::collections::HashMap;

use common::Stack;
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

    // The variables template.yaml gives the functions: usage plans by name, not by id.
    let watch = Watch::start(&[
        ("LATCHKEY_KEYS_TABLE", stack.store.table().to_owned()),
        ("LATCHKEY_USAGE_PLAN_NAMES", stack.plan_names.clone()),
        ("LATCHKEY_RECORDS_TABLE", stack.records.table().to_owned()),
        ("LATCHKEY_PEPPER_SECRET_ID", pepper),
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

    // keys-issue finds the starter plan by its name and puts the new key's gateway key in it.
    let body = json!({"name": "from the runtime", "tier": "starter"});
    let created = watch
        .invoke(
            "keys-issue",
            &proxy_event("POST", "/keys", &HashMap::new(), Some(&body.to_string()), context).to_string(),
        )
        .await;
    assert_eq!(created["statusCode"], 201, "{created}");
    let created: Value = serde_json::from_str(created["body"].as_str().unwrap()).unwrap();
    let record = stack.store.get(&"acme".parse().unwrap(), &created["id"].as_str().unwrap().parse().unwrap()).await;
    let gateway = record.unwrap().unwrap().gateway_key.expect("an issued key has a gateway key");
    assert_eq!(stack.gateway_key(&gateway.id).await, Some((true, vec!["starter".to_owned()])));
    // And the key it showed once works.
    let whoami = stack.call(created["key"].as_str().unwrap(), "GET", "/whoami", None).await.expect(200);
    assert_eq!(whoami["name"], "from the runtime");
}
