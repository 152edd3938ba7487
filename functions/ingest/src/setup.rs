//! The ingest function's cold start: configuration checked, the DynamoDB connection opened.

use std::sync::Arc;

use latchkey::SystemClock;
use latchkey::config::{ConfigError, Env, Settings};
use latchkey::ingest::dynamo::DynamoRecordStore;
use latchkey::ingest::service::IngestService;
use latchkey::store::dynamo::DynamoKeyStore;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the records table could not be reached: {0}")]
    Store(latchkey::store::StoreError),
}

/// `LATCHKEY_RECORDS_TABLE`, `LATCHKEY_KEYS_TABLE` (where the datasources are: read only, to
/// refuse a key whose datasource is gone), and the timeouts and record retention of [`Settings`].
pub async fn from_env() -> Result<IngestService<DynamoRecordStore, DynamoKeyStore>, SetupError> {
    let env = Env::process();
    let settings = Settings::from_env(&env)?;
    let table = env.required("LATCHKEY_RECORDS_TABLE")?;
    let keys_table = env.required("LATCHKEY_KEYS_TABLE")?;
    let sdk = latchkey::aws::load_sdk_config(&settings.aws_timeouts).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let records = DynamoRecordStore::new(client.clone(), table).with_retention(settings.record_ttl);
    records.warm_up().await.map_err(SetupError::Store)?;
    let datasources = DynamoKeyStore::new(client, keys_table, settings.record_retention);
    Ok(IngestService {
        records: Arc::new(records),
        datasources: Arc::new(datasources),
        clock: Arc::new(SystemClock),
        daily_cap: settings.ingest_daily_cap,
    })
}
