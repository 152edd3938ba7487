//! The built `authorizer` binary run as Lambda runs it: `cargo lambda watch` emulates the Lambda
//! runtime API, `cargo lambda invoke` sends it fixture events, against DynamoDB Local and moto.
//! This is the README's local-development sequence, run by the test suite.

mod common;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{fixture_keys, now};
use latchkey::pepper::{PepperProvider, SecretsManagerPepper};
use latchkey::store::KeyStore;
use latchkey::{KeyProfile, KeyRecord, KeySpec, Permission};
use latchkey_tests::{create_secret, required_env, sdk_config};
use serde_json::Value;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn fixture_path(name: &str) -> String {
    format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"))
}

/// `cargo lambda watch`, stopped with its whole process group (it runs the function as a child).
struct Watch(std::process::Child);

impl Drop for Watch {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.0.wait();
    }
}

fn invoke(cargo_lambda: &str, port: u16, fixture: &str) -> Value {
    let output = Command::new(cargo_lambda)
        .args(["lambda", "invoke", "authorizer", "--invoke-address", "127.0.0.1", "--invoke-port"])
        .arg(port.to_string())
        .args(["--data-file", &fixture_path(fixture), "--output-format", "json"])
        .current_dir(workspace_root())
        .output()
        .expect("running cargo lambda invoke");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "invoke failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_answers_fixture_events_through_the_lambda_runtime() {
    let cargo_lambda = required_env("LATCHKEY_CARGO_LAMBDA");
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
    };
    let record = KeyRecord::new(&key, &peppers.current, spec, now());
    store.insert(&record).await.unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut env_vars = vec![
        format!("LATCHKEY_KEYS_TABLE={}", store.table()),
        format!("LATCHKEY_PEPPER_SECRET_ID={secret}"),
        "LATCHKEY_KEY_PROFILE=latchkey".to_owned(),
        "RUST_LOG=info".to_owned(),
    ];
    for var in [
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_EC2_METADATA_DISABLED",
    ] {
        env_vars.push(format!("{var}={}", required_env(var)));
    }
    let _watch = Watch(
        Command::new(&cargo_lambda)
            .args(["lambda", "watch", "--quiet", "--ignore-changes", "--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(port.to_string())
            .args(["--env-vars", &env_vars.join(",")])
            .current_dir(workspace_root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("starting cargo lambda watch"),
    );

    // The first invocation builds the function; wait for the emulator to listen first.
    for _ in 0..600 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let cargo_lambda_for_allow = cargo_lambda.clone();
    let allowed =
        tokio::task::spawn_blocking(move || invoke(&cargo_lambda_for_allow, port, "key_x_api_key")).await.unwrap();
    assert_eq!(allowed["policyDocument"]["Statement"][0]["Effect"], "Allow", "{allowed}");
    assert_eq!(allowed["context"]["key_id"], record.id.as_str());
    assert_eq!(allowed["policyDocument"]["Statement"][0]["Resource"], common::RESOURCE);

    let denied = tokio::task::spawn_blocking(move || invoke(&cargo_lambda, port, "unknown")).await.unwrap();
    assert_eq!(denied["policyDocument"]["Statement"][0]["Effect"], "Deny", "{denied}");
    assert_eq!(denied["context"]["error_code"], "INVALID_API_KEY");
}
