//! Request bodies and query strings of the management routes: strict JSON (unknown fields are
//! errors), every problem a `VALIDATION_ERROR` naming its field, and the typed request that the
//! operations take. Parsed once here; the operations never re-check a field.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::allowlist::InvalidAllowlist;
use crate::credits::{Credits, MAX_CREDITS, Refill, RefillInterval};
use crate::store::Cursor;
use crate::tier::Tiers;
use crate::{ApiError, IpAllowlist, KeyDigest, KeyMeta, KeyStatus, OwnerId, Permission, Permissions, TierName};

/// The largest request body accepted (`PAYLOAD_TOO_LARGE` beyond).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The longest grace period a rotation may give the old key.
pub const MAX_GRACE_PERIOD_SECONDS: u64 = 7 * 24 * 3600;
const MAX_NAME_CHARS: usize = 100;

/// What bounds the keys a tenant may create.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyPolicy {
    pub tiers: Tiers,
    /// The longest a key may live. When set, every key expires, by default this long after it
    /// was created.
    pub max_lifetime: Option<TimeDelta>,
}

/// Parses a JSON body into `T`; an empty body (no bytes) reads as `{}`, and anything else must be
/// a JSON object: whitespace alone is not JSON, and guessing it meant "no body" would accept it.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge { limit_bytes: MAX_BODY_BYTES });
    }
    let body = if body.is_empty() { b"{}".as_slice() } else { body };
    // Every body is an object; serde would name a list's first element instead.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::validation("body", "the body must be a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let inner = error.inner();
        let message = inner.to_string();
        // serde_path_to_error's path already ends at an unknown field; a missing field is named
        // only in the message, and the path is that of the object which lacks it.
        let named = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next());
        let path = error.path().to_string();
        let field = match (named, path.as_str()) {
            (Some(name), ".") => name.to_owned(),
            (Some(name), parent) => format!("{parent}.{name}"),
            (None, ".") => "body".to_owned(),
            (None, path) => path.to_owned(),
        };
        if inner.is_syntax() || inner.is_eof() {
            ApiError::validation("body", format!("the body is not valid JSON: {message}"))
        } else {
            // Drop serde's "at line 1 column 9": the field says where.
            let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
            ApiError::validation(field, message)
        }
    })?;
    deserializer.end().map_err(|e| ApiError::validation("body", format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// `POST /keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    pub name: String,
    pub permissions: Option<Vec<String>>,
    pub tier: Option<String>,
    pub expires_at: Option<String>,
    #[serde(default, deserialize_with = "whole_number")]
    pub expires_in_days: Option<i64>,
    pub owner_id: Option<String>,
    pub meta: Option<serde_json::Value>,
    pub enabled: Option<bool>,
    pub ip_allowlist: Option<Vec<String>>,
    /// `null` or absent: unlimited.
    pub credits: Option<CreditsBody>,
}

/// `POST /keys/import`: the fields of `POST /keys`, and the key as the other system knows it.
#[derive(Debug)]
pub struct ImportKeyBody {
    pub secret: ImportedSecret,
    pub fields: CreateKeyBody,
}

/// An imported key: its plaintext (`key`), or the SHA-256 the other system stored (`sha256`).
pub enum ImportedSecret {
    /// Checked against the imported shape by the service, which knows the deployment's profile.
    Plaintext(String),
    Sha256(KeyDigest),
}

// Hand-written: the plaintext of a key never reaches a log.
impl std::fmt::Debug for ImportedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportedSecret::Plaintext(_) => f.write_str("Plaintext([REDACTED])"),
            ImportedSecret::Sha256(_) => f.write_str("Sha256(..)"),
        }
    }
}

impl ImportKeyBody {
    /// `key` or `sha256` (one of them, a string), and the rest as `POST /keys` reads it.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let mut object: serde_json::Map<String, serde_json::Value> = parse_body(body)?;
        let text = |field: &str, value: serde_json::Value| match value {
            serde_json::Value::String(text) => Ok(text),
            _ => Err(ApiError::validation(field, "must be a string")),
        };
        let secret = match (object.remove("key"), object.remove("sha256")) {
            (Some(key), None) => ImportedSecret::Plaintext(text("key", key)?),
            (None, Some(digest)) => {
                let digest = text("sha256", digest)?;
                let digest = (digest.len() == 64)
                    .then(|| KeyDigest::from_hex(&digest.to_ascii_lowercase()))
                    .flatten()
                    .ok_or_else(|| ApiError::validation("sha256", "must be the key's SHA-256: 64 hex digits"))?;
                ImportedSecret::Sha256(digest)
            }
            (Some(_), Some(_)) => return Err(ApiError::validation("sha256", "give key or sha256, not both")),
            (None, None) => return Err(ApiError::validation("key", "the key (or its sha256) is required")),
        };
        let rest = serde_json::to_vec(&object).expect("a map serializes");
        Ok(Self { secret, fields: parse_body(&rest)? })
    }
}

/// `credits` of a create or a PATCH: `{remaining, refill?: {amount, interval}, low_threshold?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditsBody {
    #[serde(default, deserialize_with = "whole_number")]
    pub remaining: Option<u64>,
    pub refill: Option<RefillBody>,
    #[serde(default, deserialize_with = "whole_number")]
    pub low_threshold: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefillBody {
    #[serde(default, deserialize_with = "whole_number")]
    pub amount: Option<u64>,
    pub interval: RefillInterval,
}

impl CreditsBody {
    pub fn validate(self) -> Result<Credits, ApiError> {
        let within = |field: &str, n: u64, least: u64| {
            if (least..=MAX_CREDITS).contains(&n) {
                Ok(n)
            } else {
                Err(ApiError::validation(field, format!("must be a whole number from {least} to {MAX_CREDITS}")))
            }
        };
        let remaining = self.remaining.ok_or_else(|| ApiError::validation("credits.remaining", "is required"))?;
        let refill = match self.refill {
            Some(refill) => {
                let amount =
                    refill.amount.ok_or_else(|| ApiError::validation("credits.refill.amount", "is required"))?;
                Some(Refill { amount: within("credits.refill.amount", amount, 1)?, interval: refill.interval })
            }
            None => None,
        };
        Ok(Credits {
            remaining: within("credits.remaining", remaining, 0)?,
            refill,
            low_threshold: self.low_threshold.map(|n| within("credits.low_threshold", n, 1)).transpose()?,
        })
    }
}

/// `PATCH /keys/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyBody {
    pub name: Option<String>,
    pub permissions: Option<Vec<String>>,
    pub tier: Option<String>,
    pub expires_at: Option<String>,
    /// `null` takes the owner away; absent leaves it.
    #[serde(default, deserialize_with = "present")]
    pub owner_id: Option<Option<String>>,
    /// `null` or `{}` clears it; absent leaves it.
    #[serde(default, deserialize_with = "present")]
    pub meta: Option<Option<serde_json::Value>>,
    pub enabled: Option<bool>,
    /// `null` or `[]` allows every address again; absent leaves it.
    #[serde(default, deserialize_with = "present")]
    pub ip_allowlist: Option<Option<Vec<String>>>,
    /// `null` makes the key unlimited; an object sets its balance anew; absent leaves it.
    #[serde(default, deserialize_with = "present")]
    pub credits: Option<Option<CreditsBody>>,
}

/// A validated `PATCH /keys/{id}`: the record's changes, and the credits to set (`Some(None)`:
/// none, unlimited).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyUpdate {
    pub changes: crate::KeyChanges,
    pub credits: Option<Option<Credits>>,
}

impl KeyUpdate {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.credits.is_none()
    }
}

/// A field that may be `null` on purpose: present (`Some`, `null` or not) or absent (`None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `POST /keys/{id}/rotate`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyBody {
    #[serde(default, deserialize_with = "whole_number")]
    pub grace_period_seconds: Option<u64>,
}

/// An integer field: `60` or `60.0`, as JSON Schema's `integer` (openapi.yaml) allows both,
/// never `60.5` or a number out of the field's range.
fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else { return Ok(None) };
    let whole = match (number.as_i64(), number.as_u64(), number.as_f64()) {
        (Some(n), _, _) => T::try_from(n).ok(),
        (_, Some(n), _) => T::try_from(n).ok(),
        // Whole floats up to 2^53 are exact.
        (_, _, Some(f)) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => T::try_from(f as i64).ok(),
        _ => None,
    };
    whole.map(Some).ok_or_else(|| serde::de::Error::custom(format!("expected a whole number in range, not {number}")))
}

/// A new key, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewKey {
    pub name: String,
    pub permissions: Permissions,
    pub tier: TierName,
    pub expires_at: Option<DateTime<Utc>>,
    pub owner_id: Option<OwnerId>,
    pub meta: KeyMeta,
    pub enabled: bool,
    pub ip_allowlist: IpAllowlist,
    pub credits: Option<Credits>,
}

impl CreateKeyBody {
    pub fn validate(self, policy: &KeyPolicy, now: DateTime<Utc>) -> Result<NewKey, ApiError> {
        let name = name(self.name)?;
        let permissions = match self.permissions {
            Some(list) => permissions(list)?,
            None => [Permission::Read].into_iter().collect(),
        };
        let tier = match self.tier {
            Some(text) => tier(&text, policy)?,
            None => policy.tiers.default_tier().clone(),
        };
        let expires_at = match (self.expires_at, self.expires_in_days) {
            (Some(_), Some(_)) => {
                return Err(ApiError::validation("expires_in_days", "give expires_at or expires_in_days, not both"));
            }
            (Some(text), None) => Some(expiry("expires_at", parse_time("expires_at", &text)?, policy, now)?),
            (None, Some(days)) => {
                let at = (1..=36_500).contains(&days).then(|| now + TimeDelta::days(days));
                let at =
                    at.ok_or_else(|| ApiError::validation("expires_in_days", "must be a positive number of days"))?;
                Some(expiry("expires_in_days", at, policy, now)?)
            }
            (None, None) => policy.max_lifetime.map(|max| now + max),
        };
        Ok(NewKey {
            name,
            permissions,
            tier,
            expires_at,
            owner_id: self.owner_id.map(|text| owner_id(&text)).transpose()?,
            meta: self.meta.map(meta).transpose()?.unwrap_or_default(),
            enabled: self.enabled.unwrap_or(true),
            ip_allowlist: self.ip_allowlist.map(|list| ip_allowlist(&list)).transpose()?.unwrap_or_default(),
            credits: self.credits.map(CreditsBody::validate).transpose()?,
        })
    }
}

impl UpdateKeyBody {
    pub fn validate(self, policy: &KeyPolicy, now: DateTime<Utc>) -> Result<KeyUpdate, ApiError> {
        let credits = self.credits.map(|credits| credits.map(CreditsBody::validate).transpose()).transpose()?;
        let changes = crate::KeyChanges {
            name: self.name.map(name).transpose()?,
            permissions: self.permissions.map(permissions).transpose()?,
            tier: self.tier.map(|text| tier(&text, policy)).transpose()?,
            expires_at: self
                .expires_at
                .map(|text| expiry("expires_at", parse_time("expires_at", &text)?, policy, now))
                .transpose()?,
            owner_id: self.owner_id.map(|text| text.map(|text| owner_id(&text)).transpose()).transpose()?,
            meta: self.meta.map(|value| value.map(meta).transpose().map(Option::unwrap_or_default)).transpose()?,
            enabled: self.enabled,
            ip_allowlist: self
                .ip_allowlist
                .map(|list| list.map(|list| ip_allowlist(&list)).transpose().map(Option::unwrap_or_default))
                .transpose()?,
            // Set by the service, which knows the key's own id and its current meter.
            meter: None,
        };
        Ok(KeyUpdate { changes, credits })
    }
}

impl RotateKeyBody {
    pub fn grace_period(&self) -> Result<TimeDelta, ApiError> {
        let seconds = self.grace_period_seconds.unwrap_or(0);
        if seconds > MAX_GRACE_PERIOD_SECONDS {
            return Err(ApiError::validation(
                "grace_period_seconds",
                format!("at most {MAX_GRACE_PERIOD_SECONDS} seconds (7 days)"),
            ));
        }
        Ok(TimeDelta::seconds(seconds as i64))
    }
}

pub(crate) fn name(name: String) -> Result<String, ApiError> {
    let chars = name.chars().count();
    if name.trim().is_empty() || chars > MAX_NAME_CHARS {
        return Err(ApiError::validation("name", format!("must be 1 to {MAX_NAME_CHARS} characters, not all blank")));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::validation("name", "must not contain control characters"));
    }
    Ok(name)
}

fn permissions(list: Vec<String>) -> Result<Permissions, ApiError> {
    let mut permissions = Permissions::default();
    for (index, text) in list.iter().enumerate() {
        let field = || format!("permissions[{index}]");
        if text == Permission::Ingest.as_str() {
            return Err(ApiError::validation(
                field(),
                "ingest keys are issued with their datasource (POST /datasources)",
            ));
        }
        permissions.insert_name(text).map_err(|e| ApiError::validation(field(), e.to_string()))?;
    }
    if permissions.is_empty() {
        return Err(ApiError::validation("permissions", "at least one permission is required"));
    }
    if permissions.len() > Permissions::MAX {
        let max = Permissions::MAX;
        return Err(ApiError::validation("permissions", format!("at most {max} different permissions on a key")));
    }
    Ok(permissions)
}

pub(crate) fn owner_id(text: &str) -> Result<OwnerId, ApiError> {
    text.parse().map_err(|e: crate::metadata::InvalidOwnerId| ApiError::validation("owner_id", e.to_string()))
}

fn ip_allowlist(list: &[String]) -> Result<IpAllowlist, ApiError> {
    IpAllowlist::parse(list).map_err(|error| match &error {
        InvalidAllowlist::TooMany => ApiError::validation("ip_allowlist", error.to_string()),
        InvalidAllowlist::NotANetwork(index, _) => {
            ApiError::validation(format!("ip_allowlist[{index}]"), error.to_string())
        }
    })
}

fn meta(value: serde_json::Value) -> Result<KeyMeta, ApiError> {
    KeyMeta::try_from(value).map_err(|e| ApiError::validation("meta", e.to_string()))
}

fn tier(text: &str, policy: &KeyPolicy) -> Result<TierName, ApiError> {
    let known = || policy.tiers.iter().filter(|t| t.assignable).map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ");
    let tier = text
        .parse::<TierName>()
        .ok()
        .and_then(|name| policy.tiers.get(&name))
        .ok_or_else(|| ApiError::validation("tier", format!("unknown tier `{text}` (known: {})", known())))?;
    if !tier.assignable {
        return Err(ApiError::validation(
            "tier",
            format!("tier `{text}` is reserved for operator keys (known: {})", known()),
        ));
    }
    Ok(tier.name.clone())
}

fn parse_time(field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| ApiError::validation(field, "must be an RFC 3339 time, e.g. 2030-01-31T00:00:00Z"))
}

fn expiry(field: &str, at: DateTime<Utc>, policy: &KeyPolicy, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    if at <= now {
        return Err(ApiError::validation(field, "must be in the future"));
    }
    if let Some(max) = policy.max_lifetime
        && at > now + max
    {
        return Err(ApiError::validation(field, format!("must be at most {} days ahead", max.num_days())));
    }
    Ok(at)
}

/// `?limit&cursor` of a listing, and `status` where the route filters by it.
#[derive(Debug, Clone, PartialEq)]
pub struct PageQuery<Id = crate::KeyId> {
    pub limit: u32,
    pub cursor: Option<Cursor<Id>>,
}

pub const DEFAULT_PAGE_SIZE: u32 = 50;

impl<Id: std::str::FromStr + std::fmt::Display> PageQuery<Id> {
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = match limit {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => {
                text.parse::<u32>().ok().filter(|n| (1..=crate::store::MAX_PAGE_SIZE).contains(n)).ok_or_else(|| {
                    ApiError::validation(
                        "limit",
                        format!("must be a whole number from 1 to {}", crate::store::MAX_PAGE_SIZE),
                    )
                })?
            }
        };
        let cursor = cursor.map(Cursor::decode).transpose().map_err(ApiError::from)?;
        Ok(Self { limit, cursor })
    }
}

pub fn status_filter(text: Option<&str>) -> Result<Option<KeyStatus>, ApiError> {
    match text {
        None => Ok(None),
        Some("active") => Ok(Some(KeyStatus::Active)),
        Some("expired") => Ok(Some(KeyStatus::Expired)),
        Some("revoked") => Ok(Some(KeyStatus::Revoked)),
        Some(_) => Err(ApiError::validation("status", "must be active, expired or revoked")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> KeyPolicy {
        KeyPolicy { tiers: Tiers::default(), max_lifetime: None }
    }

    fn now() -> DateTime<Utc> {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    fn field(error: ApiError) -> String {
        match error {
            ApiError::Validation { field, .. } => field,
            other => panic!("not a validation error: {other:?}"),
        }
    }

    fn create(json: &str) -> Result<NewKey, ApiError> {
        parse_body::<CreateKeyBody>(json.as_bytes())?.validate(&policy(), now())
    }

    #[test]
    fn bad_bodies_name_their_field() {
        assert_eq!(field(create("{").unwrap_err()), "body");
        assert_eq!(field(create("[]").unwrap_err()), "body");
        assert_eq!(field(create("").unwrap_err()), "name");
        assert_eq!(field(create(r#"{"name": 5}"#).unwrap_err()), "name");
        assert_eq!(field(create(r#"{"name": "a", "colour": "red"}"#).unwrap_err()), "colour");
        assert_eq!(field(create(r#"{"name": "a", "permissions": ["read", 7]}"#).unwrap_err()), "permissions[1]");
        assert_eq!(field(create(r#"{"name": "a", "permissions": ["read", "Root"]}"#).unwrap_err()), "permissions[1]");
        let custom = create(r#"{"name": "a", "permissions": ["billing:*", "read", "documents.read"]}"#).unwrap();
        assert_eq!(custom.permissions.to_csv(), "read,billing:*,documents.read");
        let many: Vec<String> = (0..64).map(|i| format!("s.{i}")).collect();
        let body = |names: &[String]| serde_json::json!({"name": "a", "permissions": names}).to_string();
        assert_eq!(create(&body(&many)).unwrap().permissions.len(), 64);
        let too_many = [many.clone(), vec!["s.64".to_owned()]].concat();
        assert_eq!(field(create(&body(&too_many)).unwrap_err()), "permissions");
        assert_eq!(field(create(r#"{"name": "a", "permissions": ["ingest"]}"#).unwrap_err()), "permissions[0]");
        assert_eq!(field(create(r#"{"name": "a", "permissions": []}"#).unwrap_err()), "permissions");
        assert_eq!(field(create(r#"{"name": "a", "tier": "gold"}"#).unwrap_err()), "tier");
        assert_eq!(field(create(r#"{"name": "a", "tier": "internal"}"#).unwrap_err()), "tier");
        assert_eq!(field(create(r#"{"name": ""}"#).unwrap_err()), "name");
        assert_eq!(field(create(r#"{"name": "   "}"#).unwrap_err()), "name");
        assert_eq!(field(create(&format!(r#"{{"name": "{}"}}"#, "x".repeat(101))).unwrap_err()), "name");
        assert_eq!(field(create(r#"{"name": "a\u0007"}"#).unwrap_err()), "name");
        assert_eq!(field(create(r#"{"name": "a", "expires_at": "tomorrow"}"#).unwrap_err()), "expires_at");
        assert_eq!(field(create(r#"{"name": "a", "expires_at": "2029-12-31T23:59:59Z"}"#).unwrap_err()), "expires_at");
        assert_eq!(field(create(r#"{"name": "a", "expires_in_days": 0}"#).unwrap_err()), "expires_in_days");
        let both = r#"{"name": "a", "expires_in_days": 3, "expires_at": "2031-01-01T00:00:00Z"}"#;
        assert_eq!(field(create(both).unwrap_err()), "expires_in_days");
        assert_eq!(field(create(r#"{"name": "a"} {}"#).unwrap_err()), "body");
        let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        assert_eq!(create(&big), Err(ApiError::PayloadTooLarge { limit_bytes: MAX_BODY_BYTES }));
    }

    #[test]
    fn defaults_and_limits() {
        let key = create(r#"{"name": "ci"}"#).unwrap();
        assert_eq!(key.permissions, [Permission::Read].into_iter().collect());
        assert_eq!(key.tier.as_str(), "free");
        assert_eq!(key.expires_at, None);
        let key = create(r#"{"name": "ci", "expires_in_days": 30, "tier": "starter"}"#).unwrap();
        assert_eq!(key.expires_at, Some(now() + TimeDelta::days(30)));

        let bounded = KeyPolicy { max_lifetime: Some(TimeDelta::days(90)), ..policy() };
        let body = |json: &str| parse_body::<CreateKeyBody>(json.as_bytes()).unwrap();
        let key = body(r#"{"name": "ci"}"#).validate(&bounded, now()).unwrap();
        assert_eq!(key.expires_at, Some(now() + TimeDelta::days(90)), "a bounded deployment gives every key an expiry");
        let too_long = body(r#"{"name": "ci", "expires_in_days": 91}"#).validate(&bounded, now());
        assert_eq!(field(too_long.unwrap_err()), "expires_in_days");
    }

    #[test]
    fn owners_metadata_and_the_enabled_flag() {
        assert_eq!(field(create(r#"{"name": "a", "owner_id": ""}"#).unwrap_err()), "owner_id");
        assert_eq!(field(create(r#"{"name": "a", "owner_id": "tab\there"}"#).unwrap_err()), "owner_id");
        assert_eq!(field(create(r#"{"name": "a", "meta": [1]}"#).unwrap_err()), "meta");
        let big = format!(r#"{{"name": "a", "meta": {{"a": "{}"}}}}"#, "x".repeat(4090));
        assert_eq!(field(create(&big).unwrap_err()), "meta");
        assert_eq!(field(create(r#"{"name": "a", "enabled": "no"}"#).unwrap_err()), "enabled");
        let key = create(r#"{"name": "a", "owner_id": "cus_1", "meta": {"plan": "pro"}, "enabled": false}"#).unwrap();
        assert_eq!(
            (key.owner_id.unwrap().as_str(), key.meta.as_map()["plan"].as_str(), key.enabled),
            ("cus_1", Some("pro"), false)
        );
        let key = create(r#"{"name": "a", "owner_id": null, "meta": null, "enabled": null}"#).unwrap();
        assert_eq!((key.owner_id, key.meta.is_empty(), key.enabled), (None, true, true));

        // PATCH: absent leaves a field, null takes an owner or metadata away.
        let update = |json: &str| parse_body::<UpdateKeyBody>(json.as_bytes())?.validate(&policy(), now());
        assert!(update("{}").unwrap().is_empty());
        let cleared = update(r#"{"owner_id": null, "meta": null}"#).unwrap().changes;
        assert_eq!((cleared.owner_id, cleared.meta), (Some(None), Some(crate::KeyMeta::default())));
        let set = update(r#"{"owner_id": "cus_2", "enabled": false}"#).unwrap().changes;
        assert_eq!((set.owner_id.unwrap().unwrap().as_str(), set.enabled), ("cus_2", Some(false)));
        assert_eq!(field(update(r#"{"owner_id": "  "}"#).unwrap_err()), "owner_id");
    }

    #[test]
    fn grace_periods_and_queries() {
        let grace = |json: &str| parse_body::<RotateKeyBody>(json.as_bytes()).and_then(|b| b.grace_period());
        assert_eq!(grace(""), Ok(TimeDelta::zero()));
        assert_eq!(field(grace("\r").unwrap_err()), "body", "whitespace is not an empty body");
        assert_eq!(grace(r#"{"grace_period_seconds": 604800}"#), Ok(TimeDelta::days(7)));
        assert_eq!(field(grace(r#"{"grace_period_seconds": 604801}"#).unwrap_err()), "grace_period_seconds");
        assert_eq!(field(grace(r#"{"grace_period_seconds": -1}"#).unwrap_err()), "grace_period_seconds");

        assert_eq!(PageQuery::<crate::KeyId>::parse(None, None).unwrap().limit, DEFAULT_PAGE_SIZE);
        for bad in ["0", "101", "ten", "-1"] {
            assert_eq!(field(PageQuery::<crate::KeyId>::parse(Some(bad), None).unwrap_err()), "limit");
        }
        assert_eq!(field(PageQuery::<crate::KeyId>::parse(None, Some("???")).unwrap_err()), "cursor");
        assert_eq!(field(status_filter(Some("dead")).unwrap_err()), "status");
    }
}
