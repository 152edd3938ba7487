//! [`GatewaySlots`] in the keys table (layout in [`crate::store::schema`]).

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use chrono::{DateTime, Utc};

use super::{DynamoKeyStore, build_error, condition_held, number, string_attr, to_value, unavailable};
use crate::gateway::pool::{Claim, GatewaySlots, Lease};
use crate::store::StoreError;
use crate::store::schema::{self, digest_pk, pool_pk, slot_pk};
use crate::{GatewayKey, KeyDigest, KeyId, TierName};

fn epoch(at: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(at.timestamp().to_string())
}

fn value_of(item: &super::Item) -> Result<String, StoreError> {
    string_attr(item, "value").map(str::to_owned).ok_or_else(|| StoreError::Corrupt("a pool slot has no value".into()))
}

impl GatewaySlots for DynamoKeyStore {
    async fn pool_size(&self, tier: &TierName) -> Result<u32, StoreError> {
        let Some(item) = self.get_item(pool_pk(tier)).await? else { return Ok(0) };
        item.get("size")
            .and_then(|n| n.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError::Corrupt(format!("the pool of tier {tier} has no size")))
    }

    async fn claim(
        &self,
        tier: &TierName,
        slot: u32,
        key: &KeyId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, AttributeValue::S(slot_pk(tier, slot)))
            .update_expression("SET holder = :key, lease_until = :until")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(holder) OR holder = :key OR lease_until <= :now)",
            )
            .expression_attribute_values(":key", AttributeValue::S(key.to_string()))
            .expression_attribute_values(":until", epoch(until))
            .expression_attribute_values(":now", epoch(now))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Claim::Leased(value_of(&output.attributes.unwrap_or_default())?)),
            Err(error) => match error.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => match failed.item() {
                    Some(held) => Ok(Claim::Held(value_of(held)?)),
                    None => Ok(Claim::Missing),
                },
                _ => Err(unavailable(error)),
            },
        }
    }

    async fn add_slot(&self, tier: &TierName, slot: u32, gateway_key: &GatewayKey) -> Result<bool, StoreError> {
        let item = HashMap::from([
            (schema::PARTITION_KEY.to_owned(), AttributeValue::S(slot_pk(tier, slot))),
            ("gateway_key_id".to_owned(), AttributeValue::S(gateway_key.id.clone())),
            ("value".to_owned(), AttributeValue::S(gateway_key.value.clone())),
        ]);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_error)?;
        // The size moves from `slot` to `slot + 1` in the same transaction: slots stay numbered
        // without a gap, whoever adds them.
        let size = Update::builder()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, AttributeValue::S(pool_pk(tier)))
            .update_expression("SET #size = :next")
            .condition_expression(if slot == 0 { "attribute_not_exists(#size)" } else { "#size = :slot" })
            .expression_attribute_names("#size", "size")
            .expression_attribute_values(":next", number(u64::from(slot) + 1));
        let size = if slot == 0 { size } else { size.expression_attribute_values(":slot", number(u64::from(slot))) };
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(size.build().map_err(build_error)?).build(),
        ];
        match self.transact(items, StoreError::AlreadyExists).await {
            Ok(()) => Ok(true),
            Err(StoreError::AlreadyExists) => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn note_lease(&self, digest: &KeyDigest, lease: &Lease) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, AttributeValue::S(digest_pk(digest)))
            .update_expression("SET lease = :lease")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":lease", to_value(lease)?)
            .send()
            .await;
        if condition_held::<_, _>(result)? { Ok(()) } else { Err(StoreError::NotFound) }
    }

    async fn forget_own_gateway_key(&self, digest: &KeyDigest, gateway_key_id: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, AttributeValue::S(digest_pk(digest)))
            .update_expression("REMOVE gateway_key")
            .condition_expression("gateway_key.id = :id")
            .expression_attribute_values(":id", AttributeValue::S(gateway_key_id.to_owned()))
            .send()
            .await;
        condition_held(result)
    }
}

impl DynamoKeyStore {
    /// One page of the keys that still have a gateway key of their own (from before the pool),
    /// after `start` (the previous page's last item key): a `Scan` of the whole table with a
    /// filter, for the one-time move onto the pool (`latchkey-admin adopt-gateway-keys`), never
    /// on a request's path.
    pub async fn with_own_gateway_keys(
        &self,
        start: Option<HashMap<String, AttributeValue>>,
    ) -> Result<(Vec<crate::KeyRecord>, Option<HashMap<String, AttributeValue>>), StoreError> {
        let page = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(pk, :digest) AND attribute_exists(gateway_key)")
            .expression_attribute_values(":digest", AttributeValue::S("digest#".to_owned()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(unavailable)?;
        let records = page.items.unwrap_or_default().into_iter().map(super::from_item).collect::<Result<_, _>>()?;
        Ok((records, page.last_evaluated_key))
    }
}
