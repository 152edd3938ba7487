//! A typed client of Latchkey's public HTTP API (the routes of `openapi.yaml`), for the command
//! line and for tests. Every answer that is not a success is the API's envelope, read into
//! [`ClientError::Api`] with its code, message and field.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How long one request may take in all.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A key as the API shows it (never the key itself): the fields the command line prints, and
/// every other field kept as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    pub id: String,
    pub name: String,
    pub hint: String,
    pub tier: String,
    pub status: String,
    pub permissions: Vec<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub last_used_at: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A key just made (create, rotate): the only answer that carries the key itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssuedKey {
    pub key: String,
    #[serde(flatten)]
    pub view: Key,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyList {
    pub keys: Vec<Key>,
    pub next_cursor: Option<String>,
}

/// `POST /keys`'s body: what a new key is given.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewKey {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
}

/// `PATCH /keys/{id}`'s body: only what is given changes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KeyChanges {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// What a request can end in besides its answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API's envelope.
    #[error("{code}: {message}{}", field.as_ref().map(|f| format!(" (field: {f})")).unwrap_or_default())]
    Api { status: u16, code: String, message: String, field: Option<String> },
    #[error("{url} could not be reached: {cause}")]
    Unreachable { url: String, cause: String },
    /// An answer that is neither the documented success nor the envelope.
    #[error("unexpected answer ({status}) from {url}: {cause}")]
    Unexpected { url: String, status: u16, cause: String },
}

/// What kind of failure, for the command line's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 401, 403: the key is missing, wrong, stopped, or lacks a permission.
    Auth,
    NotFound,
    /// 400, 405, 409, 413: the request itself (fix it and send it again).
    Invalid,
    /// 429, 5xx, or no answer: try again later.
    Unavailable,
}

impl ClientError {
    pub fn failure(&self) -> Failure {
        match self {
            ClientError::Api { status: 401 | 403, .. } => Failure::Auth,
            ClientError::Api { status: 404, .. } => Failure::NotFound,
            ClientError::Api { status: 429 | 500.., .. } | ClientError::Unreachable { .. } => Failure::Unavailable,
            ClientError::Api { .. } => Failure::Invalid,
            ClientError::Unexpected { .. } => Failure::Unavailable,
        }
    }
}

/// One API and the key it is called with.
#[derive(Clone)]
pub struct Client {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish_non_exhaustive()
    }
}

impl Client {
    /// `base`: the API's URL (`http://127.0.0.1:3000`, or a stage's `https://…/prod`).
    pub fn new(base: &str, key: &str) -> Self {
        let http = reqwest::Client::builder().timeout(TIMEOUT).build().unwrap_or_default();
        Self { base: base.trim_end_matches('/').to_owned(), key: key.to_owned(), http }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let text = self.call(method, path, query, body).await?;
        let url = format!("{}{path}", self.base);
        serde_json::from_str(&text).map_err(|e| ClientError::Unexpected { url, status: 200, cause: e.to_string() })
    }

    /// The answer's body, after a success; the envelope as an error otherwise.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).header("x-api-key", &self.key).query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response =
            request.send().await.map_err(|e| ClientError::Unreachable { url: url.clone(), cause: e.to_string() })?;
        let status = response.status().as_u16();
        let text =
            response.text().await.map_err(|e| ClientError::Unreachable { url: url.clone(), cause: e.to_string() })?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        #[derive(Deserialize)]
        struct Envelope {
            error: Body,
        }
        #[derive(Deserialize)]
        struct Body {
            code: String,
            message: String,
            #[serde(default)]
            details: Map<String, Value>,
        }
        match serde_json::from_str::<Envelope>(&text) {
            Ok(Envelope { error }) => Err(ClientError::Api {
                status,
                code: error.code,
                message: error.message,
                field: error.details.get("field").and_then(Value::as_str).map(str::to_owned),
            }),
            Err(_) => Err(ClientError::Unexpected { url, status, cause: text.chars().take(200).collect() }),
        }
    }

    pub async fn whoami(&self) -> Result<Value, ClientError> {
        self.send(reqwest::Method::GET, "/whoami", &[], None::<&()>).await
    }

    pub async fn create_key(&self, key: &NewKey) -> Result<IssuedKey, ClientError> {
        self.send(reqwest::Method::POST, "/keys", &[], Some(key)).await
    }

    pub async fn list_keys(
        &self,
        limit: Option<u32>,
        cursor: Option<&str>,
        status: Option<&str>,
    ) -> Result<KeyList, ClientError> {
        let mut query = page_query(limit, cursor);
        query.extend(status.map(|status| ("status", status.to_owned())));
        self.send(reqwest::Method::GET, "/keys", &query, None::<&()>).await
    }

    pub async fn get_key(&self, id: &str) -> Result<Key, ClientError> {
        self.send(reqwest::Method::GET, &format!("/keys/{}", segment(id)), &[], None::<&()>).await
    }

    pub async fn update_key(&self, id: &str, changes: &KeyChanges) -> Result<Key, ClientError> {
        self.send(reqwest::Method::PATCH, &format!("/keys/{}", segment(id)), &[], Some(changes)).await
    }

    /// A new key replacing `id`; the old one works `grace_seconds` longer (0: stops at once).
    pub async fn rotate_key(&self, id: &str, grace_seconds: Option<u64>) -> Result<IssuedKey, ClientError> {
        let body = serde_json::json!({ "grace_period_seconds": grace_seconds });
        self.send(reqwest::Method::POST, &format!("/keys/{}/rotate", segment(id)), &[], Some(&body)).await
    }

    pub async fn revoke_key(&self, id: &str) -> Result<(), ClientError> {
        self.call(reqwest::Method::DELETE, &format!("/keys/{}", segment(id)), &[], None::<&()>).await.map(drop)
    }

    pub async fn key_usage(&self, id: &str, days: Option<u32>) -> Result<Value, ClientError> {
        let query: Vec<_> = days.map(|days| ("days", days.to_string())).into_iter().collect();
        self.send(reqwest::Method::GET, &format!("/keys/{}/usage", segment(id)), &query, None::<&()>).await
    }

    pub async fn key_verifications(&self, id: &str, granularity: Option<&str>) -> Result<Value, ClientError> {
        let query: Vec<_> = granularity.map(|g| ("granularity", g.to_owned())).into_iter().collect();
        let path = format!("/keys/{}/verifications", segment(id));
        self.send(reqwest::Method::GET, &path, &query, None::<&()>).await
    }

    pub async fn audit(&self, limit: Option<u32>, cursor: Option<&str>) -> Result<Value, ClientError> {
        let query = page_query(limit, cursor);
        self.send(reqwest::Method::GET, "/audit", &query, None::<&()>).await
    }

    /// `POST /leaks`: `key` was found at `found_at`.
    pub async fn report_leak(&self, key: &str, found_at: Option<&str>) -> Result<Value, ClientError> {
        let body = serde_json::json!({ "key": key, "found_at": found_at });
        self.send(reqwest::Method::POST, "/leaks", &[], Some(&body)).await
    }

    pub async fn create_datasource(&self, name: &str) -> Result<Value, ClientError> {
        let body = serde_json::json!({ "name": name });
        self.send(reqwest::Method::POST, "/datasources", &[], Some(&body)).await
    }

    pub async fn list_datasources(&self, limit: Option<u32>, cursor: Option<&str>) -> Result<Value, ClientError> {
        let query = page_query(limit, cursor);
        self.send(reqwest::Method::GET, "/datasources", &query, None::<&()>).await
    }

    pub async fn get_datasource(&self, id: &str) -> Result<Value, ClientError> {
        self.send(reqwest::Method::GET, &format!("/datasources/{}", segment(id)), &[], None::<&()>).await
    }

    pub async fn delete_datasource(&self, id: &str) -> Result<Value, ClientError> {
        self.send(reqwest::Method::DELETE, &format!("/datasources/{}", segment(id)), &[], None::<&()>).await
    }

    pub async fn regenerate_datasource_key(&self, id: &str, grace_seconds: Option<u64>) -> Result<Value, ClientError> {
        let body = serde_json::json!({ "grace_period_seconds": grace_seconds });
        let path = format!("/datasources/{}/regenerate-key", segment(id));
        self.send(reqwest::Method::POST, &path, &[], Some(&body)).await
    }

    pub async fn datasource_records(
        &self,
        id: &str,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Value, ClientError> {
        let query = page_query(limit, cursor);
        let path = format!("/datasources/{}/records", segment(id));
        self.send(reqwest::Method::GET, &path, &query, None::<&()>).await
    }
}

/// `limit` and `cursor`, those given.
fn page_query(limit: Option<u32>, cursor: Option<&str>) -> Vec<(&'static str, String)> {
    let limit = limit.map(|limit| ("limit", limit.to_string()));
    limit.into_iter().chain(cursor.map(|cursor| ("cursor", cursor.to_owned()))).collect()
}

/// An id as one path segment, percent-encoded: whatever it holds stays in that segment.
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
