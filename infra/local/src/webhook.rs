//! Key events, locally: each POSTed as JSON to `LATCHKEY_WEBHOOK_URL`, signed with
//! `Latchkey-Signature` ([`latchkey::events::signature`]), retried with backoff. A bounded queue
//! feeds one delivery task, in order: an operation only queues its event and never waits for the
//! receiver. What cannot be queued (the queue is full) or delivered (every attempt failed) is
//! logged with its id and type, the event itself having no secret to hide.

use std::time::Duration;

use latchkey::events::{KeyEvent, KeyEvents, signature};
use tokio::sync::mpsc;

/// Events waiting for delivery at most; past it new ones are dropped (and logged).
const QUEUE: usize = 10_000;
/// Attempts per event: at once, then after 1, 2, 4 and 8 seconds.
const ATTEMPTS: u32 = 5;
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// How long one attempt may take, the receiver's answer included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Webhook {
    queue: mpsc::Sender<KeyEvent>,
}

impl Webhook {
    /// Starts the delivery task (on the current Tokio runtime).
    pub fn start(url: reqwest::Url, secret: String) -> Self {
        let (queue, mut events) = mpsc::channel::<KeyEvent>(QUEUE);
        let client = reqwest::Client::builder().timeout(ATTEMPT_TIMEOUT).build().expect("a plain HTTP client builds");
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                deliver(&client, &url, secret.as_bytes(), &event).await;
            }
        });
        Self { queue }
    }
}

impl KeyEvents for Webhook {
    fn publish(&self, event: KeyEvent) {
        if let Err(error) = self.queue.try_send(event) {
            let event = match &error {
                mpsc::error::TrySendError::Full(event) | mpsc::error::TrySendError::Closed(event) => event,
            };
            tracing::error!(event_id = %event.id, event_type = ?event.event_type, "key event dropped: the webhook queue is full");
        }
    }
}

async fn deliver(client: &reqwest::Client, url: &reqwest::Url, secret: &[u8], event: &KeyEvent) {
    let body = serde_json::to_vec(event).expect("an event serializes");
    let mut wait = FIRST_RETRY;
    for attempt in 1..=ATTEMPTS {
        // Signed at each attempt: the timestamp is when it was sent, for the receiver's
        // freshness check, by the wall clock the receiver also has.
        let signed = signature(secret, chrono::Utc::now().timestamp(), &body);
        let sent = client
            .post(url.clone())
            .header("content-type", "application/json")
            .header("latchkey-signature", signed)
            .header("latchkey-event-id", &event.id)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => {
                tracing::warn!(event_id = %event.id, attempt, status = %response.status(), "webhook refused a key event")
            }
            Err(error) => tracing::warn!(event_id = %event.id, attempt, %error, "webhook unreachable"),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    tracing::error!(event_id = %event.id, event_type = ?event.event_type, "key event not delivered after {ATTEMPTS} attempts");
}
