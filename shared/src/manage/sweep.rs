//! The scheduled sweep (`keys-sweep`, every 15 minutes in the deployed stack): every key that has
//! stopped verifying (revoked, expired, past its rotation's grace) and is not yet retired has its
//! API Gateway key deleted and its place in its tenant's count given back, within one period of
//! stopping. Revocation and a rotation without grace do this at once; the sweep is what reaches
//! the keys that stop by the clock alone, which no request ever touches again. (The sweep of a
//! tenant at its limit, in `issue`, stays: it is the same retirement, run on demand.)

use serde::Serialize;

use super::KeyService;
use crate::audit::AuditLog;
use crate::gateway::GatewayKeys;
use crate::store::KeyStore;
use crate::{ApiError, KeyRecord};

/// Keys read from the store's index per page.
const PAGE: u32 = 100;
/// Keys one run looks at, at most: API Gateway's control plane is rate limited per account,
/// and the function's timeout bounds a run. What is left waits for the next run.
pub const MAX_KEYS_PER_SWEEP: usize = 1000;

/// What one run did: `retired` keys lost their gateway key and their place; `left` were not
/// retired (a failure, logged, tried again by the next run; or retired meanwhile by a request).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Swept {
    pub retired: usize,
    pub left: usize,
}

impl<S: KeyStore + AuditLog, G: GatewayKeys> KeyService<S, G> {
    /// Retires the keys that have stopped by now, oldest stop first, at most `budget` of them.
    /// A store that cannot be read fails the run (the schedule runs it again).
    pub async fn sweep_stopped(&self, budget: usize) -> Result<Swept, ApiError> {
        let now = self.clock.now();
        let mut swept = Swept::default();
        let mut after: Option<KeyRecord> = None;
        while swept.retired + swept.left < budget {
            let room = (budget - swept.retired - swept.left).min(PAGE as usize) as u32;
            let page = self.store.stopped(now, room, after.as_ref()).await?;
            let last_page = page.len() < room as usize;
            for record in &page {
                if self.retire_if_dead(record, now).await {
                    swept.retired += 1;
                } else {
                    swept.left += 1;
                }
            }
            // Paged by position, not from the start again: a key that failed stays in the index
            // and must not be read over and over in one run.
            match page.into_iter().last() {
                Some(last) if !last_page => after = Some(last),
                _ => break,
            }
        }
        Ok(swept)
    }
}
