//! The dashboard ("Settings → API Keys"): four static files from `dashboard/`, compiled into the
//! binary, served at `/dashboard` without the authorizer (they hold nothing: every datum comes
//! from the public API, with the session the page signs in for). A strict Content-Security-Policy:
//! scripts and styles from this origin only, no inline script, requests to this origin only.

use axum::body::Body;
use axum::http::{Method, Response, StatusCode, header};

const INDEX: &str = include_str!("../../../dashboard/index.html");
const SCRIPT: &str = include_str!("../../../dashboard/app.js");
const STYLE: &str = include_str!("../../../dashboard/app.css");
const ICON: &str = include_str!("../../../dashboard/icon.svg");

/// Where the dashboard is served (a path the gateway never forwards).
pub const PATH: &str = "/dashboard";

/// `frame-ancestors *`: a provider may embed the page in its own.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors *";

/// Whether `path` is the dashboard's.
pub fn owns(path: &str) -> bool {
    path == PATH || path.starts_with("/dashboard/")
}

/// The file at `path` (a GET or HEAD), or `None` for a path that is not the dashboard's.
pub fn serve(method: &Method, path: &str) -> Option<Response<Body>> {
    if !owns(path) {
        return None;
    }
    let file = match path {
        "/dashboard" | "/dashboard/" | "/dashboard/index.html" => Some((INDEX, "text/html; charset=utf-8")),
        "/dashboard/app.js" => Some((SCRIPT, "text/javascript; charset=utf-8")),
        "/dashboard/app.css" => Some((STYLE, "text/css; charset=utf-8")),
        "/dashboard/icon.svg" => Some((ICON, "image/svg+xml")),
        _ => None,
    };
    let response = Response::builder()
        .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer");
    Some(
        match (file, method) {
            (None, _) => response
                .status(StatusCode::NOT_FOUND)
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("not found")),
            (Some(_), m) if m != Method::GET && m != Method::HEAD => {
                response.status(StatusCode::METHOD_NOT_ALLOWED).header(header::ALLOW, "GET, HEAD").body(Body::empty())
            }
            (Some((text, kind)), _) => response
                .header(header::CONTENT_TYPE, kind)
                // Revalidated on each load: a new binary serves new files at once.
                .header(header::CACHE_CONTROL, "no-cache")
                .body(Body::from(text)),
        }
        .expect("static headers are valid"),
    )
}

/// `/` when nothing else answers it (no upstream): to the dashboard.
pub fn redirect() -> Response<Body> {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, PATH)
        .body(Body::empty())
        .expect("static headers are valid")
}
