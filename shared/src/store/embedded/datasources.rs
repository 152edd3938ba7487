//! [`DatasourceStore`] in the redb file: `tenant#datasource id` → the datasource as JSON.

use std::ops::Bound;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{EmbeddedKeyStore, Tables, tenant_key, unavailable};
use crate::datasource::{Datasource, DatasourceStore};
use crate::store::{Cursor, MAX_PAGE_SIZE, Page, StoreError};
use crate::{DatasourceId, KeyId, KeyRecord, TenantId};

pub(super) const DATASOURCES: TableDefinition<&str, &str> = TableDefinition::new("datasources_by_tenant");

fn decode(json: &str) -> Result<Datasource, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn encode(datasource: &Datasource) -> Result<String, StoreError> {
    serde_json::to_string(datasource).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl EmbeddedKeyStore {
    /// Reads, changes and writes back one datasource in one write transaction.
    async fn change_datasource<F>(&self, key: String, change: F) -> Result<(), StoreError>
    where
        F: FnOnce(Option<Datasource>) -> Result<Option<Datasource>, StoreError> + Send + 'static,
    {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut table = txn.open_table(DATASOURCES).map_err(unavailable)?;
                let current =
                    table.get(key.as_str()).map_err(unavailable)?.map(|json| decode(json.value())).transpose()?;
                match change(current)? {
                    Some(datasource) => {
                        drop(table.insert(key.as_str(), encode(&datasource)?.as_str()).map_err(unavailable)?)
                    }
                    None => drop(table.remove(key.as_str()).map_err(unavailable)?),
                }
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }
}

impl DatasourceStore for EmbeddedKeyStore {
    async fn insert_datasource(&self, datasource: &Datasource) -> Result<(), StoreError> {
        let new = datasource.clone();
        self.change_datasource(tenant_key(&datasource.tenant_id, &datasource.id), move |current| match current {
            Some(_) => Err(StoreError::AlreadyExists),
            None => Ok(Some(new)),
        })
        .await
    }

    async fn get_datasource(&self, tenant: &TenantId, id: &DatasourceId) -> Result<Option<Datasource>, StoreError> {
        let key = tenant_key(tenant, id);
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(DATASOURCES).map_err(unavailable)?;
            table.get(key.as_str()).map_err(unavailable)?.map(|json| decode(json.value())).transpose()
        })
        .await
    }

    async fn list_datasources(
        &self,
        tenant: &TenantId,
        limit: u32,
        after: Option<&Cursor<DatasourceId>>,
    ) -> Result<Page<Datasource>, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE_SIZE) as usize;
        let start = match after {
            Some(cursor) => Bound::Excluded(tenant_key(tenant, cursor.id())),
            None => Bound::Excluded(format!("{tenant}#")),
        };
        // `$` follows `#`: the end of this tenant's run.
        let end = format!("{tenant}$");
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(DATASOURCES).map_err(unavailable)?;
            let start = start.as_ref().map(String::as_str);
            let range = table.range::<&str>((start, Bound::Excluded(end.as_str()))).map_err(unavailable)?;
            let mut datasources = Vec::with_capacity(limit + 1);
            for entry in range.take(limit + 1) {
                let (_, json) = entry.map_err(unavailable)?;
                datasources.push(decode(json.value())?);
            }
            Ok(Page::from_lookahead(datasources, limit, |datasource: &Datasource| &datasource.id))
        })
        .await
    }

    async fn set_datasource_key(&self, tenant: &TenantId, id: &DatasourceId, key_id: &KeyId) -> Result<(), StoreError> {
        let key_id = key_id.clone();
        self.change_datasource(tenant_key(tenant, id), move |current| {
            let mut datasource = current.ok_or(StoreError::NotFound)?;
            datasource.key_id = key_id;
            Ok(Some(datasource))
        })
        .await
    }

    async fn insert_successor(
        &self,
        tenant: &TenantId,
        id: &DatasourceId,
        old: &KeyId,
        successor: &KeyRecord,
    ) -> Result<(), StoreError> {
        let (tenant, key, old, successor) = (tenant.clone(), tenant_key(tenant, id), old.clone(), successor.clone());
        let limit = self.max_keys_per_tenant;
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut tables = Tables::open(&txn)?;
                let mut datasources = txn.open_table(DATASOURCES).map_err(unavailable)?;
                let found = datasources.get(key.as_str()).map_err(unavailable)?.map(|json| decode(json.value()));
                let mut datasource = found.transpose()?.ok_or(StoreError::NotFound)?;
                let previous = tables.tenant_record(&tenant, &old)?.ok_or(StoreError::NotFound)?;
                let linked = crate::store::succeeded(&previous, &successor.id)?;
                tables.insert_new(&successor)?;
                tables.put_record(&linked)?;
                tables.count(&tenant, 1, Some((limit, limit)))?;
                datasource.key_id = successor.id.clone();
                datasources.insert(key.as_str(), encode(&datasource)?.as_str()).map_err(unavailable)?;
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn delete_datasource(&self, tenant: &TenantId, id: &DatasourceId) -> Result<(), StoreError> {
        self.change_datasource(tenant_key(tenant, id), |_| Ok(None)).await
    }
}
