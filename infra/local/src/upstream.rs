//! The local gateway: a request for a path that is not Latchkey's, once the authorizer allowed
//! it and the key's tier let it through, goes to the team's backend (`LATCHKEY_UPSTREAM`) as the
//! deployed stack's `HTTP_PROXY` integration sends it: method, path, query string and body
//! unchanged, streamed both ways; the caller's headers from the authorizer's context
//! (`X-Latchkey-*`, [`latchkey::upstream::CALLER_HEADERS`]); never the key, never a client's own
//! `X-Latchkey-*`. A backend that cannot be reached or breaks off is `502 BAD_GATEWAY`; one that
//! has not begun to answer within the timeout is `504 GATEWAY_TIMEOUT`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::BoxError;
use axum::body::Body;
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use latchkey::ApiError;
use latchkey::upstream::{CALLER_HEADERS, is_reserved_header};
use tokio::time::{Instant, Sleep};

/// API Gateway's integration timeout, the default of `LATCHKEY_UPSTREAM_TIMEOUT_SECONDS`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(29);

/// The hop-by-hop headers of RFC 9110 §7.6.1 (and `proxy-connection`, `keep-alive`, which
/// clients still send): they describe one connection, so a proxy never passes them on.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// [`CALLER_HEADERS`]' names, parsed once (a name given as text is parsed on every insert).
static CALLER_HEADER_NAMES: std::sync::LazyLock<Vec<HeaderName>> =
    std::sync::LazyLock::new(|| CALLER_HEADERS.iter().map(|(name, _)| HeaderName::from_static(name)).collect());

/// The idle backend connections an event loop keeps for the client connections it accepts next,
/// as nginx's `keepalive 64`.
const IDLE_PER_THREAD: usize = 64;

thread_local! {
    /// Backend connections whose client connection has ended, for the next one on this thread.
    /// Per thread, like everything a request touches (`crate::threads`): a connection opened by
    /// one event loop and used by another would wake that loop twice per request.
    static IDLE: RefCell<Vec<SendRequest<Body>>> = const { RefCell::new(Vec::new()) };
}

/// The backend connection one client connection's requests take, one at a time: taken from the
/// thread's idle ones (or opened) on its first forwarded request, kept for its next, and given
/// back when the client connection ends. No pool is asked per request. (hyper's pooled client,
/// used until this, checked a connection out of a shared pool and handed each request to it
/// through a channel: that was a fifth of the gateway's own CPU per request, BENCHMARKS.md.)
///
/// It also keeps the connection's one timer for the backend's answer ([`Deadline`]).
#[derive(Default)]
pub struct BackendConnection {
    sender: Mutex<Option<SendRequest<Body>>>,
    timer: Mutex<Option<Pin<Box<Sleep>>>>,
}

impl BackendConnection {
    fn take(&self) -> Option<SendRequest<Body>> {
        self.sender.lock().expect("never held across a panic").take()
    }

    /// Keeps `sender` for this client connection's next request (a second one, which only
    /// concurrent requests would open, is given back to the thread).
    fn keep(&self, sender: SendRequest<Body>) {
        let mut slot = self.sender.lock().expect("never held across a panic");
        match slot.as_ref() {
            None => *slot = Some(sender),
            Some(_) => idle(sender),
        }
    }

    /// The deadline of a request sent now, on the connection's timer (or, for a second request
    /// at once, on a timer of its own).
    fn deadline(&self, timeout: Duration) -> Deadline<'_> {
        let at = Instant::now() + timeout;
        let timer = self.timer.lock().expect("never held across a panic").take();
        Deadline { at, timer: Some(timer.unwrap_or_else(|| Box::pin(tokio::time::sleep_until(at)))), home: self }
    }
}

impl Drop for BackendConnection {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.get_mut().ok().and_then(Option::take) {
            idle(sender);
        }
    }
}

/// When the backend's answer is late. One timer per client connection, not one per request:
/// a build without any timer spent 5 % less CPU a forwarded request, this one 3 % less
/// (BENCHMARKS.md).
/// The timer is left where an earlier request set it, which is never later than this request's
/// deadline; when it goes off before the deadline, it is set again to the deadline. So a request
/// times out exactly at its deadline, and the timer moves at most once per timeout.
struct Deadline<'c> {
    at: Instant,
    /// Given back to the connection when the request is done.
    timer: Option<Pin<Box<Sleep>>>,
    home: &'c BackendConnection,
}

impl Future for Deadline<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let at = self.at;
        let Some(timer) = self.timer.as_mut() else { return Poll::Ready(()) };
        while timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= at {
                return Poll::Ready(());
            }
            timer.as_mut().reset(at);
        }
        Poll::Pending
    }
}

impl Drop for Deadline<'_> {
    fn drop(&mut self) {
        let mut slot = self.home.timer.lock().expect("never held across a panic");
        if slot.is_none() {
            *slot = self.timer.take();
        }
    }
}

/// Keeps `sender` for the thread's next client connection, if it is still open and there is room.
/// A thread that is ending (its idle list already gone) drops it instead.
fn idle(sender: SendRequest<Body>) {
    if !sender.is_closed() {
        let _ending = IDLE.try_with(|idle| {
            let mut idle = idle.borrow_mut();
            if idle.len() < IDLE_PER_THREAD {
                idle.push(sender);
            }
        });
    }
}

#[derive(Debug, Clone)]
pub struct Upstream {
    /// `scheme://authority` and a base path without its trailing slash.
    base: String,
    /// `host:port`, connected to, and the `Host` the backend is sent.
    authority: String,
    host: HeaderValue,
    /// The base path without its trailing slash (empty for none), put before each request's path.
    base_path: String,
    timeout: Duration,
}

impl Upstream {
    /// `url`: `http://HOST:PORT[/base]`. HTTPS backends are for the deployed stack (API Gateway
    /// speaks TLS to them); locally the backend is on this machine.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            return Err(format!("`{url}` is not an http://HOST:PORT URL"));
        }
        if uri.query().is_some() {
            return Err(format!("`{url}` has a query string; the request's own is passed on"));
        }
        let authority = uri.authority().expect("checked");
        let base_path = uri.path().trim_end_matches('/').to_owned();
        Ok(Self {
            base: format!("http://{authority}{base_path}"),
            // Without a port, HTTP's.
            authority: match authority.port() {
                Some(_) => authority.as_str().to_owned(),
                None => format!("{}:80", authority.host()),
            },
            host: HeaderValue::from_str(authority.as_str()).map_err(|e| format!("`{url}`: {e}"))?,
            base_path,
            timeout,
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// Sends the request on, on `connection`, and streams the answer back. `caller`: the
    /// authorizer context's field by name.
    pub async fn forward<'c>(
        &self,
        connection: &BackendConnection,
        method: Method,
        uri: &Uri,
        mut headers: HeaderMap,
        body: Body,
        caller: impl Fn(&str) -> Option<&'c str>,
    ) -> Result<Response<Body>, ApiError> {
        let target = self.target(uri)?;
        strip_hop_by_hop(&mut headers);
        // The backend's own Host, as API Gateway's HTTP_PROXY integration sends it.
        headers.insert(header::HOST, self.host.clone());
        // The key, and a client's own caller headers in any spelling a backend would merge.
        let forged: Vec<HeaderName> =
            headers.keys().filter(|name| is_reserved_header(name.as_str())).cloned().collect();
        for name in forged {
            headers.remove(name);
        }
        for (header, (_, field)) in CALLER_HEADER_NAMES.iter().zip(CALLER_HEADERS) {
            // An empty field (no datasource, a session's key id) is no header at all.
            let value = caller(field).filter(|value| !value.is_empty());
            if let Some(value) = value.and_then(|value| HeaderValue::from_str(value).ok()) {
                headers.insert(header.clone(), value);
            }
        }

        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = target;
        *request.headers_mut() = headers;
        let deadline = connection.deadline(self.timeout);
        let response = tokio::select! {
            biased;
            answer = self.send(connection, request) => match answer {
                Err(error) => {
                    tracing::warn!(upstream = %self.base, %error, "the backend did not answer");
                    return Err(ApiError::BadGateway);
                }
                Ok(response) => response,
            },
            () = deadline => return Err(ApiError::GatewayTimeout),
        };
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, Body::new(body)))
    }

    /// The request's path and query under the base path, in origin form (`/path?query`).
    fn target(&self, uri: &Uri) -> Result<Uri, ApiError> {
        match uri.path_and_query() {
            Some(path_and_query) if self.base_path.is_empty() => Ok(Uri::from(path_and_query.clone())),
            path_and_query => {
                let path_and_query = path_and_query.map_or("/", |p| p.as_str());
                format!("{}{path_and_query}", self.base_path).parse().map_err(|_| ApiError::BadGateway)
            }
        }
    }

    /// `request` on `connection`'s backend connection, or on one of the thread's idle ones, or
    /// on a new one. A kept connection the backend has closed meanwhile (its keep-alive timeout)
    /// is not ready, or gives the request back unsent: the request then goes on a new
    /// connection, as hyper's pooled client retries it. A request the backend may have begun to
    /// read is never sent twice.
    async fn send(
        &self,
        connection: &BackendConnection,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, BoxError> {
        let kept = connection.take().or_else(|| {
            IDLE.try_with(|idle| {
                let mut idle = idle.borrow_mut();
                std::iter::from_fn(|| idle.pop()).find(|sender| !sender.is_closed())
            })
            .ok()
            .flatten()
        });
        let request = match kept {
            None => request,
            Some(mut sender) => match sender.ready().await {
                Err(_closed) => request,
                Ok(()) => match sender.try_send_request(request).await {
                    Ok(response) => {
                        connection.keep(sender);
                        return Ok(response);
                    }
                    Err(mut failed) => match failed.take_message() {
                        Some(unsent) => unsent,
                        None => return Err(failed.into_error().into()),
                    },
                },
            },
        };
        // Boxed: a new connection is the rare path, and its future would enlarge every request's.
        let mut sender = Box::pin(self.connect()).await?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        connection.keep(sender);
        Ok(response)
    }

    async fn connect(&self) -> Result<SendRequest<Body>, BoxError> {
        let stream = tokio::net::TcpStream::connect(&self.authority).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // The connection's own task, on this event loop: it reads and writes while the sender
        // is kept, and ends once every sender is dropped.
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a backend connection ended");
            }
        });
        Ok(sender)
    }
}

/// Removes the hop-by-hop headers and every header the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none: one pass over the names instead of a lookup for each.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(&name.as_str())) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    for name in named {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_base_urls() {
        let upstream = Upstream::new("http://127.0.0.1:8080/api/", DEFAULT_TIMEOUT).unwrap();
        assert_eq!(upstream.url(), "http://127.0.0.1:8080/api");
        assert_eq!(Upstream::new("http://localhost:9", DEFAULT_TIMEOUT).unwrap().url(), "http://localhost:9");
        for bad in ["", "localhost:8080", "https://example.test", "http:///x", "http://h:1/?a=b", "ftp://h"] {
            assert!(Upstream::new(bad, DEFAULT_TIMEOUT).is_err(), "{bad}");
        }
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_go() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("x-private", "hop"),
            ("x-end-to-end", "kept"),
            ("content-type", "text/plain"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(|name| name.as_str()).collect();
        left.sort();
        assert_eq!(left, ["content-type", "x-end-to-end"]);
    }
}
