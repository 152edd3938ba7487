//! A backend for gateway tests: a real HTTP server on a free loopback port that counts and
//! records every request it receives and answers by path:
//! - `/slow/{ms}`: waits that long, then answers 200;
//! - `/bytes/{n}`: answers `n` bytes, streamed in 64 KiB chunks;
//! - anything else: 200 with what it received (method, path and query as sent, every header
//!   value, the body's length) as JSON, and an `x-echo` header.
//!
//! Request bodies are read as a stream and counted, never held.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Request, Response};
use http_body_util::BodyExt;
use serde_json::{Value, json};

/// What the backend saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// As it arrived on the wire: percent-encoding untouched.
    pub path_and_query: String,
    /// Every (name, value), in order, repeated names repeated.
    pub headers: Vec<(String, String)>,
    pub body_len: u64,
}

impl Seen {
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }
}

pub struct EchoServer {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    served: tokio::task::JoinHandle<()>,
}

impl EchoServer {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let recorded = Arc::clone(&seen);
        let app = axum::Router::new().fallback(move |request: Request<Body>| {
            let recorded = Arc::clone(&recorded);
            async move { Ok::<_, Infallible>(answer(request, recorded).await) }
        });
        let served = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, seen, served }
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.served.abort();
    }
}

async fn answer(request: Request<Body>, recorded: Arc<Mutex<Vec<Seen>>>) -> Response<Body> {
    let (parts, mut body) = request.into_parts();
    let mut body_len = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            body_len += data.len() as u64;
        }
    }
    let seen = Seen {
        method: parts.method.to_string(),
        path_and_query: parts.uri.path_and_query().map_or("/".to_owned(), |p| p.to_string()),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body_len,
    };
    recorded.lock().unwrap().push(seen.clone());
    let path = parts.uri.path();
    if let Some(ms) = path.strip_prefix("/slow/").and_then(|ms| ms.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return Response::new(Body::from("slow"));
    }
    if let Some(n) = path.strip_prefix("/bytes/").and_then(|n| n.parse::<u64>().ok()) {
        let chunks = (0..n.div_ceil(65_536)).map(move |i| {
            let len = (n - i * 65_536).min(65_536) as usize;
            Ok::<_, Infallible>(Bytes::from(vec![b'x'; len]))
        });
        return Response::builder()
            .header("content-type", "application/octet-stream")
            .body(Body::from_stream(futures_util::stream::iter(chunks)))
            .unwrap();
    }
    let headers: Vec<Value> = seen.headers.iter().map(|(n, v)| json!([n, v])).collect();
    let echoed = json!({
        "method": seen.method, "path_and_query": seen.path_and_query, "headers": headers, "body_len": body_len,
    });
    Response::builder()
        .header("content-type", "application/json")
        .header("x-echo", "1")
        .body(Body::from(echoed.to_string()))
        .unwrap()
}
