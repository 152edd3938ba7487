//! A key store that counts verification's calls, for tests that assert how many reads a path
//! makes (none for a malformed key, one per unknown key with the negative cache).

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use latchkey::store::{Cursor, KeyStore, Page, StoreError};
use latchkey::{KeyChanges, KeyDigest, KeyId, KeyRecord, OwnerId, PepperVersion, TenantId};

/// A key store that counts the calls verification makes, around a real one.
pub struct CountingStore<S> {
    pub inner: S,
    /// `find_by_digest` calls: verification's reads.
    pub finds: AtomicUsize,
    pub rehashes: AtomicUsize,
    /// `spend_credit` calls: a metered request's write.
    pub spends: AtomicUsize,
}

impl<S> CountingStore<S> {
    pub fn new(inner: S) -> Self {
        Self { inner, finds: AtomicUsize::new(0), rehashes: AtomicUsize::new(0), spends: AtomicUsize::new(0) }
    }

    /// (finds, rehashes) since the last take.
    pub fn take(&self) -> (usize, usize) {
        (self.finds.swap(0, Ordering::SeqCst), self.rehashes.swap(0, Ordering::SeqCst))
    }
}

impl<S: KeyStore> KeyStore for CountingStore<S> {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        self.inner.insert(record).await
    }

    async fn find_by_digest(&self, digest: &KeyDigest) -> Result<Option<KeyRecord>, StoreError> {
        self.finds.fetch_add(1, Ordering::SeqCst);
        self.inner.find_by_digest(digest).await
    }

    async fn get(&self, tenant: &TenantId, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.inner.get(tenant, id).await
    }

    async fn lookup(&self, tenant: &TenantId, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.inner.lookup(tenant, id).await
    }

    async fn list(&self, tenant: &TenantId, limit: u32, after: Option<&Cursor>) -> Result<Page<KeyRecord>, StoreError> {
        self.inner.list(tenant, limit, after).await
    }

    async fn owned(
        &self,
        tenant: &TenantId,
        owner: &OwnerId,
        limit: u32,
        after: Option<&Cursor>,
    ) -> Result<Page<KeyRecord>, StoreError> {
        self.inner.owned(tenant, owner, limit, after).await
    }

    async fn revoke(&self, tenant: &TenantId, id: &KeyId, at: DateTime<Utc>) -> Result<KeyRecord, StoreError> {
        self.inner.revoke(tenant, id, at).await
    }

    async fn update(&self, tenant: &TenantId, id: &KeyId, changes: &KeyChanges) -> Result<KeyRecord, StoreError> {
        self.inner.update(tenant, id, changes).await
    }

    async fn rotate(
        &self,
        tenant: &TenantId,
        id: &KeyId,
        replacement: &KeyRecord,
        old_expires_at: DateTime<Utc>,
    ) -> Result<KeyRecord, StoreError> {
        self.inner.rotate(tenant, id, replacement, old_expires_at).await
    }

    async fn retire(&self, tenant: &TenantId, id: &KeyId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.inner.retire(tenant, id, at).await
    }

    async fn room(&self, tenant: &TenantId, allowance: u32) -> Result<(), StoreError> {
        self.inner.room(tenant, allowance).await
    }
    async fn stopped(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        after: Option<&KeyRecord>,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        self.inner.stopped(now, limit, after).await
    }

    async fn touch(&self, digest: &KeyDigest, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.touch(digest, at).await
    }

    async fn note_expiry_warning(&self, record: &KeyRecord) -> Result<bool, StoreError> {
        self.inner.note_expiry_warning(record).await
    }

    async fn rehash(&self, record: &KeyRecord, digest: KeyDigest, version: PepperVersion) -> Result<(), StoreError> {
        self.rehashes.fetch_add(1, Ordering::SeqCst);
        self.inner.rehash(record, digest, version).await
    }
}

/// Passed through uncounted: the pool's claims have their own tests (tests/tests/gateway_slots.rs).
impl<S: latchkey::gateway::pool::GatewaySlots> latchkey::gateway::pool::GatewaySlots for CountingStore<S> {
    async fn pool_size(&self, tier: &latchkey::TierName) -> Result<u32, StoreError> {
        self.inner.pool_size(tier).await
    }

    async fn claim(
        &self,
        tier: &latchkey::TierName,
        slot: u32,
        key: &KeyId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<latchkey::gateway::pool::Claim, StoreError> {
        self.inner.claim(tier, slot, key, now, until).await
    }

    async fn add_slot(
        &self,
        tier: &latchkey::TierName,
        slot: u32,
        gateway_key: &latchkey::GatewayKey,
    ) -> Result<bool, StoreError> {
        self.inner.add_slot(tier, slot, gateway_key).await
    }

    async fn note_lease(&self, digest: &KeyDigest, lease: &latchkey::gateway::pool::Lease) -> Result<(), StoreError> {
        self.inner.note_lease(digest, lease).await
    }

    async fn forget_own_gateway_key(&self, digest: &KeyDigest, gateway_key_id: &str) -> Result<bool, StoreError> {
        self.inner.forget_own_gateway_key(digest, gateway_key_id).await
    }
}

/// Passed through, its spends counted: what a metered request writes.
impl<S: latchkey::credits::CreditStore> latchkey::credits::CreditStore for CountingStore<S> {
    async fn set_credits(
        &self,
        meter: &KeyId,
        balance: Option<&latchkey::credits::CreditBalance>,
    ) -> Result<(), StoreError> {
        self.inner.set_credits(meter, balance).await
    }

    async fn credits(&self, meter: &KeyId) -> Result<Option<latchkey::credits::CreditBalance>, StoreError> {
        self.inner.credits(meter).await
    }

    async fn spend_credit(
        &self,
        meter: &KeyId,
        now: DateTime<Utc>,
    ) -> Result<Option<latchkey::credits::Spend>, StoreError> {
        self.spends.fetch_add(1, Ordering::SeqCst);
        self.inner.spend_credit(meter, now).await
    }
}
