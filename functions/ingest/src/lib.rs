//! The ingest function behind `POST /ingest`: the records of a request stored under the calling
//! key's datasource ([`latchkey::ingest`]). This crate reads the `lambda_http` request and wires
//! the runtime; the rules are the domain's.

pub mod setup;

use lambda_http::{Body, Request, RequestExt, Response};
use latchkey::ApiError;
use latchkey::ingest::RecordStore;
use latchkey::ingest::service::IngestService;
use latchkey::manage::Reply;

/// The function's `main`: logging, the cold start, then the Lambda runtime.
pub async fn run() -> Result<(), lambda_http::Error> {
    latchkey::aws::init_logging();
    let service = setup::from_env().await?;
    let service = &service;
    lambda_http::run(lambda_http::service_fn(move |request| async move {
        Ok::<_, std::convert::Infallible>(respond(service, request).await)
    }))
    .await
}

/// Answers one API Gateway (REST, proxy integration) request.
pub async fn respond<R: RecordStore>(service: &IngestService<R>, request: Request) -> Response<Body> {
    let path = request.raw_http_path();
    let reply = match (request.method().as_str(), path.strip_suffix('/').unwrap_or(path)) {
        ("POST", "/ingest") => {
            let key = latchkey::lambda::header(&request, "idempotency-key");
            service.ingest(latchkey::lambda::caller(&request), key, request.body().as_ref()).await
        }
        (_, "/ingest") => Reply::error(&ApiError::MethodNotAllowed { allowed: &["POST"] }),
        _ => Reply::error(&ApiError::NotFound),
    };
    latchkey::lambda::response(reply)
}
