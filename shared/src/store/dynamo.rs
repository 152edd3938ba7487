//! The DynamoDB key store. Layout: [`super::schema`].

use std::collections::HashMap;
use std::fmt::Debug;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use chrono::{DateTime, TimeDelta, Utc};

use super::schema::{self, audit_partition, audit_pk, digest_pk, id_pk};
use super::{Cursor, KeyStore, Page, StoreError};
use crate::audit::{AuditEvent, AuditLog};
use crate::{AuditId, KeyChanges, KeyDigest, KeyId, KeyRecord, OwnerId, PepperVersion, TenantId};

mod credits;
mod datasources;
mod slots;

type Item = HashMap<String, AttributeValue>;

/// How often a read-modify-write retries after losing a race before answering `Conflict`.
const OPTIMISTIC_ATTEMPTS: usize = 3;
/// Sends of one transaction while other transactions hold its items (`TransactionConflict`).
const TRANSACTION_CONFLICT_ATTEMPTS: u32 = 5;

/// How long audit events are kept unless configured otherwise.
pub const DEFAULT_AUDIT_RETENTION: TimeDelta = TimeDelta::days(365);

#[derive(Debug, Clone)]
pub struct DynamoKeyStore {
    client: Client,
    table: String,
    retention: TimeDelta,
    audit_retention: TimeDelta,
    max_keys_per_tenant: u32,
}

impl DynamoKeyStore {
    /// `retention`: how long a dead (expired or revoked) record is kept before DynamoDB's TTL may
    /// collect it.
    pub fn new(client: Client, table: impl Into<String>, retention: TimeDelta) -> Self {
        Self {
            client,
            table: table.into(),
            retention,
            audit_retention: DEFAULT_AUDIT_RETENTION,
            max_keys_per_tenant: super::DEFAULT_MAX_KEYS_PER_TENANT,
        }
    }

    /// How many keys not yet retired one tenant may hold (`LATCHKEY_MAX_KEYS_PER_TENANT`).
    pub fn with_max_keys_per_tenant(mut self, limit: u32) -> Self {
        self.max_keys_per_tenant = limit;
        self
    }

    /// How long audit events are kept before DynamoDB's TTL may collect them.
    pub fn with_audit_retention(mut self, retention: TimeDelta) -> Self {
        self.audit_retention = retention;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// One cheap read that opens the connection (DNS, TCP, TLS) and checks the table during a
    /// cold start, so the first request does not pay for it. A `GetItem` of a key that cannot
    /// exist: it needs no permission beyond what verification has.
    pub async fn warm_up(&self) -> Result<(), StoreError> {
        self.get_item("warm-up".to_owned()).await.map(drop)
    }

    fn record_item(&self, record: &KeyRecord) -> Result<Item, StoreError> {
        let mut item: Item = serde_dynamo::to_item(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        item.insert(schema::PARTITION_KEY.into(), AttributeValue::S(digest_pk(&record.digest)));
        if let Some(ttl) = self.ttl(record) {
            item.insert(schema::TTL_ATTRIBUTE.into(), ttl);
        }
        item.extend(stop_index_entry(record).into_iter().flatten().map(|(name, value)| (name.to_owned(), value)));
        item.extend(owner_index_entry(record).map(|(name, value)| (name.to_owned(), value)));
        Ok(item)
    }

    fn ttl(&self, record: &KeyRecord) -> Option<AttributeValue> {
        record.collectable_at(self.retention).map(|at| AttributeValue::N(at.timestamp().to_string()))
    }

    async fn get_item(&self, pk: String) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, AttributeValue::S(pk))
            // A key must verify the moment its create returned.
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.item)
    }

    fn put(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// One more key for `tenant`, provided it holds fewer than `limit`.
    fn count_up(&self, tenant: &TenantId, limit: u32) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, AttributeValue::S(schema::tenant_count_pk(tenant)))
            .update_expression("ADD #live :one")
            .condition_expression("attribute_not_exists(#live) OR #live < :limit")
            .expression_attribute_names("#live", schema::LIVE_KEYS_ATTRIBUTE)
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":limit", number(limit.into()))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// One key fewer. Unconditional: the record's own condition makes it happen once per key (a
    /// key stored before counting existed takes the count below zero, which only gives back the
    /// place it never took).
    fn count_down(&self, tenant: &TenantId) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, AttributeValue::S(schema::tenant_count_pk(tenant)))
            .update_expression("ADD #live :minus_one")
            .expression_attribute_names("#live", schema::LIVE_KEYS_ATTRIBUTE)
            .expression_attribute_values(":minus_one", AttributeValue::N("-1".into()))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The conditional update that every read-modify-write ends with: `SET` the given attributes
    /// and bump the revision, provided nobody bumped it since `record` was read.
    fn update_record(
        &self,
        record: &KeyRecord,
        updated: &KeyRecord,
        set: &[(&str, AttributeValue)],
    ) -> Result<Update, StoreError> {
        let mut builder = Update::builder()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, AttributeValue::S(digest_pk(&record.digest)))
            .condition_expression("attribute_exists(pk) AND #revision = :read_revision")
            .expression_attribute_names("#revision", "revision")
            .expression_attribute_values(":read_revision", number(record.revision))
            .expression_attribute_values(":revision", number(updated.revision));
        let mut assignments = vec!["#revision = :revision".to_owned()];
        let ttl = self.ttl(updated);
        let ttl = ttl.as_ref().map(|value| (schema::TTL_ATTRIBUTE, value.clone()));
        let stop = stop_index_entry(updated);
        let mut expression = String::new();
        if stop.is_none() {
            // Retired (or never to stop): out of the sweep's index.
            expression = format!(" REMOVE #{}, #{}", schema::STOP_INDEX_PARTITION_KEY, schema::STOP_INDEX_SORT_KEY);
            for name in [schema::STOP_INDEX_PARTITION_KEY, schema::STOP_INDEX_SORT_KEY] {
                builder = builder.expression_attribute_names(format!("#{name}"), name);
            }
        }
        let mut removals = Vec::new();
        for (name, value) in set.iter().cloned().chain(ttl).chain(stop.into_iter().flatten()) {
            builder = builder.expression_attribute_names(format!("#{name}"), name);
            if value == REMOVE {
                removals.push(format!("#{name}"));
                continue;
            }
            assignments.push(format!("#{name} = :{name}"));
            builder = builder.expression_attribute_values(format!(":{name}"), value);
        }
        if !removals.is_empty() {
            let listed = removals.join(", ");
            expression =
                if expression.is_empty() { format!(" REMOVE {listed}") } else { format!("{expression}, {listed}") };
        }
        builder.update_expression(format!("SET {}{expression}", assignments.join(", "))).build().map_err(build_error)
    }

    /// Reads a tenant's record, lets `change` compute the new one and the attributes to `SET`
    /// (`None`: nothing to write, the record stands), and writes it conditionally on the revision
    /// read; a record changed in between (revoked, rotated, rehashed) is read again.
    async fn read_modify_write<F>(&self, tenant: &TenantId, id: &KeyId, change: F) -> Result<KeyRecord, StoreError>
    where
        F: Fn(&KeyRecord) -> Result<Option<(KeyRecord, Vec<(&'static str, AttributeValue)>)>, StoreError>,
    {
        for _ in 0..OPTIMISTIC_ATTEMPTS {
            let record = self.get(tenant, id).await?.ok_or(StoreError::NotFound)?;
            let Some((updated, set)) = change(&record)? else { return Ok(record) };
            let update = self.update_record(&record, &updated, &set)?;
            let items = vec![TransactWriteItem::builder().update(update).build()];
            match self.transact(items, StoreError::Conflict("changed since read")).await {
                Ok(()) => return Ok(updated),
                Err(StoreError::Conflict(_)) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(StoreError::Conflict("the key is being changed concurrently; try again"))
    }

    /// Up to `limit + 1` items of one partition of the tenant index, past `from` in `order`:
    /// one more than asked tells whether another page follows, without an empty last page.
    async fn index_page(
        &self,
        partition: String,
        limit: u32,
        from: Option<String>,
        order: Order,
    ) -> Result<Vec<Item>, StoreError> {
        let index = (schema::TENANT_INDEX, schema::TENANT_INDEX_PARTITION_KEY);
        self.index_page_of(index, partition, limit, from, order).await
    }

    /// [`Self::index_page`] of any index sorted by `id`: `(index, its partition key)`.
    async fn index_page_of(
        &self,
        (index, partition_key): (&str, &str),
        partition: String,
        limit: u32,
        from: Option<String>,
        order: Order,
    ) -> Result<Vec<Item>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .scan_index_forward(order == Order::Oldest)
            .limit(limit as i32 + 1)
            .expression_attribute_names("#tenant", partition_key)
            .expression_attribute_values(":tenant", AttributeValue::S(partition));
        let query = match from {
            Some(id) => {
                let condition = match order {
                    Order::Oldest => "#tenant = :tenant AND #id > :from",
                    Order::Newest => "#tenant = :tenant AND #id < :from",
                };
                query
                    .key_condition_expression(condition)
                    .expression_attribute_names("#id", schema::TENANT_INDEX_SORT_KEY)
                    .expression_attribute_values(":from", AttributeValue::S(id))
            }
            None => query.key_condition_expression("#tenant = :tenant"),
        };
        Ok(query.send().await.map_err(unavailable)?.items.unwrap_or_default())
    }

    async fn transact(&self, items: Vec<TransactWriteItem>, on_condition: StoreError) -> Result<(), StoreError> {
        self.transact_counted(items, None, on_condition).await
    }

    /// [`Self::transact`] where item `counter` is a [`Self::count_up`]: its condition alone failing
    /// means the tenant's limit is reached. A transaction cancelled only because another one held
    /// an item (`TransactionConflict`: one tenant's count is in every create of that tenant, so a
    /// burst of creates meets it) wrote nothing and is sent again, after a short random pause.
    async fn transact_counted(
        &self,
        items: Vec<TransactWriteItem>,
        counter: Option<usize>,
        on_condition: StoreError,
    ) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            let result = self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let error = match result {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = error.as_service_error()
            else {
                return Err(unavailable(error));
            };
            let reasons = cancelled.cancellation_reasons();
            let failed = |i: usize| reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
            let codes: Vec<&str> = reasons.iter().filter_map(|r| r.code()).collect();
            let others_failed = (0..reasons.len()).any(|i| Some(i) != counter && failed(i));
            if others_failed {
                return Err(on_condition);
            } else if counter.is_some_and(failed) {
                return Err(StoreError::LimitReached { limit: self.max_keys_per_tenant });
            } else if !codes.contains(&"TransactionConflict") {
                return Err(unavailable(error));
            }
            attempt += 1;
            if attempt == TRANSACTION_CONFLICT_ATTEMPTS {
                return Err(StoreError::Conflict("concurrent changes held what this one writes; try again"));
            }
            // Up to 10, 20, 40, 80 ms: spread out, so that the same two do not meet again.
            let ceiling = 10u64 << (attempt - 1);
            let draw = u64::from(rand::TryRngCore::try_next_u32(&mut rand::rngs::OsRng).unwrap_or(0));
            tokio::time::sleep(std::time::Duration::from_millis(1 + draw % ceiling)).await;
        }
    }
}

/// The order of a page of the tenant index: keys oldest first, audit events newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Oldest,
    Newest,
}

/// The attributes that put a digest item in the sweep's index (`by_stop`): while the key has a
/// stop time and is not retired.
fn stop_index_entry(record: &KeyRecord) -> Option<[(&'static str, AttributeValue); 2]> {
    if record.retired_at.is_some() {
        return None;
    }
    let stops_at = record.stops_at()?;
    Some([
        (schema::STOP_INDEX_PARTITION_KEY, AttributeValue::S(schema::STOP_PARTITION.to_owned())),
        (schema::STOP_INDEX_SORT_KEY, AttributeValue::N(stops_at.timestamp().to_string())),
    ])
}

/// The attribute that puts a digest item in the owners index (`by_owner`): while it has an owner.
fn owner_index_entry(record: &KeyRecord) -> Option<(&'static str, AttributeValue)> {
    let owner = record.owner_id.as_ref()?;
    Some((schema::OWNER_INDEX_PARTITION_KEY, AttributeValue::S(schema::owner_partition(&record.tenant_id, owner))))
}

fn id_item(record: &KeyRecord) -> Item {
    HashMap::from([
        (schema::PARTITION_KEY.to_owned(), AttributeValue::S(id_pk(&record.id))),
        ("digest".to_owned(), AttributeValue::S(record.digest.to_hex())),
        ("owner".to_owned(), AttributeValue::S(record.tenant_id.to_string())),
    ])
}

fn from_item(item: Item) -> Result<KeyRecord, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// In the attributes an update sets: take this one away instead (`REMOVE`). An index key may not
/// be set to `NULL`.
const REMOVE: AttributeValue = AttributeValue::Null(true);

fn to_value<T: serde::Serialize>(value: &T) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn string_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn build_error(error: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

fn unavailable<E, R>(error: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: Debug,
{
    StoreError::Unavailable(DisplayErrorContext(&error).to_string())
}

/// A conditional `UpdateItem`'s answer as whether its condition held: `false` when DynamoDB
/// refused it for the condition, `Unavailable` for any other failure.
pub(crate) fn condition_held<O, R: Debug>(result: Result<O, SdkError<UpdateItemError, R>>) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
        Err(error) => Err(unavailable(error)),
    }
}

impl KeyStore for DynamoKeyStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let items = vec![
            self.put(self.record_item(record)?)?,
            self.put(id_item(record))?,
            self.count_up(&record.tenant_id, self.max_keys_per_tenant)?,
        ];
        self.transact_counted(items, Some(2), StoreError::AlreadyExists).await
    }

    async fn find_by_digest(&self, digest: &KeyDigest) -> Result<Option<KeyRecord>, StoreError> {
        self.get_item(digest_pk(digest)).await?.map(from_item).transpose()
    }

    async fn get(&self, tenant: &TenantId, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        // The pointer and the record are read one after the other; a rehash in between moves the
        // record, so read the pointer again.
        for _ in 0..OPTIMISTIC_ATTEMPTS {
            let Some(pointer) = self.get_item(id_pk(id)).await? else { return Ok(None) };
            if string_attr(&pointer, "owner") != Some(tenant.as_str()) {
                return Ok(None);
            }
            let digest = string_attr(&pointer, "digest")
                .and_then(KeyDigest::from_hex)
                .ok_or_else(|| StoreError::Corrupt(format!("id pointer of {id} has no digest")))?;
            if let Some(record) = self.find_by_digest(&digest).await? {
                return Ok((&record.tenant_id == tenant).then_some(record));
            }
        }
        Err(StoreError::Conflict("the key is being changed concurrently; try again"))
    }

    async fn lookup(&self, tenant: &TenantId, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let items = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(schema::TENANT_INDEX)
            .key_condition_expression("#tenant = :tenant AND #id = :id")
            .expression_attribute_names("#tenant", schema::TENANT_INDEX_PARTITION_KEY)
            .expression_attribute_names("#id", schema::TENANT_INDEX_SORT_KEY)
            .expression_attribute_values(":tenant", AttributeValue::S(tenant.to_string()))
            .expression_attribute_values(":id", AttributeValue::S(id.to_string()))
            .send()
            .await
            .map_err(unavailable)?
            .items
            .unwrap_or_default();
        // A rehash moves the record to another digest, so for a moment the index may hold it
        // twice: both copies read the same.
        match items.into_iter().next() {
            Some(item) => from_item(item).map(Some),
            None => self.get(tenant, id).await,
        }
    }

    async fn list(&self, tenant: &TenantId, limit: u32, after: Option<&Cursor>) -> Result<Page<KeyRecord>, StoreError> {
        let limit = limit.clamp(1, super::MAX_PAGE_SIZE);
        let from = after.map(|cursor| cursor.id().to_string());
        let items = self.index_page(tenant.to_string(), limit, from, Order::Oldest).await?;
        let items = items.into_iter().map(from_item).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_lookahead(items, limit as usize, |record| &record.id))
    }

    async fn owned(
        &self,
        tenant: &TenantId,
        owner: &OwnerId,
        limit: u32,
        after: Option<&Cursor>,
    ) -> Result<Page<KeyRecord>, StoreError> {
        let limit = limit.clamp(1, super::MAX_PAGE_SIZE);
        let from = after.map(|cursor| cursor.id().to_string());
        let index = (schema::OWNER_INDEX, schema::OWNER_INDEX_PARTITION_KEY);
        let partition = schema::owner_partition(tenant, owner);
        let items = self.index_page_of(index, partition, limit, from, Order::Oldest).await?;
        let items = items.into_iter().map(from_item).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_lookahead(items, limit as usize, |record| &record.id))
    }

    async fn revoke(&self, tenant: &TenantId, id: &KeyId, at: DateTime<Utc>) -> Result<KeyRecord, StoreError> {
        self.read_modify_write(tenant, id, |record| {
            let Some(updated) = super::revoked(record, at) else { return Ok(None) };
            let set = vec![("revoked_at", to_value(&at)?)];
            Ok(Some((updated, set)))
        })
        .await
    }

    async fn update(&self, tenant: &TenantId, id: &KeyId, changes: &KeyChanges) -> Result<KeyRecord, StoreError> {
        self.read_modify_write(tenant, id, |record| {
            let updated = super::updated(record, changes)?;
            let mut set = Vec::new();
            if changes.name.is_some() {
                set.push(("name", to_value(&updated.name)?));
            }
            if changes.permissions.is_some() {
                set.push(("permissions", to_value(&updated.permissions)?));
            }
            if changes.tier.is_some() {
                set.push(("tier", to_value(&updated.tier)?));
            }
            if let Some(expires_at) = &changes.expires_at {
                set.push(("expires_at", to_value(expires_at)?));
            }
            if changes.owner_id.is_some() {
                match (&updated.owner_id, owner_index_entry(&updated)) {
                    (Some(owner), Some(entry)) => set.extend([("owner_id", to_value(owner)?), entry]),
                    _ => set.extend([("owner_id", REMOVE), (schema::OWNER_INDEX_PARTITION_KEY, REMOVE)]),
                }
            }
            if changes.meta.is_some() {
                // As text, as the record stores it (`metadata::stored_as_text`).
                let meta = if updated.meta.is_empty() { REMOVE } else { AttributeValue::S(updated.meta.to_json()) };
                set.push(("meta", meta));
            }
            if let Some(enabled) = changes.enabled {
                set.push(("enabled", AttributeValue::Bool(enabled)));
            }
            if let Some(allowlist) = &changes.ip_allowlist {
                set.push(("ip_allowlist", if allowlist.is_empty() { REMOVE } else { to_value(allowlist)? }));
            }
            if let Some(meter) = &changes.meter {
                set.push(("meter", meter.as_ref().map(to_value).transpose()?.unwrap_or(REMOVE)));
            }
            Ok(Some((updated, set)))
        })
        .await
    }

    async fn rotate(
        &self,
        tenant: &TenantId,
        id: &KeyId,
        replacement: &KeyRecord,
        old_expires_at: DateTime<Utc>,
    ) -> Result<KeyRecord, StoreError> {
        let old = self.get(tenant, id).await?.ok_or(StoreError::NotFound)?;
        let updated = super::rotated(&old, &replacement.id, old_expires_at)?;
        let update = self.update_record(
            &old,
            &updated,
            &[("expires_at", to_value(&old_expires_at)?), ("replaced_by", to_value(&replacement.id)?)],
        )?;
        let items = vec![
            self.put(self.record_item(replacement)?)?,
            self.put(id_item(replacement))?,
            TransactWriteItem::builder().update(update).build(),
            self.count_up(tenant, super::rotation_limit(self.max_keys_per_tenant, replacement, old_expires_at))?,
        ];
        let conflict = StoreError::Conflict("the key was changed concurrently (rotated or revoked)");
        self.transact_counted(items, Some(3), conflict).await?;
        Ok(updated)
    }

    async fn retire(&self, tenant: &TenantId, id: &KeyId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        for _ in 0..OPTIMISTIC_ATTEMPTS {
            let record = self.get(tenant, id).await?.ok_or(StoreError::NotFound)?;
            let Some(updated) = super::retired(&record, at)? else { return Ok(false) };
            let update = self.update_record(&record, &updated, &[("retired_at", to_value(&at)?)])?;
            let items = vec![TransactWriteItem::builder().update(update).build(), self.count_down(tenant)?];
            match self.transact(items, StoreError::Conflict("changed since read")).await {
                Ok(()) => return Ok(true),
                Err(StoreError::Conflict(_)) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(StoreError::Conflict("the key is being changed concurrently; try again"))
    }

    async fn room(&self, tenant: &TenantId, allowance: u32) -> Result<(), StoreError> {
        let count = self.get_item(schema::tenant_count_pk(tenant)).await?;
        let live = count
            .as_ref()
            .and_then(|item| item.get(schema::LIVE_KEYS_ATTRIBUTE))
            .and_then(|value| value.as_n().ok())
            .map_or(Ok(0), |n| n.parse::<i64>())
            .map_err(|e| StoreError::Corrupt(format!("the key count of {tenant}: {e}")))?;
        super::room(live, self.max_keys_per_tenant, allowance)
    }

    async fn stopped(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        after: Option<&KeyRecord>,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let limit = limit.clamp(1, super::MAX_PAGE_SIZE);
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(schema::STOP_INDEX)
            .key_condition_expression("#sweep = :due AND #stops_at <= :now")
            .expression_attribute_names("#sweep", schema::STOP_INDEX_PARTITION_KEY)
            .expression_attribute_names("#stops_at", schema::STOP_INDEX_SORT_KEY)
            .expression_attribute_values(":due", AttributeValue::S(schema::STOP_PARTITION.to_owned()))
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .limit(limit as i32);
        if let Some(after) = after {
            // An index's position is its keys and the table's: all three are the record's.
            let [(sweep, due), (stops, at)] = stop_index_entry(after)
                .ok_or_else(|| StoreError::Corrupt(format!("{} has no place in the sweep's index", after.id)))?;
            query = query
                .exclusive_start_key(schema::PARTITION_KEY, AttributeValue::S(digest_pk(&after.digest)))
                .exclusive_start_key(sweep, due)
                .exclusive_start_key(stops, at);
        }
        let items = query.send().await.map_err(unavailable)?.items.unwrap_or_default();
        items.into_iter().map(from_item).collect()
    }

    async fn touch(&self, digest: &KeyDigest, at: DateTime<Utc>) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, AttributeValue::S(digest_pk(digest)))
            .update_expression("SET last_used_at = :at")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", to_value(&at)?)
            .send()
            .await;
        if condition_held(result)? { Ok(()) } else { Err(StoreError::NotFound) }
    }

    async fn note_expiry_warning(&self, record: &KeyRecord) -> Result<bool, StoreError> {
        let Some(expires_at) = record.expires_at else { return Ok(false) };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, AttributeValue::S(digest_pk(&record.digest)))
            .update_expression("SET expiry_warned_for = :at")
            .condition_expression(
                "attribute_exists(pk) AND expires_at = :at \
                 AND (attribute_not_exists(expiry_warned_for) OR expiry_warned_for <> :at)",
            )
            .expression_attribute_values(":at", to_value(&expires_at)?)
            .send()
            .await;
        condition_held(result)
    }

    async fn rehash(&self, record: &KeyRecord, digest: KeyDigest, version: PepperVersion) -> Result<(), StoreError> {
        let moved = super::rehashed(record, digest, version);
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, AttributeValue::S(digest_pk(&record.digest)))
            .condition_expression("#revision = :revision")
            .expression_attribute_names("#revision", "revision")
            .expression_attribute_values(":revision", number(record.revision))
            .build()
            .map_err(build_error)?;
        let repoint = Update::builder()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, AttributeValue::S(id_pk(&record.id)))
            .update_expression("SET digest = :new")
            .condition_expression("digest = :old")
            .expression_attribute_values(":new", AttributeValue::S(moved.digest.to_hex()))
            .expression_attribute_values(":old", AttributeValue::S(record.digest.to_hex()))
            .build()
            .map_err(build_error)?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.put(self.record_item(&moved)?)?,
            TransactWriteItem::builder().update(repoint).build(),
        ];
        self.transact(items, StoreError::Conflict("the key was changed or already moved")).await
    }
}

impl AuditLog for DynamoKeyStore {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let ttl = (event.at + self.audit_retention).timestamp();
        let item = HashMap::from([
            (schema::PARTITION_KEY.to_owned(), AttributeValue::S(audit_pk(&event.id))),
            (schema::TENANT_INDEX_PARTITION_KEY.to_owned(), AttributeValue::S(audit_partition(&event.tenant_id))),
            (schema::TENANT_INDEX_SORT_KEY.to_owned(), AttributeValue::S(event.id.to_string())),
            ("event".to_owned(), to_value(event)?),
            (schema::TTL_ATTRIBUTE.to_owned(), AttributeValue::N(ttl.to_string())),
        ]);
        let put = self.client.put_item().table_name(&self.table).set_item(Some(item));
        put.send().await.map(drop).map_err(unavailable)
    }

    async fn events(
        &self,
        tenant: &TenantId,
        limit: u32,
        before: Option<&Cursor<AuditId>>,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let limit = limit.clamp(1, super::MAX_PAGE_SIZE);
        let from = before.map(|cursor| cursor.id().to_string());
        let items = self.index_page(audit_partition(tenant), limit, from, Order::Newest).await?;
        let events = items
            .into_iter()
            .map(|mut item| {
                let event =
                    item.remove("event").ok_or_else(|| StoreError::Corrupt("an audit item has no event".into()))?;
                serde_dynamo::from_attribute_value(event).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect::<Result<Vec<AuditEvent>, _>>()?;
        Ok(Page::from_lookahead(events, limit as usize, |event| &event.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripted_http::scripted;
    use crate::{KeyHasher, KeyProfile, KeySpec, Permission};

    /// DynamoDB's answer to a transaction that another one held an item of (here, the tenant's
    /// count, the third item of an insert). DynamoDB Local serializes transactions instead.
    const CONFLICT: (u16, &str) = (
        400,
        r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [None, None, TransactionConflict]","CancellationReasons":[{"Code":"None"},{"Code":"None"},{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}]}"#,
    );
    const LIMIT: (u16, &str) = (
        400,
        r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [None, None, ConditionalCheckFailed]","CancellationReasons":[{"Code":"None"},{"Code":"None"},{"Code":"ConditionalCheckFailed"}]}"#,
    );
    const WRITTEN: (u16, &str) = (200, "{}");

    /// The store as the functions build it, against `endpoint`.
    async fn store_at(endpoint: String) -> DynamoKeyStore {
        let sdk = crate::scripted_http::sdk_config().await;
        let client = Client::from_conf(aws_sdk_dynamodb::config::Builder::from(&sdk).endpoint_url(endpoint).build());
        DynamoKeyStore::new(client, "keys", TimeDelta::days(30))
    }

    fn record() -> KeyRecord {
        let hasher = KeyHasher::new(&[7u8; 32], PepperVersion::new("v1"));
        let spec = KeySpec::new(
            "acme".parse().unwrap(),
            "burst".into(),
            [Permission::Read].into_iter().collect(),
            "free".parse().unwrap(),
        );
        KeyRecord::issue(&KeyProfile::latchkey(), &hasher, spec, Utc::now()).1
    }

    /// A burst of creates in one tenant meets its count held by another transaction: the insert
    /// is sent again and made, and the caller sees nothing of it.
    #[tokio::test]
    async fn an_insert_that_meets_another_transaction_is_sent_again() {
        let (endpoint, requests) = scripted(vec![CONFLICT, CONFLICT, WRITTEN]).await;
        store_at(endpoint).await.insert(&record()).await.unwrap();
        assert_eq!(requests.lock().unwrap().len(), 3);
    }

    /// Held throughout: a bounded number of sends, then `Conflict` (a `409` the caller may retry).
    #[tokio::test]
    async fn an_insert_held_up_throughout_gives_up_after_a_bounded_number_of_sends() {
        let (endpoint, requests) = scripted(vec![CONFLICT; 10]).await;
        let error = store_at(endpoint).await.insert(&record()).await.unwrap_err();
        assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
        assert_eq!(requests.lock().unwrap().len(), TRANSACTION_CONFLICT_ATTEMPTS as usize);
    }

    /// A condition that failed is an answer, not a conflict: never sent again.
    #[tokio::test]
    async fn a_tenant_at_its_limit_is_answered_at_once() {
        let (endpoint, requests) = scripted(vec![LIMIT, WRITTEN]).await;
        let error = store_at(endpoint).await.insert(&record()).await.unwrap_err();
        assert!(matches!(error, StoreError::LimitReached { .. }), "{error:?}");
        assert_eq!(requests.lock().unwrap().len(), 1);
    }
}
