//! `init-local`: what the functions need, made in the local engines (DynamoDB Local, moto): both
//! tables (from the one definition in `latchkey::store::schema`), a pepper secret and a usage plan
//! per tier. Prints the functions' environment as `KEY="value"` lines, for `cargo lambda watch
//! --env-file`. Idempotent. Refuses to run without local endpoints, so it never creates
//! resources in an AWS account.

use latchkey::Tiers;
use latchkey::store::schema::{create_keys_table, create_records_table};

const KEYS_TABLE: &str = "latchkey-keys";
const RECORDS_TABLE: &str = "latchkey-records";
const PEPPER_SECRET: &str = "latchkey-pepper";
/// Passed on to the functions, so the file is all `cargo lambda watch` needs.
const PASSED_ON: &[&str] = &[
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ENDPOINT_URL_API_GATEWAY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
];

pub async fn run() -> Result<String, String> {
    for var in ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_API_GATEWAY"] {
        if std::env::var(var).is_err() {
            return Err(format!(
                "{var} is not set: start the local engines first (`source \"$(infra/local-aws/start)\"`)"
            ));
        }
    }
    let timeouts = latchkey::config::AwsTimeouts::default();
    let sdk = latchkey::aws::load_sdk_config(&timeouts).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    create_keys_table(&dynamodb, KEYS_TABLE).await?;
    create_records_table(&dynamodb, RECORDS_TABLE).await?;

    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let exists = secrets.describe_secret().secret_id(PEPPER_SECRET).send().await.is_ok();
    if !exists {
        let pepper = secrets.get_random_password().password_length(64).exclude_punctuation(true).send().await;
        let pepper = pepper.map_err(|e| format!("a random pepper: {e}"))?.random_password.unwrap_or_default();
        secrets.create_secret().name(PEPPER_SECRET).secret_string(pepper).send().await.map_err(|e| {
            format!("creating {PEPPER_SECRET}: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(e))
        })?;
    }

    let apigateway = aws_sdk_apigateway::Client::new(&sdk);
    let existing = apigateway.get_usage_plans().send().await.map_err(|e| format!("usage plans: {e}"))?;
    let mut plans = Vec::new();
    for tier in Tiers::default().iter() {
        let name = format!("latchkey-{}", tier.name);
        let found = existing.items().iter().find(|plan| plan.name() == Some(name.as_str())).and_then(|p| p.id.clone());
        let id = match found {
            Some(id) => id,
            None => {
                let created = apigateway.create_usage_plan().name(&name).send().await;
                created.map_err(|e| format!("usage plan {name}: {e}"))?.id.unwrap_or_default()
            }
        };
        plans.push(format!("{}={id}", tier.name));
    }

    let mut lines = vec![
        format!("LATCHKEY_KEYS_TABLE=\"{KEYS_TABLE}\""),
        format!("LATCHKEY_RECORDS_TABLE=\"{RECORDS_TABLE}\""),
        format!("LATCHKEY_PEPPER_SECRET_ID=\"{PEPPER_SECRET}\""),
        format!("LATCHKEY_USAGE_PLANS=\"{}\"", plans.join(",")),
    ];
    for var in PASSED_ON {
        if let Ok(value) = std::env::var(var) {
            lines.push(format!("{var}=\"{value}\""));
        }
    }
    Ok(lines.join("\n"))
}
