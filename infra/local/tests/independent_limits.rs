//! 1,000 keys in use at once on the local API, each throttled by its own limit: every key gets
//! its tier's whole burst and then `429 RATE_LIMITED` with `Retry-After`, however many other keys
//! are being throttled at the same moment. (Deployed, each key in use holds a slot of its tier's
//! gateway key pool for the same reason: functions/keys/tests/scale.rs.)

use crate::common;

use common::Running;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::json;

const KEYS: usize = 1_000;
const BURST: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_keys_in_use_at_once_are_each_throttled_alone() {
    let dir = tempfile::tempdir().unwrap();
    // A burst of 3 and a refill so slow (one request per 100 s) that no key gets a fourth within
    // the test, however the requests interleave.
    let tiers =
        r#"[{"name":"free","throttle":{"rate_per_second":0.01,"burst":3}},{"name":"internal","assignable":false}]"#;
    let api = Running::start_configured(
        dir.path(),
        None,
        &[("LATCHKEY_TIERS", tiers), ("LATCHKEY_MAX_KEYS_PER_TENANT", "2000")],
    )
    .await;
    let admin = api.admin_key.clone().unwrap();
    let started = std::time::Instant::now();
    let keys: Vec<String> = futures_util::stream::iter(0..KEYS)
        .map(|n| {
            let (api, admin) = (&api, admin.clone());
            async move {
                let (status, created) =
                    api.json(Some(&admin), Method::POST, "/keys", Some(json!({"name": format!("k{n}")}))).await;
                assert_eq!(status, 201, "{created}");
                created["key"].as_str().unwrap().to_owned()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    eprintln!("independent_limits: {KEYS} keys made in {:.1?}", started.elapsed());
    let started = std::time::Instant::now();
    // Every key at once: BURST + 2 requests each, 64 in flight across all keys.
    let client = reqwest::Client::new();
    let whoami = format!("{}/whoami", api.base);
    let answers: Vec<(usize, u16, Option<String>)> = futures_util::stream::iter(
        keys.iter().enumerate().flat_map(|(n, key)| std::iter::repeat_n((n, key.clone()), BURST + 2)),
    )
    .map(|(n, key)| {
        let (client, whoami) = (&client, &whoami);
        async move {
            let response = client.get(whoami).header("x-api-key", key).send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            (n, status, retry_after)
        }
    })
    .buffer_unordered(64)
    .collect()
    .await;
    eprintln!("independent_limits: {} requests in {:.1?}", KEYS * (BURST + 2), started.elapsed());
    let mut per_key = vec![(0, 0); KEYS];
    for (n, status, retry_after) in answers {
        match status {
            200 => per_key[n].0 += 1,
            429 => {
                assert!(retry_after.is_some_and(|s| s.parse::<u64>().unwrap() >= 1), "429 without Retry-After");
                per_key[n].1 += 1
            }
            other => panic!("key {n}: {other}"),
        }
    }
    let unlike: Vec<(usize, (usize, usize))> =
        per_key.into_iter().enumerate().filter(|(_, counts)| *counts != (BURST, 2)).collect();
    assert!(unlike.is_empty(), "keys not given exactly their own burst: {unlike:?}");
    api.stop().await;
}
