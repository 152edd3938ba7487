//! [`VerificationStore`] in the redb file, for the local API: a key's hours by
//! `tenant#key#hour`, and the same counts by `tenant#hour#key` for its tenant's overview, both
//! written in one transaction. Hours are RFC 3339 (`2026-12-05T10:00:00Z`), which sort as time.

use chrono::{DateTime, SecondsFormat, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{EmbeddedKeyStore, unavailable};
use crate::store::StoreError;
use crate::verifications::{KeyHour, Outcome, OutcomeCounts, REFUSALS_KEPT, Refusal, UnknownCounts, VerificationStore};
use crate::{KeyId, TenantId};

/// `tenant#key#hour` → the counts of the first six of [`Outcome::ALL`], in its order: the
/// outcomes there were when the file's format was set.
const BY_KEY: TableDefinition<&str, [u64; 6]> = TableDefinition::new("verifications_by_key");
/// `tenant#hour#key` → the same counts.
const BY_TENANT: TableDefinition<&str, [u64; 6]> = TableDefinition::new("verifications_by_tenant");
/// The outcomes added since, beside them under the same names (a table's value type cannot grow
/// without losing what a data directory holds): `usage_exceeded`.
const LATER_BY_KEY: TableDefinition<&str, [u64; 1]> = TableDefinition::new("verifications_by_key_later");
const LATER_BY_TENANT: TableDefinition<&str, [u64; 1]> = TableDefinition::new("verifications_by_tenant_later");
const LATER: [Outcome; 1] = [Outcome::UsageExceeded];

/// The two tables of one kind (by key, or by tenant): the first six outcomes, and the later ones.
type Kind = (TableDefinition<'static, &'static str, [u64; 6]>, TableDefinition<'static, &'static str, [u64; 1]>);
/// hour → `[unknown, malformed]`, for the whole deployment.
const UNKNOWN: TableDefinition<&str, [u64; 2]> = TableDefinition::new("verifications_unknown");
/// `tenant#key#time#n` → a refusal as JSON; a key keeps its latest [`REFUSALS_KEPT`].
const REFUSALS: TableDefinition<&str, &str> = TableDefinition::new("refusals_by_key");

fn hour_text(hour: DateTime<Utc>) -> String {
    hour.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse_hour(text: &str) -> Result<DateTime<Utc>, StoreError> {
    text.parse().map_err(|e| StoreError::Corrupt(format!("an hour `{text}`: {e}")))
}

fn first_six(outcome: Outcome) -> bool {
    !LATER.contains(&outcome)
}

fn to_array<const N: usize>(outcomes: [Outcome; N], counts: &OutcomeCounts) -> [u64; N] {
    outcomes.map(|outcome| counts.get(outcome))
}

fn six() -> [Outcome; 6] {
    let mut first = Outcome::ALL.into_iter().filter(|outcome| first_six(*outcome));
    std::array::from_fn(|_| first.next().expect("six outcomes precede the later ones"))
}

fn added<const N: usize>(outcomes: [Outcome; N], stored: Option<[u64; N]>, counts: &OutcomeCounts) -> [u64; N] {
    let mut sum = stored.unwrap_or([0; N]);
    for (slot, n) in sum.iter_mut().zip(to_array(outcomes, counts)) {
        *slot = slot.saturating_add(n);
    }
    sum
}

/// Adds `counts` to the entry `name` of both tables of a kind (only where a count is not zero).
fn add_counts(
    txn: &redb::WriteTransaction,
    (first, later): Kind,
    name: &str,
    counts: &OutcomeCounts,
) -> Result<(), StoreError> {
    if six().into_iter().any(|outcome| counts.get(outcome) > 0) {
        let mut table = txn.open_table(first).map_err(unavailable)?;
        let sum = added(six(), table.get(name).map_err(unavailable)?.map(|v| v.value()), counts);
        table.insert(name, sum).map_err(unavailable)?;
    }
    if LATER.into_iter().any(|outcome| counts.get(outcome) > 0) {
        let mut table = txn.open_table(later).map_err(unavailable)?;
        let sum = added(LATER, table.get(name).map_err(unavailable)?.map(|v| v.value()), counts);
        table.insert(name, sum).map_err(unavailable)?;
    }
    Ok(())
}

/// Every entry of one table with `from <= name < to`, its counts added to `found` by name (none
/// before the table's first write).
fn read_into<const N: usize>(
    txn: &redb::ReadTransaction,
    table: TableDefinition<&str, [u64; N]>,
    outcomes: [Outcome; N],
    (from, to): (&str, &str),
    found: &mut std::collections::BTreeMap<String, OutcomeCounts>,
) -> Result<(), StoreError> {
    let table = match txn.open_table(table) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(error) => return Err(unavailable(error)),
    };
    for entry in table.range(from..to).map_err(unavailable)? {
        let (name, values) = entry.map_err(unavailable)?;
        let counts = found.entry(name.value().to_owned()).or_default();
        for (outcome, n) in outcomes.into_iter().zip(values.value()) {
            counts.add(outcome, n);
        }
    }
    Ok(())
}

/// Every entry of a kind with `from <= name < to`: its name and counts, in name order.
fn counts_in(
    db: &redb::Database,
    (first, later): Kind,
    from: &str,
    to: &str,
) -> Result<Vec<(String, OutcomeCounts)>, StoreError> {
    let txn = db.begin_read().map_err(unavailable)?;
    let mut found = std::collections::BTreeMap::new();
    read_into(&txn, first, six(), (from, to), &mut found)?;
    read_into(&txn, later, LATER, (from, to), &mut found)?;
    Ok(found.into_iter().collect())
}

impl VerificationStore for EmbeddedKeyStore {
    async fn add_key_hour(&self, hour: &KeyHour) -> Result<(), StoreError> {
        let hour = hour.clone();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let at = hour_text(hour.hour);
                let by_key = format!("{}#{}#{at}", hour.tenant, hour.key);
                add_counts(&txn, (BY_KEY, LATER_BY_KEY), &by_key, &hour.counts)?;
                let by_tenant = format!("{}#{at}#{}", hour.tenant, hour.key);
                add_counts(&txn, (BY_TENANT, LATER_BY_TENANT), &by_tenant, &hour.counts)?;
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn add_unknown(&self, hour: DateTime<Utc>, counts: UnknownCounts) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut table = txn.open_table(UNKNOWN).map_err(unavailable)?;
                let at = hour_text(hour);
                let [unknown, malformed] = table.get(at.as_str()).map_err(unavailable)?.map_or([0, 0], |v| v.value());
                let sum = [unknown.saturating_add(counts.unknown), malformed.saturating_add(counts.malformed)];
                table.insert(at.as_str(), sum).map_err(unavailable)?;
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn add_refusals(&self, tenant: &TenantId, key: &KeyId, refusals: &[Refusal]) -> Result<(), StoreError> {
        let (prefix, end) = (format!("{tenant}#{key}#"), format!("{tenant}#{key}$"));
        let refusals = refusals.to_vec();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut table = txn.open_table(REFUSALS).map_err(unavailable)?;
                for (n, refusal) in refusals.iter().enumerate() {
                    let at = refusal.at.to_rfc3339_opts(SecondsFormat::Micros, true);
                    let json = serde_json::to_string(refusal).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    // `n` keeps refusals of the same microsecond apart, in the order noted.
                    table.insert(format!("{prefix}{at}#{n:02}").as_str(), json.as_str()).map_err(unavailable)?;
                }
                // `$` follows `#`: `end` is past this key's run.
                let names: Vec<String> = table
                    .range(prefix.as_str()..end.as_str())
                    .map_err(unavailable)?
                    .map(|entry| entry.map(|(name, _)| name.value().to_owned()))
                    .collect::<Result<_, _>>()
                    .map_err(unavailable)?;
                for stale in names.iter().take(names.len().saturating_sub(REFUSALS_KEPT)) {
                    table.remove(stale.as_str()).map_err(unavailable)?;
                }
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn refusals(&self, tenant: &TenantId, key: &KeyId) -> Result<Vec<Refusal>, StoreError> {
        let prefix = format!("{tenant}#{key}#");
        let end = format!("{tenant}#{key}$");
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = match txn.open_table(REFUSALS) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(error) => return Err(unavailable(error)),
            };
            let mut refusals = Vec::new();
            for entry in table.range(prefix.as_str()..end.as_str()).map_err(unavailable)?.rev().take(REFUSALS_KEPT) {
                let (_, json) = entry.map_err(unavailable)?;
                refusals.push(serde_json::from_str(json.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?);
            }
            Ok(refusals)
        })
        .await
    }

    async fn key_hours(
        &self,
        tenant: &TenantId,
        key: &KeyId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, OutcomeCounts)>, StoreError> {
        let prefix = format!("{tenant}#{key}#");
        let (from, to) = (format!("{prefix}{}", hour_text(since)), format!("{prefix}{}", hour_text(until)));
        let hours = self.blocking(move |db| counts_in(db, (BY_KEY, LATER_BY_KEY), &from, &to)).await?;
        hours.into_iter().map(|(name, counts)| Ok((parse_hour(&name[prefix.len()..])?, counts))).collect()
    }

    async fn tenant_hours(
        &self,
        tenant: &TenantId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<KeyHour>, StoreError> {
        let prefix = format!("{tenant}#");
        let (from, to) = (format!("{prefix}{}", hour_text(since)), format!("{prefix}{}", hour_text(until)));
        let hours = self.blocking(move |db| counts_in(db, (BY_TENANT, LATER_BY_TENANT), &from, &to)).await?;
        hours
            .into_iter()
            .map(|(name, counts)| {
                let rest = &name[prefix.len()..];
                let (at, key) =
                    rest.split_once('#').ok_or_else(|| StoreError::Corrupt(format!("a verification `{rest}`")))?;
                let key = key.parse().map_err(|_| StoreError::Corrupt(format!("a key id `{key}`")))?;
                Ok(KeyHour { tenant: tenant.clone(), key, hour: parse_hour(at)?, counts })
            })
            .collect()
    }
}
