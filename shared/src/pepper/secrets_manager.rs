//! The pepper in AWS Secrets Manager: `AWSCURRENT` hashes, `AWSPREVIOUS` still verifies.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;

use super::{Pepper, PepperError, PepperProvider, PepperSet};
use crate::PepperVersion;

#[derive(Debug, Clone)]
pub struct SecretsManagerPepper {
    client: Client,
    secret_id: String,
}

impl SecretsManagerPepper {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self { client, secret_id: secret_id.into() }
    }

    /// One stage of the secret; `None` when that stage does not exist (no rotation yet).
    async fn fetch(&self, stage: &str) -> Result<Option<Pepper>, PepperError> {
        let result = self.client.get_secret_value().secret_id(&self.secret_id).version_stage(stage).send().await;
        let output = match result {
            Ok(output) => output,
            Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
                return Ok(None);
            }
            Err(error) => {
                let cause = DisplayErrorContext(&error).to_string();
                return Err(PepperError::Unavailable { secret: self.secret_id.clone(), cause });
            }
        };
        let bytes = match (output.secret_string(), output.secret_binary()) {
            (Some(text), _) => text.as_bytes().to_vec(),
            (None, Some(blob)) => blob.as_ref().to_vec(),
            (None, None) => return Ok(None),
        };
        let version = PepperVersion::new(output.version_id().unwrap_or(stage));
        Pepper::new(bytes, version, &self.secret_id).map(Some)
    }
}

impl PepperProvider for SecretsManagerPepper {
    async fn load(&self) -> Result<PepperSet, PepperError> {
        let (current, previous) = tokio::join!(self.fetch("AWSCURRENT"), self.fetch("AWSPREVIOUS"));
        let current = current?.ok_or_else(|| PepperError::Missing { secret: self.secret_id.clone() })?;
        Ok(PepperSet::new(&current, previous?.as_ref()))
    }
}
