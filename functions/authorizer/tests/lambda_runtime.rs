//! The built `authorizer` binary run as Lambda runs it: `cargo lambda watch` emulates the Lambda
//! runtime API, `cargo lambda invoke` sends it fixture events, against DynamoDB Local and moto.
//! This is the guide's local-development sequence (Getting started), run by the test suite.

use crate::common;

use common::{fixture, fixture_keys, now};
use latchkey::pepper::{PepperProvider, SecretsManagerPepper};
use latchkey::store::KeyStore;
use latchkey::{KeyProfile, KeyRecord, KeySpec, Permission};
use latchkey_tests::cargo_lambda::Watch;
use latchkey_tests::{create_secret, sdk_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_answers_fixture_events_through_the_lambda_runtime() {
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let secret = create_secret(&secrets, "lambda-runtime-pepper-0123456789abcdef01").await;
    let store = common::fresh_store().await;
    let peppers = SecretsManagerPepper::new(secrets, &secret).load().await.unwrap();
    let key = KeyProfile::latchkey().parse(&fixture_keys()["valid"]).unwrap();
    let spec = KeySpec {
        tenant_id: "acme".parse().unwrap(),
        name: "lambda".into(),
        permissions: [Permission::Read].into_iter().collect(),
        tier: "free".parse().unwrap(),
        expires_at: None,
        datasource_id: None,
        replaces: None,
        owner_id: None,
        meta: Default::default(),
        enabled: true,
        ip_allowlist: Default::default(),
        meter: None,
    };
    let record = KeyRecord::new(&key, &peppers.current, spec, now());
    store.insert(&record).await.unwrap();

    let watch = Watch::start(&[
        ("LATCHKEY_KEYS_TABLE", store.table().to_owned()),
        ("LATCHKEY_PEPPER_SECRET_ID", secret),
        ("LATCHKEY_KEY_PROFILE", "latchkey".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ])
    .await;
    let event = |name: &str| String::from_utf8(fixture(name)).unwrap();
    let allowed = watch.invoke("authorizer", &event("key_x_api_key")).await;
    assert_eq!(allowed["policyDocument"]["Statement"][0]["Effect"], "Allow", "{allowed}");
    assert_eq!(allowed["context"]["key_id"], record.id.as_str());
    assert_eq!(allowed["policyDocument"]["Statement"][0]["Resource"], common::RESOURCE);

    let denied = watch.invoke("authorizer", &event("unknown")).await;
    assert_eq!(denied["policyDocument"]["Statement"][0]["Effect"], "Deny", "{denied}");
    assert_eq!(denied["context"]["error_code"], "INVALID_API_KEY");
}
