//! Key events, deployed: the key management functions publish to the stack's EventBridge bus
//! (moto's), where a rule of the provider's routes them on (here to an SQS queue, read back).
//! Events wait for `flush`, which the handler awaits once the operation has its answer.

use crate::common;

use std::sync::Arc;

use aws_sdk_eventbridge::types::Target;
use chrono::TimeDelta;
use common::{Noting, Stack};
use latchkey::Clock;
use latchkey::events::eventbridge::EventBridgeEvents;
use latchkey::manage::{Caller, KeyService};
use latchkey::store::dynamo::DynamoKeyStore;
use serde_json::{Value, json};

/// A bus of the test's own in moto, with a rule routing every Latchkey event to an SQS queue.
struct Bus {
    bridge: aws_sdk_eventbridge::Client,
    sqs: aws_sdk_sqs::Client,
    name: String,
    queue_url: String,
}

impl Bus {
    async fn new() -> Self {
        latchkey_tests::required_env("AWS_ENDPOINT_URL_EVENTBRIDGE");
        let sdk = latchkey_tests::sdk_config().await;
        let (bridge, sqs) = (aws_sdk_eventbridge::Client::new(&sdk), aws_sdk_sqs::Client::new(&sdk));
        let name = latchkey_tests::unique_name("key-events");
        bridge.create_event_bus().name(&name).send().await.unwrap();
        let queue = sqs.create_queue().queue_name(latchkey_tests::unique_name("events")).send().await.unwrap();
        let queue_url = queue.queue_url().unwrap().to_owned();
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap();
        let queue_arn = attributes.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
        let pattern = json!({"source": ["latchkey"]}).to_string();
        bridge.put_rule().name("all-key-events").event_bus_name(&name).event_pattern(pattern).send().await.unwrap();
        let target = Target::builder().id("queue").arn(queue_arn).build().unwrap();
        bridge.put_targets().rule("all-key-events").event_bus_name(&name).targets(target).send().await.unwrap();
        Self { bridge, sqs, name, queue_url }
    }

    /// Key management over the test's store, publishing to this bus.
    fn service(&self, stack: &Stack) -> KeyService<DynamoKeyStore, Noting> {
        KeyService {
            store: stack.store.clone(),
            gateway: Noting::new(stack),
            clock: stack.clock.clone(),
            policy: common::policy(),
            events: Arc::new(EventBridgeEvents::new(self.bridge.clone(), self.name.clone())),
            pools: Default::default(),
        }
    }

    /// What reached the queue since the last call.
    async fn received(&self) -> Vec<Value> {
        let messages =
            self.sqs.receive_message().queue_url(&self.queue_url).max_number_of_messages(10).send().await.unwrap();
        messages.messages().iter().map(|m| serde_json::from_str::<Value>(m.body().unwrap()).unwrap()).collect()
    }
}

/// A key of tenant `acme` made by its operator, expiring `expires` from the stack's clock: its
/// record as created, `key` included.
async fn expiring_key(
    service: &KeyService<DynamoKeyStore, Noting>,
    stack: &Stack,
    name: &str,
    expires: TimeDelta,
) -> Value {
    let body = json!({"name": name, "expires_at": (stack.clock.now() + expires).to_rfc3339()});
    let operator = Caller::operator("acme".parse().unwrap());
    let created = service.create(&common::issuance().await, &operator, serde_json::from_value(body).unwrap()).await;
    serde_json::to_value(created.unwrap()).unwrap()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["detail-type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn each_change_reaches_the_bus_once_flushed_and_carries_no_key() {
    let bus = Bus::new().await;
    let stack = Stack::new().await;
    let service = bus.service(&stack);
    let issuance = common::issuance().await;
    let operator = Caller::operator("acme".parse().unwrap());
    let created =
        service.create(&issuance, &operator, serde_json::from_value(json!({"name": "evented"})).unwrap()).await;
    let created = serde_json::to_value(created.unwrap()).unwrap();
    let id = created["id"].as_str().unwrap();
    let disable = serde_json::from_value(json!({"enabled": false})).unwrap();
    service.update(&operator, id, disable).await.unwrap();
    service.revoke(&operator, id).await.unwrap();

    assert!(bus.received().await.is_empty(), "nothing is sent before the flush");
    service.events.flush().await;
    let events = bus.received().await;
    let types: Vec<(&str, &str)> =
        events.iter().map(|e| (e["detail-type"].as_str().unwrap(), e["detail"]["type"].as_str().unwrap())).collect();
    assert_eq!(
        types,
        [("key.created", "key.created"), ("key.disabled", "key.disabled"), ("key.revoked", "key.revoked")]
    );
    for event in &events {
        assert_eq!(event["source"], "latchkey");
        assert_eq!(event["detail"]["key"]["id"], json!(id));
        assert!(!event.to_string().contains(created["key"].as_str().unwrap()), "the key in an event");
    }
    assert_eq!(events[1]["detail"]["key"]["enabled"], false);
    // Flushed once: a second flush sends nothing again.
    service.events.flush().await;
    assert!(bus.received().await.is_empty());
}

/// The scheduled sweep announces a key within the notice period of its expiry once (again only
/// for a new expiry), and a key that expired as it retires it; never a revoked or rotated key.
#[tokio::test]
async fn the_sweep_announces_expiring_keys_once_and_expired_keys_as_it_retires_them() {
    let bus = Bus::new().await;
    let stack = Stack::new().await;
    let service = bus.service(&stack);
    let operator = Caller::operator("acme".parse().unwrap());
    let now = stack.clock.now();
    let soon = expiring_key(&service, &stack, "soon", TimeDelta::days(3)).await;
    let later = expiring_key(&service, &stack, "later", TimeDelta::days(30)).await;
    let revoked = expiring_key(&service, &stack, "revoked", TimeDelta::days(2)).await;
    service.revoke(&operator, revoked["id"].as_str().unwrap()).await.unwrap();
    service.events.flush().await;
    assert_eq!(types(&bus.received().await), ["key.created", "key.created", "key.created", "key.revoked"]);

    let week = Some(TimeDelta::days(7));
    let run = || async {
        let swept = service.sweep_and_warn(100, week).await.unwrap();
        service.events.flush().await;
        (swept.retired, swept.warned, bus.received().await)
    };
    let (retired, warned, events) = run().await;
    // The revoked key was retired by its revocation, and is not announced as expiring.
    assert_eq!((retired, warned, types(&events)), (0, 1, vec!["key.expiring"]));
    assert_eq!(events[0]["detail"]["key"]["id"], soon["id"]);
    assert_eq!(events[0]["detail"]["key"]["expires_at"], soon["expires_at"]);
    assert!(!events[0].to_string().contains(soon["key"].as_str().unwrap()), "the key in an event");
    let (_, warned, events) = run().await;
    assert_eq!((warned, events.len()), (0, 0), "once per expiry");

    // A new expiry, still within the week: announced again.
    let moved = json!({"expires_at": (now + TimeDelta::days(5)).to_rfc3339()});
    service.update(&operator, soon["id"].as_str().unwrap(), serde_json::from_value(moved).unwrap()).await.unwrap();
    service.events.flush().await;
    assert_eq!(types(&bus.received().await), ["key.updated"]);
    let (_, warned, events) = run().await;
    assert_eq!((warned, types(&events)), (1, vec!["key.expiring"]));

    // Past it: expired, retired, announced; the other key now within its week.
    stack.clock.advance(TimeDelta::days(24));
    let (retired, warned, events) = run().await;
    let mut seen: Vec<(&str, &Value)> =
        events.iter().map(|e| (e["detail-type"].as_str().unwrap(), &e["detail"]["key"]["id"])).collect();
    seen.sort_by_key(|(kind, _)| *kind);
    assert_eq!((retired, warned), (1, 1));
    assert_eq!(seen, [("key.expired", &soon["id"]), ("key.expiring", &later["id"])]);
    let expired = events.iter().find(|e| e["detail-type"] == "key.expired").unwrap();
    assert_eq!(expired["detail"]["key"]["status"], "expired");
    let (retired, warned, events) = run().await;
    assert_eq!((retired, warned, events.len()), (0, 0, 0), "each once");
}

/// A run announces at most its budget; the keys already announced, which stay in the index until
/// they expire, do not hold back the later ones in the next run.
#[tokio::test]
async fn announced_keys_do_not_hold_back_the_later_ones() {
    let bus = Bus::new().await;
    let stack = Stack::new().await;
    let service = bus.service(&stack);
    for (name, days) in [("first", 2), ("second", 3)] {
        expiring_key(&service, &stack, name, TimeDelta::days(days)).await;
    }
    let week = TimeDelta::days(7);
    let mut announced = Vec::new();
    for _ in 0..3 {
        let warned = service.warn_expiring(week, 1).await.unwrap();
        service.events.flush().await;
        let events = bus.received().await;
        let names: Vec<String> = events
            .iter()
            .filter(|e| e["detail-type"] == "key.expiring")
            .map(|e| e["detail"]["key"]["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(warned, names.len());
        announced.extend(names);
    }
    assert_eq!(announced, ["first", "second"], "one per run, in expiry order, each once");
}
