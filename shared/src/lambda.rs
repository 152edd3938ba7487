//! The functions' side of `lambda_http`: who calls (the authorizer's context of a REST API proxy
//! event) and how a [`Reply`] becomes a response. Shared by every function behind the API.

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

use crate::ApiError;
use crate::manage::{Caller, Reply};

/// The caller from the authorizer's context (`requestContext.authorizer`). No context means the
/// route is deployed without the authorizer: an internal error, never access.
pub fn caller(request: &Request) -> Result<Caller, ApiError> {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => Caller::from_authorizer_context(
            |name| context.authorizer.fields.get(name).and_then(|value| value.as_str()),
            context.request_id.clone(),
        ),
        _ => {
            tracing::error!("not an API Gateway REST API request: no authorizer context");
            Err(ApiError::Internal)
        }
    }
}

pub fn response(reply: Reply) -> Response<Body> {
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(*name, value);
    }
    let body = match reply.body {
        Some(json) => {
            response = response.header("content-type", "application/json");
            Body::Text(json)
        }
        None => Body::Empty,
    };
    response.body(body).expect("status and headers are valid")
}

/// A header's value, if it is present. Bytes that are not visible ASCII are kept (lossily, as
/// UTF-8) so that the value's validation refuses them: dropped, a malformed `Idempotency-Key`
/// would count as absent and a retry would store its records twice.
pub fn header<'r>(request: &'r Request, name: &str) -> Option<std::borrow::Cow<'r, str>> {
    request.headers().get(name).map(|value| String::from_utf8_lossy(value.as_bytes()))
}
