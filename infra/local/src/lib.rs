//! The local API: every route of the HTTP contract on one local port, on the embedded store, with
//! no Docker, no AWS account and no network. A request goes the way it goes behind API Gateway:
//! the authorizer decides on a REQUEST event built from it (a Deny answers with the status and
//! body the deployed `ACCESS_DENIED` gateway response renders), the tier's rate limit applies
//! (where the deployed stack has its usage plans), then the same handlers as the Lambda functions
//! answer.

mod rate_limit;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use latchkey::audit::AuditLog;
use latchkey::config::{ConfigError, Env, Settings};
use latchkey::datasource::DatasourceStore;
use latchkey::gateway::NoGateway;
use latchkey::ingest::RecordStore;
use latchkey::ingest::dynamo::DynamoRecordStore;
use latchkey::ingest::service::IngestService;
use latchkey::manage::{Caller, Issuance, KeyPolicy, KeyService, Management, ManagementRequest, Reply, Role};
use latchkey::pepper::{CachedPepper, FilePepper, PepperError};
use latchkey::store::dynamo::DynamoKeyStore;
use latchkey::store::embedded::EmbeddedKeyStore;
use latchkey::store::{KeyStore, StoreError};
use latchkey::{ApiError, Clock, SystemClock, TenantId};
use latchkey_authorizer::{Authorizer, Dependencies};
use serde_json::{Value, json};

use rate_limit::RateLimits;

/// The tenant the first admin key is made for.
pub const DEFAULT_TENANT: &str = "default";
/// Bodies API Gateway would take at most (10 MB); the handlers apply their own, smaller limits.
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;
/// What the deployed `REQUEST_TOO_LARGE` gateway response answers past that (template.yaml; a
/// test holds the two together).
pub const REQUEST_TOO_LARGE_BODY: &str =
    r#"{"success": false, "error": {"code": "PAYLOAD_TOO_LARGE", "message": "The request is too large"}}"#;

/// `LATCHKEY_ADDR`, `LATCHKEY_DATA_DIR`, `LATCHKEY_ADMIN_KEY_FILE`, on top of [`Settings`].
#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub addr: String,
    pub data_dir: PathBuf,
    pub admin_key_file: Option<PathBuf>,
    /// `LATCHKEY_KEYS_TABLE` and `LATCHKEY_RECORDS_TABLE`: for `--store dynamodb` only.
    pub tables: Option<(String, String)>,
    pub settings: Settings,
}

impl LocalConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            addr: env.get("LATCHKEY_ADDR").unwrap_or_else(|| "127.0.0.1:3000".to_owned()),
            data_dir: env.get("LATCHKEY_DATA_DIR").unwrap_or_else(|| ".latchkey".to_owned()).into(),
            admin_key_file: env.get("LATCHKEY_ADMIN_KEY_FILE").map(PathBuf::from),
            tables: env.get("LATCHKEY_KEYS_TABLE").zip(env.get("LATCHKEY_RECORDS_TABLE")),
            settings: Settings::from_env(env)?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the data directory {dir}: {cause}")]
    DataDir { dir: String, cause: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pepper(#[from] PepperError),
    #[error("the first admin key could not be made: {0}")]
    Bootstrap(ApiError),
}

/// Everything one request needs: the keys store `S`, the records store `R`.
pub struct LocalApi<S, R> {
    authorizer: Authorizer<S, FilePepper>,
    management: Management<S, NoGateway, FilePepper, R>,
    ingest: IngestService<R>,
    limits: RateLimits,
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
    let store = Arc::new(EmbeddedKeyStore::open(&config.data_dir.join("latchkey.redb"))?);
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
    let keys = DynamoKeyStore::new(client.clone(), keys_table, config.settings.record_retention);
    let records = DynamoRecordStore::new(client, records_table);
    assemble(config, clock, Arc::new(keys), Arc::new(records)).await
}

async fn create_data_dir(config: &LocalConfig) -> Result<(), LocalError> {
    let dir = &config.data_dir;
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|cause| LocalError::DataDir { dir: dir.display().to_string(), cause: cause.to_string() })
}

async fn assemble<S, R>(
    config: &LocalConfig,
    clock: Arc<dyn Clock>,
    store: Arc<S>,
    records: Arc<R>,
) -> Result<(LocalApi<S, R>, Option<String>), LocalError>
where
    S: KeyStore + AuditLog + DatasourceStore + 'static,
    R: RecordStore,
{
    let dir = &config.data_dir;
    let data_dir_error =
        |cause: std::io::Error| LocalError::DataDir { dir: dir.display().to_string(), cause: cause.to_string() };
    let pepper = || FilePepper::new(dir.join("pepper"));
    let settings = &config.settings;
    let authorizer = Authorizer::new(Dependencies {
        store: Arc::clone(&store),
        peppers: CachedPepper::load(pepper(), settings.pepper_refresh).await?,
        clock: Arc::clone(&clock),
        profile: settings.key_profile.clone(),
        cache_ttl: settings.cache_ttl,
        cache_capacity: 10_000,
        jwt: None,
        session_usage_key: None,
    });
    let management = Management {
        service: KeyService {
            store: Arc::clone(&store),
            gateway: NoGateway,
            clock: Arc::clone(&clock),
            policy: KeyPolicy { tiers: settings.tiers.clone(), max_lifetime: None },
        },
        issuance: Some(Issuance {
            peppers: CachedPepper::load(pepper(), settings.pepper_refresh).await?,
            profile: settings.key_profile.clone(),
        }),
        records: Some(Arc::clone(&records)),
        ingest_tier: settings.tiers.default_tier().clone(),
        roles: &[Role::Read, Role::Issue, Role::Change],
    };
    let api = LocalApi {
        authorizer,
        management,
        ingest: IngestService { records, clock },
        limits: RateLimits::new(&settings.tiers),
    };
    let admin_key = api.bootstrap_if_empty().await?;
    if let (Some(key), Some(file)) = (&admin_key, &config.admin_key_file) {
        write_secret_file(file, key).await.map_err(data_dir_error)?;
    }
    Ok((api, admin_key))
}

/// Writes `text` to a new file readable by its owner only.
async fn write_secret_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (path, text) = (path.to_owned(), text.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
        file.write_all(text.as_bytes())
    })
    .await?
}

impl<S, R> LocalApi<S, R>
where
    S: KeyStore + AuditLog + DatasourceStore + 'static,
    R: RecordStore,
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

    /// One request, as the deployed stack answers it.
    pub async fn answer(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Reply {
        let path = uri.path();
        let request_id = uuid::Uuid::now_v7().to_string();
        let decision = match self.authorizer.handle_event(&authorizer_event(method, path, headers, &request_id)).await {
            Ok(bytes) => serde_json::from_slice::<Value>(&bytes).expect("the authorizer answers JSON"),
            // API Gateway answers an authorizer failure with 5xx, rendered as SERVICE_UNAVAILABLE.
            Err(_) => return Reply::error(&ApiError::ServiceUnavailable),
        };
        let context = &decision["context"];
        if decision["policyDocument"]["Statement"][0]["Effect"] != "Allow" {
            let status = context["error_status"].as_str().and_then(|s| s.parse().ok()).unwrap_or(401);
            let body = context["error_body"].as_str().map(str::to_owned);
            return Reply { status, headers: Vec::new(), body };
        }
        let field = |name: &str| context.get(name).and_then(Value::as_str);
        if let Err(limited) = self.limits.check(field("tier"), field("principal")) {
            return Reply::error(&limited);
        }
        let caller = Caller::from_authorizer_context(field, Some(request_id));
        let query: HashMap<String, String> =
            uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
        let trimmed = path.strip_suffix('/').unwrap_or(path);
        if trimmed == "/ingest" {
            // Kept even when unreadable, so that validation refuses it (as the function does).
            let key = headers.get("idempotency-key").map(|v| String::from_utf8_lossy(v.as_bytes()));
            return self.ingest.handle(method.as_str(), path, caller, key.as_deref(), body).await;
        }
        let request = ManagementRequest {
            method: method.as_str(),
            path,
            query: |name: &str| query.get(name).map(String::as_str),
            body,
            caller,
        };
        self.management.handle(request).await
    }
}

/// The REQUEST authorizer event API Gateway would send for this request.
fn authorizer_event(method: &Method, path: &str, headers: &HeaderMap, request_id: &str) -> Vec<u8> {
    // Every header, its bytes as text (lossily): a garbled credential header must still count,
    // as a malformed or conflicting credential, not vanish.
    let mut single: HashMap<&str, String> = HashMap::new();
    let mut multi: HashMap<&str, Vec<String>> = HashMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        single.insert(name.as_str(), value.clone());
        multi.entry(name.as_str()).or_default().push(value);
    }
    let event = json!({
        "type": "REQUEST",
        "methodArn": format!("arn:aws:execute-api:local:000000000000:latchkey/local/{method}{path}"),
        "resource": path,
        "path": path,
        "httpMethod": method.as_str(),
        "headers": single,
        "multiValueHeaders": multi,
        "requestContext": {"requestId": request_id, "stage": "local", "httpMethod": method.as_str(), "path": path},
    });
    serde_json::to_vec(&event).expect("serializes")
}

/// The HTTP side: every path and method to [`LocalApi::answer`].
pub fn router<S, R>(api: Arc<LocalApi<S, R>>) -> axum::Router
where
    S: KeyStore + AuditLog + DatasourceStore + 'static,
    R: RecordStore + 'static,
{
    // The body is read in `handle` (bounded there), so an oversized one gets the gateway's answer.
    axum::Router::new().fallback(handle).layer(axum::extract::DefaultBodyLimit::disable()).with_state(api)
}

async fn handle<S, R>(
    State(api): State<Arc<LocalApi<S, R>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response<Body>
where
    S: KeyStore + AuditLog + DatasourceStore + 'static,
    R: RecordStore + 'static,
{
    let reply = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(body) => api.answer(&method, &uri, &headers, &body).await,
        Err(_) => Reply { status: 413, headers: Vec::new(), body: Some(REQUEST_TOO_LARGE_BODY.to_owned()) },
    };
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
    S: KeyStore + AuditLog + DatasourceStore + 'static,
    R: RecordStore + 'static,
{
    axum::serve(listener, router(api)).with_graceful_shutdown(shutdown).await
}

/// The wall clock, for `main`.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// How long a client is told to wait after a 429, at least.
pub(crate) const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);
