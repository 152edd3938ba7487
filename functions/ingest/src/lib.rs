//! The ingest function behind `POST /ingest`: the records of a request stored under the calling
//! key's datasource ([`latchkey::ingest`]). This crate reads the `lambda_http` request and wires
//! the runtime; the rules are the domain's.

pub mod setup;

use lambda_http::{Body, Request, RequestExt, Response};
use latchkey::datasource::DatasourceStore;
use latchkey::ingest::RecordStore;
use latchkey::ingest::service::IngestService;

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
pub async fn respond<R: RecordStore, D: DatasourceStore>(
    service: &IngestService<R, D>,
    request: Request,
) -> Response<Body> {
    let key = latchkey::lambda::header(&request, "idempotency-key");
    let caller = latchkey::lambda::caller(&request);
    let reply = service
        .handle(request.method().as_str(), request.raw_http_path(), caller, key.as_deref(), request.body().as_ref())
        .await;
    latchkey::lambda::response(reply)
}
