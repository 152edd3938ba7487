//! `GET /keys/{id}/verifications` and `GET /analytics/verifications`: the counts of
//! [`crate::verifications`], rolled up into hours or days for one key or a whole tenant.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::{Caller, KeyService};
use crate::audit::AuditLog;
use crate::gateway::GatewayKeys;
use crate::gateway::pool::GatewaySlots;
use crate::store::KeyStore;
use crate::verifications::{Bucket, Granularity, OutcomeCounts, RETENTION_DAYS, Refusal, VerificationStore, buckets};
use crate::{ApiError, KeyId, Permission};

/// The widest range an hourly answer covers (744 buckets); daily answers go back as far as the
/// counts are kept, [`RETENTION_DAYS`].
pub const MAX_HOURLY_DAYS: i64 = 31;
/// How many of a tenant's keys its overview names, busiest first.
pub const TOP_KEYS: usize = 10;

/// `since`, `until` and `granularity` of a query, checked: `until` defaults to now, `since` to
/// 30 days (daily) or 24 hours (hourly) before it; both are RFC 3339, `since < until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub granularity: Granularity,
}

fn time(field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::validation(field, format!("{field} is an RFC 3339 time, e.g. 2026-12-01T00:00:00Z")))
}

impl Window {
    pub fn parse(
        since: Option<&str>,
        until: Option<&str>,
        granularity: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Self, ApiError> {
        let granularity = granularity.map(Granularity::parse).transpose()?.unwrap_or(Granularity::Day);
        let until = until.map(|text| time("until", text)).transpose()?.unwrap_or(now);
        let default_span = match granularity {
            Granularity::Hour => TimeDelta::hours(24),
            Granularity::Day => TimeDelta::days(30),
        };
        let since = match since {
            Some(text) => time("since", text)?,
            None => until
                .checked_sub_signed(default_span)
                .ok_or_else(|| ApiError::validation("until", "until is too early for a window before it"))?,
        };
        if since >= until {
            return Err(ApiError::validation("since", "since must be before until"));
        }
        let widest = match granularity {
            Granularity::Hour => TimeDelta::days(MAX_HOURLY_DAYS),
            Granularity::Day => TimeDelta::days(RETENTION_DAYS),
        };
        if until - since > widest {
            let message = format!(
                "at most {} days with granularity={} (counts are kept {RETENTION_DAYS} days)",
                widest.num_days(),
                granularity.name()
            );
            return Err(ApiError::validation("since", message));
        }
        Ok(Self { since, until, granularity })
    }

    /// The hours to read: from `since`'s hour (a partly covered bucket is counted whole) to
    /// `until`.
    fn hours(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        (crate::verifications::hour_of(self.since), self.until)
    }
}

/// A key's verifications.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyVerifications {
    pub id: KeyId,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub granularity: &'static str,
    pub totals: OutcomeCounts,
    /// Oldest first; buckets without a decision are left out.
    pub buckets: Vec<Bucket>,
}

/// A key's latest refusals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyRefusals {
    pub id: KeyId,
    /// Newest first, at most [`crate::verifications::REFUSALS_KEPT`].
    pub refusals: Vec<Refusal>,
}

/// One of a tenant's busiest keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopKey {
    pub id: KeyId,
    pub total: u64,
    pub counts: OutcomeCounts,
}

/// A tenant's verifications: its totals, by bucket, and its busiest keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantVerifications {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub granularity: &'static str,
    pub totals: OutcomeCounts,
    pub buckets: Vec<Bucket>,
    /// At most [`TOP_KEYS`], the most decisions first (ties by id).
    pub top_keys: Vec<TopKey>,
}

fn total(buckets: &[Bucket]) -> OutcomeCounts {
    let mut totals = OutcomeCounts::default();
    for bucket in buckets {
        totals.merge(&bucket.counts);
    }
    totals
}

impl<S: KeyStore + GatewaySlots + AuditLog + crate::credits::CreditStore, G: GatewayKeys> KeyService<S, G> {
    /// `GET /keys/{id}/verifications`: another tenant's key is `404`, like a missing one.
    pub async fn key_verifications<V: VerificationStore>(
        &self,
        counts: &V,
        caller: &Caller,
        id: &str,
        window: Window,
    ) -> Result<KeyVerifications, ApiError> {
        caller.require(Permission::Admin)?;
        let record = self.record(caller, id).await?;
        let (from, to) = window.hours();
        let hours = counts.key_hours(&caller.tenant, &record.id, from, to).await?;
        let buckets = buckets(hours, window.granularity);
        Ok(KeyVerifications {
            id: record.id,
            since: window.since,
            until: window.until,
            granularity: window.granularity.name(),
            totals: total(&buckets),
            buckets,
        })
    }

    /// `GET /keys/{id}/refusals`: another tenant's key is `404`, like a missing one.
    pub async fn key_refusals<V: VerificationStore>(
        &self,
        counts: &V,
        caller: &Caller,
        id: &str,
    ) -> Result<KeyRefusals, ApiError> {
        caller.require(Permission::Admin)?;
        let record = self.record(caller, id).await?;
        let refusals = counts.refusals(&caller.tenant, &record.id).await?;
        Ok(KeyRefusals { id: record.id, refusals })
    }

    /// `GET /analytics/verifications`: the calling tenant's, never another's.
    pub async fn tenant_verifications<V: VerificationStore>(
        &self,
        counts: &V,
        caller: &Caller,
        window: Window,
    ) -> Result<TenantVerifications, ApiError> {
        caller.require(Permission::Admin)?;
        let (from, to) = window.hours();
        let hours = counts.tenant_hours(&caller.tenant, from, to).await?;
        let mut by_key: HashMap<KeyId, OutcomeCounts> = HashMap::new();
        for hour in &hours {
            by_key.entry(hour.key.clone()).or_default().merge(&hour.counts);
        }
        let mut top_keys: Vec<TopKey> =
            by_key.into_iter().map(|(id, counts)| TopKey { id, total: counts.total(), counts }).collect();
        top_keys.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.id.as_str().cmp(b.id.as_str())));
        top_keys.truncate(TOP_KEYS);
        let buckets = buckets(hours.into_iter().map(|h| (h.hour, h.counts)), window.granularity);
        Ok(TenantVerifications {
            since: window.since,
            until: window.until,
            granularity: window.granularity.name(),
            totals: total(&buckets),
            buckets,
            top_keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-12-05T10:30:00Z".parse().unwrap()
    }

    #[test]
    fn a_window_defaults_to_the_last_30_days_by_day() {
        let window = Window::parse(None, None, None, now()).unwrap();
        assert_eq!(
            (window.until, window.until - window.since, window.granularity),
            (now(), TimeDelta::days(30), Granularity::Day)
        );
        let hourly = Window::parse(None, None, Some("hour"), now()).unwrap();
        assert_eq!(hourly.until - hourly.since, TimeDelta::hours(24));
    }

    #[test]
    fn a_bad_window_names_its_field() {
        let field = |since, until, granularity| match Window::parse(since, until, granularity, now()) {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(Some("yesterday"), None, None), "since");
        assert_eq!(field(None, Some("2026-13-01T00:00:00Z"), None), "until");
        assert_eq!(field(None, None, Some("minute")), "granularity");
        assert_eq!(field(Some("2026-12-05T11:00:00Z"), None, None), "since", "since after until");
        assert_eq!(field(Some("2026-10-01T00:00:00Z"), None, Some("hour")), "since", "past 31 days hourly");
        assert_eq!(field(Some("2026-08-01T00:00:00Z"), None, None), "since", "past 90 days");
        assert_eq!(field(None, Some("-262143-01-01T00:00:00Z"), None), "until", "no room before it");
    }

    #[test]
    fn any_time_chrono_holds_falls_in_a_bucket() {
        // Past 2262, where nanosecond timestamps end (schemathesis sent `until=2263-01-01T00:00:00Z`).
        let late: DateTime<Utc> = "2263-01-01T10:20:30Z".parse().unwrap();
        assert_eq!(Granularity::Hour.bucket_of(late), "2263-01-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(Granularity::Day.bucket_of(late), "2263-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert!(Window::parse(None, Some("2263-01-01T00:00:00Z"), Some("hour"), now()).is_ok());
    }
}
