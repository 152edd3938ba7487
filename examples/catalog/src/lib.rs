//! A backend of the kind Latchkey protects: a catalog of data sources, `GET /v1/catalog/sources`
//! in the style of seed 000. It does no authentication of its own: it trusts the caller that
//! Latchkey's gateway hands it in `X-Latchkey-*` headers, so it must only be reachable through the
//! gateway (deployed: the API's integration; locally: a loopback port). It follows Latchkey's
//! documented convention for the backend's own routes: GET and HEAD need `read`, other methods
//! `write`.

use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// The caller as Latchkey's gateway describes it.
struct Caller {
    tenant_id: String,
    key_id: String,
    tier: String,
    permissions: Vec<String>,
}

impl Caller {
    fn from_headers(headers: &HeaderMap) -> Result<Self, Refusal> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let tenant_id = header("x-latchkey-tenant-id");
        if tenant_id.is_empty() {
            // Not through the gateway: nobody vouches for this caller.
            return Err(Refusal(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "Call this API through Latchkey".into()));
        }
        let permissions = header("x-latchkey-permissions").split(',').map(str::to_owned).collect();
        Ok(Self { tenant_id, key_id: header("x-latchkey-key-id"), tier: header("x-latchkey-tier"), permissions })
    }

    fn require(&self, permission: &str) -> Result<(), Refusal> {
        if self.permissions.iter().any(|p| p == permission) {
            Ok(())
        } else {
            Err(Refusal(StatusCode::FORBIDDEN, "INSUFFICIENT_PERMISSIONS", format!("This needs `{permission}`")))
        }
    }

    fn view(&self) -> Value {
        json!({"tenant_id": self.tenant_id, "key_id": self.key_id, "tier": self.tier})
    }
}

/// An answer in Latchkey's envelope, so clients see one error shape from the whole API.
struct Refusal(StatusCode, &'static str, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let Refusal(status, code, message) = self;
        (status, Json(json!({"success": false, "error": {"code": code, "message": message}}))).into_response()
    }
}

fn sources() -> Value {
    json!([
        {"id": "fda-labels", "name": "FDA drug labels", "records": 148_201},
        {"id": "ema-epar", "name": "EMA public assessment reports", "records": 2_317},
        {"id": "who-atc", "name": "WHO ATC classification", "records": 6_331},
    ])
}

async fn list(headers: HeaderMap) -> Response {
    let caller = match Caller::from_headers(&headers).and_then(|c| c.require("read").map(|()| c)) {
        Ok(caller) => caller,
        Err(refused) => return refused.into_response(),
    };
    Json(json!({"sources": sources(), "caller": caller.view()})).into_response()
}

async fn one(headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(refused) = Caller::from_headers(&headers).and_then(|c| c.require("read")) {
        return refused.into_response();
    }
    match sources().as_array().unwrap().iter().find(|s| s["id"] == id.as_str()) {
        Some(source) => Json(source.clone()).into_response(),
        None => Refusal(StatusCode::NOT_FOUND, "NOT_FOUND", "No such source".into()).into_response(),
    }
}

async fn create(headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let caller = match Caller::from_headers(&headers).and_then(|c| c.require("write").map(|()| c)) {
        Ok(caller) => caller,
        Err(refused) => return refused.into_response(),
    };
    (StatusCode::CREATED, Json(json!({"source": body, "created_by": caller.view()}))).into_response()
}

/// The catalog's routes.
pub fn app() -> axum::Router {
    axum::Router::new().route("/v1/catalog/sources", get(list).post(create)).route("/v1/catalog/sources/{id}", get(one))
}
