//! The authorizer against the real engines: pepper rotation through Secrets Manager (moto),
//! revocation through the cache, DynamoDB going away, and `last_used_at`.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use common::{dynamo_harness, fixture_keys, harness, now};
use latchkey::pepper::{CachedPepper, PepperProvider, SecretsManagerPepper};
use latchkey::store::KeyStore;
use latchkey::{KeyProfile, KeyRecord};
use latchkey_authorizer::{Authorizer, Dependencies, HandlerError};
use latchkey_tests::dynamodb_local::DynamoDbLocal;
use latchkey_tests::{create_secret, dynamodb_client_at, fresh_dynamo_store_with, sdk_config, short_timeouts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pepper_rotation_end_to_end() {
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let secret = create_secret(&secrets, "pepper-one-0123456789abcdef0123456789ab").await;
    let store = common::fresh_store().await;
    let harness = harness(store, SecretsManagerPepper::new(secrets.clone(), &secret), Duration::ZERO).await;
    assert_eq!(harness.effect("key_x_api_key").await, "Allow");

    rotate(&secrets, &secret).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Hashed under the old pepper, the key still works, and is moved to the new one.
    assert_eq!(harness.effect("key_x_api_key").await, "Allow");
    let peppers = SecretsManagerPepper::new(secrets, &secret).load().await.unwrap();
    let key = KeyProfile::latchkey().parse(&fixture_keys()["valid"]).unwrap();
    let moved = harness.store.find_by_digest(&peppers.current.digest(&key)).await.unwrap().expect("rehashed");
    assert_eq!(&moved.pepper_version, peppers.current.version());
    assert_eq!(harness.store.find_by_digest(&peppers.previous.unwrap().digest(&key)).await.unwrap(), None);
    // Revoked keys stay refused across the rotation, and new keys work.
    assert_eq!(harness.code("revoked").await, "INVALID_API_KEY");
    let (new_key, record) = KeyRecord::issue(&KeyProfile::latchkey(), &peppers.current, spec(), now());
    harness.store.insert(&record).await.unwrap();
    let headers = [("x-api-key", new_key.expose_secret())];
    assert!(harness.authorizer.authenticate(headers).await.is_ok());
}

/// A cold start after a rotation fetches only the current pepper; the first key from before
/// the rotation makes it fetch the previous one, and verifies. Unknown keys then cost no fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_after_a_rotation_still_verifies_old_keys() {
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let secret = create_secret(&secrets, "pepper-one-0123456789abcdef0123456789ab").await;
    // Keys seeded under the first pepper, then the secret rotates.
    let seeded =
        harness(common::fresh_store().await, SecretsManagerPepper::new(secrets.clone(), &secret), Duration::ZERO).await;
    rotate(&secrets, &secret).await;

    let provider = SecretsManagerPepper::new(secrets.clone(), &secret);
    let peppers = CachedPepper::load_current(provider, Duration::from_secs(300)).await.unwrap();
    assert!(!peppers.current().await.previous_known, "the cold start fetched the current pepper only");
    let cold = Authorizer::new(Dependencies {
        store: Arc::clone(&seeded.store),
        peppers,
        clock: seeded.clock.clone(),
        profile: KeyProfile::latchkey(),
        cache_ttl: Duration::ZERO,
        cache_capacity: 0,
        jwt: None,
        sessions: None,
        session_usage_keys: None,
        gateway_pool: false,
    });
    let decide = |name: &'static str| {
        let cold = &cold;
        async move {
            let response = cold.handle_event(&common::fixture(name)).await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&response).unwrap()
        }
    };
    let allowed = decide("key_x_api_key").await;
    assert_eq!(allowed["policyDocument"]["Statement"][0]["Effect"], "Allow", "{allowed}");
    // Moved to the current pepper's digest.
    let whole = SecretsManagerPepper::new(secrets, &secret).load().await.unwrap();
    let key = KeyProfile::latchkey().parse(&fixture_keys()["valid"]).unwrap();
    assert!(seeded.store.find_by_digest(&whole.current.digest(&key)).await.unwrap().is_some());
    // Unknown and revoked keys are still refused.
    assert_eq!(decide("unknown").await["context"]["error_code"], "INVALID_API_KEY");
    assert_eq!(decide("revoked").await["context"]["error_code"], "INVALID_API_KEY");
}

/// A new value for the secret: the old one becomes `AWSPREVIOUS`.
async fn rotate(secrets: &aws_sdk_secretsmanager::Client, secret: &str) {
    let new_value = "pepper-two-0123456789abcdef0123456789ab";
    secrets.put_secret_value().secret_id(secret).secret_string(new_value).send().await.unwrap();
}

fn spec() -> latchkey::KeySpec {
    latchkey::KeySpec {
        tenant_id: "acme".parse().unwrap(),
        name: "after rotation".into(),
        permissions: Default::default(),
        tier: "free".parse().unwrap(),
        expires_at: None,
        datasource_id: None,
        replaces: None,
        owner_id: None,
        meta: Default::default(),
        enabled: true,
        ip_allowlist: Default::default(),
        meter: None,
    }
}

#[tokio::test]
async fn a_revocation_bites_within_the_cache_ttl() {
    let ttl = Duration::from_millis(800);
    let harness = dynamo_harness(ttl).await;
    let valid = harness.record("valid").clone();
    assert_eq!(harness.effect("key_x_api_key").await, "Allow");

    harness.store.revoke(&valid.tenant_id, &valid.id, now()).await.unwrap();
    // Still cached: this is the documented bound on revocation latency.
    assert_eq!(harness.effect("key_x_api_key").await, "Allow");
    // The cache ages on the authorizer's clock.
    harness.clock.advance(chrono::TimeDelta::from_std(ttl).unwrap());
    assert_eq!(harness.code("key_x_api_key").await, "INVALID_API_KEY");
}

#[tokio::test]
async fn eviction_makes_a_revocation_immediate() {
    let harness = dynamo_harness(Duration::from_secs(300)).await;
    let valid = harness.record("valid").clone();
    assert_eq!(harness.effect("key_x_api_key").await, "Allow");
    let revoked = harness.store.revoke(&valid.tenant_id, &valid.id, now()).await.unwrap();
    harness.authorizer.cache().evict(&revoked.digest);
    assert_eq!(harness.code("key_x_api_key").await, "INVALID_API_KEY");
}

#[tokio::test]
async fn dynamodb_down_is_never_an_allow() {
    let mut engine = DynamoDbLocal::start().await;
    let client = dynamodb_client_at(&engine.endpoint(), short_timeouts()).await;
    let store = fresh_dynamo_store_with(client, common::retention()).await;
    let harness = harness(store, latchkey_tests::StaticPepper::new(common::PEPPER, "v1"), Duration::ZERO).await;
    assert_eq!(harness.effect("key_x_api_key").await, "Allow");

    engine.stop().await;
    for name in ["key_x_api_key", "unknown", "revoked", "jwt_valid", "malformed"] {
        match harness.decide(name).await {
            Err(HandlerError::Unavailable) => {}
            Ok(response) => {
                let effect = &response["policyDocument"]["Statement"][0]["Effect"];
                // Only what needs no database may still be decided: a JWT, or a malformed key.
                assert!(name == "jwt_valid" || (name == "malformed" && effect == "Deny"), "{name}: {response}");
            }
            Err(other) => panic!("{name}: {other}"),
        }
    }
}

#[tokio::test]
async fn last_used_is_written_once_a_minute_off_the_request_path() {
    let harness = dynamo_harness(Duration::from_secs(5)).await;
    let valid = harness.record("valid").clone();
    let read_last_used =
        || async { harness.store.get(&valid.tenant_id, &valid.id).await.unwrap().unwrap().last_used_at };
    let wait_for = |expected| async move {
        for _ in 0..50 {
            if read_last_used().await == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("last_used_at never became {expected:?}");
    };

    assert_eq!(harness.effect("key_x_api_key").await, "Allow");
    wait_for(Some(now())).await;

    // Within the same minute: no second write.
    harness.clock.advance(TimeDelta::seconds(30));
    assert_eq!(harness.effect("key_x_api_key").await, "Allow");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(read_last_used().await, Some(now()));

    harness.clock.advance(TimeDelta::seconds(31));
    assert_eq!(harness.effect("key_x_api_key").await, "Allow");
    wait_for(Some(now() + TimeDelta::seconds(61))).await;
}
