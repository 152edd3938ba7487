//! A local API of a test's own: in process, on a free port, on a data directory of the test's.

#![allow(dead_code)]

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use latchkey::config::Env;
use latchkey_local::LocalConfig;
use reqwest::{Client, Method, Response};
use serde_json::Value;
use tokio::sync::oneshot;

pub struct Running {
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    sweep: tokio::task::AbortHandle,
    flusher: tokio::task::AbortHandle,
    pub admin_key: Option<String>,
    /// One client for the instance's requests: a `reqwest::Client` per request costs about 17 ms
    /// of a debug build's CPU (its TLS configuration), most of what a local test spends.
    client: Client,
    /// Writes the verification counts now ([`latchkey_local::LocalApi::flush_verifications`]).
    flush: Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.sweep.abort();
        self.flusher.abort();
    }
}

impl Running {
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(dir, None).await
    }

    /// On DynamoDB when `tables` (keys, records) are given, else on the embedded store.
    pub async fn start_with(dir: &Path, tables: Option<(String, String)>) -> Self {
        Self::start_configured(dir, tables, &[]).await
    }

    /// With variables of the test's own, which win over the ones set here; an empty value
    /// leaves the variable unset (its default applies).
    pub async fn start_configured(dir: &Path, tables: Option<(String, String)>, vars: &[(&str, &str)]) -> Self {
        let admin_file = dir.join("admin-key");
        let (data, file) = (dir.join("data").display().to_string(), admin_file.display().to_string());
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let env = Env::from_fn(move |name| {
            if let Some((_, value)) = vars.iter().find(|(var, _)| var == name) {
                return Some(value.clone()).filter(|value| !value.is_empty());
            }
            match name {
                "LATCHKEY_DATA_DIR" => Some(data.clone()),
                "LATCHKEY_ADMIN_KEY_FILE" => Some(file.clone()),
                _ => None,
            }
        });
        let mut config = LocalConfig::from_env(&env).unwrap();
        config.tables = tables;
        if config.tables.is_some() {
            let (api, admin_key) =
                latchkey_local::open_dynamodb(&config, latchkey_local::system_clock()).await.unwrap();
            return Self::serving(Arc::new(api), admin_key).await;
        }
        // A stopped instance's background tasks let go of the file a moment after it stops.
        let mut opened = latchkey_local::open(&config, latchkey_local::system_clock()).await;
        for _ in 0..50 {
            if opened.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            opened = latchkey_local::open(&config, latchkey_local::system_clock()).await;
        }
        let (api, admin_key) = opened.unwrap();
        Self::serving(Arc::new(api), admin_key).await
    }

    async fn serving<S, R>(api: Arc<latchkey_local::LocalApi<S, R>>, admin_key: Option<String>) -> Self
    where
        S: latchkey::store::KeyStore
            + latchkey::gateway::pool::GatewaySlots
            + latchkey::audit::AuditLog
            + latchkey::credits::CreditStore
            + latchkey::datasource::DatasourceStore
            + 'static,
        R: latchkey::ingest::RecordStore + latchkey::verifications::VerificationStore + 'static,
    {
        let flushed = Arc::clone(&api);
        let flush = Arc::new(move || {
            let api = Arc::clone(&flushed);
            Box::pin(async move { api.flush_verifications().await }) as Pin<Box<dyn Future<Output = ()> + Send>>
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel();
        // As `main` runs it, beside the server.
        let sweep = tokio::spawn(latchkey_local::sweep_periodically(Arc::clone(&api))).abort_handle();
        let flusher = tokio::spawn(latchkey_local::flush_verifications_periodically(Arc::clone(&api))).abort_handle();
        let served = tokio::spawn(latchkey_local::serve(listener, api, async {
            let _ = stopped.await;
        }));
        Self { base, stop: Some(stop), served, sweep, flusher, admin_key, client: Client::new(), flush }
    }

    /// The decisions made so far, written to the store now rather than at the next minute.
    pub async fn flush_verifications(&self) {
        (self.flush)().await
    }

    pub async fn stop(mut self) {
        self.sweep.abort();
        self.flusher.abort();
        self.stop.take().unwrap().send(()).unwrap();
        (&mut self.served).await.unwrap().unwrap();
    }

    pub async fn call(&self, key: Option<&str>, method: Method, path: &str, body: Option<Value>) -> (u16, Response) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response)
    }

    pub async fn json(&self, key: Option<&str>, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, response) = self.call(key, method, path, body).await;
        let text = response.text().await.unwrap();
        latchkey_tests::capture_body(&text);
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }
}

/// The first ```sh block between `start` and `end` in the markdown file at `path` (relative to
/// the workspace root): a walk-through a test runs as written.
pub fn sh_block(path: &str, start: &str, end: &str) -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)).unwrap();
    let from = text.find(start).unwrap_or_else(|| panic!("{path} has no {start}"));
    let block = &text[from..from + text[from..].find(end).unwrap_or_else(|| panic!("{path} has no {end}"))];
    block.split("```sh\n").nth(1).and_then(|rest| rest.split("```").next()).unwrap().to_owned()
}

/// Runs `script` with bash (`-euo pipefail`), `API` and `ADMIN` set to this instance's; returns
/// its standard output, failing with both outputs if the script fails.
pub async fn run_walkthrough(api: &Running, script: String) -> String {
    let (base, admin) = (api.base.clone(), api.admin_key.clone().expect("a first admin key"));
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .env("API", base)
            .env("ADMIN", admin)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the walk-through failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    stdout.into_owned()
}
