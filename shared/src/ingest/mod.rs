//! Ingest: records that devices and backends push with their datasource's ingest key.
//!
//! A request carries one JSON object, or `{"records": [...]}`. Each record is checked on its own:
//! the bad ones are rejected with their index, the rest stored. Every stored record gets its
//! datasource, a receive time and a [`Sequence`] that orders it after everything received before
//! it and after the records before it in the same request.
//!
//! Retries store nothing twice: a record's identity is its `id` when the client gives one, else
//! the request's `Idempotency-Key` and the record's index in it. The store writes each record
//! conditionally on its identity, so a retry finds the first write and reports a duplicate.

pub mod body;
#[cfg(feature = "aws")]
pub mod dynamo;
pub(crate) mod page;
pub mod service;

use std::fmt;
use std::future::Future;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::DatasourceId;
use crate::store::{Cursor, Page, StoreError};

/// A request body's size limit: under Lambda's 6 MB limit for a synchronous payload.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;
/// Records one datasource may send per UTC day, by default (`LATCHKEY_INGEST_MAX_RECORDS_PER_DAY`).
pub const DEFAULT_DAILY_CAP: u64 = 1_000_000;
/// Records per request.
pub const MAX_RECORDS: usize = 500;
/// One record's size as sent (its JSON). DynamoDB's item limit is 400 KB, but a table with a
/// local secondary index counts an item and its index entry together against it, and the
/// records' `by_sequence` index projects every attribute: the record is stored twice. Half the
/// limit, less room for the keys and attributes beside it (DynamoDB Local stores 200,000 B and
/// refuses 210,000 B); past it a record would be refused by DynamoDB on every retry.
pub const MAX_RECORD_BYTES: usize = 190_000;
/// How deep a record's objects and arrays may nest (the record itself is level 1): DynamoDB's
/// own limit for a document, so a record stays storable as a document, and readable by
/// recursive parsers that stop at a depth (serde_json stops at 128).
pub const MAX_RECORD_DEPTH: usize = 32;
/// A client's record `id` and an `Idempotency-Key`: printable ASCII, this long at most.
pub const MAX_ID_CHARS: usize = 128;
/// How long a record is kept (`LATCHKEY_RECORD_TTL_DAYS`) before DynamoDB's TTL may delete it.
/// It bounds every record's life, including those a warm authorizer let in during its cache TTL
/// after their datasource's delete had already removed the others: nothing can list those, and
/// they expire with the rest.
pub const DEFAULT_RECORD_TTL_DAYS: u64 = 90;
/// Most bytes of records one page of `GET /datasources/{id}/records` carries (their JSON as the
/// page shows them), besides at most `limit` of them: a page of 100 records of up to
/// [`MAX_RECORD_BYTES`] would pass Lambda's 6 MB response limit. The proxy response carries the
/// body as a JSON string, where every `"` and `\` doubles: 2.5 MB of records stay under 6 MB
/// whatever they hold. A page always holds its first record (one is at most 350,000 bytes).
pub const MAX_PAGE_BYTES: usize = 2_500_000;
/// How many partitions a datasource's records are spread over, by identity: one DynamoDB
/// partition takes about 1,000 writes a second, and a datasource can be hotter than that.
/// Changing it needs a migration (the records already written stay where they are).
pub const SHARDS: u8 = 8;

/// Where a record sits in its datasource's order: receive time (microseconds), then the request
/// (random, so concurrent requests never interleave their records), then the record's index in
/// it. Fixed-width hex, so the text sorts like the order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sequence(String);

impl Sequence {
    pub fn new(received_at: DateTime<Utc>, request: u64, index: u16) -> Self {
        let micros = received_at.timestamp_micros().max(0) as u64;
        Self(format!("{micros:016x}{request:016x}{index:04x}"))
    }

    /// Sorts before every record received at or after `since`.
    pub fn floor(since: DateTime<Utc>) -> Self {
        Self::new(since, 0, 0)
    }

    pub fn received_at(&self) -> DateTime<Utc> {
        let micros = u64::from_str_radix(&self.0[..16], 16).expect("validated");
        Utc.timestamp_micros(micros as i64).single().expect("in range")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Sequence {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self, StoreError> {
        let valid = text.len() == 36 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if valid { Ok(Self(text.to_owned())) } else { Err(StoreError::InvalidCursor) }
    }
}

impl TryFrom<String> for Sequence {
    type Error = StoreError;

    fn try_from(text: String) -> Result<Self, StoreError> {
        text.parse()
    }
}

impl From<Sequence> for String {
    fn from(sequence: Sequence) -> String {
        sequence.0
    }
}

impl fmt::Display for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What makes a record the same record when a client sends it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// SHA-256 of the identity's text, hex: the record's key in the store.
    pub digest: String,
    /// The record's public id: the client's, or derived from the identity (so a retry sees the
    /// same id), or new.
    pub id: String,
}

impl Identity {
    /// `client_id` if given, else the request's idempotency key and the record's index, else a
    /// fresh random identity (such a record cannot be deduplicated).
    pub fn of(client_id: Option<&str>, idempotency_key: Option<&str>, index: usize) -> Self {
        let text = match (client_id, idempotency_key) {
            (Some(id), _) => format!("id:{id}"),
            (None, Some(key)) => format!("key:{key}#{index}"),
            (None, None) => format!("new:{}", uuid::Uuid::now_v7().simple()),
        };
        let digest = hex::encode(Sha256::digest(text.as_bytes()));
        let id = match client_id {
            Some(id) => id.to_owned(),
            None => format!("rec_{}", &digest[..32]),
        };
        Self { digest, id }
    }

    /// The shard of the datasource's records this one is written to.
    pub fn shard(&self) -> u8 {
        u8::from_str_radix(&self.digest[..2], 16).expect("hex") % SHARDS
    }
}

/// A record ready to store.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub identity: Identity,
    pub sequence: Sequence,
    /// The record as the client sent it.
    pub data: Box<RawValue>,
}

/// A record as stored, and as `GET /datasources/{id}/records` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredRecord {
    pub id: String,
    pub sequence: Sequence,
    pub received_at: DateTime<Utc>,
    pub data: Box<RawValue>,
}

impl PartialEq for StoredRecord {
    fn eq(&self, other: &Self) -> bool {
        (&self.id, &self.sequence, self.received_at, self.data.get())
            == (&other.id, &other.sequence, other.received_at, other.data.get())
    }
}

/// What became of one record of a [`RecordStore::put`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Written now, durably.
    Stored,
    /// The same identity was stored before (a retry): nothing written.
    Duplicate,
    /// Not stored (the store refused or could not be reached after its retries): the client
    /// may send it again, with the same identity.
    Failed(String),
}

/// Where a datasource's records are kept.
pub trait RecordStore: Send + Sync {
    /// Stores each record unless its identity is stored already; one outcome per record, in
    /// order. Never fails as a whole: a dependency fault is a `Failed` outcome per record.
    fn put(&self, datasource: &DatasourceId, records: &[NewRecord]) -> impl Future<Output = Vec<PutOutcome>> + Send;

    /// Records in sequence order, from `since` (receive time) and after the cursor, at most
    /// `limit` (1 to [`crate::store::MAX_PAGE_SIZE`]) and at most [`MAX_PAGE_BYTES`] of them.
    /// Every record is on exactly one page of a listing.
    fn list(
        &self,
        datasource: &DatasourceId,
        since: Option<DateTime<Utc>>,
        limit: u32,
        after: Option<&Cursor<Sequence>>,
    ) -> impl Future<Output = Result<Page<StoredRecord>, StoreError>> + Send;

    /// Counts `records` more received on `day` (UTC) for the datasource unless that would take
    /// the day's count past `cap`: `Ok(true)` counted, `Ok(false)` refused and nothing counted.
    /// Atomic across instances (the per-datasource ingest cap).
    fn count_received(
        &self,
        datasource: &DatasourceId,
        day: NaiveDate,
        records: u64,
        cap: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes up to `budget` of the datasource's records (a datasource's delete; called again
    /// until none remain).
    fn delete_records(
        &self,
        datasource: &DatasourceId,
        budget: u32,
    ) -> impl Future<Output = Result<RecordsDeleted, StoreError>> + Send;
}

/// What one [`RecordStore::delete_records`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecordsDeleted {
    pub deleted: u64,
    /// Records are left (the budget ran out): delete again.
    pub remaining: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_sort_by_time_then_request_then_index() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let early = Sequence::new(at("2030-01-01T00:00:00.000001Z"), u64::MAX, 9);
        let later = Sequence::new(at("2030-01-01T00:00:00.000002Z"), 0, 0);
        assert!(early < later);
        assert!(Sequence::new(at("2030-01-01T00:00:00Z"), 5, 2) < Sequence::new(at("2030-01-01T00:00:00Z"), 5, 10));
        assert!(Sequence::floor(at("2030-01-01T00:00:00.000002Z")) <= later);
        assert_eq!(later.received_at(), at("2030-01-01T00:00:00.000002Z"));
        assert_eq!(later.to_string().parse::<Sequence>().unwrap(), later);
        assert!("zz".parse::<Sequence>().is_err());
    }

    #[test]
    fn identities_repeat_exactly_when_the_client_repeats() {
        assert_eq!(Identity::of(Some("r-1"), Some("k"), 3), Identity::of(Some("r-1"), None, 0));
        assert_eq!(Identity::of(Some("r-1"), None, 0).id, "r-1");
        assert_eq!(Identity::of(None, Some("k"), 3), Identity::of(None, Some("k"), 3));
        assert_ne!(Identity::of(None, Some("k"), 3), Identity::of(None, Some("k"), 4));
        assert!(Identity::of(None, Some("k"), 3).id.starts_with("rec_"));
        assert_ne!(Identity::of(None, None, 0), Identity::of(None, None, 0));
        // A client id cannot collide with an idempotency-key identity.
        assert_ne!(Identity::of(Some("key:k#3"), None, 0).digest, Identity::of(None, Some("k"), 3).digest);
    }
}
