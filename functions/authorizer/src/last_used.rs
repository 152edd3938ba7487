//! `last_used_at`, written off the request's critical path: at most once per key per minute per
//! process, through a bounded queue (when it is full the write is skipped, never awaited), by one
//! background task whose failures are logged and ignored.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use latchkey::store::KeyStore;
use latchkey::{KeyDigest, KeyId};
use quick_cache::sync::Cache;
use tokio::sync::mpsc;

const QUEUE: usize = 256;

struct Touch {
    digest: KeyDigest,
    key_id: KeyId,
    at: DateTime<Utc>,
}

pub struct LastUsed {
    queue: mpsc::Sender<Touch>,
    /// Key id → the minute (epoch minutes) of its last queued write.
    written: Cache<KeyId, i64>,
}

impl LastUsed {
    /// Starts the writer task on the current Tokio runtime.
    pub fn spawn<S: KeyStore + 'static>(store: Arc<S>, capacity: usize) -> Self {
        let (queue, mut pending) = mpsc::channel::<Touch>(QUEUE);
        tokio::spawn(async move {
            while let Some(touch) = pending.recv().await {
                if let Err(error) = store.touch(&touch.digest, touch.at).await {
                    tracing::warn!(key_id = %touch.key_id, %error, "last_used_at not written");
                }
            }
        });
        Self { queue, written: Cache::new(capacity.max(1)) }
    }

    /// Queues a write unless this key had one this minute.
    pub fn record(&self, digest: KeyDigest, key_id: &KeyId, at: DateTime<Utc>) {
        let minute = at.timestamp().div_euclid(60);
        if self.written.get(key_id) == Some(minute) {
            return;
        }
        self.written.insert(key_id.clone(), minute);
        if self.queue.try_send(Touch { digest, key_id: key_id.clone(), at }).is_err() {
            tracing::debug!(key_id = %key_id, "last_used_at queue full; skipped");
        }
    }
}
