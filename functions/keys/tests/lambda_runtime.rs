//! The built `keys-read` binary run as Lambda runs it (`cargo lambda watch`, `cargo lambda
//! invoke`), reading a key bootstrapped into DynamoDB Local, with proxy events as API Gateway
//! sends them behind the authorizer.

mod common;

use std::collections::HashMap;

use common::Stack;
use latchkey_tests::api_gateway::proxy_event;
use latchkey_tests::cargo_lambda::Watch;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_read_answers_through_the_lambda_runtime() {
    let stack = Stack::new().await;
    let admin = stack.bootstrap("acme").await;
    let me = stack.call(&admin, "GET", "/whoami", None).await.expect(200);
    let admin_id = me["id"].as_str().unwrap();
    let plans: Vec<String> = stack.plans.iter().map(|(tier, plan)| format!("{tier}={plan}")).collect();

    let watch = Watch::start(&[
        ("LATCHKEY_KEYS_TABLE", stack.store.table().to_owned()),
        ("LATCHKEY_USAGE_PLANS", plans.join(",")),
        ("LATCHKEY_RECORDS_TABLE", stack.records.table().to_owned()),
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
}
