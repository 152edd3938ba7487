//! A plaintext key must never reach a log line (ours or the AWS SDK's, at TRACE), an error
//! message, a `Debug` output, DynamoDB or the embedded store's file. This test drives every
//! path that handles a key, captures all of it, and searches for every key it made.

use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::{TimeDelta, Utc};
use latchkey::lookup::find_key;
use latchkey::pepper::{FilePepper, PepperProvider};
use latchkey::store::KeyStore;
use latchkey::store::embedded::EmbeddedKeyStore;
use latchkey::{ApiError, ApiKey, KeyProfile, KeyRecord, KeySpec, extract_credential};
use latchkey_tests::fresh_dynamo_store;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn spec(name: &str) -> KeySpec {
    KeySpec {
        tenant_id: "acme".parse().unwrap(),
        name: name.into(),
        permissions: Default::default(),
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

/// Stores `key` as an import (by its plaintext, or by its SHA-256) and verifies it once: what
/// every step showed, for the search.
async fn import_into(
    store: &impl KeyStore,
    key: &ApiKey,
    by_digest: bool,
    peppers: &latchkey::pepper::PepperSet,
) -> String {
    let record = if by_digest {
        let sha256 = latchkey::KeyDigest::from_hex(&key.sha256_hex()).unwrap();
        KeyRecord::imported_digest(sha256, spec("imported"), Utc::now())
    } else {
        KeyRecord::new(key, &peppers.current, spec("imported"), Utc::now())
    };
    store.insert(&record).await.unwrap();
    format!("{key:?} {record:?} {:?}", find_key(store, peppers, key).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_key_in_logs_errors_debug_or_storage() {
    let logs = Captured::default();
    let sink = logs.clone();
    tracing_subscriber::fmt().json().with_max_level(tracing::Level::TRACE).with_writer(move || sink.clone()).init();

    let dir = tempfile::tempdir().unwrap();
    let pepper_file = FilePepper::new(dir.path().join("pepper.json"));
    let store_file = dir.path().join("keys.redb");
    let embedded = EmbeddedKeyStore::open(&store_file).unwrap();
    let dynamo = fresh_dynamo_store(TimeDelta::days(1)).await;
    let mut shown = Vec::<String>::new();
    let mut keys = Vec::<(KeyProfile, ApiKey)>::new();

    for profile in [KeyProfile::ctw(), KeyProfile::orch(), KeyProfile::latchkey()] {
        let peppers = pepper_file.load().await.unwrap();
        let (key, record) = KeyRecord::issue(&profile, &peppers.current, spec("leak test"), Utc::now());
        embedded.insert(&record).await.unwrap();
        dynamo.insert(&record).await.unwrap();
        shown.push(format!("{key:?} {record:?} {peppers:?} {profile:?}"));

        // The credential paths, including their failures.
        let text = key.expose_secret();
        let bearer = format!("Bearer {text}");
        let found = extract_credential([("Authorization", bearer.as_str())]);
        shown.push(format!("{found:?}"));
        let conflict = extract_credential([("x-api-key", text), ("authorization", "Bearer other")]).unwrap_err();
        shown.push(format!("{conflict:?} {conflict} {}", ApiError::from(conflict).to_json()));
        let mut typo = text.to_owned();
        typo.pop();
        typo.push('Z');
        let format_error = profile.parse(&typo).unwrap_err();
        shown.push(format!("{format_error:?} {format_error} {}", ApiError::InvalidApiKeyFormat.to_json()));

        // Verification, before and after a pepper rotation (which logs the rehash).
        shown.push(format!("{:?}", find_key(&embedded, &peppers, &key).await));
        pepper_file.rotate().unwrap();
        let rotated = pepper_file.load().await.unwrap();
        shown.push(format!("{:?}", find_key(&embedded, &rotated, &key).await));
        shown.push(format!("{:?}", find_key(&dynamo, &rotated, &key).await));
        shown.push(format!("{:?}", embedded.revoke(&record.tenant_id, &record.id, Utc::now()).await));
        keys.push((profile, key));
    }

    // Keys of another system: one imported as it is, one by its SHA-256 and moved under the pepper
    // by its first use (which logs the move).
    let mut imported = Vec::<ApiKey>::new();
    for (text, by_digest) in
        [("Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd4fGh7jKl0n", false), ("unkey_3ZHfJbHq7sJvGr9WBGmM5Lyy", true)]
    {
        let key = KeyProfile::latchkey().parse_imported(text).unwrap();
        let peppers = pepper_file.load().await.unwrap();
        shown.push(import_into(&embedded, &key, by_digest, &peppers).await);
        shown.push(import_into(&dynamo, &key, by_digest, &peppers).await);
        imported.push(key);
    }

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("moved from its SHA-256"), "the capture holds the imported key's move");
    assert!(logs.contains("rehashed"), "the capture really holds the run's logs");
    let scan = dynamo.client().scan().table_name(dynamo.table()).send().await.unwrap();
    let table = format!("{:?}", scan.items());
    drop(embedded);
    let file = std::fs::read(&store_file).unwrap();
    let file = String::from_utf8_lossy(&file);
    let shown = shown.join("\n");

    for (profile, key) in &keys {
        let text = key.expose_secret();
        // The hint shows the last four characters on purpose; everything before them is secret.
        let secret_part = &text[profile.prefix().len() + 1..text.len() - 4];
        for (place, haystack) in
            [("logs", logs.as_str()), ("Debug and errors", &shown), ("DynamoDB", &table), ("redb file", &file)]
        {
            assert!(!haystack.contains(secret_part), "a plaintext key reached the {place}");
        }
    }
    for key in &imported {
        let text = key.expose_secret();
        let secret_part = &text[..text.len() - 4];
        for (place, haystack) in
            [("logs", logs.as_str()), ("Debug and errors", &shown), ("DynamoDB", &table), ("redb file", &file)]
        {
            assert!(!haystack.contains(secret_part), "an imported key reached the {place}");
        }
    }
}
