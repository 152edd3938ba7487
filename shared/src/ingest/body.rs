//! `POST /ingest` bodies: one JSON object is one record; an object whose only field is a
//! `records` list is a batch. Whole-request problems (not JSON, an empty or oversized batch, a bad
//! `Idempotency-Key`) refuse the request; a bad record is rejected alone, with its index.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::Serialize;
use serde_json::value::RawValue;

use super::{
    Identity, MAX_BODY_BYTES, MAX_ID_CHARS, MAX_RECORD_BYTES, MAX_RECORD_DEPTH, MAX_RECORDS, NewRecord, Sequence,
};
use crate::ApiError;

/// A record refused on its own; the others of the request are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub index: usize,
    pub code: &'static str,
    pub message: String,
}

impl Rejection {
    fn new(index: usize, error: &ApiError) -> Self {
        Self { index, code: error.code(), message: error.to_string() }
    }
}

/// The records of a request, ready to store, and those rejected.
#[derive(Debug)]
pub struct Prepared {
    /// (index in the request, record).
    pub records: Vec<(usize, NewRecord)>,
    pub rejected: Vec<Rejection>,
}

/// Parses and checks a body; `request` tells this request's records from another's in the
/// order of records received in the same microsecond.
pub fn prepare(
    body: &[u8],
    idempotency_key: Option<&str>,
    received_at: DateTime<Utc>,
    request: u64,
) -> Result<Prepared, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge { limit_bytes: MAX_BODY_BYTES });
    }
    let idempotency_key = idempotency_key.map(check_idempotency_key).transpose()?;
    let text = std::str::from_utf8(body).map_err(|_| ApiError::validation("body", "the body is not UTF-8 JSON"))?;
    let raw: &RawValue = serde_json::from_str(text)
        .map_err(|e| ApiError::validation("body", format!("the body is not valid JSON: {e}")))?;
    let items = records_of(raw)?;
    let mut prepared = Prepared { records: Vec::with_capacity(items.len()), rejected: Vec::new() };
    for (index, item) in items.into_iter().enumerate() {
        match check_record(item) {
            Ok(client_id) => {
                let identity = Identity::of(client_id.as_deref(), idempotency_key, index);
                let sequence = Sequence::new(received_at, request, index as u16);
                prepared.records.push((index, NewRecord { identity, sequence, data: item.to_owned() }));
            }
            Err(error) => prepared.rejected.push(Rejection::new(index, &error)),
        }
    }
    Ok(prepared)
}

/// The body's records: itself, or its `records` list.
fn records_of(raw: &RawValue) -> Result<Vec<&RawValue>, ApiError> {
    if !raw.get().starts_with('{') {
        return Err(ApiError::validation("body", "the body must be a JSON object (a record, or {\"records\": [...]})"));
    }
    let fields: BTreeMap<String, &RawValue> = serde_json::from_str(raw.get())
        .map_err(|e| ApiError::validation("body", format!("the body is not valid JSON: {e}")))?;
    let batch = match (fields.len(), fields.get("records")) {
        (1, Some(list)) if list.get().starts_with('[') => list,
        _ => return Ok(vec![raw]),
    };
    let items: Vec<&RawValue> = serde_json::from_str(batch.get())
        .map_err(|e| ApiError::validation("records", format!("not a list of records: {e}")))?;
    if items.is_empty() {
        return Err(ApiError::validation("records", "at least one record is required"));
    }
    if items.len() > MAX_RECORDS {
        return Err(ApiError::validation("records", format!("at most {MAX_RECORDS} records per request")));
    }
    Ok(items)
}

#[derive(Deserialize)]
struct RecordId<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
}

/// A record's problems, or its client id.
fn check_record(item: &RawValue) -> Result<Option<String>, ApiError> {
    if !item.get().starts_with('{') {
        return Err(ApiError::validation("records", "a record must be a JSON object"));
    }
    if item.get().len() > MAX_RECORD_BYTES {
        return Err(ApiError::PayloadTooLarge { limit_bytes: MAX_RECORD_BYTES });
    }
    if nesting_depth(item.get()) > MAX_RECORD_DEPTH {
        return Err(ApiError::validation(
            "records",
            format!("a record may nest objects and arrays {MAX_RECORD_DEPTH} deep at most"),
        ));
    }
    let RecordId { id } =
        serde_json::from_str(item.get()).map_err(|e| ApiError::validation("records", e.to_string()))?;
    let Some(id) = id else { return Ok(None) };
    let id: String = serde_json::from_str(id.get()).map_err(|_| ApiError::validation("id", "must be a string"))?;
    if id.is_empty() || id.len() > MAX_ID_CHARS || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::validation("id", format!("must be 1 to {MAX_ID_CHARS} printable ASCII characters")));
    }
    Ok(Some(id))
}

/// The deepest nesting of objects and arrays in JSON already known to be valid. serde_json
/// checks a raw value's syntax without a depth limit, so the limit is counted here.
fn nesting_depth(json: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for byte in json.bytes() {
        match (in_string, escaped, byte) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'{' | b'[') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (false, _, b'}' | b']') => depth -= 1,
            (false, _, _) => {}
        }
    }
    deepest
}

fn check_idempotency_key(key: &str) -> Result<&str, ApiError> {
    let valid = !key.is_empty() && key.len() <= MAX_ID_CHARS && key.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(key)
    } else {
        Err(ApiError::validation("Idempotency-Key", format!("must be 1 to {MAX_ID_CHARS} printable ASCII characters")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    fn prepared(body: &str, key: Option<&str>) -> Result<Prepared, ApiError> {
        prepare(body.as_bytes(), key, now(), 7)
    }

    fn field(error: ApiError) -> String {
        match error {
            ApiError::Validation { field, .. } => field,
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn one_record_or_a_batch() {
        let one = prepared(r#"{"temperature": 21.5}"#, None).unwrap();
        assert_eq!(one.records.len(), 1);
        assert_eq!(one.records[0].1.data.get(), r#"{"temperature": 21.5}"#);
        // An object with other fields beside `records` is one record.
        assert_eq!(prepared(r#"{"records": [{"a": 1}], "b": 2}"#, None).unwrap().records.len(), 1);
        // A `records` field that is not a list is a record's field.
        assert_eq!(prepared(r#"{"records": 3}"#, None).unwrap().records.len(), 1);

        let batch = prepared(r#"{"records": [{"a": 1}, 5, {"id": "r-2", "b": 2}, {"id": 9}, {"id": ""}]}"#, Some("k1"))
            .unwrap();
        let stored: Vec<usize> = batch.records.iter().map(|(i, _)| *i).collect();
        assert_eq!(stored, [0, 2]);
        assert_eq!(batch.records[1].1.identity.id, "r-2");
        assert_eq!(batch.records[0].1.identity, Identity::of(None, Some("k1"), 0));
        assert!(batch.records[0].1.sequence < batch.records[1].1.sequence);
        let rejected: Vec<(usize, &str)> = batch.rejected.iter().map(|r| (r.index, r.code)).collect();
        assert_eq!(rejected, [(1, "VALIDATION_ERROR"), (3, "VALIDATION_ERROR"), (4, "VALIDATION_ERROR")]);
    }

    #[test]
    fn whole_request_refusals() {
        assert_eq!(field(prepared("", None).unwrap_err()), "body");
        assert_eq!(field(prepared("{", None).unwrap_err()), "body");
        assert_eq!(field(prepared("[{}]", None).unwrap_err()), "body");
        assert_eq!(field(prepared(r#"{"records": []}"#, None).unwrap_err()), "records");
        let many = format!(r#"{{"records": [{}]}}"#, vec!["{}"; MAX_RECORDS + 1].join(","));
        assert_eq!(field(prepared(&many, None).unwrap_err()), "records");
        let full = format!(r#"{{"records": [{}]}}"#, vec!["{}"; MAX_RECORDS].join(","));
        assert_eq!(prepared(&full, None).unwrap().records.len(), MAX_RECORDS);
        assert_eq!(field(prepared("{}", Some("")).unwrap_err()), "Idempotency-Key");
        assert_eq!(field(prepared("{}", Some("has space")).unwrap_err()), "Idempotency-Key");
        let huge = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            prepare(&huge, None, now(), 1).unwrap_err(),
            ApiError::PayloadTooLarge { limit_bytes: MAX_BODY_BYTES }
        );
    }

    #[test]
    fn a_record_nested_past_the_limit_is_rejected_alone() {
        let nested = |depth: usize| format!("{{\"a\": {}1{}}}", "[".repeat(depth - 1), "]".repeat(depth - 1));
        // Brackets inside strings, escaped quotes included, are not nesting.
        let decoy = format!(r#"{{"s": "\"{}", "t": [1]}}"#, "[".repeat(100));
        let body =
            format!(r#"{{"records": [{}, {}, {decoy}]}}"#, nested(MAX_RECORD_DEPTH), nested(MAX_RECORD_DEPTH + 1));
        let batch = prepared(&body, None).unwrap();
        let stored: Vec<usize> = batch.records.iter().map(|(i, _)| *i).collect();
        assert_eq!(stored, [0, 2]);
        assert_eq!(batch.rejected.len(), 1);
        assert_eq!((batch.rejected[0].index, batch.rejected[0].code), (1, "VALIDATION_ERROR"));
        assert!(batch.rejected[0].message.contains("32 deep"), "{}", batch.rejected[0].message);
        // Far past it: no stack is spent on depth.
        let abyss = format!("{{\"a\": {}{}}}", "[".repeat(90_000), "]".repeat(90_000));
        assert!(prepared(&abyss, None).unwrap().rejected[0].message.contains("deep"));
    }

    #[test]
    fn an_oversized_record_is_rejected_alone() {
        let big = format!(r#"{{"blob": "{}"}}"#, "x".repeat(MAX_RECORD_BYTES));
        let body = format!(r#"{{"records": [{{"a": 1}}, {big}]}}"#);
        let batch = prepared(&body, None).unwrap();
        assert_eq!(batch.records.len(), 1);
        assert_eq!((batch.rejected[0].index, batch.rejected[0].code), (1, "PAYLOAD_TOO_LARGE"));
    }
}
