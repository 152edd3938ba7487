//! The audit trail: one event per mutation (who did what to which resource, when, in which
//! request), readable by the tenant's admins at `GET /audit`, kept for a retention period.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{Cursor, Page, StoreError};
use crate::{AuditId, TenantId};

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditAction {
    #[serde(rename = "key.create")]
    KeyCreate,
    #[serde(rename = "key.update")]
    KeyUpdate,
    #[serde(rename = "key.rotate")]
    KeyRotate,
    #[serde(rename = "key.revoke")]
    KeyRevoke,
    #[serde(rename = "key.disable")]
    KeyDisable,
    #[serde(rename = "key.enable")]
    KeyEnable,
    /// Reported found where it must not be (GitHub's secret scanning, or its tenant).
    #[serde(rename = "key.leaked")]
    KeyLeaked,
    /// A key another system issued, imported as it is (`POST /keys/import`).
    #[serde(rename = "key.import")]
    KeyImport,
    #[serde(rename = "datasource.create")]
    DatasourceCreate,
    #[serde(rename = "datasource.regenerate_key")]
    DatasourceRegenerateKey,
    #[serde(rename = "datasource.delete")]
    DatasourceDelete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: AuditId,
    pub tenant_id: TenantId,
    /// Who: a key id (`key_…`), a JWT subject (`jwt:…`), or `bootstrap`.
    pub actor: String,
    pub action: AuditAction,
    /// The resource acted on (a key id or a datasource id).
    pub target: String,
    pub at: DateTime<Utc>,
    /// The API Gateway request id, to join the event with the access and function logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `key.leaked`: where the key was found (the URL GitHub reported, or the reporter's words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found_at: Option<String>,
}

/// Where audit events are kept. Both key stores implement it, in the same table or file as the
/// keys.
pub trait AuditLog: Send + Sync {
    fn append(&self, event: &AuditEvent) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A page of a tenant's events, newest first, at most `limit` (1 to
    /// [`crate::store::MAX_PAGE_SIZE`]).
    fn events(
        &self,
        tenant: &TenantId,
        limit: u32,
        before: Option<&Cursor<AuditId>>,
    ) -> impl Future<Output = Result<Page<AuditEvent>, StoreError>> + Send;
}
