//! The key management stack as API Gateway runs it, in process: a request goes through the real
//! authorizer (its REQUEST event), a Deny is rendered as the `ACCESS_DENIED` gateway response
//! does, and an Allow reaches the function the template routes it to as a proxy event carrying
//! the authorizer's context. Behind them: DynamoDB Local, moto's API Gateway (usage plans made
//! fresh per stack), fixed peppers and a manual clock.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use latchkey::gateway::apigateway::ApiGatewayKeys;
use latchkey::ingest::dynamo::DynamoRecordStore;
use latchkey::ingest::service::IngestService;
use latchkey::manage::{Caller, Issuance, KeyPolicy, KeyService, Management, Role, Route};
use latchkey::pepper::CachedPepper;
use latchkey::store::dynamo::DynamoKeyStore;
use latchkey::store::schema::create_records_table;
use latchkey::{KeyProfile, ManualClock, TenantId, TierName, Tiers};
use latchkey_authorizer::{Authorizer, Dependencies};
use latchkey_tests::api_gateway;
pub use latchkey_tests::api_gateway::Answer;
use latchkey_tests::{StaticPepper, unique_name};
use serde_json::Value;

pub const PEPPER: &[u8] = b"key-management-tests-pepper-0123456789abcdef";

pub type Function = Management<DynamoKeyStore, ApiGatewayKeys, StaticPepper, DynamoRecordStore>;

/// The records' clock starts here. DynamoDB Local deletes items whose TTL has passed in real
/// time, so test time stays ahead of the wall clock.
pub fn start() -> DateTime<Utc> {
    "2100-01-01T00:00:00Z".parse().unwrap()
}

pub struct Stack {
    pub store: Arc<DynamoKeyStore>,
    pub records: Arc<DynamoRecordStore>,
    /// The ingest function, over the same records.
    pub ingest: IngestService<DynamoRecordStore, DynamoKeyStore>,
    pub apigateway: aws_sdk_apigateway::Client,
    /// Tier → the usage plan made for this stack in moto.
    pub plans: HashMap<TierName, String>,
    /// The plans' names, `LATCHKEY_USAGE_PLAN_NAMES` as the template sets it.
    pub plan_names: String,
    pub clock: Arc<ManualClock>,
    pub authorizer: Authorizer<DynamoKeyStore, StaticPepper>,
    pub read: Function,
    pub issue: Function,
    pub change: Function,
}

/// The authorizer's cache TTL as users get it (`LATCHKEY_CACHE_TTL_SECONDS` unset: 5 s).
pub fn default_cache_ttl() -> Duration {
    latchkey::config::Settings::from_env(&latchkey::config::Env::from_fn(|_| None)).unwrap().cache_ttl
}

impl Stack {
    /// Lets the authorizer's cached decisions age out (its clock is the stack's), as they do on a
    /// warm instance within the cache TTL of a change: what the guide promises for revocations,
    /// rotations and regenerations deployed.
    pub fn let_cached_decisions_expire(&self) {
        self.clock.advance(TimeDelta::from_std(default_cache_ttl()).unwrap());
    }

    pub async fn new() -> Self {
        Self::with_store(latchkey_tests::fresh_dynamo_store(TimeDelta::days(30)).await).await
    }

    pub async fn with_store(store: DynamoKeyStore) -> Self {
        let records_table = unique_name("records");
        create_records_table(store.client(), &records_table).await.unwrap();
        Self::with_tables(store, records_table).await
    }

    /// The stack over tables made elsewhere (e.g. as template.yaml declares them).
    pub async fn with_tables(store: DynamoKeyStore, records_table: String) -> Self {
        let sdk = latchkey_tests::sdk_config().await;
        latchkey_tests::required_env("AWS_ENDPOINT_URL_API_GATEWAY");
        let apigateway = aws_sdk_apigateway::Client::new(&sdk);
        // Named as template.yaml names them, `{stack}-{tier}`, so functions can find them by name.
        let plan_names = format!("{}-{{tier}}", unique_name("stack"));
        let mut plans = HashMap::new();
        for tier in Tiers::default().iter() {
            let name = plan_names.replace("{tier}", tier.name.as_str());
            let plan = apigateway.create_usage_plan().name(name).send().await.unwrap();
            plans.insert(tier.name.clone(), plan.id.unwrap());
        }
        let records = Arc::new(DynamoRecordStore::new(store.client().clone(), records_table));
        let store = Arc::new(store);
        let clock = Arc::new(ManualClock::new(start()));
        let function = |roles: &'static [Role], issues: bool| {
            let (store, clock, gateway) =
                (store.clone(), clock.clone(), ApiGatewayKeys::new(apigateway.clone(), plans.clone()));
            let records = (!issues).then(|| records.clone());
            async move {
                let issuance = if issues { Some(issuance().await) } else { None };
                let service = KeyService {
                    store,
                    gateway,
                    clock,
                    policy: policy(),
                    events: std::sync::Arc::new(latchkey::events::NoEvents),
                    pools: Default::default(),
                };
                Management {
                    service,
                    issuance,
                    records,
                    ingest_tier: "free".parse().unwrap(),
                    roles,
                    leak_action: Default::default(),
                }
            }
        };
        let authorizer = Authorizer::new(Dependencies {
            store: store.clone(),
            peppers: CachedPepper::load(StaticPepper::new(PEPPER, "v1"), Duration::from_secs(300)).await.unwrap(),
            clock: clock.clone(),
            profile: KeyProfile::latchkey(),
            // As deployed: a decision is cached for the default TTL (5 s), so what a test sees
            // right after a change is what a caller sees.
            cache_ttl: default_cache_ttl(),
            cache_capacity: 10_000,
            jwt: None,
            sessions: None,
            session_usage_keys: None,
            gateway_pool: true,
        });
        Self {
            ingest: IngestService {
                records: records.clone(),
                datasources: store.clone(),
                clock: clock.clone(),
                daily_cap: latchkey::ingest::DEFAULT_DAILY_CAP,
            },
            records: records.clone(),
            read: function(&[Role::Read], false).await,
            issue: function(&[Role::Issue], true).await,
            change: function(&[Role::Change], false).await,
            store,
            apigateway,
            plans,
            plan_names,
            clock,
            authorizer,
        }
    }

    /// A tenant's first admin key, as `latchkey-admin bootstrap` makes it.
    pub async fn bootstrap(&self, tenant: &str) -> String {
        let tenant: TenantId = tenant.parse().unwrap();
        let issuance = self.issue.issuance.as_ref().unwrap();
        let issued = self
            .issue
            .service
            .bootstrap(issuance, &Caller::operator(tenant), "admin".into(), "internal")
            .await
            .unwrap();
        serde_json::to_value(&issued).unwrap()["key"].as_str().unwrap().to_owned()
    }

    /// A request with `key` in `x-api-key`.
    pub async fn call(&self, key: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| b.to_string());
        self.request(&[("x-api-key", key)], method, path, body.as_deref()).await
    }

    /// A request as the client sends it: through the authorizer, then to the routed function.
    pub async fn request(&self, headers: &[(&str, &str)], method: &str, path: &str, body: Option<&str>) -> Answer {
        let authorize = |event: Vec<u8>| async move { self.authorizer.handle_event(&event).await.map_err(drop) };
        api_gateway::request(authorize, |event| async move { self.invoke(&event).await }, headers, method, path, body)
            .await
    }

    /// Sends a proxy event to the function the template routes its method and path to.
    pub async fn invoke(&self, event: &str) -> Answer {
        let request = lambda_http::request::from_str(event).expect("a REST API proxy event");
        if lambda_http::RequestExt::raw_http_path(&request) == "/ingest" {
            return Answer::of(latchkey_ingest::respond(&self.ingest, request).await);
        }
        let function = match Route::parse(request.method().as_str(), lambda_http::RequestExt::raw_http_path(&request))
            .map(Route::role)
        {
            Ok(Role::Issue) => &self.issue,
            Ok(Role::Change) => &self.change,
            // Reads, and paths no function serves (which answer 404/405 wherever they land).
            _ => &self.read,
        };
        Answer::of(latchkey_keys::respond(function, request).await)
    }

    /// Every item of the table, as text.
    pub async fn table_dump(&self) -> String {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .store
                .client()
                .scan()
                .table_name(self.store.table())
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            items.extend(page.items().iter().map(|item| format!("{item:?}")));
            start = page.last_evaluated_key;
            if start.is_none() {
                return items.join("\n");
            }
        }
    }

    /// The partition key of every item in the table, sorted.
    pub async fn item_keys(&self) -> Vec<String> {
        let scan = self.store.client().scan().table_name(self.store.table()).send().await.unwrap();
        let mut keys: Vec<String> = scan.items().iter().map(|item| item["pk"].as_s().unwrap().clone()).collect();
        keys.sort();
        keys
    }

    /// The gateway key's state in moto: (enabled, tiers whose plan holds it); `None` if deleted.
    pub async fn gateway_key(&self, id: &str) -> Option<(bool, Vec<String>)> {
        let key = self.apigateway.get_api_key().api_key(id).send().await.ok()?;
        let mut tiers = Vec::new();
        for (tier, plan) in &self.plans {
            let members = self.apigateway.get_usage_plan_keys().usage_plan_id(plan).send().await.unwrap();
            if members.items().iter().any(|member| member.id() == Some(id)) {
                tiers.push(tier.to_string());
            }
        }
        tiers.sort();
        Some((key.enabled, tiers))
    }

    /// Every API Gateway key named after one of `key_ids` (our keys are named by their id).
    /// Gives a tenant's key a gateway key of its own in its tier's plan, as keys made before the
    /// pool have one (shared/src/gateway/pool.rs); its id.
    pub async fn make_own_gateway_key(&self, tenant: &str, id: &str) -> String {
        use latchkey::gateway::GatewayKeys;
        use latchkey::store::KeyStore;
        let record = self.store.get(&tenant.parse().unwrap(), &id.parse().unwrap()).await.unwrap().unwrap();
        let gateway = latchkey::gateway::apigateway::ApiGatewayKeys::new(self.apigateway.clone(), self.plans.clone());
        let key = gateway.issue(id, &record.tier).await.unwrap().unwrap();
        self.store
            .client()
            .update_item()
            .table_name(self.store.table())
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(latchkey::store::schema::digest_pk(&record.digest)))
            .update_expression("SET gateway_key = :key")
            .expression_attribute_values(
                ":key",
                aws_sdk_dynamodb::types::AttributeValue::M(HashMap::from([
                    ("id".to_owned(), aws_sdk_dynamodb::types::AttributeValue::S(key.id.clone())),
                    ("value".to_owned(), aws_sdk_dynamodb::types::AttributeValue::S(key.value.clone())),
                ])),
            )
            .send()
            .await
            .unwrap();
        key.id
    }

    pub async fn gateway_keys_named(&self, key_ids: &[&str]) -> usize {
        let all = self.apigateway.get_api_keys().limit(500).send().await.unwrap();
        all.items().iter().filter(|key| key.name().is_some_and(|name| key_ids.contains(&name))).count()
    }
}

/// What the issuing function holds: the tests' pepper and the default key profile.
pub async fn issuance() -> Issuance<StaticPepper> {
    let peppers = CachedPepper::load(StaticPepper::new(PEPPER, "v1"), Duration::from_secs(300)).await.unwrap();
    Issuance { peppers, profile: KeyProfile::latchkey(), sessions: None }
}

/// The default tiers, and keys that live a year at most.
pub fn policy() -> KeyPolicy {
    KeyPolicy { tiers: Tiers::default(), max_lifetime: Some(TimeDelta::days(365)) }
}

/// moto's API Gateway as the stack has it, noting the id of every gateway key it issues.
pub struct Noting {
    pub inner: ApiGatewayKeys,
    pub issued: std::sync::Mutex<Vec<String>>,
}

impl Noting {
    pub fn new(stack: &Stack) -> Self {
        Self { inner: ApiGatewayKeys::new(stack.apigateway.clone(), stack.plans.clone()), issued: Default::default() }
    }
}

impl latchkey::gateway::GatewayKeys for Noting {
    async fn issue(
        &self,
        name: &str,
        tier: &TierName,
    ) -> Result<Option<latchkey::GatewayKey>, latchkey::gateway::GatewayError> {
        let issued = self.inner.issue(name, tier).await?;
        self.issued.lock().unwrap().extend(issued.iter().map(|key| key.id.clone()));
        Ok(issued)
    }
    async fn change_tier(
        &self,
        key: &latchkey::GatewayKey,
        from: &TierName,
        to: &TierName,
    ) -> Result<(), latchkey::gateway::GatewayError> {
        self.inner.change_tier(key, from, to).await
    }
    async fn delete(&self, key: &latchkey::GatewayKey) -> Result<(), latchkey::gateway::GatewayError> {
        self.inner.delete(key).await
    }
}
