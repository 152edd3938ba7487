//! An HTTP proxy in front of moto's API Gateway that throttles `CreateApiKey` as API Gateway does
//! past its 5 a second per account (`429 TooManyRequestsException`): every other one, starting with
//! the first. moto never throttles. It notes when each `CreateApiKey` arrived and how it was
//! answered, so a test can hold the caller to the pace it waited at.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;

/// A `CreateApiKey` the proxy saw: when, and whether it was throttled.
#[derive(Debug, Clone, Copy)]
pub struct Create {
    pub at: Instant,
    pub throttled: bool,
}

pub struct ThrottlingProxy {
    pub endpoint: String,
    creates: Arc<Mutex<Vec<Create>>>,
    serving: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Upstream {
    base: String,
    client: reqwest::Client,
    creates: Arc<Mutex<Vec<Create>>>,
}

impl ThrottlingProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let creates = Arc::new(Mutex::new(Vec::new()));
        let state = Upstream {
            base: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
            creates: Arc::clone(&creates),
        };
        let app = axum::Router::new().fallback(forward).with_state(state);
        let serving = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { endpoint, creates, serving }
    }

    /// Every `CreateApiKey` so far, in the order they came.
    pub fn creates(&self) -> Vec<Create> {
        self.creates.lock().unwrap().clone()
    }
}

impl Drop for ThrottlingProxy {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

async fn forward(State(upstream): State<Upstream>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if parts.method == Method::POST && parts.uri.path() == "/apikeys" {
        let mut creates = upstream.creates.lock().unwrap();
        let throttled = creates.len() % 2 == 0;
        creates.push(Create { at: Instant::now(), throttled });
        if throttled {
            return Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header("content-type", "application/json")
                .header("x-amzn-errortype", "TooManyRequestsException")
                .body(Body::from(r#"{"message":"Too Many Requests"}"#))
                .unwrap();
        }
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let body = to_bytes(body, usize::MAX).await.unwrap();
    let mut sent = upstream.client.request(parts.method.clone(), format!("{}{path}", upstream.base)).body(body);
    for (name, value) in &parts.headers {
        if name != "host" {
            sent = sent.header(name, value);
        }
    }
    let answer = sent.send().await.unwrap();
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            response = response.header(name, value);
        }
    }
    response.body(Body::from(answer.bytes().await.unwrap())).unwrap()
}
