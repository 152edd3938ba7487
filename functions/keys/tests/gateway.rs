//! API Gateway keys in moto's API Gateway: a key's gateway key follows its tier and its life, and
//! a create that fails halfway leaves nothing behind.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use common::{Noting, Stack};
use latchkey::audit::{AuditEvent, AuditLog};
use latchkey::datasource::{Datasource, DatasourceStore};
use latchkey::gateway::apigateway::{ApiGatewayKeys, PlanNames, UsagePlans};
use latchkey::gateway::{GatewayError, GatewayKeys};
use latchkey::ingest::dynamo::DynamoRecordStore;
use latchkey::manage::{Caller, KeyService, Management, ManagementRequest, Role};
use latchkey::store::dynamo::DynamoKeyStore;
use latchkey::store::{Cursor, KeyStore, Page, StoreError};
use latchkey::{
    AuditId, DatasourceId, GatewayKey, KeyChanges, KeyDigest, KeyId, KeyRecord, OwnerId, PepperVersion, TenantId,
};
use latchkey_tests::StaticPepper;
use serde_json::json;

/// The id of the gateway key whose value is `value`, among moto's.
async fn gateway_key_with_value(stack: &Stack, value: &str) -> String {
    let all = stack.apigateway.get_api_keys().include_values(true).limit(500).send().await.unwrap();
    let found = all.items().iter().find(|key| key.value() == Some(value)).expect("a gateway key of that value");
    found.id().unwrap().to_owned()
}

/// What the authorizer noted for a key after it verified it.
async fn lease_of(stack: &Stack, id: &str) -> latchkey::gateway::pool::Lease {
    let record = stack.store.get(&"acme".parse().unwrap(), &id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(record.gateway_key, None, "a key made now has no gateway key of its own");
    record.lease.expect("a verified key has a lease")
}

/// Keys lease a slot of their tier's pool, made by the first key of the tier; a tier change
/// leases from the new tier's pool; a key from before the pool keeps its own gateway key, which
/// follows its tier and goes with it.
#[tokio::test]
async fn keys_lease_their_tiers_pool_and_a_key_from_before_it_keeps_its_own() {
    use latchkey::gateway::pool::GatewaySlots;
    let stack = Stack::new().await;
    let admin = stack.bootstrap("acme").await;
    let created =
        stack.call(&admin, "POST", "/keys", Some(json!({"name": "metered", "tier": "free"}))).await.expect(201);
    let id = created["id"].as_str().unwrap();
    let (free, starter) = ("free".parse().unwrap(), "starter".parse().unwrap());
    assert_eq!(stack.store.pool_size(&free).await.unwrap(), 1, "the tier's first key made its pool's first slot");
    assert_eq!(stack.gateway_keys_named(&[id]).await, 0, "no gateway key of its own");
    let decision = stack.call(created["key"].as_str().unwrap(), "GET", "/whoami", None).await.expect(200);
    assert_eq!(decision["tier"], "free");
    // Its lease is a gateway key of the free plan; its value is API Gateway's, not ours.
    let lease = lease_of(&stack, id).await;
    assert_eq!((lease.tier.as_str(), lease.slot, lease.shared), ("free", 0, false));
    let slot_key = gateway_key_with_value(&stack, &lease.value).await;
    assert_eq!(stack.gateway_key(&slot_key).await, Some((true, vec!["free".to_owned()])));
    assert_ne!(lease.value, created["key"].as_str().unwrap());

    // A tier change: the starter pool gets its slot, and the key leases it once the
    // authorizer's cached decision has expired.
    stack.call(&admin, "PATCH", &format!("/keys/{id}"), Some(json!({"tier": "starter"}))).await.expect(200);
    assert_eq!(stack.store.pool_size(&starter).await.unwrap(), 1);
    stack.let_cached_decisions_expire();
    stack.call(created["key"].as_str().unwrap(), "GET", "/whoami", None).await.expect(200);
    let lease = lease_of(&stack, id).await;
    assert_eq!(lease.tier.as_str(), "starter");
    let slot_key = gateway_key_with_value(&stack, &lease.value).await;
    assert_eq!(stack.gateway_key(&slot_key).await, Some((true, vec!["starter".to_owned()])));

    // A key from before the pool: its own gateway key moves with its tier and is deleted with it.
    let old = stack.call(&admin, "POST", "/keys", Some(json!({"name": "old", "tier": "free"}))).await.expect(201);
    let old_id = old["id"].as_str().unwrap();
    let own = stack.make_own_gateway_key("acme", old_id).await;
    stack.call(&admin, "PATCH", &format!("/keys/{old_id}"), Some(json!({"tier": "starter"}))).await.expect(200);
    assert_eq!(stack.gateway_key(&own).await, Some((true, vec!["starter".to_owned()])));
    for _ in 0..2 {
        assert_eq!(stack.call(&admin, "DELETE", &format!("/keys/{old_id}"), None).await.status, 204);
        assert_eq!(stack.gateway_key(&own).await, None);
    }
}

/// The real DynamoDB store with injected faults: refusing to store any new key (after the
/// gateway key is made and before the record is written), or failing the next updates of a
/// datasource's key pointer.
pub(crate) struct Faulty {
    inner: DynamoKeyStore,
    refuses_new_keys: bool,
    pointer_failures: AtomicU32,
}

impl Faulty {
    fn refusing_new_keys(inner: DynamoKeyStore) -> Self {
        Self { inner, refuses_new_keys: true, pointer_failures: AtomicU32::new(0) }
    }

    pub(crate) fn failing_pointer_updates(inner: DynamoKeyStore, times: u32) -> Self {
        Self { inner, refuses_new_keys: false, pointer_failures: AtomicU32::new(times) }
    }

    fn refused<T>(&self) -> Option<Result<T, StoreError>> {
        self.refuses_new_keys.then(|| Err(StoreError::Unavailable("injected: the table refused the write".into())))
    }
}

/// The stack's functions over `store`, with the stack's table, gateway and pepper; the gateway
/// keys made on the way are noted.
pub(crate) async fn management_over(
    stack: &Stack,
    store: Faulty,
) -> Management<Faulty, Noting, StaticPepper, DynamoRecordStore> {
    Management {
        service: KeyService {
            store: Arc::new(store),
            gateway: Noting::new(stack),
            clock: stack.clock.clone(),
            policy: common::policy(),
            events: std::sync::Arc::new(latchkey::events::NoEvents),
            pools: Default::default(),
        },
        issuance: Some(common::issuance().await),
        records: None,
        ingest_tier: "free".parse().unwrap(),
        roles: &[Role::Issue],
        leak_action: Default::default(),
    }
}

/// The stack's own table, as a second store.
pub(crate) fn same_table(stack: &Stack) -> DynamoKeyStore {
    DynamoKeyStore::new(stack.store.client().clone(), stack.store.table(), TimeDelta::days(30))
}

impl latchkey::gateway::pool::GatewaySlots for Faulty {
    async fn pool_size(&self, tier: &latchkey::TierName) -> Result<u32, StoreError> {
        self.inner.pool_size(tier).await
    }
    async fn claim(
        &self,
        tier: &latchkey::TierName,
        slot: u32,
        key: &KeyId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<latchkey::gateway::pool::Claim, StoreError> {
        self.inner.claim(tier, slot, key, now, until).await
    }
    async fn add_slot(&self, tier: &latchkey::TierName, slot: u32, key: &GatewayKey) -> Result<bool, StoreError> {
        self.inner.add_slot(tier, slot, key).await
    }
    async fn note_lease(&self, digest: &KeyDigest, lease: &latchkey::gateway::pool::Lease) -> Result<(), StoreError> {
        self.inner.note_lease(digest, lease).await
    }

    async fn forget_own_gateway_key(&self, digest: &KeyDigest, gateway_key_id: &str) -> Result<bool, StoreError> {
        self.inner.forget_own_gateway_key(digest, gateway_key_id).await
    }
}

impl latchkey::credits::CreditStore for Faulty {
    async fn set_credits(
        &self,
        meter: &KeyId,
        balance: Option<&latchkey::credits::CreditBalance>,
    ) -> Result<(), StoreError> {
        self.inner.set_credits(meter, balance).await
    }

    async fn credits(&self, meter: &KeyId) -> Result<Option<latchkey::credits::CreditBalance>, StoreError> {
        self.inner.credits(meter).await
    }

    async fn spend_credit(
        &self,
        meter: &KeyId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<latchkey::credits::Spend>, StoreError> {
        self.inner.spend_credit(meter, now).await
    }
}

impl KeyStore for Faulty {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        match self.refused() {
            Some(refused) => refused,
            None => self.inner.insert(record).await,
        }
    }
    async fn find_by_digest(&self, digest: &KeyDigest) -> Result<Option<KeyRecord>, StoreError> {
        self.inner.find_by_digest(digest).await
    }
    async fn get(&self, tenant: &TenantId, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.inner.get(tenant, id).await
    }
    async fn list(&self, tenant: &TenantId, limit: u32, after: Option<&Cursor>) -> Result<Page<KeyRecord>, StoreError> {
        self.inner.list(tenant, limit, after).await
    }
    async fn owned(
        &self,
        tenant: &TenantId,
        owner: &OwnerId,
        limit: u32,
        after: Option<&Cursor>,
    ) -> Result<Page<KeyRecord>, StoreError> {
        self.inner.owned(tenant, owner, limit, after).await
    }
    async fn revoke(&self, tenant: &TenantId, id: &KeyId, at: DateTime<Utc>) -> Result<KeyRecord, StoreError> {
        self.inner.revoke(tenant, id, at).await
    }
    async fn rotate(
        &self,
        tenant: &TenantId,
        id: &KeyId,
        replacement: &KeyRecord,
        old_expires_at: DateTime<Utc>,
    ) -> Result<KeyRecord, StoreError> {
        match self.refused() {
            Some(refused) => refused,
            None => self.inner.rotate(tenant, id, replacement, old_expires_at).await,
        }
    }
    async fn update(&self, tenant: &TenantId, id: &KeyId, changes: &KeyChanges) -> Result<KeyRecord, StoreError> {
        self.inner.update(tenant, id, changes).await
    }
    async fn retire(&self, tenant: &TenantId, id: &KeyId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.inner.retire(tenant, id, at).await
    }
    async fn room(&self, tenant: &TenantId, allowance: u32) -> Result<(), StoreError> {
        self.inner.room(tenant, allowance).await
    }
    async fn stopped(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        after: Option<&KeyRecord>,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        self.inner.stopped(now, limit, after).await
    }
    async fn touch(&self, digest: &KeyDigest, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.touch(digest, at).await
    }
    async fn note_expiry_warning(&self, record: &KeyRecord) -> Result<bool, StoreError> {
        self.inner.note_expiry_warning(record).await
    }
    async fn rehash(&self, record: &KeyRecord, digest: KeyDigest, version: PepperVersion) -> Result<(), StoreError> {
        self.inner.rehash(record, digest, version).await
    }
}

impl DatasourceStore for Faulty {
    async fn insert_datasource(&self, datasource: &Datasource) -> Result<(), StoreError> {
        self.inner.insert_datasource(datasource).await
    }
    async fn get_datasource(&self, tenant: &TenantId, id: &DatasourceId) -> Result<Option<Datasource>, StoreError> {
        self.inner.get_datasource(tenant, id).await
    }
    async fn list_datasources(
        &self,
        tenant: &TenantId,
        limit: u32,
        after: Option<&Cursor<DatasourceId>>,
    ) -> Result<Page<Datasource>, StoreError> {
        self.inner.list_datasources(tenant, limit, after).await
    }
    async fn set_datasource_key(&self, tenant: &TenantId, id: &DatasourceId, key: &KeyId) -> Result<(), StoreError> {
        let failing = self.pointer_failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err(StoreError::Unavailable("injected: the pointer update failed".into()));
        }
        self.inner.set_datasource_key(tenant, id, key).await
    }
    async fn insert_successor(
        &self,
        tenant: &TenantId,
        id: &DatasourceId,
        old: &KeyId,
        successor: &KeyRecord,
    ) -> Result<(), StoreError> {
        match self.refused() {
            Some(refused) => refused,
            None => self.inner.insert_successor(tenant, id, old, successor).await,
        }
    }
    async fn delete_datasource(&self, tenant: &TenantId, id: &DatasourceId) -> Result<(), StoreError> {
        self.inner.delete_datasource(tenant, id).await
    }
}

impl AuditLog for Faulty {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.inner.append(event).await
    }
    async fn events(
        &self,
        tenant: &TenantId,
        limit: u32,
        before: Option<&Cursor<AuditId>>,
    ) -> Result<Page<AuditEvent>, StoreError> {
        self.inner.events(tenant, limit, before).await
    }
}

#[tokio::test]
async fn a_create_or_rotation_that_fails_halfway_leaves_nothing() {
    let stack = Stack::new().await;
    let admin = stack.bootstrap("acme").await;
    let existing = stack.call(&admin, "POST", "/keys", Some(json!({"name": "to rotate"}))).await.expect(201);
    let existing_id = existing["id"].as_str().unwrap();
    let items_before = stack.item_keys().await;

    // The same table, gateway and pepper, but the table refuses new keys; the gateway keys
    // made on the way are noted, to be looked for afterwards.
    let failing = management_over(&stack, Faulty::refusing_new_keys(same_table(&stack))).await;
    let create = failing.handle(request("POST", "/keys", r#"{"name": "doomed"}"#)).await;
    assert_eq!((create.status, create.body.unwrap().contains("SERVICE_UNAVAILABLE")), (503, true));
    let rotate_path = format!("/keys/{existing_id}/rotate");
    let rotate = failing.handle(request("POST", &rotate_path, "")).await;
    assert_eq!(rotate.status, 503);

    // Nothing remains, and no gateway key was made (the tier's pool had its slot); the existing
    // key is untouched.
    assert!(failing.service.gateway.issued.lock().unwrap().is_empty(), "a gateway key was made for a key");
    assert_eq!(stack.item_keys().await, items_before, "no item was added");
    stack.call(existing["key"].as_str().unwrap(), "GET", "/whoami", None).await.expect(200);
    let unrotated = stack.call(&admin, "GET", &format!("/keys/{existing_id}"), None).await.expect(200);
    assert!(unrotated.get("replaced_by").is_none());
}

pub(crate) fn request<'r>(
    method: &'r str,
    path: &'r str,
    body: &'r str,
) -> ManagementRequest<'r, impl Fn(&str) -> Option<&'r str>> {
    ManagementRequest {
        method,
        path,
        query: |_: &str| None,
        body: body.as_bytes(),
        caller: Ok(Caller::operator("acme".parse().unwrap())),
    }
}

#[tokio::test]
async fn a_tier_without_a_usage_plan_makes_no_gateway_key() {
    let stack = Stack::new().await;
    let mut plans = stack.plans.clone();
    plans.remove(&"starter".parse().unwrap());
    let gateway = ApiGatewayKeys::new(stack.apigateway.clone(), plans);
    let key_id = KeyId::generate();
    let refused = gateway.issue(key_id.as_str(), &"starter".parse().unwrap()).await.unwrap_err();
    assert!(matches!(refused, GatewayError::NoUsagePlan(tier) if tier == "starter"));
    // Gateway keys are named after their key id: none was made for this one.
    assert_eq!(stack.gateway_keys_named(&[key_id.as_str()]).await, 0);
}

/// The deployed functions are handed plan names, not ids (template.yaml: the ids would close a
/// dependency cycle): the plan each tier's keys land in is the one of that name, found in the
/// account's listing; a missing or doubled name creates nothing.
#[tokio::test]
async fn usage_plans_found_by_name_are_the_ones_keys_land_in() {
    let stack = Stack::new().await;
    let prefix = latchkey_tests::unique_name("stack");
    let create = |name: String| {
        let apigateway = stack.apigateway.clone();
        async move { apigateway.create_usage_plan().name(name).send().await.unwrap().id.unwrap() }
    };
    let free = create(format!("{prefix}-free")).await;
    let starter = create(format!("{prefix}-starter")).await;
    // Another stack's plans, and a plan whose name only starts like ours, are never chosen.
    create(format!("{prefix}-other-free")).await;
    create(latchkey_tests::unique_name("stack") + "-starter").await;
    let names = PlanNames::parse(&format!("{prefix}-{{tier}}")).unwrap();
    let gateway = ApiGatewayKeys::new(stack.apigateway.clone(), UsagePlans::Named(names));
    let members = |plan: String| {
        let apigateway = stack.apigateway.clone();
        async move {
            let keys = apigateway.get_usage_plan_keys().usage_plan_id(plan).send().await.unwrap();
            keys.items().iter().filter_map(|key| key.id().map(str::to_owned)).collect::<Vec<_>>()
        }
    };

    let key = gateway.issue(KeyId::generate().as_str(), &"starter".parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(members(starter.clone()).await, std::slice::from_ref(&key.id));
    assert!(members(free.clone()).await.is_empty());
    gateway.change_tier(&key, &"starter".parse().unwrap(), &"free".parse().unwrap()).await.unwrap();
    assert_eq!(members(free).await, std::slice::from_ref(&key.id));
    assert!(members(starter).await.is_empty());

    // No plan named `{prefix}-internal`: refused before any gateway key is made.
    let key_id = KeyId::generate();
    let refused = gateway.issue(key_id.as_str(), &"internal".parse().unwrap()).await.unwrap_err();
    assert!(matches!(&refused, GatewayError::NoUsagePlan(tier) if tier == "internal"), "{refused}");
    assert_eq!(stack.gateway_keys_named(&[key_id.as_str()]).await, 0);

    // Two plans of one name (API Gateway allows it): refused, not guessed.
    let twice = latchkey_tests::unique_name("stack");
    create(format!("{twice}-free")).await;
    create(format!("{twice}-free")).await;
    let gateway = ApiGatewayKeys::new(
        stack.apigateway.clone(),
        UsagePlans::Named(PlanNames::parse(&format!("{twice}-{{tier}}")).unwrap()),
    );
    let key_id = KeyId::generate();
    let refused = gateway.issue(key_id.as_str(), &"free".parse().unwrap()).await.unwrap_err();
    assert!(matches!(&refused, GatewayError::AmbiguousUsagePlan { count: 2, .. }), "{refused}");
    assert_eq!(stack.gateway_keys_named(&[key_id.as_str()]).await, 0);
}

/// The sweep fills the pools while API Gateway throttles `CreateApiKey` (every other one, by a
/// proxy in front of moto, which never throttles): every slot of every tier is made, each
/// throttled create is waited for (at least 100 ms: the first backoff less its jitter) and sent
/// again, the run ends without an error, every pooled gateway key is in its tier's usage plan,
/// and a key then verifies under a slot of its own: nothing of the throttle reaches a user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_fills_the_pools_through_a_create_api_key_throttle() {
    use latchkey::gateway::pool::{GatewaySlots, Pools};
    use latchkey::manage::sweep::MAX_KEYS_PER_SWEEP;
    use latchkey_tests::throttling_proxy::ThrottlingProxy;

    const TARGET: u32 = 3;
    let stack = Stack::new().await;
    let proxy = ThrottlingProxy::start(&latchkey_tests::required_env("AWS_ENDPOINT_URL_API_GATEWAY")).await;
    let through_proxy = stack.apigateway.config().to_builder().endpoint_url(&proxy.endpoint).build();
    let service = KeyService {
        store: stack.store.clone(),
        gateway: ApiGatewayKeys::new(aws_sdk_apigateway::Client::from_conf(through_proxy), stack.plans.clone()),
        clock: stack.clock.clone(),
        policy: common::policy(),
        events: Arc::new(latchkey::events::NoEvents),
        pools: Arc::new(Pools::new(TARGET)),
    };
    let tiers: Vec<_> = service.policy.tiers.iter().map(|tier| tier.name.clone()).collect();

    let swept = service.sweep_and_warn(MAX_KEYS_PER_SWEEP, None).await.expect("the run ends without an error");
    assert_eq!(swept.pooled as usize, TARGET as usize * tiers.len(), "{swept:?}");
    let creates = proxy.creates();
    let throttled = creates.iter().filter(|create| create.throttled).count();
    assert_eq!((creates.len() - throttled, throttled), (swept.pooled as usize, swept.pooled as usize), "{creates:?}");
    for pair in creates.windows(2) {
        if pair[0].throttled {
            let waited = pair[1].at - pair[0].at;
            assert!(waited >= std::time::Duration::from_millis(100), "sent again after {waited:?}");
        }
    }
    for tier in &tiers {
        assert_eq!(stack.store.pool_size(tier).await.unwrap(), TARGET, "{tier}");
    }
    // The stack's plans are its own (moto is shared by every test): each holds its pool's keys.
    let members = || async {
        let mut members = Vec::new();
        for tier in &tiers {
            let plan = &stack.plans[tier];
            let keys = stack.apigateway.get_usage_plan_keys().usage_plan_id(plan).send().await.unwrap();
            members.push(keys.items().len());
        }
        members
    };
    assert_eq!(members().await, vec![TARGET as usize; tiers.len()]);

    // A key made and used now: its tier's pool had its slots, so no create, and a slot of its own.
    let admin = stack.bootstrap("acme").await;
    let principal = stack.authorizer.authenticate([("x-api-key", admin.as_str())]).await.expect("allowed");
    let latchkey_authorizer::Principal::Key(record) = principal else { panic!("a key") };
    let lease = record.lease.clone().expect("a usage key");
    assert!(!lease.shared && lease.slot < TARGET, "{lease:?}");
    assert_eq!(members().await, vec![TARGET as usize; tiers.len()], "no gateway key made for the key");
}
