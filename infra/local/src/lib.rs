//! The local API: every route of the HTTP contract on one local port, on the embedded store, with
//! no Docker, no AWS account and no network. A request goes the way it goes behind API Gateway:
//! the authorizer's decision on its headers, called directly (a Deny answers with the status and
//! body the deployed `ACCESS_DENIED` gateway response renders), the tier's rate limit (where the
//! deployed stack has its usage plans), then the same handlers as the Lambda functions, reading
//! the caller from the same context; or, for a path that is not Latchkey's and with an upstream
//! configured, the team's backend ([`upstream`]).

pub mod connection;
pub mod dashboard;
pub mod local_gateway;
mod private_files;
mod rate_limit;
pub mod threads;
pub mod upstream;
mod webhook;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use chrono::TimeDelta;
use latchkey::audit::AuditLog;
use latchkey::config::{ConfigError, Env, Settings};
use latchkey::datasource::DatasourceStore;
use latchkey::events::{KeyEvents, NoEvents};
use latchkey::gateway::pool::GatewaySlots;
use latchkey::ingest::RecordStore;
use latchkey::ingest::dynamo::DynamoRecordStore;
use latchkey::ingest::service::IngestService;
use latchkey::leaks::github::SigningKeys;
use latchkey::manage::Route;
use latchkey::manage::sweep::{MAX_KEYS_PER_SWEEP, Swept};
use latchkey::manage::{Caller, Issuance, KeyPolicy, KeyService, Management, ManagementRequest, Reply, Role};
use latchkey::pepper::{CachedPepper, FilePepper, PepperError};
use latchkey::session::{self, SessionSigner};
use latchkey::store::dynamo::DynamoKeyStore;
use latchkey::store::embedded::EmbeddedKeyStore;
use latchkey::store::{KeyStore, StoreError};
use latchkey::verifications::{self, VerificationStore};
use latchkey::{ApiError, Clock, KeyId, OffsetClock, SystemClock, TenantId};
use latchkey_authorizer::jwt::{JwksError, JwtConfig, JwtVerifier};
use latchkey_authorizer::policy::AllowContext;
use latchkey_authorizer::setup::{JwtKeySource, JwtSettings};
use latchkey_authorizer::{Authorizer, Dependencies, Principal, RequestLine};

use local_gateway::LocalGateway;
use rate_limit::RateLimits;
use upstream::Upstream;

/// The tenant the first admin key is made for.
pub const DEFAULT_TENANT: &str = "default";
/// Bodies API Gateway would take at most (10 MB); the handlers apply their own, smaller limits.
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;
/// What the deployed `REQUEST_TOO_LARGE` gateway response answers past that (template.yaml; a
/// test holds the two together).
pub const REQUEST_TOO_LARGE_BODY: &str =
    r#"{"success": false, "error": {"code": "PAYLOAD_TOO_LARGE", "message": "The request is too large"}}"#;

/// Ten years: past any expiry a key can be given.
const MAX_CLOCK_OFFSET_SECONDS: u64 = 10 * 366 * 86_400;

/// `LATCHKEY_ADDR`, `LATCHKEY_DATA_DIR`, `LATCHKEY_ADMIN_KEY_FILE`, on top of [`Settings`].
#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub addr: String,
    pub data_dir: PathBuf,
    pub admin_key_file: Option<PathBuf>,
    /// `LATCHKEY_KEYS_TABLE` and `LATCHKEY_RECORDS_TABLE`: for `--store dynamodb` only.
    pub tables: Option<(String, String)>,
    /// `LATCHKEY_UPSTREAM` (or `--upstream`): the team's backend, for every path that is not
    /// Latchkey's; `LATCHKEY_UPSTREAM_TIMEOUT_SECONDS` (default 29, API Gateway's).
    pub upstream: Option<Upstream>,
    /// `LATCHKEY_CLOCK_OFFSET_SECONDS` (default 0): how far ahead of the wall clock the local API
    /// runs, to try what a grace period, an expiry or a session's end does without waiting.
    pub clock_offset: TimeDelta,
    /// `LATCHKEY_JWT_JWKS_URL`, `LATCHKEY_JWT_ISSUER`, `LATCHKEY_JWT_AUDIENCE` (and the claim
    /// names), as the deployed authorizer reads them: a provider's identity provider, whose
    /// sessions are verified beside Latchkey's own.
    pub identity_provider: Option<(String, JwtConfig)>,
    /// `LATCHKEY_WEBHOOK_URL`: where key events are POSTed, signed with `LATCHKEY_WEBHOOK_SECRET`
    /// (or, unset, the data directory's `webhook-secret`, made on first use).
    pub webhook: Option<(reqwest::Url, Option<String>)>,
    /// `LATCHKEY_SWEEP_SECONDS` (default 60, 1 to 86,400): how often the local API runs the
    /// deployed stack's scheduled sweep (retirement, `key.expired`, `key.expiring`).
    pub sweep_interval: Duration,
    pub settings: Settings,
}

impl LocalConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            addr: env.get("LATCHKEY_ADDR").unwrap_or_else(|| "127.0.0.1:3000".to_owned()),
            data_dir: env.get("LATCHKEY_DATA_DIR").unwrap_or_else(|| ".latchkey".to_owned()).into(),
            admin_key_file: env.get("LATCHKEY_ADMIN_KEY_FILE").map(PathBuf::from),
            tables: env.get("LATCHKEY_KEYS_TABLE").zip(env.get("LATCHKEY_RECORDS_TABLE")),
            upstream: match env.get("LATCHKEY_UPSTREAM") {
                None => None,
                Some(url) => Some(Self::upstream(env, &url, "LATCHKEY_UPSTREAM")?),
            },
            clock_offset: TimeDelta::seconds(env.number_or(
                "LATCHKEY_CLOCK_OFFSET_SECONDS",
                0,
                0..=MAX_CLOCK_OFFSET_SECONDS,
            )? as i64),
            identity_provider: Self::identity_provider(env)?,
            webhook: Self::webhook(env)?,
            sweep_interval: Duration::from_secs(env.number_or("LATCHKEY_SWEEP_SECONDS", 60, 1..=86_400)?),
            settings: Settings::from_env(env)?,
        })
    }

    fn webhook<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
    ) -> Result<Option<(reqwest::Url, Option<String>)>, ConfigError> {
        let Some(text) = env.get("LATCHKEY_WEBHOOK_URL") else { return Ok(None) };
        let var = "LATCHKEY_WEBHOOK_URL";
        let url =
            reqwest::Url::parse(&text).map_err(|e| ConfigError::Invalid { var, reason: format!("`{text}`: {e}") })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::Invalid { var, reason: format!("`{text}` is not an http(s) URL") });
        }
        let secret = env.get("LATCHKEY_WEBHOOK_SECRET");
        if secret.as_ref().is_some_and(|s| s.len() < 16) {
            let reason = "at least 16 characters: it is what proves an event came from here".to_owned();
            return Err(ConfigError::Invalid { var: "LATCHKEY_WEBHOOK_SECRET", reason });
        }
        Ok(Some((url, secret)))
    }

    fn identity_provider<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
    ) -> Result<Option<(String, JwtConfig)>, ConfigError> {
        match JwtSettings::from_env(env)? {
            None => Ok(None),
            Some(JwtSettings { source: JwtKeySource::Jwks(url), config }) => Ok(Some((url, config))),
            Some(JwtSettings { source: JwtKeySource::SharedSecret(_), .. }) => Err(ConfigError::Invalid {
                var: "LATCHKEY_JWT_SECRET_ID",
                reason: "names a Secrets Manager secret, which only the deployed authorizer reads: locally, \
                         name the identity provider's keys with LATCHKEY_JWT_JWKS_URL"
                    .to_owned(),
            }),
        }
    }

    /// The wall clock, ahead by the configured offset.
    pub fn clock(&self) -> Arc<dyn Clock> {
        if self.clock_offset.is_zero() { Arc::new(SystemClock) } else { Arc::new(OffsetClock::new(self.clock_offset)) }
    }

    /// The backend at `url` with the configured timeout; `var` names where the URL came from.
    pub fn upstream<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
        url: &str,
        var: &'static str,
    ) -> Result<Upstream, ConfigError> {
        let seconds =
            env.number_or("LATCHKEY_UPSTREAM_TIMEOUT_SECONDS", upstream::DEFAULT_TIMEOUT.as_secs(), 1..=300)?;
        Upstream::new(url, Duration::from_secs(seconds)).map_err(|reason| ConfigError::Invalid { var, reason })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the data directory {dir}: {cause}")]
    DataDir { dir: String, cause: String },
    #[error("{path}: {cause}")]
    File { path: String, cause: String },
    #[error("LATCHKEY_ADMIN_KEY_FILE {path}: {cause}")]
    AdminKeyFile { path: String, cause: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pepper(#[from] PepperError),
    #[error("the identity provider's keys: {0}")]
    IdentityProvider(#[from] JwksError),
    #[error("the first admin key could not be made: {0}")]
    Bootstrap(ApiError),
}

/// Everything one request needs: the keys store `S`, the records store `R`.
pub struct LocalApi<S, R> {
    authorizer: Authorizer<S, FilePepper>,
    management: Management<S, LocalGateway, FilePepper, R>,
    ingest: IngestService<R, S>,
    limits: RateLimits,
    upstream: Option<Upstream>,
    expiry_notice: Option<TimeDelta>,
    sweep_interval: Duration,
    /// GitHub's secret scanning keys (`LATCHKEY_GITHUB_KEYS_URL`), for `POST /leaks/github`.
    github_keys: SigningKeys,
}

/// The local API on the embedded store: one redb file in the data directory.
pub type EmbeddedApi = LocalApi<EmbeddedKeyStore, EmbeddedKeyStore>;
/// The local API on DynamoDB (Local or AWS): the tables named by `LATCHKEY_KEYS_TABLE` and
/// `LATCHKEY_RECORDS_TABLE`, endpoints from the AWS SDK's variables.
pub type DynamoApi = LocalApi<DynamoKeyStore, DynamoRecordStore>;

/// Opens (or creates) the embedded store and the pepper in the data directory. On an empty
/// store, makes tenant `default`'s admin key and returns it (to be shown once).
pub async fn open(config: &LocalConfig, clock: Arc<dyn Clock>) -> Result<(EmbeddedApi, Option<String>), LocalError> {
    create_data_dir(config).await?;
    let file = config.data_dir.join("latchkey.redb");
    private_files::file(&file).map_err(|cause| LocalError::File { path: file.display().to_string(), cause })?;
    let store = Arc::new(EmbeddedKeyStore::open(&file)?.with_max_keys_per_tenant(config.settings.max_keys_per_tenant));
    assemble(config, clock, Arc::clone(&store), store).await
}

/// The same on DynamoDB. The pepper is still the data directory's file, so keys made by a
/// deployed stack (under its Secrets Manager pepper) do not verify here.
pub async fn open_dynamodb(
    config: &LocalConfig,
    clock: Arc<dyn Clock>,
) -> Result<(DynamoApi, Option<String>), LocalError> {
    create_data_dir(config).await?;
    let (keys_table, records_table) =
        config.tables.clone().ok_or(ConfigError::Missing { var: "LATCHKEY_KEYS_TABLE and LATCHKEY_RECORDS_TABLE" })?;
    let sdk = latchkey::aws::load_sdk_config(&config.settings.aws_timeouts).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let keys = DynamoKeyStore::new(client.clone(), keys_table, config.settings.record_retention)
        .with_max_keys_per_tenant(config.settings.max_keys_per_tenant);
    let records = DynamoRecordStore::new(client, records_table).with_retention(config.settings.record_ttl);
    assemble(config, clock, Arc::new(keys), Arc::new(records)).await
}

/// The secret in file `name` of the data directory, made (0600) on first use.
async fn data_dir_secret(dir: &std::path::Path, name: &str) -> Result<String, LocalError> {
    let file = dir.join(name);
    let path = file.display().to_string();
    tokio::task::spawn_blocking(move || private_files::secret(&file))
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
        .map_err(|cause| LocalError::File { path, cause })
}

async fn create_data_dir(config: &LocalConfig) -> Result<(), LocalError> {
    let dir = &config.data_dir;
    private_files::data_dir(dir).map_err(|cause| LocalError::DataDir { dir: dir.display().to_string(), cause })?;
    let pepper = dir.join("pepper");
    private_files::writable(&pepper).map_err(|cause| LocalError::File { path: pepper.display().to_string(), cause })
}

async fn assemble<S, R>(
    config: &LocalConfig,
    clock: Arc<dyn Clock>,
    store: Arc<S>,
    records: Arc<R>,
) -> Result<(LocalApi<S, R>, Option<String>), LocalError>
where
    S: KeyStore + GatewaySlots + AuditLog + latchkey::credits::CreditStore + DatasourceStore + 'static,
    R: RecordStore + VerificationStore + 'static,
{
    let dir = &config.data_dir;
    let admin_key_file_error =
        |file: &std::path::Path, cause| LocalError::AdminKeyFile { path: file.display().to_string(), cause };
    if let Some(file) = &config.admin_key_file {
        // Before the key is made: a refusal afterwards would lose it.
        private_files::writable(file).map_err(|cause| admin_key_file_error(file, cause))?;
    }
    let pepper = || FilePepper::new(dir.join("pepper"));
    let settings = &config.settings;
    let session_secret = data_dir_secret(dir, "session-secret").await?;
    // Dashboard sessions: signed by the management side, verified by the authorizer, as deployed.
    let sessions = SessionSigner::new(session_secret.as_bytes(), settings.session_ttl).expect("64 hex digits");
    let session_verifier = JwtVerifier::with_shared_secret(
        session_secret.as_bytes(),
        JwtConfig::new(session::ISSUER, session::AUDIENCE),
        Arc::clone(&clock),
    );
    let events: Arc<dyn KeyEvents> = match &config.webhook {
        None => Arc::new(NoEvents),
        Some((url, secret)) => {
            let secret = match secret {
                Some(secret) => secret.clone(),
                None => data_dir_secret(dir, "webhook-secret").await?,
            };
            Arc::new(webhook::Webhook::start(url.clone(), secret))
        }
    };
    let authorizer = Authorizer::new(Dependencies {
        store: Arc::clone(&store),
        peppers: CachedPepper::load(pepper(), settings.pepper_refresh).await?,
        clock: Arc::clone(&clock),
        profile: settings.key_profile.clone(),
        cache_ttl: settings.cache_ttl,
        cache_capacity: 10_000,
        jwt: match &config.identity_provider {
            None => None,
            Some((url, jwt)) => Some(
                JwtVerifier::with_jwks(url, settings.aws_timeouts.operation, jwt.clone(), Arc::clone(&clock)).await?,
            ),
        },
        sessions: Some(session_verifier),
        session_usage_keys: None,
        gateway_pool: false,
    })
    .with_events(Arc::clone(&events));
    let management = Management {
        service: KeyService {
            store: Arc::clone(&store),
            gateway: LocalGateway,
            clock: Arc::clone(&clock),
            policy: KeyPolicy { tiers: settings.tiers.clone(), max_lifetime: None },
            events,
            pools: Default::default(),
        },
        issuance: Some(Issuance {
            peppers: CachedPepper::load(pepper(), settings.pepper_refresh).await?,
            profile: settings.key_profile.clone(),
            sessions: Some(sessions),
        }),
        records: Some(Arc::clone(&records)),
        ingest_tier: settings.tiers.default_tier().clone(),
        roles: &[Role::Read, Role::Issue, Role::Change],
        leak_action: settings.leak_action,
    };
    let api = LocalApi {
        authorizer,
        management,
        ingest: IngestService { records, datasources: Arc::clone(&store), clock, daily_cap: settings.ingest_daily_cap },
        limits: RateLimits::new(&settings.tiers),
        upstream: config.upstream.clone(),
        expiry_notice: settings.expiry_notice,
        sweep_interval: config.sweep_interval,
        github_keys: SigningKeys::new(settings.github_keys_url.clone()),
    };
    let admin_key = api.bootstrap_if_empty().await?;
    if let (Some(key), Some(file)) = (&admin_key, &config.admin_key_file) {
        let (path, text) = (file.clone(), key.clone());
        tokio::task::spawn_blocking(move || private_files::write_secret(&path, &text))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
            .map_err(|cause| admin_key_file_error(file, cause))?;
    }
    Ok((api, admin_key))
}

impl<S, R> LocalApi<S, R>
where
    S: KeyStore + GatewaySlots + AuditLog + latchkey::credits::CreditStore + DatasourceStore + 'static,
    R: RecordStore + VerificationStore,
{
    async fn bootstrap_if_empty(&self) -> Result<Option<String>, LocalError> {
        let tenant: TenantId = DEFAULT_TENANT.parse().expect("a valid tenant id");
        let service = &self.management.service;
        if !service.store.list(&tenant, 1, None).await?.items.is_empty() {
            return Ok(None);
        }
        let issuance = self.management.issuance.as_ref().expect("the local API issues keys");
        let issued = service
            .bootstrap(issuance, &Caller::operator(tenant), "local admin".into(), "internal")
            .await
            .map_err(LocalError::Bootstrap)?;
        Ok(Some(serde_json::to_value(&issued).expect("serializes")["key"].as_str().expect("a key").to_owned()))
    }

    /// Writes the verification counts of the decisions made so far now, rather than at the next
    /// minute's flush (for tests and a clean stop).
    pub async fn flush_verifications(&self) {
        if let Some(records) = &self.management.records {
            verifications::flush(self.authorizer.verifications(), &**records).await;
        }
    }

    /// The deployed stack's scheduled sweep (`keys-sweep`), once: retires the keys that stopped,
    /// sends `key.expired` and `key.expiring`.
    pub async fn sweep(&self) -> Result<Swept, ApiError> {
        self.management.service.sweep_and_warn(MAX_KEYS_PER_SWEEP, self.expiry_notice).await
    }

    /// The authorizer's decision on these headers, typed: who is calling, or what API Gateway
    /// answers instead (a Deny renders as the `ACCESS_DENIED` gateway response does, with the
    /// authorizer's status and envelope; an authorizer failure is a 5xx, SERVICE_UNAVAILABLE).
    /// `source`: the peer's address, which a key's IP allowlist is checked against (deployed: the
    /// address API Gateway reports).
    pub async fn decide(
        &self,
        headers: &HeaderMap,
        source: Option<IpAddr>,
        method: &Method,
        uri: &Uri,
    ) -> Result<Principal, Reply> {
        // Every header as it is: a value that is not text reads as U+FFFD, so a garbled
        // credential header still counts (as a malformed or conflicting credential), not vanishes.
        let pairs = headers.iter().map(|(name, value)| (name.as_str(), value.to_str().unwrap_or("\u{FFFD}")));
        // A denial (the 401 family) and a dependency fault (503) render as any error does.
        self.authorizer
            .authenticate_request(pairs, source, RequestLine { method: Some(method.as_str()), path: Some(uri.path()) })
            .await
            .map_err(|error| Reply::error(&error))
    }

    /// The tier's throttle, where the deployed stack has the usage plan's. A key's request it
    /// refuses is counted `rate_limited` in the key's verifications (instead of the `valid` its
    /// decision counted: usage is the `valid` ones).
    fn throttle(&self, context: &AllowContext<'_>) -> Result<(), Reply> {
        if let Err(limited) = self.limits.check(context.field("tier"), context.field("principal")) {
            let key = context.field("key_id").filter(|id| !id.is_empty()).and_then(|id| id.parse::<KeyId>().ok());
            let tenant = context.field("tenant_id").and_then(|t| t.parse::<TenantId>().ok());
            if let (Some(key), Some(tenant)) = (key, tenant) {
                self.authorizer.verifications().rate_limited(&tenant, &key, self.management.service.clock.now());
            }
            return Err(Reply::error(&limited));
        }
        Ok(())
    }

    /// One request for one of Latchkey's own routes, as the deployed stack answers it.
    pub async fn answer(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        source: Option<IpAddr>,
    ) -> Reply {
        if is_github_leaks(uri.path()) {
            // Signed by GitHub, not authenticated by a key: the deployed route has no authorizer.
            return self.github_leaks(method, headers, body).await;
        }
        let principal = match self.decide(headers, source, method, uri).await {
            Ok(principal) => principal,
            Err(refused) => return refused,
        };
        let context = AllowContext::of(&principal, self.management.service.clock.now());
        if let Err(limited) = self.throttle(&context) {
            return limited;
        }
        let path = uri.path();
        let request_id = uuid::Uuid::now_v7().to_string();
        // The handlers read the caller as the deployed ones read the proxy event's context.
        let caller = Caller::from_authorizer_context(|name| context.field(name), Some(request_id));
        let query: HashMap<String, String> =
            uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
        if is_ingest(path) {
            // Kept even when unreadable, so that validation refuses it (as the function does).
            let key = headers.get("idempotency-key").map(|v| String::from_utf8_lossy(v.as_bytes()));
            return self.ingest.handle(method.as_str(), path, caller, key.as_deref(), body).await;
        }
        // One process holds every count: the routes that read them see this minute's too (the
        // deployed ones show each authorizer instance's once a minute).
        if matches!(
            Route::parse(method.as_str(), path),
            Ok(Route::KeyUsage(_) | Route::KeyVerifications(_) | Route::KeyRefusals(_) | Route::TenantVerifications)
        ) {
            self.flush_verifications().await;
        }
        let request = ManagementRequest {
            method: method.as_str(),
            path,
            query: |name: &str| query.get(name).map(String::as_str),
            body,
            caller,
        };
        let reply = self.management.handle(request).await;
        if method != Method::GET && reply.status < 400 {
            // This process revoked, rotated, regenerated or deleted: no key it changed may keep
            // verifying from the cache (deployed, other instances see it within their TTL).
            self.authorizer.cache().clear();
        }
        reply
    }

    /// `POST /leaks/github`, as the deployed `keys-issue` answers it.
    async fn github_leaks(&self, method: &Method, headers: &HeaderMap, body: &[u8]) -> Reply {
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        let reply = self.management.github_leaks(&self.github_keys, method.as_str(), header, body).await;
        if reply.status < 400 {
            // Keys it revoked or disabled stop at once here, as any change this process made.
            self.authorizer.cache().clear();
        }
        reply
    }

    /// A request for the team's backend: authenticated and throttled as any, then forwarded on
    /// its client connection's `backend` connection.
    async fn forward(
        &self,
        upstream: &Upstream,
        backend: &upstream::BackendConnection,
        request: axum::http::request::Parts,
        body: Body,
        source: Option<IpAddr>,
    ) -> Result<Response<Body>, Reply> {
        let principal = self.decide(&request.headers, source, &request.method, &request.uri).await?;
        let context = AllowContext::of(&principal, self.management.service.clock.now());
        self.throttle(&context)?;
        upstream
            .forward(backend, request.method, &request.uri, request.headers, body, |name| context.field(name))
            .await
            .map_err(|error| Reply::error(&error))
    }
}

/// Whether `path` is one of Latchkey's own routes (whatever the method), which the gateway never
/// forwards: the management routes, `/ingest` and the dashboard.
pub fn serves(path: &str) -> bool {
    is_ingest(path)
        || is_github_leaks(path)
        || dashboard::owns(path)
        || !matches!(Route::parse("GET", path), Err(ApiError::NotFound))
}

/// `/ingest`, with or without a trailing slash (as the management routes tolerate one).
fn is_ingest(path: &str) -> bool {
    path.strip_suffix('/').unwrap_or(path) == "/ingest"
}

/// `/leaks/github`, GitHub's secret scanning reports, likewise.
fn is_github_leaks(path: &str) -> bool {
    path.strip_suffix('/').unwrap_or(path) == "/leaks/github"
}

/// The HTTP side of Latchkey's own routes: every path and method to [`LocalApi::answer`]. (A
/// request for the team's backend is forwarded by its connection before it gets here:
/// [`connection`].)
pub fn router<S, R>(api: Arc<LocalApi<S, R>>) -> axum::Router
where
    S: KeyStore + GatewaySlots + AuditLog + latchkey::credits::CreditStore + DatasourceStore + 'static,
    R: RecordStore + VerificationStore + 'static,
{
    // The body is read in `handle` (bounded there), so an oversized one gets the gateway's answer.
    axum::Router::new().fallback(handle).layer(axum::extract::DefaultBodyLimit::disable()).with_state(api)
}

async fn handle<S, R>(
    State(api): State<Arc<LocalApi<S, R>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    body: Body,
) -> Response<Body>
where
    S: KeyStore + GatewaySlots + AuditLog + latchkey::credits::CreditStore + DatasourceStore + 'static,
    R: RecordStore + VerificationStore + 'static,
{
    // The peer, when served with connect info (`serve`); a router served without it knows none.
    let source = extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
    if let Some(page) = dashboard::serve(&method, uri.path()) {
        return page;
    }
    if uri.path() == "/" && api.upstream.is_none() && (method == Method::GET || method == Method::HEAD) {
        return dashboard::redirect();
    }
    let reply = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(body) => api.answer(&method, &uri, &headers, &body, source).await,
        Err(_) => too_large(),
    };
    render(reply)
}

/// What API Gateway answers a request over [`MAX_REQUEST_BYTES`].
fn too_large() -> Reply {
    Reply { status: 413, headers: Vec::new(), body: Some(REQUEST_TOO_LARGE_BODY.to_owned()) }
}

pub(crate) fn render(reply: Reply) -> Response<Body> {
    let mut response =
        Response::builder().status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (name, value) in &reply.headers {
        response = response.header(*name, value);
    }
    match reply.body {
        Some(json) => response.header("content-type", "application/json").body(Body::from(json)),
        None => response.body(Body::empty()),
    }
    .expect("status and headers are valid")
}

/// Serves until `shutdown` resolves; requests in flight are finished first.
pub async fn serve<S, R>(
    listener: tokio::net::TcpListener,
    api: Arc<LocalApi<S, R>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    S: KeyStore + GatewaySlots + AuditLog + latchkey::credits::CreditStore + DatasourceStore + 'static,
    R: RecordStore + VerificationStore + 'static,
{
    use axum::serve::ListenerExt;
    // Answers go out as written: Nagle's algorithm would hold a small answer back until the
    // client's delayed ACK (40 ms) whenever a connection has one unacknowledged segment.
    let listener = listener.tap_io(|connection| {
        let _ = connection.set_nodelay(true);
    });
    axum::serve(listener, connection::Connections::new(api)).with_graceful_shutdown(shutdown).await
}

/// Runs [`LocalApi::sweep`] every `LATCHKEY_SWEEP_SECONDS`, as the deployed stack's schedule
/// does, until dropped; a run that fails is logged and the next one tries again.
pub async fn sweep_periodically<S, R>(api: Arc<LocalApi<S, R>>)
where
    S: KeyStore + GatewaySlots + AuditLog + latchkey::credits::CreditStore + DatasourceStore + 'static,
    R: RecordStore + VerificationStore + 'static,
{
    let mut ticks = tokio::time::interval(api.sweep_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match api.sweep().await {
            Ok(swept) => tracing::debug!(retired = swept.retired, left = swept.left, warned = swept.warned, "swept"),
            Err(error) => tracing::warn!(%error, "the sweep failed; the next run tries again"),
        }
    }
}

/// Writes the authorizer's verification counts to the store every minute, as the deployed
/// authorizer does ([`verifications::FLUSH_INTERVAL`]); spawned beside the server, like the sweep.
pub async fn flush_verifications_periodically<S, R>(api: Arc<LocalApi<S, R>>)
where
    S: KeyStore + GatewaySlots + AuditLog + latchkey::credits::CreditStore + DatasourceStore + 'static,
    R: RecordStore + VerificationStore + 'static,
{
    if let Some(records) = &api.management.records {
        verifications::flush_periodically(api.authorizer.verifications(), &**records).await;
    }
}

/// The wall clock, for `main`.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// How long a client is told to wait after a 429, at least.
pub(crate) const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);
