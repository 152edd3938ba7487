//! Key events to an EventBridge bus (`LATCHKEY_EVENT_BUS`), the AWS-native way for a provider to
//! route them to a Lambda, a queue or a webhook (API destinations). A Lambda function may be
//! frozen the moment its handler returns, so events are kept until [`KeyEvents::flush`], which the
//! handler awaits after the operation has its answer: a failed or slow `PutEvents` is logged,
//! and never turns the operation's answer into an error.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::{KeyEvent, KeyEvents};

/// `source` of every event: what a rule matches on.
pub const SOURCE: &str = "latchkey";
/// `PutEvents` takes at most 10 entries a call.
const BATCH: usize = 10;

pub struct EventBridgeEvents {
    client: Client,
    bus: String,
    pending: Mutex<Vec<KeyEvent>>,
}

impl EventBridgeEvents {
    pub fn new(client: Client, bus: String) -> Self {
        Self { client, bus, pending: Mutex::new(Vec::new()) }
    }

    /// The sink a deployed function's `LATCHKEY_EVENT_BUS` names; unset, events go nowhere.
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        sdk: &crate::aws::SdkConfig,
        env: &crate::config::Env<F>,
    ) -> std::sync::Arc<dyn KeyEvents> {
        match env.get("LATCHKEY_EVENT_BUS") {
            Some(bus) => std::sync::Arc::new(Self::new(Client::new(sdk), bus)),
            None => std::sync::Arc::new(super::NoEvents),
        }
    }

    async fn put(&self, events: Vec<KeyEvent>) {
        for batch in events.chunks(BATCH) {
            let entries: Vec<PutEventsRequestEntry> = batch
                .iter()
                .map(|event| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(SOURCE)
                        .detail_type(event_type_name(event))
                        .detail(serde_json::to_string(event).expect("an event serializes"))
                        .build()
                })
                .collect();
            match self.client.put_events().set_entries(Some(entries)).send().await {
                Ok(output) if output.failed_entry_count() == 0 => {}
                Ok(output) => {
                    for (event, entry) in batch.iter().zip(output.entries()) {
                        if let Some(code) = entry.error_code() {
                            tracing::error!(event_id = %event.id, code, "key event not published");
                        }
                    }
                }
                Err(error) => {
                    let error = aws_sdk_eventbridge::error::DisplayErrorContext(&error).to_string();
                    for event in batch {
                        tracing::error!(event_id = %event.id, %error, "key event not published");
                    }
                }
            }
        }
    }
}

/// `key.created`, ...: the event's `type`, as its `detail-type`.
fn event_type_name(event: &KeyEvent) -> String {
    serde_json::to_value(event.event_type).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

impl KeyEvents for EventBridgeEvents {
    fn publish(&self, event: KeyEvent) {
        self.pending.lock().expect("events lock").push(event);
    }

    fn flush(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let events = std::mem::take(&mut *self.pending.lock().expect("events lock"));
        Box::pin(async move {
            if !events.is_empty() {
                self.put(events).await;
            }
        })
    }
}
