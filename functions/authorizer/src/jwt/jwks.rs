//! The identity provider's JWKS: fetched at start, again every refresh interval (so a withdrawn
//! key stops verifying within it), and for a key id it does not hold at most once a minute.
//!
//! The IdP is a dependency that can be slow or down, and a token's `kid` is chosen by whoever
//! sends it, so fetching is guarded: one fetch at a time (others wait for its answer, or keep
//! using the set they have); unknown key ids remembered for an interval; failures back off
//! (5 s, doubling, at most 5 min), and meanwhile the last good set keeps verifying the keys it
//! holds while a key id it does not hold is `SERVICE_UNAVAILABLE` (it cannot be decided). The
//! body is bounded: the IdP's answer is read into memory.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use latchkey::Clock;
use quick_cache::sync::Cache;

/// The most a JWKS may weigh. Real ones are a few KiB.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// A key id not in a fresh set triggers a fetch at most this often.
const UNKNOWN_KID_REFETCH: TimeDelta = TimeDelta::seconds(60);
const FIRST_BACKOFF: TimeDelta = TimeDelta::seconds(5);
const MAX_BACKOFF: TimeDelta = TimeDelta::seconds(300);
/// Unknown key ids remembered (bounded: they are the caller's choice).
const UNKNOWN_KIDS: usize = 1_024;

#[derive(Debug, Clone, thiserror::Error)]
#[error("the JWKS at {url} could not be fetched: {cause}")]
pub struct JwksError {
    pub url: String,
    pub cause: String,
}

pub struct Jwks {
    url: String,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    refresh: TimeDelta,
    state: RwLock<Arc<State>>,
    /// Held while fetching: one fetch at a time.
    fetching: tokio::sync::Mutex<()>,
    /// Key id → when a fetched set was found not to hold it.
    unknown: Cache<String, DateTime<Utc>>,
}

struct State {
    set: JwkSet,
    /// The last successful fetch.
    fetched_at: DateTime<Utc>,
    /// No fetch starts before this (the unknown-kid limit, or the backoff).
    next_fetch: DateTime<Utc>,
    /// Consecutive failed fetches, and the last one's error.
    failures: u32,
    error: Option<JwksError>,
    /// Bumped by every fetch, so a waiter can tell one finished while it waited.
    generation: u64,
}

// Lives for one call on the stack: boxing the answer would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Decision {
    Answer(Result<Option<Jwk>, JwksError>),
    Fetch,
}

impl Jwks {
    /// Fetches the set now: an IdP that cannot be reached refuses to start.
    pub async fn load(
        url: &str,
        timeout: Duration,
        refresh: Duration,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, JwksError> {
        let error = |cause: String| JwksError { url: url.to_owned(), cause };
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // An https JWKS must not be redirected to plain http (setup allows http only on
            // loopback, for tests).
            .https_only(url.starts_with("https://"))
            .build()
            .map_err(|e| error(e.to_string()))?;
        let set = fetch(&client, url).await?;
        let now = clock.now();
        let refresh = TimeDelta::from_std(refresh).map_err(|e| error(e.to_string()))?;
        let state = State {
            set,
            fetched_at: now,
            next_fetch: now + UNKNOWN_KID_REFETCH.min(refresh),
            failures: 0,
            error: None,
            generation: 0,
        };
        Ok(Self {
            url: url.to_owned(),
            client,
            clock,
            refresh,
            state: RwLock::new(Arc::new(state)),
            fetching: tokio::sync::Mutex::new(()),
            unknown: Cache::new(UNKNOWN_KIDS),
        })
    }

    /// The key with this id: `Ok(None)` when the IdP does not publish it, `Err` when that
    /// cannot be known (the IdP is failing and the last good set lacks it).
    pub async fn key(&self, kid: &str) -> Result<Option<Jwk>, JwksError> {
        loop {
            let state = self.snapshot();
            match self.decide(&state, kid) {
                Decision::Answer(answer) => return answer,
                Decision::Fetch => {}
            }
            let fetching = match self.fetching.try_lock() {
                Ok(guard) => guard,
                Err(_) => {
                    // Someone is fetching. A key the cached set holds verifies meanwhile (it
                    // is at most one fetch past the interval); anything else waits for it.
                    if let Some(jwk) = state.set.find(kid) {
                        return Ok(Some(jwk.clone()));
                    }
                    self.fetching.lock().await
                }
            };
            if self.snapshot().generation == state.generation {
                self.refetch(&state).await;
            }
            drop(fetching);
            // Decide again on what the fetch (ours or the one waited for) left.
        }
    }

    fn snapshot(&self) -> Arc<State> {
        Arc::clone(&self.state.read().expect("jwks lock"))
    }

    fn decide(&self, state: &State, kid: &str) -> Decision {
        let now = self.clock.now();
        let fresh = now < state.fetched_at + self.refresh;
        let held = state.set.find(kid);
        if let (true, Some(jwk)) = (fresh, held) {
            return Decision::Answer(Ok(Some(jwk.clone())));
        }
        let known_unknown = self.unknown.get(kid).is_some_and(|seen| now < seen + self.refresh);
        if now >= state.next_fetch && !(fresh && known_unknown) {
            return Decision::Fetch;
        }
        match &state.error {
            // A fresh set without this key id: remembered, so asking again costs no fetch.
            None if held.is_none() => {
                self.unknown.insert(kid.to_owned(), now);
                Decision::Answer(Ok(None))
            }
            None => Decision::Answer(Ok(held.cloned())),
            // The IdP is failing: the last good set still verifies what it holds.
            Some(error) => Decision::Answer(held.cloned().map(Some).ok_or_else(|| error.clone())),
        }
    }

    async fn refetch(&self, seen: &State) {
        let result = fetch(&self.client, &self.url).await;
        let now = self.clock.now();
        let next = match result {
            Ok(set) => State {
                set,
                fetched_at: now,
                next_fetch: now + UNKNOWN_KID_REFETCH.min(self.refresh),
                failures: 0,
                error: None,
                generation: seen.generation + 1,
            },
            Err(error) => {
                let failures = seen.failures + 1;
                let backoff = (FIRST_BACKOFF * 2i32.saturating_pow(failures.min(16) - 1)).min(MAX_BACKOFF);
                tracing::warn!(%error, failures, backoff_seconds = backoff.num_seconds(), "JWKS fetch failed");
                State {
                    set: seen.set.clone(),
                    fetched_at: seen.fetched_at,
                    next_fetch: now + backoff,
                    failures,
                    error: Some(error),
                    generation: seen.generation + 1,
                }
            }
        };
        *self.state.write().expect("jwks lock") = Arc::new(next);
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<JwkSet, JwksError> {
    let error = |cause: String| JwksError { url: url.to_owned(), cause };
    let response = client.get(url).send().await.map_err(|e| error(e.to_string()))?;
    let mut response = response.error_for_status().map_err(|e| error(e.to_string()))?;
    let too_big = || error(format!("the body is larger than {MAX_JWKS_BYTES} bytes"));
    if response.content_length().is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error(e.to_string()))? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| error(format!("not a JWKS: {e}")))
}
