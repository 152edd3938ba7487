//! A flood of invalid keys costs the key table nothing it need not pay: malformed keys (wrong
//! length, prefix, alphabet, checksum) are refused by the format check without a single read;
//! a well-formed unknown key is read once and then answered by the negative cache; a valid key
//! keeps working throughout. Against DynamoDB Local, reads counted at the store.

use crate::common;

use std::time::Duration;

use latchkey_tests::CountingStore;
use serde_json::Value;

/// The fixture event with its `x-api-key` replaced by `key`.
fn event_with(key: &str) -> Vec<u8> {
    let mut event: Value = serde_json::from_slice(&common::fixture("key_x_api_key")).unwrap();
    event["headers"]["x-api-key"] = Value::String(key.to_owned());
    event["multiValueHeaders"]["x-api-key"] = serde_json::json!([key]);
    serde_json::to_vec(&event).unwrap()
}

async fn code_for<
    S: latchkey::store::KeyStore + latchkey::gateway::pool::GatewaySlots + latchkey::credits::CreditStore + 'static,
    P: latchkey::pepper::PepperProvider,
>(
    harness: &common::Harness<S, P>,
    key: &str,
) -> String {
    let answer = harness.authorizer.handle_event(&event_with(key)).await.expect("decided");
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    let effect = answer["policyDocument"]["Statement"][0]["Effect"].as_str().unwrap();
    if effect == "Allow" { "ALLOW".to_owned() } else { answer["context"]["error_code"].as_str().unwrap().to_owned() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_key_floods_cost_no_reads_or_one_per_key() {
    let store = CountingStore::new(common::fresh_store().await);
    let harness =
        common::harness(store, latchkey_tests::StaticPepper::new(common::PEPPER, "v1"), Duration::from_secs(60)).await;
    let keys = common::fixture_keys();
    let (valid, unknown) = (keys["valid"].clone(), keys["unknown"].clone());
    harness.store.take();

    // 4,000 malformed keys: every way a forged key goes wrong before its digest is worth taking.
    let body = &valid[3..];
    let mut malformed = Vec::new();
    for i in 0..1_000u32 {
        let hex = format!("{i:08x}");
        malformed.push(format!("lk_{}{hex}", &body[..body.len() - 8])); // checksum wrong
        malformed.push(format!("{}{}", &valid[..valid.len() - 1], i % 7)); // one character off
        malformed.push(format!("lk {body}")); // prefix (and a space: no other system's key either)
        malformed.push(format!("lk_{}{}", &body[..body.len() - 1], "G")); // alphabet
    }
    malformed.extend(["lk_", "lk", "", " ", "lk_00"].map(str::to_owned));
    for key in &malformed {
        let code = code_for(&harness, key).await;
        // A checksum that happens to match (1 in 2^32) would be a read; none of these does.
        assert!(code == "INVALID_API_KEY_FORMAT" || code == "MISSING_API_KEY", "{key:?}: {code}");
    }
    assert_eq!(harness.store.take().0, 0, "the format check refuses malformed keys without a read");

    // 500 strings of another system's key's shape (an imported key could be any of them), twice
    // each: two reads each the first time (its peppered digest, then its SHA-256), then the
    // negative cache.
    let foreign: Vec<String> = (0..500).map(|i| format!("xk_{}{i:04}", &body[..36])).collect();
    for _ in 0..2 {
        for key in &foreign {
            assert_eq!(code_for(&harness, key).await, "INVALID_API_KEY", "{key}");
        }
    }
    assert_eq!(harness.store.take().0, 2 * foreign.len(), "two reads per imported-shaped string, once");

    // 2,000 requests with one well-formed unknown key: one read, then the negative cache.
    for _ in 0..2_000 {
        assert_eq!(code_for(&harness, &unknown).await, "INVALID_API_KEY");
    }
    assert_eq!(harness.store.take().0, 1, "one read for the unknown key, then the negative cache");

    // 200 distinct well-formed unknown keys, 10 times each: one read per key.
    let profile = latchkey::KeyProfile::latchkey();
    let strangers: Vec<String> =
        (0..200).map(|_| latchkey::ApiKey::expose_secret(&profile.generate()).to_owned()).collect();
    for _ in 0..10 {
        for key in &strangers {
            assert_eq!(code_for(&harness, key).await, "INVALID_API_KEY");
        }
    }
    assert_eq!(harness.store.take().0, strangers.len());

    // The valid key still works, read at most once.
    assert_eq!(code_for(&harness, &valid).await, "ALLOW");
    assert!(harness.store.take().0 <= 1);
}
