//! The dashboard's files ([`latchkey_dashboard`]) at `/dashboard`, as axum answers; `/` leads
//! there when no upstream is configured.

use axum::body::Body;
use axum::http::{Method, Response, StatusCode, header};

pub use latchkey_dashboard::{PATH, owns};

/// The file at `path`, or `None` for a path that is not the dashboard's.
pub fn serve(method: &Method, path: &str) -> Option<Response<Body>> {
    let page = latchkey_dashboard::serve(method.as_str(), path, "")?;
    let mut response = Response::builder().status(page.status);
    for (name, value) in page.headers {
        response = response.header(name, value);
    }
    Some(response.body(Body::from(page.body)).expect("static headers are valid"))
}

/// `/` when nothing else answers it (no upstream): to the dashboard.
pub fn redirect() -> Response<Body> {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, PATH)
        .body(Body::empty())
        .expect("static headers are valid")
}
