//! [`GatewayKeys`] on API Gateway (`aws-sdk-apigateway`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_apigateway::Client;
use aws_sdk_apigateway::config::retry::RetryConfig;
use aws_sdk_apigateway::error::{DisplayErrorContext, SdkError};
use aws_sdk_apigateway::operation::create_api_key::CreateApiKeyError;
use rand::TryRngCore;
use rand::rngs::OsRng;
use tokio::sync::OnceCell;

use super::{GatewayError, GatewayKeys};
use crate::{GatewayKey, TierName};

/// How many times `CreateApiKey` is sent while API Gateway throttles it.
pub const THROTTLE_ATTEMPTS: u32 = 5;
/// The first wait after a throttled `CreateApiKey`; each next one doubles, up to
/// [`THROTTLE_MAX_WAIT`]. API Gateway allows 5 per second per account (not adjustable), so a
/// fifth of a second is the first moment a retry can expect room. Waits are 1/2 to 1 of that
/// (jitter), so throttled callers do not retry in step: at most 0.2 + 0.4 + 0.8 + 1.0 = 2.4 s in
/// all, within the key functions' timeout.
const THROTTLE_FIRST_WAIT: Duration = Duration::from_millis(200);
const THROTTLE_MAX_WAIT: Duration = Duration::from_secs(1);

/// Calls `call` until it succeeds, fails otherwise than `throttled`, or has been tried
/// [`THROTTLE_ATTEMPTS`] times, waiting with backoff and jitter in between.
async fn retry_throttled<T, E, F, Fut>(throttled: impl Fn(&E) -> bool, mut call: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut wait = THROTTLE_FIRST_WAIT;
    for _ in 1..THROTTLE_ATTEMPTS {
        match call().await {
            Err(error) if throttled(&error) => {
                let jitter = f64::from(OsRng.try_next_u32().unwrap_or(u32::MAX)) / f64::from(u32::MAX);
                tokio::time::sleep(wait.mul_f64(0.5 + jitter / 2.0)).await;
                wait = (wait * 2).min(THROTTLE_MAX_WAIT);
            }
            done => return done,
        }
    }
    call().await
}

/// API keys in usage plans, one plan per tier.
#[derive(Debug, Clone)]
pub struct ApiGatewayKeys {
    client: Client,
    usage_plans: UsagePlans,
}

/// Where a tier's usage plan id comes from.
#[derive(Debug, Clone)]
pub enum UsagePlans {
    /// Tier → usage plan id, given (`LATCHKEY_USAGE_PLANS`, e.g. the stack's `UsagePlans` output).
    Ids(HashMap<TierName, String>),
    /// Plans found by name (`LATCHKEY_USAGE_PLAN_NAMES`): the deployed functions cannot be handed
    /// the plans' ids without a dependency cycle in the stack (template.yaml says why).
    Named(PlanNames),
}

impl From<HashMap<TierName, String>> for UsagePlans {
    fn from(ids: HashMap<TierName, String>) -> Self {
        Self::Ids(ids)
    }
}

/// A plan name pattern with `{tier}` in it, e.g. `latchkey-{tier}`, and the account's plans,
/// listed once (`GetUsagePlans`) on first use and kept for the instance's life: a plan's id never
/// changes, and a failed listing is tried again on the next call.
#[derive(Debug, Clone)]
pub struct PlanNames {
    pattern: String,
    listed: Arc<OnceCell<HashMap<String, Vec<String>>>>,
}

impl PlanNames {
    pub const PLACEHOLDER: &str = "{tier}";

    /// Parses `LATCHKEY_USAGE_PLAN_NAMES`.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let pattern = pattern.trim();
        if !pattern.contains(Self::PLACEHOLDER) {
            return Err(format!("`{pattern}` does not contain {}", Self::PLACEHOLDER));
        }
        Ok(Self { pattern: pattern.to_owned(), listed: Arc::default() })
    }

    /// The name of `tier`'s plan.
    pub fn name_of(&self, tier: &TierName) -> String {
        self.pattern.replace(Self::PLACEHOLDER, tier.as_str())
    }

    async fn id_of(&self, client: &Client, tier: &TierName) -> Result<String, GatewayError> {
        let listed = self.listed.get_or_try_init(|| list_usage_plans(client)).await?;
        let name = self.name_of(tier);
        match listed.get(&name).map(Vec::as_slice) {
            Some([id]) => Ok(id.clone()),
            // API Gateway does not keep plan names unique: two would make the choice a guess.
            Some(ids) if ids.len() > 1 => Err(GatewayError::AmbiguousUsagePlan { name, count: ids.len() }),
            _ => Err(GatewayError::NoUsagePlan(tier.to_string())),
        }
    }
}

/// Every usage plan of the account and region: name → ids.
async fn list_usage_plans(client: &Client) -> Result<HashMap<String, Vec<String>>, GatewayError> {
    let mut plans: HashMap<String, Vec<String>> = HashMap::new();
    let mut position = None;
    loop {
        let page =
            client.get_usage_plans().limit(500).set_position(position.take()).send().await.map_err(unavailable)?;
        for plan in page.items.unwrap_or_default() {
            if let (Some(name), Some(id)) = (plan.name, plan.id) {
                plans.entry(name).or_default().push(id);
            }
        }
        match page.position {
            Some(next) if !next.is_empty() => position = Some(next),
            _ => return Ok(plans),
        }
    }
}

impl ApiGatewayKeys {
    pub fn new(client: Client, usage_plans: impl Into<UsagePlans>) -> Self {
        Self { client, usage_plans: usage_plans.into() }
    }

    /// Parses `LATCHKEY_USAGE_PLANS`: `free=abc123,starter=def456,internal=ghi789`.
    pub fn parse_usage_plans(text: &str) -> Result<HashMap<TierName, String>, String> {
        text.split(',')
            .filter(|pair| !pair.trim().is_empty())
            .map(|pair| {
                let (tier, plan) = pair.split_once('=').ok_or_else(|| format!("`{pair}` is not tier=usage-plan-id"))?;
                let tier = tier.trim().parse::<TierName>().map_err(|e| e.to_string())?;
                let plan = plan.trim();
                if plan.is_empty() {
                    return Err(format!("tier `{tier}` has an empty usage plan id"));
                }
                Ok((tier, plan.to_owned()))
            })
            .collect()
    }

    async fn plan(&self, tier: &TierName) -> Result<String, GatewayError> {
        match &self.usage_plans {
            UsagePlans::Ids(ids) => ids.get(tier).cloned().ok_or_else(|| GatewayError::NoUsagePlan(tier.to_string())),
            UsagePlans::Named(names) => names.id_of(&self.client, tier).await,
        }
    }

    async fn attach(&self, key_id: &str, tier: &TierName) -> Result<(), GatewayError> {
        let request = self
            .client
            .create_usage_plan_key()
            .usage_plan_id(self.plan(tier).await?)
            .key_id(key_id)
            .key_type("API_KEY");
        match request.send().await {
            Ok(_) => Ok(()),
            // Attached already (a retried call): the state we want.
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conflict_exception()) => Ok(()),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn detach(&self, key_id: &str, tier: &TierName) -> Result<(), GatewayError> {
        let plan = self.plan(tier).await?;
        match self.client.delete_usage_plan_key().usage_plan_id(plan).key_id(key_id).send().await {
            Ok(_) => Ok(()),
            // Not in the plan (detached already): the state we want.
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found_exception()) => Ok(()),
            Err(error) => Err(unavailable(error)),
        }
    }
}

fn unavailable<E: std::error::Error + 'static, R: std::fmt::Debug>(error: SdkError<E, R>) -> GatewayError {
    GatewayError::Unavailable(DisplayErrorContext(&error).to_string())
}

impl GatewayKeys for ApiGatewayKeys {
    async fn issue(&self, name: &str, tier: &TierName) -> Result<Option<GatewayKey>, GatewayError> {
        // The plan first: a tier without one makes no gateway key.
        let plan = self.plan(tier).await?;
        // The value is API Gateway's own random one; the name ties it to our key for operators.
        // Throttling (TooManyRequestsException) is retried here, and only here: the SDK's own
        // retries are off for this call, so that the attempts are the ones counted above and do
        // not multiply with `LATCHKEY_AWS_MAX_ATTEMPTS`.
        let create = || {
            self.client
                .create_api_key()
                .name(name)
                .description("Latchkey: a usage plan identity (a key id, or a pool slot)")
                .enabled(true)
                .customize()
                .config_override(aws_sdk_apigateway::config::Builder::default().retry_config(RetryConfig::disabled()))
                .send()
        };
        let throttled = |error: &SdkError<_, _>| {
            error.as_service_error().is_some_and(|e: &CreateApiKeyError| e.is_too_many_requests_exception())
        };
        let created = retry_throttled(throttled, create).await.map_err(|error| {
            // API Gateway answers an exhausted API key quota with LimitExceededException.
            if error.as_service_error().is_some_and(|e| e.is_limit_exceeded_exception()) {
                GatewayError::LimitReached
            } else {
                unavailable(error)
            }
        })?;
        let (Some(id), Some(value)) = (created.id, created.value) else {
            return Err(GatewayError::Unavailable("CreateApiKey answered without an id or value".into()));
        };
        let key = GatewayKey { id, value };
        if let Err(error) = self.attach(&key.id, tier).await {
            // All or nothing: a key outside its plan would go unthrottled.
            if let Err(undo) = self.delete(&key).await {
                tracing::error!(gateway_key_id = %key.id, error = %undo, %plan, "orphaned API Gateway key");
            }
            return Err(error);
        }
        Ok(Some(key))
    }

    async fn change_tier(&self, key: &GatewayKey, from: &TierName, to: &TierName) -> Result<(), GatewayError> {
        // Into the new plan first: in between the key is in both, never in none (unthrottled).
        self.attach(&key.id, to).await?;
        self.detach(&key.id, from).await
    }

    async fn delete(&self, key: &GatewayKey) -> Result<(), GatewayError> {
        match self.client.delete_api_key().api_key(&key.id).send().await {
            Ok(_) => Ok(()),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found_exception()) => Ok(()),
            Err(error) => Err(unavailable(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyId;
    use crate::scripted_http::scripted;

    fn creates(requests: &std::sync::Mutex<Vec<String>>) -> usize {
        requests.lock().unwrap().iter().filter(|r| r.starts_with("POST /apikeys")).count()
    }

    /// The gateway as the functions build it, against `endpoint`.
    async fn gateway_at(endpoint: String) -> ApiGatewayKeys {
        let sdk = crate::scripted_http::sdk_config().await;
        let client = Client::from_conf(aws_sdk_apigateway::config::Builder::from(&sdk).endpoint_url(endpoint).build());
        ApiGatewayKeys::new(client, HashMap::from([("free".parse().unwrap(), "plan-1".to_owned())]))
    }

    const THROTTLED: (u16, &str) = (429, r#"{"message":"Too Many Requests"}"#);

    #[tokio::test]
    async fn a_throttled_create_api_key_is_tried_again() {
        let created = (201, r#"{"id":"gw-1","value":"value-1","enabled":true}"#);
        let attached = (201, r#"{"id":"gw-1","type":"API_KEY"}"#);
        let (endpoint, requests) = scripted(vec![THROTTLED, THROTTLED, created, attached]).await;
        let key = gateway_at(endpoint).await.issue(KeyId::generate().as_str(), &"free".parse().unwrap()).await.unwrap();
        assert_eq!(key.map(|k| k.id).as_deref(), Some("gw-1"));
        assert_eq!(creates(&requests), 3, "{requests:?}");
    }

    /// Throttled throughout: a bounded number of attempts (the SDK's own retries do not multiply
    /// them), then `SERVICE_UNAVAILABLE`, and nothing created.
    #[tokio::test]
    async fn create_api_key_gives_up_after_a_bounded_number_of_throttled_attempts() {
        let (endpoint, requests) = scripted(vec![THROTTLED; 20]).await;
        let error =
            gateway_at(endpoint).await.issue(KeyId::generate().as_str(), &"free".parse().unwrap()).await.unwrap_err();
        assert!(matches!(error, GatewayError::Unavailable(_)), "{error:?}");
        assert_eq!(crate::ApiError::from(error).code(), "SERVICE_UNAVAILABLE");
        assert_eq!(creates(&requests), THROTTLE_ATTEMPTS as usize, "{requests:?}");
    }

    /// A pool filled while API Gateway throttles `CreateApiKey` (429 twice, then once more): every
    /// slot is made, each throttled create tried again, and nothing reaches the caller but the
    /// count of slots added.
    #[tokio::test]
    async fn a_pool_fills_through_a_throttle() {
        let created = |n: u32| {
            let body: &'static str =
                Box::leak(format!(r#"{{"id":"gw-{n}","value":"value-{n}","enabled":true}}"#).into_boxed_str());
            (201, body)
        };
        let attached = (201, r#"{"type":"API_KEY"}"#);
        let answers =
            vec![THROTTLED, THROTTLED, created(0), attached, created(1), attached, THROTTLED, created(2), attached];
        let (endpoint, requests) = scripted(answers).await;
        let slots = crate::gateway::pool::fake::Memory::default();
        let tier = "free".parse().unwrap();
        let filled = crate::gateway::pool::fill(&slots, &gateway_at(endpoint).await, &tier, 3, 10).await.unwrap();
        assert_eq!((filled.added, filled.size), (3, 3));
        assert_eq!(creates(&requests), 6, "three made, three throttled: {requests:?}");
        let now = chrono::Utc::now();
        let lease = crate::gateway::pool::lease(&slots, &tier, 3, &KeyId::generate(), now).await.unwrap().unwrap();
        assert_eq!(lease.value, format!("value-{}", lease.slot));
    }
}
