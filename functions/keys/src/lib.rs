//! The management functions behind `/keys`, `/datasources`, `/whoami` and `/audit`. The operations and the
//! routing are the domain's ([`latchkey::manage`]); this crate turns a `lambda_http` request into a
//! [`ManagementRequest`] and the [`Reply`] back into a response, and builds each function from its
//! environment. The three API binaries differ only in the [`Role`]s they serve:
//!
//! | function | routes | reads the pepper | API Gateway keys |
//! |---|---|---|---|
//! | `keys-read` | `GET /keys`, `GET /keys/{id}`, `GET /keys/{id}/usage`, `GET /whoami`, `GET /audit`, `GET /datasources`, `GET /datasources/{id}`, `GET /datasources/{id}/records` | no | usage counts only |
//! | `keys-issue` | `POST /keys`, `POST /keys/{id}/rotate`, `POST /datasources`, `POST /datasources/{id}/regenerate-key`, `POST /sessions`, `POST /leaks`, `POST /leaks/github` (no authorizer: GitHub signs it) | yes | creates (and deletes on failure) |
//! | `keys-change` | `PATCH /keys/{id}`, `DELETE /keys/{id}`, `DELETE /datasources/{id}` | no | moves between plans, deletes |
//! | `keys-sweep` | none: a schedule runs it ([`latchkey::manage::sweep`]) | no | deletes those of keys that stopped |

pub mod setup;

use lambda_http::{Body, Request, RequestExt, Response};
use latchkey::audit::AuditLog;
use latchkey::datasource::DatasourceStore;
use latchkey::gateway::GatewayKeys;
use latchkey::ingest::RecordStore;
use latchkey::leaks::github::SigningKeys;
use latchkey::manage::{Management, ManagementRequest};
use latchkey::pepper::PepperProvider;
use latchkey::store::KeyStore;

/// A function's `main`: logging, the cold start for `roles`, then the Lambda runtime.
pub async fn run(roles: &'static [latchkey::manage::Role]) -> Result<(), lambda_http::Error> {
    latchkey::aws::init_logging();
    let function = setup::from_env(roles).await?;
    // GitHub's reports go to the function that reads the pepper (it digests what they carry).
    let github = if roles.contains(&latchkey::manage::Role::Issue) { Some(setup::github_keys()?) } else { None };
    let (function, github) = (&function, github.as_ref());
    lambda_http::run(lambda_http::service_fn(move |request: Request| async move {
        let path = request.raw_http_path();
        let answer = match github {
            Some(keys) if path.strip_suffix('/').unwrap_or(path) == "/leaks/github" => {
                respond_github(function, keys, request).await
            }
            _ => respond(function, request).await,
        };
        Ok::<_, std::convert::Infallible>(answer)
    }))
    .await
}

/// Answers `POST /leaks/github`: a report of GitHub's secret scanning, signed by GitHub and
/// reaching the function without an authorizer.
pub async fn respond_github<S, G, P, R>(
    function: &Management<S, G, P, R>,
    keys: &SigningKeys,
    request: Request,
) -> Response<Body>
where
    S: KeyStore + latchkey::gateway::pool::GatewaySlots + AuditLog + latchkey::credits::CreditStore + DatasourceStore,
    G: GatewayKeys,
    P: PepperProvider,
    R: RecordStore + latchkey::verifications::VerificationStore,
{
    let header = |name: &str| request.headers().get(name).and_then(|value| value.to_str().ok());
    let reply = function.github_leaks(keys, request.method().as_str(), header, request.body().as_ref()).await;
    function.service.events.flush().await;
    latchkey::lambda::response(reply)
}

/// Answers one API Gateway (REST, proxy integration) request.
pub async fn respond<S, G, P, R>(function: &Management<S, G, P, R>, request: Request) -> Response<Body>
where
    S: KeyStore + latchkey::gateway::pool::GatewaySlots + AuditLog + latchkey::credits::CreditStore + DatasourceStore,
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
