//! Finding the record of a presented key, across a pepper rotation.

use crate::pepper::PepperSet;
use crate::store::{KeyStore, StoreError};
use crate::{ApiKey, KeyRecord};

/// The stored record of `key`, if any.
///
/// One read by the digest under the current pepper. Only on a miss, and only while a previous
/// pepper exists, one more read under the previous one; a hit there is moved to the current
/// digest (a transaction conditional on the record being unchanged), so the next verification
/// is one read again. A miss under both peppers reads the current digest a last time, because a
/// concurrent verification may have moved the record in between; unknown keys therefore cost
/// three reads while a previous pepper exists (the authorizer's negative cache absorbs repeats). If the move loses a race or fails, the record that was read is still the
/// answer: it was read consistently, and the move is retried by the next verification.
pub async fn find_key<S: KeyStore>(
    store: &S,
    peppers: &PepperSet,
    key: &ApiKey,
) -> Result<Option<KeyRecord>, StoreError> {
    let digest = peppers.current.digest(key);
    if let Some(record) = store.find_by_digest(&digest).await? {
        return Ok(Some(record));
    }
    let Some(previous) = &peppers.previous else { return Ok(None) };
    let Some(record) = store.find_by_digest(&previous.digest(key)).await? else {
        // Between the two reads a concurrent verification may have moved the record to the
        // current digest: look there once more before calling the key unknown.
        return store.find_by_digest(&digest).await;
    };
    match store.rehash(&record, digest, peppers.current.version().clone()).await {
        Ok(()) => tracing::info!(key_id = %record.id, "key rehashed under the current pepper"),
        Err(error) => tracing::warn!(key_id = %record.id, %error, "rehash after pepper rotation did not happen"),
    }
    Ok(Some(record))
}
