//! Key events, deployed: the key management functions publish to the stack's EventBridge bus
//! (moto's), where a rule of the provider's routes them on (here to an SQS queue, read back).
//! Events wait for `flush`, which the handler awaits once the operation has its answer.

mod common;

use std::sync::Arc;

use aws_sdk_eventbridge::types::Target;
use common::{Noting, Stack};
use latchkey::events::eventbridge::EventBridgeEvents;
use latchkey::manage::{Caller, KeyService};
use serde_json::{Value, json};

#[tokio::test]
async fn each_change_reaches_the_bus_once_flushed_and_carries_no_key() {
    latchkey_tests::required_env("AWS_ENDPOINT_URL_EVENTBRIDGE");
    let sdk = latchkey_tests::sdk_config().await;
    let (bridge, sqs) = (aws_sdk_eventbridge::Client::new(&sdk), aws_sdk_sqs::Client::new(&sdk));
    let bus = latchkey_tests::unique_name("key-events");
    bridge.create_event_bus().name(&bus).send().await.unwrap();
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
    bridge.put_rule().name("all-key-events").event_bus_name(&bus).event_pattern(pattern).send().await.unwrap();
    let target = Target::builder().id("queue").arn(queue_arn).build().unwrap();
    bridge.put_targets().rule("all-key-events").event_bus_name(&bus).targets(target).send().await.unwrap();

    let stack = Stack::new().await;
    let service = KeyService {
        store: stack.store.clone(),
        gateway: Noting::new(&stack),
        clock: stack.clock.clone(),
        policy: common::policy(),
        events: Arc::new(EventBridgeEvents::new(bridge.clone(), bus.clone())),
    };
    let issuance = common::issuance().await;
    let operator = Caller::operator("acme".parse().unwrap());
    let created =
        service.create(&issuance, &operator, serde_json::from_value(json!({"name": "evented"})).unwrap()).await;
    let created = serde_json::to_value(created.unwrap()).unwrap();
    let id = created["id"].as_str().unwrap();
    let disable = serde_json::from_value(json!({"enabled": false})).unwrap();
    service.update(&operator, id, disable).await.unwrap();
    service.revoke(&operator, id).await.unwrap();

    let received = || async {
        let messages = sqs.receive_message().queue_url(&queue_url).max_number_of_messages(10).send().await.unwrap();
        messages
            .messages()
            .iter()
            .map(|m| serde_json::from_str::<Value>(m.body().unwrap()).unwrap())
            .collect::<Vec<_>>()
    };
    assert!(received().await.is_empty(), "nothing is sent before the flush");
    service.events.flush().await;
    let events = received().await;
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
    assert!(received().await.is_empty());
}
