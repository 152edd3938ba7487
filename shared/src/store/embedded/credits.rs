//! [`CreditStore`] in the redb file: meter → the balance as JSON. A spend is one write
//! transaction, which redb serializes: exact however many requests race.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{EmbeddedKeyStore, unavailable};
use crate::KeyId;
use crate::credits::{CreditBalance, CreditStore, Spend};
use crate::store::StoreError;

const BALANCES: TableDefinition<&str, &str> = TableDefinition::new("credits_by_meter");

fn corrupt(error: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("a balance of credits: {error}"))
}

impl CreditStore for EmbeddedKeyStore {
    async fn set_credits(&self, meter: &KeyId, balance: Option<&CreditBalance>) -> Result<(), StoreError> {
        let json = balance.map(serde_json::to_string).transpose().map_err(corrupt)?;
        let meter = meter.to_string();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut table = txn.open_table(BALANCES).map_err(unavailable)?;
                match &json {
                    Some(json) => drop(table.insert(meter.as_str(), json.as_str()).map_err(unavailable)?),
                    None => drop(table.remove(meter.as_str()).map_err(unavailable)?),
                }
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn credits(&self, meter: &KeyId) -> Result<Option<CreditBalance>, StoreError> {
        let meter = meter.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = match txn.open_table(BALANCES) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(error) => return Err(unavailable(error)),
            };
            let found = table.get(meter.as_str()).map_err(unavailable)?;
            found.map(|json| serde_json::from_str(json.value()).map_err(corrupt)).transpose()
        })
        .await
    }

    async fn spend_credit(&self, meter: &KeyId, now: DateTime<Utc>) -> Result<Option<Spend>, StoreError> {
        let meter = meter.to_string();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let spend = {
                let mut table = txn.open_table(BALANCES).map_err(unavailable)?;
                let stored = table.get(meter.as_str()).map_err(unavailable)?.map(|json| json.value().to_owned());
                let Some(json) = stored else { return Ok(None) };
                let balance: CreditBalance = serde_json::from_str(&json).map_err(corrupt)?;
                let spend = balance.spend(now);
                if let Spend::Spent(after) = &spend {
                    let json = serde_json::to_string(after).map_err(corrupt)?;
                    table.insert(meter.as_str(), json.as_str()).map_err(unavailable)?;
                }
                spend
            };
            txn.commit().map_err(unavailable)?;
            Ok(Some(spend))
        })
        .await
    }
}
