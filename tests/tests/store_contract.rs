//! The `KeyStore` contract, run against both implementations: DynamoDB (on DynamoDB Local) and
//! the embedded redb store. Each case is one async function over `impl KeyStore`; the macro at
//! the bottom instantiates every case for each store.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use latchkey::credits::{CreditBalance, CreditStore, Credits, Refill, RefillInterval, Spend};
use latchkey::datasource::{Datasource, DatasourceStore};
use latchkey::store::{Cursor, KeyStore, StoreError};
use latchkey::{
    ApiKey, DatasourceId, KeyChanges, KeyHasher, KeyProfile, KeyRecord, KeySpec, KeyStatus, PepperVersion, Permission,
    Permissions, TenantId,
};

/// A fixed clock far in the future: DynamoDB Local deletes items whose TTL has passed in real
/// time, and a record's TTL derives from this clock, so a past date would let records vanish
/// mid-test.
fn now() -> DateTime<Utc> {
    "2100-01-01T00:00:00Z".parse().unwrap()
}

fn hasher() -> KeyHasher {
    KeyHasher::new(&[42u8; 32], PepperVersion::new("v1"))
}

fn tenant(name: &str) -> TenantId {
    format!("{name}-{}", uuid::Uuid::now_v7().simple()).parse().unwrap()
}

fn spec(tenant: &TenantId, name: &str) -> KeySpec {
    KeySpec {
        tenant_id: tenant.clone(),
        name: name.to_owned(),
        permissions: [Permission::Read].into_iter().collect(),
        tier: "free".parse().unwrap(),
        expires_at: None,
        datasource_id: None,
        replaces: None,
        owner_id: None,
        meta: Default::default(),
        enabled: true,
        ip_allowlist: Default::default(),
        meter: None,
    }
}

fn issue(tenant: &TenantId, name: &str) -> (ApiKey, KeyRecord) {
    KeyRecord::issue(&KeyProfile::latchkey(), &hasher(), spec(tenant, name), now())
}

async fn insert_then_find_by_digest_and_id(store: impl KeyStore) {
    let owner = tenant("a");
    let (key, record) = issue(&owner, "first");
    store.insert(&record).await.unwrap();

    let found = store.find_by_digest(&hasher().digest(&key)).await.unwrap();
    assert_eq!(found.as_ref(), Some(&record));
    assert_eq!(store.get(&owner, &record.id).await.unwrap().as_ref(), Some(&record));
    assert_eq!(store.lookup(&owner, &record.id).await.unwrap().as_ref(), Some(&record));

    // Another tenant's id answers exactly like a missing one.
    assert_eq!(store.get(&tenant("b"), &record.id).await.unwrap(), None);
    assert_eq!(store.get(&owner, &latchkey::KeyId::generate()).await.unwrap(), None);
    assert_eq!(store.lookup(&tenant("b"), &record.id).await.unwrap(), None);
    assert_eq!(store.lookup(&owner, &latchkey::KeyId::generate()).await.unwrap(), None);
    let (stranger, _) = issue(&owner, "never stored");
    assert_eq!(store.find_by_digest(&hasher().digest(&stranger)).await.unwrap(), None);
}

async fn duplicate_insert_is_rejected(store: impl KeyStore) {
    let owner = tenant("a");
    let (_, record) = issue(&owner, "first");
    store.insert(&record).await.unwrap();
    assert!(matches!(store.insert(&record).await, Err(StoreError::AlreadyExists)));

    // Same id under another digest: also refused, and the original is untouched.
    let (_, mut same_id) = issue(&owner, "impostor");
    same_id.id = record.id.clone();
    assert!(matches!(store.insert(&same_id).await, Err(StoreError::AlreadyExists)));
    // Same digest under another id: refused too.
    let (_, mut same_digest) = issue(&owner, "impostor");
    same_digest.digest = record.digest;
    assert!(matches!(store.insert(&same_digest).await, Err(StoreError::AlreadyExists)));
    assert_eq!(store.get(&owner, &record.id).await.unwrap().unwrap().name, "first");
    assert_eq!(store.get(&owner, &same_digest.id).await.unwrap(), None);
}

async fn pages_cover_a_tenant_exactly_once_in_creation_order(store: impl KeyStore) {
    let owner = tenant("a");
    let other = tenant("b");
    let mut created = Vec::new();
    for i in 0..23 {
        let (_, record) = issue(&owner, &format!("key {i}"));
        store.insert(&record).await.unwrap();
        created.push(record.id);
        let (_, foreign) = issue(&other, "foreign");
        store.insert(&foreign).await.unwrap();
    }
    for page_size in [5, 23, 100] {
        let mut seen = Vec::new();
        let mut cursor: Option<Cursor> = None;
        let mut pages = 0;
        loop {
            let page = store.list(&owner, page_size, cursor.as_ref()).await.unwrap();
            pages += 1;
            assert!(page.items.len() <= page_size as usize);
            assert!(page.items.iter().all(|r| r.tenant_id == owner), "another tenant's key leaked into a page");
            seen.extend(page.items.into_iter().map(|r| r.id));
            match page.next_cursor {
                Some(next) => cursor = Some(Cursor::decode(&next).unwrap()),
                None => break,
            }
        }
        assert_eq!(seen, created, "page size {page_size}");
        // No empty trailing page: 23 keys in pages of 5 is 5 pages, in pages of 23 one.
        assert_eq!(pages, 23usize.div_ceil(page_size as usize), "page size {page_size}");
    }
    let empty = store.list(&tenant("nobody"), 10, None).await.unwrap();
    assert!(empty.items.is_empty() && empty.next_cursor.is_none());
}

async fn revoke_is_immediate_idempotent_and_tenant_scoped(store: impl KeyStore) {
    let owner = tenant("a");
    let (key, record) = issue(&owner, "doomed");
    store.insert(&record).await.unwrap();

    assert!(matches!(store.revoke(&tenant("b"), &record.id, now()).await, Err(StoreError::NotFound)));
    let revoked = store.revoke(&owner, &record.id, now()).await.unwrap();
    assert_eq!(revoked.status(now()), KeyStatus::Revoked);
    let stored = store.find_by_digest(&hasher().digest(&key)).await.unwrap().unwrap();
    assert_eq!(stored.revoked_at, Some(now()));

    // Again: same answer, first revocation time kept.
    let again = store.revoke(&owner, &record.id, now() + TimeDelta::hours(1)).await.unwrap();
    assert_eq!(again.revoked_at, Some(now()));
    assert!(matches!(store.revoke(&owner, &latchkey::KeyId::generate(), now()).await, Err(StoreError::NotFound)));
}

async fn update_changes_what_it_names_and_refuses_dead_keys(store: impl KeyStore) {
    let owner = tenant("a");
    let (key, record) = issue(&owner, "before");
    store.insert(&record).await.unwrap();

    let changes = KeyChanges { name: Some("after".into()), ..KeyChanges::default() };
    assert!(matches!(store.update(&tenant("b"), &record.id, &changes).await, Err(StoreError::NotFound)));
    let renamed = store.update(&owner, &record.id, &changes).await.unwrap();
    assert_eq!(
        (renamed.name.as_str(), &renamed.permissions, &renamed.tier),
        ("after", &record.permissions, &record.tier)
    );
    assert_eq!(renamed.revision, record.revision + 1);

    let expires_at = now() + TimeDelta::days(3);
    let changes = KeyChanges {
        // The tenant's own names beside the vocabulary, kept by both stores.
        permissions: Some(Permissions::from_csv("admin,billing:*,documents.read").unwrap()),
        tier: Some("free".parse().unwrap()),
        expires_at: Some(expires_at),
        ..KeyChanges::default()
    };
    store.update(&owner, &record.id, &changes).await.unwrap();
    // What verification reads is what was written.
    let stored = store.find_by_digest(&hasher().digest(&key)).await.unwrap().unwrap();
    assert_eq!(stored.name, "after");
    assert_eq!(stored.permissions.to_csv(), "admin,billing:*,documents.read");
    assert_eq!(stored.tier.as_str(), "free");
    assert_eq!(stored.expires_at, Some(expires_at));
    assert_eq!(stored.revision, record.revision + 2);
    assert_eq!(store.get(&owner, &record.id).await.unwrap().unwrap(), stored);
    assert_eq!(store.lookup(&owner, &record.id).await.unwrap().unwrap(), stored);

    store.revoke(&owner, &record.id, now()).await.unwrap();
    let zombie = KeyChanges { name: Some("zombie".into()), ..KeyChanges::default() };
    let refused = store.update(&owner, &record.id, &zombie).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))));
    assert_eq!(store.get(&owner, &record.id).await.unwrap().unwrap().name, "after");
}

async fn rotation_has_exactly_one_winner(store: impl KeyStore + 'static) {
    let owner = tenant("a");
    let (_, old) = issue(&owner, "rotating");
    store.insert(&old).await.unwrap();
    let grace_end = now() + TimeDelta::minutes(10);

    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, owner, old_id) = (Arc::clone(&store), owner.clone(), old.id.clone());
        tasks.push(tokio::spawn(async move {
            let mut new_spec = spec(&owner, "rotating");
            new_spec.replaces = Some(old_id.clone());
            let (_, replacement) = KeyRecord::issue(&KeyProfile::latchkey(), &hasher(), new_spec, now());
            let result = store.rotate(&owner, &old_id, &replacement, grace_end + TimeDelta::seconds(i)).await;
            (replacement, result)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (replacement, result) = task.await.unwrap();
        match result {
            Ok(updated) => winners.push((replacement, updated)),
            Err(StoreError::Conflict(_)) => {
                // A loser leaves no trace.
                assert_eq!(store.get(&owner, &replacement.id).await.unwrap(), None);
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rotation wins");
    let (replacement, updated) = winners.pop().unwrap();
    let stored_old = store.get(&owner, &old.id).await.unwrap().unwrap();
    assert_eq!(stored_old, updated);
    assert_eq!(stored_old.replaced_by.as_ref(), Some(&replacement.id));
    assert_eq!(stored_old.status(grace_end - TimeDelta::seconds(1)), KeyStatus::Active);
    assert_eq!(stored_old.status(grace_end + TimeDelta::seconds(8)), KeyStatus::Expired);
    assert_eq!(store.get(&owner, &replacement.id).await.unwrap().unwrap().replaces.as_ref(), Some(&old.id));

    // A revoked key cannot be rotated.
    store.revoke(&owner, &replacement.id, now()).await.unwrap();
    let (_, another) = issue(&owner, "x");
    assert!(matches!(store.rotate(&owner, &replacement.id, &another, now()).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.rotate(&tenant("b"), &old.id, &another, now()).await, Err(StoreError::NotFound)));
}

async fn rehash_moves_once_and_never_loses_a_revocation(store: impl KeyStore) {
    let owner = tenant("a");
    let old_pepper = hasher();
    let new_pepper = KeyHasher::new(&[43u8; 32], PepperVersion::new("v2"));
    let (key, record) = issue(&owner, "old pepper");
    store.insert(&record).await.unwrap();

    store.rehash(&record, new_pepper.digest(&key), new_pepper.version().clone()).await.unwrap();
    assert_eq!(store.find_by_digest(&old_pepper.digest(&key)).await.unwrap(), None);
    let moved = store.find_by_digest(&new_pepper.digest(&key)).await.unwrap().unwrap();
    assert_eq!(moved.pepper_version, PepperVersion::new("v2"));
    assert_eq!(store.get(&owner, &record.id).await.unwrap().unwrap().digest, new_pepper.digest(&key));
    assert_eq!(store.lookup(&owner, &record.id).await.unwrap().unwrap().digest, new_pepper.digest(&key));
    // A second move of the same stale record is refused.
    assert!(matches!(
        store.rehash(&record, new_pepper.digest(&key), new_pepper.version().clone()).await,
        Err(StoreError::Conflict(_))
    ));

    // A record revoked after it was read is not moved, so the revocation survives.
    let (key2, record2) = issue(&owner, "revoked meanwhile");
    store.insert(&record2).await.unwrap();
    store.revoke(&owner, &record2.id, now()).await.unwrap();
    assert!(matches!(
        store.rehash(&record2, new_pepper.digest(&key2), new_pepper.version().clone()).await,
        Err(StoreError::Conflict(_))
    ));
    let still = store.find_by_digest(&old_pepper.digest(&key2)).await.unwrap().unwrap();
    assert_eq!(still.status(now()), KeyStatus::Revoked);
}

async fn touch_records_last_use_without_bumping_the_revision(store: impl KeyStore) {
    let owner = tenant("a");
    let (key, record) = issue(&owner, "used");
    store.insert(&record).await.unwrap();
    let used_at = now() + TimeDelta::minutes(3);
    store.touch(&record.digest, used_at).await.unwrap();
    let stored = store.find_by_digest(&hasher().digest(&key)).await.unwrap().unwrap();
    assert_eq!(stored.last_used_at, Some(used_at));
    assert_eq!(stored.revision, record.revision, "a touch never conflicts with a real change");
    // A key that is not there is not created by a touch.
    let (_, ghost) = issue(&owner, "ghost");
    assert!(matches!(store.touch(&ghost.digest, used_at).await, Err(StoreError::NotFound)));
    assert_eq!(store.find_by_digest(&ghost.digest).await.unwrap(), None);
}

async fn many_parallel_inserts_lose_nothing(store: impl KeyStore + 'static) {
    let owner = tenant("a");
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (store, owner) = (Arc::clone(&store), owner.clone());
        tasks.push(tokio::spawn(async move {
            let (_, record) = issue(&owner, &format!("parallel {i}"));
            store.insert(&record).await.map(|()| record.id)
        }));
    }
    let mut ids = HashSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap().unwrap());
    }
    let page = store.list(&owner, 100, None).await.unwrap();
    let listed: HashSet<_> = page.items.into_iter().map(|r| r.id).collect();
    assert_eq!(listed, ids);
}

/// The contract suite for one store: one `#[tokio::test]` per case, each on a fresh store.
/// A datasource's new key after its key was revoked: the key, the link from the revoked key
/// and the datasource's pointer in one write, or nothing (issue 28).
async fn a_revoked_ingest_key_is_succeeded_atomically(store: impl KeyStore + DatasourceStore) {
    let owner = tenant("a");
    let (_, old) = issue(&owner, "ingest");
    store.insert(&old).await.unwrap();
    let datasource = Datasource {
        id: DatasourceId::generate(),
        tenant_id: owner.clone(),
        name: "meters".into(),
        created_at: now(),
        key_id: old.id.clone(),
    };
    store.insert_datasource(&datasource).await.unwrap();
    let (_, working) = issue(&owner, "successor");
    assert!(
        matches!(store.insert_successor(&owner, &datasource.id, &old.id, &working).await, Err(StoreError::Conflict(_))),
        "a working key is rotated, not succeeded"
    );

    store.revoke(&owner, &old.id, now()).await.unwrap();
    let (_, successor) = issue(&owner, "successor");
    store.insert_successor(&owner, &datasource.id, &old.id, &successor).await.unwrap();
    assert_eq!(store.get(&owner, &old.id).await.unwrap().unwrap().replaced_by.as_ref(), Some(&successor.id));
    assert_eq!(store.get(&owner, &successor.id).await.unwrap().as_ref(), Some(&successor));
    assert_eq!(store.get_datasource(&owner, &datasource.id).await.unwrap().unwrap().key_id, successor.id);

    // A second succession of the same key loses, and stores nothing.
    let (_, late) = issue(&owner, "late");
    assert!(matches!(
        store.insert_successor(&owner, &datasource.id, &old.id, &late).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get(&owner, &late.id).await.unwrap(), None);
    // Nor does one for a datasource that is gone.
    let (_, other) = issue(&owner, "other");
    store.insert(&other).await.unwrap();
    store.revoke(&owner, &other.id, now()).await.unwrap();
    store.delete_datasource(&owner, &datasource.id).await.unwrap();
    let (_, orphan) = issue(&owner, "orphan");
    assert!(store.insert_successor(&owner, &datasource.id, &other.id, &orphan).await.is_err());
    assert_eq!(store.get(&owner, &orphan.id).await.unwrap(), None, "a key for a datasource that is gone");
}

async fn datasources_are_a_tenants_own(store: impl DatasourceStore) {
    let owner = tenant("a");
    let datasource = |name: &str| Datasource {
        id: DatasourceId::generate(),
        tenant_id: owner.clone(),
        name: name.to_owned(),
        created_at: now(),
        key_id: latchkey::KeyId::generate(),
    };
    let first = datasource("sensors");
    store.insert_datasource(&first).await.unwrap();
    assert!(matches!(store.insert_datasource(&first).await, Err(StoreError::AlreadyExists)));
    assert_eq!(store.get_datasource(&owner, &first.id).await.unwrap().as_ref(), Some(&first));
    let stranger = tenant("b");
    assert_eq!(store.get_datasource(&stranger, &first.id).await.unwrap(), None);

    let mut all = vec![first.clone()];
    for n in 0..4 {
        let next = datasource(&format!("ds {n}"));
        store.insert_datasource(&next).await.unwrap();
        all.push(next);
    }
    let mut listed = Vec::new();
    let mut cursor: Option<Cursor<DatasourceId>> = None;
    loop {
        let page = store.list_datasources(&owner, 2, cursor.as_ref()).await.unwrap();
        assert!(page.items.len() <= 2);
        listed.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(Cursor::decode(&next).unwrap()),
            None => break,
        }
    }
    assert_eq!(listed, all, "each once, in creation order");
    assert!(store.list_datasources(&stranger, 10, None).await.unwrap().items.is_empty());

    let new_key = latchkey::KeyId::generate();
    store.set_datasource_key(&owner, &first.id, &new_key).await.unwrap();
    assert_eq!(store.get_datasource(&owner, &first.id).await.unwrap().unwrap().key_id, new_key);
    assert!(matches!(store.set_datasource_key(&stranger, &first.id, &new_key).await, Err(StoreError::NotFound)));

    // Another tenant's delete changes nothing; the owner's removes it; again is fine.
    store.delete_datasource(&stranger, &first.id).await.unwrap();
    assert!(store.get_datasource(&owner, &first.id).await.unwrap().is_some());
    store.delete_datasource(&owner, &first.id).await.unwrap();
    store.delete_datasource(&owner, &first.id).await.unwrap();
    assert_eq!(store.get_datasource(&owner, &first.id).await.unwrap(), None);
}

/// What the sweep reads: keys that stopped by a time and are not retired, in the order they
/// stopped (revocation or expiry, grace included), paged by the last one read.
async fn stopped_keys_come_in_the_order_they_stopped_until_retired(store: impl KeyStore) {
    let owner = tenant("a");
    let at = |minutes: i64| now() + TimeDelta::minutes(minutes);
    let expiring = |name: &str, minutes: i64| {
        let mut spec = spec(&owner, name);
        spec.expires_at = Some(at(minutes));
        KeyRecord::issue(&KeyProfile::latchkey(), &hasher(), spec, now()).1
    };
    let (_, forever) = issue(&owner, "forever");
    let (_, revoked) = issue(&owner, "revoked");
    let (hour, two_hours, later) = (expiring("hour", 60), expiring("two hours", 120), expiring("later", 180));
    for record in [&forever, &revoked, &hour, &two_hours, &later] {
        store.insert(record).await.unwrap();
    }
    let names = |records: Vec<KeyRecord>| records.into_iter().map(|r| r.name).collect::<Vec<_>>();
    assert_eq!(names(store.stopped(at(150), 10, None).await.unwrap()), ["hour", "two hours"]);
    store.revoke(&owner, &revoked.id, at(30)).await.unwrap();
    let all = store.stopped(at(150), 10, None).await.unwrap();
    assert_eq!(names(all.clone()), ["revoked", "hour", "two hours"]);
    assert_eq!(names(store.stopped(at(90), 10, None).await.unwrap()), ["revoked", "hour"]);
    let first = store.stopped(at(150), 2, None).await.unwrap();
    assert_eq!(names(first.clone()), ["revoked", "hour"]);
    let rest = store.stopped(at(150), 2, first.last()).await.unwrap();
    assert_eq!(names(rest.clone()), ["two hours"]);
    assert!(store.stopped(at(150), 2, rest.last()).await.unwrap().is_empty());
    // A new expiry moves a key; a rotation puts the old key at the end of its grace; retired
    // keys are gone.
    let changes = KeyChanges { expires_at: Some(at(100)), ..KeyChanges::default() };
    store.update(&owner, &forever.id, &changes).await.unwrap();
    let (_, replacement) = issue(&owner, "replacement");
    store.rotate(&owner, &later.id, &replacement, at(140)).await.unwrap();
    assert!(store.retire(&owner, &hour.id, at(150)).await.unwrap());
    let after = names(store.stopped(at(150), 10, None).await.unwrap());
    assert_eq!(after, ["revoked", "forever", "two hours", "later"]);
}

/// With a limit of 2: the count is of keys not yet retired, kept in the keys' own transactions.
async fn a_tenant_holds_at_most_its_limit_until_dead_keys_retire(store: impl KeyStore) {
    let owner = tenant("a");
    let (_, first) = issue(&owner, "first");
    let (_, second) = issue(&owner, "second");
    store.insert(&first).await.unwrap();
    store.insert(&second).await.unwrap();
    let (_, third) = issue(&owner, "third");
    assert!(matches!(store.room(&owner, 0).await, Err(StoreError::LimitReached { limit: 2 })));
    store.room(&owner, 1).await.expect("one past the limit is allowed when asked for");
    store.room(&tenant("b"), 0).await.expect("a tenant without keys has room");
    assert!(matches!(store.insert(&third).await, Err(StoreError::LimitReached { limit: 2 })));
    assert_eq!(store.get(&owner, &third.id).await.unwrap(), None, "nothing of a refused insert is stored");
    // Another tenant counts apart.
    store.insert(&issue(&tenant("b"), "theirs").1).await.unwrap();
    // A rotation with a grace period counts the new key; one without may pass by one, as its old
    // key retires right after.
    let (_, graceful) = issue(&owner, "graceful");
    let later = now() + chrono::TimeDelta::minutes(5);
    assert!(matches!(store.rotate(&owner, &first.id, &graceful, later).await, Err(StoreError::LimitReached { .. })));
    let (_, at_once) = issue(&owner, "at once");
    store.rotate(&owner, &first.id, &at_once, now()).await.unwrap();
    // A key that still verifies cannot retire; a dead one retires once, and frees its place.
    assert!(matches!(store.retire(&owner, &second.id, now()).await, Err(StoreError::Conflict(_))));
    assert!(store.retire(&owner, &first.id, now()).await.unwrap());
    assert!(!store.retire(&owner, &first.id, now()).await.unwrap());
    assert!(store.get(&owner, &first.id).await.unwrap().unwrap().retired_at.is_some());
    assert!(matches!(store.insert(&third).await, Err(StoreError::LimitReached { .. })));
    store.revoke(&owner, &second.id, now()).await.unwrap();
    assert!(store.retire(&owner, &second.id, now()).await.unwrap());
    store.room(&owner, 0).await.expect("a retirement gives a place back");
    store.insert(&third).await.unwrap();
    assert!(matches!(store.retire(&tenant("b"), &third.id, now()).await, Err(StoreError::NotFound)));
}

/// One owner's keys come from the owners index, in creation order, pages included; a change of
/// owner moves a key from one owner's listing to the other's, and taking it away out of both;
/// metadata and the enabled flag are stored as given. (DynamoDB's index is eventually consistent;
/// DynamoDB Local's is not, which these reads rely on.)
async fn owners_list_their_own_keys_and_fields_round_trip(store: impl KeyStore) {
    let tenant = tenant("owners");
    let (alice, bob): (latchkey::OwnerId, latchkey::OwnerId) = ("cus_alice#1".parse().unwrap(), "bob".parse().unwrap());
    // Deeper than DynamoDB's 32 levels of nesting, and an empty name, which a DynamoDB map
    // cannot hold: stored as the provider gave them all the same.
    let deep = (0..40).fold(serde_json::json!(1), |inner, _| serde_json::json!({"level": inner}));
    let meta: latchkey::KeyMeta =
        serde_json::from_value(serde_json::json!({"plan": "pro", "n": [1, 2.5, null], "": "empty name", "deep": deep}))
            .unwrap();
    let mut ids = Vec::new();
    for n in 0..3 {
        let mut record = issue(&tenant, &format!("alice {n}")).1;
        record.owner_id = Some(alice.clone());
        record.meta = meta.clone();
        record.enabled = n != 1;
        store.insert(&record).await.unwrap();
        ids.push(record.id);
    }
    store.insert(&issue(&tenant, "nobody's").1).await.unwrap();
    // Another tenant's key of an owner of the same name is not this tenant's owner's.
    let mut stranger = issue(&self::tenant("owners-other"), "other tenant").1;
    stranger.owner_id = Some(alice.clone());
    store.insert(&stranger).await.unwrap();

    let first = store.owned(&tenant, &alice, 2, None).await.unwrap();
    let cursor = Cursor::decode(first.next_cursor.as_deref().unwrap()).unwrap();
    let second = store.owned(&tenant, &alice, 2, Some(&cursor)).await.unwrap();
    assert!(second.next_cursor.is_none());
    let listed: Vec<_> = first.items.iter().chain(&second.items).map(|r| r.id.clone()).collect();
    assert_eq!(listed, ids);
    let stored = store.get(&tenant, &ids[1]).await.unwrap().unwrap();
    assert_eq!((stored.owner_id.as_ref(), &stored.meta, stored.enabled), (Some(&alice), &meta, false));
    assert!(store.owned(&tenant, &bob, 10, None).await.unwrap().items.is_empty());

    let to_bob = KeyChanges { owner_id: Some(Some(bob.clone())), enabled: Some(true), ..KeyChanges::default() };
    let moved = store.update(&tenant, &ids[1], &to_bob).await.unwrap();
    assert_eq!((moved.owner_id.as_ref(), moved.enabled), (Some(&bob), true));
    let owned = |owner: latchkey::OwnerId| {
        let (store, tenant) = (&store, &tenant);
        async move {
            store.owned(tenant, &owner, 10, None).await.unwrap().items.into_iter().map(|r| r.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(owned(bob.clone()).await, vec![ids[1].clone()]);
    assert_eq!(owned(alice.clone()).await, vec![ids[0].clone(), ids[2].clone()]);

    let nobody = KeyChanges { owner_id: Some(None), meta: Some(latchkey::KeyMeta::default()), ..KeyChanges::default() };
    let cleared = store.update(&tenant, &ids[1], &nobody).await.unwrap();
    assert_eq!((cleared.owner_id.as_ref(), cleared.meta.is_empty()), (None, true));
    assert!(owned(bob).await.is_empty());
    let stored = store.get(&tenant, &ids[1]).await.unwrap().unwrap();
    assert_eq!((stored.owner_id, stored.meta.is_empty(), stored.enabled), (None, true, true));
}

#[tokio::test]
async fn dynamodb_counts_keys_not_yet_retired() {
    let store = latchkey_tests::fresh_dynamo_store(chrono::TimeDelta::days(30)).await.with_max_keys_per_tenant(2);
    a_tenant_holds_at_most_its_limit_until_dead_keys_retire(store).await;
}

#[tokio::test]
async fn embedded_counts_keys_not_yet_retired() {
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(latchkey_tests::unique_name("keys") + ".redb");
    let store = latchkey::store::embedded::EmbeddedKeyStore::open(&file).unwrap().with_max_keys_per_tenant(2);
    a_tenant_holds_at_most_its_limit_until_dead_keys_retire(store).await;
}

/// A balance is set, read, spent down to none and refused, refilled at the next period, changed
/// and removed; a meter without one is unlimited (`None`).
async fn credits_are_spent_refused_refilled_and_removed(store: impl CreditStore) {
    let meter = latchkey::KeyId::generate();
    let day: DateTime<Utc> = "2100-01-01T23:59:59Z".parse().unwrap();
    assert_eq!(store.spend_credit(&meter, day).await.unwrap(), None, "no balance: unlimited");
    let credits = Credits {
        remaining: 2,
        refill: Some(Refill { amount: 3, interval: RefillInterval::Day }),
        low_threshold: Some(1),
    };
    let balance = CreditBalance::new(&credits, day);
    store.set_credits(&meter, Some(&balance)).await.unwrap();
    assert_eq!(store.credits(&meter).await.unwrap(), Some(balance.clone()));
    let spent = |remaining: u64| Spend::Spent(CreditBalance { remaining, ..balance.clone() });
    assert_eq!(store.spend_credit(&meter, day).await.unwrap(), Some(spent(1)));
    assert_eq!(store.spend_credit(&meter, day).await.unwrap(), Some(spent(0)));
    let midnight: DateTime<Utc> = "2100-01-02T00:00:00Z".parse().unwrap();
    assert_eq!(store.spend_credit(&meter, day).await.unwrap(), Some(Spend::Exhausted { refills_at: Some(midnight) }));
    assert_eq!(store.credits(&meter).await.unwrap().unwrap().remaining, 0, "a refusal spends nothing");
    // The next day: set back to 3, one spent by this request.
    let Some(Spend::Spent(refilled)) = store.spend_credit(&meter, midnight).await.unwrap() else { panic!("refilled") };
    assert_eq!((refilled.remaining, refilled.period.as_deref()), (2, Some("2100-01-02")));
    // Without a refill, an empty balance stays empty; removed, the meter is unlimited again.
    let once = CreditBalance::new(&Credits { remaining: 1, refill: None, low_threshold: None }, day);
    store.set_credits(&meter, Some(&once)).await.unwrap();
    assert!(matches!(store.spend_credit(&meter, midnight).await.unwrap(), Some(Spend::Spent(_))));
    assert_eq!(store.spend_credit(&meter, midnight).await.unwrap(), Some(Spend::Exhausted { refills_at: None }));
    store.set_credits(&meter, None).await.unwrap();
    assert_eq!(store.credits(&meter).await.unwrap(), None);
    assert_eq!(store.spend_credit(&meter, midnight).await.unwrap(), None);
}

/// Many spends at once against a balance of fewer: exactly as many as it held succeed; and
/// across a refill boundary, the refill happens once however many spends race to it.
async fn concurrent_spends_never_take_more_than_the_balance(store: impl CreditStore + 'static) {
    let store = Arc::new(store);
    let (meter, day) = (latchkey::KeyId::generate(), now());
    let credits = Credits {
        remaining: 7,
        refill: Some(Refill { amount: 5, interval: RefillInterval::Day }),
        low_threshold: None,
    };
    store.set_credits(&meter, Some(&CreditBalance::new(&credits, day))).await.unwrap();
    let race = |at: DateTime<Utc>| {
        let tasks: Vec<_> = (0..24)
            .map(|_| {
                let (store, meter) = (Arc::clone(&store), meter.clone());
                tokio::spawn(async move { store.spend_credit(&meter, at).await.unwrap().unwrap() })
            })
            .collect();
        async move {
            let mut spent = Vec::new();
            for task in tasks {
                if let Spend::Spent(balance) = task.await.unwrap() {
                    spent.push(balance.remaining);
                }
            }
            spent.sort_unstable();
            spent
        }
    };
    assert_eq!(race(day).await, (0..7).collect::<Vec<_>>(), "each credit spent once, each remaining seen once");
    assert_eq!(race(day + TimeDelta::days(1)).await, (0..5).collect::<Vec<_>>(), "one refill of 5, not one a spend");
}

macro_rules! contract {
    ($store_module:ident, $make:expr) => {
        contract!(@cases $store_module, $make, [
            insert_then_find_by_digest_and_id,
            duplicate_insert_is_rejected,
            pages_cover_a_tenant_exactly_once_in_creation_order,
            revoke_is_immediate_idempotent_and_tenant_scoped,
            update_changes_what_it_names_and_refuses_dead_keys,
            rotation_has_exactly_one_winner,
            rehash_moves_once_and_never_loses_a_revocation,
            touch_records_last_use_without_bumping_the_revision,
            many_parallel_inserts_lose_nothing,
            datasources_are_a_tenants_own,
            stopped_keys_come_in_the_order_they_stopped_until_retired,
            owners_list_their_own_keys_and_fields_round_trip,
            a_revoked_ingest_key_is_succeeded_atomically,
            credits_are_spent_refused_refilled_and_removed,
            concurrent_spends_never_take_more_than_the_balance,
        ]);
    };
    (@cases $store_module:ident, $make:expr, [$($case:ident),* $(,)?]) => {
        mod $store_module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($make).await;
                }
            )*
        }
    };
}

contract!(dynamodb, latchkey_tests::fresh_dynamo_store(chrono::TimeDelta::days(30)).await);
contract!(embedded, {
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(latchkey_tests::unique_name("keys") + ".redb");
    latchkey::store::embedded::EmbeddedKeyStore::open(&file).unwrap()
});
