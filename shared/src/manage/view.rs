//! What the management routes answer: a key as its owner may see it. Never the key itself
//! (except once, at creation), never its digest, never its API Gateway key. Times are chrono's
//! RFC 3339 in UTC (`2030-01-31T00:00:00Z`, milliseconds when not zero), like every time we show.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::audit::AuditEvent;
use crate::credits::{CreditBalance, CreditsView};
use crate::{
    ApiKey, DatasourceId, IpAllowlist, KeyId, KeyMeta, KeyRecord, KeyStatus, OwnerId, Permissions, TenantId, TierName,
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyView {
    pub id: KeyId,
    pub name: String,
    pub hint: String,
    pub tenant_id: TenantId,
    pub permissions: Permissions,
    pub tier: TierName,
    pub status: KeyStatus,
    /// `false` while disabled (refused with `DISABLED_API_KEY`), whatever its status.
    pub enabled: bool,
    pub owner_id: Option<OwnerId>,
    pub meta: KeyMeta,
    /// Empty: usable from anywhere.
    pub ip_allowlist: IpAllowlist,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datasource_id: Option<DatasourceId>,
    /// The key this one replaced (rotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<KeyId>,
    /// The key that replaced this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<KeyId>,
    /// Its usage credits as they stand; `null`: unlimited.
    pub credits: Option<CreditsView>,
}

impl KeyView {
    pub fn of(record: &KeyRecord, now: DateTime<Utc>) -> Self {
        Self {
            id: record.id.clone(),
            name: record.name.clone(),
            hint: record.hint.clone(),
            tenant_id: record.tenant_id.clone(),
            permissions: record.permissions.clone(),
            tier: record.tier.clone(),
            status: record.status(now),
            enabled: record.enabled,
            owner_id: record.owner_id.clone(),
            meta: record.meta.clone(),
            ip_allowlist: record.ip_allowlist.clone(),
            created_at: record.created_at,
            expires_at: record.expires_at,
            revoked_at: record.revoked_at,
            last_used_at: record.last_used_at,
            datasource_id: record.datasource_id.clone(),
            replaces: record.replaces.clone(),
            replaced_by: record.replaced_by.clone(),
            credits: None,
        }
    }

    /// The view with the credits of `balance` at `now` (the record's meter's balance).
    pub fn with_credits(self, balance: Option<&CreditBalance>, now: DateTime<Utc>) -> Self {
        Self { credits: balance.map(|balance| CreditsView::of(balance, now)), ..self }
    }
}

/// A key as created or rotated: the only answer that carries the key itself.
#[derive(Serialize)]
pub struct IssuedKey {
    /// The key, shown this once.
    pub key: String,
    #[serde(flatten)]
    pub view: KeyView,
    /// After a rotation: when the replaced key stops working (the end of its grace period).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_key_expires_at: Option<DateTime<Utc>>,
}

impl IssuedKey {
    pub fn new(key: &ApiKey, record: &KeyRecord, now: DateTime<Utc>) -> Self {
        Self { key: key.expose_secret().to_owned(), view: KeyView::of(record, now), replaced_key_expires_at: None }
    }
}

// Hand-written so that a stray `{:?}` never prints the key.
impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey").field("view", &self.view).finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct KeyUsage {
    pub id: KeyId,
    pub tier: TierName,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Requests let through per day (UTC), oldest first: the key's `valid` verifications.
    pub days: Vec<DailyUsage>,
}

/// Requests let through for one key on one day (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyUsage {
    pub date: chrono::NaiveDate,
    pub requests: u64,
}

/// `GET /whoami`: the caller as the authorizer saw it.
#[derive(Debug, Serialize)]
pub struct Identity {
    pub auth_type: &'static str,
    pub principal: String,
    #[serde(flatten)]
    pub subject: Subject,
}

/// Who the caller is beyond its principal. A key's record already carries `tenant_id` and
/// `permissions`, so a key's answer is its record alone (one object, no field twice).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Subject {
    /// A [`KeyView`], as JSON: the authorizer's, passed on as it decided.
    Key(Box<serde_json::Map<String, serde_json::Value>>),
    Session {
        tenant_id: TenantId,
        permissions: Permissions,
    },
}

#[derive(Debug, Serialize)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub next_cursor: Option<String>,
}
