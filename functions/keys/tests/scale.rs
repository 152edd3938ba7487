//! Past API Gateway's ceiling (the guide's "Keys and API Gateway's ceiling"), on DynamoDB Local
//! and moto: 100,000 keys created in one tenant (`LATCHKEY_SCALE_KEYS` to change it; DynamoDB
//! Local makes about 180 a second on two cores, so this is about nine minutes of the suite),
//! counting every API Gateway key made on the way: the tier's pool's, none per key. One tenant,
//! so that its count (one item, in every create's transaction) is what a sign-up burst meets.
//! Then 1,000 of them verified by the authorizer against a pool of 50 slots: each request has a
//! usage key, at most 50 gateway keys are in use, and none is refused.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use chrono::TimeDelta;
use latchkey::gateway::pool::{self, GatewaySlots};
use latchkey::manage::{Caller, KeyService};
use latchkey_authorizer::Principal;
use serde_json::json;
use tokio::task::JoinSet;

use crate::common::{self, Noting, Stack};

const POOL: u32 = 50;
const VERIFIED: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_keys_use_only_the_pools_gateway_keys() {
    let keys: usize = std::env::var("LATCHKEY_SCALE_KEYS").map_or(100_000, |n| n.parse().unwrap());
    let store = latchkey_tests::fresh_dynamo_store(TimeDelta::days(30)).await.with_max_keys_per_tenant(keys as u32);
    let stack = Stack::with_store(store).await;
    let service = Arc::new(KeyService {
        store: stack.store.clone(),
        gateway: Noting::new(&stack),
        clock: stack.clock.clone(),
        policy: common::policy(),
        events: Arc::new(latchkey::events::NoEvents),
        pools: Default::default(),
    });
    let issuance = Arc::new(common::issuance().await);

    let started = Instant::now();
    let mut creates = JoinSet::new();
    let mut shown = Vec::new();
    let mut made = 0;
    for n in 0..keys {
        let (service, issuance) = (Arc::clone(&service), Arc::clone(&issuance));
        creates.spawn(async move {
            let tenant = "acme".parse().unwrap();
            let body = serde_json::from_value(json!({"name": format!("key {n}"), "tier": "free"})).unwrap();
            service.create(&issuance, &Caller::operator(tenant), body).await.expect("created").key
        });
        // 32 creates in flight: what one key function's concurrency would send.
        while creates.len() >= 32 {
            let key = creates.join_next().await.unwrap().unwrap();
            made += 1;
            if shown.len() < VERIFIED {
                shown.push(key);
            }
        }
    }
    while let Some(key) = creates.join_next().await {
        made += 1;
        if shown.len() < VERIFIED {
            shown.push(key.unwrap());
        }
    }
    let elapsed = started.elapsed();
    eprintln!("scale: {made} keys created in {elapsed:.1?} ({:.0}/s)", made as f64 / elapsed.as_secs_f64());
    assert_eq!(made, keys);
    // The tenant's count is exact: it holds `keys`, its limit, and not one more.
    let full = latchkey::store::KeyStore::room(&*stack.store, &"acme".parse().unwrap(), 0).await;
    assert!(
        matches!(full, Err(latchkey::store::StoreError::LimitReached { limit }) if limit as usize == keys),
        "{full:?}"
    );
    let free = "free".parse().unwrap();
    assert_eq!(service.gateway.issued.lock().unwrap().len(), 1, "one gateway key made: the pool's first slot");
    assert_eq!(stack.store.pool_size(&free).await.unwrap(), 1);

    // The sweep grows the pool; 1,000 keys in use then hold or share its 50 slots.
    let filled = pool::fill(&*stack.store, &service.gateway, &free, POOL, POOL).await.unwrap();
    assert_eq!(filled.size, POOL);
    let slot_values: HashSet<String> = {
        let issued = service.gateway.issued.lock().unwrap().clone();
        let mut values = HashSet::new();
        for id in issued {
            let key = stack.apigateway.get_api_key().api_key(&id).include_value(true).send().await.unwrap();
            values.insert(key.value.unwrap());
        }
        values
    };
    assert_eq!(slot_values.len(), POOL as usize);
    let (mut own, mut shared) = (HashSet::new(), 0);
    for key in &shown {
        let principal = stack.authorizer.authenticate([("x-api-key", key.as_str())]).await.expect("never refused");
        let Principal::Key(record) = principal else { panic!("a key") };
        let lease = record.lease.clone().expect("every request has a usage key");
        assert!(slot_values.contains(&lease.value), "a gateway key of the pool: {lease:?}");
        if lease.shared {
            shared += 1;
        } else {
            assert!(own.insert(lease.slot), "two keys hold slot {}", lease.slot);
        }
    }
    assert_eq!(own.len() + shared, VERIFIED);
    assert!(own.len() <= POOL as usize && own.len() >= POOL as usize * 9 / 10, "{} slots held", own.len());
    assert_eq!(service.gateway.issued.lock().unwrap().len(), POOL as usize, "gateway keys made in all");

    // The suite's leak audit scans every table left in DynamoDB Local for plaintext keys; this
    // one's 100,000 records (written by the create every other test writes through, and audited
    // there) made that scan fail in DynamoDB Local (InternalFailure after 7 minutes).
    let client = stack.store.client();
    client.delete_table().table_name(stack.store.table()).send().await.expect("the table is deleted");
}
