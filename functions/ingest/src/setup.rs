//! The ingest function's cold start: configuration checked, the DynamoDB connection opened.

use std::sync::Arc;

use latchkey::SystemClock;
use latchkey::config::{ConfigError, Env, Settings};
use latchkey::ingest::dynamo::DynamoRecordStore;
use latchkey::ingest::service::IngestService;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the records table could not be reached: {0}")]
    Store(latchkey::store::StoreError),
}

/// `LATCHKEY_RECORDS_TABLE`, and the timeouts and record retention of [`Settings`].
pub async fn from_env() -> Result<IngestService<DynamoRecordStore>, SetupError> {
    let env = Env::process();
    let settings = Settings::from_env(&env)?;
    let table = env.required("LATCHKEY_RECORDS_TABLE")?;
    let sdk = latchkey::aws::load_sdk_config(&settings.aws_timeouts).await;
    let records =
        DynamoRecordStore::new(aws_sdk_dynamodb::Client::new(&sdk), table).with_retention(settings.record_ttl);
    records.warm_up().await.map_err(SetupError::Store)?;
    Ok(IngestService { records: Arc::new(records), clock: Arc::new(SystemClock), daily_cap: settings.ingest_daily_cap })
}
