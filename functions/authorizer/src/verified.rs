//! A key as this authorizer found it: its record, and the context of an Allow for it, rendered
//! from the record once, on its first Allow, then kept with the record (in the cache, for the
//! cache's TTL) instead of being rendered again for every request.
//!
//! Only what the record alone decides is rendered once. Whether the key may be used (revoked,
//! expired, disabled, its allowlist against the request's source, its credits) is still decided
//! on every request, before any Allow: so the context is only ever that of a working key, whose
//! view's `status` is `active` whenever it is read.

use std::ops::Deref;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use latchkey::KeyRecord;
use latchkey::manage::view::KeyView;
use serde_json::value::RawValue;

pub struct VerifiedKey {
    record: KeyRecord,
    context: OnceLock<KeyContext>,
}

/// The fields of a key's Allow context that take rendering, and the whole context as JSON.
pub(crate) struct KeyContext {
    pub permissions: String,
    pub meta: String,
    pub expires_at: Option<String>,
    pub key_view: String,
    /// The context as the Allow carries it: the fields above and the record's own.
    pub json: Box<RawValue>,
}

impl VerifiedKey {
    pub fn new(record: KeyRecord) -> Self {
        Self { record, context: OnceLock::new() }
    }

    pub fn record(&self) -> &KeyRecord {
        &self.record
    }

    /// The rendered context, rendered now (at `now`) if it is this key's first Allow.
    pub(crate) fn context(&self, now: DateTime<Utc>) -> &KeyContext {
        self.context.get_or_init(|| {
            let record = &self.record;
            let mut context = KeyContext {
                permissions: record.permissions.to_csv(),
                meta: record.meta.to_header(),
                expires_at: record.expires_at.map(latchkey::error::format_time),
                key_view: serde_json::to_string(&KeyView::of(record, now)).expect("a view always serializes"),
                json: Default::default(),
            };
            let json = serde_json::to_string(&crate::policy::AllowContext::of_key(record, &context))
                .expect("a context always serializes");
            context.json = RawValue::from_string(json).expect("serde_json wrote JSON");
            context
        })
    }
}

impl From<KeyRecord> for VerifiedKey {
    fn from(record: KeyRecord) -> Self {
        Self::new(record)
    }
}

/// A verified key is read as its record.
impl Deref for VerifiedKey {
    type Target = KeyRecord;

    fn deref(&self) -> &KeyRecord {
        &self.record
    }
}

impl std::fmt::Debug for VerifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.record.fmt(f)
    }
}
