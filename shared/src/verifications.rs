//! Verification analytics: every decision about a known key counted per key, outcome and hour;
//! unknown and malformed keys counted per deployment.
//!
//! The deciding process (the authorizer, the local API) counts into a [`Tally`] in memory and
//! never waits for storage: a background task drains it once a minute
//! ([`FLUSH_INTERVAL`]) into a [`VerificationStore`] with atomic additions, so each key costs at
//! most one write per hour bucket per minute per instance, however many requests it made. A
//! failed flush is logged and its counts put back for the next one; the tally is bounded
//! ([`TALLY_CAPACITY`] key-hours), and what does not fit is dropped and logged, never blocking a
//! decision.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::StoreError;
use crate::{ApiError, KeyId, TenantId};

#[cfg(feature = "aws")]
pub mod dynamo;

/// How often a [`Tally`] is written out.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(60);
/// The most key-hours a tally holds between flushes; past it, new counts are dropped (logged).
pub const TALLY_CAPACITY: usize = 10_000;
/// How long counts are kept (their items' `ttl`): the longest range the routes answer for.
pub const RETENTION_DAYS: i64 = 90;
/// How many of a key's latest refusals are kept and shown.
pub const REFUSALS_KEPT: usize = 50;
/// How long a refusal is kept (its item's `ttl`), if 50 later ones have not displaced it.
pub const REFUSAL_RETENTION_DAYS: i64 = 30;

/// What a decision about a known key was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Valid,
    Expired,
    Revoked,
    Disabled,
    IpNotAllowed,
    /// Refused because the key's usage credits are spent (`USAGE_EXCEEDED`).
    UsageExceeded,
    /// Refused by the key's tier limit where Latchkey itself limits (the local API); deployed,
    /// API Gateway's usage plan refuses before the authorizer is called and does not say.
    RateLimited,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Valid,
        Outcome::Expired,
        Outcome::Revoked,
        Outcome::Disabled,
        Outcome::IpNotAllowed,
        Outcome::RateLimited,
        Outcome::UsageExceeded,
    ];

    /// Its name on the wire and in storage.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Valid => "valid",
            Outcome::Expired => "expired",
            Outcome::Revoked => "revoked",
            Outcome::Disabled => "disabled",
            Outcome::IpNotAllowed => "ip_not_allowed",
            Outcome::UsageExceeded => "usage_exceeded",
            Outcome::RateLimited => "rate_limited",
        }
    }

    /// The outcome of refusing a key that exists with `error` (a revoked key is refused as
    /// `INVALID_API_KEY`, which never says so to the caller; the count does, to its tenant).
    pub fn of_refusal(error: &ApiError) -> Option<Outcome> {
        match error {
            ApiError::InvalidApiKey => Some(Outcome::Revoked),
            ApiError::ExpiredApiKey { .. } => Some(Outcome::Expired),
            ApiError::DisabledApiKey => Some(Outcome::Disabled),
            ApiError::IpNotAllowed { .. } => Some(Outcome::IpNotAllowed),
            ApiError::UsageExceeded { .. } => Some(Outcome::UsageExceeded),
            // A tier's limit refuses after the decision, not in it: [`Tally::rate_limited`].
            _ => None,
        }
    }
}

/// Counts by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutcomeCounts {
    pub valid: u64,
    pub expired: u64,
    pub revoked: u64,
    pub disabled: u64,
    pub ip_not_allowed: u64,
    pub usage_exceeded: u64,
    pub rate_limited: u64,
}

impl OutcomeCounts {
    pub fn get(&self, outcome: Outcome) -> u64 {
        match outcome {
            Outcome::Valid => self.valid,
            Outcome::Expired => self.expired,
            Outcome::Revoked => self.revoked,
            Outcome::Disabled => self.disabled,
            Outcome::IpNotAllowed => self.ip_not_allowed,
            Outcome::UsageExceeded => self.usage_exceeded,
            Outcome::RateLimited => self.rate_limited,
        }
    }

    pub fn add(&mut self, outcome: Outcome, n: u64) {
        let count = match outcome {
            Outcome::Valid => &mut self.valid,
            Outcome::Expired => &mut self.expired,
            Outcome::Revoked => &mut self.revoked,
            Outcome::Disabled => &mut self.disabled,
            Outcome::IpNotAllowed => &mut self.ip_not_allowed,
            Outcome::UsageExceeded => &mut self.usage_exceeded,
            Outcome::RateLimited => &mut self.rate_limited,
        };
        *count = count.saturating_add(n);
    }

    pub fn merge(&mut self, other: &OutcomeCounts) {
        for outcome in Outcome::ALL {
            self.add(outcome, other.get(outcome));
        }
    }

    pub fn total(&self) -> u64 {
        Outcome::ALL.iter().map(|o| self.get(*o)).sum()
    }
}

/// Credentials that named no key: counted per deployment, never per tenant (they have none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UnknownCounts {
    /// Well-formed keys of no record.
    pub unknown: u64,
    /// Not a key of the deployment's profile at all.
    pub malformed: u64,
}

/// One refusal of a key that exists, as its tenant sees it: what someone trying a leaked,
/// expired or revoked key looks like. Never the key, a header or a body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Refusal {
    pub at: DateTime<Utc>,
    /// The error code the caller got (`EXPIRED_API_KEY`, `INVALID_API_KEY` for a revoked key, ...).
    pub code: String,
    /// Where it came from (deployed: API Gateway's `sourceIp`; locally the peer), if known.
    pub source_ip: Option<String>,
    pub method: Option<String>,
    /// The path asked for, without its query string.
    pub path: Option<String>,
}

/// The hour a moment falls in.
pub fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    truncated(at, 3_600)
}

/// `at` rounded down to a multiple of `seconds` since the epoch: by whole seconds, so that any
/// time chrono can hold has one (`duration_trunc` counts nanoseconds, which end in 2262: found
/// by schemathesis with `until=2263-01-01T00:00:00Z`).
fn truncated(at: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp().div_euclid(seconds) * seconds, 0)
        .expect("rounding down stays within chrono's range")
}

/// A key's counts for one hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHour {
    pub tenant: TenantId,
    pub key: KeyId,
    pub hour: DateTime<Utc>,
    pub counts: OutcomeCounts,
}

/// What one flush writes: every key-hour counted since the last, and the deployment's unknown
/// and malformed counts per hour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TallyBatch {
    pub keys: Vec<KeyHour>,
    pub unknown: Vec<(DateTime<Utc>, UnknownCounts)>,
    /// Each key's refusals since the last flush, oldest first, at most [`REFUSALS_KEPT`] a key.
    pub refusals: Vec<(TenantId, KeyId, Vec<Refusal>)>,
}

impl TallyBatch {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.unknown.is_empty() && self.refusals.is_empty()
    }
}

#[derive(Default)]
struct TallyState {
    keys: HashMap<(TenantId, KeyId, DateTime<Utc>), OutcomeCounts>,
    unknown: BTreeMap<DateTime<Utc>, UnknownCounts>,
    refusals: HashMap<(TenantId, KeyId), VecDeque<Refusal>>,
    dropped: u64,
}

impl TallyState {
    fn note(&mut self, tenant: TenantId, key: KeyId, refusal: Refusal) {
        let full = self.refusals.len() >= TALLY_CAPACITY;
        let slot = (tenant, key);
        if full && !self.refusals.contains_key(&slot) {
            self.dropped += 1;
            return;
        }
        let kept = self.refusals.entry(slot).or_default();
        if kept.len() == REFUSALS_KEPT {
            kept.pop_front();
        }
        kept.push_back(refusal);
    }
}

/// Counts in memory, drained by the flusher. Counting takes a short lock and never waits for I/O.
#[derive(Default)]
pub struct Tally {
    state: Mutex<TallyState>,
    /// Held by a [`flush`] from its drain to its last write: a flush that finds the tally empty
    /// because another drained it first returns only once that one's counts are written, so a
    /// read made after any flush sees every count made before it (the local API's dashboard
    /// asks for a key's usage and its verifications at once, each route flushing first).
    flushing: tokio::sync::Mutex<()>,
}

impl Tally {
    pub fn new() -> Self {
        Self::default()
    }

    /// One decision about a known key.
    pub fn count(&self, tenant: &TenantId, key: &KeyId, outcome: Outcome, at: DateTime<Utc>) {
        let mut state = self.state.lock().expect("the tally's lock is never held across a panic");
        let slot = (tenant.clone(), key.clone(), hour_of(at));
        let full = state.keys.len() >= TALLY_CAPACITY;
        match state.keys.get_mut(&slot) {
            Some(counts) => counts.add(outcome, 1),
            None if full => state.dropped += 1,
            None => {
                let mut counts = OutcomeCounts::default();
                counts.add(outcome, 1);
                state.keys.insert(slot, counts);
            }
        }
    }

    /// A request counted [`Outcome::Valid`] that the key's tier limit then refused (the local
    /// API, which limits after the decision): counted [`Outcome::RateLimited`] instead. If the
    /// valid count was flushed in between (a minute boundary), it stays, and this adds the
    /// refusal only.
    pub fn rate_limited(&self, tenant: &TenantId, key: &KeyId, at: DateTime<Utc>) {
        let mut state = self.state.lock().expect("the tally's lock is never held across a panic");
        let slot = (tenant.clone(), key.clone(), hour_of(at));
        match state.keys.get_mut(&slot) {
            Some(counts) => {
                counts.valid = counts.valid.saturating_sub(1);
                counts.add(Outcome::RateLimited, 1);
            }
            None => {
                drop(state);
                self.count(tenant, key, Outcome::RateLimited, at);
            }
        }
    }

    /// A refusal of a key that exists, kept with the key's latest [`REFUSALS_KEPT`].
    pub fn note_refusal(&self, tenant: &TenantId, key: &KeyId, refusal: Refusal) {
        let mut state = self.state.lock().expect("the tally's lock is never held across a panic");
        state.note(tenant.clone(), key.clone(), refusal);
    }

    /// A credential that named no key: `malformed` if it was not even a key of the profile.
    pub fn count_unknown(&self, malformed: bool, at: DateTime<Utc>) {
        let mut state = self.state.lock().expect("the tally's lock is never held across a panic");
        let counts = state.unknown.entry(hour_of(at)).or_default();
        if malformed {
            counts.malformed += 1;
        } else {
            counts.unknown += 1;
        }
    }

    /// Takes everything counted so far, leaving the tally empty.
    pub fn drain(&self) -> TallyBatch {
        let mut state = self.state.lock().expect("the tally's lock is never held across a panic");
        if state.dropped > 0 {
            tracing::warn!(
                dropped = state.dropped,
                capacity = TALLY_CAPACITY,
                "verification counts dropped: the tally was full"
            );
            state.dropped = 0;
        }
        let keys =
            state.keys.drain().map(|((tenant, key, hour), counts)| KeyHour { tenant, key, hour, counts }).collect();
        let unknown = std::mem::take(&mut state.unknown).into_iter().collect();
        let refusals = state.refusals.drain().map(|((tenant, key), kept)| (tenant, key, Vec::from(kept))).collect();
        TallyBatch { keys, unknown, refusals }
    }

    /// Puts back a batch that could not be written, for the next flush (within the capacity).
    pub fn restore(&self, batch: TallyBatch) {
        let mut state = self.state.lock().expect("the tally's lock is never held across a panic");
        for hour in batch.keys {
            let full = state.keys.len() >= TALLY_CAPACITY;
            let slot = (hour.tenant, hour.key, hour.hour);
            match state.keys.get_mut(&slot) {
                Some(counts) => counts.merge(&hour.counts),
                None if full => state.dropped += hour.counts.total(),
                None => {
                    state.keys.insert(slot, hour.counts);
                }
            }
        }
        for (hour, counts) in batch.unknown {
            let mine = state.unknown.entry(hour).or_default();
            mine.unknown += counts.unknown;
            mine.malformed += counts.malformed;
        }
        for (tenant, key, refusals) in batch.refusals {
            // Older than what was noted since: each goes in front, newest of them last.
            let slot = (tenant, key);
            let mut kept: VecDeque<Refusal> = refusals.into();
            if let Some(newer) = state.refusals.remove(&slot) {
                kept.extend(newer);
            }
            while kept.len() > REFUSALS_KEPT {
                kept.pop_front();
            }
            state.refusals.insert(slot, kept);
        }
    }
}

/// Where the counts are kept.
pub trait VerificationStore: Send + Sync {
    /// Adds one key-hour's counts to what is stored, for the key and for its tenant's overview,
    /// together (atomic additions: concurrent flushes of several instances add up).
    fn add_key_hour(&self, hour: &KeyHour) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Adds the deployment's unknown and malformed counts of one hour.
    fn add_unknown(
        &self,
        hour: DateTime<Utc>,
        counts: UnknownCounts,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Keeps a key's refusals (oldest first) with those it has, so that its latest
    /// [`REFUSALS_KEPT`] can be read.
    fn add_refusals(
        &self,
        tenant: &TenantId,
        key: &KeyId,
        refusals: &[Refusal],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A key's latest refusals, newest first, at most [`REFUSALS_KEPT`].
    fn refusals(&self, tenant: &TenantId, key: &KeyId)
    -> impl Future<Output = Result<Vec<Refusal>, StoreError>> + Send;

    /// A key's hourly counts with `since <= hour < until`, oldest first; hours without a
    /// decision are absent.
    fn key_hours(
        &self,
        tenant: &TenantId,
        key: &KeyId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<(DateTime<Utc>, OutcomeCounts)>, StoreError>> + Send;

    /// Every key-hour of the tenant with `since <= hour < until`, oldest first.
    fn tenant_hours(
        &self,
        tenant: &TenantId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<KeyHour>, StoreError>> + Send;
}

/// [`flush`] every [`FLUSH_INTERVAL`], forever: the deciding process spawns it beside its work
/// (the authorizer at its cold start, the local API beside its server), off every request's path.
pub async fn flush_periodically<S: VerificationStore>(tally: &Tally, store: &S) {
    let mut ticks = tokio::time::interval(FLUSH_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        flush(tally, store).await;
    }
}

/// One flush: what the tally holds now, each key-hour written with its own addition; what could
/// not be written is put back for the next flush, the rest is not written twice.
pub async fn flush<S: VerificationStore>(tally: &Tally, store: &S) {
    let _one_at_a_time = tally.flushing.lock().await;
    let batch = tally.drain();
    if batch.is_empty() {
        return;
    }
    let mut failed = TallyBatch::default();
    let mut last_error = None;
    for hour in batch.keys {
        if let Err(error) = store.add_key_hour(&hour).await {
            last_error = Some(error);
            failed.keys.push(hour);
        }
    }
    for (hour, counts) in batch.unknown {
        if let Err(error) = store.add_unknown(hour, counts).await {
            last_error = Some(error);
            failed.unknown.push((hour, counts));
        }
    }
    for (tenant, key, refusals) in batch.refusals {
        if let Err(error) = store.add_refusals(&tenant, &key, &refusals).await {
            last_error = Some(error);
            failed.refusals.push((tenant, key, refusals));
        }
    }
    if let Some(error) = last_error {
        tracing::warn!(%error, key_hours = failed.keys.len(), "verification counts not written; kept for the next flush");
        tally.restore(failed);
    }
}

/// Rolls hourly counts up into buckets of `granularity` starting at `since`'s bucket.
pub fn buckets(
    hours: impl IntoIterator<Item = (DateTime<Utc>, OutcomeCounts)>,
    granularity: Granularity,
) -> Vec<Bucket> {
    let mut by_start: BTreeMap<DateTime<Utc>, OutcomeCounts> = BTreeMap::new();
    for (hour, counts) in hours {
        by_start.entry(granularity.bucket_of(hour)).or_default().merge(&counts);
    }
    by_start.into_iter().map(|(start, counts)| Bucket { start, counts }).collect()
}

/// The width of a bucket of the routes' answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        match text {
            "hour" => Ok(Granularity::Hour),
            "day" => Ok(Granularity::Day),
            _ => Err(ApiError::validation("granularity", "granularity is `hour` or `day`")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }

    pub fn bucket_of(self, at: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Granularity::Hour => truncated(at, 3_600),
            Granularity::Day => truncated(at, 86_400),
        }
    }
}

/// Counts of one bucket, for the routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub counts: OutcomeCounts,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn counts_add_up_per_key_outcome_and_hour() {
        let tally = Tally::new();
        let (tenant, key): (TenantId, KeyId) = ("acme".parse().unwrap(), KeyId::generate());
        tally.count(&tenant, &key, Outcome::Valid, at("2026-12-05T10:00:00Z"));
        tally.count(&tenant, &key, Outcome::Valid, at("2026-12-05T10:59:59Z"));
        tally.count(&tenant, &key, Outcome::Expired, at("2026-12-05T10:30:00Z"));
        tally.count(&tenant, &key, Outcome::Valid, at("2026-12-05T11:00:00Z"));
        tally.count_unknown(true, at("2026-12-05T10:01:00Z"));
        tally.count_unknown(false, at("2026-12-05T10:02:00Z"));
        let mut batch = tally.drain();
        batch.keys.sort_by_key(|h| h.hour);
        assert_eq!(batch.keys.len(), 2);
        assert_eq!(
            (batch.keys[0].hour, batch.keys[0].counts.valid, batch.keys[0].counts.expired),
            (at("2026-12-05T10:00:00Z"), 2, 1)
        );
        assert_eq!((batch.keys[1].counts.valid, batch.keys[1].counts.total()), (1, 1));
        assert_eq!(batch.unknown, vec![(at("2026-12-05T10:00:00Z"), UnknownCounts { unknown: 1, malformed: 1 })]);
        assert!(tally.drain().is_empty(), "drained");
    }

    #[test]
    fn a_batch_put_back_is_added_to_what_was_counted_since() {
        let tally = Tally::new();
        let (tenant, key): (TenantId, KeyId) = ("acme".parse().unwrap(), KeyId::generate());
        let hour = at("2026-12-05T10:00:00Z");
        tally.count(&tenant, &key, Outcome::Valid, hour);
        let failed = tally.drain();
        tally.count(&tenant, &key, Outcome::Valid, hour);
        tally.restore(failed);
        assert_eq!(tally.drain().keys[0].counts.valid, 2);
    }

    #[test]
    fn a_key_keeps_its_latest_refusals_also_across_a_failed_flush() {
        let tally = Tally::new();
        let (tenant, key): (TenantId, KeyId) = ("acme".parse().unwrap(), KeyId::generate());
        let refusal = |n: i64| Refusal {
            at: at("2026-12-05T10:00:00Z") + chrono::TimeDelta::seconds(n),
            code: "EXPIRED_API_KEY".into(),
            source_ip: Some("192.0.2.1".into()),
            method: Some("GET".into()),
            path: Some(format!("/v1/{n}")),
        };
        for n in 0..40 {
            tally.note_refusal(&tenant, &key, refusal(n));
        }
        let failed = tally.drain();
        for n in 40..60 {
            tally.note_refusal(&tenant, &key, refusal(n));
        }
        tally.restore(failed);
        let kept = &tally.drain().refusals[0].2;
        assert_eq!(kept.len(), REFUSALS_KEPT);
        assert_eq!(
            (kept[0].path.as_deref(), kept[49].path.as_deref()),
            (Some("/v1/10"), Some("/v1/59")),
            "the latest, oldest first"
        );
    }

    /// Counts the writes a flush makes: the cost of the analytics, whatever the store. With
    /// `hold`, each key-hour write waits to be `released` (having told `entered`).
    #[derive(Default)]
    struct CountingWrites {
        key_hours: std::sync::atomic::AtomicU64,
        unknown: std::sync::atomic::AtomicU64,
        hold: bool,
        entered: tokio::sync::Notify,
        released: tokio::sync::Notify,
    }

    impl VerificationStore for CountingWrites {
        async fn add_key_hour(&self, _: &KeyHour) -> Result<(), StoreError> {
            if self.hold {
                self.entered.notify_one();
                self.released.notified().await;
            }
            self.key_hours.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
        async fn add_unknown(&self, _: DateTime<Utc>, _: UnknownCounts) -> Result<(), StoreError> {
            self.unknown.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
        async fn add_refusals(&self, _: &TenantId, _: &KeyId, _: &[Refusal]) -> Result<(), StoreError> {
            Ok(())
        }
        async fn refusals(&self, _: &TenantId, _: &KeyId) -> Result<Vec<Refusal>, StoreError> {
            Ok(Vec::new())
        }
        async fn key_hours(
            &self,
            _: &TenantId,
            _: &KeyId,
            _: DateTime<Utc>,
            _: DateTime<Utc>,
        ) -> Result<Vec<(DateTime<Utc>, OutcomeCounts)>, StoreError> {
            Ok(Vec::new())
        }
        async fn tenant_hours(
            &self,
            _: &TenantId,
            _: DateTime<Utc>,
            _: DateTime<Utc>,
        ) -> Result<Vec<KeyHour>, StoreError> {
            Ok(Vec::new())
        }
    }

    /// Two flushes at once (the periodic one and a route's, or two routes'): the second finds the
    /// tally drained by the first, and still returns only once the first one's counts are written.
    #[tokio::test]
    async fn a_flush_returns_only_once_the_counts_drained_before_it_are_written() {
        let (tally, store) = (Tally::new(), CountingWrites { hold: true, ..CountingWrites::default() });
        tally.count(&"acme".parse().unwrap(), &KeyId::generate(), Outcome::Valid, at("2026-12-06T10:00:00Z"));
        let first = flush(&tally, &store);
        let second = async {
            store.entered.notified().await;
            let mut second = std::pin::pin!(flush(&tally, &store));
            // The first flush's write is held: the second waits for it, whatever the tally holds.
            let pending =
                std::future::poll_fn(|cx| std::task::Poll::Ready(second.as_mut().poll(cx).is_pending())).await;
            assert!(pending, "returned before the first's write");
            store.released.notify_one();
            second.await;
            store.key_hours.load(std::sync::atomic::Ordering::SeqCst)
        };
        let ((), written) = tokio::join!(first, second);
        assert_eq!(written, 1, "a read after the second flush sees the first's count");
    }

    /// The cost model's figure (BENCHMARKS.md): 1,000,000 verifications by 100 keys over 10
    /// minutes of one instance (about 17 requests a second a key), flushed each minute, cost
    /// one key-hour write per key per minute, 1,000 in all, whatever the request count; plus one
    /// write per minute for the unknown keys among them.
    #[tokio::test]
    async fn a_million_verifications_cost_one_write_per_key_per_minute() {
        let (tally, store) = (Tally::new(), CountingWrites::default());
        let tenant: TenantId = "acme".parse().unwrap();
        let keys: Vec<KeyId> = (0..100).map(|_| KeyId::generate()).collect();
        let start = at("2026-12-05T10:00:00Z");
        for minute in 0..10 {
            for n in 0..100_000u32 {
                let when = start + chrono::TimeDelta::minutes(minute);
                if n % 1_000 == 0 {
                    tally.count_unknown(false, when);
                } else {
                    tally.count(&tenant, &keys[(n % 100) as usize], Outcome::Valid, when);
                }
            }
            flush(&tally, &store).await;
        }
        let ordering = std::sync::atomic::Ordering::Relaxed;
        assert_eq!((store.key_hours.load(ordering), store.unknown.load(ordering)), (1_000, 10));
    }

    #[test]
    fn a_full_tally_drops_new_key_hours_but_keeps_counting_the_ones_it_has() {
        let tally = Tally::new();
        let tenant: TenantId = "acme".parse().unwrap();
        let hour = at("2026-12-05T10:00:00Z");
        let first = KeyId::generate();
        tally.count(&tenant, &first, Outcome::Valid, hour);
        for _ in 1..TALLY_CAPACITY {
            tally.count(&tenant, &KeyId::generate(), Outcome::Valid, hour);
        }
        tally.count(&tenant, &KeyId::generate(), Outcome::Valid, hour);
        tally.count(&tenant, &first, Outcome::Valid, hour);
        let batch = tally.drain();
        assert_eq!(batch.keys.len(), TALLY_CAPACITY);
        assert_eq!(batch.keys.iter().find(|h| h.key == first).unwrap().counts.valid, 2);
    }
}
