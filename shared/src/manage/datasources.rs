//! The operations behind `/datasources`: a datasource and its ingest key (permission `ingest`,
//! scoped to it) are made, regenerated and deleted together. Another tenant's datasource is
//! `NOT_FOUND`, like a missing one; every mutation is audited.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::input::{MAX_GRACE_PERIOD_SECONDS, PageQuery, RotateKeyBody};
use super::view::IssuedKey;
use super::{Caller, Issuance, KeyService};
use crate::audit::{AuditAction, AuditLog};
use crate::datasource::{Datasource, DatasourceStore};
use crate::events::{KeyEvent, KeyEventType};
use crate::gateway::GatewayKeys;
use crate::gateway::pool::GatewaySlots;
use crate::ingest::{RecordStore, Sequence, StoredRecord};
use crate::pepper::PepperProvider;
use crate::store::KeyStore;
use crate::{ApiError, DatasourceId, KeyId, KeyRecord, KeySpec, KeyStatus, Permission, TierName};

/// Records a `DELETE /datasources/{id}` removes per call; a larger datasource answers `202`
/// and is deleted by calling again.
pub const DELETE_BUDGET: u32 = 5_000;

/// `POST /datasources`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDatasourceBody {
    pub name: String,
}

#[derive(Debug, Serialize)]
pub struct DatasourceView {
    pub id: DatasourceId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Its current ingest key's id.
    pub key_id: KeyId,
}

impl DatasourceView {
    fn of(datasource: Datasource) -> Self {
        Self { id: datasource.id, name: datasource.name, created_at: datasource.created_at, key_id: datasource.key_id }
    }
}

/// A datasource as created: the only answer, with `regenerate-key`'s, that carries its key.
#[derive(Debug, Serialize)]
pub struct CreatedDatasource {
    #[serde(flatten)]
    pub datasource: DatasourceView,
    #[serde(flatten)]
    pub ingest_key: IngestKey,
}

/// An ingest key, shown once.
#[derive(Serialize)]
pub struct IngestKey {
    pub key: String,
    pub key_hint: String,
    pub key_expires_at: Option<DateTime<Utc>>,
    /// After a regenerate: when the previous key stops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_key_expires_at: Option<DateTime<Utc>>,
}

impl IngestKey {
    fn of(issued: IssuedKey) -> Self {
        Self {
            key: issued.key,
            key_hint: issued.view.hint,
            key_expires_at: issued.view.expires_at,
            replaced_key_expires_at: issued.replaced_key_expires_at,
        }
    }
}

// Hand-written so that a stray `{:?}` never prints the key.
impl std::fmt::Debug for IngestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestKey").field("key_hint", &self.key_hint).finish_non_exhaustive()
    }
}

/// `POST /datasources/{id}/regenerate-key`.
#[derive(Debug, Serialize)]
pub struct RegeneratedKey {
    pub datasource_id: DatasourceId,
    pub key_id: KeyId,
    #[serde(flatten)]
    pub ingest_key: IngestKey,
}

#[derive(Debug, Serialize)]
pub struct DatasourceList {
    pub datasources: Vec<DatasourceView>,
    pub next_cursor: Option<String>,
}

/// `DELETE /datasources/{id}`: `200` when it is gone, `202` while records remain.
#[derive(Debug, Serialize)]
pub struct DeletedDatasource {
    pub id: DatasourceId,
    pub deleted: bool,
    pub keys_revoked: usize,
    pub records_deleted: u64,
    pub records_remaining: bool,
}

#[derive(Debug, Serialize)]
pub struct RecordPage {
    pub records: Vec<StoredRecord>,
    pub next_cursor: Option<String>,
}

/// The datasource operations, over the key service and the records.
pub struct Datasources<'a, S, G, R> {
    pub keys: &'a KeyService<S, G>,
    /// Absent in the issuing function, which never reads or deletes records.
    pub records: Option<&'a R>,
    /// The tier of ingest keys.
    pub ingest_tier: &'a TierName,
}

impl<
    S: KeyStore + GatewaySlots + AuditLog + crate::credits::CreditStore + DatasourceStore,
    G: GatewayKeys,
    R: RecordStore,
> Datasources<'_, S, G, R>
{
    pub async fn create<P: PepperProvider>(
        &self,
        issuance: &Issuance<P>,
        caller: &Caller,
        body: CreateDatasourceBody,
    ) -> Result<CreatedDatasource, ApiError> {
        caller.require(Permission::Admin)?;
        let name = super::input::name(body.name)?;
        let now = self.keys.clock.now();
        let id = DatasourceId::generate();
        let issued = self.keys.insert(issuance, caller, self.ingest_key_spec(caller, &id, &name, None), now).await?;
        let datasource =
            Datasource { id, tenant_id: caller.tenant.clone(), name, created_at: now, key_id: issued.view.id.clone() };
        if let Err(error) = self.keys.store.insert_datasource(&datasource).await {
            // All or nothing: the key of a datasource that does not exist must not work.
            if let Err(undo) = self.keys.revoke(caller, issued.view.id.as_str()).await {
                tracing::error!(key_id = %issued.view.id, error = %undo, "an ingest key outlived its failed datasource");
            }
            return Err(error.into());
        }
        self.keys.audit(caller, AuditAction::DatasourceCreate, &datasource.id, now).await;
        Ok(CreatedDatasource { datasource: DatasourceView::of(datasource), ingest_key: IngestKey::of(issued) })
    }

    pub async fn list(&self, caller: &Caller, query: PageQuery<DatasourceId>) -> Result<DatasourceList, ApiError> {
        caller.require(Permission::Admin)?;
        let page = self.keys.store.list_datasources(&caller.tenant, query.limit, query.cursor.as_ref()).await?;
        Ok(DatasourceList {
            datasources: page.items.into_iter().map(DatasourceView::of).collect(),
            next_cursor: page.next_cursor,
        })
    }

    pub async fn get(&self, caller: &Caller, id: &str) -> Result<DatasourceView, ApiError> {
        caller.require(Permission::Admin)?;
        let mut datasource = self.datasource(caller, id).await?;
        datasource.key_id = self.current_key(caller, &datasource).await?.id;
        Ok(DatasourceView::of(datasource))
    }

    /// A new ingest key; the old one stops at once, or after the grace period.
    pub async fn regenerate_key<P: PepperProvider>(
        &self,
        issuance: &Issuance<P>,
        caller: &Caller,
        id: &str,
        body: RotateKeyBody,
    ) -> Result<RegeneratedKey, ApiError> {
        caller.require(Permission::Admin)?;
        let datasource = self.datasource(caller, id).await?;
        let current = self.current_key(caller, &datasource).await?;
        let now = self.keys.clock.now();
        let issued = if current.revoked_at.is_none() {
            self.keys.rotate(issuance, caller, current.id.as_str(), body).await?
        } else {
            // Its key was revoked (through /keys): nothing to rotate and no grace to give; a new
            // key, or the datasource could never ingest again. Stored with the link from the
            // revoked key and the datasource's pointer in one write: a new key that nothing led
            // to would outlive its datasource's deletion.
            body.grace_period()?;
            let spec = self.ingest_key_spec(caller, &datasource.id, &datasource.name, Some(current.id.clone()));
            let store = &self.keys.store;
            let (tenant, id, old) = (&caller.tenant, &datasource.id, &current.id);
            let successor = |record: KeyRecord| async move { store.insert_successor(tenant, id, old, &record).await };
            self.keys.insert_with(issuance, caller, spec, now, successor).await?
        };
        let key_id = issued.view.id.clone();
        if current.revoked_at.is_none() {
            self.point_at(caller, &datasource.id, &key_id).await;
        }
        let now = self.keys.clock.now();
        self.keys.audit(caller, AuditAction::DatasourceRegenerateKey, &datasource.id, now).await;
        let event = KeyEvent::new(KeyEventType::DatasourceKeyRegenerated, issued.view.clone(), now);
        self.keys.events.publish(event);
        Ok(RegeneratedKey { datasource_id: datasource.id, key_id, ingest_key: IngestKey::of(issued) })
    }

    /// The key of datasource `id` (named `name`), in the ingest tier, allowed only to ingest.
    fn ingest_key_spec(&self, caller: &Caller, id: &DatasourceId, name: &str, replaces: Option<KeyId>) -> KeySpec {
        let ingest = [Permission::Ingest].into_iter().collect();
        KeySpec {
            datasource_id: Some(id.clone()),
            replaces,
            ..KeySpec::new(caller.tenant.clone(), format!("ingest: {name}"), ingest, self.ingest_tier.clone())
        }
    }

    /// `POST /keys/{id}/rotate`: an ingest key's rotation moves its datasource's pointer too, so
    /// that rotating through `/keys` and through `regenerate-key` leave the same state.
    pub async fn rotate_key<P: PepperProvider>(
        &self,
        issuance: &Issuance<P>,
        caller: &Caller,
        id: &str,
        body: RotateKeyBody,
    ) -> Result<IssuedKey, ApiError> {
        let issued = self.keys.rotate(issuance, caller, id, body).await?;
        if let Some(datasource) = &issued.view.datasource_id {
            self.point_at(caller, datasource, &issued.view.id).await;
        }
        Ok(issued)
    }

    /// Only a pointer: if this fails, `replaced_by` still leads from the old key to the new one.
    async fn point_at(&self, caller: &Caller, datasource: &DatasourceId, key_id: &KeyId) {
        if let Err(error) = self.keys.store.set_datasource_key(&caller.tenant, datasource, key_id).await {
            tracing::warn!(%datasource, %error, "datasource key pointer not updated");
        }
    }

    /// Revokes the datasource's working keys (those in a grace period too) at once, then deletes
    /// its records, at most [`DELETE_BUDGET`] per call.
    pub async fn delete(&self, caller: &Caller, id: &str) -> Result<DeletedDatasource, ApiError> {
        caller.require(Permission::Admin)?;
        let datasource = self.datasource(caller, id).await?;
        // From the current key back along `replaces`, revoking every key that still works. A key
        // replaced longer than the longest grace period ago has expired, and so has every key
        // before it (each was replaced earlier still): the walk ends there. A key that is dead
        // already is passed over, not an end, so a delete that stopped half-way goes on from
        // where it stopped when called again.
        let now = self.keys.clock.now();
        let longest_grace = TimeDelta::seconds(MAX_GRACE_PERIOD_SECONDS as i64);
        let current = self.current_key(caller, &datasource).await?;
        let mut keys_revoked = 0;
        let mut seen = HashSet::new();
        let mut next = Some(current);
        while let Some(record) = next.take() {
            if !seen.insert(record.id.clone()) {
                tracing::error!(datasource = %datasource.id, key_id = %record.id, "a cycle in a key chain");
                return Err(ApiError::Internal);
            }
            if record.status(now) == KeyStatus::Active {
                self.keys.revoke(caller, record.id.as_str()).await?;
                keys_revoked += 1;
            } else {
                // Dead already (a grace period that ended): its gateway key goes too.
                self.keys.retire_if_dead(&record, now).await;
            }
            next = match &record.replaces {
                Some(_) if record.created_at + longest_grace < now => None,
                Some(older) => self.keys.store.get(&caller.tenant, older).await?,
                None => None,
            };
        }
        let step = self.record_store()?.delete_records(&datasource.id, DELETE_BUDGET).await?;
        if !step.remaining {
            self.keys.store.delete_datasource(&caller.tenant, &datasource.id).await?;
            self.keys.audit(caller, AuditAction::DatasourceDelete, &datasource.id, self.keys.clock.now()).await;
        }
        Ok(DeletedDatasource {
            id: datasource.id,
            deleted: !step.remaining,
            keys_revoked,
            records_deleted: step.deleted,
            records_remaining: step.remaining,
        })
    }

    /// `GET /datasources/{id}/records?since&limit&cursor`: in the order stored.
    pub async fn records(
        &self,
        caller: &Caller,
        id: &str,
        since: Option<&str>,
        query: PageQuery<Sequence>,
    ) -> Result<RecordPage, ApiError> {
        caller.require(Permission::Admin)?;
        let since = since
            .map(|text| {
                DateTime::parse_from_rfc3339(text)
                    .map(|at| at.with_timezone(&Utc))
                    .map_err(|_| ApiError::validation("since", "must be an RFC 3339 time, e.g. 2030-01-31T00:00:00Z"))
            })
            .transpose()?;
        let datasource = self.datasource(caller, id).await?;
        let page = self.record_store()?.list(&datasource.id, since, query.limit, query.cursor.as_ref()).await?;
        Ok(RecordPage { records: page.items, next_cursor: page.next_cursor })
    }

    fn record_store(&self) -> Result<&R, ApiError> {
        self.records.ok_or_else(|| {
            tracing::error!("a function without the records table was asked for records");
            ApiError::Internal
        })
    }

    /// The caller's datasource by the id in the path; malformed, missing and foreign ids alike.
    async fn datasource(&self, caller: &Caller, id: &str) -> Result<Datasource, ApiError> {
        let id: DatasourceId = id.parse().map_err(|_| ApiError::NotFound)?;
        self.keys.store.get_datasource(&caller.tenant, &id).await?.ok_or(ApiError::NotFound)
    }

    /// The datasource's current ingest key: its pointer, followed along `replaced_by`. Every
    /// rotation moves the pointer, so this is one read unless a pointer update failed; the chain
    /// is followed to its end however long (no length may make a datasource unmanageable), and
    /// only a cycle, which no rotation makes, is an error.
    async fn current_key(&self, caller: &Caller, datasource: &Datasource) -> Result<KeyRecord, ApiError> {
        let mut key_id = datasource.key_id.clone();
        let mut seen = HashSet::new();
        while seen.insert(key_id.clone()) {
            let record = self.keys.store.get(&caller.tenant, &key_id).await?.ok_or_else(|| {
                tracing::error!(datasource = %datasource.id, %key_id, "a datasource's ingest key is missing");
                ApiError::Internal
            })?;
            match &record.replaced_by {
                Some(next) => key_id = next.clone(),
                None => return Ok(record),
            }
        }
        tracing::error!(datasource = %datasource.id, %key_id, "a cycle in a datasource's key chain");
        Err(ApiError::Internal)
    }
}
