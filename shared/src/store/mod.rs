//! Where keys live. One narrow contract, two real implementations: DynamoDB for the deployed
//! stack and redb (an embedded file) for the local API. The same contract tests run against both.

use std::fmt;
use std::future::Future;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

use crate::{ApiError, KeyChanges, KeyDigest, KeyId, KeyRecord, OwnerId, PepperVersion, TenantId};

#[cfg(feature = "aws")]
pub mod dynamo;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod schema;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A key with this digest or id exists already (the conditional create said no).
    #[error("a key with this digest or id already exists")]
    AlreadyExists,
    #[error("no such key")]
    NotFound,
    /// A concurrent or earlier change forbids this one (e.g. already rotated, revoked, or moved
    /// to another digest).
    #[error("{0}")]
    Conflict(&'static str),
    /// The tenant has `limit` keys that have not been retired ([`KeyStore::retire`]).
    #[error("the tenant holds {limit} keys, its limit")]
    LimitReached { limit: u32 },
    #[error("the page cursor is not one this service issued")]
    InvalidCursor,
    /// The store cannot be reached, timed out, or throttled us. Callers fail closed.
    #[error("the key store is unavailable: {0}")]
    Unavailable(String),
    /// A stored item cannot be read back: a bug or a hand edit, never the caller's fault.
    #[error("a stored item is malformed: {0}")]
    Corrupt(String),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::AlreadyExists => ApiError::conflict("the key already exists"),
            StoreError::Conflict(message) => ApiError::conflict(message),
            StoreError::LimitReached { limit } => ApiError::TenantKeyLimitReached { limit },
            StoreError::InvalidCursor => ApiError::validation("cursor", "the cursor is not valid"),
            StoreError::Unavailable(cause) => {
                tracing::error!(%cause, "key store unavailable");
                ApiError::ServiceUnavailable
            }
            StoreError::Corrupt(cause) => {
                tracing::error!(%cause, "malformed key record");
                ApiError::Internal
            }
        }
    }
}

/// Keys a tenant may hold unless the store is told otherwise (`LATCHKEY_MAX_KEYS_PER_TENANT`).
pub const DEFAULT_MAX_KEYS_PER_TENANT: u32 = crate::config::DEFAULT_MAX_KEYS_PER_TENANT;

/// Largest page a list call returns.
pub const MAX_PAGE_SIZE: u32 = 100;

/// One page of a tenant's keys, in creation order.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present when more items follow; opaque to clients.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from the items of one read of up to `limit + 1`: the extra item only tells that
    /// another page follows (so there is never an empty last page), and is dropped.
    pub(crate) fn from_lookahead<Id>(mut items: Vec<T>, limit: usize, id: impl Fn(&T) -> &Id) -> Self
    where
        Id: FromStr + fmt::Display + Clone,
    {
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|last| Cursor::after(id(last)).encode())
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

/// Where a page starts: after the id the previous page ended with (a key id, or an audit event
/// id). Opaque on the wire (base64url), and free of digests, so cursors can be shown to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor<Id = KeyId>(Id);

impl<Id: FromStr + fmt::Display> Cursor<Id> {
    pub fn after(id: &Id) -> Self
    where
        Id: Clone,
    {
        Self(id.clone())
    }

    pub fn id(&self) -> &Id {
        &self.0
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.to_string())
    }

    pub fn decode(text: &str) -> Result<Self, StoreError> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| StoreError::InvalidCursor)?;
        let id = std::str::from_utf8(&bytes).map_err(|_| StoreError::InvalidCursor)?;
        id.parse().map(Self).map_err(|_| StoreError::InvalidCursor)
    }
}

/// The storage contract. Every method is one logical operation whose atomicity the
/// implementation guarantees (conditional writes or transactions in DynamoDB, one write
/// transaction in redb).
///
/// Each tenant has a count of its keys not yet retired, changed in the same transaction as the
/// keys: `insert` and `rotate` add one (refused with `LimitReached` at the store's limit), and
/// `retire` takes one away. It is what keeps one tenant from using up the region's API Gateway
/// keys, which every tenant shares.
pub trait KeyStore: Send + Sync {
    /// Stores a new key. `AlreadyExists` if its digest or its id is taken, `LimitReached` if the
    /// tenant holds as many keys as it may.
    fn insert(&self, record: &KeyRecord) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Verification's one read: the record stored under this digest, if any.
    fn find_by_digest(&self, digest: &KeyDigest) -> impl Future<Output = Result<Option<KeyRecord>, StoreError>> + Send;

    /// A tenant's key by id. Another tenant's key is `None`, exactly like a missing one.
    fn get(&self, tenant: &TenantId, id: &KeyId) -> impl Future<Output = Result<Option<KeyRecord>, StoreError>> + Send;

    /// [`Self::get`] for answering a read (`GET /keys/{id}`): one request where the store can, at
    /// the price of lagging the latest write by a moment (DynamoDB reads it from the tenant index,
    /// which follows the table within a fraction of a second). A key not yet in the index is read
    /// as `get` reads it, so a key just made is never missing. Never for a read-modify-write.
    fn lookup(
        &self,
        tenant: &TenantId,
        id: &KeyId,
    ) -> impl Future<Output = Result<Option<KeyRecord>, StoreError>> + Send {
        self.get(tenant, id)
    }

    /// A page of a tenant's keys in creation order, at most `limit` (1 to [`MAX_PAGE_SIZE`]).
    fn list(
        &self,
        tenant: &TenantId,
        limit: u32,
        after: Option<&Cursor>,
    ) -> impl Future<Output = Result<Page<KeyRecord>, StoreError>> + Send;

    /// A page of the keys of one owner of a tenant, in creation order, at most `limit`: one
    /// query of an index of owners, never a scan of the tenant's keys. Like `list`, it may lag a
    /// write by moments in DynamoDB (its indexes are eventually consistent).
    fn owned(
        &self,
        tenant: &TenantId,
        owner: &OwnerId,
        limit: u32,
        after: Option<&Cursor>,
    ) -> impl Future<Output = Result<Page<KeyRecord>, StoreError>> + Send;

    /// Revokes a key at `at`. Idempotent: a revoked key stays revoked at its first time.
    /// Returns the record as stored. `NotFound` for a missing or another tenant's key.
    fn revoke(
        &self,
        tenant: &TenantId,
        id: &KeyId,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<KeyRecord, StoreError>> + Send;

    /// Atomically stores `replacement` and marks key `id` as replaced by it, now expiring at
    /// `old_expires_at` (the end of its grace period). Exactly one of two concurrent rotations
    /// wins; the other, like a rotation of a revoked key, is `Conflict`. Returns the old record
    /// as stored. Counted like `insert`, except that a rotation whose old key stops at once
    /// (`old_expires_at` not after the replacement's creation) may pass the limit by one: the
    /// caller retires the old key right after.
    fn rotate(
        &self,
        tenant: &TenantId,
        id: &KeyId,
        replacement: &KeyRecord,
        old_expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<KeyRecord, StoreError>> + Send;

    /// Applies `changes` to a tenant's key, atomically against concurrent changes (a change made
    /// between read and write is re-read, never overwritten). A revoked key is `Conflict`, as is a
    /// new expiry for a rotated key (its expiry is its grace period). Returns the record as stored.
    fn update(
        &self,
        tenant: &TenantId,
        id: &KeyId,
        changes: &KeyChanges,
    ) -> impl Future<Output = Result<KeyRecord, StoreError>> + Send;

    /// Marks a dead key (revoked, or expired by `at`) as retired at `at`, giving its place in its
    /// tenant's count back; its gateway key must be deleted by then. `true` if this call retired
    /// it, `false` if it was retired already; `Conflict` for a key that still verifies, `NotFound`
    /// for a missing or another tenant's key. The record becomes collectable by the TTL from now.
    fn retire(
        &self,
        tenant: &TenantId,
        id: &KeyId,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// `Ok` if the tenant holds fewer than its limit plus `allowance` keys not yet retired,
    /// `LimitReached` if not: a consistent read of the count, checked before anything is made
    /// for a new key. Only advisory (a concurrent insert may take the last place in between);
    /// `insert` and `rotate` enforce the limit.
    fn room(&self, tenant: &TenantId, allowance: u32) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Keys that stopped verifying by `now` (revoked, expired, past a rotation's grace) and are
    /// not yet retired, in the order they stopped, at most `limit` (1 to [`MAX_PAGE_SIZE`]), after
    /// `after` (the last of the previous page). What the scheduled sweep retires.
    fn stopped(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        after: Option<&KeyRecord>,
    ) -> impl Future<Output = Result<Vec<KeyRecord>, StoreError>> + Send;

    /// Records that the key was used at `at` (`last_used_at`). Best effort and unconditional on
    /// the revision: it never conflicts with a revocation, and never creates an item for a key
    /// that is gone.
    fn touch(&self, digest: &KeyDigest, at: DateTime<Utc>) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Notes that `key.expiring` is sent for the record's `expires_at`, if the stored key still
    /// expires then and was not noted for it yet: `true` if this call noted it (its caller then
    /// sends the event, exactly once among concurrent callers), `false` if not. Unconditional
    /// on the revision, like `touch`: a used key is not a changed key.
    fn note_expiry_warning(&self, record: &KeyRecord) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Moves a record found under an older pepper to its digest under the current one, provided
    /// it has not changed since it was read (`record.revision`) and has not moved already:
    /// otherwise `Conflict`, and nothing is written.
    fn rehash(
        &self,
        record: &KeyRecord,
        digest: KeyDigest,
        version: PepperVersion,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

// The changes both stores make, so their semantics cannot drift apart.

/// The record after revocation at `at`; `None` when it is revoked already (revocation is
/// idempotent and keeps its first time).
pub(crate) fn revoked(record: &KeyRecord, at: DateTime<Utc>) -> Option<KeyRecord> {
    if record.revoked_at.is_some() {
        return None;
    }
    let mut updated = record.clone();
    updated.revoked_at = Some(at);
    updated.revision += 1;
    Some(updated)
}

/// The old record after a rotation: a revoked key stays dead, and a key is replaced at most once.
pub(crate) fn rotated(
    old: &KeyRecord,
    replacement: &KeyId,
    expires_at: DateTime<Utc>,
) -> Result<KeyRecord, StoreError> {
    if old.revoked_at.is_some() {
        return Err(StoreError::Conflict("a revoked key cannot be rotated"));
    }
    if old.replaced_by.is_some() {
        return Err(StoreError::Conflict("the key was already rotated"));
    }
    let mut updated = old.clone();
    updated.expires_at = Some(expires_at);
    updated.replaced_by = Some(replacement.clone());
    updated.revision += 1;
    Ok(updated)
}

/// The old record once a new key succeeds it after its revocation (a datasource's new ingest
/// key): it stays revoked, and gains the link that leads from it to its successor. A key is
/// replaced at most once, so of two concurrent successions one is `Conflict`.
pub(crate) fn succeeded(old: &KeyRecord, successor: &KeyId) -> Result<KeyRecord, StoreError> {
    if old.revoked_at.is_none() {
        return Err(StoreError::Conflict("a key that still works is rotated, not succeeded"));
    }
    if old.replaced_by.is_some() {
        return Err(StoreError::Conflict("the key was already replaced"));
    }
    let mut updated = old.clone();
    updated.replaced_by = Some(successor.clone());
    updated.revision += 1;
    Ok(updated)
}

/// The record after `changes`; the rules of [`KeyStore::update`].
pub(crate) fn updated(record: &KeyRecord, changes: &KeyChanges) -> Result<KeyRecord, StoreError> {
    if record.revoked_at.is_some() {
        return Err(StoreError::Conflict("a revoked key cannot be updated"));
    }
    if changes.expires_at.is_some() && record.replaced_by.is_some() {
        return Err(StoreError::Conflict("a rotated key expires at the end of its grace period"));
    }
    let mut updated = record.clone();
    if let Some(name) = &changes.name {
        updated.name = name.clone();
    }
    if let Some(permissions) = &changes.permissions {
        updated.permissions = permissions.clone();
    }
    if let Some(tier) = &changes.tier {
        updated.tier = tier.clone();
    }
    if let Some(expires_at) = changes.expires_at {
        updated.expires_at = Some(expires_at);
    }
    if let Some(owner_id) = &changes.owner_id {
        updated.owner_id = owner_id.clone();
    }
    if let Some(meta) = &changes.meta {
        updated.meta = meta.clone();
    }
    if let Some(enabled) = changes.enabled {
        updated.enabled = enabled;
    }
    if let Some(allowlist) = &changes.ip_allowlist {
        updated.ip_allowlist = allowlist.clone();
    }
    if let Some(meter) = &changes.meter {
        updated.meter = meter.clone();
    }
    updated.revision += 1;
    Ok(updated)
}

/// The record after retirement at `at`; `None` when it is retired already.
pub(crate) fn retired(record: &KeyRecord, at: DateTime<Utc>) -> Result<Option<KeyRecord>, StoreError> {
    if record.retired_at.is_some() {
        return Ok(None);
    }
    if record.status(at) == crate::KeyStatus::Active {
        return Err(StoreError::Conflict("a key that still verifies keeps its place"));
    }
    let mut updated = record.clone();
    updated.retired_at = Some(at);
    updated.revision += 1;
    Ok(Some(updated))
}

/// The count a rotation may reach: one more than the limit when the old key stops at once, as it
/// is retired right after.
pub(crate) fn rotation_limit(limit: u32, replacement: &KeyRecord, old_expires_at: DateTime<Utc>) -> u32 {
    if old_expires_at <= replacement.created_at { limit.saturating_add(1) } else { limit }
}

/// [`KeyStore::room`] on a tenant's count `live`: `LimitReached` at `limit` plus `allowance`.
pub(crate) fn room(live: i64, limit: u32, allowance: u32) -> Result<(), StoreError> {
    if live >= i64::from(limit) + i64::from(allowance) {
        return Err(StoreError::LimitReached { limit });
    }
    Ok(())
}

/// The record as it is stored under its digest for the current pepper.
pub(crate) fn rehashed(record: &KeyRecord, digest: KeyDigest, version: PepperVersion) -> KeyRecord {
    let mut moved = record.clone();
    moved.digest = digest;
    moved.pepper_version = version;
    moved
}

/// Checks a requested page size against the contract.
pub fn page_limit(limit: u32) -> Result<u32, ApiError> {
    if (1..=MAX_PAGE_SIZE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::validation("limit", format!("limit must be between 1 and {MAX_PAGE_SIZE}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_foreign_text() {
        let cursor = Cursor::after(&KeyId::generate());
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        assert!(matches!(Cursor::<KeyId>::decode("not base64!"), Err(StoreError::InvalidCursor)));
        assert!(matches!(
            Cursor::<KeyId>::decode(&URL_SAFE_NO_PAD.encode("key_nothex")),
            Err(StoreError::InvalidCursor)
        ));
    }
}
