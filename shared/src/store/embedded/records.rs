//! [`RecordStore`] in the redb file, beside the keys: for the local API. A datasource's records
//! by `datasource#sequence`, and its identities by `datasource#identity digest` (what makes a
//! resent record a duplicate). One write transaction per request: its records are stored
//! together or not at all.

use std::collections::HashSet;
use std::ops::Bound;

use chrono::{DateTime, NaiveDate, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{EmbeddedKeyStore, unavailable};
use crate::DatasourceId;
use crate::ingest::page::RecordPage;
use crate::ingest::{NewRecord, PutOutcome, RecordStore, RecordsDeleted, Sequence, StoredRecord};
use crate::store::{Cursor, Page, StoreError};

pub(super) const RECORDS_BY_SEQUENCE: TableDefinition<&str, &str> = TableDefinition::new("records_by_sequence");
pub(super) const RECORD_IDENTITIES: TableDefinition<&str, &str> = TableDefinition::new("record_identities");
/// `datasource#YYYY-MM-DD` → records received that day (the ingest cap).
pub(super) const RECEIVED_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("received_counts");

fn sequence_key(datasource: &DatasourceId, sequence: &Sequence) -> String {
    format!("{datasource}#{sequence}")
}

impl RecordStore for EmbeddedKeyStore {
    async fn put(&self, datasource: &DatasourceId, records: &[NewRecord]) -> Vec<PutOutcome> {
        let (datasource, records) = (datasource.clone(), records.to_vec());
        let count = records.len();
        let written = self
            .blocking(move |db| {
                let txn = db.begin_write().map_err(unavailable)?;
                let mut outcomes = Vec::with_capacity(records.len());
                {
                    let mut by_sequence = txn.open_table(RECORDS_BY_SEQUENCE).map_err(unavailable)?;
                    let mut identities = txn.open_table(RECORD_IDENTITIES).map_err(unavailable)?;
                    for record in records {
                        let identity = format!("{datasource}#{}", record.identity.digest);
                        if identities.get(identity.as_str()).map_err(unavailable)?.is_some() {
                            outcomes.push(PutOutcome::Duplicate);
                            continue;
                        }
                        let stored = StoredRecord {
                            id: record.identity.id.clone(),
                            received_at: record.sequence.received_at(),
                            sequence: record.sequence.clone(),
                            data: record.data,
                        };
                        let json = serde_json::to_string(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        let key = sequence_key(&datasource, &stored.sequence);
                        by_sequence.insert(key.as_str(), json.as_str()).map_err(unavailable)?;
                        identities.insert(identity.as_str(), key.as_str()).map_err(unavailable)?;
                        outcomes.push(PutOutcome::Stored);
                    }
                }
                txn.commit().map_err(unavailable)?;
                Ok(outcomes)
            })
            .await;
        written.unwrap_or_else(|error| vec![PutOutcome::Failed(error.to_string()); count])
    }

    async fn list(
        &self,
        datasource: &DatasourceId,
        since: Option<DateTime<Utc>>,
        limit: u32,
        after: Option<&Cursor<Sequence>>,
    ) -> Result<Page<StoredRecord>, StoreError> {
        let floor = since.map(Sequence::floor);
        let start = match (after.map(Cursor::id), floor) {
            (Some(after), Some(floor)) if floor > *after => Bound::Included(sequence_key(datasource, &floor)),
            (Some(after), _) => Bound::Excluded(sequence_key(datasource, after)),
            (None, Some(floor)) => Bound::Included(sequence_key(datasource, &floor)),
            (None, None) => Bound::Excluded(format!("{datasource}#")),
        };
        // `$` follows `#`: the end of this datasource's run.
        let end = format!("{datasource}$");
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(RECORDS_BY_SEQUENCE).map_err(unavailable)?;
            let start = start.as_ref().map(String::as_str);
            let range = table.range::<&str>((start, Bound::Excluded(end.as_str()))).map_err(unavailable)?;
            let mut page = RecordPage::new(limit);
            for entry in range {
                let (_, json) = entry.map_err(unavailable)?;
                let record = serde_json::from_str(json.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                if !page.offer(record) {
                    return Ok(page.finish(true));
                }
            }
            Ok(page.finish(false))
        })
        .await
    }

    async fn count_received(
        &self,
        datasource: &DatasourceId,
        day: NaiveDate,
        records: u64,
        cap: u64,
    ) -> Result<bool, StoreError> {
        let key = format!("{datasource}#{day}");
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let counted = {
                let mut counts = txn.open_table(RECEIVED_COUNTS).map_err(unavailable)?;
                let received = counts.get(key.as_str()).map_err(unavailable)?.map_or(0, |count| count.value());
                let total = received.checked_add(records).filter(|total| *total <= cap);
                if let Some(total) = total {
                    counts.insert(key.as_str(), total).map_err(unavailable)?;
                }
                total.is_some()
            };
            txn.commit().map_err(unavailable)?;
            Ok(counted)
        })
        .await
    }

    async fn delete_records(&self, datasource: &DatasourceId, budget: u32) -> Result<RecordsDeleted, StoreError> {
        let datasource = datasource.clone();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let step = {
                let (start, end) = (format!("{datasource}#"), format!("{datasource}$"));
                let mut by_sequence = txn.open_table(RECORDS_BY_SEQUENCE).map_err(unavailable)?;
                let mut identities = txn.open_table(RECORD_IDENTITIES).map_err(unavailable)?;
                let range = (Bound::Excluded(start.as_str()), Bound::Excluded(end.as_str()));
                let doomed: Vec<String> = by_sequence
                    .range::<&str>(range)
                    .map_err(unavailable)?
                    .take(budget as usize + 1)
                    .map(|entry| entry.map(|(key, _)| key.value().to_owned()).map_err(unavailable))
                    .collect::<Result<_, _>>()?;
                let remaining = doomed.len() > budget as usize;
                let doomed: HashSet<String> = doomed.into_iter().take(budget as usize).collect();
                for key in &doomed {
                    by_sequence.remove(key.as_str()).map_err(unavailable)?;
                }
                let stale: Vec<String> = identities
                    .range::<&str>(range)
                    .map_err(unavailable)?
                    .filter_map(|entry| entry.ok())
                    .filter(|(_, sequence)| doomed.contains(sequence.value()))
                    .map(|(key, _)| key.value().to_owned())
                    .collect();
                for key in stale {
                    identities.remove(key.as_str()).map_err(unavailable)?;
                }
                RecordsDeleted { deleted: doomed.len() as u64, remaining }
            };
            txn.commit().map_err(unavailable)?;
            Ok(step)
        })
        .await
    }
}
