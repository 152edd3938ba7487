//! No event, however malformed, makes the authorizer panic or allow without a stored key.

use crate::common;

use std::time::Duration;

use latchkey::KeyProfile;
use latchkey::store::embedded::EmbeddedKeyStore;
use latchkey_tests::StaticPepper;
use proptest::prelude::*;
use serde_json::{Value, json};

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        Just(String::new()),
        // Well-formed keys that were never issued, bare and as bearer tokens.
        Just(()).prop_map(|_| KeyProfile::latchkey().generate().expose_secret().to_owned()),
        Just(()).prop_map(|_| format!("Bearer {}", KeyProfile::latchkey().generate().expose_secret())),
        "Bearer [A-Za-z0-9_-]{1,20}\\.[A-Za-z0-9_-]{1,40}\\.[A-Za-z0-9_-]{0,20}",
    ]
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("x-api-key".to_owned()),
        Just("Authorization".to_owned()),
        Just("AUTHORIZATION".to_owned()),
        any::<String>()
    ]
}

fn event() -> impl Strategy<Value = Vec<u8>> {
    let headers = proptest::collection::vec((header_name(), header_value()), 0..4);
    let arn = prop_oneof![
        Just("arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/GET/whoami".to_owned()),
        any::<String>(),
    ];
    let structured = (headers, arn, any::<bool>()).prop_map(|(headers, arn, multi)| {
        let mut single = serde_json::Map::new();
        let mut multi_map = serde_json::Map::new();
        for (name, value) in headers {
            single.insert(name.clone(), json!(value));
            multi_map.entry(name).or_insert_with(|| json!([])).as_array_mut().unwrap().push(json!(value));
        }
        let multi_value: Value = if multi { Value::Object(multi_map) } else { Value::Null };
        serde_json::to_vec(
            &json!({"type": "REQUEST", "methodArn": arn, "headers": single, "multiValueHeaders": multi_value}),
        )
        .unwrap()
    });
    prop_oneof![structured, proptest::collection::vec(any::<u8>(), 0..200)]
}

#[test]
fn no_event_panics_or_allows_without_a_stored_key() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let harness = runtime.block_on(async {
        let store = EmbeddedKeyStore::open(&dir.path().join("keys.redb")).unwrap();
        common::harness(store, StaticPepper::new(common::PEPPER, "v1"), Duration::from_secs(5)).await
    });
    proptest!(ProptestConfig::with_cases(400), |(raw in event())| {
        let outcome = runtime.block_on(harness.authorizer.handle_event(&raw));
        if let Ok(bytes) = outcome {
            let response: Value = serde_json::from_slice(&bytes).unwrap();
            let effect = &response["policyDocument"]["Statement"][0]["Effect"];
            let session = response["context"]["auth_type"] == "jwt";
            prop_assert!(effect == "Deny" && !session, "allowed: {}", String::from_utf8_lossy(&raw));
        }
    });
}
