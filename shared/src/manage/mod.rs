//! Key management: the operations behind `/keys`, `/whoami` and `/audit`, over their
//! dependencies (store, API Gateway keys, clock; the pepper only where a key is issued). The
//! Lambda handlers and the local API both call these; no business rule lives in a handler.
//!
//! Every operation checks the caller first, then validates its input, then acts. Another
//! tenant's key is `NOT_FOUND`, exactly like a missing one. Every mutation appends an audit event.

pub mod analytics;
pub mod caller;
pub mod datasources;
pub mod input;
pub mod routes;
pub mod sessions;
pub mod sweep;
pub mod view;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

pub use caller::{Actor, Caller};
pub use input::KeyPolicy;
use input::{CreateKeyBody, ImportKeyBody, ImportedSecret, KeyUpdate, NewKey, PageQuery, RotateKeyBody, UpdateKeyBody};
pub use routes::{Management, ManagementRequest, ROUTES, Reply, Role, Route, spends_credits};
use view::{AuditPage, DailyUsage, Identity, IssuedKey, KeyList, KeyUsage, KeyView, Subject};

use crate::audit::{AuditAction, AuditEvent, AuditLog};
use crate::credits::{CreditBalance, CreditStore, CreditsView};
use crate::events::{KeyEvent, KeyEventType, KeyEvents};
use crate::gateway::GatewayKeys;
use crate::gateway::pool::GatewaySlots;
use crate::gateway::pool::Pools;
use crate::pepper::{CachedPepper, PepperProvider};
use crate::store::{KeyStore, Page};
use crate::verifications::{Granularity, Outcome, VerificationStore, buckets};
use crate::{
    ApiError, ApiKey, AuditId, Clock, KeyChanges, KeyId, KeyProfile, KeyRecord, KeySpec, KeyStatus, Meter, OwnerId,
    Permission, TierName,
};

/// Usage reports cover at most this many days (API Gateway keeps 90).
pub const MAX_USAGE_DAYS: u32 = 90;
/// A filtered listing reads at most this many store pages per request, so one request's cost is
/// bounded however few keys match; the cursor then continues where it stopped.
const MAX_PAGES_PER_FILTERED_LIST: usize = 10;
/// A request whose tenant is at its limit first retires at most this many stopped keys (of any
/// tenant, oldest stop first: the scheduled sweep's index), so that its cost is bounded however
/// many keys the tenant holds. The scheduled sweep reaches the rest within its period.
/// (Boxed where it is awaited: its future is large, and every create's would carry it.)
const KEYS_SWEPT_PER_REQUEST: usize = 1_000;

/// The dependencies every management operation has.
pub struct KeyService<S, G> {
    pub store: Arc<S>,
    pub gateway: G,
    pub clock: Arc<dyn Clock>,
    pub policy: KeyPolicy,
    /// Where key events go (queued; never waited for).
    pub events: Arc<dyn KeyEvents>,
    /// The gateway key pools keys lease from ([`crate::gateway::pool`]).
    pub pools: Arc<Pools>,
}

/// What only issuing a key needs (create, rotate, bootstrap): the pepper and the key profile.
/// Functions that do not issue keys never construct one, and are not allowed to read the pepper.
pub struct Issuance<P> {
    pub peppers: CachedPepper<P>,
    pub profile: KeyProfile,
    /// What signs dashboard sessions (`POST /sessions`); `None` where none are configured.
    pub sessions: Option<crate::session::SessionSigner>,
}

impl<S: KeyStore + GatewaySlots + AuditLog + CreditStore, G: GatewayKeys> KeyService<S, G> {
    /// `POST /keys`.
    pub async fn create<P: PepperProvider>(
        &self,
        issuance: &Issuance<P>,
        caller: &Caller,
        body: CreateKeyBody,
    ) -> Result<IssuedKey, ApiError> {
        caller.require(Permission::Admin)?;
        let now = self.clock.now();
        let (spec, balance) = new_key_spec(caller, body.validate(&self.policy, now)?, now);
        let Some(balance) = balance else { return self.insert(issuance, caller, spec, now).await };
        let balance = &balance;
        let mut issued =
            self.insert_with(issuance, caller, spec, now, |record| self.insert_metered(record, balance)).await?;
        issued.view.credits = Some(crate::credits::CreditsView::of(balance, now));
        Ok(issued)
    }

    /// Stores a new key that has credits: its balance first, so that a record naming its meter
    /// always finds it.
    async fn insert_metered(&self, record: KeyRecord, balance: &CreditBalance) -> Result<(), crate::store::StoreError> {
        let meter = record.meter.as_ref().expect("a key made with credits has its meter");
        Box::pin(self.store.set_credits(meter, Some(balance))).await?;
        self.store.insert(&record).await
    }

    /// `POST /keys/import`: a key another system issued, stored as Latchkey stores every key
    /// (its peppered digest and hint), so that the same string verifies from now on; or, given
    /// only its SHA-256, stored under that until its first use moves it under the pepper. The
    /// answer is the key's view, never the key. The same key twice is `409 CONFLICT`.
    pub async fn import<P: PepperProvider>(
        &self,
        issuance: &Issuance<P>,
        caller: &Caller,
        body: ImportKeyBody,
    ) -> Result<KeyView, ApiError> {
        caller.require(Permission::Admin)?;
        let now = self.clock.now();
        let (spec, balance) = new_key_spec(caller, body.fields.validate(&self.policy, now)?, now);
        // The key checked against the imported shape, or the digest that stands for it.
        enum Imported {
            Key(ApiKey),
            Sha256(crate::KeyDigest),
        }
        let imported = match body.secret {
            ImportedSecret::Plaintext(text) => Imported::Key(issuance.profile.parse_imported(&text).map_err(|_| {
                let prefix = issuance.profile.prefix();
                ApiError::validation(
                    "key",
                    format!("an imported key is 20 to 256 visible ASCII characters, not starting with `{prefix}_`"),
                )
            })?),
            ImportedSecret::Sha256(digest) => Imported::Sha256(digest),
        };
        let make = |hasher: &crate::KeyHasher, spec: KeySpec| match &imported {
            Imported::Key(key) => ((), KeyRecord::new(key, hasher, spec, now)),
            Imported::Sha256(digest) => ((), KeyRecord::imported_digest(*digest, spec, now)),
        };
        let balance = balance.as_ref();
        let ((), record) = self
            .admit(issuance, spec, 0, make, |record| async move {
                match balance {
                    Some(balance) => self.insert_metered(record, balance).await,
                    None => self.store.insert(&record).await,
                }
            })
            .await?;
        self.audit(caller, AuditAction::KeyImport, &record.id, now).await;
        let view = KeyView::of(&record, now).with_credits(balance, now);
        self.events.publish(KeyEvent::new(KeyEventType::Imported, view.clone(), now));
        Ok(view)
    }

    /// The operator's first admin key for a tenant (`bootstrap`): admin, read and write, no
    /// expiry, in any configured tier (the operator's `internal` one included).
    pub async fn bootstrap<P: PepperProvider>(
        &self,
        issuance: &Issuance<P>,
        caller: &Caller,
        name: String,
        tier: &str,
    ) -> Result<IssuedKey, ApiError> {
        let name = input::name(name)?;
        let tier = tier
            .parse::<TierName>()
            .ok()
            .filter(|tier| self.policy.tiers.get(tier).is_some())
            .ok_or_else(|| ApiError::validation("tier", format!("no tier `{tier}` is configured")))?;
        let now = self.clock.now();
        let admin = [Permission::Admin, Permission::Read, Permission::Write].into_iter().collect();
        let spec = KeySpec::new(caller.tenant.clone(), name, admin, tier);
        self.insert(issuance, caller, spec, now).await
    }

    /// `GET /keys/{id}`.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<KeyView, ApiError> {
        caller.require(Permission::Admin)?;
        let id = parse_id(id)?;
        let record = self.store.lookup(&caller.tenant, &id).await?.ok_or(ApiError::NotFound)?;
        Box::pin(self.view(&record, self.clock.now())).await
    }

    /// A key's view with its credits: one read of its balance if it has one, none if not.
    pub(crate) async fn view(&self, record: &KeyRecord, now: DateTime<Utc>) -> Result<KeyView, ApiError> {
        let balance = match &record.meter {
            Some(meter) => self.store.credits(meter).await?,
            None => None,
        };
        Ok(KeyView::of(record, now).with_credits(balance.as_ref(), now))
    }

    /// `GET /keys?limit&cursor&status&owner_id`: one owner's keys from the owner index, the
    /// tenant's from the tenant index; either way in creation order.
    pub async fn list(
        &self,
        caller: &Caller,
        query: PageQuery,
        status: Option<KeyStatus>,
        owner: Option<OwnerId>,
    ) -> Result<KeyList, ApiError> {
        caller.require(Permission::Admin)?;
        let now = self.clock.now();
        let mut keys = Vec::new();
        let mut cursor = query.cursor;
        for _ in 0..MAX_PAGES_PER_FILTERED_LIST {
            let wanted = query.limit - keys.len() as u32;
            let page = match &owner {
                Some(owner) => self.store.owned(&caller.tenant, owner, wanted, cursor.as_ref()).await?,
                None => self.store.list(&caller.tenant, wanted, cursor.as_ref()).await?,
            };
            let more = page.next_cursor.is_some();
            let last = page.items.last().map(|r| r.id.clone());
            for record in page.items.iter().filter(|r| status.is_none_or(|s| r.status(now) == s)) {
                keys.push(Box::pin(self.view(record, now)).await?);
            }
            cursor = last.filter(|_| more).map(|id| crate::store::Cursor::after(&id));
            if cursor.is_none() || keys.len() as u32 == query.limit {
                break;
            }
        }
        Ok(KeyList { keys, next_cursor: cursor.map(|c| c.encode()) })
    }

    /// `PATCH /keys/{id}`. A tier change makes sure the new tier's pool has a slot (the key leases
    /// one on its next verification); a key with a gateway key of its own (from before the pool)
    /// has it moved to the new tier's usage plan first, and back if the store then refuses.
    pub async fn update(&self, caller: &Caller, id: &str, body: UpdateKeyBody) -> Result<KeyView, ApiError> {
        caller.require(Permission::Admin)?;
        let now = self.clock.now();
        let update = body.validate(&self.policy, now)?;
        let current = self.record(caller, id).await?;
        if update.is_empty() {
            return Box::pin(self.view(&current, now)).await;
        }
        let KeyUpdate { mut changes, credits } = update;
        if current.revoked_at.is_some() {
            return Err(ApiError::conflict("a revoked key cannot be updated"));
        }
        // New credits go to the key's balance before its record names it; a key made unlimited
        // stops naming its balance before the balance goes.
        let meter = current.meter.clone().unwrap_or_else(|| current.id.clone());
        let mut unmetered = None;
        match &credits {
            Some(Some(credits)) => {
                Box::pin(self.store.set_credits(&meter, Some(&CreditBalance::new(credits, now)))).await?;
                if current.meter.is_none() {
                    changes.meter = Some(Some(meter));
                }
            }
            Some(None) if current.meter.is_some() => {
                changes.meter = Some(None);
                unmetered = current.meter.clone();
            }
            _ => {}
        }
        if let Some(tier) = &changes.tier {
            self.pools.ensure_slot(&*self.store, &self.gateway, tier).await?;
        }
        let moved = match (&changes.tier, &current.gateway_key) {
            (Some(tier), Some(gateway_key)) if *tier != current.tier => {
                self.gateway.change_tier(gateway_key, &current.tier, tier).await?;
                Some((gateway_key, tier))
            }
            _ => None,
        };
        let updated = match self.store.update(&caller.tenant, &current.id, &changes).await {
            Ok(updated) => updated,
            Err(error) => {
                if let Some((gateway_key, tier)) = moved
                    && let Err(undo) = self.gateway.change_tier(gateway_key, tier, &current.tier).await
                {
                    tracing::error!(key_id = %current.id, gateway_key_id = %gateway_key.id, error = %undo,
                        "the gateway key stays in the new tier's usage plan although the update failed");
                }
                return Err(error.into());
            }
        };
        if let Some(meter) = unmetered
            && let Err(error) = Box::pin(self.store.set_credits(&meter, None)).await
        {
            // The record names no balance any more: what is left of it is never read.
            tracing::warn!(key_id = %updated.id, %error, "the balance of a key made unlimited was not removed");
        }
        // Turning a key off or on is audited and published as such; any other change as an update.
        let view = Box::pin(self.view(&updated, now)).await?;
        let switched = changes.enabled.filter(|enabled| *enabled != current.enabled);
        if let Some(enabled) = switched {
            let (action, event_type) = if enabled {
                (AuditAction::KeyEnable, KeyEventType::Enabled)
            } else {
                (AuditAction::KeyDisable, KeyEventType::Disabled)
            };
            self.audit(caller, action, &updated.id, now).await;
            self.events.publish(KeyEvent::new(event_type, view.clone(), now));
        }
        if switched.is_none() || credits.is_some() || !(KeyChanges { enabled: None, ..changes }).is_empty() {
            self.audit(caller, AuditAction::KeyUpdate, &updated.id, now).await;
            self.events.publish(KeyEvent::new(KeyEventType::Updated, view.clone(), now));
        }
        Ok(view)
    }

    /// `POST /keys/{id}/rotate`: a new key with the same name, permissions, tier and lifetime;
    /// the old one keeps working until the grace period ends (never longer than it would have).
    pub async fn rotate<P: PepperProvider>(
        &self,
        issuance: &Issuance<P>,
        caller: &Caller,
        id: &str,
        body: RotateKeyBody,
    ) -> Result<IssuedKey, ApiError> {
        caller.require(Permission::Admin)?;
        let grace = body.grace_period()?;
        let now = self.clock.now();
        let old = self.record(caller, id).await?;
        // Checked again atomically by the store; checked here so no gateway key is made in vain.
        if old.revoked_at.is_some() {
            return Err(ApiError::conflict("a revoked key cannot be rotated"));
        }
        if old.replaced_by.is_some() {
            return Err(ApiError::conflict("the key was already rotated"));
        }
        // Rotation never extends the old key's life, and never revives an expired one.
        let old_expires_at = old.expires_at.map_or(now + grace, |at| at.min(now + grace));
        let lifetime = old.expires_at.map(|at| at - old.created_at);
        let expires_at = lifetime.or(self.policy.max_lifetime).map(|life| now + bounded(life, &self.policy));
        let spec = KeySpec {
            tenant_id: caller.tenant.clone(),
            name: old.name.clone(),
            permissions: old.permissions.clone(),
            tier: old.tier.clone(),
            expires_at,
            datasource_id: old.datasource_id.clone(),
            replaces: Some(old.id.clone()),
            // Everything the old key carried; disabled stays disabled.
            owner_id: old.owner_id.clone(),
            meta: old.meta.clone(),
            enabled: old.enabled,
            ip_allowlist: old.ip_allowlist.clone(),
            // One budget for both while both verify (the grace period).
            meter: old.meter.clone().map(Meter::Of),
        };
        let old_id = &old.id;
        // As the store counts a rotation: one past the limit when the old key stops at once.
        let allowance = u32::from(old_expires_at <= now);
        let (key, record) = self
            .issue(issuance, spec, now, allowance, |record| async move {
                self.store.rotate(&caller.tenant, old_id, &record, old_expires_at).await.map(drop)
            })
            .await?;
        self.audit(caller, AuditAction::KeyRotate, &old.id, now).await;
        // The old key's gateway key goes as soon as the old key stops: now, without a grace
        // period; otherwise at the next rotation, when the key before it has stopped (every
        // rotation of a chain is where its grace ends are looked at: no scheduler needed).
        let mut stopped = old.clone();
        stopped.expires_at = Some(old_expires_at);
        self.retire_if_dead(&stopped, now).await;
        if let Some(previous) = &old.replaces {
            match self.store.get(&caller.tenant, previous).await {
                Ok(Some(previous)) => drop(self.retire_if_dead(&previous, now).await),
                Ok(None) => {}
                Err(error) => tracing::warn!(key_id = %previous, %error, "replaced key not read for retirement"),
            }
        }
        let mut issued = IssuedKey::new(&key, &record, now);
        issued.view = Box::pin(self.view(&record, now)).await?;
        issued.replaced_key_expires_at = Some(old_expires_at);
        self.events.publish(KeyEvent::new(KeyEventType::Rotated, issued.view.clone(), now));
        Ok(issued)
    }

    /// `DELETE /keys/{id}`: immediate and irreversible; revoking again changes nothing. The API
    /// Gateway key is then deleted and the key retired (retried by a repeat call if that fails:
    /// the key is dead either way, the authorizer denies it).
    pub async fn revoke(&self, caller: &Caller, id: &str) -> Result<(), ApiError> {
        caller.require(Permission::Admin)?;
        let id = parse_id(id)?;
        let now = self.clock.now();
        let record = self.store.revoke(&caller.tenant, &id, now).await?;
        self.retire_if_dead(&record, now).await;
        // The store keeps the first revocation's time: only the call that revoked audits (two
        // revocations at the very same instant would both count, which only a frozen clock does).
        if record.revoked_at == Some(now) {
            self.audit(caller, AuditAction::KeyRevoke, &record.id, now).await;
            self.events.publish(KeyEvent::new(KeyEventType::Revoked, KeyView::of(&record, now), now));
        }
        Ok(())
    }

    /// `GET /keys/{id}/usage?days`: requests let through per day (UTC), from the verification
    /// counts ([`crate::verifications`]: a key's `valid` decisions), and `last_used_at` from the
    /// record. Not from API Gateway's usage plan counts: a pooled gateway key counts whoever held
    /// it that day ([`crate::gateway::pool`]).
    pub async fn usage<V: VerificationStore>(
        &self,
        counts: &V,
        caller: &Caller,
        id: &str,
        days: Option<&str>,
    ) -> Result<KeyUsage, ApiError> {
        caller.require(Permission::Admin)?;
        let days = match days {
            None => 30,
            Some(text) => text.parse::<u32>().ok().filter(|d| (1..=MAX_USAGE_DAYS).contains(d)).ok_or_else(|| {
                ApiError::validation("days", format!("must be a whole number from 1 to {MAX_USAGE_DAYS}"))
            })?,
        };
        let record = self.record(caller, id).await?;
        let now = self.clock.now();
        let today = now.date_naive();
        let from = today - TimeDelta::days(i64::from(days) - 1);
        let midnight = from.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
        let hours = counts.key_hours(&caller.tenant, &record.id, midnight, now).await?;
        let by_day: std::collections::HashMap<chrono::NaiveDate, u64> = buckets(hours, Granularity::Day)
            .into_iter()
            .map(|bucket| (bucket.start.date_naive(), bucket.counts.get(Outcome::Valid)))
            .collect();
        let counted = from
            .iter_days()
            .take_while(|day| *day <= today)
            .map(|date| DailyUsage { date, requests: by_day.get(&date).copied().unwrap_or(0) })
            .collect();
        Ok(KeyUsage { id: record.id, tier: record.tier, last_used_at: record.last_used_at, days: counted })
    }

    /// `GET /whoami`: any valid key or session.
    pub async fn whoami(&self, caller: &Caller) -> Result<Identity, ApiError> {
        let session = || Subject::Session { tenant_id: caller.tenant.clone(), permissions: caller.permissions.clone() };
        let (auth_type, principal, subject) = match &caller.actor {
            Actor::Key(id) => {
                let view = match &caller.key_view {
                    // The record the authorizer admitted this request with (as cached, at most
                    // its TTL old): no read of the record. Its credits are read now (one read, for
                    // a key that has them): what is left after the last request.
                    Some(view) => {
                        let mut view: serde_json::Map<String, serde_json::Value> =
                            serde_json::from_str(view).map_err(|error| {
                                tracing::error!(%error, "the authorizer context's key_view is not a key's view");
                                ApiError::Internal
                            })?;
                        if let Some(meter) = &caller.meter {
                            let now = self.clock.now();
                            let credits =
                                self.store.credits(meter).await?.map(|balance| CreditsView::of(&balance, now));
                            view.insert("credits".to_owned(), serde_json::json!(credits));
                        }
                        view
                    }
                    // A caller from elsewhere (the local API's own tests, an older authorizer):
                    // read. Gone now means revoked and collected in between, which is the
                    // answer a dead key gets.
                    None => {
                        let record = self.store.get(&caller.tenant, id).await?.ok_or(ApiError::InvalidApiKey)?;
                        let Ok(serde_json::Value::Object(view)) =
                            serde_json::to_value(Box::pin(self.view(&record, self.clock.now())).await?)
                        else {
                            return Err(ApiError::Internal);
                        };
                        view
                    }
                };
                ("api_key", id.to_string(), Subject::Key(Box::new(view)))
            }
            Actor::Session { subject } => ("jwt", subject.clone(), session()),
            Actor::Operator => ("operator", "operator".to_owned(), session()),
            Actor::SecretScanning => ("operator", "github:secret-scanning".to_owned(), session()),
        };
        Ok(Identity { auth_type, principal, subject })
    }

    /// `GET /audit?limit&cursor`: newest first.
    pub async fn audit_events(&self, caller: &Caller, query: PageQuery<AuditId>) -> Result<AuditPage, ApiError> {
        caller.require(Permission::Admin)?;
        let Page { items, next_cursor } = self.store.events(&caller.tenant, query.limit, query.cursor.as_ref()).await?;
        Ok(AuditPage { events: items, next_cursor })
    }

    /// Issues and stores a new key (create, bootstrap, a datasource's), and audits it.
    pub(crate) async fn insert<P: PepperProvider>(
        &self,
        issuance: &Issuance<P>,
        caller: &Caller,
        spec: KeySpec,
        now: DateTime<Utc>,
    ) -> Result<IssuedKey, ApiError> {
        self.insert_with(issuance, caller, spec, now, |record| async move { self.store.insert(&record).await }).await
    }

    /// [`Self::insert`] with the write that stores the new record (`store`, tried again once if
    /// a sweep made room): audited and announced as a created key.
    pub(crate) async fn insert_with<P, F, Fut>(
        &self,
        issuance: &Issuance<P>,
        caller: &Caller,
        spec: KeySpec,
        now: DateTime<Utc>,
        store: F,
    ) -> Result<IssuedKey, ApiError>
    where
        P: PepperProvider,
        F: Fn(KeyRecord) -> Fut,
        Fut: Future<Output = Result<(), crate::store::StoreError>>,
    {
        let (key, record) = self.issue(issuance, spec, now, 0, store).await?;
        self.audit(caller, AuditAction::KeyCreate, &record.id, now).await;
        let issued = IssuedKey::new(&key, &record, now);
        self.events.publish(KeyEvent::new(KeyEventType::Created, issued.view.clone(), now));
        Ok(issued)
    }

    /// A tenant's key by the id in the path; malformed, missing and foreign ids are alike.
    /// `caller` as its key's record says now (one consistent read): refused as the authorizer
    /// would refuse it if the key is gone, revoked or expired; its permissions and datasource
    /// the stored ones. Sessions and the operator have no record and pass unchanged.
    pub async fn as_stored_now(&self, caller: Caller) -> Result<Caller, ApiError> {
        let Actor::Key(id) = &caller.actor else {
            return Ok(caller);
        };
        let record = self.store.get(&caller.tenant, id).await?.ok_or(ApiError::InvalidApiKey)?;
        match record.refusal(self.clock.now()) {
            Some(refused) => Err(refused),
            None => Ok(Caller { permissions: record.permissions, datasource: record.datasource_id, ..caller }),
        }
    }

    async fn record(&self, caller: &Caller, id: &str) -> Result<KeyRecord, ApiError> {
        let id = parse_id(id)?;
        self.store.get(&caller.tenant, &id).await?.ok_or(ApiError::NotFound)
    }

    /// Gives a dead key's place back (`KeyStore::retire`): deletes its gateway key, then retires
    /// it, in this order so that a failure in between is retried by the next attempt (deleting is
    /// idempotent) and no retired key keeps a gateway key. Best effort: a failure is logged, the
    /// key is dead either way. `true` if this call retired it.
    pub(crate) async fn retire_if_dead(&self, record: &KeyRecord, now: DateTime<Utc>) -> bool {
        if record.retired_at.is_some() || record.status(now) == KeyStatus::Active {
            return false;
        }
        if let Some(gateway_key) = &record.gateway_key
            && let Err(error) = self.gateway.delete(gateway_key).await
        {
            tracing::warn!(key_id = %record.id, gateway_key_id = %gateway_key.id, %error,
                "dead key's API Gateway key not deleted; retried by the next sweep");
            return false;
        }
        match self.store.retire(&record.tenant_id, &record.id, now).await {
            Ok(retired) => retired,
            Err(error) => {
                tracing::warn!(key_id = %record.id, %error, "dead key not retired; retried by the next sweep");
                false
            }
        }
    }

    /// Retires a key that stopped by the clock or by revocation, found by a sweep, and sends
    /// `key.expired` for one that expired (not for a revoked one: `key.revoked` was sent; nor for
    /// one replaced by a rotation, whose end `key.rotated` announced). Retirement happens once,
    /// so the event does too.
    pub(crate) async fn retire_stopped(&self, record: &KeyRecord, now: DateTime<Utc>) -> bool {
        let retired = self.retire_if_dead(record, now).await;
        if retired && record.revoked_at.is_none() && record.replaced_by.is_none() {
            self.events.publish(KeyEvent::new(KeyEventType::Expired, KeyView::of(record, now), now));
        }
        retired
    }

    /// Generates a key and stores it with `store`. No API Gateway key is made for it: it leases a
    /// pooled one when it is first verified ([`crate::gateway::pool`]); only the first key of a
    /// tier whose pool is still empty makes that pool's first gateway key. A tenant at its limit
    /// has its dead keys retired and is refused if still full; the store's own count decides in
    /// the end, with one more sweep if a race filled the tenant in between. `allowance`: keys
    /// past the limit this store may make (a rotation whose old key stops at once: 1).
    async fn issue<P, F, Fut>(
        &self,
        issuance: &Issuance<P>,
        spec: KeySpec,
        now: DateTime<Utc>,
        allowance: u32,
        store: F,
    ) -> Result<(ApiKey, KeyRecord), ApiError>
    where
        P: PepperProvider,
        F: Fn(KeyRecord) -> Fut,
        Fut: Future<Output = Result<(), crate::store::StoreError>>,
    {
        let make = |hasher: &crate::KeyHasher, spec| KeyRecord::issue(&issuance.profile, hasher, spec, now);
        self.admit(issuance, spec, allowance, make, store).await
    }

    /// Makes room for a new key of `spec` (a slice of the sweep when its tenant is at its limit;
    /// a slot in its tier's pool), makes its record under the current pepper, and stores it
    /// (`store`, tried again once if a sweep made room). `make` returns what else it made (the
    /// new key itself, when Latchkey generated it).
    async fn admit<P, T, M, F, Fut>(
        &self,
        issuance: &Issuance<P>,
        spec: KeySpec,
        allowance: u32,
        make: M,
        store: F,
    ) -> Result<(T, KeyRecord), ApiError>
    where
        P: PepperProvider,
        M: FnOnce(&crate::KeyHasher, KeySpec) -> (T, KeyRecord),
        F: Fn(KeyRecord) -> Fut,
        Fut: Future<Output = Result<(), crate::store::StoreError>>,
    {
        if let Err(crate::store::StoreError::LimitReached { .. }) = self.store.room(&spec.tenant_id, allowance).await {
            if let Err(error) = Box::pin(self.sweep_stopped(KEYS_SWEPT_PER_REQUEST)).await {
                tracing::warn!(tenant = %spec.tenant_id, %error, "sweep for dead keys failed");
            }
            self.store.room(&spec.tenant_id, allowance).await?;
        }
        self.pools.ensure_slot(&*self.store, &self.gateway, &spec.tier).await?;
        let peppers = issuance.peppers.current().await;
        let (made, record) = make(&peppers.current, spec);
        let mut stored = store(record.clone()).await;
        if matches!(stored, Err(crate::store::StoreError::LimitReached { .. })) {
            match Box::pin(self.sweep_stopped(KEYS_SWEPT_PER_REQUEST)).await {
                Ok(swept) if swept.retired == 0 => {}
                Ok(_) => stored = store(record.clone()).await,
                Err(error) => tracing::warn!(tenant = %record.tenant_id, %error, "sweep for dead keys failed"),
            }
        }
        stored?;
        Ok((made, record))
    }

    /// Appends an audit event. The mutation has happened by now, so a failure to record it does
    /// not fail the request; the event goes to the error log in full instead, to be replayed.
    pub(crate) async fn audit(
        &self,
        caller: &Caller,
        action: AuditAction,
        target: &impl std::fmt::Display,
        at: DateTime<Utc>,
    ) {
        self.append_audit(caller, action, target, at, None).await;
    }

    /// [`Self::audit`] of something found somewhere (`key.leaked`): where, in `found_at`.
    pub(crate) async fn audit_found(
        &self,
        caller: &Caller,
        action: AuditAction,
        target: &impl std::fmt::Display,
        at: DateTime<Utc>,
        found_at: &str,
    ) {
        self.append_audit(caller, action, target, at, Some(found_at.to_owned())).await;
    }

    async fn append_audit(
        &self,
        caller: &Caller,
        action: AuditAction,
        target: &impl std::fmt::Display,
        at: DateTime<Utc>,
        found_at: Option<String>,
    ) {
        let event = AuditEvent {
            id: AuditId::generate(),
            tenant_id: caller.tenant.clone(),
            actor: caller.actor_label(),
            action,
            target: target.to_string(),
            at,
            request_id: caller.request_id.clone(),
            found_at,
        };
        if let Err(error) = self.store.append(&event).await {
            let event = serde_json::to_string(&event).unwrap_or_default();
            tracing::error!(%error, %event, "audit event not stored");
        }
    }
}

/// The spec of a key made by `POST /keys` or `/keys/import` for `caller`'s tenant, and the
/// balance of its credits (its own meter) if it has any.
fn new_key_spec(caller: &Caller, new: NewKey, now: DateTime<Utc>) -> (KeySpec, Option<CreditBalance>) {
    let spec = KeySpec {
        tenant_id: caller.tenant.clone(),
        name: new.name,
        permissions: new.permissions,
        tier: new.tier,
        expires_at: new.expires_at,
        datasource_id: None,
        replaces: None,
        owner_id: new.owner_id,
        meta: new.meta,
        enabled: new.enabled,
        ip_allowlist: new.ip_allowlist,
        meter: new.credits.map(|_| Meter::Own),
    };
    (spec, new.credits.map(|credits| CreditBalance::new(&credits, now)))
}

fn parse_id(id: &str) -> Result<KeyId, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

fn bounded(lifetime: TimeDelta, policy: &KeyPolicy) -> TimeDelta {
    policy.max_lifetime.map_or(lifetime, |max| lifetime.min(max))
}
