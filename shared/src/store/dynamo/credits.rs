//! [`CreditStore`] in the keys table: one item per balance, `pk = "credits#<meter>"`, its fields
//! as attributes (`remaining`, and with a refill `refill_amount`, `refill_interval` and `period`;
//! `low_threshold`), so that a spend is one conditional `UpdateItem` on them.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};

use super::{DynamoKeyStore, Item, number, string_attr, unavailable};
use crate::KeyId;
use crate::credits::{CreditBalance, CreditStore, Refill, RefillInterval, Spend};
use crate::store::StoreError;
use crate::store::schema::{self, credits_pk};

/// Spends lost to a concurrent refill before one lands: each loss means another spend refilled,
/// so the next try is a plain decrement. Past it, the store is called unavailable.
const SPEND_ATTEMPTS: usize = 4;

fn item_of(meter: &KeyId, balance: &CreditBalance) -> Item {
    let mut item = HashMap::from([
        (schema::PARTITION_KEY.to_owned(), AttributeValue::S(credits_pk(meter))),
        ("remaining".to_owned(), number(balance.remaining)),
    ]);
    if let Some(refill) = balance.refill {
        item.insert("refill_amount".to_owned(), number(refill.amount));
        item.insert("refill_interval".to_owned(), AttributeValue::S(refill.interval.as_str().to_owned()));
    }
    if let Some(period) = &balance.period {
        item.insert("period".to_owned(), AttributeValue::S(period.clone()));
    }
    if let Some(threshold) = balance.low_threshold {
        item.insert("low_threshold".to_owned(), number(threshold));
    }
    item
}

fn balance_of(item: &Item) -> Result<CreditBalance, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("a balance of credits: {what}"));
    let n = |name: &str| -> Result<Option<u64>, StoreError> {
        item.get(name)
            .map(|value| value.as_n().ok().and_then(|n| n.parse().ok()).ok_or_else(|| corrupt(name)))
            .transpose()
    };
    let refill = match (n("refill_amount")?, string_attr(item, "refill_interval")) {
        (Some(amount), Some(interval)) => {
            Some(Refill { amount, interval: interval.parse().map_err(|()| corrupt("refill_interval"))? })
        }
        (None, None) => None,
        _ => return Err(corrupt("half a refill")),
    };
    Ok(CreditBalance {
        remaining: n("remaining")?.ok_or_else(|| corrupt("no remaining"))?,
        refill,
        low_threshold: n("low_threshold")?,
        period: string_attr(item, "period").map(str::to_owned),
    })
}

/// What one conditional update answered: the item after it, or the item that refused it (`None`:
/// there is none).
enum Answer {
    Updated(Item),
    Refused(Option<Item>),
}

impl DynamoKeyStore {
    async fn update_balance(
        &self,
        meter: &KeyId,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Answer, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, AttributeValue::S(credits_pk(meter)))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#remaining", "remaining")
            .expression_attribute_names("#period", "period")
            .expression_attribute_names("#interval", "refill_interval")
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if condition.contains("#amount") {
            request = request.expression_attribute_names("#amount", "refill_amount");
        }
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(output) => Ok(Answer::Updated(output.attributes.unwrap_or_default())),
            Err(error) => match error.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(Answer::Refused(failed.item().cloned()))
                }
                _ => Err(unavailable(error)),
            },
        }
    }
}

impl CreditStore for DynamoKeyStore {
    async fn set_credits(&self, meter: &KeyId, balance: Option<&CreditBalance>) -> Result<(), StoreError> {
        match balance {
            Some(balance) => {
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item_of(meter, balance)))
                    .send()
                    .await
                    .map_err(unavailable)?;
            }
            None => {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key(schema::PARTITION_KEY, AttributeValue::S(credits_pk(meter)))
                    .send()
                    .await
                    .map_err(unavailable)?;
            }
        }
        Ok(())
    }

    async fn credits(&self, meter: &KeyId) -> Result<Option<CreditBalance>, StoreError> {
        self.get_item(credits_pk(meter)).await?.as_ref().map(balance_of).transpose()
    }

    async fn spend_credit(&self, meter: &KeyId, now: DateTime<Utc>) -> Result<Option<Spend>, StoreError> {
        let one = || (":one", number(1));
        for _ in 0..SPEND_ATTEMPTS {
            // The common case, one write: a credit left in the balance's current period.
            let answer = self
                .update_balance(
                    meter,
                    "SET #remaining = #remaining - :one",
                    "#remaining >= :one AND (attribute_not_exists(#interval) \
                     OR (#interval = :day AND #period = :today) OR (#interval = :month AND #period = :this_month))",
                    vec![
                        one(),
                        (":day", AttributeValue::S(RefillInterval::Day.as_str().into())),
                        (":today", AttributeValue::S(RefillInterval::Day.period_of(now))),
                        (":month", AttributeValue::S(RefillInterval::Month.as_str().into())),
                        (":this_month", AttributeValue::S(RefillInterval::Month.period_of(now))),
                    ],
                )
                .await?;
            let stored = match answer {
                Answer::Updated(item) => return Ok(Some(Spend::Spent(balance_of(&item)?))),
                Answer::Refused(None) => return Ok(None),
                Answer::Refused(Some(item)) => balance_of(&item)?,
            };
            let (Some(refill), Some(period)) = (stored.refill_due(now), &stored.period) else {
                return Ok(Some(Spend::Exhausted { refills_at: stored.refills_at(now) }));
            };
            // A new period: refill and spend in one write, provided nobody refilled (or set the
            // balance anew) since it was read.
            let answer = self
                .update_balance(
                    meter,
                    "SET #remaining = :left, #period = :period",
                    "#period = :read_period AND #interval = :interval AND #amount = :amount",
                    vec![
                        (":left", number(refill.amount - 1)),
                        (":period", AttributeValue::S(refill.interval.period_of(now))),
                        (":read_period", AttributeValue::S(period.clone())),
                        (":interval", AttributeValue::S(refill.interval.as_str().into())),
                        (":amount", number(refill.amount)),
                    ],
                )
                .await?;
            match answer {
                Answer::Updated(item) => return Ok(Some(Spend::Spent(balance_of(&item)?))),
                Answer::Refused(None) => return Ok(None),
                Answer::Refused(Some(_)) => continue,
            }
        }
        Err(StoreError::Unavailable("a balance of credits kept changing under its spends".into()))
    }
}
