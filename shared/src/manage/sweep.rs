//! The scheduled sweep (`keys-sweep`, every 15 minutes in the deployed stack): every key that has
//! stopped verifying (revoked, expired, past its rotation's grace) and is not yet retired has its
//! API Gateway key deleted and its place in its tenant's count given back, within one period of
//! stopping. Revocation and a rotation without grace do this at once; the sweep is what reaches
//! the keys that stop by the clock alone, which no request ever touches again. (A request whose
//! tenant is at its limit runs a slice of it first, in `issue`: the same retirement, on demand.) A key
//! that expired is announced as it is retired (`key.expired`), and one that comes within the
//! notice period of its expiry is announced once before (`key.expiring`), from the same index.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::KeyService;
use super::view::KeyView;
use crate::audit::AuditLog;
use crate::events::{KeyEvent, KeyEventType};
use crate::gateway::GatewayKeys;
use crate::gateway::pool::{FILL_PER_SWEEP, GatewaySlots, fill};
use crate::store::KeyStore;
use crate::{ApiError, KeyRecord};

/// Keys read from the store's index per page.
const PAGE: u32 = 100;
/// Keys one run looks at, at most: API Gateway's control plane is rate limited per account,
/// and the function's timeout bounds a run. What is left waits for the next run.
pub const MAX_KEYS_PER_SWEEP: usize = 1000;

/// Keys of the notice period one run reads at most, announced or not: keys already announced
/// stay in the index until they expire, so counting only announcements would let them hold
/// back the later ones forever, and counting reads alone would too once `budget` of them wait.
/// Past this many, the later keys are reached as the earlier ones expire and leave the index.
pub const MAX_KEYS_READ_PER_WARNING: usize = 10_000;

/// What one run did: `retired` keys lost their gateway key and their place; `left` were not
/// retired (a failure, logged, tried again by the next run; or retired meanwhile by a request);
/// `warned` keys were announced as expiring; `pooled` gateway keys were added to the pools.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Swept {
    pub retired: usize,
    pub left: usize,
    pub warned: usize,
    pub pooled: u32,
}

impl<S: KeyStore + GatewaySlots + AuditLog + crate::credits::CreditStore, G: GatewayKeys> KeyService<S, G> {
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
                if self.retire_stopped(record, now).await {
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

    /// One scheduled run: retires what stopped, then announces what expires within `notice`
    /// (`None`: no announcements), each at most `budget` keys, then grows the pools by at most
    /// [`FILL_PER_SWEEP`] gateway keys.
    pub async fn sweep_and_warn(&self, budget: usize, notice: Option<TimeDelta>) -> Result<Swept, ApiError> {
        let mut swept = self.sweep_stopped(budget).await?;
        if let Some(notice) = notice {
            swept.warned = self.warn_expiring(notice, budget).await?;
        }
        swept.pooled = self.fill_pools(FILL_PER_SWEEP).await;
        Ok(swept)
    }

    /// Grows every tier's pool towards [`crate::gateway::pool::Pools::target`] slots, at most
    /// `budget` new gateway keys in all, smallest pool first; how many it added. A tier that
    /// cannot be filled (API Gateway unavailable, no usage plan) is logged and left for the next
    /// run: the other tiers still fill.
    pub async fn fill_pools(&self, budget: u32) -> u32 {
        let mut sizes = Vec::new();
        for tier in self.policy.tiers.iter() {
            match self.store.pool_size(&tier.name).await {
                Ok(size) => sizes.push((size, tier.name.clone())),
                Err(error) => tracing::warn!(tier = %tier.name, %error, "pool size not read; filled next run"),
            }
        }
        sizes.sort();
        let mut added = 0;
        for (_, tier) in sizes {
            let left = budget - added;
            match fill(&*self.store, &self.gateway, &tier, self.pools.target, left).await {
                Ok(filled) => {
                    added += filled.added;
                    tracing::info!(%tier, added = filled.added, size = filled.size, target = self.pools.target, "pool filled");
                }
                Err(error) => tracing::warn!(%tier, %error, "pool not filled; tried again next run"),
            }
            if added >= budget {
                break;
            }
        }
        added
    }

    /// Sends `key.expiring` for every key that expires within `notice` from now and was not
    /// announced for that expiry yet, at most `budget` announcements and
    /// [`MAX_KEYS_READ_PER_WARNING`] keys read per run (the rest wait for the next run); how many
    /// it announced. Revoked keys and keys replaced by a rotation are not
    /// announced. The store notes each announcement before it is sent, so concurrent runs send
    /// one event per expiry; an event the sink then loses is not sent again.
    pub async fn warn_expiring(&self, notice: TimeDelta, budget: usize) -> Result<usize, ApiError> {
        let now = self.clock.now();
        let (mut warned, mut looked) = (0, 0);
        let mut after: Option<KeyRecord> = None;
        while warned < budget && looked < MAX_KEYS_READ_PER_WARNING {
            let room = PAGE;
            let page = self.store.stopped(now + notice, room, after.as_ref()).await?;
            looked += page.len();
            let last_page = page.len() < room as usize;
            for record in page.iter().filter(|record| is_to_announce(record, now)).take(budget - warned) {
                match self.store.note_expiry_warning(record).await {
                    Ok(true) => {
                        self.events.publish(KeyEvent::new(KeyEventType::Expiring, KeyView::of(record, now), now));
                        warned += 1;
                    }
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(key_id = %record.id, %error, "expiry not announced; tried again next run")
                    }
                }
            }
            match page.into_iter().last() {
                Some(last) if !last_page => after = Some(last),
                _ => break,
            }
        }
        Ok(warned)
    }
}

/// A key that still verifies, expires (not by revocation or a rotation's grace), and was not
/// announced for this expiry.
fn is_to_announce(record: &KeyRecord, now: DateTime<Utc>) -> bool {
    let expires = record.expires_at.is_some_and(|at| at > now);
    expires
        && record.revoked_at.is_none()
        && record.replaced_by.is_none()
        && record.retired_at.is_none()
        && record.expiry_warned_for != record.expires_at
}
