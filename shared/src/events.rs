//! Key events: what happened to a key, with the key's public view (never a secret), handed to
//! whoever the deployment routes them to. Publishing never blocks or fails the operation that
//! caused it: a sink queues the event and delivers it on its own time.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::TenantId;
use crate::manage::view::KeyView;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KeyEventType {
    #[serde(rename = "key.created")]
    Created,
    #[serde(rename = "key.updated")]
    Updated,
    #[serde(rename = "key.rotated")]
    Rotated,
    #[serde(rename = "key.revoked")]
    Revoked,
    #[serde(rename = "key.disabled")]
    Disabled,
    #[serde(rename = "key.enabled")]
    Enabled,
    /// `LATCHKEY_EXPIRY_WARNING_DAYS` before `expires_at`, once per expiry (the sweep).
    #[serde(rename = "key.expiring")]
    Expiring,
    /// The key reached its `expires_at` (found by the sweep, which retires it). A key replaced
    /// by a rotation is not announced again when its grace ends: `key.rotated` said when.
    #[serde(rename = "key.expired")]
    Expired,
    /// Reported found where it must not be (`POST /leaks/github`, `POST /leaks`), and acted on
    /// as `LATCHKEY_LEAK_ACTION` says (its view shows what that did).
    #[serde(rename = "key.leaked")]
    Leaked,
    /// A key another system issued, imported (`POST /keys/import`): it verifies from now on.
    #[serde(rename = "key.imported")]
    Imported,
    /// A spend left exactly the key's `credits.low_threshold` (once per refill period).
    #[serde(rename = "key.credits_low")]
    CreditsLow,
    /// A spend left no credits: the next request is refused (`USAGE_EXCEEDED`) until a refill.
    #[serde(rename = "key.credits_exhausted")]
    CreditsExhausted,
    #[serde(rename = "datasource.key_regenerated")]
    DatasourceKeyRegenerated,
}

/// One event as delivered: `{id, type, at, tenant_id, key}`.
#[derive(Debug, Clone, Serialize)]
pub struct KeyEvent {
    /// Unique per event (UUIDv7), so a receiver can drop a redelivery.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: KeyEventType,
    pub at: DateTime<Utc>,
    pub tenant_id: TenantId,
    /// The key as it is after the change (for `key.rotated`, the new key: its `replaces` names
    /// the old one).
    pub key: KeyView,
}

impl KeyEvent {
    pub fn new(event_type: KeyEventType, key: KeyView, at: DateTime<Utc>) -> Self {
        Self { id: uuid::Uuid::now_v7().to_string(), event_type, at, tenant_id: key.tenant_id.clone(), key }
    }
}

#[cfg(feature = "events")]
pub mod eventbridge;

/// Where events go. `publish` only queues: it must return at once, whatever the receiver does.
pub trait KeyEvents: Send + Sync {
    fn publish(&self, event: KeyEvent);

    /// Sends what is queued, where a sink cannot send in the background (a Lambda function is
    /// frozen once it has answered): awaited by the handler after the operation has its answer.
    fn flush(&self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
}

/// A deployment that routes events nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl KeyEvents for NoEvents {
    fn publish(&self, _: KeyEvent) {}
}

/// The `Latchkey-Signature` header of a delivery: `t=<unix seconds>,v1=<hex HMAC-SHA256 of
/// "<t>.<body>">` (Stripe's scheme), so a receiver checks both origin and freshness.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_an_hmac_of_timestamp_and_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        let signed = signature(b"whsec_test", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(signed, "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789");
        assert_ne!(signed, signature(b"whsec_other", 1_700_000_000, br#"{"a":1}"#));
        assert_ne!(signed, signature(b"whsec_test", 1_700_000_001, br#"{"a":1}"#));
    }
}
