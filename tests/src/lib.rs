//! Support for tests that talk to real engines: DynamoDB Local and moto's server, started by
//! `infra/local-aws/start` (the README's test command does it) and reached through the AWS
//! SDK's standard endpoint variables, exactly as production code reaches AWS.
//!
//! A test that needs an engine and does not find one fails with a message saying how to start
//! it: no silent skip.

use std::time::Duration;

use aws_config::SdkConfig;
use chrono::TimeDelta;
use latchkey::config::AwsTimeouts;
use latchkey::store::dynamo::DynamoKeyStore;
use latchkey::store::schema::create_keys_table;

pub mod api_gateway;
pub mod cargo_lambda;
mod counting;
pub mod dynamo_calls;
pub mod dynamodb_local;
pub mod echo;
pub mod github;
pub mod openapi;
pub mod slow_proxy;
pub mod template;
pub mod throttling_proxy;

pub use counting::CountingStore;

const START_HINT: &str =
    "start the local engines first: `source <(infra/local-aws/start)` or run the README's test command, `infra/test`";

/// An environment variable the local engines' start script sets.
pub fn required_env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: {START_HINT}"))
}

/// The SDK configuration of the test run: endpoints from `AWS_ENDPOINT_URL_*`, dummy credentials.
/// Timeouts are generous: a loaded CI machine must not turn a slow answer into a failed test
/// (fault tests set short ones explicitly with [`short_timeouts`]).
pub async fn sdk_config() -> SdkConfig {
    for var in ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_REGION"] {
        required_env(var);
    }
    latchkey::aws::load_sdk_config(&patient_timeouts()).await
}

/// Timeouts for tests that are not about timeouts.
pub fn patient_timeouts() -> AwsTimeouts {
    AwsTimeouts {
        connect: Duration::from_secs(5),
        attempt: Duration::from_secs(15),
        operation: Duration::from_secs(45),
        max_attempts: 3,
    }
}

/// A name no other test uses, so tests run in parallel against one engine.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

/// A DynamoDB client for an explicit endpoint, with short timeouts: for fault tests.
pub async fn dynamodb_client_at(endpoint: &str, timeouts: AwsTimeouts) -> aws_sdk_dynamodb::Client {
    let config = latchkey::aws::load_sdk_config(&timeouts).await;
    let config = aws_sdk_dynamodb::config::Builder::from(&config).endpoint_url(endpoint).build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// Short timeouts, so fault tests finish quickly.
pub fn short_timeouts() -> AwsTimeouts {
    AwsTimeouts {
        connect: Duration::from_millis(300),
        attempt: Duration::from_millis(500),
        operation: Duration::from_millis(1_500),
        max_attempts: 2,
    }
}

/// A fresh keys table in the shared DynamoDB Local, and a store over it.
pub async fn fresh_dynamo_store(retention: TimeDelta) -> DynamoKeyStore {
    let config = sdk_config().await;
    fresh_dynamo_store_with(aws_sdk_dynamodb::Client::new(&config), retention).await
}

pub async fn fresh_dynamo_store_with(client: aws_sdk_dynamodb::Client, retention: TimeDelta) -> DynamoKeyStore {
    let table = unique_name("keys");
    create_keys_table(&client, &table).await.unwrap_or_else(|e| panic!("creating table {table}: {e}"));
    DynamoKeyStore::new(client, table, retention)
}

/// A new secret in the local Secrets Manager holding `value`; returns its name.
pub async fn create_secret(client: &aws_sdk_secretsmanager::Client, value: &str) -> String {
    let name = unique_name("pepper");
    client.create_secret().name(&name).secret_string(value).send().await.unwrap_or_else(|e| {
        panic!("creating secret {name}: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(e))
    });
    name
}

/// A pepper provider with fixed peppers: for tests that need to know the digests in advance.
pub struct StaticPepper {
    current: (Vec<u8>, &'static str),
    previous: Option<(Vec<u8>, &'static str)>,
}

impl StaticPepper {
    pub fn new(current: &[u8], version: &'static str) -> Self {
        Self { current: (current.to_vec(), version), previous: None }
    }
}

impl latchkey::pepper::PepperProvider for StaticPepper {
    async fn load(&self) -> Result<latchkey::pepper::PepperSet, latchkey::pepper::PepperError> {
        use latchkey::pepper::{Pepper, PepperSet};
        let pepper = |(bytes, version): &(Vec<u8>, &'static str)| {
            Pepper::new(bytes.clone(), latchkey::PepperVersion::new(*version), "static")
        };
        let current = pepper(&self.current)?;
        let previous = self.previous.as_ref().map(pepper).transpose()?;
        Ok(PepperSet::new(&current, previous.as_ref()))
    }
}

/// Appends an HTTP answer's body to `LATCHKEY_TEST_BODIES_DIR/<pid>.bodies` (one JSON string per
/// line) when the suite runs under `infra/test`, for `infra/leak-audit` to read: no key may be in
/// any answer but the top-level `key` of the one that shows it.
pub fn capture_body(body: &str) {
    use std::io::Write;
    static FILE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let Ok(dir) = std::env::var("LATCHKEY_TEST_BODIES_DIR") else { return };
    let _one_writer = FILE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = std::path::Path::new(&dir).join(format!("{}.bodies", std::process::id()));
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("the bodies file");
    writeln!(file, "{}", serde_json::Value::String(body.to_owned())).expect("a body written");
}
