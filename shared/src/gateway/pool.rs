//! The gateway key pool: API Gateway keys made ahead of time, per tier, and leased to Latchkey
//! keys while they are in use, so that a deployment's keys are not bounded by API Gateway's
//! 10,000 keys per account and region, and creating one makes no API Gateway call.
//!
//! A tier's pool is numbered slots, `0..size`, each holding one gateway key attached to the
//! tier's usage plan. A key verified without a current lease claims one: the slots its id hashes
//! to ([`LEASE_PROBES`] of them, each an independent hash, so that keys do not pile up behind each
//! other), each claimed with one conditional write that succeeds only if the slot is free (never
//! leased, or its lease has ended) or already the key's. Two keys never hold one slot at once.
//!
//! A lease lasts until the end of the UTC day it was taken in: the usage plans' quotas count
//! per UTC day, so a slot's count of the day belongs to one key, and each key's throttle and
//! quota are exact. It ends by itself (nothing to give back); a key still in use the next day
//! claims again, and finds its own slot first if nobody took it.
//!
//! When every probed slot is held (more keys in use today than the pool has slots), the key is
//! never refused for it: it shares the first slot it probed ([`Lease::shared`]), throttled and
//! counted together with that slot's holder, and tries again for a slot of its own a minute
//! later. [`fill`] grows a pool at `CreateApiKey`'s pace.

use std::future::Future;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::GatewayKeys;
use crate::store::StoreError;
use crate::{ApiError, GatewayKey, KeyDigest, KeyId, TierName};

/// Slots a key tries before it shares one.
pub const LEASE_PROBES: u32 = 8;
/// How long a key that shares a slot waits before it tries for one of its own again.
pub const SHARED_RETRY: TimeDelta = TimeDelta::minutes(1);

/// A key's hold on a slot of its tier's pool: what the authorizer returns as the request's
/// `usageIdentifierKey`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub tier: TierName,
    pub slot: u32,
    /// The slot's gateway key value. Not a Latchkey key and it authenticates nothing, but kept
    /// out of `Debug` like [`GatewayKey`].
    pub value: String,
    /// When the lease ends: the end of the UTC day it was taken in ([`SHARED_RETRY`] after it
    /// was taken, for a shared slot).
    pub until: DateTime<Utc>,
    /// Held by another key: the pool had no free slot among the key's probes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("tier", &self.tier)
            .field("slot", &self.slot)
            .field("until", &self.until)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// Whether a key of `tier` may still use this lease at `now`.
    pub fn serves(&self, tier: &TierName, now: DateTime<Utc>) -> bool {
        &self.tier == tier && now < self.until
    }
}

/// The answer to one claim of a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The slot is the key's until the requested time; its gateway key value.
    Leased(String),
    /// Another key holds it; its gateway key value (what sharing it would use).
    Held(String),
    /// There is no such slot (a pool size read before it shrank, or a hand edit).
    Missing,
}

/// Where the pools live (the keys table; the embedded store for the contract tests).
pub trait GatewaySlots: Send + Sync {
    /// How many slots `tier`'s pool has. Slots are numbered from 0 and never taken away.
    fn pool_size(&self, tier: &TierName) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Leases `slot` to `key` until `until` if, at `now`, nobody holds it or `key` does already
    /// (then the lease is extended): one conditional write.
    fn claim(
        &self,
        tier: &TierName,
        slot: u32,
        key: &KeyId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Adds `gateway_key` to `tier`'s pool as slot number `slot`, which must be the pool's size:
    /// `false` (and nothing written) if another writer added that slot first.
    fn add_slot(
        &self,
        tier: &TierName,
        slot: u32,
        gateway_key: &GatewayKey,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Notes `lease` on the record stored under `digest`, so that the next read of it has it.
    /// Like `touch`: unconditional on the revision, and never creates an item.
    fn note_lease(&self, digest: &KeyDigest, lease: &Lease) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes the gateway key of its own (from before the pool) away from the record under
    /// `digest`, if it is still `gateway_key_id`: `false` if the record has another or none.
    /// Unconditional on the revision, like `note_lease`: the key itself does not change.
    fn forget_own_gateway_key(
        &self,
        digest: &KeyDigest,
        gateway_key_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The end of the UTC day of `now`: when a lease taken at `now` ends.
pub fn end_of_day(now: DateTime<Utc>) -> DateTime<Utc> {
    let midnight = now.date_naive().and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
    midnight + TimeDelta::days(1)
}

/// The `probe`-th slot `key` tries in a pool of `size` (> 0).
pub fn probe_slot(key: &KeyId, probe: u32, size: u32) -> u32 {
    let mut hash = Sha256::new();
    hash.update(key.as_str().as_bytes());
    hash.update(probe.to_be_bytes());
    let digest = hash.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % size
}

/// A lease for `key` in `tier`'s pool of `size` slots at `now`: its own slot if one of its probes
/// is free or its own, a shared one otherwise; `None` only for an empty pool.
pub async fn lease<S: GatewaySlots>(
    slots: &S,
    tier: &TierName,
    size: u32,
    key: &KeyId,
    now: DateTime<Utc>,
) -> Result<Option<Lease>, StoreError> {
    if size == 0 {
        return Ok(None);
    }
    let until = end_of_day(now);
    let mut first_held = None;
    let mut tried = Vec::with_capacity(LEASE_PROBES as usize);
    for probe in 0..LEASE_PROBES {
        let slot = probe_slot(key, probe, size);
        if tried.contains(&slot) {
            continue;
        }
        tried.push(slot);
        match slots.claim(tier, slot, key, now, until).await? {
            Claim::Leased(value) => return Ok(Some(Lease { tier: tier.clone(), slot, value, until, shared: false })),
            Claim::Held(value) => {
                first_held.get_or_insert((slot, value));
            }
            Claim::Missing => {}
        }
    }
    Ok(first_held.map(|(slot, value)| {
        tracing::warn!(%tier, size, key_id = %key, slot, "gateway key pool exhausted: the key shares a slot");
        Lease { tier: tier.clone(), slot, value, until: (now + SHARED_RETRY).min(until), shared: true }
    }))
}

/// The name of a pooled gateway key: its tier and slot, for operators reading API Gateway's list.
pub fn slot_name(tier: &TierName, slot: u32) -> String {
    format!("latchkey-pool-{tier}-{slot}")
}

/// Slots each tier's pool is grown to unless configured otherwise (`LATCHKEY_GATEWAY_POOL_SIZE`).
pub const DEFAULT_POOL_SIZE: u32 = 1_000;
/// New gateway keys one sweep run makes, all tiers together: at API Gateway's pace (5
/// `CreateApiKey` a second per account, shared with everything else in it), a run's share of the
/// sweep function's timeout.
pub const FILL_PER_SWEEP: u32 = 100;

/// The pools a deployment keeps: how large each tier's grows, and which tiers this instance
/// knows to have a slot already.
#[derive(Debug)]
pub struct Pools {
    pub target: u32,
    ready: std::sync::Mutex<std::collections::HashSet<TierName>>,
    /// Held while a first slot is made: a burst of creates on a new deployment waits for one
    /// `CreateApiKey` instead of racing with as many.
    first_slot: tokio::sync::Mutex<()>,
}

impl Default for Pools {
    fn default() -> Self {
        Self::new(DEFAULT_POOL_SIZE)
    }
}

impl Pools {
    pub fn new(target: u32) -> Self {
        Self { target, ready: Default::default(), first_slot: Default::default() }
    }

    pub fn is_ready(&self, tier: &TierName) -> bool {
        self.ready.lock().expect("pools lock").contains(tier)
    }

    pub fn mark_ready(&self, tier: &TierName) {
        self.ready.lock().expect("pools lock").insert(tier.clone());
    }

    /// Makes sure `tier`'s pool has a slot: one `CreateApiKey` for a new deployment's first key
    /// of a tier (the sweep grows the pool from there); free once it is known here.
    pub async fn ensure_slot<S: GatewaySlots, G: GatewayKeys>(
        &self,
        slots: &S,
        gateway: &G,
        tier: &TierName,
    ) -> Result<(), ApiError> {
        if self.is_ready(tier) {
            return Ok(());
        }
        let _only_one = self.first_slot.lock().await;
        if !self.is_ready(tier) {
            fill(slots, gateway, tier, 1, 1).await?;
            self.mark_ready(tier);
        }
        Ok(())
    }
}

/// What became of a key's own gateway key (from before the pool) in [`adopt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Adopted {
    /// It is a slot of its tier's pool now.
    IntoPool,
    /// Its tier's pool was full: it was deleted.
    Deleted,
    /// The record no longer held it (adopted by a concurrent run, or the key changed).
    Gone,
}

/// Moves a key made before the pool onto it, without the key changing: its own gateway key (in
/// its tier's plan already) becomes the next slot of its tier's pool while the pool is below
/// `target`, and is deleted otherwise; then the record forgets it and the key leases a slot like
/// every other on its next verification. The slot is added before the record forgets the key, so
/// a failure in between leaves a key that still has its own (a second run finishes it), never a
/// gateway key that nothing knows of.
pub async fn adopt<S: GatewaySlots, G: GatewayKeys>(
    slots: &S,
    gateway: &G,
    record: &crate::KeyRecord,
    target: u32,
) -> Result<Adopted, ApiError> {
    let Some(own) = &record.gateway_key else { return Ok(Adopted::Gone) };
    let mut size = slots.pool_size(&record.tier).await?;
    let adopted = loop {
        if size >= target {
            break false;
        }
        if slots.add_slot(&record.tier, size, own).await? {
            break true;
        }
        // Another writer took that slot number: the next one.
        size = slots.pool_size(&record.tier).await?;
    };
    if !adopted {
        gateway.delete(own).await?;
    }
    if !slots.forget_own_gateway_key(&record.digest, &own.id).await? {
        return Ok(Adopted::Gone);
    }
    Ok(if adopted { Adopted::IntoPool } else { Adopted::Deleted })
}

/// What [`fill`] did to one pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Filled {
    pub added: u32,
    pub size: u32,
}

/// Grows `tier`'s pool towards `target` slots, at most `budget` new gateway keys in this call,
/// one at a time (each `CreateApiKey` is retried while API Gateway throttles it, so a throttle
/// slows the filling down and is never an error). A gateway key made for a slot that another
/// filler took first is deleted again.
pub async fn fill<S: GatewaySlots, G: GatewayKeys>(
    slots: &S,
    gateway: &G,
    tier: &TierName,
    target: u32,
    budget: u32,
) -> Result<Filled, ApiError> {
    let mut filled = Filled { added: 0, size: slots.pool_size(tier).await? };
    while filled.size < target && filled.added < budget {
        let slot = filled.size;
        let Some(gateway_key) = gateway.issue(&slot_name(tier, slot), tier).await? else {
            // A gateway that makes no keys (the local API): there is nothing to pool.
            return Ok(filled);
        };
        if slots.add_slot(tier, slot, &gateway_key).await? {
            // Added only while the pool held `slot` slots: it holds one more now.
            filled.added += 1;
            filled.size = slot + 1;
        } else {
            if let Err(error) = gateway.delete(&gateway_key).await {
                tracing::error!(%tier, slot, gateway_key_id = %gateway_key.id, %error, "orphaned pool gateway key");
            }
            filled.size = slots.pool_size(tier).await?;
        }
    }
    Ok(filled)
}

/// Slots in memory, with the claim rule of the stores: for unit tests of what runs over them.
#[cfg(test)]
pub(crate) mod fake {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    /// A slot's value and its holder with the end of its lease.
    type Slot = (String, Option<(KeyId, DateTime<Utc>)>);

    /// Slots in memory, with the claim rule of the stores.
    #[derive(Default)]
    pub(crate) struct Memory {
        slots: Mutex<HashMap<(TierName, u32), Slot>>,
    }

    impl GatewaySlots for Memory {
        async fn pool_size(&self, tier: &TierName) -> Result<u32, StoreError> {
            Ok(self.slots.lock().unwrap().keys().filter(|(t, _)| t == tier).count() as u32)
        }
        async fn claim(
            &self,
            tier: &TierName,
            slot: u32,
            key: &KeyId,
            now: DateTime<Utc>,
            until: DateTime<Utc>,
        ) -> Result<Claim, StoreError> {
            let mut slots = self.slots.lock().unwrap();
            let Some((value, holder)) = slots.get_mut(&(tier.clone(), slot)) else { return Ok(Claim::Missing) };
            match holder {
                Some((other, ends)) if other != key && *ends > now => Ok(Claim::Held(value.clone())),
                _ => {
                    *holder = Some((key.clone(), until));
                    Ok(Claim::Leased(value.clone()))
                }
            }
        }
        async fn add_slot(&self, tier: &TierName, slot: u32, key: &GatewayKey) -> Result<bool, StoreError> {
            let mut slots = self.slots.lock().unwrap();
            if slots.contains_key(&(tier.clone(), slot)) {
                return Ok(false);
            }
            slots.insert((tier.clone(), slot), (key.value.clone(), None));
            Ok(true)
        }
        async fn note_lease(&self, _: &KeyDigest, _: &Lease) -> Result<(), StoreError> {
            Ok(())
        }
        async fn forget_own_gateway_key(&self, _: &KeyDigest, _: &str) -> Result<bool, StoreError> {
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::Memory;
    use super::*;

    fn tier() -> TierName {
        "free".parse().unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    async fn pool(size: u32) -> Memory {
        let memory = Memory::default();
        for slot in 0..size {
            let key = GatewayKey { id: format!("gw-{slot}"), value: format!("value-{slot}") };
            assert!(memory.add_slot(&tier(), slot, &key).await.unwrap());
        }
        memory
    }

    #[test]
    fn a_lease_ends_with_the_utc_day() {
        assert_eq!(end_of_day(at("2030-05-01T00:00:00Z")), at("2030-05-02T00:00:00Z"));
        assert_eq!(end_of_day(at("2030-05-01T23:59:59.999Z")), at("2030-05-02T00:00:00Z"));
        assert_eq!(end_of_day(at("2030-12-31T12:00:00Z")), at("2031-01-01T00:00:00Z"));
    }

    #[test]
    fn probes_spread_over_the_pool() {
        let key = KeyId::generate();
        let slots: std::collections::HashSet<u32> = (0..LEASE_PROBES).map(|p| probe_slot(&key, p, 1000)).collect();
        assert!(slots.len() >= LEASE_PROBES as usize - 1, "{slots:?}");
        assert!((0..LEASE_PROBES).all(|p| probe_slot(&key, p, 1) == 0));
    }

    #[tokio::test]
    async fn keys_hold_slots_of_their_own_until_the_pool_is_full_then_share() {
        let memory = pool(4).await;
        let now = at("2030-05-01T10:00:00Z");
        let mut held = std::collections::HashSet::new();
        let mut shared = 0;
        for _ in 0..40 {
            let lease = lease(&memory, &tier(), 4, &KeyId::generate(), now).await.unwrap().unwrap();
            if lease.shared {
                shared += 1;
                assert_eq!(lease.until, now + SHARED_RETRY);
            } else {
                assert!(held.insert(lease.slot), "slot {} leased twice", lease.slot);
                assert_eq!(lease.until, at("2030-05-02T00:00:00Z"));
            }
            assert_eq!(lease.value, format!("value-{}", lease.slot));
        }
        assert!(held.len() <= 4 && shared >= 36, "{held:?} {shared}");
    }

    #[tokio::test]
    async fn a_key_finds_its_own_slot_again_and_a_lapsed_one_is_taken() {
        let memory = pool(64).await;
        let (first, second) = (KeyId::generate(), KeyId::generate());
        let now = at("2030-05-01T10:00:00Z");
        let mine = lease(&memory, &tier(), 64, &first, now).await.unwrap().unwrap();
        let again = lease(&memory, &tier(), 64, &first, now + TimeDelta::hours(3)).await.unwrap().unwrap();
        assert_eq!((again.slot, again.shared), (mine.slot, false));
        // The next day the slot is free: another key whose probe lands on it may take it.
        let tomorrow = at("2030-05-02T00:00:00Z");
        assert_eq!(
            memory.claim(&tier(), mine.slot, &second, tomorrow, end_of_day(tomorrow)).await.unwrap(),
            Claim::Leased(mine.value.clone())
        );
        let moved = lease(&memory, &tier(), 64, &first, tomorrow).await.unwrap().unwrap();
        assert!(moved.slot != mine.slot && !moved.shared, "{moved:?}");
    }

    #[tokio::test]
    async fn an_empty_pool_leases_nothing() {
        assert_eq!(lease(&Memory::default(), &tier(), 0, &KeyId::generate(), Utc::now()).await.unwrap(), None);
    }
}
