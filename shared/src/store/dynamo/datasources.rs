//! [`DatasourceStore`] in the keys table (layout in [`crate::store::schema`]).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use super::{DynamoKeyStore, Order, build_error, id_item, string_attr, to_value, unavailable};
use crate::datasource::{Datasource, DatasourceStore};
use crate::store::KeyStore;
use crate::store::schema::{self, datasource_partition, datasource_pk};
use crate::store::{Cursor, MAX_PAGE_SIZE, Page, StoreError};
use crate::{DatasourceId, KeyId, KeyRecord, TenantId};

fn from_item(mut item: super::Item) -> Result<Datasource, StoreError> {
    let value = item.remove("datasource").ok_or_else(|| StoreError::Corrupt("a datasource item is empty".into()))?;
    serde_dynamo::from_attribute_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl DatasourceStore for DynamoKeyStore {
    async fn insert_datasource(&self, datasource: &Datasource) -> Result<(), StoreError> {
        let item = HashMap::from([
            (schema::PARTITION_KEY.to_owned(), AttributeValue::S(datasource_pk(&datasource.id))),
            ("owner".to_owned(), AttributeValue::S(datasource.tenant_id.to_string())),
            (
                schema::TENANT_INDEX_PARTITION_KEY.to_owned(),
                AttributeValue::S(datasource_partition(&datasource.tenant_id)),
            ),
            (schema::TENANT_INDEX_SORT_KEY.to_owned(), AttributeValue::S(datasource.id.to_string())),
            ("datasource".to_owned(), to_value(datasource)?),
        ]);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", schema::PARTITION_KEY);
        match put.send().await {
            Ok(_) => Ok(()),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Err(StoreError::AlreadyExists)
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn get_datasource(&self, tenant: &TenantId, id: &DatasourceId) -> Result<Option<Datasource>, StoreError> {
        let Some(item) = self.get_item(datasource_pk(id)).await? else { return Ok(None) };
        if string_attr(&item, "owner") != Some(tenant.as_str()) {
            return Ok(None);
        }
        from_item(item).map(Some)
    }

    async fn list_datasources(
        &self,
        tenant: &TenantId,
        limit: u32,
        after: Option<&Cursor<DatasourceId>>,
    ) -> Result<Page<Datasource>, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        let from = after.map(|cursor| cursor.id().to_string());
        let items = self.index_page(datasource_partition(tenant), limit, from, Order::Oldest).await?;
        let datasources = items.into_iter().map(from_item).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_lookahead(datasources, limit as usize, |datasource| &datasource.id))
    }

    async fn set_datasource_key(&self, tenant: &TenantId, id: &DatasourceId, key_id: &KeyId) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, AttributeValue::S(datasource_pk(id)))
            .update_expression("SET #datasource.key_id = :key")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#datasource", "datasource")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":key", AttributeValue::S(key_id.to_string()))
            .expression_attribute_values(":owner", AttributeValue::S(tenant.to_string()));
        match update.send().await {
            Ok(_) => Ok(()),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Err(StoreError::NotFound)
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn insert_successor(
        &self,
        tenant: &TenantId,
        id: &DatasourceId,
        old: &KeyId,
        successor: &KeyRecord,
    ) -> Result<(), StoreError> {
        let previous = self.get(tenant, old).await?.ok_or(StoreError::NotFound)?;
        let linked = crate::store::succeeded(&previous, &successor.id)?;
        let link = self.update_record(&previous, &linked, &[("replaced_by", to_value(&successor.id)?)])?;
        let pointer = Update::builder()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, AttributeValue::S(datasource_pk(id)))
            .update_expression("SET #datasource.key_id = :key")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#datasource", "datasource")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":key", AttributeValue::S(successor.id.to_string()))
            .expression_attribute_values(":owner", AttributeValue::S(tenant.to_string()))
            .build()
            .map_err(build_error)?;
        let items = vec![
            self.put(self.record_item(successor)?)?,
            self.put(id_item(successor))?,
            TransactWriteItem::builder().update(link).build(),
            TransactWriteItem::builder().update(pointer).build(),
            self.count_up(tenant, self.max_keys_per_tenant)?,
        ];
        // A failed link (changed since read: a concurrent regeneration) or pointer (the
        // datasource is gone) leaves nothing written.
        let conflict = StoreError::Conflict("the datasource or its key changed concurrently");
        self.transact_counted(items, Some(4), conflict).await
    }

    async fn delete_datasource(&self, tenant: &TenantId, id: &DatasourceId) -> Result<(), StoreError> {
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, AttributeValue::S(datasource_pk(id)))
            .condition_expression("attribute_not_exists(#pk) OR #owner = :owner")
            .expression_attribute_names("#pk", schema::PARTITION_KEY)
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", AttributeValue::S(tenant.to_string()));
        match delete.send().await {
            Ok(_) => Ok(()),
            // Another tenant's: not ours to delete, and not to be told apart from a missing one.
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(error) => Err(unavailable(error)),
        }
    }
}
