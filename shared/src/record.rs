//! What is stored about a key. Never the key itself: its digest under a pepper, and a hint.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::IpAllowlist;
use crate::metadata::{KeyMeta, OwnerId};
use crate::{
    ApiKey, DatasourceId, KeyDigest, KeyHasher, KeyId, KeyProfile, PepperVersion, Permissions, TenantId, TierName,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Expired,
    Revoked,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Expired => "expired",
            KeyStatus::Revoked => "revoked",
        }
    }
}

/// The API Gateway API key that carries this key's usage plan (its tier). Its value is what
/// the authorizer returns as `usageIdentifierKey`; it is not a Latchkey key and authenticates
/// nothing, but it is still kept out of `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayKey {
    pub id: String,
    pub value: String,
}

impl fmt::Debug for GatewayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayKey").field("id", &self.id).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: KeyId,
    pub tenant_id: TenantId,
    pub name: String,
    /// Prefix and last four characters, e.g. `ctw_...31e3`.
    pub hint: String,
    pub permissions: Permissions,
    pub tier: TierName,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
    pub digest: KeyDigest,
    pub pepper_version: PepperVersion,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datasource_id: Option<DatasourceId>,
    /// A key's own API Gateway key, from before the pool ([`crate::gateway::pool`]): kept by
    /// the keys made then, until they stop (the authorizer uses it while it is there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_key: Option<GatewayKey>,
    /// The key's lease of a pooled gateway key, as last noted by an authorizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<crate::gateway::pool::Lease>,
    /// The key this one was issued to replace (rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<KeyId>,
    /// The key that replaced this one; set once, which is what makes rotation single-winner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<KeyId>,
    /// Bumped by every change a concurrent writer must not overwrite (revoke, rotate, update).
    /// Moving a record to a new digest is conditional on it, so a revocation that lands while a
    /// key is being rehashed is never lost.
    #[serde(default)]
    pub revision: u64,
    /// When the key, dead by then (revoked or expired), gave back its place in its tenant's key
    /// count, its gateway key deleted. Until then the record is never garbage-collected: the
    /// count, and the gateway key, would leak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<DateTime<Utc>>,
    /// The provider's id for whom the key belongs to (`GET /keys?owner_id=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<OwnerId>,
    #[serde(default, skip_serializing_if = "KeyMeta::is_empty", with = "crate::metadata::stored_as_text")]
    pub meta: KeyMeta,
    /// A disabled key is refused (`DISABLED_API_KEY`) until enabled again; unlike revocation,
    /// reversible. Records stored before the field existed are enabled.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Where the key may be used from; empty: anywhere.
    #[serde(default, skip_serializing_if = "IpAllowlist::is_empty")]
    pub ip_allowlist: IpAllowlist,
    /// The `expires_at` that `key.expiring` was sent for: once per expiry, and again for a new
    /// one (an expiry moved by PATCH is announced again when it comes near).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_warned_for: Option<DateTime<Utc>>,
    /// The balance of usage credits this key spends ([`crate::credits`]): its own id, or after a
    /// rotation the id of the key it replaced, whose balance both spend. `None`: unlimited, and
    /// the authorizer writes nothing for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<KeyId>,
}

fn enabled() -> bool {
    true
}

/// What a new key is for; the rest of its record is generated.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub tenant_id: TenantId,
    pub name: String,
    pub permissions: Permissions,
    pub tier: TierName,
    pub expires_at: Option<DateTime<Utc>>,
    pub datasource_id: Option<DatasourceId>,
    pub replaces: Option<KeyId>,
    pub owner_id: Option<OwnerId>,
    pub meta: KeyMeta,
    pub enabled: bool,
    pub ip_allowlist: IpAllowlist,
    /// The balance it spends ([`KeyRecord::meter`]); `None` for a key without credits.
    pub meter: Option<Meter>,
}

/// Whose balance of credits a new key spends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meter {
    /// Its own, under its own id.
    Own,
    /// Another key's (a rotation's new key spends the old key's balance).
    Of(KeyId),
}

impl KeySpec {
    /// A key of `tenant` with no owner, no metadata, enabled, replacing nothing: what every
    /// spec starts from.
    pub fn new(tenant_id: TenantId, name: String, permissions: Permissions, tier: TierName) -> Self {
        Self {
            tenant_id,
            name,
            permissions,
            tier,
            expires_at: None,
            datasource_id: None,
            replaces: None,
            owner_id: None,
            meta: KeyMeta::default(),
            enabled: true,
            ip_allowlist: IpAllowlist::default(),
            meter: None,
        }
    }
}

/// What an update may change (`PATCH /keys/{id}`); `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyChanges {
    pub name: Option<String>,
    pub permissions: Option<Permissions>,
    pub tier: Option<TierName>,
    pub expires_at: Option<DateTime<Utc>>,
    /// `Some(None)` takes the owner away.
    pub owner_id: Option<Option<OwnerId>>,
    /// `Some(KeyMeta::default())` clears it.
    pub meta: Option<KeyMeta>,
    pub enabled: Option<bool>,
    /// `Some(IpAllowlist::default())` allows every address again.
    pub ip_allowlist: Option<IpAllowlist>,
    /// `Some(None)`: no credits any more (unlimited).
    pub meter: Option<Option<KeyId>>,
}

impl KeyChanges {
    pub fn is_empty(&self) -> bool {
        *self == KeyChanges::default()
    }
}

impl KeyRecord {
    /// Generates a key of `profile` and the record that stores it: digest under the current
    /// pepper, hint, new id. The plaintext is returned once, to be shown once.
    pub fn issue(profile: &KeyProfile, hasher: &KeyHasher, spec: KeySpec, now: DateTime<Utc>) -> (ApiKey, KeyRecord) {
        let key = profile.generate();
        let record = KeyRecord::new(&key, hasher, spec, now);
        (key, record)
    }

    /// The record of a given key, with a new id.
    pub fn new(key: &ApiKey, hasher: &KeyHasher, spec: KeySpec, now: DateTime<Utc>) -> KeyRecord {
        KeyRecord::stored(hasher.digest(key), hasher.version().clone(), key.hint(), spec, now)
    }

    /// The record of a key known only by another system's SHA-256 of it (`POST /keys/import`):
    /// stored under that digest until its first use moves it under the pepper
    /// ([`crate::lookup::find_key`]). Its hint says so until then; the plaintext is not known.
    pub fn imported_digest(sha256: KeyDigest, spec: KeySpec, now: DateTime<Utc>) -> KeyRecord {
        KeyRecord::stored(sha256, PepperVersion::legacy_sha256(), "imported (sha256)".to_owned(), spec, now)
    }

    fn stored(
        digest: KeyDigest,
        pepper_version: PepperVersion,
        hint: String,
        spec: KeySpec,
        now: DateTime<Utc>,
    ) -> KeyRecord {
        let id = KeyId::generate();
        let meter = spec.meter.map(|meter| match meter {
            Meter::Own => id.clone(),
            Meter::Of(other) => other,
        });
        KeyRecord {
            id,
            tenant_id: spec.tenant_id,
            name: spec.name,
            hint,
            permissions: spec.permissions,
            tier: spec.tier,
            created_at: now,
            expires_at: spec.expires_at,
            revoked_at: None,
            last_used_at: None,
            digest,
            pepper_version,
            datasource_id: spec.datasource_id,
            gateway_key: None,
            lease: None,
            replaces: spec.replaces,
            replaced_by: None,
            revision: 0,
            retired_at: None,
            owner_id: spec.owner_id,
            meta: spec.meta,
            enabled: spec.enabled,
            ip_allowlist: spec.ip_allowlist,
            expiry_warned_for: None,
            meter,
        }
    }

    /// Status is computed from the record and the clock, never trusted from storage: DynamoDB's
    /// TTL deletes expired items up to days late.
    pub fn status(&self, now: DateTime<Utc>) -> KeyStatus {
        if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }

    /// What a caller presenting this key at `now` is refused with, if anything: the authorizer's
    /// answer, and key management's when it re-reads its caller. Revoked answers as unknown, so a
    /// caller learns nothing about which; a disabled key that has also expired answers as
    /// expired (what it would be if enabled again).
    pub fn refusal(&self, now: DateTime<Utc>) -> Option<crate::ApiError> {
        match self.status(now) {
            KeyStatus::Revoked => Some(crate::ApiError::InvalidApiKey),
            KeyStatus::Expired => Some(crate::ApiError::ExpiredApiKey {
                expired_at: self.expires_at.expect("expired keys have an expiry"),
            }),
            KeyStatus::Active if !self.enabled => Some(crate::ApiError::DisabledApiKey),
            KeyStatus::Active => None,
        }
    }

    /// When the record may be garbage-collected: `retention` after it stopped working (expiry,
    /// including any rotation grace, or revocation, whichever came first). Kept that long so a
    /// caller still gets `EXPIRED_API_KEY` rather than `INVALID_API_KEY`, and the dashboard still
    /// shows the key. `None` for a key that works until revoked, and for one not yet retired
    /// ([`KeyRecord::retired_at`]).
    pub fn collectable_at(&self, retention: TimeDelta) -> Option<DateTime<Utc>> {
        self.retired_at?;
        Some(self.stops_at()? + retention)
    }

    /// When the key stops (or stopped) verifying: its expiry, including any rotation grace, or
    /// its revocation, whichever comes first. `None` for a key that works until revoked.
    pub fn stops_at(&self) -> Option<DateTime<Utc>> {
        match (self.expires_at, self.revoked_at) {
            (Some(e), Some(r)) => Some(e.min(r)),
            (e, r) => e.or(r),
        }
    }
}

impl Serialize for KeyDigest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for KeyDigest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        KeyDigest::from_hex(&text).ok_or_else(|| serde::de::Error::custom("a digest is 64 hex digits"))
    }
}
