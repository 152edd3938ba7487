//! The management functions behind `/keys`, `/datasources`, `/whoami` and `/audit`. The operations and the
//! routing are the domain's ([`latchkey::manage`]); this crate turns a `lambda_http` request into a
//! [`ManagementRequest`] and the [`Reply`] back into a response, and builds each function from its
//! environment. The three API binaries differ only in the [`Role`]s they serve:
//!
//! | function | routes | reads the pepper | API Gateway keys |
//! |---|---|---|---|
//! | `keys-read` | `GET /keys`, `GET /keys/{id}`, `GET /keys/{id}/usage`, `GET /whoami`, `GET /audit`, `GET /datasources`, `GET /datasources/{id}`, `GET /datasources/{id}/records` | no | usage counts only |
//! | `keys-issue` | `POST /keys`, `POST /keys/{id}/rotate`, `POST /datasources`, `POST /datasources/{id}/regenerate-key` | yes | creates (and deletes on failure) |
//! | `keys-change` | `PATCH /keys/{id}`, `DELETE /keys/{id}`, `DELETE /datasources/{id}` | no | moves between plans, deletes |
//! | `keys-sweep` | none: a schedule runs it ([`latchkey::manage::sweep`]) | no | deletes those of keys that stopped |

pub mod setup;

use lambda_http::{Body, Request, RequestExt, Response};
use latchkey::audit::AuditLog;
use latchkey::datasource::DatasourceStore;
use latchkey::gateway::GatewayKeys;
use latchkey::ingest::RecordStore;
use latchkey::manage::{Management, ManagementRequest};
use latchkey::pepper::PepperProvider;
use latchkey::store::KeyStore;

/// A function's `main`: logging, the cold start for `roles`, then the Lambda runtime.
pub async fn run(roles: &'static [latchkey::manage::Role]) -> Result<(), lambda_http::Error> {
    latchkey::aws::init_logging();
    let function = setup::from_env(roles).await?;
    let function = &function;
    lambda_http::run(lambda_http::service_fn(move |request| async move {
        Ok::<_, std::convert::Infallible>(respond(function, request).await)
    }))
    .await
}

/// Answers one API Gateway (REST, proxy integration) request.
pub async fn respond<S, G, P, R>(function: &Management<S, G, P, R>, request: Request) -> Response<Body>
where
    S: KeyStore + latchkey::gateway::pool::GatewaySlots + AuditLog + DatasourceStore,
    G: GatewayKeys,
    P: PepperProvider,
    R: RecordStore + latchkey::verifications::VerificationStore,
{
    let query = request.query_string_parameters_ref();
    let reply = function
        .handle(ManagementRequest {
            method: request.method().as_str(),
            // The path as the client sent it, without the stage lambda_http prefixes to the URI.
            path: request.raw_http_path(),
            query: |name: &str| query.and_then(|q| q.first(name)),
            body: request.body().as_ref(),
            caller: latchkey::lambda::caller(&request),
        })
        .await;
    // Before the function is frozen: the events the operation queued (its answer is decided).
    function.service.events.flush().await;
    latchkey::lambda::response(reply)
}
