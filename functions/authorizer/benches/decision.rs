//! The authorizer's hot path against its floors, measured side by side in one run:
//!
//! - one decision, raw event bytes to response bytes, key cached, vs only deserializing the
//!   same event into `aws_lambda_events`' typed REQUEST struct (target ≤ 0.5×);
//! - the digest of a key vs a bare pre-keyed HMAC clone over the same bytes (target ≤ 1.3×).
//!
//! `cargo bench -p latchkey-authorizer --bench decision`; results and ratios in BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use latchkey::pepper::CachedPepper;
use latchkey::store::KeyStore;
use latchkey::store::embedded::EmbeddedKeyStore;
use latchkey::{KeyHasher, KeyProfile, KeyRecord, KeySpec, PepperVersion, Permission, SystemClock};
use latchkey_authorizer::{Authorizer, Dependencies};
use latchkey_tests::StaticPepper;
use sha2::Sha256;

const PEPPER: &[u8] = b"benchmark-pepper-0123456789abcdef0123456789";
const EVENT: &[u8] = include_bytes!("../tests/fixtures/key_x_api_key.json");
const KEY: &str = "lk_3f8da4f058e8992f91c42ccfd00b31e3a017156f";

fn decision(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let authorizer = runtime.block_on(async {
        let store = Arc::new(EmbeddedKeyStore::open(&dir.path().join("keys.redb")).unwrap());
        let hasher = KeyHasher::new(PEPPER, PepperVersion::new("v1"));
        let key = KeyProfile::latchkey().parse(KEY).unwrap();
        let spec = KeySpec {
            tenant_id: "acme".parse().unwrap(),
            name: "bench".into(),
            permissions: [Permission::Read, Permission::Write].into_iter().collect(),
            tier: "starter".parse().unwrap(),
            expires_at: None,
            datasource_id: None,
            replaces: None,
            owner_id: None,
            meta: Default::default(),
            enabled: true,
            ip_allowlist: Default::default(),
            meter: None,
        };
        store.insert(&KeyRecord::new(&key, &hasher, spec, chrono::Utc::now())).await.unwrap();
        let authorizer = Authorizer::new(Dependencies {
            store,
            peppers: CachedPepper::load(StaticPepper::new(PEPPER, "v1"), Duration::from_secs(3600)).await.unwrap(),
            clock: Arc::new(SystemClock),
            profile: KeyProfile::latchkey(),
            cache_ttl: Duration::from_secs(3600),
            cache_capacity: 10_000,
            jwt: None,
            sessions: None,
            session_usage_keys: None,
            gateway_pool: false,
        });
        // Warm the cache: the benchmark measures the cached path.
        let response = authorizer.handle_event(EVENT).await.unwrap();
        assert!(String::from_utf8(response).unwrap().contains(r#""Effect":"Allow""#));
        authorizer
    });

    let mut group = c.benchmark_group("authorizer");
    group.bench_function("decision_raw_bytes_cached_key", |b| {
        b.to_async(&runtime).iter(|| async { black_box(authorizer.handle_event(black_box(EVENT)).await.unwrap()) })
    });
    group.bench_function("typed_parse_aws_lambda_events", |b| {
        b.iter(|| {
            let event: ApiGatewayCustomAuthorizerRequestTypeRequest = serde_json::from_slice(black_box(EVENT)).unwrap();
            black_box(event)
        })
    });
    group.finish();
}

fn digest(c: &mut Criterion) {
    let key = KeyProfile::latchkey().parse(KEY).unwrap();
    let hasher = KeyHasher::new(PEPPER, PepperVersion::new("v1"));
    let keyed = Hmac::<Sha256>::new_from_slice(PEPPER).unwrap();
    let mut group = c.benchmark_group("hashing");
    group.bench_function("key_digest", |b| b.iter(|| black_box(hasher.digest(black_box(&key)))));
    group.bench_function("bare_prekeyed_hmac", |b| {
        b.iter(|| {
            let mut mac = keyed.clone();
            mac.update(black_box(KEY.as_bytes()));
            black_box(mac.finalize().into_bytes())
        })
    });
    group.finish();
}

criterion_group!(benches, decision, digest);
criterion_main!(benches);
