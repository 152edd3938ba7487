//! The API Gateway REQUEST authorizer: who is calling, decided per request.
//!
//! [`Authorizer::authenticate`] is the decision over its dependencies (store, pepper, clock,
//! configuration); the local API calls it directly. [`Authorizer::handle_event`] wraps it for
//! Lambda: raw event bytes in, policy bytes out. `main.rs` only wires the runtime.
//!
//! The authorizer *authenticates*: every failure is a Deny carrying an error code (the 401
//! family), rendered by the gateway's `ACCESS_DENIED` response. Handlers *authorize* (403). A
//! dependency that is down or slow is an error, so API Gateway answers 5xx: never an Allow.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey::credits::{CreditStore, CreditsNotice, Spend};
use latchkey::events::{KeyEvent, KeyEventType, KeyEvents, NoEvents};
use latchkey::gateway::pool::GatewaySlots;
use latchkey::lookup::find_key;
use latchkey::manage::spends_credits;
use latchkey::manage::view::KeyView;
use latchkey::pepper::{CachedPepper, PepperProvider, PepperSet};
use latchkey::store::KeyStore;
use latchkey::verifications::{Outcome, Refusal, Tally};
use latchkey::{ApiError, ApiKey, Clock, Credential, KeyId, KeyProfile, KeyRecord, extract_credential};

pub mod cache;
pub mod event;
pub mod jwt;
pub mod last_used;
pub mod leases;
pub mod policy;
pub mod sessions;
pub mod setup;
pub mod verified;

use cache::KeyCache;
use event::AuthorizerEvent;
use jwt::{JwtVerifier, Session};
use last_used::LastUsed;
use leases::Leases;
use sessions::SessionUsageKeys;
use verified::VerifiedKey;

/// Who is calling, once authenticated.
#[derive(Debug, Clone)]
pub enum Principal {
    /// An API key, with its record as stored (and cached).
    Key(Arc<VerifiedKey>),
    /// A dashboard session (JWT): its tenant's, with the permissions its claim names.
    Session(Session),
}

/// Everything the decision depends on.
pub struct Dependencies<S, P> {
    pub store: Arc<S>,
    pub peppers: CachedPepper<P>,
    pub clock: Arc<dyn Clock>,
    pub profile: KeyProfile,
    pub cache_ttl: Duration,
    pub cache_capacity: usize,
    /// The identity provider's sessions (`LATCHKEY_JWT_*`).
    pub jwt: Option<JwtVerifier>,
    /// Latchkey's own sessions (`POST /sessions`; [`latchkey::session`]).
    pub sessions: Option<JwtVerifier>,
    /// The API Gateway keys given to sessions, which have no gateway key of their own.
    pub session_usage_keys: Option<SessionUsageKeys>,
    /// Whether keys lease pooled API Gateway keys ([`leases`]): the deployed stack's, where API
    /// Gateway throttles by the key the authorizer names. The local API throttles by key id.
    pub gateway_pool: bool,
}

pub struct Authorizer<S, P> {
    store: Arc<S>,
    peppers: CachedPepper<P>,
    clock: Arc<dyn Clock>,
    profile: KeyProfile,
    cache: KeyCache,
    jwt: Option<JwtVerifier>,
    sessions: Option<JwtVerifier>,
    session_usage_keys: Option<SessionUsageKeys>,
    leases: Option<Leases>,
    last_used: LastUsed,
    /// Every decision about a key, counted for its tenant's analytics; written by whoever runs
    /// this authorizer ([`latchkey::verifications::flush_periodically`], spawned by
    /// [`crate::setup::from_env`] and by the local API).
    verifications: Arc<Tally>,
    /// Where `key.credits_low` and `key.credits_exhausted` go ([`Self::with_events`]).
    events: Arc<dyn KeyEvents>,
    /// Whether a decision queued an event since the last flush: most never do, and then
    /// [`Self::flush_events`] costs nothing.
    queued: std::sync::atomic::AtomicBool,
}

/// Whether `record`'s key may be used `now` from `source`: its refusal (revoked, expired,
/// disabled), then its IP allowlist. Decided per request, like expiry: a cached record carries
/// the list, not the answer.
fn admits(record: &KeyRecord, now: chrono::DateTime<chrono::Utc>, source: Option<IpAddr>) -> Result<(), ApiError> {
    if let Some(refused) = record.refusal(now) {
        return Err(refused);
    }
    if !record.ip_allowlist.allows(source) {
        return Err(ApiError::IpNotAllowed { source_ip: source.map(|ip| ip.to_canonical().to_string()) });
    }
    Ok(())
}

/// What a key's refusal notes of the request besides its source: its method and path.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestLine<'r> {
    pub method: Option<&'r str>,
    pub path: Option<&'r str>,
}

/// The most of a path a refusal keeps (a request line can be far longer; the note is for a person).
const MAX_NOTED_PATH: usize = 512;

/// `text`, at most `max` bytes of it (cut at a character boundary).
fn bounded(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// A request the authorizer could not decide: API Gateway must answer 5xx.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("a dependency is unavailable")]
    Unavailable,
    #[error("the authorizer event is malformed: {0}")]
    MalformedEvent(String),
}

impl<S: KeyStore + GatewaySlots + CreditStore + 'static, P: PepperProvider> Authorizer<S, P> {
    /// Must run inside a Tokio runtime: it starts the `last_used_at` writer.
    pub fn new(deps: Dependencies<S, P>) -> Self {
        Self {
            last_used: LastUsed::spawn(Arc::clone(&deps.store), deps.cache_capacity),
            cache: KeyCache::new(deps.cache_capacity, deps.cache_ttl),
            store: deps.store,
            peppers: deps.peppers,
            clock: deps.clock,
            profile: deps.profile,
            jwt: deps.jwt,
            sessions: deps.sessions,
            session_usage_keys: deps.session_usage_keys,
            leases: deps.gateway_pool.then(Leases::default),
            verifications: Arc::new(Tally::new()),
            events: Arc::new(NoEvents),
            queued: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Sends the credit events of the keys it meters to `events` (by default, nowhere).
    pub fn with_events(self, events: Arc<dyn KeyEvents>) -> Self {
        Self { events, ..self }
    }

    /// Sends what the decisions queued (a Lambda function is frozen once it has answered).
    pub async fn flush_events(&self) {
        if self.queued.swap(false, std::sync::atomic::Ordering::AcqRel) {
            self.events.flush().await;
        }
    }

    /// The decisions counted since the last flush.
    pub fn verifications(&self) -> &Arc<Tally> {
        &self.verifications
    }

    pub fn cache(&self) -> &KeyCache {
        &self.cache
    }

    /// The decision. `Err(ApiError::ServiceUnavailable)` means a dependency failed; every other
    /// error is a denial to render.
    pub async fn authenticate<'h>(
        &self,
        headers: impl IntoIterator<Item = (&'h str, &'h str)>,
    ) -> Result<Principal, ApiError> {
        self.authenticate_from(headers, None).await
    }

    /// [`Self::authenticate`] of a request from `source` (`None`: not known, which a key with an
    /// IP allowlist is refused for).
    pub async fn authenticate_from<'h>(
        &self,
        headers: impl IntoIterator<Item = (&'h str, &'h str)>,
        source: Option<IpAddr>,
    ) -> Result<Principal, ApiError> {
        self.authenticate_request(headers, source, RequestLine::default()).await
    }

    /// [`Self::authenticate_from`], with the request's method and path, which a key's refusal
    /// notes for its tenant ([`Refusal`]).
    pub async fn authenticate_request<'h>(
        &self,
        headers: impl IntoIterator<Item = (&'h str, &'h str)>,
        source: Option<IpAddr>,
        line: RequestLine<'_>,
    ) -> Result<Principal, ApiError> {
        match extract_credential(headers)? {
            Credential::Jwt(token) => self.authenticate_session(token, source).await.map(Principal::Session),
            Credential::ApiKey(text) => self.authenticate_key(text, source, line).await.map(Principal::Key),
        }
    }

    async fn authenticate_session(&self, token: &str, source: Option<IpAddr>) -> Result<Session, ApiError> {
        if let Some(own) = &self.sessions {
            match own.verify(token).await {
                // Not one of ours (another issuer, algorithm or secret): perhaps the identity
                // provider's.
                Err(ApiError::InvalidToken) if self.jwt.is_some() => {}
                Ok(session) => return self.as_its_key_now(session, source).await,
                Err(refused) => return Err(refused),
            }
        }
        match &self.jwt {
            Some(verifier) => verifier.verify(token).await,
            None => Err(ApiError::InvalidToken),
        }
    }

    async fn authenticate_key(
        &self,
        text: &str,
        source: Option<IpAddr>,
        line: RequestLine<'_>,
    ) -> Result<Arc<VerifiedKey>, ApiError> {
        // The format check: a malformed key costs no I/O at all. A key of another system's shape
        // (imported, `POST /keys/import`) is looked up like any key, and cached alike.
        let Ok(key) = self.profile.parse_verifiable(text) else {
            self.verifications.count_unknown(true, self.clock.now());
            return Err(ApiError::InvalidApiKeyFormat);
        };
        let peppers = self.peppers.current().await;
        let digest = peppers.current.digest(&key);
        let mut now = self.clock.now();
        let record = match self.cache.get(&digest, now) {
            Some(cached) => cached,
            None => {
                // Boxed: a miss is the rare path, and the store's futures would enlarge every
                // decision's (the local gateway moves each request's future into a box).
                let found = Box::pin(self.find(&peppers, &key)).await?.map(|record| Arc::new(VerifiedKey::new(record)));
                // Aged from when the store answered: a slow read is not cached any longer.
                now = self.clock.now();
                self.cache.insert(digest, found.clone(), now);
                found
            }
        };
        let Some(record) = record else {
            self.verifications.count_unknown(false, now);
            return Err(ApiError::InvalidApiKey);
        };
        let admitted = match admits(&record, now, source) {
            // Boxed, and only for a key with credits: a key without costs no allocation here.
            Ok(()) => match &record.meter {
                Some(meter) => Box::pin(self.spend(&record, meter, line, now)).await?,
                None => Ok(()),
            },
            Err(refused) => Err(refused),
        };
        if let Err(refused) = admitted {
            if let Some(outcome) = Outcome::of_refusal(&refused) {
                self.verifications.count(&record.tenant_id, &record.id, outcome, now);
            }
            let refusal = Refusal {
                at: now,
                code: refused.code().to_owned(),
                source_ip: source.map(|ip| ip.to_canonical().to_string()),
                method: line.method.map(|method| bounded(method, 16)),
                path: line.path.map(|path| bounded(path.split('?').next().unwrap_or_default(), MAX_NOTED_PATH)),
            };
            self.verifications.note_refusal(&record.tenant_id, &record.id, refusal);
            return Err(refused);
        }
        self.verifications.count(&record.tenant_id, &record.id, Outcome::Valid, now);
        self.last_used.record(digest, &record.id, now);
        self.leased(record, digest, now).await
    }

    /// Spends one credit of `meter` (the key's balance), if the request is one that spends
    /// ([`spends_credits`]): never from the cache, always one atomic write, so no instance and no
    /// cached decision lets more requests through than the balance holds. The outer `Err` is a
    /// store failure (fail closed: 503); the inner one the refusal (`USAGE_EXCEEDED`).
    async fn spend(
        &self,
        record: &KeyRecord,
        meter: &KeyId,
        line: RequestLine<'_>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Result<(), ApiError>, ApiError> {
        if !line.path.is_none_or(spends_credits) {
            return Ok(Ok(()));
        }
        match self.store.spend_credit(meter, now).await? {
            // Made unlimited since the record was read (or cached): nothing to spend.
            None => Ok(Ok(())),
            Some(Spend::Exhausted { refills_at }) => Ok(Err(ApiError::UsageExceeded { refills_at })),
            Some(Spend::Spent(balance)) => {
                if let Some(notice) = balance.notice() {
                    let event_type = match notice {
                        CreditsNotice::Low => KeyEventType::CreditsLow,
                        CreditsNotice::Exhausted => KeyEventType::CreditsExhausted,
                    };
                    let view = KeyView::of(record, now).with_credits(Some(&balance), now);
                    self.events.publish(KeyEvent::new(event_type, view, now));
                    self.queued.store(true, std::sync::atomic::Ordering::Release);
                }
                Ok(Ok(()))
            }
        }
    }

    /// `record` with the lease its request is throttled under ([`leases`]); the cached answer
    /// gets it too, so the next request of this instance neither claims nor reads again.
    async fn leased(
        &self,
        record: Arc<VerifiedKey>,
        digest: latchkey::KeyDigest,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Arc<VerifiedKey>, ApiError> {
        let Some(leases) = &self.leases else { return Ok(record) };
        let Some(lease) = leases.needed(&*self.store, &record, now).await? else { return Ok(record) };
        // A shared slot is this instance's stopgap for a minute, not the key's lease: other
        // instances look for a slot of their own too.
        if !lease.shared
            && let Err(error) = self.store.note_lease(&record.digest, &lease).await
        {
            tracing::warn!(key_id = %record.id, %error, "lease not noted; the next read claims it again");
        }
        let leased = Arc::new(VerifiedKey::new(KeyRecord { lease: Some(lease), ..record.record().clone() }));
        self.cache.replace(&digest, Arc::clone(&leased));
        Ok(leased)
    }

    /// A session Latchkey signed answers to the key it names (`sub`), as stored now, on every
    /// request: that key's refusal (revoked, expired, disabled), its allowlist against this
    /// request's source, its permissions now rather than those signed into the token. Read from
    /// the store every time, never from the cache: the cost is the record's consistent read per
    /// session request (dashboard traffic only), and a session cannot outlive a change to its key.
    async fn as_its_key_now(&self, session: Session, source: Option<IpAddr>) -> Result<Session, ApiError> {
        let id: KeyId = session.subject.parse().map_err(|_| ApiError::InvalidToken)?;
        let record = self.store.get(&session.tenant_id, &id).await?.ok_or(ApiError::InvalidApiKey)?;
        admits(&record, self.clock.now(), source)?;
        Ok(Session { permissions: record.permissions, ..session })
    }

    /// The stored record of `key`. A cold start fetches only the current pepper: on its first
    /// miss, the previous pepper is fetched before the miss is believed, so a key from before a
    /// rotation still verifies (and is rehashed). After that, and after every refresh, the set
    /// is whole and a miss costs no fetch.
    async fn find(&self, peppers: &PepperSet, key: &ApiKey) -> Result<Option<KeyRecord>, ApiError> {
        let found = find_key(&*self.store, peppers, key).await?;
        if found.is_some() || peppers.previous_known {
            return Ok(found);
        }
        let whole = self.peppers.complete().await.map_err(|error| {
            tracing::error!(%error, "the previous pepper could not be fetched");
            ApiError::ServiceUnavailable
        })?;
        if whole.previous.is_none() && whole.current.version() == peppers.current.version() {
            // No rotation: the miss stands, without another read.
            return Ok(None);
        }
        Ok(find_key(&*self.store, &whole, key).await?)
    }

    /// One Lambda invocation: event bytes in, response bytes out.
    pub async fn handle_event(&self, raw: &[u8]) -> Result<Vec<u8>, HandlerError> {
        let started = Instant::now();
        let event = AuthorizerEvent::parse(raw).map_err(|e| HandlerError::MalformedEvent(e.to_string()))?;
        let resource = policy::stage_wildcard(&event.method_arn)
            .ok_or_else(|| HandlerError::MalformedEvent("methodArn is not an execute-api ARN".into()))?;
        let (method, path) = policy::method_and_path(&event.method_arn).unzip();
        let line = RequestLine { method, path };
        let outcome = self.authenticate_request(event.header_pairs(), event.source_ip(), line).await;
        let latency_us = started.elapsed().as_micros() as u64;
        // Only a spend that crossed a threshold queued anything: otherwise nothing is awaited.
        self.flush_events().await;
        let request_id = event.request_id().unwrap_or_default();
        match outcome {
            Ok(principal) => {
                let (key_id, tenant_id) = match &principal {
                    Principal::Key(record) => (record.id.as_str(), record.tenant_id.as_str()),
                    Principal::Session(session) => ("", session.tenant_id.as_str()),
                };
                tracing::info!(outcome = "allow", key_id, tenant_id, request_id, latency_us, "decision");
                Ok(policy::allow(&principal, &resource, self.session_usage_keys.as_ref(), self.clock.now()))
            }
            Err(ApiError::ServiceUnavailable) => {
                tracing::error!(outcome = "error", code = "SERVICE_UNAVAILABLE", request_id, latency_us, "decision");
                Err(HandlerError::Unavailable)
            }
            Err(denial) => {
                tracing::info!(outcome = "deny", code = denial.code(), request_id, latency_us, "decision");
                Ok(policy::deny(&denial, &resource, None))
            }
        }
    }
}
