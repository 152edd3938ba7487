//! The DynamoDB table layout, in one place: the store, the tests, the local tooling and the SAM
//! template (checked by a test) all take it from here.
//!
//! One table holds two kinds of item per key:
//! - `pk = "digest#<hex>"`: the whole [`crate::KeyRecord`]. Verification is one `GetItem` on it.
//!   It carries `tenant_id` and `id`, which put it in the `by_tenant` index for listing.
//! - `pk = "id#<key id>"`: a pointer `{digest, owner}`. Management calls address keys by id and
//!   need a strongly consistent read right after a create, which an index cannot give; the
//!   pointer has no `tenant_id`/`id`, so it stays out of the index.
//!
//! And one item per audit event:
//! - `pk = "audit#<event id>"`, `tenant_id = "audit#<tenant>"`, `id = <event id>`, the event in
//!   `event`. Its `tenant_id` is never a tenant's (tenant ids cannot contain `#`), so the same
//!   `by_tenant` index lists a tenant's audit trail without mixing it into its keys.
//!
//! And one item per datasource:
//! - `pk = "datasource#<id>"`, `owner = <tenant>`, `tenant_id = "datasources#<tenant>"`,
//!   `id = <datasource id>`, the datasource in `datasource`: read by id with one consistent
//!   `GetItem`, listed through `by_tenant` like the audit trail.
//!
//! And one counter per tenant:
//! - `pk = "tenant_keys#<tenant>"`, `live`: how many of the tenant's keys are not yet retired,
//!   changed in the transaction that writes a key (see [`crate::store::KeyStore`]). No
//!   `tenant_id`, so it stays out of the index.
//!
//! And the gateway key pools ([`crate::gateway::pool`]), per tier:
//! - `pk = "pool#<tier>"`, `size`: how many slots the pool has;
//! - `pk = "slot#<tier>#<n>"`, `gateway_key_id`, `value`: slot `n`'s API Gateway key, and while it
//!   is leased `holder` (a key id) and `lease_until` (epoch seconds). No `tenant_id`: out of the
//!   index. A key's own lease is noted on its digest item (`lease`), read with the record.
//!
//! `ttl` (epoch seconds) only garbage-collects: expiry is enforced in code on every read.
//!
//! A digest item whose key has a stop time (an expiry, a rotation's grace end, a revocation) and
//! is not yet retired also carries `sweep = "due"` and `stops_at` (epoch seconds), which put it in
//! the sparse index `by_stop`: the scheduled sweep (`keys-sweep`) reads the keys that have stopped
//! from there, oldest stop first, deletes their API Gateway keys and retires them. Retirement
//! removes both attributes, and with them the item from the index.

pub const PARTITION_KEY: &str = "pk";

/// The records table (ingest), a second table: its write volume is of another order than the
/// keys', and it has its own capacity and retention. Each record is one item:
/// - `pk = "ds#<datasource id>#<shard>"`: a datasource's records spread over
///   [`crate::ingest::SHARDS`] partitions by identity, so one busy datasource is not one hot
///   partition;
/// - `sk = "rec#<identity digest>"`: written conditionally on not existing, which is what makes a
///   retried record a duplicate instead of a second copy;
/// - `seq`, the record's [`crate::ingest::Sequence`], sort key of the local index `by_sequence`:
///   each shard is read in order there, and the shards are merged.
pub const RECORDS_SORT_KEY: &str = "sk";
pub const RECORDS_SEQUENCE_INDEX: &str = "by_sequence";
pub const RECORDS_SEQUENCE_KEY: &str = "seq";

pub fn records_pk(datasource: &crate::DatasourceId, shard: u8) -> String {
    format!("ds#{datasource}#{shard}")
}

/// The partition of a datasource's daily counts of received records (the ingest cap); the sort
/// key is the day, `YYYY-MM-DD`.
pub fn received_count_pk(datasource: &crate::DatasourceId) -> String {
    format!("count#{datasource}")
}

pub fn record_sk(identity_digest: &str) -> String {
    format!("rec#{identity_digest}")
}
pub const TTL_ATTRIBUTE: &str = "ttl";
pub const STOP_INDEX: &str = "by_stop";
pub const STOP_INDEX_PARTITION_KEY: &str = "sweep";
pub const STOP_INDEX_SORT_KEY: &str = "stops_at";
/// The one value of [`STOP_INDEX_PARTITION_KEY`]: every key waiting for the sweep.
pub const STOP_PARTITION: &str = "due";
/// The sparse index of keys by owner: a digest item whose key has an owner carries
/// `tenant_owner = "<tenant>#<owner id>"` (a tenant id has no `#`, so the first one separates
/// them), sorted by the key's `id` like `by_tenant`.
pub const OWNER_INDEX: &str = "by_owner";
pub const OWNER_INDEX_PARTITION_KEY: &str = "tenant_owner";

pub fn owner_partition(tenant: &crate::TenantId, owner: &crate::OwnerId) -> String {
    format!("{tenant}#{owner}")
}

pub const TENANT_INDEX: &str = "by_tenant";
pub const TENANT_INDEX_PARTITION_KEY: &str = "tenant_id";
pub const TENANT_INDEX_SORT_KEY: &str = "id";

pub fn digest_pk(digest: &crate::KeyDigest) -> String {
    format!("digest#{}", digest.to_hex())
}

pub fn pool_pk(tier: &crate::TierName) -> String {
    format!("pool#{tier}")
}

pub fn slot_pk(tier: &crate::TierName, slot: u32) -> String {
    format!("slot#{tier}#{slot}")
}

/// The balance of usage credits a key spends ([`crate::credits`]), by its meter (a key id):
/// `remaining`, and with a refill `refill_amount`, `refill_interval` and `period`;
/// `low_threshold`. No `tenant_id`: out of the index.
pub fn credits_pk(meter: &crate::KeyId) -> String {
    format!("credits#{meter}")
}

pub fn id_pk(id: &crate::KeyId) -> String {
    format!("id#{id}")
}

/// The item counting a tenant's keys that are not yet retired, in [`LIVE_KEYS_ATTRIBUTE`].
pub fn tenant_count_pk(tenant: &crate::TenantId) -> String {
    format!("tenant_keys#{tenant}")
}

pub const LIVE_KEYS_ATTRIBUTE: &str = "live";

pub fn audit_pk(id: &crate::AuditId) -> String {
    format!("audit#{id}")
}

pub fn datasource_pk(id: &crate::DatasourceId) -> String {
    format!("datasource#{id}")
}

/// The `by_tenant` partition of a tenant's datasources.
pub fn datasource_partition(tenant: &crate::TenantId) -> String {
    format!("datasources#{tenant}")
}

/// The `by_tenant` partition of a tenant's audit events.
pub fn audit_partition(tenant: &crate::TenantId) -> String {
    format!("audit#{tenant}")
}

#[cfg(feature = "aws")]
mod create {
    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, LocalSecondaryIndex,
        Projection, ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    };

    use super::*;

    fn string_attribute(name: &str) -> AttributeDefinition {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("name and type are set")
    }

    fn key(name: &str, key_type: KeyType) -> KeySchemaElement {
        KeySchemaElement::builder().attribute_name(name).key_type(key_type).build().expect("name and type are set")
    }

    /// Creates the keys table (on demand, TTL on `ttl`) unless it exists, and waits until it is active. For tests and
    /// the local tooling; the deployed table comes from `template.yaml`.
    pub async fn create_keys_table(client: &Client, name: &str) -> Result<(), String> {
        let index = GlobalSecondaryIndex::builder()
            .index_name(TENANT_INDEX)
            .key_schema(key(TENANT_INDEX_PARTITION_KEY, KeyType::Hash))
            .key_schema(key(TENANT_INDEX_SORT_KEY, KeyType::Range))
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(|e| e.to_string())?;
        let stops = GlobalSecondaryIndex::builder()
            .index_name(STOP_INDEX)
            .key_schema(key(STOP_INDEX_PARTITION_KEY, KeyType::Hash))
            .key_schema(key(STOP_INDEX_SORT_KEY, KeyType::Range))
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(|e| e.to_string())?;
        let owners = GlobalSecondaryIndex::builder()
            .index_name(OWNER_INDEX)
            .key_schema(key(OWNER_INDEX_PARTITION_KEY, KeyType::Hash))
            .key_schema(key(TENANT_INDEX_SORT_KEY, KeyType::Range))
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(|e| e.to_string())?;
        let request = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(string_attribute(PARTITION_KEY))
            .attribute_definitions(string_attribute(OWNER_INDEX_PARTITION_KEY))
            .attribute_definitions(string_attribute(TENANT_INDEX_PARTITION_KEY))
            .attribute_definitions(string_attribute(TENANT_INDEX_SORT_KEY))
            .attribute_definitions(string_attribute(STOP_INDEX_PARTITION_KEY))
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(STOP_INDEX_SORT_KEY)
                    .attribute_type(ScalarAttributeType::N)
                    .build()
                    .expect("name and type are set"),
            )
            .key_schema(key(PARTITION_KEY, KeyType::Hash))
            .global_secondary_indexes(index)
            .global_secondary_indexes(stops)
            .global_secondary_indexes(owners);
        create_and_wait(client, name, request).await
    }

    /// Creates the records table (on demand, TTL on `ttl`, the `by_sequence` local index) unless
    /// it exists, and waits until it is active.
    pub async fn create_records_table(client: &Client, name: &str) -> Result<(), String> {
        let index = LocalSecondaryIndex::builder()
            .index_name(RECORDS_SEQUENCE_INDEX)
            .key_schema(key(PARTITION_KEY, KeyType::Hash))
            .key_schema(key(RECORDS_SEQUENCE_KEY, KeyType::Range))
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(|e| e.to_string())?;
        let request = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(string_attribute(PARTITION_KEY))
            .attribute_definitions(string_attribute(RECORDS_SORT_KEY))
            .attribute_definitions(string_attribute(RECORDS_SEQUENCE_KEY))
            .key_schema(key(PARTITION_KEY, KeyType::Hash))
            .key_schema(key(RECORDS_SORT_KEY, KeyType::Range))
            .local_secondary_indexes(index);
        create_and_wait(client, name, request).await
    }

    async fn create_and_wait(
        client: &Client,
        name: &str,
        request: aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder,
    ) -> Result<(), String> {
        match request.send().await {
            Ok(_) => {}
            // Already there (a retried create whose first attempt timed out, or a second run of
            // the local tooling): wait for it like a new one.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(e) => return Err(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()),
        }
        for _ in 0..100 {
            let described = client.describe_table().table_name(name).send().await;
            let status = described.ok().and_then(|d| d.table).and_then(|t| t.table_status);
            if status == Some(TableStatus::Active) {
                let ttl = TimeToLiveSpecification::builder()
                    .attribute_name(TTL_ATTRIBUTE)
                    .enabled(true)
                    .build()
                    .map_err(|e| e.to_string())?;
                let enabled =
                    client.update_time_to_live().table_name(name).time_to_live_specification(ttl).send().await;
                return match enabled {
                    Ok(_) => Ok(()),
                    // An existing table (a second run): TTL is on already, as wanted.
                    Err(e)
                        if e.as_service_error()
                            .and_then(|e| e.meta().message())
                            .is_some_and(|m| m.contains("already enabled")) =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()),
                };
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(format!("table {name} did not become active"))
    }
}

#[cfg(feature = "aws")]
pub use create::{create_keys_table, create_records_table};
