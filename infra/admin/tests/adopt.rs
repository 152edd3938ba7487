//! `latchkey-admin adopt-gateway-keys`, the built binary, against DynamoDB Local and moto's API
//! Gateway: a stack whose keys each own a gateway key (made before the pool) moves onto the pool
//! without a key changing. With a pool of 3, five such keys: three gateway keys become the
//! tier's slots, two are deleted, no record keeps one, every key then leases one of the three;
//! a second run finds nothing to do.

use std::collections::HashSet;
use std::process::Command;

use latchkey::gateway::GatewayKeys;
use latchkey::gateway::apigateway::ApiGatewayKeys;
use latchkey::gateway::pool::{GatewaySlots, lease};
use latchkey::store::KeyStore;
use latchkey::{KeyHasher, KeyProfile, KeyRecord, KeySpec, PepperVersion, Permission, TierName, Tiers};
use latchkey_tests::{fresh_dynamo_store, required_env, sdk_config, unique_name};
use serde_json::{Value, json};

#[tokio::test]
async fn keys_from_before_the_pool_move_onto_it_without_changing() {
    let sdk = sdk_config().await;
    let store = fresh_dynamo_store(chrono::TimeDelta::days(30)).await;
    let apigateway = aws_sdk_apigateway::Client::new(&sdk);
    let mut plans = std::collections::HashMap::new();
    for tier in Tiers::default().iter() {
        let plan = apigateway.create_usage_plan().name(unique_name(tier.name.as_str())).send().await.unwrap();
        plans.insert(tier.name.clone(), plan.id.unwrap());
    }
    let plans_env: Vec<String> = plans.iter().map(|(tier, plan)| format!("{tier}={plan}")).collect();
    let gateway = ApiGatewayKeys::new(apigateway.clone(), plans.clone());
    let free: TierName = "free".parse().unwrap();

    // Five keys as the previous version made them: each with a gateway key of its own.
    let hasher = KeyHasher::new(&[9u8; 32], PepperVersion::new("v1"));
    let mut records = Vec::new();
    for n in 0..5 {
        let spec = KeySpec::new(
            "acme".parse().unwrap(),
            format!("old {n}"),
            [Permission::Read].into_iter().collect(),
            free.clone(),
        );
        let (_, mut record) = KeyRecord::issue(&KeyProfile::latchkey(), &hasher, spec, chrono::Utc::now());
        record.gateway_key = gateway.issue(record.id.as_str(), &free).await.unwrap();
        store.insert(&record).await.unwrap();
        records.push(record);
    }
    let own: HashSet<String> = records.iter().map(|r| r.gateway_key.clone().unwrap().id).collect();

    let run = || {
        let output = Command::new(env!("CARGO_BIN_EXE_latchkey-admin"))
            .arg("adopt-gateway-keys")
            .env("LATCHKEY_KEYS_TABLE", store.table())
            .env("LATCHKEY_USAGE_PLANS", plans_env.join(","))
            .env("LATCHKEY_GATEWAY_POOL_SIZE", "3")
            .env("AWS_ENDPOINT_URL_API_GATEWAY", required_env("AWS_ENDPOINT_URL_API_GATEWAY"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    assert_eq!(run(), json!({"into_pool": 3, "deleted": 2, "gone": 0, "failed": 0}));

    // No record keeps a gateway key of its own; the same digests, so the same keys verify.
    for record in &records {
        let stored = store.find_by_digest(&record.digest).await.unwrap().expect("the key is where it was");
        assert_eq!((stored.gateway_key, stored.revision), (None, record.revision), "{}", record.id);
    }
    // Three of the five gateway keys are the tier's slots, still in its plan; two are gone.
    assert_eq!(store.pool_size(&free).await.unwrap(), 3);
    let mut kept = HashSet::new();
    for id in &own {
        if let Ok(key) = apigateway.get_api_key().api_key(id).include_value(true).send().await {
            kept.insert(key.value.unwrap());
        }
    }
    assert_eq!(kept.len(), 3, "deleted, not left behind: {kept:?}");
    // Every key leases one of them now (three of their own, two sharing).
    let now = chrono::Utc::now();
    for record in &records {
        let leased = lease(&store, &free, 3, &record.id, now).await.unwrap().unwrap();
        assert!(kept.contains(&leased.value), "{leased:?}");
    }
    assert_eq!(run(), json!({"into_pool": 0, "deleted": 0, "gone": 0, "failed": 0}), "nothing left to move");
}
