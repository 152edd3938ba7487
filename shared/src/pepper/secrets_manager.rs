//! The pepper in AWS Secrets Manager: `AWSCURRENT` hashes, `AWSPREVIOUS` still verifies. The
//! session signing secret is read from there the same way.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;

use super::{Pepper, PepperError, PepperProvider, PepperSet};
use zeroize::Zeroizing;

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
        let Some(value) = read_secret(&self.client, &self.secret_id, stage).await? else { return Ok(None) };
        let version = PepperVersion::new(value.version_id.as_deref().unwrap_or(stage));
        Pepper::new(value.bytes.to_vec(), version, &self.secret_id).map(Some)
    }
}

/// A secret's bytes (its string, or its binary) and version id.
pub struct SecretValue {
    pub bytes: Zeroizing<Vec<u8>>,
    pub version_id: Option<String>,
}

/// Reads one stage (`AWSCURRENT`, `AWSPREVIOUS`) of a secret; `None` when it has no such stage.
pub async fn read_secret(client: &Client, secret_id: &str, stage: &str) -> Result<Option<SecretValue>, PepperError> {
    let result = client.get_secret_value().secret_id(secret_id).version_stage(stage).send().await;
    let output = match result {
        Ok(output) => output,
        Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
            return Ok(None);
        }
        Err(error) => {
            let cause = DisplayErrorContext(&error).to_string();
            return Err(PepperError::Unavailable { secret: secret_id.to_owned(), cause });
        }
    };
    let bytes = match (output.secret_string(), output.secret_binary()) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(blob)) => blob.as_ref().to_vec(),
        (None, None) => return Ok(None),
    };
    Ok(Some(SecretValue { bytes: Zeroizing::new(bytes), version_id: output.version_id().map(str::to_owned) }))
}

impl PepperProvider for SecretsManagerPepper {
    async fn load(&self) -> Result<PepperSet, PepperError> {
        let (current, previous) = tokio::join!(self.current(), self.fetch("AWSPREVIOUS"));
        Ok(PepperSet::new(&current?, previous?.as_ref()))
    }

    async fn load_current(&self) -> Result<PepperSet, PepperError> {
        Ok(PepperSet::current_only(&self.current().await?))
    }
}

impl SecretsManagerPepper {
    async fn current(&self) -> Result<Pepper, PepperError> {
        self.fetch("AWSCURRENT").await?.ok_or_else(|| PepperError::Missing { secret: self.secret_id.clone() })
    }
}

/// The secret dashboard sessions are signed with ([`crate::session::SessionSigner::refreshing`]):
/// its `AWSCURRENT`.
#[derive(Debug, Clone)]
pub struct SecretsManagerSigningSecret {
    client: Client,
    secret_id: String,
}

impl SecretsManagerSigningSecret {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self { client, secret_id: secret_id.into() }
    }
}

impl crate::session::SigningSecret for SecretsManagerSigningSecret {
    fn current(&self) -> crate::session::SecretRead<'_> {
        Box::pin(async move {
            let value = read_secret(&self.client, &self.secret_id, "AWSCURRENT")
                .await?
                .ok_or_else(|| PepperError::Missing { secret: self.secret_id.clone() })?;
            Ok(value.bytes)
        })
    }

    fn name(&self) -> &str {
        &self.secret_id
    }
}
