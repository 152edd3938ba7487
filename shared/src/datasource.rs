//! Datasources: where ingest records go. Each has an ingest key (permission `ingest`, scoped to
//! it); regenerating rotates that key, deleting revokes it and removes the records.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{Cursor, Page, StoreError};
use crate::{DatasourceId, KeyId, KeyRecord, TenantId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Datasource {
    pub id: DatasourceId,
    pub tenant_id: TenantId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Its ingest key as of the last regenerate. If a regenerate stopped between rotating the
    /// key and updating this, the key's `replaced_by` leads on to the current one.
    pub key_id: KeyId,
}

/// Where datasources are kept: the keys table (DynamoDB) or file (redb), beside the keys.
pub trait DatasourceStore: Send + Sync {
    /// `AlreadyExists` if the id is taken.
    fn insert_datasource(&self, datasource: &Datasource) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Another tenant's datasource is `None`, like a missing one.
    fn get_datasource(
        &self,
        tenant: &TenantId,
        id: &DatasourceId,
    ) -> impl Future<Output = Result<Option<Datasource>, StoreError>> + Send;

    /// A tenant's datasources in creation order.
    fn list_datasources(
        &self,
        tenant: &TenantId,
        limit: u32,
        after: Option<&Cursor<DatasourceId>>,
    ) -> impl Future<Output = Result<Page<Datasource>, StoreError>> + Send;

    /// Points the datasource at its current ingest key. `NotFound` if it is gone.
    fn set_datasource_key(
        &self,
        tenant: &TenantId,
        id: &DatasourceId,
        key_id: &KeyId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores `successor`, datasource `id`'s new ingest key after its key `old` was revoked, in
    /// one atomic write with the link from `old` to it (`replaced_by`) and the datasource's
    /// pointer: stored, the new key is reachable from its datasource (and so revoked when the
    /// datasource is deleted), or it is not stored at all. Counted like a new key. `Conflict` if
    /// `old` works or was replaced already (a concurrent regeneration won); `NotFound` for a
    /// missing datasource or key.
    fn insert_successor(
        &self,
        tenant: &TenantId,
        id: &DatasourceId,
        old: &KeyId,
        successor: &KeyRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes it; removing a missing one is not an error.
    fn delete_datasource(
        &self,
        tenant: &TenantId,
        id: &DatasourceId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
