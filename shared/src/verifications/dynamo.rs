//! [`VerificationStore`] on DynamoDB, in the records table (it has a sort key, and its write
//! volume is the counters' kind):
//! - `pk = "verif#<tenant>#<key id>"`, `sk = <hour>`: a key's hours, read with one `Query`;
//! - `pk = "verif#<tenant>"`, `sk = "<hour>#<key id>"`: the same counts for the tenant's overview
//!   (its totals and top keys), read with one `Query` of the range;
//! - `pk = "refusals#<tenant>#<key id>"`, `sk = "<time>#<n>"`: one refusal each (`refusal`, JSON),
//!   read newest first with one `Query` of [`REFUSALS_KEPT`]; older ones expire with their `ttl`;
//! - `pk = "verif-unknown"`, `sk = <hour>`: the deployment's unknown and malformed counts (a
//!   tenant id has no `#` and is not `verif-unknown`'s shape, so none of these meet a tenant's).
//!
//! A key-hour is one `TransactWriteItems` of two `UpdateItem ... ADD`, so both views always hold
//! the same counts. Each item carries `ttl`, the hour plus [`RETENTION_DAYS`]. Hours are
//! RFC 3339 (`2026-12-05T10:00:00Z`), which sort as time.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

use super::{
    KeyHour, Outcome, OutcomeCounts, REFUSAL_RETENTION_DAYS, REFUSALS_KEPT, RETENTION_DAYS, Refusal, UnknownCounts,
    VerificationStore,
};
use crate::store::StoreError;
use crate::store::schema::{PARTITION_KEY, RECORDS_SORT_KEY, TTL_ATTRIBUTE};
use crate::{KeyId, TenantId};

type Item = HashMap<String, AttributeValue>;

const UNKNOWN_PARTITION: &str = "verif-unknown";

pub fn key_partition(tenant: &TenantId, key: &KeyId) -> String {
    format!("verif#{tenant}#{key}")
}

pub fn tenant_partition(tenant: &TenantId) -> String {
    format!("verif#{tenant}")
}

pub fn refusals_partition(tenant: &TenantId, key: &KeyId) -> String {
    format!("refusals#{tenant}#{key}")
}

fn hour_text(hour: DateTime<Utc>) -> String {
    hour.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn unavailable(error: impl std::error::Error + 'static) -> StoreError {
    StoreError::Unavailable(DisplayErrorContext(&error).to_string())
}

#[derive(Debug, Clone)]
pub struct DynamoVerificationStore {
    client: Client,
    table: Arc<str>,
}

impl DynamoVerificationStore {
    /// `table`: the records table (`LATCHKEY_RECORDS_TABLE`).
    pub fn new(client: Client, table: impl Into<Arc<str>>) -> Self {
        Self { client, table: table.into() }
    }

    /// `ADD valid :valid, ... SET ttl = :ttl` of the outcomes with a count.
    fn addition(
        &self,
        pk: String,
        sk: String,
        counts: &OutcomeCounts,
        hour: DateTime<Utc>,
    ) -> Result<Update, StoreError> {
        let mut adds = Vec::new();
        let mut update = Update::builder()
            .table_name(&*self.table)
            .key(PARTITION_KEY, AttributeValue::S(pk))
            .key(RECORDS_SORT_KEY, AttributeValue::S(sk))
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":ttl", AttributeValue::N(expiry(hour)));
        for outcome in Outcome::ALL {
            let n = counts.get(outcome);
            if n > 0 {
                // Names through placeholders: some (`unknown`, ...) are DynamoDB reserved words.
                adds.push(format!("#{0} :{0}", outcome.name()));
                update = update
                    .expression_attribute_names(format!("#{}", outcome.name()), outcome.name())
                    .expression_attribute_values(format!(":{}", outcome.name()), AttributeValue::N(n.to_string()));
            }
        }
        update
            .update_expression(format!("ADD {} SET #ttl = :ttl", adds.join(", ")))
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Every item of `pk` with `from <= sk <= to`, across pages.
    async fn query(&self, pk: String, from: String, to: String) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&*self.table)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
                .expression_attribute_names("#pk", PARTITION_KEY)
                .expression_attribute_names("#sk", RECORDS_SORT_KEY)
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .expression_attribute_values(":from", AttributeValue::S(from.clone()))
                .expression_attribute_values(":to", AttributeValue::S(to.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }
}

fn expiry(hour: DateTime<Utc>) -> String {
    (hour + TimeDelta::days(RETENTION_DAYS)).timestamp().to_string()
}

fn counts_of(item: &Item) -> OutcomeCounts {
    let mut counts = OutcomeCounts::default();
    for outcome in Outcome::ALL {
        let n = item.get(outcome.name()).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0);
        counts.add(outcome, n);
    }
    counts
}

fn sort_key(item: &Item) -> Result<&str, StoreError> {
    item.get(RECORDS_SORT_KEY)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::Corrupt("a verification item without its sort key".into()))
}

fn parse_hour(text: &str) -> Result<DateTime<Utc>, StoreError> {
    text.parse().map_err(|e| StoreError::Corrupt(format!("an hour `{text}`: {e}")))
}

impl VerificationStore for DynamoVerificationStore {
    async fn add_key_hour(&self, hour: &KeyHour) -> Result<(), StoreError> {
        let at = hour_text(hour.hour);
        let by_key = self.addition(key_partition(&hour.tenant, &hour.key), at.clone(), &hour.counts, hour.hour)?;
        let by_tenant =
            self.addition(tenant_partition(&hour.tenant), format!("{at}#{}", hour.key), &hour.counts, hour.hour)?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(by_key).build())
            .transact_items(TransactWriteItem::builder().update(by_tenant).build())
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn add_unknown(&self, hour: DateTime<Utc>, counts: UnknownCounts) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&*self.table)
            .key(PARTITION_KEY, AttributeValue::S(UNKNOWN_PARTITION.into()))
            .key(RECORDS_SORT_KEY, AttributeValue::S(hour_text(hour)))
            .update_expression("ADD #unknown :unknown, #malformed :malformed SET #ttl = :ttl")
            .expression_attribute_names("#unknown", "unknown")
            .expression_attribute_names("#malformed", "malformed")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":unknown", AttributeValue::N(counts.unknown.to_string()))
            .expression_attribute_values(":malformed", AttributeValue::N(counts.malformed.to_string()))
            .expression_attribute_values(":ttl", AttributeValue::N(expiry(hour)))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn add_refusals(&self, tenant: &TenantId, key: &KeyId, refusals: &[Refusal]) -> Result<(), StoreError> {
        let pk = refusals_partition(tenant, key);
        for (n, refusal) in refusals.iter().enumerate() {
            let json = serde_json::to_string(refusal).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            // `n` keeps refusals of the same microsecond apart, in the order noted.
            let sk = format!("{}#{n:02}", refusal.at.to_rfc3339_opts(SecondsFormat::Micros, true));
            let expires = (refusal.at + TimeDelta::days(REFUSAL_RETENTION_DAYS)).timestamp();
            self.client
                .put_item()
                .table_name(&*self.table)
                .item(PARTITION_KEY, AttributeValue::S(pk.clone()))
                .item(RECORDS_SORT_KEY, AttributeValue::S(sk))
                .item("refusal", AttributeValue::S(json))
                .item(TTL_ATTRIBUTE, AttributeValue::N(expires.to_string()))
                .send()
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn refusals(&self, tenant: &TenantId, key: &KeyId) -> Result<Vec<Refusal>, StoreError> {
        let page = self
            .client
            .query()
            .table_name(&*self.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_values(":pk", AttributeValue::S(refusals_partition(tenant, key)))
            .scan_index_forward(false)
            .limit(REFUSALS_KEPT as i32)
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        page.items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let json = item
                    .get("refusal")
                    .and_then(|v| v.as_s().ok())
                    .ok_or_else(|| StoreError::Corrupt("a refusal item without its refusal".into()))?;
                serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    async fn key_hours(
        &self,
        tenant: &TenantId,
        key: &KeyId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, OutcomeCounts)>, StoreError> {
        let items = self.query(key_partition(tenant, key), hour_text(since), hour_text(until)).await?;
        let mut hours = Vec::with_capacity(items.len());
        for item in &items {
            let hour = parse_hour(sort_key(item)?)?;
            if hour < until {
                hours.push((hour, counts_of(item)));
            }
        }
        Ok(hours)
    }

    async fn tenant_hours(
        &self,
        tenant: &TenantId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<KeyHour>, StoreError> {
        // `<until>#…` sorts after `<until>`: the range ends before the until hour's items.
        let items = self.query(tenant_partition(tenant), hour_text(since), hour_text(until)).await?;
        let mut hours = Vec::with_capacity(items.len());
        for item in &items {
            let sk = sort_key(item)?;
            let (at, key) = sk.split_once('#').ok_or_else(|| StoreError::Corrupt(format!("a verification `{sk}`")))?;
            let key = key.parse().map_err(|_| StoreError::Corrupt(format!("a key id `{key}`")))?;
            hours.push(KeyHour { tenant: tenant.clone(), key, hour: parse_hour(at)?, counts: counts_of(item) });
        }
        Ok(hours)
    }
}
