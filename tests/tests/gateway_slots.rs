//! The gateway key pool's contract ([`latchkey::gateway::pool::GatewaySlots`]), against DynamoDB
//! Local (the keys table) and the embedded store: slots are added in order and once; a slot is
//! one key's at a time, also when keys race for it from concurrent authorizer instances; a lease
//! ends with its time and the slot is then taken; a full pool shares instead of refusing; a noted
//! lease is read back with the record.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use latchkey::gateway::pool::{Claim, GatewaySlots, end_of_day, lease};
use latchkey::store::KeyStore;
use latchkey::{GatewayKey, KeyHasher, KeyId, KeyProfile, KeyRecord, KeySpec, PepperVersion, Permission, TierName};

/// Far in the future, like the key store's contract: DynamoDB Local's TTL runs in real time.
fn now() -> DateTime<Utc> {
    "2100-01-01T09:00:00Z".parse().unwrap()
}

fn tier() -> TierName {
    format!("t{}", &uuid::Uuid::now_v7().simple().to_string()[20..]).parse().unwrap()
}

fn gateway_key(slot: u32) -> GatewayKey {
    GatewayKey { id: format!("gw-{slot}"), value: format!("value-{slot}") }
}

async fn with_slots<S: GatewaySlots>(store: &S, tier: &TierName, size: u32) {
    for slot in 0..size {
        assert!(store.add_slot(tier, slot, &gateway_key(slot)).await.unwrap(), "slot {slot}");
    }
}

async fn slots_are_added_in_order_and_once<S: GatewaySlots + 'static>(store: S) {
    let tier = tier();
    assert_eq!(store.pool_size(&tier).await.unwrap(), 0);
    assert!(!store.add_slot(&tier, 1, &gateway_key(1)).await.unwrap(), "no gap before slot 1");
    with_slots(&store, &tier, 3).await;
    assert!(!store.add_slot(&tier, 2, &gateway_key(9)).await.unwrap(), "slot 2 exists");
    assert_eq!(store.pool_size(&tier).await.unwrap(), 3);
    assert_eq!(store.pool_size(&self::tier()).await.unwrap(), 0, "each tier its own pool");
    let key = KeyId::generate();
    assert_eq!(store.claim(&tier, 3, &key, now(), end_of_day(now())).await.unwrap(), Claim::Missing);
    // Two fillers adding the next slot at once: one wins.
    let store = Arc::new(store);
    let adds = (0..2).map(|n| {
        let (store, tier) = (Arc::clone(&store), tier.clone());
        tokio::spawn(async move { store.add_slot(&tier, 3, &gateway_key(30 + n)).await.unwrap() })
    });
    let won: Vec<bool> = futures_util::future::join_all(adds).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    assert_eq!(store.pool_size(&tier).await.unwrap(), 4);
}

async fn a_slot_is_one_keys_until_its_lease_ends<S: GatewaySlots>(store: S) {
    let tier = tier();
    with_slots(&store, &tier, 1).await;
    let (first, second) = (KeyId::generate(), KeyId::generate());
    let until = end_of_day(now());
    assert_eq!(store.claim(&tier, 0, &first, now(), until).await.unwrap(), Claim::Leased("value-0".into()));
    assert_eq!(store.claim(&tier, 0, &second, now(), until).await.unwrap(), Claim::Held("value-0".into()));
    let later = now() + TimeDelta::hours(5);
    assert_eq!(store.claim(&tier, 0, &first, later, until).await.unwrap(), Claim::Leased("value-0".into()), "its own");
    assert_eq!(
        store.claim(&tier, 0, &second, until - TimeDelta::seconds(1), until).await.unwrap(),
        Claim::Held("value-0".into())
    );
    // At the end of the day the lease has ended: the slot is free for any key.
    let tomorrow = end_of_day(now());
    assert_eq!(
        store.claim(&tier, 0, &second, tomorrow, end_of_day(tomorrow)).await.unwrap(),
        Claim::Leased("value-0".into())
    );
    assert_eq!(
        store.claim(&tier, 0, &first, tomorrow, end_of_day(tomorrow)).await.unwrap(),
        Claim::Held("value-0".into())
    );
}

/// Authorizer instances verifying different keys at once, all probing the same one-slot pool:
/// exactly one key holds it, every other shares it, none is refused.
async fn racing_keys_never_hold_one_slot_together<S: GatewaySlots + 'static>(store: S) {
    let tier = tier();
    with_slots(&store, &tier, 1).await;
    let store = Arc::new(store);
    for round in 0..5 {
        let at = now() + TimeDelta::days(round);
        let claims = (0..8).map(|_| {
            let (store, tier) = (Arc::clone(&store), tier.clone());
            tokio::spawn(async move { lease(&*store, &tier, 1, &KeyId::generate(), at).await.unwrap().unwrap() })
        });
        let leases: Vec<_> = futures_util::future::join_all(claims).await.into_iter().map(Result::unwrap).collect();
        let own: Vec<_> = leases.iter().filter(|l| !l.shared).collect();
        assert_eq!(own.len(), 1, "round {round}: {leases:?}");
        assert!(leases.iter().all(|l| l.value == "value-0" && l.slot == 0), "{leases:?}");
    }
}

async fn a_noted_lease_is_read_with_the_record<S: GatewaySlots + KeyStore>(store: S) {
    let tier = tier();
    with_slots(&store, &tier, 2).await;
    let hasher = KeyHasher::new(&[7u8; 32], PepperVersion::new("v1"));
    let spec = KeySpec::new(
        format!("acme-{}", uuid::Uuid::now_v7().simple()).parse().unwrap(),
        "leased".into(),
        [Permission::Read].into_iter().collect(),
        tier.clone(),
    );
    let (key, record) = KeyRecord::issue(&KeyProfile::latchkey(), &hasher, spec, now());
    store.insert(&record).await.unwrap();
    let held = lease(&store, &tier, 2, &record.id, now()).await.unwrap().unwrap();
    assert!(!held.shared && held.serves(&tier, now()) && !held.serves(&tier, end_of_day(now())), "{held:?}");
    store.note_lease(&record.digest, &held).await.unwrap();
    let stored = store.find_by_digest(&hasher.digest(&key)).await.unwrap().unwrap();
    assert_eq!(stored.lease.as_ref(), Some(&held));
    assert_eq!(stored.revision, record.revision, "a lease is not a change to the key");
    let (_, stranger) = KeyRecord::issue(&KeyProfile::latchkey(), &hasher, record_spec(&record), now());
    assert!(store.note_lease(&stranger.digest, &held).await.is_err(), "never creates a record");
}

fn record_spec(record: &KeyRecord) -> KeySpec {
    KeySpec::new(record.tenant_id.clone(), record.name.clone(), record.permissions.clone(), record.tier.clone())
}

macro_rules! contract {
    ($name:ident, $make:expr) => {
        mod $name {
            #[tokio::test]
            async fn slots_are_added_in_order_and_once() {
                super::slots_are_added_in_order_and_once($make).await;
            }

            #[tokio::test]
            async fn a_slot_is_one_keys_until_its_lease_ends() {
                super::a_slot_is_one_keys_until_its_lease_ends($make).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn racing_keys_never_hold_one_slot_together() {
                super::racing_keys_never_hold_one_slot_together($make).await;
            }

            #[tokio::test]
            async fn a_noted_lease_is_read_with_the_record() {
                super::a_noted_lease_is_read_with_the_record($make).await;
            }
        }
    };
}

contract!(dynamodb, latchkey_tests::fresh_dynamo_store(chrono::TimeDelta::days(30)).await);
contract!(embedded, {
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(latchkey_tests::unique_name("slots") + ".redb");
    latchkey::store::embedded::EmbeddedKeyStore::open(&file).unwrap()
});
