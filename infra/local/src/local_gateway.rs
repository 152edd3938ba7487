//! The local API's side of API Gateway: there is none. Requests are throttled by key id
//! ([`crate::rate_limit`]) and counted by the verification counts, as deployed; no gateway key is
//! made, moved or deleted, and no pool is filled.

use latchkey::gateway::{GatewayError, GatewayKeys};
use latchkey::{GatewayKey, TierName};

#[derive(Debug, Clone, Copy, Default)]
pub struct LocalGateway;

impl GatewayKeys for LocalGateway {
    async fn issue(&self, _: &str, _: &TierName) -> Result<Option<GatewayKey>, GatewayError> {
        Ok(None)
    }

    async fn change_tier(&self, _: &GatewayKey, _: &TierName, _: &TierName) -> Result<(), GatewayError> {
        Ok(())
    }

    async fn delete(&self, _: &GatewayKey) -> Result<(), GatewayError> {
        Ok(())
    }
}
