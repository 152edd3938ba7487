//! The one error enum users see, and its one rendering: the envelope of DESIGN.md.
//!
//! ```json
//! {"success": false, "error": {"code": "EXPIRED_API_KEY", "message": "The API key has expired",
//!  "details": {"expired_at": "2024-01-01T00:00:00Z"}}, "message": "Unauthorized"}
//! ```
//! Every 401 also carries the top-level `"message": "Unauthorized"` of API Gateway's default
//! body, so clients written against it keep working.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::Permission;
use crate::credential::CredentialError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("An API key is required in the x-api-key or Authorization header")]
    MissingApiKey { header: &'static str },
    #[error("The x-api-key and Authorization headers carry different credentials")]
    ConflictingCredentials,
    #[error("The API key is not in a valid format")]
    InvalidApiKeyFormat,
    /// Unknown or revoked: the answer never says which.
    #[error("The API key is invalid")]
    InvalidApiKey,
    #[error("The API key has expired")]
    ExpiredApiKey { expired_at: DateTime<Utc> },
    /// Disabled by its tenant: refused until enabled again.
    #[error("The API key is disabled")]
    DisabledApiKey,
    /// The key has an IP allowlist and the request came from elsewhere (or from an address the
    /// gateway did not report). 401, not 403: every refusal of the deployed authorizer renders
    /// through one gateway response, at one status.
    #[error("The API key may not be used from this address")]
    IpNotAllowed { source_ip: Option<String> },
    /// The key's usage credits are spent (`credits.remaining` 0): refused until its refill, if
    /// it has one. 401 like every refusal of the deployed authorizer (one gateway response, one
    /// status; the guide says why not 429).
    #[error("The API key has used its credits")]
    UsageExceeded { refills_at: Option<DateTime<Utc>> },
    #[error("The token is invalid")]
    InvalidToken,
    #[error("The token has expired")]
    ExpiredToken,
    /// A signed report (GitHub's secret scanning) whose signature is missing, malformed, made by
    /// a key the signer does not publish, or does not verify: nothing in it is acted on.
    #[error("The request's signature is missing or does not verify")]
    InvalidSignature { header: &'static str },
    #[error("This key lacks the permission this operation requires")]
    InsufficientPermissions { required: Permission },
    #[error("Not found")]
    NotFound,
    #[error("{message}")]
    Conflict { message: String },
    #[error("{message}")]
    Validation { field: String, message: String },
    #[error("The request body is larger than {limit_bytes} bytes")]
    PayloadTooLarge { limit_bytes: usize },
    #[error("Method not allowed")]
    MethodNotAllowed { allowed: &'static [&'static str] },
    #[error("Too many requests")]
    RateLimited { retry_after_seconds: u64 },
    #[error("The quota for this period is used up")]
    QuotaExceeded { retry_after_seconds: u64 },
    /// API Gateway's per-region API key limit is reached: no key was created.
    #[error("No more API keys can be created: the API Gateway API key limit of this account and region is reached")]
    KeyLimitReached,
    /// The tenant has as many keys that still verify as it may (`LATCHKEY_MAX_KEYS_PER_TENANT`).
    #[error("This tenant has {limit} keys that still verify, as many as it may: revoke one first")]
    TenantKeyLimitReached { limit: u32 },
    /// Nothing about the cause reaches the caller; it is logged where it happens.
    #[error("Internal error")]
    Internal,
    /// A dependency (DynamoDB, Secrets Manager, a JWKS) is down or slow: never an allow.
    #[error("The service is temporarily unavailable")]
    ServiceUnavailable,
    /// The backend behind the gateway could not be reached or did not answer properly.
    #[error("The backend did not answer properly")]
    BadGateway,
    /// The backend behind the gateway took longer than the integration timeout.
    #[error("The backend did not answer in time")]
    GatewayTimeout,
}

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation { field: field.into(), message: message.into() }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::Conflict { message: message.into() }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::MissingApiKey { .. }
            | ApiError::ConflictingCredentials
            | ApiError::InvalidApiKeyFormat
            | ApiError::InvalidApiKey
            | ApiError::ExpiredApiKey { .. }
            | ApiError::DisabledApiKey
            | ApiError::IpNotAllowed { .. }
            | ApiError::UsageExceeded { .. }
            | ApiError::InvalidToken
            | ApiError::ExpiredToken
            | ApiError::InvalidSignature { .. } => 401,
            ApiError::InsufficientPermissions { .. } => 403,
            ApiError::NotFound => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::Conflict { .. } | ApiError::TenantKeyLimitReached { .. } => 409,
            ApiError::Validation { .. } => 400,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::RateLimited { .. } | ApiError::QuotaExceeded { .. } => 429,
            ApiError::Internal => 500,
            ApiError::KeyLimitReached => 507,
            ApiError::ServiceUnavailable => 503,
            ApiError::BadGateway => 502,
            ApiError::GatewayTimeout => 504,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingApiKey { .. } => "MISSING_API_KEY",
            ApiError::ConflictingCredentials => "CONFLICTING_CREDENTIALS",
            ApiError::InvalidApiKeyFormat => "INVALID_API_KEY_FORMAT",
            ApiError::InvalidApiKey => "INVALID_API_KEY",
            ApiError::ExpiredApiKey { .. } => "EXPIRED_API_KEY",
            ApiError::DisabledApiKey => "DISABLED_API_KEY",
            ApiError::IpNotAllowed { .. } => "IP_NOT_ALLOWED",
            ApiError::UsageExceeded { .. } => "USAGE_EXCEEDED",
            ApiError::InvalidToken => "INVALID_TOKEN",
            ApiError::ExpiredToken => "EXPIRED_TOKEN",
            ApiError::InvalidSignature { .. } => "INVALID_SIGNATURE",
            ApiError::InsufficientPermissions { .. } => "INSUFFICIENT_PERMISSIONS",
            ApiError::NotFound => "NOT_FOUND",
            ApiError::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            ApiError::Conflict { .. } => "CONFLICT",
            ApiError::Validation { .. } => "VALIDATION_ERROR",
            ApiError::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            ApiError::RateLimited { .. } => "RATE_LIMITED",
            ApiError::QuotaExceeded { .. } => "QUOTA_EXCEEDED",
            ApiError::Internal => "INTERNAL",
            ApiError::KeyLimitReached => "KEY_LIMIT_REACHED",
            ApiError::TenantKeyLimitReached { .. } => "TENANT_KEY_LIMIT_REACHED",
            ApiError::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ApiError::BadGateway => "BAD_GATEWAY",
            ApiError::GatewayTimeout => "GATEWAY_TIMEOUT",
        }
    }

    /// Details as string-valued fields, so that the same details fit the authorizer context
    /// (strings only) and the envelope.
    pub fn details(&self) -> Vec<(&'static str, String)> {
        match self {
            ApiError::MissingApiKey { header } | ApiError::InvalidSignature { header } => {
                vec![("header", (*header).to_owned())]
            }
            ApiError::ConflictingCredentials => vec![("headers", "x-api-key,authorization".to_owned())],
            ApiError::ExpiredApiKey { expired_at } => vec![("expired_at", format_time(*expired_at))],
            ApiError::IpNotAllowed { source_ip } => source_ip.iter().map(|ip| ("source_ip", ip.clone())).collect(),
            ApiError::UsageExceeded { refills_at } => {
                refills_at.iter().map(|at| ("refills_at", format_time(*at))).collect()
            }
            ApiError::InsufficientPermissions { required } => vec![("required", required.as_str().to_owned())],
            ApiError::Validation { field, .. } => vec![("field", field.clone())],
            ApiError::PayloadTooLarge { limit_bytes } => vec![("limit_bytes", limit_bytes.to_string())],
            ApiError::MethodNotAllowed { allowed } => vec![("allowed", allowed.join(","))],
            ApiError::TenantKeyLimitReached { limit } => vec![("limit", limit.to_string())],
            ApiError::RateLimited { retry_after_seconds } | ApiError::QuotaExceeded { retry_after_seconds } => {
                vec![("retry_after_seconds", retry_after_seconds.to_string())]
            }
            _ => Vec::new(),
        }
    }

    /// The `Retry-After` header value, for the 429s.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after_seconds } | ApiError::QuotaExceeded { retry_after_seconds } => {
                Some(*retry_after_seconds)
            }
            _ => None,
        }
    }

    /// The body every error is answered with.
    pub fn envelope(&self) -> Envelope {
        let details = self.details();
        Envelope {
            success: false,
            error: ErrorBody {
                code: self.code(),
                message: self.to_string(),
                details: (!details.is_empty()).then(|| details_object(&details)),
            },
            message: (self.status() == 401).then_some("Unauthorized"),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.envelope()).expect("an envelope always serializes")
    }
}

impl From<CredentialError> for ApiError {
    fn from(error: CredentialError) -> Self {
        match error {
            CredentialError::Missing { header } => ApiError::MissingApiKey { header },
            CredentialError::Conflicting => ApiError::ConflictingCredentials,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Envelope {
    pub success: bool,
    pub error: ErrorBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

fn details_object(details: &[(&'static str, String)]) -> Value {
    let map: Map<String, Value> = details.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    Value::Object(map)
}

/// Times in bodies and details: RFC 3339, UTC, `Z`, seconds precision unless finer is set.
pub fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_matches_the_design_example() {
        let expired_at = "2024-01-01T00:00:00Z".parse().unwrap();
        let body: Value = serde_json::from_str(&ApiError::ExpiredApiKey { expired_at }.to_json()).unwrap();
        assert_eq!(
            body,
            json!({"success": false, "error": {"code": "EXPIRED_API_KEY", "message": "The API key has expired",
                   "details": {"expired_at": "2024-01-01T00:00:00Z"}}, "message": "Unauthorized"})
        );
    }

    #[test]
    fn only_401s_carry_the_gateway_message() {
        for error in [ApiError::InvalidApiKey, ApiError::MissingApiKey { header: "x-api-key" }, ApiError::ExpiredToken]
        {
            let body: Value = serde_json::from_str(&error.to_json()).unwrap();
            assert_eq!(body["message"], "Unauthorized", "{error:?}");
        }
        for error in [ApiError::NotFound, ApiError::Internal, ApiError::validation("name", "too long")] {
            let body: Value = serde_json::from_str(&error.to_json()).unwrap();
            assert!(body.get("message").is_none(), "{error:?}");
        }
    }

    #[test]
    fn statuses_and_details() {
        let validation = ApiError::validation("name", "must be 1 to 100 characters");
        assert_eq!((validation.status(), validation.code()), (400, "VALIDATION_ERROR"));
        let body: Value = serde_json::from_str(&validation.to_json()).unwrap();
        assert_eq!(body["error"]["details"]["field"], "name");
        assert_eq!(body["error"]["message"], "must be 1 to 100 characters");
        assert_eq!(ApiError::RateLimited { retry_after_seconds: 1 }.retry_after_seconds(), Some(1));
        assert_eq!(ApiError::ServiceUnavailable.status(), 503);
        let internal: Value = serde_json::from_str(&ApiError::Internal.to_json()).unwrap();
        assert!(internal["error"].get("details").is_none());
    }
}
