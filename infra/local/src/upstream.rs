//! The local gateway: a request for a path that is not Latchkey's, once the authorizer allowed
//! it and the key's tier let it through, goes to the team's backend (`LATCHKEY_UPSTREAM`) as the
//! deployed stack's `HTTP_PROXY` integration sends it: method, path, query string and body
//! unchanged, streamed both ways; the caller's headers from the authorizer's context
//! (`X-Latchkey-*`, [`latchkey::upstream::CALLER_HEADERS`]); never the key, never a client's own
//! `X-Latchkey-*`. A backend that cannot be reached or breaks off is `502 BAD_GATEWAY`; one that
//! has not begun to answer within the timeout is `504 GATEWAY_TIMEOUT`.

use std::time::Duration;

use axum::body::Body;
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use latchkey::ApiError;
use latchkey::upstream::{CALLER_HEADERS, is_reserved_header};

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

thread_local! {
    /// A connection pool per thread. With one shared pool, a connection opened by one event loop
    /// (its hyper task spawned there) was taken by requests on the other: every request then woke
    /// the other thread twice (the request handed to the connection's task, its answer handed
    /// back), an eventfd write and an epoll wake-up each.
    static CLIENT: Client<HttpConnector, Body> = {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Client::builder(TokioExecutor::new()).build(connector)
    };
}

#[derive(Debug, Clone)]
pub struct Upstream {
    /// `scheme://authority` and a base path without its trailing slash.
    base: String,
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
        let base = format!("http://{}{}", uri.authority().expect("checked"), uri.path().trim_end_matches('/'));
        Ok(Self { base, timeout })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// Sends the request on and streams the answer back. `caller`: the authorizer context's
    /// field by name.
    pub async fn forward<'c>(
        &self,
        method: Method,
        uri: &Uri,
        mut headers: HeaderMap,
        body: Body,
        caller: impl Fn(&str) -> Option<&'c str>,
    ) -> Result<Response<Body>, ApiError> {
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
        let target: Uri = format!("{}{path_and_query}", self.base).parse().map_err(|_| ApiError::BadGateway)?;

        strip_hop_by_hop(&mut headers);
        // The backend's own Host, as API Gateway's HTTP_PROXY integration sends it.
        headers.remove(header::HOST);
        // The key, and a client's own caller headers in any spelling a backend would merge.
        let forged: Vec<HeaderName> =
            headers.keys().filter(|name| is_reserved_header(name.as_str())).cloned().collect();
        for name in forged {
            headers.remove(name);
        }
        for (header, field) in CALLER_HEADERS {
            // An empty field (no datasource, a session's key id) is no header at all.
            let value = caller(field).filter(|value| !value.is_empty());
            if let Some(value) = value.and_then(|value| HeaderValue::from_str(value).ok()) {
                headers.insert(*header, value);
            }
        }

        let mut request = Request::builder().method(method).uri(target).body(body).map_err(|_| ApiError::BadGateway)?;
        *request.headers_mut() = headers;
        let response = match tokio::time::timeout(self.timeout, CLIENT.with(|client| client.request(request))).await {
            Err(_elapsed) => return Err(ApiError::GatewayTimeout),
            Ok(Err(error)) => {
                tracing::warn!(upstream = %self.base, %error, "the backend did not answer");
                return Err(ApiError::BadGateway);
            }
            Ok(Ok(response)) => response,
        };
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, Body::new(body)))
    }
}

/// Removes the hop-by-hop headers and every header the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
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
