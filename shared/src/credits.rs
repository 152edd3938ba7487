//! Usage credits: a key's budget of requests, spent one per request that reaches the backend or
//! `/ingest`, optionally refilled each UTC day or month.
//!
//! Exact by construction: every spend is one atomic conditional decrement of the stored balance
//! (DynamoDB's `UpdateItem` with `remaining > 0` as its condition; one redb write transaction
//! locally), never a cached or leased count. However many authorizer instances and however warm
//! their decision caches, a balance of `M` lets exactly `M` requests through. The price is one
//! write per metered request; a key without credits writes nothing (BENCHMARKS.md's cost model).
//!
//! A refill sets `remaining` to the refill's `amount` at the first spend (or read) of a new
//! period: the balance remembers the period its `remaining` belongs to, and a spend in a later
//! period refills first, conditionally on that period, so two spends racing across the boundary
//! refill once.
//!
//! A key's record names the balance it spends (`meter`): its own id, or after a rotation the id of
//! the key it replaced, so that old and new key spend one budget during the grace period.

use std::future::Future;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::KeyId;
use crate::store::StoreError;

/// The most credits a balance, a refill or a threshold may hold (a thousand billion).
pub const MAX_CREDITS: u64 = 1_000_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefillInterval {
    Day,
    Month,
}

impl RefillInterval {
    pub fn as_str(self) -> &'static str {
        match self {
            RefillInterval::Day => "day",
            RefillInterval::Month => "month",
        }
    }

    /// The period `at` falls in: `2026-12-06` for a day, `2026-12` for a month (UTC). Periods of
    /// one interval sort as text in time order.
    pub fn period_of(self, at: DateTime<Utc>) -> String {
        match self {
            RefillInterval::Day => at.format("%Y-%m-%d").to_string(),
            RefillInterval::Month => at.format("%Y-%m").to_string(),
        }
    }

    /// When the period after `at`'s starts: the next refill.
    pub fn next_start(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let date = at.date_naive();
        let next = match self {
            RefillInterval::Day => date.succ_opt(),
            RefillInterval::Month => {
                let (year, month) =
                    if date.month() == 12 { (date.year() + 1, 1) } else { (date.year(), date.month() + 1) };
                NaiveDate::from_ymd_opt(year, month, 1)
            }
        };
        let next = next.expect("a date before the end of chrono's range has a next period");
        Utc.from_utc_datetime(&next.and_hms_opt(0, 0, 0).expect("midnight exists"))
    }
}

impl std::str::FromStr for RefillInterval {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "day" => Ok(RefillInterval::Day),
            "month" => Ok(RefillInterval::Month),
            _ => Err(()),
        }
    }
}

/// `remaining` set back to `amount` at the start of every `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refill {
    pub amount: u64,
    pub interval: RefillInterval,
}

/// What a key is given (`credits` on create and PATCH): validated, within [`MAX_CREDITS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credits {
    pub remaining: u64,
    pub refill: Option<Refill>,
    /// `key.credits_low` is sent when a spend leaves exactly this many (once per refill period).
    pub low_threshold: Option<u64>,
}

/// A balance as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditBalance {
    pub remaining: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refill: Option<Refill>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_threshold: Option<u64>,
    /// The refill period `remaining` belongs to ([`RefillInterval::period_of`]); only with a
    /// refill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
}

/// What one spend did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spend {
    /// One credit spent; the balance as it is now.
    Spent(CreditBalance),
    /// Nothing left: refused until `refills_at` (never, without a refill).
    Exhausted { refills_at: Option<DateTime<Utc>> },
}

/// What a spend is announced as (`key.credits_low`, `key.credits_exhausted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditsNotice {
    Low,
    Exhausted,
}

impl CreditBalance {
    /// A new balance of `credits`, its period the one `now` falls in.
    pub fn new(credits: &Credits, now: DateTime<Utc>) -> Self {
        Self {
            remaining: credits.remaining,
            refill: credits.refill,
            low_threshold: credits.low_threshold,
            period: credits.refill.map(|refill| refill.interval.period_of(now)),
        }
    }

    /// Whether a refill is due at `now`: the balance belongs to an earlier period.
    pub fn refill_due(&self, now: DateTime<Utc>) -> Option<Refill> {
        let refill = self.refill?;
        (self.period.as_deref() != Some(refill.interval.period_of(now).as_str())).then_some(refill)
    }

    /// The balance as it stands at `now`: refilled if a refill is due.
    pub fn as_of(&self, now: DateTime<Utc>) -> CreditBalance {
        match self.refill_due(now) {
            Some(refill) => {
                CreditBalance { remaining: refill.amount, period: Some(refill.interval.period_of(now)), ..self.clone() }
            }
            None => self.clone(),
        }
    }

    /// When the next refill comes, if any.
    pub fn refills_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.refill.map(|refill| refill.interval.next_start(now))
    }

    /// One spend at `now`: the balance to store and what it did, or `Exhausted` (nothing to
    /// store). What both stores do, inside their atomic write.
    pub fn spend(&self, now: DateTime<Utc>) -> Spend {
        let current = self.as_of(now);
        match current.remaining.checked_sub(1) {
            Some(remaining) => Spend::Spent(CreditBalance { remaining, ..current }),
            None => Spend::Exhausted { refills_at: self.refills_at(now) },
        }
    }

    /// What a spend that left this balance is announced as: the one that leaves none, and the one
    /// that leaves exactly the threshold. A balance only counts down by one, so each happens once
    /// between two refills (or two PATCHes that set the balance again).
    pub fn notice(&self) -> Option<CreditsNotice> {
        if self.remaining == 0 {
            Some(CreditsNotice::Exhausted)
        } else if self.low_threshold == Some(self.remaining) {
            Some(CreditsNotice::Low)
        } else {
            None
        }
    }
}

/// A key's credits as answered (`credits` in a key's view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreditsView {
    pub remaining: u64,
    pub refill: Option<Refill>,
    pub low_threshold: Option<u64>,
    /// When `remaining` is next set back to the refill's amount; `null` without a refill.
    pub refills_at: Option<DateTime<Utc>>,
}

impl CreditsView {
    pub fn of(balance: &CreditBalance, now: DateTime<Utc>) -> Self {
        let current = balance.as_of(now);
        Self {
            remaining: current.remaining,
            refill: current.refill,
            low_threshold: current.low_threshold,
            refills_at: current.refills_at(now),
        }
    }
}

/// Where balances live: beside the keys (`credits#<meter>` in the keys table, a table of the redb
/// file). The same contract tests hold both stores to it.
pub trait CreditStore: Send + Sync {
    /// Sets the balance of `meter` (replacing any), or removes it (`None`: unlimited).
    fn set_credits(
        &self,
        meter: &KeyId,
        balance: Option<&CreditBalance>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The balance of `meter` as stored (not refilled: see [`CreditBalance::as_of`]).
    fn credits(&self, meter: &KeyId) -> impl Future<Output = Result<Option<CreditBalance>, StoreError>> + Send;

    /// Spends one credit of `meter` at `now`, atomically against every other spend; refills
    /// first when due. `None`: `meter` has no balance (unlimited).
    fn spend_credit(
        &self,
        meter: &KeyId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Spend>, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn periods_and_their_ends() {
        let now = at("2026-12-31T23:59:59Z");
        assert_eq!(RefillInterval::Day.period_of(now), "2026-12-31");
        assert_eq!(RefillInterval::Month.period_of(now), "2026-12");
        assert_eq!(RefillInterval::Day.next_start(now), at("2027-01-01T00:00:00Z"));
        assert_eq!(RefillInterval::Month.next_start(now), at("2027-01-01T00:00:00Z"));
        assert_eq!(RefillInterval::Month.next_start(at("2026-02-10T12:00:00Z")), at("2026-03-01T00:00:00Z"));
        assert_eq!(RefillInterval::Day.next_start(at("2026-02-28T00:00:00Z")), at("2026-03-01T00:00:00Z"));
    }

    #[test]
    fn spends_count_down_to_none_then_refill_in_the_next_period() {
        let credits = Credits {
            remaining: 2,
            refill: Some(Refill { amount: 5, interval: RefillInterval::Day }),
            low_threshold: Some(1),
        };
        let day = at("2026-12-06T10:00:00Z");
        let balance = CreditBalance::new(&credits, day);
        let Spend::Spent(once) = balance.spend(day) else { panic!("2 left") };
        assert_eq!((once.remaining, once.notice()), (1, Some(CreditsNotice::Low)));
        let Spend::Spent(twice) = once.spend(day) else { panic!("1 left") };
        assert_eq!((twice.remaining, twice.notice()), (0, Some(CreditsNotice::Exhausted)));
        assert_eq!(twice.spend(day), Spend::Exhausted { refills_at: Some(at("2026-12-07T00:00:00Z")) });
        // The next day: set back to 5, and this spend takes one of them.
        let Spend::Spent(refilled) = twice.spend(at("2026-12-07T00:00:00Z")) else { panic!("refilled") };
        assert_eq!((refilled.remaining, refilled.period.as_deref()), (4, Some("2026-12-07")));
        assert_eq!(CreditsView::of(&twice, at("2026-12-08T01:00:00Z")).remaining, 5);
    }

    #[test]
    fn without_a_refill_an_empty_balance_stays_empty() {
        let balance = CreditBalance::new(&Credits { remaining: 0, refill: None, low_threshold: None }, Utc::now());
        assert_eq!(balance.spend(at("2099-01-01T00:00:00Z")), Spend::Exhausted { refills_at: None });
        assert_eq!(balance.period, None);
    }
}
