//! Many requests at once, against DynamoDB Local and moto: rotations race to one winner, a
//! revocation is never half visible, parallel creates lose and duplicate nothing, and pagination
//! returns every key exactly once.

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;

use common::Stack;
use serde_json::{Value, json};
use tokio::task::JoinSet;

async fn create(stack: &Stack, admin: &str, name: &str) -> (String, String) {
    let created = stack.call(admin, "POST", "/keys", Some(json!({"name": name}))).await.expect(201);
    (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_rotations_of_one_key_have_one_winner() {
    let stack = Arc::new(Stack::new().await);
    let admin = stack.bootstrap("acme").await;
    for round in 0..3 {
        let (id, old_key) = create(&stack, &admin, &format!("contested {round}")).await;
        let mut rotations = JoinSet::new();
        for _ in 0..8 {
            let (stack, admin, id) = (stack.clone(), admin.clone(), id.clone());
            rotations.spawn(async move { stack.call(&admin, "POST", &format!("/keys/{id}/rotate"), None).await });
        }
        let answers = rotations.join_all().await;
        let winners: Vec<&common::Answer> = answers.iter().filter(|a| a.status == 201).collect();
        assert_eq!(winners.len(), 1, "round {round}: {answers:?}");
        for loser in answers.iter().filter(|a| a.status != 201) {
            loser.expect_error(409, "CONFLICT");
        }
        // The old key names exactly the winner as its successor, and the winner works.
        let old = stack.call(&admin, "GET", &format!("/keys/{id}"), None).await.expect(200);
        assert_eq!(old["replaced_by"], winners[0].body["id"]);
        stack.call(winners[0].body["key"].as_str().unwrap(), "GET", "/whoami", None).await.expect(200);
        // No grace was asked for: the old key stopped at once.
        stack.call(&old_key, "GET", "/whoami", None).await.expect_error(401, "EXPIRED_API_KEY");
        // No key has a gateway key of its own, the losers' neither.
        let names = [id.as_str(), winners[0].body["id"].as_str().unwrap()];
        assert_eq!(stack.gateway_keys_named(&names).await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_is_never_half_visible() {
    let stack = Arc::new(Stack::new().await);
    let admin = stack.bootstrap("acme").await;
    let (id, key) = create(&stack, &admin, "short-lived").await;
    let mut calls = JoinSet::new();
    for i in 0..40 {
        let (stack, admin, id, key) = (stack.clone(), admin.clone(), id.clone(), key.clone());
        calls.spawn(async move {
            if i == 20 {
                let answer = stack.call(&admin, "DELETE", &format!("/keys/{id}"), None).await;
                assert_eq!(answer.status, 204);
                None
            } else {
                Some(stack.call(&key, "GET", "/whoami", None).await)
            }
        });
    }
    for answer in calls.join_all().await.into_iter().flatten() {
        // Each verification sees the key either alive or revoked, never anything else.
        match answer.status {
            200 => assert_eq!(answer.body["id"], id.as_str()),
            _ => answer.expect_error(401, "INVALID_API_KEY"),
        }
    }
    // Once the revocation has answered and the cache TTL has passed, no verification succeeds.
    stack.let_cached_decisions_expire();
    for _ in 0..5 {
        stack.call(&key, "GET", "/whoami", None).await.expect_error(401, "INVALID_API_KEY");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_parallel_creates_lose_and_duplicate_nothing() {
    let stack = Arc::new(Stack::new().await);
    let admin = stack.bootstrap("acme").await;
    let mut creates = JoinSet::new();
    for i in 0..200 {
        let (stack, admin) = (stack.clone(), admin.clone());
        creates.spawn(async move { stack.call(&admin, "POST", "/keys", Some(json!({"name": format!("k{i}")}))).await });
    }
    let created: Vec<Value> = creates.join_all().await.into_iter().map(|a| a.expect(201)).collect();
    let ids: HashSet<&str> = created.iter().map(|c| c["id"].as_str().unwrap()).collect();
    let keys: HashSet<&str> = created.iter().map(|c| c["key"].as_str().unwrap()).collect();
    let names: HashSet<&str> = created.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!((ids.len(), keys.len(), names.len()), (200, 200, 200));

    let listed = list_all(&stack, &admin, 100).await;
    let listed_ids: HashSet<&str> = listed.iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert_eq!(listed.len(), 201, "200 and the bootstrap key, each once");
    assert!(ids.is_subset(&listed_ids));
    // Every one of them verifies; none has a gateway key of its own, and the burst made the
    // tier's pool one slot, not one per create.
    for key in keys.iter().take(20) {
        stack.call(key, "GET", "/whoami", None).await.expect(200);
    }
    let ids: Vec<&str> = ids.into_iter().collect();
    assert_eq!(stack.gateway_keys_named(&ids).await, 0);
    let free = "free".parse().unwrap();
    assert_eq!(latchkey::gateway::pool::GatewaySlots::pool_size(&*stack.store, &free).await.unwrap(), 1);
}

#[tokio::test]
async fn pagination_over_250_keys_returns_each_once() {
    let stack = Stack::new().await;
    let admin = stack.bootstrap("acme").await;
    let mut created = HashSet::new();
    for i in 0..250 {
        created.insert(create(&stack, &admin, &format!("page {i}")).await.0);
    }
    for limit in [1, 7, 50, 100] {
        if limit == 1 {
            // One key per page would take 251 requests; the first few show the cursor works.
            let first = stack.call(&admin, "GET", "/keys?limit=1", None).await.expect(200);
            let cursor = first["next_cursor"].as_str().unwrap();
            let second = stack.call(&admin, "GET", &format!("/keys?limit=1&cursor={cursor}"), None).await.expect(200);
            assert_ne!(first["keys"][0]["id"], second["keys"][0]["id"]);
            continue;
        }
        let listed = list_all(&stack, &admin, limit).await;
        let ids: Vec<&str> = listed.iter().map(|k| k["id"].as_str().unwrap()).collect();
        let unique: HashSet<&str> = ids.iter().copied().collect();
        assert_eq!((ids.len(), unique.len()), (251, 251), "limit {limit}");
        assert!(created.iter().all(|id| unique.contains(id.as_str())));
    }
    // A filtered listing pages too: all 251 are active.
    let active = stack.call(&admin, "GET", "/keys?status=active&limit=100", None).await.expect(200);
    assert_eq!(active["keys"].as_array().unwrap().len(), 100);
    assert!(active["next_cursor"].is_string());
}

/// Every key of the caller's tenant, following `next_cursor` page by page.
async fn list_all(stack: &Stack, admin: &str, limit: u32) -> Vec<Value> {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1_000 {
        let path = match &cursor {
            Some(cursor) => format!("/keys?limit={limit}&cursor={cursor}"),
            None => format!("/keys?limit={limit}"),
        };
        let page = stack.call(admin, "GET", &path, None).await.expect(200);
        let items = page["keys"].as_array().unwrap();
        assert!(items.len() <= limit as usize);
        keys.extend(items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return keys,
        }
    }
    panic!("the listing never ended");
}
