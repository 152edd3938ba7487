//! The authorizer's answer: an IAM policy, a context of strings, and the usage-plan key.
//!
//! Allow and Deny both name the whole stage (`.../stage/*`): should anyone turn the gateway's
//! result cache on, a cached Allow must not lock a key out of the API's other routes.

use std::borrow::Cow;

use serde::Serialize;

use crate::Principal;
use crate::sessions::SessionUsageKeys;
use crate::verified::KeyContext;
use latchkey::ApiError;

/// `arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/PATH` → `arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/*`
pub fn stage_wildcard(method_arn: &str) -> Option<String> {
    let mut parts = method_arn.splitn(3, '/');
    let api = parts.next().filter(|api| api.starts_with("arn:") && api.split(':').count() == 6)?;
    let stage = parts.next().filter(|stage| !stage.is_empty())?;
    Some(format!("{api}/{stage}/*"))
}

/// The method and the path of the request a `methodArn` names
/// (`arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/path/to/resource`): the path as API
/// Gateway puts it there, with a leading `/`.
pub fn method_and_path(method_arn: &str) -> Option<(&str, &str)> {
    let mut parts = method_arn.splitn(4, '/');
    let (_api, _stage, method) = (parts.next()?, parts.next()?, parts.next()?);
    let path = match parts.next() {
        // The path keeps its leading `/`: it starts just before the rest.
        Some(rest) => &method_arn[method_arn.len() - rest.len() - 1..],
        None => "/",
    };
    Some((method, path))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a, C> {
    principal_id: &'a str,
    policy_document: PolicyDocument<'a>,
    context: C,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_identifier_key: Option<&'a str>,
}

#[derive(Serialize)]
struct PolicyDocument<'a> {
    #[serde(rename = "Version")]
    version: &'static str,
    #[serde(rename = "Statement")]
    statement: [Statement<'a>; 1],
}

#[derive(Serialize)]
struct Statement<'a> {
    #[serde(rename = "Action")]
    action: &'static str,
    #[serde(rename = "Effect")]
    effect: &'static str,
    #[serde(rename = "Resource")]
    resource: &'a str,
}

fn policy<'a>(effect: &'static str, resource: &'a str) -> PolicyDocument<'a> {
    PolicyDocument { version: "2012-10-17", statement: [Statement { action: "execute-api:Invoke", effect, resource }] }
}

/// What the API's handlers learn about the caller (`$context.authorizer.*`, or
/// `requestContext.authorizer` in a Lambda proxy event). Strings only, as API Gateway requires.
/// The local API reads it typed ([`AllowContext::field`]), through the same parser as the
/// deployed handlers (`Caller::from_authorizer_context`).
#[derive(Debug, Serialize)]
pub struct AllowContext<'a> {
    auth_type: &'static str,
    principal: &'a str,
    tenant_id: &'a str,
    permissions: Cow<'a, str>,
    tier: &'a str,
    /// Empty for a session. Always present, like `datasource_id`: the deployed gateway maps each
    /// to a backend header, and a mapping from a missing field would leave a client's own
    /// header of that name in place.
    key_id: &'a str,
    /// Empty for a key that is not scoped to a datasource.
    datasource_id: &'a str,
    /// The key's metadata as compact JSON, ASCII only (`{}` for none, and for a session).
    meta: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<&'a str>,
    /// The key as `GET /whoami` shows it, JSON, as this decision read it: `/whoami` answers
    /// from it with no read of its own. Empty for a session.
    key_view: &'a str,
    /// The balance of credits the key spends (its id), for `/whoami` to read; left out for a key
    /// without credits and for a session (no header is mapped from it).
    #[serde(skip_serializing_if = "str::is_empty")]
    meter: &'a str,
}

/// The error the gateway response renders: its code, message, details, and the whole envelope,
/// so the `ACCESS_DENIED` response template is just `$context.authorizer.error_body` and the
/// deployed body is byte for byte the local API's.
#[derive(Serialize)]
struct DenyContext<'a> {
    error_status: String,
    error_code: &'static str,
    error_message: String,
    error_details: String,
    error_body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<&'a str>,
}

impl<'a> AllowContext<'a> {
    /// The context of an Allow for `principal`, decided at `now`: a key's as rendered on its
    /// first Allow ([`crate::verified`]).
    pub fn of(principal: &'a Principal, now: chrono::DateTime<chrono::Utc>) -> Self {
        match principal {
            Principal::Key(key) => Self::of_key(key.record(), key.context(now)),
            Principal::Session(session) => AllowContext {
                auth_type: "jwt",
                principal: &session.subject,
                tenant_id: session.tenant_id.as_str(),
                permissions: Cow::Owned(session.permissions.to_csv()),
                tier: "internal",
                key_id: "",
                datasource_id: "",
                meta: Cow::Borrowed("{}"),
                expires_at: None,
                key_view: "",
                meter: "",
            },
        }
    }

    /// A key's context: `record`'s fields, and those rendered from it once.
    pub(crate) fn of_key(record: &'a latchkey::KeyRecord, rendered: &'a KeyContext) -> Self {
        AllowContext {
            auth_type: "api_key",
            principal: record.id.as_str(),
            tenant_id: record.tenant_id.as_str(),
            permissions: Cow::Borrowed(&rendered.permissions),
            tier: record.tier.as_str(),
            key_id: record.id.as_str(),
            datasource_id: record.datasource_id.as_ref().map_or("", |d| d.as_str()),
            meta: Cow::Borrowed(&rendered.meta),
            expires_at: rendered.expires_at.as_deref(),
            key_view: &rendered.key_view,
            meter: record.meter.as_ref().map_or("", |meter| meter.as_str()),
        }
    }

    /// A field by its name in the context (`tenant_id`, ...), as API Gateway would hand it on.
    pub fn field(&self, name: &str) -> Option<&str> {
        match name {
            "auth_type" => Some(self.auth_type),
            "principal" => Some(self.principal),
            "tenant_id" => Some(self.tenant_id),
            "permissions" => Some(&self.permissions),
            "tier" => Some(self.tier),
            "key_id" => Some(self.key_id),
            "datasource_id" => Some(self.datasource_id),
            "meta" => Some(&self.meta),
            "expires_at" => self.expires_at,
            "key_view" => Some(self.key_view),
            "meter" => Some(self.meter),
            _ => None,
        }
    }
}

pub fn allow(
    principal: &Principal,
    resource: &str,
    session_keys: Option<&SessionUsageKeys>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<u8> {
    match principal {
        // A key's own gateway key (made before the pool) until it stops, else its lease; its
        // context as rendered on its first Allow.
        Principal::Key(key) => {
            let usage_identifier_key =
                key.gateway_key.as_ref().map(|g| g.value.as_str()).or(key.lease.as_ref().map(|l| l.value.as_str()));
            let response = Response {
                principal_id: key.id.as_str(),
                policy_document: policy("Allow", resource),
                usage_identifier_key,
                context: &*key.context(now).json,
            };
            serde_json::to_vec(&response).expect("a policy always serializes")
        }
        Principal::Session(session) => {
            let context = AllowContext::of(principal, now);
            let response = Response {
                principal_id: context.principal,
                policy_document: policy("Allow", resource),
                usage_identifier_key: session_keys.map(|keys| keys.for_tenant(&session.tenant_id)),
                context,
            };
            serde_json::to_vec(&response).expect("a policy always serializes")
        }
    }
}

pub fn deny(error: &ApiError, resource: &str, key_id: Option<&str>) -> Vec<u8> {
    let details: serde_json::Map<String, serde_json::Value> =
        error.details().into_iter().map(|(k, v)| (k.to_owned(), v.into())).collect();
    let context = DenyContext {
        error_status: error.status().to_string(),
        error_code: error.code(),
        error_message: error.to_string(),
        error_details: serde_json::Value::Object(details).to_string(),
        error_body: error.to_json(),
        key_id,
    };
    let response = Response {
        principal_id: key_id.unwrap_or("anonymous"),
        policy_document: policy("Deny", resource),
        context,
        usage_identifier_key: None,
    };
    serde_json::to_vec(&response).expect("a policy always serializes")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_method_arn_names_the_method_and_the_path() {
        let arn = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/v1/orders/42";
        assert_eq!(method_and_path(arn), Some(("GET", "/v1/orders/42")));
        assert_eq!(method_and_path("arn:aws:execute-api:us-east-1:1:abc/prod/POST/"), Some(("POST", "/")));
        assert_eq!(method_and_path("arn:aws:execute-api:us-east-1:1:abc/prod/GET"), Some(("GET", "/")));
        assert_eq!(method_and_path("arn:aws:execute-api:us-east-1:1:abc/prod"), None);
    }

    use super::*;
    use std::sync::Arc;

    /// The local API reads the context by field; the deployed handlers read the JSON: the two
    /// must be the same fields with the same values, whatever the principal.
    #[test]
    fn the_typed_context_is_the_serialized_one() {
        use latchkey::{KeyProfile, KeyRecord, KeySpec, PepperVersion, Permission};
        let hasher = latchkey::KeyHasher::new(&[7u8; 32], PepperVersion::new("v1"));
        let spec = |datasource: Option<&str>| KeySpec {
            tenant_id: "acme".parse().unwrap(),
            name: "k".into(),
            permissions: [Permission::Read, Permission::Write].into_iter().collect(),
            tier: "starter".parse().unwrap(),
            expires_at: Some("2100-01-01T00:00:00Z".parse().unwrap()),
            datasource_id: datasource.map(|d| d.parse().unwrap()),
            replaces: None,
            owner_id: None,
            meta: Default::default(),
            enabled: true,
            ip_allowlist: Default::default(),
            meter: None,
        };
        let now = "2099-01-01T00:00:00Z".parse().unwrap();
        let datasource = latchkey::DatasourceId::generate().to_string();
        let principals = [
            Principal::Key(Arc::new(KeyRecord::issue(&KeyProfile::latchkey(), &hasher, spec(None), now).1.into())),
            Principal::Key(Arc::new(
                KeyRecord::issue(&KeyProfile::latchkey(), &hasher, spec(Some(&datasource)), now).1.into(),
            )),
            Principal::Session(crate::jwt::Session {
                subject: "user-1".into(),
                tenant_id: "acme".parse().unwrap(),
                permissions: [Permission::Read].into_iter().collect(),
            }),
        ];
        for principal in &principals {
            let context = AllowContext::of(principal, now);
            // What the Allow carries: a key's context as rendered once, a session's as built.
            let allowed: serde_json::Value = serde_json::from_slice(&allow(principal, "arn", None, now)).unwrap();
            let fields = allowed["context"].as_object().unwrap();
            assert_eq!(fields, serde_json::to_value(&context).unwrap().as_object().unwrap());
            for (name, value) in fields {
                assert_eq!(context.field(name), value.as_str(), "{name}");
            }
            for name in [
                "auth_type",
                "principal",
                "tenant_id",
                "permissions",
                "tier",
                "key_id",
                "datasource_id",
                "meta",
                "expires_at",
                "key_view",
            ] {
                assert_eq!(context.field(name).is_some(), fields.contains_key(name), "{name}");
            }
        }
    }

    #[test]
    fn wildcard_covers_the_stage() {
        assert_eq!(
            stage_wildcard("arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/prod/GET/keys/key_1").as_deref(),
            Some("arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/prod/*")
        );
        assert_eq!(
            stage_wildcard("arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/prod/POST/").as_deref(),
            Some("arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/prod/*")
        );
        for bad in [
            "",
            "arn:aws:execute-api",
            "arn:aws:execute-api:eu-west-1:1:api",
            "arn:aws:execute-api:r:1:api//GET",
            "nope/prod/GET",
        ] {
            assert_eq!(stage_wildcard(bad), None, "{bad}");
        }
    }
}
