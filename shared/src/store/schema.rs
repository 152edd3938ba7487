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
//! `ttl` (epoch seconds) only garbage-collects: expiry is enforced in code on every read.

pub const PARTITION_KEY: &str = "pk";
pub const TTL_ATTRIBUTE: &str = "ttl";
pub const TENANT_INDEX: &str = "by_tenant";
pub const TENANT_INDEX_PARTITION_KEY: &str = "tenant_id";
pub const TENANT_INDEX_SORT_KEY: &str = "id";

pub fn digest_pk(digest: &crate::KeyDigest) -> String {
    format!("digest#{}", digest.to_hex())
}

pub fn id_pk(id: &crate::KeyId) -> String {
    format!("id#{id}")
}

pub fn audit_pk(id: &crate::AuditId) -> String {
    format!("audit#{id}")
}

/// The `by_tenant` partition of a tenant's audit events.
pub fn audit_partition(tenant: &crate::TenantId) -> String {
    format!("audit#{tenant}")
}

#[cfg(feature = "aws")]
mod create {
    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
        ScalarAttributeType, TableStatus, TimeToLiveSpecification,
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
        let created = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(string_attribute(PARTITION_KEY))
            .attribute_definitions(string_attribute(TENANT_INDEX_PARTITION_KEY))
            .attribute_definitions(string_attribute(TENANT_INDEX_SORT_KEY))
            .key_schema(key(PARTITION_KEY, KeyType::Hash))
            .global_secondary_indexes(index)
            .send()
            .await;
        match created {
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
                client
                    .update_time_to_live()
                    .table_name(name)
                    .time_to_live_specification(ttl)
                    .send()
                    .await
                    .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?;
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(format!("table {name} did not become active"))
    }
}

#[cfg(feature = "aws")]
pub use create::create_keys_table;
