//! The verification cache: digest → what the store said (a record, or nothing), for a short TTL.
//!
//! Bounded in entries, so a flood of random keys cannot grow it. Negative entries make repeated
//! unknown keys cost no read. The TTL is also the longest a revocation, rotation or expiry change
//! takes to reach this process: the guide says so (The authorizer and sessions: revocation
//! latency). Expiry itself is decided from the cached record and the clock on every request, so a
//! cached key still expires on the second.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use latchkey::KeyDigest;

use crate::verified::VerifiedKey;
use quick_cache::sync::Cache;

#[derive(Clone)]
struct Entry {
    record: Option<Arc<VerifiedKey>>,
    stored_at: DateTime<Utc>,
}

pub struct KeyCache {
    entries: Option<Cache<KeyDigest, Entry>>,
    ttl: Duration,
}

impl KeyCache {
    /// `ttl` zero turns caching off.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        let entries = (!ttl.is_zero() && capacity > 0).then(|| Cache::new(capacity));
        Self { entries, ttl }
    }

    /// `Some(answer)` on a fresh hit at `now`, where the answer may be "no such key". Ages are
    /// read on the authorizer's clock (so a test's clock ages entries as it ages keys); a clock
    /// that went back makes an entry stale, never longer-lived.
    pub fn get(&self, digest: &KeyDigest, now: DateTime<Utc>) -> Option<Option<Arc<VerifiedKey>>> {
        let entry = self.entries.as_ref()?.get(digest)?;
        let age = now.signed_duration_since(entry.stored_at).to_std().ok()?;
        (age < self.ttl).then_some(entry.record)
    }

    pub fn insert(&self, digest: KeyDigest, record: Option<Arc<VerifiedKey>>, now: DateTime<Utc>) {
        if let Some(entries) = &self.entries {
            entries.insert(digest, Entry { record, stored_at: now });
        }
    }

    /// Replaces what is cached for `digest` (a record given a lease), keeping its age: the TTL
    /// still counts from when the store answered. Nothing cached, nothing replaced.
    pub fn replace(&self, digest: &KeyDigest, record: Arc<VerifiedKey>) {
        if let Some(entries) = &self.entries
            && let Some(entry) = entries.get(digest)
        {
            entries.insert(*digest, Entry { record: Some(record), stored_at: entry.stored_at });
        }
    }

    /// Forgets every key at once: for a process that has just changed keys itself and cannot
    /// name the digests of the keys it changed (only their ids are stored beside them).
    pub fn clear(&self) {
        if let Some(entries) = &self.entries {
            entries.clear();
        }
    }

    /// Forgets a key at once: for a process that revokes or rotates keys itself.
    pub fn evict(&self, digest: &KeyDigest) {
        if let Some(entries) = &self.entries {
            entries.remove(digest);
        }
    }
}
