//! The management routes as plain HTTP: a method, a path, a query, a body and the caller in; a
//! status, headers and a JSON body out. The Lambda functions and the local API put their requests
//! through [`Management::handle`], so both answer alike.

use serde::Serialize;

use std::pin::Pin;
use std::sync::Arc;

use super::analytics::Window;
use super::datasources::Datasources;
use super::input::{PageQuery, owner_id, parse_body, status_filter};
use super::{Caller, Issuance, KeyService};
use crate::audit::AuditLog;
use crate::datasource::DatasourceStore;
use crate::gateway::GatewayKeys;
use crate::ingest::{RecordStore, Sequence};
use crate::pepper::PepperProvider;
use crate::store::KeyStore;
use crate::verifications::VerificationStore;
use crate::{ApiError, AuditId, DatasourceId, Permission, TierName};

/// A route of the management API; key ids are as they appear in the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'p> {
    CreateKey,
    /// `POST /keys/import`: a key another system issued.
    ImportKey,
    ListKeys,
    GetKey(&'p str),
    UpdateKey(&'p str),
    RotateKey(&'p str),
    RevokeKey(&'p str),
    KeyUsage(&'p str),
    KeyVerifications(&'p str),
    KeyRefusals(&'p str),
    TenantVerifications,
    Whoami,
    Audit,
    CreateDatasource,
    ListDatasources,
    GetDatasource(&'p str),
    DeleteDatasource(&'p str),
    RegenerateDatasourceKey(&'p str),
    ListRecords(&'p str),
    CreateSession,
    /// `POST /leaks`: a tenant reports one of its keys found where it must not be.
    ReportLeak,
}

/// Every management route as API Gateway names it (method, resource path) and the role that
/// serves it: what the template wires and the tests check against.
pub const ROUTES: &[(&str, &str, Role)] = &[
    ("POST", "/keys", Role::Issue),
    ("POST", "/keys/import", Role::Issue),
    ("GET", "/keys", Role::Read),
    ("GET", "/keys/{id}", Role::Read),
    ("PATCH", "/keys/{id}", Role::Change),
    ("DELETE", "/keys/{id}", Role::Change),
    ("POST", "/keys/{id}/rotate", Role::Issue),
    ("GET", "/keys/{id}/usage", Role::Read),
    ("GET", "/keys/{id}/verifications", Role::Read),
    ("GET", "/keys/{id}/refusals", Role::Read),
    ("GET", "/analytics/verifications", Role::Read),
    ("GET", "/whoami", Role::Read),
    ("GET", "/audit", Role::Read),
    ("POST", "/datasources", Role::Issue),
    ("GET", "/datasources", Role::Read),
    ("GET", "/datasources/{id}", Role::Read),
    ("DELETE", "/datasources/{id}", Role::Change),
    ("POST", "/datasources/{id}/regenerate-key", Role::Issue),
    ("GET", "/datasources/{id}/records", Role::Read),
    ("POST", "/sessions", Role::Issue),
    ("POST", "/leaks", Role::Issue),
];

/// The three management functions, split so that each holds only the permissions it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// list, get, usage, whoami, audit, datasources and their records: reads; writes nothing.
    Read,
    /// create, rotate, datasource create and regenerate-key: the only role that reads the
    /// pepper and creates API Gateway keys.
    Issue,
    /// update, revoke, datasource delete: changes records, moves or disables API Gateway keys,
    /// deletes a datasource's records.
    Change,
}

impl<'p> Route<'p> {
    /// `NOT_FOUND` for a path that is no route, `METHOD_NOT_ALLOWED` (with the allowed methods)
    /// for a route's path with another method. A trailing slash is tolerated.
    pub fn parse(method: &str, path: &'p str) -> Result<Self, ApiError> {
        let path = path.strip_suffix('/').unwrap_or(path);
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        let (allowed, route): (&'static [&'static str], Option<Route<'p>>) = match (segments.as_slice(), method) {
            (["keys"], "POST") => (&[], Some(Route::CreateKey)),
            (["keys"], "GET") => (&[], Some(Route::ListKeys)),
            (["keys"], _) => (&["GET", "POST"], None),
            (["keys", "import"], "POST") => (&[], Some(Route::ImportKey)),
            (["keys", "import"], _) => (&["POST"], None),
            (["keys", id], "GET") => (&[], Some(Route::GetKey(id))),
            (["keys", id], "PATCH") => (&[], Some(Route::UpdateKey(id))),
            (["keys", id], "DELETE") => (&[], Some(Route::RevokeKey(id))),
            (["keys", _], _) => (&["GET", "PATCH", "DELETE"], None),
            (["keys", id, "rotate"], "POST") => (&[], Some(Route::RotateKey(id))),
            (["keys", _, "rotate"], _) => (&["POST"], None),
            (["keys", id, "usage"], "GET") => (&[], Some(Route::KeyUsage(id))),
            (["keys", id, "verifications"], "GET") => (&[], Some(Route::KeyVerifications(id))),
            (["keys", id, "refusals"], "GET") => (&[], Some(Route::KeyRefusals(id))),
            (["analytics", "verifications"], "GET") => (&[], Some(Route::TenantVerifications)),
            (["whoami"], "GET") => (&[], Some(Route::Whoami)),
            (["audit"], "GET") => (&[], Some(Route::Audit)),
            (
                ["keys", _, "usage" | "verifications" | "refusals"]
                | ["analytics", "verifications"]
                | ["whoami"]
                | ["audit"],
                _,
            ) => (&["GET"], None),
            (["datasources"], "POST") => (&[], Some(Route::CreateDatasource)),
            (["datasources"], "GET") => (&[], Some(Route::ListDatasources)),
            (["datasources"], _) => (&["GET", "POST"], None),
            (["datasources", id], "GET") => (&[], Some(Route::GetDatasource(id))),
            (["datasources", id], "DELETE") => (&[], Some(Route::DeleteDatasource(id))),
            (["datasources", _], _) => (&["GET", "DELETE"], None),
            (["datasources", id, "regenerate-key"], "POST") => (&[], Some(Route::RegenerateDatasourceKey(id))),
            (["datasources", _, "regenerate-key"], _) => (&["POST"], None),
            (["datasources", id, "records"], "GET") => (&[], Some(Route::ListRecords(id))),
            (["datasources", _, "records"], _) => (&["GET"], None),
            (["sessions"], "POST") => (&[], Some(Route::CreateSession)),
            (["sessions"], _) => (&["POST"], None),
            (["leaks"], "POST") => (&[], Some(Route::ReportLeak)),
            (["leaks"], _) => (&["POST"], None),
            _ => return Err(ApiError::NotFound),
        };
        route.ok_or(ApiError::MethodNotAllowed { allowed })
    }

    pub fn role(self) -> Role {
        match self {
            Route::ListKeys
            | Route::GetKey(_)
            | Route::KeyUsage(_)
            | Route::KeyVerifications(_)
            | Route::KeyRefusals(_)
            | Route::TenantVerifications
            | Route::Whoami
            | Route::Audit
            | Route::ListDatasources
            | Route::GetDatasource(_)
            | Route::ListRecords(_) => Role::Read,
            Route::CreateKey
            | Route::ImportKey
            | Route::RotateKey(_)
            | Route::CreateDatasource
            | Route::RegenerateDatasourceKey(_)
            | Route::CreateSession
            | Route::ReportLeak => Role::Issue,
            Route::UpdateKey(_) | Route::RevokeKey(_) | Route::DeleteDatasource(_) => Role::Change,
        }
    }
}

/// Whether a request for `path` spends a credit of a key that has them ([`crate::credits`]):
/// every request for the team's backend and for `/ingest`, none for Latchkey's own management
/// routes (whatever their method: a `405` is no use of the API either).
pub fn spends_credits(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    matches!(Route::parse("GET", path), Err(ApiError::NotFound))
}

/// What a management route answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// `(name, value)` pairs besides `content-type`.
    pub headers: Vec<(&'static str, String)>,
    /// JSON; `None` for 204.
    pub body: Option<String>,
}

impl Reply {
    pub fn json<T: Serialize>(status: u16, value: &T) -> Self {
        let body = serde_json::to_string(value).expect("views always serialize");
        Self { status, headers: Vec::new(), body: Some(body) }
    }

    fn no_content() -> Self {
        Self { status: 204, headers: Vec::new(), body: None }
    }

    pub fn error(error: &ApiError) -> Self {
        let mut headers = Vec::new();
        if let ApiError::MethodNotAllowed { allowed } = error {
            headers.push(("allow", allowed.join(", ")));
        }
        if let Some(seconds) = error.retry_after_seconds() {
            headers.push(("retry-after", seconds.to_string()));
        }
        Self { status: error.status(), headers, body: Some(error.to_json()) }
    }
}

/// One HTTP request to a management route, as the function or the local API received it.
pub struct ManagementRequest<'r, Q> {
    pub method: &'r str,
    pub path: &'r str,
    /// A query string parameter by name.
    pub query: Q,
    pub body: &'r [u8],
    /// Who calls, from the authorizer's context.
    pub caller: Result<Caller, ApiError>,
}

/// A management function: the key service, the issuing dependencies where it issues keys, the
/// datasources' records, and the roles whose routes it serves.
pub struct Management<S, G, P, R> {
    pub service: KeyService<S, G>,
    pub issuance: Option<Issuance<P>>,
    /// The records table; the issuing function has none.
    pub records: Option<Arc<R>>,
    /// The tier of datasources' ingest keys.
    pub ingest_tier: TierName,
    pub roles: &'static [Role],
    /// What a report of a leaked key does to it (`LATCHKEY_LEAK_ACTION`).
    pub leak_action: crate::leaks::LeakAction,
}

impl<S, G, P, R> Management<S, G, P, R>
where
    S: KeyStore + crate::gateway::pool::GatewaySlots + AuditLog + crate::credits::CreditStore + DatasourceStore,
    G: GatewayKeys,
    P: PepperProvider,
    R: RecordStore + VerificationStore,
{
    pub async fn handle<'r, Q: Fn(&str) -> Option<&'r str>>(&self, request: ManagementRequest<'r, Q>) -> Reply {
        // On the heap: the future of every operation's branch is large, and in a debug build
        // (`cargo lambda watch`, the tests) it overflowed a 2 MiB thread stack.
        match Box::pin(self.dispatch(request)).await {
            Ok(reply) => reply,
            Err(error) => {
                if error.status() >= 500 {
                    tracing::error!(code = error.code(), "management request failed");
                }
                Reply::error(&error)
            }
        }
    }

    async fn dispatch<'r, Q: Fn(&str) -> Option<&'r str>>(
        &self,
        request: ManagementRequest<'r, Q>,
    ) -> Result<Reply, ApiError> {
        let route = Route::parse(request.method, request.path)?;
        if !self.roles.contains(&route.role()) {
            // The API routes this path and method to another function: a deployment mistake.
            tracing::error!(?route, "a route of another management function reached this one");
            return Err(ApiError::NotFound);
        }
        let mut caller = request.caller?;
        if route.role() != Role::Read {
            // The authorizer's decision may be as old as its cache TTL: a key revoked, expired or
            // downgraded since must not change keys in that window (nor mint an admin key).
            caller = self.service.as_stored_now(caller).await?;
        }
        // Who may ask comes before what was asked: a key without `admin` learns nothing about
        // the rules of a body or query it may not send (403, not 400). The operations check again.
        if route != Route::Whoami {
            caller.require(Permission::Admin)?;
        }
        let service = &self.service;
        let datasources =
            Datasources { keys: service, records: self.records.as_deref(), ingest_tier: &self.ingest_tier };
        let query = request.query;
        let body = request.body;
        Ok(match route {
            Route::CreateKey => {
                Reply::json(201, &Box::pin(service.create(self.issuance()?, &caller, parse_body(body)?)).await?)
            }
            Route::ImportKey => {
                let body = crate::manage::input::ImportKeyBody::parse(body)?;
                Reply::json(201, &Box::pin(service.import(self.issuance()?, &caller, body)).await?)
            }
            Route::ListKeys => {
                let page = PageQuery::parse(query("limit"), query("cursor"))?;
                let status = status_filter(query("status"))?;
                let owner = query("owner_id").map(owner_id).transpose()?;
                Reply::json(200, &Box::pin(service.list(&caller, page, status, owner)).await?)
            }
            Route::GetKey(id) => Reply::json(200, &Box::pin(service.get(&caller, id)).await?),
            Route::UpdateKey(id) => Reply::json(200, &Box::pin(service.update(&caller, id, parse_body(body)?)).await?),
            Route::RotateKey(id) => Reply::json(
                201,
                &Box::pin(datasources.rotate_key(self.issuance()?, &caller, id, parse_body(body)?)).await?,
            ),
            Route::RevokeKey(id) => {
                Box::pin(service.revoke(&caller, id)).await?;
                Reply::no_content()
            }
            Route::KeyUsage(_) => self.verifications(&caller, route, None, query("days")).await?,
            Route::KeyRefusals(_) => self.verifications(&caller, route, None, None).await?,
            Route::KeyVerifications(_) | Route::TenantVerifications => {
                let window = Window::parse(query("since"), query("until"), query("granularity"), service.clock.now())?;
                self.verifications(&caller, route, Some(window), None).await?
            }
            Route::Whoami => Reply::json(200, &Box::pin(service.whoami(&caller)).await?),
            Route::Audit => {
                let page = PageQuery::<AuditId>::parse(query("limit"), query("cursor"))?;
                Reply::json(200, &Box::pin(service.audit_events(&caller, page)).await?)
            }
            Route::CreateDatasource => {
                Reply::json(201, &Box::pin(datasources.create(self.issuance()?, &caller, parse_body(body)?)).await?)
            }
            Route::ListDatasources => {
                let page = PageQuery::<DatasourceId>::parse(query("limit"), query("cursor"))?;
                Reply::json(200, &Box::pin(datasources.list(&caller, page)).await?)
            }
            Route::GetDatasource(id) => Reply::json(200, &Box::pin(datasources.get(&caller, id)).await?),
            Route::DeleteDatasource(id) => {
                let deleted = Box::pin(datasources.delete(&caller, id)).await?;
                Reply::json(if deleted.deleted { 200 } else { 202 }, &deleted)
            }
            Route::RegenerateDatasourceKey(id) => {
                let body = parse_body(body)?;
                Reply::json(201, &Box::pin(datasources.regenerate_key(self.issuance()?, &caller, id, body)).await?)
            }
            Route::ListRecords(id) => {
                let page = PageQuery::<Sequence>::parse(query("limit"), query("cursor"))?;
                Reply::json(200, &Box::pin(datasources.records(&caller, id, query("since"), page)).await?)
            }
            Route::CreateSession => {
                let signer = self.issuance()?.sessions.as_ref().ok_or_else(|| {
                    tracing::error!("POST /sessions reached a function without a session secret");
                    ApiError::ServiceUnavailable
                })?;
                Reply::json(201, &Box::pin(service.start_session(signer, &caller)).await?)
            }
            Route::ReportLeak => self.report_leak(caller, parse_body(body)?).await?,
        })
    }

    /// `POST /leaks`, boxed outside `dispatch`'s frame (see [`Self::verifications`]).
    fn report_leak<'a>(
        &'a self,
        caller: Caller,
        body: crate::leaks::LeakReport,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, ApiError>> + Send + 'a>> {
        Box::pin(async move {
            let reported = self.service.report_leak(self.issuance()?, self.leak_action, caller, body).await?;
            Ok(Reply::json(200, &reported))
        })
    }

    /// The routes read from the verification counts (usage, analytics, refusals), their future
    /// made and boxed outside `dispatch`'s frame: built inline there, one more large branch
    /// overflowed a debug build's 2 MiB test thread (a debug build gives every branch's future
    /// its own stack slot).
    fn verifications<'a>(
        &'a self,
        caller: &'a Caller,
        route: Route<'a>,
        window: Option<Window>,
        days: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, ApiError>> + Send + 'a>> {
        Box::pin(async move {
            let (service, counts) = (&self.service, self.counts()?);
            match (route, window) {
                (Route::KeyUsage(id), _) => Ok(Reply::json(200, &service.usage(counts, caller, id, days).await?)),
                (Route::KeyRefusals(id), _) => Ok(Reply::json(200, &service.key_refusals(counts, caller, id).await?)),
                (Route::KeyVerifications(id), Some(window)) => {
                    Ok(Reply::json(200, &service.key_verifications(counts, caller, id, window).await?))
                }
                (_, Some(window)) => Ok(Reply::json(200, &service.tenant_verifications(counts, caller, window).await?)),
                (_, None) => Err(ApiError::Internal),
            }
        })
    }

    /// The verification counts, kept in the records table.
    fn counts(&self) -> Result<&R, ApiError> {
        self.records.as_deref().ok_or_else(|| {
            tracing::error!("a function without the records table was asked for verification counts");
            ApiError::Internal
        })
    }

    fn issuance(&self) -> Result<&Issuance<P>, ApiError> {
        self.issuance.as_ref().ok_or_else(|| {
            tracing::error!("a function without the pepper was asked to issue a key");
            ApiError::Internal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_table_is_the_router() {
        for (method, path, role) in ROUTES {
            let concrete = path.replace("{id}", "x_1");
            let route = Route::parse(method, &concrete).unwrap_or_else(|e| panic!("{method} {path}: {e:?}"));
            assert_eq!(route.role(), *role, "{method} {path}");
        }
    }

    #[test]
    fn routes_and_their_methods() {
        assert_eq!(Route::parse("POST", "/keys"), Ok(Route::CreateKey));
        assert_eq!(Route::parse("POST", "/keys/import"), Ok(Route::ImportKey));
        assert_eq!(Route::parse("GET", "/keys/import"), Err(ApiError::MethodNotAllowed { allowed: &["POST"] }));
        assert_eq!(Route::parse("GET", "/keys/"), Ok(Route::ListKeys));
        assert_eq!(Route::parse("GET", "/keys/key_1"), Ok(Route::GetKey("key_1")));
        assert_eq!(Route::parse("PATCH", "/keys/key_1"), Ok(Route::UpdateKey("key_1")));
        assert_eq!(Route::parse("DELETE", "/keys/key_1"), Ok(Route::RevokeKey("key_1")));
        assert_eq!(Route::parse("POST", "/keys/key_1/rotate"), Ok(Route::RotateKey("key_1")));
        assert_eq!(Route::parse("GET", "/keys/key_1/usage"), Ok(Route::KeyUsage("key_1")));
        assert_eq!(Route::parse("GET", "/whoami"), Ok(Route::Whoami));
        assert_eq!(Route::parse("GET", "/audit"), Ok(Route::Audit));

        assert_eq!(Route::parse("PUT", "/keys"), Err(ApiError::MethodNotAllowed { allowed: &["GET", "POST"] }));
        assert_eq!(
            Route::parse("POST", "/keys/key_1"),
            Err(ApiError::MethodNotAllowed { allowed: &["GET", "PATCH", "DELETE"] })
        );
        assert_eq!(Route::parse("GET", "/keys/key_1/rotate"), Err(ApiError::MethodNotAllowed { allowed: &["POST"] }));
        assert_eq!(Route::parse("DELETE", "/whoami"), Err(ApiError::MethodNotAllowed { allowed: &["GET"] }));
        assert_eq!(Route::parse("GET", "/"), Err(ApiError::NotFound));
        assert_eq!(Route::parse("GET", "/keys/key_1/other"), Err(ApiError::NotFound));
        assert_eq!(Route::parse("GET", "/datasources"), Ok(Route::ListDatasources));
        assert_eq!(
            Route::parse("POST", "/datasources/ds_1/regenerate-key"),
            Ok(Route::RegenerateDatasourceKey("ds_1"))
        );
        assert_eq!(Route::parse("GET", "/datasources/ds_1/records"), Ok(Route::ListRecords("ds_1")));
        assert_eq!(
            Route::parse("PATCH", "/datasources/ds_1"),
            Err(ApiError::MethodNotAllowed { allowed: &["GET", "DELETE"] })
        );
        assert_eq!(Route::parse("POST", "/ingest"), Err(ApiError::NotFound));

        let reply = Reply::error(&ApiError::MethodNotAllowed { allowed: &["GET", "POST"] });
        assert_eq!((reply.status, reply.headers), (405, vec![("allow", "GET, POST".to_owned())]));
    }
}
