//! [`RecordStore`] on DynamoDB: the records table of [`crate::store::schema`].
//!
//! Each record is one conditional `PutItem` (`attribute_not_exists`), up to
//! [`WRITES_IN_FLIGHT`] at a time. `BatchWriteItem` would take 25 records a call but cannot be
//! conditional, and the condition is what turns a retry into a reported duplicate instead of a
//! second copy. Throttling and transient faults are retried by the SDK (exponential backoff with
//! jitter, `LATCHKEY_AWS_MAX_ATTEMPTS` attempts); a record still not written is `Failed`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, ReturnValuesOnConditionCheckFailure, WriteRequest};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use rand::TryRngCore;
use serde_json::value::RawValue;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::page::RecordPage;
use super::{
    DEFAULT_RECORD_TTL_DAYS, NewRecord, PutOutcome, RecordStore, RecordsDeleted, SHARDS, Sequence, StoredRecord,
};
use crate::DatasourceId;
use crate::store::schema::{self, RECORDS_SEQUENCE_INDEX, RECORDS_SEQUENCE_KEY, record_sk, records_pk};
use crate::store::{Cursor, Page, StoreError};

/// Conditional writes of one request in flight at once.
pub const WRITES_IN_FLIGHT: usize = 32;

type Item = HashMap<String, AttributeValue>;

#[derive(Debug, Clone)]
pub struct DynamoRecordStore {
    client: Client,
    table: Arc<str>,
    /// Written as each record's `ttl`, from its receive time.
    retention: TimeDelta,
}

impl DynamoRecordStore {
    /// Records kept [`DEFAULT_RECORD_TTL_DAYS`].
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let retention = TimeDelta::days(DEFAULT_RECORD_TTL_DAYS as i64);
        Self { client, table: table.into().into(), retention }
    }

    /// `LATCHKEY_RECORD_TTL_DAYS`.
    pub fn with_retention(mut self, retention: TimeDelta) -> Self {
        self.retention = retention;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// One read, to open the connection during the cold start rather than on the first request.
    pub async fn warm_up(&self) -> Result<(), StoreError> {
        let key = HashMap::from([
            (schema::PARTITION_KEY.to_owned(), AttributeValue::S("warm-up".into())),
            (schema::RECORDS_SORT_KEY.to_owned(), AttributeValue::S("warm-up".into())),
        ]);
        let read = self.client.get_item().table_name(&*self.table).set_key(Some(key)).send().await;
        read.map(drop).map_err(|e| StoreError::Unavailable(DisplayErrorContext(&e).to_string()))
    }
}

fn item(datasource: &DatasourceId, record: &NewRecord, retention: TimeDelta) -> Item {
    let sequence = &record.sequence;
    let ttl = (sequence.received_at() + retention).timestamp();
    HashMap::from([
        (schema::TTL_ATTRIBUTE.to_owned(), AttributeValue::N(ttl.to_string())),
        (schema::PARTITION_KEY.to_owned(), AttributeValue::S(records_pk(datasource, record.identity.shard()))),
        (schema::RECORDS_SORT_KEY.to_owned(), AttributeValue::S(record_sk(&record.identity.digest))),
        (RECORDS_SEQUENCE_KEY.to_owned(), AttributeValue::S(sequence.to_string())),
        ("id".to_owned(), AttributeValue::S(record.identity.id.clone())),
        ("received_at".to_owned(), AttributeValue::S(crate::error::format_time(sequence.received_at()))),
        ("data".to_owned(), AttributeValue::S(record.data.get().to_owned())),
    ])
}

async fn put_one(client: Client, table: Arc<str>, item: Item) -> PutOutcome {
    let sequence = item.get(RECORDS_SEQUENCE_KEY).cloned();
    let result = client
        .put_item()
        .table_name(&*table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(#pk)")
        .expression_attribute_names("#pk", schema::PARTITION_KEY)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
    match result {
        Ok(_) => PutOutcome::Stored,
        Err(error) => match error.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                // The same sequence means the item is this very write, from an attempt whose
                // answer was lost and which the SDK retried: stored now, not a duplicate.
                let existing = failed.item().and_then(|item| item.get(RECORDS_SEQUENCE_KEY));
                if existing.is_some() && existing == sequence.as_ref() {
                    PutOutcome::Stored
                } else {
                    PutOutcome::Duplicate
                }
            }
            _ => PutOutcome::Failed(DisplayErrorContext(&error).to_string()),
        },
    }
}

fn stored_record(item: &Item) -> Result<StoredRecord, StoreError> {
    let text = |name: &str| {
        item.get(name)
            .and_then(|value| value.as_s().ok())
            .ok_or_else(|| StoreError::Corrupt(format!("a record item lacks `{name}`")))
    };
    let sequence: Sequence =
        text(RECORDS_SEQUENCE_KEY)?.parse().map_err(|_| StoreError::Corrupt("bad sequence".into()))?;
    let data = RawValue::from_string(text("data")?.clone()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(StoredRecord { id: text("id")?.clone(), received_at: sequence.received_at(), sequence, data })
}

impl RecordStore for DynamoRecordStore {
    async fn put(&self, datasource: &DatasourceId, records: &[NewRecord]) -> Vec<PutOutcome> {
        let permits = Arc::new(Semaphore::new(WRITES_IN_FLIGHT));
        let mut writes = JoinSet::new();
        for (index, record) in records.iter().enumerate() {
            let (client, table, item, permits) = (
                self.client.clone(),
                Arc::clone(&self.table),
                item(datasource, record, self.retention),
                Arc::clone(&permits),
            );
            writes.spawn(async move {
                let _permit = permits.acquire_owned().await.expect("the semaphore is never closed");
                (index, put_one(client, table, item).await)
            });
        }
        let mut outcomes = vec![PutOutcome::Failed("not attempted".into()); records.len()];
        while let Some(joined) = writes.join_next().await {
            match joined {
                Ok((index, outcome)) => outcomes[index] = outcome,
                // A panicked write leaves its record `Failed`: reported, never assumed stored.
                Err(error) => tracing::error!(%error, "a record write task failed"),
            }
        }
        outcomes
    }

    async fn list(
        &self,
        datasource: &DatasourceId,
        since: Option<DateTime<Utc>>,
        limit: u32,
        after: Option<&Cursor<Sequence>>,
    ) -> Result<Page<StoredRecord>, StoreError> {
        // Strictly after the cursor, or at or after `since`, whichever is later.
        let floor = since.map(Sequence::floor);
        let (condition, from) = match (after.map(Cursor::id), floor) {
            (Some(after), Some(floor)) if floor > *after => ("#pk = :pk AND #seq >= :from", Some(floor)),
            (Some(after), _) => ("#pk = :pk AND #seq > :from", Some(after.clone())),
            (None, Some(floor)) => ("#pk = :pk AND #seq >= :from", Some(floor)),
            (None, None) => ("#pk = :pk", None),
        };
        let mut shards: Vec<ShardReader> =
            (0..SHARDS).map(|shard| ShardReader::new(records_pk(datasource, shard))).collect();
        let mut page = RecordPage::new(limit);
        // A k-way merge by sequence. A query stops at 1 MB, so a shard of large records gives a
        // few at a time: a shard whose buffer runs dry is read on from its `LastEvaluatedKey`
        // before the next record is chosen, or its unread records would be skipped.
        loop {
            let dry: Vec<usize> = (0..shards.len()).filter(|&i| shards[i].needs_read()).collect();
            if !dry.is_empty() {
                let mut queries = JoinSet::new();
                for i in dry {
                    let query = self.shard_query(&shards[i], condition, from.as_ref(), page.wanted());
                    queries.spawn(async move { (i, query.send().await) });
                }
                while let Some(joined) = queries.join_next().await {
                    let (i, output) = joined.map_err(|e| StoreError::Unavailable(e.to_string()))?;
                    let output = output.map_err(|e| StoreError::Unavailable(DisplayErrorContext(&e).to_string()))?;
                    shards[i].take(output.items(), output.last_evaluated_key.clone())?;
                }
                continue;
            }
            let next = shards
                .iter()
                .enumerate()
                .filter_map(|(i, shard)| shard.buffered.front().map(|record| (i, &record.sequence)))
                .min_by(|a, b| a.1.cmp(b.1))
                .map(|(i, _)| i);
            let Some(i) = next else { return Ok(page.finish(false)) };
            let record = shards[i].buffered.pop_front().expect("chosen for its first record");
            if !page.offer(record) {
                return Ok(page.finish(true));
            }
        }
    }

    /// One conditional `UpdateItem` on the day's counter item (`count#DATASOURCE`, sort key the
    /// day), which expires with the table's TTL two days later. Not in `by_sequence` (it has no
    /// `seq`), so listings never see it.
    async fn count_received(
        &self,
        datasource: &DatasourceId,
        day: NaiveDate,
        records: u64,
        cap: u64,
    ) -> Result<bool, StoreError> {
        let Some(room) = cap.checked_sub(records) else {
            return Ok(false);
        };
        let expires = day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc() + TimeDelta::days(2);
        let result = self
            .client
            .update_item()
            .table_name(&*self.table)
            .key(schema::PARTITION_KEY, AttributeValue::S(schema::received_count_pk(datasource)))
            .key(schema::RECORDS_SORT_KEY, AttributeValue::S(day.to_string()))
            .update_expression("ADD received :n SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(received) OR received <= :room")
            .expression_attribute_names("#ttl", schema::TTL_ATTRIBUTE)
            .expression_attribute_values(":n", AttributeValue::N(records.to_string()))
            .expression_attribute_values(":room", AttributeValue::N(room.to_string()))
            .expression_attribute_values(":ttl", AttributeValue::N(expires.timestamp().to_string()))
            .send()
            .await;
        crate::store::dynamo::condition_held(result)
    }

    async fn delete_records(&self, datasource: &DatasourceId, budget: u32) -> Result<RecordsDeleted, StoreError> {
        let mut deleted = 0u64;
        for shard in 0..SHARDS {
            loop {
                let left = u64::from(budget).saturating_sub(deleted);
                if left == 0 {
                    return Ok(RecordsDeleted { deleted, remaining: true });
                }
                let page = self
                    .client
                    .query()
                    .table_name(&*self.table)
                    .key_condition_expression("#pk = :pk")
                    .expression_attribute_names("#pk", schema::PARTITION_KEY)
                    .expression_attribute_names("#sk", schema::RECORDS_SORT_KEY)
                    .expression_attribute_values(":pk", AttributeValue::S(records_pk(datasource, shard)))
                    .projection_expression("#pk, #sk")
                    .limit(left.min(1_000) as i32)
                    .send()
                    .await
                    .map_err(|e| StoreError::Unavailable(DisplayErrorContext(&e).to_string()))?;
                let keys = page.items.unwrap_or_default();
                if keys.is_empty() {
                    break;
                }
                for chunk in keys.chunks(25) {
                    self.delete_batch(chunk.to_vec()).await?;
                    deleted += chunk.len() as u64;
                }
            }
        }
        Ok(RecordsDeleted { deleted, remaining: false })
    }
}

/// One shard's place in a merged listing: records read and not yet taken, and where its next
/// query starts.
struct ShardReader {
    pk: String,
    buffered: VecDeque<StoredRecord>,
    /// The `LastEvaluatedKey` of its last query: more may follow from there.
    resume: Option<Item>,
    /// Queried at least once.
    started: bool,
}

impl ShardReader {
    fn new(pk: String) -> Self {
        Self { pk, buffered: VecDeque::new(), resume: None, started: false }
    }

    /// Nothing buffered, and the shard may hold more.
    fn needs_read(&self) -> bool {
        self.buffered.is_empty() && (!self.started || self.resume.is_some())
    }

    fn take(&mut self, items: &[Item], resume: Option<Item>) -> Result<(), StoreError> {
        for item in items {
            self.buffered.push_back(stored_record(item)?);
        }
        self.started = true;
        self.resume = resume;
        Ok(())
    }
}

impl DynamoRecordStore {
    /// The next query of one shard, in sequence order through `by_sequence`.
    fn shard_query(
        &self,
        shard: &ShardReader,
        condition: &'static str,
        from: Option<&Sequence>,
        wanted: usize,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let mut values = HashMap::from([(":pk".to_owned(), AttributeValue::S(shard.pk.clone()))]);
        let mut names = HashMap::from([("#pk".to_owned(), schema::PARTITION_KEY.to_owned())]);
        if let Some(from) = from {
            values.insert(":from".to_owned(), AttributeValue::S(from.to_string()));
            names.insert("#seq".to_owned(), RECORDS_SEQUENCE_KEY.to_owned());
        }
        self.client
            .query()
            .table_name(&*self.table)
            .index_name(RECORDS_SEQUENCE_INDEX)
            .key_condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .set_exclusive_start_key(shard.resume.clone())
            .consistent_read(true)
            .limit(wanted as i32)
    }
}

/// Attempts of one `BatchWriteItem` whose items come back unprocessed (throttling).
const BATCH_ATTEMPTS: u32 = 6;

impl DynamoRecordStore {
    /// Deletes up to 25 items, sending the unprocessed ones again with exponential backoff and
    /// full jitter, a bounded number of times.
    async fn delete_batch(&self, keys: Vec<Item>) -> Result<(), StoreError> {
        let mut pending: Vec<WriteRequest> = keys
            .into_iter()
            .map(|key| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<_, StoreError>>()?;
        for attempt in 0..BATCH_ATTEMPTS {
            if attempt > 0 {
                let ceiling = 50u64 << attempt.min(6);
                let jitter = rand::rngs::OsRng.try_next_u64().unwrap_or(0) % ceiling;
                tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
            }
            let output = self
                .client
                .batch_write_item()
                .request_items(self.table.to_string(), pending)
                .send()
                .await
                .map_err(|e| StoreError::Unavailable(DisplayErrorContext(&e).to_string()))?;
            pending = output.unprocessed_items.and_then(|mut left| left.remove(&*self.table)).unwrap_or_default();
            if pending.is_empty() {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(format!(
            "{} deletes still unprocessed after {BATCH_ATTEMPTS} attempts",
            pending.len()
        )))
    }
}

/// The verification counts live in the records table too ([`crate::verifications::dynamo`]): the
/// function that reads records reads them.
impl crate::verifications::VerificationStore for DynamoRecordStore {
    async fn add_key_hour(&self, hour: &crate::verifications::KeyHour) -> Result<(), StoreError> {
        self.verifications().add_key_hour(hour).await
    }

    async fn add_unknown(
        &self,
        hour: DateTime<Utc>,
        counts: crate::verifications::UnknownCounts,
    ) -> Result<(), StoreError> {
        self.verifications().add_unknown(hour, counts).await
    }

    async fn add_refusals(
        &self,
        tenant: &crate::TenantId,
        key: &crate::KeyId,
        refusals: &[crate::verifications::Refusal],
    ) -> Result<(), StoreError> {
        self.verifications().add_refusals(tenant, key, refusals).await
    }

    async fn refusals(
        &self,
        tenant: &crate::TenantId,
        key: &crate::KeyId,
    ) -> Result<Vec<crate::verifications::Refusal>, StoreError> {
        self.verifications().refusals(tenant, key).await
    }

    async fn key_hours(
        &self,
        tenant: &crate::TenantId,
        key: &crate::KeyId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, crate::verifications::OutcomeCounts)>, StoreError> {
        self.verifications().key_hours(tenant, key, since, until).await
    }

    async fn tenant_hours(
        &self,
        tenant: &crate::TenantId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<crate::verifications::KeyHour>, StoreError> {
        self.verifications().tenant_hours(tenant, since, until).await
    }
}

impl DynamoRecordStore {
    fn verifications(&self) -> crate::verifications::dynamo::DynamoVerificationStore {
        crate::verifications::dynamo::DynamoVerificationStore::new(self.client.clone(), Arc::clone(&self.table))
    }
}
