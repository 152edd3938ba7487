//! [`GatewaySlots`] in the redb file. The local API has no API Gateway and makes no pool; this is
//! the same contract as the keys table's, for the tests that hold both stores to it.

use chrono::{DateTime, Utc};
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{EmbeddedKeyStore, unavailable};
use crate::gateway::pool::{Claim, GatewaySlots, Lease};
use crate::store::StoreError;
use crate::{GatewayKey, KeyDigest, KeyId, TierName};

/// `tier#slot` (the slot zero-padded, so a tier's slots sort in order) → the slot as JSON.
const SLOTS: TableDefinition<&str, &str> = TableDefinition::new("gateway_slots");

#[derive(Serialize, Deserialize)]
struct Slot {
    value: String,
    gateway_key_id: String,
    holder: Option<KeyId>,
    lease_until: Option<DateTime<Utc>>,
}

fn slot_key(tier: &TierName, slot: u32) -> String {
    format!("{tier}#{slot:010}")
}

fn corrupt(error: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("a pool slot: {error}"))
}

impl GatewaySlots for EmbeddedKeyStore {
    async fn pool_size(&self, tier: &TierName) -> Result<u32, StoreError> {
        let (from, to) = (format!("{tier}#"), format!("{tier}$"));
        self.blocking(move |db| {
            let txn = redb::ReadableDatabase::begin_read(db).map_err(unavailable)?;
            let table = match txn.open_table(SLOTS) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
                Err(error) => return Err(unavailable(error)),
            };
            Ok(table.range(from.as_str()..to.as_str()).map_err(unavailable)?.count() as u32)
        })
        .await
    }

    async fn claim(
        &self,
        tier: &TierName,
        slot: u32,
        key: &KeyId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let (name, key) = (slot_key(tier, slot), key.clone());
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let claim = {
                let mut table = txn.open_table(SLOTS).map_err(unavailable)?;
                let stored = table.get(name.as_str()).map_err(unavailable)?.map(|json| json.value().to_owned());
                let Some(json) = stored else { return Ok(Claim::Missing) };
                let mut slot: Slot = serde_json::from_str(&json).map_err(corrupt)?;
                let free = slot.holder.as_ref().is_none_or(|holder| *holder == key)
                    || slot.lease_until.is_none_or(|ends| ends <= now);
                if !free {
                    return Ok(Claim::Held(slot.value));
                }
                slot.holder = Some(key);
                slot.lease_until = Some(until);
                table
                    .insert(name.as_str(), serde_json::to_string(&slot).map_err(corrupt)?.as_str())
                    .map_err(unavailable)?;
                Claim::Leased(slot.value)
            };
            txn.commit().map_err(unavailable)?;
            Ok(claim)
        })
        .await
    }

    async fn add_slot(&self, tier: &TierName, slot: u32, gateway_key: &GatewayKey) -> Result<bool, StoreError> {
        let (tier, gateway_key) = (tier.clone(), gateway_key.clone());
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut table = txn.open_table(SLOTS).map_err(unavailable)?;
                let (from, to) = (format!("{tier}#"), format!("{tier}$"));
                let size = table.range(from.as_str()..to.as_str()).map_err(unavailable)?.count() as u32;
                if size != slot {
                    return Ok(false);
                }
                let stored =
                    Slot { value: gateway_key.value, gateway_key_id: gateway_key.id, holder: None, lease_until: None };
                let json = serde_json::to_string(&stored).map_err(corrupt)?;
                table.insert(slot_key(&tier, slot).as_str(), json.as_str()).map_err(unavailable)?;
            }
            txn.commit().map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn note_lease(&self, digest: &KeyDigest, lease: &Lease) -> Result<(), StoreError> {
        let (digest, lease) = (*digest, lease.clone());
        self.write(move |tables| {
            let mut record = tables.record(&digest)?.ok_or(StoreError::NotFound)?;
            record.lease = Some(lease);
            tables.put_record(&record)
        })
        .await
    }

    async fn forget_own_gateway_key(&self, digest: &KeyDigest, gateway_key_id: &str) -> Result<bool, StoreError> {
        let (digest, id) = (*digest, gateway_key_id.to_owned());
        self.write(move |tables| {
            let Some(mut record) = tables.record(&digest)? else { return Ok(false) };
            if record.gateway_key.as_ref().is_none_or(|own| own.id != id) {
                return Ok(false);
            }
            record.gateway_key = None;
            tables.put_record(&record)?;
            Ok(true)
        })
        .await
    }
}
