//! `dashboard`: `GET /dashboard` and its files, without the authorizer ([`latchkey_dashboard`]).

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::run(service_fn(|request: Request| async move { Ok::<_, std::convert::Infallible>(answer(&request)) }))
        .await
}

fn answer(request: &Request) -> Response<Body> {
    // The path below the stage, and what comes before it (the stage, or a custom domain's base
    // path): the page's requests go to the same base path.
    let path = request.raw_http_path();
    let base = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context
            .path
            .as_deref()
            .and_then(|full| full.strip_suffix(path))
            .map(str::to_owned)
            .unwrap_or_else(|| context.stage.as_deref().map(|stage| format!("/{stage}")).unwrap_or_default()),
        _ => String::new(),
    };
    let page =
        latchkey_dashboard::serve(request.method().as_str(), path, &base).unwrap_or_else(|| latchkey_dashboard::Page {
            status: 404,
            headers: vec![("content-type", "text/plain".into())],
            body: "not found".into(),
        });
    let mut response = Response::builder().status(page.status);
    for (name, value) in page.headers {
        response = response.header(name, value);
    }
    response.body(Body::Text(page.body)).expect("static headers are valid")
}
