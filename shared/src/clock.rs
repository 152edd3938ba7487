//! Time as a dependency, so expiry, grace periods and TTLs are tested without sleeping.

use std::sync::Mutex;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

pub trait Clock: Send + Sync {
    /// Now, to the millisecond: what is stored is what is shown.
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().duration_trunc(TimeDelta::milliseconds(1)).expect("now is representable")
    }
}

/// The wall clock run ahead by a fixed amount: the local API's `LATCHKEY_CLOCK_OFFSET_SECONDS`,
/// so what a grace period, an expiry or a session's end does can be seen without waiting for it.
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock {
    ahead: TimeDelta,
}

impl OffsetClock {
    pub fn new(ahead: TimeDelta) -> Self {
        Self { ahead }
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        SystemClock.now() + self.ahead
    }
}

/// A clock that moves only when told. For tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Mutex::new(start))
    }

    pub fn advance(&self, by: TimeDelta) {
        *self.0.lock().expect("clock lock") += by;
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}
