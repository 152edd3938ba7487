//! Leaked keys: a key found where it must not be (public code, by GitHub's secret scanning; or
//! reported by its tenant) is acted on at once, as the deployment is configured
//! (`LATCHKEY_LEAK_ACTION`): revoked (the default), disabled, or only announced. Every such
//! report is audited (`key.leaked`, with where it was found) and announced (`key.leaked`).
//!
//! A token is parsed under the deployment's key profile (or an imported key's shape) first: anything else
//! costs no read, and an unknown key is answered like a non-key, so a report learns nothing
//! about which keys exist beyond the verdict the contract asks for.

#[cfg(feature = "leaks")]
pub mod github;

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::audit::{AuditAction, AuditLog};
use crate::events::{KeyEvent, KeyEventType};
use crate::gateway::GatewayKeys;
use crate::gateway::pool::GatewaySlots;
use crate::manage::view::KeyView;
use crate::manage::{Caller, Issuance, KeyService};
use crate::pepper::PepperProvider;
use crate::store::{KeyStore, StoreError};
use crate::{ApiError, KeyChanges, KeyRecord, KeyStatus, Permission};

/// The longest `found_at` a report may carry (a URL, or a few words).
pub const MAX_FOUND_AT_CHARS: usize = 2048;

/// What a leaked key's report does to it (`LATCHKEY_LEAK_ACTION`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeakAction {
    /// Revoked: immediate and irreversible, as `DELETE /keys/{id}`.
    #[default]
    Revoke,
    /// Disabled: refused with `DISABLED_API_KEY` until its tenant enables it again.
    Disable,
    /// Left working: only audited and announced, for a tenant that acts itself.
    Notify,
}

impl FromStr for LeakAction {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "revoke" => Ok(Self::Revoke),
            "disable" => Ok(Self::Disable),
            "notify" => Ok(Self::Notify),
            other => Err(format!("{other:?} is not one of revoke, disable, notify")),
        }
    }
}

/// `POST /leaks`: the key found, and where.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakReport {
    pub key: String,
    #[serde(default)]
    pub found_at: Option<String>,
}

/// `POST /leaks`'s answer: what was done, and the key as it is now.
#[derive(Debug, Serialize)]
pub struct LeakReported {
    pub action: LeakAction,
    pub key: KeyView,
}

/// Who reported a leak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reporter {
    /// GitHub's secret scanning (`POST /leaks/github`): any tenant's key.
    GitHub,
    /// A tenant's admin key or session (`POST /leaks`): only its own tenant's keys.
    Tenant(Caller),
}

impl<S: KeyStore + GatewaySlots + AuditLog + crate::credits::CreditStore, G: GatewayKeys> KeyService<S, G> {
    /// `POST /leaks`: an admin of the key's tenant reports it. A string that is not one of the
    /// tenant's keys (not a key at all, unknown, another tenant's) is `404`, alike.
    pub async fn report_leak<P: PepperProvider>(
        &self,
        issuance: &Issuance<P>,
        action: LeakAction,
        caller: Caller,
        report: LeakReport,
    ) -> Result<LeakReported, ApiError> {
        caller.require(Permission::Admin)?;
        let found_at = report.found_at.unwrap_or_default();
        if found_at.chars().count() > MAX_FOUND_AT_CHARS {
            return Err(ApiError::validation("found_at", format!("at most {MAX_FOUND_AT_CHARS} characters")));
        }
        // It is stored in the audit log: a key pasted into it would be a key in plaintext there.
        let words = found_at.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
        if words.into_iter().any(|word| issuance.profile.parse(word).is_ok()) {
            return Err(ApiError::validation("found_at", "must not contain a key: say where it was found"));
        }
        let reporter = Reporter::Tenant(caller);
        let key = self.leaked(issuance, &report.key, &found_at, action, &reporter).await?.ok_or(ApiError::NotFound)?;
        Ok(LeakReported { action, key })
    }

    /// Acts on `token`, reported found at `found_at` (a URL, or what the reporter said), by
    /// `action`. `None`: not a key of this deployment (or, for a tenant, not one of its own),
    /// answered alike whatever the reason. A key reported again is acted on again (revoking or
    /// disabling twice changes nothing) and audited again: each report is a place it was found.
    pub async fn leaked<P: PepperProvider>(
        &self,
        issuance: &Issuance<P>,
        token: &str,
        found_at: &str,
        action: LeakAction,
        reporter: &Reporter,
    ) -> Result<Option<KeyView>, ApiError> {
        // An imported key (another system's) leaks like any.
        let Ok(key) = issuance.profile.parse_verifiable(token.trim()) else { return Ok(None) };
        let peppers = issuance.peppers.current().await;
        let Some(record) = crate::lookup::find_key(&*self.store, &peppers, &key).await? else { return Ok(None) };
        let caller = match reporter {
            Reporter::Tenant(caller) if caller.tenant != record.tenant_id => return Ok(None),
            Reporter::Tenant(caller) => caller.clone(),
            Reporter::GitHub => Caller::secret_scanning(record.tenant_id.clone()),
        };
        let now = self.clock.now();
        let record = match action {
            LeakAction::Revoke => {
                let revoked = self.store.revoke(&record.tenant_id, &record.id, now).await?;
                self.retire_if_dead(&revoked, now).await;
                revoked
            }
            LeakAction::Disable => self.disable_leaked(record).await?,
            LeakAction::Notify => record,
        };
        self.audit_found(&caller, AuditAction::KeyLeaked, &record.id, now, found_at).await;
        self.events.publish(KeyEvent::new(KeyEventType::Leaked, KeyView::of(&record, now), now));
        Ok(Some(KeyView::of(&record, now)))
    }

    /// Disables a leaked key; one that no longer verifies (revoked, expired) stays as it is.
    async fn disable_leaked(&self, record: KeyRecord) -> Result<KeyRecord, ApiError> {
        if record.status(self.clock.now()) != KeyStatus::Active || !record.enabled {
            return Ok(record);
        }
        let changes = KeyChanges { enabled: Some(false), ..KeyChanges::default() };
        match self.store.update(&record.tenant_id, &record.id, &changes).await {
            Ok(disabled) => Ok(disabled),
            // Revoked or rotated in between: it is stopped either way.
            Err(StoreError::Conflict(_)) => Ok(record),
            Err(error) => Err(error.into()),
        }
    }
}
