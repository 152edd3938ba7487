//! API Gateway API keys: how a tier's usage plan throttles a request.
//!
//! API Gateway throttles and counts by the gateway key the authorizer names
//! (`usageIdentifierKey`), a random value of API Gateway's in a tier's usage plan (our prefixed
//! keys are not valid gateway key values). It allows 10,000 API keys per account and region, a
//! quota AWS does not raise, and `CreateApiKey` 5 times a second. So Latchkey keys do not get one
//! each: they lease one from their tier's pool while they are in use ([`pool`]); the pools are
//! what this module creates, and what keys made before the pool still hold (deleted once such a
//! key stops verifying).

use std::future::Future;

use crate::{ApiError, GatewayKey, TierName};

#[cfg(feature = "gateway")]
pub mod apigateway;
pub mod pool;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The account's API key limit in this region is reached.
    #[error("the API Gateway API key limit of this account and region is reached")]
    LimitReached,
    /// The deployment maps no usage plan to this tier: a configuration error.
    #[error("no usage plan is configured for tier `{0}`")]
    NoUsagePlan(String),
    /// More than one usage plan has the name a tier's plan is looked up by.
    #[error("{count} usage plans are named `{name}`")]
    AmbiguousUsagePlan { name: String, count: usize },
    #[error("API Gateway is unavailable: {0}")]
    Unavailable(String),
}

impl From<GatewayError> for ApiError {
    fn from(error: GatewayError) -> Self {
        match error {
            GatewayError::LimitReached => ApiError::KeyLimitReached,
            GatewayError::NoUsagePlan(tier) => {
                tracing::error!(%tier, "tier has no usage plan");
                ApiError::Internal
            }
            GatewayError::AmbiguousUsagePlan { name, count } => {
                tracing::error!(%name, count, "usage plan name is not unique");
                ApiError::Internal
            }
            GatewayError::Unavailable(cause) => {
                tracing::error!(%cause, "API Gateway unavailable");
                ApiError::ServiceUnavailable
            }
        }
    }
}

/// The gateway side of a key's life. Implementations make each call all or nothing.
pub trait GatewayKeys: Send + Sync {
    /// Creates an enabled gateway key named `name` in `tier`'s usage plan. `None` where there is
    /// no usage plan identity to make. If attaching to the plan fails, the created key is deleted.
    fn issue(
        &self,
        name: &str,
        tier: &TierName,
    ) -> impl Future<Output = Result<Option<GatewayKey>, GatewayError>> + Send;

    /// Moves the key from one tier's usage plan to another's.
    fn change_tier(
        &self,
        key: &GatewayKey,
        from: &TierName,
        to: &TierName,
    ) -> impl Future<Output = Result<(), GatewayError>> + Send;

    /// Deletes the key (and with it its place in its usage plan): a key's own from before the
    /// pool once its Latchkey key can no longer verify, or a pool's that another filler beat.
    /// Idempotent.
    fn delete(&self, key: &GatewayKey) -> impl Future<Output = Result<(), GatewayError>> + Send;
}
