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
    let found = find_peppered(store, peppers, key).await?;
    if found.is_some() || !key.is_imported() {
        return Ok(found);
    }
    find_legacy(store, peppers, key).await
}

/// An imported key stored as another system's SHA-256 of it (`POST /keys/import` with `sha256`):
/// one more read, for a key of the imported shape that no peppered digest knows. A hit is moved
/// under the current pepper (and given its hint, which only the plaintext tells), so its next
/// verification is one read like any key's.
async fn find_legacy<S: KeyStore>(
    store: &S,
    peppers: &PepperSet,
    key: &ApiKey,
) -> Result<Option<KeyRecord>, StoreError> {
    let legacy = crate::KeyDigest::from_hex(&key.sha256_hex()).expect("64 hex digits");
    let Some(record) = store.find_by_digest(&legacy).await? else { return Ok(None) };
    if !record.pepper_version.is_legacy_sha256() {
        // A peppered record whose digest happens to equal a SHA-256: not this key's.
        return Ok(None);
    }
    let hinted = KeyRecord { hint: key.hint(), ..record.clone() };
    let digest = peppers.current.digest(key);
    match store.rehash(&hinted, digest, peppers.current.version().clone()).await {
        Ok(()) => tracing::info!(key_id = %record.id, "imported key moved from its SHA-256 to the current pepper"),
        Err(error) => tracing::warn!(key_id = %record.id, %error, "an imported key's move did not happen"),
    }
    Ok(Some(record))
}

async fn find_peppered<S: KeyStore>(
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
