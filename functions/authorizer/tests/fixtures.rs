//! Every fixture event (shaped exactly as API Gateway sends it) through the authorizer, against
//! DynamoDB Local: the exact policy effect, resource, context and usage key of each answer.

use crate::common;

use std::time::Duration;

use common::{RESOURCE, SESSION_USAGE_KEY, dynamo_harness};
use latchkey::store::KeyStore;
use latchkey::{KeyChanges, KeyRecord};
use serde_json::{Value, json};

fn policy(effect: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": RESOURCE}]})
}

fn expected_allow(record: &KeyRecord) -> Value {
    let id = record.id.as_str();
    let mut context = json!({
        "auth_type": "api_key", "principal": id, "tenant_id": "acme", "key_id": id,
        "permissions": record.permissions.to_csv(), "tier": record.tier.as_str(),
    });
    // Always there, empty when the key is not scoped (the deployed gateway maps it to a header).
    context["datasource_id"] = json!(record.datasource_id.as_ref().map_or("", |d| d.as_str()));
    context["meta"] = json!(record.meta.to_header());
    if let Some(expires_at) = record.expires_at {
        context["expires_at"] = json!(latchkey::error::format_time(expires_at));
    }
    json!({
        "principalId": id,
        "policyDocument": policy("Allow"),
        "context": context,
        "usageIdentifierKey": record.gateway_key.as_ref().unwrap().value,
    })
}

fn assert_deny(response: &Value, code: &str, message: &str, details: Value) {
    assert_eq!(response["principalId"], "anonymous");
    assert_eq!(response["policyDocument"], policy("Deny"));
    assert!(response.get("usageIdentifierKey").is_none(), "a denial carries no usage key");
    let context = response["context"].as_object().unwrap();
    assert_eq!(context.len(), 5, "{context:?}");
    assert_eq!(context["error_status"], "401");
    assert_eq!(context["error_code"], code);
    assert_eq!(context["error_message"], message);
    let parse = |field: &str| serde_json::from_str::<Value>(context[field].as_str().unwrap()).unwrap();
    assert_eq!(parse("error_details"), details);
    let mut body = json!({"success": false, "error": {"code": code, "message": message}, "message": "Unauthorized"});
    if details.as_object().is_some_and(|d| !d.is_empty()) {
        body["error"]["details"] = details;
    }
    assert_eq!(parse("error_body"), body);
}

#[tokio::test]
async fn a_valid_key_in_every_header_style_is_allowed() {
    let harness = dynamo_harness(Duration::from_secs(5)).await;
    let expected = expected_allow(harness.record("valid"));
    for name in [
        "key_x_api_key",
        "key_x_api_key_upper_name",
        "key_bearer",
        "key_bearer_upper_scheme",
        "key_bare_authorization",
        "key_two_styles_agree",
    ] {
        assert_eq!(harness.decide(name).await.unwrap(), expected, "{name}");
    }
}

#[tokio::test]
async fn missing_empty_malformed_unknown_and_conflicting_are_denied() {
    let harness = dynamo_harness(Duration::from_secs(5)).await;
    let missing = "An API key is required in the x-api-key or Authorization header";
    assert_deny(&harness.decide("missing").await.unwrap(), "MISSING_API_KEY", missing, json!({"header": "x-api-key"}));
    assert_deny(
        &harness.decide("empty_x_api_key").await.unwrap(),
        "MISSING_API_KEY",
        missing,
        json!({"header": "x-api-key"}),
    );
    let format = "The API key is not in a valid format";
    assert_deny(&harness.decide("malformed").await.unwrap(), "INVALID_API_KEY_FORMAT", format, json!({}));
    assert_deny(&harness.decide("bad_checksum").await.unwrap(), "INVALID_API_KEY_FORMAT", format, json!({}));
    assert_deny(&harness.decide("unknown").await.unwrap(), "INVALID_API_KEY", "The API key is invalid", json!({}));
    assert_deny(
        &harness.decide("key_two_styles_disagree").await.unwrap(),
        "CONFLICTING_CREDENTIALS",
        "The x-api-key and Authorization headers carry different credentials",
        json!({"headers": "x-api-key,authorization"}),
    );
}

#[tokio::test]
async fn revoked_expired_and_rotated_keys() {
    let harness = dynamo_harness(Duration::from_secs(5)).await;
    // Revoked answers exactly like unknown.
    assert_deny(&harness.decide("revoked").await.unwrap(), "INVALID_API_KEY", "The API key is invalid", json!({}));
    let expired = "The API key has expired";
    assert_deny(
        &harness.decide("expired").await.unwrap(),
        "EXPIRED_API_KEY",
        expired,
        json!({"expired_at": "2026-05-31T00:00:00Z"}),
    );
    assert_eq!(harness.decide("in_grace").await.unwrap(), expected_allow(harness.record("in_grace")));
    assert_deny(
        &harness.decide("past_grace").await.unwrap(),
        "EXPIRED_API_KEY",
        expired,
        json!({"expired_at": "2026-05-31T23:00:00Z"}),
    );
}

#[tokio::test]
async fn a_datasource_scoped_key_carries_its_datasource() {
    let harness = dynamo_harness(Duration::from_secs(5)).await;
    let response = harness.decide("datasource_scoped").await.unwrap();
    assert_eq!(response, expected_allow(harness.record("datasource")));
    assert_eq!(response["context"]["permissions"], "ingest");
}

#[tokio::test]
async fn jwt_sessions() {
    let harness = dynamo_harness(Duration::from_secs(5)).await;
    assert_eq!(
        harness.decide("jwt_valid").await.unwrap(),
        json!({
            "principalId": "user-42",
            "policyDocument": policy("Allow"),
            "context": {
                "auth_type": "jwt", "principal": "user-42", "tenant_id": "acme", "permissions": "admin",
                "tier": "internal", "key_id": "", "datasource_id": "", "meta": "{}",
            },
            "usageIdentifierKey": SESSION_USAGE_KEY,
        })
    );
    assert_deny(&harness.decide("jwt_expired").await.unwrap(), "EXPIRED_TOKEN", "The token has expired", json!({}));
    for name in ["jwt_bad_signature", "jwt_wrong_issuer"] {
        assert_deny(&harness.decide(name).await.unwrap(), "INVALID_TOKEN", "The token is invalid", json!({}));
    }
}

#[tokio::test]
async fn expiry_is_decided_per_request_even_from_the_cache() {
    let harness = dynamo_harness(Duration::from_secs(300)).await;
    assert_eq!(harness.decide("in_grace").await.unwrap(), expected_allow(harness.record("in_grace")));
    // The grace period ends while the record sits in the cache: the next request is refused.
    harness.clock.advance(chrono::TimeDelta::hours(2));
    assert_deny(
        &harness.decide("in_grace").await.unwrap(),
        "EXPIRED_API_KEY",
        "The API key has expired",
        json!({"expired_at": "2026-06-01T01:00:00Z"}),
    );
}

#[tokio::test]
async fn a_disabled_key_is_refused_until_enabled_within_the_cache_ttl_and_its_meta_is_in_the_context() {
    let harness = dynamo_harness(Duration::from_secs(5)).await;
    let valid = harness.record("valid").clone();
    assert_eq!(harness.code("key_x_api_key").await, "");
    let disable = KeyChanges { enabled: Some(false), ..KeyChanges::default() };
    harness.store.update(&valid.tenant_id, &valid.id, &disable).await.unwrap();
    // Cached as enabled: the change arrives within the cache TTL (5 s, the default), not before.
    assert_eq!(harness.code("key_x_api_key").await, "");
    harness.clock.advance(chrono::TimeDelta::seconds(5));
    assert_deny(
        &harness.decide("key_x_api_key").await.unwrap(),
        "DISABLED_API_KEY",
        "The API key is disabled",
        json!({}),
    );

    let meta: latchkey::KeyMeta = serde_json::from_value(json!({"plan": "pro", "city": "Zürich"})).unwrap();
    let enable = KeyChanges { enabled: Some(true), meta: Some(meta), ..KeyChanges::default() };
    let enabled = harness.store.update(&valid.tenant_id, &valid.id, &enable).await.unwrap();
    harness.clock.advance(chrono::TimeDelta::seconds(5));
    let response = harness.decide("key_x_api_key").await.unwrap();
    assert_eq!(response, expected_allow(&enabled));
    assert_eq!(response["context"]["meta"], r#"{"city":"Z\u00fcrich","plan":"pro"}"#);
}

#[tokio::test]
async fn a_key_with_an_ip_allowlist_is_refused_from_elsewhere() {
    let harness = dynamo_harness(Duration::from_secs(5)).await;
    let valid = harness.record("valid").clone();
    // The fixture's requestContext.identity.sourceIp is 203.0.113.7.
    let elsewhere = latchkey::IpAllowlist::parse(&["198.51.100.0/24", "2001:db8::/32"]).unwrap();
    let changes = KeyChanges { ip_allowlist: Some(elsewhere), ..KeyChanges::default() };
    harness.store.update(&valid.tenant_id, &valid.id, &changes).await.unwrap();
    assert_deny(
        &harness.decide("key_x_api_key").await.unwrap(),
        "IP_NOT_ALLOWED",
        "The API key may not be used from this address",
        json!({"source_ip": "203.0.113.7"}),
    );
    // Decided per request: the cached record's list, against each request's address.
    let here = latchkey::IpAllowlist::parse(&["198.51.100.0/24", "203.0.113.0/24"]).unwrap();
    let changes = KeyChanges { ip_allowlist: Some(here), ..KeyChanges::default() };
    let allowed = harness.store.update(&valid.tenant_id, &valid.id, &changes).await.unwrap();
    harness.clock.advance(chrono::TimeDelta::seconds(5));
    assert_eq!(harness.decide("key_x_api_key").await.unwrap(), expected_allow(&allowed));
}
