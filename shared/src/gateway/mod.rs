//! API Gateway API keys: how a tier's usage plan throttles one Latchkey key.
//!
//! Each Latchkey key gets an API Gateway key of its own (a random value of API Gateway's; our
//! prefixed keys are not valid gateway key values) in its tier's usage plan; the authorizer
//! returns that value as `usageIdentifierKey`. API Gateway allows 10,000 API keys per account and
//! region, a quota AWS does not raise; past that, creating a key fails with
//! [`GatewayError::LimitReached`] and nothing is created. So a gateway key lives only as long as
//! its Latchkey key can verify (deleted on revocation, at the end of a rotation's grace, once
//! expired), and each tenant holds a bounded number (`LATCHKEY_MAX_KEYS_PER_TENANT`).

use std::future::Future;

use chrono::NaiveDate;
use serde::Serialize;

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

/// Requests counted by a usage plan for one key on one day (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyUsage {
    pub date: NaiveDate,
    pub requests: u64,
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

    /// Deletes the key (and with it its place in its usage plan): when its Latchkey key can no
    /// longer verify, or to undo [`GatewayKeys::issue`] when the rest of a create fails.
    /// Idempotent.
    fn delete(&self, key: &GatewayKey) -> impl Future<Output = Result<(), GatewayError>> + Send;

    /// Requests per day, `from` to `to` inclusive, as counted by `tier`'s usage plan.
    fn usage(
        &self,
        key: &GatewayKey,
        tier: &TierName,
        from: NaiveDate,
        to: NaiveDate,
    ) -> impl Future<Output = Result<Vec<DailyUsage>, GatewayError>> + Send;
}
