//! Requests per key per day, counted by the local API where the deployed stack has its usage
//! plans' counts, so `GET /keys/{id}/usage` (and the dashboard's chart) shows what this process
//! let through. Kept in memory: a restart starts from zero. Locally a key's "gateway key" is its
//! own id: nothing is created anywhere, it only names what is counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use latchkey::gateway::{DailyUsage, GatewayError, GatewayKeys};
use latchkey::{GatewayKey, TierName};

/// Counts by UTC day, then key id.
#[derive(Debug, Default)]
pub struct LocalUsage {
    counts: Mutex<HashMap<NaiveDate, HashMap<String, u64>>>,
}

impl LocalUsage {
    /// One request of `key_id` let through on `day`. On every request's path: a key already
    /// counted today costs a lookup, no allocation.
    pub fn count(&self, key_id: &str, day: NaiveDate) {
        let mut counts = self.counts.lock().expect("usage lock");
        let today = counts.entry(day).or_default();
        match today.get_mut(key_id) {
            Some(count) => *count += 1,
            None => drop(today.insert(key_id.to_owned(), 1)),
        }
    }

    fn days(&self, key_id: &str, from: NaiveDate, to: NaiveDate) -> Vec<DailyUsage> {
        let counts = self.counts.lock().expect("usage lock");
        from.iter_days()
            .take_while(|day| *day <= to)
            .map(|date| DailyUsage {
                date,
                requests: counts.get(&date).and_then(|keys| keys.get(key_id)).copied().unwrap_or(0),
            })
            .collect()
    }
}

/// The local API's side of a key's gateway life: nothing to create, move or delete; usage from
/// [`LocalUsage`].
#[derive(Debug, Clone)]
pub struct LocalGateway(pub Arc<LocalUsage>);

impl GatewayKeys for LocalGateway {
    async fn issue(&self, name: &str, _: &TierName) -> Result<Option<GatewayKey>, GatewayError> {
        Ok(Some(GatewayKey { id: name.to_owned(), value: name.to_owned() }))
    }

    async fn change_tier(&self, _: &GatewayKey, _: &TierName, _: &TierName) -> Result<(), GatewayError> {
        Ok(())
    }

    async fn delete(&self, _: &GatewayKey) -> Result<(), GatewayError> {
        Ok(())
    }

    async fn usage(
        &self,
        key: &GatewayKey,
        _: &TierName,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyUsage>, GatewayError> {
        Ok(self.0.days(&key.id, from, to))
    }
}
