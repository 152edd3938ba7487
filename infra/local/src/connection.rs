//! One client connection, as served: a request for the team's backend (a path that is not
//! Latchkey's, with an upstream configured) is authenticated, throttled and forwarded right here,
//! on the connection's own backend connection ([`BackendConnection`]); every other request goes to
//! the router ([`crate::router`]), with the peer's address as `ConnectInfo`.
//!
//! Forwarded requests skip the router: its matching, its extractors (which copy the request's
//! header map) and its boxed handler were a share of each forwarded request's cost, for a request
//! that has one destination (BENCHMARKS.md, "The local gateway against nginx").

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use latchkey::audit::AuditLog;
use latchkey::credits::CreditStore;
use latchkey::datasource::DatasourceStore;
use latchkey::gateway::pool::GatewaySlots;
use latchkey::ingest::RecordStore;
use latchkey::store::KeyStore;
use latchkey::verifications::VerificationStore;
use tower_service::Service;

use crate::upstream::BackendConnection;
use crate::{LocalApi, MAX_REQUEST_BYTES, render, serves, too_large};

/// Makes each accepted connection's [`ClientConnection`] (for `axum::serve`).
pub struct Connections<S, R> {
    api: Arc<LocalApi<S, R>>,
    router: axum::Router,
}

impl<S, R> Connections<S, R>
where
    S: KeyStore + GatewaySlots + AuditLog + CreditStore + DatasourceStore + 'static,
    R: RecordStore + VerificationStore + 'static,
{
    pub fn new(api: Arc<LocalApi<S, R>>) -> Self {
        Self { router: crate::router(Arc::clone(&api)), api }
    }
}

impl<S, R, L> Service<axum::serve::IncomingStream<'_, L>> for Connections<S, R>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    type Response = ClientConnection<S, R>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: axum::serve::IncomingStream<'_, L>) -> Self::Future {
        std::future::ready(Ok(ClientConnection(Arc::new(Connection {
            api: Arc::clone(&self.api),
            router: self.router.clone(),
            peer: *stream.remote_addr(),
            backend: BackendConnection::default(),
        }))))
    }
}

/// One client connection's service (cloned per request, as hyper serves it).
pub struct ClientConnection<S, R>(Arc<Connection<S, R>>);

impl<S, R> Clone for ClientConnection<S, R> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

struct Connection<S, R> {
    api: Arc<LocalApi<S, R>>,
    router: axum::Router,
    peer: SocketAddr,
    backend: BackendConnection,
}

impl<S, R> Service<Request<Body>> for ClientConnection<S, R>
where
    S: KeyStore + GatewaySlots + AuditLog + CreditStore + DatasourceStore + 'static,
    R: RecordStore + VerificationStore + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let connection = Arc::clone(&self.0);
        Box::pin(async move {
            let api = &connection.api;
            let Some(upstream) = api.upstream.as_ref().filter(|_| !serves(request.uri().path())) else {
                request.extensions_mut().insert(ConnectInfo(connection.peer));
                return connection.router.clone().call(request).await;
            };
            // Streamed, so the size is known up front only from Content-Length.
            let length = request
                .headers()
                .get(axum::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if length.is_some_and(|length| length > MAX_REQUEST_BYTES as u64) {
                return Ok(render(too_large()));
            }
            let (parts, body) = request.into_parts();
            let source = Some(connection.peer.ip());
            Ok(match api.forward(upstream, &connection.backend, parts, body, source).await {
                Ok(response) => response,
                Err(refused) => render(refused),
            })
        })
    }
}
