//! Which pooled API Gateway key a request is throttled under ([`latchkey::gateway::pool`]).
//!
//! A key verified without a current lease of its tier claims one (a conditional write per probe)
//! and notes it on its record, so every other instance reads it with the record and writes
//! nothing; a key still holding today's lease costs nothing. A key made before the pool keeps its
//! own gateway key until it stops. The pools' sizes are read once a minute per instance: a pool
//! only grows, so a stale size only leaves the newest slots out for that minute.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};
use latchkey::gateway::pool::{self, GatewaySlots, Lease};
use latchkey::store::StoreError;
use latchkey::{KeyRecord, TierName};

/// How long a pool's size is believed.
pub const SIZE_REFRESH: TimeDelta = TimeDelta::minutes(1);

#[derive(Debug, Default)]
pub struct Leases {
    sizes: Mutex<HashMap<TierName, (u32, DateTime<Utc>)>>,
}

impl Leases {
    /// The lease `record` should be given at `now`: `None` when it needs none (a key of its own
    /// from before the pool, or today's lease already noted), or when its tier's pool is empty.
    pub async fn needed<S: GatewaySlots>(
        &self,
        slots: &S,
        record: &KeyRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<Lease>, StoreError> {
        if record.gateway_key.is_some() || record.lease.as_ref().is_some_and(|lease| lease.serves(&record.tier, now)) {
            return Ok(None);
        }
        let size = self.size(slots, &record.tier, now).await?;
        let leased = pool::lease(slots, &record.tier, size, &record.id, now).await?;
        if leased.is_none() {
            // API Gateway refuses a request without a usage plan key (403): this is a deployment
            // whose pool was never filled (keys-sweep fills it; keys-issue makes the first slot).
            tracing::error!(tier = %record.tier, key_id = %record.id, "the tier's gateway key pool is empty");
        }
        Ok(leased)
    }

    async fn size<S: GatewaySlots>(&self, slots: &S, tier: &TierName, now: DateTime<Utc>) -> Result<u32, StoreError> {
        let known = self.sizes.lock().expect("pool sizes lock").get(tier).copied();
        if let Some((size, read_at)) = known
            && now - read_at < SIZE_REFRESH
            && size > 0
        {
            return Ok(size);
        }
        let size = slots.pool_size(tier).await?;
        self.sizes.lock().expect("pool sizes lock").insert(tier.clone(), (size, now));
        Ok(size)
    }
}
