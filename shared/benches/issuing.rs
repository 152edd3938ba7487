//! Issuing and answering, against their floors, measured side by side in one run:
//!
//! - creating a key without I/O (OS CSPRNG -> key string with checksum -> peppered digest ->
//!   the record to store) vs the least any scheme must do: 32 bytes from `OsRng` and one HMAC
//!   (target ≤ 2×);
//! - rendering an error envelope (what every refusal costs) vs serializing a struct of the same
//!   shape from static strings.
//!
//! `cargo bench -p latchkey --bench issuing`; results and ratios in BENCHMARKS.md.

use std::hint::black_box;

use chrono::Utc;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use latchkey::{ApiError, KeyHasher, KeyProfile, KeyRecord, KeySpec, PepperVersion, Permission};
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::Serialize;
use sha2::Sha256;

const PEPPER: &[u8] = b"benchmark-pepper-0123456789abcdef0123456789";

fn key_creation(c: &mut Criterion) {
    let profile = KeyProfile::latchkey();
    let hasher = KeyHasher::new(PEPPER, PepperVersion::new("v1"));
    let keyed = Hmac::<Sha256>::new_from_slice(PEPPER).unwrap();
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
    let now = Utc::now();
    let mut group = c.benchmark_group("key_creation");
    group.bench_function("generate_digest_record", |b| {
        // The spec is moved into the record, as issuing does; building it is the request's cost.
        b.iter_batched(
            || spec.clone(),
            |spec| {
                let key = profile.generate();
                black_box((KeyRecord::new(&key, &hasher, spec, now), key))
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("osrng_32_bytes_plus_hmac", |b| {
        b.iter(|| {
            let mut bytes = [0u8; 32];
            OsRng.try_fill_bytes(&mut bytes).unwrap();
            let mut mac = keyed.clone();
            mac.update(&bytes);
            black_box(mac.finalize().into_bytes())
        })
    });
    group.finish();
}

#[derive(Serialize)]
struct StaticEnvelope {
    success: bool,
    error: StaticError,
    message: &'static str,
}

#[derive(Serialize)]
struct StaticError {
    code: &'static str,
    message: &'static str,
}

fn envelope(c: &mut Criterion) {
    let mut group = c.benchmark_group("envelope");
    group.bench_function("invalid_api_key", |b| b.iter(|| black_box(black_box(&ApiError::InvalidApiKey).to_json())));
    let validation = ApiError::validation("permissions[1]", "unknown permission `own`");
    group.bench_function("validation_with_field", |b| b.iter(|| black_box(black_box(&validation).to_json())));
    let floor = StaticEnvelope {
        success: false,
        error: StaticError { code: "INVALID_API_KEY", message: "The API key is not valid" },
        message: "Unauthorized",
    };
    group.bench_function("static_struct_serialize", |b| {
        b.iter(|| black_box(serde_json::to_string(black_box(&floor)).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, key_creation, envelope);
criterion_main!(benches);
