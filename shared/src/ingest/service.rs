//! `POST /ingest`: a request's records checked, stored, and answered for one by one.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};

use serde::Serialize;
use serde_json::json;

use super::body::{Rejection, prepare};
use super::{NewRecord, PutOutcome, RecordStore};
use crate::datasource::DatasourceStore;
use crate::manage::{Caller, Reply};
use crate::{ApiError, Clock, Permission};

/// A random prefix for this process's requests, then a counter: the request part of a
/// [`super::Sequence`]. Requests of one instance received in the same microsecond keep their
/// order; those of different instances never interleave their records.
fn next_request() -> u64 {
    static PROCESS: LazyLock<u32> = LazyLock::new(|| uuid::Uuid::now_v7().as_u64_pair().1 as u32);
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    (u64::from(*PROCESS) << 32) | u64::from(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The ingest function's dependencies.
pub struct IngestService<R, D> {
    pub records: Arc<R>,
    /// Where datasources are kept: a key whose datasource is gone ingests nothing.
    pub datasources: Arc<D>,
    pub clock: Arc<dyn Clock>,
    /// Records one datasource may send per UTC day ([`super::DEFAULT_DAILY_CAP`]).
    pub daily_cap: u64,
}

/// `202`: what became of each record.
#[derive(Debug, Serialize)]
pub struct IngestAnswer {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: Vec<Rejection>,
}

impl<R: RecordStore, D: DatasourceStore> IngestService<R, D> {
    /// A request to `/ingest` (a trailing slash tolerated) with any method: `405` for another
    /// method than `POST`, `404` for another path. Both the function and the local API route
    /// through here.
    pub async fn handle(
        &self,
        method: &str,
        path: &str,
        caller: Result<Caller, ApiError>,
        idempotency_key: Option<&str>,
        body: &[u8],
    ) -> Reply {
        match (method, path.strip_suffix('/').unwrap_or(path)) {
            ("POST", "/ingest") => self.ingest(caller, idempotency_key, body).await,
            (_, "/ingest") => Reply::error(&ApiError::MethodNotAllowed { allowed: &["POST"] }),
            _ => Reply::error(&ApiError::NotFound),
        }
    }

    /// `202 {accepted, duplicates, rejected}`; `503` naming every record not stored when the
    /// store failed some (those reported accepted are durable; the client sends the rest again
    /// with the same identities).
    pub async fn ingest(&self, caller: Result<Caller, ApiError>, idempotency_key: Option<&str>, body: &[u8]) -> Reply {
        // On the heap, as `Management::handle` does: a large future in a debug build.
        match Box::pin(self.try_ingest(caller, idempotency_key, body)).await {
            Ok(reply) => reply,
            Err(error) => Reply::error(&error),
        }
    }

    async fn try_ingest(
        &self,
        caller: Result<Caller, ApiError>,
        idempotency_key: Option<&str>,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        let caller = caller?;
        caller.require(Permission::Ingest)?;
        let Some(datasource) = &caller.datasource else {
            tracing::error!("an ingest key without a datasource in the authorizer context");
            return Err(ApiError::Internal);
        };
        // Deleting a datasource revokes its keys; should one have been missed, its key still
        // saves nothing (one read, answered like a revoked key).
        if self.datasources.get_datasource(&caller.tenant, datasource).await?.is_none() {
            tracing::warn!(%datasource, "an ingest key of a datasource that is gone");
            return Err(ApiError::InvalidApiKey);
        }
        let request = next_request();
        let prepared = prepare(body, idempotency_key, self.clock.now(), request)?;
        let (indices, records): (Vec<usize>, Vec<NewRecord>) = prepared.records.into_iter().unzip();
        // Counted as received, duplicates included, before anything is written: a request that
        // would pass the day's cap stores nothing.
        // A count that cannot be made stores nothing, answered like any store fault (the client
        // sends them again).
        let now = self.clock.now();
        let counted = match records.is_empty() {
            true => Ok(true),
            false => {
                self.records.count_received(datasource, now.date_naive(), records.len() as u64, self.daily_cap).await
            }
        };
        let outcomes = match counted {
            Ok(true) => self.records.put(datasource, &records).await,
            Ok(false) => {
                let midnight = (now.date_naive() + chrono::TimeDelta::days(1)).and_hms_opt(0, 0, 0).expect("midnight");
                let seconds = (midnight.and_utc() - now).num_seconds().max(1) as u64;
                tracing::warn!(%datasource, cap = self.daily_cap, "ingest cap reached");
                return Err(ApiError::QuotaExceeded { retry_after_seconds: seconds });
            }
            Err(cause) => vec![PutOutcome::Failed(cause.to_string()); records.len()],
        };
        let mut answer = IngestAnswer { accepted: 0, duplicates: 0, rejected: prepared.rejected };
        let mut not_stored = Vec::new();
        for (index, outcome) in indices.into_iter().zip(outcomes) {
            match outcome {
                PutOutcome::Stored => answer.accepted += 1,
                PutOutcome::Duplicate => answer.duplicates += 1,
                PutOutcome::Failed(cause) => {
                    tracing::warn!(%datasource, index, %cause, "record not stored");
                    not_stored.push(index);
                }
            }
        }
        tracing::info!(%datasource, accepted = answer.accepted, duplicates = answer.duplicates,
            rejected = answer.rejected.len(), not_stored = not_stored.len(), "ingest");
        if not_stored.is_empty() {
            return Ok(Reply::json(202, &answer));
        }
        let error = ApiError::ServiceUnavailable;
        let body = json!({
            "success": false,
            "error": {"code": error.code(), "message": "Some records could not be stored; send them again",
                      "details": {"not_stored": not_stored}},
            "accepted": answer.accepted,
            "duplicates": answer.duplicates,
            "rejected": answer.rejected,
        });
        Ok(Reply {
            status: error.status(),
            headers: vec![("retry-after", "1".to_owned())],
            body: Some(body.to_string()),
        })
    }
}
