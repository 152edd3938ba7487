//! The ingest body parser: `latchkey::ingest::body::prepare` of arbitrary bytes. An input that
//! starts with an `Idempotency-Key: KEY` line passes KEY as the header; the rest is the body. The
//! first `@PAD` in the body is replaced by `MAX_RECORD_BYTES - 16` bytes of `x`, so that records
//! on both sides of the per-record limit are reached by small inputs.
//!
//! Beyond "no panic":
//! - the limits hold: at most `MAX_RECORDS` records, none stored over `MAX_RECORD_BYTES`, the body
//!   no larger than `MAX_BODY_BYTES`, an `Idempotency-Key` used only when it is 1 to
//!   `MAX_ID_CHARS` printable ASCII characters;
//! - every record of the request is accounted for exactly once (stored or rejected by index);
//! - a stored record is an object, copied verbatim from the body, with the sequence of its index
//!   (increasing with it) and the identity the documented rules give: its own `id`, else the
//!   request's key and its index, else a fresh one; so a retry of the same request yields the
//!   same identities whenever it can be deduplicated.
#![no_main]

use chrono::{DateTime, Utc};
use latchkey::ApiError;
use latchkey::ingest::body::{Prepared, prepare};
use latchkey::ingest::{MAX_BODY_BYTES, MAX_ID_CHARS, MAX_RECORD_BYTES, MAX_RECORDS, Sequence};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const REQUEST: u64 = 0x0123_4567_89ab_cdef;
const PAD: &str = "@PAD";

fn received_at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_900_000_000, 123_456_000).expect("in range")
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_CHARS && id.bytes().all(|b| b.is_ascii_graphic())
}

fn check_error(error: &ApiError) {
    assert!(matches!(error, ApiError::Validation { .. } | ApiError::PayloadTooLarge { .. }), "{error:?}");
}

fn check_prepared(body: &[u8], key: Option<&str>, prepared: &Prepared) {
    assert!(body.len() <= MAX_BODY_BYTES);
    assert!(key.is_none_or(valid_id), "accepted the Idempotency-Key {key:?}");
    let text = std::str::from_utf8(body).expect("accepted a body that is not UTF-8");

    let count = prepared.records.len() + prepared.rejected.len();
    assert!((1..=MAX_RECORDS).contains(&count), "{count} records");
    let mut seen = vec![false; count];
    for index in prepared.records.iter().map(|(i, _)| *i).chain(prepared.rejected.iter().map(|r| r.index)) {
        assert!(index < count && !seen[index], "index {index} of {count} twice or out of range");
        seen[index] = true;
    }
    for rejection in &prepared.rejected {
        assert!(matches!(rejection.code, "VALIDATION_ERROR" | "PAYLOAD_TOO_LARGE"), "{rejection:?}");
    }

    let mut previous: Option<&Sequence> = None;
    for (index, record) in &prepared.records {
        let data = record.data.get();
        assert!(data.starts_with('{') && data.ends_with('}'), "stored a record that is not an object");
        assert!(data.len() <= MAX_RECORD_BYTES, "stored a record of {} bytes", data.len());
        assert!(text.contains(data), "a stored record is not verbatim from the body");

        assert_eq!(record.sequence, Sequence::new(received_at(), REQUEST, *index as u16));
        assert!(previous.is_none_or(|previous| *previous < record.sequence));
        previous = Some(&record.sequence);

        let identity = &record.identity;
        // The record's own `id` (read independently, where serde_json's `Value` can read it).
        let own_id = serde_json::from_str::<serde_json::Value>(data)
            .ok()
            .map(|value| value.get("id").and_then(serde_json::Value::as_str).map(str::to_owned));
        if identity.digest == sha256_hex(&format!("id:{}", identity.id)) {
            assert!(valid_id(&identity.id), "stored the record id {:?}", identity.id);
            assert!(own_id.is_none_or(|own| own.as_deref() == Some(identity.id.as_str())));
        } else {
            assert!(own_id.is_none_or(|own| own.is_none()), "the record's own id was not used");
            assert_eq!(identity.id, format!("rec_{}", &identity.digest[..32]));
            match key {
                Some(key) => assert_eq!(identity.digest, sha256_hex(&format!("key:{key}#{index}"))),
                None => assert!(identity.digest.len() == 64 && identity.digest.bytes().all(|b| b.is_ascii_hexdigit())),
            }
        }
        assert!(identity.shard() < latchkey::ingest::SHARDS);
    }
}

fuzz_target!(|data: &[u8]| {
    let (key, body) = match data.strip_prefix(b"Idempotency-Key: ") {
        Some(rest) => {
            let (line, body) = rest.split_at(rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len()));
            let Ok(key) = std::str::from_utf8(line) else { return };
            (Some(key), body.strip_prefix(b"\n").unwrap_or(body))
        }
        None => (None, data),
    };
    let padded;
    let body = match body.windows(PAD.len()).position(|window| window == PAD.as_bytes()) {
        Some(at) => {
            padded = [&body[..at], "x".repeat(MAX_RECORD_BYTES - 16).as_bytes(), &body[at + PAD.len()..]].concat();
            &padded[..]
        }
        None => body,
    };

    match prepare(body, key, received_at(), REQUEST) {
        Ok(prepared) => {
            check_prepared(body, key, &prepared);
            // A retry of the same request: the same records, and the same identities wherever the
            // request gives one (the record's id or the Idempotency-Key).
            let retry = prepare(body, key, received_at(), REQUEST).expect("the retry was refused");
            assert_eq!(retry.rejected, prepared.rejected);
            assert_eq!(retry.records.len(), prepared.records.len());
            for ((index, first), (retry_index, again)) in prepared.records.iter().zip(&retry.records) {
                assert_eq!((index, first.data.get()), (retry_index, again.data.get()));
                let own_id = first.identity.digest == sha256_hex(&format!("id:{}", first.identity.id));
                let deduplicable = key.is_some() || own_id;
                if deduplicable {
                    assert_eq!(first.identity, again.identity);
                }
            }
        }
        Err(error) => {
            check_error(&error);
            if body.len() > MAX_BODY_BYTES {
                assert_eq!(error, ApiError::PayloadTooLarge { limit_bytes: MAX_BODY_BYTES });
            }
            if key.is_some_and(|key| !valid_id(key)) && body.len() <= MAX_BODY_BYTES {
                assert!(matches!(&error, ApiError::Validation { field, .. } if field == "Idempotency-Key"));
            }
        }
    }
});
