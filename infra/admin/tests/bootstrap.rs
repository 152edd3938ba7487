//! `latchkey-admin bootstrap`, the built binary, against DynamoDB Local and moto (Secrets Manager
//! and API Gateway): it prints the key once, and the key it printed verifies as the tenant's admin.

use std::process::Command;

use latchkey::pepper::{PepperProvider, SecretsManagerPepper};
use latchkey::store::KeyStore;
use latchkey::{KeyProfile, KeyStatus, Permission, Tiers};
use latchkey_tests::{create_secret, fresh_dynamo_store, required_env, sdk_config, unique_name};
use serde_json::Value;

#[tokio::test]
async fn bootstrap_prints_a_working_admin_key_once() {
    let sdk = sdk_config().await;
    let store = fresh_dynamo_store(chrono::TimeDelta::days(30)).await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let secret = create_secret(&secrets, "bootstrap-pepper-0123456789abcdef0123456789").await;
    let apigateway = aws_sdk_apigateway::Client::new(&sdk);
    let mut plans = Vec::new();
    for tier in Tiers::default().iter() {
        let plan = apigateway.create_usage_plan().name(unique_name(tier.name.as_str())).send().await.unwrap();
        plans.push(format!("{}={}", tier.name, plan.id.unwrap()));
    }
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_latchkey-admin"))
            .args(args)
            .env("LATCHKEY_KEYS_TABLE", store.table())
            .env("LATCHKEY_PEPPER_SECRET_ID", &secret)
            .env("LATCHKEY_USAGE_PLANS", plans.join(","))
            .env("AWS_ENDPOINT_URL_API_GATEWAY", required_env("AWS_ENDPOINT_URL_API_GATEWAY"))
            .output()
            .unwrap()
    };

    let output = run(&["bootstrap", "--tenant", "acme"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("shown this once"));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let key = KeyProfile::latchkey().parse(printed["key"].as_str().unwrap()).unwrap();
    assert_eq!((printed["tenant_id"].as_str(), printed["tier"].as_str()), (Some("acme"), Some("internal")));

    // The printed key is the stored one: found by its digest under the secret's pepper.
    let peppers = SecretsManagerPepper::new(secrets, &secret).load().await.unwrap();
    let record = store.find_by_digest(&peppers.current.digest(&key)).await.unwrap().unwrap();
    assert_eq!(record.id.as_str(), printed["id"].as_str().unwrap());
    assert!(record.permissions.contains(Permission::Admin));
    assert_eq!(record.status(chrono::Utc::now()), KeyStatus::Active);
    // It has no gateway key of its own: it made the internal tier's pool its first one.
    assert_eq!(record.gateway_key, None);
    let internal = "internal".parse().unwrap();
    assert_eq!(latchkey::gateway::pool::GatewaySlots::pool_size(&store, &internal).await.unwrap(), 1);

    // Bad input is refused, naming what is wrong, and creates nothing.
    for (args, expected) in [
        (&["bootstrap", "--tenant", "Not A Tenant!"][..], "--tenant"),
        (&["bootstrap", "--tenant", "acme", "--tier", "gold"][..], "tier"),
        (&["bootstrap"][..], "--tenant"),
    ] {
        let output = run(args);
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains(expected), "{args:?}");
        assert!(output.stdout.is_empty());
    }
    let listed = store.list(&"acme".parse().unwrap(), 10, None).await.unwrap();
    assert_eq!(listed.items.len(), 1);
}
