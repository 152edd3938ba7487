//! The embedded key store: one redb file, for the Docker-free local API.
//!
//! redb serializes write transactions, so each read-modify-write below runs inside one write
//! transaction and is atomic by construction. Every commit is durable (fsync) before the call
//! returns. redb is synchronous, so calls run on Tokio's blocking pool.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};

use super::{Cursor, KeyStore, Page, StoreError};
use crate::audit::{AuditEvent, AuditLog};
use crate::{AuditId, KeyChanges, KeyDigest, KeyId, KeyRecord, OwnerId, PepperVersion, TenantId};

/// Digest bytes → the record as JSON.
const RECORDS: TableDefinition<&[u8], &str> = TableDefinition::new("records_by_digest");
/// Key id → digest bytes.
const IDS: TableDefinition<&str, &[u8]> = TableDefinition::new("digest_by_key_id");
/// `"{tenant}#{key id}"` → nothing: the listing index (`#` never occurs in a tenant id).
const TENANT_KEYS: TableDefinition<&str, ()> = TableDefinition::new("keys_by_tenant");
/// `"{tenant}#{owner}\u{1f}{key id}"` → nothing: the owners index. An owner id has no control
/// characters, so the unit separator ends it, and the owner's run ends before `\u{20}`.
const OWNER_KEYS: TableDefinition<&str, ()> = TableDefinition::new("keys_by_owner");
/// Tenant → how many of its keys are not yet retired (see [`KeyStore`]).
const TENANT_COUNTS: TableDefinition<&str, i64> = TableDefinition::new("live_keys_by_tenant");
/// `"{tenant}#{event id}"` → the audit event as JSON.
const AUDIT: TableDefinition<&str, &str> = TableDefinition::new("audit_by_tenant");

mod credits;
mod datasources;
mod records;
mod slots;
mod verifications;

#[derive(Clone)]
pub struct EmbeddedKeyStore {
    db: Arc<Database>,
    max_keys_per_tenant: u32,
}

impl std::fmt::Debug for EmbeddedKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedKeyStore")
    }
}

fn unavailable(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Unavailable(error.into().to_string())
}

fn decode(json: &str) -> Result<KeyRecord, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn encode(record: &KeyRecord) -> Result<String, StoreError> {
    serde_json::to_string(record).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn tenant_key(tenant: &TenantId, id: &impl std::fmt::Display) -> String {
    format!("{tenant}#{id}")
}

fn owner_prefix(tenant: &TenantId, owner: &OwnerId) -> String {
    format!("{tenant}#{owner}\u{1f}")
}

fn owner_key(record: &KeyRecord) -> Option<String> {
    record.owner_id.as_ref().map(|owner| format!("{}{}", owner_prefix(&record.tenant_id, owner), record.id))
}

/// The tables of one write transaction.
struct Tables<'txn> {
    records: Table<'txn, &'static [u8], &'static str>,
    ids: Table<'txn, &'static str, &'static [u8]>,
    tenant_keys: Table<'txn, &'static str, ()>,
    owner_keys: Table<'txn, &'static str, ()>,
    counts: Table<'txn, &'static str, i64>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            records: txn.open_table(RECORDS).map_err(unavailable)?,
            ids: txn.open_table(IDS).map_err(unavailable)?,
            tenant_keys: txn.open_table(TENANT_KEYS).map_err(unavailable)?,
            owner_keys: txn.open_table(OWNER_KEYS).map_err(unavailable)?,
            counts: txn.open_table(TENANT_COUNTS).map_err(unavailable)?,
        })
    }

    /// Adds `delta` to the tenant's count; a rise past `limit` is `LimitReached` (and the
    /// transaction, not committed, changes nothing).
    fn count(&mut self, tenant: &TenantId, delta: i64, limit: Option<(u32, u32)>) -> Result<(), StoreError> {
        let now = self.counts.get(tenant.as_str()).map_err(unavailable)?.map_or(0, |v| v.value());
        if let Some((allowed, reported)) = limit
            && now >= i64::from(allowed)
        {
            return Err(StoreError::LimitReached { limit: reported });
        }
        self.counts.insert(tenant.as_str(), now + delta).map_err(unavailable)?;
        Ok(())
    }

    fn record(&self, digest: &KeyDigest) -> Result<Option<KeyRecord>, StoreError> {
        let found = self.records.get(digest.as_bytes().as_slice()).map_err(unavailable)?;
        found.map(|json| decode(json.value())).transpose()
    }

    fn tenant_record(&self, tenant: &TenantId, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let Some(digest) = self.ids.get(id.as_str()).map_err(unavailable)? else { return Ok(None) };
        let digest = digest_from(digest.value())?;
        Ok(self.record(&digest)?.filter(|r| &r.tenant_id == tenant))
    }

    /// Writes the record, and moves its owners index entry when its owner changed.
    fn put_record(&mut self, record: &KeyRecord) -> Result<(), StoreError> {
        let before = self.record(&record.digest)?.and_then(|stored| owner_key(&stored));
        let after = owner_key(record);
        if before != after {
            if let Some(entry) = before {
                self.owner_keys.remove(entry.as_str()).map_err(unavailable)?;
            }
            if let Some(entry) = &after {
                self.owner_keys.insert(entry.as_str(), ()).map_err(unavailable)?;
            }
        }
        let json = encode(record)?;
        self.records.insert(record.digest.as_bytes().as_slice(), json.as_str()).map_err(unavailable)?;
        Ok(())
    }

    fn insert_new(&mut self, record: &KeyRecord) -> Result<(), StoreError> {
        let digest_taken = self.records.get(record.digest.as_bytes().as_slice()).map_err(unavailable)?.is_some();
        let id_taken = self.ids.get(record.id.as_str()).map_err(unavailable)?.is_some();
        if digest_taken || id_taken {
            return Err(StoreError::AlreadyExists);
        }
        self.put_record(record)?;
        self.ids.insert(record.id.as_str(), record.digest.as_bytes().as_slice()).map_err(unavailable)?;
        self.tenant_keys.insert(tenant_key(&record.tenant_id, &record.id).as_str(), ()).map_err(unavailable)?;
        Ok(())
    }
}

fn digest_from(bytes: &[u8]) -> Result<KeyDigest, StoreError> {
    let bytes: [u8; 32] =
        bytes.try_into().map_err(|_| StoreError::Corrupt("a stored digest is not 32 bytes".into()))?;
    Ok(KeyDigest::from_bytes(bytes))
}

impl EmbeddedKeyStore {
    /// Opens (or creates) the store file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(unavailable)?;
        let txn = db.begin_write().map_err(unavailable)?;
        Tables::open(&txn)?;
        txn.open_table(AUDIT).map_err(unavailable)?;
        txn.open_table(datasources::DATASOURCES).map_err(unavailable)?;
        txn.open_table(records::RECORDS_BY_SEQUENCE).map_err(unavailable)?;
        txn.open_table(records::RECORD_IDENTITIES).map_err(unavailable)?;
        txn.open_table(records::RECEIVED_COUNTS).map_err(unavailable)?;
        txn.commit().map_err(unavailable)?;
        Ok(Self { db: Arc::new(db), max_keys_per_tenant: super::DEFAULT_MAX_KEYS_PER_TENANT })
    }

    /// How many keys not yet retired one tenant may hold (`LATCHKEY_MAX_KEYS_PER_TENANT`).
    pub fn with_max_keys_per_tenant(mut self, limit: u32) -> Self {
        self.max_keys_per_tenant = limit;
        self
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }

    /// A point read, on the calling task: one or two B-tree lookups in redb's page cache take
    /// microseconds, less than the hop to the blocking pool and back (measured with
    /// infra/bench/load). Writes, which sync the file, and scans go through [`Self::blocking`].
    fn read_now<T>(&self, work: impl FnOnce(&Database) -> Result<T, StoreError>) -> Result<T, StoreError> {
        work(&self.db)
    }

    /// Up to `limit` records of one run of an index (`start` to `end`, each entry `start` then a
    /// key id), past the cursor's id, in id order: creation order.
    async fn index_page(
        &self,
        index: TableDefinition<'static, &'static str, ()>,
        start: String,
        end: String,
        limit: u32,
        after: Option<&Cursor>,
    ) -> Result<Page<KeyRecord>, StoreError> {
        let limit = limit.clamp(1, super::MAX_PAGE_SIZE) as usize;
        let after = after.map(|c| format!("{start}{}", c.id()));
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let index = txn.open_table(index).map_err(unavailable)?;
            let ids = txn.open_table(IDS).map_err(unavailable)?;
            let records = txn.open_table(RECORDS).map_err(unavailable)?;
            let lower = match &after {
                Some(after) => Bound::Excluded(after.as_str()),
                None => Bound::Included(start.as_str()),
            };
            let range = index.range::<&str>((lower, Bound::Excluded(end.as_str()))).map_err(unavailable)?;
            let mut items = Vec::with_capacity(limit + 1);
            for entry in range.take(limit + 1) {
                let (entry, _) = entry.map_err(unavailable)?;
                let id = &entry.value()[start.len()..];
                let digest = ids
                    .get(id)
                    .map_err(unavailable)?
                    .ok_or_else(|| StoreError::Corrupt(format!("{id} is indexed but has no id entry")))?;
                let json = records
                    .get(digest.value())
                    .map_err(unavailable)?
                    .ok_or_else(|| StoreError::Corrupt(format!("{id} has no record")))?;
                items.push(decode(json.value())?);
            }
            Ok(Page::from_lookahead(items, limit, |record| &record.id))
        })
        .await
    }

    /// Runs `change` in one write transaction and commits it only if it succeeds.
    async fn write<T, F>(&self, change: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tables<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let result = {
                let mut tables = Tables::open(&txn)?;
                change(&mut tables)?
            };
            txn.commit().map_err(unavailable)?;
            Ok(result)
        })
        .await
    }
}

impl KeyStore for EmbeddedKeyStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let (record, limit) = (record.clone(), self.max_keys_per_tenant);
        self.write(move |tables| {
            tables.insert_new(&record)?;
            tables.count(&record.tenant_id, 1, Some((limit, limit)))
        })
        .await
    }

    async fn find_by_digest(&self, digest: &KeyDigest) -> Result<Option<KeyRecord>, StoreError> {
        self.read_now(|db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let records = txn.open_table(RECORDS).map_err(unavailable)?;
            let found = records.get(digest.as_bytes().as_slice()).map_err(unavailable)?;
            found.map(|json| decode(json.value())).transpose()
        })
    }

    async fn get(&self, tenant: &TenantId, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.read_now(|db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let ids = txn.open_table(IDS).map_err(unavailable)?;
            let records = txn.open_table(RECORDS).map_err(unavailable)?;
            let Some(digest) = ids.get(id.as_str()).map_err(unavailable)? else { return Ok(None) };
            let found = records.get(digest.value()).map_err(unavailable)?;
            let record = found.map(|json| decode(json.value())).transpose()?;
            Ok(record.filter(|r| &r.tenant_id == tenant))
        })
    }

    async fn list(&self, tenant: &TenantId, limit: u32, after: Option<&Cursor>) -> Result<Page<KeyRecord>, StoreError> {
        // `$` follows `#`: the end of this tenant's run of index entries.
        self.index_page(TENANT_KEYS, format!("{tenant}#"), format!("{tenant}$"), limit, after).await
    }

    async fn owned(
        &self,
        tenant: &TenantId,
        owner: &OwnerId,
        limit: u32,
        after: Option<&Cursor>,
    ) -> Result<Page<KeyRecord>, StoreError> {
        let start = owner_prefix(tenant, owner);
        let end = format!("{tenant}#{owner}\u{20}");
        self.index_page(OWNER_KEYS, start, end, limit, after).await
    }

    async fn revoke(&self, tenant: &TenantId, id: &KeyId, at: DateTime<Utc>) -> Result<KeyRecord, StoreError> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(move |tables| {
            let record = tables.tenant_record(&tenant, &id)?.ok_or(StoreError::NotFound)?;
            let Some(updated) = super::revoked(&record, at) else { return Ok(record) };
            tables.put_record(&updated)?;
            Ok(updated)
        })
        .await
    }

    async fn update(&self, tenant: &TenantId, id: &KeyId, changes: &KeyChanges) -> Result<KeyRecord, StoreError> {
        let (tenant, id, changes) = (tenant.clone(), id.clone(), changes.clone());
        self.write(move |tables| {
            let record = tables.tenant_record(&tenant, &id)?.ok_or(StoreError::NotFound)?;
            let updated = super::updated(&record, &changes)?;
            tables.put_record(&updated)?;
            Ok(updated)
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
        let (tenant, id, replacement) = (tenant.clone(), id.clone(), replacement.clone());
        let limit = self.max_keys_per_tenant;
        let allowed = super::rotation_limit(limit, &replacement, old_expires_at);
        self.write(move |tables| {
            let old = tables.tenant_record(&tenant, &id)?.ok_or(StoreError::NotFound)?;
            let updated = super::rotated(&old, &replacement.id, old_expires_at)?;
            tables.insert_new(&replacement)?;
            tables.put_record(&updated)?;
            tables.count(&tenant, 1, Some((allowed, limit)))?;
            Ok(updated)
        })
        .await
    }

    async fn retire(&self, tenant: &TenantId, id: &KeyId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(move |tables| {
            let record = tables.tenant_record(&tenant, &id)?.ok_or(StoreError::NotFound)?;
            let Some(updated) = super::retired(&record, at)? else { return Ok(false) };
            tables.put_record(&updated)?;
            tables.count(&tenant, -1, None)?;
            Ok(true)
        })
        .await
    }

    async fn room(&self, tenant: &TenantId, allowance: u32) -> Result<(), StoreError> {
        let limit = self.max_keys_per_tenant;
        let live = self.read_now(|db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let counts = match txn.open_table(TENANT_COUNTS) {
                Ok(counts) => counts,
                // No key was ever counted: nothing is held.
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
                Err(error) => return Err(unavailable(error)),
            };
            Ok(counts.get(tenant.as_str()).map_err(unavailable)?.map_or(0, |v| v.value()))
        })?;
        super::room(live, limit, allowance)
    }

    async fn stopped(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        after: Option<&KeyRecord>,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let limit = limit.clamp(1, super::MAX_PAGE_SIZE) as usize;
        // The order of DynamoDB's index: by stop time, then by digest.
        let position = |record: &KeyRecord| record.stops_at().map(|at| (at.timestamp(), record.digest.to_hex()));
        let after = after.and_then(&position);
        self.blocking(move |db| {
            // A scan: a local store holds few keys, and the sweep runs rarely.
            let txn = db.begin_read().map_err(unavailable)?;
            let records = txn.open_table(RECORDS).map_err(unavailable)?;
            let mut stopped = Vec::new();
            for entry in records.iter().map_err(unavailable)? {
                let record = decode(entry.map_err(unavailable)?.1.value())?;
                let Some(at) = position(&record) else { continue };
                if record.retired_at.is_none() && at.0 <= now.timestamp() && after.as_ref().is_none_or(|a| at > *a) {
                    stopped.push((at, record));
                }
            }
            stopped.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(stopped.into_iter().take(limit).map(|(_, record)| record).collect())
        })
        .await
    }

    async fn touch(&self, digest: &KeyDigest, at: DateTime<Utc>) -> Result<(), StoreError> {
        let digest = *digest;
        self.write(move |tables| {
            let mut record = tables.record(&digest)?.ok_or(StoreError::NotFound)?;
            record.last_used_at = Some(at);
            tables.put_record(&record)
        })
        .await
    }

    async fn note_expiry_warning(&self, record: &KeyRecord) -> Result<bool, StoreError> {
        let (digest, expires_at) = (record.digest, record.expires_at);
        self.write(move |tables| {
            let Some(mut stored) = tables.record(&digest)? else { return Ok(false) };
            if expires_at.is_none() || stored.expires_at != expires_at || stored.expiry_warned_for == expires_at {
                return Ok(false);
            }
            stored.expiry_warned_for = expires_at;
            tables.put_record(&stored)?;
            Ok(true)
        })
        .await
    }

    async fn rehash(&self, record: &KeyRecord, digest: KeyDigest, version: PepperVersion) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(move |tables| {
            let current = tables.record(&record.digest)?;
            if current.is_none_or(|c| c.revision != record.revision) {
                return Err(StoreError::Conflict("the key was changed or already moved"));
            }
            let moved = super::rehashed(&record, digest, version);
            if tables.record(&moved.digest)?.is_some() {
                return Err(StoreError::Conflict("the key was changed or already moved"));
            }
            tables.records.remove(record.digest.as_bytes().as_slice()).map_err(unavailable)?;
            tables.put_record(&moved)?;
            tables.ids.insert(moved.id.as_str(), moved.digest.as_bytes().as_slice()).map_err(unavailable)?;
            Ok(())
        })
        .await
    }
}

impl AuditLog for EmbeddedKeyStore {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let key = tenant_key(&event.tenant_id, &event.id);
        let json = serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            txn.open_table(AUDIT).map_err(unavailable)?.insert(key.as_str(), json.as_str()).map_err(unavailable)?;
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn events(
        &self,
        tenant: &TenantId,
        limit: u32,
        before: Option<&Cursor<AuditId>>,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let limit = limit.clamp(1, super::MAX_PAGE_SIZE) as usize;
        let start = format!("{tenant}#");
        let end = match before {
            Some(cursor) => Bound::Excluded(tenant_key(tenant, cursor.id())),
            // `$` follows `#`: the end of this tenant's run.
            None => Bound::Excluded(format!("{tenant}$")),
        };
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let audit = txn.open_table(AUDIT).map_err(unavailable)?;
            let end = end.as_ref().map(String::as_str);
            let range = audit.range::<&str>((Bound::Included(start.as_str()), end)).map_err(unavailable)?;
            let mut events = Vec::with_capacity(limit + 1);
            for entry in range.rev().take(limit + 1) {
                let (_, json) = entry.map_err(unavailable)?;
                events.push(serde_json::from_str(json.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?);
            }
            Ok(Page::from_lookahead(events, limit, |event: &AuditEvent| &event.id))
        })
        .await
    }
}
