//! Each key's tier throttle, applied by the local API itself where the deployed stack has API
//! Gateway's usage plans: a token bucket per key (rate and burst from the tier), `429
//! RATE_LIMITED` with `Retry-After` past it.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use latchkey::{ApiError, Tiers};

use crate::MIN_RETRY_AFTER;

pub struct RateLimits {
    /// Throttled tiers by name; a tier without a throttle (`internal`) is absent.
    by_tier: HashMap<String, DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl RateLimits {
    pub fn new(tiers: &Tiers) -> Self {
        let by_tier = tiers
            .iter()
            .filter_map(|tier| {
                let throttle = tier.throttle.as_ref()?;
                let period = Duration::from_secs_f64(1.0 / throttle.rate_per_second);
                let burst = NonZeroU32::new(throttle.burst.max(1)).expect("at least one");
                let quota = Quota::with_period(period)?.allow_burst(burst);
                Some((tier.name.to_string(), RateLimiter::keyed(quota)))
            })
            .collect();
        Self { by_tier, clock: DefaultClock::default() }
    }

    /// `RATE_LIMITED` when the caller's bucket is empty; sessions and unthrottled tiers pass.
    pub fn check(&self, tier: Option<&str>, principal: Option<&str>) -> Result<(), ApiError> {
        let (Some(tier), Some(principal)) = (tier, principal) else { return Ok(()) };
        let Some(limiter) = self.by_tier.get(tier) else { return Ok(()) };
        limiter.check_key(&principal.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now()).max(MIN_RETRY_AFTER);
            ApiError::RateLimited { retry_after_seconds: wait.as_secs_f64().ceil() as u64 }
        })
    }
}
